"""Slab priors: hyperparameters (``PriorSpec``), densities, samplers, Lemma L2 (small-ball mass).

Each function validates its arguments and asks the family's slab (:mod:`ssbnn_theory.slabs`,
one class per family, found through :data:`ssbnn_theory.slabs.SLABS`).

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

from ssbnn_theory.enums import Prior, parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.slabs import SLABS, Slab, SmallBall, slab_of
from ssbnn_theory.validation import check_integer, check_real, check_real_array

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

# range of every scale hyperparameter: beyond it the bounds' float64 terms (B^2 / sigma^2,
# log of the scale masses) leave the range where they are computed to full accuracy
_HYPER_MIN, _HYPER_MAX = 1e-8, 1e8

ENGINE_GLOBAL_SCALE = math.sqrt(1e-5)
"""The engine's SS-GHS global scale ``g_0`` (``simulations.ModelConfig.global_scale``)."""
ENGINE_SLAB_WIDTH = 1.0
"""The engine's SS-GHS slab width ``c`` (``simulations.ModelConfig.slab_width``)."""


def _slab_width_families() -> str:
    return " or ".join(repr(f.value) for f, slab in SLABS.items() if slab.takes_slab_width)


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
        slab = slab_of(prior)
        object.__setattr__(self, "prior", prior)
        for name in ("sigma_0", "kappa", "global_scale"):
            value = check_real(name, getattr(self, name), lower=_HYPER_MIN, upper=_HYPER_MAX)
            object.__setattr__(self, name, value)
        width = self.slab_width
        if isinstance(width, str) and width == "engine":
            width = ENGINE_SLAB_WIDTH if slab.takes_slab_width else None
        elif width is not None:
            if not slab.takes_slab_width:
                allowed = f"None unless prior is {_slab_width_families()}"
                raise InvalidParameterError("slab_width", allowed, self.slab_width)
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
        return self.slab.label(self, out)

    @property
    def slab(self) -> Slab:
        """The family's slab (:mod:`ssbnn_theory.slabs`)."""
        return slab_of(self.prior)

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
            slab_width=config.slab_width if slab_of(family).takes_slab_width else None,  # type: ignore[attr-defined]
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


def _mixture(spec: PriorSpec) -> Slab:
    """The slab of a scale-mixture family (an error for the others)."""
    slab = spec.slab
    if not slab.mixture:
        allowed = " or ".join(repr(f.value) for f, s in SLABS.items() if s.mixture)
        raise InvalidParameterError("prior", f"{allowed} (a scale mixture)", spec.prior.value)
    return slab


# --------------------------------------------------------------------------- scale laws
def log_scale_mass(prior: Prior | str | PriorSpec, t: np.ndarray | float, d: int) -> np.ndarray:
    """A lower bound on ``log P(tau^2 in [t, 2t])`` for the slab's local scale (exact up to rounding
    where the incomplete gamma functions do not underflow).

    ``ss-gl``: ``tau^2 ~ Gamma((d+1)/2, rate kappa^2/2)``; ``ss-ghs``: ``tau ~ C+(0, 1)``.
    """
    spec = as_prior_spec(prior)
    t = check_real_array("t", t, lower=0.0, lower_open=True)
    d = check_integer("d", d)
    return scale_log_mass(spec, t, np.float64(d), closed_form=False)


def scale_log_mass(spec: PriorSpec, t: np.ndarray, d: np.ndarray, closed_form: bool) -> np.ndarray:
    """Unvalidated kernel of :func:`log_scale_mass` (lower bound on log P(tau^2 in [t, 2t]))."""
    return _mixture(spec).log_scale_mass(spec, t, d, closed_form)


# ------------------------------------------------------------------------ L2 objective
def mixture_conditional(
    spec: PriorSpec, t: np.ndarray, ball: SmallBall, closed_form: bool
) -> np.ndarray:
    """The conditional part of the L2 bound: ``-r log inf_v P(|N(0,v) - B| <= delta)``."""
    return _mixture(spec).mixture_conditional(spec, t, ball, closed_form)


def optimal_log_t(
    spec: PriorSpec, log_delta: np.ndarray, bound: np.ndarray, r: np.ndarray, d: np.ndarray
) -> np.ndarray:
    """Numerical minimiser (golden section in ``log t``) of the sharp L2 objective, broadcast.

    The bracket is ``[log t_cf - 20, log t_cf + 10]`` around the closed-form choice; any
    ``t`` gives a valid bound, the search only makes it smaller.
    """
    return _mixture(spec).optimal_log_t(spec, SmallBall(log_delta, bound, r, d))


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
    ball = SmallBall(np.log(delta), bound, np.float64(r_), np.float64(d_))
    return spec.slab.small_ball_phi(spec, ball, closed_form=closed_form)


# ----------------------------------------------------------------------- slab tails
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
    return spec.slab.log_tail(spec, log_bound, d)


def slab_tail_log_bound_inverse(spec: PriorSpec, y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``log B`` with ``log G(||w||_inf > B) <= y`` (``-inf``: ``B = 0`` already suffices).

    Closed-form or monotone-Newton inversions of explicit tail bounds (docs/theory.md, 3.4),
    valid for any ``y`` (the bound itself may be far beyond float range, hence ``log B``).
    """
    return spec.slab.tail_log_bound_inverse(spec, y, d)


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
    return spec.slab.log_density(spec, w)


def sample_slab(
    prior: Prior | str | PriorSpec, d: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """``size`` independent groups of ``d`` coordinates from the slab, shape ``(size, d)``."""
    spec = as_prior_spec(prior)
    d = check_integer("d", d)
    size = check_integer("size", size)
    return spec.slab.sample(spec, d, size, rng)


def mixture_variance(spec: PriorSpec, tau2: np.ndarray) -> np.ndarray:
    """Conditional variance of one coordinate given ``tau^2`` (for Monte Carlo checks)."""
    return spec.slab.variance_range(spec, np.asarray(tau2, dtype=np.float64))[0]
