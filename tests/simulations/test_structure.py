"""The moves over the frozen indicators: the pass, removal costs and removals."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from simulations import generate, structure
from simulations.model import BayesianMLP, ModelConfig
from simulations.structure import (
    ElboEstimate,
    _least_squares,
    _solve,
    indicator_pass,
    place_at_truth,
    removal_costs,
    remove_nodes,
)
from ssbnn_theory.errors import InvalidParameterError

D = torch.float64
R, N, P = 2, 200, 3


def frozen_model(**kw) -> tuple[BayesianMLP, torch.Tensor, torch.Tensor]:
    """A 4-3 ReLU SS-GL student with its indicators frozen, every node kept, and data."""
    config = ModelConfig(p=P, hidden=(4, 3), prior="ss-gl", sigma_e=0.5, **kw)
    model = BayesianMLP(config, [5, 6], n=N, dtype=D)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(R, N, P, generator=g, dtype=D) * 2 - 1
    y = torch.sin(2 * x[..., :1]) + 0.1 * torch.randn(R, N, 1, generator=g, dtype=D)
    model.freeze_masks()
    return model, x, y


def state(model):
    masks = [layer.indicators.frozen_mask.clone() for layer in model.hidden_layers]
    return {k: v.clone() for k, v in model.state_dict().items()}, masks


def assert_same_state(a, b):
    for key in a[0]:
        torch.testing.assert_close(a[0][key], b[0][key], rtol=0, atol=0, msg=key)
    for m, n in zip(a[1], b[1], strict=True):
        torch.testing.assert_close(m, n, rtol=0, atol=0)


def test_removal_costs_leave_the_model_as_it_was_and_price_kept_nodes_only():
    model, x, y = frozen_model()
    model.hidden_layers[0].indicators.frozen_mask[0, 2] = 0.0  # a dropped node
    elbo = ElboEstimate(model, x, y, rows=N, draws=2)
    before = state(model)
    costs = removal_costs(model, elbo, torch.tensor([True, False]))
    assert_same_state(before, state(model))
    assert [tuple(c.shape) for c in costs] == [(R, 4), (R, 3)]
    assert math.isinf(costs[0][0, 2]) and torch.isfinite(costs[0][0, [0, 1, 3]]).all()
    assert torch.isinf(costs[0][1]).all() and torch.isinf(costs[1][1]).all()  # not taking part


@pytest.mark.parametrize(
    "kw",
    [
        {"prior": "ss-gl"},
        {"prior": "ss-ghs", "input_spike": True},
        {"prior": "ss-ig", "sigma_e": None},  # a learned noise sd: a parameter
        {"prior": "edge-ss"},
        {"prior": "dense"},
    ],
)
def test_the_elbo_of_some_replicates_runs_on_them_alone(kw):
    """``elbo(replicates)`` evaluates the network on those replicates only: their values
    equal the whole batch's to float64 rounding (batched kernels of another batch size
    may round differently), the others are nan, and the model is left as it was."""
    config = ModelConfig(p=P, hidden=(4, 3), **{"sigma_e": 0.5, **kw})
    model = BayesianMLP(config, [5, 6, 7], n=N, dtype=D)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, N, P, generator=g, dtype=D) * 2 - 1
    y = torch.sin(2 * x[..., :1]) + 0.1 * torch.randn(3, N, 1, generator=g, dtype=D)
    model.freeze_masks()
    elbo = ElboEstimate(model, x, y, rows=150, draws=2)
    generators = model.generators
    before = {k: v.clone() for k, v in model.state_dict().items()}
    full = elbo()
    some = elbo(torch.tensor([True, False, True]))
    torch.testing.assert_close(some[[0, 2]], full[[0, 2]], rtol=1e-12, atol=0)
    assert torch.isnan(some[1])
    assert model.generators is generators and model.replicates == 3
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    torch.testing.assert_close(elbo(), full, rtol=0, atol=0)


def test_a_duplicated_node_costs_less_than_nothing_to_remove():
    """Node 1 of the first layer copies node 0 (same incoming means), and the next layer
    reads them through equal weights: the least-squares refit carries node 1's output on
    node 0, so removing it changes the mean network by nothing and saves its KL."""
    model, x, y = frozen_model()
    first, second = model.layers[0], model.layers[1]
    with torch.no_grad():
        first.mu[:, 1] = first.mu[:, 0]
        first.rho[:, 1] = first.rho[:, 0]
        second.mu[:, :, 1] = second.mu[:, :, 0]
    elbo = ElboEstimate(model, x, y, rows=N, draws=2)
    costs = removal_costs(model, elbo, torch.ones(R, dtype=torch.bool))
    assert (costs[0][:, 1] < 0).all(), costs[0]


def test_the_pass_leaves_replicates_that_do_not_take_part_as_they_are():
    model, x, y = frozen_model()
    elbo = ElboEstimate(model, x, y, rows=N, draws=2)
    before = state(model)
    indicator_pass(model, elbo, replicates=torch.tensor([False, True]))
    after = state(model)
    for key in before[0]:
        if key.endswith(("mu", "rho")):
            torch.testing.assert_close(before[0][key][0], after[0][key][0], rtol=0, atol=0)
    for m, n in zip(before[1], after[1], strict=True):
        torch.testing.assert_close(m[0], n[0], rtol=0, atol=0)


def test_remove_nodes_switches_off_the_chosen_node_of_each_replicate():
    model, x, _ = frozen_model()
    remove_nodes(model, [torch.tensor([1, -1]), torch.tensor([-1, 2])], x)
    first, second = (layer.indicators for layer in model.hidden_layers)
    assert first.frozen_mask.tolist() == [[1, 0, 1, 1], [1, 1, 1, 1]]
    assert second.frozen_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert ((first.theta > 0) == (first.frozen_mask > 0.5)).all()  # logits follow the masks
    assert (model.layers[1].mu[0, :, 1] == 0).all() and (model.layers[2].mu[1, :, 2] == 0).all()


def test_a_refit_computes_the_replicates_it_moves_only():
    """The refit of a removal runs on the replicates that move (a pass or a trial often
    moves one of many): their rows equal those of a refit of every replicate, to float64
    rounding (a batched product's kernel may depend on the batch size, so 1e-12 rather
    than bitwise), and the other rows keep their means exactly."""
    model, x, _ = frozen_model()
    node = torch.tensor([1, 2])
    for index in (1, 2):
        layer = model.layers[index]
        every, means = torch.ones(R, dtype=torch.bool), layer.mu.detach().clone()
        with torch.no_grad():
            full, _ = structure._compensated_means(model, index, node, x, every)
            one, _ = structure._compensated_means(
                model, index, node, x, torch.tensor([True, False])
            )
        torch.testing.assert_close(one[0], full[0], rtol=0, atol=1e-12)
        assert not torch.equal(full[1], means[1])  # the full refit moves replicate 1
        torch.testing.assert_close(one[1], means[1], rtol=0, atol=0)


def carrier_model():
    """A 4-3 student whose second layer computes ``psi(-z_a)``, ``psi(-z_b)`` and a node that
    is positive on every row, ``z_a + z_b + 10``, read by the output with weights 1 and
    bias -10: the mean network is ``psi(z_a) + psi(z_b)``, since ``psi(u) - psi(-u) = u``.
    The third node carries the linear parts of the two reflected ones."""
    model, x, _ = frozen_model()
    g = torch.Generator().manual_seed(1)
    v = torch.randn(2, 5, generator=g, dtype=D)  # (weights on the 4 first-layer nodes, bias)
    second, output = model.layers[1], model.layers[2]
    own = torch.stack([-v[0], -v[1], v[0] + v[1]])
    own[2, -1] += 10.0
    with torch.no_grad():
        second.mu.copy_((own / second.expected_scale()[..., None]).expand_as(second.mu))
        output.mu.copy_(torch.tensor([1.0, 1.0, 1.0, -10.0], dtype=D).expand_as(output.mu))
    return model, x


def test_a_removal_reflects_the_nodes_whose_linear_parts_the_removed_node_carried(monkeypatch):
    """Removing the carrier with the two other nodes reflected (their incoming means
    negated) keeps the mean network; without reflections the refit cannot."""
    from simulations import structure

    model, x = carrier_model()
    before = model.mean_function(x)
    second_mu = model.layers[1].mu.detach().clone()
    remove_nodes(model, [torch.tensor([-1, -1]), torch.tensor([2, 2])], x)
    torch.testing.assert_close(model.mean_function(x), before, rtol=0, atol=1e-4)
    torch.testing.assert_close(model.layers[1].mu[:, :2], -second_mu[:, :2], rtol=0, atol=0)
    assert (model.hidden_layers[1].indicators.frozen_mask[:, 2] == 0).all()

    monkeypatch.setattr(structure, "_REFLECTABLE", ())
    model, x = carrier_model()
    remove_nodes(model, [torch.tensor([-1, -1]), torch.tensor([2, 2])], x)
    assert (model.mean_function(x) - before).abs().max() > 0.1


def test_a_singular_refit_system_gets_the_least_norm_solution(monkeypatch):
    """A system that is singular even with the ridge gets the least-norm solution. Without
    the ridge, the Gram of ``[h, h, 1]`` style columns, ``[[1, 1, 0], [1, 1, 0], [0, 0, 1]]``,
    is exactly singular and its elimination ends on an exact zero pivot on any CPU (small
    integers: every operation is exact). The least-norm solution of ``G b = (2, 2, 3)`` is
    ``(1, 1, 3)``, its residual ``total - 2 b.c + b'Gb = 20 - 26 + 13 = 7``. Tolerance 1e-5:
    float32 ``pinv`` (an SVD) rounds to about 1e-7 of these unit-sized values."""
    monkeypatch.setattr(structure, "_REFIT_RIDGE", 0.0)
    gram = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    cross = torch.tensor([[2.0], [2.0], [3.0]])
    coef, rss = _solve(gram[None], cross[None], torch.tensor([20.0]))
    torch.testing.assert_close(coef[0], torch.tensor([[1.0], [1.0], [3.0]]), rtol=0, atol=1e-5)
    torch.testing.assert_close(rss, torch.tensor([7.0]), rtol=0, atol=1e-5)


def test_wide_refit_systems_solve_in_a_batch_on_two_threads():
    """A batch of refit systems of a 256-node layer (257 unknowns, one column per next-layer
    node) solves to its ridge solution with two threads: torch's batched LU factorisation,
    which ``_solve`` used before, returned wrong solutions or stopped on an MKL error for
    such batches on this project's CPU build (from about 150 unknowns), one system at a time
    it did not. Checked against float64 ``numpy.linalg.solve`` of each system alone, to
    1e-8 of the solution's scale (the systems' condition numbers are about 1e4)."""
    g = torch.Generator().manual_seed(5)
    h = torch.relu(torch.randn(3, 600, 256, generator=g, dtype=torch.float64))
    design = torch.cat([h, torch.ones_like(h[..., :1])], -1)
    target = torch.randn(3, 600, 40, generator=g, dtype=torch.float64)
    gram, cross = design.mT @ design, design.mT @ target
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        coef, rss = _solve(gram, cross, target.square().sum((-2, -1)))
    finally:
        torch.set_num_threads(threads)
    ridge = structure._REFIT_RIDGE * gram.diagonal(dim1=-2, dim2=-1).mean(-1)
    for r in range(3):
        system = gram[r].numpy() + ridge[r].item() * np.eye(257)
        expected = torch.from_numpy(np.linalg.solve(system, cross[r].numpy()))
        torch.testing.assert_close(coef[r], expected, rtol=0, atol=1e-8 * expected.abs().max())
    residual = ((target - design @ coef) ** 2).sum((-2, -1))
    torch.testing.assert_close(rss, residual, rtol=1e-8, atol=0)


def test_the_refit_system_that_ended_a_study_cell_solves():
    """``singular_refit.json``: the float32 normal equations of a removal's refit (16 nodes and
    the constant) on which ``torch.linalg.solve`` found a zero pivot despite the ridge, on the
    Intel CPU where it ended a cell of a study (a 16-16 SS-GHS fit at n = 1024); on an AMD
    EPYC the same elimination passes. Either way ``_solve`` answers with finite values. (This
    Gram, formed in float32, is not positive semi-definite, smallest eigenvalue -4.5e-4, so
    its residual may fall below 0: -2.1 in float32, -27 in float64; the callers now form
    their Gram in float64.)"""
    case = json.loads((Path(__file__).parent / "singular_refit.json").read_text())
    gram, cross = (torch.tensor(case[k], dtype=torch.float32) for k in ("gram", "cross"))
    coef, rss = _solve(gram, cross, torch.tensor(case["total"], dtype=torch.float32))
    assert torch.isfinite(coef).all() and torch.isfinite(rss).all()


def test_the_refit_forms_its_normal_equations_in_float64():
    """A float32 model's refit: the Gram matrix and the solve are float64 (so the ridge, 1e-6
    of the mean diagonal, lies far above the rounding), and equal the float64 refit of the
    same inputs to 1e-12."""
    g = torch.Generator().manual_seed(3)
    h = torch.relu(torch.randn(2, 300, 6, generator=g)) * 40.0
    h[..., 5] = h[..., 4]  # a duplicate node
    target = torch.randn(2, 300, 3, generator=g)
    coef, rss = _least_squares(h, target)
    assert coef.dtype == rss.dtype == torch.float64
    coef64, rss64 = _least_squares(h.double(), target.double())
    torch.testing.assert_close(coef, coef64, rtol=1e-12, atol=0)
    torch.testing.assert_close(rss, rss64, rtol=1e-12, atol=0)


@pytest.mark.parametrize("prior", ["ss-gl", "ss-ghs"])
def test_a_student_placed_at_the_truth_computes_f0(prior):
    """``place_at_truth`` on a tanh teacher with biases (2 and 1 active nodes on 3 of 6
    inputs) in a wider 4-3 student: the mean network is the teacher's ``f0`` and the kept
    structure the truth's. Tolerance 1e-5: ``f0`` is stored in float32 (|f0| <= 0.22 here,
    so rounding below 2e-8); a misplaced, unscaled or missing weight or bias moves it by
    1e-2 or more (measured on such mutations of ``place_at_truth``)."""
    g = torch.Generator().manual_seed(1)
    weights = {
        "W1": torch.randn(2, 3, generator=g).numpy(), "b1": torch.randn(2, generator=g).numpy(),
        "W2": torch.randn(1, 2, generator=g).numpy(), "b2": torch.randn(1, generator=g).numpy(),
        "W3": torch.randn(1, 1, generator=g).numpy(), "b3": torch.randn(1, generator=g).numpy(),
    }  # fmt: skip
    data = generate(
        "teacher", n=64, replicates=R, seed=2, n_test=300, weights=weights, activation="tanh",
        p=6, sigma_e=0.5,
    )  # fmt: skip
    config = ModelConfig(p=6, hidden=(4, 3), prior=prior, activation="tanh", sigma_e=0.5)
    model = BayesianMLP(config, [5, 6], n=64, dtype=D)
    place_at_truth(model, data.truth)
    f = model.mean_function(data.x_test)
    assert (f - data.f_test.to(D)).abs().max() < 1e-5
    assert [k.sum(-1).tolist() for k in model.kept().nodes] == [[2, 2], [1, 1]]
    for narrow in [(4,), (1, 3)]:
        with pytest.raises(InvalidParameterError, match="truth: must be a teacher of"):
            place_at_truth(BayesianMLP(ModelConfig(p=6, hidden=narrow), [5, 6], n=64), data.truth)
