"""Study specs: the issue's shape works; every bad file is answered with one line naming the key."""

from __future__ import annotations

import copy
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.enums import Likelihood, Prior
from simulations.spec import load_spec, parse_spec
from ssbnn_theory.enums import Activation
from ssbnn_theory.errors import InvalidParameterError

ISSUE_EXAMPLE = """
[study]
name = "example"
seed = 7
replicates = 4

[design]
name = "teacher"          # or relu_teacher, bai_sparse_function, sun_regression, ...
weights = "teacher.npz"   # for name = "teacher": arrays W1, b1, W2, b2, ...
activation = "tanh"
p = 100
noise_sd = 1.0
n_test = 10000

[model]
priors = ["ss-gl", "ss-ghs"]
hidden = [16, 8]
activation = "tanh"

[train]
n = [1000, 4000]
steps = 3000
batch_size = 256
lr = 1e-3
"""

# A cheap valid spec (cubic_small_n draws nothing expensive) for the many error cases.
BASE = {
    "study": {"name": "base", "seed": 1, "replicates": 2},
    "design": {"name": "cubic_small_n", "noise_sd": 3.0, "n_test": 100},
    "model": {"priors": ["ss-gl", "ss-ghs"], "hidden": [8, 8]},
    "train": {"n": [20, 40], "steps": 10, "batch_size": 10},
    "metrics": {"draws": 5},
}


def _teacher(path):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        W1=rng.normal(size=(3, 5)),
        b1=rng.normal(size=3),
        W2=rng.normal(size=(2, 3)),
        b2=rng.normal(size=2),
        W3=rng.normal(size=(1, 2)),
        b3=rng.normal(size=1),
    )


def _with(**changes):
    """BASE with ``section__key=value`` changes (``value=...`` (Ellipsis) deletes the key)."""
    spec = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        if value is ...:
            spec[section].pop(key)
        else:
            spec[section][key] = value
    return spec


def _message(data):
    with pytest.raises(InvalidParameterError) as info:
        parse_spec(data)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_issue_example_loads_with_paths_relative_to_the_spec(tmp_path, monkeypatch):
    folder = tmp_path / "studies"
    folder.mkdir()
    _teacher(folder / "teacher.npz")
    (folder / "example.toml").write_text(ISSUE_EXAMPLE)
    monkeypatch.chdir(tmp_path)  # the spec is not in the working folder
    spec = load_spec("studies/example.toml")
    assert (spec.name, spec.seed, spec.replicates) == ("example", 7, 4)
    assert spec.design.name == "teacher"
    assert spec.design.params["weights"] == str((folder / "teacher.npz").resolve())
    assert spec.design.params["sigma_e"] == 1.0  # noise_sd is the design's sigma_e
    assert (spec.design.p, spec.design.outputs, spec.design.noise_sd) == (100, 1, 1.0)
    assert spec.design.n_test == 10000
    assert [p.prior for p in spec.priors] == [Prior.SS_GL, Prior.SS_GHS]
    assert [(s.hidden, s.activation) for s in spec.students] == [((16, 8), Activation.TANH)]
    assert spec.n == (1000, 4000)
    assert spec.train == {"steps": 3000, "batch_size": 256, "lr": 1e-3}
    config = spec.model_config(spec.priors[1], spec.students[0])
    assert (config.p, config.hidden, config.sigma_e) == (100, (16, 8), 1.0)
    assert config.prior == (Prior.SS_GHS, Prior.SS_GHS)
    assert spec.train_config().steps == 3000
    assert len(spec.design.files["weights"]) == 64  # its content hash is part of cell identity


