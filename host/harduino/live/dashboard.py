"""The live dashboard (pyqtgraph + PyQt5): signals, probabilities, the activity, a timeline, link health.

Everything on screen is drawn by one tick in the GUI thread (the plots live
in harduino.live.plots), when the reader or the predictor has added something
and at most once a frame: their threads only say that something came (a queued
Qt signal) and never touch a widget, so the GUI thread wakes when there is
something to draw rather than on a clock of its own. Each tick takes what came
since the last one, as numpy blocks, and shifts it into preallocated arrays the
plots draw from; a tick that finds the window hidden or minimised draws nothing.
A slower timer refreshes the text panels, which change less often than the eye
notices.
"""

from __future__ import annotations

import collections
import signal
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from .. import transport
from ..errors import UserError
from ..recording import check_subject
from ..motion import ACTIVITIES
from .plots import ProbabilityBars, SignalPlots, Timeline, class_colour
from .linkpanel import ALARM, ALARM_BOLD, PLAIN, LinkPanel
from .predictor import format_ms
from .recorder import BackgroundRecording
from .session import LiveSession

FRAME_MS = 30            # at most a frame this often: 33 a second, a little over the 30 wanted
PANEL_MS = 250           # text panels
EXAMPLE_PORTS = ("sim://?script=still:6,walking:8,running:8,jumping:6,waving:8&subject=2&seed=7",
                 "sim://?activity=walking", "sim://?rate=1000&baud=1000000")


def find_bundles(*roots: Path) -> list[Path]:
    """Model bundle folders (holding bundle.json) in and directly under the given folders."""
    found = []
    for root in roots:
        for meta in [root / "bundle.json", *sorted(root.glob("*/bundle.json"))] if root.is_dir() else []:
            if meta.is_file() and meta.parent not in found:
                found.append(meta.parent)
    return found


class Arrivals(QtCore.QObject):
    """What the reader's and the predictor's threads say to the GUI thread: something came."""

    came = QtCore.pyqtSignal()


