"""simulations.kl against ssbnn_theory.kl (numpy), torch.distributions and Monte Carlo."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations import kl as tkl
from ssbnn_theory import kl as nkl

D = torch.float64


def t(x):
    return torch.as_tensor(x, dtype=D)


@settings(max_examples=200)
@given(
    logit=st.floats(-30, 30),
    p=st.floats(1e-6, 1 - 1e-6),
)
def test_bernoulli_matches_numpy(logit, p):
    """Same formula in both packages, to 1e-9 relative (float64 rounding of two forms)."""
    q = 1.0 / (1.0 + math.exp(-logit))
    expected = float(nkl.kl_bernoulli(q, p))
    got = float(tkl.kl_bernoulli(t(logit), p))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=200)
@given(
    mu_q=st.floats(-5, 5),
    sd_q=st.floats(1e-3, 5),
    mu_p=st.floats(-5, 5),
    sd_p=st.floats(1e-2, 5),
)
def test_normal_matches_numpy_and_torch(mu_q, sd_q, mu_p, sd_p):
    got = float(tkl.kl_normal(t(mu_q), t(sd_q), mu_p, sd_p))
    assert got == pytest.approx(float(nkl.kl_normal(mu_q, sd_q, mu_p, sd_p)), rel=1e-10, abs=1e-12)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(t(mu_q), t(sd_q)), torch.distributions.Normal(t(mu_p), t(sd_p))
    )
    assert got == pytest.approx(float(ref), rel=1e-10, abs=1e-12)


def test_bernoulli_matches_torch_distributions():
    logits = torch.linspace(-12, 12, 97, dtype=D)
    for p in (1e-4, 0.1, 0.5, 0.93):
        ref = torch.distributions.kl_divergence(
            torch.distributions.Bernoulli(logits=logits),
            torch.distributions.Bernoulli(probs=torch.full_like(logits, p)),
        )
        torch.testing.assert_close(tkl.kl_bernoulli(logits, p), ref, rtol=1e-9, atol=1e-12)


@settings(max_examples=200)
@given(
    mu=st.floats(-4, 4),
    sigma=st.floats(1e-3, 2),
    shape=st.floats(0.1, 50),
    rate=st.floats(1e-3, 1e3),
)
def test_lognormal_gamma_and_invgamma_match_numpy(mu, sigma, shape, rate):
    got = float(tkl.kl_lognormal_gamma(t(mu), t(sigma), shape, rate))
    expected = float(nkl.kl_lognormal_gamma(mu, sigma, shape, rate))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
    got = float(tkl.kl_lognormal_invgamma(t(mu), t(sigma), shape, rate))
    expected = float(nkl.kl_lognormal_invgamma(mu, sigma, shape, rate))
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=100)
@given(logit=st.floats(-200, 200), p=st.floats(1e-8, 1 - 1e-8))
def test_bernoulli_finite_with_finite_gradient_in_float32(logit, p):
    """Where sigmoid rounds to 0 or 1, the KL and its gradient stay finite and KL >= 0."""
    x = torch.tensor(logit, dtype=torch.float32, requires_grad=True)
    value = tkl.kl_bernoulli(x, p)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad)
    assert float(value.detach()) >= -1e-4


def _mc(samples: torch.Tensor, q_log_prob, p_log_prob):
    """Monte Carlo KL estimate and its standard error."""
    diff = q_log_prob(samples) - p_log_prob(samples)
    return float(diff.mean()), float(diff.std() / math.sqrt(diff.numel()))


@pytest.mark.parametrize(
    ("mu", "sigma", "shape", "rate"),
    [(0.0, 0.5, 0.5, 1.0), (-2.0, 1.2, 3.0, 0.2), (1.5, 0.1, 0.5, 1e5), (0.3, 0.8, 20.0, 40.0)],
)
def test_lognormal_kls_match_monte_carlo(mu, sigma, shape, rate):
    """200k draws; the closed forms lie within 5 standard errors of the estimate."""
    gen = torch.Generator().manual_seed(11)
    q = torch.distributions.LogNormal(t(mu), t(sigma))
    x = torch.exp(mu + sigma * torch.randn(200_000, generator=gen, dtype=D))
    gamma = torch.distributions.Gamma(t(shape), t(rate))
    est, se = _mc(x, q.log_prob, gamma.log_prob)
    assert abs(float(tkl.kl_lognormal_gamma(t(mu), t(sigma), shape, rate)) - est) < 5 * se + 1e-9
    inv = torch.distributions.InverseGamma(t(shape), t(rate))
    est, se = _mc(x, q.log_prob, inv.log_prob)
    assert abs(float(tkl.kl_lognormal_invgamma(t(mu), t(sigma), shape, rate)) - est) < 5 * se + 1e-9


def test_expected_kl_over_a_lognormal_rate_matches_monte_carlo():
    """``log_rate``/``rate`` as expectations give E_q(rate)[KL], as the group lasso uses it.

    Rate ``kappa^2 / 2`` with ``kappa^2 ~ LogNormal(1.0, 0.4^2)``; 200k joint draws,
    tolerance 5 standard errors.
    """
    mu, sigma, shape = 0.2, 0.3, 4.0
    mk, sk = 1.0, 0.4
    gen = torch.Generator().manual_seed(5)
    n = 200_000
    tau2 = torch.exp(mu + sigma * torch.randn(n, generator=gen, dtype=D))
    rate = 0.5 * torch.exp(mk + sk * torch.randn(n, generator=gen, dtype=D))
    log_q = torch.distributions.LogNormal(t(mu), t(sigma)).log_prob(tau2)
    log_p = torch.distributions.Gamma(t(shape), rate).log_prob(tau2)
    diff = log_q - log_p
    est, se = float(diff.mean()), float(diff.std()) / math.sqrt(n)
    mean_rate = 0.5 * math.exp(mk + 0.5 * sk**2)
    got = tkl.kl_lognormal_gamma(t(mu), t(sigma), shape, mean_rate, mk - math.log(2.0))
    assert abs(float(got) - est) < 5 * se


def test_broadcasting_and_gradients():
    mu = torch.randn(3, 4, dtype=D, requires_grad=True)
    sd = (torch.rand(3, 4, dtype=D) + 0.1).requires_grad_()
    shape = torch.full((4,), 0.5, dtype=D)
    value = tkl.kl_lognormal_gamma(mu, sd, shape, 2.0).sum() + tkl.kl_normal(mu, sd, 0.0, 1.0).sum()
    value.backward()
    assert mu.grad.shape == (3, 4) and torch.isfinite(sd.grad).all()
    np.testing.assert_allclose(
        tkl.kl_lognormal_invgamma(mu, sd, shape, 1.0).detach().numpy(),
        nkl.kl_lognormal_invgamma(mu.detach().numpy(), sd.detach().numpy(), 0.5, 1.0),
        rtol=1e-10,
    )
