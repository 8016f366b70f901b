"""Log power spectra and central Fourier slices of ``(z, y, x)`` volumes.

The three central planes of the 3D Fourier transform are named after the
real-space views they belong to (central slice theorem):

``"xy"``  the plane ``kz = 0``, axes ``(ky, kx)``, the transform of the projection along z;
``"xz"``  the plane ``ky = 0``, axes ``(kz, kx)``, where the wedge of tilt axis y shows;
``"yz"``  the plane ``kx = 0``, axes ``(kz, ky)``, where the wedge of tilt axis x shows.

Two ways to compute them (:func:`central_slices`):

``mode="central"``  the exact central planes, from 2D FFTs of the three
    projections (identical to slicing the full 3D FFT, at a fraction of the cost);
``mode="average"``  the power averaged over the third frequency axis (by
    Parseval, the sum of the power of 2D FFTs of every slice). Far less noisy,
    so the wedge stands out in real tomograms; used to estimate the tilt range.

All planes are fft-shifted (zero frequency at index ``n // 2``) and hold
``log10`` of the power. The spectrum is computed once per volume; changing the
tilt range only recomputes the 2D masks (:func:`slice_masks`, cached angle grids),
which is what lets the wedge overlay follow a slider.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.fft

from .wedge import LineAngles, WedgeGeometry, _line_angle, line_angles, weights_from_angles

__all__ = [
    "PLANES",
    "SpectrumSlices",
    "central_slices",
    "log_power_spectrum",
    "slice_masks",
    "wedge_edge_segments",
    "angular_profile",
    "estimate_tilt_range",
]

PLANES = ("xy", "xz", "yz")
_EPS = 1e-12
_CHUNK_BYTES = 64 * 2**20


def _shifted_freqs(n: int) -> np.ndarray:
    return np.fft.fftshift(np.fft.fftfreq(n))


def _plane_axes(plane: str, shape3: tuple[int, int, int]) -> tuple[int, int]:
    nz, ny, nx = shape3
    return {"xy": (ny, nx), "xz": (nz, nx), "yz": (nz, ny)}[plane]


@dataclass(frozen=True)
class SpectrumSlices:
    """The three central Fourier planes of one volume, log10 power, fft-shifted."""

    xy: np.ndarray
    xz: np.ndarray
    yz: np.ndarray
    shape: tuple[int, int, int]
    mode: str = "central"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, plane: str) -> np.ndarray:
        if plane not in PLANES:
            raise KeyError(f"unknown plane {plane!r}; expected one of {PLANES}")
        return getattr(self, plane)

    def masks(self, geometry: WedgeGeometry) -> dict[str, np.ndarray]:
        """Wedge masks (1 measured, 0 missing) of the three planes."""
        return slice_masks(self.shape, geometry)

    def masked(self, geometry: WedgeGeometry, fill: float | None = None) -> dict[str, np.ndarray]:
        """The planes with the missing wedge set to ``fill`` (default: their minimum)."""
        out = {}
        for plane, mask in self.masks(geometry).items():
            img = self[plane]
            value = float(np.min(img)) if fill is None else fill
            out[plane] = np.where(mask > 0, img, value).astype(np.float32)
        return out

    def contrast_limits(self, low: float = 1.0, high: float = 99.8) -> tuple[float, float]:
        """Percentile contrast limits shared by the three planes."""
        values = np.concatenate([self[p].ravel() for p in PLANES])
        lo, hi = np.percentile(values, [low, high])
        if not hi > lo:
            hi = lo + 1.0
        return float(lo), float(hi)


def _as_float(volume) -> np.ndarray:
    arr = np.asarray(volume)
    if arr.ndim != 3:
        raise ValueError(f"central Fourier slices need a 3D (z, y, x) volume, got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise ValueError("complex volumes are not supported")
    return arr


def _log_power(spectrum: np.ndarray) -> np.ndarray:
    power = spectrum.real**2 + spectrum.imag**2 if np.iscomplexobj(spectrum) else spectrum
    return np.log10(power + _EPS).astype(np.float32)


def _projection_plane(arr: np.ndarray, axis: int) -> np.ndarray:
    """2D FFT power of the projection along ``axis``, fft-shifted (exact central plane)."""
    proj = np.zeros([s for i, s in enumerate(arr.shape) if i != axis], dtype=np.float64)
    step = max(1, int(_CHUNK_BYTES // max(1, arr.nbytes // max(1, arr.shape[0]))))
    # Sum in slabs along z so memory-mapped volumes are streamed, not loaded.
    for start in range(0, arr.shape[0], step):
        slab = np.asarray(arr[start : start + step], dtype=np.float64)
        if axis == 0:
            proj += slab.sum(axis=0)
        else:
            part = slab.sum(axis=axis)
            proj[start : start + slab.shape[0]] += part
    return np.fft.fftshift(np.abs(np.fft.fft2(proj)) ** 2)


def _average_plane(arr: np.ndarray, axis: int) -> np.ndarray:
    """Power averaged over the frequency axis ``axis``, fft-shifted."""
    n = arr.shape[axis]
    out_shape = [s for i, s in enumerate(arr.shape) if i != axis]
    acc = np.zeros(out_shape, dtype=np.float64)
    plane_bytes = 8 * int(np.prod(out_shape))
    step = max(1, int(_CHUNK_BYTES // max(1, plane_bytes)))
    for start in range(0, n, step):
        index = [slice(None)] * 3
        index[axis] = slice(start, min(n, start + step))
        block = np.asarray(arr[tuple(index)], dtype=np.float32)
        block = np.moveaxis(block, axis, 0)
        spec = scipy.fft.fft2(block, axes=(-2, -1), workers=-1)
        acc += (spec.real**2 + spec.imag**2).sum(axis=0, dtype=np.float64)
    # Parseval along ``axis``: the sum over its positions of the 2D power equals
    # the mean over its frequencies of the 3D power.
    return np.fft.fftshift(acc)


def central_slices(volume, mode: str = "central") -> SpectrumSlices:
    """The three central Fourier planes of ``volume`` (see the module docstring).

    Works on numpy arrays and memory maps of any real dtype; memory stays
    bounded by a slab of the volume.
    """
    arr = _as_float(volume)
    if mode == "central":
        planes = {"xy": _projection_plane(arr, 0), "xz": _projection_plane(arr, 1), "yz": _projection_plane(arr, 2)}
    elif mode == "average":
        planes = {"xy": _average_plane(arr, 0), "xz": _average_plane(arr, 1), "yz": _average_plane(arr, 2)}
    else:
        raise ValueError(f"mode must be 'central' or 'average', got {mode!r}")
    return SpectrumSlices(shape=tuple(arr.shape), mode=mode, **{k: _log_power(v) for k, v in planes.items()})


def log_power_spectrum(volume) -> np.ndarray:
    """Full 3D log10 power spectrum, fft-shifted (small volumes; it is 3D)."""
    arr = _as_float(volume).astype(np.float32, copy=False)
    return _log_power(np.fft.fftshift(np.fft.fftn(arr)))


@lru_cache(maxsize=64)
def _plane_grids(shape3: tuple[int, int, int], plane: str, tilt_axis: str) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (fz, fa) of a plane's pixels for the wedge of ``tilt_axis``."""
    nz, ny, nx = shape3
    fz_z, fy, fx = _shifted_freqs(nz), _shifted_freqs(ny), _shifted_freqs(nx)
    if plane == "xy":  # kz = 0
        fz = np.zeros((ny, nx))
        fa = np.broadcast_to(fx[None, :] if tilt_axis == "y" else fy[:, None], (ny, nx))
    elif plane == "xz":  # ky = 0
        fz = np.broadcast_to(fz_z[:, None], (nz, nx))
        fa = np.broadcast_to(fx[None, :] if tilt_axis == "y" else np.zeros(1)[None, :], (nz, nx))
    elif plane == "yz":  # kx = 0
        fz = np.broadcast_to(fz_z[:, None], (nz, ny))
        fa = np.broadcast_to(np.zeros(1)[None, :] if tilt_axis == "y" else fy[None, :], (nz, ny))
    else:
        raise KeyError(f"unknown plane {plane!r}; expected one of {PLANES}")
    return np.ascontiguousarray(fz), np.ascontiguousarray(fa)


