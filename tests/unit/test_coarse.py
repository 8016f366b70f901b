"""The coarse pass (core/inference/coarse.py): binning, the merge, and its place in run_inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_dewedge.core.inference import predict
from napari_dewedge.core.inference.coarse import (
    COARSE_MAX_VOXELS,
    COARSE_RADIUS,
    coarse_factor,
    coarse_volume,
    merge_coarse,
)
from napari_dewedge.core.model import TrainedModel
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge

from .test_inference import SmallConv

torch.set_num_threads(1)
WEDGE = WedgeGeometry(-60, 60, "y")


def _waves(shape):
    """Index radius of every fftn bin: waves per volume edge."""
    k = np.meshgrid(*[np.fft.fftfreq(n) * n for n in shape], indexing="ij")
    return np.sqrt(sum(a * a for a in k))


def _in_wedge(shape, geometry=WEDGE):
    impulse = np.zeros(shape)
    impulse[0, 0, 0] = 1
    return np.real(np.fft.fftn(apply_wedge(impulse, geometry))) < 0.5


@pytest.mark.parametrize("shape, subtomo, factor", [
    ((64, 64, 64), 32, 2),      # 32^3: one subtomogram
    ((96, 96, 96), 32, 4),      # 24^3 is nearer 32 than 48 is (log scale)
    ((140, 140, 140), 32, 4),   # 35^3, not 17^3 (where the paper's sphere shell falls below a voxel)
    ((96, 96, 96), 64, 2),      # a 64-voxel subtomogram: 48^3
    ((200, 512, 512), 32, 16),  # the longest edge decides, the shortest keeps 8 voxels or more
    ((100, 1000, 1000), 32, 8),
    ((24, 24, 24), 32, 1),      # already inside one subtomogram
    ((12, 200, 200), 32, 1),    # binning would leave fewer than 8 voxels along z
])
def test_factor(shape, subtomo, factor):
    assert coarse_factor(shape, subtomo) == factor


def test_factor_skips_huge_volumes_and_rejects_bad_sizes():
    side = int(round(COARSE_MAX_VOXELS ** (1 / 3))) + 2
    assert coarse_factor((side, side, side), 32) == 1
    with pytest.raises(ValueError, match="subtomo_size"):
        coarse_factor((64, 64, 64), 0)


@pytest.mark.parametrize("shape", [(32, 40, 24), (33, 41, 27)])
def test_binning_keeps_low_frequencies_and_scales_noise(shape):
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    wave = np.cos(2 * np.pi * (2 * z / shape[0] + 1 * x / shape[2])).astype(np.float32)
    binned = coarse_volume(wave, 2)
    assert binned.shape == tuple(n // 2 for n in shape) and binned.dtype == np.float32
    zb, yb, xb = np.meshgrid(*[np.arange(n // 2) for n in shape], indexing="ij")
    # a wave well below the coarse Nyquist keeps its amplitude (sampled at the coarse grid's own frequency)
    expected = np.cos(2 * np.pi * (2 * zb / (shape[0] / 2) + 1 * xb / (shape[2] / 2)))
    if all(n % 2 == 0 for n in shape):
        np.testing.assert_allclose(binned, expected, atol=1e-4)
    else:
        assert abs(binned.std() - expected.std()) < 0.05
    noise = rng.standard_normal((64, 64, 64)).astype(np.float32)
    assert coarse_volume(noise, 4).std() == pytest.approx(1 / 8, rel=0.1)  # sigma / factor**1.5


def test_merge_replaces_only_the_low_missing_wedge():
    rng = np.random.default_rng(1)
    shape = (48, 40, 32)
    fine = rng.standard_normal(shape).astype(np.float32)
    coarse = rng.standard_normal(tuple(n // 4 for n in shape)).astype(np.float32)
    merged = merge_coarse(fine.copy(), coarse, WEDGE)
    # the measured region is untouched
    np.testing.assert_allclose(apply_wedge(merged, WEDGE), apply_wedge(fine, WEDGE), atol=1e-4)
    F, M = np.fft.fftn(fine.astype(np.float64)), np.fft.fftn(merged.astype(np.float64))
    changed = np.abs(F - M) > 1e-3 * np.abs(F).max()
    near, wedge = _waves(shape) < COARSE_RADIUS, _in_wedge(shape)
    assert changed.any()
    assert not (changed & ~(near & wedge)).any()  # only the missing wedge near the origin changes
    # ... and there it equals the coarse prediction brought to full size (same voxel scale)
    up = np.zeros(shape, complex)
    Fc = np.fft.fftn(coarse.astype(np.float64)) * (np.prod(shape) / np.prod(coarse.shape))
    ix = np.ix_(*[np.r_[0:(m + 1) // 2, n - m // 2:n] for n, m in zip(shape, coarse.shape)])
    up[ix] = Fc
    sel = near & wedge
    np.testing.assert_allclose(M[sel], up[sel], rtol=1e-3, atol=1e-2)


def test_merge_rejects_a_prediction_of_the_wrong_shape():
    with pytest.raises(ValueError, match="binned"):
        merge_coarse(np.zeros((32, 32, 32), np.float32), np.zeros((10, 16, 16), np.float32), WEDGE)


class Identity(nn.Module):
    padding_multiple = 4

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.w


def _model(generator, subtomo=16):
    return TrainedModel(generator=generator, network={}, geometry=WEDGE, normalization={"mean": 1.0, "std": 2.0},
                        subtomo_size=subtomo, training={})


def test_merge_restores_a_slab_profile_the_data_lose():
    """A slab (density along z only) lies wholly on the kz axis, inside the wedge: the data
    lose it, and a coarse prediction that holds it puts it back."""
    shape = (48, 48, 48)
    z = np.arange(shape[0])[:, None, None]
    slab = np.broadcast_to(np.exp(-(((z - 24) / 16.0) ** 2)), shape).astype(np.float32)  # within 2 waves
    observed = apply_wedge(slab, WEDGE)
    assert np.abs(observed - observed.mean()).max() < 1e-3  # invisible in the data
    restored = merge_coarse(observed.copy(), coarse_volume(slab, 4), WEDGE)
    assert np.abs(restored - slab).mean() < 0.25 * np.abs(observed - slab).mean()


def test_run_inference_coarse_pass_is_the_merge_of_the_binned_prediction():
    rng = np.random.default_rng(2)
    vol = (rng.standard_normal((64, 64, 64)) * 2 + 1).astype(np.float32)
    model = _model(SmallConv(), subtomo=32)
    plain = predict(model, vol, tile=32, overlap=8, device="cpu")
    coarse = predict(model, vol, tile=32, overlap=8, device="cpu", coarse=True)
    assert plain.coarse_factor == 1 and coarse.coarse_factor == 2 == coarse.settings()["coarse_factor"]
    binned = coarse_volume(vol, 2)
    mean = 1.0  # the model's; the spread is the binned volume's own
    pred = predict(model, binned, device="cpu", normalization=(mean, float(binned.std()))).mean
    np.testing.assert_allclose(coarse.mean, merge_coarse(plain.mean.copy(), pred, WEDGE), atol=1e-4)


def test_run_inference_coarse_pass_leaves_measured_region_and_std():
    rng = np.random.default_rng(3)
    vol = (rng.standard_normal((32, 32, 32)) * 2 + 1).astype(np.float32)
    model = _model(Identity())
    plain = predict(model, vol, tile=16, overlap=4, device="cpu", samples=2, noise_scale=0.1, seed=0)
    coarse = predict(model, vol, tile=16, overlap=4, device="cpu", samples=2, noise_scale=0.1, seed=0, coarse=True)
    assert coarse.coarse_factor == 2  # 32^3 -> 16^3, the 16-voxel subtomogram
    np.testing.assert_allclose(coarse.std, plain.std)
    np.testing.assert_allclose(apply_wedge(coarse.mean, WEDGE), apply_wedge(plain.mean, WEDGE), atol=1e-4)
    assert np.abs(coarse.mean - plain.mean).max() > 1e-4
