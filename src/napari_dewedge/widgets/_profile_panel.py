"""The angular profile plot of the wedge inspector.

:class:`ProfilePanel`
    a tiny line plot (mean log power against angle) with the measured tilt
    range marked; redrawn on every slider move for free.

Pure Qt, like :class:`~napari_dewedge.widgets._image_panel.ImagePanel`.
Import it from :mod:`napari_dewedge.widgets.panels`.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF, QRectF, QSize, Qt
from qtpy.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from ._image_panel import BACKGROUND, TEXT, WEDGE_LINE, WEDGE_SHADE

__all__ = ["ProfilePanel"]


class ProfilePanel(QWidget):
    """Mean log power against line angle (-90..90 degrees), with the measured
    range ``[tilt_min, tilt_max]`` marked and the missing wedge shaded."""

    def __init__(self, title: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title = title
        self._angles: np.ndarray | None = None
        self._values: np.ndarray | None = None
        self._range: tuple[float, float] | None = None
        self._estimate: tuple[float, float] | None = None
        self._base_cache: tuple[tuple, QImage] | None = None
        self.setMinimumSize(96, 96)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_title(self, title: str) -> None:
        self._title = title
        self.update()

    def set_profile(self, angles: np.ndarray | None, values: np.ndarray | None, smooth: int = 1) -> None:
        """Plot ``values`` against ``angles`` (degrees); ``smooth`` is the width
        (in samples) of a circular moving average applied for display."""
        if angles is None or values is None:
            self._angles = self._values = None
        else:
            a, v = np.asarray(angles, dtype=float), np.asarray(values, dtype=float)
            ok = np.isfinite(v)
            a, v = a[ok], v[ok]
            if smooth > 1 and v.size > 2 * smooth:
                # Line angles are 180-periodic: smooth circularly.
                kernel = np.ones(smooth) / smooth
                half = smooth // 2
                padded = np.concatenate([v[-half:], v, v[: smooth - 1 - half]])
                v = np.convolve(padded, kernel, mode="valid")
            self._angles, self._values = a, v
        self.update()

    def set_range(self, tilt_min: float, tilt_max: float) -> None:
        self._range = (float(tilt_min), float(tilt_max))
        self.update()

    def set_estimate(self, estimate: tuple[float, float] | None) -> None:
        """Mark an estimated range with small ticks (None hides them)."""
        self._estimate = None if estimate is None else (float(estimate[0]), float(estimate[1]))
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(220, 220)

    def _plot_rect(self) -> QRectF:
        fm = self.fontMetrics()
        th = fm.height() + 4
        return QRectF(8, th + 4, max(1, self.width() - 16), max(1, self.height() - th - fm.height() - 12))

    def _x_of(self, plot: QRectF, angle: float) -> float:
        return plot.left() + (angle + 90.0) / 180.0 * plot.width()

    def _base(self) -> QImage:
        """Background, grid, labels and curve: cached until the data or size change."""
        key = (self.width(), self.height(), self._title, id(self._values))
        if self._base_cache is not None and self._base_cache[0] == key:
            return self._base_cache[1]
        image = QImage(max(1, self.width()), max(1, self.height()), QImage.Format.Format_ARGB32_Premultiplied)
        p = QPainter(image)
        try:
            p.setFont(self.font())
            p.fillRect(image.rect(), BACKGROUND)
            th = p.fontMetrics().height() + 4
            p.setPen(TEXT)
            p.drawText(QRectF(4, 1, self.width() - 8, th), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self._title)
            plot = self._plot_rect()
            p.fillRect(plot, QColor(18, 19, 23))
            grid = QPen(QColor(90, 95, 105), 1.0, Qt.PenStyle.DotLine)
            grid.setCosmetic(True)
            p.setPen(grid)
            for angle in (-60, -30, 0, 30, 60):
                p.drawLine(QPointF(self._x_of(plot, angle), plot.top()), QPointF(self._x_of(plot, angle), plot.bottom()))
            p.setPen(TEXT)
            small = QFont(self.font())
            small.setPointSizeF(max(6.0, small.pointSizeF() * 0.8))
            p.setFont(small)
            ticks = (-90, -45, 0, 45, 90) if plot.width() >= 200 else (-90, 0, 90)
            for angle in ticks:
                label = f"{angle}\u00b0"
                tw = p.fontMetrics().horizontalAdvance(label)
                x = min(max(self._x_of(plot, angle) - tw / 2, plot.left()), plot.right() - tw)
                p.drawText(QPointF(x, plot.bottom() + p.fontMetrics().ascent() + 2), label)
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            if self._angles is not None and self._values is not None and self._values.size > 1:
                v = self._values
                vmin, vmax = float(v.min()), float(v.max())
                span = vmax - vmin if vmax > vmin else 1.0
                path = QPainterPath()
                for i, (a, val) in enumerate(zip(self._angles, v)):
                    pt = QPointF(self._x_of(plot, a), plot.bottom() - 4 - (val - vmin) / span * (plot.height() - 8))
                    path.moveTo(pt) if i == 0 else path.lineTo(pt)
                pen = QPen(QColor(252, 170, 110), 1.5)
                pen.setCosmetic(True)
                p.setPen(pen)
                p.drawPath(path)
        finally:
            p.end()
        self._base_cache = (key, image)
        return image

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        try:
            p.drawImage(0, 0, self._base())
            plot = self._plot_rect()
            if self._range is not None:
                lo, hi = self._range
                shade = QColor(WEDGE_SHADE)
                shade.setAlpha(60)
                p.fillRect(QRectF(plot.left(), plot.top(), self._x_of(plot, lo) - plot.left(), plot.height()), shade)
                p.fillRect(QRectF(self._x_of(plot, hi), plot.top(), plot.right() - self._x_of(plot, hi), plot.height()), shade)
                pen = QPen(WEDGE_LINE, 1.6)
                pen.setCosmetic(True)
                p.setPen(pen)
                for angle in self._range:
                    x = self._x_of(plot, angle)
                    p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            if self._estimate is not None:
                pen = QPen(QColor(255, 255, 255), 2.0)
                pen.setCosmetic(True)
                p.setPen(pen)
                for angle in self._estimate:
                    x = self._x_of(plot, angle)
                    p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.top() + 8))
                    p.drawLine(QPointF(x, plot.bottom() - 8), QPointF(x, plot.bottom()))
        finally:
            p.end()
