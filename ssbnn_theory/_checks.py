"""Former name of :mod:`ssbnn_theory.validation` (kept so that older imports keep working)."""

from ssbnn_theory.validation import (
    check_integer,
    check_integer_sequence,
    check_positive,
    check_real,
    check_real_array,
)

__all__ = [
    "check_integer",
    "check_integer_sequence",
    "check_positive",
    "check_real",
    "check_real_array",
]
