"""Training settings: :class:`TrainingConfig`, its schema, the presets and constants.

Every :class:`TrainingConfig` field carries ``dataclasses.field`` metadata that
describes it for people and programs: ``help`` (one user-facing sentence),
``label`` (short form label), ``minimum``/``maximum`` (numbers; with
``exclusive_minimum`` the minimum itself is refused), ``choices`` (strings),
``advanced`` (a simple form hides it), ``none_text`` (what None means, for
optional fields) and ``schema`` (False: not offered by :func:`settings_schema`).
``__post_init__`` validates each field from that metadata, plus the checks it
cannot express (the U-Net settings and the subtomogram size they allow,
``adam_betas``).

:func:`settings_schema` lists the settings as :class:`Setting` records (the
U-Net's depth and width appear as the pseudo-settings ``unet_depth`` and
``unet_width``, which map to ``unet["depth"]`` and ``unet["width"]``);
:func:`add_arguments` and :func:`config_overrides` turn them into command-line
flags and back into keyword arguments of :meth:`TrainingConfig.preset`.
"""

from __future__ import annotations

import argparse
import copy
import functools
import math
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

__all__ = [
    "CONSISTENCY_TARGETS",
    "ENERGY_OBJECTIVES",
    "FIDELITY_TARGETS",
    "NOISE_MODELS",
    "PRESETS",
    "QUICK_FLOAT32_CPU_WIDTH",
    "Setting",
    "TrainingConfig",
    "add_arguments",
    "config_overrides",
    "machine_settings",
    "quick",
    "settings_schema",
    "standard",
    "thorough",
]

ENERGY_OBJECTIVES = ("gan", "wgan-gp")
NOISE_MODELS = ("auto", "white", "wedge", "none")
FIDELITY_TARGETS = ("observation", "recorrupted")
CONSISTENCY_TARGETS = ("prediction", "data")
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
    # A 96^3 scene trains in about 4.5 minutes on 2 cores (0.33 s a step with channels-last
    # networks and bfloat16 where the CPU has it). The U-Net is 16 wide: on the 96^3 cell scenes in
    # 300 s (two seeds) it beat width 8 by 0.2-0.3 dB on average and kept more of the measured region
    # every time, with 30-40 % fewer steps (docs/benchmarks); on a CPU without bfloat16 it is 8 wide
    # (machine_settings). The learning rate is high on purpose: on a
    # 64^3 cell scene at 240 steps, 1e-3 / 2e-3 / 4e-3 / 8e-3 gave 14.2 / 14.7 / 15.2 / 15.0 dB,
    # and 4e-3 reached in 240 steps what 1e-3 reached in 720 (docs/benchmarks). The energy term is
    # off: in 300 s on a CPU fast enough for 1700-1900 steps at 96^3 it bred periodic stripes over
    # the SNR-1 cell scene and cost 1.0 dB and 0.1 of missing-wedge FSC-AUC against the same run
    # without it (a tie on the SNR-0.5 scene and, earlier, on the real microtubule crops); at
    # ~900 steps it had been a tie everywhere (docs/benchmarks). Its settings stay for a run that
    # turns it on (energy_weight 0.1, every 4th step, as before).
    "quick": {
        "subtomo_size": 32,
        "n_subtomos": 64,
        "steps": 800,
        "lambda_decay": False,
        "energy_objective": "wgan-gp",
        "energy_weight": 0.0,
        "energy_lr": 1e-4,
        "energy_every": 4,
        "batch_size": 4,
        "lr": 4e-3,
        "unet": {"depth": 2, "width": 16, "norm": "batch", "residual": True},
        "energy_width": 8,
        "preview_every": 20,
    },
    # A GPU: minutes to tens of minutes. The CryoGEN paper's recipe (the defaults: a low learning
    # rate, lambda decaying, the GAN energy term at weight 1 every step) on a larger U-Net, not tuned:
    # on the paper's shapes, 1992 steps on an NVIDIA H100 gave less than quick's 800 on a CPU
    # (docs/benchmarks), so quick is the default everywhere and this preset is a choice.
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
# Field metadata and the generic checks driven by it
# --------------------------------------------------------------------------------------


