"""Named, versioned synthetic designs (DESIGNS.md), explicit teachers and user data sets.

A design is a law of ``(X, Y)``: inputs ``x``, a noise-free regression function
or class-probability function ``f0(x)``, and an observation model (Gaussian
noise ``y = f0(x) + sigma_e e``, or Bernoulli / categorical draws with
probabilities ``f0(x)``). :func:`generate` draws ``R`` independent training
sets of size ``n`` and one shared test set of ``n_test`` points with its
noise-free ``f0`` values, and returns the truth (relevant inputs, active nodes
per hidden layer, weight bounds) where one is known.

Randomness (``simulations.rng``). With run seed ``s``:

* the truth (e.g. the random weights of ``relu_teacher``) comes from stream
  ``"truth"`` of ``s``;
* replicate ``r``'s training data from stream ``"data"``, key ``r``;
* the shared test set from stream ``"test"``.

So replicate ``r``'s data do not depend on how many replicates are drawn. All
draws are made in float64 with :class:`numpy.random.Generator` (PCG64) and cast
to ``dtype`` at the end, so a float32 and a float64 run see the same data up to
rounding. ``docs/designs.md`` documents each design and its version.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from scipy.special import expit, softmax

from simulations.enums import Likelihood
from simulations.rng import stream_seed
from ssbnn_theory.enums import Activation, parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_integer, check_integer_sequence, check_positive

__all__ = [
    "DESIGNS",
    "Design",
    "SimulationData",
    "Truth",
    "available_rows",
    "generate",
    "get_design",
    "teacher_forward",
]

DEFAULT_N_TEST = 10_000
"""Size of the shared noise-free test set of the synthetic designs (DESIGNS.md)."""

_REFERENCE_SIZE = 1_000_000
"""Reference sample (stream ``"truth"``) that scales ``relu_teacher``'s output to ``Var f0 = 1``."""

_ALIVE_RANGE = (0.05, 0.95)
"""``relu_teacher`` redraws its weights until each hidden node is positive on this share."""

_MAX_TEACHER_DRAWS = 1000

_MAX_P = 100_000
"""Largest input dimension ``p`` of the synthetic designs."""

_MAX_RELEVANT = 100
"""``relu_teacher``: most relevant inputs and active nodes per layer (its reference sample
of 10^6 points is held in memory at this width)."""

_MAX_TEACHER_WIDTH = 1000
"""``relu_teacher``: widest teacher layer ``hidden[l]`` (its zero-padded weights are stored)."""


# --------------------------------------------------------------------------- results


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
        THEORY.md section 1), or ``None``.
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
class SimulationData:
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
    likelihood: Likelihood
    outputs: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    f_test: torch.Tensor | None
    y_test: torch.Tensor
    noise_sd: float | None
    truth: Truth | None

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
        One line: the law of ``(X, Y)``.
    defaults
        Design parameters and their defaults (``None``: required or derived).
    quick
        Keyword arguments of :func:`generate` (besides ``seed``) for a small
        instance for tests and CI.
    generator
        ``generator(params, *, n, replicates, seed, n_test, dtype)``: validates
        the design parameters and draws the data (call it through :func:`generate`,
        which checks the common arguments and fills in the defaults).
    """

    name: str
    version: str
    description: str
    defaults: Mapping[str, Any]
    quick: Mapping[str, Any]
    generator: Callable[..., _Draws]


@dataclass(frozen=True)
class _Law:
    """Law of ``(X, Y)``: ``sample(rng, m) -> (x [m, p], f0 [m, outputs])``, and the truth."""

    p: int
    outputs: int
    likelihood: Likelihood
    noise_sd: float | None
    truth: Truth
    sample: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class _Draws:
    likelihood: Likelihood
    outputs: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    f_test: torch.Tensor | None
    y_test: torch.Tensor
    noise_sd: float | None
    truth: Truth | None


# --------------------------------------------------------------------------- validation


def _likelihood(value: object, allowed: Sequence[Likelihood]) -> Likelihood:
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


def _real_array(field: str, value: object, *, booleans: bool = False) -> np.ndarray:
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
        raise InvalidParameterError(field, allowed, _reason(exc)) from None
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


def _reason(exc: BaseException) -> str:
    """An exception in one short line: its first line, or its type."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _load_npz(field: str, path: Path, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
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
        raise InvalidParameterError(field, allowed, f"{path.name}: {_reason(exc)}") from None


