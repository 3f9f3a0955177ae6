"""The recording format, read side: one CSV of samples per session and its JSON sidecar.

    <stem>.csv   t,ax,ay,az,gx,gy,gz,label,seq,t_us   (documented in docs/recording-format.md)
    <stem>.json  at least {"subject": ..., "rate_hz": ...}
    <stem>.bin   the exact bytes read from the port, starting with an info frame (optional)

`load_recording` reads a file any tool wrote in this format, and refuses in one
sentence what is not one: a process killed between syncs leaves at most one
half-written last line, which is skipped with a note.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..calibration import Calibration
from ..errors import UserError

FORMAT_VERSION = 1
COLUMNS = ("t", "ax", "ay", "az", "gx", "gy", "gz", "label", "seq", "t_us")
REQUIRED = COLUMNS[:8]
SI_COLUMNS = COLUMNS[1:7]
# No sensor reads beyond this (m/s², rad/s; an MPU-6050 tops out at 157 and 35): larger is a broken file,
# and would overflow to inf in the features.
MAX_VALUE = 1e6
RATE_TOLERANCE = 0.2  # the t column's typical step may differ from 1 / rate_hz by this fraction


class RecordingNote(UserWarning):
    """Something about a recording a user should know, that does not stop it loading."""


@dataclass
class Recording:
    """One session: samples in SI units with their labels."""

    path: Path
    subject: str
    session: str
    rate_hz: float
    t: np.ndarray        # (n,) float64 s from the session start
    si: np.ndarray       # (n, 6) float64: ax, ay, az in m/s², gx, gy, gz in rad/s
    labels: np.ndarray   # (n,) str, '' = unlabelled
    meta: dict = field(default_factory=dict)
    seq: np.ndarray | None = None    # (n,) int64 board sequence numbers, when the file has them
    t_us: np.ndarray | None = None   # (n,) int64 board clock in µs, when the file has them
    notes: list[str] = field(default_factory=list)
    calibration: Calibration | None = None  # how the board sat on the wearer (the sidecar's, or estimated)

    def __len__(self) -> int:
        return len(self.t)


# ---------------------------------------------------------------- names

def safe_name(text: str) -> str:
    """Text as a file-name part: letters, digits, '.' and '-' only, never starting with a dot (hidden)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", str(text)).strip("-.") or "x"


def recording_stem(subject: str, name: str, start: _dt.datetime) -> str:
    """`<subject>_<label or session>_<YYYYmmdd-HHMMSS>`, with only file-name-safe characters."""
    return f"{safe_name(subject)}_{safe_name(name)}_{start:%Y%m%d-%H%M%S}"


def sidecar_path(csv_path: Path) -> Path:
    return Path(csv_path).with_suffix(".json")


def raw_log_path(csv_path: Path) -> Path:
    return Path(csv_path).with_suffix(".bin")


# ---------------------------------------------------------------- loading

def load_recording(path: str | Path) -> Recording:
    """Read a recording CSV and its sidecar; UserError naming the file (and line) if it is not one."""
    path = Path(path)
    meta = _load_sidecar(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is not part of 't'
    except FileNotFoundError:
        raise UserError(f"no such recording: {path}.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read recording {path}: {getattr(err, 'strerror', None) or err}.") from None

    notes = []
    lines = text.splitlines()
    if text and not text.endswith(("\n", "\r")) and len(lines) > 1:
        lines.pop()  # cut off mid-write (a killed recorder): everything before it is whole
        notes.append(f"{path}: skipped a half-written last line {len(lines) + 1}.")
    if not lines:
        raise UserError(f"{path} is empty; a recording starts with the header {','.join(REQUIRED)}.")
    header = [h.strip() for h in next(csv.reader([lines[0]]))]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise UserError(f"{path} line 1 is not a recording header: it lacks column "
                        f"{missing[0]!r} (expected {','.join(REQUIRED)},...).")

    table = _cells(lines[1:], len(header), path)
    col = {name: i for i, name in enumerate(header)}

    def numbers(names, dtype):
        cells = table[:, [col[n] for n in names]]
        try:
            return cells.astype(dtype)
        except (ValueError, OverflowError):
            for i, row in enumerate(cells):  # only on the error path: find the line and column to name
                for name, cell in zip(names, row):
                    try:
                        np.array(cell).astype(dtype)
                    except (ValueError, OverflowError):
                        raise UserError(f"{path} line {i + 2}: {str(cell)!r} in column {name} is not a "
                                        f"{'whole ' if dtype is np.int64 else ''}number.") from None
            raise

    t = numbers(["t"], np.float64)[:, 0]
    si = numbers(SI_COLUMNS, np.float64)
    _check_values(path, t, si)
    has_board = "seq" in col and "t_us" in col
    seq = numbers(["seq"], np.int64)[:, 0] if has_board else None
    t_us = numbers(["t_us"], np.int64)[:, 0] if has_board else None
    _check_rate(path, t, seq, float(meta["rate_hz"]))
    labels = np.char.strip(table[:, col["label"]])

    for note in notes:
        warnings.warn(note, RecordingNote, stacklevel=2)
    stored = meta.get("calibration")
    return Recording(path=path, subject=str(meta["subject"]), session=str(meta.get("session") or path.stem),
                     rate_hz=float(meta["rate_hz"]), t=t, si=si, labels=labels.astype(str), meta=meta,
                     seq=seq, t_us=t_us, notes=notes,
                     calibration=Calibration.from_dict(stored, sidecar_path(path)) if stored else None)


def _check_values(path: Path, t: np.ndarray, si: np.ndarray) -> None:
    """UserError naming the line of a value that is not finite, one no sensor gives, or a step back in time."""
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(t) & np.isfinite(si).all(axis=1))
        if bad.any():
            raise UserError(f"{path} line {int(np.flatnonzero(bad)[0]) + 2} has a value that is not a finite number.")
        huge = (np.abs(si) > MAX_VALUE).any(axis=1)
    if huge.any():
        raise UserError(f"{path} line {int(np.flatnonzero(huge)[0]) + 2} has a value beyond {MAX_VALUE:g}, "
                        "which no sensor measures (m/s², rad/s).")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        raise UserError(f"{path} line {int(back[0]) + 3}: t goes back in time ({t[back[0] + 1]:g} s after "
                        f"{t[back[0]]:g} s); rows must be in time order.")


