"""Mirror views: the prediction averaged over the flips that keep the missing wedge in place.

A flip of the volume's axes that maps its missing wedge onto itself poses
the generator the same problem in a mirror: the prediction of the flipped
volume, flipped back, is as good an estimate as the first, with errors of
its own. Their mean has less of those errors: on the cell-like scenes of
``benchmarks/versus.py``, four views gave +0.3 dB, +0.02 SSIM and +0.015
missing-wedge FSC-AUC over one, and lifted the noise-free sphere's SSIM
above its input's (``docs/benchmarks/README.md``).

Every wedge is kept by the flip of its tilt axis and by the half turn about
that axis (the beam axis ``z`` and the other in-plane axis flipped
together), and so by both: four views. A symmetric tilt range (``-a..+a``)
is also kept by the flip of ``z`` alone and of the other in-plane axis
alone: eight. :func:`wedge_flips` lists them, :func:`average_views` runs a
whole inference (tiles and every pass) on each view and averages the results
flipped back.

Pure numpy; the caller passes the inference of one view (:func:`.run.run_inference`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np

from ..wedge import WedgeGeometry

__all__ = ["MIRROR_VIEWS", "average_views", "view_flips", "wedge_flips"]

#: The views of the default application: the four that every wedge keeps.
MIRROR_VIEWS = 4

_Flip = tuple[int, ...]

#: Voxels folded into the running mean at a time (z-slabs): no temporary holds the whole volume.
_SLAB_VOXELS = 1 << 24


def wedge_flips(geometry: WedgeGeometry) -> tuple[_Flip, ...]:
    """The flips (axes of ``(z, y, x)``) that map ``geometry``'s missing wedge onto itself,
    the identity first: four for any tilt range, eight for a symmetric one."""
    tilt = 1 if geometry.tilt_axis == "y" else 2
    other = 3 - tilt  # the in-plane axis across the tilt axis
    flips: list[_Flip] = [(), (tilt,), (0, other), (0, 1, 2)]
    if geometry.tilt_min == -geometry.tilt_max:
        flips += [(other,), (0,), tuple(sorted((tilt, other))), (0, tilt)]
    return tuple(flips)


def view_flips(geometry: WedgeGeometry | None, views: int) -> tuple[_Flip, ...]:
    """The first ``views`` of :func:`wedge_flips` (all of them when fewer); only the identity
    without a wedge."""
    views = int(views)
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    if geometry is None:
        return ((),)
    return wedge_flips(geometry)[:views]


def _flip(array: np.ndarray, axes: _Flip) -> np.ndarray:
    return np.flip(array, axes) if axes else array


def _fold(running: np.ndarray, value: np.ndarray, k: int) -> None:
    """``running``, the mean of ``k`` views, becomes the mean of ``k + 1`` with ``value``, slab by slab."""
    step = max(1, _SLAB_VOXELS // max(1, int(np.prod(running.shape[1:]))))
    for z0 in range(0, running.shape[0], step):
        part = running[z0 : z0 + step]
        part += (value[z0 : z0 + step] - part) / np.float32(k + 1)


def average_views(run_one: Callable[..., Iterator], volume: np.ndarray, flips: Sequence[_Flip], *,
                  out: np.ndarray | None = None, std_out: np.ndarray | None = None) -> Iterator:
    """Run ``run_one(view, out=..., std_out=...)`` (an inference generator of
    :class:`~.run.InferenceEvent`) on each flip of ``volume`` and yield its
    events with the progress of the whole; the last event's result holds the
    mean of the views flipped back (in ``out`` when given), the root of their
    mean variance as ``std`` when the runs have one (in ``std_out``), the
    mean wedge gains, and ``views``. A stopped view ends the run stopped.
    """
    n = len(flips)
    first = mean = var = None
    gains: list[np.ndarray] = []
    per_view = 0
    t0 = time.perf_counter()
    for k, axes in enumerate(flips):
        # the first view writes straight into the outputs; the others into their own arrays
        target = {"out": out, "std_out": std_out} if k == 0 else {}
        for event in run_one(_flip(volume, axes), **target):
            per_view = max(per_view, event.total_tiles)
            done = k * per_view + event.done_tiles
            elapsed = time.perf_counter() - t0
            total = n * per_view
            if not event.done or event.stopped:
                eta = elapsed / done * (total - done) if done else None
                yield replace(event, done_tiles=done, total_tiles=total, seconds=elapsed, eta_s=eta)
                if event.stopped:
                    return
                continue
            result = event.result
            view = _flip(result.mean, axes)
            spread = None if result.std is None else _flip(result.std, axes)
            if k == 0:  # the identity: its arrays are ``out`` and ``std_out`` when those were given
                first, mean, var = result, view, spread
                if var is not None:
                    np.square(var, out=var)
            else:
                _fold(mean, view, k)
                if spread is not None and var is not None:
                    _fold(var, np.square(spread), k)
            if result.wedge_gains:
                gains.append(np.asarray(result.wedge_gains))
    if var is not None:
        np.sqrt(var, out=var)
    assert first is not None
    mean_gains = tuple(round(float(g), 3) for g in np.mean(gains, axis=0)) if len(gains) == n else ()
    elapsed = time.perf_counter() - t0
    result = replace(first, mean=mean, std=var, views=n, wedge_gains=mean_gains, seconds=elapsed)
    total = n * per_view
    yield replace(event, done_tiles=total, total_tiles=total, seconds=elapsed, eta_s=0.0, result=result,
                  message=result.summary(per_view))
