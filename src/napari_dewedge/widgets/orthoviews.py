"""Orthogonal and Fourier views: XY, XZ and YZ slices through the viewer's
current point, for one layer or for two side by side (before / after), with
the matching central Fourier slices of each layer beneath.

Why images drawn in the dock and not secondary napari viewers
-------------------------------------------------------------
napari has no linked orthogonal views. Two ways to add them: extra
``ViewerModel`` + ``QtViewer`` canvases in the dock, or plain images painted by
the dock itself. This widget paints: each view is an
:class:`~napari_dewedge.widgets.panels.ImagePanel`, a ``QImage`` made from a
numpy slice through a lookup table. That costs a few milliseconds per update,
needs no OpenGL context per view (six to twelve canvases would each hold one,
and the ``offscreen`` platform has none), keeps the physical aspect ratio from
the layer's scale, lines the three views up as in the classic orthogonal
layout, and lets a dock be grabbed into a PNG. Layer controls of napari
(colormaps, blending) do not apply; contrast is set here and matched between
before and after.

Contrast matching
-----------------
The "before" layer's limits are its 0.5 and 99.5 percentiles (from a
subsample of the whole volume, computed once in a worker). The "after" layer
is first normalised to the before layer's mean and standard deviation, then
shown with the same limits; equivalently its own limits are the before limits
mapped back through that normalisation (:func:`matched_limits`). A dewedged
volume on another scale or offset is thus displayed like the input. The
Fourier slices get the same treatment: the after spectrum is shifted by
``2 log10(k)`` (``k`` the ratio of standard deviations) and shown with the
before spectrum's limits.
"""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QRect, QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..core.layers import Role, role_of
from ..core.spectra import PLANES, SpectrumSlices, wedge_edge_segments
from ._runner import TaskRunner
from .inspector import PLANE_AXES, PLANE_TITLES, fourier_pixel_size
from .panels import ImagePanel, LayerPicker, is_alive, volume_of
from .state import SPECTRA, SPECTRUM_MODES, get_wedge_state, register_widget

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["OrthoViews", "OrthoBlock", "contrast_statistics", "matched_limits", "is_result_layer", "is_input_layer"]

#: Percentiles of the display limits.
PERCENTILES = (0.5, 99.5)
#: Voxels sampled (strided) for the contrast statistics of a volume.
MAX_SAMPLES = 2**21




def is_result_layer(layer: Any) -> bool:
    """A dewedged result: role ``"dewedged"`` or a name ending in ``" dewedged"``."""
    return role_of(layer) is Role.DEWEDGED or str(getattr(layer, "name", "")).endswith(" dewedged")


def is_input_layer(layer: Any) -> bool:
    """Neither a result nor a ground truth."""
    return not is_result_layer(layer) and role_of(layer) is not Role.GROUND_TRUTH


def contrast_statistics(volume: Any, max_samples: int = MAX_SAMPLES) -> dict[str, float]:
    """Mean, standard deviation and display percentiles of a volume, from a
    strided subsample of at most about ``max_samples`` voxels (memory maps and
    integer dtypes are read slab by slab and converted per slab)."""
    arr = volume
    n = int(np.prod(arr.shape))
    step = max(1, int(math.ceil((n / max_samples) ** (1.0 / 3.0))))
    parts = []
    for z in range(0, arr.shape[0], step):
        parts.append(np.asarray(arr[z, ::step, ::step], dtype=np.float32).ravel())
    sample = np.concatenate(parts) if parts else np.zeros(1, np.float32)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return {"mean": 0.0, "std": 1.0, "low": 0.0, "high": 1.0}
    low, high = np.percentile(sample, PERCENTILES)
    std = float(sample.std(dtype=np.float64))
    return {"mean": float(sample.mean(dtype=np.float64)), "std": std, "low": float(low), "high": float(high)}


