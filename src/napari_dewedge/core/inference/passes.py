"""The application's passes after the tiles: the wedge gain, the coarse pass, the fusion, the
second pass's gate, the reliability weights and the solvent flattening, each on the whole prediction
(:func:`.run.run_inference` runs them).

Each takes the model, the volume and the tiles' prediction ``mean`` (changed in place) and
says whether it ran; the generator is applied through :func:`.run.predict`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..model import TrainedModel
    from .solvent import Flattening

__all__ = ["calibration_pass", "coarse_pass", "fusion_pass", "reliability_pass", "second_noise", "solvent_pass",
           "wedge_of"]


def wedge_of(model: "TrainedModel", geometry: Any) -> Any:
    """The volume's missing wedge: ``geometry``, else the model's (None when neither is known)."""
    return geometry if geometry is not None else getattr(model, "geometry", None)


def coarse_pass(model: "TrainedModel", volume: np.ndarray, mean: np.ndarray, geometry: Any, dev: Any,
                 amp: bool, calibrate: bool) -> int:
    """Merge the coarse prediction (its wedge gain calibrated on the binned volume with ``calibrate``)
    into ``mean`` (in place); returns the binning (1: not run)."""
    from ..training.sampling import volume_stats
    from .coarse import coarse_factor, coarse_volume, merge_coarse
    from .run import _per_volume, predict

    wedge = wedge_of(model, geometry)
    factor = coarse_factor(tuple(volume.shape), int(model.subtomo_size))
    if wedge is None or factor < 2:
        return 1
    binned = coarse_volume(volume, factor)
    # the binned volume holds the same signal with less noise: scaled by its own spread, as
    # every training volume was; centred where the tiles were (the model's mean, or its own)
    own_mean, own_std = volume_stats(binned)
    norm = (own_mean if _per_volume(model) else float(model.normalization["mean"]), own_std)
    pred = predict(model, binned, geometry=geometry, device=dev, amp=amp, normalization=norm,
                   calibrate=calibrate, reliability=False).mean
    merge_coarse(mean, pred, wedge)
    return factor


def calibration_pass(model: "TrainedModel", volume: np.ndarray, mean: np.ndarray, geometry: Any, dev: Any,
                      amp: bool, normalization: tuple[float, float] | None) -> tuple[float, ...]:
    """Scale ``mean``'s missing wedge by the gains measured on ``volume`` (in place); the gains, or ()."""
    from .calibration import calibrate_wedge
    from .coarse import COARSE_MAX_VOXELS
    from .run import predict

    wedge = wedge_of(model, geometry)
    if wedge is None or volume.size > COARSE_MAX_VOXELS:
        return ()
    gains = calibrate_wedge(mean, volume, wedge,
                            lambda v: predict(model, v, geometry=geometry, device=dev, amp=amp,
                                              normalization=normalization).mean)
    return tuple(round(float(g), 3) for g in gains)


def reliability_pass(model: "TrainedModel", volume: np.ndarray, mean: np.ndarray, geometry: Any, dev: Any,
                      amp: bool, normalization: tuple[float, float] | None) -> bool:
    """Weight ``mean``'s missing wedge by the agreement of the recorrupted halves' fillings, measured
    on ``volume``'s central crop (in place); False when skipped."""
    from ..training.sampling import volume_stats
    from .calibration import calibration_crop
    from .coarse import COARSE_MAX_VOXELS
    from .fusion import volume_noise
    from .reliability import noisy_enough, recorrupted_halves, reliability_weights, weigh_wedge
    from .run import _per_volume, predict

    wedge = wedge_of(model, geometry)
    if wedge is None or volume.size > COARSE_MAX_VOXELS:
        return False
    part = np.asarray(volume[calibration_crop(tuple(volume.shape))], dtype=np.float32)
    noise, _ = volume_noise(part, wedge, cube=int(model.subtomo_size))
    if not noisy_enough(part, noise.white_std):
        return False
    if normalization is None and _per_volume(model):  # both halves normalised as the volume was
        normalization = volume_stats(volume)
    first, second = (predict(model, half, geometry=geometry, device=dev, amp=amp, normalization=normalization).mean
                     for half in recorrupted_halves(part, noise.white_std))
    weigh_wedge(mean, wedge, reliability_weights(first, second, wedge), edge=min(part.shape))
    return True


def fusion_pass(model: "TrainedModel", volume: np.ndarray, mean: np.ndarray, geometry: Any) -> bool:
    """Fuse ``mean``'s measured region with ``volume``'s (in place); False when skipped."""
    from .fusion import FUSION_MAX_VOXELS, fuse_measured, volume_noise_power

    wedge = wedge_of(model, geometry)
    if wedge is None or volume.size > FUSION_MAX_VOXELS:
        return False
    fuse_measured(mean, volume, wedge, volume_noise_power(volume, wedge, cube=int(model.subtomo_size)))
    return True


def second_noise(model: "TrainedModel", volume: np.ndarray, geometry: Any) -> float | None:
    """The noise power the second pass (:mod:`.second`) fuses its result with ``volume`` by, or None
    when the pass is skipped: no wedge, a volume too large to transform in memory, or one without
    noise to speak of (the reliability weights' gate, on the central crop)."""
    from .calibration import calibration_crop
    from .fusion import FUSION_MAX_VOXELS, measured_noise_power, volume_noise
    from .reliability import noisy_enough

    wedge = wedge_of(model, geometry)
    if wedge is None or volume.size > FUSION_MAX_VOXELS:
        return None
    estimate, measured = volume_noise(volume, wedge, cube=int(model.subtomo_size))
    if not noisy_enough(volume[calibration_crop(tuple(volume.shape))], estimate.white_std):
        return None
    return measured_noise_power(estimate, measured)


def solvent_pass(model: "TrainedModel", volume: np.ndarray, mean: np.ndarray, geometry: Any,
                 stop: Callable[[], bool] | None = None) -> "Flattening | None":
    """Flatten the solvent of ``mean`` (in place, :mod:`.solvent`) when ``volume`` is without noise to speak
    of, whose measured region the fusion gave back exactly, and keep it where the data agree with a flat
    solvent; what it did (a :class:`~.solvent.Flattening` that did not run for a noisy or crowded volume,
    one too large to transform in memory, or without a wedge), or None when ``stop`` ended it (``mean``
    unchanged)."""
    from .fusion import FUSION_MAX_VOXELS, volume_noise_power
    from .solvent import Flattening, flatten_solvent

    wedge = wedge_of(model, geometry)
    if wedge is None or volume.size > FUSION_MAX_VOXELS:
        return Flattening()
    if volume_noise_power(volume, wedge, cube=int(model.subtomo_size)) > 0:
        return Flattening()
    return flatten_solvent(mean, wedge, stop=stop)
