"""Scale factors of the node spike-and-slab layers: the protocol, and the Gaussian slab's.

A node layer writes node ``j``'s group as ``w_j = z_j * scale_j * beta_j``; the prior family
decides ``scale_j`` through its :class:`ScaleFactor`, one class per family, found through
:data:`simulations.layers.registry.SCALE_FACTORS`. ``docs/architecture.md`` ("Adding a prior
family") lists the steps to add one.
"""

from __future__ import annotations

import math
from typing import ClassVar, Protocol

import numpy as np
import torch

__all__ = ["GaussianScale", "ScaleFactor", "expected_scale"]

# Gauss-Hermite rule for E[h(v)], v ~ N(M, S^2), of the smooth bounded regularised scale.
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(32)


class ScaleFactor(Protocol):
    """What a node layer asks of its family's scale factor.

    A class is built as ``cls(reps, out, group_size, *, rho_init, kw, **hyperparameters)``
    (``kw``: the parameters' dtype and device) with the hyperparameters it names in
    :attr:`hyperparameters`, each a field of :class:`simulations.ModelConfig` of the same
    name; it is an ``nn.Module`` when it has variational parameters.
    """

    hyperparameters: ClassVar[tuple[str, ...]]
    """Names of the ``ModelConfig`` fields the constructor takes."""
    noise_count: int
    """Standard normals per replicate per draw (after the slab's)."""

    def draw(self, eps: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | float]:
        """``scale_j [..., R, out]`` from ``eps [..., R, noise_count]`` (``None``: 1), and the
        scale factors' KL ``[R]``."""
        ...

    def kl(self) -> torch.Tensor | float:
        """The scale factors' KL against their prior, ``[R]`` (or 0)."""
        ...

    def expected(self, like: torch.Tensor) -> torch.Tensor:
        """``E_q[scale_j]``, shaped, typed and placed as ``like`` (``[R, out]``)."""
        ...


def expected_scale(scale_fn, mean: torch.Tensor, sd: torch.Tensor, closed_form: bool):
    """``E[h(v)]`` for ``v ~ N(mean, sd^2)``: ``exp(mean + sd^2/2)`` when ``h = exp``, else
    32-point Gauss-Hermite quadrature ``sum_k w_k h(mean + sqrt(2) sd x_k) / sqrt(pi)``."""
    if closed_form:
        return torch.exp(mean + 0.5 * sd.square())
    nodes = torch.as_tensor(_GH_NODES, dtype=mean.dtype, device=mean.device)
    weights = torch.as_tensor(_GH_WEIGHTS, dtype=mean.dtype, device=mean.device)
    v = mean.unsqueeze(-1) + math.sqrt(2.0) * sd.unsqueeze(-1) * nodes
    return (scale_fn(v) * weights).sum(-1) / math.sqrt(math.pi)


class GaussianScale:
    """``scale_j = 1`` (``ss-ig``, the Gaussian slab ``N(0, sigma_0^2 I_d)``): no parameters,
    no noise, no KL."""

    hyperparameters: ClassVar[tuple[str, ...]] = ()
    noise_count = 0

    def __init__(self, reps: int, out: int, group_size: int, *, rho_init: float, kw: dict):
        pass

    def draw(self, eps: torch.Tensor) -> tuple[None, float]:
        """No scale (1) and no KL."""
        return None, 0.0

    def kl(self) -> float:
        """0."""
        return 0.0

    def expected(self, like: torch.Tensor) -> torch.Tensor:
        """Ones."""
        return torch.ones_like(like)
