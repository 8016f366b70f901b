"""Synthetic test volumes and the corruption that turns them into tomograms.

The two protocols of CryoGEN's synthetic experiments:

- a hollow sphere, outer diameter 70 px and shell 4 px thick, centred in a
  140^3 box (:func:`hollow_sphere`);
- a triangular prism 20 px thick, centred in a 96^3 box, seen in 10 random 3D
  orientations (:func:`triangular_prism`, :func:`prism_orientations`).

Our reading of the prism: an equilateral triangle extruded by ``thickness``
along the triangle's normal, i.e. a triangular plate. The protocol fixes the
thickness, not the triangle's size; the default side (64 px) keeps the whole
prism inside the 96^3 box in every orientation. A plate is the shape whose
appearance depends most on how it sits relative to the missing wedge, which is
why it is imaged in several orientations.

Both are corrupted by :func:`corrupt`: the wedge operator ``T_M`` and then
additive white Gaussian noise, ``y = T_M(x) + n`` (see DESIGN.md).

Extra phantoms for demos and tests: :func:`rings` (randomly oriented tori) and
:func:`cell` (a cell-like volume with a double membrane, filaments and
particles).

All volumes are float32 ``(z, y, x)`` arrays with values in [0, 1], the object
1 and the background 0; ``antialias=True`` gives boundary voxels their
approximate partial volume instead of 0 or 1. Voxel centres sit at integer
indices and the centre of the box at ``(size - 1) / 2``. Everything is
vectorised numpy: a 140^3 sphere takes a few tens of milliseconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .wedge import WedgeGeometry, apply_wedge

__all__ = [
    "hollow_sphere",
    "triangular_prism",
    "prism_orientations",
    "random_rotation_matrix",
    "rings",
    "stacked_rings",
    "paper_shapes",
    "cell",
    "corrupt",
    "noise_sigma",
]

#: Default SNR of :func:`corrupt` (variance of the wedged signal over noise variance).
DEFAULT_SNR = 0.5


# --------------------------------------------------------------------------- helpers


def _check_size(size: Any, name: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"{name} must be a positive integer number of voxels, got {size!r}")
    return int(size)


def _check_positive(value: Any, name: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")
    return float(value)


def _check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"dtype must be a floating type, got {dt}")
    return dt


def _centred_axes(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable centred coordinates ``(z, y, x)`` of a ``size^3`` box (float32)."""
    c = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
    return c[:, None, None], c[None, :, None], c[None, None, :]


def _inside(signed_distance: np.ndarray, antialias: bool) -> np.ndarray:
    """Occupancy from a signed distance (negative inside), in voxels.

    Hard: 1 where the voxel centre is inside (distance <= 0). Antialiased: a
    linear ramp over one voxel across the boundary, which is the partial volume
    of a voxel cut by a plane parallel to one of its faces.
    """
    if antialias:
        return np.clip(np.float32(0.5) - signed_distance, 0.0, 1.0).astype(np.float32, copy=False)
    return (signed_distance <= 0).astype(np.float32)


def _as_rng(seed: Any, name: str = "seed") -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"{name} must be an int, a numpy Generator or None, got {type(seed).__name__}")


def random_rotation_matrix(seed: Any = None) -> np.ndarray:
    """A rotation matrix drawn uniformly from SO(3) (unit quaternion from a 4D Gaussian).

    ``seed`` is an int, a ``numpy.random.Generator`` or None.
    """
    rng = _as_rng(seed)
    q = rng.standard_normal(4)
    w, a, b, c = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w)],
            [2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w)],
            [2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)],
        ]
    )


def _check_rotation(matrix: Any, name: str = "orientation") -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"{name} must be a 3x3 rotation matrix, got shape {m.shape}")
    if not np.allclose(m @ m.T, np.eye(3), atol=1e-6) or not np.isclose(np.linalg.det(m), 1.0, atol=1e-6):
        raise ValueError(f"{name} must be a rotation matrix (orthonormal, determinant +1), got\n{m}")
    return m


