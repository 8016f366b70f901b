"""The plugin's vocabulary for layers: roles, frames, provenance (no napari import).

Layers are linked by documented keys of ``layer.metadata``:

``dewedge_role``
    what a layer is (:class:`Role`): the corrupted observation of a phantom, its
    ground truth, a dewedged result, its uncertainty map, the training preview;
``wedge``
    the wedge geometry the layer was acquired (or restored) with, as
    :meth:`~.wedge.WedgeGeometry.to_dict`;
``voxel_size``, ``units``
    the voxel size in Å (z, y, x), as the MRC reader records it;
``provenance``
    where a result came from (:class:`Provenance`), rendered also as the label
    of the MRC file it is saved to;
``path``, ``source_path``
    the file a layer was read from, and the file its source was read from:
    never overwritten by a save;
``ground_truth*``
    links of a phantom to its clean volume, carried over to results.

Everything here works on any object with napari's layer attributes (``name``,
``scale``, ``translate``, ``units``, ``metadata``), so it is tested without a
viewer. napari hands plugin widgets a proxy of the viewer whose layers are new
proxy objects at every access: :func:`unwrap` and :class:`LayerRef` compare
and remember the layers themselves.
"""

from __future__ import annotations

import copy
import os
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from .wedge import WedgeGeometry

__all__ = [
    "ROLE_KEY",
    "Role",
    "role_of",
    "unwrap",
    "same_layer",
    "LayerRef",
    "LayerFrame",
    "geometry_of",
    "layer_source",
    "Provenance",
    "plain",
]

ROLE_KEY = "dewedge_role"


class Role(str, Enum):
    """What a layer is to the plugin (the value of ``metadata["dewedge_role"]``)."""

    CORRUPTED = "corrupted"
    GROUND_TRUTH = "ground_truth"
    DEWEDGED = "dewedged"
    UNCERTAINTY = "uncertainty"
    PREVIEW = "preview"

    def __str__(self) -> str:  # the metadata holds the plain string
        return self.value


def _metadata(layer_or_metadata: Any) -> Mapping[str, Any]:
    if isinstance(layer_or_metadata, Mapping):
        return layer_or_metadata
    return getattr(layer_or_metadata, "metadata", None) or {}


def role_of(layer_or_metadata: Any) -> Role | None:
    """The role of a layer (or of its metadata); None for the user's own layers."""
    value = _metadata(layer_or_metadata).get(ROLE_KEY)
    try:
        return Role(value) if value is not None else None
    except ValueError:
        return None


def unwrap(obj: Any) -> Any:
    """The object behind napari's ``PublicOnlyProxy`` (or ``obj`` itself)."""
    while True:
        inner = getattr(obj, "__wrapped__", None)
        if inner is None or inner is obj:
            return obj
        obj = inner


