"""The command line under torchrun: two CPU processes (Gloo) train one model; apply shares the inputs.

torchrun starts a small launcher (written by the test) that records what its
process wrote (every output is renamed into place with ``os.replace``), keeps
its messages in a file of its own and saves its networks' final weights, then
runs the ordinary ``napari-dewedge`` entry point.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_dewedge
from napari_dewedge import cli
from napari_dewedge.core.model import TrainedModel
from napari_dewedge.core.phantoms import corrupt, hollow_sphere
from napari_dewedge.core.wedge import WedgeGeometry
from napari_dewedge.io import write_volume

pytestmark = pytest.mark.slow

STEPS = 30
TINY = ["--subtomo-size", "16", "--unet-width", "2", "--unet-depth", "1", "--n-subtomos", "8", "--batch-size", "2",
        "--device", "cpu", "--threads", "1", "--seed", "0", "--tilt-range", "-60", "60"]

LAUNCHER = '''
import os, sys
from pathlib import Path

import torch

rank = os.environ["RANK"]
spy = Path(sys.argv[1])
sys.stderr = open(spy / f"stderr{rank}.txt", "w", buffering=1)
wrote = []
replace = os.replace
def recording_replace(src, dst, *args, **kwargs):
    wrote.append(str(dst))
    return replace(src, dst, *args, **kwargs)
os.replace = recording_replace

from napari_dewedge.core.training import trainer
run = trainer.Trainer.run
def saving_run(self):
    yield from run(self)
    torch.save({"g": self._g.state_dict(), "e": self._e.state_dict()}, spy / f"state{rank}.pt")
trainer.Trainer.run = saving_run

from napari_dewedge.cli import main
status = main(sys.argv[2:])
(spy / f"wrote{rank}.txt").write_text("\\n".join(wrote))
raise SystemExit(status)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(tmp: Path, argv: list[str]) -> tuple[Path, subprocess.CompletedProcess]:
    spy = tmp / "spy"
    spy.mkdir()
    launcher = tmp / "launcher.py"
    launcher.write_text(LAUNCHER)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(napari_dewedge.__file__).parents[1]),
                                           os.environ.get("PYTHONPATH", "")]))
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), str(launcher), str(spy), *argv]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:] + "".join(
        p.read_text()[-2000:] for p in sorted(spy.glob("stderr*.txt")))
    return spy, result


def _write(path: Path, seed: int) -> Path:
    write_volume(path, corrupt(hollow_sphere(24, 16, 3), WedgeGeometry(), snr=2.0, seed=seed), voxel_size=4.0)
    return path


def test_fit_on_two_processes_trains_one_model_that_rank_0_writes_and_one_process_resumes(tmp_path):
    tomo = _write(tmp_path / "tomo.mrc", seed=0)
    out, ckpt = tmp_path / "model.pt", tmp_path / "model.ckpt"

    spy, _ = _torchrun(tmp_path, ["fit", str(tomo), *TINY, "--steps", str(STEPS), "--checkpoint", str(ckpt),
                                  "-o", str(out)])

    model = TrainedModel.load(out)
    assert model.steps_done == STEPS and model.training["processes"] == 2
    history = model.history
    assert [h["step"] for h in history] == list(range(1, STEPS + 1))
    assert all(math.isfinite(h[k]) for h in history for k in ("generator", "fidelity", "energy_net"))
    quarter = STEPS // 4
    first, last = (np.mean([h["generator"] for h in part]) for part in (history[:quarter], history[-quarter:]))
    assert last < first
    states = [torch.load(spy / f"state{rank}.pt", weights_only=True) for rank in (0, 1)]
    for net in ("g", "e"):
        assert states[0][net].keys() == states[1][net].keys()
        for name, tensor in states[0][net].items():
            assert torch.equal(tensor, states[1][net][name]), f"{net}.{name} differs between the ranks"
    for name, tensor in model.generator.state_dict().items():
        assert torch.equal(tensor, states[0]["g"][name]), name
    assert (spy / "wrote1.txt").read_text() == ""
    assert set((spy / "wrote0.txt").read_text().split()) == {str(out), str(ckpt)}
    assert "training:" in (spy / "stderr0.txt").read_text()
    assert (spy / "stderr1.txt").read_text().strip() == ""

    resumed = tmp_path / "resumed.pt"
    assert cli.main(["fit", str(tomo), *TINY, "--steps", str(STEPS + 2), "--checkpoint", str(ckpt), "-q",
                     "-o", str(resumed)]) == 0
    again = TrainedModel.load(resumed)
    assert again.steps_done == STEPS + 2 and again.training["processes"] == 1
    assert [h["step"] for h in again.history] == list(range(1, STEPS + 3))


def test_run_on_two_processes_shares_the_inputs_and_writes_one_model(tmp_path):
    tomos = [_write(tmp_path / f"TS_{i}.mrc", seed=i) for i in range(3)]
    results, model = tmp_path / "dewedged", tmp_path / "model.pt"

    spy, _ = _torchrun(tmp_path, ["run", *map(str, tomos), *TINY, "--steps", "2", "--tile", "16",
                                  "--save-model", str(model), "-o", str(results)])

    written = [set((spy / f"wrote{rank}.txt").read_text().split()) for rank in (0, 1)]
    expected = [results / f"TS_{i}_dewedged.mrc" for i in range(3)]
    assert written[0] == {str(model), str(expected[0]), str(expected[2])}
    assert written[1] == {str(expected[1])}
    assert TrainedModel.load(model).training["processes"] == 2


def test_apply_under_torchrun_takes_the_rank_s_share_of_its_shard(tmp_path, monkeypatch):
    tomos = [_write(tmp_path / f"TS_{i}.mrc", seed=i) for i in range(5)]
    model = tmp_path / "model.pt"
    assert cli.main(["fit", str(tomos[0]), *TINY, "--steps", "1", "-q", "-o", str(model)]) == 0
    out = tmp_path / "out"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")

    assert cli.main(["apply", *map(str, tomos), "--model", str(model), "-o", str(out), "--device", "cpu",
                     "--threads", "1", "--tile", "16", "--shard", "0/2"]) == 0

    # shard 0/2 is TS_0, TS_2, TS_4; rank 1 of 2 takes TS_2
    assert sorted(p.name for p in out.iterdir()) == ["TS_2_dewedged.mrc"]
