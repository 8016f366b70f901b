"""A filament's mean cross-section, and how closed its ring is: a measure of real data without a truth.

A microtubule is a tube whose cross-section is the same all along it: a ring of
protofilaments. Cut in XZ (the plane that holds the beam axis z), the missing
wedge smears the ring along z and takes away its top and bottom, where the
wall runs parallel to the electron beam. The mean of the XZ slices along the
tube, each shifted onto the tube's axis, shows the ring with the noise averaged
away (hundreds of slices), and :func:`ring_closure` says how much of it is
there: the ring's weakest sector of angle against its mean. An input smeared
by the wedge reads well under 1 (its top and bottom missing or faint); a
restoration that filled the wedge with the wall reads near 1; a blur lowers
the ring's contrast against its surroundings (``contrast``).

Used by ``real_tomograms.py``::

    axis = tube_axis(volume)                  # from the input
    section = tube_section(volume, axis)      # of the input, and of each result on the same axis
    ring = ring_closure(section)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Ring", "TubeAxis", "ring_closure", "tube_axis", "tube_section"]


@dataclass(frozen=True)
class TubeAxis:
    """The tube's centre in x and z as straight lines of y: ``x0 + bx * y``, ``z0 + bz * y``."""

    x0: float
    bx: float
    z0: float
    bz: float

    def centre(self, y: np.ndarray | float) -> tuple[np.ndarray | float, np.ndarray | float]:
        """(z, x) of the axis at ``y``."""
        return self.z0 + self.bz * y, self.x0 + self.bx * y


@dataclass(frozen=True)
class Ring:
    """The ring of a mean cross-section: its centre, half-axes (voxels), the ring's level above
    the surroundings per sector of angle (``sectors``, starting at -x and turning through -z,
    the top of an XZ image), ``closure`` (weakest sector / mean) and ``contrast`` (mean sector /
    the surroundings' spread)."""

    z: float
    x: float
    half_z: float
    half_x: float
    sectors: tuple[float, ...]
    closure: float
    contrast: float


