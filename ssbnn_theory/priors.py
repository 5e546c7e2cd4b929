"""Slab priors: hyperparameters (``PriorSpec``), densities, samplers, Lemma L2 (small-ball mass).

An active group ``w`` (``d`` coordinates) of a hidden layer is drawn from the slab ``G``
(docs/theory.md, section 2):

* ``ss-ig``:  ``w ~ N(0, sigma_0^2 I_d)``;
* ``ss-gl``:  ``w | tau^2 ~ N(0, sigma_0^2 tau^2 I_d)``, ``tau^2 ~ Gamma((d+1)/2, rate kappa^2/2)``;
* ``ss-ghs``: ``w | tau ~ N(0, sigma_0^2 lambda(tau)^2 I_d)``, ``tau ~ C+(0, 1)``, with the
  regularised scale ``lambda = c g tau / sqrt(c^2 + g^2 tau^2)`` (Piironen & Vehtari 2017;
  ``g = global_scale``, ``c = slab_width``), or the plain ``lambda = g tau`` when
  ``slab_width=None``.

Defaults describe the model the engine (``simulations``) fits: ``sigma_0 = 1``, SS-GHS with
``global_scale = sqrt(1e-5)`` and ``slab_width = 1``. The dense output layer gets the hidden
layers' slab family without a spike (as the reference MLPs), or ``N(0, sigma_0^2)`` with
``gaussian_output=True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from ssbnn_theory._checks import check_integer, check_real, check_real_array
from ssbnn_theory._numerics import golden_section_argmin, log1mexp, log_diff_exp, log_normal_box
from ssbnn_theory.enums import Prior, parse_enum
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "ENGINE_GLOBAL_SCALE",
    "ENGINE_SLAB_WIDTH",
    "PriorSpec",
    "as_prior_spec",
    "log_scale_mass",
    "mixture_conditional",
    "mixture_variance",
    "optimal_log_t",
    "sample_slab",
    "scale_log_mass",
    "slab_log_density",
    "slab_log_tail",
    "slab_small_ball",
    "slab_tail_log_bound_inverse",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
_LOG_4PI = float(np.log(4.0 * np.pi))
_LOG_2_OVER_PI = float(np.log(2.0 / np.pi))
_LOG2 = float(np.log(2.0))
_SQRT2 = float(np.sqrt(2.0))

# golden-section iterations over log t (bracket width 30 -> 30 * 0.618^28 < 1e-4; the
# objective is flat at its minimum, so its value is within ~1e-8 of the minimum)
_T_ITERATIONS = 28
_T_BRACKET = (-20.0, 10.0)


# range of every scale hyperparameter: beyond it the bounds' float64 terms (B^2 / sigma^2,
# log of the scale masses) leave the range where they are computed to full accuracy
_HYPER_MIN, _HYPER_MAX = 1e-8, 1e8

ENGINE_GLOBAL_SCALE = math.sqrt(1e-5)
"""The engine's SS-GHS global scale ``g_0`` (``simulations.ModelConfig.global_scale``)."""
ENGINE_SLAB_WIDTH = 1.0
"""The engine's SS-GHS slab width ``c`` (``simulations.ModelConfig.slab_width``)."""


