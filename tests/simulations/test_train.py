"""fit: replicate independence, checkpoint and resume, non-finite detection, data validation."""

import itertools
import math
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from simulations._io import TMP_PREFIX
from simulations.convergence import ConvergenceRule
from simulations.model import BayesianMLP, ModelConfig
from simulations.relaxed import TemperatureSchedule
from simulations.structure import ElboEstimate
from simulations.train import FitReport, NonFiniteError, TrainConfig, auto_budget, fit
from ssbnn_theory.errors import InvalidParameterError

D = torch.float64
P, N = 6, 60


def data(replicates, seed=0, n=N, dtype=D):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(replicates, n, P, generator=gen, dtype=dtype) * 2 - 1
    y = torch.relu(2 * x[..., :1] - x[..., 1:2]) + 0.3 * torch.randn(
        replicates, n, 1, generator=gen, dtype=dtype
    )
    return x, y


def config(prior="ss-ghs", **kw):
    kw.setdefault("prior_inclusion", 0.2)
    return ModelConfig(p=P, hidden=(5, 4), prior=prior, **kw)


# A run that uses every moving part: minibatches over several epochs, KL warm-up, a
# temperature schedule, per-replicate clipping, then fine-tuning with frozen masks.
FULL = TrainConfig(
    steps=24,
    batch_size=16,
    lr=2e-2,
    grad_clip=0.5,
    kl_warmup_steps=10,
    finetune_steps=6,
    temperature=TemperatureSchedule(1.0, 0.3, 12, "exponential"),
    checkpoint_every=5,
    log_every=4,
)


# An "auto" run with a rule small enough that replicates converge at different steps,
# through the dense and relaxed phases, the indicator passes, the pruning rounds and the
# removal trials.
AUTO = TrainConfig(
    steps="auto",
    max_steps=2000,
    dense_steps=12,
    prune_every=24,
    trial_steps=12,
    batch_size=16,
    lr=2e-2,
    kl_warmup_steps=20,
    convergence=ConvergenceRule(
        check_every=4, patience=2, decays=1, tolerance=1e-2, rows=40, draws=2
    ),
    checkpoint_every=7,
    log_every=4,
    restarts=1,  # one start: the tests of restarts ask for theirs
)


