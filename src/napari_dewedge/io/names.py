"""File-name conventions of MRC files: extensions and suffix helpers.

Pure string handling, no file access; used by the reader, the writer and the
napari hooks to recognise ``.mrc .rec .map .mrcs .ccp4 .st .ali`` files and
their compressed copies (``.gz``, ``.bz2``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["COMPRESSED_EXTENSIONS", "MRC_EXTENSIONS", "has_mrc_extension", "strip_mrc_suffixes"]

#: Extensions of MRC-format files (maps, tomograms, stacks, tilt series).
MRC_EXTENSIONS: tuple[str, ...] = (".mrc", ".rec", ".map", ".mrcs", ".ccp4", ".st", ".ali")
#: Extensions of compressed copies, e.g. ``tomo.mrc.gz``.
COMPRESSED_EXTENSIONS: tuple[str, ...] = (".gz", ".bz2")


def strip_mrc_suffixes(path: str | os.PathLike[str]) -> tuple[str, str, str | None]:
    """Split a file name into ``(stem, mrc_suffix, compression)``.

    ``"tomo.rec.gz"`` gives ``("tomo", ".rec", "gzip")``; ``"map.ccp4"`` gives
    ``("map", ".ccp4", None)``. Suffixes are compared case-insensitively; an
    unknown suffix is returned as it is (``"a.tif"`` -> ``("a", ".tif", None)``).
    """
    name = Path(path).name
    compression = None
    lower = name.lower()
    if lower.endswith(".gz"):
        compression, name = "gzip", name[:-3]
    elif lower.endswith(".bz2"):
        compression, name = "bzip2", name[:-4]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, "", compression
    return stem, "." + ext.lower(), compression


def has_mrc_extension(path: str | os.PathLike[str]) -> bool:
    """True when the name ends in an MRC extension, optionally ``.gz``/``.bz2``."""
    return strip_mrc_suffixes(path)[1] in MRC_EXTENSIONS
