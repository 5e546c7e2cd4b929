"""Node spike on the network's inputs, without a slab."""

from __future__ import annotations

import torch
from torch import nn

from simulations.layers.indicators import _Gated, _Indicators
from ssbnn_theory.validation import check_integer

__all__ = ["InputSpike"]


class InputSpike(_Gated, nn.Module):
    """Node spike on the ``p`` inputs, without a slab: input ``i`` enters as ``z_i x_i``.

    ``z_i ~ Bernoulli(sigmoid(theta_i))`` with prior ``Bernoulli(lambda)``;
    ``KL = sum_i KL(Bern(pi_i) || Bern(lambda))``. The gate multiplies the first
    layer's weight columns (``column_gate``), which equals gating the inputs.

    Parameters
    ----------
    features
        ``p``.
    replicates
        ``R``.
    prior_inclusion, inclusion_init, straight_through, dtype, device
        As :class:`NodeSpikeSlabLinear`.
    """

    normal_count = 0

    def __init__(
        self,
        features: int,
        replicates: int,
        *,
        prior_inclusion: float,
        inclusion_init: float = 0.99,
        straight_through: bool = True,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.features = check_integer("features", features, lower=1)
        reps = check_integer("replicates", replicates, lower=1)
        self.indicators = _Indicators(
            (reps, self.features), prior_inclusion=prior_inclusion, inclusion_init=inclusion_init,
            straight_through=straight_through, field="input_inclusion",
            kw={"dtype": dtype, "device": device},
        )  # fmt: skip

    @property
    def uniform_count(self) -> int:
        """One uniform per input."""
        return self.features

    def gate(self, uniform: torch.Tensor | None, temperature: float) -> torch.Tensor:
        """Relaxed indicators ``[R, p]`` (or the frozen mask)."""
        return self.indicators.sample(uniform, temperature)

    def mask_from_noise(self, uniform: torch.Tensor) -> torch.Tensor:
        """Exact draw ``z_i = 1{u_i < pi_i}``, ``[..., R, p]``."""
        return self.indicators.exact(uniform)

    def kl(self) -> torch.Tensor:
        """``sum_i KL(Bern(pi_i) || Bern(lambda))`` (point mass at the frozen mask), ``[R]``."""
        return self.indicators.kl().sum(-1)

    def inclusion_probs(self) -> torch.Tensor:
        """``pi_i``, ``[R, p]``; the 0/1 mask once frozen."""
        return self.indicators.probs().detach()

    def kept(self) -> torch.Tensor:
        """Inputs whose inclusion probability exceeds 0.5, ``[R, p]``."""
        return self.inclusion_probs() > 0.5