def parameters(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_replicate_equals(batched, r, single):
    """Replicate ``r`` of ``batched`` equals the ``R = 1`` model ``single`` to 1e-9 relative
    (the summation order of batched matrix products; see the fixed-steps test)."""
    for name, value in parameters(single).items():
        torch.testing.assert_close(
            dict(batched.named_parameters())[name][r : r + 1].detach(),
            value,
            rtol=1e-9,
            atol=1e-12,
            msg=f"replicate {r}, {name}",
        )


def test_report_fields_and_learning():
    x, y = data(3)
    model = BayesianMLP(config(), [1, 2, 3], dtype=D)
    report = fit(model, x, y, TrainConfig(steps=200, batch_size=20, lr=2e-2, log_every=50))
    assert isinstance(report, FitReport) and report.steps == 200 and report.replicates == 3
    assert report.loss_history.shape == (4, 3) and report.logged_steps.tolist() == [
        50,
        100,
        150,
        200,
    ]
    assert report.final_nll.shape == (3,) and report.final_kl.shape == (3,)
    assert report.wall_s > 0 and report.replicate_steps_per_s > 0 and report.peak_memory_bytes > 0
    assert (report.loss_history[-1] < report.loss_history[0]).all()
    assert report.resumed_from == 0 and report.device == "cpu"


@pytest.mark.parametrize("prior", ["ss-gl", "ss-ghs", "edge-ss"])
def test_batched_run_equals_separate_runs(prior):
    """R = 4 batched equals four R = 1 runs with the same seeds (float64).

    Everything a replicate computes comes from its own seeds and data; the only
    difference left is the summation order inside MKL's batched GEMM against its
    single-matrix GEMM (last-bit differences for some matrix shapes), so the
    parameters agree to 1e-9 relative after 30 steps, well below any effect of
    coupling (a shared minibatch, noise stream or clipping norm changes them at 1e-2).
    """
    x, y = data(4)
    seeds = [11, 22, 33, 44]
    cfg = config(prior, input_spike=True)
    batched = BayesianMLP(cfg, seeds, dtype=D)
    report = fit(batched, x, y, FULL)
    for r, seed in enumerate(seeds):
        single = BayesianMLP(cfg, [seed], dtype=D)
        single_report = fit(single, x[r : r + 1], y[r : r + 1], FULL)
        assert_replicate_equals(batched, r, single)
        np.testing.assert_allclose(
            report.loss_history[:, r], single_report.loss_history[:, 0], rtol=1e-9
        )


@pytest.mark.parametrize(
    ("shuffle", "max_steps"), [("epoch", 2000), ("once", 2000), ("epoch", 110)]
)
def test_auto_batched_run_equals_separate_runs(shuffle, max_steps):
    """Training until convergence keeps the guarantee: the replicates converge at different
    steps, a converged one stops updating, and each ends as its own R = 1 run (float64,
    tolerance as in the fixed-steps test); with either shuffling scheme, and when the cap
    stops one replicate while the others converge (``max_steps`` is each replicate's own)."""
    x, y = data(3, n=80)
    seeds = [11, 22, 33]
    cfg = config("ss-gl", input_spike=True)
    train = replace(AUTO, shuffle=shuffle, max_steps=max_steps)
    batched = BayesianMLP(cfg, seeds, dtype=D)
    report = fit(batched, x, y, train)
    assert len(set(report.steps_taken.tolist())) > 1, report.steps_taken
    rounds = np.array(
        [
            sum(e["move"] == "search" and e["replicate"] == r for e in report.structure_events)
            for r in range(3)
        ]
    )
    before_search = report.steps_taken - rounds * train.trial_steps  # the search comes after
    assert (before_search <= max_steps).all(), report.steps_taken
    if max_steps < 2000:
        assert set(report.status) == {"max_steps", "converged"}, report.status
    assert_each_replicate_is_its_own_run(batched, report, x, y, train)


def assert_each_replicate_is_its_own_run(batched, report, x, y, train) -> None:
    """Each replicate of the fitted ``batched`` (``report``: its fit on ``x``, ``y`` with
    ``train``) ends as its own R = 1 run: the same steps, status, switches, trials, values
    and final L(q)."""
    for r, seed in enumerate(batched.replicate_seeds):
        single = BayesianMLP(batched.config, [seed], dtype=batched.dtype)
        alone = fit(single, x[r : r + 1], y[r : r + 1], train)
        assert alone.steps_taken[0] == report.steps_taken[r]
        assert alone.status[0] == report.status[r]
        assert alone.indicator_switches[0] == report.indicator_switches[r]
        assert alone.removal_trials[0] == report.removal_trials[r]
        assert_replicate_equals(batched, r, single)
        np.testing.assert_allclose(alone.final_neg_elbo, report.final_neg_elbo[r : r + 1])


def test_auto_batched_run_equals_separate_runs_when_the_trials_interleave():
    """ReLU students whose replicates reach their removal trials at different steps, so that
    one replicate proposes a removal while another's arms run: each replicate still ends as
    its own R = 1 run, with as many trials (a replicate that forgot the node of its running
    trial when another began one took an extra trial in each of these four)."""
    x, y = data(4, n=120)
    seeds = [5, 22, 33, 44]
    cfg = ModelConfig(p=P, hidden=(8, 6), prior="ss-gl", activation="relu", prior_inclusion=0.2)
    batched = BayesianMLP(cfg, seeds, dtype=D)
    report = fit(batched, x, y, AUTO)
    assert len(set(report.steps_taken.tolist())) > 1, report.steps_taken
    for r, seed in enumerate(seeds):
        single = BayesianMLP(cfg, [seed], dtype=D)
        alone = fit(single, x[r : r + 1], y[r : r + 1], AUTO)
        assert alone.removal_trials[0] == report.removal_trials[r] > 0
        assert alone.steps_taken[0] == report.steps_taken[r]
        assert_replicate_equals(batched, r, single)


def test_the_rounds_do_not_wait_for_the_other_replicates():
    """Each replicate runs its rounds and removal trials by itself, so the batch takes as many
    steps as its longest replicate: as many as the longest of the R = 1 runs (here no
    replicate stops early in the relaxed phase, the last phase the batch shares). With
    rounds that each waited for their slowest replicate this batch took 392 steps, against
    320 for its longest replicate. (Without the removal search, whose rounds come after.)"""
    x, y = data(4, seed=6, n=80)
    seeds = [17, 22, 33, 44]
    cfg = config("ss-ghs", input_spike=True)
    train = replace(AUTO, search=False)
    report = fit(BayesianMLP(cfg, seeds, dtype=D), x, y, train)
    alone = [
        fit(BayesianMLP(cfg, [s], dtype=D), x[r : r + 1], y[r : r + 1], train)
        for r, s in enumerate(seeds)
    ]
    assert report.steps_taken.tolist() == [a.steps_taken[0] for a in alone]
    assert len(set(report.steps_taken.tolist())) == 4, report.steps_taken
    assert report.steps == max(a.steps for a in alone) == report.steps_taken.max()


def test_auto_run_converges_and_reports_it():
    x, y = data(2, n=80)
    report = fit(BayesianMLP(config("ss-ghs"), [1, 2], dtype=D), x, y, AUTO)
    assert report.status == ("converged", "converged") and report.converged.all()
    assert (report.removal_trials > 0).all(), report.removal_trials
    assert (report.steps_taken <= report.steps).all() and (report.steps_taken > 8).all()
    assert report.final_neg_elbo.shape == (2,) and np.isfinite(report.final_neg_elbo).all()
    capped = replace(AUTO, max_steps=10, dense_steps=2)
    short = fit(BayesianMLP(config("ss-gl"), [1, 2], dtype=D), x, y, capped)
    assert short.status == ("max_steps", "max_steps") and not short.converged.any()
    assert short.steps <= 10


def assert_events_are_the_separate_runs(report, r: int, alone) -> None:
    """Replicate ``r``'s structure events equal those of its own R = 1 run ``alone``, arm
    differences aside (estimates of batches of other sizes may round differently in the
    last bit)."""

    def without_delta(events):
        return [
            {k: v for k, v in e.items() if k not in ("delta_nats", "replicate")} for e in events
        ]

    mine = [e for e in report.structure_events if e["replicate"] == r]
    assert without_delta(mine) == without_delta(alone.structure_events)


def assert_events_tell_the_fit(report, model) -> None:
    """The structure events of each replicate account for its fit: steps in order, one
    event per removal trial, the nodes switched off by the passes, the accepted trials and
    the nodes of the accepted search rounds, and the last event's structure is the one the
    model keeps."""
    kept = torch.stack([k.sum(-1) for k in model.kept().nodes], dim=1).tolist()
    for r in range(report.replicates):
        mine = [e for e in report.structure_events if e["replicate"] == r]
        steps = [e["step"] for e in mine]
        assert steps == sorted(steps), steps
        trials = [e for e in mine if e["move"] == "removal trial"]
        assert len(trials) == report.removal_trials[r]
        passed = sum(sum(e["before"]) - sum(e["kept"]) for e in mine if e["move"] == "pass")
        judged = [e for e in mine if e["move"] in ("removal trial", "search")]
        accepted = sum(len(e.get("nodes", [e.get("node")])) for e in judged if e["accepted"])
        assert passed + accepted == report.indicator_switches[r]
        assert all(e["accepted"] == (e["delta_nats"] < 0) for e in judged)
        if mine:
            assert mine[-1]["kept"] == kept[r], (mine[-1], kept[r])


def test_the_structure_events_account_for_the_fit():
    """``FitReport.structure_events`` lists every pass that switched a node and every removal
    trial, per replicate, consistent with the counts and the final structure; a batched run's
    events are those of its replicates' separate runs."""
    x, y = data(2, n=120)
    seeds = [5, 22]
    cfg = ModelConfig(p=P, hidden=(8, 6), prior="ss-gl", activation="relu", prior_inclusion=0.2)
    model = BayesianMLP(cfg, seeds, dtype=D)
    report = fit(model, x, y, AUTO)
    moves = {e["move"] for e in report.structure_events}
    assert moves == {"pass", "removal trial", "search"}, moves
    assert {e["block"] for e in report.structure_events if "block" in e} <= {"layer 1", "layer 2"}
    assert_events_tell_the_fit(report, model)
    for r, seed in enumerate(seeds):
        alone = fit(BayesianMLP(cfg, [seed], dtype=D), x[r : r + 1], y[r : r + 1], AUTO)
        assert_events_are_the_separate_runs(report, r, alone)


def test_trial_misses_ends_the_removal_trials_after_that_many_rejections():
    """Trial round ``t`` draws from streams of its own, so a run that leaves the trials after
    one rejection follows a run that allows three up to that rejection, and then stops."""
    x, y = data(2, n=80)
    cfg = config("ss-ghs")
    trials = {
        misses: fit(
            BayesianMLP(cfg, [1, 2], dtype=D), x, y, replace(AUTO, trial_misses=misses)
        ).removal_trials
        for misses in (1, 3)
    }
    assert (trials[1] >= 1).all() and (trials[1] <= trials[3]).all(), trials
    assert (trials[1] < trials[3]).any(), trials


def test_a_run_of_rejections_trains_one_control_arm(monkeypatch):
    """After a rejected removal the next removal arm is compared with the same control arm:
    a control arm runs when a replicate's trials begin and after each accepted removal,
    never after a rejection; and each arm takes ``trial_steps`` of the replicate's steps."""
    import simulations.train as train

    events: dict[int, list[str]] = {}
    arm_steps: list[int] = []
    original = train._Fit._end_arms

    def end_arms(self, arms, value):
        for r in arms.nonzero().flatten().tolist():
            arm_steps.append(int(self.local[r]))
            if self.stage[r] == train._CONTROL:
                events.setdefault(r, []).append("C")
            else:
                accepted = bool(value[r] < self.control_neg_elbo[r])
                events.setdefault(r, []).append("A" if accepted else "X")
        original(self, arms, value)

    monkeypatch.setattr(train._Fit, "_end_arms", end_arms)
    x, y = data(4, n=80)
    report = fit(BayesianMLP(config("ss-ghs"), [1, 2, 3, 4], dtype=D), x, y, AUTO)
    assert set(arm_steps) == {AUTO.trial_steps}
    shared = 0
    for r, seq in events.items():
        assert seq[0] == "C", seq
        for before, now in itertools.pairwise(seq):
            assert (now == "C") == (before == "A"), seq  # a new control only after acceptance
            shared += before == "X"
        assert seq.count("A") + seq.count("X") == report.removal_trials[r], seq
    assert shared > 0, events  # the run has removal arms that reuse a control arm


def test_restarts_keep_the_start_with_the_lowest_elbo():
    """``restarts = K``: start 0 trains exactly as a fit without restarts, every start's
    ``L(q)`` is reported, each replicate keeps the start with the lowest one (its final
    estimate equals that start's), and the batched-equals-separate guarantee holds (without
    the removal search, which then goes on from the kept start)."""
    x, y = data(2, n=80)
    seeds = [11, 22]
    cfg = config("ss-gl")
    train = replace(AUTO, search=False)
    plain = fit(BayesianMLP(cfg, seeds, dtype=D), x, y, train)
    model = BayesianMLP(cfg, seeds, dtype=D)
    report = fit(model, x, y, replace(train, restarts=3))
    scores = report.restart_neg_elbo
    assert scores.shape == (2, 3) and np.isfinite(scores).all()
    np.testing.assert_allclose(scores[:, 0], plain.final_neg_elbo, rtol=1e-12)
    assert report.restart.tolist() == scores.argmin(axis=1).tolist()
    assert len({tuple(row) for row in np.round(scores, 6)}) == 2  # the starts differ
    np.testing.assert_allclose(report.final_neg_elbo, scores.min(axis=1), rtol=1e-12)
    rule = AUTO.convergence
    again = ElboEstimate(model, x, y, rows=rule.rows, draws=rule.draws)()
    np.testing.assert_allclose(again.numpy(), report.final_neg_elbo, rtol=1e-12)
    assert model.masks_frozen and report.replicates == 2 and len(report.status) == 2
    assert_events_tell_the_fit(report, model)
    for r, seed in enumerate(seeds):
        single = BayesianMLP(cfg, [seed], dtype=D)
        alone = fit(single, x[r : r + 1], y[r : r + 1], replace(train, restarts=3))
        np.testing.assert_allclose(alone.restart_neg_elbo[0], scores[r], rtol=1e-9)
        assert_replicate_equals(model, r, single)
        assert_events_are_the_separate_runs(report, r, alone)


@pytest.mark.parametrize("prior", ["edge-ss", "dense"])
def test_auto_run_without_node_indicators_skips_the_removal_trials(prior):
    """Edge and dense students have no node to remove: the run ends without trials."""
    x, y = data(2, n=80)
    report = fit(BayesianMLP(config(prior), [1, 2], dtype=D), x, y, AUTO)
    assert not (report.removal_trials > 0).any() and np.isfinite(report.final_neg_elbo).all()


@pytest.mark.parametrize(
    ("stop_at", "shuffle"),
    [(9, "epoch"), (25, "epoch"), (72, "epoch"), (134, "epoch"), (72, "once")],
)
def test_auto_checkpoint_resume_is_bitwise_identical(tmp_path, stop_at, shuffle):
    """Interrupted in the dense phase (step 9), the relaxed phase (step 25), a pruning round
    (step 72) or the removal trials (step 134) and resumed, an "auto" run ends bitwise equal
    to the uninterrupted one; also when each phase shuffles its data once."""
    x, y = data(2, n=80)
    cfg = config("ss-ghs", input_spike=True)
    train = replace(AUTO, shuffle=shuffle)
    straight = BayesianMLP(cfg, [3, 4], dtype=D)
    reference = fit(straight, x, y, train, checkpoint=tmp_path / "a.pt")
    assert reference.steps > stop_at

    def interrupt(step, total):
        if step == stop_at:
            raise KeyboardInterrupt

    path = tmp_path / "b.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(BayesianMLP(cfg, [3, 4], dtype=D), x, y, train, checkpoint=path, progress=interrupt)
    resumed_model = BayesianMLP(cfg, [3, 4], dtype=D)
    resumed = fit(resumed_model, x, y, train, checkpoint=path)
    assert 0 < resumed.resumed_from <= stop_at
    for (name, a), (_, b) in zip(
        straight.named_parameters(), resumed_model.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name
    assert np.array_equal(reference.loss_history, resumed.loss_history)
    assert np.array_equal(reference.steps_taken, resumed.steps_taken)
    assert reference.status == resumed.status
    assert np.array_equal(reference.final_neg_elbo, resumed.final_neg_elbo)
    assert resumed.structure_events == reference.structure_events


@pytest.mark.parametrize("prior", ["ss-gl", "ss-ghs", "edge-ss"])
def test_replicates_are_bitwise_independent(prior):
    """Replicate 0 gives bitwise the same numbers whatever the other replicates hold:
    other seeds, other data, and a target scale 1e3 larger (so that their gradients are
    clipped while replicate 0's are not)."""
    x, y = data(3)
    cfg = config(prior, input_spike=True)
    first = BayesianMLP(cfg, [5, 6, 7], dtype=D)
    fit(first, x, y, FULL)
    x2, y2 = data(3, seed=9)
    x2[0], y2[0] = x[0], y[0]
    y2[1:] *= 1e3
    second = BayesianMLP(cfg, [5, 60, 70], dtype=D)
    fit(second, x2, y2, FULL)
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters(), strict=True):
        assert torch.equal(a[0], b[0]), name
        assert not torch.equal(a[1], b[1]), name


def test_checkpoint_resume_is_bitwise_identical(tmp_path):
    """Interrupted at step 13 (after the checkpoint of step 10) and resumed, the run ends
    bitwise equal to the uninterrupted one: parameters, loss history and the generators."""
    x, y = data(2)
    cfg = config("ss-gl", input_spike=True)
    straight = BayesianMLP(cfg, [3, 4], dtype=D)
    reference = fit(straight, x, y, FULL, checkpoint=tmp_path / "a.pt")

    def interrupt(step, total):
        assert total == 30
        if step == 13:
            raise KeyboardInterrupt

    path = tmp_path / "b.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(BayesianMLP(cfg, [3, 4], dtype=D), x, y, FULL, checkpoint=path, progress=interrupt)
    assert torch.load(path, weights_only=True)["step"] == 10
    resumed_model = BayesianMLP(cfg, [3, 4], dtype=D)
    resumed = fit(resumed_model, x, y, FULL, checkpoint=path)
    assert resumed.resumed_from == 10 and resumed.steps == 30
    for (name, a), (_, b) in zip(
        straight.named_parameters(), resumed_model.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name
    assert np.array_equal(reference.loss_history, resumed.loss_history)
    assert np.array_equal(reference.logged_steps, resumed.logged_steps)
    assert np.array_equal(reference.final_nll, resumed.final_nll)
    for g1, g2 in zip(straight.generators, resumed_model.generators, strict=True):
        assert torch.equal(g1.get_state(), g2.get_state())
    assert resumed_model.masks_frozen
    # a finished checkpoint: nothing left to do, the same report figures
    again = fit(BayesianMLP(cfg, [3, 4], dtype=D), x, y, FULL, checkpoint=path)
    assert again.resumed_from == 30 and np.array_equal(again.final_nll, reference.final_nll)
    assert [f for f in os.listdir(tmp_path) if f.startswith(TMP_PREFIX)] == []


def test_a_finished_checkpoint_restores_the_finished_model(tmp_path):
    """Without fine-tuning, a run resumed from its final checkpoint is the finished run: masks
    relaxed (not frozen), the same KL and the same report."""
    x, y = data(2)
    options = TrainConfig(steps=12, batch_size=16, lr=2e-2, checkpoint_every=5)
    path = tmp_path / "c.pt"
    first = BayesianMLP(config("ss-gl"), [3, 4], dtype=D)
    report = fit(first, x, y, options, checkpoint=path)
    again = BayesianMLP(config("ss-gl"), [3, 4], dtype=D)
    resumed = fit(again, x, y, options, checkpoint=path)
    assert resumed.resumed_from == 12 and not again.masks_frozen and not first.masks_frozen
    assert torch.equal(first.kl(), again.kl())
    assert np.array_equal(report.final_kl, resumed.final_kl)
    assert np.array_equal(report.final_nll, resumed.final_nll)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ("config", "TrainConfig"),
        ("shuffle", "TrainConfig"),
        ("seeds", "seeds"),
        ("model", "ModelConfig"),
        ("data", "data"),
    ],
)
def test_resume_refuses_a_checkpoint_of_another_run(tmp_path, change, what):
    x, y = data(2)
    path = tmp_path / "c.pt"
    short = TrainConfig(steps=4, batch_size=16, checkpoint_every=2)
    fit(BayesianMLP(config(), [1, 2], dtype=D), x, y, short, checkpoint=path)
    cfg, seeds, train = config(), [1, 2], short
    if change == "config":
        train = TrainConfig(steps=5, batch_size=16, checkpoint_every=2)
    elif change == "shuffle":
        train = replace(short, shuffle="once")
    elif change == "seeds":
        seeds = [1, 3]
    elif change == "model":
        cfg = config(sigma_0=2.0)
    else:
        y = y + 1
    with pytest.raises(InvalidParameterError, match=what) as err:
        fit(BayesianMLP(cfg, seeds, dtype=D), x, y, train, checkpoint=path)
    assert err.value.field == "checkpoint"


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    x, y = data(1)
    with pytest.raises(InvalidParameterError) as err:
        fit(BayesianMLP(config(), [1], dtype=D), x, y, TrainConfig(steps=2), checkpoint=path)
    assert err.value.field == "checkpoint"


