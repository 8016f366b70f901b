"""The energy term of a training step: the energy network's update, then its term of the generator's loss.

Functions of the :class:`~.trainer.Trainer` (its networks, optimiser and
random generator), kept apart from the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..wedge import apply_wedge
from . import losses as L

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import Trainer

__all__ = ["energy_terms"]


def _energy_d_loss(trainer: Trainer, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    cfg = trainer.config
    with trainer._amp():
        e_real = trainer._e(real).float()
        e_fake = trainer._e(fake).float()
    extra: dict[str, float] = {}
    gp = None
    if cfg.energy_objective == "wgan-gp":
        alpha = torch.rand((real.shape[0], 1, 1, 1, 1), generator=trainer._tgen, device=trainer.device)
        gp = L.gradient_penalty(trainer._e, real, fake, alpha)
        extra = {"gradient_penalty": float(gp.detach())}
    loss = L.energy_net_loss(e_real, e_fake, cfg.energy_objective, gp=gp, gp_weight=cfg.gp_weight)
    stats = {"e_real": float(e_real.detach().mean()), "e_fake": float(e_fake.detach().mean()), **extra}
    return loss, stats


def energy_terms(trainer: Trainer, y_obs: torch.Tensor, fake: torch.Tensor,
                 e_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Update the energy network, then its term of the generator's loss.

    The energy network is left frozen (the caller thaws it after the
    generator's update). Returns ``(energy network loss, generator energy term, stats)``; ``fake``
    is the rotated prediction with the observation's noise, still attached
    to the generator's graph.
    """
    cfg, e, T = trainer.config, trainer._e, trainer._step_geometry
    opt, scaler = trainer._opt_e, trainer._scaler_e
    assert opt is not None
    # both sides seen through the wedge: a crop of the tomogram is not exactly wedge-filtered
    # (its edges leak power into the wedge), and the energy network would learn that alone
    fake = apply_wedge(fake, T) + e_x
    real = apply_wedge(y_obs, T) + e_x
    # 1. energy network: low energy for observations, high for re-corrupted predictions
    e.requires_grad_(True)
    d_loss, stats = torch.zeros((), device=trainer.device), {}
    for _ in range(cfg.energy_steps):
        d_loss, stats = _energy_d_loss(trainer, real, fake.detach())
        opt.zero_grad(set_to_none=True)
        scaler.scale(d_loss).backward()
        if trainer._dist is not None:
            trainer._dist.average_gradients(e)
        scaler.step(opt)
        scaler.update()
    # 2. its term of the generator's loss: low energy for the prediction
    e.requires_grad_(False)
    with trainer._amp():
        e_gen = e(fake).float()
    # wgan-gp: E(fake) - E(real), the gradient of E(fake), reported as the (estimated) Wasserstein gap
    return d_loss, L.generator_energy_loss(e_gen, cfg.energy_objective, stats["e_real"]), stats
