"""Classification likelihoods: the KL, Hellinger and log-ratio bounds of the links, and the rate.

docs/theory.md, section 4.6. With ``v = f - f0`` (logit differences) at one ``x``:

* Bernoulli (logistic link): ``KL(p_f0 || p_f) <= v^2 / 8``; ``h^2 <= KL / 2``;
  ``E_f0 (log p_f0 / p_f)^2 <= v^2``.
* Categorical (softmax over K logits): ``KL <= range(v)^2 / 8 <= max|v_k|^2 / 2``;
  ``h^2 <= KL / 2``; ``E_f0 (log p_f0 / p_f)^2 <= range(v)^2``.

The hypothesis tests try to break each bound: the exact quantities are computed in 60-digit
arithmetic (mpmath), so the only tolerance is a relative 1e-40 for its rounding, far below
the smallest true gap the strategies can reach (near equality ``KL = v^2/8`` at ``f0 = 0``,
``v -> 0``, the gap is ``O(v^4)``, still ``>= 1e-30`` relative for ``|v| >= 1e-7``, and
exactly 0 only at ``v = 0``, where both sides are 0).
"""

from __future__ import annotations

import copy
import json
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssbnn_theory import Architecture, InvalidParameterError, contraction_rate
from ssbnn_theory.cli import main
from ssbnn_theory.rates import hellinger_factor, kl_scale

mpmath.mp.dps = 60
TOL = mpmath.mpf("1e-40")

# logits: far tails (+-60), the curvature peak at 0, and differences down to 1e-7
logit = st.one_of(
    st.floats(-60.0, 60.0),
    st.floats(-1e-3, 1e-3),
    st.sampled_from([0.0, 1e-7, -1e-7, 30.0, -30.0]),
)
# differences: |v| >= 1e-7 (below it 60 digits no longer resolve KL ~ v^2 against terms ~ 1)
# or exactly 0
diff = st.one_of(st.floats(-40.0, 40.0), st.floats(-1e-3, 1e-3), st.just(0.0)).filter(
    lambda x: x == 0.0 or abs(x) >= 1e-7
)


def _softmax(f: list) -> list:
    top = max(f)
    e = [mpmath.e ** (x - top) for x in f]
    total = mpmath.fsum(e)
    return [x / total for x in e]


def _divergences(p0: list, p: list) -> tuple:
    """Exact KL(p0 || p), squared Hellinger, E_p0 (log p0/p)^2.

    ``h^2 = 1 - sum sqrt(p0 p) = (1/2) sum (sqrt p0 - sqrt p)^2``, the second form without
    cancellation (so 0 at p = p0, and relatively accurate near it).
    """
    kl = mpmath.fsum(a * mpmath.log(a / b) for a, b in zip(p0, p, strict=True) if a > 0)
    h2 = mpmath.fsum((mpmath.sqrt(a) - mpmath.sqrt(b)) ** 2 for a, b in zip(p0, p, strict=True))
    h2 = h2 / 2
    v2 = mpmath.fsum(a * mpmath.log(a / b) ** 2 for a, b in zip(p0, p, strict=True) if a > 0)
    return kl, h2, v2


@settings(max_examples=400)
@given(f0=logit, v=diff)
def test_bernoulli_link_bounds(f0, v):
    f0m, fm = mpmath.mpf(f0), mpmath.mpf(f0) + mpmath.mpf(v)
    # Bernoulli(sigmoid(f)) as the two-class softmax of (0, f)
    kl, h2, v2 = _divergences(_softmax([0, f0m]), _softmax([0, fm]))
    bound = mpmath.mpf(v) ** 2 / 8
    assert kl <= bound * (1 + TOL)
    assert h2 <= kl / 2 * (1 + TOL)
    assert v2 <= mpmath.mpf(v) ** 2 * (1 + TOL)


def test_bernoulli_kl_bound_is_attained_in_the_limit():
    # at f0 = 0 the curvature sigma(1 - sigma) is 1/4: KL / (v^2 / 8) -> 1 as v -> 0
    for v in (1e-2, 1e-4):
        kl, _, _ = _divergences(_softmax([0, 0]), _softmax([0, mpmath.mpf(v)]))
        assert float(kl / (mpmath.mpf(v) ** 2 / 8)) == pytest.approx(1.0, abs=v)


