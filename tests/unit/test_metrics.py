"""Tests of core.metrics: PSNR, SSIM, FSC and the missing-wedge, directional
and spectral measures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from napari_dewedge.core import metrics as M
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge, wedge_mask

GEOMETRY = WedgeGeometry(-60, 60, "y")


def smooth_volume(shape=(32, 32, 32), sigma=1.0, seed=0, dtype=np.float64) -> np.ndarray:
    """Isotropic, periodic random structure: Gaussian-filtered white noise, unit variance."""
    rng = np.random.default_rng(seed)
    vol = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (vol / vol.std()).astype(dtype)


def reference_fsc(a, b, n_shells, mask_full=None):
    """Brute-force FSC on the full fftn grid (no half-spectrum bookkeeping)."""
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    grids = np.meshgrid(*[np.fft.fftfreq(n) for n in a.shape], indexing="ij")
    radius = np.sqrt(sum(g * g for g in grids))
    shell = np.floor(radius / (0.5 / n_shells) + 0.5).astype(int)
    weight = np.ones(a.shape) if mask_full is None else np.broadcast_to(mask_full, a.shape)
    curve, counts = [], []
    for k in range(n_shells + 1):
        sel = (shell == k) & (weight > 0)
        w = weight[sel]
        num = np.sum(w * (fa[sel] * np.conj(fb[sel])).real)
        den = np.sqrt(np.sum(w * np.abs(fa[sel]) ** 2) * np.sum(w * np.abs(fb[sel]) ** 2))
        curve.append(num / den if sel.any() else np.nan)
        counts.append(int(sel.sum()))
    return np.array(curve), np.array(counts)


# --------------------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf():
    vol = smooth_volume((16, 16, 16)) + 5.0
    assert M.psnr(vol, vol) == math.inf


def test_psnr_closed_form_constant_offset():
    truth = smooth_volume((16, 20, 18))
    truth = truth - truth.min()  # max is then the peak I_m
    offset = 0.25
    expected = 20.0 * math.log10(truth.max() / offset)
    assert M.psnr(truth + offset, truth) == pytest.approx(expected, rel=1e-12)


def test_psnr_decreases_with_noise():
    rng = np.random.default_rng(1)
    truth = smooth_volume((24, 24, 24)) + 4.0
    noise = rng.standard_normal(truth.shape)
    values = [M.psnr(truth + s * noise, truth) for s in (0.05, 0.1, 0.2, 0.4)]
    assert all(a > b for a, b in zip(values, values[1:]))
    # Doubling white noise costs 20 log10(2) ~ 6 dB.
    assert values[0] - values[1] == pytest.approx(20 * math.log10(2), abs=1e-9)


def test_psnr_normalisation_options():
    rng = np.random.default_rng(2)
    truth = smooth_volume((16, 16, 16))
    est = truth + 0.1 * rng.standard_normal(truth.shape)
    # zscore and minmax make PSNR blind to the estimate's offset and scale.
    for mode in ("zscore", "minmax"):
        assert M.psnr(3.0 * est + 7.0, truth, normalize=mode) == pytest.approx(
            M.psnr(est, truth, normalize=mode), rel=1e-10
        )
    with pytest.raises(ValueError, match="positive maximum"):
        M.psnr(est, -np.abs(truth) - 1.0)
    with pytest.raises(ValueError, match="normalize"):
        M.psnr(est, truth, normalize="percentile")


def test_psnr_bad_input():
    a = np.zeros((8, 8, 8))
    with pytest.raises(ValueError, match="estimate and truth must have the same shape"):
        M.psnr(a, np.zeros((8, 8, 9)))
    b = a.copy()
    b[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="truth contains NaN"):
        M.psnr(a + 1, b)


def test_psnr_and_fsc_accept_memmaps(tmp_path):
    vol = smooth_volume((16, 16, 16), dtype=np.float32)
    mm = np.memmap(tmp_path / "vol.dat", dtype=np.float32, mode="w+", shape=vol.shape)
    mm[:] = vol
    mm.flush()
    ro = np.memmap(tmp_path / "vol.dat", dtype=np.float32, mode="r", shape=vol.shape)
    assert M.psnr(ro, vol) == math.inf
    assert M.fsc(ro, vol).auc == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------- SSIM


def test_ssim_identical_is_one():
    vol = smooth_volume((24, 24, 24))
    assert M.ssim(vol, vol) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("shape", [(24, 24, 24), (22, 30, 26)])
def test_ssim_matches_skimage(shape):
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    truth = smooth_volume(shape, seed=4) * 2.0 + 1.0
    est = truth + 0.5 * rng.standard_normal(shape)
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    # Default data range: max - min of the truth.
    expected = structural_similarity(est, truth, data_range=float(np.ptp(truth)), **kwargs)
    assert M.ssim(est, truth) == pytest.approx(expected, abs=1e-6)
    # Explicit data range, and the full map.
    expected = structural_similarity(est, truth, data_range=3.0, **kwargs)
    mean, ssim_map = M.ssim(est, truth, data_range=3.0, full=True)
    assert mean == pytest.approx(expected, abs=1e-6)
    assert ssim_map.shape == shape


def test_ssim_decreases_with_noise():
    rng = np.random.default_rng(5)
    truth = smooth_volume((24, 24, 24))
    noise = rng.standard_normal(truth.shape)
    values = [M.ssim(truth + s * noise, truth) for s in (0.1, 0.3, 1.0)]
    assert values[0] > values[1] > values[2]
    assert values[0] < 1.0


def test_ssim_bad_input():
    with pytest.raises(ValueError, match="at least 11 voxels"):
        M.ssim(np.zeros((8, 16, 16)), np.ones((8, 16, 16)))
    with pytest.raises(ValueError, match="constant"):
        M.ssim(np.random.rand(12, 12, 12), np.ones((12, 12, 12)))
    with pytest.raises(ValueError, match="data_range"):
        M.ssim(np.zeros((12, 12, 12)), np.ones((12, 12, 12)), data_range=-1.0)


# --------------------------------------------------------------------------- FSC


@pytest.mark.parametrize("shape", [(24, 24, 24), (20, 32, 27)])
def test_fsc_self_is_one_in_every_shell(shape):
    vol = smooth_volume(shape)
    result = M.fsc(vol, vol)
    assert result.frequency[0] == 0.0
    assert result.normalized_frequency[-1] == pytest.approx(0.5)
    assert len(result.fsc) == max(shape) // 2 + 1
    assert np.all(result.n_voxels > 0)
    np.testing.assert_allclose(result.fsc, 1.0, atol=1e-6)
    assert result.auc == pytest.approx(1.0, abs=1e-6)
    assert not result.crosses(0.143)
    assert result.resolution_0143 == pytest.approx(2.0)  # Nyquist bound, in voxels


def test_fsc_of_independent_noise_is_near_zero():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((2, 40, 40, 40))
    result = M.fsc(a, b)
    curve = result.fsc[1:]
    assert abs(curve.mean()) < 0.03
    # Each shell fluctuates like 1/sqrt(voxels in it).
    assert np.all(np.abs(curve) < 5.0 / np.sqrt(result.n_voxels[1:]))
    assert abs(result.auc) < 0.05


@pytest.mark.parametrize("shape", [(16, 16, 16), (14, 20, 17)])
def test_fsc_matches_brute_force_fftn(shape):
    rng = np.random.default_rng(7)
    a = rng.standard_normal(shape)
    b = a + rng.standard_normal(shape)
    n_shells = max(shape) // 2
    expected, counts = reference_fsc(a, b, n_shells)
    result = M.fsc(a, b)
    np.testing.assert_allclose(result.fsc, expected, atol=1e-10)
    np.testing.assert_array_equal(result.n_voxels, counts)
    # An arbitrary (asymmetric) fftn-layout weight mask.
    weights = rng.uniform(0, 1, shape) * (rng.uniform(size=shape) > 0.3)
    expected, counts = reference_fsc(a, b, n_shells, weights)
    result = M.fsc(a, b, mask=weights)
    np.testing.assert_allclose(result.fsc, expected, atol=1e-10)
    np.testing.assert_array_equal(result.n_voxels, counts)


def test_fsc_mask_layouts_agree():
    shape = (18, 20, 22)
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((2, *shape))
    half = wedge_mask(shape, GEOMETRY, rfft=True)
    full = wedge_mask(shape, GEOMETRY, rfft=False, full=True)
    r_half, r_full = M.fsc(a, b, mask=half), M.fsc(a, b, mask=full)
    np.testing.assert_allclose(r_half.fsc, r_full.fsc, atol=1e-12)
    np.testing.assert_array_equal(r_half.n_voxels, r_full.n_voxels)
    expected, counts = reference_fsc(a, b, max(shape) // 2, full)
    np.testing.assert_allclose(r_half.fsc, expected, atol=1e-10)
    with pytest.raises(ValueError, match="fits neither"):
        M.fsc(a, b, mask=np.ones((18, 20, 5)))
    with pytest.raises(ValueError, match="non-negative"):
        M.fsc(a, b, mask=-np.ones((18, 20, 12)))


def test_fsc_resolution_in_angstrom_scales_with_voxel_size():
    rng = np.random.default_rng(9)
    signal = smooth_volume((32, 32, 32), sigma=1.5, seed=10)
    a = signal + 0.3 * rng.standard_normal(signal.shape)
    b = signal + 0.3 * rng.standard_normal(signal.shape)
    in_voxels = M.fsc(a, b)
    assert in_voxels.units == "voxels"
    assert in_voxels.crosses(0.143)
    res_vox = in_voxels.resolution_0143
    assert 2.0 < res_vox < 32.0
    assert in_voxels.resolution_05 > res_vox  # 0.5 is reached at lower frequency
    for voxel_size in (1.0, 2.5, (4.0, 4.0, 4.0)):
        size = voxel_size if np.isscalar(voxel_size) else voxel_size[0]
        result = M.fsc(a, b, voxel_size=voxel_size)
        assert result.units == "Å"
        np.testing.assert_allclose(result.frequency, in_voxels.frequency / size)
        np.testing.assert_allclose(result.fsc, in_voxels.fsc)
        assert result.resolution_0143 == pytest.approx(size * res_vox)
        assert result.auc == pytest.approx(in_voxels.auc)
    with pytest.raises(ValueError, match="isotropic"):
        M.fsc(a, b, voxel_size=(1.0, 2.0, 2.0))
    for bad in (-1.0, "big", (1.0, 1.0)):
        with pytest.raises(ValueError, match="voxel_size"):
            M.fsc(a, b, voxel_size=bad)


def test_resolution_interpolates_the_first_crossing():
    freq = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    curve = np.array([1.0, 0.9, 0.7, 0.3, 0.1, 0.6])  # rises again after crossing
    result = M.FSCResult(freq, curve, np.ones(6, dtype=int))
    f05 = 0.2 + (0.7 - 0.5) * 0.1 / (0.7 - 0.3)
    f0143 = 0.3 + (0.3 - 0.143) * 0.1 / (0.3 - 0.1)
    assert result.resolution_05 == pytest.approx(1.0 / f05)
    assert result.resolution_0143 == pytest.approx(1.0 / f0143)
    # With a voxel size the frequencies are in 1/Å and resolutions in Å.
    in_a = M.FSCResult(freq / 2.0, curve, np.ones(6, dtype=int), voxel_size=2.0)
    assert in_a.resolution_05 == pytest.approx(2.0 / f05)
    assert in_a.units == "Å"
    # Never crossing: the Nyquist bound; crossing in the first shell: inf.
    assert M.FSCResult(freq, np.ones(6), np.ones(6, dtype=int)).resolution(0.5) == pytest.approx(2.0)
    first_below = M.FSCResult(freq, np.array([1.0, 0.05, 0.0, 0.0, 0.0, 0.0]), np.ones(6, dtype=int))
    assert first_below.resolution_0143 == math.inf
    # NaN shells (empty) are skipped; no usable shell gives NaN.
    with_gap = M.FSCResult(freq, np.array([1.0, 0.9, np.nan, 0.3, 0.1, 0.0]), np.ones(6, dtype=int))
    f_gap = 0.1 + (0.9 - 0.5) * 0.2 / (0.9 - 0.3)
    assert with_gap.resolution_05 == pytest.approx(1.0 / f_gap)
    assert math.isnan(M.FSCResult(freq, np.full(6, np.nan), np.zeros(6, dtype=int)).resolution_05)
    with pytest.raises(ValueError, match="increase"):
        M.FSCResult(freq[::-1], curve, np.ones(6, dtype=int))


def test_fsc_auc_of_constructed_curves():
    freq = np.linspace(0.0, 0.5, 6)
    linear = M.FSCResult(freq, 1.0 - 2.0 * freq, np.ones(6, dtype=int))
    # DC shell skipped: trapezoid of a line from 0.8 (f=0.1) to 0 (f=0.5) over its span.
    assert M.fsc_auc(linear) == pytest.approx(0.4)
    assert linear.auc == M.fsc_auc(linear)
    assert M.FSCResult(freq, np.ones(6), np.ones(6, dtype=int)).auc == pytest.approx(1.0)
    assert math.isnan(M.FSCResult(freq, np.full(6, np.nan), np.zeros(6, dtype=int)).auc)
    with pytest.raises(TypeError):
        M.fsc_auc(np.ones(6))


def test_fsc_result_to_dict():
    vol = smooth_volume((16, 16, 16))
    data = M.fsc(vol, vol, voxel_size=3.0).to_dict()
    assert data["units"] == "Å" and data["voxel_size"] == 3.0
    assert len(data["fsc"]) == len(data["frequency"]) == len(data["n_voxels"]) == 9
    assert data["resolution_0143"] == pytest.approx(6.0)


def test_fsc_bad_input():
    with pytest.raises(ValueError, match="3D"):
        M.fsc(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="same shape"):
        M.fsc(np.zeros((8, 8, 8)), np.zeros((8, 8, 6)))
    with pytest.raises(ValueError, match="n_shells"):
        M.fsc(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), n_shells=0)
    with pytest.raises(TypeError, match="real"):
        M.fsc(np.zeros((8, 8, 8), complex), np.zeros((8, 8, 8)))


def test_missing_wedge_fsc_of_wedged_truth_is_zero():
    truth = smooth_volume((32, 32, 32), dtype=np.float32)
    wedged = apply_wedge(truth, GEOMETRY)
    ordinary = M.fsc(wedged, truth)
    assert ordinary.auc > 0.6  # most of Fourier space is intact
    in_wedge = M.missing_wedge_fsc(wedged, truth, GEOMETRY)
    populated = in_wedge.n_voxels > 0
    assert populated.sum() > 10
    assert np.all(np.abs(in_wedge.fsc[populated]) < 0.05)
    assert abs(M.missing_wedge_fsc_auc(wedged, truth, GEOMETRY)) < 0.05
    assert M.missing_wedge_fsc_auc(truth, truth, GEOMETRY) == pytest.approx(1.0, abs=1e-6)
    # The wedge holds about 29 % of Fourier space at +-60 degrees.
    fraction = in_wedge.n_voxels.sum() / ordinary.n_voxels.sum()
    assert 0.2 < fraction < 0.35


def test_missing_wedge_fsc_auc_tracks_restoration():
    rng = np.random.default_rng(12)
    truth = smooth_volume((32, 32, 32))
    wedged = apply_wedge(truth, GEOMETRY)
    scores = []
    for noise in (0.0, 0.5, 2.0, 8.0):
        guess = truth + noise * rng.standard_normal(truth.shape)
        restored = wedged + (guess - apply_wedge(guess, GEOMETRY))  # fill the wedge with the guess
        scores.append(M.missing_wedge_fsc_auc(restored, truth, GEOMETRY))
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert all(a > b for a, b in zip(scores, scores[1:]))
    assert scores[-1] < 0.3


@pytest.mark.parametrize(
    "geometry",
    [
        WedgeGeometry(-60, 60, "x"),
        WedgeGeometry(-45, 60, "y", soft_edge=5),
        {"tilt_min": -50, "tilt_max": 50, "tilt_axis": "y"},
    ],
)
def test_missing_wedge_fsc_other_geometries_non_cubic(geometry):
    truth = smooth_volume((20, 30, 26))
    geo = geometry if isinstance(geometry, WedgeGeometry) else WedgeGeometry.from_dict(geometry)
    wedged = apply_wedge(truth, geo)
    assert abs(M.missing_wedge_fsc_auc(wedged, truth, geometry)) < 0.05
    assert M.missing_wedge_fsc_auc(truth, truth, geometry) == pytest.approx(1.0, abs=1e-6)


def test_missing_wedge_fsc_rejects_bad_geometry():
    vol = np.zeros((8, 8, 8))
    with pytest.raises(TypeError, match="WedgeGeometry"):
        M.missing_wedge_fsc(vol, vol, (-60, 60))


# --------------------------------------------------------------------------- directional measures


def test_conical_fsc_of_wedged_volume():
    truth = smooth_volume((32, 32, 32))
    wedged = apply_wedge(truth, GEOMETRY)
    along = {ax: M.conical_fsc(wedged, truth, ax) for ax in "zyx"}
    assert along["z"].auc < 0.05  # the 30 degree cone about kz lies inside the wedge
    assert along["x"].auc > 0.95
    assert along["y"].auc > 0.6  # about a third of the y cone is in a wedge about y
    assert along["z"].resolution_0143 > 4 * along["x"].resolution_0143


def test_conical_fsc_wide_cone_is_the_ordinary_fsc():
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((2, 20, 24, 22))
    wide = M.conical_fsc(a, b, "x", 90.0, n_shells=12)
    plain = M.fsc(a, b, n_shells=12)
    np.testing.assert_allclose(wide.fsc, plain.fsc, atol=1e-12)
    np.testing.assert_array_equal(wide.n_voxels, plain.n_voxels)
    assert len(M.conical_fsc(a, b, "z").fsc) == 20 // 2 + 1  # default: the axis' own sampling
    with pytest.raises(ValueError, match="axis"):
        M.conical_fsc(a, b, "w")
    with pytest.raises(ValueError, match="half_angle_deg"):
        M.conical_fsc(a, b, "z", 0.0)


def test_directional_resolution_anisotropy():
    rng = np.random.default_rng(14)
    truth = smooth_volume((32, 32, 32), sigma=1.5)
    noisy = truth + 0.3 * rng.standard_normal(truth.shape)
    wedged = apply_wedge(noisy, GEOMETRY)
    iso = M.directional_resolution(noisy, truth, voxel_size=5.0)
    aniso = M.directional_resolution(wedged, truth, voxel_size=5.0)
    assert iso["units"] == "Å"
    assert set(iso["resolution_0143"]) == {"z", "y", "x"}
    assert iso["anisotropy"] == pytest.approx(1.0, abs=0.25)
    assert aniso["anisotropy"] > 2.0 * iso["anisotropy"]
    assert aniso["anisotropy_05"] > iso["anisotropy_05"]
    assert aniso["resolution_0143"]["z"] > aniso["resolution_0143"]["x"]
    assert aniso["auc"]["z"] < 0.1
    assert aniso["auc"]["x"] == pytest.approx(iso["auc"]["x"])  # kx cone untouched by the wedge
    # Blurred along z before the noise: finite, clearly worse along z.
    blurred = ndimage.gaussian_filter(truth, (1.5, 0.0, 0.0), mode="wrap") + (noisy - truth)
    along_z = M.directional_resolution(blurred, truth, voxel_size=5.0)
    assert math.isfinite(along_z["anisotropy"])
    assert along_z["anisotropy"] > 1.2
    assert along_z["resolution_0143"]["x"] == pytest.approx(iso["resolution_0143"]["x"], rel=0.1)


def test_spectral_anisotropy_separates_wedged_from_isotropic():
    rng = np.random.default_rng(15)
    vol = smooth_volume((32, 32, 32), sigma=1.0)
    isotropic = M.spectral_anisotropy(vol)
    assert abs(isotropic) < 1.5
    for geometry in (GEOMETRY, WedgeGeometry(-60, 60, "x")):
        assert M.spectral_anisotropy(apply_wedge(vol, geometry)) > isotropic + 20.0
    # Noise spreads into the wedge and lowers the contrast, which stays clear.
    noisy_wedged = apply_wedge(vol, GEOMETRY) + 0.05 * rng.standard_normal(vol.shape)
    assert M.spectral_anisotropy(noisy_wedged) > isotropic + 3.0


def test_cone_power_spectra_of_white_noise_is_flat():
    rng = np.random.default_rng(16)
    noise = rng.standard_normal((32, 32, 32))
    spectra = M.cone_power_spectra(noise)
    assert set(spectra) == {"frequency", "z", "y", "x"}
    for ax in "zyx":
        # |F|^2 / N has mean equal to the variance (1) in every direction.
        assert np.nanmean(spectra[ax][2:]) == pytest.approx(1.0, abs=0.1)


def test_spectral_anisotropy_bad_input():
    vol = smooth_volume((16, 16, 16))
    with pytest.raises(ValueError, match="band"):
        M.spectral_anisotropy(vol, band=(0.3, 0.2))
    with pytest.raises(ValueError, match="constant"):
        M.spectral_anisotropy(np.ones((16, 16, 16)))


# --------------------------------------------------------------------------- real data


def _read_mrc(path):
    mrcfile = pytest.importorskip("mrcfile")
    with mrcfile.open(path, permissive=True) as mrc:
        return np.array(mrc.data, dtype=np.float32), mrc.voxel_size.copy()


def test_real_tomograms_are_anisotropic(shared_data):
    for name in ("microtubule_13pf.mrc", "microtubule_14pf.mrc"):
        tomo, _ = _read_mrc(shared_data / "tomograms" / name)
        assert M.spectral_anisotropy(tomo) > 3.0, name


def test_real_map_wedged(shared_data):
    density, voxel_size = _read_mrc(shared_data / "maps" / "betagal.mrc")
    wedged = apply_wedge(density, GEOMETRY)
    assert M.spectral_anisotropy(wedged) > M.spectral_anisotropy(density) + 20.0
    assert abs(M.missing_wedge_fsc_auc(wedged, density, GEOMETRY)) < 0.05
    result = M.fsc(wedged, density, voxel_size=voxel_size)  # the MRC header's record
    assert result.units == "Å"
    assert result.voxel_size == pytest.approx(float(voxel_size.x))
    assert result.resolution_0143 == pytest.approx(2 * float(voxel_size.x), rel=1e-3)  # wedge aside, all intact
    assert M.psnr(wedged, density) < M.psnr(density, density)


def test_measured_region_fsc_auc_scores_faithfulness_where_the_data_are():
    from scipy.ndimage import gaussian_filter

    from napari_dewedge.core.metrics import measured_fsc_auc, missing_wedge_fsc_auc
    from napari_dewedge.core.phantoms import corrupt, hollow_sphere
    from napari_dewedge.core.wedge import WedgeGeometry

    g = WedgeGeometry(-60, 60)
    truth = hollow_sphere(32, 20, 3)
    wedged = corrupt(truth, g, snr=None)
    assert measured_fsc_auc(truth, truth, g) == pytest.approx(1.0)
    assert measured_fsc_auc(wedged, truth, g) == pytest.approx(1.0, abs=1e-6)  # nothing lost where measured
    assert missing_wedge_fsc_auc(wedged, truth, g) == pytest.approx(0.0, abs=0.02)
    noisy = corrupt(truth, g, snr=0.5, seed=0)
    assert measured_fsc_auc(noisy, truth, g) < 0.95
    assert measured_fsc_auc(gaussian_filter(wedged, 2.0), truth, g) < measured_fsc_auc(wedged, truth, g)
