"""Tests of simulations.metrics: closed forms against integrals, hand-computed cases, invariance."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from simulations.designs import generate
from simulations.metrics import (
    count_flops,
    count_kept_weights,
    count_parameters,
    evaluate,
    exceedance,
    hellinger_sq,
    input_error_rates,
    kept_counts,
    mean_parameter,
    median_mask_counts,
    prediction_scores,
    squared_l2,
)
from ssbnn_theory.errors import InvalidParameterError

F64 = torch.float64


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


# --------------------------------------------------------------------------- L2 and Hellinger


def test_squared_l2_hand_computed():
    f0 = t([[0.0, 1.0], [2.0, 0.0]])  # n = 2 points, 2 outputs
    f = t([[[[1.0, 1.0], [2.0, 2.0]]], [[[0.0, 3.0], [5.0, 0.0]]]])  # [M=2, R=1, 2, 2]
    # draw 0: (1 + 0 + 0 + 4) / 2 = 2.5; draw 1: (0 + 4 + 9 + 0) / 2 = 6.5
    torch.testing.assert_close(squared_l2(f, f0), t([[2.5], [6.5]]))


def _gaussian_affinity_quad(mu: float, mu0: float, sigma: float) -> float:
    dens = lambda y: math.sqrt(stats.norm.pdf(y, mu, sigma) * stats.norm.pdf(y, mu0, sigma))  # noqa: E731
    return integrate.quad(dens, -math.inf, math.inf, epsabs=1e-13, epsrel=1e-12)[0]


def test_gaussian_hellinger_equals_the_integral_over_y():
    """``1 - E_X int sqrt(p q) dy`` by adaptive quadrature, one output (tolerance: quad's 1e-10)."""
    sigma = 0.7
    f0 = t([[0.3], [-1.0], [2.0]])
    f = t([[[0.3], [0.5], [0.1]]])
    direct = 1 - np.mean(
        [
            _gaussian_affinity_quad(float(a), float(b), sigma)
            for a, b in zip(f[0, :, 0], f0[:, 0], strict=True)
        ]
    )
    assert hellinger_sq(f, f0, "gaussian", sigma).item() == pytest.approx(direct, abs=1e-10)


def test_gaussian_hellinger_multi_output_is_the_product_over_outputs():
    """Two outputs: the 2-D affinity integral ``int int sqrt(p q) dy1 dy2`` (dblquad, 1e-8)."""
    sigma = 0.5
    mu, mu0 = (0.4, -0.3), (0.0, 0.2)

    def density(y1, y2, m):  # N(m, sigma^2 I_2) at (y1, y2)
        r2 = (y1 - m[0]) ** 2 + (y2 - m[1]) ** 2
        return math.exp(-r2 / (2 * sigma**2)) / (2 * math.pi * sigma**2)

    def root(y2, y1):
        return math.sqrt(density(y1, y2, mu) * density(y1, y2, mu0))

    affinity = integrate.dblquad(root, -6, 6, -6, 6, epsabs=1e-11)[0]
    got = hellinger_sq(t([[list(mu)]]), t([list(mu0)]), "gaussian", sigma).item()
    assert got == pytest.approx(1 - affinity, abs=1e-8)


def test_gaussian_hellinger_against_monte_carlo_over_the_noise():
    """``d_H^2 = 1 - E_{X, Y ~ p0} sqrt(p_f(Y|X) / p0(Y|X))``; 4e5 draws, tolerance 5 std errors."""
    rng = np.random.default_rng(0)
    sigma = 1.0
    x_f0 = rng.normal(size=(50, 1))
    x_f = x_f0 + rng.normal(scale=0.8, size=(50, 1))
    idx = rng.integers(0, 50, size=400_000)
    y = x_f0[idx, 0] + sigma * rng.normal(size=idx.size)
    ratio = np.exp((-((y - x_f[idx, 0]) ** 2) + (y - x_f0[idx, 0]) ** 2) / (4 * sigma**2))
    mc, se = 1 - ratio.mean(), ratio.std() / math.sqrt(idx.size)
    got = hellinger_sq(t(x_f)[None], t(x_f0), "gaussian", sigma).item()
    assert abs(got - mc) < 5 * se


def test_gaussian_hellinger_is_accurate_for_tiny_distances():
    """For ``f - f0 = 1e-6``, ``d_H^2 = 1e-12 / 8`` to 1e-6 relative; ``1 - exp`` would give 0."""
    f0 = torch.zeros(1000, 1, dtype=torch.float32)
    f = f0 + 1e-6
    got = hellinger_sq(f[None], f0, "gaussian", 1.0).item()
    assert got == pytest.approx(1e-12 / 8, rel=1e-5)


def test_bernoulli_and_categorical_hellinger_match_the_definition():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3, size=(2, 3, 20, 4))
    p0 = rng.dirichlet(np.ones(4), size=20)
    q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    naive = 1 - np.sqrt(p0 * q).sum(-1).mean(-1)
    torch.testing.assert_close(
        hellinger_sq(t(logits), t(p0), "categorical"), t(naive), rtol=1e-12, atol=1e-13
    )
    b0 = rng.random((20, 1))
    qb = 1 / (1 + np.exp(-logits[..., :1]))
    naive_b = 1 - (np.sqrt(b0 * qb) + np.sqrt((1 - b0) * (1 - qb))).sum(-1).mean(-1)
    torch.testing.assert_close(
        hellinger_sq(t(logits[..., :1]), t(b0), "bernoulli"), t(naive_b), rtol=1e-12, atol=1e-13
    )


