"""The progress record of a training run, :class:`TrainingEvent` (no torch needed to read one)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TrainingEvent"]


@dataclass(frozen=True)
class TrainingEvent:
    """Progress of a training run, one per step (plus one before the first step).

    ``losses`` holds ``generator`` (the total generator loss), ``energy``,
    ``fidelity``, ``consistency`` (its terms, consistency before weighting by
    ``lam``), ``energy_net`` (the energy network's loss), ``e_real`` and
    ``e_fake`` (mean energies of the two sides), ``gradient_penalty`` (with
    ``"wgan-gp"``) and the step's ``noise_scale``; it is empty before the
    first step and on the event that reports a stop.

    ``preview`` (every ``preview_every`` steps and on the last event) is the
    current prediction for a fixed subtomogram of the tomogram, de-normalised,
    float32 ``(d, d, d)``; ``preview_origin`` is that subtomogram's corner
    ``(z, y, x)`` in the tomogram.
    """

    step: int
    total: int
    losses: Mapping[str, float] = field(default_factory=dict)
    lam: float = 0.0
    lr: float = 0.0
    seconds_per_step: float = 0.0
    eta_s: float = 0.0
    preview: np.ndarray | None = None
    done: bool = False
    stopped: bool = False
    message: str = ""
    preview_origin: tuple[int, int, int] | None = None

    @property
    def fraction(self) -> float:
        """Fraction of the steps done, in [0, 1]."""
        return min(1.0, self.step / self.total) if self.total else 1.0
