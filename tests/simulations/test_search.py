"""The removal search at the end of an "auto" fit (simulations.search)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_spec import _with
from test_train import AUTO, D, assert_replicate_equals, data

from simulations.model import BayesianMLP, ModelConfig
from simulations.search import removal_search
from simulations.spec import parse_spec
from simulations.structure import ElboEstimate
from simulations.train import TrainConfig, _train_arms, fit
from ssbnn_theory.errors import InvalidParameterError

RELU = ModelConfig(p=6, hidden=(8, 6), prior="ss-gl", activation="relu", prior_inclusion=0.2)


def searches(report, r):
    return [e for e in report.structure_events if e["move"] == "search" and e["replicate"] == r]


def _moves(event):
    """An event without its replicate index and its float figure."""
    return {k: v for k, v in event.items() if k not in ("replicate", "delta_nats")}


def test_the_search_ends_each_replicate_on_a_rejection_and_reports_its_l():
    """Every replicate's search rounds: accepted exactly when the best removal arm's L(q) is
    below the control arm's; a rejected round of single removals is followed by a round of
    pairs (two nodes of one layer, while a layer keeps two), after which the replicate goes
    back to single removals if the pair was accepted and is finished if not; each round adds
    ``trial_steps`` to the replicate's steps; the reported L(q) is the final model's (the
    same estimator, so equal to rounding)."""
    x, y = data(3, seed=1, n=120)
    model = BayesianMLP(RELU, [5, 22, 33], dtype=D)
    without = fit(BayesianMLP(RELU, [5, 22, 33], dtype=D), x, y, replace(AUTO, search=False))
    report = fit(model, x, y, AUTO)
    for r in range(3):
        moves = searches(report, r)
        assert moves, r
        sizes = [len(m["nodes"]) for m in moves]
        assert not moves[-1]["accepted"]
        assert sizes[0] == 1 and sizes[-1] == (2 if max(moves[-1]["kept"]) >= 2 else 1)
        for before, size in zip(moves, sizes[1:], strict=False):
            assert size == (1 if before["accepted"] or len(before["nodes"]) == 2 else 2)
            assert before["accepted"] or len(before["nodes"]) == 1  # a rejected pair ends it
        assert all(m["accepted"] == (m["delta_nats"] < 0) for m in moves)
        added = report.steps_taken[r] - without.steps_taken[r]
        assert added == len(moves) * AUTO.trial_steps
        assert moves[-1]["kept"] == [int(k[r].sum()) for k in model.kept().nodes]
    rule = AUTO.convergence
    again = ElboEstimate(model, x, y, rows=rule.rows, draws=rule.draws)().numpy()
    np.testing.assert_allclose(again, report.final_neg_elbo, rtol=1e-12)
    assert not [e for e in without.structure_events if e["move"] == "search"]


def test_the_search_removes_a_superfluous_node():
    """A fitted model given one more first-layer node, which the next layer does not read
    (outgoing means 0): the search's first round removes that node (it costs KL and adds
    nothing), and the replicate ends on the structure it had."""
    x, y = data(2, seed=2, n=120)
    model = BayesianMLP(RELU, [7, 8], dtype=D)
    report = fit(model, x, y, replace(AUTO, search=False))
    before = [k.sum(1).tolist() for k in model.kept().nodes]
    layer = model.hidden_layers[0]
    mask = layer.indicators.frozen_mask
    extra = [int((mask[r] < 0.5).nonzero()[0]) for r in range(2)]
    with torch.no_grad():
        for r, j in enumerate(extra):
            mask[r, j] = 1.0
            layer.indicators.theta[r, j] = 4.6
            model.layers[1].mu[r, :, j] = 0.0
    searched = removal_search(model, x, y, AUTO, report, _train_arms)
    for r, j in enumerate(extra):
        first = searches(searched, r)[0]
        assert (first["block"], first["nodes"], first["accepted"]) == ("layer 1", [j], True)
        assert first["delta_nats"] < 0
    assert [k.sum(1).tolist() for k in model.kept().nodes] == before


def test_the_search_keeps_the_batched_equals_separate_guarantee():
    """Each replicate's search runs on its own values, seed and rows: a batch of three ends
    as its three R = 1 runs (the arms of a batch form a larger batch, hence the tolerance
    of the batched products)."""
    x, y = data(3, seed=3, n=120)
    seeds = [5, 22, 33]
    batched = BayesianMLP(RELU, seeds, dtype=D)
    report = fit(batched, x, y, AUTO)
    for r, seed in enumerate(seeds):
        single = BayesianMLP(RELU, [seed], dtype=D)
        alone = fit(single, x[r : r + 1], y[r : r + 1], AUTO)
        assert alone.steps_taken[0] == report.steps_taken[r]
        mine, theirs = searches(report, r), searches(alone, 0)
        assert [_moves(e) for e in mine] == [_moves(e) for e in theirs]
        nats = [[e["delta_nats"] for e in events] for events in (mine, theirs)]
        np.testing.assert_allclose(*nats, rtol=1e-9)
        assert_replicate_equals(batched, r, single)


def test_arms_train_in_groups_of_replicates_bounded_by_the_data_they_copy(monkeypatch):
    """Groups keep the replicates' order and stay within the limit of arms, a replicate
    with more arms than the limit alone; a search whose arms train in groups (a limit of one
    byte: one replicate per batch here) ends as the search in one batch, to the rounding of
    batched products."""
    import simulations.search as search

    candidates = [[(0, 0)] * 3, [(0, 0)] * 1, [(0, 0)] * 6, [(0, 0)] * 2]
    assert search._groups([0, 1, 2, 3], candidates, 6) == [[0, 1], [2], [3]]
    assert search._groups([1, 3], candidates, 6) == [[1, 3]]
    x, y = data(3, seed=1, n=120)
    seeds = [5, 22, 33]
    whole = BayesianMLP(RELU, seeds, dtype=D)
    report = fit(whole, x, y, AUTO)
    monkeypatch.setattr(search, "_ARM_BYTES", 1)
    grouped = BayesianMLP(RELU, seeds, dtype=D)
    apart = fit(grouped, x, y, AUTO)
    assert apart.steps_taken.tolist() == report.steps_taken.tolist()
    assert apart.steps > report.steps  # three batches a round instead of one
    for r in range(3):
        assert [_moves(e) for e in searches(apart, r)] == [_moves(e) for e in searches(report, r)]
    np.testing.assert_allclose(apart.final_neg_elbo, report.final_neg_elbo, rtol=1e-9)
    for (name, mine), theirs in zip(whole.named_parameters(), grouped.parameters(), strict=True):
        torch.testing.assert_close(theirs, mine, rtol=1e-9, atol=1e-12, msg=name)


def test_search_option_is_checked():
    with pytest.raises(InvalidParameterError, match="search"):
        TrainConfig(search="yes")
    spec = parse_spec(_with(train__steps=..., train__search=False))
    assert spec._build_train_config().search is False
    with pytest.raises(InvalidParameterError, match=r"^train\.search"):
        parse_spec(_with(train__search=3))


def test_search_steps_sets_the_length_of_the_search_arms_alone():
    """With ``search_steps`` every arm of the search trains that many steps and each round
    adds them to the replicate's steps; ``None`` means ``trial_steps`` (the test above). The
    option is recorded only when given (checkpoints of earlier runs keep matching) and
    reaches the engine from a spec."""
    x, y = data(2, seed=1, n=120)
    model = BayesianMLP(RELU, [5, 22], dtype=D)
    report = fit(model, x, y, replace(AUTO, search=False))
    lengths = []

    def train_arms(arms, x, y, config):
        lengths.append(config.steps)
        _train_arms(arms, x, y, config)

    config = replace(AUTO, search_steps=5)
    out = removal_search(model, x, y, config, report, train_arms)
    assert lengths and set(lengths) == {5} != {AUTO.trial_steps}
    for r in range(2):
        rounds = len(searches(out, r))
        assert rounds and out.steps_taken[r] == report.steps_taken[r] + 5 * rounds
    assert config.search_arm_steps == 5 and AUTO.search_arm_steps == AUTO.trial_steps
    assert "search_steps" not in AUTO.record() and config.record()["search_steps"] == 5
    with pytest.raises(ValueError, match="at_n"):
        _ = TrainConfig().search_arm_steps
    spec = parse_spec(_with(train__steps="auto", train__search_steps=5000))
    assert spec.train_config().search_steps == 5000


def _with_extra_nodes(seed: int, extra: int):
    """A fitted replicate (search left out) given ``extra`` more first-layer nodes that the
    next layer does not read; returns the data, the model, its report and the layer's
    kept nodes."""
    x, y = data(1, seed=2, n=120)
    model = BayesianMLP(RELU, [seed], dtype=D)
    report = fit(model, x, y, replace(AUTO, search=False))
    mask = model.hidden_layers[0].indicators.frozen_mask
    with torch.no_grad():
        for j in (mask[0] < 0.5).nonzero().flatten().tolist()[:extra]:
            mask[0, j] = 1.0
            model.hidden_layers[0].indicators.theta[0, j] = 4.6
            model.layers[1].mu[0, :, j] = 0.0
    return x, y, model, report, mask[0].nonzero().flatten().tolist()


def test_a_round_of_pairs_removes_two_nodes_of_one_layer():
    """The moves of a round: each kept node alone, or every two kept nodes of one layer; a
    pair's arm starts without both nodes, the control arm with the structure as it is."""
    import simulations.search as search

    kept = [(0, 1), (0, 3), (1, 2), (1, 4), (1, 5)]
    assert search._moves(kept, 1) == [(node,) for node in kept]
    assert search._moves(kept, 2) == [
        ((0, 1), (0, 3)), ((1, 2), (1, 4)), ((1, 2), (1, 5)), ((1, 4), (1, 5)),
    ]  # fmt: skip
    x, y, model, _, (j, k, *_) = _with_extra_nodes(7, 2)
    mask = model.hidden_layers[0].indicators.frozen_mask
    arms = [(0, None), (0, ((0, j), (0, k)))]
    config = replace(AUTO, steps=5, dense_steps=0, restarts=1, kl_warmup_steps=0)
    batch, value = search._round(model, x, y, arms, 0, config, lambda *args: None)
    arm_masks = batch.hidden_layers[0].indicators.frozen_mask
    torch.testing.assert_close(arm_masks[0], mask[0])
    expected = mask[0].clone()
    expected[[j, k]] = 0.0
    torch.testing.assert_close(arm_masks[1], expected)
    assert value.shape == (2,) and np.isfinite(value).all()