@settings(max_examples=300)
@given(
    f0=st.lists(logit, min_size=2, max_size=6),
    data=st.data(),
)
def test_categorical_link_bounds(f0, data):
    v = data.draw(st.lists(diff, min_size=len(f0), max_size=len(f0)))
    f0m = [mpmath.mpf(x) for x in f0]
    vm = [mpmath.mpf(x) for x in v]
    moved = [a + b for a, b in zip(f0m, vm, strict=True)]
    kl, h2, v2 = _divergences(_softmax(f0m), _softmax(moved))
    spread = max(vm) - min(vm)
    sup = max(abs(x) for x in vm)
    assert kl <= spread**2 / 8 * (1 + TOL)
    assert spread**2 / 8 <= sup**2 / 2 * (1 + TOL)
    assert h2 <= kl / 2 * (1 + TOL)
    assert v2 <= spread**2 * (1 + TOL)


def test_categorical_kl_bound_is_attained_in_the_limit():
    # two classes at equal logits, v = (+t, -t): range 2t, KL -> (2t)^2 / 8 = t^2 / 2
    t = mpmath.mpf("1e-4")
    kl, _, _ = _divergences(_softmax([0, 0]), _softmax([t, -t]))
    assert float(kl / (t**2 / 2)) == pytest.approx(1.0, abs=1e-6)


def test_kl_scale_per_likelihood():
    assert kl_scale("gaussian", None, 1) == 1.0 and kl_scale("gaussian", 0.3, 4) == 0.3
    assert kl_scale("bernoulli", None, 1) == 2.0
    assert kl_scale("categorical", None, 3) == 1.0


@pytest.mark.parametrize(
    "likelihood, outputs, sigma",
    [("bernoulli", 1, 2.0), ("categorical", 2, 1.0), ("categorical", 5, 1.0)],
)
def test_classification_rate_is_the_gaussian_rate_at_the_link_scale(likelihood, outputs, sigma):
    # the link enters only through KL <= ||f - f*||^2 / (2 sigma^2): the rate equals the
    # Gaussian one at sigma_e = sigma, term by term
    arch = Architecture(6, [8, 5], [3, 2], 1.2, "tanh", outputs=outputs)
    n = np.array([1e3, 1e5])
    cls = contraction_rate(arch, "ss-gl", n, likelihood=likelihood)
    gauss = contraction_rate(arch, "ss-gl", n, sigma)
    assert cls.likelihood == likelihood and cls.kl_scale == sigma and cls.sigma_e is None
    assert cls.eps2 == pytest.approx(gauss.eps2, rel=1e-12)
    assert cls.delta == pytest.approx(gauss.delta, rel=1e-12)
    d = json.loads(json.dumps(cls.to_dict(), allow_nan=False))
    assert d["likelihood"] == likelihood and d["kl_scale"] == sigma and d["sigma_e"] is None


def test_bernoulli_needs_less_data_than_unit_gaussian_noise():
    # sigma = 2 > 1: a coarser resolution delta_n suffices, so the bound is smaller
    arch = Architecture(6, [8], [3], 1.0)
    bern = contraction_rate(arch, "ss-ig", 1e4, likelihood="bernoulli")
    unit = contraction_rate(arch, "ss-ig", 1e4, 1.0)
    assert bern.eps2[0] < unit.eps2[0] and bern.n_informative < unit.n_informative


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"likelihood": "poisson"}, "likelihood"),
        ({"likelihood": "bernoulli", "outputs": 2}, "outputs"),
        ({"likelihood": "categorical", "outputs": 1}, "outputs"),
        ({"likelihood": "bernoulli", "sigma_e": 1.0}, "sigma_e"),
        ({"likelihood": "gaussian", "sigma_e": 0.0}, "sigma_e"),
    ],
)
def test_invalid_likelihood_arguments_name_the_field(kwargs, field):
    kwargs = dict(kwargs)
    arch = Architecture(3, [4], [2], 1.0, outputs=kwargs.pop("outputs", 1))
    with pytest.raises(InvalidParameterError) as info:
        contraction_rate(arch, "ss-gl", 1e3, kwargs.pop("sigma_e", None), **kwargs)
    assert info.value.field == field


