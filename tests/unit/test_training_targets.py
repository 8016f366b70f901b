"""What the generator sees and is scored against: recorrupted targets, the input's wedge filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dewedge.core import phantoms
from napari_dewedge.core.inference import predict
from napari_dewedge.core.training import Trainer, TrainingConfig
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge

from .test_training import tiny as base_tiny

GEOMETRY = WedgeGeometry(-60, 60)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tomogram() -> np.ndarray:
    clean = phantoms.hollow_sphere(32, outer_diameter=22, shell=3)
    return 50.0 + 10.0 * phantoms.corrupt(clean, GEOMETRY, snr=1.0, seed=3)


def tiny(**overrides) -> TrainingConfig:
    return base_tiny(**{"steps": 3, "preview_every": 0, **overrides})


def _spy_pairs(trainer: Trainer) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    seen = []
    original = trainer._fidelity_pair

    def spy(y, y_obs, e_g):
        pair = original(y, y_obs, e_g)
        seen.append((y.detach().clone(), pair[0].detach().clone(), pair[1].detach().clone()))
        return pair

    trainer._fidelity_pair = spy
    return seen


def test_recorrupted_target_carries_the_opposite_noise_draw(tomogram):
    trainer = Trainer(tomogram, GEOMETRY, tiny(fidelity_target="recorrupted"))
    seen = _spy_pairs(trainer)
    list(trainer.run())
    assert len(seen) == 3
    for y, y_in, y_fid in seen:
        torch.testing.assert_close((y_in + y_fid) / 2, y)  # y + z and y - z
        z = (y_in - y_fid) / 2
        # the draw has the estimated noise level of the observation (not a fraction of it)
        assert float(z.std()) == pytest.approx(trainer.noise.total_std, rel=0.3)


def test_observation_target_is_the_observation(tomogram):
    trainer = Trainer(tomogram, GEOMETRY, tiny(fidelity_target="observation"))
    seen = _spy_pairs(trainer)
    list(trainer.run())
    for y, y_in, y_fid in seen:
        assert torch.equal(y_fid, y) and not torch.equal(y_in, y)


def test_filter_input_makes_the_model_blind_to_the_wedge_content(tomogram):
    trainer = Trainer(tomogram, GEOMETRY, tiny(filter_input=True))
    list(trainer.run())
    model = trainer.model
    assert model.training["filter_input"] is True
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((32, 32, 32)).astype(np.float32)
    inside_wedge = 10.0 * (noise - apply_wedge(noise, GEOMETRY))  # only missing-wedge content
    volume = tomogram.astype(np.float32)
    one_tile = dict(tile=32, overlap=0, device="cpu")  # one tile: its filter is the volume's
    a = predict(model, volume, **one_tile).mean
    b = predict(model, volume + inside_wedge, **one_tile).mean
    np.testing.assert_allclose(a, b, atol=1e-3 * float(np.abs(a).max()))
    # without the filter the same change does reach the output
    plain = Trainer(tomogram, GEOMETRY, tiny(filter_input=False))
    list(plain.run())
    c = predict(plain.model, volume, **one_tile).mean
    d = predict(plain.model, volume + inside_wedge, **one_tile).mean
    assert np.abs(c - d).max() > 1e-2 * float(np.abs(c).max())
