"""Model bundles: a folder with bundle.json (what the model is and expects) and a weights file.

Nothing in a bundle executes code on load, and nothing in it is believed before
it is checked. One SHA-256 over bundle.json's canonical JSON and the weights
file's bytes (format version 2) catches any edit or damage; every field is then
checked to hold together and to agree with the weights (weights.py), the weights
file must lie inside the bundle folder, and any failure is one sentence naming
the bundle and what is wrong. The format is described in docs/model-bundle.md.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
import math
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import skops
import skops.io
import sklearn
import torch
from sklearn.pipeline import Pipeline

from ..dataset import CHANNEL_SETS, channel_names
from ..errors import UserError
from .deep import NETWORKS, TorchClassifier
from .shallow import CLASSIFIERS, as_compiled, as_stored
from .trees import InvalidTrees
from .weights import InvalidWeights, load_deep, load_shallow

FORMAT = "harduino-model-bundle"
VERSION = 2
META_FILE = "bundle.json"
WEIGHTS = {"deep": ("weights.safetensors", "safetensors"), "shallow": ("pipeline.skops", "skops")}
MAX_META_BYTES = 1 << 20        # a bundle.json is a few KB
MAX_WINDOW = 4096               # samples in a window or between windows: 40 s at 100 Hz
MAX_RATE_HZ = 10_000.0


class BundleWarning(UserWarning):
    """A bundle that loads but is weaker than this harduino writes (format version 1)."""


class _Refused(Exception):
    """Why a bundle cannot be used: a phrase that follows 'the model bundle FOLDER ...'."""


@dataclass
class Bundle:
    """A loaded model: the fitted pipeline (its tree ensembles compiled) and what it expects."""

    path: Path
    estimator: Pipeline
    meta: dict

    @property
    def arch(self) -> str:
        return self.meta["architecture"]

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.meta["classes"])

    @property
    def channel_set(self) -> str:
        return self.meta["channel_set"]

    @property
    def window(self) -> int:
        return int(self.meta["window"])

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def rate_hz(self) -> float:
        return float(self.meta["rate_hz"])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, c, window) windows -> (n, classes) probabilities, columns in classes_ order: the pipeline's own."""
        X = np.asarray(X, dtype=np.float32)
        n_channels = len(channel_names(self.channel_set))
        if X.ndim != 3 or X.shape[1:] != (n_channels, self.window):
            raise UserError(f"the model {self.path} takes windows of {n_channels} channels x {self.window} "
                            f"samples, not {'x'.join(map(str, X.shape[1:]))}.")
        return self.estimator.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def check_compatible(self, rate_hz: float, channel_set: str | None = None, window: int | None = None) -> None:
        """UserError unless data at this rate, channel set and window size fits the model."""
        if not np.isclose(rate_hz, self.rate_hz, rtol=0.02):
            raise UserError(f"the model {self.path} was trained on data at {self.rate_hz:g} Hz but this data is "
                            f"{rate_hz:g} Hz; use a model trained at {rate_hz:g} Hz or record at {self.rate_hz:g} Hz.")
        if channel_set is not None and channel_set != self.channel_set:
            raise UserError(f"the model {self.path} takes the {self.channel_set!r} channels, not "
                            f"{channel_set!r}; use --channels {self.channel_set} or another model.")
        if window is not None and window != self.window:
            raise UserError(f"the model {self.path} takes windows of {self.window} samples, not {window}.")


# ---------------------------------------------------------------- saving


