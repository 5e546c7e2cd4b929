"""Architecture validation, serialisation and derived sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssbnn_theory import Activation, Architecture, InvalidParameterError

from .strategies import architectures

INVALID_EXAMPLES = 400

# (field, strategy of bad values) pairs; each corrupts one field of a valid architecture
_BAD_SCALAR = st.one_of(
    st.integers(max_value=0),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
    st.just(True),
)
_BAD = {
    "p": _BAD_SCALAR,
    "hidden": st.one_of(
        st.just([]),
        st.lists(st.integers(max_value=0), min_size=1, max_size=3),
        st.lists(
            st.floats(0.5, 3.5).filter(lambda x: not float(x).is_integer()), min_size=1, max_size=2
        ),
        st.text(max_size=3),
        st.integers(),
    ),
    "active": st.one_of(
        st.lists(st.integers(max_value=0), min_size=2, max_size=2),
        st.lists(st.integers(17, 1000), min_size=2, max_size=2),  # s_l > k_l = 16
        st.lists(st.integers(1, 3), min_size=3, max_size=5),  # wrong length
        st.just([]),
    ),
    "bounds": st.one_of(
        st.floats(max_value=-1e-9),
        st.just(math.nan),
        st.just(math.inf),
        st.lists(st.floats(0, 1), min_size=2, max_size=2),  # L+1 = 3 needed
        st.lists(st.just(math.nan), min_size=3, max_size=3),
        st.text(min_size=1, max_size=3),
    ),
    "activation": st.one_of(
        st.text(max_size=5).filter(
            lambda t: t.strip().lower() not in {a.value for a in Activation}
        ),
        st.integers(),
    ),
    "outputs": _BAD_SCALAR,
    "fan_in": st.one_of(st.sampled_from(["partial", "", "ful"]), st.integers()),
}


@settings(max_examples=INVALID_EXAMPLES)
@given(field=st.sampled_from(sorted(_BAD)), data=st.data())
def test_invalid_architecture_names_the_field(field, data):
    good = {
        "p": 100,
        "hidden": [16, 16],
        "active": [4, 3],
        "bounds": 1.5,
        "activation": "relu",
        "outputs": 1,
        "fan_in": "full",
    }
    good[field] = data.draw(_BAD[field])
    with pytest.raises(InvalidParameterError) as info:
        Architecture(**good)
    assert info.value.field.split("[")[0] == field
    assert str(info.value).startswith(info.value.field + ": must be ")
    assert "\n" not in str(info.value)


def test_active_fan_in_needs_zero_offset():
    with pytest.raises(
        InvalidParameterError, match=r"^fan_in: must be 'full' for activation 'sigmoid'"
    ):
        Architecture(3, [4], None, 1.0, "sigmoid", fan_in="active")
    assert Architecture(3, [4], None, 1.0, "silu", fan_in="active").fan_in.value == "active"


def test_error_message_names_layer_and_range():
    with pytest.raises(InvalidParameterError) as info:
        Architecture(100, [16, 16], [4, 17])
    assert str(info.value) == "active[2]: must be an integer in [1, hidden[2]] = [1, 16] (got 17)"
    with pytest.raises(
        InvalidParameterError, match=r"^bounds\[2\]: must be a finite number in \[0, 1e\+100\]"
    ):
        Architecture(100, [16, 16], None, [1.0, -2.0, 1.0])


@settings(max_examples=200)
@given(arch=architectures(max_depth=5, max_width=50, max_p=100))
def test_round_trips(arch, tmp_path_factory):
    assert Architecture.from_dict(arch.to_dict()) == arch
    path = tmp_path_factory.mktemp("arch") / "a.toml"
    d = arch.to_dict()
    lines = [
        f"p = {d['p']}",
        f"hidden = {d['hidden']}",
        f"active = {d['active']}",
        f"bounds = [{', '.join(repr(float(b)) for b in d['bounds'])}]",
        f'activation = "{d["activation"]}"',
        f"outputs = {d['outputs']}",
        f'fan_in = "{d["fan_in"]}"',
    ]
    path.write_text("[architecture]\n" + "\n".join(lines) + "\n")
    assert Architecture.from_toml(path) == arch


def test_toml_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("p = [\n")
    with pytest.raises(InvalidParameterError, match=r"^arch: must be valid TOML"):
        Architecture.from_toml(bad)
    with pytest.raises(InvalidParameterError, match=r"^arch: must be a readable TOML file"):
        Architecture.from_toml(tmp_path / "missing.toml")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("p = 3\nhidden = [2]\nwidth = 4\n")
    with pytest.raises(InvalidParameterError, match=r"^width: must be one of the keys"):
        Architecture.from_toml(unknown)
    missing = tmp_path / "missing_p.toml"
    missing.write_text("hidden = [2]\n")
    with pytest.raises(InvalidParameterError, match=r"^p: must be present"):
        Architecture.from_toml(missing)


def test_derived_sizes():
    arch = Architecture(100, [16, 16], [4, 3], 1.5)
    assert arch.depth == 2 and arch.widths == (100, 16, 16, 1)
    assert arch.group_sizes == (101, 17, 17)
    assert arch.coordinates == 4 * 101 + 3 * 17 + 1 * 17
    assert arch.edges == 4 * 101 + 3 * 5 + 1 * 4
    assert arch.parameters == 16 * 101 + 16 * 17 + 17
    active = arch.replace(fan_in="active")
    assert active.constrained == (101, 5, 4)
    assert active.coordinates == active.edges  # the active subnetwork, edge for edge
    dense = arch.dense()
    assert dense.active == (16, 16) and dense.bounds == arch.bounds
    assert Architecture(3, [2, 2]).bounds == (1.0, 1.0, 1.0)
    assert Architecture(3, np.array([2, 2]), None, [0.5]).bounds == (0.5, 0.5, 0.5)
    assert "hidden=16-16" in arch.describe()
