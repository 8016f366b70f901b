"""``napari-dewedge``: the dewedging engine from a shell.

Subcommands::

    napari-dewedge fit IN [IN ...] [--tilt-range MIN MAX] -o MODEL   train one model on tomograms
    napari-dewedge fit --table tomograms.csv -o MODEL                ... listed in a table
    napari-dewedge apply IN [IN ...] --model MODEL -o OUT            apply a trained model
    napari-dewedge run IN [IN ...] [--tilt-range MIN MAX] -o OUT     fit, then apply
    napari-dewedge estimate-tilt IN [IN ...]                         the tilt range seen in the data
    napari-dewedge demo [--out DIR] [--headless]                     try it on the bundled tomogram

Without ``--tilt-range`` the range comes from ``--tlt FILE`` or from an IMOD
``.tlt``/``.rawtlt`` file beside each tomogram. Only the standard library is
imported at start-up, so ``--help`` is instant; numpy, torch and napari are
imported by the subcommand that needs them. The jobs are
:mod:`napari_dewedge.core.pipeline`'s; this package parses, prints and writes.
Outputs are written atomically and never replace an input; an existing output
is replaced only with ``--overwrite`` (a batch skips the results it finds).
Errors print one line naming the file or argument and exit with status 2 (bad
input) or 1 (failure while computing); Ctrl-C exits with 130 (``fit`` saves the
model trained so far).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._commands import apply_to, cmd_apply, cmd_estimate_tilt, cmd_fit, cmd_run, train
from ._common import _MRC_HINT, PROG, CliError, _device, _say

__all__ = ["main", "build_parser", "CliError", "DEMO_WIDGETS", "has_display"]

PRESET_NAMES = ("quick", "standard", "thorough")


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

    from ..io import read_volume
    from ..sample_data import SAMPLE_TOMOGRAM

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

    from ..figures import save_comparison_figure
    from ..io import read_volume, write_volume
    from ..sample_data import SAMPLE_GEOMETRY, SAMPLE_TOMOGRAM

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
    from ..core.dataset import TomogramData

    data = [TomogramData(vol.data, SAMPLE_GEOMETRY, str(SAMPLE_TOMOGRAM), tuple(vol.voxel_size))]
    model = train(data, args, device, save_to=model_path, inputs=[SAMPLE_TOMOGRAM])
    model.save(model_path)
    result = apply_to(model, vol, args, device)
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


def _add_inputs(p: argparse.ArgumentParser, *, table: bool = True, halves: bool = True) -> None:
    p.add_argument("inputs", nargs="*", metavar="IN", help="tomograms (.mrc, .rec, .map ...)")
    if table:
        p.add_argument("--table", default=None, metavar="CSV",
                       help="tomograms listed in a table with the columns tomogram, tilt_min, tilt_max, "
                            "tilt_axis, even, odd, mask, voxel_size (paths relative to the table; an empty "
                            "cell means the default)")
    if halves:
        p.add_argument("--even", default=None, metavar="MRC", help="even half tomogram of a single IN")
        p.add_argument("--odd", default=None, metavar="MRC", help="odd half tomogram of a single IN")


def _add_wedge(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("missing wedge")
    g.add_argument("--tilt-range", nargs=2, type=float, metavar=("MIN", "MAX"), default=None,
                   help="tilt range of the acquisition in degrees, e.g. -60 60 (asymmetric ranges are fine); "
                        "default: from --tlt, or from a .tlt/.rawtlt file beside each tomogram")
    g.add_argument("--tlt", default=None, metavar="FILE", help="IMOD tilt-angle file (.tlt, .rawtlt) giving the range")
    g.add_argument("--tilt-axis", choices=("y", "x"), default="y", help="tilt axis in the volume (default: y)")
    g.add_argument("--soft-edge", type=float, default=0.0, metavar="DEG",
                   help="taper the wedge edge over DEG degrees (default: 0, a sharp edge)")


def _add_training(p: argparse.ArgumentParser) -> None:
    _add_wedge(p)
    p.add_argument("--mask", default=None, metavar="MRC",
                   help="draw subtomograms only where this mask (same shape as IN) is nonzero; default: the "
                        "automatic foreground mask")
    t = p.add_argument_group("training")
    t.add_argument("--preset", choices=PRESET_NAMES, default=None,
                   help="quick (the default, on a CPU or a GPU: the tuned and measured one; minutes on a "
                        "laptop CPU, under a minute on a GPU), standard (the CryoGEN paper's recipe on a larger "
                        "U-Net, for a GPU; not tuned), thorough (the same, longer); --steps trains any of "
                        "them longer")
    _add_settings(t, advanced=False)
    t.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="write resumable checkpoints to PATH; resume from it when it exists")
    _add_settings(p.add_argument_group("advanced training settings (default: the preset's)"), advanced=True)


def _add_settings(group, *, advanced: bool, names: tuple[str, ...] | None = None) -> None:
    """The training settings' flags, from TrainingConfig's schema (--device is common to every command)."""
    from ..core.training.config import add_arguments, settings_schema

    if names is None:
        names = tuple(s.name for s in settings_schema() if s.advanced == advanced and s.name != "device")
    add_arguments(group, names)


def _add_inference(p: argparse.ArgumentParser, fit_too: bool = False) -> None:
    g = p.add_argument_group("application")
    g.add_argument("--samples", type=int, default=1, metavar="K",
                   help="average K predictions with different input noise (default: 1); K > 1 also gives "
                        "a per-voxel standard deviation")
    g.add_argument("--std-out", default=None, metavar="PATH", help="write the per-voxel standard deviation "
                                                                   "(needs --samples > 1) to this MRC file")
    g.add_argument("--no-wedge-gain", dest="calibrate", action="store_false",
                   help="leave the amplitude of the wedge filling as the model made it; by default it is scaled "
                        "by the gains measured on the tomogram (the model on rotated copies, against the data "
                        "they move into the wedge) and weighted by how well the model's fillings of the "
                        "tomogram's two recorrupted halves agree")
    g.add_argument("--no-coarse-pass", dest="coarse", action="store_false",
                   help="skip the coarse pass, which applies the model to the tomogram binned to about one "
                        "subtomogram and takes the missing wedge's longest wavelengths from it")
    g.add_argument("--no-fusion", dest="fuse", action="store_false",
                   help="keep the model's prediction in the measured region; by default it is fused with the "
                        "tomogram's own data, shell by shell as their noise allows")
    g.add_argument("--no-second-pass", dest="second", action="store_false",
                   help="skip the second pass, which applies the model again to the measured region of its "
                        "fused result, fuses that with the data too and keeps it everywhere but in the missing "
                        "wedge's lowest frequencies (with the fusion, on noisy tomograms; twice the time)")
    g.add_argument("--no-solvent-flattening", dest="solvent", action="store_false",
                   help="skip the solvent flattening, which fills the missing wedge again so that the density "
                        "outside the object's support is flat (with the fusion, on noise-free volumes whose "
                        "object leaves most of the box empty; kept only where a flat solvent agrees with the "
                        "measured data, as for a phantom, not for a real particle's map)")
    g.add_argument("--views", type=_positive_int, default=None, metavar="N",
                   help="average the whole application over N mirror views of the tomogram that keep its "
                        "missing wedge in place (default: 4, the views every wedge keeps; 1: off; 8 for a "
                        "symmetric tilt range), at N times the time")
    g.add_argument("--halves", action="store_true",
                   help="apply the model to the even and odd halves and average the two results")
    g.add_argument("--shard", default=None, metavar="I/N",
                   help="take every N-th input starting at I (0-based), e.g. for a cluster job array")
    g.add_argument("--apply-noise-scale", dest="apply_noise_scale", type=float, default=None,
                   help=argparse.SUPPRESS)
    g.add_argument("--tile", type=_positive_int, default=None, help=argparse.SUPPRESS)
    g.add_argument("--overlap", type=int, default=None, help=argparse.SUPPRESS)
    g.add_argument("--tile-batch", dest="tile_batch", type=_positive_int, default=None, help=argparse.SUPPRESS)
    if not fit_too:
        g.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)


_OUT_HELP = (f"result MRC file ({_MRC_HINT}) for one input; a folder for several (each result is "
             "OUT/<stem>_dewedged.mrc, and results already there are skipped)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Dewedge and denoise cryo-electron tomograms with a CryoGEN-style model trained on "
                    "the tomograms themselves.",
        epilog="Examples:\n"
               f"  {PROG} demo\n"
               f"  {PROG} run tomo.mrc -o tomo_dewedged.mrc --tilt-range -60 60\n"
               f"  {PROG} fit TS_01.mrc TS_02.mrc TS_03.mrc --tilt-range -54 62 --steps 1600 -o model.pt\n"
               f"  {PROG} fit --table tomograms.csv -o model.pt\n"
               f"  {PROG} apply TS_*.mrc --model model.pt -o dewedged/ --shard 0/4\n"
               f"  {PROG} estimate-tilt TS_01.mrc\n"
               f"Run '{PROG} COMMAND --help' for the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("fit", help="train a model on one or more tomograms",
                       description="Train one model on tomograms (MRC) of one acquisition and save it.",
                       epilog="On several GPUs (or CPU processes): torchrun --standalone --nproc-per-node N -m "
                              "napari_dewedge fit ...; every step then trains on N x --batch-size subtomograms and "
                              "rank 0 writes the model and the checkpoints (see docs/cluster.md).")
    _add_inputs(p)
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write (e.g. model.pt)")
    _add_training(p)
    _add_common(p)
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("apply", help="apply a trained model to tomograms",
                       description="Dewedge tomograms with a trained model; writes float32 MRC files with the "
                                   "inputs' voxel sizes.")
    _add_inputs(p)
    p.add_argument("--model", required=True, metavar="MODEL", help="model file written by 'fit' or 'run'")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=_OUT_HELP)
    _add_inference(p)
    _add_common(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("run", help="fit a model, then apply it", description="Train a model on tomograms and "
                       "apply it to each of them.")
    _add_inputs(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT", help=_OUT_HELP)
    p.add_argument("--save-model", default=None, metavar="MODEL", help="also keep the trained model in this file")
    _add_training(p)
    _add_inference(p, fit_too=True)
    _add_common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("estimate-tilt", help="estimate the tilt range from the data",
                       description="Print the tilt range each tomogram's power spectrum shows (the measured "
                                   "region has power, the missing wedge has little).")
    p.add_argument("inputs", nargs="+", metavar="IN", help="tomograms (.mrc, .rec, .map ...)")
    p.add_argument("--tilt-axis", choices=("y", "x"), default="y", help="tilt axis in the volume (default: y)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the estimates")
    p.set_defaults(func=cmd_estimate_tilt)

    p = sub.add_parser("demo", help="try napari-dewedge on the bundled microtubule tomogram",
                       description="Open napari with the bundled tomogram and the plugin's widgets; with "
                                   "--headless (or without a display) fit and apply a model on it and write "
                                   "the result, the model and before/after figures.")
    p.add_argument("--out", default="napari-dewedge-demo", metavar="DIR",
                   help="folder for the headless demo's files (default: ./napari-dewedge-demo)")
    p.add_argument("--headless", action="store_true", help="no GUI: run the whole pipeline and write files")
    p.add_argument("--preset", choices=PRESET_NAMES, default=None, help="training preset (default: quick)")
    _add_settings(p, advanced=False, names=("steps", "seed", "subtomo_size", "n_subtomos", "batch_size",
                                            "unet_depth", "unet_width"))
    for flag, dest in (("--tile", "tile"), ("--tile-batch", "tile_batch")):
        p.add_argument(flag, dest=dest, type=_positive_int, default=None, help=argparse.SUPPRESS)
    _add_common(p)
    p.set_defaults(func=cmd_demo, samples=1, calibrate=True, coarse=True, fuse=True, second=True, solvent=True,
                   views=None, apply_noise_scale=None, overlap=None, checkpoint=None)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def _other_rank() -> bool:
    """Whether this is a process other than rank 0 of a torchrun launch."""
    from ..core.training.distributed import launch_env

    env = launch_env()
    return env is not None and not env.is_main


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-dewedge`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if _other_rank():
        args.quiet = True  # under torchrun, rank 0 alone prints (errors are printed by every rank)
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
