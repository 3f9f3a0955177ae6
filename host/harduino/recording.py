"""The recording format: one CSV of samples per session, a JSON sidecar, a raw serial log.

    <stem>.csv   t,ax,ay,az,gx,gy,gz,label,seq,t_us   (documented in docs/recording-format.md)
    <stem>.json  at least {"subject": ..., "rate_hz": ...}
    <stem>.bin   the exact bytes read from the port, starting with an info frame (optional)

`RecordingWriter` appends blocks of samples and makes them durable on
`sync()`; a process killed between syncs leaves at most one half-written last
line, which `load_recording` skips with a note. `load_recording` reads a file
any tool wrote in this format.
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import io
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

FORMAT_VERSION = 1
COLUMNS = ("t", "ax", "ay", "az", "gx", "gy", "gz", "label", "seq", "t_us")
REQUIRED = COLUMNS[:8]
SI_COLUMNS = COLUMNS[1:7]


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

    def __len__(self) -> int:
        return len(self.t)


# ---------------------------------------------------------------- names

def recording_stem(subject: str, name: str, start: _dt.datetime) -> str:
    """`<subject>_<label or session>_<YYYYmmdd-HHMMSS>`, with only file-name-safe characters."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9.-]+", "-", str(text)).strip("-") or "x"
    return f"{safe(subject)}_{safe(name)}_{start:%Y%m%d-%H%M%S}"


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
        text = path.read_text(encoding="utf-8")
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

    rows = list(csv.reader(lines[1:]))
    width = np.array([len(r) for r in rows], dtype=np.int64)
    bad = np.flatnonzero(width != len(header))
    if bad.size:
        i = int(bad[0])
        raise UserError(f"{path} line {i + 2} has {width[i]} fields, the header has {len(header)}.")
    table = np.array(rows, dtype=str).reshape(len(rows), len(header))
    col = {name: i for i, name in enumerate(header)}

    def numbers(names, dtype):
        cells = table[:, [col[n] for n in names]]
        try:
            return cells.astype(dtype)
        except ValueError:
            for i, row in enumerate(cells):  # only on the error path: find the line to name
                try:
                    row.astype(dtype)
                except ValueError:
                    raise UserError(f"{path} line {i + 2}: {', '.join(row)} are not all numbers.") from None
            raise

    t = numbers(["t"], np.float64)[:, 0]
    si = numbers(SI_COLUMNS, np.float64)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(si))):
        i = int(np.flatnonzero(~(np.isfinite(t) & np.isfinite(si).all(axis=1)))[0])
        raise UserError(f"{path} line {i + 2} has a value that is not a finite number.")
    has_board = "seq" in col and "t_us" in col
    seq = numbers(["seq"], np.int64)[:, 0] if has_board else None
    t_us = numbers(["t_us"], np.int64)[:, 0] if has_board else None
    labels = np.char.strip(table[:, col["label"]]) if rows else np.zeros(0, dtype=str)

    for note in notes:
        warnings.warn(note, RecordingNote, stacklevel=2)
    return Recording(path=path, subject=str(meta["subject"]), session=str(meta.get("session") or path.stem),
                     rate_hz=float(meta["rate_hz"]), t=t, si=si, labels=labels.astype(str), meta=meta,
                     seq=seq, t_us=t_us, notes=notes)


def _load_sidecar(path: Path) -> dict:
    side = sidecar_path(path)
    if path.suffix.lower() != ".csv":
        raise UserError(f"{path} is not a recording: recordings are .csv files with a .json sidecar.")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not path.exists():
            raise UserError(f"no such recording: {path}.") from None
        raise UserError(f"{path} has no sidecar {side.name}; write one with at least subject and rate_hz.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"the sidecar {side} is not valid JSON: {err}.") from None
    if not isinstance(meta, dict):
        raise UserError(f"the sidecar {side} must hold a JSON object with subject and rate_hz.")
    for key in ("subject", "rate_hz"):
        if key not in meta:
            raise UserError(f"the sidecar {side} lacks {key!r}; it needs at least subject and rate_hz.")
    try:
        rate = float(meta["rate_hz"])
    except (TypeError, ValueError):
        rate = 0.0
    if not rate > 0:
        raise UserError(f"the sidecar {side} has rate_hz {meta['rate_hz']!r}; it must be a positive number.")
    return meta


# ---------------------------------------------------------------- writing

_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EFBIG: "the file grew past the size limit", errno.EACCES: "permission denied",
                errno.EROFS: "the file system is read-only", errno.EIO: "an I/O error"}


