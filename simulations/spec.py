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

Validation is complete before anything runs: the design is drawn once at a
tiny size (which checks its parameters and files), and the model and training
configurations of every cell are built.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulations.designs import DESIGNS, generate
from simulations.enums import Likelihood, Prior
from simulations.model import ModelConfig
from simulations.relaxed import TemperatureSchedule
from simulations.train import TrainConfig
from ssbnn_theory.enums import Activation, parse_enum
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
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
_MAX_SEED = 2**63 - 1
_MISSING = object()

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

TRAIN_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainConfig))
"""Training options of ``[train]`` besides ``n``: the fields of ``TrainConfig``."""

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


@dataclass(frozen=True)
class MetricsSpec:
    """Posterior summaries.

    Attributes
    ----------
    draws
        ``M``, draws from the variational posterior per replicate (default 200).
    kappa_log
        Exponent of ``log n`` in ``eps_n = sqrt(r_n) (log n)^kappa_log`` (default 1).
    """

    draws: int = 200
    kappa_log: float = 1.0


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
        Training options (``TrainConfig`` fields).
    metrics
        :class:`MetricsSpec`.
    source
        The spec file, or ``None`` for a spec built from a mapping.
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

    def model_config(self, prior: StudyPrior, student: Student) -> ModelConfig:
        """The ``ModelConfig`` of one prior and student (options: ``[model]``, then the prior's)."""
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

    def train_config(self) -> TrainConfig:
        """The ``TrainConfig`` of every cell."""
        options = dict(self.train)
        if isinstance(options.get("temperature"), Mapping):
            options["temperature"] = TemperatureSchedule(**options["temperature"])
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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParameterError("spec", f"valid TOML ({exc})", str(path)) from None
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
        value of the wrong type or outside its range, a missing file.
    """
    base = Path(base)
    root = _Table(data, "", SECTIONS)
    for section in SECTIONS[:4]:
        root.require(section)

    study = _Table(root.get("study"), "study", STUDY_KEYS)
    name = study.string("name", pattern=_NAME, allowed="a name of letters, digits, '.', '_', '-'")
    seed = study.integer("seed", 0, _MAX_SEED, default=0)
    replicates = study.integer("replicates", 1, 10_000, default=10)
    description = study.string("description", default="")
    output_raw = study.string("output", default=None)
    output = None if output_raw is None else (base / output_raw).resolve()

    design = _design(root.get("design"), base)
    model = _model(root.get("model"), design)
    n, train = _train(root.get("train"))
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
    _check_configs(spec)
    return spec


# --------------------------------------------------------------------------- sections


def _design(raw: object, base: Path) -> DesignSpec:
    if not isinstance(raw, Mapping):
        raise InvalidParameterError("design", "a table", raw)
    if "name" not in raw:
        raise InvalidParameterError("design.name", "given: " + _choices(DESIGNS), None)
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
    except InvalidParameterError as exc:
        root_name = re.split(r"[\[.]", exc.field, maxsplit=1)[0]
        suffix = exc.field[len(root_name) :]
        raise _renamed(exc, f"design.{written.get(root_name, root_name)}{suffix}") from None
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
    )


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
        or not (math.isfinite(sigma_e) and sigma_e > 0)
    ):
        raise InvalidParameterError("model.sigma_e", "'known', 'learned' or a number > 0", sigma_e)
    if not gaussian:
        sigma_e = "known"  # not used: the likelihood has no noise sd
    options = {key: _plain(table.get(key)) for key in MODEL_OPTIONS if key in table.data}
    return {"priors": priors, "students": students, "sigma_e": sigma_e, "model": options}


def _prior(field: str, item: object) -> StudyPrior:
    if isinstance(item, str):
        return StudyPrior(parse_enum(Prior, item, field))
    if not isinstance(item, Mapping) or "name" not in item:
        raise InvalidParameterError(
            field, "a prior name or a table {name = ..., <model option> = ...}", item
        )
    prior = parse_enum(Prior, item["name"], f"{field}.name")
    table = _Table(item, field, ("name", *MODEL_OPTIONS))
    options = {key: _plain(table.get(key)) for key in sorted(MODEL_OPTIONS) if key in item}
    return StudyPrior(prior, options)


def _train(raw: object) -> tuple[tuple[int, ...], dict[str, Any]]:
    table = _Table(raw, "train", ("n", *TRAIN_OPTIONS))
    n_raw = table.get("n")
    if isinstance(n_raw, int) and not isinstance(n_raw, bool):
        n_raw = [n_raw]
    if not isinstance(n_raw, list) or not n_raw:
        raise InvalidParameterError("train.n", "a non-empty list of integers >= 2", n_raw)
    n = tuple(_int(f"train.n[{i}]", v, 2, 10**9) for i, v in enumerate(n_raw))
    for i in range(1, len(n)):
        if n[i] <= n[i - 1]:
            raise InvalidParameterError(
                f"train.n[{i}]", f"an integer > train.n[{i - 1}] = {n[i - 1]} (increasing)", n[i]
            )
    options = {key: _plain(table.get(key)) for key in TRAIN_OPTIONS if key in table.data}
    batch = options.get("batch_size")
    if isinstance(batch, int) and not isinstance(batch, bool) and batch > n[0]:
        raise InvalidParameterError(
            "train.batch_size", f"an integer in [1, min(train.n)] = [1, {n[0]}]", batch
        )
    return n, options


def _metrics(raw: object) -> MetricsSpec:
    table = _Table(raw, "metrics", METRICS_KEYS)
    draws = table.integer("draws", 1, 100_000, default=MetricsSpec.draws)
    kappa_log = table.number("kappa_log", 0.0, 10.0, default=MetricsSpec.kappa_log)
    return MetricsSpec(draws, kappa_log)


def _check_configs(spec: StudySpec) -> None:
    """Build every cell's model and training configuration; name the spec key on failure."""
    try:
        spec.train_config()
    except InvalidParameterError as exc:
        raise _renamed(exc, f"train.{exc.field}") from None
    except TypeError as exc:  # a temperature table with unknown keys
        raise InvalidParameterError(
            "train.temperature", "a table with keys start, end, steps, annealing", str(exc)
        ) from None
    for i, prior in enumerate(spec.priors):
        for student in spec.students:
            try:
                spec.model_config(prior, student)
            except InvalidParameterError as exc:
                option = re.split(r"[\[.]", exc.field, maxsplit=1)[0]
                if option in prior.options:
                    field = f"model.priors[{i}].{exc.field}"
                elif option in ("p", "outputs", "likelihood"):
                    field = f"design ({exc.field})"
                else:
                    field = f"model.{exc.field}"
                raise _renamed(exc, field) from None


