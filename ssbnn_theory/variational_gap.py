"""The variational-gap step, built: an explicit q* in the mean-field family (docs/theory.md, 4.5).

The oracle inequality of variational Bayes (Zhang & Gao 2020, Theorem 2.1) needs a member
``q*`` of the variational family with

    KL(q* || Pi) + n E_{q*} KL(p_theta* || p_theta)  <=  C n r_n.

This module constructs ``q*`` for a truth ``theta*`` of the architecture's class (the worst
one: every constrained coordinate at ``|theta*_i| = B_l``) and computes both terms
numerically (closed forms and Gauss-Hermite quadrature), beside ``n r_n`` of
:func:`~ssbnn_theory.contraction_rate` and the derived bound
``n r_n + Omega_n + K T <= C_n n r_n``. The choices (docs/theory.md, 4.5):

* indicators: point masses on the true pattern (the selection term of L3, exactly);
* an active group's constrained coordinates: ``N(theta*_i, s_n^2)`` with
  ``s_n = delta_n / rho``, ``rho = sqrt(2 a)``, ``a = max(2L, log(2 (L+1) T), 1)``, which
  gives ``E_{q*} sup_x |f_theta - f_theta*|^2 <= 2 eta_n^2``;
* the scale of a mixture slab: ``log tau^2 ~ N(log t, s_u^2)``, ``s_u = log(2)/4``, with
  ``t`` the scale value of the L2 bound (:func:`~ssbnn_theory.priors.optimal_log_t`);
* unconstrained coordinates (``fan_in="active"``): ``N(0, 1 / E_q[1/v(tau)])``;
* inactive nodes: ``gamma = 0``, their group and scale at the prior (KL 0).

The derived choice is then refined numerically (the scale's mean and spread minimising the
group's KL); every member of the family is a valid ``q*``, and the refined one is never
worse than the derived one, to which the bound applies. Pure numpy/scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from ssbnn_theory._numerics import log_normal_box
from ssbnn_theory.architecture import Architecture
from ssbnn_theory.enums import FanIn, Likelihood, Prior
from ssbnn_theory.lipschitz import arch_network
from ssbnn_theory.priors import PriorSpec, as_prior_spec, optimal_log_t, scale_log_mass
from ssbnn_theory.rates import ContractionRate, contraction_rate
from ssbnn_theory.slabs.group_horseshoe import horseshoe_scale_kl
from ssbnn_theory.validation import check_integer, check_real

__all__ = [
    "SCALE_SD",
    "SCALE_WIDTH",
    "VariationalGap",
    "coordinate_sd_factor",
    "engine_scale_surcharge",
    "expected_sup_gap",
    "horseshoe_scale_kl",
    "monte_carlo_gap",
    "variational_gap",
]

SCALE_WIDTH = math.log(2.0)
"""``h``: the L2 bound conditions on ``log tau^2`` in ``[log t, log t + h]``."""
SCALE_SD = SCALE_WIDTH / 4.0
"""``s_u``: spread of ``q*(log tau^2) = N(log t, s_u^2)`` in the derived choice."""
_EPS = math.expm1(0.5 * SCALE_SD**2)  # E_q[e^{-(U - log t)}] - 1 = e^{s_u^2/2} - 1
_C0 = math.log(2.0) - 0.5 * math.log(2.0 * math.pi) - 0.5  # per coordinate, < 0
_SCALE_BASE = math.log(SCALE_WIDTH) - 0.5 * math.log(2.0 * math.pi * math.e * SCALE_SD**2)
_UNCONSTRAINED = SCALE_SD**2 / 4.0
_LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------- scale factors
def _group_kl(
    spec: PriorSpec,
    mu: np.ndarray,
    s_u: np.ndarray,
    log_s: np.ndarray,
    bound: float,
    r: float,
    d: float,
) -> dict[str, np.ndarray]:
    """KL of one active group's ``q*`` against its slab, by parts (exact, vectorised)."""
    slab = spec.slab
    e_log_v, e_inv_v = slab.variance_moments(spec, mu, s_u)
    s2 = np.exp(2.0 * log_s)
    coordinate = 0.5 * e_log_v - log_s + 0.5 * (s2 + bound**2) * e_inv_v - 0.5
    unconstrained = 0.5 * (e_log_v + np.log(e_inv_v))
    if not slab.mixture:
        scale = np.zeros_like(mu)
        unconstrained = np.zeros_like(mu)
    else:
        scale = slab.scale_kl(spec, mu, s_u, d)
    total = scale + r * coordinate + (d - r) * unconstrained
    return {
        "scale": scale,
        "coordinate": coordinate,
        "unconstrained": unconstrained,
        "total": total,
    }


