"""L1: envelope ``H_l``, perturbation bound ``D_{L+1}(delta)``, inverse ``delta*``, ``Lambda``.

Everything is computed in log space (docs/theory.md, section 3.1). With ``D_0 = 0``,

    D_l(delta) = ell * [ delta * A_l + m_l * (B_l + delta) * D_{l-1}(delta) ],
    A_l = m_l H_{l-1} + 1,                  (ell = 1 for the linear output layer)

``D_{L+1}`` is a polynomial in ``delta`` of degree ``L+1`` with nonnegative coefficients
and ``D(0) = 0``, so ``log D`` is a log-sum-exp of affine functions of ``log delta``:
convex, increasing, with slope in ``[1, L+1]``, which makes the inverse ``delta*`` a
cheap one-sided Newton search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssbnn_theory.architecture import Architecture
from ssbnn_theory.enums import Activation
from ssbnn_theory.validation import check_real_array

__all__ = [
    "delta_star",
    "envelope",
    "log_delta_star",
    "log_envelope",
    "log_lipschitz",
    "log_perturbation_bound",
    "perturbation_bound",
]

# sup_u |psi(u)| for bounded activations: a valid cap on every hidden output (section 3.1).
_OUTPUT_CAP = {Activation.TANH: 1.0, Activation.SIGMOID: 1.0}

# Newton iterations of the delta* root search (quadratic convergence from a start whose
# relative error is O(eta); more than 6 are never needed in practice).
_ROOT_ITERATIONS = 30


def _log(x: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, dtype=np.float64))


@dataclass(frozen=True)
class LogNetwork:
    """The L1 recursion of one network (or a batch of networks) in log space.

    Fields are per layer on the last axis (``l = 1..L+1``); leading axes are a batch
    (one sieve per ``n``). ``log_a[l] = log(m_l H_{l-1} + 1)``.
    """

    activation: Activation
    log_m: np.ndarray
    log_b: np.ndarray
    log_h: np.ndarray
    log_a: np.ndarray
    log_lambda: np.ndarray

    @classmethod
    def build(cls, activation: Activation, log_m: np.ndarray, log_b: np.ndarray) -> LogNetwork:
        """Envelope ``H_l`` and Lipschitz factor ``Lambda`` from ``log m_l`` and ``log B_l``."""
        log_m, log_b = np.broadcast_arrays(
            np.asarray(log_m, np.float64), np.asarray(log_b, np.float64)
        )
        depth = log_m.shape[-1] - 1
        log_ell = float(np.log(activation.lipschitz))
        log_off = float(_log(activation.offset))
        log_cap = float(np.log(_OUTPUT_CAP[activation])) if activation in _OUTPUT_CAP else np.inf
        log_h = np.empty(log_m.shape)
        log_a = np.empty(log_m.shape)
        log_h[..., 0] = 0.0  # inputs: ||x||_inf <= 1
        log_lam = np.full(log_m.shape[:-1], -np.inf)
        for i in range(depth + 1):  # layer l = i + 1
            ell = log_ell if i < depth else 0.0
            log_a[..., i] = np.logaddexp(log_m[..., i] + log_h[..., i], 0.0)
            log_lam = ell + np.logaddexp(log_a[..., i], log_m[..., i] + log_b[..., i] + log_lam)
            if i < depth:
                h = np.logaddexp(log_off, log_ell + log_b[..., i] + log_a[..., i])
                log_h[..., i + 1] = np.minimum(h, log_cap)
        return cls(activation, log_m, log_b, log_h[..., : depth + 1], log_a, log_lam)

    def evaluate(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``g(u) = log D_{L+1}(e^u)`` and ``g'(u) = d log D / d log delta`` (in ``[1, L+1]``).

        Unrolling the recursion, ``D_{L+1}(delta) = sum_j ell_j delta A_j prod_{i>j}
        ell_i m_i (B_i + delta)`` (a sum of positive terms), so ``g`` is a log-sum-exp over
        layers ``j`` and ``g' = 1 + sum_j pi_j sum_{i>j} delta / (B_i + delta)`` with ``pi``
        the softmax weights of the terms.
        """
        u = np.asarray(u, dtype=np.float64)
        log_bd = np.logaddexp(self.log_b, u[..., None])  # log(B_i + delta)
        w = self._log_ell_m + log_bd
        after = np.cumsum(w[..., ::-1], axis=-1)[..., ::-1] - w  # sum_{i > j} w_i
        terms = self._log_ell_a + after
        top = np.max(terms, axis=-1, keepdims=True)
        weights = np.exp(terms - top)
        total = np.sum(weights, axis=-1)
        q = np.exp(u[..., None] - log_bd)  # delta / (B_i + delta)
        q_after = np.cumsum(q[..., ::-1], axis=-1)[..., ::-1] - q
        slope = 1.0 + np.sum(weights * q_after, axis=-1) / total
        return u + top[..., 0] + np.log(total), slope

    @property
    def _log_ell_m(self) -> np.ndarray:
        return self._ell + self.log_m

    @property
    def _log_ell_a(self) -> np.ndarray:
        return self._ell + self.log_a

    @property
    def _ell(self) -> np.ndarray:
        depth = self.log_m.shape[-1] - 1
        ell = np.full(depth + 1, float(np.log(self.activation.lipschitz)))
        ell[-1] = 0.0  # the output layer is linear
        return ell

    def solve(self, log_eta: np.ndarray, closed_form: bool) -> np.ndarray:
        """``log delta*``: the largest ``u`` (to ~1e-13) with ``g(u) <= log eta``.

        ``closed_form`` returns the explicit lower bound ``delta_cf = eta delta_0 / D(delta_0)``,
        ``delta_0 = eta / Lambda`` (docs/theory.md, 3.1). Otherwise Newton steps run from
        ``u_0 = log(eta / Lambda)``, which lies above the root (``D(delta) >= Lambda delta``);
        ``g`` is convex (``D`` has nonnegative coefficients), so Newton iterates stay above
        it. As ``g' >= 1``, ``g(u - Delta) <= g(u) - Delta``: the point
        ``hi - (g(hi) - log eta) - tol`` is below the root; it is returned once it evaluates
        ``<= log eta`` (else the closed form is).
        """
        log_eta = np.asarray(log_eta, np.float64)
        hi = log_eta - self.log_lambda
        g_hi, dg_hi = self.evaluate(hi)
        scale = np.maximum.reduce([np.ones_like(hi), np.abs(log_eta), np.abs(hi), np.abs(g_hi)])
        tol = 1e-13 * scale * (self.log_m.shape[-1] + 1)
        closed = log_eta + hi - g_hi  # D(delta_cf) <= delta_cf D(delta_0)/delta_0 = eta
        g_closed, _ = self.evaluate(closed)
        # exact arithmetic gives g(closed) <= log eta; absorb rounding with g(u - D) <= g(u) - D
        closed = np.where(g_closed <= log_eta, closed, closed - (g_closed - log_eta) - tol)
        # the caller may round-trip u through exp/log: keep a margin of a few ulps (g' >= 1)
        guard = 1e-14 * np.maximum(1.0, np.abs(closed))
        if closed_form:
            return closed - guard
        lo = closed
        done = g_hi - log_eta <= tol
        for _ in range(_ROOT_ITERATIONS):
            if np.all(done):
                break
            step = hi - (g_hi - log_eta) / dg_hi
            g_step, dg_step = self.evaluate(step)
            above = (g_step >= log_eta) & ~done
            landed = (g_step <= log_eta) & ~done  # below the root only by rounding: a solution
            hi = np.where(above, step, hi)
            g_hi = np.where(above, g_step, g_hi)
            dg_hi = np.where(above, dg_step, dg_hi)
            lo = np.where(landed, np.maximum(lo, step), lo)
            done |= landed | (g_hi - log_eta <= tol)
        below = hi - (g_hi - log_eta) - tol
        g_below, _ = self.evaluate(below)
        best = np.where(g_below <= log_eta, np.maximum(lo, below), lo)
        return best - 1e-14 * np.maximum(1.0, np.abs(best))


