"""Training on a dataset: several tomograms, even/odd halves, masks.

The :class:`~.trainer.Trainer` keeps one :class:`~.sampling.TrainingSource`
per tomogram. This module sets them up (one subtomogram size that fits them
all, the thinner ones padded alike with their halves and masks), prepares each
(mask, noise estimate) when the run starts, and draws each step's batch:
from one tomogram, chosen in proportion to its share of the epoch's pool, so
that a batch shares one wedge and one noise model. With halves, the input is
one half at random and the target the other (Noise2Noise).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..wedge import measured_fraction
from .noise import resolve_noise, tomogram_noise
from .sampling import (
    TrainingSource,
    check_training_volume,
    dataset_pool,
    epoch_pool,
    extract_subtomograms,
    fit_volume,
    foreground_mask,
    plan_subtomo_size,
    volume_stats,
)

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

__all__ = ["dataset_input", "fit_sources", "prepare_sources", "dataset_batch"]


def dataset_input(volume: Any, geometry: Any, voxel_size: Any, source: str | None) -> tuple:
    """``(dataset or None, first volume, its wedge, voxel size, source name)`` of a Trainer's input."""
    from ..dataset import TomogramData, as_dataset
    from ..wedge import WedgeGeometry

    is_dataset = isinstance(volume, TomogramData) or (
        isinstance(volume, (list, tuple)) and any(isinstance(v, TomogramData) for v in volume))
    if not is_dataset:
        if not isinstance(geometry, WedgeGeometry):
            raise TypeError(f"geometry must be a WedgeGeometry, got {type(geometry).__name__}")
        return None, volume, geometry, voxel_size, source
    dataset = as_dataset(volume, geometry, name=source or "volume")
    if not dataset:
        raise ValueError("the dataset holds no tomogram")
    if source is None:
        names = [Path(d.name).name for d in dataset]
        source = dataset[0].name if len(dataset) == 1 else f"{len(dataset)} tomograms: {', '.join(names)}"
    first = dataset[0]
    return dataset, first.volume, first.geometry, first.voxel_size if voxel_size is None else voxel_size, source


def _pad_like(array: Any, shape: tuple[int, ...], *, mask: bool = False) -> Any:
    if array is None or tuple(array.shape) == tuple(shape):
        return array
    pads = [(0, p - s) for s, p in zip(array.shape, shape)]
    if mask:
        return np.pad(np.asarray(array, bool), pads, mode="constant", constant_values=False)
    return np.pad(np.asarray(array, dtype=np.float32), pads, mode="symmetric")


def fit_sources(trainer: "Trainer", dataset: list) -> tuple[Any, int]:
    """Fill ``trainer._sources``; returns the first (fitted) volume and the subtomogram size."""
    g, cfg = trainer._g, trainer.config
    sizes = []
    for data in dataset:
        name = Path(data.name).name
        try:
            check_training_volume(data.volume)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        sizes.append(plan_subtomo_size(tuple(data.volume.shape), cfg.subtomo_size, g.padding_multiple,
                                       g.min_size)[0])
    size = min(sizes)
    trainer._notes = []
    for index, data in enumerate(dataset):
        name = Path(data.name).name
        volume, _, notes = fit_volume(data.volume, size, g.padding_multiple, g.min_size)
        if size != cfg.subtomo_size and index == 0:
            notes = [f"subtomogram size reduced from {cfg.subtomo_size} to {size} to fit every tomogram"]
        trainer._notes += [f"{name}: {n}" for n in notes if "reduced" not in n or index == 0]
        shape = tuple(volume.shape)
        mean, std = (trainer.normalization["mean"], trainer.normalization["std"]) if index == 0 else \
            volume_stats(data.volume, name)
        if data.has_halves:
            volume_stats(data.even, f"{name} (even half)")
            volume_stats(data.odd, f"{name} (odd half)")
        trainer._sources.append(TrainingSource(
            name=data.name, volume=volume, geometry=data.geometry, normalization={"mean": mean, "std": std},
            shape=tuple(int(s) for s in data.volume.shape), voxel_size=data.voxel_size,
            even=_pad_like(data.even, shape), odd=_pad_like(data.odd, shape),
            user_mask=_pad_like(None if data.mask is None else np.asarray(data.mask) > 0, shape, mask=True),
        ))
    return trainer._sources[0].volume, size


