"""String-valued configuration enums; each accepts the member or its string value."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "Activation",
    "FanIn",
    "Likelihood",
    "Prior",
    "extend_enum",
    "parse_enum",
    "retract_enum",
]

E = TypeVar("E", bound=StrEnum)


def parse_enum(enum_type: type[E], value: object, field: str) -> E:
    """Return ``enum_type(value)``, or raise :class:`InvalidParameterError` naming ``field``."""
    if isinstance(value, enum_type):
        return value
    try:
        return enum_type(str(value).strip().lower())
    except ValueError:
        allowed = "one of " + ", ".join(repr(m.value) for m in enum_type)
        raise InvalidParameterError(field, allowed, value) from None


def extend_enum(enum_type: type[E], value: str) -> E:
    """The member of ``enum_type`` with value ``value``, made if there is none.

    A made member (a registered family beyond the built-in ones, e.g. through
    :func:`ssbnn_theory.slabs.register_slab`) parses, compares and hashes as a member but
    is not listed by iterating ``enum_type``: the registries list the families.
    """
    value = str(value).strip().lower()
    known = enum_type._value2member_map_.get(value)
    if known is not None:
        return known  # type: ignore[return-value]
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise InvalidParameterError("family", "a name of letters, digits, '-' and '_'", value)
    member = str.__new__(enum_type, value)
    member._name_ = value.upper().replace("-", "_")
    member._value_ = value
    enum_type._value2member_map_[value] = member
    return member


def retract_enum(enum_type: type[E], value: str) -> None:
    """Forget a member made by :func:`extend_enum` (built-in members stay)."""
    member = enum_type._value2member_map_.get(str(value))
    if member is not None and member._name_ not in enum_type._member_map_:
        del enum_type._value2member_map_[str(value)]


class Activation(StrEnum):
    """Activation function ``psi`` with Lipschitz constant ``ell`` and offset ``a = |psi(0)|``."""

    RELU = "relu"
    """``max(u, 0)``: ``ell = 1``, ``a = 0``."""
    TANH = "tanh"
    """``tanh(u)``: ``ell = 1``, ``a = 0``."""
    SIGMOID = "sigmoid"
    """``1 / (1 + exp(-u))``: ``ell = 1/4``, ``a = 1/2``."""
    SILU = "silu"
    """``u * sigmoid(u)``: ``ell = max |psi'| ~ 1.0998``, ``a = 0``."""

    @property
    def lipschitz(self) -> float:
        """Lipschitz constant ``ell = sup |psi'|``."""
        return _LIPSCHITZ[self]

    @property
    def offset(self) -> float:
        """``a = |psi(0)|``, the output of a node whose incoming group is zero."""
        return 0.5 if self is Activation.SIGMOID else 0.0


# sup_u d/du [u sigmoid(u)] = 1.09983932..., attained at u ~ 2.3994 (docs/theory.md, section 1).
_LIPSCHITZ = {
    Activation.RELU: 1.0,
    Activation.TANH: 1.0,
    Activation.SIGMOID: 0.25,
    Activation.SILU: 1.09984,  # rounded up: an upper bound is what L1 needs
}


class FanIn(StrEnum):
    """How many incoming nodes the envelope bounds of L1 count per layer."""

    FULL = "full"
    """``m_l = k_{l-1}``: every node of the previous layer (always valid)."""
    ACTIVE = "active"
    """``m_l = s_{l-1}`` for ``l >= 2``: only active nodes; valid only when ``psi(0) = 0``."""


class Prior(StrEnum):
    """Node spike-and-slab prior: which slab ``G`` the active groups get."""

    SS_IG = "ss-ig"
    """Gaussian slab ``N(0, sigma_0^2 I_d)`` (Jantre et al. 2021)."""
    SS_GL = "ss-gl"
    """Group-lasso slab: ``N(0, sigma_0^2 tau^2 I_d)``,
    ``tau^2 ~ Gamma((d+1)/2, rate kappa^2/2)``."""
    SS_GHS = "ss-ghs"
    """Group-horseshoe slab: ``N(0, sigma_0^2 g^2 tau^2 I_d)``, ``tau ~ C+(0, 1)``;
    regularised (Piironen & Vehtari) when a slab width ``c`` is given."""


class Likelihood(StrEnum):
    """Observation model of a rate: it sets the KL scale of the prior-concentration step.

    Values as ``simulations.enums.Likelihood`` (docs/theory.md, section 4.6).
    """

    GAUSSIAN = "gaussian"
    """``y = f(x) + e``, ``e ~ N(0, sigma_e^2)``: ``KL = (f - f*)^2 / (2 sigma_e^2)``."""
    BERNOULLI = "bernoulli"
    """One logit ``f``, ``P(y = 1) = 1 / (1 + e^{-f})``: ``KL <= (f - f*)^2 / 8``."""
    CATEGORICAL = "categorical"
    """``K >= 2`` logits, softmax: ``KL <= max_k |f_k - f*_k|^2 / 2``."""
