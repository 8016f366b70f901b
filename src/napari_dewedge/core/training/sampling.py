"""Subtomogram sampling for training.

Training draws cubic subtomograms from the tomogram, preferably from regions
that hold something (:func:`foreground_mask`, IsoNet-style, from local mean and
local standard deviation), via :func:`sample_subtomogram_positions` and
:func:`extract_subtomograms`; :func:`plan_subtomo_size` fits the subtomogram
size to thin tomograms, and :func:`volume_stats` gives the normalisation.

Everything works on ``(z, y, x)`` arrays of any numeric dtype, including
read-only ``np.memmap`` inputs: large volumes are processed in z-slabs so that
no full-size float copy is made. numpy and scipy only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "foreground_mask",
    "local_statistics",
    "sample_subtomogram_positions",
    "extract_subtomograms",
    "epoch_pool",
    "plan_subtomo_size",
    "fit_volume",
    "check_training_volume",
    "volume_stats",
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
# Subtomogram size and normalisation
# ----------------------------------------------------------------------------


def plan_subtomo_size(volume_shape: tuple[int, ...], requested: int, multiple: int, min_size: int) -> tuple[int, tuple[int, int, int]]:
    """Subtomogram size for a tomogram of ``volume_shape`` and the shape to pad it to.

    The size is ``requested`` when it fits, else the largest multiple of
    ``multiple`` that fits along every axis; if that is below ``min_size`` the
    size is ``min_size`` and the tomogram must be padded (by reflection) to at
    least that along every axis. Returns ``(size, padded_shape)``.
    """
    shape = tuple(int(s) for s in volume_shape)
    fit = (min(shape) // multiple) * multiple
    if fit >= min_size:
        return min(int(requested), fit), shape  # type: ignore[return-value]
    size = max(int(min_size), multiple)
    return size, tuple(max(s, size) for s in shape)  # type: ignore[return-value]


def volume_stats(volume: np.ndarray, name: str = "volume") -> tuple[float, float]:
    """Mean and standard deviation in float64, slab by slab; checks for NaN/inf and constant input."""
    total = 0.0
    total_sq = 0.0
    count = 0
    nz = volume.shape[0]
    step = max(1, (1 << 24) // max(1, volume.shape[1] * volume.shape[2]))
    probe = float(np.asarray(volume[: min(nz, 4)], dtype=np.float64).mean())
    for z0 in range(0, nz, step):
        slab = np.asarray(volume[z0 : z0 + step], dtype=np.float64) - probe
        if not np.isfinite(slab).all():
            raise ValueError(f"{name} contains NaN or infinite values (first in z-slab {z0}..{z0 + len(slab)})")
        total += float(slab.sum())
        total_sq += float(np.square(slab).sum())
        count += slab.size
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    std = math.sqrt(var)
    if not std > 1e-12 * max(1.0, abs(mean + probe)):
        raise ValueError(f"{name} is constant (value {mean + probe:g}): nothing to learn from")
    return mean + probe, std


def check_training_volume(volume: Any) -> np.ndarray:
    """``volume`` as an array (memory maps kept) after checking that it can be trained on."""
    if not hasattr(volume, "shape") or not hasattr(volume, "dtype"):
        volume = np.asarray(volume)
    if len(volume.shape) != 3:
        raise ValueError(f"volume must be 3D (z, y, x), got shape {tuple(volume.shape)}")
    if np.dtype(volume.dtype).kind not in "biuf":
        raise ValueError(f"volume must hold real numbers, got dtype {volume.dtype}")
    if min(volume.shape) < 2:
        raise ValueError(f"volume of shape {tuple(volume.shape)} is too small to train on")
    return volume


def _shape_text(shape: Sequence[int]) -> str:
    return " x ".join(str(s) for s in shape)


def fit_volume(volume: np.ndarray, requested: int, multiple: int, min_size: int) -> tuple[np.ndarray, int, list[str]]:
    """The volume to train on, the subtomogram size and notes on what was changed.

    Applies :func:`plan_subtomo_size`: a tomogram thinner than the smallest
    subtomogram is padded by reflection (as float32), otherwise the size may
    be reduced to fit.
    """
    shape = tuple(int(s) for s in volume.shape)
    size, padded = plan_subtomo_size(shape, requested, multiple, min_size)
    notes: list[str] = []
    if padded != shape:
        pads = [(0, p - s) for s, p in zip(shape, padded)]
        volume = np.pad(np.asarray(volume, dtype=np.float32), pads, mode="symmetric")
        notes.append(
            f"tomogram {_shape_text(shape)} is thinner than the smallest subtomogram "
            f"({size}); padded by reflection to {_shape_text(padded)}"
        )
    elif size != requested:
        notes.append(
            f"subtomogram size reduced from {requested} to {size} to fit the tomogram "
            f"{_shape_text(shape)}"
        )
    return volume, size, notes


def epoch_pool(
    volume_shape: Sequence[int], size: int, n: int, seed: Any, *, mask: np.ndarray | None = None, order: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """``n`` corners of cubes of edge ``size`` drawn with ``np.random.default_rng(seed)``, and
    (with ``order``) a random permutation of them from the same generator, drawn after them."""
    rng = np.random.default_rng(seed)
    positions = sample_subtomogram_positions(tuple(volume_shape), size, n, rng, mask=mask)
    return positions, (rng.permutation(n) if order else None)


# --------------------------------------------------------------------------------------
# Several tomograms
# --------------------------------------------------------------------------------------


@dataclass
class TrainingSource:
    """One tomogram of a training run, as the trainer keeps it.

    ``volume`` (and ``even``/``odd``, ``user_mask``) are padded alike when the
    tomogram is thinner than a subtomogram; ``normalization`` holds the
    tomogram's own mean and std; ``mask`` the centres subtomograms may be
    drawn around (the user's mask, else the automatic foreground, else None);
    ``noise``/``noise_model`` its own noise estimate and the settings resolved
    from it, filled in when the run starts.
    """

    name: str
    volume: Any
    geometry: Any
    normalization: dict[str, float]
    shape: tuple[int, int, int]
    voxel_size: Any = None
    even: Any = None
    odd: Any = None
    user_mask: Any = None
    mask: np.ndarray | None = None
    noise: Any = None
    noise_model: dict[str, float] | None = None
    measured: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def usable(self) -> int:
        """Voxels subtomograms may be centred on: the weight of this tomogram in a pool."""
        mask = self.user_mask if self.user_mask is not None else self.mask
        return int(np.count_nonzero(mask)) if mask is not None else int(math.prod(self.volume.shape))

    def record(self) -> dict[str, Any]:
        """Plain data kept in the model: name, shape, wedge, statistics, noise, voxel size."""
        out: dict[str, Any] = {
            "name": self.name,
            "shape": [int(s) for s in self.shape],
            "wedge": self.geometry.to_dict(),
            "normalization": dict(self.normalization),
            "halves": self.even is not None,
            "mask": self.user_mask is not None,
        }
        if self.voxel_size is not None:
            out["voxel_size"] = [float(v) for v in np.broadcast_to(np.asarray(self.voxel_size, float), (3,))]
        if self.noise is not None:
            out["noise_estimate"] = self.noise.to_dict()
        if self.noise_model is not None:
            out["sigma_n_used"] = self.noise_model["sigma_n"]
            out["noise_scale_used"] = self.noise_model["noise_scale"]
        return out


def pool_counts(usable: Sequence[int], n: int) -> list[int]:
    """Split ``n`` subtomograms over tomograms in proportion to their usable volume
    (largest remainders; every tomogram gets at least one when ``n`` allows)."""
    total = float(sum(usable))
    if not usable:
        return []
    if total <= 0:
        usable, total = [1] * len(usable), float(len(usable))
    exact = [n * u / total for u in usable]
    counts = [int(math.floor(e)) for e in exact]
    order = sorted(range(len(usable)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(usable):
        for i, c in enumerate(counts):
            if c == 0:
                donor = max(range(len(counts)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] = 1
    return counts


def dataset_pool(sources: Sequence[TrainingSource], size: int, n: int, seed: Any, batch: int,
                 steps: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """An epoch's pool over several tomograms.

    Returns the corners per source (``pool_counts`` of them, drawn with
    ``[seed..., index]``), the source of each of the epoch's ``steps`` batches
    (drawn in proportion to the pool counts: a batch comes from one tomogram,
    so it shares one wedge and one noise model), and a permutation per source.
    """
    counts = pool_counts([s.usable for s in sources], n)
    positions, orders = [], []
    for index, (source, count) in enumerate(zip(sources, counts)):
        corners, order = epoch_pool(tuple(source.volume.shape), size, max(1, count), [*seed, index],
                                    mask=source.mask)
        positions.append(corners)
        orders.append(order)
    weights = np.asarray(counts, float)
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(counts), 1.0 / len(counts))
    rng = np.random.default_rng([*seed, len(sources)])
    which = rng.choice(len(sources), size=max(1, steps), p=weights)
    return positions, which, orders
