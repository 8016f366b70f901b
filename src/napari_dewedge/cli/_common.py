"""What every subcommand shares: errors, messages, progress, checks of inputs and outputs."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

PROG = "napari-dewedge"
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

    def set_total(self, total: int) -> None:
        """A new end (a run with a time budget projects its steps as it goes)."""
        total = max(1, int(total))
        if total == self.total:
            return
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

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
        from ..io import has_mrc_extension

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
    from ..io import MrcReadError, read_volume, require_3d

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


def _device(args: argparse.Namespace):
    """``--device``; under torchrun a CUDA device is this process's ``cuda:LOCAL_RANK``."""
    from ..core.device import resolve_device
    from ..core.training.distributed import launch_device

    try:
        return launch_device(resolve_device(args.device))
    except ValueError as exc:
        raise CliError(f"--device: {exc}") from None


def _cpu_threads(args: argparse.Namespace) -> int:
    """Torch CPU threads for the job: ``--threads``, or every core (shared by torchrun's processes on a node)."""
    from ..core.device import default_cpu_threads
    from ..core.training.distributed import launch_env

    n = getattr(args, "threads", None)
    if n is not None:
        return int(n)
    env = launch_env()
    return max(1, default_cpu_threads() // (env.local_world_size if env else 1))


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


