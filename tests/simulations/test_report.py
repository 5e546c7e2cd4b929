"""Report maths: log-log slopes and their bootstrap intervals, summaries, node recovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.report import (
    loglog_slope,
    recovery_table,
    slope_table,
    summary_table,
    theory_constant,
)
from ssbnn_theory.errors import InvalidParameterError

NS = np.array([256, 512, 1024, 2048, 4096])


def _synthetic_table(slope=-0.8, replicates=6, seed=0, noise=0.2, priors=("ss-gl", "ss-ghs")):
    """Rows whose replicate values are ``2 n^slope`` times lognormal noise, with a known truth."""
    rng = np.random.default_rng(seed)
    rows = []
    for prior in priors:
        for n in NS:
            eps2 = np.log(n) ** 2 / n
            for r in range(replicates):
                rows.append(
                    {
                        "design": "relu_teacher",
                        "prior": prior,
                        "hidden": [16, 16],
                        "n": int(n),
                        "replicate": r,
                        "dH2_mean": 2 * n**slope * np.exp(noise * rng.standard_normal()),
                        "l2_risk_mean": 5 * n**slope * np.exp(noise * rng.standard_normal()),
                        "l2_risk_of_mean": 4 * n**slope,
                        "eps_n": np.sqrt(eps2),
                        "r_n": eps2 / np.log(n) ** 2,
                        "eps2_local_slope": 2 / np.log(n) - 1,
                        "kept_nodes": [4 + (r == 0), 3],
                        "true_nodes": [4, 3],
                    }
                )
    return pd.DataFrame(rows)


@settings(max_examples=40)
@given(
    slope=st.floats(-2.0, 0.5),
    level=st.floats(0.01, 100.0),
    factors=st.lists(st.floats(0.1, 10.0), min_size=1, max_size=6),
)
def test_exact_power_law_gives_its_exponent(slope, level, factors):
    # v[n, r] = level * factor_r * n^slope: the replicate mean is an exact power law in n,
    # so the least-squares slope is `slope` up to float64 rounding of logs (1e-9 absolute)
    samples = [level * np.array(factors) * n**slope for n in NS]
    fit = loglog_slope(NS, samples, boot=200, seed=1)
    assert fit.slope == pytest.approx(slope, abs=1e-9)
    assert fit.intercept == pytest.approx(np.log(level * np.mean(factors)), abs=1e-9)
    assert fit.low <= fit.slope + 1e-9 and fit.high >= fit.slope - 1e-9


def test_slope_matches_numpy_polyfit_and_interval_is_seeded():
    rng = np.random.default_rng(3)
    samples = [rng.lognormal(-0.5 * np.log(n), 0.3, size=5) for n in NS]
    reference = np.polyfit(np.log(NS), np.log([s.mean() for s in samples]), 1)[0]
    fit = loglog_slope(NS, samples, boot=500, seed=7)
    assert fit.slope == pytest.approx(reference, rel=1e-12)
    assert fit == loglog_slope(NS, samples, boot=500, seed=7)
    assert fit != loglog_slope(NS, samples, boot=500, seed=8)
    assert fit.low < fit.slope < fit.high


def test_bootstrap_interval_covers_the_true_slope_at_about_its_level():
    # 200 simulated studies with slope -0.7 and lognormal replicate noise: a 90 % interval
    # that resamples replicates should cover -0.7 in roughly 90 % of them. With 200 studies
    # the binomial sd of the coverage is 2 %; the percentile bootstrap with R = 8 is known
    # to undercover a little, so accept [0.78, 0.97] (an interval that ignores the replicate
    # noise, or resamples the n values, falls far outside it).
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(200):
        samples = [n**-0.7 * rng.lognormal(0.0, 0.5, size=8) for n in NS]
        fit = loglog_slope(NS, samples, level=0.9, boot=400, seed=int(rng.integers(2**31)))
        covered += fit.low <= -0.7 <= fit.high
    assert 0.78 <= covered / 200 <= 0.97


def test_bad_inputs_name_the_field():
    good = [np.ones(3)] * 2
    with pytest.raises(InvalidParameterError, match=r"^n: must be at least two distinct"):
        loglog_slope([100, 100], good)
    with pytest.raises(InvalidParameterError, match=r"^samples\[1\]: must be a non-empty set"):
        loglog_slope([100, 200], [np.ones(3), np.array([1.0, -1.0])])
    with pytest.raises(InvalidParameterError, match=r"^samples\[0\]"):
        loglog_slope([100, 200], [np.array([]), np.ones(2)])
    with pytest.raises(InvalidParameterError, match=r"^samples: must be 2 samples"):
        loglog_slope([100, 200], [np.ones(3)])
    with pytest.raises(InvalidParameterError, match=r"^level"):
        loglog_slope([100, 200], good, level=1.0)
    with pytest.raises(InvalidParameterError, match=r"^boot"):
        loglog_slope([100, 200], good, boot=10)


def test_theory_constant_is_the_log_least_squares_level():
    eps2 = np.log(NS) / NS
    assert theory_constant(3.0 * eps2, eps2) == pytest.approx(3.0, rel=1e-12)
    # a constant C' != C makes the log residuals' sum of squares larger
    y = eps2 * np.exp(np.random.default_rng(0).normal(0, 0.3, NS.size))
    c = theory_constant(y, eps2)
    sse = lambda k: np.sum((np.log(y) - np.log(k * eps2)) ** 2)  # noqa: E731
    assert sse(c) < min(sse(c * 1.01), sse(c / 1.01))


def test_summary_groups_cells_and_computes_replicate_mean_and_sd():
    table = _synthetic_table()
    summary = summary_table(table)
    assert len(summary) == 2 * len(NS)
    assert set(summary["hidden"]) == {"16x16"}
    row = summary[(summary["prior"] == "ss-gl") & (summary["n"] == 1024)].iloc[0]
    cell = table[(table["prior"] == "ss-gl") & (table["n"] == 1024)]
    assert row["replicates"] == 6
    assert row["dH2_mean"] == pytest.approx(cell["dH2_mean"].mean(), rel=1e-12)
    assert row["dH2_mean_sd"] == pytest.approx(cell["dH2_mean"].std(ddof=1), rel=1e-12)
    assert row["eps_n"] == pytest.approx(np.sqrt(np.log(1024) ** 2 / 1024))


def test_slope_table_recovers_slopes_and_theory_grid_slope():
    table = _synthetic_table(slope=-0.8, noise=0.05, replicates=10)
    slopes = slope_table(table, boot=300)
    assert list(slopes["prior"]) == ["ss-gl", "ss-ghs"]  # the study's order
    for _, row in slopes.iterrows():
        # 5 % lognormal noise on 10 replicates: the fitted slope is within 0.05 of -0.8
        assert row["slope_dH2_mean"] == pytest.approx(-0.8, abs=0.05)
        assert row["slope_l2_risk_mean"] == pytest.approx(-0.8, abs=0.05)
        assert row["dH2_mean_low"] < row["slope_dH2_mean"] < row["dH2_mean_high"]
        reference = np.polyfit(np.log(NS), np.log(np.log(NS) ** 2 / NS), 1)[0]
        assert row["slope_eps2"] == pytest.approx(reference, rel=1e-10)
        assert row["local_eps2_first"] == pytest.approx(2 / np.log(256) - 1)
        assert (row["n_min"], row["n_max"]) == (256, 4096)
    # one n only: no slope can be fitted and the group is left out
    assert slope_table(table[table["n"] == 256]).empty


def test_slope_is_nan_when_a_metric_is_not_positive():
    table = _synthetic_table()
    table.loc[0, "dH2_mean"] = 0.0
    slopes = slope_table(table, boot=200).set_index("prior")
    assert np.isnan(slopes.loc["ss-gl", "slope_dH2_mean"])
    assert np.isfinite(slopes.loc["ss-gl", "slope_l2_risk_mean"])
    assert np.isfinite(slopes.loc["ss-ghs", "slope_dH2_mean"])


def test_recovery_counts_kept_against_true_nodes_per_layer():
    table = _synthetic_table(replicates=4)
    recovery = recovery_table(table)
    layer1 = recovery[(recovery["layer"] == 1) & (recovery["prior"] == "ss-gl")]
    layer2 = recovery[(recovery["layer"] == 2) & (recovery["prior"] == "ss-gl")]
    # replicate 0 keeps 5 nodes in layer 1, the other three keep the true 4
    assert layer1["kept_mean"].tolist() == [4.25] * len(NS)
    assert layer1["exact"].tolist() == [0.75] * len(NS)
    assert layer2["exact"].tolist() == [1.0] * len(NS)
    assert set(layer1["true"]) == {4}
    # a truth of another depth (or none) cannot be compared layer by layer
    table["true_nodes"] = [[4, 3, 2]] * len(table)
    assert recovery_table(table)["exact"].isna().all()
    table["true_nodes"] = None
    assert recovery_table(table)["true"].isna().all()


def _store(tmp_path, table):
    from simulations.store import CellRecord, ResultStore

    store = ResultStore(tmp_path / "study")
    groups = list(table.groupby(["prior", "n"], sort=False))
    replicates = int(table["replicate"].nunique())
    records = [CellRecord(f"c{i}", str(key), {}, replicates) for i, (key, _) in enumerate(groups)]
    store.prepare("synthetic", records)
    for i, (_, rows) in enumerate(groups):
        store.write_cell(f"c{i}", rows.reset_index(drop=True))
    return store


def test_write_report_writes_summary_and_figures(tmp_path):
    from simulations.report import write_report

    table = _synthetic_table(replicates=4)
    table["activation"] = "relu"
    store = _store(tmp_path, table)
    report = write_report(store.root, boot=200)
    names = sorted(p.name for p in report.figures)
    assert names == [
        "contraction_relu_teacher_16x16-relu.pdf",
        "contraction_relu_teacher_16x16-relu.png",
        "nodes_relu_teacher_16x16-relu.pdf",
        "nodes_relu_teacher_16x16-relu.png",
    ]
    for path in report.figures:
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if path.suffix == ".png" else b"%PDF")
    text = report.summary.read_text()
    assert text.startswith("# Study synthetic: report")
    assert "Cells done: 10 of 10" in text
    assert "![contraction_relu_teacher_16x16-relu](contraction_relu_teacher_16x16-relu.png)" in text
    # spec order (ss-gl first), the theory slope column, recovery with the truth in brackets
    assert text.index("| ss-gl | 16x16-relu | 256 |") < text.index("| ss-ghs | 16x16-relu | 256 |")
    assert "4.25 ± 0.5 (4)" in text and "slope eps_n^2 (theory, same grid)" in text
    # every table row has as many cells as its header: no stray '|' inside a cell
    for block in text.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert len({row.count("|") for row in rows}) <= 1, block


def test_report_of_one_n_has_no_contraction_figure_and_empty_study_is_refused(tmp_path):
    from simulations.report import write_report
    from simulations.store import ResultStore

    table = _synthetic_table(replicates=2)
    table = table[table["n"] == 512]
    report = write_report(_store(tmp_path, table).root, boot=200)
    assert sorted(p.name for p in report.figures) == [
        "nodes_relu_teacher_16x16.pdf",
        "nodes_relu_teacher_16x16.png",
    ]
    empty = ResultStore(tmp_path / "empty")
    empty.prepare("empty", [])
    with pytest.raises(
        InvalidParameterError, match=r"^DIR: must be a study folder with at least one"
    ):
        write_report(empty.root)


def test_report_of_user_data_without_truth(tmp_path):
    from simulations.report import write_report

    table = _synthetic_table(replicates=2)
    for column in ("dH2_mean", "l2_risk_mean", "l2_risk_of_mean", "eps_n", "r_n"):
        table[column] = np.nan
    table["true_nodes"] = None
    report = write_report(_store(tmp_path, table).root, boot=200)
    assert [p.stem for p in report.figures] == ["nodes_relu_teacher_16x16"] * 2
    assert "Not available: the design has no noise-free truth" in report.text
    assert "Log-log slopes" not in report.text


def test_failed_replicates_are_counted_and_left_out_unconverged_ones_marked():
    from simulations.report import contraction_markdown, replicate_notes

    table = _synthetic_table(replicates=3, priors=("ss-gl",))
    table["status"] = "converged"
    first = table.index[0]  # n = 256, replicate 0
    table.loc[first, ["status", "dH2_mean"]] = ["failed", np.nan]
    table["failed_step"] = None
    table["failure"] = None
    table.loc[first, ["failed_step", "failure"]] = [812, "non-finite gradient at step 812"]
    table.loc[table.index[4], "status"] = "max_steps"  # n = 512, replicate 1
    summary = summary_table(table)
    row = summary.iloc[0]
    assert (row["replicates"], row["failed"], row["not_converged"]) == (2, 1, 0)
    assert row["dH2_mean"] == pytest.approx(table["dH2_mean"].iloc[1:3].mean())
    assert summary.iloc[1]["not_converged"] == 1
    assert not np.isnan(slope_table(table, boot=200)["slope_dH2_mean"]).any()
    notes = replicate_notes(table)
    assert notes[0].startswith("1 of 15 replicates failed")
    assert "n=256: 1 of 3: replicate 0 at step 812 (non-finite gradient at step 812)" in notes[1]
    assert notes[2].startswith("1 of 15 replicates reached max_steps without converging")
    text = contraction_markdown(summary)
    assert "| 2 (+1 failed) |" in text and "| not converged |" in text and "| 1 of 3 |" in text
    assert replicate_notes(table.drop(columns="status")) == []


def test_screened_fits_are_counted_per_cell_where_the_rows_say():
    """A ``screened`` column (fits with ``screen_inputs``): the summary counts the usable
    replicates with a screened fit in the cells that have values, NaN in the others; the
    contraction table shows "k of R" there and nothing without the column."""
    from simulations.report import contraction_markdown

    table = _synthetic_table(replicates=3, priors=("ss-gl",))
    table["status"] = "converged"
    table["screened"] = None  # cells fitted without screening have no value
    table.loc[table.index[:3], "screened"] = [True, True, True]  # n = 256
    table.loc[table.index[2], "status"] = "failed"  # left out of the count
    table.loc[table.index[3:6], "screened"] = [False, True, False]  # n = 512
    summary = summary_table(table)
    assert summary["screened"].iloc[:2].tolist() == [2, 1]
    assert summary["screened"].iloc[2:].isna().all()
    text = contraction_markdown(summary)
    assert "| screened |" in text and "| 2 of 2 |" in text and "| 1 of 3 |" in text
    plain = summary_table(table.drop(columns="screened"))
    assert "screened" not in plain and "screened" not in contraction_markdown(plain)


def test_figures_ring_the_cells_at_the_step_cap_and_give_the_training_budget(monkeypatch):
    """One replicate at its cap (SS-GL, n = 1024): its cell's mean is ringed in both figures,
    no other; the titles give the steps' range and the count at the cap."""
    from simulations.report import (
        contraction_figure,
        nodes_figure,
        recovery_long,
        training_note,
        with_labels,
    )
    from ssbnn_theory import style

    table = _synthetic_table(replicates=2)
    table["status"] = "converged"
    table["steps"] = 36_000
    capped = (table["prior"] == "ss-gl") & (table["n"] == 1024) & (table["replicate"] == 1)
    table.loc[capped, ["status", "steps"]] = ["max_steps", 72_000]
    table.loc[table.index[0], "steps"] = 18_800
    note = "training: 18,800 to 72,000 steps per replicate until convergence; 1 of 20 stopped"
    assert training_note(table).startswith(note)
    drawn = []
    monkeypatch.setattr(style, "save_png_pdf", lambda fig, stem: drawn.append(fig) or [])
    labelled = with_labels(table)
    contraction_figure(labelled, slope_table(table, boot=100), Path("unused"))
    nodes_figure(recovery_long(table), Path("unused"))
    for fig in drawn:
        assert note in fig._suptitle.get_text()
        for ax in fig.axes:
            rings = [
                c.get_offsets()
                for c in ax.collections
                if len(c.get_facecolors()) == 0 and len(c.get_offsets())
            ]
            assert len(rings) == 1 and len(rings[0]) == 1, rings  # one ring, one cell
            assert 1024 * 0.8 < rings[0][0][0] < 1024 * 1.25  # at n = 1024 (dodged)
    fixed = table.assign(status="fixed", steps=3000)
    assert training_note(fixed) == "training: 3,000 steps per replicate (fixed)"
    assert training_note(table.drop(columns=["status", "steps"])) is None


