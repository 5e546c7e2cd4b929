"""What every design shares: the data and truth it returns, its registry entry, checks of
its parameters, and the drawing of training replicates and the test set from a law of
``(X, Y)`` (the random streams of :mod:`simulations.designs`)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from simulations.enums import Likelihood
from simulations.rng import stream_seed
from ssbnn_theory.enums import Activation, parse_enum
from ssbnn_theory.errors import InvalidParameterError

DEFAULT_N_TEST = 10_000
"""Size of the shared noise-free test set of the synthetic designs (``docs/designs.md``)."""

MAX_P = 100_000
"""Largest input dimension ``p`` of the synthetic designs."""


@dataclass(frozen=True)
class Truth:
    """The true structure of a design.

    Attributes
    ----------
    relevant_inputs
        0-based indices of the inputs ``f0`` depends on.
    active_nodes
        Active nodes ``s_l`` per hidden layer of the teacher network, or ``None``
        when ``f0`` is not a network.
    hidden
        The teacher's widths ``k_l >= s_l`` per hidden layer (``None`` when ``f0``
        is not a network).
    bounds
        ``B_l``, ``l = 1..L+1``: the largest absolute weight or bias of layer
        ``l`` over the active part of the teacher (the ``|theta*| <= B_l`` of
        ``docs/theory.md`` section 1), or ``None``.
    activation
        The teacher's activation, or ``None``.
    weights, biases
        The teacher's layers ``W_l`` (``[k_l, k_{l-1}]``, ``k_0 = p``) and ``b_l``
        (``[k_l]``) as read-only float64 arrays, or ``None``;
        ``f0(x) = W_{L+1} h_L + b_{L+1}``, ``h_l = psi(W_l h_{l-1} + b_l)``, ``h_0 = x``.
    """

    relevant_inputs: tuple[int, ...]
    active_nodes: tuple[int, ...] | None = None
    hidden: tuple[int, ...] | None = None
    bounds: tuple[float, ...] | None = None
    activation: Activation | None = None
    weights: tuple[np.ndarray, ...] | None = None
    biases: tuple[np.ndarray, ...] | None = None


@dataclass(frozen=True, eq=False)
class Draws:
    """What a design's generator draws: the data and the truth (:class:`SimulationData`)."""

    likelihood: Likelihood
    outputs: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    f_test: torch.Tensor | None
    y_test: torch.Tensor
    noise_sd: float | None
    truth: Truth | None


@dataclass(frozen=True, eq=False)
class SimulationData(Draws):
    """Training replicates, a shared test set and the truth of one design draw.

    Attributes
    ----------
    design, version
        Name and version of the generator.
    params
        The design parameters used (defaults filled in).
    seed
        The run seed.
    likelihood
        Observation model: Gaussian, Bernoulli or categorical.
    outputs
        Network outputs: regression outputs, 1 for Bernoulli (a logit), the
        number of classes ``K`` for categorical.
    x_train
        ``[R, n, p]`` inputs of the ``R`` replicates.
    y_train
        Gaussian and Bernoulli: ``[R, n, outputs]`` floats (0/1 for Bernoulli);
        categorical: class indices ``[R, n]``, ``int64`` in ``0..K-1``.
    x_test
        ``[n_test, p]`` inputs shared by all replicates.
    f_test
        ``[n_test, outputs]`` noise-free truth at ``x_test``: ``f0`` for
        Gaussian designs; the class probabilities ``P(y = 1 | x)`` (Bernoulli)
        or ``P(y = k | x)`` (categorical) for classification. ``None`` for user
        data (``dataset``).
    y_test
        Realised test responses, same layout as ``y_train`` without the
        replicate axis.
    noise_sd
        ``sigma_e`` of Gaussian designs; ``None`` for classification and user data.
    truth
        :class:`Truth`, or ``None`` for user data.
    """

    design: str
    version: str
    params: Mapping[str, Any]
    seed: int

    @property
    def replicates(self) -> int:
        """Number of training replicates ``R``."""
        return int(self.x_train.shape[0])

    @property
    def n(self) -> int:
        """Training-set size per replicate."""
        return int(self.x_train.shape[1])

    @property
    def p(self) -> int:
        """Input dimension."""
        return int(self.x_train.shape[2])

    @property
    def n_test(self) -> int:
        """Test-set size."""
        return int(self.x_test.shape[0])