def test_classification_hellinger_with_extreme_logits_and_certain_classes():
    # certain class 1, logit +60: q = 1 - e^-60,
    # d_H^2 = (1 - sqrt q)^2 / 2 + (sqrt(1 - q))^2 / 2 ~ e^-60 / 2
    got = hellinger_sq(t([[[60.0]]]), t([[1.0]]), "bernoulli").item()
    assert got == pytest.approx(math.exp(-60) / 2, rel=1e-6)
    wrong = hellinger_sq(t([[[-60.0]]]), t([[1.0]]), "bernoulli").item()
    assert wrong == pytest.approx(1.0, abs=1e-12)
    cat = hellinger_sq(t([[[0.0, 80.0, -80.0]]]), t([[0.0, 1.0, 0.0]]), "categorical").item()
    assert 0 <= cat < 1e-30
    # the model's logits equal log f0: zero distance
    p0 = t([[0.2, 0.5, 0.3]])
    assert hellinger_sq(p0.log()[None], p0, "categorical").item() == pytest.approx(0, abs=1e-15)


@st.composite
def draws_and_truth(draw):
    m, r, n, k = (draw(st.integers(1, 4)) for _ in range(4))
    seed = draw(st.integers(0, 2**31))
    gen = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0]))
    f = torch.randn(m, r, n, k, generator=gen, dtype=F64) * scale
    f0 = torch.randn(n, k, generator=gen, dtype=F64) * scale
    return f, f0


@settings(max_examples=40)
@given(
    draws_and_truth(),
    st.sampled_from(["gaussian", "categorical"]),
    st.randoms(use_true_random=False),
)
def test_metrics_are_equivariant_under_replicate_and_draw_permutations(fx, lik, rnd):
    f, f0 = fx
    if lik == "categorical":
        f0 = torch.softmax(f0, dim=-1)
    perm_r = torch.tensor(rnd.sample(range(f.shape[1]), f.shape[1]))
    perm_x = torch.tensor(rnd.sample(range(f.shape[2]), f.shape[2]))
    for fn in (
        lambda a, b: squared_l2(a, b),
        lambda a, b: hellinger_sq(a, b, lik, 0.9),
    ):
        base = fn(f, f0)
        # permuting replicates permutes the outputs; permuting test points changes nothing
        torch.testing.assert_close(fn(f[:, perm_r], f0), base[:, perm_r])
        torch.testing.assert_close(fn(f[:, :, perm_x], f0[perm_x]), base, rtol=1e-12, atol=1e-14)
    dh = hellinger_sq(f, f0, lik, 0.9)
    assert (dh >= 0).all() and (dh <= 1).all()


@settings(max_examples=30)
@given(draws_and_truth(), st.floats(0.1, 5.0))
def test_gaussian_hellinger_properties(fx, sigma):
    f, f0 = fx
    assert hellinger_sq(f0.expand_as(f), f0, "gaussian", sigma).abs().max() == 0
    # symmetric, and increasing in the distance (scaling f - f0 by 2 cannot lower it)
    d = hellinger_sq(f, f0, "gaussian", sigma)
    far = hellinger_sq(f0 + 2 * (f - f0), f0, "gaussian", sigma)
    assert (far >= d).all()
    if f.shape[0] == 1 and f.shape[1] == 1:
        back = hellinger_sq(f0[None, None], f[0, 0], "gaussian", sigma)
        torch.testing.assert_close(back, d)
    # d_H^2 <= ||f - f0||^2 / (8 sigma^2), since 1 - exp(-u) <= u
    assert (d <= squared_l2(f, f0) / (8 * sigma**2) + 1e-15).all()


