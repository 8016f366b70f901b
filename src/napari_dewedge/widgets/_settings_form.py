"""The Dewedge widget's training settings, built from TrainingConfig's schema.

Every control (its kind, range, step, special "auto"/"random" value, tooltip
and label) comes from :func:`~napari_dewedge.core.training.settings_schema`:
a setting is defined once, in ``core/training/config.py``. The schema's
everyday settings go in one collapsible box, its advanced ones in another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

__all__ = ["SettingsForm", "FORM_EXCLUDED", "form_settings", "preset_values", "refit_for_device", "build_config"]

#: Settings the form does not show: the device has its own list of the machine's
#: devices, previews follow the run's length, mixed precision is always on.
FORM_EXCLUDED = ("preview_every", "amp")
#: Form values that belong to the application, not to the training configuration.
#: The application's passes, each a checkbox of the Dewedge widget (``mirror``: the mean of four
#: mirror views, ``ApplySpec(views=4)``), each on by default.
PASS_KEYS = ("calibrate", "coarse", "fuse", "mirror", "second", "solvent")
APPLY_KEYS = ("preset", "samples", *PASS_KEYS)
_INT_MAX = 10_000_000

if TYPE_CHECKING:  # pragma: no cover
    from ..core.training import TrainingConfig
_FLOAT_MAX = 1000.0


def _decimals(s: Any) -> int:
    """Six decimals for rates and other values that must stay above zero (1e-4), else three."""
    small = isinstance(s.default, float) and 0 < abs(s.default) < 0.01
    return 6 if small or getattr(s, "exclusive_minimum", False) else 3


class SettingsForm(QWidget):
    """Controls for a set of schema settings; :meth:`values` reads them, :meth:`set_values` fills them."""

    changed = Signal()

    def __init__(self, settings: list, devices: list[str] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = {s.name: s for s in settings}
        self.controls: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for s in settings:
            control = self._control(s, devices)
            control.setToolTip(s.help)
            self.controls[s.name] = control
            layout.addRow(s.label, control)

    # ------------------------------------------------------------------ building

    def _control(self, s: Any, devices: list[str] | None) -> QWidget:
        if s.name == "device":
            combo = QComboBox()
            combo.addItems(["auto", *(devices or ["cpu"])])
            combo.currentTextChanged.connect(lambda *_: self.changed.emit())
            return combo
        if s.type is bool:
            box = QCheckBox()
            box.toggled.connect(lambda *_: self.changed.emit())
            return box
        if s.choices is not None:
            combo = QComboBox()
            combo.addItems([str(c) for c in s.choices])
            combo.currentTextChanged.connect(lambda *_: self.changed.emit())
            return combo
        if s.type is int:
            spin: Any = QSpinBox()
            lo = int(s.minimum) if s.minimum is not None else 0
            hi = int(s.maximum) if s.maximum is not None else _INT_MAX
            step = 1
        else:
            spin = QDoubleSpinBox()
            decimals = _decimals(s)
            spin.setDecimals(decimals)
            step = 10.0 ** -(decimals - 1) if decimals > 3 else 0.05
            lo = float(s.minimum) if s.minimum is not None else 0.0
            if getattr(s, "exclusive_minimum", False):
                lo += 10.0 ** -decimals
            hi = float(s.maximum) if s.maximum is not None else _FLOAT_MAX
        if s.optional:  # one step below the range stands for None ("auto", "random")
            lo = lo - step
            spin.setSpecialValueText(s.none_text or "auto")
        spin.setRange(lo, hi)
        spin.setSingleStep(step)
        spin.setKeyboardTracking(False)
        spin.valueChanged.connect(lambda *_: self.changed.emit())
        return spin

    # ------------------------------------------------------------------ values

    def values(self) -> dict[str, Any]:
        """The settings as the schema names them (None for "auto"/"random")."""
        out: dict[str, Any] = {}
        for name, control in self.controls.items():
            s = self.settings[name]
            if isinstance(control, QCheckBox):
                out[name] = control.isChecked()
            elif isinstance(control, QComboBox):
                out[name] = control.currentText()
            else:
                value = control.value()
                if s.optional and value <= control.minimum():
                    out[name] = None
                else:
                    out[name] = int(value) if s.type is int else float(value)
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill the controls named in ``values`` (others keep their value)."""
        for name, value in values.items():
            control = self.controls.get(name)
            if control is None:
                continue
            s = self.settings[name]
            if isinstance(control, QCheckBox):
                control.setChecked(bool(value))
            elif isinstance(control, QComboBox):
                if control.findText(str(value)) < 0:
                    control.addItem(str(value))
                control.setCurrentText(str(value))
            elif value is None and s.optional:
                control.setValue(control.minimum())
            else:
                control.setValue(value)


