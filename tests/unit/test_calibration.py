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
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge

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


def test_corner_shells_are_pooled_with_their_neighbours():
    # within Nyquist each shell keeps its own estimate; past it (the cube's corners) one estimate
    # that falls to 0 between positive ones no longer leaves a dark ring
    den = np.full(20, 4.0)
    num = np.full(20, 2.0)
    num[[5, 14]] = -1.0  # a shell of no correlation inside Nyquist (10) and one in the corners
    gains = shell_gains(num, den, nyquist=10)
    assert gains[5] == 0.0 and gains[4] == gains[6] == 0.5
    assert 0.15 < gains[14] < 0.5
    assert np.all(gains[11:] > 0.15)
    num[18:] = den[18:] = 0.0  # nothing to compare in the last corners: the neighbours' estimate, not 1
    assert np.all(shell_gains(num, den, nyquist=10)[18:] < 1.0)
    assert shell_gains(num, den, nyquist=30)[18] == 1.0  # within Nyquist: left at 1


def test_scale_wedge_leaves_the_measured_region():
    volume = _smooth((16, 20, 24), 2)
    nbins = int(shell_index(volume.shape).max()) + 1
    same = scale_wedge(volume.copy(), WEDGE, np.ones(nbins))
    np.testing.assert_allclose(same, volume, atol=1e-5)
    scaled = scale_wedge(volume.copy(), WEDGE, np.full(nbins, 3.0))
    np.testing.assert_allclose(apply_wedge(scaled, WEDGE), apply_wedge(volume, WEDGE), atol=1e-4)
    np.testing.assert_allclose(_wedge_part(scaled), 3 * _wedge_part(volume), atol=1e-4)
    # gains measured on a crop (bins of 2 / 8) apply by frequency; shells beyond them keep their amplitude
    few = scale_wedge(volume.copy(), WEDGE, np.full(2, 3.0), edge=8)
    assert not np.allclose(few, volume, atol=1e-4) and not np.allclose(few, scaled, atol=1e-4)


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