def test_exceedance_hand_computed():
    dh_sq = t([[0.01, 0.25], [0.04, 0.0], [0.09, 1.0]])
    # d_H = [[.1, .5], [.2, 0], [.3, 1]]: above 0.15 in draws 2, 3 of column 0 and 1, 3 of column 1
    torch.testing.assert_close(exceedance(dh_sq, 0.15), t([2 / 3, 2 / 3]))
    torch.testing.assert_close(
        exceedance(dh_sq, 0.5), t([0.0, 1 / 3]), msg="d_H = radius is not above"
    )
    torch.testing.assert_close(exceedance(dh_sq, 2.0), t([0.0, 0.0]))


def test_mean_parameter():
    f = t([[[0.0, math.log(3.0)]]])
    torch.testing.assert_close(mean_parameter(f, "gaussian"), f)
    torch.testing.assert_close(mean_parameter(f, "bernoulli"), t([[[0.5, 0.75]]]))
    torch.testing.assert_close(mean_parameter(f, "categorical"), t([[[0.25, 0.75]]]))


def test_prediction_scores_hand_computed():
    pred = t([[[1.0], [2.0]], [[0.0], [0.0]]])  # R = 2, n = 2
    y = t([[0.0], [4.0]])
    # replicate 0: sqrt((1 + 4) / 2); replicate 1: sqrt((0 + 16) / 2)
    torch.testing.assert_close(
        prediction_scores(pred, y, "gaussian")["rmse_test"], t([math.sqrt(2.5), math.sqrt(8)])
    )
    probs = t([[[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]])
    labels = torch.tensor([0, 1])
    s = prediction_scores(probs, labels, "categorical")
    torch.testing.assert_close(s["accuracy_test"], t([0.5]))
    torch.testing.assert_close(s["nll_test"], t([-(math.log(0.7) + math.log(0.3)) / 2]))
    sb = prediction_scores(t([[[0.9], [0.4]]]), t([[1.0], [1.0]]), "bernoulli")
    torch.testing.assert_close(sb["accuracy_test"], t([0.5]))
    torch.testing.assert_close(sb["nll_test"], t([-(math.log(0.9) + math.log(0.4)) / 2]))
    certain_wrong = prediction_scores(t([[[1.0, 0.0]]]), torch.tensor([1]), "categorical")[
        "nll_test"
    ]
    assert certain_wrong.item() == pytest.approx(math.log(1e12))


# --------------------------------------------------------------------------- structure


def test_kept_counts_and_median_over_masks():
    kept = [
        torch.tensor([[True, False, True], [False, False, False]]),
        torch.tensor([[True], [True]]),
    ]
    torch.testing.assert_close(kept_counts(kept), torch.tensor([[2, 1], [0, 1]]))
    # layer 1, replicate 0 counts over 4 draws: 3, 1, 2, 2 -> median 2; replicate 1: 0, 1, 1, 3 -> 1
    m1 = torch.tensor(
        [
            [[1, 1, 1], [0, 0, 0]],
            [[1, 0, 0], [0, 1, 0]],
            [[0, 1, 1], [1, 0, 0]],
            [[1, 1, 0], [1, 1, 1]],
        ]
    )
    m2 = torch.tensor([[[1], [0]], [[1], [0]], [[0], [1]], [[0], [1]]])  # counts 1,1,0,0 / 0,0,1,1
    np.testing.assert_array_equal(median_mask_counts([m1, m2]), [[2.0, 0.5], [1.0, 0.5]])


def test_input_error_rates_hand_computed():
    kept = torch.tensor(
        [
            [True, True, True, False, False, False],  # exact
            [True, False, False, True, True, False],  # misses 2 of 3, 2 false of 3
            [False, False, False, False, False, False],
        ]
    )
    fnr, fpr = input_error_rates(kept, [0, 1, 2])
    np.testing.assert_allclose(fnr, [0, 2 / 3, 1])
    np.testing.assert_allclose(fpr, [0, 2 / 3, 0])
    fnr, fpr = input_error_rates(torch.tensor([[True, False]]), [0, 1])
    np.testing.assert_allclose(fnr, [0.5]) and np.testing.assert_allclose(fpr, [0.0])


def test_count_flops_and_parameters_hand_computed():
    # 3 -> 2 -> 1: affine 2*3*2 + 2*2*1 = 16, one op per hidden unit: 2 -> 18
    assert count_flops((3, 2, 1)) == 18
    assert count_parameters((3, 2, 1)) == 2 * 4 + 1 * 3
    # Sun et al.'s 2000-6-4-3-1: 2 (12000 + 24 + 12 + 3) + 13
    assert count_flops((2000, 6, 4, 3, 1)) == 24091
    # broadcasting over replicates; a network with nothing kept costs nothing but keeps its bias
    np.testing.assert_array_equal(count_flops((np.array([5, 0]), np.array([2, 0]), 1)), [26, 0])
    np.testing.assert_array_equal(
        count_parameters((np.array([5, 0]), np.array([2, 0]), 1)), [15, 1]
    )


def test_count_kept_weights_node_and_edge_layers():
    inputs = torch.tensor([[True, True, False], [True, True, True]])
    nodes = [torch.tensor([[True, False], [True, True]]), torch.tensor([[True], [False]])]
    # whole groups: replicate 0 keeps 2 inputs -> 1 node -> 1 node -> 2 outputs:
    # 1 * (2 + 1) + 1 * (1 + 1) + 2 * (1 + 1) = 9; replicate 1: 2 * 4 + 0 + 2 * (0 + 1) = 10
    got = count_kept_weights(inputs, nodes, outputs=2)
    np.testing.assert_array_equal(got, [9, 10])
    sizes = [inputs.sum(1).numpy(), *(k.sum(1).numpy() for k in nodes), 2]
    np.testing.assert_array_equal(got, count_parameters(sizes))
    # an edge-sparse first layer: replicate 0 keeps 1 of node 0's two weights from kept inputs
    # (the weight from the dropped input 2 does not count): 9 - 1 = 8
    edges = torch.tensor([[[True, False, True], [True, True, True]], [[True] * 3, [True] * 3]])
    np.testing.assert_array_equal(count_kept_weights(inputs, nodes, 2, [edges, None]), [8, 10])
    with pytest.raises(InvalidParameterError, match="edges"):
        count_kept_weights(inputs, nodes, 2, [edges])


def test_count_flops_matches_torch_flop_counter():
    """torch's FlopCounterMode counts 2 k_{l-1} k_l per linear layer: our affine part."""
    from torch.utils.flop_counter import FlopCounterMode

    sizes = (7, 5, 3, 2)
    net = torch.nn.Sequential(
        torch.nn.Linear(7, 5),
        torch.nn.ReLU(),
        torch.nn.Linear(5, 3),
        torch.nn.ReLU(),
        torch.nn.Linear(3, 2),
    )
    with FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 7))
    assert count_flops(sizes) - (5 + 3) == counter.get_total_flops()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: squared_l2(torch.zeros(2, 3, 1), torch.zeros(3, 2)), "f0"),
        (lambda: squared_l2(torch.zeros(2, 3, 1), torch.zeros(3)), "f0"),
        (lambda: squared_l2(torch.full((1, 3, 1), math.nan), torch.zeros(3, 1)), "f"),
        (lambda: squared_l2(np.zeros((3, 1)), torch.zeros(3, 1)), "f"),
        (lambda: hellinger_sq(torch.zeros(1, 3, 1), torch.zeros(3, 1), "gaussian"), "sigma_e"),
        (lambda: hellinger_sq(torch.zeros(1, 3, 1), torch.zeros(3, 1), "gaussian", 0.0), "sigma_e"),
        (
            lambda: hellinger_sq(torch.zeros(1, 3, 1), torch.zeros(3, 1), "gaussian", math.inf),
            "sigma_e",
        ),
        (lambda: hellinger_sq(torch.zeros(1, 3, 1), torch.zeros(3, 1), "poisson"), "likelihood"),
        (lambda: hellinger_sq(torch.zeros(1, 3, 2), torch.full((3, 2), 0.5), "bernoulli"), "f"),
        (lambda: hellinger_sq(torch.zeros(1, 3, 2), torch.full((3, 2), 1.5), "categorical"), "f0"),
        (lambda: exceedance(torch.zeros(3, 2), 0.0), "radius"),
        (lambda: exceedance(torch.zeros(3, 2), -1), "radius"),
        (lambda: input_error_rates(torch.ones(2, 4, dtype=torch.bool), [4]), "relevant"),
        (lambda: input_error_rates(torch.ones(2, 4, dtype=torch.bool), []), "relevant"),
        (lambda: input_error_rates(torch.ones(2, 4, dtype=torch.bool), [1, 1]), "relevant"),
        (lambda: input_error_rates(torch.ones(2, 4), [1]), "kept_inputs"),
        (lambda: count_flops((3,)), "sizes"),
        (lambda: count_flops((3, -1, 1)), "sizes[1]"),
        (lambda: count_flops((3, 2.5, 1)), "sizes[1]"),
        (lambda: kept_counts([]), "kept"),
        (lambda: median_mask_counts([]), "masks"),
        (lambda: prediction_scores(torch.zeros(1, 2, 3), torch.tensor([0, 3]), "categorical"), "y"),
        (
            lambda: prediction_scores(
                torch.zeros(1, 2, 3), torch.tensor([0.0, 1.0]), "categorical"
            ),
            "y",
        ),
        (lambda: prediction_scores(torch.zeros(1, 2, 1), torch.zeros(3, 1), "gaussian"), "y"),
    ],
)
def test_bad_input_names_the_field(call, field):
    with pytest.raises(InvalidParameterError) as err:
        call()
    assert err.value.field == field