def test_a_replicate_whose_single_removals_all_lose_tries_the_pairs(monkeypatch):
    """With arms scored so that every single removal loses and one pair wins, the search
    goes singles (rejected), pairs (the pair taken), singles again (rejected), and ends
    (no layer keeps two nodes): three rounds, the pair's two nodes removed."""
    import simulations.search as search

    x, y, model, report, kept = _with_extra_nodes(7, 2)
    assert len(kept) == 3 and int(model.hidden_layers[1].indicators.frozen_mask.sum()) == 1
    pair = ((0, kept[1]), (0, kept[2]))
    train_round = search._round

    def scored(model, x, y, arms, round_, config, train_arms):
        batch, _ = train_round(model, x, y, arms, round_, config, lambda *args: None)
        value = [0.0 if move is None else -1.0 if move == pair else 1.0 for _, move in arms]
        return batch, np.array(value)

    monkeypatch.setattr(search, "_round", scored)
    out = removal_search(model, x, y, AUTO, report, _train_arms)
    moves = searches(out, 0)
    assert [(len(m["nodes"]), m["accepted"]) for m in moves] == [(1, False), (2, True), (1, False)]
    assert moves[1]["nodes"] == [kept[1], kept[2]] and moves[1]["kept"] == [1, 1]
    assert model.hidden_layers[0].indicators.frozen_mask[0].nonzero().flatten().tolist() == kept[:1]
    assert out.steps_taken[0] == report.steps_taken[0] + 3 * AUTO.trial_steps
    assert out.indicator_switches[0] == report.indicator_switches[0] + 2
