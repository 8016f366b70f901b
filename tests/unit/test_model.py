"""The trained-model file: save, safe load, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_dewedge.core.model import ModelFileError, TrainedModel
from napari_dewedge.core.networks import EnergyNet, UNet3D
from napari_dewedge.core.wedge import WedgeGeometry


def _model(residual: bool = False) -> TrainedModel:
    torch.manual_seed(3)
    generator = UNet3D(depth=2, width=4, residual=residual)
    energy = EnergyNet(width=4)
    return TrainedModel(
        generator=generator,
        network=generator.config(),
        geometry=WedgeGeometry(-50, 62, "x", 2.0),
        normalization={"mean": 12.5, "std": 3.25},
        subtomo_size=16,
        training={"steps": 10, "lr": 1e-4, "unet": {"depth": 2}, "adam_betas": (0.5, 0.999)},
        history=[{"step": 1, "generator": 1.5}, {"step": 2, "generator": 1.25}],
        voxel_size=(10.5, 10.5, 10.5),
        steps_done=2,
        source="/data/tomo.mrc",
        energy=energy,
        energy_network=energy.config(),
    )


def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = _model()
    path = model.save(tmp_path / "model.pt")
    loaded = TrainedModel.load(path)
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.generator(x), loaded.generator(x))
        assert torch.equal(model.energy(x), loaded.energy(x))
    assert loaded.geometry == model.geometry
    assert loaded.normalization == model.normalization
    assert loaded.voxel_size == (10.5, 10.5, 10.5)
    assert loaded.history == model.history
    assert loaded.training["adam_betas"] == [0.5, 0.999]
    assert loaded.network == model.network
    assert loaded.steps_done == 2 and loaded.source == "/data/tomo.mrc" and loaded.subtomo_size == 16
    assert loaded.versions["torch"] and loaded.versions["napari_dewedge"]
    assert loaded.padding_multiple == 4
    assert not loaded.generator.training


def test_file_is_loadable_with_weights_only(tmp_path: Path) -> None:
    path = _model().save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "napari-dewedge-model"
    assert set(payload["generator"]) == set(_model().generator.state_dict())


def test_save_is_atomic_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "m.pt"
    _model().save(path)
    first = path.read_bytes()
    model = _model()
    model.steps_done = 99
    model.save(path)
    assert path.read_bytes() != first
    assert TrainedModel.load(path).steps_done == 99
    assert sorted(os.listdir(path.parent)) == ["m.pt"]


def test_normalize_round_trip() -> None:
    model = _model()
    x = np.linspace(-5, 30, 27, dtype=np.float32).reshape(3, 3, 3)
    n = model.normalize(x)
    assert n.dtype == np.float32
    np.testing.assert_allclose(n, (x - 12.5) / 3.25, rtol=1e-6)
    np.testing.assert_allclose(model.denormalize(n), x, rtol=1e-5, atol=1e-5)
    t = torch.from_numpy(x)
    torch.testing.assert_close(model.denormalize(model.normalize(t)), t)


def test_corrupt_file_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelFileError, match="broken.pt"):
        TrainedModel.load(path)


def test_truncated_file_gives_clear_error(tmp_path: Path) -> None:
    good = _model().save(tmp_path / "good.pt")
    path = tmp_path / "cut.pt"
    path.write_bytes(good.read_bytes()[:500])
    with pytest.raises(ModelFileError, match="cut.pt"):
        TrainedModel.load(path)


def test_foreign_torch_file_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": UNet3D(depth=1, width=2).state_dict()}, path)
    with pytest.raises(ModelFileError, match="foreign.pt.*not a napari-dewedge model"):
        TrainedModel.load(path)


def test_pickled_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save(UNet3D(depth=1, width=2), path)  # a whole module: needs unsafe unpickling
    with pytest.raises(ModelFileError, match="pickled.pt"):
        TrainedModel.load(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not found.*nothing.pt"):
        TrainedModel.load(tmp_path / "nothing.pt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        TrainedModel.load(empty)


def test_mismatched_weights_give_clear_error(tmp_path: Path) -> None:
    path = _model().save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["network"]["width"] = 8
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="m.pt.*unusable"):
        TrainedModel.load(path)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = _model().save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="version 99"):
        TrainedModel.load(path)


def test_bad_normalization_is_refused() -> None:
    generator = UNet3D(depth=1, width=2)
    with pytest.raises(ValueError, match="std"):
        TrainedModel(generator, generator.config(), WedgeGeometry(), {"mean": 0.0, "std": 0.0}, 16)
