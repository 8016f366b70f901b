"""The simple-shape experiments of the CryoGEN paper (sec. 5.1, app. A.7), reproduced.

A hollow sphere (140^3 box, outer diameter 70, shell 4) and a triangular prism
(96^3 box, 20 thick, 10 random orientations) from ``core/phantoms.py`` are
corrupted with a +-60 degree missing wedge (and optionally noise), a model is
trained on each corrupted volume alone and applied to it. The script prints a
markdown table with the paper's Table 1 rows beside ours: PSNR and SSIM of the
corrupted and the corrected volume against the truth, the FSC-AUC inside the
missing wedge (``core/metrics.py``; 0 for the corrupted input by construction),
wall times and the device; it writes the table and before/after figures to
``--out``.

    python benchmarks/paper_shapes.py --preset standard                # the full run (GPU)
    python benchmarks/paper_shapes.py --quick-check                    # small shapes, minutes on a CPU
    python benchmarks/paper_shapes.py --quick-check --steps 5 --out /tmp/check

Metric conventions are those of ``core/metrics.py`` (PSNR peak = max of the
truth; 3D SSIM with a Gaussian window); the paper does not spell out its SSIM
variant, so compare the corrupted rows first to see how far the definitions
agree.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: CryoGEN, Table 1 (PSNR dB / SSIM), wedge +-60 degrees.
PAPER = {
    "sphere": {"corrupted": (21.12, 0.8113), "cryogen": (29.19, 0.9706)},
    "prism": {"corrupted": (14.82, 0.6931), "cryogen": (32.69, 0.9949)},
}


@dataclass
class Case:
    shape: str
    index: int
    psnr_in: float
    ssim_in: float
    psnr_out: float
    ssim_out: float
    auc_in: float
    auc_out: float
    train_s: float
    apply_s: float
    steps: int
    volumes: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def _shapes(quick: bool, orientations: int, seed: int) -> dict[str, list[np.ndarray]]:
    from napari_dewedge.core.phantoms import hollow_sphere, prism_orientations, triangular_prism

    if quick:
        sphere = hollow_sphere(64, 32, 3)
        prisms = [triangular_prism(48, 10, r, side=28) for r in prism_orientations(orientations, seed)]
    else:
        sphere = hollow_sphere(140, 70, 4)
        prisms = [triangular_prism(96, 20, r) for r in prism_orientations(orientations, seed)]
    return {"sphere": [sphere], "prism": prisms}


def _train(corrupted: np.ndarray, geometry, config, label: str, quiet: bool):
    from napari_dewedge.core import pipeline

    shown = [-1.0]

    def report(item) -> None:
        if quiet or item.kind != "training":
            return
        event = item.event
        if event.step == 0 and event.message:
            print(f"  [{label}] {event.message}", file=sys.stderr, flush=True)
        frac = event.step / max(1, event.total)
        if frac - shown[0] >= 0.1 or event.done:
            shown[0] = frac
            losses = " ".join(f"{k}={v:.3g}" for k, v in list(event.losses.items())[:4])
            print(f"  [{label}] step {event.step}/{event.total} eta {event.eta_s:.0f} s {losses}",
                  file=sys.stderr, flush=True)

    spec = pipeline.TrainSpec(geometry, config, voxel_size=(1.0, 1.0, 1.0), source=label)
    return pipeline.run_job(pipeline.train(corrupted, spec), on_event=report).model


def _apply(model, corrupted: np.ndarray, device) -> np.ndarray:
    from napari_dewedge.core import pipeline

    return pipeline.run_job(pipeline.apply(model, corrupted, pipeline.ApplySpec(device=device))).result.mean


def run_case(shape: str, index: int, truth: np.ndarray, args, device, geometry) -> Case:
    from napari_dewedge.core.metrics import missing_wedge_fsc_auc, psnr, ssim
    from napari_dewedge.core.phantoms import corrupt
    from napari_dewedge.core.training import TrainingConfig

    corrupted = corrupt(truth, geometry, snr=args.snr, seed=args.seed + index)
    overrides = {"device": str(device), "seed": args.seed + index}
    if args.steps is not None:
        overrides["steps"] = args.steps
    elif args.quick_check:
        overrides["steps"] = 50
    config = TrainingConfig.preset(args.preset, **overrides)
    label = f"{shape} {index + 1}" if shape == "prism" else shape
    t0 = time.perf_counter()
    model = _train(corrupted, geometry, config, label, args.quiet)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    corrected = _apply(model, corrupted, device)
    apply_s = time.perf_counter() - t0
    case = Case(
        shape=shape,
        index=index,
        psnr_in=psnr(corrupted, truth),
        ssim_in=ssim(corrupted, truth),
        psnr_out=psnr(corrected, truth),
        ssim_out=ssim(corrected, truth),
        auc_in=missing_wedge_fsc_auc(corrupted, truth, geometry),
        auc_out=missing_wedge_fsc_auc(corrected, truth, geometry),
        train_s=train_s,
        apply_s=apply_s,
        steps=model.steps_done,
    )
    if index == 0:
        case.volumes = {"corrupted": corrupted, "corrected": corrected, "truth": truth}
    print(f"  [{label}] PSNR {case.psnr_in:.2f} -> {case.psnr_out:.2f} dB, SSIM {case.ssim_in:.4f} -> "
          f"{case.ssim_out:.4f}, wedge FSC-AUC {case.auc_in:.3f} -> {case.auc_out:.3f}, "
          f"train {train_s:.0f} s, apply {apply_s:.1f} s", file=sys.stderr, flush=True)
    return case


def _mean_sd(values: list[float], digits: int) -> str:
    m = float(np.mean(values))
    if len(values) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {float(np.std(values)):.{digits}f}"


def table(cases: list[Case], device_name: str) -> str:
    head = ("| shape | paper corrupted PSNR / SSIM | paper CryoGEN PSNR / SSIM | ours corrupted PSNR / SSIM | "
            "ours corrected PSNR / SSIM | missing-wedge FSC-AUC corrupted → corrected | steps | train time (s) | "
            "apply time (s) | device |")
    rows = [head, "|" + "---|" * 10]
    for shape in ("sphere", "prism"):
        cs = [c for c in cases if c.shape == shape]
        if not cs:
            continue
        pc, pg = PAPER[shape]["corrupted"], PAPER[shape]["cryogen"]
        name = shape if len(cs) == 1 else f"{shape} (mean ± sd of {len(cs)} orientations)"
        rows.append(
            f"| {name} | {pc[0]:.2f} / {pc[1]:.4f} | {pg[0]:.2f} / {pg[1]:.4f} | "
            f"{_mean_sd([c.psnr_in for c in cs], 2)} / {_mean_sd([c.ssim_in for c in cs], 4)} | "
            f"{_mean_sd([c.psnr_out for c in cs], 2)} / {_mean_sd([c.ssim_out for c in cs], 4)} | "
            f"{_mean_sd([c.auc_in for c in cs], 3)} → {_mean_sd([c.auc_out for c in cs], 3)} | "
            f"{cs[0].steps} | {_mean_sd([c.train_s for c in cs], 0)} | {_mean_sd([c.apply_s for c in cs], 1)} | "
            f"{device_name} |"
        )
    return "\n".join(rows)


def _write_text(path: Path, text: str) -> None:
    from napari_dewedge.core.files import atomic_output

    with atomic_output(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("quick", "standard", "thorough"), default="standard")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks"), help="folder for the table and figures")
    parser.add_argument("--quick-check", action="store_true",
                        help="small shapes (64^3 sphere, 48^3 prism), one prism orientation, 50 steps")
    parser.add_argument("--steps", type=int, default=None, help="override the preset's training steps")
    parser.add_argument("--orientations", type=int, default=None, help="prism orientations (default 10; 1 with "
                                                                        "--quick-check)")
    parser.add_argument("--shapes", nargs="+", choices=("sphere", "prism"), default=("sphere", "prism"))
    parser.add_argument("--snr", type=float, default=None,
                        help="add white noise of this SNR after the wedge (default: none, wedge only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--quiet", action="store_true", help="no training progress lines")
    args = parser.parse_args(argv)

    import torch

    from napari_dewedge.core.device import configure_cpu_threads, resolve_device
    from napari_dewedge.core.wedge import WedgeGeometry
    from napari_dewedge.figures import save_comparison_figure

    device = resolve_device(args.device)
    if device.type == "cpu":
        configure_cpu_threads(args.threads)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    geometry = WedgeGeometry(-60, 60, "y")
    orientations = args.orientations if args.orientations is not None else (1 if args.quick_check else 10)
    shapes = _shapes(args.quick_check, orientations, args.seed)
    print(f"device: {device} ({device_name}); preset {args.preset}; wedge {geometry}; "
          f"{'quick check' if args.quick_check else 'paper sizes'}", file=sys.stderr)

    cases: list[Case] = []
    t_all = time.perf_counter()
    for shape in args.shapes:
        for i, truth in enumerate(shapes[shape]):
            case = run_case(shape, i, truth, args, device, geometry)
            if case.volumes:
                fig = out / f"paper_shapes_{shape}.png"
                save_comparison_figure(fig, case.volumes, geometry=geometry,
                                       title=f"{shape}: corrupted, corrected ({args.preset}, {case.steps} steps), truth")
                case.volumes = {}
                print(f"  figure: {fig}", file=sys.stderr)
            cases.append(case)
    total = time.perf_counter() - t_all

    md = table(cases, device_name)
    noise = "no noise" if args.snr is None else f"white noise at SNR {args.snr:g}"
    sizes = "quick-check sizes (sphere 64^3, prism 48^3)" if args.quick_check else "paper sizes (sphere 140^3, prism 96^3)"
    header = (
        f"# CryoGEN simple shapes: paper vs napari-dewedge\n\n"
        f"Wedge ±60° about y, {noise}; {sizes}; preset `{args.preset}`"
        f"{'' if args.steps is None else f' with {args.steps} steps'}; seed {args.seed}; "
        f"device {device_name}; torch {torch.__version__}, Python {platform.python_version()}; "
        f"total {total:.0f} s; {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}.\n\n"
        f"PSNR: peak = max of the truth; SSIM: 3D Gaussian window (core/metrics.py). FSC-AUC is measured "
        f"inside the missing wedge only (0 = nothing there, 1 = the truth).\n\n"
    )
    text = header + md + "\n"
    name = "paper_shapes_quick_check.md" if args.quick_check else f"paper_shapes_{args.preset}.md"
    _write_text(out / name, text)
    print(md)
    print(f"\ntable written: {out / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
