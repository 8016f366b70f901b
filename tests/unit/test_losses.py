"""The training losses and schedules as pure functions (core/training/losses.py)."""

from __future__ import annotations

import math

import pytest
import torch

from napari_dewedge.core.training.losses import (
    WGAN_DRIFT,
    consistency_loss,
    consistency_pair,
    energy_net_loss,
    fidelity_loss,
    generator_energy_loss,
    generator_loss,
    gradient_penalty,
    lambda_schedule,
    lr_schedule,
    projected_total,
    schedule_position,
)
from napari_dewedge.core.wedge import WedgeGeometry, apply_wedge

GEOMETRY = WedgeGeometry(-60, 60)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_fidelity_is_zero_when_the_prediction_agrees_inside_the_measured_region() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randn((2, 1, 8, 8, 8), generator=g)
    outside = torch.randn((2, 1, 8, 8, 8), generator=g)
    outside = outside - apply_wedge(outside, GEOMETRY)  # lies wholly in the missing wedge
    assert float(fidelity_loss(y, y, GEOMETRY, 0.5)) == 0.0
    assert float(fidelity_loss(y + outside, y, GEOMETRY, 0.5)) == pytest.approx(0.0, abs=1e-10)


def test_fidelity_equals_the_hand_computed_value() -> None:
    # without a missing wedge T is the identity: a constant error of 0.3 gives 0.09 / (2 sigma_n^2)
    full = WedgeGeometry(-90, 90)
    y = torch.zeros((1, 1, 4, 4, 4))
    value = float(fidelity_loss(y + 0.3, y, full, 0.5))
    assert value == pytest.approx(0.09 / (2 * 0.25), rel=1e-5)
    # a constant offset is the zero frequency, always measured: the same value through the wedge
    assert float(fidelity_loss(y + 0.3, y, GEOMETRY, 0.5)) == pytest.approx(0.18, rel=1e-5)


def test_gan_energy_loss_is_softplus_by_hand() -> None:
    e_real = torch.tensor([0.5, -1.0])
    e_fake = torch.tensor([2.0, 0.0])
    expected = (_softplus(0.5) + _softplus(-1.0)) / 2 + (_softplus(-2.0) + _softplus(0.0)) / 2
    assert float(energy_net_loss(e_real, e_fake, "gan")) == pytest.approx(expected, rel=1e-6)
    assert float(generator_energy_loss(e_fake, "gan")) == pytest.approx((_softplus(2.0) + _softplus(0.0)) / 2, rel=1e-6)


def test_wgan_energy_loss_with_penalty_and_drift() -> None:
    e_real = torch.tensor([1.0, 3.0])
    e_fake = torch.tensor([-1.0, 0.0])
    gp = torch.tensor(0.25)
    expected = 2.0 - (-0.5) + 10.0 * 0.25 + WGAN_DRIFT * (1.0 + 9.0) / 2
    assert float(energy_net_loss(e_real, e_fake, "wgan-gp", gp=gp, gp_weight=10.0)) == pytest.approx(expected)
    assert float(generator_energy_loss(e_fake, "wgan-gp", 2.0)) == pytest.approx(-0.5 - 2.0)
    with pytest.raises(ValueError, match="gradient penalty"):
        energy_net_loss(e_real, e_fake, "wgan-gp")
    with pytest.raises(ValueError, match="unknown energy objective"):
        energy_net_loss(e_real, e_fake, "hinge")


def test_gradient_penalty_vanishes_for_a_unit_gradient_linear_critic() -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn((1, 1, 4, 4, 4), generator=g)
    w = w / w.norm()  # |grad E| = 1 everywhere

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(dim=1)

    real = torch.randn((3, 1, 4, 4, 4), generator=g)
    fake = torch.randn((3, 1, 4, 4, 4), generator=g)
    alpha = torch.rand((3, 1, 1, 1, 1), generator=g)
    assert float(gradient_penalty(critic, real, fake, alpha)) == pytest.approx(0.0, abs=1e-10)

    def steep(x: torch.Tensor) -> torch.Tensor:  # gradient norm 3: penalty (3 - 1)^2
        return 3.0 * critic(x)

    assert float(gradient_penalty(steep, real, fake, alpha)) == pytest.approx(4.0, rel=1e-5)


