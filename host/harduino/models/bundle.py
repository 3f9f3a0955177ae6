"""Model bundles: a folder with bundle.json (what the model is and expects) and a weights file.

Nothing in a bundle executes code on load. A deep model's weights and its
channel scaler are tensors in safetensors; a shallow pipeline is a skops file
loaded with an explicit list of the types it may build. bundle.json records
the weights file's SHA-256, so a modified or damaged bundle is refused in one
sentence. The format is described in docs/model-bundle.md.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import skops
import skops.io
import sklearn
import torch
from sklearn.pipeline import Pipeline

from ..dataset import ChannelScaler, channel_names
from ..errors import UserError
from .deep import NETWORKS, TorchClassifier
from .inference import compile_predict_proba
from .shallow import CLASSIFIERS

FORMAT = "harduino-model-bundle"
VERSION = 1
META_FILE = "bundle.json"
DEEP_WEIGHTS = "weights.safetensors"
SHALLOW_WEIGHTS = "pipeline.skops"

# The types a shallow bundle may build beyond those skops trusts itself (builtins, numpy, scikit-learn's
# estimators): an explicit list, so a file naming anything else is refused before it is loaded.
TRUSTED_TYPES = frozenset({
    "harduino.features.WindowFeatures",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
})


@dataclass
class Bundle:
    """A loaded model: the fitted pipeline, what it expects, and its fast predict_proba."""

    path: Path
    estimator: Pipeline
    meta: dict
    _predict_proba: object = field(repr=False, default=None)

    def __post_init__(self):
        self._predict_proba = compile_predict_proba(self.estimator)

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
        """(n, c, window) windows -> (n, classes) probabilities, columns in classes_ order."""
        X = np.asarray(X, dtype=np.float32)
        n_channels = len(channel_names(self.channel_set))
        if X.ndim != 3 or X.shape[1:] != (n_channels, self.window):
            raise UserError(f"the model {self.path} takes windows of {n_channels} channels x {self.window} "
                            f"samples, not {'x'.join(map(str, X.shape[1:]))}.")
        return self._predict_proba(X)

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
    clf = estimator.steps[-1][1]
    info = {"format": FORMAT, "version": VERSION, **meta,
            "classes": [str(c) for c in estimator.classes_],
            "channels": list(channel_names(meta["channel_set"])),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": {"harduino": _version(), "python": platform.python_version(), "numpy": np.__version__,
                         "scikit-learn": sklearn.__version__, "torch": torch.__version__.split("+")[0],
                         "safetensors": safetensors.__version__, "skops": skops.__version__}}
    if isinstance(clf, TorchClassifier):
        scaler = estimator.steps[0][1]
        weights = folder / DEEP_WEIGHTS
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in clf.module_.state_dict().items()}
        tensors["scaler.mean"] = torch.from_numpy(np.asarray(scaler.mean_, dtype=np.float64))
        tensors["scaler.scale"] = torch.from_numpy(np.asarray(scaler.scale_, dtype=np.float64))
        safetensors.torch.save_file(tensors, str(weights), metadata={"format": FORMAT})
        params = {k: v for k, v in clf.get_params().items() if k not in ("verbose", "device")}
        info.update(kind="deep", feature_set=None, network=params,
                    normalisation={"kind": "per-channel standardisation, axis triples as vectors (ChannelScaler)",
                                   "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()},
                    parameters=clf.n_parameters_,
                    weights={"file": DEEP_WEIGHTS, "format": "safetensors"})
    else:
        features = estimator.named_steps["features"]
        weights = folder / SHALLOW_WEIGHTS
        skops.io.dump(estimator, weights)
        info.update(kind="shallow", feature_set=features.feature_set,
                    normalisation={"kind": "StandardScaler on the window features"},
                    classifier={k: _jsonable(v) for k, v in clf.get_params(deep=False).items()},
                    weights={"file": SHALLOW_WEIGHTS, "format": "skops"})
    info["weights"]["sha256"] = _sha256(weights)
    info["weights"]["bytes"] = weights.stat().st_size
    (folder / META_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return folder


# ---------------------------------------------------------------- loading


def load_bundle(folder: str | Path) -> Bundle:
    """Read a bundle written by save_bundle; UserError if it is not one, or was modified."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise UserError(f"{folder} is not a model bundle (it has no {META_FILE}); "
                        "train one with: harduino train DATA --arch NAME -o FOLDER.")
    damaged = UserError(f"{meta_path} is damaged or not a harduino model bundle; retrain the model.")
    try:
        meta = json.loads(meta_path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise damaged from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise damaged
    if meta.get("version") != VERSION:
        raise UserError(f"{meta_path} is model bundle format version {meta.get('version')}, and this harduino "
                        f"reads version {VERSION}; retrain the model with this harduino.")
    try:
        weights = folder / meta["weights"]["file"]
        if weights.name not in (DEEP_WEIGHTS, SHALLOW_WEIGHTS) or meta["kind"] not in ("deep", "shallow"):
            raise ValueError("unknown weights")
        expected_sha = meta["weights"]["sha256"]
        _check_fields(meta)
    except (ValueError, KeyError, TypeError, AttributeError, UserError):
        raise damaged from None
    if not weights.is_file():
        raise UserError(f"the model bundle {folder} lacks its weights file {weights.name}; retrain the model.")
    if _sha256(weights) != expected_sha:
        raise UserError(f"the weights in {folder} do not match the checksum in its {META_FILE}: the bundle was "
                        "modified or damaged; retrain or restore it.")
    try:
        estimator = _load_deep(weights, meta) if meta["kind"] == "deep" else _load_shallow(weights)
        if [str(c) for c in estimator.classes_] != [str(c) for c in meta["classes"]]:
            raise ValueError("classes differ")
    except UserError:
        raise
    except Exception:  # any failure to parse the weights means the same thing to a user
        raise UserError(f"the weights file {weights} is not a valid {meta['weights'].get('format')} model of "
                        f"this bundle; retrain the model.") from None
    return Bundle(folder, estimator, meta)


def _check_fields(meta: dict) -> None:
    """ValueError (or KeyError, UserError) unless what bundle.json says the model is and expects holds together."""
    channels = channel_names(meta["channel_set"])
    if "channels" in meta and list(meta["channels"]) != list(channels):
        raise ValueError("channels do not match the channel set")
    known = NETWORKS if meta["kind"] == "deep" else CLASSIFIERS
    if meta["architecture"] not in known:
        raise ValueError("unknown architecture")
    if meta["kind"] == "deep" and meta["network"].get("network") != meta["architecture"]:
        raise ValueError("the network is not the architecture")
    if not (int(meta["window"]) > 0 and int(meta["step"]) > 0 and float(meta["rate_hz"]) > 0):
        raise ValueError("window, step and rate must be positive")
    if not isinstance(meta["classes"], list) or len(meta["classes"]) < 2:
        raise ValueError("a classifier has at least two classes")


def _load_deep(weights: Path, meta: dict) -> Pipeline:
    tensors = safetensors.torch.load_file(str(weights), device="cpu")
    params = dict(meta["network"])
    unknown = set(params) - set(TorchClassifier().get_params())
    if unknown:
        raise ValueError(f"unknown network parameters {unknown}")
    net = TorchClassifier(**params, verbose=False, device="cpu")
    state = {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")}
    n_channels = len(channel_names(meta["channel_set"]))
    net.restore(np.asarray(meta["classes"]), n_channels, int(meta["window"]), state)
    scaler = ChannelScaler()
    scaler.mean_ = tensors["scaler.mean"].numpy().astype(np.float64)
    scaler.scale_ = tensors["scaler.scale"].numpy().astype(np.float64)
    scaler.n_features_in_ = len(scaler.mean_)
    return Pipeline([("scale", scaler), ("net", net)])


def _load_shallow(weights: Path) -> Pipeline:
    needed = set(skops.io.get_untrusted_types(file=weights))
    refused = needed - TRUSTED_TYPES
    if refused:
        raise UserError(f"the weights file {weights} would build types a harduino model never holds "
                        f"({', '.join(sorted(refused))}); it was not loaded.")
    estimator = skops.io.load(weights, trusted=sorted(needed))
    if not isinstance(estimator, Pipeline):
        raise ValueError("not a pipeline")
    return estimator


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonable(value):
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _version() -> str:
    from .. import __version__
    return __version__
