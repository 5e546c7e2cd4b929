"""Conditions that can fail: per-layer lambda checks, the log exponent, flagged rows.

docs/theory.md, section 4.2. The lambda checks compare, per hidden layer ``l``, the two parts
of the selection term with that layer's slab term ``s_l phi_l`` (which does not depend on
``lambda``): ``s_l log(1/lambda_l)`` (too small) and ``(k_l - s_l) log(1/(1 - lambda_l))``
(too large). Both are exact functions of ``lambda_l``, so for every architecture there are
inclusion probabilities on each side; the property tests construct them and check the
verdicts flip.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ssbnn_theory import Architecture, PriorSpec, contraction_rate
from ssbnn_theory.cli import main
from ssbnn_theory.targets import DEFAULT_ARCHITECTURE

from .strategies import prior_specs


@st.composite
def sparse_layers(draw: st.DrawFn) -> Architecture:
    """Small inputs, 1-2 hidden layers, each with inactive nodes (k_l > s_l)."""
    depth = draw(st.integers(1, 2))
    active = [draw(st.integers(1, 3)) for _ in range(depth)]
    hidden = [s + draw(st.integers(1, 12)) for s in active]
    return Architecture(
        draw(st.integers(1, 4)),
        hidden,
        active,
        draw(st.floats(0.1, 2.0)),
        draw(st.sampled_from(["relu", "tanh"])),
    )


def _by_name(rate):
    return {c.name: c for c in rate.conditions}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    arch=sparse_layers(),
    spec=prior_specs(),
    log10_n=st.floats(2.0, 8.0),
    layer=st.integers(1, 2),
)
def test_lambda_not_too_large_fails_and_holds_for_the_same_architecture(arch, spec, log10_n, layer):
    layer = min(layer, arch.depth)
    col = layer - 1
    n = 10.0**log10_n
    slab = contraction_rate(arch, spec, n, conditions=False).slab[0, col]  # s_l phi_l
    k, s = arch.hidden[col], arch.active[col]
    per_node = slab / (k - s)  # the largest log(1/(1 - lambda)) that still holds
    # lambda just below 1 must be representable: 1 - lambda >= e^-24 = 4e-11, which the float
    # spacing 1.1e-16 near 1 resolves to a relative 3e-6
    assume(0.0 < per_node < 16.0)
    name = f"lambda_{layer} not too large"
    results = {}
    for factor in (0.5, 1.5):  # log(1/(1 - lambda)) at half and 1.5 times the threshold
        lam = np.full(arch.depth, 0.5)
        lam[col] = -math.expm1(-factor * per_node)
        results[factor] = _by_name(contraction_rate(arch, spec, n, inclusion=lam))[name]
    assert results[0.5].holds.all() and not results[1.5].holds.any()
    assert "costs more than this layer's slab term" in results[1.5].verdict
    # the price is exact up to the rounding of lambda near 1 (relative 3e-6 in 1 - lambda)
    assert results[1.5].lhs[0] == pytest.approx(1.5 * slab, rel=1e-4)


@settings(max_examples=60, deadline=None)
@given(arch=sparse_layers(), spec=prior_specs(), log10_n=st.floats(2.0, 8.0))
def test_lambda_not_too_small_fails_and_holds_for_the_same_architecture(arch, spec, log10_n):
    n = 10.0**log10_n
    slab = contraction_rate(arch, spec, n, conditions=False).slab[0, : arch.depth]
    s = np.asarray(arch.active, dtype=float)
    per_node = slab / s  # log(1/lambda_l) at which s_l log(1/lambda_l) = s_l phi_l
    for factor, expected in ((0.5, True), (2.0, False)):
        lam = np.exp(-factor * per_node)
        rate = contraction_rate(arch, spec, n, inclusion=lam)
        for layer in range(1, arch.depth + 1):
            cond = _by_name(rate)[f"lambda_{layer} not too small"]
            assert bool(cond.holds[0]) is expected, (layer, factor)
            assert cond.lhs[0] == pytest.approx(factor * slab[layer - 1], rel=1e-9)


def test_default_layer_one_is_compared_with_its_own_slab_term():
    # the audit's example: layer 1's selection term (6988 nats at n = 32768) exceeds its own
    # slab term (6279); it was compared with the slab total of all layers and "held"
    rate = contraction_rate(DEFAULT_ARCHITECTURE, "ss-ig", [512, 32768], kappa_log=1.0)
    cond = _by_name(rate)["lambda_1 not too small"]
    assert cond.lhs[1] == pytest.approx(rate.selection[1, 0], rel=1e-9)  # lambda_1 tiny
    assert cond.rhs[1] == pytest.approx(rate.slab[1, 0], rel=1e-12)
    assert cond.lhs[1] > cond.rhs[1] > 0.5 * np.sum(rate.slab[1])
    assert not cond.holds.any()


def test_fully_active_layer_cannot_have_lambda_too_large():
    arch = Architecture(3, [4], [4], 1.0)
    rate = contraction_rate(arch, "ss-gl", 1e4, inclusion=[1 - 1e-15])
    cond = _by_name(rate)["lambda_1 not too large"]
    assert cond.holds.all() and "every node of the layer is active" in cond.verdict


@pytest.mark.parametrize("kappa_log, holds", [(0.0, False), (1.0, False), (1.01, True)])
def test_log_exponent_condition(kappa_log, holds):
    rate = contraction_rate(DEFAULT_ARCHITECTURE, "ss-gl", [1e3, 1e4], kappa_log=kappa_log)
    cond = _by_name(rate)["log exponent"]
    assert cond.holds.all() is holds or bool(cond.holds.all()) == holds
    assert ("log exponent" in rate.failures()[0]) is not holds


def test_cli_warns_at_kappa_log_one_and_below(capsys):
    for value in ("1", "0"):
        assert main(["rate", "--prior", "ss-gl", "--n", "1e3", "--kappa-log", value]) == 0
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ssbnn rate: warning: kappa_log = ")
        assert "not a proven rate: " in captured.out and "log exponent fails]" in captured.out
    assert main(["rate", "--prior", "ss-gl", "--n", "1e3"]) == 0
    assert capsys.readouterr().err == ""  # the default 1.5 is inside the argument


def test_plain_horseshoe_row_carries_its_failed_condition(capsys):
    assert main(["rate", "--prior", "ss-ghs", "--slab-width", "none", "--n", "1e3", "1e4"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.strip().startswith(("1000 ", "10000 "))]
    assert len(rows) == 2
    assert all(row.endswith("[not a proven rate: sieve entropy fails]") for row in rows)
    assert main(["rate", "--prior", "ss-ghs", "--n", "1e3"]) == 0  # regularised: a rate
    assert "not a proven rate" not in capsys.readouterr().out
    plain = contraction_rate(DEFAULT_ARCHITECTURE, PriorSpec("ss-ghs", slab_width=None), [1e3])
    assert plain.failures() == (("sieve entropy",),)