@dataclass(frozen=True)
class PriorSpec:
    """A slab family and its hyperparameters (docs/theory.md, section 2).

    The names are the engine's (``simulations.ModelConfig``): ``sigma_0``, ``global_scale``,
    ``slab_width``; the defaults describe the model ``ssbnn simulate`` fits.

    Parameters
    ----------
    prior
        :class:`~ssbnn_theory.Prior` or its string (``"ss-ig"``, ``"ss-gl"``, ``"ss-ghs"``).
    sigma_0
        Slab scale ``sigma_0 > 0`` (reference and engine: 1).
    kappa
        Group-lasso parameter ``kappa > 0`` (``ss-gl``): ``tau^2 ~ Gamma((d+1)/2, rate kappa^2/2)``
        (the engine learns it; 1 here).
    global_scale
        Global scale ``g > 0`` of the group horseshoe (``ss-ghs``), fixed here; default
        ``sqrt(1e-5)``, the scale of the engine's ``g ~ C+(0, global_scale)``.
    slab_width
        Slab width ``c > 0`` of the regularised horseshoe (``ss-ghs`` only); ``None``: the plain
        horseshoe; ``"engine"`` (default): ``1`` for ``ss-ghs`` (the engine's), ``None`` for the
        other families.
    gaussian_output
        ``False`` (default): the dense output layer gets the hidden layers' slab family without
        a spike, as the reference MLPs; ``True``: the Gaussian ``N(0, sigma_0^2)``.
    """

    prior: Prior | str = Prior.SS_GL
    sigma_0: float = 1.0
    kappa: float = 1.0
    global_scale: float = ENGINE_GLOBAL_SCALE
    slab_width: float | str | None = "engine"
    gaussian_output: bool = False

    def __post_init__(self) -> None:
        prior = parse_enum(Prior, self.prior, "prior")
        object.__setattr__(self, "prior", prior)
        for name in ("sigma_0", "kappa", "global_scale"):
            value = check_real(name, getattr(self, name), lower=_HYPER_MIN, upper=_HYPER_MAX)
            object.__setattr__(self, name, value)
        width = self.slab_width
        if isinstance(width, str) and width == "engine":
            width = ENGINE_SLAB_WIDTH if prior is Prior.SS_GHS else None
        elif width is not None:
            if prior is not Prior.SS_GHS:
                raise InvalidParameterError(
                    "slab_width", "None unless prior is 'ss-ghs'", self.slab_width
                )
            width = check_real("slab_width", width, lower=_HYPER_MIN, upper=_HYPER_MAX)
        object.__setattr__(self, "slab_width", width)
        if not isinstance(self.gaussian_output, bool):
            raise InvalidParameterError("gaussian_output", "true or false", self.gaussian_output)

    @property
    def regularised(self) -> bool:
        """Whether this is the regularised horseshoe (``ss-ghs`` with a slab width)."""
        return self.slab_width is not None

    @property
    def label(self) -> str:
        """Short label with the hyperparameters that matter for the family."""
        out = " out N(0,sigma_0^2)" if self.gaussian_output else ""
        if self.prior is Prior.SS_IG:
            return f"ss-ig (sigma_0={self.sigma_0:g}{out})"
        if self.prior is Prior.SS_GL:
            return f"ss-gl (sigma_0={self.sigma_0:g}, kappa={self.kappa:g}{out})"
        reg = f", slab_width={self.slab_width:g}" if self.slab_width is not None else ", plain"
        return f"ss-ghs (sigma_0={self.sigma_0:g}, global_scale={self.global_scale:.3g}{reg}{out})"

    @classmethod
    def from_engine(cls, prior: Prior | str, config: object) -> PriorSpec:
        """The spec of a model the engine fits, from its ``simulations.ModelConfig`` (duck-typed).

        ``sigma_0``, ``global_scale`` and ``slab_width`` are read from ``config`` under the same
        names; ``kappa = 1`` (the engine learns ``kappa``). The engine's output layer is a
        dense mean-field Gaussian ``N(0, sigma_0^2)`` layer, so ``gaussian_output=True``
        unless ``config`` has an ``output_slab`` other than ``"gaussian"``.
        """
        family = parse_enum(Prior, prior, "prior")
        output = str(getattr(config, "output_slab", "gaussian"))
        return cls(
            family,
            sigma_0=config.sigma_0,  # type: ignore[attr-defined]
            global_scale=config.global_scale,  # type: ignore[attr-defined]
            slab_width=config.slab_width if family is Prior.SS_GHS else None,  # type: ignore[attr-defined]
            gaussian_output=output == "gaussian",
        )

    def output_spec(self) -> PriorSpec:
        """The slab of the dense output layer."""
        if self.gaussian_output:
            return PriorSpec(Prior.SS_IG, sigma_0=self.sigma_0, gaussian_output=True)
        return self

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary of the family and its hyperparameters."""
        return {
            "prior": self.prior.value,
            "sigma_0": self.sigma_0,
            "kappa": self.kappa,
            "global_scale": self.global_scale,
            "slab_width": self.slab_width,
            "gaussian_output": self.gaussian_output,
        }


def as_prior_spec(prior: Prior | str | PriorSpec) -> PriorSpec:
    """A :class:`PriorSpec` from itself, a :class:`~ssbnn_theory.Prior` or its string (defaults)."""
    if isinstance(prior, PriorSpec):
        return prior
    return PriorSpec(parse_enum(Prior, prior, "prior"))


# --------------------------------------------------------------------------- scale laws
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


def _log_half_cauchy_interval(t: np.ndarray) -> np.ndarray:
    """``log P(tau^2 in [t, 2t])`` for ``tau ~ C+(0,1)``: ``log((2/pi) atan(z))``.

    ``atan(sqrt(2t)) - atan(sqrt t) = atan(z)`` with ``z = (sqrt 2 - 1) sqrt t / (1 + sqrt 2 t)``,
    exact and free of cancellation for every ``t > 0``.
    """
    root = np.sqrt(t)
    z = (_SQRT2 - 1.0) * root / (1.0 + _SQRT2 * t)
    return _LOG_2_OVER_PI + np.log(np.arctan(z))


def log_scale_mass(prior: Prior | str | PriorSpec, t: np.ndarray | float, d: int) -> np.ndarray:
    """A lower bound on ``log P(tau^2 in [t, 2t])`` for the slab's local scale (exact up to rounding
    where the incomplete gamma functions do not underflow).

    ``ss-gl``: ``tau^2 ~ Gamma((d+1)/2, rate kappa^2/2)``; ``ss-ghs``: ``tau ~ C+(0, 1)``.
    """
    spec = as_prior_spec(prior)
    t = check_real_array("t", t, lower=0.0, lower_open=True)
    d = check_integer("d", d)
    return _log_scale_mass(spec, t, np.float64(d), closed_form=False)


def _log_scale_mass(spec: PriorSpec, t: np.ndarray, d: np.ndarray, closed_form: bool) -> np.ndarray:
    if spec.prior is Prior.SS_GL:
        alpha = (d + 1.0) / 2.0
        x = 0.5 * spec.kappa**2 * t
        if closed_form:
            return _log_gamma_interval_closed(alpha, x)
        return _log_gamma_interval(alpha, x)
    if spec.prior is Prior.SS_GHS:
        return _log_half_cauchy_interval(t)
    raise InvalidParameterError("prior", "'ss-gl' or 'ss-ghs' (a scale mixture)", spec.prior.value)


def _variance_range(spec: PriorSpec, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conditional variance of a coordinate at ``tau^2 = t`` and ``2t`` (increasing in ``tau``)."""
    s0 = spec.sigma_0**2
    if spec.prior is Prior.SS_IG:
        return np.full_like(t, s0), np.full_like(t, s0)
    if spec.prior is Prior.SS_GL:
        return s0 * t, 2.0 * s0 * t
    g2 = spec.global_scale**2
    if spec.slab_width is None:
        return s0 * g2 * t, 2.0 * s0 * g2 * t
    c2 = spec.slab_width**2
    return s0 * c2 * g2 * t / (c2 + g2 * t), s0 * c2 * g2 * 2.0 * t / (c2 + 2.0 * g2 * t)


