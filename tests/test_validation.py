"""The public validation module: one set of checks for theory, engine and studies."""

import numpy as np
import pytest

from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import (
    check_integer,
    check_integer_sequence,
    check_positive,
    check_real,
)


def test_positive_accepts_numbers_and_rejects_the_rest():
    assert check_positive("x", 2) == 2.0
    assert check_positive("x", np.float32(0.5)) == 0.5
    for bad in (0, -1.0, float("nan"), float("inf"), True, "1", None, 10**400):
        with pytest.raises(InvalidParameterError, match=r"^x: must be a finite number > 0"):
            check_positive("x", bad)


def test_integer_bounds_and_messages():
    assert check_integer("n", np.int64(3), lower=1, upper=3) == 3
    with pytest.raises(InvalidParameterError, match=r"an integer in \[1, 3\] \(got 4\)"):
        check_integer("n", 4, lower=1, upper=3)
    with pytest.raises(InvalidParameterError, match=r"an integer >= 0"):
        check_integer("seed", 1.0, lower=0)


def test_sequence_names_items_from_first():
    assert check_integer_sequence("hidden", [2, 3]) == (2, 3)
    with pytest.raises(InvalidParameterError, match=r"^hidden\[0\]:"):
        check_integer_sequence("hidden", [0, 3], first=0)
    with pytest.raises(InvalidParameterError, match=r"^hidden\[2\]:"):
        check_integer_sequence("hidden", [1, 0])


def test_real_interval_words():
    with pytest.raises(InvalidParameterError, match=r"a finite number in \(0, 1\)"):
        check_real("p", 1.0, lower=0, upper=1, lower_open=True, upper_open=True)