def _meta(
    help: str,
    label: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    choices: tuple[str, ...] | None = None,
    advanced: bool = True,
    none_text: str | None = None,
    examples: tuple[str, ...] | None = None,
    schema: bool = True,
) -> dict[str, Any]:
    """The ``dataclasses.field`` metadata of one setting."""
    return {
        "help": help,
        "label": label,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
        "choices": choices,
        "advanced": advanced,
        "none_text": none_text,
        "examples": examples,
        "schema": schema,
    }


def _check_int(value: Any, name: str, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value!r}")


def _check_float(value: Any, name: str, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if lo is not None and (value < lo or (open_lo and value == lo)):
        raise ValueError(f"{name} must be {'>' if open_lo else '>='} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi}, got {value!r}")


def _quoted(words: tuple[str, ...]) -> str:
    quoted = [repr(w) for w in words]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _check_value(name: str, kind: type, optional: bool, meta: Mapping[str, Any], value: Any) -> None:
    """The generic check of one setting from its type and metadata (raises ``ValueError``).

    Booleans are not checked (any value counts by its truth, as ever).
    """
    if value is None and optional:
        return
    if kind is int:
        _check_int(value, name, int(meta["minimum"]), meta.get("maximum"))
    elif kind is float:
        _check_float(value, name, meta.get("minimum"), meta.get("maximum"), open_lo=bool(meta.get("exclusive_minimum")))
    elif kind is str:
        if meta.get("choices") is not None:
            if value not in meta["choices"]:
                raise ValueError(f"{name} must be one of {meta['choices']}, got {value!r}")
        elif not isinstance(value, str):
            such_as = f" such as {_quoted(meta['examples'])}" if meta.get("examples") else ""
            raise ValueError(f"{name} must be a string{such_as}, got {value!r}")


def _kind(annotation: Any) -> tuple[type, bool]:
    """``(type, optional)`` of a field annotation (``float | None`` -> ``(float, True)``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _kind(args[0])[0], len(args) < len(typing.get_args(annotation))
    return (origin or annotation), False


@functools.cache
def _field_specs() -> tuple[tuple[str, type, bool, Mapping[str, Any]], ...]:
    hints = typing.get_type_hints(TrainingConfig)
    return tuple((f.name, *_kind(hints[f.name]), f.metadata) for f in fields(TrainingConfig))


# --------------------------------------------------------------------------------------
# The settings
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of a CryoGEN training run (see :mod:`napari_dewedge.core.training` for their roles).

    Noise levels (``noise_scale``, ``sigma_n``) are in units of the tomogram's
    standard deviation; None means "estimate from the data". Each field's
    metadata documents it (see :func:`settings_schema`).
    """

    subtomo_size: int = field(default=32, metadata=_meta(
        "Edge of the cubic subtomograms the networks train on, in voxels (a multiple of 2^(U-Net depth)).",
        "Subtomogram size", minimum=8, advanced=False))
    n_subtomos: int = field(default=128, metadata=_meta(
        "Number of subtomogram positions drawn from the tomogram for each epoch.",
        "Subtomograms per epoch", minimum=1, advanced=False))
    steps: int = field(default=1000, metadata=_meta(
        "Number of training steps.", "Steps", minimum=1, advanced=False))
    time_budget_s: int | None = field(default=None, metadata=_meta(
        "Seconds of training: the learning-rate and consistency schedules follow the time spent, and "
        "training ends when the budget is spent or the steps are done, whichever comes first (a seeded "
        "run is then no longer reproducible: how many steps fit depends on the machine).",
        "Time budget (s)", minimum=1, advanced=False, none_text="none (the steps alone)"))
    batch_size: int = field(default=4, metadata=_meta(
        "Subtomograms per training step (per process under torchrun).", "Batch size", minimum=1, advanced=False))
    lr: float = field(default=1e-4, metadata=_meta(
        "Peak learning rate of the generator's Adam optimiser.",
        "Learning rate", minimum=0.0, exclusive_minimum=True))
    energy_lr: float | None = field(default=None, metadata=_meta(
        "Peak learning rate of the energy network's Adam optimiser.",
        "Energy network learning rate", minimum=0.0, exclusive_minimum=True, none_text="same as the learning rate"))
    adam_betas: tuple[float, float] = field(default=(0.5, 0.999), metadata=_meta(
        "Adam's (beta1, beta2) for both optimisers.", "Adam betas", minimum=0.0, maximum=0.9999, schema=False))
    warmup_fraction: float = field(default=0.1, metadata=_meta(
        "Fraction of the steps over which the learning rate rises linearly from zero.",
        "Warm-up fraction", minimum=0.0, maximum=0.9))
    lambda_consistency: float = field(default=1.0, metadata=_meta(
        "Weight (lambda) of the consistency term at the start of training.",
        "Consistency weight", minimum=0.0, advanced=False))
    lambda_decay: bool = field(default=True, metadata=_meta(
        "Whether the consistency weight decays linearly after the first epoch.", "Decay consistency weight"))
    lambda_final: float = field(default=0.0, metadata=_meta(
        "Consistency weight at the last step, as a fraction of its start value (when it decays).",
        "Final consistency fraction", minimum=0.0, maximum=1.0))
    noise_scale: float | None = field(default=None, metadata=_meta(
        "Largest standard deviation of the noise added to the network inputs, in units of the tomogram's "
        "standard deviation.", "Noise scale", minimum=0.0, advanced=False, none_text="auto (estimated)"))
    sigma_n: float | None = field(default=None, metadata=_meta(
        "Noise level of the data-fidelity term, in units of the tomogram's standard deviation.",
        "Fidelity noise level", minimum=0.0, exclusive_minimum=True, none_text="auto (estimated)"))
    noise_model: str = field(default="auto", metadata=_meta(
        "Synthetic noise added to the predictions before the energy network compares them with the data: "
        "as estimated (auto), white, wedge-filtered (wedge) or none.", "Noise model", choices=NOISE_MODELS))
    energy_objective: str = field(default="gan", metadata=_meta(
        "Objective of the energy network: logistic (gan) or Wasserstein with gradient penalty (wgan-gp).",
        "Energy objective", choices=ENERGY_OBJECTIVES, advanced=False))
    gp_weight: float = field(default=10.0, metadata=_meta(
        "Weight of the gradient penalty (wgan-gp only).", "Gradient penalty weight", minimum=0.0))
    energy_weight: float = field(default=1.0, metadata=_meta(
        "Weight of the energy term in the generator's loss (0: the energy network is neither run nor trained).",
        "Energy weight", minimum=0.0))
    fidelity_weight: float = field(default=1.0, metadata=_meta(
        "Weight of the data-fidelity term in the generator's loss (with the recorrupted target, 0 on a "
        "tomogram with no noise to speak of unless the fidelity noise level is given).",
        "Fidelity weight", minimum=0.0))
    fidelity_target: str = field(default="recorrupted", metadata=_meta(
        "What the generator's input and the data-fidelity term see on a single tomogram: the observation "
        "with extra noise in and the observation as target (observation), or the observation plus a "
        "noise draw in and minus the same draw as target (recorrupted), so that the target's noise is "
        "independent of the input's and cannot be copied. With even/odd halves the other half is the target.",
        "Fidelity target", choices=FIDELITY_TARGETS))
    consistency_target: str = field(default="data", metadata=_meta(
        "What the consistency term asks the network to restore from a rotated, re-wedged input: the "
        "frozen network's prediction everywhere (prediction), or, as IsoNet does, the data in the measured "
        "region with the frozen prediction only inside the missing wedge (data).",
        "Consistency target", choices=CONSISTENCY_TARGETS))
    filter_input: bool = field(default=False, metadata=_meta(
        "Whether the generator's input is seen through the measured region first: inside the missing wedge "
        "a tomogram holds nothing but noise, which the network would otherwise carry into its output.",
        "Drop the wedge's noise from the input"))
    energy_steps: int = field(default=1, metadata=_meta(
        "Updates of the energy network per training step.", "Energy updates per step", minimum=1))
    energy_every: int = field(default=1, metadata=_meta(
        "Training steps between two runs of the energy network and its term (1: every step); "
        "the steps between learn from the data terms alone, at less cost.",
        "Energy every", minimum=1))
    unet: dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_UNET), metadata=_meta(
        "Settings of the generator's U-Net (depth, width, norm, residual), merged over the defaults.",
        "U-Net", schema=False))
    prior: bool = field(default=True, metadata=_meta(
        "Whether the generator starts from the package's built-in prior (the same U-Net trained on simulated "
        "tomograms of public single-particle maps) rather than from random weights; either way it then trains "
        "on this tomogram. Only the quick preset's 8-wide U-Net (its U-Net on CPUs without bfloat16) has one.",
        "Start from the built-in prior"))
    energy_width: int = field(default=16, metadata=_meta(
        "Channels of the energy network's first layer.", "Energy network width", minimum=1))
    energy_spectral_norm: bool = field(default=False, metadata=_meta(
        "Whether the energy network's convolutions are spectrally normalised.", "Spectral normalisation"))
    steps_per_epoch: int | None = field(default=None, metadata=_meta(
        "Steps per epoch: the frozen copy of the generator and the pool of subtomograms are renewed every epoch.",
        "Steps per epoch", minimum=1, none_text="auto (subtomograms per epoch / batch size)"))
    preview_every: int = field(default=50, metadata=_meta(
        "Steps between two previews of the prediction (0: only at the start and the end).",
        "Preview every", minimum=0))
    mask_empty: bool = field(default=True, metadata=_meta(
        "Whether subtomograms are drawn only where the tomogram holds something.", "Skip empty regions"))
    seed: int | None = field(default=0, metadata=_meta(
        "Random seed: runs with the same seed on the CPU give identical results.",
        "Seed", minimum=0, advanced=False, none_text="random"))
    device: str = field(default="auto", metadata=_meta(
        "Where to train: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
        "Device", advanced=False, examples=("auto", "cpu", "cuda:0")))
    amp: bool = field(default=True, metadata=_meta(
        "Whether mixed precision is used: bfloat16 on CUDA GPUs that support it (float16 on older ones) and, "
        "for training, on CPUs with native bfloat16 (AVX512-BF16 or AMX).", "Mixed precision"))
    checkpoint_every_s: float | None = field(default=600.0, metadata=_meta(
        "Seconds between two checkpoints (one is always written when the run ends).",
        "Checkpoint interval (s)", minimum=0.0, none_text="only at the end", schema=False))
    num_threads: int | None = field(default=None, metadata=_meta(
        "CPU threads torch uses while training.", "CPU threads", minimum=1, none_text="torch's default",
        schema=False))

    def __post_init__(self) -> None:
        for name, kind, optional, meta in _field_specs():
            if name == "adam_betas":
                betas = tuple(self.adam_betas)
                if len(betas) != 2:
                    raise ValueError(f"adam_betas must be two numbers, got {self.adam_betas!r}")
                for b in betas:
                    _check_float(b, "adam_betas", meta["minimum"], meta["maximum"])
                object.__setattr__(self, "adam_betas", tuple(float(b) for b in betas))
            elif name != "unet":
                _check_value(name, kind, optional, meta, getattr(self, name))
        if not isinstance(self.unet, Mapping):
            raise ValueError(f"unet must be a dict of UNet3D settings, got {self.unet!r}")
        unet = {**_DEFAULT_UNET, **dict(self.unet)}
        try:
            from ..networks import build_generator  # torch: only once a config is built

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
    def preset(cls, name: str, *, machine: Any = None, **overrides: Any) -> "TrainingConfig":
        """A named preset (``"quick"``, ``"standard"``, ``"thorough"``) with ``overrides``.

        ``machine``: the device that will train it (a ``torch.device``, a name or
        ``"auto"``); the preset's settings for that machine (:func:`machine_settings`)
        come first and ``overrides`` over them. A ``unet`` override is merged into the
        preset's U-Net settings.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        settings = copy.deepcopy(PRESETS[name])
        for layer in ((machine_settings(name, machine) if machine is not None else {}), overrides):
            layer = dict(layer)
            if "unet" in layer:
                settings["unet"] = {**settings.get("unet", {}), **dict(layer.pop("unet"))}
            settings.update(layer)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}; known: {sorted(names)}")
        return cls(**settings)

    def replace(self, **changes: Any) -> "TrainingConfig":
        """A copy with ``changes``."""
        return replace(self, **changes)


#: The quick preset's U-Net width on a CPU that computes in float32 only. There the
#: 16-wide U-Net's pass costs 2.25 times an 8-wide one's (0.38 against 0.17 s, 4 x 32^3,
#: 2 cores of an AMD EPYC with AVX2), against 1.5 times on CPUs with bfloat16, where 16
#: wide is the better use of the time. On the float32 CPU, in 300 s on the 96^3 cell
#: scenes (two seeds), 8 wide made 685-735 steps against 326-373 and gained 1.0-1.4 dB on
#: SNR 1 and 0.3-0.4 dB on SNR 0.5 with more SSIM (more missing-wedge FSC-AUC in three
#: pairs of four), its application took half the time, and it closed a real
#: microtubule's ring more in each of three seeds (docs/benchmarks).
QUICK_FLOAT32_CPU_WIDTH = 8


def machine_settings(name: str, device: Any = "auto") -> dict[str, Any]:
    """The settings preset ``name`` takes on ``device`` (a ``torch.device``, a name or ``"auto"``).

    Empty but for the quick preset on a CPU without native bfloat16
    (:func:`~napari_dewedge.core.device.cpu_native_bf16`), whose U-Net is
    :data:`QUICK_FLOAT32_CPU_WIDTH` wide: there more steps beat more channels.
    """
    from ..device import cpu_native_bf16, resolve_device

    if name == "quick" and resolve_device(device).type == "cpu" and not cpu_native_bf16():
        return {"unet": {"width": QUICK_FLOAT32_CPU_WIDTH}}
    return {}


def quick(**overrides: Any) -> TrainingConfig:
    """The ``"quick"`` preset (a laptop CPU, minutes) with ``overrides``."""
    return TrainingConfig.preset("quick", **overrides)


def standard(**overrides: Any) -> TrainingConfig:
    """The ``"standard"`` preset (a GPU, minutes to tens of minutes) with ``overrides``."""
    return TrainingConfig.preset("standard", **overrides)


def thorough(**overrides: Any) -> TrainingConfig:
    """The ``"thorough"`` preset (a GPU and some patience) with ``overrides``."""
    return TrainingConfig.preset("thorough", **overrides)


# --------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One user-facing training setting, as described by :func:`settings_schema`.

    ``type`` is ``int``, ``float``, ``str`` or ``bool``; ``optional`` says that
    None is allowed (meaning ``none_text``). ``key`` is where the value goes in
    :meth:`TrainingConfig.preset`'s keyword arguments: the field name, or
    ``("unet", "depth")`` for a U-Net pseudo-setting.
    """

    name: str
    type: type
    optional: bool
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    help: str = ""
    label: str = ""
    advanced: bool = True
    none_text: str | None = None
    exclusive_minimum: bool = False
    examples: tuple[str, ...] | None = None
    key: str | tuple[str, str] = ""

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--subtomo-size``."""
        return "--" + self.name.replace("_", "-")

    def validate(self, value: Any) -> None:
        """Raise ``ValueError`` (naming the setting) unless ``value`` is acceptable for it."""
        meta = {"minimum": self.minimum, "maximum": self.maximum, "exclusive_minimum": self.exclusive_minimum,
                "choices": self.choices, "examples": self.examples}
        _check_value(self.name, self.type, self.optional, meta, value)

    def override(self, value: Any) -> dict[str, Any]:
        """Keyword arguments of :meth:`TrainingConfig.preset` that set this setting to ``value``."""
        if isinstance(self.key, tuple):
            return {self.key[0]: {self.key[1]: value}}
        return {self.key or self.name: value}

    def value_in(self, config: TrainingConfig) -> Any:
        """This setting's value in ``config``."""
        if isinstance(self.key, tuple):
            return getattr(config, self.key[0])[self.key[1]]
        return getattr(config, self.key or self.name)


