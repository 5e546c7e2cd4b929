"""Node spike-and-slab layer: ``w_j = z_j scale_j beta_j``; the family's scale factor
(:mod:`simulations.layers.scales`) supplies ``scale_j``."""

from __future__ import annotations

from typing import Any

import torch

from simulations.enums import Prior
from simulations.layers import registry
from simulations.layers.indicators import _SpikeSlabLinear
from ssbnn_theory.enums import parse_enum
from ssbnn_theory.errors import InvalidParameterError

__all__ = ["NodeSpikeSlabLinear"]


class NodeSpikeSlabLinear(_SpikeSlabLinear):
    """Node spike-and-slab layer: ``w_j = z_j * scale_j * beta_j`` for each node's group.

    ``z_j ~ Bernoulli(sigmoid(theta_j))`` (prior ``Bernoulli(lambda)``), trained with
    relaxed indicators; ``beta_j ~ N(mu_j, softplus(rho_j)^2)`` with prior
    ``N(0, sigma_0^2 I_d)``, ``d = in + 1``. The KL is

        KL = sum_j [ KL(Bern(pi_j) || Bern(lambda)) + pi_j KL(q(beta_j) || N(0, sigma_0^2 I)) ]
             + KL of the scale factors

    (the Gaussian part weighted by the inclusion probability ``pi_j``). Once the
    indicators are frozen (``BayesianMLP.freeze_masks``) at the kept structure,
    ``pi_j`` is replaced by the frozen mask (``q(z)`` a point mass).

    Parameters
    ----------
    in_features, out_features, generators, sigma_0, rho_init, dtype, device
        As :class:`VariationalLinear`.
    slab
        A node prior family of :data:`simulations.layers.registry.SCALE_FACTORS`:
        ``Prior.SS_IG`` (``scale = 1``), ``Prior.SS_GL``, ``Prior.SS_GHS`` or a registered one.
    prior_inclusion
        ``lambda`` in ``(0, 1)``.
    inclusion_init
        Initial ``sigmoid(theta)`` (reference 0.99).
    straight_through
        Hard indicators in the forward pass with the Concrete gradient (default),
        else soft Concrete samples.
    Scale hyperparameters (keywords)
        The scale factor's hyperparameters (its ``hyperparameters``, names of
        ``ModelConfig`` fields, defaults in its class); those of other families are ignored.
        SS-GL: ``kappa_shape, kappa_rate``, the Gamma hyperprior of ``kappa^2`` (shape,
        rate). SS-GHS: ``global_scale, local_scale, slab_width``: ``g ~ C+(0, global_scale)``,
        ``tau ~ C+(0, local_scale)``; slab width ``c`` of the regularised horseshoe, ``None``
        for the plain horseshoe.
    """

    def __init__(self, *args: Any, slab: Prior | str = Prior.SS_GHS, **options: Any) -> None:
        known = registry.scale_hyperparameters()
        super().__init__(*args, **{k: v for k, v in options.items() if k not in known})
        self.slab = parse_enum(Prior, slab, "slab")
        if not self.slab.is_node_sparse:
            allowed = "one of " + ", ".join(repr(f.value) for f in registry.SCALE_FACTORS)
            raise InvalidParameterError("slab", allowed, slab)
        factor = registry.scale_factor_class(self.slab)
        hyperparameters = {k: v for k, v in options.items() if k in factor.hyperparameters}
        kw = {"dtype": self.mu.dtype, "device": self.mu.device}
        self.scale_factor = factor(
            self.replicates, self.out_features, self.group_size, rho_init=self.rho_init, kw=kw,
            **hyperparameters,
        )  # fmt: skip

    def _indicator_shape(self) -> tuple[int, ...]:
        """One indicator per node, ``[R, out]``."""
        return (self.replicates, self.out_features)

    @property
    def normal_count(self) -> int:
        """Normals per replicate: ``beta`` (all groups), then the scale draws."""
        return self.slab_normal_count + self.scale_factor.noise_count

    @property
    def uniform_count(self) -> int:
        """One uniform per node (its indicator)."""
        return self.out_features

    def _draw_scale(self, normal: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | float]:
        """A draw of ``scale_j`` (``None``: 1) from this layer's normals and the scale KL."""
        return self.scale_factor.draw(normal[..., self.slab_normal_count :])

    def _gate(self, normal, uniform, temperature):
        """``z_j * scale_j`` (relaxed ``z_j``, or the frozen mask) and the gate's KL ``[R]``."""
        gate, ind_kl, pi = self.indicators.sample_kl(uniform, temperature)
        scale, scale_kl = self._draw_scale(normal)
        if scale is not None:
            gate = gate * scale
        return gate, ind_kl.sum(-1) + scale_kl, pi

    def _combine_kl(self, slab_rows, gate_kl, weights=None):
        """``sum_j pi_j slab_j + gate KL`` (``weights``: ``pi`` of the training pass)."""
        pi = self.indicators.probs() if weights is None else weights
        return (pi * slab_rows).sum(-1) + gate_kl

    def kl(self) -> torch.Tensor:
        """Per-replicate KL ``[R]`` (see the class docstring)."""
        scale_kl = self.scale_factor.kl()
        return self._combine_kl(self.slab_kl(), self.indicators.kl().sum(-1) + scale_kl)

    def inclusion_probs(self) -> torch.Tensor:
        """``pi_j = sigmoid(theta_j)``, ``[R, out]``; the 0/1 mask once frozen."""
        return self.indicators.probs().detach()

    def expected_scale(self) -> torch.Tensor:
        """``E_q[scale_j]``, ``[R, out]`` (1 for the Gaussian slab)."""
        return self.scale_factor.expected(self.theta.detach()).detach()

    def node_mask(self, uniform: torch.Tensor) -> torch.Tensor:
        """Exact Bernoulli node mask ``z_j = 1{u_j < pi_j}``, ``[..., R, out]``."""
        return uniform < self.inclusion_probs()

    def weights_from_noise(self, normal, uniform):
        """Exact draw ``W_j = z_j scale_j beta_j``, z_j = 1{u_j < pi_j}; ``[..., R, out, in]``."""
        beta = self._beta(normal)
        gate = self.indicators.exact(uniform)
        scale, _ = self._draw_scale(normal)
        if scale is not None:
            gate = gate * scale
        beta = beta * gate.unsqueeze(-1)
        return beta[..., :-1], beta[..., -1]

    def mean_weights(self):
        """``kept_j * E_q[scale_j] * mu_j`` for weights ``[R, out, in]`` and biases ``[R, out]``."""
        gate = self.kept().to(self.theta.dtype) * self.expected_scale()
        mu = self.mu.detach() * gate.unsqueeze(-1)
        return mu[..., :-1], mu[..., -1]