def test_a_failing_replicate_is_marked_and_the_others_go_on():
    """Replicate 2 starts with a NaN weight: it is marked failed at step 1, and replicates
    0 and 1 end exactly where a run without it ends."""
    x, y = data(3)
    model = BayesianMLP(config(), [1, 2, 3], dtype=D)
    with torch.no_grad():
        model.layers[1].mu[2, 0, 0] = math.nan
    report = fit(model, x, y, TrainConfig(steps=5, lr=1e-2))
    assert report.status == ("fixed", "fixed", "failed")
    assert report.failure == (None, None, "non-finite loss at step 1")
    assert report.steps_taken.tolist() == [5, 5, 0]
    pair = BayesianMLP(config(), [1, 2], dtype=D)
    fit(pair, x[:2], y[:2], TrainConfig(steps=5, lr=1e-2))
    for (name, a), b in zip(model.named_parameters(), pair.parameters(), strict=True):
        torch.testing.assert_close(a[:2], b, msg=name)


def test_non_finite_everywhere_raises_naming_replicate_and_step():
    x, y = data(1)
    model = BayesianMLP(config(), [1], dtype=D)
    with torch.no_grad():
        model.layers[1].mu[0, 0, 0] = math.nan
    with pytest.raises(NonFiniteError, match="replicate 0 at step 1") as err:
        fit(model, x, y, TrainConfig(steps=5))
    assert (err.value.replicate, err.value.step) == (0, 1)


