"""The built-in prior: a generator's starting weights, learnt once on simulated tomograms.

Trained from scratch, the generator spends most of a short run learning what
every tomogram shares: that white noise is not structure and that edges go
on across the missing wedge. The package ships, for the quick preset's
8-wide U-Net (its U-Net on CPUs without bfloat16), weights that already know
some of it: the same U-Net trained with the truth as its target on simulated
tomograms of two public single-particle maps (beta-galactosidase and GroEL,
randomly turned, scaled and crowded into 96^3 boxes, seen through tilt
ranges of 110-120 degrees with white noise at SNR 0.5-2;
``scripts/train_prior.py`` makes them). Such weights alone do
little for a cell (the particles are not its membranes and filaments); as
the starting point of the run on the tomogram itself they let the same
minutes go further (docs/benchmarks, "The built-in prior").

A prior is matched to a U-Net by its settings: a run whose U-Net has no
prior (the quick preset's 16-wide U-Net, the standard and thorough presets,
any other width or depth) starts from random weights, as without one.
``scripts/train_prior.py`` makes one for any width; a prior is shipped once a
run of the benchmark has measured a gain from it (two 16-wide ones, trained 1600
and 3600 steps, gained within a seed's spread and were not: docs/benchmarks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..model import ModelFileError, _state_dict_cpu, safe_torch_load

__all__ = ["PRIOR_DIR", "PRIOR_FORMAT", "prior_file", "load_prior", "prior_payload"]

#: Where the package keeps its priors (one file per U-Net); read at each call, so that a
#: benchmark's ``--prior-folder`` can point a process at an experiment's priors.
PRIOR_DIR = Path(__file__).resolve().parents[2] / "data" / "priors"
#: The ``format`` entry of a prior file.
PRIOR_FORMAT = "napari-dewedge prior"


def prior_file(network: dict[str, Any], folder: Path | None = None) -> Path:
    """The file name of the prior for a U-Net of these settings (whether or not it exists)."""
    folder = PRIOR_DIR if folder is None else folder
    res = "-residual" if network.get("residual") else ""
    return folder / f"unet-depth{network['depth']}-width{network['width']}-{network['norm']}{res}.pt"


def prior_payload(generator: torch.nn.Module, about: dict[str, Any]) -> dict[str, Any]:
    """What a prior file holds: the U-Net's settings, its weights and ``about`` (how they were learnt)."""
    return {"format": PRIOR_FORMAT, "network": generator.config(), "generator": _state_dict_cpu(generator),
            "about": dict(about)}


def load_prior(generator: torch.nn.Module, folder: Path | None = None) -> Path | None:
    """Load the built-in prior of ``generator``'s U-Net into it; the file, or None when there is none.

    A file of the U-Net's name made for other settings (channels) is no prior
    for it (None); a file that cannot be read, or whose weights do not fit,
    raises :class:`~napari_dewedge.core.model.ModelFileError` naming it.
    """
    network = generator.config()
    path = prior_file(network, folder)
    if not path.is_file():
        return None
    payload = safe_torch_load(path, "prior")
    if not isinstance(payload, dict) or payload.get("format") != PRIOR_FORMAT:
        raise ModelFileError(f"{path} is not a napari-dewedge prior file")
    if payload.get("network") != network:
        return None
    try:
        generator.load_state_dict(payload["generator"])
    except (KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: its weights do not fit the U-Net ({str(exc).splitlines()[0]})") from exc
    return path
