"""Tests of simulations.designs: laws, truth, seeding, user data and bad input."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.designs import (
    DESIGNS,
    Design,
    generate,
    get_design,
    node_effects,
    teacher_forward,
)
from simulations.enums import Likelihood
from ssbnn_theory.enums import Activation
from ssbnn_theory.errors import InvalidParameterError

GIVEN = ("teacher", "dataset")
"""Designs of a given network or given data (they need the user's input to draw)."""

DRAWN = [name for name in DESIGNS if name not in GIVEN]
"""Every design that draws from its parameters alone: the generic tests below run on each,
so a new design is tested as soon as it is registered."""

SMALL = {
    "relu_teacher": {"p": 8},
    "bai_sparse_function": {"p": 6},
    "sun_regression": {"p": 6},
    "sun_classification": {"p": 6},
    "cubic_small_n": {},
}
"""Smaller parameters for speed; a design not listed uses its quick ones (:func:`small`)."""


def small(name: str) -> dict:
    """The parameters the generic tests draw ``name`` with."""
    if name in SMALL:
        return SMALL[name]
    return {k: v for k, v in DESIGNS[name].quick.items() if k not in ("n", "replicates", "n_test")}


def small_teacher() -> list[tuple[np.ndarray, np.ndarray]]:
    """A 3-input teacher with hidden widths (3, 2).

    Node 3 of layer 1 has a zero group, so (2, 2) nodes are active; input 2 (0-based)
    is weighed by no node, so inputs {0, 1} are relevant.
    """
    w1 = np.array([[1.0, -0.5, 0.0], [0.25, 1.0, 0.0], [0.0, 0.0, 0.0]])
    b1 = np.array([0.1, -0.2, 0.0])
    w2 = np.array([[1.0, 1.0, 3.0], [-1.0, 0.5, 0.0]])
    b2 = np.array([0.0, 0.3])
    w3 = np.array([[2.0, -1.0]])
    b3 = np.array([0.5])
    return [(w1, b1), (w2, b2), (w3, b3)]


# --------------------------------------------------------------------------- registry and seeding


# relu_teacher "2": teachers whose every node carries its share of Var f0 (node_effects).
VERSIONS = {"relu_teacher": "2"}


def test_registry_lists_every_design_with_a_version_and_a_quick_size():
    assert {*SMALL, *GIVEN} <= set(DESIGNS)
    for name, design in DESIGNS.items():
        assert isinstance(design, Design) and design.name == name
        assert design.version == VERSIONS.get(name, "1")
        assert "replicates" in design.quick
        assert get_design(name) is design


def test_the_registry_loads_when_python_strips_docstrings():
    """A design's description is its law's docstring; ``python -OO`` strips docstrings, and the
    registry still loads, describing each design by its law's name."""
    code = (
        "from simulations.designs import DESIGNS; "
        "assert all(d.description for d in DESIGNS.values()); print(len(DESIGNS))"
    )
    done = subprocess.run(
        [sys.executable, "-OO", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 2


@pytest.mark.parametrize("name", DRAWN)
def test_quick_size_generates_the_documented_layout(name):
    d = generate(name, seed=0, **DESIGNS[name].quick)
    quick = DESIGNS[name].quick
    r, n, n_test = quick["replicates"], quick["n"], quick["n_test"]
    assert d.x_train.shape == (r, n, d.p) and d.x_train.dtype == torch.float32
    assert d.x_test.shape == (n_test, d.p)
    assert d.f_test.shape == (n_test, d.outputs) and d.f_test.dtype == torch.float32
    if d.likelihood is Likelihood.CATEGORICAL:
        assert d.y_train.shape == (r, n) and d.y_train.dtype == torch.int64
        assert d.y_test.shape == (n_test,) and d.y_test.dtype == torch.int64
    else:
        assert d.y_train.shape == (r, n, d.outputs) and d.y_train.dtype == torch.float32
        assert d.y_test.shape == (n_test, d.outputs)
    assert d.truth is not None and d.design == name and d.version == VERSIONS.get(name, "1")
    assert (d.replicates, d.n, d.n_test) == (r, n, n_test)


@pytest.mark.parametrize("name", DRAWN)
def test_replicate_data_do_not_depend_on_the_number_of_replicates(name):
    one = generate(name, n=50, replicates=1, seed=3, n_test=40, **small(name))
    three = generate(name, n=50, replicates=3, seed=3, n_test=40, **small(name))
    torch.testing.assert_close(three.x_train[0], one.x_train[0], rtol=0, atol=0)
    torch.testing.assert_close(three.y_train[0], one.y_train[0], rtol=0, atol=0)
    torch.testing.assert_close(three.x_test, one.x_test, rtol=0, atol=0)
    torch.testing.assert_close(three.f_test, one.f_test, rtol=0, atol=0)
    # replicates are distinct draws, and another seed gives other data
    assert not torch.equal(three.x_train[0], three.x_train[1])
    other = generate(name, n=50, replicates=1, seed=4, n_test=40, **small(name))
    assert not torch.equal(other.x_train[0], one.x_train[0])


@pytest.mark.parametrize("name", DRAWN)
def test_float32_data_are_the_float64_data_rounded(name):
    d32 = generate(name, n=20, replicates=2, seed=1, n_test=30, **small(name))
    d64 = generate(name, n=20, replicates=2, seed=1, n_test=30, dtype=torch.float64, **small(name))
    assert d64.x_train.dtype == torch.float64
    torch.testing.assert_close(d64.x_train.float(), d32.x_train, rtol=0, atol=0)
    torch.testing.assert_close(d64.f_test.float(), d32.f_test, rtol=0, atol=0)


# Values of each design's current version at seed 7 (float64): a change here changes every
# study's data, so the design's version must be bumped with it (and these values updated).
GOLDEN = {
    "relu_teacher": (
        [0.8844863745769078, 0.35116379167147094],
        1.1295994840464034,
        2.9184096978006964,
    ),
    "bai_sparse_function": (
        [0.8844863745769078, 0.35116379167147094],
        2.785871932393297,
        0.9937583153581846,
    ),
    "sun_regression": (
        [-0.9817397171347417, -0.4537247030075741],
        -4.667803961144022,
        -0.1673119703156667,
    ),
    "sun_classification": ([-0.3383597018105095, 0.6331277253723429], 0, 1.0),
    "cubic_small_n": ([3.5379454983076313], 42.040169360139316, 3.851158424647693),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_generator_output_is_pinned_to_its_version(name):
    d = generate(name, n=3, replicates=2, seed=7, n_test=2, dtype=torch.float64, **small(name))
    x, y, f = GOLDEN[name]
    message = f"{name} draws changed: bump DESIGNS[{name!r}].version and update GOLDEN"
    np.testing.assert_allclose(d.x_train[1, 0, : len(x)].numpy(), x, rtol=1e-12, err_msg=message)
    np.testing.assert_allclose(float(d.y_train[1, 0].flatten()[0]), y, rtol=1e-12, err_msg=message)
    np.testing.assert_allclose(float(d.f_test[0, 0]), f, rtol=1e-12, err_msg=message)


# --------------------------------------------------------------------------- relu_teacher


@pytest.fixture(scope="module")
def relu():
    return generate(
        "relu_teacher",
        n=4000,
        replicates=2,
        seed=11,
        n_test=20000,
        p=12,
        sigma_e=0.5,
        dtype=torch.float64,
    )


def test_relu_teacher_truth_matches_the_design(relu):
    t = relu.truth
    assert t.relevant_inputs == (0, 1, 2, 3, 4)
    assert t.active_nodes == (4, 3) and t.hidden == (4, 3) and t.activation is Activation.RELU
    w1, w2, w3 = t.weights
    assert w1.shape == (4, 12) and w2.shape == (3, 4) and w3.shape == (1, 3)
    assert not w1.flags.writeable
    assert np.all(w1[:, 5:] == 0), "nuisance inputs must have zero weights"
    for w, b in zip((w1[:, :5], w2), t.biases[:2], strict=True):
        assert np.all((np.abs(w) >= 0.5) & (np.abs(w) <= 1.5))
        assert np.all(np.abs(b) <= 0.5)
    signs = np.sign(np.concatenate([w1[:, :5].ravel(), w2.ravel()]))
    assert (signs > 0).any() and (signs < 0).any()
    for layer, (w, b) in enumerate(zip(t.weights, t.biases, strict=True)):
        expected = max(np.abs(w).max(), np.abs(b).max())
        assert t.bounds[layer] == pytest.approx(expected, rel=1e-15)


def test_relu_teacher_f0_is_the_teacher_with_unit_variance(relu):
    t = relu.truth
    x = relu.x_test.numpy()
    f = teacher_forward(x, t.weights, t.biases, t.activation)
    np.testing.assert_allclose(relu.f_test.numpy(), f, rtol=1e-12, atol=1e-12)
    # Var f0 = 1 on a 10^6 reference sample; on 2e4 fresh points the sampling sd of the variance is
    # sqrt((kurtosis - 1) / 2e4) < 2% for kurtosis < 8 (observed 2.5-7.3): 0.08 is > 4 sd.
    assert relu.f_test.var().item() == pytest.approx(1.0, abs=0.08)
    assert relu.x_train.abs().max() <= 1.0 and relu.x_train.min() < -0.99
    # each active node is alive and not linear: positive on 5-95% of the reference (here 4-96%)
    h = x
    for w, b in zip(t.weights[:2], t.biases[:2], strict=True):
        pre = h @ w.T + b
        share = (pre > 0).mean(axis=0)
        assert np.all((share > 0.04) & (share < 0.96)), share
        h = np.maximum(pre, 0)


def test_relu_teacher_noise_has_the_requested_sd(relu):
    x = relu.x_train.numpy()
    t = relu.truth
    resid = np.stack(
        [
            relu.y_train[r].numpy() - teacher_forward(x[r], t.weights, t.biases, "relu")
            for r in range(2)
        ]
    )
    # 8000 N(0, 0.25) residuals: the sd of the sample sd is 0.5/sqrt(16000) ~ 0.004
    assert resid.std() == pytest.approx(0.5, abs=0.02)
    assert abs(resid.mean()) < 0.03


def test_relu_teacher_truth_depends_only_on_the_seed():
    a = generate("relu_teacher", n=5, replicates=1, seed=5, n_test=5, p=10)
    b = generate("relu_teacher", n=9, replicates=3, seed=5, n_test=7, p=30, hidden=(6, 3))
    for wa, wb in zip(a.truth.weights, b.truth.weights, strict=True):
        k, m = min(wa.shape[0], wb.shape[0]), min(wa.shape[1], wb.shape[1])
        np.testing.assert_array_equal(wa[:k, :m], wb[:k, :m])
    assert b.truth.hidden == (6, 3) and b.truth.active_nodes == (4, 3)
    assert b.truth.weights[0].shape == (6, 30) and np.all(b.truth.weights[0][4:] == 0)
    c = generate("relu_teacher", n=5, replicates=1, seed=6, n_test=5, p=10)
    assert not np.array_equal(a.truth.weights[0], c.truth.weights[0])


def test_node_effects_see_a_duplicate_node_and_an_idle_one():
    """A node whose twin carries the same function, or whose output weight is tiny, carries
    (almost) nothing once the next layer is refitted; an ordinary node carries its part."""
    x = np.random.default_rng(0).uniform(-1, 1, (4000, 2))
    w1 = np.array([[1.0, 0.5], [1.0, 0.5], [-0.8, 1.2]])
    b1 = np.array([0.1, 0.1, -0.2])
    w2 = np.array([[0.5, 0.5, 1.0]])
    b2 = np.array([0.0])
    twins, _, single = node_effects([w1, w2], [b1, b2], x)[0]
    assert twins < 1e-20 and single > 0.1, (twins, single)
    idle = node_effects([w1[1:], np.array([[1.0, 1e-4]])], [b1[1:], b2], x)[0]
    assert idle[1] < 1e-6 < 0.1 < idle[0], idle


@pytest.mark.parametrize("seed", range(6))
def test_relu_teacher_nodes_each_carry_their_share(seed):
    """Every hidden node of a drawn teacher carries at least ``0.2 / s_l`` of ``Var f0``
    (checked on fresh points: 20,000 of them put the share within a few percent of its
    value on the reference sample, so 0.18 leaves room for that sampling error)."""
    d = generate("relu_teacher", n=5, replicates=1, seed=seed, n_test=20_000, p=5,
                 active=(5, 4, 2))  # fmt: skip
    t = d.truth
    x = d.x_test.numpy().astype(np.float64)
    weights = [t.weights[0][:5, :5], t.weights[1][:4, :5], t.weights[2][:2, :4],
               t.weights[3][:, :2]]  # fmt: skip
    biases = [t.biases[0][:5], t.biases[1][:4], t.biases[2][:2], t.biases[3]]
    for layer, shares in enumerate(node_effects(weights, biases, x)):
        assert shares.min() * len(shares) >= 0.18, (layer, shares)


def test_relu_teacher_other_structures():
    d = generate(
        "relu_teacher", n=5, replicates=1, seed=0, n_test=5, p=7, relevant=7, active=(3, 2, 2)
    )
    assert d.truth.active_nodes == (3, 2, 2) and d.truth.relevant_inputs == tuple(range(7))
    assert len(d.truth.bounds) == 4


# --------------------------------------------------------------------------- the published designs


def test_bai_sparse_function_law():
    d = generate(
        "bai_sparse_function", n=4000, replicates=1, seed=2, n_test=500, dtype=torch.float64
    )
    assert (
        d.p == 200 and d.truth.relevant_inputs == (0, 1, 2, 3, 4) and d.truth.active_nodes is None
    )
    x = d.x_test.numpy()
    f = 7 * x[:, 1] / (1 + x[:, 0] ** 2) + 5 * np.sin(x[:, 2] * x[:, 3]) + 2 * x[:, 4]
    np.testing.assert_allclose(d.f_test.numpy()[:, 0], f, rtol=1e-13, atol=1e-13)
    xt = d.x_train[0].numpy()
    assert xt.min() >= -1 and xt.max() <= 1
    # U(-1,1): mean 0, var 1/3; 8e5 values, sd of the mean ~ 6e-4
    assert xt.mean() == pytest.approx(0, abs=0.005) and xt.var() == pytest.approx(1 / 3, abs=0.005)
    ft = 7 * xt[:, 1] / (1 + xt[:, 0] ** 2) + 5 * np.sin(xt[:, 2] * xt[:, 3]) + 2 * xt[:, 4]
    assert (d.y_train[0, :, 0].numpy() - ft).std() == pytest.approx(1.0, abs=0.05)


def test_sun_regression_inputs_are_equicorrelated():
    d = generate(
        "sun_regression", n=6000, replicates=1, seed=2, n_test=300, p=15, dtype=torch.float64
    )
    x = d.x_train[0].numpy()
    c = np.corrcoef(x.T)
    off = c[~np.eye(15, dtype=bool)]
    # each sample correlation has sd ~ (1 - 0.25)/sqrt(6000) ~ 0.01; 0.05 is 5 sd
    assert np.all(np.abs(off - 0.5) < 0.05) and x.var(axis=0) == pytest.approx(
        np.ones(15), abs=0.06
    )
    xs = d.x_test.numpy()
    f = 5 * xs[:, 1] / (1 + xs[:, 0] ** 2) + 5 * np.sin(xs[:, 2] * xs[:, 3]) + 2 * xs[:, 4]
    np.testing.assert_allclose(d.f_test.numpy()[:, 0], f, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("likelihood", ["categorical", "bernoulli"])
def test_sun_classification_is_balanced_and_deterministic(likelihood):
    d = generate(
        "sun_classification",
        n=1001,
        replicates=2,
        seed=4,
        n_test=3000,
        p=12,
        likelihood=likelihood,
        dtype=torch.float64,
    )
    assert d.noise_sd is None and d.truth.relevant_inputs == (0, 1, 2, 3)
    labels = d.y_train if likelihood == "categorical" else d.y_train[..., 0]
    assert labels.sum(dim=1).tolist() == [500, 500], "exactly n // 2 points of class 1"
    x = d.x_test.numpy()
    truth = np.exp(x[:, 0]) + x[:, 1] ** 2 + 5 * np.sin(x[:, 2] * x[:, 3]) - 3 > 0
    y_test = d.y_test if likelihood == "categorical" else d.y_test[:, 0]
    np.testing.assert_array_equal(y_test.numpy().astype(bool), truth)
    assert truth.sum() == 1500
    if likelihood == "categorical":
        assert d.outputs == 2
        np.testing.assert_array_equal(d.f_test[:, 1].numpy(), truth.astype(float))
        np.testing.assert_array_equal(d.f_test.sum(dim=1).numpy(), 1.0)
    else:
        assert d.outputs == 1
        np.testing.assert_array_equal(d.f_test[:, 0].numpy(), truth.astype(float))
    # the common factor reaches the nuisance inputs too (pairwise correlation 1/2 everywhere)
    xt = np.concatenate([d.x_train[0].numpy(), d.x_train[1].numpy()])
    c = np.corrcoef(xt.T)
    assert np.all(np.abs(c[4:, :4] - 0.5) < 0.1) and np.all(
        np.abs(c[4:, 4:][~np.eye(8, dtype=bool)] - 0.5) < 0.1
    )


def test_cubic_small_n_law():
    d = generate("cubic_small_n", n=5000, replicates=1, seed=0, n_test=100, dtype=torch.float64)
    assert d.p == 1 and d.noise_sd == 3.0 and d.truth.relevant_inputs == (0,)
    np.testing.assert_allclose(d.f_test.numpy(), d.x_test.numpy() ** 3, rtol=1e-13)
    x = d.x_train[0, :, 0].numpy()
    assert x.min() >= -4 and x.max() <= 4 and x.min() < -3.9
    assert (d.y_train[0, :, 0].numpy() - x**3).std() == pytest.approx(3.0, abs=0.15)


# --------------------------------------------------------------------------- teacher


def test_teacher_structure_from_pairs_mapping_and_npz(tmp_path):
    layers = small_teacher()
    mapping = {
        f"{a}{i}": arr
        for i, pair in enumerate(layers, start=1)
        for a, arr in zip("Wb", pair, strict=True)
    }
    path = tmp_path / "teacher.npz"
    np.savez(path, **mapping)
    results = [
        generate("teacher", n=30, replicates=2, seed=0, n_test=50, weights=w, p=6, sigma_e=0.1)
        for w in (layers, mapping, path, str(path))
    ]
    for d in results:
        t = d.truth
        assert t.relevant_inputs == (0, 1) and t.active_nodes == (2, 2) and t.hidden == (3, 2)
        assert t.bounds == (1.0, 1.0, 2.0), (
            "bounds over active groups only (3.0 is an inactive weight)"
        )
        assert d.p == 6 and t.weights[0].shape == (3, 6)
        torch.testing.assert_close(d.x_train, results[0].x_train, rtol=0, atol=0)
    x = results[0].x_test.double().numpy()
    expected = teacher_forward(x[:, :3], [w for w, _ in layers], [b for _, b in layers], "relu")
    np.testing.assert_allclose(results[0].f_test.double().numpy(), expected, rtol=1e-6, atol=1e-6)


def test_teacher_node_without_outgoing_weight_is_inactive():
    layers = small_teacher()
    w3 = np.array([[2.0, 0.0]])  # node 2 of layer 2 now feeds nothing
    d = generate(
        "teacher",
        n=5,
        replicates=1,
        seed=0,
        n_test=5,
        weights=[layers[0], layers[1], (w3, layers[2][1])],
    )
    assert d.truth.active_nodes == (2, 1) and d.truth.relevant_inputs == (0, 1)


def test_teacher_without_active_node_in_a_layer_is_rejected():
    layers = small_teacher()
    w3 = np.zeros((1, 2))
    with pytest.raises(InvalidParameterError, match="weights"):
        generate("teacher", n=5, replicates=1, seed=0, weights=[layers[0], layers[1], (w3, [1.0])])


@st.composite
def node_sparse_teachers(draw):
    """Random teachers whose layers have random zero rows, columns and entries."""
    sizes = draw(st.lists(st.integers(1, 5), min_size=3, max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        w = rng.normal(size=(fan_out, fan_in)) * (rng.random((fan_out, fan_in)) < 0.7)
        b = rng.normal(size=fan_out) * (rng.random(fan_out) < 0.5)
        layers.append((w, b))
    activation = draw(st.sampled_from(["relu", "tanh"]))
    return layers, activation


@settings(max_examples=40)
@given(node_sparse_teachers())
def test_pruning_to_the_truth_keeps_f0(teacher):
    """Removing the inactive nodes and irrelevant inputs does not change f0 (psi(0) = 0 here)."""
    layers, activation = teacher
    try:
        d = generate(
            "teacher",
            n=2,
            replicates=1,
            seed=0,
            n_test=64,
            weights=layers,
            activation=activation,
            dtype=torch.float64,
        )
    except InvalidParameterError as err:
        assert err.field == "weights"  # a layer without an active node
        return
    from simulations.designs.teachers import _active_structure

    inputs, nodes = _active_structure([w for w, _ in layers], [b for _, b in layers])
    assert d.truth.relevant_inputs == tuple(np.flatnonzero(inputs))
    keep_in = [inputs, *nodes]
    keep_out = [*nodes, np.ones(layers[-1][0].shape[0], dtype=bool)]
    pruned_w = [w[o][:, i] for (w, _), i, o in zip(layers, keep_in, keep_out, strict=True)]
    pruned_b = [b[o] for (_, b), o in zip(layers, keep_out, strict=True)]
    x = d.x_test.numpy()[:, : layers[0][0].shape[1]]
    np.testing.assert_allclose(
        teacher_forward(x[:, inputs], pruned_w, pruned_b, activation),
        d.f_test.numpy(),
        rtol=1e-12,
        atol=1e-12,
    )
    # every kept node has a non-zero incoming group and a non-zero outgoing weight
    for layer, w in enumerate(pruned_w[:-1]):
        assert np.all((w != 0).any(axis=1) | (pruned_b[layer] != 0))
        assert np.all((pruned_w[layer + 1] != 0).any(axis=0))


def test_teacher_classification_likelihoods():
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(4, 3)), rng.normal(size=4)), (rng.normal(size=(3, 4)), np.zeros(3))]
    d = generate(
        "teacher",
        n=20000,
        replicates=1,
        seed=1,
        n_test=200,
        weights=layers,
        likelihood="categorical",
        dtype=torch.float64,
    )
    assert d.outputs == 3 and d.noise_sd is None and d.y_train.dtype == torch.int64
    np.testing.assert_allclose(d.f_test.sum(dim=1).numpy(), 1.0, rtol=1e-12)
    logits = teacher_forward(
        d.x_test.numpy(), [w for w, _ in layers], [b for _, b in layers], "relu"
    )
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(d.f_test.numpy(), probs, rtol=1e-12)
    # class frequencies match the mean class probability: binomial sd < 0.004 at n = 20000
    x = d.x_train[0].numpy()
    lt = teacher_forward(x, [w for w, _ in layers], [b for _, b in layers], "relu")
    pt = np.exp(lt) / np.exp(lt).sum(axis=1, keepdims=True)
    freq = np.bincount(d.y_train[0].numpy(), minlength=3) / 20000
    np.testing.assert_allclose(freq, pt.mean(axis=0), atol=0.02)
    one = [(layers[0][0], layers[0][1]), (layers[1][0][:1], np.zeros(1))]
    b = generate(
        "teacher",
        n=20000,
        replicates=1,
        seed=1,
        n_test=10,
        weights=one,
        likelihood="bernoulli",
        dtype=torch.float64,
    )
    assert b.y_train.shape == (1, 20000, 1) and set(np.unique(b.y_train.numpy())) <= {0.0, 1.0}
    pb = 1 / (1 + np.exp(-teacher_forward(b.x_train[0].numpy(), *zip(*one, strict=True), "relu")))
    assert b.y_train.mean().item() == pytest.approx(pb.mean(), abs=0.02)


# --------------------------------------------------------------------------- dataset


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    frame["row"] = np.arange(60, dtype=float)  # a feature that identifies the row
    frame["y"] = frame["a"] * 2 + frame["row"]
    frame["label"] = (frame["a"] > 0).astype(int) + (frame["b"] > 1).astype(int)
    return frame


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npz", "arrays"])
def test_dataset_split_is_seeded_and_disjoint(tmp_path, table, fmt):
    features = ["a", "row"]
    if fmt == "csv":
        table.to_csv(tmp_path / "d.csv", index=False)
        source = {"path": tmp_path / "d.csv", "features": features, "target": "y"}
    elif fmt == "parquet":
        table.to_parquet(tmp_path / "d.parquet")
        source = {"path": str(tmp_path / "d.parquet"), "features": features, "target": "y"}
    elif fmt == "npz":
        np.savez(tmp_path / "d.npz", X=table[features].to_numpy(), y=table["y"].to_numpy())
        source = {"path": tmp_path / "d.npz"}
    else:
        source = {"x": table[features].to_numpy(), "y": table["y"].to_numpy()}
    d = generate("dataset", n=30, replicates=3, seed=5, n_test=20, dtype=torch.float64, **source)
    assert d.truth is None and d.f_test is None and d.noise_sd is None and d.outputs == 1
    assert d.x_train.shape == (3, 30, 2) and d.y_train.shape == (3, 30, 1)
    test_rows = set(d.x_test[:, 1].numpy().astype(int))
    assert len(test_rows) == 20
    for r in range(3):
        rows = d.x_train[r, :, 1].numpy().astype(int)
        assert len(set(rows)) == 30 and not test_rows & set(rows)
        np.testing.assert_allclose(d.y_train[r, :, 0].numpy(), table["y"].to_numpy()[rows])
    assert not torch.equal(d.x_train[0], d.x_train[1])
    again = generate(
        "dataset", n=30, replicates=1, seed=5, n_test=20, dtype=torch.float64, **source
    )
    torch.testing.assert_close(again.x_train[0], d.x_train[0], rtol=0, atol=0)
    torch.testing.assert_close(again.x_test, d.x_test, rtol=0, atol=0)


def test_dataset_defaults_and_labels(tmp_path, table):
    table.to_csv(tmp_path / "d.csv", index=False)
    d = generate(
        "dataset",
        n=45,
        replicates=2,
        seed=0,
        path=tmp_path / "d.csv",
        target="label",
        likelihood="categorical",
    )
    assert d.n_test == 15 and d.p == 5, "features default to every other column"
    assert d.y_train.dtype == torch.int64 and d.y_train.shape == (2, 45) and d.outputs == 3
    rows = set(d.x_train[0, :, 3].numpy().astype(int))
    assert rows == set(d.x_train[1, :, 3].numpy().astype(int)), "one split: all non-test rows"


def test_dataset_bad_input(tmp_path, table):
    table.to_csv(tmp_path / "d.csv", index=False)
    csv = tmp_path / "d.csv"
    cases = [
        ({"path": tmp_path / "missing.csv", "target": "y"}, "path"),
        ({"path": csv, "target": "nope"}, "target"),
        ({"path": csv, "target": "y", "features": ["a", "zz"]}, "features"),
        ({"path": csv, "target": "y", "likelihood": "bernoulli"}, "y"),
        ({"path": csv}, "target"),
        ({}, "path"),
        ({"x": np.ones((5, 2))}, "path"),
        ({"x": np.array([[1.0, np.nan]] * 5), "y": np.ones(5)}, "x"),
        ({"x": np.ones((5, 2)), "y": np.array([1.0, np.inf, 0, 0, 0])}, "y"),
        ({"x": np.ones((5, 2)), "y": np.ones(4)}, "y"),
        (
            {"x": np.ones((5, 2)), "y": np.array([0, 1, 2.5, 0, 1]), "likelihood": "categorical"},
            "y",
        ),
    ]
    for params, field in cases:
        with pytest.raises(InvalidParameterError) as err:
            generate("dataset", n=3, replicates=1, seed=0, **params)
        assert err.value.field == field, (params, err.value)
    with pytest.raises(InvalidParameterError, match="n:"):
        generate("dataset", n=60, replicates=1, seed=0, path=csv, target="y")
    with pytest.raises(InvalidParameterError, match="n_test"):
        generate("dataset", n=50, replicates=1, seed=0, path=csv, target="y", n_test=11)
    np.savez(tmp_path / "d.npz", X=np.ones((5, 2)), y=np.ones(5))
    with pytest.raises(InvalidParameterError, match="target"):
        generate("dataset", n=3, replicates=1, seed=0, path=tmp_path / "d.npz", target="Y")


# --------------------------------------------------------------------------- bad input


BAD = [
    ("relu_teacher", {"p": 4}, "p"),
    ("relu_teacher", {"sigma_e": 0.0}, "sigma_e"),
    ("relu_teacher", {"sigma_e": -1}, "sigma_e"),
    ("relu_teacher", {"sigma_e": math.nan}, "sigma_e"),
    ("relu_teacher", {"sigma_e": "1"}, "sigma_e"),
    ("relu_teacher", {"active": (4, 0)}, "active[1]"),
    ("relu_teacher", {"active": ()}, "active"),
    ("relu_teacher", {"hidden": (4, 2)}, "active[1]"),
    ("relu_teacher", {"hidden": (4,)}, "hidden"),
    ("relu_teacher", {"p": True}, "p"),
    ("relu_teacher", {"depth": 3}, "depth"),
    ("bai_sparse_function", {"p": 4}, "p"),
    ("sun_regression", {"sigma_e": math.inf}, "sigma_e"),
    ("sun_classification", {"p": 3}, "p"),
    ("sun_classification", {"likelihood": "gaussian"}, "likelihood"),
    ("sun_classification", {"sigma_e": 1.0}, "sigma_e"),
    ("cubic_small_n", {"p": 2}, "p"),
    ("teacher", {}, "weights"),
    ("teacher", {"weights": [(np.ones((2, 3)), np.ones(2)), (np.ones((1, 3)), np.ones(1))]}, "W2"),
    ("teacher", {"weights": [(np.ones((2, 3)), np.ones(3)), (np.ones((1, 2)), np.ones(1))]}, "b1"),
    ("teacher", {"weights": [(np.ones(3), np.ones(1)), (np.ones((1, 1)), np.ones(1))]}, "W1"),
    (
        "teacher",
        {"weights": [(np.full((2, 3), np.nan), np.ones(2)), (np.ones((1, 2)), [0.0])]},
        "W1",
    ),
    ("teacher", {"weights": [(np.ones((1, 3)), np.ones(1))]}, "weights"),
    (
        "teacher",
        {"weights": {"W1": np.ones((2, 3)), "b1": np.ones(2), "W3": 1, "b3": 1}},
        "weights",
    ),
    ("teacher", {"weights": "no_such_file.npz"}, "weights"),
    ("teacher", {"weights": small_teacher(), "p": 2}, "p"),
    ("teacher", {"weights": small_teacher(), "activation": "gelu"}, "activation"),
    ("teacher", {"weights": small_teacher(), "likelihood": "categorical"}, "W3"),
    ("teacher", {"weights": small_teacher(), "sigma_e": 0}, "sigma_e"),
]


@pytest.mark.parametrize(("name", "params", "field"), BAD)
def test_bad_design_parameters_name_the_field(name, params, field):
    with pytest.raises(InvalidParameterError) as err:
        generate(name, n=5, replicates=1, seed=0, n_test=5, **params)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: must be ")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": 2.5}, "n"),
        ({"replicates": 0}, "replicates"),
        ({"seed": -1}, "seed"),
        ({"n_test": 0}, "n_test"),
        ({"dtype": torch.int32}, "dtype"),
        ({"design": "friedman"}, "design"),
    ],
)
def test_bad_generate_arguments(kwargs, field):
    args = {"design": "cubic_small_n", "n": 5, "replicates": 1, "seed": 0, "n_test": 5, **kwargs}
    design = args.pop("design")
    with pytest.raises(InvalidParameterError) as err:
        generate(design, **args)
    assert err.value.field == field