def test_diverging_gradients_stop_training():
    """A learning rate of 1e30 sends replicate parameters to inf within a few steps."""
    x, y = data(2)
    model = BayesianMLP(config("dense"), [1, 2], dtype=D)
    with pytest.raises(NonFiniteError) as err:
        fit(model, x, y, TrainConfig(steps=50, lr=1e30, log_every=1))
    assert err.value.step <= 50 and err.value.replicate in (0, 1)


def test_fine_tuning_freezes_the_indicators():
    """During fine-tuning (after the freeze and the indicator pass at step 20) the inclusion
    logits do not move and the masks stay frozen."""
    x, y = data(2)
    model = BayesianMLP(config("ss-ghs"), [1, 2], dtype=D)
    seen = {}

    def record(step, total):
        if step in (21, 30):
            seen[step] = model.layers[0].theta.detach().clone()

    fit(model, x, y, TrainConfig(steps=20, finetune_steps=10, lr=2e-2), progress=record)
    assert torch.equal(seen[21], seen[30])
    assert model.masks_frozen
    torch.testing.assert_close(model.inclusion_probs()[0], (torch.sigmoid(seen[21]) > 0.5).to(D))


def test_dense_phase_holds_every_node_on():
    """The dense phase of an "auto" run trains the slabs with every indicator held at 1 and
    the logits where they started. Defaults: 6,000 steps (``max_steps // 6`` when less),
    none with fixed steps."""
    x, y = data(2, n=80)
    model = BayesianMLP(config("ss-gl", input_spike=True), [1, 2], dtype=D)
    theta = [ind.theta.detach().clone() for ind in model._indicators()]
    mu = model.layers[0].mu.detach().clone()

    def interrupt(step, total):
        if step == AUTO.dense_steps:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model, x, y, AUTO, progress=interrupt)
    for ind, before in zip(model._indicators(), theta, strict=True):
        assert torch.equal(ind.frozen_mask, torch.ones_like(before))
        assert torch.equal(ind.theta.detach(), before)
    assert not torch.equal(model.layers[0].mu.detach(), mu)
    assert TrainConfig().dense_steps == 6000 and TrainConfig(max_steps=600).dense_steps == 100
    assert TrainConfig(steps=10).dense_steps == 0


