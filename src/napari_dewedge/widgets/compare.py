"""Compare before and after: Fourier shell correlation, how isotropic each
volume is and, with a ground truth, PSNR, SSIM and how much of the missing
wedge was restored.

Measures (:func:`napari_dewedge.core.comparison.compute_comparison`, run in a
thread worker by the widget's :class:`~napari_dewedge.widgets._runner.TaskRunner`):

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
from typing import TYPE_CHECKING, Any

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

from ..core.comparison import Comparison, compute_comparison, layer_voxel_size
from ..core.layers import Role, role_of
from ..core.wedge import WedgeGeometry
from ._runner import TaskRunner
from .orthoviews import OrthoViews, is_input_layer, is_result_layer
from .panels import LayerPicker, is_alive, volume_of
from .state import find_widget, get_wedge_state, register_widget

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["CompareWidget", "Comparison", "compute_comparison", "layer_voxel_size", "open_comparison"]

COLOURS = {"before": "#f0a030", "after": "#40c8f0", "before-after": "#e0e0e0"}




def is_truth_layer(layer: Any) -> bool:
    return role_of(layer) is Role.GROUND_TRUTH


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
        self.runner = TaskRunner(self, napari_viewer)
        self.runner.finished.connect(self._on_finished)

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
        Runs in a thread worker of :attr:`runner`; returns the task id (None
        when the input is not usable)."""
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
        names = {"before": before.name, "after": after.name}
        if truth is not None:
            names["truth"] = truth.name
        self.compute_button.setEnabled(False)
        self.status_label.setText("Computing\u2026")
        return self.runner.run(  # supersedes a comparison still running
            compute_comparison,
            volume_of(before),
            volume_of(after),
            None if truth is None else volume_of(truth),
            names=names,
            geometry=self.wedge_for(before),
            voxel_size=layer_voxel_size(before),
            key="compare",
            on_yield=self._progress,
            on_result=self._done,
            on_error=self._failed,
        )

    def wedge_for(self, before: Any) -> WedgeGeometry:
        """The wedge scored by the missing-wedge FSC: the viewer's shared wedge
        once it was set (inspector, estimate, dewedge widget), else the one
        recorded in the before layer's metadata, else the default."""
        return self.state.for_layer(before)

    @property
    def busy(self) -> bool:
        """A comparison is running."""
        return self.runner.busy("compare")

    # ------------------------------------------------------------------ task callbacks (GUI thread, current task only)

    def _progress(self, text: str) -> None:
        self.status_label.setText(f"Computing: {text}\u2026")

    def _failed(self, exc: BaseException) -> None:
        self.status_label.setText(f"Comparison failed: {exc}")

    def _done(self, result: Comparison) -> None:
        self.compute_button.setEnabled(True)
        self.result = result
        self.status_label.setText("Done.")
        self._show(result)
        self.computed.emit(result)

    def _on_finished(self, _key: Any) -> None:
        self.compute_button.setEnabled(True)

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
        for i, (_label, b, a, tip) in enumerate(rows):
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
