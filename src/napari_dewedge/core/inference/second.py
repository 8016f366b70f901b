"""The second pass: the generator applied again to the measured region of its own result.

The consistency term trains the generator to fill the missing wedge of a
clean volume (its own rotated prediction, without noise); the first pass
asks it to fill the wedge of the noisy tomogram. The second pass asks the
question it was trained on: the finished first result (fused with the data,
every view averaged) is cut back to its measured region and applied again,
with the same passes, and its result fused with the tomogram's data.

On the cell scenes of ``benchmarks/versus.py`` (docs/benchmarks) the second
result is the better one in the measured region (its fusion with the data
gained 0.02-0.04 of measured-region FSC-AUC) and in the wedge's upper
shells (correlation with the truth 0.16-0.22 past 0.37 cycles per voxel,
where the first pass's is 0.03-0.07), and the worse one in the wedge's
lowest shells, whose filling comes out fainter from the clean input.
:func:`merge_second` therefore keeps the second result everywhere but in
the wedge below :data:`SECOND_PASS_FROM`, where the first pass's filling
stays: +0.05 to +0.17 dB, +0.03 to +0.04 SSIM and +0.05 to +0.08
missing-wedge FSC-AUC on the same saved models. A third pass was worse
than the second in every measure.

The second pass sets the filling's shape, not its amplitude: its own wedge
gains are measured against the first's denoised result, which holds far
less power in the upper shells than the data (on the cell scenes, 5 to 90
times less amplitude past 0.37 cycles per voxel). Left so, the filling of a
real microtubule crop lost its upper shells and the result came out more
anisotropic than its input (spectral anisotropy 16.6 dB against the
input's 11.3 and the first pass's 9.0). :func:`merge_second` therefore
rescales the second filling, shell by shell, to the first's power, which
the first pass's gains set against the tomogram's own data: the crop's
anisotropy is then 9.8 dB, and the cell scenes keep their gains (the
missing-wedge FSC-AUC exactly, PSNR +0.00 to +0.07 dB, SSIM -0.004 to
-0.009).

Volumes without noise to speak of (the reliability weights' gate,
:func:`~.reliability.noisy_enough`) skip the pass: there the first result
already returns the data in the measured region, and on the paper's
noise-free sphere the second pass changed nothing (29.97 against 29.98 dB).

Pure numpy (``scipy.fft``); the caller runs the generator (:func:`.run.run_inference`).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as _fft

from ..wedge import WedgeGeometry, apply_wedge, wedge_mask
from .calibration import frequency_radius, shell_index

__all__ = ["SECOND_PASS_FROM", "SECOND_PASS_RAMP", "merge_second", "second_input"]

#: Below this radius (cycles per voxel) the missing wedge keeps the first pass's filling: the
#: crossover of the two passes' correlations with the truth on both cell scenes (crossovers from
#: 0.125 to 0.25 scored within 0.004 of wedge FSC-AUC of each other, docs/benchmarks).
SECOND_PASS_FROM = 1.0 / 6.0

#: Half the width (cycles per voxel) of the cosine ramp from the first pass's filling to the second's.
SECOND_PASS_RAMP = 1.0 / 48.0


def second_input(first: np.ndarray, geometry: WedgeGeometry) -> np.ndarray:
    """The second pass's input: the first result cut back to its measured region (float32)."""
    return np.asarray(apply_wedge(first, geometry), dtype=np.float32)


def _first_share(shape: tuple[int, ...], missing: np.ndarray) -> np.ndarray:
    """Per rfftn coefficient, how much of the result is the first pass's: the missing wedge's
    share ``missing`` below :data:`SECOND_PASS_FROM`, ramped to 0 across :data:`SECOND_PASS_RAMP`."""
    radius = frequency_radius(shape)
    t = np.clip((radius - (SECOND_PASS_FROM - SECOND_PASS_RAMP)) / (2.0 * SECOND_PASS_RAMP), 0.0, 1.0)
    below = 0.5 * (1.0 + np.cos(np.pi * t))
    return (missing * below).astype(np.float32)


def merge_second(first: np.ndarray, second: np.ndarray, geometry: WedgeGeometry) -> np.ndarray:
    """``first`` replaced by ``second`` except in the missing wedge's lowest frequencies, in place.

    ``second`` is the second pass's result, already fused with the data. Its
    filling of the wedge is rescaled, shell by shell, to the power of the
    first's: the first pass's gains were measured against the tomogram's own
    data, the second's against the first's denoised result, which holds
    less power in the upper shells than the data do (docs/benchmarks).
    Returns ``first``.
    """
    shape = tuple(int(s) for s in first.shape)
    if tuple(second.shape) != shape:
        raise ValueError(f"the second pass's result has shape {tuple(second.shape)}, the first's {shape}")
    earlier = _fft.rfftn(np.asarray(first, dtype=np.float32))
    spectrum = _fft.rfftn(np.asarray(second, dtype=np.float32))
    missing = 1.0 - np.asarray(wedge_mask(shape, geometry), dtype=np.float32)
    shells = shell_index(shape)
    size = int(shells.max()) + 1
    weight = np.broadcast_to(missing, shells.shape).ravel()
    power = [np.bincount(shells.ravel(), weights=weight * np.abs(s).ravel() ** 2, minlength=size)
             for s in (earlier, spectrum)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(power[1] > 0, np.sqrt(power[0] / power[1]), 0.0).astype(np.float32)
    share = _first_share(shape, missing)
    share = np.maximum(share, missing * (power[1] <= 0)[shells])  # a shell the second left empty: the first's
    spectrum *= 1.0 + missing * (ratio[shells] - 1.0)
    spectrum += share * (earlier - spectrum)
    first[...] = _fft.irfftn(spectrum, s=shape)
    return first
