"""The built-in prior: which U-Nets have one, how it loads, and that a run starts from it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_dewedge.core.model import ModelFileError, atomic_torch_save
from napari_dewedge.core.networks import build_generator
from napari_dewedge.core.training import Trainer, TrainingConfig
from napari_dewedge.core.training.prior import PRIOR_DIR, load_prior, prior_file, prior_payload
from napari_dewedge.core.wedge import WedgeGeometry

REPO = Path(__file__).resolve().parents[2]


def _same_weights(a: torch.nn.Module, b: dict) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.state_dict().items())


def test_the_quick_presets_8_wide_u_net_has_a_prior() -> None:
    net = build_generator({**TrainingConfig.preset("quick").unet, "width": 8})
    path = load_prior(net)
    assert path == prior_file(net.config()) and path.parent == PRIOR_DIR
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["network"] == net.config()
    assert payload["about"]["made_by"] == "scripts/train_prior.py" and payload["about"]["steps"] > 0
    assert _same_weights(net, payload["generator"])
    assert (PRIOR_DIR.parent / "README.md").read_text().count(path.name) == 1  # its licence note names it


@pytest.mark.parametrize("preset", ["quick", "standard"])
def test_a_u_net_without_a_prior_keeps_its_random_weights(preset: str) -> None:
    net = build_generator(TrainingConfig.preset(preset).unet)  # quick: 16 wide
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert load_prior(net) is None
    assert _same_weights(net, before)


def test_a_prior_for_other_settings_is_none_and_a_broken_file_is_named(tmp_path: Path) -> None:
    net = build_generator({"depth": 2, "width": 4})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    other = build_generator({"depth": 2, "width": 4, "max_channels": 2})  # same file name, other channels
    path = atomic_torch_save(prior_payload(other, {}), prior_file(net.config(), tmp_path))
    assert load_prior(net, tmp_path) is None and _same_weights(net, before)
    path.write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match=path.name):
        load_prior(net, tmp_path)
    atomic_torch_save({"format": "something else"}, path)
    with pytest.raises(ModelFileError, match=path.name):
        load_prior(net, tmp_path)


def _trainer(prior: bool) -> Trainer:
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(32, 32, 32)).astype(np.float32)
    config = TrainingConfig.preset("quick", machine="cpu", device="cpu", steps=1, prior=prior, preview_every=0,
                                   checkpoint_every_s=None, unet={"width": 8})
    return Trainer(volume, WedgeGeometry(), config)


def test_a_run_starts_from_the_prior_and_says_so() -> None:
    trainer = _trainer(prior=True)
    prior = torch.load(prior_file(trainer._g.config()), map_location="cpu", weights_only=True)["generator"]
    assert _same_weights(trainer._g, prior) and _same_weights(trainer._g_frozen, prior)
    first = next(iter(trainer.run()))
    assert "started from the built-in prior" in first.message
    assert trainer.model.training["prior_used"] == prior_file(trainer._g.config()).name

    plain = _trainer(prior=False)
    assert not _same_weights(plain._g, prior)
    assert "prior" not in next(iter(plain.run())).message
    assert plain.model.training["prior_used"] is None


def test_the_prior_script_writes_a_prior_that_loads(tmp_path: Path, shared_data: Path, one_torch_thread) -> None:
    spec = importlib.util.spec_from_file_location("train_prior", REPO / "scripts" / "train_prior.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--width", "4", "--steps", "2", "--scenes", "2", "--size", "48", "--threads", "1",
                        "--copies", "1", "3", "--out", str(tmp_path)]) == 0
    net = build_generator({**TrainingConfig.preset("quick").unet, "width": 4})
    assert load_prior(net, tmp_path) == prior_file(net.config(), tmp_path)
    about = torch.load(prior_file(net.config(), tmp_path), map_location="cpu", weights_only=True)["about"]
    assert about["copies"] == [1, 3] and about["steps"] == 2
