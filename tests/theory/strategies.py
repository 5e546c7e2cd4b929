"""Shared hypothesis strategies, float64 reference networks and result keys (theory tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from ssbnn_theory import Activation, Architecture, FanIn, PriorSpec, slabs

RESULT_KEYS = (
    "n",
    "r_n",
    "eps_n",
    "xi_n",
    "risk_bound",
    "inclusion_prob",
    "terms",
    "conditions",
    "prior",
    "architecture",
    "n_informative",
    "likelihood",
)
"""Keys the tests require of ``contraction_rate(...).to_dict()`` and of ``ssbnn rate --json``."""

ACTIVATIONS = {
    Activation.RELU: (lambda u: np.maximum(u, 0.0), lambda u: (u > 0).astype(float)),
    Activation.TANH: (np.tanh, lambda u: 1.0 - np.tanh(u) ** 2),
    Activation.SIGMOID: (
        lambda u: 1.0 / (1.0 + np.exp(-u)),
        lambda u: np.exp(-u) / (1.0 + np.exp(-u)) ** 2,
    ),
    Activation.SILU: (
        lambda u: u / (1.0 + np.exp(-u)),
        lambda u: (1.0 + np.exp(-u) + u * np.exp(-u)) / (1.0 + np.exp(-u)) ** 2,
    ),
}


@st.composite
def architectures(
    draw: st.DrawFn,
    max_depth: int = 3,
    max_width: int = 5,
    max_p: int = 5,
    max_outputs: int = 2,
    min_bound: float = 0.0,
    max_bound: float = 3.0,
) -> Architecture:
    """Valid architectures of every activation and fan-in mode that applies."""
    depth = draw(st.integers(1, max_depth))
    hidden = draw(st.lists(st.integers(1, max_width), min_size=depth, max_size=depth))
    active = [draw(st.integers(1, k)) for k in hidden]
    bounds = draw(
        st.lists(
            st.floats(min_bound, max_bound, allow_nan=False),
            min_size=depth + 1,
            max_size=depth + 1,
        )
    )
    activation = draw(st.sampled_from(list(Activation)))
    fan_in = FanIn.FULL
    if activation.offset == 0.0 and draw(st.booleans()):
        fan_in = FanIn.ACTIVE
    return Architecture(
        draw(st.integers(1, max_p)),
        hidden,
        active,
        bounds,
        activation,
        draw(st.integers(1, max_outputs)),
        fan_in,
    )


@st.composite
def prior_specs(draw: st.DrawFn, families: tuple[str, ...] | None = None):
    """Prior families (default: every registered one, ``ssbnn_theory.slabs.SLABS``) with
    hyperparameters in moderate ranges, regularised or not."""
    family = draw(st.sampled_from(families or tuple(f.value for f in slabs.families())))
    c = None
    if slabs.slab_of(family).takes_slab_width and draw(st.booleans()):
        c = draw(st.floats(0.3, 3.0))
    return PriorSpec(
        family,
        sigma_0=draw(st.floats(0.5, 2.0)),
        kappa=draw(st.floats(0.5, 3.0)),
        global_scale=draw(st.floats(0.3, 3.0)),
        slab_width=c,
        gaussian_output=draw(st.booleans()),
    )


@dataclass
class Network:
    """A float64 MLP: ``weights[l]`` is ``k_l x k_{l-1}``, ``biases[l]`` has ``k_l`` entries."""

    arch: Architecture
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    patterns: list[np.ndarray]  # boolean active masks per hidden layer (L of them)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Outputs ``[batch, outputs]`` for inputs ``[batch, p]``."""
        psi = ACTIVATIONS[self.arch.activation][0]
        h = x
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = psi(h @ w.T + b)
        return h @ self.weights[-1].T + self.biases[-1]

    def hidden_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Hidden activations ``h_1..h_L``."""
        psi = ACTIVATIONS[self.arch.activation][0]
        out, h = [], x
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = psi(h @ w.T + b)
            out.append(h)
        return out

    def gradient(self, x: np.ndarray, output: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """``d f_output(x) / d (weights, biases)`` at one input ``x`` (backpropagation)."""
        psi, dpsi = ACTIVATIONS[self.arch.activation]
        hs, us = [x], []
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            us.append(hs[-1] @ w.T + b)
            hs.append(psi(us[-1]))
        grad_out = np.zeros(self.weights[-1].shape[0])
        grad_out[output] = 1.0
        gw = [np.outer(grad_out, hs[-1])]
        gb = [grad_out]
        back = self.weights[-1].T @ grad_out
        for layer in range(len(us) - 1, -1, -1):
            delta = back * dpsi(us[layer])
            gw.append(np.outer(delta, hs[layer]))
            gb.append(delta)
            back = self.weights[layer].T @ delta
        return gw[::-1], gb[::-1]

    def constrained_masks(self) -> list[np.ndarray]:
        """Per layer, which weight coordinates the L1 box constrains (rows of active groups;
        under ``fan_in="active"`` only columns of active previous nodes, for ``l >= 2``)."""
        masks = []
        for layer, w in enumerate(self.weights):
            rows = self.patterns[layer] if layer < len(self.patterns) else np.ones(w.shape[0], bool)
            cols = np.ones(w.shape[1], bool)
            if self.arch.fan_in is FanIn.ACTIVE and layer >= 1:
                cols = self.patterns[layer - 1]
            masks.append(np.outer(rows, cols))
        return masks

    def row_masks(self) -> list[np.ndarray]:
        """Per layer, the active rows (all rows of the output layer)."""
        return [*self.patterns, np.ones(self.weights[-1].shape[0], bool)]


def random_truth(arch: Architecture, rng: np.random.Generator, extreme: float = 0.3) -> Network:
    """A node-sparse ``theta*``: ``s_l`` random active nodes, coordinates in ``[-B_l, B_l]``
    (a fraction ``extreme`` exactly at ``+-B_l``), inactive groups exactly zero incl. bias."""
    widths = arch.widths
    patterns = []
    for k, s in zip(arch.hidden, arch.active, strict=True):
        mask = np.zeros(k, bool)
        mask[rng.choice(k, size=s, replace=False)] = True
        patterns.append(mask)
    weights, biases = [], []
    for layer in range(arch.depth + 1):
        bound = arch.bounds[layer]
        shape = (widths[layer + 1], widths[layer])
        w = rng.uniform(-bound, bound, size=shape)
        b = rng.uniform(-bound, bound, size=shape[0])
        at_edge = rng.random(shape) < extreme
        w[at_edge] = bound * rng.choice([-1.0, 1.0], size=int(at_edge.sum()))
        if layer < arch.depth:
            w[~patterns[layer]] = 0.0
            b[~patterns[layer]] = 0.0
        weights.append(w)
        biases.append(b)
    return Network(arch, weights, biases, patterns)


def perturb(
    truth: Network,
    delta: float,
    rng: np.random.Generator,
    mode: str,
    x0: np.ndarray | None = None,
) -> Network:
    """A ``theta`` with ``truth``'s pattern and ``|theta - theta*| <= delta`` on constrained
    coordinates. ``mode``: ``"uniform"`` (random in the box), ``"corner"`` (random signs, the
    box's corners) or ``"gradient"`` (``delta * sign(d f(x0) / d theta)``, the first-order worst
    case at ``x0``). Unconstrained coordinates (weights leaving inactive nodes under
    ``fan_in="active"``) get large arbitrary values: the bound must not depend on them."""
    if mode == "gradient":
        gw, gb = truth.gradient(x0)
        sw = [np.where(g >= 0, 1.0, -1.0) for g in gw]
        sb = [np.where(g >= 0, 1.0, -1.0) for g in gb]
    weights, biases = [], []
    masks, rows = truth.constrained_masks(), truth.row_masks()
    for layer, (w, b) in enumerate(zip(truth.weights, truth.biases, strict=True)):
        if mode == "uniform":
            dw, db = rng.uniform(-1, 1, w.shape), rng.uniform(-1, 1, b.shape)
        elif mode == "corner":
            dw, db = rng.choice([-1.0, 1.0], w.shape), rng.choice([-1.0, 1.0], b.shape)
        else:
            dw, db = sw[layer], sb[layer]
        new_w = np.where(masks[layer], w + delta * dw, 0.0)
        free = np.outer(rows[layer], np.ones(w.shape[1], bool)) & ~masks[layer]
        new_w = np.where(free, rng.uniform(-50.0, 50.0, w.shape), new_w)
        new_b = np.where(rows[layer], b + delta * db, 0.0)
        weights.append(new_w)
        biases.append(new_b)
    return Network(truth.arch, weights, biases, truth.patterns)


def probe_inputs(p: int, rng: np.random.Generator, count: int = 64) -> np.ndarray:
    """Random points of ``[-1, 1]^p`` and sign-pattern corners (all of them when ``p <= 6``)."""
    inside = rng.uniform(-1.0, 1.0, size=(count, p))
    if p <= 6:
        corners = np.array(np.meshgrid(*[[-1.0, 1.0]] * p)).reshape(p, -1).T
    else:
        corners = rng.choice([-1.0, 1.0], size=(count, p))
    return np.concatenate([inside, corners], axis=0)
