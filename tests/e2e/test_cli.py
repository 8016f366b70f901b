"""The ``napari-dewedge`` command line (cli.py) on tiny synthetic tomograms."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_dewedge import cli
from napari_dewedge.core.phantoms import corrupt, hollow_sphere
from napari_dewedge.core.wedge import WedgeGeometry
from napari_dewedge.io import read_volume, write_volume

VOXEL = 4.0
# Tiny training: a few steps of a 2-channel, depth-1 U-Net on 16^3 subtomograms.
TINY = ["--steps", "2", "--subtomo-size", "16", "--unet-width", "2", "--unet-depth", "1", "--n-subtomos", "4",
        "--batch-size", "2", "--device", "cpu", "--threads", "1", "--seed", "0"]
WEDGE = ["--tilt-range", "-60", "60"]


@pytest.fixture(scope="module")
def tomo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "tomo.mrc"
    vol = corrupt(hollow_sphere(24, 16, 3), WedgeGeometry(), snr=2.0, seed=0)
    write_volume(path, vol, voxel_size=VOXEL)
    return path


@pytest.fixture(scope="module")
def model_file(tomo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model.pt"
    assert cli.main(["fit", str(tomo), *WEDGE, *TINY, "-o", str(out)]) == 0
    return out


def _bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


# --- round trips --------------------------------------------------------------


def test_fit_writes_loadable_model(model_file, tomo):
    from napari_dewedge.core.model import TrainedModel

    model = TrainedModel.load(model_file)
    assert model.steps_done == 2
    assert model.geometry == WedgeGeometry(-60, 60, "y")
    assert model.voxel_size == (VOXEL,) * 3
    assert model.network["width"] == 2 and model.network["depth"] == 1
    assert model.source and Path(model.source).name == tomo.name


def test_apply_writes_mrc_with_voxel_size(model_file, tomo, tmp_path, capsys):
    before = _bytes(tomo)
    out = tmp_path / "out.mrc"
    assert cli.main(["apply", str(tomo), "--model", str(model_file), "-o", str(out), "--device", "cpu"]) == 0
    res = read_volume(out)
    assert res.shape == (24, 24, 24) and res.data.dtype == np.float32
    assert res.voxel_size == (VOXEL,) * 3
    assert np.isfinite(res.data).all() and res.data.std() > 0
    assert _bytes(tomo) == before
    err = capsys.readouterr().err
    assert "applying" in err and str(out) in err


def test_run_with_samples_std_and_saved_model(tomo, tmp_path):
    out, std, model = tmp_path / "r.mrc", tmp_path / "r_std.mrc", tmp_path / "r.pt"
    rc = cli.main(["run", str(tomo), "-o", str(out), *WEDGE, *TINY, "--samples", "2", "--std-out", str(std),
                   "--save-model", str(model), "-q"])
    assert rc == 0
    mean, spread = read_volume(out).data, read_volume(std).data
    assert mean.shape == spread.shape == (24, 24, 24)
    assert (spread >= 0).all() and spread.mean() > 0
    assert model.stat().st_size > 0


def test_apply_same_result_as_engine(model_file, tomo, tmp_path):
    from napari_dewedge.core.inference import predict
    from napari_dewedge.core.model import TrainedModel

    out, plain = tmp_path / "e.mrc", tmp_path / "p.mrc"
    assert cli.main(["apply", str(tomo), "--model", str(model_file), "-o", str(out), "--device", "cpu", "-q"]) == 0
    assert cli.main(["apply", str(tomo), "--model", str(model_file), "-o", str(plain), "--device", "cpu", "-q",
                     "--no-wedge-gain", "--no-coarse-pass", "--no-fusion", "--no-second-pass", "--views", "1"]) == 0
    model, volume = TrainedModel.load(model_file), read_volume(tomo).data
    expected = predict(model, volume, device="cpu", calibrate=True, coarse=True, fuse=True, views=4)  # the default
    assert expected.wedge_gains and expected.coarse_factor > 1 and expected.fused and expected.views == 4
    np.testing.assert_allclose(read_volume(out).data, expected.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(read_volume(plain).data, predict(model, volume, device="cpu").mean, rtol=1e-5, atol=1e-5)
    assert not np.allclose(read_volume(out).data, read_volume(plain).data)
    # the solvent flattening is on unless turned off
    parser = cli.build_parser()
    assert parser.parse_args(["apply", str(tomo), "--model", str(model_file), "-o", str(out)]).solvent is True
    assert parser.parse_args(["apply", str(tomo), "--model", str(model_file), "-o", str(out),
                              "--no-solvent-flattening"]).solvent is False


# --- refusals -------------------------------------------------------------------


def test_missing_input_file(tmp_path, capsys, model_file):
    missing = tmp_path / "nothere.mrc"
    assert cli.main(["apply", str(missing), "--model", str(model_file), "-o", str(tmp_path / "o.mrc")]) == 2
    err = capsys.readouterr().err
    assert "nothere.mrc" in err and "not found" in err
    assert not (tmp_path / "o.mrc").exists()


def test_not_an_mrc_file(shared_data, tmp_path, capsys):
    png = shared_data / "mrc_cases" / "emd_3197.png"
    assert cli.main(["fit", str(png), *WEDGE, "-o", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "emd_3197.png" in err and "not an MRC" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m.pt").exists()


def test_missing_model_and_bad_model(tomo, tmp_path, capsys):
    out = tmp_path / "o.mrc"
    assert cli.main(["apply", str(tomo), "--model", str(tmp_path / "none.pt"), "-o", str(out)]) == 2
    assert "none.pt" in capsys.readouterr().err
    assert cli.main(["apply", str(tomo), "--model", str(tomo), "-o", str(out)]) == 2
    assert "tomo.mrc" in capsys.readouterr().err
    assert not out.exists()


def test_never_overwrites_input_and_needs_overwrite(model_file, tomo, tmp_path, capsys):
    before = _bytes(tomo)
    args = ["apply", str(tomo), "--model", str(model_file), "--device", "cpu", "-q"]
    assert cli.main([*args, "-o", str(tomo), "--overwrite"]) == 2
    assert "input" in capsys.readouterr().err
    assert _bytes(tomo) == before

    existing = tmp_path / "exists.mrc"
    existing.write_bytes(b"keep me")
    assert cli.main([*args, "-o", str(existing)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me"
    assert cli.main([*args, "-o", str(existing), "--overwrite"]) == 0
    assert read_volume(existing).shape == (24, 24, 24)


def test_bad_arguments(tomo, tmp_path, capsys):
    assert cli.main(["fit", str(tomo), "--tilt-range", "70", "-60", "-o", str(tmp_path / "m.pt")]) == 2
    assert "tilt" in capsys.readouterr().err
    assert cli.main(["run", str(tomo), *WEDGE, "-o", str(tmp_path / "o.txt")]) == 2
    assert ".mrc" in capsys.readouterr().err
    assert cli.main(["run", str(tomo), *WEDGE, "-o", str(tmp_path / "no" / "o.mrc")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["run", str(tomo), *WEDGE, "-o", str(tmp_path / "o.mrc"), "--std-out",
                     str(tmp_path / "s.mrc")]) == 2
    assert "--samples" in capsys.readouterr().err
    # no --tilt-range, no --tlt and no tilt file beside the tomogram
    assert cli.main(["fit", str(tomo), "-o", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "no tilt range" in err and "--tlt" in err and str(tomo) in err


# --- demo -----------------------------------------------------------------------------


def test_demo_headless_writes_result_model_and_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = cli.main(["demo", "--headless", "--out", str(out), "--steps", "1", "--subtomo-size", "16", "--unet-width", "2",
                   "--unet-depth", "1", "--n-subtomos", "4", "--batch-size", "2", "--tile", "64", "--device", "cpu",
                   "--threads", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    result = out / "microtubule_13pf_dewedged.mrc"
    for path in (result, out / "microtubule_13pf_model.pt", out / "microtubule_13pf_before_after.png"):
        assert path.is_file() and path.stat().st_size > 0
        assert str(path) in printed
    vol = read_volume(result)
    assert vol.shape == (36, 206, 94) and vol.voxel_size == pytest.approx((10.52,) * 3)
    assert (out / "microtubule_13pf_before_after.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a second run refuses to replace the files without --overwrite
    assert cli.main(["demo", "--headless", "--out", str(out)]) == 2


def test_demo_without_display_runs_headless(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "_demo_gui", lambda args: calls.append("gui") or 0)
    monkeypatch.setattr(cli, "_demo_headless", lambda args: calls.append("headless") or 0)
    monkeypatch.setattr(cli.sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert cli.main(["demo"]) == 0
    monkeypatch.setenv("DISPLAY", ":0")
    assert cli.main(["demo"]) == 0
    assert cli.main(["demo", "--headless"]) == 0
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert cli.main(["demo"]) == 0
    assert calls == ["headless", "gui", "headless", "headless"]


# --- start-up ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["apply", "--help"], ["--version"]])
def test_help_is_light(argv):
    code = (
        "import sys\n"
        "from napari_dewedge.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'napari', 'numpy', 'qtpy', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert "napari-dewedge" in proc.stdout


def test_views_default_is_the_applications(capsys):
    """``--views`` says the default of ``ApplySpec`` (the CLI does not import numpy to read it)."""
    from napari_dewedge.core.inference.views import MIRROR_VIEWS

    with pytest.raises(SystemExit):
        cli.main(["apply", "--help"])
    assert f"(default: {MIRROR_VIEWS}," in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_default_preset_is_quick_on_every_device(device, monkeypatch, capsys):
    """Without ``--preset`` the CLI trains the quick preset, on a GPU as on a CPU (as the widget does):
    the standard preset is the paper's recipe, not tuned, and measured below quick on the paper's shapes."""
    import torch

    from napari_dewedge.cli import _commands
    from napari_dewedge.core import device as device_module
    from napari_dewedge.core.training import PRESETS

    monkeypatch.setattr(device_module, "resolve_device", lambda name="auto": torch.device(device))
    args = cli.build_parser().parse_args(["fit", "tomo.mrc", *WEDGE, "-o", "m.pt"])
    config = _commands._training_config(args, torch.device(device))
    assert config.lr == PRESETS["quick"]["lr"] and config.steps == PRESETS["quick"]["steps"]
    assert "preset: quick (the default; choose with --preset)" in capsys.readouterr().err
    args = cli.build_parser().parse_args(["fit", "tomo.mrc", *WEDGE, "-o", "m.pt", "--preset", "standard"])
    assert _commands._training_config(args, torch.device(device)).lr == PRESETS["standard"]["lr"]


def test_console_script_entry_point():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="console_scripts") if ep.name == "napari-dewedge"]
    assert eps and eps[0].value == "napari_dewedge.cli:main"


def test_demo_gui_opens_sample_and_skips_missing_widgets(monkeypatch, capsys):
    """The GUI path with a stand-in napari module (no OpenGL needed)."""
    import types

    calls: dict[str, list] = {"image": [], "dock": [], "run": []}

    class Window:
        def add_plugin_dock_widget(self, plugin, name):
            calls["dock"].append((plugin, name))
            if name == "Dewedge":
                raise KeyError("not registered")

    class Viewer:
        def __init__(self, title=""):
            self.window = Window()

        def add_image(self, data, **kw):
            calls["image"].append((data.shape, kw))

    fake = types.ModuleType("napari")
    fake.Viewer = Viewer
    fake.run = lambda: calls["run"].append(True)
    monkeypatch.setitem(sys.modules, "napari", fake)
    monkeypatch.setattr(cli, "has_display", lambda: True)
    assert cli.main(["demo"]) == 0
    (shape, kw), = calls["image"]
    assert shape == (36, 206, 94) and kw["scale"] == pytest.approx((10.52,) * 3)
    assert [n for _, n in calls["dock"]] == list(cli.DEMO_WIDGETS)
    assert {p for p, _ in calls["dock"]} == {"napari-dewedge"}
    assert calls["run"] == [True]
    assert "'Dewedge' not available" in capsys.readouterr().err
