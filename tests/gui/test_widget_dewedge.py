"""The one-click Dewedge dock widget: runs, stop, errors, closing, model files."""

from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_dewedge.core.phantoms import corrupt, hollow_sphere  # noqa: E402
from napari_dewedge.core.wedge import WedgeGeometry  # noqa: E402

#: A tiny network and few steps: each run takes about a second on one core.
TINY = dict(subtomo_size=16, n_subtomos=4, batch_size=1, unet_depth=1, unet_width=4, seed=0)
SCALE = (2.0, 1.5, 1.5)
TRANSLATE = (10.0, -3.0, 4.5)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def viewer(make_napari_viewer, monkeypatch):
    """A napari viewer on the offscreen platform (no OpenGL: GL limits are answered with typical values)."""
    import napari._vispy.canvas as vcanvas
    import napari._vispy.layers.base as vbase
    import napari._vispy.layers.image as vimage
    import napari._vispy.layers.labels as vlabels

    monkeypatch.setattr(vimage, "get_gl_extensions", lambda: "GL_ARB_texture_float")
    for module in (vimage, vbase, vlabels, vcanvas):
        monkeypatch.setattr(module, "get_max_texture_sizes", lambda: (4096, 512))
    return make_napari_viewer()


@pytest.fixture
def errors(monkeypatch):
    """Messages passed to napari's show_error."""
    import napari.utils.notifications as notifications

    seen: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda message: seen.append(str(message)))
    return seen


def _add_phantom(viewer, size: int = 24):
    geometry = WedgeGeometry(-50, 55, "y")
    clean = hollow_sphere(size, int(size * 0.7), 3)
    observed = corrupt(clean, geometry, snr=2.0, seed=1)
    source = viewer.add_image(
        observed,
        name="sphere",
        scale=SCALE,
        translate=TRANSLATE,
        metadata={"dewedge_role": "corrupted", "wedge": geometry.to_dict(), "ground_truth_layer": "sphere truth"},
    )
    truth = viewer.add_image(
        clean, name="sphere truth", scale=SCALE, translate=TRANSLATE, visible=False,
        metadata={"dewedge_role": "ground_truth", "wedge": geometry.to_dict()},
    )
    viewer.layers.selection.active = source
    return source, truth, geometry


def _widget(viewer, **settings):
    from napari_dewedge.widgets.dewedge import DewedgeWidget

    widget = DewedgeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Dewedge")
    widget.set_settings(**{**TINY, **settings})
    return widget


def _wait_done(qtbot, widget, timeout=30_000):
    qtbot.waitUntil(lambda: not widget.is_running, timeout=timeout)


# --------------------------------------------------------------------------- pure helpers


def test_build_config_from_preset_and_form_values():
    from napari_dewedge.core.training import PRESETS
    from napari_dewedge.widgets.dewedge import build_config, preset_values

    quick = preset_values("quick")
    assert quick["subtomo_size"] == PRESETS["quick"]["subtomo_size"] and quick["steps"] == PRESETS["quick"]["steps"]
    assert quick["unet_depth"] == PRESETS["quick"]["unet"]["depth"]

    s = preset_values("standard", steps=30, subtomo_size=16, unet_depth=2, unet_width=4, noise_scale=0.3,
                      energy_objective="wgan-gp", seed=None, device="cpu", lambda_consistency=0.5)
    config = build_config(s)
    assert (config.steps, config.subtomo_size, config.noise_scale, config.seed) == (30, 16, 0.3, None)
    assert config.unet["depth"] == 2 and config.unet["width"] == 4
    assert config.energy_objective == "wgan-gp" and config.lambda_consistency == 0.5 and config.device == "cpu"
    assert config.lr == PRESETS["standard"]["lr"]  # what the form does not show comes from the preset
    assert 1 <= config.preview_every <= 3  # at least ten previews per run

    with pytest.raises(ValueError, match="subtomo_size"):
        build_config(preset_values("quick", subtomo_size=18, unet_depth=2))
    with pytest.raises(ValueError, match="preset"):
        preset_values("fast")
    with pytest.raises(ValueError, match="samples"):
        build_config(preset_values("quick", samples=0))


