"""Variational layers: generic checks over the registry of layer families, then family details."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from simulations.layers import (
    EdgeSpikeSlabLinear,
    InputSpike,
    MeanFieldLinear,
    NodeSpikeSlabLinear,
    _ConcreteGate,
    _GroupHorseshoeDraw,
    _GroupLassoDraw,
    _SlabLinear,
    draw_noise,
)
from simulations.relaxed import logistic_noise, relaxed_bernoulli
from ssbnn_theory.errors import InvalidParameterError
from tests.simulations.conftest import generators, randomise

D = torch.float64
R, IN, OUT, B = 2, 3, 4, 7


def make(family, dtype=D, seed=0, reps=R):
    layer = family.build(IN, OUT, generators(reps, seed), dtype)
    randomise(layer, seed + 100)
    return layer


def noise(layer, seed=1, dtype=D, reps=R):
    return draw_noise(generators(reps, seed), layer.normal_count, layer.uniform_count, dtype=dtype)


# --------------------------------------------------------------------------- the noise protocol


@pytest.mark.parametrize(("normals", "uniforms", "draws"), [(5, 3, None), (4, 0, 3), (0, 2, 2)])
def test_noise_comes_from_each_replicates_generator_normals_first(normals, uniforms, draws):
    """Draw d of replicate r: ``normals`` normals, then ``uniforms`` uniforms, from
    generator r, draw after draw; the same numbers as those calls made one by one."""
    normal, uniform = draw_noise(generators(3, 7), normals, uniforms, draws=draws, dtype=D)
    lead = () if draws is None else (draws,)
    assert normal.shape == (*lead, 3, normals) and uniform.shape == (*lead, 3, uniforms)
    for r, gen in enumerate(generators(3, 7)):
        for d in range(draws or 1):
            at = (r,) if draws is None else (d, r)
            expected_normal = torch.empty(normals, dtype=D).normal_(generator=gen)
            expected_uniform = torch.empty(uniforms, dtype=D).uniform_(generator=gen)
            assert torch.equal(normal[at], expected_normal)
            assert torch.equal(uniform[at], expected_uniform)


# --------------------------------------------------------------------------- generic checks


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_finite_gradients(family, dtype):
    layer = make(family, dtype)
    x = torch.randn(R, B, IN, dtype=dtype)
    normal, uniform = noise(layer, dtype=dtype)
    h, kl = layer.step(x, normal, uniform, 0.5)
    assert h.shape == (R, B, OUT) and h.dtype == dtype
    assert kl.shape == (R,) and kl.dtype == dtype
    assert layer(x, normal, uniform).shape == (R, B, OUT)
    (h.square().sum() + kl.sum()).backward()
    for name, p in layer.named_parameters():
        assert p.dtype == dtype and p.shape[0] == R, name
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    w, b = layer.sample_weights(generators(R, 9))
    assert w.shape == (R, OUT, IN) and b.shape == (R, OUT)
    w, b = layer.mean_weights()
    assert w.shape == (R, OUT, IN) and b.shape == (R, OUT)
    assert layer.weight_mu.shape == (R, OUT, IN) and layer.bias_rho.shape == (R, OUT)
    if family.kind == "edge":
        assert layer.weight_theta.shape == (R, OUT, IN) and layer.bias_theta.shape == (R, OUT)


def test_inclusion_probabilities(family):
    layer = make(family)
    probs = layer.inclusion_probs()
    expected = (R, OUT, IN) if family.kind == "edge" else (R, OUT)
    assert probs.shape == expected
    assert ((probs >= 0) & (probs <= 1)).all()
    assert torch.equal(layer.kept(), probs > 0.5)
    if family.kind == "dense":
        assert (probs == 1).all()
    else:
        assert 0 < probs.min() < 0.5 < probs.max() < 1  # randomised: both sides of 1/2


def test_gradients_stay_finite_at_extreme_parameters(family):
    """Inclusion logits of +-40 and rho of -30 or 30 (sd ~ 1e-13 or 30) in float32."""
    layer = make(family, torch.float32)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("theta"):
                p.copy_(40.0 * torch.sign(torch.randn(p.shape)))
            if name == "rho":
                p.copy_(30.0 * torch.sign(torch.randn(p.shape)))
    x = torch.randn(R, B, IN)
    h, kl = layer.step(x, *noise(layer, dtype=torch.float32), 0.5)
    (h.sum() + kl.sum()).backward()
    assert torch.isfinite(h).all() and torch.isfinite(kl).all()
    for name, p in layer.named_parameters():
        assert torch.isfinite(p.grad).all(), name


def _log_normal_density(x, mu, sd):
    return torch.distributions.Normal(mu, sd).log_prob(x)


def monte_carlo_kl(layer, draws: int, seed: int):
    """``E_q[log q - log p]`` per replicate, with torch.distributions densities.

    The variational family of a spike is ``q(z) q(beta | z)`` with ``q(beta | z = 0)``
    the prior, so ``beta`` contributes only where ``z = 1``.
    """
    gen = torch.Generator().manual_seed(seed)
    mu, sd = layer.mu.detach(), F.softplus(layer.rho.detach())
    beta = mu + sd * torch.randn((draws, *mu.shape), generator=gen, dtype=D)
    gauss = _log_normal_density(beta, mu, sd) - _log_normal_density(beta, 0.0, layer.sigma_0)
    total = torch.zeros(draws, layer.replicates, dtype=D)
    if isinstance(layer, MeanFieldLinear) or type(layer).__name__ == "VariationalLinear":
        return _summary(total + gauss.sum((-2, -1)))
    probs = torch.sigmoid(layer.theta.detach())
    z = (torch.rand((draws, *probs.shape), generator=gen, dtype=D) < probs).to(D)
    lam = layer.indicators.prior_inclusion
    log_ratio_z = z * torch.log(probs / lam) + (1 - z) * torch.log((1 - probs) / (1 - lam))
    if isinstance(layer, EdgeSpikeSlabLinear):
        return _summary((log_ratio_z + z * gauss).sum((-2, -1)))
    total = log_ratio_z.sum(-1) + (z * gauss.sum(-1)).sum(-1)
    scale = layer.scale_factor
    if scale.noise_count == 0:  # the Gaussian slab: no scale factors
        return _summary(total)
    if hasattr(scale, "log_tau2_mu"):
        m, s = scale.log_tau2_mu.detach(), F.softplus(scale.log_tau2_rho.detach())
        mk, sk = scale.log_kappa2_mu.detach(), F.softplus(scale.log_kappa2_rho.detach())
        tau2 = torch.exp(m + s * torch.randn((draws, *m.shape), generator=gen, dtype=D))
        kappa2 = torch.exp(mk + sk * torch.randn((draws, *mk.shape), generator=gen, dtype=D))
        log_q = torch.distributions.LogNormal(m, s).log_prob(tau2).sum(-1)
        log_q = log_q + torch.distributions.LogNormal(mk, sk).log_prob(kappa2)
        prior = torch.distributions.Gamma(scale.gamma_shape, kappa2.unsqueeze(-1) / 2)
        log_p = prior.log_prob(tau2).sum(-1)
        log_p = log_p + torch.distributions.Gamma(scale.kappa_shape, scale.kappa_rate).log_prob(
            kappa2
        )
        return _summary(total + log_q - log_p)
    m, s = scale.log_mu.detach(), F.softplus(scale.log_rho.detach())
    v = torch.exp(m + s * torch.randn((draws, *m.shape), generator=gen, dtype=D))
    log_q = torch.distributions.LogNormal(m, s).log_prob(v).sum((-2, -1))
    rate = torch.full((OUT + 1,), 1.0 / scale.local_scale**2, dtype=D)
    rate[-1] = 1.0 / scale.global_scale**2
    log_p = torch.distributions.Gamma(0.5, rate).log_prob(v[..., 0, :]).sum(-1)
    log_p = log_p + torch.distributions.InverseGamma(0.5, 1.0).log_prob(v[..., 1, :]).sum(-1)
    return _summary(total + log_q - log_p)


def _summary(samples):
    return samples.mean(0), samples.std(0) / math.sqrt(samples.shape[0])


def test_kl_matches_monte_carlo(family):
    """50k draws from q; the closed form lies within 5 standard errors of the estimate."""
    layer = make(family)
    est, se = monte_carlo_kl(layer, 50_000, seed=4)
    kl = layer.kl().detach()
    assert (torch.abs(kl - est) < 5 * se).all(), (kl, est, se)


def test_fused_step_matches_the_autograd_reference(family):
    """``step`` (fused slab pass) equals ``beta = mu + softplus(rho) eps`` through autograd,
    with ``kl()`` as the KL: values and every parameter gradient to 1e-10 (float64)."""
    x = torch.randn(R, B, IN, dtype=D)
    normal, uniform = noise(family.build(IN, OUT, generators(R), D))
    cotangent = torch.randn(R, B, OUT, dtype=D)
    grads = []
    for fused in (True, False):
        layer = make(family)
        if fused:
            h, kl = layer.step(x, normal, uniform, 0.7)
        else:
            beta = layer._beta(normal)
            if family.kind == "edge":
                u = layer._uniform(uniform)
                beta = beta * relaxed_bernoulli(layer.theta, logistic_noise(u), 0.7)
            h = torch.baddbmm(beta[..., -1].unsqueeze(1), x, beta[..., :-1].transpose(1, 2))
            if family.kind == "node":
                h = h * layer._gate(normal, uniform, 0.7)[0].unsqueeze(1)
            kl = layer.kl()
        ((h * cotangent).sum() + (kl * torch.tensor([0.3, 1.7], dtype=D)).sum()).backward()
        grads.append((h.detach(), kl.detach(), [p.grad.clone() for p in layer.parameters()]))
    (h1, kl1, g1), (h2, kl2, g2) = grads
    torch.testing.assert_close(h1, h2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(kl1, kl2, rtol=1e-10, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_replicates_do_not_interact(family):
    """Changing replicate 1's parameters and noise leaves replicate 0 bitwise unchanged."""
    results = []
    for other in (0, 1):
        layer = make(family)
        x = torch.randn(R, B, IN, dtype=D, generator=torch.Generator().manual_seed(8))
        normal, uniform = noise(layer)
        if other:
            with torch.no_grad():
                for p in layer.parameters():
                    p[1].mul_(-3.0).add_(1.0)
            normal[1], uniform[1], x[1] = 5 * normal[1], uniform[1] ** 3, -x[1]
        h, kl = layer.step(x, normal, uniform, 0.5)
        (h.square().sum() + kl.sum()).backward()
        results.append((h[0], kl[0], [p.grad[0].clone() for p in layer.parameters()]))
    (h1, kl1, g1), (h2, kl2, g2) = results
    assert torch.equal(h1, h2) and torch.equal(kl1, kl2)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2, strict=True))