def same_layer(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same layer (proxies of it included)."""
    return a is not None and b is not None and unwrap(a) is unwrap(b)


class LayerRef:
    """A weak reference to a layer that outlives the proxies napari hands out.

    ``ref.get(viewer.layers)`` is the layer while it is still in that list, else
    None; ``ref()`` is the layer while it exists at all.
    """

    __slots__ = ("_ref",)

    def __init__(self, layer: Any) -> None:
        self._ref = weakref.ref(unwrap(layer))

    def __call__(self) -> Any:
        return self._ref()

    def get(self, layers: Iterable[Any]) -> Any:
        layer = self._ref()
        if layer is None or not any(unwrap(other) is layer for other in layers):
            return None
        return layer


def _three(values: Any, default: float) -> tuple[float, float, float]:
    vals = [float(v) for v in np.ravel(np.asarray(values, float))] if values is not None else []
    vals = [default] * (3 - len(vals)) + vals
    return tuple(vals[-3:])  # type: ignore[return-value]


def _sizes(values: Any) -> tuple[float, float, float] | None:
    """Three positive finite sizes (one number stands for all three), else None."""
    try:
        sizes = np.atleast_1d(np.asarray(values, float)).ravel()
        sizes = np.broadcast_to(sizes, (3,)) if sizes.size == 1 else sizes[-3:]
    except (TypeError, ValueError):
        return None
    if sizes.size != 3 or not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        return None
    return tuple(float(v) for v in sizes)  # type: ignore[return-value]


@dataclass(frozen=True)
class LayerFrame:
    """Where a layer sits in the world: scale, translate and units of its last three
    axes, and its voxel size in Å (``metadata["voxel_size"]``, else the scale)."""

    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    translate: tuple[float, float, float] = (0.0, 0.0, 0.0)
    units: tuple[str, str, str] | None = None
    voxel_size: tuple[float, float, float] | None = None

    @classmethod
    def of(cls, layer: Any) -> "LayerFrame":
        scale = _three(getattr(layer, "scale", None), 1.0)
        translate = _three(getattr(layer, "translate", None), 0.0)
        units = None
        raw_units = getattr(layer, "units", None)
        if raw_units is not None:
            try:
                units = tuple(str(u) for u in tuple(raw_units)[-3:])
            except TypeError:
                units = None
            if units is not None and len(units) != 3:
                units = None
        recorded = _metadata(layer).get("voxel_size")
        voxel = _sizes(recorded) if recorded is not None else None
        if voxel is None:  # nothing (usable) recorded: the scale
            voxel = _sizes(scale)
        return cls(scale, translate, units, voxel)  # type: ignore[arg-type]

    @property
    def isotropic_voxel_size(self) -> float | None:
        """One voxel size in Å for resolution axes; None when unknown or anisotropic.

        A size of exactly 1 counts as unknown: MRC headers without a cell size
        read as 1 Å and napari's default scale is 1.
        """
        if self.voxel_size is None:
            return None
        sizes = np.asarray(self.voxel_size, float)
        if np.allclose(sizes, 1.0) or sizes.max() > 1.01 * sizes.min():
            return None
        return float(sizes.mean())

    def layer_kwargs(self, offset_voxels: Any = None) -> dict[str, Any]:
        """``scale``/``translate``/``units`` for ``viewer.add_image`` of a volume in this
        frame, shifted by ``offset_voxels`` (z, y, x) when given (a crop)."""
        translate = np.asarray(self.translate, float)
        if offset_voxels is not None:
            translate = translate + np.asarray(offset_voxels, float) * np.asarray(self.scale, float)
        kwargs: dict[str, Any] = {"scale": tuple(self.scale), "translate": tuple(float(t) for t in translate)}
        if self.units is not None:
            kwargs["units"] = self.units
        return kwargs


def geometry_of(layer_or_metadata: Any) -> WedgeGeometry | None:
    """The wedge recorded in ``metadata["wedge"]``, or None (absent or invalid)."""
    value = _metadata(layer_or_metadata).get("wedge")
    if isinstance(value, WedgeGeometry):
        return value
    if isinstance(value, Mapping):
        try:
            return WedgeGeometry.from_dict(dict(value))
        except (TypeError, ValueError):
            return None
    return None


def layer_source(layer: Any) -> tuple[str, str | None]:
    """``(name, path)`` of a layer: the file it was read from, when known."""
    path = None
    source = getattr(layer, "source", None)
    if source is not None and getattr(source, "path", None):
        path = str(source.path)
    meta = _metadata(layer)
    for key in ("path", "source_path"):
        if path is None and isinstance(meta.get(key), str) and meta.get(key):
            path = meta[key]
    return str(getattr(layer, "name", "volume")), path


def plain(value: Any) -> Any:
    """JSON-like copy: tuples to lists, numpy scalars and arrays to numbers and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


_SUMMARIES = {Role.DEWEDGED: "napari-dewedge", Role.UNCERTAINTY: "napari-dewedge uncertainty (std of samples)"}


@dataclass(frozen=True)
class Provenance:
    """Where a result came from: source, wedge, model and settings.

    One record, rendered as ``layer.metadata`` (:meth:`layer_metadata`) and as
    the label of the MRC file it is saved to (:meth:`label`); :meth:`from_metadata`
    reads it back from either a layer's metadata or its plain dict.
    """

    source_layer: str
    source_path: str | None
    wedge: dict[str, Any]
    role: Role = Role.DEWEDGED
    model: str = "in memory"
    details: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    @classmethod
    def of_result(cls, source_name: str, source_path: str | None, geometry: WedgeGeometry, *,
                  model: Any = None, model_path: str | None = None, inference: Mapping[str, Any] | None = None,
                  role: Role = Role.DEWEDGED) -> "Provenance":
        """The record of a result of ``model`` (a ``TrainedModel``) applied to a source."""
        details: dict[str, Any] = {}
        if model is not None:
            details["model_summary"] = model.summary()
            details["model_wedge"] = model.geometry.to_dict()
            details["steps_done"] = int(model.steps_done)
            details["training"] = plain(model.training)
            details["versions"] = plain(model.versions)
        if inference is not None:
            details["inference"] = plain(dict(inference))
        return cls(source_name, source_path, geometry.to_dict(), Role(role), model_path or "in memory", details)

    def with_role(self, role: Role) -> "Provenance":
        return Provenance(self.source_layer, self.source_path, dict(self.wedge), Role(role), self.model,
                          copy.deepcopy(self.details), self.created)

    def to_dict(self) -> dict[str, Any]:
        """The plain record kept in ``metadata["provenance"]``."""
        return {
            "operation": "dewedge",
            "summary": _SUMMARIES.get(self.role, f"napari-dewedge {self.role.value}"),
            "source_layer": self.source_layer,
            "source_path": self.source_path,
            "wedge": dict(self.wedge),
            "model": self.model,
            "created": self.created,
            **copy.deepcopy(self.details),
        }

    def layer_metadata(self, source_metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``layer.metadata`` of the result layer.

        Holds the role, the wedge, the record and the voxel size. Links of the
        source to its ground truth (``ground_truth*`` keys) are carried over; the
        source's own metadata is never modified (a copy is made). ``source_path``
        names the tomogram the result came from, so that saving never overwrites it.
        """
        src = dict(source_metadata or {})
        record = self.to_dict()
        meta: dict[str, Any] = {
            ROLE_KEY: self.role.value,
            "wedge": dict(self.wedge),
            "provenance": record,
            "source_layer": self.source_layer,
            "source_role": src.get(ROLE_KEY),
        }
        if self.source_path:
            meta["source_path"] = self.source_path
        for key in ("voxel_size", "units"):
            if key in src:
                meta[key] = copy.deepcopy(src[key])
        for key, value in src.items():
            if str(key).startswith("ground_truth"):
                meta[key] = copy.deepcopy(value)
        return meta

    @staticmethod
    def label(name: str | None, metadata: Mapping[str, Any]) -> str | None:
        """The MRC label of a layer: its name, what made it and its source."""
        prov = metadata.get("provenance")
        parts = [str(name)] if name else []
        if isinstance(prov, str) and prov.strip():
            parts.append(f"({prov.strip()})")
        elif isinstance(prov, Mapping):
            what = prov.get("summary") or prov.get("operation") or prov.get("method")
            src = prov.get("source_layer") or prov.get("source") or prov.get("source_path")
            if what:
                parts.append(f"{what}")
            if src:
                src = str(src)
                parts.append(f"from {Path(src).name if os.sep in src else src}")
        return " ".join(parts) or None

    @staticmethod
    def protected_paths(metadata: Mapping[str, Any]) -> list[str]:
        """Files a save of this layer must never overwrite: its own and its source's."""
        out = [metadata.get("path"), metadata.get("source_path")]
        prov = metadata.get("provenance")
        if isinstance(prov, Mapping):
            out += [prov.get("path"), prov.get("source_path")]
        return [os.fspath(p) for p in out if isinstance(p, (str, os.PathLike)) and os.fspath(p)]
