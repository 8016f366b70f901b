"""Compare before and after: Fourier shell correlation, how isotropic each
volume is and, with a ground truth, PSNR, SSIM and how much of the missing
wedge was restored.

Measures (all from :mod:`napari_dewedge.core.metrics`, computed in a napari
thread worker):

- FSC between before and after (how much of each frequency the processing kept);
- spectral anisotropy of each layer: power along kz against kx/ky in dB
  (about 0 for an isotropic volume, large with an empty wedge), and the ratio
  of z-cone to xy-cone power per frequency in the lower plot;
- with a ground truth: FSC of each layer against it, PSNR and SSIM (both after
  z-score normalisation of each volume, since a network's output has an
  arbitrary offset and scale), FSC-AUC over the missing wedge only, and the
  resolution along z and in x/y from conical FSCs against the truth.

:func:`open_comparison` docks (or reuses) this widget and the orthogonal views
for a pair of layers in one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generator

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core import metrics
from ..core.wedge import WedgeGeometry
from .orthoviews import OrthoViews, is_input_layer, is_result_layer
from .panels import LayerPicker, is_alive, volume_of
from .state import find_widget, geometry_from_layer, get_wedge_state, register_widget

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["CompareWidget", "Comparison", "compute_comparison", "layer_voxel_size", "open_comparison"]

#: Volumes above this many voxels get SSIM on a centred crop (its filters need ~10 copies in float64).
SSIM_MAX_VOXELS = 2**24
HALF_ANGLE = 30.0
COLOURS = {"before": "#f0a030", "after": "#40c8f0", "before-after": "#e0e0e0"}


def _role(layer: Any) -> str | None:
    return (getattr(layer, "metadata", None) or {}).get("dewedge_role")


def is_truth_layer(layer: Any) -> bool:
    return _role(layer) == "ground_truth"


def layer_voxel_size(layer: Any) -> float | None:
    """Isotropic voxel size in Å of a layer: ``metadata["voxel_size"]`` when
    recorded, else its scale; None when unknown or anisotropic. A size of
    exactly 1 counts as unknown: MRC headers without a cell size read as 1 Å
    and napari's default scale is 1."""
    meta = getattr(layer, "metadata", None) or {}
    value = meta.get("voxel_size")
    sizes = None
    if value is not None:
        try:
            sizes = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
        except (TypeError, ValueError):
            sizes = None
    if sizes is None or sizes.size == 0:
        sizes = np.asarray(layer.scale[-3:], dtype=float)
    if np.allclose(sizes, 1.0):
        return None
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        return None
    if sizes.max() > 1.01 * sizes.min():
        return None
    return float(sizes.mean())


@dataclass
class Comparison:
    """Everything :func:`compute_comparison` measured. Keys of the per-layer
    dicts are ``"before"`` and ``"after"``."""

    names: dict[str, str]
    voxel_size: float | None
    geometry: WedgeGeometry
    fsc: metrics.FSCResult
    anisotropy: dict[str, float]
    cone_power: dict[str, dict[str, np.ndarray]]
    truth_name: str | None = None
    fsc_truth: dict[str, metrics.FSCResult] = field(default_factory=dict)
    psnr: dict[str, float] = field(default_factory=dict)
    ssim: dict[str, float] = field(default_factory=dict)
    missing_wedge_auc: dict[str, float] = field(default_factory=dict)
    directional: dict[str, dict[str, Any]] = field(default_factory=dict)
    ssim_note: str = ""

    @property
    def units(self) -> str:
        return self.fsc.units


