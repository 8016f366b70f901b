"""The in-memory :class:`Volume` and array helpers (no file access).

:class:`Volume` holds the ``(z, y, x)`` data of one MRC file with its voxel
size and origin in ångström; :func:`as_float32` converts data only where a
computation needs float32; :func:`require_3d` checks that an array is a 3D
volume. See :mod:`napari_dewedge.io.mrc` for the conventions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MrcReadError

__all__ = ["Volume", "as_float32", "require_3d"]


def as_float32(array: Any, *, copy: bool = False) -> np.ndarray:
    """Return ``array`` as native-order float32, converting only when needed.

    A native float32 array (or memmap) comes back without a copy unless
    ``copy=True``; integer, float16, float64 or byte-swapped data are converted.
    """
    out = np.asarray(array, dtype=np.float32)
    if copy and np.may_share_memory(out, np.asarray(array)):
        out = out.copy()
    return out


def require_3d(array: Any, name: str | os.PathLike[str] = "volume") -> Any:
    """Check that ``array`` is a 3D volume ``(z, y, x)`` with more than one section.

    Returns ``array`` unchanged so that calls can be chained; raises
    :class:`MrcReadError` (a ``ValueError``) naming ``name`` for 2D images,
    single sections (``nz == 1``) and arrays of any other dimensionality.
    """
    shape = tuple(int(s) for s in np.shape(array))
    if len(shape) == 2 or (len(shape) == 3 and shape[0] == 1):
        raise MrcReadError(
            f"{name}: is a 2D image (shape {shape}), but this tool needs a 3D volume "
            "(z, y, x) with more than one section; open a tomogram or a density map instead"
        )
    if len(shape) != 3:
        raise MrcReadError(
            f"{name}: has {len(shape)} dimensions (shape {shape}), but this tool needs "
            "a 3D volume (z, y, x)"
        )
    if min(shape) < 1:
        raise MrcReadError(f"{name}: is empty (shape {shape})")
    return array


@dataclass
class Volume:
    """Data and metadata of one MRC file.

    Attributes:
        data: ``(z, y, x)`` array (``(y, x)`` for a single image), native byte
            order, stored dtype; an ``np.memmap`` when ``memory_mapped``.
        voxel_size: ``(z, y, x)`` voxel size in Å.
        origin: ``(z, y, x)`` position of voxel ``(0, 0, 0)`` in Å.
        header: plain-Python dict of the useful header fields.
        path: the file that was read (``None`` for volumes made in memory).
        memory_mapped: whether ``data`` is a read-only map of the file.
        warnings: notes about defaults and fixes applied while reading.
    """

    data: np.ndarray
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    header: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    memory_mapped: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def scale(self) -> tuple[float, ...]:
        """napari ``scale`` in Å: ``(z, y, x)``, or ``(y, x)`` for 2D data.

        Volume stacks (4D) get a leading 1 for the stack axis.
        """
        return _per_axis(self.voxel_size, self.data.ndim, fill=1.0)

    @property
    def translate(self) -> tuple[float, ...]:
        """napari ``translate`` in Å (the origin), matching :attr:`scale`."""
        return _per_axis(self.origin, self.data.ndim, fill=0.0)

    @property
    def labels(self) -> list[str]:
        return list(self.header.get("labels", []))

    def layer_metadata(self) -> dict[str, Any]:
        """Dict for napari ``layer.metadata``: source path, voxel size, header."""
        return {
            "path": None if self.path is None else str(self.path),
            "voxel_size": tuple(self.voxel_size),
            "origin": tuple(self.origin),
            "units": "angstrom",
            "header": dict(self.header),
            "labels": self.labels,
            "memory_mapped": self.memory_mapped,
            "read_warnings": list(self.warnings),
        }


def _per_axis(zyx: Sequence[float], ndim: int, fill: float) -> tuple[float, ...]:
    zyx = tuple(float(v) for v in zyx)
    if ndim <= 3:
        return zyx[3 - ndim :]
    return (fill,) * (ndim - 3) + zyx
