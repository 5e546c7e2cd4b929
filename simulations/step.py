"""The training step's loss, eager or compiled with ``torch.compile``.

:class:`LossStep` computes what :func:`simulations.train.fit` differentiates at each step,

    loss_r = ( (n / B) nll_r + w kl_r ) / n ,

from a minibatch: it draws the pass's noise from the model's per-replicate generators
(always eagerly: ``torch.Generator`` objects do not enter a compiled graph, and replicate
``r``'s numbers must come from its own generator), then runs the network and the
likelihood, either eagerly (:meth:`simulations.model.BayesianMLP.forward_kl`'s
operations) or as one graph compiled by ``torch.compile`` (forward and, through
AOTAutograd, backward). The two give equal results up to float rounding
(``tests/simulations/test_compile.py``).

Compilation happens on the first call (reported in :attr:`LossStep.compile_s`, apart from
the step times). When it fails (no C++ compiler, an unsupported backend or device), the
step falls back to the eager path, records why in :attr:`LossStep.fallback` and warns once.
``docs/engine.md`` ("Performance") has the measured speeds and why the step compiles
with the partitioner, Dynamo and inductor options below. :func:`compile_pays` is the rule of
``TrainConfig.compile = "auto"``, the default.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings

import torch

from simulations.layers import draw_noise, products
from simulations.model import BayesianMLP

__all__ = ["COMPILE_MIN_STEPS", "LossStep", "compile_pays", "network_loss"]

COMPILE_MIN_STEPS = 10_000
"""The least step budget at which ``TrainConfig.compile = "auto"`` compiles the step."""

# AOTAutograd's partitioner settings for the compiled step. By default it does not recompute
# in the backward graph a value that a matmul reads there (a "materialized" node): the ReLU
# output, read by the next layer's weight gradient. It then saves the ReLU's mask as a bool
# tensor beside it, and inductor's CPU code moves bool tensors element by element (its
# vectorised bool type has no AVX-512 specialisation): W2's compiled step spent about 4.4 of
# its 8 ms (profiled) in the kernels that store and load those masks. Allowing the
# recomputation saves the pre-activation instead and recomputes ReLU and its mask inside the
# fused kernels (about 1 ms for all the step's fused kernels).
_PARTITIONER = {"ban_recompute_materialized_backward": False}
# Dynamo compiles one graph per shape of the step's inputs (replicates, batch, widths,
# frozen or relaxed indicators) and, past ``recompile_limit`` graphs of one function (8 by
# default), runs new shapes eagerly without saying so in the result. A study's worker
# process meets more shapes than that (a benchmark's scaling section met 11), so the
# compiled step raises the limit to this (or keeps a higher one) while it runs.
_DYNAMO = {"recompile_limit": 64}
# Inductor options: no runtime checks of the buffers' sizes and strides around the extern
# kernels (about 60 per step; Dynamo's guards already fix the inputs' shapes): 5 to 10 % of
# the demo workload's compiled loss and backward.
_INDUCTOR = {"size_asserts": False}


def _inductor() -> dict:
    """The options of :data:`_INDUCTOR` that this torch's inductor has."""
    import torch._inductor.config as config

    return {k: v for k, v in _INDUCTOR.items() if hasattr(config, k)}


@contextlib.contextmanager
def _compile_settings():
    """The partitioner and Dynamo settings in force while the compiled step runs (it
    compiles, and recompiles when a graph's inputs change, on a call). Set and restored
    directly: a ``config.patch`` builds a class on each call, which costs about 30 us per
    step."""
    partitioner, dynamo = torch._functorch.config, torch._dynamo.config
    wanted = [(partitioner, k, v) for k, v in _PARTITIONER.items() if hasattr(partitioner, k)]
    wanted += [
        (dynamo, k, max(v, getattr(dynamo, k))) for k, v in _DYNAMO.items() if hasattr(dynamo, k)
    ]
    saved = [(config, k, getattr(config, k)) for config, k, _ in wanted]
    for config, k, v in wanted:
        setattr(config, k, v)
    try:
        yield
    finally:
        for config, k, v in saved:
            setattr(config, k, v)


def network_loss(model: BayesianMLP, x, y, normal, uniform, temperature, kl_weight, scale):
    """Per-replicate ``(loss, nll, kl)`` of one pass from given noise.

    The same operations as ``model.forward_kl(x)`` after its noise draw, then the
    likelihood: ``loss = ((n / B) nll + kl_weight kl) / n`` with ``scale = (n / B, n)``,
    the operations of ``fit``'s loss in its order.
    """
    normals = list(torch.split(normal, model._normal_counts, dim=-1))
    uniforms = list(torch.split(uniform, model._uniform_counts, dim=-1))
    gate, kl = None, 0.0
    if model.input_spike is not None:
        gate = model.input_spike.gate(uniforms.pop(0), temperature)
        kl = model.input_spike.kl()
        normals.pop(0)
    h = x
    last = len(model.layers) - 1
    for i, layer in enumerate(model.layers):
        h, layer_kl = layer.step(h, normals[i], uniforms[i], temperature, gate if i == 0 else None)
        kl = kl + layer_kl
        if i < last:
            if torch.compiler.is_compiling():
                # The activation on the feature-major [R, out, B] layout of the layer's product:
                # the same values, and inductor then reads and writes it without transposes
                # (W2 at R = 16: 10 % of the compiled loss and backward).
                h = model._act(h.transpose(-1, -2)).transpose(-1, -2)
            else:
                h = model._act(h)
    nll = model.likelihood.nll(h, y)
    per_batch, n = scale
    loss = (nll * per_batch + kl_weight * kl) / n
    return loss, nll, kl


