"""Statistics of the report: log-log slopes with replicate-bootstrap intervals, and the one
constant of the theory overlay ``C eps_n^2``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ssbnn_theory.errors import InvalidParameterError

__all__ = ["Slope", "loglog_slope", "ols_slope", "theory_constant"]


@dataclass(frozen=True)
class Slope:
    """A log-log slope with its bootstrap interval.

    Attributes
    ----------
    slope
        Least-squares slope ``b`` of ``log ybar_n = a + b log n``, where
        ``ybar_n`` is the replicate mean at ``n``.
    low, high
        Percentile bootstrap interval at ``level``.
    intercept
        ``a`` (natural logs).
    level
        Coverage of the interval.
    """

    slope: float
    low: float
    high: float
    intercept: float
    level: float


def ols_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of the rows of ``y`` (``[..., k]``) against ``x`` (``[k]``)."""
    xc = x - x.mean()
    return (y - y.mean(axis=-1, keepdims=True)) @ xc / (xc @ xc)


def loglog_slope(
    n: Sequence[float],
    samples: Sequence[Sequence[float]],
    *,
    level: float = 0.95,
    boot: int = 2000,
    seed: int = 0,
) -> Slope:
    """Least-squares slope of ``log mean_r v[n, r]`` on ``log n``, bootstrap over replicates.

    With ``x_k = log n_k`` and ``y_k = log( (1/R_k) sum_r v_{k r} )`` the slope is
    ``b = sum_k (x_k - xbar)(y_k - ybar) / sum_k (x_k - xbar)^2``. The interval
    is the percentile interval of ``b*`` over ``boot`` bootstrap tables, each
    resampling the ``R_k`` replicates of every ``n_k`` with replacement (the
    replicates are independent; the ``n`` values are the design).

    Parameters
    ----------
    n
        At least two distinct sample sizes.
    samples
        ``samples[k]``: the replicate values (positive, finite) at ``n[k]``.
    level
        Interval coverage in ``(0, 1)``.
    boot
        Number of bootstrap resamples (``>= 100``).
    seed
        Seed of the resampling.

    Raises
    ------
    InvalidParameterError
        Fewer than two distinct ``n``, an empty sample, or a non-positive value.
    """
    x = np.log(np.asarray(n, dtype=float))
    if len(x) != len(samples):
        raise InvalidParameterError("samples", f"{len(x)} samples, one per n", len(samples))
    if len(np.unique(x)) < 2 or not np.isfinite(x).all():
        raise InvalidParameterError("n", "at least two distinct positive sizes", list(n))
    if not 0 < level < 1:
        raise InvalidParameterError("level", "a number in (0, 1)", level)
    if boot < 100:
        raise InvalidParameterError("boot", "an integer >= 100", boot)
    arrays = [np.asarray(s, dtype=float) for s in samples]
    for k, values in enumerate(arrays):
        if values.size == 0 or not (np.isfinite(values).all() and (values > 0).all()):
            raise InvalidParameterError(
                f"samples[{k}]", "a non-empty set of positive finite values", values.tolist()
            )
    y = np.log([values.mean() for values in arrays])
    slope = float(ols_slope(x, y))
    rng = np.random.default_rng(seed)
    means = np.stack(
        [
            values[rng.integers(0, values.size, (boot, values.size))].mean(axis=1)
            for values in arrays
        ],
        axis=1,
    )
    draws = ols_slope(x, np.log(means))
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    intercept = float(y.mean() - slope * x.mean())
    return Slope(slope, float(low), float(high), intercept, level)


def theory_constant(y: np.ndarray, eps2: np.ndarray) -> float:
    """The one constant ``C`` of the overlay ``C eps_n^2``: least squares in logs.

    Minimises ``sum_k (log ybar_k - log C - log eps_k^2)^2``, so
    ``log C = mean_k (log ybar_k - log eps_k^2)``: the theory curve keeps its
    shape (its slope in ``n``) and only its level is fitted.
    """
    return float(np.exp(np.mean(np.log(y) - np.log(eps2))))