# ------------------------------------------------------------------------ L2 objective
def _ig_phi(
    sigma: float, log_delta: np.ndarray, bound: np.ndarray, r: np.ndarray, closed_form: bool
) -> np.ndarray:
    delta = np.exp(log_delta)
    if closed_form:
        return r * (
            np.log(sigma)
            + 0.5 * _LOG_2PI
            - _LOG2
            - log_delta
            + (bound + delta) ** 2 / (2 * sigma**2)
        )
    return -r * log_normal_box(bound / sigma, delta / sigma, log_delta - np.log(sigma))


def _mixture_phi(
    spec: PriorSpec,
    log_t: np.ndarray,
    log_delta: np.ndarray,
    bound: np.ndarray,
    r: np.ndarray,
    d: np.ndarray,
    closed_form: bool,
) -> np.ndarray:
    """``-log P(tau^2 in [t,2t]) - r log inf_{v in [v(t), v(2t)]} P(|N(0,v) - B| <= delta)``."""
    t = np.exp(log_t)
    return mixture_conditional(spec, t, log_delta, bound, r, closed_form) - _log_scale_mass(
        spec, t, d, closed_form
    )


def mixture_conditional(
    spec: PriorSpec,
    t: np.ndarray,
    log_delta: np.ndarray,
    bound: np.ndarray,
    r: np.ndarray,
    closed_form: bool,
) -> np.ndarray:
    """The conditional part of :func:`_mixture_phi`: ``-r log inf_v P(|N(0,v) - B| <= delta)``."""
    delta = np.exp(log_delta)
    v_lo, v_hi = _variance_range(spec, t)
    if closed_form:
        # density on the box >= (2 pi v_hi)^(-1/2) exp(-(B+delta)^2 / (2 v_lo)), v_hi <= 2 v_lo
        return r * (
            0.5 * (_LOG_4PI + np.log(v_lo)) - _LOG2 - log_delta + (bound + delta) ** 2 / (2 * v_lo)
        )
    # the interval mass is unimodal in the variance, so its infimum is at an endpoint
    lo_sd, hi_sd = np.sqrt(v_lo), np.sqrt(v_hi)
    at_lo = log_normal_box(bound / lo_sd, delta / lo_sd, log_delta - np.log(lo_sd))
    at_hi = log_normal_box(bound / hi_sd, delta / hi_sd, log_delta - np.log(hi_sd))
    return -r * np.minimum(at_lo, at_hi)