def test_prior_tables_architecture_lists_and_model_options():
    spec = parse_spec(
        _with(
            model__priors=["ss-gl", {"name": "ss-ghs", "slab_width": 2.0}, "dense"],
            model__hidden=[[8, 8], [16]],
            model__activation=["relu", "tanh"],
            model__sigma_0=0.5,
            model__sigma_e="learned",
        )
    )
    assert [p.label for p in spec.priors] == ["ss-gl", "ss-ghs(slab_width=2)", "dense"]
    assert [s.label for s in spec.students] == ["8x8-relu", "8x8-tanh", "16-relu", "16-tanh"]
    ghs = spec.model_config(spec.priors[1], spec.students[0])
    assert (ghs.slab_width, ghs.sigma_0, ghs.sigma_e) == (2.0, 0.5, None)
    gl = spec.model_config(spec.priors[0], spec.students[0])
    assert gl.slab_width == 1.0  # the prior's option does not leak into the others
    sun = _with(design__name="sun_classification", design__p=10, design__noise_sd=...)
    config = parse_spec(sun).model_config(spec.priors[0], spec.students[0])
    assert (config.likelihood, config.outputs, config.sigma_e) == (Likelihood.CATEGORICAL, 2, None)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # unknown keys and sections, with the nearest valid key
        (
            _with(design__nosie_sd=1.0),
            r"^design\.nosie_sd: must be a key of \[design\] \(did you mean 'noise_sd'\?",
        ),
        (_with(train__step=10), r"^train\.step: .*did you mean 'steps'\?"),
        (_with(study__replicate=3), r"^study\.replicate: .*did you mean 'replicates'\?"),
        (
            {**BASE, "desing": {}},
            r"^desing: must be a key of a study file \(did you mean 'design'\?",
        ),
        (
            _with(model__priors=[{"name": "ss-ghs", "slab_widht": 1.0}]),
            r"^model\.priors\[0\]\.slab_widht: .*'slab_width'",
        ),
        (_with(metrics__drows=5), r"^metrics\.drows: .*'draws'"),
        # missing keys
        ({k: v for k, v in BASE.items() if k != "train"}, r"^train: must be given"),
        (_with(study__name=...), r"^study\.name: must be given"),
        (_with(train__n=...), r"^train\.n: must be given"),
        (_with(model__hidden=...), r"^model\.hidden: must be given"),
        # ranges and types in every section
        (
            _with(study__replicates=0),
            r"^study\.replicates: must be an integer in \[1, 10000\] \(got 0\)",
        ),
        (_with(study__seed="seven"), r"^study\.seed: must be an integer"),
        (_with(study__name="my study"), r"^study\.name: must be a name of letters"),
        (
            _with(design__name="relu_teachr"),
            r"^design\.name: must be one of .*did you mean 'relu_teacher'",
        ),
        (
            _with(design__noise_sd=-1.0),
            r"^design\.noise_sd: must be a finite number > 0 \(got -1\.0\)",
        ),
        (_with(design__sigma_e=1.0), r"^design\.(sigma_e|noise_sd): must be given once"),
        (_with(design__n_test=0), r"^design\.n_test: must be an integer in \[1, "),
        (_with(model__priors=[]), r"^model\.priors: must be a non-empty list"),
        (_with(model__priors=["ss-gl", "ss-gll"]), r"^model\.priors\[1\]: must be one of 'ss-ig'"),
        (_with(model__priors=["ss-gl", "ss-gl"]), r"^model\.priors\[1\]: must be distinct priors"),
        (_with(model__hidden=[8, 0]), r"^model\.hidden\[1\]: must be an integer in \[1, 100000\]"),
        (_with(model__hidden=[[8], [8]]), r"^model\.hidden\[1\]: must be distinct architectures"),
        (_with(model__activation="relux"), r"^model\.activation: must be one of 'relu'"),
        (_with(model__sigma_e=0), r"^model\.sigma_e: must be 'known', 'learned' or a number > 0"),
        (_with(model__sigma_0=-1.0), r"^model\.sigma_0: must be"),
        (_with(model__prior_inclusion=1.5), r"^model\.prior_inclusion: must be a probability"),
        (
            _with(model__prior_inclusion=[0.5, 1.5]),
            r"^model\.prior_inclusion\[1\]: must be a probability",
        ),
        (
            _with(model__priors=[{"name": "ss-ghs", "slab_width": -2.0}]),
            r"^model\.priors\[0\]\.slab_width: must be",
        ),
        (_with(train__n=[40, 20]), r"^train\.n\[1\]: must be an integer > train\.n\[0\] = 40"),
        (_with(train__n=[1]), r"^train\.n\[0\]: must be an integer in \[2, "),
        (
            _with(train__batch_size=30),
            r"^train\.batch_size: must be an integer in \[1, min\(train\.n\)\] = \[1, 20\]",
        ),
        (_with(train__lr=0.0), r"^train\.lr: must be a finite number > 0"),
        (_with(train__steps=0), r"^train\.steps: must be \"auto\" or an integer in \[1, "),
        (
            _with(train__temperature={"start": 0.5, "ends": 0.1}),
            r"^train\.temperature\.ends: must be a key of \[train\.temperature\] "
            r"\(did you mean 'end'\?",
        ),
        (_with(metrics__draws=0), r"^metrics\.draws: must be an integer in \[1, "),
        (_with(metrics__kappa_log=-1), r"^metrics\.kappa_log: must be a number in \[0, 10\]"),
    ],
)
def test_bad_specs_name_the_key_and_what_is_allowed(data, expected):
    import re

    message = _message(data)
    assert re.search(expected, message), message


