"""Assembly of the variational contraction rate (docs/theory.md, section 4), and comparison rates.

For a truth in the architecture's class (``s_l`` active nodes, bounds ``B_l``)::

    eta_n   = sigma sqrt(T / n),               T = sum_l s_l r_l
    delta_n = delta*(eta_n)                                        (Lemma L1)
    n r_n   = max( L3 + sum_{l=1}^{L+1} s_l phi_l(delta_n, B_l),  n eta_n^2 / (2 sigma^2) )
    eps_n   = sqrt(r_n) (log n)^kappa_log
    risk    = C1 eps_n^2 + C2 (r_n + xi_n),   C1 = C2 = 1 ("up to universal constants")

``sigma`` is the likelihood's KL scale: ``sigma_e`` (Gaussian), 2 (Bernoulli, logistic link),
1 (categorical, softmax link), so that ``KL(p_f* || p_f) <= ||f - f*||_inf^2 / (2 sigma^2)``
(docs/theory.md, section 4.6). ``-log Pi(||f_theta - f_theta*||_inf <= eta_n) <= n r_n``
holds exactly (a bound, not an order), since the box of half-width ``delta_n`` around
``theta*`` lies in that ball. ``eps_n^2`` bounds a squared Hellinger distance, which never
exceeds 1: the bound says something only where ``eps_n^2 < 1``, from ``n_informative`` on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ssbnn_theory.architecture import Architecture
from ssbnn_theory.entropy import (
    choose_sieve,
    covering_terms,
    mixed_sieve_entropy,
    outside_mass_kernel,
)
from ssbnn_theory.enums import Likelihood, Prior, parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.lipschitz import arch_network
from ssbnn_theory.priors import (
    PriorSpec,
    as_prior_spec,
    mixture_conditional,
    optimal_log_t,
    scale_log_mass,
)
from ssbnn_theory.selection import edge_kernel, reference_kernel, selection_terms, theory_kernel
from ssbnn_theory.slabs import SmallBall
from ssbnn_theory.validation import check_real, check_real_array

__all__ = [
    "DEFAULT_KAPPA_LOG",
    "N_MAX",
    "RISK_LABEL",
    "Condition",
    "ContractionRate",
    "EdgeRate",
    "contraction_rate",
    "dense_rate",
    "edge_sparse_rate",
    "hellinger_factor",
    "kl_scale",
    "local_slope",
    "n_for_eps2",
]

RISK_LABEL = "up to universal constants: C1 eps_n^2 + C2 (r_n + xi_n) with C1 = C2 = 1"

DEFAULT_KAPPA_LOG = 1.5
"""Default exponent of ``log n`` in ``eps_n``: above 1, as the standard argument needs
(docs/theory.md, section 4.2, "log exponent"); 1 and below are flagged."""

N_MAX = 1e30
"""Largest ``n`` searched by :func:`n_for_eps2` (``n_informative`` is ``None`` beyond it)."""

# largest kappa_log accepted: (log 1e30)^(2 * 10) ~ 2e36 keeps eps_n^2 far inside float range
_KAPPA_LOG_MAX = 10.0

# the sharp L2 bound minimises over t at this many values of log delta; each delta_n uses
# its nearest node's t (any t gives a valid bound; docs/theory.md, section 4.1)
_T_NODES = 12


# ------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Condition:
    """One condition of the contraction theorem, checked at every ``n``.

    ``holds[i]`` is ``lhs[i] <= rhs[i]``; ``verdict`` says it in words over the ``n`` grid.
    """

    name: str
    statement: str
    layer: int | None
    n: np.ndarray
    lhs: np.ndarray
    rhs: np.ndarray
    holds: np.ndarray
    verdict: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "name": self.name,
            "statement": self.statement,
            "layer": self.layer,
            "lhs": _jsonable(self.lhs),
            "rhs": _jsonable(self.rhs),
            "holds": [bool(h) for h in self.holds],
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class ContractionRate:
    """Every term of the contraction-rate bound for one architecture and prior, over ``n``.

    Arrays have ``n`` on the first axis; per-layer arrays have ``L`` (hidden layers:
    ``selection``, inclusion probabilities) or ``L+1`` (every layer: ``slab``,
    ``resolution``, ``magnitude``) columns. See docs/theory.md, section 4.
    """

    architecture: Architecture
    prior: PriorSpec
    n: np.ndarray
    sigma_e: float | None
    likelihood: str
    kl_scale: float
    kappa_log: float
    C_lambda: float
    closed_form: bool
    inclusion: str
    coordinates: int
    eta: np.ndarray
    delta: np.ndarray
    log_lipschitz: float
    log_inv_inclusion: np.ndarray
    inclusion_theory: np.ndarray
    inclusion_reference: np.ndarray
    inclusion_edge: np.ndarray
    selection: np.ndarray
    slab: np.ndarray
    resolution: np.ndarray
    magnitude: np.ndarray
    noise_floor: np.ndarray
    n_r_n: np.ndarray
    r_n: np.ndarray
    eps_n: np.ndarray
    xi_n: np.ndarray
    risk_bound: np.ndarray
    dominant: tuple[str, ...]
    dominant_per_layer: tuple[tuple[str, ...], ...]
    sieve_active: np.ndarray
    sieve_log_bounds: np.ndarray
    sieve_entropy: np.ndarray
    conditions: tuple[Condition, ...] = field(default=())

    @property
    def eps2(self) -> np.ndarray:
        """``eps_n^2``."""
        return self.eps_n**2

    @property
    def inclusion_prob(self) -> np.ndarray:
        """Inclusion probabilities used, ``lambda_l = exp(-log_inv_inclusion)`` (may underflow)."""
        with np.errstate(under="ignore"):
            return np.exp(-self.log_inv_inclusion)

    def _settings(self) -> dict[str, object]:
        """Keyword arguments of :func:`contraction_rate` that reproduce this result's settings."""
        return {
            "sigma_e": self.sigma_e,
            "likelihood": self.likelihood,
            "kappa_log": self.kappa_log,
            "C_lambda": self.C_lambda,
            "closed_form": self.closed_form,
            "inclusion": self._inclusion_argument(),
        }

    def local_slope(self) -> np.ndarray:
        """``d log eps_n^2 / d log n`` at each ``n`` (:func:`local_slope`, same settings)."""
        return local_slope(self.architecture, self.prior, self.n, **self._settings())

    def _inclusion_argument(self) -> str | np.ndarray:
        if self.inclusion in ("theory", "reference"):
            return self.inclusion
        if self.log_inv_inclusion.shape[0] > 1 and not np.all(
            self.log_inv_inclusion == self.log_inv_inclusion[:1]
        ):
            return self.inclusion_prob
        return self.inclusion_prob[0]

    def n_for_eps2(self, target: float) -> float | None:
        """The ``n`` from which ``eps_n^2 < target`` (:func:`n_for_eps2`, same settings).

        ``None`` when ``eps_n^2 >= target`` still at :data:`N_MAX`, or when the inclusion
        probabilities were given per ``n`` (they cannot be extended to other ``n``).
        """
        settings = self._settings()
        inclusion = settings["inclusion"]
        if isinstance(inclusion, np.ndarray) and inclusion.ndim > 1:
            return None
        return n_for_eps2(self.architecture, self.prior, target, **settings)

    def failures(self, *, theorem_only: bool = True) -> tuple[tuple[str, ...], ...]:
        """Per ``n``, the names of the conditions that fail there.

        ``theorem_only`` (default) keeps the conditions of the contraction theorem itself
        (sieve entropy, sieve remainder, sieve sizes, log exponent): where one fails, ``eps_n``
        is not a proven contraction rate. The ``lambda_l`` order checks are left out.
        """
        rows: list[tuple[str, ...]] = []
        for i in range(self.n.size):
            names = [
                c.name
                for c in self.conditions
                if not c.holds[i] and not (theorem_only and c.name.startswith("lambda_"))
            ]
            rows.append(tuple(names))
        return tuple(rows)

    @cached_property
    def n_informative(self) -> float | None:
        """Smallest ``n`` (``>= e``) from which ``eps_n^2 < 1``; ``None`` beyond :data:`N_MAX`.

        A squared Hellinger distance never exceeds 1, so the bound is vacuous for smaller
        ``n`` (docs/theory.md, section 4.1). Computed on first access (a root search over
        ``log n``, :func:`n_for_eps2`), then cached.
        """
        return self.n_for_eps2(1.0)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary (lists, floats; non-finite values become ``None``)."""
        with np.errstate(under="ignore"):
            theory_prob = np.exp(-self.inclusion_theory)
            ref_prob = np.exp(-self.inclusion_reference)
            edge_prob = np.exp(-self.inclusion_edge)
        return {
            "prior": self.prior.to_dict(),
            "architecture": self.architecture.to_dict(),
            "n": _jsonable(self.n),
            "likelihood": self.likelihood,
            "sigma_e": self.sigma_e,
            "kl_scale": self.kl_scale,
            "kappa_log": self.kappa_log,
            "n_informative": self.n_informative,
            "C_lambda": self.C_lambda,
            "variant": "closed_form" if self.closed_form else "sharp",
            "r_n": _jsonable(self.r_n),
            "eps_n": _jsonable(self.eps_n),
            "eps2": _jsonable(self.eps2),
            "xi_n": _jsonable(self.xi_n),
            "risk_bound": {
                "value": _jsonable(self.risk_bound),
                "C1": 1.0,
                "C2": 1.0,
                "label": RISK_LABEL,
            },
            "inclusion_prob": {
                "used": self.inclusion,
                "lambda": _jsonable(self.inclusion_prob),
                "log_inv_lambda": _jsonable(self.log_inv_inclusion),
                "theory": _jsonable(theory_prob),
                "theory_log_inv_lambda": _jsonable(self.inclusion_theory),
                "reference": _jsonable(ref_prob),
                "reference_log_inv_lambda": _jsonable(self.inclusion_reference),
                "edge_bai": _jsonable(edge_prob),
            },
            "terms": {
                "coordinates_T": self.coordinates,
                "eta_n": _jsonable(self.eta),
                "delta_n": _jsonable(self.delta),
                "log_lipschitz": self.log_lipschitz,
                "selection": _jsonable(self.selection),
                "slab": _jsonable(self.slab),
                "slab_resolution": _jsonable(self.resolution),
                "slab_magnitude": _jsonable(self.magnitude),
                "noise_floor": _jsonable(self.noise_floor),
                "n_r_n": _jsonable(self.n_r_n),
                "dominant": list(self.dominant),
                "dominant_per_layer": [list(row) for row in self.dominant_per_layer],
            },
            "sieve": {
                "active": _jsonable(self.sieve_active),
                "log_bounds": _jsonable(self.sieve_log_bounds),
                "entropy": _jsonable(self.sieve_entropy),
            },
            "conditions": [c.to_dict() for c in self.conditions],
        }


@dataclass(frozen=True)
class EdgeRate:
    """Bai, Song & Cheng (2020) edge-sparse rate for the same network (docs/theory.md, 4.3).

    ``r_n = ((L+1) s / n) log N + (s / n) log(p sqrt(n / s))`` with ``s`` the edge count of
    the active subnetwork and ``N = max_l k_l``; ``eps_n = sqrt(r_n) (log n)^kappa_log``.
    """

    n: np.ndarray
    edges: int
    width: int
    r_n: np.ndarray
    eps_n: np.ndarray

    @property
    def eps2(self) -> np.ndarray:
        """``eps_n^2``."""
        return self.eps_n**2

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "n": _jsonable(self.n),
            "edges_s": self.edges,
            "width_N": self.width,
            "r_n": _jsonable(self.r_n),
            "eps_n": _jsonable(self.eps_n),
        }


def _jsonable(x: np.ndarray | float) -> object:
    arr = np.asarray(x, dtype=np.float64)
    obj = np.where(np.isfinite(arr), arr, np.nan).astype(object)
    obj[~np.isfinite(arr)] = None
    return obj.tolist()


# -------------------------------------------------------------------- validation
def _check_n(n: object) -> np.ndarray:
    arr = check_real_array("n", n, lower=1.0, lower_open=True)
    return np.atleast_1d(arr).astype(np.float64).ravel()


def _inclusion_log_inv(
    arch: Architecture, n: np.ndarray, inclusion: object, theory: np.ndarray, reference: np.ndarray
) -> tuple[str, np.ndarray]:
    if isinstance(inclusion, str):
        key = inclusion.strip().lower()
        if key == "theory":
            return "theory", theory
        if key == "reference":
            return "reference", reference
        raise InvalidParameterError(
            "inclusion",
            "'theory', 'reference' or probabilities in (0, 1), one per layer",
            inclusion,
        )
    lam = check_real_array(
        "inclusion", inclusion, lower=0.0, upper=1.0, lower_open=True, upper_open=True
    )
    if lam.ndim == 0:
        lam = np.full(arch.depth, float(lam))
    if lam.shape not in ((arch.depth,), (n.size, arch.depth)):
        raise InvalidParameterError(
            "inclusion", f"one probability per hidden layer ({arch.depth})", lam.tolist()
        )
    return "user", np.broadcast_to(-np.log(lam), (n.size, arch.depth)).copy()


# ------------------------------------------------------------------------ slab
def _mixture_per_group(
    spec: PriorSpec, log_delta: np.ndarray, b: np.ndarray, r: np.ndarray, d: np.ndarray
) -> np.ndarray:
    """Sharp L2 bound of a scale-mixture slab for every ``n`` (rows) and layer (columns).

    ``t`` is optimised (golden section) at ``_T_NODES`` values of ``log delta`` spanning the
    ``delta_n`` and each ``delta_n`` uses the ``t`` of its nearest node: any ``t`` gives a
    valid bound, the optimum moves slowly with ``delta``, and ``log P(tau^2 in [t, 2t])``
    is then needed at the nodes only (docs/theory.md, section 4.1).
    """
    lo, hi = float(np.min(log_delta)), float(np.max(log_delta))
    if log_delta.size <= _T_NODES or hi - lo < 1e-12:
        nodes, idx = log_delta, np.arange(log_delta.size)
    else:
        nodes = np.linspace(lo, hi, _T_NODES)
        idx = np.rint((log_delta - lo) / (hi - lo) * (_T_NODES - 1)).astype(np.int64)
    log_t = optimal_log_t(spec, nodes[:, None], b, r, d)
    t = np.exp(log_t)
    mass = scale_log_mass(spec, t, d, closed_form=False)
    ball = SmallBall(log_delta[:, None], b, r, d)
    cond = mixture_conditional(spec, t[idx], ball, closed_form=False)
    return cond - mass[idx]


def _slab_per_coordinate_group(
    spec: PriorSpec,
    log_delta: np.ndarray,
    b: np.ndarray,
    r: np.ndarray,
    d: np.ndarray,
    closed: bool,
) -> np.ndarray:
    """``phi_l(delta_n, B_l)`` for every ``n`` (rows) and layer (columns); equal layers once."""
    unique, inverse = np.unique(np.stack([b, r, d], axis=1), axis=0, return_inverse=True)
    ub, ur, ud = unique[:, 0], unique[:, 1], unique[:, 2]
    if not spec.slab.mixture or closed:
        ball = SmallBall(log_delta[:, None], ub, ur, ud)
        phi = spec.slab.small_ball_phi(spec, ball, closed_form=closed)
    else:
        phi = _mixture_per_group(spec, log_delta, ub, ur, ud)
    return phi[:, inverse.ravel()]


# --------------------------------------------------------------------- verdicts
def _fmt_n(x: float) -> str:
    return f"{x:.0f}" if x < 1e7 and float(x).is_integer() else f"{x:.3g}"


def _verdict(n: np.ndarray, holds: np.ndarray) -> str:
    if np.all(holds):
        return "holds for every n in the grid"
    if not np.any(holds):
        return "fails for every n in the grid"
    order = np.argsort(n)
    h = holds[order]
    ns = n[order]
    first = int(np.argmax(h))
    if np.all(h[first:]):
        return f"holds for n >= {_fmt_n(ns[first])} (fails below)"
    last = len(h) - 1 - int(np.argmax(h[::-1]))
    if np.all(h[: last + 1]):
        return f"holds for n <= {_fmt_n(ns[last])} (fails above)"
    return f"holds for {int(np.sum(h))} of {len(h)} values of n"


def _ratio_note(n: np.ndarray, lhs: np.ndarray, rhs: np.ndarray) -> str:
    """``; ratio lhs/rhs from a to b, <trend> in n`` (the theorem allows any constant in n)."""
    order = np.argsort(n)
    ratio = (lhs / rhs)[order]
    if ratio.size > 1 and np.all(np.diff(ratio) <= 0):
        trend = "nonincreasing in n"
    elif ratio.size > 1 and np.all(np.diff(ratio) >= 0):
        trend = "increasing in n"
    else:
        trend = "not monotone in n" if ratio.size > 1 else "at one n"
    return f"; ratio {np.min(ratio):.3g} to {np.max(ratio):.3g} ({trend})"


def _conditions(
    arch: Architecture,
    spec: PriorSpec,
    n: np.ndarray,
    n_r_n: np.ndarray,
    eps2: np.ndarray,
    slab: np.ndarray,
    log_inv: np.ndarray,
    kappa_log: float,
    sieve: dict[str, np.ndarray],
) -> tuple[Condition, ...]:
    """The theorem's conditions at every ``n`` (docs/theory.md, section 4.2)."""
    n_eps2 = n * eps2
    entropy = np.sum(sieve["pattern"], axis=-1) + np.sum(sieve["grid"], axis=-1)
    entropy_ok = entropy <= n_eps2
    entropy_verdict = _verdict(n, entropy_ok) + _ratio_note(n, entropy, n_eps2)
    at_bounds = np.sum(sieve["pattern"], axis=-1) + np.sum(sieve["grid_at_bounds"], axis=-1)
    if np.any(~entropy_ok & (at_bounds <= n_eps2)):
        worst = float(np.max(sieve["log_bbar"]))
        entropy_verdict += (
            "; at the truth's bounds it would hold: the slab's tails need weight bounds up to "
            f"Bbar = e^{worst:.3g}"
        )
        if spec.slab.takes_slab_width and spec.slab_width is None:
            entropy_verdict += (
                " (Cauchy-like tails; a slab_width, the regularised horseshoe, fixes it)"
            )
    outside_ok = sieve["log_outside"] <= sieve["log_budget"] * (1.0 - 1e-12)
    out: list[Condition] = [
        Condition(
            "prior concentration",
            "-log Pi(||f_theta - f_theta*||_inf <= eta_n) <= n r_n",
            None,
            n,
            n_r_n,
            n_r_n,
            np.ones(n.size, dtype=bool),
            "holds by construction (n r_n is this bound)",
        ),
        Condition(
            "sieve entropy",
            "log N(eps_n, F_n, ||.||_inf) <= n eps_n^2 (sieve F_n chosen from the prior's tails)",
            None,
            n,
            entropy,
            n_eps2,
            entropy_ok,
            entropy_verdict,
        ),
        Condition(
            "sieve remainder",
            "log Pi(F_n^c) <= -(n r_n + 4 n eps_n^2) (Zhang & Gao 2020, Thm 2.1, C = r_n/eps_n^2)",
            None,
            n,
            sieve["log_outside"],
            sieve["log_budget"],
            outside_ok,
            _verdict(n, outside_ok),
        ),
    ]
    a = arch.as_arrays()
    sbar = sieve["sbar"]
    k, s = a["k"][:-1], a["s"][:-1]
    active_part = s * log_inv  # s_l log(1/lambda_l)
    # (k_l - s_l) log(1/(1 - lambda_l)): L3 with s = 0 on the k - s inactive nodes
    inactive_part = selection_terms(k - s, np.zeros_like(s), log_inv)
    for layer in range(1, arch.depth + 1):
        col = layer - 1
        layer_slab = slab[:, col]
        small_ok = active_part[:, col] <= layer_slab
        verdict = _verdict(n, small_ok) + _ratio_note(n, active_part[:, col], layer_slab)
        if not np.all(small_ok):
            verdict += "; the inclusion prior adds more than this layer's slab term"
        out.append(
            Condition(
                f"lambda_{layer} not too small",
                f"s_{layer} log(1/lambda_{layer}) <= s_{layer} phi_{layer}, the slab term of "
                f"layer {layer} (the price of keeping the truth's active nodes)",
                layer,
                n,
                active_part[:, col],
                layer_slab,
                small_ok,
                verdict,
            )
        )
        large_ok = inactive_part[:, col] <= layer_slab
        verdict = _verdict(n, large_ok)
        if int(k[col]) == int(s[col]):
            verdict += " (every node of the layer is active: no price for lambda near 1)"
        else:
            verdict += _ratio_note(n, inactive_part[:, col], layer_slab)
            if not np.all(large_ok):
                verdict += (
                    "; switching off the inactive nodes costs more than this layer's slab term"
                )
        out.append(
            Condition(
                f"lambda_{layer} not too large",
                f"(k_{layer} - s_{layer}) log(1/(1 - lambda_{layer})) <= s_{layer} phi_{layer}, "
                f"the slab term of layer {layer} (the price of switching off the truth's "
                "inactive nodes)",
                layer,
                n,
                inactive_part[:, col],
                layer_slab,
                large_ok,
                verdict,
            )
        )
        layer_entropy = sieve["mixed"][:, col]
        budget = n_eps2
        size_ok = layer_entropy <= budget
        verdict = _verdict(n, size_ok) + _ratio_note(n, layer_entropy, budget)
        if not np.all(size_ok):
            verdict += (
                f"; its binomial tail forces a sieve of up to {int(np.max(sbar[:, col]))} of "
                f"{int(a['k'][col])} nodes"
            )
        out.append(
            Condition(
                f"sieve size, layer {layer}",
                f"sieve entropy with sbar_{layer} nodes in layer {layer} (the size the binomial "
                f"tail of lambda_{layer} pays for) and the true s_j elsewhere <= n eps_n^2",
                layer,
                n,
                layer_entropy,
                budget,
                size_ok,
                verdict,
            )
        )
    exponent_ok = np.full(n.size, kappa_log > 1.0)
    out.append(
        Condition(
            "log exponent",
            "kappa_log > 1 in eps_n = sqrt(r_n) (log n)^kappa_log (the standard argument "
            "takes an exponent above 1)",
            None,
            n,
            np.full(n.size, kappa_log),
            np.ones(n.size),
            exponent_ok,
            f"holds (kappa_log = {kappa_log:g})"
            if kappa_log > 1.0
            else f"fails: kappa_log = {kappa_log:g} <= 1 is outside the argument",
        )
    )
    return tuple(out)