def test_auto_budget_is_the_base_budget_up_to_8192_and_grows_per_doubling_above():
    """Up to n = 8192 an "auto" run keeps a 36,000-step cap and 1,000-step arms; each
    doubling of n above adds 18,000 and 1,000 (continuous in n: log2, rounded)."""
    assert [auto_budget(n) for n in (1, 512, 8192)] == [(36_000, 1000)] * 3
    assert auto_budget(16_384) == (54_000, 2000) and auto_budget(32_768) == (72_000, 3000)
    assert auto_budget(8193) == (36_003, 1000) and auto_budget(65_536) == (90_000, 4000)
    caps = [auto_budget(n) for n in range(8000, 40_000, 997)]
    assert caps == sorted(caps)  # non-decreasing in n
    config = TrainConfig()
    assert config.max_steps is None and config.trial_steps is None
    resolved = config.at_n(32_768)
    assert (resolved.max_steps, resolved.trial_steps) == (72_000, 3000)
    assert resolved.total_steps == 72_000 and resolved.dense_steps == 6000
    given = TrainConfig(max_steps=5000, trial_steps=7).at_n(32_768)
    assert (given.max_steps, given.trial_steps) == (5000, 7)  # what the user gave stays
    fixed = TrainConfig(steps=10).at_n(32_768)  # uses neither: the base values
    assert (fixed.max_steps, fixed.trial_steps, fixed.total_steps) == (36_000, 1000, 10)
    with pytest.raises(ValueError, match="at_n"):
        _ = config.total_steps
    with pytest.raises(InvalidParameterError) as err:
        config.at_n(0)
    assert err.value.field == "n"


