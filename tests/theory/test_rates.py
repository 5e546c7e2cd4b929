"""Assembly of the contraction rate: reductions, comparisons, shape properties, result object."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import optimize, special

from ssbnn_theory import (
    Architecture,
    InvalidParameterError,
    PriorSpec,
    contraction_rate,
    dense_rate,
    edge_sparse_rate,
    local_slope,
)

from .strategies import RESULT_KEYS, architectures, prior_specs

SHAPE_EXAMPLES = 150


def monotone_from(arch: Architecture, sigma_e: float = 1.0, kappa_log: float = 1.0) -> float:
    """The sample size past which docs/theory.md (section 4.2) states the shape properties."""
    return max(math.exp(2 * (1 + 2 * kappa_log)), math.e**2 * sigma_e**2 * arch.coordinates)


def test_dense_one_hidden_layer_reduces_to_hand_formula():
    # one hidden layer, all nodes active, equal bounds, Gaussian slab: every term by hand
    p, k, bound, sigma0, n = 3, 5, 1.2, 0.8, np.array([200.0, 5e3, 1e6])
    arch = Architecture(p, [k], None, bound, "tanh")
    spec = PriorSpec("ss-ig", sigma_0=sigma0)
    rate = contraction_rate(arch, spec, n, 0.7, inclusion=[0.01], kappa_log=1.0)
    h1 = min(bound * (p + 1), 1.0)  # tanh caps the envelope at 1
    lam = k * h1 + 1 + k * bound * (p + 1)  # Lambda_2 = (k H_1 + 1) + k B Lambda_1
    t = k * (p + 1) + 1 * (k + 1)
    for i, ni in enumerate(n):
        eta = 0.7 * math.sqrt(t / ni)

        def d_minus_eta(delta, eta=eta):
            d1 = delta * (p + 1)
            return delta * (k * h1 + 1) + k * (bound + delta) * d1 - eta

        delta = optimize.brentq(d_minus_eta, 0.0, eta / lam, xtol=1e-300, rtol=1e-15)
        phi = -math.log(
            special.ndtr((bound + delta) / sigma0) - special.ndtr((bound - delta) / sigma0)
        )
        n_r_n = k * math.log(100) + k * (p + 1) * phi + (k + 1) * phi  # s = k: no (1-lambda) term
        assert rate.delta[i] == pytest.approx(delta, rel=1e-9)
        assert rate.n_r_n[i] == pytest.approx(n_r_n, rel=1e-9)
        assert rate.eps2[i] == pytest.approx(n_r_n / ni * math.log(ni) ** 2, rel=1e-9)
    assert rate.log_lipschitz == pytest.approx(math.log(lam), rel=1e-14)


@settings(max_examples=50)
@given(arch=architectures(max_depth=3, max_width=20, max_p=20), spec=prior_specs())
def test_dense_rate_is_the_rate_with_every_node_active(arch, spec):
    n = [1e3, 1e6]
    assert dense_rate(arch, spec, n).eps2 == pytest.approx(
        contraction_rate(arch.replace(active=arch.hidden), spec, n).eps2, rel=1e-12
    )
    # node sparsity never hurts: the sparse truth's rate is at most the dense one
    assert np.all(
        contraction_rate(arch, spec, n).eps2 <= dense_rate(arch, spec, n).eps2 * (1 + 1e-9)
    )


@settings(max_examples=100)
@given(arch=architectures(max_depth=4, max_width=50, max_p=200), kappa=st.floats(0, 2))
def test_edge_comparison_is_bai_formula(arch, kappa):
    n = np.array([1e3, 3e4, 1e7])
    counts = [arch.p, *arch.active, arch.outputs]
    s = sum(counts[i + 1] * (counts[i] + 1) for i in range(arch.depth + 1))
    big_n, depth = max(arch.hidden), arch.depth
    r = (depth + 1) * s / n * math.log(big_n) + s / n * np.log(arch.p * np.sqrt(n / s))
    got = edge_sparse_rate(arch, n, kappa_log=kappa)
    assert got.edges == s and got.width == big_n
    assert got.r_n == pytest.approx(r, rel=1e-12)
    assert got.eps2 == pytest.approx(np.maximum(r, 0) * np.log(n) ** (2 * kappa), rel=1e-12)


def _eps2(arch, spec, n, sigma_e=1.0):
    return contraction_rate(arch, spec, n, sigma_e, conditions=False).eps2


@settings(max_examples=SHAPE_EXAMPLES)
@given(
    arch=architectures(max_depth=3, max_width=12, max_p=12, min_bound=0.05),
    spec=prior_specs(),
    layer=st.integers(0, 3),
    what=st.sampled_from(["bound", "width", "active"]),
    bump=st.integers(1, 3),
    sigma_e=st.floats(0.3, 2.0),
    log_factor=st.floats(0.0, 8.0),
)
def test_rate_increases_in_bounds_widths_and_active_nodes(
    arch, spec, layer, what, bump, sigma_e, log_factor
):
    bounds, hidden, active = list(arch.bounds), list(arch.hidden), list(arch.active)
    if what == "bound":
        bounds[layer % len(bounds)] *= 1 + 0.5 * bump
    elif what == "width":
        # not for SS-GL under active fan-in: see test_gl_active_fan_in_rate_can_fall_with_width
        assume(not (spec.prior.value == "ss-gl" and arch.fan_in.value == "active"))
        hidden[layer % len(hidden)] += bump
    else:
        i = layer % len(active)
        assume(active[i] < hidden[i])
        active[i] = min(hidden[i], active[i] + bump)
    bigger = arch.replace(bounds=bounds, hidden=hidden, active=active)
    n = monotone_from(bigger, sigma_e) * math.exp(log_factor)
    assert _eps2(bigger, spec, n, sigma_e) >= _eps2(arch, spec, n, sigma_e) * (1 - 1e-9)


def test_gl_active_fan_in_rate_can_fall_with_width():
    # The counterexample explore found (docs/theory.md, 4.2): under active fan-in a wider
    # layer 1 leaves the output layer's r = s_1 + 1 constrained weights unchanged but enlarges
    # its group, d = k_1 + 1; the group lasso's tau^2 ~ Gamma((d + 1)/2, kappa^2/2) then puts
    # more mass near B, and that fall outweighs the larger selection term.
    spec = PriorSpec("ss-gl", sigma_0=0.5, kappa=2.0, gaussian_output=False)
    n = 403.4287934927351
    rates = [
        contraction_rate(
            Architecture(1, [k], [1], 1.0, "relu", outputs=2, fan_in=fan), spec, n, conditions=False
        )
        for k, fan in ((1, "active"), (2, "active"), (2, "full"))
    ]
    narrow, wide, wide_full = (float(r.eps2[0]) for r in rates)
    assert wide < narrow * (1 - 1e-3)  # 3.950 against 3.981
    magnitude = [r.to_dict()["terms"]["slab_magnitude"][0][1] for r in rates[:2]]
    assert magnitude[1] < magnitude[0] - 1.0  # the output layer's term: 7.67 against 8.70
    assert wide_full > narrow  # full fan-in: the wider group is also constrained, r = d


@settings(max_examples=SHAPE_EXAMPLES)
@given(
    arch=architectures(max_depth=3, max_width=12, max_p=12),
    spec=prior_specs(),
    sigma_e=st.floats(0.3, 2.0),
    kappa_log=st.floats(0.0, 2.0),
)
def test_rate_decreases_in_n_past_the_stated_point(arch, spec, sigma_e, kappa_log):
    start = monotone_from(arch, sigma_e, kappa_log)
    n = start * np.geomspace(1.0, 1e8, 40)
    eps2 = contraction_rate(arch, spec, n, sigma_e, kappa_log=kappa_log, conditions=False).eps2
    assert np.all(np.diff(eps2) < 0)


def test_local_slope_matches_secant_and_tends_to_minus_one():
    arch = Architecture(10, [8, 8], [3, 2], 1.0)
    n = np.array([1e3, 1e5, 1e8, 1e40, 1e200])
    slope = local_slope(arch, "ss-gl", n)
    h = 1e-3
    up = contraction_rate(arch, "ss-gl", n * math.exp(h), conditions=False).eps2
    down = contraction_rate(arch, "ss-gl", n * math.exp(-h), conditions=False).eps2
    assert slope == pytest.approx((np.log(up) - np.log(down)) / (2 * h), abs=1e-4)
    # asymptotically -1 + (1 + 2 kappa_log)/log n (docs/theory.md, section 4.2), kappa_log = 1.5
    assert slope[-1] == pytest.approx(-1 + 4 / math.log(1e200), abs=2e-3)
    assert np.all(np.diff(slope) < 0)


def test_result_terms_add_up_and_serialise():
    arch = Architecture(100, [16, 16], [4, 3], 1.5)
    rate = contraction_rate(arch, "ss-ghs", [512, 4096, 32768], xi_n=0.01)
    assert rate.n_r_n == pytest.approx(rate.selection.sum(1) + rate.slab.sum(1), rel=1e-12)
    assert rate.slab == pytest.approx(rate.resolution + rate.magnitude, rel=1e-12)
    assert rate.risk_bound == pytest.approx(rate.eps2 + rate.r_n + 0.01, rel=1e-12)
    assert np.all(rate.r_n >= 0.5 * arch.coordinates / rate.n)
    d = json.loads(json.dumps(rate.to_dict(), allow_nan=False))
    for key in RESULT_KEYS:
        assert key in d
    assert d["architecture"] == arch.to_dict() and d["prior"]["prior"] == "ss-ghs"
    assert "universal constants" in d["risk_bound"]["label"]
    assert len(d["terms"]["selection"]) == 3 and len(d["terms"]["slab"][0]) == 3
    assert {c["name"] for c in d["conditions"]} >= {"prior concentration", "sieve entropy"}
    per_layer = np.stack([rate.selection[:, 0], rate.resolution[:, 0], rate.magnitude[:, 0]])
    names = ["selection", "slab resolution", "slab magnitude"]
    assert rate.dominant_per_layer[0][0] == names[int(np.argmax(per_layer[:, 0]))]


def test_conditions_react_to_the_inclusion_probabilities():
    arch = Architecture(2, [30, 30], [20, 2], 1.0)
    n = [1e3, 1e5]
    tiny = contraction_rate(arch, "ss-gl", n, inclusion=[1e-300, 1e-300])
    by_name = {c.name: c for c in tiny.conditions}
    assert not by_name["lambda_1 not too small"].holds.any()
    assert "adds more than this layer's slab term" in by_name["lambda_1 not too small"].verdict
    # a wide layer on wide inputs with lambda = 0.9: the binomial tail only pays for a sieve
    # of all 10^4 nodes (10^8 coordinates), tens of times n eps_n^2; ours keeps sbar far
    # below k and the ratio entropy / (n eps_n^2) near a constant (docs/theory.md, 4.2)
    wide = Architecture(10_000, [10_000, 5], [1, 1], 1.0)
    at_one = {"kappa_log": 1.0}  # the budget exp(-4 n eps_n^2) of this example's sieve
    large = contraction_rate(wide, "ss-gl", n, inclusion=[0.9, 0.9], **at_one).conditions
    large = {c.name: c for c in large}
    cond = large["sieve size, layer 1"]
    assert not cond.holds.any() and "forces a sieve of up to 10000" in cond.verdict
    ours = contraction_rate(wide, "ss-gl", n, **at_one)
    mine = {c.name: c for c in ours.conditions}["sieve size, layer 1"]
    assert np.all(ours.sieve_active[:, 0] < 10_000)
    assert np.all(cond.lhs / cond.rhs > 5 * mine.lhs / mine.rhs)
    assert np.all(mine.lhs / mine.rhs < 4)
    ours = contraction_rate(arch, PriorSpec("ss-ghs", global_scale=1.0, slab_width=1.0), n)
    assert not any(ours.failures())  # the theorem's conditions (the lambda order checks aside)
    plain = PriorSpec("ss-ghs", global_scale=1.0, slab_width=None)
    heavy = {c.name: c for c in contraction_rate(arch, plain, n).conditions}
    assert "Cauchy-like tails" in heavy["sieve entropy"].verdict


def test_reference_inclusion_and_closed_form_variant():
    arch = Architecture(50, [10, 10], [3, 3], 1.0, "relu", fan_in="active")
    n = [1e3, 1e6]
    ref = contraction_rate(arch, "ss-gl", n, inclusion="reference")
    assert ref.inclusion == "reference"
    assert ref.inclusion_prob == pytest.approx(np.exp(-ref.inclusion_reference), rel=1e-12)
    for spec in ("ss-ig", "ss-gl", "ss-ghs", PriorSpec("ss-ghs", global_scale=1.0, slab_width=0.7)):
        sharp = contraction_rate(arch, spec, n, conditions=False)
        closed = contraction_rate(arch, spec, n, closed_form=True, conditions=False)
        assert np.all(sharp.eps2 <= closed.eps2) and np.all(sharp.delta >= closed.delta)


def test_deep_wide_network_is_finite():
    arch = Architecture(1000, [1000] * 20, [50] * 20, 2.0)
    n = np.geomspace(1e3, 1e12, 200)
    for spec in ("ss-ig", "ss-gl", "ss-ghs"):
        rate = contraction_rate(arch, spec, n)
        assert np.all(np.isfinite(rate.eps2)) and np.all(rate.eps2 > 0)
        assert np.all(np.isfinite(rate.sieve_entropy))
        json.dumps(rate.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n": [100, 1.0]}, "n"),
        ({"n": np.nan}, "n"),
        ({"sigma_e": 0.0}, "sigma_e"),
        ({"kappa_log": -1.0}, "kappa_log"),
        ({"xi_n": -0.1}, "xi_n"),
        ({"xi_n": [0.1, 0.2, 0.3]}, "xi_n"),
        ({"inclusion": "bai"}, "inclusion"),
        ({"inclusion": [0.5]}, "inclusion"),
        ({"inclusion": [0.5, 1.0]}, "inclusion"),
        ({"C_lambda": -2}, "C_lambda"),
        ({"prior": "ss-xx"}, "prior"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs, field):
    args = {"arch": Architecture(5, [4, 4], [2, 2]), "prior": "ss-gl", "n": [100, 1000]}
    args.update(kwargs)
    with pytest.raises(InvalidParameterError) as info:
        contraction_rate(**args)
    assert info.value.field == field


@pytest.mark.parametrize(
    "arch",
    [
        Architecture(1, [1]),
        Architecture(3, [5, 4], [1, 1], 0.0),  # all bounds 0: Q = 0 in the closed-form t
        Architecture(3, [5, 4], [2, 2], [0, 1, 0], "silu", 3, "active"),
        Architecture(10**5, [10**4] * 3, [1, 1, 1], 100.0, "sigmoid"),
    ],
)
@pytest.mark.parametrize(
    "spec",
    [
        "ss-ig",
        "ss-gl",
        "ss-ghs",
        PriorSpec("ss-ghs", slab_width=0.1, global_scale=1e-3),
        PriorSpec("ss-gl", kappa=50, sigma_0=1e-3, gaussian_output=False),
    ],
)
def test_degenerate_inputs_stay_finite(arch, spec):
    n = [1.5, 2.0, 1e6, 1e300]
    sharp = contraction_rate(arch, spec, n)
    closed = contraction_rate(arch, spec, n, closed_form=True)
    assert np.all(np.isfinite(sharp.eps2)) and np.all(sharp.eps2 > 0)
    assert np.all(sharp.eps2 <= closed.eps2 * (1 + 1e-9))
    json.dumps(sharp.to_dict(), allow_nan=False)
