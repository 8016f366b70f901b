"""The plugin's jobs: train, apply, train-then-apply, as generators of typed events.

This is the one owner of the main job. The Dewedge widget runs these
generators in a napari thread worker, the command line in its own process,
the benchmarks and scripts in theirs; each only consumes the events::

    control = JobControl()
    for event in train_and_apply(volume, TrainSpec(geometry, config), ApplySpec(), control):
        if event.kind == "training": ...      # TrainingProgress: losses of each step since the last
        elif event.kind == "preview": ...     # Preview: a restored subtomogram and where it sits
        elif event.kind == "applying": ...    # ApplyProgress: tiles done
        elif event.kind == "notice": ...      # Notice: a warning for the user (the job goes on)
        elif event.kind == "model": ...       # ModelReady: the model, trained or loaded
        elif event.kind == "result": ...      # Outcome: the last event (result None when stopped)
        elif event.kind == "failure": ...     # Failure: the last event of a job that failed

A job never raises (but ``KeyboardInterrupt``): a failure is its last event,
with a message for the user and the exception. ``control.request_stop()``
(from any thread) ends training after the current step, keeping the model,
and inference after the current tile batch. Here too, in one place, the CPU
thread policy is applied (``cpu_threads`` torch threads while the job runs on
the CPU) and GPU memory is given back when a job ends, however it ends.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .dataset import VOXEL_SIZE_TOLERANCE
from .inference.views import MIRROR_VIEWS
from .wedge import WedgeGeometry

if TYPE_CHECKING:  # pragma: no cover
    from .inference import InferenceEvent, InferenceResult
    from .model import TrainedModel
    from .training import TrainingConfig, TrainingEvent

__all__ = [
    "JobControl",
    "TrainSpec",
    "ApplySpec",
    "TrainingProgress",
    "Preview",
    "ApplyProgress",
    "Notice",
    "ModelReady",
    "Outcome",
    "Failure",
    "JobEvent",
    "train",
    "apply",
    "train_and_apply",
    "run_job",
    "gui_cpu_threads",
    "describe_error",
    "VOXEL_SIZE_TOLERANCE",
]

#: Smallest interval (s) between two training or inference progress events.
YIELD_INTERVAL_S = 0.05


# --------------------------------------------------------------------------------------
# What a job is given
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSpec:
    """How to train: the wedge, the settings, and what the model records of its data."""

    geometry: WedgeGeometry
    config: "TrainingConfig"
    voxel_size: tuple[float, float, float] | None = None
    source: str | None = None
    resume_from: Path | None = None
    checkpoint_path: Path | None = None


@dataclass(frozen=True)
class ApplySpec:
    """How to apply: samples K, device, seed and the tile settings (None: the model's).

    ``coarse``: the coarse pass (:mod:`.inference.coarse`), which fills the
    missing wedge's longest wavelengths from the volume binned to one subtomogram.
    ``calibrate``: the tiles' wedge filling scaled by the gains measured on the
    volume (:mod:`.inference.calibration`), and the finished filling weighted by
    the agreement of the volume's recorrupted halves (:mod:`.inference.reliability`).
    ``fuse``: the measured region fused with the volume's own data
    (:mod:`.inference.fusion`), shell by shell as their noise allows.
    ``second``: with ``fuse``, the second pass (:mod:`.inference.second`): the
    application run again on the result's measured region, fused with the data
    again, and taken everywhere but in the wedge's lowest frequencies.
    ``solvent``: with ``fuse``, the solvent flattening (:mod:`.inference.solvent`):
    the missing wedge filled again under the object's support, on volumes without
    noise to speak of whose object leaves most of the box empty, and kept only where
    a flat solvent agrees with the measured data (phantoms, not a real particle's map).
    ``views``: the whole application run on this many mirror views of the volume
    that keep its wedge in place, and averaged (:mod:`.inference.views`; 1: off).

    ``geometry`` and ``voxel_size`` describe the volume; when given, a model
    trained for another wedge or voxel size gives a :class:`Notice`.
    """

    samples: int = 1
    device: Any = "auto"
    seed: int | None = None
    noise_scale: float | None = None
    tile: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    geometry: WedgeGeometry | None = None
    voxel_size: tuple[float, float, float] | None = None
    calibrate: bool = True
    coarse: bool = True
    fuse: bool = True
    second: bool = True
    solvent: bool = True
    views: int = MIRROR_VIEWS


class JobControl:
    """Stop switch shared by a job (its thread) and whoever runs it (any thread)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._trainer: Any = None
        self._partial: Any = None

    def request_stop(self) -> None:
        """Stop training after the current step, inference after the current tile batch."""
        self._stop.set()
        trainer = self._trainer
        if trainer is not None:
            trainer.request_stop()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def trainer(self) -> Any:
        """The running :class:`~napari_dewedge.core.training.Trainer` (None outside training)."""
        return self._trainer

    def partial_model(self) -> "TrainedModel | None":
        """The model trained so far by an interrupted job (Ctrl-C), else None."""
        return self._partial


# --------------------------------------------------------------------------------------
# What a job yields
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingProgress:
    """A training event plus the losses of every step since the previous one."""

    event: "TrainingEvent"
    losses: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    kind: str = "training"


@dataclass(frozen=True)
class Preview:
    """The generator's output on one subtomogram; ``origin`` its corner (voxels, z y x)."""

    volume: np.ndarray
    origin: tuple[int, int, int] | None
    step: int
    kind: str = "preview"


@dataclass(frozen=True)
class ApplyProgress:
    """An inference event (tiles done, samples, time left)."""

    event: "InferenceEvent"
    kind: str = "applying"


@dataclass(frozen=True)
class Notice:
    """Something the user should know; the job goes on."""

    message: str
    kind: str = "notice"


@dataclass(frozen=True)
class ModelReady:
    """The model of the job: trained (``trained``) or loaded from ``path``."""

    model: "TrainedModel"
    path: str | None = None
    trained: bool = False
    kind: str = "model"


@dataclass(frozen=True)
class Outcome:
    """A job's result: its last event, or, for ``train_and_apply`` on several tomograms, one
    per tomogram in order (``index``, ``name``), the last with ``last=True``."""

    model: "TrainedModel | None"
    result: "InferenceResult | None" = None
    model_path: str | None = None
    stopped: bool = False
    trained: bool = False
    message: str = ""
    index: int = 0
    name: str | None = None
    last: bool = True
    kind: str = "result"


@dataclass(frozen=True)
class Failure:
    """The last event of a job that failed: a message for the user, the traceback, the error."""

    message: str
    detail: str = ""
    stage: str = ""
    error: BaseException | None = None
    kind: str = "failure"


JobEvent = TrainingProgress | Preview | ApplyProgress | Notice | ModelReady | Outcome | Failure


# --------------------------------------------------------------------------------------
# Policies: threads, memory, messages
# --------------------------------------------------------------------------------------


def gui_cpu_threads() -> int:
    """CPU threads for computing next to napari: all but one core (at least one).

    The spare core keeps the GUI thread responsive; oversubscribing the CPU
    also slows torch's own threads down badly.
    """
    from .device import default_cpu_threads

    return max(1, default_cpu_threads() - 1)


@contextlib.contextmanager
def _cpu_threads(device: Any, n: int | None) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block when ``device`` is the CPU."""
    import torch

    from .device import resolve_device

    if n is None or resolve_device(device).type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _release(device: Any) -> None:
    """Give cached GPU memory back after a job (on the CPU there is nothing to give:
    a full garbage collection there would only stall napari)."""
    try:
        from .device import release_device_memory, resolve_device

        if resolve_device(device).type != "cpu":
            release_device_memory(device)
    except Exception:  # noqa: BLE001 - best effort: never mask the job's own outcome
        pass


def describe_error(exc: BaseException, stage: str) -> str:
    """A short, actionable message for an exception of a job."""
    text = str(exc).strip() or type(exc).__name__
    lower = text.lower()
    if isinstance(exc, MemoryError) or "out of memory" in lower:
        return (
            f"Out of memory while {stage}: {text}. Choose a smaller batch, subtomogram size "
            "or network width (advanced settings), or the CPU device."
        )
    if isinstance(exc, (ValueError, TypeError, FileNotFoundError)):
        return f"Cannot dewedge ({stage}): {text}"
    return f"Dewedge failed while {stage}: {type(exc).__name__}: {text}"


def _failure(exc: BaseException, stage: str) -> Failure:
    return Failure(describe_error(exc, stage), traceback.format_exc(), stage, exc)


# --------------------------------------------------------------------------------------
# The steps a job is made of
# --------------------------------------------------------------------------------------


def _trainer(data: Any, spec: TrainSpec, control: JobControl) -> Any:
    from .dataset import as_dataset
    from .training import Trainer

    dataset = as_dataset(data, spec.geometry, voxel_size=spec.voxel_size, name=spec.source or "volume")
    trainer = Trainer(dataset, None, spec.config, source=spec.source, resume_from=spec.resume_from,
                      checkpoint_path=spec.checkpoint_path)
    control._trainer = trainer
    if control.stop_requested:
        trainer.request_stop()
    return trainer


def _training(trainer: Any, control: JobControl, interval_s: float) -> Iterator[JobEvent]:
    """Run ``trainer``; yields progress and previews, returns ``(model, stopped)``."""
    pending: list[tuple[int, dict[str, float]]] = []
    last = 0.0
    stopped = False
    try:
        for event in trainer.run():
            if event.losses:
                pending.append((int(event.step), dict(event.losses)))
            if event.preview is not None:
                yield Preview(event.preview, event.preview_origin, int(event.step))
            now = time.monotonic()
            if event.done or event.preview is not None or now - last >= interval_s:
                last = now
                yield TrainingProgress(event, pending)
                pending = []
            if event.done:
                stopped = bool(event.stopped)
    except KeyboardInterrupt:
        control._partial = trainer.model if trainer.model.steps_done > 0 else None
        raise
    finally:
        control._trainer = None
    return trainer.model, stopped or control.stop_requested


def _applying(model: "TrainedModel", volume: np.ndarray, spec: ApplySpec, control: JobControl,
              interval_s: float) -> Iterator[JobEvent]:
    """Apply ``model``; yields progress, returns the result (None when stopped)."""
    from .inference import run_inference

    if spec.geometry is not None and model.geometry != spec.geometry:
        yield Notice(f"The model was trained for the wedge {model.geometry}; the volume's wedge is "
                     f"{spec.geometry}. The model is applied as trained.")
    if spec.voxel_size is not None and model.voxel_size is not None:
        ratio = max(abs(a / b - 1) for a, b in zip(spec.voxel_size, model.voxel_size))
        if ratio > VOXEL_SIZE_TOLERANCE:
            yield Notice(f"The model was trained on {model.voxel_size[2]:g} Å voxels, the volume has "
                         f"{spec.voxel_size[2]:g} Å: results may be poor.")
    last = 0.0
    result = None
    for event in run_inference(model, volume, samples=int(spec.samples), noise_scale=spec.noise_scale,
                               geometry=spec.geometry, device=spec.device, seed=spec.seed, tile=spec.tile, overlap=spec.overlap,
                               batch_size=spec.batch_size, stop=lambda: control.stop_requested,
                               calibrate=spec.calibrate, coarse=spec.coarse, fuse=spec.fuse,
                               second=spec.second, solvent=spec.solvent, views=spec.views):
        now = time.monotonic()
        if event.done or now - last >= interval_s:
            last = now
            yield ApplyProgress(event)
        if event.done:
            result = event.result
            break
    return result


# --------------------------------------------------------------------------------------
# The jobs
# --------------------------------------------------------------------------------------


def _applied_volumes(data: Any) -> list[tuple[str | None, np.ndarray]]:
    """``(name, volume)`` of each tomogram ``train_and_apply`` applies its model to: every one trained on."""
    from .dataset import TomogramData

    if isinstance(data, TomogramData):
        data = [data]
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], TomogramData):
        return [(d.name, np.asarray(d.volume)) for d in data]
    return [(None, np.asarray(data))]


def train(volume: Any, spec: TrainSpec, control: JobControl | None = None, *, cpu_threads: int | None = None,
          interval_s: float = YIELD_INTERVAL_S) -> Iterator[JobEvent]:
    """Train a model on ``volume``: progress, previews, :class:`ModelReady`, :class:`Outcome`."""
    control = control or JobControl()
    stage = "preparing the training"
    try:
        with _cpu_threads(spec.config.device, cpu_threads):
            trainer = _trainer(volume, spec, control)
            stage = "training"
            model, stopped = yield from _training(trainer, control, interval_s)
        yield ModelReady(model, trained=True)
        message = f"stopped at step {model.steps_done} of {spec.config.steps}; the model is kept" if stopped else ""
        yield Outcome(model, None, stopped=stopped, trained=True, message=message)
    except Exception as exc:  # noqa: BLE001 - reported as the job's last event
        yield _failure(exc, stage)
    finally:
        _release(spec.config.device)


def apply(model: "TrainedModel | str | Path", volume: Any, spec: ApplySpec | None = None,
          control: JobControl | None = None, *, cpu_threads: int | None = None,
          interval_s: float = YIELD_INTERVAL_S) -> Iterator[JobEvent]:
    """Apply a model (or the model file at a path) to ``volume``.

    Yields :class:`ModelReady` when a file was loaded, notices, progress and an
    :class:`Outcome` (result None when stopped), or a :class:`Failure`.
    """
    spec = spec or ApplySpec()
    control = control or JobControl()
    stage = "loading the model"
    model_path = None
    try:
        from .device import resolve_device
        from .model import TrainedModel

        resolve_device(spec.device)  # a bad device name fails before anything is loaded
        if not isinstance(model, TrainedModel):
            model_path = str(model)
            model = TrainedModel.load(model_path, device="cpu")
            yield ModelReady(model, path=model_path)
        stage = "applying the model"
        with _cpu_threads(spec.device, cpu_threads):
            result = yield from _applying(model, np.asarray(volume), spec, control, interval_s)
        yield Outcome(model, result, model_path=model_path, stopped=result is None,
                      message="" if result is not None else "stopped while applying the model")
    except Exception as exc:  # noqa: BLE001 - reported as the job's last event
        yield _failure(exc, stage)
    finally:
        _release(spec.device)


def train_and_apply(volume: Any, train_spec: TrainSpec, apply_spec: ApplySpec | None = None,
                    control: JobControl | None = None, *, cpu_threads: int | None = None,
                    interval_s: float = YIELD_INTERVAL_S) -> Iterator[JobEvent]:
    """Train on ``volume`` (an array, a TomogramData or a list of them), then apply the model
    to each tomogram trained on: one :class:`Outcome` per tomogram, in order.

    A stop during training ends the job with the model trained so far and no
    result. Without ``apply_spec`` the model is applied once (K = 1) on the
    training device with the training seed.
    """
    control = control or JobControl()
    config = train_spec.config
    apply_spec = apply_spec or ApplySpec(device=config.device, seed=config.seed)
    stage = "preparing the training"
    try:
        with _cpu_threads(config.device, cpu_threads):
            trainer = _trainer(volume, train_spec, control)
            stage = "training"
            model, stopped = yield from _training(trainer, control, interval_s)
            yield ModelReady(model, trained=True)
            if stopped:
                yield Outcome(model, None, stopped=True, trained=True,
                              message=f"stopped at step {model.steps_done} of {config.steps}; the model is kept")
                return
            stage = "applying the model"
            volumes = _applied_volumes(volume)
            for index, (name, data) in enumerate(volumes):
                result = yield from _applying(model, data, apply_spec, control, interval_s)
                if result is None:
                    yield Outcome(model, None, stopped=True, trained=True, index=index, name=name,
                                  message="stopped while applying the model; the model is kept")
                    return
                yield Outcome(model, result, trained=True, index=index, name=name, last=index == len(volumes) - 1)
    except Exception as exc:  # noqa: BLE001 - reported as the job's last event
        yield _failure(exc, stage)
    finally:
        _release(config.device)


def run_job(events: Iterator[JobEvent], on_event: Any = None) -> Outcome:
    """Run a job to its end (scripts, benchmarks): its last :class:`Outcome`, or its failure raised.

    ``on_event`` is called with every event, the last included.
    """
    outcome = None
    for event in events:
        if on_event is not None:
            on_event(event)
        if event.kind == "failure":
            if event.error is not None:
                raise event.error
            raise RuntimeError(event.message)
        if event.kind == "result":
            outcome = event
    if outcome is None:
        raise RuntimeError("the job ended without a result")
    return outcome
