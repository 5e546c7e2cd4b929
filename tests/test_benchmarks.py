"""The benchmarks' cells on tiny budgets: each runs and its row says what it claims.

The benchmarks measure quality and speed (their figures are in ``benchmarks/RESULTS.md``,
never asserted here); these tests keep their code working as the engine changes, and check
the one property of each row that a tiny budget already decides.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(autouse=True)
def _benchmarks_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def test_recovery_cell_reports_every_field():
    import bench_recovery

    settings = (("train", "search", False),)
    row = bench_recovery.run_cell("relu_p20", "ss-gl", 256, 2, 300, 1, settings)
    assert row["true"] == (4, 3)
    assert 0.0 <= row["exact"] <= 1.0 and row["steps"] <= 300
    assert len(row["over"]) == len(row["under"]) == 2
    assert math.isfinite(row["rmse"]) and math.isfinite(row["neg_elbo"])
    assert row["screened"] is None
    table = bench_recovery.markdown([row])
    assert table.splitlines()[-1].startswith("| relu_p20 (4, 3) | ss-gl | 256 |")
    assert "screened" not in table


def test_recovery_cell_with_both_fits_gives_the_share_that_kept_the_screened_one():
    import bench_recovery

    settings = (("train", "search", False), ("train", "screen_inputs", "both"))
    row = bench_recovery.run_cell("relu_p20", "ss-gl", 256, 2, 200, 1, settings)
    assert row["screened"] in (0.0, 0.5, 1.0)  # two replicates, each kept one of its fits
    header, rule, line = bench_recovery.markdown([row]).splitlines()
    assert header.endswith("| screened |") and rule.count("|") == header.count("|")
    assert line.endswith(f" {row['screened']:.0%} |") and line.count("|") == header.count("|")


def test_optimum_cell_prices_the_removal_of_a_true_node(monkeypatch):
    import bench_optimum

    monkeypatch.setattr(bench_optimum, "PLACE", ((30, 1e-3),))
    monkeypatch.setattr(bench_optimum, "MOVE", ((30, 1e-3),))
    row = bench_optimum.run_cell("relu_p20", "ss-gl", 512, 2)
    # Each true node of relu_p20 carries at least a fifth of its layer's share of Var f0
    # (docs/designs.md): about 512 * 0.05 / (2 * 0.25) = 51 nats, which 30 steps at
    # lr 1e-3 cannot win back.
    for layer in (1, 2):
        assert min(row[f"remove_{layer}"]) > 0, row
        assert all(math.isfinite(v) for v in row[f"add_{layer}"])
    assert bench_optimum.markdown([row]).splitlines()[-1].startswith("| relu_p20 (4, 3) | ss-gl |")


def test_reach_cell_starts_the_placed_arm_at_the_teacher(monkeypatch):
    import bench_reach

    monkeypatch.setattr(bench_reach, "SCHEDULE", ((30, 1e-3),))
    row = bench_reach.run_cell("relu_p20", 512, 2)
    # The placed arm starts at f0 exactly (float32 rounding); 30 Adam steps of lr 1e-3
    # move each weight by at most about 0.03, far from the random arms' distance to f0
    # (Var f0 = 1).
    assert max(row["rmse placed"]) < 0.1
    assert min(row["rmse random, truth widths"]) > 0.3
    assert all(g > 0 for g in row["gap random, truth widths"])
    assert row["gap placed"] == [0.0, 0.0]


def test_reach_cell_keeps_each_replicates_best_start(monkeypatch):
    import bench_reach
    import torch

    drawn = []
    draw = bench_reach.init_params

    def record(replicates, sizes, generator):
        drawn.append(draw(replicates, sizes, generator))
        return drawn[-1]

    monkeypatch.setattr(bench_reach, "init_params", record)
    monkeypatch.setattr(bench_reach, "train", lambda *args: None)  # every arm as started
    row = bench_reach.run_cell("relu_p20", 512, 2, starts=3)
    data = bench_reach.generate_truth("relu_p20", 512, 2, bench_reach.SEED)
    x = data.x_train[..., list(data.truth.relevant_inputs)].float()
    y = data.y_train[..., 0].float()
    sizes = (x.shape[-1], 16, 16, 1)
    placed = bench_reach.teacher_params(data.truth, 2, sizes)
    placed_mse = (bench_reach.forward(placed, x, torch.relu) - y).square().mean(1).double()
    xs, ys = x.repeat_interleave(3, 0), y.repeat_interleave(3, 0)
    mse = (bench_reach.forward(drawn[0], xs, torch.relu) - ys).square().mean(1).double()
    best = mse.view(2, 3).min(1).values  # replicate r's starts are rows 3r, 3r + 1, 3r + 2
    # noise sd 0.5; float64 sums of the same float32 products: equal to rounding
    expected = 512 * (best - placed_mse) / (2 * 0.5**2)
    assert row["starts"] == 3
    assert row["gap random"] == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-6)
    assert bench_reach.markdown([row]).splitlines()[-1].split(" | ")[-2] == "3"


def test_engine_benchmark_times_whole_epochs():
    import bench_engine

    w = bench_engine.workload("W2")
    x, y = bench_engine.make_data(w, 2)
    timing = bench_engine.timed_fit(w, "ss-gl", 2, x, y, steps=3)
    # Two warm-up steps, then whole epochs of n / batch = 4 minibatches.
    assert timing["steps"] == 2 + 2048 // 512
    assert timing["step_s"] > 0 and timing["rate"] == pytest.approx(2 / timing["step_s"])


def test_engine_benchmark_names_the_default_step():
    """The speed table's line on ``compile = "auto"``: W2's 256-wide layers pass the rule
    wherever this torch has oneDNN's linear operator, on a converged fit's budget, and not
    on a budget below ``COMPILE_MIN_STEPS``."""
    import bench_engine

    from simulations.layers.products import HAS_ONEDNN
    from simulations.step import COMPILE_MIN_STEPS

    picks = bench_engine.default_variants()
    assert set(picks) == set(bench_engine.WORKLOADS)
    assert picks["W2"] == ("compiled" if HAS_ONEDNN else "eager")
    assert set(bench_engine.default_variants(COMPILE_MIN_STEPS - 1).values()) == {"eager"}


def test_engine_benchmark_times_the_layer_products_both_ways(monkeypatch):
    import bench_engine

    from simulations.layers import products

    monkeypatch.setattr(bench_engine, "PRODUCT_SHAPES", ((2, 128, 1024, 32), (3, 16, 8, 4)))
    rows = bench_engine.layer_products(repeat=1)
    way = "onednn" if products.HAS_ONEDNN else "gemm"
    assert rows[0]["rule"] == {"forward": way, "weight_grad": way, "input_grad": "gemm"}
    assert set(rows[1]["rule"].values()) == {"gemm"}
    for row in rows:
        assert set(row["gemm_s"]) == {"forward", "weight_grad", "input_grad"}
        assert set(row.get("onednn_s", row["gemm_s"])) == set(row["gemm_s"])
    table = bench_engine.products_table(rows).splitlines()
    assert len(table) == 2 + 2 * 3 and table[2].startswith("| 2, 128, 1024 -> 32 | forward |")


def test_engine_benchmark_splits_a_w1_step_into_its_minibatch_reads(monkeypatch):
    import bench_engine

    small = {"p": 64, "hidden": (6, 4, 3), "activation": "tanh", "batch": 16, "n": 64}
    monkeypatch.setitem(bench_engine.WORKLOADS, "W1", small)
    d = bench_engine.datapath(reps=2, repeat=1)
    b = d["budget"]
    assert min(b["step_s"], b["gather_s"], b["forward_s"], b["weight_grad_s"]) > 0
    table = bench_engine.datapath_table(d)
    assert "| W1 step, SS-GL, R = 2 | ms | replicate-steps/s |" in table
    assert table.count("\n| bound: ") == 2


def test_theory_benchmark_times_every_configuration():
    import bench_theory

    rows = bench_theory.run(repeat=1)
    assert len(rows) == 3 * 2 * len(bench_theory.ARCHITECTURES) + 1
    assert all(0 < r["min_ms"] <= r["median_ms"] for r in rows)


def test_recovery_setting_takes_a_convergence_rule():
    import argparse

    import bench_recovery

    from simulations.convergence import ConvergenceRule

    section, field, rule = bench_recovery.parse_setting('train.convergence={"tolerance": 2.5e-4}')
    assert (section, field, rule) == ("train", "convergence", ConvergenceRule(tolerance=2.5e-4))
    for bad, says in (('train.convergence={"tol": 1}', "unexpected keyword argument 'tol'"),
                      ("train.convergence=3", "must be a JSON object"),
                      ('train.convergence={"tolerance": -1}', "a finite number >= 0")):  # fmt: skip
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            bench_recovery.parse_setting(bad)


def test_seed_draws_another_truth_and_other_data(monkeypatch):
    import bench_reach
    import bench_recovery

    for truth in ("relu_deep", "tanh_p200"):
        first = bench_recovery.generate_truth(truth, 64, 1, bench_recovery.SEED)
        again = bench_recovery.generate_truth(truth, 64, 1, bench_recovery.SEED)
        other = bench_recovery.generate_truth(truth, 64, 1, 11)
        assert first.f_test.equal(again.f_test)
        assert not (first.truth.weights[0] == other.truth.weights[0]).all()  # another teacher
        assert not first.x_train.equal(other.x_train)
    monkeypatch.setattr(bench_reach, "SCHEDULE", ((5, 1e-3),))
    rows = [bench_reach.run_cell("relu_p20", 256, 1, seed=s) for s in (7, 7, 11)]
    assert rows[0]["rmse random"] == rows[1]["rmse random"]
    assert rows[0]["rmse random"] != rows[2]["rmse random"]


def test_independent_deep_truth_is_relu_deeps_upper_layers_on_one_input_per_node():
    import bench_recovery
    import numpy as np

    seed = bench_recovery.SEED
    deep = bench_recovery.generate_truth("relu_deep", 64, 1, seed).truth
    data = bench_recovery.generate_truth("relu_deep_indep", 64, 1, seed)
    truth = data.truth
    assert truth.active_nodes == deep.active_nodes == (5, 4, 2)
    assert truth.relevant_inputs == deep.relevant_inputs == (0, 1, 2, 3, 4)
    np.testing.assert_array_equal(truth.weights[0][:, :5], np.eye(5))  # one input per node
    for layer, (rows, cols) in ((1, (4, 5)), (2, (2, 4))):  # relu_deep's (padded) upper layers
        np.testing.assert_array_equal(truth.weights[layer], deep.weights[layer][:rows, :cols])
        np.testing.assert_array_equal(truth.biases[layer], deep.biases[layer][:rows])
    x = data.x_test.double().numpy().reshape(-1, data.p)[:, :5]  # 5,000 test points
    features = np.maximum(x + truth.biases[0], 0.0)
    deep_features = np.maximum(x @ deep.weights[0][:5, :5].T + deep.biases[0][:5], 0.0)
    # Each feature is 0 as often as relu_deep's node (both shares estimated on the same 5,000
    # points: binomial sd at most 0.007 each, their difference's at most 0.01: 0.03 is three) ...
    assert np.abs((features == 0).mean(0) - (deep_features == 0).mean(0)).max() < 0.03
    # ... and the features are independent where relu_deep's are not (largest |correlation|:
    # sd about 1/sqrt(5000) = 0.014 for independent columns, relu_deep's over 0.8).
    off = ~np.eye(5, dtype=bool)
    assert np.abs(np.corrcoef(features.T)[off]).max() < 0.06
    assert np.abs(np.corrcoef(deep_features.T)[off]).max() > 0.5
    # Var f0 = 1 (scaled on 200,000 reference points; over 5,000 test points its estimate has
    # sd about 0.03, so 0.1 is over three).
    assert abs(float(data.f_test.var()) - 1.0) < 0.1
