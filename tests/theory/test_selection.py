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
    contraction_rate,
    edge_log_inv_inclusion,
    reference_inclusion_probs,
    reference_log_inv_inclusion,
    selection_mass,
    theory_inclusion_probs,
    theory_log_inv_inclusion,
)

from . import references
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
    """The reference scripts' formula (docs/engine.md, "Layers"), transcribed literally with
    Python-style indices l = 0..L."""
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
def test_reference_formula_matches_the_reference_scripts(p, hidden, outputs, n):
    ours = reference_inclusion_probs(p, hidden, outputs, n)
    assert ours == pytest.approx(_reference_by_hand(p, hidden, outputs, n), rel=1e-12)
    # "so in practice lambda_l is close to 1/k_l" (docs/engine.md) while C (k_{l-1} + 1)^3 is small
    fan_in = np.asarray([p, *hidden[:-1]], dtype=float) + 1
    small = 1e-9 * fan_in**3 < 0.01
    assert (ours * np.asarray(hidden))[small] == pytest.approx(1.0, rel=0.05)
    assert reference_log_inv_inclusion(p, hidden, outputs, [n, n]).shape == (2, len(hidden))
    # the rate's "reference" inclusion is the same transcription (through its own kernel call)
    arch = Architecture(p, hidden, None, 1.0, outputs=outputs)
    rate = contraction_rate(arch, "ss-ig", n, inclusion="reference", conditions=False)
    by_hand = -np.log(_reference_by_hand(p, hidden, outputs, n))
    assert rate.inclusion_reference[0] == pytest.approx(by_hand, rel=1e-12)


def test_theory_prescription_by_hand():
    # log(1/lambda_l) = log k_l + C d_l log(Lambda sqrt n) (docs/theory.md, section 4.2) with Lambda
    # worked out by hand from the L1 recursion (docs/theory.md, 3.1):
    # p = 2, 3 ReLU nodes, B = 1: H_1 = 2 + 1 = 3, Lambda_1 = 3, Lambda_2 = (3 H_1 + 1) + 3 Lambda_1
    # = 19; d_1 = 3, n = 100, C = 1: log 3 + 3 log(19 * 10) = 16.839684505
    one = Architecture(2, [3], None, 1.0, "relu")
    assert theory_log_inv_inclusion(one, 100.0, 1.0) == pytest.approx([16.839684505], rel=1e-10)
    # sigmoid (ell = 1/4, a = 1/2, cap 1): H_1 = min(0.5 + 0.75, 1) = 1, Lambda_1 = 0.75,
    # Lambda_2 = (3 + 1) + 3 * 0.75 = 6.25: log 3 + 3 log 62.5 = 13.504111959
    sig = Architecture(2, [3], None, 1.0, "sigmoid")
    assert theory_log_inv_inclusion(sig, 100.0, 1.0) == pytest.approx([13.504111959], rel=1e-10)
    # silu (ell = 1.09984, a = 0, no cap): H_1 = Lambda_1 = 3 ell = 3.29952,
    # Lambda_2 = (3 H_1 + 1) + 3 Lambda_1 = 20.79712: log 3 + 3 log 207.9712 = 17.110811114
    silu = Architecture(2, [3], None, 1.0, "silu")
    assert theory_log_inv_inclusion(silu, 100.0, 1.0) == pytest.approx([17.110811114], rel=1e-10)
    # p = 2, tanh 3-2, B = (1, 0.5, 2): H_1 = min(3, 1) = 1, Lambda_1 = 3;
    # H_2 = min(0.5 * 4, 1) = 1, Lambda_2 = (3 + 1) + 3 * 0.5 * 3 = 8.5;
    # Lambda_3 = (2 + 1) + 2 * 2 * 8.5 = 37; n = 400, C = 0.5:
    # log 3 + 1.5 log 740 = 11.008587568 and log 2 + 2 log 740 = 13.906447553
    two = Architecture(2, [3, 2], None, [1.0, 0.5, 2.0], "tanh")
    assert theory_log_inv_inclusion(two, 400.0, 0.5) == pytest.approx(
        [11.008587568, 13.906447553], rel=1e-10
    )


@settings(max_examples=100)
@given(arch=architectures(max_depth=4, max_width=30), n=st.floats(2.0, 1e12), c=st.floats(0, 3))
def test_theory_prescription_properties(arch, n, c):
    # C = 0: one expected active node per layer, k_l lambda_l = 1
    assert theory_inclusion_probs(arch, n, 0.0) * np.asarray(arch.hidden) == pytest.approx(1.0)
    # quadrupling n multiplies k_l lambda_l by 2^(-C d_l): (Lambda sqrt n)^(-C d_l)
    got, four = theory_log_inv_inclusion(arch, [n, 4 * n], c)
    d = np.asarray(arch.group_sizes[:-1], dtype=float)
    assert four - got == pytest.approx(c * d * math.log(2), rel=1e-9, abs=1e-9)
    # and the level, with Lambda from an independent linear-space L1 recursion
    lam = references.lipschitz(arch)
    expected = np.log(arch.hidden) + c * d * (math.log(lam) + 0.5 * math.log(n))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-10)


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
