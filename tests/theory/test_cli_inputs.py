"""``ssbnn rate`` robustness: --arch beside other flags, hostile numbers, grid limits, fuzzing.

The rule for architecture flags (README.md, "``ssbnn rate``", and ``ssbnn rate --help``):
the base is ``--arch FILE`` or the built-in default; each flag replaces exactly the field it
names; when ``--hidden`` changes the depth, ``--active`` is required, and ``--bound`` too
unless the base's bounds are all equal. Every bad input is one line on stderr and exit 2;
JSON output never holds NaN or Infinity.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssbnn_theory.cli import MAX_N_POINTS, main


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(["rate", *args])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> float:
        raise AssertionError(f"non-finite number {constant} in JSON")

    return json.loads(text, parse_constant=refuse)


def _one_line_error(code: int, err: str, field: str | None = None) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssbnn rate: error: "), err
    assert "Traceback" not in err
    if field is not None:
        assert field in lines[0], lines[0]


def test_arch_file_and_flags_combine_field_by_field(capsys, tmp_path):
    path = tmp_path / "net.toml"
    path.write_text("p = 20\nhidden = [8, 8]\nactive = [2, 1]\nbounds = [2.0, 1.0, 0.5]\n")
    base = ["--arch", str(path), "--prior", "ss-ig", "--n", "500", "--json"]
    # same depth: the file's active and bounds stay
    code, out, err = run(capsys, *base, "--hidden", "32", "32")
    arch = _strict_json(out)["architecture"]
    assert code == 0 and arch["hidden"] == [32, 32] and arch["active"] == [2, 1]
    assert arch["bounds"] == [2.0, 1.0, 0.5] and arch["p"] == 20
    # each flag replaces its field only
    code, out, _ = run(capsys, *base, "--active", "3", "3", "--p", "7")
    arch = _strict_json(out)["architecture"]
    assert arch["active"] == [3, 3] and arch["p"] == 7 and arch["hidden"] == [8, 8]
    # another depth: the file's active cannot apply, and its bounds differ between layers
    code, _, err = run(capsys, *base, "--hidden", "8")
    _one_line_error(code, err, "active:")
    code, _, err = run(capsys, *base, "--hidden", "8", "--active", "2")
    _one_line_error(code, err, "bound:")
    code, out, _ = run(capsys, *base, "--hidden", "8", "--active", "2", "--bound", "1.5")
    arch = _strict_json(out)["architecture"]
    assert code == 0 and arch["hidden"] == [8] and arch["bounds"] == [1.5, 1.5]
    # the default architecture follows the same rule (its bounds are all 1.5)
    code, out, _ = run(capsys, "--hidden", "32", "32", "--json", "--prior", "ss-ig", "--n", "500")
    arch = _strict_json(out)["architecture"]
    assert arch["active"] == [4, 3] and arch["bounds"] == [1.5, 1.5, 1.5]
    code, out, _ = run(
        capsys, "--hidden", "9", "--active", "2", "--json", "--prior", "ss-ig", "--n", "500"
    )
    assert _strict_json(out)["architecture"]["bounds"] == [1.5, 1.5]


def test_arch_file_with_top_level_keys_and_a_table_is_refused(capsys, tmp_path):
    path = tmp_path / "both.toml"
    path.write_text("p = 50\n[architecture]\np = 20\nhidden = [8]\n")
    code, _, err = run(capsys, "--arch", str(path))
    _one_line_error(code, err, "arch:")
    assert "not both" in err and "p" in err
    table = tmp_path / "table.toml"
    table.write_text("[architecture]\np = 20\nhidden = [8]\nactive = [3]\n")
    code, out, _ = run(capsys, "--arch", str(table), "--json", "--prior", "ss-ig", "--n", "500")
    assert code == 0 and _strict_json(out)["architecture"]["active"] == [3]


def test_arch_file_of_random_bytes(capsys, tmp_path):
    path = tmp_path / "noise.toml"
    path.write_bytes(os.urandom(512) + b"\xff\xfe")
    code, _, err = run(capsys, "--arch", str(path))
    _one_line_error(code, err, "arch:")


@pytest.mark.parametrize(
    "args, field",
    [
        (["--p", "1e26"], "--p"),
        (["--p", "1" + "0" * 41], "p:"),
        (["--sigma0", "1e300"], "sigma_0:"),
        (["--json", "--bound", "1e300"], "bounds"),
        (["--json", "--sigma0", "1e-300"], "sigma_0:"),
        (["--json", "--kappa", "1e-300"], "kappa:"),
        (["--json", "--kappa-log", "1e300"], "kappa_log:"),
        (["--global-scale", "1e300"], "global_scale:"),
        (["--slab-width", "1e-300"], "slab_width:"),
        (["--sigma-e", "1e-300"], "sigma_e:"),
        (["--xi", "1e300"], "xi_n:"),
        (["--n", "1e31"], "--n"),
        (["--hidden", "2" + "0" * 41], "hidden[1]:"),
    ],
)
def test_hostile_numbers_are_one_line(capsys, args, field):
    code, out, err = run(capsys, *args, "--prior", "ss-gl")
    _one_line_error(code, err, field)
    assert out == ""


def test_n_barely_above_one_gives_strict_json(capsys):
    code, out, err = run(capsys, "--json", "--n", "1.0000001", "--prior", "ss-gl")
    assert code == 0 and err == ""
    obj = _strict_json(out)
    assert obj["local_slope"] == [None] and "n <= 1.02" in obj["local_slope_note"]
    assert obj["eps2"][0] > 0
    code, out, _ = run(capsys, "--n", "1.0000001", "--prior", "ss-gl")
    assert code == 0 and not re.search(r"\b(nan|inf)\b", out) and "1.0000001" in out


def test_grid_size_is_limited(capsys):
    code, _, err = run(capsys, "--n", "1e3:1e6:10000000")
    _one_line_error(code, err, str(MAX_N_POINTS))
    code, _, err = run(capsys, "--n", "1e3:1e6:1500", "2e6:1e9:1500")
    _one_line_error(code, err, "n:")
    code, out, _ = run(capsys, "--n", f"1e3:1e9:{MAX_N_POINTS}", "--prior", "ss-ig", "--json")
    assert code == 0 and len(_strict_json(out)["n"]) <= MAX_N_POINTS


_NUMERIC_FLAGS = (
    "--sigma0",
    "--kappa",
    "--global-scale",
    "--slab-width",
    "--sigma-e",
    "--kappa-log",
    "--xi",
    "--c-lambda",
    "--bound",
    "--target-eps2",
    "--n",
    "--p",
    "--outputs",
)
_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e-300", "1e300", "1e308", "-0", "0", "1e-8", "1e8", "none", "1.0000001"]),
    st.integers(-(10**30), 10**30).map(str),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pairs=st.lists(st.tuples(st.sampled_from(_NUMERIC_FLAGS), _NUMBERS), min_size=1, max_size=3),
    likelihood=st.sampled_from(["gaussian", "bernoulli", "categorical"]),
)
def test_fuzzed_numbers_never_trace_back_or_emit_non_finite_json(capsys, pairs, likelihood):
    args = ["--json", "--prior", "ss-ig", "--likelihood", likelihood]
    for flag, value in pairs:
        args += [flag, value]
    code, out, err = run(capsys, *args)
    assert "Traceback" not in err
    if code == 0:
        obj = _strict_json(out)
        assert obj["likelihood"] == likelihood
    else:
        _one_line_error(code, err)
