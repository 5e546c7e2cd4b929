"""Inclusion indicators of a spike (nodes, edges or inputs), relaxed or frozen, and the base of
the layers with a spike on their Gaussian slab."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from simulations.kl import LogProbability, bernoulli_logs, kl_bernoulli
from simulations.layers.dense import VariationalLinear
from simulations.layers.fused import _ConcreteGate
from simulations.relaxed import logistic_noise, relaxed_bernoulli
from ssbnn_theory.errors import InvalidParameterError

__all__: list[str] = []


def check_probability(value: object, field: str) -> float:
    if isinstance(value, LogProbability):
        if not (math.isfinite(value) and value < 0):
            raise InvalidParameterError(field, "a log probability in (-inf, 0)", float(value))
        return value
    if not isinstance(value, int | float | np.floating) or not (0.0 < value < 1.0):
        raise InvalidParameterError(field, "a probability in (0, 1)", value)
    return float(value)


class _Indicators(nn.Module):
    """Inclusion indicators ``z ~ Bernoulli(sigmoid(theta))`` of one spike, any shape ``[R, ...]``.

    Prior ``Bernoulli(lambda)``; ``theta`` initialised at ``logit(inclusion_init)``. A
    training pass uses relaxed samples (:func:`simulations.relaxed.relaxed_bernoulli`);
    after :meth:`freeze` the indicators are the 0/1 mask of the kept entries
    (``pi > 1/2``), ``q(z)`` a point mass, until :meth:`unfreeze`.
    """

    def __init__(self, shape, *, prior_inclusion, inclusion_init, straight_through, field, kw):
        super().__init__()
        self.prior_inclusion = check_probability(prior_inclusion, field)
        init = check_probability(inclusion_init, "inclusion_init")
        self.straight_through = bool(straight_through)
        self.theta = nn.Parameter(torch.full(shape, math.log(init / (1 - init)), **kw))
        self.register_buffer("frozen_mask", None)

    def probs(self) -> torch.Tensor:
        """``pi = sigmoid(theta)`` (differentiable), or the frozen mask."""
        return torch.sigmoid(self.theta) if self.frozen_mask is None else self.frozen_mask

    def sample(self, uniform: torch.Tensor | None, temperature: float) -> torch.Tensor:
        """A training pass's indicators: relaxed samples from ``uniform``, or the frozen mask."""
        if self.frozen_mask is not None:
            return self.frozen_mask
        noise = logistic_noise(uniform)
        return relaxed_bernoulli(
            self.theta, noise, temperature, straight_through=self.straight_through
        )

    def sample_kl(
        self, uniform: torch.Tensor | None, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A training pass's indicators, their elementwise KL and ``pi``, ``[R, ...]`` each.

        Equals ``(sample(uniform, temperature), kl(), probs())`` in values and gradients
        (:class:`_ConcreteGate` computes the three in one pass with an explicit backward).
        """
        if self.frozen_mask is not None:
            return self.frozen_mask, self.kl(), self.frozen_mask
        if not isinstance(temperature, torch.Tensor):
            temperature = float(temperature)
        return _ConcreteGate.apply(
            self.theta, uniform, temperature, self.straight_through, self.prior_inclusion
        )

    def exact(self, uniform: torch.Tensor) -> torch.Tensor:
        """An exact draw ``1{u < pi}`` (``[..., R, ...]``)."""
        return (uniform < self.probs()).to(self.theta.dtype)

    def kl(self) -> torch.Tensor:
        """Elementwise ``KL(Bern(pi) || Bern(lambda))``; once frozen, the point-mass KL
        ``-log lambda`` where the mask is 1 and ``-log(1 - lambda)`` where it is 0."""
        if self.frozen_mask is None:
            return kl_bernoulli(self.theta, self.prior_inclusion)
        log_in, log_out = bernoulli_logs(self.prior_inclusion)
        return -(self.frozen_mask * log_in + (1.0 - self.frozen_mask) * log_out)

    def freeze(self) -> None:
        """Fix the indicators at the kept entries (``pi > 1/2``)."""
        self.frozen_mask = (self.probs() > 0.5).to(self.theta.dtype).detach()

    def unfreeze(self) -> None:
        """Return to relaxed indicators."""
        self.frozen_mask = None


class _Gated:
    """Mixin of the layers with a spike, whose indicators are ``self.indicators``."""

    indicators: _Indicators

    @property
    def theta(self) -> nn.Parameter:
        """Inclusion logits: per weight and bias ``[R, out, in + 1]`` (edge, laid out as
        ``mu``), per node ``[R, out]`` or per input ``[R, p]``."""
        return self.indicators.theta


class _SpikeSlabLinear(_Gated, VariationalLinear):
    """A Gaussian slab (:class:`VariationalLinear`) with a spike: inclusion indicators of the
    shape :meth:`_indicator_shape` (one per weight, or one per node).

    Takes the arguments of :class:`VariationalLinear` and the spike's ``prior_inclusion``,
    ``inclusion_init`` and ``straight_through`` (see :class:`NodeSpikeSlabLinear`).
    """

    def __init__(
        self,
        *args: Any,
        prior_inclusion: float = 0.5,
        inclusion_init: float = 0.99,
        straight_through: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.indicators = _Indicators(
            self._indicator_shape(), prior_inclusion=prior_inclusion,
            inclusion_init=inclusion_init, straight_through=straight_through,
            field="prior_inclusion", kw={"dtype": self.mu.dtype, "device": self.mu.device},
        )  # fmt: skip

    def _indicator_shape(self) -> tuple[int, ...]:
        """The shape of the indicators, replicate axis first."""
        raise NotImplementedError
