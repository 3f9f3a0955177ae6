"""Terminal mode: the dashboard's predictions, probabilities and link health as text.

A board with a model built in says its own prediction too ("board: walking 93%") beside the host's.

On a terminal, a small table redrawn in place at each prediction (at most
ten times a second). Into a pipe or a file, one line whenever the predicted
activity changes and once a second otherwise, so a log reads as a timeline.
"""

from __future__ import annotations

import sys
import time

from ..errors import UserError
from ..reader import INFO_TIMEOUT_S
from .predictor import Prediction, PredictorStats, format_ms
from .session import LiveSession

_BAR = 20            # characters of a full probability bar
_REDRAW_S = 0.1      # a terminal table is redrawn at most this often
# So the reader need not read more often: a third of the wake-ups of the dashboard's pace, and a
# window's prediction waits at most this much longer, on a view that shows it no sooner.
READ_INTERVAL_S = _REDRAW_S
_LINE_EVERY_S = 1.0  # a pipe gets a line at least this often (board time) while predicting


def wait_until_streaming(session: LiveSession, timeout: float = INFO_TIMEOUT_S) -> None:
    """Return once the board has said its rate and predictions can start; UserError if they cannot."""
    session.reader.wait_for_info(timeout)
    session.poll()
    if session.model_error:
        raise UserError(session.model_error)


def run_terminal(session: LiveSession, duration: float | None = None, out=None, tty: bool | None = None) -> int:
    """Print predictions until the duration passes, the stream ends, or Ctrl-C."""
    out = out or sys.stdout
    tty = out.isatty() if tty is None else tty
    wait_until_streaming(session)
    view = TableView(session, out) if tty else LineView(session, out)
    end = time.monotonic() + duration if duration is not None else float("inf")
    seen = 0
    try:
        while time.monotonic() < end and not session.finished and not (session.predictor and session.predictor.error):
            history = session.history
            history.wait(seen, min(_REDRAW_S * 2, max(0.0, end - time.monotonic())))
            new = history.since(seen)
            seen = history.count
            view.update(new)
    except KeyboardInterrupt:
        pass
    view.update(session.history.since(seen), final=True)
    view.close()
    predictor = session.predictor
    if predictor is not None and predictor.error:
        raise UserError(predictor.error)
    return 0


def health(session: LiveSession) -> str:
    """Link and predictor figures in one line."""
    stats = session.reader.stats()
    text = f"{stats.state_text()}, {stats.rate_hz:.1f} Hz, {stats.lost} lost, {stats.crc_errors} crc errors"
    if stats.reconnects:
        text += f", {stats.reconnects} reconnects"
    if session.predictor is not None:
        p: PredictorStats = session.predictor.stats()
        text += (f"; latency p50 {format_ms(p.latency_p50_ms, '')} p99 {format_ms(p.latency_p99_ms, '')} ms, "
                 f"{p.skipped} skipped")
        if p.waiting_for:
            text += f"; waiting for {p.waiting_for}"
    return text


def probabilities(prediction: Prediction, top: int | None = None) -> str:
    order = sorted(range(len(prediction.classes)), key=lambda i: -prediction.proba[i])[:top]
    return " ".join(f"{prediction.classes[i]} {100 * prediction.proba[i]:.0f}%" for i in order)


class LineView:
    """One line per change of activity, and one a second (of board time) in between."""

    def __init__(self, session: LiveSession, out) -> None:
        self.session, self.out = session, out
        self._label: str | None = None
        self._next = 0.0
        self._t0: float | None = None
        self._asked = False
        print(f"harduino live: {session.url} with model {session.model_name}", file=out, flush=True)

    def update(self, new: list[Prediction], final: bool = False) -> None:
        waiting = self.session.predictor.waiting_for if self.session.predictor is not None else None
        if waiting and not self._asked:  # a model of the "body" channels needs the wearer's calibration first
            print(f"harduino live: waiting for {waiting}", file=self.out, flush=True)
            self._asked = True
        for p in new:  # by board time, so a replay at any speed prints the same timeline
            if self._t0 is None:
                self._t0 = p.t
            if p.label != self._label or p.t >= self._next:
                self._label, self._next = p.label, p.t + _LINE_EVERY_S
                board = self.session.board_prediction()
                print(f"{p.t - self._t0:8.2f} s  {p.label:10s} {100 * p.confidence:4.0f}%  | {probabilities(p, 3)} "
                      f"{'| board: ' + board + ' ' if board else ''}| {health(self.session)}", file=self.out, flush=True)

    def close(self) -> None:
        print(f"end: {health(self.session)}", file=self.out, flush=True)


class TableView:
    """A table redrawn in place: the activity, a bar per class, link health."""

    def __init__(self, session: LiveSession, out) -> None:
        self.session, self.out = session, out
        self._lines = 0
        self._next = 0.0
        self._latest: Prediction | None = None
        try:  # block characters where the terminal's encoding has them
            "█·".encode(getattr(out, "encoding", None) or "ascii")
            self._bar_chars = ("█", "·")
        except (UnicodeEncodeError, LookupError):
            self._bar_chars = ("#", ".")
        print(f"harduino live: {session.url} with model {session.model_name} (Ctrl-C stops)", file=out)

    def update(self, new: list[Prediction], final: bool = False) -> None:
        if new:
            self._latest = new[-1]
        now = time.monotonic()
        if self._latest is None or (now < self._next and not final):
            return
        self._next = now + _REDRAW_S
        p = self._latest
        lines = [f"  {p.label.upper():12s} {100 * p.confidence:5.1f} %   board time {p.t:9.2f} s"]
        width = max(len(c) for c in p.classes)
        full, empty = self._bar_chars
        for name, value in zip(p.classes, p.proba):
            filled = int(round(value * _BAR))
            lines.append(f"  {name:{width}s} {full * filled}{empty * (_BAR - filled)} {100 * value:5.1f} %")
        board = self.session.board_prediction()
        if board:  # a firmware with a model built in: what the board itself says
            lines.append(f"  board: {board}")
        lines.append(f"  {health(self.session)}")
        up = f"\x1b[{self._lines}F" if self._lines else ""
        self.out.write(up + "".join(f"{line}\x1b[K\n" for line in lines))
        self.out.flush()
        self._lines = len(lines)

    def close(self) -> None:
        self.out.flush()
