"""Before/after figures without a display: central slices and Fourier slices.

:func:`comparison_figure` draws, for several volumes side by side (one row
each, e.g. corrupted, corrected, truth), the three central orthogonal slices
(XY, XZ, YZ) and the three central Fourier slices (log10 power) with the
physical aspect of the voxel size; :func:`save_comparison_figure` writes it as
a PNG atomically. matplotlib's object API with the Agg canvas is used directly
(no pyplot, no Qt), so this works in batch jobs and worker threads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .core.files import atomic_output

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .core.wedge import WedgeGeometry

__all__ = ["orthogonal_slices", "comparison_figure", "save_comparison_figure"]

#: Real-space views: name, axes of the image (rows, columns) in (z, y, x), fixed axis.
_VIEWS = (("XY", (1, 2), 0), ("XZ", (0, 2), 1), ("YZ", (0, 1), 2))


def orthogonal_slices(volume: np.ndarray, index: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """The XY (fixed z), XZ (fixed y) and YZ (fixed x) slices through ``index``
    (default: the centre), as float32 images with rows/columns ``(y, x)``,
    ``(z, x)`` and ``(z, y)``."""
    vol = np.asarray(volume) if not isinstance(volume, np.ndarray) else volume
    if vol.ndim != 3:
        raise ValueError(f"expected a 3D (z, y, x) volume, got shape {vol.shape}")
    centre = [n // 2 for n in vol.shape] if index is None else [int(i) for i in index]
    z, y, x = centre
    return {
        "XY": np.asarray(vol[z, :, :], dtype=np.float32),
        "XZ": np.asarray(vol[:, y, :], dtype=np.float32),
        "YZ": np.asarray(vol[:, :, x], dtype=np.float32),
    }


def _fourier_planes(volume: np.ndarray) -> dict[str, np.ndarray]:
    """Central Fourier planes (log10 power, fft-shifted), keyed like the real views."""
    try:
        from .core.spectra import central_slices
    except ImportError:  # pragma: no cover - the core always ships it
        central_slices = None
    if central_slices is not None:
        s = central_slices(volume, mode="central")
        return {"XY": s["xy"], "XZ": s["xz"], "YZ": s["yz"]}
    # Central slice theorem: the 2D FFT of a projection is a central plane.
    vol = np.asarray(volume, dtype=np.float64)
    out = {}
    for name, _, axis in _VIEWS:
        spec = np.fft.fftshift(np.fft.fft2(vol.sum(axis=axis)))
        out[name] = np.log10(np.abs(spec) ** 2 + 1e-12).astype(np.float32)
    return out


def _limits(images: Sequence[np.ndarray], low: float, high: float) -> tuple[float, float]:
    values = np.concatenate([np.asarray(im, dtype=np.float32).ravel() for im in images])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [low, high])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _freq_extent(n: int, voxel: float) -> tuple[float, float]:
    """Frequency (1/Å) of the outer pixel edges of an fft-shifted axis of n samples."""
    return ((-(n // 2) - 0.5) / n / voxel, (n - n // 2 - 0.5) / n / voxel)


def _wedge_lines(shape: tuple[int, int, int], geometry: "WedgeGeometry") -> dict[str, list]:
    try:
        from .core.spectra import wedge_edge_segments

        return wedge_edge_segments(shape, geometry)
    except Exception:  # pragma: no cover - the overlay is optional decoration
        return {}


def comparison_figure(
    volumes: Mapping[str, np.ndarray] | Sequence[tuple[str, np.ndarray]],
    *,
    voxel_size: float | Sequence[float] = (1.0, 1.0, 1.0),
    title: str | None = None,
    geometry: "WedgeGeometry | None" = None,
    index: Sequence[int] | None = None,
    fourier: bool = True,
    panel_inches: float = 2.2,
) -> "Figure":
    """A figure with one row per volume: XY, XZ, YZ central slices and, with
    ``fourier``, the three central Fourier slices (log10 power).

    ``volumes`` maps a row label to a ``(z, y, x)`` array; all must share one
    shape. Real-space images use physical extents in Å (``voxel_size``,
    ``(z, y, x)`` or one number) and each row its own 1-99.5 percentile
    contrast (outputs may be on another scale than inputs); Fourier images use
    frequencies in 1/Å and one contrast per column, shared by all rows, so
    that restored power in the missing wedge shows as such. ``geometry`` draws
    the edges of the measured region on the Fourier plane where the wedge
    shows.
    """
    from matplotlib.figure import Figure

    items = list(volumes.items()) if isinstance(volumes, Mapping) else [(str(k), v) for k, v in volumes]
    if not items:
        raise ValueError("no volumes to draw")
    arrays = []
    for name, vol in items:
        arr = vol if isinstance(vol, np.ndarray) else np.asarray(vol)
        if arr.ndim != 3:
            raise ValueError(f"volume {name!r} must be 3D (z, y, x), got shape {arr.shape}")
        arrays.append(arr)
    shape = tuple(int(s) for s in arrays[0].shape)
    for (name, _), arr in zip(items, arrays):
        if tuple(arr.shape) != shape:
            raise ValueError(f"volume {name!r} has shape {arr.shape}, expected {shape} like {items[0][0]!r}")
    vs = np.broadcast_to(np.asarray(voxel_size, dtype=float), (3,))
    if not (np.all(np.isfinite(vs)) and np.all(vs > 0)):
        raise ValueError(f"voxel_size must be positive, got {tuple(voxel_size) if np.ndim(voxel_size) else voxel_size}")

    real = [orthogonal_slices(a, index) for a in arrays]
    spectra = [_fourier_planes(a) for a in arrays] if fourier else []
    fourier_limits = {v: _limits([s[v] for s in spectra], 2.0, 99.9) for v, _, _ in _VIEWS} if fourier else {}
    lines = _wedge_lines(shape, geometry) if (fourier and geometry is not None) else {}

    ncols = 6 if fourier else 3
    nrows = len(items)
    fig = Figure(figsize=(panel_inches * ncols + 0.6, panel_inches * nrows + (0.5 if title else 0.2)), dpi=110)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for r, (name, _) in enumerate(items):
        lo, hi = _limits(list(real[r].values()), 1.0, 99.5)
        for c, (view, (ra, ca), _) in enumerate(_VIEWS):
            ax = axes[r, c]
            extent = (0.0, shape[ca] * vs[ca], shape[ra] * vs[ra], 0.0)
            ax.imshow(real[r][view], cmap="gray", vmin=lo, vmax=hi, extent=extent, aspect="equal",
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{view} slice", fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=10)
        for c, (view, (ra, ca), _) in enumerate(_VIEWS if fourier else ()):
            ax = axes[r, 3 + c]
            x0, x1 = _freq_extent(shape[ca], vs[ca])
            y0, y1 = _freq_extent(shape[ra], vs[ra])
            flo, fhi = fourier_limits[view]
            ax.imshow(spectra[r][view], cmap="magma", vmin=flo, vmax=fhi, extent=(x0, x1, y0, y1),
                      origin="lower", aspect="equal", interpolation="nearest")
            for (p0, p1) in lines.get(view.lower(), []):
                # (row, column) pixel coordinates -> frequencies
                fy = [(p[0] - shape[ra] // 2) / shape[ra] / vs[ra] for p in (p0, p1)]
                fx = [(p[1] - shape[ca] // 2) / shape[ca] / vs[ca] for p in (p0, p1)]
                ax.plot(fx, fy, color="cyan", lw=0.8, ls="--")
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{view} Fourier (log power)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def save_comparison_figure(
    path: str | os.PathLike,
    volumes: Mapping[str, np.ndarray] | Sequence[tuple[str, np.ndarray]],
    **kwargs: Any,
) -> Path:
    """Write :func:`comparison_figure` as a PNG, atomically; returns the path."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder for figure {path} does not exist")
    fig = comparison_figure(volumes, **kwargs)
    with atomic_output(path) as fh:
        fig.savefig(fh, format="png")
    return path