def test_simulation_data_is_frozen():
    d = generate("cubic_small_n", n=5, replicates=1, seed=0, n_test=5)
    with pytest.raises(AttributeError):
        d.noise_sd = 2.0
    with pytest.raises(TypeError):
        d.params["sigma_e"] = 2.0


# --------------------------------------------------------------------------- strict inputs


def _layers(**changes):
    rng = np.random.default_rng(1)
    layers = {"W1": rng.normal(size=(3, 4)), "b1": np.zeros(3), "W2": rng.normal(size=(1, 3))}
    return {**layers, "b2": np.zeros(1), **changes}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"W1": np.ones((3, 4)) * (1 + 2j)}, "an array of complex numbers"),
        ({"b1": np.zeros(3, dtype=complex)}, "an array of complex numbers"),
        ({"W2": np.array([["1", "2", "3"]])}, "an array of strings"),
        ({"W1": [[1.0, 2.0], [3.0]]}, "inhomogeneous"),
        ({"W2": [[True, 1.0, 0.0]]}, "no booleans or quoted numbers"),
        ({"W2": np.ones((1, 3), dtype=bool)}, "an array of booleans"),
    ],
)
def test_teacher_weights_must_be_real_numbers(changes, expected):
    # A complex teacher used to lose its imaginary part without a word.
    with pytest.raises(InvalidParameterError, match="must be an array of real numbers") as info:
        generate("teacher", n=4, replicates=1, seed=0, n_test=4, weights=_layers(**changes))
    assert expected in str(info.value)


