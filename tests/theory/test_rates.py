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

from . import references
from .strategies import RESULT_KEYS, architectures, prior_specs, random_truth

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


def test_noise_floor_binds_by_hand():
    # a slab far narrower than delta_n and lambda near 1: the slab and selection terms are
    # ~0, so n r_n is the noise floor n eta_n^2 / (2 sigma_e^2) = T / 2 = (2 + 2) / 2 = 2
    arch = Architecture(1, [1], None, 0.0)
    spec = PriorSpec("ss-ig", sigma_0=1e-3)
    rate = contraction_rate(
        arch, spec, [10.0], inclusion=[1 - 1e-9], kappa_log=1.0, conditions=False
    )
    assert rate.coordinates == 4
    assert rate.n_r_n == pytest.approx([2.0], rel=1e-12)
    assert rate.eps2 == pytest.approx([0.2 * math.log(10.0) ** 2], rel=1e-12)


@settings(max_examples=50)
@given(arch=architectures(max_depth=3, max_width=20, max_p=20), spec=prior_specs())
def test_dense_rate_counts_every_node(arch, spec):
    n = [1e3, 1e6]
    dense = dense_rate(arch, spec, n)
    # by hand: every group of every layer is active and constrained in full (both fan-in
    # modes), so T = sum_l k_l (k_{l-1} + 1), and the selection term has no (1 - lambda) part
    widths = [arch.p, *arch.hidden, arch.outputs]
    assert dense.coordinates == sum(widths[i + 1] * (widths[i] + 1) for i in range(arch.depth + 1))
    assert dense.selection == pytest.approx(
        np.asarray(arch.hidden) * dense.log_inv_inclusion, rel=1e-12
    )
    # the Lipschitz factor of the dense network, from an independent linear-space recursion
    assert dense.log_lipschitz == pytest.approx(
        math.log(references.lipschitz(arch.replace(active=None))), rel=1e-9, abs=1e-12
    )
    assert np.all(dense.n_r_n >= 0.5 * dense.coordinates)
    # node sparsity never hurts: the sparse truth's rate is at most the dense one
    assert np.all(contraction_rate(arch, spec, n).eps2 <= dense.eps2 * (1 + 1e-9))


@pytest.mark.parametrize(
    "arch, n, r_n",
    [
        # p = 4, hidden 3 with 2 active, one output: s = 2 (4 + 1) + 1 (2 + 1) = 13, N = 3,
        # r = (2 * 13 / 1000) log 3 + (13 / 1000) log(4 sqrt(1000 / 13)) = 0.07481398469
        (Architecture(4, [3], [2]), 1000.0, 0.07481398469),
        # p = 3, hidden 5-4 with 2-3 active, two outputs: s = 2 * 4 + 3 * 3 + 2 * 4 = 25, N = 5,
        # r = (3 * 25 / 1e5) log 5 + (25 / 1e5) log(3 sqrt(1e5 / 25)) = 0.00251848771
        (Architecture(3, [5, 4], [2, 3], outputs=2), 1e5, 0.00251848771),
    ],
)
def test_edge_rate_by_hand(arch, n, r_n):
    got = edge_sparse_rate(arch, n, kappa_log=0.5)
    assert got.r_n == pytest.approx([r_n], rel=1e-9)
    assert got.eps2 == pytest.approx([r_n * math.log(n)], rel=1e-9)  # (log n)^(2 kappa_log)


@settings(max_examples=100)
@given(
    arch=architectures(max_depth=4, max_width=12, max_p=12, min_bound=0.1),
    seed=st.integers(0, 2**32 - 1),
)
def test_edge_count_is_the_nonzeros_of_a_sparse_truth(arch, seed):
    # Bai et al.'s s is the number of nonzero weights and biases of the same function written
    # edge-sparsely: count them in a random node-sparse truth, zeroing the weights that leave
    # inactive nodes (their constant outputs psi(0) fold into the next biases)
    truth = random_truth(arch, np.random.default_rng(seed), extreme=0.0)
    alive = [np.ones(arch.p, bool), *truth.patterns, np.ones(arch.outputs, bool)]
    count = 0
    for layer, (w, b) in enumerate(zip(truth.weights, truth.biases, strict=True)):
        keep = alive[layer + 1][:, None] & alive[layer][None, :]
        count += int(np.count_nonzero(w[keep])) + int(np.count_nonzero(b[alive[layer + 1]]))
    got = edge_sparse_rate(arch, [1e3, 1e7])
    assert got.edges == count and got.width == max(arch.hidden)


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
    # the risk bound is C1 eps_n^2 + C2 (r_n + xi_n) with C1 = C2 = 1, checked by its behaviour:
    # xi_n enters additively with coefficient 1, and at kappa_log = 0 (eps_n^2 = r_n) the
    # bound without xi_n is exactly 2 r_n, at kappa_log = 1.5 it is (1 + log(n)^3) r_n
    more = contraction_rate(arch, "ss-ghs", [512, 4096, 32768], xi_n=0.26, conditions=False)
    assert more.risk_bound - rate.risk_bound == pytest.approx([0.25] * 3, rel=1e-12)
    flat = contraction_rate(arch, "ss-ghs", [512, 4096], kappa_log=0.0, conditions=False)
    assert flat.risk_bound == pytest.approx(2 * flat.n_r_n / np.array([512, 4096]), rel=1e-12)
    steep = contraction_rate(arch, "ss-ghs", [512, 4096], kappa_log=1.5, conditions=False)
    factor = 1 + np.log([512.0, 4096.0]) ** 3
    assert steep.risk_bound == pytest.approx(factor * steep.n_r_n / np.array([512, 4096]))
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