@contextlib.contextmanager
def _quiet():
    """Silence torch's own deprecation notices while it compiles (they are not the caller's)."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
        yield


@functools.cache
def _has_cpp_compiler() -> bool:
    """Whether inductor's CPU backend finds its C++ compiler (``torch.compile`` on a CPU
    needs one)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception:  # no compiler found, or a torch without this helper
        return False
    return True


def compile_pays(model: BayesianMLP, steps: int) -> bool:
    """Whether ``TrainConfig.compile = "auto"`` compiles the step of ``model`` for a budget of
    ``steps``: float32 on an x86-64 CPU with a C++ compiler for inductor, and
    ``steps >= COMPILE_MIN_STEPS``.

    Measured on two x86-64 CPUs (``docs/engine.md``, "A compiled step"): a converged fit of
    the demo's cell (16-16 students, minibatches of 512) took about 0.8 of the eager fit's
    wall time on an Intel Xeon and 0.95 on an AMD EPYC, and the compiled step ran W2's
    (p = 100, 256-256, R = 1) at about 0.7 of the eager step's time and W1's (p = 2000,
    R = 64) at 0.95; the compilation (some 4 to 20 s a graph, a second graph when the
    indicators freeze) is repaid after some thousands of steps. Elsewhere (other CPUs,
    float64, CUDA) it was not measured, and the step runs eagerly."""
    like = model.layers[0].mu
    return (
        steps >= COMPILE_MIN_STEPS
        and products.X86_64
        and like.dtype == torch.float32
        and like.device.type == "cpu"
        and _has_cpp_compiler()
    )


class LossStep:
    """``step(x, y, kl_weight) -> (loss [R], nll [R], kl [R])`` for ``model``.

    Parameters
    ----------
    model
        The :class:`~simulations.model.BayesianMLP` being trained.
    n, batch
        Training-set size and minibatch size (``loss = ((n / B) nll + w kl) / n``).
    compile
        Compile the network and likelihood with ``torch.compile`` (falls back to eager
        when compilation fails).

    Attributes
    ----------
    compiled
        Whether the compiled path is in use.
    compile_s
        Wall seconds of the first (compiling) call; 0 for the eager path.
    fallback
        Why compilation was given up (``None`` when it was not).
    """

    def __init__(self, model: BayesianMLP, n: int, batch: int, *, compile: bool = False) -> None:
        self.model = model
        self.scale = (n / batch, n)
        self.compiled = bool(compile)
        self.compile_s = 0.0
        self.fallback: str | None = None
        self._calls = 0
        self._fn = network_loss
        if self.compiled:
            try:
                with _quiet():
                    self._fn = torch.compile(network_loss, dynamic=False, options=_inductor())
            except Exception as exc:  # torch.compile itself unavailable
                self._give_up(exc)

    def _give_up(self, exc: BaseException) -> None:
        self.compiled, self._fn = False, network_loss
        self.fallback = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        warnings.warn(
            f"torch.compile failed, training with the eager step ({self.fallback})",
            RuntimeWarning,
            stacklevel=3,
        )

    def __call__(self, x: torch.Tensor, y: torch.Tensor, kl_weight: float):
        model = self.model
        normal, uniform = draw_noise(
            model.generators, sum(model._normal_counts), sum(model._uniform_counts),
            dtype=model.dtype, device=model.device,
        )  # fmt: skip
        temperature, weight = float(model.temperature), float(kl_weight)
        if not self.compiled:
            return network_loss(model, x, y, normal, uniform, temperature, weight, self.scale)
        # Values that change from step to step enter the graph as tensors (a Python float
        # would be baked in, and each new value would recompile).
        values = torch.tensor([temperature, weight], dtype=model.dtype, device=model.device)
        args = (model, x, y, normal, uniform, values[0], values[1], self.scale)
        self._calls += 1
        if self._calls > 1:
            with _compile_settings():
                return self._fn(*args)
        start = time.perf_counter()
        try:
            with _quiet(), _compile_settings():
                out = self._fn(*args)
        except Exception as exc:  # compilation failed: no compiler, unsupported device, ...
            self._give_up(exc)
            return network_loss(model, x, y, normal, uniform, temperature, weight, self.scale)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        self.compile_s = time.perf_counter() - start
        return out
