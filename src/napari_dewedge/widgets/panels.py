"""Shared Qt building blocks of the inspection widgets.

:class:`ImagePanel`
    paints one 2D numpy slice as a ``QImage`` through a lookup table (grey for
    real space, a magma-like map for spectra), keeps the physical aspect ratio
    of its pixels, and draws a crosshair, line segments and a translucent
    shading (the missing wedge) on top with ``QPainter``. A click or drag
    emits the data coordinates under the mouse.

:class:`ProfilePanel`
    a tiny line plot (mean log power against angle) with the measured tilt
    range marked; redrawn on every slider move for free.

:class:`LayerPicker`
    a combo box of the viewer's 3D image layers that follows layers being
    added, removed and renamed.

Pure Qt on purpose: painting a few hundred thousand pixels costs a few
milliseconds, works on the ``offscreen`` platform (no OpenGL) and can be
grabbed into a PNG.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
from qtpy.QtCore import QPointF, QRectF, QSize, Qt, Signal
from qtpy.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QComboBox, QSizePolicy, QWidget

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = [
    "ImagePanel",
    "ProfilePanel",
    "LayerPicker",
    "lookup_table",
    "to_uint8",
    "is_volume_layer",
    "volume_of",
    "is_alive",
    "Segment",
]

Segment = tuple[tuple[float, float], tuple[float, float]]

# Anchors of matplotlib's "magma" (perceptually uniform, dark to light), 17 steps.
_MAGMA = np.array(
    [
        (0, 0, 4), (10, 8, 34), (29, 17, 71), (54, 16, 107), (81, 18, 124), (106, 28, 129),
        (131, 38, 129), (156, 46, 127), (183, 55, 121), (208, 65, 111), (231, 82, 99),
        (245, 107, 92), (252, 137, 97), (254, 167, 114), (254, 196, 136), (253, 226, 163),
        (252, 253, 191),
    ],
    dtype=np.float64,
)  # fmt: skip

BACKGROUND = QColor(30, 32, 38)
TEXT = QColor(225, 228, 235)
CROSSHAIR = QColor(255, 214, 10, 170)
WEDGE_LINE = QColor(64, 224, 255)
WEDGE_SHADE = QColor(0, 170, 255)


def lookup_table(name: str) -> np.ndarray:
    """A 256-entry ``0xFFRRGGBB`` colour table: ``"gray"`` or ``"magma"``."""
    t = np.linspace(0.0, 1.0, 256)
    if name in ("gray", "grey"):
        rgb = np.repeat(np.round(t * 255.0)[:, None], 3, axis=1)
    elif name == "magma":
        x = np.linspace(0.0, 1.0, len(_MAGMA))
        rgb = np.stack([np.interp(t, x, _MAGMA[:, i]) for i in range(3)], axis=1)
    else:
        raise ValueError(f"unknown lookup table {name!r}; expected 'gray' or 'magma'")
    rgb = np.clip(np.round(rgb), 0, 255).astype(np.uint32)
    return (0xFF000000 | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).astype(np.uint32)


_LUTS = {name: lookup_table(name) for name in ("gray", "magma")}


def to_uint8(image: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """Map ``image`` linearly so that ``limits`` span 0..255 (clipped); any dtype."""
    lo, hi = float(limits[0]), float(limits[1])
    if not hi > lo:
        hi = lo + 1.0
    arr = np.asarray(image, dtype=np.float32)
    out = (arr - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    np.clip(out, 0.0, 255.0, out=out)
    out = np.nan_to_num(out, nan=0.0)
    return out.astype(np.uint8)


def is_alive(obj: Any) -> bool:
    """False once the C++ side of a Qt object is gone (widget closed and deleted)."""
    if obj is None:
        return False
    try:
        from qtpy import sip  # PyQt5/6

        return not sip.isdeleted(obj)
    except ImportError:  # pragma: no cover - PySide
        try:
            import shiboken6

            return shiboken6.isValid(obj)
        except ImportError:
            return True


def is_volume_layer(layer: Any) -> bool:
    """A napari image layer holding one scalar 3D volume (not RGB, not labels)."""
    from napari.layers import Image

    return isinstance(layer, Image) and not getattr(layer, "rgb", False) and layer.ndim == 3


def volume_of(layer: Any, max_voxels: int | None = None) -> Any:
    """The ``(z, y, x)`` array of an image layer. Multiscale layers give their
    finest level, or with ``max_voxels`` the finest level that is not bigger."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        levels = list(data)
        if max_voxels is None:
            return levels[0]
        for level in levels:
            if int(np.prod(level.shape)) <= max_voxels:
                return level
        return levels[-1]
    return data


