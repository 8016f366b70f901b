"""Tiled application of a trained generator: :func:`run_inference` and :func:`predict`.

Tiles come from a :class:`~.tiles.TilePlan`; each is normalised with the
model's normalisation, optionally perturbed with Gaussian noise, passed through
the generator in batches, de-normalised and accumulated with its blend weight
(straight into the output for one sample, in a rolling z-slab buffer folded
into a running mean and standard deviation for several).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .passes import calibration_pass, coarse_pass, fusion_pass, reliability_pass, second_noise, solvent_pass, wedge_of
from .solvent import Flattening
from .tiles import TilePlan, _read_tile, _round_up, default_overlap, default_tile, plan_tiles
from .views import average_views, view_flips

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..model import TrainedModel

__all__ = [
    "InferenceEvent",
    "InferenceResult",
    "InferenceStopped",
    "run_inference",
    "predict",
]


class InferenceStopped(RuntimeError):
    """Raised by :func:`predict` when the stop callback ended the run."""


@dataclass
class InferenceResult:
    """Output of a tiled inference.

    ``mean`` is the prediction (the mean over samples when ``samples > 1``),
    ``std`` the per-voxel standard deviation over the samples (``ddof=0``) or
    None for a single sample. Both float32, ``(z, y, x)``, in the units of the
    input (normalisation undone). ``solvent``: what the solvent flattening did (:class:`.solvent.Flattening`)."""

    mean: np.ndarray
    std: np.ndarray | None = None
    samples: int = 1
    noise_scale: float = 0.0
    tile: tuple[int, int, int] = (0, 0, 0)
    overlap: tuple[int, int, int] = (0, 0, 0)
    device: str = "cpu"
    seconds: float = 0.0
    coarse_factor: int = 1
    fused: bool = False
    wedge_gains: tuple[float, ...] = ()
    views: int = 1
    second: bool = False
    reliability: bool = False
    solvent: Flattening = Flattening()

    def summary(self, tiles: int) -> str:
        """One line for a status bar: ``tiles`` tile predictions a view, the passes that ran, the time."""
        passes = "".join(text for text, ran in ((", wedge gain calibrated", bool(self.wedge_gains)),
                                                (f", coarse pass at 1/{self.coarse_factor}", self.coarse_factor > 1),
                                                (", fused with the data", self.fused),
                                                (", second pass on its measured region", self.second),
                                                (", wedge weighted by its halves' agreement", self.reliability),
                                                (self.solvent.summary(), self.solvent.ran),
                                                (f", mean of {self.views} mirror views", self.views > 1)) if ran)
        return f"{tiles} tiles{passes} in {self.seconds:.1f} s on {self.device}"

    def settings(self) -> dict[str, Any]:
        """Plain-dict description for provenance (layer metadata, MRC labels)."""
        return {
            "samples": self.samples,
            "noise_scale": self.noise_scale,
            "tile": list(self.tile),
            "overlap": list(self.overlap),
            "coarse_factor": self.coarse_factor,
            "fused": self.fused,
            "wedge_gains": list(self.wedge_gains),
            "views": self.views,
            "second_pass": self.second,
            "reliability": self.reliability,
            **self.solvent.record(),
            "device": self.device,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class InferenceEvent:
    """Progress of :func:`run_inference`, one per tile batch.

    ``done_tiles``/``total_tiles`` count tile predictions over all samples;
    ``sample`` is the 1-based sample being computed. The last event has
    ``done=True`` and carries ``result`` (None when the run was stopped, in
    which case ``stopped`` is True).
    """

    done_tiles: int
    total_tiles: int
    sample: int
    samples: int
    seconds: float
    eta_s: float | None
    done: bool = False
    result: InferenceResult | None = None
    stopped: bool = False
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done_tiles / self.total_tiles if self.total_tiles else 1.0


# ----------------------------------------------------------------------------
# Output accumulation per z-slab
# ----------------------------------------------------------------------------


class _SlabAccumulator:
    """Rolling float32 buffer of one tile's depth over the padded (y, x) plane.

    Tiles arrive ordered by z start; planes before the current z start are
    final and are handed to ``sink(z0, z1, planes)`` (volume coordinates,
    cropped to the volume), then the buffer shifts.
    """

    def __init__(self, plan: TilePlan, sink: Callable[[int, int, np.ndarray], None]):
        az, ay, ax = plan.axes
        self.plan = plan
        self.sink = sink
        self.buf = np.zeros((az.tile, ay.padded, ax.padded), dtype=np.float32)
        self.start = 0  # padded z of buf[0]

    def _flush(self, upto: int) -> None:
        az, ay, ax = self.plan.axes
        k = min(upto - self.start, az.tile)
        if k <= 0:
            return
        z0 = max(self.start, az.pad_before)
        z1 = min(self.start + k, az.pad_before + az.length)
        if z1 > z0:
            planes = self.buf[
                z0 - self.start : z1 - self.start,
                ay.pad_before : ay.pad_before + ay.length,
                ax.pad_before : ax.pad_before + ax.length,
            ]
            self.sink(z0 - az.pad_before, z1 - az.pad_before, planes)
        if k < az.tile:
            self.buf[: az.tile - k] = self.buf[k:]
        self.buf[az.tile - k :] = 0.0
        self.start = upto

    def add(self, index: tuple[int, int, int], prediction: np.ndarray) -> None:
        az, ay, ax = self.plan.axes
        i, j, k = index
        sz, sy, sx = int(az.starts[i]), int(ay.starts[j]), int(ax.starts[k])
        if sz > self.start:
            self._flush(sz)
        weight = az.factors[i][:, None, None] * ay.factors[j][None, :, None] * ax.factors[k][None, None, :]
        off = sz - self.start
        self.buf[off : off + az.tile, sy : sy + ay.tile, sx : sx + ax.tile] += prediction * weight

    def finish(self) -> None:
        az = self.plan.axes[0]
        while self.start < az.padded:
            self._flush(min(az.padded, self.start + az.tile))


class _DirectAccumulator:
    """Adds weighted tile predictions straight into the output (one sample).

    The blend weights are normalised in advance, so the output is the plain
    sum of the weighted tiles, cropped to the volume: no buffer at all.
    """

    def __init__(self, plan: TilePlan, out: np.ndarray, zero: bool = True):
        self.plan = plan
        self.out = out
        if zero:  # a caller's array; a fresh np.zeros array is zero already (and not yet resident)
            step = max(1, (1 << 24) // max(1, out.shape[1] * out.shape[2]))
            for z0 in range(0, out.shape[0], step):
                out[z0 : z0 + step] = 0.0

    def add(self, index: tuple[int, int, int], prediction: np.ndarray) -> None:
        src, dst, factors = [], [], []
        for a, i in zip(self.plan.axes, index):
            s = int(a.starts[i]) - a.pad_before  # tile start in volume coordinates
            lo, hi = max(0, s), min(a.length, s + a.tile)
            src.append(slice(lo - s, hi - s))
            dst.append(slice(lo, hi))
            factors.append(a.factors[i][lo - s : hi - s])
        weight = factors[0][:, None, None] * factors[1][None, :, None] * factors[2][None, None, :]
        self.out[tuple(dst)] += prediction[tuple(src)] * weight

    def finish(self) -> None:
        pass


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------


def _check_volume(volume: Any) -> np.ndarray:
    if not isinstance(volume, np.ndarray):
        volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (z, y, x), got shape {volume.shape}")
    if min(volume.shape) < 1:
        raise ValueError(f"volume is empty: shape {volume.shape}")
    if volume.dtype.kind not in "biuf":
        raise ValueError(f"volume must hold real numbers, got dtype {volume.dtype}")
    return volume


def _check_out(arr: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray:
    if arr is None:
        return np.zeros(shape, dtype=np.float32)
    if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float32:
        raise ValueError(f"{name} must be a float32 array of shape {shape}")
    if not arr.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    return arr


def _resolve_device(device: Any) -> "torch.device":
    from ..device import resolve_device

    return resolve_device(device)


def _default_batch(device: "torch.device", tile: tuple[int, int, int]) -> int:
    voxels = math.prod(tile)
    budget = (1 << 23) if device.type == "cuda" else (1 << 21)
    return int(max(1, min(16, budget // voxels)))


def _model_noise_scale(model: Any) -> float:
    value = getattr(model, "noise_scale", None)
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return float(value)
    training = getattr(model, "training", None) or {}
    value = training.get("noise_scale") if isinstance(training, dict) else None
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


#: The default input noise of several samples, as a fraction of the training tomogram's noise level.
SAMPLE_NOISE_FRACTION = 0.5


def _sample_noise(model: Any) -> float:
    """The default input noise of several samples: :data:`SAMPLE_NOISE_FRACTION` of the white noise
    estimated on the training tomogram (normalised units), or of the training noise scale when the
    model recorded no estimate.

    Not the training noise scale itself: with recorrupted fidelity targets it is the tomogram's noise
    times sqrt(3), and inputs that noisy cost the mean of three samples 3.7 dB on the SNR 0.5 cell
    scene (1.5 dB at the tomogram's own noise level, nothing at half of it; docs/benchmarks).
    """
    estimate = ((getattr(model, "training", None) or {}).get("noise_estimate") or {})
    try:
        level = float(estimate.get("white_std"))
    except (TypeError, ValueError):
        level = _model_noise_scale(model)
    return SAMPLE_NOISE_FRACTION * level if math.isfinite(level) and level > 0 else 0.0


def _per_volume(model: Any) -> bool:
    """Whether ``model`` was trained on several tomograms, each normalised with its own statistics."""
    return bool((getattr(model, "training", None) or {}).get("per_volume_normalization"))


def _affine(mean: float, std: float) -> tuple[Callable, Callable]:
    """Normalise with ``(mean, std)`` and undo it."""
    return (lambda x: (x - mean) / std), (lambda y: y * std + mean)


def _normalization(model: Any, volume: np.ndarray) -> tuple[Callable, Callable]:
    """How tiles are normalised: with the model's training statistics, or, for a model
    trained on several tomograms (each normalised with its own), the volume's own."""
    if not _per_volume(model):
        return model.normalize, model.denormalize
    from ..training.sampling import volume_stats

    return _affine(*volume_stats(volume))


def _input_filter(model: Any, geometry: Any) -> Callable | None:
    """The wedge filter of the generator's input, for a model trained with ``filter_input``
    (the volume's wedge ``geometry``, or the model's when None); None otherwise."""
    if not (getattr(model, "training", None) or {}).get("filter_input"):
        return None
    from ..wedge import apply_wedge

    wedge = geometry if geometry is not None else model.geometry
    return None if wedge is None else (lambda x: apply_wedge(x, wedge))


def run_inference(
    model: "TrainedModel",
    volume: np.ndarray,
    *,
    geometry: Any = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    samples: int = 1,
    noise_scale: float | None = None,
    device: Any = "auto",
    stop: Callable[[], bool] | None = None,
    seed: int | None = None,
    amp: bool = True,
    out: np.ndarray | None = None,
    std_out: np.ndarray | None = None,
    calibrate: bool = False,
    coarse: bool = False,
    fuse: bool = False,
    views: int = 1,
    normalization: tuple[float, float] | None = None,
    second: bool = True,
    reliability: bool | None = None,
    solvent: bool = True,
) -> Iterator[InferenceEvent]:
    """Apply ``model``'s generator to the whole ``volume`` in blended tiles.

    Parameters
    ----------
    model
        A trained model: ``generator`` (module mapping ``(B, 1, d, d, d)`` to
        the same shape, with a ``padding_multiple``), ``normalize`` /
        ``denormalize``, ``subtomo_size`` and ``training`` settings.
    volume
        ``(z, y, x)`` array of any real dtype, e.g. a read-only memory map.
    tile, overlap
        Tile edge (default :func:`default_tile`, rounded up to the padding
        multiple) and the overlap of neighbouring tiles (default: half the
        subtomogram size with the default tile, ``tile // 4`` with another).
    batch_size
        Tiles per forward pass (default from the tile size and the device).
    samples, noise_scale
        ``samples`` predictions with independent Gaussian input noise of
        standard deviation ``noise_scale`` (normalised units). The default
        noise is none for one sample and, for several, half the noise level
        of the training tomogram (:func:`_sample_noise`). ``seed`` makes the
        noise reproducible.
    device
        ``"auto"``, ``"cpu"``, ``"cuda:0"``... (see ``core.device``). The GPU's cached memory
        is kept (the passes call this again, some forty times an application); the job
        (:func:`~napari_dewedge.core.pipeline.apply`) gives it back once, at its end.
    geometry
        The volume's missing wedge (a :class:`~napari_dewedge.core.wedge.WedgeGeometry`):
        a model trained with ``filter_input`` sees each tile through its measured
        region (default: the model's wedge).
    stop
        Called between batches; when it returns True the run ends early with a
        last event ``done=True, stopped=True, result=None``.
    amp
        Mixed precision on CUDA (inference on the CPU stays in float32).
    out, std_out
        Optional float32 output arrays of the volume's shape (e.g. memory maps).
    calibrate
        Scale the tiles' filling of the missing wedge by the gains measured on
        the volume itself (:mod:`.calibration`: the generator on a few rotations
        of the volume filled with its prediction, or of their central crop,
        against the data they move into the wedge), and the coarse pass's
        likewise on the binned volume. Skipped for volumes too large to
        transform in memory.
    second
        Run the second pass (:mod:`.second`): the whole application again (tiles,
        passes and views) on the finished result cut back to its measured
        region, fused with the volume's data and taken everywhere but in the
        missing wedge's lowest frequencies. Only with ``fuse``; skipped for
        volumes without noise to speak of, too large to transform in memory,
        or without a wedge.
    reliability
        Weight the finished filling of the missing wedge by how well the
        generator's fillings of the volume's two recorrupted halves agree, per
        shell and depth into the wedge (:mod:`.reliability`), once after the
        views are averaged and the second pass. Default: with ``calibrate``.
    solvent
        Flatten the solvent last (:mod:`.solvent`): with ``fuse``, on a noise-free volume whose object leaves
        most of the box empty, kept where a flat solvent agrees with the measured data (phantoms, not maps).
    coarse
        Run the coarse pass (:mod:`.coarse`) after the tiles: the generator on
        the volume binned to about one subtomogram, its prediction taken for the
        missing wedge's lowest frequencies (of the mean; ``std`` is left as the
        tiles made it). Skipped when the volume is already that small, or too
        large to transform in memory.
    fuse
        Fuse the measured region with the volume's own data (:mod:`.fusion`),
        shell by shell as their noise and the prediction's error weigh them,
        after the coarse pass; the missing wedge is left as predicted. Skipped
        for volumes too large to transform in memory.
    views
        Run the whole inference (tiles and passes) on this many mirror views of
        the volume, flips that keep its missing wedge in place (four for any
        tilt range, eight for a symmetric one), and average them flipped back
        (:mod:`.views`). One view for volumes too large for the passes, or
        without a wedge.
    normalization
        ``(mean, std)`` of the tiles' normalisation instead of the model's.

    Yields one :class:`InferenceEvent` per batch; the last has ``done=True``
    and the :class:`InferenceResult`.
    """
    volume = _check_volume(volume)
    weigh = calibrate if reliability is None else bool(reliability)
    apply = functools.partial(_application, model, geometry=geometry, tile=tile, overlap=overlap,
                              batch_size=batch_size, device=device, stop=stop, amp=amp, calibrate=calibrate,
                              coarse=coarse, views=views, normalization=normalization)
    noise = second_noise(model, volume, geometry) if fuse and second else None
    flatten = bool(fuse and solvent)
    first = apply(volume, samples=samples, noise_scale=noise_scale, seed=seed, out=out, std_out=std_out, fuse=fuse)
    if noise is None and not (weigh or flatten):
        yield from first
        return
    yield from _finished(model, volume, first, apply, noise, weigh, geometry=geometry, amp=amp,
                         normalization=normalization, dev=_resolve_device(device), flatten=flatten, stop=stop)


def _finished(model: "TrainedModel", volume: np.ndarray, first: Iterator[InferenceEvent], apply: Callable,
              noise: float | None, weigh: bool, *, geometry: Any, amp: bool, normalization: Any,
              dev: Any, flatten: bool = False, stop: Callable[[], bool] | None = None) -> Iterator[InferenceEvent]:
    """``first``'s events, then the second pass (``noise``), the reliability weights and the flattening."""
    from .fusion import fuse_measured
    from .second import merge_second, second_input

    t0 = time.perf_counter()
    span = [0, 0]  # tile predictions before this application's, and in all

    def relay(events: Iterator[InferenceEvent]):
        """Yield ``events`` as progress of the whole; return the finished result (None: stopped)."""
        for event in events:
            if not span[1]:  # the second application predicts one sample's tiles
                span[1] = event.total_tiles + (event.total_tiles // event.samples if noise is not None else 0)
            if event.done and not event.stopped:
                span[0] += event.total_tiles
                return event.result
            done, elapsed = span[0] + event.done_tiles, time.perf_counter() - t0
            eta = elapsed / done * (span[1] - done) if done and not event.done else None
            yield replace(event, done_tiles=done, total_tiles=span[1], seconds=elapsed, eta_s=eta)
        return None

    result = yield from relay(first)
    if result is None:
        return
    tiles = span[0] // max(1, result.views)
    wedge = wedge_of(model, geometry)
    if noise is not None:
        later = yield from relay(apply(second_input(result.mean, wedge), samples=1, noise_scale=None, seed=None,
                                       fuse=False))
        if later is None:
            return
        merge_second(result.mean, fuse_measured(later.mean, volume, wedge, noise), wedge)
    weighed = reliability_pass(model, volume, result.mean, geometry, dev, amp, normalization) if weigh else False
    flat = solvent_pass(model, volume, result.mean, geometry, stop=stop) if flatten else Flattening()
    elapsed = time.perf_counter() - t0
    if flat is None:  # stopped in the flattening, the last pass
        yield InferenceEvent(span[1], span[1], result.samples, result.samples, elapsed, None, done=True, stopped=True,
                             message="inference stopped")
        return
    result = replace(result, second=noise is not None, reliability=weighed, solvent=flat, seconds=elapsed)
    yield InferenceEvent(span[1], span[1], result.samples, result.samples, elapsed, 0.0, done=True, result=result,
                         message=result.summary(tiles))


def _application(model: "TrainedModel", volume: np.ndarray, *, views: int, out: np.ndarray | None = None,
                 std_out: np.ndarray | None = None, **kwargs: Any) -> Iterator[InferenceEvent]:
    """The tiles and the passes on ``volume``, averaged over its mirror views (:mod:`.views`)."""
    from .coarse import COARSE_MAX_VOXELS

    flips = view_flips(wedge_of(model, kwargs.get("geometry")), views)
    if len(flips) > 1 and volume.size <= COARSE_MAX_VOXELS:
        yield from average_views(functools.partial(_single, model, **kwargs), volume, flips, out=out,
                                 std_out=std_out)
    else:
        yield from _single(model, volume, out=out, std_out=std_out, **kwargs)


def _single(model: "TrainedModel", volume: np.ndarray, *, geometry: Any, tile: int | None, overlap: int | None,
            batch_size: int | None, samples: int, noise_scale: float | None, device: Any,
            stop: Callable[[], bool] | None, seed: int | None, amp: bool, calibrate: bool, coarse: bool,
            fuse: bool, normalization: tuple[float, float] | None, out: np.ndarray | None = None,
            std_out: np.ndarray | None = None) -> Iterator[InferenceEvent]:
    """The tiles and the passes of one view (see :func:`run_inference`)."""
    import torch

    from ..device import autocast_context
    from ..networks import inference_copy

    shape = tuple(int(s) for s in volume.shape)
    samples = int(samples)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if noise_scale is None:
        noise = _sample_noise(model) if samples > 1 else 0.0
    else:
        noise = float(noise_scale)
        if not math.isfinite(noise) or noise < 0:
            raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale!r}")

    generator = model.generator
    multiple = int(getattr(generator, "padding_multiple", 1) or 1)
    tile_req = default_tile(model) if tile is None else int(tile)
    if tile_req < 1:
        raise ValueError(f"tile must be a positive number of voxels, got {tile}")
    tile_req = _round_up(tile_req, multiple)
    if overlap is None:
        overlap_req = tile_req // 4 if tile is not None else min(default_overlap(model), tile_req - 1)
    else:
        overlap_req = int(overlap)
    min_size = int(getattr(generator, "min_size", multiple) or multiple)
    plan = plan_tiles(shape, tile_req, overlap_req, multiple, min_size)

    dev = _resolve_device(device)
    if batch_size is None:
        batch_size = _default_batch(dev, plan.tile)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    mean = _check_out(out, shape, "out")
    m2 = _check_out(std_out, shape, "std_out") if samples > 1 else None
    state = {"k": 0}

    def sink(z0: int, z1: int, planes: np.ndarray) -> None:
        k = state["k"]
        if k == 0:
            mean[z0:z1] = planes
            if m2 is not None:
                m2[z0:z1] = 0.0
            return
        assert m2 is not None
        delta = planes - mean[z0:z1]
        mean[z0:z1] += delta / np.float32(k + 1)
        m2[z0:z1] += delta * (planes - mean[z0:z1])

    torch_gen = None
    if noise > 0:
        torch_gen = torch.Generator(device=dev)
        torch_gen.manual_seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**63)))

    if normalization is None:
        normalize, denormalize = _normalization(model, volume)
    else:
        normalize, denormalize = _affine(*(float(v) for v in normalization))
    seen = _input_filter(model, geometry)
    was_training = generator.training
    home = next((p.device for p in generator.parameters()), None)
    net = inference_copy(generator).to(dev)  # its batch norms folded (a copy), or the generator itself
    total = len(plan) * samples
    done = 0
    t0 = time.perf_counter()
    stopped = False
    try:
        for k in range(samples):
            state["k"] = k
            acc = _DirectAccumulator(plan, mean, zero=out is not None) if samples == 1 else _SlabAccumulator(plan, sink)
            for b0 in range(0, len(plan), batch_size):
                if stop is not None and stop():
                    stopped = True
                    break
                indices = plan.order[b0 : b0 + batch_size]
                batch = np.stack([_read_tile(volume, plan, ix) for ix in indices])[:, None]
                with torch.inference_mode():
                    x = torch.from_numpy(batch).to(dev)
                    x = normalize(x)
                    if seen is not None:
                        x = seen(x)
                    if noise > 0:
                        x = x + noise * torch.randn(x.shape, generator=torch_gen, device=dev, dtype=x.dtype)
                    with autocast_context(dev, enabled=amp and dev.type == "cuda"):  # CPU: float32
                        y = net(x)
                    y = denormalize(y.float())
                    pred = y[:, 0].cpu().numpy()
                for ix, p in zip(indices, pred):
                    acc.add(ix, p)
                done += len(indices)
                elapsed = time.perf_counter() - t0
                yield InferenceEvent(
                    done_tiles=done,
                    total_tiles=total,
                    sample=k + 1,
                    samples=samples,
                    seconds=elapsed,
                    eta_s=elapsed / done * (total - done),
                )
            if stopped:
                break
            acc.finish()
    finally:
        generator.train(was_training)
        if home is not None and home != dev:
            generator.to(home)

    if stopped:
        elapsed = time.perf_counter() - t0
        yield InferenceEvent(done, total, state["k"] + 1, samples, elapsed, None, done=True, stopped=True,
                             message="inference stopped")
        return
    gains = calibration_pass(model, volume, mean, geometry, dev, amp, normalization) if calibrate else ()
    factor = coarse_pass(model, volume, mean, geometry, dev, amp, calibrate) if coarse else 1
    fused = fusion_pass(model, volume, mean, geometry) if fuse else False
    elapsed = time.perf_counter() - t0
    std = None
    if m2 is not None:
        step = max(1, (1 << 24) // max(1, shape[1] * shape[2]))
        for z0 in range(0, shape[0], step):
            sl = m2[z0 : z0 + step]
            np.divide(sl, np.float32(samples), out=sl)
            np.sqrt(np.maximum(sl, 0.0, out=sl), out=sl)
        std = m2
    result = InferenceResult(mean=mean, std=std, samples=samples, noise_scale=noise, tile=plan.tile,
                             overlap=plan.overlap, device=str(dev), seconds=elapsed, coarse_factor=factor,
                             fused=fused, wedge_gains=gains)
    yield InferenceEvent(done, total, samples, samples, elapsed, 0.0, done=True, result=result,
                         message=result.summary(total))


def predict(model: "TrainedModel", volume: np.ndarray, **kwargs: Any) -> InferenceResult:
    """Run :func:`run_inference` to the end and return its result.

    Raises :class:`InferenceStopped` when the ``stop`` callback ended the run.
    """
    last: InferenceEvent | None = None
    for last in run_inference(model, volume, **kwargs):  # noqa: B007 - only the last event matters
        pass
    if last is None or last.result is None:
        raise InferenceStopped("inference was stopped before it finished")
    return last.result
