"""Observation models against torch.distributions, and their validation."""

import math

import pytest
import torch

from simulations.enums import Likelihood
from simulations.likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
    make_likelihood,
)
from ssbnn_theory.errors import InvalidParameterError

D = torch.float64


def _data(shape, seed=0):
    return torch.randn(shape, dtype=D, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("sigma_e", [0.3, None])
def test_gaussian_nll_is_the_normal_log_density(sigma_e):
    lik = GaussianLikelihood(3, 2, sigma_e, sigma_init=1.7, dtype=D)
    f, y = _data((3, 11, 2)), _data((3, 11, 2), 1)
    sd = sigma_e if sigma_e is not None else 1.7
    expected = -torch.distributions.Normal(f, sd).log_prob(y).sum((-2, -1))
    torch.testing.assert_close(lik.nll(f, y), expected)
    torch.testing.assert_close(lik.sigma(), torch.full((3,), sd, dtype=D))
    assert lik.learned == (sigma_e is None)
    assert (len(list(lik.parameters())) == 1) == lik.learned


def test_learned_sigma_receives_a_gradient_per_replicate():
    lik = GaussianLikelihood(2, 1, None, dtype=D)
    f = torch.zeros(2, 5, 1, dtype=D)
    y = torch.cat([torch.full((1, 5, 1), 3.0), torch.zeros(1, 5, 1)]).to(D)
    lik.nll(f, y).sum().backward()
    grad = lik.log_sigma.grad
    assert grad[0] < 0 < grad[1]  # replicate 0 wants a larger sigma, replicate 1 a smaller one


def test_bernoulli_and_categorical_nll():
    f = _data((2, 9, 1))
    y = (torch.rand(2, 9, 1, generator=torch.Generator().manual_seed(2)) < 0.4).to(D)
    expected = -torch.distributions.Bernoulli(logits=f).log_prob(y).sum((-2, -1))
    torch.testing.assert_close(BernoulliLikelihood(1).nll(f, y), expected)
    logits = _data((2, 9, 4))
    classes = torch.randint(0, 4, (2, 9), generator=torch.Generator().manual_seed(3))
    expected = -torch.distributions.Categorical(logits=logits).log_prob(classes).sum(-1)
    torch.testing.assert_close(CategoricalLikelihood(4).nll(logits, classes), expected)


def test_bernoulli_nll_is_finite_for_extreme_logits():
    f = torch.tensor([[[-1e4], [1e4]]], dtype=torch.float32, requires_grad=True)
    y = torch.tensor([[[1.0], [0.0]]])
    value = BernoulliLikelihood(1).nll(f, y)
    value.sum().backward()
    assert float(value.detach()) == pytest.approx(2e4) and torch.isfinite(f.grad).all()


@pytest.mark.parametrize(
    ("lik", "y", "field"),
    [
        (GaussianLikelihood(1, 1, 1.0), torch.tensor([[[math.nan]]]), "y"),
        (GaussianLikelihood(1, 1, 1.0), torch.tensor([[[1]]]), "y.dtype"),
        (BernoulliLikelihood(1), torch.tensor([[[0.5]]]), "y"),
        (CategoricalLikelihood(3), torch.tensor([[0.0]]), "y.dtype"),
        (CategoricalLikelihood(3), torch.tensor([[3]]), "y"),
        (CategoricalLikelihood(3), torch.tensor([[-1]]), "y"),
    ],
)
def test_bad_targets_name_the_field(lik, y, field):
    with pytest.raises(InvalidParameterError) as err:
        lik.check_targets(y)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("poisson", 1, 1), {}, "likelihood"),
        (("bernoulli", 1, 2), {}, "outputs"),
        (("categorical", 1, 1), {}, "outputs"),
        (("bernoulli", 1, 1), {"sigma_e": 1.0}, "sigma_e"),
        (("gaussian", 1, 1), {"sigma_e": 0.0}, "sigma_e"),
        (("gaussian", 1, 1), {"sigma_init": -1.0}, "sigma_init"),
    ],
)
def test_make_likelihood_rejects_bad_combinations(args, kwargs, field):
    with pytest.raises(InvalidParameterError) as err:
        make_likelihood(*args, **kwargs)
    assert err.value.field == field


def test_make_likelihood_accepts_enums_and_strings():
    assert make_likelihood(Likelihood.BERNOULLI, 2, 1).kind is Likelihood.BERNOULLI
    assert make_likelihood(" Categorical ", 2, 3).kind is Likelihood.CATEGORICAL
    assert make_likelihood("gaussian", 2, 1, 0.5).target_shape(2, 7) == (2, 7, 1)
