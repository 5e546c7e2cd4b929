"""Targets: teacher networks (``xi_n = 0``) and Hoelder-smooth functions (docs/theory.md, 5).

* A *teacher* is a node-sparse network in the model class, so the approximation error is
  ``xi_n = 0`` and the rate is the architecture's ``eps_n`` (:func:`teacher_rate`). The
  built-in default is the ``relu_teacher`` design of docs/designs.md.
* For ``f0`` in the Hoelder ball ``C^beta([0,1]^d)``, :func:`hoelder_architecture` picks a
  depth ``L_n ~ log n`` and a width ``N_n`` with every node active, under the
  approximation *assumption* of docs/theory.md, section 5.2 (a neuron-efficient ReLU
  approximation, ``||f_theta* - f0||_inf <= N^{-2 beta/d}``), and :func:`hoelder_rate`
  reports the fitted exponent of the risk bound over an ``n`` grid, which comes out as
  ``-2 beta/(2 beta + d)`` once the log factors are separated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ssbnn_theory.architecture import Architecture
from ssbnn_theory.enums import Prior
from ssbnn_theory.priors import PriorSpec
from ssbnn_theory.rates import ContractionRate, contraction_rate
from ssbnn_theory.validation import check_integer, check_real, check_real_array

__all__ = [
    "DEFAULT_ARCHITECTURE",
    "HoelderRate",
    "hoelder_architecture",
    "hoelder_rate",
    "relu_teacher_architecture",
    "teacher_rate",
]


def relu_teacher_architecture(p: int = 100, width: int = 16) -> Architecture:
    """The ``relu_teacher`` design of docs/designs.md as seen by a ``width``-``width`` ReLU student.

    True active nodes ``(4, 3)``; weights ``+-U[0.5, 1.5]`` and biases ``U(-0.5, 0.5)`` give
    the nominal bound ``B_l = 1.5`` on every layer (the design rescales the output to
    ``Var f0 ~ 1``, which typically shrinks the output weights; pass the realised bounds for
    a specific draw).
    """
    p = check_integer("p", p)
    width = check_integer("width", width, lower=4)
    return Architecture(p, (width, width), (4, 3), 1.5, "relu")


DEFAULT_ARCHITECTURE = relu_teacher_architecture()
"""``p=100``, hidden 16-16, active 4-3, bounds 1.5, ReLU, full fan-in (``ssbnn rate`` default)."""


def teacher_rate(
    arch: Architecture, prior: Prior | str | PriorSpec, n: np.ndarray | float, **kwargs: object
) -> ContractionRate:
    """The rate for a teacher network in the class: :func:`contraction_rate` with ``xi_n = 0``."""
    if "xi_n" in kwargs:
        raise TypeError("teacher_rate() fixes xi_n = 0; use contraction_rate() for xi_n > 0")
    return contraction_rate(arch, prior, n, xi_n=0.0, **kwargs)


def _width(beta: float, d: int, n: float, width_constant: float) -> int:
    return max(1, math.ceil(width_constant * n ** (d / (2.0 * (d + 2.0 * beta)))))


def hoelder_architecture(
    beta: float,
    d: int,
    n: float,
    *,
    width_constant: float = 1.0,
    depth_constant: float = 1.0,
    bound: float = 1.0,
) -> tuple[Architecture, float]:
    """Architecture and assumed approximation error for a ``C^beta([0,1]^d)`` target at ``n``.

    ``N_n = ceil(width_constant * n^{d / (2(d + 2 beta))})`` nodes in each of
    ``L_n = max(1, ceil(depth_constant * log2 n))`` hidden layers, every node active,
    ReLU, ``fan_in="active"``, weights bounded by ``bound``. Under Assumption H of
    docs/theory.md, section 5.2, ``xi_n = ||f_theta* - f0||_inf^2 <= N_n^{-4 beta/d}``, and
    ``N_n`` balances it with ``r_n ~ T/n ~ N_n^2 / n`` up to logs.

    Returns
    -------
    (Architecture, float)
        The architecture and the assumed ``xi_n``.
    """
    beta = check_real("beta", beta, lower=0.0, lower_open=True)
    d = check_integer("d", d)
    n = check_real("n", n, lower=1.0, lower_open=True)
    width_constant = check_real("width_constant", width_constant, lower=0.0, lower_open=True)
    depth_constant = check_real("depth_constant", depth_constant, lower=0.0, lower_open=True)
    bound = check_real("bound", bound, lower=0.0, lower_open=True)
    width = _width(beta, d, n, width_constant)
    depth = max(1, math.ceil(depth_constant * math.log2(n)))
    arch = Architecture(d, (width,) * depth, None, bound, "relu", fan_in="active")
    return arch, float(width) ** (-4.0 * beta / d)


@dataclass(frozen=True)
class HoelderRate:
    """Risk bound over an ``n`` grid for the Hoelder design, and its fitted exponents.

    ``exponent`` is ``b`` in the least-squares fit
    ``log risk_n = a + b log n + c log log n`` (the ``log log n`` regressor absorbs the
    polylogarithmic factors); ``raw_exponent`` the plain log-log slope; ``target`` is
    ``-2 beta / (2 beta + d)``.
    """

    beta: float
    d: int
    n: np.ndarray
    widths: np.ndarray
    depths: np.ndarray
    xi_n: np.ndarray
    eps2: np.ndarray
    risk_bound: np.ndarray
    exponent: float
    log_exponent: float
    raw_exponent: float
    target: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "beta": self.beta,
            "d": self.d,
            "n": self.n.tolist(),
            "widths": self.widths.tolist(),
            "depths": self.depths.tolist(),
            "xi_n": self.xi_n.tolist(),
            "eps2": self.eps2.tolist(),
            "risk_bound": self.risk_bound.tolist(),
            "exponent": self.exponent,
            "log_exponent": self.log_exponent,
            "raw_exponent": self.raw_exponent,
            "target": self.target,
        }


def hoelder_rate(
    beta: float,
    d: int,
    n: np.ndarray | list[float],
    prior: Prior | str | PriorSpec = Prior.SS_GL,
    *,
    sigma_e: float = 1.0,
    width_constant: float = 1.0,
    depth_constant: float = 1.0,
    bound: float = 1.0,
    closed_form: bool = False,
) -> HoelderRate:
    """Risk bounds ``eps_n^2 + r_n + xi_n`` of :func:`hoelder_architecture` over ``n``; exponent.

    ``n`` needs at least four values ``> 1``; a wide range (e.g. ``1e6 .. 1e60``) separates
    the polynomial exponent from the log factors cleanly.
    """
    beta = check_real("beta", beta, lower=0.0, lower_open=True)
    d = check_integer("d", d)
    grid = np.sort(np.atleast_1d(check_real_array("n", n, lower=1.0, lower_open=True)).ravel())
    if np.unique(grid).size < 4:
        check_integer("n (number of distinct values)", int(np.unique(grid).size), lower=4)
    widths, depths, xis, eps2, risk = [], [], [], [], []
    for value in grid:
        arch, xi = hoelder_architecture(
            beta,
            d,
            float(value),
            width_constant=width_constant,
            depth_constant=depth_constant,
            bound=bound,
        )
        rate = contraction_rate(
            arch, prior, value, sigma_e, xi_n=xi, closed_form=closed_form, conditions=False
        )
        widths.append(arch.hidden[0])
        depths.append(arch.depth)
        xis.append(xi)
        eps2.append(float(rate.eps2[0]))
        risk.append(float(rate.risk_bound[0]))
    log_n = np.log(grid)
    design = np.stack([np.ones_like(log_n), log_n, np.log(log_n)], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.log(risk), rcond=None)
    raw = np.polyfit(log_n, np.log(risk), 1)[0]
    return HoelderRate(
        beta=beta,
        d=d,
        n=grid,
        widths=np.asarray(widths),
        depths=np.asarray(depths),
        xi_n=np.asarray(xis),
        eps2=np.asarray(eps2),
        risk_bound=np.asarray(risk),
        exponent=float(coef[1]),
        log_exponent=float(coef[2]),
        raw_exponent=float(raw),
        target=-2.0 * beta / (2.0 * beta + d),
    )
