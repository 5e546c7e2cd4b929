"""Compaction: each replicate's selected network as a plain ``torch.nn.Sequential``; latency.

The compact network of replicate ``r`` holds only the kept inputs and the kept
nodes (:meth:`simulations.model.BayesianMLP.kept`), with the variational means as
weights (:meth:`~simulations.model.BayesianMLP.mean_weights`). A node that is not
kept has no kept incoming weight, so its output is the constant ``psi(b_j)`` (its
mean bias, 0 for node priors): the compaction adds ``W[:, j] psi(b_j)`` to the
next layer's bias, and an input that is not kept has a zero weight into every kept
node. The compact network therefore computes exactly the variational-mean
network, ``mean_function`` (``tests/simulations/test_compress.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils import benchmark

from simulations.model import BayesianMLP, activation_function, activation_module
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_integer

__all__ = ["CompactNetwork", "Latency", "compact", "compact_all", "inference_latency"]


@dataclass(frozen=True)
class CompactNetwork:
    """The selected network of one replicate.

    Attributes
    ----------
    replicate
        Which replicate of the model.
    inputs
        Indices (0-based) of the kept inputs; the network reads ``x[:, inputs]``.
    network
        ``nn.Sequential`` of ``nn.Linear`` and activation modules on the kept inputs.
    widths
        ``(kept inputs, kept nodes per hidden layer..., outputs)``.
    """

    replicate: int
    inputs: tuple[int, ...]
    network: nn.Sequential
    widths: tuple[int, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``[n, outputs]`` for full inputs ``x [n, p]``."""
        index = torch.as_tensor(self.inputs, dtype=torch.long, device=x.device)
        return self.network(x.index_select(-1, index))


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    """An ``nn.Linear`` holding copies of ``weight`` and ``bias`` (either may be empty)."""
    layer = nn.Linear(1, 1, dtype=weight.dtype, device=weight.device)
    layer.out_features, layer.in_features = weight.shape
    layer.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    layer.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
    return layer


def compact(model: BayesianMLP, replicate: int) -> CompactNetwork:
    """The compact network of ``replicate`` (see the module docstring).

    Raises
    ------
    InvalidParameterError
        ``replicate`` outside ``[0, R)``.
    """
    if not isinstance(model, BayesianMLP):
        raise InvalidParameterError("model", "a BayesianMLP", type(model).__name__)
    reps = model.replicates
    check_integer("replicate", replicate, lower=0, upper=reps - 1)
    kept = model.kept()
    act = activation_function(model.config.activation)
    weights = [(w[replicate], b[replicate]) for w, b in model.mean_weights()]
    keep_in = kept.inputs[replicate].nonzero().flatten()
    keep_nodes = [k[replicate].nonzero().flatten() for k in kept.nodes]
    modules: list[nn.Module] = []
    cols = keep_in
    for i, (w, b) in enumerate(weights):
        rows = keep_nodes[i] if i < len(keep_nodes) else torch.arange(w.shape[0], device=w.device)
        bias = b.clone()
        if i > 0:  # fold the constant outputs psi(b_j) of the previous layer's dropped nodes
            prev_w, prev_b = weights[i - 1]
            dropped = torch.ones(prev_w.shape[0], dtype=torch.bool, device=w.device)
            dropped[cols] = False
            bias = bias + w[:, dropped] @ act(prev_b[dropped])
        modules.append(_linear(w[rows][:, cols], bias[rows]))
        if i < len(weights) - 1:
            modules.append(activation_module(model.config.activation))
        cols = rows
    widths = (len(keep_in), *(len(k) for k in keep_nodes), model.config.outputs)
    return CompactNetwork(
        replicate=replicate,
        inputs=tuple(int(i) for i in keep_in),
        network=nn.Sequential(*modules),
        widths=widths,
    )


def compact_all(model: BayesianMLP) -> list[CompactNetwork]:
    """:func:`compact` for every replicate."""
    return [compact(model, r) for r in range(model.replicates)]


@dataclass(frozen=True)
class Latency:
    """Inference latency of a compact network against the dense network of the student's size.

    Attributes
    ----------
    compact_s, dense_s
        Median seconds per forward pass (``torch.utils.benchmark``).
    batch
        Rows per forward pass.
    threads
        Torch threads used.
    compact_widths, dense_widths
        Layer widths of the two networks.
    """

    compact_s: float
    dense_s: float
    batch: int
    threads: int
    compact_widths: tuple[int, ...]
    dense_widths: tuple[int, ...]

    @property
    def speedup(self) -> float:
        """``dense_s / compact_s``."""
        return self.dense_s / self.compact_s


def inference_latency(
    model: BayesianMLP,
    replicate: int = 0,
    *,
    batch: int = 1000,
    min_run_time: float = 0.2,
    threads: int | None = None,
    seed: int = 0,
) -> Latency:
    """Time the compact network of ``replicate`` against a dense network of the student's size.

    Both networks run a forward pass on ``batch`` rows under ``torch.no_grad`` on the
    model's device and dtype; :class:`torch.utils.benchmark.Timer` reports the median
    of blocked runs of at least ``min_run_time`` seconds. The dense network has the
    student's widths ``(p, k_1..k_L, outputs)``, the same activation, and the
    variational-mean weights (unpruned).
    """
    net = compact(model, replicate)
    check_integer("batch", batch)
    if not isinstance(min_run_time, int | float) or not min_run_time > 0:
        raise InvalidParameterError("min_run_time", "a number > 0", min_run_time)
    threads = torch.get_num_threads() if threads is None else threads
    check_integer("threads", threads)
    modules: list[nn.Module] = []
    layers = model.mean_weights()
    for i, (w, b) in enumerate(layers):
        modules.append(_linear(w[replicate], b[replicate]))
        if i < len(layers) - 1:
            modules.append(activation_module(model.config.activation))
    dense = nn.Sequential(*modules)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    x = torch.rand((batch, model.config.p), generator=gen, dtype=model.dtype, device=model.device)
    x_compact = x[:, list(net.inputs)].contiguous()

    def median(module: nn.Module, inputs: torch.Tensor) -> float:
        timer = benchmark.Timer(
            stmt="with torch.no_grad(): module(inputs)",
            globals={"module": module, "inputs": inputs, "torch": torch},
            num_threads=threads,
        )
        return float(timer.blocked_autorange(min_run_time=min_run_time).median)

    return Latency(
        compact_s=median(net.network, x_compact),
        dense_s=median(dense, x),
        batch=batch,
        threads=threads,
        compact_widths=net.widths,
        dense_widths=(model.config.p, *model.config.hidden, model.config.outputs),
    )