def _unet_settings() -> tuple[Setting, ...]:
    return (
        Setting("unet_depth", int, False, _DEFAULT_UNET["depth"], minimum=0, maximum=6,
                help="Levels of the U-Net; the subtomogram size must be a multiple of 2^depth.",
                label="U-Net depth", advanced=False, key=("unet", "depth")),
        Setting("unet_width", int, False, _DEFAULT_UNET["width"], minimum=1,
                help="Channels of the U-Net's first level (doubling at every level).",
                label="U-Net width", advanced=False, key=("unet", "width")),
    )


@functools.cache
def settings_schema() -> tuple[Setting, ...]:
    """The user-facing training settings, in :class:`TrainingConfig` field order.

    Fields whose metadata says ``schema=False`` (``adam_betas``, ``unet``,
    ``checkpoint_every_s``, ``num_threads``) are left out; in place of ``unet``
    come the pseudo-settings ``unet_depth`` and ``unet_width``
    (``unet["depth"]``, ``unet["width"]``).
    """
    out: list[Setting] = []
    by_name = {f.name: f for f in fields(TrainingConfig)}
    for name, kind, optional, meta in _field_specs():
        if name == "unet":
            out.extend(_unet_settings())
        if not meta.get("schema", True):
            continue
        f = by_name[name]
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        out.append(Setting(
            name, kind, optional, default, minimum=meta.get("minimum"), maximum=meta.get("maximum"),
            choices=meta.get("choices"), help=meta["help"], label=meta["label"], advanced=bool(meta["advanced"]),
            none_text=meta.get("none_text"), exclusive_minimum=bool(meta.get("exclusive_minimum")),
            examples=meta.get("examples"), key=name,
        ))
    return tuple(out)