def scale_log_mass(spec: PriorSpec, t: np.ndarray, d: np.ndarray, closed_form: bool) -> np.ndarray:
    """Unvalidated kernel of :func:`log_scale_mass` (lower bound on log P(tau^2 in [t, 2t]))."""
    return _log_scale_mass(spec, t, d, closed_form)


def closed_form_log_t(
    spec: PriorSpec, log_delta: np.ndarray, bound: np.ndarray, r: np.ndarray, d: np.ndarray
) -> np.ndarray:
    """Closed-form ``log t`` (docs/theory.md, 3.2): stationary point of the asymptotic objective.

    ``ss-gl``: ``beta t^2 + (r/2 - alpha + 1) t - r Q = 0`` with ``beta = kappa^2/2``,
    ``alpha = (d+1)/2``, ``Q = (B+delta)^2 / (2 sigma_0^2)``. ``ss-ghs``: ``t = 2 r Q / (r + 1)``
    with ``Q = (B+delta)^2 / (2 sigma_0^2 g^2)``; regularised:
    ``g^2 t^2 + (c^2 (1+r) - 2 r Q g^2) t - 2 r Q c^2 = 0``. Positive roots, computed in log
    space without cancellation (``Q`` may underflow when ``B = 0`` and ``delta`` is tiny).
    """
    with np.errstate(divide="ignore"):
        log_b_plus = np.logaddexp(np.log(bound), log_delta)  # log(B + delta)
    if spec.prior is Prior.SS_GL:
        log_q = 2.0 * log_b_plus - np.log(2.0 * spec.sigma_0**2)
        beta = 0.5 * spec.kappa**2
        b = r / 2.0 - (d + 1.0) / 2.0 + 1.0
        with np.errstate(divide="ignore"):
            log_abs_b = np.log(np.abs(b))
        log_disc = 0.5 * np.logaddexp(2.0 * log_abs_b, np.log(4.0 * beta * r) + log_q)
        positive = np.log(2.0 * r) + log_q - np.logaddexp(log_abs_b, log_disc)
        other = np.logaddexp(log_disc, log_abs_b) - np.log(2.0 * beta)
        return np.where(b > 0, positive, other)
    log_q = 2.0 * log_b_plus - np.log(2.0 * spec.sigma_0**2 * spec.global_scale**2)
    if spec.slab_width is None:
        return np.log(2.0 * r / (r + 1.0)) + log_q
    g2, c2 = spec.global_scale**2, spec.slab_width**2
    log_first, log_second = np.log(c2 * (1.0 + r)), np.log(2.0 * r * g2) + log_q
    positive_b = log_first > log_second  # b = c^2 (1 + r) - 2 r Q g^2
    log_abs_b = log_diff_exp(np.maximum(log_first, log_second), np.minimum(log_first, log_second))
    log_disc = 0.5 * np.logaddexp(2.0 * log_abs_b, np.log(8.0 * g2 * r * c2) + log_q)
    positive = np.log(4.0 * r * c2) + log_q - np.logaddexp(log_abs_b, log_disc)
    other = np.logaddexp(log_disc, log_abs_b) - np.log(2.0 * g2)
    return np.where(positive_b, positive, other)


