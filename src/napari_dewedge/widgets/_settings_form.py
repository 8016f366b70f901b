"""The Dewedge widget's training settings, built from TrainingConfig's schema.

Every control (its kind, range, step, special "auto"/"random" value, tooltip
and label) comes from :func:`~napari_dewedge.core.training.settings_schema`:
a setting is defined once, in ``core/training/config.py``. The schema's
everyday settings go in one collapsible box, its advanced ones in another.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

__all__ = ["SettingsForm", "FORM_EXCLUDED"]

#: Settings the form does not show: the device has its own list of the machine's
#: devices, previews follow the run's length, mixed precision is always on.
FORM_EXCLUDED = ("preview_every", "amp")
_INT_MAX = 10_000_000
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
