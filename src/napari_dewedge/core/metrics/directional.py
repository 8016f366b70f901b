"""Directional measures: conical FSC, resolution along z, y and x with its
anisotropy, and the reference-free spectral anisotropy of one volume."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._checks import AXES, _as_array, _axis_index, _check_angle, _check_n_shells
from ._shells import _POWER_FLOOR, _blocks, _half_weights, _rfft
from .fsc import FSCResult, _fsc_core

__all__ = [
    "cone_power_spectra",
    "conical_fsc",
    "directional_resolution",
    "spectral_anisotropy",
]


def conical_fsc(
    a: Any,
    b: Any,
    axis: str = "z",
    half_angle_deg: float = 30.0,
    *,
    voxel_size: Any = None,
    mask: Any = None,
    n_shells: int | None = None,
) -> FSCResult:
    """FSC over a double cone of Fourier voxels around ``axis`` (``"z"``,
    ``"y"`` or ``"x"``): those whose direction lies within ``half_angle_deg``
    of the axis, both ways. The default shell count is ``n_axis // 2``, the
    sampling along that axis. ``mask`` further weights the voxels as in
    :func:`fsc`."""
    index = _axis_index(axis)
    cos_half = math.cos(math.radians(_check_angle(half_angle_deg)))
    return _fsc_core(
        a,
        b,
        names=("a", "b"),
        voxel_size=voxel_size,
        mask=mask,
        n_shells=n_shells,
        cone=(index, cos_half),
        default_shells=axis,
    )


def directional_resolution(
    a: Any,
    b: Any,
    *,
    voxel_size: Any = None,
    half_angle_deg: float = 30.0,
    n_shells: int | None = None,
) -> dict[str, Any]:
    """Resolution along z, y and x from conical FSCs, and their anisotropy.

    Returns a dict with ``"resolution_0143"`` and ``"resolution_05"`` (each a
    dict axis -> resolution in Å, or voxels), ``"auc"`` (axis -> conical
    FSC-AUC), ``"anisotropy"`` (0.143 resolution along z divided by the mean
    of those along x and y: 1.0 isotropic, above 1 worse along z; ``inf`` when
    z is unresolved at every frequency and NaN when nothing is),
    ``"anisotropy_05"`` (the same at 0.5), ``"units"`` and
    ``"half_angle_deg"``. A resolution that never crosses its threshold is the
    Nyquist bound (see :meth:`FSCResult.resolution`).
    """
    curves = {
        ax: conical_fsc(a, b, ax, half_angle_deg, voxel_size=voxel_size, n_shells=n_shells) for ax in AXES
    }

    def ratio(values: Mapping[str, float]) -> float:
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.float64(values["z"]) / np.float64(0.5 * (values["x"] + values["y"])))

    res_0143 = {ax: c.resolution(0.143) for ax, c in curves.items()}
    res_05 = {ax: c.resolution(0.5) for ax, c in curves.items()}
    return {
        "resolution_0143": res_0143,
        "resolution_05": res_05,
        "auc": {ax: c.auc for ax, c in curves.items()},
        "anisotropy": ratio(res_0143),
        "anisotropy_05": ratio(res_05),
        "units": curves["z"].units,
        "half_angle_deg": float(half_angle_deg),
    }


def _cone_power(vol: np.ndarray, half_angle_deg: float, n_shells: int | None) -> dict[str, np.ndarray]:
    shape = vol.shape
    n = _check_n_shells(n_shells, max(min(shape) // 2, 1))
    cos_half = math.cos(math.radians(_check_angle(half_angle_deg)))
    spectrum = _rfft(vol - vol.dtype.type(vol.mean(dtype=np.float64)))
    weight, count = _half_weights(None, shape)
    bins = n + 1
    out: dict[str, np.ndarray] = {"frequency": np.arange(bins) * (0.5 / n)}
    for index, ax in enumerate(AXES):
        power = np.zeros(bins)
        total = np.zeros(bins)
        for zs, sel, shell, w, _ in _blocks(shape, n, weight, count, (index, cos_half)):
            s = spectrum[zs][sel]
            power += np.bincount(shell, w * (s.real * s.real + s.imag * s.imag), minlength=bins)
            total += np.bincount(shell, w, minlength=bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[ax] = np.where(total > 0, power / total / vol.size, np.nan)
    return out


def cone_power_spectra(
    volume: Any,
    *,
    half_angle_deg: float = 30.0,
    n_shells: int | None = None,
) -> dict[str, np.ndarray]:
    """Radial power spectra of ``volume`` inside double cones around kz, ky, kx.

    Returns ``{"frequency": shell centres (cycles/voxel), "z": ..., "y": ...,
    "x": ...}``, each cone's mean power ``|F|^2 / N`` per shell (NaN where
    the cone has no voxel in a shell). The mean is removed first. Default
    ``n_shells`` is ``min(shape) // 2`` so that every cone is sampled in
    every shell.
    """
    return _cone_power(_as_array(volume, "volume"), half_angle_deg, n_shells)


def spectral_anisotropy(
    volume: Any,
    *,
    half_angle_deg: float = 30.0,
    band: Sequence[float] = (0.1, 0.4),
    n_shells: int | None = None,
) -> float:
    """Reference-free anisotropy: how much weaker the power spectrum is along
    kz than along kx and ky, in dB.

    Power is averaged per shell inside a double cone of ``half_angle_deg``
    around each axis (:func:`cone_power_spectra`); the result is
    ``10 * (mean log10 P_xy - mean log10 P_z)`` over the shells whose centres
    lie in ``band`` (cycles/voxel), with ``log10 P_xy`` the mean of the x and y
    cones' log powers. About 0 for an isotropic volume, large and positive
    when the missing wedge (which holds kz) is empty. The y cone itself
    overlaps a wedge about y by a third, which the measure absorbs. Powers are
    floored at 1e-12 of the volume's variance, which caps the result near
    120 dB for a wedge that is exactly zero.
    """
    try:
        lo, hi = (float(v) for v in band)
    except (TypeError, ValueError):
        raise ValueError(f"band must be two frequencies (cycles/voxel), got {band!r}") from None
    if not 0.0 <= lo < hi <= 0.5:
        raise ValueError(f"band must satisfy 0 <= low < high <= 0.5 cycles/voxel, got {band!r}")
    vol = _as_array(volume, "volume")
    variance = float(vol.var(dtype=np.float64))
    if variance == 0.0:
        raise ValueError("volume is constant: its power spectrum is empty")
    spectra = _cone_power(vol, half_angle_deg, n_shells)
    freq = spectra["frequency"]
    logs = {}
    in_band = (freq >= lo) & (freq <= hi) & (freq > 0)
    for ax in AXES:
        in_band &= np.isfinite(spectra[ax])
    if not in_band.any():
        raise ValueError(f"no shell of this volume lies in the band {lo:g}..{hi:g} cycles/voxel; widen it")
    floor = _POWER_FLOOR * variance
    for ax in AXES:
        logs[ax] = np.log10(np.maximum(spectra[ax][in_band], floor))
    lateral = 0.5 * (logs["x"] + logs["y"])
    return float(10.0 * (lateral.mean() - logs["z"].mean()))
