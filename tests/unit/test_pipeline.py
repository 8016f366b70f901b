"""The jobs of core/pipeline: what the widget, the command line and the benchmarks run."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dewedge.core import pipeline
from napari_dewedge.core.phantoms import corrupt, hollow_sphere
from napari_dewedge.core.training import TrainingConfig
from napari_dewedge.core.wedge import WedgeGeometry

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GEOMETRY = WedgeGeometry(-60, 60, "y")


def _config(**changes):
    settings = dict(subtomo_size=16, n_subtomos=4, batch_size=1, steps=4, unet={"depth": 1, "width": 4},
                    device="cpu", seed=0, preview_every=2, checkpoint_every_s=None)
    settings.update(changes)
    return TrainingConfig.preset("quick", **settings)


@pytest.fixture(scope="module")
def volume():
    return corrupt(hollow_sphere(24, 16, 3), GEOMETRY, snr=2.0, seed=1).astype(np.float32)


def _kinds(events):
    return [e.kind for e in events]


def test_train_and_apply_yields_typed_events_in_order(volume):
    events = list(pipeline.train_and_apply(volume, pipeline.TrainSpec(GEOMETRY, _config()),
                                           pipeline.ApplySpec(samples=2, device="cpu", seed=0)))
    kinds = _kinds(events)
    assert kinds[-1] == "result" and "failure" not in kinds
    assert kinds.index("model") < kinds.index("applying") < len(kinds) - 1
    assert "preview" in kinds and kinds.index("training") < kinds.index("model")
    steps = [s for e in events if e.kind == "training" for s, _ in e.losses]
    assert steps == sorted(steps) and steps[-1] == 4  # every step's losses reach the consumer, once
    preview = next(e for e in events if e.kind == "preview")
    assert preview.volume.ndim == 3 and len(preview.origin) == 3
    outcome = events[-1]
    assert outcome.trained and not outcome.stopped and outcome.model.steps_done == 4
    assert outcome.result.mean.shape == volume.shape and outcome.result.std is not None


def test_a_stop_keeps_the_model_and_gives_no_result(volume):
    control = pipeline.JobControl()
    events = []
    for event in pipeline.train_and_apply(volume, pipeline.TrainSpec(GEOMETRY, _config(steps=50)), None, control):
        events.append(event)
        if event.kind == "training" and event.event.step >= 2:
            control.request_stop()
    outcome = events[-1]
    assert outcome.kind == "result" and outcome.stopped and outcome.result is None
    assert 2 <= outcome.model.steps_done < 50 and "model is kept" in outcome.message
    assert "applying" not in _kinds(events)


def test_failures_are_the_last_event_never_raised(volume, tmp_path):
    events = list(pipeline.train(volume[:4, :4, :4] * np.nan, pipeline.TrainSpec(GEOMETRY, _config())))
    failure = events[-1]
    assert failure.kind == "failure" and failure.stage == "preparing the training"
    assert isinstance(failure.error, ValueError) and failure.message.startswith("Cannot dewedge")

    missing = tmp_path / "nothing.pt"
    events = list(pipeline.apply(missing, volume))
    assert _kinds(events) == ["failure"] and events[0].stage == "loading the model"
    assert str(missing) in events[0].message

    events = list(pipeline.apply(missing, volume, pipeline.ApplySpec(device="cuda:7")))
    assert events[-1].kind == "failure" and "cuda:7" in events[-1].message


def test_apply_loads_a_model_file_and_warns_of_another_wedge(volume, tmp_path):
    outcome = pipeline.run_job(pipeline.train(volume, pipeline.TrainSpec(GEOMETRY, _config(steps=2),
                                                                          voxel_size=(4.0, 4.0, 4.0))))
    path = outcome.model.save(tmp_path / "m.pt")
    spec = pipeline.ApplySpec(device="cpu", geometry=WedgeGeometry(-45, 50, "y"), voxel_size=(8.0, 8.0, 8.0))
    events = list(pipeline.apply(path, volume, spec))
    kinds = _kinds(events)
    assert kinds[0] == "model" and events[0].path == str(path) and not events[0].trained
    notices = [e.message for e in events if e.kind == "notice"]
    assert len(notices) == 2 and "wedge" in notices[0] and "Å voxels" in notices[1]
    assert events[-1].kind == "result" and events[-1].model_path == str(path)
    assert events[-1].result.mean.shape == volume.shape


def test_run_job_raises_the_failure_and_cpu_threads_are_restored(volume):
    import torch

    before = torch.get_num_threads()
    seen = []
    outcome = pipeline.run_job(pipeline.train(volume, pipeline.TrainSpec(GEOMETRY, _config(steps=2)),
                                              cpu_threads=2), on_event=seen.append)
    assert outcome.model.steps_done == 2 and seen[-1] is outcome
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        pipeline.run_job(pipeline.train(volume * np.nan, pipeline.TrainSpec(GEOMETRY, _config())))
