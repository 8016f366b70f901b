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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import scipy.fft
from scipy import ndimage

from .wedge import WedgeGeometry, wedge_mask

__all__ = [
    "psnr",
    "ssim",
    "FSCResult",
    "fsc",
    "fsc_auc",
    "missing_wedge_fsc",
    "missing_wedge_fsc_auc",
    "conical_fsc",
    "directional_resolution",
    "cone_power_spectra",
    "spectral_anisotropy",
]

AXES = ("z", "y", "x")
NORMALIZATIONS = (None, "zscore", "minmax")
# Power below this fraction of the volume's mean power per Fourier voxel counts
# as no signal at all (float rounding left behind by a Fourier-space filter).
_POWER_FLOOR = 1e-12
# Fourier voxels processed per block (bounds the temporaries for big volumes).
_BLOCK_ELEMENTS = 1 << 21


# --------------------------------------------------------------------------- input checks


def _as_array(volume: Any, name: str, *, ndim: int | None = 3, dtype: Any = None) -> np.ndarray:
    """``volume`` as a finite floating array (float64 unless ``dtype`` says otherwise)."""
    try:
        arr = np.asarray(volume)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be an array, got {type(volume).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}D (z, y, x) volume, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if dtype is None:
        dtype = np.float32 if arr.dtype == np.float32 else np.float64
    arr = arr.astype(dtype, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _pair(a: Any, b: Any, names: tuple[str, str], *, ndim: int | None = 3, dtype: Any = None):
    """Two volumes of the same shape, in a common floating type."""
    if dtype is None:
        both32 = all(np.asarray(v).dtype == np.float32 for v in (a, b))
        dtype = np.float32 if both32 else np.float64
    x = _as_array(a, names[0], ndim=ndim, dtype=dtype)
    y = _as_array(b, names[1], ndim=ndim, dtype=dtype)
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {x.shape} and {y.shape}")
    return x, y


def _normalize(arr: np.ndarray, mode: str | None, name: str) -> np.ndarray:
    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {mode!r}")
    if mode is None:
        return arr
    if mode == "zscore":
        std = float(arr.std(dtype=np.float64))
        if std == 0.0:
            raise ValueError(f"{name} is constant: it cannot be normalised to unit standard deviation")
        return (arr - arr.mean(dtype=np.float64)) / std
    lo, hi = float(arr.min()), float(arr.max())
    if hi == lo:
        raise ValueError(f"{name} is constant: it cannot be normalised to [0, 1]")
    return (arr - lo) / (hi - lo)


def _voxel_size(voxel_size: Any) -> float | None:
    """A single positive voxel size in Å (isotropic voxels only), or None.

    Accepts a number, three numbers (z, y, x) or an mrcfile ``voxel_size``
    record (fields x, y, z).
    """
    if voxel_size is None:
        return None
    names = getattr(getattr(voxel_size, "dtype", None), "names", None)
    if names and set("xyz") <= set(names):
        voxel_size = tuple(float(voxel_size[k]) for k in "zyx")
    try:
        values = np.atleast_1d(np.asarray(voxel_size, dtype=np.float64)).ravel()
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if values.size not in (1, 3) or not np.isfinite(values).all() or (values <= 0).any():
        raise ValueError(
            f"voxel_size must be a positive number or three of them (z, y, x), got {voxel_size!r}"
        )
    if not np.allclose(values, values[0], rtol=1e-3):
        raise ValueError(f"voxel_size must be isotropic for Fourier shells, got {tuple(values.tolist())}")
    return float(values[0])


def _check_n_shells(n_shells: Any, default: int) -> int:
    if n_shells is None:
        n_shells = default
    if isinstance(n_shells, bool) or not isinstance(n_shells, (int, np.integer)) or n_shells < 1:
        raise ValueError(f"n_shells must be a positive integer, got {n_shells!r}")
    return int(n_shells)


def _axis_index(axis: Any) -> int:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
    return AXES.index(axis)


def _check_angle(half_angle_deg: Any) -> float:
    try:
        angle = float(half_angle_deg)
    except (TypeError, ValueError):
        raise ValueError(f"half_angle_deg must be a number of degrees, got {half_angle_deg!r}") from None
    if not 0.0 < angle <= 90.0:
        raise ValueError(f"half_angle_deg must lie in (0, 90] degrees, got {half_angle_deg!r}")
    return angle


# --------------------------------------------------------------------------- PSNR and SSIM


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


# --------------------------------------------------------------------------- FSC result


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


# --------------------------------------------------------------------------- Fourier shells


def _rfft(volume: np.ndarray) -> np.ndarray:
    return scipy.fft.rfftn(volume, axes=(0, 1, 2))


def _multiplicity(nx: int) -> np.ndarray:
    """How many full-grid voxels each rfftn column stands for (1 or 2)."""
    mult = np.full(nx // 2 + 1, 2.0)
    mult[0] = 1.0
    if nx % 2 == 0:
        mult[-1] = 1.0
    return mult


def _mirror(mask: np.ndarray) -> np.ndarray:
    """``m(-k)`` for a mask ``m`` on the (unshifted) fftn grid, broadcast axes kept."""
    out = mask
    for axis in range(3):
        if out.shape[axis] > 1:
            out = np.roll(np.flip(out, axis=axis), 1, axis=axis)
    return out


def _half_weights(mask: Any, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Fourier weights and voxel counts on the rfftn half grid.

    ``mask`` is a non-negative weight (or boolean) array in rfftn layout
    ``(nz, ny, nx//2+1)`` or fftn layout ``(nz, ny, nx)``, or broadcastable to
    either (size-1 axes). An rfftn-layout mask is taken as symmetric,
    ``m(k) = m(-k)`` (true of wedge masks and cones); an fftn-layout mask may
    be anything: the half grid then carries ``m(k) + m(-k)``.
    """
    nz, ny, nx = shape
    nxr = nx // 2 + 1
    mult = _multiplicity(nx)
    if mask is None:
        return mult[None, None, :], mult[None, None, :]
    m = np.asarray(mask)
    if m.dtype == np.bool_:
        m = m.astype(np.float64)
    if not np.issubdtype(m.dtype, np.number) or np.iscomplexobj(m):
        raise TypeError(f"mask must be a real or boolean array, got dtype {m.dtype}")
    m = m.astype(np.float64, copy=False)
    if m.ndim != 3:
        raise ValueError(f"mask must be a 3D Fourier-space array, got shape {m.shape}")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("mask weights must be finite and non-negative")
    for axis, (have, want) in enumerate(zip(m.shape[:2], (nz, ny))):
        if have not in (1, want):
            raise ValueError(f"mask shape {m.shape} does not fit a volume of shape {shape} (axis {axis})")
    if m.shape[2] in (1, nxr):
        weight = m * mult
        count = (m > 0) * mult
    elif m.shape[2] == nx:
        mirrored = _mirror(m)
        doubled = (mult == 2.0)
        weight = np.where(doubled, m[..., :nxr] + mirrored[..., :nxr], m[..., :nxr])
        count = np.where(
            doubled,
            (m[..., :nxr] > 0).astype(np.float64) + (mirrored[..., :nxr] > 0),
            (m[..., :nxr] > 0).astype(np.float64),
        )
    else:
        raise ValueError(
            f"mask shape {m.shape} fits neither the rfftn layout {(nz, ny, nxr)} nor the fftn layout {shape}"
        )
    return weight, count.astype(np.float64)


def _blocks(
    shape: tuple[int, int, int],
    n_shells: int,
    weight: np.ndarray,
    count: np.ndarray,
    cone: tuple[int, float] | None = None,
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Walk the rfftn grid in slabs along kz.

    Yields ``(zslice, selected, shell, weight, count)``: a boolean selection
    of the slab's voxels that lie in a shell (and in the cone, and have a
    positive count), then their shell index, weight and count.
    """
    nz, ny, nx = shape
    nxr = nx // 2 + 1
    width = 0.5 / n_shells
    fz = np.fft.fftfreq(nz)
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    r2_yx = fy * fy + fx * fx
    step = max(1, _BLOCK_ELEMENTS // (ny * nxr))
    for z0 in range(0, nz, step):
        zs = slice(z0, min(nz, z0 + step))
        fzb = fz[zs, None, None]
        radius = np.sqrt(fzb * fzb + r2_yx)
        shell = np.floor(radius / width + 0.5).astype(np.int64)
        w = np.broadcast_to(weight[zs] if weight.shape[0] > 1 else weight, radius.shape)
        c = np.broadcast_to(count[zs] if count.shape[0] > 1 else count, radius.shape)
        selected = (shell <= n_shells) & (c > 0)
        if cone is not None:
            axis, cos_half = cone
            along = (np.abs(fzb), np.abs(fy), np.abs(fx))[axis]
            selected &= along >= cos_half * radius - 1e-12
        yield zs, selected, shell[selected], w[selected], c[selected]


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


# --------------------------------------------------------------------------- directional measures


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
