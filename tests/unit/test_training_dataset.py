"""Training on a dataset: several tomograms, halves, masks (tiny networks, a few steps)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dewedge.core import pipeline
from napari_dewedge.core.dataset import DatasetError, TomogramData
from napari_dewedge.core.phantoms import corrupt, hollow_sphere
from napari_dewedge.core.training import Trainer, TrainingConfig
from napari_dewedge.core.training.sampling import pool_counts
from napari_dewedge.core.wedge import WedgeGeometry

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(**changes):
    settings = dict(subtomo_size=16, n_subtomos=12, batch_size=2, steps=6, unet={"depth": 1, "width": 4},
                    device="cpu", seed=0, preview_every=0, checkpoint_every_s=None)
    settings.update(changes)
    return TrainingConfig.preset("quick", **settings)


def _tomo(size, seed, geometry, offset=0.0, scale=1.0):
    return (corrupt(hollow_sphere(size, size * 2 // 3, 3), geometry, snr=2.0, seed=seed) * scale + offset
            ).astype(np.float32)


def test_pool_counts_follow_the_usable_volume():
    assert pool_counts([100, 300], 8) == [2, 6]
    assert pool_counts([1, 1000, 10], 3) == [1, 1, 1]  # every tomogram contributes
    assert sum(pool_counts([7, 3, 5], 128)) == 128


def test_three_tomograms_are_all_drawn_from_with_their_own_wedges(monkeypatch):
    geometries = [WedgeGeometry(-60, 60), WedgeGeometry(-45, 55), WedgeGeometry(-50, 60, "x")]
    data = [TomogramData(_tomo(24 + 4 * i, i, g, offset=10.0 * i, scale=1.0 + i), g, f"t{i}.mrc", (5.0,) * 3)
            for i, g in enumerate(geometries)]
    trainer = Trainer(data, None, _config(steps=24, batch_size=1))
    seen = []
    import napari_dewedge.core.training.trainer as trainer_module

    real = trainer_module.dataset_batch

    def spy(tr, k):
        batch = real(tr, k)
        seen.append(geometries.index(tr._step_geometry))
        return batch

    monkeypatch.setattr(trainer_module, "dataset_batch", spy)
    events = list(trainer.run())
    assert events[-1].done and not events[-1].stopped
    assert set(seen) == {0, 1, 2}  # every tomogram gave batches
    model = trainer.model
    sources = model.training["sources"]
    assert [s["name"] for s in sources] == ["t0.mrc", "t1.mrc", "t2.mrc"]
    assert [WedgeGeometry.from_dict(s["wedge"]) for s in sources] == geometries
    # each normalised with its own statistics (offsets 0, 10, 20 and scales 1, 2, 3)
    means = [s["normalization"]["mean"] for s in sources]
    assert means[1] - means[0] == pytest.approx(10, abs=0.5) and means[2] - means[0] == pytest.approx(20, abs=0.5)
    assert all("noise_estimate" in s for s in sources)
    assert model.training["per_volume_normalization"] is True
    assert model.source.startswith("3 tomograms")


def test_halves_give_noise2noise_targets_and_the_model_applies_to_the_full_tomogram():
    g = WedgeGeometry(-60, 60)
    clean = hollow_sphere(24, 16, 3)
    even = corrupt(clean, g, snr=1.0, seed=1)
    odd = corrupt(clean, g, snr=1.0, seed=2)
    full = ((even + odd) / 2).astype(np.float32)
    trainer = Trainer([TomogramData(full, g, "half.mrc", even=even, odd=odd)], None, _config())
    targets = []
    original = trainer._train_step

    def step(k):
        out = original(k)
        targets.append(trainer._target is not None)
        return out

    trainer._train_step = step
    list(trainer.run())
    assert targets and all(targets)
    assert trainer.model.training["sources"][0]["halves"] is True
    outcome = pipeline.run_job(pipeline.apply(trainer.model, full, pipeline.ApplySpec(device="cpu")))
    assert outcome.result.mean.shape == full.shape and np.isfinite(outcome.result.mean).all()


def test_a_mask_restricts_where_subtomograms_are_drawn():
    g = WedgeGeometry(-60, 60)
    volume = _tomo(32, 0, g)
    mask = np.zeros(volume.shape, bool)
    mask[20:, 20:, 20:] = True
    trainer = Trainer([TomogramData(volume, g, "m.mrc", mask=mask)], None, _config(steps=3))
    list(trainer.run())
    positions = trainer._pool[0][0]
    centres = positions + trainer._extract // 2
    assert mask[tuple(centres.T)].all()
    assert trainer.model.training["sources"][0]["mask"] is True


def test_dataset_shapes_are_checked_with_the_name():
    g = WedgeGeometry()
    with pytest.raises(DatasetError, match="b.mrc: the odd volume has shape"):
        TomogramData(np.zeros((8, 8, 8)), g, "b.mrc", even=np.zeros((8, 8, 8)), odd=np.zeros((8, 8, 9)))
    with pytest.raises(ValueError, match="t1.mrc contains NaN"):
        Trainer([TomogramData(_tomo(24, 0, g), g, "t0.mrc"),
                 TomogramData(np.full((24, 24, 24), np.nan, np.float32), g, "t1.mrc")], None, _config())


def test_a_single_tomogram_trains_as_before():
    """One tomogram given as a dataset of one is the plain path: identical weights."""
    g = WedgeGeometry(-60, 60)
    volume = _tomo(24, 3, g)
    a = Trainer(volume, g, _config(steps=3))
    b = Trainer([TomogramData(volume, g, "volume")], None, _config(steps=3))
    list(a.run())
    list(b.run())
    for (ka, va), (kb, vb) in zip(a.model.generator.state_dict().items(), b.model.generator.state_dict().items()):
        assert ka == kb and np.array_equal(va.numpy(), vb.numpy())
