"""The slab protocol, and the Lemma L2 machinery shared by the scale-mixture slabs.

A prior family is one :class:`Slab` class (one module of :mod:`ssbnn_theory.slabs`) and one
line of the registry :data:`ssbnn_theory.slabs.SLABS`; :class:`~ssbnn_theory.PriorSpec`
holds the hyperparameters and every function of :mod:`ssbnn_theory.priors`, ``rates`` and
``symbolic`` asks the family's slab (docs/architecture.md, "Adding a prior family").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

import numpy as np

from ssbnn_theory._numerics import golden_section_argmin, log_normal_box
from ssbnn_theory.enums import Prior

if TYPE_CHECKING:
    from ssbnn_theory.priors import PriorSpec

__all__ = [
    "ScaleMixtureSlab",
    "Slab",
    "SmallBall",
    "least_lognormal_gamma_kl",
    "symbolic_mixture_phi",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
_LOG_4PI = float(np.log(4.0 * np.pi))
_LOG_2_OVER_PI = float(np.log(2.0 / np.pi))
_LOG2 = float(np.log(2.0))
_SQRT2 = float(np.sqrt(2.0))
_LOG_2PI_M = math.log(2.0 * math.pi)  # as math computes it (the variational-gap terms)

# golden-section iterations over log t (bracket width 30 -> 30 * 0.618^28 < 1e-4; the
# objective is flat at its minimum, so its value is within ~1e-8 of the minimum)
_T_ITERATIONS = 28
_T_BRACKET = (-20.0, 10.0)


class SmallBall(NamedTuple):
    """The question of Lemma L2, as broadcasting arrays: the mass of ``r`` of a group's ``d``
    coordinates in boxes of half-width ``delta`` around centres ``|w*_i| <= B``."""

    log_delta: np.ndarray
    """``log delta`` (may underflow: ``delta`` itself is never formed from it first)."""
    bound: np.ndarray
    """``B >= 0``."""
    r: np.ndarray
    """Constrained coordinates ``r``."""
    d: np.ndarray
    """Group size ``d >= r``."""


class Slab(Protocol):
    """What the theory asks of a slab family ``G`` (docs/theory.md, sections 2 and 3).

    Methods take the :class:`~ssbnn_theory.PriorSpec` (family and hyperparameters) and
    validated numpy arrays; the public, validated entry points are in
    :mod:`ssbnn_theory.priors`.
    """

    family: ClassVar[Prior]
    """The family's member of :class:`ssbnn_theory.Prior` (its value names it everywhere)."""
    display: ClassVar[str]
    """Name in figures and reports, e.g. ``"SS-GL"``."""
    color: ClassVar[str]
    """Colour of the family in every figure (:mod:`ssbnn_theory.style`)."""
    marker: ClassVar[str]
    """matplotlib marker of the family."""
    mixture: ClassVar[bool]
    """Whether ``G`` is a scale mixture (L2 then optimises the scale value ``t``)."""
    takes_slab_width: ClassVar[bool]
    """Whether ``PriorSpec.slab_width`` applies (``"engine"`` resolves to the engine's)."""

    def label(self, spec: PriorSpec, out: str) -> str:
        """Short label with the hyperparameters that matter (``out``: the output-slab note)."""
        ...

    def math_hyperparameters(self, spec: PriorSpec) -> list[str]:
        """The family's hyperparameters beyond ``sigma_0`` in matplotlib math text (figures)."""
        ...

    def variance_range(self, spec: PriorSpec, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conditional variance of a coordinate at ``tau^2 = t`` and ``2t``."""
        ...

    def small_ball_phi(self, spec: PriorSpec, ball: SmallBall, *, closed_form: bool) -> np.ndarray:
        """Lemma L2: ``-log inf_{|w*_i| <= B} G(|w_i - w*_i| <= delta, i = 1..r)`` bound."""
        ...

    def log_tail(self, spec: PriorSpec, log_bound: np.ndarray, d: np.ndarray) -> np.ndarray:
        """An upper bound on ``log G(||w||_inf > B)`` from ``log B`` (Lemma L4)."""
        ...

    def tail_log_bound_inverse(self, spec: PriorSpec, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        """``log B`` with ``log G(||w||_inf > B) <= y`` (``-inf``: ``B = 0`` suffices)."""
        ...

    def log_density(self, spec: PriorSpec, w: np.ndarray) -> np.ndarray:
        """``log G(w)`` for groups ``w`` of shape ``(..., d)``."""
        ...

    def sample(self, spec: PriorSpec, d: int, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` groups of ``d`` coordinates, shape ``(size, d)``."""
        ...

    def symbolic_phi(
        self, spec: PriorSpec, delta: Any, bound: Any, r: Any, d: Any, num: Any
    ) -> Any:
        """The closed-form L2 bound as a sympy expression (``num``: a float to sympy)."""
        ...


class ScaleMixtureSlab:
    """Base of the scale-mixture slabs ``w | tau^2 ~ N(0, v(tau^2) I_d)``: the sharp L2 bound

    ``phi <= -log P(tau^2 in [t,2t]) - r log min_{v in {v(t), v(2t)}} P(|N(0,v) - B| <= delta)``

    for any ``t > 0``, minimised over ``t`` (or at the closed-form ``t``). A subclass gives
    :meth:`log_scale_mass`, :meth:`closed_form_log_t`, :meth:`variance_range` and
    :meth:`sample_scale` (and the rest of :class:`Slab`); ``takes_slab_width`` is false unless
    the subclass says otherwise.
    """

    mixture = True
    takes_slab_width = False

    def log_scale_mass(
        self, spec: PriorSpec, t: np.ndarray, d: np.ndarray, closed_form: bool
    ) -> np.ndarray:
        """A lower bound on ``log P(tau^2 in [t, 2t])``."""
        raise NotImplementedError

    def closed_form_log_t(self, spec: PriorSpec, ball: SmallBall) -> np.ndarray:
        """The closed-form ``log t`` of L2 (docs/theory.md, 3.2)."""
        raise NotImplementedError

    def variance_range(self, spec: PriorSpec, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sample_scale(
        self, spec: PriorSpec, d: int, size: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``size`` draws of ``tau^2``."""
        raise NotImplementedError

    def sample(self, spec: PriorSpec, d: int, size: int, rng: np.random.Generator) -> np.ndarray:
        """``z sqrt(v(tau^2))`` with ``z ~ N(0, I_d)`` drawn first, then ``tau^2``."""
        z = rng.standard_normal((size, d))
        tau2 = self.sample_scale(spec, d, size, rng)
        var = self.variance_range(spec, tau2)[0]
        return np.sqrt(var)[:, None] * z

    def mixture_conditional(
        self, spec: PriorSpec, t: np.ndarray, ball: SmallBall, closed_form: bool
    ) -> np.ndarray:
        """The conditional part of the bound: ``-r log inf_v P(|N(0,v) - B| <= delta)`` over
        ``v`` in ``[v(t), v(2t)]`` (``ball.d`` is not used)."""
        log_delta, bound, r, _ = ball
        delta = np.exp(log_delta)
        v_lo, v_hi = self.variance_range(spec, t)
        if closed_form:
            # density on the box >= (2 pi v_hi)^(-1/2) exp(-(B+delta)^2 / (2 v_lo)), v_hi <= 2 v_lo
            return r * (
                0.5 * (_LOG_4PI + np.log(v_lo))
                - _LOG2
                - log_delta
                + (bound + delta) ** 2 / (2 * v_lo)
            )
        # the interval mass is unimodal in the variance, so its infimum is at an endpoint
        lo_sd, hi_sd = np.sqrt(v_lo), np.sqrt(v_hi)
        at_lo = log_normal_box(bound / lo_sd, delta / lo_sd, log_delta - np.log(lo_sd))
        at_hi = log_normal_box(bound / hi_sd, delta / hi_sd, log_delta - np.log(hi_sd))
        return -r * np.minimum(at_lo, at_hi)

    def mixture_phi(
        self,
        spec: PriorSpec,
        log_t: np.ndarray,
        ball: SmallBall,
        closed_form: bool,
    ) -> np.ndarray:
        """``-log P(tau^2 in [t,2t]) - r log inf_{v in [v(t), v(2t)]} P(|N(0,v) - B| <= delta)``."""
        t = np.exp(log_t)
        return self.mixture_conditional(spec, t, ball, closed_form) - self.log_scale_mass(
            spec, t, ball.d, closed_form
        )

    def optimal_log_t(self, spec: PriorSpec, ball: SmallBall) -> np.ndarray:
        """Numerical minimiser (golden section in ``log t``) of the sharp L2 objective.

        The bracket is ``[log t_cf - 20, log t_cf + 10]`` around the closed-form choice; any
        ``t`` gives a valid bound, the search only makes it smaller.
        """
        ball = SmallBall(*np.broadcast_arrays(*ball))
        center = self.closed_form_log_t(spec, ball)

        def objective(log_t: np.ndarray) -> np.ndarray:
            return self.mixture_phi(spec, log_t, ball, closed_form=False)

        return golden_section_argmin(
            objective, center + _T_BRACKET[0], center + _T_BRACKET[1], _T_ITERATIONS
        )

    def small_ball_phi(self, spec: PriorSpec, ball: SmallBall, *, closed_form: bool) -> np.ndarray:
        """The sharp (or closed-form) bound at the optimal (or closed-form) ``t``."""
        if closed_form:
            log_t = self.closed_form_log_t(spec, ball)
        else:
            log_t = self.optimal_log_t(spec, ball)
        return self.mixture_phi(spec, log_t, ball, closed_form)


def symbolic_mixture_phi(v_lo: Any, delta: Any, bound: Any, r: Any) -> Any:
    """The conditional part of the closed-form L2 bound of a scale mixture, as a sympy
    expression: ``r [log(sqrt(4 pi v(t))/(2 delta)) + (B+delta)^2/(2 v(t))]``."""
    import sympy

    return r * (
        (sympy.log(4 * sympy.pi) + sympy.log(v_lo)) / 2
        - sympy.log(2)
        - sympy.log(delta)
        + (delta + bound) ** 2 / (2 * v_lo)
    )


def least_lognormal_gamma_kl(alpha: float) -> float:
    """The least KL of a LogNormal against ``Gamma(alpha, beta)`` (any ``beta``; the same
    against an inverse Gamma): ``log Gamma(alpha) - (alpha - 1/2) log alpha + alpha -
    log(2 pi)/2``, at ``sigma^2 = 1/alpha``."""
    return math.lgamma(alpha) - (alpha - 0.5) * math.log(alpha) + alpha - 0.5 * _LOG_2PI_M
