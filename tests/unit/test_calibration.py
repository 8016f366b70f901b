"""The wedge-gain calibration (core/inference/calibration.py) and its place in run_inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dewedge.core.inference import predict
from napari_dewedge.core.inference.calibration import (
    GAIN_CAP,
    calibrate_wedge,
    calibration_crop,
    scale_wedge,
    shell_gains,
    shell_index,
    wedge_gains,
)
from napari_dewedge.core.model import TrainedModel
from napari_dewedge.core.rotations import WEDGE_MOVING_ROTATIONS, rotate
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge, wedge_depth

from .test_inference import SmallConv

torch.set_num_threads(1)
WEDGE = WedgeGeometry(-60, 60, "y")


def _smooth(shape, seed, sigma=1.5):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(np.random.default_rng(seed).normal(size=shape), sigma).astype(np.float32)


def _wedge_part(v):
    return v - apply_wedge(v, WEDGE)


def _shy_oracle(truth, observed, amount):
    """A predictor that fills the wedge with ``amount`` times the truth: it knows every rotation of both."""
    turns = [(apply_wedge(rotate(observed, r), WEDGE), rotate(truth, r)) for r in WEDGE_MOVING_ROTATIONS]

    def predict_fn(inp):
        for seen, full in turns:
            if seen.shape == inp.shape and np.allclose(seen, inp, atol=1e-5):
                return inp + amount * _wedge_part(full)
        raise AssertionError("asked for a volume that is no rotation of the observation")

    return predict_fn


def test_gains_undo_a_filling_at_half_amplitude():
    truth = _smooth((24, 24, 24), 0)
    observed = apply_wedge(truth, WEDGE).astype(np.float32)
    gains = wedge_gains(observed, WEDGE, _shy_oracle(truth, observed, 0.5))
    measured = gains != 1.0
    assert measured.sum() >= len(gains) // 2  # most shells saw data in the wedge
    np.testing.assert_allclose(gains[measured], 2.0, rtol=1e-3)
    prediction = (observed + 0.5 * _wedge_part(truth)).astype(np.float32)
    before = float(np.mean((prediction - truth) ** 2))
    scale_wedge(prediction, WEDGE, gains)
    assert float(np.mean((prediction - truth) ** 2)) < 0.1 * before


def test_calibrate_wedge_measures_on_the_volume_filled_with_the_prediction():
    truth = _smooth((24, 24, 24), 5)
    observed = apply_wedge(truth, WEDGE).astype(np.float32)
    prediction = (observed + 0.5 * _wedge_part(truth)).astype(np.float32)
    # the generator is asked about rotations of the observation filled with the prediction, not of the bare one
    oracle = _shy_oracle(truth, prediction, 0.5)
    before = float(np.mean((prediction - truth) ** 2))
    gains = calibrate_wedge(prediction, observed, WEDGE, oracle)
    np.testing.assert_allclose(gains[gains != 1.0], 2.0, rtol=1e-3)
    assert float(np.mean((prediction - truth) ** 2)) < 0.1 * before


def test_gains_are_capped_and_never_negative():
    truth = _smooth((20, 20, 20), 1)
    observed = apply_wedge(truth, WEDGE).astype(np.float32)
    shy = wedge_gains(observed, WEDGE, _shy_oracle(truth, observed, 0.01))
    assert shy.max() == GAIN_CAP
    wrong = wedge_gains(observed, WEDGE, _shy_oracle(truth, observed, -1.0))
    assert wrong.min() == 0.0


def _sums(gains, noise, count=400):
    """Sums of shell_gains for a prediction of unit power per coefficient, its data ``gain * p + n``."""
    gains = np.asarray(gains, dtype=float)
    count = np.full(gains.shape, float(count))
    den = count.copy()
    num = gains * den
    power = gains**2 * den + np.asarray(noise, dtype=float) ** 2 * count
    return num, den, power, count


def test_upper_shells_within_their_errors_are_pooled():
    # a lone 0 among 0.5s in the upper half, as noisy as its neighbours: no dark ring, the pooled gain
    true = np.full(20, 0.5)
    num, den, power, count = _sums(true, noise=2.0)
    num[14] = 0.0
    power[14] += 0.25 * den[14] * 400  # a residual that puts 0.5 within its 3 standard errors
    gains = shell_gains(num, den, power, count, nyquist=16)
    assert 0.2 < gains[14] < 0.5
    # the lower half keeps its own estimate, however noisy
    num[4] = 0.0
    power[4] += 0.25 * den[4] * 400
    assert shell_gains(num, den, power, count, nyquist=16)[4] == 0.0


def test_a_sure_gain_keeps_its_own_value():
    # a shell whose estimate is far outside its small error is a real feature: not smoothed away
    true = np.full(20, 0.5)
    true[14] = 0.05
    gains = shell_gains(*_sums(true, noise=0.1), nyquist=16)
    assert gains[14] == pytest.approx(0.05)
    assert gains[10] == pytest.approx(0.5, rel=1e-3)


def test_corner_shells_and_empty_shells_take_the_pooled_gain():
    true = np.full(20, 0.5)
    true[18] = 0.0  # past Nyquist: pooled even when sure
    num, den, power, count = _sums(true, noise=0.1)
    gains = shell_gains(num, den, power, count, nyquist=16)
    assert 0.1 < gains[18] < 0.5
    num[19] = den[19] = power[19] = count[19] = 0.0  # nothing to compare: the neighbours' gain, not 1
    assert shell_gains(num, den, power, count, nyquist=16)[19] < 0.5
    assert np.all(shell_gains(*(np.zeros(5) for _ in range(4)), nyquist=2) == 1.0)  # no data at all: 1


def test_scale_wedge_leaves_the_measured_region():
    volume = _smooth((16, 20, 24), 2)
    nbins = int(shell_index(volume.shape).max()) + 1
    same = scale_wedge(volume.copy(), WEDGE, np.ones(nbins), depth_bins=1)
    np.testing.assert_allclose(same, volume, atol=1e-5)
    scaled = scale_wedge(volume.copy(), WEDGE, np.full(nbins, 3.0), depth_bins=1)
    np.testing.assert_allclose(apply_wedge(scaled, WEDGE), apply_wedge(volume, WEDGE), atol=1e-4)
    np.testing.assert_allclose(_wedge_part(scaled), 3 * _wedge_part(volume), atol=1e-4)
    # gains measured on a crop (bins of 2 / 8) apply by frequency; shells beyond them keep their amplitude
    few = scale_wedge(volume.copy(), WEDGE, np.full(2, 3.0), edge=8, depth_bins=1)
    assert not np.allclose(few, volume, atol=1e-4) and not np.allclose(few, scaled, atol=1e-4)
    # per depth: the wedge's middle emptied, its edges kept
    deep = scale_wedge(volume.copy(), WEDGE, np.tile([1.0, 1.0, 0.0], nbins), depth_bins=3)
    spectrum, depth = np.fft.rfftn(deep), np.broadcast_to(wedge_depth(volume.shape, WEDGE), (16, 20, 13))
    assert np.abs(spectrum[depth > 2 / 3]).max() < 1e-3
    np.testing.assert_allclose(spectrum[depth < 2 / 3], np.fft.rfftn(volume)[depth < 2 / 3], atol=1e-3)


def _faded(full, amounts):
    """The wedge part of ``full`` at ``amounts`` of its amplitude in each third of the wedge's depth."""
    level = np.minimum((wedge_depth(full.shape, WEDGE) * 3).astype(int), 2)
    part = np.fft.rfftn(_wedge_part(full)) * np.asarray(amounts)[level]
    return np.fft.irfftn(part, s=full.shape, axes=(0, 1, 2))


