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

Above the crossover the filling is not the second pass's alone: it is
:data:`SECOND_PASS_WEIGHT` of the second's and the rest of the first's,
lifted back, shell by shell, to the first's power. The two passes fill the
wedge from different inputs and agree only in part, and which is the
better depends on the model: on models trained for four minutes on a
2-core CPU the first was the better one up to a third of a cycle per
voxel, on models trained 1600 steps the second from a sixth. Their mean is
better than either where neither leads by much: on saved models of the
cell scenes, +0.09 and +0.14 dB and +0.010 and +0.014 of missing-wedge
FSC-AUC on the 4-minute models, within 0.01 dB and 0.001 on a 1600-step
one (docs/benchmarks); on a real microtubule crop it took away a dark ring
in the YZ spectrum and two dark patches on the ``kz`` axis in XZ, where the
second pass's own gains had left the wedge's middle empty in one shell.

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

__all__ = ["SECOND_PASS_FROM", "SECOND_PASS_RAMP", "SECOND_PASS_WEIGHT", "merge_second", "second_input"]

#: Below this radius (cycles per voxel) the missing wedge keeps the first pass's filling: the
#: crossover of the two passes' correlations with the truth on both cell scenes (crossovers from
#: 0.125 to 0.25 scored within 0.004 of wedge FSC-AUC of each other, docs/benchmarks).
SECOND_PASS_FROM = 1.0 / 6.0

#: Half the width (cycles per voxel) of the cosine ramp from the first pass's filling to the second's.
SECOND_PASS_RAMP = 1.0 / 48.0

#: Above the crossover, the second pass's share of the wedge's filling (the first's is the rest): 0.6 of
#: 1, 0.75, 0.6 and 0.5 on saved models of both cell scenes, 4-minute and 1600-step (docs/benchmarks).
SECOND_PASS_WEIGHT = 0.6


def second_input(first: np.ndarray, geometry: WedgeGeometry) -> np.ndarray:
    """The second pass's input: the first result cut back to its measured region (float32)."""
    return np.asarray(apply_wedge(first, geometry), dtype=np.float32)


def _below_crossover(shape: tuple[int, ...]) -> np.ndarray:
    """Per rfftn coefficient, 1 below :data:`SECOND_PASS_FROM` and 0 above, with a cosine ramp
    across :data:`SECOND_PASS_RAMP`."""
    radius = frequency_radius(shape)
    t = np.clip((radius - (SECOND_PASS_FROM - SECOND_PASS_RAMP)) / (2.0 * SECOND_PASS_RAMP), 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def _wedge_power(spectrum: np.ndarray, in_wedge: np.ndarray, shells: np.ndarray, size: int) -> np.ndarray:
    """The power of ``spectrum`` inside the missing wedge (``in_wedge``, flattened), per shell."""
    return np.bincount(shells.ravel(), weights=in_wedge * np.abs(spectrum).ravel() ** 2, minlength=size)


def _power_ratio(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Per shell, the amplitude factor from ``current`` power to ``target`` (0 where ``current`` is empty)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(current > 0, np.sqrt(target / current), 0.0).astype(np.float32)


def merge_second(first: np.ndarray, second: np.ndarray, geometry: WedgeGeometry, *,
                 weight: float = SECOND_PASS_WEIGHT) -> np.ndarray:
    """``first``'s measured region replaced by ``second``'s, and its missing wedge above the crossover by
    ``weight`` of the second's filling and ``1 - weight`` of its own, in place.

    ``second`` is the second pass's result, already fused with the data. Its
    filling of the wedge is rescaled, shell by shell, to the power of the
    first's: the first pass's gains were measured against the tomogram's own
    data, the second's against the first's denoised result, which holds
    less power in the upper shells than the data do (docs/benchmarks). The
    weighted filling is rescaled to that power again: two fillings that
    disagree in part sum to less power than either, and the amplitude stays
    the one the data set. Returns ``first``.
    """
    shape = tuple(int(s) for s in first.shape)
    if tuple(second.shape) != shape:
        raise ValueError(f"the second pass's result has shape {tuple(second.shape)}, the first's {shape}")
    weight = float(weight)
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the second pass's weight must lie in [0, 1], got {weight!r}")
    earlier = _fft.rfftn(np.asarray(first, dtype=np.float32))
    spectrum = _fft.rfftn(np.asarray(second, dtype=np.float32))
    missing = 1.0 - np.asarray(wedge_mask(shape, geometry), dtype=np.float32)
    shells = shell_index(shape)
    size = int(shells.max()) + 1
    in_wedge = np.broadcast_to(missing, shells.shape).ravel()
    power = _wedge_power(earlier, in_wedge, shells, size)
    later = _wedge_power(spectrum, in_wedge, shells, size)
    above = missing * (1.0 - _below_crossover(shape))  # where the second pass fills
    share = missing - weight * above  # the first's share of each coefficient
    share = np.maximum(share, missing * (later <= 0)[shells])  # a shell the second left empty: the first's
    spectrum *= 1.0 + missing * (_power_ratio(power, later)[shells] - 1.0)
    spectrum += share * (earlier - spectrum)
    if weight < 1.0:  # the two fillings' mean, back at the first's power
        spectrum *= 1.0 + above * (_power_ratio(power, _wedge_power(spectrum, in_wedge, shells, size))[shells] - 1.0)
    first[...] = _fft.irfftn(spectrum, s=shape)
    return first
