"""The 24 cube rotations: group structure, exactness, and how they move the missing wedge."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_dewedge.core.rotations import (
    ALL_ROTATIONS,
    IDENTITY,
    WEDGE_MOVING_ROTATIONS,
    CubeRotation,
    random_rotation,
    rotate,
    rotation_by_name,
    unrotate,
)
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge, wedge_mask, wedge_weights

from ..conftest import requires_cuda

AXIS_HALF_TURNS = ("180 about x", "180 about y", "180 about z")


@pytest.fixture(scope="module")
def volume() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 6, 6, 6, generator=g)  # batch dims in front


def _key(m: np.ndarray) -> bytes:
    return np.asarray(m, dtype=np.int64).tobytes()


def test_exactly_24_distinct_proper_rotations():
    assert len(ALL_ROTATIONS) == 24
    assert len({_key(r.matrix) for r in ALL_ROTATIONS}) == 24
    assert len({r.name for r in ALL_ROTATIONS}) == 24
    assert len(set(ALL_ROTATIONS)) == 24  # hashable, equality by (perm, flips)
    for r in ALL_ROTATIONS:
        m = r.matrix.astype(float)
        assert round(np.linalg.det(m)) == 1
        np.testing.assert_array_equal(m @ m.T, np.eye(3))
    assert ALL_ROTATIONS[0] is IDENTITY and IDENTITY.is_identity and IDENTITY.name == "identity"


def test_closure_by_matrix_and_by_action(volume):
    keys = {_key(r.matrix): r for r in ALL_ROTATIONS}
    for a, b in itertools.product(ALL_ROTATIONS, repeat=2):
        ab = a.compose(b)
        assert _key(a.matrix @ b.matrix) in keys
        assert ab == keys[_key(a.matrix @ b.matrix)]
        assert torch.equal(ab.apply(volume), a.apply(b.apply(volume)))


def test_inverse_undoes_exactly(volume):
    x_np = volume.numpy()
    for r in ALL_ROTATIONS:
        assert r.compose(r.inverse()) == IDENTITY
        assert torch.equal(unrotate(rotate(volume, r), r), volume)
        assert torch.equal(rotate(unrotate(volume, r), r), volume)
        np.testing.assert_array_equal(unrotate(rotate(x_np, r), r), x_np)
        if not r.is_identity:
            assert not torch.equal(rotate(volume, r), volume)  # random data is not symmetric


def test_numpy_and_torch_agree(volume):
    for r in ALL_ROTATIONS:
        out_np = rotate(volume.numpy(), r)
        assert isinstance(out_np, np.ndarray)
        np.testing.assert_array_equal(out_np, rotate(volume, r).numpy())


def test_wedge_moving_set_excludes_exactly_identity_and_axis_half_turns():
    assert len(WEDGE_MOVING_ROTATIONS) == 20
    excluded = [r for r in ALL_ROTATIONS if r not in WEDGE_MOVING_ROTATIONS]
    assert sorted(r.name for r in excluded) == sorted(("identity",) + AXIS_HALF_TURNS)
    for r in excluded:  # the identity and the diagonal matrices with two -1s
        m = r.matrix
        assert np.array_equal(m, np.diag(np.diag(m)))
        assert r.is_identity or sorted(np.diag(m)) == [-1, -1, 1]
    for r in WEDGE_MOVING_ROTATIONS:  # the other half turns (about edge axes) stay in
        assert not np.array_equal(r.matrix, np.diag(np.diag(r.matrix)))


@pytest.mark.parametrize("d", [4, 5])
def test_action_matches_matrix_on_centred_coordinates(d):
    x = torch.arange(d**3, dtype=torch.float32).reshape(d, d, d)
    idx = np.stack(np.meshgrid(*(np.arange(d),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    centred = idx - (d - 1) / 2
    for r in ALL_ROTATIONS:
        out = rotate(x, r)
        moved = centred @ r.matrix.T + (d - 1) / 2  # matrix @ c for every voxel
        moved = np.rint(moved).astype(int)
        assert np.all((moved >= 0) & (moved < d))
        np.testing.assert_array_equal(
            out.numpy()[moved[:, 0], moved[:, 1], moved[:, 2]], x.numpy()[idx[:, 0], idx[:, 1], idx[:, 2]]
        )


def test_names_follow_the_right_hand_rule():
    ez, ey, ex = np.eye(3, dtype=int)  # unit vectors in (z, y, x) order
    np.testing.assert_array_equal(rotation_by_name("90 about z").matrix @ ex, ey)
    np.testing.assert_array_equal(rotation_by_name("90 about x").matrix @ ey, ez)
    np.testing.assert_array_equal(rotation_by_name("90 about y").matrix @ ez, ex)
    assert rotation_by_name("-90 about z") == rotation_by_name("90 about z").inverse()
    # a 120 degree turn about the main diagonal cycles x -> y -> z -> x
    np.testing.assert_array_equal(rotation_by_name("120 about x+y+z").matrix @ ex, ey)
    # torch.rot90 from the first towards the second of dims (y, x) sends x to -y, i.e. -90 about z
    x = torch.randn(5, 5, 5)
    assert torch.equal(torch.rot90(x, 1, dims=(-2, -1)), rotate(x, rotation_by_name("-90 about z")))
    with pytest.raises(KeyError, match="no cube rotation named"):
        rotation_by_name("45 about z")


def test_non_cubic_volumes_permute_their_shape():
    x = torch.randn(4, 6, 8)
    for r in ALL_ROTATIONS:
        out = rotate(x, r)
        assert tuple(out.shape) == tuple(x.shape[p] for p in r.perm)
        assert torch.equal(unrotate(out, r), x)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="reflection"):
        CubeRotation((0, 1, 2), (True, False, False))
    with pytest.raises(ValueError, match="permutation"):
        CubeRotation((0, 0, 2), (False, False, False))
    with pytest.raises(ValueError, match="signed permutation"):
        CubeRotation.from_matrix(np.eye(3) * 2)
    with pytest.raises(ValueError, match="at least three axes"):
        rotate(torch.zeros(4, 4), IDENTITY)
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        rotate([[[1.0]]], IDENTITY)
    with pytest.raises(TypeError, match="generator"):
        random_rotation("seed")


def test_random_rotation_is_reproducible_and_covers_the_set():
    a = [random_rotation(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    drawn = {random_rotation(rng) for _ in range(400)}
    assert drawn == set(WEDGE_MOVING_ROTATIONS)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    seq1 = [random_rotation(g1) for _ in range(20)]
    assert seq1 == [random_rotation(g2) for _ in range(20)]
    assert set(seq1) <= set(WEDGE_MOVING_ROTATIONS)
    assert random_rotation(7, among=ALL_ROTATIONS) in ALL_ROTATIONS


def _centred_wedge(n: int, geometry: WedgeGeometry) -> np.ndarray:
    """Full ``n^3`` Fourier mask, zero frequency at the centre (odd n: index flips map k to -k)."""
    f = np.fft.fftshift(np.fft.fftfreq(n))
    if geometry.tilt_axis == "y":
        w = wedge_weights(f[:, None, None], f[None, None, :], geometry)
    else:
        w = wedge_weights(f[:, None, None], f[None, :, None], geometry)
    return np.ascontiguousarray(np.broadcast_to(w, (n, n, n)))


@pytest.mark.parametrize("geometry", [WedgeGeometry(), WedgeGeometry(-45, 45, "x")])
def test_the_20_move_the_wedge_and_the_4_excluded_keep_it(geometry):
    mask = torch.from_numpy(_centred_wedge(33, geometry))
    assert 0.5 < mask.mean() < 0.9
    for r in ALL_ROTATIONS:
        rotated = rotate(mask, r)
        if r in WEDGE_MOVING_ROTATIONS:
            moved = (rotated != mask).float().mean().item()
            assert moved > 0.05, r.name
        else:
            assert torch.equal(rotated, mask), r.name


def test_rotating_a_wedged_volume_fills_the_missing_wedge_only_for_the_20():
    torch.set_num_threads(1)
    geometry = WedgeGeometry()
    n = 24
    v = torch.randn(n, n, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    wedged = apply_wedge(v, geometry)
    missing = torch.from_numpy(1.0 - np.asarray(wedge_mask((n, n, n), geometry, full=True), dtype=np.float64))

    def missing_power_fraction(x: torch.Tensor) -> float:
        power = torch.fft.rfftn(x, dim=(-3, -2, -1)).abs() ** 2
        return float((power * missing).sum() / power.sum())

    assert missing_power_fraction(wedged) < 1e-20
    for r in ALL_ROTATIONS:
        frac = missing_power_fraction(rotate(wedged, r))
        if r in WEDGE_MOVING_ROTATIONS:
            assert frac > 0.05, r.name
        else:
            assert frac < 1e-20, r.name


@requires_cuda
def test_cuda_matches_cpu(volume):
    x = volume.cuda()
    for r in ALL_ROTATIONS:
        out = rotate(x, r)
        assert out.device == x.device
        assert torch.equal(out.cpu(), rotate(volume, r))
        assert torch.equal(unrotate(out, r), x)
    g = torch.Generator(device="cuda").manual_seed(0)
    assert random_rotation(g) in WEDGE_MOVING_ROTATIONS


def test_asymmetric_tilt_range_is_mirrored_by_the_z_and_x_half_turns():
    """As documented: with -50..60 only the half turn about the tilt axis keeps the wedge."""
    mask = torch.from_numpy(_centred_wedge(33, WedgeGeometry(-50, 60, "y")))
    assert torch.equal(rotate(mask, rotation_by_name("180 about y")), mask)
    for name in ("180 about z", "180 about x"):
        assert not torch.equal(rotate(mask, rotation_by_name(name)), mask)
