"""Lemma L1: the envelope and perturbation bounds, attacked with float64 forward passes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssbnn_theory import (
    Architecture,
    delta_star,
    envelope,
    log_delta_star,
    log_envelope,
    log_lipschitz,
    log_perturbation_bound,
    perturbation_bound,
)
from ssbnn_theory.lipschitz import arch_network

from .strategies import Network, architectures, perturb, probe_inputs, random_truth

# The bounds are exact inequalities; the only slack allowed is float64 rounding of the
# forward passes and of the log-space recursion: relative 1e-9 (observed errors ~1e-15).
REL = 1e-9
L1_EXAMPLES = 400
ENVELOPE_EXAMPLES = 200


@settings(max_examples=L1_EXAMPLES)
@given(
    arch=architectures(),
    seed=st.integers(0, 2**32 - 1),
    log10_delta=st.floats(-4.0, 0.5),
    mode=st.sampled_from(["uniform", "corner", "gradient"]),
)
def test_perturbation_never_exceeds_bound(arch, seed, log10_delta, mode):
    rng = np.random.default_rng(seed)
    delta = 10.0**log10_delta
    truth = random_truth(arch, rng)
    x = probe_inputs(arch.p, rng)
    x0 = x[rng.integers(len(x))]
    theta = perturb(truth, delta, rng, mode, x0)
    observed = np.max(np.abs(theta.forward(x) - truth.forward(x)))
    bound = float(perturbation_bound(arch, delta)[()])
    assert observed <= bound * (1 + REL) + 1e-300, (observed, bound)


@settings(max_examples=ENVELOPE_EXAMPLES)
@given(arch=architectures(), seed=st.integers(0, 2**32 - 1))
def test_envelope_bounds_hidden_outputs(arch, seed):
    rng = np.random.default_rng(seed)
    truth = random_truth(arch, rng)
    x = probe_inputs(arch.p, rng)
    h_bound = envelope(arch)
    assert h_bound[0] == 1.0
    for layer, h in enumerate(truth.hidden_outputs(x), start=1):
        assert np.max(np.abs(h)) <= h_bound[layer] * (1 + REL)


def test_adversarial_attack_reaches_first_order_bound():
    # One hidden ReLU node on one input, all weights at +B: the gradient-sign perturbation
    # is the worst case and the bound is attained up to the delta^2 term (attack has teeth).
    arch = Architecture(1, [1], [1], 1.0, "relu")
    w = [np.array([[1.0]]), np.array([[1.0]])]
    b = [np.array([1.0]), np.array([1.0])]

    truth = Network(arch, w, b, [np.array([True])])
    delta = 1e-3
    theta = perturb(truth, delta, np.random.default_rng(0), "gradient", np.array([1.0]))
    observed = abs(theta.forward(np.array([[1.0]])) - truth.forward(np.array([[1.0]])))[0, 0]
    bound = float(perturbation_bound(arch, delta)[()])
    assert observed == pytest.approx(bound, rel=1e-12)


@settings(max_examples=200)
@given(arch=architectures(max_depth=4, max_width=50, max_p=50), log_eta=st.floats(-30.0, 30.0))
def test_delta_star_inverts_the_bound(arch, log_eta):
    # D(delta*) <= eta, and D(delta* (1 + 1e-9)) > eta: delta* is the largest such delta to 1e-9
    u = float(log_delta_star(arch, log_eta)[()])
    assert float(log_perturbation_bound(arch, np.exp(u))[()]) <= log_eta
    assert float(log_perturbation_bound(arch, np.exp(u) * (1 + 1e-9))[()]) > log_eta
    closed = float(log_delta_star(arch, log_eta, closed_form=True)[()])
    assert closed <= u
    assert float(log_perturbation_bound(arch, np.exp(closed))[()]) <= log_eta


@settings(max_examples=100)
@given(arch=architectures(max_depth=4, max_width=20, max_p=20), log10_delta=st.floats(-6, 1))
def test_lipschitz_factor_is_derivative_at_zero(arch, log10_delta):
    # D(delta) = sum_k a_k delta^k with a_k >= 0 (docs/theory.md 3.1): g = D(delta)/delta is
    # nondecreasing with infimum Lambda = a_1, and (g - Lambda)/delta = sum_{k>=2} a_k
    # delta^(k-2) is nondecreasing too, so the gap g - Lambda at 1e-12 is at most 1/100 of the
    # gap at 1e-10. Slack 1e-12 relative: the log-space evaluation of D rounds at ~1e-14.
    lam = np.exp(log_lipschitz(arch))
    delta = 10.0**log10_delta
    points = np.array([delta, delta / 2, 1e-10, 1e-12])
    ratio = np.exp(log_perturbation_bound(arch, points)) / points
    assert ratio[0] >= ratio[1] * (1 - 1e-12)
    assert ratio[1] >= lam * (1 - 1e-12)
    assert ratio[3] >= lam * (1 - 1e-12)
    assert ratio[3] - lam <= (ratio[2] - lam) * 1e-2 + 1e-12 * lam


def test_deep_and_wide_networks_give_finite_logs():
    arch = Architecture(1000, [1000] * 100, [1000] * 100, 3.0, "relu")
    assert np.isfinite(log_lipschitz(arch)) and log_lipschitz(arch) > 709  # beyond float range
    assert np.all(np.isfinite(log_envelope(arch)))
    log_eta = np.linspace(-50, 50, 101)
    u = log_delta_star(arch, log_eta)
    assert np.all(np.isfinite(u))
    assert np.all(arch_network(arch).evaluate(u)[0] <= log_eta)  # delta* below float range
    assert np.isinf(perturbation_bound(arch, 1.0)[()])  # honest overflow, no warning


def test_bounded_activations_cap_the_envelope():
    tanh = Architecture(10, [50, 50], None, 5.0, "tanh")
    assert np.all(envelope(tanh)[1:] == 1.0)
    relu = Architecture(10, [50, 50], None, 5.0, "relu")
    assert envelope(relu)[2] == pytest.approx(5.0 * (50 * 5.0 * 11 + 1), rel=1e-12)


def test_active_fan_in_counts_only_active_nodes():
    full = Architecture(3, [10, 10], [2, 2], 1.0, "relu")
    active = full.replace(fan_in="active")
    assert active.fan_in_counts == (3, 2, 2) and full.fan_in_counts == (3, 10, 10)
    assert log_lipschitz(active) < log_lipschitz(full)


def test_delta_star_rejects_bad_eta():
    arch = Architecture(2, [2])
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="eta"):
            delta_star(arch, bad)
