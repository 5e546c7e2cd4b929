"""Cells: expansion, identity, seeds, theory radius; running cells and studies on every backend."""

from __future__ import annotations

import copy
import functools
import math
import os
import signal
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from simulations._io import plain
from simulations.execution import Execution
from simulations.minibatch import Shuffle
from simulations.rng import stream_seed
from simulations.schema import COLUMNS, RESULT_COLUMNS, RUN_COLUMNS, options_json
from simulations.spec import parse_spec
from simulations.store import ResultStore
from simulations.study import (
    expand,
    git_commit,
    run_cell,
    run_study,
    theory_rate,
)
from ssbnn_theory.errors import InvalidParameterError

# Dask workers cannot import this test module by name: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

TINY = {
    "study": {"name": "tiny", "seed": 5, "replicates": 2},
    "design": {"name": "relu_teacher", "p": 8, "n_test": 200},
    "model": {"priors": ["ss-gl", "ss-ghs"], "hidden": [6, 4]},
    "train": {"n": [40, 80], "steps": 8, "batch_size": 20, "lr": 0.01},
    "metrics": {"draws": 4},
}

BOTH_WAYS = {
    "steps": "auto", "max_steps": 120, "dense_steps": 12, "prune_every": 24, "trial_steps": 12,
    "restarts": 1, "search": False, "kl_warmup_steps": 20, "screen_inputs": "both",
}  # fmt: skip
"""A short ``"auto"`` fit without and with screening (``screen_inputs = "both"``)."""

DASK_WARNINGS = (
    "ignore:Creating scratch directories is taking a surprisingly long time:UserWarning",
)


def _spec(**changes):
    data = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    return parse_spec(data)


def _result_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table without the run's cost, machine and version columns, in a fixed order."""
    kept = table.drop(columns=[c for c in RUN_COLUMNS if c in table])
    return kept.sort_values(["cell_id", "replicate"]).reset_index(drop=True)


def test_expansion_order_labels_and_seeds():
    spec = _spec(model__hidden=[[6, 4], [5]], model__activation=["relu", "tanh"])
    cells = expand(spec)
    assert len(cells) == 4 * 2 * 2  # students x n x priors
    assert [c.label for c in cells[:4]] == [
        "relu_teacher/ss-gl/6x4-relu/n=40",
        "relu_teacher/ss-ghs/6x4-relu/n=40",
        "relu_teacher/ss-gl/6x4-relu/n=80",
        "relu_teacher/ss-ghs/6x4-relu/n=80",
    ]
    assert len({c.cell_id for c in cells}) == len(cells)
    # one data seed for the study; model seeds depend on (study seed, n, replicate) only
    assert {c.data_seed for c in cells} == {stream_seed(5, "design")}
    by_n = {c.n: c.model_seeds for c in cells}
    assert all(c.model_seeds == by_n[c.n] for c in cells)
    assert by_n[40] != by_n[80] and len(set(by_n[40])) == 2


def test_cell_identity_follows_the_resolved_configuration(tmp_path):
    base = {c.label: c.cell_id for c in expand(_spec())}
    assert base == {c.label: c.cell_id for c in expand(_spec())}
    # what does not change results does not change identity
    same = _spec(study__name="renamed", study__description="x", study__output="elsewhere")
    assert base == {c.label: c.cell_id for c in expand(same)}
    reordered = _spec(model__priors=["ss-ghs", "ss-gl"])
    assert base == {c.label: c.cell_id for c in expand(reordered)}
    # a default written out explicitly is the same configuration
    assert base == {c.label: c.cell_id for c in expand(_spec(model__sigma_0=1.0))}
    # the compiled step changes the speed, not the results
    for compile in (True, False, "auto"):
        assert base == {c.label: c.cell_id for c in expand(_spec(train__compile=compile))}
    # every option that changes results changes every affected cell's identity
    for changed in (
        _spec(train__steps=9),
        _spec(study__seed=6),
        _spec(study__replicates=3),
        _spec(design__n_test=201),
        _spec(design__noise_sd=0.5),
        _spec(metrics__draws=5),
        _spec(model__sigma_e="learned"),
        _spec(model__prior_inclusion=0.1),
        _spec(train__search_steps=500),  # given; left at None it is not in the identity
    ):
        ids = {c.label: c.cell_id for c in expand(changed)}
        assert set(ids) == set(base) and not set(ids.values()) & set(base.values())