@pytest.mark.parametrize("native", [True, False])
def test_the_form_fills_the_preset_for_its_device(monkeypatch, native):
    from napari_dewedge.core import device as device_module
    from napari_dewedge.core.training import PRESETS, QUICK_FLOAT32_CPU_WIDTH
    from napari_dewedge.widgets.dewedge import build_config, preset_values

    monkeypatch.setattr(device_module, "_CPU_BF16", native)
    values = preset_values("quick", device="cpu")
    assert values["unet_width"] == (PRESETS["quick"]["unet"]["width"] if native else QUICK_FLOAT32_CPU_WIDTH)
    assert build_config(values).unet["width"] == values["unet_width"]
    assert preset_values("quick", device="cuda:7")["unet_width"] == PRESETS["quick"]["unet"]["width"]  # no such GPU


@pytest.mark.parametrize("native", [False, True])
def test_the_form_refits_the_preset_when_the_device_changes(viewer, monkeypatch, native):
    from napari_dewedge.core import device as device_module
    from napari_dewedge.core.training import PRESETS, QUICK_FLOAT32_CPU_WIDTH
    from napari_dewedge.widgets import _dewedge_layout
    from napari_dewedge.widgets.dewedge import DewedgeWidget

    monkeypatch.setattr(device_module, "_CPU_BF16", native)
    monkeypatch.setattr(_dewedge_layout, "_devices", lambda: ["cpu", "cuda:7"])  # a GPU this machine lacks
    widget = DewedgeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="devices")
    written, on_cpu = PRESETS["quick"]["unet"]["width"], (PRESETS["quick"]["unet"]["width"] if native
                                                          else QUICK_FLOAT32_CPU_WIDTH)
    widget.device_combo.setCurrentText("cuda:7")  # preset as written
    assert widget.settings()["unet_width"] == written
    widget.device_combo.setCurrentText("cpu")
    assert widget.settings()["unet_width"] == on_cpu
    assert widget.settings()["steps"] == PRESETS["quick"]["steps"]  # nothing else moves
    widget.set_settings(unet_width=12)  # the user's own width stays
    widget.device_combo.setCurrentText("cuda:7")
    assert widget.settings()["unet_width"] == 12
    widget.set_settings(preset="standard", unet_width=PRESETS["standard"]["unet"]["width"])
    widget.device_combo.setCurrentText("cpu")  # the standard preset is the same everywhere
    assert widget.settings()["unet_width"] == PRESETS["standard"]["unet"]["width"]


# --------------------------------------------------------------------------- the widget


