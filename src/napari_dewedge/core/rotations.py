"""The 24 rotations of the cube as exact index operations on volumes.

A rotation acts on the last three axes ``(z, y, x)`` of a numpy array or a
torch tensor by an axis permutation followed by axis flips: no interpolation,
so applying a rotation and then its inverse gives back the input bit for bit,
on CPU and CUDA, with any leading batch dimensions.

Each rotation is described by a signed permutation ``matrix`` (determinant +1)
acting on centred voxel coordinates ``c = index - (n - 1) / 2`` written in
``(z, y, x)`` order: the rotated volume holds at ``matrix @ c`` the value the
input holds at ``c``. Because the matrix is orthogonal, the Fourier transform
of the volume turns by the same matrix, which is what makes these rotations
useful against the missing wedge.

``WEDGE_MOVING_ROTATIONS`` is IsoNet's set of 20: all but the identity and the
three 180-degree turns about z, y and x. Those four map every line through the
origin of the ``(kx, kz)`` (or ``(ky, kz)``) plane onto itself or its mirror
image, so they leave a wedge with a symmetric tilt range (``-a..+a``) in place;
each of the other 20 moves part of the measured region into the missing wedge.
(For an asymmetric range such as ``-50..+60`` the 180-degree turns about z and
x mirror the wedge and so move it a little too; the set is kept as IsoNet
defines it.)

Names follow the right-hand rule in the physical ``(x, y, z)`` frame, e.g.
``"90 about z"`` carries the x direction onto the y direction, and axes through
edges or corners of the cube are written as sums, e.g. ``"120 about x+y+z"``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "CubeRotation",
    "ALL_ROTATIONS",
    "WEDGE_MOVING_ROTATIONS",
    "IDENTITY",
    "rotate",
    "unrotate",
    "random_rotation",
    "rotation_by_name",
]


def _matrix_from(perm: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> np.ndarray:
    """Row ``j`` of the matrix holds ``-1`` (flipped) or ``+1`` in column ``perm[j]``."""
    m = np.zeros((3, 3), dtype=np.int64)
    for j in range(3):
        m[j, perm[j]] = -1 if flips[j] else 1
    return m


def _name_of(matrix: np.ndarray) -> str:
    """Human-readable name: signed angle (degrees) about an axis of the (x, y, z) frame."""
    rev = matrix[::-1, ::-1].astype(np.float64)  # the same rotation written in (x, y, z) order
    trace = float(np.trace(rev))
    angle = int(round(np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))))
    if angle == 0:
        return "identity"
    if angle == 180:
        # R + I has rank one for a half turn; any non-zero column spans the axis.
        sym = rev + np.eye(3)
        axis = sym[:, int(np.argmax(np.abs(sym).sum(axis=0)))]
    else:
        axis = np.array([rev[2, 1] - rev[1, 2], rev[0, 2] - rev[2, 0], rev[1, 0] - rev[0, 1]])
    axis = np.sign(np.round(axis, 9)).astype(int)
    first = axis[np.nonzero(axis)[0][0]]
    if first < 0:  # canonical axis direction: first non-zero component positive
        axis = -axis
        angle = -angle if angle != 180 else angle
    terms = []
    for sign, letter in zip(axis, "xyz"):
        if sign:
            terms.append(("-" if sign < 0 else ("+" if terms else "")) + letter)
    return f"{angle} about {''.join(terms)}"


@dataclass(frozen=True)
class CubeRotation:
    """One of the 24 rotations of the cube, acting on the last three axes ``(z, y, x)``.

    ``perm[j]`` is the input axis that becomes output axis ``j`` (as in
    ``torch.permute``), and ``flips[j]`` says whether output axis ``j`` is then
    reversed. ``matrix`` and ``name`` are derived from these.
    """

    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    matrix: np.ndarray = field(init=False, repr=False, compare=False)
    name: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        perm = tuple(int(p) for p in self.perm)
        flips = tuple(bool(f) for f in self.flips)
        if sorted(perm) != [0, 1, 2]:
            raise ValueError(f"perm must be a permutation of (0, 1, 2), got {self.perm!r}")
        if len(flips) != 3:
            raise ValueError(f"flips must hold three booleans, got {self.flips!r}")
        matrix = _matrix_from(perm, flips)  # type: ignore[arg-type]
        if round(np.linalg.det(matrix)) != 1:
            raise ValueError(
                f"perm={perm} with flips={flips} is a reflection (determinant -1), not a rotation"
            )
        matrix.setflags(write=False)
        object.__setattr__(self, "perm", perm)
        object.__setattr__(self, "flips", flips)
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "name", _name_of(matrix))

    @classmethod
    def from_matrix(cls, matrix: Any) -> "CubeRotation":
        """The rotation with this 3x3 signed permutation matrix (``(z, y, x)`` order)."""
        m = np.asarray(matrix)
        if m.shape != (3, 3):
            raise ValueError(f"matrix must be 3x3, got shape {m.shape}")
        mi = np.rint(m).astype(np.int64)
        ok = (
            np.allclose(m, mi)
            and np.all(np.isin(mi, (-1, 0, 1)))
            and np.all(np.abs(mi).sum(axis=0) == 1)
            and np.all(np.abs(mi).sum(axis=1) == 1)
        )
        if not ok:
            raise ValueError(f"matrix is not a signed permutation matrix:\n{m}")
        perm = tuple(int(np.nonzero(mi[j])[0][0]) for j in range(3))
        flips = tuple(bool(mi[j, perm[j]] < 0) for j in range(3))
        return cls(perm, flips)  # type: ignore[arg-type]

    @property
    def is_identity(self) -> bool:
        return self.perm == (0, 1, 2) and not any(self.flips)

    def inverse(self) -> "CubeRotation":
        """The rotation that undoes this one (matrix transpose)."""
        return CubeRotation.from_matrix(self.matrix.T)

    def compose(self, other: "CubeRotation") -> "CubeRotation":
        """``self`` after ``other``: ``self.compose(other).apply(x) == self.apply(other.apply(x))``."""
        if not isinstance(other, CubeRotation):
            raise TypeError(f"can only compose with a CubeRotation, got {type(other).__name__}")
        return CubeRotation.from_matrix(self.matrix @ other.matrix)

    def apply(self, x: Any) -> Any:
        """Rotate the last three axes of ``x`` (numpy array or torch tensor, shape ``(..., z, y, x)``).

        The result has the input's type, dtype and device. It may be a view of
        the input (numpy always; torch when no axis is flipped), so copy it
        before writing into it. Non-cubic volumes come back with their last
        three sizes permuted by ``perm``.
        """
        ndim = getattr(x, "ndim", None)
        if ndim is None:
            raise TypeError(f"x must be a numpy array or a torch tensor, got {type(x).__name__}")
        if ndim < 3:
            raise ValueError(f"x must have at least three axes (..., z, y, x), got shape {tuple(x.shape)}")
        lead = ndim - 3
        order = tuple(range(lead)) + tuple(lead + p for p in self.perm)
        flip_axes = tuple(lead + j for j in range(3) if self.flips[j])
        if isinstance(x, np.ndarray):
            out = np.transpose(x, order)
            return np.flip(out, axis=flip_axes) if flip_axes else out
        if not hasattr(x, "permute") or not hasattr(x, "flip"):
            raise TypeError(f"x must be a numpy array or a torch tensor, got {type(x).__name__}")
        out = x.permute(*order)
        return out.flip(flip_axes) if flip_axes else out

    __call__ = apply

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"CubeRotation(perm={self.perm}, flips={self.flips}, name={self.name!r})"


def _all_rotations() -> tuple[CubeRotation, ...]:
    rotations = []
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((False, True), repeat=3):
            if round(np.linalg.det(_matrix_from(perm, flips))) == 1:  # type: ignore[arg-type]
                rotations.append(CubeRotation(perm, flips))  # type: ignore[arg-type]
    return tuple(rotations)


#: All 24 rotations of the cube; the identity comes first.
ALL_ROTATIONS: tuple[CubeRotation, ...] = _all_rotations()
IDENTITY: CubeRotation = ALL_ROTATIONS[0]
_AXIS_HALF_TURNS = ("180 about x", "180 about y", "180 about z")
#: IsoNet's 20: all but the identity and the 180-degree turns about z, y and x.
WEDGE_MOVING_ROTATIONS: tuple[CubeRotation, ...] = tuple(
    r for r in ALL_ROTATIONS if not r.is_identity and r.name not in _AXIS_HALF_TURNS
)
_BY_NAME = {r.name: r for r in ALL_ROTATIONS}


def rotation_by_name(name: str) -> CubeRotation:
    """Look a rotation up by its name, e.g. ``"90 about z"`` or ``"120 about x+y+z"``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no cube rotation named {name!r}; known names: {sorted(_BY_NAME)}") from None


