"""Missing-wedge geometry and the wedge operator ``T_M``.

Axes are ``(z, y, x)``; the beam is along z. For tilt axis y, a Fourier point
``(kz, ky, kx)`` was measured when the angle of the line through ``(kx, kz)``,
``atan2(kz, kx)`` folded into ``(-90, 90]`` degrees, lies inside
``[tilt_min, tilt_max]``. For tilt axis x the same holds for ``(ky, kz)``.
Frequencies are in cycles per voxel (``numpy.fft.fftfreq``), so non-cubic
volumes keep the physical angles. The tilt axis itself (the line ``kz = 0`` and
``kx = 0`` for tilt axis y) lies in every tilt's plane and is always kept, the
DC term with it. This is the convention of IsoNet and DeepDeWedge: at 64^3 and
+-60 degrees the mask keeps 71.1 % of the ``fftn`` grid.

Masks depend on two frequency axes only, so they are stored in broadcastable
form (``(nz, 1, nx//2+1)`` for tilt axis y on the rfftn layout) and cached per
shape, geometry and device. numpy is enough for the geometry; torch is imported
only by the functions that take or return tensors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "WedgeGeometry",
    "wedge_weights",
    "LineAngles",
    "line_angles",
    "weights_from_angles",
    "wedge_mask",
    "wedge_mask_torch",
    "apply_wedge",
    "measured_fraction",
    "wedge_depth",
]

TILT_AXES = ("y", "x")


@dataclass(frozen=True)
class WedgeGeometry:
    """Tilt range (degrees), tilt axis and optional soft edge (degrees).

    ``soft_edge`` tapers the mask from 1 at the edge of the tilt range to 0
    ``soft_edge`` degrees into the missing wedge (raised cosine).
    """

    tilt_min: float = -60.0
    tilt_max: float = 60.0
    tilt_axis: str = "y"
    soft_edge: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tilt_min", "tilt_max", "soft_edge"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number of degrees, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.tilt_axis not in TILT_AXES:
            raise ValueError(f"tilt_axis must be 'y' or 'x', got {self.tilt_axis!r}")
        if not -90.0 <= self.tilt_min <= self.tilt_max <= 90.0:
            raise ValueError(
                "tilt range must satisfy -90 <= tilt_min <= tilt_max <= 90 degrees, "
                f"got {self.tilt_min:g}..{self.tilt_max:g}"
            )
        if not 0.0 <= self.soft_edge <= 45.0:
            raise ValueError(f"soft_edge must lie in [0, 45] degrees, got {self.soft_edge:g}")

    @property
    def missing_angle(self) -> float:
        """Total opening of the missing wedge in degrees."""
        return 180.0 - (self.tilt_max - self.tilt_min)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WedgeGeometry":
        keys = {"tilt_min", "tilt_max", "tilt_axis", "soft_edge"}
        return cls(**{k: v for k, v in data.items() if k in keys})

    def __str__(self) -> str:
        soft = f", soft edge {self.soft_edge:g} deg" if self.soft_edge else ""
        return f"tilt {self.tilt_min:g}..{self.tilt_max:g} deg about {self.tilt_axis}{soft}"


def _line_angle(fz: np.ndarray, fa: np.ndarray) -> np.ndarray:
    """Angle in degrees of the line through ``(fa, fz)``, folded into (-90, 90]."""
    theta = np.degrees(np.arctan2(fz, fa))
    theta = np.where(theta > 90.0, theta - 180.0, theta)
    return np.where(theta <= -90.0, theta + 180.0, theta)


def wedge_weights(fz: np.ndarray, fa: np.ndarray, geometry: WedgeGeometry) -> np.ndarray:
    """Mask weights for frequencies ``fz`` (beam axis) and ``fa`` (the axis
    perpendicular to the tilt axis in the sample plane), broadcast together.

    Returns float32 values in [0, 1]: 1 where measured, 0 in the missing wedge.
    """
    return weights_from_angles(line_angles(fz, fa), geometry)


@dataclass(frozen=True)
class LineAngles:
    """Line angles of a frequency grid, precomputed so that a new tilt range
    only costs comparisons (:func:`weights_from_angles`).

    ``readings`` holds the angles (float32 degrees) of each pixel; on an even
    grid the Nyquist index holds both +0.5 and -0.5 cycles/voxel, so those
    pixels get every reading and keep the smallest weight, which keeps the mask
    Hermitian (T_M of a real volume stays real, the wedge stays empty).
    ``axis_line`` marks the tilt axis (and DC), measured at every tilt.
    """

    readings: tuple[np.ndarray, ...]
    axis_line: np.ndarray


def line_angles(fz: np.ndarray, fa: np.ndarray) -> LineAngles:
    fz = np.asarray(fz, dtype=np.float64)
    fa = np.asarray(fa, dtype=np.float64)
    nyq_z, nyq_a = fz == -0.5, fa == -0.5
    fz_alt, fa_alt = np.where(nyq_z, 0.5, fz), np.where(nyq_a, 0.5, fa)
    readings = [_line_angle(fz, fa)]
    if nyq_z.any():
        readings.append(_line_angle(fz_alt, fa))
    if nyq_a.any():
        readings.append(_line_angle(fz, fa_alt))
    if nyq_z.any() and nyq_a.any():
        readings.append(_line_angle(fz_alt, fa_alt))
    shape = np.broadcast_shapes(fz.shape, fa.shape)
    readings = tuple(np.broadcast_to(r, shape).astype(np.float32) for r in readings)
    return LineAngles(readings, np.broadcast_to((fz == 0) & (fa == 0), shape))


def weights_from_angles(angles: LineAngles, geometry: WedgeGeometry) -> np.ndarray:
    """Wedge weights (float32) of precomputed :class:`LineAngles`."""
    weights = None
    for theta in angles.readings:
        w = _weights(theta, geometry)
        weights = w if weights is None else np.minimum(weights, w)
    return np.where(angles.axis_line, np.float32(1.0), weights).astype(np.float32, copy=False)


def _weights(theta: np.ndarray, geometry: WedgeGeometry) -> np.ndarray:
    lo, hi = np.float32(geometry.tilt_min), np.float32(geometry.tilt_max)
    eps = np.float32(1e-4)
    inside = (theta >= lo - eps) & (theta <= hi + eps)
    if lo <= -90.0 + eps:  # -90 and +90 are the same line
        inside |= theta >= 90.0 - eps
    if geometry.soft_edge <= 0:
        return inside.astype(np.float32)
    dist = _outside(theta, geometry)
    w = np.where(dist < geometry.soft_edge, np.cos(0.5 * np.pi * dist / geometry.soft_edge) ** 2, 0.0)
    return np.where(inside, 1.0, w).astype(np.float32)


def _outside(theta: np.ndarray, geometry: WedgeGeometry) -> np.ndarray:
    """Distance in degrees (on the 180-periodic circle of line angles) of ``theta`` outside the tilt range."""
    lo, hi = np.float32(geometry.tilt_min), np.float32(geometry.tilt_max)
    return np.minimum(np.mod(lo - theta, 180.0), np.mod(theta - hi, 180.0))


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) < 3:
        raise ValueError(f"a wedge needs a 3D (z, y, x) volume, got shape {shape}")
    shape = shape[-3:]
    if min(shape) < 1:
        raise ValueError(f"empty volume shape {shape}")
    return shape  # type: ignore[return-value]


@lru_cache(maxsize=32)
def _mask_cached(shape: tuple[int, int, int], geometry: WedgeGeometry, rfft: bool) -> np.ndarray:
    fz, fa = _frequency_axes(shape, geometry, rfft)
    mask = wedge_weights(fz, fa, geometry)
    mask.setflags(write=False)
    return mask


def _frequency_axes(shape: tuple[int, int, int], geometry: WedgeGeometry, rfft: bool) -> tuple[np.ndarray, np.ndarray]:
    """The beam-axis and across-tilt-axis frequencies of ``shape``, broadcastable."""
    nz, ny, nx = shape
    fz = np.fft.fftfreq(nz)[:, None, None]
    if geometry.tilt_axis == "y":
        fa = (np.fft.rfftfreq(nx) if rfft else np.fft.fftfreq(nx))[None, None, :]
    else:
        fa = np.fft.fftfreq(ny)[None, :, None]
    return fz, fa


def wedge_depth(shape: tuple[int, ...], geometry: WedgeGeometry = WedgeGeometry()) -> np.ndarray:
    """How deep every rfftn coefficient of a ``(z, y, x)`` volume lies in the missing wedge:
    the angle from the wedge's nearer edge over half its opening, 0 at the edges to 1 in its
    middle, 0 in the measured region (float32, broadcastable like :func:`wedge_mask`)."""
    shape3 = _check_shape(shape)
    fz, fa = _frequency_axes(shape3, geometry, True)
    half = max(geometry.missing_angle / 2.0, 1e-6)
    depth = np.clip(_outside(_line_angle(fz, fa), geometry) / half, 0.0, 1.0)
    return np.where(wedge_mask(shape3, geometry) > 0.5, 0.0, depth).astype(np.float32)


def wedge_mask(
    shape: tuple[int, ...],
    geometry: WedgeGeometry = WedgeGeometry(),
    *,
    rfft: bool = True,
    full: bool = False,
) -> np.ndarray:
    """Mask of the measured Fourier region for a ``(z, y, x)`` volume.

    By default the rfftn layout ``(nz, ny, nx//2+1)`` in broadcastable form
    (``(nz, 1, nx//2+1)`` for tilt axis y, ``(nz, ny, 1)`` for x); ``full=True``
    expands it. ``rfft=False`` gives the unshifted fftn layout. Read-only.
    """
    shape3 = _check_shape(shape)
    mask = _mask_cached(shape3, geometry, bool(rfft))
    if full:
        nz, ny, nx = shape3
        mask = np.broadcast_to(mask, (nz, ny, nx // 2 + 1 if rfft else nx))
    return mask


_TORCH_MASKS: dict[tuple, "torch.Tensor"] = {}
_TORCH_CACHE_SIZE = 32


def wedge_mask_torch(shape: tuple[int, ...], geometry: WedgeGeometry, device: Any = "cpu") -> "torch.Tensor":
    """The rfftn-layout mask as a float32 tensor on ``device`` (broadcastable, cached)."""
    import torch

    shape3 = _check_shape(shape)
    device = torch.device(device)
    key = (shape3, geometry, str(device))
    mask = _TORCH_MASKS.get(key)
    if mask is None:
        if len(_TORCH_MASKS) >= _TORCH_CACHE_SIZE:
            _TORCH_MASKS.pop(next(iter(_TORCH_MASKS)))
        # made outside inference mode even when first asked for inside it (tiled inference):
        # an inference tensor in the cache would break every later training step that uses it
        with torch.inference_mode(False):
            mask = torch.from_numpy(np.array(wedge_mask(shape3, geometry))).to(device)
        _TORCH_MASKS[key] = mask
    return mask


def clear_mask_cache() -> None:
    """Forget cached masks (frees GPU memory held by them)."""
    _mask_cached.cache_clear()
    _TORCH_MASKS.clear()


def apply_wedge(volume, geometry: WedgeGeometry = WedgeGeometry()):
    """Apply ``T_M``: keep the measured Fourier components, zero the wedge.

    ``volume`` is a numpy array or a torch tensor of shape ``(..., z, y, x)``
    (any batch dimensions, CPU or CUDA). The result has the input's type,
    device and floating dtype (integer input gives float32).
    """
    if isinstance(volume, np.ndarray) or not hasattr(volume, "device"):
        arr = np.asarray(volume)
        out_dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float32
        shape3 = _check_shape(arr.shape)
        spectrum = scipy.fft.rfftn(arr.astype(out_dtype, copy=False), axes=(-3, -2, -1), workers=-1)
        spectrum *= wedge_mask(shape3, geometry)
        return scipy.fft.irfftn(spectrum, s=shape3, axes=(-3, -2, -1), workers=-1).astype(out_dtype, copy=False)

    import torch

    x = volume
    shape3 = _check_shape(tuple(x.shape))
    out_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    work = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    spectrum = torch.fft.rfftn(work, dim=(-3, -2, -1))
    spectrum = spectrum * wedge_mask_torch(shape3, geometry, x.device)
    return torch.fft.irfftn(spectrum, s=shape3, dim=(-3, -2, -1)).to(out_dtype)


def measured_fraction(shape: tuple[int, ...], geometry: WedgeGeometry = WedgeGeometry()) -> float:
    """Fraction of the full ``fftn`` grid that the mask keeps (weights summed)."""
    nz, ny, nx = _check_shape(shape)
    mask = wedge_mask((nz, ny, nx), geometry, rfft=False, full=True)
    return float(mask.mean(dtype=np.float64))
