"""Writing MRC volumes: :func:`write_volume` with atomic output, and provenance labels.

Output is float32 (mode 2) with the voxel size, origin, header statistics and a
provenance label. It is written to a temporary file in the target folder and
moved into place with :func:`os.replace`, so a failed write never leaves a
partial file behind and never clobbers an existing one; input files are
protected from overwriting.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import uuid
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from .names import MRC_EXTENSIONS, strip_mrc_suffixes
from .volume import as_float32

__all__ = ["provenance_label", "write_volume"]

# Chunk size (bytes of float32 output) for writing and for header statistics.
_WRITE_CHUNK_BYTES = 64 << 20


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
