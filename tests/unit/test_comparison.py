"""Before / after comparison measures (napari_dewedge.core.comparison): pure, no Qt."""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from napari_dewedge.core.comparison import Comparison, _centre_crop, compute_comparison, layer_voxel_size
from napari_dewedge.core.phantoms import corrupt, hollow_sphere
from napari_dewedge.core.wedge import WedgeGeometry

GEOMETRY = WedgeGeometry(-60, 60)


@pytest.fixture(scope="module")
def volumes():
    truth = hollow_sphere(32, 22, 3)
    before = corrupt(truth, GEOMETRY, snr=2.0, seed=0)
    after = 0.5 * before + 0.5 * truth  # a stand-in for a restoration
    return truth, before, after


def _run(gen):
    """Drain a comparison generator: (progress lines, returned Comparison)."""
    lines = []
    while True:
        try:
            lines.append(next(gen))
        except StopIteration as stop:
            return lines, stop.value


def test_with_truth(volumes):
    truth, before, after = volumes
    lines, r = _run(compute_comparison(before, after, truth, names={"before": "b", "after": "a", "truth": "t"},
                                       geometry=GEOMETRY, voxel_size=10.5))  # fmt: skip
    assert isinstance(r, Comparison)
    assert lines[0] == "reading volumes" and "b against the ground truth" in lines
    assert r.names == {"before": "b", "after": "a"} and r.truth_name == "t"
    assert r.units == "Å" and r.voxel_size == 10.5
    assert r.psnr["after"] > r.psnr["before"]
    assert r.ssim["after"] > r.ssim["before"]
    assert r.missing_wedge_auc["before"] < 0.15 < 0.5 < r.missing_wedge_auc["after"]
    assert r.anisotropy["before"] > r.anisotropy["after"]
    assert set(r.cone_power) == {"before", "after"} and set(r.directional) == {"before", "after"}
    assert r.ssim_note == ""


def test_without_truth_in_voxels(volumes):
    _truth, before, after = volumes
    lines, r = _run(compute_comparison(before, after))
    assert r.names == {"before": "before", "after": "after"} and r.truth_name is None
    assert r.units == "voxels" and r.geometry == WedgeGeometry()
    assert not r.psnr and not r.fsc_truth and not r.ssim
    assert 0.0 < r.fsc.auc < 1.0
    assert not any("ground truth" in line for line in lines)


def test_shapes_are_checked(volumes):
    truth, before, _after = volumes
    with pytest.raises(ValueError, match="one shape"):
        _run(compute_comparison(before, before[:, :, :20], names={"before": "x", "after": "y"}))
    with pytest.raises(ValueError, match="ground truth"):
        _run(compute_comparison(before, before, truth[:20]))
    with pytest.raises(ValueError, match="3D"):
        _run(compute_comparison(before[0], before[0]))


def test_centre_crop():
    arr = np.zeros((40, 30, 20), np.float32)
    assert _centre_crop(arr, arr.size) is arr
    crop = _centre_crop(arr, arr.size // 8)
    assert crop.shape == (20, 15, 11)  # halved, at least 11 (the SSIM window)
    assert np.shares_memory(crop, arr)


def test_layer_voxel_size_of_any_layer_like_object():
    def layer(scale=(1.0, 1.0, 1.0), **meta):
        return SimpleNamespace(scale=scale, metadata=meta)

    assert layer_voxel_size(layer()) is None  # 1 reads as unknown
    assert layer_voxel_size(layer((4.2, 4.2, 4.2))) == pytest.approx(4.2)
    assert layer_voxel_size(layer((2.0, 8.0, 4.0, 4.0))) is None  # anisotropic (last three axes)
    assert layer_voxel_size(layer(voxel_size=(10.52, 10.52, 10.52))) == pytest.approx(10.52)
    assert layer_voxel_size(layer((3.0, 3.0, 3.0), voxel_size=7.0)) == pytest.approx(7.0)
    assert layer_voxel_size(layer((3.0, 3.0, 3.0), voxel_size="junk")) == pytest.approx(3.0)
    assert layer_voxel_size(layer((-2.0, -2.0, -2.0))) is None
    assert layer_voxel_size(layer((math.inf,) * 3)) is None


def test_core_needs_no_qt_and_the_widget_module_still_exports_it():
    code = (
        "import sys, napari_dewedge.core.comparison\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    pytest.importorskip("napari")
    from napari_dewedge.widgets import compare

    assert compare.compute_comparison is compute_comparison
    assert compare.Comparison is Comparison and compare.layer_voxel_size is layer_voxel_size
