"""Measured-region fusion: the data back where they are more reliable than the prediction.

Inside the measured region a tomogram ``y = x + n`` holds its own estimate
of every Fourier coefficient, with the noise's variance ``sigma^2``; the
generator's prediction ``g`` holds another, with an error of variance
``tau^2``. The posterior mean of the two, with a Gaussian prior around ``g``
(CryoGEN-I's data term ``|T x - y|^2 / (2 sigma^2)`` against a quadratic in
``x - g``), is per coefficient

    x = g + T w (y - g),    w = tau^2 / (tau^2 + sigma^2),

and leaves the missing wedge (``T = 0``) as the generator filled it. Both
variances are read off the volume, shell by shell: ``sigma^2`` from the
noise estimate (:func:`~napari_dewedge.core.training.noise.estimate_noise`
on cubes of the volume) and ``tau^2`` as what the measured residual
``|y - g|^2`` holds beyond it. Where the data are noise-free (``w = 1``),
the measured region is restored exactly; where noise dominates a shell
(``w`` near 0) the prediction stays.

Pure numpy (``scipy.fft``); the caller runs the generator (:func:`.run.run_inference`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import fft as _fft

from ..wedge import WedgeGeometry, measured_fraction, wedge_mask
from .calibration import shell_index
from .coarse import COARSE_MAX_VOXELS

__all__ = [
    "FUSION_MAX_VOXELS",
    "fuse_measured",
    "fusion_weights",
    "measured_noise_power",
    "volume_noise",
    "volume_noise_power",
]

#: Volumes larger than this are left without the fusion (its FFTs hold the whole volume in memory,
#: as the coarse pass's do).
FUSION_MAX_VOXELS = COARSE_MAX_VOXELS

#: Shells with fewer measured coefficients than this are merged with the next one (stable estimates).
_MIN_COEFFICIENTS = 64


def volume_noise(volume: Any, geometry: WedgeGeometry, *, cube: int = 32, cubes: int = 48,
                 seed: int = 0) -> tuple[Any, float]:
    """The noise of ``volume`` (in its units) and the measured fraction it was estimated at.

    :func:`~napari_dewedge.core.training.noise.tomogram_noise` on ``cubes``
    cubes of edge ``cube`` at seeded random positions (the white level bounded by the whole
    volume's); returns the
    :class:`~napari_dewedge.core.training.noise.NoiseEstimate` and the
    measured fraction of Fourier space of those cubes.
    """
    from ..training.noise import tomogram_noise
    from ..training.sampling import epoch_pool, extract_subtomograms

    shape = tuple(int(s) for s in np.shape(volume))
    size = int(min(cube, *shape))
    pos, _ = epoch_pool(shape, size, cubes, [int(seed), 7919], order=False)
    est = tomogram_noise(volume, extract_subtomograms(volume, pos, size), geometry)
    return est, max(measured_fraction((size,) * 3, geometry), 1e-6)


def volume_noise_power(volume: Any, geometry: WedgeGeometry, *, cube: int = 32, cubes: int = 48,
                       seed: int = 0) -> float:
    """Noise variance per voxel inside the measured region of ``volume`` (its units squared):
    :func:`measured_noise_power` of :func:`volume_noise`, or 0 for a volume without noise to speak
    of (:func:`~.reliability.noisy_enough` of the volume's central crop with the whole estimate,
    white and wedge-filtered). There the estimate is the
    estimator's floor, not noise, and the data are restored exactly where they were measured (on
    the paper's noise-free sphere the floor kept the measured-region FSC-AUC at 0.997 where the
    data hold 1; docs/benchmarks)."""
    from .calibration import calibration_crop
    from .reliability import noisy_enough

    estimate, measured = volume_noise(volume, geometry, cube=cube, cubes=cubes, seed=seed)
    if not noisy_enough(volume[calibration_crop(tuple(int(s) for s in np.shape(volume)))], estimate.total_std):
        return 0.0
    return measured_noise_power(estimate, measured)


def measured_noise_power(estimate: Any, measured: float) -> float:
    """Noise variance per voxel inside the measured region from a :func:`volume_noise` estimate
    and its measured fraction: the white part plus the wedge-filtered part, whose power lies
    wholly in that fraction of Fourier space."""
    return float(estimate.white_std**2 + estimate.wedge_std**2 / measured)


def fusion_weights(residual_power: np.ndarray, shells: np.ndarray, measured: np.ndarray,
                   noise_power: float) -> np.ndarray:
    """Data weight ``w = tau^2 / (tau^2 + sigma^2)`` per shell (indexed by shell number).

    ``residual_power`` is ``|y - g|^2`` per coefficient and ``noise_power``
    ``sigma^2`` on the same scale; shells with too few measured coefficients
    share the estimate of the next shells until they have enough.
    """
    nbins = int(shells.max()) + 1
    sel = measured > 0.5
    counts = np.bincount(shells[sel], minlength=nbins).astype(np.float64)
    sums = np.bincount(shells[sel], weights=residual_power[sel], minlength=nbins)
    weights = np.zeros(nbins)
    start = 0
    while start < nbins:  # merge shells outward until each group holds enough coefficients
        stop, n, s = start, 0.0, 0.0
        while stop < nbins and (n < _MIN_COEFFICIENTS or stop == start):
            n, s, stop = n + counts[stop], s + sums[stop], stop + 1
        if n > 0:
            tau2 = max(s / n - noise_power, 0.0)
            weights[start:stop] = tau2 / (tau2 + noise_power) if tau2 + noise_power > 0 else 1.0
        start = stop
    return weights


def fuse_measured(prediction: np.ndarray, volume: Any, geometry: WedgeGeometry,
                  noise_power: float) -> np.ndarray:
    """``prediction`` with its measured region fused with ``volume``'s, in place.

    ``noise_power`` is the noise variance per voxel of ``volume`` in its
    measured region (:func:`volume_noise_power`). Returns ``prediction``.
    """
    shape = tuple(int(s) for s in prediction.shape)
    if tuple(np.shape(volume)) != shape:
        raise ValueError(f"the volume has shape {tuple(np.shape(volume))}, the prediction {shape}")
    if not (np.isfinite(noise_power) and noise_power >= 0):
        raise ValueError(f"noise_power must be a finite number >= 0, got {noise_power!r}")
    measured = np.broadcast_to(np.asarray(wedge_mask(shape, geometry), dtype=np.float32),
                               (shape[0], shape[1], shape[2] // 2 + 1))
    if not measured.any():
        return prediction
    spectrum = _fft.rfftn(np.asarray(prediction, dtype=np.float32))
    diff = _fft.rfftn(np.asarray(volume, dtype=np.float32))
    diff -= spectrum
    shells = shell_index(shape, edge=2 * min(shape))  # bins of 1 / min(shape): the finest common width
    # unnormalised FFT: white noise of variance s^2 per voxel has power s^2 * N per coefficient
    power = float(noise_power) * float(np.prod(shape))
    weights = fusion_weights(np.abs(diff) ** 2, shells, measured, power).astype(np.float32)
    diff *= weights[shells]
    diff *= measured
    spectrum += diff
    prediction[...] = _fft.irfftn(spectrum, s=shape)
    return prediction
