"""Tiled inference (core/inference.py) with tiny deterministic generators on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from napari_dewedge.core.inference import (
    InferenceStopped,
    plan_tiles,
    predict,
    run_inference,
)
from napari_dewedge.core.model import TrainedModel
from napari_dewedge.core.networks import UNet3D
from napari_dewedge.core.wedge import WedgeGeometry

from ..conftest import requires_cuda

torch.set_num_threads(1)

MEAN, STD = 5.0, 2.0


class Pointwise(nn.Module):
    """A nonlinear function of each voxel alone: tiling must not change it at all."""

    padding_multiple = 4

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        return self.a * x * x - 0.5 * x + 1.0


class SmallConv(nn.Module):
    """Two fixed 3x3x3 convolutions with zero padding (receptive radius 2)."""

    padding_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1 = nn.Conv3d(1, 2, 3, padding=1)
        self.c2 = nn.Conv3d(2, 1, 3, padding=1)
        with torch.no_grad():
            for c in (self.c1, self.c2):
                c.weight.copy_(torch.rand(c.weight.shape, generator=g) / 20 + 0.01)
                c.bias.zero_()

    def forward(self, x):
        return self.c2(torch.tanh(self.c1(x)))


class CountingShift(nn.Module):
    """Adds k on its k-th call (k = 0, 1, 2...): one call per sample when the batch holds every tile."""

    padding_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        out = x + float(self.calls)
        self.calls += 1
        return out


def _model(generator: nn.Module, subtomo: int = 8, noise: float = 0.0) -> TrainedModel:
    return TrainedModel(
        generator=generator,
        network={},
        geometry=WedgeGeometry(),
        normalization={"mean": MEAN, "std": STD},
        subtomo_size=subtomo,
        training={"noise_scale": noise},
    )


def _volume(shape, seed=0, smooth=1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = ndimage.gaussian_filter(rng.normal(size=shape), smooth) if smooth else rng.normal(size=shape)
    v = (v - v.mean()) / v.std()
    return (v * STD + MEAN).astype(np.float32)


def _conv_reference(vol: np.ndarray, gen: nn.Module, radius: int = 2) -> np.ndarray:
    """The generator on the whole volume, reflect-padded by its receptive radius (no tiles)."""
    padded = np.pad(vol, radius, mode="reflect")
    with torch.no_grad():
        x = (torch.from_numpy(padded)[None, None] - MEAN) / STD
        y = gen(x)[0, 0].numpy() * STD + MEAN
    r = radius
    return y[r:-r, r:-r, r:-r]


# --- exactness and seams ------------------------------------------------------


@pytest.mark.parametrize("shape", [(20, 37, 29), (5, 40, 7), (1, 3, 2)])
def test_pointwise_generator_reproduced_everywhere(shape):
    gen = Pointwise()
    vol = _volume(shape, smooth=0)
    res = predict(_model(gen), vol, tile=16, overlap=6, batch_size=3, device="cpu")
    with torch.no_grad():
        expected = gen((torch.from_numpy(vol) - MEAN) / STD).numpy() * STD + MEAN
    assert res.mean.shape == shape and res.mean.dtype == np.float32
    assert res.std is None
    np.testing.assert_allclose(res.mean, expected, rtol=1e-5, atol=1e-5)
    assert all(t % 4 == 0 for t in res.tile)


def test_default_tiles_grow_to_128_and_keep_half_a_subtomogram_of_overlap():
    from napari_dewedge.core.inference import default_overlap, default_tile

    quick, standard, thorough = _model(SmallConv(), subtomo=32), _model(SmallConv(), subtomo=64), \
        _model(SmallConv(), subtomo=96)
    assert (default_tile(quick), default_overlap(quick)) == (128, 16)
    assert (default_tile(standard), default_overlap(standard)) == (128, 32)  # as twice the subtomogram
    assert (default_tile(thorough), default_overlap(thorough)) == (192, 48)
    vol = _volume((40, 300, 260))
    res = predict(quick, vol, batch_size=2, device="cpu", calibrate=False, coarse=False, fuse=False)
    assert res.tile == (56, 128, 128) and res.overlap == (16, 16, 16)  # z shrinks to the volume and its margin
    assert len(plan_tiles(vol.shape, 128, 16)) == 9  # 3 x 3 tiles across y and x, one along z
    explicit = predict(quick, vol[:, :64, :64], tile=32, device="cpu", calibrate=False, coarse=False, fuse=False)
    assert explicit.overlap == (8, 8, 8)  # another tile: a quarter of it


def test_tiled_equals_untiled_conv_net():
    gen = SmallConv()
    vol = _volume((24, 30, 34))
    res = predict(_model(gen), vol, tile=20, overlap=8, device="cpu")
    ref = _conv_reference(vol, gen)
    assert len(plan_tiles(vol.shape, 20, 8)) >= 18  # really tiled
    scale = ref.std()
    err = np.abs(res.mean - ref)
    # Tile edges (zero padding inside the network, 2 voxels deep) get only the
    # dead-zone weight; the volume's own borders see reflected context.
    assert err.max() < 4e-3 * scale
    # with too small an overlap for the receptive field the same measure fails
    rough = predict(_model(gen), vol, tile=20, overlap=2, device="cpu").mean
    assert np.abs(rough - ref).max() > 1e-2 * scale


def _seam_profile(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Mean |x-gradient| of ``out`` per x position relative to that of ``ref``."""
    g_out = np.abs(np.diff(out, axis=2)).mean(axis=(0, 1))
    g_ref = np.abs(np.diff(ref, axis=2)).mean(axis=(0, 1))
    return g_out / g_ref