# ----------------------------------------------------------------- perturbation
def coordinate_sd_factor(arch: Architecture) -> float:
    """``rho = sqrt(2 a)``, ``a = max(2L, log(2 (L+1) T), 1)``: ``s_n = delta_n / rho``.

    With ``Y`` the largest of ``T`` standard normal magnitudes,
    ``E max(1, Y/rho)^{2(L+1)} <= 2`` (docs/theory.md, 4.5), hence
    ``E_{q*} D(max_i |theta_i - theta*_i|)^2 <= 2 D(delta_n)^2 <= 2 eta_n^2``.
    """
    k = arch.depth + 1
    a = max(2.0 * (k - 1), math.log(2.0 * k * arch.coordinates), 1.0)
    return math.sqrt(2.0 * a)


def expected_sup_gap(arch: Architecture, sd: np.ndarray | float, points: int = 20001) -> np.ndarray:
    """``E D(M)^2``, ``M = sd max_{i <= T} |Z_i|``: bounds ``E_{q*} sup_x |f_theta - f_theta*|^2``.

    By L1, ``sup_x |f_theta - f_theta*| <= D(max_i |theta_i - theta*_i|)`` (constrained
    coordinates) for every output. The law of ``Y = M / sd`` is exact,
    ``P(Y <= y) = erf(y / sqrt 2)^T``; the integral is the trapezoid rule on ``y in [0, 40]``
    in log space (``points`` nodes; the integrand is smooth and negligible beyond 40).
    """
    sd = np.atleast_1d(np.asarray(sd, np.float64))
    t = float(arch.coordinates)
    y = np.linspace(0.0, 40.0, points)[1:]
    with np.errstate(divide="ignore"):
        log_density = (
            math.log(t)
            + math.log(2.0)
            - 0.5 * y * y
            - 0.5 * _LOG_2PI
            + (t - 1.0) * np.log(special.erf(y / math.sqrt(2.0)))
        )
    network = arch_network(arch)
    log_d, _ = network.evaluate(np.log(sd)[:, None] + np.log(y)[None, :])
    terms = 2.0 * log_d + log_density[None, :]
    step = y[1] - y[0]
    terms[:, -1] -= math.log(2.0)
    top = np.max(terms, axis=1, keepdims=True)
    return np.exp(top[:, 0] + np.log(np.sum(np.exp(terms - top), axis=1)) + math.log(step))


def engine_scale_surcharge(arch: Architecture, prior: Prior | str | PriorSpec) -> float:
    """KL the engine's family adds for the scale factors of inactive hidden nodes.

    The engine's scale factors are LogNormal whatever the indicator; the theory's ``q*``
    leaves an inactive node's scale at its prior (KL 0). The least KL of a LogNormal
    against ``Gamma(alpha, beta)`` is ``log Gamma(alpha) - (alpha - 1/2) log alpha + alpha
    - log(2 pi)/2`` (at ``sigma^2 = 1/alpha``; the same against an inverse Gamma), so per
    inactive node: ``alpha = (d_l + 1)/2`` (SS-GL) or twice the value at ``alpha = 1/2``
    (SS-GHS, ``tau^2 = a b`` with ``a ~ Gamma(1/2)``, ``b ~ InvGamma(1/2)``), 0 for SS-IG.
    """
    spec = as_prior_spec(prior)
    total = 0.0
    for k, s, d in zip(arch.hidden, arch.active, arch.group_sizes, strict=False):
        total += (k - s) * spec.slab.engine_scale_kl_floor(d)
    return total


