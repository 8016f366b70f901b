"""napari-dewedge: missing-wedge inspection, dewedging and denoising of cryo-ET tomograms.

The package is light to import: numerical code lives in :mod:`napari_dewedge.core`
(numpy/torch, no Qt), file access in :mod:`napari_dewedge.io`, and the napari
widgets in :mod:`napari_dewedge.widgets`, each imported only when used.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-dewedge")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
