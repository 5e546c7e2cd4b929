"""Variational linear layers with a leading replicate axis, one class per prior family.

Every parameter carries the replicate axis first: weights ``[R, out, in]`` (node
``j``'s incoming weights are row ``j``), biases ``[R, out]``. Inputs are
``[R, batch, in]`` and outputs ``[R, batch, out]``. Replicate ``r`` draws its
initial values and all its noise from its own generator, so replicate ``r`` of a
batched layer equals an ``R = 1`` layer built with the same generator.

Families (``docs/engine.md``, "Layers", has the full parameterisation):

* :class:`NodeSpikeSlabLinear` — node spike-and-slab, non-centred:
  ``w_j = z_j * scale_j * beta_j`` for the group ``w_j = (W[j, :], b[j])``, with
  ``z_j ~ Bernoulli(sigmoid(theta_j))`` and ``beta_j ~ N(mu_j, softplus(rho_j)^2)``.
  The slab (``Prior.SS_IG``, ``SS_GL``, ``SS_GHS``) decides ``scale_j``:
  1 (Gaussian slab), ``tau_j`` (group lasso) or ``g tau_j`` (group horseshoe,
  regularised when a slab width ``c`` is given).
* :class:`EdgeSpikeSlabLinear` — one inclusion indicator per weight and bias,
  Gaussian slab (Bai, Song & Cheng 2020).
* :class:`MeanFieldLinear` — dense mean-field Gaussian (Bayes by backprop); also
  the output layer of every model.

Noise protocol: a layer consumes ``normal_count`` standard normals and
``uniform_count`` uniforms per replicate per draw. Callers pass them as
``[..., R, count]`` tensors (see :func:`draw_noise`), so one generator call per
replicate serves a whole network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simulations.enums import Prior
from simulations.kl import (
    _HALF_LOG_2PI_PLUS_HALF,
    LogProbability,
    bernoulli_logs,
    kl_bernoulli,
    kl_lognormal_gamma,
    kl_lognormal_invgamma,
    kl_normal,
)
from simulations.relaxed import logistic_noise, relaxed_bernoulli
from ssbnn_theory.enums import parse_enum
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "EdgeSpikeSlabLinear",
    "InputSpike",
    "MeanFieldLinear",
    "NodeSpikeSlabLinear",
    "VariationalLinear",
    "draw_noise",
    "replicate_generators",
]

# Gauss-Hermite rule for E[h(v)], v ~ N(M, S^2), of the smooth bounded regularised scale.
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(32)


def replicate_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list:
    """One ``torch.Generator`` per replicate on ``device``, seeded with ``seeds[r]``."""
    gens = []
    for seed in seeds:
        gen = torch.Generator(device=device)
        gen.manual_seed(int(seed))
        gens.append(gen)
    return gens


def draw_noise(
    generators: Sequence[torch.Generator],
    normal_count: int,
    uniform_count: int,
    *,
    draws: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard normals ``[R, normal_count]`` and uniforms ``[R, uniform_count]``.

    Replicate ``r``'s values come from ``generators[r]`` alone, normals first, so
    they do not depend on the other replicates. With ``draws`` the shapes are
    ``[draws, R, count]``, drawn draw by draw.
    """
    lead = () if draws is None else (draws,)
    reps = len(generators)
    normal = torch.empty((*lead, reps, normal_count), dtype=dtype, device=device)
    uniform = torch.empty((*lead, reps, uniform_count), dtype=dtype, device=device)
    for d in range(draws or 1):
        for r, gen in enumerate(generators):
            idx = (d, r) if draws is not None else (r,)
            if normal_count:
                normal[idx].normal_(generator=gen)
            if uniform_count:
                uniform[idx].uniform_(generator=gen)
    return normal, uniform


