"""Observation-noise estimate of a tomogram and the noise settings of a run.

:func:`estimate_noise` splits the noise of a normalised tomogram into a white
part (seen alone inside the missing wedge) and a wedge-filtered part (the
excess power in the measured region at high spatial frequency);
:func:`resolve_noise` turns the estimate and a :class:`~.config.TrainingConfig`
into the run's ``sigma_n``, ``noise_scale``, synthetic-noise amplitudes and
fidelity weight: on a tomogram with no noise to speak of (:func:`noise_free`)
the recorrupted fidelity term is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft

from ..wedge import WedgeGeometry, apply_wedge, measured_fraction, wedge_mask
from .config import _MIN_SIGMA_N, _NOISE_SCALE_RANGE

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .config import TrainingConfig

__all__ = [
    "NOISE_FREE_RATIO",
    "NoiseEstimate",
    "estimate_noise",
    "noise_free",
    "resolve_noise",
    "synthetic_noise",
    "tomogram_noise",
    "whole_wedge_power",
]

#: A volume whose variance exceeds its noise's this many times is taken as noise-free: there the
#: estimate is the estimator's floor. With the whole volume bounding the white part
#: (:func:`whole_wedge_power`) that floor is the structure the cubes hold at high frequency, read as
#: wedge-filtered noise: none on the paper's sphere and prism and on GroEL, 0.05-0.09 of the spread
#: on the paper's rings and beta-galactosidase. Noisy tomograms read far above: 0.25 on a cell scene at
#: SNR 16, 0.8 on the real crops. (The cubes alone read 0.02-0.16 on the noise-free ones, GroEL the
#: highest, from their windows' leakage into the wedge.)
NOISE_FREE_RATIO = 50.0

#: The largest edge of the central crop :func:`whole_wedge_power` transforms.
WHOLE_MAX_EDGE = 256


@dataclass(frozen=True)
class NoiseEstimate:
    """Observation noise of a normalised tomogram (per-voxel standard deviations).

    ``white_std``: the part spread over all of Fourier space; ``wedge_std``: the
    part confined to the measured region (its per-voxel standard deviation).
    """

    white_std: float
    wedge_std: float

    @property
    def total_std(self) -> float:
        return float(math.hypot(self.white_std, self.wedge_std))

    @property
    def kind(self) -> str:
        """``"white"``, ``"wedge-filtered"`` or ``"mixed"``."""
        total = self.total_std**2
        if total <= 0 or self.white_std**2 >= 0.8 * total:
            return "white"
        if self.wedge_std**2 >= 0.8 * total:
            return "wedge-filtered"
        return "mixed"

    def to_dict(self) -> dict[str, Any]:
        return {"white_std": float(self.white_std), "wedge_std": float(self.wedge_std), "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NoiseEstimate":
        return cls(float(data["white_std"]), float(data["wedge_std"]))

    def __str__(self) -> str:
        return f"{self.kind} noise, std {self.total_std:.3g} (white {self.white_std:.3g}, wedge-filtered {self.wedge_std:.3g})"


def _widened(geometry: WedgeGeometry, degrees: float) -> WedgeGeometry:
    return WedgeGeometry(
        max(-90.0, geometry.tilt_min - degrees), min(90.0, geometry.tilt_max + degrees), geometry.tilt_axis
    )


def _narrowed(geometry: WedgeGeometry, degrees: float) -> WedgeGeometry:
    lo, hi = geometry.tilt_min + degrees, geometry.tilt_max - degrees
    if lo > hi:
        lo = hi = 0.5 * (geometry.tilt_min + geometry.tilt_max)
    return WedgeGeometry(lo, hi, geometry.tilt_axis)


def _missing_band(shape: tuple[int, ...], geometry: WedgeGeometry, margin_deg: float,
                  band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The radius (cycles/voxel) of every coefficient of a ``shape`` volume's rfftn, and which lie inside
    the missing wedge widened by ``margin_deg`` at radii in ``band``."""
    fz = np.fft.fftfreq(shape[0])[:, None, None]
    fy = np.fft.fftfreq(shape[1])[None, :, None]
    fx = np.fft.rfftfreq(shape[2])[None, None, :]
    full = (shape[0], shape[1], shape[2] // 2 + 1)
    radius = np.broadcast_to(np.sqrt(fz**2 + fy**2 + fx**2), full)
    missing = np.broadcast_to(wedge_mask(shape, _widened(geometry, margin_deg), full=True), full) == 0
    return radius, missing & (radius >= band[0]) & (radius <= band[1])


def estimate_noise(
    cubes: np.ndarray,
    geometry: WedgeGeometry,
    *,
    margin_deg: float = 10.0,
    white_band: tuple[float, float] = (0.2, 1.0),
    measured_band: tuple[float, float] = (0.35, 1.0),
    quantile: float = 0.25,
    white_bound: float | None = None,
) -> NoiseEstimate:
    """Estimate white and wedge-filtered noise from cubes ``(n, d, d, d)`` of a normalised tomogram.

    Each cube is de-meaned and Hann-windowed; the power spectrum is averaged
    (normalised so that white noise of variance ``s^2`` has power ``s^2``).
    The white level is the mean power inside the missing wedge (shrunk by
    ``margin_deg`` to keep clear of leakage) at radii in ``white_band``
    (cycles/voxel); the wedge-filtered part is the excess power in the
    measured region (shrunk by ``margin_deg``) at radii in ``measured_band``,
    cube by cube, taken at the ``quantile`` over the cubes: cubes of empty
    ice or vacuum show the noise alone, while structure adds power. Without
    a missing wedge all noise counts as white. ``white_bound``, a second
    bound on the white power (:func:`whole_wedge_power` of the same tomogram,
    normalised alike), caps the white level: each reads the noise plus a
    leakage of its own, so the lower one is the tighter.
    """
    cubes = np.asarray(cubes, dtype=np.float32)
    if cubes.ndim != 4 or len(cubes) == 0:
        raise ValueError(f"cubes must have shape (n, d, d, d) with n >= 1, got {cubes.shape}")
    shape = cubes.shape[1:]
    win = [np.hanning(n + 2)[1:-1] for n in shape]  # strictly positive Hann
    window = (win[0][:, None, None] * win[1][None, :, None] * win[2][None, None, :]).astype(np.float32)
    norm = float((window.astype(np.float64) ** 2).sum())
    radius, sel_miss = _missing_band(shape, geometry, margin_deg, white_band)
    measured = np.broadcast_to(wedge_mask(shape, _narrowed(geometry, margin_deg), full=True), radius.shape) == 1
    sel_meas = measured & (radius >= measured_band[0]) & (radius <= measured_band[1])
    if not sel_meas.any():
        sel_meas = measured & (radius > 0)
    # every cube in one transform, on every core (the inference's passes make seven estimates an application)
    spec = scipy.fft.rfftn((cubes - cubes.mean(axis=(1, 2, 3), keepdims=True)) * window, axes=(1, 2, 3), workers=-1)
    power = (spec.real**2 + spec.imag**2) / np.float32(norm)
    meas = power[:, sel_meas].mean(axis=1, dtype=np.float64)
    if not sel_miss.any():
        return NoiseEstimate(math.sqrt(max(float(np.quantile(meas, quantile)), 0.0)), 0.0)
    white = power[:, sel_miss].mean(axis=1, dtype=np.float64)
    white_power = float(white.mean())
    extra = max(float(np.quantile(meas - white, quantile)), 0.0)
    if white_bound is not None:
        white_power = min(white_power, float(white_bound))
    frac = measured_fraction(shape, geometry)
    return NoiseEstimate(math.sqrt(max(white_power, 0.0)), math.sqrt(extra * frac))


def whole_wedge_power(volume: Any, geometry: WedgeGeometry, *, margin_deg: float = 10.0,
                      band: tuple[float, float] = (0.2, 1.0), max_edge: int = WHOLE_MAX_EDGE) -> float | None:
    """Mean power per voxel inside the missing wedge of the whole volume's spectrum (shrunk by
    ``margin_deg``, radii in ``band`` cycles/voxel), normalised so that white noise of variance ``s^2``
    reads ``s^2``: a bound on the white noise for :func:`estimate_noise`. A volume with an edge over
    ``max_edge`` is read through its central crop of that edge. None without a missing wedge there.

    No window: a cube's window spreads the signal's power into the wedge, and on a noise-free map with
    fine detail (GroEL, 2 A a voxel) the cubes read a white noise of 0.16 of the spread, so that the map
    was taken as noisy. A noise-free tomogram, its wedge taken out of the whole volume, holds no power
    there at all. A real tomogram's edges leak instead (its faces do not meet periodically), which can
    only raise this bound."""
    shape = tuple(int(n) for n in np.shape(volume))
    if len(shape) != 3:
        raise ValueError(f"whole_wedge_power needs a 3D volume, got shape {shape}")
    crop = tuple(slice((n - min(n, max_edge)) // 2, (n - min(n, max_edge)) // 2 + min(n, max_edge)) for n in shape)
    part = np.asarray(volume[crop], dtype=np.float32)  # only the crop is read from a memory-mapped or lazy volume
    _, select = _missing_band(part.shape, geometry, margin_deg, band)
    if not select.any():
        return None
    spec = scipy.fft.rfftn(part - np.float32(part.mean()), workers=-1)[select]
    return float(np.mean(spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2) / part.size)


def tomogram_noise(volume: Any, cubes: np.ndarray, geometry: WedgeGeometry, std: float = 1.0) -> NoiseEstimate:
    """:func:`estimate_noise` of ``cubes`` of ``volume`` (normalised: divided by ``std``), its white level
    bounded by :func:`whole_wedge_power` of ``volume`` in the same units."""
    bound = whole_wedge_power(volume, geometry)
    return estimate_noise(cubes, geometry, white_bound=None if bound is None else bound / float(std) ** 2)


def noise_free(noise_std: float, variance: float = 1.0) -> bool:
    """Whether a volume of ``variance`` (1: a normalised tomogram) with noise of deviation
    ``noise_std`` holds no noise to speak of: its variance over :data:`NOISE_FREE_RATIO` times the
    noise's."""
    return variance > NOISE_FREE_RATIO * float(noise_std) ** 2


def resolve_noise(config: "TrainingConfig", estimate: NoiseEstimate) -> dict[str, float]:
    """Final noise settings: sigma_n, noise_scale, the synthetic noise amplitudes and the fidelity weight.

    ``sigma_n`` defaults to the estimated total standard deviation, floored at
    0.5; ``noise_scale`` to ``sqrt(3)`` times it, within [0.1, 2]; the synthetic
    noise follows ``noise_model`` (``"auto"``: the estimated split). The
    fidelity weight is the config's, but 0 for the recorrupted fidelity
    target on a noise-free tomogram (:func:`noise_free` of the total noise,
    white and wedge-filtered together: a real tomogram's noise is mostly
    wedge-filtered) unless ``sigma_n`` is
    given: that term is there to remove noise, and with none to remove its
    weight is at its largest (``sigma_n`` at its floor) and it held the wedge's
    filling back (on the paper's sphere and prism at their sizes, 300 s on a
    CPU: -4.4 and -1.4 dB, -0.11 and -0.07 missing-wedge FSC-AUC;
    docs/benchmarks); the consistency term's target keeps the data in the
    measured region. The plain fidelity to the observation (CryoGEN's own,
    and the baselines') stays.
    """
    cfg, est = config, estimate
    total = est.total_std
    sigma_n = float(cfg.sigma_n) if cfg.sigma_n is not None else max(total, _MIN_SIGMA_N)
    if cfg.noise_scale is not None:
        scale = float(cfg.noise_scale)
    else:
        # sqrt(3) sigma: the drawn noise (u * scale, u uniform) then has on
        # average the variance of the observation noise.
        scale = float(np.clip(math.sqrt(3.0) * total, *_NOISE_SCALE_RANGE))
    white, wedge = est.white_std, est.wedge_std
    if cfg.noise_model == "white":
        white, wedge = sigma_n, 0.0
    elif cfg.noise_model == "wedge":
        white, wedge = 0.0, sigma_n
    elif cfg.noise_model == "none":
        white, wedge = 0.0, 0.0
    elif cfg.sigma_n is not None and total > 0:  # auto with a given level: keep the estimated split
        white, wedge = white * sigma_n / total, wedge * sigma_n / total
    elif cfg.sigma_n is not None:
        white = sigma_n
    dropped = cfg.fidelity_target == "recorrupted" and cfg.sigma_n is None and noise_free(est.total_std)
    fidelity = 0.0 if dropped else float(cfg.fidelity_weight)
    return {"sigma_n": sigma_n, "noise_scale": scale, "white_std": white, "wedge_std": wedge,
            "fidelity_weight": fidelity}


def synthetic_noise(
    amplitudes: Mapping[str, float],
    randn: Callable[[tuple[int, ...]], "torch.Tensor"],
    shape: tuple[int, ...],
    geometry: WedgeGeometry,
    measured: float,
) -> "torch.Tensor | None":
    """Noise of the observation's statistics (``white_std``, ``wedge_std`` of :func:`resolve_noise`).

    ``randn(shape)`` draws standard normal tensors (white first, then the
    wedge-filtered part, whose per-voxel std is restored by ``1/sqrt(measured)``,
    the measured fraction of Fourier space); None when both amplitudes are 0.
    """
    out = None
    if amplitudes["white_std"] > 0:
        out = amplitudes["white_std"] * randn(shape)
    if amplitudes["wedge_std"] > 0:
        wedge = (amplitudes["wedge_std"] / math.sqrt(measured)) * apply_wedge(randn(shape), geometry)
        out = wedge if out is None else out + wedge
    return out
