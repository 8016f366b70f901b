"""Fourier shell correlation: :class:`FSCResult`, :func:`fsc`, :func:`fsc_auc`
and the FSC restricted to the missing wedge."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..wedge import WedgeGeometry, wedge_mask
from ._checks import _axis_index, _check_n_shells, _pair, _voxel_size
from ._shells import _POWER_FLOOR, _blocks, _half_weights, _rfft

__all__ = ["FSCResult", "fsc", "fsc_auc", "missing_wedge_fsc", "missing_wedge_fsc_auc"]


@dataclass(frozen=True, eq=False)
class FSCResult:
    """A Fourier shell correlation curve.

    ``frequency`` holds the shell centres in cycles/voxel, or in 1/Å when
    ``voxel_size`` (Å) is set; ``fsc`` the correlation per shell (NaN for a
    shell with no Fourier voxels); ``n_voxels`` the number of Fourier voxels
    per shell on the full ``fftn`` grid. Resolutions are in Å with a voxel
    size, in voxels otherwise.
    """

    frequency: np.ndarray
    fsc: np.ndarray
    n_voxels: np.ndarray
    voxel_size: float | None = None

    def __post_init__(self) -> None:
        freq = np.asarray(self.frequency, dtype=np.float64)
        curve = np.asarray(self.fsc, dtype=np.float64)
        count = np.asarray(self.n_voxels, dtype=np.int64)
        if freq.ndim != 1 or curve.shape != freq.shape or count.shape != freq.shape:
            raise ValueError(
                "frequency, fsc and n_voxels must be 1D arrays of one length, got shapes "
                f"{freq.shape}, {curve.shape}, {count.shape}"
            )
        if freq.size and (np.diff(freq) <= 0).any():
            raise ValueError("frequency must increase strictly from shell to shell")
        for arr in (freq, curve, count):
            arr.setflags(write=False)
        object.__setattr__(self, "frequency", freq)
        object.__setattr__(self, "fsc", curve)
        object.__setattr__(self, "n_voxels", count)
        object.__setattr__(self, "voxel_size", _voxel_size(self.voxel_size))

    @property
    def units(self) -> str:
        """Unit of :meth:`resolution`: ``"Å"`` or ``"voxels"``."""
        return "voxels" if self.voxel_size is None else "Å"

    @property
    def normalized_frequency(self) -> np.ndarray:
        """Shell centres in cycles/voxel (0..0.5)."""
        return self.frequency if self.voxel_size is None else self.frequency * self.voxel_size

    def _valid(self) -> tuple[np.ndarray, np.ndarray]:
        keep = (self.frequency > 0) & np.isfinite(self.fsc)
        return self.frequency[keep], self.fsc[keep]

    def crosses(self, threshold: float) -> bool:
        """Whether the curve (DC shell aside) falls below ``threshold`` anywhere."""
        _, curve = self._valid()
        return bool((curve < threshold).any())

    def resolution(self, threshold: float) -> float:
        """Resolution (Å, or voxels) where the FSC first falls below ``threshold``.

        The crossing is interpolated linearly between the last shell at or
        above the threshold and the first shell below it; the DC shell and
        empty shells are skipped. When the curve never falls below the
        threshold the result is the finest measured resolution (Nyquist, 2
        voxels): a bound, see :meth:`crosses`. When even the first shell is
        below it the result is ``inf``; with no usable shell, NaN.
        """
        threshold = float(threshold)
        freq, curve = self._valid()
        if freq.size == 0:
            return math.nan
        below = np.flatnonzero(curve < threshold)
        if below.size == 0:
            return float(1.0 / freq[-1])
        i = int(below[0])
        if i == 0:
            return math.inf
        f0, f1, c0, c1 = freq[i - 1], freq[i], curve[i - 1], curve[i]
        f_cross = f0 + (c0 - threshold) * (f1 - f0) / (c0 - c1)
        return float(1.0 / f_cross)

    @property
    def resolution_05(self) -> float:
        """Resolution at FSC = 0.5."""
        return self.resolution(0.5)

    @property
    def resolution_0143(self) -> float:
        """Resolution at FSC = 0.143."""
        return self.resolution(0.143)

    @property
    def auc(self) -> float:
        """Normalised area under the curve (see :func:`fsc_auc`)."""
        return fsc_auc(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists and floats) for JSON and layer metadata."""
        return {
            "frequency": self.frequency.tolist(),
            "fsc": [None if not math.isfinite(v) else float(v) for v in self.fsc],
            "n_voxels": self.n_voxels.tolist(),
            "voxel_size": self.voxel_size,
            "units": self.units,
            "resolution_05": self.resolution_05,
            "resolution_0143": self.resolution_0143,
            "auc": self.auc,
        }


def fsc_auc(result: FSCResult) -> float:
    """Area under an FSC curve over normalised frequency, divided by the span
    of frequencies covered, so that a perfect match scores 1.0 and unrelated
    volumes about 0 (the FSC-AUC of CryoFM).

    Trapezoidal rule over the shells with frequency > 0 and a defined value
    (the DC shell and empty shells are skipped), between the first such shell
    and the last (Nyquist for an ordinary FSC). NaN when no shell is usable.
    """
    if not isinstance(result, FSCResult):
        raise TypeError(f"fsc_auc needs an FSCResult, got {type(result).__name__}")
    keep = (result.frequency > 0) & np.isfinite(result.fsc)
    freq = result.normalized_frequency[keep]
    curve = result.fsc[keep]
    if freq.size == 0:
        return math.nan
    if freq.size == 1:
        return float(curve[0])
    area = float(np.sum(0.5 * (curve[1:] + curve[:-1]) * np.diff(freq)))
    return area / float(freq[-1] - freq[0])