def _check_rate(path: Path, t: np.ndarray, seq: np.ndarray | None, rate_hz: float) -> None:
    """UserError if the t column's typical sample period is not 1 / rate_hz (per board sample, where seq says)."""
    steps = np.diff(t)
    if seq is not None:  # samples lost on the way (a gap in seq) leave longer steps that are still one rate
        counts = np.diff(seq)
        ok = (counts > 0) & (steps > 0)
        steps = steps[ok] / counts[ok]
    steps = steps[steps > 0]
    if steps.size < 2:
        return
    typical = float(np.median(steps))
    if abs(typical * rate_hz - 1) > RATE_TOLERANCE:
        raise UserError(f"the sidecar {sidecar_path(path).name} says rate_hz {rate_hz:g}, but the t column "
                        f"of {path} steps {typical:.4g} s a sample ({1 / typical:.4g} Hz); correct one of them.")


def _cells(lines: list[str], width: int, path: Path) -> np.ndarray:
    """The CSV body as an (n, width) array of strings; UserError naming a line with the wrong field count."""
    if not lines:  # a header and nothing yet: a recorder stopped before the first sample
        return np.empty((0, width), dtype=str)
    if any('"' in line for line in lines):
        rows = list(csv.reader(lines))  # quoted fields: the csv module's rules
        fields = np.array([len(r) for r in rows], dtype=np.int64)
    else:
        rows = None  # the usual file: split in bulk, one str.split for the whole body
        fields = np.char.count(np.array(lines, dtype=str), ",") + 1 if lines else np.zeros(0, dtype=np.int64)
    bad = np.flatnonzero(fields != width)
    if bad.size:
        i = int(bad[0])
        raise UserError(f"{path} line {i + 2} has {fields[i]} fields, the header has {width}.")
    cells = ",".join(lines).split(",") if rows is None else [c for r in rows for c in r]
    return np.array(cells, dtype=str).reshape(len(lines), width)


def _load_sidecar(path: Path) -> dict:
    side = sidecar_path(path)
    if path.suffix.lower() != ".csv":
        raise UserError(f"{path} is not a recording: recordings are .csv files with a .json sidecar.")
    try:
        meta = json.loads(side.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        if not path.exists():
            raise UserError(f"no such recording: {path}.") from None
        raise UserError(f"{path} has no sidecar {side.name}; write one with at least subject and rate_hz.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise UserError(f"the sidecar {side} is not valid JSON: {err}.") from None
    if not isinstance(meta, dict):
        raise UserError(f"the sidecar {side} must hold a JSON object with subject and rate_hz.")
    for key in ("subject", "rate_hz"):
        if key not in meta:
            raise UserError(f"the sidecar {side} lacks {key!r}; it needs at least subject and rate_hz.")
    rate = meta["rate_hz"]
    # JSON's true is Python's 1 and its Infinity a float: neither is a rate.
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and rate > 0):
        raise UserError(f"the sidecar {side} has rate_hz {json.dumps(rate)}; it must be a positive number "
                        "of samples per second.")
    return meta
