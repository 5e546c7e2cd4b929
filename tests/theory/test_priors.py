"""Lemma L2 (slab small-ball mass), slab densities, samplers and tails vs quadrature and MC."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special, stats

from ssbnn_theory import (
    InvalidParameterError,
    PriorSpec,
    log_scale_mass,
    sample_slab,
    slab_log_density,
    slab_log_tail,
    slab_small_ball,
)

from .strategies import prior_specs

L2_EXAMPLES = 300
# quadrature (epsrel 1e-10) of a smooth positive integrand: relative error far below 1e-7
QUAD_REL = 1e-7
# Monte Carlo: one-sided upper confidence bound mean + 4 standard errors (P(miss) ~ 3e-5)
MC_SE = 4.0
MC_DRAWS = 20_000


def mixture_variance(spec: PriorSpec, tau2: np.ndarray) -> np.ndarray:
    """Conditional variance of a coordinate given the scale, from docs/theory.md section 2
    (written here, not taken from priors.py): GL ``sigma_0^2 tau^2``, horseshoe
    ``sigma_0^2 g^2 tau^2``, regularised ``sigma_0^2 c^2 g^2 tau^2 / (c^2 + g^2 tau^2)``."""
    tau2 = np.asarray(tau2, dtype=float)
    s0 = spec.sigma_0**2
    if spec.prior.value == "ss-gl":
        return s0 * tau2
    g2 = spec.global_scale**2
    if spec.slab_width is None:
        return s0 * g2 * tau2
    c2 = spec.slab_width**2
    return s0 * c2 * g2 * tau2 / (c2 + g2 * tau2)


_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


def _cond_box(var: np.ndarray, centre: np.ndarray, delta: float) -> np.ndarray:
    """P(|w_i - w*_i| <= delta for all i | variance var) for N(0, var) coordinates.

    Wide intervals: a difference of upper tails (accurate far out in the tail). Narrow ones
    (``2 delta / sd < 0.5``, down to ``delta = 1e-7`` against ``sd`` up to ``e^30``): 8-point
    Gauss-Legendre quadrature of the normal density, free of the cancellation of the tails.
    """
    sd = np.sqrt(np.asarray(var, dtype=float))[..., None]
    c = np.abs(centre)
    wide = special.ndtr((delta - c) / sd) - special.ndtr(-(c + delta) / sd)
    half = delta / sd
    nodes = (c / sd)[..., None] + half[..., None] * _GL_X
    narrow = half * np.sum(_GL_W * stats.norm.pdf(nodes), axis=-1)
    return np.prod(np.where(2 * half < 0.5, narrow, wide), axis=-1)


def _scale_density(spec: PriorSpec, d: int):
    """Density of the mixing variable in log-scale coordinates u and the map u -> tau^2."""
    if spec.prior.value == "ss-gl":
        a, rate = 0.5 * (d + 1), 0.5 * spec.kappa**2  # tau^2 ~ Gamma(a, rate); u = log tau^2
        log_norm = a * np.log(rate) - special.gammaln(a)
        return (lambda u: np.exp(log_norm + a * u - rate * np.exp(u))), np.exp
    return (lambda u: 2.0 / np.pi / (1.0 + np.exp(2 * u)) * np.exp(u)), (
        lambda u: np.exp(2 * u)  # u = log tau, tau^2 = e^{2u}
    )


def box_mass_quad(spec: PriorSpec, centre: np.ndarray, delta: float, d: int) -> float:
    """Exact box mass of the slab around ``centre`` by 1-D quadrature over the scale."""
    if spec.prior.value == "ss-ig":
        return float(_cond_box(spec.sigma_0**2, centre, delta))
    density, to_tau2 = _scale_density(spec, d)

    def integrand(u: float) -> float:
        return float(_cond_box(mixture_variance(spec, to_tau2(u)), centre, delta) * density(u))

    # break points where the conditional sd crosses delta and the centre (u in log scale)
    grid = np.linspace(-60, 60, 4801)
    sd = np.sqrt(mixture_variance(spec, to_tau2(grid)))
    marks = [
        grid[np.argmin(np.abs(np.log(sd) - np.log(x)))] for x in (delta, *np.abs(centre)) if x > 0
    ]
    points = sorted({-5.0, 0.0, 5.0, *(float(m) for m in marks if -60 < m < 60)})
    value, _ = integrate.quad(
        integrand, -60, 60, points=points, limit=800, epsrel=1e-10, epsabs=0.0
    )
    return value


def box_mass_mc(spec, centre, delta, d, rng) -> tuple[float, float]:
    """Rao-Blackwellised Monte Carlo: draw the scale, average the exact conditional box mass."""
    if spec.prior.value == "ss-gl":
        tau2 = rng.gamma(0.5 * (d + 1), 2.0 / spec.kappa**2, size=MC_DRAWS)
    else:
        tau2 = np.abs(rng.standard_cauchy(MC_DRAWS)) ** 2
    values = _cond_box(mixture_variance(spec, tau2), centre, delta)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(MC_DRAWS))


@settings(max_examples=L2_EXAMPLES)
@given(
    spec=prior_specs(),
    r=st.integers(1, 3),
    extra=st.integers(0, 2),
    log10_delta=st.floats(-7.0, 0.0),
    bound=st.floats(0.0, 3.0),
    seed=st.integers(0, 2**32 - 1),
    closed_form=st.booleans(),
)
def test_small_ball_bound_below_true_mass(spec, r, extra, log10_delta, bound, seed, closed_form):
    # delta down to 1e-7: the rates use delta_n ~ 1e-6 and below
    delta = 10.0**log10_delta
    d = r + extra  # group size (sets the group-lasso shape); r coordinates constrained
    phi = float(slab_small_ball(spec, delta, bound, r, d, closed_form=closed_form)[()])
    bound_mass = np.exp(-phi)
    worst = np.full(r, bound)  # |w*_i| = B is the worst case (symmetric unimodal mixtures)
    exact = box_mass_quad(spec, worst, delta, d)
    assert bound_mass <= exact * (1 + QUAD_REL), (bound_mass, exact)
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-bound, bound, size=r)  # any admissible centre has at least that mass
    assert bound_mass <= box_mass_quad(spec, centre, delta, d) * (1 + QUAD_REL)
    # the Rao-Blackwellised MC estimate is heavy-tailed once the mass comes from rare small
    # scales (tiny delta at B = 0): there its mean + 4 se is no upper confidence bound, and
    # the quadrature above is the reference
    if spec.prior.value != "ss-ig" and delta >= 0.02:
        mean, se = box_mass_mc(spec, worst, delta, d, rng)
        assert bound_mass <= mean + MC_SE * se, (bound_mass, mean, se)


def _l2_objective(spec: PriorSpec, log_t: np.ndarray, delta: float, bound: float, r: int, d: int):
    """The sharp L2 objective of docs/theory.md 3.2, re-derived with exact scipy laws:
    ``-log P(tau^2 in [t, 2t]) - r log min_{v in {v(t), v(2t)}} P(|N(0, v) - B| <= delta)``."""
    t = np.exp(log_t)
    if spec.prior.value == "ss-gl":
        law = stats.gamma(a=0.5 * (d + 1), scale=2 / spec.kappa**2)
        low = t < law.mean()
        p = np.where(low, law.cdf(2 * t) - law.cdf(t), law.sf(t) - law.sf(2 * t))
    else:  # tau ~ C+(0, 1): P(tau^2 in [t, 2t]) = (2/pi)(atan sqrt(2t) - atan sqrt(t))
        p = 2 / np.pi * (np.arctan(np.sqrt(2 * t)) - np.arctan(np.sqrt(t)))
    centre = np.array([bound])
    masses = np.minimum(
        _cond_box(mixture_variance(spec, t), centre, delta),
        _cond_box(mixture_variance(spec, 2 * t), centre, delta),
    )
    with np.errstate(divide="ignore"):
        return -np.log(p) - r * np.log(masses)


@pytest.mark.parametrize(
    "spec",
    [
        PriorSpec("ss-gl", sigma_0=0.8, kappa=1.5),
        PriorSpec("ss-gl", sigma_0=1.7, kappa=0.6),
        PriorSpec("ss-ghs", sigma_0=1.3, global_scale=0.5, slab_width=None),
        PriorSpec("ss-ghs", sigma_0=2.0, global_scale=2.0, slab_width=0.6),
        PriorSpec("ss-ghs", sigma_0=0.5, global_scale=1.5, slab_width=1.2),
    ],
    ids=["gl-a", "gl-b", "hs", "rhs-a", "rhs-b"],
)
@pytest.mark.parametrize(
    "delta, bound, r, d",
    [(1e-7, 0.05, 1, 1), (1e-6, 1.5, 2, 4), (1e-3, 0.7, 3, 3), (0.2, 2.5, 1, 2)],
)
def test_sharp_small_ball_is_the_minimum_over_t(spec, delta, bound, r, d):
    # the sharp bound is the L2 objective at its best t (section 3.2), evaluated here from
    # scipy's laws and the variance of section 2 on a fine grid of log t, then refined
    grid = np.arange(-45.0, 45.0, 0.02)
    values = _l2_objective(spec, grid, delta, bound, r, d)
    best = grid[np.argmin(values)]
    res = optimize.minimize_scalar(
        lambda u: float(_l2_objective(spec, np.array([u]), delta, bound, r, d)[0]),
        bounds=(best - 0.05, best + 0.05),
        method="bounded",
        options={"xatol": 1e-9},
    )
    reference = min(res.fun, float(np.min(values)))
    phi = float(slab_small_ball(spec, delta, bound, r, d)[()])
    assert phi >= reference - 1e-9 * abs(reference)  # a lower bound on the mass: no lower phi
    assert phi <= reference + 1e-6 * abs(reference) + 1e-9  # and the minimiser is found


@settings(max_examples=100)
@given(spec=prior_specs(), r=st.integers(1, 30), delta=st.floats(1e-8, 1.0), bound=st.floats(0, 50))
def test_sharp_bound_is_below_closed_form(spec, r, delta, bound):
    sharp = slab_small_ball(spec, delta, bound, r)
    closed = slab_small_ball(spec, delta, bound, r, closed_form=True)
    assert sharp <= closed * (1 + 1e-12) + 1e-12


def _slope(x, y):
    return np.polyfit(np.log(x), np.log(y), 1)[0]


@pytest.mark.parametrize("r", [1, 2, 3])
def test_growth_in_weight_bound(r):
    delta = 0.01
    big = np.geomspace(100.0, 1e4, 9)
    ig = slab_small_ball("ss-ig", delta, big, r)
    gl = slab_small_ball(PriorSpec("ss-gl", kappa=1.5, sigma_0=0.8), delta, big, r)
    assert _slope(big, ig) == pytest.approx(2.0, abs=0.02)  # quadratic
    assert _slope(big, gl) == pytest.approx(1.0, abs=0.02)  # linear, ...
    assert gl[-1] / big[-1] == pytest.approx(
        1.5 * np.sqrt(r) / 0.8, rel=0.02
    )  # ~ kappa sqrt(r) B / sigma_0
    huge = np.geomspace(1e2, 1e12, 11)
    hs = slab_small_ball(PriorSpec("ss-ghs", global_scale=1.0, slab_width=None), delta, huge, r)
    per_log = np.polyfit(np.log(huge), hs, 1)[0]
    assert per_log == pytest.approx(r + 1, rel=0.02)  # logarithmic: (r + 1) log B
    assert _slope(huge, hs) < 0.5
    c = 0.5
    reg = slab_small_ball(PriorSpec("ss-ghs", global_scale=1.0, slab_width=c), delta, big, r)
    assert _slope(big, reg) == pytest.approx(2.0, abs=0.02)  # quadratic again beyond c
    assert reg[-1] == pytest.approx(r * big[-1] ** 2 / (2 * c**2), rel=0.02)


@settings(max_examples=60)
@given(spec=prior_specs(), d=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_tail_bound_above_monte_carlo(spec, d, seed):
    rng = np.random.default_rng(seed)
    w = sample_slab(spec, d, 20_000, rng)
    for bound in (0.5, 2.0, 6.0):
        hits = int(np.sum(np.max(np.abs(w), axis=1) > bound))
        # exact one-sided Clopper-Pearson lower limit at level 1e-5: the true probability is
        # above it with probability 1 - 1e-5, so the bound must be too
        lower = stats.beta.ppf(1e-5, hits, len(w) - hits + 1) if hits else 0.0
        assert lower <= np.exp(slab_log_tail(spec, bound, d)[()])


def test_tail_bound_is_tight_for_gaussian_and_group_lasso():
    # IG: 2 d Phi(-B/sigma) (union bound; exact for d = 1); GL: the exact Gamma(d) radius tail
    assert np.exp(slab_log_tail("ss-ig", 1.0, 1)) == pytest.approx(2 * stats.norm.sf(1.0))
    spec = PriorSpec("ss-gl", kappa=2.0)
    assert np.exp(slab_log_tail(spec, 3.0, 4)) == pytest.approx(stats.gamma(4, scale=0.5).sf(3.0))
    assert np.all(np.isfinite(slab_log_tail(spec, [1e3, 1e6], 4)))  # beyond underflow


@pytest.mark.parametrize("log_b", [1.0, 3.0, 10.0, 40.0, 300.0])
def test_horseshoe_tail_closed_form_is_the_balanced_union_bound(log_b):
    # P(|tau Z| > b) <= P(tau > u) + P(|Z| > x), x = b/u, with P(tau > u) <= 2/(pi u) = 2x/(pi b)
    # and Mills' ratio P(|Z| > x) <= 2 phi(x)/x; the closed form takes the x where the Mills
    # term is 2/(pi b x), i.e. phi(x) = 1/(pi b): found here by Brent's method in log space
    from ssbnn_theory.slabs.group_horseshoe import _hs_closed_log_tail

    def gap(x):  # log(2 phi(x)/x) - log(2/(pi b x)) = log(phi(x)) + log(pi b)
        return -0.5 * x * x - 0.5 * np.log(2 * np.pi) + np.log(np.pi) + log_b

    x = optimize.brentq(gap, 1e-9, 1e4, xtol=1e-14, rtol=1e-15)
    expected = np.log(2 / np.pi) - log_b + np.log(x + 1 / x)
    assert float(_hs_closed_log_tail(np.array(log_b))) == pytest.approx(expected, rel=1e-12)


def test_scale_mass_matches_scipy_and_stays_finite():
    t = np.array([1e-3, 0.1, 1.0, 10.0, 100.0])
    gl = PriorSpec("ss-gl", kappa=1.3)
    law = stats.gamma(a=2.0, scale=2 / 1.3**2)  # d = 3
    assert np.exp(log_scale_mass(gl, t, 3)) == pytest.approx(law.cdf(2 * t) - law.cdf(t), rel=1e-9)
    hs = np.exp(log_scale_mass("ss-ghs", t, 3))
    expected = 2 / np.pi * (np.arctan(np.sqrt(2 * t)) - np.arctan(np.sqrt(t)))
    assert hs == pytest.approx(expected, rel=1e-12)
    # the trap of docs/theory.md, section 3.2: for large t both CDFs round to 1; the log mass
    # must keep decreasing
    big = np.array([1e3, 1e4, 1e6, 1e9])
    log_gl = log_scale_mass(gl, big, 3)
    assert np.all(np.isfinite(log_gl)) and np.all(np.diff(log_gl) < 0)
    assert log_gl[-1] == pytest.approx(-0.5 * 1.3**2 * 1e9, rel=1e-6)
    assert np.all(np.isfinite(log_scale_mass("ss-ghs", [1e-300, 1e300], 3)))


@pytest.mark.parametrize("d", [1, 2])
def test_group_lasso_density_is_the_gamma_mixture(d):
    spec = PriorSpec("ss-gl", kappa=1.7, sigma_0=0.9)
    for w in ([0.3] * d, [-1.2] * d):
        law = stats.gamma(a=0.5 * (d + 1), scale=2 / 1.7**2)
        mix, _ = integrate.quad(
            lambda t2, w=w, law=law: (
                np.prod(stats.norm.pdf(w, scale=0.9 * np.sqrt(t2))) * law.pdf(t2)
            ),
            0,
            np.inf,
            limit=200,
        )
        assert np.exp(slab_log_density(spec, np.array(w))) == pytest.approx(mix, rel=1e-7)


@pytest.mark.parametrize(
    "spec",
    [
        PriorSpec("ss-ig", sigma_0=0.7),
        PriorSpec("ss-gl"),
        PriorSpec("ss-ghs", global_scale=0.8, slab_width=None),
        PriorSpec("ss-ghs", global_scale=1.0, slab_width=0.5),
    ],
)
def test_one_dimensional_densities_integrate_to_one(spec):
    # symmetric density: 2 * int_0^inf f(w) dw = 2 * int f(e^u) e^u du on a fine log grid
    # (trapezoid rule, step 0.02 in u: relative error ~1e-4; the horseshoe's log singularity
    # at 0 is integrable and negligible below e^-14)
    u = np.arange(-14.0, 14.0, 0.02)
    w = np.exp(u)
    total = 2 * np.trapezoid(np.exp(slab_log_density(spec, w[:, None])) * w, u)
    assert total == pytest.approx(1.0, rel=1e-3)
    if spec.prior.value == "ss-ig":
        expected = stats.multivariate_normal(np.zeros(3), 0.49 * np.eye(3)).logpdf([0.1, 0.2, -1])
        assert slab_log_density(spec, [0.1, 0.2, -1.0]) == pytest.approx(expected, rel=1e-12)


def test_sampler_moments():
    rng = np.random.default_rng(7)
    gl = sample_slab(PriorSpec("ss-gl", kappa=2.0, sigma_0=1.5), 3, 200_000, rng)
    radius = np.linalg.norm(gl, axis=1)  # Gamma(d, kappa/sigma_0): mean d sigma_0 / kappa
    assert radius.mean() == pytest.approx(3 * 1.5 / 2.0, abs=4 * radius.std() / np.sqrt(2e5))
    for sigma_0 in (1.0, 2.0):
        spec = PriorSpec("ss-ghs", sigma_0=sigma_0, slab_width=0.5, global_scale=10.0)
        reg = sample_slab(spec, 2, 100_000, rng)
        # E w^2 = E v(tau^2), tau ~ C+(0, 1), by quadrature with the variance of section 2
        second, _ = integrate.quad(
            lambda tau, spec=spec: mixture_variance(spec, tau * tau) * 2 / np.pi / (1 + tau * tau),
            0,
            np.inf,
            limit=200,
        )
        assert second <= sigma_0**2 * 0.25  # the regularised scale never exceeds sigma_0 c
        se = np.std(reg**2) / np.sqrt(reg.size)
        assert np.mean(reg**2) == pytest.approx(second, abs=5 * se)


@settings(max_examples=60)
@given(
    field=st.sampled_from(["sigma_0", "kappa", "global_scale", "slab_width"]),
    value=st.one_of(
        st.floats(max_value=0.0), st.just(np.nan), st.just(np.inf), st.text(max_size=3)
    ),
)
def test_invalid_hyperparameters_name_the_field(field, value):
    kwargs = {"prior": "ss-ghs", field: value}
    with pytest.raises(InvalidParameterError) as info:
        PriorSpec(**kwargs)
    assert info.value.field == field


def test_prior_spec_validation():
    with pytest.raises(InvalidParameterError, match=r"^slab_width: "):
        PriorSpec("ss-gl", slab_width=1.0)
    with pytest.raises(InvalidParameterError, match=r"^prior: "):
        PriorSpec("horseshoe")
    with pytest.raises(InvalidParameterError, match=r"^r: "):
        slab_small_ball("ss-ig", 0.1, 1.0, 0)
    with pytest.raises(InvalidParameterError, match=r"^d: "):
        slab_small_ball("ss-gl", 0.1, 1.0, 3, 2)
    with pytest.raises(InvalidParameterError, match=r"^delta: "):
        slab_small_ball("ss-gl", 0.0, 1.0, 3)
    assert PriorSpec("SS-GL").prior.value == "ss-gl"


def test_tiny_boxes_stay_finite():
    # delta far below float resolution of B: the density bound takes over, no -inf/NaN
    phi = slab_small_ball("ss-gl", 1e-200, 2.0, 5)
    assert np.isfinite(phi) and phi == pytest.approx(5 * 200 * np.log(10), rel=0.05)


@pytest.mark.parametrize("w", [[0.7], [0.3, -0.5], [2.0, 0.1, -4.0]])
@pytest.mark.parametrize(
    "spec",
    [
        PriorSpec("ss-ghs", global_scale=0.8, slab_width=None),
        PriorSpec("ss-ghs", global_scale=1.0, slab_width=0.5),
        # sigma_0 != 1: the regularised cap is sigma_0^2 c^2 (c^2 alone would pass at 1)
        PriorSpec("ss-ghs", sigma_0=2.0, global_scale=3.0, slab_width=0.5),
        PriorSpec("ss-ghs", sigma_0=0.4, global_scale=3.0, slab_width=0.7),
    ],
)
def test_horseshoe_density_against_adaptive_quadrature(w, spec):
    w = np.asarray(w)

    def integrand(tau: float) -> float:
        var = mixture_variance(spec, tau * tau)
        return float(np.prod(stats.norm.pdf(w, scale=np.sqrt(var))) * 2 / np.pi / (1 + tau * tau))

    value, _ = integrate.quad(integrand, 0, np.inf, limit=500)
    assert np.exp(slab_log_density(spec, w)) == pytest.approx(value, rel=1e-7)
