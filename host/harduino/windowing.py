"""The one window grid: where a stream of samples may not be windowed across, and which windows it holds.

A stream is cut where its sample times go back (a board reset) or skip ahead
more than GAP_PERIODS sample periods (an unplug, lost frames); each stretch
between cuts holds a window every `step` samples from its first sample, as many
as fit wholly inside it. `window_grid` decides this for a whole recording
(`dataset.window_dataset`, training) and for the live predictor's buffer tail
alike, and `windows` / `windows_at` cut the samples, so training and live
prediction see the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .window_defaults import STEP, WINDOW

LABEL_POLICIES = ("pure", "majority")
GAP_PERIODS = 3.0  # a time step longer than this many sample periods (or one going back) is a gap


def windows(x: np.ndarray, size: int = WINDOW, step: int = STEP) -> np.ndarray:
    """(n, c) samples of one stretch -> (n_windows, c, size) float32 windows starting every `step` samples.

    The one windowing function: training and live prediction both use it.
    Window i covers samples i*step .. i*step+size-1 (the grid `window_grid`
    lays on a stretch); a tail shorter than a window is left out.
    """
    return windows_at(x, _grid(0, len(x), size, step), size)


def windows_at(x: np.ndarray, starts: np.ndarray, size: int = WINDOW) -> np.ndarray:
    """(n, c) samples -> (len(starts), c, size) float32 windows, window i starting at sample starts[i]."""
    if size < 1:
        raise ValueError("the window size must be positive")
    x = np.asarray(x, dtype=np.float32)
    starts = np.asarray(starts, dtype=np.intp)
    if x.shape[0] < size:
        return np.zeros((0, x.shape[1], size), dtype=np.float32)
    view = np.lib.stride_tricks.sliding_window_view(x, size, axis=0)  # (n-size+1, c, size), no copy
    return np.ascontiguousarray(view[starts])


@dataclass(frozen=True)
class WindowGrid:
    """Where a run of samples may be windowed: its stretches and the windows they hold (indices into it)."""

    stretches: tuple[tuple[int, int], ...]  # [start, end) of each run of evenly spaced samples, in order
    starts: np.ndarray                      # (n,) first sample of every window, each wholly inside a stretch
    next: int                               # where the last stretch's next window starts, once samples come

    @property
    def cuts(self) -> np.ndarray:
        """Where a gap ends: the first sample of every stretch but the first."""
        return np.array([a for a, _ in self.stretches[1:]], dtype=np.intp)


def window_grid(t: np.ndarray, rate_hz: float, size: int = WINDOW, step: int = STEP,
                phase: int = 0) -> WindowGrid:
    """The one decision of where windows lie in a run of sample times (seconds).

    The run is cut where time goes back (a board reset) or skips ahead more than
    GAP_PERIODS sample periods (an unplug, lost frames); each stretch holds a
    window every `step` samples from its first sample, as many as fit wholly
    inside it. `phase`: the first stretch's windows start at phase, phase+step, ...
    instead, for a stream's tail taken up in the middle of a stretch whose grid
    began earlier. `window_dataset` grids whole recordings, the live predictor its
    buffer's tail.
    """
    t = np.asarray(t, dtype=np.float64)
    if len(t) == 0:
        return WindowGrid((), np.zeros(0, dtype=np.intp), phase)
    dt = np.diff(t)
    edges = np.concatenate([[0], np.flatnonzero((dt <= 0) | (dt > GAP_PERIODS / rate_hz)) + 1, [len(t)]])
    origins = edges[:-1].copy()
    origins[0] = phase
    starts = [_grid(int(o), int(b), size, step) for o, b in zip(origins, edges[1:])]
    return WindowGrid(tuple((int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])), np.concatenate(starts),
                      int(origins[-1]) + step * len(starts[-1]))


def _grid(origin: int, end: int, size: int, step: int) -> np.ndarray:
    """Starts origin, origin+step, ... of the windows of `size` that end by `end`."""
    if size < 1 or step < 1:
        raise ValueError("window size and step must be positive")
    return np.arange(origin, end - size + 1, step, dtype=np.intp)


def window_labels(labels: np.ndarray, size: int = WINDOW, step: int = STEP,
                  policy: str = "pure") -> np.ndarray:
    """One label per window of `windows(..., size, step)`; '' where the window gets none.

    "pure": a window whose samples carry more than one label, or no label, gets ''.
    "majority": the most common label of the window ('' if most samples have none; ties
    between labels go to the one that sorts first).
    """
    if policy not in LABEL_POLICIES:
        raise UserError(f"unknown label policy {policy!r}; choose one of {', '.join(LABEL_POLICIES)}.")
    names, codes = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    coded = windows(codes.reshape(-1, 1).astype(np.float32), size, step)[:, 0, :].astype(np.int64)
    if coded.shape[0] == 0:
        return np.zeros(0, dtype=names.dtype)
    if policy == "pure":
        same = coded.min(axis=1) == coded.max(axis=1)
        return np.where(same, names[coded[:, 0]], "")
    counts = (coded[:, :, None] == np.arange(names.size)).sum(axis=1).astype(np.float64)
    if names[0] == "":
        counts[:, 0] -= 0.5  # a tie between a label and no label goes to the label
    return names[np.argmax(counts, axis=1)]
