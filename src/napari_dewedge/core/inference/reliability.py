"""Wedge reliability: how much of the generator's filling to keep, measured on recorrupted halves.

The wedge gains (:mod:`.calibration`) scale the filling shell by shell to
the data of a rotated copy of the volume. That copy poses an easier problem
than the volume's own wedge where the content is not isotropic: cells lie
flat in the ice, and the membranes that run across the beam, whose profiles
fill the wedge, are the ones the data show least. On the SNR 0.5 cell scene
of ``benchmarks/versus.py`` the gains kept 30-45 % of the filling at 0.4
cycles per voxel where it correlated 0.03 with the truth, and within a shell
the filling correlates far better near the wedge's edges than in its middle
(0.9 against 0.2 at a quarter cycle): one number per shell cannot say so.

The volume's noise can. Its two recorrupted halves ``y + n`` and ``y - n``,
with ``n`` drawn like the volume's own white noise, have noises that do not
correlate (``E[(e + n)(e - n)] = 0`` for ``n`` like ``e``) and ``y`` for
their mean, as the half maps of single-particle analysis have the full map.
The generator's fillings of the two halves, compared in bins of shell and of
depth into the wedge (:func:`~napari_dewedge.core.wedge.wedge_depth`),
correlate as ``c`` where the filling is made of structure both halves hold,
and not at all where it is the noise of one half turned into structure. The
filling of ``y`` is then weighted by ``sqrt(2c / (1 + c))``, the correlation
with the truth that half maps correlating as ``c`` predict for the full map
(the ``C_ref`` weighting of Rosenthal and Henderson, 2003): kept where the
halves agree, faded where they do not. On the SNR 0.5 cell scene the halves'
``c`` follows the filling's correlation with the truth bin by bin (0.90 /
0.89, 0.62 / 0.61, 0.29 / 0.26 at a quarter cycle from the wedge's edges to
its middle), and the weights lifted the missing-wedge FSC-AUC by 0.011-0.015
and SSIM by 0.012-0.016 on both cell scenes (docs/benchmarks). Volumes
without noise to speak of (:func:`noisy_enough`) are left as they are.

:func:`recorrupted_halves` draws the halves, :func:`reliability_weights`
compares two fillings, :func:`weigh_wedge` applies the weights to a
prediction (the measured region is not touched).

Pure numpy (``scipy.fft``); the caller runs the generator (:func:`.run.run_inference`).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as _fft
from scipy import ndimage

from ..training.noise import noise_free
from ..wedge import WedgeGeometry
from .calibration import scale_wedge, wedge_bins

__all__ = [
    "DEPTH_BINS",
    "SHELL_POOLING",
    "noisy_enough",
    "recorrupted_halves",
    "reliability_bins",
    "reliability_weights",
    "weigh_wedge",
]

#: Bins of depth into the missing wedge (from its edges to its middle) per shell.
DEPTH_BINS = 3

#: The sums of a bin are pooled with its neighbours' in shell (a Gaussian of this many shells):
#: alone, chance correlations of single shells drew narrow dark rings in the Fourier slices.
SHELL_POOLING = 1.0


def noisy_enough(volume: np.ndarray, noise_std: float) -> bool:
    """Whether ``volume`` holds enough noise of deviation ``noise_std`` to be weighed against (the
    weights and the second pass: its white noise; the fusion: the whole estimate): it is not
    noise-free by :func:`~napari_dewedge.core.training.noise.noise_free` (its variance at most
    ``NOISE_FREE_RATIO`` times the noise's). A noise-free volume is not weighted: there the
    estimate is the estimator's floor, and the halves measure how the generator answers noise it
    never saw (on the paper's noise-free sphere they disagreed past a third of a cycle per voxel
    where its filling was right: -0.3 dB, -0.08 wedge FSC-AUC)."""
    variance = float(np.var(np.asarray(volume, dtype=np.float64)))
    return noise_std > 0 and not noise_free(noise_std, variance)


def recorrupted_halves(volume: np.ndarray, noise_std: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(volume + n, volume - n)`` (float32), ``n`` white Gaussian noise of deviation ``noise_std``.

    ``noise_std`` is the white part of the volume's noise estimate
    (:func:`~napari_dewedge.core.inference.fusion.volume_noise`): the part read
    off the missing wedge, where only noise lives. The wedge-filtered part
    cannot be told from the structure it overlaps (on the noise-free shapes
    of ``benchmarks/paper_shapes.py`` it read 0.08-0.10 of a spread of
    0.13-0.14, and halves that noisy faded the sphere's good filling by
    0.37 dB); where a tomogram's noise is wedge-filtered, the weights err
    toward keeping the filling.
    """
    volume = np.asarray(volume, dtype=np.float32)
    n = np.random.default_rng(seed).standard_normal(volume.shape, dtype=np.float32) * np.float32(noise_std)
    return volume + n, volume - n


def reliability_bins(shape: tuple[int, ...], geometry: WedgeGeometry, edge: int | None = None,
                     depth_bins: int = DEPTH_BINS) -> np.ndarray:
    """Bin of every rfftn coefficient of the missing wedge: ``shell * depth_bins + depth bin``
    (:func:`~.calibration.wedge_bins` with :data:`DEPTH_BINS`), -1 in the measured region."""
    return wedge_bins(shape, geometry, edge, depth_bins)


def reliability_weights(first: np.ndarray, second: np.ndarray, geometry: WedgeGeometry,
                        depth_bins: int = DEPTH_BINS) -> np.ndarray:
    """Weight of the filling per bin of :func:`reliability_bins`: ``sqrt(2c / (1 + c))``, with
    ``c`` the correlation of ``first``'s and ``second``'s missing wedges in the bin and its
    neighbouring shells (:data:`SHELL_POOLING`; 0 when they anti-correlate, 1 where they hold
    no power)."""
    shape = tuple(int(s) for s in np.shape(first))
    if tuple(np.shape(second)) != shape:
        raise ValueError(f"the halves' predictions differ in shape: {shape} and {tuple(np.shape(second))}")
    bins = reliability_bins(shape, geometry, depth_bins=depth_bins)
    keep = bins >= 0
    key = bins[keep]
    a = _fft.rfftn(np.asarray(first, dtype=np.float32))[keep]
    b = _fft.rfftn(np.asarray(second, dtype=np.float32))[keep]
    nbins = -(-(int(bins.max()) + 1) // depth_bins) * depth_bins if keep.any() else 0

    def pooled(values: np.ndarray) -> np.ndarray:  # per bin, smoothed over neighbouring shells
        sums = np.bincount(key, weights=values, minlength=nbins).reshape(-1, depth_bins)
        return ndimage.gaussian_filter1d(sums, SHELL_POOLING, axis=0, mode="nearest").ravel()

    cross = pooled(a.real * b.real + a.imag * b.imag)
    power = np.sqrt(pooled(np.abs(a) ** 2) * pooled(np.abs(b) ** 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(power > 0, np.clip(cross / power, 0.0, 1.0), 1.0)
    return np.sqrt(2.0 * c / (1.0 + c))


def weigh_wedge(prediction: np.ndarray, geometry: WedgeGeometry, weights: np.ndarray, edge: int | None = None,
                depth_bins: int = DEPTH_BINS) -> np.ndarray:
    """``prediction`` with its missing wedge multiplied by ``weights`` (per bin of
    :func:`reliability_bins`, measured on a volume of smallest edge ``edge``), in place;
    bins beyond them keep their amplitude (:func:`~.calibration.scale_wedge`)."""
    return scale_wedge(prediction, geometry, weights, edge, depth_bins)