def rotate(x: Any, r: CubeRotation) -> Any:
    """Apply ``r`` to the last three axes of ``x`` (see :meth:`CubeRotation.apply`)."""
    return r.apply(x)


def unrotate(x: Any, r: CubeRotation) -> Any:
    """Undo ``r``: ``unrotate(rotate(x, r), r)`` equals ``x`` exactly."""
    return r.inverse().apply(x)


def random_rotation(
    generator: "np.random.Generator | torch.Generator | int | None" = None,
    among: Sequence[CubeRotation] = WEDGE_MOVING_ROTATIONS,
) -> CubeRotation:
    """Draw one rotation uniformly from ``among`` (by default the 20 that move the wedge).

    ``generator`` is a ``numpy.random.Generator``, a ``torch.Generator`` (its
    device's random stream is used), an integer seed, or None for fresh entropy.
    """
    choices = tuple(among)
    if not choices:
        raise ValueError("among must hold at least one rotation")
    if generator is None or isinstance(generator, (int, np.integer)):
        generator = np.random.default_rng(generator)
    if isinstance(generator, np.random.Generator):
        index = int(generator.integers(len(choices)))
    else:
        import torch

        if not isinstance(generator, torch.Generator):
            raise TypeError(
                "generator must be a numpy Generator, a torch Generator, an int seed or None, "
                f"got {type(generator).__name__}"
            )
        index = int(torch.randint(len(choices), (1,), generator=generator, device=generator.device).item())
    return choices[index]
