"""U-Net generator and energy network."""

from __future__ import annotations

import pytest
import torch

from napari_dewedge.core.networks import (
    EnergyNet,
    UNet3D,
    build_energy,
    build_generator,
    count_parameters,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("norm", ["instance", "batch", "group", "none"])
@pytest.mark.parametrize("depth", [1, 2])
def test_unet_keeps_shape(depth: int, norm: str) -> None:
    torch.manual_seed(0)
    net = UNet3D(depth=depth, width=4, norm=norm, residual=False)
    x = torch.randn(2, 1, 16, 16, 24)
    out = net(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert net.padding_multiple == 2**depth


def test_residual_unet_starts_as_identity_and_learns() -> None:
    torch.manual_seed(0)
    net = UNet3D(depth=2, width=4)
    x = torch.randn(1, 1, 16, 16, 16)
    assert torch.equal(net(x), x)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    target = torch.zeros_like(x)
    first = ((net(x) - target) ** 2).mean().item()
    for _ in range(10):
        loss = ((net(x) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert ((net(x) - target) ** 2).mean().item() < 0.9 * first


def test_unet_channels_and_width_cap() -> None:
    net = UNet3D(in_channels=1, out_channels=2, depth=3, width=8, residual=False, max_channels=16)
    assert net(torch.randn(1, 1, 16, 16, 16)).shape == (1, 2, 16, 16, 16)
    assert max(m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv3d)) <= 16


def test_unet_rejects_sizes_that_are_not_multiples() -> None:
    net = UNet3D(depth=2, width=4)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.randn(1, 1, 16, 18, 16))
    with pytest.raises(ValueError, match="shape"):
        net(torch.randn(1, 16, 16, 16))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"norm": "layer"}, "norm"),
        ({"depth": -1}, "depth"),
        ({"width": 0}, "width"),
        ({"out_channels": 2, "residual": True}, "residual"),
    ],
)
def test_unet_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UNet3D(**kwargs)


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_energy_net_gives_one_scalar_per_sample(spectral_norm: bool) -> None:
    torch.manual_seed(0)
    net = EnergyNet(width=4, spectral_norm=spectral_norm)
    for shape in [(3, 1, 16, 16, 16), (2, 1, 24, 24, 24), (1, 1, 12, 20, 16)]:
        out = net(torch.randn(shape))
        assert out.shape == (shape[0],)
    x = torch.randn(2, 1, 16, 16, 16, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 4 and len(linears) == 3


def test_energy_net_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match="EnergyNet"):
        EnergyNet(width=4)(torch.randn(1, 2, 16, 16, 16))


def test_build_from_config_round_trips_weights() -> None:
    torch.manual_seed(1)
    net = UNet3D(depth=2, width=4, norm="group", residual=False)
    clone = build_generator(net.config())
    clone.load_state_dict(net.state_dict())
    x = torch.randn(1, 1, 16, 16, 16)
    assert torch.equal(net(x), clone(x))
    energy = EnergyNet(width=4, spectral_norm=True)
    energy_clone = build_energy(energy.config())
    energy_clone.load_state_dict(energy.state_dict())
    energy.eval(), energy_clone.eval()
    assert torch.equal(energy(x), energy_clone(x))
    assert count_parameters(net) > 0


def test_build_rejects_unknown_settings() -> None:
    with pytest.raises(ValueError, match="unknown U-Net setting"):
        build_generator({"depth": 2, "widht": 4})
    with pytest.raises(ValueError, match="unknown energy network setting"):
        build_energy({"depth": 2})


def _trained_batch_norms(net: torch.nn.Module) -> None:
    """Give every batch norm running statistics and an affine map other than the identity."""
    torch.manual_seed(3)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv3d) and m.out_channels == 1:  # the head starts at zero
            torch.nn.init.normal_(m.weight, std=0.3)