def test_consistency_loss_unrotates_and_compares() -> None:
    from napari_dewedge.core.rotations import WEDGE_MOVING_ROTATIONS

    g = torch.Generator().manual_seed(2)
    target = torch.randn((2, 1, 6, 6, 6), generator=g)
    rots = [WEDGE_MOVING_ROTATIONS[0], WEDGE_MOVING_ROTATIONS[5]]
    rotated = torch.stack([r.apply(target[i]) for i, r in enumerate(rots)])
    inverses = [r.inverse() for r in rots]
    assert float(consistency_loss(rotated, target, inverses)) == pytest.approx(0.0, abs=1e-12)
    assert float(consistency_loss(target + 0.5, target)) == pytest.approx(0.25, rel=1e-6)


def test_generator_loss_weights_its_terms() -> None:
    e, f, c = torch.tensor(2.0), torch.tensor(3.0), torch.tensor(5.0)
    assert float(generator_loss(e, f, c, energy_weight=0.1, fidelity_weight=2.0, lam=0.5)) == pytest.approx(8.7)
    assert float(generator_loss(e, f, None, energy_weight=0.1, fidelity_weight=2.0, lam=0.5)) == pytest.approx(6.2)


def test_lambda_schedule_constant_in_the_first_epoch_then_linear() -> None:
    kw = dict(lambda_consistency=2.0, epoch_steps=4, steps=12, lambda_final=0.25)
    values = [lambda_schedule(k, **kw) for k in range(1, 13)]
    assert values[:4] == [2.0] * 4
    # linear from 2.0 at the end of epoch 1 to 0.25 * 2.0 at the last step
    for k in range(5, 13):
        assert values[k - 1] == pytest.approx(2.0 * (1 - 0.75 * (k - 4) / 8))
    assert values[-1] == pytest.approx(0.5)
    assert lambda_schedule(12, decay=False, **kw) == 2.0


def test_lr_schedule_warms_up_then_decays() -> None:
    lrs = [lr_schedule(k, lr=1e-3, steps=8, warmup_fraction=0.25) for k in range(1, 9)]
    assert lrs[:2] == pytest.approx([5e-4, 1e-3])
    assert lrs[-1] == pytest.approx(1e-3 / 7)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))


def test_a_time_budget_moves_the_schedules_on_with_the_time_and_projects_the_steps_left() -> None:
    kw = dict(steps=100, budget_s=10.0)
    assert schedule_position(5, steps=100, elapsed_s=9.0, budget_s=None) == 5
    assert schedule_position(5, elapsed_s=1.0, **kw) == pytest.approx(10.0)  # a tenth of the time: step 10 of 100
    assert schedule_position(20, elapsed_s=1.0, **kw) == 20  # never behind the steps done
    assert schedule_position(5, elapsed_s=30.0, **kw) == 100.0  # never past the last step
    assert projected_total(5, steps=100, elapsed_s=9.0, budget_s=None, per_step=1.0) == 100
    assert projected_total(5, elapsed_s=4.0, per_step=0.5, **kw) == 17  # 6 s left at 0.5 s a step
    assert projected_total(5, elapsed_s=4.0, per_step=0.01, **kw) == 100
    assert projected_total(5, elapsed_s=4.0, per_step=0.0, **kw) == 100  # no pace measured yet


def test_consistency_pair_takes_the_measured_region_from_the_data_and_the_wedge_from_the_prediction():
    gen = torch.Generator().manual_seed(0)
    pred, data_in, data_target = (torch.randn((2, 1, 16, 16, 16), generator=gen) for _ in range(3))
    source, target = consistency_pair(pred, data_in, data_target, GEOMETRY, use_data=False)
    assert source is pred and target is pred
    source, target = consistency_pair(pred, data_in, data_target, GEOMETRY, use_data=True)
    for mixed, data in ((source, data_in), (target, data_target)):
        torch.testing.assert_close(apply_wedge(mixed, GEOMETRY), apply_wedge(data, GEOMETRY), atol=1e-5, rtol=0)
        torch.testing.assert_close(mixed - apply_wedge(mixed, GEOMETRY), pred - apply_wedge(pred, GEOMETRY),
                                   atol=1e-5, rtol=0)