def form_settings() -> list:
    """The schema settings the form shows (everyday ones first, then the advanced ones)."""
    from ..core.training import settings_schema

    return [s for s in settings_schema() if s.name not in FORM_EXCLUDED]


def preset_values(name: str, **changes: Any) -> dict[str, Any]:
    """The form values of a preset (``"quick"``, ``"standard"``, ``"thorough"``), with ``changes``.

    Keys are the schema's setting names, plus ``preset``, ``samples`` (K) and the
    application's passes :data:`PASS_KEYS` (the wedge-gain calibration, the coarse pass,
    the measured-region fusion, the mean of the mirror views, the second pass and the solvent
    flattening). The preset's settings are those for the device of ``changes`` (else
    ``"auto"``: this machine's best), as
    :func:`~napari_dewedge.core.training.machine_settings` fits them.
    """
    from ..core.device import resolve_device
    from ..core.training import PRESETS, TrainingConfig

    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    try:
        machine = resolve_device(changes.get("device") or "auto")
    except ValueError:  # a device this machine lacks: the preset as written
        machine = None
    config = TrainingConfig.preset(name, machine=machine)
    values: dict[str, Any] = {"preset": name, "samples": 1, **dict.fromkeys(PASS_KEYS, True)}
    values.update({s.name: s.value_in(config) for s in form_settings()})
    for key in changes:
        if key not in values:
            raise ValueError(f"unknown dewedge setting {key!r}")
    values.update(changes)
    return values


def refit_for_device(values: dict[str, Any], before: str, after: str) -> dict[str, Any]:
    """The changes to the form ``values`` when the device goes from ``before`` to ``after``.

    The settings the preset fits to the machine (:func:`preset_values` for each device)
    follow the device where the form still holds the preset's value for ``before``; a
    setting the user has edited stays as it is. Empty for a form that is not on a preset.
    """
    from ..core.training import PRESETS

    name = values.get("preset")
    if before == after or name not in PRESETS:
        return {}
    old, new = preset_values(name, device=before), preset_values(name, device=after)
    return {key: value for key, value in new.items()
            if key != "device" and value != old[key] and values.get(key) == old[key]}


def build_config(values: dict[str, Any]) -> "TrainingConfig":
    """The :class:`~napari_dewedge.core.training.TrainingConfig` of the form values.

    The preset gives everything the form does not show. Previews come every
    ``preset.preview_every`` steps, but at least ten times per run. Raises
    ``ValueError`` with the trainer's message for invalid combinations (e.g.
    a subtomogram size that the U-Net depth does not allow).
    """
    from ..core.training import PRESETS, TrainingConfig, config_overrides

    preset = values.get("preset", "quick")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    if int(values.get("samples", 1)) < 1:
        raise ValueError(f"number of samples K must be >= 1, got {values.get('samples')}")
    overrides = config_overrides({k: v for k, v in values.items() if k not in APPLY_KEYS})
    for key in ("noise_scale", "seed", "energy_lr", "sigma_n", "steps_per_epoch", "time_budget_s"):  # None is a value
        if key in values and values[key] is None:
            overrides[key] = None
    steps = int(overrides.get("steps", PRESETS[preset]["steps"]))
    preview_every = int(PRESETS[preset].get("preview_every", 50))
    return TrainingConfig.preset(preset, **overrides, preview_every=max(1, min(preview_every, steps // 10)),
                                 checkpoint_every_s=None)
