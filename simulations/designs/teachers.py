"""Teacher networks: ``relu_teacher`` (a random ReLU teacher) and ``teacher`` (a given one),
with the forward pass and the truth (relevant inputs, active nodes, weight bounds) of a
teacher's weights."""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.special import expit, softmax

from simulations.designs.base import (
    MAX_P,
    Law,
    Truth,
    check_finite,
    check_likelihood,
    design,
    load_npz,
    read_only,
    real_array,
)
from simulations.enums import Likelihood
from ssbnn_theory.enums import Activation, parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_integer, check_integer_sequence, check_positive

_REFERENCE_SIZE = 1_000_000
"""Reference sample (stream ``"truth"``) that scales ``relu_teacher``'s output to ``Var f0 = 1``."""

_ALIVE_RANGE = (0.05, 0.95)
"""``relu_teacher`` redraws its weights until each hidden node is positive on this share."""

_MIN_NODE_EFFECT = 0.2
"""``relu_teacher`` redraws its weights until removing any node of hidden layer ``l``, with the
next layer refitted by least squares, leaves at least this share of ``Var f0 / s_l``
unexplained (a fifth of the layer's equal share ``1 / s_l``)."""

_EFFECT_SAMPLE = 20_000
"""Points of the reference sample on which the node effects are measured."""

_MAX_TEACHER_DRAWS = 1000

_MAX_RELEVANT = 100
"""``relu_teacher``: most relevant inputs and active nodes per layer (its reference sample
of 10^6 points is held in memory at this width)."""

_MAX_TEACHER_WIDTH = 1000
"""``relu_teacher``: widest teacher layer ``hidden[l]`` (its zero-padded weights are stored)."""


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
    frozen_w = tuple(read_only(w) for w in (padded, *weights[1:]))
    frozen_b = tuple(read_only(b) for b in biases)
    return Truth(
        relevant_inputs=tuple(int(i) for i in np.flatnonzero(inputs)),
        active_nodes=tuple(int(m.sum()) for m in nodes),
        hidden=tuple(int(w.shape[0]) for w in weights[:-1]),
        bounds=bounds,
        activation=activation,
        weights=frozen_w,
        biases=frozen_b,
    )


def node_effects(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray
) -> list[np.ndarray]:
    """What each hidden node of a ReLU network carries: per layer ``l`` and node ``j``, the share

        e_lj = mean_x ( f(x) - f_{-lj}(x) )^2 / Var_x f(x)

    where ``f_{-lj}`` is the network without node ``j`` of layer ``l`` and with the next
    layer's weights and bias refitted by least squares to the pre-activations they had
    (the removal that ``simulations.structure.indicator_pass`` proposes). A node whose
    ``e_lj`` is small can be dropped at almost no cost in fit: its role is carried by the
    others. Means and variance are over the rows of ``x``.
    """
    hs = [x]
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        hs.append(np.maximum(hs[-1] @ w.T + b, 0.0))
    f = hs[-1] @ weights[-1].T + biases[-1]
    effects = []
    for layer in range(1, len(hs)):
        h = hs[layer]
        target = h @ weights[layer].T + biases[layer]
        row = np.empty(h.shape[1])
        for j in range(h.shape[1]):
            design = np.c_[np.delete(h, j, axis=1), np.ones(len(h))]
            coef, *_ = np.linalg.lstsq(design, target, rcond=None)
            z = design @ coef
            for w, b in zip(weights[layer + 1 :], biases[layer + 1 :], strict=True):
                z = np.maximum(z, 0.0) @ w.T + b
            row[j] = np.mean((z - f) ** 2) / f.var()
        effects.append(row)
    return effects