def _orientation(orientation: Any) -> np.ndarray:
    """Rotation matrix from a matrix, a seed / Generator, or None (identity)."""
    if orientation is None:
        return np.eye(3)
    if isinstance(orientation, (np.random.Generator, int, np.integer)) and not isinstance(orientation, bool):
        return random_rotation_matrix(orientation)
    return _check_rotation(orientation)


# --------------------------------------------------------------------------- phantoms


def hollow_sphere(
    size: int = 140,
    outer_diameter: float = 70,
    shell: float = 4,
    dtype: Any = np.float32,
    *,
    antialias: bool = False,
) -> np.ndarray:
    """A hollow sphere of value 1 centred in a ``size^3`` box of zeros.

    Voxel centres at distance ``r`` from the box centre with
    ``R - shell <= r <= R`` (``R = outer_diameter / 2``) are 1: with the
    defaults a line through the centre crosses 70 voxels of sphere, of which 4
    on each side are shell. ``antialias=True`` ramps the two boundaries over
    one voxel (partial volume).
    """
    size = _check_size(size)
    outer = _check_positive(outer_diameter, "outer_diameter") / 2.0
    shell = _check_positive(shell, "shell")
    if outer_diameter > size:
        raise ValueError(f"outer_diameter {outer_diameter:g} does not fit in a box of size {size}")
    if shell > outer:
        raise ValueError(f"shell {shell:g} is thicker than the sphere's radius {outer:g}")
    dt = _check_dtype(dtype)
    z, y, x = _centred_axes(size)
    r = np.sqrt(z * z + y * y + x * x)
    # Outside the outer surface minus inside the inner one; the inner ball is
    # empty when the shell fills the sphere.
    vol = _inside(r - np.float32(outer), antialias)
    inner = outer - shell
    if inner > 0:
        vol -= _inside(r - np.float32(inner), antialias) if antialias else (r < inner).astype(np.float32)
    return vol.astype(dt, copy=False)


def triangular_prism(
    size: int = 96,
    thickness: float = 20,
    orientation: Any = None,
    *,
    side: float = 64,
    dtype: Any = np.float32,
    antialias: bool = False,
) -> np.ndarray:
    """A triangular prism (plate) of value 1 centred in a ``size^3`` box of zeros.

    In its own frame the prism is an equilateral triangle of side ``side`` in
    the ``(y, x)`` plane, centroid at the box centre, one vertex towards -y,
    extruded ``thickness`` voxels along z (so with ``orientation=None`` it lies
    flat, normal along the beam). ``orientation`` turns it: a 3x3 rotation
    matrix acting on ``(z, y, x)`` coordinates (lab = matrix @ body), an int
    seed or ``numpy.random.Generator`` (a uniform random rotation, see
    :func:`prism_orientations`), or None. Its volume is
    ``sqrt(3) / 4 * side**2 * thickness`` voxels.
    """
    size = _check_size(size)
    thickness = _check_positive(thickness, "thickness")
    side = _check_positive(side, "side")
    rot = _orientation(orientation)
    dt = _check_dtype(dtype)
    # The prism's bounding sphere must fit, so that no orientation clips it.
    reach = math.hypot(side / math.sqrt(3), thickness / 2)
    if reach > (size - 1) / 2:
        raise ValueError(
            f"a prism of side {side:g} and thickness {thickness:g} (reach {reach:.1f} voxels from its "
            f"centre) does not fit in every orientation in a box of size {size}"
        )
    z, y, x = _centred_axes(size)
    r = rot.astype(np.float32)
    # Body coordinates u = rot.T @ c (columns of rot are the body axes).
    u = [r[0, k] * z + r[1, k] * y + r[2, k] * x for k in range(3)]
    inradius = np.float32(side / (2 * math.sqrt(3)))
    half_t = np.float32(thickness / 2)
    vol = _inside(np.abs(u[0]) - half_t, antialias)
    for angle in (90.0, 210.0, 330.0):  # outward normals of the three edges in the (y, x) plane
        ny, nx = np.float32(math.sin(math.radians(angle))), np.float32(math.cos(math.radians(angle)))
        vol *= _inside(ny * u[1] + nx * u[2] - inradius, antialias)
    return vol.astype(dt, copy=False)