def test_inference_copy_folds_batch_norms_and_leaves_the_network_alone() -> None:
    from napari_dewedge.core.networks import inference_copy

    net = UNet3D(depth=2, width=4, norm="batch")
    _trained_batch_norms(net)
    net.train()
    x = torch.randn(2, 1, 16, 16, 16)
    copy = inference_copy(net)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in copy.modules())
    assert not copy.training and net.training  # the original keeps its mode and its norms
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules()) == 10
    net.eval()
    with torch.no_grad():
        expected, got = net(x), copy(x)
    assert float((expected - x).abs().max()) > 0.1  # the network does something to compare
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_inference_copy_keeps_other_norms() -> None:
    from napari_dewedge.core.networks import inference_copy

    net = UNet3D(depth=1, width=4, norm="instance")
    copy = inference_copy(net)
    assert copy is net and not net.training  # nothing to fold: the network itself, in eval mode
    assert sum(isinstance(m, torch.nn.InstanceNorm3d) for m in net.modules()) == 6


def test_lone_sample_convolution_matches_the_native_one() -> None:
    """A batch of one on the CPU runs on oneDNN: same values and gradients as the native path."""
    from napari_dewedge.core.networks import _Conv3d

    torch.manual_seed(0)
    conv = _Conv3d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 10, 10, 10, requires_grad=True)
    with torch.profiler.profile() as prof:
        y = conv(x)
    if torch.backends.mkldnn.is_available():
        assert "aten::mkldnn_convolution" in {e.key for e in prof.key_averages()}
    y.square().sum().backward()
    gx, gw = x.grad.clone(), conv.weight.grad.clone()
    x.grad, conv.weight.grad = None, None
    ref = torch.nn.functional.conv3d(x, conv.weight, conv.bias, padding=1)
    ref.square().sum().backward()
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gx, x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gw, conv.weight.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(4, 8, 12, 12, 12), (3, 4, 5, 3, 7), (1, 12, 2, 2, 2)])
def test_row_batch_norm_matches_the_native_one(shape: tuple[int, ...]) -> None:
    """The channels-last CPU batch norm: the native values, gradients and running statistics, in both modes."""
    from napari_dewedge.core.networks import CHANNELS_LAST, _BatchNorm3d

    torch.manual_seed(0)
    c = shape[1]
    native, rows = torch.nn.BatchNorm3d(c), _BatchNorm3d(c)
    with torch.no_grad():
        native.weight.uniform_(0.5, 2.0)
        native.bias.uniform_(-1.0, 1.0)
    rows.load_state_dict(native.state_dict())
    x = (3.0 * torch.randn(shape) + 5.0).contiguous(memory_format=CHANNELS_LAST)  # off-centre, not unit
    grad = torch.randn(shape).contiguous(memory_format=CHANNELS_LAST)
    outs = []
    for norm in (native, rows):
        xi = x.clone().requires_grad_()
        for _ in range(2):  # twice: the running averages move twice
            y = norm(xi)
        (y * grad).sum().backward()
        outs.append((y.detach(), xi.grad, norm.weight.grad, norm.bias.grad))
    assert outs[1][0].is_contiguous(memory_format=CHANNELS_LAST) and outs[1][1].is_contiguous(
        memory_format=CHANNELS_LAST)
    for got, expected in zip(outs[1], outs[0]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(rows, name), getattr(native, name), rtol=1e-5, atol=1e-6)
    native.eval(), rows.eval()
    with torch.no_grad():
        torch.testing.assert_close(rows(x), native(x), rtol=1e-4, atol=1e-4)
    with torch.profiler.profile() as prof:  # the row path ran (not PyTorch's own kernel)
        rows.train()(x.requires_grad_())
    assert "aten::native_batch_norm" not in {e.key for e in prof.key_averages()}


def test_row_batch_norm_leaves_other_inputs_to_pytorch() -> None:
    """The contiguous layout, a gradient through running statistics, or 16 channels take the native path."""
    from napari_dewedge.core.networks import CHANNELS_LAST, _BatchNorm3d

    norm = _BatchNorm3d(4)
    x = torch.randn(2, 4, 6, 6, 6)  # contiguous, not channels last
    wide = torch.randn(2, 16, 6, 6, 6).contiguous(memory_format=CHANNELS_LAST)
    with torch.profiler.profile() as prof:
        norm(x)
        norm.eval()(x.requires_grad_())
        _BatchNorm3d(16)(wide)
    assert sum(e.count for e in prof.key_averages() if e.key == "aten::native_batch_norm") == 3
