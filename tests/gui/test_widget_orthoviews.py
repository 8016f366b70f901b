"""Orthogonal and Fourier views dock widget."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_dewedge.core.phantoms import corrupt, hollow_sphere  # noqa: E402
from napari_dewedge.core.wedge import WedgeGeometry  # noqa: E402

SHAPE = (24, 48, 40)


def _volume(seed: int = 0) -> np.ndarray:
    sphere = hollow_sphere(48, 36, 3)[12:36, :, 4:44]
    return corrupt(sphere, WedgeGeometry(-60, 60), snr=2.0, seed=seed)


def _views(viewer):
    from napari_dewedge.widgets.orthoviews import OrthoViews

    widget = OrthoViews(viewer)
    viewer.window.add_dock_widget(widget, name="Orthogonal and Fourier views")
    widget.setFixedSize(640, 720)
    return widget


def _ready(widget, n: int) -> bool:
    return all(c.spectrum is not None for c in widget.columns[:n])


def test_pickers_follow_layers_and_roles(viewer, qtbot):
    widget = _views(viewer)
    assert widget.before is None and widget.after is None
    assert "No 3D image layer" in widget.columns[0].panels["xy"]._message

    viewer.add_image(np.zeros((30, 30), np.float32), name="flat")
    before = viewer.add_image(_volume(), name="tomo", metadata={"dewedge_role": "corrupted"})
    assert widget.before is before and widget.after is None
    assert not widget.columns[1].isVisibleTo(widget)
    after = viewer.add_image(_volume(1), name="tomo dewedged")
    assert widget.before is before
    assert widget.after is after
    assert widget.columns[1].isVisibleTo(widget)
    assert widget.after_picker.itemText(0) == "(none)"
    assert widget.before_picker.count() == 2  # the 2D layer is not listed
    qtbot.waitUntil(lambda: _ready(widget, 2), timeout=5000)

    viewer.layers.remove(after)
    assert widget.after is None
    assert not widget.columns[1].isVisibleTo(widget)
    viewer.layers.remove(before)
    assert widget.before is None
    assert widget.columns[0].layer is None


def test_views_follow_the_viewer_point_with_scale(viewer, qtbot):
    widget = _views(viewer)
    layer = viewer.add_image(_volume(), name="tomo", scale=(2.0, 1.0, 1.0), translate=(10.0, 0.0, 0.0))
    qtbot.waitUntil(lambda: _ready(widget, 1), timeout=5000)
    column = widget.columns[0]

    # World z = 10 + 2 * 7 is voxel 7.
    viewer.dims.set_point([0, 1, 2], [24.0, 30.0, 11.0])
    qtbot.waitUntil(lambda: column.index == (7, 30, 11), timeout=2000)
    xy = column.panels["xy"]
    assert xy.title == "XY z=7"
    np.testing.assert_array_equal(xy.display_data.shape, (48, 40))
    expected = widget.display_limits()[0]
    np.testing.assert_array_equal(
        xy.display_data, _to_u8(np.asarray(layer.data[7]), expected)
    )
    assert column.panels["xz"].title == "XZ y=30"
    assert column.panels["zy"].title == "YZ x=11"
    assert column.panels["xy"]._crosshair == (30, 11)
    assert "(7, 30, 11)" in column.position_label.text()

    # Physical proportions: XZ spans 24 * 2 = 48 units of z against 40 of x.
    rect = column.panels["xz"].image_rect()
    assert rect.height() / rect.width() == pytest.approx(48 / 40, rel=0.05)
    # The three views line up: XY and XZ share the x extent.
    assert column.panels["xy"].image_rect().width() == pytest.approx(rect.width(), abs=1.5)


def _to_u8(image, limits):
    from napari_dewedge.widgets.panels import to_uint8

    return to_uint8(image, limits)


def test_click_moves_the_viewer_point(viewer, qtbot):
    from qtpy.QtCore import QPoint, Qt

    widget = _views(viewer)
    layer = viewer.add_image(_volume(), name="tomo", scale=(2.0, 1.0, 1.0))
    qtbot.waitUntil(lambda: _ready(widget, 1), timeout=5000)
    qtbot.wait(10)
    column = widget.columns[0]
    xz = column.panels["xz"]
    target = xz.data_to_widget(5, 33)  # row z = 5, column x = 33
    qtbot.mouseClick(xz, Qt.MouseButton.LeftButton, pos=QPoint(round(target.x()), round(target.y())))
    index = tuple(int(v) for v in np.round(layer.world_to_data(viewer.dims.point)))
    assert index[0] == 5 and index[2] == 33
    qtbot.waitUntil(lambda: column.index == index, timeout=2000)

    xy = column.panels["xy"]
    target = xy.data_to_widget(40, 3)
    qtbot.mouseClick(xy, Qt.MouseButton.LeftButton, pos=QPoint(round(target.x()), round(target.y())))
    index = tuple(int(v) for v in np.round(layer.world_to_data(viewer.dims.point)))
    assert index == (5, 40, 3)
    assert viewer.dims.point[0] == pytest.approx(10.0)  # world z = 2 * 5


def test_before_and_after_contrast_matched(viewer, qtbot):
    widget = _views(viewer)
    vol = _volume()
    viewer.add_image(vol, name="tomo", metadata={"dewedge_role": "corrupted"})
    viewer.add_image(3.0 * vol + 10.0, name="tomo dewedged", metadata={"dewedge_role": "dewedged"})
    qtbot.waitUntil(lambda: _ready(widget, 2) and not widget.runner.busy(), timeout=5000)
    widget.update_views()
    before, after = widget.columns
    limits = widget.display_limits()
    assert limits[1] == pytest.approx((3 * limits[0][0] + 10, 3 * limits[0][1] + 10), rel=1e-4)
    for name in ("xy", "zy", "xz"):
        diff = np.abs(before.panels[name].display_data.astype(int) - after.panels[name].display_data.astype(int))
        assert diff.max() <= 1, name
    # Fourier slices: log power of after is before + 2 log10(3) (DC aside), shown alike.
    spec_limits = widget.spectrum_limits()
    assert spec_limits[1][0] - spec_limits[0][0] == pytest.approx(2 * np.log10(3.0), abs=1e-3)
    for plane in ("xy", "xz", "yz"):
        a = before.fourier[plane].display_data.astype(int)
        b = after.fourier[plane].display_data.astype(int)
        assert np.mean(np.abs(a - b) <= 1) > 0.99, plane


def test_wedge_edges_follow_the_shared_state(viewer, qtbot):
    from napari_dewedge.widgets.state import get_wedge_state

    widget = _views(viewer)
    viewer.add_image(_volume(), name="tomo")
    qtbot.waitUntil(lambda: _ready(widget, 1), timeout=5000)
    panel = widget.columns[0].fourier["xz"]
    first = panel.segments
    assert len(first) == 2
    get_wedge_state(viewer).set(tilt_min=-40, tilt_max=50)
    assert panel.segments != first
    widget.edges_check.setChecked(False)
    assert panel.segments == []


def test_a_long_layer_name_does_not_widen_its_column(viewer, qtbot):
    widget = _views(viewer)
    vol = _volume()
    viewer.add_image(vol, name="t", metadata={"dewedge_role": "corrupted"})
    viewer.add_image(vol, name="a rather long name of a dewedged tomogram layer " * 2,
                     metadata={"dewedge_role": "dewedged"})
    qtbot.waitUntil(lambda: _ready(widget, 2), timeout=5000)
    widget.update_views()
    before, after = widget.columns
    assert after.header.text().endswith("layer ")  # the whole name is there...
    # ...but it asks for no more room than the short one, so the columns share the width equally
    assert after.minimumSizeHint().width() == before.minimumSizeHint().width()
    assert after.sizeHint().width() == before.sizeHint().width()
    assert "long name" in after.header.toolTip()