def matched_limits(before: dict[str, float], after: dict[str, float]) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Display limits of before and after, matched (see the module docstring).

    Returns ``(before_limits, after_limits, k)``: ``k = std_before / std_after``
    is the scale that maps after onto before.
    """
    lo, hi = before["low"], before["high"]
    if not hi > lo:
        hi = lo + 1.0
    k = before["std"] / after["std"] if after["std"] > 0 and before["std"] > 0 else 1.0
    to_after = lambda v: (v - before["mean"]) / k + after["mean"]  # noqa: E731
    return (lo, hi), (to_after(lo), to_after(hi)), k


_STATS: "weakref.WeakKeyDictionary[Any, tuple[Any, dict[str, float]]]" = weakref.WeakKeyDictionary()


def _cached_stats(layer: Any) -> dict[str, float] | None:
    entry = _STATS.get(layer)
    if entry is None:
        return None
    ref, stats = entry
    return stats if ref() is volume_of(layer) else None


class OrthoBlock(QWidget):
    """XY, YZ and XZ panels in the classic orthogonal layout: XY top-left, the
    YZ view to its right (rows y, columns z), the XZ view below (rows z,
    columns x), sized so that the shared axes line up at physical scale. The
    corner below the YZ view stays empty."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panels = {
            "xy": ImagePanel("XY", self, axis_labels=("y", "x"), min_size=24),
            "zy": ImagePanel("YZ", self, axis_labels=("y", "z"), min_size=24),
            "xz": ImagePanel("XZ", self, axis_labels=("z", "x"), min_size=24),
        }
        self._extent = (1.0, 1.0, 1.0)  # physical z, y, x
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setMinimumSize(160, 120)

    def set_extent(self, extent: tuple[float, float, float]) -> None:
        """Physical size ``(z, y, x)`` of the volume shown."""
        if tuple(extent) != self._extent:
            self._extent = tuple(float(e) for e in extent)
            self.updateGeometry()
            self._place()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(320, self._height_for(320))

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._height_for(width)

    def _title_h(self) -> int:
        return self.fontMetrics().height() + 4

    def _height_for(self, width: int) -> int:
        ez, ey, ex = self._extent
        s = max(1.0, width - 12) / (ex + ez)
        return int((ey + ez) * s) + 2 * (self._title_h() + 6)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._place()

    def _place(self) -> None:
        ez, ey, ex = self._extent
        th = self._title_h() + 5  # title band plus the panel's margins
        gap = 2
        s = min((self.width() - 2 * 4 - gap) / (ex + ez), (self.height() - 2 * th - gap) / (ey + ez))
        s = max(s, 1e-6)
        wx, wz, hy = int(round(ex * s)) + 4, int(round(ez * s)) + 4, int(round(ey * s))
        hz = int(round(ez * s))
        total_w = wx + wz + gap
        left = max(0, (self.width() - total_w) // 2)
        self.panels["xy"].setGeometry(QRect(left, 0, wx, hy + th))
        self.panels["zy"].setGeometry(QRect(left + wx + gap, 0, wz, hy + th))
        self.panels["xz"].setGeometry(QRect(left, hy + th + gap, wx, hz + th))


class _Column(QWidget):
    """One layer: a header, the orthogonal block and three Fourier slices."""

    def __init__(self, heading: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heading = heading
        self.header = QLabel(heading)
        self.header.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.block = OrthoBlock()
        self.position_label = QLabel("")
        self.position_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.position_label.setStyleSheet("color: gray;")
        for label in (self.header, self.position_label):
            # long layer names must not widen one column: before and after stay the same size
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.position_label.setWordWrap(True)
        self.fourier = {
            plane: ImagePanel(PLANE_TITLES[plane], lut="magma", axis_labels=PLANE_AXES[plane], min_size=60)
            for plane in PLANES
        }
        row = QHBoxLayout()
        row.setSpacing(2)
        for plane in PLANES:
            row.addWidget(self.fourier[plane])
        for panel in self.fourier.values():
            policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
            policy.setHeightForWidth(True)
            panel.setSizePolicy(policy)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.header)
        layout.addWidget(self.block)
        layout.addWidget(self.position_label)
        layout.addLayout(row)
        layout.addStretch(1)
        self.layer: Any = None
        self.spectrum: SpectrumSlices | None = None
        self.index: tuple[int, int, int] | None = None

    @property
    def panels(self) -> dict[str, ImagePanel]:
        return self.block.panels

    def clear(self, message: str = "") -> None:
        self.layer, self.spectrum, self.index = None, None, None
        self.header.setText(self.heading)
        for panel in list(self.panels.values()) + list(self.fourier.values()):
            panel.set_image(None)
            panel.set_segments([])
            panel.set_crosshair(None)
            panel.set_message("")
        self.position_label.setText("")
        self.panels["xy"].set_message(message)


class OrthoViews(QWidget):
    """Dock widget: linked orthogonal slices and central Fourier slices of one
    layer, or of a before and an after layer side by side.

    The views follow the viewer's current point (``viewer.dims.point``, world
    coordinates, mapped to each layer's voxel indices through its scale and
    translation); a click or drag in any real-space view moves that point.

    Public attributes used by scripts and tests: ``before_picker``,
    ``after_picker``, ``mode_combo``, ``edges_check``, ``columns`` (list of two
    columns; ``columns[i].panels`` real space ``"xy"``, ``"zy"``, ``"xz"`` and
    ``columns[i].fourier`` ``"xy"``, ``"xz"``, ``"yz"``), ``runner`` (its
    :class:`~napari_dewedge.widgets._runner.TaskRunner`: tasks
    ``("spectrum", i)`` per column and ``("stats", id(layer))`` per layer).
    """

    def __init__(self, napari_viewer: "napari.viewer.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = get_wedge_state(napari_viewer)
        register_widget(napari_viewer, self)
        self._update_pending = False
        self.runner = TaskRunner(self, napari_viewer)
        self.updates = 0

        self.before_picker = LayerPicker(napari_viewer, prefer=is_input_layer)
        self.after_picker = LayerPicker(napari_viewer, none_text="(none)", prefer=is_result_layer)
        self.mode_combo = QComboBox()
        for mode, label in SPECTRUM_MODES.items():
            self.mode_combo.addItem(label, mode)
        self.mode_combo.setToolTip("central planes: exact central slices; averaged: power averaged over the third axis")
        self.edges_check = QCheckBox("wedge edges")
        self.edges_check.setChecked(True)
        self.edges_check.setToolTip("Draw the edges of the missing wedge (shared wedge state) over the Fourier slices")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Before", self.before_picker)
        form.addRow("After", self.after_picker)
        opts = QHBoxLayout()
        opts.addWidget(self.mode_combo, 1)
        opts.addWidget(self.edges_check)
        form.addRow("Spectrum", opts)

        self.columns = [_Column("Before"), _Column("After")]
        row = QHBoxLayout()
        row.setSpacing(8)
        for column in self.columns:
            row.addWidget(column, 1)
        self.note = QLabel(
            "Click or drag in a slice to move the viewer's point. Contrast of 'after' is matched to 'before'."
        )
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: gray;")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(row, 1)
        layout.addWidget(self.note)

        for column in self.columns:
            for name, panel in column.panels.items():
                panel.clicked.connect(self._make_click_handler(column, name))
        self.before_picker.layer_changed.connect(self._on_layers_chosen)
        self.after_picker.layer_changed.connect(self._on_layers_chosen)
        self.before_picker.data_changed.connect(self._on_layers_chosen)
        self.after_picker.data_changed.connect(self._on_layers_chosen)
        self.mode_combo.currentIndexChanged.connect(lambda _i: self._load_spectra())
        self.edges_check.toggled.connect(lambda _on: self._draw_edges())
        self.state.changed.connect(self._on_wedge_changed)
        self.viewer.dims.events.point.connect(self._schedule_update)
        self.viewer.dims.events.current_step.connect(self._schedule_update)
        self._on_layers_chosen()

    # ------------------------------------------------------------------ API

    @property
    def before(self) -> Any:
        return self.before_picker.layer()

    @property
    def after(self) -> Any:
        return self.after_picker.layer()

    def set_layers(self, before: Any, after: Any = None) -> None:
        """Show ``before`` (and ``after``, or None for one layer only)."""
        self.before_picker.set_layer(before)
        self.after_picker.set_layer(after)

    def data_index(self, layer: Any) -> tuple[int, int, int]:
        """Voxel index ``(z, y, x)`` of ``layer`` at the viewer's current point."""
        pos = np.asarray(layer.world_to_data(self.viewer.dims.point), dtype=float)[-3:]
        shape = volume_of(layer).shape
        return tuple(int(np.clip(np.round(p), 0, n - 1)) for p, n in zip(pos, shape))  # type: ignore[return-value]

    def move_to(self, layer: Any, index: tuple[float, float, float]) -> None:
        """Move the viewer's point to voxel ``index`` of ``layer``."""
        shape = volume_of(layer).shape
        idx = [float(np.clip(np.round(v), 0, n - 1)) for v, n in zip(index, shape)]
        world = layer.data_to_world(idx)
        nd = self.viewer.dims.ndim
        self.viewer.dims.set_point(list(range(nd - 3, nd)), [float(w) for w in world[-3:]])

    # ------------------------------------------------------------------ layers

    def _on_layers_chosen(self, *_: Any) -> None:
        layers = [self.before, self.after]
        if layers[0] is None and layers[1] is not None:
            layers = [layers[1], None]
        for column, layer in zip(self.columns, layers):
            if layer is None:
                column.clear("No 3D image layer." if column is self.columns[0] else "")
                column.setVisible(column is self.columns[0])
                continue
            column.setVisible(True)
            column.layer = layer
            column.spectrum = None
            column.header.setText(f"{column.heading}: {layer.name}")
            column.header.setToolTip(column.header.text())
            self._request_stats(layer)
        self._load_spectra()
        self.update_views()

    def _request_stats(self, layer: Any) -> None:
        key = ("stats", id(layer))
        if _cached_stats(layer) is not None or self.runner.busy(key):
            return
        data = volume_of(layer)
        layer_ref = weakref.ref(layer)

        def done(stats: dict[str, float]) -> None:
            live = layer_ref()
            if live is not None:
                try:
                    _STATS[live] = (weakref.ref(data), stats)
                except TypeError:
                    pass
            self.update_views()
            self._draw_spectra()

        # No statistics (an error): the slices' own statistics stay in use.
        self.runner.run(contrast_statistics, data, key=key, on_result=done, on_error=lambda _exc: None)

    # ------------------------------------------------------------------ real space

    def _schedule_update(self, *_: Any) -> None:
        if self._update_pending or not is_alive(self):
            return
        self._update_pending = True
        QTimer.singleShot(0, self._deferred_update)

    def _deferred_update(self) -> None:
        self._update_pending = False
        if is_alive(self):
            self.update_views()

    def display_limits(self) -> dict[int, tuple[float, float]]:
        """Contrast limits per column index, matched (see the module docstring)."""
        out: dict[int, tuple[float, float]] = {}
        columns = [c for c in self.columns if c.layer is not None]
        if not columns:
            return out
        stats = [_cached_stats(c.layer) or self._slice_stats(c) for c in columns]
        if len(columns) == 1:
            out[0] = (stats[0]["low"], stats[0]["high"])
        else:
            lb, la, _k = matched_limits(stats[0], stats[1])
            out[0], out[1] = lb, la
        return out

    def _slice_stats(self, column: _Column) -> dict[str, float]:
        """Statistics of the three current slices (until the volume's arrive)."""
        data = volume_of(column.layer)
        z, y, x = column.index or self.data_index(column.layer)
        parts = [np.asarray(data[z], np.float32).ravel(), np.asarray(data[:, y, :], np.float32).ravel(), np.asarray(data[:, :, x], np.float32).ravel()]
        sample = np.concatenate(parts)
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return {"mean": 0.0, "std": 1.0, "low": 0.0, "high": 1.0}
        low, high = np.percentile(sample, PERCENTILES)
        return {"mean": float(sample.mean()), "std": float(sample.std()), "low": float(low), "high": float(high)}

    def update_views(self) -> None:
        """Re-slice every view at the viewer's current point (a few ms)."""
        for i, column in enumerate(self.columns):
            layer = column.layer
            if layer is None:
                continue
            if layer not in self.viewer.layers:
                self.runner.cancel(("spectrum", i))
                column.clear("The layer was removed.")
                continue
            column.index = self.data_index(layer)
        limits = self.display_limits()
        for i, column in enumerate(self.columns):
            if column.layer is None or column.index is None:
                continue
            self._draw_column(column, limits.get(i))
        self.updates += 1

    def _draw_column(self, column: _Column, limits: tuple[float, float] | None) -> None:
        layer = column.layer
        data = volume_of(layer)
        sz, sy, sx = (float(s) for s in layer.scale[-3:])
        nz, ny, nx = data.shape
        z, y, x = column.index
        column.block.set_extent((nz * sz, ny * sy, nx * sx))
        views = {
            "xy": (np.asarray(data[z]), (sy, sx), (y, x), f"XY z={z}"),
            "zy": (np.asarray(data[:, :, x]).T, (sy, sz), (y, z), f"YZ x={x}"),
            "xz": (np.asarray(data[:, y, :]), (sz, sx), (z, x), f"XZ y={y}"),
        }
        for name, (image, pixel, cross, title) in views.items():
            panel = column.panels[name]
            panel.set_message("")
            panel.set_title(title)
            panel.set_image(image, limits, pixel_size=pixel)
            panel.set_crosshair(cross)
        value = data[z, y, x]
        column.position_label.setText(f"voxel (z, y, x) = ({z}, {y}, {x}), value {float(value):.4g}")

    def _make_click_handler(self, column: _Column, view: str):
        def clicked(row: float, col: float) -> None:
            if column.layer is None or column.index is None:
                return
            z, y, x = column.index
            if view == "xy":
                y, x = row, col
            elif view == "zy":
                y, z = row, col
            else:  # "xz"
                z, x = row, col
            self.move_to(column.layer, (z, y, x))

        return clicked

    # ------------------------------------------------------------------ Fourier space

    @property
    def mode(self) -> str:
        return self.mode_combo.currentData()

    def _load_spectra(self) -> None:
        mode = self.mode
        for i, column in enumerate(self.columns):
            layer = column.layer
            key = ("spectrum", i)  # a new layer or mode of the column supersedes the request before
            if layer is None:
                self.runner.cancel(key)
                continue
            column.spectrum = None
            if SPECTRA.get(layer, mode) is None:
                for panel in column.fourier.values():
                    panel.set_image(None)
                    panel.set_message("computing\u2026")

            def ready(spectrum: SpectrumSlices, column: _Column = column) -> None:
                column.spectrum = spectrum
                self._draw_spectra()

            def failed(exc: BaseException, column: _Column = column) -> None:
                for panel in column.fourier.values():
                    panel.set_message(f"spectrum failed:\n{exc}")

            SPECTRA.request(self.runner, layer, mode, ready, failed, key=key)

    def spectrum_limits(self) -> dict[int, tuple[float, float]]:
        """Contrast limits of the Fourier slices per column index, matched."""
        out: dict[int, tuple[float, float]] = {}
        first = self.columns[0]
        if first.spectrum is None:
            if self.columns[1].spectrum is not None:
                out[1] = self.columns[1].spectrum.contrast_limits()
            return out
        lo, hi = first.spectrum.contrast_limits()
        out[0] = (lo, hi)
        second = self.columns[1]
        if second.layer is not None and second.spectrum is not None:
            sb, sa = _cached_stats(first.layer), _cached_stats(second.layer)
            if sb is not None and sa is not None:
                _lb, _la, k = matched_limits(sb, sa)
                shift = 2.0 * math.log10(k) if k > 0 else 0.0
                out[1] = (lo - shift, hi - shift)
            else:
                out[1] = second.spectrum.contrast_limits()
        return out

    def _draw_spectra(self) -> None:
        limits = self.spectrum_limits()
        for i, column in enumerate(self.columns):
            spectrum = column.spectrum
            if column.layer is None or spectrum is None:
                continue
            scale = tuple(column.layer.scale[-3:])
            for plane, panel in column.fourier.items():
                panel.set_message("")
                panel.set_image(spectrum[plane], limits.get(i), pixel_size=fourier_pixel_size(plane, spectrum.shape, scale))
        self._draw_edges()

    def _on_wedge_changed(self, _geometry: Any) -> None:
        if is_alive(self):
            self._draw_edges()

    def _draw_edges(self) -> None:
        geometry = self.state.geometry
        for column in self.columns:
            spectrum = column.spectrum
            if spectrum is None:
                continue
            segments = wedge_edge_segments(spectrum.shape, geometry) if self.edges_check.isChecked() else {}
            for plane, panel in column.fourier.items():
                panel.set_segments(segments.get(plane, []))
