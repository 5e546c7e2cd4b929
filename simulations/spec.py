"""Study specifications: a TOML file describing a simulation study, and its validation.

A study file has up to five tables (``docs/studies.md`` lists every key, its
type, range and default)::

    [study]    name, seed, replicates, output, description
    [design]   name (a design of simulations.designs), its parameters, n_test
    [model]    priors, hidden, activation, sigma_e, and model options
    [train]    n (the grid of training-set sizes), steps, batch_size, lr, ...
    [metrics]  draws, kappa_log

:func:`load_spec` reads and validates a file; :func:`parse_spec` validates an
already-parsed mapping. Any problem raises
:class:`~ssbnn_theory.errors.InvalidParameterError` whose one-line message
names the key as written in the file (``design.noise_sd``, ``train.n[2]``,
``model.priors[1].slab_width``) and what is allowed; an unknown key is answered
with the nearest valid one. Paths in a spec (``design.weights``,
``design.path``, ``study.output``) are relative to the spec file's folder.

Validation is complete before anything runs: every value is type-checked in
the spec's own terms (a quoted ``"false"`` is not a boolean, a quoted number is
not a number, NaN and infinities are refused), the design is drawn once at a
tiny size (which checks its parameters and files), a ``dataset`` design's rows
are counted against every ``n``, and the model and training configurations of
every cell are built. Messages never mention what a spec cannot write
(``None``, Python classes).

``[train] steps`` is ``"auto"`` (train until the engine's convergence rule holds,
at most ``max_steps``) unless the spec gives a number of steps.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import math
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from simulations._io import plain
from simulations.convergence import ConvergenceRule
from simulations.designs import DESIGNS, available_rows, generate
from simulations.enums import Likelihood, Prior
from simulations.minibatch import Shuffle
from simulations.model import RHO_INIT_WORDS, ModelConfig
from simulations.relaxed import Annealing, TemperatureSchedule
from simulations.train import Optimizer, TrainConfig, boolean_or_word
from ssbnn_theory.enums import Activation, parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_integer, check_positive

__all__ = [
    "AUTO",
    "DESIGN_ALIASES",
    "METRICS_KEYS",
    "MODEL_OPTIONS",
    "SECTIONS",
    "SIGMA_E",
    "STUDY_KEYS",
    "TRAIN_OPTIONS",
    "DesignSpec",
    "MetricsSpec",
    "Student",
    "StudyPrior",
    "StudySpec",
    "load_spec",
    "parse_spec",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_SEED = 2**63 - 1
_MAX_N = 10**9
_MAX_STEPS = 10**9
"""Upper bound of every step count of ``[train]`` (a guard against typos such as ``1e12``)."""
_MISSING = object()
_RHO = (-50, 20)
"""Range of ``rho_init`` in a spec (the engine takes any finite number)."""

AUTO = "auto"
"""``[train] steps = "auto"``: train until the engine's convergence rule holds (the default)."""

SECTIONS = ("study", "design", "model", "train", "metrics")
"""The tables of a study file (``metrics`` is optional)."""

STUDY_KEYS = ("name", "seed", "replicates", "output", "description")
"""Keys of ``[study]``."""

_DESIGN_PATH_KEYS = ("weights", "path")
"""Design parameters that name files (relative to the spec file)."""

DESIGN_ALIASES = {"noise_sd": "sigma_e"}
"""Spec keys accepted for a design parameter of another name (``noise_sd`` is ``sigma_e``)."""

_STUDY_SET = ("p", "hidden", "outputs", "activation", "prior", "likelihood", "sigma_e")
"""``ModelConfig`` fields the study sets itself (from the design and ``[model]``)."""

MODEL_OPTIONS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name not in _STUDY_SET)
"""Model options a spec may set in ``[model]`` (every cell) or in a prior's table (that prior)."""

TRAIN_OPTIONS = tuple(
    dict.fromkeys([*(f.name for f in dataclasses.fields(TrainConfig)), "max_steps"])
)
"""Options of ``[train]`` besides ``n``: the fields of ``TrainConfig``, and ``max_steps``."""

METRICS_KEYS = ("draws", "kappa_log")
"""Keys of ``[metrics]``."""

