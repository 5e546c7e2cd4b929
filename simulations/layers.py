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
from simulations.kl import kl_bernoulli, kl_lognormal_gamma, kl_lognormal_invgamma, kl_normal
from simulations.relaxed import logistic_noise, relaxed_bernoulli, sigmoid
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
    if not isinstance(value, int | float | np.floating) or not (0.0 < value < 1.0):
        raise InvalidParameterError(field, "a probability in (0, 1)", value)
    return float(value)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + e^x)`` as ``-logsigmoid(-x)``: stable, and bitwise the same for an element
    wherever it sits in a tensor (``torch.nn.functional.softplus`` is not; see
    :func:`simulations.relaxed.sigmoid`)."""
    return -F.logsigmoid(-x)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight^T + bias`` per replicate: ``[..., R, B, in] -> [..., R, B, out]``."""
    if x.dim() == 3 and weight.dim() == 3:
        return torch.baddbmm(bias.unsqueeze(-2), x, weight.transpose(-1, -2))
    return torch.matmul(x, weight.transpose(-1, -2)) + bias.unsqueeze(-2)


class VariationalLinear(nn.Module):
    """Gaussian slab of all families: ``beta ~ N(mu, softplus(rho)^2)``, prior ``N(0, sigma_0^2)``.

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
        shape_w = (self.replicates, self.out_features, self.in_features)
        shape_b = (self.replicates, self.out_features)
        kw = {"dtype": dtype, "device": device}
        self.weight_mu = nn.Parameter(torch.empty(shape_w, **kw))
        self.weight_rho = nn.Parameter(torch.full(shape_w, self.rho_init, **kw))
        self.bias_mu = nn.Parameter(torch.empty(shape_b, **kw))
        self.bias_rho = nn.Parameter(torch.full(shape_b, self.rho_init, **kw))
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            for r, gen in enumerate(generators):
                self.weight_mu[r].uniform_(-bound, bound, generator=gen)
                self.bias_mu[r].uniform_(-bound, bound, generator=gen)

    @property
    def slab_normal_count(self) -> int:
        """Normals per replicate for one draw of ``beta`` (weights, then biases)."""
        return self.out_features * (self.in_features + 1)

    @property
    def normal_count(self) -> int:
        """Standard normals per replicate for one draw of the layer's weights."""
        return self.slab_normal_count

    def _slab(self, normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``beta = mu + softplus(rho) * eps`` for weights ``[..., R, out, in]`` and biases."""
        lead = normal.shape[:-1]
        n_w = self.out_features * self.in_features
        eps_w = normal[..., :n_w].view(*lead, self.out_features, self.in_features)
        eps_b = normal[..., n_w : n_w + self.out_features]
        beta_w = torch.addcmul(self.weight_mu, softplus(self.weight_rho), eps_w)
        beta_b = torch.addcmul(self.bias_mu, softplus(self.bias_rho), eps_b)
        return beta_w, beta_b

    def slab_kl(self) -> torch.Tensor:
        """``sum_i KL(N(mu_i, sd_i^2) || N(0, sigma_0^2))`` over each node's group, ``[R, out]``."""
        kl_w = kl_normal(self.weight_mu, softplus(self.weight_rho), 0.0, self.sigma_0).sum(-1)
        return kl_w + kl_normal(self.bias_mu, softplus(self.bias_rho), 0.0, self.sigma_0)

    # Interface every family implements -------------------------------------------------

    def forward(
        self,
        x: torch.Tensor,
        normal: torch.Tensor,
        uniform: torch.Tensor | None = None,
        temperature: float = 0.5,
        column_gate: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training pass ``[R, B, in] -> [R, B, out]`` with relaxed indicators.

        Parameters
        ----------
        x
            Inputs ``[R, B, in]``.
        normal, uniform
            This layer's noise, ``[R, normal_count]`` and ``[R, uniform_count]``.
        temperature
            Concrete temperature of the relaxed indicators.
        column_gate
            Optional ``[R, in]`` factor on the weight columns (an input spike).
        """
        beta_w, beta_b = self._slab(normal)
        if column_gate is not None:
            beta_w = beta_w * column_gate.unsqueeze(-2)
        return _linear(x, beta_w, beta_b)

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
        return self._slab(normal)

    def sample_weights(
        self, generators: Sequence[torch.Generator]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One exact draw ``(W [R, out, in], b [R, out])``; replicate ``r`` uses its generator."""
        normal, uniform = draw_noise(
            generators,
            self.normal_count,
            self.uniform_count,
            dtype=self.bias_mu.dtype,
            device=self.bias_mu.device,
        )
        with torch.no_grad():
            return self.weights_from_noise(normal, uniform)

    def mean_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Variational means on the kept structure, ``(W [R, out, in], b [R, out])``."""
        return self.weight_mu.detach().clone(), self.bias_mu.detach().clone()


class MeanFieldLinear(VariationalLinear):
    """Dense mean-field Gaussian layer (Bayes by backprop): ``W = beta``, no spike.

    ``KL = sum KL(N(mu, sd^2) || N(0, sigma_0^2))`` over weights and biases.
    """


class _GroupLassoScale(nn.Module):
    """``scale_j = tau_j``; ``tau_j^2 ~ Gamma((d+1)/2, rate kappa^2/2)``, ``kappa^2 ~ Gamma(a, b)``.

    Variational factors ``tau_j^2 ~ LogNormal(m_j, s_j^2)`` and ``kappa^2 ~
    LogNormal(m_k, s_k^2)``, ``s = softplus(rho)``. Initialised at ``tau^2 = 1`` and
    ``kappa^2 = d + 1``, where the conditional prior mean ``(d+1)/kappa^2`` of ``tau^2`` is 1.
    """

    def __init__(self, reps, out, group_size, *, kappa_shape, kappa_rate, rho_init, kw):
        super().__init__()
        self.gamma_shape = (group_size + 1) / 2.0
        self.kappa_shape = _check_positive(kappa_shape, "kappa_shape")
        self.kappa_rate = _check_positive(kappa_rate, "kappa_rate")
        self.tau2_mu = nn.Parameter(torch.zeros((reps, out), **kw))
        self.tau2_rho = nn.Parameter(torch.full((reps, out), rho_init, **kw))
        self.kappa2_mu = nn.Parameter(torch.full((reps,), math.log(group_size + 1.0), **kw))
        self.kappa2_rho = nn.Parameter(torch.full((reps,), rho_init, **kw))
        self.noise_count = out

    def log_scale(self, eps: torch.Tensor) -> torch.Tensor:
        """``log tau_j = (m_j + s_j eps_j) / 2`` from ``eps [..., R, out]``."""
        return 0.5 * torch.addcmul(self.tau2_mu, softplus(self.tau2_rho), eps)

    def log_scale_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and sd of the Gaussian ``log tau_j`` under ``q``, ``[R, out]`` each."""
        return 0.5 * self.tau2_mu, 0.5 * softplus(self.tau2_rho)

    def scale(self, log_scale: torch.Tensor) -> torch.Tensor:
        """``tau = exp(log tau)``."""
        return torch.exp(log_scale)

    def kl(self) -> torch.Tensor:
        """``sum_j E_q KL(q(tau_j^2) || Gamma((d+1)/2, kappa^2/2))``
        ``+ KL(q(kappa^2) || Gamma(a, b))``.

        The expected KL uses ``E_q[log(kappa^2/2)] = m_k - log 2`` and
        ``E_q[kappa^2/2] = exp(m_k + s_k^2/2) / 2`` (see :func:`kl_lognormal_gamma`).
        """
        s_k = softplus(self.kappa2_rho)
        mean_rate = 0.5 * torch.exp(self.kappa2_mu + 0.5 * s_k.square()).unsqueeze(-1)
        mean_log_rate = (self.kappa2_mu - math.log(2.0)).unsqueeze(-1)
        s_tau = softplus(self.tau2_rho)
        local = kl_lognormal_gamma(self.tau2_mu, s_tau, self.gamma_shape, mean_rate, mean_log_rate)
        return local.sum(-1) + kl_lognormal_gamma(
            self.kappa2_mu, s_k, self.kappa_shape, self.kappa_rate
        )


class _GroupHorseshoeScale(nn.Module):
    """``scale_j = g tau_j`` or ``c g tau_j / sqrt(c^2 + g^2 tau_j^2)``, half-Cauchy ``g, tau_j``.

    ``tau_j ~ C+(0, A)`` written as ``tau_j^2 = a_j b_j``, ``a_j ~ Gamma(1/2, rate 1/A^2)``,
    ``b_j ~ InvGamma(1/2, 1)``; likewise ``g ~ C+(0, g_0)`` with ``(a_g, b_g)``.
    Variational LogNormal factors for ``a_j, b_j, a_g, b_g``, so ``v_j = log(g tau_j) =
    (log a_j + log b_j + log a_g + log b_g) / 2`` is Gaussian under ``q``.
    Initialised with each Gamma factor at its prior scale (``a_j = A^2``,
    ``a_g = g_0^2``) and each inverse-Gamma factor at the reciprocal
    (``b_j = 1/A^2``, ``b_g = 1/g_0^2``), so ``g tau_j = 1``: the initial network is
    the Kaiming-initialised one, and the KL stays moderate (``a_g = 1`` would
    cost ``1/g_0^2 = 10^5`` nats).
    """

    def __init__(self, reps, out, *, global_scale, local_scale, slab_width, rho_init, kw):
        super().__init__()
        self.global_scale = _check_positive(global_scale, "global_scale")
        self.local_scale = _check_positive(local_scale, "local_scale")
        self.slab_width = None if slab_width is None else _check_positive(slab_width, "slab_width")
        log_a = 2.0 * math.log(self.local_scale)
        log_ag = 2.0 * math.log(self.global_scale)
        self.a_mu = nn.Parameter(torch.full((reps, out), log_a, **kw))
        self.a_rho = nn.Parameter(torch.full((reps, out), rho_init, **kw))
        self.b_mu = nn.Parameter(torch.full((reps, out), -log_a, **kw))
        self.b_rho = nn.Parameter(torch.full((reps, out), rho_init, **kw))
        self.ga_mu = nn.Parameter(torch.full((reps,), log_ag, **kw))
        self.ga_rho = nn.Parameter(torch.full((reps,), rho_init, **kw))
        self.gb_mu = nn.Parameter(torch.full((reps,), -log_ag, **kw))
        self.gb_rho = nn.Parameter(torch.full((reps,), rho_init, **kw))
        self.noise_count = out + 1

    def _parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Means and sds of ``log tau_j`` (``[R, out]``) and of ``log g`` (``[R]``) under ``q``."""
        local_mean = 0.5 * (self.a_mu + self.b_mu)
        local_sd = 0.5 * torch.sqrt(softplus(self.a_rho).square() + softplus(self.b_rho).square())
        global_mean = 0.5 * (self.ga_mu + self.gb_mu)
        global_sd = 0.5 * torch.sqrt(
            softplus(self.ga_rho).square() + softplus(self.gb_rho).square()
        )
        return local_mean, local_sd, global_mean, global_sd

    def log_scale(self, eps: torch.Tensor) -> torch.Tensor:
        """``v_j = log(g tau_j)`` from ``eps [..., R, out + 1]`` (last column: the global draw).

        One normal per node draws ``log a_j + log b_j`` and one per layer draws
        ``log a_g + log b_g``: sums of independent Gaussians, so this is an exact
        draw of the same joint law (``g`` shared by the nodes) with half the noise.
        """
        lm, ls, gm, gs = self._parts()
        glob = torch.addcmul(gm, gs, eps[..., -1]).unsqueeze(-1)
        return torch.addcmul(lm, ls, eps[..., :-1]) + glob

    def log_scale_moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and sd of the Gaussian ``v_j = log(g tau_j)`` under ``q``, ``[R, out]`` each."""
        lm, ls, gm, gs = self._parts()
        return lm + gm.unsqueeze(-1), torch.sqrt(ls.square() + gs.square().unsqueeze(-1))

    def scale(self, log_scale: torch.Tensor) -> torch.Tensor:
        """``e^v``, or ``c e^v / sqrt(c^2 + e^{2v}) = exp(v - softplus(2 (v - log c)) / 2)``."""
        if self.slab_width is None:
            return torch.exp(log_scale)
        shifted = log_scale - math.log(self.slab_width)
        return torch.exp(log_scale - 0.5 * softplus(2.0 * shifted))

    def kl(self) -> torch.Tensor:
        """KL of ``a_j, b_j`` (summed over nodes) and ``a_g, b_g`` against their priors, ``[R]``."""
        rate_local = 1.0 / self.local_scale**2
        rate_global = 1.0 / self.global_scale**2
        local = kl_lognormal_gamma(self.a_mu, softplus(self.a_rho), 0.5, rate_local)
        local = local + kl_lognormal_invgamma(self.b_mu, softplus(self.b_rho), 0.5, 1.0)
        glob = kl_lognormal_gamma(self.ga_mu, softplus(self.ga_rho), 0.5, rate_global)
        glob = glob + kl_lognormal_invgamma(self.gb_mu, softplus(self.gb_rho), 0.5, 1.0)
        return local.sum(-1) + glob


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

    (the Gaussian part weighted by the inclusion probability ``pi_j``). After
    :meth:`freeze_masks` the indicators are fixed at the kept structure and
    ``pi_j`` is replaced by the frozen mask.

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
        self.prior_inclusion = _check_probability(prior_inclusion, "prior_inclusion")
        init = _check_probability(inclusion_init, "inclusion_init")
        self.straight_through = bool(straight_through)
        kw = {"dtype": dtype, "device": device}
        self.theta = nn.Parameter(
            torch.full((self.replicates, self.out_features), math.log(init / (1 - init)), **kw)
        )
        self.register_buffer("frozen_mask", None)
        reps, out = self.replicates, self.out_features
        if self.slab is Prior.SS_GL:
            self.scale_factor = _GroupLassoScale(
                reps, out, self.in_features + 1, kappa_shape=kappa_shape,
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
        """Normals per replicate: ``beta`` (weights, biases), then the scale draws."""
        extra = 0 if self.scale_factor is None else self.scale_factor.noise_count
        return self.slab_normal_count + extra

    @property
    def uniform_count(self) -> int:
        """One uniform per node (its indicator)."""
        return self.out_features

    def _scale(self, normal: torch.Tensor) -> torch.Tensor | None:
        if self.scale_factor is None:
            return None
        eps = normal[..., self.slab_normal_count :]
        return self.scale_factor.scale(self.scale_factor.log_scale(eps))

    def forward(self, x, normal, uniform=None, temperature=0.5, column_gate=None):
        """Training pass ``[R, B, in] -> [R, B, out]``: ``(x beta_j^T + beta_j0) * z_j * scale_j``.

        ``uniform`` is this layer's ``[R, out]`` uniform noise for the relaxed
        indicators (ignored once the masks are frozen). See :meth:`VariationalLinear.forward`.
        """
        beta_w, beta_b = self._slab(normal)
        if column_gate is not None:
            beta_w = beta_w * column_gate.unsqueeze(-2)
        if self.frozen_mask is not None:
            gate = self.frozen_mask
        else:
            gate = relaxed_bernoulli(
                self.theta,
                logistic_noise(uniform),
                temperature,
                straight_through=self.straight_through,
            )
        scale = self._scale(normal)
        if scale is not None:
            gate = gate * scale
        return _linear(x, beta_w, beta_b) * gate.unsqueeze(-2)

    def _weights(self) -> torch.Tensor:
        """Inclusion weights of the Gaussian KL: ``pi_j``, or the frozen mask."""
        return sigmoid(self.theta) if self.frozen_mask is None else self.frozen_mask

    def kl(self) -> torch.Tensor:
        """Per-replicate KL ``[R]`` (see the class docstring)."""
        if self.frozen_mask is None:
            kl_z = kl_bernoulli(self.theta, self.prior_inclusion)
        else:  # point mass at the frozen mask: KL = -log lambda (kept) or -log(1 - lambda)
            kl_z = -torch.where(
                self.frozen_mask > 0,
                math.log(self.prior_inclusion),
                math.log1p(-self.prior_inclusion),
            )
        total = kl_z.sum(-1) + (self._weights() * self.slab_kl()).sum(-1)
        if self.scale_factor is not None:
            total = total + self.scale_factor.kl()
        return total

    def inclusion_probs(self) -> torch.Tensor:
        """``pi_j = sigmoid(theta_j)``, ``[R, out]``; the 0/1 mask once frozen."""
        return self._weights().detach()

    def freeze_masks(self) -> None:
        """Fix the indicators at the kept structure (``pi_j > 0.5``) for fine-tuning."""
        self.frozen_mask = self.kept().to(self.theta.dtype)

    def unfreeze_masks(self) -> None:
        """Return to relaxed indicators."""
        self.frozen_mask = None

    def expected_scale(self) -> torch.Tensor:
        """``E_q[scale_j]``, ``[R, out]`` (1 for the Gaussian slab)."""
        if self.scale_factor is None:
            return torch.ones_like(self.theta.detach())
        mean, sd = self.scale_factor.log_scale_moments()
        closed = getattr(self.scale_factor, "slab_width", None) is None
        return _expected_scale(self.scale_factor.scale, mean, sd, closed).detach()

    def weights_from_noise(self, normal, uniform):
        """Exact draw ``W_j = z_j scale_j beta_j``, z_j = 1{u_j < pi_j}; ``[..., R, out, in]``."""
        beta_w, beta_b = self._slab(normal)
        gate = (uniform < self._weights()).to(beta_b.dtype)
        scale = self._scale(normal)
        if scale is not None:
            gate = gate * scale
        return beta_w * gate.unsqueeze(-1), beta_b * gate

    def mean_weights(self):
        """``kept_j * E_q[scale_j] * mu_j`` for weights ``[R, out, in]`` and biases ``[R, out]``."""
        gate = self.kept().to(self.theta.dtype) * self.expected_scale()
        return self.weight_mu.detach() * gate.unsqueeze(-1), self.bias_mu.detach() * gate


class EdgeSpikeSlabLinear(VariationalLinear):
    """Edge spike-and-slab layer (Bai, Song & Cheng 2020): one indicator per weight and bias.

    ``w_ji = z_ji beta_ji``, ``z_ji ~ Bernoulli(sigmoid(theta_ji))`` (prior
    ``Bernoulli(lambda)``), ``beta_ji ~ N(mu_ji, softplus(rho_ji)^2)``, prior
    ``N(0, sigma_0^2)``:

        KL = sum_ji [ KL(Bern(pi_ji) || Bern(lambda)) + pi_ji KL(q(beta_ji) || N(0, sigma_0^2)) ]

    over weights and biases. Parameters as :class:`NodeSpikeSlabLinear` (no scale).
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
        self.prior_inclusion = _check_probability(prior_inclusion, "prior_inclusion")
        init = _check_probability(inclusion_init, "inclusion_init")
        self.straight_through = bool(straight_through)
        logit = math.log(init / (1 - init))
        kw = {"dtype": dtype, "device": device}
        self.weight_theta = nn.Parameter(torch.full(self.weight_mu.shape, logit, **kw))
        self.bias_theta = nn.Parameter(torch.full(self.bias_mu.shape, logit, **kw))
        self.register_buffer("frozen_weight_mask", None)
        self.register_buffer("frozen_bias_mask", None)

    @property
    def uniform_count(self) -> int:
        """One uniform per weight and per bias."""
        return self.slab_normal_count

    def _split_uniform(self, uniform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lead = uniform.shape[:-1]
        n_w = self.out_features * self.in_features
        u_w = uniform[..., :n_w].view(*lead, self.out_features, self.in_features)
        return u_w, uniform[..., n_w:]

    def _masks(self, uniform, temperature):
        if self.frozen_weight_mask is not None:
            return self.frozen_weight_mask, self.frozen_bias_mask
        u_w, u_b = self._split_uniform(uniform)
        st = self.straight_through
        z_w = relaxed_bernoulli(
            self.weight_theta, logistic_noise(u_w), temperature, straight_through=st
        )
        z_b = relaxed_bernoulli(
            self.bias_theta, logistic_noise(u_b), temperature, straight_through=st
        )
        return z_w, z_b

    def forward(self, x, normal, uniform=None, temperature=0.5, column_gate=None):
        """Training pass ``[R, B, in] -> [R, B, out]`` with ``W = z * beta`` (relaxed ``z``)."""
        beta_w, beta_b = self._slab(normal)
        z_w, z_b = self._masks(uniform, temperature)
        weight = beta_w * z_w
        if column_gate is not None:
            weight = weight * column_gate.unsqueeze(-2)
        return _linear(x, weight, beta_b * z_b)

    def kl(self) -> torch.Tensor:
        """Per-replicate KL ``[R]`` (see the class docstring)."""
        sd_w, sd_b = softplus(self.weight_rho), softplus(self.bias_rho)
        gauss_w = kl_normal(self.weight_mu, sd_w, 0.0, self.sigma_0)
        gauss_b = kl_normal(self.bias_mu, sd_b, 0.0, self.sigma_0)
        pi_w, pi_b = self._weights()
        if self.frozen_weight_mask is None:
            kl_w = kl_bernoulli(self.weight_theta, self.prior_inclusion)
            kl_b = kl_bernoulli(self.bias_theta, self.prior_inclusion)
        else:
            log_in, log_out = math.log(self.prior_inclusion), math.log1p(-self.prior_inclusion)
            kl_w = -torch.where(pi_w > 0, log_in, log_out)
            kl_b = -torch.where(pi_b > 0, log_in, log_out)
        weight_part = (kl_w + pi_w * gauss_w).sum((-2, -1))
        return weight_part + (kl_b + pi_b * gauss_b).sum(-1)

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Inclusion probabilities of weights and biases, or the frozen masks."""
        if self.frozen_weight_mask is not None:
            return self.frozen_weight_mask, self.frozen_bias_mask
        return sigmoid(self.weight_theta), sigmoid(self.bias_theta)

    def inclusion_probs(self) -> torch.Tensor:
        """Weight inclusion probabilities ``[R, out, in]``; the 0/1 mask once frozen."""
        return self._weights()[0].detach()

    def bias_inclusion_probs(self) -> torch.Tensor:
        """Bias inclusion probabilities ``[R, out]``; the 0/1 mask once frozen."""
        return self._weights()[1].detach()

    def freeze_masks(self) -> None:
        """Fix the indicators at the kept weights and biases (``pi > 0.5``) for fine-tuning."""
        weight_mask = self.kept().to(self.weight_mu.dtype)
        bias_mask = (self.bias_inclusion_probs() > 0.5).to(self.bias_mu.dtype)
        self.frozen_weight_mask, self.frozen_bias_mask = weight_mask, bias_mask

    def unfreeze_masks(self) -> None:
        """Return to relaxed indicators."""
        self.frozen_weight_mask = None
        self.frozen_bias_mask = None

    def weights_from_noise(self, normal, uniform):
        """Exact draw ``W = 1{u < pi} * beta`` for weights ``[..., R, out, in]`` and biases."""
        beta_w, beta_b = self._slab(normal)
        u_w, u_b = self._split_uniform(uniform)
        pi_w, pi_b = self._weights()
        z_w, z_b = (u_w < pi_w).to(beta_w.dtype), (u_b < pi_b).to(beta_b.dtype)
        return beta_w * z_w, beta_b * z_b

    def mean_weights(self):
        """``kept * mu`` for weights ``[R, out, in]`` and biases ``[R, out]``."""
        keep_w = self.kept().to(self.weight_mu.dtype)
        keep_b = (self.bias_inclusion_probs() > 0.5).to(self.bias_mu.dtype)
        return self.weight_mu.detach() * keep_w, self.bias_mu.detach() * keep_b


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
        self.prior_inclusion = _check_probability(prior_inclusion, "input_inclusion")
        init = _check_probability(inclusion_init, "inclusion_init")
        self.straight_through = bool(straight_through)
        logit = math.log(init / (1 - init))
        self.theta = nn.Parameter(
            torch.full((reps, self.features), logit, dtype=dtype, device=device)
        )
        self.register_buffer("frozen_mask", None)

    @property
    def uniform_count(self) -> int:
        """One uniform per input."""
        return self.features

    def gate(self, uniform: torch.Tensor | None, temperature: float) -> torch.Tensor:
        """Relaxed indicators ``[R, p]`` (or the frozen mask)."""
        if self.frozen_mask is not None:
            return self.frozen_mask
        noise = logistic_noise(uniform)
        return relaxed_bernoulli(
            self.theta, noise, temperature, straight_through=self.straight_through
        )

    def mask_from_noise(self, uniform: torch.Tensor) -> torch.Tensor:
        """Exact draw ``z_i = 1{u_i < pi_i}``, ``[..., R, p]``."""
        return (uniform < self.inclusion_probs()).to(self.theta.dtype)

    def kl(self) -> torch.Tensor:
        """``sum_i KL(Bern(pi_i) || Bern(lambda))`` (point mass at the frozen mask), ``[R]``."""
        if self.frozen_mask is None:
            return kl_bernoulli(self.theta, self.prior_inclusion).sum(-1)
        log_in, log_out = math.log(self.prior_inclusion), math.log1p(-self.prior_inclusion)
        return -torch.where(self.frozen_mask > 0, log_in, log_out).sum(-1)

    def inclusion_probs(self) -> torch.Tensor:
        """``pi_i``, ``[R, p]``; the 0/1 mask once frozen."""
        if self.frozen_mask is not None:
            return self.frozen_mask.clone()
        return sigmoid(self.theta.detach())

    def kept(self) -> torch.Tensor:
        """Inputs whose inclusion probability exceeds 0.5, ``[R, p]``."""
        return self.inclusion_probs() > 0.5

    def freeze_masks(self) -> None:
        """Fix the indicators at the kept inputs."""
        self.frozen_mask = self.kept().to(self.theta.dtype)

    def unfreeze_masks(self) -> None:
        """Return to relaxed indicators."""
        self.frozen_mask = None
