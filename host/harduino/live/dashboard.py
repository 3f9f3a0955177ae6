"""The live dashboard (pyqtgraph + PyQt5): signals, probabilities, the activity, a timeline, link health.

Everything on screen is redrawn by one QTimer in the GUI thread. Each tick
takes what the reader and the predictor added since the last one, as numpy
blocks, shifts it into preallocated arrays and hands those to `setData`; the
reader, predictor and recorder threads never touch a widget. A slower timer
refreshes the text panels, which change less often than the eye notices.
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
from ..simboard import ACTIVITIES
from .predictor import UNCERTAIN
from .recorder import BackgroundRecording
from .session import LiveSession

FRAME_MS = 30            # redraw timer: 33 frames a second, a little over the 30 wanted
PANEL_MS = 250           # text panels
RANGE_EVERY_S = 0.5      # plots' y ranges follow the data this often
CURVES = (("ax", "ay", "az", "|acc|"), ("gx", "gy", "gz", "|gyro|"))
CURVE_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f0f0f0")
UNCERTAIN_COLOUR = (90, 90, 90)
EXAMPLE_PORTS = ("sim://?script=still:6,walking:8,running:8,jumping:6,waving:8&subject=2&seed=7",
                 "sim://?activity=walking", "sim://?rate=1000&baud=1000000")


ACTIVITY_COLOURS = {"still": (78, 121, 167), "walking": (89, 161, 79), "running": (225, 87, 89),
                    "jumping": (242, 142, 43), "waving": (176, 122, 161)}
AXIS_WIDTH = 56          # the same left axis width on every plot keeps their time axes aligned


def class_colour(name: str, classes) -> tuple[int, int, int]:
    """A colour per class, the same for an activity whichever model is loaded."""
    if name == UNCERTAIN:
        return UNCERTAIN_COLOUR
    if name in ACTIVITY_COLOURS:
        return ACTIVITY_COLOURS[name]
    others = [c for c in classes if c not in ACTIVITY_COLOURS]
    colour = pg.intColor(others.index(name) if name in others else 0, hues=max(len(others), 3), sat=160)
    return colour.red(), colour.green(), colour.blue()


def find_bundles(*roots: Path) -> list[Path]:
    """Model bundle folders (holding bundle.json) in and directly under the given folders."""
    found = []
    for root in roots:
        for meta in [root / "bundle.json", *sorted(root.glob("*/bundle.json"))] if root.is_dir() else []:
            if meta.is_file() and meta.parent not in found:
                found.append(meta.parent)
    return found


class SignalPlots:
    """Two plots of the last `seconds` of samples (acc and gyro axes and magnitudes) on preallocated arrays."""

    def __init__(self, layout: pg.GraphicsLayoutWidget, seconds: float) -> None:
        self.seconds = seconds
        self.plots, self.curves = [], []
        for row, (names, unit) in enumerate(zip(CURVES, ("acceleration (m/s²)", "angular rate (rad/s)"))):
            plot = layout.addPlot(row=row, col=0)
            plot.setLabel("left", unit)
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setXRange(-seconds, 0, padding=0)
            plot.setMouseEnabled(x=False, y=False)
            plot.disableAutoRange()  # the y range follows the data at most every RANGE_EVERY_S (see fit_y)
            plot.addLegend(offset=(-10, 5), labelTextSize="8pt", colCount=4, brush=(0, 0, 0, 170))
            for name, colour in zip(names, CURVE_COLOURS):
                self.curves.append(plot.plot(pen=pg.mkPen(colour, width=1), name=name, skipFiniteCheck=True))
            self.plots.append(plot)
        self._next_fit = 0.0
        self.plots[1].setXLink(self.plots[0])
        self.plots[1].setLabel("bottom", "seconds before the newest sample")
        self.reset(50.0)

    def reset(self, rate_hz: float) -> None:
        n = max(2, int(round(self.seconds * rate_hz)))
        self.x = (np.arange(n) - (n - 1)) / rate_hz
        self.y = np.zeros((8, n))
        self.filled = 0
        self.index = 0
        for curve in self.curves:
            curve.setData([], [])

    def take(self, buffer) -> int:
        """Shift in what the buffer got since the last call; redraw if anything came. Returns samples taken."""
        block = buffer.since(self.index)
        self.index = block.end
        k = len(block)
        if k == 0:
            return 0
        n = self.x.size
        si = block.si[-n:]
        k = len(si)
        y = self.y
        y[:, : n - k] = y[:, k:]  # scroll: the newest sample is always at the right end
        y[[0, 1, 2, 4, 5, 6], n - k:] = si.T
        y[3, n - k:] = np.sqrt(np.einsum("ij,ij->i", si[:, :3], si[:, :3]))
        y[7, n - k:] = np.sqrt(np.einsum("ij,ij->i", si[:, 3:], si[:, 3:]))
        self.filled = min(n, self.filled + len(block))
        x = self.x[n - self.filled:]
        for curve, row in zip(self.curves, y):
            curve.setData(x, row[n - self.filled:], skipFiniteCheck=True)
        self.fit_y()
        return k

    def fit_y(self) -> None:
        """Fit each plot's y range to its data now and then, not every frame: a range that changes
        makes the axis lay out its ticks and labels again, which costs more than drawing the curves."""
        now = time.monotonic()
        if now < self._next_fit:
            return
        self._next_fit = now + RANGE_EVERY_S
        shown = self.y[:, self.y.shape[1] - self.filled:]
        for plot, rows in zip(self.plots, (shown[:4], shown[4:])):
            lo, hi = float(rows.min()), float(rows.max())
            pad = max(0.05 * (hi - lo), 0.1)
            (cur_lo, cur_hi) = plot.viewRange()[1]
            # Grow at once; shrink only when the data uses well under the range shown.
            if lo < cur_lo or hi > cur_hi or (hi - lo + 2 * pad) < 0.6 * (cur_hi - cur_lo):
                plot.setYRange(lo - pad, hi + pad, padding=0)


class Timeline:
    """Coloured bands of the predicted activity over the plotted span: each prediction holds until the next."""

    RESOLUTION = 4  # image columns per prediction step

    def __init__(self, plot: pg.PlotItem, seconds: float) -> None:
        self.plot, self.seconds = plot, seconds
        plot.getAxis("left").setTicks([[(0.5, "activity")]])
        plot.getAxis("left").setWidth(AXIS_WIDTH)
        plot.hideAxis("bottom")
        plot.setMouseEnabled(x=False, y=False)
        plot.setYRange(0, 1, padding=0)
        plot.setMaximumHeight(50)
        self.image = pg.ImageItem(axisOrder="row-major")
        plot.addItem(self.image)
        self.reset(50.0, 16, ())

    def reset(self, rate_hz: float, step: int, classes) -> None:
        self.dt = step / rate_hz                      # seconds between predictions
        keep = int(np.ceil(self.seconds / self.dt)) + 2
        self.t = np.full(keep, -1e12)                 # board time of the predictions kept, a ring
        self.which = np.zeros(keep, dtype=np.int64)
        self.next = 0
        self.lut = np.array([class_colour(c, classes) for c in classes] + [UNCERTAIN_COLOUR, (20, 20, 20)],
                            dtype=np.uint8)
        self.codes = {c: i for i, c in enumerate(classes)}
        columns = max(2, int(np.ceil(self.seconds / self.dt * self.RESOLUTION)))
        self.centres = -self.seconds + (np.arange(columns) + 0.5) * self.seconds / columns
        self.rgb = np.zeros((1, columns, 3), dtype=np.uint8)
        self.image.setImage(self.rgb, autoLevels=False)
        self.image.setRect(QtCore.QRectF(-self.seconds, 0, self.seconds, 1))

    def add(self, predictions) -> None:
        for p in predictions:  # a few a second
            self.t[self.next % self.t.size] = p.t
            self.which[self.next % self.t.size] = self.codes.get(p.label, len(self.codes))
            self.next += 1

    def draw(self, newest_t: float) -> None:
        """Colour each column by the prediction in force at its time before the newest sample."""
        order = np.roll(np.arange(self.t.size), -(self.next % self.t.size))  # oldest first
        t, which = self.t[order], self.which[order]
        i = np.searchsorted(t, newest_t + self.centres, side="right") - 1
        shown = (i >= 0) & (newest_t + self.centres - t[np.maximum(i, 0)] < 2 * self.dt)
        self.rgb[0] = self.lut[np.where(shown, which[np.maximum(i, 0)], len(self.lut) - 1)]
        self.image.setImage(self.rgb, autoLevels=False)


class ProbabilityBars:
    """A horizontal bar per class, its length the smoothed probability; coloured like the timeline."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        plot.setXRange(0, 1, padding=0.02)
        plot.setMouseEnabled(x=False, y=False)
        plot.setLabel("bottom", "probability")
        plot.showGrid(x=True, alpha=0.2)
        plot.invertY(True)  # the first class on top
        self.bars: pg.BarGraphItem | None = None
        self.classes: tuple = ()
        self.values = np.zeros(0)

    def reset(self, classes) -> None:
        self.classes = tuple(classes)
        if self.bars is not None:
            self.plot.removeItem(self.bars)
        self.values = np.zeros(len(classes))
        brushes = [pg.mkBrush(*class_colour(c, classes)) for c in classes]
        self.bars = pg.BarGraphItem(x0=0, y=np.arange(len(classes)), width=self.values, height=0.7, brushes=brushes)
        self.plot.addItem(self.bars)
        self.plot.getAxis("left").setTicks([[(i, c) for i, c in enumerate(classes)]])
        self.plot.setYRange(-0.6, max(len(classes), 1) - 0.4, padding=0)

    def show(self, proba: np.ndarray) -> None:
        self.values = np.asarray(proba, dtype=np.float64)
        self.bars.setOpts(width=self.values)