# --------------------------------------------------------------------------- the schema


def test_schema_lists_and_labels_come_from_one_table():
    from simulations import schema

    names = [c.name for c in schema.COLUMNS]
    assert len(names) == len(set(names))
    assert set(schema.RESULT_COLUMNS) | set(schema.RUN_COLUMNS) <= set(names)
    assert schema.RESULT_COLUMNS[:3] == ("design", "prior", "prior_family")
    assert schema.PRINTED_COLUMNS[-2:] == ("status", "wall_s")  # the run's column last
    assert all(schema.column(c).role is schema.Role.RUN for c in schema.RUN_COLUMNS)
    assert schema.label("dH2_mean") == "E_q d_H^2" and schema.label("unknown") == "unknown"
    assert schema.slope_labels("dH2_mean")["dH2_mean_low"] == "E_q d_H^2 low"


def test_tables_without_the_prior_and_student_columns_get_them():
    from simulations import schema
    from simulations.enums import Prior
    from simulations.spec import StudyPrior

    old = pd.DataFrame(
        {
            "prior": ["ss-gl", "ss-ghs(global_scale=0.001)", "edge-ss"],
            "hidden": [[16, 8], [16, 8], [4]],
            "activation": ["relu", "relu", "tanh"],
        }
    )
    derived = schema.with_derived_columns(old)
    assert list(derived["prior_family"]) == ["ss-gl", "ss-ghs", "edge-ss"]
    assert list(derived["student"]) == ["16x8-relu", "16x8-relu", "4-tanh"]
    assert derived["prior_options"].isna().all()  # unknown without the study's priors
    ghs = StudyPrior(Prior.SS_GHS, {"global_scale": 0.001})
    known = schema.with_derived_columns(old, [ghs])
    assert known["prior_options"].iloc[1] == '{"global_scale":0.001}'
    assert schema.with_derived_columns(derived) is derived
    with pytest.raises(KeyError):
        schema.legacy_prior_family("horseshoe")