def _line(values: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of a straight line through ``values`` at ``rows``, robust to outliers."""
    keep = np.ones(values.size, bool)
    slope, intercept = 0.0, float(np.median(values))
    for _ in range(4):
        slope, intercept = np.polyfit(rows[keep], values[keep], 1)
        residual = np.abs(values - (intercept + slope * rows))
        keep = residual < max(1.0, 2.0 * float(np.median(residual)))
    return float(intercept), float(slope)


def _peak(profile: np.ndarray) -> float:
    """The maximum of ``profile`` to a fraction of a sample (a parabola through the top three)."""
    i = int(np.argmax(profile))
    if 0 < i < profile.size - 1:
        a, b, c = profile[i - 1:i + 2]
        denom = a - 2 * b + c
        if denom < 0:
            return i + 0.5 * (a - c) / denom
    return float(i)


def tube_axis(volume: np.ndarray, *, radius: float = 10.0) -> TubeAxis:
    """The axis of the brightest tube that runs along y through ``volume`` (z, y, x), of about
    ``radius`` voxels.

    In x: per row of y, the peak of the projection along z, smoothed across the tube by the
    radius (the walls merge into one peak at the centre) and along it by the radius too; a
    straight line fitted to the rows at least a radius from the ends (where the smoothing is
    lopsided). In z: the profile of the tube's band (its side walls) per row, smoothed along y,
    aligned to the mean profile by cross-correlation for the slope, and the mean profile's peak
    for the depth."""
    v = np.asarray(volume, dtype=np.float32)
    nz, ny, nx = v.shape
    ys = np.arange(ny, dtype=float)
    inner = (ys >= radius) & (ys < ny - radius) if ny > 4 * radius else np.ones(ny, bool)
    top = ndimage.gaussian_filter(v.mean(axis=0), (radius, 0.8 * radius))
    x0, bx = _line(np.array([_peak(row) for row in top])[inner], ys[inner])
    inside = np.abs(np.arange(nx)[None, :] - (x0 + bx * ys)[:, None]) <= 1.5 * radius  # (y, x): tube and walls
    side = (v * inside[None]).sum(axis=2) / np.maximum(inside.sum(axis=1), 1)[None]  # (z, y)
    side = ndimage.gaussian_filter(side, (0.5 * radius, radius))
    side -= side.mean(axis=0, keepdims=True)
    mean = side.mean(axis=1)
    lags = np.arange(-nz + 1, nz, dtype=float)
    shifts = np.array([lags[0] + _peak(np.correlate(side[:, j], mean, mode="full")) for j in range(ny)])
    _, bz = _line(shifts[inner], ys[inner])
    depth = _peak(ndimage.gaussian_filter1d(mean, 0.3 * radius))
    return TubeAxis(x0, bx, float(depth - bz * (ny - 1) / 2), bz)


def tube_section(volume: np.ndarray, axis: TubeAxis, *, margin: float = 12.0) -> np.ndarray:
    """The mean of the XZ slices of ``volume`` along ``axis``, each shifted so that the axis sits at
    the slice's centre (rows where the axis comes within ``margin`` of the x edges are left out).
    Raises ValueError when no row is left."""
    v = np.asarray(volume, dtype=np.float32)
    nz, ny, nx = v.shape
    slices = []
    for y in range(ny):
        zc, xc = axis.centre(float(y))
        if margin <= xc <= nx - 1 - margin:
            slices.append(ndimage.shift(v[:, y, :], ((nz - 1) / 2 - zc, (nx - 1) / 2 - xc), order=1, mode="nearest"))
    if not slices:
        raise ValueError(f"the tube's axis leaves no XZ slice at least {margin:g} voxels from the x edges")
    return np.mean(slices, axis=0)


def _ellipse(zz: np.ndarray, xx: np.ndarray, z: float, x: float, hz: float, hx: float) -> tuple[np.ndarray, np.ndarray]:
    """The elliptical radius (1 on the ellipse of centre (z, x) and half-axes (hz, hx)) at every pixel,
    and the band about 2 voxels wide along the ellipse."""
    rho = np.hypot((zz - z) / hz, (xx - x) / hx)
    return rho, np.abs(rho - 1.0) * np.sqrt(hz * hx) < 1.0


def ring_closure(section: np.ndarray, *, sectors: int = 12, reach: int = 4,
                 radii: tuple[float, float] = (6.0, 16.0)) -> Ring:
    """The elliptical ring of ``section`` (a :func:`tube_section`): the centre within ``reach`` voxels
    of the middle and the half-axes within ``radii`` that make the ring (a band 2 voxels wide)
    stand highest above the lumen inside it; then the ring's level above its surroundings (the
    mean of the lumen and of a band outside it) per sector of angle."""
    s = np.asarray(section, dtype=np.float64)
    nz, nx = s.shape
    zz, xx = np.mgrid[:nz, :nx].astype(float)
    best = None
    steps = np.arange(radii[0], radii[1] + 0.5, 1.0)
    offsets = range(-reach, reach + 1)
    for dz, dx, hz, hx in itertools.product(offsets, offsets, steps, steps):
        z, x = (nz - 1) / 2 + dz, (nx - 1) / 2 + dx
        rho, band = _ellipse(zz, xx, z, x, hz, hx)
        lumen = rho < 0.55
        if band.sum() < 8 or lumen.sum() < 4:
            continue
        score = s[band].mean() - s[lumen].mean()
        if best is None or score > best[0]:
            best = (score, z, x, hz, hx)
    if best is None:
        raise ValueError(f"no ring of half-axes {radii[0]:g}-{radii[1]:g} voxels fits a section of shape {s.shape}")
    _, z, x, hz, hx = best
    rho, band = _ellipse(zz, xx, z, x, hz, hx)
    lumen, outside = rho < 0.55, (rho > 1.35) & (rho < 1.8)
    base = 0.5 * (s[lumen].mean() + (s[outside].mean() if outside.any() else s[lumen].mean()))
    angle = np.arctan2((zz - z) / hz, (xx - x) / hx)
    edges = np.linspace(-np.pi, np.pi, sectors + 1)
    levels = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        part = band & (angle >= lo) & (angle < hi)
        levels.append(float(s[part].mean() - base) if part.any() else float("nan"))
    level = np.asarray(levels)
    far = rho > 1.8
    spread = float(s[far].std()) if far.sum() > 8 else float(s.std())
    mean = float(np.nanmean(level))
    return Ring(z=float(z), x=float(x), half_z=float(hz), half_x=float(hx), sectors=tuple(levels),
                closure=float(np.nanmin(level) / mean) if mean > 0 else float("nan"),
                contrast=mean / spread if spread > 0 else float("nan"))
