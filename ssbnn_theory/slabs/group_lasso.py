"""Group-lasso slab (``ss-gl``, Jantre et al. 2024): ``w | tau^2 ~ N(0, sigma_0^2 tau^2 I_d)``,
``tau^2 ~ Gamma((d+1)/2, rate kappa^2/2)``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from ssbnn_theory._numerics import log1mexp
from ssbnn_theory.enums import Prior
from ssbnn_theory.kl import kl_lognormal_gamma
from ssbnn_theory.slabs.base import (
    _LOG2,
    ScaleMixtureSlab,
    SmallBall,
    least_lognormal_gamma_kl,
    symbolic_mixture_phi,
)

if TYPE_CHECKING:
    from ssbnn_theory.priors import PriorSpec

__all__ = ["GroupLassoSlab"]


def _log_gamma_interval(alpha: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A lower bound on ``log P(X in [x, 2x])``, ``X ~ Gamma(alpha, 1)``, ``alpha >= 1``.

    The maximum of (i) the regularised incomplete gamma difference (upper tails for
    ``x >= alpha``, lower tails otherwise, so no cancellation; ``-inf`` on underflow),
    (ii) ``x^{alpha-1} e^{-x} (1 - e^{-x}) / Gamma(alpha)`` (the integrand's power factor is
    at least ``x^{alpha-1}`` on ``[x, 2x]``) and (iii)
    ``e^{-2x} x^alpha (2^alpha - 1) / Gamma(alpha+1)``
    (its exponential factor is at least ``e^{-2x}``). (ii) is tight for large ``x``, (iii)
    for small ``x``; both are closed forms (docs/theory.md, section 3.2).
    """
    alpha, x = np.broadcast_arrays(np.asarray(alpha, np.float64), np.asarray(x, np.float64))
    exact = np.empty(x.shape)
    up = x >= alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        a, xu = alpha[up], x[up]
        q1, q2 = special.gammaincc(a, xu), special.gammaincc(a, 2.0 * xu)
        exact[up] = np.log(q1) + np.log1p(-q2 / q1)
        a, xl = alpha[~up], x[~up]
        p1, p2 = special.gammainc(a, xl), special.gammainc(a, 2.0 * xl)
        exact[~up] = np.log(p2) + np.log1p(-p1 / p2)
    exact = np.where(np.isfinite(exact), exact, -np.inf)
    log_x = np.log(x)
    large = (alpha - 1.0) * log_x - x + log1mexp(-x) - special.gammaln(alpha)
    small = -2.0 * x + alpha * log_x + log1mexp(-alpha * _LOG2) + alpha * _LOG2
    small = small - special.gammaln(alpha + 1.0)
    return np.maximum(exact, np.maximum(large, small))