def test_teacher_file_content_not_path_defines_identity(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"W1": rng.normal(size=(2, 3)), "b1": np.zeros(2), "W2": rng.normal(size=(1, 2))}
    arrays["b2"] = np.zeros(1)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        np.savez(tmp_path / folder / "t.npz", **arrays)
    data = copy.deepcopy(TINY)
    data["design"] = {"name": "teacher", "weights": "t.npz", "p": 5, "n_test": 100}
    ids = [{c.label: c.cell_id for c in expand(parse_spec(data, base=tmp_path / f))} for f in "ab"]
    assert ids[0] == ids[1]
    np.savez(tmp_path / "b" / "t.npz", **{**arrays, "b2": np.ones(1)})
    changed = {c.label: c.cell_id for c in expand(parse_spec(data, base=tmp_path / "b"))}
    assert not set(changed.values()) & set(ids[0].values())


def test_theory_rate_matches_ssbnn_theory_and_is_nan_where_theory_does_not_apply():
    from simulations.designs import generate
    from ssbnn_theory.architecture import Architecture
    from ssbnn_theory.priors import PriorSpec
    from ssbnn_theory.rates import contraction_rate

    spec = _spec(model__priors=["ss-gl", "ss-ghs", "dense"], model__hidden=[[6, 4], [6]])
    cells = expand(spec)
    truth = generate("relu_teacher", n=2, replicates=1, seed=cells[0].data_seed, p=8).truth
    gl = next(c for c in cells if c.label == "relu_teacher/ss-gl/6x4-relu/n=80")
    eps_n, r_n, slope = theory_rate(gl, truth)
    arch = Architecture(8, (6, 4), truth.active_nodes, truth.bounds, "relu")
    lam = spec.model_config(gl.prior, gl.student).inclusion_probs(80)
    engine = PriorSpec("ss-gl", gaussian_output=True)  # the engine's output layer is Gaussian
    kappa_log = spec.metrics.kappa_log
    direct = contraction_rate(arch, engine, 80.0, 1.0, inclusion=np.array(lam), kappa_log=kappa_log)
    assert eps_n == pytest.approx(float(direct.eps_n[0]), rel=1e-12)
    assert r_n == pytest.approx(float(direct.r_n[0]), rel=1e-12)
    assert -2.0 < slope < 0.0
    ghs = next(c for c in cells if c.label == "relu_teacher/ss-ghs/6x4-relu/n=80")
    assert theory_rate(ghs, truth)[0] != eps_n  # the slab enters the rate
    for label in ("relu_teacher/dense/6x4-relu/n=80", "relu_teacher/ss-gl/6-relu/n=80"):
        cell = next(c for c in cells if c.label == label)  # baseline prior; other depth
        assert all(math.isnan(v) for v in theory_rate(cell, truth))
    assert all(math.isnan(v) for v in theory_rate(gl, None))


