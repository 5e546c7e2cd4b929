"""The network architecture a rate is computed for: widths, active nodes and weight bounds.

Notation (docs/theory.md, section 1): ``L`` hidden layers of widths ``k_1..k_L`` on
``k_0 = p`` inputs, ``k_{L+1}`` outputs; ``s_l`` active nodes in hidden layer ``l``
(the output layer is dense, ``s_{L+1} = k_{L+1}``); every coordinate of layer ``l``
(weights and biases) bounded by ``B_l``, ``l = 1..L+1``. Layers are numbered from 1 in
fields and error messages (``hidden[1]`` is ``k_1``).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path

import numpy as np

from ssbnn_theory.enums import Activation, FanIn, parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_integer, check_integer_sequence, check_real

__all__ = ["MAX_BOUND", "MAX_WIDTH", "Architecture"]

_FIELDS = ("p", "hidden", "active", "bounds", "activation", "outputs", "fan_in")

MAX_WIDTH = 10**40
"""Largest ``p``, width and output count: far beyond any network (the Hoelder helper reaches
``4.6e26`` at ``n = 1e80``), with every count and product inside float64 range."""
MAX_BOUND = 1e100
"""Largest weight bound ``B_l`` (``B_l^2`` terms stay far inside float64 range)."""


@dataclass(frozen=True)
class Architecture:
    """A feed-forward network with node sparsity, validated on construction.

    Parameters
    ----------
    p
        Number of inputs ``k_0``, an integer ``>= 1``.
    hidden
        Hidden widths ``k_1..k_L`` (``L >= 1``), integers ``>= 1``.
    active
        Active nodes ``s_1..s_L`` with ``1 <= s_l <= k_l``; ``None`` (default) means dense,
        ``s_l = k_l``.
    bounds
        Weight bounds ``B_1..B_{L+1}`` (finite, ``>= 0``), one per layer including the
        output layer, or one number used for every layer.
    activation
        :class:`~ssbnn_theory.Activation` or its string value.
    outputs
        Output width ``k_{L+1}``, an integer ``>= 1``; the output layer is linear and dense.
    fan_in
        :class:`~ssbnn_theory.FanIn`: ``"full"`` counts every node of the previous layer in
        the L1 envelope, ``"active"`` only the active ones (valid only when
        ``psi(0) = 0``; with ``"active"`` the weights leaving inactive nodes are irrelevant,
        so only ``s_{l-1} + 1`` coordinates per group are constrained, docs/theory.md
        section 1).

    Raises
    ------
    InvalidParameterError
        Naming the field and the allowed range, for any violation.
    """

    p: int
    hidden: tuple[int, ...]
    active: tuple[int, ...] | None = None
    bounds: tuple[float, ...] | float = 1.0
    activation: Activation | str = Activation.RELU
    outputs: int = 1
    fan_in: FanIn | str = FanIn.FULL
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = check_integer("p", self.p, upper=MAX_WIDTH)
        hidden = check_integer_sequence("hidden", self.hidden, upper=MAX_WIDTH)
        depth = len(hidden)
        if self.active is None:
            active = hidden
        else:
            active = check_integer_sequence("active", self.active)
            if len(active) != depth:
                raise InvalidParameterError(
                    "active", f"a list of {depth} integers, one per hidden layer", self.active
                )
            for layer, (s, k) in enumerate(zip(active, hidden, strict=True), start=1):
                if s > k:
                    raise InvalidParameterError(
                        f"active[{layer}]", f"an integer in [1, hidden[{layer}]] = [1, {k}]", s
                    )
        bounds = _check_bounds(self.bounds, depth)
        activation = parse_enum(Activation, self.activation, "activation")
        outputs = check_integer("outputs", self.outputs, upper=MAX_WIDTH)
        fan_in = parse_enum(FanIn, self.fan_in, "fan_in")
        if fan_in is FanIn.ACTIVE and activation.offset != 0.0:
            raise InvalidParameterError(
                "fan_in",
                f"'full' for activation {activation.value!r} (psi(0) = {activation.offset:g} "
                "is not 0, so inactive nodes do not output 0)",
                fan_in.value,
            )
        for name, value in (
            ("p", p),
            ("hidden", hidden),
            ("active", active),
            ("bounds", bounds),
            ("activation", activation),
            ("outputs", outputs),
            ("fan_in", fan_in),
        ):
            object.__setattr__(self, name, value)

    # ----------------------------------------------------------------- derived sizes
    @property
    def depth(self) -> int:
        """Number of hidden layers ``L``."""
        return len(self.hidden)

    @property
    def widths(self) -> tuple[int, ...]:
        """``(k_0, k_1, ..., k_L, k_{L+1}) = (p, hidden..., outputs)``."""
        return (self.p, *self.hidden, self.outputs)

    @property
    def active_nodes(self) -> tuple[int, ...]:
        """``(s_1, ..., s_L, s_{L+1})`` with the dense output layer ``s_{L+1} = outputs``."""
        return (*self.active, self.outputs)

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Group sizes ``d_l = k_{l-1} + 1`` (incoming weights and bias), ``l = 1..L+1``."""
        w = self.widths
        return tuple(w[i] + 1 for i in range(self.depth + 1))

    @property
    def fan_in_counts(self) -> tuple[int, ...]:
        """``m_l``, ``l = 1..L+1``: ``k_{l-1}``; ``s_{l-1}`` (``l >= 2``) if ``fan_in="active"``."""
        if self.fan_in is FanIn.ACTIVE:
            return (self.p, *self.active)
        return (self.p, *self.hidden)

    @property
    def constrained(self) -> tuple[int, ...]:
        """Constrained coordinates per active group, ``r_l = m_l + 1``, ``l = 1..L+1``."""
        return tuple(m + 1 for m in self.fan_in_counts)

    @property
    def coordinates(self) -> int:
        """Effective dimension ``T = sum_{l=1}^{L+1} s_l r_l`` (constrained coordinates)."""
        return sum(s * r for s, r in zip(self.active_nodes, self.constrained, strict=True))

    @property
    def edges(self) -> int:
        """Weights and biases of the active subnetwork: ``sum_l s_l (s_{l-1} + 1)``, ``s_0 = p``.

        This is the edge count ``s`` of the same function written as an edge-sparse
        network (docs/theory.md, section 4.3).
        """
        counts = (self.p, *self.active_nodes)
        return sum(counts[i + 1] * (counts[i] + 1) for i in range(self.depth + 1))

    @property
    def parameters(self) -> int:
        """All weights and biases of the (dense) network, ``sum_l k_l (k_{l-1} + 1)``."""
        w = self.widths
        return sum(w[i + 1] * (w[i] + 1) for i in range(self.depth + 1))

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Per-layer float64 arrays (length ``L+1``): ``k``, ``s``, ``d``, ``m``, ``r``, ``B``.

        ``k`` and ``s`` include the output layer; used by the vectorised bound code.
        """
        cached = self._cache.get("arrays")
        if cached is None:
            cached = {
                "k": np.asarray(self.widths[1:], dtype=np.float64),
                "s": np.asarray(self.active_nodes, dtype=np.float64),
                "d": np.asarray(self.group_sizes, dtype=np.float64),
                "m": np.asarray(self.fan_in_counts, dtype=np.float64),
                "r": np.asarray(self.constrained, dtype=np.float64),
                "B": np.asarray(self.bounds, dtype=np.float64),
            }
            for value in cached.values():
                value.flags.writeable = False
            self._cache["arrays"] = cached
        return cached

    # ------------------------------------------------------------------- variants
    def dense(self) -> Architecture:
        """The same network with every hidden node active (``s_l = k_l``)."""
        return dataclasses.replace(self, active=self.hidden)

    def replace(self, **changes: object) -> Architecture:
        """A validated copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    # --------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, object]:
        """JSON/TOML-ready dictionary; ``Architecture.from_dict(a.to_dict()) == a``."""
        return {
            "p": self.p,
            "hidden": list(self.hidden),
            "active": list(self.active),
            "bounds": list(self.bounds),
            "activation": self.activation.value,
            "outputs": self.outputs,
            "fan_in": self.fan_in.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Architecture:
        """Build from a mapping with the keys of :meth:`to_dict` (``p`` and ``hidden`` required)."""
        if not isinstance(data, Mapping):
            raise InvalidParameterError("architecture", "a table/mapping of fields", data)
        for key in data:
            if key not in _FIELDS:
                raise InvalidParameterError(
                    str(key), "one of the keys " + ", ".join(_FIELDS), data[key]
                )
        for key in ("p", "hidden"):
            if key not in data:
                raise InvalidParameterError(key, "present (a required field)", None)
        return cls(**{key: data[key] for key in _FIELDS if key in data})

    @classmethod
    def from_toml(cls, path: str | Path) -> Architecture:
        """Load from a TOML file: top-level keys, or an ``[architecture]`` table.

        Example::

            p = 100
            hidden = [16, 16]
            active = [4, 3]
            bounds = 1.5          # or one value per layer: [1.5, 1.5, 2.0]
            activation = "relu"
            fan_in = "full"
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidParameterError(
                "arch", f"a readable TOML file ({exc.strerror})", str(path)
            ) from None
        except UnicodeDecodeError:
            raise InvalidParameterError("arch", "a UTF-8 text file of TOML", str(path)) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidParameterError("arch", f"valid TOML ({exc})", str(path)) from None
        if "architecture" in data:
            others = sorted(key for key in data if key != "architecture")
            if others:
                raise InvalidParameterError(
                    "arch",
                    "either top-level keys or one [architecture] table, not both (other keys "
                    f"would be ignored: {', '.join(others)})",
                    str(path),
                )
            if not isinstance(data["architecture"], dict):
                raise InvalidParameterError(
                    "architecture", "a table of fields", data["architecture"]
                )
            data = data["architecture"]
        return cls.from_dict(data)

    def describe(self) -> str:
        """One line: ``p=100, hidden=16-16, active=4-3, bounds=1.5,1.5,1.5, relu, fan-in full``."""
        return (
            f"p={self.p}, hidden={'-'.join(map(str, self.hidden))}, "
            f"active={'-'.join(map(str, self.active))}, "
            f"bounds={','.join(f'{b:g}' for b in self.bounds)}, outputs={self.outputs}, "
            f"{self.activation.value}, fan-in {self.fan_in.value}"
        )


def _check_bounds(value: object, depth: int) -> tuple[float, ...]:
    allowed = (
        f"one number in [0, {MAX_BOUND:g}] or a list of {depth + 1} (one per layer incl. output)"
    )
    if isinstance(value, Real) and not isinstance(value, bool):
        b = check_real("bounds", value, lower=0.0, upper=MAX_BOUND)
        return (b,) * (depth + 1)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise InvalidParameterError("bounds", allowed, value)
    items = list(value)  # type: ignore[call-overload]
    if len(items) == 1:
        return (check_real("bounds[1]", items[0], lower=0.0, upper=MAX_BOUND),) * (depth + 1)
    if len(items) != depth + 1:
        raise InvalidParameterError("bounds", allowed, value)
    return tuple(
        check_real(f"bounds[{i + 1}]", b, lower=0.0, upper=MAX_BOUND) for i, b in enumerate(items)
    )