def _finite(field: str, array: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidParameterError(
            field, "finite numbers (no NaN or inf)", f"{array[where]} at index {where}"
        )
    return array


# --------------------------------------------------------------------------- teachers


def _activate(activation: Activation, u: np.ndarray) -> np.ndarray:
    if activation is Activation.RELU:
        return np.maximum(u, 0.0)
    if activation is Activation.TANH:
        return np.tanh(u)
    if activation is Activation.SIGMOID:
        return expit(u)
    return u * expit(u)  # SiLU


def teacher_forward(
    x: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    activation: Activation | str,
) -> np.ndarray:
    """Output of a feed-forward teacher network, in float64.

    ``h_0 = x``, ``h_l = psi(h_{l-1} W_l^T + b_l)`` for the hidden layers and
    ``f(x) = h_L W_{L+1}^T + b_{L+1}`` (no activation on the output layer).

    Parameters
    ----------
    x
        ``[m, k_0]`` inputs.
    weights, biases
        ``W_l`` of shape ``[k_l, k_{l-1}]`` and ``b_l`` of shape ``[k_l]``.
    activation
        The hidden-layer activation ``psi``.

    Returns
    -------
    numpy.ndarray
        ``[m, k_{L+1}]``.
    """
    act = parse_enum(Activation, activation, "activation")
    h = np.asarray(x, dtype=np.float64)
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w.T + b
        if layer < len(weights) - 1:
            h = _activate(act, h)
    return h


def _active_structure(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Relevant inputs and active hidden nodes of a teacher.

    A hidden node is active when its incoming group (weights from active nodes of
    the previous layer, or relevant inputs, and its bias) is non-zero and some
    active node of the next layer (or an output) gives it a non-zero weight; an
    input is relevant when an active first-layer node weighs it. Found as the
    fixed point of these two conditions, starting from everything active.
    """
    hidden = len(weights) - 1
    inputs = np.ones(weights[0].shape[1], dtype=bool)
    nodes = [np.ones(w.shape[0], dtype=bool) for w in weights[:-1]]
    while True:
        previous = [inputs, *nodes]
        new_nodes = []
        for layer in range(hidden):
            w_in = weights[layer][:, previous[layer]]
            incoming = (w_in != 0).any(axis=1) | (biases[layer] != 0)
            next_active = nodes[layer + 1] if layer + 1 < hidden else None
            w_out = weights[layer + 1] if next_active is None else weights[layer + 1][next_active]
            outgoing = (w_out != 0).any(axis=0)
            new_nodes.append(incoming & outgoing & nodes[layer])
        new_inputs = (weights[0][new_nodes[0]] != 0).any(axis=0) & inputs
        if np.array_equal(new_inputs, inputs) and all(
            np.array_equal(a, b) for a, b in zip(new_nodes, nodes, strict=True)
        ):
            return inputs, nodes
        inputs, nodes = new_inputs, new_nodes


def _teacher_truth(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    activation: Activation,
    p: int,
) -> Truth:
    """Truth of a teacher; its first layer is padded to ``p`` inputs (the extra are nuisance)."""
    inputs, nodes = _active_structure(weights, biases)
    for layer, mask in enumerate(nodes):
        if not mask.any():
            raise InvalidParameterError(
                "weights",
                "a teacher with at least one active node in every hidden layer "
                "(non-zero incoming group and outgoing weight)",
                f"no active node in hidden layer {layer + 1}",
            )
    rows = [*nodes, np.ones(weights[-1].shape[0], dtype=bool)]
    cols = [inputs, *nodes]
    bounds = tuple(
        float(max(np.abs(w[r][:, c]).max(initial=0.0), np.abs(b[r]).max(initial=0.0)))
        for w, b, r, c in zip(weights, biases, rows, cols, strict=True)
    )
    padded = np.zeros((weights[0].shape[0], p))
    padded[:, : weights[0].shape[1]] = weights[0]
    frozen_w = tuple(_read_only(w) for w in (padded, *weights[1:]))
    frozen_b = tuple(_read_only(b) for b in biases)
    return Truth(
        relevant_inputs=tuple(int(i) for i in np.flatnonzero(inputs)),
        active_nodes=tuple(int(m.sum()) for m in nodes),
        hidden=tuple(int(w.shape[0]) for w in weights[:-1]),
        bounds=bounds,
        activation=activation,
        weights=frozen_w,
        biases=frozen_b,
    )


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def _observe(law: _Law, f0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Responses given noise-free values: ``f0 + sigma_e e``, or a Bernoulli / categorical draw."""
    if law.likelihood is Likelihood.GAUSSIAN:
        return f0 + law.noise_sd * rng.standard_normal(f0.shape)
    if law.likelihood is Likelihood.BERNOULLI:
        return (rng.random(f0.shape) < f0).astype(np.float64)
    u = 1.0 - rng.random(f0.shape[0])  # in (0, 1], so a one-hot row gives its class exactly
    return np.minimum((np.cumsum(f0, axis=1) < u[:, None]).sum(axis=1), f0.shape[1] - 1)


def _simulate(
    law: _Law, *, n: int, replicates: int, seed: int, n_test: int, dtype: torch.dtype
) -> _Draws:
    """Draw ``R`` training sets (stream ``"data"``) and the shared test set (stream ``"test"``)."""
    categorical = law.likelihood is Likelihood.CATEGORICAL
    x_train = torch.empty((replicates, n, law.p), dtype=dtype)
    y_shape = (replicates, n) if categorical else (replicates, n, law.outputs)
    y_train = torch.empty(y_shape, dtype=torch.int64 if categorical else dtype)
    for r in range(replicates):
        rng = np.random.default_rng(stream_seed(seed, "data", r))
        x, f0 = law.sample(rng, n)
        x_train[r] = torch.from_numpy(x)
        y_train[r] = torch.from_numpy(_observe(law, f0, rng))
    rng = np.random.default_rng(stream_seed(seed, "test"))
    x, f0 = law.sample(rng, n_test)
    y = torch.from_numpy(_observe(law, f0, rng))
    return _Draws(
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


def _synthetic(
    build: Callable[[dict[str, Any], int], _Law],
) -> Callable[..., _Draws]:
    def run(params, *, n, replicates, seed, n_test, dtype):
        law = build(params, stream_seed(seed, "truth"))
        n_test = DEFAULT_N_TEST if n_test is None else n_test
        return _simulate(law, n=n, replicates=replicates, seed=seed, n_test=n_test, dtype=dtype)

    return run


# --------------------------------------------------------------------------- designs


@functools.lru_cache(maxsize=16)
def _random_relu_teacher(
    truth_seed: int, relevant: int, active: tuple[int, ...]
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The random ReLU teacher of ``relu_teacher`` on ``relevant`` inputs (cached: it is pure).

    Weights ``+-U[0.5, 1.5]`` (random sign), biases ``U(-0.5, 0.5)``; redrawn until
    every hidden node is positive on a share in ``[0.05, 0.95]`` of a reference
    sample ``U(-1,1)^relevant`` of 10^6 points, so that no node is dead or linear.
    The output layer is then divided by the sd of the output on the reference
    sample, so ``Var f0 = 1`` there.
    """
    rng = np.random.default_rng(truth_seed)
    sizes = (relevant, *active, 1)
    x_ref = rng.uniform(-1.0, 1.0, size=(_REFERENCE_SIZE, relevant))
    for _ in range(_MAX_TEACHER_DRAWS):
        weights = [
            rng.choice([-1.0, 1.0], size=(o, i)) * rng.uniform(0.5, 1.5, size=(o, i))
            for i, o in itertools.pairwise(sizes)
        ]
        biases = [rng.uniform(-0.5, 0.5, size=o) for o in sizes[1:]]
        h, alive = x_ref, True
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            pre = h @ w.T + b
            share = (pre > 0).mean(axis=0)
            alive &= bool(((share >= _ALIVE_RANGE[0]) & (share <= _ALIVE_RANGE[1])).all())
            h = np.maximum(pre, 0.0)
        sd = float((h @ weights[-1].T + biases[-1]).std())
        if alive and sd > 0:
            break
    else:  # deep, narrow structures where almost every draw has a dead or linear node
        raise InvalidParameterError(
            "active", "a structure for which a non-degenerate teacher can be drawn", active
        )
    weights[-1] = weights[-1] / sd
    biases[-1] = biases[-1] / sd
    return tuple(map(_read_only, weights)), tuple(map(_read_only, biases))


def _relu_teacher(params: dict[str, Any], truth_seed: int) -> _Law:
    """``x ~ U(-1,1)^p``; random ReLU teacher on the first ``relevant`` inputs; Gaussian noise."""
    relevant = check_integer("relevant", params["relevant"], lower=1, upper=_MAX_RELEVANT)
    p = check_integer("p", params["p"], lower=relevant, upper=_MAX_P)
    sigma_e = check_positive("sigma_e", params["sigma_e"])
    active = check_integer_sequence(
        "active", params["active"], lower=1, upper=_MAX_RELEVANT, first=0
    )
    hidden = (
        active
        if params["hidden"] is None
        else check_integer_sequence(
            "hidden", params["hidden"], lower=1, upper=_MAX_TEACHER_WIDTH, first=0
        )
    )
    if len(hidden) != len(active):
        raise InvalidParameterError(
            "hidden", f"a list of {len(active)} widths, one per entry of active", hidden
        )
    for layer, (k, s) in enumerate(zip(hidden, active, strict=True)):
        if s > k:
            raise InvalidParameterError(
                f"active[{layer}]", f"an integer in [1, hidden[{layer}]] = [1, {k}]", s
            )
    weights, biases = _random_relu_teacher(truth_seed, relevant, active)
    padded_w = [
        np.zeros((k, k_prev)) for k, k_prev in zip(hidden, (relevant, *hidden[:-1]), strict=True)
    ]
    padded_b = [np.zeros(k) for k in hidden]
    for layer, (w, b) in enumerate(zip(weights[:-1], biases[:-1], strict=True)):
        padded_w[layer][: w.shape[0], : w.shape[1]] = w
        padded_b[layer][: b.shape[0]] = b
    out_w = np.zeros((1, hidden[-1]))
    out_w[:, : active[-1]] = weights[-1]
    truth = _teacher_truth([*padded_w, out_w], [*padded_b, biases[-1]], Activation.RELU, p)

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        x = g.uniform(-1.0, 1.0, size=(m, p))
        return x, teacher_forward(x[:, :relevant], weights, biases, Activation.RELU)

    return _Law(p, 1, Likelihood.GAUSSIAN, sigma_e, truth, sample)


def _load_teacher(value: object) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Teacher layers from an ``.npz`` path, a mapping ``{"W1": ..., "b1": ...}`` or pairs."""
    allowed = (
        "an .npz path or a mapping with arrays W1, b1, W2, b2, ... (at least two layers), "
        "or a sequence of (W, b) pairs"
    )
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            raise InvalidParameterError("weights", "an existing .npz file", str(value))
        value = _load_npz("weights", path)
    if isinstance(value, Mapping):
        layers = len(value) // 2
        expected = {f"{a}{i}" for i in range(1, layers + 1) for a in "Wb"}
        if layers < 2 or set(value) != expected:
            raise InvalidParameterError("weights", allowed, sorted(map(str, value)))
        pairs = [(value[f"W{i}"], value[f"b{i}"]) for i in range(1, layers + 1)]
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) >= 2:
        pairs = list(value)
        if not all(isinstance(pair, Sequence) and len(pair) == 2 for pair in pairs):
            raise InvalidParameterError("weights", allowed, value)
    else:
        raise InvalidParameterError("weights", allowed, value)
    weights, biases = [], []
    for i, (w, b) in enumerate(pairs, start=1):
        w = _real_array(f"W{i}", w)
        b = _real_array(f"b{i}", b)
        fan_in = weights[-1].shape[0] if weights else None
        if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
            raise InvalidParameterError(f"W{i}", "a non-empty 2-D array [out, in]", w.shape)
        if fan_in is not None and w.shape[1] != fan_in:
            raise InvalidParameterError(
                f"W{i}", f"an array with {fan_in} columns (the rows of W{i - 1})", w.shape
            )
        if b.shape != (w.shape[0],):
            raise InvalidParameterError(f"b{i}", f"a 1-D array of shape ({w.shape[0]},)", b.shape)
        weights.append(_finite(f"W{i}", w))
        biases.append(_finite(f"b{i}", b))
    return weights, biases


def _teacher(params: dict[str, Any], truth_seed: int) -> _Law:
    """``x ~ U(-1,1)^p``; the user's network on the first inputs; Gaussian or class draws."""
    del truth_seed  # the truth is given, not drawn
    if params["weights"] is None:
        raise InvalidParameterError("weights", "given (the teacher's layers)", None)
    weights, biases = _load_teacher(params["weights"])
    activation = parse_enum(Activation, params["activation"], "activation")
    fan_in = weights[0].shape[1]
    p = (
        fan_in
        if params["p"] is None
        else check_integer("p", params["p"], lower=fan_in, upper=max(fan_in, _MAX_P))
    )
    likelihood = _likelihood(params["likelihood"], tuple(Likelihood))
    outputs = weights[-1].shape[0]
    if likelihood is Likelihood.BERNOULLI and outputs != 1:
        raise InvalidParameterError(f"W{len(weights)}", "1 row (one logit) for bernoulli", outputs)
    if likelihood is Likelihood.CATEGORICAL and outputs < 2:
        raise InvalidParameterError(
            f"W{len(weights)}", "at least 2 rows (one logit per class) for categorical", outputs
        )
    sigma_e = (
        check_positive("sigma_e", params["sigma_e"]) if likelihood is Likelihood.GAUSSIAN else None
    )
    truth = _teacher_truth(weights, biases, activation, p)

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        x = g.uniform(-1.0, 1.0, size=(m, p))
        f = teacher_forward(x[:, :fan_in], weights, biases, activation)
        if likelihood is Likelihood.BERNOULLI:
            return x, expit(f)
        if likelihood is Likelihood.CATEGORICAL:
            return x, softmax(f, axis=1)
        return x, f

    return _Law(p, outputs, likelihood, sigma_e, truth, sample)


def _bai_f0(x: np.ndarray) -> np.ndarray:
    """``f0 = 7 x2 / (1 + x1^2) + 5 sin(x3 x4) + 2 x5`` (1-based ``x_j``)."""
    return (7 * x[:, 1] / (1 + x[:, 0] ** 2) + 5 * np.sin(x[:, 2] * x[:, 3]) + 2 * x[:, 4])[:, None]


def _bai_sparse_function(params: dict[str, Any], truth_seed: int) -> _Law:
    """Bai, Song & Cheng (2020): ``x ~ U(-1,1)^p``, ``y = f0(x) + sigma_e e``."""
    del truth_seed  # f0 is fixed
    p = check_integer("p", params["p"], lower=5, upper=_MAX_P)
    sigma_e = check_positive("sigma_e", params["sigma_e"])

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        x = g.uniform(-1.0, 1.0, size=(m, p))
        return x, _bai_f0(x)

    return _Law(p, 1, Likelihood.GAUSSIAN, sigma_e, Truth(relevant_inputs=tuple(range(5))), sample)


def _equicorrelated(g: np.random.Generator, m: int, p: int) -> np.ndarray:
    """``x_j = (e + z_j) / sqrt 2``, ``e, z_j ~ N(0, 1)`` independent: pairwise correlation 1/2."""
    e = g.standard_normal((m, 1))
    return (e + g.standard_normal((m, p))) / math.sqrt(2.0)


def _sun_f0(x: np.ndarray) -> np.ndarray:
    """``f0 = 5 x2 / (1 + x1^2) + 5 sin(x3 x4) + 2 x5`` (1-based ``x_j``)."""
    return (5 * x[:, 1] / (1 + x[:, 0] ** 2) + 5 * np.sin(x[:, 2] * x[:, 3]) + 2 * x[:, 4])[:, None]


def _sun_regression(params: dict[str, Any], truth_seed: int) -> _Law:
    """Sun, Song & Liang (2021): equicorrelated Gaussian inputs, ``y = f0(x) + sigma_e e``."""
    del truth_seed  # f0 is fixed
    p = check_integer("p", params["p"], lower=5, upper=_MAX_P)
    sigma_e = check_positive("sigma_e", params["sigma_e"])

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        x = _equicorrelated(g, m, p)
        return x, _sun_f0(x)

    return _Law(p, 1, Likelihood.GAUSSIAN, sigma_e, Truth(relevant_inputs=tuple(range(5))), sample)


def _sun_label(x: np.ndarray) -> np.ndarray:
    """``1{exp(x1) + x2^2 + 5 sin(x3 x4) - 3 > 0}`` (1-based ``x_j``)."""
    return np.exp(x[:, 0]) + x[:, 1] ** 2 + 5 * np.sin(x[:, 2] * x[:, 3]) - 3 > 0


def _sun_classification(params: dict[str, Any], truth_seed: int) -> _Law:
    """Sun, Song & Liang (2021): equicorrelated inputs, deterministic label, balanced classes.

    Each sample of size ``m`` holds ``m // 2`` points of class 1 and ``m - m // 2``
    of class 0, each drawn from the law of ``x`` given its class (rejection on
    the first four coordinates), then shuffled. This is the law of the reference
    script, which redraws a point whose class is already full.
    """
    del truth_seed  # f0 is fixed
    p = check_integer("p", params["p"], lower=4, upper=_MAX_P)
    likelihood = _likelihood(params["likelihood"], (Likelihood.CATEGORICAL, Likelihood.BERNOULLI))

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        need = {True: m // 2, False: m - m // 2}
        kept: dict[bool, list[np.ndarray]] = {True: [], False: []}
        while any(need.values()):
            size = max(2 * m, 256)
            e = g.standard_normal((size, 1))
            head = np.concatenate([(e + g.standard_normal((size, 4))) / math.sqrt(2.0), e], axis=1)
            label = _sun_label(head)
            for cls in (True, False):
                take = head[label == cls][: need[cls]]
                kept[cls].append(take)
                need[cls] -= take.shape[0]
        rows = np.concatenate([*kept[True], *kept[False]])
        labels = np.concatenate([np.ones(m // 2), np.zeros(m - m // 2)])
        order = g.permutation(m)
        rows, labels = rows[order], labels[order]
        x = np.empty((m, p))
        x[:, :4] = rows[:, :4]
        x[:, 4:] = (rows[:, 4:5] + g.standard_normal((m, p - 4))) / math.sqrt(2.0)
        if likelihood is Likelihood.BERNOULLI:
            return x, labels[:, None]
        return x, np.stack([1.0 - labels, labels], axis=1)

    outputs = 1 if likelihood is Likelihood.BERNOULLI else 2
    return _Law(p, outputs, likelihood, None, Truth(relevant_inputs=tuple(range(4))), sample)


def _cubic_small_n(params: dict[str, Any], truth_seed: int) -> _Law:
    """``x ~ U(-4, 4)``, ``f0 = x^3``, ``y = f0 + sigma_e e`` (``sigma_e = 3``)."""
    del truth_seed  # f0 is fixed
    sigma_e = check_positive("sigma_e", params["sigma_e"])

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        x = g.uniform(-4.0, 4.0, size=(m, 1))
        return x, x**3

    return _Law(1, 1, Likelihood.GAUSSIAN, sigma_e, Truth(relevant_inputs=(0,)), sample)


def _names(field: str, value: object, what: str) -> list[str]:
    """A column or array name, or a non-empty list of them, as a list of strings."""
    names = [value] if isinstance(value, str) else value
    if (
        not isinstance(names, list | tuple)
        or not names
        or not all(isinstance(c, str) for c in names)
    ):
        raise InvalidParameterError(field, f"a {what} or a non-empty list of them", value)
    return list(names)


def _read_table(path: Path, features: object, target: object) -> tuple[object, object]:
    """``X`` and ``y`` from ``.npz`` (array names) or ``.csv`` / ``.parquet`` (column names)."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        names = {"features": "X" if features is None else features, "target": target or "y"}
        arrays = _load_npz("path", path)
        for field, key in names.items():
            if not isinstance(key, str) or key not in arrays:
                raise InvalidParameterError(
                    field, f"the name of an array in {path.name}: one of {sorted(arrays)}", key
                )
        return arrays[names["features"]], arrays[names["target"]]
    import pandas as pd

    kind = "CSV file with a header row" if suffix == ".csv" else "Parquet file"
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # empty, binary or damaged files are the user's input
        raise InvalidParameterError(
            "path", f"a readable {kind}", f"{path.name}: {_reason(exc)}"
        ) from None
    columns = [str(c) for c in frame.columns]
    if target is None:
        raise InvalidParameterError("target", f"a column name of {path.name}", None)
    targets = _names("target", target, "column name")
    chosen = (
        [c for c in columns if c not in targets]
        if features is None
        else _names("features", features, "column name")
    )
    for field, names in (("target", targets), ("features", chosen)):
        missing = [c for c in names if c not in columns]
        if missing or not names:
            raise InvalidParameterError(field, f"column names of {path.name}: {columns}", missing)
    if frame.empty:
        raise InvalidParameterError("path", f"a {kind} and data rows", f"{path.name}: no rows")
    frame.columns = columns
    out = []
    for field, names in (("features", list(chosen)), ("target", targets)):
        try:
            out.append(frame[names].to_numpy(dtype=np.float64))
        except (TypeError, ValueError):
            raise InvalidParameterError(field, "numeric columns", names) from None
    return out[0], out[1]


def _dataset_arrays(params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, Likelihood, int]:
    """The checked ``x [rows, p]`` and ``y [rows, 1 or outputs]`` of a ``dataset`` design, its
    likelihood and its network outputs."""
    path, x, y = params["path"], params["x"], params["y"]
    if (path is None) == (x is None and y is None) or (path is None and (x is None or y is None)):
        raise InvalidParameterError(
            "path", "given (.npz, .csv or .parquet), or else both x and y given", path
        )
    if path is not None:
        if not isinstance(path, str | os.PathLike):
            raise InvalidParameterError("path", "a file name", path)
        path = Path(path)
        if not path.is_file() or path.suffix.lower() not in (".npz", ".csv", ".parquet"):
            raise InvalidParameterError(
                "path", "an existing .npz, .csv or .parquet file", str(params["path"])
            )
        x, y = _read_table(path, params["features"], params["target"])
    x = _finite("x", _real_array("x", x, booleans=True))
    y = _finite("y", _real_array("y", y, booleans=True))
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise InvalidParameterError("x", "a 2-D array [rows >= 2, features >= 1]", x.shape)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or y.shape[0] != x.shape[0] or y.shape[1] < 1:
        raise InvalidParameterError(
            "y", f"an array [{x.shape[0]}] or [{x.shape[0]}, outputs]", y.shape
        )
    likelihood = _likelihood(params["likelihood"], tuple(Likelihood))
    outputs = y.shape[1]
    if likelihood is not Likelihood.GAUSSIAN:
        if outputs != 1:
            raise InvalidParameterError("y", "one column of class labels", y.shape)
        labels = y[:, 0]
        if likelihood is Likelihood.BERNOULLI and not np.isin(labels, (0.0, 1.0)).all():
            raise InvalidParameterError(
                "y", "labels in {0, 1} for bernoulli", np.unique(labels)[:5]
            )
        if (labels < 0).any() or (labels != np.round(labels)).any() or labels.max() < 1:
            raise InvalidParameterError(
                "y", "integer class labels 0..K-1 with K >= 2", np.unique(labels)[:5]
            )
        outputs = 1 if likelihood is Likelihood.BERNOULLI else int(labels.max()) + 1
    return x, y, likelihood, outputs


def _dataset(params: dict[str, Any], *, n, replicates, seed, n_test, dtype) -> _Draws:
    """User data split by the seed: test rows (stream ``"test"``), replicate rows (``"data"``)."""
    x, y, likelihood, outputs = _dataset_arrays(params)
    rows = x.shape[0]
    n = check_integer("n", n, lower=1, upper=rows - 1)
    n_test = (
        rows - n if n_test is None else check_integer("n_test", n_test, lower=1, upper=rows - n)
    )
    order = np.random.default_rng(stream_seed(seed, "test")).permutation(rows)
    test, pool = order[:n_test], order[n_test:]
    chosen = np.stack(
        [
            np.random.default_rng(stream_seed(seed, "data", r)).choice(pool, size=n, replace=False)
            for r in range(replicates)
        ]
    )

    def responses(index: np.ndarray) -> torch.Tensor:
        values = torch.from_numpy(y[index])
        if likelihood is Likelihood.CATEGORICAL:
            return values[..., 0].to(torch.int64)
        return values.to(dtype)

    return _Draws(
        likelihood=likelihood,
        outputs=outputs,
        x_train=torch.from_numpy(x[chosen]).to(dtype),
        y_train=responses(chosen),
        x_test=torch.from_numpy(x[test]).to(dtype),
        f_test=None,
        y_test=responses(test),
        noise_sd=None,
        truth=None,
    )


# --------------------------------------------------------------------------- registry


def _design(
    name: str,
    version: str,
    description: str,
    run: Callable[..., _Draws],
    defaults: Mapping[str, Any],
    quick: Mapping[str, Any],
) -> Design:
    return Design(
        name,
        version,
        description,
        MappingProxyType(dict(defaults)),
        MappingProxyType(dict(quick)),
        run,
    )


DESIGNS: Mapping[str, Design] = MappingProxyType(
    {
        d.name: d
        for d in (
            _design(
                "relu_teacher",
                "1",
                "x ~ U(-1,1)^p; random ReLU teacher, 5 relevant inputs, active nodes (4, 3), "
                "Var f0 = 1; y = f0 + sigma_e e",
                _synthetic(_relu_teacher),
                {"p": 100, "sigma_e": 1.0, "relevant": 5, "active": (4, 3), "hidden": None},
                {"n": 1024, "replicates": 4, "n_test": 2000, "p": 20},
            ),
            _design(
                "bai_sparse_function",
                "1",
                "x ~ U(-1,1)^p; f0 = 7 x2/(1 + x1^2) + 5 sin(x3 x4) + 2 x5; y = f0 + sigma_e e",
                _synthetic(_bai_sparse_function),
                {"p": 200, "sigma_e": 1.0},
                {"n": 1000, "replicates": 2, "n_test": 2000, "p": 50},
            ),
            _design(
                "sun_regression",
                "1",
                "x_j = (e + z_j)/sqrt 2 ~ N(0,1), correlation 1/2; "
                "f0 = 5 x2/(1 + x1^2) + 5 sin(x3 x4) + 2 x5; y = f0 + sigma_e e",
                _synthetic(_sun_regression),
                {"p": 2000, "sigma_e": 1.0},
                {"n": 1000, "replicates": 2, "n_test": 2000, "p": 100},
            ),
            _design(
                "sun_classification",
                "1",
                "x_j = (e + z_j)/sqrt 2; y = 1{exp(x1) + x2^2 + 5 sin(x3 x4) - 3 > 0}; "
                "exactly balanced classes",
                _synthetic(_sun_classification),
                {"p": 1000, "likelihood": Likelihood.CATEGORICAL},
                {"n": 1000, "replicates": 2, "n_test": 2000, "p": 100},
            ),
            _design(
                "cubic_small_n",
                "1",
                "x ~ U(-4, 4); f0 = x^3; y = f0 + sigma_e e, sigma_e = 3",
                _synthetic(_cubic_small_n),
                {"sigma_e": 3.0},
                {"n": 100, "replicates": 4, "n_test": 2000},
            ),
            _design(
                "teacher",
                "1",
                "x ~ U(-1,1)^p; a given network (W1, b1, ...) on the first inputs, "
                "the rest nuisance; Gaussian, Bernoulli or categorical y",
                _synthetic(_teacher),
                {
                    "weights": None,
                    "activation": Activation.RELU,
                    "p": None,
                    "sigma_e": 1.0,
                    "likelihood": Likelihood.GAUSSIAN,
                },
                {"n": 512, "replicates": 2, "n_test": 2000},
            ),
            _design(
                "dataset",
                "1",
                "user data (X, y) from .npz, .csv or .parquet, split into train and test by seed",
                _dataset,
                {
                    "path": None,
                    "x": None,
                    "y": None,
                    "features": None,
                    "target": None,
                    "likelihood": Likelihood.GAUSSIAN,
                },
                {"replicates": 2},
            ),
        )
    }
)
"""The registry: design name -> :class:`Design`."""


def get_design(design: str | Design) -> Design:
    """The registered :class:`Design` of that name (or the design itself)."""
    if isinstance(design, Design):
        return design
    if not isinstance(design, str) or design not in DESIGNS:
        raise InvalidParameterError("design", "one of " + ", ".join(map(repr, DESIGNS)), design)
    return DESIGNS[design]


def available_rows(design: str | Design, **params: Any) -> int | None:
    """The rows a design's data hold, training and test sets together, or ``None`` (any size).

    ``dataset`` reads and checks its data (as :func:`generate` does) and returns their row
    count, so that a study can check every ``n`` (and ``n_test``) before it runs; the
    synthetic designs draw any size.

    Raises
    ------
    InvalidParameterError
        Unknown design or parameter, or data that :func:`generate` would refuse.
    """
    spec = get_design(design)
    if spec.generator is not _dataset:
        return None
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise InvalidParameterError(
            unknown[0],
            f"a parameter of {spec.name}: one of {sorted(spec.defaults)}",
            params[unknown[0]],
        )
    return int(_dataset_arrays({**spec.defaults, **params})[0].shape[0])


def generate(
    design: str | Design,
    *,
    n: int,
    replicates: int,
    seed: int,
    n_test: int | None = None,
    dtype: torch.dtype = torch.float32,
    **params: Any,
) -> SimulationData:
    """Draw ``replicates`` training sets of size ``n``, a shared test set, and the truth.

    Parameters
    ----------
    design
        A name of :data:`DESIGNS` (``relu_teacher``, ``bai_sparse_function``,
        ``sun_regression``, ``sun_classification``, ``cubic_small_n``,
        ``teacher``, ``dataset``) or a :class:`Design`.
    n
        Training points per replicate (``>= 1``).
    replicates
        Number of independent training sets ``R`` (``>= 1``).
    seed
        Run seed (an integer ``>= 0``); see the module docstring for the streams.
    n_test
        Test points; default 10,000 for the synthetic designs and, for
        ``dataset``, every row not held for training.
    dtype
        Floating dtype of the returned inputs and responses (float32 default).
    **params
        Design parameters; see :attr:`Design.defaults` and ``docs/designs.md``.

    Returns
    -------
    SimulationData

    Raises
    ------
    InvalidParameterError
        Unknown design or parameter, or a parameter outside its range.
    """
    spec = get_design(design)
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise InvalidParameterError(
            unknown[0],
            f"a parameter of {spec.name}: one of {sorted(spec.defaults)}",
            params[unknown[0]],
        )
    n = check_integer("n", n, lower=1)
    replicates = check_integer("replicates", replicates, lower=1)
    seed = check_integer("seed", seed, lower=0)
    if n_test is not None:
        n_test = check_integer("n_test", n_test, lower=1)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InvalidParameterError(
            "dtype", "a floating torch dtype (torch.float32, torch.float64)", dtype
        )
    resolved = {**spec.defaults, **params}
    draws = spec.generator(
        resolved, n=n, replicates=replicates, seed=seed, n_test=n_test, dtype=dtype
    )
    return SimulationData(
        design=spec.name,
        version=spec.version,
        params=MappingProxyType(resolved),
        seed=seed,
        likelihood=draws.likelihood,
        outputs=draws.outputs,
        x_train=draws.x_train,
        y_train=draws.y_train,
        x_test=draws.x_test,
        f_test=draws.f_test,
        y_test=draws.y_test,
        noise_sd=draws.noise_sd,
        truth=draws.truth,
    )
