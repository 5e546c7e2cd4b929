"""The ``ssbnn`` command: subcommands, one-line errors with exit 2, kill-and-resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from simulations.cli import main
from simulations.execution import Backend
from simulations.schema import RUN_COLUMNS
from simulations.spec import load_spec
from simulations.store import ResultStore
from simulations.study import expand

SPEC = """
[study]
name = "cli"
seed = 3
replicates = 2

[design]
name = "relu_teacher"
p = 8
n_test = 200

[model]
priors = ["ss-gl", "ss-ghs"]
hidden = [6, 4]

[train]
n = [40, 60, 80]
steps = {steps}
batch_size = 20
lr = 0.01
checkpoint_every = 10

[metrics]
draws = 4
"""


def _spec(tmp_path, steps=10, name="study.toml"):
    path = tmp_path / name
    path.write_text(SPEC.format(steps=steps))
    return path


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _error(capsys, *argv):
    """Run a command that must fail on its input: exit 2 and one stderr line."""
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(list(argv)))
    out, err = capsys.readouterr()
    assert info.value.code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _results(folder) -> pd.DataFrame:
    table = ResultStore(folder).load_table()
    table = table.drop(columns=[c for c in RUN_COLUMNS if c in table])
    return table.sort_values(["cell_id", "replicate"]).reset_index(drop=True)


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        (
            "simulate",
            [
                "SPEC",
                "--workers",
                "--dask",
                "--scheduler",
                "--device",
                "--out",
                "--quiet",
                "--fail-fast",
                "--wait",
            ],
        ),
        ("results", ["DIR", "--csv", "--parquet", "--skip-bad"]),
        ("report", ["DIR", "--skip-bad"]),
        ("demo", ["--out", "--quick"]),
        ("rate", ["--help"]),
    ],
)
def test_help_documents_every_flag(capsys, command, flags):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in flags:
        assert flag in text


def test_rate_is_the_theory_command(capsys):
    from ssbnn_theory.cli import main as theory_main

    code, ours, _ = _run(capsys, "rate", "--n", "1000", "4000", "--json")
    assert code == 0
    assert theory_main(["rate", "--n", "1000", "4000", "--json"]) == 0
    theirs = capsys.readouterr().out
    assert json.loads(ours) == json.loads(theirs)


def test_bad_input_exits_2_with_one_line_naming_the_key(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(SPEC.format(steps=10).replace("p = 8", "p = 8\nnosie_sd = 1.0"))
    line = _error(capsys, "simulate", str(bad), "--out", str(tmp_path / "o"))
    assert line.startswith("ssbnn simulate: error: design.nosie_sd: must be a key of [design]")
    assert "did you mean 'noise_sd'?" in line
    line = _error(capsys, "simulate", str(tmp_path / "missing.toml"))
    assert line.startswith("ssbnn simulate: error: spec: must be an existing TOML file")
    spec = str(_spec(tmp_path))
    assert "--workers" in _error(capsys, "simulate", spec, "--workers", "0")
    assert "not allowed with" in _error(capsys, "simulate", spec, "--workers", "2", "--dask")
    assert "--device" in _error(capsys, "simulate", spec, "--device", "tpu")
    line = _error(capsys, "results", str(tmp_path))
    assert line.startswith("ssbnn results: error: DIR: must be a study output folder")
    assert "report" in _error(capsys, "report", str(tmp_path))
    assert "invalid choice" in _error(capsys, "simulat")
    line = _error(capsys, "simulate", spec, "--out", "/proc/ssbnn-no-such-place")
    assert line.startswith("ssbnn simulate: error: out: must be a folder that can be created")
    import torch

    if not torch.cuda.is_available():
        line = _error(capsys, "simulate", spec, "--device", "cuda", "--out", str(tmp_path / "c"))
        assert "device: must be 'cpu' (no CUDA device is available)" in line


def test_backend_flags_choose_the_execution(tmp_path, capsys, monkeypatch):
    import simulations.study as study

    seen = []

    def fake_run_study(spec, out, *, execution, device, quiet, wait):
        seen.append((execution.backend, execution.workers, execution.scheduler, device, quiet))
        return study.StudySummary(spec.name, out, 1, 0, 1, (), 0, 0.0)

    monkeypatch.setattr(study, "run_study", fake_run_study)
    spec = str(_spec(tmp_path))
    for flags in ([], ["--workers", "3"], ["--dask"], ["--scheduler", "tcp://h:8786", "--quiet"]):
        assert _run(capsys, "simulate", spec, *flags)[0] == 0
    assert seen == [
        (Backend.IN_PROCESS, None, None, "cpu", False),
        (Backend.POOL, 3, None, "cpu", False),
        (Backend.DASK, None, None, "cpu", False),
        (Backend.DASK, None, "tcp://h:8786", "cpu", True),
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The test study's spec and the output folder of one uninterrupted ``ssbnn simulate``."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    spec = _spec(folder)
    out = folder / "out"
    assert main(["simulate", str(spec), "--out", str(out), "--quiet"]) == 0
    return spec, out


def test_simulate_results_and_report(uninterrupted, tmp_path, capsys):
    spec, out = uninterrupted
    assert len(list((out / "cells").glob("*.parquet"))) == 6
    code, stdout, _ = _run(
        capsys,
        "results",
        str(out),
        "--csv",
        str(tmp_path / "t.csv"),
        "--parquet",
        str(tmp_path / "t.parquet"),
    )
    assert code == 0
    assert stdout.splitlines()[0].split()[:5] == ["design", "prior", "hidden", "n", "replicate"]
    assert len(stdout.strip().splitlines()) == 1 + 12
    table = ResultStore(out).load_table()
    exported = pd.read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(exported, table)
    csv = pd.read_csv(tmp_path / "t.csv")
    assert [json.loads(v) for v in csv["hidden"]] == [[6, 4]] * 12
    assert len(csv.columns) == len(table.columns)
    line = _error(capsys, "results", str(out), "--csv", str(tmp_path / "no" / "such" / "t.csv"))
    assert line.startswith("ssbnn results: error: --csv: must be a file in an existing folder")
    code, stdout, _ = _run(capsys, "report", str(out))
    assert code == 0 and "Log-log slopes against n" in stdout
    assert (out / "report" / "summary.md").is_file()
    assert (out / "report" / "contraction_relu_teacher_6x4-relu.png").is_file()
    # the default output folder is ./ssbnn-results/<name>
    assert load_spec(spec).output is None


def test_demo_quick(tmp_path, capsys):
    code, stdout, err = _run(capsys, "demo", "--quick", "--out", str(tmp_path / "demo"))
    assert code == 0, err
    for heading in ("Empirical contraction beside theory", "Log-log slopes", "Node recovery"):
        assert heading in stdout
    assert "| ss-gl | 8x8-relu | 64 |" in stdout and "C eps_n^2" in stdout
    assert (tmp_path / "demo" / "report" / "contraction_relu_teacher_8x8-relu.png").is_file()


def test_sigkill_mid_study_then_resume_equals_an_uninterrupted_run(uninterrupted, tmp_path, capsys):
    spec, clean = uninterrupted
    total = len(expand(load_spec(spec)))
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "simulations.cli", "simulate", str(spec), "--out", str(killed)]
    log = tmp_path / "killed.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([*command, "--quiet"], stdout=subprocess.DEVNULL, stderr=stderr)
        cells = killed / "cells"
        deadline = time.monotonic() + 240
        # poll for the first finished cell (not a hidden temporary file being written)
        while not list(cells.glob("[!.]*.parquet")) and process.poll() is None:
            assert time.monotonic() < deadline, "no cell finished in time"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, log.read_text()
    finished = len(list(cells.glob("[!.]*.parquet")))
    assert 1 <= finished < total, f"killed after {finished} of {total} cells"
    code, stdout, _ = _run(capsys, "simulate", str(spec), "--out", str(killed), "--quiet")
    assert code == 0 and f"({total - finished} now, {finished} before)" in stdout
    assert not list(cells.glob(".tmp-*")) and not (killed / "checkpoints").exists()
    resumed, reference = _results(killed), _results(clean)
    assert len(resumed) == total * 2 and not resumed.duplicated(["cell_id", "replicate"]).any()
    pd.testing.assert_frame_equal(resumed, reference)


def test_demo_spec_is_the_promised_study():
    from simulations.demo import demo_execution, demo_spec

    spec = demo_spec()
    assert spec.design.name == "relu_teacher" and spec.replicates == 4
    assert [p.label for p in spec.priors] == ["ss-gl", "ss-ghs"]
    assert spec.n == (2048, 8192)  # README: n = 2048 and 8192
    assert spec.train_config().restarts == 3  # README: three starts per replicate
    assert len(expand(spec)) == 4
    quick = demo_spec(quick=True)
    assert quick.design.name == "relu_teacher" and len(expand(quick)) == 4
    assert demo_execution(quick=True).backend is Backend.IN_PROCESS
