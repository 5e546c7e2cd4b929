"""Batched variational engine and simulation studies for node-sparse Bayesian neural networks.

The public names below load on first use (PEP 562), so ``import simulations``
and the ``ssbnn`` command start without importing torch; ``simulations.X`` and
``from simulations import X`` work as usual.
"""

from __future__ import annotations

import importlib

from ssbnn_theory import __version__

_EXPORTS = {
    "Annealing": "simulations.relaxed",
    "BayesianMLP": "simulations.model",
    "CompactNetwork": "simulations.compress",
    "DESIGNS": "simulations.designs",
    "EdgeSpikeSlabLinear": "simulations.layers",
    "FitReport": "simulations.train",
    "InputSpike": "simulations.layers",
    "Kept": "simulations.model",
    "Latency": "simulations.compress",
    "Likelihood": "simulations.enums",
    "MeanFieldLinear": "simulations.layers",
    "ModelConfig": "simulations.model",
    "NodeSpikeSlabLinear": "simulations.layers",
    "NonFiniteError": "simulations.train",
    "Optimizer": "simulations.train",
    "Prior": "simulations.enums",
    "Shuffle": "simulations.minibatch",
    "SimulationData": "simulations.designs",
    "TemperatureSchedule": "simulations.relaxed",
    "TrainConfig": "simulations.train",
    "Truth": "simulations.designs",
    "VariationalLinear": "simulations.layers",
    "compact": "simulations.compress",
    "compact_all": "simulations.compress",
    "evaluate": "simulations.metrics",
    "fit": "simulations.train",
    "generate": "simulations.designs",
    "inference_latency": "simulations.compress",
    "make_likelihood": "simulations.likelihoods",
    "replicate_seeds": "simulations.rng",
    "stream_seed": "simulations.rng",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simulations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
