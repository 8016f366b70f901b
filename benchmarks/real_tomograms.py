"""Before and after on the real microtubule tomograms: one figure each, and the time it took.

For each tomogram in ``../shared/data/tomograms/`` (crops of a real
GDP-microtubule tomogram, 10.52 Å voxels): estimate the tilt range from its
spectrum, train the chosen preset on it and apply the model, then draw the
central XY, XZ and YZ slices and their Fourier slices (log power, the measured
region's edges drawn) of the input and the result, one row each. There is no
ground truth: the figures are for the eye (less noise, filaments continuous in
XZ, no stripes or blotches, power restored inside the wedge), and the table
gives what can be measured without one: the power fraction inside the missing
wedge, before and after, and the time.

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
DATA = REPO.parent / "shared" / "data" / "tomograms"


def wedge_power_fraction(volume: np.ndarray, geometry) -> float:
    """Fraction of the (mean-removed) power that lies inside the missing wedge."""
    from napari_dewedge.core.wedge import wedge_mask

    spectrum = np.abs(np.fft.rfftn(volume - volume.mean())) ** 2
    mask = wedge_mask(volume.shape, geometry)
    return float((spectrum * (1.0 - mask)).sum() / spectrum.sum())


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
    config = TrainingConfig.preset(args.preset, **overrides)
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
        rows.append((path.name, volume.shape, (lo, hi), wedge_power_fraction(volume, geometry),
                     wedge_power_fraction(result, geometry), wedge_power_fraction(plain, geometry), seconds))
        args.out.mkdir(parents=True, exist_ok=True)
        save_comparison_figure(args.out / f"real_{path.stem}.png",
                               {"input": volume, "dewedged": result, "tiles alone": plain},
                               voxel_size=voxel, geometry=geometry,
                               title=f"{path.name}: {args.preset} preset, {outcome.model.steps_done} steps, "
                                     f"{seconds:.0f} s, {device_name}")
    lines = [f"# Real tomograms before and after\n\nPreset {args.preset}; device {device_name}; torch "
             f"{torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}.\n",
             "| tomogram | shape (z, y, x) | tilt range (estimated) | power inside the wedge, before → after | "
             "after, tiles alone (one view, no wedge gain, coarse pass or fusion) | time (s) |", "|---|---|---|---|---|---|"]
    for name, shape, (lo, hi), before, after, plain, seconds in rows:
        lines.append(f"| {name} | {'×'.join(map(str, shape))} | {lo:.0f}..{hi:.0f}° | {100 * before:.1f} % → "
                     f"{100 * after:.1f} % | {100 * plain:.1f} % | {seconds:.0f} |")
    text = "\n".join(lines) + "\n"
    with atomic_output(args.out / f"real_tomograms_{args.preset}.md", "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
