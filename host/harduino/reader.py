"""Acquisition: a reader thread turns a port's bytes into timestamped SI samples in a ring buffer.

    port (any URL) ──read──► Decoder ──► SI via the info frame's scale ──► SampleBuffer
                      └────► raw log (the board's own bytes, from its info frame, or start_raw_copy, on)

Consumers ask the buffer (harduino.ringbuffer) for blocks of copies.
The thread reads at most once per dashboard frame (READ_INTERVAL_S) and
otherwise blocks in `read()` with a timeout (no polling), survives a port that
disappears by reopening it (by its stable id where there is one), and keeps
link statistics, including how fast the board's clock runs against the host's.
It sets the link's state (harduino.link) at each change, and, given a rate,
asks the board for it on every connection and after every reset.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import serial

from . import protocol, transport
from .errors import UserError
from .link import RATE_WINDOW_S, LinkMeter, LinkState, LinkStats
from .protocol import BoardInfo
from .ringbuffer import Block, PredictionLog, SampleBuffer

__all__ = ["INFO_TIMEOUT_S", "READ_INTERVAL_S", "Block", "LinkState", "LinkStats", "Reader", "SampleBuffer"]


INFO_TIMEOUT_S = 5.0  # a board answers `info` within milliseconds; a silent port is not a board
# Read at most once a dashboard frame (33 fps: the dashboard draws when samples come, so reads
# at 30 a second would show a little under 30 fps). A wake-up after sleeping costs the same few
# hundred µs of cold-cache work whether it brings one frame or ten, so at 100 Hz reading each
# frame as it comes would cost 5x the CPU for latency nobody sees. Slower streams wait not at all.
READ_INTERVAL_S = 1 / 33
# --rate: a board answers `rate` with an info frame within milliseconds. One that goes on sending
# frames this long after being asked, none of them at the rate asked, did not take it.
RATE_ANSWER_S = 2.0
RATE_ASK_AGAIN_S = 0.5  # an info frame at another rate this soon after asking came before the answer

READ_MAX = 1 << 16        # bytes one read takes at most: a replay at full speed comes a block at a time
_REOPEN_EVERY_S = 0.5


class Reader(threading.Thread):
    """Reads a port in the background into `buffer`; see the module docstring."""

    def __init__(self, url: str, *, capacity: int = 1 << 16, raw_log: str | Path | None = None,
                 read_timeout: float = 0.1, min_interval: float = READ_INTERVAL_S, rate_hz: int | None = None) -> None:
        super().__init__(name=f"reader {url}", daemon=True)
        self.url = url
        # The sample rate asked of the board on every connection and after every reset (it powers up
        # at its default): until it answers at this rate, its samples are not taken. None: its own rate.
        self.rate_hz = rate_hz
        self._rate_asked: float | None = None  # when `rate` was last sent and not yet answered
        self._other_rate: int | None = None    # the rate the board sends at instead, while not answered
        self.buffer = SampleBuffer(capacity)
        self.info: BoardInfo | None = None
        self.predictions = PredictionLog()  # the board's own (v2, a model built in), and its model frame
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
        self._link = (LinkState.CONNECTING, "")  # (state, reason): set together, read together
        self._reconnects = 0
        self._skipped = 0          # samples before an info frame on a connection: not trusted, counted lost
        self._meter = LinkMeter()   # bytes per second, the board's clock against the host's
        self._last_frame: float | None = None
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
        """Copy the board's bytes from now on into `path`, behind its info frame, until stop_raw_copy().

        For a recording (`harduino record`, the dashboard's Record button): the
        file holds the board's own bytes from a frame boundary on, led by its info
        frame (the last one, or, while the board has not sent one on this
        connection, the one it sends next). Returns the buffer index of the first
        sample they carry. UserError if the file cannot be made.
        """
        if self.raw_log is not None:
            raise ValueError(f"this reader already logs to {self.raw_log}")
        with self._log_lock:
            copy = None
            streaming = self._scale is not None  # this connection's info frame came (and was taken)
            try:
                copy = open(path, "wb")
                if streaming:
                    copy.write(self._info_frame + self._decoder.pending)
                    copy.flush()
            except OSError as err:
                if copy is not None:
                    copy.close()
                raise UserError(f"cannot write the raw log {path}: {err.strerror or err}.") from None
            self._log_file, self._logging, self._log_error = copy, streaming, None
            return self.buffer.total

    @property
    def raw_copy_error(self) -> str | None:
        """Why the raw copy ended early (a write failed), while it was on."""
        return self._log_error

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
            self._link = (LinkState.FAILED, self.error)
            self.finished.set()
            return
        self._link = (LinkState.CONNECTED, "")
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
            self._close_port()
            with self._log_lock:
                self._close_log()
            if self.raw_log is not None:
                self.error = self.error or self._log_error
            if self.error:
                self._link = (LinkState.FAILED, self.error)
            elif self._link[0] is not LinkState.ENDED:
                self._link = (LinkState.ENDED, "stopped")
            self.finished.set()

    def _read_connection(self) -> None:
        port = self._port
        self._scale, self._logging = None, False
        self._meter.clear_drift()
        # `binary` first: a board left in text mode (CSV for the Serial Plotter) sends frames again.
        # `rate` is answered by an info frame, as `info` is.
        port.write(protocol.command("binary") + self._ask_rate() if self.rate_hz else
                   protocol.command("binary") + protocol.command("info"))
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
                self._link = (LinkState.ENDED, "end of stream")
                return
            self._check_rate_answered()

    def _lose_port(self, err: Exception) -> None:
        self._take(None, time.monotonic())  # the complete frames held back; a frame cut off is skipped
        self._link = (LinkState.LOST, f"port lost ({err}); waiting for it to come back")
        self._close_port()

    def _reopen(self, path: str) -> bool:
        while not self._stop_event.wait(_REOPEN_EVERY_S):
            try:
                self._port = transport.open_port(path, timeout=self._read_timeout)
            except UserError:
                continue
            self._reconnects += 1
            self._link = (LinkState.CONNECTED, f"reconnected to {path}")
            return True
        return False

    def _close_port(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # noqa: BLE001 - closing a vanished port may fail; it is gone either way
                pass

    # -- the rate asked for (--rate)

    def _ask_rate(self) -> bytes:
        self._rate_asked = time.monotonic()
        return protocol.command("rate", self.rate_hz)

    def _takes(self, info: BoardInfo) -> bool:
        """Whether the samples after this info frame are taken: not while the board sends at another rate than asked."""
        if self.rate_hz is None or info.rate_hz == self.rate_hz:
            self._rate_asked = None
            return True
        # A reset (it powers up at its default rate), or a `rate` lost while it booted: ask again. Not
        # when just asked (this frame answers `binary`): each `rate` restarts the board's sampling schedule.
        if self._rate_asked is not None and time.monotonic() - self._rate_asked < RATE_ASK_AGAIN_S:
            return False
        try:
            self._port.write(self._ask_rate())
        except (serial.SerialException, OSError):
            pass  # the port is going: the next read says so, and the next connection asks again
        return False

    def _check_refusal(self, errors: list[tuple[int, int, str]]) -> None:
        if self._rate_asked is not None and any(code == protocol.ERROR_BAD_RATE for _, code, _ in errors):
            said = next(text for _, code, text in errors if code == protocol.ERROR_BAD_RATE)
            raise UserError(f"the board at {self.url} refused rate {self.rate_hz} Hz ({said}): choose a rate "
                            "it can sample at (the firmware takes 1 to 1000 Hz).")

    def _check_rate_answered(self) -> None:
        asked, heard = self._rate_asked, self._last_frame
        if asked is not None and heard is not None and heard > asked and time.monotonic() - asked > RATE_ANSWER_S:
            now = f" (it sends at {self._other_rate} Hz)" if self._other_rate else ""
            raise UserError(f"the board at {self.url} did not answer `rate {self.rate_hz}`{now}: is it running the "
                            "Harduino firmware? A recorded log (replay://) cannot change its rate.")

    # -- bytes to samples

    def _take(self, data: bytes | None, now: float) -> None:
        """Decode, log and buffer one read; None: the stream ended, hand on what it completed."""
        with self._log_lock:  # a raw copy starts and stops between two reads, never inside one
            decoder = self._decoder
            held, base, frames_before = decoder.pending, decoder.pending_offset, decoder.stats.frames_ok
            chunk = decoder.finish() if data is None else decoder.feed(data)
            self._check_refusal(chunk.errors)
            taken = [self._takes(info) for _, info in chunk.infos]
            buf = held + (data or b"")
            spans = [(start - base, end - base) for start, end in chunk.info_spans]  # where they lie in buf
            for (start, end), ok in zip(spans, taken):
                if ok:  # the board's own info frame, as it sent it
                    self._info_frame = buf[start:end]
            if data:
                self._meter.count_bytes(len(data), now)
                self._log(buf, len(held), spans, taken)
            if decoder.stats.frames_ok > frames_before:
                self._last_frame = now
            self._buffer(chunk, taken, now)

    def _buffer(self, chunk: protocol.DecodedChunk, taken: list[bool], now: float) -> None:
        """Buffer the samples in SI; those after an info frame not taken (another rate than asked) are dropped."""
        if chunk.resets:
            self._meter.clear_drift()
        # Samples between info frames take the scale of the info before them.
        edges = [0] + [position for position, _ in chunk.infos] + [len(chunk)]
        infos = [(None, False)] + [(info, ok) for (_, info), ok in zip(chunk.infos, taken)]
        for (a, b), (info, ok) in zip(zip(edges[:-1], edges[1:]), infos):
            if info is not None:
                self._scale, self._other_rate = (info.si_scale, None) if ok else (None, info.rate_hz)
                if ok and (not self.boards or self.boards[-1][1] != info):
                    self.boards.append((self.buffer.total, info))
                self.info = info if ok else self.info
            if b <= a:
                continue
            if self._scale is None:  # no info frame (at the rate asked) yet on this connection: samples dropped
                if self.buffer.total:  # after the first connection they leave a gap in the buffer
                    self._skipped += b - a
                continue
            si = chunk.raw[a:b].astype(np.float64) * self._scale
            self.buffer.append(chunk.seq[a:b], chunk.t_us[a:b], now, si)
        if len(chunk) and self._scale is not None:
            self._meter.track_drift(float(chunk.t_us[-1]) / 1e6, now)
        if chunk.models:
            self.predictions.model = chunk.models[-1][1]
        self.predictions.add([p for _, p in chunk.predictions], self.buffer)  # after the samples they name

    def _log(self, buf: bytes, new: int, spans: list[tuple[int, int]], taken: list[bool]) -> None:
        """Raw log: the bytes read (buf[new:]) from this connection's first info frame taken on.

        From an info frame not taken (a reset at another rate than asked) to the
        next one taken, nothing: the log holds the samples the reader keeps, one for one.
        """
        pieces, logging, pos = [], self._logging, new
        for (start, _), ok in zip(spans, taken):
            if logging and not ok:
                pieces.append(buf[pos:start])
            elif ok and not logging:
                pos = start
            logging = ok
        if logging:
            pieces.append(buf[pos:])
        self._logging = logging
        if self._log_file is None or not any(pieces):
            return
        try:
            self._log_file.write(b"".join(pieces))
            self._log_file.flush()
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

    # -- statistics

    def stats(self) -> LinkStats:
        now = time.monotonic()
        d = self._decoder.stats
        state, reason = self._link
        if state is LinkState.CONNECTED and self._rate_asked is not None:
            reason = f"asked the board for {self.rate_hz} Hz, waiting for its answer"
        return LinkStats(
            port=self.url,
            state=state,
            rate_hz=self._sample_rate(),
            samples=self.buffer.total,
            lost=d.samples_lost + self._skipped,
            crc_errors=d.crc_errors,
            resets=d.resets,
            reconnects=self._reconnects,
            bytes_per_s=self._meter.bytes_per_s(now),
            since_last_frame_s=None if self._last_frame is None else now - self._last_frame,
            drift_ppm=self._meter.drift_ppm(),
            bytes=d.bytes_in,
            malformed=d.malformed,
            reason=reason,
        )

    def _sample_rate(self) -> float:
        n = int(RATE_WINDOW_S * (self.info.rate_hz if self.info else 50)) + 1
        block = self.buffer.latest(n)
        if len(block) < 2:
            return 0.0
        span = (block.t_us[-1] - block.t_us[0]) / 1e6
        return (len(block) - 1) / span if span > 0 else 0.0
