"""The board's clocks as monotonic values: the 16-bit sequence and 32-bit µs counters unwrapped into int64.

One rule decides every frame: it steps forward when its sequence and its time
both move on by more than zero and less than half their range (a forward step
of the sequence by k loses k - 1 samples). A frame that does not step forward
is stale (a repeat or out of order: the sequence goes back or stays while the
time goes back by less than a second, or stays), dropped, unless an info frame
came just before it; anything else is a board reset, and the monotonic count
goes on from the last value.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

_HALF_SEQ = 1 << 15
_HALF_TIME = 1 << 31
_STALE_WINDOW_US = 1_000_000  # a frame from less than 1 s ago is stale, not a reset
_WRAP = np.array([[0xFFFF], [0xFFFFFFFF]], dtype=np.int64)  # rows: seq (16 bits), t_us (32 bits)
_FORWARD_BELOW = np.array([[_HALF_SEQ - 1], [_HALF_TIME - 1]], dtype=np.uint64)


def _steps_forward(d: np.ndarray) -> np.ndarray:
    """The rule, on (2, n) wrapped steps (seq, t_us): 0 < step < half, as one unsigned compare each."""
    return (d - 1).view(np.uint64) < _FORWARD_BELOW


class Unwrapped(NamedTuple):
    """One block's frames on the monotonic clocks (a tuple: this is made on every read)."""

    seq: np.ndarray
    t_us: np.ndarray
    keep: np.ndarray | None  # which frames were handed on; None: every one
    resets: list[int]        # positions (among those kept) where a new boot starts
    lost: int                # sequence numbers skipped
    stale: int               # frames dropped as repeats or out of order


class Clock:
    """Unwraps block after block; steps are taken from the last frame handed on."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None  # (seq16, t32) of the last frame handed on
        self._seq64 = -1  # its unwrapped values
        self._t64 = -1

    def unwrap(self, seq16: np.ndarray, t32: np.ndarray, info_at: list[int]) -> Unwrapped:
        """seq16, t32: (n,) wrapped values; info_at: positions that follow an info frame (a boot may start there).

        The usual block (every frame steps forward) is one cumsum in as few numpy
        calls as will do: this runs on every read. Only a reset or a stale frame is
        handled on its own.
        """
        n = len(seq16)
        if n == 0:
            return Unwrapped(np.zeros(0, np.int64), np.zeros(0, np.int64), None, [], 0, 0)
        steps = np.empty((2, n + 1), dtype=np.int64)  # rows: seq, t_us, after the last frame handed on
        steps[0, 1:], steps[1, 1:] = seq16, t32
        if self._last is None:  # the very first sample starts the count
            self._last = int(steps[0, 1]) - 1, int(steps[1, 1]) - 1
            self._seq64, self._t64 = self._last
        steps[:, 0] = self._last
        d = (steps[:, 1:] - steps[:, :-1]) & _WRAP
        forward = _steps_forward(d)
        if forward.all():
            unwrapped = np.cumsum(d, axis=1)
            unwrapped[0] += self._seq64
            unwrapped[1] += self._t64
            (seq64, t64), self._last = unwrapped[:, -1].tolist(), tuple(steps[:, -1].tolist())
            lost = seq64 - self._seq64 - n
            self._seq64, self._t64 = seq64, t64
            return Unwrapped(unwrapped[0], unwrapped[1], None, [], lost, 0)
        return self._unwrap_odd(steps[:, 1:], d, forward[0] & forward[1], info_at)

    def _unwrap_odd(self, wrapped: np.ndarray, d: np.ndarray, forward: np.ndarray, info_at: list[int]) -> Unwrapped:
        """A block with stale frames or resets: runs that step forward are one cumsum each."""
        n = wrapped.shape[1]
        keep = np.ones(n, dtype=bool)
        out = np.empty((2, n), dtype=np.int64)
        resets: list[int] = []
        lost = stale = 0
        odd = np.flatnonzero(~forward).tolist() + [n]  # frames that do not simply step forward
        i = k = 0
        while True:
            j = odd[k]
            if j > i:
                out[:, i:j] = np.cumsum(d[:, i:j], axis=1) + np.array([[self._seq64], [self._t64]])
                lost += int(np.sum(d[0, i:j] - 1))
                self._seq64, self._t64 = out[:, j - 1].tolist()
                self._last = tuple(wrapped[:, j - 1].tolist())
            if j == n:
                break
            ds, dt = d[:, j].tolist()
            seq_back = ds == 0 or ds >= _HALF_SEQ
            recent_past = dt == 0 or (dt >= _HALF_TIME and (1 << 32) - dt < _STALE_WINDOW_US)
            if seq_back and recent_past and j not in info_at:  # a repeat or an out-of-order frame: already past it
                keep[j] = False
                stale += 1
                if j + 1 < n:  # the next frame steps from the last one kept, not from this one
                    d[:, j + 1] = (wrapped[:, j + 1] - np.array(self._last)) & _WRAP[:, 0]
                    fwd = bool(_steps_forward(d[:, j + 1 : j + 2]).all())
                    listed = odd[k + 1] == j + 1
                    if fwd and listed:
                        del odd[k + 1]
                    elif not fwd and not listed:
                        odd.insert(k + 1, j + 1)
            else:  # the board restarted: a new epoch continues the monotonic count
                resets.append(int(np.count_nonzero(keep[:j])))
                self._seq64 += 1
                self._t64 += 1 + int(wrapped[1, j])
                out[:, j] = self._seq64, self._t64
                self._last = tuple(wrapped[:, j].tolist())
            i, k = j + 1, k + 1
        return Unwrapped(out[0, keep], out[1, keep], keep, resets, lost, stale)
