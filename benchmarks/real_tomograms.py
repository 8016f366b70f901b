"""Before and after on the real microtubule tomograms: one figure each, and the time it took.

For each tomogram in ``../shared/data/tomograms/`` (crops of a real
GDP-microtubule tomogram, 10.52 Å voxels): estimate the tilt range from its
spectrum, train the chosen preset on it and apply the model, then draw the
central XY, XZ and YZ slices and their Fourier slices (log power, the measured
region's edges drawn) of the input and the result, one row each. There is no
ground truth: the figures are for the eye (less noise, filaments continuous in
XZ, no stripes or blotches, power restored inside the wedge), and the table
gives what can be measured without one: the power fraction inside the missing
wedge, before and after, the ring of the tube's mean cross-section
(``tube_section.py``: the XZ slices averaged along the microtubule; its closure,
the weakest sector of the ring against its mean, is well under 1 where the
wedge took the ring's top and bottom away), and the time. A second figure per
tomogram shows those mean cross-sections.

    python benchmarks/real_tomograms.py                  # quick preset, CPU: a few minutes a tomogram
    python benchmarks/real_tomograms.py --preset standard --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "benchmarks") not in sys.path:  # tube_section.py, beside this script
    sys.path.insert(0, str(REPO / "benchmarks"))
DATA = REPO.parent / "shared" / "data" / "tomograms"


def wedge_power_fraction(volume: np.ndarray, geometry) -> float:
    """Fraction of the (mean-removed) power that lies inside the missing wedge."""
    from napari_dewedge.core.wedge import wedge_mask

    spectrum = np.abs(np.fft.rfftn(volume - volume.mean())) ** 2
    mask = wedge_mask(volume.shape, geometry)
    return float((spectrum * (1.0 - mask)).sum() / spectrum.sum())


def tube_rings(volumes: dict[str, np.ndarray], reference: np.ndarray) -> dict[str, tuple[np.ndarray, object]]:
    """The mean cross-section along the tube of ``reference`` (the input) and its ring, for each
    volume (each scaled to unit spread first); empty when no tube is found."""
    from tube_section import ring_closure, tube_axis, tube_section

    try:
        axis = tube_axis(reference)
        out = {}
        for name, v in volumes.items():
            v = np.asarray(v, dtype=np.float32)
            section = tube_section((v - v.mean()) / max(float(v.std()), 1e-12), axis)
            out[name] = (section, ring_closure(section))
        return out
    except ValueError as exc:
        print(f"no tube's cross-section: {exc}", file=sys.stderr)
        return {}


def save_section_figure(path: Path, rings: dict[str, tuple[np.ndarray, object]], title: str) -> None:
    """The mean cross-sections side by side, each titled with its ring's closure and contrast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_dewedge.core.files import atomic_output

    fig, axes = plt.subplots(1, len(rings), figsize=(3.6 * len(rings), 2.4), squeeze=False)
    for ax, (name, (section, ring)) in zip(axes[0], rings.items()):
        lo, hi = np.percentile(section, [1, 99.5])
        ax.imshow(section, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{name}\nclosure {ring.closure:.2f}, contrast {ring.contrast:.1f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="*", type=Path, help="tomograms (default: the shared microtubule crops)")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks")
    args = parser.parse_args(argv)
    inputs = args.inputs or sorted(DATA.glob("*.mrc"))
    if not inputs:
        print(f"no tomograms given and none in {DATA}", file=sys.stderr)
        return 1

    import torch

    from napari_dewedge.core import pipeline
    from napari_dewedge.core.device import device_label, resolve_device
    from napari_dewedge.core.files import atomic_output
    from napari_dewedge.core.spectra import estimate_tilt_range
    from napari_dewedge.core.training import TrainingConfig
    from napari_dewedge.core.wedge import WedgeGeometry
    from napari_dewedge.figures import save_comparison_figure
    from napari_dewedge.io import read_volume

    device = resolve_device(args.device)
    device_name = device_label(device)
    overrides = {"device": str(device), "seed": args.seed}
    if args.steps is not None:
        overrides["steps"] = args.steps
    config = TrainingConfig.preset(args.preset, machine=device, **overrides)
    rows = []
    for path in inputs:
        loaded = read_volume(path)
        volume = np.asarray(loaded.data, dtype=np.float32)
        voxel = loaded.voxel_size
        lo, hi = estimate_tilt_range(volume)
        geometry = WedgeGeometry(lo, hi, "y")
        print(f"{path.name}: {volume.shape}, tilt range estimated {lo:.0f}..{hi:.0f}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        outcome = pipeline.run_job(pipeline.train_and_apply(volume, pipeline.TrainSpec(geometry, config)))
        seconds = time.perf_counter() - t0
        result = outcome.result.mean
        spec = pipeline.ApplySpec(device=device, calibrate=False, coarse=False, fuse=False, views=1)  # tiles alone
        plain = pipeline.run_job(pipeline.apply(outcome.model, volume, spec)).result.mean
        rings = tube_rings({"input": volume, "dewedged": result, "tiles alone": plain}, volume)
        closures = {name: ring.closure for name, (_, ring) in rings.items()}
        rows.append((path.name, volume.shape, (lo, hi), wedge_power_fraction(volume, geometry),
                     wedge_power_fraction(result, geometry), wedge_power_fraction(plain, geometry), closures, seconds))
        args.out.mkdir(parents=True, exist_ok=True)
        if rings:
            save_section_figure(args.out / f"real_{path.stem}_section.png", rings,
                                f"{path.name}: mean cross-section along the tube (XZ)")
        save_comparison_figure(args.out / f"real_{path.stem}.png",
                               {"input": volume, "dewedged": result, "tiles alone": plain},
                               voxel_size=voxel, geometry=geometry,
                               title=f"{path.name}: {args.preset} preset, {outcome.model.steps_done} steps, "
                                     f"{seconds:.0f} s, {device_name}")
    steps = f", {args.steps} steps" if args.steps is not None else ""
    lines = [f"# Real tomograms before and after\n\nPreset {args.preset}{steps}; device {device_name}; torch "
             f"{torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}.\n",
             "| tomogram | shape (z, y, x) | tilt range (estimated) | power inside the wedge, before → after | "
             "after, tiles alone (one view, no wedge gain, coarse pass or fusion) | "
             "ring closure of the mean cross-section, before → after (tiles alone) | time (s) |",
             "|---|---|---|---|---|---|---|"]
    for name, shape, (lo, hi), before, after, plain, closures, seconds in rows:
        ring = (f"{closures['input']:.2f} → {closures['dewedged']:.2f} ({closures['tiles alone']:.2f})"
                if closures else "no tube found")
        lines.append(f"| {name} | {'×'.join(map(str, shape))} | {lo:.0f}..{hi:.0f}° | {100 * before:.1f} % → "
                     f"{100 * after:.1f} % | {100 * plain:.1f} % | {ring} | {seconds:.0f} |")
    text = "\n".join(lines) + "\n"
    with atomic_output(args.out / f"real_tomograms_{args.preset}.md", "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
