"""Solvent flattening: the missing wedge of an isolated object, filled again under its support.

An object alone in its box (a particle, a virus, a phantom) is known
outside its support: there the density is the solvent's, flat. With the
measured region known too, the missing wedge is what remains, and
alternating the two constraints (the projections onto convex sets of
Gerchberg and Papoulis, as in missing-cone restoration of electron
tomograms) fills it with what agrees with both. Each iteration sets the
result outside the support to the solvent's level, transforms it, and puts
the measured region back (the soft mask's share ``T`` from the result, ``1 - T``
from the flattened copy). The support is taken from the result itself and
shrinks with it, as in the shrink-wrap of phase retrieval: every
:data:`SOLVENT_REFRESH` iterations it is the voxels whose smoothed density departs from
the solvent's level by more than :data:`SOLVENT_THRESHOLD` of the largest departure,
grown by :data:`SOLVENT_DILATE` voxels.

The constraint is only as true as its premises, so the pass runs only where
they hold: the result's measured region is the data's own (a tomogram without
noise to speak of, which the fusion returns exactly), and the support covers at
most :data:`SOLVENT_MAX_FRACTION` of the box. A crowded tomogram, or a noisy one, is left as it is.
And its result is kept only where the data agree with it: where a flat solvent
outside the final support explains the measured region to within
:data:`SOLVENT_MAX_RESIDUAL` (the disagreement's rms over the measured data's, the
mean left out). Where the two constraints meet, the alternating projections
converge and the disagreement falls towards 0; where no flat solvent fits the
data, it stays. Started from the paper's phantoms (their tomograms or the
model's results) it ends at 0.0006-0.015; from a real particle's map, even the
truth itself with the wedge's data, at 0.07 (GroEL) to 0.16 (beta-galactosidase).

On the paper's noise-free shapes (``benchmarks/versus.py --scenes sphere prism``,
docs/benchmarks), applied to the finished result of one saved model per scene:
the prism 25.06 -> 34.00 dB, SSIM 0.303 -> 0.986; the hollow sphere 33.67 -> 39.41 dB.
Kept regardless of the disagreement it would do harm on a real particle: on the
beta-galactosidase map (``--scenes betagal``, no noise) it cost 7.8 dB, because a
real map's solvent is not flat and its faint density lies outside any support a
threshold draws. The disagreement check leaves such a map as it is.

Pure numpy (``scipy.fft``, ``scipy.ndimage``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import fft as _fft
from scipy import ndimage

from ..wedge import WedgeGeometry, wedge_mask

__all__ = [
    "SOLVENT_DILATE",
    "SOLVENT_ITERATIONS",
    "SOLVENT_MAX_FRACTION",
    "SOLVENT_MAX_RESIDUAL",
    "SOLVENT_REFRESH",
    "SOLVENT_SMOOTH",
    "SOLVENT_THRESHOLD",
    "Flattening",
    "flatten_solvent",
    "object_support",
]

#: The support: voxels whose smoothed density departs from the solvent's level by more than this
#: fraction of the largest departure (on the paper's prism, 0.1 kept every voxel of the object).
SOLVENT_THRESHOLD = 0.1

#: The Gaussian smoothing (sigma, voxels) before the threshold.
SOLVENT_SMOOTH = 1.0

#: Voxels the thresholded support is grown by.
SOLVENT_DILATE = 1

#: Alternating projections (the wedge's filling still improved from 100 to 300 on the prism).
SOLVENT_ITERATIONS = 300

#: The support is measured again on the current estimate every this many iterations.
SOLVENT_REFRESH = 10

#: The largest share of the box the support may cover: beyond it there is too little solvent to
#: constrain anything, and the volume is crowded rather than an isolated object.
SOLVENT_MAX_FRACTION = 0.5

#: The largest disagreement (rms, relative to the measured data's) between a flat solvent outside the
#: support and the measured region at which the flattening is kept: the phantoms end at 0.015 or below,
#: real particles' maps at 0.07 or above (module docstring).
SOLVENT_MAX_RESIDUAL = 0.03


class Flattening(NamedTuple):
    """What :func:`flatten_solvent` did: ``support``, the share of the box the final support covers
    (0.0: not run); ``residual``, the disagreement of a flat solvent with the measured data (nan: not
    run); ``kept``, whether the flattened volume replaced the input."""

    support: float = 0.0
    residual: float = math.nan
    kept: bool = False

    @property
    def ran(self) -> bool:
        """Whether the projections ran (kept or not)."""
        return self.support > 0

    def summary(self) -> str:
        """Its words in a status line ("" when it did not run)."""
        if self.kept:
            return f", solvent flattened ({self.support:.0%} support)"
        return f", solvent left as it was (a flat solvent misses the data by {self.residual:.1%})" if self.ran else ""

    def record(self) -> dict[str, float | None]:
        """For provenance: the support's share where kept (else 0) and the disagreement (None: not run)."""
        return {"solvent_support": round(self.support, 4) if self.kept else 0.0,
                "solvent_residual": round(self.residual, 4) if self.ran else None}