def arch_network(arch: Architecture) -> LogNetwork:
    """The (cached) :class:`LogNetwork` of an architecture."""
    cached = arch._cache.get("network")
    if cached is None:
        arrays = arch.as_arrays()
        cached = LogNetwork.build(arch.activation, np.log(arrays["m"]), _log(arrays["B"]))
        arch._cache["network"] = cached
    return cached


def log_envelope(arch: Architecture) -> np.ndarray:
    """``log H_l``, ``l = 0..L``: ``||h_l(x)||_inf <= H_l`` for every ``theta*`` in the class.

    ``H_0 = 1`` and ``H_l = min(a + ell B_l (m_l H_{l-1} + 1), sup|psi|)`` where
    ``sup|psi| = 1`` for tanh and sigmoid and ``inf`` otherwise (docs/theory.md, 3.1).
    """
    return arch_network(arch).log_h[: arch.depth + 1].copy()


def envelope(arch: Architecture) -> np.ndarray:
    """``H_0..H_L`` (``inf`` where the value exceeds float range; use :func:`log_envelope`)."""
    with np.errstate(over="ignore"):
        return np.exp(log_envelope(arch))


def log_lipschitz(arch: Architecture) -> float:
    """``log Lambda`` with ``Lambda = dD_{L+1}/d delta`` at 0, the network's Lipschitz factor.

    ``Lambda = Lambda_{L+1}`` with ``Lambda_0 = 0``,
    ``Lambda_l = ell (m_l H_{l-1} + 1 + m_l B_l Lambda_{l-1})`` and ``ell = 1`` for the
    output layer. Finite for any size (a log-space recursion).
    """
    return float(arch_network(arch).log_lambda)


