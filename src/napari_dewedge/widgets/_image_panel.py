"""The image view of the inspection widgets: :class:`ImagePanel`, its lookup
tables (:func:`lookup_table`, :func:`to_uint8`) and the shared colours.

:class:`ImagePanel`
    paints one 2D numpy slice as a ``QImage`` through a lookup table (grey for
    real space, a magma-like map for spectra), keeps the physical aspect ratio
    of its pixels, and draws a crosshair, line segments and a translucent
    shading (the missing wedge) on top with ``QPainter``. A click or drag
    emits the data coordinates under the mouse.

Pure Qt on purpose: painting a few hundred thousand pixels costs a few
milliseconds, works on the ``offscreen`` platform (no OpenGL) and can be
grabbed into a PNG. Import these names from :mod:`napari_dewedge.widgets.panels`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from qtpy.QtCore import QPointF, QRectF, QSize, Qt, Signal
from qtpy.QtGui import QColor, QFont, QImage, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

__all__ = [
    "ImagePanel",
    "lookup_table",
    "to_uint8",
    "Segment",
    "BACKGROUND",
    "TEXT",
    "CROSSHAIR",
    "WEDGE_LINE",
    "WEDGE_SHADE",
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
