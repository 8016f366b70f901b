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

Layout
------
This module reads files (:func:`read_volume`) and re-exports the whole public
API of the package, which lives in:

* :mod:`~napari_dewedge.io.names`: extensions and suffix helpers;
* :mod:`~napari_dewedge.io.errors`: :class:`MrcReadError` and friends;
* :mod:`~napari_dewedge.io.volume`: :class:`Volume`, :func:`as_float32`,
  :func:`require_3d`;
* :mod:`~napari_dewedge.io.probe`: cheap header inspection, :func:`check_mrc`;
* :mod:`~napari_dewedge.io.write`: :func:`write_volume`, :func:`provenance_label`.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
import zlib
from collections.abc import Sequence

import mrcfile
import numpy as np

from .errors import (
    MrcFileNotFoundError,
    MrcPermissionError,
    MrcReadError,
    MrcReadWarning,
)
from .names import (
    COMPRESSED_EXTENSIONS,
    MRC_EXTENSIONS,
    has_mrc_extension,
    strip_mrc_suffixes,
)
from .probe import _header_dict, _os_error, _Probe, _probe, check_mrc
from .volume import Volume, as_float32, require_3d
from .write import provenance_label, write_volume

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

#: Files larger than this are memory-mapped instead of loaded (1 GiB).
DEFAULT_MMAP_THRESHOLD_BYTES: int = 1 << 30

_IMOD_STAMP = 1146047817  # b"IMOD" as a little-endian int32
_IMOD_FLAG_SIGNED_BYTES = 1


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

