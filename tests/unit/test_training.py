"""CryoGEN training loop: events, stopping, reproducibility, checkpoints, small volumes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_dewedge.core import phantoms
from napari_dewedge.core.model import ModelFileError, TrainedModel
from napari_dewedge.core.training import (
    PRESETS,
    NoiseEstimate,
    Trainer,
    TrainingConfig,
    TrainingEvent,
    estimate_noise,
    fit,
    plan_subtomo_size,
)
from napari_dewedge.core.training.noise import noise_free, resolve_noise, tomogram_noise, whole_wedge_power
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge

from ..conftest import requires_cuda

GEOMETRY = WedgeGeometry(-60, 60)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tomogram() -> np.ndarray:
    """A 32^3 hollow sphere seen through the wedge with noise, offset and scaled like raw data."""
    clean = phantoms.hollow_sphere(32, outer_diameter=22, shell=3)
    return 50.0 + 10.0 * phantoms.corrupt(clean, GEOMETRY, snr=2.0, seed=1)


def tiny(**overrides) -> TrainingConfig:
    settings = dict(
        subtomo_size=16,
        n_subtomos=8,
        steps=6,
        batch_size=2,
        unet={"depth": 2, "width": 4},
        energy_width=4,
        preview_every=2,
        num_threads=1,
        checkpoint_every_s=None,
        device="cpu",
    )
    settings.update(overrides)
    return TrainingConfig(**settings)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# -- settings --------------------------------------------------------------------------


def test_presets_build_and_accept_overrides() -> None:
    assert set(PRESETS) == {"quick", "standard", "thorough"}
    quick = TrainingConfig.preset("quick")
    standard = TrainingConfig.preset("standard")
    thorough = TrainingConfig.preset("thorough", steps=10, unet={"width": 8})
    assert quick.subtomo_size <= standard.subtomo_size <= thorough.subtomo_size
    assert standard.steps >= 1000 and 64 <= standard.subtomo_size <= 96
    assert thorough.steps == 10 and thorough.unet["width"] == 8 and thorough.unet["depth"] == 4
    with pytest.raises(ValueError, match="unknown preset"):
        TrainingConfig.preset("fast")
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainingConfig.preset("quick", stepz=3)


def test_config_round_trip_and_validation() -> None:
    cfg = tiny(energy_objective="wgan-gp", adam_betas=(0.0, 0.9))
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="energy_objective"):
        tiny(energy_objective="hinge")
    with pytest.raises(ValueError, match="subtomo_size 18 must be a multiple of 4"):
        tiny(subtomo_size=18)
    with pytest.raises(ValueError, match="steps"):
        tiny(steps=0)
    with pytest.raises(ValueError, match="unet"):
        tiny(unet={"depth": 2, "norm": "layer"})
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainingConfig.from_dict({"steps": 3, "colour": "red"})


def test_plan_subtomo_size_shrinks_or_pads() -> None:
    assert plan_subtomo_size((200, 300, 300), 64, 8, 16) == (64, (200, 300, 300))
    # the real sample tomogram is only 36 voxels thick
    assert plan_subtomo_size((36, 206, 94), 64, 8, 16) == (32, (36, 206, 94))
    assert plan_subtomo_size((36, 206, 94), 96, 16, 32) == (32, (36, 206, 94))
    assert plan_subtomo_size((10, 50, 40), 32, 8, 16) == (16, (16, 50, 40))


# -- noise estimate --------------------------------------------------------------------


def test_noise_estimate_tells_white_from_wedge_filtered() -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((12, 24, 24, 24)).astype(np.float32)
    white = estimate_noise(0.5 * noise, GEOMETRY)
    assert white.kind == "white"
    assert white.white_std == pytest.approx(0.5, rel=0.05)
    frac = 0.711  # measured fraction of +-60 degrees
    wedged = estimate_noise(apply_wedge(noise, GEOMETRY) / math.sqrt(frac), GEOMETRY)
    assert wedged.kind == "wedge-filtered"
    assert wedged.wedge_std == pytest.approx(1.0, rel=0.1)
    assert wedged.white_std < 0.2
    assert NoiseEstimate.from_dict(wedged.to_dict()) == wedged


def test_the_whole_volume_bounds_the_white_noise() -> None:
    rng = np.random.default_rng(1)
    noise = 0.5 * rng.standard_normal((40, 44, 48)).astype(np.float32)
    assert whole_wedge_power(noise, GEOMETRY) == pytest.approx(0.25, rel=0.05)
    assert whole_wedge_power(apply_wedge(noise, GEOMETRY), GEOMETRY) < 1e-10  # no window, no leakage
    assert whole_wedge_power(noise, WedgeGeometry(-90, 90, "y")) is None  # no missing wedge
    cubes = np.stack([noise[:24, :24, :24], noise[16:40, 20:44, 24:48], noise[8:32, 10:34, 0:24]])
    alone = estimate_noise(cubes, GEOMETRY)
    bounded = tomogram_noise(noise, cubes, GEOMETRY)
    assert bounded.white_std == pytest.approx(alone.white_std, rel=0.1)  # white noise: the two agree
    # in normalised units: the bound is divided by the normalisation's variance
    assert tomogram_noise(4 * noise, cubes, GEOMETRY, std=4.0).white_std == pytest.approx(bounded.white_std, rel=1e-4)
    assert estimate_noise(cubes, GEOMETRY, white_bound=0.0).white_std == 0.0


# -- the loop --------------------------------------------------------------------------


def test_events_schedules_and_previews(tomogram: np.ndarray) -> None:
    cfg = tiny(steps=8, n_subtomos=8, batch_size=2, warmup_fraction=0.25, lr=1e-3)  # 4 steps per epoch
    events = list(Trainer(tomogram, GEOMETRY, cfg).run())
    assert [e.step for e in events] == list(range(9))
    assert all(isinstance(e, TrainingEvent) and e.total == 8 for e in events)
    assert events[-1].done and not events[-1].stopped and not any(e.done for e in events[:-1])
    # warm-up over 2 steps, then linear decay
    lrs = [e.lr for e in events[1:]]
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))
    # lambda constant during the first epoch (4 steps), then decaying
    lams = [e.lam for e in events[1:]]
    assert lams[:4] == [1.0] * 4 and all(a > b for a, b in zip(lams[3:], lams[4:]))
    for e in events[1:]:
        assert {"generator", "energy_net", "fidelity", "consistency", "energy"} <= set(e.losses)
        assert all(math.isfinite(v) for v in e.losses.values())
        assert e.seconds_per_step > 0 and e.eta_s >= 0
    previews = [e for e in events if e.preview is not None]
    assert [e.step for e in previews] == [0, 2, 4, 6, 8]
    p = previews[-1].preview
    assert p.shape == (16, 16, 16) and p.dtype == np.float32
    assert abs(float(p.mean()) - float(tomogram.mean())) < 5.0  # de-normalised (raw data units)
    # the step-0 preview of the identity-initialised U-Net is the input subtomogram itself
    z, y, x = events[0].preview_origin
    np.testing.assert_allclose(events[0].preview, tomogram[z : z + 16, y : y + 16, x : x + 16], rtol=1e-4, atol=1e-3)


def test_fidelity_reads_zero_when_the_prediction_agrees_with_the_data() -> None:
    # A clean wedge-filtered volume, no added noise: the identity-initialised
    # U-Net predicts its input exactly at the first step. The crops still leak
    # power into the wedge at their edges; that part is out of g's reach and
    # must not count.
    clean = phantoms.hollow_sphere(32, outer_diameter=22, shell=3)
    wedged = phantoms.corrupt(clean, GEOMETRY, snr=None, seed=0)
    trainer = Trainer(wedged, GEOMETRY, tiny(steps=1, noise_scale=0.0, fidelity_target="observation"))
    first = [e for e in trainer.run() if e.losses][0]
    assert first.losses["fidelity"] == pytest.approx(0.0, abs=1e-8)


def test_clean_data_get_the_floor_of_sigma_n() -> None:
    clean = phantoms.hollow_sphere(64, outer_diameter=32, shell=3)
    wedged = phantoms.corrupt(clean, GEOMETRY, snr=None, seed=0)
    trainer = Trainer(wedged, GEOMETRY, tiny(steps=1))
    events = list(trainer.run())
    assert trainer.noise is not None and trainer.noise.total_std < 0.5  # nearly noiseless
    assert trainer.model.training["sigma_n_used"] == pytest.approx(0.5)
    assert events[-1].done


def test_the_recorrupted_fidelity_is_dropped_on_noise_free_data_only(tomogram: np.ndarray) -> None:
    cfg = tiny(fidelity_weight=0.7)
    assert resolve_noise(cfg, NoiseEstimate(0.05, 0.05))["fidelity_weight"] == 0.0  # below the gate
    assert resolve_noise(cfg, NoiseEstimate(0.2, 0.0))["fidelity_weight"] == 0.7
    assert resolve_noise(cfg, NoiseEstimate(0.05, 0.2))["fidelity_weight"] == 0.7  # wedge-filtered noise counts
    assert resolve_noise(tiny(fidelity_weight=0.7, sigma_n=0.3), NoiseEstimate(0.05, 0.0))["fidelity_weight"] == 0.7
    observation = tiny(fidelity_weight=0.7, fidelity_target="observation")  # CryoGEN's own term stays
    assert resolve_noise(observation, NoiseEstimate(0.05, 0.0))["fidelity_weight"] == 0.7
    assert noise_free(NoiseEstimate(0.09, 0.1).total_std) and not noise_free(NoiseEstimate(0.1, 0.11).total_std)
    trainer = Trainer(tomogram, GEOMETRY, tiny(steps=1))  # SNR 2: noisy
    list(trainer.run())
    assert trainer.model.training["fidelity_weight_used"] == 1.0
    # a clean sphere well inside its box, crops of the preset's size (smaller boxes and crops leak more of
    # its edges into the wedge, which the estimate takes for noise)
    clean = phantoms.corrupt(phantoms.hollow_sphere(96, outer_diameter=40, shell=3), GEOMETRY, snr=None, seed=0)
    trainer = Trainer(clean, GEOMETRY, tiny(steps=1, subtomo_size=32))
    events = list(trainer.run())
    assert noise_free(trainer.noise.total_std) and trainer.model.training["fidelity_weight_used"] == 0.0
    assert any("consistency term alone" in e.message for e in events if e.step == 0 and e.message)


def test_training_lowers_the_loss(tomogram: np.ndarray) -> None:
    # A fixed problem: no added noise, the frozen copy never refreshed, and a
    # non-residual U-Net that starts far from reproducing its input.
    cfg = tiny(
        steps=16, lr=1e-2, warmup_fraction=0.0, noise_scale=0.0, steps_per_epoch=100,
        unet={"depth": 2, "width": 4, "residual": False},
    )
    events = list(Trainer(tomogram, GEOMETRY, cfg).run())
    fidelity = [e.losses["fidelity"] for e in events[1:]]
    assert np.mean(fidelity[-3:]) < 0.75 * np.mean(fidelity[:3])


def test_seeded_runs_are_reproducible(tomogram: np.ndarray) -> None:
    def run(seed: int):
        tr = Trainer(tomogram, GEOMETRY, tiny(steps=3, seed=seed))
        losses = [dict(e.losses) for e in tr.run()]
        return losses, weights(tr.model.generator)

    losses_a, w_a = run(5)
    losses_b, w_b = run(5)
    losses_c, w_c = run(6)
    assert losses_a == losses_b
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)
    assert losses_a != losses_c
    assert not all(torch.equal(w_a[k], w_c[k]) for k in w_a)


@pytest.mark.parametrize("objective", ["gan", "wgan-gp"])
def test_both_energy_objectives_run(tomogram: np.ndarray, objective: str) -> None:
    tr = Trainer(tomogram, GEOMETRY, tiny(steps=2, energy_objective=objective, energy_steps=2))
    events = list(tr.run())
    last = events[-1].losses
    assert all(math.isfinite(v) for v in last.values())
    assert ("gradient_penalty" in last) == (objective == "wgan-gp")
    assert tr.model.steps_done == 2


def test_energy_weight_zero_leaves_the_energy_network_alone(tomogram: np.ndarray) -> None:
    tr = Trainer(tomogram, GEOMETRY, tiny(steps=3, energy_weight=0.0))
    before = weights(tr._e)
    events = list(tr.run())
    assert all(torch.equal(before[k], v) for k, v in weights(tr._e).items())
    assert events[-1].losses["energy"] == 0.0 and events[-1].losses["energy_net"] == 0.0
    assert math.isfinite(events[-1].losses["fidelity"])


def test_energy_every_runs_the_energy_network_on_every_nth_step_only(tomogram: np.ndarray) -> None:
    tr = Trainer(tomogram, GEOMETRY, tiny(steps=4, energy_every=3))
    it = tr.run()
    next(it)  # the setup event
    changed = []
    for _ in range(4):
        before = weights(tr._e)
        event = next(it)
        changed.append(any(not torch.equal(before[k], v) for k, v in weights(tr._e).items()))
        assert event.losses["energy_net"] != 0.0  # between two runs: the last run's losses
    assert changed == [True, False, False, True]


def _training_forwards(trainer: Trainer, steps: int) -> list[int]:
    """How many times each step runs the generator in training mode (the previews run it in eval mode)."""
    calls = [0]
    trainer._g.register_forward_hook(lambda module, inp, out: calls.__setitem__(0, calls[0] + module.training))
    it = trainer.run()
    next(it)  # the setup event
    counts = []
    for _ in range(steps):
        calls[0] = 0
        next(it)
        counts.append(calls[0])
    return counts


def test_noise_free_data_skip_the_prediction_between_two_runs_of_the_energy_network(tomogram: np.ndarray) -> None:
    # noise-free: the fidelity term is off, so the prediction of the data feeds the energy term alone
    clean = phantoms.corrupt(phantoms.hollow_sphere(96, outer_diameter=40, shell=3), GEOMETRY, snr=None, seed=0)
    trainer = Trainer(clean, GEOMETRY, tiny(steps=4, energy_every=3, subtomo_size=32, lambda_decay=False))
    assert _training_forwards(trainer, 4) == [2, 1, 1, 2]  # the prediction and the consistency, or the latter
    assert trainer.model.training["fidelity_weight_used"] == 0.0
    noisy = Trainer(tomogram, GEOMETRY, tiny(steps=4, energy_every=3, lambda_decay=False))
    assert _training_forwards(noisy, 4) == [2, 2, 2, 2]  # the fidelity term needs the prediction on every step


def test_a_time_budget_ends_the_run_and_its_schedules_with_the_time(tomogram: np.ndarray, monkeypatch) -> None:
    import types

    from napari_dewedge.core.training import trainer as trainer_module

    clock = {"t": 0.0}  # every step takes exactly one second of this clock
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: clock["t"],
                                                                       monotonic=lambda: clock["t"]))
    step = Trainer._train_step

    def one_second_step(self, k):
        clock["t"] += 1.0
        return step(self, k)

    monkeypatch.setattr(Trainer, "_train_step", one_second_step)
    cfg = tiny(steps=100, time_budget_s=5, warmup_fraction=0.1, lr=1e-3)
    events = list(Trainer(tomogram, GEOMETRY, cfg).run())
    assert [e.step for e in events] == list(range(6))  # 5 s: 5 steps of the 100
    last = events[-1]
    assert last.done and not last.stopped and "time budget of 5 s" in last.message
    assert [e.total for e in events[1:]] == [5] * 5  # the steps the time left holds, projected
    # the schedule follows the time: step 2 stands at 1 s of 5 (step 20 of 100), past the warm-up
    lrs = [e.lr for e in events[1:]]
    assert lrs[0] == pytest.approx(1e-4) and lrs[1] == pytest.approx(1e-3 * 81 / 91)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:])) and lrs[-1] < 0.3e-3
    # without a budget the same steps stay in the warm-up
    assert Trainer(tomogram, GEOMETRY, tiny(steps=100, lr=1e-3))._lr(2) == pytest.approx(2e-4)


def test_request_stop_ends_cleanly_and_model_is_usable(tomogram: np.ndarray) -> None:
    tr = Trainer(tomogram, GEOMETRY, tiny(steps=50))
    events = []
    for event in tr.run():
        events.append(event)
        if event.step == 3:
            tr.request_stop()
    assert events[-1].done and events[-1].stopped and events[-1].step == 3
    assert "stopped" in events[-1].message
    model = tr.model
    assert model.steps_done == 3 and model.training["stopped"]
    out = model.apply_normalized(torch.zeros(1, 1, 16, 16, 16))
    assert out.shape == (1, 1, 16, 16, 16)
    with pytest.raises(RuntimeError, match="already run"):
        next(tr.run())


def test_closing_the_generator_stops_and_releases(tomogram: np.ndarray) -> None:
    tr = Trainer(tomogram, GEOMETRY, tiny(steps=50))
    it = tr.run()
    for _ in range(3):  # the setup event and two steps
        next(it)
    it.close()
    assert tr.step == 2
    assert tr._opt_g is None  # optimiser state dropped
    model = tr.model
    assert model.steps_done == 2
    assert model.apply_normalized(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 1, 16, 16, 16)


def test_model_save_load_after_training(tomogram: np.ndarray, tmp_path: Path) -> None:
    model = fit(tomogram, GEOMETRY, tiny(steps=2), voxel_size=10.52, source="sphere.mrc")
    assert model.voxel_size == (10.52, 10.52, 10.52)
    assert model.normalization["std"] == pytest.approx(float(tomogram.std()), rel=1e-5)
    assert model.training["noise_estimate"]["kind"] in ("white", "mixed", "wedge-filtered")
    path = model.save(tmp_path / "sphere_model.pt")
    loaded = TrainedModel.load(path)
    x = torch.randn(2, 1, 16, 16, 16)
    assert torch.equal(model.apply_normalized(x), loaded.apply_normalized(x))
    assert loaded.history == model.history and len(loaded.history) == 2
    assert loaded.source == "sphere.mrc"


def test_resume_continues_at_the_right_step_and_matches_a_full_run(tomogram: np.ndarray, tmp_path: Path) -> None:
    cfg = tiny(steps=6, checkpoint_every_s=0.0)
    full = Trainer(tomogram, GEOMETRY, cfg)
    full_losses = [dict(e.losses) for e in full.run()]

    ckpt = tmp_path / "run.ckpt"
    first = Trainer(tomogram, GEOMETRY, cfg, checkpoint_path=ckpt)
    for event in first.run():
        if event.step == 3:
            first.request_stop()
    assert ckpt.exists()
    assert torch.load(ckpt, weights_only=True)["step"] == 3

    second = Trainer(tomogram, GEOMETRY, cfg, resume_from=ckpt, checkpoint_path=ckpt)
    events = list(second.run())
    assert events[0].step == 3 and "resumed at step 3" in events[0].message
    assert [e.step for e in events[1:]] == [4, 5, 6]
    assert [dict(e.losses) for e in events[1:]] == full_losses[4:]
    w_full, w_resumed = weights(full.model.generator), weights(second.model.generator)
    assert all(torch.equal(w_full[k], w_resumed[k]) for k in w_full)
    assert len(second.model.history) == 6


def test_resume_refuses_a_checkpoint_of_another_tomogram(tomogram: np.ndarray, tmp_path: Path) -> None:
    ckpt = tmp_path / "run.ckpt"
    list(Trainer(tomogram, GEOMETRY, tiny(steps=1), checkpoint_path=ckpt).run())
    with pytest.raises(ModelFileError, match="different tomogram"):
        Trainer(tomogram * 2.0, GEOMETRY, tiny(steps=2), resume_from=ckpt)
    with pytest.raises(ModelFileError, match="U-Net"):
        Trainer(tomogram, GEOMETRY, tiny(steps=2, unet={"depth": 2, "width": 8}), resume_from=ckpt)
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(ModelFileError, match="bogus.ckpt"):
        Trainer(tomogram, GEOMETRY, tiny(steps=2), resume_from=bogus)


def test_volume_thinner_than_subtomograms(tomogram: np.ndarray) -> None:
    slab = tomogram[:12]  # 12 x 32 x 32, asked for 16^3 subtomograms
    tr = Trainer(slab, GEOMETRY, tiny(steps=2, subtomo_size=16))
    events = list(tr.run())
    assert tr.subtomo_size == 12
    assert "reduced from 16 to 12" in events[0].message
    assert events[-1].preview.shape == (12, 12, 12)
    thin = tomogram[:5]  # thinner than the smallest size the U-Net takes: padded
    tr = Trainer(thin, GEOMETRY, tiny(steps=1, subtomo_size=16))
    events = list(tr.run())
    assert tr.subtomo_size == 8 and "padded" in events[0].message
    assert tr.model.training["volume_shape"] == [5, 32, 32]


def test_real_sample_tomogram_with_standard_subtomogram_size(shared_data: Path) -> None:
    mrcfile = pytest.importorskip("mrcfile")
    path = shared_data / "tomograms" / "microtubule_13pf.mrc"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with mrcfile.open(path, permissive=True) as mrc:
        volume = np.array(mrc.data, dtype=np.float32)
    assert volume.shape == (36, 206, 94)
    cfg = TrainingConfig.preset(
        "standard", steps=1, batch_size=1, n_subtomos=2, unet={"width": 2}, energy_width=2, num_threads=1,
        checkpoint_every_s=None, device="cpu",
    )
    assert cfg.subtomo_size == 64
    tr = Trainer(volume, GEOMETRY, cfg)
    events = list(tr.run())
    assert tr.subtomo_size == 32 and events[-1].done
    assert events[-1].preview.shape == (32, 32, 32)


@pytest.mark.parametrize(
    "volume, match",
    [
        (np.zeros((16, 16)), "3D"),
        (np.full((16, 16, 16), 3.0), "constant"),
        (np.where(np.arange(16**3).reshape(16, 16, 16) == 5, np.nan, 1.0), "NaN"),
    ],
)
def test_bad_volumes_are_refused(volume: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Trainer(volume, GEOMETRY, tiny())


def test_unknown_device_is_refused(tomogram: np.ndarray) -> None:
    with pytest.raises(ValueError, match="device"):
        Trainer(tomogram, GEOMETRY, tiny(device="npu"))


@requires_cuda
def test_mixed_precision_step_on_cuda_and_memory_release(tomogram: np.ndarray) -> None:
    # A first run leaves what the CUDA libraries keep for the process, most likely
    # their workspaces (on an H100, 32 MiB more after a first run than before it);
    # a second run must leave nothing more.
    list(Trainer(tomogram, GEOMETRY, tiny(steps=1, device="cuda", amp=True)).run())
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    tr = Trainer(tomogram, GEOMETRY, tiny(steps=3, device="cuda", amp=True))
    assert tr._amp_dtype in (torch.bfloat16, torch.float16)
    events = list(tr.run())
    assert events[-1].done and all(math.isfinite(v) for v in events[-1].losses.values())
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before + 1024**2
    assert tr.model.device.type == "cpu"
