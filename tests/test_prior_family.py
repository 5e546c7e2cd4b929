"""Adding a prior family through exactly the steps of docs/architecture.md ("Adding a prior
family"): one theory class and one registry line, one engine class and one registry line.

The throwaway family ``ss-wide`` is the Gaussian slab ``N(0, 2 sigma_0^2 I_d)``; in the engine
its scale factor is the constant ``scale_j = sqrt(2)``. Once registered, the generic paths take
it: the rate, the rate CLI and the figures' style (theory); the model builder, a training pass,
the KL, the structure and the theory rate of a fitted model (engine). The fixture removes it
again.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import numpy as np
import pytest

from ssbnn_theory import Architecture, PriorSpec, contraction_rate, style, symbolic_rate
from ssbnn_theory.enums import Prior as Family
from ssbnn_theory.slabs import SLABS, families, register_slab, unregister_slab
from ssbnn_theory.slabs.gaussian import (
    GaussianSlab,
    _ig_phi,
    gaussian_log_bound_inverse,
    gaussian_log_tail,
)

_WIDE = math.sqrt(2.0)


# --------------------------------------------------------------- step 1: the theory class
class WideSlab:
    """``G = N(0, 2 sigma_0^2 I_d)``: the Gaussian slab's bounds at scale ``sqrt(2) sigma_0``."""

    family = "ss-wide"
    display = "SS-WIDE"
    color = "orange"
    marker = "v"
    mixture = False
    takes_slab_width = False

    def _sd(self, spec: PriorSpec) -> float:
        return _WIDE * spec.sigma_0

    def label(self, spec: PriorSpec, out: str) -> str:
        return f"ss-wide (sigma_0={spec.sigma_0:g}{out})"

    def math_hyperparameters(self, spec: PriorSpec) -> list[str]:
        return []

    def variance_range(self, spec: PriorSpec, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self._sd(spec) ** 2
        return np.full_like(t, v), np.full_like(t, v)

    def small_ball_phi(self, spec, ball, *, closed_form):
        return _ig_phi(self._sd(spec), ball.log_delta, ball.bound, ball.r, closed_form)

    def log_tail(self, spec, log_bound, d):
        return gaussian_log_tail(self._sd(spec), log_bound, d)

    def tail_log_bound_inverse(self, spec, y, d):
        return gaussian_log_bound_inverse(self._sd(spec), y, d)

    def log_density(self, spec, w):
        sd = self._sd(spec)
        return -0.5 * np.sum(w * w, axis=-1) / sd**2 - w.shape[-1] * math.log(
            sd * math.sqrt(2.0 * math.pi)
        )

    def sample(self, spec, d, size, rng):
        return self._sd(spec) * rng.standard_normal((size, d))

    def symbolic_phi(self, spec, delta, bound, r, d, num):
        import sympy

        return GaussianSlab().symbolic_phi(
            spec, delta, bound, r, d, lambda x: num(x) * sympy.sqrt(2)
        )

    def variance_moments(self, spec, mu, s_u):
        v = self._sd(spec) ** 2
        return np.full_like(mu, math.log(v)), np.full_like(mu, 1.0 / v)

    def log_variance(self, spec, log_t):
        return np.full_like(log_t, 2.0 * math.log(self._sd(spec)))

    def scale_kl(self, spec, mu, s_u, d):
        return np.zeros_like(mu)

    def scale_kl_bound(self, spec, t, d, base, width, sd):
        return np.zeros_like(t)

    def engine_scale_kl_floor(self, d: int) -> float:
        return 0.0


# --------------------------------------------------------------- step 2: the engine class
class WideScale:
    """``scale_j = sqrt(2)``: no parameters, no noise, no KL."""

    hyperparameters: ClassVar[tuple[str, ...]] = ()
    noise_count = 0

    def __init__(self, reps: int, out: int, group_size: int, *, rho_init: float, kw: dict):
        self.shape, self.kw = (reps, out), kw

    def draw(self, eps: Any):
        import torch

        return torch.full(self.shape, _WIDE, **self.kw), 0.0

    def kl(self) -> float:
        return 0.0

    def expected(self, like: Any) -> Any:
        import torch

        return torch.full_like(like, _WIDE)


# --------------------------------------------------------------- step 3: the registry lines
@pytest.fixture
def wide() -> Any:
    """Register ``ss-wide`` in both registries; remove it afterwards."""
    family = register_slab(WideSlab())
    engine = pytest.importorskip("simulations.layers.registry")
    engine.register_scale_factor(family, WideScale)
    try:
        yield family
    finally:
        engine.unregister_scale_factor(family)
        unregister_slab(family)


ARCH = Architecture(5, [8, 6], [3, 2], 1.0)


def test_registration_is_undone_after_the_test(wide):
    assert wide.value == "ss-wide" and wide in families()
    assert Family("ss-wide") is wide and PriorSpec("ss-wide").slab is SLABS[wide]


def test_the_family_is_gone_without_the_fixture():
    assert "ss-wide" not in [f.value for f in families()]
    with pytest.raises(ValueError):
        Family("ss-wide")


def test_theory_rate_is_computed_for_the_new_family(wide):
    n = np.array([1e3, 1e5])
    rate = contraction_rate(ARCH, PriorSpec(wide), n)
    # N(0, 2 sigma_0^2) is the Gaussian slab at sigma_0 sqrt(2), layer by layer (the output
    # layer takes the hidden family's slab by default), so the two rates agree
    same = contraction_rate(ARCH, PriorSpec("ss-ig", sigma_0=_WIDE), n)
    np.testing.assert_allclose(rate.eps2, same.eps2, rtol=1e-12)
    np.testing.assert_allclose(rate.n_r_n, same.n_r_n, rtol=1e-12)
    assert all(np.isfinite(rate.eps2)) and rate.prior.label.startswith("ss-wide")
    assert rate.to_dict()["prior"]["prior"] == "ss-wide"
    # the symbolic rate asks the same class for its closed form
    closed = contraction_rate(ARCH, PriorSpec(wide), n, closed_form=True, inclusion="theory")
    sym = symbolic_rate(ARCH, PriorSpec(wide))
    np.testing.assert_allclose(sym.evaluate(n), closed.eps2, rtol=1e-9)


def test_generic_slab_property_tests_hold_for_the_new_family(wide):
    # the property tests of tests/theory draw from every registered family
    # (tests.theory.strategies.prior_specs); run the generic ones here on the new family
    from tests.theory import test_priors
    from tests.theory.strategies import prior_specs

    spec = PriorSpec(wide, sigma_0=0.7)
    for d, seed in ((1, 0), (4, 1)):
        test_priors.test_tail_bound_above_monte_carlo.hypothesis.inner_test(spec, d, seed)
    for r, delta, bound in ((1, 1e-3, 0.0), (5, 0.1, 2.0), (30, 1e-8, 50.0)):
        test_priors.test_sharp_bound_is_below_closed_form.hypothesis.inner_test(
            spec, r, delta, bound
        )
    from hypothesis import find

    assert find(prior_specs(), lambda drawn: drawn.prior is wide).prior is wide


def test_rate_cli_and_style_list_the_new_family(wide, capsys):
    from ssbnn_theory.cli import main

    assert main(["rate", "--n", "1e3", "--json"]) == 0
    listed = [r["prior"]["prior"] for r in json.loads(capsys.readouterr().out)]
    assert listed == ["ss-ig", "ss-gl", "ss-ghs", "ss-wide"]
    assert main(["rate", "--prior", "ss-wide", "--n", "1e3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prior"]["prior"] == "ss-wide"
    assert style.prior_color(wide) == style.OKABE_ITO["orange"]
    assert style.prior_marker("ss-wide") == "v" and style.prior_name(wide) == "SS-WIDE"


def test_engine_model_builds_and_trains_a_few_steps(wide):
    torch = pytest.importorskip("torch")
    from simulations.enums import Prior
    from simulations.model import BayesianMLP, ModelConfig

    config = ModelConfig(p=5, hidden=(8, 6), prior=("ss-wide", "ss-gl"), sigma_e=0.5)
    assert config.prior[0] is Prior("ss-wide") and config.prior[0].family is wide
    model = BayesianMLP(config, [0, 1], n=64, dtype=torch.float64)
    layer = model.hidden_layers[0]
    assert isinstance(layer.scale_factor, WideScale)
    torch.testing.assert_close(
        layer.expected_scale(), torch.full((2, 8), _WIDE, dtype=torch.float64)
    )
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 64, 5, generator=gen, dtype=torch.float64)
    y = x[..., :1] - x[..., 1:2]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        f, kl = model.forward_kl(x)
        loss = (model.likelihood.nll(f, y) + kl).sum()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert model.kl().shape == (2,)
    masks = model.sample_masks(3, [torch.Generator().manual_seed(s) for s in (5, 6)])
    assert [m.shape for m in masks] == [(3, 2, 8), (3, 2, 6)]
    assert model.mean_function(x[0]).shape == (2, 64, 1)
    # the engine's bridge to the theory (simulations.study.theory_rate): the spec of the model
    spec = PriorSpec.from_engine(config.prior[0].family, config)
    assert spec.prior is wide and spec.gaussian_output
    rate = contraction_rate(ARCH, spec, 1e4, conditions=False)
    assert math.isfinite(float(rate.eps_n[0]))
