"""The live predictor: each new step of samples in a reader's ring buffer becomes a prediction.

    SampleBuffer ──(every `step` samples)──► ChannelStream ──► window ──► bundle.predict_proba
        ──► smoothing over the last k windows ──► label, or "uncertain" below a threshold
        ──► PredictionHistory (read by the dashboard and the terminal)

Windows end on a fixed grid of buffer indices (every `step` samples from the
first full window), so a stream that is read in time gives the same
predictions however its bytes happen to arrive. A predictor that falls behind
jumps to the newest window on the grid and counts the ones it skipped. A
window never spans a gap in the stream (a reconnect, a board reset): the
predictor waits for a whole window after it, as training never windows across
one either. The channels come from one `ChannelStream` fed every sample in
order (its gravity filter keeps its state across windows, and starts again
after a gap, as training starts a new stretch there), so a replayed recording
gives the windows training made of it. A model whose channels need the
wearer's calibration waits for the first still stretch of the stream.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np

from .. import calibration as calib
from ..dataset import ChannelStream, needs_calibration

UNCERTAIN = "uncertain"
SMOOTHING = ("mean", "majority")
_GAP_PERIODS = 3.0   # a board-time step longer than this many sample periods is a gap
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


def gap_end(t_us: np.ndarray, rate_hz: float) -> int:
    """Index just after the last gap in a run of board times (0 if evenly spaced throughout)."""
    dt = np.diff(t_us)
    gaps = np.flatnonzero((dt <= 0) | (dt > _GAP_PERIODS * 1e6 / rate_hz))
    return int(gaps[-1]) + 1 if gaps.size else 0


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
    window_ms: float         # taking the window out of the buffer and shaping it
    model_ms: float          # bundle.predict_proba (features and classifier)
    smooth_ms: float
    latency_ms: float        # from the newest sample's host arrival to this result
    model: str = ""          # which bundle made it


@dataclass
class PredictorStats:
    predictions: int
    skipped: int             # windows passed over to catch up
    gaps: int                # windows not made because they would span a gap in the stream
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    model_p50_ms: float | None
    model: str = ""
    error: str | None = None
    waiting_for: str | None = None   # e.g. the wearer to stand still for the calibration

    def line(self) -> str:
        def ms(x):
            return "n/a" if x is None else f"{x:.1f} ms"
        return (f"{self.predictions} predictions, {self.skipped} skipped, latency p50 {ms(self.latency_p50_ms)} "
                f"p99 {ms(self.latency_p99_ms)}, model {ms(self.model_p50_ms)}")


class PredictionHistory:
    """The recent predictions, thread-safe: the predictor appends, the GUI and terminal read."""

    def __init__(self, maxlen: int = 2048) -> None:
        self._items: collections.deque[Prediction] = collections.deque(maxlen=maxlen)
        self._count = 0
        self._changed = threading.Condition()

    @property
    def count(self) -> int:
        """Predictions ever appended (a monotonic index, like SampleBuffer.total)."""
        return self._count

    def append(self, prediction: Prediction) -> None:
        with self._changed:
            self._items.append(prediction)
            self._count += 1
            self._changed.notify_all()

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
        self._stretch_start = 0     # buffer index where the stream's current stretch began
        self._last_t_us = None      # board time of the last sample fed, to see a gap at the seam
        self._tail = None           # the newest `window` rows of channels
        # Window ends lie on a grid anchored at the stream's start; samples that came before the
        # predictor was made are history, not windows it fell behind on.
        size, total = bundle.window, buffer.total
        self._first_end = size + self.step * -(-max(0, total - size) // self.step)

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
        end = self._first_end  # index just after the next window to predict
        while not self._stop_event.is_set():
            ended = self._ended is not None and self._ended.is_set()  # read before the buffer: nothing after
            total = self.buffer.total
            if total < end:
                if ended:
                    return
                self.buffer.wait(end - 1, _WAKE_S)
                continue
            behind = (total - end) // self.step
            if self.waiting_for is None:  # windows passed over while calibrating were never due
                self.skipped += behind
            end += behind * self.step
            end = self._predict(end)

    def _waiting_for(self, bundle) -> str | None:
        if needs_calibration(bundle.channel_set) and self.calibration is None:
            return "the wearer to stand still for a few seconds (calibration)"
        return None

    def _start_stream(self, bundle, end: int) -> bool:
        """A fresh channel stream from the oldest sample still held; False while it cannot start yet."""
        first = self.buffer.since(0).start
        if self.waiting_for is not None:
            block = self.buffer.since(max(first, end - int(60 * self.rate_hz)))  # the last minute at most
            self.calibration = calib.estimate(block.t_us / 1e6, block.si, self.rate_hz)
            if self.calibration is None:
                return False
            self.waiting_for = None
        self._stream = ChannelStream(bundle.channel_set, self.rate_hz, self.calibration)
        self._fed = self._stretch_start = first
        self._last_t_us, self._tail = None, np.zeros((0, len(self._stream.names)), dtype=np.float32)
        return True

    def _feed(self, block, n: int, size: int) -> int:
        """Push the first n samples of `block` (from self._fed on) through the stream, starting a new
        stretch at each gap; returns how many samples the current stretch holds."""
        t_us, si = block.t_us[:n], block.si[:n]
        if self._last_t_us is not None:
            t_us = np.concatenate([[self._last_t_us], t_us])
        dt = np.diff(t_us)
        gaps = np.flatnonzero((dt <= 0) | (dt > _GAP_PERIODS * 1e6 / self.rate_hz))
        offset = 1 if self._last_t_us is not None else 0
        start = int(gaps[-1]) + 1 - offset if gaps.size else 0  # the newest stretch starts here in si
        if gaps.size:
            self._stream.reset()
            self._stretch_start = self._fed + start
            self._tail = self._tail[:0]
        channels = self._stream.push(si[start:])
        self._tail = np.concatenate([self._tail, channels])[-size:]
        self._fed += n
        self._last_t_us = int(block.t_us[n - 1]) if n else self._last_t_us
        return self._fed - self._stretch_start

    def _predict(self, end: int) -> int:
        """Predict the window ending at `end`; returns where the next window ends."""
        with self._lock:
            bundle, name = self._bundle, self._model_name
        size = bundle.window
        started = time.monotonic()
        if self._stream is None and not self._start_stream(bundle, end):
            return end + self.step
        block = self.buffer.since(self._fed)
        if block.start > self._fed:  # overwritten already (a very slow model): start again from what is left
            self._stream = None
            return block.end + self.step
        fed = self._feed(block, end - self._fed, size)
        if fed < size:  # a gap inside the window: wait for the first window wholly after it
            self.gaps += 1
            return self._stretch_start + size
        window = self._tail.T[None]
        host_t_newest, t_newest = block.host_t[end - block.start - 1], block.t_us[end - block.start - 1]
        windowed = time.monotonic()
        raw = np.asarray(bundle.predict_proba(window), dtype=np.float64)[0]
        modelled = time.monotonic()
        with self._lock:
            if bundle is not self._bundle:  # swapped while predicting: drop this one
                return end
            self._recent.append(raw)
            proba = smooth(np.array(self._recent), self.smoothing)
        label, confidence = decide(proba, bundle.classes_, self.threshold)
        done = time.monotonic()
        latency = (done - host_t_newest) * 1e3
        with self._lock:
            self._latency.append(latency)
            self._model_ms.append((modelled - windowed) * 1e3)
        self.predictions += 1
        self.history.append(Prediction(
            index=end, t=float(t_newest) / 1e6, label=label, confidence=confidence, proba=proba,
            raw_proba=raw, classes=tuple(str(c) for c in bundle.classes_),
            window_ms=(windowed - started) * 1e3, model_ms=(modelled - windowed) * 1e3,
            smooth_ms=(done - modelled) * 1e3, latency_ms=latency, model=name))
        return end + self.step