@dataclass(frozen=True)
class Design:
    """A registered generator.

    Attributes
    ----------
    name, version
        Registry key and generator version; the version changes whenever the
        same seed and parameters would give different data.
    description
        One line: the law of ``(X, Y)`` (the first paragraph of the law's docstring).
    defaults
        Design parameters and their defaults (``None``: required or derived): the
        keyword-only parameters of the law (:func:`parameters`).
    quick
        Keyword arguments of :func:`generate` (besides ``seed``) for a small
        instance for tests and CI.
    generator
        ``generator(params, *, n, replicates, seed, n_test, dtype)``: validates
        the design parameters and draws the data (call it through :func:`generate`,
        which checks the common arguments and fills in the defaults).
    rows
        ``rows(params)``: the rows the design's data hold, for designs of given data
        (``dataset``); ``None`` for designs that draw any size.
    """

    name: str
    version: str
    description: str
    defaults: Mapping[str, Any]
    quick: Mapping[str, Any]
    generator: Callable[..., Draws]
    rows: Callable[[Mapping[str, Any]], int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "quick", MappingProxyType(dict(self.quick)))


@dataclass(frozen=True)
class Law:
    """Law of ``(X, Y)``: ``sample(rng, m) -> (x [m, p], f0 [m, outputs])``, and the truth."""

    p: int
    outputs: int
    likelihood: Likelihood
    noise_sd: float | None
    truth: Truth
    sample: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def parameters(function: Callable[..., Any]) -> dict[str, Any]:
    """A design's parameters and defaults: the keyword-only parameters of ``function``.

    Every one needs a default (``None`` for a parameter that is required or derived).
    """
    found = {}
    for param in inspect.signature(function).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(f"{function.__name__}: design parameter {param.name} has no default")
        found[param.name] = param.default
    return found


def summary(function: Callable[..., Any]) -> str:
    """The first paragraph of ``function``'s docstring, on one line (under ``python -OO``,
    which strips docstrings, the function's name)."""
    if function.__doc__ is None and sys.flags.optimize >= 2:
        return function.__name__
    first = inspect.cleandoc(function.__doc__ or "").split("\n\n", 1)[0]
    if not first:
        raise TypeError(f"{function.__name__}: a design's law needs a docstring (its description)")
    return " ".join(line.strip() for line in first.splitlines())


def design(name: str, version: str, law: Callable[..., Law], quick: Mapping[str, Any]) -> Design:
    """The registry entry of a synthetic design drawn from ``law``.

    ``law(truth_seed, *, <parameters with defaults>) -> Law`` checks the parameters, draws any
    random truth from ``truth_seed`` and returns the law of ``(X, Y)``. The design's
    description is the first paragraph of its docstring and its defaults are the defaults of
    its keyword-only parameters. ``quick``: keyword arguments of ``generate`` for a small
    instance. Replicate ``r`` is drawn from stream ``"data"``, key ``r``, the test set from
    stream ``"test"`` and the truth seed from stream ``"truth"`` of the run seed.
    """

    def generator(params, *, n, replicates, seed, n_test, dtype):
        drawn = law(stream_seed(seed, "truth"), **params)
        n_test = DEFAULT_N_TEST if n_test is None else n_test
        return simulate(drawn, n=n, replicates=replicates, seed=seed, n_test=n_test, dtype=dtype)

    return Design(name, version, summary(law), parameters(law), quick, generator)


# --------------------------------------------------------------------------- validation


def check_likelihood(value: object, allowed: Sequence[Likelihood]) -> Likelihood:
    lik = parse_enum(Likelihood, value, "likelihood")
    if lik not in allowed:
        raise InvalidParameterError(
            "likelihood", "one of " + ", ".join(repr(a.value) for a in allowed), value
        )
    return lik


_KINDS = {
    "b": "booleans",
    "c": "complex numbers",
    "O": "Python objects (mixed or nested values)",
    "U": "strings",
    "S": "bytes",
    "M": "dates",
    "m": "time spans",
    "V": "records",
}


