"""Reading and writing MRC volumes (tomograms, density maps, tilt series).

Conventions
-----------
* Arrays are ``(z, y, x)``: sections, rows, columns, as mrcfile and napari
  store them. Files whose header maps columns/rows/sections to other axes
  (``mapc/mapr/maps`` other than 1, 2, 3, common for crystallographic CCP4
  maps) are transposed (a view, no copy) so that the array is always
  ``(z, y, x)``.
* Voxel sizes, origins and napari ``scale``/``translate`` are in ångström and
  ordered ``(z, y, x)``. The voxel size is ``cella / m`` per axis, rounded to six
  significant digits (the header stores float32, so ``883.68 / 84`` would read
  back as ``10.5199995``). A missing or zero voxel size becomes 1 Å with a
  warning, never a failure.
* The origin is the position in Å of voxel ``(0, 0, 0)``: the MRC2014
  ``origin`` field, or ``n[xyz]start`` times the voxel size when that field is
  zero (the CCP4 convention).
* Data keep their stored dtype (int8, uint8, int16, uint16, float16, float32)
  in native byte order; :func:`as_float32` converts only where a computation
  needs it. Mode 0 bytes are signed (MRC2014) unless the IMOD header flags, or
  header statistics that only fit 0..255, mark them unsigned; they are then
  viewed as uint8 without a copy.
* Files larger than ``mmap_threshold_bytes`` are memory-mapped read-only
  instead of loaded. Compressed (``.gz``, ``.bz2``) files cannot be mapped and
  are always loaded; so is data stored in the other byte order, which is
  converted in memory.
* Odd but valid files (old headers without the ``MAP`` identifier, unknown
  machine stamps, IMOD labels) are read with mrcfile's permissive mode. Real
  problems raise :class:`MrcReadError`, a ``ValueError`` whose message starts
  with the file path and names the problem in plain words.
* Writing (:func:`write_volume`) produces float32 (mode 2) files with the
  voxel size, origin, header statistics and a provenance label, written to a
  temporary file in the target folder and moved into place with
  :func:`os.replace`, so a failed write never leaves a partial file behind and
  never clobbers an existing one. Input files are protected from overwriting.
"""

from __future__ import annotations

import bz2
import contextlib
import datetime as _dt
import gzip
import math
import os
import re
import uuid
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
from mrcfile import utils as _mrc_utils
from mrcfile.dtypes import HEADER_DTYPE

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

#: Extensions of MRC-format files (maps, tomograms, stacks, tilt series).
MRC_EXTENSIONS: tuple[str, ...] = (".mrc", ".rec", ".map", ".mrcs", ".ccp4", ".st", ".ali")
#: Extensions of compressed copies, e.g. ``tomo.mrc.gz``.
COMPRESSED_EXTENSIONS: tuple[str, ...] = (".gz", ".bz2")
#: Files larger than this are memory-mapped instead of loaded (1 GiB).
DEFAULT_MMAP_THRESHOLD_BYTES: int = 1 << 30

_HEADER_BYTES = 1024
_IMOD_STAMP = 1146047817  # b"IMOD" as a little-endian int32
_IMOD_FLAG_SIGNED_BYTES = 1
_SUPPORTED_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}
_MODE_NAMES = {**_SUPPORTED_MODES, 3: "complex int16", 4: "complex float32", 101: "4-bit"}
# Chunk size (bytes of float32 output) for writing and for header statistics.
_WRITE_CHUNK_BYTES = 64 << 20


class MrcReadError(ValueError):
    """An MRC file cannot be read; the message starts with the file path."""


class MrcFileNotFoundError(MrcReadError, FileNotFoundError):
    """The MRC file does not exist."""


class MrcPermissionError(MrcReadError, PermissionError):
    """The MRC file exists but cannot be read."""


class MrcReadWarning(UserWarning):
    """A file was read, but something about it needed a default or a fix."""


