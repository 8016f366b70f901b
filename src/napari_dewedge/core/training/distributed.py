"""Training on several processes with ``torch.distributed`` (one per GPU, or several CPU processes).

``napari-dewedge fit`` (and ``run``) started by ``torchrun`` sees the variables
torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``...,
:func:`launch_env`). The command line then opens a process group for the
training (:func:`session`: NCCL on CUDA, where rank ``r`` uses
``cuda:LOCAL_RANK``, Gloo on the CPU) and closes it at the end. A
:class:`~.trainer.Trainer` built while a process group of two or more ranks is
open trains data-parallel (:func:`attach`), whoever opened the group:

- **Same networks.** Every rank builds the networks from rank 0's seed, and
  rank 0's weights and buffers are broadcast once at the start (a resumed run:
  every rank loads the same checkpoint). The generator is wrapped in
  ``DistributedDataParallel``: it is called twice before one backward (the
  prediction and the consistency term), which DDP supports, since each weight
  still gets one gradient per backward. The energy network's gradients are
  averaged by :meth:`Distributed.average_gradients` (one ``all_reduce`` after
  its backward) instead: it is evaluated in three roles per step (its own loss,
  the gradient penalty's double backward with ``create_graph=True``, and frozen
  inside the generator's loss), and DDP's reducer documents none of the latter
  two; averaging by hand keeps the step's code as it is. Identical gradients,
  identical Adam: the parameters stay identical on every rank.
- **Own data.** Every rank draws its own subtomograms (its own pool per epoch,
  seeded ``[seed, epoch, rank]``) and its own noise and rotations (generators
  seeded ``[seed, rank, step]``). A step is one optimisation step on
  ``world_size * batch_size`` subtomograms; ``steps`` counts steps, so a run
  on N ranks sees N times the data of a single process in the same number of
  steps. Batch-norm statistics are per rank within a step; after every step
  rank 0's buffers are broadcast (:meth:`Distributed.after_step`), so the
  frozen copy, the preview and the final model are the same everywhere.
- **One decision.** After every step one small ``all_reduce`` gathers the
  losses (the recorded history is their mean over the ranks) and whether any
  rank was asked to stop; every rank then stops after the same step.
- **Rank 0 writes.** Only rank 0 writes checkpoints, the model file and the
  progress; a checkpoint holds rank 0's state with plain (not ``module.``)
  names, loads with any number of processes and needs no collective, so the
  time-based checkpoint interval is rank 0's alone and cannot deadlock.

Without a process group nothing here runs; ``torch.distributed`` is only
imported by the functions that need it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .trainer import Trainer

__all__ = ["LaunchEnv", "launch_env", "launch_device", "session", "active", "attach", "Distributed"]


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in a torchrun launch."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """This process's rank when launched by torchrun (or alike) with ``WORLD_SIZE`` > 1, else None."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        return None
    if world < 2 or not 0 <= rank < world:
        return None
    return LaunchEnv(rank, world, local, max(1, local_world))


def launch_device(device: "torch.device", env: LaunchEnv | None = None) -> "torch.device":
    """The device of this rank: ``cuda:LOCAL_RANK`` for a CUDA device, the CPU as it is.

    ``ValueError`` for other devices (MPS) or a local rank without its GPU.
    """
    import torch

    env = launch_env() if env is None else env
    if env is None or device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"several processes train on CUDA (NCCL) or the CPU (Gloo), not on {device.type}")
    if env.local_rank >= torch.cuda.device_count():
        raise ValueError(f"process {env.rank} has local rank {env.local_rank} but {torch.cuda.device_count()} "
                         "CUDA device(s) are visible: start at most one process per GPU (--nproc-per-node)")
    return torch.device("cuda", env.local_rank)


