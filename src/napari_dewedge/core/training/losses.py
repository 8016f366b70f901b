"""The CryoGEN losses and schedules as pure functions (tensors in, tensor out).

No optimiser, no state: :class:`~.trainer.Trainer` draws the random numbers,
runs the networks and passes their outputs here. The formulas are those of
:mod:`napari_dewedge.core.training`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..wedge import WedgeGeometry, apply_wedge

__all__ = [
    "WGAN_DRIFT",
    "consistency_loss",
    "consistency_pair",
    "energy_net_loss",
    "fidelity_loss",
    "generator_energy_loss",
    "generator_loss",
    "gradient_penalty",
    "lambda_schedule",
    "lr_schedule",
    "projected_total",
    "rotate_each",
    "schedule_position",
]

#: Weight of the drift term ``E(real)^2`` of the ``"wgan-gp"`` objective.
WGAN_DRIFT = 1e-3


def rotate_each(x: torch.Tensor, rotations: Sequence) -> torch.Tensor:
    """Sample ``i`` of ``x`` (``(B, ...)``) rotated by ``rotations[i]``."""
    return torch.stack([r.apply(x[i]) for i, r in enumerate(rotations)])


def gradient_penalty(
    energy: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor
) -> torch.Tensor:
    """``mean (|grad E(mix)| - 1)^2`` at ``mix = alpha real + (1 - alpha) fake`` (per-sample norms)."""
    mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    e_mix = energy(mix)
    (grad,) = torch.autograd.grad(e_mix.sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def energy_net_loss(
    e_real: torch.Tensor,
    e_fake: torch.Tensor,
    objective: str = "gan",
    *,
    gp: torch.Tensor | None = None,
    gp_weight: float = 10.0,
    drift: float = WGAN_DRIFT,
) -> torch.Tensor:
    """The energy network's loss: low energy for observations, high for re-corrupted predictions.

    ``"gan"``: ``mean softplus(E(real)) + mean softplus(-E(fake))``;
    ``"wgan-gp"``: ``mean E(real) - mean E(fake) + gp_weight * gp + drift * mean E(real)^2``
    with ``gp`` from :func:`gradient_penalty`.
    """
    if objective == "gan":
        return F.softplus(e_real).mean() + F.softplus(-e_fake).mean()
    if objective == "wgan-gp":
        if gp is None:
            raise ValueError("the 'wgan-gp' objective needs the gradient penalty gp")
        return e_real.mean() - e_fake.mean() + gp_weight * gp + drift * (e_real**2).mean()
    raise ValueError(f"unknown energy objective {objective!r}")


def generator_energy_loss(e_fake: torch.Tensor, objective: str = "gan", e_real_mean: float = 0.0) -> torch.Tensor:
    """The generator's energy term: ``mean softplus(E(fake))`` (``"gan"``, non-saturating)
    or ``mean E(fake) - e_real_mean`` (``"wgan-gp"``: the estimated Wasserstein gap)."""
    if objective == "gan":
        return F.softplus(e_fake).mean()
    if objective == "wgan-gp":
        return e_fake.mean() - e_real_mean
    raise ValueError(f"unknown energy objective {objective!r}")


def fidelity_loss(pred: torch.Tensor, y: torch.Tensor, geometry: WedgeGeometry, sigma_n: float) -> torch.Tensor:
    """``mean |T (pred - y)|^2 / (2 sigma_n^2)``.

    ``|T p - y|^2 = |T (p - y)|^2 + |(1 - T) y|^2`` (``T`` is an orthogonal
    projection): the second part cannot be reduced by the generator (noise and
    crop edges inside the wedge), so it is left out and the value is 0 for a
    prediction that agrees with the data in the measured region.
    """
    return (apply_wedge(pred - y, geometry) ** 2).mean() / (2.0 * sigma_n**2)


def consistency_loss(output: torch.Tensor, target: torch.Tensor, inverses: Sequence | None = None) -> torch.Tensor:
    """``mean |R^-1 output - target|^2``, sample ``i`` un-rotated by ``inverses[i]`` (if given)."""
    if inverses is not None:
        output = rotate_each(output, inverses)
    return ((output - target) ** 2).mean()


def consistency_pair(
    prediction: torch.Tensor, data_in: torch.Tensor, data_target: torch.Tensor, geometry: WedgeGeometry,
    use_data: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The consistency term's source (rotated and re-wedged into the input) and target.

    Without ``use_data`` both are the frozen ``prediction``. With it (IsoNet's
    recipe), the measured region comes from the data and only the missing wedge
    from the prediction: source ``T data_in + (1 - T) prediction``, target
    ``T data_target + (1 - T) prediction``, so that the wedge filling is scored
    against measured data wherever a rotation brings them into the wedge.
    """
    if not use_data:
        return prediction, prediction
    fill = prediction - apply_wedge(prediction, geometry)
    return fill + apply_wedge(data_in, geometry), fill + apply_wedge(data_target, geometry)


def generator_loss(
    energy: torch.Tensor,
    fidelity: torch.Tensor,
    consistency: torch.Tensor | None = None,
    *,
    energy_weight: float = 1.0,
    fidelity_weight: float = 1.0,
    lam: float = 0.0,
) -> torch.Tensor:
    """``energy_weight * L_E + fidelity_weight * L_fid (+ lam * L_cons when given)``."""
    loss = energy_weight * energy + fidelity_weight * fidelity
    if consistency is not None:
        loss = loss + lam * consistency
    return loss


def lambda_schedule(
    k: float, *, lambda_consistency: float, epoch_steps: int, steps: int, decay: bool = True, lambda_final: float = 0.0
) -> float:
    """Consistency weight at step ``k`` (1-based): constant in the first epoch, then linear
    decay to ``lambda_final * lambda_consistency`` at the last step (when ``decay``)."""
    lam0 = float(lambda_consistency)
    if not decay or k <= epoch_steps or steps <= epoch_steps:
        return lam0
    t = (k - epoch_steps) / (steps - epoch_steps)
    return lam0 * (1.0 - (1.0 - lambda_final) * t)


def lr_schedule(k: float, *, lr: float, steps: int, warmup_fraction: float) -> float:
    """Learning rate at step ``k`` (1-based; a fraction between steps with a time budget):
    linear warm-up, then linear decay."""
    warm = int(round(warmup_fraction * steps))
    if warm > 0 and k <= warm:
        factor = k / warm
    else:
        factor = max(0.0, (steps - k + 1) / (steps - warm + 1)) if steps > warm else 1.0
    return lr * factor


def schedule_position(k: int, *, steps: int, elapsed_s: float, budget_s: float | None) -> float:
    """Where step ``k`` stands in the schedules: ``k`` itself, or with a time budget
    further on when the time spent is a larger fraction of the budget than ``k`` is
    of the steps (so that the schedules end with the budget)."""
    if budget_s is None:
        return k
    return max(k, min(float(steps), elapsed_s / budget_s * steps))


def projected_total(k: int, *, steps: int, elapsed_s: float, budget_s: float | None, per_step: float) -> int:
    """The steps a run will have done at its end: ``steps``, or with a time budget
    the ``k`` done plus as many as the time left holds at ``per_step`` seconds each."""
    if budget_s is None or per_step <= 0:
        return steps
    return int(min(steps, k + math.ceil(max(0.0, budget_s - elapsed_s) / per_step)))
