"""Networks of the CryoGEN model: a 3D U-Net generator and an energy network.

:class:`UNet3D` is the generator ``g``: an encoder-decoder with skip
connections, two 3x3x3 convolutions (normalisation, LeakyReLU) per level,
strided 2x2x2 convolutions down and transposed ones up. With ``residual=True``
(the default) it predicts a correction, ``g(x) = x + f(x)``, and the last layer
starts at zero, so an untrained network is the identity: the natural starting
point for denoising and for the consistency loss, whose target ``g'(y)`` is
then the observation itself (IsoNet's first iteration).

:class:`EnergyNet` is the energy ``E`` of the CryoGEN paper (appendix A.6):
four 3x3x3 convolutions (the last three strided), adaptive average pooling to
1x1x1 and three linear layers with ReLU in between, giving one scalar per
sample; low energy means "looks like an observation". It has no normalisation
layers, so it suits both the logistic (GAN) objective and the Wasserstein
objective with gradient penalty; spectral normalisation is optional.

Both are built from plain dicts of keyword arguments (:func:`build_generator`,
:func:`build_energy`), which is how model files store them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = [
    "NORMS",
    "UNet3D",
    "EnergyNet",
    "build_generator",
    "build_energy",
    "count_parameters",
    "inference_copy",
]

NORMS = ("instance", "batch", "group", "none")
#: Memory layout of the networks' weights and activations: channels last is about
#: twice as fast for the narrow 3D convolutions here on CPUs (oneDNN), and suits GPUs.
CHANNELS_LAST = torch.channels_last_3d
_SLOPE = 0.1  # LeakyReLU slope in the U-Net
_ENERGY_SLOPE = 0.2  # LeakyReLU slope in the energy network


def _cpu_autocast() -> bool:
    try:
        return bool(torch.is_autocast_enabled("cpu"))
    except TypeError:  # torch < 2.4
        return bool(torch.is_autocast_cpu_enabled())


class _Conv3d(nn.Conv3d):
    """A 3D convolution that runs a lone float32 sample on the CPU with oneDNN.

    PyTorch sends a batch of one to its native, unvectorised 3D convolution
    when batch x channels x depth x height is at most 20480: the lower levels
    of a U-Net on one tile, the coarse pass's binned volume, the training
    preview. oneDNN computes the same convolution there several times faster
    (a 40^3 volume through the quick preset's 8-wide U-Net: 26 against 192 ms
    on 2 cores); a batch of more than one already gets it.
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (input.shape[0] == 1 and input.device.type == "cpu" and input.dtype == weight.dtype == torch.float32
                and self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
                and not _cpu_autocast()):
            return torch.mkldnn_convolution(input, weight, bias, self.padding, self.stride, self.dilation,
                                            self.groups)
        return super()._conv_forward(input, weight, bias)


def _rows(x: torch.Tensor, channels: int, width: int) -> torch.Tensor:
    """A channels-last ``(N, C, D, H, W)`` tensor's memory as rows of ``width`` values
    (``width`` a multiple of ``channels``: channel ``i % channels`` in column ``i``)."""
    return x.permute(0, 2, 3, 4, 1).reshape(-1, width)


def _per_channel(row_sums: torch.Tensor, channels: int) -> torch.Tensor:
    return row_sums.view(-1, channels).sum(0)