def test_form_and_shared_wedge_state(viewer):
    from napari_dewedge.widgets.dewedge import DewedgeWidget, preset_values
    from napari_dewedge.widgets.state import get_wedge_state

    source, _, geometry = _add_phantom(viewer)
    fresh = DewedgeWidget(viewer)
    viewer.window.add_dock_widget(fresh, name="fresh")
    assert fresh.settings() == {**preset_values("quick"), "device": fresh.settings()["device"]}  # the quick preset
    widget = _widget(viewer)
    state = get_wedge_state(viewer)
    assert widget.state is state
    assert widget.layer_picker.layer() is source
    assert state.geometry == geometry  # taken from the layer's metadata
    assert (widget.tilt_min_spin.value(), widget.tilt_max_spin.value()) == (-50, 55)

    widget.tilt_min_spin.setValue(-40.0)  # editing here edits the viewer's one wedge
    assert state.geometry == WedgeGeometry(-40, 55, "y") and state.origin == "user"
    state.set(tilt_max=48.0, tilt_axis="x")  # and the other way round
    assert widget.tilt_max_spin.value() == 48.0 and widget.axis_combo.currentText() == "x"

    widget.preset_combo.setCurrentText("standard")
    standard = preset_values("standard")
    assert widget.settings()["steps"] == standard["steps"]
    assert widget.settings()["subtomo_size"] == standard["subtomo_size"]
    assert widget.settings()["coarse"] is True and widget.coarse_check.isChecked()  # on by default
    assert widget.settings()["fuse"] is True and widget.fuse_check.isChecked()
    assert widget.settings()["second"] is True and widget.second_check.isChecked()
    assert widget.settings()["calibrate"] is True and widget.calibrate_check.isChecked()
    assert widget.settings()["mirror"] is True and widget._passes(widget.settings())["views"] == 4
    assert widget.settings()["solvent"] is True and widget.solvent_check.isChecked()
    widget.set_settings(noise_scale=None, seed=None, samples=3, coarse=False, fuse=False, calibrate=False,
                        second=False, mirror=False, solvent=False)
    s = widget.settings()
    assert s["noise_scale"] is None and s["seed"] is None and s["samples"] == 3 and s["coarse"] is False
    assert s["fuse"] is False and not widget.coarse_check.isChecked() and not widget.fuse_check.isChecked()
    assert s["calibrate"] is False and not widget.calibrate_check.isChecked()
    assert not widget.mirror_check.isChecked() and not widget.second_check.isChecked()
    assert not widget.second_check.isEnabled() and not widget.solvent_check.isEnabled()  # they need the fusion
    assert widget._passes(s) == {"calibrate": False, "coarse": False, "fuse": False, "second": False,
                                 "solvent": False, "views": 1}
    widget.set_settings(coarse=True, fuse=True, calibrate=True, second=True, mirror=True, solvent=True)
    devices = [widget.device_combo.itemText(i) for i in range(widget.device_combo.count())]
    assert devices[0] == "auto" and "cpu" in devices
    assert not widget.stop_button.isEnabled() and widget.dewedge_button.isEnabled()
    assert not widget.save_model_button.isEnabled() and not widget.compare_button.isEnabled()


def test_run_adds_result_layers_with_scale_and_provenance(viewer, qtbot, errors):
    source, truth, geometry = _add_phantom(viewer)
    source_meta = copy.deepcopy(source.metadata)
    widget = _widget(viewer, steps=4, samples=2)

    worker = widget.dewedge()
    assert worker is not None and widget.is_running
    assert not widget.dewedge_button.isEnabled() and widget.stop_button.isEnabled()
    _wait_done(qtbot, widget)

    assert errors == [] and widget.last_failure is None
    result, unc = widget.result_layer, widget.uncertainty_layer
    assert result.name == "sphere dewedged" and unc.name == "sphere uncertainty"
    for layer in (result, unc):
        np.testing.assert_allclose(layer.scale, SCALE)
        np.testing.assert_allclose(layer.translate, TRANSLATE)
        assert layer.data.shape == source.data.shape and layer.data.dtype == np.float32
    assert not np.allclose(result.data, source.data)
    assert (unc.data >= 0).all() and unc.data.max() > 0

    meta = result.metadata
    assert meta["dewedge_role"] == "dewedged" and unc.metadata["dewedge_role"] == "uncertainty"
    assert WedgeGeometry.from_dict(meta["wedge"]) == geometry
    prov = meta["provenance"]
    assert prov["source_layer"] == "sphere" and prov["model"] == "in memory"
    assert prov["training"]["steps"] == 4 and prov["steps_done"] == 4
    assert prov["inference"]["samples"] == 2
    assert prov["inference"]["coarse_factor"] > 1  # the coarse pass ran (on by default)
    assert prov["inference"]["fused"] is True  # and the fusion
    assert prov["inference"]["wedge_gains"]  # and the wedge-gain calibration
    assert prov["inference"]["views"] == 4  # and the mean of the mirror views
    assert meta["ground_truth_layer"] == "sphere truth"
    assert source.metadata == source_meta and truth.metadata["dewedge_role"] == "ground_truth"

    assert widget.model is not None and widget.model.steps_done == 4
    assert widget.preview_layer is None  # the preview gives way to the result
    assert set(widget.plot.names) >= {"generator", "fidelity"} and len(widget.plot.series("generator")[0]) == 4
    assert widget._progress is None  # the progress bar was closed
    assert widget.dewedge_button.isEnabled() and not widget.stop_button.isEnabled()
    assert widget.save_model_button.isEnabled() and widget.compare_button.isEnabled()
    assert "Done" in widget.status


