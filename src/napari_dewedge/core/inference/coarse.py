"""The coarse pass: the longest wavelengths of the missing wedge, filled from a binned copy.

A generator trained on subtomograms of ``s`` voxels has never seen a
wavelength longer than ``s``: inside the missing wedge, where the data hold
nothing, its output at the lowest frequencies is unconstrained. On the cell
scenes of ``benchmarks/versus.py`` the two bins next to the origin on the
``kz`` axis (the tomogram's density profile along z, wholly inside the wedge)
held a seventh of a result's error, nearly as much as the truth's own power
there. The same generator applied to the tomogram binned in Fourier space
until its longest edge is about one subtomogram sees the whole volume at
once; its prediction replaces the full-resolution one inside the missing
wedge at the lowest frequencies (within :data:`COARSE_RADIUS` waves per volume edge). The
measured region and every other frequency stay as the full-resolution pass
made them.

Pure numpy (``scipy.fft``); the caller runs the generator (:func:`.run.run_inference`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import fft as _fft

from ..wedge import WedgeGeometry, wedge_mask

__all__ = [
    "COARSE_MAX_VOXELS",
    "COARSE_RADIUS",
    "coarse_factor",
    "coarse_volume",
    "merge_coarse",
]

#: The frequencies the coarse prediction replaces inside the missing wedge: those
#: within this many waves per volume edge of the origin, ``sqrt(sum (k_i n_i)^2) < 2``
#: (on a 96^3 volume, below 0.021 cycles per voxel; chosen on the cell scenes, docs/benchmarks).
COARSE_RADIUS = 2.0

#: The smallest edge of the binned volume (a generator needs some voxels to work on).
MIN_COARSE_EDGE = 8

#: Volumes larger than this are left without the coarse pass (its FFTs hold the whole volume in memory).
COARSE_MAX_VOXELS = 1 << 29


def coarse_factor(shape: tuple[int, ...], subtomo_size: int) -> int:
    """The binning of the coarse pass: the power of two that brings the longest edge
    of ``shape`` nearest (on a log scale) to one subtomogram, keeping every binned
    edge at least :data:`MIN_COARSE_EDGE` voxels; 1 when no binning is possible or
    needed (the volume is too small, or too large to transform in memory).

    Binned further, thin structures fall below a voxel and the generator, trained
    at full size, no longer knows them: on the paper's hollow sphere (140^3, a
    4-voxel shell) binning by 8 lost 2.9 dB where 2 and 4 gained 0.7 (docs/benchmarks)."""
    if subtomo_size < 1:
        raise ValueError(f"subtomo_size must be a positive number of voxels, got {subtomo_size}")
    if len(shape) != 3 or int(np.prod(shape)) > COARSE_MAX_VOXELS:
        return 1
    target = float(subtomo_size)
    factor = 1
    while (min(shape) // (2 * factor) >= MIN_COARSE_EDGE
           and abs(np.log(max(shape) / (2 * factor) / target)) < abs(np.log(max(shape) / factor / target))):
        factor *= 2
    return factor


def _crop_index(n: int, m: int, last: bool) -> np.ndarray:
    """Indices of a fine spectrum axis (length ``n``, fft order; rfft order on the last
    axis) that make a coarse one of length ``m`` in the same order. An even ``m``'s
    Nyquist bin comes from the fine bin of that frequency and is zeroed by the caller."""
    if last:
        return np.arange(m // 2 + 1)
    return np.concatenate([np.arange((m + 1) // 2), np.arange(n - m // 2, n)])


def _crop_ix(shape: tuple[int, ...], coarse: tuple[int, ...]) -> tuple:
    return np.ix_(*(_crop_index(n, m, axis == 2) for axis, (n, m) in enumerate(zip(shape, coarse))))


def _zero_nyquist(part: np.ndarray, coarse: tuple[int, ...]) -> np.ndarray:
    """Zero the coarse grid's Nyquist planes (even edges): the crop holds only one of
    the two fine frequencies that fold onto each."""
    for axis, m in enumerate(coarse):
        if m % 2 == 0:
            index: list[Any] = [slice(None)] * 3
            index[axis] = -1 if axis == 2 else m // 2
            part[tuple(index)] = 0
    return part


def _coarse_shape(shape: tuple[int, ...], factor: int) -> tuple[int, int, int]:
    if factor < 2 or min(shape) // factor < 1:
        raise ValueError(f"cannot bin a volume of shape {tuple(shape)} by {factor}")
    return tuple(int(s) // factor for s in shape)  # type: ignore[return-value]


def coarse_volume(volume: Any, factor: int) -> np.ndarray:
    """``volume`` binned by ``factor`` in Fourier space (float32): the frequencies
    below the coarse Nyquist kept, voxel values on the same scale (white noise of
    ``sigma`` becomes white noise of ``sigma / factor**1.5``)."""
    arr = np.asarray(volume, dtype=np.float32)
    shape = tuple(arr.shape)
    coarse = _coarse_shape(shape, factor)
    part = _zero_nyquist(_fft.rfftn(arr)[_crop_ix(shape, coarse)], coarse)
    part *= np.float32(np.prod(coarse) / np.prod(shape))
    return np.ascontiguousarray(_fft.irfftn(part, s=coarse), dtype=np.float32)


def merge_coarse(fine: np.ndarray, coarse_prediction: np.ndarray, geometry: WedgeGeometry,
                 radius: float = COARSE_RADIUS) -> np.ndarray:
    """``fine`` with its missing wedge within ``radius`` waves per volume edge taken
    from ``coarse_prediction`` (the generator's output on :func:`coarse_volume`), in place.

    Inside that radius the missing wedge's share ``1 - T`` (soft at the mask's
    half-weight bins) of the spectrum comes from the coarse prediction; the
    measured region and every frequency outside it are left as they are.
    Returns ``fine``.
    """
    shape = tuple(int(s) for s in fine.shape)
    coarse = tuple(int(s) for s in coarse_prediction.shape)
    factor = shape[0] // coarse[0] if coarse[0] else 0
    if factor < 2 or _coarse_shape(shape, factor) != coarse:
        raise ValueError(f"the coarse prediction has shape {coarse}, which is not the volume's {shape} "
                         "binned by a whole factor")
    ix = _crop_ix(shape, coarse)
    waves = [(np.fft.rfftfreq(n) if axis == 2 else np.fft.fftfreq(n))[_crop_index(n, m, axis == 2)] * n
             for axis, (n, m) in enumerate(zip(shape, coarse))]
    near = np.sqrt(waves[0][:, None, None] ** 2 + waves[1][None, :, None] ** 2 + waves[2][None, None, :] ** 2)
    weight = (1.0 - np.asarray(wedge_mask(coarse, geometry), dtype=np.float32)) * (near < radius)
    if not weight.any():
        return fine
    spectrum = _fft.rfftn(np.asarray(fine, dtype=np.float32))
    part = spectrum[ix]
    scale = np.prod(coarse) / np.prod(shape)  # fine spectrum -> coarse spectrum
    target = _fft.rfftn(np.asarray(coarse_prediction, dtype=np.float32))
    spectrum[ix] = part + weight * (target / scale - part)
    fine[...] = _fft.irfftn(spectrum, s=shape)
    return fine
