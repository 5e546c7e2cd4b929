"""Closed-form KL divergences of the variational factors, in torch (differentiable).

The same formulas as ``ssbnn_theory.kl`` (numpy); ``tests/simulations/test_kl.py``
checks that the two agree, and checks each against Monte Carlo and, where torch
has one, ``torch.distributions.kl_divergence``. Derivations: ``docs/engine.md``,
"KL terms". Every function broadcasts over its arguments and returns the
elementwise divergence (sum it yourself).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "LogProbability",
    "bernoulli_logs",
    "kl_bernoulli",
    "kl_lognormal_gamma",
    "kl_lognormal_invgamma",
    "kl_normal",
]

_HALF_LOG_2PI_PLUS_HALF = 0.5 * math.log(2.0 * math.pi) + 0.5

Scalar = float | torch.Tensor


def _log(x: Scalar) -> Scalar:
    return torch.log(x) if isinstance(x, torch.Tensor) else math.log(x)


def _lgamma(x: Scalar) -> Scalar:
    return torch.lgamma(x) if isinstance(x, torch.Tensor) else math.lgamma(x)


def kl_bernoulli(logits: torch.Tensor, prior_prob: Scalar | LogProbability) -> torch.Tensor:
    """``KL(Bernoulli(q) || Bernoulli(p))`` with ``q = sigmoid(logits)``, ``p`` in ``(0, 1)``.

        KL = q log(q / p) + (1 - q) log((1 - q) / (1 - p))
           = q (theta - logit p) + logsigmoid(-theta) - log(1 - p)

    using ``log q = theta + logsigmoid(-theta)`` and ``log(1 - q) = logsigmoid(-theta)``
    for ``theta = logits``: finite, with a finite gradient, when ``q`` rounds to 0 or 1.
    ``prior_prob`` may be a :class:`LogProbability` (``log p``), for a ``p`` below the
    smallest float.
    """
    log_p, log_1mp = bernoulli_logs(prior_prob)
    tail = F.logsigmoid(-logits)
    return torch.sigmoid(logits) * (logits - (log_p - log_1mp)) + tail - log_1mp


class LogProbability(float):
    """A probability given by its logarithm ``log p <= 0`` (a ``float``), for ``p`` that
    underflows: the prescribed inclusion probabilities ``lambda = exp(-hundreds)``."""


def bernoulli_logs(prob: float | LogProbability) -> tuple[float, float]:
    """``(log p, log(1 - p))`` of a probability or of a :class:`LogProbability`."""
    if isinstance(prob, LogProbability):
        log_p = float(prob)
        return log_p, math.log1p(-math.exp(log_p)) if log_p > -40 else -math.exp(log_p)
    return math.log(prob), math.log1p(-prob)


def kl_normal(mu_q: torch.Tensor, sd_q: torch.Tensor, mu_p: Scalar, sd_p: Scalar) -> torch.Tensor:
    """``KL(N(mu_q, sd_q^2) || N(mu_p, sd_p^2))``.

    KL = log(sd_p / sd_q) + (sd_q^2 + (mu_q - mu_p)^2) / (2 sd_p^2) - 1/2
    """
    return (
        _log(sd_p)
        - torch.log(sd_q)
        + (sd_q.square() + (mu_q - mu_p).square()) / (2.0 * sd_p**2)
        - 0.5
    )


def kl_lognormal_gamma(
    mu: torch.Tensor,
    sigma: torch.Tensor,
    shape: Scalar,
    rate: Scalar,
    log_rate: Scalar | None = None,
) -> torch.Tensor:
    """``KL(LogNormal(mu, sigma^2) || Gamma(shape, rate))``, Gamma in the rate parameterisation.

    With ``x ~ LogNormal(mu, sigma^2)``: entropy ``mu + 1/2 + log sigma + log(2 pi)/2``,
    ``E log x = mu``, ``E x = exp(mu + sigma^2 / 2)``, so

        KL = -log sigma - 1/2 - log(2 pi)/2 + lgamma(shape) - shape (log rate + mu)
             + rate exp(mu + sigma^2 / 2)

    The KL is linear in ``log rate`` and ``rate``: when the rate is itself random
    and independent under ``q`` (the group-lasso ``kappa^2 / 2``), passing
    ``log_rate = E_q[log rate]`` and ``rate = E_q[rate]`` gives the expected KL
    ``E_q[KL(LogNormal || Gamma(shape, rate))]``. ``log_rate`` defaults to ``log(rate)``.
    """
    if log_rate is None:
        log_rate = _log(rate)
    return (
        _lgamma(shape)
        - torch.log(sigma)
        - _HALF_LOG_2PI_PLUS_HALF
        - shape * (log_rate + mu)
        + rate * torch.exp(mu + 0.5 * sigma.square())
    )


def kl_lognormal_invgamma(
    mu: torch.Tensor, sigma: torch.Tensor, shape: Scalar, scale: Scalar
) -> torch.Tensor:
    """``KL(LogNormal(mu, sigma^2) || InvGamma(shape, scale))``.

    ``InvGamma(shape, scale)`` has density
    ``scale^shape / Gamma(shape) x^(-shape-1) exp(-scale/x)``; with
    ``E 1/x = exp(-mu + sigma^2 / 2)`` under the LogNormal,

        KL = -log sigma - 1/2 - log(2 pi)/2 + lgamma(shape) - shape (log scale - mu)
             + scale exp(-mu + sigma^2 / 2)
    """
    return (
        _lgamma(shape)
        - torch.log(sigma)
        - _HALF_LOG_2PI_PLUS_HALF
        - shape * (_log(scale) - mu)
        + scale * torch.exp(0.5 * sigma.square() - mu)
    )