def test_no_seams_gradient_across_tile_boundaries():
    gen = SmallConv()
    vol = _volume((16, 16, 64), seed=3)
    ref = _conv_reference(vol, gen)
    blended = predict(_model(gen), vol, tile=16, overlap=8, device="cpu").mean
    ratio = _seam_profile(blended, ref)
    # the gradient across every plane, tile boundaries included, matches the untiled one
    assert np.all(np.abs(ratio - 1) < 0.02), ratio
    # the same measure does see the seams of hard-edged tiles without overlap
    hard = predict(_model(gen), vol, tile=16, overlap=0, device="cpu").mean
    assert np.abs(_seam_profile(hard, ref) - 1).max() > 0.1


# --- sampling and noise -----------------------------------------------------------


def test_samples_std_positive_with_noise_zero_without():
    vol = _volume((12, 20, 16))
    model = _model(SmallConv(), noise=0.4)
    noisy = predict(model, vol, tile=8, overlap=2, samples=3, device="cpu", seed=1)
    assert noisy.samples == 3 and noisy.noise_scale == pytest.approx(0.2)  # half the model's training noise
    assert noisy.std is not None and noisy.std.shape == vol.shape
    assert (noisy.std > 0).mean() > 0.99
    again = predict(model, vol, tile=8, overlap=2, samples=3, device="cpu", seed=1)
    np.testing.assert_array_equal(noisy.mean, again.mean)

    quiet = predict(model, vol, tile=8, overlap=2, samples=3, noise_scale=0.0, device="cpu")
    single = predict(model, vol, tile=8, overlap=2, device="cpu")
    assert single.noise_scale == 0.0 and single.std is None
    assert np.all(quiet.std == 0)
    np.testing.assert_allclose(quiet.mean, single.mean, rtol=1e-6, atol=1e-6)


def test_sample_noise_is_half_the_tomograms_noise():
    """Several samples perturb the input by half the noise estimated on the training tomogram, not by
    the (larger) noise of training's recorrupted inputs."""
    model = _model(SmallConv(), noise=1.4)
    model.training["noise_estimate"] = {"white_std": 0.8, "wedge_std": 0.0, "kind": "white"}
    vol = _volume((8, 12, 10))
    assert predict(model, vol, tile=8, overlap=2, samples=2, device="cpu", seed=0).noise_scale == pytest.approx(0.4)
    assert predict(model, vol, tile=8, overlap=2, device="cpu").noise_scale == 0.0


def test_sample_mean_and_std_are_exact():
    vol = _volume((6, 10, 9))
    gen = CountingShift()
    # one batch holds every tile, so sample k is the volume shifted by k (normalised units)
    res = predict(_model(gen), vol, tile=16, overlap=4, batch_size=64, samples=3, noise_scale=0.0, device="cpu")
    assert gen.calls == 3
    np.testing.assert_allclose(res.mean, vol + 1.0 * STD, rtol=1e-5)
    np.testing.assert_allclose(res.std, np.full(vol.shape, np.std([0.0, 1.0, 2.0]) * STD), rtol=1e-5)


# --- memory-bounded path, events, stop -------------------------------------------------