# -------------------------------------------------------------------- assembly
def kl_scale(likelihood: Likelihood | str, sigma_e: float | None, outputs: int) -> float:
    """The ``sigma`` with ``KL(p_f* || p_f) <= ||f - f*||_inf^2 / (2 sigma^2)`` for every ``x``.

    Gaussian: ``sigma_e`` (equality for one output). Bernoulli with logit ``f``:
    ``KL <= (f - f*)^2 / 8``, so ``sigma = 2``. Categorical with ``K`` logits (softmax):
    ``KL <= range(f - f*)^2 / 8 <= ||f - f*||_inf^2 / 2``, so ``sigma = 1``. Derived in
    docs/theory.md, section 4.6; ``sigma_e`` must be ``None`` for the two classification
    likelihoods (their link fixes the scale).
    """
    lik = parse_enum(Likelihood, likelihood, "likelihood")
    if lik is Likelihood.GAUSSIAN:
        if sigma_e is None:
            return 1.0
        return check_real("sigma_e", sigma_e, lower=1e-8, upper=1e8)
    if sigma_e is not None:
        raise InvalidParameterError(
            "sigma_e",
            f"not given (None) for a {lik.value} likelihood: its link fixes the KL scale",
            sigma_e,
        )
    if lik is Likelihood.BERNOULLI:
        if outputs != 1:
            raise InvalidParameterError(
                "outputs", "1 (one logit) for a bernoulli likelihood", outputs
            )
        return 2.0
    if outputs < 2:
        raise InvalidParameterError(
            "outputs", ">= 2 (one logit per class) for a categorical likelihood", outputs
        )
    return 1.0


