"""Subtomogram sampling, overlapping tiles and blend weights.

Two jobs share this module:

- training draws cubic subtomograms from the tomogram, preferably from regions
  that hold something (:func:`foreground_mask`, IsoNet-style, from local mean and
  local standard deviation), via :func:`sample_subtomogram_positions` and
  :func:`extract_subtomograms`;
- inference cuts the (padded) tomogram into overlapping tiles
  (:func:`tile_grid`) and blends the predictions with a smooth, strictly
  positive, separable weight (:func:`blend_window`) that all but ignores the
  outermost voxels of each tile, where a network's zero padding shows.

Everything works on ``(z, y, x)`` arrays of any numeric dtype, including
read-only ``np.memmap`` inputs: large volumes are processed in z-slabs so that
no full-size float copy is made. numpy and scipy only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "DEAD_ZONE_WEIGHT",
    "foreground_mask",
    "local_statistics",
    "sample_subtomogram_positions",
    "extract_subtomograms",
    "tile_starts",
    "tile_grid",
    "blend_ramp",
    "blend_window",
]

#: Voxels of float32 work per slab when computing local statistics (~64 MiB).
_SLAB_VOXELS = 1 << 24
#: Volumes above this many voxels get their local statistics on a coarser grid.
_FULL_RES_VOXELS = 1 << 25


def _shape3(shape: Sequence[int], name: str = "volume") -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(f"{name} must be 3D (z, y, x), got shape {shape}")
    if min(shape) < 1:
        raise ValueError(f"{name} is empty: shape {shape}")
    return shape  # type: ignore[return-value]


def _check_numeric(volume: np.ndarray, name: str = "volume") -> None:
    if np.dtype(volume.dtype).kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {volume.dtype}")


def _as_int3(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * 3  # type: ignore[return-value]
    values = tuple(int(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"{name} must be an int or three ints (z, y, x), got {value!r}")
    return values  # type: ignore[return-value]


# ----------------------------------------------------------------------------
# Local statistics and the foreground mask
# ----------------------------------------------------------------------------


def local_statistics(
    volume: np.ndarray,
    size: int,
    *,
    stride: int = 1,
    slab_voxels: int = _SLAB_VOXELS,
) -> tuple[np.ndarray, np.ndarray]:
    """Local mean and local standard deviation in a cube of edge ``size``.

    Computed with :func:`scipy.ndimage.uniform_filter` (reflective borders) on
    float32 z-slabs with a halo, so the result equals the whole-volume filter
    while memory stays at one slab. An offset (the mean of a sparse sample of
    the volume) is subtracted before squaring, which keeps the variance exact
    in float32 for data with a large constant offset.

    Returns ``(mean, std)``, float32, sampled on the grid
    ``volume[::stride, ::stride, ::stride]``.
    """
    shape = _shape3(volume.shape)
    _check_numeric(volume)
    size = int(size)
    stride = int(stride)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    nz, ny, nx = shape
    probe = np.asarray(volume[:: max(1, nz // 16), :: max(1, ny // 64), :: max(1, nx // 64)], dtype=np.float64)
    offset = float(probe.mean())

    halo = size // 2 + 1
    plane = ny * nx
    slab = max(stride, (max(1, slab_voxels // plane) // stride) * stride)
    out_shape = (len(range(0, nz, stride)), len(range(0, ny, stride)), len(range(0, nx, stride)))
    mean_out = np.empty(out_shape, dtype=np.float32)
    std_out = np.empty(out_shape, dtype=np.float32)
    row = 0
    for z0 in range(0, nz, slab):
        z1 = min(nz, z0 + slab)
        a, b = max(0, z0 - halo), min(nz, z1 + halo)
        block = np.asarray(volume[a:b], dtype=np.float32) - np.float32(offset)
        # Reflective borders only where the slab meets the volume's own border:
        # elsewhere the halo supplies the real neighbours.
        mean = ndimage.uniform_filter(block, size=size, mode="reflect")
        np.square(block, out=block)
        sq = ndimage.uniform_filter(block, size=size, mode="reflect")
        del block
        keep = slice(z0 - a, z1 - a)
        mean, sq = mean[keep][::stride, ::stride, ::stride], sq[keep][::stride, ::stride, ::stride]
        var = np.maximum(sq - mean * mean, 0.0)
        n = mean.shape[0]
        mean_out[row : row + n] = mean + np.float32(offset)
        std_out[row : row + n] = np.sqrt(var)
        row += n
    return mean_out, std_out


def _upsample_nearest(coarse: np.ndarray, shape: tuple[int, int, int], stride: int) -> np.ndarray:
    if stride == 1:
        return coarse
    idx = [np.minimum(np.rint(np.arange(n) / stride).astype(np.intp), c - 1) for n, c in zip(shape, coarse.shape)]
    out = np.empty(shape, dtype=coarse.dtype)
    inner = coarse[:, idx[1]][:, :, idx[2]]
    for z in range(shape[0]):
        out[z] = inner[idx[0][z]]
    return out


def foreground_mask(
    volume: np.ndarray,
    *,
    size: int,
    mean_percentile: float | None = 50.0,
    std_percentile: float | None = 50.0,
    stride: int | None = None,
) -> np.ndarray:
    """Boolean mask of the regions of ``volume`` that hold something.

    IsoNet-style: a voxel is foreground when the standard deviation in the cube
    of edge ``size`` around it is above the ``std_percentile``-th percentile of
    all local standard deviations, *and* the local mean differs from the
    median local mean by more than the ``mean_percentile``-th percentile of
    those differences (density, whichever its sign: raw tomograms show
    density dark, inverted ones bright). ``None`` switches a criterion off.
    Flat, empty regions (vacuum, padding, blank ice) fail both.

    ``stride`` computes the statistics on a coarser grid (then nearest-
    neighbour upsampled); ``None`` picks 1 for volumes up to 32 Mi voxels and
    about ``size // 4`` beyond, which keeps memory small for large tomograms
    (local statistics over a cube of edge ``size`` vary slowly anyway).

    When no voxel passes (a constant volume) the whole volume is returned as
    foreground. Returns a bool array of the volume's shape.
    """
    shape = _shape3(volume.shape)
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    for name, p in (("mean_percentile", mean_percentile), ("std_percentile", std_percentile)):
        if p is not None and not 0.0 <= float(p) <= 100.0:
            raise ValueError(f"{name} must lie in [0, 100] or be None, got {p!r}")
    if stride is None:
        stride = 1 if math.prod(shape) <= _FULL_RES_VOXELS else max(1, size // 4)
    mean, std = local_statistics(volume, size, stride=stride)
    keep = np.ones(mean.shape, dtype=bool)
    if std_percentile is not None:
        keep &= std > np.percentile(std, float(std_percentile))
    if mean_percentile is not None:
        dev = np.abs(mean - np.median(mean))
        keep &= dev > np.percentile(dev, float(mean_percentile))
    if not keep.any():
        keep[...] = True
    return _upsample_nearest(keep, shape, stride)


# ----------------------------------------------------------------------------
# Subtomogram sampling
# ----------------------------------------------------------------------------


def _check_size_fits(shape: tuple[int, int, int], size: int) -> None:
    if size < 1:
        raise ValueError(f"subtomogram size must be >= 1, got {size}")
    if any(size > s for s in shape):
        raise ValueError(
            f"subtomogram size {size} does not fit in a volume of shape {shape} (z, y, x): "
            f"choose a size <= {min(shape)} or pad the volume"
        )


def sample_subtomogram_positions(
    volume_shape: Sequence[int],
    size: int,
    n: int,
    rng: np.random.Generator,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Random corners ``(z, y, x)`` of ``n`` cubes of edge ``size`` inside the volume.

    With ``mask`` (bool, the volume's shape) only cubes whose centre voxel
    (corner + ``size // 2``) lies in the mask are drawn. Draws are independent
    (with replacement) and depend only on ``rng``'s state, so a seeded
    generator reproduces them. If no admissible centre lies in the mask a
    warning is issued and positions are drawn uniformly.

    Returns an int64 array of shape ``(n, 3)``. Raises ``ValueError`` when
    ``size`` exceeds the volume along any axis.
    """
    shape = _shape3(volume_shape, "volume_shape")
    size, n = int(size), int(n)
    _check_size_fits(shape, size)
    if n < 0:
        raise ValueError(f"number of subtomograms must be >= 0, got {n}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    span = np.array([s - size + 1 for s in shape], dtype=np.int64)  # admissible corners per axis
    if n == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if mask is None:
        return rng.integers(0, span, size=(n, 3), dtype=np.int64)

    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} differs from volume shape {shape}")
    h = size // 2
    centres = mask[h : h + span[0], h : h + span[1], h : h + span[2]].astype(bool, copy=False)
    count = int(np.count_nonzero(centres))
    if count == 0:
        warnings.warn(
            "foreground mask has no admissible subtomogram centre; sampling uniformly",
            RuntimeWarning,
            stacklevel=2,
        )
        return rng.integers(0, span, size=(n, 3), dtype=np.int64)
    fraction = count / centres.size
    if fraction >= 0.02:
        # Rejection sampling: no index list of the whole volume in memory.
        found: list[np.ndarray] = []
        have = 0
        while have < n:
            draw = rng.integers(0, span, size=(max(64, int(2 * (n - have) / fraction)), 3), dtype=np.int64)
            ok = draw[centres[draw[:, 0], draw[:, 1], draw[:, 2]]]
            found.append(ok)
            have += len(ok)
        return np.concatenate(found)[:n]
    flat = np.flatnonzero(centres)
    pick = flat[rng.integers(0, len(flat), size=n)]
    return np.stack(np.unravel_index(pick, centres.shape), axis=1).astype(np.int64)


