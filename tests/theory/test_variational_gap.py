"""The variational-gap step: q* built explicitly, KL(q*||Pi) + n E KL against n r_n."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from ssbnn_theory import Architecture, PriorSpec, contraction_rate, perturbation_bound
from ssbnn_theory.kl import kl_lognormal_gamma, kl_lognormal_invgamma
from ssbnn_theory.variational_gap import (
    coordinate_sd_factor,
    engine_scale_surcharge,
    expected_sup_gap,
    horseshoe_scale_kl,
    monte_carlo_gap,
    variational_gap,
)

from .strategies import architectures, prior_specs

GAP_EXAMPLES = 60


def _mixture_variance(spec: PriorSpec, tau2: np.ndarray) -> np.ndarray:
    """The slab's conditional variance, written from docs/theory.md section 2 (not priors.py)."""
    s0 = spec.sigma_0**2
    if spec.prior.value == "ss-ig":
        return np.full_like(tau2, s0)
    if spec.prior.value == "ss-gl":
        return s0 * tau2
    g = spec.global_scale
    if spec.slab_width is None:
        return s0 * g**2 * tau2
    c = spec.slab_width
    return s0 * c**2 * g**2 * tau2 / (c**2 + g**2 * tau2)


@settings(max_examples=GAP_EXAMPLES)
@given(
    arch=architectures(max_depth=3, max_width=8, max_p=8),
    spec=prior_specs(),
    log10_n=st.floats(2.5, 12.0),
    sigma_e=st.floats(0.3, 2.0),
)
def test_gap_is_below_the_derived_bound(arch, spec, log10_n, sigma_e):
    n = 10.0**log10_n
    gap = variational_gap(arch, spec, n, sigma_e, refine=False)
    rate = contraction_rate(arch, spec, n, sigma_e, conditions=False)
    # per layer (docs/theory.md, 4.5): KL of the derived group q* <= s_l phi_l + Omega_l,
    # and the phi used here (L2 at the optimal t for delta_n) is at most the rate's
    assert np.all(gap.slab_kl_derived <= gap.slab_phi + gap.omega_layer + 1e-9 * abs(gap.slab_phi))
    assert np.all(gap.slab_phi <= rate.slab * (1 + 1e-8) + 1e-9)
    # n E KL <= outputs * T (the coordinate sd delta_n / rho)
    assert np.all(gap.expected_kl <= gap.expected_kl_bound * (1 + 1e-9))
    # the sum against n r_n: the derived bound and the constant C_n
    assert np.all(gap.total_derived <= gap.bound * (1 + 1e-9))
    assert np.all(gap.bound <= gap.constant * gap.rate.n_r_n * (1 + 1e-12))


@settings(max_examples=15)
@given(
    arch=architectures(max_depth=2, max_width=5, max_p=4),
    spec=prior_specs(families=("ss-gl", "ss-ghs")),
    log10_n=st.floats(3.0, 9.0),
)
def test_refined_q_is_never_worse(arch, spec, log10_n):
    gap = variational_gap(arch, spec, 10.0**log10_n)
    assert np.all(gap.kl <= gap.kl_derived * (1 + 1e-12))
    assert np.all(gap.total <= gap.total_derived * (1 + 1e-12))


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_coordinate_overhead_is_tight_at_the_origin(sigma):
    # SS-IG, B = 0: KL(N(0, s^2) || N(0, sigma^2)) - (-log P(|N(0, sigma^2)| <= delta)) tends to
    # log rho + log 2 - log(2 pi)/2 - 1/2 as delta -> 0: the per-coordinate constant is sharp
    arch = Architecture(1, [1], None, 0.0, "relu")
    gap = variational_gap(arch, PriorSpec("ss-ig", sigma_0=sigma), [1e12, 1e14], refine=False)
    excess = gap.slab_kl_derived - gap.slab_phi
    per_coordinate = math.log(gap.rho) + math.log(2) - 0.5 * math.log(2 * math.pi) - 0.5
    # two coordinates per layer (one weight, one bias), one node each
    assert excess == pytest.approx(np.full((2, 2), 2 * per_coordinate), abs=1e-5)
    assert gap.omega_layer == pytest.approx(excess, abs=1e-5)


