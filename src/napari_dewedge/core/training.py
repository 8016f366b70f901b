"""CryoGEN training: a generator ``g`` learns to dewedge and denoise one tomogram.

Notation: ``y`` is a normalised subtomogram of the observed tomogram,
``T`` the missing-wedge operator (:func:`~.wedge.apply_wedge`), ``R`` one of
the 20 cube rotations that move the wedge (a fresh one per sample and step),
``g'`` a frozen copy of ``g`` refreshed at the start of every epoch, and
``e_g``, ``e_h``, ``e`` white Gaussian noise whose standard deviation is
``u * noise_scale`` with ``u`` drawn uniformly in (0, 1] at every step.

Each step

1. updates the energy network ``E`` so that real observations get low energy
   and re-corrupted predictions high energy::

       real = T y + e
       fake = T (R g(y + e_g) + n_syn) + e

   with the ``"gan"`` objective ``softplus(E(real)) + softplus(-E(fake))``
   (the logistic loss with ``-E`` as logit) or the ``"wgan-gp"`` objective
   ``E(real) - E(fake) + gp_weight * (|grad E(mix)| - 1)^2 + 1e-3 E(real)^2``
   (Wasserstein with gradient penalty on random mixtures of the two, and a
   small drift term that keeps energies near zero);
2. updates ``g`` on ``energy_weight * L_E + fidelity_weight * L_fid + lambda * L_cons``:

   * ``L_E``: the energy of its re-corrupted predictions, ``softplus(E(fake))``
     (``"gan"``, non-saturating) or ``E(fake)`` (``"wgan-gp"``, reported
     relative to the mean energy of the real side, i.e. as the Wasserstein
     gap estimate);
   * ``L_fid = mean |T (g(y + e_g) - y)|^2 / (2 sigma_n^2)``: the paper's
     ``|T g - y|^2`` less its part outside the measured region, which ``g``
     cannot change (``T`` is an orthogonal projection), so that the value
     reads 0 for a prediction that agrees with the data;
   * ``L_cons = mean |R^-1 g(T R (g'(y) + e_h)) - g'(y)|^2`` (IsoNet-like);
     ``lambda`` is constant in the first epoch, then decays linearly to
     ``lambda_final * lambda_consistency`` at the last step.

Why ``n_syn``: real observations carry the acquisition noise ``n`` while
``T R g(.)`` is (ideally) clean, so a discriminator would simply learn to detect
noise, and push ``g`` to *produce* noise. The comparison is made fair by
re-noising the predictions with synthetic noise of the observation's
statistics (the measurement model is ``y = T x + n``, so a good ``g`` makes
``T (R g + n_syn)`` indistinguishable from ``T y``, as in AmbientGAN/CryoGAN).
Both sides are seen through ``T``: a subtomogram cut from the tomogram leaks
power into its wedge at its edges, which re-corrupted predictions never do,
and an energy network shown the raw crop learns that difference alone.
The noise is estimated from the tomogram before training (:func:`estimate_noise`)
with a two-part model: a *white* part, seen alone inside the missing wedge
(where neither signal nor wedge-filtered noise reach), and a *wedge-filtered*
part, confined to the measured region like the signal: the excess of the
power in the measured region over the white level at high spatial frequency
(0.35-0.5 cycles/voxel, where the signal is assumed weak). Noise added after
reconstruction (e.g. simulated ``T x + n``) shows up as white, noise
reconstructed from the tilt series as wedge-filtered. The estimate is an
upper bound where the signal is strong at high frequency, and misses
colouring of the noise spectrum (e.g. from SIRT-like filters); the extra
instance noise ``e``, identical on both sides, softens the remaining mismatch.
``noise_model`` overrides the estimate (``"white"``, ``"wedge"``, ``"none"``).
The estimated total standard deviation ``sigma`` is also the default
``sigma_n`` of the fidelity term, floored at 0.5: real tomograms measure
0.8 or more, and below the floor (clean or simulated data) the fidelity weight
``1/(2 sigma_n^2)`` would outweigh the consistency term by orders of magnitude,
and the wedge would never be filled (on the noiseless sphere phantom, a floor
of 0.05 left the PSNR unchanged where 0.5 raised it by 2.3 dB). ``sqrt(3) * sigma`` (within [0.1, 2])
the default ``noise_scale``, so that the drawn noise has on average the
variance of the observation noise; both are in units of the tomogram's
standard deviation.

Data: subtomograms are drawn at random positions whose centre lies in the
non-empty part of the tomogram (:func:`~.tiling.foreground_mask`), from a pool
of ``n_subtomos`` positions per epoch, each randomly cropped from a cube a
quarter larger, and normalised with the mean and standard deviation of the
whole tomogram (kept in the model). Tomograms thinner than the subtomogram size
(common: slabs of 30-60 voxels) get the subtomogram size reduced to the largest
multiple of the U-Net's padding multiple that fits; when even the smallest
size the U-Net accepts does not fit, the tomogram is padded by reflection to
that size. The event stream reports either change.

Optimisation: Adam for both networks (``lr``, default 1e-4), linear warm-up
over the first ``warmup_fraction`` of the steps and linear decay after it;
mixed precision (bfloat16, or float16 with loss scaling) on CUDA. Runs with the
same seed on the CPU are reproducible: identical losses and weights.

:class:`Trainer` runs the loop as a generator of :class:`TrainingEvent`; it stops
cleanly between steps on :meth:`Trainer.request_stop` or when the consumer
stops iterating, writes resumable checkpoints (weights, optimiser states, step
and random state; atomically; safe to load with ``weights_only=True``) every
``checkpoint_every_s`` seconds and at the end, and releases GPU memory when the
run ends, however it ends.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from . import tiling
from .device import amp_dtype, autocast_context, configure_cpu_threads, release_device_memory, resolve_device
from .model import MODEL_FORMAT_VERSION, ModelFileError, TrainedModel, atomic_torch_save, current_versions, safe_torch_load
from .networks import EnergyNet, UNet3D, build_energy, build_generator
from .rotations import WEDGE_MOVING_ROTATIONS
from .wedge import WedgeGeometry, apply_wedge, measured_fraction, wedge_mask

__all__ = [
    "ENERGY_OBJECTIVES",
    "NOISE_MODELS",
    "PRESETS",
    "CHECKPOINT_FORMAT",
    "NoiseEstimate",
    "TrainingConfig",
    "TrainingEvent",
    "Trainer",
    "estimate_noise",
    "plan_subtomo_size",
    "fit",
]

ENERGY_OBJECTIVES = ("gan", "wgan-gp")
NOISE_MODELS = ("auto", "white", "wedge", "none")
CHECKPOINT_FORMAT = "napari-dewedge-checkpoint"
_WGAN_DRIFT = 1e-3
_MIN_SIGMA_N = 0.5
_NOISE_SCALE_RANGE = (0.1, 2.0)
_DEFAULT_UNET: dict[str, Any] = {"depth": 3, "width": 16, "norm": "instance", "residual": True}

#: Settings of the named presets (merged over the :class:`TrainingConfig` defaults).
#: The U-Nets use batch normalisation: instance normalisation rescales every tile
#: to unit variance, so in flat regions (empty background, vacuum) it blows faint
#: ripples up into blotches; with batch statistics the quick preset gained 1 dB
#: PSNR and doubled the restored missing-wedge FSC on the prism phantom, 2 dB on
#: the sphere, and kept the real microtubule tomogram clean.
PRESETS: dict[str, dict[str, Any]] = {
    # A laptop CPU: a 96^3 tomogram is fitted and applied in a few minutes on 2 cores.
    # lambda stays constant: in so short a run the energy network cannot carry the
    # wedge alone (on the sphere phantom, decaying it cost 0.75 dB). The energy term
    # is the gentle one: on the real microtubule tomogram, the GAN objective (weight
    # 1 or 0.1) lets the energy network win outright and pushes the generator to
    # stripes along z and inverted filaments; Wasserstein with gradient penalty, a
    # slower energy network and weight 0.1 keeps both sides level and the result clean.
    "quick": {
        "subtomo_size": 32,
        "n_subtomos": 64,
        "steps": 480,
        "lambda_decay": False,
        "energy_objective": "wgan-gp",
        "energy_weight": 0.1,
        "energy_lr": 1e-4,
        "batch_size": 4,
        "lr": 1e-3,
        "unet": {"depth": 2, "width": 8, "norm": "batch", "residual": True},
        "energy_width": 8,
        "preview_every": 20,
    },
    # A GPU: minutes to tens of minutes.
    "standard": {
        "subtomo_size": 64,
        "n_subtomos": 256,
        "steps": 3000,
        "batch_size": 4,
        "lr": 2e-4,
        "unet": {"depth": 3, "width": 32, "norm": "batch", "residual": True},
        "energy_width": 16,
        "preview_every": 100,
    },
    # A GPU and some patience.
    "thorough": {
        "subtomo_size": 96,
        "n_subtomos": 512,
        "steps": 8000,
        "batch_size": 4,
        "lr": 1e-4,
        "unet": {"depth": 4, "width": 32, "norm": "batch", "residual": True},
        "energy_width": 32,
        "preview_every": 200,
    },
}


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


def _check_int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_float(value: Any, name: str, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and (value < lo or (open_lo and value == lo)):
        raise ValueError(f"{name} must be {'>' if open_lo else '>='} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value!r}")


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of a CryoGEN training run (see the module docstring for their roles).

    Noise levels (``noise_scale``, ``sigma_n``) are in units of the tomogram's
    standard deviation; None means "estimate from the data".
    """

    subtomo_size: int = 32
    n_subtomos: int = 128
    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    energy_lr: float | None = None
    adam_betas: tuple[float, float] = (0.5, 0.999)
    warmup_fraction: float = 0.1
    lambda_consistency: float = 1.0
    lambda_decay: bool = True
    lambda_final: float = 0.0
    noise_scale: float | None = None
    sigma_n: float | None = None
    noise_model: str = "auto"
    energy_objective: str = "gan"
    gp_weight: float = 10.0
    energy_weight: float = 1.0
    fidelity_weight: float = 1.0
    energy_steps: int = 1
    unet: dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_UNET))
    energy_width: int = 16
    energy_spectral_norm: bool = False
    steps_per_epoch: int | None = None
    preview_every: int = 50
    mask_empty: bool = True
    seed: int | None = 0
    device: str = "auto"
    amp: bool = True
    checkpoint_every_s: float | None = 600.0
    num_threads: int | None = None

    def __post_init__(self) -> None:
        _check_int(self.subtomo_size, "subtomo_size", 8)
        _check_int(self.n_subtomos, "n_subtomos", 1)
        _check_int(self.steps, "steps", 1)
        _check_int(self.batch_size, "batch_size", 1)
        _check_float(self.lr, "lr", 0.0, open_lo=True)
        if self.energy_lr is not None:
            _check_float(self.energy_lr, "energy_lr", 0.0, open_lo=True)
        betas = tuple(self.adam_betas)
        if len(betas) != 2:
            raise ValueError(f"adam_betas must be two numbers, got {self.adam_betas!r}")
        for b in betas:
            _check_float(b, "adam_betas", 0.0, 0.9999)
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in betas))
        _check_float(self.warmup_fraction, "warmup_fraction", 0.0, 0.9)
        _check_float(self.lambda_consistency, "lambda_consistency", 0.0)
        _check_float(self.lambda_final, "lambda_final", 0.0, 1.0)
        if self.noise_scale is not None:
            _check_float(self.noise_scale, "noise_scale", 0.0)
        if self.sigma_n is not None:
            _check_float(self.sigma_n, "sigma_n", 0.0, open_lo=True)
        if self.noise_model not in NOISE_MODELS:
            raise ValueError(f"noise_model must be one of {NOISE_MODELS}, got {self.noise_model!r}")
        if self.energy_objective not in ENERGY_OBJECTIVES:
            raise ValueError(f"energy_objective must be one of {ENERGY_OBJECTIVES}, got {self.energy_objective!r}")
        _check_float(self.gp_weight, "gp_weight", 0.0)
        _check_float(self.energy_weight, "energy_weight", 0.0)
        _check_float(self.fidelity_weight, "fidelity_weight", 0.0)
        _check_int(self.energy_steps, "energy_steps", 1)
        _check_int(self.energy_width, "energy_width", 1)
        if self.steps_per_epoch is not None:
            _check_int(self.steps_per_epoch, "steps_per_epoch", 1)
        _check_int(self.preview_every, "preview_every", 0)
        if self.seed is not None:
            _check_int(self.seed, "seed", 0)
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', got {self.device!r}")
        if self.checkpoint_every_s is not None:
            _check_float(self.checkpoint_every_s, "checkpoint_every_s", 0.0)
        if self.num_threads is not None:
            _check_int(self.num_threads, "num_threads", 1)
        if not isinstance(self.unet, Mapping):
            raise ValueError(f"unet must be a dict of UNet3D settings, got {self.unet!r}")
        unet = {**_DEFAULT_UNET, **dict(self.unet)}
        try:
            probe = build_generator({**unet, "width": 1, "max_channels": 1})  # validates cheaply
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid unet settings {dict(self.unet)}: {exc}") from None
        if self.subtomo_size % probe.padding_multiple or self.subtomo_size < probe.min_size:
            raise ValueError(
                f"subtomo_size {self.subtomo_size} must be a multiple of {probe.padding_multiple} and at least "
                f"{probe.min_size} for a U-Net of depth {unet['depth']} with {unet['norm']} normalisation"
            )
        object.__setattr__(self, "unet", unet)

    @property
    def epoch_steps(self) -> int:
        """Steps per epoch (``steps_per_epoch``, or the pool size over the batch size)."""
        if self.steps_per_epoch is not None:
            return int(self.steps_per_epoch)
        return max(1, self.n_subtomos // self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data copy (tuples become lists)."""
        data = asdict(self)
        data["adam_betas"] = list(self.adam_betas)
        data["unet"] = dict(self.unet)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, strict: bool = True) -> "TrainingConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` unless ``strict=False``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown and strict:
            raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(names)}")
        kwargs = {k: v for k, v in data.items() if k in names}
        if "adam_betas" in kwargs:
            kwargs["adam_betas"] = tuple(kwargs["adam_betas"])
        return cls(**kwargs)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "TrainingConfig":
        """A named preset (``"quick"``, ``"standard"``, ``"thorough"``) with ``overrides``.

        A ``unet`` override is merged into the preset's U-Net settings.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        settings = copy.deepcopy(PRESETS[name])
        if "unet" in overrides:
            settings["unet"] = {**settings.get("unet", {}), **dict(overrides.pop("unet"))}
        settings.update(overrides)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(names)}")
        return cls(**settings)

    def replace(self, **changes: Any) -> "TrainingConfig":
        """A copy with ``changes``."""
        return replace(self, **changes)


@dataclass(frozen=True)
class TrainingEvent:
    """Progress of a training run, one per step (plus one before the first step).

    ``losses`` holds ``generator`` (the total generator loss), ``energy``,
    ``fidelity``, ``consistency`` (its terms, consistency before weighting by
    ``lam``), ``energy_net`` (the energy network's loss), ``e_real`` and
    ``e_fake`` (mean energies of the two sides), ``gradient_penalty`` (with
    ``"wgan-gp"``) and the step's ``noise_scale``; it is empty before the
    first step and on the event that reports a stop.

    ``preview`` (every ``preview_every`` steps and on the last event) is the
    current prediction for a fixed subtomogram of the tomogram, de-normalised,
    float32 ``(d, d, d)``; ``preview_origin`` is that subtomogram's corner
    ``(z, y, x)`` in the tomogram.
    """

    step: int
    total: int
    losses: Mapping[str, float] = field(default_factory=dict)
    lam: float = 0.0
    lr: float = 0.0
    seconds_per_step: float = 0.0
    eta_s: float = 0.0
    preview: np.ndarray | None = None
    done: bool = False
    stopped: bool = False
    message: str = ""
    preview_origin: tuple[int, int, int] | None = None

    @property
    def fraction(self) -> float:
        """Fraction of the steps done, in [0, 1]."""
        return min(1.0, self.step / self.total) if self.total else 1.0


# --------------------------------------------------------------------------------------
# Noise estimate and subtomogram size
# --------------------------------------------------------------------------------------


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


def estimate_noise(
    cubes: np.ndarray,
    geometry: WedgeGeometry,
    *,
    margin_deg: float = 10.0,
    white_band: tuple[float, float] = (0.2, 1.0),
    measured_band: tuple[float, float] = (0.35, 1.0),
    quantile: float = 0.25,
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
    a missing wedge all noise counts as white.
    """
    cubes = np.asarray(cubes, dtype=np.float32)
    if cubes.ndim != 4 or len(cubes) == 0:
        raise ValueError(f"cubes must have shape (n, d, d, d) with n >= 1, got {cubes.shape}")
    shape = cubes.shape[1:]
    win = [np.hanning(n + 2)[1:-1] for n in shape]  # strictly positive Hann
    window = (win[0][:, None, None] * win[1][None, :, None] * win[2][None, None, :]).astype(np.float32)
    norm = float((window.astype(np.float64) ** 2).sum())
    fz = np.fft.fftfreq(shape[0])[:, None, None]
    fy = np.fft.fftfreq(shape[1])[None, :, None]
    fx = np.fft.rfftfreq(shape[2])[None, None, :]
    full = (shape[0], shape[1], shape[2] // 2 + 1)
    radius = np.broadcast_to(np.sqrt(fz**2 + fy**2 + fx**2), full)
    missing = np.broadcast_to(wedge_mask(shape, _widened(geometry, margin_deg), full=True), full) == 0
    measured = np.broadcast_to(wedge_mask(shape, _narrowed(geometry, margin_deg), full=True), full) == 1
    sel_miss = missing & (radius >= white_band[0]) & (radius <= white_band[1])
    sel_meas = measured & (radius >= measured_band[0]) & (radius <= measured_band[1])
    if not sel_meas.any():
        sel_meas = measured & (radius > 0)
    white = np.empty(len(cubes))
    meas = np.empty(len(cubes))
    for i, cube in enumerate(cubes):
        spec = np.fft.rfftn((cube - cube.mean()) * window)
        power = (spec.real**2 + spec.imag**2) / norm
        meas[i] = power[sel_meas].mean()
        white[i] = power[sel_miss].mean() if sel_miss.any() else 0.0
    if not sel_miss.any():
        return NoiseEstimate(math.sqrt(max(float(np.quantile(meas, quantile)), 0.0)), 0.0)
    white_power = float(white.mean())
    extra = max(float(np.quantile(meas - white, quantile)), 0.0)
    frac = measured_fraction(shape, geometry)
    return NoiseEstimate(math.sqrt(max(white_power, 0.0)), math.sqrt(extra * frac))


def plan_subtomo_size(volume_shape: tuple[int, ...], requested: int, multiple: int, min_size: int) -> tuple[int, tuple[int, int, int]]:
    """Subtomogram size for a tomogram of ``volume_shape`` and the shape to pad it to.

    The size is ``requested`` when it fits, else the largest multiple of
    ``multiple`` that fits along every axis; if that is below ``min_size`` the
    size is ``min_size`` and the tomogram must be padded (by reflection) to at
    least that along every axis. Returns ``(size, padded_shape)``.
    """
    shape = tuple(int(s) for s in volume_shape)
    fit = (min(shape) // multiple) * multiple
    if fit >= min_size:
        return min(int(requested), fit), shape  # type: ignore[return-value]
    size = max(int(min_size), multiple)
    return size, tuple(max(s, size) for s in shape)  # type: ignore[return-value]


def _volume_stats(volume: np.ndarray, name: str = "volume") -> tuple[float, float]:
    """Mean and standard deviation in float64, slab by slab; checks for NaN/inf and constant input."""
    total = 0.0
    total_sq = 0.0
    count = 0
    nz = volume.shape[0]
    step = max(1, (1 << 24) // max(1, volume.shape[1] * volume.shape[2]))
    probe = float(np.asarray(volume[: min(nz, 4)], dtype=np.float64).mean())
    for z0 in range(0, nz, step):
        slab = np.asarray(volume[z0 : z0 + step], dtype=np.float64) - probe
        if not np.isfinite(slab).all():
            raise ValueError(f"{name} contains NaN or infinite values (first in z-slab {z0}..{z0 + len(slab)})")
        total += float(slab.sum())
        total_sq += float(np.square(slab).sum())
        count += slab.size
    mean = total / count
    var = max(total_sq / count - mean * mean, 0.0)
    std = math.sqrt(var)
    if not std > 1e-12 * max(1.0, abs(mean + probe)):
        raise ValueError(f"{name} is constant (value {mean + probe:g}): nothing to learn from")
    return mean + probe, std


# --------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------


_OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)} - {None}
)  # type: ignore[arg-type]


def _rotate_each(x: torch.Tensor, rotations: list) -> torch.Tensor:
    return torch.stack([r.apply(x[i]) for i, r in enumerate(rotations)])


def _unrotate_each(x: torch.Tensor, inverses: list) -> torch.Tensor:
    return torch.stack([r.apply(x[i]) for i, r in enumerate(inverses)])


_INVERSES = [r.inverse() for r in WEDGE_MOVING_ROTATIONS]


class Trainer:
    """Trains a CryoGEN model on one tomogram; :meth:`run` yields :class:`TrainingEvent`.

    Parameters
    ----------
    volume:
        The tomogram, ``(z, y, x)``, any real dtype (a memory map is fine).
    geometry:
        Its missing wedge.
    config:
        Settings (default: ``TrainingConfig()``).
    voxel_size:
        ``(z, y, x)`` in Angstrom (or one number), stored in the model.
    source:
        Where the tomogram came from (a path or a layer name), stored in the model.
    resume_from:
        A checkpoint written by an earlier run on the same tomogram: training
        continues at the step after it (the total is ``config.steps``).
    checkpoint_path:
        Where to write checkpoints (every ``config.checkpoint_every_s`` seconds
        and when the run ends); None writes none.
    """

    def __init__(
        self,
        volume: np.ndarray,
        geometry: WedgeGeometry,
        config: TrainingConfig | None = None,
        *,
        voxel_size: Any = None,
        source: str | None = None,
        resume_from: str | Path | None = None,
        checkpoint_path: str | Path | None = None,
    ) -> None:
        config = TrainingConfig() if config is None else config
        if not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
        if not isinstance(geometry, WedgeGeometry):
            raise TypeError(f"geometry must be a WedgeGeometry, got {type(geometry).__name__}")
        if not hasattr(volume, "shape") or not hasattr(volume, "dtype"):
            volume = np.asarray(volume)
        if len(volume.shape) != 3:
            raise ValueError(f"volume must be 3D (z, y, x), got shape {tuple(volume.shape)}")
        if np.dtype(volume.dtype).kind not in "biuf":
            raise ValueError(f"volume must hold real numbers, got dtype {volume.dtype}")
        if min(volume.shape) < 2:
            raise ValueError(f"volume of shape {tuple(volume.shape)} is too small to train on")
        self.config = config
        self.geometry = geometry
        self.voxel_size = voxel_size
        self.source = None if source is None else str(source)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.device = resolve_device(config.device)
        self.volume_shape = tuple(int(s) for s in volume.shape)
        mean, std = _volume_stats(volume)
        self.normalization = {"mean": mean, "std": std}
        self.seed = int(config.seed) if config.seed is not None else int(np.random.SeedSequence().entropy % (2**63))

        # Networks (seeded, without touching the global random state).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._g: UNet3D = build_generator(config.unet)
            self._e: EnergyNet = build_energy(
                {"width": config.energy_width, "spectral_norm": config.energy_spectral_norm}
            )
        size, padded = plan_subtomo_size(
            self.volume_shape, config.subtomo_size, self._g.padding_multiple, self._g.min_size
        )
        self.subtomo_size = size
        self._notes: list[str] = []
        if padded != self.volume_shape:
            pads = [(0, p - s) for s, p in zip(self.volume_shape, padded)]
            volume = np.pad(np.asarray(volume, dtype=np.float32), pads, mode="symmetric")
            self._notes.append(
                f"tomogram {self._shape_text(self.volume_shape)} is thinner than the smallest subtomogram "
                f"({size}); padded by reflection to {self._shape_text(padded)}"
            )
        elif size != config.subtomo_size:
            self._notes.append(
                f"subtomogram size reduced from {config.subtomo_size} to {size} to fit the tomogram "
                f"{self._shape_text(self.volume_shape)}"
            )
        self._volume = volume
        self._extract = min(size + size // 4, min(volume.shape))

        self._g.to(self.device)
        self._e.to(self.device)
        self._g_frozen = copy.deepcopy(self._g).eval().requires_grad_(False)
        betas = tuple(config.adam_betas)
        self._opt_g: torch.optim.Optimizer | None = torch.optim.Adam(self._g.parameters(), lr=config.lr, betas=betas)
        self._opt_e: torch.optim.Optimizer | None = torch.optim.Adam(
            self._e.parameters(), lr=config.energy_lr or config.lr, betas=betas
        )
        self._amp_dtype = amp_dtype(self.device) if config.amp else None
        fp16 = self._amp_dtype == torch.float16
        self._scaler_g = torch.amp.GradScaler("cuda", enabled=fp16)
        self._scaler_e = torch.amp.GradScaler("cuda", enabled=fp16)
        self._rng = np.random.default_rng(self.seed)
        self._tgen = torch.Generator(device=self.device)
        self._tgen.manual_seed(self.seed)

        self._step = 0
        self._history: list[dict[str, Any]] = []
        self._noise: NoiseEstimate | None = None
        self._mask: np.ndarray | None = None
        self._pool: np.ndarray | None = None
        self._pool_epoch = -1
        self._elapsed = 0.0
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._started = False
        self._finished = False
        self._stopped = False
        self._released = False
        if resume_from is not None:
            self._load_checkpoint(Path(resume_from))

    # -- public ----------------------------------------------------------------------

    @property
    def step(self) -> int:
        """Steps done so far."""
        return self._step

    @property
    def noise(self) -> NoiseEstimate | None:
        """The noise estimate (available once the run has started)."""
        return self._noise

    def request_stop(self) -> None:
        """Ask the run to stop after the current step (thread-safe)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def model(self) -> TrainedModel:
        """The model as trained so far (an independent copy on the CPU)."""
        with self._lock:
            generator = copy.deepcopy(self._g).cpu().eval()
            energy = copy.deepcopy(self._e).cpu().eval()
            return TrainedModel(
                generator=generator,
                network=generator.config(),
                geometry=self.geometry,
                normalization=dict(self.normalization),
                subtomo_size=self.subtomo_size,
                training=self._training_record(),
                history=copy.deepcopy(self._history),
                voxel_size=self.voxel_size,
                versions=current_versions(),
                steps_done=self._step,
                source=self.source,
                energy=energy,
                energy_network=energy.config(),
            )

    def run(self) -> Iterator[TrainingEvent]:
        """Train, yielding one event before the first step and one after every step.

        The last event has ``done=True`` (and ``stopped=True`` when the run was
        stopped early). A trainer runs once; resume from its checkpoint to go on.
        """
        if self._started:
            raise RuntimeError("this Trainer has already run; create a new one (resume_from a checkpoint to continue)")
        self._started = True
        old_threads = torch.get_num_threads()
        if self.device.type == "cpu" and self.config.num_threads is not None:
            configure_cpu_threads(self.config.num_threads)
        try:
            yield from self._run()
        except _OOM_ERRORS as exc:
            raise RuntimeError(
                f"out of memory on {self.device} with subtomograms of {self.subtomo_size}^3, batch "
                f"{self.config.batch_size} and U-Net width {self.config.unet.get('width')}: choose a "
                "smaller batch_size, subtomo_size or width"
            ) from exc
        finally:
            self._stopped = self._stopped or not self._finished
            self._release()
            if self.device.type == "cpu" and self.config.num_threads is not None:
                torch.set_num_threads(old_threads)

    # -- the loop --------------------------------------------------------------------

    def _run(self) -> Iterator[TrainingEvent]:
        cfg = self.config
        total = cfg.steps
        self._prepare()
        notes = list(self._notes) + [f"{self._noise}", f"subtomograms {self.subtomo_size}^3 on {self.device}"]
        if self._step:
            notes.insert(0, f"resumed at step {self._step}")
        if self._step >= total:
            self._finished = True
            self._write_checkpoint()
            yield self._event(total, {}, 0.0, preview=True, done=True, message="; ".join(notes + ["nothing left to do"]))
            return
        yield self._event(total, {}, 0.0, preview=True, message="; ".join(notes))

        last_ckpt = time.monotonic()
        per_step = 0.0
        log_every = max(1, total // 2000)
        while self._step < total:
            if self._stop.is_set():
                break
            t0 = time.perf_counter()
            k = self._step + 1
            with self._lock:
                losses, lam, lr = self._train_step(k)
                self._step = k
            dt = time.perf_counter() - t0
            self._elapsed += dt
            per_step = dt if per_step == 0.0 else 0.9 * per_step + 0.1 * dt
            if k % log_every == 0 or k == total:
                self._history.append({"step": k, "lr": lr, "lam": lam, **losses})
            done = k == total
            if done:
                self._finished = True
            if self.checkpoint_path is not None and (
                done
                or (cfg.checkpoint_every_s is not None and time.monotonic() - last_ckpt >= cfg.checkpoint_every_s)
            ):
                self._write_checkpoint()
                last_ckpt = time.monotonic()
            want_preview = done or (cfg.preview_every > 0 and k % cfg.preview_every == 0)
            if done:
                self._release()
            yield self._event(
                total,
                losses,
                per_step,
                lam=lam,
                lr=lr,
                preview=want_preview,
                done=done,
                message=f"finished {total} steps" if done else "",
            )
        if not self._finished:  # stopped between steps
            self._stopped = True
            if self.checkpoint_path is not None:
                self._write_checkpoint()
            self._release()
            yield self._event(
                total,
                {},
                per_step,
                preview=True,
                done=True,
                stopped=True,
                message=f"stopped at step {self._step} of {total}",
            )

    def _event(
        self,
        total: int,
        losses: Mapping[str, float],
        per_step: float,
        *,
        lam: float | None = None,
        lr: float | None = None,
        preview: bool = False,
        done: bool = False,
        stopped: bool = False,
        message: str = "",
    ) -> TrainingEvent:
        k = self._step
        return TrainingEvent(
            step=k,
            total=total,
            losses=dict(losses),
            lam=self._lambda(max(k, 1)) if lam is None else lam,
            lr=self._lr(max(k, 1)) if lr is None else lr,
            seconds_per_step=per_step,
            eta_s=per_step * max(0, total - k),
            preview=self._preview() if preview else None,
            done=done,
            stopped=stopped,
            message=message,
            preview_origin=self._preview_origin,
        )

    # -- setup -----------------------------------------------------------------------

    @staticmethod
    def _shape_text(shape: tuple[int, ...]) -> str:
        return " x ".join(str(s) for s in shape)

    def _prepare(self) -> None:
        """Foreground mask, noise estimate and the preview subtomogram."""
        size, ext = self.subtomo_size, self._extract
        vol_shape = tuple(self._volume.shape)
        if self.config.mask_empty:
            mask = tiling.foreground_mask(self._volume, size=ext)
            self._mask = mask if mask.any() else None
        if self._noise is None:
            rng = np.random.default_rng([self.seed, 7919])
            n = 48 if size <= 48 else 24
            pos = tiling.sample_subtomogram_positions(vol_shape, size, n, rng)
            cubes = self._normalize(tiling.extract_subtomograms(self._volume, pos, size))
            self._noise = estimate_noise(cubes, self.geometry)
        self._noise_model = self._resolve_noise()
        corner = tuple(int((s - size) // 2) for s in vol_shape)
        self._preview_origin = corner
        cube = tiling.extract_subtomograms(self._volume, np.array([corner]), size)
        self._preview_input = torch.from_numpy(self._normalize(cube)[:, None]).to(self.device)
        self._measured = measured_fraction((size,) * 3, self.geometry)

    _preview_origin: tuple[int, int, int] | None = None

    def _resolve_noise(self) -> dict[str, float]:
        """Final noise settings: sigma_n, noise_scale and the synthetic noise amplitudes."""
        cfg, est = self.config, self._noise
        assert est is not None
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
        return {"sigma_n": sigma_n, "noise_scale": scale, "white_std": white, "wedge_std": wedge}

    def _normalize(self, cubes: np.ndarray) -> np.ndarray:
        mean, std = self.normalization["mean"], self.normalization["std"]
        return ((cubes - np.float32(mean)) / np.float32(std)).astype(np.float32, copy=False)

    def _training_record(self) -> dict[str, Any]:
        record = self.config.to_dict()
        record.update(
            seed_used=self.seed,
            subtomo_size_used=self.subtomo_size,
            device_used=str(self.device),
            steps_done=self._step,
            seconds=round(self._elapsed, 3),
            stopped=bool(self._stopped),
            volume_shape=list(self.volume_shape),
        )
        if self._noise is not None:
            resolved = getattr(self, "_noise_model", None) or self._resolve_noise()
            record.update(
                noise_estimate=self._noise.to_dict(),
                sigma_n_used=resolved["sigma_n"],
                noise_scale_used=resolved["noise_scale"],
                synthetic_noise={"white_std": resolved["white_std"], "wedge_std": resolved["wedge_std"]},
            )
        return record

    # -- schedules -------------------------------------------------------------------

    def _lr(self, k: int) -> float:
        """Learning rate at step ``k`` (1-based): linear warm-up, then linear decay."""
        total = self.config.steps
        warm = int(round(self.config.warmup_fraction * total))
        if warm > 0 and k <= warm:
            factor = k / warm
        else:
            factor = max(0.0, (total - k + 1) / (total - warm + 1)) if total > warm else 1.0
        return self.config.lr * factor

    def _lambda(self, k: int) -> float:
        """Consistency weight at step ``k``: constant in the first epoch, then linear decay."""
        cfg = self.config
        lam0 = float(cfg.lambda_consistency)
        epoch = cfg.epoch_steps
        if not cfg.lambda_decay or k <= epoch or cfg.steps <= epoch:
            return lam0
        t = (k - epoch) / (cfg.steps - epoch)
        return lam0 * (1.0 - (1.0 - cfg.lambda_final) * t)

    # -- data ------------------------------------------------------------------------

    def _batch(self, k: int) -> torch.Tensor:
        """Normalised subtomograms ``(B, 1, d, d, d)`` for step ``k``."""
        cfg = self.config
        epoch = (k - 1) // cfg.epoch_steps
        if epoch != self._pool_epoch or self._pool is None:
            rng = np.random.default_rng([self.seed, epoch])
            self._pool = tiling.sample_subtomogram_positions(
                tuple(self._volume.shape), self._extract, cfg.n_subtomos, rng, mask=self._mask
            )
            self._pool_order = rng.permutation(cfg.n_subtomos)
            self._pool_epoch = epoch
        within = (k - 1) % cfg.epoch_steps
        idx = self._pool_order[(within * cfg.batch_size + np.arange(cfg.batch_size)) % cfg.n_subtomos]
        offsets = self._rng.integers(0, self._extract - self.subtomo_size + 1, size=(cfg.batch_size, 3))
        cubes = tiling.extract_subtomograms(self._volume, self._pool[idx] + offsets, self.subtomo_size)
        return torch.from_numpy(self._normalize(cubes)[:, None]).to(self.device)

    def _randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self._tgen, device=self.device)

    def _synthetic_noise(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        nm = self._noise_model
        out = None
        if nm["white_std"] > 0:
            out = nm["white_std"] * self._randn(shape)
        if nm["wedge_std"] > 0:
            wedge = (nm["wedge_std"] / math.sqrt(self._measured)) * apply_wedge(self._randn(shape), self.geometry)
            out = wedge if out is None else out + wedge
        return out

    # -- one step --------------------------------------------------------------------

    def _amp(self) -> Any:
        return autocast_context(self.device, enabled=self._amp_dtype is not None)

    def _energy_d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        with self._amp():
            e_real = self._e(real).float()
            e_fake = self._e(fake).float()
        if cfg.energy_objective == "gan":
            loss = F.softplus(e_real).mean() + F.softplus(-e_fake).mean()
            extra: dict[str, float] = {}
        else:
            b = real.shape[0]
            alpha = torch.rand((b, 1, 1, 1, 1), generator=self._tgen, device=self.device)
            mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            e_mix = self._e(mix)
            (grad,) = torch.autograd.grad(e_mix.sum(), mix, create_graph=True)
            gp = ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
            loss = e_real.mean() - e_fake.mean() + cfg.gp_weight * gp + _WGAN_DRIFT * (e_real**2).mean()
            extra = {"gradient_penalty": float(gp.detach())}
        stats = {"e_real": float(e_real.detach().mean()), "e_fake": float(e_fake.detach().mean()), **extra}
        return loss, stats

    def _train_step(self, k: int) -> tuple[dict[str, float], float, float]:
        cfg = self.config
        g, e, T = self._g, self._e, self.geometry
        assert self._opt_g is not None and self._opt_e is not None
        lr, lam = self._lr(k), self._lambda(k)
        for group in self._opt_g.param_groups:
            group["lr"] = lr
        for group in self._opt_e.param_groups:
            group["lr"] = lr * (cfg.energy_lr or cfg.lr) / cfg.lr
        if (k - 1) % cfg.epoch_steps == 0:  # a new epoch: refresh the frozen copy
            self._g_frozen.load_state_dict(g.state_dict())

        y = self._batch(k)
        shape = tuple(y.shape)
        n = len(WEDGE_MOVING_ROTATIONS)
        rot_idx = self._rng.integers(0, n, size=shape[0])
        cons_idx = self._rng.integers(0, n, size=shape[0])
        scale = self._noise_model["noise_scale"] * (1.0 - float(self._rng.random()))  # in (0, 1] * scale
        e_g = scale * self._randn(shape)
        e_x = scale * self._randn(shape)
        n_syn = self._synthetic_noise(shape)
        rots = [WEDGE_MOVING_ROTATIONS[i] for i in rot_idx]

        g.train()
        e.train()
        with self._amp():
            pred = g(y + e_g)
        pred = pred.float()
        # both sides seen through the wedge: a crop of the tomogram is not exactly wedge-filtered
        # (its edges leak power into the wedge), and the energy network would learn that alone
        fake = _rotate_each(pred, rots)
        if n_syn is not None:
            fake = fake + n_syn
        fake = apply_wedge(fake, T) + e_x
        real = apply_wedge(y, T) + e_x

        # 1. energy network: low energy for observations, high for re-corrupted predictions
        e.requires_grad_(True)
        stats: dict[str, float] = {}
        d_loss = torch.zeros((), device=self.device)
        for _ in range(cfg.energy_steps):
            d_loss, stats = self._energy_d_loss(real, fake.detach())
            self._opt_e.zero_grad(set_to_none=True)
            self._scaler_e.scale(d_loss).backward()
            self._scaler_e.step(self._opt_e)
            self._scaler_e.update()

        # 2. generator: low energy + data fidelity + consistency
        e.requires_grad_(False)
        with self._amp():
            e_gen = e(fake).float()
        if cfg.energy_objective == "gan":
            energy = F.softplus(e_gen).mean()
        else:  # E(fake) - E(real): the gradient of E(fake), reported as the (estimated) Wasserstein gap
            energy = e_gen.mean() - stats["e_real"]
        sigma_n = self._noise_model["sigma_n"]
        # |T p - y|^2 = |T (p - y)|^2 + |(1 - T) y|^2 (T is an orthogonal projection): the second
        # part cannot be reduced by g (noise and crop edges inside the wedge), so it is left out
        fidelity = (apply_wedge(pred - y, T) ** 2).mean() / (2.0 * sigma_n**2)
        loss = cfg.energy_weight * energy + cfg.fidelity_weight * fidelity
        consistency = torch.zeros((), device=self.device)
        if lam > 0:
            with torch.no_grad(), self._amp():
                target = self._g_frozen(y).float()
            e_h = scale * self._randn(shape)
            crots = [WEDGE_MOVING_ROTATIONS[i] for i in cons_idx]
            inverses = [_INVERSES[i] for i in cons_idx]
            inp = apply_wedge(_rotate_each(target + e_h, crots), T)
            with self._amp():
                out = g(inp)
            consistency = ((_unrotate_each(out.float(), inverses) - target) ** 2).mean()
            loss = loss + lam * consistency
        self._opt_g.zero_grad(set_to_none=True)
        self._scaler_g.scale(loss).backward()
        self._scaler_g.step(self._opt_g)
        self._scaler_g.update()
        e.requires_grad_(True)

        losses = {
            "generator": float(loss.detach()),
            "energy_net": float(d_loss.detach()),
            "energy": float(energy.detach()),
            "fidelity": float(fidelity.detach()),
            "consistency": float(consistency.detach()),
            "noise_scale": scale,
            **stats,
        }
        bad = [name for name, v in losses.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"training diverged at step {k}: {', '.join(bad)} not finite; try a lower lr or the "
                "'wgan-gp' energy objective"
            )
        return losses, lam, lr

    @torch.no_grad()
    def _preview(self) -> np.ndarray:
        with self._lock:
            g = self._g
            was_training = g.training
            g.eval()
            x = self._preview_input.to(next(g.parameters()).device)
            with autocast_context(x.device, enabled=self._amp_dtype is not None and x.device.type == "cuda"):
                out = g(x).float()
            g.train(was_training)
            mean, std = self.normalization["mean"], self.normalization["std"]
            return (out[0, 0].cpu().numpy() * np.float32(std) + np.float32(mean)).astype(np.float32)

    # -- checkpoints -----------------------------------------------------------------

    def _write_checkpoint(self) -> None:
        if self.checkpoint_path is None or self._opt_g is None or self._opt_e is None:
            return
        with self._lock:
            payload = {
                "format": CHECKPOINT_FORMAT,
                "format_version": MODEL_FORMAT_VERSION,
                "step": int(self._step),
                "seed": int(self.seed),
                "config": self.config.to_dict(),
                "network": self._g.config(),
                "energy_network": self._e.config(),
                "generator": {k: v.detach().cpu().clone() for k, v in self._g.state_dict().items()},
                "generator_frozen": {k: v.detach().cpu().clone() for k, v in self._g_frozen.state_dict().items()},
                "energy": {k: v.detach().cpu().clone() for k, v in self._e.state_dict().items()},
                "opt_generator": _to_cpu(self._opt_g.state_dict()),
                "opt_energy": _to_cpu(self._opt_e.state_dict()),
                "scaler_generator": self._scaler_g.state_dict(),
                "scaler_energy": self._scaler_e.state_dict(),
                "rng": self._rng.bit_generator.state,
                "torch_rng": self._tgen.get_state().cpu(),
                "device_type": self.device.type,
                "history": copy.deepcopy(self._history),
                "noise": self._noise.to_dict() if self._noise is not None else None,
                "normalization": dict(self.normalization),
                "volume_shape": list(self.volume_shape),
                "subtomo_size": int(self.subtomo_size),
                "geometry": self.geometry.to_dict(),
                "seconds": float(self._elapsed),
                "versions": current_versions(),
            }
            atomic_torch_save(payload, self.checkpoint_path)

    def _load_checkpoint(self, path: Path) -> None:
        ck = safe_torch_load(path, "checkpoint")
        if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
            raise ModelFileError(f"{path} is not a napari-dewedge training checkpoint")

        def mismatch(what: str, theirs: Any, ours: Any) -> ModelFileError:
            return ModelFileError(f"checkpoint {path} was written for {what} {theirs}, this run has {ours}")

        if list(ck.get("volume_shape", [])) != list(self.volume_shape):
            raise mismatch("a tomogram of shape", tuple(ck.get("volume_shape", [])), self.volume_shape)
        norm = ck.get("normalization", {})
        if not (
            math.isclose(float(norm.get("mean", math.nan)), self.normalization["mean"], rel_tol=1e-5, abs_tol=1e-6 * self.normalization["std"])
            and math.isclose(float(norm.get("std", math.nan)), self.normalization["std"], rel_tol=1e-5)
        ):
            raise ModelFileError(f"checkpoint {path} was written for a different tomogram (its mean/std differ)")
        if WedgeGeometry.from_dict(ck.get("geometry", {})) != self.geometry:
            raise mismatch("the wedge", WedgeGeometry.from_dict(ck.get("geometry", {})), self.geometry)
        if dict(ck.get("network", {})) != self._g.config():
            raise mismatch("the U-Net", ck.get("network"), self._g.config())
        if dict(ck.get("energy_network", {})) != self._e.config():
            raise mismatch("the energy network", ck.get("energy_network"), self._e.config())
        if int(ck.get("subtomo_size", -1)) != self.subtomo_size:
            raise mismatch("subtomograms of size", ck.get("subtomo_size"), self.subtomo_size)
        try:
            self._g.load_state_dict(ck["generator"])
            self._g_frozen.load_state_dict(ck["generator_frozen"])
            self._e.load_state_dict(ck["energy"])
            assert self._opt_g is not None and self._opt_e is not None
            self._opt_g.load_state_dict(ck["opt_generator"])
            self._opt_e.load_state_dict(ck["opt_energy"])
            if ck.get("scaler_generator"):
                self._scaler_g.load_state_dict(ck["scaler_generator"])
            if ck.get("scaler_energy"):
                self._scaler_e.load_state_dict(ck["scaler_energy"])
            self.seed = int(ck["seed"])
            self._rng.bit_generator.state = ck["rng"]
            if ck.get("device_type") == self.device.type:
                self._tgen.set_state(ck["torch_rng"])
            else:
                self._tgen.manual_seed(self.seed + int(ck["step"]))
            self._step = int(ck["step"])
            self._history = list(ck.get("history") or [])
            self._noise = NoiseEstimate.from_dict(ck["noise"]) if ck.get("noise") else None
            self._elapsed = float(ck.get("seconds", 0.0))
        except ModelFileError:
            raise
        except Exception as exc:
            raise ModelFileError(f"checkpoint {path} cannot be restored: {exc}") from exc

    # -- cleanup ---------------------------------------------------------------------

    def _release(self) -> None:
        """Drop optimiser state and move the networks to the CPU; free cached GPU memory."""
        if self._released:
            return
        with self._lock:
            self._released = True
            self._opt_g = None
            self._opt_e = None
            if self.device.type != "cpu":
                self._g.cpu()
                self._e.cpu()
                self._g_frozen.cpu()
                if hasattr(self, "_preview_input"):
                    self._preview_input = self._preview_input.cpu()
            self._g.eval()
        release_device_memory(self.device)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(v) for v in obj)
    return obj


def fit(
    volume: np.ndarray,
    geometry: WedgeGeometry,
    config: TrainingConfig | None = None,
    *,
    callback: Callable[[TrainingEvent], Any] | None = None,
    **kwargs: Any,
) -> TrainedModel:
    """Train on ``volume`` and return the model; ``callback`` sees every event.

    Extra keyword arguments go to :class:`Trainer` (``voxel_size``, ``source``,
    ``resume_from``, ``checkpoint_path``).
    """
    trainer = Trainer(volume, geometry, config, **kwargs)
    for event in trainer.run():
        if callback is not None:
            callback(event)
    return trainer.model