def _fsc_core(
    a: Any,
    b: Any,
    *,
    names: tuple[str, str],
    voxel_size: Any,
    mask: Any,
    n_shells: int | None,
    cone: tuple[int, float] | None = None,
    default_shells: str = "max",
) -> FSCResult:
    x, y = _pair(a, b, names)
    vs = _voxel_size(voxel_size)
    shape = x.shape
    if default_shells == "max":
        default = max(shape) // 2
    else:
        default = shape[_axis_index(default_shells)] // 2
    n = _check_n_shells(n_shells, max(default, 1))
    weight, count = _half_weights(mask, shape)
    fa, fb = _rfft(x), _rfft(y)
    bins = n + 1
    cross = np.zeros(bins)
    pow_a = np.zeros(bins)
    pow_b = np.zeros(bins)
    wsum = np.zeros(bins)
    nvox = np.zeros(bins)
    for zs, sel, shell, w, c in _blocks(shape, n, weight, count, cone):
        sa, sb = fa[zs][sel], fb[zs][sel]
        cross += np.bincount(shell, w * (sa.real * sb.real + sa.imag * sb.imag), minlength=bins)
        pow_a += np.bincount(shell, w * (sa.real * sa.real + sa.imag * sa.imag), minlength=bins)
        pow_b += np.bincount(shell, w * (sb.real * sb.real + sb.imag * sb.imag), minlength=bins)
        wsum += np.bincount(shell, w, minlength=bins)
        nvox += np.bincount(shell, c, minlength=bins)
    # Mean power per Fourier voxel (Parseval) sets the level below which a
    # shell holds no signal, only rounding residue.
    floor_a = _POWER_FLOOR * abs(float(np.vdot(x, x)))
    floor_b = _POWER_FLOOR * abs(float(np.vdot(y, y)))
    empty = (pow_a <= floor_a * wsum) | (pow_b <= floor_b * wsum)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = cross / np.sqrt(pow_a * pow_b)
    curve = np.where(empty, 0.0, np.clip(curve, -1.0, 1.0))
    curve = np.where(nvox > 0, curve, np.nan)
    freq = np.arange(bins) * (0.5 / n)
    if vs is not None:
        freq = freq / vs
    return FSCResult(freq, curve, np.rint(nvox).astype(np.int64), vs)


def fsc(
    a: Any,
    b: Any,
    *,
    voxel_size: Any = None,
    mask: Any = None,
    n_shells: int | None = None,
) -> FSCResult:
    """Fourier shell correlation of two ``(z, y, x)`` volumes of one shape.

    ``FSC(k) = sum Re(A conj B) / sqrt(sum |A|^2 sum |B|^2)`` over the Fourier
    voxels of shell ``k``, each weighted by ``mask`` when given (a non-negative
    weight or boolean array in rfftn or fftn layout, or broadcastable to it:
    see the module notes). ``n_shells`` shells of width ``0.5 / n_shells``
    cycles/voxel cover the range up to Nyquist (default ``max(shape) // 2``,
    i.e. the sampling of the longest axis). ``voxel_size`` (Å, isotropic)
    turns frequencies into 1/Å and resolutions into Å. A shell where either
    volume holds no power (below 1e-12 of its mean power per Fourier voxel)
    has FSC 0; a shell with no voxels has NaN.
    """
    return _fsc_core(a, b, names=("a", "b"), voxel_size=voxel_size, mask=mask, n_shells=n_shells)


# --------------------------------------------------------------------------- missing wedge


def _geometry(geometry: Any) -> WedgeGeometry:
    if isinstance(geometry, WedgeGeometry):
        return geometry
    if isinstance(geometry, Mapping):
        return WedgeGeometry.from_dict(dict(geometry))
    raise TypeError(
        f"geometry must be a WedgeGeometry or a dict of its fields, got {type(geometry).__name__}"
    )


def missing_wedge_fsc(
    estimate: Any,
    truth: Any,
    geometry: Any,
    *,
    voxel_size: Any = None,
    n_shells: int | None = None,
) -> FSCResult:
    """FSC over the Fourier voxels inside the missing wedge only.

    The region is where :func:`~napari_dewedge.core.wedge.wedge_mask` is 0
    (with a soft edge, the taper is left out). A volume with nothing in the
    wedge scores 0 in every shell; a faithful restoration scores near 1.
    """
    est, ref = _pair(estimate, truth, ("estimate", "truth"))
    region = wedge_mask(est.shape, _geometry(geometry), rfft=True) == 0
    return _fsc_core(
        est, ref, names=("estimate", "truth"), voxel_size=voxel_size, mask=region, n_shells=n_shells
    )


def missing_wedge_fsc_auc(
    estimate: Any,
    truth: Any,
    geometry: Any,
    *,
    n_shells: int | None = None,
) -> float:
    """How much of the missing wedge was restored: the FSC-AUC of
    :func:`missing_wedge_fsc` (about 0 for a volume with nothing in the wedge,
    1 for the truth itself)."""
    return fsc_auc(missing_wedge_fsc(estimate, truth, geometry, n_shells=n_shells))


def measured_fsc_auc(estimate: Any, truth: Any, geometry: Any, *, n_shells: int | None = None) -> float:
    """FSC-AUC over the Fourier voxels the microscope measured (the wedge mask's 1s): how
    faithful the restoration is where the data are; denoising raises it, a blur lowers it."""
    est, ref = _pair(estimate, truth, ("estimate", "truth"))
    region = wedge_mask(est.shape, _geometry(geometry), rfft=True) == 1
    return fsc_auc(_fsc_core(est, ref, names=("estimate", "truth"), voxel_size=None, mask=region,
                             n_shells=n_shells))