# --------------------------------------------------------------------------- #
# Small public helpers
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# The Volume
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# Header inspection (cheap: at most the first 1024 bytes are read)
# --------------------------------------------------------------------------- #


@dataclass
class _Probe:
    path: Path
    compression: str | None
    file_size: int
    raw: bytes
    header: np.recarray
    byte_order: str
    has_map_id: bool
    notes: list[str]
    dtype: np.dtype
    shape: tuple[int, ...]
    data_nbytes: int
    axis_order: tuple[int, int, int]


_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"II+\x00", "a BigTIFF image"),
    (b"MM\x00+", "a BigTIFF image"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF", "a PDF document"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"(\xb5/\xfd", "a zstd-compressed file"),
)
_EM_ITEMSIZE = {1: 1, 2: 2, 4: 4, 5: 4, 8: 8, 9: 8}


def _looks_like_tom_em(head: bytes, file_size: int) -> bool:
    """TOM/EM files: 512-byte header, machine byte, data type byte, 3 int32 dims."""
    if len(head) < 16 or head[0] not in (0, 1, 2, 3, 4, 5, 6):
        return False
    itemsize = _EM_ITEMSIZE.get(head[3])
    if itemsize is None:
        return False
    for order in "<>":
        dims = np.frombuffer(head[4:16], dtype=f"{order}i4")
        if np.all(dims > 0) and 512 + int(np.prod(dims, dtype=np.int64)) * itemsize == file_size:
            return True
    return False


def _read_head(path: Path, compression: str | None, nbytes: int) -> bytes:
    if compression == "gzip":
        with gzip.open(path, "rb") as f:
            return f.read(nbytes)
    if compression == "bzip2":
        with bz2.open(path, "rb") as f:
            return f.read(nbytes)
    with open(path, "rb") as f:
        return f.read(nbytes)


def _os_error(path: Path, err: OSError) -> MrcReadError:
    if isinstance(err, FileNotFoundError):
        return MrcFileNotFoundError(f"{path}: file not found")
    if isinstance(err, PermissionError):
        return MrcPermissionError(f"{path}: permission denied (the file cannot be read)")
    if isinstance(err, IsADirectoryError):
        return MrcReadError(f"{path}: is a folder, not an MRC file")
    return MrcReadError(f"{path}: cannot be read ({err.strerror or err})")


def _not_mrc(path: Path, why: str) -> MrcReadError:
    return MrcReadError(f"{path}: not an MRC file ({why})")


def _check_mode(path: Path, mode: int) -> None:
    if mode in (3, 4):
        raise MrcReadError(
            f"{path}: complex data (MRC mode {mode}, {_MODE_NAMES[mode]}, e.g. a Fourier "
            "transform) is not supported; convert it to a real-valued map first"
        )
    if mode not in _SUPPORTED_MODES:
        known = ", ".join(f"{m} ({n})" for m, n in _SUPPORTED_MODES.items())
        kind = f" ({_MODE_NAMES[mode]} data)" if mode in _MODE_NAMES else ""
        raise MrcReadError(
            f"{path}: unknown or unsupported MRC mode {mode}{kind}; "
            f"this reader handles modes {known}"
        )


def check_mrc(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check cheaply that ``path`` is a readable MRC file and return its header.

    Reads at most the first 1024 bytes (decompressed for ``.gz``/``.bz2``) and
    compares the size the header promises with the file size. Raises
    :class:`MrcReadError` with a plain-words message on any problem; returns
    the header dict (see :attr:`Volume.header`) otherwise.
    """
    probe = _probe(path)
    return _header_dict(probe)


def _probe(path: str | os.PathLike[str]) -> _Probe:
    path = Path(os.fspath(path)).expanduser()
    try:
        st = path.stat()
    except OSError as err:
        raise _os_error(path, err) from None
    if path.is_dir():
        raise MrcReadError(f"{path}: is a folder, not an MRC file")
    size = int(st.st_size)
    if size == 0:
        raise MrcReadError(f"{path}: empty file (0 bytes)")
    try:
        raw = _read_head(path, None, _HEADER_BYTES)
    except OSError as err:
        raise _os_error(path, err) from None

    compression = None
    if raw[208:212] != b"MAP ":
        if raw[:2] == b"\x1f\x8b":
            compression = "gzip"
        elif raw[:3] == b"BZh":
            compression = "bzip2"
    if compression is not None:
        try:
            raw = _read_head(path, compression, _HEADER_BYTES)
        except (OSError, EOFError, zlib.error, ValueError) as err:
            raise MrcReadError(
                f"{path}: {compression} file is corrupt or truncated and cannot be "
                f"decompressed ({err})"
            ) from None
        if not raw:
            raise MrcReadError(f"{path}: empty file ({compression} archive holds no data)")

    for magic, what in _FOREIGN_MAGIC:
        if raw.startswith(magic):
            raise _not_mrc(path, f"it is {what}")
    _, suffix, _ = strip_mrc_suffixes(path)
    if compression is None and (suffix == ".em" or _looks_like_tom_em(raw, size)):
        raise _not_mrc(
            path,
            "it is a TOM/EM (.em) volume, a different format; convert it to MRC first, "
            "e.g. with EMAN2: e2proc3d.py input.em output.mrc",
        )
    if len(raw) < _HEADER_BYTES:
        raise _not_mrc(
            path,
            f"only {len(raw)} bytes, but an MRC file starts with a {_HEADER_BYTES}-byte header",
        )

    notes: list[str] = []
    has_map_id = raw[208:211] == b"MAP"
    if not has_map_id:
        notes.append("header has no 'MAP ' identifier (old-style header); read anyway")

    # Byte order: machine stamp first, then the mode's plausibility (as mrcfile does).
    base = np.frombuffer(raw, dtype=HEADER_DTYPE, count=1).reshape(())
    try:
        order = _mrc_utils.byte_order_from_machine_stamp(base["machst"])
        stamp_ok = True
    except ValueError:
        order, stamp_ok = "<", False
    header = _header_view(raw, order)
    if int(header.mode) not in _MODE_NAMES:
        other = "<" if order == ">" else ">"
        flipped = _header_view(raw, other)
        if int(flipped.mode) in _MODE_NAMES:
            if stamp_ok:
                notes.append(
                    f"machine stamp ({_machst_text(base['machst'])}) disagrees with the byte "
                    f"order of the header; read as {'big' if other == '>' else 'little'}-endian"
                )
            order, header = other, flipped
    if not stamp_ok:
        notes.append(
            f"machine stamp {_machst_text(base['machst'])} not recognised; "
            f"byte order taken as {'big' if order == '>' else 'little'}-endian"
        )

    mode = int(header.mode)
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    dims_ok = min(nx, ny, nz) >= 1
    crs = (int(header.mapc), int(header.mapr), int(header.maps))
    if crs == (0, 0, 0):
        axis_order = (1, 2, 3)
        crs_ok = True
        notes.append(
            "axis order fields mapc/mapr/maps are zero; assumed columns=x, rows=y, sections=z"
        )
    else:
        axis_order = crs  # type: ignore[assignment]
        crs_ok = sorted(crs) == [1, 2, 3]
    nsymbt = int(header.nsymbt)
    nsymbt_ok = nsymbt >= 0 and (compression is not None or _HEADER_BYTES + nsymbt <= size)

    if not has_map_id and not (mode in _MODE_NAMES and dims_ok and crs_ok and nsymbt_ok):
        raise _not_mrc(
            path, "no 'MAP ' identifier and the header fields are not those of an MRC file"
        )
    _check_mode(path, mode)
    if not dims_ok:
        raise MrcReadError(f"{path}: invalid dimensions in header: nx={nx}, ny={ny}, nz={nz}")
    if not crs_ok:
        raise MrcReadError(
            f"{path}: invalid axis order in header: mapc/mapr/maps = {crs}, "
            "which must be a permutation of 1, 2, 3"
        )
    if not nsymbt_ok:
        raise MrcReadError(
            f"{path}: truncated file: the header announces an extended header of {nsymbt} "
            f"bytes but the whole file holds only {size} bytes"
        )

    dtype = np.dtype(_SUPPORTED_MODES[mode]).newbyteorder(order)
    try:
        shape = tuple(int(s) for s in _mrc_utils.data_shape_from_header(header))
    except ValueError as err:
        raise MrcReadError(f"{path}: inconsistent dimensions in header ({err})") from None
    data_nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on junk
    if compression is None:
        available = size - _HEADER_BYTES - nsymbt
        if available < data_nbytes:
            if not has_map_id:
                raise _not_mrc(
                    path,
                    "no 'MAP ' identifier and the dimensions in the header do not match "
                    "the file size",
                )
            raise MrcReadError(
                f"{path}: truncated data block: the header promises {data_nbytes} bytes of data "
                f"({nx} x {ny} x {nz} voxels, mode {mode} {_MODE_NAMES[mode]}) but the file holds "
                f"only {available} bytes after the header"
            )
        if available > data_nbytes:
            notes.append(f"{available - data_nbytes} extra bytes after the data block were ignored")
    return _Probe(
        path=path,
        compression=compression,
        file_size=size,
        raw=raw,
        header=header,
        byte_order=order,
        has_map_id=has_map_id,
        notes=notes,
        dtype=dtype,
        shape=shape,
        data_nbytes=data_nbytes,
        axis_order=axis_order,
    )


def _header_view(raw: bytes, order: str) -> np.recarray:
    return (
        np.frombuffer(raw, dtype=HEADER_DTYPE.newbyteorder(order), count=1)
        .reshape(())
        .view(np.recarray)
    )


def _machst_text(machst: Any) -> str:
    return " ".join(f"{int(b):02x}" for b in np.asarray(machst).ravel())


def _decode_labels(header: np.recarray) -> list[str]:
    out = []
    for raw in np.asarray(header.label).ravel():
        text = bytes(raw).split(b"\x00", 1)[0].decode("latin-1").rstrip()
        if text.strip():
            out.append(text)
    return out


def _header_dict(probe: _Probe) -> dict[str, Any]:
    h = probe.header
    exttyp = bytes(h.exttyp).decode("latin-1").strip("\x00 ")
    return {
        "mode": int(h.mode),
        "nx": int(h.nx),
        "ny": int(h.ny),
        "nz": int(h.nz),
        "nxstart": int(h.nxstart),
        "nystart": int(h.nystart),
        "nzstart": int(h.nzstart),
        "mx": int(h.mx),
        "my": int(h.my),
        "mz": int(h.mz),
        "cella": tuple(float(h.cella[k]) for k in "xyz"),
        "cellb": tuple(float(h.cellb[k]) for k in ("alpha", "beta", "gamma")),
        "mapc": int(h.mapc),
        "mapr": int(h.mapr),
        "maps": int(h.maps),
        "dmin": float(h.dmin),
        "dmax": float(h.dmax),
        "dmean": float(h.dmean),
        "rms": float(h.rms),
        "ispg": int(h.ispg),
        "nsymbt": int(h.nsymbt),
        "exttyp": exttyp,
        "nversion": int(h.nversion),
        "origin_xyz": tuple(float(h.origin[k]) for k in "xyz"),
        "machst": _machst_text(h.machst),
        "byte_order": "big" if probe.byte_order == ">" else "little",
        "has_map_id": probe.has_map_id,
        "compression": probe.compression,
        "nlabl": int(h.nlabl),
        "labels": _decode_labels(h),
    }


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #


def _round_sig(value: float, digits: int = 6) -> float:
    return float(f"{value:.{digits}g}")


def _voxel_size_xyz(probe: _Probe) -> tuple[list[float], list[str]]:
    h = probe.header
    sizes, missing = [], []
    for axis, m in zip("xyz", (h.mx, h.my, h.mz)):
        cell, m = float(h.cella[axis]), int(m)
        if m > 0 and np.isfinite(cell) and cell > 0:
            sizes.append(_round_sig(cell / m))
        else:
            sizes.append(1.0)
            missing.append(axis)
    return sizes, missing


def _origin_xyz(probe: _Probe, voxel_xyz: Sequence[float]) -> tuple[list[float], str | None]:
    h = probe.header
    field_xyz = [float(h.origin[k]) for k in "xyz"]
    if not all(np.isfinite(field_xyz)):
        return [0.0, 0.0, 0.0], "origin in header is not a finite number; set to 0"
    if any(field_xyz):
        return field_xyz, None
    starts = [0, 0, 0]
    for start, axis in zip((h.nxstart, h.nystart, h.nzstart), probe.axis_order):
        starts[axis - 1] = int(start)
    return [float(s * v) for s, v in zip(starts, voxel_xyz)], None


def _mode0_unsigned(probe: _Probe) -> str | None:
    """Reason why mode 0 data should be read as unsigned bytes, or None."""
    raw, order = probe.raw, probe.byte_order
    stamp = int(np.frombuffer(raw[152:156], dtype=f"{order}i4")[0])
    if stamp == _IMOD_STAMP:
        flags = int(np.frombuffer(raw[156:160], dtype=f"{order}i4")[0])
        if flags & _IMOD_FLAG_SIGNED_BYTES:
            return None
        return "the IMOD header flags mark the bytes as unsigned"
    dmin, dmax = float(probe.header.dmin), float(probe.header.dmax)
    if np.isfinite(dmin) and np.isfinite(dmax) and 0 <= dmin and 127 < dmax <= 255:
        return f"the header's minimum and maximum ({dmin:g}, {dmax:g}) only fit unsigned bytes"
    return None


def _to_zyx(data: np.ndarray, axis_order: tuple[int, int, int]) -> np.ndarray:
    """Transpose ``(sections, rows, columns)`` data to ``(z, y, x)`` (a view)."""
    if tuple(axis_order) == (1, 2, 3):
        return data
    c, r, s = axis_order
    volume = data if data.ndim >= 3 else data.reshape((1,) * (3 - data.ndim) + data.shape)
    lead = volume.ndim - 3
    stored = (s, r, c)  # crystallographic axis (1=x, 2=y, 3=z) of each stored axis
    perm = list(range(lead)) + [lead + stored.index(a) for a in (3, 2, 1)]
    out = volume.transpose(perm)
    if data.ndim == 2 and out.shape[0] == 1:
        out = out[0]
    return out


def read_volume(
    path: str | os.PathLike[str],
    *,
    mmap_threshold_bytes: int = DEFAULT_MMAP_THRESHOLD_BYTES,
    mmap: bool | None = None,
) -> Volume:
    """Read an MRC file (``.mrc .rec .map .mrcs .ccp4 .st .ali``, optionally ``.gz``/``.bz2``).

    Args:
        path: the file.
        mmap_threshold_bytes: files larger than this are memory-mapped
            read-only instead of loaded.
        mmap: ``True`` or ``False`` forces mapping on or off regardless of size;
            compressed files are always loaded.

    Returns:
        A :class:`Volume` with ``(z, y, x)`` data in native byte order.

    Raises:
        MrcReadError: with a message that starts with the path and says what
            is wrong (missing file, permission denied, empty, truncated, not an
            MRC file, unknown or complex mode).
    """
    probe = _probe(path)
    path = probe.path
    notes = list(probe.notes)
    warn_notes: list[str] = []

    use_mmap = probe.file_size > mmap_threshold_bytes if mmap is None else bool(mmap)
    if use_mmap and probe.compression is not None:
        notes.append(
            f"{probe.compression}-compressed files cannot be memory-mapped; loaded into memory"
        )
        use_mmap = False

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            opener = mrcfile.mmap if use_mmap else mrcfile.open
            with opener(str(path), mode="r", permissive=True) as mrc:
                data = mrc.data
        except (EOFError, zlib.error) as err:
            raise MrcReadError(
                f"{path}: truncated or corrupt {probe.compression or 'MRC'} data ({err})"
            ) from None
        except OSError as err:
            if probe.compression and not isinstance(err, (FileNotFoundError, PermissionError)):
                raise MrcReadError(
                    f"{path}: truncated or corrupt {probe.compression} data ({err})"
                ) from None
            raise _os_error(path, err) from None
        except ValueError as err:
            raise MrcReadError(f"{path}: cannot be read as MRC ({err})") from None
    messages = [str(w.message) for w in caught]
    if data is None:
        short = next((m for m in messages if "bytes in data block" in m), None)
        if short is not None:
            got = re.search(r"could only read (\d+)", short)
            held = f"only {got.group(1)} bytes" if got else "fewer bytes"
            raise MrcReadError(
                f"{path}: truncated data block: the header promises {probe.data_nbytes} bytes of "
                f"data but the file holds {held}"
            )
        why = "; ".join(messages) or "unknown reason"
        raise MrcReadError(f"{path}: the data block cannot be read ({why})")
    for msg in messages:
        if not re.search(r"Map ID string|machine stamp|Machine stamp|larger than expected", msg):
            notes.append(f"mrcfile: {msg}")

    memory_mapped = isinstance(data, np.memmap)
    if not data.dtype.isnative:
        data = np.asarray(data).astype(data.dtype.newbyteorder("="))
        if memory_mapped:
            warn_notes.append(
                "data are stored in non-native byte order and were converted in memory "
                "instead of being memory-mapped"
            )
            memory_mapped = False
        else:
            notes.append("data converted from non-native byte order")
    if not memory_mapped:
        with contextlib.suppress(ValueError):
            data.flags.writeable = True

    if int(probe.header.mode) == 0:
        reason = _mode0_unsigned(probe)
        if reason is not None:
            data = data.view(np.uint8)
            msg = f"mode 0 bytes read as unsigned (0..255) because {reason}"
            if "IMOD" in reason:
                notes.append(msg)
            else:
                warn_notes.append(msg)

    if probe.axis_order != (1, 2, 3):
        data = _to_zyx(data, probe.axis_order)
        notes.append(
            "axes reordered to (z, y, x) from mapc/mapr/maps = "
            f"{tuple(int(a) for a in probe.axis_order)}"
        )

    voxel_xyz, missing = _voxel_size_xyz(probe)
    spatial = "xyz"[: min(data.ndim, 3)]
    relevant = [a for a in missing if a in spatial]
    if relevant:
        warn_notes.append(
            f"no voxel size in header for axis {', '.join(relevant)} (cell size or sampling is "
            "zero); using 1 Å"
        )
    origin_xyz, origin_note = _origin_xyz(probe, voxel_xyz)
    if origin_note:
        warn_notes.append(origin_note)

    for msg in warn_notes:
        warnings.warn(f"{path}: {msg}", MrcReadWarning, stacklevel=2)

    return Volume(
        data=data,
        voxel_size=(voxel_xyz[2], voxel_xyz[1], voxel_xyz[0]),
        origin=(origin_xyz[2], origin_xyz[1], origin_xyz[0]),
        header=_header_dict(probe),
        path=path,
        memory_mapped=memory_mapped,
        warnings=notes + warn_notes,
    )


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("napari-dewedge")
    except Exception:  # noqa: BLE001 - not installed: fall back to the module attribute
        import napari_dewedge

        return str(getattr(napari_dewedge, "__version__", "unknown"))


def provenance_label(label: str | None = None, when: _dt.datetime | None = None) -> str:
    """The 80-character label written into every output file.

    ``"napari-dewedge <version>: <label>"`` (cut to 60 characters), padded and
    followed by a ``YYYY-MM-DD HH:MM:SS`` timestamp, IMOD style.
    """
    head = f"napari-dewedge {_package_version()}"
    if label:
        head = f"{head}: {' '.join(str(label).split())}"
    head = head.encode("ascii", "replace").decode("ascii")
    if len(head) > 60:
        head = head[:57] + "..."
    stamp = (when or _dt.datetime.now()).strftime("%Y-%m-%d %H:%M:%S")
    return f"{head:<60} {stamp}"


def _check_triplet(
    value: Any, name: str, *, positive: bool, ndim: int
) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=np.float64).ravel() if value is not None else None
    if arr is None or arr.size not in (1, 2, 3) or (arr.size == 2 and ndim != 2):
        raise ValueError(f"{name} must be one number or a (z, y, x) triple, got {value!r}")
    default = 1.0 if positive else 0.0
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    elif arr.size == 2:
        arr = np.concatenate([[default], arr])
    if not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        what = "positive finite numbers" if positive else "finite numbers"
        raise ValueError(f"{name} must be {what} in Å, got {value!r}")
    return float(arr[0]), float(arr[1]), float(arr[2])


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _is_protected(target: Path, protected_paths: Iterable[Any]) -> bool:
    resolved = target.resolve()
    for p in protected_paths:
        if p is None:
            continue
        p = Path(os.fspath(p)).expanduser()
        if p.resolve() == resolved or _same_file(p, target):
            return True
    return False


class _Stats:
    """Running min, max, mean and standard deviation (Chan et al. pairwise update)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.min, self.max = np.inf, -np.inf

    def add(self, chunk: np.ndarray) -> None:
        if chunk.size == 0:
            return
        c = chunk.astype(np.float64, copy=False)
        n, mean = c.size, float(c.mean())
        m2 = float(np.square(c - mean).sum())
        delta, total = mean - self.mean, self.n + n
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.min, self.max = min(self.min, float(c.min())), max(self.max, float(c.max()))

    @property
    def rms(self) -> float:
        return float(np.sqrt(self.m2 / self.n)) if self.n else 0.0


def write_volume(
    path: str | os.PathLike[str],
    data: Any,
    *,
    voxel_size: float | Sequence[float] = (1.0, 1.0, 1.0),
    label: str | None = None,
    origin: Sequence[float] | None = None,
    overwrite: bool = False,
    protected_paths: Iterable[str | os.PathLike[str]] = (),
    extra_labels: Sequence[str] = (),
) -> Path:
    """Write a 2D or 3D array as a float32 (mode 2) MRC file, atomically.

    Args:
        path: output file; its name must end in an MRC extension (``.mrc``,
            ``.rec``, ``.map`` ...), optionally followed by ``.gz`` or ``.bz2``.
        data: ``(z, y, x)`` or ``(y, x)`` array of any real numeric dtype
            (numpy array, memmap, or any sliceable array-like such as dask).
            Uncompressed output is written in chunks along z, so a huge
            memory-mapped volume never needs a full float32 copy.
        voxel_size: ``(z, y, x)`` in Å, or one number for all axes.
        label: provenance text, stored as
            ``"napari-dewedge <version>: <label>"`` plus a timestamp.
        origin: ``(z, y, x)`` position of voxel ``(0, 0, 0)`` in Å.
        overwrite: replace an existing file. Without it an existing file is
            never touched; files in ``protected_paths`` (the inputs) are
            refused unless ``overwrite=True`` is given explicitly.
        protected_paths: paths that must not be overwritten (input files).
        extra_labels: older history lines (e.g. the input file's labels) kept
            before the new label; at most nine are kept, the most recent ones.

    Returns:
        The path written.

    Raises:
        FileExistsError: the file exists (or is a protected input) and
            ``overwrite`` is False.
        FileNotFoundError: the output folder does not exist.
        ValueError: bad data, voxel size, origin or file name.
    """
    target = Path(os.fspath(path)).expanduser()
    _, suffix, compression = strip_mrc_suffixes(target)
    if suffix not in MRC_EXTENSIONS:
        raise ValueError(
            f"{target}: unsupported file name for MRC output; use one of "
            f"{', '.join(MRC_EXTENSIONS)} (optionally + .gz or .bz2)"
        )
    lazy = all(hasattr(data, a) for a in ("shape", "dtype", "__getitem__"))
    arr = data if lazy else np.asarray(data)
    shape = tuple(int(s) for s in arr.shape)
    dtype = np.dtype(arr.dtype)
    if dtype.kind == "c":
        raise ValueError(f"{target}: complex data cannot be written (only real-valued volumes)")
    if dtype.kind not in "biuf":
        raise ValueError(f"{target}: data of dtype {dtype} cannot be written as MRC (need numbers)")
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{target}: data must be a 3D (z, y, x) volume or a 2D image, got shape {shape}"
        )
    if min(shape) < 1:
        raise ValueError(f"{target}: data are empty (shape {shape})")
    vz, vy, vx = _check_triplet(voxel_size, "voxel_size", positive=True, ndim=len(shape))
    oz, oy, ox = _check_triplet(
        (0.0, 0.0, 0.0) if origin is None else origin, "origin", positive=False, ndim=len(shape)
    )

    parent = target.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"{target}: output folder {parent} does not exist")
    if target.is_dir():
        raise IsADirectoryError(f"{target}: is a folder; give a file name ending in .mrc")
    protected = _is_protected(target, protected_paths)
    if protected and not overwrite:
        raise FileExistsError(
            f"{target}: refusing to overwrite an input file; choose another output name "
            "(or pass overwrite=True explicitly)"
        )
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target}: file already exists; choose another name or pass overwrite=True"
        )

    labels = [str(x)[:80] for x in extra_labels if str(x).strip()][-9:]
    labels.append(provenance_label(label))
    tmp = parent / f".{target.name}.{uuid.uuid4().hex[:12]}.part"
    try:
        if compression is None:
            with mrcfile.new_mmap(str(tmp), shape=shape, mrc_mode=2) as mrc:
                step = _chunk_rows(shape)
                for z0 in range(0, shape[0], step):
                    mrc.data[z0 : z0 + step] = as_float32(np.asarray(arr[z0 : z0 + step]))
                _fill_header(mrc, target, shape, (vx, vy, vz), (ox, oy, oz), labels)
        else:
            with mrcfile.new(str(tmp), compression=compression) as mrc:
                mrc.set_data(as_float32(np.asarray(arr)))
                _fill_header(mrc, target, shape, (vx, vy, vz), (ox, oy, oz), labels)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target}: file appeared while writing; not overwritten")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def _chunk_rows(shape: tuple[int, ...]) -> int:
    per_row = 4 * int(np.prod(shape[1:], dtype=np.int64))
    return max(1, _WRITE_CHUNK_BYTES // max(per_row, 1))


def _fill_header(
    mrc: Any,
    target: Path,
    shape: tuple[int, ...],
    voxel_xyz: tuple[float, float, float],
    origin_xyz: tuple[float, float, float],
    labels: list[str],
) -> None:
    """Set voxel size, origin, statistics and labels of an open output file."""
    if len(shape) == 3:
        mrc.set_volume()
    mrc.voxel_size = voxel_xyz
    h = mrc.header
    h.origin.x, h.origin.y, h.origin.z = origin_xyz
    stats = _Stats()
    step = _chunk_rows(shape)
    for z0 in range(0, shape[0], step):
        stats.add(np.asarray(mrc.data[z0 : z0 + step]))
    if not np.isfinite(stats.mean):
        warnings.warn(
            f"{target}: data contain NaN or infinite values", RuntimeWarning, stacklevel=3
        )
    h.dmin, h.dmax, h.dmean, h.rms = stats.min, stats.max, stats.mean, stats.rms
    h.label[:] = b""
    for i, text in enumerate(labels[:10]):
        h.label[i] = text.encode("ascii", "replace")[:80]
    h.nlabl = min(len(labels), 10)