def real_array(field: str, value: object, *, booleans: bool = False) -> np.ndarray:
    """``value`` as a float64 array, if it holds real numbers (integers or floats) only.

    Complex numbers (whose imaginary part a cast would drop), strings, objects and, unless
    ``booleans``, booleans are refused; so are ragged nested lists.
    """
    allowed = "an array of real numbers"
    if isinstance(value, (str, bytes, Mapping)):
        raise InvalidParameterError(field, allowed, value)
    if isinstance(value, list | tuple) and not booleans and _holds_bool_or_str(value):
        raise InvalidParameterError(field, allowed + " (no booleans or quoted numbers)", value)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:  # e.g. rows of different lengths
        raise InvalidParameterError(field, allowed, reason(exc)) from None
    kind = array.dtype.kind
    if kind not in ("iuf" + ("b" if booleans else "")):
        raise InvalidParameterError(
            field, allowed, f"an array of {_KINDS.get(kind, str(array.dtype))}"
        )
    return array.astype(np.float64)


def _holds_bool_or_str(value: object, depth: int = 0) -> bool:
    if isinstance(value, bool | str | bytes):
        return True
    if isinstance(value, list | tuple) and depth < 64:
        return any(_holds_bool_or_str(v, depth + 1) for v in value)
    return False


def reason(exc: BaseException) -> str:
    """An exception in one short line: its first line, or its type."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def load_npz(field: str, path: Path, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` archive (all, or ``names``), or an error naming ``field``.

    The archive is read without pickle, so object arrays are refused; a file that is not a
    ``np.savez`` archive (random bytes, empty, a single ``.npy`` array) is an error too.
    """
    allowed = "a readable .npz archive of numeric arrays (numpy.savez)"
    try:
        with path.open("rb") as fh:
            if fh.read(2) != b"PK":  # every zip archive starts with a "PK" record
                what = "an empty file" if fh.tell() == 0 else "not a zip archive"
                raise InvalidParameterError(field, allowed, f"{path.name}: {what}")
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as archive:
                files = list(archive.files)
                wanted = files if names is None else [k for k in names if k in files]
                return {k: archive[k] for k in wanted}
    except InvalidParameterError:
        raise
    except Exception as exc:  # damaged archives, object arrays: the user's input
        raise InvalidParameterError(field, allowed, f"{path.name}: {reason(exc)}") from None


def check_finite(field: str, array: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidParameterError(
            field, "finite numbers (no NaN or inf)", f"{array[where]} at index {where}"
        )
    return array


# --------------------------------------------------------------------------- drawing


def read_only(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def observe(law: Law, f0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Responses given noise-free values: ``f0 + sigma_e e``, or a Bernoulli / categorical draw."""
    if law.likelihood is Likelihood.GAUSSIAN:
        return f0 + law.noise_sd * rng.standard_normal(f0.shape)
    if law.likelihood is Likelihood.BERNOULLI:
        return (rng.random(f0.shape) < f0).astype(np.float64)
    u = 1.0 - rng.random(f0.shape[0])  # in (0, 1], so a one-hot row gives its class exactly
    return np.minimum((np.cumsum(f0, axis=1) < u[:, None]).sum(axis=1), f0.shape[1] - 1)


def simulate(
    law: Law, *, n: int, replicates: int, seed: int, n_test: int, dtype: torch.dtype
) -> Draws:
    """Draw ``R`` training sets (stream ``"data"``) and the shared test set (stream ``"test"``)."""
    categorical = law.likelihood is Likelihood.CATEGORICAL
    x_train = torch.empty((replicates, n, law.p), dtype=dtype)
    y_shape = (replicates, n) if categorical else (replicates, n, law.outputs)
    y_train = torch.empty(y_shape, dtype=torch.int64 if categorical else dtype)
    for r in range(replicates):
        rng = np.random.default_rng(stream_seed(seed, "data", r))
        x, f0 = law.sample(rng, n)
        x_train[r] = torch.from_numpy(x)
        y_train[r] = torch.from_numpy(observe(law, f0, rng))
    rng = np.random.default_rng(stream_seed(seed, "test"))
    x, f0 = law.sample(rng, n_test)
    y = torch.from_numpy(observe(law, f0, rng))
    return Draws(
        likelihood=law.likelihood,
        outputs=law.outputs,
        x_train=x_train,
        y_train=y_train,
        x_test=torch.from_numpy(x).to(dtype),
        f_test=torch.from_numpy(f0).to(dtype),
        y_test=y if categorical else y.to(dtype),
        noise_sd=law.noise_sd,
        truth=law.truth,
    )
