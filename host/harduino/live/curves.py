"""The scrolling curves of the dashboard's signal plots, drawn incrementally (one item per plot).

Every frame of a plain pyqtgraph plot paints the plot's background, its axes'
grid, the legend's items and each curve's whole polyline again. Here the curves
live in an image that only moves left by the new samples' width and gets those
drawn at its right end; the grid and the legend are one picture over it, drawn
again only when the plot's ranges or size change.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph import functions as fn
from PyQt5 import QtCore, QtGui, QtWidgets, sip


class ScrollingCurves(pg.GraphicsObject):
    """Several curves over one x grid, with the plot's grid and legend, drawn from one scrolling image.

    `set_data` takes the rows as they are (no copy, no bounds) and how many samples
    were shifted in since the last call. A frame moves the image left by the pixels
    those samples take and draws only them at the right end, then puts the image,
    the legend (a picture kept between frames) and a few grid lines on the screen:
    each frame paints the plot's area once, opaque, instead of the background, two
    grid-sized axis pictures, the legend's items and every polyline again. The whole
    image is drawn again only when the plot's ranges, size or samples start over;
    then each curve keeps a minimum and a maximum per pixel column, so a spike of
    one sample still shows when there are more samples than pixels.
    """

    GRID_ALPHA = 51  # the grid's alpha (0.2), as `PlotItem.showGrid` would draw it

    def __init__(self, pens, plot: pg.PlotItem | None = None) -> None:
        super().__init__()
        self.pens = [pg.mkPen(p) for p in pens]
        self.plot = plot
        self.x = np.zeros(0)
        self.rows = np.zeros((len(self.pens), 0))
        self._rect = QtCore.QRectF()
        self._image: QtGui.QImage | None = None
        self._key = None        # what the image was drawn for: its size and the plot's ranges
        self._new = None        # samples shifted in since the image was drawn; None: draw it all
        self._head = 0          # the image's column that holds the plot's left edge (a ring of columns)
        self._offset = 0.0      # image pixels the drawn samples sit right of where they belong (< 0.5)
        self._overlay: QtGui.QImage | None = None  # the legend and the grid, drawn over the curves
        self.full_draws = 0     # whole images drawn (the rest of the frames drew only new samples)

    def set_data(self, x: np.ndarray, rows: np.ndarray, new: int | None = None) -> None:
        """The curves' data; `new`: how many samples were shifted in at the right end since the
        last call (the rest moved left by as many), None when the data starts over."""
        self.x, self.rows = x, rows
        if new is None or new >= x.size:
            self._new = None
        elif self._new is not None:
            self._new += new
        # The item claims the range the plot shows (the view box clips what lies beyond),
        # so a frame repaints the plot's area and computes no bounds of the data.
        view = self.getViewBox()
        rect = view.viewRect() if view is not None else QtCore.QRectF()
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self.update()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802 - Qt's name
        return self._rect

    def paint(self, painter, option, widget=None) -> None:
        to_screen = painter.transform()
        target = to_screen.mapRect(self._rect)
        ratio = painter.device().devicePixelRatioF()
        left, top = round(target.left()), round(target.top())
        size = QtCore.QSize(max(1, round(target.width() * ratio)), max(1, round(target.height() * ratio)))
        key = (size.width(), size.height(), ratio, self._rect)
        # A painter on an image with a pixel ratio scales by it: these are logical pixels.
        to_image = to_screen * QtGui.QTransform.fromTranslate(-left, -top)
        if key != self._key or self._new is None:
            self._draw_all(size, ratio, to_image)
        elif self._new:
            self._draw_new(to_image, ratio)
        if key != self._key:
            self._overlay = self._draw_overlay(size, ratio, to_image)
        self._key, self._new = key, 0
        # The image is a ring of pixel columns, the oldest at `_head`: two copies put it in order.
        # Then the overlay: blending a plot-sized image costs what copying it does, and far
        # less than the grid's lines or the legend's items drawn again.
        width, head = self._image.width(), self._head
        painter.save()
        painter.resetTransform()
        painter.drawImage(QtCore.QPointF(left, top), self._columns(head, width))
        if head:
            painter.drawImage(QtCore.QPointF(left + (width - head) / ratio, top), self._columns(0, head))
        painter.drawImage(QtCore.QPointF(left, top), self._overlay)
        painter.restore()

    def _columns(self, start: int, stop: int) -> QtGui.QImage:
        """Columns [start, stop) of the image, sharing its pixels: drawn whole, an image is copied
        line by line; a part of one (a source rectangle) goes through Qt's slower general path."""
        image = self._image
        pixels = int(image.constBits()) + 4 * start  # 4 bytes a pixel, RGB32
        part = QtGui.QImage(sip.voidptr(pixels), stop - start, image.height(), image.bytesPerLine(),
                            QtGui.QImage.Format_RGB32)
        part.setDevicePixelRatio(image.devicePixelRatio())
        return part

    def _background(self) -> QtGui.QColor:
        views = self.scene().views() if self.scene() is not None else []
        return views[0].backgroundBrush().color() if views else QtGui.QColor(0, 0, 0)

    def _painter(self, to_image: QtGui.QTransform) -> QtGui.QPainter:
        p = QtGui.QPainter(self._image)
        p.setRenderHint(QtGui.QPainter.Antialiasing, bool(pg.getConfigOption("antialias")))
        p.setTransform(to_image)
        return p

    def _draw_all(self, size: QtCore.QSize, ratio: float, to_image: QtGui.QTransform) -> None:
        self.full_draws += 1
        if self._image is None or self._image.size() != size:
            self._image = QtGui.QImage(size, QtGui.QImage.Format_RGB32)
        self._image.setDevicePixelRatio(ratio)
        self._image.fill(self._background())
        self._head, self._offset = 0, 0.0
        x, rows = self.x, self.rows
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
        p = self._painter(to_image)
        self._polylines(p, x, rows)
        p.end()

    def _draw_new(self, to_image: QtGui.QTransform, ratio: float) -> None:
        """Move the ring's start by the new samples' width, clear the columns that frees at the
        right end and draw the new samples there, joined to the last one drawn."""
        k = min(self._new, self.x.size - 1)
        if k < 1:
            return
        width = self._image.width()
        step = (self.x[-1] - self.x[-2]) * to_image.m11() * ratio  # image pixels a sample
        moved = self._offset + k * step
        shift = min(int(round(moved)), width)
        self._offset = moved - shift
        if shift > 0:
            bits = self._image.bits()
            bits.setsize(self._image.sizeInBytes())
            pixels = np.frombuffer(bits, np.uint32).reshape(self._image.height(), -1)
            freed = (self._head + np.arange(shift)) % width  # the oldest columns, now the newest
            lo, hi = freed[0], freed[-1] + 1
            colour = self._background().rgba()
            if hi > lo:
                pixels[:, lo:hi] = colour
            else:
                pixels[:, lo:width] = colour
                pixels[:, :hi] = colour
            self._head = (self._head + shift) % width
        p = self._painter(to_image)
        x, rows = self.x[-k - 1:], self.rows[:, -k - 1:]
        height = self._image.height() / ratio
        # The new samples may wrap round the ring: drawn twice, each copy clipped to its own columns, so
        # the pen's half-width beyond the newest sample never lands in the plot's leftmost column.
        for columns, lo, hi in ((self._head, self._head, width), (self._head - width, 0, self._head)):
            if hi <= lo:
                continue
            p.resetTransform()
            p.setClipRect(QtCore.QRectF(lo / ratio, 0, (hi - lo) / ratio, height))
            p.setTransform(to_image * QtGui.QTransform.fromTranslate((self._offset + columns) / ratio, 0))
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

    def _draw_overlay(self, size: QtCore.QSize, ratio: float, to_image: QtGui.QTransform) -> QtGui.QImage:
        """The plot's legend (hidden from the scene) and the lines `PlotItem.showGrid` has the axes
        draw across the plot, over it as the scene would put them, on a transparent image."""
        overlay = QtGui.QImage(size, QtGui.QImage.Format_ARGB32_Premultiplied)
        overlay.setDevicePixelRatio(ratio)
        overlay.fill(QtCore.Qt.transparent)
        p = QtGui.QPainter(overlay)
        legend = self.plot.legend if self.plot is not None else None
        if legend is not None:
            p.setTransform(legend.itemTransform(self)[0] * to_image)
            paint_tree(p, legend)
        p.setTransform(to_image)
        for name in ("bottom", "left") if self.plot is not None else ():
            axis = self.plot.getAxis(name)
            # Only while asking for its lines: the axis itself draws no grid and no ticks.
            style = axis.style["tickAlpha"]
            axis.grid, axis.style["tickAlpha"] = self.GRID_ALPHA, None
            try:
                specs = axis.generateDrawSpecs(p)
            finally:
                axis.grid, axis.style["tickAlpha"] = False, style
            for pen, a, b in specs[1] if specs is not None else ():
                p.setPen(pen)
                p.drawLine(QtCore.QLineF(axis.mapToItem(self, a), axis.mapToItem(self, b)))
        p.end()
        return overlay


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
