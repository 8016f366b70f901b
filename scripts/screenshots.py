"""Regenerate the screenshots of the inspection widgets in docs/images/.

    python scripts/screenshots.py                      # widget PNGs, headless
    python scripts/screenshots.py --steps 0            # no training: no before/after shots
    xvfb-run -a python scripts/screenshots.py --full-window   # plus the whole napari window

Data: a hollow-sphere phantom (``--size`` 64^3 by default, outer diameter 5/8
of the box, shell 3, missing wedge -60..+60 degrees about y, SNR 2) with its ground truth, the same
phantom dewedged by a short self-supervised training (the ``quick`` preset;
``--steps`` to change, or ``--dewedged FILE.npy`` to reuse a result), and the
bundled real tomogram ``microtubule_13pf.mrc`` (10.52 Å voxels).

Widget shots need no display: Qt widgets are grabbed on the ``offscreen``
platform, the viewer being a plain ``ViewerModel``. ``--full-window`` builds a
real napari window and needs a screen with OpenGL (e.g. ``xvfb-run``); it is
skipped with a message when OpenGL is not available. PNGs are written
atomically (temporary file in the same folder, then renamed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

GEOMETRY_KW = {"tilt_min": -60.0, "tilt_max": 60.0, "tilt_axis": "y"}


def _save(widget_or_pixmap, path: Path) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(3):  # let layouts settle (heights that follow widths take a pass)
        QApplication.processEvents()
    pixmap = widget_or_pixmap.grab() if hasattr(widget_or_pixmap, "grab") else widget_or_pixmap
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        if not pixmap.save(tmp, "PNG"):
            raise OSError(f"could not write {tmp}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({pixmap.width()}x{pixmap.height()})")


def _wait(app, condition, timeout: float = 600.0, what: str = "workers") -> None:
    start = time.perf_counter()
    while not condition():
        app.processEvents()
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)
    for _ in range(5):
        app.processEvents()
        time.sleep(0.01)


def _phantoms(args) -> dict[str, np.ndarray]:
    from napari_dewedge.core.phantoms import corrupt, hollow_sphere
    from napari_dewedge.core.wedge import WedgeGeometry

    geometry = WedgeGeometry(**GEOMETRY_KW)
    clean = hollow_sphere(args.size, round(args.size * 5 / 8), 3)
    observed = corrupt(clean, geometry, snr=2.0, seed=0)
    out = {"truth": clean, "observed": observed}
    if args.dewedged:
        out["dewedged"] = np.load(args.dewedged).astype(np.float32)
        if out["dewedged"].shape != observed.shape:
            raise SystemExit(f"--dewedged {args.dewedged}: shape {out['dewedged'].shape}, expected {observed.shape}")
    elif args.steps is None or args.steps > 0:
        import torch

        from napari_dewedge.core import pipeline
        from napari_dewedge.core.training import TrainingConfig

        torch.manual_seed(0)
        config = TrainingConfig.preset("quick", **({} if args.steps is None else {"steps": args.steps}))
        print(f"training on the phantom ({config.steps} steps, CPU or GPU)\u2026", flush=True)
        t0 = time.perf_counter()
        def progress(item) -> None:
            event = getattr(item, "event", None)
            if item.kind == "training" and (event.done or event.step % 20 == 0):
                print(f"  step {event.step}/{event.total}, about {event.eta_s:.0f} s left", flush=True)

        job = pipeline.train_and_apply(observed, pipeline.TrainSpec(geometry, config))
        out["dewedged"] = pipeline.run_job(job, on_event=progress).result.mean.astype(np.float32)
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
        if args.save_dewedged:
            np.save(args.save_dewedged, out["dewedged"])
    return out


def _add_data(viewer, data: dict[str, np.ndarray], tomogram: bool = True) -> dict[str, object]:
    from napari_dewedge.core.wedge import WedgeGeometry
    from napari_dewedge.io.napari_hooks import read_layers

    wedge = WedgeGeometry(**GEOMETRY_KW).to_dict()
    layers = {}
    layers["truth"] = viewer.add_image(
        data["truth"], name="sphere (ground truth)", visible=False, metadata={"dewedge_role": "ground_truth", "wedge": wedge}
    )
    layers["observed"] = viewer.add_image(
        data["observed"], name="sphere", metadata={"dewedge_role": "corrupted", "wedge": wedge}
    )
    if "dewedged" in data:
        layers["dewedged"] = viewer.add_image(
            data["dewedged"], name="sphere dewedged", visible=False, metadata={"dewedge_role": "dewedged", "wedge": wedge}
        )
    if not tomogram:
        return layers
    tomo, kwargs, _kind = read_layers(str(ROOT / "src" / "napari_dewedge" / "data" / "microtubule_13pf.mrc"))[0]
    kwargs = {k: v for k, v in kwargs.items() if k in ("name", "scale", "translate", "metadata")}
    kwargs["visible"] = False
    layers["tomogram"] = viewer.add_image(tomo, **kwargs)
    return layers


def widget_shots(args, out_dir: Path) -> None:
    from napari.components import ViewerModel
    from napari.qt import get_qapp, get_stylesheet

    from napari_dewedge.widgets.compare import CompareWidget
    from napari_dewedge.widgets.inspector import WedgeInspector
    from napari_dewedge.widgets.orthoviews import OrthoViews
    from napari_dewedge.widgets.state import SPECTRA

    app = get_qapp()  # registers napari's theme resources
    app.setStyleSheet(get_stylesheet("dark"))  # the look of a dock in napari's default theme
    data = _phantoms(args)
    viewer = ViewerModel()
    layers = _add_data(viewer, data)

    # Inspector on the phantom, its recorded wedge drawn over the central planes.
    inspector = WedgeInspector(viewer)
    inspector.resize(520, 770)
    inspector.show()
    inspector.layer_picker.set_layer(layers["observed"])
    _wait(app, lambda: inspector.spectrum is not None, what="the spectrum")
    _save(inspector, out_dir / "inspector_phantom.png")

    # Inspector on the real tomogram: averaged spectrum, range estimated from the data.
    inspector.layer_picker.set_layer(layers["tomogram"])
    inspector.mode_combo.setCurrentIndex(inspector.mode_combo.findData("average"))
    _wait(app, lambda: inspector.spectrum is not None and inspector.spectrum.mode == "average", what="the spectrum")
    inspector.estimate()
    _wait(app, lambda: not inspector.runner.busy("estimate"), what="the estimate")
    _save(inspector, out_dir / "inspector_tomogram.png")
    # Back to the phantom's recorded wedge for the following views.
    inspector.layer_picker.set_layer(layers["observed"])
    inspector.metadata_button.click()
    inspector.close()

    # Orthogonal views of the real tomogram alone.
    views = OrthoViews(viewer)
    views.resize(560, 900)
    views.show()
    views.set_layers(layers["tomogram"], None)
    views.move_to(layers["tomogram"], (18, 120, 47))
    _wait(app, lambda: views.columns[0].spectrum is not None and not views.runner.busy(), what="spectra")
    views.update_views()
    app.processEvents()
    _save(views, out_dir / "orthoviews_tomogram.png")

    if "dewedged" in layers:
        views.resize(900, 820)
        views.mode_combo.setCurrentIndex(views.mode_combo.findData("central"))
        views.set_layers(layers["observed"], layers["dewedged"])
        n = data["observed"].shape[0]
        views.move_to(layers["observed"], (n // 2, n // 2, round(n * 0.3)))
        _wait(
            app,
            lambda: all(c.spectrum is not None for c in views.columns) and not views.runner.busy() and not SPECTRA._pending,
            what="spectra",
        )
        views.update_views()
        app.processEvents()
        _save(views, out_dir / "orthoviews_before_after.png")

        compare = CompareWidget(viewer)
        compare.resize(520, 900)
        compare.show()
        compare.compare(layers["observed"], layers["dewedged"], layers["truth"])
        _wait(app, lambda: compare.result is not None and not compare.busy, what="the comparison")
        app.processEvents()
        _save(compare, out_dir / "compare.png")
        compare.close()
    views.close()


def full_window_shot(args, out_dir: Path) -> None:
    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QApplication, QDockWidget

    from napari_dewedge.widgets import open_comparison
    from napari_dewedge.widgets.inspector import WedgeInspector

    try:
        viewer = napari.Viewer(show=True, title="napari-dewedge")
        from napari._vispy.utils.gl import get_gl_extensions

        if not get_gl_extensions():
            raise RuntimeError("no OpenGL extensions reported")
    except Exception as exc:  # noqa: BLE001 - no OpenGL: say so and skip
        print(f"full-window screenshot skipped: OpenGL is not available ({exc})")
        return
    app = QApplication.instance()
    data = _phantoms(args)
    layers = _add_data(viewer, data, tomogram=False)  # one unit (voxels) for the whole canvas
    viewer.window._qt_window.resize(1800, 1050)
    inspector = WedgeInspector(viewer)
    viewer.window.add_dock_widget(inspector, name="Missing-wedge inspector", area="right")
    inspector.layer_picker.set_layer(layers["observed"])
    front = inspector
    if "dewedged" in layers:
        compare, views = open_comparison(viewer, layers["observed"], layers["dewedged"], layers["truth"])
        _wait(app, lambda: compare.result is not None and not compare.busy, what="the comparison")
        front = views
    viewer.layers.selection.active = layers["observed"]
    viewer.dims.ndisplay = 2
    viewer.dims.set_point(0, data["observed"].shape[0] // 2)
    viewer.reset_view()
    _wait(app, lambda: inspector.spectrum is not None, what="the spectrum")
    dock = front.parent()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parent()
    if dock is not None:
        dock.raise_()
        viewer.window._qt_window.resizeDocks([dock], [820], Qt.Orientation.Horizontal)
    time.sleep(1.0)
    _wait(app, lambda: True)
    _save(viewer.window._qt_window.grab(), out_dir / "window.png")
    viewer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for the PNGs")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps of the dewedged phantom (default: the quick preset's; 0: none)")
    parser.add_argument("--size", type=int, default=64, help="edge of the phantom's box in voxels")
    parser.add_argument("--dewedged", type=Path, help="a dewedged phantom (.npy, --size^3) to use instead of training")
    parser.add_argument("--save-dewedged", type=Path, help="keep the dewedged phantom here (.npy) for later runs")
    parser.add_argument("--full-window", action="store_true", help="only the whole napari window (needs OpenGL)")
    args = parser.parse_args(argv)
    if args.full_window:
        full_window_shot(args, args.out)
    else:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        widget_shots(args, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