def test_cli_likelihood(capsys):
    code = main(["rate", "--likelihood", "bernoulli", "--prior", "ss-gl", "--n", "1e3", "--json"])
    assert code == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["likelihood"] == "bernoulli" and obj["kl_scale"] == 2.0
    assert main(["rate", "--likelihood", "categorical", "--outputs", "3", "--n", "1e3"]) == 0
    assert "categorical likelihood (KL scale 1)" in capsys.readouterr().out
    for args, field in (
        (["--likelihood", "categorical"], "outputs"),  # the default has one output
        (["--likelihood", "bernoulli", "--sigma-e", "2"], "sigma_e"),
    ):
        assert main(["rate", "--n", "1e3", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"ssbnn rate: error: {field}:")


def test_study_theory_line_for_a_classification_teacher(tmp_path):
    # the theory column of a study cell (what the report draws) for a Bernoulli and a
    # categorical teacher comes from contraction_rate with the link's scale
    spec_mod = pytest.importorskip("simulations.spec")
    study = pytest.importorskip("simulations.study")
    rng = np.random.default_rng(3)
    for likelihood, outputs in (("bernoulli", 1), ("categorical", 3)):
        w1 = rng.normal(size=(4, 3))
        w1[2:] = 0.0  # two inactive nodes (zero groups)
        arrays = {"W1": w1, "b1": np.r_[0.3, -0.2, 0.0, 0.0], "W2": rng.normal(size=(outputs, 4))}
        arrays["b2"] = np.zeros(outputs)
        np.savez(tmp_path / f"{likelihood}.npz", **arrays)
        data = {
            "study": {"name": "cls", "seed": 5, "replicates": 1},
            "design": {
                "name": "teacher",
                "weights": f"{likelihood}.npz",
                "p": 5,
                "n_test": 50,
                "likelihood": likelihood,
                "activation": "tanh",
            },
            "model": {"priors": ["ss-gl"], "hidden": [6], "activation": "tanh"},
            "train": {"n": [60], "steps": 2, "batch_size": 20, "lr": 0.01},
            "metrics": {"draws": 2},
        }
        spec = spec_mod.parse_spec(copy.deepcopy(data), base=tmp_path)
        cell = study.expand(spec)[0]
        truth = cell.generate_data().truth
        eps_n, r_n, slope = study.theory_rate(cell, truth)
        assert math.isfinite(eps_n) and math.isfinite(r_n) and -2.0 < slope < 0.0
        arch = Architecture(5, (6,), truth.active_nodes, truth.bounds, "tanh", outputs=outputs)
        from ssbnn_theory import PriorSpec

        config = spec.model_config(cell.prior, cell.student)
        direct = contraction_rate(
            arch,
            PriorSpec.from_engine("ss-gl", config),
            60.0,
            likelihood=likelihood,
            kappa_log=spec.metrics.kappa_log,
            inclusion=np.asarray(config.inclusion_probs(60), dtype=float),
            conditions=False,
        )
        assert eps_n == pytest.approx(float(direct.eps_n[0]), rel=1e-12)


@settings(max_examples=200)
@given(f=st.floats(-50, 50), g=st.floats(-50, 50), sigma=st.floats(0.01, 10.0))
def test_hellinger_factor_bounds_the_gaussian_hellinger_distance(f, g, sigma):
    # h^2(N(f, s^2), N(g, s^2)) = 1 - exp(-(f - g)^2 / (8 s^2)) exactly; 60-digit check
    d2 = (mpmath.mpf(f) - mpmath.mpf(g)) ** 2
    h2 = -mpmath.expm1(-d2 / (8 * mpmath.mpf(sigma) ** 2))
    c = mpmath.mpf(hellinger_factor("gaussian", sigma))
    assert h2 <= c**2 * d2 * (1 + mpmath.mpf("1e-15"))  # c is a float64: 1e-15 for its rounding


def test_small_noise_sieve_is_covered_finer():
    # sigma_e < 1/(2 sqrt 2): the sup-norm cover must be finer than eps_n to be a Hellinger
    # cover at eps_n, so the entropy exceeds the one at the unscaled radius
    arch = Architecture(3, [4], [2], 1.0)
    small = contraction_rate(arch, "ss-gl", [1e3, 1e5], 0.05)
    from ssbnn_theory.entropy import covering_terms

    log_eps = np.log(small.eps_n)
    sbar, log_bbar = small.sieve_active, small.sieve_log_bounds
    pattern, grid, _ = covering_terms(arch, sbar, log_bbar, log_eps, False)
    unscaled = np.sum(pattern, axis=1) + np.sum(grid, axis=1)
    assert np.all(small.sieve_entropy > unscaled)
    for lik, outputs in (("bernoulli", 1), ("categorical", 3)):
        assert hellinger_factor(lik, kl_scale(lik, None, outputs)) < 1.0
