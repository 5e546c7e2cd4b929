"""Observation models of the network output ``f [R, B, outputs]``, per replicate.

Each likelihood returns the negative log-likelihood of a minibatch summed over
its observations, ``[R]``; ``simulations.train`` scales it to the data size
(``docs/elbo.md``).

* Gaussian: ``y ~ N(f, sigma_e^2)`` per output, ``sigma_e`` known or learned
  (a point estimate per replicate, ``log sigma_e`` a parameter without a prior).
* Bernoulli: ``y ~ Bernoulli(sigmoid(f))``, one output (a logit).
* Categorical: ``y ~ Categorical(softmax(f))``, ``y`` the class index.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from simulations.enums import Likelihood
from ssbnn_theory.enums import parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_positive

__all__ = [
    "BernoulliLikelihood",
    "CategoricalLikelihood",
    "GaussianLikelihood",
    "ObservationModel",
    "make_likelihood",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class ObservationModel(nn.Module):
    """Interface: ``nll(f, y) -> [R]`` and ``check_targets(y, field)``."""

    kind: Likelihood

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.outputs = outputs

    def nll(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """``-sum_i log p(y_i | f_i)`` over the minibatch, ``[R]``."""
        raise NotImplementedError

    def target_shape(self, replicates: int, n: int) -> tuple[int, ...]:
        """Expected shape of ``y`` for ``n`` observations: ``[R, n, outputs]``."""
        return (replicates, n, self.outputs)

    def check_targets(self, y: torch.Tensor, field: str = "y") -> None:
        """Raise :class:`InvalidParameterError` unless ``y`` holds finite, valid targets."""
        if not torch.is_floating_point(y):
            raise InvalidParameterError(f"{field}.dtype", "a floating dtype", y.dtype)
        if not bool(torch.isfinite(y).all()):
            raise InvalidParameterError(field, "finite (no NaN or inf)", "non-finite values")


class GaussianLikelihood(ObservationModel):
    """``-log N(y | f, sigma_e^2) = log sigma_e + log(2 pi)/2 + (y - f)^2 / (2 sigma_e^2)``.

    Parameters
    ----------
    replicates, outputs
        ``R`` and the number of outputs.
    sigma_e
        Known noise standard deviation, or ``None`` to learn ``log sigma_e`` per replicate.
    sigma_init
        Initial ``sigma_e`` when learned.
    """

    kind = Likelihood.GAUSSIAN

    def __init__(
        self,
        replicates: int,
        outputs: int = 1,
        sigma_e: float | None = None,
        *,
        sigma_init: float = 1.0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(outputs)
        self.learned = sigma_e is None
        value = sigma_init if sigma_e is None else sigma_e
        field = "sigma_init" if sigma_e is None else "sigma_e"
        check_positive(field, value)
        log_sigma = torch.full((replicates,), math.log(value), dtype=dtype, device=device)
        if self.learned:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)

    def sigma(self) -> torch.Tensor:
        """``sigma_e`` per replicate, ``[R]``."""
        return torch.exp(self.log_sigma.detach())

    def nll(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Gaussian NLL summed over the batch and outputs, ``[R]``."""
        count = f.shape[-2] * f.shape[-1]
        sq = (y - f).square().sum((-2, -1))
        inv_var = torch.exp(-2.0 * self.log_sigma)
        return count * (self.log_sigma + _HALF_LOG_2PI) + 0.5 * inv_var * sq


class BernoulliLikelihood(ObservationModel):
    """``-log p(y | f) = -(y logsigmoid(f) + (1 - y) logsigmoid(-f))``, ``y`` in ``{0, 1}``."""

    kind = Likelihood.BERNOULLI

    def nll(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Bernoulli NLL summed over the batch, ``[R]``."""
        return -(y * F.logsigmoid(f) + (1.0 - y) * F.logsigmoid(-f)).sum((-2, -1))

    def check_targets(self, y: torch.Tensor, field: str = "y") -> None:
        """Targets must be 0 or 1."""
        super().check_targets(y, field)
        if not bool(((y == 0) | (y == 1)).all()):
            raise InvalidParameterError(field, "0 or 1 (Bernoulli targets)", "other values")


class CategoricalLikelihood(ObservationModel):
    """``-log softmax(f)_y``, ``y`` the class index: ``f [R, B, classes]``, ``y [R, B]`` int64."""

    kind = Likelihood.CATEGORICAL

    def nll(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Categorical NLL summed over the batch, ``[R]``."""
        return -torch.gather(F.log_softmax(f, dim=-1), -1, y.unsqueeze(-1)).sum((-2, -1))

    def target_shape(self, replicates: int, n: int) -> tuple[int, ...]:
        """Class indices ``[R, n]``."""
        return (replicates, n)

    def check_targets(self, y: torch.Tensor, field: str = "y") -> None:
        """Targets must be int64 class indices in ``[0, classes)``."""
        if y.dtype != torch.int64:
            raise InvalidParameterError(f"{field}.dtype", "torch.int64 class indices", y.dtype)
        if y.numel() and not bool(((y >= 0) & (y < self.outputs)).all()):
            allowed = f"class indices in [0, {self.outputs - 1}]"
            raise InvalidParameterError(field, allowed, "out-of-range values")


def make_likelihood(
    kind: Likelihood | str,
    replicates: int,
    outputs: int,
    sigma_e: float | None = None,
    *,
    sigma_init: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> ObservationModel:
    """The observation model ``kind`` for ``outputs`` network outputs.

    Bernoulli needs one output; categorical at least two; ``sigma_e`` applies to
    the Gaussian only.
    """
    kind = parse_enum(Likelihood, kind, "likelihood")
    if kind is Likelihood.GAUSSIAN:
        return GaussianLikelihood(
            replicates, outputs, sigma_e, sigma_init=sigma_init, dtype=dtype, device=device
        )
    if sigma_e is not None:
        raise InvalidParameterError("sigma_e", f"None for a {kind.value} likelihood", sigma_e)
    if kind is Likelihood.BERNOULLI:
        if outputs != 1:
            raise InvalidParameterError("outputs", "1 for a Bernoulli likelihood", outputs)
        return BernoulliLikelihood(outputs)
    if outputs < 2:
        raise InvalidParameterError("outputs", ">= 2 classes for a categorical likelihood", outputs)
    return CategoricalLikelihood(outputs)