@pytest.mark.parametrize(
    "spec",
    [
        PriorSpec("ss-gl", sigma_0=0.7, kappa=1.4),
        PriorSpec("ss-ghs", sigma_0=1.3, global_scale=0.5, slab_width=None),
    ],
)
def test_unconstrained_coordinate_cost_is_exact(spec):
    # N(0, 1/E[1/v]) against N(0, v(tau^2)), v proportional to tau^2 = e^U, U ~ N(mu, s_u^2):
    # (1/2)(E log v + log E[1/v]) = (1/2)(mu + (-mu + s_u^2/2)) = s_u^2 / 4 for every mu
    from ssbnn_theory.variational_gap import _UNCONSTRAINED, SCALE_SD, _group_kl

    mu = np.array([-3.0, 0.0, 4.0])
    parts = _group_kl(spec, mu, np.full(3, SCALE_SD), np.full(3, -9.0), 1.0, 1, 3)
    assert parts["unconstrained"] == pytest.approx(np.full(3, (math.log(2) / 4) ** 2 / 4))
    assert pytest.approx(parts["unconstrained"][0], rel=1e-12) == _UNCONSTRAINED
    # and the derived overhead of an active-fan-in layer counts it once per coordinate
    arch = Architecture(3, [4, 2], [1, 1], 1.0, "relu", fan_in="active")
    gap = variational_gap(arch, spec, 1e6, refine=False)
    more = variational_gap(arch.replace(hidden=[6, 2]), spec, 1e6, refine=False)
    # widening layer 1 by 2 inactive nodes adds 2 unconstrained coordinates to the layer-2 group
    # (and changes its scale law for SS-GL: compare the horseshoe only)
    if spec.prior.value == "ss-ghs":
        extra = more.omega_layer[0, 1] - gap.omega_layer[0, 1]
        assert extra == pytest.approx(2 * _UNCONSTRAINED, rel=1e-9)


def test_horseshoe_scale_kl_against_quadrature():
    # U = log tau^2 for tau ~ C+(0, 1): density 1/(2 pi cosh(u/2)) (change of variables)
    for mu, s in [(0.0, 0.2), (-9.0, 0.1), (5.0, 1.3), (30.0, 0.05)]:
        q = stats.norm(mu, s)

        def integrand(u, q=q):
            log_p = -math.log(2 * math.pi) - (np.logaddexp(u / 2, -u / 2) - math.log(2))
            return q.pdf(u) * (q.logpdf(u) - log_p)

        value, _ = integrate.quad(integrand, mu - 40 * s, mu + 40 * s, epsabs=0, epsrel=1e-12)
        assert horseshoe_scale_kl(mu, s) == pytest.approx(value, rel=1e-9, abs=1e-12)


@settings(max_examples=60)
@given(mu_a=st.floats(-5, 5), mu_b=st.floats(-5, 5), s_a=st.floats(0.05, 2), s_b=st.floats(0.05, 2))
def test_engine_horseshoe_factors_cost_at_least_the_direct_scale(mu_a, mu_b, s_a, s_b):
    # tau^2 = a b with a ~ Gamma(1/2, rate 1), b ~ InvGamma(1/2, scale 1) is (Z1/Z2)^2; a KL
    # of the factors can only lose information about their product (data processing)
    engine = kl_lognormal_gamma(mu_a, s_a, 0.5, 1.0) + kl_lognormal_invgamma(mu_b, s_b, 0.5, 1.0)
    direct = horseshoe_scale_kl(mu_a + mu_b, math.hypot(s_a, s_b))
    assert direct <= engine + 1e-12


@pytest.mark.parametrize(
    "spec",
    [
        PriorSpec("ss-gl", sigma_0=0.7, kappa=1.4),
        PriorSpec("ss-ghs", sigma_0=1.3, global_scale=0.5, slab_width=None),
        PriorSpec("ss-ghs", sigma_0=2.0, global_scale=0.8, slab_width=0.6),
    ],
)
def test_group_kl_against_monte_carlo(spec):
    # the joint KL of q(w) q(tau^2) against the prior p(w | tau^2) p(tau^2), estimated from
    # draws of q with densities written here (scipy.stats and the variance of section 2)
    from ssbnn_theory.variational_gap import _group_kl

    rng = np.random.default_rng(11)
    mu, s_u, log_s, bound, r, d = 0.3, 0.4, math.log(0.2), 0.9, 2, 3
    exact = float(
        _group_kl(spec, np.array([mu]), np.array([s_u]), np.array([log_s]), bound, r, d)["total"][0]
    )
    draws = 400_000
    u = rng.normal(mu, s_u, draws)
    tau2 = np.exp(u)
    if spec.prior.value == "ss-gl":
        prior_u = stats.gamma(0.5 * (d + 1), scale=2 / spec.kappa**2).logpdf(tau2) + u
    else:
        prior_u = -math.log(2 * math.pi) - (np.logaddexp(u / 2, -u / 2) - math.log(2))
    log_ratio = stats.norm(mu, s_u).logpdf(u) - prior_u
    var = _mixture_variance(spec, tau2)
    sd_free = 1 / math.sqrt(float(np.mean(1 / var)))  # q* of unconstrained coordinates
    for centre, sd in [(bound, math.exp(log_s))] * r + [(0.0, sd_free)] * (d - r):
        w = rng.normal(centre, sd, draws)
        log_ratio += stats.norm(centre, sd).logpdf(w) - stats.norm(0, np.sqrt(var)).logpdf(w)
    se = log_ratio.std() / math.sqrt(draws)
    # sd_free is the MC estimate of 1/sqrt(E 1/v): its error moves the KL at second order only
    assert exact == pytest.approx(log_ratio.mean(), abs=5 * se + 1e-3)