def save_bundle(estimator: Pipeline, folder: str | Path, meta: dict) -> Path:
    """Write a fitted pipeline and its metadata to `folder`; returns the folder.

    meta must hold architecture, channel_set, window, step, rate_hz; it may hold
    feature_set, training_data, metrics and anything else worth keeping.
    """
    folder = Path(folder)
    missing = {"architecture", "channel_set", "window", "step", "rate_hz"} - set(meta)
    if missing:
        raise ValueError(f"bundle metadata lacks {', '.join(sorted(missing))}")
    folder.mkdir(parents=True, exist_ok=True)
    estimator = as_stored(estimator)
    clf = estimator.steps[-1][1]
    info = {"format": FORMAT, "version": VERSION, **meta,
            "classes": [str(c) for c in estimator.classes_],
            "channels": list(channel_names(meta["channel_set"])),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": {"harduino": _version(), "python": platform.python_version(), "numpy": np.__version__,
                         "scikit-learn": sklearn.__version__, "torch": torch.__version__.split("+")[0],
                         "safetensors": safetensors.__version__, "skops": skops.__version__}}
    kind = "deep" if isinstance(clf, TorchClassifier) else "shallow"
    name, fmt = WEIGHTS[kind]
    # Written beside, then renamed into place: a rename replaces a link where a write would follow it out.
    weights = folder / (name + ".part")
    weights.unlink(missing_ok=True)
    if kind == "deep":
        scaler = estimator.steps[0][1]
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in clf.module_.state_dict().items()}
        tensors["scaler.mean"] = torch.from_numpy(np.asarray(scaler.mean_, dtype=np.float64))
        tensors["scaler.scale"] = torch.from_numpy(np.asarray(scaler.scale_, dtype=np.float64))
        safetensors.torch.save_file(tensors, str(weights), metadata={"format": FORMAT})
        params = {k: v for k, v in clf.get_params().items() if k not in ("verbose", "device")}
        info.update(kind="deep", feature_set=None, network=params,
                    normalisation={"kind": "per-channel standardisation, axis triples as vectors (ChannelScaler)",
                                   "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
                    parameters=clf.n_parameters_)
    else:
        features = estimator.named_steps["features"]
        skops.io.dump(estimator, weights)
        info.update(kind="shallow", feature_set=features.feature_set,
                    normalisation={"kind": "StandardScaler on the window features"},
                    classifier={k: _jsonable(v) for k, v in clf.get_params(deep=False).items()})
    weights.replace(folder / name)
    info["weights"] = {"file": name, "format": fmt, "bytes": (folder / name).stat().st_size}
    write_meta(folder, info)
    return folder


def write_meta(folder: Path, meta: dict) -> None:
    """Write bundle.json as format version 2, sealed by the checksum over it and the weights it names."""
    meta = {k: v for k, v in meta.items() if k != "sha256"}
    meta["version"] = VERSION
    meta["sha256"] = bundle_sha256(meta, Path(folder) / meta["weights"]["file"])
    part = Path(folder) / (META_FILE + ".part")
    part.unlink(missing_ok=True)
    part.write_text(json.dumps(meta, indent=2) + "\n")
    part.replace(Path(folder) / META_FILE)


def bundle_sha256(meta: dict, weights: Path) -> str:
    """SHA-256 of bundle.json's canonical JSON (every field but sha256) followed by the weights file's bytes."""
    canonical = json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    digest = hashlib.sha256(canonical.encode("utf-8"))
    return _hash_file(weights, digest)


# ---------------------------------------------------------------- loading


def load_bundle(folder: str | Path) -> Bundle:
    """Read a bundle written by save_bundle; UserError, in one sentence, if it is not one or cannot be trusted."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise UserError(f"{folder} is not a model bundle (it has no {META_FILE}); "
                        "train one with: harduino train DATA --arch NAME -o FOLDER.")
    try:
        meta, weights = _checked_meta(folder, meta_path)
        loader = load_deep if meta["kind"] == "deep" else load_shallow
        try:
            estimator = as_compiled(loader(weights, meta))
        except (InvalidWeights, InvalidTrees) as err:
            raise _Refused(f"does not match its weights: {err}") from None
        except Exception:  # noqa: BLE001 - whatever a parser says about a broken file means this to a user
            raise _Refused(f"has a weights file {weights.name} that is not a valid "
                           f"{meta['weights']['format']} model of it") from None
    except _Refused as err:
        raise UserError(f"the model bundle {folder} {err}; retrain the model or restore the bundle.") from None
    return Bundle(folder, estimator, meta)


def _checked_meta(folder: Path, meta_path: Path) -> tuple[dict, Path]:
    """bundle.json and the weights file it names, once the checksum and every field hold; else _Refused."""
    try:
        meta = _read_meta(folder, meta_path)
        weights = _inside(folder, meta["weights"].get("file"), "its weights file")
        if (weights.name, meta["weights"].get("format")) != WEIGHTS[meta["kind"]]:
            raise _Refused(f"does not hold together: the weights of a {meta['kind']} model are "
                           f"{WEIGHTS[meta['kind']][0]} ({WEIGHTS[meta['kind']][1]})")
        _check_checksum(folder, meta, weights)
        _check_fields(meta)
    except OSError as err:
        raise _Refused(f"cannot be read: {err.strerror or err}") from None
    except (KeyError, TypeError, ValueError, AttributeError):  # a field of the wrong type, or text UTF-8 cannot hold
        raise _Refused(f"does not hold together: a field of its {META_FILE} has the wrong type") from None
    return meta, weights


def _read_meta(folder: Path, meta_path: Path) -> dict:
    """bundle.json, parsed strictly: a JSON object of this format, of version 1 or 2, with a weights file."""
    _inside(folder, META_FILE, f"its {META_FILE}")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise _Refused(f"has a {META_FILE} of {meta_path.stat().st_size} bytes, far more than metadata")
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"), parse_constant=_no_constant,
                          object_pairs_hook=_no_repeats)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _Refused(f"is damaged: its {META_FILE} is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _Refused(f"is damaged or not a harduino model bundle: its {META_FILE} is not of format {FORMAT!r}")
    if type(meta.get("version")) is not int or meta["version"] not in (1, VERSION):
        raise _Refused(f"is model bundle format version {str(meta.get('version'))[:20]}, and this harduino "
                       f"reads versions 1 and {VERSION}")
    if meta.get("kind") not in WEIGHTS or not isinstance(meta.get("weights"), dict):
        raise _Refused(f"does not hold together: its kind is not {' or '.join(WEIGHTS)}, with a weights file")
    return meta


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _no_repeats(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key repeats")
    return dict(pairs)


def _inside(folder: Path, name, what: str) -> Path:
    """The regular file `name` names inside `folder`: no absolute path, no '..', no link that leads out."""
    if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts or "\\" in name:
        raise _Refused(f"names {what} {name!r}, which is not a file inside the bundle folder")
    path = folder / name
    try:
        real, root = path.resolve(strict=True), folder.resolve(strict=True)
    except (OSError, RuntimeError):
        raise _Refused(f"lacks {what} {name}") from None
    if not real.is_relative_to(root) or real == root:
        raise _Refused(f"names {what} {name}, which leads outside the bundle folder")
    if not real.is_file():
        raise _Refused(f"has {what} {name}, which is not a file")
    return path


def _check_checksum(folder: Path, meta: dict, weights: Path) -> None:
    """v2: the one checksum over bundle.json and the weights; v1: the weights' own, and a warning."""
    stated = meta["weights"].get("bytes")
    if stated is not None and stated != weights.stat().st_size:
        raise _Refused(f"does not match its checksum: its weights file is {weights.stat().st_size} bytes, "
                       f"not the {stated} its {META_FILE} records (modified or damaged)")
    if meta["version"] == VERSION:
        if meta.get("sha256") != bundle_sha256(meta, weights):
            raise _Refused(f"does not match its checksum: its {META_FILE} or its weights were modified or "
                           "damaged")
        return
    if meta["weights"].get("sha256") != _hash_file(weights, hashlib.sha256()):
        raise _Refused("does not match its checksum: its weights were modified or damaged")
    warnings.warn(f"the model bundle {folder} is format version 1, whose checksum does not cover its "
                  f"{META_FILE}; train it again to get a version {VERSION} bundle.", BundleWarning, stacklevel=4)


def _check_fields(meta: dict) -> None:
    """_Refused unless what bundle.json says the model is and expects holds together."""
    def refuse(what: str):
        raise _Refused(f"does not hold together: {what}")

    if meta.get("channel_set") not in CHANNEL_SETS:
        refuse(f"channel_set {meta.get('channel_set')!r} is not one of {', '.join(CHANNEL_SETS)}")
    if list(meta.get("channels", channel_names(meta["channel_set"]))) != list(channel_names(meta["channel_set"])):
        refuse(f"its channels are not those of the {meta['channel_set']!r} channel set")
    meta.setdefault("channels", list(channel_names(meta["channel_set"])))
    known = NETWORKS if meta["kind"] == "deep" else CLASSIFIERS
    if meta.get("architecture") not in known:
        refuse(f"architecture {meta.get('architecture')!r} is not a {meta['kind']} one "
               f"({', '.join(known)})")
    if meta["kind"] == "deep" and (not isinstance(meta.get("network"), dict)
                                   or meta["network"].get("network") != meta["architecture"]):
        refuse(f"its network is not the {meta['architecture']} it names")
    if meta["kind"] == "deep" and meta.get("feature_set") is not None:
        refuse("a deep model has no feature set")
    for name in ("window", "step"):
        value = meta.get(name)
        if type(value) is not int or not 1 <= value <= MAX_WINDOW:
            refuse(f"{name} is {value!r}, not a whole number of samples from 1 to {MAX_WINDOW}")
    if meta["window"] < 4:
        refuse(f"a window of {meta['window']} samples is too short to compute features or pool over")
    rate = meta.get("rate_hz")
    if type(rate) not in (int, float) or not (0 < rate <= MAX_RATE_HZ and math.isfinite(rate)):
        refuse(f"rate_hz is {rate!r}, not a sample rate from 0 to {MAX_RATE_HZ:g} Hz")
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 \
            or not all(isinstance(c, str) and c.isprintable() and 0 < len(c) <= 100 for c in classes):
        refuse("its classes are not a list of at least two names (printable, up to 100 characters)")
    repeated = sorted(name for name, n in collections.Counter(classes).items() if n > 1)
    if repeated:
        refuse(f"the class {repeated[0]!r} is listed more than once")


def _hash_file(path: Path, digest) -> str:
    """Feed a file into a hashlib digest in blocks (a big file is never read whole); its hex digest."""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(value):
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _version() -> str:
    from .. import __version__
    return __version__
