"""Tile plan for inference: overlapping tiles, blend weights, padding by reflection.

The (virtually, reflectively padded) tomogram is cut into overlapping tiles
(:func:`tile_grid`, :func:`plan_tiles`) whose predictions are blended with a
smooth, strictly positive, separable weight (:func:`blend_window`) that all but
ignores the outermost voxels of each tile, where a network's zero padding
shows. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..training.sampling import _shape3

__all__ = [
    "DEAD_ZONE_WEIGHT",
    "TilePlan",
    "blend_ramp",
    "blend_window",
    "default_overlap",
    "default_tile",
    "plan_tiles",
    "tile_grid",
    "tile_starts",
]


def _as_int3(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * 3  # type: ignore[return-value]
    values = tuple(int(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"{name} must be an int or three ints (z, y, x), got {value!r}")
    return values  # type: ignore[return-value]



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


# ----------------------------------------------------------------------------
# Tile plan: padding, tile sizes, starts and normalised blend factors per axis
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _AxisPlan:
    length: int  # voxels of the volume along this axis
    tile: int
    overlap: int
    pad_before: int
    padded: int  # padded length
    starts: np.ndarray  # tile starts in padded coordinates
    factors: tuple[np.ndarray, ...]  # blend weight / weight sum, per start
    source: np.ndarray  # padded index -> volume index (reflection)


@dataclass(frozen=True)
class TilePlan:
    """How a volume is padded, tiled and blended (see :func:`plan_tiles`)."""

    shape: tuple[int, int, int]
    axes: tuple[_AxisPlan, _AxisPlan, _AxisPlan]
    order: list[tuple[int, int, int]] = field(repr=False)

    @property
    def tile(self) -> tuple[int, int, int]:
        return tuple(a.tile for a in self.axes)  # type: ignore[return-value]

    @property
    def overlap(self) -> tuple[int, int, int]:
        return tuple(a.overlap for a in self.axes)  # type: ignore[return-value]

    @property
    def padded_shape(self) -> tuple[int, int, int]:
        return tuple(a.padded for a in self.axes)  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.order)


def _reflect_indices(first: int, count: int, n: int) -> np.ndarray:
    """Volume indices of positions ``first .. first+count-1`` (may be outside
    ``[0, n)``) under reflection without edge repeat (numpy's ``reflect``)."""
    i = np.arange(first, first + count, dtype=np.int64)
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    i = np.mod(i, period)
    return np.where(i > n - 1, period - i, i)


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def _plan_axis(n: int, tile: int, overlap: int, multiple: int, min_size: int) -> _AxisPlan:
    margin = overlap // 2
    padded = n + 2 * margin
    t = max(min_size, min(tile, _round_up(padded, multiple)))
    extra = max(0, t - padded)
    pad_before = margin + extra // 2
    padded = max(padded, t)
    o = min(overlap, t - 1)
    starts = tile_starts(padded, t, o)
    ramp = blend_ramp(t, o).astype(np.float64)
    total = np.zeros(padded, dtype=np.float64)
    for s in starts:
        total[s : s + t] += ramp
    factors = tuple((ramp / total[s : s + t]).astype(np.float32) for s in starts)
    source = _reflect_indices(-pad_before, padded, n)
    return _AxisPlan(n, t, o, pad_before, padded, starts, factors, source)


#: The smallest default tile edge. The overlap of two tiles is work done twice, so at a
#: given overlap a larger tile wastes less: 128^3 tiles at the quick preset's overlap of
#: 16 voxels take 0.75 times the time of 64^3 ones on a 96x256x256 tomogram (docs/benchmarks).
MIN_DEFAULT_TILE = 128


def default_tile(model: Any) -> int:
    """Twice the model's subtomogram size, at least :data:`MIN_DEFAULT_TILE`, rounded up to its padding multiple."""
    multiple = int(getattr(model.generator, "padding_multiple", 1) or 1)
    return _round_up(max(2 * int(model.subtomo_size), MIN_DEFAULT_TILE), multiple)


def default_overlap(model: Any) -> int:
    """Half the model's subtomogram size: the overlap of two default tiles."""
    return max(1, int(model.subtomo_size) // 2)


def plan_tiles(
    shape: Sequence[int],
    tile: int,
    overlap: int,
    multiple: int = 1,
    min_size: int = 1,
) -> TilePlan:
    """Plan the tiles for a volume of ``shape``.

    ``tile`` is rounded up to ``multiple`` (the network's padding multiple).
    Along an axis shorter than a tile (after the context margin of
    ``overlap // 2`` on both sides) the tile shrinks to the padded axis length
    rounded up to ``multiple`` (and at least ``min_size``, the smallest input
    the network accepts), so small volumes cost little.
    """
    shape3 = tuple(int(s) for s in shape)
    if len(shape3) != 3 or min(shape3) < 1:
        raise ValueError(f"volume must be 3D (z, y, x) and non-empty, got shape {tuple(shape)}")
    multiple = max(1, int(multiple))
    tile = int(tile)
    if tile < 1:
        raise ValueError(f"tile must be a positive number of voxels, got {tile}")
    min_size = _round_up(max(1, int(min_size)), multiple)
    tile = max(_round_up(tile, multiple), min_size)
    overlap = int(overlap)
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    axes = tuple(_plan_axis(n, tile, overlap, multiple, min_size) for n in shape3)
    order = [
        (i, j, k) for i in range(len(axes[0].starts)) for j in range(len(axes[1].starts)) for k in range(len(axes[2].starts))
    ]
    return TilePlan(shape3, axes, order)  # type: ignore[arg-type]


def _read_tile(volume: np.ndarray, plan: TilePlan, index: tuple[int, int, int]) -> np.ndarray:
    """One padded tile as float32 (only its bounding box of the volume is read)."""
    idx = []
    box = []
    for a, i in zip(plan.axes, index):
        s = int(a.starts[i])
        src = a.source[s : s + a.tile]
        lo, hi = int(src.min()), int(src.max()) + 1
        idx.append(src - lo)
        box.append(slice(lo, hi))
    block = np.asarray(volume[tuple(box)], dtype=np.float32)
    if all(len(ix) == b.stop - b.start and (len(ix) < 2 or (np.diff(ix) == 1).all()) for ix, b in zip(idx, box)):
        return block
    return block[np.ix_(*idx)]
