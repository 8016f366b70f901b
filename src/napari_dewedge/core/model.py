"""A trained model as a file: generator weights plus everything needed to apply it.

The file is ``torch.save`` of a dict that holds only plain tensors, strings,
numbers, booleans, None, lists and dicts, so it loads with
``torch.load(weights_only=True)`` (no arbitrary code runs when a file is
opened). Keys:

``format`` (``"napari-dewedge-model"``), ``format_version``, ``generator``
(state dict), ``network`` (keyword arguments of :class:`~.networks.UNet3D`),
``energy`` / ``energy_network`` (the learned energy, optional), ``geometry``
(:class:`~.wedge.WedgeGeometry` as a dict), ``normalization`` (mean and std of
the training tomogram), ``subtomo_size``, ``training`` (settings),
``history`` (logged losses), ``voxel_size`` (z, y, x in Angstrom, or None),
``versions``, ``steps_done``, ``source``.

Models are applied to tomograms normalised like the training tomogram:
``model.normalize(volume)`` in, ``model.denormalize(prediction)`` out.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .files import atomic_output
from .networks import build_energy, build_generator
from .wedge import WedgeGeometry

__all__ = ["MODEL_FORMAT", "MODEL_FORMAT_VERSION", "ModelFileError", "TrainedModel", "current_versions"]

MODEL_FORMAT = "napari-dewedge-model"
MODEL_FORMAT_VERSION = 1
#: Suffix used for model files.
MODEL_SUFFIX = ".pt"


class ModelFileError(ValueError):
    """A model file that cannot be read: missing, corrupt, foreign or incompatible."""


def current_versions() -> dict[str, str]:
    """Versions of the software that wrote a model."""
    try:
        from importlib.metadata import version

        own = version("napari-dewedge")
    except Exception:  # pragma: no cover - not installed
        own = "unknown"
    return {
        "napari_dewedge": own,
        "torch": torch.__version__.split("+")[0],
        "numpy": np.__version__,
        "format": str(MODEL_FORMAT_VERSION),
    }


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain Python data (tuples become lists, numpy scalars numbers)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    raise TypeError(f"cannot store {type(value).__name__} in {where}; only plain data is allowed")


def _state_dict_cpu(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (:func:`~.files.atomic_output`), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as fh:
        torch.save(obj, fh)
    return path


def safe_torch_load(path: str | os.PathLike, what: str = "model") -> Any:
    """``torch.load(weights_only=True)`` on CPU with errors that name the file."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{what} file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{what} path is a folder, not a file: {path}")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{what} file is empty: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with forbidden globals, not a torch file...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a readable napari-dewedge {what} file ({reason})") from exc