def prism_orientations(n: int = 10, seed: int = 0) -> np.ndarray:
    """``n`` reproducible uniform random rotation matrices, shape ``(n, 3, 3)``.

    The default gives the protocol's 10 random orientations of the prism.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = _as_rng(seed)
    return np.stack([random_rotation_matrix(rng) for _ in range(int(n))]) if n else np.zeros((0, 3, 3))


def rings(
    size: int = 64,
    n: int = 3,
    major_radius: float | None = None,
    minor_radius: float = 2.0,
    seed: Any = 0,
    *,
    dtype: Any = np.float32,
    antialias: bool = False,
) -> np.ndarray:
    """``n`` tori (rings) through the box centre, each in a random orientation.

    ``major_radius`` defaults to ``size / 3``; the tube radius is ``minor_radius``.
    Overlaps are clipped to 1.
    """
    size = _check_size(size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    major = _check_positive(size / 3 if major_radius is None else major_radius, "major_radius")
    minor = _check_positive(minor_radius, "minor_radius")
    if major + minor > (size - 1) / 2:
        raise ValueError(f"rings of radius {major:g} + {minor:g} do not fit in a box of size {size}")
    dt = _check_dtype(dtype)
    rng = _as_rng(seed)
    z, y, x = _centred_axes(size)
    vol = np.zeros((size, size, size), dtype=np.float32)
    for _ in range(int(n)):
        normal = random_rotation_matrix(rng)[:, 0].astype(np.float32)
        height = normal[0] * z + normal[1] * y + normal[2] * x
        r2 = z * z + y * y + x * x
        in_plane = np.sqrt(np.maximum(r2 - height * height, 0.0))
        dist = np.sqrt((in_plane - np.float32(major)) ** 2 + height * height)
        np.maximum(vol, _inside(dist - np.float32(minor), antialias), out=vol)
    return vol.astype(dt, copy=False)


def stacked_rings(
    size: int = 96,
    n_rings: int = 4,
    radius: float = 24.0,
    tube: float = 3.0,
    spacing: float = 9.0,
    orientation: Any = None,
    *,
    dtype: Any = np.float32,
    antialias: bool = False,
) -> np.ndarray:
    """A stack of ``n_rings`` parallel rings (tori), like the Vipp1 assemblies of the CryoGEN paper.

    In its own frame the rings lie in the ``(y, x)`` plane, stacked along z
    ``spacing`` voxels apart around the box centre; ``orientation`` turns the
    stack as in :func:`triangular_prism`.
    """
    size = _check_size(size)
    radius, tube, spacing = (_check_positive(v, name) for v, name in
                             ((radius, "radius"), (tube, "tube"), (spacing, "spacing")))
    if isinstance(n_rings, bool) or not isinstance(n_rings, (int, np.integer)) or n_rings < 1:
        raise ValueError(f"n_rings must be a positive integer, got {n_rings!r}")
    half_height = (n_rings - 1) * spacing / 2 + tube
    if math.hypot(radius + tube, half_height) > (size - 1) / 2:
        raise ValueError(f"{n_rings} rings of radius {radius:g} do not fit in every orientation in a box of {size}")
    rot = _orientation(orientation).astype(np.float32)
    dt = _check_dtype(dtype)
    z, y, x = _centred_axes(size)
    u = [rot[0, k] * z + rot[1, k] * y + rot[2, k] * x for k in range(3)]
    in_plane = np.sqrt(u[1] * u[1] + u[2] * u[2])
    vol = np.zeros((size, size, size), dtype=np.float32)
    for i in range(int(n_rings)):
        height = u[0] - np.float32((i - (n_rings - 1) / 2) * spacing)
        dist = np.sqrt((in_plane - np.float32(radius)) ** 2 + height * height)
        np.maximum(vol, _inside(dist - np.float32(tube), antialias), out=vol)
    return vol.astype(dt, copy=False)


#: The shapes of :func:`paper_shapes`, in the paper's order.
PAPER_SHAPES = ("sphere", "prism", "rings")


def paper_shapes(shape: str, orientations: int = 10, seed: int = 0, *, small: bool = False) -> list[np.ndarray]:
    """The clean volumes of one of CryoGEN's simple-shape experiments, at the paper's sizes.

    ``"sphere"``: one hollow sphere (140^3, outer diameter 70, shell 4);
    ``"prism"``: the triangular prism (96^3, 20 thick) in ``orientations``
    random orientations (:func:`prism_orientations` of ``seed``);
    ``"rings"``: Vipp1-like stacked rings (96^3, 4 rings) in as many random
    rotations (of ``seed + 1``). ``small=True`` gives the same shapes at
    about half the size (sphere 64^3, prism and rings 48^3), for quick checks.
    """
    if shape == "sphere":
        return [hollow_sphere(64, 32, 3) if small else hollow_sphere(140, 70, 4)]
    if shape == "prism":
        turns = prism_orientations(orientations, seed)
        return [triangular_prism(48, 10, r, side=28) if small else triangular_prism(96, 20, r) for r in turns]
    if shape == "rings":
        turns = prism_orientations(orientations, seed + 1)
        return [stacked_rings(48, 3, 12.0, 2.0, 5.0, r) if small else stacked_rings(96, 4, 24.0, 3.0, 9.0, r)
                for r in turns]
    raise ValueError(f"unknown shape {shape!r}: expected one of {', '.join(PAPER_SHAPES)}")


def _paint_ball(vol: np.ndarray, centre: np.ndarray, radius: float, value: float, antialias: bool) -> None:
    """Set voxels within ``radius`` of ``centre`` (index coordinates) to at least ``value``, in place."""
    size = vol.shape[0]
    lo = np.maximum(np.floor(centre - radius - 1).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radius + 2).astype(int), size)
    if np.any(hi <= lo):
        return
    zz, yy, xx = (np.arange(lo[k], hi[k], dtype=np.float32) - np.float32(centre[k]) for k in range(3))
    dist = np.sqrt(zz[:, None, None] ** 2 + yy[None, :, None] ** 2 + xx[None, None, :] ** 2)
    block = vol[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    np.maximum(block, np.float32(value) * _inside(dist - np.float32(radius), antialias), out=block)


def cell(
    size: int = 96,
    seed: Any = 0,
    *,
    n_filaments: int = 6,
    n_particles: int = 40,
    dtype: Any = np.float32,
    antialias: bool = True,
) -> np.ndarray:
    """A cell-like phantom: an ellipsoidal double membrane, filaments and particles.

    Two 2-voxel membranes 4 voxels apart (value 1) bound an ellipsoid flattened
    along z (as cells in ice are); inside lie ``n_filaments`` straight filaments
    (tubes of radius 2, value 0.8) and ``n_particles`` ribosome-sized balls
    (radius 3-5, value 0.6), all placed from ``seed``.
    """
    size = _check_size(size)
    if size < 32:
        raise ValueError(f"a cell phantom needs size >= 32, got {size}")
    for name, value in (("n_filaments", n_filaments), ("n_particles", n_particles)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    dt = _check_dtype(dtype)
    rng = _as_rng(seed)
    z, y, x = _centred_axes(size)
    semi = np.array([0.28, 0.42, 0.42]) * size  # ellipsoid semi-axes (z, y, x)
    # Signed distance to the ellipsoid surface to first order: (rho - 1) / |grad rho|,
    # rho the normalised radius; accurate within the few voxels of the membranes.
    a2, b2, c2 = (np.float32(s * s) for s in semi)
    rho = np.sqrt(z * z / a2 + y * y / b2 + x * x / c2)
    grad = np.sqrt(z * z / (a2 * a2) + y * y / (b2 * b2) + x * x / (c2 * c2))
    depth = (rho - 1.0) * rho / np.maximum(grad, np.float32(1e-12))  # negative inside
    vol = np.zeros((size, size, size), dtype=np.float32)
    for offset in (0.0, 4.0):  # outer and inner leaflet, each 2 voxels thick
        band = np.abs(depth + np.float32(offset + 1.0)) - np.float32(1.0)
        np.maximum(vol, _inside(band, antialias), out=vol)
    inner_semi = semi - 8.0
    c = np.arange(size, dtype=np.float32) - np.float32((size - 1) / 2)
    for _ in range(int(n_filaments)):
        # A chord of the inner ellipsoid through a random interior point.
        p = rng.uniform(-0.5, 0.5, 3) * inner_semi
        d = random_rotation_matrix(rng)[:, 0]
        # Solve |(p + t d) / inner_semi| = 1 for the chord's end parameters.
        a = np.sum((d / inner_semi) ** 2)
        b = 2 * np.sum(p * d / inner_semi**2)
        cc = np.sum((p / inner_semi) ** 2) - 1
        disc = math.sqrt(max(b * b - 4 * a * cc, 0.0))
        t0, t1 = (-b - disc) / (2 * a), (-b + disc) / (2 * a)
        p0, seg = (p + t0 * d).astype(np.float32), ((t1 - t0) * d).astype(np.float32)
        length2 = np.float32(max(float(seg @ seg), 1e-6))
        rel = [c_ - p0[k] for k, c_ in enumerate((c[:, None, None], c[None, :, None], c[None, None, :]))]
        t = np.clip((rel[0] * seg[0] + rel[1] * seg[1] + rel[2] * seg[2]) / length2, 0.0, 1.0)
        dist = np.sqrt(sum((rel[k] - t * seg[k]) ** 2 for k in range(3)))
        np.maximum(vol, np.float32(0.8) * _inside(dist - np.float32(2.0), antialias), out=vol)
    centre = np.full(3, (size - 1) / 2)
    for _ in range(int(n_particles)):
        # Uniform in the inner ellipsoid (rejection from the bounding box).
        while True:
            q = rng.uniform(-1, 1, 3)
            if q @ q <= 1:
                break
        radius = float(rng.uniform(3.0, 5.0))
        _paint_ball(vol, centre + q * (inner_semi - radius), radius, 0.6, antialias)
    return vol.astype(dt, copy=False)


# --------------------------------------------------------------------------- corruption


def noise_sigma(wedged: np.ndarray, snr: float) -> float:
    """Noise standard deviation that gives ``snr`` for an already wedged signal."""
    var = float(np.var(wedged, dtype=np.float64))
    if not var > 0:
        raise ValueError("the wedged volume is constant (zero variance): an SNR is not defined for it")
    return math.sqrt(var / snr)


def corrupt(
    volume: Any,
    geometry: WedgeGeometry = WedgeGeometry(),
    snr: float | None = DEFAULT_SNR,
    seed: Any = None,
) -> np.ndarray:
    """Simulate an observation ``y = T_M(x) + n`` of a clean ``(z, y, x)`` volume.

    The missing wedge of ``geometry`` is applied first, then white Gaussian
    noise is added. ``snr`` is the variance of the wedged signal (over the
    whole volume) divided by the noise variance, the usual cryo-EM definition;
    ``snr=None`` or ``inf`` adds no noise. ``seed`` (int, numpy Generator or
    None) makes the noise reproducible. The default, 0.5, gives clearly visible
    but not overwhelming noise on the phantoms here. Returns float32 (float64
    input stays float64).
    """
    arr = np.asarray(volume)
    if arr.ndim < 3:
        raise ValueError(f"volume must be 3D (z, y, x), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"volume must hold real numbers, got dtype {arr.dtype}")
    if not isinstance(geometry, WedgeGeometry):
        raise TypeError(f"geometry must be a WedgeGeometry, got {type(geometry).__name__}")
    if snr is not None and not (isinstance(snr, (float, np.floating)) and snr == math.inf):
        snr = _check_positive(snr, "snr")
    wedged = apply_wedge(arr, geometry)
    if snr is None or math.isinf(snr):
        return wedged
    sigma = noise_sigma(wedged, snr)
    rng = _as_rng(seed)
    noise = rng.standard_normal(wedged.shape, dtype=np.float64 if wedged.dtype == np.float64 else np.float32)
    return (wedged + np.asarray(sigma, dtype=wedged.dtype) * noise).astype(wedged.dtype, copy=False)