def hellinger_factor(likelihood: Likelihood | str, sigma: float) -> float:
    """``c`` with ``h(p_f, p_g) <= c ||f - g||_inf`` (``h^2 = 1 - int sqrt(p_f p_g)``).

    Gaussian ``N(f, sigma^2)``: ``h^2 = 1 - exp(-(f - g)^2 / (8 sigma^2))``, so
    ``c = 1 / (2 sqrt(2) sigma)``; Bernoulli: ``h^2 <= KL / 2 <= (f - g)^2 / 16``, ``c = 1/4``;
    categorical: ``h^2 <= KL / 2 <= ||f - g||_inf^2 / 4``, ``c = 1/2`` (docs/theory.md, 4.6).
    """
    lik = parse_enum(Likelihood, likelihood, "likelihood")
    if lik is Likelihood.GAUSSIAN:
        return 1.0 / (2.0 * math.sqrt(2.0) * sigma)
    return 0.25 if lik is Likelihood.BERNOULLI else 0.5


def contraction_rate(
    arch: Architecture,
    prior: Prior | str | PriorSpec,
    n: np.ndarray | float,
    sigma_e: float | None = None,
    *,
    likelihood: Likelihood | str = Likelihood.GAUSSIAN,
    kappa_log: float = DEFAULT_KAPPA_LOG,
    xi_n: np.ndarray | float = 0.0,
    inclusion: str | np.ndarray | float = "theory",
    C_lambda: float = 1.0,
    closed_form: bool = False,
    conditions: bool = True,
) -> ContractionRate:
    """The contraction rate ``eps_n`` and VB risk bound for ``arch`` under ``prior``, over ``n``.

    Parameters
    ----------
    arch
        Architecture of the truth's class (student widths ``k_l``, truth's ``s_l`` and ``B_l``).
    prior
        ``Prior``, its string, or a :class:`PriorSpec` with hyperparameters.
    n
        Sample sizes (``> 1``), a number or an array.
    sigma_e
        Known noise standard deviation ``> 0`` of the Gaussian likelihood (``None``: 1);
        must be ``None`` for ``bernoulli`` and ``categorical``.
    likelihood
        ``"gaussian"`` (default), ``"bernoulli"`` (one logit output) or ``"categorical"``
        (one logit per class, ``outputs >= 2``): sets the KL scale (:func:`kl_scale`).
    kappa_log
        Exponent of the log factor in ``eps_n = sqrt(r_n) (log n)^kappa_log`` (``>= 0``;
        default 1.5; the "log exponent" condition fails at ``<= 1``).
    xi_n
        Approximation error ``||f_theta* - f0||_inf^2`` (``0`` for a teacher in the class),
        a number or one value per ``n``.
    inclusion
        ``"theory"`` (docs/theory.md section 4.2, with ``C_lambda``), ``"reference"`` (the
        reference scripts' layer-wise formula, docs/engine.md "Layers") or the user's
        ``lambda_l`` (one per hidden layer, or ``(n, L)``).
    C_lambda
        Constant of the theory prescription.
    closed_form
        Closed-form ``delta_n`` and ``t`` (the variant the symbolic module reproduces exactly)
        instead of the sharp numerical ones (default). Both are valid bounds.
    conditions
        Also build the sieve and check the theorem's conditions.

    Returns
    -------
    ContractionRate
        Frozen result; ``to_dict()`` is JSON-ready; ``n_informative`` is the ``n`` from which
        ``eps_n^2 < 1``.
    """
    spec = as_prior_spec(prior)
    n = _check_n(n)
    lik = parse_enum(Likelihood, likelihood, "likelihood")
    sigma = kl_scale(lik, sigma_e, arch.outputs)
    if lik is Likelihood.GAUSSIAN:
        sigma_e = sigma
    kappa_log = check_real("kappa_log", kappa_log, lower=0.0, upper=_KAPPA_LOG_MAX)
    C_lambda = check_real("C_lambda", C_lambda, lower=0.0, upper=1e6)
    xi = check_real_array("xi_n", xi_n, lower=0.0, upper=1e100)
    if xi.ndim > 1 or xi.size not in (1, n.size):
        raise InvalidParameterError("xi_n", f"a number or one value per n ({n.size})", xi.tolist())
    xi = np.broadcast_to(xi.reshape(-1) if xi.ndim else xi, n.shape).astype(np.float64)
    if not isinstance(closed_form, bool):
        raise InvalidParameterError("closed_form", "true or false", closed_form)

    a = arch.as_arrays()
    log_n = np.log(n)
    coords = arch.coordinates
    network = arch_network(arch)
    log_lip = float(network.log_lambda)
    log_eta = np.log(sigma) + 0.5 * (np.log(float(coords)) - log_n)
    log_delta = network.solve(log_eta, closed_form)
    with np.errstate(under="ignore"):
        delta = np.exp(log_delta)

    theory = theory_kernel(arch, log_n, C_lambda)
    reference = reference_kernel(np.asarray(arch.widths, np.float64), log_n)
    edge = edge_kernel(arch, log_n)
    label, log_inv = _inclusion_log_inv(arch, n, inclusion, theory, reference)

    selection = selection_terms(a["k"][:-1], a["s"][:-1], log_inv)
    depth = arch.depth
    phi = np.empty((n.size, depth + 1))
    phi[:, :depth] = _slab_per_coordinate_group(
        spec, log_delta, a["B"][:-1], a["r"][:-1], a["d"][:-1], closed_form
    )
    phi[:, depth:] = _slab_per_coordinate_group(
        spec.output_spec(), log_delta, a["B"][-1:], a["r"][-1:], a["d"][-1:], closed_form
    )
    slab = a["s"] * phi
    resolution = a["s"] * a["r"] * (-log_delta)[:, None]
    magnitude = slab - resolution
    noise_floor = np.full(n.shape, 0.5 * float(coords))  # n eta_n^2 / (2 sigma^2)
    slab_total = np.sum(slab, axis=1)
    n_r_n = np.maximum(np.sum(selection, axis=1) + slab_total, noise_floor)
    r_n = n_r_n / n
    eps_n = np.sqrt(r_n) * log_n**kappa_log
    risk = eps_n**2 + r_n + xi

    dominant, per_layer = _dominance(selection, resolution, magnitude, n_r_n, noise_floor)

    if conditions:
        log_budget = -(n_r_n + 4.0 * n * eps_n**2)
        sbar, log_bbar = choose_sieve(arch, spec, log_inv, log_budget)
        # the theorem's entropy is in Hellinger distance; h <= c ||f - g||_inf with c =
        # hellinger_factor, so a sup-norm cover at eps_n / max(1, c) is a Hellinger cover at
        # eps_n (docs/theory.md, section 4.6)
        log_eps = np.log(eps_n) - math.log(max(1.0, hellinger_factor(lik, sigma)))
        pattern, grid, _ = covering_terms(arch, sbar, log_bbar, log_eps, closed_form)
        _, grid_at_bounds, log_delta_bounds = covering_terms(arch, sbar, None, log_eps, closed_form)
        sieve = {
            "sbar": sbar,
            "log_bbar": log_bbar,
            "pattern": pattern,
            "grid": grid,
            "grid_at_bounds": grid_at_bounds,
            "mixed": mixed_sieve_entropy(arch, sbar, log_delta_bounds),
            "log_outside": outside_mass_kernel(arch, spec, sbar, log_bbar, log_inv),
            "log_budget": log_budget,
        }
        conds = _conditions(arch, spec, n, n_r_n, eps_n**2, slab, log_inv, kappa_log, sieve)
        entropy = np.sum(pattern, axis=1) + np.sum(grid, axis=1)
    else:
        sbar = np.full((n.size, depth), np.nan)
        log_bbar = np.full((n.size, depth + 1), np.nan)
        entropy = np.full(n.shape, np.nan)
        conds = ()

    return ContractionRate(
        architecture=arch,
        prior=spec,
        n=n,
        sigma_e=sigma_e,
        likelihood=lik.value,
        kl_scale=sigma,
        kappa_log=kappa_log,
        C_lambda=C_lambda,
        closed_form=closed_form,
        inclusion=label,
        coordinates=coords,
        eta=np.exp(log_eta),
        delta=delta,
        log_lipschitz=log_lip,
        log_inv_inclusion=log_inv,
        inclusion_theory=theory,
        inclusion_reference=reference,
        inclusion_edge=edge,
        selection=selection,
        slab=slab,
        resolution=resolution,
        magnitude=magnitude,
        noise_floor=noise_floor,
        n_r_n=n_r_n,
        r_n=r_n,
        eps_n=eps_n,
        xi_n=xi,
        risk_bound=risk,
        dominant=dominant,
        dominant_per_layer=per_layer,
        sieve_active=sbar,
        sieve_log_bounds=log_bbar,
        sieve_entropy=entropy,
        conditions=conds,
    )


