"""Where the bound says something: ``n_informative`` (eps_n^2 < 1 from there on) and ``n_for_eps2``.

A squared Hellinger distance never exceeds 1, so ``eps_n^2 >= 1`` is vacuous
(docs/theory.md, section 4.1). ``n_informative`` is found by a scan and bracket refinement in
``log n``; here it is checked against an independent root search (Brent on single-``n``
calls, in which the L2 ``t`` is optimised exactly at each ``n``).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import optimize

from ssbnn_theory import Architecture, PriorSpec, contraction_rate
from ssbnn_theory.cli import main
from ssbnn_theory.rates import N_MAX, n_for_eps2
from ssbnn_theory.targets import DEFAULT_ARCHITECTURE

PRIORS = ("ss-ig", "ss-gl", "ss-ghs")


def _brent_root(arch, prior, target=1.0, **kwargs):
    """eps_n^2 = target by Brent's method on log n, one n per call (independent of the scan)."""

    def gap(log_n: float) -> float:
        rate = contraction_rate(arch, prior, math.exp(log_n), conditions=False, **kwargs)
        return math.log(rate.eps2[0]) - math.log(target)

    return math.exp(optimize.brentq(gap, math.log(1e4), math.log(1e14), xtol=1e-10))


@pytest.mark.parametrize("prior", PRIORS)
def test_default_architecture_agrees_with_an_independent_root_search(prior):
    rate = contraction_rate(DEFAULT_ARCHITECTURE, prior, [512, 32768])
    n_inf = rate.n_informative
    root = _brent_root(DEFAULT_ARCHITECTURE, prior)
    # the done-when criterion is 1%; both searches resolve log n to ~1e-9, so they agree far
    # closer (measured: relative difference below 1e-6)
    assert n_inf == pytest.approx(root, rel=1e-3)
    below = contraction_rate(DEFAULT_ARCHITECTURE, prior, [n_inf * 0.99, n_inf], conditions=False)
    assert below.eps2[0] >= 1.0 > below.eps2[1]
    # eps_n^2 keeps falling past it: informative from there on (sampled over 20 decades)
    beyond = contraction_rate(
        DEFAULT_ARCHITECTURE, prior, n_inf * np.geomspace(1.0, 1e20, 60), conditions=False
    )
    assert np.all(beyond.eps2 < 1.0) and np.all(np.diff(beyond.eps2) < 0)


def test_target_and_none_and_whole_range():
    arch = Architecture(10, [20], [5], 1.0)
    rate = contraction_rate(arch, "ss-gl", 1e3, conditions=False)
    n1, n01 = rate.n_for_eps2(1.0), rate.n_for_eps2(0.1)
    assert n1 == pytest.approx(rate.n_informative, rel=1e-12)
    assert n01 > n1  # a smaller radius needs more data
    assert n01 == pytest.approx(_brent_root(arch, "ss-gl", 0.1), rel=1e-3)
    # a bound of 1e100 on every weight: the Gaussian slab's B^2 term keeps eps_n^2 >= 1 to 1e30
    huge = contraction_rate(arch.replace(bounds=1e100), "ss-ig", 1e3, conditions=False)
    assert huge.n_informative is None
    assert contraction_rate(arch.replace(bounds=1e100), "ss-ig", N_MAX).eps2[0] >= 1.0
    # a target above every eps_n^2 of the range: informative from n = e on
    assert n_for_eps2(arch, "ss-gl", 1e12) == pytest.approx(math.e)
    # inclusion probabilities per n cannot be extended to other n
    per_n = contraction_rate(arch, "ss-gl", [1e3, 1e4], inclusion=[[0.1], [0.2]])
    assert per_n.n_informative is None
    # one probability per layer can: the same as passing it as a number
    fixed = contraction_rate(arch, "ss-gl", [1e3, 1e4], inclusion=[0.1])
    root = _brent_root(arch, "ss-gl", inclusion=[0.1])
    assert fixed.n_informative == pytest.approx(root, rel=1e-3)


