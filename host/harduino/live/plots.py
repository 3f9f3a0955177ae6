"""The dashboard's plots: the scrolling signals, the timeline of predicted activities, the probability bars.

Each is drawn by the dashboard's tick in the GUI thread and does no work when
nothing it shows has changed. The signals are drawn by a widget over each
plot's data area (`curves.ScrollingCurves`) that keeps an image of the curves,
scrolls it and draws only the new samples, with the plot's grid and legend.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from ..colours import CURVE_COLOURS, UNCERTAIN_COLOUR, class_colour
from .curves import ScrollingCurves

RANGE_EVERY_S = 0.5      # plots' y ranges follow the data this often
CURVES = (("ax", "ay", "az", "|acc|"), ("gx", "gy", "gz", "|gyro|"))
AXIS_WIDTH = 56          # the same left axis width on every plot keeps their time axes aligned


class SignalPlots:
    """Two plots of the last `seconds` of samples (acc and gyro axes and magnitudes) on preallocated arrays."""

    def __init__(self, layout: pg.GraphicsLayoutWidget, seconds: float) -> None:
        self.seconds = seconds
        self.plots, self.items = [], []
        # The view fills its background itself, opaque: the viewport's own fill and the window's
        # beneath it would be two more fills of the plots' area a frame.
        layout.viewport().setAutoFillBackground(False)
        layout.viewport().setAttribute(QtCore.Qt.WA_OpaquePaintEvent, layout.backgroundBrush().isOpaque())
        for row, (names, unit) in enumerate(zip(CURVES, ("acceleration (m/s²)", "angular rate (rad/s)"))):
            plot = layout.addPlot(row=row, col=0)
            plot.setLabel("left", unit)
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            # The curves' item draws the grid and the legend: the axes draw only their own strips.
            for axis in ("left", "bottom"):
                plot.getAxis(axis).setStyle(tickLength=0, tickAlpha=0, hideOverlappingLabels=True)
            plot.setXRange(-seconds, 0, padding=0)
            plot.setMouseEnabled(x=False, y=False)
            plot.disableAutoRange()  # the y range follows the data at most every RANGE_EVERY_S (see fit_y)
            legend = plot.addLegend(offset=(-10, 5), labelTextSize="8pt", colCount=4, brush=(0, 0, 0, 170))
            pens = [pg.mkPen(colour, width=1) for colour in CURVE_COLOURS]
            for name, pen in zip(names, pens):
                legend.addItem(pg.PlotDataItem(pen=pen), name)
            legend.setVisible(False)
            item = ScrollingCurves(pens, plot)
            # Axes change only when the y range does: kept as pixmaps between frames.
            for axis in plot.axes.values():
                axis["item"].setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
            self.plots.append(plot)
            self.items.append(item)
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
        for item in self.items:
            item.set_data(self.x[:0], self.y[:4, :0])

    def shown(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, rows): the curves' data, ax ay az |acc| gx gy gz |gyro|, x in seconds before the newest sample."""
        n = self.x.size
        return self.x[n - self.filled:], self.y[:, n - self.filled:]

    def take(self, buffer) -> int:
        """Shift in what the buffer got since the last call; redraw if anything came. Returns samples taken."""
        block = buffer.since(self.index)
        self.index = block.end
        if len(block) == 0:
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
        x, rows = self.shown()
        self.items[0].set_data(x, rows[:4], k)
        self.items[1].set_data(x, rows[4:], k)
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
    MOST_COLUMNS = 1200  # as many as a plot has pixels across: at 1 kHz, 4 a step would be 2,500 to draw a frame

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
        self.t = np.full(keep, -1e12)                 # board time of the predictions kept, oldest first
        self.which = np.zeros(keep, dtype=np.int64)
        self.lut = np.array([class_colour(c, classes) for c in classes] + [UNCERTAIN_COLOUR, (20, 20, 20)],
                            dtype=np.uint8)
        self.codes = {c: i for i, c in enumerate(classes)}
        columns = max(2, min(self.MOST_COLUMNS, int(np.ceil(self.seconds / self.dt * self.RESOLUTION))))
        self.centres = -self.seconds + (np.arange(columns) + 0.5) * self.seconds / columns
        self.rgb = np.zeros((1, columns, 3), dtype=np.uint8)
        self.image.setImage(self.rgb, autoLevels=False)
        self.image.setRect(QtCore.QRectF(-self.seconds, 0, self.seconds, 1))

    def add(self, predictions) -> None:
        """Keep the newest predictions' times and classes, in order (a few a second: shifted in)."""
        k = min(len(predictions), self.t.size)
        if k:
            self.t[:-k], self.which[:-k] = self.t[k:], self.which[k:]
            self.t[-k:] = [p.t for p in predictions[-k:]]
            self.which[-k:] = [self.codes.get(p.label, len(self.codes)) for p in predictions[-k:]]

    def draw(self, newest_t: float) -> None:
        """Colour each column by the prediction in force at its time before the newest sample."""
        t, which = self.t, self.which
        i = np.searchsorted(t, newest_t + self.centres, side="right") - 1
        shown = (i >= 0) & (newest_t + self.centres - t[np.maximum(i, 0)] < 2 * self.dt)
        rgb = self.lut[np.where(shown, which[np.maximum(i, 0)], len(self.lut) - 1)]
        if not np.array_equal(rgb, self.rgb[0]):  # bands move a column at a time, not every frame
            self.rgb[0] = rgb
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
        self.values = np.zeros(0)   # the latest probabilities
        self._drawn = np.zeros(0)   # the lengths the bars were last drawn at

    def reset(self, classes) -> None:
        self.classes = tuple(classes)
        if self.bars is not None:
            self.plot.removeItem(self.bars)
        self.values = self._drawn = np.zeros(len(classes))
        brushes = [pg.mkBrush(*class_colour(c, classes)) for c in classes]
        self.bars = pg.BarGraphItem(x0=0, y=np.arange(len(classes)), width=self.values, height=0.7, brushes=brushes)
        self.plot.addItem(self.bars)
        self.plot.getAxis("left").setTicks([[(i, c) for i, c in enumerate(classes)]])
        self.plot.setYRange(-0.6, max(len(classes), 1) - 0.4, padding=0)

    def show(self, proba: np.ndarray) -> None:
        """Set the bars to these probabilities; drawn again only when a bar moves by half a pixel or more
        (a confident model's bars stand still while its windows come in, at 1 kHz some 60 a second)."""
        self.values = np.asarray(proba, dtype=np.float64)
        pixel = self.plot.vb.viewPixelSize()[0]  # probability per pixel of a bar's length
        if self.values.shape != self._drawn.shape or np.abs(self.values - self._drawn).max() >= pixel / 2:
            self._drawn = self.values
            self.bars.setOpts(width=self.values)
