"""The restoration benchmarks run end to end at toy sizes and write their tables and figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_versus_screens_a_setting_and_writes_its_table(tmp_path):
    versus = _script("versus")
    args = ["--size", "32", "--steps", "2", "--scenes", "cell-snr1-sym", "--methods", "input", "low-pass", "ours",
            "--device", "cpu", "--set", "energy_weight=0.0", "--name", "toy", "--out", str(tmp_path)]
    assert versus.main(args) == 0
    table = (tmp_path / "versus_toy.md").read_text(encoding="utf-8")
    assert "ours with energy_weight=0.0" in table and "| cell-snr1-sym | ours |" in table
    assert "| cell-snr1-sym | ours, tiles alone |" in table  # the same model, without the coarse pass and fusion
    assert (tmp_path / "versus_cell-snr1-sym_toy.png").is_file()
    assert versus.OURS_OVERRIDES == {"energy_weight": 0.0}
    assert versus._config("ours", "cpu", 0, 2).energy_weight == 0.0
    assert versus._config("isonet-style", "cpu", 0, 2).fidelity_weight == 0.0  # baselines keep their own
    assert versus._config("ours-standard", "cpu", 0, 2).subtomo_size == 64  # the GPU preset's
    assert versus._config("ours", "cpu", 0, 2).subtomo_size == 32


def test_versus_says_when_the_budget_cut_a_schedule(tmp_path):
    versus = _script("versus")
    args = ["--size", "32", "--steps", "500", "--budget", "3", "--scenes", "cell-snr1-sym", "--methods", "ours",
            "--device", "cpu", "--name", "cut", "--out", str(tmp_path)]
    assert versus.main(args) == 0
    row = next(line for line in (tmp_path / "versus_cut.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| cell-snr1-sym | ours |"))
    assert row.rstrip(" |").endswith(" of 500")


def test_versus_trains_every_method_on_the_time_budget(tmp_path):
    versus = _script("versus")
    cfg = versus._config("isonet-style", "cpu", 0, None, 300.0)
    assert cfg.time_budget_s == 300 and cfg.steps == versus._BUDGET_STEPS and cfg.fidelity_weight == 0.0
    args = ["--size", "32", "--budget", "2", "--scenes", "cell-snr1-sym", "--methods", "ours",
            "--device", "cpu", "--name", "budget", "--out", str(tmp_path)]
    assert versus.main(args) == 0
    row = next(line for line in (tmp_path / "versus_budget.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| cell-snr1-sym | ours |"))
    steps = row.rstrip(" |").rsplit("|", 1)[-1].strip()
    assert steps.isdigit() and int(steps) > 0  # ended by its time budget, not cut by the guard


def test_versus_starts_ours_from_an_experiments_prior_folder(tmp_path, monkeypatch):
    from napari_dewedge.core.model import atomic_torch_save
    from napari_dewedge.core.networks import build_generator
    from napari_dewedge.core.training import prior

    monkeypatch.setattr(prior, "PRIOR_DIR", prior.PRIOR_DIR)  # put back after the test
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    versus = _script("versus")
    net = build_generator(versus._config("ours", "cpu", 0, 1).unet)
    folder = tmp_path / "priors"
    made = atomic_torch_save(prior.prior_payload(net, {"steps": 7, "scenes": 3, "copies": [2, 14]}),
                             prior.prior_file(net.config(), folder))
    args = ["--size", "32", "--steps", "1", "--scenes", "cell-snr1-sym", "--methods", "ours", "--device", "cpu",
            "--prior-folder", str(folder), "--name", "prior", "--out", str(tmp_path)]
    assert versus.main(args) == 0
    assert prior.load_prior(build_generator(net.config())) == made  # the run's priors were the folder's
    header = (tmp_path / "versus_prior.md").read_text(encoding="utf-8")
    assert f"ours started from the priors in {folder} ({made.stem}: 7 steps on 3 boxes, 2-14 copies a box)" in header
    with pytest.raises(SystemExit, match="no prior file"):
        versus.main(["--prior-folder", str(tmp_path / "empty")])


def test_versus_draws_other_cell_scenes_with_a_scene_seed(tmp_path):
    versus = _script("versus")
    usual = versus.make_scene("cell-snr1-sym", 32)
    other = versus.make_scene("cell-snr1-sym", 32, scene_seed=1)
    again = versus.make_scene("cell-snr1-sym", 32, scene_seed=1)
    assert not np.allclose(usual.truths[0], other.truths[0])  # another cell, not only other noise
    assert np.array_equal(other.truths[0], again.truths[0]) and np.array_equal(other.full[0], again.full[0])
    args = ["--size", "32", "--scenes", "cell-snr1-sym", "--methods", "input", "--scene-seed", "1",
            "--device", "cpu", "--name", "held-out", "--out", str(tmp_path)]
    assert versus.main(args) == 0
    assert "SNR 1, scene seed 1" in (tmp_path / "versus_held-out.md").read_text(encoding="utf-8")


def test_versus_trains_the_prism_orientations_together(tmp_path):
    versus = _script("versus")
    scene = versus.make_scene("prism", 0, small=True, orientations=2)
    assert len(scene.truths) == 2 and scene.full[0].shape == (48,) * 3
    assert scene.even is scene.full and scene.odd is scene.full  # no noise: both halves are the volume
    args = ["--quick", "--steps", "1", "--scenes", "prism", "--orientations", "2", "--methods", "input", "ddw-style",
            "--device", "cpu", "--name", "shapes", "--out", str(tmp_path)]
    assert versus.main(args) == 0
    text = (tmp_path / "versus_shapes.md").read_text(encoding="utf-8")
    assert "prism 48^3 x2 trained together (no noise" in text
    input_row = next(line for line in text.splitlines() if line.startswith("| prism (mean of 2) | input |"))
    assert "| 1.000 |" in input_row  # the measured region is the truth's where nothing was added
    assert "| prism (mean of 2) | ddw-style |" in text
    assert (tmp_path / "versus_prism_shapes.png").is_file()


def test_real_tomograms_draws_before_and_after(tmp_path):
    from napari_dewedge.core.phantoms import cell, corrupt
    from napari_dewedge.core.wedge import WedgeGeometry
    from napari_dewedge.io import write_volume

    tomo = corrupt(cell(32, seed=1), WedgeGeometry(-60, 60), snr=1.0, seed=2).astype(np.float32)
    path = tmp_path / "toy.mrc"
    write_volume(path, tomo, voxel_size=(10.0, 10.0, 10.0))
    real = _script("real_tomograms")
    assert real.main([str(path), "--steps", "2", "--device", "cpu", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "real_tomograms_quick.md").read_text(encoding="utf-8")
    assert "| toy.mrc | 32×32×32 |" in table
    assert (tmp_path / "real_toy.png").is_file()


def test_a_tubes_ring_reads_open_where_the_wedge_took_its_top_and_bottom():
    from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge

    tube_section = _script("tube_section")
    z, y, x = np.mgrid[:32, :96, :72].astype(float)
    tube = (np.abs(np.hypot(z - 15.5, x - (52 - 0.2 * y)) - 10) < 1.5).astype(np.float32)  # inclined in XY
    wedged = apply_wedge(tube, WedgeGeometry(-60, 60, "y")).astype(np.float32)
    noisy = wedged + np.random.default_rng(0).normal(0, 1.0, tube.shape).astype(np.float32)
    axis = tube_section.tube_axis(noisy)
    assert abs(axis.bx + 0.2) < 0.02 and abs(axis.z0 + 32 * axis.bz - 15.5) < 2.5  # found from the noisy data
    whole = tube_section.ring_closure(tube_section.tube_section(tube, axis))
    cut = tube_section.ring_closure(tube_section.tube_section(noisy, axis))
    assert whole.closure > 0.8 and cut.closure < 0.5
    weakest = int(np.nanargmin(cut.sectors))  # sectors start at -x and turn through -z (the top)
    assert weakest in (2, 3, 8, 9)  # the top or the bottom of the ring: where its wall is parallel to the beam


def test_real_tomograms_measures_a_tubes_ring(tmp_path):
    real = _script("real_tomograms")
    z, y, x = np.mgrid[:24, :48, :40].astype(float)
    tube = (np.abs(np.hypot(z - 11.5, x - 20) - 7) < 1.5).astype(np.float32)
    rings = real.tube_rings({"input": tube, "copy": tube.copy()}, tube)
    assert set(rings) == {"input", "copy"} and rings["input"][1].closure > 0.8
    real.save_section_figure(tmp_path / "sections.png", rings, "toy")
    assert (tmp_path / "sections.png").is_file()
    assert real.tube_rings({"input": tube}, np.zeros((24, 48, 4), np.float32)) == {}  # no room for a tube
