"""Edge (weight-level) spike-and-slab layer, Gaussian slab (Bai, Song & Cheng 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from simulations.kl import kl_normal
from simulations.layers.dense import _Columns
from simulations.layers.indicators import _SpikeSlabLinear

__all__ = ["EdgeSpikeSlabLinear"]


class EdgeSpikeSlabLinear(_SpikeSlabLinear):
    """Edge spike-and-slab layer (Bai, Song & Cheng 2020): one indicator per weight and bias.

    ``w_ji = z_ji beta_ji``, ``z_ji ~ Bernoulli(sigmoid(theta_ji))`` (prior
    ``Bernoulli(lambda)``), ``beta_ji ~ N(mu_ji, softplus(rho_ji)^2)``, prior
    ``N(0, sigma_0^2)``:

        KL = sum_ji [ KL(Bern(pi_ji) || Bern(lambda)) + pi_ji KL(q(beta_ji) || N(0, sigma_0^2)) ]

    over weights and biases (``theta [R, out, in + 1]``, laid out as ``mu``).
    Parameters as :class:`NodeSpikeSlabLinear` (no scale).
    """

    def _indicator_shape(self) -> tuple[int, ...]:
        """One indicator per weight and bias, ``[R, out, in + 1]``."""
        return tuple(self.mu.shape)

    weight_theta = _Columns("theta", bias=False, doc="Weight inclusion logits ``[R, out, in]``.")
    bias_theta = _Columns("theta", bias=True, doc="Bias inclusion logits ``[R, out]``.")

    @property
    def uniform_count(self) -> int:
        """One uniform per weight and per bias."""
        return self.slab_normal_count

    def _uniform(self, uniform: torch.Tensor) -> torch.Tensor:
        lead = uniform.shape[:-1]
        return uniform.view(*lead, self.out_features, self.group_size)

    def step(self, x, normal, uniform=None, temperature=0.5, column_gate=None):
        """Training pass and KL, ``(h [R, B, out], KL [R])``, with ``(W, b) = z * beta``."""
        uniform = None if uniform is None else self._uniform(uniform)
        z, ind_kl, pi = self.indicators.sample_kl(uniform, temperature)
        sd = F.softplus(self.rho)
        weight = torch.addcmul(self.mu, sd, self._eps(normal)) * z
        if column_gate is not None:
            x = x * column_gate.unsqueeze(-2)
        h = torch.baddbmm(weight[..., -1].unsqueeze(-2), x, weight[..., :-1].transpose(-1, -2))
        gauss = kl_normal(self.mu, sd, 0.0, self.sigma_0)
        return h, (ind_kl + pi * gauss).sum((-2, -1))

    def kl(self) -> torch.Tensor:
        """Per-replicate KL ``[R]`` (see the class docstring)."""
        gauss = kl_normal(self.mu, F.softplus(self.rho), 0.0, self.sigma_0)
        return (self.indicators.kl() + self.indicators.probs() * gauss).sum((-2, -1))

    def inclusion_probs(self) -> torch.Tensor:
        """Weight inclusion probabilities ``[R, out, in]``; the 0/1 mask once frozen."""
        return self.indicators.probs()[..., :-1].detach()

    def bias_inclusion_probs(self) -> torch.Tensor:
        """Bias inclusion probabilities ``[R, out]``; the 0/1 mask once frozen."""
        return self.indicators.probs()[..., -1].detach()

    def node_mask(self, uniform: torch.Tensor) -> torch.Tensor:
        """Exact Bernoulli node mask ``[..., R, out]``: a node is on when at least one of its
        incoming weights is drawn on (``1{u_ji < pi_ji}``; the bias's draw is not used)."""
        u_w = uniform.view(*uniform.shape[:-1], self.out_features, self.group_size)[..., :-1]
        return (u_w < self.inclusion_probs()).any(-1)

    def weights_from_noise(self, normal, uniform):
        """Exact draw ``(W, b) = 1{u < pi} * beta``, ``[..., R, out, in]`` and ``[..., R, out]``."""
        weight = self._beta(normal) * self.indicators.exact(self._uniform(uniform))
        return weight[..., :-1], weight[..., -1]

    def mean_weights(self):
        """``kept * mu`` for weights ``[R, out, in]`` and biases ``[R, out]``."""
        mu = self.mu.detach() * (self.indicators.probs() > 0.5).to(self.mu.dtype)
        return mu[..., :-1], mu[..., -1]
