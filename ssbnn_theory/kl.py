"""L5: closed-form KL divergences of the variational objective (numpy, broadcasting).

Every function returns ``KL(q || p)`` elementwise over broadcast arrays and raises
:class:`~ssbnn_theory.InvalidParameterError` for arguments outside the distributions'
parameter spaces (docs/theory.md, section 3.5). The engine's torch versions
(``simulations.kl``) are tested against these.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from ssbnn_theory.validation import check_real_array

__all__ = ["kl_bernoulli", "kl_lognormal_gamma", "kl_lognormal_invgamma", "kl_normal"]

_HALF_LOG_2PI_E = 0.5 * float(np.log(2.0 * np.pi * np.e))


def kl_bernoulli(q: ArrayLike, p: ArrayLike) -> np.ndarray:
    """``KL(Bern(q) || Bern(p)) = q log(q/p) + (1-q) log((1-q)/(1-p))``, with ``0 log 0 = 0``.

    ``q, p`` in ``[0, 1]``; the value is ``+inf`` when ``q`` puts mass where ``p`` has none.
    """
    q = check_real_array("q", q, lower=0.0, upper=1.0)
    p = check_real_array("p", p, lower=0.0, upper=1.0)
    with np.errstate(divide="ignore"):
        return (
            special.xlogy(q, q)
            - special.xlogy(q, p)
            + special.xlog1py(1.0 - q, -q)
            - special.xlog1py(1.0 - q, -p)
        )


def kl_normal(mu_q: ArrayLike, sd_q: ArrayLike, mu_p: ArrayLike, sd_p: ArrayLike) -> np.ndarray:
    """``KL(N(mu_q, sd_q^2) || N(mu_p, sd_p^2))``.

    ``= log(sd_p/sd_q) + (sd_q^2 + (mu_q - mu_p)^2) / (2 sd_p^2) - 1/2``.
    """
    mu_q = check_real_array("mu_q", mu_q)
    mu_p = check_real_array("mu_p", mu_p)
    sd_q = check_real_array("sd_q", sd_q, lower=0.0, lower_open=True)
    sd_p = check_real_array("sd_p", sd_p, lower=0.0, lower_open=True)
    ratio = sd_q / sd_p
    return -np.log(ratio) + 0.5 * (ratio**2 + ((mu_q - mu_p) / sd_p) ** 2) - 0.5


def kl_lognormal_gamma(
    mu: ArrayLike, sigma: ArrayLike, shape: ArrayLike, rate: ArrayLike
) -> np.ndarray:
    """``KL(LogNormal(mu, sigma^2) || Gamma(shape a, rate b))``.

    With ``E_q log X = mu``, ``E_q X = exp(mu + sigma^2/2)`` and the log-normal entropy
    ``mu + log(sigma sqrt(2 pi e))``::

        KL = -a mu - log(sigma sqrt(2 pi e)) - a log b + log Gamma(a) + b exp(mu + sigma^2/2)
    """
    return _lognormal_gamma(*_lognormal_against(mu, sigma, shape, "rate", rate))


def kl_lognormal_invgamma(
    mu: ArrayLike, sigma: ArrayLike, shape: ArrayLike, scale: ArrayLike
) -> np.ndarray:
    """``KL(LogNormal(mu, sigma^2) || InvGamma(shape a, scale b))``.

    The inverse gamma density is ``b^a x^(-a-1) e^(-b/x) / Gamma(a)``.

    With ``E_q X^{-1} = exp(-mu + sigma^2/2)``::

        KL = a mu - log(sigma sqrt(2 pi e)) - a log b + log Gamma(a) + b exp(-mu + sigma^2/2)
    """
    mu, sigma, a, b = _lognormal_against(mu, sigma, shape, "scale", scale)
    # 1/X ~ LogNormal(-mu, sigma^2) and KL is invariant under X -> 1/X; -a (-mu) == a mu exactly
    return _lognormal_gamma(-mu, sigma, a, b)


def _lognormal_against(
    mu: object, sigma: object, shape: object, name: str, value: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The validated ``(mu, sigma, a, b)`` of a LogNormal against a (inverse) Gamma whose second
    parameter is called ``name``."""
    mu = check_real_array("mu", mu)
    sigma = check_real_array("sigma", sigma, lower=0.0, lower_open=True)
    a = check_real_array("shape", shape, lower=0.0, lower_open=True)
    b = check_real_array(name, value, lower=0.0, lower_open=True)
    return mu, sigma, a, b


def _lognormal_gamma(mu: np.ndarray, sigma: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kernel of :func:`kl_lognormal_gamma` on validated arrays."""
    with np.errstate(over="ignore"):
        mean = b * np.exp(mu + 0.5 * sigma**2)
    return -a * mu - np.log(sigma) - _HALF_LOG_2PI_E - a * np.log(b) + special.gammaln(a) + mean