class _NoneValue:
    """A flag given as ``none`` (or ``auto``/``random``): the setting's None."""

    def __repr__(self) -> str:
        return "None"


_NONE = _NoneValue()
_NONE_WORDS = ("none", "auto", "random")


def _parse_value(setting: Setting) -> Any:
    def parse(text: str) -> Any:
        if setting.optional and text.strip().lower() in _NONE_WORDS:
            return _NONE
        try:
            value = setting.type(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(setting.type, "a value")
            raise argparse.ArgumentTypeError(f"{setting.name} must be {kind}, got {text!r}") from None
        try:
            setting.validate(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parse.__name__ = setting.type.__name__  # argparse names the type in its messages
    return parse


def _range_text(s: Setting) -> str:
    parts = []
    if s.minimum is not None:
        parts.append(f"{'>' if s.exclusive_minimum else '>='} {s.minimum:g}")
    if s.maximum is not None:
        parts.append(f"<= {s.maximum:g}")
    text = " and ".join(parts)
    if s.optional and s.none_text:
        text = f"{text}; " if text else ""
        text += f"'none' for {s.none_text}"
    return f" [{text}]" if text else ""


def add_arguments(parser: argparse.ArgumentParser | Any, names: Any = None) -> None:
    """Add a flag per schema setting (or per setting in ``names``) to ``parser``.

    ``--subtomo-size N`` etc. (``dest`` is the setting's name), with its type,
    range check (values outside it are refused with a message naming the
    setting), choices and help; booleans get ``--x/--no-x``; optional settings
    also take ``none`` (``auto``, ``random``) for None. Every default is None
    ("not given": the preset's value applies); read the given ones with
    :func:`config_overrides`. ``parser`` may be an argument group.
    """
    schema = {s.name: s for s in settings_schema()}
    wanted = list(schema) if names is None else list(names)
    unknown = [n for n in wanted if n not in schema]
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}; known: {list(schema)}")
    for name in wanted:
        s = schema[name]
        help_text = (s.help + _range_text(s) + " (default: the preset's)").replace("%", "%%")
        if s.type is bool:
            parser.add_argument(s.flag, dest=s.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif s.choices is not None:
            parser.add_argument(s.flag, dest=s.name, choices=s.choices, default=None, help=help_text)
        else:
            metavar = {int: "N", float: "X"}.get(s.type, "TEXT")
            parser.add_argument(s.flag, dest=s.name, type=_parse_value(s), default=None, metavar=metavar,
                                help=help_text)


def config_overrides(namespace: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for :meth:`TrainingConfig.preset` from the flags that were given.

    Settings left at None (not given) are omitted; ``unet_depth``/``unet_width``
    are gathered into one ``unet`` dict (merged into the preset's U-Net).
    """
    values = dict(namespace) if isinstance(namespace, Mapping) else vars(namespace)
    out: dict[str, Any] = {}
    for s in settings_schema():
        value = values.get(s.name)
        if value is None:
            continue
        for key, v in s.override(None if value is _NONE else value).items():
            if isinstance(v, dict):
                out.setdefault(key, {}).update(v)
            else:
                out[key] = v
    return out
