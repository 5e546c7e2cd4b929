"""Lemma L3 (selection mass) and the inclusion-probability prescriptions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ssbnn_theory import (
    Architecture,
    InvalidParameterError,
    edge_log_inv_inclusion,
    log_lipschitz,
    reference_inclusion_probs,
    reference_log_inv_inclusion,
    selection_mass,
    theory_inclusion_probs,
    theory_log_inv_inclusion,
)

from .strategies import architectures

L3_EXAMPLES = 300


@settings(max_examples=L3_EXAMPLES)
@given(arch=architectures(max_depth=4, max_width=30), data=st.data())
def test_selection_mass_is_minus_log_bernoulli_likelihood(arch, data):
    lam = np.array([data.draw(st.floats(1e-6, 1 - 1e-6)) for _ in range(arch.depth)])
    direct = -sum(
        stats.bernoulli(lam[i]).logpmf(1) * s + stats.bernoulli(lam[i]).logpmf(0) * (k - s)
        for i, (k, s) in enumerate(zip(arch.hidden, arch.active, strict=True))
    )
    # equality up to float rounding of sums of logs (relative 1e-12)
    assert selection_mass(arch, lam) == pytest.approx(direct, rel=1e-12)
    per_layer = selection_mass(arch, log_inv_inclusion=-np.log(lam), per_layer=True)
    assert per_layer.sum() == pytest.approx(direct, rel=1e-12)


def test_selection_mass_is_exact_for_extreme_probabilities():
    arch = Architecture(5, [1000, 10], [3, 10])
    # lambda = e^-5000 underflows as a float; through log(1/lambda) the term is exactly s * 5000
    tiny = selection_mass(arch, log_inv_inclusion=[5000.0, 5000.0], per_layer=True)
    assert tiny == pytest.approx([3 * 5000.0, 10 * 5000.0], rel=1e-15)
    # lambda = 1 - 1e-12: log(1/(1 - lambda)) = log(1e12) needs expm1, not 1 - exp
    near_one = selection_mass(arch, log_inv_inclusion=[1e-12, 1e-12], per_layer=True)
    assert near_one[0] == pytest.approx(997 * math.log(1e12), rel=1e-9)


def test_selection_mass_rejects_bad_input():
    arch = Architecture(5, [4, 4], [2, 2])
    with pytest.raises(InvalidParameterError, match=r"^inclusion_prob: "):
        selection_mass(arch, [0.5, 1.0])
    with pytest.raises(InvalidParameterError, match=r"^inclusion_prob: "):
        selection_mass(arch, [0.5, 0.5, 0.5])
    with pytest.raises(InvalidParameterError, match=r"^inclusion_prob: "):
        selection_mass(arch)
    with pytest.raises(InvalidParameterError, match=r"^log_inv_inclusion: "):
        selection_mass(arch, log_inv_inclusion=[-1.0, 1.0])


def _reference_by_hand(p, hidden, outputs, n, C=1e-9):
    """MODELS.md, transcribed literally with Python-style indices l = 0..L."""
    L = len(hidden)
    k = [p, *hidden, outputs]
    u = [
        (L + 1) ** 2 * (math.log(n) + math.log(L + 1) + math.log(k[i] + 1) + math.log(k[i + 1]))
        for i in range(L + 1)
    ]
    out = []
    for l in range(L):  # noqa: E741 - hidden layers l + 1 = 1..L
        v = (
            (k[l] + 1) ** 2
            + sum(math.log(k[m] + 1) for m in range(L + 1))
            + L
            + math.log(k[l + 1])
            + math.log(n)
            + math.log(sum(u))
        )
        out.append(math.exp(-(math.log(k[l + 1]) + C * (k[l] + 1) * v)))
    return out


@pytest.mark.parametrize(
    "p, hidden, outputs, n",
    [
        (200, [7, 7, 7], 1, 3000),
        (2000, [6, 4, 3], 1, 10000),
        (1, [1000, 1000], 1, 20),
        (3, [2], 4, 2),
    ],
)
def test_reference_formula_matches_models_md(p, hidden, outputs, n):
    ours = reference_inclusion_probs(p, hidden, outputs, n)
    assert ours == pytest.approx(_reference_by_hand(p, hidden, outputs, n), rel=1e-12)
    # "so in practice lambda_l is close to 1/k_l" (MODELS.md) while C (k_{l-1} + 1)^3 is small
    fan_in = np.asarray([p, *hidden[:-1]], dtype=float) + 1
    small = 1e-9 * fan_in**3 < 0.01
    assert (ours * np.asarray(hidden))[small] == pytest.approx(1.0, rel=0.05)
    assert reference_log_inv_inclusion(p, hidden, outputs, [n, n]).shape == (2, len(hidden))


@settings(max_examples=100)
@given(arch=architectures(max_depth=4, max_width=30), n=st.floats(2.0, 1e12), c=st.floats(0, 3))
def test_theory_prescription(arch, n, c):
    got = theory_log_inv_inclusion(arch, n, c)
    lam = np.exp(log_lipschitz(arch))
    for i, (k, d) in enumerate(zip(arch.hidden, arch.group_sizes, strict=False)):
        assert got[i] == pytest.approx(
            math.log(k) + c * d * math.log(lam * math.sqrt(n)), rel=1e-12
        )
    assert theory_inclusion_probs(arch, n, c) == pytest.approx(np.exp(-got), rel=1e-12)


def test_edge_prescription_matches_bai_formula():
    arch = Architecture(200, [7, 7, 7], None, 1.0)
    total = 7 * 201 + 7 * 8 + 7 * 8 + 1 * 8
    expected = math.log(total) + 0.1 * (4 * math.log(7) + math.log(math.sqrt(3000) * 200))
    assert edge_log_inv_inclusion(arch, 3000.0) == pytest.approx(expected, rel=1e-14)


def test_prescriptions_reject_bad_n():
    arch = Architecture(5, [4])
    for bad in (1.0, 0.5, np.nan, -3):
        with pytest.raises(InvalidParameterError, match=r"^n: "):
            theory_log_inv_inclusion(arch, bad)
        with pytest.raises(InvalidParameterError, match=r"^n: "):
            reference_inclusion_probs(5, [4], 1, bad)