# --------------------------------------------------------------------------- helpers


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
            raise InvalidParameterError(self.field(key), "given", None)

    def get(self, key: str, default: object = _MISSING) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise InvalidParameterError(self.field(key), "given", None)
        return default

    def integer(self, key: str, low: int, high: int, *, default: object = _MISSING) -> Any:
        if key not in self.data:
            return self.get(key, default)
        return _int(self.field(key), self.data[key], low, high)

    def number(self, key: str, low: float, high: float, *, default: object = _MISSING) -> Any:
        if key not in self.data:
            return self.get(key, default)
        value = self.data[key]
        allowed = f"a number in [{low:g}, {high:g}]"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidParameterError(self.field(key), allowed, value)
        if not (math.isfinite(value) and low <= value <= high):
            raise InvalidParameterError(self.field(key), allowed, value)
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


def _unknown(path: str, key: str, allowed: Sequence[str]) -> InvalidParameterError:
    """An unknown key, answered with the nearest allowed one (``difflib``)."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.5)
    where = f"[{path}]" if path else "a study file"
    hint = f"did you mean {close[0]!r}? " if close else ""
    field = f"{path}.{key}" if path else key
    return InvalidParameterError(
        field, f"a key of {where} ({hint}allowed: {', '.join(allowed)})", "unknown key"
    )


def _renamed(exc: InvalidParameterError, field: str) -> InvalidParameterError:
    """``exc`` with its field written as the spec key (``sigma_e`` -> ``design.noise_sd``)."""
    return InvalidParameterError(field, exc.allowed, exc.value)


def _choices(options: Mapping[str, Any] | Sequence[str], given: object = None) -> str:
    names = list(options)
    close = difflib.get_close_matches(str(given), names, n=1, cutoff=0.5) if given else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return "one of " + ", ".join(map(repr, names)) + hint


def _int(field: str, value: object, low: int, high: int) -> int:
    allowed = f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(field, allowed, value)
    if not low <= value <= high:
        raise InvalidParameterError(field, allowed, value)
    return value


def _widths(field: str, value: object) -> tuple[int, ...]:
    allowed = "a non-empty list of layer widths (integers in [1, 100000])"
    if not isinstance(value, list) or not value:
        raise InvalidParameterError(field, allowed, value)
    return tuple(_int(f"{field}[{i}]", k, 1, 100_000) for i, k in enumerate(value))


def _plain(value: object) -> Any:
    """TOML values as plain Python (tables become dicts; lists stay lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _short(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
