"""The missing-wedge operator T_M and its masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dewedge.core.wedge import (
    WedgeGeometry,
    apply_wedge,
    clear_mask_cache,
    measured_fraction,
    wedge_mask,
    wedge_mask_torch,
    wedge_weights,
)

from ..conftest import requires_cuda

GEOMETRIES = [
    WedgeGeometry(-60, 60, "y"),
    WedgeGeometry(-60, 60, "x"),
    WedgeGeometry(-45, 60, "y"),
    WedgeGeometry(-30, 50, "x"),
]


def _power_split(volume: np.ndarray, geometry: WedgeGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    spectrum = np.fft.rfftn(volume.astype(np.float64))
    mask = wedge_mask(volume.shape, geometry, full=True)
    return np.abs(spectrum) ** 2, mask, spectrum


def test_matches_established_tools_fraction():
    # IsoNet / DeepDeWedge keep 71.1 % of the fftn grid at 64^3 and +-60 degrees.
    assert measured_fraction((64, 64, 64)) == pytest.approx(0.7112, abs=5e-4)
    assert measured_fraction((64, 64, 64), WedgeGeometry(-60, 60, "x")) == pytest.approx(0.7112, abs=5e-4)


def test_fraction_follows_tilt_range():
    fractions = [measured_fraction((48, 48, 48), WedgeGeometry(-t, t)) for t in (30, 45, 60, 75)]
    assert all(a < b for a, b in zip(fractions, fractions[1:]))
    assert measured_fraction((32, 32, 32), WedgeGeometry(-90, 90)) == 1.0


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("shape", [(32, 32, 32), (20, 36, 28)])
def test_apply_wedge_zeroes_wedge_and_keeps_the_rest(geometry, shape):
    rng = np.random.default_rng(1)
    volume = rng.standard_normal(shape)
    power_in, mask, spectrum_in = _power_split(volume, geometry)
    out = apply_wedge(volume, geometry)
    power_out, _, spectrum_out = _power_split(out, geometry)
    wedge = mask == 0
    assert wedge.any() and (~wedge).any()
    # Zero power inside the wedge ...
    assert power_out[wedge].max() < 1e-18 * power_in.max()
    # ... and unchanged components outside (power and phase).
    np.testing.assert_allclose(spectrum_out[~wedge], spectrum_in[~wedge], rtol=1e-9, atol=1e-9)


def test_wedge_geometry_sides_are_asymmetric():
    # A point at +50 degrees in (kx, kz) is measured for -30..60 but not for -60..30.
    fz, fx = np.sin(np.radians(50)), np.cos(np.radians(50))
    assert wedge_weights(fz, fx, WedgeGeometry(-30, 60))[()] == 1
    assert wedge_weights(fz, fx, WedgeGeometry(-60, 30))[()] == 0
    assert wedge_weights(-fz, fx, WedgeGeometry(-60, 30))[()] == 1
    # The opposite point of the same line has the same weight (Hermitian symmetry).
    assert wedge_weights(-fz, -fx, WedgeGeometry(-30, 60))[()] == 1


def test_dc_and_tilt_axis_always_kept():
    mask = wedge_mask((16, 16, 16), WedgeGeometry(10, 40), full=True)
    assert mask[0, 0, 0] == 1
    assert np.all(mask[0, :, 0] == 1)  # the tilt axis (ky line)
    mask_x = wedge_mask((16, 16, 16), WedgeGeometry(10, 40, "x"), full=True)
    assert np.all(mask_x[0, 0, :] == 1)  # the kx line


def test_soft_edge_is_a_taper():
    hard = WedgeGeometry(-60, 60)
    soft = WedgeGeometry(-60, 60, soft_edge=10)
    angles = np.radians(np.array([0, 59, 62, 65, 69, 75]))
    fz, fx = np.sin(angles), np.cos(angles)
    w_hard = wedge_weights(fz, fx, hard)
    w_soft = wedge_weights(fz, fx, soft)
    np.testing.assert_array_equal(w_hard, [1, 1, 0, 0, 0, 0])
    assert w_soft[0] == w_soft[1] == 1
    assert 1 > w_soft[2] > w_soft[3] > w_soft[4] > 0
    assert w_soft[5] == 0


def test_broadcastable_layout_and_cache():
    mask_y = wedge_mask((20, 30, 40), WedgeGeometry(-60, 60, "y"))
    mask_x = wedge_mask((20, 30, 40), WedgeGeometry(-60, 60, "x"))
    assert mask_y.shape == (20, 1, 21)
    assert mask_x.shape == (20, 30, 1)
    assert wedge_mask((20, 30, 40), WedgeGeometry(-60, 60, "y")) is mask_y
    assert not mask_y.flags.writeable
    full = wedge_mask((20, 30, 40), WedgeGeometry(), rfft=False, full=True)
    assert full.shape == (20, 30, 40)


def test_torch_matches_numpy_in_batches():
    rng = np.random.default_rng(2)
    batch = rng.standard_normal((3, 2, 16, 18, 20)).astype(np.float32)
    geometry = WedgeGeometry(-50, 40, "y")
    expected = np.stack([[apply_wedge(v, geometry) for v in group] for group in batch])
    got = apply_wedge(torch.from_numpy(batch), geometry)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_torch_mask_cached_per_device():
    clear_mask_cache()
    a = wedge_mask_torch((8, 8, 8), WedgeGeometry(), "cpu")
    b = wedge_mask_torch((8, 8, 8), WedgeGeometry(), "cpu")
    assert a is b
    c = wedge_mask_torch((8, 8, 8), WedgeGeometry(-40, 40), "cpu")
    assert c is not a


def test_apply_wedge_is_a_projection():
    rng = np.random.default_rng(3)
    volume = rng.standard_normal((24, 24, 24)).astype(np.float32)
    once = apply_wedge(volume)
    np.testing.assert_allclose(apply_wedge(once), once, atol=1e-5)
    assert once.dtype == np.float32
    assert apply_wedge(volume.astype(np.int16)).dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(tilt_min=70, tilt_max=60), "tilt_min <= tilt_max"),
        (dict(tilt_min=-100, tilt_max=60), "-90"),
        (dict(tilt_axis="z"), "tilt_axis"),
        (dict(soft_edge=-1), "soft_edge"),
        (dict(tilt_max=float("nan")), "finite"),
    ],
)
def test_bad_geometry_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WedgeGeometry(**kwargs)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="3D"):
        wedge_mask((16, 16), WedgeGeometry())
    with pytest.raises(ValueError, match="3D"):
        apply_wedge(np.zeros((8, 8)))


def test_geometry_round_trips_through_dict():
    geometry = WedgeGeometry(-42.5, 58, "x", 3)
    assert WedgeGeometry.from_dict(geometry.to_dict()) == geometry
    assert geometry.missing_angle == pytest.approx(180 - 100.5)


@requires_cuda
def test_apply_wedge_on_cuda():
    volume = torch.randn(2, 1, 16, 16, 16)
    expected = apply_wedge(volume)
    got = apply_wedge(volume.cuda()).cpu()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_a_mask_first_made_in_inference_mode_still_serves_training():
    clear_mask_cache()
    geometry = WedgeGeometry(-57, 61)
    with torch.inference_mode():  # tiled inference makes the mask first
        apply_wedge(torch.randn(1, 1, 12, 12, 12), geometry)
    x = torch.randn(1, 1, 12, 12, 12, requires_grad=True)
    (apply_wedge(x, geometry) ** 2).sum().backward()  # raised "Inference tensors cannot be saved"
    assert x.grad is not None and torch.isfinite(x.grad).all()
