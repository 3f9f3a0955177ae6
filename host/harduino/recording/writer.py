"""The recording format, write side: CSV rows appended crash-safely, the sidecar replaced atomically.

`RecordingWriter` appends blocks of samples and makes them durable on `sync()`.
Names are taken, never assumed: `claim_stem` creates a recording's files
exclusively (O_EXCL), so two recorders started in the same second into one
folder get two names and neither touches the other's files.
"""

from __future__ import annotations

import datetime as _dt
import errno
import io
import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from .files import COLUMNS, FORMAT_VERSION, REQUIRED, sidecar_path

_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EFBIG: "the file grew past the size limit", errno.EACCES: "permission denied",
                errno.EROFS: "the file system is read-only", errno.EIO: "an I/O error"}


def disk_error(err: OSError) -> str:
    """What went wrong with a write, in words."""
    return _DISK_ERRORS.get(err.errno, err.strerror or str(err))


def format_rows(t: np.ndarray, si: np.ndarray, labels, seq=None, t_us=None, decimals: int = 4) -> str:
    """CSV lines for a block of samples: t and SI values to `decimals` places, trailing zeros dropped.

    Four decimals keep the MPU-6050's resolution at its most sensitive ranges
    (0.0006 m/s² and 0.00013 rad/s per count): raw counts round-trip exactly.
    Board time is exact in t_us.
    """
    n = len(t)
    if n == 0:
        return ""
    labels = np.broadcast_to(np.asarray(labels, dtype=str), (n,))
    columns = [fixed(t, decimals)] + [fixed(si[:, i], decimals) for i in range(6)] + [labels]
    if seq is not None:
        columns += [np.char.mod("%d", np.asarray(seq, dtype=np.int64)), np.char.mod("%d", np.asarray(t_us, np.int64))]
    out = io.StringIO()
    for line in zip(*columns):  # the writer's side: a few blocks a second
        out.write(",".join(line))
        out.write("\n")
    return out.getvalue()


def fixed(values, decimals: int) -> np.ndarray:
    """Numbers as text with at most `decimals` places: 0.0200 -> 0.02, 3.0000 -> 3, -0.0000 -> 0."""
    text = np.char.rstrip(np.char.rstrip(np.char.mod(f"%.{decimals}f", np.asarray(values, dtype=np.float64)), "0"), ".")
    return np.where(text == "-0", "0", text)


def check_label(label: str) -> str:
    """A label as the CSV stores it: no commas, quotes or line breaks."""
    if re.search(r"[,\"\r\n]", label) or label != label.strip():
        raise UserError(f"label {label!r} cannot be stored: use letters, digits, '-' or '_' (no commas or quotes).")
    return label


def check_subject(subject: str) -> str:
    """Who a recording is of, never blank: held-out evaluation splits on it, and file names begin with it."""
    subject = subject.strip()
    if not subject:
        raise UserError("a recording needs a subject: who is moving (a name or a number).")
    if not re.search(r"[A-Za-z0-9]", subject):
        raise UserError(f"subject {subject!r} has no letter or digit to name the files by; "
                        "give a name or a number.")
    return subject


def prepare_folder(folder: str | Path) -> Path:
    """The folder to record into, created if need be; UserError if that cannot be."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"cannot record into {folder}: it is a file, not a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the folder {folder}: {err.strerror}.") from None
    return folder


RECORDING_SUFFIXES = (".csv", ".json", ".bin")
PREDICTIONS_SUFFIX = ".pred.csv"  # the board's own predictions, made only when it sends any


def claim_stem(folder: str | Path, stem: str, suffixes=(".csv", ".json")) -> str:
    """The stem, or stem-2, stem-3 ...: the first with no recording file, its `suffixes` created here (empty).

    Each file is created exclusively (O_EXCL), so a name is never assumed free:
    of two recorders starting at once, each gets a name of its own, and only
    the one that made a file ever writes or removes it.
    """
    folder = Path(folder)
    k = 1
    while True:
        candidate = stem if k == 1 else f"{stem}-{k}"
        k += 1
        if any((folder / f"{candidate}{ext}").exists() for ext in RECORDING_SUFFIXES + (PREDICTIONS_SUFFIX,)):
            continue
        made = []
        try:
            for ext in suffixes:
                path = folder / f"{candidate}{ext}"
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                made.append(path)
            return candidate
        except FileExistsError:
            release(made)  # another recorder took it between the look and the claim: the next name
        except OSError as err:
            release(made)
            raise UserError(f"cannot create the recording {folder / candidate}: "
                            f"{_DISK_ERRORS.get(err.errno, err.strerror)}.") from None


def release(paths) -> None:
    """Remove files this process claimed and left empty (a recording that never started)."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