def log_perturbation_bound(arch: Architecture, delta: np.ndarray | float) -> np.ndarray:
    """``log D_{L+1}(delta)``: ``sup_x |f_theta(x) - f_theta*(x)| <= D_{L+1}(delta)``.

    Holds for every ``theta*`` with the architecture's active pattern and bounds and every
    ``theta`` with the same pattern and ``|theta - theta*| <= delta`` on the constrained
    coordinates of active groups (docs/theory.md, section 3.1, Lemma L1).
    """
    delta = check_real_array("delta", delta, lower=0.0, lower_open=True)
    return arch_network(arch).evaluate(np.log(delta))[0]


def perturbation_bound(arch: Architecture, delta: np.ndarray | float) -> np.ndarray:
    """``D_{L+1}(delta)`` (Lemma L1); ``inf`` beyond float range (see the log version)."""
    with np.errstate(over="ignore"):
        return np.exp(log_perturbation_bound(arch, delta))


def log_delta_star(
    arch: Architecture, log_eta: np.ndarray | float, *, closed_form: bool = False
) -> np.ndarray:
    """``log delta*(eta)`` with ``D_{L+1}(delta*) <= eta`` (Lemma L1, inverse).

    Parameters
    ----------
    log_eta
        ``log eta`` (any real; ``eta`` itself may be far outside float range).
    closed_form
        Use the explicit lower bound ``delta_cf <= delta*`` instead of the root search.
    """
    log_eta = check_real_array("log_eta", log_eta)
    return arch_network(arch).solve(log_eta, closed_form)


def delta_star(
    arch: Architecture, eta: np.ndarray | float, *, closed_form: bool = False
) -> np.ndarray:
    """The largest ``delta`` with ``D_{L+1}(delta) <= eta`` (to rounding; Lemma L1).

    Any ``delta <= delta*`` keeps ``sup_x |f_theta - f_theta*| <= eta``. With
    ``closed_form=True`` returns ``delta_cf = eta delta_0 / D_{L+1}(delta_0)`` with
    ``delta_0 = eta / Lambda``, a closed-form value ``<= delta*`` (docs/theory.md, 3.1).
    """
    eta = check_real_array("eta", eta, lower=0.0, lower_open=True)
    with np.errstate(under="ignore"):
        return np.exp(arch_network(arch).solve(np.log(eta), closed_form))