def _log_gamma_interval_closed(alpha: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The closed-form bound (ii) of :func:`_log_gamma_interval` alone (symbolic variant)."""
    return (alpha - 1.0) * np.log(x) - x + log1mexp(-x) - special.gammaln(alpha)


class GroupLassoSlab(ScaleMixtureSlab):
    """Group lasso: a Gamma scale mixture of Gaussians; ``||w||_2 ~ Gamma(d, kappa/sigma_0)``."""

    family = Prior.SS_GL
    display = "SS-GL"
    color = "blue"
    marker = "o"

    def label(self, spec: PriorSpec, out: str) -> str:
        return f"ss-gl (sigma_0={spec.sigma_0:g}, kappa={spec.kappa:g}{out})"

    def math_hyperparameters(self, spec: PriorSpec) -> list[str]:
        return [rf"$\kappa={spec.kappa:g}$"]

    def variance_range(self, spec: PriorSpec, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s0 = spec.sigma_0**2
        return s0 * t, 2.0 * s0 * t

    def log_scale_mass(
        self, spec: PriorSpec, t: np.ndarray, d: np.ndarray, closed_form: bool
    ) -> np.ndarray:
        """``tau^2 ~ Gamma((d+1)/2, rate kappa^2/2)`` on ``[t, 2t]``."""
        alpha = (d + 1.0) / 2.0
        x = 0.5 * spec.kappa**2 * t
        if closed_form:
            return _log_gamma_interval_closed(alpha, x)
        return _log_gamma_interval(alpha, x)

    def closed_form_log_t(self, spec: PriorSpec, ball: SmallBall) -> np.ndarray:
        """``beta t^2 + (r/2 - alpha + 1) t - r Q = 0`` with ``beta = kappa^2/2``,
        ``alpha = (d+1)/2``, ``Q = (B+delta)^2 / (2 sigma_0^2)``; its positive root, in log
        space without cancellation."""
        log_delta, bound, r, d = ball
        with np.errstate(divide="ignore"):
            log_b_plus = np.logaddexp(np.log(bound), log_delta)  # log(B + delta)
        log_q = 2.0 * log_b_plus - np.log(2.0 * spec.sigma_0**2)
        beta = 0.5 * spec.kappa**2
        b = r / 2.0 - (d + 1.0) / 2.0 + 1.0
        with np.errstate(divide="ignore"):
            log_abs_b = np.log(np.abs(b))
        log_disc = 0.5 * np.logaddexp(2.0 * log_abs_b, np.log(4.0 * beta * r) + log_q)
        positive = np.log(2.0 * r) + log_q - np.logaddexp(log_abs_b, log_disc)
        other = np.logaddexp(log_disc, log_abs_b) - np.log(2.0 * beta)
        return np.where(b > 0, positive, other)

    def log_tail(self, spec: PriorSpec, log_bound: np.ndarray, d: np.ndarray) -> np.ndarray:
        """``||w||_2 ~ Gamma(d, rate kappa/sigma_0)`` exactly, so ``log Q(d, kappa B/sigma_0)``
        (with an explicit upper bound where it underflows)."""
        # ||w||_2 ~ Gamma(d, rate kappa/sigma_0) exactly; ||w||_inf > B implies ||w||_2 > B
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            x = spec.kappa * np.exp(log_bound) / spec.sigma_0
            exact = np.log(special.gammaincc(d, x))
            # Gamma(d, x) <= x^(d-1) e^(-x) / (1 - (d-1)/x) for x > d - 1 (docs/theory.md, 3.4)
            log_x = np.log(spec.kappa / spec.sigma_0) + log_bound
            asym = (d - 1.0) * log_x - x - special.gammaln(d) - np.log1p(-(d - 1.0) / x)
        asym = np.where(np.isinf(x), -np.inf, asym)
        return np.where(np.isfinite(exact), exact, np.where(x > d, asym, 0.0))

    def tail_log_bound_inverse(self, spec: PriorSpec, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        # Chernoff: P(Gamma(d,1) > x) <= (x/d)^d e^(d - x), x >= d; = e^y by Newton from above
        u = np.maximum(-y, 0.0)
        x = 3.0 * d + 2.0 * u  # f(x) >= 0 here; f convex increasing on [d, inf)
        for _ in range(100):
            f = x - d - d * np.log(x / d) - u
            if np.all(f <= 1e-12 * x):
                break
            x = np.maximum(x - f / (1.0 - d / x), d)
        x = x * (1.0 + 1e-12)
        with np.errstate(divide="ignore"):
            return np.where(y >= 0.0, -np.inf, np.log(spec.sigma_0 * x / spec.kappa))

    def log_density(self, spec: PriorSpec, w: np.ndarray) -> np.ndarray:
        """``G(w) = kappa^d exp(-(kappa/sigma_0)||w||_2) / (sigma_0^d 2^d pi^((d-1)/2)
        Gamma((d+1)/2))``."""
        d = w.shape[-1]
        sq = np.sum(w * w, axis=-1)
        s0 = spec.sigma_0
        k = spec.kappa
        norm = d * np.log(k / s0) - d * _LOG2 - 0.5 * (d - 1) * np.log(np.pi)
        return norm - special.gammaln(0.5 * (d + 1)) - (k / s0) * np.sqrt(sq)

    def sample_scale(
        self, spec: PriorSpec, d: int, size: int, rng: np.random.Generator
    ) -> np.ndarray:
        return rng.gamma(shape=0.5 * (d + 1), scale=2.0 / spec.kappa**2, size=size)

    def variance_moments(
        self, spec: PriorSpec, mu: np.ndarray, s_u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        s0 = spec.sigma_0**2
        inv = np.exp(-mu + 0.5 * s_u**2)
        return math.log(s0) + mu, inv / s0

    def log_variance(self, spec: PriorSpec, log_t: np.ndarray) -> np.ndarray:
        s0 = spec.sigma_0**2
        return math.log(s0) + log_t

    def scale_kl(self, spec: PriorSpec, mu: np.ndarray, s_u: np.ndarray, d: float) -> np.ndarray:
        """``KL(LogNormal(mu, s_u^2) || Gamma((d+1)/2, rate kappa^2/2))``."""
        return kl_lognormal_gamma(mu, s_u, 0.5 * (d + 1.0), 0.5 * spec.kappa**2)

    def scale_kl_bound(
        self, spec: PriorSpec, t: np.ndarray, d: float, base: float, width: float, sd: float
    ) -> np.ndarray:
        alpha = 0.5 * (d + 1.0)
        eps = math.expm1(0.5 * sd**2)  # E_q[e^{-(U - log t)}] - 1 = e^{s_u^2/2} - 1
        return base + alpha * width + eps * 0.5 * spec.kappa**2 * t

    def engine_scale_kl_floor(self, d: int) -> float:
        """``tau^2``'s LogNormal against ``Gamma((d+1)/2, .)``."""
        return least_lognormal_gamma_kl(0.5 * (d + 1))

    def symbolic_phi(
        self, spec: PriorSpec, delta: Any, bound: Any, r: Any, d: Any, num: Any
    ) -> Any:
        import sympy

        s0 = num(spec.sigma_0)
        beta = num(spec.kappa) ** 2 / 2
        alpha = (d + 1) / 2
        q = (bound + delta) ** 2 / (2 * s0**2)
        bq = r / 2 - alpha + 1
        t = (sympy.sqrt(bq**2 + 4 * beta * r * q) - bq) / (2 * beta)
        v_lo = s0**2 * t
        x = beta * t
        log_mass = (
            (alpha - 1) * sympy.log(x) - x + sympy.log(1 - sympy.exp(-x)) - sympy.loggamma(alpha)
        )
        return symbolic_mixture_phi(v_lo, delta, bound, r) - log_mass