def test_memmap_input_and_output(tmp_path):
    vol = np.round(_volume((14, 26, 22)) * 100).astype(np.int16)
    src = tmp_path / "in.raw"
    vol.tofile(src)
    mm = np.memmap(src, dtype=np.int16, mode="r", shape=vol.shape)
    model = _model(SmallConv())
    model.normalization = {"mean": MEAN * 100, "std": STD * 100}
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.float32, shape=vol.shape)
    out[:] = 7.0  # whatever a caller's array holds is replaced
    res = predict(model, mm, tile=8, overlap=4, device="cpu", out=out)
    assert res.mean is out
    out.flush()
    ref = predict(model, vol.astype(np.float32), tile=8, overlap=4, device="cpu").mean
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), ref, rtol=1e-6, atol=1e-4)
    assert np.array_equal(np.fromfile(src, dtype=np.int16).reshape(vol.shape), vol)  # input untouched
    # several samples into caller-provided arrays
    std = np.full(vol.shape, 3.0, np.float32)
    out[:] = 7.0
    res2 = predict(model, mm, tile=8, overlap=4, device="cpu", out=out, std_out=std, samples=2, noise_scale=0.0)
    assert res2.mean is out and res2.std is std
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-4)
    assert np.all(std == 0)


def test_events_progress_and_stop():
    vol = _volume((16, 24, 24))
    model = _model(SmallConv())
    events = list(run_inference(model, vol, tile=8, overlap=2, batch_size=2, samples=2, noise_scale=0.1, device="cpu"))
    total = events[-1].total_tiles
    assert total == 2 * len(plan_tiles(vol.shape, 8, 2))
    assert [e.done_tiles for e in events[:-1]] == sorted(e.done_tiles for e in events[:-1])
    assert events[-1].done and events[-1].done_tiles == total and events[-1].result is not None
    assert {e.sample for e in events} == {1, 2}
    assert all(e.eta_s is not None and e.eta_s >= 0 for e in events)

    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 2

    events = list(run_inference(model, vol, tile=8, overlap=2, batch_size=2, device="cpu", stop=stop))
    last = events[-1]
    assert last.done and last.stopped and last.result is None
    assert last.done_tiles == 4 < last.total_tiles
    calls["n"] = 0
    with pytest.raises(InferenceStopped):
        predict(model, vol, tile=8, overlap=2, batch_size=2, device="cpu", stop=stop)


def test_real_unet_model_any_shape_and_generator_restored():
    torch.manual_seed(0)
    net = UNet3D(depth=2, width=2, norm="instance")
    with torch.no_grad():
        net.head.weight.normal_(0, 0.1)
    model = _model(net, subtomo=8)
    model.network = net.config()
    vol = _volume((9, 21, 13))
    net.train()
    res = predict(model, vol, device="cpu")  # default tile 16 (2 x subtomo, multiple of 4, >= min size 8)
    assert res.mean.shape == vol.shape and np.isfinite(res.mean).all()
    assert net.training  # mode restored
    assert not np.allclose(res.mean, vol)


def test_bad_arguments():
    model = _model(SmallConv())
    with pytest.raises(ValueError, match="3D"):
        predict(model, np.zeros((4, 4)), device="cpu")
    with pytest.raises(ValueError, match="samples"):
        predict(model, np.zeros((4, 4, 4)), samples=0, device="cpu")
    with pytest.raises(ValueError, match="overlap"):
        predict(model, np.zeros((4, 4, 4)), tile=8, overlap=8, device="cpu")
    with pytest.raises(ValueError, match="noise_scale"):
        predict(model, np.zeros((4, 4, 4)), noise_scale=-1, device="cpu")
    with pytest.raises(ValueError, match="out must be a float32"):
        predict(model, np.zeros((4, 4, 4)), out=np.zeros((4, 4, 4)), device="cpu")


@requires_cuda
def test_cuda_matches_cpu():
    vol = _volume((24, 40, 40))
    model = _model(SmallConv())
    cpu = predict(model, vol, tile=16, overlap=4, device="cpu").mean
    gpu = predict(model, vol, tile=16, overlap=4, device="cuda").mean
    assert np.abs(gpu - cpu).max() < 0.02 * cpu.std()


@requires_cuda
def test_an_application_gives_gpu_memory_back_once(monkeypatch):
    import napari_dewedge.core.device as device_module
    from napari_dewedge.core import pipeline

    released = []
    monkeypatch.setattr(device_module, "release_device_memory", lambda dev=None: released.append(dev))
    generator = CountingShift()
    spec = pipeline.ApplySpec(device="cuda", tile=16, overlap=4, views=4, coarse=False, fuse=False)
    outcome = pipeline.run_job(pipeline.apply(_model(generator), _volume((16, 16, 16)), spec))
    assert outcome.result is not None
    assert generator.calls > 4  # the views, and the wedge gains' own runs of the tiles
    assert len(released) == 1 and torch.device(released[0]).type == "cuda"
