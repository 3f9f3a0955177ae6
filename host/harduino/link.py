"""Link state as data: what the reader says about its port, and the one function that words it.

The reader sets a `LinkState` and a reason at each change, the way pyserial's
threaded protocol is told `connection_lost(exc)`: the end of a link is a value,
not a sentence to parse. `LinkStats` carries it with the link's figures;
`state_text` is how every view (stream's line, the terminal, the dashboard) says it.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import asdict, dataclass

import numpy as np

RATE_WINDOW_S = 2.0      # bytes/s and sample rate are measured over about this much
_DRIFT_MIN_SPAN_S = 2.0   # drift needs this much board time before it means anything
_DRIFT_POINTS = 600       # one point per board second: ten minutes


class LinkState(enum.Enum):
    CONNECTING = "connecting"   # opening the port
    CONNECTED = "connected"     # the port is open (samples flow once the board has said who it is)
    LOST = "lost"               # the port went away; the reader waits for it to come back
    ENDED = "ended"             # the stream ended: a replay played out, or the reader was stopped
    FAILED = "failed"           # the reader gave up: the reason says why

    @property
    def alarming(self) -> bool:
        """A state a user must act on or know about at once (a view shows it in red)."""
        return self in (LinkState.LOST, LinkState.FAILED)


_WORDS = {LinkState.LOST: "DISCONNECTED", LinkState.FAILED: "FAILED"}


def state_text(state: LinkState, reason: str = "", *, detail: bool = False) -> str:
    """The state in a word, with its reason where it is alarming (or detail): `DISCONNECTED (port lost ...)`."""
    word = _WORDS.get(state, state.value)
    return f"{word} ({reason})" if reason and (detail or state.alarming) else word


@dataclass
class LinkStats:
    port: str
    state: LinkState
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
    reason: str = ""             # why the link is in its state, when there is something to say

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    def state_text(self, *, detail: bool = False) -> str:
        return state_text(self.state, self.reason, detail=detail)

    def line(self) -> str:
        """One human line, the `harduino stream` status line."""
        drift = "n/a" if self.drift_ppm is None else f"{self.drift_ppm:+.0f} ppm"
        last = "n/a" if self.since_last_frame_s is None else f"{self.since_last_frame_s:.2f} s"
        return (f"{self.port}: {self.state_text(detail=True)}, {self.rate_hz:.1f} Hz, {self.samples} samples, "
                f"{self.lost} lost, {self.crc_errors} crc errors, {self.resets} resets, {self.reconnects} reconnects, "
                f"{self.bytes_per_s:.0f} B/s, last frame {last} ago, drift {drift}")

    def to_dict(self) -> dict:
        return {**asdict(self), "state": self.state.value}


class LinkMeter:
    """Bytes per second over the last RATE_WINDOW_S, and how fast the board's clock runs against the host's."""

    def __init__(self) -> None:
        self._bytes = collections.deque()   # (host time, bytes so far), over the rate window
        self._drift = collections.deque(maxlen=_DRIFT_POINTS)  # [board s, min(host - board) s]

    def count_bytes(self, n: int, now: float) -> None:
        total = (self._bytes[-1][1] if self._bytes else 0) + n
        self._bytes.append((now, total))
        while len(self._bytes) > 2 and now - self._bytes[1][0] > RATE_WINDOW_S:
            self._bytes.popleft()

    def track_drift(self, board_s: float, now: float) -> None:
        """Keep the smallest host-minus-board offset per board second: the least delayed arrival."""
        offset = now - board_s
        if self._drift and int(self._drift[-1][0]) == int(board_s):
            if offset < self._drift[-1][1]:
                self._drift[-1] = [board_s, offset]
        else:
            self._drift.append([board_s, offset])

    def clear_drift(self) -> None:
        """A new connection or a reset: the board's clock starts again."""
        self._drift.clear()

    def bytes_per_s(self, now: float) -> float:
        points = list(self._bytes)
        if len(points) < 2:
            return 0.0
        (t0, b0), (_, b1) = points[0], points[-1]
        return (b1 - b0) / max(now - t0, 1e-9)

    def drift_ppm(self) -> float | None:
        points = np.array(list(self._drift))
        if len(points) < 3 or points[-1, 0] - points[0, 0] < _DRIFT_MIN_SPAN_S:
            return None
        slope = np.polyfit(points[:, 0], points[:, 1], 1)[0]  # host s per board s, minus one
        return float(-slope / (1 + slope) * 1e6)
