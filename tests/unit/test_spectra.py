"""Central Fourier slices, their wedge masks and the tilt-range estimate."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dewedge.core.spectra import (
    PLANES,
    central_slices,
    estimate_tilt_range,
    log_power_spectrum,
    slice_masks,
    wedge_edge_segments,
)
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge, wedge_mask


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((20, 26, 30)).astype(np.float32)


def test_central_planes_equal_slices_of_the_3d_spectrum(volume):
    full = log_power_spectrum(volume)
    nz, ny, nx = volume.shape
    s = central_slices(volume)
    np.testing.assert_allclose(s.xy, full[nz // 2], atol=1e-4)
    np.testing.assert_allclose(s.xz, full[:, ny // 2], atol=1e-4)
    np.testing.assert_allclose(s.yz, full[:, :, nx // 2], atol=1e-4)
    assert s.xy.shape == (ny, nx) and s.xz.shape == (nz, nx) and s.yz.shape == (nz, ny)


def test_average_mode_is_the_mean_power_over_the_third_axis(volume):
    power = np.abs(np.fft.fftshift(np.fft.fftn(volume.astype(np.float64)))) ** 2
    s = central_slices(volume, mode="average")
    np.testing.assert_allclose(s.xy, np.log10(power.mean(axis=0) + 1e-12), atol=1e-4)
    np.testing.assert_allclose(s.xz, np.log10(power.mean(axis=1) + 1e-12), atol=1e-4)
    np.testing.assert_allclose(s.yz, np.log10(power.mean(axis=2) + 1e-12), atol=1e-4)


def test_memmap_and_integer_input(tmp_path, volume):
    path = tmp_path / "v.raw"
    ints = (volume * 20).astype(np.int16)
    mm = np.memmap(path, dtype=np.int16, mode="w+", shape=ints.shape)
    mm[:] = ints
    mm.flush()
    ro = np.memmap(path, dtype=np.int16, mode="r", shape=ints.shape)
    for mode in ("central", "average"):
        a, b = central_slices(ro, mode), central_slices(ints.astype(np.float32), mode)
        for plane in PLANES:
            np.testing.assert_allclose(a[plane], b[plane], atol=1e-4)


@pytest.mark.parametrize("geometry", [WedgeGeometry(-60, 60), WedgeGeometry(-40, 55, "x")], ids=str)
def test_slice_masks_are_central_planes_of_the_3d_mask(volume, geometry):
    full = np.fft.fftshift(wedge_mask(volume.shape, geometry, rfft=False, full=True))
    nz, ny, nx = volume.shape
    masks = slice_masks(volume.shape, geometry)
    np.testing.assert_array_equal(masks["xy"], full[nz // 2])
    np.testing.assert_array_equal(masks["xz"], full[:, ny // 2])
    np.testing.assert_array_equal(masks["yz"], full[:, :, nx // 2])


def test_wedge_shows_in_the_right_plane(volume):
    # Tilt axis y: kz = 0 is fully measured, ky = 0 holds the wedge, and kx = 0
    # (lines at 90 degrees) is missing but for the kz = 0 line.
    masks = slice_masks(volume.shape, WedgeGeometry(-60, 60, "y"))
    assert masks["xy"].min() == 1
    assert 0.4 < masks["xz"].mean() < 0.9
    nz = volume.shape[0]
    assert masks["yz"].sum() == masks["yz"].shape[1] and masks["yz"][nz // 2].min() == 1
    masks_x = slice_masks(volume.shape, WedgeGeometry(-60, 60, "x"))
    assert masks_x["xy"].min() == 1
    assert 0.4 < masks_x["yz"].mean() < 0.9
    assert masks_x["xz"].sum() == masks_x["xz"].shape[1]


def test_masks_follow_the_slider_without_recomputing_the_spectrum(volume):
    s = central_slices(volume)
    before = {p: s[p].copy() for p in PLANES}
    narrow = s.masked(WedgeGeometry(-30, 30))["xz"]
    wide = s.masked(WedgeGeometry(-70, 70))["xz"]
    low = s.xz.min()
    assert (narrow == low).sum() > (wide == low).sum()
    for plane in PLANES:
        np.testing.assert_array_equal(s[plane], before[plane])


def test_masks_are_cached():
    a = slice_masks((10, 12, 14), WedgeGeometry())
    b = slice_masks((10, 12, 14), WedgeGeometry())
    assert a["xz"] is b["xz"]


def test_edge_segments_follow_angles_and_aspect():
    shape = (40, 64, 80)
    segments = wedge_edge_segments(shape, WedgeGeometry(-30, 45))
    assert segments["xy"] == [] and segments["yz"] == []
    assert len(segments["xz"]) == 2
    for ((r0, c0), (r1, c1)), theta in zip(segments["xz"], (-30, 45)):
        # Centre of the fft-shifted (kz, kx) plane lies on the segment.
        assert (r0 + r1) / 2 == pytest.approx(20) and (c0 + c1) / 2 == pytest.approx(40)
        # Physical angle: rows are kz * nz, columns kx * nx.
        slope = ((r1 - r0) / shape[0]) / ((c1 - c0) / shape[2])
        assert np.degrees(np.arctan(slope)) == pytest.approx(theta)
    assert wedge_edge_segments(shape, WedgeGeometry(-60, 60, "x"))["yz"]


@pytest.mark.parametrize(
    "geometry", [WedgeGeometry(-60, 60), WedgeGeometry(-45, 55), WedgeGeometry(-50, 40, "x")], ids=str
)
def test_estimate_tilt_range_on_wedged_noise(geometry):
    rng = np.random.default_rng(5)
    clean = apply_wedge(rng.standard_normal((48, 64, 64)).astype(np.float32), geometry)
    noisy = clean + 0.1 * rng.standard_normal(clean.shape).astype(np.float32)
    tmin, tmax = estimate_tilt_range(noisy, geometry.tilt_axis)
    assert tmin == pytest.approx(geometry.tilt_min, abs=3)
    assert tmax == pytest.approx(geometry.tilt_max, abs=3)


def test_estimate_without_a_wedge_reports_full_range():
    rng = np.random.default_rng(6)
    assert estimate_tilt_range(rng.standard_normal((32, 32, 32))) == (-90.0, 90.0)


def test_rejects_non_3d():
    with pytest.raises(ValueError, match="3D"):
        central_slices(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="mode"):
        central_slices(np.zeros((8, 8, 8)), mode="bogus")


@pytest.mark.parametrize(
    "geometry", [WedgeGeometry(-60, 55, "x"), WedgeGeometry(-45, 45, "x"), WedgeGeometry(-30, 70)], ids=str
)
def test_estimate_tilt_range_on_noisy_phantoms(geometry):
    # A thin hollow sphere at SNR 1 gives a spectrum with dips near 0 degrees:
    # the two-level fit must not stop at them.
    from napari_dewedge.core.phantoms import corrupt, hollow_sphere

    noisy = corrupt(hollow_sphere(40, 30, 3), geometry, snr=1.0, seed=1)
    tmin, tmax = estimate_tilt_range(noisy, geometry.tilt_axis)
    assert tmin == pytest.approx(geometry.tilt_min, abs=3)
    assert tmax == pytest.approx(geometry.tilt_max, abs=3)
