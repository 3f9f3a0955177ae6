"""A live session: one reader, one model, one predictor, and the switches a user has over them.

The dashboard and the terminal both drive a `LiveSession` from their own loop
(a QTimer, a wait on the history): `connect` a port, `set_model` while
streaming, `poll` to start predicting once the board has said its rate. The
reader and the predictor are threads; the session itself is only touched from
the caller's thread.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..models import load_bundle
from ..reader import READ_INTERVAL_S, Reader
from .predictor import PredictionHistory, Predictor

BUFFER_SAMPLES = 1 << 17   # two minutes at 1 kHz: the plots' span and a recorder's backlog fit easily


class LiveSession:
    def __init__(self, model: str | Path | None = None, *, step: int | None = None, smooth_k: int = 5,
                 smoothing: str = "mean", threshold: float = 0.5, capacity: int = BUFFER_SAMPLES,
                 rate_hz: int | None = None, read_interval_s: float = READ_INTERVAL_S) -> None:
        self.step, self.smooth_k, self.smoothing, self.threshold = step, smooth_k, smoothing, threshold
        self.rate_hz = rate_hz  # asked of every board connected (--rate); None: the board's own
        self.read_interval_s = read_interval_s  # the reader's pace: as often as the view shows something new
        self.capacity = capacity
        self.reader: Reader | None = None
        self.predictor: Predictor | None = None
        self.history = PredictionHistory()
        self.bundle = None
        self.model_path: Path | None = None
        self.model_error: str | None = None   # why there are no predictions, when a model does not fit
        if model is not None:
            self.set_model(model)

    # -- the port

    @property
    def url(self) -> str | None:
        return self.reader.url if self.reader is not None else None

    def connect(self, url: str) -> None:
        """Start reading url (after letting go of the previous port); predictions start with its info frame."""
        self.disconnect()
        self.history = PredictionHistory()
        self.model_error = None
        self.reader = Reader(url, capacity=self.capacity, rate_hz=self.rate_hz, min_interval=self.read_interval_s)
        self.reader.start()

    def disconnect(self) -> None:
        self._stop_predictor()
        if self.reader is not None:
            self.reader.stop()
            self.reader = None

    def close(self) -> None:
        self.disconnect()

    # -- the model

    def set_model(self, folder: str | Path) -> None:
        """Load a bundle and use it from the next window on; UserError (and the old model kept) if it cannot be."""
        bundle = load_bundle(folder)
        if self.reader is not None and self.reader.info is not None:
            bundle.check_compatible(self.reader.info.rate_hz)
        self.bundle, self.model_path, self.model_error = bundle, Path(folder), None
        if self.predictor is not None:
            if self.step is None and self.predictor.step != bundle.step:
                self._stop_predictor()  # another step: start over on its grid at the next poll
            else:
                self.predictor.set_bundle(bundle, self.model_name)

    @property
    def model_name(self) -> str:
        if self.bundle is None:
            return ""
        return f"{self.model_path} ({self.bundle.arch})"

    # -- the loop's tick

    def poll(self) -> None:
        """Start the predictor once the board's rate is known and the model fits it."""
        reader = self.reader
        if reader is None or reader.info is None or self.bundle is None:
            return
        if self.predictor is None and self.model_error is None:
            try:
                self.bundle.check_compatible(reader.info.rate_hz)
            except UserError as err:
                self.model_error = str(err)
                return
            self.predictor = Predictor(reader.buffer, self.bundle, reader.info.rate_hz, step=self.step,
                                       smooth_k=self.smooth_k, smoothing=self.smoothing, threshold=self.threshold,
                                       ended=reader.finished, history=self.history, model_name=self.model_name)
            self.predictor.start()

    def board_prediction(self) -> str:
        """The board's own latest prediction ("walking 93%"), "" while it sends none (no model built in)."""
        log = self.reader.predictions if self.reader is not None else None
        if log is None or not log.total:
            return ""
        latest, model = log.latest(), log.model
        i = int(latest.class_index[0])
        name = model.classes[i] if model is not None and 0 <= i < len(model.classes) else f"class {i}"
        score = int(latest.scores[0, i]) if 0 <= i < latest.scores.shape[1] else 0
        return f"{name} {100 * score / 255:.0f}%"

    @property
    def finished(self) -> bool:
        """The stream ended (a replay played out, or the reader gave up) and every window was predicted."""
        reader = self.reader
        if reader is None or not reader.finished.is_set():
            return False
        return self.predictor is None or self.predictor.finished.is_set()

    def _stop_predictor(self) -> None:
        if self.predictor is not None:
            self.predictor.stop()
            self.predictor = None
