"""L4: sieve entropy and the prior mass outside the sieve (docs/theory.md, section 3.4).

A sieve is described by an :class:`~ssbnn_theory.Architecture` whose ``active`` field holds
the maximal active counts ``sbar_l`` and whose ``bounds`` hold ``Bbar_l``:

    F = {theta: at most sbar_l active nodes in hidden layer l, |theta_coord| <= Bbar_l}.

Covering (sup norm over ``[-1, 1]^p``): choose the active sets (``prod_l C(k_l, sbar_l)``
ways), then a grid of spacing ``2 delta`` per constrained coordinate with
``delta = delta*_sieve(eps)`` (Lemma L1 on the sieve), which needs
``max(1, ceil(Bbar_l / delta))`` points on ``[-Bbar_l, Bbar_l]``:

    log N(eps, F, ||.||_inf) <= sum_{l<=L} log C(k_l, sbar_l)
                                + sum_{l<=L+1} sbar_l rbar_l log max(1, ceil(Bbar_l / delta)).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ssbnn_theory._numerics import log1mexp
from ssbnn_theory.architecture import Architecture
from ssbnn_theory.enums import FanIn
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.lipschitz import LogNetwork, arch_network
from ssbnn_theory.priors import PriorSpec, as_prior_spec, log_tail, slab_tail_log_bound_inverse
from ssbnn_theory.validation import check_real_array

__all__ = [
    "grid_points",
    "log_binomial_coefficient",
    "log_binomial_tail",
    "log_mass_outside_sieve",
    "mixed_sieve_entropy",
    "outside_mass_kernel",
    "sieve_entropy",
]


def log_binomial_coefficient(k: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``log C(k, s)`` through ``gammaln`` (exact to rounding for any size)."""
    k = np.asarray(k, np.float64)
    s = np.asarray(s, np.float64)
    return special.gammaln(k + 1.0) - special.gammaln(s + 1.0) - special.gammaln(k - s + 1.0)