def test_available_rows_of_a_dataset_and_of_synthetic_designs():
    from simulations.designs import available_rows

    x = np.arange(20.0).reshape(10, 2)
    assert available_rows("dataset", x=x, y=x[:, 0]) == 10
    assert available_rows("relu_teacher", p=20) is None
    with pytest.raises(InvalidParameterError, match=r"^x: must be an array of real numbers"):
        available_rows("dataset", x=[["a", "b"], ["c", "d"]], y=[0.0, 1.0])
    with pytest.raises(InvalidParameterError, match=r"^nope: must be a parameter of dataset"):
        available_rows("dataset", nope=1)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"p": 10**12}, "p"),
        ({"relevant": 10**6, "p": 10**7}, "relevant"),
        ({"active": [4, 10**6]}, r"active\[1\]"),
        ({"hidden": [10**6, 3]}, r"hidden\[0\]"),
    ],
)
def test_relu_teacher_sizes_are_bounded(params, field):
    # Sizes that cannot be drawn in memory are errors, not a MemoryError deep in numpy.
    with pytest.raises(InvalidParameterError, match=rf"^{field}: must be an integer in \["):
        generate("relu_teacher", n=2, replicates=1, seed=0, n_test=2, **params)


# --------------------------------------------------------------------------- a new design