@pytest.mark.parametrize(("n", "cap"), [(80, 36_000), (16_384, 54_000)])
def test_fit_resolves_the_budget_from_the_data(n, cap):
    """``fit`` runs an "auto" config with ``max_steps = None`` under the cap of its data's
    n (``progress`` reports it as the total; the fit is interrupted at its first step)."""
    x, y = data(1, n=n)
    totals = []

    def first_step(step, total):
        totals.append(total)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model = BayesianMLP(config("ss-gl"), [1], dtype=D)
        fit(model, x, y, replace(AUTO, max_steps=None), progress=first_step)
    assert totals == [cap]


def test_auto_runs_default_to_five_starts():
    assert TrainConfig().restarts == 5 and TrainConfig(steps=10).restarts == 1
    assert TrainConfig(restarts=2).restarts == 2


def test_batch_size_defaults_to_512_rows_in_auto_runs_and_full_batches_otherwise():
    auto, fixed = TrainConfig(), TrainConfig(steps=10)
    assert auto.batch_size == "auto" and fixed.batch_size == "full"
    assert [auto.batch_rows(n) for n in (100, 512, 8192)] == [100, 512, 512]
    assert fixed.batch_rows(8192) == 8192 == TrainConfig(batch_size="Full").batch_rows(8192)
    assert TrainConfig(steps=10, batch_size=" AUTO ").batch_rows(8192) == 512
    assert TrainConfig(batch_size=64).batch_rows(8192) == 64
    # The search's arms (a fixed number of steps) keep the fit's minibatches.
    assert replace(auto, steps=1000, dense_steps=0).batch_rows(8192) == 512
    with pytest.raises(InvalidParameterError, match=r"\[1, n\] = \[1, 100\]"):
        TrainConfig(batch_size=101).batch_rows(100)


