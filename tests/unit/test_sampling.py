"""Subtomogram sampling (core/training/sampling.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_dewedge.core.training.sampling import (
    extract_subtomograms,
    foreground_mask,
    local_statistics,
    sample_subtomogram_positions,
)


def _half_empty(shape=(24, 32, 40), seed=0) -> np.ndarray:
    """Random blobs in the x >= nx/2 half, exact zeros in the other half."""
    rng = np.random.default_rng(seed)
    vol = ndimage.gaussian_filter(rng.normal(size=shape), 1.5).astype(np.float32)
    vol[:, :, : shape[2] // 2] = 0.0
    return vol


# --- local statistics and mask -------------------------------------------


def test_local_statistics_match_direct_filter_and_chunking():
    rng = np.random.default_rng(1)
    vol = (rng.normal(size=(20, 17, 13)) * 3 + 1000).astype(np.float32)
    size = 5
    ref = vol.astype(np.float64)
    m = ndimage.uniform_filter(ref, size, mode="reflect")
    s = np.sqrt(np.maximum(ndimage.uniform_filter(ref**2, size, mode="reflect") - m**2, 0))
    # tiny slabs force many chunks with halos
    mean, std = local_statistics(vol, size, slab_voxels=17 * 13 * 3)
    np.testing.assert_allclose(mean, m, rtol=1e-5)
    np.testing.assert_allclose(std, s, atol=2e-3)
    mean2, std2 = local_statistics(vol, size, stride=3, slab_voxels=17 * 13 * 2)
    np.testing.assert_allclose(mean2, m[::3, ::3, ::3], rtol=1e-5)
    np.testing.assert_allclose(std2, s[::3, ::3, ::3], atol=2e-3)


def test_foreground_mask_skips_empty_half():
    vol = _half_empty()
    mask = foreground_mask(vol, size=6)
    assert mask.shape == vol.shape and mask.dtype == bool
    nx = vol.shape[2]
    # Far from the boundary the empty half is never foreground.
    assert not mask[:, :, : nx // 2 - 4].any()
    assert mask[:, :, nx // 2 :].mean() > 0.15


def test_foreground_mask_works_on_int_memmap(tmp_path):
    vol = (_half_empty() * 100).astype(np.int16)
    path = tmp_path / "v.raw"
    vol.tofile(path)
    mm = np.memmap(path, dtype=np.int16, mode="r", shape=vol.shape)
    np.testing.assert_array_equal(foreground_mask(mm, size=6), foreground_mask(vol.astype(np.float32), size=6))


def test_foreground_mask_strided_close_to_full():
    vol = _half_empty((32, 32, 48))
    full = foreground_mask(vol, size=8, stride=1)
    coarse = foreground_mask(vol, size=8, stride=2)
    assert coarse.shape == full.shape
    assert (coarse == full).mean() > 0.85
    assert not coarse[:, :, :18].any()


def test_foreground_mask_constant_volume_is_all_foreground():
    assert foreground_mask(np.full((8, 8, 8), 3.0), size=4).all()


def test_foreground_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="3D"):
        foreground_mask(np.zeros((8, 8)), size=4)
    with pytest.raises(ValueError, match="std_percentile"):
        foreground_mask(np.zeros((8, 8, 8)), size=4, std_percentile=120)
    with pytest.raises(ValueError, match="real numbers"):
        foreground_mask(np.zeros((8, 8, 8), dtype=np.complex64), size=4)


# --- sampling -------------------------------------------------------------


@pytest.mark.parametrize("shape,size", [((20, 30, 40), 8), ((8, 30, 9), 8), ((16, 16, 16), 16)])
def test_positions_inside_bounds(shape, size):
    pos = sample_subtomogram_positions(shape, size, 200, np.random.default_rng(0))
    assert pos.shape == (200, 3) and pos.dtype == np.int64
    assert (pos >= 0).all()
    assert (pos + size <= np.array(shape)).all()
    # all admissible corners along an axis with room get used
    if shape[2] - size > 3:
        assert len(np.unique(pos[:, 2])) > 3


def test_positions_respect_mask_and_skip_empty_regions():
    vol = _half_empty((24, 32, 40))
    mask = foreground_mask(vol, size=6)
    size = 8
    pos = sample_subtomogram_positions(vol.shape, size, 300, np.random.default_rng(3), mask=mask)
    centres = pos + size // 2
    assert mask[centres[:, 0], centres[:, 1], centres[:, 2]].all()
    assert (centres[:, 2] >= 40 // 2 - 4).all()
    cubes = extract_subtomograms(vol, pos, size)
    assert (cubes.std(axis=(1, 2, 3)) > 0).all()


def test_positions_sparse_mask_uses_index_path():
    shape = (20, 20, 20)
    mask = np.zeros(shape, bool)
    mask[10, 5, 12] = True  # a single admissible centre
    pos = sample_subtomogram_positions(shape, 6, 10, np.random.default_rng(0), mask=mask)
    np.testing.assert_array_equal(pos, np.tile([[7, 2, 9]], (10, 1)))


def test_positions_reproducible_with_seed():
    mask = foreground_mask(_half_empty(), size=6)
    a = sample_subtomogram_positions((24, 32, 40), 8, 50, np.random.default_rng(42), mask=mask)
    b = sample_subtomogram_positions((24, 32, 40), 8, 50, np.random.default_rng(42), mask=mask)
    c = sample_subtomogram_positions((24, 32, 40), 8, 50, np.random.default_rng(43), mask=mask)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_positions_empty_mask_warns_and_samples_uniformly():
    with pytest.warns(RuntimeWarning, match="no admissible"):
        pos = sample_subtomogram_positions((10, 10, 10), 4, 5, np.random.default_rng(0), mask=np.zeros((10, 10, 10), bool))
    assert pos.shape == (5, 3)


def test_positions_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"size 32 does not fit.*\(16, 64, 64\)"):
        sample_subtomogram_positions((16, 64, 64), 32, 4, rng)
    with pytest.raises(ValueError, match="mask shape"):
        sample_subtomogram_positions((16, 16, 16), 8, 4, rng, mask=np.ones((8, 8, 8), bool))
    with pytest.raises(ValueError, match="does not fit"):
        extract_subtomograms(np.zeros((4, 8, 8)), np.zeros((1, 3), int), 6)


def test_extract_subtomograms_values_and_dtype(tmp_path):
    vol = np.arange(10 * 11 * 12, dtype=np.int32).reshape(10, 11, 12)
    path = tmp_path / "v.raw"
    vol.tofile(path)
    mm = np.memmap(path, dtype=np.int32, mode="r", shape=vol.shape)
    pos = np.array([[0, 0, 0], [6, 7, 8], [2, 3, 1]])
    cubes = extract_subtomograms(mm, pos, 4)
    assert cubes.dtype == np.float32 and cubes.shape == (3, 4, 4, 4)
    for cube, (z, y, x) in zip(cubes, pos):
        np.testing.assert_array_equal(cube, vol[z : z + 4, y : y + 4, x : x + 4])
    with pytest.raises(ValueError, match="leaves volume"):
        extract_subtomograms(vol, np.array([[7, 0, 0]]), 4)