def test_exact_draws_switch_groups_with_the_inclusion_probabilities(family):
    """Over 20k draws a node (edge) is on with frequency pi, within 5 binomial sds."""
    layer = make(family)
    draws = 20_000
    normal, uniform = draw_noise(
        generators(R, 2), layer.normal_count, layer.uniform_count, draws=draws, dtype=D
    )
    with torch.no_grad():
        w, b = layer.weights_from_noise(normal, uniform)
    assert w.shape == (draws, R, OUT, IN)
    if family.kind == "dense":
        assert (w != 0).all()
        return
    on = (w != 0).double().mean(0)
    if family.kind == "node":
        on = ((w != 0).any(-1) | (b != 0)).double().mean(0)
    p = layer.inclusion_probs()
    assert (torch.abs(on - p) < 5 * torch.sqrt(p * (1 - p) / draws) + 1e-12).all()


def test_mean_weights_are_the_kept_variational_means(family):
    layer = make(family)
    w, b = layer.mean_weights()
    kept = layer.kept()
    mu_w, mu_b = layer.weight_mu.detach(), layer.bias_mu.detach()
    if family.kind == "dense":
        assert torch.equal(w, mu_w) and torch.equal(b, mu_b)
    elif family.kind == "edge":
        assert torch.equal(w, mu_w * kept)
    else:
        scale = layer.expected_scale()
        torch.testing.assert_close(w, mu_w * (kept * scale).unsqueeze(-1))
        torch.testing.assert_close(b, mu_b * kept * scale)
        assert (w[~kept] == 0).all()


