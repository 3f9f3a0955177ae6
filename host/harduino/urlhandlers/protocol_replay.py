"""`replay://PATH?speed=max|1|4&loop=1`: a recorded raw serial log played back as a port.

The log holds the bytes a board sent, starting with its info frame. Playback is
paced by the board's clock inside it: the decoder says where each sample frame
ends and when it was taken, and the bytes up to that end come out when its
board time comes round (divided by `speed`), or as fast as they are read with
`speed=max`. The file is read a block at a time, so memory does not grow with
its size. At the end `at_end` turns true and reads return nothing; with
`loop=1` it starts again from the top. Commands written to it are ignored.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from serial.serialutil import PortNotOpenError, SerialException

from .. import protocol
from . import URLError, VirtualPort, blocking_read, check_params, query_of

PARAMS = ("speed", "loop")
BLOCK = 1 << 16      # bytes read from the file at a time, and the most one read is offered (a driver's buffer)
_PROBE_BYTES = 4096  # an info frame must decode from this much of the start of a log


class Serial(VirtualPort):
    """A read-only serial port playing a raw log."""

    def open(self):
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        path, self.speed, self.loop = self.from_url(self.portstr)
        self._file = _open_log(path)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._restart()
        self.is_open = True

    def from_url(self, url: str) -> tuple[Path, float, bool]:
        """replay://PATH?... -> (path, speed (inf = as fast as it is read), loop); URLError if it cannot be."""
        parts = urlsplit(url)
        query = query_of(parts)
        check_params("replay", query, PARAMS)
        text = query.get("speed", "1")
        try:
            speed = math.inf if text == "max" else float(text)
        except ValueError:
            speed = 0.0
        if not 0 < speed:
            raise URLError(f"replay:// speed must be max or a positive number like 1 or 4, not {text!r}.")
        if query.get("loop", "0") not in ("0", "1"):
            raise URLError(f"replay:// loop must be 0 or 1, not {query['loop']!r}.")
        return Path(unquote(parts.netloc + parts.path)).expanduser(), speed, query.get("loop") == "1"

    # -- playback

    def _restart(self) -> None:
        self._file.seek(0)
        self._decoder = protocol.Decoder()
        self._ahead = bytearray()  # read from the file, not yet handed out
        self._pos = 0              # the log offset of _ahead[0]
        # Release points among the bytes read: log offsets where sample frames end, and their board
        # times in s from the log's first sample.
        self._ends = np.zeros(0, dtype=np.int64)
        self._due = np.zeros(0)
        self._t0: int | None = None  # board µs of the first sample
        self._last_t = 0             # board µs of the last sample paced, a reboot's jump taken out
        self._skipped_us = 0         # the jumps taken out so far
        self._eof = False
        self._start = time.monotonic()

    def _read_block(self) -> None:
        data = self._file.read(BLOCK)
        self._eof = not data
        self._ahead += data
        if math.isinf(self.speed):
            return  # nothing to pace
        chunk = self._decoder.feed(data) if data else self._decoder.finish()  # the end delivers what is complete
        if len(chunk):
            t_us = chunk.t_us - self._skipped_us
            for p in chunk.resets:  # the board rebooted: its next sample comes at once, as in the log
                jump = int(t_us[p] - (t_us[p - 1] if p else self._last_t))
                t_us[p:] -= jump
                self._skipped_us += jump
            if self._t0 is None:
                self._t0 = int(t_us[0])
            self._last_t = int(t_us[-1])
            ends, due = chunk.sample_ends, (t_us - self._t0) / 1e6
        else:  # no sample frame to pace these bytes by: they come out with the last one
            ends, due = np.array([self._pos + len(self._ahead)]), self._due[-1:] if self._due.size else np.zeros(1)
        self._ends, self._due = np.concatenate([self._ends, ends]), np.concatenate([self._due, due])

    def _released(self, now: float) -> tuple[int, float]:
        """(bytes out by now, host time when more come out: inf once the log has played)."""
        while True:
            if math.isinf(self.speed):
                if not self._ahead and not self._eof:
                    self._read_block()
                return len(self._ahead), math.inf if self._eof and not self._ahead else now
            i = int(np.searchsorted(self._due, (now - self._start) * self.speed, side="right"))
            if i < self._due.size:
                return (int(self._ends[i - 1]) - self._pos if i else 0), self._start + self._due[i] / self.speed
            if self._eof or len(self._ahead) >= BLOCK:  # a reader that lags holds a block back, no more
                return len(self._ahead), math.inf if self._eof else now
            self._read_block()

    def _take(self, size: int) -> tuple[bytes, float]:
        with self._lock:
            if self.loop and self._eof and not self._ahead:
                self._restart()
            now = time.monotonic()
            out, ready_at = self._released(now)
            n = min(size, out)
            data = bytes(self._ahead[:n])
            del self._ahead[:n]
            self._pos += n
            passed = int(np.searchsorted(self._ends, self._pos, side="right"))
            self._ends, self._due = self._ends[passed:], self._due[passed:]
            if out > n or (self.loop and self._eof and not self._ahead):
                ready_at = now
            return data, ready_at

    @property
    def at_end(self) -> bool:
        """True once every byte has been read and the log does not loop: the end of the stream."""
        return self.is_open and not self.loop and self._eof and not self._ahead

    # -- the serial port side

    def close(self):
        self.is_open = False
        if hasattr(self, "_wake"):
            self._file.close()
            self._wake.set()

    @property
    def in_waiting(self):
        if not self.is_open:
            raise PortNotOpenError()
        with self._lock:
            if self.loop and self._eof and not self._ahead:
                self._restart()
            return min(self._released(time.monotonic())[0], BLOCK)

    def read(self, size=1):
        return blocking_read(self, size, self._take, self._wake)

    def write(self, data):
        if not self.is_open:
            raise PortNotOpenError()
        return len(data)

    def reset_input_buffer(self):
        pass  # a replay loses nothing on open

    def cancel_read(self):
        self._wake.set()


def _open_log(path: Path):
    """The log file, open for reading, or URLError saying why it is not a raw serial log."""
    try:
        log = open(path, "rb")
    except FileNotFoundError:
        raise URLError(f"no such raw log file: {path}.") from None
    except OSError as err:
        raise URLError(f"cannot read raw log {path}: {err.strerror}.") from None
    try:
        start = log.read(_PROBE_BYTES)
    except OSError as err:
        log.close()
        raise URLError(f"cannot read raw log {path}: {err.strerror}.") from None
    if not protocol.Decoder().feed(start).infos:
        log.close()
        raise URLError(f"{path} is not a raw serial log (it does not start with a board info frame).")
    return log
