"""Synthetic phantoms and their corruption by the wedge and noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_dewedge.core.phantoms import (
    DEFAULT_SNR,
    cell,
    corrupt,
    hollow_sphere,
    paper_shapes,
    prism_orientations,
    random_rotation_matrix,
    rings,
    triangular_prism,
)
from napari_dewedge.core.wedge import WedgeGeometry, wedge_mask


def _radii(size: int) -> np.ndarray:
    c = np.arange(size) - (size - 1) / 2
    return np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)


# --------------------------------------------------------------------------- sphere


def test_hollow_sphere_protocol_defaults():
    v = hollow_sphere()
    assert v.shape == (140, 140, 140) and v.dtype == np.float32
    assert set(np.unique(v)) == {0.0, 1.0}
    r = _radii(140)
    on = v > 0
    # Every voxel centre with 31 <= r <= 35 is shell, nothing else is.
    np.testing.assert_array_equal(on, (r >= 31) & (r <= 35))
    # Outer diameter measured as the bounding box of the object.
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        extent = np.flatnonzero(on.any(axis=other))
        assert extent[-1] - extent[0] + 1 == 70
    # Shell thickness and hole measured along a line next to the centre.
    line = v[69, 69, :]
    runs = np.flatnonzero(np.diff(np.concatenate([[0], line, [0]])))
    starts, ends = runs[::2], runs[1::2]
    assert list(ends - starts) == [4, 4]
    assert starts[1] - ends[0] == 62  # inner diameter = 70 - 2 * 4
    expected = 4 / 3 * math.pi * (35**3 - 31**3)
    assert abs(on.sum() - expected) / expected < 0.01


def test_hollow_sphere_options():
    v64 = hollow_sphere(40, 20, 3, dtype=np.float64)
    assert v64.shape == (40, 40, 40) and v64.dtype == np.float64
    r = _radii(40)
    assert r[v64 > 0].max() <= 10 and r[v64 > 0].min() >= 7
    aa = hollow_sphere(40, 20, 3, antialias=True)
    assert aa.min() >= 0 and aa.max() <= 1
    assert np.any((aa > 0.05) & (aa < 0.95))  # partial-volume voxels exist
    expected = 4 / 3 * math.pi * (10**3 - 7**3)
    assert abs(aa.sum() - expected) / expected < 0.01
    solid = hollow_sphere(40, 20, 10)  # shell as thick as the radius: a solid ball
    assert solid[20, 20, 20] == 1 and solid.sum() > 0.9 * 4 / 3 * math.pi * 10**3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=0), "size"),
        (dict(size=2.5), "size"),
        (dict(size=20, outer_diameter=30), "does not fit"),
        (dict(size=40, outer_diameter=20, shell=11), "thicker"),
        (dict(size=40, outer_diameter=20, shell=-1), "shell"),
        (dict(size=40, outer_diameter=20, dtype=np.int32), "dtype"),
    ],
)
def test_hollow_sphere_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hollow_sphere(**kwargs)


# --------------------------------------------------------------------------- prism


def test_prism_flat_orientation_geometry():
    v = triangular_prism()
    assert v.shape == (96, 96, 96) and v.dtype == np.float32
    planes = np.flatnonzero(v.any(axis=(1, 2)))
    assert len(planes) == 20 and planes[-1] - planes[0] + 1 == 20  # thickness along z
    area = math.sqrt(3) / 4 * 64**2
    assert abs(v[47].sum() - area) / area < 0.02
    assert abs(v.sum() - 20 * area) / (20 * area) < 0.02
    # one vertex towards -y: the triangle narrows to a point at small y
    rows = v[47].sum(axis=1)
    occupied = np.flatnonzero(rows)
    assert rows[occupied[0]] < 5 and rows[occupied[-1]] > 55


def _second_moments(v: np.ndarray) -> np.ndarray:
    idx = np.argwhere(v > 0).astype(float)
    c = idx - idx.mean(axis=0)
    return c.T @ c / len(c)


def test_prism_orientations_turn_the_plate():
    mats = prism_orientations()
    assert mats.shape == (10, 3, 3)
    expected = math.sqrt(3) / 4 * 40**2 * 8
    for m in mats[:4]:
        v = triangular_prism(64, 8, m, side=40)
        assert abs(v.sum() - expected) / expected < 0.03
        # The plate's normal (its thinnest direction) is the first body axis turned by m.
        w, vecs = np.linalg.eigh(_second_moments(v))
        assert abs(vecs[:, 0] @ m[:, 0]) > 0.99
        # The centroid of the prism stays at the box centre.
        np.testing.assert_allclose(np.argwhere(v > 0).mean(axis=0), 31.5, atol=0.3)


def test_prism_orientations_reproducible_and_distinct():
    a, b = prism_orientations(10, seed=0), prism_orientations(10, seed=0)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, prism_orientations(10, seed=1))
    for m in a:
        np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(m), 1.0)
    # pairwise rotation angles between the orientations are all large
    for i in range(10):
        for j in range(i + 1, 10):
            cos = (np.trace(a[i].T @ a[j]) - 1) / 2
            assert cos < math.cos(math.radians(5))
    # a seed as orientation means one random rotation from that seed
    np.testing.assert_array_equal(
        triangular_prism(48, 6, 7, side=30), triangular_prism(48, 6, random_rotation_matrix(7), side=30)
    )
    assert prism_orientations(0).shape == (0, 3, 3)


def test_prism_antialias_and_errors():
    aa = triangular_prism(48, 6, 3, side=30, antialias=True)
    assert aa.min() >= 0 and aa.max() <= 1 and np.any((aa > 0.05) & (aa < 0.95))
    expected = math.sqrt(3) / 4 * 30**2 * 6
    assert abs(aa.sum() - expected) / expected < 0.03
    with pytest.raises(ValueError, match="rotation matrix"):
        triangular_prism(48, 6, np.diag([1.0, 1.0, -1.0]), side=30)
    with pytest.raises(ValueError, match="3x3"):
        triangular_prism(48, 6, np.eye(2), side=30)
    with pytest.raises(ValueError, match="does not fit"):
        triangular_prism(32, 20)
    with pytest.raises(ValueError, match="thickness"):
        triangular_prism(48, 0, side=30)


# --------------------------------------------------------------------------- extra phantoms


def test_rings_and_cell():
    for make, size in ((rings, 32), (cell, 48)):
        v = make(size, seed=1)
        assert v.shape == (size,) * 3 and v.dtype == np.float32
        assert v.min() >= 0 and v.max() <= 1 and v.max() > 0.9
        np.testing.assert_array_equal(v, make(size, seed=1))
        assert not np.array_equal(v, make(size, seed=2))
    r = rings(32, n=1, major_radius=10, minor_radius=2, seed=0)
    radius = _radii(32)[r > 0]
    assert 7 < radius.min() and radius.max() < 13  # a torus around the centre, hole in the middle
    assert r[15:17, 15:17, 15:17].sum() == 0
    with pytest.raises(ValueError, match="do not fit"):
        rings(16, major_radius=8)
    with pytest.raises(ValueError, match="size >= 32"):
        cell(16)


def test_paper_shapes_are_the_protocols_volumes():
    (sphere,) = paper_shapes("sphere")
    np.testing.assert_array_equal(sphere, hollow_sphere(140, 70, 4))
    prisms = paper_shapes("prism", orientations=3, seed=5)
    assert len(prisms) == 3 and all(p.shape == (96,) * 3 for p in prisms)
    np.testing.assert_array_equal(prisms[2], triangular_prism(96, 20, prism_orientations(3, 5)[2]))
    assert not np.array_equal(prisms[0], prisms[1])  # each its own orientation
    small = paper_shapes("rings", orientations=2, small=True)
    assert [r.shape for r in small] == [(48,) * 3] * 2 and all(r.max() == 1 for r in small)
    with pytest.raises(ValueError, match="unknown shape 'cube'"):
        paper_shapes("cube")


# --------------------------------------------------------------------------- corruption


@pytest.fixture(scope="module")
def small_sphere() -> np.ndarray:
    return hollow_sphere(32, 20, 3)


def test_corrupt_is_deterministic_by_seed(small_sphere):
    a = corrupt(small_sphere, snr=0.5, seed=3)
    assert a.dtype == np.float32 and a.shape == small_sphere.shape
    np.testing.assert_array_equal(a, corrupt(small_sphere, snr=0.5, seed=3))
    assert not np.array_equal(a, corrupt(small_sphere, snr=0.5, seed=4))
    np.testing.assert_array_equal(corrupt(small_sphere, seed=0), corrupt(small_sphere, snr=DEFAULT_SNR, seed=0))
    assert small_sphere.max() == 1  # input untouched


@pytest.mark.parametrize("snr", [0.1, 1.0, 4.0])
def test_noise_variance_matches_the_requested_snr(small_sphere, snr):
    clean = corrupt(small_sphere, snr=None)
    noisy = corrupt(small_sphere, snr=snr, seed=11)
    noise = noisy.astype(np.float64) - clean
    measured = np.var(clean, dtype=np.float64) / np.var(noise)
    assert abs(measured - snr) / snr < 0.03
    assert abs(noise.mean()) < 4 * noise.std() / math.sqrt(noise.size)


@pytest.mark.parametrize("geometry", [WedgeGeometry(), WedgeGeometry(-50, 65, "x")])
def test_noise_free_corruption_has_an_empty_wedge(small_sphere, geometry):
    for snr in (None, math.inf):
        y = corrupt(small_sphere, geometry, snr=snr)
        power = np.abs(np.fft.rfftn(y.astype(np.float64))) ** 2
        missing = 1 - np.asarray(wedge_mask(y.shape, geometry, full=True), dtype=np.float64)
        assert (power * missing).sum() / power.sum() < 1e-10
        # and the wedge did remove something: the clean sphere has power there
        p0 = np.abs(np.fft.rfftn(small_sphere.astype(np.float64))) ** 2
        assert (p0 * missing).sum() / p0.sum() > 1e-3
    assert corrupt(small_sphere.astype(np.float64), snr=None).dtype == np.float64


def test_corrupt_rejects_bad_input(small_sphere):
    for bad in (0, -1.0, float("nan"), "high"):
        with pytest.raises(ValueError, match="snr"):
            corrupt(small_sphere, snr=bad)
    with pytest.raises(ValueError, match="zero variance"):
        corrupt(np.ones((8, 8, 8), np.float32), snr=1.0)
    with pytest.raises(ValueError, match="3D"):
        corrupt(np.zeros((8, 8)))
    with pytest.raises(TypeError, match="WedgeGeometry"):
        corrupt(small_sphere, geometry={"tilt_min": -60})
