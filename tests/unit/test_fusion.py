"""The measured-region fusion (core/inference/fusion.py) and its place in run_inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dewedge.core.inference import predict
from napari_dewedge.core.inference.fusion import fuse_measured, fusion_weights, volume_noise_power
from napari_dewedge.core.model import TrainedModel
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge

from .test_inference import SmallConv

torch.set_num_threads(1)
WEDGE = WedgeGeometry(-60, 60, "y")


def _smooth(shape, seed, sigma=2.0):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma).astype(np.float32)


def _mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - b) ** 2))


def test_noise_free_data_restore_the_measured_region_and_keep_the_wedge():
    shape = (24, 28, 32)
    truth = _smooth(shape, 0)
    observed = apply_wedge(truth, WEDGE).astype(np.float32)
    # a prediction with an error in both regions
    prediction = (truth + 0.3 * _smooth(shape, 1, sigma=1.0)).astype(np.float32)
    fused = fuse_measured(prediction.copy(), observed, WEDGE, noise_power=0.0)
    np.testing.assert_allclose(apply_wedge(fused, WEDGE), observed, atol=1e-4)  # the data where measured
    np.testing.assert_allclose(fused - apply_wedge(fused, WEDGE), prediction - apply_wedge(prediction, WEDGE),
                               atol=1e-4)  # the wedge as predicted
    assert _mse(fused, truth) < _mse(prediction, truth)


def test_fine_detail_alone_in_its_box_reads_as_noise_free():
    """A noise-free object with fine detail: the cubes' windows spread its detail into the wedge, which
    read as white noise (the volume's variance only 6 times it: noisy); the whole volume's wedge holds
    nothing, so its measured region is the data's (GroEL's map at 2 A was read as noisy this way)."""
    from scipy.ndimage import gaussian_filter

    from napari_dewedge.core.inference.fusion import volume_noise
    from napari_dewedge.core.training.noise import estimate_noise, noise_free
    from napari_dewedge.core.training.sampling import epoch_pool, extract_subtomograms

    speckle = (np.random.default_rng(0).random((20, 20, 20)) < 0.2).astype(np.float32)
    truth = np.zeros((64, 64, 64), np.float32)
    truth[22:42, 22:42, 22:42] = gaussian_filter(speckle, 0.7)
    observed = apply_wedge(truth, WEDGE).astype(np.float32)
    pos, _ = epoch_pool(observed.shape, 24, 48, [0, 7919], order=False)
    cubes_alone = estimate_noise(extract_subtomograms(observed, pos, 24), WEDGE)
    central = float(observed[16:48, 16:48, 16:48].var())
    assert not noise_free(cubes_alone.white_std, central)  # what the cubes alone said
    estimate, _ = volume_noise(observed, WEDGE, cube=24)
    assert estimate.white_std < 1e-3 * cubes_alone.white_std
    assert volume_noise_power(observed, WEDGE, cube=24) == 0.0


def test_noisy_data_leave_a_good_prediction_alone():
    shape = (32, 32, 32)
    truth = _smooth(shape, 2)
    sigma = 2.0 * float(truth.std())
    observed = (apply_wedge(truth, WEDGE) + sigma * np.random.default_rng(3).normal(size=shape)).astype(np.float32)
    good = apply_wedge(truth, WEDGE).astype(np.float32)  # a perfect denoiser's measured region
    fused = fuse_measured(good.copy(), observed, WEDGE, noise_power=sigma**2)
    # the noise came back only in a small share: far from the observation's error
    assert _mse(fused, good) < 0.1 * _mse(observed, good)


def test_fusion_weights_follow_the_residual_beyond_the_noise():
    shells = np.repeat(np.arange(4), 100)
    residual = np.repeat([1.0, 3.0, 1.0e6, 0.5], 100)
    weights = fusion_weights(residual, shells, np.ones_like(residual), noise_power=1.0)
    np.testing.assert_allclose(weights, [0.0, 2 / 3, 1 - 1e-6, 0.0], atol=1e-6)
    # a shell with too few measured coefficients shares the next shell's estimate
    few = np.concatenate([[0] * 3, np.repeat([1, 2], 100)])
    w = fusion_weights(np.concatenate([[100.0] * 3, [3.0] * 100, [1.0] * 100]), few, np.ones(203), noise_power=1.0)
    assert w[0] == w[1] and w[0] > 2 / 3
    # no noise: the data win wherever measured
    assert (fusion_weights(residual, shells, np.ones_like(residual), noise_power=0.0) == 1).all()


def test_volume_noise_power_reads_white_noise():
    rng = np.random.default_rng(4)
    volume = (0.7 * rng.normal(size=(48, 48, 48))).astype(np.float32)
    assert volume_noise_power(volume, WEDGE) == pytest.approx(0.49, rel=0.15)


def test_volume_noise_power_is_zero_without_noise():
    # a noise-free tomogram: the estimator's floor is not noise, and the fusion keeps the data
    truth = _smooth((48, 48, 48), 5, sigma=3.0)
    observed = apply_wedge(truth, WEDGE).astype(np.float32)
    assert volume_noise_power(observed, WEDGE) == 0.0
    noisy = (observed + 0.5 * float(observed.std()) * np.random.default_rng(6).normal(size=observed.shape))
    assert volume_noise_power(noisy.astype(np.float32), WEDGE) > 0.0


def test_fuse_rejects_bad_arguments():
    a = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="shape"):
        fuse_measured(a, np.zeros((8, 8, 9)), WEDGE, 1.0)
    with pytest.raises(ValueError, match="noise_power"):
        fuse_measured(a, a, WEDGE, -1.0)


def test_run_inference_fusion_changes_only_the_measured_region():
    model = TrainedModel(generator=SmallConv(), network={}, geometry=WEDGE, normalization={"mean": 1.0, "std": 2.0},
                         subtomo_size=16, training={})
    volume = (1.0 + _smooth((32, 32, 32), 5, sigma=1.5) * 4).astype(np.float32)
    plain = predict(model, volume, device="cpu")
    fused = predict(model, volume, device="cpu", fuse=True, second=False)  # the second pass: test_second.py
    assert fused.fused and not plain.fused and fused.settings()["fused"] is True
    change = fused.mean - plain.mean
    assert np.abs(change).max() > 1e-3
    np.testing.assert_allclose(apply_wedge(change, WEDGE), change, atol=1e-4)  # nothing inside the wedge
    # the measured region moved toward the volume's own data
    measured_error = _mse(apply_wedge(fused.mean, WEDGE), apply_wedge(volume, WEDGE))
    assert measured_error < _mse(apply_wedge(plain.mean, WEDGE), apply_wedge(volume, WEDGE))
