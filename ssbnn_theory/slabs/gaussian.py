"""Gaussian slab (``ss-ig``, Jantre et al. 2021): ``w ~ N(0, sigma_0^2 I_d)``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from ssbnn_theory._numerics import log_normal_box
from ssbnn_theory.enums import Prior
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.slabs.base import _LOG2, _LOG_2PI, SmallBall

if TYPE_CHECKING:
    from ssbnn_theory.priors import PriorSpec

__all__ = ["GaussianSlab", "gaussian_log_bound_inverse", "gaussian_log_tail"]


def _ig_phi(
    sigma: float, log_delta: np.ndarray, bound: np.ndarray, r: np.ndarray, closed_form: bool
) -> np.ndarray:
    delta = np.exp(log_delta)
    if closed_form:
        return r * (
            np.log(sigma)
            + 0.5 * _LOG_2PI
            - _LOG2
            - log_delta
            + (bound + delta) ** 2 / (2 * sigma**2)
        )
    return -r * log_normal_box(bound / sigma, delta / sigma, log_delta - np.log(sigma))


def gaussian_log_tail(sigma: float, log_bound: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``log(2 d Phi(-B/sigma))`` capped at 0: the union bound on ``P(||w||_inf > B)``."""
    with np.errstate(over="ignore"):
        z = -np.exp(log_bound) / sigma
    return np.minimum(0.0, np.log(d) + _LOG2 + special.log_ndtr(z))


def gaussian_log_bound_inverse(sigma: float, y: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``log B`` with :func:`gaussian_log_tail` ``<= y`` (closed form through ``ndtri_exp``)."""
    z = np.minimum(y - np.log(2.0 * d), -_LOG2 - 1e-12)
    with np.errstate(divide="ignore"):
        return np.where(
            y - np.log(2.0 * d) >= -_LOG2, -np.inf, np.log(-sigma * special.ndtri_exp(z))
        )


class GaussianSlab:
    """``G = N(0, sigma_0^2 I_d)``: L2 in closed form, exact Gaussian tails."""

    family = Prior.SS_IG
    display = "SS-IG"
    color = "sky_blue"
    marker = "s"
    mixture = False
    takes_slab_width = False

    def label(self, spec: PriorSpec, out: str) -> str:
        return f"ss-ig (sigma_0={spec.sigma_0:g}{out})"

    def math_hyperparameters(self, spec: PriorSpec) -> list[str]:
        return []

    def variance_range(self, spec: PriorSpec, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s0 = spec.sigma_0**2
        return np.full_like(t, s0), np.full_like(t, s0)

    def log_scale_mass(
        self, spec: PriorSpec, t: np.ndarray, d: np.ndarray, closed_form: bool
    ) -> np.ndarray:
        raise InvalidParameterError("prior", "a scale-mixture family", spec.prior.value)

    def small_ball_phi(self, spec: PriorSpec, ball: SmallBall, *, closed_form: bool) -> np.ndarray:
        """``-r log(Phi((B+delta)/sigma_0) - Phi((B-delta)/sigma_0))`` (exact worst case), or
        ``r [log(sigma_0 sqrt(2 pi)/(2 delta)) + (B+delta)^2/(2 sigma_0^2)]``."""
        return _ig_phi(spec.sigma_0, ball.log_delta, ball.bound, ball.r, closed_form)

    def log_tail(self, spec: PriorSpec, log_bound: np.ndarray, d: np.ndarray) -> np.ndarray:
        return gaussian_log_tail(spec.sigma_0, log_bound, d)

    def tail_log_bound_inverse(self, spec: PriorSpec, y: np.ndarray, d: np.ndarray) -> np.ndarray:
        return gaussian_log_bound_inverse(spec.sigma_0, y, d)

    def log_density(self, spec: PriorSpec, w: np.ndarray) -> np.ndarray:
        d = w.shape[-1]
        sq = np.sum(w * w, axis=-1)
        s0 = spec.sigma_0
        return -0.5 * sq / s0**2 - d * (np.log(s0) + 0.5 * _LOG_2PI)

    def sample(self, spec: PriorSpec, d: int, size: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((size, d))
        return spec.sigma_0 * z

    def variance_moments(
        self, spec: PriorSpec, mu: np.ndarray, s_u: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        s0 = spec.sigma_0**2
        return np.full_like(mu, math.log(s0)), np.full_like(mu, 1.0 / s0)

    def log_variance(self, spec: PriorSpec, log_t: np.ndarray) -> np.ndarray:
        return np.full_like(log_t, math.log(spec.sigma_0**2))

    def scale_kl(self, spec: PriorSpec, mu: np.ndarray, s_u: np.ndarray, d: float) -> np.ndarray:
        return np.zeros_like(mu)

    def scale_kl_bound(
        self, spec: PriorSpec, t: np.ndarray, d: float, base: float, width: float, sd: float
    ) -> np.ndarray:
        return np.zeros_like(t)

    def engine_scale_kl_floor(self, d: int) -> float:
        return 0.0

    def symbolic_phi(
        self, spec: PriorSpec, delta: Any, bound: Any, r: Any, d: Any, num: Any
    ) -> Any:
        import sympy

        s0 = num(spec.sigma_0)
        return r * (
            sympy.log(s0)
            + sympy.log(2 * sympy.pi) / 2
            - sympy.log(2)
            - sympy.log(delta)
            + (bound + delta) ** 2 / (2 * s0**2)
        )