def _depth_oracle(truth, observed, amounts):
    """A predictor that fills each third of the wedge's depth (edges to middle) with ``amounts`` times the truth."""
    turns = [(apply_wedge(rotate(observed, r), WEDGE), rotate(truth, r)) for r in WEDGE_MOVING_ROTATIONS]

    def predict_fn(inp):
        for seen, full in turns:
            if seen.shape == inp.shape and np.allclose(seen, inp, atol=1e-5):
                return (inp + _faded(full, amounts)).astype(np.float32)
        raise AssertionError("asked for a volume that is no rotation of the observation")

    return predict_fn


def test_gains_per_depth_follow_a_filling_that_fades_toward_the_wedges_middle():
    truth = _smooth((24, 24, 24), 5)
    observed = apply_wedge(truth, WEDGE).astype(np.float32)
    gains = wedge_gains(observed, WEDGE, _depth_oracle(truth, observed, [1.0, 0.5, 0.25]), depth_bins=3)
    gains = gains.reshape(-1, 3)
    for depth, expected in enumerate([1.0, 2.0, 4.0]):
        measured = gains[:, depth] != 1.0 if expected != 1.0 else np.ones(len(gains), bool)
        assert measured.sum() >= len(gains) // 2
        np.testing.assert_allclose(gains[measured, depth], expected, rtol=1e-3)
    # one gain per shell cannot undo it: the depth-resolved ones restore the truth better
    prediction = (observed + _faded(truth, [1.0, 0.5, 0.25])).astype(np.float32)
    flat = wedge_gains(observed, WEDGE, _depth_oracle(truth, observed, [1.0, 0.5, 0.25]), depth_bins=1)
    by_shell = scale_wedge(prediction.copy(), WEDGE, flat, depth_bins=1)
    by_depth = scale_wedge(prediction.copy(), WEDGE, gains.ravel(), depth_bins=3)
    assert np.mean((by_depth - truth) ** 2) < 0.2 * np.mean((by_shell - truth) ** 2)


