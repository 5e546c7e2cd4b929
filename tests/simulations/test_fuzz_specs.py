"""Fuzz: malformed study specs and argument lists of ``ssbnn simulate``, ``results``, ``report``.

Hypothesis builds specs that are wrong in one place (a value of the wrong type, out of range,
NaN or infinite, a number too large for a float, a quoted boolean, a table or a list where a
scalar belongs, an unknown key, a missing key) from a small valid study, writes them as TOML
and runs ``ssbnn simulate`` on them in this process. Every one must exit 2 with exactly one
line on stderr that names the key path of the fault, no traceback, and nothing written. A
second strategy builds argument lists (flags, bad values, paths that are not specs or study
folders); every one must exit 2 with one line. A handful of cases run through a subprocess
too, where an uncaught exception would print a real traceback.

Each test prints how many cases it tried (shown with ``pytest -s``; the line goes to the
terminal, so CI logs carry it).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulations.cli import main

# --------------------------------------------------------------------------- a valid study

VALID = {
    "study": {"name": "fuzz", "seed": 3, "replicates": 2, "description": "fuzz"},
    "design": {"name": "cubic_small_n", "noise_sd": 3.0, "n_test": 50},
    "model": {
        "priors": ["ss-gl", {"name": "ss-ghs", "slab_width": 2.0}],
        "hidden": [4, 3],
        "activation": "relu",
        "sigma_e": "known",
        "sigma_0": 1.0,
        "input_spike": False,
    },
    "train": {
        "n": [20, 40],
        "steps": 5,
        "batch_size": 10,
        "lr": 0.01,
        "optimizer": "adam",
        "betas": [0.9, 0.999],
        "temperature": {"start": 0.5, "end": 0.5, "steps": 0, "annealing": "constant"},
    },
    "metrics": {"draws": 3, "kappa_log": 1.0},
}


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes, without surrogate pairs, and DEL escaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(value)


def to_toml(data: dict) -> str:
    """A spec mapping as TOML: scalars at the top, then one ``[table]`` per table."""
    lines = [
        f"{_toml_string(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)
    ]
    for section, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{_toml_string(section)}]")
            lines += [f"{_toml_string(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- wrong values


def _text(**kwargs) -> st.SearchStrategy[str]:
    """Text TOML can hold (no lone surrogates)."""
    return st.text(alphabet=st.characters(blacklist_categories=("Cs",)), **kwargs)


_TABLE = st.dictionaries(
    st.sampled_from(["a", "start", "name", "x"]), st.integers(0, 3), max_size=2
)
_DATE = st.sampled_from(
    [datetime.date(2024, 1, 2), datetime.time(7, 30), datetime.datetime(2024, 1, 2, 3, 4, 5)]
)
_HUGE = st.integers(20, 400).map(lambda k: 10**k)
_OVERFLOW = st.integers(309, 400).map(lambda k: 10**k)  # too large for a float
_NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])
_QUOTED_NUMBER = st.one_of(st.integers(-5, 50), st.floats(0.1, 9.0)).map(str)


def _not_an_int(low: int, high: int) -> st.SearchStrategy:
    """Values that are not an integer in [low, high]."""
    return st.one_of(
        _QUOTED_NUMBER,
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        _HUGE.map(lambda h: h + high),
        st.integers(max_value=low - 1, min_value=low - 10**6),
        st.lists(st.integers(low, low + 3), min_size=1, max_size=2),
        _TABLE,
        _DATE,
    )


def _not_a_number(low: float, high: float, *, open_low: bool = False) -> st.SearchStrategy:
    """Values that are not a finite number in [low, high] (or (low, high] with open_low)."""
    outside = []
    if math.isfinite(low):
        outside.append(st.floats(max_value=low, exclude_max=not open_low, allow_nan=False))
    if math.isfinite(high):
        outside.append(st.floats(min_value=high, exclude_min=True, allow_nan=False))
    return st.one_of(
        _QUOTED_NUMBER,
        st.booleans(),
        _NONFINITE,
        _OVERFLOW,
        *outside,
        st.lists(st.floats(0.1, 0.9), min_size=1, max_size=2),
        _TABLE,
        _DATE,
    )


_NOT_A_BOOL = st.one_of(
    st.sampled_from(["false", "true", "False", "True", "no", "yes", "0", "1", ""]),
    st.integers(-1, 2),
    st.floats(0, 1),
    _TABLE,
    st.lists(st.booleans(), min_size=1, max_size=2),
)


def _not_a_word(words: list[str]) -> st.SearchStrategy:
    return st.one_of(
        _text(max_size=12).filter(lambda t: t.strip().lower() not in words),
        st.integers(),
        st.booleans(),
        st.sampled_from(words).map(lambda w: [w, w]),  # a list, or repeated words
        _TABLE,
        _NONFINITE,
    )


_POSITIVE = _not_a_number(0.0, math.inf, open_low=True)
_PROBABILITY = st.one_of(
    _not_a_number(0.0, 1.0, open_low=True).filter(lambda v: v != 1.0 or isinstance(v, bool)),
    st.just(1.0),
    st.just(1),
    st.just(0),
)

# (key path, strategy of values that are wrong there); a key path of a prior's table option
# is written model.priors[1].<option>.
WRONG: dict[tuple[str, ...], st.SearchStrategy] = {
    ("study", "name"): st.one_of(
        _text(max_size=70).filter(
            lambda t: not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", t)
        ),
        st.integers(),
        st.booleans(),
        _TABLE,
    ),
    ("study", "seed"): _not_an_int(0, 2**63 - 1),
    ("study", "replicates"): _not_an_int(1, 10_000),
    ("study", "description"): st.one_of(
        st.integers(), st.booleans(), _TABLE, st.lists(_text(max_size=3), min_size=1)
    ),
    ("study", "output"): st.one_of(st.just(""), st.integers(), st.booleans(), _TABLE),
    ("design", "name"): _not_a_word(
        [
            "relu_teacher",
            "bai_sparse_function",
            "sun_regression",
            "sun_classification",
            "cubic_small_n",
            "teacher",
            "dataset",
        ]
    ),
    ("design", "n_test"): _not_an_int(1, 10_000_000),
    ("design", "noise_sd"): _POSITIVE,
    ("model", "priors"): st.one_of(
        st.just([]),
        st.integers(),
        st.booleans(),
        st.lists(st.sampled_from(["ss-gll", "gl", ""]), min_size=1, max_size=2),
        st.just([{"nam": "ss-gl"}]),
        st.just(["ss-gl", "ss-gl"]),
        st.just([{"name": 5}]),
    ),
    ("model", "hidden"): st.one_of(
        st.just([]),
        st.lists(
            _not_an_int(1, 100_000).filter(lambda v: not isinstance(v, list)),
            min_size=1,
            max_size=2,
        ),
        st.just([[4], [4]]),
        _text(max_size=3),
        _NONFINITE,
    ),
    ("model", "activation"): _not_a_word(["relu", "tanh", "sigmoid", "silu"]),
    ("model", "sigma_e"): st.one_of(
        _text(max_size=8).filter(lambda t: t not in ("known", "learned")),
        st.booleans(),
        _NONFINITE,
        st.floats(max_value=0.0),
        _OVERFLOW,
        _TABLE,
        st.lists(st.floats(0.1, 2), min_size=1, max_size=2),
    ),
    ("model", "sigma_0"): _POSITIVE,
    ("model", "kappa_rate"): _POSITIVE,
    ("model", "global_scale"): _POSITIVE,
    ("model", "temperature"): _POSITIVE,
    ("model", "input_spike"): _NOT_A_BOOL,
    ("model", "straight_through"): _NOT_A_BOOL,
    ("model", "inclusion_init"): _PROBABILITY,
    ("model", "input_inclusion"): _PROBABILITY,
    ("model", "rho_init"): st.one_of(
        _not_a_number(-50.0, 20.0),
        st.sampled_from(["", "autp", "ref", "reference-6"]),
        st.lists(st.floats(-50.0, 20.0), min_size=0, max_size=2),  # [4, 3]: 3 weight layers
        st.lists(_not_a_number(-50.0, 20.0), min_size=3, max_size=3),
    ),
    ("model", "prior_inclusion"): st.one_of(
        _PROBABILITY.filter(lambda v: not isinstance(v, str | list)),
        st.sampled_from(["", "ref", "theroy", "0.5"]),
        st.just([]),
        st.lists(st.floats(0.1, 0.9), min_size=3, max_size=3),
    ),
    ("model", "priors[1]", "slab_width"): _POSITIVE,
    ("model", "priors[1]", "straight_through"): _NOT_A_BOOL,
    ("train", "n"): st.one_of(
        st.just([]),
        st.lists(
            _not_an_int(2, 10**9).filter(lambda v: not isinstance(v, list)), min_size=1, max_size=2
        ),
        st.just([40, 20]),
        st.just([20, 20]),
        _text(max_size=3),
    ),
    ("train", "steps"): st.one_of(
        _not_an_int(1, 10**9),
        st.sampled_from(["Auto", "AUTO", "auto ", "", "convergence"]),
    ),
    ("train", "max_steps"): st.one_of(_not_an_int(1, 10**9), st.integers(1, 10**6)),  # steps = 5
    ("train", "batch_size"): st.one_of(_not_an_int(1, 10**9), st.integers(21, 10**6)),  # n[0] = 20
    ("train", "lr"): _POSITIVE,
    ("train", "optimizer"): _not_a_word(["adam", "sgd"]),
    ("train", "betas"): st.one_of(
        st.floats(0, 0.9),
        st.lists(st.floats(0, 0.99), max_size=1),
        st.lists(st.floats(0, 0.99), min_size=3, max_size=4),
        st.tuples(st.floats(0, 0.9), _not_a_number(0.0, 1.0)).map(list),
        _TABLE,
    ),
    ("train", "grad_clip"): _POSITIVE,
    ("train", "kl_warmup_steps"): _not_an_int(0, 10**9),
    ("train", "finetune_steps"): _not_an_int(0, 10**9),
    ("train", "checkpoint_every"): _not_an_int(1, 10**9),
    ("train", "log_every"): _not_an_int(1, 10**9),
    ("train", "temperature"): st.one_of(
        st.floats(0.1, 1),
        st.booleans(),
        _text(max_size=3),
        st.lists(st.floats(0.1, 1), min_size=1, max_size=2),
    ),
    ("train", "temperature", "start"): _POSITIVE,
    ("train", "temperature", "end"): st.one_of(
        _POSITIVE, st.floats(0.01, 0.4)
    ),  # annealing = constant
    ("train", "temperature", "steps"): _not_an_int(0, 10**9),
    ("train", "temperature", "annealing"): _not_a_word(["constant", "linear", "exponential"]),
    ("train", "logit_lr"): _POSITIVE,
    ("train", "indicator_pass"): _NOT_A_BOOL,
    ("train", "compile"): _NOT_A_BOOL,
    ("train", "convergence"): st.one_of(st.integers(), st.booleans(), _text(max_size=3)),
    ("train", "convergence", "patience"): _not_an_int(1, 10**9),
    ("train", "convergence", "tolerance"): _not_a_number(0.0, math.inf),
    ("train", "convergence", "check_every"): st.one_of(_QUOTED_NUMBER, st.floats(), _TABLE),
    ("metrics", "draws"): _not_an_int(1, 100_000),
    ("metrics", "kappa_log"): _not_a_number(0.0, 10.0),
}

# Tables an unknown key can be added to: (key path of the table, its allowed keys).
TABLES = {
    (): {"study", "design", "model", "train", "metrics"},
    ("study",): {"name", "seed", "replicates", "output", "description"},
    ("design",): {"name", "n_test", "noise_sd", "sigma_e"},
    ("model",): set(),  # filled below: ModelConfig options and the study keys
    ("model", "priors[1]"): set(),
    ("train",): set(),
    ("train", "temperature"): {"start", "end", "steps", "annealing"},
    ("metrics",): {"draws", "kappa_log"},
}
REQUIRED = [
    ("study",),
    ("design",),
    ("model",),
    ("train",),
    ("study", "name"),
    ("design", "name"),
    ("model", "priors"),
    ("model", "hidden"),
    ("train", "n"),
]


def _fill_tables() -> None:
    from simulations.spec import MODEL_OPTIONS, TRAIN_OPTIONS

    TABLES[("model",)] = {"priors", "hidden", "activation", "sigma_e", *MODEL_OPTIONS}
    TABLES[("model", "priors[1]")] = {"name", *MODEL_OPTIONS}
    TABLES[("train",)] = {"n", *TRAIN_OPTIONS}


_fill_tables()


def _table_at(spec: dict, path: tuple[str, ...]) -> dict:
    table = spec
    for part in path:
        table = table["priors"][1] if part == "priors[1]" else table[part]
    return table


def _shown(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else repr(key)


@st.composite
def malformed_specs(draw) -> tuple[dict, str]:
    """A spec wrong in one place, and the key path the error must name."""
    spec = copy.deepcopy(VALID)
    kind = draw(st.sampled_from(["value"] * 6 + ["unknown key", "missing key"]))
    if kind == "value":
        path = draw(st.sampled_from(sorted(WRONG)))
        value = draw(WRONG[path])
        if path[:2] == ("train", "convergence"):  # a rule only goes with steps = "auto"
            spec["train"]["steps"] = "auto"
            if len(path) == 3:
                spec["train"]["convergence"] = {"patience": 5}
        if path[0] == "model" and path[1] == "priors[1]":
            _table_at(spec, path[:2])[path[2]] = value
        else:
            _table_at(spec, path[:-1])[path[-1]] = value
        return spec, ".".join(path)
    if kind == "unknown key":
        path = draw(st.sampled_from(sorted(TABLES)))
        key = draw(
            _text(min_size=1, max_size=12).filter(
                lambda k: k not in TABLES[path] and k not in ("noise_sd",)
            )
        )
        table = _table_at(spec, path)
        table[key] = draw(st.one_of(st.integers(0, 9), _text(max_size=3), _TABLE))
        return spec, ".".join([*path, _shown(key)])
    path = draw(st.sampled_from(REQUIRED))
    del _table_at(spec, path[:-1])[path[-1]]
    return spec, ".".join(path)


# Designs with parameters of their own: (base [design] table, changes to the rest of the spec,
# {parameter: wrong values}). The wrong values fail the parameter's own check, before any
# teacher is drawn.
_NUMBERS = st.lists(st.floats(-2, 2), min_size=2, max_size=2)
_BAD_ROW = st.one_of(
    st.lists(_QUOTED_NUMBER, min_size=2, max_size=2),
    st.just([1.0, "2"]),
    st.just([1.0]),  # ragged
    st.just([1.0, math.nan]),
    st.just([math.inf, 1.0]),
    st.just([10**400, 1.0]),
    st.just([{"a": 1}, 1.0]),
    st.just([[1.0], [2.0]]),
)
DESIGNS = {
    "relu_teacher": (
        {"name": "relu_teacher", "p": 20, "noise_sd": 1.0},
        {},
        {
            "p": _not_an_int(5, 100_000),
            "relevant": _not_an_int(1, 100),
            "active": st.one_of(
                st.lists(
                    _not_an_int(1, 100).filter(lambda v: not isinstance(v, list)),
                    min_size=1,
                    max_size=2,
                ).map(lambda bad: [*bad, 3][-2:] if len(bad) == 1 else bad),
                st.just([]),
                st.integers(1, 4),
                _TABLE,
            ),
            "hidden": st.one_of(
                st.lists(
                    _not_an_int(1, 1000).filter(lambda v: not isinstance(v, list)),
                    min_size=2,
                    max_size=2,
                ),
                st.just([8]),
                st.just([8, 8, 8]),
                st.integers(4, 8),
            ),
        },
    ),
    "teacher": (
        {
            "name": "teacher",
            "weights": {
                "W1": [[1.0, -1.0], [0.5, 2.0]],
                "b1": [0.1, 0.0],
                "W2": [[1.0, 1.0]],
                "b2": [0.0],
            },
        },
        {},
        {
            "weights.W1": st.one_of(
                _BAD_ROW.map(lambda row: [row, [0.5, 2.0]]),
                st.just([]),
                st.just([[]]),
                st.just(1.0),
                _TABLE,
            ),
            "weights.b1": st.one_of(
                _BAD_ROW.filter(lambda row: not isinstance(row[0], list)),
                st.just([0.0]),
                st.just([[0.0, 0.0]]),
            ),
            "weights.W2": st.one_of(
                _BAD_ROW.map(lambda row: [row]), st.just([[1.0]]), st.just([[0.0, 0.0]])
            ),
        },
    ),
    "dataset": (
        {
            "name": "dataset",
            "x": [[float(i), float(i % 3)] for i in range(8)],
            "y": [float(i) for i in range(8)],
        },
        {"model": {"sigma_e": "learned"}, "train": {"n": [2, 4], "batch_size": 2}},
        {
            "x": st.tuples(st.integers(0, 7), _BAD_ROW).map(
                lambda c: [[float(i), 1.0] if i != c[0] else c[1] for i in range(8)]
            ),
            "y": st.one_of(
                st.tuples(
                    st.integers(0, 7),
                    st.sampled_from(["1", math.nan, -math.inf, {"a": 1}, 10**400]),
                ).map(lambda c: [float(i) if i != c[0] else c[1] for i in range(8)]),
                st.just([1.0, 2.0]),  # fewer rows than x
            ),
        },
    ),
}


def design_spec(name: str) -> dict:
    """VALID with the design ``name`` (and the changes it needs)."""
    table, changes, _ = DESIGNS[name]
    spec = copy.deepcopy(VALID)
    spec["design"] = copy.deepcopy(table)
    for section, values in changes.items():
        spec[section].update(values)
    return spec


@st.composite
def malformed_designs(draw) -> tuple[dict, str]:
    """A spec whose design has one wrong parameter, and the key path the error must name."""
    name = draw(st.sampled_from(sorted(DESIGNS)))
    spec = design_spec(name)
    key = draw(st.sampled_from(sorted(DESIGNS[name][2])))
    value = draw(DESIGNS[name][2][key])
    table = spec["design"]
    *parents, last = key.split(".")
    for part in parents:
        table = table[part]
    table[last] = value
    if value == [[0.0, 0.0]] and key == "weights.W2":  # no active node: the teacher as a whole
        return spec, "design.weights"
    return spec, f"design.{key}"


# --------------------------------------------------------------------------- running ssbnn


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``ssbnn ARGV`` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_one_line_exit_2(code: int, out: str, err: str, command: str) -> str:
    lines = err.splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and not out, (out, err)
    assert lines[0].startswith(f"ssbnn {command}: error: ") or lines[0].startswith(
        "ssbnn: error: "
    ), err
    return lines[0]


def _report_count(capsys, what: str, count: int) -> None:
    with capsys.disabled():
        print(f"\n{Path(__file__).name}: {count} {what} tried")


SPEC_EXAMPLES = 1200
ARGV_EXAMPLES = 600
_FUZZ = settings(
    max_examples=SPEC_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_malformed_specs_exit_2_with_one_line_naming_the_key(capsys):
    tried = 0
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        spec_file, out = root / "spec.toml", root / "out"

        @_FUZZ
        @given(case=st.one_of(malformed_specs(), malformed_specs(), malformed_designs()))
        def check(case):
            nonlocal tried
            spec, key = case
            tried += 1
            shutil.rmtree(out, ignore_errors=True)  # a failed example may have run a study
            spec_file.write_text(to_toml(spec), encoding="utf-8")
            code, stdout, stderr = run_cli(
                ["simulate", str(spec_file), "--out", str(out), "--quiet"]
            )
            line = assert_one_line_exit_2(code, stdout, stderr, "simulate")
            message = line.removeprefix("ssbnn simulate: error: ")
            assert message.startswith(key), (key, line)
            assert "(got None)" not in message and "or None" not in message, line
            assert "TemperatureSchedule" not in message, line
            assert not out.exists(), line

        check()
    _report_count(capsys, "malformed specs", tried)
    assert tried == SPEC_EXAMPLES


def test_the_valid_fuzz_base_spec_is_valid(tmp_path):
    from simulations.spec import load_spec

    (tmp_path / "spec.toml").write_text(to_toml(VALID))
    spec = load_spec(tmp_path / "spec.toml")
    assert [p.label for p in spec.priors] == ["ss-gl", "ss-ghs(slab_width=2)"]
    for name in DESIGNS:
        (tmp_path / f"{name}.toml").write_text(to_toml(design_spec(name)))
        assert load_spec(tmp_path / f"{name}.toml").design.name == name


# --------------------------------------------------------------------------- argument lists

_FLAG_VALUES = {
    "simulate": {
        "--workers": st.one_of(st.sampled_from(["0", "-1", "1.5", "two", "", "1e3"]), st.just("2")),
        "--device": st.sampled_from(["tpu", "", "CUDA", "cpu", "gpu"]),
        "--out": st.sampled_from(["OUT", "FILE", ""]),
        "--scheduler": st.sampled_from(["tcp://127.0.0.1:1", "", "nonsense"]),
    },
    "results": {
        "--csv": st.sampled_from(["", "OUT/x.csv", "/nonexistent/x.csv", "x.parquet"]),
        "--parquet": st.sampled_from(["", "OUT/x.parquet", "/nonexistent/x.parquet"]),
    },
    "report": {},
}
_SWITCHES = {
    "simulate": ["--dask", "--quiet", "--fail-fast"],
    "results": ["--skip-bad"],
    "report": ["--skip-bad"],
}
_JUNK_FLAGS = st.sampled_from(
    ["--bogus", "-x", "--workers=", "--out=", "--csv", "--", "-", "--n", "1e3"]
)
_SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=10,
).filter(lambda t: not t.startswith("-"))


@st.composite
def argument_lists(draw) -> tuple[str, list[str]]:
    """``ssbnn COMMAND ...`` whose positional argument is never a valid spec or study folder."""
    command = draw(st.sampled_from(["simulate", "results", "report"]))
    positional = draw(
        st.sampled_from(["MISSING", "EMPTY_DIR", "FILE", "BAD_TOML", "BAD_SPEC", "NONE", "TEXT"])
    )
    argv = [command]
    if positional == "TEXT":
        argv.append(draw(_SAFE_TEXT))
    elif positional != "NONE":
        argv.append(positional)
    choices = [
        st.sampled_from(_SWITCHES[command]).map(lambda s: [s]),
        _JUNK_FLAGS.map(lambda s: [s]),
        _SAFE_TEXT.map(lambda s: [s]),
    ]
    if _FLAG_VALUES[command]:
        flags = sorted(_FLAG_VALUES[command])
        choices.append(
            st.sampled_from(flags).flatmap(
                lambda flag: _FLAG_VALUES[command][flag].map(lambda v: [flag, v])
            )
        )
    options = draw(st.lists(st.one_of(choices), max_size=4))
    for option in options:
        argv += option
    return command, argv


def _places(root: Path) -> dict[str, str]:
    (root / "empty").mkdir(exist_ok=True)
    (root / "file.txt").write_text("not a spec\n")
    (root / "bad.toml").write_text("[study\nname = 1\n")
    (root / "badspec.toml").write_text(
        to_toml({**VALID, "train": {**VALID["train"], "lr": "0.01"}})
    )
    return {
        "MISSING": str(root / "missing"),
        "EMPTY_DIR": str(root / "empty"),
        "FILE": str(root / "file.txt"),
        "BAD_TOML": str(root / "bad.toml"),
        "BAD_SPEC": str(root / "badspec.toml"),
        "OUT": str(root / "out"),
    }


def test_bad_argument_lists_exit_2_with_one_line(capsys):
    tried = 0
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        places = _places(root)

        @settings(_FUZZ, max_examples=ARGV_EXAMPLES)
        @given(case=argument_lists())
        def check(case):
            nonlocal tried
            command, argv = case
            argv = [places.get(a, a) for a in argv]
            argv = [a.replace("OUT/", places["OUT"] + "/") for a in argv]
            tried += 1
            code, stdout, stderr = run_cli(argv)
            assert_one_line_exit_2(code, stdout, stderr, command)
            assert not Path(places["OUT"]).exists(), argv
            assert sorted(p.name for p in root.iterdir()) == [
                "bad.toml", "badspec.toml", "empty", "file.txt"
            ], argv  # fmt: skip
            assert not any((root / "empty").iterdir()), argv

        check()
    _report_count(capsys, "argument lists", tried)
    assert tried == ARGV_EXAMPLES


# --------------------------------------------------------------------------- real processes


def test_a_few_cases_in_real_processes(tmp_path):
    """Specs and argument lists through ``python -m simulations.cli``, four processes at once:
    an uncaught exception there would print a real traceback."""
    places = _places(tmp_path)
    specs = {
        "model.input_spike": {"model": {**VALID["model"], "input_spike": "false"}},
        "train.temperature.start": {"train": {**VALID["train"], "temperature": {"start": -1.0}}},
        "design.noise_sd": {"design": {**VALID["design"], "noise_sd": 10**400}},
    }
    cases = []
    for key, change in specs.items():
        path = tmp_path / f"{key}.toml"
        path.write_text(to_toml({**copy.deepcopy(VALID), **change}))
        cases.append((["simulate", str(path), "--out", places["OUT"]], key))
    cases.append((["results", places["FILE"], "--csv", ""], ""))
    runs = [
        (
            subprocess.Popen(
                [sys.executable, "-m", "simulations.cli", *argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            argv,
            key,
        )
        for argv, key in cases
    ]
    for process, argv, key in runs:
        out, err = process.communicate(timeout=300)
        line = assert_one_line_exit_2(process.returncode, out, err, argv[0])
        assert line.startswith(f"ssbnn {argv[0]}: error: {key}"), line
    assert not Path(places["OUT"]).exists()
