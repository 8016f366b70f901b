"""The wedge reliability weights (core/inference/reliability.py), the depth into the wedge, and the pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import fft

from napari_dewedge.core.inference import predict
from napari_dewedge.core.inference.reliability import (
    noisy_enough,
    recorrupted_halves,
    reliability_bins,
    reliability_weights,
    weigh_wedge,
)
from napari_dewedge.core.model import TrainedModel
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge, wedge_depth, wedge_mask

from .test_calibration import _smooth
from .test_inference import SmallConv

torch.set_num_threads(1)
WEDGE = WedgeGeometry(-60, 60, "y")


def _wedge_part(volume):
    return np.asarray(volume, np.float64) - apply_wedge(np.asarray(volume, np.float64), WEDGE)


@pytest.mark.parametrize("geometry", [WEDGE, WedgeGeometry(-48, 64, "y"), WedgeGeometry(-50, 40, "x")])
def test_wedge_depth_runs_from_the_edges_to_the_middle(geometry):
    shape = (32, 24, 40)
    depth = np.broadcast_to(wedge_depth(shape, geometry), (32, 24, 21))
    measured = np.broadcast_to(wedge_mask(shape, geometry), depth.shape) > 0.5
    assert np.all(depth[measured] == 0)
    inside = depth[~measured]
    assert inside.min() >= 0 and inside.max() <= 1
    assert inside.max() > 0.9 and inside.min() < 0.2  # the middle and the edges are both reached
    # the line in the wedge's middle (half-way between its edges) is the deepest
    middle = np.radians((geometry.tilt_max + geometry.tilt_min + 180.0) / 2.0)
    fz, fa = np.sin(middle) * 0.25, np.cos(middle) * 0.25
    iz = int(round(fz * 32)) % 32
    if geometry.tilt_axis == "y":
        value = depth[iz, 0, int(round(abs(fa) * 40))] if fa >= 0 else depth[(-iz) % 32, 0, int(round(-fa * 40))]
    else:
        value = depth[iz, int(round(fa * 24)) % 24, 0]
    assert value > 0.8


def test_recorrupted_halves_average_to_the_volume_with_uncorrelated_noises():
    clean = _smooth((32, 32, 32), 0)
    volume = clean + np.random.default_rng(2).normal(0, 0.3, clean.shape).astype(np.float32)
    first, second = recorrupted_halves(volume, 0.3, seed=1)
    np.testing.assert_allclose((first + second) / 2, volume, atol=1e-5)
    # each half holds noise of twice the volume's power, and the two halves' noises do not correlate
    error_a, error_b = (first - clean).ravel(), (second - clean).ravel()
    assert np.std(error_a) == pytest.approx(0.3 * np.sqrt(2), rel=0.03)
    assert abs(np.corrcoef(error_a, error_b)[0, 1]) < 0.02
    still = recorrupted_halves(volume, 0.0)
    np.testing.assert_array_equal(still[0], volume)
    np.testing.assert_array_equal(still[1], volume)


def test_weights_follow_the_agreement_of_the_halves():
    shape = (32, 32, 32)
    signal = _smooth(shape, 2, sigma=1.0)
    np.testing.assert_allclose(reliability_weights(signal, signal, WEDGE), 1.0)
    unrelated = reliability_weights(signal, _smooth(shape, 3, sigma=1.0), WEDGE)
    assert np.median(unrelated) < 0.45
    # a filling half signal, half each half's own noise: c = 1/2 in every bin, so sqrt(2c / (1 + c)) = 0.82
    a = signal + _smooth(shape, 4, sigma=1.0)
    b = signal + _smooth(shape, 5, sigma=1.0)
    halfway = reliability_weights(a, b, WEDGE)
    bins = reliability_bins(shape, WEDGE)
    counts = np.bincount(bins[bins >= 0], minlength=halfway.shape[0])
    assert np.median(halfway[counts > 200]) == pytest.approx(np.sqrt(2 / 3), abs=0.06)
    with pytest.raises(ValueError, match="shape"):
        reliability_weights(signal, signal[:-1], WEDGE)


def test_weigh_wedge_scales_the_wedge_alone():
    volume = _smooth((24, 24, 24), 6)
    bins = reliability_bins(volume.shape, WEDGE)
    nbins = int(bins.max()) + 1
    kept = weigh_wedge(volume.copy(), WEDGE, np.ones(nbins))
    np.testing.assert_allclose(kept, volume, atol=1e-5)
    emptied = weigh_wedge(volume.copy(), WEDGE, np.zeros(nbins))
    np.testing.assert_allclose(emptied, apply_wedge(volume, WEDGE), atol=1e-5)
    # bins of the deepest third only: the edges of the wedge keep their amplitude
    deep = np.array([0.0 if b % 3 == 2 else 1.0 for b in range(nbins)])
    spectrum = fft.rfftn(weigh_wedge(volume.copy(), WEDGE, deep))
    original = fft.rfftn(volume)
    np.testing.assert_allclose(spectrum[(bins >= 0) & (bins % 3 == 2)], 0, atol=1e-3)
    np.testing.assert_allclose(spectrum[(bins >= 0) & (bins % 3 < 2)], original[(bins >= 0) & (bins % 3 < 2)],
                               rtol=1e-4, atol=1e-3)


def _model():
    return TrainedModel(generator=SmallConv(), network={}, geometry=WEDGE, normalization={"mean": 1.0, "std": 2.0},
                        subtomo_size=16, training={})


def test_run_inference_weighs_only_the_wedge_and_says_so():
    model = _model()
    rng = np.random.default_rng(7)
    volume = (1.0 + _smooth((32, 32, 32), 8) * 4 + rng.normal(0, 0.5, (32, 32, 32))).astype(np.float32)
    plain = predict(model, volume, device="cpu", calibrate=True, reliability=False, views=1)
    weighed = predict(model, volume, device="cpu", calibrate=True, views=1)
    assert weighed.reliability and not plain.reliability
    assert weighed.settings()["reliability"] is True and "agreement" in weighed.summary(8)
    change = weighed.mean.astype(np.float64) - plain.mean
    assert np.abs(change).max() > 1e-4
    np.testing.assert_allclose(apply_wedge(change, WEDGE), 0, atol=1e-4)  # the measured region is untouched
    # the filling only shrinks: the weights lie in [0, 1]
    assert np.sum(_wedge_part(weighed.mean) ** 2) <= np.sum(_wedge_part(plain.mean) ** 2) * (1 + 1e-6)
    # with the views, once after their mean
    views = predict(model, volume, device="cpu", calibrate=True, views=4)
    assert views.reliability and views.views == 4 and "agreement" in views.summary(8)
    no_pass = predict(model, volume, device="cpu")
    assert not no_pass.reliability


def test_a_lone_shell_of_chance_disagreement_is_pooled_with_its_neighbours():
    shape = (32, 32, 32)
    signal = _smooth(shape, 9, sigma=0.7)
    other = signal.copy()
    # one shell of the second filling replaced by unrelated content: alone, its weight would be about 0
    spectrum, unrelated = fft.rfftn(other), fft.rfftn(_smooth(shape, 10, sigma=0.7))
    bins = reliability_bins(shape, WEDGE)
    lone = (bins >= 0) & (bins // 3 == 8)
    spectrum[lone] = unrelated[lone]
    other = fft.irfftn(spectrum, s=shape).astype(np.float32)
    weights = reliability_weights(signal, other, WEDGE).reshape(-1, 3)
    assert np.all(weights[8] > 0.5) and np.all(weights[8] < 0.95)  # faded, but not a black ring
    assert np.all(weights[4] > 0.99)  # shells far from it keep their full weight


def test_noise_free_volumes_are_left_alone():
    volume = (1.0 + _smooth((32, 32, 32), 11) * 4).astype(np.float32)
    spread = float(np.std(volume))
    assert noisy_enough(volume, spread) and noisy_enough(volume, spread / 5)
    assert not noisy_enough(volume, spread / 10) and not noisy_enough(volume, 0.0)
    clean = apply_wedge(_smooth((32, 32, 32), 11, sigma=3.0), WEDGE)  # a noise-free tomogram: nothing to weigh
    assert not predict(_model(), clean, device="cpu", calibrate=True, views=1).reliability
    noisy = clean + np.random.default_rng(1).normal(0, clean.std(), clean.shape).astype(np.float32)
    assert predict(_model(), noisy, device="cpu", calibrate=True, views=1).reliability
