"""Results you can trust after faults: damaged cell files, two writers, corrupt state,
diverged replicates, read-only folders, signals, and export paths.

Each test names the fault it covers; every one fails on the code before verified cells.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulations.cli import main
from simulations.schema import RUN_COLUMNS
from simulations.spec import load_spec
from simulations.store import (
    MANIFEST,
    BadCellsError,
    IntegrityWarning,
    ResultStore,
    decode_cell,
    encode_cell,
)
from simulations.study import expand, run_cell, run_study
from tests.simulations.damage import footer_start, make_read_only, make_writable

SPEC = """
[study]
name = "faults"
seed = 4
replicates = 2

[design]
name = "relu_teacher"
p = 8
n_test = 200

[model]
priors = ["ss-gl", "ss-ghs"]
hidden = [6, 4]

[train]
n = [40, 80]
steps = {steps}
batch_size = 20
lr = 0.01
checkpoint_every = {every}

[metrics]
draws = 4
"""

INTEGRITY = "ignore::simulations.store.IntegrityWarning"


def _spec_file(folder: Path, steps: int = 10, every: int = 10) -> Path:
    path = folder / "faults.toml"
    path.write_text(SPEC.format(steps=steps, every=every))
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _results(folder) -> pd.DataFrame:
    table = ResultStore(folder).load_table()
    table = table.drop(columns=[c for c in RUN_COLUMNS if c in table])
    return table.sort_values(["cell_id", "replicate"]).reset_index(drop=True)


def _cells(folder: Path) -> list[Path]:
    return sorted((folder / "cells").glob("[!.]*.parquet"))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished four-cell study: (spec file, output folder); copy it before damaging it."""
    folder = tmp_path_factory.mktemp("faults")
    spec = _spec_file(folder)
    out = folder / "out"
    assert main(["simulate", str(spec), "--out", str(out), "--quiet"]) == 0
    return spec, out


@pytest.fixture
def copy(study, tmp_path):
    spec, out = study
    target = tmp_path / "study"
    shutil.copytree(out, target)
    return spec, target


# --------------------------------------------------------------------------- case 1


def test_case1_truncated_or_garbage_cell_is_refused_by_results_and_report(copy, capsys):
    _, out = copy
    first, second = _cells(out)[:2]
    first.write_bytes(first.read_bytes()[:-100])
    second.write_bytes(b"garbage")
    code, stdout, err = _run(capsys, "results", out)
    line = _one_line(err)
    assert code == 1 and stdout == ""
    assert "2 cell files do not verify" in line and first.name in line and second.name in line
    assert "not a complete Parquet file" in line and "--skip-bad" in line
    code, _, err = _run(capsys, "report", out)
    assert code == 1 and first.name in _one_line(err)
    # --skip-bad goes on and says how many were left out
    code, stdout, err = _run(capsys, "results", out, "--skip-bad")
    assert code == 0 and "left out 2 cell file(s)" in _one_line(err)
    assert len(stdout.strip().splitlines()) == 1 + 4  # header and the two good cells' rows
    code, stdout, err = _run(capsys, "report", out, "--skip-bad")
    assert code == 0 and "Left out: 2 cell files" in (out / "report" / "summary.md").read_text()


# --------------------------------------------------------------------------- case 2


def test_case2_every_byte_flip_in_the_data_pages_is_detected(study):
    _, out = study
    path = _cells(out)[0]
    data = path.read_bytes()
    assert decode_cell(data, path.stem, 2)[0] is not None
    # every byte of the data pages (the column chunks before the footer), and a stride of
    # the footer: each flip is caught by the file's checksum
    offsets = [*range(4, footer_start(data)), *range(footer_start(data), len(data), 7)]
    missed = []
    for offset in offsets:
        flipped = bytearray(data)
        flipped[offset] ^= 0x10
        if decode_cell(bytes(flipped), path.stem, 2)[0] is not None:
            missed.append(offset)
    assert missed == [], f"{len(missed)} of {len(offsets)} flips undetected"