class ImagePanel(QWidget):
    """One 2D slice, painted with a lookup table at its physical aspect ratio.

    Coordinates given to and emitted by the panel are data coordinates of the
    slice: ``(row, col)`` with pixel centres at integers.

    Signals
    -------
    clicked(row, col)
        left click or drag inside the image.
    """

    clicked = Signal(float, float)

    def __init__(
        self,
        title: str = "",
        parent: QWidget | None = None,
        *,
        lut: str = "gray",
        axis_labels: tuple[str, str] | None = None,
        min_size: int = 96,
    ) -> None:
        super().__init__(parent)
        self._title = title
        self._lut_name = lut
        self._axis_labels = axis_labels
        self._image: QImage | None = None
        self._u8: np.ndarray | None = None
        self._rgb: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        self._pixel_size = (1.0, 1.0)
        self._limits: tuple[float, float] | None = None
        self._crosshair: tuple[float, float] | None = None
        self._segments: list[Segment] = []
        self._line_colour = QColor(WEDGE_LINE)
        self._shading: QImage | None = None
        self._shading_key: tuple | None = None
        self._shading_buf: np.ndarray | None = None
        self._message = ""
        self._footer = ""
        self._scaled_cache: dict[str, tuple[tuple, QImage]] = {}
        self.setMinimumSize(min_size, min_size)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    # ------------------------------------------------------------------ content

    @property
    def title(self) -> str:
        return self._title

    def set_title(self, title: str) -> None:
        self._title = title
        self.update()

    @property
    def image_shape(self) -> tuple[int, int] | None:
        """``(rows, cols)`` of the slice shown, or None."""
        return self._shape

    @property
    def limits(self) -> tuple[float, float] | None:
        """Contrast limits of the slice shown."""
        return self._limits

    @property
    def display_data(self) -> np.ndarray | None:
        """The 8-bit values painted (after contrast), for inspection and tests."""
        return self._u8

    @property
    def pixel_size(self) -> tuple[float, float]:
        return self._pixel_size

    def set_image(
        self,
        image: np.ndarray | None,
        limits: tuple[float, float] | None = None,
        *,
        pixel_size: tuple[float, float] = (1.0, 1.0),
        lut: str | None = None,
    ) -> None:
        """Show ``image`` (2D, any real dtype). ``limits`` default to the 0.5 and
        99.5 percentiles; ``pixel_size`` is the physical ``(row, col)`` size of a
        pixel, which sets the aspect ratio."""
        if lut is not None:
            if lut not in _LUTS:
                raise ValueError(f"unknown lookup table {lut!r}; expected one of {sorted(_LUTS)}")
            self._lut_name = lut
        if image is None:
            self._image = self._u8 = self._rgb = None
            self._shape = self._limits = None
            self.update()
            return
        arr = np.asarray(image)
        if arr.ndim != 2 or 0 in arr.shape:
            raise ValueError(f"ImagePanel shows 2D images, got shape {arr.shape}")
        if limits is None:
            finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
            lo, hi = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
            limits = (float(lo), float(hi))
        ry, rx = (float(pixel_size[0]), float(pixel_size[1]))
        if not (ry > 0 and rx > 0 and math.isfinite(ry) and math.isfinite(rx)):
            ry = rx = 1.0
        self._limits = (float(limits[0]), float(limits[1]))
        self._pixel_size = (ry, rx)
        self._u8 = np.ascontiguousarray(to_uint8(arr, self._limits))
        self._rgb = np.ascontiguousarray(_LUTS[self._lut_name][self._u8])
        h, w = self._u8.shape
        self._shape = (h, w)
        self._image = QImage(self._rgb.data, w, h, 4 * w, QImage.Format.Format_RGB32)
        self.update()

    def set_crosshair(self, position: tuple[float, float] | None) -> None:
        """Draw dashed lines through ``(row, col)``; None hides them."""
        self._crosshair = None if position is None else (float(position[0]), float(position[1]))
        self.update()

    def set_segments(self, segments: Iterable[Segment], colour: QColor | None = None) -> None:
        """Line segments ``((row0, col0), (row1, col1))`` drawn over the image."""
        self._segments = [((float(a[0]), float(a[1])), (float(b[0]), float(b[1]))) for a, b in segments]
        if colour is not None:
            self._line_colour = QColor(colour)
        self.update()

    @property
    def segments(self) -> list[Segment]:
        return list(self._segments)

    def set_shading(self, weights: np.ndarray | None, colour: QColor = WEDGE_SHADE, opacity: float = 0.35) -> None:
        """Shade the pixels where ``weights`` (1 measured, 0 missing) is below 1.

        The image built from a mask is kept while the same (cached, read-only)
        mask array comes back, so re-shading costs nothing.
        """
        if weights is None:
            self._shading = self._shading_buf = None
            self._shading_key = None
            self.update()
            return
        w = np.asarray(weights)
        key = (id(weights), w.shape, colour.rgba(), round(opacity, 4))
        if key != self._shading_key or self._shading_buf is None:
            alpha = np.clip((1.0 - w.astype(np.float32)) * (255.0 * opacity), 0, 255).astype(np.uint32)
            r, g, b = colour.red(), colour.green(), colour.blue()
            buf = (alpha << 24) | ((alpha * r // 255) << 16) | ((alpha * g // 255) << 8) | (alpha * b // 255)
            self._shading_buf = np.ascontiguousarray(buf.astype(np.uint32))
            h, wd = w.shape
            self._shading = QImage(self._shading_buf.data, wd, h, 4 * wd, QImage.Format.Format_ARGB32_Premultiplied)
            self._shading_key = key
            self._shading_ref = weights  # keep the id valid while it is the key
        self.update()

    @property
    def shading_mask(self) -> np.ndarray | None:
        """The mask array the shading was last built from."""
        return getattr(self, "_shading_ref", None) if self._shading is not None else None

    def set_message(self, text: str) -> None:
        """Text shown in the middle of the panel (e.g. while computing)."""
        self._message = text
        self.update()

    def set_footer(self, text: str) -> None:
        """Small text at the bottom-left of the image (e.g. the slice index)."""
        self._footer = text
        self.update()

    # ------------------------------------------------------------------ geometry

    def _title_height(self) -> int:
        return self.fontMetrics().height() + 4 if self._title else 0

    def image_rect(self) -> QRectF:
        """Where the image is painted, in widget pixels (aspect kept, centred)."""
        th = self._title_height()
        avail = QRectF(2, th + 1, max(1, self.width() - 4), max(1, self.height() - th - 3))
        if self._shape is None:
            return avail
        h, w = self._shape
        phys_h, phys_w = h * self._pixel_size[0], w * self._pixel_size[1]
        scale = min(avail.width() / phys_w, avail.height() / phys_h)
        dw, dh = max(1, round(phys_w * scale)), max(1, round(phys_h * scale))
        # Whole pixels: the image is blitted 1:1 from a cached resampled copy.
        return QRectF(round(avail.x() + (avail.width() - dw) / 2), round(avail.y() + (avail.height() - dh) / 2), dw, dh)

    def data_to_widget(self, row: float, col: float) -> QPointF:
        rect = self.image_rect()
        h, w = self._shape or (1, 1)
        return QPointF(rect.x() + (col + 0.5) * rect.width() / w, rect.y() + (row + 0.5) * rect.height() / h)

    def widget_to_data(self, x: float, y: float) -> tuple[float, float] | None:
        """``(row, col)`` under widget position ``(x, y)``, or None outside the image."""
        if self._shape is None:
            return None
        rect = self.image_rect()
        if not rect.contains(QPointF(x, y)):
            return None
        h, w = self._shape
        return ((y - rect.y()) * h / rect.height() - 0.5, (x - rect.x()) * w / rect.width() - 0.5)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(220, 220)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        # Opt-in through the size policy: then the panel asks for the height
        # that shows its image at the physical aspect ratio.
        return self._shape is not None and self.sizePolicy().hasHeightForWidth()

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        if self._shape is None:
            return width
        h, w = self._shape
        ratio = (h * self._pixel_size[0]) / (w * self._pixel_size[1])
        return int(round(width * ratio)) + self._title_height() + 4

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        p = QPainter(self)
        try:
            p.fillRect(self.rect(), BACKGROUND)
            if self._title:
                p.setPen(TEXT)
                title = p.fontMetrics().elidedText(self._title, Qt.TextElideMode.ElideRight, max(8, self.width() - 8))
                p.drawText(QRectF(4, 1, self.width() - 8, self._title_height()), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title)
            rect = self.image_rect()
            if self._image is not None:
                h, w = self._shape
                smooth = rect.width() < w or rect.height() < h
                p.drawImage(rect.topLeft(), self._scaled("image", self._image, rect, smooth))
                if self._shading is not None and self._shading.width() == w and self._shading.height() == h:
                    p.drawImage(rect.topLeft(), self._scaled("shading", self._shading, rect, False))
                p.setClipRect(rect)
                p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
                if self._segments:
                    pen = QPen(self._line_colour, 1.6)
                    pen.setCosmetic(True)
                    p.setPen(pen)
                    for a, b in self._segments:
                        p.drawLine(self.data_to_widget(*a), self.data_to_widget(*b))
                if self._crosshair is not None:
                    pen = QPen(CROSSHAIR, 1.0, Qt.PenStyle.DashLine)
                    pen.setCosmetic(True)
                    p.setPen(pen)
                    c = self.data_to_widget(*self._crosshair)
                    p.drawLine(QPointF(rect.left(), c.y()), QPointF(rect.right(), c.y()))
                    p.drawLine(QPointF(c.x(), rect.top()), QPointF(c.x(), rect.bottom()))
                p.setClipping(False)
                self._paint_corner_text(p, rect)
            if self._message:
                p.setPen(TEXT)
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message)
        finally:
            p.end()

    def _scaled(self, which: str, image: QImage, rect: QRectF, smooth: bool) -> QImage:
        """``image`` resampled to the size of ``rect``, cached until either changes
        (area-averaged when shrinking, nearest neighbour when enlarging)."""
        size = (int(rect.width()), int(rect.height()))
        key = (id(image), image.cacheKey(), size, smooth)
        cached = self._scaled_cache.get(which)
        if cached is not None and cached[0] == key:
            return cached[1]
        mode = Qt.TransformationMode.SmoothTransformation if smooth else Qt.TransformationMode.FastTransformation
        scaled = image.scaled(size[0], size[1], Qt.AspectRatioMode.IgnoreAspectRatio, mode)
        self._scaled_cache[which] = (key, scaled)
        return scaled

    def _paint_corner_text(self, p: QPainter, rect: QRectF) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        p.setFont(font)
        fm = p.fontMetrics()
        pad = 3
        if self._axis_labels:
            rows_label, cols_label = self._axis_labels
            text = f"{cols_label} \u2192   {rows_label} \u2193"
            tw = fm.horizontalAdvance(text)
            box = QRectF(rect.right() - tw - 2 * pad, rect.bottom() - fm.height() - pad, tw + 2 * pad, fm.height() + pad)
            if box.left() > rect.left() + 2:
                p.fillRect(box, QColor(0, 0, 0, 120))
                p.setPen(TEXT)
                p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
        if self._footer:
            tw = fm.horizontalAdvance(self._footer)
            box = QRectF(rect.left(), rect.bottom() - fm.height() - pad, tw + 2 * pad, fm.height() + pad)
            p.fillRect(box, QColor(0, 0, 0, 120))
            p.setPen(TEXT)
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, self._footer)

    # ------------------------------------------------------------------ mouse

    def _emit_at(self, event) -> None:
        pos = event.position() if hasattr(event, "position") else event.pos()
        hit = self.widget_to_data(pos.x(), pos.y())
        if hit is not None:
            self.clicked.emit(*hit)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._emit_at(event)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._emit_at(event)
        super().mouseMoveEvent(event)


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


