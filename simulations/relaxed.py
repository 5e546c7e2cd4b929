"""Binary Concrete (relaxed Bernoulli) samples of inclusion indicators, and temperature schedules.

An inclusion indicator ``z ~ Bernoulli(pi)`` with ``pi = sigmoid(theta)`` is written
with logistic noise ``L = log u - log(1 - u)``, ``u ~ U(0, 1)``:

    z_hard = 1{theta + L > 0}                 (exactly Bernoulli(pi))
    z_soft = sigmoid((theta + L) / t)          (binary Concrete, temperature t)

(Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017). The straight-through sample
``z_hard + z_soft - stop_gradient(z_soft)`` equals ``z_hard`` in the forward pass
and carries the gradient of ``z_soft``; it is the default, as in the reference
implementation. ``docs/elbo.md`` ("Relaxed indicators and the temperature") describes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import torch

from ssbnn_theory.enums import parse_enum
from ssbnn_theory.errors import InvalidParameterError

__all__ = ["Annealing", "TemperatureSchedule", "logistic_noise", "relaxed_bernoulli"]


def logistic_noise(uniform: torch.Tensor) -> torch.Tensor:
    """Logistic noise ``L = log(u / (1 - u))`` from uniform draws ``u`` in ``[0, 1)``.

    ``u`` is clamped to ``[eps, 1 - eps]`` of its dtype, so ``L`` is finite.
    """
    return torch.logit(uniform, eps=torch.finfo(uniform.dtype).eps)


def relaxed_bernoulli(
    logits: torch.Tensor,
    noise: torch.Tensor,
    temperature: float,
    *,
    straight_through: bool = True,
) -> torch.Tensor:
    """Relaxed sample of ``Bernoulli(sigmoid(logits))`` from logistic ``noise``.

    Returns ``sigmoid((logits + noise) / temperature)`` (soft), or, with
    ``straight_through``, the hard sample ``1{logits + noise > 0}`` in the forward
    pass with the soft sample's gradient.

    Parameters
    ----------
    logits
        ``theta``, the logit of the inclusion probability.
    noise
        Logistic noise of the same shape (:func:`logistic_noise`).
    temperature
        Concrete temperature ``t > 0``; only the gradient depends on it when
        ``straight_through`` is set.
    straight_through
        Hard forward sample with the soft gradient (default) or the soft sample.
    """
    soft = torch.sigmoid((logits + noise) / temperature)
    if not straight_through:
        return soft
    hard = (logits + noise > 0).to(soft.dtype)
    return hard + (soft - soft.detach())


class Annealing(StrEnum):
    """How a temperature moves from its start to its end value."""

    CONSTANT = "constant"
    """``t = start`` at every step."""
    EXPONENTIAL = "exponential"
    """``t_s = start * (end / start)^(s / steps)`` for ``s < steps``, then ``end``."""
    LINEAR = "linear"
    """``t_s = start + (end - start) s / steps`` for ``s < steps``, then ``end``."""


@dataclass(frozen=True)
class TemperatureSchedule:
    """Concrete temperature as a function of the training step.

    Parameters
    ----------
    start
        Temperature at step 0 (reference 0.5).
    end
        Temperature from step ``steps`` on; defaults to ``start``.
    steps
        Number of annealing steps.
    annealing
        :class:`Annealing` (``"constant"``, ``"exponential"``, ``"linear"``).
    """

    start: float = 0.5
    end: float | None = None
    steps: int = 0
    annealing: Annealing | str = Annealing.CONSTANT

    def __post_init__(self) -> None:
        object.__setattr__(self, "annealing", parse_enum(Annealing, self.annealing, "annealing"))
        if self.end is None:
            object.__setattr__(self, "end", self.start)
        for field in ("start", "end"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidParameterError(field, "a finite number > 0", value)
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise InvalidParameterError("steps", "an integer >= 0", self.steps)
        if self.annealing is Annealing.CONSTANT and self.end != self.start:
            allowed = f"equal to start = {self.start} without annealing"
            raise InvalidParameterError("end", allowed, self.end)
        if self.annealing is not Annealing.CONSTANT and self.steps == 0:
            raise InvalidParameterError("steps", "an integer >= 1 when annealing", self.steps)

    def __call__(self, step: int) -> float:
        """Temperature at training step ``step`` (0-based)."""
        if self.annealing is Annealing.CONSTANT:
            return float(self.start)
        if step >= self.steps:
            return float(self.end)
        frac = step / self.steps
        if self.annealing is Annealing.EXPONENTIAL:
            return float(self.start * (self.end / self.start) ** frac)
        return float(self.start + (self.end - self.start) * frac)
