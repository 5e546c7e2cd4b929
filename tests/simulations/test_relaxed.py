"""Binary Concrete samples, straight-through gradients and temperature schedules."""

import math

import pytest
import torch

from simulations.relaxed import Annealing, TemperatureSchedule, logistic_noise, relaxed_bernoulli
from ssbnn_theory.errors import InvalidParameterError


def test_logistic_noise_is_finite_at_the_ends_of_the_unit_interval():
    for dtype in (torch.float32, torch.float64):
        u = torch.tensor([0.0, 1e-30, 0.5, 1.0 - 1e-12, 1.0], dtype=dtype)
        noise = logistic_noise(u)
        assert torch.isfinite(noise).all()
        assert noise[2] == 0


def test_hard_samples_are_exact_bernoulli_draws():
    """Frequencies of 200k straight-through samples within 5 binomial sds of sigmoid(theta)."""
    gen = torch.Generator().manual_seed(3)
    theta = torch.tensor([-3.0, -0.5, 0.0, 1.0, 4.0], dtype=torch.float64)
    n = 200_000
    u = torch.rand((n, theta.numel()), generator=gen, dtype=torch.float64)
    z = relaxed_bernoulli(theta, logistic_noise(u), temperature=0.5)
    assert set(z.unique().tolist()) <= {0.0, 1.0}
    p = torch.sigmoid(theta)
    sd = torch.sqrt(p * (1 - p) / n)
    assert ((z.mean(0) - p).abs() < 5 * sd).all()


def test_straight_through_gradient_is_the_concrete_gradient():
    """Forward: the hard sample; backward: d sigmoid((theta + L)/t) / d theta."""
    theta = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    noise = torch.tensor([-0.1, 1.5, -2.5], dtype=torch.float64)
    for t in (0.2, 0.5, 1.0):
        z = relaxed_bernoulli(theta, noise, t)
        assert torch.equal(z.detach(), (theta + noise > 0).double())
        (grad,) = torch.autograd.grad(z.sum(), theta)
        soft = torch.sigmoid((theta + noise) / t)
        torch.testing.assert_close(grad, (soft * (1 - soft) / t).detach())


def test_soft_samples_are_concrete_and_sharpen_as_the_temperature_falls():
    theta = torch.zeros(4, dtype=torch.float64)
    noise = torch.tensor([-1.0, -0.1, 0.1, 1.0], dtype=torch.float64)
    warm = relaxed_bernoulli(theta, noise, 1.0, straight_through=False)
    cold = relaxed_bernoulli(theta, noise, 0.05, straight_through=False)
    torch.testing.assert_close(warm, torch.sigmoid(noise))
    assert ((warm > 0) & (warm < 1)).all()
    assert (torch.abs(cold - 0.5) > torch.abs(warm - 0.5)).all()


def test_temperature_schedules():
    assert TemperatureSchedule()(0) == 0.5 == TemperatureSchedule()(10_000)
    exp = TemperatureSchedule(1.0, 0.1, 100, "exponential")
    assert exp(0) == 1.0 and exp(100) == exp(500) == pytest.approx(0.1)
    assert exp(50) == pytest.approx(math.sqrt(0.1))
    lin = TemperatureSchedule(start=1.0, end=0.2, steps=4, annealing=Annealing.LINEAR)
    assert [lin(s) for s in range(6)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.2])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": 0.0}, "start"),
        ({"start": float("nan")}, "start"),
        ({"end": -1.0, "steps": 3, "annealing": "linear"}, "end"),
        ({"end": 0.1}, "end"),
        ({"end": 0.1, "annealing": "exponential"}, "steps"),
        ({"steps": -1}, "steps"),
        ({"annealing": "cosine"}, "annealing"),
    ],
)
def test_schedule_rejects_bad_values(kwargs, field):
    with pytest.raises(InvalidParameterError) as err:
        TemperatureSchedule(**kwargs)
    assert err.value.field == field
