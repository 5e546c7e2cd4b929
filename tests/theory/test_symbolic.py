"""The symbolic rate against the numeric closed-form variant, its leading order and slope."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from ssbnn_theory import Architecture, PriorSpec, contraction_rate, symbolic_rate

from .strategies import architectures, prior_specs

N = np.array([50.0, 1e3, 1e6, 1e12])
REL = 1e-9  # the tolerance; observed agreement is ~1e-15 (float64 vs 30-digit mpmath)
SYMBOLIC_EXAMPLES = 8

CASES = [
    (Architecture(5, [4, 3], [2, 1], [1.0, 2.0, 0.5], "relu"), "ss-gl"),
    (Architecture(3, [4], None, 1.0, "sigmoid"), "ss-ig"),
    (
        Architecture(4, [3, 2], [1, 2], 0.7, "tanh", 2, "full"),
        PriorSpec("ss-ghs", global_scale=0.5, slab_width=None),
    ),
    (
        Architecture(4, [3, 3], [1, 2], 0.7, "silu", fan_in="active"),
        PriorSpec("ss-ghs", global_scale=1.0, slab_width=0.8),
    ),
    (Architecture(2, [3], [2], 2.5, "relu"), PriorSpec("ss-gl", kappa=2.0, gaussian_output=False)),
]


@pytest.mark.parametrize("arch, prior", CASES)
def test_symbolic_equals_numeric_closed_form(arch, prior):
    sym = symbolic_rate(arch, prior, 0.8, kappa_log=0.5, C_lambda=1.5)
    num = contraction_rate(
        arch, prior, N, 0.8, kappa_log=0.5, C_lambda=1.5, closed_form=True, conditions=False
    )
    assert sym.evaluate(N) == pytest.approx(num.eps2, rel=REL)
    assert sym.evaluate(N, "delta") == pytest.approx(num.delta, rel=REL)
    assert sym.evaluate(N, "n_r_n") == pytest.approx(num.n_r_n, rel=REL)


@settings(max_examples=SYMBOLIC_EXAMPLES)
@given(
    arch=architectures(max_depth=2, max_width=2, max_p=2),
    spec=prior_specs(),
    sigma_e=st.floats(0.3, 2.0),
)
def test_symbolic_equals_numeric_random(arch, spec, sigma_e):
    sym = symbolic_rate(arch, spec, sigma_e)
    num = contraction_rate(arch, spec, N, sigma_e, closed_form=True, conditions=False)
    assert sym.evaluate(N) == pytest.approx(num.eps2, rel=REL)


def test_expression_in_architecture_symbols():
    arch = Architecture(5, [4, 3], [2, 1], [1.0, 2.0, 0.5])
    sym = symbolic_rate(arch, "ss-gl")
    names = {str(x) for x in sym.eps2.free_symbols}
    assert names == {"n", "k_1", "k_2", "s_1", "s_2", "B_1", "B_2", "B_3"}
    # substituting other values of the symbols gives the rate of that other architecture
    other = arch.replace(hidden=[6, 3], active=[3, 1], bounds=[1.0, 0.5, 0.5])
    got = sym.evaluate(N, at={"k_1": 6, "s_1": 3, "B_2": 0.5})
    want = contraction_rate(other, "ss-gl", N, closed_form=True, conditions=False).eps2
    assert got == pytest.approx(want, rel=REL)


@pytest.mark.parametrize("arch, prior", CASES[:2])
def test_local_slope_expression(arch, prior):
    sym = symbolic_rate(arch, prior)
    slope = sym.evaluate(N[1:], "local_slope")
    num = contraction_rate(arch, prior, N[1:], closed_form=True, conditions=False).local_slope()
    # central difference with step 0.01 in log n: truncation error O(1e-4 * |d^3 log eps^2|)
    assert slope == pytest.approx(num, abs=1e-5)


def test_leading_order_and_exponent():
    arch, prior = CASES[0]
    sym = symbolic_rate(arch, prior)
    a = arch.as_arrays()
    expected = 0.5 * (arch.coordinates + float(np.sum(a["s"][:-1] * a["d"][:-1])))
    assert float(sym.leading_coefficient.subs(sym.values)) == pytest.approx(expected, rel=1e-12)
    assert sym.n_exponent() == -1
    # eps_n^2 / leading order -> 1 like 1 + O(1/log n): the gap shrinks ~ 1/log n
    log_n = np.array([1e2, 1e3, 1e4, 1e5])
    ratio = sym.evaluate(log_n=log_n, what="ratio_to_leading")
    gap = np.abs(ratio - 1)
    assert np.all(np.diff(gap) < 0) and gap[-1] < 1e-3
    assert gap * log_n == pytest.approx(np.full(4, gap[-1] * log_n[-1]), rel=0.1)
    assert isinstance(sym.local_slope(), sympy.Expr)
    assert math.isfinite(float(sym.evaluate(1e300)[0]))