# ----------------------------------------------------------------- Monte Carlo
def monte_carlo_gap(
    arch: Architecture,
    sd: float,
    rng: np.random.Generator,
    *,
    draws: int = 64,
    inputs: int = 256,
) -> tuple[float, float]:
    """Fresh forward passes: ``(E_q mean_x ||f_theta - f_theta*||^2, E_q max_x ||...||^2)``.

    A float64 numpy network: ``theta*`` has a random pattern and every constrained
    coordinate at ``+-B_l`` (random signs; inactive groups zero), ``theta ~ q*``
    (constrained coordinates ``N(theta*_i, sd^2)``, the weights leaving inactive nodes under
    ``fan_in="active"`` arbitrary), ``x`` uniform on ``[-1, 1]^p`` plus sign corners.
    """
    sd = check_real("sd", sd, lower=0.0, lower_open=True)
    draws = check_integer("draws", draws)
    inputs = check_integer("inputs", inputs)
    psi = _ACTIVATIONS[arch.activation.value]
    widths = arch.widths
    depth = arch.depth
    patterns = []
    for k, s in zip(arch.hidden, arch.active, strict=True):
        mask = np.zeros(k, bool)
        mask[rng.choice(k, size=s, replace=False)] = True
        patterns.append(mask)
    patterns.append(np.ones(arch.outputs, bool))
    weights, biases, masks = [], [], []
    for layer in range(depth + 1):
        rows = patterns[layer]
        shape = (widths[layer + 1], widths[layer])
        cols = np.ones(shape[1], bool)
        if arch.fan_in is FanIn.ACTIVE and layer >= 1:
            cols = patterns[layer - 1]
        bound = arch.bounds[layer]
        w = np.where(rows[:, None], bound * rng.choice([-1.0, 1.0], shape), 0.0)
        b = np.where(rows, bound * rng.choice([-1.0, 1.0], shape[0]), 0.0)
        weights.append(w)
        biases.append(b)
        masks.append((rows[:, None] & cols[None, :], rows))
    x = rng.uniform(-1.0, 1.0, (inputs, arch.p))
    x = np.concatenate([x, rng.choice([-1.0, 1.0], (inputs, arch.p))], axis=0)

    def forward(ws: list[np.ndarray], bs: list[np.ndarray]) -> np.ndarray:
        h = x
        for w, b in zip(ws[:-1], bs[:-1], strict=True):
            h = psi(h @ w.T + b)
        return h @ ws[-1].T + bs[-1]

    truth = forward(weights, biases)
    means, sups = np.empty(draws), np.empty(draws)
    for i in range(draws):
        ws, bs = [], []
        for (cons, rows), w, b in zip(masks, weights, biases, strict=True):
            free = rows[:, None] & ~cons
            ws.append(
                np.where(cons, w + sd * rng.standard_normal(w.shape), 0.0)
                + np.where(free, rng.standard_normal(w.shape), 0.0)
            )
            bs.append(np.where(rows, b + sd * rng.standard_normal(b.shape), 0.0))
        gap = np.sum((forward(ws, bs) - truth) ** 2, axis=1)
        means[i], sups[i] = gap.mean(), gap.max()
    return float(means.mean()), float(sups.mean())


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return special.expit(u)


_ACTIVATIONS = {
    "relu": lambda u: np.maximum(u, 0.0),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "silu": lambda u: u * special.expit(u),
}