def test_calibration_crop_is_central_and_bounded():
    assert calibration_crop((10, 20, 30)) == (slice(0, 10), slice(0, 20), slice(0, 30))
    crop = calibration_crop((100, 400, 400), max_voxels=1_000_000)
    edges = [s.stop - s.start for s in crop]
    assert np.prod(edges) <= 1.1e6 and edges[0] < 100
    assert all(s.start == (n - e) // 2 for s, n, e in zip(crop, (100, 400, 400), edges))


def test_run_inference_calibration_changes_only_the_wedge():
    model = TrainedModel(generator=SmallConv(), network={}, geometry=WEDGE, normalization={"mean": 1.0, "std": 2.0},
                         subtomo_size=16, training={})
    volume = (1.0 + 4 * _smooth((24, 24, 24), 3)).astype(np.float32)
    plain = predict(model, volume, device="cpu")
    calibrated = predict(model, volume, device="cpu", calibrate=True)
    assert calibrated.wedge_gains and not plain.wedge_gains
    assert calibrated.settings()["wedge_gains"] == list(calibrated.wedge_gains)
    change = calibrated.mean - plain.mean
    assert np.abs(change).max() > 1e-4
    np.testing.assert_allclose(apply_wedge(change, WEDGE), 0.0, atol=1e-4)  # the measured region as it was


@pytest.mark.parametrize("shape", [(12, 16, 20)])
def test_gains_on_a_box_use_every_rotation_shape(shape):
    """Rotations of a box change its shape; the shells (bins of 2 / min edge) stay comparable."""
    truth = _smooth(shape, 4)
    observed = apply_wedge(truth, WEDGE).astype(np.float32)
    gains = wedge_gains(observed, WEDGE, _shy_oracle(truth, observed, 0.5))
    np.testing.assert_allclose(gains[gains != 1.0], 2.0, rtol=1e-3)