def optimal_log_t(
    spec: PriorSpec, log_delta: np.ndarray, bound: np.ndarray, r: np.ndarray, d: np.ndarray
) -> np.ndarray:
    """Numerical minimiser (golden section in ``log t``) of the sharp L2 objective, broadcast.

    The bracket is ``[log t_cf - 20, log t_cf + 10]`` around the closed-form choice; any
    ``t`` gives a valid bound, the search only makes it smaller.
    """
    log_delta, bound, r, d = np.broadcast_arrays(log_delta, bound, r, d)
    center = closed_form_log_t(spec, log_delta, bound, r, d)

    def objective(log_t: np.ndarray) -> np.ndarray:
        return _mixture_phi(spec, log_t, log_delta, bound, r, d, closed_form=False)

    return golden_section_argmin(
        objective, center + _T_BRACKET[0], center + _T_BRACKET[1], _T_ITERATIONS
    )


def small_ball_phi(
    spec: PriorSpec,
    log_delta: np.ndarray,
    bound: np.ndarray,
    r: np.ndarray,
    d: np.ndarray,
    *,
    closed_form: bool,
    log_t: np.ndarray | None = None,
) -> np.ndarray:
    """Unvalidated kernel of :func:`slab_small_ball`, from ``log delta`` (which may underflow)."""
    if spec.prior is Prior.SS_IG:
        return _ig_phi(spec.sigma_0, log_delta, bound, r, closed_form)
    if log_t is None:
        if closed_form:
            log_t = closed_form_log_t(spec, log_delta, bound, r, d)
        else:
            log_t = optimal_log_t(spec, log_delta, bound, r, d)
    return _mixture_phi(spec, log_t, log_delta, bound, r, d, closed_form)


def slab_small_ball(
    prior: Prior | str | PriorSpec,
    delta: np.ndarray | float,
    bound: np.ndarray | float,
    r: int,
    d: int | None = None,
    *,
    closed_form: bool = False,
) -> np.ndarray:
    """Lemma L2: ``phi(delta, B) >= -log inf_{|w*_i| <= B} G(|w_i - w*_i| <= delta, i = 1..r)``.

    For one active group of ``d`` coordinates (``d`` sets the group-lasso shape; default
    ``d = r``) of which ``r`` are constrained, any centre ``w*`` with ``|w*_i| <= B``
    (docs/theory.md, section 3.2):

    * ``ss-ig``: ``phi = -r log(Phi((B+delta)/sigma_0) - Phi((B-delta)/sigma_0))`` (exact worst
      case); closed form ``r [log(sigma_0 sqrt(2 pi)/(2 delta)) + (B+delta)^2/(2 sigma_0^2)]``.
    * ``ss-gl``/``ss-ghs``: for any ``t > 0``,
      ``phi <= -log P(tau^2 in [t,2t]) - r log min_{v in {v(t), v(2t)}} P(|N(0,v) - B| <= delta)``,
      minimised over ``t`` numerically; closed form: the density bound
      ``r [log(sqrt(4 pi v(t))/(2 delta)) + (B+delta)^2/(2 v(t))]`` at the closed-form ``t``.

    Parameters
    ----------
    prior
        Family and hyperparameters.
    delta, bound
        Box half-width ``delta > 0`` and bound ``B >= 0`` (arrays broadcast).
    r, d
        Constrained coordinates ``r >= 1`` and group size ``d >= r``.
    closed_form
        Use the closed-form variant (the one the symbolic module reproduces).
    """
    spec = as_prior_spec(prior)
    delta = check_real_array("delta", delta, lower=0.0, lower_open=True)
    bound = check_real_array("bound", bound, lower=0.0)
    r_ = check_integer("r", r)
    d_ = r_ if d is None else check_integer("d", d, lower=r_)
    return small_ball_phi(
        spec, np.log(delta), bound, np.float64(r_), np.float64(d_), closed_form=closed_form
    )


