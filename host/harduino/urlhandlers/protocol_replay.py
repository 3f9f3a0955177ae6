"""`replay://PATH?speed=max|1|4&loop=1`: a recorded raw serial log played back as a port.

The log holds the exact bytes a reader received, starting with an info frame.
Playback is paced by the board timestamps inside it (each sample frame is
released when its board time comes round, divided by `speed`), or as fast as
it is read with `speed=max`. At the end of the file `at_end` turns true and
reads return nothing; with `loop=1` it starts again from the top. Commands
written to it are accepted and ignored.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from serial.serialutil import PortNotOpenError, SerialException

from .. import protocol
from ..errors import UserError
from . import VirtualPort

PARAMS = ("speed", "loop")
_PROBE_BYTES = 4096  # an info frame must decode from this much of the start of a log


def parse_url(url: str) -> tuple[Path, float, bool]:
    """replay://PATH?... -> (path, speed (inf = as fast as possible), loop)."""
    parts = urlsplit(url)
    path = Path(unquote(parts.netloc + parts.path)).expanduser()
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(PARAMS))
    if unknown:
        raise UserError(f"unknown replay:// parameter {unknown[0]!r}; known: {', '.join(PARAMS)}.")
    text = query.get("speed", "1")
    try:
        speed = math.inf if text == "max" else float(text)
    except ValueError:
        speed = 0.0
    if not speed > 0:
        raise UserError(f"replay:// speed must be max or a positive number like 1 or 4, not {text!r}.")
    if query.get("loop", "0") not in ("0", "1"):
        raise UserError(f"replay:// loop must be 0 or 1, not {query['loop']!r}.")
    return path, speed, query.get("loop") == "1"


def load_log(path: Path) -> bytes:
    """The bytes of a raw serial log, or a UserError saying why it is not one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such raw log file: {path}.") from None
    except OSError as err:
        raise UserError(f"cannot read raw log {path}: {err.strerror}.") from None
    if not protocol.Decoder().feed(data[:_PROBE_BYTES]).infos:
        raise UserError(f"{path} is not a raw serial log (it does not start with a board info frame).")
    return data


def release_offsets(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Byte offsets where each valid sample frame ends, and its board time in s from the first."""
    a = np.frombuffer(data, dtype=np.uint8)
    n = a.size - protocol.SAMPLE_FRAME_LEN + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    starts = np.flatnonzero((a[:n] == 0xA5) & (a[1 : n + 1] == 0x5A) & (a[2 : n + 2] == protocol.TYPE_SAMPLE))
    rows = a[starts[:, None] + np.arange(protocol.SAMPLE_FRAME_LEN)]
    crc = rows[:, -2].astype(np.uint16) | (rows[:, -1].astype(np.uint16) << 8)
    ok = protocol.crc16_rows(rows[:, 2:-2]) == crc
    starts, rows = starts[ok], rows[ok]
    t32 = rows[:, 5:9].copy().view("<u4")[:, 0].astype(np.int64)
    step = (np.diff(t32) & 0xFFFFFFFF)
    step[step >= 1 << 31] = 0  # the board restarted: no wait
    seconds = np.concatenate([[0], np.cumsum(step)]) / 1e6
    return starts + protocol.SAMPLE_FRAME_LEN, seconds


class Serial(VirtualPort):
    """A read-only serial port playing a raw log."""

    def open(self):
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        path, self.speed, self.loop = parse_url(self._port)
        self._data = load_log(path)
        self._ends, self._times = release_offsets(self._data)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._restart()
        self.is_open = True

    def _restart(self):
        self._pos = 0
        self._start = time.monotonic()

    @property
    def at_end(self) -> bool:
        """True once every byte has been read and the log does not loop: the end of the stream."""
        return self.is_open and not self.loop and self._pos >= len(self._data)

    def _released(self) -> int:
        """How many bytes of the log are out by now."""
        if math.isinf(self.speed):
            return len(self._data)
        elapsed = (time.monotonic() - self._start) * self.speed
        i = int(np.searchsorted(self._times, elapsed, side="right"))
        if i >= len(self._times):
            return len(self._data)
        return int(self._ends[i - 1]) if i > 0 else 0 if len(self._ends) else len(self._data)

    def _next_release(self) -> float:
        i = int(np.searchsorted(self._ends, self._pos, side="right"))
        if i >= len(self._times):
            return time.monotonic()
        return self._start + self._times[i] / self.speed

    def close(self):
        self.is_open = False
        if hasattr(self, "_wake"):
            self._wake.set()

    def _reconfigure_port(self):
        pass

    @property
    def in_waiting(self):
        if not self.is_open:
            raise PortNotOpenError()
        with self._lock:
            if self.loop and self._pos >= len(self._data):
                self._restart()
            return max(0, self._released() - self._pos)

    def read(self, size=1):
        if not self.is_open:
            raise PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        out = bytearray()
        while True:
            self._wake.clear()
            with self._lock:
                if self.loop and self._pos >= len(self._data):
                    self._restart()
                end = min(self._released(), self._pos + size - len(out))
                out += self._data[self._pos : end]
                self._pos = end
                ready_at = None if self._pos >= len(self._data) else self._next_release()
            now = time.monotonic()
            if len(out) >= size or not self.is_open or (deadline is not None and now >= deadline):
                return bytes(out)
            if ready_at is None and not self.loop:  # end of stream: wait out the timeout like a quiet port
                ready_at = deadline if deadline is not None else now + 0.1
            wait = (ready_at or now) - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            self._wake.wait(max(wait, 0.0))

    def write(self, data):
        if not self.is_open:
            raise PortNotOpenError()
        return len(data)

    def reset_input_buffer(self):
        pass  # a replay loses nothing on open

    def reset_output_buffer(self):
        pass

    def cancel_read(self):
        self._wake.set()
