"""Sample data contributed to napari."""

from __future__ import annotations

import numpy as np

from napari_dewedge import sample_data
from napari_dewedge.core.spectra import estimate_tilt_range
from napari_dewedge.core.wedge import WedgeGeometry


def test_sphere_sample_has_observation_and_hidden_truth():
    layers = sample_data.hollow_sphere_sample()
    (observed, obs_meta, kind), (truth, truth_meta, kind2) = layers
    assert kind == kind2 == "image"
    assert observed.shape == truth.shape == (140, 140, 140)
    assert obs_meta["metadata"]["dewedge_role"] == "corrupted"
    assert truth_meta["metadata"]["dewedge_role"] == "ground_truth" and truth_meta["visible"] is False
    assert WedgeGeometry.from_dict(obs_meta["metadata"]["wedge"]) == WedgeGeometry(-60, 60, "y")
    # The observation really is the truth seen through a wedge, with noise.
    assert not np.allclose(observed, truth)
    tmin, tmax = estimate_tilt_range(observed)
    assert abs(tmin + 60) < 5 and abs(tmax - 60) < 5


def test_prism_sample_is_reproducible():
    a = sample_data.prism_sample()[0][0]
    b = sample_data.prism_sample()[0][0]
    np.testing.assert_array_equal(a, b)
    assert a.shape == (96, 96, 96)


def test_microtubule_sample_has_voxel_size():
    assert sample_data.SAMPLE_TOMOGRAM.is_file()
    (data, meta, kind), = sample_data.microtubule_sample()
    assert kind == "image"
    assert data.shape == (36, 206, 94)
    np.testing.assert_allclose(meta["scale"], (10.52, 10.52, 10.52), rtol=1e-4)
