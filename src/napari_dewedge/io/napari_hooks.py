"""napari (npe2) reader and writer for MRC files.

The manifest points at :func:`get_reader` and :func:`write_mrc`. This module
does not import napari, so opening a file stays fast; layers are returned as
plain ``(data, kwargs, "image")`` tuples.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.layers import Provenance
from .mrc import (
    Volume,
    check_mrc,
    has_mrc_extension,
    read_volume,
    strip_mrc_suffixes,
    write_volume,
)
from .write import _is_protected

__all__ = ["get_reader", "layer_data_from_volume", "read_layers", "write_mrc"]

_log = logging.getLogger(__name__)

PathOrPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
LayerData = tuple[Any, dict[str, Any], str]

# Length units a layer may carry, as factors to ångström.
_UNIT_TO_ANGSTROM = {
    "angstrom": 1.0,
    "Å": 1.0,
    "A": 1.0,
    "nanometer": 10.0,
    "nm": 10.0,
    "micrometer": 1e4,
    "µm": 1e4,
    "um": 1e4,
    "picometer": 0.01,
    "pm": 0.01,
    "meter": 1e10,
    "m": 1e10,
}


def _as_path_list(path: PathOrPaths) -> list[str]:
    if isinstance(path, (str, os.PathLike)):
        return [os.fspath(path)]
    return [os.fspath(p) for p in path]


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """Return :func:`read_layers` when every path is a readable MRC file, else None.

    Checks the extension (``.mrc .rec .map .mrcs .ccp4 .st .ali``, optionally
    ``.gz``/``.bz2``) and the header (cheaply: the first 1024 bytes and the
    file size). Never raises. A file with an MRC extension that cannot be read
    is reported to the user with the reason (a napari warning naming the file
    and the problem), since napari itself would only say that no reader took it.
    """
    try:
        paths = _as_path_list(path)
        if not paths or not all(has_mrc_extension(p) for p in paths):
            return None
        for p in paths:
            check_mrc(p)
    except Exception as err:  # noqa: BLE001 - a reader hook must not raise
        _log.debug("napari-dewedge does not read %r: %s", path, err)
        _notify(str(err))
        return None
    return read_layers


def _notify(message: str) -> None:
    """Show ``message`` as a napari warning when napari is running (never raises)."""
    import sys

    if "napari" not in sys.modules:
        return
    try:
        from napari.utils.notifications import show_warning

        show_warning(f"napari-dewedge cannot open this file: {message}")
    except Exception:  # noqa: BLE001, S110 - a notification must never fail the reader
        pass


def layer_data_from_volume(volume: Volume, name: str | None = None) -> LayerData:
    """napari layer tuple for a :class:`Volume` (scale/translate in Å)."""
    if name is None:
        name = strip_mrc_suffixes(volume.path)[0] if volume.path is not None else "volume"
    ndim = volume.data.ndim
    axis_labels = ("z", "y", "x")[3 - ndim :] if ndim <= 3 else ("stack", "z", "y", "x")[4 - ndim :]
    kwargs: dict[str, Any] = {
        "name": name,
        "scale": volume.scale,
        "translate": volume.translate,
        "metadata": volume.layer_metadata(),
        "units": ("angstrom",) * ndim,
        "axis_labels": axis_labels if len(axis_labels) == ndim else None,
    }
    if kwargs["axis_labels"] is None:
        del kwargs["axis_labels"]
    return (volume.data, kwargs, "image")


def read_layers(path: PathOrPaths) -> list[LayerData]:
    """Read one MRC file or a list of them into napari image layer tuples.

    Raises :class:`~napari_dewedge.io.mrc.MrcReadError` with a clear message
    when a file cannot be read (napari shows it as a notification).
    """
    return [layer_data_from_volume(read_volume(p)) for p in _as_path_list(path)]


def _unit_factor(unit: Any) -> float | None:
    """Factor from ``unit`` to Å; None for pixels or unknown units (taken as Å)."""
    if unit is None:
        return None
    text = str(unit).strip()
    return _UNIT_TO_ANGSTROM.get(text, _UNIT_TO_ANGSTROM.get(text.lower()))


def _spatial(values: Any, ndim: int, default: float) -> tuple[float, ...]:
    vals = [default] * ndim if values is None else [float(v) for v in np.ravel(values)]
    if len(vals) < ndim:
        vals = [default] * (ndim - len(vals)) + vals
    return tuple(vals[-ndim:])


def write_mrc(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """napari single-image writer: float32 MRC with the layer's voxel size.

    The voxel size comes from the last two or three entries of the layer's
    ``scale`` (converted to Å when the layer's ``units`` say nm or µm), the
    origin from ``translate``, and the provenance label from the layer name and
    ``metadata['provenance']``. An existing file is replaced (napari asks the
    user first), except the layer's own source file
    (``metadata['path']``/``metadata['source_path']``), which is never
    overwritten.
    """
    attributes = attributes or {}
    if attributes.get("rgb"):
        raise ValueError(f"{path}: RGB images cannot be saved as MRC")
    if attributes.get("multiscale") and isinstance(data, (list, tuple)):
        data = data[0]  # the full-resolution level
    arr = data if hasattr(data, "shape") and hasattr(data, "dtype") else np.asarray(data)
    shape = tuple(int(s) for s in arr.shape)
    while len(shape) > 3 and shape[0] == 1:
        arr, shape = arr[0], shape[1:]
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{path}: only 2D or 3D image layers can be saved as MRC, got shape {shape}"
        )
    ndim = len(shape)

    scale = _spatial(attributes.get("scale"), ndim, 1.0)
    translate = _spatial(attributes.get("translate"), ndim, 0.0)
    units = attributes.get("units")
    if units is not None and not isinstance(units, str):
        unit_list = list(units)[-ndim:]
        unit_list = [None] * (ndim - len(unit_list)) + unit_list
    else:
        unit_list = [units] * ndim
    factors = [_unit_factor(u) or 1.0 for u in unit_list]
    scale = tuple(s * f for s, f in zip(scale, factors))
    translate = tuple(t * f for t, f in zip(translate, factors))

    metadata = attributes.get("metadata") or {}
    protected = Provenance.protected_paths(metadata)
    target = Path(path)
    if _is_protected(target, protected):
        raise FileExistsError(
            f"{target}: refusing to overwrite the layer's source file; save under another name"
        )
    labels = metadata.get("labels") if isinstance(metadata.get("labels"), (list, tuple)) else ()
    written = write_volume(
        target,
        arr,
        voxel_size=scale,
        origin=translate,
        label=Provenance.label(attributes.get("name"), metadata),
        overwrite=True,
        protected_paths=(),
        extra_labels=[str(x) for x in labels],
    )
    return [str(written)]