def _as_volume(data: Any, name: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be a 3D (z, y, x) volume, got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


def _centre_crop(arr: np.ndarray, max_voxels: int) -> np.ndarray:
    if arr.size <= max_voxels:
        return arr
    f = (max_voxels / arr.size) ** (1.0 / 3.0)
    sl = tuple(slice((n - max(11, int(n * f))) // 2, (n - max(11, int(n * f))) // 2 + max(11, int(n * f))) for n in arr.shape)
    return arr[sl]


def compute_comparison(
    before: Any,
    after: Any,
    truth: Any = None,
    *,
    names: dict[str, str] | None = None,
    geometry: WedgeGeometry | None = None,
    voxel_size: float | None = None,
) -> Generator[str, None, Comparison]:
    """Measure before against after (and both against ``truth``), yielding a
    line of progress text before each step; returns a :class:`Comparison`.

    A generator so that a napari worker can report progress and be stopped
    between steps. Volumes must share one shape.
    """
    names = dict(names or {})
    names.setdefault("before", "before")
    names.setdefault("after", "after")
    geometry = geometry or WedgeGeometry()
    yield "reading volumes"
    vols = {"before": _as_volume(before, f"before ({names['before']})"), "after": _as_volume(after, f"after ({names['after']})")}
    if vols["before"].shape != vols["after"].shape:
        raise ValueError(
            f"before {names['before']!r} has shape {vols['before'].shape} but after {names['after']!r} has "
            f"{vols['after'].shape}: compare volumes of one shape"
        )
    ref = None
    if truth is not None:
        names.setdefault("truth", "truth")
        ref = _as_volume(truth, f"ground truth ({names['truth']})")
        if ref.shape != vols["before"].shape:
            raise ValueError(
                f"ground truth {names['truth']!r} has shape {ref.shape} but the layers compared have "
                f"{vols['before'].shape}"
            )
    yield "FSC before / after"
    curve = metrics.fsc(vols["before"], vols["after"], voxel_size=voxel_size)
    anisotropy, cone = {}, {}
    for key, vol in vols.items():
        yield f"anisotropy of {names[key]}"
        cone[key] = metrics.cone_power_spectra(vol, half_angle_deg=HALF_ANGLE)
        try:
            anisotropy[key] = metrics.spectral_anisotropy(vol, half_angle_deg=HALF_ANGLE)
        except ValueError:
            anisotropy[key] = math.nan
    result = Comparison(
        names={k: names[k] for k in ("before", "after")},
        voxel_size=voxel_size,
        geometry=geometry,
        fsc=curve,
        anisotropy=anisotropy,
        cone_power=cone,
        truth_name=names.get("truth") if ref is not None else None,
    )
    if ref is None:
        return result
    ref_crop = _centre_crop(ref, SSIM_MAX_VOXELS)
    if ref_crop.shape != ref.shape:
        result.ssim_note = f"SSIM on a centred {ref_crop.shape[0]}x{ref_crop.shape[1]}x{ref_crop.shape[2]} crop"
    for key, vol in vols.items():
        yield f"{names[key]} against the ground truth"
        result.fsc_truth[key] = metrics.fsc(vol, ref, voxel_size=voxel_size)
        result.psnr[key] = metrics.psnr(vol, ref, normalize="zscore")
        try:
            result.ssim[key] = metrics.ssim(_centre_crop(vol, SSIM_MAX_VOXELS), ref_crop, normalize="zscore")
        except ValueError:
            result.ssim[key] = math.nan
        result.missing_wedge_auc[key] = metrics.missing_wedge_fsc_auc(vol, ref, geometry)
        result.directional[key] = metrics.directional_resolution(vol, ref, voxel_size=voxel_size, half_angle_deg=HALF_ANGLE)
    return result


def _fmt(value: float, digits: int = 3, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    if math.isinf(value):
        return "\u221e"
    return f"{value:.{digits}g}{suffix}"


class CompareWidget(QWidget):
    """Dock widget: compare a before and an after layer (optionally against a
    ground truth).

    :meth:`compare` is the one-call API (used by the dewedge widget through
    :func:`open_comparison`). ``computed`` is emitted with the
    :class:`Comparison` when a computation finishes.
    """

    computed = Signal(object)

    def __init__(self, napari_viewer: "napari.viewer.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = get_wedge_state(napari_viewer)
        register_widget(napari_viewer, self)
        self.result: Comparison | None = None
        self._worker: Any = None

        self.before_picker = LayerPicker(napari_viewer, prefer=is_input_layer)
        self.after_picker = LayerPicker(napari_viewer, prefer=is_result_layer)
        self.truth_picker = LayerPicker(napari_viewer, none_text="(none)", prefer=is_truth_layer)
        self.compute_button = QPushButton("Compute")
        self.compute_button.setToolTip("FSC, anisotropy and (with a ground truth) PSNR, SSIM, missing-wedge FSC")
        self.compute_button.clicked.connect(lambda: self.compare())
        self.status_label = QLabel("Choose two layers of one shape and press Compute.")
        self.status_label.setWordWrap(True)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4.2, 4.6), dpi=100, facecolor="#262930", layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.canvas.setMinimumHeight(320)

        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Before", "After"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Before", self.before_picker)
        form.addRow("After", self.after_picker)
        form.addRow("Ground truth", self.truth_picker)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button)
        buttons.addWidget(self.status_label, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.table)
        self._draw_empty()

    # ------------------------------------------------------------------ API

    def compare(self, before: Any = None, after: Any = None, truth: Any = None) -> Any:
        """Compare ``before`` with ``after`` (layers of this viewer; default:
        the pickers' choice), against ``truth`` when given (or picked).
        Runs in a worker; returns it (None when the input is not usable)."""
        if before is not None:
            self.before_picker.set_layer(before)
        if after is not None:
            self.after_picker.set_layer(after)
        if truth is not None:
            self.truth_picker.set_layer(truth)
        before, after, truth = self.before_picker.layer(), self.after_picker.layer(), self.truth_picker.layer()
        if before is None or after is None:
            self.status_label.setText("Choose a before and an after layer (3D image layers).")
            return None
        if before is after:
            self.status_label.setText("Before and after are the same layer: choose two different layers.")
            return None
        shapes = {layer.name: tuple(volume_of(layer).shape) for layer in (before, after, truth) if layer is not None}
        if len(set(shapes.values())) > 1:
            listing = ", ".join(f"{n!r} {s}" for n, s in shapes.items())
            self.status_label.setText(f"The layers must have one shape: {listing}.")
            return None
        if self._worker is not None:
            self._worker.quit()
        from napari.qt.threading import create_worker

        names = {"before": before.name, "after": after.name}
        if truth is not None:
            names["truth"] = truth.name
        worker = create_worker(
            compute_comparison,
            volume_of(before),
            volume_of(after),
            None if truth is None else volume_of(truth),
            names=names,
            geometry=self.wedge_for(before),
            voxel_size=layer_voxel_size(before),
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.yielded.connect(lambda text, w=worker: self._progress(w, text))
        worker.returned.connect(lambda result, w=worker: self._done(w, result))
        worker.errored.connect(lambda exc, w=worker: self._failed(w, exc))
        self._worker = worker
        self.compute_button.setEnabled(False)
        self.status_label.setText("Computing\u2026")
        worker.start()
        return worker

    def wedge_for(self, before: Any) -> WedgeGeometry:
        """The wedge scored by the missing-wedge FSC: the viewer's shared wedge
        once it was set (inspector, estimate, dewedge widget), else the one
        recorded in the before layer's metadata, else the default."""
        if self.state.origin == "default":
            recorded = geometry_from_layer(before)
            if recorded is not None:
                return recorded
        return self.state.geometry

    @property
    def busy(self) -> bool:
        return self._worker is not None

    # ------------------------------------------------------------------ worker callbacks

    def _progress(self, worker: Any, text: str) -> None:
        if is_alive(self) and worker is self._worker:
            self.status_label.setText(f"Computing: {text}\u2026")

    def _failed(self, worker: Any, exc: BaseException) -> None:
        if not is_alive(self) or worker is not self._worker:
            return
        self._worker = None
        self.compute_button.setEnabled(True)
        self.status_label.setText(f"Comparison failed: {exc}")

    def _done(self, worker: Any, result: Comparison) -> None:
        if not is_alive(self) or worker is not self._worker:
            return
        self._worker = None
        self.compute_button.setEnabled(True)
        self.result = result
        self.status_label.setText("Done.")
        self._show(result)
        self.computed.emit(result)

    # ------------------------------------------------------------------ display

    def _style_axes(self, ax: Any) -> None:
        ax.set_facecolor("#1b1d22")
        for spine in ax.spines.values():
            spine.set_color("#9aa0aa")
        ax.tick_params(colors="#d8dbe2", labelsize=8)
        ax.xaxis.label.set_color("#d8dbe2")
        ax.yaxis.label.set_color("#d8dbe2")
        ax.title.set_color("#eef0f4")
        ax.grid(True, color="#3a3e46", linewidth=0.6)

    def _draw_empty(self) -> None:
        self.figure.clear()
        ax = self.figure.add_subplot(1, 1, 1)
        self._style_axes(ax)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "FSC curves appear here", ha="center", va="center", color="#9aa0aa", transform=ax.transAxes)
        self.canvas.draw_idle()

    def _show(self, r: Comparison) -> None:
        unit = "1/\u00c5" if r.voxel_size else "1/voxel"
        res_unit = " \u00c5" if r.voxel_size else " vox"
        self.figure.clear()
        ax1, ax2 = self.figure.subplots(2, 1, height_ratios=[3, 2])
        for ax in (ax1, ax2):
            self._style_axes(ax)
        curves = []
        if r.fsc_truth:
            for key in ("before", "after"):
                curves.append((r.fsc_truth[key], f"{r.names[key]} vs truth", COLOURS[key], "-"))
            curves.append((r.fsc, "before vs after", COLOURS["before-after"], ":"))
        else:
            curves.append((r.fsc, f"{r.names['before']} vs {r.names['after']}", COLOURS["before-after"], "-"))
        for curve, label, colour, style in curves:
            keep = curve.frequency > 0
            ax1.plot(curve.frequency[keep], curve.fsc[keep], style, color=colour, lw=1.6, label=label)
        for level, text in ((0.5, "0.5"), (0.143, "0.143")):
            ax1.axhline(level, color="#8a8f99", lw=0.8, ls="--")
            ax1.text(1.0, level, f" {text}", transform=ax1.get_yaxis_transform(), color="#8a8f99", fontsize=7, va="center", ha="left")
        ax1.set_ylim(-0.05, 1.02)
        ax1.set_xlim(left=0)
        ax1.set_xlabel(f"spatial frequency ({unit})", fontsize=8)
        ax1.set_ylabel("FSC", fontsize=8)
        ax1.set_title("Fourier shell correlation", fontsize=9)
        legend = ax1.legend(fontsize=7, loc="upper right", facecolor="#262930", edgecolor="#4a4f58")
        for text in legend.get_texts():
            text.set_color("#e6e8ee")

        for key in ("before", "after"):
            cp = r.cone_power[key]
            freq = cp["frequency"]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = 10.0 * (np.log10(cp["z"]) - 0.5 * (np.log10(cp["x"]) + np.log10(cp["y"])))
            keep = (freq > 0) & np.isfinite(ratio)
            x = freq[keep] / r.voxel_size if r.voxel_size else freq[keep]
            ax2.plot(x, ratio[keep], color=COLOURS[key], lw=1.4, label=f"{r.names[key]} ({_fmt(r.anisotropy[key], 3)} dB)")
        ax2.axhline(0.0, color="#8a8f99", lw=0.8, ls="--")
        ax2.set_xlim(left=0)
        ax2.set_xlabel(f"spatial frequency ({unit})", fontsize=8)
        ax2.set_ylabel("z vs. x/y power (dB)", fontsize=8)
        ax2.set_title("Isotropy: 0 dB = as much power along z as in x/y", fontsize=9)
        legend = ax2.legend(fontsize=7, loc="lower left", facecolor="#262930", edgecolor="#4a4f58")
        for text in legend.get_texts():
            text.set_color("#e6e8ee")
        self.canvas.draw_idle()

        def crossing(threshold: float) -> str:
            value = f"{_fmt(r.fsc.resolution(threshold))}{res_unit}"
            return f"{threshold:g} at {value}" if r.fsc.crosses(threshold) else f"above {threshold:g} up to Nyquist ({value})"

        summary = (
            f"FSC {r.names['before']!r} vs {r.names['after']!r}: {crossing(0.5)}, "
            f"{crossing(0.143)} (AUC {_fmt(r.fsc.auc, 3)})."
        )
        if r.truth_name:
            summary += f" Ground truth: {r.truth_name!r}; missing wedge: {r.geometry}."
        self.summary_label.setText(summary)

        rows: list[tuple[str, str, str, str]] = [
            ("Spectral anisotropy (dB)", _fmt(r.anisotropy["before"], 3), _fmt(r.anisotropy["after"], 3),
             "Power along kz against kx/ky; 0 dB is isotropic, large with an empty wedge"),
        ]  # fmt: skip
        if r.fsc_truth:
            rows += [
                ("PSNR vs truth (dB)", _fmt(r.psnr["before"], 4), _fmt(r.psnr["after"], 4), "z-score normalised volumes"),
                ("SSIM vs truth", _fmt(r.ssim["before"], 3), _fmt(r.ssim["after"], 3), r.ssim_note or "z-score normalised volumes"),
                ("FSC-AUC vs truth", _fmt(r.fsc_truth["before"].auc, 3), _fmt(r.fsc_truth["after"].auc, 3), "1 = perfect"),
                ("Missing-wedge FSC-AUC", _fmt(r.missing_wedge_auc["before"], 3), _fmt(r.missing_wedge_auc["after"], 3),
                 "FSC-AUC over the missing wedge only: 0 = nothing restored, 1 = truth"),
            ]  # fmt: skip
            for axis_label, axes in (("z", ("z",)), ("x/y", ("x", "y"))):
                values = []
                for key in ("before", "after"):
                    res = r.directional[key]["resolution_0143"]
                    value = float(np.mean([res[a] for a in axes]))
                    values.append("unresolved" if math.isinf(value) else _fmt(value, 3, res_unit))
                rows.append((f"Resolution along {axis_label} (0.143)", values[0], values[1], "Conical FSC against the truth, 30\u00b0 cones"))
            rows.append(
                ("Anisotropy z / xy", _fmt(r.directional["before"]["anisotropy"], 3), _fmt(r.directional["after"]["anisotropy"], 3),
                 "Resolution along z over that in x/y: 1 = isotropic")
            )  # fmt: skip
        self.table.setRowCount(len(rows))
        self.table.setVerticalHeaderLabels([row[0] for row in rows])
        self.table.setHorizontalHeaderLabels(["Before", "After"])
        for j, key in enumerate(("before", "after")):
            self.table.horizontalHeaderItem(j).setToolTip(r.names[key])
        for i, (label, b, a, tip) in enumerate(rows):
            for j, text in enumerate((b, a)):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                item.setToolTip(tip)
                self.table.setItem(i, j, item)
            self.table.verticalHeaderItem(i).setToolTip(tip)
        height = self.table.horizontalHeader().height() + sum(self.table.rowHeight(i) for i in range(len(rows))) + 4
        self.table.setFixedHeight(height)

    def table_values(self) -> dict[str, tuple[str, str]]:
        """The table as ``{row label: (before, after)}`` (text as shown)."""
        out = {}
        for i in range(self.table.rowCount()):
            label = self.table.verticalHeaderItem(i).text()
            out[label] = (self.table.item(i, 0).text(), self.table.item(i, 1).text())
        return out


def _dock(viewer: Any, widget: QWidget, name: str) -> None:
    """Dock ``widget`` in the viewer's window, or show and raise its dock."""
    from qtpy.QtWidgets import QDockWidget

    dock = widget.parent()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parent()
    if dock is not None and is_alive(dock):
        dock.setVisible(True)
        dock.raise_()
        return
    viewer.window.add_dock_widget(widget, name=name, area="right", tabify=True)


def open_comparison(
    viewer: "napari.viewer.Viewer",
    before: Any,
    after: Any,
    truth: Any = None,
    *,
    compute: bool = True,
    orthoviews: bool = True,
) -> tuple[CompareWidget, OrthoViews | None]:
    """Show ``before`` and ``after`` side by side in the orthogonal views and
    compare them, reusing the widgets already docked in ``viewer`` (docking
    new ones otherwise). ``truth`` defaults to a layer whose
    ``metadata["dewedge_role"]`` is ``"ground_truth"``. Returns the compare
    widget and the orthogonal views."""
    for name, layer in (("before", before), ("after", after)):
        if layer is None or layer not in viewer.layers:
            raise ValueError(f"open_comparison: {name} must be a layer of this viewer, got {layer!r}")
    views = None
    if orthoviews:
        views = find_widget(viewer, OrthoViews) or OrthoViews(viewer)
        _dock(viewer, views, "Orthogonal and Fourier views")
        views.set_layers(before, after)
    widget = find_widget(viewer, CompareWidget) or CompareWidget(viewer)
    _dock(viewer, widget, "Compare before and after")
    if compute:
        widget.compare(before, after, truth)
    else:
        widget.before_picker.set_layer(before)
        widget.after_picker.set_layer(after)
        if truth is not None:
            widget.truth_picker.set_layer(truth)
    return widget, views
