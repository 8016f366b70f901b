"""Missing-wedge inspector dock widget, shared wedge state and the image panel."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from napari_dewedge.core.phantoms import corrupt, hollow_sphere  # noqa: E402
from napari_dewedge.core.wedge import WedgeGeometry  # noqa: E402


def _phantom(geometry: WedgeGeometry, size: int = 40, snr: float | None = 1.0, seed: int = 0) -> np.ndarray:
    return corrupt(hollow_sphere(size, int(size * 0.75), 3), geometry, snr=snr, seed=seed)


def _inspector(viewer):
    from napari_dewedge.widgets.inspector import WedgeInspector

    widget = WedgeInspector(viewer)
    viewer.window.add_dock_widget(widget, name="Missing-wedge inspector")
    return widget


def test_picker_follows_layers_and_ignores_non_volumes(viewer, qtbot):
    widget = _inspector(viewer)
    assert widget.layer is None
    assert widget.layer_picker.count() == 0
    assert "No 3D image layer" in widget.panels["xy"]._message

    viewer.add_image(np.zeros((24, 48), np.float32), name="flat")
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="colour", rgb=True)
    viewer.add_labels(np.zeros((8, 16, 16), np.int32), name="labels")
    assert widget.layer_picker.count() == 0

    vol = viewer.add_image(np.random.default_rng(0).random((24, 48, 40), dtype=np.float32), name="tomo")
    assert [widget.layer_picker.itemText(i) for i in range(widget.layer_picker.count())] == ["tomo"]
    assert widget.layer is vol
    qtbot.waitUntil(lambda: widget.spectrum is not None, timeout=5000)
    assert widget.spectrum.shape == (24, 48, 40)
    assert widget.panels["xz"].image_shape == (24, 40)

    vol.name = "tomo renamed"
    assert widget.layer_picker.itemText(0) == "tomo renamed"
    viewer.layers.remove(vol)
    assert widget.layer_picker.count() == 0
    assert widget.layer is None
    assert widget.spectrum is None


def test_slider_redraws_overlay_without_recomputing_spectrum(viewer, qtbot):
    from napari_dewedge.widgets.state import SPECTRA, get_wedge_state

    widget = _inspector(viewer)
    start = SPECTRA.computations
    viewer.add_image(_phantom(WedgeGeometry(-60, 60), size=32, snr=None), name="sphere")
    qtbot.waitUntil(lambda: widget.spectrum is not None, timeout=5000)
    assert SPECTRA.computations - start == 1

    state = get_wedge_state(viewer)
    assert widget.state is state
    fractions, edges, redraws = [], [], widget.redraws
    for lo, hi in [(-60, 60), (-40, 40), (-30, 65), (-70, 20), (-60, 60)]:
        widget.range_slider.setValue((lo, hi))
        assert (state.geometry.tilt_min, state.geometry.tilt_max) == (lo, hi)
        masks = widget.masks
        fractions.append(float(masks["xz"].mean()))
        edges.append(widget.panels["xz"].segments)
        assert masks["xy"].min() == 1.0  # kz = 0 is always measured for tilt axis y
    # Wider ranges measure more; the overlay follows every move.
    assert fractions[0] > fractions[1]
    assert fractions[2] > fractions[1]
    assert fractions[0] == pytest.approx(fractions[-1])
    assert edges[1] != edges[0] and edges[2] != edges[1]
    assert widget.redraws - redraws >= 4
    assert "measured" in widget.info_label.text()
    # Asymmetric range: the two edges are not mirror images.
    (a0, a1), (b0, b1) = edges[3]
    assert not np.allclose(np.subtract(a1, a0), np.subtract(b1, b0) * [1, -1])
    # The spectrum itself was never recomputed.
    assert SPECTRA.computations - start == 1

    # Tilt axis x moves the wedge to the YZ plane.
    widget.axis_combo.setCurrentText("x")
    assert state.geometry.tilt_axis == "x"
    assert widget.masks["yz"].mean() < 1.0
    assert widget.panels["xz"].segments == []
    # Soft edge gives fractional weights.
    widget.soft_edge_spin.setValue(10.0)
    assert state.geometry.soft_edge == 10.0
    soft = widget.masks["yz"]
    assert ((soft > 0) & (soft < 1)).any()
    assert SPECTRA.computations - start == 1


def test_new_layer_data_recomputes_the_spectrum(viewer, qtbot):
    from napari_dewedge.widgets.state import SPECTRA

    widget = _inspector(viewer)
    start = SPECTRA.computations
    layer = viewer.add_image(_phantom(WedgeGeometry(), size=24, snr=None), name="sphere")
    qtbot.waitUntil(lambda: widget.spectrum is not None, timeout=5000)
    layer.data = _phantom(WedgeGeometry(), size=32, snr=None)
    qtbot.waitUntil(lambda: widget.spectrum is not None and widget.spectrum.shape == (32, 32, 32), timeout=5000)
    assert SPECTRA.computations - start == 2
    assert widget.panels["xz"].image_shape == (32, 32)
    # Made 2D: no longer a volume, dropped from the list.
    layer.data = np.zeros((32, 32), np.float32)
    assert widget.layer is None and widget.layer_picker.count() == 0


def test_switching_mode_computes_once_per_mode(viewer, qtbot):
    from napari_dewedge.widgets.state import SPECTRA

    widget = _inspector(viewer)
    start = SPECTRA.computations
    viewer.add_image(_phantom(WedgeGeometry(), size=24, snr=None), name="sphere")
    qtbot.waitUntil(lambda: widget.spectrum is not None, timeout=5000)
    widget.mode_combo.setCurrentIndex(widget.mode_combo.findData("average"))
    qtbot.waitUntil(lambda: widget.spectrum is not None and widget.spectrum.mode == "average", timeout=5000)
    widget.mode_combo.setCurrentIndex(widget.mode_combo.findData("central"))
    assert widget.spectrum is not None and widget.spectrum.mode == "central"  # cached: immediate
    assert SPECTRA.computations - start == 2


def test_shared_state_moves_the_slider(viewer, qtbot):
    from napari_dewedge.widgets.state import get_wedge_state

    widget = _inspector(viewer)
    state = get_wedge_state(viewer)
    assert get_wedge_state(viewer) is state
    state.set(tilt_min=-52.5, tilt_max=47.0, origin="user")
    assert widget.range_slider.value() == pytest.approx((-52.5, 47.0))
    with pytest.raises(ValueError, match="tilt range"):
        state.set(tilt_min=70.0)
    assert state.geometry.tilt_min == -52.5


@pytest.mark.parametrize("truth", [WedgeGeometry(-48, 62), WedgeGeometry(-60, 55)])
def test_estimate_lands_near_the_true_range(viewer, qtbot, truth):
    widget = _inspector(viewer)
    viewer.add_image(_phantom(truth, size=40, snr=1.0, seed=3), name="corrupted sphere")
    worker = widget.estimate()
    assert worker is not None
    assert not widget.estimate_button.isEnabled()
    qtbot.waitUntil(lambda: widget.last_estimate is not None, timeout=10000)
    lo, hi = widget.range_slider.value()
    assert lo == pytest.approx(truth.tilt_min, abs=3.0)
    assert hi == pytest.approx(truth.tilt_max, abs=3.0)
    assert widget.state.origin == "estimated"
    qtbot.waitUntil(widget.estimate_button.isEnabled, timeout=5000)


def test_layer_metadata_wedge_is_offered(viewer, qtbot):
    widget = _inspector(viewer)
    recorded = WedgeGeometry(-55, 50, "y", 5.0)
    viewer.add_image(
        _phantom(recorded, size=24, snr=None),
        name="with metadata",
        metadata={"dewedge_role": "corrupted", "wedge": recorded.to_dict()},
    )
    assert widget.state.geometry == recorded
    assert widget.state.origin == "metadata"
    assert widget.metadata_button.isEnabled()
    widget.range_slider.setValue((-30.0, 30.0))
    assert widget.state.geometry.tilt_min == -30.0
    widget.metadata_button.click()
    assert widget.state.geometry == recorded


def test_layer_removed_while_computing(viewer, qtbot):
    from napari_dewedge.widgets.state import SPECTRA

    widget = _inspector(viewer)
    layer = viewer.add_image(_phantom(WedgeGeometry(), size=32, snr=0.5), name="short-lived")
    assert widget.estimate() is not None
    # Worker results reach the GUI thread through the event loop, so both the
    # spectrum and the estimate arrive after the layer is gone.
    viewer.layers.remove(layer)
    assert widget.layer is None
    qtbot.waitUntil(lambda: not widget.runner.busy() and widget.runner.running() == 0 and not SPECTRA._pending, timeout=10000)
    assert "removed" in widget.status_label.text()
    assert widget.spectrum is None
    assert widget.panels["xz"].image_shape is None
    assert widget.last_estimate is None


def test_image_panel_paints_and_maps_clicks(qtbot):
    from qtpy.QtCore import QPoint, Qt

    from napari_dewedge.widgets.panels import ImagePanel

    panel = ImagePanel("test", lut="magma")
    qtbot.addWidget(panel)
    panel.resize(300, 200)
    image = np.arange(20 * 40, dtype=np.int16).reshape(20, 40)
    panel.set_image(image, (0, 799), pixel_size=(2.0, 1.0))
    assert panel.display_data.dtype == np.uint8
    assert panel.display_data[0, 0] == 0 and panel.display_data[-1, -1] == 255
    rect = panel.image_rect()
    # Physical aspect: 20 rows of 2 units against 40 columns of 1 unit -> square.
    assert rect.width() == pytest.approx(rect.height(), abs=1.0)
    panel.set_crosshair((5, 7))
    panel.set_segments([((0, 0), (19, 39))])
    mask = np.ones((20, 40), np.float32)
    mask[:, :10] = 0
    panel.set_shading(mask)
    assert panel.shading_mask is mask
    picture = panel.grab().toImage()
    assert picture.width() == 300
    pt = panel.data_to_widget(12, 30)
    with qtbot.waitSignal(panel.clicked) as blocker:
        qtbot.mouseClick(panel, Qt.MouseButton.LeftButton, pos=QPoint(int(pt.x()), int(pt.y())))
    row, col = blocker.args
    assert row == pytest.approx(12, abs=0.6) and col == pytest.approx(30, abs=0.6)
    with pytest.raises(ValueError, match="2D"):
        panel.set_image(np.zeros((2, 3, 4)))