class Dashboard(QtWidgets.QMainWindow):
    def __init__(self, session: LiveSession, *, seconds: float = 10.0, out: Path = Path("recordings"),
                 subject: str = "1", models_root: Path = Path("models"), labels: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.session = session
        self.label_keys = tuple(labels)  # keys 1-9, numbered as record's --labels; () for the model's classes
        self.seconds = seconds
        self.out = Path(out)
        self.models_root = Path(models_root)
        self.recording: BackgroundRecording | None = None
        self.next_label = ""
        self._seen = 0              # predictions drawn so far
        self._shape = None          # (rate, step, classes, reader) the plots were laid out for
        self._classes = (None, ())  # (bundle, its class names)
        self._frames = collections.deque(maxlen=120)
        self.frames_drawn = 0        # frames that drew something, since the window opened
        self.setWindowTitle("Harduino live")
        self.resize(1280, 760)
        self._build(subject)
        # A tick when samples or predictions come, FRAME_MS after the last one at the soonest.
        self.timer = QtCore.QTimer(self, singleShot=True, timerType=QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self.tick)
        self._last_tick = 0.0
        self._arrivals = Arrivals(self)
        self._arrivals.came.connect(self._frame_due, QtCore.Qt.QueuedConnection)
        self.panel_timer = QtCore.QTimer(self, interval=PANEL_MS)
        self.panel_timer.timeout.connect(self.update_panels)
        self.panel_timer.start()

    # -- layout

    def _build(self, subject: str) -> None:
        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        grid = QtWidgets.QGridLayout(central)

        bar = QtWidgets.QHBoxLayout()
        self.port_box = QtWidgets.QComboBox(editable=True, minimumWidth=340)
        self.port_box.addItems(list(EXAMPLE_PORTS) + [p["stable_id"] or p["device"]
                                                      for p in transport.list_serial_ports()])
        self.connect_button = QtWidgets.QPushButton("Connect", clicked=self.toggle_connection)
        self.model_box = QtWidgets.QComboBox(minimumWidth=220)
        self.model_box.activated.connect(lambda _: self.load_model(self.model_box.currentData()))
        browse = QtWidgets.QPushButton("Model…", clicked=self.browse_model)
        self.subject_edit = QtWidgets.QLineEdit(subject, maximumWidth=80, toolTip="subject of new recordings")
        self.record_button = QtWidgets.QPushButton("● Record", checkable=True, toolTip="keys 1-9 set the label, 0 none")
        self.record_button.toggled.connect(self.set_recording)
        for w in (QtWidgets.QLabel("Port"), self.port_box, self.connect_button, QtWidgets.QLabel("Model"),
                  self.model_box, browse, QtWidgets.QLabel("Subject"), self.subject_edit, self.record_button):
            bar.addWidget(w)
        bar.addStretch(1)
        grid.addLayout(bar, 0, 0, 1, 2)

        self.graphics = pg.GraphicsLayoutWidget()
        self.signals = SignalPlots(self.graphics, self.seconds)
        timeline_plot = self.graphics.addPlot(row=2, col=0)
        timeline_plot.setXLink(self.signals.plots[0])
        self.timeline = Timeline(timeline_plot, self.seconds)
        grid.addWidget(self.graphics, 1, 0, 2, 1)

        side = QtWidgets.QVBoxLayout()
        self.activity_label = QtWidgets.QLabel("—", alignment=QtCore.Qt.AlignCenter)
        font = self.activity_label.font()
        font.setPointSize(30)
        font.setBold(True)
        self.activity_label.setFont(font)
        self.confidence_label = QtWidgets.QLabel("waiting for the board", alignment=QtCore.Qt.AlignCenter)
        # What the wearer must do before predictions start (the calibration of a body-channel model).
        self.prompt_label = QtWidgets.QLabel(alignment=QtCore.Qt.AlignCenter, wordWrap=True)
        self.prompt_label.setStyleSheet("color: #ffb000; font-weight: bold")
        self.prompt_label.setVisible(False)
        # What a board with a model built in predicts itself, beside the host's prediction above.
        self.board_label = QtWidgets.QLabel(alignment=QtCore.Qt.AlignCenter)
        self.board_label.setVisible(False)
        side.addWidget(self.activity_label)
        side.addWidget(self.confidence_label)
        side.addWidget(self.board_label)
        side.addWidget(self.prompt_label)
        self.bar_widget = pg.PlotWidget()
        self.bars = ProbabilityBars(self.bar_widget.getPlotItem())
        side.addWidget(self.bar_widget, 2)
        self.link_panel = LinkPanel()
        small = self.link_panel.font()
        small.setPointSize(max(7, small.pointSize() - 1))
        self.link_panel.setFont(small)
        side.addWidget(self.link_panel, 1)
        grid.addLayout(side, 1, 1, 2, 1)
        grid.setColumnStretch(0, 5)
        grid.setColumnStretch(1, 2)

        self._fill_models()
        self.graphics.setFocus()  # number keys set labels unless a text field has the focus

    def _fill_models(self) -> None:
        self.model_box.clear()
        current = self.session.model_path
        folders = find_bundles(self.models_root)
        if current is not None and current.resolve() not in [f.resolve() for f in folders]:
            folders.insert(0, current)
        for folder in folders:
            self.model_box.addItem(str(folder), folder)
            if current is not None and folder.resolve() == current.resolve():
                self.model_box.setCurrentIndex(self.model_box.count() - 1)

    # -- user actions

    @property
    def drawn_predictions(self) -> int:
        """How many of the session's predictions (its history's count) the bars and timeline have drawn."""
        return self._seen

    def connect_port(self, url: str) -> None:
        self.session.connect(url)
        self.session.reader.buffer.on_append(self._announce)
        self.session.history.on_append(self._announce)
        if self.port_box.findText(url) < 0:
            self.port_box.insertItem(0, url)
        self.port_box.setCurrentText(url)
        self.connect_button.setText("Disconnect")
        self._shape, self._seen = None, 0

    def toggle_connection(self) -> None:
        if self.session.reader is not None:
            self.record_button.setChecked(False)
            self.session.disconnect()
            self.connect_button.setText("Connect")
        else:
            self.connect_port(self.port_box.currentText().strip())

    def load_model(self, folder) -> bool:
        """Swap the model while streaming; a bundle that cannot be used is reported and the old one kept."""
        if folder is None:
            return False
        try:
            self.session.set_model(folder)
        except UserError as err:
            self.statusBar().showMessage(str(err), 15000)
            self._fill_models()
            return False
        self.statusBar().showMessage(f"model {self.session.model_name}", 5000)
        self._fill_models()
        return True

    def browse_model(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Model bundle folder", str(self.models_root))
        if folder:
            self.load_model(Path(folder))

    def labels(self) -> tuple[str, ...]:
        """What keys 1-9 record: the labels given (any activity, known to the model or not), else its classes."""
        if self.label_keys:
            return self.label_keys
        bundle = self.session.bundle
        return tuple(str(c) for c in bundle.classes_) if bundle is not None else ACTIVITIES

    def press_label(self, key: int) -> None:
        labels = self.labels()
        if key > len(labels):
            return
        self.next_label = labels[key - 1] if key else ""
        if self.recording is not None:
            self.recording.set_label(self.next_label)
        self.update_panels()

    def set_recording(self, on: bool) -> None:
        if on and self.recording is None:
            reader = self.session.reader
            try:
                if reader is None:
                    raise UserError("connect a board before recording.")
                self.recording = BackgroundRecording(reader, self.out, check_subject(self.subject_edit.text()),
                                                     self.labels(), self.next_label)
            except UserError as err:
                self.statusBar().showMessage(str(err), 15000)
                self.record_button.setChecked(False)
                return
            self.record_button.setText("■ Stop")
        elif not on and self.recording is not None:
            recording, self.recording = self.recording, None
            path = recording.stop()
            self.record_button.setText("● Record")
            message = recording.error or f"recorded {recording.written} samples to {path}"
            self.statusBar().showMessage(message, 15000)
        self.update_panels()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        # Keys typed into the port or subject field never get here: those widgets take them first.
        if event.text().isdigit():
            self.press_label(int(event.text()))
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.timer.stop()
        self.panel_timer.stop()
        self.record_button.setChecked(False)
        self.session.close()
        super().closeEvent(event)

    # -- drawing

    def _announce(self) -> None:
        """Something came (called in the reader's or the predictor's thread): a frame is due."""
        try:
            self._arrivals.came.emit()
        except RuntimeError:  # the window is gone; its reader is being stopped
            pass

    def _frame_due(self) -> None:
        if not self.timer.isActive():
            wait_ms = (self._last_tick - time.monotonic()) * 1e3 + FRAME_MS
            self.timer.start(max(0, int(wait_ms)))

    def _layout_for_stream(self) -> None:
        """Size the arrays for the board's rate and the model's step and classes, when those change."""
        reader, bundle, predictor = self.session.reader, self.session.bundle, self.session.predictor
        rate = float(reader.info.rate_hz)
        step = predictor.step if predictor is not None else (bundle.step if bundle is not None else 16)
        if self._classes[0] is not bundle:  # a frame asks: named once per bundle
            self._classes = (bundle, tuple(str(c) for c in bundle.classes_) if bundle is not None else ())
        classes = self._classes[1]
        shape = (rate, step, classes, id(reader))
        if shape == self._shape:
            return
        if self._shape is None or shape[0] != self._shape[0] or shape[3] != self._shape[3]:
            self.signals.reset(rate)
        self.timeline.reset(rate, step, classes)
        self.bars.reset(classes)
        self._seen = self.session.history.count if self._shape is not None and shape[3] == self._shape[3] else 0
        self._shape = shape

    def tick(self) -> None:
        """One frame: new samples into the curves, new predictions into the bars, label and timeline."""
        self._last_tick = time.monotonic()
        session = self.session
        session.poll()
        reader = session.reader
        if reader is None or reader.info is None or not self.on_screen():
            return  # nothing to see: what came meanwhile is taken when the window is shown again
        self._layout_for_stream()
        if self.signals.take(reader.buffer) == 0 and session.history.count == self._seen:
            return
        self._frames.append(time.monotonic())
        self.frames_drawn += 1
        history = session.history
        # The count first: a prediction the predictor adds meanwhile waits for the next frame
        # instead of being counted as seen and never drawn.
        count = history.count
        new = [p for p in history.since(self._seen)[: count - self._seen] if p.classes == self.bars.classes]
        self._seen = count
        self.timeline.add(new)
        if new:
            p = new[-1]
            self.bars.show(p.proba)
            if self.activity_label.text() != p.label.upper():  # a style sheet costs a re-layout: on changes only
                self.activity_label.setText(p.label.upper())
                self.activity_label.setStyleSheet("color: #%02x%02x%02x" % class_colour(p.label, p.classes))
            self.confidence_label.setText(f"{100 * p.confidence:.0f} % confident")
        board = session.board_prediction()
        text = f"board: {board}" if board else ""
        if text != self.board_label.text():  # hidden again on a port whose board sends none
            self.board_label.setText(text)
            self.board_label.setVisible(bool(text))
        self.timeline.draw(float(reader.buffer.latest(1).t_us[-1]) / 1e6)

    def show_prompt(self, waiting: str | None) -> None:
        """Ask the wearer for what the predictor waits for, as the terminal view does; hidden when nothing."""
        text = f"Waiting for {waiting}" if waiting else ""
        if text != self.prompt_label.text():
            self.prompt_label.setText(text)
            self.prompt_label.setVisible(bool(text))

    def on_screen(self) -> bool:
        """Whether the plots can be seen: not hidden, not minimised."""
        return self.graphics.isVisible() and not self.isMinimized()

    def fps(self) -> float:
        frames = np.array(self._frames)
        return (len(frames) - 1) / (frames[-1] - frames[0]) if len(frames) > 2 and frames[-1] > frames[0] else 0.0

    def update_panels(self) -> None:
        if not self.on_screen():
            return
        session, reader = self.session, self.session.reader
        rows = []  # (key, value, look)
        if reader is None:
            rows.append(("port", "not connected", PLAIN))
        else:
            s = reader.stats()
            rows += [("port", reader.url, PLAIN), ("state", s.state_text(detail=True),
                                                   ALARM_BOLD if s.state.alarming else PLAIN)]
            if reader.info is not None:
                i = reader.info
                rows.append(("board", f"{i.sensor} fw {'.'.join(map(str, i.firmware_version))}, ±{i.accel_range_g} g, "
                                      f"±{i.gyro_range_dps} °/s, {i.rate_hz} Hz", PLAIN))
            drift = "n/a" if s.drift_ppm is None else f"{s.drift_ppm:+.0f} ppm"
            rows += [("rate", f"{s.rate_hz:.1f} Hz, {s.bytes_per_s:.0f} B/s", PLAIN), ("samples", f"{s.samples}", PLAIN),
                     ("drops", f"{s.lost} lost, {s.crc_errors} CRC errors, {s.resets} resets, "
                               f"{s.reconnects} reconnects", PLAIN),
                     ("clock drift", drift, PLAIN)]
        self.show_prompt(session.predictor.waiting_for if session.predictor is not None else None)
        rows.append(("model", session.model_name or "none", PLAIN))
        if session.model_error:
            rows.append(("", session.model_error, ALARM))
        if session.predictor is not None:
            p = session.predictor.stats()
            rows += [("latency", f"p50 {format_ms(p.latency_p50_ms)}, p99 {format_ms(p.latency_p99_ms)}", PLAIN),
                     ("model time", format_ms(p.model_p50_ms), PLAIN),
                     ("windows", f"{p.predictions} predicted, {p.skipped} skipped", PLAIN)]
            if p.error:
                rows.append(("", p.error, ALARM))
        rows.append(("display", f"{self.fps():.0f} fps", PLAIN))
        if self.recording is not None:
            rec = self.recording
            for message in rec.take_messages():  # a board change: the recording went on in a new file
                self.statusBar().showMessage(message, 30000)
            rows.append(("recording", f"● {rec.written} samples, label {rec.label or '-'}", ALARM_BOLD))
            if rec.error:  # it stopped writing: Stop says what was kept
                rows.append(("", rec.error, ALARM))
        keys = ", ".join(f"{i} {c}" for i, c in enumerate(self.labels(), start=1))
        rows.append(("label keys", f"{keys}, 0 none; next: {self.next_label or '-'}", PLAIN))
        self.link_panel.show_rows(rows)


def run_dashboard(session: LiveSession, url: str, *, seconds: float = 10.0, duration: float | None = None,
                  out: Path = Path("recordings"), subject: str = "1", labels: tuple[str, ...] = ()) -> int:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["harduino"])
    pg.setConfigOptions(antialias=False)
    window = Dashboard(session, seconds=seconds, out=out, subject=subject, labels=labels)
    window.connect_port(url)
    window.show()
    # Ctrl-C in the terminal closes the window like the close button (the panel timer lets Python see it).
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    if duration is not None:
        QtCore.QTimer.singleShot(int(duration * 1000), window.close)
    try:
        app.exec_()
    finally:
        signal.signal(signal.SIGINT, previous)
        session.close()
    return 0
