"""Quality measures for reconstructions: PSNR, SSIM, Fourier shell correlation
(FSC), FSC restricted to the missing wedge, directional (conical) FSC and a
reference-free spectral anisotropy.

Volumes are ``(z, y, x)`` arrays (numpy arrays or memory maps); they are read
as float64 (PSNR, SSIM) or in their own floating precision (float32 stays
float32 in the Fourier measures, which halves the memory for big tomograms).
Non-cubic volumes are fine everywhere: Fourier radii are measured in cycles per
voxel along each axis (``numpy.fft.fftfreq``), so a shell is a sphere in
physical frequency whatever the box.

Conventions
-----------
PSNR
    ``10 log10(I_m^2 / MSE)`` with ``I_m`` the maximum of the ground truth, the
    definition of the CryoGEN paper (Zhang et al.). The formula is applied to
    the volumes as given; normalisation is opt-in (``normalize="zscore"`` or
    ``"minmax"``), for outputs whose offset and scale are arbitrary.
SSIM
    Wang et al. (2004) with a 3D Gaussian window (sigma 1.5 voxels, truncated
    at 3.5 sigma: an 11-tap window), K1 = 0.01, K2 = 0.03, population
    covariances, averaged over the voxels at least one window radius away
    from the border. The data range ``L`` defaults to the dynamic range of the
    ground truth, ``max - min``; with ``normalize="minmax"`` that range is 1,
    which is then also the PSNR peak ``I_m``. Identical to
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=L)``.
FSC
    Shell ``k`` holds the Fourier voxels whose radius ``r`` (cycles/voxel)
    rounds to ``k * w``, ``w = 0.5 / n_shells``; shells run from the DC term
    (``k = 0``) out to Nyquist (``k = n_shells``, 0.5 cycles/voxel); corner
    voxels beyond Nyquist are left out. Sums run over the half spectrum of
    ``rfftn`` with the multiplicity of the mirrored half, so they equal the
    sums over the full ``fftn`` grid. The shell at frequency 0 (the mean, plus
    in a non-cubic box the lowest frequencies of its longer axes) is reported
    but ignored by the resolution and area-under-curve summaries. A shell
    where either volume has no power (below 1e-12 of its mean power per
    Fourier voxel, i.e. float rounding left by a Fourier-space filter) has
    FSC 0.
Spectral anisotropy
    A reference-free measure: the power deficit, in dB, of a cone of Fourier
    space around kz against cones around kx and ky (see
    :func:`spectral_anisotropy`).

Layout
------
:mod:`.basic` (PSNR, SSIM), :mod:`.fsc` (FSC, FSC-AUC, missing-wedge FSC),
:mod:`.directional` (conical FSC, directional resolution, spectral
anisotropy), with the shared input checks in ``_checks`` and the Fourier-shell
machinery in ``_shells``. Every public name is re-exported here.
"""

from __future__ import annotations

from ._checks import AXES as AXES
from ._checks import NORMALIZATIONS as NORMALIZATIONS
from .basic import psnr, ssim
from .directional import (
    cone_power_spectra,
    conical_fsc,
    directional_resolution,
    spectral_anisotropy,
)
from .fsc import FSCResult, fsc, fsc_auc, measured_fsc_auc, missing_wedge_fsc, missing_wedge_fsc_auc

__all__ = [
    "FSCResult",
    "cone_power_spectra",
    "conical_fsc",
    "directional_resolution",
    "fsc",
    "fsc_auc",
    "missing_wedge_fsc",
    "missing_wedge_fsc_auc",
    "measured_fsc_auc",
    "psnr",
    "spectral_anisotropy",
    "ssim",
]
