"""The Dewedge widget's Dataset box: more tomograms to train on, and even/odd halves.

One model trains on the chosen tomogram and the other 3D layers ticked here
(tomograms of the same acquisition; each keeps the wedge recorded in its
metadata, else the viewer's shared wedge), and, when both are chosen, on the
chosen tomogram's even/odd half tomograms (the network then sees one half and
is scored on the other, so it never learns its own noise). The box says how
many subtomograms of an epoch each tomogram gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QWidget

from ..core.layers import LayerFrame, Role, geometry_of, role_of, same_layer
from .panels import is_alive, is_volume_layer, volume_of

__all__ = ["DatasetBox", "trainable"]

NONE = "none"


def trainable(layer: Any) -> bool:
    """3D image layers that can be dewedged or trained on (not the training previews)."""
    return is_volume_layer(layer) and role_of(layer) is not Role.PREVIEW


class DatasetBox(QWidget):
    """More tomograms (``more_list``), the halves (``even_combo``/``odd_combo``) and the plan (``plan_label``)."""

    def __init__(self, viewer: Any, picker: Any, *, geometry: Callable[[], Any], n_subtomos: Callable[[], int],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.picker = viewer, picker
        self._geometry, self._n_subtomos = geometry, n_subtomos
        self._syncing = False
        self.more_list = QListWidget()
        self.more_list.setToolTip("Train one model on these tomograms too (same acquisition)")
        self.more_list.setMaximumHeight(72)
        self.more_list.itemChanged.connect(lambda *_: self.update_plan())
        self.even_combo, self.odd_combo = QComboBox(), QComboBox()
        for combo, what in ((self.even_combo, "even"), (self.odd_combo, "odd")):
            combo.setToolTip(f"The {what} half tomogram of the chosen tomogram (from the tilt series' {what} "
                             "images): the network then never learns its own noise")
            combo.currentIndexChanged.connect(lambda *_: self.update_plan())
        halves = QHBoxLayout()
        halves.addWidget(QLabel("even"))
        halves.addWidget(self.even_combo, 1)
        halves.addWidget(QLabel("odd"))
        halves.addWidget(self.odd_combo, 1)
        self.mask_combo = QComboBox()
        self.mask_combo.setToolTip("A Labels layer of the chosen tomogram's shape: subtomograms are drawn only "
                                   "where it is nonzero (none: the automatic foreground mask)")
        self.plan_label = QLabel("")
        self.plan_label.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Also train on", self.more_list)
        form.addRow("Halves", halves)
        form.addRow("Mask", self.mask_combo)
        form.addRow(self.plan_label)
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        self.refresh()

    def _layers(self) -> list:
        return [lay for lay in self.viewer.layers if trainable(lay)]

    def _labels(self) -> list:
        return [lay for lay in self.viewer.layers
                if type(lay).__name__ == "Labels" and getattr(lay, "ndim", 0) == 3]

    def _named(self, name: str) -> Any:
        return next((lay for lay in self._layers() if lay.name == name), None)

    def refresh(self, *_: Any) -> None:
        """Offer the viewer's other 3D layers as more tomograms and as halves (choices are kept)."""
        if not is_alive(self):
            return
        chosen = self.picker.layer()
        checked = {self.more_list.item(i).text() for i in range(self.more_list.count())
                   if self.more_list.item(i).checkState() == Qt.CheckState.Checked}
        halves = (self.even_combo.currentText(), self.odd_combo.currentText())
        mask = self.mask_combo.currentText()
        self._syncing = True
        try:
            self.more_list.clear()
            for combo in (self.even_combo, self.odd_combo):
                combo.clear()
                combo.addItem(NONE)
            for lay in self._layers():
                if same_layer(lay, chosen):
                    continue
                item = QListWidgetItem(lay.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if lay.name in checked else Qt.CheckState.Unchecked)
                self.more_list.addItem(item)
                for combo in (self.even_combo, self.odd_combo):
                    combo.addItem(lay.name)
            for combo, text in zip((self.even_combo, self.odd_combo), halves):
                combo.setCurrentText(text if combo.findText(text) >= 0 else NONE)
            self.mask_combo.clear()
            self.mask_combo.addItems([NONE, *(lay.name for lay in self._labels())])
            self.mask_combo.setCurrentText(mask if self.mask_combo.findText(mask) >= 0 else NONE)
        finally:
            self._syncing = False
        self.update_plan()

    def choose(self, more: list | tuple = (), even: Any = None, odd: Any = None, mask: Any = None) -> None:
        """Tick ``more``, choose the halves and the mask (layers or layer names; None: none)."""
        self.refresh()
        names = {getattr(m, "name", m) for m in more}
        for i in range(self.more_list.count()):
            item = self.more_list.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)
        self.even_combo.setCurrentText(getattr(even, "name", even) or NONE)
        self.odd_combo.setCurrentText(getattr(odd, "name", odd) or NONE)
        self.mask_combo.setCurrentText(getattr(mask, "name", mask) or NONE)
        self.update_plan()

    def chosen(self) -> tuple[list, Any, Any]:
        """``(more layers, even layer or None, odd layer or None)``."""
        more = [self._named(self.more_list.item(i).text()) for i in range(self.more_list.count())
                if self.more_list.item(i).checkState() == Qt.CheckState.Checked]
        even, odd = (self._named(c.currentText()) if c.currentText() != NONE else None
                     for c in (self.even_combo, self.odd_combo))
        return [m for m in more if m is not None], even, odd

    def data(self, layer: Any) -> list:
        """The tomograms to train on, ``layer`` (with its halves) first; ``ValueError`` when inconsistent."""
        from ..core.dataset import TomogramData, check_voxel_sizes

        more, even, odd = self.chosen()
        if (even is None) != (odd is None):
            raise ValueError("choose both halves (even and odd) or neither")
        data = []
        for index, lay in enumerate([layer, *more]):
            geometry = self._geometry() if index == 0 else (geometry_of(lay) or self._geometry())
            parts = {"even": volume_of(even), "odd": volume_of(odd)} if index == 0 and even is not None else {}
            mask = next((m for m in self._labels() if m.name == self.mask_combo.currentText()), None)
            if index == 0 and mask is not None:
                parts["mask"] = np.asarray(mask.data) > 0
            data.append(TomogramData(volume_of(lay), geometry, lay.name, LayerFrame.of(lay).voxel_size, **parts))
        sizes = [(d.name, d.voxel_size[2]) for d in data if d.voxel_size is not None]
        if len(sizes) == len(data):
            check_voxel_sizes(sizes)
        return data

    def update_plan(self) -> None:
        """Say how many subtomograms of an epoch each tomogram gives (in proportion to its volume)."""
        if self._syncing or not is_alive(self):
            return
        from ..core.training.sampling import pool_counts

        layer = self.picker.layer()
        more, even, odd = self.chosen()
        if layer is None or (not more and even is None):
            self.plan_label.setText("One tomogram: the chosen one." if layer is not None else "")
            return
        layers = [layer, *more]
        counts = pool_counts([int(np.prod(volume_of(lay).shape)) for lay in layers], int(self._n_subtomos()))
        parts = [f"{lay.name}: {n}" for lay, n in zip(layers, counts)]
        halves = f"; halves {even.name} / {odd.name} of {layer.name}" if even is not None and odd is not None else ""
        self.plan_label.setText("Subtomograms per epoch (by volume, before empty regions are left out): "
                                + ", ".join(parts) + halves)
