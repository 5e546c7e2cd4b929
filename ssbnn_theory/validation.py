"""Input validation for the whole toolkit (theory, engine, studies).

Every check takes the field's name as the user wrote it and the value, returns the value in
its canonical type, and raises :class:`~ssbnn_theory.errors.InvalidParameterError` naming the
field, the allowed range and the value received.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np

from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "check_integer",
    "check_integer_sequence",
    "check_positive",
    "check_real",
    "check_real_array",
    "is_integer",
]


def _interval(lower: float | None, upper: float | None, lower_open: bool, upper_open: bool) -> str:
    if lower is not None and upper is not None:
        left = "(" if lower_open else "["
        right = ")" if upper_open else "]"
        return f"a finite number in {left}{lower:g}, {upper:g}{right}"
    if lower is not None:
        return f"a finite number {'>' if lower_open else '>='} {lower:g}"
    if upper is not None:
        return f"a finite number {'<' if upper_open else '<='} {upper:g}"
    return "a finite number"


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


def check_real(
    field: str,
    value: object,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_open: bool = False,
    upper_open: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` inside the stated interval."""
    allowed = _interval(lower, upper, lower_open, upper_open)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidParameterError(field, allowed, value)
    try:
        x = float(value)
    except OverflowError:  # an integer too large for a float
        raise InvalidParameterError(field, allowed, value) from None
    if not math.isfinite(x):
        raise InvalidParameterError(field, allowed, value)
    if lower is not None and (x < lower or (lower_open and x == lower)):
        raise InvalidParameterError(field, allowed, value)
    if upper is not None and (x > upper or (upper_open and x == upper)):
        raise InvalidParameterError(field, allowed, value)
    return x


def check_positive(field: str, value: object) -> float:
    """Return ``value`` as a finite ``float > 0``."""
    return check_real(field, value, lower=0.0, lower_open=True)


def check_real_array(
    field: str,
    value: object,
    *,
    lower: float | None = None,
    upper: float | None = None,
    lower_open: bool = False,
    upper_open: bool = False,
) -> np.ndarray:
    """Return ``value`` as a float64 array whose every entry is finite and inside the interval."""
    allowed = _interval(lower, upper, lower_open, upper_open)
    if isinstance(value, (str, bytes, bool)):
        raise InvalidParameterError(field, allowed, value)
    try:
        x = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(field, allowed, value) from None
    if x.size == 0:
        raise InvalidParameterError(field, "a non-empty array of " + allowed[2:], value)
    bad = ~np.isfinite(x)
    if lower is not None:
        bad |= (x < lower) | ((x == lower) if lower_open else False)
    if upper is not None:
        bad |= (x > upper) | ((x == upper) if upper_open else False)
    if np.any(bad):
        first = x.flat[int(np.flatnonzero(bad)[0])]
        raise InvalidParameterError(field, allowed, float(first))
    return x
