"""The Gaussian slab shared by every family, and the dense mean-field layer (no spike)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from simulations.kl import kl_normal
from simulations.layers.fused import _SlabLinear
from simulations.layers.noise import draw_noise
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_integer, check_positive

__all__ = ["MeanFieldLinear", "VariationalLinear"]


class _Columns:
    """Read-only view of the weight columns ``[..., :-1]`` (or the bias column ``[..., -1]``)
    of a layer's ``[R, out, in + 1]`` attribute ``name``."""

    def __init__(self, name: str, *, bias: bool, doc: str) -> None:
        self.name, self.bias, self.__doc__ = name, bias, doc

    def __get__(self, layer: object, owner: type | None = None) -> Any:
        if layer is None:  # looked up on the class (documentation)
            return self
        values = getattr(layer, self.name)
        return values[..., -1] if self.bias else values[..., :-1]


class VariationalLinear(nn.Module):
    """Gaussian slab of all families: ``beta ~ N(mu, softplus(rho)^2)``, prior ``N(0, sigma_0^2)``.

    The slab parameters of node ``j``'s group (incoming weights, then the bias)
    are row ``j`` of ``mu`` and ``rho``, ``[R, out, in + 1]``; ``weight_mu``
    ``[R, out, in]`` and ``bias_mu`` ``[R, out]`` (likewise ``weight_rho``,
    ``bias_rho``) are views of them. This class is the dense mean-field layer.

    Parameters
    ----------
    in_features, out_features
        Layer sizes (``in`` inputs, ``out`` nodes).
    generators
        One generator per replicate (``R = len(generators)``) for the initial values:
        ``mu`` Kaiming-uniform ``U(-1/sqrt(in), 1/sqrt(in))`` (weights and biases).
    sigma_0
        Prior standard deviation of ``beta`` (reference 1).
    rho_init
        Initial ``rho`` of every Gaussian factor, ``sd = softplus(rho)`` (reference -6).
    dtype, device
        Parameter dtype and device.
    """

    uniform_count: int = 0

    def __init__(
        self,
        in_features: int,
        out_features: int,
        generators: Sequence[torch.Generator],
        *,
        sigma_0: float = 1.0,
        rho_init: float = -6.0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.in_features = check_integer("in_features", in_features, lower=1)
        self.out_features = check_integer("out_features", out_features, lower=1)
        if len(generators) < 1:
            raise InvalidParameterError("generators", "one generator per replicate (>= 1)", 0)
        self.replicates = len(generators)
        self.sigma_0 = check_positive("sigma_0", sigma_0)
        if not isinstance(rho_init, int | float) or not math.isfinite(rho_init):
            raise InvalidParameterError("rho_init", "a finite number", rho_init)
        self.rho_init = float(rho_init)
        shape = (self.replicates, self.out_features, self.in_features + 1)
        kw = {"dtype": dtype, "device": device}
        self.mu = nn.Parameter(torch.empty(shape, **kw))
        self.rho = nn.Parameter(torch.full(shape, self.rho_init, **kw))
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for r, gen in enumerate(generators):
                self.mu[r, :, :-1].uniform_(-bound, bound, generator=gen)
                self.mu[r, :, -1].uniform_(-bound, bound, generator=gen)

    weight_mu = _Columns("mu", bias=False, doc="Weight means ``[R, out, in]`` (a view of ``mu``).")
    bias_mu = _Columns("mu", bias=True, doc="Bias means ``[R, out]`` (a view of ``mu``).")
    weight_rho = _Columns("rho", bias=False, doc="``rho`` of the weights, ``[R, out, in]``.")
    bias_rho = _Columns("rho", bias=True, doc="``rho`` of the biases, ``[R, out]``.")

    @property
    def group_size(self) -> int:
        """``d = in + 1``."""
        return self.in_features + 1

    @property
    def slab_normal_count(self) -> int:
        """Normals per replicate for one draw of ``beta`` (all groups)."""
        return self.out_features * self.group_size

    @property
    def normal_count(self) -> int:
        """Standard normals per replicate for one draw of the layer's weights."""
        return self.slab_normal_count

    def _eps(self, normal: torch.Tensor) -> torch.Tensor:
        """The slab's normals as ``[..., R, out, in + 1]`` (a view)."""
        lead = normal.shape[:-1]
        return normal[..., : self.slab_normal_count].view(*lead, self.out_features, self.group_size)

    def _beta(self, normal: torch.Tensor) -> torch.Tensor:
        """``beta = mu + softplus(rho) * eps``, ``[..., R, out, in + 1]``."""
        return torch.addcmul(self.mu, F.softplus(self.rho), self._eps(normal))

    def slab_kl(self) -> torch.Tensor:
        """Slab KL per node, ``[R, out]``.

        ``sum_i KL(N(mu_ji, sd_ji^2) || N(0, sigma_0^2))`` over the group of node ``j``.
        """
        return kl_normal(self.mu, F.softplus(self.rho), 0.0, self.sigma_0).sum(-1)

    def _gate(self, normal, uniform, temperature):
        """Node gate ``[R, out]`` of a training pass, its KL ``[R]`` and the weights ``[R, out]``
        of the nodes' slab KL (none of them for a dense layer)."""
        return None, None, None

    def step(
        self,
        x: torch.Tensor,
        normal: torch.Tensor,
        uniform: torch.Tensor | None = None,
        temperature: float = 0.5,
        column_gate: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass and KL together: ``(h [R, B, out], KL [R])``.

        Parameters
        ----------
        x
            Inputs ``[R, B, in]``.
        normal, uniform
            This layer's noise, ``[R, normal_count]`` and ``[R, uniform_count]``.
        temperature
            Concrete temperature of the relaxed indicators.
        column_gate
            Optional ``[R, in]`` factor on the inputs (an input spike).
        """
        if column_gate is not None:
            x = x * column_gate.unsqueeze(-2)
        gate, gate_kl, weights = self._gate(normal, uniform, temperature)
        h, slab = _SlabLinear.apply(x, self.mu, self.rho, self._eps(normal), gate, self.sigma_0)
        return h, self._combine_kl(slab, gate_kl, weights)

    def _combine_kl(self, slab_rows, gate_kl, weights=None) -> torch.Tensor:
        """The layer's KL ``[R]`` from the slab KL per node and the gate's own KL."""
        return slab_rows.sum(-1)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Training pass ``[R, B, in] -> [R, B, out]`` (relaxed indicators): :meth:`step`, with
        its arguments, without the KL."""
        return self.step(*args, **kwargs)[0]

    def kl(self) -> torch.Tensor:
        """``KL(q || prior)`` of the layer per replicate, ``[R]``."""
        return self.slab_kl().sum(-1)

    def inclusion_probs(self) -> torch.Tensor:
        """Variational inclusion probabilities: ``[R, out]`` (ones for a dense layer)."""
        return torch.ones_like(self.bias_mu.detach())

    def kept(self) -> torch.Tensor:
        """Kept nodes ``[R, out]`` (node families) or kept weights ``[R, out, in]`` (edge)."""
        return self.inclusion_probs() > 0.5

    def node_mask(self, uniform: torch.Tensor) -> torch.Tensor:
        """Exact Bernoulli node mask ``[..., R, out]`` from this layer's uniforms
        ``[..., R, uniform_count]``: every node of a dense layer is on."""
        shape = (*uniform.shape[:-1], self.out_features)
        return torch.ones(shape, dtype=torch.bool, device=uniform.device)

    def weights_from_noise(
        self, normal: torch.Tensor, uniform: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One exact draw ``(W [..., R, out, in], b [..., R, out])`` from ``q``."""
        beta = self._beta(normal)
        return beta[..., :-1], beta[..., -1]

    def sample_weights(
        self, generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One exact draw ``(W [R, out, in], b [R, out])``; replicate ``r`` uses its generator."""
        normal, uniform = draw_noise(
            generators,
            self.normal_count,
            self.uniform_count,
            dtype=self.mu.dtype,
            device=self.mu.device,
        )
        with torch.no_grad():
            return self.weights_from_noise(normal, uniform)

    def mean_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Variational means on the kept structure, ``(W [R, out, in], b [R, out])``."""
        mu = self.mu.detach()
        return mu[..., :-1].clone(), mu[..., -1].clone()


class MeanFieldLinear(VariationalLinear):
    """Dense mean-field Gaussian layer (Bayes by backprop): ``(W, b) = beta``, no spike.

    ``KL = sum KL(N(mu, sd^2) || N(0, sigma_0^2))`` over weights and biases.
    """