def _dominance(
    selection: np.ndarray,
    resolution: np.ndarray,
    magnitude: np.ndarray,
    n_r_n: np.ndarray,
    noise_floor: np.ndarray,
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Largest term per layer, and overall (term and layer), for every ``n``."""
    n_rows, depth = selection.shape
    names = np.array(["selection", "slab resolution", "slab magnitude"], dtype=object)
    sel = np.concatenate([selection, np.full((n_rows, 1), -np.inf)], axis=1)
    stack = np.stack([sel, resolution, magnitude], axis=-1)  # (n, L+1, 3)
    per_layer = names[np.argmax(stack, axis=-1)]
    labels = np.array(
        [f"{name}, layer {layer}" for layer in range(1, depth + 2) for name in names], dtype=object
    )
    flat = stack.reshape(n_rows, -1)
    best = np.argmax(flat, axis=1)
    overall = labels[best]
    floor = (noise_floor >= n_r_n) & (noise_floor > flat[np.arange(n_rows), best])
    overall = np.where(floor, "noise floor T/2", overall)
    return tuple(overall.tolist()), tuple(map(tuple, per_layer.tolist()))


def local_slope(
    arch: Architecture,
    prior: Prior | str | PriorSpec,
    n: np.ndarray | float,
    *,
    step: float = 0.01,
    **kwargs: object,
) -> np.ndarray:
    """``d log eps_n^2 / d log n`` by a central difference of half-width ``step`` in ``log n``.

    ``log eps_n^2`` is smooth in ``log n`` (curvature ``O(1/log^2 n)``), so the truncation
    error is ``O(step^2 / log^3 n)``; other keyword arguments go to :func:`contraction_rate`.
    """
    n = _check_n(n)
    h = check_real("step", step, lower=0.0, upper=0.5, lower_open=True)
    if np.any(n * math.exp(-h) <= 1.0):
        raise InvalidParameterError("n", f"> exp(step) = {math.exp(h):.4g} for a local slope", n)
    kwargs = dict(kwargs)
    kwargs["conditions"] = False
    up = contraction_rate(arch, prior, n * math.exp(h), **kwargs)
    down = contraction_rate(arch, prior, n * math.exp(-h), **kwargs)
    return (np.log(up.eps2) - np.log(down.eps2)) / (2.0 * h)


def n_for_eps2(
    arch: Architecture,
    prior: Prior | str | PriorSpec,
    target: float,
    *,
    n_max: float = N_MAX,
    **kwargs: object,
) -> float | None:
    """The smallest ``n >= e`` from which ``eps_n^2 < target`` (``None`` if not by ``n_max``).

    ``eps_n^2`` falls in ``n`` past a point (docs/theory.md, 4.2 (c)) but can rise first, and
    tends to 0 as ``n -> 1`` only through ``(log n)^kappa_log`` (which is why ``n < e`` is not
    searched). The search scans ``log n`` from 1 to ``log n_max`` in steps of 0.05, takes the
    *last* grid point with ``eps_n^2 >= target``, and narrows that bracket by 12-point grids
    (each evaluated exactly: at most 12 values of ``n`` per call, so the L2 ``t`` is optimised
    at every point) until it is ``1e-9`` wide in ``log n``. The result is the upper end, where
    ``eps_n^2 < target`` was verified. ``math.e`` means ``eps_n^2 < target`` on the whole
    range. Other keyword arguments go to :func:`contraction_rate` (``conditions`` is off).
    """
    target = check_real("target", target, lower=0.0, lower_open=True)
    n_max = check_real("n_max", n_max, lower=10.0, upper=1e300)
    kwargs = dict(kwargs)
    kwargs["conditions"] = False
    kwargs.pop("xi_n", None)

    def eps2(log_n: np.ndarray) -> np.ndarray:
        return contraction_rate(arch, prior, np.exp(log_n), **kwargs).eps2

    step = 0.05
    grid = np.arange(1.0, math.log(n_max) + step, step)
    grid[-1] = min(grid[-1], math.log(n_max))
    above = eps2(grid) >= target
    if above[-1]:
        return None
    if not np.any(above):
        return math.e
    i = int(np.flatnonzero(above)[-1])
    lo, hi = float(grid[i]), float(grid[i + 1])
    for _ in range(200):
        if hi - lo <= 1e-9 * max(1.0, hi):
            break
        pts = np.linspace(lo, hi, 12)
        up = eps2(pts) >= target
        if not up[0]:  # the coarse scan's t was a little worse here: widen downwards
            lo, hi = max(1.0, lo - step), lo
            if lo == hi:
                return math.e
            continue
        if up[-1]:
            lo, hi = hi, min(hi + step, math.log(n_max))
            if lo == hi:
                return None
            continue
        j = int(np.flatnonzero(up)[-1])
        lo, hi = float(pts[j]), float(pts[j + 1])
    return math.exp(hi)


def dense_rate(
    arch: Architecture, prior: Prior | str | PriorSpec, n: np.ndarray | float, **kwargs: object
) -> ContractionRate:
    """The rate of the same network with every node active (``s_l = k_l``): no node sparsity."""
    return contraction_rate(arch.dense(), prior, n, **kwargs)


def edge_sparse_rate(
    arch: Architecture, n: np.ndarray | float, *, kappa_log: float = 1.0
) -> EdgeRate:
    """Bai, Song & Cheng (2020) rate for the same truth written as an edge-sparse network.

    ``r_n = ((L+1) s / n) log N + (s / n) log(p sqrt(n / s))`` with ``s = arch.edges``
    (weights and biases among active nodes, ``sum_l s_l (s_{l-1} + 1)``) and
    ``N = max_l k_l`` (docs/theory.md, section 4.3). An order, up to constants.
    """
    n = _check_n(n)
    kappa_log = check_real("kappa_log", kappa_log, lower=0.0)
    s = float(arch.edges)
    width = max(arch.hidden)
    r_n = (arch.depth + 1) * s / n * np.log(width) + s / n * np.log(arch.p * np.sqrt(n / s))
    return EdgeRate(
        n, arch.edges, width, r_n, np.sqrt(np.maximum(r_n, 0.0)) * np.log(n) ** kappa_log
    )
