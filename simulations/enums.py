"""Engine configuration enums; each accepts the member or its string value (``parse_enum``)."""

from __future__ import annotations

from enum import StrEnum

from ssbnn_theory.enums import Prior as TheoryPrior

__all__ = ["Likelihood", "Prior"]


class Prior(StrEnum):
    """Prior family of a hidden layer; node priors share values with ``ssbnn_theory.Prior``."""

    SS_IG = "ss-ig"
    """Node spike-and-slab, Gaussian slab (Jantre et al. 2021)."""
    SS_GL = "ss-gl"
    """Node spike-and-slab, group-lasso slab (Jantre et al. 2024)."""
    SS_GHS = "ss-ghs"
    """Node spike-and-slab, group-horseshoe slab; regularised when a slab width ``c`` is set."""
    EDGE_SS = "edge-ss"
    """Edge (weight-level) spike-and-slab, Gaussian slab (Bai, Song & Cheng 2020)."""
    DENSE = "dense"
    """Dense mean-field Gaussian, no spike (Bayes by backprop, Blundell et al. 2015)."""

    @property
    def is_node_sparse(self) -> bool:
        """Whether the spike acts on nodes (groups of incoming weights)."""
        return self in (Prior.SS_IG, Prior.SS_GL, Prior.SS_GHS)

    @property
    def theory_prior(self) -> TheoryPrior | None:
        """The matching ``ssbnn_theory.Prior`` for node priors, else ``None``."""
        return TheoryPrior(self.value) if self.is_node_sparse else None


class Likelihood(StrEnum):
    """Observation model of the network output."""

    GAUSSIAN = "gaussian"
    """``y ~ N(f(x), sigma_e^2)``, ``sigma_e`` known or learned."""
    BERNOULLI = "bernoulli"
    """``y ~ Bernoulli(sigmoid(f(x)))``, one output (a logit)."""
    CATEGORICAL = "categorical"
    """``y ~ Categorical(softmax(f(x)))``, one output per class."""
