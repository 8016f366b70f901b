"""Tiles and blend weights for inference (core/inference/tiles.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dewedge.core.inference.tiles import (
    blend_ramp,
    blend_window,
    tile_grid,
    tile_starts,
)

# --- tiles and blending ---------------------------------------------------


@pytest.mark.parametrize(
    "shape,tile,overlap",
    [((50, 37, 64), 16, 4), ((16, 16, 16), 16, 4), ((7, 40, 33), 12, 5), ((100, 20, 20), (32, 20, 8), (8, 0, 3))],
)
def test_tile_grid_covers_every_voxel(shape, tile, overlap):
    tiles = tile_grid(shape, tile, overlap)
    count = np.zeros(shape, np.int32)
    t3 = (tile,) * 3 if isinstance(tile, int) else tile
    o3 = (overlap,) * 3 if isinstance(overlap, int) else overlap
    for sl in tiles:
        count[sl] += 1
        for s, n, t in zip(sl, shape, t3):
            assert 0 <= s.start < s.stop <= n
            assert s.stop - s.start == min(t, n)
    assert (count >= 1).all()
    # neighbouring tiles overlap by at least the requested amount
    for n, t, o in zip(shape, t3, o3):
        st = tile_starts(n, t, o)
        if len(st) > 1:
            assert (np.diff(st) <= t - o).all() and (np.diff(st) > 0).all()


def test_tile_grid_errors():
    with pytest.raises(ValueError, match="overlap"):
        tile_grid((32, 32, 32), 16, 16)
    with pytest.raises(ValueError, match="tile"):
        tile_grid((32, 32, 32), 0, 0)


def test_blend_window_smooth_positive_partition_of_unity():
    tile, overlap = 24, 8
    w = blend_window(tile, overlap)
    assert w.shape == (tile,) * 3 and w.dtype == np.float32
    assert (w > 0).all() and w.max() <= 1.0
    assert w[tile // 2, tile // 2, tile // 2] == 1.0
    ramp = blend_ramp(tile, overlap)
    np.testing.assert_allclose(w[:, 5, 7], ramp * ramp[5] * ramp[7], rtol=1e-6)
    # smooth: small steps, symmetric
    assert np.abs(np.diff(ramp)).max() < 0.4
    np.testing.assert_allclose(ramp, ramp[::-1])
    # two tiles overlapping by exactly `overlap` voxels sum to 1 there
    np.testing.assert_allclose(ramp[-overlap:] + ramp[:overlap], 1.0, atol=2e-3)
    # the outermost voxels (default overlap // 4) are all but ignored
    assert ramp[: overlap // 4].max() < 2e-3 and ramp[overlap // 4] > 2e-3
    assert (blend_window((8, 16, 4), (0, 4, 1)) > 0).all()
    wide = blend_ramp(64, 32)
    assert np.abs(np.diff(wide)).max() < 0.1
    np.testing.assert_allclose(blend_ramp(10, 4, dead_zone=0)[:2], np.sin(np.pi * np.array([0.5, 1.5]) / 8) ** 2, rtol=1e-6)
    with pytest.raises(ValueError, match="dead_zone"):
        blend_ramp(16, 4, dead_zone=3)
