"""Screenshots of the Dewedge widget for the user guide: mid-run and before/after.

    xvfb-run -a python scripts/dewedge_screenshots.py [OUT_DIR] [STEP_OF_MID_RUN_SHOT]

Trains the quick preset on the bundled microtubule tomogram (minutes on a CPU).
"""
import sys
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication, QDockWidget

from napari_dewedge.widgets.dewedge import DewedgeWidget

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "images")
RUN_AT = int(sys.argv[2]) if len(sys.argv) > 2 else 60
app = QApplication.instance() or QApplication([])

def pump(seconds):
    t = time.time()
    while time.time() - t < seconds:
        app.processEvents()
        time.sleep(0.01)

viewer = napari.Viewer(show=True, title="napari-dewedge")
viewer.window._qt_window.resize(1500, 1100)
viewer.open_sample("napari-dewedge", "microtubule")
layer = viewer.layers[0]
widget = DewedgeWidget(viewer)
viewer.window.add_dock_widget(widget, name="Dewedge", area="right")
widget.advanced.expand(animate=False)
pump(1)
viewer.dims.set_current_step(0, layer.data.shape[0] // 2)
viewer.reset_view()
widget.dewedge()
while widget.is_running and (widget._latest_training is None or widget._latest_training.step < RUN_AT):
    pump(0.2)
pump(1.0)
widget.plot.redraw(force=True, wait=True)
pump(0.3)
viewer.window.screenshot(str(OUT / "dewedge_running.png"), canvas_only=False)
print("running shot at step", widget._latest_training.step, flush=True)
widget.advanced.collapse(animate=False)
while widget.is_running:
    pump(0.5)
print("status:", widget.status, flush=True)
pump(1)
res = widget.compare()
compare, views = res
t = time.time()
while compare.busy and time.time() - t < 300:
    pump(0.5)
w = views
while w is not None and not isinstance(w, QDockWidget):
    w = w.parent()
if w is not None:
    w.raise_()
    from qtpy.QtCore import Qt
    viewer.window._qt_window.resizeDocks([w], [600], Qt.Orientation.Horizontal)
    pump(0.5)
viewer.grid.enabled = True
viewer.reset_view()
pump(2)
viewer.window.screenshot(str(OUT / "dewedge_before_after.png"), canvas_only=False)
print("done", compare.table_values() if hasattr(compare, "table_values") else "", flush=True)
viewer.close()
