"""``napari-dewedge``: the dewedging engine from a shell.

Subcommands::

    napari-dewedge fit IN --tilt-range MIN MAX -o MODEL     train a model on a tomogram
    napari-dewedge apply IN --model MODEL -o OUT            apply a trained model
    napari-dewedge run IN --tilt-range MIN MAX -o OUT       fit, then apply
    napari-dewedge demo [--out DIR] [--headless]            try it on the bundled tomogram

Only the standard library is imported at start-up, so ``--help`` is instant;
numpy, torch and napari are imported by the subcommand that needs them.
Outputs are written atomically and never replace the input; an existing
output is replaced only with ``--overwrite``. Errors print one line naming the
file or argument and exit with status 2 (bad input) or 1 (failure while
computing); Ctrl-C exits with 130 (``fit`` saves the model trained so far).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

PROG = "napari-dewedge"
PRESET_NAMES = ("quick", "standard", "thorough")
_MRC_HINT = ".mrc, .rec or .map"


class CliError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


# --------------------------------------------------------------------------------------
# Output and progress
# --------------------------------------------------------------------------------------


def _say(message: str, args: argparse.Namespace | None = None) -> None:
    if args is not None and getattr(args, "quiet", False):
        return
    print(message, file=sys.stderr, flush=True)


class Progress:
    """A tqdm bar on a terminal, plain lines (every 10 % or 30 s) otherwise."""

    def __init__(self, total: int, desc: str, unit: str, *, quiet: bool = False) -> None:
        self.total = max(1, int(total))
        self.desc = desc
        self.unit = unit
        self.quiet = quiet
        self.n = 0
        self._bar = None
        self._last_line = (-1.0, 0.0)
        self._t0 = time.monotonic()
        if not quiet and sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=self.total, desc=desc, unit=unit, dynamic_ncols=True, leave=True)
            except ImportError:  # pragma: no cover - tqdm comes with napari
                self._bar = None

    def update_to(self, n: int, info: str = "") -> None:
        n = min(int(n), self.total)
        if self.quiet:
            self.n = n
            return
        if self._bar is not None:
            self._bar.update(n - self.n)
            if info:
                self._bar.set_postfix_str(info, refresh=False)
            self.n = n
            return
        if n == self.n and self._last_line[0] >= 0:
            return
        self.n = n
        fraction = n / self.total
        now = time.monotonic()
        last_fraction, last_time = self._last_line
        if fraction - last_fraction >= 0.1 or now - last_time >= 30 or n == self.total:
            self._last_line = (fraction, now)
            elapsed = now - self._t0
            extra = f" {info}" if info else ""
            print(f"{self.desc}: {n}/{self.total} {self.unit} ({100 * fraction:.0f} %, {elapsed:.0f} s){extra}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# --------------------------------------------------------------------------------------
# Checks of inputs and outputs
# --------------------------------------------------------------------------------------


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _check_output(path: str | os.PathLike, *, what: str, inputs: list[Path], overwrite: bool,
                  mrc: bool, others: list[Path] = ()) -> Path:
    """Validate an output path before any work is done."""
    p = Path(path).expanduser()
    if mrc:
        from .io import has_mrc_extension

        if not has_mrc_extension(p):
            raise CliError(f"{what} {p}: the file name must end in {_MRC_HINT}")
    if p.is_dir():
        raise CliError(f"{what} {p} is a folder; give a file name")
    if not p.parent.is_dir():
        raise CliError(f"{what} {p}: folder {p.parent} does not exist")
    for src in inputs:
        if _same_file(p, src):
            raise CliError(f"{what} {p} is the input file; input files are never overwritten, choose another name")
    for other in others:
        if other is not None and _same_file(p, other):
            raise CliError(f"{what} {p} is also used for another output of this command")
    if p.exists() and not overwrite:
        raise CliError(f"{what} {p} exists; use --overwrite to replace it")
    if not os.access(p.parent, os.W_OK):
        raise CliError(f"{what} {p}: folder {p.parent} is not writable")
    return p


def _read_input(path: str | os.PathLike, args: argparse.Namespace):
    """Read a tomogram (memory-mapped when large) and check that it is 3D."""
    from .io import MrcReadError, read_volume, require_3d

    p = Path(path).expanduser()
    try:
        vol = read_volume(p)
        require_3d(vol.data, p)
    except MrcReadError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if vol.data.dtype.kind not in "biuf":
        raise CliError(f"{p}: holds {vol.data.dtype} values; a tomogram of real numbers is needed")
    for note in vol.warnings:
        _say(f"note: {p.name}: {note}", args)
    nz, ny, nx = vol.data.shape
    vs = vol.voxel_size
    mapped = ", memory-mapped" if vol.memory_mapped else ""
    _say(f"input: {p} ({nz} x {ny} x {nx} voxels z y x, {vs[2]:g} x {vs[1]:g} x {vs[0]:g} Å voxels "
         f"(x y z), {vol.data.dtype}{mapped})", args)
    return vol


def _geometry(args: argparse.Namespace):
    from .core.wedge import WedgeGeometry

    lo, hi = args.tilt_range
    try:
        return WedgeGeometry(lo, hi, args.tilt_axis, args.soft_edge)
    except ValueError as exc:
        raise CliError(f"--tilt-range/--tilt-axis/--soft-edge: {exc}") from None


def _device(args: argparse.Namespace):
    from .core.device import resolve_device

    try:
        return resolve_device(args.device)
    except ValueError as exc:
        raise CliError(f"--device: {exc}") from None


def _cpu_threads(args: argparse.Namespace) -> int:
    """Torch CPU threads for the job: ``--threads``, or every core."""
    from .core.device import default_cpu_threads

    n = getattr(args, "threads", None)
    return int(n) if n is not None else default_cpu_threads()


def _raise_failure(failure) -> None:
    """A job's failure as the CLI reports it: bad input (exit 2) or a failure while computing."""
    error = failure.error
    if isinstance(error, (ValueError, TypeError)) and failure.stage != "training":
        raise CliError(str(error)) from None
    if error is not None:
        raise error
    raise RuntimeError(failure.message)