def extract_subtomograms(volume: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """Cut cubes of edge ``size`` at corner ``positions`` (``(n, 3)``, z, y, x).

    Works on any numeric array, memory-mapped ones included (only the cubes
    are read). Returns float32 of shape ``(n, size, size, size)``.
    """
    shape = _shape3(volume.shape)
    _check_numeric(volume)
    size = int(size)
    _check_size_fits(shape, size)
    positions = np.asarray(positions)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape (n, 3), got {positions.shape}")
    positions = positions.astype(np.int64)
    limit = np.array(shape) - size
    bad = np.any((positions < 0) | (positions > limit), axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"subtomogram {i} at corner {tuple(positions[i])} with size {size} leaves volume of shape {shape}"
        )
    out = np.empty((len(positions), size, size, size), dtype=np.float32)
    for i, (z, y, x) in enumerate(positions):
        out[i] = volume[z : z + size, y : y + size, x : x + size]
    return out


# ----------------------------------------------------------------------------
# Tiles and blend weights
# ----------------------------------------------------------------------------


def tile_starts(length: int, tile: int, overlap: int) -> np.ndarray:
    """Start indices of tiles of ``tile`` voxels covering ``[0, length)``.

    Tiles are spread evenly, first at 0 and last ending at ``length``; adjacent
    tiles overlap by at least ``overlap`` voxels. An axis shorter than ``tile``
    gets a single tile at 0 (to be clipped or padded by the caller).
    """
    length, tile, overlap = int(length), int(tile), int(overlap)
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    if length <= tile:
        return np.zeros(1, dtype=np.int64)
    count = math.ceil((length - overlap) / (tile - overlap))
    count = max(count, 2)
    return np.round(np.linspace(0, length - tile, count)).astype(np.int64)


def tile_grid(
    volume_shape: Sequence[int],
    tile: int | Sequence[int],
    overlap: int | Sequence[int],
) -> list[tuple[slice, slice, slice]]:
    """Overlapping tiles covering every voxel of a ``(z, y, x)`` volume.

    ``tile`` and ``overlap`` are ints or per-axis triples. Tiles have the full
    edge ``tile`` except along an axis shorter than ``tile``, where the single
    tile is the whole axis. Ordered by z, then y, then x start.
    """
    shape = _shape3(volume_shape, "volume_shape")
    tiles = _as_int3(tile, "tile")
    overlaps = _as_int3(overlap, "overlap")
    axes = []
    for n, t, o in zip(shape, tiles, overlaps):
        axes.append([slice(int(s), int(min(s + t, n))) for s in tile_starts(n, t, o)])
    return [(sz, sy, sx) for sz in axes[0] for sy in axes[1] for sx in axes[2]]


#: Weight of the outermost voxels of a tile (its dead zone): tiny but positive.
DEAD_ZONE_WEIGHT = 1e-3


def blend_ramp(tile: int, overlap: int, dead_zone: int | None = None) -> np.ndarray:
    """1D blend weight over a tile of ``tile`` voxels; strictly positive, symmetric.

    Each end has a rising ramp over ``overlap`` voxels: the first ``dead_zone``
    voxels (default ``overlap // 4``) get the tiny weight
    :data:`DEAD_ZONE_WEIGHT`, which all but discards the predictions a network
    makes next to the tile's edge (where its zero padding shows); the next
    ``overlap - 2 * dead_zone`` voxels rise as a raised cosine
    ``sin^2(pi (j + 1/2) / (2 n))``; the rest is 1. Two tiles overlapping by
    exactly ``overlap`` voxels therefore hand over smoothly, in the middle of
    the overlap, with weights summing to 1 (to within the dead-zone weight).
    """
    tile, overlap = int(tile), int(overlap)
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    o = min(overlap, tile // 2)
    dead = o // 4 if dead_zone is None else int(dead_zone)
    if not 0 <= 2 * dead <= o:
        raise ValueError(f"dead_zone must satisfy 0 <= 2 * dead_zone <= overlap ({o}), got {dead_zone}")
    w = np.ones(tile, dtype=np.float64)
    if o > 0:
        rise = o - 2 * dead
        ramp = np.ones(o, dtype=np.float64)
        ramp[:dead] = DEAD_ZONE_WEIGHT
        if rise > 0:
            ramp[dead : dead + rise] = np.sin(0.5 * np.pi * (np.arange(rise) + 0.5) / rise) ** 2
        ramp = np.maximum(ramp, DEAD_ZONE_WEIGHT)
        w[:o] = ramp
        w[tile - o :] = np.minimum(w[tile - o :], ramp[::-1])
    return w.astype(np.float32)


def blend_window(tile: int | Sequence[int], overlap: int | Sequence[int]) -> np.ndarray:
    """Separable 3D blend weight of shape ``tile`` (int -> cube), float32, > 0."""
    tiles = _as_int3(tile, "tile")
    overlaps = _as_int3(overlap, "overlap")
    wz, wy, wx = (blend_ramp(t, o) for t, o in zip(tiles, overlaps))
    return wz[:, None, None] * wy[None, :, None] * wx[None, None, :]
