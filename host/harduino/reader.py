"""Acquisition: a reader thread turns a port's bytes into timestamped SI samples in a ring buffer.

    port (any URL) ──read──► Decoder ──► SI via the info frame's scale ──► SampleBuffer
                      └────► raw log (the board's own bytes, from its info frame, or start_raw_copy, on)

Consumers ask the buffer (harduino.ringbuffer) for blocks of copies.
The thread reads at most once per dashboard frame (READ_INTERVAL_S) and
otherwise blocks in `read()` with a timeout (no polling), survives a port that
disappears by reopening it (by its stable id where there is one), and keeps
link statistics, including how fast the board's clock runs against the host's.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import serial

from . import protocol, transport
from .errors import UserError
from .protocol import BoardInfo
from .ringbuffer import Block, SampleBuffer

__all__ = ["INFO_TIMEOUT_S", "READ_INTERVAL_S", "Block", "LinkStats", "Reader", "SampleBuffer"]


INFO_TIMEOUT_S = 5.0  # a board answers `info` within milliseconds; a silent port is not a board
# Read at most once a dashboard frame (33 fps: the dashboard draws when samples come, so reads
# at 30 a second would show a little under 30 fps). A wake-up after sleeping costs the same few
# hundred µs of cold-cache work whether it brings one frame or ten, so at 100 Hz reading each
# frame as it comes would cost 5x the CPU for latency nobody sees. Slower streams wait not at all.
READ_INTERVAL_S = 1 / 33

# ---------------------------------------------------------------- link statistics

@dataclass
class LinkStats:
    port: str
    connected: bool
    rate_hz: float               # samples received per board second, recently
    samples: int                 # samples in the buffer, ever
    lost: int                    # sequence numbers that never arrived
    crc_errors: int
    resets: int                  # board restarts seen
    reconnects: int              # times the port disappeared and came back
    bytes_per_s: float
    since_last_frame_s: float | None
    drift_ppm: float | None      # board clock against host clock (+: the board's runs fast)
    bytes: int = 0
    malformed: int = 0
    note: str = ""               # what is going on, when something is

    def line(self) -> str:
        """One human line, the `harduino stream` status line."""
        state = "connected" if self.connected else "ended" if self.note == "end of stream" else "DISCONNECTED"
        drift = "n/a" if self.drift_ppm is None else f"{self.drift_ppm:+.0f} ppm"
        last = "n/a" if self.since_last_frame_s is None else f"{self.since_last_frame_s:.2f} s"
        text = (f"{self.port}: {state}, {self.rate_hz:.1f} Hz, {self.samples} samples, {self.lost} lost, "
                f"{self.crc_errors} crc errors, {self.resets} resets, {self.reconnects} reconnects, "
                f"{self.bytes_per_s:.0f} B/s, last frame {last} ago, drift {drift}")
        return f"{text} ({self.note})" if self.note else text

    def to_dict(self) -> dict:
        return asdict(self)


_RATE_WINDOW_S = 2.0      # bytes/s and sample rate are measured over about this much
_DRIFT_MIN_SPAN_S = 2.0   # drift needs this much board time before it means anything
_DRIFT_POINTS = 600       # one point per board second: ten minutes
READ_MAX = 1 << 16        # bytes one read takes at most: a replay at full speed comes a block at a time
_REOPEN_EVERY_S = 0.5


class Reader(threading.Thread):
    """Reads a port in the background into `buffer`; see the module docstring."""

    def __init__(self, url: str, *, capacity: int = 1 << 16, raw_log: str | Path | None = None,
                 read_timeout: float = 0.1, min_interval: float = READ_INTERVAL_S) -> None:
        super().__init__(name=f"reader {url}", daemon=True)
        self.url = url
        self.buffer = SampleBuffer(capacity)
        self.info: BoardInfo | None = None
        # (buffer index, info) at each change of the board's info: a recording splits there (one board, one rate).
        self.boards: list[tuple[int, BoardInfo]] = []
        self.error: str | None = None
        self.finished = threading.Event()
        self.raw_log = Path(raw_log) if raw_log is not None else None
        self._read_timeout = read_timeout
        # Wake at most once per min_interval: see READ_INTERVAL_S.
        self._min_interval = min_interval
        self._last_read = 0.0
        self._stop_event = threading.Event()
        self._port: serial.SerialBase | None = None
        self._decoder = protocol.Decoder()
        self._connected = False
        self._reconnects = 0
        self._skipped = 0          # samples before an info frame on a connection: not trusted, counted lost
        self._note = ""
        self._bytes = collections.deque()   # (host time, bytes so far), over the rate window
        self._last_frame: float | None = None
        self._drift = collections.deque(maxlen=_DRIFT_POINTS)  # [board s, min(host - board) s]
        self._scale: np.ndarray | None = None
        # One raw log at a time: `raw_log` from the connection's first info frame on (record,
        # stream), or one started and stopped while streaming (start_raw_copy, the dashboard).
        self._log_file = None
        self._log_lock = threading.Lock()   # a log starts and stops between two reads, never inside one
        self._logging = False               # bytes go to the file (else wait for this connection's info frame)
        self._info_frame = b""              # the bytes of the board's last info frame, as it sent them
        self._log_error: str | None = None  # why a started copy ended early

    # -- control

    def wait_for_info(self, timeout: float = INFO_TIMEOUT_S) -> BoardInfo:
        """The board's info frame (samples flow only after it); UserError if it does not come."""
        deadline = time.monotonic() + timeout
        while self.info is None:
            if self.error:
                raise UserError(self.error)
            if self.finished.is_set():
                raise UserError(f"{self.url} ended before the board said who it is (no info frame).")
            if time.monotonic() > deadline:
                raise UserError(f"no board info frame from {self.url} within {timeout:.0f} s: is it a Harduino "
                                "board running the firmware at 115200 baud?")
            self.finished.wait(0.02)
        return self.info

    def start_raw_copy(self, path: str | Path) -> int:
        """Copy every byte read from now on into `path`, behind the board's info frame, until stop_raw_copy().

        For a recording started while streaming (the dashboard's Record button): the
        file holds the board's own bytes from a frame boundary on. Returns the buffer
        index of the first sample they carry. UserError if the file cannot be made.
        """
        if self.info is None:
            raise UserError("cannot record yet: the board has not said who it is (no info frame).")
        if self.raw_log is not None:
            raise ValueError(f"this reader already logs to {self.raw_log}")
        with self._log_lock:
            copy = None
            try:
                copy = open(path, "wb")
                copy.write(self._info_frame + self._decoder.pending)
                copy.flush()
            except OSError as err:
                if copy is not None:
                    copy.close()
                raise UserError(f"cannot write the raw log {path}: {err.strerror or err}.") from None
            self._log_file, self._logging, self._log_error = copy, True, None
            return self.buffer.total

    def stop_raw_copy(self) -> str | None:
        """Close the raw copy; returns why it ended early, if a write failed (the reader reads on)."""
        with self._log_lock:
            self._close_log()
            return self._log_error

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop reading and wait for the thread to end (closes the port and the raw log)."""
        self._stop_event.set()
        port = self._port
        if port is not None:
            try:
                port.cancel_read()
            except Exception:  # noqa: BLE001 - a port that cannot cancel just times out
                pass
        if self.is_alive():
            self.join(timeout)

    # -- the thread

    def run(self) -> None:
        try:
            self._port = transport.open_port(self.url, timeout=self._read_timeout)
            if self.raw_log is not None:
                try:
                    self._log_file = open(self.raw_log, "wb")
                except OSError as err:
                    raise UserError(f"cannot write the raw log {self.raw_log}: {err.strerror}.") from None
        except UserError as err:
            self.error = str(err)
            self.finished.set()
            return
        again = transport.reopen_path(self.url)
        try:
            while not self._stop_event.is_set():
                try:
                    self._read_connection()
                    break  # stopped, or the end of a replay
                except (serial.SerialException, OSError) as err:
                    self._lose_port(err)
                    if not self._reopen(again):
                        break
        except UserError as err:  # the raw log could not be written: stop rather than lose bytes silently
            self.error = str(err)
        finally:
            self._connected = False
            self._close_port()
            with self._log_lock:
                self._close_log()
            if self.raw_log is not None:
                self.error = self.error or self._log_error
            self.finished.set()

    def _read_connection(self) -> None:
        port = self._port
        self._connected, self._scale, self._logging = True, None, False
        self._drift.clear()
        # `binary` first: a board left in text mode (CSV for the Serial Plotter) sends frames again.
        port.write(protocol.command("binary") + protocol.command("info"))
        # A source whose bytes wait for us (sim://, replay://) is read no faster than a
        # consumer that must miss nothing (replay --samples) takes the samples.
        room = READ_MAX // protocol.SAMPLE_FRAME_LEN + 2 if getattr(port, "waits_for_reader", False) else 0
        while not self._stop_event.is_set():
            pause = self._last_read + self._min_interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # short: stop() is still answered within min_interval
            if room and not self.buffer.wait_for_room(room, self._read_timeout):
                continue
            # A steady stream has bytes waiting after the pause: one read, no wait in select.
            # Otherwise block until the first byte comes (or the timeout passes), then take the rest.
            waiting = min(port.in_waiting, READ_MAX)
            data = port.read(waiting or 1)
            if data:
                if not waiting:
                    data += port.read(min(port.in_waiting, READ_MAX))
                self._last_read = time.monotonic()
                self._take(data, self._last_read)
            elif getattr(port, "at_end", False):  # replay:// has played the whole log
                self._take(None, time.monotonic())
                self._note = "end of stream"
                return

    def _lose_port(self, err: Exception) -> None:
        self._take(None, time.monotonic())  # the complete frames held back; a frame cut off is skipped
        self._connected = False
        self._note = f"port lost ({err}); waiting for it to come back"
        self._close_port()

    def _reopen(self, path: str) -> bool:
        while not self._stop_event.wait(_REOPEN_EVERY_S):
            try:
                self._port = transport.open_port(path, timeout=self._read_timeout)
            except UserError:
                continue
            self._reconnects += 1
            self._note = f"reconnected to {path}"
            return True
        return False

    def _close_port(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # noqa: BLE001 - closing a vanished port may fail; it is gone either way
                pass

    # -- bytes to samples

    def _take(self, data: bytes | None, now: float) -> None:
        """Decode, log and buffer one read; None: the stream ended, hand on what it completed."""
        with self._log_lock:  # a raw copy starts and stops between two reads, never inside one
            decoder = self._decoder
            held, base, frames_before = decoder.pending, decoder.pending_offset, decoder.stats.frames_ok
            chunk = decoder.finish() if data is None else decoder.feed(data)
            from_info = b""
            if chunk.info_spans:  # where the board's own info frames lie in the bytes decoded
                buf = held + (data or b"")
                (first, _), (start, end) = chunk.info_spans[0], chunk.info_spans[-1]
                self._info_frame, from_info = buf[start - base : end - base], buf[first - base :]
            if data:
                self._count_bytes(len(data), now)
                self._log(data, from_info)
            if decoder.stats.frames_ok > frames_before:
                self._last_frame = now
            self._buffer(chunk, now)

    def _buffer(self, chunk: protocol.DecodedChunk, now: float) -> None:
        if chunk.resets:
            self._drift.clear()
        # Samples between info frames take the scale of the info before them.
        edges = [0] + [position for position, _ in chunk.infos] + [len(chunk)]
        scales = [self._scale] + [info.si_scale for _, info in chunk.infos]
        for k, ((a, b), scale) in enumerate(zip(zip(edges[:-1], edges[1:]), scales)):
            if k and (not self.boards or self.boards[-1][1] != chunk.infos[k - 1][1]):
                self.boards.append((self.buffer.total, chunk.infos[k - 1][1]))
            if b <= a:
                continue
            if scale is None:  # no info frame yet on this connection: scale unknown, samples dropped
                if self.buffer.total:  # after the first connection they leave a gap in the buffer
                    self._skipped += b - a
                continue
            self.buffer.append(chunk.seq[a:b], chunk.t_us[a:b], now, chunk.raw[a:b].astype(np.float64) * scale)
        if chunk.infos:
            self.info = chunk.infos[-1][1]
            self._scale = self.info.si_scale
        if len(chunk) and self._scale is not None:
            self._track_drift(float(chunk.t_us[-1]) / 1e6, now)

    def _log(self, data: bytes, from_info: bytes) -> None:
        """Raw log: every byte read from this connection's first info frame (from_info, when it came) on."""
        if self._log_file is None or not (self._logging or from_info):
            return
        try:
            self._log_file.write(data if self._logging else from_info)
            self._log_file.flush()
            self._logging = True
        except OSError as err:
            self._log_error = (f"cannot write the raw log {self._log_file.name}: {err.strerror or err}; "
                               "free some space or choose another folder.")
            self._close_log()
            if self.raw_log is not None:  # record: stop rather than lose bytes silently
                raise UserError(self._log_error) from None  # (a copy stops alone: the live view reads on)

    def _close_log(self) -> None:
        log, self._log_file = self._log_file, None
        if log is None:
            return
        try:
            log.close()
        except OSError as err:
            self._log_error = self._log_error or f"cannot write the raw log {log.name}: {err.strerror or err}."

    def _count_bytes(self, n: int, now: float) -> None:
        total = (self._bytes[-1][1] if self._bytes else 0) + n
        self._bytes.append((now, total))
        while len(self._bytes) > 2 and now - self._bytes[1][0] > _RATE_WINDOW_S:
            self._bytes.popleft()

    def _track_drift(self, board_s: float, now: float) -> None:
        """Keep the smallest host-minus-board offset per board second: the least delayed arrival."""
        offset = now - board_s
        if self._drift and int(self._drift[-1][0]) == int(board_s):
            if offset < self._drift[-1][1]:
                self._drift[-1] = [board_s, offset]
        else:
            self._drift.append([board_s, offset])

    # -- statistics

    def stats(self) -> LinkStats:
        now = time.monotonic()
        d = self._decoder.stats
        return LinkStats(
            port=self.url,
            connected=self._connected,
            rate_hz=self._sample_rate(),
            samples=self.buffer.total,
            lost=d.samples_lost + self._skipped,
            crc_errors=d.crc_errors,
            resets=d.resets,
            reconnects=self._reconnects,
            bytes_per_s=self._bytes_per_s(now),
            since_last_frame_s=None if self._last_frame is None else now - self._last_frame,
            drift_ppm=self._drift_ppm(),
            bytes=d.bytes_in,
            malformed=d.malformed,
            note=self.error or self._note,
        )

    def _sample_rate(self) -> float:
        n = int(_RATE_WINDOW_S * (self.info.rate_hz if self.info else 50)) + 1
        block = self.buffer.latest(n)
        if len(block) < 2:
            return 0.0
        span = (block.t_us[-1] - block.t_us[0]) / 1e6
        return (len(block) - 1) / span if span > 0 else 0.0

    def _bytes_per_s(self, now: float) -> float:
        points = list(self._bytes)
        if len(points) < 2:
            return 0.0
        (t0, b0), (_, b1) = points[0], points[-1]
        return (b1 - b0) / max(now - t0, 1e-9)

    def _drift_ppm(self) -> float | None:
        points = np.array(list(self._drift))
        if len(points) < 3 or points[-1, 0] - points[0, 0] < _DRIFT_MIN_SPAN_S:
            return None
        slope = np.polyfit(points[:, 0], points[:, 1], 1)[0]  # host s per board s, minus one
        return float(-slope / (1 + slope) * 1e6)
