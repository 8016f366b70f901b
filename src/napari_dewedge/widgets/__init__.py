"""Dock widgets of napari-dewedge.

- :class:`~napari_dewedge.widgets.inspector.WedgeInspector`: the missing wedge
  over the central Fourier slices of a tomogram, tilt range slider, estimate;
- :class:`~napari_dewedge.widgets.orthoviews.OrthoViews`: linked XY/XZ/YZ
  slices and Fourier slices of one layer or of two side by side;
- :class:`~napari_dewedge.widgets.compare.CompareWidget`: FSC, anisotropy and,
  with a ground truth, PSNR/SSIM/missing-wedge FSC of before and after;
- :func:`open_comparison`: dock (or reuse) the comparison views for a pair of layers;
- :func:`~napari_dewedge.widgets.state.get_wedge_state`: the one wedge state of a viewer.

Submodules are imported on first use (matplotlib, for one, only with the
compare widget).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["WedgeInspector", "OrthoViews", "CompareWidget", "open_comparison", "get_wedge_state", "WedgeState"]

_WHERE = {
    "WedgeInspector": "inspector",
    "OrthoViews": "orthoviews",
    "CompareWidget": "compare",
    "open_comparison": "compare",
    "get_wedge_state": "state",
    "WedgeState": "state",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
