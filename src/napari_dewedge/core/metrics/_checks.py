"""Input checks shared by the quality measures.

Volumes become finite floating arrays (float32 kept, anything else float64);
voxel sizes, shell counts, axes and cone angles are validated with messages
that name the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np

AXES = ("z", "y", "x")
NORMALIZATIONS = (None, "zscore", "minmax")


def _as_array(volume: Any, name: str, *, ndim: int | None = 3, dtype: Any = None) -> np.ndarray:
    """``volume`` as a finite floating array (float64 unless ``dtype`` says otherwise)."""
    try:
        arr = np.asarray(volume)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be an array, got {type(volume).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}D (z, y, x) volume, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if dtype is None:
        dtype = np.float32 if arr.dtype == np.float32 else np.float64
    arr = arr.astype(dtype, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _pair(a: Any, b: Any, names: tuple[str, str], *, ndim: int | None = 3, dtype: Any = None):
    """Two volumes of the same shape, in a common floating type."""
    if dtype is None:
        both32 = all(np.asarray(v).dtype == np.float32 for v in (a, b))
        dtype = np.float32 if both32 else np.float64
    x = _as_array(a, names[0], ndim=ndim, dtype=dtype)
    y = _as_array(b, names[1], ndim=ndim, dtype=dtype)
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {x.shape} and {y.shape}")
    return x, y


def _normalize(arr: np.ndarray, mode: str | None, name: str) -> np.ndarray:
    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {mode!r}")
    if mode is None:
        return arr
    if mode == "zscore":
        std = float(arr.std(dtype=np.float64))
        if std == 0.0:
            raise ValueError(f"{name} is constant: it cannot be normalised to unit standard deviation")
        return (arr - arr.mean(dtype=np.float64)) / std
    lo, hi = float(arr.min()), float(arr.max())
    if hi == lo:
        raise ValueError(f"{name} is constant: it cannot be normalised to [0, 1]")
    return (arr - lo) / (hi - lo)


def _voxel_size(voxel_size: Any) -> float | None:
    """A single positive voxel size in Å (isotropic voxels only), or None.

    Accepts a number, three numbers (z, y, x) or an mrcfile ``voxel_size``
    record (fields x, y, z).
    """
    if voxel_size is None:
        return None
    names = getattr(getattr(voxel_size, "dtype", None), "names", None)
    if names and set("xyz") <= set(names):
        voxel_size = tuple(float(voxel_size[k]) for k in "zyx")
    try:
        values = np.atleast_1d(np.asarray(voxel_size, dtype=np.float64)).ravel()
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if values.size not in (1, 3) or not np.isfinite(values).all() or (values <= 0).any():
        raise ValueError(
            f"voxel_size must be a positive number or three of them (z, y, x), got {voxel_size!r}"
        )
    if not np.allclose(values, values[0], rtol=1e-3):
        raise ValueError(f"voxel_size must be isotropic for Fourier shells, got {tuple(values.tolist())}")
    return float(values[0])


def _check_n_shells(n_shells: Any, default: int) -> int:
    if n_shells is None:
        n_shells = default
    if isinstance(n_shells, bool) or not isinstance(n_shells, (int, np.integer)) or n_shells < 1:
        raise ValueError(f"n_shells must be a positive integer, got {n_shells!r}")
    return int(n_shells)


def _axis_index(axis: Any) -> int:
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
    return AXES.index(axis)


def _check_angle(half_angle_deg: Any) -> float:
    try:
        angle = float(half_angle_deg)
    except (TypeError, ValueError):
        raise ValueError(f"half_angle_deg must be a number of degrees, got {half_angle_deg!r}") from None
    if not 0.0 < angle <= 90.0:
        raise ValueError(f"half_angle_deg must lie in (0, 90] degrees, got {half_angle_deg!r}")
    return angle
