"""Lemma L4: the sieve's covering grid, its count, binomial tails and the mass outside the sieve."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ssbnn_theory import (
    Architecture,
    FanIn,
    delta_star,
    log_binomial_tail,
    log_lipschitz,
    log_mass_outside_sieve,
    sample_slab,
    sieve_entropy,
)
from ssbnn_theory.entropy import grid_points

from . import references
from .strategies import Network, architectures, prior_specs, probe_inputs

COVER_EXAMPLES = 150
REL = 1e-9  # float64 rounding of forward passes only


def _round_to_grid(value: np.ndarray, bound: float, delta: float) -> np.ndarray:
    grid = grid_points(bound, delta)
    return grid[np.argmin(np.abs(value[..., None] - grid), axis=-1)]


@settings(max_examples=COVER_EXAMPLES)
@given(
    sieve=architectures(max_depth=2, max_width=3, max_p=2, max_outputs=1, min_bound=0.1),
    log10_eps=st.floats(-1.5, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_sieve_member_is_within_eps_of_its_grid_point(sieve, log10_eps, seed):
    eps = 10.0**log10_eps
    delta = float(delta_star(sieve, eps)[()])
    rng = np.random.default_rng(seed)
    x = probe_inputs(sieve.p, rng, count=32)
    widths = sieve.widths
    for _ in range(10):
        # a member: at most sbar_l active nodes, inside the pattern S_l of exactly sbar_l nodes
        patterns = [
            np.isin(np.arange(k), rng.choice(k, s, replace=False))
            for k, s in zip(sieve.hidden, sieve.active, strict=True)
        ]
        member_w, member_b, grid_w, grid_b = [], [], [], []
        for layer in range(sieve.depth + 1):
            bound = sieve.bounds[layer]
            shape = (widths[layer + 1], widths[layer])
            rows = patterns[layer] if layer < sieve.depth else np.ones(shape[0], bool)
            alive = rows & (rng.random(shape[0]) < 0.8)  # some groups of S are zero
            w = np.where(alive[:, None], rng.uniform(-bound, bound, shape), 0.0)
            b = np.where(alive, rng.uniform(-bound, bound, shape[0]), 0.0)
            cols = np.ones(shape[1], bool)
            if sieve.fan_in is FanIn.ACTIVE and layer >= 1:
                cols = patterns[layer - 1]
                w = np.where(rows[:, None] & ~cols[None, :], rng.uniform(-9, 9, shape), w)
            gw = np.where(rows[:, None] & cols[None, :], _round_to_grid(w, bound, delta), 0.0)
            gb = np.where(rows, _round_to_grid(b, bound, delta), 0.0)
            member_w.append(w)
            member_b.append(b)
            grid_w.append(gw)
            grid_b.append(gb)
        member = Network(sieve, member_w, member_b, patterns)
        nearest = Network(sieve, grid_w, grid_b, patterns)
        gap = np.max(np.abs(member.forward(x) - nearest.forward(x)))
        assert gap <= eps * (1 + REL), (gap, eps)


@settings(max_examples=100)
@given(bound=st.floats(0.0, 10.0), delta=st.floats(1e-3, 20.0))
def test_grid_points_cover_the_interval(bound, delta):
    grid = grid_points(bound, delta)
    assert len(grid) == max(1, math.ceil(bound / delta))
    assert np.all(np.abs(grid) <= bound)
    w = np.linspace(-bound, bound, 1001)
    # tolerance: the float positions -B + (2j - 1) delta are exact up to a few ulp of B
    # (explore found 1.2e-15 past delta = 1e-3 at B = 9), far below any covering gap
    slack = 8 * np.finfo(float).eps * max(bound, delta)
    assert np.max(np.min(np.abs(w[:, None] - grid), axis=1)) <= delta + slack


def _own_grid(bound: float, delta: float) -> np.ndarray:
    """Centres -B + delta, -B + 3 delta, ... until [-B, B] is covered, the last one moved to B."""
    centres = [-bound + delta]
    while centres[-1] + delta < bound:
        centres.append(centres[-1] + 2 * delta)
    return np.minimum(np.asarray(centres), bound)


def test_count_formula_is_achieved_by_an_explicit_grid():
    # 1-2-1 ReLU sieve, one active hidden node, B = (1, 0.6), eps = 0.8. By hand (3.1):
    # H_1 = 1 * (1 + 1) = 2, D_1 = 2 delta, D_2 = delta (2 H_1 + 1) + 2 (0.6 + delta) D_1
    # = 7.4 delta + 4 delta^2, so delta* = (sqrt(7.4^2 + 16 * 0.8) - 7.4) / 8 = 0.10244
    sieve = Architecture(1, [2], [1], [1.0, 0.6], "relu")
    eps = 0.8
    delta = (math.sqrt(7.4**2 + 16 * eps) - 7.4) / 8
    assert float(delta_star(sieve, eps)[()]) == pytest.approx(delta, rel=1e-12)
    layer1, layer2 = _own_grid(1.0, delta), _own_grid(0.6, delta)
    for bound, grid in ((1.0, layer1), (0.6, layer2)):  # each grid covers its interval
        w = np.linspace(-bound, bound, 20001)
        assert np.max(np.min(np.abs(w[:, None] - grid), axis=1)) <= delta * (1 + 1e-12)
    networks = set()
    for node in range(2):  # the pattern: which one of the two hidden nodes is active
        for w1, b1 in itertools.product(layer1, repeat=2):
            for w2a, w2b, b2 in itertools.product(layer2, repeat=3):
                hidden = [(w1, b1) if j == node else (0.0, 0.0) for j in range(2)]
                networks.add((node, tuple(hidden), (w2a, w2b, b2)))
    # 2 patterns x 10^2 (ceil(1/0.10244) = 10) x 6^3 (ceil(0.6/0.10244) = 6)
    assert len(networks) == 2 * 10**2 * 6**3 == 43200
    assert float(sieve_entropy(sieve, eps)[()]) == pytest.approx(math.log(43200), rel=1e-12)
    # and the grid covers the sieve: members rounded to it stay within eps (forward passes)
    rng = np.random.default_rng(3)
    x = np.linspace(-1, 1, 401)[:, None]
    for _ in range(200):
        node = rng.integers(2)
        w1 = np.zeros((2, 1))
        b1 = np.zeros(2)
        w1[node, 0], b1[node] = rng.uniform(-1, 1, 2)
        w2, b2 = rng.uniform(-0.6, 0.6, (1, 2)), rng.uniform(-0.6, 0.6, 1)

        def snap(v, grid):
            return grid[np.argmin(np.abs(np.asarray(v)[..., None] - grid), axis=-1)]

        g1 = np.where(np.arange(2)[:, None] == node, snap(w1, layer1), 0.0)
        gb1 = np.where(np.arange(2) == node, snap(b1, layer1), 0.0)
        f = np.maximum(x @ w1.T + b1, 0) @ w2.T + b2
        g = np.maximum(x @ g1.T + gb1, 0) @ snap(w2, layer2).T + snap(b2, layer2)
        assert np.max(np.abs(f - g)) <= eps * (1 + 1e-12)


def test_original_formula_is_not_what_the_grid_gives():
    # the original statement (docs/theory.md, section 7): sbar d log(3 Lambdabar / eps),
    # without Bbar. With large bounds the grid needs ceil(Bbar/delta) > 3 Lambdabar / eps
    # points per coordinate (docs/theory.md, 3.4)
    sieve = Architecture(1, [1], [1], [1e6, 1e-3], "sigmoid")
    eps = 1e-3
    original = sum(s * d for s, d in zip(sieve.active_nodes, sieve.group_sizes, strict=True))
    original *= math.log(3 * math.exp(log_lipschitz(sieve)) / eps)
    assert float(sieve_entropy(sieve, eps)[()]) > original


@settings(max_examples=200)
@given(k=st.integers(1, 60), lam=st.floats(1e-6, 0.9), m=st.integers(0, 61))
def test_binomial_tail_bound(k, lam, m):
    bound = float(log_binomial_tail(k, math.log(lam), m)[()])
    exact = stats.binom.sf(m - 1, k, lam) if m >= 1 else 1.0
    assert exact <= math.exp(bound) * (1 + 1e-9) + 1e-300
    if m == k:
        assert bound == pytest.approx(k * math.log(lam), rel=1e-12)


def test_binomial_tail_chernoff_by_hand():
    # k = 60, lambda = 0.1, m = 30: Chernoff -k KL(1/2 || 0.1) = -30 log 5 - 30 log(5/9)
    # = -30.649537426, below the union bound log C(60, 30) + 30 log 0.1 = -29.766
    got = float(log_binomial_tail(60, math.log(0.1), 30)[()])
    assert got == pytest.approx(-30 * math.log(5) - 30 * math.log(5 / 9), rel=1e-12)
    assert got == pytest.approx(-30.649537426, rel=1e-10)


def test_binomial_tail_with_tiny_inclusion_probability():
    # lambda = e^-2000 underflows; P(Bin(k, lambda) >= m) ~ C(k, m) lambda^m
    got = float(log_binomial_tail(50, -2000.0, 3)[()])
    assert got <= math.log(math.comb(50, 3)) - 6000 + 1e-9  # never above the union bound
    assert got == pytest.approx(math.log(math.comb(50, 3)) - 6000, rel=1e-12)


@settings(max_examples=25)
@given(spec=prior_specs(), seed=st.integers(0, 2**32 - 1))
def test_mass_outside_sieve_above_monte_carlo(spec, seed):
    rng = np.random.default_rng(seed)
    k, sbar, lam = [6, 5], [2, 1], np.array([0.3, 0.15])
    bounds = [1.5, 2.0, 1.0]
    sieve = Architecture(3, k, sbar, bounds)
    draws = 4000
    outside = np.zeros(draws, bool)
    for layer in range(2):
        counts = rng.binomial(k[layer], lam[layer], size=draws)
        outside |= counts > sbar[layer]
        d = sieve.group_sizes[layer]
        for i in range(draws):
            if counts[i] and not outside[i]:
                w = sample_slab(spec, d, int(counts[i]), rng)
                outside[i] |= bool(np.max(np.abs(w)) > bounds[layer])
    w_out = sample_slab(spec.output_spec(), sieve.group_sizes[-1], draws, rng)
    outside |= np.max(np.abs(w_out), axis=1) > bounds[-1]
    hits = int(outside.sum())
    # exact one-sided Clopper-Pearson lower limit at level 1e-5
    lower = stats.beta.ppf(1e-5, hits, draws - hits + 1) if hits else 0.0
    bound = math.exp(float(log_mass_outside_sieve(sieve, spec, -np.log(lam))[()]))
    assert lower <= bound, (hits / draws, lower, bound)


def test_sieve_entropy_is_finite_for_huge_sieves():
    sieve = Architecture(10**4, [10**4] * 30, [10**3] * 30, 1e6, "relu")
    value = sieve_entropy(sieve, [1e-12, 1.0, 1e12])
    assert np.all(np.isfinite(value)) and np.all(np.diff(value) < 0)


@pytest.mark.parametrize("fan_in", ["full", "active"])
def test_mixed_sieve_entropy_against_independent_counts(fan_in):
    from ssbnn_theory.entropy import covering_terms, mixed_sieve_entropy

    arch = Architecture(7, [9, 8, 6], [2, 3, 1], [1.0, 2.0, 0.5, 1.5], "relu", fan_in=fan_in)
    sbar = np.array([[5.0, 3, 4], [2, 8, 6]])
    eps = np.array([0.1, 1.0])
    _, _, log_delta = covering_terms(arch, sbar, None, np.log(eps), False)
    got = mixed_sieve_entropy(arch, sbar, log_delta)
    for i in range(2):
        # the common grid: delta* of the sieve with sbar everywhere, by Brent's method on the
        # linear-space recursion of tests/theory/references.py
        widest = arch.replace(active=[int(c) for c in sbar[i]])
        delta = references.delta_star(widest, float(eps[i]))
        for layer in range(3):
            counts = list(arch.active)
            counts[layer] = int(sbar[i, layer])
            mixed = arch.replace(active=counts)
            # count the mixed sieve's grid networks on the common grid (section 3.4)
            direct = sum(
                math.log(math.comb(k, c)) for k, c in zip(arch.hidden, counts, strict=True)
            )
            fan = references.fan_in(mixed)
            for c, m, bound in zip([*counts, arch.outputs], fan, arch.bounds, strict=True):
                direct += c * (m + 1) * math.log(max(1, math.ceil(bound / delta)))
            assert got[i, layer] == pytest.approx(direct, rel=1e-12)
            # the mixed sieve is smaller than the widest one, so its own delta* is no smaller
            # and its own count no larger
            assert float(sieve_entropy(mixed, eps[i])[()]) <= got[i, layer] * (1 + 1e-12)