@contextlib.contextmanager
def session(device: "torch.device") -> Iterator[LaunchEnv | None]:
    """A process group (NCCL on CUDA, Gloo on the CPU) for the block when launched by torchrun.

    Yields the :class:`LaunchEnv` (None when not launched, or when a group is
    already open: its owner closes it); the group is destroyed at the end.
    """
    env = launch_env()
    if env is None:
        yield None
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        yield env
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield env
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def active() -> bool:
    """Whether a process group of two or more ranks is open."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def attach(trainer: "Trainer") -> "Distributed | None":
    """Make ``trainer`` (its networks on its device, resumed if it was) train data-parallel.

    None (and nothing changed) without an open process group of two or more ranks.
    """
    if not active():
        return None
    return Distributed(trainer)


def _seed_of(*key: int) -> int:
    import numpy as np

    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0] % (2**63))


class Distributed:
    """The data-parallel state of one rank's :class:`~.trainer.Trainer` (see the module's notes)."""

    def __init__(self, trainer: "Trainer") -> None:
        import numpy as np
        import torch
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = trainer.device
        self.stop = False
        seed = torch.tensor([trainer.seed], dtype=torch.int64, device=self.device)
        dist.broadcast(seed, 0)
        trainer.seed = int(seed.item())
        with torch.no_grad():
            for module in (trainer._g, trainer._g_frozen, trainer._e):
                for tensor in module.state_dict().values():
                    dist.broadcast(tensor, 0)
        trainer._rank_key = (self.rank,)
        key = (trainer.seed, self.rank, trainer.step)
        trainer._rng = np.random.default_rng(list(key))
        trainer._tgen.manual_seed(_seed_of(*key))
        ids = [self.device.index] if self.device.type == "cuda" else None
        # the networks are channels-last (core.networks.CHANNELS_LAST): the gradients of a few
        # weights whose layout is ambiguous (1x1x1 kernels) come back in the other layout, and DDP
        # warns on every backward that copying them into its buckets "may impair performance"
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        # rank 0's buffers are broadcast after each step (after_step), not before each forward
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(
            DistributedDataParallel.__init__).parameters else "broadcast_buffers"  # renamed in torch 2.13
        self.generator: torch.nn.Module | None = DistributedDataParallel(
            trainer._g, device_ids=ids, output_device=ids[0] if ids else None, **{no_sync: False})
        self._buffers = [b for m in (trainer._g, trainer._e) for b in m.buffers()]

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes)."""
        return self.rank == 0

    def average_gradients(self, module: "torch.nn.Module") -> None:
        """Average ``module``'s gradients over the ranks (one ``all_reduce``; a missing gradient counts as 0).

        Used for the energy network after its backward, before its optimiser
        step: see the module's notes for why not DDP.
        """
        import torch
        import torch.distributed as dist

        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def after_step(self, trainer: "Trainer", losses: Mapping[str, float]) -> dict[str, float]:
        """Rank 0's buffers everywhere; the losses averaged over the ranks; whether any rank asked to stop.

        The ranks' training time is averaged too (``trainer._elapsed``), so that a time
        budget moves their schedules alike and ends them after the same step."""
        import torch
        import torch.distributed as dist

        names = list(losses)
        values = torch.tensor([float(losses[k]) for k in names] + [trainer._elapsed, float(trainer.stop_requested)],
                              dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        self.stop = bool(values[-1].item() > 0)
        trainer._elapsed = float(values[-2].item()) / self.world_size
        mean = (values[:-2] / self.world_size).tolist()
        with torch.no_grad():
            for dtype in sorted({b.dtype for b in self._buffers}, key=str):
                group = [b for b in self._buffers if b.dtype == dtype]
                flat = torch.cat([b.reshape(-1) for b in group])
                dist.broadcast(flat, 0)
                offset = 0
                for b in group:
                    b.copy_(flat[offset:offset + b.numel()].view_as(b))
                    offset += b.numel()
        return dict(zip(names, mean))

    def release(self) -> None:
        """Drop the DDP wrapper (and its gradient buckets); the process group stays its owner's."""
        self.generator = None