def object_support(volume: np.ndarray, *, threshold: float = SOLVENT_THRESHOLD, smooth: float = SOLVENT_SMOOTH,
                   dilate: int = SOLVENT_DILATE) -> tuple[np.ndarray, float]:
    """The object's support in ``volume`` (a boolean mask) and the solvent's level (the median outside it).

    The level is first the volume's median; the support is where the volume
    smoothed by ``smooth`` departs from it by more than ``threshold`` of the
    largest departure, grown by ``dilate`` voxels. An empty support for a flat volume."""
    volume = np.asarray(volume, dtype=np.float32)
    level = float(np.median(volume))
    departure = np.abs(ndimage.gaussian_filter(volume, smooth) - level)
    top = float(departure.max()) if departure.size else 0.0
    if not top > 0:
        return np.zeros(volume.shape, dtype=bool), level
    support = departure > threshold * top
    if dilate > 0:
        support = ndimage.binary_dilation(support, iterations=int(dilate))
    outside = volume[~support]
    return support, float(np.median(outside)) if outside.size else level


def flatten_solvent(mean: np.ndarray, geometry: WedgeGeometry, *, iterations: int = SOLVENT_ITERATIONS,
                    refresh: int = SOLVENT_REFRESH, max_fraction: float = SOLVENT_MAX_FRACTION,
                    max_residual: float = SOLVENT_MAX_RESIDUAL,
                    stop: Callable[[], bool] | None = None) -> Flattening | None:
    """Fill ``mean``'s missing wedge again under its object's support (in place; module docstring).

    ``mean``'s measured region is kept as it is (the wedge mask's share ``T``).
    The flattened volume replaces ``mean`` only where a flat solvent outside the
    final support disagrees with the measured region by at most ``max_residual``.
    Returns a :class:`Flattening`; one that did not run when the support covers
    more than ``max_fraction`` of the box, or nothing (a flat volume). ``stop`` is
    asked before every iteration; when it returns True, ``mean`` is left as it was
    and None is returned."""
    if mean.ndim != 3:
        raise ValueError(f"solvent flattening needs a 3D volume, got shape {mean.shape}")
    if iterations < 1 or refresh < 1:
        raise ValueError(f"iterations and refresh must be at least 1, got {iterations} and {refresh}")
    shape = tuple(int(s) for s in mean.shape)
    support, level = object_support(mean)
    fraction = float(support.mean())
    if not 0 < fraction <= max_fraction:
        return Flattening()
    measured = np.asarray(wedge_mask(shape, geometry), dtype=np.float32)
    kept = measured * _fft.rfftn(np.asarray(mean, dtype=np.float32))  # the measured region, as it stays
    missing = 1.0 - measured
    x = np.asarray(mean, dtype=np.float32)
    for it in range(int(iterations)):
        if stop is not None and stop():
            return None
        if it and it % refresh == 0:
            support, level = object_support(x)
            if not support.any() or support.mean() > max_fraction:
                break
        x = _fft.irfftn(kept + missing * _fft.rfftn(np.where(support, x, np.float32(level))), s=shape)
    flat = measured * _fft.rfftn(np.where(support, x, np.float32(level)))
    power = float(np.sum(np.abs(kept) ** 2)) - float(abs(kept.flat[0]) ** 2)  # the mean left out: the level sets it
    residual = float(np.sqrt(np.sum(np.abs(flat - kept) ** 2) / max(power, 1e-30)))
    keep = residual <= max_residual
    if keep:
        mean[...] = x
    return Flattening(float(support.mean()), residual, keep)