def test_serialised_and_printed(capsys):
    rate = contraction_rate(DEFAULT_ARCHITECTURE, "ss-gl", [1e3])
    assert json.loads(json.dumps(rate.to_dict()))["n_informative"] == rate.n_informative
    assert main(["rate", "--json", "--n", "1e3", "1e4"]) == 0
    objs = json.loads(capsys.readouterr().out)
    for obj in objs:
        again = contraction_rate(DEFAULT_ARCHITECTURE, obj["prior"]["prior"], 1e3)
        assert obj["n_informative"] == pytest.approx(again.n_informative, rel=1e-12)
    assert main(["rate", "--prior", "ss-ig", "--n", "1e3", "--target-eps2", "0.5"]) == 0
    out = capsys.readouterr().out
    n_inf = contraction_rate(DEFAULT_ARCHITECTURE, "ss-ig", 1e3).n_informative
    assert f"vacuous (eps_n^2 >= 1) for n < {n_inf:.4g}: n_informative = {n_inf:.4g}" in out
    half = n_for_eps2(DEFAULT_ARCHITECTURE, "ss-ig", 0.5)
    assert f"eps_n^2 < 0.5 from n = {half:.4g}" in out
    assert "[vacuous]" in out  # n = 1000 is far below n_informative
    assert main(["rate", "--prior", "ss-ig", "--json", "--n", "1e3", "--target-eps2", "0.5"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["target_eps2"]["value"] == 0.5
    assert obj["target_eps2"]["n"] == pytest.approx(half, rel=1e-12)
    code = main(["rate", "--bound", "1e100", "--prior", "ss-ig", "--n", "1e3"])
    assert code == 0 and "n_informative = none" in capsys.readouterr().out


def test_invalid_target_is_one_line(capsys):
    assert main(["rate", "--target-eps2", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ssbnn rate: error: target_eps2:")


def test_plain_horseshoe_and_classification_are_searched_with_their_settings():
    plain = PriorSpec("ss-ghs", slab_width=None)
    rate = contraction_rate(DEFAULT_ARCHITECTURE, plain, 1e3, kappa_log=1.0)
    assert rate.n_informative == pytest.approx(
        _brent_root(DEFAULT_ARCHITECTURE, plain, kappa_log=1.0), rel=1e-3
    )
    arch = Architecture(10, [20], [5], 1.0, outputs=3)
    cat = contraction_rate(arch, "ss-gl", 1e3, likelihood="categorical")
    assert cat.n_informative == pytest.approx(
        _brent_root(arch, "ss-gl", likelihood="categorical"), rel=1e-3
    )


def test_vacuous_band_and_crossing_marks():
    pytest.importorskip("matplotlib")
    from ssbnn_theory import style

    with style.context():
        fig, ax = style.figure()
        ax.loglog([1e3, 1e9], [1e3, 1e-2])
        lo, hi = ax.get_ylim()
        style.shade_vacuous(ax)
        style.mark_informative(ax, 1e6, "k")
        style.mark_informative(ax, 1e12, "k")  # off the axis: not drawn
        style.mark_informative(ax, None, "k")
        assert ax.get_ylim() == (lo, hi)  # limits kept
        bands = [p for p in ax.patches if p.get_label() == style.VACUOUS_LABEL]
        assert len(bands) == 1
        y0, _ = bands[0].get_path().get_extents(bands[0].get_transform()).intervaly
        assert ax.transData.inverted().transform((0, y0))[1] == pytest.approx(1.0)
        assert len(ax.lines) == 2  # the curve and one crossing at n = 1e6
        fig2, ax2 = style.figure()
        ax2.loglog([1e3, 1e9], [0.5, 0.01])  # informative everywhere: no band
        style.shade_vacuous(ax2)
        assert not ax2.patches
    import matplotlib.pyplot as plt

    plt.close(fig)
    plt.close(fig2)
