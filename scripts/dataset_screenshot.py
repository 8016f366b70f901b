"""Screenshot of the Dewedge widget's Dataset box for the user guide (no training).

    xvfb-run -a python scripts/dataset_screenshot.py [OUT_DIR]

Opens both real microtubule tomograms of ``../shared/data/tomograms`` (or the
bundled one twice, if that folder is missing) and splits the first into even
and odd halves by noise, chooses them in the Dataset box and saves the widget.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from napari_dewedge.io.napari_hooks import read_layers  # noqa: E402
from napari_dewedge.widgets.dewedge import DewedgeWidget  # noqa: E402
from screenshots import _save  # noqa: E402 - the scripts folder's shared saver

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else ROOT / "docs" / "images"
SHARED = ROOT.parent / "shared" / "data" / "tomograms"


def main() -> int:
    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=True, title="napari-dewedge")
    files = sorted(SHARED.glob("microtubule_*.mrc"))
    for path in files:
        for data, kwargs, _ in read_layers(str(path)):
            viewer.add_image(data, **kwargs)
    first = viewer.layers[0]
    rng = np.random.default_rng(0)
    noise = rng.normal(0, float(np.std(first.data)) * 0.3, first.data.shape).astype(np.float32)
    even = viewer.add_image(np.asarray(first.data) + noise, name=f"{first.name} even", scale=first.scale)
    odd = viewer.add_image(np.asarray(first.data) - noise, name=f"{first.name} odd", scale=first.scale)
    widget = DewedgeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Dewedge", area="right")
    widget.layer_picker.set_layer(first)
    widget.dataset_box.expand(animate=False)
    if "--advanced" in sys.argv:
        widget.advanced.expand(animate=False)
    widget.set_dataset(more=[viewer.layers[1]] if len(files) > 1 else [], even=even, odd=odd)
    t = time.time()
    while time.time() - t < 2:
        app.processEvents()
        time.sleep(0.02)
    OUT.mkdir(parents=True, exist_ok=True)
    _save(widget, OUT / "dewedge_dataset.png")
    print(OUT / "dewedge_dataset.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
