"""Lemma L5: every closed-form KL against Monte Carlo and against scipy quadrature.

One registry drives the checks (numpyro's test_distributions style): each entry names the
KL function, a strategy for its parameters, and q and p as scipy distributions of the
variable on which quadrature and sampling are done (for log-normal q: ``y = log x``, where
``p``'s density carries the Jacobian ``e^y``; KL is invariant under the change of variable).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from ssbnn_theory import (
    InvalidParameterError,
    kl_bernoulli,
    kl_lognormal_gamma,
    kl_lognormal_invgamma,
    kl_normal,
)

MC_DRAWS = 100_000
KL_EXAMPLES = 60
# Simpson's rule, step sd/500 over +-40 sd, of a smooth Gaussian-weighted integrand: the
# discretisation error is far below 1e-8 relative (checked against scipy.integrate.quad)
QUAD_REL = 1e-7


@dataclass(frozen=True)
class Case:
    name: str
    kl: Callable[..., np.ndarray]
    params: Any  # hypothesis strategy of the KL's keyword arguments
    q_logpdf: Callable[[dict, np.ndarray], np.ndarray]
    p_logpdf: Callable[[dict, np.ndarray], np.ndarray]
    q_sample: Callable[[dict, np.random.Generator, int], np.ndarray]
    support: Callable[[dict], tuple[float, float]]


def _normal_params():
    return st.fixed_dictionaries(
        {
            "mu_q": st.floats(-3, 3),
            "sd_q": st.floats(0.2, 3),
            "mu_p": st.floats(-3, 3),
            "sd_p": st.floats(0.2, 3),
        }
    )


def _lognormal_params(last: str):
    return st.fixed_dictionaries(
        {
            "mu": st.floats(-2, 2),
            "sigma": st.floats(0.1, 1.5),
            "shape": st.floats(0.3, 5),
            last: st.floats(0.2, 5),
        }
    )


def _y_logpdf_gamma(k, y):  # density of y = log x for x ~ Gamma(shape, rate)
    return stats.gamma(k["shape"], scale=1 / k["rate"]).logpdf(np.exp(y)) + y


def _y_logpdf_invgamma(k, y):
    return stats.invgamma(k["shape"], scale=k["scale"]).logpdf(np.exp(y)) + y


CASES = [
    Case(
        "normal",
        kl_normal,
        _normal_params(),
        lambda k, x: stats.norm(k["mu_q"], k["sd_q"]).logpdf(x),
        lambda k, x: stats.norm(k["mu_p"], k["sd_p"]).logpdf(x),
        lambda k, rng, m: rng.normal(k["mu_q"], k["sd_q"], m),
        lambda k: (k["mu_q"] - 40 * k["sd_q"], k["mu_q"] + 40 * k["sd_q"]),
    ),
    Case(
        "lognormal_gamma",
        kl_lognormal_gamma,
        _lognormal_params("rate"),
        lambda k, y: stats.norm(k["mu"], k["sigma"]).logpdf(y),
        _y_logpdf_gamma,
        lambda k, rng, m: rng.normal(k["mu"], k["sigma"], m),
        lambda k: (k["mu"] - 40 * k["sigma"], k["mu"] + 40 * k["sigma"]),
    ),
    Case(
        "lognormal_invgamma",
        kl_lognormal_invgamma,
        _lognormal_params("scale"),
        lambda k, y: stats.norm(k["mu"], k["sigma"]).logpdf(y),
        _y_logpdf_invgamma,
        lambda k, rng, m: rng.normal(k["mu"], k["sigma"], m),
        lambda k: (k["mu"] - 40 * k["sigma"], k["mu"] + 40 * k["sigma"]),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@settings(max_examples=KL_EXAMPLES)
@given(data=st.data())
def test_kl_against_quadrature_and_monte_carlo(case, data):
    kw = data.draw(case.params)
    value = float(case.kl(**kw)[()])
    lo, hi = case.support(kw)

    grid = np.linspace(lo, hi, 40_001)  # step sd/500 over +-40 sd
    lq = case.q_logpdf(kw, grid)
    quad = integrate.simpson(np.exp(lq) * (lq - case.p_logpdf(kw, grid)), x=grid)
    assert value == pytest.approx(quad, rel=QUAD_REL, abs=1e-10)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = case.q_sample(kw, rng, MC_DRAWS)
    log_ratio = case.q_logpdf(kw, x) - case.p_logpdf(kw, x)
    se = log_ratio.std(ddof=1) / math.sqrt(MC_DRAWS)
    # the MC mean is within 5 standard errors (two-sided, P(miss) ~ 6e-7 per example)
    assert abs(value - log_ratio.mean()) <= 5 * se + 1e-12


@settings(max_examples=200)
@given(q=st.floats(0, 1), p=st.floats(0, 1))
def test_bernoulli_kl_is_the_two_point_sum(q, p):
    got = float(kl_bernoulli(q, p)[()])
    terms = []
    for qi, pi in ((q, p), (1 - q, 1 - p)):
        if qi > 0:
            terms.append(math.inf if pi == 0 else qi * (math.log(qi) - math.log(pi)))
    expected = sum(terms)
    if math.isinf(expected):
        assert math.isinf(got)
    else:
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert got >= -1e-15


def test_kls_broadcast_and_vanish_at_equality():
    assert kl_normal([0, 1], [1, 2], [0, 1], [1, 2]) == pytest.approx([0, 0], abs=1e-15)
    assert kl_bernoulli(0.3, [0.3, 0.5]).shape == (2,)
    # lognormal vs gamma: KL >= 0 everywhere, and agrees with scipy entropy identity
    values = kl_lognormal_gamma(np.linspace(-1, 1, 5)[:, None], 0.5, 2.0, [1.0, 3.0])
    assert values.shape == (5, 2) and np.all(values > 0)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: kl_bernoulli(1.5, 0.5), "q"),
        (lambda: kl_bernoulli(0.5, np.nan), "p"),
        (lambda: kl_normal(0, 0, 0, 1), "sd_q"),
        (lambda: kl_normal(0, 1, np.inf, 1), "mu_p"),
        (lambda: kl_lognormal_gamma(0, -1, 1, 1), "sigma"),
        (lambda: kl_lognormal_gamma(0, 1, 0, 1), "shape"),
        (lambda: kl_lognormal_invgamma(0, 1, 1, -2), "scale"),
        (lambda: kl_normal("a", 1, 0, 1), "mu_q"),
    ],
)
def test_kl_invalid_input_names_field(call, field):
    with pytest.raises(InvalidParameterError) as info:
        call()
    assert info.value.field == field


@pytest.mark.parametrize(
    "kl, args, q, p",
    [
        (kl_normal, (0.3, 0.7, -0.2, 1.4), stats.norm(0.3, 0.7), stats.norm(-0.2, 1.4)),
        (
            kl_lognormal_gamma,
            (0.4, 0.6, 2.5, 1.7),
            stats.norm(0.4, 0.6),
            lambda y: stats.gamma(2.5, scale=1 / 1.7).logpdf(np.exp(y)) + y,
        ),
        (
            kl_lognormal_invgamma,
            (-0.5, 0.9, 1.5, 0.8),
            stats.norm(-0.5, 0.9),
            lambda y: stats.invgamma(1.5, scale=0.8).logpdf(np.exp(y)) + y,
        ),
    ],
    ids=["normal", "lognormal-gamma", "lognormal-invgamma"],
)
def test_kl_at_fixed_points_by_adaptive_quadrature(kl, args, q, p):
    # one fixed point per closed form against scipy.integrate.quad (a cheap first check that
    # the mutation script runs before the registry's random ones)
    log_p = p.logpdf if hasattr(p, "logpdf") else p
    value, _ = integrate.quad(
        lambda y: q.pdf(y) * (q.logpdf(y) - log_p(y)),
        q.mean() - 30 * q.std(),
        q.mean() + 30 * q.std(),
        epsabs=0,
        epsrel=1e-12,
        limit=200,
    )
    assert float(kl(*args)) == pytest.approx(value, rel=1e-9)
    assert float(kl_bernoulli(0.3, 0.6)) == pytest.approx(
        0.3 * math.log(0.5) + 0.7 * math.log(0.7 / 0.4), rel=1e-12
    )
