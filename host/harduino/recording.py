"""The recording format: one CSV of samples per session, a JSON sidecar, a raw serial log.

    <stem>.csv   t,ax,ay,az,gx,gy,gz,label,seq,t_us   (documented in docs/recording-format.md)
    <stem>.json  at least {"subject": ..., "rate_hz": ...}
    <stem>.bin   the exact bytes read from the port, starting with an info frame (optional)

`RecordingWriter` appends blocks of samples and makes them durable on
`sync()`; a process killed between syncs leaves at most one half-written last
line, which `load_recording` skips with a note. `load_recording` reads a file
any tool wrote in this format. `SessionRecorder` records what a running
`Reader` receives (the `harduino record` command and the dashboard drive it).
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import io
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .calibration import Calibration
from .errors import UserError
from .protocol import SAMPLE_DTYPE, SAMPLE_FRAME_LEN, Decoder

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
    calibration: Calibration | None = None  # how the board sat on the wearer (the sidecar's, or estimated)

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

    table = _cells(lines[1:], len(header), path)
    col = {name: i for i, name in enumerate(header)}

    def numbers(names, dtype):
        cells = table[:, [col[n] for n in names]]
        try:
            return cells.astype(dtype)
        except ValueError:
            for i, row in enumerate(cells):  # only on the error path: find the line and column to name
                for name, cell in zip(names, row):
                    try:
                        np.array(cell).astype(dtype)
                    except ValueError:
                        raise UserError(f"{path} line {i + 2}: {str(cell)!r} in column {name} is not a "
                                        f"{'whole ' if dtype is np.int64 else ''}number.") from None
            raise

    t = numbers(["t"], np.float64)[:, 0]
    si = numbers(SI_COLUMNS, np.float64)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(si))):
        i = int(np.flatnonzero(~(np.isfinite(t) & np.isfinite(si).all(axis=1)))[0])
        raise UserError(f"{path} line {i + 2} has a value that is not a finite number.")
    has_board = "seq" in col and "t_us" in col
    seq = numbers(["seq"], np.int64)[:, 0] if has_board else None
    t_us = numbers(["t_us"], np.int64)[:, 0] if has_board else None
    labels = np.char.strip(table[:, col["label"]])

    for note in notes:
        warnings.warn(note, RecordingNote, stacklevel=2)
    stored = meta.get("calibration")
    return Recording(path=path, subject=str(meta["subject"]), session=str(meta.get("session") or path.stem),
                     rate_hz=float(meta["rate_hz"]), t=t, si=si, labels=labels.astype(str), meta=meta,
                     seq=seq, t_us=t_us, notes=notes,
                     calibration=Calibration.from_dict(stored, sidecar_path(path)) if stored else None)


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
    """Who a recording is of, never blank: held-out evaluation splits on it."""
    subject = subject.strip()
    if not subject:
        raise UserError("a recording needs a subject: who is moving (a name or a number).")
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


def free_stem(folder: str | Path, stem: str) -> str:
    """The stem, or stem-2, stem-3 ... if a recording of that name is already in the folder."""
    candidate, k = stem, 1
    while any((Path(folder) / f"{candidate}{ext}").exists() for ext in (".csv", ".json", ".bin")):
        k += 1
        candidate = f"{stem}-{k}"
    return candidate


class RecordingWriter:
    """Appends samples to `<folder>/<stem>.csv` and keeps `<stem>.json` beside it.

    `append` buffers in the OS; `sync` flushes and fsyncs and returns how many
    samples are durably on disk. Any write error becomes a UserError that says
    how many samples were saved; what was written stays loadable.
    """

    def __init__(self, folder: str | Path, stem: str, meta: dict, board_columns: bool = True) -> None:
        folder = prepare_folder(folder)
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
        if self.csv_path.exists():
            raise UserError(f"{self.csv_path} already exists; recordings are never overwritten.")
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

    def sync(self) -> int:
        """Flush and fsync: returns the number of samples durably saved."""
        if self._file is not None and self.saved < self.written and not self.failed:
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
            if self._file is None:
                raise UserError(f"cannot create the recording {self.csv_path}: "
                                f"{_DISK_ERRORS.get(err.errno, err.strerror)}.") from None
            # Python drops the lines it was writing when a write fails: only what was synced is sure.
            self.failed, self.written = True, self.saved
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


def write_recording(folder: str | Path, stem: str, t, si, labels, meta: dict, decimals: int = 4) -> Path:
    """Write a whole recording at once (converters, tests): returns the CSV path."""
    writer = RecordingWriter(folder, free_stem(folder, stem), meta, board_columns=False)
    try:
        writer.append(np.asarray(t), np.asarray(si), labels, decimals)
    finally:
        writer.close()
    return writer.csv_path


def trim_raw_log(path: str | Path, last_seq: int, last_t_us: int) -> bool:
    """Cut a raw log after the sample frame of the last recorded sample, so a replay gives the recording.

    The reader logs every byte it read, a little past the moment recording
    stopped. The decoder says where each sample frame ends; the sample is found
    by its 16-bit sequence number and 32-bit board time, the last frame that
    matches. A log where it cannot be found is kept whole. The log is read a
    block at a time. Returns whether it was cut.
    """
    path = Path(path)
    target, cut, decoder = (last_seq & 0xFFFF, last_t_us & 0xFFFFFFFF), None, Decoder()
    with open(path, "rb") as f:
        while True:
            held, base = decoder.pending, decoder.pending_offset
            block = f.read(1 << 20)
            chunk = decoder.feed(block) if block else decoder.finish()
            if len(chunk):
                rows = np.frombuffer(held + block, np.uint8)[chunk.sample_ends[:, None] - base - SAMPLE_FRAME_LEN
                                                             + np.arange(SAMPLE_FRAME_LEN)]
                frames = rows.copy().view(SAMPLE_DTYPE)[:, 0]
                match = np.flatnonzero((frames["seq"] == target[0]) & (frames["t_us"] == target[1]))
                cut = int(chunk.sample_ends[match[-1]]) if match.size else cut
            if not block:
                break
    if cut is None:
        return False
    if cut < decoder.stats.bytes_in:
        with open(path, "r+b") as f:
            f.truncate(cut)
    return True


# ---------------------------------------------------------------- recording a live session

class SessionRecorder:
    """Appends what a running `Reader` receives to a new recording, durable at least once a second.

    Each sample gets the label that was current when it arrived (labels are
    switched by host time, so a key press between two polls lands on the right
    sample). `poll()` is called from any loop (the CLI's, a GUI timer); it
    returns the number of samples durably saved whenever it synced.
    """

    SYNC_EVERY_S = 0.5

    def __init__(self, reader, folder: str | Path, stem: str, subject: str, label: str = "",
                 labels: tuple[str, ...] = (), raw_log: str | Path | None = None, max_samples: int | None = None,
                 start_index: int = 0, extra_meta: dict | None = None) -> None:
        if reader.info is None:
            raise ValueError("the reader has no board info yet")
        self.reader = reader
        self.labels = tuple(check_label(x) for x in labels)
        self._changes_t = [-np.inf]
        self._changes = [check_label(label)]
        self.raw_log = Path(raw_log) if raw_log is not None else None
        self.max_samples = max_samples
        self.index = start_index
        self.dropped = 0  # samples the ring buffer overwrote before we read them
        self.reported = 0  # the last saved count shown to the user
        self.started = _dt.datetime.now().astimezone()
        self._next_sync = 0.0
        self._last = None  # (seq, t_us) of the last sample written
        meta = {
            "subject": subject,
            "rate_hz": float(reader.info.rate_hz),
            "start_time": self.started.isoformat(timespec="seconds"),
            "label": label,
            "labels": list(self.labels) or ([label] if label else []),
            "port": reader.url,
            "board": reader.info.to_dict(),
            "raw_log": self.raw_log.name if self.raw_log else None,
            "units": {"t": "s", "ax,ay,az": "m/s^2", "gx,gy,gz": "rad/s", "t_us": "board microseconds"},
            **(extra_meta or {}),
        }
        self.writer = RecordingWriter(folder, stem, meta)

    @property
    def label(self) -> str:
        return self._changes[-1]

    @property
    def csv_path(self) -> Path:
        return self.writer.csv_path

    @property
    def done(self) -> bool:
        return self.max_samples is not None and self.writer.written >= self.max_samples

    def set_label(self, label: str, at: float | None = None) -> None:
        """From host time `at` (time.monotonic(), default now) on, samples get this label."""
        self._changes_t.append(time.monotonic() if at is None else at)
        self._changes.append(check_label(label))

    def labels_for(self, host_t: np.ndarray) -> np.ndarray:
        which = np.searchsorted(np.asarray(self._changes_t), host_t, side="right") - 1
        return np.asarray(self._changes, dtype=str)[which]

    def poll(self, now: float | None = None) -> int | None:
        """Write the samples that came since the last poll; sync when one is due (returns saved N then)."""
        block = self.reader.buffer.since(self.index)
        self.dropped += block.start - self.index
        take = len(block) if self.max_samples is None else max(0, min(len(block), self.max_samples - self.writer.written))
        if take:
            self.writer.append_board(block.seq[:take], block.t_us[:take], block.si[:take],
                                     self.labels_for(block.host_t[:take]))
            self._last = (int(block.seq[take - 1]), int(block.t_us[take - 1]))
        self.index = block.start + len(block)
        now = time.monotonic() if now is None else now
        if now >= self._next_sync and self.writer.saved < self.writer.written:
            self._next_sync = now + self.SYNC_EVERY_S
            return self.writer.sync()
        return None

    def close(self, stats: dict | None = None) -> Path:
        """Last sync, link statistics into the sidecar, and the raw log cut at the last recorded sample.

        Call it after the reader has stopped, so the raw log is complete.
        """
        try:
            self.writer.sync()
            ended = _dt.datetime.now().astimezone()
            self.writer.write_meta(samples=self.writer.written, dropped_by_recorder=self.dropped,
                                   end_time=ended.isoformat(timespec="seconds"),
                                   wall_seconds=round((ended - self.started).total_seconds(), 3),
                                   link=stats or {})
        finally:
            self.writer.close()
        if self.raw_log is not None and self.raw_log.exists() and self._last is not None:
            trim_raw_log(self.raw_log, *self._last)
        return self.writer.csv_path
