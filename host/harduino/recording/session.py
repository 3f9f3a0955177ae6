"""A recording session: what a running `Reader` receives, into recordings, for the CLI and the dashboard alike.

A recording never mixes two boards or two rates: when the board's info
(sensor, scales, rate, firmware) changes after a reconnect or a reset, the
session goes on in a new recording, same subject and label, and each sidecar
names the file before and after it. At the end the session's raw log is cut
into one log per recording, each from its board's info frame to its last
recorded sample, and each sidecar gets the calibration of its own samples.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from pathlib import Path

import numpy as np

from .files import recording_stem
from .predictions import PredictionWriter
from .rawlog import split_raw_log
from .stillwatch import StillWatch
from ..errors import UserError
from .writer import RECORDING_SUFFIXES, RecordingWriter, check_label, claim_stem, prepare_folder, release

UNITS = {"t": "s", "ax,ay,az": "m/s^2", "gx,gy,gz": "rad/s", "t_us": "board microseconds"}


class _Part:
    """One recording of a session: its writer, its board, and what the raw log split needs."""

    def __init__(self, writer: RecordingWriter, info, raw_log: Path | None, take_calibration: bool) -> None:
        self.writer, self.info, self.raw_log = writer, info, raw_log
        self.started = _dt.datetime.now().astimezone()
        self.finished = False  # its sidecar has its final fields, its file is closed
        self.first: int | None = None  # buffer indices of its first and last samples
        self.last: int | None = None
        self.watch = StillWatch(float(info.rate_hz)) if take_calibration else None
        self.predictions: PredictionWriter | None = None  # made with the board's first prediction frame

    @property
    def seconds(self) -> float:
        return self.writer.written / float(self.info.rate_hz)


class SessionRecorder:
    """Appends what a running `Reader` receives to new recordings, durable at least once a second.

    Each sample gets the label that was current when it arrived (labels are
    switched by host time, so a key press between two polls lands on the right
    sample). `poll()` is called from any loop (the CLI's, a GUI timer); it
    returns the number of samples durably saved whenever it synced. `messages`
    holds what the user should be told (a new recording after a board change):
    the caller shows and clears it.
    """

    SYNC_EVERY_S = 0.5

    def __init__(self, reader, folder: str | Path, stem: str, subject: str, label: str = "",
                 labels: tuple[str, ...] = (), raw_log: str | Path | None = None, duration_s: float | None = None,
                 start_index: int = 0, extra_meta: dict | None = None, take_calibration: bool = True,
                 claimed: bool = False) -> None:
        if reader.info is None:
            raise ValueError("the reader has no board info yet")
        self.reader = reader
        self.folder, self.subject = Path(folder), subject
        self.labels = tuple(check_label(x) for x in labels)
        self._changes_t = [-np.inf]
        self._changes = [check_label(label)]
        self.raw_log = Path(raw_log) if raw_log is not None else None
        self.duration_s = duration_s
        self.index = self.start_index = start_index
        self.dropped = 0  # samples the ring buffer overwrote before we read them
        self.reported = 0  # the last saved count shown to the user
        self.messages: list[str] = []
        self.take_calibration = take_calibration
        self._predicted = 0  # the reader's prediction log index read up to (those before name older samples)
        self._next_sync = 0.0
        self._extra = extra_meta or {}
        boards = reader.boards  # (buffer index, info) at every change of board info
        self._seen = sum(1 for index, _ in boards if index <= start_index)
        info = boards[self._seen - 1][1] if self._seen else reader.info
        self.parts = [self._new_part(stem, info, self.raw_log, claimed)]

    def _new_part(self, stem: str, info, raw_log: Path | None, claimed: bool, after: _Part | None = None) -> _Part:
        meta = {
            "subject": self.subject,
            "rate_hz": float(info.rate_hz),
            "start_time": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "label": self.label,
            "labels": list(self.labels) or ([self.label] if self.label else []),
            "port": self.reader.url,
            "board": info.to_dict(),
            "raw_log": raw_log.name if raw_log else None,
            "units": UNITS,
            **({"continues": after.writer.csv_path.name} if after else {}),
            **self._extra,
        }
        return _Part(RecordingWriter(self.folder, stem, meta, claimed=claimed), info, raw_log, self.take_calibration)

    @property
    def writer(self) -> RecordingWriter:
        """The recording being written now."""
        return self.parts[-1].writer

    @property
    def written(self) -> int:
        return sum(p.writer.written for p in self.parts)

    @property
    def saved(self) -> int:
        return sum(p.writer.saved for p in self.parts)

    @property
    def label(self) -> str:
        return self._changes[-1]

    @property
    def csv_path(self) -> Path:
        return self.writer.csv_path

    @property
    def done(self) -> bool:
        return self.duration_s is not None and sum(p.seconds for p in self.parts) >= self.duration_s - 1e-9

    def set_label(self, label: str, at: float | None = None) -> None:
        """From host time `at` (time.monotonic(), default now) on, samples get this label."""
        self._changes_t.append(time.monotonic() if at is None else at)
        self._changes.append(check_label(label))

    def labels_for(self, host_t: np.ndarray) -> np.ndarray:
        which = np.searchsorted(np.asarray(self._changes_t), host_t, side="right") - 1
        return np.asarray(self._changes, dtype=str)[which]

    def poll(self, now: float | None = None) -> int | None:
        """Write the samples that came since the last poll; sync when one is due (returns saved N then)."""
        predictions = self.reader.predictions.since(self._predicted)  # first: their samples are in the block
        block = self.reader.buffer.since(self.index)
        self.dropped += block.start - self.index
        boards, pos = self.reader.boards, block.start
        while pos < block.end and not self.done:
            info = self.parts[-1].info
            while self._seen < len(boards) and boards[self._seen][0] <= pos:
                info = boards[self._seen][1]
                self._seen += 1
            if info != self.parts[-1].info:
                self._next_board(info)
            stop = min(block.end, boards[self._seen][0]) if self._seen < len(boards) else block.end
            self._write(block, pos - block.start, stop - block.start)
            pos = stop
        self.index = block.end
        self._write_predictions(predictions)
        now = time.monotonic() if now is None else now
        if now >= self._next_sync and self.writer.saved < self.writer.written:
            self._next_sync = now + self.SYNC_EVERY_S
            self.writer.sync()
            if self.parts[-1].predictions is not None:
                self.parts[-1].predictions.sync()
            return self.saved
        return None

    def _write(self, block, a: int, b: int) -> None:
        part = self.parts[-1]
        if self.duration_s is not None:
            left = self.duration_s - sum(p.seconds for p in self.parts)
            b = a + max(0, min(b - a, int(round(left * float(part.info.rate_hz)))))
        if b <= a:
            return
        seq, t_us, si = block.seq[a:b], block.t_us[a:b], block.si[a:b]
        t = part.writer.append_board(seq, t_us, si, self.labels_for(block.host_t[a:b]))
        part.first = block.start + a if part.first is None else part.first
        part.last = block.start + b - 1
        if part.watch is not None:
            part.watch.add(t, si)

    def _write_predictions(self, predictions) -> None:
        """The board's predictions whose window ends on a sample of an open recording, into its .pred.csv."""
        self._predicted = predictions.end
        for part in self.parts:
            if part.finished or part.first is None:
                continue
            keep = (predictions.index >= part.first) & (predictions.index <= part.last)
            if not keep.any():
                continue
            if part.predictions is None:
                part.predictions = PredictionWriter(part.writer.csv_path, self.reader.predictions.model)
                part.writer.write_meta(board_predictions=part.predictions.meta())
            part.predictions.append(predictions, keep)

    def _next_board(self, info) -> None:
        """Another board (or the same one at another rate) from here on: finish this recording, start the next."""
        old = self.parts[-1]
        if not old.writer.written:  # nothing of the board before: this recording is the new board's
            old.info = info
            old.watch = StillWatch(float(info.rate_hz)) if self.take_calibration else None
            old.writer.write_meta(rate_hz=float(info.rate_hz), board=info.to_dict())
            return
        old.writer.sync()
        stem = recording_stem(self.subject, self.label or "session", _dt.datetime.now().astimezone())
        suffixes = (".csv", ".json", ".bin") if self.raw_log is not None else (".csv", ".json")
        stem = claim_stem(self.folder, stem, suffixes)
        raw_log = self.folder / f"{stem}.bin" if self.raw_log is not None else None
        part = self._new_part(stem, info, raw_log, claimed=True, after=old)
        self._finish(old, continued_in=part.writer.csv_path.name)
        self.parts.append(part)
        was, now = old.info, info
        self.messages.append(f"the board changed ({was.sensor} at {was.rate_hz} Hz, now {now.sensor} at "
                             f"{now.rate_hz} Hz): the recording continues in {part.writer.csv_path.name}")

    def _finish(self, part: _Part, stats: dict | None = None, **meta) -> None:
        """Last sync, the final sidecar (samples, times, calibration), the file closed."""
        part.finished = True
        try:
            part.writer.sync()
            if part.predictions is not None:
                part.predictions.close()
                meta["board_predictions"] = part.predictions.meta()
            found = part.watch.finish() if part.watch is not None else None
            ended = _dt.datetime.now().astimezone()
            part.writer.write_meta(samples=part.writer.written, dropped_by_recorder=self.dropped,
                                   end_time=ended.isoformat(timespec="seconds"),
                                   wall_seconds=round((ended - part.started).total_seconds(), 3),
                                   **({"link": stats} if stats is not None else {}),
                                   **({"calibration": found.to_dict()} if found else {}), **meta)
        finally:
            part.writer.close()
            if part.predictions is not None:
                part.predictions.close()

    def close(self, stats: dict | None = None) -> Path:
        """Last sync, link statistics and calibrations into the sidecars, and the raw log cut into its parts.

        Call it after the reader has stopped, so the raw log is complete. Returns the last CSV path.
        """
        try:
            for part in self.parts:
                if part.finished:  # ended by a change of board: the session's link statistics still apply
                    part.writer.write_meta(link=stats or {})
                else:
                    self._finish(part, stats or {})
        finally:
            for part in self.parts:
                part.writer.close()
        if self.raw_log is not None and self.raw_log.exists():
            origin = self.start_index  # the log's first sample
            split_raw_log(self.raw_log, [(p.raw_log, *(None if i is None else i - origin for i in (p.first, p.last)))
                                         for p in self.parts])
        return self.writer.csv_path


class RecordingSession:
    """One recording session of a running `Reader`, for `harduino record` and the dashboard's Record button alike.

    RecordingSession(...) takes the names (the CSV, sidecar and raw log, exclusively);
    `start(reader)` asks the reader for a copy of the board's bytes from now on and
    starts recording with its first sample; `poll()` writes and syncs what came;
    `finish()` closes everything and says what became of it: the files, the
    samples saved, and the first thing that went wrong (the recording's, the raw
    log's or the reader's), in one sentence. `set_label` and `take_messages` may
    be called from another thread than the polling one, and never wait on a
    write: their lock is held for a list operation, never across an fsync.
    """

    def __init__(self, folder: str | Path, subject: str, label: str = "", labels: tuple[str, ...] = (), *,
                 duration_s: float | None = None, take_calibration: bool = True) -> None:
        self.folder, self.subject = prepare_folder(folder), subject
        self._label, self.labels = check_label(label), tuple(check_label(x) for x in labels)
        self.duration_s, self.take_calibration = duration_s, take_calibration
        stem = recording_stem(subject, self._label or "session", _dt.datetime.now().astimezone())
        self.stem = claim_stem(self.folder, stem, RECORDING_SUFFIXES)
        self.raw_log = self.folder / f"{self.stem}.bin"
        self.recorder: SessionRecorder | None = None
        self.reader = None
        self.error: str | None = None
        self._lock = threading.Lock()  # the label changes and messages only: never held across a write
        self._labels_pending: list[tuple[float, str]] = []
        self._messages: list[str] = []

    @property
    def csv_path(self) -> Path:
        return self.folder / f"{self.stem}.csv"

    def start(self, reader) -> None:
        """Record what `reader` receives from now on (waiting, if need be, for the board to say who it is).

        A reader not started yet (`harduino record`) is started here, once its raw copy
        is on: then the recording holds every sample from the board's first.
        """
        copying = False
        try:
            start = reader.start_raw_copy(self.raw_log)
            copying = True
            if reader.ident is None:
                reader.start()
            reader.wait_for_info()
            self.recorder = SessionRecorder(reader, self.folder, self.stem, self.subject, self._label, self.labels,
                                            raw_log=self.raw_log, duration_s=self.duration_s, start_index=start,
                                            take_calibration=self.take_calibration, claimed=True)
        except BaseException:
            if copying:
                reader.stop_raw_copy()
            release([self.folder / f"{self.stem}{ext}" for ext in RECORDING_SUFFIXES])  # nothing recorded
            raise
        self.reader = reader

    def set_label(self, label: str) -> None:
        """From now on, samples get this label (from any thread; applied at the next poll, by arrival time)."""
        label = check_label(label)
        with self._lock:
            self._labels_pending.append((time.monotonic(), label))

    def take_messages(self) -> list[str]:
        """What the user must be told since the last call (a new file after a board change)."""
        with self._lock:
            messages, self._messages = self._messages, []
        return messages

    @property
    def written(self) -> int:
        return self.recorder.written if self.recorder is not None else 0

    @property
    def saved(self) -> int:
        return self.recorder.saved if self.recorder is not None else 0

    @property
    def label(self) -> str:
        """The label samples get now (a change waiting for the next poll included)."""
        with self._lock:
            if self._labels_pending:
                return self._labels_pending[-1][1]
        return self.recorder.label if self.recorder is not None else self._label

    @property
    def done(self) -> bool:
        """--duration is reached, or the stream ended (a replay played out, the reader gave up) and all is written."""
        rec, reader = self.recorder, self.reader
        return rec.done or (reader.finished.is_set() and rec.index >= reader.buffer.total)

    def poll(self) -> int | None:
        """Write what came since the last poll; the saved count when it synced. UserError (kept in `error`) if not."""
        try:
            return self._poll()
        except UserError as err:
            self.error = self.error or str(err)
            raise

    def _poll(self) -> int | None:
        with self._lock:
            changes, self._labels_pending = self._labels_pending, []
        for at, label in changes:
            self.recorder.set_label(label, at)
        saved = self.recorder.poll()
        moved = self.recorder.messages
        if moved:
            self.recorder.messages = []
            with self._lock:
                self._messages += moved
        failed = self.reader.raw_copy_error or self.reader.error
        if failed:
            raise UserError(failed)
        return saved

    def finish(self) -> Path | None:
        """Last poll, the raw copy stopped, the sidecars' last fields, the raw log cut; returns the last CSV.

        Afterwards `error` holds the first thing that went wrong, in one sentence
        that says what was kept, and `files` names every recording made.
        """
        reader, path = self.reader, None
        if self.error is None:
            try:
                self.poll()  # what arrived while stopping
            except UserError:
                pass  # in `error`
        copy_error = reader.stop_raw_copy()  # after the last poll: the copy holds every recorded sample
        try:
            path = self.recorder.close(reader.stats().to_dict())
        except (UserError, OSError) as err:
            self.error = self.error or str(err)
        self.error = self.error or copy_error or reader.error
        if self.error and not self.error.endswith("stay loadable."):
            kept = f"the {self.saved} samples saved are in {self.files}" if self.saved else "nothing was recorded"
            self.error = f"{self.error.rstrip('.')}; {kept}."
        return path

    @property
    def files(self) -> str:
        return ", ".join(str(p.writer.csv_path) for p in self.recorder.parts)
