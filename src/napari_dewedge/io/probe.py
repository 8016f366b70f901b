"""Cheap inspection of MRC headers: :func:`check_mrc` and the probe of a file.

At most the first 1024 bytes are read (decompressed for ``.gz``/``.bz2``).
The probe recognises other formats by their magic bytes, works out the byte
order, the data type, the shape and the axis order, and compares the size the
header promises with the file size; every problem becomes an
:class:`~napari_dewedge.io.errors.MrcReadError` whose message starts with the
path and names the problem in plain words.
"""

from __future__ import annotations

import bz2
import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mrcfile import utils as _mrc_utils
from mrcfile.dtypes import HEADER_DTYPE

from .errors import MrcFileNotFoundError, MrcPermissionError, MrcReadError
from .names import strip_mrc_suffixes

__all__ = ["check_mrc"]

_HEADER_BYTES = 1024
_SUPPORTED_MODES = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}
_MODE_NAMES = {**_SUPPORTED_MODES, 3: "complex int16", 4: "complex float32", 101: "4-bit"}


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
