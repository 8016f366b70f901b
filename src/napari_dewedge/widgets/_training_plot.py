"""Live plot of the training losses.

:class:`LossPlot` keeps the logged losses per name and redraws only when
asked (:meth:`LossPlot.redraw`), so the caller decides how often (a few times
per second is plenty). Drawing a matplotlib figure costs tens of milliseconds
of Python, which on the GUI thread would stall napari while it trains; so the
figure is rendered with matplotlib's Agg canvas in a background thread and
only the finished image is handed to the GUI thread (a ``QLabel`` pixmap,
about a millisecond). At most one rendering runs at a time; data arriving
meanwhile is drawn by the next one. Long histories are thinned to at most
:attr:`LossPlot.max_points` points per curve.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

__all__ = ["LossPlot", "thin"]

_FACE = "#262930"  # napari's dark theme background
_TEXT = "#d6d8de"
_GRID = "#41454e"


def thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of a curve: block means over equal chunks
    (the last point is always kept, so the curve ends at the latest value)."""
    n = len(x)
    if n <= max_points or max_points < 2:
        return x, y
    k = int(math.ceil(n / (max_points - 1)))
    m = (n - 1) // k * k
    xs = x[:m].reshape(-1, k).mean(axis=1)
    ys = y[:m].reshape(-1, k).mean(axis=1)
    return np.append(xs, x[-1]), np.append(ys, y[-1])


class LossPlot(QWidget):
    """Loss curves against the training step, one line per loss name."""

    max_points = 150
    #: Emitted (from the rendering thread) with ``(rgba bytes, width, height)``.
    _rendered = Signal(object)

    def __init__(self, parent: QWidget | None = None, *, title: str = "losses") -> None:
        super().__init__(parent)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._title = title
        self._steps: dict[str, list[float]] = {}
        self._values: dict[str, list[float]] = {}
        self._dirty = False
        self._busy = False  # a rendering is in flight
        self._again = False  # data arrived while rendering
        self._draw_lock = threading.Lock()
        self.redraws = 0  # renderings started
        self.shown = 0  # images shown

        self.figure = Figure(figsize=(3.2, 2.0), dpi=100, facecolor=_FACE)
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_subplot(111)
        self._lines: dict[str, object] = {}
        self._style_axes()

        self.view = QLabel()
        self.view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.view.setScaledContents(True)  # stretched until the re-rendering at the new size arrives
        self.view.setMinimumSize(200, 150)
        self.view.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._rendered.connect(self._show_image)
        self.redraw(force=True, wait=True)  # empty axes until the first losses arrive

    # ------------------------------------------------------------------ data

    @property
    def names(self) -> list[str]:
        """Loss names seen so far, in order of appearance."""
        return list(self._values)

    @property
    def dirty(self) -> bool:
        """True when data arrived since the last redraw."""
        return self._dirty

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """All logged ``(steps, values)`` of one loss."""
        return np.asarray(self._steps.get(name, []), float), np.asarray(self._values.get(name, []), float)

    def clear(self) -> None:
        """Forget every curve (a new run starts)."""
        self._steps.clear()
        self._values.clear()
        self._dirty = True

    def append(self, step: int, losses: Mapping[str, float]) -> None:
        """Record the losses of one step (cheap: nothing is drawn)."""
        for name, value in losses.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(v):
                continue
            self._steps.setdefault(name, []).append(float(step))
            self._values.setdefault(name, []).append(v)
            self._dirty = True

    # ------------------------------------------------------------------ drawing

    def _style_axes(self) -> None:
        ax = self.axes
        ax.set_facecolor(_FACE)
        for spine in ax.spines.values():
            spine.set_color(_GRID)
        ax.tick_params(colors=_TEXT, labelsize=9)
        ax.grid(True, color=_GRID, linewidth=0.5)
        ax.set_xlabel("step", color=_TEXT, fontsize=9, labelpad=1)
        ax.set_ylabel(self._title, color=_TEXT, fontsize=9, labelpad=2)
        self.figure.subplots_adjust(left=0.12, right=0.98, bottom=0.14, top=0.8)

    def _snapshot(self) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[float, float, float]]:
        curves = {name: thin(*self.series(name), self.max_points) for name in self._values}
        ratio = float(self.devicePixelRatioF()) if hasattr(self, "devicePixelRatioF") else 1.0
        width = max(200, self.view.width())
        height = max(150, self.view.height())
        return curves, (width, height, ratio)

    def redraw(self, force: bool = False, *, wait: bool = False) -> bool:
        """Render the current data (in a background thread unless ``wait``).

        Returns False when nothing changed (and ``force`` is False) or when
        the data will be drawn by the rendering already in flight.
        """
        if not (self._dirty or force):
            return False
        if self._busy and not wait:
            self._again = True
            return False
        snapshot = self._snapshot()
        self._dirty = False
        self.redraws += 1
        if wait:
            self._show_image(self._render(*snapshot))
            return True
        self._busy = True
        threading.Thread(target=self._render_in_thread, args=snapshot, name="loss-plot", daemon=True).start()
        return True

    def _render_in_thread(self, curves: dict, size: tuple[float, float, float]) -> None:
        try:
            image = self._render(curves, size)
        except Exception:  # noqa: BLE001 - a failed drawing must not end the run
            image = None
        try:
            self._rendered.emit(image)
        except RuntimeError:  # the widget was deleted meanwhile
            pass

    def _render(self, curves: dict, size: tuple[float, float, float]) -> tuple[bytes, int, int, float]:
        """Draw the figure with Agg (any thread) and return its RGBA pixels."""
        width, height, ratio = size
        with self._draw_lock:
            fig, ax = self.figure, self.axes
            dpi = 100.0 * ratio
            fig.set_dpi(dpi)
            fig.set_size_inches(width * ratio / dpi, height * ratio / dpi)
            for name in [n for n in self._lines if n not in curves]:
                self._lines.pop(name).remove()  # type: ignore[attr-defined]
            new_line = False
            for name, (x, y) in curves.items():
                line = self._lines.get(name)
                if line is None:
                    (line,) = ax.plot(x, y, linewidth=1.4, label=name)
                    self._lines[name] = line
                    new_line = True
                else:
                    line.set_data(x, y)  # type: ignore[attr-defined]
            legend = ax.get_legend()
            if new_line or (legend is not None and not curves):
                if legend is not None:
                    legend.remove()
                if curves:  # above the axes, clear of the curves
                    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, frameon=False,
                              labelcolor=_TEXT, handlelength=1.2, columnspacing=1.0, borderaxespad=0.2)
            ax.relim()
            ax.autoscale_view()
            self.canvas.draw()
            w, h = self.canvas.get_width_height(physical=True)
            pixels = bytes(self.canvas.buffer_rgba())
        return pixels, int(w), int(h), ratio

    def _show_image(self, image: tuple[bytes, int, int, float] | None) -> None:
        """Show a rendered image (GUI thread) and start the next rendering if data came meanwhile."""
        self._busy = False
        if image is not None:
            pixels, w, h, ratio = image
            qimage = QImage(pixels, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
            pixmap = QPixmap.fromImage(qimage)
            pixmap.setDevicePixelRatio(ratio)
            self.view.setPixmap(pixmap)
            self.shown += 1
        if self._again:
            self._again = False
            self._dirty = True
            self.redraw()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        if self._values or self.shown:
            self._dirty = True
            self.redraw()
