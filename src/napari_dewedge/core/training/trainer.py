"""The training loop: :class:`Trainer` (a generator of :class:`TrainingEvent`) and :func:`fit`.

One step updates the energy network, then the generator, with the losses of
:mod:`.losses` (see :mod:`napari_dewedge.core.training` for the method).
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..device import amp_dtype, autocast_context, configure_cpu_threads, release_device_memory, resolve_device
from ..model import TrainedModel, current_versions
from ..networks import EnergyNet, UNet3D, build_energy, build_generator
from ..rotations import WEDGE_MOVING_ROTATIONS
from ..wedge import WedgeGeometry, apply_wedge, measured_fraction
from . import distributed
from . import losses as L
from .checkpoint import load_checkpoint, write_checkpoint
from .config import TrainingConfig
from .energy import energy_terms
from .events import TrainingEvent
from .multi import dataset_batch, dataset_input, fit_sources, prepare_sources
from .noise import NoiseEstimate, resolve_noise, synthetic_noise, tomogram_noise
from .prior import load_prior
from .sampling import (
    TrainingSource,
    check_training_volume,
    epoch_pool,
    extract_subtomograms,
    fit_volume,
    foreground_mask,
    volume_stats,
)

__all__ = ["Trainer", "TrainingEvent", "fit"]


# --------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------


_OOM_ERRORS: tuple[type[BaseException], ...] = tuple(
    {getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)} - {None}
)  # type: ignore[arg-type]


_INVERSES = [r.inverse() for r in WEDGE_MOVING_ROTATIONS]


class Trainer:
    """Trains a CryoGEN model on tomograms; :meth:`run` yields :class:`TrainingEvent`.

    Parameters
    ----------
    volume:
        The tomogram, ``(z, y, x)``, any real dtype (a memory map is fine), or
        a dataset: a :class:`~napari_dewedge.core.dataset.TomogramData` or a
        list of them, each with its own wedge, voxel size and, optionally,
        even/odd halves and a mask. Subtomograms are drawn across all of them in
        proportion to their usable volume (one tomogram per batch); each is
        normalised with its own statistics and has its own noise estimate.
        With halves, the network sees one half and the data terms the other
        (Noise2Noise): its own noise is never a target.
    geometry:
        The missing wedge of a bare ``volume`` (None for a dataset).
    config:
        Settings (default: ``TrainingConfig()``).
    voxel_size:
        ``(z, y, x)`` in Angstrom (or one number), stored in the model.
    source:
        Where the tomogram came from (a path or a layer name), stored in the model.
    resume_from:
        A checkpoint written by an earlier run on the same tomogram: training
        continues at the step after it (the total is ``config.steps``).
    checkpoint_path:
        Where to write checkpoints (every ``config.checkpoint_every_s`` seconds
        and when the run ends); None writes none.
    """

    def __init__(
        self,
        volume: Any,
        geometry: WedgeGeometry | None,
        config: TrainingConfig | None = None,
        *,
        voxel_size: Any = None,
        source: str | None = None,
        resume_from: str | Path | None = None,
        checkpoint_path: str | Path | None = None,
    ) -> None:
        config = TrainingConfig() if config is None else config
        if not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig, got {type(config).__name__}")
        dataset, volume, geometry, voxel_size, source = dataset_input(volume, geometry, voxel_size, source)
        volume = check_training_volume(volume)
        self.config = config
        self.geometry = geometry
        self.voxel_size = voxel_size
        self.source = None if source is None else str(source)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.device = resolve_device(config.device)
        self.volume_shape = tuple(int(s) for s in volume.shape)
        mean, std = volume_stats(volume)
        self.normalization = {"mean": mean, "std": std}
        self.seed = int(config.seed) if config.seed is not None else int(np.random.SeedSequence().entropy % (2**63))

        # Networks (seeded, without touching the global random state).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._g: UNet3D = build_generator(config.unet)
            self._e: EnergyNet = build_energy(
                {"width": config.energy_width, "spectral_norm": config.energy_spectral_norm}
            )
        self._prior = load_prior(self._g) if config.prior else None  # None: no prior for this U-Net
        self._sources: list[TrainingSource] = []
        self._multi = dataset is not None and (len(dataset) > 1 or any(d.has_halves or d.mask is not None
                                                                           for d in dataset))
        if self._multi:
            volume, size = fit_sources(self, dataset)
        else:
            volume, size, self._notes = fit_volume(volume, config.subtomo_size, self._g.padding_multiple,
                                                   self._g.min_size)
            self._sources = [TrainingSource(self.source or "volume", volume, geometry, self.normalization,
                                            self.volume_shape, voxel_size)]
        self.subtomo_size = size
        self._volume = volume
        self._extract = min(size + size // 4, min(min(s.volume.shape) for s in self._sources))
        self._step_geometry = geometry
        self._target: torch.Tensor | None = None

        self._g.to(self.device)
        self._e.to(self.device)
        self._g_frozen = copy.deepcopy(self._g).eval().requires_grad_(False)
        betas = tuple(config.adam_betas)
        self._opt_g: torch.optim.Optimizer | None = torch.optim.Adam(self._g.parameters(), lr=config.lr, betas=betas)
        self._opt_e: torch.optim.Optimizer | None = torch.optim.Adam(
            self._e.parameters(), lr=config.energy_lr or config.lr, betas=betas
        )
        self._amp_dtype = amp_dtype(self.device) if config.amp else None
        fp16 = self._amp_dtype == torch.float16
        self._scaler_g = torch.amp.GradScaler("cuda", enabled=fp16)
        self._scaler_e = torch.amp.GradScaler("cuda", enabled=fp16)
        self._rng = np.random.default_rng(self.seed)
        self._tgen = torch.Generator(device=self.device)
        self._tgen.manual_seed(self.seed)

        self._step = 0
        self._history: list[dict[str, Any]] = []
        self._energy_log: dict[str, float] = {}  # the energy's losses at its last run (energy_every > 1)
        self._fidelity_last = 0.0  # the fidelity term at its last evaluation (skipped on noise-free data)
        self._noise: NoiseEstimate | None = None
        self._mask: np.ndarray | None = None
        self._pool: np.ndarray | None = None
        self._pool_epoch = -1
        self._elapsed = 0.0
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._started = False
        self._finished = False
        self._stopped = False
        self._released = False
        if resume_from is not None:
            load_checkpoint(self, Path(resume_from))
        self._dist = distributed.attach(self)  # None unless a process group of 2+ ranks is open

    # -- public ----------------------------------------------------------------------

    @property
    def step(self) -> int:
        """Steps done so far."""
        return self._step

    @property
    def noise(self) -> NoiseEstimate | None:
        """The noise estimate (available once the run has started)."""
        return self._noise

    def request_stop(self) -> None:
        """Ask the run to stop after the current step (thread-safe)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def model(self) -> TrainedModel:
        """The model as trained so far (an independent copy on the CPU)."""
        with self._lock:
            generator = copy.deepcopy(self._g).cpu().eval()
            energy = copy.deepcopy(self._e).cpu().eval()
            return TrainedModel(
                generator=generator,
                network=generator.config(),
                geometry=self.geometry,
                normalization=dict(self.normalization),
                subtomo_size=self.subtomo_size,
                training=self._training_record(),
                history=copy.deepcopy(self._history),
                voxel_size=self.voxel_size,
                versions=current_versions(),
                steps_done=self._step,
                source=self.source,
                energy=energy,
                energy_network=energy.config(),
            )

    def run(self) -> Iterator[TrainingEvent]:
        """Train, yielding one event before the first step and one after every step.

        The last event has ``done=True`` (and ``stopped=True`` when the run was
        stopped early). A trainer runs once; resume from its checkpoint to go on.
        """
        if self._started:
            raise RuntimeError("this Trainer has already run; create a new one (resume_from a checkpoint to continue)")
        self._started = True
        old_threads = torch.get_num_threads()
        if self.device.type == "cpu" and self.config.num_threads is not None:
            configure_cpu_threads(self.config.num_threads)
        try:
            yield from self._run()
        except _OOM_ERRORS as exc:
            raise RuntimeError(
                f"out of memory on {self.device} with subtomograms of {self.subtomo_size}^3, batch "
                f"{self.config.batch_size} and U-Net width {self.config.unet.get('width')}: choose a "
                "smaller batch_size, subtomo_size or width"
            ) from exc
        finally:
            self._stopped = self._stopped or not self._finished
            self._release()
            if self.device.type == "cpu" and self.config.num_threads is not None:
                torch.set_num_threads(old_threads)

    # -- the loop --------------------------------------------------------------------

    def _run(self) -> Iterator[TrainingEvent]:
        cfg = self.config
        total = cfg.steps
        self._prepare()
        notes = list(self._notes) + [f"{self._noise}", f"subtomograms {self.subtomo_size}^3 on {self.device}"]
        if cfg.fidelity_weight > 0 and self._noise_model["fidelity_weight"] == 0:
            notes.insert(-1, "no noise to speak of: the consistency term alone")
        if self._step:
            notes.insert(0, f"resumed at step {self._step}")
        elif self._prior is not None:
            notes.insert(0, "started from the built-in prior")
        if self._step >= total or self._time_spent():
            self._finished = True
            self._write_checkpoint()
            yield self._event(total, {}, 0.0, preview=True, done=True, message="; ".join(notes + ["nothing left to do"]))
            return
        yield self._event(total, {}, 0.0, preview=True, message="; ".join(notes))

        last_ckpt = time.monotonic()
        per_step = 0.0
        log_every = max(1, total // 2000)
        while self._step < total and not self._finished:
            if self._stop.is_set() if self._dist is None else self._dist.stop:
                break
            t0 = time.perf_counter()
            k = self._step + 1
            with self._lock:
                losses, lam, lr = self._train_step(k)
                self._step = k
                self._elapsed += time.perf_counter() - t0
                if self._dist is not None:  # the ranks' mean losses and time, one stop decision, rank 0's buffers
                    losses = self._dist.after_step(self, losses)
            dt = time.perf_counter() - t0
            per_step = dt if per_step == 0.0 else 0.9 * per_step + 0.1 * dt
            done = k == total or self._time_spent()
            if k % log_every == 0 or done:
                self._history.append({"step": k, "lr": lr, "lam": lam, **losses})
            if done:
                self._finished = True
            if self.checkpoint_path is not None and (
                done
                or (cfg.checkpoint_every_s is not None and time.monotonic() - last_ckpt >= cfg.checkpoint_every_s)
            ):
                self._write_checkpoint()
                last_ckpt = time.monotonic()
            want_preview = done or (cfg.preview_every > 0 and k % cfg.preview_every == 0)
            if done:
                self._release()
            message = ""
            if done:
                message = f"finished {total} steps" if k == total else \
                    f"finished: the time budget of {cfg.time_budget_s:g} s is spent, after {k} steps"
            yield self._event(self._projected_total(per_step), losses, per_step, lam=lam, lr=lr,
                              preview=want_preview, done=done, message=message)
        if not self._finished:  # stopped between steps
            self._stopped = True
            if self.checkpoint_path is not None:
                self._write_checkpoint()
            self._release()
            message = f"stopped at step {self._step} of {total}"
            yield self._event(total, {}, per_step, preview=True, done=True, stopped=True, message=message)

    def _projected_total(self, per_step: float) -> int:
        """The steps the run will have done at its end (see :func:`.losses.projected_total`; once the
        budget is spent no time is left, so that is the steps done)."""
        cfg = self.config
        return L.projected_total(self._step, steps=cfg.steps, elapsed_s=self._elapsed, budget_s=cfg.time_budget_s,
                                 per_step=per_step)

    def _event(self, total: int, losses: Mapping[str, float], per_step: float, *, lam: float | None = None,
               lr: float | None = None, preview: bool = False, done: bool = False, stopped: bool = False,
               message: str = "") -> TrainingEvent:
        k = self._step
        return TrainingEvent(
            step=k,
            total=total,
            losses=dict(losses),
            lam=self._lambda(max(k, 1)) if lam is None else lam,
            lr=self._lr(max(k, 1)) if lr is None else lr,
            seconds_per_step=per_step,
            eta_s=per_step * max(0, total - k),
            preview=self._preview() if preview else None,
            done=done,
            stopped=stopped,
            message=message,
            preview_origin=self._preview_origin,
        )

    # -- setup -----------------------------------------------------------------------

    def _prepare(self) -> None:
        """Foreground masks, noise estimates and the preview subtomogram."""
        size, ext = self.subtomo_size, self._extract
        vol_shape = tuple(self._volume.shape)
        if self._multi:
            prepare_sources(self)
        if self.config.mask_empty and not self._multi:
            mask = foreground_mask(self._volume, size=ext)
            self._mask = mask if mask.any() else None
        if self._noise is None:  # from 48 (24 when large) subtomograms at seeded random positions
            pos, _ = epoch_pool(vol_shape, size, 48 if size <= 48 else 24, [self.seed, 7919], order=False)
            self._noise = tomogram_noise(self._volume, self._normalize(extract_subtomograms(self._volume, pos, size)),
                                         self.geometry, self.normalization["std"])
        self._noise_model = self._resolve_noise()
        first = self._sources[0]
        first.noise, first.noise_model, first.mask = self._noise, self._noise_model, first.mask if self._multi \
            else self._mask
        self._preview_origin = corner = tuple(int((s - size) // 2) for s in vol_shape)
        cube = extract_subtomograms(self._volume, np.array([corner]), size)
        self._preview_input = self._seen(torch.from_numpy(self._normalize(cube)[:, None]).to(self.device),
                                         self.geometry)
        self._measured = measured_fraction((size,) * 3, self.geometry)
        first.measured = self._measured

    _preview_origin: tuple[int, int, int] | None = None
    _rank_key: tuple[int, ...] = ()  # (rank,) under torch.distributed: every rank draws its own subtomograms
    _dist: distributed.Distributed | None = None

    def _resolve_noise(self) -> dict[str, float]:
        """Final noise settings: sigma_n, noise_scale and the synthetic noise amplitudes."""
        assert self._noise is not None
        return resolve_noise(self.config, self._noise)

    def _normalize(self, cubes: np.ndarray) -> np.ndarray:
        mean, std = self.normalization["mean"], self.normalization["std"]
        return ((cubes - np.float32(mean)) / np.float32(std)).astype(np.float32, copy=False)

    def _training_record(self) -> dict[str, Any]:
        record = self.config.to_dict()
        record["sources"] = [s.record() for s in self._sources]
        record["per_volume_normalization"] = bool(self._multi and len(self._sources) > 1)
        record.update(
            seed_used=self.seed,
            subtomo_size_used=self.subtomo_size,
            device_used=str(self.device),
            processes=1 if self._dist is None else self._dist.world_size,  # torch.distributed ranks
            steps_done=self._step,
            prior_used=None if self._prior is None else self._prior.name,
            seconds=round(self._elapsed, 3),
            stopped=bool(self._stopped),
            volume_shape=list(self.volume_shape),
        )
        if self._noise is not None:
            resolved = getattr(self, "_noise_model", None) or self._resolve_noise()
            record.update(
                noise_estimate=self._noise.to_dict(),
                sigma_n_used=resolved["sigma_n"],
                noise_scale_used=resolved["noise_scale"],
                synthetic_noise={"white_std": resolved["white_std"], "wedge_std": resolved["wedge_std"]},
                fidelity_weight_used=resolved["fidelity_weight"],
            )
        return record

    # -- schedules -------------------------------------------------------------------

    def _schedule_step(self, k: int) -> float:
        cfg = self.config
        return L.schedule_position(k, steps=cfg.steps, elapsed_s=self._elapsed, budget_s=cfg.time_budget_s)

    def _time_spent(self) -> bool:
        """Whether the time budget (if any) is spent."""
        return self.config.time_budget_s is not None and self._elapsed >= self.config.time_budget_s

    def _lr(self, k: int) -> float:
        """Learning rate at step ``k`` (1-based): linear warm-up, then linear decay."""
        cfg = self.config
        return L.lr_schedule(self._schedule_step(k), lr=cfg.lr, steps=cfg.steps, warmup_fraction=cfg.warmup_fraction)

    def _lambda(self, k: int) -> float:
        """Consistency weight at step ``k``: constant in the first epoch, then linear decay."""
        cfg = self.config
        return L.lambda_schedule(
            self._schedule_step(k), lambda_consistency=cfg.lambda_consistency, epoch_steps=cfg.epoch_steps,
            steps=cfg.steps,
            decay=cfg.lambda_decay, lambda_final=cfg.lambda_final,
        )

    # -- data ------------------------------------------------------------------------

    def _batch(self, k: int) -> torch.Tensor:
        """Normalised subtomograms ``(B, 1, d, d, d)`` for step ``k``."""
        if self._multi:
            return dataset_batch(self, k)
        cfg = self.config
        epoch = (k - 1) // cfg.epoch_steps
        if epoch != self._pool_epoch or self._pool is None:
            self._pool, self._pool_order = epoch_pool(
                tuple(self._volume.shape), self._extract, cfg.n_subtomos, [self.seed, epoch, *self._rank_key],
                mask=self._mask,
            )
            self._pool_epoch = epoch
        within = (k - 1) % cfg.epoch_steps
        idx = self._pool_order[(within * cfg.batch_size + np.arange(cfg.batch_size)) % cfg.n_subtomos]
        offsets = self._rng.integers(0, self._extract - self.subtomo_size + 1, size=(cfg.batch_size, 3))
        cubes = extract_subtomograms(self._volume, self._pool[idx] + offsets, self.subtomo_size)
        return torch.from_numpy(self._normalize(cubes)[:, None]).to(self.device)

    def _randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self._tgen, device=self.device)

    def _synthetic_noise(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        return synthetic_noise(self._noise_model, self._randn, shape, self._step_geometry, self._measured)

    # -- one step --------------------------------------------------------------------

    def _seen(self, x: torch.Tensor, geometry: WedgeGeometry) -> torch.Tensor:
        """What the generator sees of ``x``: its measured region alone with ``filter_input``."""
        return apply_wedge(x, geometry) if self.config.filter_input else x

    def _fidelity_pair(self, y: torch.Tensor, y_obs: torch.Tensor, e_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's input and the fidelity target (``fidelity_target``; halves: the other half)."""
        if self._target is None and self.config.fidelity_target == "recorrupted":
            z = self._synthetic_noise(tuple(y.shape))  # the observation's noise statistics
            if z is not None:  # y + z and y - z carry independent noise (Recorrupted-to-Recorrupted)
                return y + z, y - z
        return y + e_g, y_obs

    def _amp(self) -> Any:
        return autocast_context(self.device, enabled=self._amp_dtype is not None)

    def _train_step(self, k: int) -> tuple[dict[str, float], float, float]:
        cfg = self.config
        g, e = (self._g if self._dist is None else self._dist.generator), self._e  # DDP under torch.distributed
        assert self._opt_g is not None and self._opt_e is not None
        lr, lam = self._lr(k), self._lambda(k)
        for group in self._opt_g.param_groups:
            group["lr"] = lr
        for group in self._opt_e.param_groups:
            group["lr"] = lr * (cfg.energy_lr or cfg.lr) / cfg.lr
        if (k - 1) % cfg.epoch_steps == 0:  # a new epoch: refresh the frozen copy
            self._g_frozen.load_state_dict(self._g.state_dict())

        y = self._batch(k)
        T = self._step_geometry
        # the data terms see the observation; with halves, the other half (Noise2Noise)
        y_obs = y if self._target is None else self._target
        shape = tuple(y.shape)
        n = len(WEDGE_MOVING_ROTATIONS)
        rot_idx = self._rng.integers(0, n, size=shape[0])
        cons_idx = self._rng.integers(0, n, size=shape[0])
        scale = self._noise_model["noise_scale"] * (1.0 - float(self._rng.random()))  # in (0, 1] * scale
        e_g = scale * self._randn(shape)
        e_x = scale * self._randn(shape)
        n_syn = self._synthetic_noise(shape)

        g.train()
        e.train()
        y_in, y_fid = self._fidelity_pair(y, y_obs, e_g)
        d_loss = energy = torch.zeros((), device=self.device)
        # with the energy term off (or on a step between two of its runs) its network is neither run nor trained
        run_energy = cfg.energy_weight > 0 and (k - 1) % cfg.energy_every == 0
        # the prediction feeds the energy and fidelity terms only: skipped without both (noise-free data)
        fidelity_weight = self._noise_model["fidelity_weight"]
        if run_energy or fidelity_weight > 0:
            with self._amp():
                pred = g(self._seen(y_in, T)).float()
            fidelity = L.fidelity_loss(pred, y_fid, T, self._noise_model["sigma_n"])
            self._fidelity_last = float(fidelity.detach())
        else:
            fidelity = torch.zeros((), device=self.device)  # reported as the last one measured
        if run_energy:
            fake = L.rotate_each(pred, [WEDGE_MOVING_ROTATIONS[i] for i in rot_idx])
            if n_syn is not None:
                fake = fake + n_syn
            d_loss, energy, stats = energy_terms(self, y_obs, fake, e_x)
            self._energy_log = {"energy_net": float(d_loss.detach()), "energy": float(energy.detach()), **stats}
        consistency = torch.zeros((), device=self.device)
        cons_term = None
        if lam > 0:
            with torch.no_grad(), self._amp():
                frozen = self._g_frozen(self._seen(y, T)).float()
            source, target = L.consistency_pair(frozen, y_in, y_fid, T, cfg.consistency_target == "data")
            e_h = scale * self._randn(shape)
            crots = [WEDGE_MOVING_ROTATIONS[i] for i in cons_idx]
            inverses = [_INVERSES[i] for i in cons_idx]
            inp = apply_wedge(L.rotate_each(source + e_h, crots), T)
            with self._amp():
                out = g(inp)
            consistency = cons_term = L.consistency_loss(out.float(), target, inverses)
        loss = L.generator_loss(energy, fidelity, cons_term, energy_weight=cfg.energy_weight,
                                fidelity_weight=fidelity_weight, lam=lam)
        if loss.requires_grad:  # noise-free data at the consistency weight's end (0) may leave no term to train
            self._opt_g.zero_grad(set_to_none=True)
            self._scaler_g.scale(loss).backward()
            self._scaler_g.step(self._opt_g)
            self._scaler_g.update()
        e.requires_grad_(True)

        losses = {
            "generator": float(loss.detach()),
            "energy_net": 0.0,
            "energy": 0.0,
            "fidelity": self._fidelity_last,
            "consistency": float(consistency.detach()),
            "noise_scale": scale,
            **(self._energy_log if cfg.energy_weight > 0 else {}),  # between two runs: the last run's
        }
        bad = [name for name, v in losses.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(
                f"training diverged at step {k}: {', '.join(bad)} not finite; try a lower lr or the "
                "'wgan-gp' energy objective"
            )
        return losses, lam, lr

    @torch.no_grad()
    def _preview(self) -> np.ndarray:
        with self._lock:
            g = self._g
            was_training = g.training
            g.eval()
            x = self._preview_input.to(next(g.parameters()).device)
            with autocast_context(x.device, enabled=self._amp_dtype is not None and x.device.type == "cuda"):
                out = g(x).float()
            g.train(was_training)
            mean, std = self.normalization["mean"], self.normalization["std"]
            return (out[0, 0].cpu().numpy() * np.float32(std) + np.float32(mean)).astype(np.float32)

    # -- checkpoints -----------------------------------------------------------------

    def _write_checkpoint(self) -> None:
        if self._dist is None or self._dist.is_main:
            write_checkpoint(self)

    # -- cleanup ---------------------------------------------------------------------

    def _release(self) -> None:
        """Drop optimiser state and move the networks to the CPU; free cached GPU memory."""
        if self._released:
            return
        with self._lock:
            self._released = True
            self._opt_g = None
            self._opt_e = None
            if self._dist is not None:
                self._dist.release()
            if self.device.type != "cpu":
                self._g.cpu()
                self._e.cpu()
                self._g_frozen.cpu()
                if hasattr(self, "_preview_input"):
                    self._preview_input = self._preview_input.cpu()
            self._g.eval()
        release_device_memory(self.device)


def fit(
    volume: np.ndarray,
    geometry: WedgeGeometry,
    config: TrainingConfig | None = None,
    *,
    callback: Callable[[TrainingEvent], Any] | None = None,
    **kwargs: Any,
) -> TrainedModel:
    """Train on ``volume`` and return the model; ``callback`` sees every event.

    Extra keyword arguments go to :class:`Trainer` (``voxel_size``, ``source``,
    ``resume_from``, ``checkpoint_path``).
    """
    trainer = Trainer(volume, geometry, config, **kwargs)
    for event in trainer.run():
        if callback is not None:
            callback(event)
    return trainer.model