def _toy_law(truth_seed, *, p=3, sigma_e=0.5):
    """x ~ U(-1,1)^p; f0 = a x1; y = f0 + sigma_e e

    A throwaway design, written as docs/designs.md "Adding a design" says.
    """
    from simulations.designs.base import MAX_P, Law, Truth
    from ssbnn_theory.validation import check_integer, check_positive

    p = check_integer("p", p, lower=2, upper=MAX_P)
    sigma_e = check_positive("sigma_e", sigma_e)
    slope = np.random.default_rng(truth_seed).uniform(1.0, 2.0)

    def sample(g, m):
        x = g.uniform(-1.0, 1.0, size=(m, p))
        return x, slope * x[:, :1]

    return Law(p, 1, Likelihood.GAUSSIAN, sigma_e, Truth(relevant_inputs=(0,)), sample)


def test_a_new_design_is_one_module_and_a_registry_line(monkeypatch):
    from types import MappingProxyType

    import simulations.designs as designs
    import simulations.spec as spec_module
    from simulations.designs.base import design
    from simulations.spec import parse_spec

    toy = design("toy", "1", _toy_law, {"n": 20, "replicates": 2, "n_test": 10})
    assert toy.description == "x ~ U(-1,1)^p; f0 = a x1; y = f0 + sigma_e e"
    assert dict(toy.defaults) == {"p": 3, "sigma_e": 0.5}
    registry = MappingProxyType({**DESIGNS, "toy": toy})  # the registry line
    monkeypatch.setattr(designs, "DESIGNS", registry)
    monkeypatch.setattr(spec_module, "DESIGNS", registry)
    d = generate("toy", seed=0, **toy.quick)
    assert (d.replicates, d.n, d.p, d.n_test) == (2, 20, 3, 10)
    assert d.truth.relevant_inputs == (0,) and d.noise_sd == 0.5

    def spec(**design):
        return parse_spec(
            {
                "study": {"name": "toy"},
                "design": {"name": "toy", **design},
                "model": {"priors": ["ss-gl"], "hidden": [4]},
                "train": {"n": [20], "steps": 2},
            }
        )

    assert spec(p=4).design.p == 4 and spec().design.noise_sd == 0.5
    with pytest.raises(InvalidParameterError, match=r"^design\.p: must be an integer in \[2"):
        spec(p=1)
