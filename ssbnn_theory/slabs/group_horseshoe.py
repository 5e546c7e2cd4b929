"""Group-horseshoe slab (``ss-ghs``): ``w | tau ~ N(0, sigma_0^2 lambda(tau)^2 I_d)``,
``tau ~ C+(0, 1)``, with the regularised scale ``lambda = c g tau / sqrt(c^2 + g^2 tau^2)``
(Piironen & Vehtari 2017; ``g = global_scale``, ``c = slab_width``), or the plain
``lambda = g tau`` when ``slab_width=None``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from ssbnn_theory._numerics import log_diff_exp
from ssbnn_theory.enums import Prior
from ssbnn_theory.slabs.base import (
    _LOG2,
    _LOG_2_OVER_PI,
    _LOG_2PI,
    _SQRT2,
    ScaleMixtureSlab,
    SmallBall,
    least_lognormal_gamma_kl,
    symbolic_mixture_phi,
)
from ssbnn_theory.slabs.gaussian import gaussian_log_bound_inverse, gaussian_log_tail

if TYPE_CHECKING:
    from ssbnn_theory.priors import PriorSpec

__all__ = ["GroupHorseshoeSlab", "horseshoe_scale_kl"]

_LOG_2PI_M = math.log(2.0 * math.pi)
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(64)
_GH_W = _GH_W / math.sqrt(2.0 * math.pi)  # E f(Z), Z ~ N(0, 1), = sum w_i f(x_i)


def horseshoe_scale_kl(mu: np.ndarray | float, s_u: np.ndarray | float) -> np.ndarray:
    """``KL(N(mu, s_u^2) || law of log tau^2)`` for ``tau ~ C+(0, 1)``, by Gauss-Hermite.

    ``U = log tau^2`` has density ``1 / (2 pi cosh(u/2))``, so the KL is
    ``-log(s_u sqrt(2 pi e)) + log(2 pi) + E log cosh(U/2)``; ``log cosh`` is analytic in
    a strip, so 64-point Gauss-Hermite quadrature is accurate to rounding.
    """
    mu = np.asarray(mu, np.float64)[..., None]
    s_u = np.asarray(s_u, np.float64)
    u = mu + s_u[..., None] * _GH_X
    log_cosh = np.logaddexp(0.5 * u, -0.5 * u) - math.log(2.0)
    return -np.log(s_u) - 0.5 * (_LOG_2PI_M + 1.0) + _LOG_2PI_M + np.sum(_GH_W * log_cosh, axis=-1)


def _log_half_cauchy_interval(t: np.ndarray) -> np.ndarray:
    """``log P(tau^2 in [t, 2t])`` for ``tau ~ C+(0,1)``: ``log((2/pi) atan(z))``.

    ``atan(sqrt(2t)) - atan(sqrt t) = atan(z)`` with ``z = (sqrt 2 - 1) sqrt t / (1 + sqrt 2 t)``,
    exact and free of cancellation for every ``t > 0``.
    """
    root = np.sqrt(t)
    z = (_SQRT2 - 1.0) * root / (1.0 + _SQRT2 * t)
    return _LOG_2_OVER_PI + np.log(np.arctan(z))


_HS_C0 = 0.5 * float(np.log(np.pi / 2.0))


def _hs_closed_log_tail(log_b: np.ndarray) -> np.ndarray:
    """``log[(2/(pi b)) (x + 1/x)]``, ``x = sqrt(2 log(b sqrt(pi/2)))``, for ``x >= 1``.

    With ``u = b / x``: ``P(tau > u) <= 2/(pi u) = 2x/(pi b)`` and, by Mills' ratio,
    ``P(|Z| > x) <= 2 phi(x)/x = 2/(pi x b)`` (docs/theory.md, 3.4). Decreasing in ``b``.
    """
    x = np.sqrt(2.0 * (log_b + _HS_C0))
    return _LOG_2_OVER_PI - log_b + np.log(x + 1.0 / x)


def _hs_log_tail(sigma_g: float, log_bound: np.ndarray, d: np.ndarray) -> np.ndarray:
    # P(|tau Z| > b) <= P(tau > u) + P(|Z| > b/u) for every u > 0, at the balance point
    # x* = b/u = sqrt(2 log(b sqrt(pi/2))) exactly, and in the closed form there
    log_b = np.asarray(log_bound - np.log(sigma_g))
    lb = log_b[..., None]
    x_star = np.sqrt(2.0 * np.maximum(lb + _HS_C0, 0.5))
    x = x_star * np.array([1.0])  # x = b / u at the balance point
    log_u = lb - np.log(x)
    with np.errstate(divide="ignore", over="ignore"):
        # log P(tau > u) = log((2/pi) atan(1/u)) <= log(2/pi) - log u
        inv_u = np.exp(-np.maximum(log_u, -700.0))
        first = _LOG_2_OVER_PI + np.where(
            log_u > 20.0, -log_u, np.log(np.arctan(np.minimum(inv_u, 1e300)))
        )
        second = _LOG2 + special.log_ndtr(-x)
    one = np.min(np.logaddexp(first, second), axis=-1)
    closed = np.where(log_b + _HS_C0 >= 0.5, _hs_closed_log_tail(np.maximum(log_b, 1.0)), 0.0)
    return np.minimum(0.0, np.log(d) + np.minimum(one, closed))


class GroupHorseshoeSlab(ScaleMixtureSlab):
    """Group horseshoe, plain or regularised (a slab width ``c``)."""

    family = Prior.SS_GHS
    display = "SS-GHS"
    color = "vermillion"
    marker = "^"
    takes_slab_width = True

    def label(self, spec: PriorSpec, out: str) -> str:
        reg = f", slab_width={spec.slab_width:g}" if spec.slab_width is not None else ", plain"
        return f"ss-ghs (sigma_0={spec.sigma_0:g}, global_scale={spec.global_scale:.3g}{reg}{out})"

    def math_hyperparameters(self, spec: PriorSpec) -> list[str]:
        width = rf"$c={spec.slab_width:g}$" if spec.slab_width is not None else "plain"
        return [rf"$g={spec.global_scale:.3g}$", width]

    def variance_range(self, spec: PriorSpec, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s0 = spec.sigma_0**2
        g2 = spec.global_scale**2
        if spec.slab_width is None:
            return s0 * g2 * t, 2.0 * s0 * g2 * t
        c2 = spec.slab_width**2
        return s0 * c2 * g2 * t / (c2 + g2 * t), s0 * c2 * g2 * 2.0 * t / (c2 + 2.0 * g2 * t)

    def log_scale_mass(
        self, spec: PriorSpec, t: np.ndarray, d: np.ndarray, closed_form: bool
    ) -> np.ndarray:
        """``tau ~ C+(0, 1)``: exact."""
        return _log_half_cauchy_interval(t)

    def closed_form_log_t(self, spec: PriorSpec, ball: SmallBall) -> np.ndarray:
        """``t = 2 r Q / (r + 1)`` with ``Q = (B+delta)^2 / (2 sigma_0^2 g^2)``; regularised:
        the positive root of ``g^2 t^2 + (c^2 (1+r) - 2 r Q g^2) t - 2 r Q c^2 = 0``, in log
        space without cancellation (``Q`` may underflow when ``B = 0`` and ``delta`` is tiny)."""
        log_delta, bound, r, _ = ball
        with np.errstate(divide="ignore"):
            log_b_plus = np.logaddexp(np.log(bound), log_delta)  # log(B + delta)
        log_q = 2.0 * log_b_plus - np.log(2.0 * spec.sigma_0**2 * spec.global_scale**2)
        if spec.slab_width is None:
            return np.log(2.0 * r / (r + 1.0)) + log_q
        g2, c2 = spec.global_scale**2, spec.slab_width**2
        log_first, log_second = np.log(c2 * (1.0 + r)), np.log(2.0 * r * g2) + log_q
        positive_b = log_first > log_second  # b = c^2 (1 + r) - 2 r Q g^2
        log_abs_b = log_diff_exp(
            np.maximum(log_first, log_second), np.minimum(log_first, log_second)
        )
        log_disc = 0.5 * np.logaddexp(2.0 * log_abs_b, np.log(8.0 * g2 * r * c2) + log_q)
        positive = np.log(4.0 * r * c2) + log_q - np.logaddexp(log_abs_b, log_disc)
        other = np.logaddexp(log_disc, log_abs_b) - np.log(2.0 * g2)
        return np.where(positive_b, positive, other)

    def log_tail(self, spec: PriorSpec, log_bound: np.ndarray, d: np.ndarray) -> np.ndarray:
        """``d [P(tau > u) + P(|Z| > B/(sigma_0 g u))]`` at the balance ``u``; regularised: the
        smaller of that and the Gaussian tail at scale ``sigma_0 c``."""
        out = _hs_log_tail(spec.sigma_0 * spec.global_scale, log_bound, d)
        if spec.slab_width is not None:
            out = np.minimum(out, gaussian_log_tail(spec.sigma_0 * spec.slab_width, log_bound, d))
        return out

    def tail_log_bound_inverse(self, spec: PriorSpec, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        # invert the closed form (2/(pi b))(x + 1/x) <= e^{y'} (fixed point in log b,
        # a contraction), then step up until the evaluated bound confirms it
        y1 = np.minimum(y - np.log(d), 0.0)
        floor = 0.5 - _HS_C0  # x >= 1 from here on, where the closed form decreases in b
        log_b = np.maximum(_LOG_2_OVER_PI - y1, floor)
        for _ in range(100):
            x = np.sqrt(2.0 * (log_b + _HS_C0))
            new = np.maximum(_LOG_2_OVER_PI - y1 + np.log(x + 1.0 / x), floor)
            converged = np.all(np.abs(new - log_b) <= 1e-12 * np.maximum(1.0, np.abs(log_b)))
            log_b = new
            if converged:
                break
        margin = 1e-9 * np.maximum(1.0, np.abs(log_b))
        for _ in range(60):
            bad = _hs_closed_log_tail(log_b) > y1
            if not np.any(bad):
                break
            log_b = np.where(bad, log_b + margin, log_b)
            margin = 2.0 * margin
        out = np.where(
            y - np.log(d) >= 0.0, -np.inf, np.log(spec.sigma_0 * spec.global_scale) + log_b
        )
        if spec.slab_width is not None:
            out = np.minimum(out, gaussian_log_bound_inverse(spec.sigma_0 * spec.slab_width, y, d))
        return out

    def log_density(self, spec: PriorSpec, w: np.ndarray) -> np.ndarray:
        """The one-dimensional mixture integral over ``tau`` by the trapezoid rule in
        ``log tau`` (``+inf`` at ``w = 0``, where the horseshoe density has its pole)."""
        d = w.shape[-1]
        sq = np.sum(w * w, axis=-1)
        # log of int N(w; 0, v(tau) I) p(tau) dtau over u = log tau by the trapezoid
        # rule (step 0.01 on [-60, 60]; exponentially accurate for this smooth, decaying
        # integrand); the density is infinite at w = 0
        u = np.arange(-60.0, 60.0 + 1e-9, 0.01)
        tau2 = np.exp(2.0 * u)
        var = self.variance_range(spec, tau2)[0]
        base = -0.5 * d * (_LOG_2PI + np.log(var)) + _LOG_2_OVER_PI - np.log1p(tau2) + u
        flat = sq.reshape(-1)
        out = np.empty(flat.shape)
        for start in range(0, flat.size, 256):
            q = flat[start : start + 256, None]
            terms = base - 0.5 * q / var
            terms[:, [0, -1]] -= _LOG2  # trapezoid end weights
            peak = np.max(terms, axis=1, keepdims=True)
            total = np.log(np.sum(np.exp(terms - peak), axis=1)) + peak[:, 0] + np.log(0.01)
            out[start : start + 256] = np.where(q[:, 0] == 0.0, np.inf, total)
        return out.reshape(sq.shape)

    def sample_scale(
        self, spec: PriorSpec, d: int, size: int, rng: np.random.Generator
    ) -> np.ndarray:
        tau = np.abs(rng.standard_cauchy(size))
        return tau * tau

    def variance_moments(
        self, spec: PriorSpec, mu: np.ndarray, s_u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        s0 = spec.sigma_0**2
        inv = np.exp(-mu + 0.5 * s_u**2)
        g, c = spec.global_scale, spec.slab_width
        if c is None:
            return math.log(s0 * g * g) + mu, inv / (s0 * g * g)
        u = mu[..., None] + s_u[..., None] * _GH_X
        e_log = np.sum(_GH_W * np.logaddexp(2.0 * math.log(c), 2.0 * math.log(g) + u), axis=-1)
        return math.log(s0 * c * c * g * g) + mu - e_log, inv / (s0 * g * g) + 1.0 / (s0 * c * c)

    def log_variance(self, spec: PriorSpec, log_t: np.ndarray) -> np.ndarray:
        s0 = spec.sigma_0**2
        g, c = spec.global_scale, spec.slab_width
        if c is None:
            return math.log(s0 * g * g) + log_t
        return (
            math.log(s0 * c * c * g * g)
            + log_t
            - np.logaddexp(2 * math.log(c), 2 * math.log(g) + log_t)
        )

    def scale_kl(self, spec: PriorSpec, mu: np.ndarray, s_u: np.ndarray, d: float) -> np.ndarray:
        """:func:`horseshoe_scale_kl`."""
        return horseshoe_scale_kl(mu, s_u)

    def scale_kl_bound(
        self, spec: PriorSpec, t: np.ndarray, d: float, base: float, width: float, sd: float
    ) -> np.ndarray:
        return np.full_like(t, base + width / 2.0 + sd / math.sqrt(2.0 * math.pi))

    def engine_scale_kl_floor(self, d: int) -> float:
        """``tau^2 = a b``, ``a ~ Gamma(1/2)``, ``b ~ InvGamma(1/2)``: two LogNormal factors."""
        return 2.0 * least_lognormal_gamma_kl(0.5)

    def symbolic_phi(
        self, spec: PriorSpec, delta: Any, bound: Any, r: Any, d: Any, num: Any
    ) -> Any:
        import sympy

        s0 = num(spec.sigma_0)
        g = num(spec.global_scale)
        q = (bound + delta) ** 2 / (2 * s0**2 * g**2)
        if spec.slab_width is None:
            t = 2 * r * q / (r + 1)
            v_lo = s0**2 * g**2 * t
        else:
            c = num(spec.slab_width)
            bq = c**2 * (1 + r) - 2 * r * q * g**2
            t = (sympy.sqrt(bq**2 + 8 * g**2 * r * q * c**2) - bq) / (2 * g**2)
            v_lo = s0**2 * c**2 * g**2 * t / (c**2 + g**2 * t)
        z = (sympy.sqrt(2) - 1) * sympy.sqrt(t) / (1 + sympy.sqrt(2) * t)
        log_mass = sympy.log(2 / sympy.pi) + sympy.log(sympy.atan(z))
        return symbolic_mixture_phi(v_lo, delta, bound, r) - log_mass