# ----------------------------------------------------------------- the result
@dataclass(frozen=True)
class VariationalGap:
    """``KL(q* || Pi)`` and ``n E_{q*} KL(p_theta* || p_theta)`` beside ``n r_n``, over ``n``.

    ``rate`` is the :class:`~ssbnn_theory.rates.ContractionRate` the gap is measured against
    (its architecture, prior, ``n``, ``delta_n``, ``n r_n``, the selection term and the KL
    scale ``sigma``). Arrays have ``n`` on the first axis; per-layer arrays have ``L+1``
    columns (every layer: ``slab_kl``, ``slab_kl_derived``, ``slab_phi``, ``omega_layer``,
    ``scale_mean``, ``scale_sd``). ``kl`` uses the refined ``q*``, ``kl_derived`` the derived
    one; ``bound = n_r_n + omega + outputs * T`` bounds ``total_derived`` (docs/theory.md, 4.5)
    and ``constant = 1 + 2 outputs + 2 max(omega, 0) / T`` bounds ``bound / n_r_n``.
    """

    rate: ContractionRate
    outputs: int
    rho: float
    sd: np.ndarray
    slab_kl: np.ndarray
    slab_kl_derived: np.ndarray
    slab_phi: np.ndarray
    omega_layer: np.ndarray
    scale_mean: np.ndarray
    scale_sd: np.ndarray
    kl: np.ndarray
    kl_derived: np.ndarray
    expected_kl: np.ndarray
    expected_kl_bound: np.ndarray
    omega: np.ndarray
    total: np.ndarray
    total_derived: np.ndarray
    bound: np.ndarray
    constant: np.ndarray
    engine_surcharge: float

    @property
    def ratio(self) -> np.ndarray:
        """``(KL(q*||Pi) + n E KL) / (n r_n)`` with the refined ``q*``."""
        return self.total / self.rate.n_r_n

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary (lists and floats)."""

        def js(x: np.ndarray) -> object:
            return np.asarray(x, np.float64).tolist()

        rate = self.rate
        return {
            "prior": rate.prior.to_dict(),
            "architecture": rate.architecture.to_dict(),
            "n": js(rate.n),
            "sigma_e": rate.kl_scale,
            "coordinates_T": rate.coordinates,
            "rho": self.rho,
            "sd": js(self.sd),
            "delta_n": js(rate.delta),
            "n_r_n": js(rate.n_r_n),
            "kl": js(self.kl),
            "kl_derived": js(self.kl_derived),
            "selection": js(rate.selection),
            "slab_kl": js(self.slab_kl),
            "slab_kl_derived": js(self.slab_kl_derived),
            "slab_phi": js(self.slab_phi),
            "expected_kl": js(self.expected_kl),
            "expected_kl_bound": js(self.expected_kl_bound),
            "omega": js(self.omega),
            "total": js(self.total),
            "ratio": js(self.ratio),
            "bound": js(self.bound),
            "constant_C": js(self.constant),
            "engine_surcharge": self.engine_surcharge,
        }


def _layer(
    spec: PriorSpec,
    log_delta: np.ndarray,
    log_s: np.ndarray,
    log_rho: float,
    bound: float,
    r: float,
    d: float,
    refine: bool,
) -> dict[str, np.ndarray]:
    """One layer's group: phi (L2), the derived and refined KL, the derived overhead."""
    delta = np.exp(log_delta)
    s2 = np.exp(2.0 * log_s)
    if not spec.slab.mixture:
        sd0 = spec.sigma_0
        box = -log_normal_box(bound / sd0, delta / sd0, log_delta - math.log(sd0))
        zero = np.zeros_like(log_delta)
        parts = _group_kl(spec, zero, zero + SCALE_SD, log_s, bound, r, d)
        err = (s2 + 2.0 * bound * delta) / (2.0 * sd0**2)
        omega = r * (log_rho + _C0 + err)
        return {
            "phi": r * box,
            "kl": parts["total"],
            "kl_derived": parts["total"],
            "omega": omega,
            "mu": zero + math.nan,
            "s_u": zero + math.nan,
        }
    b = np.full_like(log_delta, bound)
    rr = np.full_like(log_delta, r)
    dd = np.full_like(log_delta, d)
    log_t = optimal_log_t(spec, log_delta, b, rr, dd)
    t = np.exp(log_t)
    log_mass = scale_log_mass(spec, t, dd, closed_form=False)  # <= log P(tau^2 in [t, 2t])
    log_v = spec.slab.log_variance(spec, log_t)
    sd_t = np.exp(0.5 * log_v)
    box_t = -log_normal_box(bound / sd_t, delta / sd_t, log_delta - 0.5 * log_v)
    log_v2 = spec.slab.log_variance(spec, log_t + math.log(2.0))
    sd_2t = np.exp(0.5 * log_v2)
    box_2t = -log_normal_box(bound / sd_2t, delta / sd_2t, log_delta - 0.5 * log_v2)
    phi = -log_mass + r * np.maximum(box_t, box_2t)
    s_u = np.full_like(log_t, SCALE_SD)
    derived = _group_kl(spec, log_t, s_u, log_s, bound, r, d)["total"]
    err = (_EPS * bound**2 + (1.0 + _EPS) * s2 + 2.0 * bound * delta) * np.exp(-log_v) / 2.0
    scale_over = spec.slab.scale_kl_bound(spec, t, d, _SCALE_BASE, SCALE_WIDTH, SCALE_SD)
    omega = scale_over + r * (log_rho + _C0 + err) + (d - r) * _UNCONSTRAINED
    mu_out, su_out, kl = log_t.copy(), s_u.copy(), derived.copy()
    if refine:
        for i in range(log_t.size):

            def objective(z: np.ndarray, i: int = i) -> float:
                value = _group_kl(
                    spec,
                    np.array([z[0]]),
                    np.array([math.exp(z[1])]),
                    log_s[i : i + 1],
                    bound,
                    r,
                    d,
                )["total"][0]
                return float(value) if np.isfinite(value) else 1e300

            res = optimize.minimize(
                objective,
                np.array([log_t[i], math.log(SCALE_SD)]),
                method="Nelder-Mead",
                options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 400},
            )
            if res.fun < kl[i]:
                kl[i], mu_out[i], su_out[i] = res.fun, res.x[0], math.exp(res.x[1])
    return {
        "phi": phi,
        "kl": kl,
        "kl_derived": derived,
        "omega": omega,
        "mu": mu_out,
        "s_u": su_out,
    }