# --------------------------------------------------------------------------- evaluate, known model


@dataclass(frozen=True)
class Kept:
    inputs: torch.Tensor
    nodes: list[torch.Tensor]


class ShiftedTruth(torch.nn.Module):
    """A posterior with known answers; its masks keep the nodes of ``kept`` in every draw.

    Draw ``m`` (counted over successive calls) of replicate ``r`` is ``f0 + c_r`` for
    even ``m`` and ``f0 - c_r`` for odd ``m``.
    """

    def __init__(self, data, shift, kept):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        self.replicates = len(shift)
        self.data, self.shift, self._kept = data, torch.tensor(shift, dtype=torch.float64), kept
        self.seen_generators = None
        self.count = 0

    def _f0(self, x):
        assert torch.equal(x, self.data.x_test.double())
        return self.data.f_test.double()

    def sample_functions(self, x, draws, generators):
        self.seen_generators = generators
        index = range(self.count, self.count + draws)
        self.count += draws
        sign = torch.tensor([1.0 if m % 2 == 0 else -1.0 for m in index], dtype=torch.float64)
        return self._f0(x) + (sign[:, None] * self.shift)[:, :, None, None]

    def mean_function(self, x):
        return self._f0(x).expand(self.replicates, -1, -1) + 2 * self.shift[:, None, None]

    def kept(self):
        return self._kept

    def inclusion_probs(self):
        return [torch.where(k, 0.9, 0.1) for k in self._kept.nodes]

    def sample_masks(self, draws, generators):
        return [k[None].expand(draws, -1, -1).to(torch.float64) for k in self._kept.nodes]


