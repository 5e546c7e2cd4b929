"""Group-horseshoe scale factor (``ss-ghs``): ``scale_j = g tau_j``, regularised with a slab
width ``c``; half-Cauchy ``g`` and ``tau_j`` through Gamma and inverse-Gamma factors."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from simulations.kl import _HALF_LOG_2PI_PLUS_HALF, kl_lognormal_gamma, kl_lognormal_invgamma
from simulations.layers.fused import _sum_to
from simulations.layers.scales import expected_scale
from ssbnn_theory.priors import ENGINE_GLOBAL_SCALE, ENGINE_SLAB_WIDTH
from ssbnn_theory.validation import check_positive

__all__ = ["DEFAULT_GLOBAL_SCALE", "GroupHorseshoeScale"]

DEFAULT_GLOBAL_SCALE = ENGINE_GLOBAL_SCALE
"""Scale ``g_0`` of the global factor ``g ~ C+(0, g_0)``: ``g_0^2 = 1e-5`` (docs/engine.md; the
theory fixes ``g`` at it: ``ssbnn_theory.priors.ENGINE_GLOBAL_SCALE``)."""

_LGAMMA_HALF = math.lgamma(0.5)


def _factor_kl(log_mu, sd, rows):
    """Each LogNormal factor's KL against its prior, ``[..., 2, out + 1]``, and the expectation
    ``r E`` in it (``simulations.kl``'s expressions, evaluated in the same order, both rows
    at once):

        KL = lgamma(1/2) - log sd - (1 + log 2 pi)/2 - (log r + s mu)/2 + r E,
        E = exp(s mu + sd^2/2),

    with ``(s, r) = (1, rate)`` on the Gamma row (``E = E_q[a]``) and ``(-1, 1)`` on the
    inverse-Gamma row (``E = E_q[1/b]``); ``rows`` is :attr:`GroupHorseshoeScale.rows`."""
    sign, rate, log_rate = rows
    signed_mu = log_mu * sign
    rate_e = rate * torch.exp(signed_mu + 0.5 * sd.square())
    half_log = 0.5 * (log_rate + signed_mu)
    return (_LGAMMA_HALF - torch.log(sd)) - _HALF_LOG_2PI_PLUS_HALF - half_log + rate_e, rate_e


def _sum_rows(terms: torch.Tensor) -> torch.Tensor:
    """``[..., 2, out + 1] -> [...]``: the two rows added, then the columns."""
    return (terms[..., 0, :] + terms[..., 1, :]).sum(-1)


class _GroupHorseshoeDraw(torch.autograd.Function):
    """A draw of the (regularised) horseshoe scales and their KL, with an explicit backward.

    Inputs ``log_mu, log_rho [R, 2, out + 1]`` (row 0 the Gamma factors, row 1 the
    inverse-Gamma factors, last column the global), the rows' constants
    (:attr:`GroupHorseshoeScale.rows`), the normals ``eps [..., R, out + 1]`` and the slab
    width ``c`` (or ``None``). With ``sd = softplus(log_rho)``, ``M = sum_rows log_mu / 2``,
    ``S = sqrt(sum_rows sd^2) / 2``, ``v = M + S eps`` and ``w_j = v_j + v_g`` it returns
    ``scale_j = h(w_j)`` (``h = exp``, or ``exp(w - softplus(2 (w - log c)) / 2)``) and
    :meth:`GroupHorseshoeScale.kl`. Backward: ``h'(w) = h(w)`` or
    ``h(w) (1 - sigmoid(2 (w - log c)))``; ``dS/dsd = sd / (4 S)``; with ``s, r, E`` of
    :func:`_factor_kl`, ``dKL/dmu = s (r E - 1/2)`` and ``dKL/dsd = r E sd - 1/sd``.
    """

    @staticmethod
    def forward(ctx, log_mu, log_rho, rows, eps, slab_width):
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
        terms, rate_e = _factor_kl(log_mu, sd, rows)
        ctx.sign = rows[0]
        ctx.save_for_backward(log_rho, eps, sd, total_sd, scale, slope, rate_e)
        ctx.set_materialize_grads(False)
        return scale, _sum_rows(terms)

    @staticmethod
    def backward(ctx, grad_scale, grad_kl):
        log_rho, eps, sd, total_sd, scale, slope, rate_e = ctx.saved_tensors
        grad_mu = grad_sd = None
        if grad_scale is not None:
            grad_w = grad_scale * scale if slope is None else grad_scale * scale * slope
            grad_v = torch.cat((grad_w, grad_w.sum(-1, keepdim=True)), -1)
            grad_mean = _sum_to(grad_v, total_sd)
            grad_total = _sum_to(grad_v * eps, total_sd)
            grad_mu = (0.5 * grad_mean).unsqueeze(-2).expand_as(sd)
            grad_sd = (grad_total * 0.25 / total_sd).unsqueeze(-2) * sd
        if grad_kl is not None:
            gk = grad_kl.unsqueeze(-1).unsqueeze(-1)
            kl_mu = (rate_e - 0.5) * ctx.sign * gk
            kl_sd = (rate_e * sd - torch.reciprocal(sd)) * gk
            grad_mu = kl_mu if grad_mu is None else grad_mu + kl_mu
            grad_sd = kl_sd if grad_sd is None else grad_sd + kl_sd
        grad_rho = None if grad_sd is None else grad_sd * torch.sigmoid(log_rho)
        return grad_mu, grad_rho, None, None, None


class GroupHorseshoeScale(nn.Module):
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

    hyperparameters = ("global_scale", "local_scale", "slab_width")

    def __init__(
        self,
        reps,
        out,
        group_size,
        *,
        rho_init,
        kw,
        global_scale=DEFAULT_GLOBAL_SCALE,
        local_scale=1.0,
        slab_width=ENGINE_SLAB_WIDTH,
    ) -> None:
        super().__init__()
        self.global_scale = check_positive("global_scale", global_scale)
        self.local_scale = check_positive("local_scale", local_scale)
        self.slab_width = None if slab_width is None else check_positive("slab_width", slab_width)
        log_scale_sq = torch.full((out + 1,), 2.0 * math.log(self.local_scale), **kw)
        log_scale_sq[-1] = 2.0 * math.log(self.global_scale)
        init = torch.stack([log_scale_sq, -log_scale_sq]).expand(reps, 2, out + 1)
        self.log_mu = nn.Parameter(init.clone())
        self.log_rho = nn.Parameter(torch.full((reps, 2, out + 1), rho_init, **kw))
        # Prior rates of the Gamma factors (row 0): 1/A^2 per node, 1/g_0^2 for the global;
        # the rows' constants of _factor_kl (not saved: they follow from the rates).
        rate = torch.exp(-log_scale_sq)
        self.register_buffer("prior_rate", rate)
        rows = {
            "row_sign": torch.tensor([[1.0], [-1.0]], **kw),
            "row_rate": torch.stack((rate, torch.ones_like(rate))),
            "row_log_rate": torch.stack((torch.log(rate), torch.zeros_like(rate))),
        }
        for name, value in rows.items():
            self.register_buffer(name, value, persistent=False)
        self.noise_count = out + 1

    @property
    def rows(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(s [2, 1], r [2, out + 1], log r [2, out + 1])`` of :func:`_factor_kl`: the
        Gamma row ``(1, 1/A^2 .. 1/A^2, 1/g_0^2)``, the inverse-Gamma row ``(-1, 1)``."""
        return self.row_sign, self.row_rate, self.row_log_rate

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
        return _GroupHorseshoeDraw.apply(self.log_mu, self.log_rho, self.rows, eps, self.slab_width)

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

    def expected(self, like: torch.Tensor) -> torch.Tensor:
        """``E_q[scale_j]``, ``[R, out]``: closed form for the plain horseshoe, 32-point
        Gauss-Hermite quadrature for the regularised one."""
        mean, sd = self.log_scale_moments()
        return expected_scale(self.scale, mean, sd, closed_form=self.slab_width is None)

    def kl(self) -> torch.Tensor:
        """KL of every ``a_j, b_j, a_g, b_g`` against its prior, summed, ``[R]``."""
        return self._kl(F.softplus(self.log_rho))

    def _kl(self, sd: torch.Tensor) -> torch.Tensor:
        """``KL(LogNormal || Gamma(1/2, rate))`` of row 0 plus ``KL(LogNormal || InvGamma(1/2, 1))``
        of row 1, summed, through :mod:`simulations.kl` (the draw's :func:`_factor_kl` is
        checked against it)."""
        mu = self.log_mu
        gamma = kl_lognormal_gamma(mu[..., 0, :], sd[..., 0, :], 0.5, self.prior_rate)
        inverse = kl_lognormal_invgamma(mu[..., 1, :], sd[..., 1, :], 0.5, 1.0)
        return (gamma + inverse).sum(-1)
