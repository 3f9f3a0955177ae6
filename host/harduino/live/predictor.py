"""The live predictor: each new step of samples in a reader's ring buffer becomes a prediction.

    SampleBuffer ──(every `step` samples)──► ChannelStream ──► window ──► bundle.predict_proba
        ──► smoothing over the last k windows ──► label, or "uncertain" below a threshold
        ──► PredictionHistory (read by the dashboard and the terminal)

Which windows exist is decided by `windowing.window_grid`, the function that
windows training data, run on the buffer's tail: a window every `step`
samples from the start of each stretch between gaps (a reconnect, a board
reset), never across one. So a stream that is read in time gives the same
predictions however its bytes happen to arrive, and a replayed recording gives
the windows training made of it. Windows due at once (at high rates one read
brings several) go to the model in one call, smoothed in order as one call
each would be, the newest `smooth_k` of them: a predictor that falls further
behind jumps to those and counts the ones it skipped, which could not change
what the newest shows. The channels come from one
`ChannelStream` fed every sample in order (its gravity filter keeps its state
across windows, and starts again after a gap, as training starts a new
stretch there). A model whose channels need the wearer's calibration waits for
the first still stretch of the stream.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np

from .. import calibration as calib
from ..dataset import ChannelStream, needs_calibration
from ..windowing import window_grid

UNCERTAIN = "uncertain"
SMOOTHING = ("mean", "majority")
_WAKE_S = 0.1        # longest wait on the buffer before looking at the stop flag again


# ---------------------------------------------------------------- pure parts

def smooth(probas: np.ndarray, method: str = "mean") -> np.ndarray:
    """(k, classes) probabilities of the last k windows -> one (classes,) vector that sums to 1.

    "mean": the moving average of the probabilities.
    "majority": each window votes for its most likely class; the vector is the share of votes.
    """
    probas = np.asarray(probas, dtype=np.float64)
    if method == "mean":
        out = probas.mean(axis=0)
    elif method == "majority":
        out = np.bincount(probas.argmax(axis=1), minlength=probas.shape[1]) / len(probas)
    else:
        raise ValueError(f"unknown smoothing {method!r}; choose one of {', '.join(SMOOTHING)}")
    return out / out.sum()


def decide(proba: np.ndarray, classes, threshold: float) -> tuple[str, float]:
    """The most likely class and its probability, or UNCERTAIN when that is below the threshold."""
    best = int(np.argmax(proba))
    confidence = float(proba[best])
    return (str(classes[best]) if confidence >= threshold else UNCERTAIN), confidence


# ---------------------------------------------------------------- results

@dataclass
class Prediction:
    """What the predictor made of one window."""

    index: int               # buffer index just after the window's newest sample
    t: float                 # board time of the newest sample, s
    label: str               # smoothed decision, or UNCERTAIN
    confidence: float        # smoothed probability of the most likely class
    proba: np.ndarray        # (classes,) smoothed probabilities, sum 1
    raw_proba: np.ndarray    # (classes,) this window's own probabilities
    classes: tuple           # class names, in the order of proba
    # Times, each window's share where several went to the model in one call:
    window_ms: float         # taking the window out of the buffer and shaping it
    model_ms: float          # bundle.predict_proba (features and classifier)
    smooth_ms: float
    latency_ms: float        # from the newest sample's host arrival to this result
    model: str = ""          # which bundle made it


@dataclass
class PredictorStats:
    predictions: int
    skipped: int             # windows passed over to catch up
    gaps: int                # gaps in the stream (a pause, a board reset) since the start: no window spans one
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    model_p50_ms: float | None
    model: str = ""
    error: str | None = None
    waiting_for: str | None = None   # e.g. the wearer to stand still for the calibration

    def line(self) -> str:
        return (f"{self.predictions} predictions, {self.skipped} skipped, latency p50 {format_ms(self.latency_p50_ms)} "
                f"p99 {format_ms(self.latency_p99_ms)}, model {format_ms(self.model_p50_ms)}")


def format_ms(value: float | None, unit: str = " ms") -> str:
    """A figure in milliseconds for people: `1.3 ms`, or `n/a` before there is one."""
    return "n/a" if value is None else f"{value:.1f}{unit}"


class PredictionHistory:
    """The recent predictions, thread-safe: the predictor appends, the GUI and terminal read."""

    def __init__(self, maxlen: int = 2048) -> None:
        self._items: collections.deque[Prediction] = collections.deque(maxlen=maxlen)
        self._count = 0
        self._changed = threading.Condition()
        self._listeners: list = []

    @property
    def count(self) -> int:
        """Predictions ever appended (a monotonic index, like SampleBuffer.total)."""
        return self._count

    def append(self, prediction: Prediction) -> None:
        with self._changed:
            self._items.append(prediction)
            self._count += 1
            self._changed.notify_all()
        for listener in self._listeners:
            listener()

    def on_append(self, listener) -> None:
        """Call listener() after each append, in the predictor's thread (as SampleBuffer.on_append)."""
        self._listeners.append(listener)

    def latest(self) -> Prediction | None:
        with self._changed:
            return self._items[-1] if self._items else None

    def since(self, count: int) -> list[Prediction]:
        """The predictions appended after the first `count` (those still held)."""
        with self._changed:
            new = min(self._count - count, len(self._items))
            return list(self._items)[len(self._items) - new:] if new > 0 else []

    def recent(self, n: int | None = None) -> list[Prediction]:
        with self._changed:
            items = list(self._items)
        return items if n is None else items[-n:]

    def wait(self, count: int, timeout: float | None = None) -> bool:
        """Block until more than `count` predictions were made (True) or the timeout passes."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count > count, timeout)


# ---------------------------------------------------------------- the thread

class Predictor(threading.Thread):
    """Predicts from `buffer` in the background; results go to `history`.

    `set_bundle` swaps the model while running (the next window uses it, the
    smoothing starts afresh since the classes may differ). `ended`, if given,
    is the reader's `finished` event: once it is set and every window has
    been seen, `finished` is set too.
    """

    def __init__(self, buffer, bundle, rate_hz: float, *, step: int | None = None, smooth_k: int = 5,
                 smoothing: str = "mean", threshold: float = 0.5, ended: threading.Event | None = None,
                 history: PredictionHistory | None = None, model_name: str = "", calibration=None) -> None:
        super().__init__(name="predictor", daemon=True)
        if smoothing not in SMOOTHING:
            raise ValueError(f"unknown smoothing {smoothing!r}")
        self.buffer = buffer
        self.rate_hz = float(rate_hz)
        self.step = int(step or bundle.step)
        self.smooth_k = max(1, int(smooth_k))
        self.smoothing = smoothing
        self.threshold = float(threshold)
        self.history = history or PredictionHistory()
        self.finished = threading.Event()
        self.error: str | None = None
        self._ended = ended
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._bundle, self._model_name = bundle, model_name
        self._recent: collections.deque[np.ndarray] = collections.deque(maxlen=self.smooth_k)
        self._latency = collections.deque(maxlen=1000)   # ms, for p50/p99
        self._model_ms = collections.deque(maxlen=1000)
        self.skipped = 0
        self.gaps = 0
        self.predictions = 0
        self.calibration = calibration
        self.waiting_for: str | None = self._waiting_for(bundle)
        self._stream: ChannelStream | None = None
        self._fed = 0               # buffer index of the next sample the stream has not seen
        self._tail = None           # the newest `window` rows of channels
        # Buffer indices: where the grid's next window starts, the first start not yet decided (windows
        # ending before the predictor was made are history, not ones it fell behind on), the newest gap seen.
        total = buffer.total
        self._next, self._undecided, self._last_cut = 0, total - bundle.window, total - 1

    @property
    def bundle(self):
        return self._bundle

    @property
    def model_name(self) -> str:
        return self._model_name

    def set_bundle(self, bundle, model_name: str = "") -> None:
        """Use another model from the next window on."""
        with self._lock:
            self._bundle, self._model_name = bundle, model_name
            self._recent.clear()
            self._stream = None  # the next window derives its channels afresh, from the stretch's start
            self.waiting_for = self._waiting_for(bundle)

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def stats(self) -> PredictorStats:
        with self._lock:  # the deques are appended to by the thread
            latency, model = np.array(self._latency), np.array(self._model_ms)
        return PredictorStats(
            predictions=self.predictions, skipped=self.skipped, gaps=self.gaps,
            latency_p50_ms=float(np.percentile(latency, 50)) if latency.size else None,
            latency_p99_ms=float(np.percentile(latency, 99)) if latency.size else None,
            model_p50_ms=float(np.percentile(model, 50)) if model.size else None,
            model=self._model_name, error=self.error, waiting_for=self.waiting_for)

    def run(self) -> None:
        try:
            self._loop()
        except Exception as err:  # noqa: BLE001 - a model that fails is reported, not a dead silent thread
            self.error = f"the model failed on a live window: {err}"
        finally:
            self.finished.set()

    def _loop(self) -> None:
        while not self._stop_event.is_set():
            ended = self._ended is not None and self._ended.is_set()  # read before the buffer: nothing after
            with self._lock:
                bundle, name = self._bundle, self._model_name
            if self.buffer.total >= self._next + bundle.window and self._advance(bundle, name):
                continue
            if ended:
                return
            self.buffer.wait(self._next + bundle.window - 1, _WAKE_S)

    def _waiting_for(self, bundle) -> str | None:
        if needs_calibration(bundle.channel_set) and self.calibration is None:
            return "the wearer to stand still for a few seconds (calibration)"
        return None

    def _advance(self, bundle, name: str) -> bool:
        """Grid the buffer's tail and predict the windows due (see the module text); False when none is due yet."""
        size, started = bundle.window, time.monotonic()
        # The tail from the grid's next window, or from the last sample fed when that is older (so a
        # gap at the seam shows); a stream that starts again takes all the samples still held.
        lo = 0 if self._stream is None else min(self._next, self._fed - 1)
        block = self.buffer.since(lo)
        if block.start > lo:  # overwritten already (a very slow model): the stream starts again from what is left
            self._stream = None
        lo = block.start
        grid = window_grid(block.t_us / 1e6, self.rate_hz, size, self.step, (self._next - lo) % self.step)
        self._next = lo + grid.next
        new_cuts = lo + grid.cuts[lo + grid.cuts > self._last_cut]
        if new_cuts.size:
            self.gaps += len(new_cuts)
            self._last_cut = int(new_cuts[-1])
        due = grid.starts[lo + grid.starts >= self._undecided]
        if not due.size:
            return False
        # The newest k due windows, in one model call: older ones cannot change what the newest shows.
        starts = due[-self.smooth_k:]
        self._undecided = lo + int(due[-1]) + 1
        if self.waiting_for is None:  # windows passed over while calibrating were never due
            self.skipped += len(due) - len(starts)
        if self._stream is None and not self._start_stream(bundle, block, lo, int(starts[-1]) + size):
            return True
        windows = self._windows(block, lo, grid, starts, size)
        windowed = time.monotonic()
        raws = np.asarray(bundle.predict_proba(windows), dtype=np.float64)
        modelled = time.monotonic()
        with self._lock:
            if bundle is not self._bundle:  # swapped while predicting: drop these
                return True
            probas = []
            for raw in raws:  # smoothed in order, as one call each would
                self._recent.append(raw)
                probas.append(smooth(np.array(self._recent), self.smoothing))
        decisions = [decide(proba, bundle.classes_, self.threshold) for proba in probas]
        done, n = time.monotonic(), len(starts)
        # Each window's share of the batch's times, so that summed over windows they are the time spent.
        window_ms, model_ms, smooth_ms = ((windowed - started) * 1e3 / n, (modelled - windowed) * 1e3 / n,
                                          (done - modelled) * 1e3 / n)
        classes = tuple(str(c) for c in bundle.classes_)
        for start, raw, proba, (label, confidence) in zip(starts, raws, probas, decisions):
            end = int(start) + size
            latency = (done - block.host_t[end - 1]) * 1e3
            with self._lock:
                self._latency.append(latency)
                self._model_ms.append(model_ms)
            self.predictions += 1
            self.history.append(Prediction(
                index=lo + end, t=float(block.t_us[end - 1]) / 1e6, label=label, confidence=confidence,
                proba=proba, raw_proba=raw, classes=classes, window_ms=window_ms, model_ms=model_ms,
                smooth_ms=smooth_ms, latency_ms=latency, model=name))
        return True

    def _start_stream(self, bundle, block, lo: int, end: int) -> bool:
        """A fresh channel stream from the block's first sample (buffer index lo); False while it cannot start
        yet (the calibration its model needs is not there: tried on the last minute up to the window's end)."""
        if self.waiting_for is not None:
            since = max(0, end - int(60 * self.rate_hz))
            self.calibration = calib.estimate(block.t_us[since:] / 1e6, block.si[since:], self.rate_hz)
            if self.calibration is None:
                return False
            self.waiting_for = None
        self._stream = ChannelStream(bundle.channel_set, self.rate_hz, self.calibration)
        self._fed, self._tail = lo, np.zeros((0, len(self._stream.names)), dtype=np.float32)
        return True

    def _windows(self, block, lo: int, grid, starts: np.ndarray, size: int) -> np.ndarray:
        """(n, channels, size): the windows at the block's `starts`, their samples pushed through the stream in
        order up to the last one's end; it starts again at each gap, as training starts a new stretch there."""
        fed, end = self._fed - lo, int(starts[-1]) + size
        cuts = [int(c) for c in grid.cuts[(grid.cuts >= fed) & (grid.cuts <= starts[-1])]]
        tail, out = self._tail, []
        for a, b, reset in zip([fed, *cuts], [*cuts, end], [False] + [True] * len(cuts)):
            if reset:
                self._stream.reset()
                tail = tail[:0]
            rows = np.concatenate([tail, self._stream.push(block.si[a:b])]) if b > a else tail
            first = b - len(rows)  # the block position of rows[0]
            out += [rows[s - first:s - first + size] for s in starts[(starts >= first) & (starts + size <= b)]]
            tail = rows[-size:]
        self._tail, self._fed = tail, lo + end
        return np.stack(out).transpose(0, 2, 1)
