"""The ring buffer between the reader thread and its consumers: samples indexed by a monotonic count.

Consumers never see single samples: they ask for everything since an index
(`since`) or the newest n (`latest`) and get a `Block` of copies. When more
comes than fits, the oldest are overwritten, unless a consumer that must miss
nothing marks what it has taken and the source can wait (see `wait_for_room`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


class _Run:
    """What Block and PredictionBlock share: a run from index `start`, as long as its `seq` column."""

    start: int
    seq: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)

    @property
    def end(self) -> int:
        """The index after the last: pass it to `since` to get what came next."""
        return self.start + len(self.seq)


def _held(index: int, total: int, capacity: int) -> tuple[int, np.ndarray]:
    """The first index still held from `index` on, and the slots of it and all after it."""
    start = min(max(index, total - capacity, 0), total)
    return start, np.arange(start, total) % capacity


@dataclass
class Block(_Run):
    """A run of consecutive samples; `start` is the buffer index of the first."""

    start: int
    seq: np.ndarray     # (n,) int64
    t_us: np.ndarray    # (n,) int64, board µs, unwrapped
    host_t: np.ndarray  # (n,) float64, host time.monotonic() at arrival
    si: np.ndarray      # (n, 6) float64: m/s² (accel x, y, z), rad/s (gyro x, y, z)


class SampleBuffer:
    """A thread-safe bounded ring buffer of samples, indexed by a monotonic sample count."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._seq = np.zeros(capacity, dtype=np.int64)
        self._t_us = np.zeros(capacity, dtype=np.int64)
        self._host_t = np.zeros(capacity, dtype=np.float64)
        self._si = np.zeros((capacity, 6), dtype=np.float64)
        self._total = 0
        self._changed = threading.Condition()
        self._awaited: list[int] = []  # the index each waiting thread waits to see passed
        self._read_to: int | None = None  # what a consumer that must miss nothing has taken (mark_read)
        self._listeners: list = []        # called after each append (on_append)

    @property
    def total(self) -> int:
        """Samples ever appended; the index the next sample will get."""
        return self._total

    @property
    def waiting(self) -> int:
        """How many threads wait in `wait` for a sample to come."""
        with self._changed:
            return len(self._awaited)

    def append(self, seq, t_us, host_t, si) -> None:
        """Add n samples: seq, t_us (n,) arrays, host_t one arrival time or (n,), si (n, 6)."""
        n = len(seq)
        if n == 0:
            return
        keep = slice(max(0, n - self.capacity), n)  # more than fits: only the newest matter
        with self._changed:
            first = (self._total + keep.start) % self.capacity
            if first + keep.stop - keep.start <= self.capacity:  # the usual case: one slice, no wrap
                slots = slice(first, first + keep.stop - keep.start)
            else:
                slots = (first + np.arange(keep.stop - keep.start)) % self.capacity
            self._seq[slots] = seq[keep]
            self._t_us[slots] = t_us[keep]
            self._host_t[slots] = host_t if np.ndim(host_t) == 0 else host_t[keep]
            self._si[slots] = si[keep]
            self._total += n
            if any(index < self._total for index in self._awaited):  # wake only those whose sample came
                self._changed.notify_all()
        for listener in self._listeners:
            listener()

    def on_append(self, listener) -> None:
        """Call listener() after each append, in the appending thread: for a consumer that waits in an
        event loop of its own (the dashboard hands it on to the GUI thread) rather than in `wait`."""
        self._listeners.append(listener)

    def since(self, index: int) -> Block:
        """Copies of the samples from index on (or from the oldest still held, if it was overwritten)."""
        with self._changed:
            start, slots = _held(index, self._total, self.capacity)
            return Block(start, self._seq[slots], self._t_us[slots], self._host_t[slots], self._si[slots])

    def latest(self, n: int) -> Block:
        return self.since(self._total - max(n, 0))

    def mark_read(self, index: int) -> None:
        """A consumer that must miss nothing has taken every sample before index (see wait_for_room)."""
        with self._changed:
            self._read_to = index
            self._changed.notify_all()

    def wait_for_room(self, n: int, timeout: float | None = None) -> bool:
        """Block until n more samples would overwrite none that mark_read's consumer has yet to take.

        True at once when no consumer marks what it read: a live view takes what is there.
        """
        with self._changed:
            return self._changed.wait_for(
                lambda: self._read_to is None or self._total + n - self._read_to <= self.capacity, timeout)

    def wait(self, index: int, timeout: float | None = None) -> bool:
        """Block until the buffer holds samples past index (True) or the timeout passes (False)."""
        with self._changed:
            if self._total > index:
                return True
            self._awaited.append(index)
            try:
                return self._changed.wait_for(lambda: self._total > index, timeout)
            finally:
                self._awaited.remove(index)


