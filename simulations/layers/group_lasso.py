"""Group-lasso scale factor (``ss-gl``): ``scale_j = tau_j`` with a learned ``kappa``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from simulations.kl import _HALF_LOG_2PI_PLUS_HALF, kl_lognormal_gamma
from simulations.layers.fused import _sum_to
from simulations.layers.scales import expected_scale
from ssbnn_theory.validation import check_positive

__all__ = ["GroupLassoScale"]


class _GroupLassoDraw(torch.autograd.Function):
    """A draw of the group-lasso scales and their KL, with an explicit backward.

    Inputs ``m, rho [R, out]`` (``log tau^2``), ``m_k, rho_k [R]`` (``log kappa^2``), the
    normals ``eps [..., R, out]`` and the constants ``a = (d + 1)/2, a_k, b``. With
    ``s = softplus(rho)``, ``E_j = exp(m_j + s_j^2/2)``, ``E_k = exp(m_k + s_k^2/2)``,
    ``r = E_k / 2`` (``E_q[kappa^2 / 2]``) and ``T = r sum_j E_j + b E_k`` it returns
    ``tau = exp((m + s eps)/2)`` and :meth:`GroupLassoScale.kl` summed over the nodes in
    one pass (``C = (1 + log 2 pi)/2``):

        KL = out (lgamma(a) - C + a log 2) + lgamma(a_k) - C - a_k log b
             - sum_j log s_j - log s_k - a sum_j m_j - (out a + a_k) m_k + T.

    Backward:

        dKL/dm_j = r E_j - a,      dKL/ds_j = r E_j s_j - 1/s_j,
        dKL/dm_k = T - (out a + a_k),      dKL/ds_k = T s_k - 1/s_k,     ds/drho = sigmoid(rho).
    """

    @staticmethod
    def forward(ctx, m, rho, m_k, rho_k, eps, shape, kappa_shape, kappa_rate):
        s, s_k = F.softplus(rho), F.softplus(rho_k)
        scale = torch.addcmul(m, s, eps).mul_(0.5).exp_()
        e = torch.addcmul(m, s, s, value=0.5).exp_()
        e_k = torch.addcmul(m_k, s_k, s_k, value=0.5).exp_()
        rate = 0.5 * e_k
        total = torch.addcmul(kappa_rate * e_k, rate, e.sum(-1))
        out = m.shape[-1]
        weight = out * shape + kappa_shape  # the coefficient of m_k
        const = (
            out * (math.lgamma(shape) - _HALF_LOG_2PI_PLUS_HALF + shape * math.log(2.0))
            + math.lgamma(kappa_shape) - _HALF_LOG_2PI_PLUS_HALF
            - kappa_shape * math.log(kappa_rate)
        )  # fmt: skip
        linear = torch.add(m.sum(-1), m_k, alpha=weight / shape).mul_(shape)
        logs = torch.log(s).sum(-1).add_(torch.log(s_k))
        kl = total.sub(linear).sub_(logs).add_(const)
        ctx.constants = (shape, weight)
        ctx.save_for_backward(rho, rho_k, s, s_k, eps, scale, e, rate, total)
        ctx.set_materialize_grads(False)
        return scale, kl

    @staticmethod
    def backward(ctx, grad_scale, grad_kl):
        rho, rho_k, s, s_k, eps, scale, e, rate, total = ctx.saved_tensors
        shape, weight = ctx.constants
        grad_m = grad_s = grad_mk = grad_sk = None
        if grad_scale is not None:
            half = torch.mul(grad_scale, scale).mul_(0.5)
            grad_m, grad_s = _sum_to(half, s), _sum_to(half * eps, s)
        if grad_kl is not None:
            gk = grad_kl.unsqueeze(-1)
            rate_e = e * rate.unsqueeze(-1)
            km = torch.sub(rate_e, shape).mul_(gk)
            ks = torch.addcmul(torch.reciprocal(s).neg_(), rate_e, s).mul_(gk)
            grad_m = km if grad_m is None else grad_m.add_(km)
            grad_s = ks if grad_s is None else grad_s.add_(ks)
            grad_mk = torch.sub(total, weight).mul_(grad_kl)
            grad_sk = torch.addcmul(torch.reciprocal(s_k).neg_(), total, s_k).mul_(grad_kl)
        grad_rho = None if grad_s is None else grad_s.mul_(torch.sigmoid(rho))
        grad_rho_k = None if grad_sk is None else grad_sk.mul_(torch.sigmoid(rho_k))
        return grad_m, grad_rho, grad_mk, grad_rho_k, None, None, None, None


class GroupLassoScale(nn.Module):
    """``scale_j = tau_j``; ``tau_j^2 ~ Gamma((d+1)/2, rate kappa^2/2)``, ``kappa^2 ~ Gamma(a, b)``.

    Variational factors ``tau_j^2 ~ LogNormal(m_j, s_j^2)`` (``log_tau2_mu``,
    ``log_tau2_rho``, ``[R, out]``) and ``kappa^2 ~ LogNormal(m_k, s_k^2)``
    (``log_kappa2_mu``, ``log_kappa2_rho``, ``[R]``), ``s = softplus(rho)``.
    Initialised at ``tau^2 = 1`` and ``kappa^2 = d + 1``, where the conditional prior
    mean ``(d+1)/kappa^2`` of ``tau^2`` is 1.
    """

    hyperparameters = ("kappa_shape", "kappa_rate")

    def __init__(
        self, reps, out, group_size, *, rho_init, kw, kappa_shape=1.0, kappa_rate=1e-3
    ) -> None:
        super().__init__()
        self.gamma_shape = (group_size + 1) / 2.0
        self.kappa_shape = check_positive("kappa_shape", kappa_shape)
        self.kappa_rate = check_positive("kappa_rate", kappa_rate)
        self.log_tau2_mu = nn.Parameter(torch.zeros((reps, out), **kw))
        self.log_tau2_rho = nn.Parameter(torch.full((reps, out), rho_init, **kw))
        self.log_kappa2_mu = nn.Parameter(torch.full((reps,), math.log(group_size + 1.0), **kw))
        self.log_kappa2_rho = nn.Parameter(torch.full((reps,), rho_init, **kw))
        self.noise_count = out

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

    def expected(self, like: torch.Tensor) -> torch.Tensor:
        """``E_q[tau_j] = exp(E log tau_j + Var log tau_j / 2)``, ``[R, out]``."""
        mean, sd = self.log_scale_moments()
        return expected_scale(self.scale, mean, sd, closed_form=True)

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
