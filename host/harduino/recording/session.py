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
import time
from pathlib import Path

import numpy as np

from .. import calibration
from ..protocol import Decoder
from .files import recording_stem
from .writer import RecordingWriter, check_label, claim_stem

UNITS = {"t": "s", "ax,ay,az": "m/s^2", "gx,gy,gz": "rad/s", "t_us": "board microseconds"}


class StillWatch:
    """The calibration of a recording's samples as they come: `calibration.estimate` on them all, in bounded memory.

    Samples are kept until the first still stretch has ended; while none has
    begun, only the last few seconds (whole 0.5 s blocks, so the blocks line up
    with the file's) are kept. They are looked at once a second of samples.
    """

    def __init__(self, rate_hz: float) -> None:
        self.rate_hz = rate_hz
        self.per = calibration.still_blocks(np.zeros((0, 6)), rate_hz)[1]
        self.keep = (int(np.ceil(calibration.STILL_S * rate_hz / self.per)) + 1) * self.per
        self._t, self._si, self._new = [], [], 0
        self.found: calibration.Calibration | None = None
        self.done = False

    def add(self, t: np.ndarray, si: np.ndarray) -> None:
        if self.done:
            return
        self._t.append(t)
        self._si.append(si)
        self._new += len(t)
        if self._new < 2 * self.per:
            return
        self._new = 0
        t, si = self._joined()
        whole = len(si) // self.per * self.per
        still = calibration.find_still(si[:whole], self.rate_hz)
        if still is not None and still[1] < whole:  # a stretch that has ended: its estimate cannot change
            self.finish()
        elif still is None and whole > self.keep:
            self._t, self._si = [t[whole - self.keep:]], [si[whole - self.keep:]]

    def _joined(self) -> tuple[np.ndarray, np.ndarray]:
        t, si = np.concatenate(self._t), np.concatenate(self._si)
        self._t, self._si = [t], [si]
        return t, si

    def finish(self) -> calibration.Calibration | None:
        if not self.done:
            t, si = self._joined() if self._t else (np.zeros(0), np.zeros((0, 6)))
            self.found = calibration.estimate(t, si, self.rate_hz) if len(t) else None
            self.done, self._t, self._si = True, [], []
        return self.found


class _Part:
    """One recording of a session: its writer, its board, and what the raw log split needs."""

    def __init__(self, writer: RecordingWriter, info, raw_log: Path | None, take_calibration: bool) -> None:
        self.writer, self.info, self.raw_log = writer, info, raw_log
        self.started = _dt.datetime.now().astimezone()
        self.finished = False  # its sidecar has its final fields, its file is closed
        self.first: int | None = None  # buffer indices of its first and last samples
        self.last: int | None = None
        self.watch = StillWatch(float(info.rate_hz)) if take_calibration else None

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
        now = time.monotonic() if now is None else now
        if now >= self._next_sync and self.writer.saved < self.writer.written:
            self._next_sync = now + self.SYNC_EVERY_S
            self.writer.sync()
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
            found = part.watch.finish() if part.watch is not None else None
            ended = _dt.datetime.now().astimezone()
            part.writer.write_meta(samples=part.writer.written, dropped_by_recorder=self.dropped,
                                   end_time=ended.isoformat(timespec="seconds"),
                                   wall_seconds=round((ended - part.started).total_seconds(), 3),
                                   **({"link": stats} if stats is not None else {}),
                                   **({"calibration": found.to_dict()} if found else {}), **meta)
        finally:
            part.writer.close()

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


def split_raw_log(path: str | Path, parts: list[tuple[Path | None, int | None, int | None]]) -> None:
    """Cut a session's raw log into one log per recording, so each replays to its recording.

    `parts` are (log path, first and last recorded sample), samples counted
    from the log's first: the first path is `path` itself. The log holds the
    board's bytes from an info frame on, for every connection, so its samples
    are the reader's, one for one (samples a board sends before its info frame
    are neither logged nor kept). The reader logs a little past the moment
    recording stopped. Part k > 0 starts at the board's info frame before its
    first sample; each ends after its last sample, or where the next begins.
    The decoder says where each frame lies; the log is read a block at a time.
    """
    path = Path(path)
    wanted = np.array([i if i is not None else -1 for _, first, last in parts for i in (first, last)], np.int64)
    ends = np.full(len(wanted), -1, dtype=np.int64)
    info_starts, decoder, count = [], Decoder(), 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            chunk = decoder.feed(block) if block else decoder.finish()
            info_starts += [start for start, _ in chunk.info_spans]
            here = (wanted >= count) & (wanted < count + len(chunk))
            if here.any():
                ends[here] = chunk.sample_ends[wanted[here] - count]
            count += len(chunk)
            if not block:
                break
    size, info_starts = decoder.stats.bytes_in, np.array(info_starts, dtype=np.int64)
    spans = []
    for k in range(len(parts)):
        first_end, last_end = int(ends[2 * k]), int(ends[2 * k + 1])
        start = 0
        if k:
            before = info_starts[info_starts < first_end] if first_end >= 0 else info_starts[:0]
            start = int(before[-1]) if before.size else spans[-1][1]
        spans.append([start, last_end if last_end >= 0 else None])
    for k in range(len(parts)):  # a part whose last sample was not found ends where the next begins
        if spans[k][1] is None:
            spans[k][1] = spans[k + 1][0] if k + 1 < len(parts) else size
    with open(path, "rb") as src:
        for (log, _, _), (start, end) in list(zip(parts, spans))[1:]:
            if log is None:
                continue
            src.seek(start)
            with open(log, "wb") as dst:  # claimed by the session: empty and its own
                left = max(0, end - start)
                while left:
                    data = src.read(min(left, 1 << 20))
                    if not data:
                        break
                    dst.write(data)
                    left -= len(data)
    if spans and spans[0][1] < size:
        with open(path, "r+b") as f:
            f.truncate(spans[0][1])
