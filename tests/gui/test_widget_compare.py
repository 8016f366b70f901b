"""Compare-before-and-after dock widget and open_comparison."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_dewedge.core.phantoms import corrupt, hollow_sphere  # noqa: E402
from napari_dewedge.core.wedge import WedgeGeometry  # noqa: E402

GEOMETRY = WedgeGeometry(-60, 60)


@pytest.fixture
def volumes():
    truth = hollow_sphere(32, 22, 3)
    before = corrupt(truth, GEOMETRY, snr=2.0, seed=0)
    # A stand-in for a restoration: halfway between the observation and the truth.
    after = 0.5 * before + 0.5 * truth
    return truth, before, after


def _add(viewer, volumes, scale=(10.5, 10.5, 10.5), with_truth=True):
    truth, before, after = volumes
    layers = {}
    if with_truth:
        layers["truth"] = viewer.add_image(truth, name="clean", scale=scale, metadata={"dewedge_role": "ground_truth"})
    layers["before"] = viewer.add_image(
        before, name="sphere", scale=scale, metadata={"dewedge_role": "corrupted", "wedge": GEOMETRY.to_dict()}
    )
    layers["after"] = viewer.add_image(after, name="sphere dewedged", scale=scale, metadata={"dewedge_role": "dewedged"})
    return layers


def _compare(viewer):
    from napari_dewedge.widgets.compare import CompareWidget

    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Compare before and after")
    return widget


def test_pickers_auto_fill_from_roles(viewer, qtbot, volumes):
    widget = _compare(viewer)
    assert widget.before_picker.layer() is None
    assert widget.truth_picker.layer() is None
    assert widget.compare() is None
    assert "Choose" in widget.status_label.text()

    layers = _add(viewer, volumes)
    assert widget.before_picker.layer() is layers["before"]
    assert widget.after_picker.layer() is layers["after"]
    assert widget.truth_picker.layer() is layers["truth"]
    viewer.layers.remove(layers["truth"])
    assert widget.truth_picker.layer() is None
    assert widget.truth_picker.count() == 3  # "(none)" + the two remaining layers


def test_compute_with_ground_truth_shows_numbers(viewer, qtbot, volumes):
    widget = _compare(viewer)
    _add(viewer, volumes)
    worker = widget.compare()
    assert worker is not None and widget.busy
    with qtbot.waitSignal(widget.computed, timeout=30000):
        pass
    r = widget.result
    assert r.voxel_size == pytest.approx(10.5)
    assert r.units == "Å"
    assert r.fsc.frequency.max() == pytest.approx(0.5 / 10.5, rel=0.05)  # Nyquist in 1/Å
    # The restoration is closer to the truth than the observation by every measure.
    assert r.psnr["after"] > r.psnr["before"]
    assert r.ssim["after"] > r.ssim["before"]
    assert r.missing_wedge_auc["before"] < 0.15 < 0.5 < r.missing_wedge_auc["after"]
    assert r.anisotropy["before"] > r.anisotropy["after"]
    assert r.directional["before"]["anisotropy"] > r.directional["after"]["anisotropy"]

    values = widget.table_values()
    assert set(values) >= {"PSNR vs truth (dB)", "SSIM vs truth", "Missing-wedge FSC-AUC", "Spectral anisotropy (dB)"}
    assert float(values["PSNR vs truth (dB)"][1]) == pytest.approx(r.psnr["after"], rel=1e-3)
    assert "Å" in widget.summary_label.text()
    # The plot has the two curves against the truth, before vs after, and 0.5 / 0.143 lines.
    fsc_axes = widget.figure.axes[0]
    assert len(fsc_axes.lines) == 5
    assert "1/Å" in fsc_axes.get_xlabel()
    assert not widget.busy and widget.compute_button.isEnabled()


def test_compute_without_truth_in_voxels(viewer, qtbot, volumes):
    widget = _compare(viewer)
    layers = _add(viewer, volumes, scale=(1.0, 1.0, 1.0), with_truth=False)
    widget.compare(layers["before"], layers["after"])
    with qtbot.waitSignal(widget.computed, timeout=30000):
        pass
    r = widget.result
    assert r.voxel_size is None and r.units == "voxels"
    assert not r.psnr and not r.fsc_truth
    assert list(widget.table_values()) == ["Spectral anisotropy (dB)"]
    assert 0.0 < r.fsc.auc < 1.0
    assert "1/voxel" in widget.figure.axes[0].get_xlabel()
    assert len(widget.figure.axes[0].lines) == 3


def test_mismatched_shapes_and_same_layer_are_refused(viewer, qtbot, volumes):
    widget = _compare(viewer)
    a = viewer.add_image(volumes[1], name="a")
    b = viewer.add_image(volumes[1][:, :, :20], name="b")
    assert widget.compare(a, b) is None
    assert "one shape" in widget.status_label.text()
    assert widget.compare(a, a) is None
    assert "same layer" in widget.status_label.text()
    assert not widget.busy


def test_layer_removed_while_computing(viewer, qtbot, volumes):
    widget = _compare(viewer)
    layers = _add(viewer, volumes)
    widget.compare()
    viewer.layers.remove(layers["after"])
    viewer.layers.remove(layers["truth"])
    with qtbot.waitSignal(widget.computed, timeout=30000):
        pass
    assert widget.result.names["after"] == "sphere dewedged"
    assert not math.isnan(widget.result.psnr["after"])


def test_open_comparison_docks_and_reuses(viewer, qtbot, volumes):
    from napari_dewedge.widgets import open_comparison
    from napari_dewedge.widgets.compare import CompareWidget
    from napari_dewedge.widgets.orthoviews import OrthoViews

    layers = _add(viewer, volumes)
    widget, views = open_comparison(viewer, layers["before"], layers["after"])
    assert isinstance(widget, CompareWidget) and isinstance(views, OrthoViews)
    docked = list(viewer.window.dock_widgets.values())
    assert any(w is widget for w in docked) and any(w is views for w in docked)
    assert views.before is layers["before"] and views.after is layers["after"]
    assert widget.truth_picker.layer() is layers["truth"]
    with qtbot.waitSignal(widget.computed, timeout=30000):
        pass
    again, views_again = open_comparison(viewer, layers["after"], layers["before"], compute=False)
    assert again is widget and views_again is views
    assert views.before is layers["after"]
    assert len(viewer.window.dock_widgets) == len(docked)
    with pytest.raises(ValueError, match="before"):
        open_comparison(viewer, None, layers["after"])


def test_voxel_size_and_wedge_sources(viewer, volumes):
    from napari_dewedge.widgets.compare import layer_voxel_size
    from napari_dewedge.widgets.state import get_wedge_state

    vol = volumes[1]
    assert layer_voxel_size(viewer.add_image(vol, name="plain")) is None
    assert layer_voxel_size(viewer.add_image(vol, name="scaled", scale=(4.2, 4.2, 4.2))) == pytest.approx(4.2)
    assert layer_voxel_size(viewer.add_image(vol, name="aniso", scale=(8.0, 4.0, 4.0))) is None
    meta = viewer.add_image(vol, name="meta", metadata={"voxel_size": (10.52, 10.52, 10.52)})
    assert layer_voxel_size(meta) == pytest.approx(10.52)
    assert layer_voxel_size(viewer.add_image(vol, name="unknown", metadata={"voxel_size": (1.0, 1.0, 1.0)})) is None

    widget = _compare(viewer)
    recorded = WedgeGeometry(-50, 58)
    layer = viewer.add_image(vol, name="with wedge", metadata={"wedge": recorded.to_dict()})
    assert widget.wedge_for(layer) == recorded  # shared wedge still at its default
    get_wedge_state(viewer).set(tilt_min=-45, tilt_max=45)
    assert widget.wedge_for(layer) == WedgeGeometry(-45, 45)
