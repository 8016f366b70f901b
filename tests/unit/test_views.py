"""Mirror views (core/inference/views.py): the wedge's flips and the averaged inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_dewedge.core.inference import predict, run_inference
from napari_dewedge.core.inference.views import view_flips, wedge_flips
from napari_dewedge.core.model import TrainedModel
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge

torch.set_num_threads(1)

ALL_FLIPS = [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]


def _keeps_wedge(flip, geometry, volume) -> bool:
    def turned(v):
        return np.flip(v, flip) if flip else v

    return np.allclose(apply_wedge(turned(volume), geometry), turned(apply_wedge(volume, geometry)), atol=1e-4)


@pytest.mark.parametrize("geometry", [WedgeGeometry(-48, 64, "y"), WedgeGeometry(-60, 60, "y"),
                                      WedgeGeometry(-55, 40, "x", soft_edge=5), WedgeGeometry(-45, 45, "x")])
def test_the_flips_are_exactly_those_that_keep_the_wedge(geometry):
    volume = np.random.default_rng(0).standard_normal((12, 14, 16)).astype(np.float32)
    flips = wedge_flips(geometry)
    assert flips[0] == ()
    assert len(set(flips)) == len(flips) == (8 if geometry.tilt_min == -geometry.tilt_max else 4)
    for flip in ALL_FLIPS:
        assert _keeps_wedge(flip, geometry, volume) == (flip in flips), flip


def test_view_flips():
    asym = WedgeGeometry(-48, 64, "y")
    assert view_flips(asym, 1) == ((),)
    assert view_flips(asym, 2) == wedge_flips(asym)[:2]
    assert view_flips(asym, 8) == wedge_flips(asym)  # only four exist
    assert view_flips(None, 4) == ((),)
    with pytest.raises(ValueError, match="views"):
        view_flips(asym, 0)


class Lopsided(nn.Module):
    """A convolution with a lopsided kernel: no flip leaves it unchanged, so every view differs."""

    padding_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(27, dtype=torch.float32).reshape(1, 1, 3, 3, 3) / 27)

    def forward(self, x):
        return self.conv(x)


def _model(generator) -> TrainedModel:
    return TrainedModel(generator=generator, network={}, geometry=WedgeGeometry(-48, 64, "y"),
                        normalization={"mean": 0.0, "std": 1.0}, subtomo_size=8, training={"noise_scale": 0.0})


def test_views_average_the_flipped_back_predictions():
    volume = np.random.default_rng(1).standard_normal((8, 10, 12)).astype(np.float32)
    model = _model(Lopsided())
    single = predict(model, volume, tile=8, overlap=2, device="cpu")
    assert single.views == 1
    four = predict(model, volume, tile=8, overlap=2, device="cpu", views=4)
    assert four.views == 4 and four.mean.shape == volume.shape
    by_hand = np.mean([np.flip(predict(model, np.ascontiguousarray(np.flip(volume, f)), tile=8, overlap=2,
                                       device="cpu").mean, f) for f in wedge_flips(model.geometry)], axis=0)
    np.testing.assert_allclose(four.mean, by_hand, atol=1e-5)
    assert np.abs(four.mean - single.mean).max() > 0.1
    assert "mean of 4 mirror views" in list(run_inference(model, volume, tile=8, device="cpu", views=4))[-1].message


def test_views_fold_slab_by_slab(monkeypatch):
    from napari_dewedge.core.inference import views

    volume = np.random.default_rng(3).standard_normal((9, 10, 12)).astype(np.float32)
    model = _model(Lopsided())
    whole = predict(model, volume, tile=8, overlap=2, device="cpu", views=4).mean
    monkeypatch.setattr(views, "_SLAB_VOXELS", 2 * 10 * 12)  # two planes a slab, the last one alone
    np.testing.assert_allclose(predict(model, volume, tile=8, overlap=2, device="cpu", views=4).mean, whole,
                               atol=1e-6)


def test_views_into_caller_arrays_with_samples_and_stop():
    volume = np.random.default_rng(2).standard_normal((8, 10, 12)).astype(np.float32)
    model = _model(Lopsided())
    out = np.full(volume.shape, 7.0, np.float32)
    std = np.full(volume.shape, 3.0, np.float32)
    res = predict(model, volume, tile=8, overlap=2, device="cpu", views=4, samples=2, noise_scale=0.0,
                  out=out, std_out=std)
    assert res.mean is out and res.std is std
    np.testing.assert_allclose(out, predict(model, volume, tile=8, overlap=2, device="cpu", views=4).mean,
                               atol=1e-5)
    assert np.all(std == 0)

    events = list(run_inference(model, volume, tile=8, overlap=2, batch_size=1, device="cpu", views=4))
    total = events[-1].total_tiles
    assert [e.done_tiles for e in events] == sorted(e.done_tiles for e in events)
    one = list(run_inference(model, volume, tile=8, overlap=2, batch_size=1, device="cpu"))[-1].total_tiles
    assert total == 4 * one and events[-1].done_tiles == total and events[-1].result is not None
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > total // 4 + 2  # during the second view

    last = list(run_inference(model, volume, tile=8, overlap=2, batch_size=1, device="cpu", views=4, stop=stop))[-1]
    assert last.done and last.stopped and last.result is None
    assert total // 4 < last.done_tiles < total