class LayerPicker(QComboBox):
    """Combo box of the viewer's 3D scalar image layers.

    Follows layers being inserted, removed, renamed and re-typed (new data).
    ``none_text`` adds a first entry meaning "no layer". ``prefer`` marks
    layers to pick automatically while nothing (or the none entry) is chosen,
    e.g. layers whose ``metadata["dewedge_role"]`` fits the picker's purpose.

    Signals
    -------
    layer_changed(layer or None)
        another layer (or none) was chosen.
    data_changed(layer)
        the chosen layer got new data (``layer.data = ...``).

    napari's event emitters hold the picker's callbacks weakly and drop them
    once the widget is deleted.
    """

    layer_changed = Signal(object)
    data_changed = Signal(object)

    def __init__(
        self,
        viewer: "napari.viewer.Viewer",
        parent: QWidget | None = None,
        *,
        none_text: str | None = None,
        prefer: Callable[[Any], bool] | None = None,
        accept: Callable[[Any], bool] = is_volume_layer,
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._none_text = none_text
        self._prefer = prefer
        self._accept = accept
        self._layers: list[Any] = []
        self._current: Any = None
        self._user_chose = False
        self._watched: list[Any] = []
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.currentIndexChanged.connect(self._on_index)
        self.activated.connect(self._on_user_activated)
        events = viewer.layers.events
        for name in ("inserted", "removed", "moved", "reordered"):
            emitter = getattr(events, name, None)
            if emitter is not None:
                emitter.connect(self._on_layers_changed)
        self.refresh()

    # ------------------------------------------------------------------ API

    def layer(self) -> Any:
        """The chosen layer, or None."""
        return self._current

    def layers(self) -> list[Any]:
        """The layers listed, in the viewer's order."""
        return list(self._layers)

    def set_layer(self, layer: Any) -> None:
        """Choose ``layer`` (must be listed) or None (the none entry, if any);
        the choice then sticks like a choice made in the combo box."""
        self._user_chose = True
        if layer is None:
            if self._none_text is None:
                raise ValueError("this picker has no 'none' entry")
            self.setCurrentIndex(0)
            return
        for i, candidate in enumerate(self._layers):
            if candidate is layer:
                self.setCurrentIndex(i + (1 if self._none_text is not None else 0))
                return
        raise ValueError(f"layer {getattr(layer, 'name', layer)!r} is not a 3D image layer of this viewer")

    def refresh(self) -> None:
        """Rebuild the list from the viewer's layers, keeping the choice when possible."""
        if not is_alive(self):
            return
        layers = [layer for layer in self._viewer.layers if self._accept(layer)]
        self._watch(layers)
        keep = self._choose(layers)
        self._layers = layers
        self.blockSignals(True)
        try:
            self.clear()
            if self._none_text is not None:
                self.addItem(self._none_text)
            for layer in layers:
                self.addItem(layer.name)
            index = -1
            if keep is not None:
                index = next(i for i, layer in enumerate(layers) if layer is keep)
                index += 1 if self._none_text is not None else 0
            elif self._none_text is not None:
                index = 0
            self.setCurrentIndex(index)
        finally:
            self.blockSignals(False)
        self._set_current(keep)

    # ------------------------------------------------------------------ internals

    def _choose(self, layers: Sequence[Any]) -> Any:
        """Which layer to show after the list changed."""
        present = self._current if any(layer is self._current for layer in layers) else None
        if present is None and self._current is not None:  # the chosen layer went away
            self._user_chose = False
        preferred = [layer for layer in layers if self._prefer is not None and self._prefer(layer)]
        if present is not None:
            if self._user_chose or not preferred or self._prefer(present):
                return present
            return preferred[-1]
        if self._user_chose and self._none_text is not None:
            return None  # "none" was chosen on purpose
        if preferred:
            return preferred[-1]
        if self._none_text is not None or not layers:
            return None
        active = self._viewer.layers.selection.active
        return active if any(active is layer for layer in layers) else layers[-1]

    def _watch(self, layers: Sequence[Any]) -> None:
        for layer in self._watched:
            for name in ("name", "data"):
                try:
                    getattr(layer.events, name).disconnect(self._on_layer_edited)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        self._watched = list(layers)
        for layer in self._watched:
            layer.events.name.connect(self._on_layer_edited)
            layer.events.data.connect(self._on_layer_edited)

    def _on_layers_changed(self, event: Any = None) -> None:
        self.refresh()

    def _on_layer_edited(self, event: Any = None) -> None:
        self.refresh()
        source = getattr(event, "source", None)
        if getattr(event, "type", None) == "data" and source is not None and source is self._current:
            self.data_changed.emit(source)

    def _on_user_activated(self, index: int) -> None:
        self._user_chose = True

    def _on_index(self, index: int) -> None:
        offset = 1 if self._none_text is not None else 0
        i = index - offset
        layer = self._layers[i] if 0 <= i < len(self._layers) else None
        self._set_current(layer)

    def _set_current(self, layer: Any) -> None:
        if layer is self._current:
            return
        self._current = layer
        self.layer_changed.emit(layer)