def prepare_sources(trainer: "Trainer") -> None:
    """Masks and noise estimates of every tomogram (the first one's also as the trainer's own)."""
    size, ext, cfg = trainer.subtomo_size, trainer._extract, trainer.config
    for index, source in enumerate(trainer._sources):
        if source.user_mask is not None:
            source.mask = source.user_mask
        elif cfg.mask_empty:
            mask = foreground_mask(source.volume, size=ext)
            source.mask = mask if mask.any() else None
        if index == 0 and trainer._noise is not None and source.even is None:  # resumed: the checkpoint's
            source.noise = trainer._noise
        else:
            seed = [trainer.seed, 7919] if index == 0 else [trainer.seed, 7919, index]
            pos, _ = epoch_pool(tuple(source.volume.shape), size, 48 if size <= 48 else 24, seed, order=False)
            seen = source.even if source.even is not None else source.volume  # what the network is given
            cubes = _normalized(source, extract_subtomograms(seen, pos, size))
            source.noise = tomogram_noise(seen, cubes, source.geometry, source.normalization["std"])
        source.noise_model = resolve_noise(cfg, source.noise)
        source.measured = measured_fraction((size,) * 3, source.geometry)
    trainer._noise = trainer._sources[0].noise


def _normalized(source: TrainingSource, cubes: np.ndarray) -> np.ndarray:
    mean, std = source.normalization["mean"], source.normalization["std"]
    return ((cubes - np.float32(mean)) / np.float32(std)).astype(np.float32, copy=False)


def dataset_batch(trainer: "Trainer", k: int) -> torch.Tensor:
    """Step ``k``'s batch from one tomogram of the dataset; sets that tomogram's wedge,
    noise model and (with halves) the target on the trainer."""
    cfg = trainer.config
    epoch = (k - 1) // cfg.epoch_steps
    if epoch != trainer._pool_epoch or trainer._pool is None:
        trainer._pool = dataset_pool(trainer._sources, trainer._extract, cfg.n_subtomos,
                                     [trainer.seed, epoch, *trainer._rank_key],
                                     cfg.batch_size, cfg.epoch_steps)
        trainer._pool_next = [0] * len(trainer._sources)
        trainer._pool_epoch = epoch
    positions, which, orders = trainer._pool
    within = (k - 1) % cfg.epoch_steps
    t = int(which[within % len(which)])
    source = trainer._sources[t]
    count = len(positions[t])
    idx = orders[t][(trainer._pool_next[t] + np.arange(cfg.batch_size)) % count]
    trainer._pool_next[t] += cfg.batch_size
    offsets = trainer._rng.integers(0, trainer._extract - trainer.subtomo_size + 1, size=(cfg.batch_size, 3))
    corners = positions[t][idx] + offsets
    trainer._step_geometry = source.geometry
    trainer._noise_model = source.noise_model
    trainer._measured = source.measured
    if source.even is not None:
        halves = (source.even, source.odd) if trainer._rng.random() < 0.5 else (source.odd, source.even)
        x = extract_subtomograms(halves[0], corners, trainer.subtomo_size)
        target = extract_subtomograms(halves[1], corners, trainer.subtomo_size)
        trainer._target = torch.from_numpy(_normalized(source, target)[:, None]).to(trainer.device)
    else:
        x = extract_subtomograms(source.volume, corners, trainer.subtomo_size)
        trainer._target = None
    return torch.from_numpy(_normalized(source, x)[:, None]).to(trainer.device)
