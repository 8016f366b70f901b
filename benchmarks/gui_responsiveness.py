"""How responsive napari stays while the Dewedge widget trains and applies a model.

    xvfb-run -a python benchmarks/gui_responsiveness.py [--data microtubule|sphere]
        [--preset quick] [--steps 120] [--device auto] [--samples 1] [--json out.json]

(on a desktop, drop ``xvfb-run -a``). A ``QTimer`` ticks every 5 ms on the GUI
thread while the widget runs; every gap between two ticks beyond the 5 ms is
time the GUI thread could not react (handling the job's progress, redrawing
the loss plot and the preview, or waiting for the Python GIL held by the
worker). Meanwhile a simulated user changes the slice and zooms every 100 ms,
so that the canvas keeps repainting. Prints the largest gap and percentiles
for the training and the inference phases, with the device and the training
speed; the target is a largest gap under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

TARGET_MS = 100.0


def _percentiles(gaps_ms: list[float]) -> dict[str, float]:
    if not gaps_ms:
        return {"ticks": 0}
    arr = np.asarray(gaps_ms)
    return {
        "ticks": int(arr.size),
        "p50_ms": float(np.percentile(arr, 50)),
        "p95_ms": float(np.percentile(arr, 95)),
        "p99_ms": float(np.percentile(arr, 99)),
        "max_ms": float(arr.max()),
        "over_100ms": int((arr > 100).sum()),
    }


def _device_text(name: str) -> str:
    import torch

    from napari_dewedge.core.device import cpu_name, resolve_device
    from napari_dewedge.core.pipeline import gui_cpu_threads

    dev = resolve_device(name)
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    cpu = cpu_name()
    return f"{dev} ({cpu}, {gui_cpu_threads()} torch threads for the job, {os.cpu_count()} logical CPUs)"


def _add_data(viewer, which: str):
    if which == "microtubule":
        from napari_dewedge.sample_data import microtubule_sample

        (data, kwargs, _), = microtubule_sample()
        return viewer.add_image(np.asarray(data, dtype=np.float32), **kwargs)
    from napari_dewedge.core.phantoms import hollow_sphere
    from napari_dewedge.sample_data import phantom_layers

    layers = [viewer.add_image(d, **kw) for d, kw, _ in phantom_layers("hollow sphere", hollow_sphere(96, 60, 4))]
    return layers[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=("microtubule", "sphere"), default="microtubule")
    parser.add_argument("--preset", choices=("quick", "standard", "thorough"), default="quick")
    parser.add_argument("--steps", type=int, default=120, help="training steps (default 120)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--samples", type=int, default=1, help="K noisy predictions at inference")
    parser.add_argument("--interval-ms", type=int, default=5, help="tick interval of the probe timer")
    parser.add_argument("--no-user", action="store_true", help="do not simulate slicing and zooming")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--baseline-s", type=float, default=5.0,
                        help="seconds measured before the run, with the simulated user only (0: none)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QElapsedTimer, QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    from napari_dewedge.widgets.dewedge import DewedgeWidget

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    viewer.window._qt_window.resize(1400, 900)
    layer = _add_data(viewer, args.data)
    widget = DewedgeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Dewedge", area="right")
    widget.layer_picker.set_layer(layer)
    widget.preset_combo.setCurrentText(args.preset)
    widget.set_settings(steps=args.steps, device=args.device, samples=args.samples)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)

    gaps: dict[str, list[float]] = {"idle": [], "training": [], "inference": [], "result": []}
    handler_ms: list[float] = []
    running = [False]

    slow: list[tuple[float, str]] = []

    # Time the widget's own GUI-thread work (progress items, refresh ticks,
    # results) and the parts of it that may be slow.
    def timed(name, func, record=None):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return func(*a, **k)
            finally:
                ms = (time.perf_counter() - t) * 1e3
                if record is not None:
                    record.append(ms)
                if ms > 20:
                    slow.append((ms, name))

        return wrapper

    widget._post = timed("post", widget._post, handler_ms)
    for name in ("_show_preview", "_show_training", "_show_inference", "_add_results", "_finish"):
        setattr(widget, name, timed(name, getattr(widget, name)))
    widget.plot.redraw = timed("plot.redraw", widget.plot.redraw)
    widget.plot._show_image = timed("plot._show_image", widget.plot._show_image)
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def phase() -> str:
        if not running[0]:
            return "idle"
        if widget.last_outcome is not None or not widget.is_running:
            return "result"  # adding the result layers (once, at the end)
        if widget._latest_inference is not None or widget._progress_phase == "apply":
            return "inference"
        return "training"

    long_gaps: list[tuple[float, float, str, int]] = []
    t_start = [0.0]

    def tick() -> None:
        now = clock.nsecsElapsed()
        gap = (now - last[0]) / 1e6
        name = phase()
        gaps[name].append(gap)
        if gap > TARGET_MS and running[0]:
            event = widget._latest_training
            long_gaps.append((gap, time.perf_counter() - t_start[0], name, getattr(event, "step", -1)))
        last[0] = now

    probe = QTimer()
    probe.setInterval(args.interval_ms)
    probe.timeout.connect(tick)

    scene = getattr(viewer, "scene", None)
    camera = scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera
    step = [0]
    nz = int(layer.data.shape[0])

    def user() -> None:
        step[0] += 1
        viewer.dims.set_current_step(0, (step[0] * 3) % nz)
        camera.zoom *= 1.02 if (step[0] // 10) % 2 == 0 else 1 / 1.02

    user_timer = QTimer()
    user_timer.setInterval(100)
    user_timer.timeout.connect(user)

    last[0] = clock.nsecsElapsed()
    probe.start()
    if not args.no_user:
        user_timer.start()
    if args.baseline_s > 0:
        pause = QEventLoop()
        QTimer.singleShot(int(args.baseline_s * 1000), pause.quit)
        pause.exec()

    t0 = time.perf_counter()
    running[0] = True
    t_start[0] = t0
    handler_ms.clear()
    slow.clear()
    worker = widget.dewedge()
    if worker is None:
        print(f"could not start: {widget.status}", file=sys.stderr)
        return 2
    loop = QEventLoop()
    watch = QTimer()  # ends the loop once the widget is idle again (or at the timeout)
    watch.setInterval(50)
    watch.timeout.connect(
        lambda: loop.quit() if not widget.is_running or time.perf_counter() - t0 > args.timeout else None
    )
    watch.start()
    loop.exec()
    watch.stop()
    probe.stop()
    user_timer.stop()
    seconds = time.perf_counter() - t0
    if widget.is_running:
        widget.stop()
        print(f"timed out after {seconds:.0f} s", file=sys.stderr)

    model = widget.model
    training = (model.training if model is not None else {}) or {}
    report = {
        "device": _device_text(args.device),
        "data": f"{args.data} {tuple(layer.data.shape)}",
        "preset": args.preset,
        "steps": args.steps,
        "samples": args.samples,
        "seconds_total": round(seconds, 2),
        "training_seconds": training.get("seconds"),
        "steps_done": getattr(model, "steps_done", None),
        "status": widget.status,
        "failure": None if widget.last_failure is None else widget.last_failure.message,
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {QApplication.platformName()}",
        "phases": {name: _percentiles(values) for name, values in gaps.items() if values},
        "widget_gui_work": _percentiles(handler_ms),
        "long_gaps": [f"{g:.0f} ms at {t:.1f} s ({name}, step {k})" for g, t, name, k in long_gaps],
        "slow_widget_calls": [f"{name} {ms:.0f} ms" for ms, name in sorted(slow, reverse=True)[:12]],
    }
    worst = max(
        (p.get("max_ms", 0.0) for name, p in report["phases"].items() if name in ("training", "inference")),
        default=float("nan"),
    )
    report["max_gap_ms"] = worst
    report["target_met"] = bool(worst < TARGET_MS)

    print(f"device: {report['device']}")
    print(f"data: {report['data']}, preset {args.preset}, {args.steps} steps, K={args.samples}")
    if report["training_seconds"]:
        print(f"training: {report['training_seconds']:.1f} s ({report['steps_done']} steps), total {seconds:.1f} s")
    for name, p in report["phases"].items():
        if p.get("ticks"):
            print(
                f"{name:>9}: {p['ticks']:6d} ticks  gap p50 {p['p50_ms']:6.1f} ms  p95 {p['p95_ms']:6.1f} ms  "
                f"p99 {p['p99_ms']:6.1f} ms  max {p['max_ms']:6.1f} ms  >100 ms: {p['over_100ms']}"
            )
    work = report["widget_gui_work"]
    if work.get("ticks"):
        print(
            f"widget's own GUI work per call: p50 {work['p50_ms']:.1f} ms, p99 {work['p99_ms']:.1f} ms, "
            f"max {work['max_ms']:.1f} ms over {work['ticks']} calls"
        )
    if long_gaps:
        print("gaps over the target: " + ", ".join(report["long_gaps"][:12]))
    if report["slow_widget_calls"]:
        print("slowest widget calls (> 20 ms): " + ", ".join(report["slow_widget_calls"]))
    verdict = "met" if report["target_met"] else "NOT met"
    print(f"largest gap while running {worst:.1f} ms (target < {TARGET_MS:.0f} ms: {verdict})")
    if report["failure"]:
        print(f"run failed: {report['failure']}", file=sys.stderr)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    viewer.close()
    return 0 if report["failure"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
