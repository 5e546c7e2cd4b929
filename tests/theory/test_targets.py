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
    "beta, d, prior, target, width_exponent",
    [
        # Stone's (1982) minimax exponent -2 beta / (2 beta + d), and the width N_n ~ n^w,
        # w = d / (2 (d + 2 beta)), as literal fractions worked out by hand
        (1.0, 1, "ss-gl", -2 / 3, 1 / 6),
        (2.0, 3, "ss-ghs", -4 / 7, 3 / 14),
        (0.5, 2, "ss-ig", -1 / 3, 1 / 3),
        (3.0, 1, "ss-gl", -6 / 7, 1 / 14),
    ],
)
def test_hoelder_rate_exponent(beta, d, prior, target, width_exponent):
    # the risk, r_n and xi_n computed here from contraction_rate on the helper's architecture
    risk, r_n, xi, width = [], [], [], []
    for n in GRID:
        arch, xi_n = hoelder_architecture(beta, d, float(n))
        rate = contraction_rate(arch, prior, n, xi_n=xi_n, conditions=False)
        risk.append(float(rate.risk_bound[0]))
        r_n.append(float(rate.r_n[0]))
        xi.append(xi_n)
        width.append(float(arch.hidden[0]))
    log_n = np.log(GRID)
    design = np.stack([np.ones(GRID.size), log_n, np.log(log_n)], axis=1)

    def exponent(values):
        return np.linalg.lstsq(design, np.log(values), rcond=None)[0][1]

    # the pieces: N_n grows at the chosen power, xi_n = N^{-4 beta/d} falls at the target
    # (no logs: a plain log-log slope), r_n ~ N^2 polylog(n) / n falls at the target too
    assert np.polyfit(log_n, np.log(width), 1)[0] == pytest.approx(width_exponent, abs=0.002)
    assert np.polyfit(log_n, np.log(xi), 1)[0] == pytest.approx(target, abs=0.01)
    assert exponent(r_n) == pytest.approx(target, abs=0.01)
    # the whole risk bound, and the helper reports what was computed here
    assert exponent(risk) == pytest.approx(target, abs=0.01)
    fit = hoelder_rate(beta, d, GRID, prior)
    assert fit.exponent == pytest.approx(exponent(risk), rel=1e-9)
    assert fit.risk_bound == pytest.approx(risk, rel=1e-12)
    # the raw log-log slope is flatter: the polylog factors bend it
    assert fit.raw_exponent > fit.exponent
    assert np.all(fit.depths >= np.log2(GRID) - 1)


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
