"""The Dewedge widget's controls and their layout (the widget wires them up)."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.layers import Role, role_of
from ._dataset_box import DatasetBox, trainable
from ._settings_form import SettingsForm, form_settings
from .panels import LayerPicker

__all__ = ["PRESET_NAMES", "build_layout"]

PRESET_NAMES = ("quick", "standard", "thorough")


def _prefer_source(layer: Any) -> bool:
    return role_of(layer) is Role.CORRUPTED


def _double(lo: float, hi: float, step: float, decimals: int, suffix: str, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    if suffix:
        spin.setSuffix(suffix)
    spin.setToolTip(tip)
    spin.setKeyboardTracking(False)
    return spin

def _pass_check(form: Any, text: str, tip: str) -> QCheckBox:
    """A checked box for one of the application's passes, added as a row of ``form``."""
    box = QCheckBox(text)
    box.setChecked(True)
    box.setToolTip(tip)
    form.layout().addRow("", box)
    return box


def _devices() -> list[str]:
    try:
        from ..core.device import available_devices

        return available_devices()
    except Exception:  # noqa: BLE001 - torch unusable: let a run report it
        return ["cpu"]


def build_layout(w: Any) -> None:
    """Create the widget's controls as attributes of ``w`` and lay them out."""
    from superqt import QCollapsible

    from ._training_plot import LossPlot

    w.layer_picker = LayerPicker(w.viewer, accept=trainable, prefer=_prefer_source)
    w.layer_picker.setToolTip("3D image layer to dewedge (2D, RGB and labels layers are not listed)")
    w.layer_picker.layer_changed.connect(w._on_layer_changed)

    w.tilt_min_spin = _double(-90.0, 90.0, 1.0, 1, " \u00b0", "Lowest tilt angle measured")
    w.tilt_max_spin = _double(-90.0, 90.0, 1.0, 1, " \u00b0", "Highest tilt angle measured")
    w.axis_combo = QComboBox()
    w.axis_combo.addItems(["y", "x"])
    w.axis_combo.setToolTip("Tilt axis of the tilt series")
    w.tilt_min_spin.valueChanged.connect(w._on_wedge_edited)
    w.tilt_max_spin.valueChanged.connect(w._on_wedge_edited)
    w.axis_combo.currentTextChanged.connect(w._on_wedge_edited)
    wedge_row = QHBoxLayout()
    wedge_row.addWidget(w.tilt_min_spin)
    wedge_row.addWidget(QLabel("to"))
    wedge_row.addWidget(w.tilt_max_spin)
    wedge_row.addWidget(QLabel("axis"))
    wedge_row.addWidget(w.axis_combo)

    w.preset_combo = QComboBox()
    w.preset_combo.addItems(list(PRESET_NAMES))
    w.preset_combo.setItemData(0, "the tuned one: a few minutes on a laptop CPU, under a minute of training on a GPU",
                               Qt.ItemDataRole.ToolTipRole)
    w.preset_combo.setItemData(1, "the CryoGEN paper's recipe on a larger U-Net, not tuned: minutes to tens of "
                                  "minutes on a GPU", Qt.ItemDataRole.ToolTipRole)
    w.preset_combo.setItemData(2, "the paper's recipe, larger and longer: a GPU and some patience",
                               Qt.ItemDataRole.ToolTipRole)
    w.preset_combo.setToolTip("Training effort; fills the advanced settings")
    w.preset_combo.currentTextChanged.connect(w._on_preset)

    form = QFormLayout()
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.addRow("Tomogram", w.layer_picker)
    form.addRow("Wedge", wedge_row)
    form.addRow("Preset", w.preset_combo)

    w.dataset = DatasetBox(w.viewer, w.layer_picker, geometry=lambda: w.geometry,
                              n_subtomos=lambda: w.form.values().get("n_subtomos") or 1)
    w.dataset_box = QCollapsible("Dataset")
    w.dataset_box.addWidget(w.dataset)
    w.dataset_box.collapse(animate=False)

    # settings: built from TrainingConfig's schema
    settings = form_settings()
    w.form = SettingsForm([s for s in settings if not s.advanced], _devices())
    w.expert_form = SettingsForm([s for s in settings if s.advanced])
    w.samples_spin = QSpinBox()
    w.samples_spin.setRange(1, 64)
    w.samples_spin.setToolTip("Predictions with different input noise averaged; K > 1 also gives an "
                                 "uncertainty map")
    w.form.layout().addRow("Samples K", w.samples_spin)
    # the application's passes, each on by default
    w.calibrate_check = _pass_check(w.form, "Calibrate the wedge's amplitude",
                                    "Scale the model's filling of the missing wedge, shell by shell, by the gains "
                                    "measured on the tomogram: the model applied to a few rotated copies, against "
                                    "the measured data that the rotations move into the wedge; then fade what "
                                    "the model's fillings of two noisier copies of the tomogram disagree on")
    w.coarse_check = _pass_check(w.form, "Coarse pass",
                                 "Also apply the model to the tomogram binned to about one subtomogram, and take "
                                 "the missing wedge's longest wavelengths (the density profile along z) from it")
    w.fuse_check = _pass_check(w.form, "Fuse with the data",
                               "Where the tomogram measured a frequency with little noise, keep its own data there "
                               "(weighted shell by shell against the noise); the missing wedge stays as predicted")
    w.mirror_check = _pass_check(w.form, "Average four mirror views",
                                 "Run the whole application on four mirror images of the tomogram that keep its "
                                 "missing wedge in place, and average them: less noise and a truer filling, in "
                                 "four times the time")
    w.second_check = _pass_check(w.form, "Second pass",
                                 "Apply the model again to the measured region of the fused result and fuse that "
                                 "with the data too: cleaner measured frequencies and a truer filling of the "
                                 "wedge's fine detail, in twice the time (with the fusion, on noisy tomograms)")
    w.solvent_check = _pass_check(w.form, "Flatten the solvent",
                                  "On a noise-free volume whose object leaves most of the box empty, fill the "
                                  "missing wedge again so that the density outside the object is flat, keeping "
                                  "the measured data; kept only where a flat solvent agrees with those data (a "
                                  "phantom, a simulation), not where faint density surrounds the object (a real "
                                  "particle's map). Noisy or crowded tomograms are left as they are")
    w.fuse_check.toggled.connect(w.second_check.setEnabled)  # the second pass fuses its result too
    w.fuse_check.toggled.connect(w.solvent_check.setEnabled)  # the flattening keeps the fused data
    w.pass_checks = {"calibrate": w.calibrate_check, "coarse": w.coarse_check, "fuse": w.fuse_check,
                     "mirror": w.mirror_check, "second": w.second_check, "solvent": w.solvent_check}
    adv_box = QWidget()
    adv_layout = QVBoxLayout(adv_box)
    adv_layout.setContentsMargins(0, 0, 0, 0)
    adv_layout.addWidget(w.form)
    w.expert = QCollapsible("More settings")
    w.expert.addWidget(w.expert_form)
    w.expert.collapse(animate=False)
    adv_layout.addWidget(w.expert)
    w.advanced = QCollapsible("Advanced settings")
    w.advanced.addWidget(adv_box)
    w.advanced.collapse(animate=False)
    w.device_combo = w.form.controls["device"]
    w.device_combo.currentTextChanged.connect(w._on_device)
    w.form.changed.connect(w.dataset.update_plan)

    # buttons
    w.dewedge_button = QPushButton("Dewedge")
    w.dewedge_button.setToolTip("Train a model on this tomogram, then apply it")
    w.dewedge_button.setStyleSheet("font-weight: bold;")
    w.dewedge_button.clicked.connect(lambda: w.dewedge())
    w.apply_button = QPushButton("Apply model\u2026")
    w.apply_button.setToolTip("Apply the current model or a model file to the chosen tomogram")
    w.apply_button.clicked.connect(w._on_apply_clicked)
    w.save_model_button = QPushButton("Save model\u2026")
    w.save_model_button.setToolTip("Save the current model (weights, wedge and settings) to a file")
    w.save_model_button.clicked.connect(lambda: w.save_model())
    w.stop_button = QPushButton("Stop")
    w.stop_button.setToolTip("Stop after the current step; the model trained so far is kept")
    w.stop_button.clicked.connect(w.stop)
    w.compare_button = QPushButton("Compare before/after")
    w.compare_button.setToolTip("Open the comparison and orthogonal views on the tomogram and its result")
    w.compare_button.clicked.connect(lambda: w.compare())
    w.save_result_button = QPushButton("Save result\u2026")
    w.save_result_button.setToolTip("Save the dewedged tomogram as MRC (voxel size kept)")
    w.save_result_button.clicked.connect(lambda: w.save_result())

    buttons = QGridLayout()
    buttons.addWidget(w.dewedge_button, 0, 0)
    buttons.addWidget(w.stop_button, 0, 1)
    buttons.addWidget(w.apply_button, 1, 0)
    buttons.addWidget(w.save_model_button, 1, 1)
    buttons.addWidget(w.compare_button, 2, 0)
    buttons.addWidget(w.save_result_button, 2, 1)

    w.status_label = QLabel("Choose a tomogram and press Dewedge.")
    w.status_label.setWordWrap(True)
    w.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    w.model_label = QLabel("No model yet.")
    w.model_label.setWordWrap(True)
    w.plot = LossPlot(title="loss")

    layout = QVBoxLayout(w)
    layout.addLayout(form)
    layout.addWidget(w.dataset_box)
    layout.addWidget(w.advanced)
    layout.addLayout(buttons)
    layout.addWidget(w.status_label)
    layout.addWidget(w.plot, 1)
    layout.addWidget(w.model_label)
    w.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