@lru_cache(maxsize=16)
def _plane_angles(shape3: tuple[int, int, int], plane: str, tilt_axis: str) -> LineAngles:
    return line_angles(*_plane_grids(shape3, plane, tilt_axis))


@lru_cache(maxsize=64)
def _slice_masks_cached(shape3: tuple[int, int, int], geometry: WedgeGeometry) -> dict[str, np.ndarray]:
    out = {}
    for plane in PLANES:
        mask = weights_from_angles(_plane_angles(shape3, plane, geometry.tilt_axis), geometry)
        mask.setflags(write=False)
        out[plane] = mask
    return out


def slice_masks(shape: Iterable[int], geometry: WedgeGeometry) -> dict[str, np.ndarray]:
    """Wedge masks of the three fft-shifted central planes of a volume of ``shape``.

    Cached per (shape, geometry): moving a slider back and forth costs nothing,
    and a new position costs a few milliseconds even for 512 x 512 x 200.
    """
    shape3 = tuple(int(s) for s in shape)
    if len(shape3) != 3:
        raise ValueError(f"expected a 3D shape, got {shape3}")
    return dict(_slice_masks_cached(shape3, geometry))


def wedge_edge_segments(
    shape: Iterable[int], geometry: WedgeGeometry
) -> dict[str, list[tuple[tuple[float, float], tuple[float, float]]]]:
    """Line segments, in (row, column) pixel coordinates of each fft-shifted plane,
    along the edges of the measured region (the lines at ``tilt_min`` and ``tilt_max``
    through the centre). Planes where the wedge does not show get no segments.

    Pixel aspect is handled: in a ``(kz, kx)`` plane of a volume with ``nz != nx``
    the physical angle ``theta`` runs along ``(nz sin(theta), nx cos(theta))`` pixels.
    """
    nz, ny, nx = (int(s) for s in shape)
    plane = "xz" if geometry.tilt_axis == "y" else "yz"
    rows, cols = _plane_axes(plane, (nz, ny, nx))
    centre = (rows // 2, cols // 2)
    segments = []
    angles = {geometry.tilt_min, geometry.tilt_max}
    for theta in sorted(angles):
        t = math.radians(theta)
        dr, dc = rows * math.sin(t), cols * math.cos(t)
        # Scale so the segment reaches the border of the plane on both sides.
        scale = min(
            (rows / 2) / abs(dr) if abs(dr) > 1e-9 else math.inf,
            (cols / 2) / abs(dc) if abs(dc) > 1e-9 else math.inf,
        )
        dr, dc = dr * scale, dc * scale
        segments.append(((centre[0] - dr, centre[1] - dc), (centre[0] + dr, centre[1] + dc)))
    out: dict[str, list] = {p: [] for p in PLANES}
    out[plane] = segments
    return out


def angular_profile(
    spectrum: SpectrumSlices,
    tilt_axis: str = "y",
    *,
    band: tuple[float, float] = (0.08, 0.42),
    bin_deg: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean log power per line angle in the plane where the wedge of
    ``tilt_axis`` shows, over a frequency band (cycles/voxel).

    Returns ``(angles_deg, mean_log_power)``; angles are bin centres in (-90, 90].
    Bins with no pixels are NaN.
    """
    plane = "xz" if tilt_axis == "y" else "yz"
    img = spectrum[plane]
    fz, fa = _plane_grids(spectrum.shape, plane, tilt_axis)
    radius = np.hypot(fz, fa)
    theta = _line_angle(fz, fa)
    sel = (radius >= band[0]) & (radius <= band[1])
    edges = np.arange(-90.0, 90.0 + bin_deg / 2, bin_deg)
    idx = np.clip(np.digitize(theta[sel], edges) - 1, 0, len(edges) - 2)
    sums = np.bincount(idx, weights=img[sel].astype(np.float64), minlength=len(edges) - 1)
    counts = np.bincount(idx, minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        profile = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return 0.5 * (edges[:-1] + edges[1:]), profile


def estimate_tilt_range(
    volume_or_spectrum,
    tilt_axis: str = "y",
    *,
    band: tuple[float, float] = (0.08, 0.42),
    bin_deg: float = 1.0,
    min_contrast: float = 0.1,
) -> tuple[float, float]:
    """Estimate ``(tilt_min, tilt_max)`` from the data: the measured region has
    power, the missing wedge has little.

    Uses the angle-averaged spectrum (``mode="average"``) in the plane where the
    wedge shows and the mean log power per line angle (:func:`angular_profile`).
    The profile is fitted with two levels, one inside an interval of angles that
    contains 0 degrees and one outside it (least squares over every pair of bin
    edges, with cumulative sums); the best interval is the estimate. Fitting the
    whole profile at once is robust to the dips of a noisy spectrum, which would
    stop a walk outwards from 0 degrees early. The edges are then refined to a
    fraction of a bin where the profile crosses half-way between the two levels.
    Returns ``(-90, 90)`` when the two levels differ by less than ``min_contrast``
    decades (no visible wedge).
    """
    spectrum = volume_or_spectrum
    if not isinstance(spectrum, SpectrumSlices) or spectrum.mode != "average":
        spectrum = central_slices(volume_or_spectrum, mode="average")
    angles, profile = angular_profile(spectrum, tilt_axis, band=band, bin_deg=bin_deg)
    valid = np.isfinite(profile)
    if valid.sum() < 10:
        raise ValueError("volume too small to estimate a tilt range")
    profile = np.interp(angles, angles[valid], profile[valid])
    n = len(profile)
    zero = int(np.argmin(np.abs(angles)))
    # Interval [i, j] (bins, inclusive) holds bin ``zero``; the rest is the wedge.
    csum = np.concatenate([[0.0], np.cumsum(profile)])
    csq = np.concatenate([[0.0], np.cumsum(profile**2)])
    i = np.arange(0, zero + 1)[:, None]
    j = np.arange(zero, n)[None, :]
    n_in = (j - i + 1).astype(np.float64)
    n_out = n - n_in
    s_in = csum[j + 1] - csum[i]
    q_in = csq[j + 1] - csq[i]
    s_out, q_out = csum[n] - s_in, csq[n] - q_in
    with np.errstate(invalid="ignore", divide="ignore"):
        sse = (q_in - s_in**2 / n_in) + np.where(n_out > 0, q_out - s_out**2 / np.maximum(n_out, 1), 0.0)
        contrast = s_in / n_in - np.where(n_out > 0, s_out / np.maximum(n_out, 1), np.inf)
    sse = np.where((n_out >= 2) & (contrast > 0), sse, np.inf)
    if not np.isfinite(sse).any():
        return (-90.0, 90.0)
    bi, bj = np.unravel_index(int(np.argmin(sse)), sse.shape)
    lo_bin, hi_bin = int(i[bi, 0]), int(j[0, bj])
    level_in = float(s_in[bi, bj] / n_in[bi, bj])
    level_out = float(s_out[bi, bj] / n_out[bi, bj])
    if level_in - level_out < min_contrast:
        return (-90.0, 90.0)
    threshold = 0.5 * (level_in + level_out)

    def refine(inner: int, outer: int, edge: float) -> float:
        p0, p1 = profile[inner], profile[outer]
        if not p0 >= threshold > p1:
            return edge
        return float(angles[inner] + (p0 - threshold) / (p0 - p1) * (angles[outer] - angles[inner]))

    half = bin_deg / 2
    tmin = refine(lo_bin, lo_bin - 1, angles[lo_bin] - half) if lo_bin > 0 else -90.0
    tmax = refine(hi_bin, hi_bin + 1, angles[hi_bin] + half) if hi_bin < n - 1 else 90.0
    return float(np.clip(tmin, -90, 90)), float(np.clip(tmax, -90, 90))