def test_kl_warm_up_schedule():
    cfg = TrainConfig(steps=10, kl_warmup_steps=4)
    assert [cfg.kl_weight(t) for t in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert TrainConfig(steps=10).kl_weight(0) == 1.0  # no warm-up with fixed steps
    assert TrainConfig().kl_warmup_steps == 2000  # "auto" runs warm up
    assert TrainConfig().kl_weight(999) == 0.5


def test_float32_and_categorical_runs():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 40, P, generator=gen)
    y = torch.randint(0, 3, (2, 40), generator=gen)
    model = BayesianMLP(config("ss-gl", likelihood="categorical", outputs=3), [1, 2])
    report = fit(model, x, y, TrainConfig(steps=20, batch_size=10))
    assert np.isfinite(report.loss_history).all() and report.final_nll.dtype == np.float32


@pytest.mark.parametrize(
    ("x_shape", "y_change", "field"),
    [
        ((2, N, P + 1), None, "x"),
        ((3, N, P), None, "x"),
        ((2, N, P), "short", "y"),
        ((2, N, P), "nan_x", "x"),
        ((2, N, P), "inf_y", "y"),
        ((2, N, P), "int_y", "y.dtype"),
    ],
)
def test_bad_data_name_the_field(x_shape, y_change, field):
    x = torch.rand(x_shape, dtype=D)
    y = torch.rand(x_shape[0], x_shape[1], 1, dtype=D)
    if y_change == "short":
        y = y[:, :-1]
    elif y_change == "nan_x":
        x[1, 3, 2] = math.nan
    elif y_change == "inf_y":
        y[0, 0, 0] = math.inf
    elif y_change == "int_y":
        y = y.long()
    model = BayesianMLP(config(), [1, 2], dtype=D)
    with pytest.raises(InvalidParameterError) as err:
        fit(model, x, y, TrainConfig(steps=2))
    assert err.value.field == field


