"""The registry of scale factors: one :class:`~simulations.layers.scales.ScaleFactor` class per
node prior family.

A node layer (:class:`simulations.layers.NodeSpikeSlabLinear`) of family ``f`` gets its
``scale_j`` from ``SCALE_FACTORS[f]``; :func:`register_scale_factor` adds a family (and makes
its name a valid :class:`simulations.enums.Prior`). ``docs/architecture.md``, "Adding a prior
family", lists the steps.
"""

from __future__ import annotations

from simulations.enums import Prior
from simulations.layers.group_horseshoe import GroupHorseshoeScale
from simulations.layers.group_lasso import GroupLassoScale
from simulations.layers.scales import GaussianScale, ScaleFactor
from ssbnn_theory.enums import Prior as Family
from ssbnn_theory.enums import extend_enum, parse_enum, retract_enum
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "SCALE_FACTORS",
    "register_scale_factor",
    "scale_factor_class",
    "scale_hyperparameters",
    "unregister_scale_factor",
]

SCALE_FACTORS: dict[Family, type[ScaleFactor]] = {
    Family.SS_IG: GaussianScale,
    Family.SS_GL: GroupLassoScale,
    Family.SS_GHS: GroupHorseshoeScale,
}
"""Node prior family -> its scale factor class."""


def scale_factor_class(family: Family | Prior | str) -> type[ScaleFactor]:
    """The scale factor class of a node prior family."""
    key = parse_enum(Prior, family, "slab").family
    if key is None or key not in SCALE_FACTORS:
        allowed = "one of " + ", ".join(repr(f.value) for f in SCALE_FACTORS)
        raise InvalidParameterError("slab", allowed, str(family))
    return SCALE_FACTORS[key]


def scale_hyperparameters() -> frozenset[str]:
    """Every hyperparameter name that some registered scale factor takes."""
    return frozenset(name for cls in SCALE_FACTORS.values() for name in cls.hyperparameters)


def register_scale_factor(family: Family | str, cls: type[ScaleFactor]) -> Family:
    """Register ``cls`` as the scale factor of ``family`` (a theory family, or a new name,
    which then also becomes a node-family member of :class:`simulations.enums.Prior`)."""
    key = Family(family) if isinstance(family, Family) else extend_enum(Family, str(family))
    SCALE_FACTORS[key] = cls
    extend_enum(Prior, key.value)
    return key


def unregister_scale_factor(family: Family | str) -> None:
    """Undo :func:`register_scale_factor` for a family that is not built in."""
    key = parse_enum(Family, family, "family")
    SCALE_FACTORS.pop(key, None)
    retract_enum(Prior, key.value)
