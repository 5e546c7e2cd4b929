"""Engine configuration enums; each accepts the member or its string value (``parse_enum``)."""

from __future__ import annotations

from enum import StrEnum

from ssbnn_theory.enums import Prior as Family

__all__ = ["Likelihood", "Prior"]


class Prior(StrEnum):
    """Prior of a hidden layer: a node spike-and-slab family or a baseline.

    The node families are the theory's (:class:`ssbnn_theory.Prior`, the same values; the
    member's :attr:`family`); the baselines (``edge-ss``, ``dense``) have no theory family.
    A family registered with :func:`simulations.layers.registry.register_scale_factor`
    parses as a node family too.
    """

    SS_IG = "ss-ig"
    """Node spike-and-slab, Gaussian slab (Jantre et al. 2021)."""
    SS_GL = "ss-gl"
    """Node spike-and-slab, group-lasso slab (Jantre et al. 2024)."""
    SS_GHS = "ss-ghs"
    """Node spike-and-slab, group-horseshoe slab; regularised when a slab width ``c`` is set."""
    EDGE_SS = "edge-ss"
    """Baseline: edge (weight-level) spike-and-slab, Gaussian slab (Bai, Song & Cheng 2020)."""
    DENSE = "dense"
    """Baseline: dense mean-field Gaussian, no spike (Bayes by backprop, Blundell et al. 2015)."""

    @property
    def family(self) -> Family | None:
        """The node prior family (``ssbnn_theory.Prior``), ``None`` for a baseline."""
        return None if self in _BASELINES else Family(self.value)

    @property
    def is_node_sparse(self) -> bool:
        """Whether the spike acts on nodes (groups of incoming weights): not a baseline."""
        return self not in _BASELINES


_BASELINES = frozenset({Prior.EDGE_SS, Prior.DENSE})


class Likelihood(StrEnum):
    """Observation model of the network output."""

    GAUSSIAN = "gaussian"
    """``y ~ N(f(x), sigma_e^2)``, ``sigma_e`` known or learned."""
    BERNOULLI = "bernoulli"
    """``y ~ Bernoulli(sigmoid(f(x)))``, one output (a logit)."""
    CATEGORICAL = "categorical"
    """``y ~ Categorical(softmax(f(x)))``, one output per class."""
