"""Wedge-gain calibration: the amplitude of the generator's wedge filling, measured on the data.

A generator trained with a squared error fills the missing wedge with the
right shapes at too little amplitude: where it is unsure it predicts the
conditional mean, and each renewal of its frozen copy, whose prediction is
part of the consistency target, shrinks the filling further. On the
noise-free rings of ``benchmarks/paper_shapes.py`` the filled wedge
correlated 0.85-0.95 with the truth, shell by shell, at 10 to 40 % of its
amplitude after 1600 steps.

The tomogram itself says by how much. Its missing wedge filled with the
prediction (the input of the consistency term in training), rotated by a
cube rotation that moves the wedge and seen through the missing wedge
again, some of its measured data fall inside the wedge that the generator
has to fill; there, the least-squares gain of the prediction against those
data, shell by shell,

    gain = Re <prediction, data> / |prediction|^2,

is the factor that scales the filling to the data (the data's noise is
independent of a prediction made from other frequencies, so it averages
out). Without the filling, the rotated input would lack a second wedge that
training never showed the generator, and the gains would overshoot (on the
paper's prism, -1.5 dB instead of +0.2). :func:`wedge_gains` measures the
gains over a few rotations of a volume, capped to ``[0, GAIN_CAP]``
(:func:`shell_gains`: in the upper shells, pooled with their neighbours
where they agree within their errors, so that no lone gain of 0 draws a
dark ring in the Fourier slices);
:func:`scale_wedge` applies them to the missing wedge of a prediction;
:func:`calibrate_wedge` does both for a prediction of a volume (measured on
its central crop). The measured region is not touched.

The gains are measured per shell and per third of the depth into the
wedge (:func:`wedge_bins`, :data:`GAIN_DEPTH_BINS`): within a shell the
generator fills the wedge's edges, next to the data, better than its
middle. On the paper's noise-free prism the filling ran at 1.3 to 4 times
too little amplitude near the edges and was mostly wrong in the middle;
gains fitted to the truth would have added +1.3 dB per shell and +1.8 dB
per shell and depth, and the measured gains per depth added +0.15 dB (and
+0.26 dB on the sphere) to those per shell (docs/benchmarks).

Pure numpy (``scipy.fft``); the caller runs the generator (:func:`.run.run_inference`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import fft as _fft
from scipy import ndimage

from ..rotations import WEDGE_MOVING_ROTATIONS, rotate
from ..wedge import WedgeGeometry, apply_wedge, wedge_depth, wedge_mask

__all__ = [
    "CALIBRATION_MAX_VOXELS",
    "CALIBRATION_ROTATIONS",
    "GAIN_CAP",
    "GAIN_DEPTH_BINS",
    "calibrate_wedge",
    "calibration_crop",
    "frequency_radius",
    "scale_missing",
    "scale_wedge",
    "shell_gains",
    "shell_index",
    "wedge_bins",
    "wedge_gains",
]

#: How many rotations of the volume the gains are measured on (spread over the wedge-moving ones).
CALIBRATION_ROTATIONS = 4

#: The largest gain applied: single shells of sparse volumes give noisy estimates.
GAIN_CAP = 4.0

#: Bins of depth into the missing wedge (from its edges to its middle) the gains are measured in, per shell.
GAIN_DEPTH_BINS = 3

#: Larger volumes are calibrated on their central crop of about this many voxels.
CALIBRATION_MAX_VOXELS = 1 << 24


def shell_index(shape: tuple[int, ...], edge: int | None = None) -> np.ndarray:
    """Shell of every rfftn coefficient: the radius in cycles per voxel in bins of ``2 / edge``
    (default ``min(shape)``: the same bins for every permutation of ``shape``)."""
    edge = min(shape) if edge is None else int(edge)
    return np.rint(frequency_radius(shape) * (edge / 2.0)).astype(np.int32)


def frequency_radius(shape: tuple[int, ...]) -> np.ndarray:
    """The radius of every rfftn coefficient of a ``shape`` volume, in cycles per voxel."""
    fz = np.fft.fftfreq(shape[0])[:, None, None]
    fy = np.fft.fftfreq(shape[1])[None, :, None]
    fx = np.fft.rfftfreq(shape[2])[None, None, :]
    return np.sqrt(fz**2 + fy**2 + fx**2)


def wedge_bins(shape: tuple[int, ...], geometry: WedgeGeometry, edge: int | None = None,
               depth_bins: int = 1) -> np.ndarray:
    """Bin of every rfftn coefficient of the missing wedge: ``shell * depth_bins + depth bin``
    (shells of :func:`shell_index` with bins of ``2 / edge``; depth bins of equal width in
    :func:`~napari_dewedge.core.wedge.wedge_depth`, from the wedge's edges to its middle),
    -1 in the measured region."""
    shape = tuple(int(s) for s in shape)
    shells = shell_index(shape, edge)
    missing = np.broadcast_to(np.asarray(wedge_mask(shape, geometry)) < 0.5, shells.shape)
    if depth_bins > 1:
        depth = np.broadcast_to(wedge_depth(shape, geometry), shells.shape)
        shells = shells * depth_bins + np.minimum((depth * depth_bins).astype(np.int32), depth_bins - 1)
    return np.where(missing, shells, -1).astype(np.int32)


def calibration_crop(shape: tuple[int, ...], max_voxels: int = CALIBRATION_MAX_VOXELS) -> tuple[slice, ...]:
    """The central crop of ``shape`` with at most about ``max_voxels`` voxels (the whole volume if it has fewer)."""
    total = float(np.prod(shape))
    scale = min(1.0, (max_voxels / total) ** (1.0 / 3.0)) if total > 0 else 1.0
    edges = [max(1, min(int(n), int(round(n * scale)))) for n in shape]
    return tuple(slice((n - e) // 2, (n - e) // 2 + e) for n, e in zip(shape, edges))


def _rotated_measured(shape: tuple[int, ...], rotation: Any, geometry: WedgeGeometry) -> np.ndarray:
    """Where the rotated volume holds measured data: rfftn mask in the rotated frame (exact for a cube
    rotation; found by rotating wedge-filtered noise)."""
    noise = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    kept = np.abs(_fft.rfftn(rotate(apply_wedge(noise, geometry), rotation)))
    whole = np.abs(_fft.rfftn(rotate(noise, rotation)))
    return kept > 0.99 * whole


def wedge_gains(volume: np.ndarray, geometry: WedgeGeometry, predict: Callable[[np.ndarray], np.ndarray], *,
                rotations: int = CALIBRATION_ROTATIONS, cap: float = GAIN_CAP,
                depth_bins: int = GAIN_DEPTH_BINS) -> np.ndarray:
    """Gain of the wedge filling per bin of :func:`wedge_bins` (shells of ``2 / min(volume.shape)``,
    ``depth_bins`` depths into the wedge each).

    ``predict`` maps a volume to the generator's prediction (same shape). Each
    of ``rotations`` wedge-moving cube rotations of ``volume`` is seen through
    the missing wedge and predicted; the bins compare the prediction with
    the rotated data where those were measured and the input's wedge hid them.
    Each depth's shells are capped and pooled by :func:`shell_gains`; bins
    with nothing to compare take their neighbours' gain (1 when none has any).
    """
    volume = np.asarray(volume, dtype=np.float32)
    shape = tuple(int(s) for s in volume.shape)
    depth_bins = max(1, int(depth_bins))
    nbins = (int(shell_index(shape).max()) + 1) * depth_bins
    num = np.zeros(nbins)
    den = np.zeros(nbins)
    power = np.zeros(nbins)
    count = np.zeros(nbins)
    step = max(1, len(WEDGE_MOVING_ROTATIONS) // max(1, int(rotations)))
    for rotation in WEDGE_MOVING_ROTATIONS[::step][: int(rotations)]:
        turned = np.ascontiguousarray(rotate(volume, rotation))
        rshape = tuple(turned.shape)
        hidden = _rotated_measured(shape, rotation, geometry)
        hidden &= np.broadcast_to(np.asarray(wedge_mask(rshape, geometry)) < 0.01, hidden.shape)
        if not hidden.any():
            continue
        data = _fft.rfftn(turned)[hidden]
        pred = _fft.rfftn(np.asarray(predict(apply_wedge(turned, geometry).astype(np.float32)), np.float32))[hidden]
        bins = wedge_bins(rshape, geometry, min(shape), depth_bins)[hidden]
        num += np.bincount(bins, weights=(pred.real * data.real + pred.imag * data.imag), minlength=nbins)[:nbins]
        den += np.bincount(bins, weights=pred.real**2 + pred.imag**2, minlength=nbins)[:nbins]
        power += np.bincount(bins, weights=data.real**2 + data.imag**2, minlength=nbins)[:nbins]
        count += np.bincount(bins, minlength=nbins)[:nbins]
    sums = [a.reshape(-1, depth_bins) for a in (num, den, power, count)]
    gains = np.stack([shell_gains(*(a[:, j] for a in sums), nyquist=int(round(min(shape) / 4)), cap=cap)
                      for j in range(depth_bins)], axis=1)
    return gains.ravel()


#: A gain of the upper shells within this many standard errors of its neighbours' pooled gain takes the pooled one.
POOL_ERRORS = 3.0


def shell_gains(num: np.ndarray, den: np.ndarray, power: np.ndarray, count: np.ndarray, *, nyquist: int,
                cap: float = GAIN_CAP) -> np.ndarray:
    """Gains per shell from the sums of :func:`wedge_gains`, capped to ``[0, cap]``.

    ``num`` and ``den`` are the sums of ``Re <prediction, data>`` and
    ``|prediction|^2`` per shell, ``power`` of ``|data|^2``, ``count`` the
    coefficients; ``nyquist`` is the shell of half a cycle per voxel. A
    shell's own least-squares gain ``num / den`` has a standard error from
    its residual, ``sqrt((power - num^2 / den) / (2 count - 1) / den)``. In
    the upper half of the frequencies, where the data are weakest, a gain
    within :data:`POOL_ERRORS` standard errors of the gain pooled over its
    neighbours (the sums smoothed by a Gaussian of one shell) takes the
    pooled one: a lone estimate that fell to 0 by chance drew a dark ring
    in the Fourier slices. Past Nyquist (the cube's corners) the pooled gain
    is taken always, and where a shell has nothing to compare. The lower
    half keeps its own gains: pooled there, the paper's prism and rings
    lost 0.3-0.8 dB (docs/benchmarks).
    """
    num, den, power, count = (np.asarray(a, dtype=np.float64) for a in (num, den, power, count))
    pooled_num = ndimage.gaussian_filter1d(num, 1.0, mode="nearest")
    pooled_den = ndimage.gaussian_filter1d(den, 1.0, mode="nearest")
    shells = np.arange(num.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        own = np.where(den > 0, num / den, np.nan)
        pooled = np.where(pooled_den > 0, pooled_num / pooled_den, 1.0)
        error = np.sqrt(np.maximum(power - num * own, 0.0) / np.maximum(2.0 * count - 1.0, 1.0) / den)
    agrees = np.abs(own - pooled) <= POOL_ERRORS * error
    take_pooled = ~np.isfinite(own) | (shells > nyquist) | ((shells > nyquist / 2) & agrees)
    return np.clip(np.where(take_pooled, pooled, own), 0.0, float(cap))


def scale_wedge(prediction: np.ndarray, geometry: WedgeGeometry, gains: np.ndarray,
                edge: int | None = None, depth_bins: int = GAIN_DEPTH_BINS) -> np.ndarray:
    """``prediction`` with its missing wedge scaled by ``gains``, in place.

    ``gains`` are per bin of :func:`wedge_bins` with shells of ``2 / edge``
    (``edge``: the smallest edge of the volume they were measured on; default
    the prediction's own) and ``depth_bins`` depths each; shells beyond them
    keep their amplitude.
    """
    shape = tuple(int(s) for s in prediction.shape)
    gains = np.append(np.asarray(gains, dtype=np.float32), np.float32(1.0))
    bins = wedge_bins(shape, geometry, edge, depth_bins)
    factor = gains[np.where((bins >= 0) & (bins < gains.shape[0] - 1), bins, gains.shape[0] - 1)]
    return scale_missing(prediction, geometry, factor)


def scale_missing(prediction: np.ndarray, geometry: WedgeGeometry, factor: np.ndarray) -> np.ndarray:
    """``prediction`` with its missing wedge multiplied by ``factor`` (per rfftn coefficient,
    broadcastable), in place; the measured region is kept."""
    shape = tuple(int(s) for s in prediction.shape)
    spectrum = _fft.rfftn(np.asarray(prediction, dtype=np.float32))
    missing = 1.0 - np.asarray(wedge_mask(shape, geometry), dtype=np.float32)
    spectrum *= 1.0 + missing * (np.asarray(factor, dtype=np.float32) - 1.0)
    prediction[...] = _fft.irfftn(spectrum, s=shape)
    return prediction


def calibrate_wedge(prediction: np.ndarray, volume: Any, geometry: WedgeGeometry,
                    predict: Callable[[np.ndarray], np.ndarray], *,
                    max_voxels: int = CALIBRATION_MAX_VOXELS, depth_bins: int = GAIN_DEPTH_BINS) -> np.ndarray:
    """Scale ``prediction``'s missing wedge (in place) by the gains measured on ``volume``; returns the gains
    (per bin of :func:`wedge_bins` with ``depth_bins`` depths).

    The gains come from :func:`wedge_gains` on the central crop of ``volume``
    (:func:`calibration_crop`) with its missing wedge filled by the same crop
    of ``prediction``; ``predict`` is the generator applied to a volume.
    """
    crop = calibration_crop(tuple(np.shape(volume)), max_voxels)
    part = np.asarray(volume[crop], dtype=np.float32)
    fill = np.asarray(prediction[crop], dtype=np.float32)
    source = (apply_wedge(part, geometry) + fill - apply_wedge(fill, geometry)).astype(np.float32)
    gains = wedge_gains(source, geometry, predict, depth_bins=depth_bins)
    scale_wedge(prediction, geometry, gains, edge=min(part.shape), depth_bins=depth_bins)
    return gains
