"""Designs from the literature: ``bai_sparse_function`` (Bai et al. 2020),
``sun_regression`` and ``sun_classification`` (Sun et al. 2022), ``cubic_small_n``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from simulations.designs.base import MAX_P, Law, Truth, check_likelihood, design
from simulations.enums import Likelihood
from ssbnn_theory.validation import check_integer, check_positive


def _sparse_f0(a: float) -> Callable[[np.ndarray], np.ndarray]:
    """``f0 = a x2 / (1 + x1^2) + 5 sin(x3 x4) + 2 x5`` (1-based ``x_j``): Bai's ``a = 7``,
    Sun's ``a = 5``."""

    def f0(x: np.ndarray) -> np.ndarray:
        value = a * x[:, 1] / (1 + x[:, 0] ** 2) + 5 * np.sin(x[:, 2] * x[:, 3]) + 2 * x[:, 4]
        return value[:, None]

    return f0


def _uniform(g: np.random.Generator, m: int, p: int) -> np.ndarray:
    """``x ~ U(-1, 1)^p``."""
    return g.uniform(-1.0, 1.0, size=(m, p))


def _equicorrelated(g: np.random.Generator, m: int, p: int) -> np.ndarray:
    """``x_j = (e + z_j) / sqrt 2``, ``e, z_j ~ N(0, 1)`` independent: pairwise correlation 1/2."""
    e = g.standard_normal((m, 1))
    return (e + g.standard_normal((m, p))) / math.sqrt(2.0)


def _sparse_regression(
    p: int,
    sigma_e: float,
    inputs: Callable[[np.random.Generator, int, int], np.ndarray],
    f0: Callable[[np.ndarray], np.ndarray],
) -> Law:
    """``y = f0(x) + sigma_e e`` with ``f0`` of the first five inputs (a fixed truth)."""
    p = check_integer("p", p, lower=5, upper=MAX_P)
    sigma_e = check_positive("sigma_e", sigma_e)

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        x = inputs(g, m, p)
        return x, f0(x)

    return Law(p, 1, Likelihood.GAUSSIAN, sigma_e, Truth(relevant_inputs=tuple(range(5))), sample)


def _bai_sparse_function(truth_seed: int, *, p: int = 200, sigma_e: float = 1.0) -> Law:
    """x ~ U(-1,1)^p; f0 = 7 x2/(1 + x1^2) + 5 sin(x3 x4) + 2 x5; y = f0 + sigma_e e

    Bai, Song & Cheng (2020).
    """
    del truth_seed  # f0 is fixed
    return _sparse_regression(p, sigma_e, _uniform, _sparse_f0(7))


def _sun_regression(truth_seed: int, *, p: int = 2000, sigma_e: float = 1.0) -> Law:
    """x_j = (e + z_j)/sqrt 2 ~ N(0,1), correlation 1/2;
    f0 = 5 x2/(1 + x1^2) + 5 sin(x3 x4) + 2 x5; y = f0 + sigma_e e

    Sun, Song & Liang (2021): equicorrelated Gaussian inputs.
    """
    del truth_seed  # f0 is fixed
    return _sparse_regression(p, sigma_e, _equicorrelated, _sparse_f0(5))


def _sun_label(x: np.ndarray) -> np.ndarray:
    """``1{exp(x1) + x2^2 + 5 sin(x3 x4) - 3 > 0}`` (1-based ``x_j``)."""
    return np.exp(x[:, 0]) + x[:, 1] ** 2 + 5 * np.sin(x[:, 2] * x[:, 3]) - 3 > 0


def _sun_classification(
    truth_seed: int, *, p: int = 1000, likelihood: Likelihood | str = Likelihood.CATEGORICAL
) -> Law:
    """x_j = (e + z_j)/sqrt 2; y = 1{exp(x1) + x2^2 + 5 sin(x3 x4) - 3 > 0};
    exactly balanced classes

    Sun, Song & Liang (2021): equicorrelated inputs, deterministic label, balanced classes.
    Each sample of size ``m`` holds ``m // 2`` points of class 1 and ``m - m // 2``
    of class 0, each drawn from the law of ``x`` given its class (rejection on
    the first four coordinates), then shuffled. This is the law of the reference
    script, which redraws a point whose class is already full.
    """
    del truth_seed  # f0 is fixed
    p = check_integer("p", p, lower=4, upper=MAX_P)
    likelihood = check_likelihood(likelihood, (Likelihood.CATEGORICAL, Likelihood.BERNOULLI))

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        need = {True: m // 2, False: m - m // 2}
        kept: dict[bool, list[np.ndarray]] = {True: [], False: []}
        while any(need.values()):
            size = max(2 * m, 256)
            e = g.standard_normal((size, 1))
            head = np.concatenate([(e + g.standard_normal((size, 4))) / math.sqrt(2.0), e], axis=1)
            label = _sun_label(head)
            for cls in (True, False):
                take = head[label == cls][: need[cls]]
                kept[cls].append(take)
                need[cls] -= take.shape[0]
        rows = np.concatenate([*kept[True], *kept[False]])
        labels = np.concatenate([np.ones(m // 2), np.zeros(m - m // 2)])
        order = g.permutation(m)
        rows, labels = rows[order], labels[order]
        x = np.empty((m, p))
        x[:, :4] = rows[:, :4]
        x[:, 4:] = (rows[:, 4:5] + g.standard_normal((m, p - 4))) / math.sqrt(2.0)
        if likelihood is Likelihood.BERNOULLI:
            return x, labels[:, None]
        return x, np.stack([1.0 - labels, labels], axis=1)

    outputs = 1 if likelihood is Likelihood.BERNOULLI else 2
    return Law(p, outputs, likelihood, None, Truth(relevant_inputs=tuple(range(4))), sample)


def _cubic_small_n(truth_seed: int, *, sigma_e: float = 3.0) -> Law:
    """x ~ U(-4, 4); f0 = x^3; y = f0 + sigma_e e, sigma_e = 3"""
    del truth_seed  # f0 is fixed
    sigma_e = check_positive("sigma_e", sigma_e)

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        x = g.uniform(-4.0, 4.0, size=(m, 1))
        return x, x**3

    return Law(1, 1, Likelihood.GAUSSIAN, sigma_e, Truth(relevant_inputs=(0,)), sample)


_QUICK = {"n": 1000, "replicates": 2, "n_test": 2000}
BAI_SPARSE_FUNCTION = design("bai_sparse_function", "1", _bai_sparse_function, {**_QUICK, "p": 50})
SUN_REGRESSION = design("sun_regression", "1", _sun_regression, {**_QUICK, "p": 100})
SUN_CLASSIFICATION = design("sun_classification", "1", _sun_classification, {**_QUICK, "p": 100})
CUBIC_SMALL_N = design(
    "cubic_small_n", "1", _cubic_small_n, {"n": 100, "replicates": 4, "n_test": 2000}
)
