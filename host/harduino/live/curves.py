"""The scrolling curves of the dashboard's signal plots: one plain widget over each plot's data area.

A plain pyqtgraph plot repaints, every frame and through its graphics scene,
the view's background, the axes' grid, the legend's items and each curve's
whole polyline. Here pyqtgraph still lays out and draws the plot's axes and
labels, but its data area is covered by an opaque widget that keeps the curves
in an image: a frame moves the image left by the new samples' width, draws only
those samples at its right end, and copies it to the screen with the grid's
vertical lines and a small picture of the legend over it (the grid's horizontal
lines are in the image, under the curves). A frame visits no scene item.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph import functions as fn
from PyQt5 import QtCore, QtGui, QtWidgets, sip


class ScrollingCurves(QtWidgets.QWidget):
    """Several curves over one x grid, with the plot's grid and legend, drawn from one scrolling image.

    The widget lies over `plot`'s view box (it follows its place in the plot's
    graphics view) and draws in the view box's data coordinates. `set_data` takes
    the rows as they are (no copy, no bounds) and how many samples were shifted in
    since the last call. The image is a ring of pixel columns, so scrolling moves
    no pixel; it is drawn whole again only when the view's ranges, the size or the
    samples start over, and then each curve keeps a minimum and a maximum per pixel
    column, so a spike of one sample still shows when there are more samples than
    pixels.
    """

    GRID_ALPHA = 51  # the grid's alpha (0.2), as `PlotItem.showGrid` would draw it

    def __init__(self, pens, plot: pg.PlotItem) -> None:
        self.view = plot.scene().views()[0]
        super().__init__(self.view.viewport())
        # Opaque: the view beneath is not painted where the curves are, and nothing is filled first.
        self.setAttribute(QtCore.Qt.WA_OpaquePaintEvent)
        self.setAttribute(QtCore.Qt.WA_TransparentForMouseEvents)
        self.pens = [pg.mkPen(p) for p in pens]
        self.plot = plot
        self.xs = np.zeros(0)   # the curves' x values (not QWidget.x(), the widget's place)
        self.rows = np.zeros((len(self.pens), 0))
        self._image: QtGui.QImage | None = None
        self._key = None        # what the image was drawn for: its size and the view's ranges
        self._new = None        # samples shifted in since the image was drawn; None: draw it all
        self._head = 0          # the image's column that holds the plot's left edge (a ring of columns)
        self._offset = 0.0      # image pixels the drawn samples sit right of where they belong (< 0.5)
        self._rules: list[tuple[QtGui.QPen, list]] = []   # the grid's horizontal lines, in the image
        self._grid: list[tuple[QtGui.QPen, list]] = []    # its vertical ones, drawn over it each frame
        self._column: np.ndarray | None = None            # a column of the image without curves
        self._legend: tuple[QtCore.QPointF, QtGui.QImage] | None = None
        self.full_draws = 0     # whole images drawn (the rest of the frames drew only new samples)
        for item in (plot, plot.vb):
            item.geometryChanged.connect(self.follow)
        self.follow()
        self.show()

    def follow(self) -> None:
        """Lie exactly over the view box, wherever the plot's layout puts it (called when it moves)."""
        box = self.view.viewportTransform().mapRect(self.plot.vb.sceneBoundingRect())
        # Rounded, not grown to whole pixels: the axes' lines lie on the box's edges and stay uncovered.
        left, top = round(box.left()), round(box.top())
        area = QtCore.QRect(left, top, round(box.right()) - left, round(box.bottom()) - top)
        if area != self.geometry():
            self.setGeometry(area)

    def set_data(self, x: np.ndarray, rows: np.ndarray, new: int | None = None) -> None:
        """The curves' data; `new`: how many samples were shifted in at the right end since the
        last call (the rest moved left by as many), None when the data starts over."""
        self.xs, self.rows = x, rows
        if new is None or new >= x.size:
            self._new = None
        elif self._new is not None:
            self._new += new
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        ratio = self.devicePixelRatioF()
        size = QtCore.QSize(max(1, round(self.width() * ratio)), max(1, round(self.height() * ratio)))
        shown = self.plot.vb.viewRect()
        key = (size.width(), size.height(), ratio, shown)
        # Data coordinates to the widget's (logical) pixels, y upwards: the view's ranges span the
        # widget from its first pixel to its last, so the newest sample (at the right edge) shows.
        sx, sy = (self.width() - 1) / shown.width(), (self.height() - 1) / shown.height()
        to_pixels = QtGui.QTransform(sx, 0, 0, -sy, -shown.left() * sx, shown.bottom() * sy)
        if key != self._key:
            self._rules, self._grid = self._grid_lines(to_pixels)
            self._legend = self._legend_picture(ratio)
        if key != self._key or self._new is None:
            self._draw_all(size, ratio, to_pixels)
        elif self._new:
            self._draw_new(to_pixels, ratio)
        self._key, self._new = key, 0
        # The ring in order takes two copies; then the grid's vertical lines (they stay where they
        # are while the curves move: its horizontal ones are in the image) and the legend's picture.
        width, head = self._image.width(), self._head
        p = QtGui.QPainter(self)
        p.drawImage(QtCore.QPointF(0, 0), self._columns(head, width))
        if head:
            p.drawImage(QtCore.QPointF((width - head) / ratio, 0), self._columns(0, head))
        for pen, lines in self._grid:
            p.setPen(pen)
            p.drawLines(lines)
        if self._legend is not None:
            p.drawImage(*self._legend)
        p.end()

    def _columns(self, start: int, stop: int) -> QtGui.QImage:
        """Columns [start, stop) of the image, sharing its pixels: drawn whole, an image is copied
        line by line; a part of one (a source rectangle) goes through Qt's slower general path."""
        image = self._image
        pixels = int(image.constBits()) + 4 * start  # 4 bytes a pixel, RGB32
        part = QtGui.QImage(sip.voidptr(pixels), stop - start, image.height(), image.bytesPerLine(),
                            QtGui.QImage.Format_RGB32)
        part.setDevicePixelRatio(image.devicePixelRatio())
        return part

    def _pixels(self) -> np.ndarray:
        """The image's pixels as (rows, columns) of 32-bit values, in place."""
        bits = self._image.bits()
        bits.setsize(self._image.sizeInBytes())
        return np.frombuffer(bits, np.uint32).reshape(self._image.height(), -1)

    def _background(self) -> QtGui.QColor:
        return self.view.backgroundBrush().color()

    def _painter(self, to_pixels: QtGui.QTransform) -> QtGui.QPainter:
        p = QtGui.QPainter(self._image)
        p.setRenderHint(QtGui.QPainter.Antialiasing, bool(pg.getConfigOption("antialias")))
        p.setTransform(to_pixels)
        return p

    def _draw_all(self, size: QtCore.QSize, ratio: float, to_pixels: QtGui.QTransform) -> None:
        self.full_draws += 1
        if self._image is None or self._image.size() != size:
            self._image = QtGui.QImage(size, QtGui.QImage.Format_RGB32)
        self._image.setDevicePixelRatio(ratio)
        self._image.fill(self._background())
        self._head, self._offset = 0, 0.0
        p = QtGui.QPainter(self._image)
        for pen, lines in self._rules:
            p.setPen(pen)
            p.drawLines(lines)
        p.end()
        self._column = self._pixels()[:, size.width() // 2].copy()  # what a freed column starts as
        x, rows = self.xs, self.rows
        n = x.size
        per = n // size.width()
        if per >= 2:  # peak decimation: (min, max) of each run of `per` samples, the newest run last
            m = (n // per) * per
            runs = rows[:, n - m:].reshape(len(rows), -1, per)
            low, high = runs[:, :, 0].copy(), runs[:, :, 0].copy()
            for j in range(1, per):  # a few whole-array steps: 3-4x numpy's reduce over a short last axis
                np.minimum(low, runs[:, :, j], out=low)
                np.maximum(high, runs[:, :, j], out=high)
            rows = np.stack([low, high], axis=2).reshape(len(rows), -1)
            x = x[n - m:].reshape(-1, per)[:, [0, -1]].reshape(-1)
        p = self._painter(to_pixels)
        self._polylines(p, x, rows)
        p.end()

    def _draw_new(self, to_pixels: QtGui.QTransform, ratio: float) -> None:
        """Move the ring's start by the new samples' width, clear the columns that frees at the
        right end and draw the new samples there, joined to the last one drawn."""
        k = min(self._new, self.xs.size - 1)
        if k < 1:
            return
        width = self._image.width()
        step = (self.xs[-1] - self.xs[-2]) * to_pixels.m11() * ratio  # image pixels a sample
        moved = self._offset + k * step
        shift = min(int(round(moved)), width)
        self._offset = moved - shift
        if shift > 0:
            pixels, column = self._pixels(), self._column[:, None]
            freed = (self._head + np.arange(shift)) % width  # the oldest columns, now the newest
            lo, hi = freed[0], freed[-1] + 1
            if hi > lo:
                pixels[:, lo:hi] = column
            else:
                pixels[:, lo:width] = column
                pixels[:, :hi] = column
            self._head = (self._head + shift) % width
        p = self._painter(to_pixels)
        x, rows = self.xs[-k - 1:], self.rows[:, -k - 1:]
        height = self._image.height() / ratio
        # The new samples (and the segment joining them to the last one drawn) reach `span` columns
        # left of the ring's end. Where those wrap round it, they are drawn twice, each copy clipped to
        # its own columns, so the pen's half-width beyond the newest sample never lands in the plot's
        # leftmost column; most frames need one copy.
        head, span = self._head, shift + 3
        for columns, lo, hi in ((head, head, width if head < span else head), (head - width, 0, head)):
            if hi <= lo:
                continue
            p.resetTransform()
            p.setClipRect(QtCore.QRectF(lo / ratio, 0, (hi - lo) / ratio, height))
            p.setTransform(to_pixels * QtGui.QTransform.fromTranslate((self._offset + columns) / ratio, 0))
            self._polylines(p, x, rows)
        p.end()

    def _polylines(self, painter: QtGui.QPainter, x: np.ndarray, rows: np.ndarray) -> None:
        polygon = fn.create_qpolygonf(x.size)
        points = fn.ndarray_from_qpolygonf(polygon)
        points[:, 0] = x
        for row, pen in zip(rows, self.pens):
            points[:, 1] = row
            painter.setPen(pen)
            painter.drawPolyline(polygon)

    def _grid_lines(self, to_pixels: QtGui.QTransform) -> tuple[list, list]:
        """The lines `PlotItem.showGrid` has the axes draw across the plot, in this widget's pixels:
        (the left axis's horizontal ones, the bottom axis's vertical ones), as (pen, lines) pairs."""
        found = []
        scratch = QtGui.QImage(1, 1, QtGui.QImage.Format_ARGB32_Premultiplied)
        p = QtGui.QPainter(scratch)  # the axis measures its labels' text with a painter
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            # Only while asking for its lines: the axis itself draws no grid and no ticks.
            style = axis.style["tickAlpha"]
            axis.grid, axis.style["tickAlpha"] = self.GRID_ALPHA, None
            try:
                specs = axis.generateDrawSpecs(p)
            finally:
                axis.grid, axis.style["tickAlpha"] = False, style
            # Through the view's data coordinates, so the lines sit where the curves' values do.
            to_widget = axis.itemTransform(self.plot.vb.childGroup)[0] * to_pixels
            by_pen: dict[tuple, tuple[QtGui.QPen, list]] = {}  # a few pens (one a tick level), many lines
            for pen, a, b in specs[1] if specs else ():
                by_pen.setdefault((pen.color().rgba(), pen.widthF()), (pen, []))[1].append(
                    to_widget.map(QtCore.QLineF(a, b)))
            found.append(list(by_pen.values()))
        p.end()
        return found[0], found[1]

    def _legend_picture(self, ratio: float) -> tuple[QtCore.QPointF, QtGui.QImage] | None:
        """The plot's legend (hidden from the scene) as a small picture, and where it goes."""
        legend = self.plot.legend
        if legend is None:
            return None
        to_widget = legend.sceneTransform() * self.view.viewportTransform() * QtGui.QTransform.fromTranslate(
            -self.x(), -self.y())
        area = to_widget.mapRect(legend.boundingRect()).toAlignedRect()
        if area.isEmpty():
            return None
        picture = QtGui.QImage(area.size() * ratio, QtGui.QImage.Format_ARGB32_Premultiplied)
        picture.setDevicePixelRatio(ratio)
        picture.fill(QtCore.Qt.transparent)
        p = QtGui.QPainter(picture)
        p.setTransform(to_widget * QtGui.QTransform.fromTranslate(-area.left(), -area.top()))
        paint_tree(p, legend)
        p.end()
        return QtCore.QPointF(area.topLeft()), picture


def paint_tree(painter: QtGui.QPainter, item: QtWidgets.QGraphicsItem) -> None:
    """Paint an item and its children, as the scene would, with the painter in the item's coordinates."""
    option = QtWidgets.QStyleOptionGraphicsItem()
    painter.save()
    item.paint(painter, option, None)
    painter.restore()
    for child in sorted(item.childItems(), key=lambda c: c.zValue()):
        if child.isVisibleTo(item):
            painter.save()
            painter.setTransform(child.itemTransform(item)[0], True)
            paint_tree(painter, child)
            painter.restore()
