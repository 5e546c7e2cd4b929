"""Fused autograd functions of the training pass: the slab sample with its KL, the gate.

Each returns a sample together with its KL and writes its backward pass out by hand, in a
handful of operations where autograd would record several dozen (``docs/engine.md``,
"Performance"). ``tests/simulations/test_layers.py`` checks values and gradients against
autograd through the plain expressions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from simulations.kl import bernoulli_logs
from simulations.layers import products
from simulations.relaxed import logistic_noise

__all__: list[str] = []


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


class _SlabLinear(torch.autograd.Function):
    """Fused training pass of a Gaussian-slab layer: a sample and the slab KL, explicit backward.

    Inputs: ``x [R, B, in]``, group parameters ``mu, rho [R, out, in + 1]`` (weights,
    then the bias), standard normals ``eps`` of the same shape, an optional node
    gate ``g [R, out]`` and ``sigma_0``. With ``sd = softplus(rho)``:

        beta = mu + sd * eps
        h    = (x beta_w^T + beta_b) * g   (g multiplies the weights or the outputs,
                                            whichever is smaller; the two are equal)
        kl_j = sum_i [ log sigma_0 - log sd_ji + (sd_ji^2 + mu_ji^2) / (2 sigma_0^2) - 1/2 ]

    Outputs ``h [R, B, out]`` and ``kl [R, out]``; the products are
    :mod:`simulations.layers.products`' (batched GEMMs or oneDNN). The backward pass applies

        dh/dbeta via the weight and input gradients,  dkl/dmu = mu / sigma_0^2,
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
        matrix, bias = beta[..., :-1], beta[..., -1]
        if gate_weights:  # (new tensors: the weights' rows are then contiguous)
            matrix, bias = matrix * gate.unsqueeze(-1), bias * gate
        onednn = products.use_onednn(x.shape[-2], x.shape[-1], mu.shape[-2], x)
        if onednn:  # oneDNN reads plain layouts only: one copy, for the backward pass too
            matrix = matrix.contiguous()
        pre = products.affine(x, matrix, bias, onednn)
        h = pre * gate.unsqueeze(-2) if gate is not None and not gate_weights else pre
        var0 = sigma_0 * sigma_0
        const = mu.shape[-1] * (math.log(sigma_0) - 0.5)
        square = torch.addcmul(sd * sd, mu, mu).sum(-1)
        kl = square.mul_(0.5 / var0).sub_(torch.log(sd).sum(-1)).add_(const)
        ctx.sigma_0, ctx.gate_weights, ctx.onednn = sigma_0, gate_weights, onednn
        ctx.save_for_backward(x, mu, rho, eps, sd, beta, matrix, pre, gate)
        ctx.set_materialize_grads(False)
        return h, kl

    @staticmethod
    def backward(ctx, grad_h, grad_kl):
        x, mu, rho, eps, sd, beta, matrix, pre, gate = ctx.saved_tensors
        var0 = ctx.sigma_0 * ctx.sigma_0
        grad_x = grad_gate = None
        if grad_h is None:
            grad_beta = torch.zeros_like(beta)
        else:
            gated_out = gate is not None and not ctx.gate_weights
            grad_pre = grad_h * gate.unsqueeze(-2) if gated_out else grad_h
            if gated_out and ctx.needs_input_grad[4]:
                grad_gate = (grad_h * pre).sum(-2)
            if torch.compiler.is_compiling():  # out= into views breaks a compiled graph
                grad_w = products.weight_grad(grad_pre, x, None, ctx.onednn)
                grad_weight = torch.cat((grad_w, grad_pre.sum(-2).unsqueeze(-1)), -1)
            else:
                grad_weight = torch.empty_like(beta)
                products.weight_grad(grad_pre, x, grad_weight[..., :-1], ctx.onednn)
                torch.sum(grad_pre, -2, out=grad_weight[..., -1])
            if ctx.needs_input_grad[0]:
                grad_x = products.input_grad(grad_pre, matrix, ctx.onednn)
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
