"""Missing-wedge inspector: the three central Fourier slices of a tomogram with
the theoretical wedge drawn over them, following a tilt-range slider live.

The spectrum of a layer is computed once (per data object and spectrum mode)
in a thread worker of the widget's :class:`~napari_dewedge.widgets._runner.TaskRunner`
and cached (:data:`~napari_dewedge.widgets.state.SPECTRA`);
moving the slider only recomputes the small 2D masks and edge lines
(:func:`~napari_dewedge.core.spectra.slice_masks`, cached per geometry) and
repaints three :class:`~napari_dewedge.widgets.panels.ImagePanel`. The wedge
itself lives in the viewer's shared :class:`~napari_dewedge.widgets.state.WedgeState`,
which the dewedge widget reads.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider

from ..core.layers import geometry_of
from ..core.spectra import (
    PLANES,
    SpectrumSlices,
    angular_profile,
    estimate_tilt_range,
    slice_masks,
    wedge_edge_segments,
)
from ..core.wedge import WedgeGeometry
from ._runner import TaskRunner
from .panels import ImagePanel, LayerPicker, ProfilePanel, is_alive
from .state import SPECTRA, SPECTRUM_MODES, get_wedge_state, register_widget

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["WedgeInspector", "PLANE_TITLES", "fourier_pixel_size"]

#: Titles of the central Fourier slices, by plane.
PLANE_TITLES = {"xy": "kz = 0 (XY)", "xz": "ky = 0 (XZ)", "yz": "kx = 0 (YZ)"}
#: (rows, columns) frequency axes of each plane.
PLANE_AXES = {"xy": ("ky", "kx"), "xz": ("kz", "kx"), "yz": ("kz", "ky")}
_PLANE_DIMS = {"xy": (1, 2), "xz": (0, 2), "yz": (0, 1)}


def fourier_pixel_size(plane: str, shape: tuple[int, ...], scale: tuple[float, ...] | None) -> tuple[float, float]:
    """Physical size (1/length) of a pixel of a central Fourier plane: ``1 / (n d)``
    along each of its axes, so that the plane is drawn with true proportions."""
    scale = tuple(scale) if scale is not None else (1.0, 1.0, 1.0)
    r, c = _PLANE_DIMS[plane]
    return 1.0 / (shape[r] * float(scale[r])), 1.0 / (shape[c] * float(scale[c]))


def wedge_plane(tilt_axis: str) -> str:
    """The central plane in which the wedge of ``tilt_axis`` shows."""
    return "xz" if tilt_axis == "y" else "yz"


class _SquareCells(QWidget):
    """Holder of the 2 x 2 panel grid: as tall as wide (square Fourier planes
    of isotropic data), so the dock wastes no height."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(200)
        self.setFixedHeight(self.heightForWidth(400))

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt API)
        return width + 2 * (self.fontMetrics().height() + 8)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(400, self.heightForWidth(400))

    def resizeEvent(self, event) -> None:  # noqa: N802
        # Layouts give a widget with a layout of its own no height-for-width:
        # pin the height to the width instead (settles in one pass).
        super().resizeEvent(event)
        height = self.heightForWidth(self.width())
        if self.minimumHeight() != height:
            self.setFixedHeight(height)
        if self.layout() is not None:
            self.layout().setGeometry(self.rect())


