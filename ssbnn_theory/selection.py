"""L3: selection mass of the true pattern, and the inclusion-probability prescriptions.

Inclusion probabilities can be far below float range (``log(1/lambda_l)`` in the
thousands for wide layers), so every function here has a form in
``ell_l = log(1/lambda_l)``; the probability forms underflow to ``0.0`` honestly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssbnn_theory._numerics import log1mexp
from ssbnn_theory.architecture import Architecture
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.lipschitz import log_lipschitz
from ssbnn_theory.validation import (
    check_integer,
    check_integer_sequence,
    check_real,
    check_real_array,
)

__all__ = [
    "edge_log_inv_inclusion",
    "reference_inclusion_probs",
    "reference_log_inv_inclusion",
    "selection_mass",
    "theory_inclusion_probs",
    "theory_log_inv_inclusion",
]


def selection_terms(k: np.ndarray, s: np.ndarray, log_inv: np.ndarray) -> np.ndarray:
    """Per-layer ``s_l ell_l - (k_l - s_l) log(1 - e^{-ell_l})`` (unvalidated kernel)."""
    inactive = k - s
    miss = np.where(inactive > 0, -inactive * log1mexp(-log_inv), 0.0)
    return s * log_inv + miss


def selection_mass(
    arch: Architecture,
    inclusion_prob: np.ndarray | float | None = None,
    *,
    log_inv_inclusion: np.ndarray | float | None = None,
    per_layer: bool = False,
) -> np.ndarray:
    """Lemma L3: the selection mass ``-log Pi(gamma = gamma*)``.

    ``-log Pi(gamma = gamma*) = sum_l [s_l log(1/lambda_l) + (k_l - s_l) log(1/(1-lambda_l))]``,

    An equality (independent Bernoulli indicators), evaluated with ``log1p``/``expm1`` so
    that tiny ``lambda_l`` (given through ``log_inv_inclusion = log(1/lambda_l)``) stay
    exact (docs/theory.md, section 3.3).

    Parameters
    ----------
    arch
        Widths ``k_l`` and active counts ``s_l`` (hidden layers only: the output layer has
        no spike).
    inclusion_prob
        ``lambda_l`` in ``(0, 1)``, shape ``(L,)`` or ``(..., L)``.
    log_inv_inclusion
        Alternatively ``log(1/lambda_l) > 0`` (exactly one of the two must be given).
    per_layer
        Return the ``L`` layer terms (last axis) instead of their sum.
    """
    if (inclusion_prob is None) == (log_inv_inclusion is None):
        raise InvalidParameterError(
            "inclusion_prob", "given, or log_inv_inclusion given (exactly one)", inclusion_prob
        )
    if inclusion_prob is not None:
        lam = check_real_array(
            "inclusion_prob", inclusion_prob, lower=0.0, upper=1.0, lower_open=True, upper_open=True
        )
        log_inv = -np.log(lam)
    else:
        log_inv = check_real_array(
            "log_inv_inclusion", log_inv_inclusion, lower=0.0, lower_open=True
        )
    if log_inv.ndim == 0:
        log_inv = np.full(arch.depth, float(log_inv))
    if log_inv.shape[-1] != arch.depth:
        raise InvalidParameterError(
            "inclusion_prob", f"one value per hidden layer ({arch.depth})", log_inv.shape
        )
    a = arch.as_arrays()
    terms = selection_terms(a["k"][:-1], a["s"][:-1], log_inv)
    return terms if per_layer else np.sum(terms, axis=-1)


def _n_array(n: np.ndarray | float) -> np.ndarray:
    return check_real_array("n", n, lower=1.0, lower_open=True)


def theory_log_inv_inclusion(
    arch: Architecture, n: np.ndarray | float, C_lambda: float = 1.0
) -> np.ndarray:
    """Our prescription (docs/theory.md, section 4.2).

    ``log(1/lambda_l) = log k_l + C_lambda d_l log(Lambda sqrt n)``.

    ``Lambda`` is the architecture's L1 Lipschitz factor (:func:`~ssbnn_theory.log_lipschitz`)
    and ``d_l = k_{l-1} + 1`` the group size. Shape ``n.shape + (L,)``.
    """
    n = _n_array(n)
    c = check_real("C_lambda", C_lambda, lower=0.0)
    return theory_kernel(arch, np.log(n), c)


def theory_kernel(arch: Architecture, log_n: np.ndarray, c: float) -> np.ndarray:
    """Unvalidated kernel of :func:`theory_log_inv_inclusion`."""
    a = arch.as_arrays()
    k, d = a["k"][:-1], a["d"][:-1]
    log_scale = log_lipschitz(arch) + 0.5 * log_n
    return np.log(k) + c * d * log_scale[..., None]


def theory_inclusion_probs(
    arch: Architecture, n: np.ndarray | float, C_lambda: float = 1.0
) -> np.ndarray:
    """``lambda_1..lambda_L`` of :func:`theory_log_inv_inclusion` (may underflow to 0.0)."""
    with np.errstate(under="ignore"):
        return np.exp(-theory_log_inv_inclusion(arch, n, C_lambda))


def reference_log_inv_inclusion(
    p: int, hidden: Sequence[int], outputs: int, n: np.ndarray | float, C: float = 1e-9
) -> np.ndarray:
    """``log(1/lambda_l)``, ``l = 1..L``, of the reference MLP scripts (docs/engine.md, "Layers").

    With Python-style indices ``l = 0..L``, ``k_0 = p``, ``k_{L+1} = outputs``::

        u_l = (L+1)^2 [log n + log(L+1) + log(k_l + 1) + log k_{l+1}]
        v_l = (k_l + 1)^2 + sum_{m=0}^{L} log(k_m + 1) + L + log k_{l+1} + log n + log(sum_l u_l)
        log(1/lambda_{l+1}) = log k_{l+1} + C (k_l + 1) v_l

    and the hidden layers ``l + 1 = 1..L`` are returned (the output layer has no spike).
    Widths only: no active counts. Shape ``n.shape + (L,)``.
    """
    p = check_integer("p", p)
    hidden = check_integer_sequence("hidden", hidden)
    outputs = check_integer("outputs", outputs)
    n = _n_array(n)
    c = check_real("C", C, lower=0.0)
    widths = np.asarray((p, *hidden, outputs), dtype=np.float64)
    return reference_kernel(widths, np.log(n), c)


def reference_kernel(widths: np.ndarray, log_n: np.ndarray, c: float = 1e-9) -> np.ndarray:
    """Kernel of :func:`reference_log_inv_inclusion`; ``widths = (p, k_1..k_L, outputs)``."""
    k = widths
    depth = k.size - 2
    log_n = np.asarray(log_n)[..., None]
    u = (depth + 1) ** 2 * (log_n + np.log(depth + 1) + np.log(k[:-1] + 1) + np.log(k[1:]))
    v = (
        (k[:-1] + 1) ** 2
        + np.sum(np.log(k[:-1] + 1))
        + depth
        + np.log(k[1:])
        + log_n
        + np.log(np.sum(u, axis=-1, keepdims=True))
    )
    return (np.log(k[1:]) + c * (k[:-1] + 1) * v)[..., :depth]


def reference_inclusion_probs(
    p: int, hidden: Sequence[int], outputs: int, n: np.ndarray | float, C: float = 1e-9
) -> np.ndarray:
    """``lambda_1..lambda_L`` of the reference MLP scripts (docs/engine.md, "Layers"); close
    to ``1/k_l``."""
    return np.exp(-reference_log_inv_inclusion(p, hidden, outputs, n, C))


def edge_log_inv_inclusion(arch: Architecture, n: np.ndarray | float) -> np.ndarray:
    """Bai et al. (2020) edge-level prescription used by the reference (docs/engine.md, "Layers").

    ``log(1/lambda) = log T + 0.1 [(L+1) log max_l k_l + log(sqrt(n) p)]`` with ``T`` the
    number of weights and biases of the dense network. Shape ``n.shape``.
    """
    return edge_kernel(arch, np.log(_n_array(n)))


def edge_kernel(arch: Architecture, log_n: np.ndarray) -> np.ndarray:
    """Unvalidated kernel of :func:`edge_log_inv_inclusion`."""
    total = float(arch.parameters)
    widest = float(max(arch.hidden))
    p = float(arch.p)  # a Python int beyond int64 has no numpy log
    return np.log(total) + 0.1 * ((arch.depth + 1) * np.log(widest) + 0.5 * log_n + np.log(p))
