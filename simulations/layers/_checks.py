"""Argument checks of the layer constructors (one-line :class:`InvalidParameterError`)."""

from __future__ import annotations

import math

import numpy as np

from simulations.kl import LogProbability
from ssbnn_theory.errors import InvalidParameterError


def check_int(value: object, field: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InvalidParameterError(field, f"an integer >= {low}", value)
    return int(value)


def check_positive(value: object, field: str) -> float:
    if not isinstance(value, int | float | np.floating) or not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(field, "a finite number > 0", value)
    return float(value)


def check_probability(value: object, field: str) -> float:
    if isinstance(value, LogProbability):
        if not (math.isfinite(value) and value < 0):
            raise InvalidParameterError(field, "a log probability in (-inf, 0)", float(value))
        return value
    if not isinstance(value, int | float | np.floating) or not (0.0 < value < 1.0):
        raise InvalidParameterError(field, "a probability in (0, 1)", value)
    return float(value)
