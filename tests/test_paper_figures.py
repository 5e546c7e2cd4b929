"""``python -m paper_figures``: the quick path end to end, and the pieces it is made of.

The quick studies' results live in one folder per test session
(``<pytest base temp>/ssbnn-quick-results``), shared with ``tests/test_notebooks.py``: the
study layer resumes, so whichever test comes first runs the quick studies and the others
load them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from paper_figures import FIGURES, Context, Size, build, obtain, size_from_env
from paper_figures.cli import main
from paper_figures.contraction import slope_summary
from paper_figures.refit import check_stored, latency_table, node_probs, refit
from paper_figures.registry import INDEX, FigureSpec, select
from paper_figures.results import REFERENCE, SOURCES, prior_families, prior_name
from paper_figures.theory import ARCHITECTURE, terms_table
from simulations.model import BayesianMLP, ModelConfig
from ssbnn_theory import contraction_rate
from ssbnn_theory.errors import InvalidParameterError


@pytest.fixture(scope="module")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's quick-study results folder (shared with the notebook tests)."""
    root = tmp_path_factory.getbasetemp() / "ssbnn-quick-results"
    root.mkdir(exist_ok=True)
    return root


# --------------------------------------------------------------------------- end to end


def test_quick_path_writes_every_figure_and_the_index(
    results_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures"
    status = main(["--quick", "--results", str(results_root), "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    index = (out / INDEX).read_text(encoding="utf-8")
    for figure in FIGURES:
        pngs = sorted(out.glob(f"{figure.name}*.png"))
        pdfs = sorted(out.glob(f"{figure.name}*.pdf"))
        assert pngs, f"no PNG for {figure.name}"
        assert [p.stem for p in pngs] == [p.stem for p in pdfs], figure.name
        for path in (*pngs, *pdfs):
            assert path.stat().st_size > 1000, f"{path.name} is (nearly) empty"
            assert f"`{path.name}`" in index, f"the index does not list {path.name}"
        assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
        assert all(p.read_bytes()[:4] == b"%PDF" for p in pdfs)
        assert f"## {figure.name}: {figure.title}" in index
        assert f"python -m paper_figures --only {figure.name} --quick" in index
    for source in SOURCES.values():
        spec = source.quick.resolve().relative_to(Path(__file__).resolve().parents[1])
        assert f"spec `{spec}`" in index
        assert f"ssbnn simulate {spec} --out" in index
    assert "Not made" not in index


def test_full_size_without_stored_results_uses_the_committed_reference(
    results_root: Path,
) -> None:
    """The contraction study is not stored here: its committed reference results stand in
    (list columns read back as lists, every cell of the reference spec present)."""
    results = obtain("contraction", Size.FULL, results=results_root, run=False)
    assert results.size is Size.FULL and results.folder == REFERENCE
    assert "committed reference results" in results.note
    assert results.command == (  # the committed folder is not a study folder to write into
        "ssbnn simulate paper_figures/reference/relu_teacher_p100.toml --out DIR"
        " && ssbnn results DIR --csv paper_figures/reference/relu_teacher_p100.csv"
    )
    assert results.spec.design.params["p"] == 100  # the full-size study's truth
    assert results.cells_done == results.cells_total
    assert results.table["hidden"].map(lambda h: h == [16, 16]).all()
    assert set(results.table["n"]) == set(results.spec.n)
    assert results.table["converged"].dtype == bool


def test_full_size_without_stored_results_falls_back_to_the_quick_study(
    results_root: Path,
) -> None:
    results = obtain("compression_bai", Size.FULL, results=results_root, run=False)
    assert results.size is Size.QUICK
    assert results.spec.name == "compression_bai_sparse_function_quick"
    assert "no stored full results" in results.note
    assert results.cells_done == results.cells_total


def test_a_failing_figure_is_reported_and_the_others_are_made(tmp_path: Path) -> None:
    def broken(ctx: Context) -> list[Path]:
        raise RuntimeError("boom")

    figures = (
        FigureSpec("broken", "Broken", "Nothing.", "01_rate_bounds.py", None, "f", broken),
        next(f for f in FIGURES if f.name == "weight_bound"),  # theory only, quick to draw
    )
    ctx = Context(out=tmp_path, size=Size.QUICK, results=tmp_path / "results")
    result = build(ctx, figures=figures)
    assert not result.ok
    assert result.errors == {"broken": "RuntimeError: boom"}
    assert [p.name for p in result.files["weight_bound"]] == [
        "weight_bound.png",
        "weight_bound.pdf",
    ]
    index = result.index.read_text(encoding="utf-8")
    assert "**Not made:** `RuntimeError: boom`" in index
    assert "![weight_bound](weight_bound.png)" in index


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--only", "no_such_figure"], "only"),
        (["--spec", "nope=x.toml"], "--spec"),
        (["--spec", "contraction"], "--spec"),
        (["--quick", "--full"], "not allowed with argument"),
        (["--spec", "contraction=no/such/spec.toml"], "spec: must be an existing TOML file"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = main([*argv, "--out", str(tmp_path), "--results", str(tmp_path)])
    except SystemExit as exc:  # argparse errors exit from the parser
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert field in err


def test_list_names_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == [f.name for f in FIGURES]


def test_select_keeps_paper_order_and_rejects_unknown_names() -> None:
    assert [f.name for f in select(["weight_bound", "rate_bounds"])] == [
        "rate_bounds",
        "weight_bound",
    ]
    with pytest.raises(InvalidParameterError, match="only"):
        select(["rate_bound"])


def test_every_figure_names_an_existing_notebook_and_study() -> None:
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    for figure in FIGURES:
        assert (notebooks / figure.notebook).is_file(), figure.notebook
        assert figure.study is None or figure.study in SOURCES
    for source in SOURCES.values():
        assert source.full.is_file() and source.quick.is_file(), source.key


# --------------------------------------------------------------------------- size knob


@pytest.mark.parametrize(
    "env, size",
    [
        ({}, Size.FULL),
        ({"CI": "true"}, Size.QUICK),
        ({"CI": "1"}, Size.QUICK),
        ({"CI": ""}, Size.FULL),
        ({"CI": "false"}, Size.FULL),
        ({"SSBNN_QUICK": "1"}, Size.QUICK),
        ({"SSBNN_QUICK": "Yes"}, Size.QUICK),
        ({"CI": "true", "SSBNN_QUICK": "0"}, Size.FULL),
        ({"SSBNN_QUICK": "off"}, Size.FULL),
    ],
)
def test_size_from_env(env: dict[str, str], size: Size) -> None:
    assert size_from_env(env) is size


def test_size_from_env_rejects_an_unclear_value() -> None:
    with pytest.raises(InvalidParameterError, match="SSBNN_QUICK"):
        size_from_env({"SSBNN_QUICK": "maybe"})


def test_obtain_rejects_an_unknown_study(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="study"):
        obtain("no_such_study", Size.QUICK, results=tmp_path)


@pytest.mark.parametrize(
    "family, name",
    [("ss-gl", "SS-GL"), ("ss-ghs", "SS-GHS"), ("edge-ss", "edge SS"), ("dense", "dense")],
)
def test_prior_names(family: str, name: str) -> None:
    assert prior_name(family) == name


def test_prior_name_rejects_unknown_families() -> None:
    with pytest.raises(InvalidParameterError, match="prior"):
        prior_name("ss-lasso")


def test_prior_families_from_the_column_or_derived_for_older_tables() -> None:
    labels = ["ss-gl", "ss-ghs(input_spike=True)", "dense"]
    table = pd.DataFrame({"prior": labels, "prior_family": ["ss-gl", "ss-ghs", "dense"]})
    assert prior_families(table) == dict(zip(labels, ["ss-gl", "ss-ghs", "dense"], strict=True))
    older = pd.DataFrame({"prior": labels, "hidden": [[4]] * 3})  # no prior_family column
    assert prior_families(older) == prior_families(table)


@pytest.mark.parametrize("key", ["contraction", "recovery"])
def test_reference_results_carry_the_schema_columns(key: str) -> None:
    """... and the committed spec still resolves to the table's cells: the engine's options
    and defaults it leaves unset are those that made the table (a changed default changes
    the cell ids, which a reference spec then has to pin)."""
    from paper_figures.results import reference_results
    from simulations.study import expand

    results = reference_results(key)
    table = results.table
    assert set(table["cell_id"]) == {cell.cell_id for cell in expand(results.spec)}
    assert set(table["prior_family"]) == {p.prior.value for p in results.spec.priors}
    assert set(table["student"]) == {s.label for s in results.spec.students}
    assert table["prior_options"].notna().all()


# --------------------------------------------------------------------------- refit


def _randomised(prior: str, seed: int) -> BayesianMLP:
    """A small model whose inclusion logits are spread over both sides of 1/2."""
    config = ModelConfig(p=5, hidden=(6, 4), prior=prior, prior_inclusion=0.3, sigma_e=1.0)
    model = BayesianMLP(config, [seed, seed + 1, seed + 2])
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("theta"):
                parameter.copy_(torch.randn(parameter.shape, generator=gen, dtype=parameter.dtype))
    return model


@pytest.mark.parametrize("prior", ["ss-ig", "ss-gl", "ss-ghs", "edge-ss", "dense"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_node_probs_above_one_half_are_exactly_the_kept_nodes(prior: str, seed: int) -> None:
    model = _randomised(prior, seed)
    probs = node_probs(model)
    kept = model.kept().nodes
    assert [p.shape for p in probs] == [tuple(k.shape) for k in kept]
    for p, k in zip(probs, kept, strict=True):
        np.testing.assert_array_equal(p > 0.5, k.numpy())
    if prior != "dense":  # the randomised logits leave some nodes out: the check has teeth
        assert not all(k.all() for k in kept)


def test_refit_reproduces_the_stored_cell_and_records_trajectories(results_root: Path) -> None:
    from simulations.study import expand

    results = obtain("recovery", Size.QUICK, results=results_root)
    cell = expand(results.spec)[-1]
    fitted = refit(cell, record_every=7)
    run = fitted.trajectory
    total = cell.train_config.total_steps
    np.testing.assert_array_equal(run.steps, [0, 7, 14, total])
    assert [a.shape for a in run.nodes] == [
        (4, results.spec.replicates, k) for k in cell.student.hidden
    ]
    np.testing.assert_allclose(run.nodes[0][0], cell.spec.model_config(cell.prior, cell.student)
                               .inclusion_init, rtol=1e-6)  # fmt: skip
    stored = results.table[results.table["cell_id"] == cell.cell_id].sort_values("replicate")
    # the same seeds on the same CPU give the same float32 numbers: exact equality
    np.testing.assert_array_equal(fitted.report.final_kl, stored["final_kl"].to_numpy(np.float32))
    np.testing.assert_array_equal(run.nodes[-1][-1], node_probs(fitted.model)[-1])
    check_stored(fitted, results.table)
    tampered = results.table.copy()
    row = tampered.index[(tampered["cell_id"] == cell.cell_id) & (tampered["replicate"] == 1)][0]
    tampered.at[row, "kept_nodes"] = np.asarray(tampered.at[row, "kept_nodes"]) - 1
    with pytest.raises(InvalidParameterError, match="replicate 1"):
        check_stored(fitted, tampered)
    with pytest.raises(InvalidParameterError, match="not finished"):
        check_stored(fitted, tampered[tampered["cell_id"] != cell.cell_id])
    with pytest.raises(InvalidParameterError, match="record_every"):
        refit(cell, record_every=0)


def test_latency_table_refuses_a_model_that_differs_from_the_stored_one(
    results_root: Path, tmp_path: Path
) -> None:
    results = obtain("compression_bai", Size.QUICK, results=results_root)
    first = results.table["cell_id"].iloc[0]
    table = results.table[results.table["cell_id"] == first].copy()
    table["kept_inputs"] = table["kept_inputs"] - 1
    tampered = dataclasses.replace(results, table=table, folder=tmp_path)
    with pytest.raises(InvalidParameterError, match="refit"):
        latency_table(tampered, batch=8, min_run_time=0.001)
    assert not (tmp_path / "latency.parquet").exists()


def test_latency_table_covers_every_replicate_and_is_reused(results_root: Path) -> None:
    results = obtain("compression_bai", Size.QUICK, results=results_root)
    first = latency_table(results, batch=256, min_run_time=0.01)
    keys = set(zip(first["cell_id"], first["replicate"], strict=True))
    assert keys == set(zip(results.table["cell_id"], results.table["replicate"], strict=True))
    assert (first["compact_ms"] > 0).all() and (first["dense_ms"] > 0).all()
    widths = results.table.set_index(["cell_id", "replicate"])
    for _, row in first.iterrows():
        stored = widths.loc[(row["cell_id"], row["replicate"])]
        assert list(row["compact_widths"][1:-1]) == list(stored["kept_nodes"])
        assert row["compact_widths"][0] == stored["kept_inputs"]
    again = latency_table(results, batch=256, min_run_time=0.01)
    pd.testing.assert_frame_equal(first, again)  # read back, not timed again


# --------------------------------------------------------------------------- tables


def test_terms_table_adds_up_to_n_r_n() -> None:
    table = terms_table(n=1e4)
    for _, part in table.groupby("prior"):
        parts = part[["selection", "slab resolution", "slab magnitude"]].sum().sum()
        # float64 sums of a few terms of size 1e2..1e4: relative error far below 1e-9
        np.testing.assert_allclose(parts, part["n r_n (all layers)"].iloc[0], rtol=1e-9)
    rate = contraction_rate(ARCHITECTURE, "ss-gl", 1e4, conditions=False)
    gl = table[table["prior"] == "SS-GL"]
    np.testing.assert_allclose(gl["slab resolution"], rate.resolution[0], rtol=1e-12)


def _synthetic(slope_h: float, slope_l: float) -> pd.DataFrame:
    """Two priors, four ``n``, three replicates; exact power laws times replicate noise."""
    rows = []
    rng = np.random.default_rng(0)
    for prior in ("ss-gl", "ss-ghs"):
        for n in (100, 200, 400, 800):
            for r in range(3):
                noise = np.exp(rng.normal(0.0, 0.01))
                rows.append(
                    {
                        "design": "relu_teacher",
                        "prior": prior,
                        "hidden": [8, 8],
                        "activation": "relu",
                        "n": n,
                        "replicate": r,
                        "dH2_mean": 2.0 * n**slope_h * noise,
                        "l2_risk_mean": 3.0 * n**slope_l * noise,
                        "eps_n": float(np.sqrt(n**-0.7)),
                        "eps2_local_slope": -0.7 - 0.001 * np.log(n),
                    }
                )
    return pd.DataFrame(rows)


def test_slope_summary_maps_each_metric_to_its_own_slope() -> None:
    summary = slope_summary(_synthetic(-0.5, -0.9), boot=200)
    assert list(summary["prior"]) == ["ss-gl", "ss-ghs"]
    assert set(summary["student"]) == {"8x8-relu"}
    # 1 % replicate noise moves a slope over a factor 8 in n by well under 0.02
    np.testing.assert_allclose(summary["slope E_q d_H^2"], -0.5, atol=0.02)
    np.testing.assert_allclose(summary["slope E_q ‖f-f0‖^2"], -0.9, atol=0.02)
    assert (summary["E_q d_H^2 low"] <= summary["slope E_q d_H^2"]).all()
    assert (summary["slope E_q d_H^2"] <= summary["E_q d_H^2 high"]).all()
    assert (summary["E_q ‖f-f0‖^2 high"] < summary["E_q d_H^2 low"]).all()
    np.testing.assert_allclose(summary["theory slope (grid)"], -0.7, rtol=1e-9)
    np.testing.assert_allclose(summary["theory local slope at n_min"], -0.7 - 0.001 * np.log(100))
    np.testing.assert_allclose(summary["theory local slope at n_max"], -0.7 - 0.001 * np.log(800))
