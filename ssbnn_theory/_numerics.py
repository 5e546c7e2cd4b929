"""Log-space numerical kernels shared by the bound modules (vectorised numpy, no Python loops)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special

__all__ = [
    "golden_section_argmin",
    "log1mexp",
    "log_diff_exp",
    "log_normal_box",
    "logsumexp",
]

_LOG2 = float(np.log(2.0))
_HALF_LOG_2PI = 0.5 * float(np.log(2.0 * np.pi))
_INV_PHI = (np.sqrt(5.0) - 1.0) / 2.0  # 1 / golden ratio


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(x), axis))`` without overflow; entries equal to ``-inf`` contribute zero."""
    m = np.max(x, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - safe), axis=axis, keepdims=True)) + safe
    return np.squeeze(out, axis=axis)


def log1mexp(x: np.ndarray | float) -> np.ndarray:
    """``log(1 - exp(x))`` for ``x <= 0`` (Maechler 2012: ``expm1`` near 0, ``log1p`` far away).

    ``x = 0`` gives ``-inf`` and ``x = -inf`` gives ``0``, without warnings.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        near = np.log(-np.expm1(np.minimum(x, 0.0)))
        far = np.log1p(-np.exp(np.minimum(x, 0.0)))
    return np.where(x > -_LOG2, near, far)


def log_diff_exp(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """``log(exp(a) - exp(b))`` for ``a >= b``; equal arguments give ``-inf``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isneginf(b), -np.inf, b - np.where(np.isneginf(a), 0.0, a))
    return a + log1mexp(diff)


def golden_section_argmin(
    f: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray, iterations: int
) -> np.ndarray:
    """Vectorised golden-section search: an approximate minimiser of ``f`` on ``[lo, hi]``.

    ``f`` maps an array of points (the shape of ``lo``) to values elementwise. For a
    unimodal ``f`` the bracket shrinks by ``0.618`` per iteration; for any ``f`` the
    returned point lies in ``[lo, hi]`` and is the best of the points evaluated last, so
    callers that only need *some* admissible point (every bound here is valid at every
    point) never depend on unimodality.
    """
    a = np.array(lo, dtype=np.float64, copy=True)
    b = np.array(hi, dtype=np.float64, copy=True)
    c = b - _INV_PHI * (b - a)
    d = a + _INV_PHI * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iterations):
        left = fc <= fd  # keep [a, d] (the old c becomes d) or [c, b] (the old d becomes c)
        a = np.where(left, a, c)
        b = np.where(left, d, b)
        point = np.where(left, b - _INV_PHI * (b - a), a + _INV_PHI * (b - a))
        value = f(point)
        c, fc, d, fd = (
            np.where(left, point, d),
            np.where(left, value, fd),
            np.where(left, c, point),
            np.where(left, fc, value),
        )
    return np.where(fc <= fd, c, d)


def log_normal_box(
    center: np.ndarray, half: np.ndarray, log_half: np.ndarray | None = None
) -> np.ndarray:
    """Lower bound on ``log P(|Z - c| <= h)``, ``Z ~ N(0,1)``, ``c >= 0``, ``h > 0``.

    Exact to rounding where resolvable.

    The exact value ``log(Phi(c + h) - Phi(c - h))`` (upper tails in log space when
    ``c >= h``, else ``log1p`` of the two tail masses) is used where the interval is wide
    enough to be resolved (``h > 1e-7 max(1, c)``); below that the endpoints round
    together, and the density bound ``log(2h) + log phi(c + h)`` (the density on the
    interval is at least its value at the far endpoint) is used instead. Both are lower
    bounds; the larger is returned. ``log_half`` (default ``log h``) keeps the density bound
    finite when ``h`` underflows.
    """
    center = np.asarray(center, dtype=np.float64)
    half = np.asarray(half, dtype=np.float64)
    lo = center - half
    hi = center + half
    if log_half is None:
        log_half = np.log(half)
    density = _LOG2 + log_half - 0.5 * hi * hi - _HALF_LOG_2PI
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if lo.size <= 4096:  # small arrays: both branches, less indexing overhead
            upper_lo, upper_hi = special.log_ndtr(-lo), special.log_ndtr(-hi)
            right = upper_lo + log1mexp(upper_hi - upper_lo)
            across = np.log1p(-(special.ndtr(lo) + special.ndtr(-hi)))
            exact = np.where(lo >= 0.0, right, across)
        else:
            lo, hi = np.broadcast_arrays(lo, hi)
            exact = np.empty(lo.shape)
            side = lo >= 0.0
            exact[side] = log_diff_exp(special.log_ndtr(-lo[side]), special.log_ndtr(-hi[side]))
            exact[~side] = np.log1p(-(special.ndtr(lo[~side]) + special.ndtr(-hi[~side])))
    resolved = half > 1e-7 * np.maximum(1.0, center)
    return np.where(resolved & np.isfinite(exact), np.maximum(exact, density), density)