def _device_name(device: Any) -> str:
    if getattr(device, "type", None) == "cuda":
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


# --------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------


def _training_config(args: argparse.Namespace, device: Any):
    from .core.training import TrainingConfig

    preset = args.preset or ("quick" if device.type == "cpu" else "standard")
    overrides: dict[str, Any] = {"device": str(device)}
    for name in ("steps", "seed", "subtomo_size", "batch_size", "n_subtomos"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    unet = {k: v for k, v in (("width", args.width), ("depth", args.depth)) if v is not None}
    if unet:
        overrides["unet"] = unet
    if args.preview_every is not None:
        overrides["preview_every"] = args.preview_every
    try:
        config = TrainingConfig.preset(preset, **overrides)
    except (TypeError, ValueError) as exc:
        raise CliError(f"training settings: {exc}") from None
    how = "" if args.preset else f" (default for {device.type}; choose with --preset)"
    _say(f"preset: {preset}{how}: {config.steps} steps, subtomograms {config.subtomo_size}^3, "
         f"U-Net width {config.unet.get('width')} depth {config.unet.get('depth')}", args)
    return config


def _format_losses(losses: Any) -> str:
    keys = [k for k in ("energy", "fidelity", "consistency", "generator") if k in losses] or list(losses)[:3]
    return " ".join(f"{k}={float(losses[k]):.3g}" for k in keys)


def _train(vol, source: Path, geometry, args: argparse.Namespace, device: Any, save_to: Path | None):
    """Train on ``vol``; on Ctrl-C the model so far is saved (when ``save_to``) and re-raised."""
    from .core import pipeline

    config = _training_config(args, device)
    checkpoint = Path(args.checkpoint).expanduser() if getattr(args, "checkpoint", None) else None
    if checkpoint is not None:
        if _same_file(checkpoint, source):
            raise CliError(f"--checkpoint {checkpoint} is the input file; choose another name")
        if not checkpoint.parent.is_dir():
            raise CliError(f"--checkpoint {checkpoint}: folder {checkpoint.parent} does not exist")
    resume = checkpoint if checkpoint is not None and checkpoint.exists() else None
    if resume is not None:
        _say(f"resuming from checkpoint {resume}", args)
    spec = pipeline.TrainSpec(geometry, config, voxel_size=vol.voxel_size, source=str(source),
                              resume_from=resume, checkpoint_path=checkpoint)
    control = pipeline.JobControl()
    bar: Progress | None = None
    t0 = time.monotonic()
    model = None
    try:
        for event in pipeline.train(vol.data, spec, control, cpu_threads=_cpu_threads(args)):
            if event.kind == "training":
                if bar is None:
                    _say(f"wedge: {geometry}; device: {_device_name(device)}", args)
                    if event.event.message:
                        _say(f"  {event.event.message}", args)
                    bar = Progress(event.event.total, "training", "steps", quiet=args.quiet)
                losses = event.event.losses
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
    src = Path(args.input).expanduser()
    out = _check_output(args.output, what="model", inputs=[src], overwrite=args.overwrite, mrc=False)
    geometry = _geometry(args)
    device = _device(args)
    vol = _read_input(src, args)
    model = _train(vol, src, geometry, args, device, save_to=out)
    model.save(out)
    _say(f"model written: {out}", args)
    return 0


# --------------------------------------------------------------------------------------
# apply
# --------------------------------------------------------------------------------------


def _load_model(path: str | os.PathLike):
    from .core.model import ModelFileError, TrainedModel

    p = Path(path).expanduser()
    try:
        return TrainedModel.load(p, device="cpu")
    except ModelFileError as exc:
        raise CliError(str(exc)) from None


def _apply(model, vol, args: argparse.Namespace, device: Any):
    from .core import pipeline

    spec = pipeline.ApplySpec(samples=args.samples, device=device, seed=args.seed, noise_scale=args.noise_scale,
                              tile=getattr(args, "tile", None), overlap=getattr(args, "overlap", None),
                              batch_size=getattr(args, "tile_batch", None), voxel_size=tuple(vol.voxel_size))
    bar: Progress | None = None
    result = None
    try:
        for event in pipeline.apply(model, vol.data, spec, cpu_threads=_cpu_threads(args)):
            if event.kind == "notice":
                _say(f"warning: {event.message}", args)
            elif event.kind == "applying":
                ev = event.event
                if bar is None:
                    bar = Progress(ev.total_tiles, "applying", "tiles", quiet=args.quiet)
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


def _write_outputs(result, vol, model, src: Path, out: Path, std_out: Path | None, args: argparse.Namespace) -> None:
    from .io import write_volume

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
    if args.noise_scale is not None and args.noise_scale < 0:
        raise CliError(f"--noise-scale must be >= 0, got {args.noise_scale}")
    if args.std_out is not None and args.samples < 2:
        raise CliError("--std-out needs --samples 2 or more (the spread of several predictions)")


def cmd_apply(args: argparse.Namespace) -> int:
    src = Path(args.input).expanduser()
    _check_samples(args)
    model_path = Path(args.model).expanduser()
    out = _check_output(args.output, what="output", inputs=[src, model_path], overwrite=args.overwrite, mrc=True)
    std_out = None
    if args.std_out:
        std_out = _check_output(args.std_out, what="--std-out", inputs=[src, model_path],
                                overwrite=args.overwrite, mrc=True, others=[out])
    model = _load_model(model_path)
    device = _device(args)
    vol = _read_input(src, args)
    _say(f"model: {model.summary()}", args)
    result = _apply(model, vol, args, device)
    _write_outputs(result, vol, model, src, out, std_out, args)
    return 0


# --------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    src = Path(args.input).expanduser()
    _check_samples(args)
    out = _check_output(args.output, what="output", inputs=[src], overwrite=args.overwrite, mrc=True)
    std_out = None
    if args.std_out:
        std_out = _check_output(args.std_out, what="--std-out", inputs=[src], overwrite=args.overwrite,
                                mrc=True, others=[out])
    model_out = None
    if args.save_model:
        model_out = _check_output(args.save_model, what="--save-model", inputs=[src], overwrite=args.overwrite,
                                  mrc=False, others=[out, std_out])
    geometry = _geometry(args)
    device = _device(args)
    vol = _read_input(src, args)
    model = _train(vol, src, geometry, args, device, save_to=model_out)
    if model_out is not None:
        model.save(model_out)
        _say(f"model written: {model_out}", args)
    result = _apply(model, vol, args, device)
    _write_outputs(result, vol, model, src, out, std_out, args)
    return 0


# --------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------

#: Dock widgets opened by the interactive demo (display names in napari.yaml).
DEMO_WIDGETS = ("Missing-wedge inspector", "Orthogonal and Fourier views", "Dewedge", "Compare before and after")


def has_display() -> bool:
    """Whether a GUI can be shown: always on macOS/Windows, with DISPLAY or WAYLAND_DISPLAY elsewhere."""
    if os.environ.get("QT_QPA_PLATFORM", "").lower() in ("offscreen", "minimal"):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _demo_gui(args: argparse.Namespace) -> int:
    import napari
    import numpy as np

    from .io import read_volume
    from .sample_data import SAMPLE_TOMOGRAM

    vol = read_volume(SAMPLE_TOMOGRAM)
    viewer = napari.Viewer(title="napari-dewedge demo")
    viewer.add_image(np.asarray(vol.data), name=SAMPLE_TOMOGRAM.stem, scale=vol.scale, translate=vol.translate,
                     metadata=vol.layer_metadata())
    for name in DEMO_WIDGETS:
        try:
            viewer.window.add_plugin_dock_widget(PROG, name)
        except Exception as exc:  # a widget that cannot be built is skipped, the rest still open
            _say(f"note: dock widget {name!r} not available ({type(exc).__name__}: {exc})", args)
    _say("napari is open with the sample tomogram; close the window to end the demo", args)
    napari.run()
    return 0


def _demo_headless(args: argparse.Namespace) -> int:
    import numpy as np

    from .figures import save_comparison_figure
    from .io import read_volume, write_volume
    from .sample_data import SAMPLE_GEOMETRY, SAMPLE_TOMOGRAM

    out_dir = Path(args.out).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"--out {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = SAMPLE_TOMOGRAM.stem
    result_path = out_dir / f"{stem}_dewedged.mrc"
    model_path = out_dir / f"{stem}_model.pt"
    figure_path = out_dir / f"{stem}_before_after.png"
    for p in (result_path, model_path, figure_path):
        if p.exists() and not args.overwrite:
            raise CliError(f"{p} exists from an earlier demo; use --overwrite or another --out folder")

    _say(f"demo: dewedging the bundled tomogram {SAMPLE_TOMOGRAM.name} ({SAMPLE_GEOMETRY}); results go to {out_dir}",
         args)
    vol = read_volume(SAMPLE_TOMOGRAM)
    device = _device(args)
    if args.preset is None:
        args.preset = "quick"
    model = _train(vol, SAMPLE_TOMOGRAM, SAMPLE_GEOMETRY, args, device, save_to=model_path)
    model.save(model_path)
    result = _apply(model, vol, args, device)
    write_volume(result_path, result.mean, voxel_size=vol.voxel_size, origin=vol.origin,
                 label=f"dewedged {SAMPLE_TOMOGRAM.name} (demo)", overwrite=True,
                 protected_paths=[SAMPLE_TOMOGRAM])
    save_comparison_figure(
        figure_path,
        {"input": np.asarray(vol.data, dtype=np.float32), "dewedged": result.mean},
        voxel_size=vol.voxel_size,
        geometry=SAMPLE_GEOMETRY,
        title=f"{SAMPLE_TOMOGRAM.name}: before and after ({model.steps_done} training steps, {result.device})",
    )
    print(f"result:  {result_path}")
    print(f"model:   {model_path}")
    print(f"figure:  {figure_path}")
    print(f"open the result in napari with: napari {result_path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not args.headless and has_display():
        try:
            return _demo_gui(args)
        except ImportError as exc:
            _say(f"napari cannot start ({exc}); running the headless demo instead", args)
    elif not args.headless:
        _say("no display found (DISPLAY/WAYLAND_DISPLAY unset): running the headless demo", args)
    return _demo_headless(args)


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps "
                                                    "(default: auto)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (never the input)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final paths")
    p.add_argument("--threads", type=_positive_int, default=None, help=argparse.SUPPRESS)


def _add_training(p: argparse.ArgumentParser, required_wedge: bool = True) -> None:
    g = p.add_argument_group("missing wedge")
    g.add_argument("--tilt-range", nargs=2, type=float, metavar=("MIN", "MAX"), required=required_wedge,
                   help="tilt range of the acquisition in degrees, e.g. -60 60 (asymmetric ranges are fine)")
    g.add_argument("--tilt-axis", choices=("y", "x"), default="y", help="tilt axis in the volume (default: y)")
    g.add_argument("--soft-edge", type=float, default=0.0, metavar="DEG",
                   help="taper the wedge edge over DEG degrees (default: 0, a sharp edge)")
    t = p.add_argument_group("training")
    t.add_argument("--preset", choices=PRESET_NAMES, default=None,
                   help="quick (CPU, minutes), standard (GPU), thorough (GPU, longer); "
                        "default: quick on CPU, standard on a GPU")
    t.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: the preset's)")
    t.add_argument("--seed", type=int, default=None, help="random seed for reproducible runs")
    t.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="write resumable checkpoints to PATH; resume from it when it exists")
    # Advanced settings, for experiments and tests.
    for flag, dest in (("--subtomo-size", "subtomo_size"), ("--width", "width"), ("--depth", "depth"),
                       ("--batch-size", "batch_size"), ("--n-subtomos", "n_subtomos"),
                       ("--preview-every", "preview_every")):
        t.add_argument(flag, dest=dest, type=_positive_int, default=None, help=argparse.SUPPRESS)