@functools.lru_cache(maxsize=16)
def _random_relu_teacher(
    truth_seed: int, relevant: int, active: tuple[int, ...]
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The random ReLU teacher of ``relu_teacher`` on ``relevant`` inputs (cached: it is pure).

    Weights ``+-U[0.5, 1.5]`` (random sign), biases ``U(-0.5, 0.5)``; redrawn until
    every hidden node is positive on a share in ``[0.05, 0.95]`` of a reference
    sample ``U(-1,1)^relevant`` of 10^6 points, so that no node is dead or linear,
    and until every node of hidden layer ``l`` carries a share of at least ``0.2 / s_l``
    of ``Var f0`` (:func:`node_effects` on the first 20,000 reference points; ``s_l`` the
    layer's active nodes), so that the active structure is identified.
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
        with np.errstate(divide="ignore", invalid="ignore"):  # a constant f: shares NaN
            effects = node_effects(weights, biases, x_ref[:_EFFECT_SAMPLE])
        if not all(e.min() * len(e) >= _MIN_NODE_EFFECT for e in effects):
            continue
        h, alive = x_ref, True
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            pre = h @ w.T + b
            share = (pre > 0).mean(axis=0)
            alive &= bool(((share >= _ALIVE_RANGE[0]) & (share <= _ALIVE_RANGE[1])).all())
            h = np.maximum(pre, 0.0)
        sd = float((h @ weights[-1].T + biases[-1]).std())
        if alive and sd > 0:
            break
    else:  # deep, narrow structures where almost every draw has a dead, linear or idle node
        raise InvalidParameterError(
            "active", "a structure for which a non-degenerate teacher can be drawn", active
        )
    weights[-1] = weights[-1] / sd
    biases[-1] = biases[-1] / sd
    return tuple(map(read_only, weights)), tuple(map(read_only, biases))


def _relu_teacher(
    truth_seed: int,
    *,
    p: int = 100,
    sigma_e: float = 1.0,
    relevant: int = 5,
    active: Sequence[int] = (4, 3),
    hidden: Sequence[int] | None = None,
) -> Law:
    """x ~ U(-1,1)^p; random ReLU teacher, 5 relevant inputs, active nodes (4, 3),
    Var f0 = 1; y = f0 + sigma_e e

    The teacher acts on the first ``relevant`` inputs, with ``active`` nodes per hidden layer
    (padded with inactive nodes to ``hidden``); Gaussian noise.
    """
    relevant = check_integer("relevant", relevant, lower=1, upper=_MAX_RELEVANT)
    p = check_integer("p", p, lower=relevant, upper=MAX_P)
    sigma_e = check_positive("sigma_e", sigma_e)
    active = check_integer_sequence("active", active, lower=1, upper=_MAX_RELEVANT, first=0)
    hidden = (
        active
        if hidden is None
        else check_integer_sequence("hidden", hidden, lower=1, upper=_MAX_TEACHER_WIDTH, first=0)
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

    return Law(p, 1, Likelihood.GAUSSIAN, sigma_e, truth, sample)


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
        value = load_npz("weights", path)
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
        w = real_array(f"W{i}", w)
        b = real_array(f"b{i}", b)
        fan_in = weights[-1].shape[0] if weights else None
        if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
            raise InvalidParameterError(f"W{i}", "a non-empty 2-D array [out, in]", w.shape)
        if fan_in is not None and w.shape[1] != fan_in:
            raise InvalidParameterError(
                f"W{i}", f"an array with {fan_in} columns (the rows of W{i - 1})", w.shape
            )
        if b.shape != (w.shape[0],):
            raise InvalidParameterError(f"b{i}", f"a 1-D array of shape ({w.shape[0]},)", b.shape)
        weights.append(check_finite(f"W{i}", w))
        biases.append(check_finite(f"b{i}", b))
    return weights, biases


def _teacher(
    truth_seed: int,
    *,
    weights: object = None,
    activation: Activation | str = Activation.RELU,
    p: int | None = None,
    sigma_e: float = 1.0,
    likelihood: Likelihood | str = Likelihood.GAUSSIAN,
) -> Law:
    """x ~ U(-1,1)^p; a given network (W1, b1, ...) on the first inputs,
    the rest nuisance; Gaussian, Bernoulli or categorical y
    """
    del truth_seed  # the truth is given, not drawn
    if weights is None:
        raise InvalidParameterError("weights", "given (the teacher's layers)", None)
    weights, biases = _load_teacher(weights)
    activation = parse_enum(Activation, activation, "activation")
    fan_in = weights[0].shape[1]
    p = fan_in if p is None else check_integer("p", p, lower=fan_in, upper=max(fan_in, MAX_P))
    likelihood = check_likelihood(likelihood, tuple(Likelihood))
    outputs = weights[-1].shape[0]
    if likelihood is Likelihood.BERNOULLI and outputs != 1:
        raise InvalidParameterError(f"W{len(weights)}", "1 row (one logit) for bernoulli", outputs)
    if likelihood is Likelihood.CATEGORICAL and outputs < 2:
        raise InvalidParameterError(
            f"W{len(weights)}", "at least 2 rows (one logit per class) for categorical", outputs
        )
    sigma_e = check_positive("sigma_e", sigma_e) if likelihood is Likelihood.GAUSSIAN else None
    truth = _teacher_truth(weights, biases, activation, p)

    def sample(g: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        x = g.uniform(-1.0, 1.0, size=(m, p))
        f = teacher_forward(x[:, :fan_in], weights, biases, activation)
        if likelihood is Likelihood.BERNOULLI:
            return x, expit(f)
        if likelihood is Likelihood.CATEGORICAL:
            return x, softmax(f, axis=1)
        return x, f

    return Law(p, outputs, likelihood, sigma_e, truth, sample)


RELU_TEACHER = design(
    "relu_teacher", "2", _relu_teacher, {"n": 1024, "replicates": 4, "n_test": 2000, "p": 20}
)
TEACHER = design("teacher", "1", _teacher, {"n": 512, "replicates": 2, "n_test": 2000})