def test_case2_a_flipped_byte_is_recomputed_by_simulate_and_refused_by_results(copy, capsys):
    spec, out = copy
    reference = _results(out)
    path = _cells(out)[1]
    data = bytearray(path.read_bytes())
    data[footer_start(data) // 2] ^= 0xFF  # the middle of the data pages
    path.write_bytes(bytes(data))
    code, _, err = _run(capsys, "results", out)
    assert code == 1 and "checksum mismatch" in _one_line(err) and path.name in err
    code, stdout, _ = _run(capsys, "simulate", spec, "--out", out, "--quiet")
    assert code == 0 and "(1 now, 3 before)" in stdout
    pd.testing.assert_frame_equal(_results(out), reference)


def test_case2_copied_and_duplicated_cell_files_never_add_rows(copy, capsys):
    spec, out = copy
    first, second = _cells(out)[:2]
    shutil.copyfile(first, second)  # a cell file copied over another
    code, _, err = _run(capsys, "results", out)
    assert code == 1 and f"holds cell {first.stem}, not {second.stem}" in _one_line(err)
    # a file holding replicate 0 twice (its checksum is right: a bad writer, not bit rot)
    table = pd.read_parquet(first)
    twice = pd.concat([table[table["replicate"] == 0]] * 2, ignore_index=True)
    info = {"cell_id": first.stem, "replicates": [0, 0], "rows": 2}
    first.write_bytes(encode_cell(twice, info))
    assert "holds replicates [0, 0]" in ResultStore(out).verify_cell(first.stem, 2)[1]
    table = ResultStore(out).load_table(skip_bad=True)
    assert len(table) == 4 and not table.duplicated(["cell_id", "replicate"]).any()
    # simulate recomputes both; the table is whole again, without duplicates
    code, stdout, _ = _run(capsys, "simulate", spec, "--out", out, "--quiet")
    assert code == 0 and "(2 now, 2 before)" in stdout
    table = ResultStore(out).load_table()
    assert len(table) == 8 and not table.duplicated(["cell_id", "replicate"]).any()


def test_case2_write_cell_refuses_duplicate_replicates(tmp_path):
    from simulations.store import CellRecord

    store = ResultStore(tmp_path)
    store.prepare("s", [CellRecord("id0", "a/b/c/n=1", {}, 2)])
    table = pd.DataFrame({"cell_id": ["id0", "id0"], "replicate": [0, 0], "x": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"replicates: must be 0..1, each once"):
        store.write_cell("id0", table)


# --------------------------------------------------------------------------- case 5


def test_case5_a_second_writer_exits_2_naming_the_holder_or_waits(copy, capsys):
    spec, out = copy
    store = ResultStore(out)
    with store.lock():
        code, _, err = _run(capsys, "simulate", spec, "--out", out, "--quiet")
    line = _one_line(err)
    assert code == 2 and f"pid {os.getpid()}" in line and "--wait" in line
    # --wait: blocks until the holder lets go, then finds every cell done
    released = threading.Event()

    def hold():
        with ResultStore(out).lock():
            released.wait(5)
            time.sleep(0.5)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    started = time.monotonic()
    released.set()
    code, stdout, _ = _run(capsys, "simulate", spec, "--out", out, "--quiet", "--wait")
    holder.join()
    assert code == 0 and "(0 now, 4 before)" in stdout
    assert time.monotonic() - started >= 0.4


def test_case5_two_concurrent_simulate_runs_train_each_cell_once(tmp_path):
    spec = _spec_file(tmp_path, steps=50, every=25)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "simulations.cli", "simulate", str(spec), "--out", str(out)]
    runs = [
        subprocess.Popen(
            [*command, "--quiet", "--wait"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    lines = sorted(stdout.strip() for stdout, _ in outputs)
    assert "(0 now, 4 before)" in lines[0] and "(4 now, 0 before)" in lines[1], lines
    cells = json.loads((out / MANIFEST).read_text())["cells"]
    assert [(e["status"], e["attempts"], e["error"]) for e in cells.values()] == [
        ("done", 1, None)
    ] * 4
    table = ResultStore(out).load_table()
    assert len(table) == 8 and not table.duplicated(["cell_id", "replicate"]).any()


# --------------------------------------------------------------------------- case 6


def test_case6_a_corrupt_checkpoint_is_moved_aside_and_the_cell_restarts(tmp_path):
    cell = expand(load_spec(_spec_file(tmp_path, steps=8, every=4)))[0]
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / f"{cell.cell_id}.pt").write_bytes(b"\x00not a checkpoint")
    with pytest.warns(IntegrityWarning, match=r"checkpoint .* could not be used.*moved to"):
        table = run_cell(cell, checkpoint_dir=checkpoints)
    aside = [p.name for p in checkpoints.iterdir()]
    assert len(aside) == 1 and aside[0].startswith(f"{cell.cell_id}.pt.corrupt-")
    fresh = run_cell(cell)
    drop = [c for c in RUN_COLUMNS if c in table]
    pd.testing.assert_frame_equal(table.drop(columns=drop), fresh.drop(columns=drop))


def test_case6_a_corrupt_manifest_is_rebuilt_from_the_verified_cells(copy, capsys):
    spec, out = copy
    reference = _results(out)
    (out / MANIFEST).write_text('{"schema": 1, "cells": ')
    # readers use an index rebuilt from the cells, and say so
    with pytest.warns(IntegrityWarning, match="rebuilt"):
        code, stdout, _ = _run(capsys, "results", out)
    assert code == 0 and len(stdout.strip().splitlines()) == 1 + 8
    # simulate moves it aside, rebuilds it and recomputes nothing
    with pytest.warns(IntegrityWarning, match=r"moved to .*manifest.json.corrupt-"):
        code, stdout, _ = _run(capsys, "simulate", spec, "--out", out, "--quiet")
    assert code == 0 and "(0 now, 4 before)" in stdout
    assert len(list(out.glob("manifest.json.corrupt-*"))) == 1
    pd.testing.assert_frame_equal(_results(out), reference)


# --------------------------------------------------------------------------- case 7


def _diverging_fit(real_fit, failed: int, status: str = "failed"):
    """``fit`` whose report says replicate ``failed`` diverged (or hit ``max_steps``)."""

    def fit(model, x, y, config, **kwargs):
        report = real_fit(model, x, y, config, **kwargs)
        r = report.replicates
        fields = dict(vars(report))
        states = ["fixed"] * r
        states[failed] = status
        fields.update(
            status=tuple(states),
            converged=np.array([s == "converged" for s in states]),
            steps_taken=np.array([report.steps if s != "failed" else 5 for s in states]),
            failure=tuple(
                "non-finite gradient at step 6" if s == "failed" else None for s in states
            ),
        )
        return types.SimpleNamespace(**fields)

    return fit


def test_case7_one_diverged_replicate_keeps_the_others_and_is_counted(
    tmp_path, capsys, monkeypatch
):
    import simulations.train as train

    spec = _spec_file(tmp_path)
    monkeypatch.setattr(train, "fit", _diverging_fit(train.fit, failed=1))
    out = tmp_path / "out"
    summary = run_study(load_spec(spec), out, quiet=True)
    assert summary.ok and "; 4 replicates failed (see ssbnn results)" in summary.line()
    table = ResultStore(out).load_table()
    assert len(table) == 8
    failed = table[table["replicate"] == 1]
    kept = table[table["replicate"] == 0]
    assert (failed["status"] == "failed").all() and (failed["failed_step"] == 6).all()
    assert (failed["failure"] == "non-finite gradient at step 6").all()
    assert failed["dH2_mean"].isna().all() and failed["kept_nodes"].isna().all()
    assert (kept["status"] == "fixed").all() and (kept["dH2_mean"] > 0).all()
    assert (kept["steps"] == 10).all() and (failed["steps"] == 5).all()
    code, stdout, _ = _run(capsys, "results", out)
    assert code == 0
    assert stdout.startswith("4 of 8 replicates failed (diverged; left out of every mean")
    assert "ss-gl/6x4-relu/n=40: 1 of 2: replicate 1 at step 6 (non-finite gradient" in stdout
    code, stdout, _ = _run(capsys, "report", out)
    assert code == 0 and "4 of 8 replicates failed" in stdout
    assert "| 1 (+1 failed) |" in stdout


def test_case7_unconverged_replicates_are_marked(tmp_path, capsys, monkeypatch):
    import simulations.train as train

    spec = _spec_file(tmp_path)
    monkeypatch.setattr(train, "fit", _diverging_fit(train.fit, failed=0, status="max_steps"))
    out = tmp_path / "out"
    assert run_study(load_spec(spec), out, quiet=True).ok
    table = ResultStore(out).load_table()
    assert (table.loc[table["replicate"] == 0, "status"] == "max_steps").all()
    assert table["converged"].eq(False).all()
    code, stdout, _ = _run(capsys, "report", out)
    assert code == 0 and "reached max_steps without converging" in stdout
    assert "| not converged |" in stdout and "| 1 of 2 |" in stdout
    # the demo's printed report marks them the same way
    code, stdout, _ = _run(capsys, "demo", "--quick", "--out", tmp_path / "demo")
    assert code == 0 and "4 of 8 replicates reached max_steps without converging" in stdout
    assert "| not converged |" in stdout and "| 1 of 2 |" in stdout


# --------------------------------------------------------------------------- case 8


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)`` makes the folder read-only for the rest of the test."""
    return lambda folder: make_read_only(folder, monkeypatch)


def test_case8_read_only_study(copy, capsys, read_only):
    spec, out = copy
    shutil.rmtree(out / "report", ignore_errors=True)
    read_only(out)
    try:
        code, _, err = _run(capsys, "simulate", spec, "--out", out, "--quiet")
        assert code == 2 and "out: must be a writable folder" in _one_line(err)
        code, _, err = _run(capsys, "report", out)
        assert code == 2 and "report: must be a folder the report can be written to" in (
            _one_line(err)
        )
        code, stdout, _ = _run(capsys, "results", out)  # reading works
        assert code == 0 and len(stdout.strip().splitlines()) == 1 + 8
    finally:
        make_writable(out)


def test_case8_report_folder_is_a_file_and_unreachable_scheduler(copy, capsys, tmp_path):
    spec, out = copy
    shutil.rmtree(out / "report", ignore_errors=True)
    (out / "report").write_text("not a folder")
    code, _, err = _run(capsys, "report", out)
    assert code == 2 and "(it is a file)" in _one_line(err)
    fresh = tmp_path / "fresh"
    started = time.monotonic()
    code, _, err = _run(
        capsys, "simulate", spec, "--out", fresh, "--scheduler", "tcp://127.0.0.1:1"
    )
    line = _one_line(err)
    assert code == 2 and line.startswith("ssbnn simulate: error: scheduler: must be the address")
    assert time.monotonic() - started < 10 and not fresh.exists()


# --------------------------------------------------------------------------- case 10


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("sig", "status", "flags"),
    [(signal.SIGTERM, 143, ["--workers", "2"]), (signal.SIGINT, 130, [])],
    ids=["sigterm-pool", "sigint-in-process"],
)
def test_case10_signals_stop_workers_keep_cells_and_say_how_to_resume(
    tmp_path, capsys, sig, status, flags
):
    spec = _spec_file(tmp_path, steps=800, every=100)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "simulations.cli", "simulate", str(spec), "--out", str(out)]
    process = subprocess.Popen(
        [*command, "--quiet", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while not _cells(out) and process.poll() is None:
        assert time.monotonic() < deadline, "no cell finished in time"
        time.sleep(0.01)
    workers = _children(process.pid)
    assert len(workers) >= (2 if flags else 0)
    sent = time.monotonic()
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    elapsed = time.monotonic() - sent
    assert process.returncode == status, err
    assert elapsed < 2.0 + 1.0, f"took {elapsed:.1f} s"  # 2 s, plus slack for a loaded CI
    # the workers (and multiprocessing's resource tracker, which sees its parent go) are gone
    while [w for w in workers if _alive(w)] and time.monotonic() - sent < 3.0:
        time.sleep(0.05)
    assert not [w for w in workers if _alive(w)], [
        Path(f"/proc/{w}/cmdline").read_bytes() for w in workers if _alive(w)
    ]
    line = err.strip().splitlines()[-1]
    kept = len(_cells(out))
    assert f"interrupted by {signal.Signals(sig).name}: kept {kept} of 4 cells" in line, err
    assert "resume with: ssbnn simulate" in line and "Traceback" not in err
    assert 1 <= kept < 4
    assert ResultStore(out).load_table().shape[0] == 2 * kept  # every kept cell verifies


# --------------------------------------------------------------------------- case 11


def test_case11_export_paths_and_file_modes(study, tmp_path, capsys):
    _, out = study
    code, _, err = _run(capsys, "results", out, "--csv", "")
    assert code == 2 and "--csv: must be a file name" in _one_line(err)
    code, _, err = _run(capsys, "results", out, "--csv", tmp_path / "x.parquet")
    assert code == 2 and "use --parquet FILE for Parquet" in _one_line(err)
    assert not (tmp_path / "x.parquet").exists()
    code, _, err = _run(capsys, "results", out, "--csv", "/nonexistent/x.csv")
    line = _one_line(err)
    assert code == 2 and "there is no folder /nonexistent" in line and "None" not in line
    # files follow the umask (mkstemp alone would leave them 0600)
    umask = os.umask(0o022)
    try:
        code, _, _ = _run(capsys, "results", out, "--csv", tmp_path / "t.csv")
    finally:
        os.umask(umask)
    assert code == 0 and stat.S_IMODE((tmp_path / "t.csv").stat().st_mode) == 0o644
    for path in [out / MANIFEST, *_cells(out)]:  # written by the fixture under this umask
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_bad_cells_error_names_every_file(tmp_path):
    from simulations.store import BadCell

    error = BadCellsError([BadCell(tmp_path / "a.parquet", "x"), BadCell(tmp_path / "b", "y")])
    assert str(error).startswith("2 cell files do not verify: ") and "\n" not in str(error)
