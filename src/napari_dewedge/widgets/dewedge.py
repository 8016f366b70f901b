"""One-click dewedging and denoising dock widget.

:class:`DewedgeWidget` trains a CryoGEN model on the chosen tomogram and
applies it (**Dewedge**), applies a saved or the current model
(**Apply model…**), saves the model (**Save model…**) and stops a run
(**Stop**). The wedge is the viewer's shared wedge state (the same object the
missing-wedge inspector edits). The jobs are :mod:`napari_dewedge.core.pipeline`'s,
run in a napari thread worker; the GUI thread only records their events and
applies the latest of them a few times per second (progress bar, status line,
loss plot, preview layer), so the viewer stays responsive during training.

Results are new layers ``"<name> dewedged"`` (and ``"<name> uncertainty"``
with K > 1 samples) with the source's frame and their provenance in
``metadata`` (:class:`~napari_dewedge.core.layers.Provenance`).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QFileDialog,
    QMenu,
    QWidget,
)

from ..core import pipeline
from ..core.inference.views import MIRROR_VIEWS
from ..core.wedge import WedgeGeometry
from ._dewedge_layout import PRESET_NAMES, build_layout
from ._helpers import format_seconds, is_alive, volume_of
from ._result_layers import ResultLayers, RunJob
from ._runner import TaskRunner
from ._settings_form import PASS_KEYS, build_config, form_settings, preset_values, refit_for_device
from .state import get_wedge_state, register_widget

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..core.model import TrainedModel

__all__ = [
    "PRESET_NAMES",
    "form_settings",
    "preset_values",
    "build_config",
    "DewedgeWidget",
]

#: Losses drawn in the live plot (others, e.g. the noise scale drawn per step, are not losses).
PLOTTED_LOSSES = ("generator", "fidelity", "consistency", "energy", "energy_net")
#: Interval (ms) of the GUI refresh (status, progress bar, plot, preview).
GUI_REFRESH_MS = 250
#: Smallest interval (s) between two updates of the preview layer and of the loss plot.
PREVIEW_INTERVAL_S = 1.0
PLOT_INTERVAL_S = 0.5
MODEL_FILTER = "napari-dewedge model (*.pt);;All files (*)"
MRC_FILTER = "MRC (*.mrc *.rec *.map);;All files (*)"


# --------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------


def _progress_of(item: Any) -> int | None:
    """Where the progress bar stands after a job event: the step, then the tiles done."""
    if item.kind == "training":
        return int(item.event.step)
    if item.kind == "applying":
        return int(item.event.done_tiles)
    return None


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
        self.last_failure: pipeline.Failure | None = None
        self.last_outcome: pipeline.Outcome | None = None
        self.runner = TaskRunner(self, napari_viewer)
        self.runner.finished.connect(self._handle_finished)
        self._control: pipeline.JobControl | None = None
        self._job: RunJob | None = None
        self._latest_training: Any = None
        self._latest_inference: Any = None
        self._latest_preview: tuple[np.ndarray, Any] | None = None
        self._progress_phase: str | None = None
        self._preview_shown = 0.0
        self._plot_shown = 0.0
        self._syncing = False
        self._closing = False
        self.layers = ResultLayers(napari_viewer)

        self._build()
        self.set_settings(preset_values("quick"))
        self.state.changed.connect(self._on_state_changed)
        self._sync_wedge(self.state.geometry)
        self._on_layer_changed(self.layer_picker.layer())

        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._update_buttons()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        build_layout(self)

    # ------------------------------------------------------------------ settings

    def settings(self) -> dict[str, Any]:
        """The form's current values: the schema's settings, ``preset``, ``samples`` and the passes
        (:data:`PASS_KEYS`: on or off)."""
        return {"preset": self.preset_combo.currentText(), "samples": int(self.samples_spin.value()),
                **{key: bool(self.pass_checks[key].isChecked()) for key in PASS_KEYS},
                **self.form.values(), **self.expert_form.values()}

    @staticmethod
    def _passes(settings: dict[str, Any]) -> dict[str, Any]:
        """The application's passes among the form values, as ``ApplySpec`` keywords."""
        passes: dict[str, Any] = {key: bool(settings[key]) for key in PASS_KEYS if key != "mirror"}
        return {**passes, "views": MIRROR_VIEWS if settings["mirror"] else 1}

    def set_settings(self, values: dict[str, Any] | None = None, **changes: Any) -> None:
        """Fill the form (all of ``values`` and/or single settings by name)."""
        values = {**(values or {}), **changes}
        known = set(self.settings())
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown dewedge setting(s) {unknown}")
        self._syncing = True
        try:
            if "preset" in values:
                self.preset_combo.setCurrentText(values["preset"])
            if "samples" in values:
                self.samples_spin.setValue(int(values["samples"]))
            for key in PASS_KEYS:
                if key in values:
                    self.pass_checks[key].setChecked(bool(values[key]))
            self.form.set_values(values)
            self.expert_form.set_values(values)
        finally:
            self._syncing = False
            self._device_shown = self.device_combo.currentText()

    def _on_preset(self, name: str) -> None:
        if self._syncing or name not in PRESET_NAMES:
            return
        current = self.settings()
        self.set_settings(preset_values(name, device=current["device"], samples=current["samples"],
                                        seed=current["seed"]))

    def _on_device(self, device: str) -> None:
        """Refit what the preset fits to the machine (the quick preset's U-Net width on a CPU
        without bfloat16) unless the user has changed it."""
        if self._syncing:
            return
        before, self._device_shown = self._device_shown, device
        changes = refit_for_device(self.settings(), before, device)
        if changes:
            self.set_settings(changes)

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
        self.dataset.refresh()
        self.state.adopt(layer)
        self._update_buttons()

    # ------------------------------------------------------------------ state of the buttons

    @property
    def is_running(self) -> bool:
        """True while a job runs."""
        return self.runner.busy("job")

    @property
    def result_layer(self) -> Any:
        """The layer of the last result (None when none or removed)."""
        return self.layers.live(self.layers.result)

    @property
    def uncertainty_layer(self) -> Any:
        return self.layers.live(self.layers.uncertainty)

    @property
    def preview_layer(self) -> Any:
        return self.layers.live(self.layers.preview)

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
        """Train on the chosen layer (and the dataset's other layers and halves) and apply the
        model to it. Returns the task id (None if it could not start)."""
        layer = self._checked_layer()
        if layer is None:
            return None
        settings = self.settings()
        try:
            config = build_config(settings)
            data = self.dataset.data(layer)
        except ValueError as exc:
            return self._refuse(f"Invalid settings: {exc}")
        more, _, _ = self.dataset.chosen()
        job = RunJob.of("train", layer, data[0].geometry,
                        others=tuple(RunJob.of("train", lay, d.geometry) for lay, d in zip(more, data[1:])))
        name = job.name
        train_spec = pipeline.TrainSpec(data[0].geometry, config, source=job.path or name)
        apply_spec = pipeline.ApplySpec(samples=settings["samples"], device=config.device, seed=config.seed,
                                        **self._passes(settings))
        others = f" and {len(data) - 1} more tomogram(s)" if len(data) > 1 else ""
        return self._start(
            pipeline.train_and_apply,
            (data, train_spec, apply_spec),
            job,
            total=config.steps,
            desc=f"Dewedge {name}: training",
            status=f"Preparing the training on {name}{others} ({settings['preset']}, {config.steps} steps)\u2026",
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
        job = RunJob.of("apply", layer, getattr(model, "geometry", self.geometry), model_path=model_path)
        name = job.name
        spec = pipeline.ApplySpec(samples=settings["samples"], device=settings["device"], seed=settings["seed"],
                                  geometry=self.geometry, **self._passes(settings))
        return self._start(
            pipeline.apply,
            (model, volume_of(layer), spec),
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
        if self.layers.model is self.model:  # the last results now name their model file
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
        control = self._control
        if control is None or not self.is_running:
            return
        control.request_stop()
        self._set_status("Stopping after the current step\u2026")
        self.stop_button.setEnabled(False)

    def set_dataset(self, more: list | tuple = (), even: Any = None, odd: Any = None, mask: Any = None) -> None:
        """Choose the dataset's other tomograms, the chosen tomogram's halves and mask (layers or names)."""
        self.dataset.choose(more, even, odd, mask)

    def compare(self) -> Any:
        """Open the before/after comparison (compare widget and orthogonal views)."""
        after = self.result_layer
        if after is None:
            self._refuse("No result to compare yet.")
            return None
        before = self.layers.live(self.layers.source)
        if before is None:
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

    def _start(self, func: Any, args: tuple, job: RunJob, *, total: int, desc: str, status: str) -> Any:
        self.last_failure = None
        self.last_outcome = None
        self._job = job
        self._latest_training = None
        self._latest_inference = None
        self._latest_preview = None
        if job.kind == "train":
            self.plot.clear()
            self.plot.redraw(force=True)
        self._preview_shown = self._plot_shown = 0.0
        control = self._control = pipeline.JobControl()
        self._progress_phase = job.kind
        task = self.runner.run(func, *args, control, key="job", cpu_threads=pipeline.gui_cpu_threads(),
                               on_yield=self._on_items, on_error=self._handle_errored,
                               on_cancel=control.request_stop, throttle_s=GUI_REFRESH_MS / 1000,
                               progress=(total, desc), progress_of=_progress_of)
        self._set_status(status)
        self._update_buttons()
        return task

    @property
    def _progress(self) -> Any:
        """The running job's napari progress bar (None when no job runs)."""
        return self.runner.progress_bar("job")

    def _on_items(self, items: list) -> None:
        """The job's events since the last delivery (a few times per second, in order)."""
        for item in items:
            self._handle_item(item)
        if self.is_running:
            self._handle_refresh()

    def _handle_item(self, item: Any) -> None:
        """Record a job's item (cheap); :meth:`_handle_refresh` shows it."""
        if self._closing or not is_alive(self):
            return
        kind = item.kind
        if kind == "training":
            for step, losses in item.losses:
                self.plot.append(step, {k: v for k, v in losses.items() if k in PLOTTED_LOSSES})
            self._latest_training = item.event
        elif kind == "preview":
            self._latest_preview = (item.volume, item.origin)
        elif kind == "applying":
            self._latest_inference = item.event
        elif kind == "model":
            if not item.trained:  # loaded from a file: results are tagged with its wedge
                self._job = replace(self._job, geometry=item.model.geometry)
        elif kind == "notice":
            from napari.utils.notifications import show_warning

            show_warning(item.message)
        elif kind == "result" and item.index > 0:  # a dataset's further tomograms
            self.layers.add_results(self._job.others[item.index - 1], item, None, primary=False)
            self._set_status(f"Applied the model to {item.name} ({item.index + 1}/{len(self._job.others) + 1})")
            self.last_outcome = item
        elif kind == "result":
            self._finish(item)
        elif kind == "failure":
            self._fail(item)

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
        if pbar is not None and self._progress_phase == "train" and event.total and pbar.total != event.total:
            pbar.total = int(event.total)  # a time budget projects the steps as the run goes
        if event.step == 0:
            text = "Training: " + (event.message or "starting")
        else:
            loss = event.losses.get("generator") if event.losses else None
            parts = [f"Training: step {event.step}/{event.total}"]
            if event.seconds_per_step:
                parts.append(f"{event.seconds_per_step:.2f} s/step")
                parts.append(f"{format_seconds(event.eta_s)} left")
            if loss is not None:
                parts.append(f"loss {loss:.3g}")
            text = " \u00b7 ".join(parts)
        self._set_status(text)

    def _show_inference(self, event: Any) -> None:
        pbar = self._progress
        if self._progress_phase != "apply" and pbar is not None:  # the bar now counts tiles
            self._progress_phase = "apply"
            pbar.total = int(event.total_tiles)
            pbar.set_description(f"Dewedge {self._job.name}: applying")
        sample = f", sample {event.sample}/{event.samples}" if event.samples > 1 else ""
        self._set_status(
            f"Applying the model: {event.done_tiles}/{event.total_tiles} tiles{sample} \u00b7 "
            f"{format_seconds(event.eta_s)} left"
        )

    def _show_preview(self, preview: np.ndarray, origin: Any) -> None:
        self.layers.show_preview(self._job, preview, origin)

    def _finish(self, outcome: pipeline.Outcome) -> None:
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
            self.layers.add_results(self._job, outcome, self.model_path)
            seconds = time.monotonic() - self._job.started
            self._set_status(
                f"Done in {format_seconds(seconds)}: added \"{self.result_layer.name}\""
                + (f" and \"{self.uncertainty_layer.name}\"" if self.uncertainty_layer is not None else "")
                + ". Compare before/after, save the result or the model."
            )
        else:
            self._set_status(f"Stopped: {outcome.message}." if outcome.message else "Stopped.")
        self._update_buttons()

    def _fail(self, failure: pipeline.Failure) -> None:
        from napari.utils.notifications import show_error

        self.last_failure = failure
        self._latest_training = self._latest_inference = self._latest_preview = None
        self._set_status(failure.message)
        show_error(failure.message)

    def _handle_errored(self, exc: BaseException) -> None:
        """An exception that escaped the job (should not happen: jobs report failures as items)."""
        if self._closing or not is_alive(self):
            return
        self._fail(pipeline.Failure(pipeline.describe_error(exc, "running"),
                                    "".join(traceback.format_exception(exc)), "running", exc))

    def _handle_finished(self, key: Any) -> None:
        if key != "job" or not is_alive(self):
            return
        self._control = None
        self._progress_phase = None
        if self._closing:
            return
        if self.last_outcome is None and self.last_failure is None:
            self._set_status("Stopped.")
        self._update_buttons()


    def shutdown(self) -> None:
        """End any running job (the viewer or the widget is closing); no result is added."""
        self._closing = True
        self.runner.shutdown()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        """Closing the widget stops a running job (the model trained so far is kept)."""
        self.stop()
        super().closeEvent(event)
