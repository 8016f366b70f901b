"""Before/after figures (figures.py): Agg only, physical aspect, atomic PNG."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge
from napari_dewedge.figures import comparison_figure, orthogonal_slices, save_comparison_figure


def _vol(shape=(12, 20, 16), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def test_orthogonal_slices_are_central_planes():
    v = _vol()
    s = orthogonal_slices(v)
    np.testing.assert_array_equal(s["XY"], v[6])
    np.testing.assert_array_equal(s["XZ"], v[:, 10, :])
    np.testing.assert_array_equal(s["YZ"], v[:, :, 8])
    assert orthogonal_slices(v, (1, 2, 3))["YZ"].shape == (12, 20)


def test_figure_layout_and_physical_extents():
    v = _vol()
    fig = comparison_figure({"a": v, "b": v * 2}, voxel_size=(3.0, 2.0, 1.0), geometry=WedgeGeometry())
    axes = fig.axes
    assert len(axes) == 12  # 2 rows x (3 real + 3 Fourier)
    xy, xz, yz = (axes[i].images[0] for i in range(3))
    assert xy.get_extent() == pytest.approx((0, 16 * 1.0, 20 * 2.0, 0))
    assert xz.get_extent() == pytest.approx((0, 16 * 1.0, 12 * 3.0, 0))
    assert yz.get_extent() == pytest.approx((0, 20 * 2.0, 12 * 3.0, 0))
    fxz = axes[4].images[0].get_extent()  # kx spans 1/(2*1 Å), kz 1/(2*3 Å)
    assert fxz[1] - fxz[0] == pytest.approx(1.0, rel=1e-6)
    assert fxz[3] - fxz[2] == pytest.approx(1 / 3.0, rel=1e-6)
    assert len(axes[4].lines) == 2  # wedge edges on the XZ Fourier plane (tilt axis y)


def test_fourier_panels_show_the_wedge():
    v = _vol((32, 32, 32))
    wedged = apply_wedge(v, WedgeGeometry())
    fig = comparison_figure([("in", v), ("wedged", wedged)], fourier=True)
    full, cut = (np.ma.getdata(fig.axes[i].images[0].get_array()) for i in (4, 10))
    # along kz (the column through kx = 0, far from the centre) the wedged volume has no power
    assert np.median(cut[2:10, 16]) < np.median(full[2:10, 16]) - 3


def test_save_png_atomically(tmp_path):
    path = save_comparison_figure(tmp_path / "f.png", {"x": _vol()}, fourier=False)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_comparison_figure(tmp_path / "no" / "f.png", {"x": _vol()})


def test_bad_input():
    with pytest.raises(ValueError, match="expected"):
        comparison_figure({"a": _vol(), "b": _vol((12, 20, 15))})
    with pytest.raises(ValueError, match="3D"):
        comparison_figure({"a": np.zeros((4, 4))})
    with pytest.raises(ValueError, match="no volumes"):
        comparison_figure({})
    with pytest.raises(ValueError, match="voxel_size"):
        comparison_figure({"a": _vol()}, voxel_size=0)