def test_preview_layer_during_run(viewer, qtbot):
    source, _, _ = _add_phantom(viewer)
    widget = _widget(viewer, steps=100_000)
    widget.dewedge()
    qtbot.waitUntil(lambda: widget.preview_layer is not None, timeout=30_000)
    preview = widget.preview_layer
    assert preview.name == "sphere preview" and preview.data.shape == (16, 16, 16)
    assert preview.metadata["dewedge_role"] == "preview"
    np.testing.assert_allclose(preview.scale, SCALE)
    # the preview sits where its subtomogram is in the tomogram
    origin = (np.asarray(preview.translate) - np.asarray(TRANSLATE)) / np.asarray(SCALE)
    assert np.allclose(origin, np.round(origin)) and (origin >= 0).all()
    assert preview not in widget.layer_picker.layers()  # a preview is not something to dewedge
    widget.stop()
    _wait_done(qtbot, widget)


def test_stop_keeps_the_model_and_it_can_be_applied(viewer, qtbot, errors):
    source, _, _ = _add_phantom(viewer)
    widget = _widget(viewer, steps=100_000)
    widget.dewedge()
    qtbot.waitUntil(lambda: widget._latest_training is not None and widget._latest_training.step >= 2, timeout=30_000)
    widget.stop_button.click()
    _wait_done(qtbot, widget)

    outcome = widget.last_outcome
    assert outcome is not None and outcome.stopped and outcome.result is None
    assert widget.result_layer is None  # stopped during training: nothing applied
    steps = widget.model.steps_done
    assert 2 <= steps < 100_000
    assert "Stopped" in widget.status and errors == []
    assert widget.save_model_button.isEnabled() and widget.dewedge_button.isEnabled()

    widget.apply_model(use_current=True)
    _wait_done(qtbot, widget)
    result = widget.result_layer
    assert result is not None and result.data.shape == source.data.shape
    assert result.metadata["provenance"]["steps_done"] == steps
    assert result.metadata["provenance"]["model"] == "in memory"


def test_worker_error_is_shown_and_widget_recovers(viewer, qtbot, errors, monkeypatch):
    import napari_dewedge.core.pipeline as pipeline
    from napari_dewedge.core.training import Trainer

    released: list = []
    monkeypatch.setattr(pipeline, "_release", lambda dev: released.append(str(dev)))

    def boom(self, k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "_train_step", boom)
    _add_phantom(viewer)
    widget = _widget(viewer, steps=5)
    widget.dewedge()
    _wait_done(qtbot, widget)

    assert len(errors) == 1 and "Out of memory" in errors[0] and "smaller batch" in errors[0]
    assert widget.last_failure is not None and widget.last_failure.stage == "training"
    assert "Traceback" in widget.last_failure.detail
    assert "Out of memory" in widget.status
    assert len(released) == 1  # the job gives its device's memory back however it ends
    assert widget.result_layer is None and widget._progress is None
    assert widget.dewedge_button.isEnabled() and widget.apply_button.isEnabled()
    assert not widget.stop_button.isEnabled() and widget.layer_picker.isEnabled()

    # bad settings in the worker (an unknown device) and in the form are reported too
    widget.set_settings(device="cuda:7")
    widget.dewedge()
    _wait_done(qtbot, widget)
    assert "cuda:7" in errors[-1] and widget.dewedge_button.isEnabled()

    widget.set_settings(device="cpu", subtomo_size=18, unet_depth=2)
    assert widget.dewedge() is None and not widget.is_running
    assert "Invalid settings" in errors[-1] and "subtomo_size" in errors[-1]


