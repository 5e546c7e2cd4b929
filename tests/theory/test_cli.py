"""``ssbnn rate`` / ``python -m ssbnn_theory rate``: table, JSON, plot, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssbnn_theory.cli import main

from .strategies import RESULT_KEYS

CLI_INVALID_EXAMPLES = 150


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(["rate", *args])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_default_table(capsys):
    code, out, err = run(capsys)
    assert code == 0 and err == ""
    assert "p=100, hidden=16-16, active=4-3, bounds=1.5,1.5,1.5" in out
    for prior in ("ss-ig", "ss-gl", "ss-ghs"):
        assert f"prior {prior}" in out
    for n in ("512", "32768"):
        assert f"\n{n:>10} " in out
    assert "dominant term" in out and "per layer at n = 32768" in out
    assert "sieve entropy" in out and "lambda_2 not too large" in out
    assert "universal constants" in out


def test_json_one_and_several_priors(capsys):
    code, out, _ = run(capsys, "--prior", "ss-gl", "--n", "1e3", "1e4", "--json")
    assert code == 0
    obj = json.loads(out)
    for key in (*RESULT_KEYS, "local_slope"):
        assert key in obj
    assert obj["n"] == [1000.0, 10000.0] and obj["prior"]["prior"] == "ss-gl"
    code, out, _ = run(capsys, "--prior", "all", "--n", "1e3:1e5:3", "--json", "--compare")
    objs = json.loads(out)
    assert [o["prior"]["prior"] for o in objs] == ["ss-ig", "ss-gl", "ss-ghs"]
    assert objs[0]["n"] == [1000.0, 10000.0, 100000.0]
    assert "edge_sparse" in objs[0]["comparison"]
    code, out, _ = run(capsys, "--prior", "ss-gl", "--n", "1e3", "--compare")
    assert code == 0 and "an order without constants, not a bound" in out


def test_flags_override_default_and_toml(capsys, tmp_path):
    path = tmp_path / "arch.toml"
    path.write_text(
        'p = 20\nhidden = [8, 8, 8]\nactive = [2, 2, 1]\nbounds = 2.0\nactivation = "tanh"\n'
    )
    code, out, _ = run(capsys, "--arch", str(path), "--json", "--prior", "ss-ig", "--n", "500")
    assert code == 0
    assert json.loads(out)["architecture"]["hidden"] == [8, 8, 8]
    code, out, _ = run(
        capsys, "--arch", str(path), "--bound", "3", "--json", "--prior", "ss-ig", "--n", "500"
    )
    assert json.loads(out)["architecture"]["bounds"] == [3.0] * 4
    code, out, _ = run(
        capsys,
        "--hidden",
        "32",
        "--active",
        "32",
        "--json",
        "--prior",
        "ss-gl",
        "--n",
        "500",
        "--slab-width",
        "1",
        "--inclusion-prob",
        "0.01",
    )
    obj = json.loads(out)
    assert obj["architecture"]["active"] == [32] and obj["architecture"]["bounds"] == [1.5, 1.5]
    assert obj["inclusion_prob"]["used"] == "user"


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_plot(capsys, tmp_path, suffix, magic):
    path = tmp_path / f"rate{suffix}"
    code, out, _ = run(capsys, "--n", "1e3:1e6:5", "--plot", str(path), "--compare")
    assert code == 0 and path.read_bytes()[:4] == magic and "plot written" in out


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["rate", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--arch",
        "--p",
        "--hidden",
        "--active",
        "--bound",
        "--activation",
        "--outputs",
        "--fan-in",
        "--prior",
        "--sigma0",
        "--kappa",
        "--global-scale",
        "--slab-width",
        "--output-slab",
        "--n",
        "--likelihood",
        "--sigma-e",
        "--kappa-log",
        "--target-eps2",
        "--xi",
        "--inclusion",
        "--inclusion-prob",
        "--c-lambda",
        "--closed-form",
        "--compare",
        "--json",
        "--plot",
    ):
        assert flag in text


_INVALID = {
    "--p": (st.sampled_from(["0", "-3", "abc", "2.5"]), ("--p", "p:")),
    "--hidden": (st.sampled_from(["0", "-1", "x"]), ("--hidden", "hidden[")),
    "--active": (st.sampled_from(["17 1", "0 1", "1 1 1", "1"]), ("--active", "active")),
    "--bound": (st.sampled_from(["-1", "nan", "inf", "1 2", "x"]), ("--bound", "bounds")),
    "--activation": (st.sampled_from(["softmax", "RELU6"]), ("--activation",)),
    "--outputs": (st.sampled_from(["0", "-2"]), ("outputs:",)),
    "--fan-in": (st.sampled_from(["partial"]), ("--fan-in",)),
    "--prior": (st.sampled_from(["ss-xx", "dense", "edge-ss"]), ("--prior",)),
    "--sigma0": (st.sampled_from(["0", "-1", "nan"]), ("sigma_0:", "--sigma0")),
    "--kappa": (st.sampled_from(["0", "inf"]), ("kappa:",)),
    "--global-scale": (st.sampled_from(["-1", "0"]), ("global_scale:",)),
    "--slab-width": (st.sampled_from(["-1", "0", "nan", "x"]), ("slab_width:", "--slab-width")),
    "--n": (st.sampled_from(["1", "0.5", "1e3:1e2:3", "1e3:1e5:1", "a:b:c", "nan", "x"]), ("--n",)),
    "--sigma-e": (st.sampled_from(["0", "-2", "inf"]), ("sigma_e:",)),
    "--kappa-log": (st.sampled_from(["-1", "nan", "11", "1e300"]), ("kappa_log:",)),
    "--xi": (st.sampled_from(["-0.1", "inf"]), ("xi_n:",)),
    "--inclusion-prob": (st.sampled_from(["1.5", "0", "0.5 0.5 0.5"]), ("inclusion:",)),
    "--c-lambda": (st.sampled_from(["-1", "nan"]), ("C_lambda:",)),
    "--plot": (st.sampled_from(["out.svg", "out"]), ("plot:",)),
}


@settings(
    max_examples=CLI_INVALID_EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flag=st.sampled_from(sorted(_INVALID)), data=st.data())
def test_invalid_arguments_exit_2_with_one_line(capsys, flag, data):
    values, names = _INVALID[flag]
    value = data.draw(values)
    args = [flag, *value.split()] if flag != "--fan-in" else [flag, value]
    code, out, err = (
        run(capsys, *args, "--prior", "ss-gl", "--n", "1000")
        if flag not in ("--prior", "--n")
        else run(capsys, *args)
    )
    assert code == 2, (args, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssbnn rate: error: "), err
    assert any(name in lines[0] for name in names), lines[0]
    assert "Traceback" not in err


def test_active_fan_in_with_sigmoid_is_rejected(capsys):
    code, _, err = run(capsys, "--activation", "sigmoid", "--fan-in", "active")
    assert code == 2 and err.startswith("ssbnn rate: error: fan_in: must be 'full'")


def test_module_entry_point():
    ok = subprocess.run(
        [sys.executable, "-m", "ssbnn_theory", "rate", "--n", "1000", "--prior", "ss-gl", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["n"] == [1000.0]
    bad = subprocess.run(
        [sys.executable, "-m", "ssbnn_theory", "rate", "--hidden", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "hidden[1]" in bad.stderr