class WedgeInspector(QWidget):
    """Dock widget: preview the missing wedge of a 3D image layer in Fourier space.

    Parameters
    ----------
    napari_viewer
        The viewer whose image layers are listed and whose shared wedge state
        is edited.

    Public attributes used by scripts and tests: ``layer_picker``,
    ``range_slider``, ``axis_combo``, ``soft_edge_spin``, ``mode_combo``,
    ``estimate_button``, ``panels`` (dict plane -> ImagePanel), ``profile``,
    ``state`` (the viewer's :class:`~napari_dewedge.widgets.state.WedgeState`),
    ``runner`` (its :class:`~napari_dewedge.widgets._runner.TaskRunner`: tasks
    ``"spectrum"`` and ``"estimate"``).
    """

    def __init__(self, napari_viewer: "napari.viewer.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = get_wedge_state(napari_viewer)
        register_widget(napari_viewer, self)
        self._spectrum: SpectrumSlices | None = None
        self._spectrum_layer: Any = None
        self._profiles: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
        self._profile_key: tuple[int, str] | None = None
        self.runner = TaskRunner(self, napari_viewer)
        self.runner.finished.connect(self._on_task_finished)
        self._syncing = False
        self.last_estimate: tuple[float, float] | None = None
        self.redraws = 0

        self._build()
        self.state.changed.connect(self._on_state_changed)
        self._sync_controls(self.state.geometry)
        self._on_layer_changed(self.layer_picker.layer())

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.layer_picker = LayerPicker(self.viewer)
        self.layer_picker.setToolTip("3D image layer to inspect (RGB, labels and 2D layers are not listed)")

        self.range_slider = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
        self.range_slider.setRange(-90.0, 90.0)
        self.range_slider.setSingleStep(0.5)
        self.range_slider.setDecimals(1)
        self.range_slider.setValue((-60.0, 60.0))
        try:
            from superqt.sliders._labeled import EdgeLabelMode, LabelPosition

            self.range_slider.setEdgeLabelMode(EdgeLabelMode.LabelIsValue)
            self.range_slider.setHandleLabelPosition(LabelPosition.NoLabel)
        except ImportError:  # pragma: no cover - older superqt
            pass
        self.range_slider.setToolTip("Measured tilt range in degrees (asymmetric ranges allowed); type exact values in the boxes")
        self.range_slider.valueChanged.connect(self._on_slider)

        self.axis_combo = QComboBox()
        self.axis_combo.addItems(["y", "x"])
        self.axis_combo.setToolTip("Tilt axis of the tilt series (usually y)")
        self.axis_combo.currentTextChanged.connect(self._on_axis)

        self.soft_edge_spin = QDoubleSpinBox()
        self.soft_edge_spin.setRange(0.0, 45.0)
        self.soft_edge_spin.setSingleStep(1.0)
        self.soft_edge_spin.setDecimals(1)
        self.soft_edge_spin.setSuffix(" \u00b0")
        self.soft_edge_spin.setSpecialValueText("off")
        self.soft_edge_spin.setToolTip("Raised-cosine taper from the measured range into the wedge (0 = hard edge)")
        self.soft_edge_spin.valueChanged.connect(self._on_soft_edge)

        self.mode_combo = QComboBox()
        for mode, label in SPECTRUM_MODES.items():
            self.mode_combo.addItem(label, mode)
        self.mode_combo.setToolTip(
            "central planes: the exact slices kz=0, ky=0, kx=0 of the 3D transform;\n"
            "averaged: power averaged over the third frequency axis (far less noisy)"
        )
        self.mode_combo.currentIndexChanged.connect(lambda _i: self._load_spectrum())

        self.estimate_button = QPushButton("Estimate from data")
        self.estimate_button.setToolTip("Find the tilt range where the averaged spectrum loses its power")
        self.estimate_button.clicked.connect(self.estimate)
        self.metadata_button = QPushButton("Use layer's wedge")
        self.metadata_button.setToolTip("Apply the wedge recorded in the layer's metadata")
        self.metadata_button.clicked.connect(self._use_metadata)

        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.info_label = QLabel("")
        self.info_label.setWordWrap(True)
        for label in (self.status_label, self.info_label):
            label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Layer", self.layer_picker)
        form.addRow("Tilt range", self.range_slider)
        row = QHBoxLayout()
        row.addWidget(self.axis_combo)
        row.addWidget(QLabel("Soft edge"))
        row.addWidget(self.soft_edge_spin)
        form.addRow("Tilt axis", row)
        form.addRow("Spectrum", self.mode_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.estimate_button)
        buttons.addWidget(self.metadata_button)
        form.addRow(buttons)

        self.panels: dict[str, ImagePanel] = {
            plane: ImagePanel(PLANE_TITLES[plane], lut="magma", axis_labels=PLANE_AXES[plane]) for plane in PLANES
        }
        self.profile = ProfilePanel("Power vs. angle")
        grid = QGridLayout()
        grid.setSpacing(4)
        grid.addWidget(self.panels["xy"], 0, 0)
        grid.addWidget(self.panels["xz"], 0, 1)
        grid.addWidget(self.panels["yz"], 1, 0)
        grid.addWidget(self.profile, 1, 1)
        panel_box = _SquareCells()
        panel_box.setLayout(grid)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status_label)
        layout.addWidget(panel_box)
        layout.addWidget(self.info_label)
        layout.addStretch(1)
        self.layer_picker.layer_changed.connect(self._on_layer_changed)
        self.layer_picker.data_changed.connect(self._on_layer_data)

    # ------------------------------------------------------------------ layer and spectrum

    @property
    def layer(self) -> Any:
        """The layer inspected, or None."""
        return self.layer_picker.layer()

    @property
    def spectrum(self) -> SpectrumSlices | None:
        """The spectrum shown, or None while computing / without a layer."""
        return self._spectrum

    @property
    def mode(self) -> str:
        return self.mode_combo.currentData()

    def _on_layer_changed(self, layer: Any) -> None:
        geometry = self.state.adopt(layer)
        if geometry is not None:
            self.status_label.setText(f"Wedge from the layer's metadata: {geometry}")
        self.metadata_button.setEnabled(layer is not None and geometry_of(layer) is not None)
        self.estimate_button.setEnabled(layer is not None and not self.runner.busy("estimate"))
        self._load_spectrum()

    def _on_layer_data(self, layer: Any) -> None:
        if layer is self.layer:
            self._load_spectrum()

    def _load_spectrum(self) -> None:
        layer, mode = self.layer, self.mode
        self._spectrum = None
        self._spectrum_layer = layer
        if layer is None:
            self.runner.cancel("spectrum")
            message = "No 3D image layer.\nOpen a tomogram (2D, RGB and labels layers are not used)."
            for panel in self.panels.values():
                panel.set_image(None)
                panel.set_shading(None)
                panel.set_segments([])
                panel.set_message("")
            self.panels["xy"].set_message(message)
            self.profile.set_profile(None, None)
            self._profile_key = None
            self.info_label.setText("")
            return
        if SPECTRA.get(layer, mode) is None:
            for panel in self.panels.values():
                panel.set_message("computing spectrum\u2026")

        def failed(exc: BaseException) -> None:
            for panel in self.panels.values():
                panel.set_message("")
            self.status_label.setText(f"Could not compute the spectrum of {layer.name!r}: {exc}")

        # Task "spectrum": a new layer or mode supersedes the request before.
        SPECTRA.request(self.runner, layer, mode, lambda spectrum: self._show_spectrum(layer, spectrum), failed)

    def _show_spectrum(self, layer: Any, spectrum: SpectrumSlices) -> None:
        self._spectrum = spectrum
        self._spectrum_layer = layer
        limits = spectrum.contrast_limits()
        scale = tuple(layer.scale[-3:])
        for plane, panel in self.panels.items():
            panel.set_message("")
            panel.set_image(spectrum[plane], limits, pixel_size=fourier_pixel_size(plane, spectrum.shape, scale))
        self._profile_key = None
        self._update_profile()
        self.redraw_overlay()

    def _update_profile(self) -> None:
        spectrum = self._spectrum
        if spectrum is None:
            self.profile.set_profile(None, None)
            self._profile_key = None
            return
        axis = self.state.geometry.tilt_axis
        key = (id(spectrum), axis)
        if key == self._profile_key:
            return  # already shown: slider moves do not touch the curve
        if key not in self._profiles:
            self._profiles = {k: v for k, v in self._profiles.items() if k[0] == id(spectrum)}
            self._profiles[key] = angular_profile(spectrum, axis)
        angles, values = self._profiles[key]
        self.profile.set_profile(angles, values, smooth=5)
        self.profile.set_title(f"Power vs. angle ({wedge_plane(axis).upper()})")
        self._profile_key = key

    # ------------------------------------------------------------------ wedge overlay

    def redraw_overlay(self) -> None:
        """Re-draw the wedge (shading and edges) for the current geometry.

        Costs a few milliseconds: the spectrum is not touched.
        """
        geometry = self.state.geometry
        self.profile.set_range(geometry.tilt_min, geometry.tilt_max)
        spectrum = self._spectrum
        if spectrum is None:
            return
        masks = slice_masks(spectrum.shape, geometry)
        segments = wedge_edge_segments(spectrum.shape, geometry)
        for plane, panel in self.panels.items():
            panel.set_shading(masks[plane])
            panel.set_segments(segments[plane])
        fraction = float(masks[wedge_plane(geometry.tilt_axis)].mean(dtype=np.float64))
        self.info_label.setText(
            f"Missing wedge {geometry.missing_angle:.1f}\u00b0 wide about {geometry.tilt_axis}: "
            f"{100 * fraction:.1f} % of Fourier space measured"
        )
        self.redraws += 1

    @property
    def masks(self) -> dict[str, np.ndarray] | None:
        """The wedge masks currently drawn (plane -> 2D weights), or None."""
        if self._spectrum is None:
            return None
        return {plane: panel.shading_mask for plane, panel in self.panels.items()}

    # ------------------------------------------------------------------ controls <-> state

    def _sync_controls(self, geometry: WedgeGeometry) -> None:
        self._syncing = True
        try:
            self.range_slider.setValue((geometry.tilt_min, geometry.tilt_max))
            self.axis_combo.setCurrentText(geometry.tilt_axis)
            self.soft_edge_spin.setValue(geometry.soft_edge)
        finally:
            self._syncing = False

    def _on_state_changed(self, geometry: WedgeGeometry) -> None:
        if not is_alive(self):
            return
        self._sync_controls(geometry)
        self._update_profile()
        self.redraw_overlay()

    def _set_state(self, **fields: Any) -> None:
        if self._syncing:
            return
        try:
            self.state.set(origin="user", **fields)
        except ValueError as exc:
            self.status_label.setText(str(exc))

    def _on_slider(self, value: tuple[float, float]) -> None:
        lo, hi = float(value[0]), float(value[-1])
        self._set_state(tilt_min=lo, tilt_max=hi)

    def _on_axis(self, axis: str) -> None:
        self._set_state(tilt_axis=axis)

    def _on_soft_edge(self, value: float) -> None:
        self._set_state(soft_edge=float(value))

    def _use_metadata(self) -> None:
        layer = self.layer
        geometry = geometry_of(layer) if layer is not None else None
        if geometry is None:
            self.status_label.setText("The layer's metadata records no wedge.")
            return
        self.state.set(geometry, origin="metadata")
        self.status_label.setText(f"Wedge from the layer's metadata: {geometry}")

    # ------------------------------------------------------------------ estimate

    def estimate(self) -> Any:
        """Estimate the tilt range of the current layer in a worker; the slider
        moves when it is done. Returns the task id (the running one's if an
        estimate runs already; None without a layer)."""
        layer = self.layer
        if layer is None:
            self.status_label.setText("Choose a 3D image layer first.")
            return None
        if self.runner.busy("estimate"):
            return self.runner.current("estimate")
        axis = self.state.geometry.tilt_axis
        data = SPECTRA._data(layer)

        def run() -> tuple[float, float]:
            spectrum = SPECTRA.get_or_compute(layer, "average", data)
            return estimate_tilt_range(spectrum, axis)

        layer_ref = weakref.ref(layer)
        self.estimate_button.setEnabled(False)
        self.status_label.setText(f"Estimating the tilt range of {layer.name!r}\u2026")
        return self.runner.run(
            run,
            key="estimate",
            on_result=lambda result: self._estimate_done(layer_ref, axis, result),
            on_error=lambda exc: self._estimate_failed(layer_ref, exc),
        )

    def _on_task_finished(self, key: Any) -> None:
        if key == "estimate":
            self.estimate_button.setEnabled(self.layer is not None)

    def _estimate_done(self, layer_ref: Any, axis: str, result: tuple[float, float]) -> None:
        layer = layer_ref()
        if layer is None or layer not in self.viewer.layers:
            self.status_label.setText("The layer was removed before the estimate finished.")
            return
        lo, hi = (round(float(v), 1) for v in result)
        self.last_estimate = (lo, hi)
        if (lo, hi) == (-90.0, 90.0):
            self.status_label.setText(f"No missing wedge visible in {layer.name!r} (about {axis}).")
            return
        self.state.set(tilt_min=lo, tilt_max=hi, tilt_axis=axis, origin="estimated")
        self.profile.set_estimate((lo, hi))
        self.status_label.setText(f"Estimated from {layer.name!r}: {lo:+.1f}\u00b0 to {hi:+.1f}\u00b0 about {axis}.")

    def _estimate_failed(self, layer_ref: Any, exc: BaseException) -> None:
        layer = layer_ref()
        name = layer.name if layer is not None else "the layer"
        self.status_label.setText(f"Could not estimate the tilt range of {name!r}: {exc}")
