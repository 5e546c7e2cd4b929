"""Slab families of the node spike-and-slab prior: one :class:`Slab` class per family and the
registry :data:`SLABS`.

* ``ss-ig``: :class:`GaussianSlab`, ``w ~ N(0, sigma_0^2 I_d)``;
* ``ss-gl``: :class:`GroupLassoSlab`, ``w | tau^2 ~ N(0, sigma_0^2 tau^2 I_d)``,
  ``tau^2 ~ Gamma((d+1)/2, rate kappa^2/2)``;
* ``ss-ghs``: :class:`GroupHorseshoeSlab`, ``w | tau ~ N(0, sigma_0^2 lambda(tau)^2 I_d)``,
  ``tau ~ C+(0, 1)``, ``lambda = c g tau / sqrt(c^2 + g^2 tau^2)`` or ``g tau``.

:func:`register_slab` adds a family (docs/architecture.md, "Adding a prior family"); every
function that takes a :class:`~ssbnn_theory.PriorSpec` then accepts it.
"""

from __future__ import annotations

from ssbnn_theory.enums import Prior, extend_enum, parse_enum, retract_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.slabs.base import ScaleMixtureSlab, Slab, SmallBall
from ssbnn_theory.slabs.gaussian import GaussianSlab
from ssbnn_theory.slabs.group_horseshoe import GroupHorseshoeSlab
from ssbnn_theory.slabs.group_lasso import GroupLassoSlab

__all__ = [
    "SLABS",
    "GaussianSlab",
    "GroupHorseshoeSlab",
    "GroupLassoSlab",
    "ScaleMixtureSlab",
    "Slab",
    "SmallBall",
    "families",
    "register_slab",
    "slab_of",
    "unregister_slab",
]

SLABS: dict[Prior, Slab] = {
    Prior.SS_IG: GaussianSlab(),
    Prior.SS_GL: GroupLassoSlab(),
    Prior.SS_GHS: GroupHorseshoeSlab(),
}
"""Family -> its slab (in the order figures and ``ssbnn rate --prior all`` list them)."""


def families() -> tuple[Prior, ...]:
    """Every registered family, built-in ones first."""
    return tuple(SLABS)


def slab_of(family: Prior | str) -> Slab:
    """The slab of a registered family (a :class:`Prior`, its value, or a ``PriorSpec``)."""
    family = getattr(family, "prior", family)
    try:
        key = parse_enum(Prior, family, "prior")
    except InvalidParameterError:
        key = None
    if key is None or key not in SLABS:
        allowed = "one of " + ", ".join(repr(f.value) for f in SLABS)
        raise InvalidParameterError("prior", allowed, family)
    return SLABS[key]


def register_slab(slab: Slab) -> Prior:
    """Add a family: ``slab.family`` (a :class:`Prior` or a new name, which then parses as a
    member of :class:`Prior`) maps to ``slab``; returns the family's member."""
    family = extend_enum(Prior, str(getattr(slab.family, "value", slab.family)))
    SLABS[family] = slab
    return family


def unregister_slab(family: Prior | str) -> None:
    """Undo :func:`register_slab` for a family that is not built in."""
    key = parse_enum(Prior, family, "prior")
    if key in (Prior.SS_IG, Prior.SS_GL, Prior.SS_GHS):
        raise InvalidParameterError("family", "a family that is not built in", key.value)
    SLABS.pop(key, None)
    retract_enum(Prior, key.value)