def test_draw_noise_is_per_replicate():
    base = draw_noise(generators(3, 0), 5, 2, draws=4)
    other = generators(3, 0)
    other[1].manual_seed(999)
    changed = draw_noise(other, 5, 2, draws=4)
    for i in (0, 1):
        assert torch.equal(base[i][:, 0], changed[i][:, 0])
        assert torch.equal(base[i][:, 2], changed[i][:, 2])
        assert not torch.equal(base[i][:, 1], changed[i][:, 1])
    single = draw_noise(generators(1, 0), 5, 2, draws=4)
    assert torch.equal(single[0][:, 0], base[0][:, 0])


# --------------------------------------------------------------------------- fused slab kernel


@pytest.mark.parametrize("batch", [3, 17])
def test_fused_slab_passes_gradcheck(batch):
    """Both gating branches (weights when ``in + 1 <= B``, else outputs), float64 gradcheck."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, batch, 5, dtype=D, generator=gen, requires_grad=True)
    mu = torch.randn(2, 4, 6, dtype=D, generator=gen, requires_grad=True)
    rho = (torch.randn(2, 4, 6, dtype=D, generator=gen) - 1).requires_grad_()
    eps = torch.randn(2, 4, 6, dtype=D, generator=gen)
    gate = torch.rand(2, 4, dtype=D, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda *a: _SlabLinear.apply(a[0], a[1], a[2], eps, a[3], 0.7), (x, mu, rho, gate)
    )
    assert torch.autograd.gradcheck(
        lambda *a: _SlabLinear.apply(a[0], a[1], a[2], eps, None, 0.7), (x, mu, rho)
    )


# --------------------------------------------------------------------------- scale factors


@pytest.mark.parametrize(("slab", "width"), [("ss-gl", None), ("ss-ghs", None), ("ss-ghs", 1.3)])
def test_expected_scale_matches_monte_carlo(slab, width):
    """E_q[scale] (closed form, or 32-point Gauss-Hermite when regularised) against 200k
    draws of the scale through the layer's own sampler: within 5 standard errors."""
    layer = NodeSpikeSlabLinear(
        IN, OUT, generators(R), slab=slab, slab_width=width, prior_inclusion=0.3, dtype=D
    )
    randomise(layer, 5)
    draws = 200_000
    normal, _ = draw_noise(generators(R, 3), layer.normal_count, 0, draws=draws, dtype=D)
    with torch.no_grad():
        scale, _ = layer._draw_scale(normal)
    est, se = _summary(scale)
    assert (torch.abs(layer.expected_scale() - est) < 5 * se).all()


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_horseshoe_factors_give_a_half_cauchy(scale):
    """``sqrt(a b)`` with ``a ~ Gamma(1/2, rate 1/A^2)`` and ``b ~ InvGamma(1/2, 1)`` read from
    the layer's prior tables is ``C+(0, A)``: KS test on 20k draws, p > 0.001."""
    layer = NodeSpikeSlabLinear(
        IN, OUT, generators(1), slab="ss-ghs", local_scale=scale, global_scale=0.003, dtype=D
    )
    table = layer.scale_factor
    torch.manual_seed(0)
    a = torch.distributions.Gamma(0.5, table.prior_rate[0]).sample((20_000,))
    b = torch.distributions.InverseGamma(0.5, 1.0).sample((20_000,))
    assert stats.kstest(torch.sqrt(a * b).numpy(), stats.halfcauchy(scale=scale).cdf).pvalue > 1e-3
    g = torch.distributions.Gamma(0.5, table.prior_rate[-1]).sample((20_000,))
    assert stats.kstest(torch.sqrt(g * b).numpy(), stats.halfcauchy(scale=0.003).cdf).pvalue > 1e-3


