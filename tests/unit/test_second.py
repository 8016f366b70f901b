"""The second pass (core/inference/second.py): its input, the merge of the two results, and the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import fft

from napari_dewedge.core.inference import predict, run_inference
from napari_dewedge.core.inference.calibration import frequency_radius, shell_index
from napari_dewedge.core.inference.fusion import fuse_measured
from napari_dewedge.core.inference.passes import second_noise
from napari_dewedge.core.inference.second import (
    SECOND_PASS_FROM,
    SECOND_PASS_RAMP,
    SECOND_PASS_WEIGHT,
    merge_second,
    second_input,
)
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge, wedge_mask

from .test_calibration import _smooth
from .test_reliability import _model

torch.set_num_threads(1)
WEDGE = WedgeGeometry(-60, 60, "y")
SHAPE = (32, 32, 32)


def _noisy(seed=7):
    rng = np.random.default_rng(seed)
    return (1.0 + _smooth(SHAPE, 8) * 4 + rng.normal(0, 0.5, SHAPE)).astype(np.float32)


def test_second_input_is_the_measured_region():
    volume = _smooth(SHAPE, 3)
    cut = second_input(volume, WEDGE)
    assert cut.dtype == np.float32
    np.testing.assert_allclose(cut, apply_wedge(volume, WEDGE), atol=1e-6)
    np.testing.assert_allclose(apply_wedge(cut, WEDGE), cut, atol=1e-5)  # nothing left in the wedge


def test_merge_keeps_the_first_filling_below_the_crossover_and_the_second_elsewhere():
    first, second = _smooth(SHAPE, 4, sigma=0.7), 0.3 * _smooth(SHAPE, 5, sigma=0.7)  # the second fainter
    f1, f2 = fft.rfftn(first), fft.rfftn(second)
    merged = fft.rfftn(merge_second(first.copy(), second, WEDGE, weight=1.0))  # the second's filling alone
    wedge = np.broadcast_to(wedge_mask(SHAPE, WEDGE), f1.shape) < 0.01  # deep in the wedge
    measured = np.broadcast_to(wedge_mask(SHAPE, WEDGE), f1.shape) > 0.99
    radius = np.broadcast_to(frequency_radius(SHAPE), f1.shape)
    low, high = radius < SECOND_PASS_FROM - SECOND_PASS_RAMP, radius > SECOND_PASS_FROM + SECOND_PASS_RAMP
    scale = np.abs(f1).max()
    assert np.abs(merged - f1)[wedge & low].max() < 1e-4 * scale  # the first pass's lowest filling
    assert np.abs(merged - f2)[measured].max() < 1e-4 * scale  # the second pass's measured region
    # above the crossover, the second pass's filling at the first's power, shell by shell
    shells = np.broadcast_to(shell_index(SHAPE), f1.shape)
    empty = np.broadcast_to(wedge_mask(SHAPE, WEDGE), f1.shape) == 0
    for shell in np.unique(shells[wedge & high & (shells < 16)]):
        inside = wedge & high & (shells == shell) & empty
        gain = merged[inside] / f2[inside]
        assert np.allclose(gain, gain.real.mean(), rtol=1e-3, atol=1e-3 * abs(gain.real.mean()))  # one factor
        assert 1.5 < gain.real.mean() < 8  # the fainter second lifted toward the first's power


def test_merge_weighs_the_two_fillings_above_the_crossover_at_the_first_ones_power():
    first, second = _smooth(SHAPE, 4, sigma=0.7), 0.3 * _smooth(SHAPE, 5, sigma=0.7)
    f1 = fft.rfftn(first)
    whole = fft.rfftn(merge_second(first.copy(), second, WEDGE, weight=1.0))  # the second's alone, at the first's power
    mask = np.broadcast_to(wedge_mask(SHAPE, WEDGE), f1.shape)
    measured, wedge, missing = mask > 0.99, mask == 0, 1.0 - mask  # wedge: inside, no taper
    radius = np.broadcast_to(frequency_radius(SHAPE), f1.shape)
    shells = np.broadcast_to(shell_index(SHAPE), f1.shape)
    scale = np.abs(f1).max()
    assert 0.0 < SECOND_PASS_WEIGHT < 1.0  # the default weighs both
    for weight in (0.5, SECOND_PASS_WEIGHT, 0.75):
        merged = fft.rfftn(merge_second(first.copy(), second, WEDGE, weight=weight))
        assert np.abs(merged - whole)[measured].max() < 1e-4 * scale  # the measured region stays the second's
        mean = weight * whole + (1.0 - weight) * f1
        # shells wholly above the crossover: the weighted mean of the fillings, lifted to the first's power
        for shell in range(4, 12):  # shells of 1/16 cycle per voxel
            inside = wedge & (shells == shell)
            assert inside.any() and radius[shells == shell].min() > SECOND_PASS_FROM + SECOND_PASS_RAMP
            factor = merged[inside] / mean[inside]
            assert np.allclose(factor, factor.real.mean(), rtol=1e-3, atol=1e-3 * abs(factor.real.mean()))
            assert factor.real.mean() > 1.0  # the two disagree: their mean holds less power
            part = shells == shell
            np.testing.assert_allclose(np.sum(missing[part] * np.abs(merged[part]) ** 2),
                                       np.sum(missing[part] * np.abs(f1[part]) ** 2), rtol=1e-3)
    kept = fft.rfftn(merge_second(first.copy(), second, WEDGE, weight=0.0))
    assert np.abs(kept - f1)[mask < 0.01].max() < 1e-4 * scale  # no weight: the first's filling everywhere


def test_merge_refuses_another_shape_and_a_weight_outside_0_1():
    with pytest.raises(ValueError, match="shape"):
        merge_second(np.zeros(SHAPE, np.float32), np.zeros((32, 32, 30), np.float32), WEDGE)
    for weight in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="weight"):
            merge_second(np.zeros(SHAPE, np.float32), np.zeros(SHAPE, np.float32), WEDGE, weight=weight)


def test_run_inference_runs_the_second_pass_with_the_fusion_and_reports_it():
    model, volume = _model(), _noisy()
    once = predict(model, volume, device="cpu", fuse=True, second=False, views=1)
    twice = predict(model, volume, device="cpu", fuse=True, views=1)
    assert twice.second and not once.second
    assert twice.settings()["second_pass"] is True and "second pass" in twice.summary(8)
    assert np.abs(twice.mean - once.mean).max() > 1e-4
    # the application again on the first result's measured region, fused with the volume's data
    later = predict(model, second_input(once.mean, WEDGE), device="cpu", views=1).mean
    fuse_measured(later, volume, WEDGE, second_noise(model, volume, WEDGE))
    np.testing.assert_allclose(twice.mean, merge_second(once.mean.copy(), later, WEDGE), atol=1e-4)
    # only with the fusion
    assert not predict(model, volume, device="cpu", fuse=False, views=1).second


def test_the_progress_counts_both_applications_and_a_stop_in_the_second_ends_the_run():
    model, volume = _model(), _noisy()
    events = list(run_inference(model, volume, device="cpu", fuse=True, views=1, tile=16, overlap=4))
    done = [e.done_tiles for e in events]
    assert done == sorted(done) and events[-1].result.second
    assert {e.total_tiles for e in events} == {done[-1]}
    batches = len(events) - 1  # an event a tile batch, as many in each application
    assert batches % 2 == 0 and done[batches // 2 - 1] == done[-1] // 2
    calls = {"n": 0}

    def stop():  # asked before every batch: true in the second application's second batch
        calls["n"] += 1
        return calls["n"] > batches // 2 + 1

    stopped = list(run_inference(model, volume, device="cpu", fuse=True, views=1, tile=16, overlap=4, stop=stop))
    assert stopped[-1].done and stopped[-1].stopped and stopped[-1].result is None
    assert stopped[-1].done_tiles > done[-1] // 2


def test_noise_free_volumes_skip_the_second_pass():
    clean = apply_wedge(_smooth(SHAPE, 11, sigma=3.0), WEDGE)
    assert not predict(_model(), clean, device="cpu", fuse=True, views=1).second