def format_rows(t: np.ndarray, si: np.ndarray, labels, seq=None, t_us=None) -> str:
    """CSV lines for a block of samples: t to 0.1 ms (board time is exact in t_us), SI values to 4 decimals.

    Four decimals keep the MPU-6050's resolution at its most sensitive ranges
    (0.0006 m/s² and 0.00013 rad/s per count): raw counts round-trip exactly.
    """
    n = len(t)
    labels = np.broadcast_to(np.asarray(labels, dtype=str), (n,))
    columns = [np.char.mod("%.4f", np.asarray(t, dtype=np.float64))]
    columns += [np.char.mod("%.4f", np.asarray(si[:, i], dtype=np.float64)) for i in range(6)]
    columns.append(labels)
    if seq is not None:
        columns += [np.char.mod("%d", np.asarray(seq, dtype=np.int64)), np.char.mod("%d", np.asarray(t_us, np.int64))]
    if n == 0:
        return ""
    out = io.StringIO()
    for line in zip(*columns):  # the writer's side: a few blocks a second
        out.write(",".join(line))
        out.write("\n")
    return out.getvalue()


def check_label(label: str) -> str:
    """A label as the CSV stores it: no commas, quotes or line breaks."""
    if re.search(r"[,\"\r\n]", label) or label != label.strip():
        raise UserError(f"label {label!r} cannot be stored: use letters, digits, '-' or '_' (no commas or quotes).")
    return label


class RecordingWriter:
    """Appends samples to `<folder>/<stem>.csv` and keeps `<stem>.json` beside it.

    `append` buffers in the OS; `sync` flushes and fsyncs and returns how many
    samples are durably on disk. Any write error becomes a UserError that says
    how many samples were saved; what was written stays loadable.
    """

    def __init__(self, folder: str | Path, stem: str, meta: dict, board_columns: bool = True) -> None:
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise UserError(f"cannot record into {folder}: it is a file, not a folder.")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the folder {folder}: {err.strerror}.") from None
        stem = self._free_stem(folder, stem)
        self.csv_path = folder / f"{stem}.csv"
        self.meta = {"format_version": FORMAT_VERSION, "session": stem, **meta}
        self.board_columns = board_columns
        self.written = 0  # samples handed to the OS
        self.saved = 0    # samples known to be on disk
        self._t0_us: int | None = None
        self._file = None
        self._guard(self._open)
        self.write_meta()

    @staticmethod
    def _free_stem(folder: Path, stem: str) -> str:
        """The stem, or stem-2, stem-3 ... if a recording of that name is already there."""
        candidate, k = stem, 1
        while any((folder / f"{candidate}{ext}").exists() for ext in (".csv", ".json", ".bin")):
            k += 1
            candidate = f"{stem}-{k}"
        return candidate

    @property
    def stem(self) -> str:
        return self.csv_path.stem

    def _open(self) -> None:
        self._file = open(self.csv_path, "x", encoding="utf-8", newline="")
        header = COLUMNS if self.board_columns else REQUIRED
        self._file.write(",".join(header) + "\n")

    def append_board(self, seq: np.ndarray, t_us: np.ndarray, si: np.ndarray, labels) -> None:
        """Samples as the board sent them: t is board time from the first sample of the session."""
        if len(seq) == 0:
            return
        if self._t0_us is None:
            self._t0_us = int(t_us[0])
        t = (np.asarray(t_us, dtype=np.int64) - self._t0_us) / 1e6
        self._write(format_rows(t, si, labels, seq, t_us), len(seq))

    def append(self, t: np.ndarray, si: np.ndarray, labels) -> None:
        """Samples with their times in s (files without board columns)."""
        self._write(format_rows(t, si, labels), len(t))

    def _write(self, text: str, n: int) -> None:
        if n:
            self._guard(self._file.write, text)
            self.written += n

    def sync(self) -> int:
        """Flush and fsync: returns the number of samples durably saved."""
        if self._file is not None and self.saved < self.written:
            self._guard(self._file.flush)
            self._guard(os.fsync, self._file.fileno())
            self.saved = self.written
        return self.saved

    def write_meta(self, **updates) -> None:
        """Rewrite the sidecar atomically (a new file renamed over the old one)."""
        self.meta.update(updates)
        side = sidecar_path(self.csv_path)
        tmp = side.with_name(side.name + ".tmp")

        def write():
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.meta, f, indent=2, default=_jsonable)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, side)
        self._guard(write)

    def close(self) -> None:
        if self._file is not None:
            try:
                self.sync()
            finally:
                f, self._file = self._file, None
                try:
                    f.close()
                except OSError:
                    pass  # the data that could be saved is saved; the error was reported by sync

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except OSError as err:
            what = _DISK_ERRORS.get(err.errno, err.strerror or str(err))
            raise UserError(f"cannot write the recording {self.csv_path}: {what}; the {self.saved} samples "
                            "saved before stay loadable.") from None


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, _dt.datetime)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_recording(folder: str | Path, stem: str, t, si, labels, meta: dict) -> Path:
    """Write a whole recording at once (converters, tests): returns the CSV path."""
    writer = RecordingWriter(folder, stem, meta, board_columns=False)
    try:
        writer.append(np.asarray(t), np.asarray(si), labels)
    finally:
        writer.close()
    return writer.csv_path
