"""Real-space measures: PSNR and SSIM (see the package notes for the conventions)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from ._checks import _normalize, _pair

__all__ = ["psnr", "ssim"]


def psnr(estimate: Any, truth: Any, *, normalize: str | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(I_m^2 / MSE)``.

    ``I_m`` is the maximum of ``truth`` and ``MSE`` the mean squared difference
    (CryoGEN's definition). ``normalize`` (``None``, ``"zscore"`` or
    ``"minmax"``) first maps each volume on its own to zero mean and unit
    standard deviation, or to [0, 1]; by default the volumes are compared as
    given. Identical volumes give ``inf``.

    Raises ValueError when the (normalised) truth has no positive maximum,
    which leaves the peak undefined.
    """
    est, ref = _pair(estimate, truth, ("estimate", "truth"), ndim=None, dtype=np.float64)
    est = _normalize(est, normalize, "estimate")
    ref = _normalize(ref, normalize, "truth")
    peak = float(ref.max())
    if peak <= 0.0:
        raise ValueError(
            f"truth has no positive maximum (max {peak:g}): PSNR's peak I_m = max(truth) is undefined; "
            "pass normalize='minmax' or 'zscore'"
        )
    mse = float(np.mean((est - ref) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def ssim(
    estimate: Any,
    truth: Any,
    *,
    data_range: float | None = None,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    truncate: float = 3.5,
    normalize: str | None = None,
    full: bool = False,
):
    """Structural similarity (Wang et al. 2004) with an n-D Gaussian window.

    ``data_range`` is ``L`` in ``C1 = (k1 L)^2`` and ``C2 = (k2 L)^2``; by
    default the dynamic range ``max - min`` of the (normalised) truth. The mean
    is taken over voxels at least one window radius (``int(truncate * sigma +
    0.5)``) from the border, as in scikit-image; every axis must be at least
    one window long. Returns the mean SSIM, or ``(mean, ssim_map)`` with
    ``full=True``. Works for 2D images as well as 3D volumes. Computed in
    float64 with about ten volume-sized temporaries: crop big tomograms.
    """
    est, ref = _pair(estimate, truth, ("estimate", "truth"), ndim=None, dtype=np.float64)
    if est.ndim < 2:
        raise ValueError(f"ssim needs 2D or 3D inputs, got shape {est.shape}")
    est = _normalize(est, normalize, "estimate")
    ref = _normalize(ref, normalize, "truth")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number of voxels, got {sigma!r}")
    if k1 < 0 or k2 < 0:
        raise ValueError(f"k1 and k2 must be non-negative, got {k1!r}, {k2!r}")
    radius = int(truncate * sigma + 0.5)
    win = 2 * radius + 1
    if min(est.shape) < win:
        raise ValueError(
            f"every axis must be at least {win} voxels long for a Gaussian window of sigma {sigma:g}, "
            f"got shape {est.shape}"
        )
    if data_range is None:
        data_range = float(ref.max() - ref.min())
        if data_range == 0.0:
            raise ValueError("truth is constant: pass data_range explicitly")
    elif not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")

    def smooth(arr: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(arr, sigma=sigma, truncate=truncate, mode="reflect")

    mu_x, mu_y = smooth(est), smooth(ref)
    var_x = smooth(est * est) - mu_x * mu_x
    var_y = smooth(ref * ref) - mu_y * mu_y
    cov = smooth(est * ref) - mu_x * mu_y
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    inner = tuple(slice(radius, n - radius) for n in ssim_map.shape)
    mean = float(ssim_map[inner].mean(dtype=np.float64))
    return (mean, ssim_map) if full else mean
