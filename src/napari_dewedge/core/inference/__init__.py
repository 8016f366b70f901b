"""Tiled application of a trained generator to a whole tomogram.

The tomogram is padded reflectively (virtually: only the tiles are ever
materialised) by half the overlap on every side, and up to one tile along any
axis shorter than a tile, then cut into overlapping tiles
(:func:`~napari_dewedge.core.inference.tiles.tile_grid`). Each tile is normalised with
the model's normalisation, optionally perturbed with Gaussian noise, passed
through the generator in batches, de-normalised and blended with a smooth,
strictly positive, separable weight
(:func:`~napari_dewedge.core.inference.tiles.blend_ramp`). The weights are normalised
per axis in advance (their sum over tiles is separable), so a prediction that
does not depend on the tile it came from is reproduced exactly: no seams.

Memory is bounded by the tile batch and the output arrays: the input may be a
read-only ``np.memmap`` of any real dtype (converted to float32 tile by tile)
and the outputs are float32 arrays (optionally caller-provided, e.g. memory
maps). One prediction is accumulated straight into the output. With
``samples=K > 1`` the generator is run K times with different input noise; each
pass is blended in a rolling z-slab buffer of one tile's depth and folded into
the per-voxel mean and standard deviation slab by slab (Welford), without
keeping the samples.

:func:`run_inference` is a generator of :class:`InferenceEvent` for progress
bars and GUI workers; :func:`predict` consumes it.

With ``calibrate=True`` the tiles' filling of the missing wedge is scaled,
shell by shell, by the gain that makes the generator's filling match measured
data: the generator applied to a few rotations of the volume, whose measured
data then partly lie inside the wedge it has to fill (:mod:`.calibration`).
With ``coarse=True`` a next pass applies the generator to the volume binned in
Fourier space until its longest edge is about one subtomogram, and takes
that prediction for the missing wedge's longest wavelengths, which no tile can
see (:mod:`.coarse`). With ``fuse=True`` the measured region is then fused
with the volume's own data, shell by shell as the noise and the prediction's
error weigh them (:mod:`.fusion`): noise-free data come back exactly, noisy
shells keep the prediction, and the missing wedge is left as predicted.
With ``views=N > 1`` all of that runs on N mirror images of the volume that
keep its missing wedge in place, and the results, flipped back, are averaged
(:mod:`.views`). With ``fuse=True`` (and ``second``, on by default) the
whole application then runs again on the measured region of that result,
whose own fusion with the data is kept everywhere but in the missing wedge's
lowest frequencies (:mod:`.second`). Last, with ``calibrate=True``, the
filling of the finished result is weighted, per shell and depth into the wedge, by how well the
generator's fillings of the volume's two recorrupted halves (its noise
added and subtracted) agree (:mod:`.reliability`).

Modules: :mod:`.tiles` (tile grid, blend weights, the tile plan),
:mod:`.run` (the run, its events and result, the accumulators),
:mod:`.passes` (the passes after the tiles, which run the modules below),
:mod:`.calibration` (the wedge gains),
:mod:`.coarse` (binning and the merge of the coarse pass),
:mod:`.fusion` (the measured-region fusion),
:mod:`.views` (the mirror views),
:mod:`.second` (the second pass's input and merge) and
:mod:`.reliability` (the filling's weights from the recorrupted halves).
"""

from __future__ import annotations

from .run import InferenceEvent, InferenceResult, InferenceStopped, predict, run_inference
from .tiles import (
    DEAD_ZONE_WEIGHT,
    TilePlan,
    blend_ramp,
    blend_window,
    default_overlap,
    default_tile,
    plan_tiles,
    tile_grid,
    tile_starts,
)

__all__ = [
    "InferenceEvent",
    "InferenceResult",
    "InferenceStopped",
    "TilePlan",
    "default_overlap",
    "default_tile",
    "plan_tiles",
    "run_inference",
    "predict",
    "DEAD_ZONE_WEIGHT",
    "tile_starts",
    "tile_grid",
    "blend_ramp",
    "blend_window",
]