class Dashboard(QtWidgets.QMainWindow):
    def __init__(self, session: LiveSession, *, seconds: float = 10.0, out: Path = Path("recordings"),
                 subject: str = "1", models_root: Path = Path("models")) -> None:
        super().__init__()
        self.session = session
        self.seconds = seconds
        self.out = Path(out)
        self.models_root = Path(models_root)
        self.recording: BackgroundRecording | None = None
        self.next_label = ""
        self._seen = 0              # predictions drawn so far
        self._shape = None          # (rate, step, classes) the plots were laid out for
        self._frames = collections.deque(maxlen=120)
        self.setWindowTitle("Harduino live")
        self.resize(1280, 760)
        self._build(subject)
        self.timer = QtCore.QTimer(self, interval=FRAME_MS, timerType=QtCore.Qt.PreciseTimer)
        self.timer.timeout.connect(self.tick)
        self.panel_timer = QtCore.QTimer(self, interval=PANEL_MS)
        self.panel_timer.timeout.connect(self.update_panels)
        self.timer.start()
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
        side.addWidget(self.activity_label)
        side.addWidget(self.confidence_label)
        self.bar_widget = pg.PlotWidget()
        self.bars = ProbabilityBars(self.bar_widget.getPlotItem())
        side.addWidget(self.bar_widget, 2)
        self.link_label = QtWidgets.QLabel(textFormat=QtCore.Qt.RichText, wordWrap=True)
        self.link_label.setAlignment(QtCore.Qt.AlignTop | QtCore.Qt.AlignLeft)
        small = self.link_label.font()
        small.setPointSize(max(7, small.pointSize() - 1))
        self.link_label.setFont(small)
        side.addWidget(self.link_label, 1)
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

    def connect_port(self, url: str) -> None:
        self.session.connect(url)
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

    def _layout_for_stream(self) -> None:
        """Size the arrays for the board's rate and the model's step and classes, when those change."""
        reader, bundle, predictor = self.session.reader, self.session.bundle, self.session.predictor
        rate = float(reader.info.rate_hz)
        step = predictor.step if predictor is not None else (bundle.step if bundle is not None else 16)
        classes = tuple(str(c) for c in bundle.classes_) if bundle is not None else ()
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
        self._frames.append(time.monotonic())
        session = self.session
        session.poll()
        reader = session.reader
        if reader is None or reader.info is None:
            return
        self._layout_for_stream()
        if self.signals.take(reader.buffer) == 0 and session.history.count == self._seen:
            return
        history = session.history
        new = [p for p in history.since(self._seen) if p.classes == self.bars.classes]
        self._seen = history.count
        self.timeline.add(new)
        if new:
            p = new[-1]
            self.bars.show(p.proba)
            colour = "#%02x%02x%02x" % class_colour(p.label, p.classes)
            self.activity_label.setText(p.label.upper())
            self.activity_label.setStyleSheet(f"color: {colour}")
            self.confidence_label.setText(f"{100 * p.confidence:.0f} % confident")
        self.timeline.draw(float(reader.buffer.latest(1).t_us[-1]) / 1e6)

    def fps(self) -> float:
        frames = np.array(self._frames)
        return (len(frames) - 1) / (frames[-1] - frames[0]) if len(frames) > 2 and frames[-1] > frames[0] else 0.0

    def update_panels(self) -> None:
        session, reader = self.session, self.session.reader
        rows = []
        if reader is None:
            rows.append(("port", "not connected"))
        else:
            s = reader.stats()
            state = ("connected" if s.connected else "ended" if s.note == "end of stream"
                     else "<b style='color:#ff5050'>DISCONNECTED</b>")
            rows += [("port", reader.url), ("state", state)]
            if s.note and s.note != "end of stream":
                rows.append(("", s.note))
            if reader.info is not None:
                i = reader.info
                rows.append(("board", f"{i.sensor} fw {'.'.join(map(str, i.firmware_version))}, ±{i.accel_range_g} g, "
                                      f"±{i.gyro_range_dps} °/s, {i.rate_hz} Hz"))
            drift = "n/a" if s.drift_ppm is None else f"{s.drift_ppm:+.0f} ppm"
            rows += [("rate", f"{s.rate_hz:.1f} Hz, {s.bytes_per_s:.0f} B/s"), ("samples", f"{s.samples}"),
                     ("drops", f"{s.lost} lost, {s.crc_errors} CRC errors, {s.resets} resets, "
                               f"{s.reconnects} reconnects"),
                     ("clock drift", drift)]
        rows.append(("model", session.model_name or "none"))
        if session.model_error:
            rows.append(("", f"<span style='color:#ff5050'>{session.model_error}</span>"))
        if session.predictor is not None:
            p = session.predictor.stats()
            ms = (lambda x: "n/a" if x is None else f"{x:.1f} ms")
            rows += [("latency", f"p50 {ms(p.latency_p50_ms)}, p99 {ms(p.latency_p99_ms)}"),
                     ("model time", ms(p.model_p50_ms)),
                     ("windows", f"{p.predictions} predicted, {p.skipped} skipped")]
            if p.error:
                rows.append(("", f"<span style='color:#ff5050'>{p.error}</span>"))
        rows.append(("display", f"{self.fps():.0f} fps"))
        if self.recording is not None:
            rec = self.recording
            for message in rec.take_messages():  # a board change: the recording went on in a new file
                self.statusBar().showMessage(message, 30000)
            rows.append(("recording", f"<b style='color:#ff5050'>● {rec.written} samples</b>, "
                                      f"label {rec.label or '-'}"))
        keys = ", ".join(f"{i} {c}" for i, c in enumerate(self.labels(), start=1))
        rows.append(("label keys", f"{keys}, 0 none; next: {self.next_label or '-'}"))
        self.link_label.setText("<table>" + "".join(
            f"<tr><td style='color:#999;padding-right:8px'>{k}</td><td>{v}</td></tr>" for k, v in rows) + "</table>")


def run_dashboard(session: LiveSession, url: str, *, seconds: float = 10.0, duration: float | None = None,
                  out: Path = Path("recordings"), subject: str = "1") -> int:
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["harduino"])
    pg.setConfigOptions(antialias=False)
    window = Dashboard(session, seconds=seconds, out=out, subject=subject)
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