@settings(max_examples=30)
@given(arch=architectures(max_depth=3, max_width=5, max_p=4), seed=st.integers(0, 2**32 - 1))
def test_expected_sup_gap_against_direct_draws(arch, seed):
    # E D(M)^2 by quadrature over the exact law of M = sd max |Z_i| against draws of M
    rng = np.random.default_rng(seed)
    sd = 1e-3 / max(1.0, math.exp(float(np.log(perturbation_bound(arch, 1.0)))))
    quad = float(expected_sup_gap(arch, sd)[0])
    m = sd * np.max(np.abs(rng.standard_normal((20_000, arch.coordinates))), axis=1)
    values = perturbation_bound(arch, m) ** 2
    assert quad == pytest.approx(values.mean(), abs=5 * values.std() / math.sqrt(m.size))


@settings(max_examples=40)
@given(arch=architectures(max_depth=4, max_width=8, max_p=8), log10_delta=st.floats(-9, -1))
def test_coordinate_sd_keeps_the_expected_gap_below_twice_the_box(arch, log10_delta):
    # the lemma behind rho: E max(1, Y/rho)^{2(L+1)} <= 2, hence E D(M)^2 <= 2 D(delta)^2
    delta = 10.0**log10_delta
    rho = coordinate_sd_factor(arch)
    quad = float(expected_sup_gap(arch, delta / rho)[0])
    assert quad <= 2 * float(perturbation_bound(arch, delta)[()]) ** 2 * (1 + 1e-9)


@settings(max_examples=20)
@given(
    arch=architectures(max_depth=3, max_width=5, max_p=4, min_bound=0.1),
    seed=st.integers(0, 2**32 - 1),
)
def test_fresh_forward_passes_stay_below_the_l1_route(arch, seed):
    rng = np.random.default_rng(seed)
    sd = 1e-4
    mean, sup = monte_carlo_gap(arch, sd, rng, draws=32, inputs=64)
    bound = arch.outputs * float(expected_sup_gap(arch, sd)[0])
    assert mean <= sup <= bound * (1 + 1e-6)


def test_engine_surcharge_is_the_least_lognormal_kl():
    # numerical minimum of KL(LogNormal || Gamma(alpha, beta)) over (mu, sigma), per node
    arch = Architecture(3, [5, 4], [2, 1], 1.0)

    def least(alpha):
        res = optimize.minimize(
            lambda z: float(kl_lognormal_gamma(z[0], math.exp(z[1]), alpha, 0.7)),
            [0.0, 0.0],
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 4000},
        )
        return res.fun

    gl = engine_scale_surcharge(arch, PriorSpec("ss-gl"))
    assert gl == pytest.approx(3 * least(2.5) + 3 * least(3.5), rel=1e-6)
    hs = engine_scale_surcharge(arch, PriorSpec("ss-ghs"))
    assert hs == pytest.approx(6 * 2 * least(0.5), rel=1e-6)
    assert engine_scale_surcharge(arch, PriorSpec("ss-ig")) == 0.0


@pytest.mark.parametrize(
    "likelihood, outputs, sigma",
    [("gaussian", 2, 0.5), ("bernoulli", 1, 2.0), ("categorical", 3, 1.0)],
)
def test_classification_likelihoods_use_their_kl_scale(likelihood, outputs, sigma):
    # KL <= ||f - f*||_inf^2 / (2 sigma^2): sigma_e for Gaussian (summed over K outputs), 2 for
    # a Bernoulli logit, 1 for softmax logits (docs/theory.md 4.6); n E KL <= K T either way
    arch = Architecture(3, [4, 3], [2, 2], 1.0, "relu", outputs=outputs)
    sigma_e = sigma if likelihood == "gaussian" else None
    gap = variational_gap(arch, "ss-gl", [1e3, 1e6], sigma_e, likelihood=likelihood)
    k = outputs if likelihood == "gaussian" else 1
    expected = gap.rate.n * k * expected_sup_gap(arch, gap.sd) / (2 * sigma**2)
    assert gap.expected_kl == pytest.approx(expected, rel=1e-12)
    assert np.all(gap.expected_kl <= k * gap.rate.coordinates)
    assert np.all(gap.total_derived <= gap.bound) and np.all(gap.ratio < 1.2)


def test_default_architecture_figures():
    arch = Architecture(100, [16, 16], [4, 3], 1.5)
    n = [512, 32768, 1e6]
    for spec in ("ss-ig", "ss-gl", "ss-ghs"):
        gap = variational_gap(arch, spec, n)
        assert np.all(gap.ratio < 1.05)  # measured 1.02 to 1.04 (docs/theory.md, 4.5)
        assert np.all(gap.ratio > 1.0)  # the Gaussian q* pays for its shape: above n r_n
        assert np.all(gap.expected_kl < 0.5 * gap.rate.coordinates)
        d = gap.to_dict()
        assert d["constant_C"] == pytest.approx(list(gap.constant))