@pytest.mark.timeout(90)
def test_closing_the_viewer_during_a_run_ends_the_worker(viewer, qtbot):
    from qtpy.QtCore import QThreadPool

    _add_phantom(viewer)
    widget = _widget(viewer, steps=100_000)
    widget.dewedge()
    control = widget._control
    qtbot.waitUntil(lambda: control.trainer is not None and control.trainer.step >= 1, timeout=30_000)
    trainer = control.trainer

    viewer.close()
    qtbot.wait(50)
    assert control.stop_requested
    assert QThreadPool.globalInstance().waitForDone(30_000)  # the worker thread is gone
    assert trainer.step < 100_000


def test_model_and_result_files_round_trip(viewer, qtbot, tmp_path, monkeypatch, errors):
    import mrcfile
    from qtpy.QtWidgets import QFileDialog

    from napari_dewedge.core.model import TrainedModel

    source, _, _ = _add_phantom(viewer)
    widget = _widget(viewer, steps=3)
    widget.dewedge()
    _wait_done(qtbot, widget)
    first = widget.result_layer.data.copy()

    asked: list[str] = []

    def save_dialog(parent, title, default, filters):
        asked.append(default)
        return str(tmp_path / ("model" if title == "Save model" else "result.mrc")), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    widget.save_model_button.click()
    path = tmp_path / "model.pt"
    assert path.is_file() and widget.model_path == str(path)
    assert asked[-1] == "sphere_dewedge.pt"
    assert widget.result_layer.metadata["provenance"]["model"] == str(path)  # the result now names its model file
    loaded = TrainedModel.load(path)
    assert loaded.steps_done == 3 and loaded.geometry == widget.model.geometry

    widget.save_result_button.click()
    with mrcfile.open(tmp_path / "result.mrc", permissive=True) as mrc:
        np.testing.assert_allclose(mrc.data, first, rtol=1e-6)
        assert float(mrc.voxel_size.z) == pytest.approx(SCALE[0]) and float(mrc.voxel_size.x) == pytest.approx(SCALE[2])

    # a fresh widget applies the saved model from its file
    widget.close()
    other = _widget(viewer)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))
    assert other.model is None
    other.apply_button.click()  # no model in memory: the file dialog opens directly
    _wait_done(qtbot, other)
    assert errors == []
    result = other.result_layer
    assert result is not None and result.name == "sphere dewedged"
    assert result.metadata["provenance"]["model"] == str(path)
    np.testing.assert_allclose(result.data, first, rtol=1e-4, atol=1e-4 * float(np.abs(first).max()))
    assert other.model_path == str(path) and other.model.steps_done == 3

    # a file that is not a model is reported, the widget stays usable
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    other.apply_model(bad)
    _wait_done(qtbot, other)
    assert str(bad) in errors[-1] and other.apply_button.isEnabled()


def test_compare_button_opens_the_comparison(viewer, qtbot):
    from napari_dewedge.widgets.compare import CompareWidget
    from napari_dewedge.widgets.orthoviews import OrthoViews
    from napari_dewedge.widgets.state import find_widget

    source, truth, _ = _add_phantom(viewer)
    widget = _widget(viewer, steps=2)
    widget.dewedge()
    _wait_done(qtbot, widget)
    widget.compare_button.click()

    compare = find_widget(viewer, CompareWidget)
    views = find_widget(viewer, OrthoViews)
    assert compare is not None and views is not None
    assert compare.before_picker.layer() is source and compare.after_picker.layer() is widget.result_layer
    assert compare.truth_picker.layer() is truth  # the ground truth link of the sample is used
    qtbot.waitUntil(lambda: not compare.busy, timeout=30_000)
    assert compare.result is not None
    widget.compare_button.click()  # a second click reuses the docked views
    assert find_widget(viewer, CompareWidget) is compare
    qtbot.waitUntil(lambda: not compare.busy, timeout=30_000)


