"""Shared Qt building blocks of the inspection widgets.

:class:`ImagePanel`
    paints one 2D numpy slice as a ``QImage`` through a lookup table (grey for
    real space, a magma-like map for spectra), keeps the physical aspect ratio
    of its pixels, and draws a crosshair, line segments and a translucent
    shading (the missing wedge) on top with ``QPainter``. A click or drag
    emits the data coordinates under the mouse.

:class:`ProfilePanel`
    a tiny line plot (mean log power against angle) with the measured tilt
    range marked; redrawn on every slider move for free.

:class:`LayerPicker`
    a combo box of the viewer's 3D image layers that follows layers being
    added, removed and renamed.

Pure Qt on purpose: painting a few hundred thousand pixels costs a few
milliseconds, works on the ``offscreen`` platform (no OpenGL) and can be
grabbed into a PNG.

The code lives in private submodules (``_image_panel``, ``_profile_panel``,
``_layer_picker``, ``_helpers``); import it from here.
"""

from __future__ import annotations

from ._helpers import is_alive, is_volume_layer, volume_of
from ._image_panel import _LUTS as _LUTS  # re-exported: every name panels.py has always had
from ._image_panel import _MAGMA as _MAGMA
from ._image_panel import BACKGROUND as BACKGROUND
from ._image_panel import CROSSHAIR as CROSSHAIR
from ._image_panel import TEXT as TEXT
from ._image_panel import WEDGE_LINE as WEDGE_LINE
from ._image_panel import WEDGE_SHADE as WEDGE_SHADE
from ._image_panel import ImagePanel, Segment, lookup_table, to_uint8
from ._layer_picker import LayerPicker
from ._profile_panel import ProfilePanel

__all__ = [
    "ImagePanel",
    "ProfilePanel",
    "LayerPicker",
    "lookup_table",
    "to_uint8",
    "is_volume_layer",
    "volume_of",
    "is_alive",
    "Segment",
]
