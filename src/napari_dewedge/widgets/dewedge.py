"""One-click dewedging and denoising dock widget.

:class:`DewedgeWidget` trains a CryoGEN model on the chosen tomogram and
applies it (**Dewedge**), applies a saved or the current model
(**Apply model…**), saves the model (**Save model…**) and stops a run
(**Stop**). The wedge is the viewer's shared wedge state (the same object the
missing-wedge inspector edits). All compute happens in
:mod:`napari_dewedge.core`, in a napari thread worker that runs a job
generator (:func:`train_and_apply_job`, :func:`apply_job`); the GUI thread
only records the job's progress items and applies the latest of them a few
times per second (progress bar, status line, loss plot, preview layer), so the
viewer stays responsive during training.

Results are new layers ``"<name> dewedged"`` (and ``"<name> uncertainty"``
with K > 1 samples) with the source's scale and translation and their
provenance in ``metadata`` (:func:`result_metadata`).

The small functions at the top (:class:`DewedgeSettings`,
:func:`settings_for_preset`, :func:`build_config`, :func:`provenance`,
:func:`result_metadata` and the job generators) hold the logic and do not
need a display.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.wedge import WedgeGeometry
from .panels import LayerPicker, is_alive, is_volume_layer, volume_of
from .state import geometry_from_layer, get_wedge_state, register_widget

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..core.inference import InferenceResult
    from ..core.model import TrainedModel
    from ..core.training import TrainingConfig

__all__ = [
    "PRESET_NAMES",
    "ENERGY_OBJECTIVES",
    "DewedgeSettings",
    "JobControl",
    "JobFailure",
    "JobOutcome",
    "settings_for_preset",
    "build_config",
    "worker_cpu_threads",
    "provenance",
    "result_metadata",
    "layer_source",
    "train_and_apply_job",
    "apply_job",
    "DewedgeWidget",
]

PRESET_NAMES = ("quick", "standard", "thorough")
ENERGY_OBJECTIVES = ("gan", "wgan-gp")
#: Losses drawn in the live plot (others, e.g. the noise scale drawn per step, are not losses).
PLOTTED_LOSSES = ("generator", "fidelity", "consistency", "energy", "energy_net")
#: Metadata roles of the layers this widget makes.
ROLE_RESULT, ROLE_UNCERTAINTY, ROLE_PREVIEW = "dewedged", "uncertainty", "preview"
#: Smallest interval (s) between two progress items a job sends to the GUI thread.
JOB_YIELD_INTERVAL_S = 0.05
#: Interval (ms) of the GUI refresh (status, progress bar, plot, preview).
GUI_REFRESH_MS = 250
#: Smallest interval (s) between two updates of the preview layer and of the loss plot.
PREVIEW_INTERVAL_S = 1.0
PLOT_INTERVAL_S = 0.5
MODEL_FILTER = "napari-dewedge model (*.pt);;All files (*)"
MRC_FILTER = "MRC (*.mrc *.rec *.map);;All files (*)"


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


@dataclass
class DewedgeSettings:
    """The values of the widget's form (plain data).

    ``noise_scale=None`` lets the trainer estimate it from the data and
    ``seed=None`` draws a random seed; ``samples`` is the number K of noisy
    predictions averaged at inference (K > 1 also gives the uncertainty map).
    """

    preset: str = "quick"
    subtomo_size: int = 32
    n_subtomos: int = 64
    steps: int = 480
    batch_size: int = 4
    lambda_consistency: float = 1.0
    noise_scale: float | None = None
    energy_objective: str = "wgan-gp"
    device: str = "auto"
    seed: int | None = 0
    samples: int = 1
    unet_depth: int = 2
    unet_width: int = 8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def settings_for_preset(name: str, **changes: Any) -> DewedgeSettings:
    """The form values of a preset (``"quick"``, ``"standard"``, ``"thorough"``), with ``changes``."""
    from ..core.training import PRESETS, TrainingConfig

    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    config = TrainingConfig.preset(name)
    values = DewedgeSettings(
        preset=name,
        subtomo_size=config.subtomo_size,
        n_subtomos=config.n_subtomos,
        steps=config.steps,
        batch_size=config.batch_size,
        lambda_consistency=config.lambda_consistency,
        noise_scale=config.noise_scale,
        energy_objective=config.energy_objective,
        device=config.device,
        seed=config.seed,
        unet_depth=int(config.unet.get("depth", 3)),
        unet_width=int(config.unet.get("width", 16)),
    )
    for key, value in changes.items():
        if not hasattr(values, key):
            raise ValueError(f"unknown dewedge setting {key!r}")
        setattr(values, key, value)
    return values


def worker_cpu_threads() -> int:
    """CPU threads for computing next to napari: all but one core (at least one).

    The spare core keeps the GUI thread responsive; oversubscribing the CPU
    also slows torch's own threads down badly.
    """
    from ..core.device import default_cpu_threads

    return max(1, default_cpu_threads() - 1)


@contextlib.contextmanager
def _cpu_threads(device: Any, n: int | None) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block when ``device`` is the CPU."""
    import torch

    from ..core.device import resolve_device

    if n is None or resolve_device(device).type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def build_config(settings: DewedgeSettings) -> "TrainingConfig":
    """The :class:`~napari_dewedge.core.training.TrainingConfig` of the form values.

    The preset gives everything the form does not show (learning rate,
    energy network width...). Previews come every ``preset.preview_every``
    steps, but at least ten times per run. On the CPU, training leaves one
    core to napari (:func:`worker_cpu_threads`). Raises ``ValueError`` with the
    trainer's message for invalid combinations (e.g. a subtomogram size that
    the U-Net depth does not allow).
    """
    from ..core.training import PRESETS, TrainingConfig

    if settings.preset not in PRESETS:
        raise ValueError(f"unknown preset {settings.preset!r}; choose one of {sorted(PRESETS)}")
    if settings.energy_objective not in ENERGY_OBJECTIVES:
        raise ValueError(f"energy objective must be one of {ENERGY_OBJECTIVES}, got {settings.energy_objective!r}")
    if int(settings.samples) < 1:
        raise ValueError(f"number of samples K must be >= 1, got {settings.samples}")
    steps = int(settings.steps)
    preset_preview = int(PRESETS[settings.preset].get("preview_every", 50))
    preview_every = max(1, min(preset_preview, steps // 10))
    return TrainingConfig.preset(
        settings.preset,
        subtomo_size=int(settings.subtomo_size),
        n_subtomos=int(settings.n_subtomos),
        steps=steps,
        batch_size=int(settings.batch_size),
        lambda_consistency=float(settings.lambda_consistency),
        noise_scale=None if settings.noise_scale is None else float(settings.noise_scale),
        energy_objective=settings.energy_objective,
        device=str(settings.device),
        seed=None if settings.seed is None else int(settings.seed),
        unet={"depth": int(settings.unet_depth), "width": int(settings.unet_width)},
        preview_every=preview_every,
        checkpoint_every_s=None,
        num_threads=worker_cpu_threads(),
    )


# --------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------


def layer_source(layer: Any) -> tuple[str, str | None]:
    """``(name, path)`` of a layer: the file it was read from, when known."""
    path = None
    source = getattr(layer, "source", None)
    if source is not None and getattr(source, "path", None):
        path = str(source.path)
    meta = getattr(layer, "metadata", None) or {}
    if path is None and isinstance(meta.get("path"), str) and meta.get("path"):
        path = meta["path"]
    if path is None and isinstance(meta.get("source_path"), str) and meta.get("source_path"):
        path = meta["source_path"]
    return str(getattr(layer, "name", "volume")), path


def _plain(value: Any) -> Any:
    """JSON-like copy: tuples to lists, numpy scalars to numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def provenance(
    source_name: str,
    source_path: str | None,
    geometry: WedgeGeometry,
    *,
    model: "TrainedModel | None" = None,
    model_path: str | None = None,
    inference: Mapping[str, Any] | None = None,
    role: str = ROLE_RESULT,
) -> dict[str, Any]:
    """Where a result came from: source layer, wedge, model and settings (plain data)."""
    summary = {ROLE_RESULT: "napari-dewedge", ROLE_UNCERTAINTY: "napari-dewedge uncertainty (std of samples)"}
    record: dict[str, Any] = {
        "operation": "dewedge",
        "summary": summary.get(role, f"napari-dewedge {role}"),
        "source_layer": source_name,
        "source_path": source_path,
        "wedge": geometry.to_dict(),
        "model": model_path if model_path else "in memory",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if model is not None:
        record["model_summary"] = model.summary()
        record["model_wedge"] = model.geometry.to_dict()
        record["steps_done"] = int(model.steps_done)
        record["training"] = _plain(model.training)
        record["versions"] = _plain(model.versions)
    if inference is not None:
        record["inference"] = _plain(dict(inference))
    return record


def result_metadata(source_metadata: Mapping[str, Any] | None, record: Mapping[str, Any], role: str) -> dict[str, Any]:
    """``layer.metadata`` of a result layer.

    Holds ``dewedge_role`` (``"dewedged"`` / ``"uncertainty"``), the wedge,
    the provenance record and the voxel size. Links of the source to its
    ground truth (``ground_truth*`` keys) are carried over; the source's own
    metadata is never modified (a copy is made). ``source_path`` names the
    tomogram the result came from, so that saving never overwrites it.
    """
    src = dict(source_metadata or {})
    meta: dict[str, Any] = {
        "dewedge_role": role,
        "wedge": dict(record["wedge"]),
        "provenance": copy.deepcopy(dict(record)),
        "source_layer": record.get("source_layer"),
        "source_role": src.get("dewedge_role"),
    }
    if record.get("source_path"):
        meta["source_path"] = record["source_path"]
    for key in ("voxel_size", "units"):
        if key in src:
            meta[key] = copy.deepcopy(src[key])
    for key, value in src.items():
        if str(key).startswith("ground_truth"):
            meta[key] = copy.deepcopy(value)
    return meta


# --------------------------------------------------------------------------------------
# Jobs (run in a worker thread; no Qt)
# --------------------------------------------------------------------------------------


class JobControl:
    """Stop switch shared by a job (worker thread) and the widget (GUI thread)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.trainer: Any = None

    def request_stop(self) -> None:
        """Stop training after the current step, inference after the current tile batch."""
        self._stop.set()
        trainer = self.trainer
        if trainer is not None:
            trainer.request_stop()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()


@dataclass
class JobFailure:
    """A job ended with an error: a message for the user and the traceback."""

    message: str
    detail: str = ""
    stage: str = ""


@dataclass
class JobOutcome:
    """The last item of a job."""

    model: "TrainedModel | None"
    result: "InferenceResult | None" = None
    model_path: str | None = None
    stopped: bool = False
    trained: bool = False
    message: str = ""


@dataclass
class TrainingProgress:
    """A training event plus the losses of every step since the previous item."""

    event: Any
    losses: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def _describe_error(exc: BaseException, stage: str) -> str:
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


def _release(device: Any) -> None:
    """Give cached GPU memory back after a job (on the CPU there is nothing to give:
    a full garbage collection there would only stall napari)."""
    try:
        from ..core.device import release_device_memory, resolve_device

        if resolve_device(device).type != "cpu":
            release_device_memory(device)
    except Exception:  # noqa: BLE001 - best effort: never mask the job's own outcome
        pass


def _inference_items(
    model: "TrainedModel", volume: Any, *, samples: int, device: str, control: JobControl, seed: int | None
) -> Iterator[Any]:
    """Run the tiled inference, yielding its events (throttled) and finally the result or None."""
    from ..core.inference import run_inference

    last_yield = 0.0
    result = None
    with _cpu_threads(device, worker_cpu_threads()):
        for event in run_inference(
            model, volume, samples=int(samples), device=device, stop=lambda: control.stop_requested, seed=seed
        ):
            if event.done:
                result = event.result
                yield event
                break
            now = time.monotonic()
            if now - last_yield >= JOB_YIELD_INTERVAL_S:
                last_yield = now
                yield event
    return result


def train_and_apply_job(
    volume: Any,
    geometry: WedgeGeometry,
    config: "TrainingConfig",
    control: JobControl,
    *,
    samples: int = 1,
    voxel_size: Any = None,
    source: str | None = None,
) -> Iterator[Any]:
    """Train on ``volume`` then apply the model to it.

    Yields :class:`TrainingProgress` items (at most every
    :data:`JOB_YIELD_INTERVAL_S`, plus every event with a preview and the
    last), then the inference events, then one :class:`JobOutcome` (or a
    :class:`JobFailure`: the job never raises). A stop during training ends
    the job with the model trained so far and no result.
    """
    stage = "preparing the training"
    trainer = None
    try:
        from ..core.training import Trainer

        data = np.asarray(volume)
        trainer = Trainer(data, geometry, config, voxel_size=voxel_size, source=source)
        control.trainer = trainer
        if control.stop_requested:
            trainer.request_stop()
        stage = "training"
        pending: list[tuple[int, dict[str, float]]] = []
        last_yield = 0.0
        stopped = False
        for event in trainer.run():
            if event.losses:
                pending.append((int(event.step), dict(event.losses)))
            now = time.monotonic()
            if event.done or event.preview is not None or now - last_yield >= JOB_YIELD_INTERVAL_S:
                last_yield = now
                yield TrainingProgress(event, pending)
                pending = []
            if event.done:
                stopped = bool(event.stopped)
        model = trainer.model
        if stopped or control.stop_requested:
            yield JobOutcome(model, None, stopped=True, trained=True,
                             message=f"stopped at step {model.steps_done} of {config.steps}; the model is kept")
            return
        stage = "applying the model"
        result = yield from _inference_items(
            model, data, samples=samples, device=config.device, control=control, seed=config.seed
        )
        yield JobOutcome(model, result, stopped=result is None, trained=True,
                         message="" if result is not None else "stopped while applying the model; the model is kept")
    except Exception as exc:  # noqa: BLE001 - reported to the user, never raised into Qt
        yield JobFailure(_describe_error(exc, stage), traceback.format_exc(), stage)
    finally:
        control.trainer = None
        _release(getattr(trainer, "device", None) or config.device)


def apply_job(
    model: "TrainedModel | str | Path",
    volume: Any,
    control: JobControl,
    *,
    samples: int = 1,
    device: str = "auto",
    seed: int | None = None,
) -> Iterator[Any]:
    """Apply a model (or the model file at a path) to ``volume``.

    Yields the loaded :class:`~napari_dewedge.core.model.TrainedModel` (when a
    path was given), the inference events and a :class:`JobOutcome`, or a
    :class:`JobFailure`.
    """
    stage = "loading the model"
    model_path = None
    try:
        from ..core.device import resolve_device
        from ..core.model import TrainedModel

        resolve_device(device)  # a bad device name fails before anything is loaded
        if not isinstance(model, TrainedModel):
            model_path = str(model)
            model = TrainedModel.load(model_path, device="cpu")
            yield model
        stage = "applying the model"
        data = np.asarray(volume)
        result = yield from _inference_items(model, data, samples=samples, device=device, control=control, seed=seed)
        yield JobOutcome(model, result, model_path=model_path, stopped=result is None,
                         message="" if result is not None else "stopped while applying the model")
    except Exception as exc:  # noqa: BLE001 - reported to the user, never raised into Qt
        yield JobFailure(_describe_error(exc, stage), traceback.format_exc(), stage)
    finally:
        _release(device)


def _format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(0.0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# --------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------


class _JobHolder:
    """The running job's control and worker, reachable without the widget (for shutdown hooks)."""

    def __init__(self) -> None:
        self.control: JobControl | None = None
        self.worker: Any = None

    def shutdown(self) -> None:
        control, worker = self.control, self.worker
        if control is not None:
            control.request_stop()
        if worker is not None:
            try:
                worker.quit()
            except RuntimeError:  # the worker's Qt side is gone already
                pass


def _layer_units(layer: Any) -> tuple[str, ...] | None:
    """The spatial units of a layer as strings (None when unknown)."""
    units = getattr(layer, "units", None) if layer is not None else None
    if units is None:
        return None
    try:
        return tuple(str(u) for u in tuple(units)[-3:])
    except TypeError:
        return None


def _not_our_output(layer: Any) -> bool:
    """3D image layers that can be dewedged (not this widget's previews)."""
    meta = getattr(layer, "metadata", None) or {}
    return is_volume_layer(layer) and meta.get("dewedge_role") != ROLE_PREVIEW


def _prefer_source(layer: Any) -> bool:
    meta = getattr(layer, "metadata", None) or {}
    return meta.get("dewedge_role") == "corrupted"


class DewedgeWidget(QWidget):
    """Dock widget: train a dewedging/denoising model on a tomogram and apply it.

    Public attributes used by scripts and tests: ``layer_picker``,
    ``preset_combo``, the advanced fields (``subtomo_spin``, ``count_spin``,
    ``steps_spin``, ``batch_spin``, ``lambda_spin``, ``noise_spin``,
    ``objective_combo``, ``device_combo``, ``seed_spin``, ``samples_spin``,
    ``depth_spin``, ``width_spin``), the wedge fields (``tilt_min_spin``,
    ``tilt_max_spin``, ``axis_combo``, bound to ``state``, the viewer's
    shared wedge state), the buttons (``dewedge_button``, ``apply_button``,
    ``save_model_button``, ``stop_button``, ``compare_button``,
    ``save_result_button``), ``status_label``, ``plot`` and, after a run,
    ``model``, ``model_path``, ``result_layer``, ``uncertainty_layer``.
    """

    def __init__(self, napari_viewer: "napari.viewer.Viewer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.state = get_wedge_state(napari_viewer)
        register_widget(napari_viewer, self)

        self.model: TrainedModel | None = None
        self.model_path: str | None = None
        self.worker: Any = None
        self.last_failure: JobFailure | None = None
        self.last_outcome: JobOutcome | None = None
        self._jobs = _JobHolder()
        self._job: dict[str, Any] = {}
        self._latest_training: Any = None
        self._latest_inference: Any = None
        self._latest_preview: tuple[np.ndarray, Any] | None = None
        self._progress: Any = None
        self._progress_phase: str | None = None
        self._queue: deque[tuple[str, Any]] = deque()
        self._preview_shown = 0.0
        self._plot_shown = 0.0
        self._dispatching = False
        self._syncing = False
        self._closing = False
        self._result_ref: Any = None
        self._uncertainty_ref: Any = None
        self._preview_ref: Any = None
        self._window_filtered: Any = None
        self._last_source_ref: Any = None
        self._result_model: Any = None

        self._build()
        self._apply_settings(settings_for_preset("quick"))
        self.state.changed.connect(self._on_state_changed)
        self._sync_wedge(self.state.geometry)
        self._on_layer_changed(self.layer_picker.layer())

        self._timer = QTimer(self)
        self._timer.setInterval(GUI_REFRESH_MS)
        self._timer.timeout.connect(self._refresh)

        jobs = self._jobs
        self.destroyed.connect(lambda *_: jobs.shutdown())
        self._watch_window()
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._update_buttons()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        from superqt import QCollapsible

        from ._training_plot import LossPlot

        self.layer_picker = LayerPicker(self.viewer, accept=_not_our_output, prefer=_prefer_source)
        self.layer_picker.setToolTip("3D image layer to dewedge (2D, RGB and labels layers are not listed)")
        self.layer_picker.layer_changed.connect(self._on_layer_changed)

        self.tilt_min_spin = self._double(-90.0, 90.0, 1.0, 1, " \u00b0", "Lowest tilt angle measured")
        self.tilt_max_spin = self._double(-90.0, 90.0, 1.0, 1, " \u00b0", "Highest tilt angle measured")
        self.axis_combo = QComboBox()
        self.axis_combo.addItems(["y", "x"])
        self.axis_combo.setToolTip("Tilt axis of the tilt series")
        self.tilt_min_spin.valueChanged.connect(self._on_wedge_edited)
        self.tilt_max_spin.valueChanged.connect(self._on_wedge_edited)
        self.axis_combo.currentTextChanged.connect(self._on_wedge_edited)
        wedge_row = QHBoxLayout()
        wedge_row.addWidget(self.tilt_min_spin)
        wedge_row.addWidget(QLabel("to"))
        wedge_row.addWidget(self.tilt_max_spin)
        wedge_row.addWidget(QLabel("axis"))
        wedge_row.addWidget(self.axis_combo)

        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESET_NAMES))
        self.preset_combo.setItemData(0, "a few minutes on a laptop CPU", Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setItemData(1, "minutes to tens of minutes on a GPU", Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setItemData(2, "a GPU and some patience", Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setToolTip("Training effort; fills the advanced settings")
        self.preset_combo.currentTextChanged.connect(self._on_preset)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Tomogram", self.layer_picker)
        form.addRow("Wedge", wedge_row)
        form.addRow("Preset", self.preset_combo)

        # advanced settings
        self.subtomo_spin = self._int(8, 512, 8, "Edge of the training subtomograms (voxels)")
        self.count_spin = self._int(1, 100_000, 16, "Subtomograms drawn per epoch")
        self.steps_spin = self._int(1, 10_000_000, 100, "Training steps")
        self.batch_spin = self._int(1, 512, 1, "Subtomograms per step")
        self.lambda_spin = self._double(
            0.0, 1000.0, 0.1, 2, "", "Weight of the consistency loss (decays after the first epoch)"
        )
        self.noise_spin = self._double(0.0, 10.0, 0.05, 2, "", "Input noise scale in units of the tomogram's std")
        self.noise_spin.setSpecialValueText("auto (estimated)")
        self.objective_combo = QComboBox()
        self.objective_combo.addItems(list(ENERGY_OBJECTIVES))
        self.objective_combo.setToolTip(
            "gan: logistic energy; wgan-gp: Wasserstein with gradient penalty (more stable)"
        )
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", *self._devices()])
        self.device_combo.setToolTip("Where to compute: auto picks a GPU when there is one")
        self.seed_spin = self._int(-1, 2**31 - 1, 1, "Random seed (same seed, same result on the CPU)")
        self.seed_spin.setSpecialValueText("random")
        self.samples_spin = self._int(
            1, 64, 1, "Predictions with different input noise averaged; K > 1 also gives an uncertainty map"
        )
        self.depth_spin = self._int(1, 6, 1, "U-Net depth (levels)")
        self.width_spin = self._int(1, 256, 4, "U-Net width (channels of the first level)")

        adv = QFormLayout()
        adv.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        grid = QGridLayout()
        grid.addWidget(QLabel("size"), 0, 0)
        grid.addWidget(self.subtomo_spin, 0, 1)
        grid.addWidget(QLabel("count"), 0, 2)
        grid.addWidget(self.count_spin, 0, 3)
        adv.addRow("Subtomograms", grid)
        grid = QGridLayout()
        grid.addWidget(self.steps_spin, 0, 0)
        grid.addWidget(QLabel("batch"), 0, 1)
        grid.addWidget(self.batch_spin, 0, 2)
        adv.addRow("Steps", grid)
        adv.addRow("Lambda", self.lambda_spin)
        adv.addRow("Noise scale", self.noise_spin)
        adv.addRow("Energy", self.objective_combo)
        grid = QGridLayout()
        grid.addWidget(QLabel("depth"), 0, 0)
        grid.addWidget(self.depth_spin, 0, 1)
        grid.addWidget(QLabel("width"), 0, 2)
        grid.addWidget(self.width_spin, 0, 3)
        adv.addRow("U-Net", grid)
        adv.addRow("Device", self.device_combo)
        adv.addRow("Seed", self.seed_spin)
        adv.addRow("Samples K", self.samples_spin)
        adv_box = QWidget()
        adv_box.setLayout(adv)
        self.advanced = QCollapsible("Advanced settings")
        self.advanced.addWidget(adv_box)
        self.advanced.collapse(animate=False)

        # buttons
        self.dewedge_button = QPushButton("Dewedge")
        self.dewedge_button.setToolTip("Train a model on this tomogram, then apply it")
        self.dewedge_button.setStyleSheet("font-weight: bold;")
        self.dewedge_button.clicked.connect(lambda: self.dewedge())
        self.apply_button = QPushButton("Apply model\u2026")
        self.apply_button.setToolTip("Apply the current model or a model file to the chosen tomogram")
        self.apply_button.clicked.connect(self._on_apply_clicked)
        self.save_model_button = QPushButton("Save model\u2026")
        self.save_model_button.setToolTip("Save the current model (weights, wedge and settings) to a file")
        self.save_model_button.clicked.connect(lambda: self.save_model())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; the model trained so far is kept")
        self.stop_button.clicked.connect(self.stop)
        self.compare_button = QPushButton("Compare before/after")
        self.compare_button.setToolTip("Open the comparison and orthogonal views on the tomogram and its result")
        self.compare_button.clicked.connect(lambda: self.compare())
        self.save_result_button = QPushButton("Save result\u2026")
        self.save_result_button.setToolTip("Save the dewedged tomogram as MRC (voxel size kept)")
        self.save_result_button.clicked.connect(lambda: self.save_result())

        buttons = QGridLayout()
        buttons.addWidget(self.dewedge_button, 0, 0)
        buttons.addWidget(self.stop_button, 0, 1)
        buttons.addWidget(self.apply_button, 1, 0)
        buttons.addWidget(self.save_model_button, 1, 1)
        buttons.addWidget(self.compare_button, 2, 0)
        buttons.addWidget(self.save_result_button, 2, 1)

        self.status_label = QLabel("Choose a tomogram and press Dewedge.")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model_label = QLabel("No model yet.")
        self.model_label.setWordWrap(True)
        self.plot = LossPlot(title="loss")

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.advanced)
        layout.addLayout(buttons)
        layout.addWidget(self.status_label)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.model_label)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

    @staticmethod
    def _int(lo: int, hi: int, step: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(lo, hi)
        spin.setSingleStep(step)
        spin.setToolTip(tip)
        spin.setKeyboardTracking(False)
        return spin

    @staticmethod
    def _double(lo: float, hi: float, step: float, decimals: int, suffix: str, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(lo, hi)
        spin.setSingleStep(step)
        spin.setDecimals(decimals)
        if suffix:
            spin.setSuffix(suffix)
        spin.setToolTip(tip)
        spin.setKeyboardTracking(False)
        return spin

    @staticmethod
    def _devices() -> list[str]:
        try:
            from ..core.device import available_devices

            return available_devices()
        except Exception:  # noqa: BLE001 - torch unusable: let a run report it
            return ["cpu"]

    # ------------------------------------------------------------------ settings

    def settings(self) -> DewedgeSettings:
        """The form's current values."""
        noise = float(self.noise_spin.value())
        seed = int(self.seed_spin.value())
        return DewedgeSettings(
            preset=self.preset_combo.currentText(),
            subtomo_size=int(self.subtomo_spin.value()),
            n_subtomos=int(self.count_spin.value()),
            steps=int(self.steps_spin.value()),
            batch_size=int(self.batch_spin.value()),
            lambda_consistency=float(self.lambda_spin.value()),
            noise_scale=None if noise <= self.noise_spin.minimum() else noise,
            energy_objective=self.objective_combo.currentText(),
            device=self.device_combo.currentText(),
            seed=None if seed < 0 else seed,
            samples=int(self.samples_spin.value()),
            unet_depth=int(self.depth_spin.value()),
            unet_width=int(self.width_spin.value()),
        )

    def set_settings(self, settings: DewedgeSettings | None = None, **changes: Any) -> None:
        """Fill the form (all of ``settings`` and/or single fields by name)."""
        values = copy.copy(settings) if settings is not None else self.settings()
        for key, value in changes.items():
            if not hasattr(values, key):
                raise ValueError(f"unknown dewedge setting {key!r}")
            setattr(values, key, value)
        self._apply_settings(values)

    def _apply_settings(self, s: DewedgeSettings) -> None:
        self._syncing = True
        try:
            self.preset_combo.setCurrentText(s.preset)
            self.subtomo_spin.setValue(int(s.subtomo_size))
            self.count_spin.setValue(int(s.n_subtomos))
            self.steps_spin.setValue(int(s.steps))
            self.batch_spin.setValue(int(s.batch_size))
            self.lambda_spin.setValue(float(s.lambda_consistency))
            self.noise_spin.setValue(self.noise_spin.minimum() if s.noise_scale is None else float(s.noise_scale))
            self.objective_combo.setCurrentText(s.energy_objective)
            if self.device_combo.findText(s.device) < 0:
                self.device_combo.addItem(s.device)
            self.device_combo.setCurrentText(s.device)
            self.seed_spin.setValue(-1 if s.seed is None else int(s.seed))
            self.samples_spin.setValue(int(s.samples))
            self.depth_spin.setValue(int(s.unet_depth))
            self.width_spin.setValue(int(s.unet_width))
        finally:
            self._syncing = False

    def _on_preset(self, name: str) -> None:
        if self._syncing or name not in PRESET_NAMES:
            return
        current = self.settings()
        self._apply_settings(
            settings_for_preset(name, device=current.device, samples=current.samples, seed=current.seed)
        )

    # ------------------------------------------------------------------ wedge <-> shared state

    def _sync_wedge(self, geometry: WedgeGeometry) -> None:
        self._syncing = True
        try:
            self.tilt_min_spin.setValue(geometry.tilt_min)
            self.tilt_max_spin.setValue(geometry.tilt_max)
            self.axis_combo.setCurrentText(geometry.tilt_axis)
        finally:
            self._syncing = False

    def _on_state_changed(self, geometry: WedgeGeometry) -> None:
        if is_alive(self):
            self._sync_wedge(geometry)

    def _on_wedge_edited(self, *_: Any) -> None:
        if self._syncing:
            return
        lo, hi = float(self.tilt_min_spin.value()), float(self.tilt_max_spin.value())
        try:
            self.state.set(tilt_min=lo, tilt_max=hi, tilt_axis=self.axis_combo.currentText(), origin="user")
        except ValueError as exc:
            self._set_status(f"Invalid wedge: {exc}")

    @property
    def geometry(self) -> WedgeGeometry:
        """The wedge used for training: the viewer's shared wedge state."""
        return self.state.geometry

    def _on_layer_removed(self, event: Any = None) -> None:
        if is_alive(self) and not self._closing:
            self._update_buttons()

    def _on_layer_changed(self, layer: Any) -> None:
        if layer is not None and self.state.origin in ("default", "metadata"):
            geometry = geometry_from_layer(layer)
            if geometry is not None:
                self.state.set(geometry, origin="metadata")
        self._update_buttons()

    # ------------------------------------------------------------------ state of the buttons

    @property
    def is_running(self) -> bool:
        """True while a job runs."""
        return self.worker is not None

    @property
    def result_layer(self) -> Any:
        """The layer of the last result (None when none or removed)."""
        return self._live_layer(self._result_ref)

    @property
    def uncertainty_layer(self) -> Any:
        return self._live_layer(self._uncertainty_ref)

    @property
    def preview_layer(self) -> Any:
        return self._live_layer(self._preview_ref)

    def _live_layer(self, ref: Any) -> Any:
        layer = ref() if ref is not None else None
        if layer is None or not any(layer is other for other in self.viewer.layers):
            return None
        return layer

    @property
    def status(self) -> str:
        return self.status_label.text()

    def _set_status(self, text: str) -> None:
        if is_alive(self):
            self.status_label.setText(text)

    def _update_buttons(self) -> None:
        if not is_alive(self):
            return
        running = self.is_running
        has_layer = self.layer_picker.layer() is not None
        self.dewedge_button.setEnabled(not running and has_layer)
        self.apply_button.setEnabled(not running and has_layer)
        self.save_model_button.setEnabled(not running and self.model is not None)
        self.stop_button.setEnabled(running)
        has_result = self.result_layer is not None
        self.compare_button.setEnabled(has_result)
        self.save_result_button.setEnabled(has_result)
        for w in (self.layer_picker, self.preset_combo, self.advanced):
            w.setEnabled(not running)
        if self.model is None:
            self.model_label.setText("No model yet.")
        else:
            where = Path(self.model_path).name if self.model_path else "in memory, not saved"
            self.model_label.setText(f"Model ({where}): {self.model.summary()}")

    # ------------------------------------------------------------------ actions

    def dewedge(self) -> Any:
        """Train on the chosen layer and apply the model to it. Returns the worker (None if it could not start)."""
        layer = self._checked_layer()
        if layer is None:
            return None
        settings = self.settings()
        try:
            config = build_config(settings)
        except ValueError as exc:
            return self._refuse(f"Invalid settings: {exc}")
        geometry = self.geometry
        name, path = layer_source(layer)
        voxel = self._voxel_size(layer)
        control = JobControl()
        job = {"kind": "train", "layer": weakref.ref(layer), "name": name, "path": path, "geometry": geometry,
               "config": config, "settings": settings, "started": time.monotonic()}
        return self._start(
            train_and_apply_job,
            (volume_of(layer), geometry, config, control),
            {"samples": settings.samples, "voxel_size": voxel, "source": path or name},
            control,
            job,
            total=config.steps,
            desc=f"Dewedge {name}: training",
            status=f"Preparing the training on {name} ({settings.preset}, {config.steps} steps)\u2026",
        )

    def apply_model(self, path: str | Path | None = None, *, use_current: bool = False) -> Any:
        """Apply a model to the chosen layer: the model file at ``path`` (asked for
        when None and ``use_current`` is False) or the current model. Returns the worker."""
        layer = self._checked_layer()
        if layer is None:
            return None
        if use_current:
            if self.model is None:
                return self._refuse("No model yet: press Dewedge or load a model file.")
            model: Any = self.model
            model_path = self.model_path
        else:
            if path is None:
                path = self._ask_open_path()
                if not path:
                    return None
            model = model_path = str(path)
        settings = self.settings()
        name, src_path = layer_source(layer)
        control = JobControl()
        job = {"kind": "apply", "layer": weakref.ref(layer), "name": name, "path": src_path,
               "geometry": getattr(model, "geometry", self.geometry), "config": None, "settings": settings,
               "model_path": model_path, "started": time.monotonic()}
        return self._start(
            apply_job,
            (model, volume_of(layer), control),
            {"samples": settings.samples, "device": settings.device, "seed": settings.seed},
            control,
            job,
            total=0,
            desc=f"Dewedge {name}: applying",
            status=f"Applying the model to {name}\u2026",
        )

    def save_model(self, path: str | Path | None = None) -> Path | None:
        """Save the current model (asks for a file name when ``path`` is None). Returns the path written."""
        if self.model is None:
            self._refuse("No model to save yet: press Dewedge (or Stop during a run) first.")
            return None
        if path is None:
            layer = self.layer_picker.layer()
            stem = (layer.name if layer is not None else "model").replace(" ", "_")
            path = self._ask_save_path(f"{stem}_dewedge.pt", MODEL_FILTER, "Save model")
            if not path:
                return None
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".pt")
        try:
            written = self.model.save(path)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._refuse(f"Could not save the model to {path}: {exc}")
            return None
        self.model_path = str(written)
        if self._result_model is self.model:  # the last results now name their model file
            for layer in (self.result_layer, self.uncertainty_layer):
                prov = layer.metadata.get("provenance") if layer is not None else None
                if isinstance(prov, dict) and prov.get("model") == "in memory":
                    prov["model"] = str(written)
        self._set_status(f"Model saved to {written}")
        self._update_buttons()
        return written

    def save_result(self, path: str | Path | None = None) -> list[str] | None:
        """Save the last result layer as MRC with the plugin's writer. Returns the paths written."""
        layer = self.result_layer
        if layer is None:
            self._refuse("No result to save yet.")
            return None
        if path is None:
            path = self._ask_save_path(f"{layer.name.replace(' ', '_')}.mrc", MRC_FILTER, "Save dewedged tomogram")
            if not path:
                return None
        from ..io.napari_hooks import write_mrc

        data, attributes, _ = layer.as_layer_data_tuple()
        try:
            written = write_mrc(str(path), data, attributes)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._refuse(f"Could not save {layer.name} to {path}: {exc}")
            return None
        self._set_status(f"Saved {layer.name} to {written[0]}")
        return written

    def stop(self) -> None:
        """Stop the running job at the next step (training) or tile batch (inference)."""
        control = self._jobs.control
        if control is None:
            return
        control.request_stop()
        self._set_status("Stopping after the current step\u2026")
        self.stop_button.setEnabled(False)

    def compare(self) -> Any:
        """Open the before/after comparison (compare widget and orthogonal views)."""
        after = self.result_layer
        if after is None:
            self._refuse("No result to compare yet.")
            return None
        source_ref = self._last_source_ref
        before = source_ref() if source_ref is not None else None
        if before is None or not any(before is layer for layer in self.viewer.layers):
            return self._refuse("The tomogram of the last result is no longer in the viewer.")
        try:
            from .compare import open_comparison
        except ImportError as exc:
            return self._refuse(f"The comparison view is not available: {exc}")
        try:
            return open_comparison(self.viewer, before, after)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            return self._refuse(f"Could not open the comparison: {exc}")

    # ------------------------------------------------------------------ helpers of the actions

    def _checked_layer(self) -> Any:
        if self.is_running:
            self._refuse("A run is in progress: stop it first.")
            return None
        layer = self.layer_picker.layer()
        if layer is None:
            self._refuse("Choose a 3D image layer (a tomogram) first.")
            return None
        return layer

    @staticmethod
    def _voxel_size(layer: Any) -> tuple[float, float, float] | None:
        meta = getattr(layer, "metadata", None) or {}
        vs = meta.get("voxel_size")
        try:
            if vs is not None:
                values = np.broadcast_to(np.asarray(vs, float), (3,))
                return tuple(float(v) for v in values)  # type: ignore[return-value]
            return tuple(float(v) for v in layer.scale[-3:])  # type: ignore[return-value]
        except (TypeError, ValueError):
            return None

    def _refuse(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self._set_status(message)
        show_error(message)
        return None

    def _ask_open_path(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, "Apply model", "", MODEL_FILTER)
        return path or None

    def _ask_save_path(self, default: str, filter_: str, title: str) -> str | None:
        path, _ = QFileDialog.getSaveFileName(self, title, default, filter_)
        return path or None

    def _on_apply_clicked(self) -> None:
        if self.model is None:
            self.apply_model()
            return
        menu = QMenu(self)
        where = Path(self.model_path).name if self.model_path else "in memory"
        current = menu.addAction(f"Current model ({where}, {self.model.steps_done} steps)")
        current.triggered.connect(lambda: self.apply_model(use_current=True))
        from_file = menu.addAction("Model file\u2026")
        from_file.triggered.connect(lambda: self.apply_model())
        menu.exec(self.apply_button.mapToGlobal(self.apply_button.rect().bottomLeft()))

    # ------------------------------------------------------------------ running a job

    def _start(self, func: Any, args: tuple, kwargs: dict, control: JobControl, job: dict, *,
               total: int, desc: str, status: str) -> Any:
        from napari.qt.threading import create_worker

        self.last_failure = None
        self.last_outcome = None
        source = job["layer"]()
        job["frame"] = {
            "scale": tuple(float(v) for v in source.scale[-3:]),
            "translate": tuple(float(v) for v in source.translate[-3:]),
            "units": _layer_units(source),
            "metadata": copy.deepcopy(dict(source.metadata or {})),
        }
        self._job = job
        self._latest_training = None
        self._latest_inference = None
        self._latest_preview = None
        if job["kind"] == "train":
            self.plot.clear()
            self.plot.redraw(force=True)
        self._preview_shown = self._plot_shown = 0.0
        worker = create_worker(func, *args, _start_thread=False, _ignore_errors=True, **kwargs)
        worker.yielded.connect(self._on_yielded)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(lambda w=worker: self._on_finished(w))
        self.worker = worker
        self._jobs.control = control
        self._jobs.worker = worker
        self._open_progress(total, desc, job["kind"])
        self._set_status(status)
        self._update_buttons()
        self._timer.start()
        worker.start()
        return worker

    def _open_progress(self, total: int, desc: str, phase: str) -> None:
        from napari.utils import progress

        self._close_progress()
        self._progress = progress(total=total, desc=desc)
        self._progress_phase = phase

    def _close_progress(self) -> None:
        pbar, self._progress = self._progress, None
        self._progress_phase = None
        if pbar is not None:
            try:
                pbar.close()
            except Exception:  # noqa: BLE001 - already closed
                pass

    # Everything the worker sends, and the refresh ticks, go through one queue
    # handled in order: adding a layer may process pending events (a nested
    # event loop), which must not run one handler in the middle of another.

    def _post(self, kind: str, payload: Any = None) -> None:
        self._queue.append((kind, payload))
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._queue:
                kind, payload = self._queue.popleft()
                handler = {"item": self._handle_item, "refresh": self._handle_refresh,
                           "finished": self._handle_finished, "errored": self._handle_errored}[kind]
                handler(payload)
        finally:
            self._dispatching = False

    def _on_yielded(self, item: Any) -> None:
        self._post("item", item)

    def _refresh(self) -> None:
        self._post("refresh")

    def _on_errored(self, exc: BaseException) -> None:
        self._post("errored", exc)

    def _on_finished(self, worker: Any) -> None:
        self._post("finished", worker)

    def _handle_item(self, item: Any) -> None:
        """Record a job's item (cheap); :meth:`_handle_refresh` shows it."""
        if self._closing or not is_alive(self):
            return
        if isinstance(item, TrainingProgress):
            for step, losses in item.losses:
                self.plot.append(step, {k: v for k, v in losses.items() if k in PLOTTED_LOSSES})
            self._latest_training = item.event
            if item.event.preview is not None:
                self._latest_preview = (item.event.preview, item.event.preview_origin)
        elif isinstance(item, JobOutcome):
            self._finish(item)
        elif isinstance(item, JobFailure):
            self._fail(item)
        elif hasattr(item, "done_tiles"):
            self._latest_inference = item
        else:  # a model loaded from a file
            self._check_model_wedge(item)

    def _handle_refresh(self, _: Any = None) -> None:
        """Show the latest progress (runs a few times per second on the GUI thread)."""
        if self._closing or not is_alive(self):
            return
        event, inf = self._latest_training, self._latest_inference
        if inf is not None:
            self._show_inference(inf)
        elif event is not None:
            self._show_training(event)
        now = time.monotonic()
        if self._latest_preview is not None and now - self._preview_shown >= PREVIEW_INTERVAL_S:
            preview, origin = self._latest_preview
            self._latest_preview = None
            self._preview_shown = now
            self._show_preview(preview, origin)
        if now - self._plot_shown >= PLOT_INTERVAL_S and self.plot.redraw():
            self._plot_shown = now

    def _show_training(self, event: Any) -> None:
        pbar = self._progress
        if pbar is not None and event.step != pbar.n:
            pbar.update(max(0, int(event.step) - int(pbar.n)))
        if event.step == 0:
            text = "Training: " + (event.message or "starting")
        else:
            loss = event.losses.get("generator") if event.losses else None
            parts = [f"Training: step {event.step}/{event.total}"]
            if event.seconds_per_step:
                parts.append(f"{event.seconds_per_step:.2f} s/step")
                parts.append(f"{_format_seconds(event.eta_s)} left")
            if loss is not None:
                parts.append(f"loss {loss:.3g}")
            text = " \u00b7 ".join(parts)
        self._set_status(text)

    def _show_inference(self, event: Any) -> None:
        if self._progress_phase != "apply":
            self._open_progress(int(event.total_tiles), f"Dewedge {self._job.get('name', '')}: applying", "apply")
        pbar = self._progress
        if pbar is not None:
            if event.done_tiles != pbar.n:
                pbar.update(max(0, int(event.done_tiles) - int(pbar.n)))
        sample = f", sample {event.sample}/{event.samples}" if event.samples > 1 else ""
        self._set_status(
            f"Applying the model: {event.done_tiles}/{event.total_tiles} tiles{sample} \u00b7 "
            f"{_format_seconds(event.eta_s)} left"
        )

    def _show_preview(self, preview: np.ndarray, origin: Any) -> None:
        layer_ref = self._job.get("layer")
        source = layer_ref() if layer_ref is not None else None
        if source is None or preview.ndim != 3:
            return
        scale = np.asarray(source.scale[-3:], float)
        translate = np.asarray(source.translate[-3:], float)
        if origin is not None:
            translate = translate + np.asarray(origin, float) * scale
        layer = self.preview_layer
        if layer is None:
            name = f"{self._job.get('name', source.name)} preview"
            kwargs: dict[str, Any] = {
                "name": name,
                "scale": tuple(scale),
                "translate": tuple(translate),
                "metadata": {"dewedge_role": ROLE_PREVIEW, "source_layer": source.name},
                "colormap": "gray",
            }
            units = _layer_units(source)
            if units is not None:
                kwargs["units"] = units
            try:
                kwargs["contrast_limits"] = tuple(source.contrast_limits)
            except Exception:  # noqa: BLE001 - no usable limits: napari picks them
                pass
            selected = list(self.viewer.layers.selection)
            layer = self.viewer.add_image(preview, **kwargs)
            with contextlib.suppress(AttributeError):  # outline where the preview sits
                layer.bounding_box.visible = True
                layer.bounding_box.points = False
                layer.bounding_box.line_color = "#00c8ff"
            self.viewer.layers.selection.clear()
            self.viewer.layers.selection.update(selected)
            self._preview_ref = weakref.ref(layer)
        else:
            layer.data = preview
            layer.translate = tuple(translate)

    def _finish(self, outcome: JobOutcome) -> None:
        """The job's last item: keep the model, add the result layers.

        The model is kept first: adding layers may process queued events
        (the worker's ``finished`` among them) before this returns.
        """
        self.last_outcome = outcome
        if outcome.model is not None:
            self.model = outcome.model
            if outcome.trained:
                self.model_path = None
            elif outcome.model_path:
                self.model_path = outcome.model_path
        if self._latest_inference is not None:
            self._show_inference(self._latest_inference)
        elif self._latest_training is not None:
            self._show_training(self._latest_training)
        self._latest_training = self._latest_inference = None
        preview, self._latest_preview = self._latest_preview, None
        if preview is not None and outcome.result is None:
            self._show_preview(*preview)
        if outcome.trained and self.model is not None and self.model.history:
            self.plot.clear()
            for entry in self.model.history:
                self.plot.append(int(entry.get("step", 0)), {k: v for k, v in entry.items() if k in PLOTTED_LOSSES})
        self.plot.redraw()
        if outcome.result is not None:
            self._add_results(outcome)
            seconds = time.monotonic() - self._job.get("started", time.monotonic())
            self._set_status(
                f"Done in {_format_seconds(seconds)}: added \"{self.result_layer.name}\""
                + (f" and \"{self.uncertainty_layer.name}\"" if self.uncertainty_layer is not None else "")
                + ". Compare before/after, save the result or the model."
            )
        else:
            self._set_status(f"Stopped: {outcome.message}." if outcome.message else "Stopped.")
        self._update_buttons()

    def _fail(self, failure: JobFailure) -> None:
        from napari.utils.notifications import show_error

        self.last_failure = failure
        self._latest_training = self._latest_inference = self._latest_preview = None
        self._set_status(failure.message)
        show_error(failure.message)

    def _handle_errored(self, exc: BaseException) -> None:
        """An exception that escaped the job (should not happen: jobs report failures as items)."""
        if self._closing or not is_alive(self):
            return
        self._fail(JobFailure(_describe_error(exc, "running"), "".join(traceback.format_exception(exc))))

    def _handle_finished(self, worker: Any) -> None:
        if worker is not self.worker:
            return
        self.worker = None
        self._jobs.control = None
        self._jobs.worker = None
        self._close_progress()
        if not is_alive(self):
            return
        self._timer.stop()
        if self._closing:
            return
        if self.last_outcome is None and self.last_failure is None:
            self._set_status("Stopped.")
        self._update_buttons()

    def _check_model_wedge(self, model: Any) -> None:
        geometry = getattr(model, "geometry", None)
        if geometry is None:
            return
        self._job["geometry"] = geometry
        if geometry != self.geometry:
            from napari.utils.notifications import show_warning

            show_warning(
                f"The model was trained for the wedge {geometry}; the viewer's wedge is {self.geometry}. "
                "The model is applied as trained."
            )

    # ------------------------------------------------------------------ result layers

    def _add_results(self, outcome: JobOutcome) -> None:
        job = self._job
        result = outcome.result
        assert result is not None
        name = job["name"]
        model_path = outcome.model_path or (self.model_path if not outcome.trained else None)
        inference = result.settings()
        def record_for(role: str) -> dict[str, Any]:
            return provenance(name, job.get("path"), job["geometry"], model=outcome.model, model_path=model_path,
                              inference=inference, role=role)

        record = record_for(ROLE_RESULT)
        frame = job["frame"]  # taken when the run started: the layer may be gone or edited by now
        src_meta = frame["metadata"]
        common: dict[str, Any] = {"scale": frame["scale"], "translate": frame["translate"]}
        if frame["units"] is not None:
            common["units"] = frame["units"]
        preview = self.preview_layer
        if preview is not None:
            self.viewer.layers.remove(preview)
        self._preview_ref = None

        meta = result_metadata(src_meta, record, ROLE_RESULT)
        layer = self._put_layer(f"{name} dewedged", result.mean, meta, common, colormap="gray")
        self._result_ref = weakref.ref(layer)
        self._result_model = outcome.model
        self._last_source_ref = job["layer"]
        if result.std is not None:
            umeta = result_metadata(src_meta, record_for(ROLE_UNCERTAINTY), ROLE_UNCERTAINTY)
            ulayer = self._put_layer(f"{name} uncertainty", result.std, umeta, common, colormap="magma",
                                     visible=False)
            self._uncertainty_ref = weakref.ref(ulayer)
        else:
            self._uncertainty_ref = None

    def _put_layer(self, name: str, data: np.ndarray, metadata: dict, common: dict, *, colormap: str,
                   visible: bool = True) -> Any:
        """Replace the data of an earlier result layer of that name, or add a new layer."""
        existing = next((lay for lay in self.viewer.layers if lay.name == name), None)
        if existing is not None and (existing.metadata or {}).get("dewedge_role") == metadata["dewedge_role"] \
                and tuple(existing.data.shape) == tuple(data.shape):
            existing.data = data
            existing.metadata = metadata
            existing.scale = common["scale"]
            existing.translate = common["translate"]
            existing.reset_contrast_limits()
            return existing
        kwargs = dict(common, name=name, metadata=metadata, colormap=colormap, visible=visible)
        if metadata["dewedge_role"] == ROLE_RESULT:
            lo, hi = np.percentile(data[:: max(1, data.shape[0] // 16)], [0.5, 99.5])
            if hi > lo:
                kwargs["contrast_limits"] = (float(lo), float(hi))
        return self.viewer.add_image(data, **kwargs)

    # ------------------------------------------------------------------ closing

    def _watch_window(self) -> None:
        window = getattr(getattr(self.viewer, "window", None), "_qt_window", None)
        if isinstance(window, QObject):
            window.installEventFilter(self)
            self._window_filtered = weakref.ref(window)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Close and self._window_filtered is not None and obj is self._window_filtered():
            QTimer.singleShot(0, self._after_window_close)
        return super().eventFilter(obj, event)

    def _after_window_close(self) -> None:
        window = self._window_filtered() if self._window_filtered is not None else None
        if window is None or not is_alive(window) or not window.isVisible():
            self.shutdown()

    def shutdown(self) -> None:
        """End any running job (the viewer or the widget is closing); no result is added."""
        self._closing = True
        self._jobs.shutdown()
        if is_alive(self):
            self._timer.stop()
        self._close_progress()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        """Closing the widget stops a running job (the model trained so far is kept)."""
        self.stop()
        super().closeEvent(event)
