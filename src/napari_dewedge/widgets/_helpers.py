"""Small helpers shared by the widgets: whether a Qt object is still alive,
whether a napari layer is a scalar 3D volume, that volume's array, and a
duration as the progress line shows it.

Kept apart from :mod:`napari_dewedge.widgets.panels` so that the panel modules
can use them without importing ``panels`` (which re-exports them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["format_seconds", "is_alive", "is_volume_layer", "volume_of"]


def is_alive(obj: Any) -> bool:
    """False once the C++ side of a Qt object is gone (widget closed and deleted)."""
    if obj is None:
        return False
    try:
        from qtpy import sip  # PyQt5/6

        return not sip.isdeleted(obj)
    except ImportError:  # pragma: no cover - PySide
        try:
            import shiboken6

            return shiboken6.isValid(obj)
        except ImportError:
            return True


def is_volume_layer(layer: Any) -> bool:
    """A napari image layer holding one scalar 3D volume (not RGB, not labels)."""
    from napari.layers import Image

    return isinstance(layer, Image) and not getattr(layer, "rgb", False) and layer.ndim == 3


def volume_of(layer: Any, max_voxels: int | None = None) -> Any:
    """The ``(z, y, x)`` array of an image layer. Multiscale layers give their
    finest level, or with ``max_voxels`` the finest level that is not bigger."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        levels = list(data)
        if max_voxels is None:
            return levels[0]
        for level in levels:
            if int(np.prod(level.shape)) <= max_voxels:
                return level
        return levels[-1]
    return data


def format_seconds(seconds: float | None) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on); ``?`` for an unknown duration."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(0.0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
