"""A virtual board: the protocol v1 byte stream of a board carrying the simulated sensor.

`SimBoard` behaves like the firmware: it boots into streaming (info frame, then
samples), answers the text commands, paces its frames by its own clock and
drops frames the baud rate cannot carry; its samples come from `motion`. The
`sim://` URL handler and `harduino simulate` are thin shells around it, and
`ptyserver.PtyBoard` serves it (or any port) on a pseudo-terminal.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from . import protocol
from .motion import synth_labelled
from .protocol import BoardInfo


# ---------------------------------------------------------------- the board

@dataclass
class SimSettings:
    """How a virtual board behaves (a sim:// URL says it: see harduino.urlhandlers.protocol_sim)."""

    script: list[tuple[str, float]]
    subject: int = 0
    seed: int = 0
    rate_hz: int = 50
    baud: int = 115200
    paced: bool = True       # False: as fast as it is read (speed=max)
    drift_ppm: float = 0.0   # how fast the board's clock runs against the host's


class SimBoard:
    """The firmware's behaviour without the hardware; thread-safe read/write like a serial port.

    Sample k is taken at board time epoch_us + (k - epoch_k) / rate and reaches
    the host one frame's wire time later. When frames need more than the baud
    rate carries, the board skips slots (their sequence numbers never arrive),
    as the firmware does when it falls behind.
    """

    CHUNK = 256  # samples synthesised at a time

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self.changed = threading.Event()  # set when take() may hand out more before its ready time (see take)
        self.closed = False
        self._out = bytearray()
        self._line = bytearray()
        self._host0 = time.monotonic()
        self.rate_hz = settings.rate_hz
        self.streaming = True
        self._next_k = 0
        self._epoch_k, self._epoch_us = 0, 0
        self._cache_k, self._cache = 0, np.zeros((0, 6), dtype=np.int16)
        self._script_labels = np.array([a for a, _ in settings.script], dtype=str)
        self._script_ends = np.cumsum([d for _, d in settings.script])
        self._out += protocol.encode_info(self.info)  # boot: an info frame, then samples

    @property
    def info(self) -> BoardInfo:
        return BoardInfo(rate_hz=self.rate_hz)

    @property
    def _frame_s(self) -> float:
        return protocol.SAMPLE_FRAME_LEN * 10 / self.settings.baud  # 8N1: 10 bits a byte

    # -- board clock

    def _now_us(self) -> float:
        return (time.monotonic() - self._host0) * 1e6 * (1 + self.settings.drift_ppm * 1e-6)

    def _board_us(self, k):
        return self._epoch_us + (np.asarray(k, dtype=np.int64) - self._epoch_k) * 1_000_000 // self.rate_hz

    def _host_time(self, board_us: float) -> float:
        return self._host0 + board_us * 1e-6 / (1 + self.settings.drift_ppm * 1e-6)

    # -- producing bytes

    def _due_until(self) -> int:
        """Samples whose frames have fully crossed the wire by now (paced mode)."""
        arrived_us = self._now_us() - self._frame_s * 1e6
        if arrived_us < self._epoch_us:
            return self._next_k
        return max(self._next_k, self._epoch_k + int((arrived_us - self._epoch_us) * self.rate_hz // 1e6) + 1)

    def _signal(self, k0: int, n: int) -> np.ndarray:
        if not (self._cache_k <= k0 and k0 + n <= self._cache_k + len(self._cache)):
            m = max(n, self.CHUNK)
            t = self._board_us(np.arange(k0, k0 + m)) / 1e6
            position = np.mod(t, self._script_ends[-1])
            labels = self._script_labels[np.searchsorted(self._script_ends, position, side="right")]
            s = self.settings
            self._cache_k, self._cache = k0, synth_labelled(labels, float(t[0]), self.rate_hz, s.subject, s.seed)
        return self._cache[k0 - self._cache_k : k0 - self._cache_k + n]

    def _emit(self, k_end: int) -> None:
        """Append sample frames for slots next_k .. k_end that fit on the wire."""
        k = np.arange(self._next_k, k_end)
        if k.size == 0:
            return
        per_s = self.settings.baud / 10 / protocol.SAMPLE_FRAME_LEN
        if self.rate_hz > per_s:  # keep the slots where the wire has room again
            rel = k - self._epoch_k
            k = k[np.floor((rel + 1) * per_s / self.rate_hz) > np.floor(rel * per_s / self.rate_hz)]
        raw = self._signal(self._next_k, k_end - self._next_k)[k - self._next_k]
        self._out += protocol.encode_samples(k, self._board_us(k), raw)
        self._next_k = k_end

    def _produce(self, want: int) -> None:
        if not self.streaming:
            return
        if self.settings.paced:
            self._emit(self._due_until())
        elif len(self._out) < want:
            need = -(-(want - len(self._out)) // protocol.SAMPLE_FRAME_LEN)
            self._emit(self._next_k + max(need, self.CHUNK))

    def _next_ready(self) -> float:
        """Host time when the next frame arrives; inf when nothing will come by itself."""
        if not self.streaming:
            return math.inf
        if not self.settings.paced:
            return 0.0
        return self._host_time(float(self._board_us(self._next_k)) + self._frame_s * 1e6)

    # -- the serial port side

    def in_waiting(self) -> int:
        with self._lock:
            self._produce(1)
            return len(self._out)

    def take(self, size: int) -> tuple[bytes, float]:
        """Up to size bytes there now, and the host time the next frame arrives (inf: none by itself).

        The sim:// port's read() waits on it (harduino.urlhandlers.blocking_read) until that time or until
        `changed` is set: by a command written, `interrupt` or `close`.
        """
        with self._lock:
            self._produce(size)
            out = bytes(self._out[:size])
            del self._out[:size]
            return out, self._next_ready()

    def interrupt(self) -> None:
        """Wake a read waiting on the board now (a port's cancel_read)."""
        self.changed.set()

    def close(self) -> None:
        self.closed = True
        self.changed.set()

    def discard_input(self) -> None:
        with self._lock:
            self._produce(1)
            self._out.clear()

    def write(self, data: bytes) -> int:
        """Text commands, one per line, as the firmware reads them."""
        with self._lock:
            self._line += data
            *lines, rest = self._line.split(b"\n")
            self._line = bytearray(rest)
            for line in lines:
                self._command(line.strip().decode("ascii", "replace").lower())
        self.changed.set()
        return len(data)

    def _command(self, line: str) -> None:
        if not line:
            return
        self._produce(0)  # everything due before the command arrived goes first
        name, _, arg = line.partition(" ")
        if name == "start" and not self.streaming:
            self._epoch_k, self._epoch_us = self._next_k, int(math.ceil(self._now_us()))
            self._cache = self._cache[:0]
            self.streaming = True
        elif name == "stop":
            self.streaming = False
        elif name == "info":
            self._out += protocol.encode_info(self.info)
        elif name == "rate":
            try:
                rate = int(arg)
            except ValueError:
                rate = 0
            if not 1 <= rate <= 1000:
                self._out += protocol.encode_error(protocol.ERROR_BAD_RATE, "rate 1..1000")
                return
            self._epoch_us = int(self._board_us(self._next_k)) if self.streaming else int(self._now_us())
            self._epoch_k, self.rate_hz = self._next_k, rate
            self._cache = self._cache[:0]
            self._out += protocol.encode_info(self.info)
        elif name not in ("start", "binary"):  # binary: it never prints text
            self._out += protocol.encode_error(protocol.ERROR_BAD_COMMAND, "unknown command")
