"""The layer chooser of the inspection widgets.

:class:`LayerPicker`
    a combo box of the viewer's 3D image layers that follows layers being
    added, removed and renamed.

Import it from :mod:`napari_dewedge.widgets.panels`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QWidget

from ._helpers import is_alive, is_volume_layer

if TYPE_CHECKING:  # pragma: no cover
    import napari

__all__ = ["LayerPicker"]


class LayerPicker(QComboBox):
    """Combo box of the viewer's 3D scalar image layers.

    Follows layers being inserted, removed, renamed and re-typed (new data).
    ``none_text`` adds a first entry meaning "no layer". ``prefer`` marks
    layers to pick automatically while nothing (or the none entry) is chosen,
    e.g. layers whose ``metadata["dewedge_role"]`` fits the picker's purpose.

    Signals
    -------
    layer_changed(layer or None)
        another layer (or none) was chosen.
    data_changed(layer)
        the chosen layer got new data (``layer.data = ...``).

    napari's event emitters hold the picker's callbacks weakly and drop them
    once the widget is deleted.
    """

    layer_changed = Signal(object)
    data_changed = Signal(object)

    def __init__(
        self,
        viewer: "napari.viewer.Viewer",
        parent: QWidget | None = None,
        *,
        none_text: str | None = None,
        prefer: Callable[[Any], bool] | None = None,
        accept: Callable[[Any], bool] = is_volume_layer,
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._none_text = none_text
        self._prefer = prefer
        self._accept = accept
        self._layers: list[Any] = []
        self._current: Any = None
        self._user_chose = False
        self._watched: list[Any] = []
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.currentIndexChanged.connect(self._on_index)
        self.activated.connect(self._on_user_activated)
        events = viewer.layers.events
        for name in ("inserted", "removed", "moved", "reordered"):
            emitter = getattr(events, name, None)
            if emitter is not None:
                emitter.connect(self._on_layers_changed)
        self.refresh()

    # ------------------------------------------------------------------ API

    def layer(self) -> Any:
        """The chosen layer, or None."""
        return self._current

    def layers(self) -> list[Any]:
        """The layers listed, in the viewer's order."""
        return list(self._layers)

    def set_layer(self, layer: Any) -> None:
        """Choose ``layer`` (must be listed) or None (the none entry, if any);
        the choice then sticks like a choice made in the combo box."""
        self._user_chose = True
        if layer is None:
            if self._none_text is None:
                raise ValueError("this picker has no 'none' entry")
            self.setCurrentIndex(0)
            return
        for i, candidate in enumerate(self._layers):
            if candidate is layer:
                self.setCurrentIndex(i + (1 if self._none_text is not None else 0))
                return
        raise ValueError(f"layer {getattr(layer, 'name', layer)!r} is not a 3D image layer of this viewer")

    def refresh(self) -> None:
        """Rebuild the list from the viewer's layers, keeping the choice when possible."""
        if not is_alive(self):
            return
        layers = [layer for layer in self._viewer.layers if self._accept(layer)]
        self._watch(layers)
        keep = self._choose(layers)
        self._layers = layers
        self.blockSignals(True)
        try:
            self.clear()
            if self._none_text is not None:
                self.addItem(self._none_text)
            for layer in layers:
                self.addItem(layer.name)
            index = -1
            if keep is not None:
                index = next(i for i, layer in enumerate(layers) if layer is keep)
                index += 1 if self._none_text is not None else 0
            elif self._none_text is not None:
                index = 0
            self.setCurrentIndex(index)
        finally:
            self.blockSignals(False)
        self._set_current(keep)

    # ------------------------------------------------------------------ internals

    def _choose(self, layers: Sequence[Any]) -> Any:
        """Which layer to show after the list changed."""
        present = self._current if any(layer is self._current for layer in layers) else None
        if present is None and self._current is not None:  # the chosen layer went away
            self._user_chose = False
        preferred = [layer for layer in layers if self._prefer is not None and self._prefer(layer)]
        if present is not None:
            if self._user_chose or not preferred or self._prefer(present):
                return present
            return preferred[-1]
        if self._user_chose and self._none_text is not None:
            return None  # "none" was chosen on purpose
        if preferred:
            return preferred[-1]
        if self._none_text is not None or not layers:
            return None
        active = self._viewer.layers.selection.active
        return active if any(active is layer for layer in layers) else layers[-1]

    def _watch(self, layers: Sequence[Any]) -> None:
        for layer in self._watched:
            for name in ("name", "data"):
                try:
                    getattr(layer.events, name).disconnect(self._on_layer_edited)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        self._watched = list(layers)
        for layer in self._watched:
            layer.events.name.connect(self._on_layer_edited)
            layer.events.data.connect(self._on_layer_edited)

    def _on_layers_changed(self, event: Any = None) -> None:
        self.refresh()

    def _on_layer_edited(self, event: Any = None) -> None:
        self.refresh()
        source = getattr(event, "source", None)
        if getattr(event, "type", None) == "data" and source is not None and source is self._current:
            self.data_changed.emit(source)

    def _on_user_activated(self, index: int) -> None:
        self._user_chose = True

    def _on_index(self, index: int) -> None:
        offset = 1 if self._none_text is not None else 0
        i = index - offset
        layer = self._layers[i] if 0 <= i < len(self._layers) else None
        self._set_current(layer)

    def _set_current(self, layer: Any) -> None:
        if layer is self._current:
            return
        self._current = layer
        self.layer_changed.emit(layer)