@pytest.fixture(scope="module")
def teacher_data():
    return generate(
        "relu_teacher", n=8, replicates=3, seed=0, n_test=500, p=10, sigma_e=0.5, dtype=F64
    )


def test_evaluate_on_a_posterior_with_known_answers(teacher_data):
    shift = [0.0, 0.1, 1.0]
    kept = Kept(
        inputs=torch.tensor([[True] * 5 + [False] * 5, [True] * 10, [False] * 10]),
        nodes=[
            torch.tensor([[1] * 4 + [0] * 12, [1] * 16, [0] * 16]).bool(),
            torch.tensor([[1] * 3 + [0] * 13, [1] * 16, [0] * 16]).bool(),
        ],
    )
    model = ShiftedTruth(teacher_data, shift, kept)
    m = evaluate(model, teacher_data, eps_n=0.1, draws=7, seed=0, chunk=3)
    c = np.array(shift)
    np.testing.assert_allclose(m["l2_risk_mean"], c**2, rtol=1e-12)
    # the draws average to f0 + c/7 (4 of +c, 3 of -c)
    np.testing.assert_allclose(m["l2_risk_of_mean"], (c / 7) ** 2, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(m["l2_risk_mean_network"], 4 * c**2, rtol=1e-12)
    dh2 = 1 - np.exp(-(c**2) / (8 * 0.25))
    np.testing.assert_allclose(m["dH2_mean"], dh2, rtol=1e-12)
    np.testing.assert_allclose(m["dH2_mean_network"], 1 - np.exp(-4 * c**2 / 2), rtol=1e-12)
    # d_H = [0, 0.0707, 0.47]: above 0.1 only for c = 1; above 0.2 too; above 0.4 too
    for mult in (1, 2, 4):
        np.testing.assert_array_equal(m[f"dH_exceeds_{mult}eps"], [0, 0, 1])
    # without a theory radius: NaN exceedances, every other metric the same
    fresh = ShiftedTruth(teacher_data, shift, kept)
    no_radius = evaluate(fresh, teacher_data, eps_n=None, draws=7, seed=0, chunk=3)
    for key, value in m.items():
        if key.startswith("dH_exceeds_"):
            assert np.isnan(no_radius[key]).all() and no_radius[key].shape == value.shape
        else:
            np.testing.assert_array_equal(no_radius[key], value)
    np.testing.assert_array_equal(m["kept_nodes"], [[4, 3], [16, 16], [0, 0]])
    np.testing.assert_array_equal(m["kept_nodes_median"], [[4, 3], [16, 16], [0, 0]])
    np.testing.assert_array_equal(m["true_nodes"], [[4, 3]] * 3)
    np.testing.assert_array_equal(m["kept_inputs"], [5, 10, 0])
    np.testing.assert_allclose(m["input_fnr"], [0, 0, 1])
    np.testing.assert_allclose(m["input_fpr"], [0, 1, 0])
    np.testing.assert_allclose(m["node_density"], [7 / 32, 1, 0])
    full = 16 * 11 + 16 * 17 + 17
    np.testing.assert_array_equal(m["kept_weights"], [4 * 6 + 3 * 5 + 4, full, 1])
    np.testing.assert_allclose(m["weight_density"], m["kept_weights"] / full)
    np.testing.assert_array_equal(
        m["flops"], [count_flops((5, 4, 3, 1)), count_flops((10, 16, 16, 1)), 0]
    )
    np.testing.assert_array_equal(m["flops_dense"], [count_flops((10, 16, 16, 1))] * 3)
    np.testing.assert_array_equal(m["flops_true"], [count_flops((5, 4, 3, 1))] * 3)
    # the predictive mean is f0 + c/7: its RMSE against noisy y is near sigma_e = 0.5 for c = 0
    assert m["rmse_test"][0] == pytest.approx(0.5, abs=0.05)
    assert all(v.shape[0] == 3 for v in m.values())
    # replicate r's draws use the generator of stream "evaluate", key r
    from simulations.rng import stream_seed

    assert [g.initial_seed() for g in model.seen_generators] == [
        stream_seed(0, "evaluate", r) for r in range(3)
    ]


def test_evaluate_rejects_bad_arguments(teacher_data):
    kept = Kept(torch.ones(3, 10, dtype=torch.bool), [torch.ones(3, 2, dtype=torch.bool)])
    model = ShiftedTruth(teacher_data, [0.0, 0.0, 0.0], kept)
    for kwargs, field in [
        ({"eps_n": 0.0}, "eps_n"),
        ({"eps_n": 0.1, "draws": 0}, "draws"),
        ({"eps_n": 0.1, "chunk": 0}, "chunk"),
        ({"eps_n": 0.1, "sigma_e": -1.0}, "sigma_e"),
    ]:
        with pytest.raises(InvalidParameterError) as err:
            evaluate(model, teacher_data, seed=0, **kwargs)
        assert err.value.field == field
    with pytest.raises(InvalidParameterError, match="model"):
        evaluate(ShiftedTruth(teacher_data, [0.0], kept), teacher_data, eps_n=0.1, seed=0)
    with pytest.raises(InvalidParameterError, match="data"):
        evaluate(model, {"x_test": 1}, eps_n=0.1, seed=0)


# --------------------------------------------------------------------------- evaluate, BayesianMLP

SURE = 30.0  # logit of an inclusion probability 1 - 1e-13: masks are deterministic


def build_fixed_mlp(device="cpu"):
    """An untrained SS-GHS model (R = 2) whose indicators are set by hand, and its data.

    Replicate 0 keeps nodes 3..7 of layer 1 and all 6 of layer 2; replicate 1 keeps
    all 8 of layer 1 and nodes 0..1 of layer 2. An input spike keeps inputs 0..4
    in replicate 0 and 0..3, 7 in replicate 1.
    """
    from simulations.model import BayesianMLP, ModelConfig
    from simulations.rng import replicate_seeds

    data = generate(
        "relu_teacher", n=16, replicates=2, seed=1, n_test=300, p=10, sigma_e=0.5, dtype=F64
    )
    config = ModelConfig(
        p=10, hidden=(8, 6), prior="ss-ghs", sigma_e=0.5, prior_inclusion=0.1, input_spike=True
    )
    model = BayesianMLP(config, replicate_seeds(1, 2, "model"), dtype=F64, device=device)
    with torch.no_grad():
        first, second = model.hidden_layers
        first.theta.fill_(SURE)
        first.theta[0, :3] = -SURE
        second.theta.fill_(SURE)
        second.theta[1, 2:] = -SURE
        model.input_spike.theta.fill_(-SURE)
        model.input_spike.theta[0, :5] = SURE
        model.input_spike.theta[1, [0, 1, 2, 3, 7]] = SURE
    return model, data


@pytest.fixture(scope="module")
def fixed_mlp():
    return build_fixed_mlp()


def test_evaluate_bayesian_mlp_structure(fixed_mlp):
    model, data = fixed_mlp
    m = evaluate(model, data, eps_n=0.2, draws=9, seed=3)
    np.testing.assert_array_equal(m["kept_nodes"], [[5, 6], [8, 2]])
    np.testing.assert_array_equal(m["kept_nodes_median"], [[5, 6], [8, 2]])
    np.testing.assert_array_equal(m["kept_inputs"], [5, 5])
    np.testing.assert_allclose(m["input_fnr"], [0.0, 1 / 5])
    np.testing.assert_allclose(m["input_fpr"], [0.0, 1 / 5])
    np.testing.assert_allclose(m["node_density"], [11 / 14, 10 / 14])
    full = 8 * 11 + 6 * 9 + 7
    np.testing.assert_array_equal(m["kept_weights"], [5 * 6 + 6 * 6 + 7, 8 * 6 + 2 * 9 + 3])
    np.testing.assert_allclose(m["weight_density"], m["kept_weights"] / full)
    np.testing.assert_array_equal(
        m["flops"], [count_flops((5, 5, 6, 1)), count_flops((5, 8, 2, 1))]
    )
    np.testing.assert_array_equal(m["flops_dense"], [count_flops((10, 8, 6, 1))] * 2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluate_on_cuda_gives_the_cpu_structure(fixed_mlp):
    """Same parameters on CUDA: structure metrics equal, contraction metrics finite and in range."""
    model, data = build_fixed_mlp("cuda")
    m = evaluate(model, data, eps_n=0.2, draws=9, seed=3)
    cpu = evaluate(fixed_mlp[0], data, eps_n=0.2, draws=9, seed=3)
    for key in ("kept_nodes", "kept_nodes_median", "kept_inputs", "kept_weights", "flops"):
        np.testing.assert_array_equal(m[key], cpu[key], err_msg=key)
    assert all(isinstance(v, np.ndarray) and v.shape[0] == 2 for v in m.values())
    assert ((m["dH2_mean"] >= 0) & (m["dH2_mean"] <= 1)).all()


def test_evaluate_bayesian_mlp_matches_a_direct_computation(fixed_mlp):
    """Recompute the contraction metrics from ``sample_functions`` with the documented seeds."""
    from simulations.rng import stream_seed

    model, data = fixed_mlp
    draws, seed, sigma = 12, 5, 0.5
    m = evaluate(model, data, eps_n=0.05, draws=draws, seed=seed, chunk=5)
    gens = [torch.Generator().manual_seed(stream_seed(seed, "evaluate", r)) for r in range(2)]
    f = model.sample_functions(data.x_test, draws, gens).numpy()  # [M, R, n, 1]
    f0 = data.f_test.numpy()
    risk = ((f - f0) ** 2).sum(-1).mean(-1)  # [M, R]
    dh2 = (1 - np.exp(-((f - f0) ** 2).sum(-1) / (8 * sigma**2))).mean(-1)
    np.testing.assert_allclose(m["l2_risk_mean"], risk.mean(0), rtol=1e-10)
    np.testing.assert_allclose(
        m["l2_risk_of_mean"], ((f.mean(0) - f0) ** 2).mean((-2, -1)), rtol=1e-10
    )
    np.testing.assert_allclose(m["dH2_mean"], dh2.mean(0), rtol=1e-10)
    for mult in (1, 2, 4):
        np.testing.assert_allclose(m[f"dH_exceeds_{mult}eps"], (np.sqrt(dh2) > mult * 0.05).mean(0))
    mean_net = model.mean_function(data.x_test).numpy()
    np.testing.assert_allclose(
        m["l2_risk_mean_network"], ((mean_net - f0) ** 2).mean((-2, -1)), rtol=1e-10
    )
    y = data.y_test.numpy()
    np.testing.assert_allclose(
        m["rmse_test"], np.sqrt(((f.mean(0) - y) ** 2).mean((-2, -1))), rtol=1e-10
    )
    # the draws are not degenerate: the metrics would not notice a wrong seed otherwise
    assert np.ptp(risk, axis=0).min() > 0


def test_evaluate_does_not_depend_on_the_chunk_size(fixed_mlp):
    model, data = fixed_mlp
    a = evaluate(model, data, eps_n=0.1, draws=10, seed=0, chunk=3)
    b = evaluate(model, data, eps_n=0.1, draws=10, seed=0, chunk=10)
    c = evaluate(model, data, eps_n=0.1, draws=10, seed=1, chunk=10)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a["l2_risk_mean"], c["l2_risk_mean"])


def test_evaluate_edge_and_classification_models():
    """Edge-sparse layers count kept weights, not whole groups; classification scores appear."""
    from simulations.model import BayesianMLP, ModelConfig

    data = generate("sun_classification", n=16, replicates=1, seed=0, n_test=200, p=6, dtype=F64)
    config = ModelConfig(
        p=6, hidden=(4,), outputs=2, prior="edge-ss", likelihood="categorical", prior_inclusion=0.1
    )
    model = BayesianMLP(config, [0], dtype=F64)
    with torch.no_grad():
        layer = model.hidden_layers[0]
        layer.weight_theta.fill_(-SURE)
        layer.weight_theta[0, 0, :3] = SURE  # node 0 keeps 3 weights, node 1 keeps 1
        layer.weight_theta[0, 1, 5] = SURE
    m = evaluate(model, data, eps_n=0.1, draws=5, seed=0)
    np.testing.assert_array_equal(m["kept_nodes"], [[2]])
    np.testing.assert_array_equal(m["kept_inputs"], [4])  # inputs 0, 1, 2, 5
    np.testing.assert_array_equal(m["kept_weights"], [(3 + 1) + (1 + 1) + 2 * (2 + 1)])
    np.testing.assert_allclose(m["input_fnr"], [1 / 4]) and np.testing.assert_allclose(
        m["input_fpr"], [1 / 2]
    )
    assert {"accuracy_test", "nll_test", "dH2_mean"} <= m.keys() and "rmse_test" not in m
    assert 0 <= m["dH2_mean"][0] <= 1 and 0 <= m["accuracy_test"][0] <= 1


def test_evaluate_on_user_data_reports_no_truth_metrics(fixed_mlp):
    model, _ = fixed_mlp
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(60, 10))
    data = generate("dataset", n=40, replicates=2, seed=0, x=x, y=x[:, 0] * 2, dtype=F64)
    m = evaluate(model, data, eps_n=0.1, draws=4, seed=0)
    assert not {"l2_risk_mean", "dH2_mean", "input_fnr", "true_nodes", "flops_true"} & m.keys()
    assert {"rmse_test", "kept_nodes", "flops", "weight_density"} <= m.keys()
    assert m["rmse_test"].shape == (2,) and np.isfinite(m["rmse_test"]).all()
    # the typed record: metrics the design lacks are None, and a row fills in the ones named
    assert m.dH2_mean is None and m.true_nodes is None and m.exceedance == {}
    assert m.rmse_test is m["rmse_test"] and m.kept_nodes.shape == (2, 2)
    row = m.row(1, always=("dH2_mean", "true_nodes", "rmse_test"))
    assert row["true_nodes"] is None and math.isnan(row["dH2_mean"])
    assert row["rmse_test"] == m.rmse_test[1] and row["kept_nodes"] == m.kept_nodes[1].tolist()
    assert "l2_risk_mean" not in row and set(m) <= set(row)


def test_cost_metrics_of_a_real_fit():
    from simulations.metrics import cost_metrics
    from simulations.model import BayesianMLP, ModelConfig
    from simulations.train import TrainConfig, fit

    data = generate("cubic_small_n", n=32, replicates=3, seed=0, n_test=10)
    model = BayesianMLP(
        ModelConfig(p=1, hidden=(4,), prior="ss-gl", sigma_e=3.0, prior_inclusion=0.5), [0, 1, 2]
    )
    report = fit(
        model, data.x_train, data.y_train, TrainConfig(steps=4, log_every=2, checkpoint_every=4)
    )
    cost = cost_metrics(report)
    assert set(cost) == {"steps", "wall_s", "replicate_steps_per_s", "peak_memory_bytes"}
    assert all(v.shape == (3,) for v in cost.values())
    np.testing.assert_array_equal(cost["steps"], 4)
    np.testing.assert_allclose(cost["replicate_steps_per_s"], 3 * 4 / cost["wall_s"], rtol=1e-9)
    assert (cost["peak_memory_bytes"] > 0).all()
    with pytest.raises(InvalidParameterError, match="report"):
        cost_metrics({"steps": 4})