def test_initial_network_is_the_kaiming_network():
    """At initialisation every node is on with probability 0.99, ``g tau = 1`` (GHS) and
    ``tau^2 = 1`` (GL), and ``mu`` is uniform on ``[-1/sqrt(in), 1/sqrt(in)]``."""
    for slab in ("ss-gl", "ss-ghs"):
        layer = NodeSpikeSlabLinear(50, 6, generators(3), slab=slab, slab_width=None, dtype=D)
        torch.testing.assert_close(layer.inclusion_probs(), torch.full((3, 6), 0.99, dtype=D))
        mean, _ = layer.scale_factor.log_scale_moments()
        torch.testing.assert_close(mean, torch.zeros_like(mean))
        assert layer.mu.abs().max() <= 1 / math.sqrt(50)
        assert not torch.equal(layer.mu[0], layer.mu[1])


# --------------------------------------------------------------------------- frozen masks


@pytest.mark.parametrize("kind", ["node", "edge", "input"])
def test_frozen_masks_fix_the_structure(kind):
    gens = generators(R)
    if kind == "node":
        layer = NodeSpikeSlabLinear(IN, OUT, gens, slab="ss-ig", prior_inclusion=0.2, dtype=D)
    elif kind == "edge":
        layer = EdgeSpikeSlabLinear(IN, OUT, gens, prior_inclusion=0.2, dtype=D)
    else:
        layer = InputSpike(IN, R, prior_inclusion=0.2, dtype=D)
    randomise(layer, 1)
    before = layer.inclusion_probs()
    layer.indicators.freeze()
    after = layer.inclusion_probs()
    assert torch.equal(after, (before > 0.5).to(D))
    lam = 0.2
    expected = -(after * math.log(lam) + (1 - after) * math.log(1 - lam))
    if kind == "input":
        torch.testing.assert_close(layer.kl(), expected.sum(-1))
        assert torch.equal(layer.gate(None, 0.5), after)
    elif kind == "node":
        torch.testing.assert_close(layer.kl(), expected.sum(-1) + (after * layer.slab_kl()).sum(-1))
    layer.indicators.unfreeze()
    assert torch.equal(layer.inclusion_probs(), before)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda g: MeanFieldLinear(0, 2, g), "in_features"),
        (lambda g: MeanFieldLinear(2, 2, []), "generators"),
        (lambda g: MeanFieldLinear(2, 2, g, sigma_0=0.0), "sigma_0"),
        (lambda g: MeanFieldLinear(2, 2, g, rho_init=float("nan")), "rho_init"),
        (lambda g: NodeSpikeSlabLinear(2, 2, g, slab="edge-ss"), "slab"),
        (lambda g: NodeSpikeSlabLinear(2, 2, g, slab="ridge"), "slab"),
        (lambda g: NodeSpikeSlabLinear(2, 2, g, prior_inclusion=1.0), "prior_inclusion"),
        (lambda g: NodeSpikeSlabLinear(2, 2, g, inclusion_init=0.0), "inclusion_init"),
        (lambda g: NodeSpikeSlabLinear(2, 2, g, slab="ss-ghs", global_scale=-1), "global_scale"),
        (lambda g: NodeSpikeSlabLinear(2, 2, g, slab="ss-ghs", slab_width=0), "slab_width"),
        (lambda g: NodeSpikeSlabLinear(2, 2, g, slab="ss-gl", kappa_rate=0), "kappa_rate"),
        (lambda g: EdgeSpikeSlabLinear(2, 2, g, prior_inclusion=-0.1), "prior_inclusion"),
        (lambda g: InputSpike(2, 1, prior_inclusion=2.0), "input_inclusion"),
    ],
)
def test_bad_options_name_the_field(build, field):
    with pytest.raises(InvalidParameterError) as err:
        build(generators(1))
    assert err.value.field == field