@dataclass
class TrainedModel:
    """A trained generator with its wedge, normalisation and training record."""

    generator: nn.Module
    network: dict[str, Any]
    geometry: WedgeGeometry
    normalization: dict[str, float]
    subtomo_size: int
    training: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    voxel_size: tuple[float, float, float] | None = None
    versions: dict[str, str] = field(default_factory=current_versions)
    steps_done: int = 0
    source: str | None = None
    energy: nn.Module | None = None
    energy_network: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, WedgeGeometry):
            raise TypeError(f"geometry must be a WedgeGeometry, got {type(self.geometry).__name__}")
        norm = dict(self.normalization)
        if set(norm) < {"mean", "std"}:
            raise ValueError(f"normalization needs 'mean' and 'std', got {sorted(norm)}")
        mean, std = float(norm["mean"]), float(norm["std"])
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ValueError(f"normalization needs a finite mean and a positive std, got mean={mean}, std={std}")
        norm.update(mean=mean, std=std)
        self.normalization = norm
        if self.voxel_size is not None:
            vs = tuple(float(v) for v in np.broadcast_to(np.asarray(self.voxel_size, dtype=float), (3,)))
            self.voxel_size = vs  # type: ignore[assignment]
        self.subtomo_size = int(self.subtomo_size)
        self.steps_done = int(self.steps_done)
        self.generator.eval()
        if self.energy is not None:
            self.energy.eval()

    # -- properties -----------------------------------------------------------------

    @property
    def padding_multiple(self) -> int:
        """Spatial sizes given to the generator must be multiples of this."""
        return int(getattr(self.generator, "padding_multiple", 2 ** int(self.network.get("depth", 0))))

    @property
    def min_size(self) -> int:
        """Smallest spatial size the generator accepts."""
        return int(getattr(self.generator, "min_size", self.padding_multiple))

    @property
    def device(self) -> torch.device:
        try:
            return next(self.generator.parameters()).device
        except StopIteration:  # pragma: no cover - parameterless network
            return torch.device("cpu")

    @property
    def noise_scale(self) -> float:
        """Standard deviation (normalised units) of the input noise ``e_g`` used in training."""
        return float(self.training.get("noise_scale_used", self.training.get("noise_scale") or 0.0))

    # -- normalisation ----------------------------------------------------------------

    def normalize(self, x: Any) -> Any:
        """``(x - mean) / std`` with the training tomogram's statistics (numpy float32 or tensor)."""
        mean, std = self.normalization["mean"], self.normalization["std"]
        if isinstance(x, torch.Tensor):
            return (x - mean) / std
        return ((np.asarray(x, dtype=np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)

    def denormalize(self, x: Any) -> Any:
        """Inverse of :meth:`normalize`."""
        mean, std = self.normalization["mean"], self.normalization["std"]
        if isinstance(x, torch.Tensor):
            return x * std + mean
        return (np.asarray(x, dtype=np.float32) * np.float32(std) + np.float32(mean)).astype(np.float32)

    def to(self, device: Any) -> "TrainedModel":
        """Move the networks to ``device`` (a name such as ``"auto"``/``"cuda"`` or a torch.device)."""
        from .device import resolve_device

        dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.generator.to(dev)
        if self.energy is not None:
            self.energy.to(dev)
        return self

    @torch.no_grad()
    def apply_normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Generator output for a normalised batch ``(B, 1, d, h, w)`` already on the model's device."""
        self.generator.eval()
        return self.generator(x)

    def summary(self) -> str:
        """One line describing the model."""
        net = self.network
        src = f" from {Path(self.source).name}" if self.source else ""
        return (
            f"U-Net depth {net.get('depth')} width {net.get('width')}, subtomograms {self.subtomo_size}^3, "
            f"{self.steps_done} steps, wedge {self.geometry}{src}"
        )

    # -- file format ---------------------------------------------------------------

    def to_payload(self) -> dict[str, Any]:
        """The dict written by :meth:`save` (plain data and CPU tensors only)."""
        payload: dict[str, Any] = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "generator": _state_dict_cpu(self.generator),
            "network": _plain(self.network, "network"),
            "energy": _state_dict_cpu(self.energy) if self.energy is not None else None,
            "energy_network": _plain(self.energy_network, "energy_network"),
            "geometry": _plain(self.geometry.to_dict(), "geometry"),
            "normalization": _plain(self.normalization, "normalization"),
            "subtomo_size": int(self.subtomo_size),
            "training": _plain(self.training, "training"),
            "history": _plain(self.history, "history"),
            "voxel_size": _plain(self.voxel_size, "voxel_size"),
            "versions": _plain(self.versions, "versions"),
            "steps_done": int(self.steps_done),
            "source": self.source,
        }
        return payload

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model atomically (temporary file in the same folder, then rename)."""
        return atomic_torch_save(self.to_payload(), path)

    @classmethod
    def from_payload(cls, payload: Any, path: str | os.PathLike = "<memory>", device: Any = "cpu") -> "TrainedModel":
        """Rebuild a model from the dict of :meth:`to_payload`; errors name ``path``."""
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            kind = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
            raise ModelFileError(f"{path} is not a napari-dewedge model file (found {kind!r} content)")
        version = payload.get("format_version")
        if not isinstance(version, int) or version > MODEL_FORMAT_VERSION:
            raise ModelFileError(
                f"{path} has model format version {version!r}; this napari-dewedge reads up to "
                f"{MODEL_FORMAT_VERSION}: update napari-dewedge"
            )
        missing = [k for k in ("generator", "network", "geometry", "normalization", "subtomo_size") if k not in payload]
        if missing:
            raise ModelFileError(f"{path} is an incomplete model file: missing {missing}")
        try:
            generator = build_generator(payload["network"])
            generator.load_state_dict(payload["generator"])
            energy = None
            if payload.get("energy") is not None and payload.get("energy_network") is not None:
                energy = build_energy(payload["energy_network"])
                energy.load_state_dict(payload["energy"])
            geometry = WedgeGeometry.from_dict(payload["geometry"])
            voxel = payload.get("voxel_size")
            model = cls(
                generator=generator,
                network=dict(payload["network"]),
                geometry=geometry,
                normalization=dict(payload["normalization"]),
                subtomo_size=int(payload["subtomo_size"]),
                training=dict(payload.get("training") or {}),
                history=list(payload.get("history") or []),
                voxel_size=tuple(voxel) if voxel is not None else None,  # type: ignore[arg-type]
                versions=dict(payload.get("versions") or {}),
                steps_done=int(payload.get("steps_done", 0)),
                source=payload.get("source"),
                energy=energy,
                energy_network=dict(payload["energy_network"]) if energy is not None else None,
            )
        except ModelFileError:
            raise
        except Exception as exc:
            raise ModelFileError(f"{path} holds an unusable napari-dewedge model: {exc}") from exc
        return model.to(device)

    @classmethod
    def load(cls, path: str | os.PathLike, device: Any = "cpu") -> "TrainedModel":
        """Read a model written by :meth:`save` (safely: ``weights_only=True``) onto ``device``."""
        payload = safe_torch_load(path, "model")
        return cls.from_payload(payload, path=path, device=device)

    def copy(self) -> "TrainedModel":
        """A deep copy (networks included)."""
        return copy.deepcopy(self)
