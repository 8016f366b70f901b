"""Restoration side by side: ours against a low-pass filter and IsoNet- and DeepDeWedge-style baselines.

Every method gets the same scene and the same wall-clock budget on the same
machine, in one run (the trainer's time budget: each trains for the budget at
its own pace, its schedules ending with the time); the table gives PSNR, SSIM,
the FSC-AUC inside the missing wedge (how much of it was restored), the FSC-AUC
over the measured region (how faithful the result is where the data are) and
the time used, and one figure per scene shows the central slices and Fourier
slices of every method.

Methods (the baselines are written from the papers' descriptions, with this
project's networks and training loop, so that only the objective differs):

- ``input``: the corrupted volume itself;
- ``low-pass``: a Gaussian blur whose sigma is chosen with the truth (an oracle
  no real user has: the best a blur can do);
- ``isonet-style``: IsoNet's objective, the consistency loss alone (rotate the
  data with the wedge filled by the frozen network, remove the wedge again, ask
  for the same) with random noise added to its input; no energy, no fidelity term. IsoNet raises that
  noise in steps over training; here it is drawn uniformly at each step;
- ``ddw-style``: DeepDeWedge's idea, trained on even/odd half tomograms: the
  network sees one half and is scored on the other through the measured region
  (a masked Noise2Noise loss), plus the consistency loss; no energy;
- ``ours``: the quick preset's objective (fidelity on recorrupted targets and
  consistency; the CryoGEN energy prior when ``--set energy_weight=0.1`` turns
  it on), on the full tomogram, applied with the wedge-gain calibration
  (``core/inference/calibration.py``), the coarse pass
  (``core/inference/coarse.py``) and the measured-region fusion
  (``core/inference/fusion.py``), averaged over four mirror views
  (``core/inference/views.py``), then the solvent flattening where it holds
  (``core/inference/solvent.py``: noise-free isolated objects whose data agree
  with a flat solvent; ``ours, no solvent flattening`` where it was kept); the
  same model without any of them (one view) is scored as ``ours, tiles alone``
  (no extra training);
- ``ours-halves``: the same on the even/odd halves (Noise2Noise fidelity);
- ``ours-standard``, ``ours-thorough``: ours with the GPU presets (larger
  subtomograms and network), run by default when CUDA is there.

Scenes: cell-like phantoms (``core/phantoms.cell``: a double membrane,
filaments, dense particles) at SNR 1 with a ±60° wedge and at SNR 0.5 with
−48..+64°; halves are two independent noise draws of twice the variance, so
that their mean has the scene's SNR. With ``--scenes sphere prism``, the
CryoGEN paper's shapes (``core/phantoms.paper_shapes``: a hollow sphere in
140^3, a triangular prism in 96^3 in 10 random orientations), a ±60° wedge
and no noise, as in the paper: every method trains one model on the prism's
10 orientations together, is applied to each, and its row is the mean over
them. Without noise both halves are the volume itself. ``--scenes betagal
groel``: a real particle alone in its box, the beta-galactosidase and GroEL
maps of ``../shared/data/maps`` (100^3), with a ±60° wedge and no noise.

    python benchmarks/versus.py --quick                 # 48^3, 40 s a method: a few minutes
    python benchmarks/versus.py --budget 300            # 96^3, 5 minutes a method (the issue's budget)
    python benchmarks/versus.py --scenes sphere prism   # the paper's shapes, 5 minutes a method
    python benchmarks/versus.py --scene-seed 1          # other cell scenes, drawn the same way
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METHODS = ("input", "low-pass", "isonet-style", "ddw-style", "ours", "ours-halves", "ours-standard", "ours-thorough")
#: The methods run by default on a CPU; on a GPU, all of them (ours with the GPU presets too).
DEFAULT_METHODS = METHODS[:6]
SCENES = {
    "cell-snr1-sym": dict(snr=1.0, tilt=(-60.0, 60.0), seed=11),
    "cell-snr0.5-asym": dict(snr=0.5, tilt=(-48.0, 64.0), seed=12),
    # the paper's protocol (sec. 5.1, app. A.7): its sizes, a +-60 degree wedge, no noise
    "sphere": dict(shape="sphere", tilt=(-60.0, 60.0)),
    "prism": dict(shape="prism", tilt=(-60.0, 60.0)),
    # a real particle alone in its box: a single-particle map (../shared/data/maps), a +-60 degree wedge, no noise
    "betagal": dict(map="betagal.mrc", tilt=(-60.0, 60.0)),
    "groel": dict(map="groel_emd1997.map", tilt=(-60.0, 60.0)),
}
CELL_SCENES = tuple(name for name, spec in SCENES.items() if "shape" not in spec and "map" not in spec)
MAPS = REPO.parent / "shared" / "data" / "maps"


@dataclass
class Scene:
    """The truths of a scene and their corrupted volumes: one for a cell, one per orientation for a shape (trained
    together, each applied and scored)."""

    truths: list[np.ndarray]
    full: list[np.ndarray]
    even: list[np.ndarray]
    odd: list[np.ndarray]
    geometry: object


@dataclass
class Row:
    scene: str
    method: str
    psnr: float
    ssim: float
    wedge_auc: float
    measured_auc: float
    seconds: float
    steps: int | str | None = None  # "done of planned" when the budget cut the schedule


def make_scene(name: str, size: int, small: bool = False, orientations: int = 10, scene_seed: int = 0) -> Scene:
    """A cell scene of ``size``^3 (halves: two noise draws of twice the variance, the full volume their mean), or
    one of the paper's shapes at its sizes (``small``: about half) with no noise, so that both halves are the
    volume itself. ``scene_seed`` other than 0 draws another cell and its noise (phantom seed
    ``seed + 100 * scene_seed``): a scene no setting was tuned on."""
    from napari_dewedge.core.phantoms import cell, corrupt, paper_shapes
    from napari_dewedge.core.wedge import WedgeGeometry

    spec = SCENES[name]
    geometry = WedgeGeometry(*spec["tilt"], "y")
    if "map" in spec:
        from napari_dewedge.io import read_volume

        truth = np.asarray(read_volume(MAPS / spec["map"]).data, dtype=np.float32)
        full = [corrupt(truth, geometry, snr=None).astype(np.float32)]
        return Scene([truth], full, full, full, geometry)
    if "shape" in spec:
        truths = paper_shapes(spec["shape"], orientations, small=small)
        full = [corrupt(t, geometry, snr=None).astype(np.float32) for t in truths]
        return Scene(truths, full, full, full, geometry)
    seed = spec["seed"] + 100 * scene_seed
    truth = cell(size, seed=seed)
    even = corrupt(truth, geometry, snr=spec["snr"] / 2, seed=seed * 10 + 1)
    odd = corrupt(truth, geometry, snr=spec["snr"] / 2, seed=seed * 10 + 2)
    full = ((even.astype(np.float64) + odd) / 2).astype(np.float32)
    return Scene([truth], [full], [even], [odd], geometry)


def low_pass_oracle(observed: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.ndimage import gaussian_filter

    from napari_dewedge.core.metrics import psnr

    best = max((psnr(gaussian_filter(observed, s), truth), s) for s in (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0))
    return gaussian_filter(observed, best[1]), best[1]


#: The baselines' objectives over the quick preset: no energy, none of ours' input or target
#: options, and the consistency target of IsoNet's recipe (data where measured, the frozen
#: prediction inside the wedge); IsoNet has no fidelity term, DeepDeWedge's is on the halves.
#: Both start from random weights, as their papers do (not from ours' built-in prior).
_BASE = dict(energy_weight=0.0, lambda_decay=False, fidelity_target="observation", filter_input=False,
             consistency_target="data", prior=False)
BASELINES = {"isonet-style": dict(_BASE, fidelity_weight=0.0), "ddw-style": dict(_BASE)}

#: Step cap of a run on a time budget (the budget ends it long before).
_BUDGET_STEPS = 1_000_000

#: Settings given with ``--set`` (applied to ``ours`` and ``ours-halves``: the screening of a lever).
OURS_OVERRIDES: dict = {}


def _parse_setting(text: str) -> tuple[str, object]:
    import ast

    key, _, value = text.partition("=")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _config(method: str, device, seed: int, steps: int | None, budget_s: float | None = None):
    """The quick preset (ours-standard and ours-thorough: theirs) with this method's settings; ``steps``, or a
    time budget with ``budget_s``."""
    from napari_dewedge.core.training import TrainingConfig

    overrides = {"device": str(device), "seed": seed}
    if method.startswith("ours"):
        overrides.update(OURS_OVERRIDES)
    if steps is not None:
        overrides["steps"] = steps
    elif budget_s is not None:
        overrides.update(steps=_BUDGET_STEPS, time_budget_s=max(1, int(round(budget_s))))
    overrides.update(BASELINES.get(method, {}))
    preset = method.removeprefix("ours-") if method in ("ours-standard", "ours-thorough") else "quick"
    return TrainingConfig.preset(preset, machine=device, **overrides)


def trained(method: str, scene: Scene, budget_s: float, device, seed: int, steps: int | None):
    """Train for the budget on every volume of the scene together and apply to each; returns (volumes, seconds:
    the training and every application, steps done: "done of planned" if cut, {label: volumes} of the same model
    applied otherwise: ours' tiles alone, and its results without the solvent flattening where it was kept).

    The baselines are applied as their papers do, tile by tile; ours with the
    wedge-gain calibration, the coarse pass, the fusion and the mirror views, and once more without
    them from the same model.
    Without ``steps`` the trainer gets the budget as its time budget: its
    schedules (warm-up, lambda, decay) follow the time spent and end with it,
    so every method trains for the same seconds at its own pace. With ``steps``
    every method runs that many, and the budget only stops a runaway."""
    from napari_dewedge.core import pipeline
    from napari_dewedge.core.dataset import TomogramData

    halves = method in ("ddw-style", "ours-halves")
    data = [TomogramData(full, scene.geometry, f"{method} {i + 1}", even=even if halves else None,
                         odd=odd if halves else None)
            for i, (full, even, odd) in enumerate(zip(scene.full, scene.even, scene.odd))]
    control = pipeline.JobControl()
    # on a time budget the trainer ends the run; the guard stops only a runaway (setup, previews)
    timer = threading.Timer(budget_s if steps is not None else 1.5 * budget_s + 60, control.request_stop)
    t0 = time.perf_counter()
    timer.start()
    try:
        spec = pipeline.TrainSpec(scene.geometry, _config(method, device, seed, steps, budget_s))
        outcome = pipeline.run_job(pipeline.train(data, spec, control))
    finally:
        timer.cancel()
    model = outcome.model
    ours = method.startswith("ours")
    # the solvent flattening, ours' last pass, is run below on copies: the same model's results without it
    passes = pipeline.ApplySpec(device=device, calibrate=ours, coarse=ours, fuse=ours, solvent=False,
                                **({} if ours else {"views": 1}))
    results = [pipeline.run_job(pipeline.apply(model, full, passes)).result.mean for full in scene.full]
    plain = {}  # the same model applied otherwise: label -> volumes
    if ours:
        from napari_dewedge.core.inference.passes import solvent_pass

        unflattened = [r.copy() for r in results]
        flats = [solvent_pass(model, full, r, scene.geometry) for full, r in zip(scene.full, results)]
        if any(f.kept for f in flats):
            plain["no solvent flattening"] = unflattened
    seconds = time.perf_counter() - t0
    if ours:
        tiles = pipeline.ApplySpec(device=device, calibrate=False, coarse=False, fuse=False, solvent=False, views=1)
        plain["tiles alone"] = [pipeline.run_job(pipeline.apply(model, full, tiles)).result.mean for full in scene.full]
    done = model.steps_done
    cut = model.training.get("stopped", False)
    return results, seconds, (f"{done} of {steps or 'the budget'}" if cut else done), plain


def score(scene: str, method: str, volumes, truths, geometry, seconds: float, steps=None) -> Row:
    """The metrics of each volume against its truth, averaged over the scene's volumes."""
    from napari_dewedge.core.metrics import measured_fsc_auc, missing_wedge_fsc_auc, psnr, ssim

    each = [(psnr(v, t), ssim(v, t), missing_wedge_fsc_auc(v, t, geometry), measured_fsc_auc(v, t, geometry))
            for v, t in zip(volumes, truths)]
    return Row(scene, method, *(float(np.mean(column)) for column in zip(*each)), seconds, steps)


def table(rows: list[Row]) -> str:
    out = ["| scene | method | PSNR (dB) | SSIM | missing-wedge FSC-AUC | measured-region FSC-AUC | time (s) | steps |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.scene} | {r.method} | {r.psnr:.2f} | {r.ssim:.3f} | {r.wedge_auc:.3f} | "
                   f"{r.measured_auc:.3f} | {r.seconds:.0f} | {'' if r.steps is None else r.steps} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="48^3 scenes, 40 s a method")
    parser.add_argument("--size", type=int, default=None, help="scene edge in voxels (default 96; 48 with --quick)")
    parser.add_argument("--budget", type=float, default=None, help="seconds of training a method (default 300)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the quick preset's)")
    parser.add_argument("--scenes", nargs="+", choices=tuple(SCENES), default=CELL_SCENES,
                        help="default: the cell scenes; sphere and prism are the paper's shapes at its sizes, "
                             "betagal and groel single-particle maps")
    parser.add_argument("--orientations", type=int, default=None,
                        help="orientations of the prism, trained together (default 10; 2 with --quick)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None,
                        help="default: all but ours-standard and ours-thorough, which join on a GPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scene-seed", type=int, default=0,
                        help="another draw of the cell scenes (their phantom and noise; 0: the usual ones)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a training setting for ours and ours-halves (a lever to screen); repeatable")
    parser.add_argument("--prior-folder", type=Path, default=None, metavar="DIR",
                        help="start ours from the priors in DIR (scripts/train_prior.py --out DIR), not the package's")
    parser.add_argument("--name", default=None, help="suffix of the table and figure files")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks", help="folder for table and figures")
    args = parser.parse_args(argv)
    size = args.size or (48 if args.quick else 96)
    budget = args.budget or (40.0 if args.quick else 300.0)
    OURS_OVERRIDES.update(dict(_parse_setting(s) for s in args.settings))
    suffix = f"_{args.name}" if args.name else ("_quick" if args.quick else "")
    prior_note = ""
    if args.prior_folder is not None:
        from _prior_folder import use_prior_folder

        prior_note = f"; {use_prior_folder(args.prior_folder)}"

    import torch

    from napari_dewedge.core.device import device_label, resolve_device
    from napari_dewedge.core.files import atomic_output
    from napari_dewedge.figures import save_comparison_figure

    device = resolve_device(args.device)
    device_name = device_label(device)
    methods = args.methods or (METHODS if device.type == "cuda" else DEFAULT_METHODS)
    # with --steps every trained method runs that many steps (the budget only stops a runaway)
    each = f"{args.steps} steps" if args.steps else f"{budget:.0f} s"
    rows: list[Row] = []
    sizes = []
    for name in args.scenes:
        scene = make_scene(name, size, small=args.quick, orientations=args.orientations or (2 if args.quick else 10),
                           scene_seed=args.scene_seed)
        label = name if len(scene.truths) == 1 else f"{name} (mean of {len(scene.truths)})"
        count = "" if len(scene.truths) == 1 else f" x{len(scene.truths)} trained together"
        noise = f"SNR {SCENES[name]['snr']:g}" if "snr" in SCENES[name] else "no noise"
        if "snr" in SCENES[name] and args.scene_seed:
            noise += f", scene seed {args.scene_seed}"
        sizes.append(f"{name} {scene.truths[0].shape[0]}^3{count} ({noise}, wedge {scene.geometry})")
        volumes = {}
        for method in methods:
            print(f"[{name}] {method} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            steps = seconds = None
            plain: dict = {}
            if method == "input":
                results = scene.full
            elif method == "low-pass":
                results, sigmas = zip(*(low_pass_oracle(f, t) for f, t in zip(scene.full, scene.truths)))
                method = f"low-pass (sigma {'-'.join(f'{s:g}' for s in sorted(set(sigmas)))})"
            else:
                results, seconds, steps, plain = trained(method, scene, budget, device, args.seed, args.steps)
            if seconds is None:
                seconds = time.perf_counter() - t0
            row = score(label, method, results, scene.truths, scene.geometry, seconds, steps)
            extra = [score(label, f"{method}, {how}", volumes_of, scene.truths, scene.geometry, seconds, steps)
                     for how, volumes_of in plain.items()]
            for r in (row, *extra):
                print(f"  {table([r]).splitlines()[-1]}", file=sys.stderr, flush=True)
            rows += [row, *extra]
            volumes[method] = results[0]
        args.out.mkdir(parents=True, exist_ok=True)
        first = "" if len(scene.truths) == 1 else f" (orientation 1 of {len(scene.truths)})"
        save_comparison_figure(args.out / f"versus_{name}{suffix}.png", volumes | {"truth": scene.truths[0]},
                               geometry=scene.geometry,
                               title=f"{name}{first}: every method, {each} each, {device_name}")
    md = (f"# Restoration side by side\n\nScenes: {'; '.join(sizes)}.\n\n"
          f"Training {each} a method (stop at {budget:.0f} s); device {device_name}; torch {torch.__version__}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}" + (f"; ours with {', '.join(args.settings)}" if args.settings else "")
          + prior_note
          + ". Time: the training and the application to every volume of the scene.\n\n" + table(rows) + "\n")
    path = args.out / f"versus{suffix}.md"
    with atomic_output(path, "w", encoding="utf-8") as fh:
        fh.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
