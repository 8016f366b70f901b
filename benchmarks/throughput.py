"""Training and inference speed against the machine's own limit, measured in one run.

Prints, for the chosen device:

- the dense matmul rates in float32 and, where mixed precision runs, in its
  reduced dtype (bfloat16 on GPUs and on CPUs with native bfloat16): the
  baselines, each figure against the rate of the dtype it ran in;
- a training step (the preset as the command line builds it for this
  machine): seconds, subtomograms per second and achieved FLOP/s as a
  percentage of that matmul rate; on a CPU, the same step with PyTorch's own
  batch norm, the baseline of the package's (``networks._BatchNorm3d``);
- inference of the tiles alone (one view, none of the passes): voxels per
  second and achieved FLOP/s as a percentage, and the peak GPU memory (on
  CUDA), after an untimed first call on one tile's block (its time reported:
  on a GPU the first call loads kernels and builds convolution plans).

FLOPs are counted from the networks' layers (forward hooks on every Conv3d,
ConvTranspose3d and Linear: 2 x multiply-adds), for one forward pass, then
scaled by the passes a training step makes: the generator runs twice with
gradients (prediction, consistency) and once without (the frozen copy's
target); the energy network four times with gradients (real, fake, the
gradient-penalty mixture, the generator's update). A pass with gradients
counts three forwards (forward plus a backward of about twice its cost).
The count is an estimate of useful work: it leaves out FFTs, rotations and
normalisation layers.

    python benchmarks/throughput.py --quick          # a few minutes on a 2-core CPU
    python benchmarks/throughput.py --device cuda    # a GPU: the standard preset, a 1000x1000x300 tomogram
    python benchmarks/throughput.py --no-amp         # mixed precision off
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def matmul_rate(device, dtype, n: int, seconds: float = 2.0) -> float:
    """Dense matmul FLOP/s of ``n x n`` matrices on ``device``."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    _sync(device)
    return 2.0 * n**3 * count / (time.perf_counter() - t0)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_flops(module, shape: tuple[int, ...], device) -> float:
    """FLOPs of one forward pass of ``module`` on a batch of ``shape`` (conv and linear layers)."""
    import torch
    from torch import nn

    total = [0.0]

    def hook(layer, inputs, output):
        if isinstance(layer, nn.Linear):
            total[0] += 2.0 * layer.in_features * layer.out_features * output.shape[0]
        elif isinstance(layer, (nn.Conv3d, nn.ConvTranspose3d)):
            k = float(np.prod(layer.kernel_size))
            per_out = 2.0 * k * layer.in_channels / layer.groups
            spatial = output if isinstance(layer, nn.Conv3d) else inputs[0]
            total[0] += per_out * layer.out_channels * float(np.prod(spatial.shape[2:])) * spatial.shape[0]

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Linear, nn.Conv3d, nn.ConvTranspose3d))]
    try:
        with torch.no_grad():
            module.to(device)(torch.zeros(shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return total[0]


def _trainer(preset: str, device, amp: bool, volume, geometry, steps: int, seed: int, native_batch_norm: bool):
    import torch

    from napari_dewedge.core import networks
    from napari_dewedge.core.training import Trainer, TrainingConfig

    # the preset as the command line and the widget build it for this machine (on a CPU without bfloat16: 8 wide)
    config = TrainingConfig.preset(preset, machine=device, device=str(device), amp=amp, steps=steps,
                                   preview_every=0, checkpoint_every_s=None, seed=seed)
    ours = networks._BatchNorm3d
    networks._BatchNorm3d = torch.nn.BatchNorm3d if native_batch_norm else ours
    try:
        return Trainer(volume, geometry, config)
    finally:
        networks._BatchNorm3d = ours


def training_step(preset: str, device, amp: bool, size: int, steps: int, seed: int = 0,
                  baseline: bool = False) -> list[dict]:
    """A training step's time (the median of ``steps``); with ``baseline``, also that of the same step
    with PyTorch's own batch norm in the generator instead of the package's (the baseline of its CPU
    path), the two trainers stepped in turn so that the machine's drift falls on both alike."""
    from napari_dewedge.core.phantoms import cell, corrupt
    from napari_dewedge.core.wedge import WedgeGeometry

    geometry = WedgeGeometry()
    volume = corrupt(cell(size, seed=seed), geometry, snr=1.0, seed=seed)
    warm = 3
    trainers = [_trainer(preset, device, amp, volume, geometry, warm + steps, seed, native)
                for native in ((False, True) if baseline else (False,))]
    runs = [iter(t.run()) for t in trainers]
    times: list[list[float]] = [[] for _ in trainers]
    alive = [True] * len(runs)
    turn = 0
    while any(alive):
        order = range(len(runs)) if turn % 2 == 0 else reversed(range(len(runs)))  # who goes first alternates
        turn += 1
        for i in order:
            if not alive[i]:
                continue
            t0 = time.perf_counter()
            event = next(runs[i], None)
            if event is None:
                alive[i] = False
            elif event.step > warm:
                times[i].append(time.perf_counter() - t0)
    out = []
    for trainer, spent in zip(trainers, times):
        per_step = float(np.median(spent))
        d, b = trainer.subtomo_size, trainer.config.batch_size
        g = forward_flops(trainer._g, (b, 1, d, d, d), device)
        e = forward_flops(trainer._e, (b, 1, d, d, d), device)
        flops = 3 * 2 * g + g + 3 * 4 * e
        out.append({"seconds_per_step": per_step, "subtomograms_per_s": b / per_step, "flops_per_step": flops,
                    "flop_rate": flops / per_step, "subtomo_size": d, "batch": b})
    return out


def inference(preset: str, device, amp: bool, shape: tuple[int, int, int]) -> dict:
    import torch

    from napari_dewedge.core import pipeline
    from napari_dewedge.core.model import TrainedModel, current_versions
    from napari_dewedge.core.networks import build_generator
    from napari_dewedge.core.training import TrainingConfig
    from napari_dewedge.core.wedge import WedgeGeometry

    config = TrainingConfig.preset(preset)
    generator = build_generator(config.unet)
    model = TrainedModel(generator=generator, network=generator.config(), geometry=WedgeGeometry(),
                         normalization={"mean": 0.0, "std": 1.0}, subtomo_size=config.subtomo_size,
                         training=config.to_dict(), history=[], voxel_size=None, versions=current_versions(),
                         steps_done=0, source="throughput")
    volume = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    from napari_dewedge.core.inference.tiles import default_tile, plan_tiles

    # the tiles alone, one view, no passes: the work the FLOP count below describes
    spec = pipeline.ApplySpec(device=device, views=1, calibrate=False, coarse=False, fuse=False)
    # Warm-up, untimed but reported: the first call on a device loads its kernels and
    # builds its convolution plans (seconds on a GPU); a block of one tile has the same shapes.
    t = default_tile(model)
    t0 = time.perf_counter()
    pipeline.run_job(pipeline.apply(model, np.ascontiguousarray(volume[:t, :t, :t]), spec))
    first = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    result = pipeline.run_job(pipeline.apply(model, volume, spec)).result
    seconds = time.perf_counter() - t0
    plan = plan_tiles(shape, result.tile[0], result.overlap[0], generator.padding_multiple, generator.min_size)
    per_tile = forward_flops(generator, (1, 1, *plan.tile), device)
    out = {"seconds": seconds, "first_call_s": first, "voxels_per_s": float(np.prod(shape)) / seconds,
           "flop_rate": per_tile * len(plan) / seconds, "tile": "x".join(map(str, plan.tile))}
    if device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="CPU sizes: a 64^3 scene, a 128x128x64 tomogram")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (tests)")
    parser.add_argument("--preset", default=None, help="training preset (default: quick on a CPU, standard on a GPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps")
    parser.add_argument("--no-amp", action="store_true", help="mixed precision off")
    parser.add_argument("--out", type=Path, default=None, help="append the results as markdown to this file")
    args = parser.parse_args(argv)

    import torch

    from napari_dewedge.core.device import amp_dtype, device_label, resolve_device

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    preset = args.preset or ("standard" if gpu else "quick")
    amp = not args.no_amp
    if args.smoke:
        size, steps, shape, n = 32, args.steps or 2, (32, 48, 48), 256
    elif args.quick or not gpu:
        size, steps, shape, n = 64, args.steps or 8, (64, 128, 128), 1024
    else:
        size, steps, shape, n = 128, args.steps or 20, (300, 1000, 1000), 8192
    low = amp_dtype(device) if amp else None  # training's reduced dtype; CPU inference stays float32
    low_name = str(low).removeprefix("torch.") if low is not None else None
    name = device_label(device)
    seconds = 0.5 if args.smoke else 2.0
    rates = {"float32": matmul_rate(device, torch.float32, n, seconds)}
    if low is not None:
        rates[low_name] = matmul_rate(device, low, n, seconds)
    train_dtype = low_name or "float32"
    infer_dtype = low_name if (low is not None and gpu) else "float32"
    def emit(*lines: str) -> None:
        """Print and append as each measurement ends (a run stopped by a time limit keeps the earlier ones)."""
        text = "\n".join(lines)
        print(text, flush=True)
        if args.out is not None:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")

    emit(f"### Throughput: {name}, preset {preset}, training in {train_dtype}, inference in {infer_dtype}", "",
         *(f"- dense matmul ({k}, {n}^2): {v / 1e9:.1f} GFLOP/s" for k, v in rates.items()))
    cpu = device.type == "cpu"  # there, PyTorch's own batch norm is the baseline of the package's (same run)
    train, *base = training_step(preset, device, amp, size, steps, baseline=cpu)
    emit(f"- training step ({train['batch']} x {train['subtomo_size']}^3): {train['seconds_per_step']:.3f} s, "
         f"{train['subtomograms_per_s']:.1f} subtomograms/s, {train['flop_rate'] / 1e9:.2f} GFLOP/s = "
         f"{100 * train['flop_rate'] / rates[train_dtype]:.1f} % of the {train_dtype} matmul rate")
    if base:
        emit(f"- the same step with PyTorch's own batch norm, the two stepped in turn: "
             f"{base[0]['seconds_per_step']:.3f} s (the package's takes "
             f"{train['seconds_per_step'] / base[0]['seconds_per_step']:.2f} times as long)")
    infer = inference(preset, device, amp, shape)
    emit(f"- inference ({shape[0]}x{shape[1]}x{shape[2]}, tiles {infer['tile']}): {infer['seconds']:.1f} s, "
         f"{infer['voxels_per_s'] / 1e6:.2f} Mvoxel/s, {infer['flop_rate'] / 1e9:.2f} GFLOP/s = "
         f"{100 * infer['flop_rate'] / rates[infer_dtype]:.1f} % of the {infer_dtype} matmul rate"
         + (f", peak GPU memory {infer['peak_gib']:.2f} GiB" if "peak_gib" in infer else "")
         + f" (after a first call on one tile's block, untimed above: {infer['first_call_s']:.1f} s)", "")
    print(f"torch {torch.__version__}, Python {platform.python_version()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