def test_loss_plot_thins_and_renders_off_the_gui_thread(qtbot):
    from napari_dewedge.widgets._training_plot import LossPlot, thin

    x = np.arange(1, 1001, dtype=float)
    tx, ty = thin(x, 2 * x, 100)
    assert len(tx) <= 100 and tx[-1] == 1000 and ty[-1] == 2000
    np.testing.assert_allclose(ty, 2 * tx)  # block means of a line stay on the line

    plot = LossPlot(title="test")
    qtbot.addWidget(plot)
    plot.resize(320, 200)
    shown = plot.shown
    plot.append(1, {"a": 1.0, "b": float("nan")})
    plot.append(2, {"a": 0.5, "b": 2.0})
    assert plot.names == ["a", "b"] and list(plot.series("b")[0]) == [2.0]
    assert plot.redraw()
    qtbot.waitUntil(lambda: plot.shown > shown, timeout=10_000)
    assert not plot.redraw()  # nothing new to draw
    assert plot.view.pixmap().width() == plot.view.width()


def test_removing_the_tomogram_during_a_run_keeps_the_result_in_place(viewer, qtbot, errors):
    source, _, _ = _add_phantom(viewer)
    widget = _widget(viewer, steps=3)
    widget.dewedge()
    viewer.layers.remove(source)
    _wait_done(qtbot, widget)
    assert errors == []
    result = widget.result_layer
    assert result is not None and result.metadata["provenance"]["source_layer"] == "sphere"
    np.testing.assert_allclose(result.scale, SCALE)
    np.testing.assert_allclose(result.translate, TRANSLATE)
    assert result.metadata["ground_truth_layer"] == "sphere truth"
    assert widget.compare() is None and "no longer in the viewer" in errors[-1]  # nothing to compare with


def test_training_on_several_layers_and_halves(viewer, qtbot, errors):
    """The Dataset box: more tomograms and the chosen one's even/odd halves go into one model."""
    source, _, geometry = _add_phantom(viewer)
    other = viewer.add_image(np.asarray(source.data)[::-1].copy(), name="second", scale=SCALE,
                             metadata={"wedge": WedgeGeometry(-45, 50).to_dict()})
    even = viewer.add_image(np.asarray(source.data) * 1.01, name="sphere even", scale=SCALE)
    odd = viewer.add_image(np.asarray(source.data) * 0.99, name="sphere odd", scale=SCALE)
    widget = _widget(viewer, steps=3)
    widget.layer_picker.set_layer(source)
    offered = [widget.dataset.more_list.item(i).text() for i in range(widget.dataset.more_list.count())]
    assert "sphere" not in offered and {"second", "sphere even", "sphere odd"} <= set(offered)
    widget.set_dataset(more=[other], even=even, odd=odd)
    plan = widget.dataset.plan_label.text()
    assert "sphere:" in plan and "second:" in plan and "halves sphere even / sphere odd" in plan
    widget.dewedge()
    _wait_done(qtbot, widget)
    assert errors == [] and widget.last_failure is None
    sources = widget.model.training["sources"]
    assert [s["name"] for s in sources] == ["sphere", "second"]
    assert sources[0]["halves"] is True and sources[1]["halves"] is False
    assert WedgeGeometry.from_dict(sources[1]["wedge"]) == WedgeGeometry(-45, 50)  # its own recorded wedge
    assert widget.result_layer is not None and widget.result_layer.data.shape == source.data.shape
    # the model is applied to every tomogram it was trained on
    second = viewer.layers["second dewedged"]
    assert second.data.shape == other.data.shape and second.metadata["provenance"]["source_layer"] == "second"
    assert widget.result_layer.name == "sphere dewedged"  # the buttons act on the chosen tomogram's result

    # a Labels layer restricts where subtomograms are drawn
    mask = np.zeros(source.data.shape, np.int32)
    mask[4:20, 4:20, 4:20] = 1
    viewer.add_labels(mask, name="where", scale=SCALE)
    widget.set_dataset(mask="where")
    widget.dewedge()
    _wait_done(qtbot, widget)
    assert errors == [] and widget.model.training["sources"][0]["mask"] is True

    widget.set_dataset(even=even)  # one half alone is refused with a message
    assert widget.dewedge() is None and "both halves" in errors[-1]