def _add_inference(p: argparse.ArgumentParser, fit_too: bool = False) -> None:
    g = p.add_argument_group("application")
    g.add_argument("--samples", type=int, default=1, metavar="K",
                   help="average K predictions with different input noise (default: 1); K > 1 also gives "
                        "a per-voxel standard deviation")
    g.add_argument("--std-out", default=None, metavar="PATH", help="write the per-voxel standard deviation "
                                                                   "(needs --samples > 1) to this MRC file")
    g.add_argument("--noise-scale", type=float, default=None, help=argparse.SUPPRESS)
    g.add_argument("--tile", type=_positive_int, default=None, help=argparse.SUPPRESS)
    g.add_argument("--overlap", type=int, default=None, help=argparse.SUPPRESS)
    g.add_argument("--tile-batch", dest="tile_batch", type=_positive_int, default=None, help=argparse.SUPPRESS)
    if not fit_too:
        g.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Dewedge and denoise cryo-electron tomograms with a CryoGEN-style model trained on "
                    "the tomogram itself.",
        epilog="Examples:\n"
               f"  {PROG} demo\n"
               f"  {PROG} run tomo.mrc -o tomo_dewedged.mrc --tilt-range -60 60\n"
               f"  {PROG} fit tomo.mrc --tilt-range -54 62 --preset standard -o tomo_model.pt\n"
               f"  {PROG} apply tomo.mrc --model tomo_model.pt -o tomo_dewedged.mrc --samples 8 "
               "--std-out tomo_std.mrc\n"
               f"Run '{PROG} COMMAND --help' for the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("fit", help="train a model on a tomogram", description="Train a model on a tomogram "
                       "(MRC) and save it.")
    p.add_argument("input", metavar="IN", help="tomogram (.mrc, .rec, .map ...)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write (e.g. model.pt)")
    _add_training(p)
    _add_common(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("apply", help="apply a trained model to a tomogram",
                       description="Dewedge a tomogram with a trained model; writes a float32 MRC with the "
                                   "input's voxel size.")
    p.add_argument("input", metavar="IN", help="tomogram (.mrc, .rec, .map ...)")
    p.add_argument("--model", required=True, metavar="MODEL", help="model file written by 'fit' or 'run'")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=f"result MRC file ({_MRC_HINT})")
    _add_inference(p)
    _add_common(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("run", help="fit a model, then apply it", description="Train a model on a tomogram and "
                       "apply it to the same tomogram.")
    p.add_argument("input", metavar="IN", help="tomogram (.mrc, .rec, .map ...)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=f"result MRC file ({_MRC_HINT})")
    p.add_argument("--save-model", default=None, metavar="MODEL", help="also keep the trained model in this file")
    _add_training(p)
    _add_inference(p, fit_too=True)
    _add_common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="try napari-dewedge on the bundled microtubule tomogram",
                       description="Open napari with the bundled tomogram and the plugin's widgets; with "
                                   "--headless (or without a display) fit and apply a model on it and write "
                                   "the result, the model and before/after figures.")
    p.add_argument("--out", default="napari-dewedge-demo", metavar="DIR",
                   help="folder for the headless demo's files (default: ./napari-dewedge-demo)")
    p.add_argument("--headless", action="store_true", help="no GUI: run the whole pipeline and write files")
    p.add_argument("--preset", choices=PRESET_NAMES, default=None, help="training preset (default: quick)")
    p.add_argument("--steps", type=_positive_int, default=None, help="training steps (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    for flag, dest in (("--subtomo-size", "subtomo_size"), ("--width", "width"), ("--depth", "depth"),
                       ("--batch-size", "batch_size"), ("--n-subtomos", "n_subtomos"),
                       ("--preview-every", "preview_every"), ("--tile", "tile"), ("--tile-batch", "tile_batch")):
        p.add_argument(flag, dest=dest, type=_positive_int, default=None, help=argparse.SUPPRESS)
    _add_common(p)
    p.set_defaults(func=cmd_demo, samples=1, noise_scale=None, overlap=None, checkpoint=None)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-dewedge`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except FileExistsError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"{PROG} {args.command}: failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
