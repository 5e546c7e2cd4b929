"""Study specs: the documented example works; a bad file gets one line naming the key."""

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

EXAMPLE_SPEC = """
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
    (folder / "example.toml").write_text(EXAMPLE_SPEC)
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


def test_a_list_of_initial_spreads_gives_each_weight_layer_its_own():
    spec = parse_spec(_with(model__rho_init=[-3, -6.0, -6]))
    config = spec.model_config(spec.priors[0], spec.students[0])
    assert config.rho_init == config.rho_inits == (-3.0, -6.0, -6.0)
    named = parse_spec(_with(model__rho_init="reference"))
    assert named.model_config(named.priors[0], named.students[0]).rho_inits == (-6.0,) * 3


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
        (
            _with(model__sigma_e=0),
            r"^model\.sigma_e: must be 'known', 'learned' or a finite number > 0",
        ),
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
        (
            _with(model__rho_init=[-3.0, -60.0, -6.0]),
            r"^model\.rho_init\[1\]: must be a number in \[-50, 20\]",
        ),
        (
            _with(model__rho_init=[-3.0, -6.0]),
            r"^model\.rho_init: must be one number or one per weight layer \(2 hidden \+ 1",
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


# --------------------------------------------------------------------------- strict types


@pytest.mark.parametrize("option", ["input_spike", "straight_through"])
@pytest.mark.parametrize("value", ["false", "true", "False", 0, 1])
def test_quoted_booleans_are_errors_naming_the_key(option, value):
    # A quoted "false" is a non-empty string: it used to run as True.
    message = _message(_with(**{f"model__{option}": value}))
    assert message.startswith(f"model.{option}: must be true or false"), message
    prior = _with(model__priors=["ss-gl", {"name": "ss-ghs", option: value}])
    assert _message(prior).startswith(f"model.priors[1].{option}: must be true or false")
    assert parse_spec(_with(**{f"model__{option}": False})).model[option] is False


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("start", -1, r"^train\.temperature\.start: must be a finite number > 0 \(got -1\)"),
        ("start", "0.5", r"^train\.temperature\.start: must be a finite number > 0"),
        ("end", 0.1, r"^train\.temperature\.end: must be equal to start = 0\.5 without"),
        ("steps", 1.5, r"^train\.temperature\.steps: must be an integer in \[0, "),
        ("annealing", "cosine", r"^train\.temperature\.annealing: must be one of 'constant'"),
        ("annealing", 1, r"^train\.temperature\.annealing: must be one of 'constant'"),
        ("stat", 0.5, r"^train\.temperature\.stat: must be a key of .*did you mean 'start'\?"),
    ],
)
def test_temperature_errors_name_train_temperature_keys(key, value, expected):
    import re

    message = _message(_with(train__temperature={"start": 0.5, key: value}))
    assert re.search(expected, message), message  # was "train.start: ..."


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "batch_size", "10"),  # the engine allows "an integer >= 1, ... or None"
        ("train", "grad_clip", "1"),
        ("train", "temperature", 0.5),  # the engine allows "a TemperatureSchedule or None"
        ("train", "n", ...),  # a missing key was "(got None)"
        ("model", "slab_width", "1"),
        ("model", "input_inclusion", True),
        ("study", "name", ...),
        ("design", "name", ...),
    ],
)
def test_messages_speak_the_spec_language(section, key, value):
    message = _message(_with(**{f"{section}__{key}": value}))
    assert "None" not in message and "TemperatureSchedule" not in message, message
    assert message.startswith(f"{section}."), message


# One wrong value per option: a quoted number, a boolean for a number, a table or a list where
# a scalar belongs, NaN, infinity and numbers too large for a float.
_WRONG = {
    "lr": ["0.01", True, {"a": 1}, [0.01], float("nan"), float("inf"), 10**400],
    "steps": ["100", 100.0, True, {"a": 1}, [100], 10**30, 0],
    "batch_size": ["10", 10.0, True, [10], 0],
    "optimizer": [1, True, ["adam"], {"a": 1}],
    "shuffle": ["never", 1, True, ["once"]],
    "betas": [0.9, [0.9], [0.9, "0.99"], [0.9, True], [0.9, float("nan")], {"a": 1}],
    "grad_clip": ["1", False, 0, -1.0, float("inf")],
    "kl_warmup_steps": ["5", -1, 5.5, True],
    "finetune_steps": ["5", -1, 5.5, False],
    "checkpoint_every": ["5", 0, 5.5, True],
    "log_every": ["5", 0, 5.5, [5]],
    "temperature": [0.5, "0.5", [0.5], True],
    "screen_inputs": ["true", 1, [True]],
    "search_steps": ["5", 0, 5.5, True],
    "compile": ["true", 1, "sometimes", [True]],
}
_WRONG_MODEL = {
    "prior_inclusion": [True, 0, 1, [0.5, True], {"a": 1}, float("nan")],
    "sigma_0": ["1", True, 0, float("inf"), 10**400, [1.0]],
    "kappa_shape": ["1", False, -1],
    "kappa_rate": ["1e-3", {"a": 1}],
    "global_scale": [True, "0.01"],
    "local_scale": [[1.0], "1"],
    "slab_width": ["1", 0],
    "input_inclusion": [True, 0, 1.0, "0.1"],
    "inclusion_init": ["0.99", 1, True],
    "rho_init": [
        "-6",
        "wide",
        True,
        float("nan"),
        float("-inf"),
        10**400,
        [],
        [-3.0, "-6", -6.0],
        [[-3.0], -6, -6],
    ],
    "temperature": ["0.5", 0, {"start": 0.5}],
    "sigma_e_init": ["1", False],
}


@pytest.mark.parametrize(
    ("key", "value"), [(k, v) for k, values in _WRONG.items() for v in values], ids=repr
)
def test_every_training_option_is_type_checked(key, value):
    message = _message(_with(**{f"train__{key}": value}))
    assert message.startswith(f"train.{key}"), message


@pytest.mark.parametrize("value", [True, False, "auto", "AUTO"])
def test_compile_takes_a_boolean_or_auto(value):
    expected = "auto" if isinstance(value, str) else value
    assert parse_spec(_with(train__compile=value)).train["compile"] == expected
    assert parse_spec(_with(train__compile=value)).train_config().compile == expected


@pytest.mark.parametrize(
    ("key", "value"), [(k, v) for k, values in _WRONG_MODEL.items() for v in values], ids=repr
)
def test_every_model_option_is_type_checked(key, value):
    message = _message(_with(**{f"model__{key}": value}))
    assert message.startswith(f"model.{key}"), message
    prior = _with(model__priors=[{"name": "ss-ghs", key: value}])
    assert _message(prior).startswith(f"model.priors[0].{key}")


def test_long_values_are_cut_short_in_messages():
    message = _message(_with(model__sigma_0=10**400))
    assert message.startswith("model.sigma_0: must be a finite number > 0 (got 1000")
    assert message.endswith("...)") and len(message) < 200


def test_odd_key_names_stay_on_one_line():
    message = _message({**BASE, "design": {**BASE["design"], "a\nb": 1}})
    assert message.startswith("design.'a\\nb': must be a key of [design]"), message


# --------------------------------------------------------------------------- steps = "auto"


def _auto_engine(monkeypatch):
    """A TrainConfig with steps = "auto" and max_steps (the engine's interface), for the
    spec-level tests whatever the engine of this checkout."""
    import dataclasses

    import simulations.spec as spec_module
    from simulations.train import TrainConfig

    @dataclasses.dataclass(frozen=True)
    class AutoTrainConfig(TrainConfig):
        steps: int | str = "auto"
        max_steps: int = 20_000
        window: int = 500  # an option the spec has no explicit check for

        def __post_init__(self):
            auto = self.steps == "auto"
            if auto:
                object.__setattr__(self, "steps", 1)
            super().__post_init__()
            if auto:
                object.__setattr__(self, "steps", "auto")
            if not isinstance(self.max_steps, int) or self.max_steps < 1:
                raise InvalidParameterError("max_steps", "an integer >= 1", self.max_steps)

    monkeypatch.setattr(spec_module, "TrainConfig", AutoTrainConfig)
    return AutoTrainConfig


def test_steps_default_to_auto_and_pass_through_with_max_steps(monkeypatch):
    engine = _auto_engine(monkeypatch)
    spec = parse_spec(_with(train__steps=...))
    assert spec.train["steps"] == "auto" and "max_steps" not in spec.train
    config = spec.train_config()
    assert isinstance(config, engine) and config.steps == "auto" and config.max_steps == 20_000
    spec = parse_spec(_with(train__steps="auto", train__max_steps=5000))
    assert spec.train == {"steps": "auto", "batch_size": 10, "max_steps": 5000}
    assert spec.train_config().max_steps == 5000
    assert parse_spec(_with(train__steps=300)).train_config().steps == 300  # fixed steps stay


def test_batch_size_words_reach_the_engine():
    assert parse_spec(_with(train__batch_size=...)).train_config().batch_rows(40) == 40
    for word, rows in (("auto", 512), ("full", 8192)):
        spec = parse_spec(_with(train__batch_size=word))
        assert spec.train["batch_size"] == word
        assert spec.train_config().batch_rows(8192) == rows
    message = _message(_with(train__batch_size="half"))
    assert message.startswith('train.batch_size: must be "auto", "full" or an integer'), message


def test_screen_inputs_reaches_the_engine_in_auto_runs_only():
    spec = parse_spec(_with(train__steps="auto", train__screen_inputs=True))
    assert spec.train["screen_inputs"] is True and spec.train_config().screen_inputs is True
    assert parse_spec(_with(train__steps="auto")).train_config().screen_inputs is False
    both = parse_spec(_with(train__steps="auto", train__screen_inputs="Both"))
    assert both.train["screen_inputs"] == "both" == both.train_config().screen_inputs
    message = _message(_with(train__screen_inputs=True))  # steps = 10
    assert message.startswith("train.screen_inputs: must be false with an integer"), message
    message = _message(_with(train__steps="auto", train__screen_inputs="always"))
    assert message.startswith("train.screen_inputs: must be true, false or 'both'"), message


def test_shuffle_reaches_the_engine():
    spec = parse_spec(_with(train__shuffle="once"))
    assert spec.train["shuffle"] == "once" and spec.train_config().shuffle == "once"
    assert parse_spec(_with()).train_config().shuffle == "epoch"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"train__max_steps": 5000}, r'^train\.max_steps: must be given only with steps = "auto"'),
        (
            {"train__dense_steps": 100},
            r'^train\.dense_steps: must be given only with steps = "auto"',
        ),
        (
            {"train__steps": ..., "train__max_steps": 0},
            r"^train\.max_steps: must be an integer in \[2, 1000000000\] \(got 0\)",
        ),
        ({"train__steps": "auto", "train__max_steps": "5000"}, r"^train\.max_steps: must be"),
        ({"train__steps": "auto", "train__max_steps": 5e3}, r"^train\.max_steps: must be"),
        ({"train__steps": "Auto"}, r'^train\.steps: must be "auto" or an integer'),
        ({"train__steps": "100"}, r'^train\.steps: must be "auto" or an integer'),
        ({"train__steps": True}, r'^train\.steps: must be "auto" or an integer'),
        ({"train__window": "500"}, r"^train\.window: must be an integer in \[-1000000000, "),
        ({"train__window": 0}, r"^train\.window: must be an integer >= 1"),  # engine's check
        (
            {"train__convergence": {"patience": 3}},
            r'^train\.convergence: must be given only with steps = "auto"',
        ),
    ],
)
def test_auto_steps_errors(monkeypatch, changes, expected):
    import re

    engine = _auto_engine(monkeypatch)
    if "train__window" in changes:  # an engine option without an explicit spec check
        original = engine.__post_init__

        def post_init(self):
            original(self)
            if self.window < 1:
                raise InvalidParameterError("window", "an integer >= 1 or None", self.window)

        monkeypatch.setattr(engine, "__post_init__", post_init)
    message = _message(_with(**changes))
    assert re.search(expected, message), message
    assert "None" not in message


def test_a_spec_without_steps_uses_the_engines_convergence_rule_when_it_has_one():
    import dataclasses

    from simulations.train import TrainConfig

    config = parse_spec(_with(train__steps=...)).train_config()
    if "max_steps" in {f.name for f in dataclasses.fields(TrainConfig)}:
        assert config.steps == "auto"
    else:  # an engine without a convergence rule: its default, and "auto" is refused
        assert config.steps == TrainConfig().steps
        message = _message(_with(train__steps="auto"))
        assert message.startswith("train.steps: must be an integer >= 1 (this engine has no")


# --------------------------------------------------------------------------- files and sizes


def _dataset_spec(tmp_path, rows=30, **design):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["a", "b", "y"])
    frame.to_csv(tmp_path / "data.csv", index=False)
    data = copy.deepcopy(BASE)
    data["design"] = {"name": "dataset", "path": "data.csv", "target": "y", **design}
    data["model"]["sigma_e"] = "learned"
    return data


@pytest.mark.parametrize(
    ("n", "n_test", "expected"),
    [
        ([20, 30], None, r"^train\.n\[1\]: must be an integer <= 29 \(data\.csv has 30 rows"),
        ([30, 40], None, r"^train\.n\[0\]: must be an integer <= 29 "),
        ([10, 21], 10, r"^train\.n\[1\]: must be an integer <= 20 \(.*design\.n_test = 10"),
        ([10, 20], 25, r"^design\.n_test: must be an integer in \[1, 20\] "),
    ],
)
def test_dataset_sizes_are_checked_before_any_cell_runs(tmp_path, n, n_test, expected):
    import re

    data = _dataset_spec(tmp_path, **({} if n_test is None else {"n_test": n_test}))
    data["train"]["n"] = n
    with pytest.raises(InvalidParameterError) as info:
        parse_spec(data, base=tmp_path)
    assert re.search(expected, str(info.value)), str(info.value)


def test_dataset_sizes_that_fit_are_accepted(tmp_path):
    data = _dataset_spec(tmp_path, n_test=10)
    data["train"]["n"] = [10, 20]
    assert parse_spec(data, base=tmp_path).design.rows == 30
    data = _dataset_spec(tmp_path)
    data["train"]["n"] = [20, 29]  # the rest (one row at n = 29) is the test set
    assert parse_spec(data, base=tmp_path).n == (20, 29)


def _teacher_file(path, kind):
    rng = np.random.default_rng(0)
    layers = {"W1": rng.normal(size=(3, 5)), "b1": np.zeros(3), "W2": rng.normal(size=(1, 3))}
    layers["b2"] = np.zeros(1)
    if kind == "random bytes":
        path.write_bytes(rng.bytes(512))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        np.savez(path, **layers)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "one .npy array":
        with path.open("wb") as fh:
            np.save(fh, layers["W1"])
    else:
        layers["W1"] = {
            "object arrays": np.array([[1.0, "a", None]] * 3, dtype=object),
            "string arrays": np.array([["1", "2", "3", "4", "5"]] * 3),
            "complex weights": layers["W1"] + 1j,
            "boolean arrays": layers["W1"] > 0,
        }[kind]
        np.savez(path, **layers)


_BAD_TEACHERS = [
    "random bytes",
    "empty",
    "truncated",
    "one .npy array",
    "object arrays",
    "string arrays",
    "complex weights",
    "boolean arrays",
]


@pytest.mark.parametrize("kind", _BAD_TEACHERS)
def test_bad_teacher_files_are_one_line_naming_design_weights(tmp_path, capsys, kind):
    from simulations.cli import main

    _teacher_file(tmp_path / "t.npz", kind)
    data = copy.deepcopy(BASE)
    data["design"] = {"name": "teacher", "weights": "t.npz"}
    message = _message_at(data, tmp_path)
    assert message.startswith("design.weights"), message
    (tmp_path / "s.toml").write_text(
        textwrap.dedent(
            """
            [study]
            name = "bad"
            [design]
            name = "teacher"
            weights = "t.npz"
            [model]
            priors = "ss-gl"
            hidden = [4]
            [train]
            n = 30
            steps = 5
            """
        )
    )
    code = main(["simulate", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("ssbnn simulate: error: design.weights"), err
    assert not (tmp_path / "out").exists()


def test_quoted_numbers_in_inline_teacher_weights_are_refused():
    data = copy.deepcopy(BASE)
    data["design"] = {
        "name": "teacher",
        "weights": {"W1": [[1.0, "2.0"]], "b1": [0.0], "W2": [[1.0]], "b2": [0.0]},
    }
    assert _message(data).startswith("design.weights.W1: must be an array of real numbers")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "No columns to parse"),
        (b"a,b,y\n", "no rows"),
        (b"\xff\xfe\x00garbage\x81", "codec can't decode"),
        (b"a,y\n1,2\n1,2,3,4\n", "Expected 2 fields"),
    ],
)
def test_bad_dataset_csv_is_one_line_naming_design_path(tmp_path, content, reason):
    data = _dataset_spec(tmp_path)
    (tmp_path / "data.csv").write_bytes(content)
    message = _message_at(data, tmp_path)
    assert message.startswith("design.path: must be a"), message
    assert reason in message, message


def _message_at(data, base):
    with pytest.raises(InvalidParameterError) as info:
        parse_spec(data, base=base)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        (
            {"convergence": {"patience": 0}},
            r"^train\.convergence\.patience: must be an integer >= 1",
        ),
        ({"convergence": {"patience": "3"}}, r"^train\.convergence\.patience: must be an integer"),
        (
            {"convergence": {"patience": 10**20}},
            r"^train\.convergence\.patience: must be an integer in \[-1000000000, 1000000000\]",
        ),
        ({"convergence": {"tolerance": -1}}, r"^train\.convergence\.tolerance: must be a finite"),
        ({"convergence": {"patiense": 3}}, r"^train\.convergence\.patiense: .*'patience'\?"),
        ({"convergence": 3}, r"^train\.convergence: must be a table \(got 3\)"),
        ({"logit_lr": "0.1"}, r"^train\.logit_lr: must be a finite number > 0 \(got '0\.1'\)"),
        ({"indicator_pass": "false"}, r"^train\.indicator_pass: must be true or false"),
        ({"max_steps": 1}, r"^train\.max_steps: must be an integer in \[2, "),
        ({"finetune_steps": 10}, r"^train\.finetune_steps: must be 0 with steps = 'auto'"),
    ],
)
def test_the_engines_convergence_options(train, expected):
    import dataclasses
    import re

    from simulations.train import TrainConfig

    if "max_steps" not in {f.name for f in dataclasses.fields(TrainConfig)}:
        pytest.skip("this engine has no convergence rule")
    data = _with(train__steps=...)
    data["train"].update(train)
    message = _message(data)
    assert re.search(expected, message), message
    assert "None" not in message and "ConvergenceRule" not in message, message


def test_a_convergence_table_reaches_the_engine():
    import dataclasses

    from simulations.train import TrainConfig

    if "convergence" not in {f.name for f in dataclasses.fields(TrainConfig)}:
        pytest.skip("this engine has no convergence rule")
    spec = parse_spec(_with(train__steps="auto", train__convergence={"patience": 3}))
    config = spec.train_config()
    assert config.steps == "auto" and config.convergence.patience == 3
    assert config.convergence.check_every == type(config.convergence)().check_every


def test_teacher_layer_errors_name_the_layer_as_written():
    data = copy.deepcopy(BASE)
    good = {"W1": [[1.0, -1.0]], "b1": [0.5], "W2": [[1.0]], "b2": [0.0]}
    data["design"] = {"name": "teacher", "weights": {**good, "b1": [0.5, 1.0]}}
    assert _message(data).startswith("design.weights.b1: must be a 1-D array of shape (1,)")
    pairs = [[good["W1"], good["b1"]], [good["W2"], ["0"]]]
    data["design"] = {"name": "teacher", "weights": pairs}
    assert _message(data).startswith("design.weights[1][1]: must be an array of real numbers")


def test_an_empty_dataset_csv_through_the_cli(tmp_path, capsys):
    from simulations.cli import main

    (tmp_path / "data.csv").write_bytes(b"")
    (tmp_path / "s.toml").write_text(
        textwrap.dedent(
            """
            [study]
            name = "empty"
            [design]
            name = "dataset"
            path = "data.csv"
            target = "y"
            [model]
            priors = "ss-gl"
            hidden = [4]
            sigma_e = "learned"
            [train]
            n = 30
            steps = 5
            """
        )
    )
    code = main(["simulate", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(
        "ssbnn simulate: error: design.path: must be a readable CSV file with a header row "
        "(got 'data.csv: No columns to parse from file')"
    ), err
    assert not (tmp_path / "out").exists()
