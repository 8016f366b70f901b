"""MRC input and output: :func:`read_volume`, :func:`write_volume` and napari hooks.

See :mod:`napari_dewedge.io.mrc` for the conventions (axes ``(z, y, x)``, voxel
sizes in ångström, memory mapping, atomic writes).
"""

from .mrc import (
    COMPRESSED_EXTENSIONS,
    DEFAULT_MMAP_THRESHOLD_BYTES,
    MRC_EXTENSIONS,
    MrcFileNotFoundError,
    MrcPermissionError,
    MrcReadError,
    MrcReadWarning,
    Volume,
    as_float32,
    check_mrc,
    has_mrc_extension,
    provenance_label,
    read_volume,
    require_3d,
    strip_mrc_suffixes,
    write_volume,
)

__all__ = [
    "COMPRESSED_EXTENSIONS",
    "DEFAULT_MMAP_THRESHOLD_BYTES",
    "MRC_EXTENSIONS",
    "MrcFileNotFoundError",
    "MrcPermissionError",
    "MrcReadError",
    "MrcReadWarning",
    "Volume",
    "as_float32",
    "check_mrc",
    "has_mrc_extension",
    "provenance_label",
    "read_volume",
    "require_3d",
    "strip_mrc_suffixes",
    "write_volume",
]
