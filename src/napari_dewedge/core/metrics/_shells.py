"""Fourier-shell machinery shared by the FSC and the directional measures.

Sums run over the half spectrum of ``rfftn`` with the multiplicity of the
mirrored half, slab by slab along kz so that the temporaries stay bounded for
big volumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.fft

# Power below this fraction of the volume's mean power per Fourier voxel counts
# as no signal at all (float rounding left behind by a Fourier-space filter).
_POWER_FLOOR = 1e-12
# Fourier voxels processed per block (bounds the temporaries for big volumes).
_BLOCK_ELEMENTS = 1 << 21


def _rfft(volume: np.ndarray) -> np.ndarray:
    return scipy.fft.rfftn(volume, axes=(0, 1, 2))


def _multiplicity(nx: int) -> np.ndarray:
    """How many full-grid voxels each rfftn column stands for (1 or 2)."""
    mult = np.full(nx // 2 + 1, 2.0)
    mult[0] = 1.0
    if nx % 2 == 0:
        mult[-1] = 1.0
    return mult


def _mirror(mask: np.ndarray) -> np.ndarray:
    """``m(-k)`` for a mask ``m`` on the (unshifted) fftn grid, broadcast axes kept."""
    out = mask
    for axis in range(3):
        if out.shape[axis] > 1:
            out = np.roll(np.flip(out, axis=axis), 1, axis=axis)
    return out


def _half_weights(mask: Any, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Fourier weights and voxel counts on the rfftn half grid.

    ``mask`` is a non-negative weight (or boolean) array in rfftn layout
    ``(nz, ny, nx//2+1)`` or fftn layout ``(nz, ny, nx)``, or broadcastable to
    either (size-1 axes). An rfftn-layout mask is taken as symmetric,
    ``m(k) = m(-k)`` (true of wedge masks and cones); an fftn-layout mask may
    be anything: the half grid then carries ``m(k) + m(-k)``.
    """
    nz, ny, nx = shape
    nxr = nx // 2 + 1
    mult = _multiplicity(nx)
    if mask is None:
        return mult[None, None, :], mult[None, None, :]
    m = np.asarray(mask)
    if m.dtype == np.bool_:
        m = m.astype(np.float64)
    if not np.issubdtype(m.dtype, np.number) or np.iscomplexobj(m):
        raise TypeError(f"mask must be a real or boolean array, got dtype {m.dtype}")
    m = m.astype(np.float64, copy=False)
    if m.ndim != 3:
        raise ValueError(f"mask must be a 3D Fourier-space array, got shape {m.shape}")
    if not np.isfinite(m).all() or (m < 0).any():
        raise ValueError("mask weights must be finite and non-negative")
    for axis, (have, want) in enumerate(zip(m.shape[:2], (nz, ny))):
        if have not in (1, want):
            raise ValueError(f"mask shape {m.shape} does not fit a volume of shape {shape} (axis {axis})")
    if m.shape[2] in (1, nxr):
        weight = m * mult
        count = (m > 0) * mult
    elif m.shape[2] == nx:
        mirrored = _mirror(m)
        doubled = (mult == 2.0)
        weight = np.where(doubled, m[..., :nxr] + mirrored[..., :nxr], m[..., :nxr])
        count = np.where(
            doubled,
            (m[..., :nxr] > 0).astype(np.float64) + (mirrored[..., :nxr] > 0),
            (m[..., :nxr] > 0).astype(np.float64),
        )
    else:
        raise ValueError(
            f"mask shape {m.shape} fits neither the rfftn layout {(nz, ny, nxr)} nor the fftn layout {shape}"
        )
    return weight, count.astype(np.float64)


def _blocks(
    shape: tuple[int, int, int],
    n_shells: int,
    weight: np.ndarray,
    count: np.ndarray,
    cone: tuple[int, float] | None = None,
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Walk the rfftn grid in slabs along kz.

    Yields ``(zslice, selected, shell, weight, count)``: a boolean selection
    of the slab's voxels that lie in a shell (and in the cone, and have a
    positive count), then their shell index, weight and count.
    """
    nz, ny, nx = shape
    nxr = nx // 2 + 1
    width = 0.5 / n_shells
    fz = np.fft.fftfreq(nz)
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    r2_yx = fy * fy + fx * fx
    step = max(1, _BLOCK_ELEMENTS // (ny * nxr))
    for z0 in range(0, nz, step):
        zs = slice(z0, min(nz, z0 + step))
        fzb = fz[zs, None, None]
        radius = np.sqrt(fzb * fzb + r2_yx)
        shell = np.floor(radius / width + 0.5).astype(np.int64)
        w = np.broadcast_to(weight[zs] if weight.shape[0] > 1 else weight, radius.shape)
        c = np.broadcast_to(count[zs] if count.shape[0] > 1 else count, radius.shape)
        selected = (shell <= n_shells) & (c > 0)
        if cone is not None:
            axis, cos_half = cone
            along = (np.abs(fzb), np.abs(fy), np.abs(fx))[axis]
            selected &= along >= cos_half * radius - 1e-12
        yield zs, selected, shell[selected], w[selected], c[selected]
