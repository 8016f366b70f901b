"""Solvent flattening (core/inference/solvent.py) and its place in run_inference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import fft

from napari_dewedge.core import phantoms
from napari_dewedge.core.inference import predict, run_inference
from napari_dewedge.core.inference.solvent import SOLVENT_MAX_RESIDUAL, Flattening, flatten_solvent, object_support
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge, wedge_mask

from .test_calibration import _smooth
from .test_reliability import _model

torch.set_num_threads(1)
WEDGE = WedgeGeometry(-60, 60, "y")


def _particle(n=48):
    """A hollow sphere alone in its box, and its noise-free tomogram (the wedge removed)."""
    truth = phantoms.hollow_sphere(n, outer_diameter=n * 5 // 12, shell=3).astype(np.float32)
    return truth, apply_wedge(truth, WEDGE).astype(np.float32)


def _rms(a, b):
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


def test_the_support_holds_the_object_and_the_level_is_the_solvent():
    truth, _ = _particle()
    support, level = object_support(truth + 0.5)
    assert support[truth > 0].all()  # every voxel of the shell
    assert 0.05 < support.mean() < 0.5  # and not the box
    assert level == pytest.approx(0.5)
    flat, level = object_support(np.full((8, 8, 8), 2.0, np.float32))
    assert not flat.any() and level == 2.0


def test_flattening_fills_the_wedge_of_an_isolated_object_and_keeps_the_measured_region():
    truth, observed = _particle()
    result = observed.copy()
    flat = flatten_solvent(result, WEDGE)
    assert flat.kept and 0 < flat.support < 0.5 and flat.residual < SOLVENT_MAX_RESIDUAL
    measured = np.asarray(wedge_mask(truth.shape, WEDGE)) > 0.999
    before, after = fft.rfftn(observed), fft.rfftn(result)
    np.testing.assert_allclose(np.broadcast_to(measured, after.shape) * after,
                               np.broadcast_to(measured, before.shape) * before, atol=1e-2)
    assert _rms(result, truth) < 0.5 * _rms(observed, truth)  # the missing wedge restored, not just kept


def test_crowded_and_flat_volumes_are_left_alone():
    crowded = apply_wedge(_smooth((32, 32, 32), 3, sigma=2.0), WEDGE).astype(np.float32)
    kept = crowded.copy()
    assert flatten_solvent(crowded, WEDGE) == Flattening()  # not run
    np.testing.assert_array_equal(crowded, kept)
    flat = np.ones((16, 16, 16), np.float32)
    assert not flatten_solvent(flat, WEDGE).ran and (flat == 1).all()
    with pytest.raises(ValueError, match="3D"):
        flatten_solvent(np.zeros((4, 4), np.float32), WEDGE)
    with pytest.raises(ValueError, match="at least 1"):
        flatten_solvent(kept, WEDGE, iterations=0)


def test_a_solvent_that_is_not_flat_leaves_the_volume_as_it_was():
    # faint density all round the object, below the support's threshold, as round a real particle
    truth, _ = _particle()
    halo = _smooth(truth.shape, 1, sigma=2.0)
    observed = apply_wedge(truth + 0.05 * halo / np.abs(halo).max(), WEDGE).astype(np.float32)
    result = observed.copy()
    flat = flatten_solvent(result, WEDGE)
    assert flat.ran and not flat.kept and flat.residual > SOLVENT_MAX_RESIDUAL
    np.testing.assert_array_equal(result, observed)
    assert "left as it was" in flat.summary() and flat.record() == {"solvent_support": 0.0,
                                                                    "solvent_residual": round(flat.residual, 4)}
    # the same halo at a fiftieth of the object's height is flat enough
    assert flatten_solvent(apply_wedge(truth + 0.02 * halo / np.abs(halo).max(), WEDGE).astype(np.float32),
                           WEDGE).kept


def test_run_inference_flattens_noise_free_isolated_objects_by_default():
    # a box and noise-estimate cubes (the model's subtomograms) large enough for the estimate to
    # tell the sphere's wedge-filtered edges from noise
    model = replace(_model(), subtomo_size=32)
    _, observed = _particle(96)
    flat = predict(model, observed, device="cpu", fuse=True, views=1)
    kept = predict(model, observed, device="cpu", fuse=True, solvent=False, views=1)
    assert flat.solvent.kept and not kept.solvent.ran
    assert "solvent flattened" in flat.summary(8)
    assert flat.settings()["solvent_support"] == round(flat.solvent.support, 4) > 0
    assert 0 <= flat.settings()["solvent_residual"] < SOLVENT_MAX_RESIDUAL
    assert kept.settings()["solvent_support"] == 0 and kept.settings()["solvent_residual"] is None
    assert np.abs(flat.mean - kept.mean).max() > 1e-3
    np.testing.assert_allclose(apply_wedge(flat.mean - kept.mean, WEDGE), 0, atol=1e-3)  # the wedge alone changed
    assert not predict(model, observed, device="cpu", fuse=False, views=1).solvent.ran  # needs the fusion
    noisy = observed + np.random.default_rng(0).normal(0, 0.3, observed.shape).astype(np.float32)
    assert not predict(model, noisy, device="cpu", fuse=True, views=1).solvent.ran


def test_a_stop_in_the_flattening_ends_the_run_and_leaves_the_volume():
    truth, observed = _particle()
    kept = observed.copy()
    assert flatten_solvent(observed, WEDGE, stop=lambda: True) is None
    np.testing.assert_array_equal(observed, kept)
    model = replace(_model(), subtomo_size=32)
    _, volume = _particle(96)
    calls = {"n": 0}

    def count():
        calls["n"] += 1
        return False

    run = list(run_inference(model, volume, device="cpu", fuse=True, solvent=True, views=1, stop=count))
    assert run[-1].result.solvent.kept
    total, calls["n"] = calls["n"], 0  # the flattening asks before each of its iterations, last of all

    def late():
        calls["n"] += 1
        return calls["n"] > total - 10

    last = list(run_inference(model, volume, device="cpu", fuse=True, solvent=True, views=1, stop=late))[-1]
    assert last.done and last.stopped and last.result is None