_LOOKBACK = 1024  # samples searched for a prediction's last sample: many steps of any board window


@dataclass
class PredictionBlock(_Run):
    """A run of the board's own predictions (prediction frames); `start` is the log index of the first."""

    start: int
    index: np.ndarray        # (n,) int64: buffer index of the window's last sample, -1 if it was not kept
    seq: np.ndarray          # (n,) int64: seq of the window's last sample, unwrapped like the samples'
    t_us: np.ndarray         # (n,) int64: board µs of that sample, -1 if it was not kept
    class_index: np.ndarray  # (n,) int64
    scores: np.ndarray       # (n, MODEL_CLASSES_MAX) uint8: 0..255 per class, zero past the model's classes
    cycles: np.ndarray       # (n,) int64: CPU cycles the board spent on the window


class PredictionLog:
    """The board's predictions, bounded like the samples, and the model frame it last sent (`model`).

    A few predictions a second: the reader appends those of one read at once, after
    that read's samples, so a consumer that takes the predictions first and then the
    samples holds every sample a prediction names.
    """

    FIELDS = ("index", "seq", "t_us", "class_index", "cycles")

    def __init__(self, capacity: int = 4096, classes_max: int = 8) -> None:
        self.capacity = capacity
        self.model = None  # protocol.BoardModelInfo of the last model frame, None before one came
        self._columns = {name: np.zeros(capacity, dtype=np.int64) for name in self.FIELDS}
        self._scores = np.zeros((capacity, classes_max), dtype=np.uint8)
        self._total = 0
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return self._total

    def add(self, predictions, buffer: SampleBuffer) -> None:
        """Add one read's protocol.BoardPrediction list; each finds its window's last sample in `buffer`.

        That sample came at most a few steps before its prediction (the board spreads the work
        over the sample slots after it), so the newest samples are searched, newest first.
        """
        n = len(predictions)
        if n == 0:
            return
        seq = np.array([p.seq for p in predictions], dtype=np.int64)
        recent = buffer.latest(_LOOKBACK)
        index, t_us = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
        if len(recent):
            match = recent.seq[None, ::-1] == seq[:, None]  # newest first: after a reset seq repeats
            found = match.any(axis=1)
            at = len(recent) - 1 - match.argmax(axis=1)
            index[found], t_us[found] = recent.start + at[found], recent.t_us[at[found]]
        scores = np.zeros((n, self._scores.shape[1]), dtype=np.uint8)
        for row, p in zip(scores, predictions):
            row[:len(p.scores)] = p.scores
        columns = {"index": index, "seq": seq, "t_us": t_us,
                   "class_index": np.array([p.class_index for p in predictions], dtype=np.int64),
                   "cycles": np.array([p.cycles for p in predictions], dtype=np.int64)}
        keep = slice(max(0, n - self.capacity), n)
        with self._lock:
            slots = (self._total + np.arange(keep.start, n)) % self.capacity
            for name, column in self._columns.items():
                column[slots] = columns[name][keep]
            self._scores[slots] = scores[keep]
            self._total += n

    def since(self, index: int) -> PredictionBlock:
        """Copies of the predictions from index on (or from the oldest still held)."""
        with self._lock:
            start, slots = _held(index, self._total, self.capacity)
            return PredictionBlock(start, *(self._columns[name][slots] for name in ("index", "seq", "t_us")),
                                   self._columns["class_index"][slots], self._scores[slots],
                                   self._columns["cycles"][slots])

    def latest(self) -> PredictionBlock:
        return self.since(self._total - 1)