class _RowBatchNorm(torch.autograd.Function):
    """Batch statistics, normalisation and their gradients on the rows of :func:`_rows`.

    PyTorch's batch norm broadcasts its few per-channel values over an inner
    dimension of only ``C`` values in the channels-last layout, which its CPU
    kernels do not vectorise well below 16 channels; on rows of a few
    hundred values the same sums and the same affine map run two to eight
    times faster there. Two passes for the variance (the mean first), as the
    native kernel.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float,
                width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = x.shape[1]
        rows = _rows(x, c, width)
        m = x.numel() // c
        reps = width // c
        mean = _per_channel(rows.sum(0), c) / m
        centred = rows - mean.repeat(reps)
        var = _per_channel((centred * centred).sum(0), c) / m
        rstd = torch.rsqrt(var + eps)
        out = torch.empty_like(x)  # channels last, as ``x``; returned whole (a view could not be changed in place)
        torch.addcmul(bias.repeat(reps), centred, (weight * rstd).repeat(reps), out=_rows(out, c, width))
        ctx.save_for_backward(centred, rstd, weight)
        ctx.width = width
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        centred, rstd, weight = ctx.saved_tensors
        c, width = weight.shape[0], ctx.width
        reps, m = width // c, centred.numel() // c
        grad = grad.contiguous(memory_format=CHANNELS_LAST)
        g = _rows(grad, c, width)
        g_sum = _per_channel(g.sum(0), c)
        g_dot = _per_channel((g * centred).sum(0), c)  # sum of grad * (x - mean)
        grad_x = None
        if ctx.needs_input_grad[0]:
            a = weight * rstd
            grad_x = torch.empty_like(grad)
            rows = _rows(grad_x, c, width)
            torch.addcmul((-a * g_sum / m).repeat(reps), g, a.repeat(reps), out=rows)
            rows.addcmul_(centred, (-a * rstd * rstd * g_dot / m).repeat(reps))
        return grad_x, g_dot * rstd, g_sum, None, None


def _row_width(x: torch.Tensor) -> int:
    """Values per row for :func:`_rows`: ``C`` times the largest power of two up to 32 that divides the voxels."""
    voxels, reps = x.numel() // x.shape[1], 32
    while voxels % reps:
        reps //= 2
    return x.shape[1] * reps


def _eval_affine(bn: nn.BatchNorm3d) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch norm in eval mode as the per-channel map ``x * scale + shift``."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
    return scale, -bn.running_mean * scale + (bn.bias if bn.affine else 0)


#: Channels below which PyTorch's CPU batch norm is slow in the channels-last layout (measured on AVX2:
#: 4 and 8 channels two to eight times slower than :class:`_RowBatchNorm`, 16 and more faster than it).
_ROW_NORM_CHANNELS = 16


class _BatchNorm3d(nn.BatchNorm3d):
    """A batch norm that runs narrow float32 channels-last volumes on the CPU through :class:`_RowBatchNorm`.

    The same statistics, running averages and gradients as ``nn.BatchNorm3d``
    (and the same state dict). Forward and backward of 8 channels of 4 x 32^3
    take about half the time there; the quick preset's 8-wide U-Net (a CPU
    without bfloat16) has 8 channels at full resolution. Anything else
    (another device or dtype, autocast, the contiguous layout, 16 channels or
    more) goes to PyTorch's own.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        batch_stats = self.training or self.running_mean is None
        if not (input.device.type == "cpu" and input.dtype == torch.float32 and input.dim() == 5 and self.affine
                and input.shape[1] < _ROW_NORM_CHANNELS
                and input.is_contiguous(memory_format=CHANNELS_LAST) and not _cpu_autocast()
                and input.numel() > input.shape[1] and (batch_stats or not torch.is_grad_enabled())):
            return super().forward(input)
        c, width = input.shape[1], _row_width(input)
        if not batch_stats:  # running statistics, no gradient: a fixed affine map
            scale, shift = _eval_affine(self)
            out = torch.empty_like(input)
            torch.addcmul(shift.repeat(width // c), _rows(input, c, width), scale.repeat(width // c),
                          out=_rows(out, c, width))
            return out
        out, mean, var = _RowBatchNorm.apply(input, self.weight, self.bias, self.eps, width)
        if self.training and self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                m = input.numel() // c
                self.running_mean.lerp_(mean, factor)
                self.running_var.lerp_(var * (m / (m - 1)), factor)
        return out


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return _BatchNorm3d(channels)
    if kind == "group":
        groups = min(8, channels)
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class _ConvBlock(nn.Sequential):
    """Two (conv 3x3x3, normalisation, LeakyReLU) layers."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        bias = norm == "none"
        super().__init__(
            _Conv3d(c_in, c_out, 3, padding=1, bias=bias),
            _norm(norm, c_out),
            nn.LeakyReLU(_SLOPE, inplace=True),
            _Conv3d(c_out, c_out, 3, padding=1, bias=bias),
            _norm(norm, c_out),
            nn.LeakyReLU(_SLOPE, inplace=True),
        )


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class UNet3D(nn.Module):
    """3D U-Net for single-channel ``(B, C, d, h, w)`` volumes.

    Parameters
    ----------
    in_channels, out_channels:
        Channels of input and output (1 for tomograms).
    depth:
        Number of down-sampling steps; every spatial size of the input must be
        a multiple of ``padding_multiple = 2**depth`` (and at least twice that
        with instance normalisation, which needs more than one voxel at the
        bottom).
    width:
        Channels at the first level; doubled at every level down, capped at
        ``max_channels``.
    norm:
        ``"instance"`` (default), ``"batch"``, ``"group"`` or ``"none"``.
    residual:
        Predict ``x + f(x)`` (needs ``in_channels == out_channels``).
    max_channels:
        Upper bound on the channels of any level.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 3,
        width: int = 16,
        norm: str = "instance",
        residual: bool = True,
        max_channels: int = 256,
    ) -> None:
        super().__init__()
        in_channels = _positive_int(in_channels, "in_channels")
        out_channels = _positive_int(out_channels, "out_channels")
        depth = _positive_int(depth, "depth", 0)
        width = _positive_int(width, "width")
        max_channels = _positive_int(max_channels, "max_channels")
        if depth > 6:
            raise ValueError(f"depth must be at most 6, got {depth}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if residual and in_channels != out_channels:
            raise ValueError(
                f"a residual U-Net needs in_channels == out_channels, got {in_channels} and {out_channels}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depth, self.width, self.norm = depth, width, norm
        self.residual = bool(residual)
        self.max_channels = max_channels

        chans = [min(width * 2**i, max_channels) for i in range(depth + 1)]
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        c_prev = in_channels
        for i in range(depth):
            self.encoders.append(_ConvBlock(c_prev, chans[i], norm))
            self.downs.append(_Conv3d(chans[i], chans[i + 1], 2, stride=2))
            c_prev = chans[i + 1]
        self.bottom = _ConvBlock(c_prev, chans[depth], norm)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(depth)):
            self.ups.append(nn.ConvTranspose3d(chans[i + 1], chans[i], 2, stride=2))
            self.decoders.append(_ConvBlock(2 * chans[i], chans[i], norm))
        self.head = _Conv3d(chans[0], out_channels, 1)
        if self.residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.to(memory_format=CHANNELS_LAST)

    @property
    def padding_multiple(self) -> int:
        """Spatial sizes of the input must be multiples of this."""
        return 2**self.depth

    @property
    def min_size(self) -> int:
        """Smallest spatial size the network accepts."""
        return 2 * self.padding_multiple if self.norm == "instance" else self.padding_multiple

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this network (see :func:`build_generator`)."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "depth": self.depth,
            "width": self.width,
            "norm": self.norm,
            "residual": self.residual,
            "max_channels": self.max_channels,
        }

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet3D expects input of shape (batch, {self.in_channels}, z, y, x), got {tuple(x.shape)}"
            )
        m = self.padding_multiple
        bad = [s for s in x.shape[2:] if s % m or s < self.min_size]
        if bad:
            raise ValueError(
                f"UNet3D of depth {self.depth} needs spatial sizes that are multiples of {m} "
                f"and at least {self.min_size}, got {tuple(x.shape[2:])}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        skips = []
        h = x.contiguous(memory_format=CHANNELS_LAST)
        for enc, down in zip(self.encoders, self.downs):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.bottom(h)
        for up, dec in zip(self.ups, self.decoders):
            h = up(h)
            h = dec(torch.cat([h, skips.pop()], dim=1))
        out = self.head(h).contiguous()
        if self.residual:
            out = out + x
        return out


class EnergyNet(nn.Module):
    """Energy ``E(y)``: one scalar per sample, shape ``(B,)``; low for real observations.

    Four 3x3x3 convolutions with LeakyReLU (``width``, then doubling, the last
    three with stride 2), adaptive average pooling to 1x1x1, then three linear
    layers (``8w -> 4w -> w -> 1``) with ReLU between them. Any input size of
    at least 8 voxels per axis works. ``spectral_norm=True`` wraps every layer
    in spectral normalisation (a Lipschitz bound, useful with the logistic
    objective; the gradient penalty plays that role for the Wasserstein one).
    """

    def __init__(self, in_channels: int = 1, width: int = 16, spectral_norm: bool = False) -> None:
        super().__init__()
        in_channels = _positive_int(in_channels, "in_channels")
        width = _positive_int(width, "width")
        self.in_channels, self.width, self.spectral_norm = in_channels, width, bool(spectral_norm)
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        w = width
        self.features = nn.Sequential(
            sn(nn.Conv3d(in_channels, w, 3, padding=1)),
            nn.LeakyReLU(_ENERGY_SLOPE),
            sn(nn.Conv3d(w, 2 * w, 3, stride=2, padding=1)),
            nn.LeakyReLU(_ENERGY_SLOPE),
            sn(nn.Conv3d(2 * w, 4 * w, 3, stride=2, padding=1)),
            nn.LeakyReLU(_ENERGY_SLOPE),
            sn(nn.Conv3d(4 * w, 8 * w, 3, stride=2, padding=1)),
            nn.LeakyReLU(_ENERGY_SLOPE),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(
            sn(nn.Linear(8 * w, 4 * w)),
            nn.ReLU(),
            sn(nn.Linear(4 * w, w)),
            nn.ReLU(),
            sn(nn.Linear(w, 1)),
        )
        self.to(memory_format=CHANNELS_LAST)

    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this network (see :func:`build_energy`)."""
        return {"in_channels": self.in_channels, "width": self.width, "spectral_norm": self.spectral_norm}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"EnergyNet expects input of shape (batch, {self.in_channels}, z, y, x), got {tuple(x.shape)}"
            )
        return self.head(self.features(x.contiguous(memory_format=CHANNELS_LAST))).squeeze(1)


def _build(cls: type, config: Mapping[str, Any] | None, what: str) -> nn.Module:
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise TypeError(f"{what} settings must be a dict, got {type(config).__name__}")
    import inspect

    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {unknown}; known: {sorted(known)}")
    return cls(**dict(config))


def build_generator(config: Mapping[str, Any] | None = None) -> UNet3D:
    """A :class:`UNet3D` from a dict of its keyword arguments (unknown keys are an error)."""
    return _build(UNet3D, config, "U-Net")  # type: ignore[return-value]


def build_energy(config: Mapping[str, Any] | None = None) -> EnergyNet:
    """An :class:`EnergyNet` from a dict of its keyword arguments (unknown keys are an error)."""
    return _build(EnergyNet, config, "energy network")  # type: ignore[return-value]


def _batch_norms_to_fold(net: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """``(sequential, conv name, norm name)`` for each convolution followed by a batch norm with running statistics."""
    pairs = []
    for seq in net.modules():
        if isinstance(seq, nn.Sequential):
            for a, b in zip(seq._modules, list(seq._modules)[1:]):
                conv, bn = seq._modules[a], seq._modules[b]
                if isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d) and bn.running_mean is not None \
                        and bn.running_var is not None and conv.out_channels == bn.num_features:
                    pairs.append((seq, a, b))
    return pairs


def inference_copy(net: nn.Module) -> nn.Module:
    """``net`` in eval mode for inference, each batch norm folded into its convolution.

    In eval mode a batch norm is a fixed affine map per channel, so the
    convolution before it (within one ``nn.Sequential``) can absorb it:
    weight ``w * s`` and bias ``beta + (b - mean) * s``, ``s = gamma /
    sqrt(var + eps)``; the norm becomes the identity. The output is the same up
    to rounding, and about a sixth of an application's time on a CPU is saved.
    Where there is a norm to fold, the result is a copy and ``net`` is left as
    it was; otherwise it is ``net`` itself, put in eval mode.
    """
    import copy

    if not _batch_norms_to_fold(net):
        return net.eval()
    out = copy.deepcopy(net).eval()
    for seq, a, b in _batch_norms_to_fold(out):
        conv, bn = seq._modules[a], seq._modules[b]
        with torch.no_grad():
            scale, shift = _eval_affine(bn)
            if conv.bias is not None:
                shift = shift + conv.bias * scale
            weight = conv.weight * scale.reshape(-1, *([1] * (conv.weight.ndim - 1)))
            conv.weight = nn.Parameter(weight.contiguous(memory_format=CHANNELS_LAST), requires_grad=False)
            conv.bias = nn.Parameter(shift.to(weight.dtype), requires_grad=False)
        seq._modules[b] = nn.Identity()
    return out


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