def _check_int(value: object, field: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InvalidParameterError(field, f"an integer >= {low}", value)
    return int(value)


def _check_positive(value: object, field: str) -> float:
    if not isinstance(value, int | float | np.floating) or not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(field, "a finite number > 0", value)
    return float(value)


def _check_probability(value: object, field: str) -> float:
    if isinstance(value, LogProbability):
        if not (math.isfinite(value) and value < 0):
            raise InvalidParameterError(field, "a log probability in (-inf, 0)", float(value))
        return value
    if not isinstance(value, int | float | np.floating) or not (0.0 < value < 1.0):
        raise InvalidParameterError(field, "a probability in (0, 1)", value)
    return float(value)


class _Indicators(nn.Module):
    """Inclusion indicators ``z ~ Bernoulli(sigmoid(theta))`` of one spike, any shape ``[R, ...]``.

    Prior ``Bernoulli(lambda)``; ``theta`` initialised at ``logit(inclusion_init)``. A
    training pass uses relaxed samples (:func:`simulations.relaxed.relaxed_bernoulli`);
    after :meth:`freeze` the indicators are the 0/1 mask of the kept entries
    (``pi > 1/2``), ``q(z)`` a point mass, until :meth:`unfreeze`.
    """

    def __init__(self, shape, *, prior_inclusion, inclusion_init, straight_through, field, kw):
        super().__init__()
        self.prior_inclusion = _check_probability(prior_inclusion, field)
        init = _check_probability(inclusion_init, "inclusion_init")
        self.straight_through = bool(straight_through)
        self.theta = nn.Parameter(torch.full(shape, math.log(init / (1 - init)), **kw))
        self.register_buffer("frozen_mask", None)

    def probs(self) -> torch.Tensor:
        """``pi = sigmoid(theta)`` (differentiable), or the frozen mask."""
        return torch.sigmoid(self.theta) if self.frozen_mask is None else self.frozen_mask

    def sample(self, uniform: torch.Tensor | None, temperature: float) -> torch.Tensor:
        """A training pass's indicators: relaxed samples from ``uniform``, or the frozen mask."""
        if self.frozen_mask is not None:
            return self.frozen_mask
        noise = logistic_noise(uniform)
        return relaxed_bernoulli(
            self.theta, noise, temperature, straight_through=self.straight_through
        )

    def sample_kl(
        self, uniform: torch.Tensor | None, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A training pass's indicators, their elementwise KL and ``pi``, ``[R, ...]`` each.

        Equals ``(sample(uniform, temperature), kl(), probs())`` in values and gradients
        (:class:`_ConcreteGate` computes the three in one pass with an explicit backward).
        """
        if self.frozen_mask is not None:
            return self.frozen_mask, self.kl(), self.frozen_mask
        if not isinstance(temperature, torch.Tensor):
            temperature = float(temperature)
        return _ConcreteGate.apply(
            self.theta, uniform, temperature, self.straight_through, self.prior_inclusion
        )

    def exact(self, uniform: torch.Tensor) -> torch.Tensor:
        """An exact draw ``1{u < pi}`` (``[..., R, ...]``)."""
        return (uniform < self.probs()).to(self.theta.dtype)

    def kl(self) -> torch.Tensor:
        """Elementwise ``KL(Bern(pi) || Bern(lambda))``; once frozen, the point-mass KL
        ``-log lambda`` where the mask is 1 and ``-log(1 - lambda)`` where it is 0."""
        if self.frozen_mask is None:
            return kl_bernoulli(self.theta, self.prior_inclusion)
        log_in, log_out = bernoulli_logs(self.prior_inclusion)
        return -(self.frozen_mask * log_in + (1.0 - self.frozen_mask) * log_out)

    def freeze(self) -> None:
        """Fix the indicators at the kept entries (``pi > 1/2``)."""
        self.frozen_mask = (self.probs() > 0.5).to(self.theta.dtype).detach()

    def unfreeze(self) -> None:
        """Return to relaxed indicators."""
        self.frozen_mask = None


def _sum_to(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``grad`` summed over the leading (draw) axes that ``like`` lacks."""
    return grad if grad.shape == like.shape else grad.sum_to_size(like.shape)


class _ConcreteGate(torch.autograd.Function):
    """Relaxed indicators, their Bernoulli KL and ``pi`` in one pass, with an explicit backward.

    Inputs ``theta [R, ...]``, uniforms ``u`` of the same shape, the temperature ``t``,
    ``straight_through`` and the prior inclusion ``lambda``. With ``a = theta + logit(u)``,
    ``soft = sigmoid(a / t)`` and ``pi = sigmoid(theta)`` it returns

        z  = 1{a > 0} (straight-through) or soft,
        kl = pi (theta - logit lambda) + logsigmoid(-theta) - log(1 - lambda),
        pi,

    the values of :func:`simulations.relaxed.relaxed_bernoulli` and
    :func:`simulations.kl.kl_bernoulli`. Backward: ``dz/dtheta = soft (1 - soft) / t``
    (the Concrete gradient, also under straight-through), ``dkl/dtheta = pi (1 - pi)
    (theta - logit lambda)``, ``dpi/dtheta = pi (1 - pi)``: about ten operations where
    autograd records some forty (``docs/engine.md``, "Performance").
    """

    @staticmethod
    def forward(ctx, theta, uniform, temperature, straight_through, prior_inclusion):
        logits = theta + logistic_noise(uniform)
        soft = torch.sigmoid(logits / temperature)
        z = (logits > 0).to(soft.dtype) if straight_through else soft
        pi = torch.sigmoid(theta)
        log_in, log_out = bernoulli_logs(prior_inclusion)
        logit_p = log_in - log_out
        centred = theta - logit_p
        kl = pi * centred + F.logsigmoid(-theta) - log_out
        ctx.temperature = temperature
        ctx.save_for_backward(soft, pi, centred)
        ctx.set_materialize_grads(False)
        return z, kl, pi

    @staticmethod
    def backward(ctx, grad_z, grad_kl, grad_pi):
        soft, pi, centred = ctx.saved_tensors
        grad = None
        if grad_z is not None:
            grad = grad_z * (1.0 - soft) * soft / ctx.temperature
        if grad_kl is not None or grad_pi is not None:
            dpi = (1.0 - pi) * pi
            outer = grad_kl * centred if grad_kl is not None else None
            if grad_pi is not None:
                outer = grad_pi if outer is None else outer + grad_pi
            term = outer * dpi
            grad = term if grad is None else grad + term
        return grad, None, None, None, None


class _GroupLassoDraw(torch.autograd.Function):
    """A draw of the group-lasso scales and their KL, with an explicit backward.

    Inputs ``m, rho [R, out]`` (``log tau^2``), ``m_k, rho_k [R]`` (``log kappa^2``), the
    normals ``eps [..., R, out]`` and the constants ``(d + 1)/2, a, b``. With
    ``s = softplus(rho)``, ``E_j = exp(m_j + s_j^2/2)``, ``E_k = exp(m_k + s_k^2/2)`` and
    ``r = E_k / 2`` (``E_q[kappa^2 / 2]``) it returns ``tau = exp((m + s eps)/2)`` and
    :meth:`_GroupLassoScale.kl` (the same expressions). Backward:

        dKL/dm_j   = r E_j - (d + 1)/2,      dKL/ds_j   = r E_j s_j - 1/s_j,
        dKL/dm_k   = sum_j r E_j - out (d + 1)/2 + b E_k - a,
        dKL/ds_k   = (sum_j r E_j + b E_k) s_k - 1/s_k,     ds/drho = sigmoid(rho).
    """

    @staticmethod
    def forward(ctx, m, rho, m_k, rho_k, eps, shape, kappa_shape, kappa_rate):
        s, s_k = F.softplus(rho), F.softplus(rho_k)
        scale = torch.exp(0.5 * torch.addcmul(m, s, eps))
        e_k = torch.exp(m_k + 0.5 * s_k.square())
        rate = (0.5 * e_k).unsqueeze(-1)
        rate_e = rate * torch.exp(m + 0.5 * s.square())
        # kl_lognormal_gamma's expression, term by term, for the local and global factors
        local = (
            math.lgamma(shape) - torch.log(s) - _HALF_LOG_2PI_PLUS_HALF
            - shape * ((m_k - math.log(2.0)).unsqueeze(-1) + m) + rate_e
        )  # fmt: skip
        glob = kl_lognormal_gamma(m_k, s_k, kappa_shape, kappa_rate)
        ctx.constants = (shape, kappa_shape, kappa_rate)
        ctx.save_for_backward(rho, rho_k, s, s_k, eps, scale, e_k, rate_e)
        ctx.set_materialize_grads(False)
        return scale, local.sum(-1) + glob

    @staticmethod
    def backward(ctx, grad_scale, grad_kl):
        rho, rho_k, s, s_k, eps, scale, e_k, rate_e = ctx.saved_tensors
        shape, kappa_shape, kappa_rate = ctx.constants
        grad_m = grad_s = grad_mk = grad_sk = None
        if grad_scale is not None:
            half = grad_scale * scale * 0.5
            grad_m, grad_s = _sum_to(half, rate_e), _sum_to(half * eps, rate_e)
        if grad_kl is not None:
            gk = grad_kl.unsqueeze(-1)
            km = gk * (rate_e - shape)
            ks = gk * (rate_e * s - torch.reciprocal(s))
            grad_m = km if grad_m is None else grad_m + km
            grad_s = ks if grad_s is None else grad_s + ks
            total, global_e = rate_e.sum(-1), kappa_rate * e_k
            out = rate_e.shape[-1]
            grad_mk = grad_kl * (total + global_e - (out * shape + kappa_shape))
            grad_sk = grad_kl * ((total + global_e) * s_k - torch.reciprocal(s_k))
        grad_rho = None if grad_s is None else grad_s * torch.sigmoid(rho)
        grad_rho_k = None if grad_sk is None else grad_sk * torch.sigmoid(rho_k)
        return grad_m, grad_rho, grad_mk, grad_rho_k, None, None, None, None


class _GroupHorseshoeDraw(torch.autograd.Function):
    """A draw of the (regularised) horseshoe scales and their KL, with an explicit backward.

    Inputs ``log_mu, log_rho [R, 2, out + 1]`` (row 0 the Gamma factors, row 1 the
    inverse-Gamma factors, last column the global), the Gamma rows' prior rates
    ``[out + 1]``, the normals ``eps [..., R, out + 1]`` and the slab width ``c`` (or
    ``None``). With ``sd = softplus(log_rho)``, ``M = sum_rows log_mu / 2``,
    ``S = sqrt(sum_rows sd^2) / 2``, ``v = M + S eps`` and ``w_j = v_j + v_g`` it returns
    ``scale_j = h(w_j)`` (``h = exp``, or ``exp(w - softplus(2 (w - log c)) / 2)``) and
    :meth:`_GroupHorseshoeScale.kl`. Backward: ``h'(w) = h(w)`` or
    ``h(w) (1 - sigmoid(2 (w - log c)))``; ``dS/dsd = sd / (4 S)``; the Gamma row's
    ``dKL/dmu = rate E - 1/2``, ``dKL/dsd = rate E sd - 1/sd`` with ``E = exp(mu + sd^2/2)``,
    the inverse-Gamma row's ``dKL/dmu = 1/2 - E'``, ``dKL/dsd = E' sd - 1/sd`` with
    ``E' = exp(sd^2/2 - mu)``.
    """

    @staticmethod
    def forward(ctx, log_mu, log_rho, prior_rate, eps, slab_width):
        sd = F.softplus(log_rho)
        mean = 0.5 * log_mu.sum(-2)
        total_sd = 0.5 * torch.sqrt(sd.square().sum(-2))
        v = torch.addcmul(mean, total_sd, eps)
        w = v[..., :-1] + v[..., -1:]
        if slab_width is None:
            scale = torch.exp(w)
            slope = None
        else:
            shifted = 2.0 * (w - math.log(slab_width))
            scale = torch.exp(w - 0.5 * F.softplus(shifted))
            slope = torch.sigmoid(-shifted)  # 1 - sigmoid(shifted)
        mu0, mu1, sd0, sd1 = log_mu[..., 0, :], log_mu[..., 1, :], sd[..., 0, :], sd[..., 1, :]
        gamma = kl_lognormal_gamma(mu0, sd0, 0.5, prior_rate)
        inverse = kl_lognormal_invgamma(mu1, sd1, 0.5, 1.0)
        ctx.save_for_backward(log_mu, log_rho, prior_rate, eps, sd, total_sd, scale, slope)
        ctx.set_materialize_grads(False)
        return scale, (gamma + inverse).sum(-1)

    @staticmethod
    def backward(ctx, grad_scale, grad_kl):
        log_mu, log_rho, prior_rate, eps, sd, total_sd, scale, slope = ctx.saved_tensors
        grad_mu = grad_sd = None
        if grad_scale is not None:
            grad_w = grad_scale * scale if slope is None else grad_scale * scale * slope
            grad_v = torch.cat((grad_w, grad_w.sum(-1, keepdim=True)), -1)
            grad_mean = _sum_to(grad_v, total_sd)
            grad_total = _sum_to(grad_v * eps, total_sd)
            grad_mu = (0.5 * grad_mean).unsqueeze(-2).expand_as(log_mu).contiguous()
            grad_sd = (grad_total * 0.25 / total_sd).unsqueeze(-2) * sd
        if grad_kl is not None:
            gk = grad_kl.unsqueeze(-1)
            mu0, mu1, sd0, sd1 = log_mu[..., 0, :], log_mu[..., 1, :], sd[..., 0, :], sd[..., 1, :]
            e0 = prior_rate * torch.exp(mu0 + 0.5 * sd0.square())
            e1 = torch.exp(0.5 * sd1.square() - mu1)
            kl_mu = torch.stack((e0 - 0.5, 0.5 - e1), -2) * gk.unsqueeze(-2)
            kl_sd = torch.stack((e0 * sd0, e1 * sd1), -2) - torch.reciprocal(sd)
            kl_sd = kl_sd * gk.unsqueeze(-2)
            grad_mu = kl_mu if grad_mu is None else grad_mu + kl_mu
            grad_sd = kl_sd if grad_sd is None else grad_sd + kl_sd
        grad_rho = None if grad_sd is None else grad_sd * torch.sigmoid(log_rho)
        return grad_mu, grad_rho, None, None, None


class _SlabLinear(torch.autograd.Function):
    """Fused training pass of a Gaussian-slab layer: a sample and the slab KL, explicit backward.

    Inputs: ``x [R, B, in]``, group parameters ``mu, rho [R, out, in + 1]`` (weights,
    then the bias), standard normals ``eps`` of the same shape, an optional node
    gate ``g [R, out]`` and ``sigma_0``. With ``sd = softplus(rho)``:

        beta = mu + sd * eps
        h    = (x beta_w^T + beta_b) * g   (g multiplies the weights or the outputs,
                                            whichever is smaller; the two are equal)
        kl_j = sum_i [ log sigma_0 - log sd_ji + (sd_ji^2 + mu_ji^2) / (2 sigma_0^2) - 1/2 ]

    Outputs ``h [R, B, out]`` and ``kl [R, out]``. The backward pass applies

        dh/dbeta via two batched matmuls,  dkl/dmu = mu / sigma_0^2,
        dkl/dsd = sd / sigma_0^2 - 1 / sd,  dsd/drho = sigmoid(rho),

    in a handful of operations on the ``[R, out, in + 1]`` tensors where autograd
    would record several dozen (``docs/engine.md``, "Performance").
    ``tests/simulations/test_layers.py`` checks values and gradients against
    autograd through :func:`simulations.kl.kl_normal`.
    """

    @staticmethod
    def forward(ctx, x, mu, rho, eps, gate, sigma_0):
        sd = F.softplus(rho)
        beta = torch.addcmul(mu, sd, eps)
        # Gate whichever is smaller: the weights [out, in + 1] or the outputs [B, out].
        gate_weights = gate is not None and mu.shape[-1] <= x.shape[-2]
        weight = beta * gate.unsqueeze(-1) if gate_weights else beta
        # Feature-major product W x^T ([R, out, B], returned as an [R, B, out] view): faster
        # than x W^T for skinny layers, and the next layer's x^T is then contiguous.
        pre = torch.baddbmm(weight[..., -1].unsqueeze(-1), weight[..., :-1], x.transpose(-1, -2))
        h = pre * gate.unsqueeze(-1) if gate is not None and not gate_weights else pre
        var0 = sigma_0 * sigma_0
        const = mu.shape[-1] * (math.log(sigma_0) - 0.5)
        square = torch.addcmul(sd * sd, mu, mu).sum(-1)
        kl = square.mul_(0.5 / var0).sub_(torch.log(sd).sum(-1)).add_(const)
        ctx.sigma_0, ctx.gate_weights = sigma_0, gate_weights
        ctx.save_for_backward(x, mu, rho, eps, sd, beta, weight, pre, gate)
        ctx.set_materialize_grads(False)
        return h.transpose(-1, -2), kl

    @staticmethod
    def backward(ctx, grad_h, grad_kl):
        x, mu, rho, eps, sd, beta, weight, pre, gate = ctx.saved_tensors
        var0 = ctx.sigma_0 * ctx.sigma_0
        grad_x = grad_gate = None
        if grad_h is None:
            grad_beta = torch.zeros_like(beta)
        else:
            grad_h = grad_h.transpose(-1, -2)  # feature-major, as pre
            gated_out = gate is not None and not ctx.gate_weights
            grad_pre = grad_h * gate.unsqueeze(-1) if gated_out else grad_h
            if gated_out and ctx.needs_input_grad[4]:
                grad_gate = (grad_h * pre).sum(-1)
            if torch.compiler.is_compiling():  # out= into views breaks a compiled graph
                grad_weight = torch.cat((grad_pre @ x, grad_pre.sum(-1, keepdim=True)), -1)
            else:
                grad_weight = torch.empty_like(beta)
                torch.bmm(grad_pre, x, out=grad_weight[..., :-1])
                torch.sum(grad_pre, -1, out=grad_weight[..., -1])
            if ctx.needs_input_grad[0]:
                weight_t = weight[..., :-1].transpose(-1, -2)
                grad_x = torch.bmm(weight_t, grad_pre).transpose(-1, -2)
            grad_beta = grad_weight
            if ctx.gate_weights:
                if ctx.needs_input_grad[4]:
                    grad_gate = (grad_weight * beta).sum(-1)
                grad_beta = grad_weight.mul_(gate.unsqueeze(-1))
        grad_sd = grad_beta * eps
        grad_mu = grad_beta
        if grad_kl is not None:
            gk = grad_kl.unsqueeze(-1)
            grad_mu = torch.addcmul(grad_beta, gk, mu, value=1.0 / var0)
            dkl_dsd = torch.add(torch.reciprocal(sd), sd, alpha=-1.0 / var0)  # minus dkl/dsd
            grad_sd = torch.addcmul(grad_sd, gk, dkl_dsd, value=-1.0)
        grad_rho = grad_sd.mul_(torch.sigmoid(rho))
        return grad_x, grad_mu, grad_rho, None, grad_gate, None


class VariationalLinear(nn.Module):
    """Gaussian slab of all families: ``beta ~ N(mu, softplus(rho)^2)``, prior ``N(0, sigma_0^2)``.

    The slab parameters of node ``j``'s group (incoming weights, then the bias)
    are row ``j`` of ``mu`` and ``rho``, ``[R, out, in + 1]``; ``weight_mu``
    ``[R, out, in]`` and ``bias_mu`` ``[R, out]`` (likewise ``weight_rho``,
    ``bias_rho``) are views of them. This class is the dense mean-field layer.

    Parameters
    ----------
    in_features, out_features
        Layer sizes (``in`` inputs, ``out`` nodes).
    generators
        One generator per replicate (``R = len(generators)``) for the initial values:
        ``mu`` Kaiming-uniform ``U(-1/sqrt(in), 1/sqrt(in))`` (weights and biases).
    sigma_0
        Prior standard deviation of ``beta`` (reference 1).
    rho_init
        Initial ``rho`` of every Gaussian factor, ``sd = softplus(rho)`` (reference -6).
    dtype, device
        Parameter dtype and device.
    """

    uniform_count: int = 0

    def __init__(
        self,
        in_features: int,
        out_features: int,
        generators: Sequence[torch.Generator],
        *,
        sigma_0: float = 1.0,
        rho_init: float = -6.0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.in_features = _check_int(in_features, "in_features", 1)
        self.out_features = _check_int(out_features, "out_features", 1)
        if len(generators) < 1:
            raise InvalidParameterError("generators", "one generator per replicate (>= 1)", 0)
        self.replicates = len(generators)
        self.sigma_0 = _check_positive(sigma_0, "sigma_0")
        if not isinstance(rho_init, int | float) or not math.isfinite(rho_init):
            raise InvalidParameterError("rho_init", "a finite number", rho_init)
        self.rho_init = float(rho_init)
        shape = (self.replicates, self.out_features, self.in_features + 1)
        kw = {"dtype": dtype, "device": device}
        self.mu = nn.Parameter(torch.empty(shape, **kw))
        self.rho = nn.Parameter(torch.full(shape, self.rho_init, **kw))
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for r, gen in enumerate(generators):
                self.mu[r, :, :-1].uniform_(-bound, bound, generator=gen)
                self.mu[r, :, -1].uniform_(-bound, bound, generator=gen)

    @property
    def weight_mu(self) -> torch.Tensor:
        """Means of the weights, ``[R, out, in]`` (a view of ``mu``)."""
        return self.mu[..., :-1]

    @property
    def bias_mu(self) -> torch.Tensor:
        """Means of the biases, ``[R, out]`` (a view of ``mu``)."""
        return self.mu[..., -1]

    @property
    def weight_rho(self) -> torch.Tensor:
        """``rho`` of the weights, ``[R, out, in]``."""
        return self.rho[..., :-1]

    @property
    def bias_rho(self) -> torch.Tensor:
        """``rho`` of the biases, ``[R, out]``."""
        return self.rho[..., -1]

    @property
    def group_size(self) -> int:
        """``d = in + 1``."""
        return self.in_features + 1

    @property
    def slab_normal_count(self) -> int:
        """Normals per replicate for one draw of ``beta`` (all groups)."""
        return self.out_features * self.group_size

    @property
    def normal_count(self) -> int:
        """Standard normals per replicate for one draw of the layer's weights."""
        return self.slab_normal_count

    def _eps(self, normal: torch.Tensor) -> torch.Tensor:
        """The slab's normals as ``[..., R, out, in + 1]`` (a view)."""
        lead = normal.shape[:-1]
        return normal[..., : self.slab_normal_count].view(*lead, self.out_features, self.group_size)

    def _beta(self, normal: torch.Tensor) -> torch.Tensor:
        """``beta = mu + softplus(rho) * eps``, ``[..., R, out, in + 1]``."""
        return torch.addcmul(self.mu, F.softplus(self.rho), self._eps(normal))

    def slab_kl(self) -> torch.Tensor:
        """Slab KL per node, ``[R, out]``.

        ``sum_i KL(N(mu_ji, sd_ji^2) || N(0, sigma_0^2))`` over the group of node ``j``.
        """
        return kl_normal(self.mu, F.softplus(self.rho), 0.0, self.sigma_0).sum(-1)

    def _gate(self, normal, uniform, temperature):
        """Node gate ``[R, out]`` of a training pass, its KL ``[R]`` and the weights ``[R, out]``
        of the nodes' slab KL (none of them for a dense layer)."""
        return None, None, None

    def step(
        self,
        x: torch.Tensor,
        normal: torch.Tensor,
        uniform: torch.Tensor | None = None,
        temperature: float = 0.5,
        column_gate: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass and KL together: ``(h [R, B, out], KL [R])``.

        Parameters
        ----------
        x
            Inputs ``[R, B, in]``.
        normal, uniform
            This layer's noise, ``[R, normal_count]`` and ``[R, uniform_count]``.
        temperature
            Concrete temperature of the relaxed indicators.
        column_gate
            Optional ``[R, in]`` factor on the inputs (an input spike).
        """
        if column_gate is not None:
            x = x * column_gate.unsqueeze(-2)
        gate, gate_kl, weights = self._gate(normal, uniform, temperature)
        h, slab = _SlabLinear.apply(x, self.mu, self.rho, self._eps(normal), gate, self.sigma_0)
        return h, self._combine_kl(slab, gate_kl, weights)

    def _combine_kl(self, slab_rows, gate_kl, weights=None) -> torch.Tensor:
        """The layer's KL ``[R]`` from the slab KL per node and the gate's own KL."""
        return slab_rows.sum(-1)

    def forward(
        self,
        x: torch.Tensor,
        normal: torch.Tensor,
        uniform: torch.Tensor | None = None,
        temperature: float = 0.5,
        column_gate: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training pass ``[R, B, in] -> [R, B, out]`` (relaxed indicators); see :meth:`step`."""
        return self.step(x, normal, uniform, temperature, column_gate)[0]

    def kl(self) -> torch.Tensor:
        """``KL(q || prior)`` of the layer per replicate, ``[R]``."""
        return self.slab_kl().sum(-1)

    def inclusion_probs(self) -> torch.Tensor:
        """Variational inclusion probabilities: ``[R, out]`` (ones for a dense layer)."""
        return torch.ones_like(self.bias_mu.detach())

    def kept(self) -> torch.Tensor:
        """Kept nodes ``[R, out]`` (node families) or kept weights ``[R, out, in]`` (edge)."""
        return self.inclusion_probs() > 0.5

    def weights_from_noise(
        self, normal: torch.Tensor, uniform: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One exact draw ``(W [..., R, out, in], b [..., R, out])`` from ``q``."""
        beta = self._beta(normal)
        return beta[..., :-1], beta[..., -1]

    def sample_weights(
        self, generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One exact draw ``(W [R, out, in], b [R, out])``; replicate ``r`` uses its generator."""
        normal, uniform = draw_noise(
            generators,
            self.normal_count,
            self.uniform_count,
            dtype=self.mu.dtype,
            device=self.mu.device,
        )
        with torch.no_grad():
            return self.weights_from_noise(normal, uniform)

    def mean_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Variational means on the kept structure, ``(W [R, out, in], b [R, out])``."""
        mu = self.mu.detach()
        return mu[..., :-1].clone(), mu[..., -1].clone()


class MeanFieldLinear(VariationalLinear):
    """Dense mean-field Gaussian layer (Bayes by backprop): ``(W, b) = beta``, no spike.

    ``KL = sum KL(N(mu, sd^2) || N(0, sigma_0^2))`` over weights and biases.
    """


class _GroupLassoScale(nn.Module):
    """``scale_j = tau_j``; ``tau_j^2 ~ Gamma((d+1)/2, rate kappa^2/2)``, ``kappa^2 ~ Gamma(a, b)``.

    Variational factors ``tau_j^2 ~ LogNormal(m_j, s_j^2)`` (``log_tau2_mu``,
    ``log_tau2_rho``, ``[R, out]``) and ``kappa^2 ~ LogNormal(m_k, s_k^2)``
    (``log_kappa2_mu``, ``log_kappa2_rho``, ``[R]``), ``s = softplus(rho)``.
    Initialised at ``tau^2 = 1`` and ``kappa^2 = d + 1``, where the conditional prior
    mean ``(d+1)/kappa^2`` of ``tau^2`` is 1.
    """

    def __init__(self, reps, out, group_size, *, kappa_shape, kappa_rate, rho_init, kw):
        super().__init__()
        self.gamma_shape = (group_size + 1) / 2.0
        self.kappa_shape = _check_positive(kappa_shape, "kappa_shape")
        self.kappa_rate = _check_positive(kappa_rate, "kappa_rate")
        self.log_tau2_mu = nn.Parameter(torch.zeros((reps, out), **kw))
        self.log_tau2_rho = nn.Parameter(torch.full((reps, out), rho_init, **kw))
        self.log_kappa2_mu = nn.Parameter(torch.full((reps,), math.log(group_size + 1.0), **kw))
        self.log_kappa2_rho = nn.Parameter(torch.full((reps,), rho_init, **kw))
        self.noise_count = out
        self.slab_width = None

    def draw(self, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tau_j = exp((m_j + s_j eps_j) / 2)`` from ``eps [..., R, out]``, and the KL ``[R]``."""
        return _GroupLassoDraw.apply(
            self.log_tau2_mu, self.log_tau2_rho, self.log_kappa2_mu, self.log_kappa2_rho, eps,
            self.gamma_shape, self.kappa_shape, self.kappa_rate,
        )  # fmt: skip

    def log_scale_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and sd of the Gaussian ``log tau_j`` under ``q``, ``[R, out]`` each."""
        return 0.5 * self.log_tau2_mu, 0.5 * F.softplus(self.log_tau2_rho)

    def scale(self, log_scale: torch.Tensor) -> torch.Tensor:
        """``tau = exp(log tau)``."""
        return torch.exp(log_scale)

    def kl(self) -> torch.Tensor:
        """``sum_j E_q KL(q(tau_j^2) || Gamma((d+1)/2, kappa^2/2))``
        ``+ KL(q(kappa^2) || Gamma(a, b))``, ``[R]``.

        The expected KL uses ``E_q[log(kappa^2/2)] = m_k - log 2`` and
        ``E_q[kappa^2/2] = exp(m_k + s_k^2/2) / 2`` (see :func:`kl_lognormal_gamma`).
        """
        return self._kl(F.softplus(self.log_tau2_rho), F.softplus(self.log_kappa2_rho))

    def _kl(self, s_tau: torch.Tensor, s_k: torch.Tensor) -> torch.Tensor:
        mean_rate = 0.5 * torch.exp(self.log_kappa2_mu + 0.5 * s_k.square()).unsqueeze(-1)
        mean_log_rate = (self.log_kappa2_mu - math.log(2.0)).unsqueeze(-1)
        local = kl_lognormal_gamma(
            self.log_tau2_mu, s_tau, self.gamma_shape, mean_rate, mean_log_rate
        )
        glob = kl_lognormal_gamma(self.log_kappa2_mu, s_k, self.kappa_shape, self.kappa_rate)
        return local.sum(-1) + glob


class _GroupHorseshoeScale(nn.Module):
    """``scale_j = g tau_j`` or ``c g tau_j / sqrt(c^2 + g^2 tau_j^2)``, half-Cauchy ``g, tau_j``.

    ``tau_j ~ C+(0, A)`` written as ``tau_j^2 = a_j b_j``, ``a_j ~ Gamma(1/2, rate 1/A^2)``,
    ``b_j ~ InvGamma(1/2, 1)``; likewise ``g ~ C+(0, g_0)`` with ``(a_g, b_g)``.
    Variational LogNormal factors for ``a_j, b_j, a_g, b_g``, so ``v_j = log(g tau_j) =
    (log a_j + log b_j + log a_g + log b_g) / 2`` is Gaussian under ``q``.

    Storage: ``log_mu`` and ``log_rho`` ``[R, 2, out + 1]``: row 0 the Gamma factors
    ``(a_1..a_out, a_g)``, row 1 the inverse-Gamma factors ``(b_1..b_out, b_g)``, so
    the KL is two vectorised terms, whatever the width. Initialised with each Gamma factor at
    its prior scale (``a_j = A^2``, ``a_g = g_0^2``) and each inverse-Gamma factor
    at the reciprocal (``b_j = 1/A^2``, ``b_g = 1/g_0^2``), so ``g tau_j = 1``: the
    initial network is the Kaiming-initialised one, and the KL stays moderate
    (``a_g = 1`` would cost ``1/g_0^2 = 10^5`` nats).
    """

    def __init__(self, reps, out, *, global_scale, local_scale, slab_width, rho_init, kw):
        super().__init__()
        self.global_scale = _check_positive(global_scale, "global_scale")
        self.local_scale = _check_positive(local_scale, "local_scale")
        self.slab_width = None if slab_width is None else _check_positive(slab_width, "slab_width")
        log_scale_sq = torch.full((out + 1,), 2.0 * math.log(self.local_scale), **kw)
        log_scale_sq[-1] = 2.0 * math.log(self.global_scale)
        init = torch.stack([log_scale_sq, -log_scale_sq]).expand(reps, 2, out + 1)
        self.log_mu = nn.Parameter(init.clone())
        self.log_rho = nn.Parameter(torch.full((reps, 2, out + 1), rho_init, **kw))
        # Prior rates of the Gamma factors (row 0): 1/A^2 per node, 1/g_0^2 for the global.
        self.register_buffer("prior_rate", torch.exp(-log_scale_sq))
        self.noise_count = out + 1

    def _moments_all(self, sd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and sd of ``(log tau_1..log tau_out, log g)`` from the factors' sds ``sd``."""
        return 0.5 * self.log_mu.sum(-2), 0.5 * torch.sqrt(sd.square().sum(-2))

    def draw(self, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``scale_j`` from ``eps [..., R, out + 1]`` (last column: the global draw), and the KL.

        One normal per node draws ``log a_j + log b_j`` and one per layer draws
        ``log a_g + log b_g``: sums of independent Gaussians, so ``v_j = log(g tau_j)``
        is an exact draw of the same joint law (``g`` shared by the nodes) with half
        the noise.
        """
        return _GroupHorseshoeDraw.apply(
            self.log_mu, self.log_rho, self.prior_rate, eps, self.slab_width
        )

    def log_scale_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and sd of the Gaussian ``v_j = log(g tau_j)`` under ``q``, ``[R, out]`` each."""
        mean, sd = self._moments_all(F.softplus(self.log_rho))
        total_sd = torch.sqrt(sd[..., :-1].square() + sd[..., -1:].square())
        return mean[..., :-1] + mean[..., -1:], total_sd

    def scale(self, log_scale: torch.Tensor) -> torch.Tensor:
        """``e^v``, or ``c e^v / sqrt(c^2 + e^{2v}) = exp(v - softplus(2 (v - log c)) / 2)``."""
        if self.slab_width is None:
            return torch.exp(log_scale)
        shifted = log_scale - math.log(self.slab_width)
        return torch.exp(log_scale - 0.5 * F.softplus(2.0 * shifted))

    def kl(self) -> torch.Tensor:
        """KL of every ``a_j, b_j, a_g, b_g`` against its prior, summed, ``[R]``."""
        return self._kl(F.softplus(self.log_rho))

    def _kl(self, sd: torch.Tensor) -> torch.Tensor:
        """``KL(LogNormal || Gamma(1/2, rate))`` of row 0 plus ``KL(LogNormal || InvGamma(1/2, 1))``
        of row 1, summed."""
        mu = self.log_mu
        gamma = kl_lognormal_gamma(mu[..., 0, :], sd[..., 0, :], 0.5, self.prior_rate)
        inverse = kl_lognormal_invgamma(mu[..., 1, :], sd[..., 1, :], 0.5, 1.0)
        return (gamma + inverse).sum(-1)


def _expected_scale(scale_fn, mean: torch.Tensor, sd: torch.Tensor, closed_form: bool):
    """``E[h(v)]`` for ``v ~ N(mean, sd^2)``: ``exp(mean + sd^2/2)`` when ``h = exp``, else
    32-point Gauss-Hermite quadrature ``sum_k w_k h(mean + sqrt(2) sd x_k) / sqrt(pi)``."""
    if closed_form:
        return torch.exp(mean + 0.5 * sd.square())
    nodes = torch.as_tensor(_GH_NODES, dtype=mean.dtype, device=mean.device)
    weights = torch.as_tensor(_GH_WEIGHTS, dtype=mean.dtype, device=mean.device)
    v = mean.unsqueeze(-1) + math.sqrt(2.0) * sd.unsqueeze(-1) * nodes
    return (scale_fn(v) * weights).sum(-1) / math.sqrt(math.pi)


class NodeSpikeSlabLinear(VariationalLinear):
    """Node spike-and-slab layer: ``w_j = z_j * scale_j * beta_j`` for each node's group.

    ``z_j ~ Bernoulli(sigmoid(theta_j))`` (prior ``Bernoulli(lambda)``), trained with
    relaxed indicators; ``beta_j ~ N(mu_j, softplus(rho_j)^2)`` with prior
    ``N(0, sigma_0^2 I_d)``, ``d = in + 1``. The KL is

        KL = sum_j [ KL(Bern(pi_j) || Bern(lambda)) + pi_j KL(q(beta_j) || N(0, sigma_0^2 I)) ]
             + KL of the scale factors

    (the Gaussian part weighted by the inclusion probability ``pi_j``). Once the
    indicators are frozen (``BayesianMLP.freeze_masks``) at the kept structure,
    ``pi_j`` is replaced by the frozen mask (``q(z)`` a point mass).

    Parameters
    ----------
    in_features, out_features, generators, sigma_0, rho_init, dtype, device
        As :class:`VariationalLinear`.
    slab
        ``Prior.SS_IG`` (``scale = 1``), ``Prior.SS_GL`` or ``Prior.SS_GHS``.
    prior_inclusion
        ``lambda`` in ``(0, 1)``.
    inclusion_init
        Initial ``sigmoid(theta)`` (reference 0.99).
    straight_through
        Hard indicators in the forward pass with the Concrete gradient (default),
        else soft Concrete samples.
    kappa_shape, kappa_rate
        SS-GL: Gamma hyperprior of ``kappa^2`` (shape, rate).
    global_scale, local_scale, slab_width
        SS-GHS: ``g ~ C+(0, global_scale)``, ``tau ~ C+(0, local_scale)``; slab width
        ``c`` of the regularised horseshoe, ``None`` for the plain horseshoe.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        generators: Sequence[torch.Generator],
        *,
        slab: Prior | str = Prior.SS_GHS,
        prior_inclusion: float = 0.5,
        inclusion_init: float = 0.99,
        straight_through: bool = True,
        sigma_0: float = 1.0,
        rho_init: float = -6.0,
        kappa_shape: float = 1.0,
        kappa_rate: float = 1e-3,
        global_scale: float = math.sqrt(1e-5),
        local_scale: float = 1.0,
        slab_width: float | None = 1.0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(
            in_features,
            out_features,
            generators,
            sigma_0=sigma_0,
            rho_init=rho_init,
            dtype=dtype,
            device=device,
        )
        self.slab = parse_enum(Prior, slab, "slab")
        if not self.slab.is_node_sparse:
            raise InvalidParameterError("slab", "one of 'ss-ig', 'ss-gl', 'ss-ghs'", slab)
        kw = {"dtype": dtype, "device": device}
        reps, out = self.replicates, self.out_features
        self.indicators = _Indicators(
            (reps, out), prior_inclusion=prior_inclusion, inclusion_init=inclusion_init,
            straight_through=straight_through, field="prior_inclusion", kw=kw,
        )  # fmt: skip
        if self.slab is Prior.SS_GL:
            self.scale_factor = _GroupLassoScale(
                reps, out, self.group_size, kappa_shape=kappa_shape,
                kappa_rate=kappa_rate, rho_init=self.rho_init, kw=kw,
            )  # fmt: skip
        elif self.slab is Prior.SS_GHS:
            self.scale_factor = _GroupHorseshoeScale(
                reps, out, global_scale=global_scale, local_scale=local_scale,
                slab_width=slab_width, rho_init=self.rho_init, kw=kw,
            )  # fmt: skip
        else:
            self.scale_factor = None

    @property
    def normal_count(self) -> int:
        """Normals per replicate: ``beta`` (all groups), then the scale draws."""
        extra = 0 if self.scale_factor is None else self.scale_factor.noise_count
        return self.slab_normal_count + extra

    @property
    def uniform_count(self) -> int:
        """One uniform per node (its indicator)."""
        return self.out_features

    def _draw_scale(self, normal: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | float]:
        """A draw of ``scale_j`` from this layer's normals and the scale factors' KL."""
        if self.scale_factor is None:
            return None, 0.0
        return self.scale_factor.draw(normal[..., self.slab_normal_count :])

    @property
    def theta(self) -> nn.Parameter:
        """Inclusion logits ``[R, out]``."""
        return self.indicators.theta

    def _gate(self, normal, uniform, temperature):
        """``z_j * scale_j`` (relaxed ``z_j``, or the frozen mask) and the gate's KL ``[R]``."""
        gate, ind_kl, pi = self.indicators.sample_kl(uniform, temperature)
        scale, scale_kl = self._draw_scale(normal)
        if scale is not None:
            gate = gate * scale
        return gate, ind_kl.sum(-1) + scale_kl, pi

    def _combine_kl(self, slab_rows, gate_kl, weights=None):
        """``sum_j pi_j slab_j + gate KL`` (``weights``: ``pi`` of the training pass)."""
        pi = self.indicators.probs() if weights is None else weights
        return (pi * slab_rows).sum(-1) + gate_kl

    def kl(self) -> torch.Tensor:
        """Per-replicate KL ``[R]`` (see the class docstring)."""
        scale_kl = 0.0 if self.scale_factor is None else self.scale_factor.kl()
        return self._combine_kl(self.slab_kl(), self.indicators.kl().sum(-1) + scale_kl)

    def inclusion_probs(self) -> torch.Tensor:
        """``pi_j = sigmoid(theta_j)``, ``[R, out]``; the 0/1 mask once frozen."""
        return self.indicators.probs().detach()

    def expected_scale(self) -> torch.Tensor:
        """``E_q[scale_j]``, ``[R, out]`` (1 for the Gaussian slab)."""
        if self.scale_factor is None:
            return torch.ones_like(self.theta.detach())
        mean, sd = self.scale_factor.log_scale_moments()
        closed = self.scale_factor.slab_width is None
        return _expected_scale(self.scale_factor.scale, mean, sd, closed).detach()

    def weights_from_noise(self, normal, uniform):
        """Exact draw ``W_j = z_j scale_j beta_j``, z_j = 1{u_j < pi_j}; ``[..., R, out, in]``."""
        beta = self._beta(normal)
        gate = self.indicators.exact(uniform)
        scale, _ = self._draw_scale(normal)
        if scale is not None:
            gate = gate * scale
        beta = beta * gate.unsqueeze(-1)
        return beta[..., :-1], beta[..., -1]

    def mean_weights(self):
        """``kept_j * E_q[scale_j] * mu_j`` for weights ``[R, out, in]`` and biases ``[R, out]``."""
        gate = self.kept().to(self.theta.dtype) * self.expected_scale()
        mu = self.mu.detach() * gate.unsqueeze(-1)
        return mu[..., :-1], mu[..., -1]


class EdgeSpikeSlabLinear(VariationalLinear):
    """Edge spike-and-slab layer (Bai, Song & Cheng 2020): one indicator per weight and bias.

    ``w_ji = z_ji beta_ji``, ``z_ji ~ Bernoulli(sigmoid(theta_ji))`` (prior
    ``Bernoulli(lambda)``), ``beta_ji ~ N(mu_ji, softplus(rho_ji)^2)``, prior
    ``N(0, sigma_0^2)``:

        KL = sum_ji [ KL(Bern(pi_ji) || Bern(lambda)) + pi_ji KL(q(beta_ji) || N(0, sigma_0^2)) ]

    over weights and biases (``theta [R, out, in + 1]``, laid out as ``mu``).
    Parameters as :class:`NodeSpikeSlabLinear` (no scale).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        generators: Sequence[torch.Generator],
        *,
        prior_inclusion: float = 0.5,
        inclusion_init: float = 0.99,
        straight_through: bool = True,
        sigma_0: float = 1.0,
        rho_init: float = -6.0,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(
            in_features,
            out_features,
            generators,
            sigma_0=sigma_0,
            rho_init=rho_init,
            dtype=dtype,
            device=device,
        )
        self.indicators = _Indicators(
            self.mu.shape, prior_inclusion=prior_inclusion, inclusion_init=inclusion_init,
            straight_through=straight_through, field="prior_inclusion",
            kw={"dtype": dtype, "device": device},
        )  # fmt: skip

    @property
    def theta(self) -> nn.Parameter:
        """Inclusion logits of weights and biases, ``[R, out, in + 1]`` (laid out as ``mu``)."""
        return self.indicators.theta

    @property
    def weight_theta(self) -> torch.Tensor:
        """Inclusion logits of the weights, ``[R, out, in]`` (a view of ``theta``)."""
        return self.theta[..., :-1]

    @property
    def bias_theta(self) -> torch.Tensor:
        """Inclusion logits of the biases, ``[R, out]`` (a view of ``theta``)."""
        return self.theta[..., -1]

    @property
    def uniform_count(self) -> int:
        """One uniform per weight and per bias."""
        return self.slab_normal_count

    def _uniform(self, uniform: torch.Tensor) -> torch.Tensor:
        lead = uniform.shape[:-1]
        return uniform.view(*lead, self.out_features, self.group_size)

    def step(self, x, normal, uniform=None, temperature=0.5, column_gate=None):
        """Training pass and KL, ``(h [R, B, out], KL [R])``, with ``(W, b) = z * beta``."""
        uniform = None if uniform is None else self._uniform(uniform)
        z, ind_kl, pi = self.indicators.sample_kl(uniform, temperature)
        sd = F.softplus(self.rho)
        weight = torch.addcmul(self.mu, sd, self._eps(normal)) * z
        if column_gate is not None:
            x = x * column_gate.unsqueeze(-2)
        h = torch.baddbmm(weight[..., -1].unsqueeze(-2), x, weight[..., :-1].transpose(-1, -2))
        gauss = kl_normal(self.mu, sd, 0.0, self.sigma_0)
        return h, (ind_kl + pi * gauss).sum((-2, -1))

    def kl(self) -> torch.Tensor:
        """Per-replicate KL ``[R]`` (see the class docstring)."""
        gauss = kl_normal(self.mu, F.softplus(self.rho), 0.0, self.sigma_0)
        return (self.indicators.kl() + self.indicators.probs() * gauss).sum((-2, -1))

    def inclusion_probs(self) -> torch.Tensor:
        """Weight inclusion probabilities ``[R, out, in]``; the 0/1 mask once frozen."""
        return self.indicators.probs()[..., :-1].detach()

    def bias_inclusion_probs(self) -> torch.Tensor:
        """Bias inclusion probabilities ``[R, out]``; the 0/1 mask once frozen."""
        return self.indicators.probs()[..., -1].detach()

    def weights_from_noise(self, normal, uniform):
        """Exact draw ``(W, b) = 1{u < pi} * beta``, ``[..., R, out, in]`` and ``[..., R, out]``."""
        weight = self._beta(normal) * self.indicators.exact(self._uniform(uniform))
        return weight[..., :-1], weight[..., -1]

    def mean_weights(self):
        """``kept * mu`` for weights ``[R, out, in]`` and biases ``[R, out]``."""
        mu = self.mu.detach() * (self.indicators.probs() > 0.5).to(self.mu.dtype)
        return mu[..., :-1], mu[..., -1]


class InputSpike(nn.Module):
    """Node spike on the ``p`` inputs, without a slab: input ``i`` enters as ``z_i x_i``.

    ``z_i ~ Bernoulli(sigmoid(theta_i))`` with prior ``Bernoulli(lambda)``;
    ``KL = sum_i KL(Bern(pi_i) || Bern(lambda))``. The gate multiplies the first
    layer's weight columns (``column_gate``), which equals gating the inputs.

    Parameters
    ----------
    features
        ``p``.
    replicates
        ``R``.
    prior_inclusion, inclusion_init, straight_through, dtype, device
        As :class:`NodeSpikeSlabLinear`.
    """

    normal_count = 0

    def __init__(
        self,
        features: int,
        replicates: int,
        *,
        prior_inclusion: float,
        inclusion_init: float = 0.99,
        straight_through: bool = True,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        self.features = _check_int(features, "features", 1)
        reps = _check_int(replicates, "replicates", 1)
        self.indicators = _Indicators(
            (reps, self.features), prior_inclusion=prior_inclusion, inclusion_init=inclusion_init,
            straight_through=straight_through, field="input_inclusion",
            kw={"dtype": dtype, "device": device},
        )  # fmt: skip

    @property
    def theta(self) -> nn.Parameter:
        """Inclusion logits of the inputs, ``[R, p]``."""
        return self.indicators.theta

    @property
    def uniform_count(self) -> int:
        """One uniform per input."""
        return self.features

    def gate(self, uniform: torch.Tensor | None, temperature: float) -> torch.Tensor:
        """Relaxed indicators ``[R, p]`` (or the frozen mask)."""
        return self.indicators.sample(uniform, temperature)

    def mask_from_noise(self, uniform: torch.Tensor) -> torch.Tensor:
        """Exact draw ``z_i = 1{u_i < pi_i}``, ``[..., R, p]``."""
        return self.indicators.exact(uniform)

    def kl(self) -> torch.Tensor:
        """``sum_i KL(Bern(pi_i) || Bern(lambda))`` (point mass at the frozen mask), ``[R]``."""
        return self.indicators.kl().sum(-1)

    def inclusion_probs(self) -> torch.Tensor:
        """``pi_i``, ``[R, p]``; the 0/1 mask once frozen."""
        return self.indicators.probs().detach()

    def kept(self) -> torch.Tensor:
        """Inputs whose inclusion probability exceeds 0.5, ``[R, p]``."""
        return self.inclusion_probs() > 0.5