def test_design_errors_name_design_keys(tmp_path):
    relu = _with(design__name="relu_teacher", design__p=3, design__noise_sd=1.0)
    # relu_teacher has 5 relevant inputs: p >= 5
    assert _message(relu).startswith("design.p: must be an integer in [5, 100000] (got 3)")
    relu["design"]["p"] = 20
    relu["design"]["active"] = [4, 0]
    assert _message(relu).startswith("design.active[1]: must be an integer in [1, 100]")
    teacher = {**BASE, "design": {"name": "teacher", "weights": "missing.npz"}}
    with pytest.raises(
        InvalidParameterError, match=r"^design\.weights: must be an existing file \(relative to "
    ):
        parse_spec(teacher, base=tmp_path)


def test_file_errors(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"^spec: must be an existing TOML file"):
        load_spec(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = 'x'")
    with pytest.raises(InvalidParameterError, match=r"^spec: must be valid TOML \("):
        load_spec(bad)
    good = tmp_path / "good.toml"
    good.write_text(
        textwrap.dedent(
            """
            [study]
            name = "good"
            output = "out/good"
            [design]
            name = "cubic_small_n"
            [model]
            priors = "ss-gl"
            hidden = [4]
            [train]
            n = 30
            steps = 5
            """
        )
    )
    spec = load_spec(good)
    assert spec.output == (tmp_path / "out" / "good").resolve()
    assert spec.n == (30,) and [p.label for p in spec.priors] == ["ss-gl"]
    assert spec.replicates == 10 and spec.metrics.draws == 200  # defaults of docs/studies.md


_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(-2, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=150)
@given(
    section=st.sampled_from(sorted(BASE)),
    data=st.data(),
    junk=_JUNK,
)
def test_any_corrupted_value_gives_invalid_parameter_error_or_a_valid_spec(section, data, junk):
    spec = copy.deepcopy(BASE)
    key = data.draw(st.sampled_from(sorted(spec[section])))
    if junk is None:
        spec[section].pop(key)
    else:
        spec[section][key] = junk
    try:
        parse_spec(spec)
    except InvalidParameterError as exc:
        assert "\n" not in str(exc)
        assert str(exc).split(":")[0].split(".")[0].split("[")[0] in (*BASE, "design (p)")


def test_dataset_path_is_relative_to_the_spec_and_hashed(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "y"])
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = copy.deepcopy(BASE)
    data["design"] = {"name": "dataset", "path": "data.csv", "target": "y"}
    data["model"]["sigma_e"] = "learned"
    spec = parse_spec(data, base=tmp_path)
    assert spec.design.params["path"] == str((tmp_path / "data.csv").resolve())
    assert (spec.design.p, spec.design.noise_sd) == (2, None)
    assert len(spec.design.files["path"]) == 64
    data["model"]["sigma_e"] = "known"  # user data has no true noise sd
    with pytest.raises(
        InvalidParameterError, match=r"^model\.sigma_e: must be 'learned' or a number"
    ):
        parse_spec(data, base=tmp_path)