def test_run_cell_rows_columns_and_reproducibility():
    cell = expand(_spec())[2]  # ss-gl at n = 80
    first = run_cell(cell)
    assert list(first.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert len(first) == 2 and list(first["replicate"]) == [0, 1]
    assert first["cell_id"].unique().tolist() == [cell.cell_id]
    assert [list(k) for k in first["true_nodes"]] == [[4, 3], [4, 3]]
    assert all(len(k) == 2 for k in first["kept_nodes"])
    assert (first["steps"] == 8).all() and (first["n"] == 80).all()
    assert np.isfinite(first["eps_n"]).all() and (first["dH2_mean"] > 0).all()
    assert first["hidden"].map(list).tolist() == [[6, 4], [6, 4]]
    # the prior and the student have their own columns; every column is in the schema
    assert (first["prior_family"] == cell.prior.prior.value).all()
    assert (first["prior_options"] == options_json(cell.prior.options)).all()
    assert (first["student"] == cell.student.label).all()
    assert set(first.columns) <= {c.name for c in COLUMNS}
    assert "screened" not in first  # only fits with screen_inputs have the column
    second = run_cell(cell)
    pd.testing.assert_frame_equal(_result_columns(first), _result_columns(second))


def test_design_without_network_truth_has_nan_radius():
    data = copy.deepcopy(TINY)
    data["design"] = {"name": "cubic_small_n", "n_test": 100}
    data["model"]["priors"] = ["ss-gl"]
    data["train"]["n"] = [40]
    table = run_cell(expand(parse_spec(data))[0])
    assert table["eps_n"].isna().all() and table["r_n"].isna().all()
    assert table["dH_exceeds_1eps"].isna().all()
    assert table["true_nodes"].isna().all() and (table["dH2_mean"] > 0).all()


def _kill_worker_once_then_run(cell, *, marker, **kwargs):
    """``run_cell``, except that the first attempt at the SS-GHS cell kills its own process."""
    if cell.prior.label == "ss-ghs" and not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return run_cell(cell, **kwargs)


@pytest.mark.filterwarnings(*DASK_WARNINGS)
def test_backends_give_identical_tables_and_dask_retries_a_dead_workers_cell(tmp_path):
    spec = _spec(train__n=[40])
    marker = tmp_path / "killed"
    tables = {}
    for name, execution, cell_fn in (
        ("in-process", Execution(), run_cell),
        ("pool", Execution("pool", workers=2), run_cell),
        (
            "dask",
            Execution("dask", workers=2),
            functools.partial(_kill_worker_once_then_run, marker=str(marker)),
        ),
    ):
        summary = run_study(spec, tmp_path / name, execution=execution, quiet=True, cell_fn=cell_fn)
        assert summary.ok and summary.completed == 2, summary.line()
        tables[name] = _result_columns(ResultStore(tmp_path / name).load_table())
    assert marker.exists(), "the worker-killing attempt did not run"
    pd.testing.assert_frame_equal(tables["in-process"], tables["pool"])
    pd.testing.assert_frame_equal(tables["in-process"], tables["dask"])


def test_git_commit_of_a_checkout_and_outside_one(tmp_path):
    commit = git_commit(Path(__file__).parent)
    if commit is not None:  # the tests run from a checkout in CI; an sdist has none
        assert len(commit) == 40 and int(commit, 16) >= 0
    assert git_commit(tmp_path) is None


def test_plain_records_keep_floats_for_checkpoints_and_strings_for_identity():
    record = {"lr": 1e-3, 3: (Shuffle.ONCE, {"clip": math.inf}), "betas": [0.9, math.nan]}
    kept = plain(record)
    assert kept == {"lr": 1e-3, "3": ["once", {"clip": math.inf}], "betas": [0.9, kept["betas"][1]]}
    assert type(kept["3"][0]) is str and math.isnan(kept["betas"][1])
    assert plain(record, nonfinite_as_str=True) == {
        "lr": 1e-3,
        "3": ["once", {"clip": "inf"}],
        "betas": [0.9, "nan"],
    }


def _fail_ghs(cell, **kwargs):
    if cell.prior.label == "ss-ghs":
        raise RuntimeError(f"boom in {cell.n}")
    return run_cell(cell, **kwargs)


def test_failures_are_isolated_recorded_and_retried_on_resume(tmp_path, capsys):
    spec = _spec()
    summary = run_study(spec, tmp_path, quiet=True, cell_fn=_fail_ghs)
    assert (summary.completed, len(summary.failed), summary.ok) == (2, 2, False)
    err = capsys.readouterr().err
    assert "cell relu_teacher/ss-ghs/6x4-relu/n=40 [" in err and "RuntimeError: boom in 40" in err
    manifest = ResultStore(tmp_path).manifest()["cells"]
    failed = [e for e in manifest.values() if e["status"] == "failed"]
    assert sorted(e["error"] for e in failed) == [
        "RuntimeError: boom in 40",
        "RuntimeError: boom in 80",
    ]
    assert all("Traceback" in e["details"] for e in failed)
    # rerun: finished cells are skipped, the failed ones run again (and now succeed)
    again = run_study(spec, tmp_path, quiet=True)
    assert (again.skipped, again.completed, again.ok) == (2, 2, True)
    table = ResultStore(tmp_path).load_table()
    assert len(table) == 8 and not table.duplicated(["cell_id", "replicate"]).any()
    # a third run has nothing to do
    assert run_study(spec, tmp_path, quiet=True).completed == 0


def test_fail_fast_and_bad_device(tmp_path):
    summary = run_study(
        _spec(), tmp_path, quiet=True, cell_fn=_fail_ghs, execution=Execution(fail_fast=True)
    )
    assert (summary.completed, len(summary.failed), summary.cancelled) == (1, 1, 2)
    assert "1 failed" in summary.line() and "2 not run" in summary.line()
    with pytest.raises(InvalidParameterError, match=r"^device: must be 'cpu' or 'cuda'"):
        run_study(_spec(), tmp_path, device="tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match=r"^device: must be 'cpu' \(no CUDA"):
            run_study(_spec(), tmp_path, device="cuda")


@pytest.mark.cuda
def test_cuda_cell_runs():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    table = run_cell(expand(_spec())[0], device="cuda")
    assert (table["device"].str.startswith("cuda")).all()


def test_a_cell_fitting_both_ways_resumes_from_its_checkpoints_and_removes_them(tmp_path):
    """``screen_inputs = "both"`` checkpoints its second (screened) fit beside the first:
    interrupted in it, the cell leaves both files, resumes from them, and removes both."""
    auto = {**BOTH_WAYS, "max_steps": 200, "checkpoint_every": 4}
    cell = expand(_spec(**{f"train__{k}": v for k, v in auto.items()}))[0]
    stages = []

    def interrupt(step, total):
        if not stages or step < stages[-1]:
            stages.append(step)  # a fit (or a stage of one) begins
        stages[-1] = step
        if len(stages) == 2 and step == 6:  # in the screened fit, after its checkpoint at 4
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cell(cell, checkpoint_dir=tmp_path, progress=interrupt)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{cell.cell_id}.pt", f"{cell.cell_id}.pt.screened"]
    resumed = run_cell(cell, checkpoint_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # removed once training ended
    pd.testing.assert_frame_equal(_result_columns(resumed), _result_columns(run_cell(cell)))


def test_rows_say_which_replicates_kept_the_screened_fit(monkeypatch):
    """With ``screen_inputs``, each row's ``screened`` is its replicate's
    ``FitReport.screened``: with ``"both"``, whether it kept the screened fit."""
    import simulations.train as train

    cell = expand(_spec(**{f"train__{k}": v for k, v in BOTH_WAYS.items()}))[0]
    reports, real_fit = [], train.fit

    def fit(*args, **kwargs):
        reports.append(real_fit(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(train, "fit", fit)
    rows = run_cell(cell)
    report = reports[-1]  # the cell's fit returns last (its screening stage calls fit too)
    assert rows["screened"].tolist() == report.screened.tolist()


def test_a_cell_interrupted_mid_training_resumes_from_its_checkpoint(tmp_path):
    cell = expand(_spec(train__checkpoint_every=4))[0]

    def interrupt(step, total):
        if step == 6:  # after the checkpoint of step 4
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cell(cell, checkpoint_dir=tmp_path, progress=interrupt)
    assert [p.name for p in tmp_path.iterdir()] == [f"{cell.cell_id}.pt"]
    resumed = run_cell(cell, checkpoint_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # removed once training ended
    pd.testing.assert_frame_equal(_result_columns(resumed), _result_columns(run_cell(cell)))
