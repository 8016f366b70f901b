"""Resumable training checkpoints: weights, optimiser and scaler states, step, random state.

A checkpoint (format :data:`CHECKPOINT_FORMAT`) is a dict of plain data and
CPU tensors, written atomically and safe to load with ``weights_only=True``.
:func:`write_checkpoint` and :func:`load_checkpoint` work on a
:class:`~.trainer.Trainer`'s state; :func:`read_checkpoint` reads and checks
one file.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..model import MODEL_FORMAT_VERSION, ModelFileError, atomic_torch_save, current_versions, safe_torch_load
from ..wedge import WedgeGeometry
from .noise import NoiseEstimate

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FORMAT = "napari-dewedge-checkpoint"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (``ModelFileError`` unless it is one)."""
    ck = safe_torch_load(path, "checkpoint")
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path} is not a napari-dewedge training checkpoint")
    return ck


def write_checkpoint(trainer: "Trainer") -> None:
    """Write ``trainer``'s checkpoint to its ``checkpoint_path`` (atomically; nothing without one)."""
    if trainer.checkpoint_path is None or trainer._opt_g is None or trainer._opt_e is None:
        return
    with trainer._lock:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "step": int(trainer._step),
            "seed": int(trainer.seed),
            "config": trainer.config.to_dict(),
            "network": trainer._g.config(),
            "energy_network": trainer._e.config(),
            "generator": {k: v.detach().cpu().clone() for k, v in trainer._g.state_dict().items()},
            "generator_frozen": {k: v.detach().cpu().clone() for k, v in trainer._g_frozen.state_dict().items()},
            "energy": {k: v.detach().cpu().clone() for k, v in trainer._e.state_dict().items()},
            "opt_generator": _to_cpu(trainer._opt_g.state_dict()),
            "opt_energy": _to_cpu(trainer._opt_e.state_dict()),
            "scaler_generator": trainer._scaler_g.state_dict(),
            "scaler_energy": trainer._scaler_e.state_dict(),
            "rng": trainer._rng.bit_generator.state,
            "torch_rng": trainer._tgen.get_state().cpu(),
            "device_type": trainer.device.type,
            "history": copy.deepcopy(trainer._history),
            "noise": trainer._noise.to_dict() if trainer._noise is not None else None,
            "normalization": dict(trainer.normalization),
            "volume_shape": list(trainer.volume_shape),
            "subtomo_size": int(trainer.subtomo_size),
            "geometry": trainer.geometry.to_dict(),
            "seconds": float(trainer._elapsed),
            "versions": current_versions(),
        }
        atomic_torch_save(payload, trainer.checkpoint_path)


def load_checkpoint(trainer: "Trainer", path: Path) -> None:
    """Restore ``trainer`` (a fresh trainer of the same run) from the checkpoint at ``path``."""
    ck = read_checkpoint(path)

    def mismatch(what: str, theirs: Any, ours: Any) -> ModelFileError:
        return ModelFileError(f"checkpoint {path} was written for {what} {theirs}, this run has {ours}")

    if list(ck.get("volume_shape", [])) != list(trainer.volume_shape):
        raise mismatch("a tomogram of shape", tuple(ck.get("volume_shape", [])), trainer.volume_shape)
    norm = ck.get("normalization", {})
    if not (
        math.isclose(float(norm.get("mean", math.nan)), trainer.normalization["mean"], rel_tol=1e-5, abs_tol=1e-6 * trainer.normalization["std"])
        and math.isclose(float(norm.get("std", math.nan)), trainer.normalization["std"], rel_tol=1e-5)
    ):
        raise ModelFileError(f"checkpoint {path} was written for a different tomogram (its mean/std differ)")
    if WedgeGeometry.from_dict(ck.get("geometry", {})) != trainer.geometry:
        raise mismatch("the wedge", WedgeGeometry.from_dict(ck.get("geometry", {})), trainer.geometry)
    if dict(ck.get("network", {})) != trainer._g.config():
        raise mismatch("the U-Net", ck.get("network"), trainer._g.config())
    if dict(ck.get("energy_network", {})) != trainer._e.config():
        raise mismatch("the energy network", ck.get("energy_network"), trainer._e.config())
    if int(ck.get("subtomo_size", -1)) != trainer.subtomo_size:
        raise mismatch("subtomograms of size", ck.get("subtomo_size"), trainer.subtomo_size)
    try:
        trainer._g.load_state_dict(ck["generator"])
        trainer._g_frozen.load_state_dict(ck["generator_frozen"])
        trainer._e.load_state_dict(ck["energy"])
        assert trainer._opt_g is not None and trainer._opt_e is not None
        trainer._opt_g.load_state_dict(ck["opt_generator"])
        trainer._opt_e.load_state_dict(ck["opt_energy"])
        if ck.get("scaler_generator"):
            trainer._scaler_g.load_state_dict(ck["scaler_generator"])
        if ck.get("scaler_energy"):
            trainer._scaler_e.load_state_dict(ck["scaler_energy"])
        trainer.seed = int(ck["seed"])
        trainer._rng.bit_generator.state = ck["rng"]
        if ck.get("device_type") == trainer.device.type:
            trainer._tgen.set_state(ck["torch_rng"])
        else:
            trainer._tgen.manual_seed(trainer.seed + int(ck["step"]))
        trainer._step = int(ck["step"])
        trainer._history = list(ck.get("history") or [])
        trainer._noise = NoiseEstimate.from_dict(ck["noise"]) if ck.get("noise") else None
        trainer._elapsed = float(ck.get("seconds", 0.0))
    except ModelFileError:
        raise
    except Exception as exc:
        raise ModelFileError(f"checkpoint {path} cannot be restored: {exc}") from exc


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_cpu(v) for v in obj)
    return obj