def test_bernoulli_targets_and_batch_size_are_checked():
    x = torch.rand(1, N, P, dtype=D)
    model = BayesianMLP(config(likelihood="bernoulli"), [1], dtype=D)
    with pytest.raises(InvalidParameterError) as err:
        fit(model, x, torch.full((1, N, 1), 0.5, dtype=D), TrainConfig(steps=2))
    assert err.value.field == "y"
    with pytest.raises(InvalidParameterError) as err:
        fit(model, x, torch.ones(1, N, 1, dtype=D), TrainConfig(steps=2, batch_size=N + 1))
    assert err.value.field == "batch_size"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "half"}, "batch_size"),
        ({"batch_size": 64.0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"shuffle": "never"}, "shuffle"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"kl_warmup_steps": -1}, "kl_warmup_steps"),
        ({"finetune_steps": 1.5}, "finetune_steps"),
        ({"steps": "auto", "finetune_steps": 10}, "finetune_steps"),
        ({"steps": "forever"}, "steps"),
        ({"max_steps": 1}, "max_steps"),
        ({"trial_steps": 0}, "trial_steps"),
        ({"search_steps": 0}, "search_steps"),
        ({"search_steps": 2.5}, "search_steps"),
        ({"trial_misses": 0}, "trial_misses"),
        ({"logit_lr": 0.0}, "logit_lr"),
        ({"indicator_pass": "yes"}, "indicator_pass"),
        ({"temperature": 0.5}, "temperature"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"log_every": 0}, "log_every"),
        ({"restarts": 0}, "restarts"),
        ({"dense_steps": -1}, "dense_steps"),
        ({"steps": 10, "dense_steps": 5}, "dense_steps"),
        ({"max_steps": 100, "dense_steps": 50}, "dense_steps"),
    ],
)
def test_train_config_rejects_bad_values(kwargs, field):
    with pytest.raises(InvalidParameterError) as err:
        TrainConfig(**kwargs)
    assert err.value.field == field


def test_sgd_option_trains():
    x, y = data(1)
    model = BayesianMLP(config("dense"), [1], dtype=D)
    report = fit(model, x, y, TrainConfig(steps=40, optimizer="sgd", lr=1e-2, log_every=20))
    assert report.loss_history[-1, 0] < report.loss_history[0, 0]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_fit_runs_on_cuda(tmp_path):
    x, y = data(2, dtype=torch.float32)
    model = BayesianMLP(config(), [1, 2], device="cuda")
    report = fit(model, x, y, FULL, checkpoint=tmp_path / "gpu.pt")
    assert report.device.startswith("cuda") and np.isfinite(report.loss_history).all()
    resumed = fit(
        BayesianMLP(config(), [1, 2], device="cuda"), x, y, FULL, checkpoint=tmp_path / "gpu.pt"
    )
    assert np.array_equal(resumed.final_nll, report.final_nll)


# fit silences autograd's note on the buffer's gradient views (train._LAYOUT_WARNING)
@pytest.mark.filterwarnings("ignore:.*gradient layout contract")
@pytest.mark.parametrize("prior", ["ss-gl", "ss-ghs", "edge-ss", "dense"])
@pytest.mark.parametrize("frozen", [False, True])
def test_a_step_of_the_moving_replicates_alone_equals_the_full_step(prior, frozen):
    """Once a quarter of the replicates have stopped (here two of five), a step runs the
    network on the others alone: their loss, NLL and gradient rows equal the full step's on
    the same noise (float64, 1e-12: a batched kernel may round otherwise for another batch
    size), and the model is whole again afterwards (frozen logits, which the loss does not
    read, included). A stopped replicate gets no gradient and keeps the loss and NLL of its
    last step, also when the full batch runs (one of five stopped)."""
    from simulations.train import _Fit

    reps = 5
    x, y = data(reps, n=80)
    model = BayesianMLP(config(prior), [3, 4, 5, 6, 7], dtype=D)
    run = _Fit(model, x, y, TrainConfig(steps=10, batch_size=20), None, None)
    if frozen:
        model.freeze_masks()
    xb, yb = run.batches.gather(0)
    states = [g.get_state() for g in model.generators]
    loss, nll = run._loss(xb, yb, 1.0)
    grad = run.flat.grad.clone()
    last = torch.full((reps,), 7.0, dtype=D), torch.full((reps,), 9.0, dtype=D)
    for stopped in ([False, True, False, False, False], [False, True, False, True, False]):
        run.flat.grad.zero_()
        for g, state in zip(model.generators, states, strict=True):
            g.set_state(state)
        run.last_loss, run.last_nll = last
        run.stopped = torch.tensor(stopped)
        step_loss, step_nll = run._loss(xb, yb, 1.0)
        live = [r for r in range(reps) if not stopped[r]]
        held = [r for r in range(reps) if stopped[r]]
        np.testing.assert_allclose(step_loss[live], loss[live].detach(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(step_nll[live], nll[live].detach(), rtol=0, atol=1e-12)
        assert (step_loss[held] == 7.0).all() and (step_nll[held] == 9.0).all()
        if len(held) == 2:  # the restricted step: no gradient at all for a stopped one
            np.testing.assert_allclose(run.flat.grad[live], grad[live], rtol=0, atol=1e-12)
            assert grad[live].abs().sum() > 0
            assert not run.flat.grad[held].any()
    assert all(p.shape[0] == reps for p in model.parameters())
    assert all(p.grad is not None and p.grad.shape == p.shape for p in run.flat.params)
