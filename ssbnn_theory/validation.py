"""Input validation for the whole toolkit (theory, engine, studies).

Every check takes the field's name as the user wrote it and the value, returns the value in
its canonical type, and raises :class:`~ssbnn_theory.errors.InvalidParameterError` naming the
field, the allowed range and the value received.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import NamedTuple, TypedDict, Unpack

import numpy as np

from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "Bounds",
    "check_integer",
    "check_integer_sequence",
    "check_positive",
    "check_real",
    "check_real_array",
    "is_integer",
]


class Bounds(TypedDict, total=False):
    """The interval of :func:`check_real` and :func:`check_real_array`, as keywords.

    ``lower`` and ``upper`` (``None``, the default: unbounded on that side) are included
    unless ``lower_open`` or ``upper_open`` is true.
    """

    lower: float | None
    upper: float | None
    lower_open: bool
    upper_open: bool


class _Interval(NamedTuple):
    """An interval of :class:`Bounds`: its description and membership of finite numbers."""

    lower: float | None = None
    upper: float | None = None
    lower_open: bool = False
    upper_open: bool = False

    def describe(self) -> str:
        """``"a finite number in [lower, upper)"`` and the like, for error messages."""
        lower, upper = self.lower, self.upper
        if lower is not None and upper is not None:
            left = "(" if self.lower_open else "["
            right = ")" if self.upper_open else "]"
            return f"a finite number in {left}{lower:g}, {upper:g}{right}"
        if lower is not None:
            return f"a finite number {'>' if self.lower_open else '>='} {lower:g}"
        if upper is not None:
            return f"a finite number {'<' if self.upper_open else '<='} {upper:g}"
        return "a finite number"

    def outside(self, x: np.ndarray | float) -> np.ndarray | bool:
        """Where ``x`` is not finite or lies outside the interval (elementwise)."""
        bad = ~np.isfinite(x)
        if self.lower is not None:
            bad |= (x < self.lower) | ((x == self.lower) if self.lower_open else False)
        if self.upper is not None:
            bad |= (x > self.upper) | ((x == self.upper) if self.upper_open else False)
        return bad


def is_integer(value: object, lower: int) -> bool:
    """Whether ``value`` is an integer ``>= lower`` (bools are not)."""
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= lower


def check_integer(field: str, value: object, *, lower: int = 1, upper: int | None = None) -> int:
    """Return ``value`` as an ``int`` in ``[lower, upper]``; bools and non-integers are rejected."""
    allowed = f"an integer >= {lower}" if upper is None else f"an integer in [{lower}, {upper}]"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InvalidParameterError(field, allowed, value)
    result = int(value)
    if result < lower or (upper is not None and result > upper):
        raise InvalidParameterError(field, allowed, value)
    return result


def check_integer_sequence(
    field: str, value: object, *, lower: int = 1, upper: int | None = None, first: int = 1
) -> tuple[int, ...]:
    """A non-empty sequence of integers in ``[lower, upper]`` as a tuple.

    Its items are named ``field[first]``, ``field[first + 1]``, ... in errors.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise InvalidParameterError(field, f"a non-empty list of integers >= {lower}", value)
    items = list(value)
    if not items:
        raise InvalidParameterError(field, f"a non-empty list of integers >= {lower}", value)
    return tuple(
        check_integer(f"{field}[{i}]", v, lower=lower, upper=upper)
        for i, v in enumerate(items, start=first)
    )


def check_real(field: str, value: object, **bounds: Unpack[Bounds]) -> float:
    """Return ``value`` as a finite ``float`` inside the interval ``bounds`` (:class:`Bounds`)."""
    interval = _Interval(**bounds)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidParameterError(field, interval.describe(), value)
    try:
        x = float(value)
    except OverflowError:  # an integer too large for a float
        raise InvalidParameterError(field, interval.describe(), value) from None
    if interval.outside(x):
        raise InvalidParameterError(field, interval.describe(), value)
    return x


def check_positive(field: str, value: object) -> float:
    """Return ``value`` as a finite ``float > 0``."""
    return check_real(field, value, lower=0.0, lower_open=True)


def check_real_array(field: str, value: object, **bounds: Unpack[Bounds]) -> np.ndarray:
    """Return ``value`` as a float64 array whose every entry is finite and inside the interval
    ``bounds`` (:class:`Bounds`)."""
    interval = _Interval(**bounds)
    allowed = interval.describe()
    if isinstance(value, (str, bytes, bool)):
        raise InvalidParameterError(field, allowed, value)
    try:
        x = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(field, allowed, value) from None
    if x.size == 0:
        raise InvalidParameterError(field, "a non-empty array of " + allowed[2:], value)
    bad = interval.outside(x)
    if np.any(bad):
        first = x.flat[int(np.flatnonzero(bad)[0])]
        raise InvalidParameterError(field, allowed, float(first))
    return x