SIGMA_E = ("known", "learned")
"""``model.sigma_e`` words: the design's true noise sd, or learned with the model."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StudyPrior:
    """One prior of the study with its hyperparameters.

    Attributes
    ----------
    prior
        The family (:class:`simulations.enums.Prior`).
    options
        Model options of this prior only (hyperparameters such as ``slab_width``),
        sorted by name; they override ``[model]``'s.
    """

    prior: Prior
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        """``ss-gl``, or ``ss-ghs(global_scale=0.001)`` when hyperparameters are set."""
        if not self.options:
            return self.prior.value
        inner = ",".join(f"{k}={_short(v)}" for k, v in sorted(self.options.items()))
        return f"{self.prior.value}({inner})"


@dataclass(frozen=True)
class Student:
    """A student architecture: hidden widths and activation."""

    hidden: tuple[int, ...]
    activation: Activation

    @property
    def label(self) -> str:
        """``16x8-relu``."""
        return "x".join(map(str, self.hidden)) + f"-{self.activation.value}"


@dataclass(frozen=True)
class DesignSpec:
    """The data-generating design.

    Attributes
    ----------
    name, version
        A key of :data:`simulations.designs.DESIGNS` and its generator version.
    params
        Design parameters as :func:`simulations.designs.generate` takes them;
        paths made absolute.
    n_test
        Test-set size, or ``None`` for the design's default.
    files
        SHA-256 of each file the parameters name (part of the cells' identity,
        in place of the path).
    p, outputs, likelihood, noise_sd
        What the design draws: inputs, network outputs, observation model and
        Gaussian noise sd (``None`` otherwise).
    rows
        The rows a ``dataset`` design holds (training and test sets together);
        ``None`` for synthetic designs, which draw any size.
    """

    name: str
    version: str
    params: dict[str, Any]
    n_test: int | None
    files: dict[str, str]
    p: int
    outputs: int
    likelihood: Likelihood
    noise_sd: float | None
    rows: int | None = None


@dataclass(frozen=True)
class MetricsSpec:
    """Posterior summaries.

    Attributes
    ----------
    draws
        ``M``, draws from the variational posterior per replicate (default 200).
    kappa_log
        Exponent of ``log n`` in ``eps_n = sqrt(r_n) (log n)^kappa_log`` (default 1.5, as
        ``ssbnn rate``: the contraction argument needs an exponent above 1).
    """

    draws: int = 200
    kappa_log: float = 1.5


@dataclass(frozen=True)
class StudySpec:
    """A validated study.

    Attributes
    ----------
    name, seed, replicates, description
        From ``[study]``.
    output
        ``[study] output`` resolved against the spec's folder, or ``None``.
    design
        :class:`DesignSpec`.
    priors
        The priors, each with its hyperparameters, labels distinct.
    students
        Student architectures (hidden widths x activations).
    sigma_e
        ``"known"`` (the design's noise sd), ``"learned"``, or a number.
    model
        Model options shared by every cell (``ModelConfig`` fields).
    n
        Training-set sizes, increasing.
    train
        Training options (``TrainConfig`` fields); ``steps`` is ``"auto"`` (train until
        convergence, capped by ``max_steps``) when the spec gives none.
    metrics
        :class:`MetricsSpec`.
    source
        The spec file, or ``None`` for a spec built from a mapping.
    training
        The :class:`~simulations.train.TrainConfig` of every cell, built once when the spec
        is read (:meth:`train_config`).
    model_configs
        The :class:`~simulations.model.ModelConfig` of each prior and student, by prior
        label and student, built once when the spec is read (:meth:`model_config`).
    """

    name: str
    seed: int
    replicates: int
    description: str
    output: Path | None
    design: DesignSpec
    priors: tuple[StudyPrior, ...]
    students: tuple[Student, ...]
    sigma_e: str | float
    model: dict[str, Any]
    n: tuple[int, ...]
    train: dict[str, Any]
    metrics: MetricsSpec
    source: Path | None = None
    training: TrainConfig | None = dataclasses.field(default=None, repr=False, compare=False)
    model_configs: Mapping[tuple[str, Student], ModelConfig] = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )

    def model_config(self, prior: StudyPrior, student: Student) -> ModelConfig:
        """The ``ModelConfig`` of one prior and student (options: ``[model]``, then the prior's).

        The one built when the spec was read; built here for a prior or student outside it.
        """
        config = self.model_configs.get((prior.label, student))
        return config if config is not None else self._build_model_config(prior, student)

    def train_config(self) -> TrainConfig:
        """The ``TrainConfig`` of every cell (built when the spec was read)."""
        return self.training if self.training is not None else self._build_train_config()

    def _build_model_config(self, prior: StudyPrior, student: Student) -> ModelConfig:
        if self.sigma_e == "learned":
            sigma_e = None
        elif self.sigma_e == "known":
            sigma_e = self.design.noise_sd
        else:
            sigma_e = float(self.sigma_e)
        return ModelConfig(
            p=self.design.p,
            hidden=student.hidden,
            outputs=self.design.outputs,
            activation=student.activation,
            prior=prior.prior,
            likelihood=self.design.likelihood,
            sigma_e=sigma_e,
            **{**self.model, **prior.options},
        )

    def _build_train_config(self) -> TrainConfig:
        options = dict(self.train)
        if isinstance(options.get("temperature"), Mapping):
            options["temperature"] = TemperatureSchedule(**options["temperature"])
        if isinstance(options.get("convergence"), Mapping):
            options["convergence"] = ConvergenceRule(**options["convergence"])
        if isinstance(options.get("betas"), list):
            options["betas"] = tuple(options["betas"])
        return TrainConfig(**options)


# --------------------------------------------------------------------------- reading


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate the study file at ``path`` (TOML).

    Raises
    ------
    InvalidParameterError
        ``spec`` when the file is missing or is not valid TOML; otherwise the
        offending key, as described in :func:`parse_spec`.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError("spec", "an existing TOML file", str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParameterError(
            "spec", f"valid TOML in UTF-8 ({exc.reason})", str(path)
        ) from None
    except OSError as exc:
        raise InvalidParameterError(
            "spec", f"a readable file ({exc.strerror})", str(path)
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidParameterError("spec", f"valid TOML ({exc})", str(path)) from None
    except RecursionError:
        raise InvalidParameterError(
            "spec", "valid TOML (arrays nested too deeply)", str(path)
        ) from None
    return parse_spec(data, base=path.parent, source=path.resolve())


def parse_spec(
    data: Mapping[str, Any], *, base: str | Path = ".", source: Path | None = None
) -> StudySpec:
    """Validate a parsed study mapping.

    Parameters
    ----------
    data
        The TOML document as a mapping of tables.
    base
        Folder that relative paths are resolved against (the spec file's folder).
    source
        The file ``data`` was read from, for the record.

    Raises
    ------
    InvalidParameterError
        Naming the key (``section.key``) and what is allowed: an unknown
        section or key (with the nearest valid one), a missing required key, a
        value of the wrong type or outside its range, a missing file. A long value is
        shown cut to its first 100 characters.
    """
    try:
        return _parse(data, Path(base), source)
    except InvalidParameterError as exc:
        raise _shortened(exc) from None
    except RecursionError:
        raise InvalidParameterError("spec", "values nested less deeply", "...") from None


def _parse(data: Mapping[str, Any], base: Path, source: Path | None) -> StudySpec:
    root = _Table(data, "", SECTIONS)
    for section in SECTIONS[:4]:
        root.require(section)

    study = _Table(root.get("study"), "study", STUDY_KEYS)
    name = study.string("name", pattern=_NAME, allowed="a name of letters, digits, '.', '_', '-'")
    seed = study.integer("seed", 0, _MAX_SEED, default=0)
    replicates = study.integer("replicates", 1, 10_000, default=10)
    description = study.string("description", default="")
    output_raw = study.string("output", default=None)
    if output_raw is not None and (not output_raw or "\x00" in output_raw):
        raise InvalidParameterError("study.output", "a folder name", output_raw)
    output = None if output_raw is None else (base / output_raw).resolve()

    design = _design(root.get("design"), base)
    model = _model(root.get("model"), design)
    n, train = _train(root.get("train"))
    _check_sizes(design, n)
    metrics = _metrics(root.get("metrics", {}))
    spec = StudySpec(
        name=name,
        seed=seed,
        replicates=replicates,
        description=description,
        output=output,
        design=design,
        n=n,
        train=train,
        metrics=metrics,
        source=source,
        **model,
    )
    return _resolve_configs(spec)


# --------------------------------------------------------------------------- sections


def _design(raw: object, base: Path) -> DesignSpec:
    if not isinstance(raw, Mapping):
        raise InvalidParameterError("design", "a table", raw)
    if "name" not in raw:
        raise InvalidParameterError("design.name", "given: " + _choices(DESIGNS), _NOTHING)
    name = raw["name"]
    if not isinstance(name, str) or name not in DESIGNS:
        raise InvalidParameterError("design.name", _choices(DESIGNS, name), name)
    registered = DESIGNS[name]
    aliases = {a: t for a, t in DESIGN_ALIASES.items() if t in registered.defaults}
    table = _Table(raw, "design", ("name", "n_test", *registered.defaults, *aliases))
    written: dict[str, str] = {}  # design parameter -> the key the user wrote
    for key in raw:
        target = aliases.get(key, key)
        if target in written:
            raise InvalidParameterError(
                f"design.{key}",
                f"given once (design.{written[target]} is the same parameter)",
                raw[key],
            )
        if key not in ("name", "n_test"):
            written[target] = key
    params = {target: raw[key] for target, key in written.items()}
    files: dict[str, str] = {}
    for key in _DESIGN_PATH_KEYS:
        if isinstance(params.get(key), str):
            if not params[key] or "\x00" in params[key]:
                raise InvalidParameterError(f"design.{written[key]}", "a file name", params[key])
            path = (base / params[key]).resolve()
            if not path.is_file():
                raise InvalidParameterError(
                    f"design.{written[key]}",
                    f"an existing file (relative to {base.resolve()})",
                    params[key],
                )
            params[key] = str(path)
            files[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    n_test = table.integer("n_test", 1, 10_000_000, default=None)
    try:
        probe = generate(name, n=1, replicates=1, seed=0, n_test=1, **params)
        rows = available_rows(name, **params)
    except InvalidParameterError as exc:
        raise _renamed(exc, _design_field(exc.field, written, params)) from None
    return DesignSpec(
        name=name,
        version=registered.version,
        params=params,
        n_test=n_test,
        files=files,
        p=probe.p,
        outputs=probe.outputs,
        likelihood=probe.likelihood,
        noise_sd=probe.noise_sd,
        rows=rows,
    )


def _design_field(field: str, written: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """The spec key of a design error's field: ``sigma_e`` -> ``design.noise_sd`` as written,
    a teacher layer ``W2`` -> ``design.weights.W2`` (inline) or ``design.weights (W2)`` (a
    file), a data array ``x`` read from ``design.path`` -> ``design.path (x)``."""
    root = re.split(r"[\[.]", field, maxsplit=1)[0]
    suffix = field[len(root) :]
    if root in written:
        return f"design.{written[root]}{suffix}"
    layer = re.fullmatch(r"([Wb])([0-9]+)", root)
    if layer and "weights" in written:
        if isinstance(params["weights"], str):
            return f"design.{written['weights']} ({field})"
        if isinstance(params["weights"], list):  # [[W1, b1], [W2, b2], ...]
            pair = f"[{int(layer[2]) - 1}][{'Wb'.index(layer[1])}]"
            return f"design.{written['weights']}{pair}{suffix}"
        return f"design.{written['weights']}.{field}"
    if "path" in written and isinstance(params.get("path"), str):
        return f"design.{written['path']} ({field})"
    return f"design.{field}"


def _check_sizes(design: DesignSpec, n: tuple[int, ...]) -> None:
    """Every ``n`` of the grid, with the test set, must fit in a data set's rows."""
    if design.rows is None:
        return
    rows = design.rows
    source = Path(design.params["path"]).name if design.params.get("path") else "the data"
    if design.n_test is None:  # the test set is every row not held for training: at least one
        limit, why = rows - 1, f"{source} has {rows} rows and the test set needs one"
    else:
        if design.n_test > rows - n[0]:
            raise InvalidParameterError(
                "design.n_test",
                f"an integer in [1, {max(rows - n[0], 0)}] ({source} has {rows} rows, "
                f"train.n[0] = {n[0]} of them for training)",
                design.n_test,
            )
        limit = rows - design.n_test
        why = f"{source} has {rows} rows, design.n_test = {design.n_test} of them for testing"
    for i, size in enumerate(n):
        if size > limit:
            raise InvalidParameterError(f"train.n[{i}]", f"an integer <= {limit} ({why})", size)


def _model(raw: object, design: DesignSpec) -> dict[str, Any]:
    table = _Table(raw, "model", ("priors", "hidden", "activation", "sigma_e", *MODEL_OPTIONS))
    priors_raw = table.get("priors")
    if isinstance(priors_raw, str | Mapping):
        priors_raw = [priors_raw]
    if not isinstance(priors_raw, list) or not priors_raw:
        raise InvalidParameterError(
            "model.priors",
            "a non-empty list of prior names or {name = ..., ...} tables",
            priors_raw,
        )
    priors = tuple(_prior(f"model.priors[{i}]", item) for i, item in enumerate(priors_raw))
    labels = [p.label for p in priors]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            raise InvalidParameterError(f"model.priors[{i}]", "distinct priors", label)

    hidden_raw = table.get("hidden")
    if isinstance(hidden_raw, list) and hidden_raw and all(isinstance(h, list) for h in hidden_raw):
        hidden = [_widths(f"model.hidden[{i}]", h) for i, h in enumerate(hidden_raw)]
    else:
        hidden = [_widths("model.hidden", hidden_raw)]
    for i, widths in enumerate(hidden):
        if widths in hidden[:i]:
            raise InvalidParameterError(
                f"model.hidden[{i}]", "distinct architectures", list(widths)
            )
    act_raw = table.get("activation", "relu")
    if isinstance(act_raw, list):
        if not act_raw:
            raise InvalidParameterError("model.activation", "a name or a non-empty list", act_raw)
        activations = [
            parse_enum(Activation, a, f"model.activation[{i}]") for i, a in enumerate(act_raw)
        ]
    else:
        activations = [parse_enum(Activation, act_raw, "model.activation")]
    if len(set(activations)) != len(activations):
        raise InvalidParameterError("model.activation", "distinct activations", act_raw)
    students = tuple(Student(h, a) for h in hidden for a in activations)

    sigma_e = table.get("sigma_e", "known")
    gaussian = design.likelihood is Likelihood.GAUSSIAN
    if isinstance(sigma_e, str) and sigma_e in SIGMA_E:
        if sigma_e == "known" and gaussian and design.noise_sd is None:
            raise InvalidParameterError(
                "model.sigma_e",
                "'learned' or a number (this design has no known noise sd)",
                sigma_e,
            )
    elif not gaussian:
        raise InvalidParameterError(
            "model.sigma_e", f"'known' or unset for a {design.likelihood.value} design", sigma_e
        )
    elif (
        isinstance(sigma_e, bool)
        or not isinstance(sigma_e, int | float)
        or not (_finite(sigma_e) and sigma_e > 0)
    ):
        raise InvalidParameterError(
            "model.sigma_e", "'known', 'learned' or a finite number > 0", sigma_e
        )
    if not gaussian:
        sigma_e = "known"  # not used: the likelihood has no noise sd
    options = {
        key: _model_option(f"model.{key}", table.data[key])
        for key in MODEL_OPTIONS
        if key in table.data
    }
    return {"priors": priors, "students": students, "sigma_e": sigma_e, "model": options}


def _prior(field: str, item: object) -> StudyPrior:
    if isinstance(item, str):
        return StudyPrior(parse_enum(Prior, item, field))
    if not isinstance(item, Mapping) or "name" not in item:
        raise InvalidParameterError(
            field, "a prior name or a table {name = ..., <model option> = ...}", item
        )
    prior = parse_enum(Prior, item["name"], f"{field}.name")
    _Table(item, field, ("name", *MODEL_OPTIONS))
    options = {
        key: _model_option(f"{field}.{key}", item[key])
        for key in sorted(MODEL_OPTIONS)
        if key in item
    }
    return StudyPrior(prior, options)


def _model_option(field: str, value: object) -> Any:
    annotation = next(
        f.type for f in dataclasses.fields(ModelConfig) if f.name == field.rsplit(".", 1)[-1]
    )
    return _option(field, value, _MODEL_CHECKS, annotation)


def _train(raw: object) -> tuple[tuple[int, ...], dict[str, Any]]:
    allowed = _train_options()
    table = _Table(raw, "train", ("n", *allowed))
    n_raw = table.get("n")
    if isinstance(n_raw, int) and not isinstance(n_raw, bool):
        n_raw = [n_raw]
    if not isinstance(n_raw, list) or not n_raw:
        raise InvalidParameterError("train.n", "a non-empty list of integers >= 2", n_raw)
    n = tuple(check_integer(f"train.n[{i}]", v, lower=2, upper=_MAX_N) for i, v in enumerate(n_raw))
    for i in range(1, len(n)):
        if n[i] <= n[i - 1]:
            raise InvalidParameterError(
                f"train.n[{i}]", f"an integer > train.n[{i - 1}] = {n[i - 1]} (increasing)", n[i]
            )
    options = {
        key: _option(f"train.{key}", table.data[key], _TRAIN_CHECKS, allowed[key])
        for key in allowed
        if key in table.data
    }
    batch = options.get("batch_size")
    if isinstance(batch, int) and batch > n[0]:
        raise InvalidParameterError(
            "train.batch_size", f"an integer in [1, min(train.n)] = [1, {n[0]}]", batch
        )
    auto = _trains_to_convergence()
    steps = options.get("steps", AUTO if auto else None)
    if steps == AUTO and not auto:
        raise InvalidParameterError(
            "train.steps", "an integer >= 1 (this engine has no convergence rule yet)", steps
        )
    for key, what in (("max_steps", "caps"), ("dense_steps", "opens"), ("convergence", "decides")):
        if key in options and steps != AUTO:
            fixed = _train_default("steps") if steps is None else steps
            raise InvalidParameterError(
                f"train.{key}",
                f'given only with steps = "{AUTO}" (it {what} a run until convergence; '
                f"steps = {fixed} trains exactly {fixed} steps)",
                options[key],
            )
    if steps is not None:
        options = {"steps": steps, **options}
    return n, options


def _metrics(raw: object) -> MetricsSpec:
    table = _Table(raw, "metrics", METRICS_KEYS)
    draws = table.integer("draws", 1, 100_000, default=MetricsSpec.draws)
    kappa_log = table.number("kappa_log", 0.0, 10.0, default=MetricsSpec.kappa_log)
    return MetricsSpec(draws, kappa_log)


def _resolve_configs(spec: StudySpec) -> StudySpec:
    """``spec`` holding every cell's model and training configuration; on failure, the error
    names the spec key."""
    try:
        training = spec._build_train_config()
    except InvalidParameterError as exc:
        raise _renamed(exc, f"train.{exc.field}") from None
    configs = {}
    for i, prior in enumerate(spec.priors):
        for student in spec.students:
            try:
                configs[(prior.label, student)] = spec._build_model_config(prior, student)
            except InvalidParameterError as exc:
                option = re.split(r"[\[.]", exc.field, maxsplit=1)[0]
                if option in prior.options:
                    field = f"model.priors[{i}].{exc.field}"
                elif option in ("p", "outputs", "likelihood"):
                    field = f"design ({exc.field})"
                else:
                    field = f"model.{exc.field}"
                raise _renamed(exc, field) from None
    return dataclasses.replace(spec, training=training, model_configs=configs)


# --------------------------------------------------------------------------- helpers


class _Nothing:
    """The value of a key that is missing: shown as ``(got nothing)``."""

    def __repr__(self) -> str:
        return "nothing"


_NOTHING = _Nothing()


class _Table:
    """A TOML table whose keys are checked against the allowed ones on construction."""

    def __init__(self, data: object, path: str, allowed: Sequence[str]) -> None:
        if not isinstance(data, Mapping):
            raise InvalidParameterError(path or "spec", "a table", data)
        self.data = data
        self.path = path
        for key in data:
            if key not in allowed:
                raise _unknown(path, str(key), allowed)

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def require(self, key: str) -> None:
        if key not in self.data:
            raise InvalidParameterError(self.field(key), "given", _NOTHING)

    def get(self, key: str, default: object = _MISSING) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise InvalidParameterError(self.field(key), "given", _NOTHING)
        return default

    def integer(self, key: str, low: int, high: int, *, default: object = _MISSING) -> Any:
        if key not in self.data:
            return self.get(key, default)
        return check_integer(self.field(key), self.data[key], lower=low, upper=high)

    def number(self, key: str, low: float, high: float, *, default: object = _MISSING) -> Any:
        if key not in self.data:
            return self.get(key, default)
        value = self.data[key]
        if not (_is_number(value) and _finite(value) and low <= value <= high):
            raise InvalidParameterError(self.field(key), f"a number in [{low:g}, {high:g}]", value)
        return float(value)

    def string(
        self,
        key: str,
        *,
        default: object = _MISSING,
        pattern: re.Pattern[str] | None = None,
        allowed: str = "a string",
    ) -> Any:
        if key not in self.data:
            return self.get(key, default)
        value = self.data[key]
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            raise InvalidParameterError(self.field(key), allowed, value)
        return value


def _key(key: str) -> str:
    """A key as written in a key path: bare when TOML allows it bare, else quoted."""
    return key if _BARE_KEY.match(key) else repr(key)


def _unknown(path: str, key: str, allowed: Sequence[str]) -> InvalidParameterError:
    """An unknown key, answered with the nearest allowed one (``difflib``)."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
    where = f"[{path}]" if path else "a study file"
    hint = f"did you mean {close[0]!r}? " if close else ""
    field = f"{path}.{_key(key)}" if path else _key(key)
    return InvalidParameterError(
        field, f"a key of {where} ({hint}allowed: {', '.join(allowed)})", "unknown key"
    )


def _renamed(exc: InvalidParameterError, field: str) -> InvalidParameterError:
    """``exc`` with its field written as the spec key (``sigma_e`` -> ``design.noise_sd``),
    in the spec's words: a spec has no ``None`` and no Python classes."""
    allowed = re.sub(r",? or None\b", "", exc.allowed)
    allowed = re.sub(r"\bNone\b", "unset", allowed)
    allowed = re.sub(r"\ba TemperatureSchedule\b", "a table", allowed)
    value = _NOTHING if exc.value is None else exc.value
    return InvalidParameterError(field, allowed, value)


class _Shown:
    """A value shown by a given text (a long value cut short)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _shortened(exc: InvalidParameterError, limit: int = 100) -> InvalidParameterError:
    """``exc`` with its value's ``repr`` cut to ``limit`` characters."""
    text = repr(exc.value)
    if len(text) <= limit:
        return exc
    return InvalidParameterError(exc.field, exc.allowed, _Shown(text[: limit - 3] + "..."))


def _choices(options: Mapping[str, Any] | Sequence[str], given: object = None) -> str:
    names = list(options)
    close = difflib.get_close_matches(str(given), names, n=1, cutoff=0.5) if given else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return "one of " + ", ".join(map(repr, names)) + hint


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: int | float) -> bool:
    """Finite as a float (an integer too large for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _widths(field: str, value: object) -> tuple[int, ...]:
    allowed = "a non-empty list of layer widths (integers in [1, 100000])"
    if not isinstance(value, list) or not value:
        raise InvalidParameterError(field, allowed, value)
    return tuple(
        check_integer(f"{field}[{i}]", k, lower=1, upper=100_000) for i, k in enumerate(value)
    )


def _short(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- option values
#
# Every model and training option is type-checked here, in the spec's terms, before the
# engine sees it: the engine's own checks are for Python callers (they accept None,
# TemperatureSchedule, numpy numbers), and a spec must not reach a Python truthiness test
# (a quoted "false" is a non-empty string). A check takes (key path, value) and returns the
# value to pass on, or raises InvalidParameterError naming the key path.

_Check = Callable[[str, object], Any]


def _boolean(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameterError(field, "true or false (a TOML boolean, unquoted)", value)
    return value


def _positive(field: str, value: object) -> Any:
    """A finite number > 0, passed on as written (an integer stays an integer)."""
    check_positive(field, value)
    return value


def _rho(field: str, value: object) -> Any:
    """An initial ``rho``, ``sd = softplus(rho)``: a word (``"auto"``, ``"reference"``), a
    number from -50 (sd about 2e-22) to 20, or a list of numbers, one per weight layer (the
    engine checks the count)."""
    if isinstance(value, str):
        if value.strip().lower() not in RHO_INIT_WORDS:
            allowed = f"'auto', 'reference', a number in [{_RHO[0]}, {_RHO[1]}], or a list of them"
            raise InvalidParameterError(field, allowed, value)
        return value
    if isinstance(value, list):
        if not value:
            allowed = f"a list of numbers in [{_RHO[0]}, {_RHO[1]}], one per weight layer"
            raise InvalidParameterError(field, allowed, value)
        return [_rho_number(f"{field}[{i}]", v) for i, v in enumerate(value)]
    return _rho_number(field, value)


def _rho_number(field: str, value: object) -> Any:
    """One initial ``rho`` in ``_RHO``."""
    allowed = f"a number in [{_RHO[0]}, {_RHO[1]}]"
    if not (_is_number(value) and _finite(value) and _RHO[0] <= value <= _RHO[1]):
        raise InvalidParameterError(field, allowed, value)
    return value


def _probability(field: str, value: object) -> Any:
    if not (_is_number(value) and 0 < value < 1):
        raise InvalidParameterError(field, "a probability in (0, 1)", value)
    return value


def _count(low: int) -> _Check:
    def check(field: str, value: object) -> int:
        return check_integer(field, value, lower=low, upper=_MAX_STEPS)

    return check


def _word(enum: type[StrEnum]) -> _Check:
    def check(field: str, value: object) -> str:
        if not isinstance(value, str):
            allowed = "one of " + ", ".join(repr(m.value) for m in enum)
            raise InvalidParameterError(field, allowed, value)
        return parse_enum(enum, value, field).value

    return check


def _inclusion(field: str, value: object) -> Any:
    """``"reference"`` (or another word of the engine), a probability, or one per layer."""
    allowed = "a word such as 'reference', a probability in (0, 1), or a list of them per layer"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if not value:
            raise InvalidParameterError(field, allowed, value)
        return [_probability(f"{field}[{i}]", v) for i, v in enumerate(value)]
    if not _is_number(value):
        raise InvalidParameterError(field, allowed, value)
    return _probability(field, value)


def _steps(field: str, value: object) -> int | str:
    if value == AUTO and isinstance(value, str):
        return AUTO
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_STEPS:
        raise InvalidParameterError(field, f'"{AUTO}" or an integer in [1, {_MAX_STEPS}]', value)
    return value


def _batch(field: str, value: object) -> int | str:
    if value in ("auto", "full") and isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_STEPS:
        allowed = f'"auto", "full" or an integer in [1, {_MAX_STEPS}]'
        raise InvalidParameterError(field, allowed, value)
    return value


def _betas(field: str, value: object) -> list[float]:
    allowed = "a list of two numbers in [0, 1)"
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidParameterError(field, allowed, value)
    for i, b in enumerate(value):
        if not (_is_number(b) and 0 <= b < 1):
            raise InvalidParameterError(f"{field}[{i}]", "a number in [0, 1)", b)
    return list(value)


_TEMPERATURE_KEYS = tuple(f.name for f in dataclasses.fields(TemperatureSchedule))


def _temperature(field: str, value: object) -> dict[str, Any]:
    """A table ``{start, end, steps, annealing}``; checked as a ``TemperatureSchedule``."""
    table = _Table(value, field, _TEMPERATURE_KEYS)
    checks: dict[str, _Check] = {
        "start": _positive,
        "end": _positive,
        "steps": _count(0),
        "annealing": _word(Annealing),
    }
    out = {key: checks[key](table.field(key), table.data[key]) for key in table.data}
    try:
        TemperatureSchedule(**out)
    except InvalidParameterError as exc:
        raise _renamed(exc, f"{field}.{exc.field}") from None
    return out


def _convergence(field: str, value: object) -> dict[str, Any]:
    """A table of ``ConvergenceRule`` options (``check_every``, ``patience``, ...)."""
    fields = dataclasses.fields(ConvergenceRule)
    table = _Table(value, field, tuple(f.name for f in fields))
    out = {
        f.name: _by_annotation(f.type)(table.field(f.name), table.data[f.name])
        for f in fields
        if f.name in table.data
    }
    try:
        ConvergenceRule(**out)
    except InvalidParameterError as exc:  # fields "convergence.<name>"
        raise _renamed(exc, f"{field}.{exc.field.rsplit('.', 1)[-1]}") from None
    return out


_MODEL_CHECKS: dict[str, _Check] = {
    "prior_inclusion": _inclusion,
    **dict.fromkeys(
        (
            "sigma_e_init",
            "sigma_0",
            "kappa_shape",
            "kappa_rate",
            "global_scale",
            "local_scale",
            "slab_width",
            "temperature",
        ),
        _positive,
    ),
    "input_spike": _boolean,
    "straight_through": _boolean,
    "input_inclusion": _probability,
    "inclusion_init": _probability,
    "rho_init": _rho,
}
"""Checks of the ``ModelConfig`` options a spec sets (others: :func:`_by_annotation`)."""

_TRAIN_CHECKS: dict[str, _Check] = {
    "steps": _steps,
    "max_steps": _count(2),
    "dense_steps": _count(0),
    "prune_every": _count(1),
    "trial_steps": _count(1),
    "search_steps": _count(1),
    "trial_misses": _count(1),
    "restarts": _count(1),
    "batch_size": _batch,
    "shuffle": _word(Shuffle),
    "lr": _positive,
    "logit_lr": _positive,
    "optimizer": _word(Optimizer),
    "betas": _betas,
    "grad_clip": _positive,
    "kl_warmup_steps": _count(0),
    "finetune_steps": _count(0),
    "temperature": _temperature,
    "convergence": _convergence,
    "indicator_pass": _boolean,
    "search": _boolean,
    "screen_inputs": functools.partial(boolean_or_word, word="both"),
    "compile": boolean_or_word,
    "checkpoint_every": _count(1),
    "log_every": _count(1),
}
"""Checks of the ``TrainConfig`` options a spec sets (others: :func:`_by_annotation`)."""


def _option(field: str, value: object, checks: Mapping[str, _Check], annotation: object) -> Any:
    """Check one model or training option: by its entry in ``checks``, else by its type hint.

    The checks pass on TOML values (a word of an enum as its ``str``, lists, finite numbers),
    so :func:`simulations._io.plain` only copies the tables and lists of the result."""
    name = field.rsplit(".", 1)[-1]
    check = checks.get(name) or _by_annotation(annotation)
    return plain(check(field, value))


def _by_annotation(annotation: object) -> _Check:
    """A check from a dataclass field's type hint (``int``, ``float | None``, ``bool``, ...),
    for options added to the engine after this module's explicit checks."""
    parts = {part.strip() for part in str(annotation).split("|")} - {"None"}
    kinds: list[tuple[str, Callable[[object], bool]]] = []
    for part in sorted(parts):
        if part == "bool":
            kinds.append(("true or false", lambda v: isinstance(v, bool)))
        elif part == "int":
            kinds.append((f"an integer in [-{_MAX_STEPS}, {_MAX_STEPS}]", _bounded_int))
        elif part == "float":
            kinds.append(("a finite number", lambda v: _is_number(v) and _finite(v)))
        elif part.startswith(("tuple", "list", "Sequence")):
            kinds.append(("a list", lambda v: isinstance(v, list) and all(map(_scalar, v))))
        else:  # str, enums, unions the spec does not know: one scalar, checked by the engine
            kinds.append(("a value", _scalar))

    def check(field: str, value: object) -> object:
        if not any(accepts(value) for _, accepts in kinds):
            words = sorted({word for word, _ in kinds})
            raise InvalidParameterError(field, " or ".join(words), value)
        return value

    return check


def _bounded_int(value: object) -> bool:
    """An integer of at most 10^9 in size (counts, sizes and steps of the engine's options)."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _MAX_STEPS


def _scalar(value: object) -> bool:
    """A TOML string, boolean or finite number (no table, list or date)."""
    return isinstance(value, str | bool) or (_is_number(value) and _finite(value))


def _train_fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _train_options() -> dict[str, object]:
    """``[train]`` options besides ``n`` and their type hints: ``TrainConfig``'s fields, and
    ``max_steps``."""
    options = {name: f.type for name, f in _train_fields().items()}
    options.setdefault("max_steps", "int")
    return options


def _train_default(name: str) -> object:
    f = _train_fields().get(name)
    return None if f is None else f.default


def _trains_to_convergence() -> bool:
    """Whether the engine's ``TrainConfig`` has ``steps = "auto"`` (it has ``max_steps``)."""
    return "max_steps" in _train_fields()