def variational_gap(
    arch: Architecture,
    prior: Prior | str | PriorSpec,
    n: np.ndarray | float,
    sigma_e: float | None = None,
    *,
    refine: bool = True,
    **rate_kwargs: object,
) -> VariationalGap:
    """Build ``q*`` and compare ``KL(q* || Pi) + n E_{q*} KL(p_theta* || p_theta)`` with ``n r_n``.

    The truth is a teacher in the class (``p_0 = p_theta*``) with every constrained
    coordinate at ``|theta*_i| = B_l``, the worst case for the KL. ``n E KL`` is
    ``n K E D(M)^2 / (2 sigma^2)`` computed by quadrature over the exact law of ``M``
    (:func:`expected_sup_gap`), its derived bound ``K T``: for a Gaussian likelihood
    ``sigma = sigma_e`` (default 1) and ``K`` the number of outputs (the KL sums over them);
    for ``"bernoulli"`` and ``"categorical"`` (logit outputs) ``sigma`` is 2 and 1 and
    ``K = 1`` (:func:`~ssbnn_theory.kl_scale`, docs/theory.md 4.6). Other keyword arguments
    (``likelihood``, default Gaussian, ``inclusion``, ``C_lambda``, ``kappa_log``) go to
    :func:`~ssbnn_theory.contraction_rate`, whose result (``rate``) gives ``sigma``.

    Returns
    -------
    VariationalGap
        Every term, the derived overhead ``Omega_n``, the bound and the constant ``C_n``.
    """
    spec = as_prior_spec(prior)
    rate = contraction_rate(arch, spec, n, sigma_e, conditions=False, **rate_kwargs)
    sigma = rate.kl_scale
    n_arr = rate.n
    log_delta = np.log(rate.delta)
    rho = coordinate_sd_factor(arch)
    log_s = log_delta - math.log(rho)
    a = arch.as_arrays()
    depth = arch.depth
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("phi", "kl", "kl_derived", "omega", "mu", "s_u")
    }
    for layer in range(depth + 1):
        layer_spec = spec if layer < depth else spec.output_spec()
        out = _layer(
            layer_spec,
            log_delta,
            log_s,
            math.log(rho),
            float(a["B"][layer]),
            float(a["r"][layer]),
            float(a["d"][layer]),
            refine,
        )
        for key in cols:
            cols[key].append(out[key])
    s_count = a["s"]
    stack = {key: np.stack(value, axis=1) for key, value in cols.items()}
    slab_phi = s_count * stack["phi"]
    slab_kl = s_count * stack["kl"]
    slab_kl_derived = s_count * stack["kl_derived"]
    omega_layer = s_count * stack["omega"]
    selection = rate.selection
    kl = selection.sum(axis=1) + slab_kl.sum(axis=1)
    kl_derived = selection.sum(axis=1) + slab_kl_derived.sum(axis=1)
    sd = np.exp(log_s)
    # K of the KL bound: the outputs under a Gaussian likelihood, else one logit vector
    outputs = arch.outputs if rate.likelihood == Likelihood.GAUSSIAN.value else 1
    t = float(arch.coordinates)
    expected = n_arr * outputs * expected_sup_gap(arch, sd) / (2.0 * sigma**2)
    omega = omega_layer.sum(axis=1)
    bound = rate.n_r_n + omega + outputs * t
    constant = 1.0 + 2.0 * outputs + 2.0 * np.maximum(omega, 0.0) / t
    return VariationalGap(
        rate=rate,
        outputs=outputs,
        rho=rho,
        sd=sd,
        slab_kl=slab_kl,
        slab_kl_derived=slab_kl_derived,
        slab_phi=slab_phi,
        omega_layer=omega_layer,
        scale_mean=stack["mu"],
        scale_sd=stack["s_u"],
        kl=kl,
        kl_derived=kl_derived,
        expected_kl=expected,
        expected_kl_bound=np.full(n_arr.shape, outputs * t),
        omega=omega,
        total=kl + expected,
        total_derived=kl_derived + expected,
        bound=bound,
        constant=constant,
        engine_surcharge=engine_scale_surcharge(arch, spec),
    )
