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

from .._lazy import lazy_names

__all__ = ["WedgeInspector", "OrthoViews", "CompareWidget", "open_comparison", "get_wedge_state", "WedgeState"]

_WHERE = {
    "WedgeInspector": "inspector",
    "OrthoViews": "orthoviews",
    "CompareWidget": "compare",
    "open_comparison": "compare",
    "get_wedge_state": "state",
    "WedgeState": "state",
}

__getattr__, __dir__ = lazy_names(__name__, _WHERE, __all__)