# ----------------------------------------------------------------------- slab tails
def _ig_log_tail(sigma: float, log_bound: np.ndarray, d: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = -np.exp(log_bound) / sigma
    return np.minimum(0.0, np.log(d) + _LOG2 + special.log_ndtr(z))


def _gl_log_tail(spec: PriorSpec, log_bound: np.ndarray, d: np.ndarray) -> np.ndarray:
    # ||w||_2 ~ Gamma(d, rate kappa/sigma_0) exactly; ||w||_inf > B implies ||w||_2 > B
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        x = spec.kappa * np.exp(log_bound) / spec.sigma_0
        exact = np.log(special.gammaincc(d, x))
        # Gamma(d, x) <= x^(d-1) e^(-x) / (1 - (d-1)/x) for x > d - 1 (docs/theory.md, 3.4)
        log_x = np.log(spec.kappa / spec.sigma_0) + log_bound
        asym = (d - 1.0) * log_x - x - special.gammaln(d) - np.log1p(-(d - 1.0) / x)
    asym = np.where(np.isinf(x), -np.inf, asym)
    return np.where(np.isfinite(exact), exact, np.where(x > d, asym, 0.0))


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


def slab_log_tail(prior: Prior | str | PriorSpec, bound: np.ndarray | float, d: int) -> np.ndarray:
    """An upper bound on ``log G(||w||_inf > B)`` for one group of ``d`` coordinates.

    ``ss-ig``: ``log(2 d Phi(-B/sigma_0))``; ``ss-gl``: ``||w||_2 ~ Gamma(d, kappa/sigma_0)``
    exactly, so ``log Q(d, kappa B/sigma_0)`` (with an explicit upper bound where it
    underflows); ``ss-ghs``: ``d [P(tau > u) + P(|Z| > B/(sigma_0 g u))]`` at the balance ``u``;
    regularised: the smaller of that and the Gaussian tail at scale ``sigma_0 c``
    (docs/theory.md, section 3.4). Capped at 0.
    """
    spec = as_prior_spec(prior)
    bound = check_real_array("bound", bound, lower=0.0)
    d_ = np.float64(check_integer("d", d))
    with np.errstate(divide="ignore"):
        return log_tail(spec, np.log(bound), d_)


def log_tail(spec: PriorSpec, log_bound: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Unvalidated kernel of :func:`slab_log_tail`, from ``log B`` (may exceed float range)."""
    if spec.prior is Prior.SS_IG:
        return _ig_log_tail(spec.sigma_0, log_bound, d)
    if spec.prior is Prior.SS_GL:
        return _gl_log_tail(spec, log_bound, d)
    out = _hs_log_tail(spec.sigma_0 * spec.global_scale, log_bound, d)
    if spec.slab_width is not None:
        out = np.minimum(out, _ig_log_tail(spec.sigma_0 * spec.slab_width, log_bound, d))
    return out


def _ig_log_bound_inverse(sigma: float, y: np.ndarray, d: np.ndarray) -> np.ndarray:
    z = np.minimum(y - np.log(2.0 * d), -_LOG2 - 1e-12)
    with np.errstate(divide="ignore"):
        return np.where(
            y - np.log(2.0 * d) >= -_LOG2, -np.inf, np.log(-sigma * special.ndtri_exp(z))
        )


def slab_tail_log_bound_inverse(spec: PriorSpec, y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``log B`` with ``log G(||w||_inf > B) <= y`` (``-inf``: ``B = 0`` already suffices).

    Closed-form or monotone-Newton inversions of explicit tail bounds (docs/theory.md, 3.4),
    valid for any ``y`` (the bound itself may be far beyond float range, hence ``log B``).
    """
    if spec.prior is Prior.SS_IG:
        return _ig_log_bound_inverse(spec.sigma_0, y, d)
    if spec.prior is Prior.SS_GL:
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
    # horseshoe: invert the closed form (2/(pi b))(x + 1/x) <= e^{y'} (fixed point in log b,
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
    out = np.where(y - np.log(d) >= 0.0, -np.inf, np.log(spec.sigma_0 * spec.global_scale) + log_b)
    if spec.slab_width is not None:
        out = np.minimum(out, _ig_log_bound_inverse(spec.sigma_0 * spec.slab_width, y, d))
    return out


# ------------------------------------------------------------ densities and sampling
def slab_log_density(prior: Prior | str | PriorSpec, w: np.ndarray) -> np.ndarray:
    """``log G(w)`` for groups ``w`` of shape ``(..., d)``.

    ``ss-ig``: Gaussian. ``ss-gl``: the closed form
    ``G(w) = kappa^d exp(-(kappa/sigma_0)||w||_2) / (sigma_0^d 2^d pi^((d-1)/2) Gamma((d+1)/2))``.
    ``ss-ghs``: the one-dimensional mixture integral over ``tau``, by the trapezoid rule in
    ``log tau`` (``+inf`` at ``w = 0``, where the horseshoe density has its pole).
    """
    spec = as_prior_spec(prior)
    w = check_real_array("w", w)
    if w.ndim == 0:
        w = w[None]
    d = w.shape[-1]
    sq = np.sum(w * w, axis=-1)
    s0 = spec.sigma_0
    if spec.prior is Prior.SS_IG:
        return -0.5 * sq / s0**2 - d * (np.log(s0) + 0.5 * _LOG_2PI)
    if spec.prior is Prior.SS_GL:
        k = spec.kappa
        norm = d * np.log(k / s0) - d * _LOG2 - 0.5 * (d - 1) * np.log(np.pi)
        return norm - special.gammaln(0.5 * (d + 1)) - (k / s0) * np.sqrt(sq)
    # horseshoe: log of int N(w; 0, v(tau) I) p(tau) dtau over u = log tau by the trapezoid
    # rule (step 0.01 on [-60, 60]; exponentially accurate for this smooth, decaying
    # integrand); the density is infinite at w = 0
    u = np.arange(-60.0, 60.0 + 1e-9, 0.01)
    tau2 = np.exp(2.0 * u)
    var = _variance_range(spec, tau2)[0]
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


def sample_slab(
    prior: Prior | str | PriorSpec, d: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """``size`` independent groups of ``d`` coordinates from the slab, shape ``(size, d)``."""
    spec = as_prior_spec(prior)
    d = check_integer("d", d)
    size = check_integer("size", size)
    z = rng.standard_normal((size, d))
    if spec.prior is Prior.SS_IG:
        return spec.sigma_0 * z
    if spec.prior is Prior.SS_GL:
        tau2 = rng.gamma(shape=0.5 * (d + 1), scale=2.0 / spec.kappa**2, size=size)
    else:
        tau = np.abs(rng.standard_cauchy(size))
        tau2 = tau * tau
    var = _variance_range(spec, tau2)[0]
    return np.sqrt(var)[:, None] * z


def mixture_variance(spec: PriorSpec, tau2: np.ndarray) -> np.ndarray:
    """Conditional variance of one coordinate given ``tau^2`` (for Monte Carlo checks)."""
    return _variance_range(spec, np.asarray(tau2, dtype=np.float64))[0]