class SyncedFile:
    """Rows appended to a text file and made durable by `sync`; the subclass's `_guard` words a failed write."""

    _file = None
    written = 0     # rows handed to the OS
    saved = 0       # rows known to be on disk
    failed = False  # a write failed: nothing more is written or counted as saved

    def _guard(self, fn, *args):
        raise NotImplementedError

    def sync(self) -> int:
        """Flush and fsync: returns the number of rows durably saved."""
        if self._file is not None and self.saved < self.written and not self.failed:
            self._guard(self._file.flush)
            self._guard(os.fsync, self._file.fileno())
            self.saved = self.written
        return self.saved

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


class RecordingWriter(SyncedFile):
    """Appends samples to `<folder>/<stem>.csv` and keeps `<stem>.json` beside it.

    `append` buffers in the OS; `sync` flushes and fsyncs and returns how many
    samples are durably on disk. Any write error becomes a UserError that says
    how many samples were saved; what was written stays loadable.
    """

    def __init__(self, folder: str | Path, stem: str, meta: dict, board_columns: bool = True,
                 claimed: bool = False) -> None:
        folder = prepare_folder(folder)
        if not claimed:  # else the caller claimed `stem` (claim_stem) and its files are empty and ours
            stem = claim_stem(folder, stem)
        self.csv_path = folder / f"{stem}.csv"
        self.meta = {"format_version": FORMAT_VERSION, "session": stem, **meta}
        self.board_columns = board_columns
        self.written = 0  # samples handed to the OS
        self.saved = 0    # samples known to be on disk
        self.failed = False  # a write failed: nothing more is written or counted as saved
        self._t0_us: int | None = None
        self._file = None
        self._guard(self._open)
        self.write_meta()

    @property
    def stem(self) -> str:
        return self.csv_path.stem

    def _open(self) -> None:
        self._file = open(self.csv_path, "w", encoding="utf-8", newline="")  # claimed: empty and ours
        header = COLUMNS if self.board_columns else REQUIRED
        self._file.write(",".join(header) + "\n")

    def append_board(self, seq: np.ndarray, t_us: np.ndarray, si: np.ndarray, labels) -> np.ndarray:
        """Samples as the board sent them: t is board time from the file's first sample; returns t."""
        if len(seq) == 0:
            return np.zeros(0)
        if self._t0_us is None:
            self._t0_us = int(t_us[0])
        t = (np.asarray(t_us, dtype=np.int64) - self._t0_us) / 1e6
        self._write(format_rows(t, si, labels, seq, t_us), len(seq))
        return t

    def append(self, t: np.ndarray, si: np.ndarray, labels, decimals: int = 4) -> None:
        """Samples with their times in s (files without board columns)."""
        self._write(format_rows(t, si, labels, decimals=decimals), len(t))

    def _write(self, text: str, n: int) -> None:
        if n:
            if self.failed:  # a failed write dropped buffered lines: more would leave a hole
                raise UserError(f"cannot write the recording {self.csv_path}: an earlier write failed; the "
                                f"{self.saved} samples saved before stay loadable.")
            self._guard(self._file.write, text)
            self.written += n

    def write_meta(self, **updates) -> None:
        """Rewrite the sidecar atomically (a new file renamed over the old one)."""
        self.meta.update(updates)
        side = sidecar_path(self.csv_path)
        tmp = side.with_name(side.name + ".tmp")

        def write():
            try:
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(self.meta, f, indent=2, default=_jsonable)
                    f.write("\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, side)
            except OSError:
                tmp.unlink(missing_ok=True)  # the sidecar before stays; leave no half-written copy beside it
                raise
        self._guard(write)

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except OSError as err:
            if self._file is None:
                raise UserError(f"cannot create the recording {self.csv_path}: "
                                f"{_DISK_ERRORS.get(err.errno, err.strerror)}.") from None
            # Python drops the lines it was writing when a write fails: only what was synced is sure.
            self.failed, self.written = True, self.saved
            what = disk_error(err)
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


def write_recording(folder: str | Path, stem: str, t, si, labels, meta: dict, decimals: int = 4) -> Path:
    """Write a whole recording at once (converters, tests): returns the CSV path."""
    writer = RecordingWriter(folder, stem, meta, board_columns=False)
    try:
        writer.append(np.asarray(t), np.asarray(si), labels, decimals)
    finally:
        writer.close()
    return writer.csv_path
