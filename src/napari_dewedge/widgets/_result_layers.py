"""The layers a Dewedge run makes: the live preview, the result, the uncertainty map.

Layers are remembered through :class:`~napari_dewedge.core.layers.LayerRef`
(napari hands plugins proxies of its layers, new at every access) and placed in
the frame the source tomogram had when the run started; their metadata is the
run's :class:`~napari_dewedge.core.layers.Provenance`.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.layers import LayerFrame, LayerRef, Provenance, Role, layer_source, role_of
from ..core.wedge import WedgeGeometry

__all__ = ["ResultLayers", "RunJob"]


@dataclass(frozen=True)
class RunJob:
    """What a run works on, taken when it starts (the layer may be edited or gone by the end).

    ``kind`` is ``"train"`` or ``"apply"``; ``frame`` and ``metadata`` are the
    source layer's at the start; ``others`` the jobs of the further layers a
    training applies its model to.
    """

    kind: str
    layer: LayerRef
    name: str
    path: str | None
    geometry: WedgeGeometry
    frame: LayerFrame
    metadata: dict
    started: float
    model_path: str | None = None
    others: tuple = ()

    @classmethod
    def of(cls, kind: str, layer: Any, geometry: WedgeGeometry, **more: Any) -> "RunJob":
        name, path = layer_source(layer)
        return cls(kind, LayerRef(layer), name, path, geometry, LayerFrame.of(layer),
                   copy.deepcopy(dict(layer.metadata or {})), time.monotonic(), **more)


class ResultLayers:
    """The references to a widget's preview, result and uncertainty layers, and the source
    and model of the last result."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.preview: LayerRef | None = None
        self.result: LayerRef | None = None
        self.uncertainty: LayerRef | None = None
        self.source: LayerRef | None = None
        self.model: Any = None

    def live(self, ref: LayerRef | None) -> Any:
        """The layer of ``ref`` while it is in the viewer, else None."""
        return ref.get(self.viewer.layers) if ref is not None else None

    def show_preview(self, job: RunJob, preview: np.ndarray, origin: Any) -> None:
        """Show the preview subtomogram where it sits in the tomogram (one layer, updated)."""
        source = job.layer()
        if source is None or preview.ndim != 3:
            return
        placed = job.frame.layer_kwargs(offset_voxels=origin)
        layer = self.live(self.preview)
        if layer is None:
            name = f"{job.name} preview"
            kwargs: dict[str, Any] = {
                "name": name,
                **placed,
                "metadata": {"dewedge_role": Role.PREVIEW.value, "source_layer": source.name},
                "colormap": "gray",
            }
            try:
                kwargs["contrast_limits"] = tuple(source.contrast_limits)
            except Exception:  # noqa: BLE001 - no usable limits: napari picks them
                pass
            selected = list(self.viewer.layers.selection)
            layer = self.viewer.add_image(preview, **kwargs)
            with contextlib.suppress(AttributeError):  # outline where the preview sits
                layer.bounding_box.visible = True
                layer.bounding_box.points = False
                layer.bounding_box.line_color = "#00c8ff"
            self.viewer.layers.selection.clear()
            self.viewer.layers.selection.update(selected)
            self.preview = LayerRef(layer)
        else:
            layer.data = preview
            layer.translate = placed["translate"]

    def add_results(self, job: RunJob, outcome: Any, model_path: str | None, *, primary: bool = True) -> None:
        """Replace the preview by the result layer (and the uncertainty layer with K > 1).

        ``primary``: the result of the chosen tomogram, which the widget's buttons
        (compare, save) act on; the results of a dataset's other tomograms are added
        beside it."""
        result = outcome.result
        assert result is not None
        name = job.name
        model_path = outcome.model_path or (model_path if not outcome.trained else None)
        record = Provenance.of_result(name, job.path, job.geometry, model=outcome.model,
                                      model_path=model_path, inference=result.settings())
        common = job.frame.layer_kwargs()  # the frame when the run started: the layer may be gone by now
        preview = self.live(self.preview)
        if preview is not None:
            self.viewer.layers.remove(preview)
        self.preview = None

        meta = record.layer_metadata(job.metadata)
        layer = self._put(f"{name} dewedged", result.mean, meta, common, colormap="gray")
        ulayer = None
        if result.std is not None:
            umeta = record.with_role(Role.UNCERTAINTY).layer_metadata(job.metadata)
            ulayer = self._put(f"{name} uncertainty", result.std, umeta, common, colormap="magma", visible=False)
        if primary:
            self.result = LayerRef(layer)
            self.model = outcome.model
            self.source = job.layer
            self.uncertainty = LayerRef(ulayer) if ulayer is not None else None

    def _put(self, name: str, data: np.ndarray, metadata: dict, common: dict, *, colormap: str,
                   visible: bool = True) -> Any:
        """Replace the data of an earlier result layer of that name, or add a new layer."""
        existing = next((lay for lay in self.viewer.layers if lay.name == name), None)
        if existing is not None and role_of(existing) is role_of(metadata) \
                and tuple(existing.data.shape) == tuple(data.shape):
            existing.data = data
            existing.metadata = metadata
            existing.scale = common["scale"]
            existing.translate = common["translate"]
            existing.reset_contrast_limits()
            return existing
        kwargs = dict(common, name=name, metadata=metadata, colormap=colormap, visible=visible)
        if role_of(metadata) is Role.DEWEDGED:
            lo, hi = np.percentile(data[:: max(1, data.shape[0] // 16)], [0.5, 99.5])
            if hi > lo:
                kwargs["contrast_limits"] = (float(lo), float(hi))
        return self.viewer.add_image(data, **kwargs)

    # ------------------------------------------------------------------ closing
