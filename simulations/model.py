"""The MLP builder: ``ModelConfig`` and ``BayesianMLP``, a batch of ``R`` independent replicates.

A model has ``L >= 1`` hidden layers, each with its own prior family
(:class:`simulations.enums.Prior`), and a dense mean-field Gaussian output layer
(no spike). An optional node spike on the inputs lets node priors select inputs.
Replicate ``r`` draws its initial values from stream ``"init"`` and its training
noise from stream ``"noise"`` of ``replicate_seeds[r]`` (:func:`simulations.rng.stream_seed`),
so replicate ``r`` does not depend on the other replicates. ``docs/engine.md``
describes the layers; the shapes follow ``docs/architecture.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simulations.enums import Likelihood, Prior
from simulations.kl import LogProbability
from simulations.layers import (
    EdgeSpikeSlabLinear,
    InputSpike,
    MeanFieldLinear,
    NodeSpikeSlabLinear,
    draw_noise,
    replicate_generators,
)
from simulations.layers.registry import scale_factor_class
from simulations.likelihoods import make_likelihood
from simulations.rng import stream_seed
from ssbnn_theory.enums import Activation, parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.priors import ENGINE_GLOBAL_SCALE, ENGINE_SLAB_WIDTH

__all__ = ["BayesianMLP", "Kept", "ModelConfig", "activation_function", "activation_module"]


def activation_function(activation: Activation | str):
    """The torch function of an :class:`ssbnn_theory.Activation`."""
    return _ACTIVATIONS[parse_enum(Activation, activation, "activation")]


def activation_module(activation: Activation | str) -> nn.Module:
    """A fresh ``torch.nn`` module of an :class:`ssbnn_theory.Activation`."""
    return _ACTIVATION_MODULES[parse_enum(Activation, activation, "activation")]()


_ACTIVATIONS = {
    Activation.RELU: torch.relu,
    Activation.TANH: torch.tanh,
    Activation.SIGMOID: torch.sigmoid,
    Activation.SILU: F.silu,
}
_ACTIVATION_MODULES = {
    Activation.RELU: nn.ReLU,
    Activation.TANH: nn.Tanh,
    Activation.SIGMOID: nn.Sigmoid,
    Activation.SILU: nn.SiLU,
}

RHO_INIT_REFERENCE = -6.0
"""The reference initial ``rho`` (``sd = softplus(-6) = 0.0025``)."""
RHO_INIT_WORDS = {"auto": -3.0, "reference": RHO_INIT_REFERENCE}
"""``rho_init`` by name: the first hidden layer's initial ``rho``; later layers and the
output start at :data:`RHO_INIT_REFERENCE` (docs/engine.md, "When the truth is the optimum")."""

# Working-set budget of sample_functions: draws are processed in chunks whose
# widest activation tensor stays below this many elements.
_SAMPLE_CHUNK_ELEMENTS = 2**25


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _positive(value: object, name: str) -> float:
    if not _is_number(value) or not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(name, "a finite number > 0", value)
    return float(value)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, priors and variational options of a :class:`BayesianMLP`.

    Parameters
    ----------
    p
        Number of inputs.
    hidden
        Hidden widths ``k_1..k_L`` (``L >= 1``).
    outputs
        Network outputs (1 for Gaussian and Bernoulli; the class count for categorical).
    activation
        :class:`ssbnn_theory.Activation` of the hidden layers.
    prior
        :class:`simulations.enums.Prior` of each hidden layer: one value for all
        layers, or one per layer.
    prior_inclusion
        Prior inclusion probabilities ``lambda_l`` of the hidden layers: one
        number, one per layer, or ``"reference"``: the reference implementation's
        layer-wise prescription (``ssbnn_theory.selection.reference_inclusion_probs``,
        needs ``n``); for edge layers ``"reference"`` uses Bai et al.'s
        ``log(1/lambda) = log T + 0.1 [(L+1) log max_l k_l + log(sqrt(n) p)]``.
        ``"theory"``: the theory's prescription
        ``log(1/lambda_l) = log k_l + d_l log(Lambda sqrt n)``
        (``ssbnn_theory.selection.theory_log_inv_inclusion``, needs ``n``; ``Lambda`` of
        the architecture with weight bounds 1), carried in log space because ``lambda``
        underflows float64 (:class:`simulations.kl.LogProbability`); edge layers then use
        Bai et al.'s formula above. Ignored by dense layers.
    likelihood
        :class:`simulations.enums.Likelihood`.
    sigma_e
        Known Gaussian noise sd, or ``None`` to learn it (Gaussian only).
    sigma_e_init
        Initial ``sigma_e`` when learned.
    sigma_0
        Prior sd of the slab variables ``beta`` (reference 1).
    kappa_shape, kappa_rate
        SS-GL: Gamma hyperprior of ``kappa^2`` (default shape 1, rate 1e-3: flat
        over the range ``kappa^2 ~ d`` that the initial ``tau^2 = 1`` implies).
    global_scale
        SS-GHS: ``g ~ C+(0, global_scale)``; default ``sqrt(1e-5)`` (``g_0^2 = 1e-5``,
        docs/engine.md, "Layers"), ``ssbnn_theory.priors.ENGINE_GLOBAL_SCALE``: the same
        name and value in the theory, which fixes ``g`` at it.
    local_scale
        SS-GHS: ``tau ~ C+(0, local_scale)`` (default 1).
    slab_width
        SS-GHS: slab width ``c`` of the regularised horseshoe (reference 1);
        ``None`` for the plain horseshoe.
    input_spike
        Put a node spike (no slab) on the ``p`` inputs, so node priors select inputs.
    input_inclusion
        Prior inclusion probability of an input; default ``min(1/2, 1/p)``.
    inclusion_init
        Initial inclusion probability of every indicator (reference 0.99).
    rho_init
        Initial ``rho`` of the Gaussian variational factors, ``sd = softplus(rho)``:
        ``"auto"`` (default) -3 in the first hidden layer, whose weights include every
        irrelevant input's, and -6 in every later layer and the output; ``"reference"``
        -6 everywhere; one number for every layer; or one per weight layer, the ``L``
        hidden layers' then the output's (``L + 1``; :attr:`rho_inits`). A layer's
        number serves all its factors (weights, biases, and the slab's scales).
    temperature
        Concrete temperature of the relaxed indicators (reference 0.5); a
        :class:`simulations.relaxed.TemperatureSchedule` in ``TrainConfig`` overrides it.
    straight_through
        Hard indicators in the forward pass with the Concrete gradient (reference),
        else soft Concrete samples.
    """

    p: int
    hidden: tuple[int, ...]
    outputs: int = 1
    activation: Activation | str = Activation.RELU
    prior: Prior | str | tuple[Prior | str, ...] = Prior.SS_GHS
    prior_inclusion: float | str | tuple[float, ...] = "reference"
    likelihood: Likelihood | str = Likelihood.GAUSSIAN
    sigma_e: float | None = None
    sigma_e_init: float = 1.0
    sigma_0: float = 1.0
    kappa_shape: float = 1.0
    kappa_rate: float = 1e-3
    global_scale: float = ENGINE_GLOBAL_SCALE
    local_scale: float = 1.0
    slab_width: float | None = ENGINE_SLAB_WIDTH
    input_spike: bool = False
    input_inclusion: float | None = None
    inclusion_init: float = 0.99
    rho_init: float | str | tuple[float, ...] = "auto"
    temperature: float = 0.5
    straight_through: bool = True

    def __post_init__(self) -> None:
        setter = object.__setattr__
        if not _is_number(self.p) or not float(self.p).is_integer() or self.p < 1:
            raise InvalidParameterError("p", "an integer >= 1", self.p)
        setter(self, "p", int(self.p))
        hidden = (self.hidden,) if _is_number(self.hidden) else self.hidden
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise InvalidParameterError(
                "hidden", "a sequence of integers >= 1", self.hidden
            ) from None
        if not hidden:
            raise InvalidParameterError("hidden", "at least one hidden layer", self.hidden)
        for i, k in enumerate(hidden):
            if not _is_number(k) or not float(k).is_integer() or k < 1:
                raise InvalidParameterError(f"hidden[{i}]", "an integer >= 1", k)
        setter(self, "hidden", tuple(int(k) for k in hidden))
        depth = len(self.hidden)
        if not _is_number(self.outputs) or not float(self.outputs).is_integer() or self.outputs < 1:
            raise InvalidParameterError("outputs", "an integer >= 1", self.outputs)
        setter(self, "outputs", int(self.outputs))
        setter(self, "activation", parse_enum(Activation, self.activation, "activation"))
        setter(self, "likelihood", parse_enum(Likelihood, self.likelihood, "likelihood"))
        priors = self.prior if isinstance(self.prior, list | tuple) else (self.prior,) * depth
        if len(priors) != depth:
            allowed = f"one prior or one per hidden layer ({depth})"
            raise InvalidParameterError("prior", allowed, self.prior)
        setter(
            self, "prior", tuple(parse_enum(Prior, v, f"prior[{i}]") for i, v in enumerate(priors))
        )
        incl = self.prior_inclusion
        if isinstance(incl, str):
            if incl.strip().lower() not in ("reference", "theory"):
                allowed = "'reference', 'theory', a probability in (0, 1), or one per hidden layer"
                raise InvalidParameterError("prior_inclusion", allowed, incl)
            setter(self, "prior_inclusion", incl.strip().lower())
        else:
            values = tuple(incl) if isinstance(incl, list | tuple | np.ndarray) else (incl,) * depth
            if len(values) != depth:
                allowed = f"one value or one per hidden layer ({depth})"
                raise InvalidParameterError("prior_inclusion", allowed, incl)
            for i, v in enumerate(values):
                if not _is_number(v) or not (0.0 < v < 1.0):
                    raise InvalidParameterError(
                        f"prior_inclusion[{i}]", "a probability in (0, 1)", v
                    )
            setter(self, "prior_inclusion", tuple(float(v) for v in values))
        if self.likelihood is Likelihood.BERNOULLI and self.outputs != 1:
            raise InvalidParameterError("outputs", "1 for a Bernoulli likelihood", self.outputs)
        if self.likelihood is Likelihood.CATEGORICAL and self.outputs < 2:
            allowed = ">= 2 classes for a categorical likelihood"
            raise InvalidParameterError("outputs", allowed, self.outputs)
        if self.sigma_e is not None:
            if self.likelihood is not Likelihood.GAUSSIAN:
                allowed = "None unless the likelihood is Gaussian"
                raise InvalidParameterError("sigma_e", allowed, self.sigma_e)
            setter(self, "sigma_e", _positive(self.sigma_e, "sigma_e"))
        for name in (
            "sigma_e_init", "sigma_0", "kappa_shape", "kappa_rate", "global_scale",
            "local_scale", "temperature",
        ):  # fmt: skip
            setter(self, name, _positive(getattr(self, name), name))
        if self.slab_width is not None:
            setter(self, "slab_width", _positive(self.slab_width, "slab_width"))
        if self.input_inclusion is not None and (
            not _is_number(self.input_inclusion) or not 0.0 < self.input_inclusion < 1.0
        ):
            raise InvalidParameterError(
                "input_inclusion", "a probability in (0, 1)", self.input_inclusion
            )
        if not _is_number(self.inclusion_init) or not 0.0 < self.inclusion_init < 1.0:
            raise InvalidParameterError(
                "inclusion_init", "a probability in (0, 1)", self.inclusion_init
            )
        if isinstance(self.rho_init, str):
            if self.rho_init.strip().lower() not in RHO_INIT_WORDS:
                allowed = "'auto', 'reference', a finite number, or one per weight layer"
                raise InvalidParameterError("rho_init", allowed, self.rho_init)
            setter(self, "rho_init", self.rho_init.strip().lower())
        elif isinstance(self.rho_init, list | tuple | np.ndarray):
            if len(self.rho_init) != depth + 1:
                allowed = f"one number or one per weight layer ({depth} hidden + 1 output)"
                raise InvalidParameterError("rho_init", allowed, self.rho_init)
            for i, v in enumerate(self.rho_init):
                if not _is_number(v) or not math.isfinite(v):
                    raise InvalidParameterError(f"rho_init[{i}]", "a finite number", v)
            setter(self, "rho_init", tuple(float(v) for v in self.rho_init))
        elif not _is_number(self.rho_init) or not math.isfinite(self.rho_init):
            allowed = "a finite number, or one per weight layer"
            raise InvalidParameterError("rho_init", allowed, self.rho_init)
        for name in ("input_spike", "straight_through"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise InvalidParameterError(name, "true or false (a boolean)", getattr(self, name))
            setter(self, name, bool(getattr(self, name)))

    @property
    def depth(self) -> int:
        """Number of hidden layers ``L``."""
        return len(self.hidden)

    @property
    def rho_inits(self) -> tuple[float, ...]:
        """Initial ``rho`` of each weight layer: the ``L`` hidden layers', then the output's."""
        if isinstance(self.rho_init, tuple):
            return self.rho_init
        if isinstance(self.rho_init, str):
            first = RHO_INIT_WORDS[self.rho_init]
            return (first,) + (RHO_INIT_REFERENCE,) * self.depth
        return (float(self.rho_init),) * (self.depth + 1)

    def inclusion_probs(self, n: int | None = None) -> tuple[float, ...]:
        """Prior inclusion probabilities ``lambda_1..lambda_L`` (``"reference"`` and
        ``"theory"`` need ``n``; ``"theory"`` gives :class:`simulations.kl.LogProbability`)."""
        if self.prior_inclusion not in ("reference", "theory"):
            return self.prior_inclusion
        if n is None or not _is_number(n) or n < 1:
            given = f"prior_inclusion='{self.prior_inclusion}'"
            allowed = f"an integer >= 1 (the training-set size) with {given}"
            raise InvalidParameterError("n", allowed, n)
        from ssbnn_theory.architecture import Architecture
        from ssbnn_theory.selection import (
            edge_log_inv_inclusion,
            reference_inclusion_probs,
            theory_log_inv_inclusion,
        )

        arch = Architecture(
            p=self.p, hidden=self.hidden, outputs=self.outputs, activation=self.activation
        )
        if self.prior_inclusion == "theory":
            logs = np.asarray(theory_log_inv_inclusion(arch, int(n)))
            node = [LogProbability(-float(v)) for v in logs]
        else:
            node = [
                float(v)
                for v in reference_inclusion_probs(self.p, self.hidden, self.outputs, int(n))
            ]
        edge = math.exp(-float(edge_log_inv_inclusion(arch, int(n))))
        return tuple(
            edge if prior is Prior.EDGE_SS else node[i] for i, prior in enumerate(self.prior)
        )


@dataclass(frozen=True)
class Kept:
    """The kept structure of each replicate.

    Attributes
    ----------
    inputs
        Boolean ``[R, p]``: input ``i`` feeds a kept first-layer node through a kept weight.
    nodes
        Boolean ``[R, k_l]`` per hidden layer.
    """

    inputs: torch.Tensor
    nodes: list[torch.Tensor] = field(default_factory=list)


class BayesianMLP(nn.Module):
    """``R`` independent replicates of a variational MLP, trained as one batched computation.

    Parameters
    ----------
    config
        :class:`ModelConfig`.
    replicate_seeds
        One seed per replicate (``R = len(replicate_seeds)``), e.g.
        ``simulations.rng.replicate_seeds(seed, R, "model")``.
    n
        Training-set size; needed when ``config.prior_inclusion == "reference"``.
    dtype, device
        Parameter dtype (float32 or float64) and device (``"cpu"``, ``"cuda"``).
    """

    def __init__(
        self,
        config: ModelConfig,
        replicate_seeds: Sequence[int],
        *,
        n: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise InvalidParameterError("config", "a ModelConfig", type(config).__name__)
        seeds = tuple(replicate_seeds) if isinstance(replicate_seeds, Sequence) else None
        if not seeds or not all(_is_number(s) and float(s).is_integer() for s in seeds):
            allowed = "a non-empty sequence of integer seeds"
            raise InvalidParameterError("replicate_seeds", allowed, replicate_seeds)
        if dtype not in (torch.float32, torch.float64):
            raise InvalidParameterError("dtype", "torch.float32 or torch.float64", dtype)
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidParameterError(
                "device", "'cpu' (no CUDA device is available)", str(device)
            )
        self.config = config
        self.replicate_seeds = tuple(int(s) for s in seeds)
        self.replicates = len(seeds)
        self.n = n
        self.temperature = config.temperature
        self._act = _ACTIVATIONS[config.activation]
        spiked = any(prior is not Prior.DENSE for prior in config.prior)
        inclusion = config.inclusion_probs(n) if spiked else None
        init_gens = replicate_generators([stream_seed(s, "init") for s in seeds], device)
        self.generators = replicate_generators([stream_seed(s, "noise") for s in seeds], device)
        kw = {"dtype": dtype, "device": device}
        common = {"sigma_0": config.sigma_0, **kw}
        spike = {
            "inclusion_init": config.inclusion_init,
            "straight_through": config.straight_through,
        }
        layers = []
        widths = (config.p, *config.hidden)
        for i, prior in enumerate(config.prior):
            size = (widths[i], widths[i + 1], init_gens)
            own = {"rho_init": config.rho_inits[i], **common}
            if prior.is_node_sparse:
                names = scale_factor_class(prior).hyperparameters
                hyper = {name: getattr(config, name) for name in names}
                layer = NodeSpikeSlabLinear(
                    *size, slab=prior, prior_inclusion=inclusion[i], **hyper, **spike, **own
                )
            elif prior is Prior.EDGE_SS:
                layer = EdgeSpikeSlabLinear(*size, prior_inclusion=inclusion[i], **spike, **own)
            else:
                layer = MeanFieldLinear(*size, **own)
            layers.append(layer)
        out = {"rho_init": config.rho_inits[-1], **common}
        layers.append(MeanFieldLinear(widths[-1], config.outputs, init_gens, **out))
        self.layers = nn.ModuleList(layers)
        self.input_spike = None
        if config.input_spike:
            lam = config.input_inclusion or min(0.5, 1.0 / config.p)
            self.input_spike = InputSpike(
                config.p, self.replicates, prior_inclusion=lam, **spike, **kw
            )
        self.likelihood = make_likelihood(
            config.likelihood, self.replicates, config.outputs, config.sigma_e,
            sigma_init=config.sigma_e_init, **kw,
        )  # fmt: skip
        blocks = ([self.input_spike] if self.input_spike is not None else []) + layers
        self._normal_counts = [b.normal_count for b in blocks]
        self._uniform_counts = [b.uniform_count for b in blocks]

    # ------------------------------------------------------------------ basics

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype."""
        return self.layers[0].mu.dtype

    @property
    def device(self) -> torch.device:
        """Parameter device."""
        return self.layers[0].mu.device

    @property
    def hidden_layers(self) -> list[nn.Module]:
        """The ``L`` hidden layers (the output layer excluded)."""
        return list(self.layers[:-1])

    def _split(self, noise: torch.Tensor, counts: list[int]) -> list[torch.Tensor]:
        return list(torch.split(noise, counts, dim=-1))

    def _check_x(self, x: torch.Tensor, shared_ok: bool) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise InvalidParameterError("x", "a torch.Tensor", type(x).__name__)
        ok_3d = x.dim() == 3 and x.shape[0] == self.replicates
        if x.shape[-1] != self.config.p or not (ok_3d or (shared_ok and x.dim() == 2)):
            shape = f"[R={self.replicates}, n, p={self.config.p}]"
            allowed = shape + (f" or [n, p={self.config.p}]" if shared_ok else "")
            raise InvalidParameterError("x", allowed, tuple(x.shape))
        return x.to(dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ training pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training pass ``x [R, B, p] -> f [R, B, outputs]``: relaxed indicators, sampled weights.

        Draws this pass's noise from the model's per-replicate generators
        (``self.generators``); the Concrete temperature is ``self.temperature``.
        """
        return self.forward_kl(x)[0]

    def forward_kl(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A training pass and the KL together, ``(f [R, B, outputs], KL [R])``.

        The KL equals :meth:`kl`; computing it in the same pass shares the slab
        work (``simulations.layers``), which is what ``simulations.train.fit`` uses.
        """
        x = self._check_x(x, shared_ok=False)
        normal, uniform = draw_noise(
            self.generators, sum(self._normal_counts), sum(self._uniform_counts),
            dtype=self.dtype, device=self.device,
        )  # fmt: skip
        normals = self._split(normal, self._normal_counts)
        uniforms = self._split(uniform, self._uniform_counts)
        gate, kl = None, 0.0
        if self.input_spike is not None:
            gate = self.input_spike.gate(uniforms.pop(0), self.temperature)
            kl = self.input_spike.kl()
            normals.pop(0)
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h, layer_kl = layer.step(
                h, normals[i], uniforms[i], self.temperature, gate if i == 0 else None
            )
            kl = kl + layer_kl
            if i < last:
                h = self._act(h)
        return h, kl

    def kl(self) -> torch.Tensor:
        """``KL(q || prior)`` per replicate, ``[R]``: the sum over layers (and the input spike)."""
        total = sum(layer.kl() for layer in self.layers)
        if self.input_spike is not None:
            total = total + self.input_spike.kl()
        return total

    def freeze_masks(self) -> None:
        """Fix every indicator at the kept structure (fine-tuning; see ``docs/elbo.md``)."""
        for indicators in self._indicators():
            indicators.freeze()

    def unfreeze_masks(self) -> None:
        """Return to relaxed indicators."""
        for indicators in self._indicators():
            indicators.unfreeze()

    @property
    def masks_frozen(self) -> bool:
        """Whether the indicators are frozen."""
        return any(indicators.frozen_mask is not None for indicators in self._indicators())

    def _indicators(self) -> list[nn.Module]:
        """The indicator sets of the spiked layers and of the input spike."""
        blocks = [*self.hidden_layers, self.input_spike]
        return [b.indicators for b in blocks if hasattr(b, "indicators")]

    # ------------------------------------------------------------------ structure

    def inclusion_probs(self) -> list[torch.Tensor]:
        """Inclusion probabilities per hidden layer: ``[R, k_l]`` (node and dense layers)
        or ``[R, k_l, k_{l-1}]`` (edge layers)."""
        return [layer.inclusion_probs() for layer in self.hidden_layers]

    def input_inclusion_probs(self) -> torch.Tensor | None:
        """Inclusion probabilities of the inputs ``[R, p]`` (``None`` without an input spike)."""
        return None if self.input_spike is None else self.input_spike.inclusion_probs()

    def _kept_edges(self) -> list[torch.Tensor]:
        """Kept weights ``[R, k_l, k_{l-1}]`` per hidden layer (whole groups for node layers)."""
        edges = []
        for layer in self.hidden_layers:
            kept = layer.kept()
            if kept.dim() == 2:
                kept = kept.unsqueeze(-1).expand(-1, -1, layer.in_features)
            edges.append(kept)
        return edges

    def kept(self) -> Kept:
        """Kept inputs ``[R, p]`` and kept nodes per hidden layer ``[R, k_l]``.

        A node of a node or dense layer is kept when its inclusion probability
        exceeds 1/2; a node of an edge layer when at least one incoming weight
        is kept. An input is kept when it feeds a kept first-layer node through
        a kept weight (and, with an input spike, its own inclusion probability
        exceeds 1/2).
        """
        edges = self._kept_edges()
        nodes = [e.any(-1) for e in edges]
        feeds = (edges[0] & nodes[0].unsqueeze(-1)).any(-2)
        if self.input_spike is not None:
            feeds = feeds & self.input_spike.kept()
        return Kept(inputs=feeds, nodes=nodes)

    def sample_masks(self, draws: int, generators: Sequence[torch.Generator]) -> list[torch.Tensor]:
        """Exact Bernoulli node masks ``[draws, R, k_l]`` per hidden layer.

        Node layers draw ``z_j ~ Bernoulli(pi_j)``; an edge layer's node is on when
        at least one of its incoming weights is drawn on; dense nodes are always on.
        Replicate ``r`` uses ``generators[r]`` only.
        """
        draws = self._check_draws(draws, generators)
        counts = [layer.uniform_count for layer in self.hidden_layers]
        _, uniform = draw_noise(
            generators, 0, sum(counts), draws=draws, dtype=self.dtype, device=self.device
        )
        splits = torch.split(uniform, counts, dim=-1)
        return [layer.node_mask(u) for layer, u in zip(self.hidden_layers, splits, strict=True)]

    # ------------------------------------------------------------------ functions

    def _check_draws(self, draws: object, generators: Sequence[torch.Generator]) -> int:
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise InvalidParameterError("draws", "an integer >= 1", draws)
        if len(generators) != self.replicates:
            allowed = f"one generator per replicate ({self.replicates})"
            raise InvalidParameterError("generators", allowed, len(generators))
        return draws

    def _propagate(
        self, x: torch.Tensor, weights: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """``f(x)`` for explicit weights ``W [..., R, out, in]``, ``b [..., R, out]``.

        ``x`` is ``[n, p]`` (shared by the replicates) or ``[R, n, p]``.
        """
        h = x
        last = len(weights) - 1
        for i, (w, b) in enumerate(weights):
            h = torch.matmul(h, w.transpose(-1, -2)) + b.unsqueeze(-2)
            if i < last:
                h = self._act(h)
        return h

    def sample_functions(
        self, x: torch.Tensor, draws: int, generators: Sequence[torch.Generator]
    ) -> torch.Tensor:
        """Network outputs under ``draws`` exact draws from ``q``: ``[draws, R, n, outputs]``.

        Each draw samples Bernoulli indicators (not relaxed), the slab and the
        scales. ``x`` is ``[n, p]`` (shared) or ``[R, n, p]``. Draw ``d`` of
        replicate ``r`` uses ``generators[r]`` only (draw by draw), and the draws are
        evaluated in chunks so that the activations stay within a fixed memory budget.
        """
        draws = self._check_draws(draws, generators)
        x = self._check_x(x, shared_ok=True)
        n = x.shape[-2]
        widest = max(self.config.p, *self.config.hidden, self.config.outputs)
        chunk = max(1, _SAMPLE_CHUNK_ELEMENTS // (self.replicates * n * widest))
        blocks = ([self.input_spike] if self.input_spike is not None else []) + list(self.layers)
        out = []
        with torch.no_grad():
            for start in range(0, draws, chunk):
                size = min(chunk, draws - start)
                normal, uniform = draw_noise(
                    generators, sum(self._normal_counts), sum(self._uniform_counts),
                    draws=size, dtype=self.dtype, device=self.device,
                )  # fmt: skip
                normals = self._split(normal, self._normal_counts)
                uniforms = self._split(uniform, self._uniform_counts)
                weights = []
                column_mask = None
                for block, eps, u in zip(blocks, normals, uniforms, strict=True):
                    if block is self.input_spike:
                        column_mask = block.mask_from_noise(u)
                        continue
                    weights.append(block.weights_from_noise(eps, u))
                if column_mask is not None:
                    w0, b0 = weights[0]
                    weights[0] = (w0 * column_mask.unsqueeze(-2), b0)
                out.append(self._propagate(x, weights))
        return torch.cat(out)

    def mean_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Variational means on the kept structure, ``(W [R, out, in], b [R, out])`` per layer.

        Node layers: ``kept_j * E_q[scale_j] * mu_j``; edge layers: ``kept * mu``;
        dense layers: ``mu``. Columns of inputs that are not kept (input spike) are zero.
        """
        weights = [layer.mean_weights() for layer in self.layers]
        if self.input_spike is not None:
            w0, b0 = weights[0]
            weights[0] = (w0 * self.input_spike.kept().to(w0.dtype).unsqueeze(-2), b0)
        return weights

    def mean_function(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the variational-mean network on the kept structure, ``[R, n, outputs]``.

        ``x`` is ``[n, p]`` (shared) or ``[R, n, p]``.
        """
        x = self._check_x(x, shared_ok=True)
        with torch.no_grad():
            return self._propagate(x, self.mean_weights())
