"""Shared fixtures of the engine tests: the registry of layer families and small helpers.

``LAYER_FAMILIES`` drives the generic layer tests (shapes, KL against Monte Carlo,
inclusion probabilities, gradients, dtypes): one entry per family and option that
changes the parameterisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from simulations.layers import (
    EdgeSpikeSlabLinear,
    MeanFieldLinear,
    NodeSpikeSlabLinear,
    replicate_generators,
)
from simulations.layers.registry import SCALE_FACTORS


@dataclass(frozen=True)
class LayerFamily:
    """A layer family of the registry.

    Attributes
    ----------
    name
        Test id.
    build
        ``build(in_features, out_features, generators, dtype) -> layer``.
    kind
        ``"node"``, ``"edge"`` or ``"dense"``: what ``inclusion_probs`` describes.
    """

    name: str
    build: Callable
    kind: str


def _node(slab: str, **options) -> Callable:
    def build(i, o, gens, dtype):
        return NodeSpikeSlabLinear(
            i, o, gens, slab=slab, prior_inclusion=0.3, dtype=dtype, **options
        )

    return build


LAYER_FAMILIES = (
    LayerFamily("dense", lambda i, o, g, dt: MeanFieldLinear(i, o, g, dtype=dt), "dense"),
    # every registered node prior family (simulations.layers.registry), then option variants
    *(LayerFamily(f.value, _node(f.value), "node") for f in SCALE_FACTORS),
    LayerFamily("ss-ghs-plain", _node("ss-ghs", slab_width=None), "node"),
    LayerFamily(
        "edge-ss",
        lambda i, o, g, dt: EdgeSpikeSlabLinear(i, o, g, prior_inclusion=0.3, dtype=dt),
        "edge",
    ),
)


@pytest.fixture(params=LAYER_FAMILIES, ids=lambda f: f.name)
def family(request) -> LayerFamily:
    """Each layer family of the registry."""
    return request.param


def generators(count: int, seed: int = 0) -> list[torch.Generator]:
    """``count`` CPU generators seeded ``seed, seed + 1, ...``."""
    return replicate_generators([seed + r for r in range(count)])


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Move every parameter away from its initial value (a seeded draw), so tests see
    inclusion probabilities, variances and scales of every size."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if name.endswith("rho"):
                p.copy_(-1.5 + 0.5 * noise)  # sd = softplus(rho) around 0.2
            elif name.endswith("theta"):
                p.copy_(1.5 * noise)
            else:
                p.add_(0.3 * noise)