# --------------------------------------------------------------------------- fused gates


def _reference_gate(layer, normal, uniform, temperature):
    """The node gate and the layer's KL through autograd alone (relaxed_bernoulli, the scale
    factor's closed-form KL), for comparison with the fused functions."""
    ind = layer.indicators
    z = relaxed_bernoulli(
        ind.theta, logistic_noise(uniform), temperature, straight_through=ind.straight_through
    )
    scale_kl = 0.0
    factor = layer.scale_factor
    eps = normal[..., layer.slab_normal_count :]
    if layer.slab == "ss-gl":
        s_tau = F.softplus(factor.log_tau2_rho)
        z = z * torch.exp(0.5 * torch.addcmul(factor.log_tau2_mu, s_tau, eps))
        scale_kl = factor._kl(s_tau, F.softplus(factor.log_kappa2_rho))
    elif layer.slab == "ss-ghs":
        sd = F.softplus(factor.log_rho)
        mean, total_sd = factor._moments_all(sd)
        v = torch.addcmul(mean, total_sd, eps)
        z = z * factor.scale(v[..., :-1] + v[..., -1:])
        scale_kl = factor._kl(sd)
    kl = (torch.sigmoid(ind.theta) * layer.slab_kl()).sum(-1) + ind.kl().sum(-1) + scale_kl
    return z, kl


