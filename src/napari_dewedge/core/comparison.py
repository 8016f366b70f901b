"""Measures of a before / after comparison (pure: no Qt, no napari).

:func:`compute_comparison` measures a before against an after volume and,
with a ground truth, both against it (all from :mod:`napari_dewedge.core.metrics`):

- FSC between before and after (how much of each frequency the processing kept);
- spectral anisotropy of each volume: power along kz against kx/ky in dB
  (about 0 for an isotropic volume, large with an empty wedge), and the z-cone
  and xy-cone power per frequency;
- with a ground truth: FSC of each volume against it, PSNR and SSIM (both after
  z-score normalisation of each volume, since a network's output has an
  arbitrary offset and scale), FSC-AUC over the missing wedge only, and the
  resolution along z and in x/y from conical FSCs against the truth.

It is a generator (a line of progress text before each step, the
:class:`Comparison` as its return value) so that a thread worker can report
progress and stop it between steps. :func:`layer_voxel_size` reads the voxel
size of anything with napari-like ``metadata`` and ``scale``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics
from .layers import LayerFrame
from .wedge import WedgeGeometry

__all__ = ["Comparison", "compute_comparison", "layer_voxel_size", "SSIM_MAX_VOXELS", "HALF_ANGLE"]

#: Volumes above this many voxels get SSIM on a centred crop (its filters need ~10 copies in float64).
SSIM_MAX_VOXELS = 2**24
HALF_ANGLE = 30.0


def layer_voxel_size(layer: Any) -> float | None:
    """Isotropic voxel size in Å of a layer (:attr:`~.layers.LayerFrame.isotropic_voxel_size`):
    ``metadata["voxel_size"]`` when recorded, else its scale; None when unknown
    or anisotropic. A size of exactly 1 counts as unknown: MRC headers without a
    cell size read as 1 Å and napari's default scale is 1."""
    return LayerFrame.of(layer).isotropic_voxel_size


@dataclass
class Comparison:
    """Everything :func:`compute_comparison` measured. Keys of the per-layer
    dicts are ``"before"`` and ``"after"``."""

    names: dict[str, str]
    voxel_size: float | None
    geometry: WedgeGeometry
    fsc: metrics.FSCResult
    anisotropy: dict[str, float]
    cone_power: dict[str, dict[str, np.ndarray]]
    truth_name: str | None = None
    fsc_truth: dict[str, metrics.FSCResult] = field(default_factory=dict)
    psnr: dict[str, float] = field(default_factory=dict)
    ssim: dict[str, float] = field(default_factory=dict)
    missing_wedge_auc: dict[str, float] = field(default_factory=dict)
    directional: dict[str, dict[str, Any]] = field(default_factory=dict)
    ssim_note: str = ""

    @property
    def units(self) -> str:
        return self.fsc.units


def _as_volume(data: Any, name: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be a 3D (z, y, x) volume, got shape {arr.shape}")
    return arr.astype(np.float32, copy=False)


def _centre_crop(arr: np.ndarray, max_voxels: int) -> np.ndarray:
    if arr.size <= max_voxels:
        return arr
    f = (max_voxels / arr.size) ** (1.0 / 3.0)
    sl = tuple(slice((n - max(11, int(n * f))) // 2, (n - max(11, int(n * f))) // 2 + max(11, int(n * f))) for n in arr.shape)
    return arr[sl]


def compute_comparison(
    before: Any,
    after: Any,
    truth: Any = None,
    *,
    names: dict[str, str] | None = None,
    geometry: WedgeGeometry | None = None,
    voxel_size: float | None = None,
) -> Generator[str, None, Comparison]:
    """Measure before against after (and both against ``truth``), yielding a
    line of progress text before each step; returns a :class:`Comparison`.

    A generator so that a napari worker can report progress and be stopped
    between steps. Volumes must share one shape.
    """
    names = dict(names or {})
    names.setdefault("before", "before")
    names.setdefault("after", "after")
    geometry = geometry or WedgeGeometry()
    yield "reading volumes"
    vols = {"before": _as_volume(before, f"before ({names['before']})"), "after": _as_volume(after, f"after ({names['after']})")}
    if vols["before"].shape != vols["after"].shape:
        raise ValueError(
            f"before {names['before']!r} has shape {vols['before'].shape} but after {names['after']!r} has "
            f"{vols['after'].shape}: compare volumes of one shape"
        )
    ref = None
    if truth is not None:
        names.setdefault("truth", "truth")
        ref = _as_volume(truth, f"ground truth ({names['truth']})")
        if ref.shape != vols["before"].shape:
            raise ValueError(
                f"ground truth {names['truth']!r} has shape {ref.shape} but the layers compared have "
                f"{vols['before'].shape}"
            )
    yield "FSC before / after"
    curve = metrics.fsc(vols["before"], vols["after"], voxel_size=voxel_size)
    anisotropy, cone = {}, {}
    for key, vol in vols.items():
        yield f"anisotropy of {names[key]}"
        cone[key] = metrics.cone_power_spectra(vol, half_angle_deg=HALF_ANGLE)
        try:
            anisotropy[key] = metrics.spectral_anisotropy(vol, half_angle_deg=HALF_ANGLE)
        except ValueError:
            anisotropy[key] = math.nan
    result = Comparison(
        names={k: names[k] for k in ("before", "after")},
        voxel_size=voxel_size,
        geometry=geometry,
        fsc=curve,
        anisotropy=anisotropy,
        cone_power=cone,
        truth_name=names.get("truth") if ref is not None else None,
    )
    if ref is None:
        return result
    ref_crop = _centre_crop(ref, SSIM_MAX_VOXELS)
    if ref_crop.shape != ref.shape:
        result.ssim_note = f"SSIM on a centred {ref_crop.shape[0]}x{ref_crop.shape[1]}x{ref_crop.shape[2]} crop"
    for key, vol in vols.items():
        yield f"{names[key]} against the ground truth"
        result.fsc_truth[key] = metrics.fsc(vol, ref, voxel_size=voxel_size)
        result.psnr[key] = metrics.psnr(vol, ref, normalize="zscore")
        try:
            result.ssim[key] = metrics.ssim(_centre_crop(vol, SSIM_MAX_VOXELS), ref_crop, normalize="zscore")
        except ValueError:
            result.ssim[key] = math.nan
        result.missing_wedge_auc[key] = metrics.missing_wedge_fsc_auc(vol, ref, geometry)
        result.directional[key] = metrics.directional_resolution(vol, ref, voxel_size=voxel_size, half_angle_deg=HALF_ANGLE)
    return result
