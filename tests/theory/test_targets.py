"""Targets: teacher networks and the Hoelder-beta helper's rate exponent."""

from __future__ import annotations

import numpy as np
import pytest

from ssbnn_theory import (
    DEFAULT_ARCHITECTURE,
    InvalidParameterError,
    contraction_rate,
    hoelder_architecture,
    hoelder_rate,
    relu_teacher_architecture,
    teacher_rate,
)

# n from 1e8 to 1e80: the fit log risk = a + b log n + c log log n separates the polynomial
# exponent b from the polylog factors; over this range b is within 0.01 of the target
# (ceil() of the widths at the low end is the main residual, largest for beta/d large)
GRID = np.geomspace(1e8, 1e80, 30)


@pytest.mark.parametrize(
    "beta, d, prior, tol",
    [
        (1.0, 1, "ss-gl", 0.01),
        (2.0, 3, "ss-ghs", 0.01),
        (0.5, 2, "ss-ig", 0.01),
        (3.0, 1, "ss-gl", 0.01),
    ],
)
def test_hoelder_rate_exponent(beta, d, prior, tol):
    fit = hoelder_rate(beta, d, GRID, prior)
    assert fit.target == pytest.approx(-2 * beta / (2 * beta + d))
    assert fit.exponent == pytest.approx(fit.target, abs=tol)
    # the raw log-log slope is flatter: the polylog factors bend it (reported, not asserted tight)
    assert fit.raw_exponent > fit.exponent
    assert np.all(fit.depths >= np.log2(GRID) - 1)
    # approximation and estimation balance: xi_n / (eps_n^2 + r_n) has polynomial exponent 0
    ratio = fit.xi_n / (fit.risk_bound - fit.xi_n)
    design = np.stack([np.ones(GRID.size), np.log(GRID), np.log(np.log(GRID))], axis=1)
    slope = np.linalg.lstsq(design, np.log(ratio), rcond=None)[0][1]
    assert abs(slope) < 2 * tol


def test_hoelder_architecture_choices():
    arch, xi = hoelder_architecture(2.0, 4, 1e6)
    width = int(np.ceil(1e6 ** (4 / (2 * (4 + 4)))))
    assert arch.hidden[0] == width and arch.active == arch.hidden
    assert arch.depth == int(np.ceil(np.log2(1e6))) and arch.p == 4
    assert arch.fan_in.value == "active" and arch.activation.value == "relu"
    assert xi == pytest.approx(width ** (-4 * 2.0 / 4))
    with pytest.raises(InvalidParameterError, match=r"^beta: "):
        hoelder_architecture(0.0, 2, 100)
    with pytest.raises(InvalidParameterError, match=r"^n"):
        hoelder_rate(1.0, 1, [1e3, 1e4])


def test_teacher_rate_has_zero_approximation_error():
    arch = relu_teacher_architecture()
    assert arch == DEFAULT_ARCHITECTURE
    assert arch.to_dict() == {
        "p": 100,
        "hidden": [16, 16],
        "active": [4, 3],
        "bounds": [1.5, 1.5, 1.5],
        "activation": "relu",
        "outputs": 1,
        "fan_in": "full",
    }
    rate = teacher_rate(arch, "ss-gl", [1e3, 1e4])
    assert np.all(rate.xi_n == 0)
    assert rate.risk_bound == pytest.approx(rate.eps2 + rate.r_n)
    assert rate.eps2 == pytest.approx(contraction_rate(arch, "ss-gl", [1e3, 1e4]).eps2)
    with pytest.raises(TypeError):
        teacher_rate(arch, "ss-gl", 100, xi_n=0.1)