@pytest.mark.parametrize(
    ("slab", "width", "straight_through"),
    [
        ("ss-ig", None, True),
        ("ss-gl", None, True),
        ("ss-gl", None, False),
        ("ss-ghs", None, True),
        ("ss-ghs", 1.3, True),
        ("ss-ghs", 1.3, False),
    ],
)
def test_fused_gate_matches_autograd(slab, width, straight_through):
    """The fused indicator and scale functions give the autograd values and gradients of
    every parameter (float64, 1e-10)."""
    x = torch.randn(R, B, IN, dtype=D)
    results = []
    for fused in (True, False):
        layer = NodeSpikeSlabLinear(
            IN, OUT, generators(R), slab=slab, slab_width=width, prior_inclusion=0.3,
            straight_through=straight_through, dtype=D,
        )  # fmt: skip
        randomise(layer, 5)
        normal, uniform = noise(layer)
        if fused:
            gate, kl = layer._gate(normal, uniform, 0.6)[0], layer.step(x, normal, uniform, 0.6)[1]
        else:
            gate, kl = _reference_gate(layer, normal, uniform, 0.6)
        weights = torch.randn(R, OUT, dtype=D, generator=torch.Generator().manual_seed(3))
        ((gate * weights).sum() + (kl * torch.tensor([0.3, 1.7], dtype=D)).sum()).backward()
        results.append(
            (gate.detach(), kl.detach(), {n: p.grad for n, p in layer.named_parameters()})
        )
    (g1, kl1, grads1), (g2, kl2, grads2) = results
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(kl1, kl2, rtol=1e-10, atol=1e-12)
    for name in grads1:
        torch.testing.assert_close(grads1[name], grads2[name], rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("width", [None, 1.3])
def test_fused_scale_functions_pass_gradcheck(width):
    """float64 gradcheck of the group-lasso and horseshoe draws (scale and KL outputs),
    with one leading draw axis on the normals."""
    gen = torch.Generator().manual_seed(0)
    m, rho = torch.randn(2, 3, dtype=D, generator=gen), torch.randn(2, 3, dtype=D, generator=gen)
    mk, rhok = torch.randn(2, dtype=D, generator=gen), torch.randn(2, dtype=D, generator=gen)
    eps = torch.randn(4, 2, 3, dtype=D, generator=gen)
    args = [t.requires_grad_() for t in (m, rho, mk, rhok)]
    assert torch.autograd.gradcheck(lambda *a: _GroupLassoDraw.apply(*a, eps, 2.5, 1.0, 1e-1), args)
    log_mu = torch.randn(2, 2, 4, dtype=D, generator=gen, requires_grad=True)
    log_rho = torch.randn(2, 2, 4, dtype=D, generator=gen, requires_grad=True)
    rate = torch.rand(4, dtype=D, generator=gen) + 0.5
    sign = torch.tensor([[1.0], [-1.0]], dtype=D)
    rows = (sign, torch.stack((rate, torch.ones_like(rate))), torch.stack((rate.log(), 0 * rate)))
    eps4 = torch.randn(3, 2, 4, dtype=D, generator=gen)
    assert torch.autograd.gradcheck(
        lambda a, b: _GroupHorseshoeDraw.apply(a, b, rows, eps4, width), (log_mu, log_rho)
    )


@pytest.mark.parametrize("straight_through", [True, False])
def test_concrete_gate_passes_gradcheck(straight_through):
    gen = torch.Generator().manual_seed(1)
    theta = torch.randn(2, 5, dtype=D, generator=gen, requires_grad=True)
    u = torch.rand(2, 5, dtype=D, generator=gen)
    fn = lambda t: _ConcreteGate.apply(t, u, 0.7, straight_through, 0.2)[1:]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (theta,))
    if not straight_through:
        assert torch.autograd.gradcheck(
            lambda t: _ConcreteGate.apply(t, u, 0.7, False, 0.2)[0], (theta,)
        )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("slab", ["ss-gl", "ss-ghs"])
def test_fused_gate_on_cuda_matches_cpu(slab):
    """The fused slab, indicator and scale functions on the GPU give the CPU's values and
    gradients (float64, same parameters and noise)."""
    x = torch.randn(R, B, IN, dtype=D)
    results = []
    for device in ("cpu", "cuda"):
        layer = NodeSpikeSlabLinear(IN, OUT, generators(R), slab=slab, dtype=D)
        randomise(layer, 5)
        layer = layer.to(device)
        normal, uniform = noise(layer)
        h, kl = layer.step(x.to(device), normal.to(device), uniform.to(device), 0.6)
        (h.square().sum() + kl.sum()).backward()
        results.append([t.detach().cpu() for t in (h, kl, *(p.grad for p in layer.parameters()))])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