def log_binomial_tail(k: np.ndarray, log_lambda: np.ndarray, m: np.ndarray) -> np.ndarray:
    """An upper bound on ``log P(Bin(k, lambda) >= m)``.

    For ``m >= k lambda`` the smaller of the Chernoff bound ``-k KL(m/k || lambda)`` and the
    union bound ``log C(k, m) + m log lambda``; ``0`` (trivial) for ``m <= k lambda``; ``-inf``
    for ``m > k``. Exact for ``m = k`` (``k log lambda``). Nonincreasing in ``m``; ``lambda``
    enters as ``log lambda`` so that tiny inclusion probabilities stay exact.
    """
    k = np.asarray(k, np.float64)
    m = np.asarray(m, np.float64)
    log_lambda = np.asarray(log_lambda, np.float64)
    q = np.clip(m / k, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_1m_lambda = log1mexp(log_lambda)
        kl = special.xlogy(q, q) - q * log_lambda + special.xlogy(1.0 - q, 1.0 - q)
        kl = kl - np.where(q < 1.0, (1.0 - q) * log_1m_lambda, 0.0)
        bound = -k * kl
        union = log_binomial_coefficient(k, np.minimum(m, k)) + m * log_lambda
    lam_k = k * np.exp(log_lambda)
    out = np.where(m <= lam_k, 0.0, np.minimum(np.minimum(bound, union), 0.0))
    return np.where(m > k, -np.inf, out)


def _log_ceil_ratio(log_b: np.ndarray, log_delta: np.ndarray) -> np.ndarray:
    """``log max(1, ceil(Bbar/delta))`` from logs; ``log(x + 1)`` once ``ceil`` is unresolved."""
    log_x = log_b - log_delta
    small = log_x < 36.0  # x < 4e15: ceil is exact in float64
    with np.errstate(over="ignore"):
        exact = np.log(np.maximum(1.0, np.ceil(np.exp(np.minimum(log_x, 36.0)))))
    return np.where(small, exact, np.logaddexp(log_x, 0.0))


def covering_terms(
    arch: Architecture,
    sbar: np.ndarray,
    log_bbar: np.ndarray | None,
    log_eps: np.ndarray,
    closed_form: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched covering bound: (pattern term and grid term per layer, ``log delta``), unvalidated.

    ``sbar`` has shape (..., L) (hidden layers), ``log_bbar`` (..., L+1) or ``None`` for the
    architecture's own bounds, ``log_eps`` (...).
    """
    a = arch.as_arrays()
    k_hidden = a["k"][:-1]
    s_all = np.concatenate([sbar, np.broadcast_to(a["k"][-1:], (*sbar.shape[:-1], 1))], axis=-1)
    if arch.fan_in is FanIn.ACTIVE:
        m = np.concatenate([np.broadcast_to(a["m"][:1], (*sbar.shape[:-1], 1)), sbar], axis=-1)
    else:
        m = np.broadcast_to(a["m"], s_all.shape)
    if log_bbar is None and arch.fan_in is FanIn.FULL:
        network = arch_network(arch)  # the sieve's L1 recursion is the architecture's
        log_bbar = np.broadcast_to(_log(a["B"]), s_all.shape)
    else:
        if log_bbar is None:
            log_bbar = np.broadcast_to(_log(a["B"]), s_all.shape)
        network = LogNetwork.build(arch.activation, np.log(m), log_bbar)
    log_delta = network.solve(log_eps, closed_form)
    pattern = log_binomial_coefficient(k_hidden, sbar)
    grid = s_all * (m + 1.0) * _log_ceil_ratio(log_bbar, log_delta[..., None])
    return pattern, grid, log_delta


def sieve_entropy(
    sieve: Architecture,
    eps: np.ndarray | float,
    *,
    closed_form: bool = False,
    per_layer: bool = False,
) -> np.ndarray:
    """Lemma L4: an upper bound on ``log N(eps, F, ||.||_inf)`` for the sieve ``F``.

    ``sum_{l<=L} log C(k_l, sbar_l) + sum_{l<=L+1} sbar_l rbar_l log max(1, ceil(Bbar_l / delta))``
    with ``delta = delta*_sieve(eps)`` the L1 inverse of the sieve (``rbar_l = mbar_l + 1``
    constrained coordinates per group; ``sbar_{L+1}`` = outputs). The original statement's
    ``sbar_l d_l log(3 Lambdabar / eps)`` is not a valid bound in general (it omits
    ``Bbar_l``); docs/theory.md, section 3.4 gives the derivation and a counterexample.

    Parameters
    ----------
    sieve
        ``hidden`` = ``k_l``, ``active`` = ``sbar_l``, ``bounds`` = ``Bbar_l``.
    eps
        Radius ``eps > 0`` (array).
    closed_form
        Use the closed-form ``delta_cf <= delta*`` (a larger, still valid, bound).
    per_layer
        Return ``(pattern per hidden layer, grid per layer)`` instead of the total.
    """
    eps = check_real_array("eps", eps, lower=0.0, lower_open=True)
    a = sieve.as_arrays()
    shape = eps.shape
    sbar = np.broadcast_to(a["s"][:-1], (*shape, sieve.depth))
    log_b = np.broadcast_to(_log(a["B"]), (*shape, sieve.depth + 1))
    pattern, grid, _ = covering_terms(sieve, sbar, log_b, np.log(eps), closed_form)
    if per_layer:
        return pattern, grid
    return np.sum(pattern, axis=-1) + np.sum(grid, axis=-1)


def grid_points(bound: float, delta: float) -> np.ndarray:
    """Grid of :func:`sieve_entropy`: ``min(-B + (2j - 1) delta, B)``, ``j = 1..ceil(B/delta)``.

    Every ``w`` in ``[-B, B]`` is within ``delta`` of a point, and every point is in ``[-B, B]``.
    """
    count = max(1, int(np.ceil(bound / delta)))
    return np.minimum(-bound + (2.0 * np.arange(1, count + 1) - 1.0) * delta, bound)


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(x)


def log_mass_outside_sieve(
    sieve: Architecture,
    prior: PriorSpec | str,
    log_inv_inclusion: np.ndarray,
) -> np.ndarray:
    """An upper bound on ``log Pi(F^c)``: binomial tails plus slab tails beyond ``Bbar_l``.

    ``Pi(F^c) <= sum_{l<=L} [P(Bin(k_l, lambda_l) > sbar_l) + k_l lambda_l G_l(||w||_inf > Bbar_l)]
    + k_{L+1} G_out(||w||_inf > Bbar_{L+1})`` (union bound; docs/theory.md, section 3.4).

    Parameters
    ----------
    sieve
        ``active`` = ``sbar_l``, ``bounds`` = ``Bbar_l``.
    prior
        Slab family and hyperparameters.
    log_inv_inclusion
        ``log(1/lambda_l)``, shape ``(L,)`` or ``(..., L)``.
    """
    spec = as_prior_spec(prior)
    log_inv = check_real_array("log_inv_inclusion", log_inv_inclusion, lower=0.0, lower_open=True)
    a = sieve.as_arrays()
    if log_inv.ndim == 0:
        log_inv = np.full(sieve.depth, float(log_inv))
    if log_inv.shape[-1] != sieve.depth:
        raise InvalidParameterError(
            "log_inv_inclusion", f"one value per hidden layer ({sieve.depth})", log_inv.shape
        )
    shape = log_inv.shape[:-1]
    sbar = np.broadcast_to(a["s"][:-1], (*shape, sieve.depth))
    log_b = np.broadcast_to(_log(a["B"]), (*shape, sieve.depth + 1))
    return outside_mass_kernel(sieve, spec, sbar, log_b, log_inv)


def outside_mass_kernel(
    arch: Architecture, spec: PriorSpec, sbar: np.ndarray, log_bbar: np.ndarray, log_inv: np.ndarray
) -> np.ndarray:
    """Batched kernel of :func:`log_mass_outside_sieve` (``log Bbar`` may exceed float range)."""
    a = arch.as_arrays()
    k, d = a["k"][:-1], a["d"]
    binom = log_binomial_tail(k, -log_inv, sbar + 1.0)
    slab = np.log(k) - log_inv + log_tail(spec, log_bbar[..., :-1], d[:-1])
    out = np.log(a["k"][-1]) + log_tail(spec.output_spec(), log_bbar[..., -1:], d[-1:])
    terms = np.concatenate([binom, slab, out], axis=-1)
    m = np.max(terms, axis=-1, keepdims=True)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        total = safe + np.log(np.sum(np.exp(terms - safe), axis=-1, keepdims=True))
    return np.squeeze(total, axis=-1)


def choose_sieve(
    arch: Architecture, spec: PriorSpec, log_inv: np.ndarray, log_budget: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The smallest sieve whose outside mass is ``<= exp(log_budget)`` (batched over ``n``).

    Each of the ``2L + 1`` terms of :func:`log_mass_outside_sieve` gets the budget
    ``log_budget - log(2L + 1)``. ``sbar_l`` is the least integer ``>= s_l`` whose binomial
    tail bound ``(e k_l lambda_l / (sbar_l + 1))^(sbar_l + 1)`` fits (``k_l`` when none does:
    then the tail is 0); it also bounds the Chernoff form of :func:`log_binomial_tail`;
    ``log Bbar_l`` the
    least bound (``>= B_l``) whose slab-tail bound fits. Returns ``(sbar (..., L),
    log Bbar (..., L+1))``.
    """
    a = arch.as_arrays()
    k, s, d = a["k"][:-1], a["s"][:-1], a["d"]
    depth = arch.depth
    share = log_budget[..., None] - np.log(2.0 * depth + 1.0)
    log_lambda = -log_inv
    log_k_lambda = np.log(k) + log_lambda

    def tail(m: np.ndarray) -> np.ndarray:
        # P(Bin(k, lambda) >= m) <= C(k, m) lambda^m <= (e k lambda / m)^m, and <= 1;
        # nonincreasing in m once m >= k lambda (and trivially 0 below, in log)
        bound = m * (1.0 + log_k_lambda - np.log(m))
        return np.where(np.log(m) >= log_k_lambda, np.minimum(bound, 0.0), 0.0)

    # least m in [s+1, k] with tail(m) <= share: bisection over integers
    lo = np.broadcast_to(s + 1.0, log_inv.shape).copy()
    hi = np.broadcast_to(k, log_inv.shape).copy()
    fits_at_k = tail(hi) <= share
    fits_at_lo = (lo > k) | (tail(np.minimum(lo, k)) <= share)
    hi = np.where(fits_at_lo, lo, hi)
    # invariant: tail(hi) fits, tail(lo) does not (unless lo == hi)
    for _ in range(int(np.ceil(np.log2(max(float(np.max(k)), 2.0)))) + 1):
        mid = np.floor(0.5 * (lo + hi))
        fits = tail(np.maximum(mid, 1.0)) <= share
        active = hi - lo > 1.0
        hi = np.where(active & fits, mid, hi)
        lo = np.where(active & ~fits, mid, lo)
    sbar = np.where(fits_at_lo, s, np.where(fits_at_k, hi - 1.0, k))
    sbar = np.minimum(np.maximum(sbar, s), k)
    log_b_hidden = slab_tail_log_bound_inverse(spec, share - np.log(k) - log_lambda, d[:-1])
    log_b_out = slab_tail_log_bound_inverse(
        spec.output_spec(), share[..., :1] - np.log(a["k"][-1]), d[-1:]
    )
    log_bbar = np.maximum(np.concatenate([log_b_hidden, log_b_out], axis=-1), _log(a["B"]))
    return sbar, log_bbar


def mixed_sieve_entropy(arch: Architecture, sbar: np.ndarray, log_delta: np.ndarray) -> np.ndarray:
    """Entropy bound of the sieves with ``sbar_l`` nodes in one layer ``l`` and ``s_j`` elsewhere.

    Column ``l`` of the result (shape (..., L)) bounds ``log N(eps)`` for the sieve whose
    layer ``l`` has ``sbar_l`` nodes and every other hidden layer its true ``s_j``, all at
    the architecture's bounds, using the grid resolution ``delta`` of the sieve with
    ``sbar`` in every layer (``log_delta``, shape (...)): that sieve contains the mixed
    ones, so its ``delta*`` is no larger than theirs and the count stays an upper bound.
    Computed as the all-true count plus the changes in layer ``l`` (and, under
    ``fan_in="active"``, in the fan-in of layer ``l + 1``).
    """
    a = arch.as_arrays()
    depth = arch.depth
    k, s, m, B = a["k"], a["s"], a["m"], a["B"]
    log_ceil = _log_ceil_ratio(_log(B), log_delta[..., None])  # (..., L+1)
    base_grid = s * (m + 1.0) * log_ceil  # every layer at its true count
    base_pattern = log_binomial_coefficient(k[:-1], s[:-1])
    base = np.sum(base_grid, axis=-1) + np.sum(base_pattern)
    change = (
        log_binomial_coefficient(k[:-1], sbar)
        - base_pattern
        + (sbar - s[:-1]) * (m[:-1] + 1.0) * log_ceil[..., :depth]
    )
    if arch.fan_in is FanIn.ACTIVE:  # layer l + 1 sees sbar_l inputs instead of s_l
        change = change + s[1:] * (sbar - s[:-1]) * log_ceil[..., 1:]
    return base[..., None] + change
