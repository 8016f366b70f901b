"""The command line on several tomograms: batches, resumes, shards, tilt files, tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_dewedge import cli
from napari_dewedge.core.phantoms import corrupt, hollow_sphere
from napari_dewedge.core.wedge import WedgeGeometry
from napari_dewedge.io import read_volume, write_volume

TINY = ["--steps", "2", "--subtomo-size", "16", "--unet-width", "2", "--unet-depth", "1", "--n-subtomos", "4",
        "--batch-size", "2", "--device", "cpu", "--threads", "1", "--seed", "0"]
APPLY = ["--device", "cpu", "--threads", "1", "--tile", "16"]


def _write(path: Path, seed: int, voxel: float = 4.0, shape: int = 24) -> Path:
    vol = corrupt(hollow_sphere(shape, 16, 3), WedgeGeometry(), snr=2.0, seed=seed)
    write_volume(path, vol, voxel_size=voxel)
    return path


@pytest.fixture(scope="module")
def tomos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("batch")
    return [_write(folder / f"TS_{i:02d}.mrc", seed=i) for i in range(5)]


@pytest.fixture(scope="module")
def model(tomos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("m") / "model.pt"
    assert cli.main(["fit", str(tomos[0]), "--tilt-range", "-60", "60", *TINY, "-o", str(out)]) == 0
    return out


def test_apply_over_a_list_writes_each_once_and_resumes(tomos, model, tmp_path, capsys, monkeypatch):
    out = tmp_path / "dewedged"
    from napari_dewedge.cli import _commands

    real = _commands.apply_to
    calls = []

    def interrupted(model_, vol, *args, **kwargs):
        calls.append(vol.path.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(model_, vol, *args, **kwargs)

    monkeypatch.setattr(_commands, "apply_to", interrupted)
    assert cli.main(["apply", *map(str, tomos), "--model", str(model), "-o", str(out), *APPLY]) == 130
    written = sorted(p.name for p in out.iterdir())
    assert written == ["TS_00_dewedged.mrc", "TS_01_dewedged.mrc"]  # nothing half-written for TS_02
    monkeypatch.setattr(_commands, "apply_to", real)
    capsys.readouterr()
    assert cli.main(["apply", *map(str, tomos), "--model", str(model), "-o", str(out), *APPLY]) == 0
    err = capsys.readouterr().err
    assert err.count("skip ") == 2 and "TS_00.mrc" in err and "TS_01.mrc" in err
    assert sorted(p.name for p in out.iterdir()) == [f"TS_{i:02d}_dewedged.mrc" for i in range(5)]
    for tomo in tomos:
        result = read_volume(out / f"{tomo.stem}_dewedged.mrc")
        assert result.shape == (24, 24, 24) and result.voxel_size == pytest.approx((4.0,) * 3)
    # a third run has nothing to do
    assert cli.main(["apply", *map(str, tomos), "--model", str(model), "-o", str(out), *APPLY]) == 0
    assert "nothing to do" in capsys.readouterr().err


def test_shards_partition_the_batch(tomos, model, tmp_path):
    out = tmp_path / "sharded"
    seen = []
    for index in range(3):
        shard_out = tmp_path / f"s{index}"
        assert cli.main(["apply", *map(str, tomos), "--model", str(model), "-o", f"{shard_out}/",
                         "--shard", f"{index}/3", *APPLY]) == 0
        seen.append(sorted(p.name for p in shard_out.iterdir()))
    assert seen == [["TS_00_dewedged.mrc", "TS_03_dewedged.mrc"], ["TS_01_dewedged.mrc", "TS_04_dewedged.mrc"],
                    ["TS_02_dewedged.mrc"]]
    assert not out.exists()
    assert cli.main(["apply", *map(str, tomos), "--model", str(model), "-o", str(out), "--shard", "3/3"]) == 2


def test_tilt_range_from_a_tlt_file(tmp_path, capsys):
    from napari_dewedge.core.model import TrainedModel

    tomo = _write(tmp_path / "TS_07_rec.mrc", seed=7)
    (tmp_path / "TS_07.tlt").write_text("\n".join(str(a) for a in np.arange(-54, 63, 3.0)) + "\n")
    assert cli.main(["fit", str(tomo), *TINY, "-o", str(tmp_path / "a.pt")]) == 0
    assert "from the tilt angles in" in capsys.readouterr().err
    assert TrainedModel.load(tmp_path / "a.pt").geometry == WedgeGeometry(-54, 60, "y")
    other = tmp_path / "angles.rawtlt"
    other.write_text("-40\n0\n50\n")
    assert cli.main(["fit", str(tomo), "--tlt", str(other), *TINY, "-o", str(tmp_path / "b.pt")]) == 0
    assert TrainedModel.load(tmp_path / "b.pt").geometry == WedgeGeometry(-40, 50, "y")
    bad = tmp_path / "bad.tlt"
    bad.write_text("-40\nforty\n")
    assert cli.main(["fit", str(tomo), "--tlt", str(bad), *TINY, "-o", str(tmp_path / "c.pt")]) == 2
    assert "bad.tlt, line 2" in capsys.readouterr().err
    assert not (tmp_path / "c.pt").exists()


def test_estimate_tilt_prints_the_range(tmp_path, capsys):
    clean = hollow_sphere(48, 30, 3)
    path = tmp_path / "w.mrc"
    write_volume(path, corrupt(clean, WedgeGeometry(-45, 55), snr=8.0, seed=0), voxel_size=2.0)
    assert cli.main(["estimate-tilt", str(path)]) == 0
    line = capsys.readouterr().out.strip()
    name, lo, hi = line.split("\t")[:3]
    assert name == str(path)
    assert abs(float(lo) + 45) <= 6 and abs(float(hi) - 55) <= 6


def test_bad_dataset_inputs_name_the_file(tomos, tmp_path, capsys):
    small = _write(tmp_path / "small.mrc", seed=1, shape=16)
    far = _write(tmp_path / "far.mrc", seed=1, voxel=8.0)
    wedge = ["--tilt-range", "-60", "60"]
    out = tmp_path / "m.pt"
    assert cli.main(["fit", str(tomos[0]), "--even", str(tomos[1]), "--odd", str(small), *wedge, *TINY,
                     "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "odd volume has shape (16, 16, 16)" in err and str(tomos[0]) in err
    assert cli.main(["fit", str(tomos[0]), "--mask", str(small), *wedge, *TINY, "-o", str(out)]) == 2
    assert "mask volume has shape" in capsys.readouterr().err
    assert cli.main(["fit", str(tomos[0]), str(far), *wedge, *TINY, "-o", str(out)]) == 2
    assert "far.mrc: voxel size 8 Å differs" in capsys.readouterr().err
    assert cli.main(["fit", str(tomos[0]), "--even", str(tomos[1]), *wedge, "-o", str(out)]) == 2
    assert "--even and --odd go together" in capsys.readouterr().err
    table = tmp_path / "t.csv"
    table.write_text(f"tomogram,tilt_min,tilt_max\n{tomos[0]},-60,60\n{tomos[1]},-60,sixty\n")
    assert cli.main(["fit", "--table", str(table), *TINY, "-o", str(out)]) == 2
    assert "t.csv, row 2, column tilt_max: 'sixty' is not a number" in capsys.readouterr().err
    assert not out.exists()  # nothing written
