"""Defaults that describe the model ``ssbnn simulate`` fits, and the growth of the full rate in B.

docs/theory.md, section 2 (defaults, one name per hyperparameter) and section 4.1 ("Growth
of the whole-network rate in B").
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from ssbnn_theory import Architecture, PriorSpec, contraction_rate
from ssbnn_theory.cli import main
from ssbnn_theory.priors import ENGINE_GLOBAL_SCALE, ENGINE_SLAB_WIDTH
from ssbnn_theory.targets import DEFAULT_ARCHITECTURE


def test_default_horseshoe_is_the_engines():
    model = pytest.importorskip("simulations.model")
    config = model.ModelConfig(p=5, hidden=(4, 3))  # every default, SS-GHS
    assert config.prior[0].value == "ss-ghs"
    engine = PriorSpec.from_engine("ss-ghs", config)
    default = PriorSpec("ss-ghs")
    # the hidden layers' slab: same family and hyperparameters under the same names
    for name in ("prior", "sigma_0", "global_scale", "slab_width"):
        assert getattr(engine, name) == getattr(default, name), name
    assert default.global_scale == config.global_scale == ENGINE_GLOBAL_SCALE == math.sqrt(1e-5)
    assert default.slab_width == config.slab_width == ENGINE_SLAB_WIDTH == 1.0
    assert default.regularised
    # the one difference: the engine's output layer is a dense mean-field Gaussian layer
    # (N(0, sigma_0^2)), the theory's default output slab is the reference's hidden family
    assert engine == dataclasses.replace(default, gaussian_output=True)
    net = model.BayesianMLP(config, [0], n=100)
    layers = pytest.importorskip("simulations.layers")
    assert type(net.layers[-1]) is layers.MeanFieldLinear
    for family in ("ss-ig", "ss-gl"):
        spec = PriorSpec.from_engine(family, model.ModelConfig(p=5, hidden=(4,), prior=family))
        assert spec == PriorSpec(family, gaussian_output=True)


def test_cli_default_horseshoe_is_the_engines(capsys):
    import json

    assert main(["rate", "--prior", "ss-ghs", "--n", "1e3", "--json"]) == 0
    prior = json.loads(capsys.readouterr().out)["prior"]
    assert prior == PriorSpec("ss-ghs").to_dict()
    assert prior["slab_width"] == 1.0 and prior["global_scale"] == pytest.approx(math.sqrt(1e-5))
    assert prior["gaussian_output"] is False
    assert main(["rate", "--prior", "ss-ghs", "--slab-width", "none", "--json", "--n", "1e3"]) == 0
    assert json.loads(capsys.readouterr().out)["prior"]["slab_width"] is None
    assert main(["rate", "--output-slab", "gaussian", "--json", "--n", "1e3"]) == 0
    assert all(o["prior"]["gaussian_output"] for o in json.loads(capsys.readouterr().out))


def _slope(arch: Architecture, spec: PriorSpec, lo: float, hi: float, n: float = 1e5) -> float:
    """Log-log slope of the full n r_n between two common bounds of every layer."""
    a, b = (
        contraction_rate(arch.replace(bounds=B), spec, n, conditions=False).n_r_n[0]
        for B in (lo, hi)
    )
    return math.log(b / a) / math.log(hi / lo)


NETS = [
    Architecture(10, [20], [5], 1.0),  # the 10-20 net, s = 5
    DEFAULT_ARCHITECTURE,
    Architecture(3, [8, 6], [2, 2], 1.0, "tanh", outputs=2),
]


@pytest.mark.parametrize("arch", NETS, ids=["10-20", "default", "3-8-6-2"])
def test_full_rate_growth_in_the_common_weight_bound(arch):
    # every layer's bound = B, n r_n as a whole (L3 + every layer's slab + log Lambda through
    # delta_n), log-log slope over B in [100, 1000] (docs/theory.md, section 4.1):
    ig = _slope(arch, PriorSpec("ss-ig"), 100, 1000)
    assert ig == pytest.approx(2.0, abs=0.01)  # r B^2 / (2 sigma_0^2) per group
    gl = _slope(arch, PriorSpec("ss-gl"), 100, 1000)
    gl_far = _slope(arch, PriorSpec("ss-gl"), 1e4, 1e5)
    # kappa sqrt(r) B / sigma_0 per group plus T L log B from the resolution: linear in
    # the limit, the log part still visible at B = 100..1000
    assert 0.4 < gl < 1.0 and gl < gl_far < 1.0 and gl_far > 0.9
    plain = _slope(arch, PriorSpec("ss-ghs", slab_width=None), 100, 1000)
    assert plain < 0.2  # (r + 1) log B per group plus T L log B: logarithmic
    wide_cap = _slope(arch, PriorSpec("ss-ghs", slab_width=1e4), 100, 1000)
    assert wide_cap < 0.2  # regularised, B far below sigma_0 c = 1e4: still a horseshoe
    # the engine's default, c = 1: the variance is capped at sigma_0^2 c^2 = 1, so beyond c
    # the regularised horseshoe is a Gaussian slab of sd sigma_0 c and grows like SS-IG
    default = _slope(arch, PriorSpec("ss-ghs"), 100, 1000)
    assert default == pytest.approx(2.0, abs=0.01)


def test_gaussian_output_hides_the_slab_story():
    # with the old Gaussian output layer every prior grows quadratically once the output
    # layer's bound grows too (the audit's 10-20 net: SS-GL 144 -> 13943 at n = 1e5)
    arch = Architecture(10, [20], [5], 1.0)
    gauss_out = PriorSpec("ss-gl", gaussian_output=True)
    assert _slope(arch, gauss_out, 100, 1000) > 1.9
    assert _slope(arch, PriorSpec("ss-gl"), 100, 1000) < 0.8


def test_log_lipschitz_adds_t_log_b_for_every_prior():
    # the resolution part s_l r_l log(1/delta_n) grows like T L log B through Lambda (Lambda_1
    # does not involve B_1; each later layer multiplies by B_l, or by an envelope H ~ B), whatever
    # the slab: compare its increments with T L log 10 over B = 100 -> 1000
    arch = Architecture(10, [20, 20], [5, 4], 1.0)
    for spec in ("ss-ig", "ss-gl", PriorSpec("ss-ghs", slab_width=None)):
        lo, hi = (
            contraction_rate(arch.replace(bounds=B), spec, 1e5, conditions=False)
            for B in (100.0, 1000.0)
        )
        growth = float(np.sum(hi.resolution) - np.sum(lo.resolution))
        expected = arch.coordinates * arch.depth * math.log(10.0)
        assert growth == pytest.approx(expected, rel=0.02)
