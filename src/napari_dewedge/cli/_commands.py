"""The subcommands fit, apply, run and estimate-tilt: arguments in, pipeline jobs, files out.

Inputs are a list of tomograms or a table (``--table``, see
:mod:`napari_dewedge.core.dataset`); one model is trained on all of them.
``apply`` and ``run`` write one result per input: to ``-o FILE`` for a single
input, or ``OUTDIR/<stem>_dewedged.mrc`` for several (or when ``-o`` is a
folder), skipping results already written so that a stopped batch resumes, and
taking every N-th input with ``--shard I/N``.

Under ``torchrun`` (:mod:`napari_dewedge.core.training.distributed`) ``fit``
trains on every process together and rank 0 alone prints and writes the model;
``apply`` gives each process its share of the inputs (of its ``--shard``, if
given); ``run`` does both: every process applies the same model to its share.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from ._common import (
    CliError,
    Progress,
    _check_output,
    _cpu_threads,
    _device,
    _device_name,
    _raise_failure,
    _read_input,
    _same_file,
    _say,
)

RESULT_SUFFIX = "_dewedged.mrc"


# --------------------------------------------------------------------------------------
# Inputs: a dataset of tomograms, each with its wedge
# --------------------------------------------------------------------------------------


def _entries(args: argparse.Namespace) -> list:
    """The tomograms named on the command line or in ``--table``."""
    from ..core.dataset import DatasetError, TomogramEntry, read_table

    inputs = list(getattr(args, "inputs", None) or [])
    table = getattr(args, "table", None)
    if table and inputs:
        raise CliError("give tomograms or --table, not both")
    if table:
        try:
            return read_table(table)
        except DatasetError as exc:
            raise CliError(str(exc)) from None
    if not inputs:
        raise CliError("no tomogram: name one or more input files, or --table FILE")
    halves = [getattr(args, "even", None), getattr(args, "odd", None)]
    mask = getattr(args, "mask", None)
    if (halves[0] is None) != (halves[1] is None):
        raise CliError("--even and --odd go together: give both half tomograms or neither")
    if len(inputs) > 1 and (halves[0] or mask):
        raise CliError("--even/--odd/--mask describe one tomogram; for several, list them in a --table")
    paths = [Path(p).expanduser() for p in inputs]
    extra = {k: Path(v).expanduser() for k, v in (("even", halves[0]), ("odd", halves[1]), ("mask", mask)) if v}
    for key, path in extra.items():
        if not path.is_file():
            raise CliError(f"--{key} {path}: file not found")
    return [TomogramEntry(p, **(extra if i == 0 else {})) for i, p in enumerate(paths)]


def _wedge(path: Path, args: argparse.Namespace, recorded: Any = None):
    """The wedge of a tomogram: its table row, ``--tilt-range``, ``--tlt`` or a tilt file beside it."""
    from ..core.dataset import DatasetError, find_tilt_file, read_tilt_angles
    from ..core.wedge import WedgeGeometry

    if recorded is not None:
        return recorded
    axis, soft = getattr(args, "tilt_axis", "y"), getattr(args, "soft_edge", 0.0)
    source = "--tilt-range"
    if getattr(args, "tilt_range", None):
        lo, hi = args.tilt_range
    else:
        tlt = Path(args.tlt).expanduser() if getattr(args, "tlt", None) else find_tilt_file(path)
        if tlt is None:
            raise CliError(f"{path}: no tilt range: give --tilt-range MIN MAX or --tlt FILE, or keep the "
                           f"tilt angles beside it as {path.with_suffix('.tlt').name}")
        try:
            lo, hi = read_tilt_angles(tlt)
        except DatasetError as exc:
            raise CliError(str(exc)) from None
        source = f"the tilt angles in {tlt}"
    try:
        geometry = WedgeGeometry(lo, hi, axis, soft)
    except ValueError as exc:
        raise CliError(f"{path}: {source}/--tilt-axis/--soft-edge: {exc}") from None
    if source != "--tilt-range":
        _say(f"{path.name}: tilt range {lo:g} to {hi:g} degrees from {source}", args)
    return geometry


def _read_part(path: Path, what: str, owner: Path, args: argparse.Namespace):
    if _same_file(path, owner) and what != "tomogram":
        raise CliError(f"{owner}: the {what} file is the tomogram itself")
    return _read_input(path, args)


def _dataset(args: argparse.Namespace, entries: list) -> list:
    """Read every tomogram (memory-mapped when large), its halves and mask, and check them together."""
    import numpy as np

    from ..core.dataset import DatasetError, TomogramData, check_voxel_sizes

    data = []
    for entry in entries:
        vol = _read_input(entry.tomogram, args)
        voxel = (float(entry.voxel_size),) * 3 if entry.voxel_size else tuple(vol.voxel_size)
        parts = {}
        for what in ("even", "odd", "mask"):
            path = getattr(entry, what)
            if path is not None:
                parts[what] = _read_part(path, what, entry.tomogram, args).data
        if "mask" in parts:
            parts["mask"] = np.asarray(parts["mask"]) > 0
        try:
            data.append(TomogramData(vol.data, _wedge(entry.tomogram, args, entry.geometry), str(entry.tomogram),
                                     voxel, **parts))
        except DatasetError as exc:
            raise CliError(str(exc)) from None
    try:
        check_voxel_sizes([(Path(d.name).name, d.voxel_size[2]) for d in data])
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    return data


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def _training_config(args: argparse.Namespace, device: Any):
    """The preset (default: quick, on every device, as in the widget) with its settings for ``device``
    (:func:`~napari_dewedge.core.training.machine_settings`) and the settings given as flags over them."""
    from ..core.training import TrainingConfig, config_overrides, machine_settings

    preset = args.preset or "quick"
    overrides = config_overrides(args)
    overrides["device"] = str(device)
    try:
        config = TrainingConfig.preset(preset, machine=device, **overrides)
    except (TypeError, ValueError) as exc:
        raise CliError(f"training settings: {exc}") from None
    how = "" if args.preset else " (the default; choose with --preset)"
    fitted = machine_settings(preset, device).get("unet", {}).keys() - overrides.get("unet", {}).keys()
    why = " (this CPU computes in float32 only: more steps beat more channels)" if "width" in fitted else ""
    _say(f"preset: {preset}{how}: {config.steps} steps, subtomograms {config.subtomo_size}^3, "
         f"U-Net width {config.unet.get('width')}{why} depth {config.unet.get('depth')}", args)
    return config


def _format_losses(losses: Any) -> str:
    keys = [k for k in ("energy", "fidelity", "consistency", "generator") if k in losses] or list(losses)[:3]
    return " ".join(f"{k}={float(losses[k]):.3g}" for k in keys)


def train(data: list, args: argparse.Namespace, device: Any, save_to: Path | None, inputs: list[Path]):
    """Train on the dataset; on Ctrl-C the model so far is saved (when ``save_to``) and re-raised.

    Under torchrun every process trains, in one process group for the call;
    only rank 0 saves (``save_to`` is ignored elsewhere).
    """
    from ..core.training import distributed

    env = distributed.launch_env()
    if env is not None and not env.is_main:
        save_to = None
    with distributed.session(device):
        return _train(data, args, device, save_to, inputs)


def _train(data: list, args: argparse.Namespace, device: Any, save_to: Path | None, inputs: list[Path]):
    from ..core import pipeline

    config = _training_config(args, device)
    checkpoint = Path(args.checkpoint).expanduser() if getattr(args, "checkpoint", None) else None
    if checkpoint is not None:
        if any(_same_file(checkpoint, src) for src in inputs):
            raise CliError(f"--checkpoint {checkpoint} is an input file; choose another name")
        if not checkpoint.parent.is_dir():
            raise CliError(f"--checkpoint {checkpoint}: folder {checkpoint.parent} does not exist")
    resume = checkpoint if checkpoint is not None and checkpoint.exists() else None
    if resume is not None:
        _say(f"resuming from checkpoint {resume}", args)
    spec = pipeline.TrainSpec(data[0].geometry, config, resume_from=resume, checkpoint_path=checkpoint)
    control = pipeline.JobControl()
    bar: Progress | None = None
    t0 = time.monotonic()
    model = None
    try:
        for event in pipeline.train(data, spec, control, cpu_threads=_cpu_threads(args)):
            if event.kind == "training":
                if bar is None:
                    wedges = sorted({str(d.geometry) for d in data})
                    _say(f"wedge: {'; '.join(wedges)}; device: {_device_name(device)}", args)
                    if event.event.message:
                        _say(f"  {event.event.message}", args)
                    bar = Progress(event.event.total, "training", "steps", quiet=args.quiet)
                losses = event.event.losses
                bar.set_total(event.event.total)
                bar.update_to(event.event.step, _format_losses(losses) if losses else "")
            elif event.kind == "failure":
                _raise_failure(event)
            elif event.kind == "result":
                model = event.model
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        partial = control.partial_model()
        if save_to is not None and partial is not None:
            partial.save(save_to)
            _say(f"interrupted at step {partial.steps_done}: the model trained so far is in {save_to}")
        raise
    finally:
        if bar is not None:
            bar.close()
    assert model is not None
    _say(f"trained {model.steps_done} steps in {time.monotonic() - t0:.1f} s", args)
    return model


def cmd_fit(args: argparse.Namespace) -> int:
    entries = _entries(args)
    inputs = [e.tomogram for e in entries]
    out = _check_output(args.output, what="model", inputs=inputs, overwrite=args.overwrite, mrc=False)
    device = _device(args)
    data = _dataset(args, entries)
    model = train(data, args, device, save_to=out, inputs=inputs)
    if _writes_model():
        model.save(out)
        _say(f"model written: {out}", args)
    return 0


def _writes_model() -> bool:
    """Whether this process writes the trained model: always, but under torchrun rank 0 only."""
    from ..core.training.distributed import launch_env

    env = launch_env()
    return env is None or env.is_main


# --------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------


def _load_model(path: str | os.PathLike):
    from ..core.model import ModelFileError, TrainedModel

    p = Path(path).expanduser()
    try:
        return TrainedModel.load(p, device="cpu")
    except ModelFileError as exc:
        raise CliError(str(exc)) from None


def _apply_one(model, volume, voxel_size, args: argparse.Namespace, device: Any, label: str):
    from ..core import pipeline

    views = {} if getattr(args, "views", None) is None else {"views": args.views}
    spec = pipeline.ApplySpec(samples=args.samples, device=device, seed=args.seed, noise_scale=args.apply_noise_scale,
                              tile=getattr(args, "tile", None), overlap=getattr(args, "overlap", None),
                              batch_size=getattr(args, "tile_batch", None), voxel_size=tuple(voxel_size),
                              calibrate=getattr(args, "calibrate", True), coarse=getattr(args, "coarse", True),
                              fuse=getattr(args, "fuse", True), second=getattr(args, "second", True),
                              solvent=getattr(args, "solvent", True), **views)
    bar: Progress | None = None
    result = None
    try:
        for event in pipeline.apply(model, volume, spec, cpu_threads=_cpu_threads(args)):
            if event.kind == "notice":
                _say(f"warning: {event.message}", args)
            elif event.kind == "applying":
                ev = event.event
                if bar is None:
                    bar = Progress(ev.total_tiles, label, "tiles", quiet=args.quiet)
                bar.update_to(ev.done_tiles, f"sample {ev.sample}/{ev.samples}" if ev.samples > 1 else "")
            elif event.kind == "failure":
                _raise_failure(event)
            elif event.kind == "result":
                result = event.result
    finally:
        if bar is not None:
            bar.close()
    assert result is not None
    _say(f"applied in {result.seconds:.1f} s on {_device_name(device)} (tiles {result.tile[0]}, "
         f"overlap {result.overlap[0]}, {result.samples} sample(s))", args)
    return result


def apply_to(model, vol, args: argparse.Namespace, device: Any, halves: tuple | None = None):
    """The result of ``model`` on a tomogram: on the tomogram, or the mean over its two halves."""
    if not halves:
        return _apply_one(model, vol.data, vol.voxel_size, args, device, "applying")
    import numpy as np

    results = [_apply_one(model, h, vol.voxel_size, args, device, f"applying ({name} half)")
               for name, h in zip(("even", "odd"), halves)]
    mean = ((results[0].mean.astype(np.float64) + results[1].mean) / 2).astype(np.float32)
    std = None
    if results[0].std is not None:
        std = np.sqrt((results[0].std.astype(np.float64) ** 2 + results[1].std ** 2) / 2).astype(np.float32)
    from dataclasses import replace

    return replace(results[0], mean=mean, std=std, seconds=results[0].seconds + results[1].seconds)


def _write_outputs(result, vol, src: Path, out: Path, std_out: Path | None, args: argparse.Namespace) -> None:
    from ..io import write_volume

    what = f"dewedged {src.name}"
    if result.samples > 1:
        what += f", mean of {result.samples} samples"
    common = dict(voxel_size=vol.voxel_size, origin=vol.origin, overwrite=args.overwrite, protected_paths=[src],
                  extra_labels=vol.labels)
    write_volume(out, result.mean, label=what, **common)
    _say(f"result written: {out}", args)
    if std_out is not None:
        if result.std is None:
            _say("note: --std-out needs --samples > 1 to measure a spread; not written", args)
        else:
            write_volume(std_out, result.std, label=f"per-voxel std of {result.samples} samples, {src.name}", **common)
            _say(f"per-voxel standard deviation written: {std_out}", args)


def _check_samples(args: argparse.Namespace) -> None:
    if args.samples < 1:
        raise CliError(f"--samples must be >= 1, got {args.samples}")
    if args.apply_noise_scale is not None and args.apply_noise_scale < 0:
        raise CliError(f"--apply-noise-scale must be >= 0, got {args.apply_noise_scale}")
    if args.std_out is not None and args.samples < 2:
        raise CliError("--std-out needs --samples 2 or more (the spread of several predictions)")


def _plan_outputs(args: argparse.Namespace, entries: list, also_protect: list[Path]) -> list[tuple]:
    """``(entry, out, std_out)`` for the entries this process writes, in order.

    One input and an MRC file name: that file. Several inputs, or a folder:
    ``OUTDIR/<stem>_dewedged.mrc`` each; results already there are skipped
    (unless ``--overwrite``) so that a stopped batch resumes. ``--shard I/N``
    keeps every N-th input starting at I; under torchrun each process then
    keeps every WORLD_SIZE-th of those, starting at its RANK.
    """
    from ..core.dataset import parse_shard, shard
    from ..core.training.distributed import launch_env
    from ..io import strip_mrc_suffixes

    out = Path(args.output).expanduser()
    folder = len(entries) > 1 or out.is_dir() or str(args.output).endswith(("/", os.sep)) or args.shard
    if getattr(args, "shard", None):
        try:
            first, count = parse_shard(args.shard)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        entries = shard(entries, first, count)
    env = launch_env()
    if env is not None:
        entries = shard(entries, env.rank, env.world_size)
    inputs = [e.tomogram for e in entries] + also_protect
    if not folder:
        target = _check_output(out, what="output", inputs=inputs, overwrite=args.overwrite, mrc=True)
        std = None
        if args.std_out:
            std = _check_output(args.std_out, what="--std-out", inputs=inputs, overwrite=args.overwrite,
                                mrc=True, others=[target])
        return [(entries[0], target, std)] if entries else []
    if args.std_out:
        raise CliError("--std-out names one file; with several inputs the spreads are written beside the results "
                       "as <stem>_std.mrc when --samples > 1")
    if out.exists() and not out.is_dir():
        raise CliError(f"output {out} is a file; with several inputs give a folder")
    if not out.parent.is_dir():
        raise CliError(f"output folder {out}: folder {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    plan, stems = [], {}
    for entry in entries:
        stem = strip_mrc_suffixes(entry.tomogram)[0]
        if stem in stems:
            raise CliError(f"{entry.tomogram} and {stems[stem]} would both write {stem}{RESULT_SUFFIX}; "
                           "rename one or run them separately")
        stems[stem] = entry.tomogram
        target = out / f"{stem}{RESULT_SUFFIX}"
        if any(_same_file(target, src) for src in inputs):
            raise CliError(f"output {target} is an input file; input files are never overwritten")
        if target.exists() and not args.overwrite:
            _say(f"skip {entry.tomogram.name}: {target} exists (use --overwrite to replace it)", args)
            continue
        std = out / f"{stem}_std.mrc" if args.samples > 1 else None
        plan.append((entry, target, std))
    return plan


def _apply_plan(model, plan: list, args: argparse.Namespace, device: Any) -> None:
    use_halves = getattr(args, "halves", False)
    for index, (entry, out, std_out) in enumerate(plan, start=1):
        if len(plan) > 1:
            _say(f"[{index}/{len(plan)}] {entry.tomogram}", args)
        vol = _read_input(entry.tomogram, args)
        halves = None
        if use_halves:
            if not entry.has_halves:
                raise CliError(f"{entry.tomogram}: --halves needs its even and odd halves (--even/--odd or the "
                               "table's columns)")
            halves = tuple(_read_part(getattr(entry, w), w, entry.tomogram, args).data for w in ("even", "odd"))
            for name, h in zip(("even", "odd"), halves):
                if tuple(h.shape) != tuple(vol.shape):
                    raise CliError(f"{getattr(entry, name)}: shape {tuple(h.shape)}, its tomogram "
                                   f"{tuple(vol.shape)}; the halves must match it")
        result = apply_to(model, vol, args, device, halves)
        _write_outputs(result, vol, entry.tomogram, out, std_out, args)


def cmd_apply(args: argparse.Namespace) -> int:
    _check_samples(args)
    entries = _entries(args)
    model_path = Path(args.model).expanduser()
    plan = _plan_outputs(args, entries, [model_path])
    if not plan:
        _say("nothing to do: every result is written already", args)
        return 0
    model = _load_model(model_path)
    device = _device(args)
    _say(f"model: {model.summary()}", args)
    _apply_plan(model, plan, args, device)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    _check_samples(args)
    entries = _entries(args)
    inputs = [e.tomogram for e in entries]
    plan = _plan_outputs(args, entries, [])
    model_out = None
    if args.save_model:
        model_out = _check_output(args.save_model, what="--save-model", inputs=inputs, overwrite=args.overwrite,
                                  mrc=False, others=[p for _, out, std in plan for p in (out, std) if p])
    device = _device(args)
    data = _dataset(args, entries)
    model = train(data, args, device, save_to=model_out, inputs=inputs)
    if model_out is not None and _writes_model():
        model.save(model_out)
        _say(f"model written: {model_out}", args)
    _apply_plan(model, plan, args, device)
    return 0


# --------------------------------------------------------------------------------------
# estimate-tilt
# --------------------------------------------------------------------------------------


def cmd_estimate_tilt(args: argparse.Namespace) -> int:
    from ..core.spectra import estimate_tilt_range

    for name in args.inputs:
        path = Path(name).expanduser()
        vol = _read_input(path, args)
        try:
            lo, hi = estimate_tilt_range(vol.data, args.tilt_axis)
        except ValueError as exc:
            raise CliError(f"{path}: {exc}") from None
        print(f"{path}\t{lo:.1f}\t{hi:.1f}\t(tilt axis {args.tilt_axis}; estimated from the data: "
              f"--tilt-range {lo:.0f} {hi:.0f})")
    return 0
