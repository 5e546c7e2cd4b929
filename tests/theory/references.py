"""Reference computations written from docs/theory.md, independent of ssbnn_theory's code.

Plain linear-space float64 loops (no log-space recursion, no package kernels): the L1
envelope, perturbation polynomial and Lipschitz factor of section 3.1, and ``delta*`` by
``scipy.optimize.brentq``. Used where a test needs a value the package also computes.
"""

from __future__ import annotations

import math

from scipy import optimize

from ssbnn_theory import Architecture

# (ell, a = |psi(0)|, sup |psi|) per activation, from section 1 (silu: ell rounded up)
ACTIVATION_CONSTANTS = {
    "relu": (1.0, 0.0, math.inf),
    "tanh": (1.0, 0.0, 1.0),
    "sigmoid": (0.25, 0.5, 1.0),
    "silu": (1.09984, 0.0, math.inf),
}


def fan_in(arch: Architecture) -> list[int]:
    """``m_1..m_{L+1}``: ``k_{l-1}``, or ``p, s_1, ..., s_L`` under ``fan_in="active"``."""
    widths = [arch.p, *arch.hidden]
    if arch.fan_in.value == "active":
        return [arch.p, *arch.active]
    return widths


def perturbation(arch: Architecture, delta: float) -> float:
    """``D_{L+1}(delta)`` by the recursion of section 3.1, in linear space."""
    ell, a, cap = ACTIVATION_CONSTANTS[arch.activation.value]
    m = fan_in(arch)
    h, d = 1.0, 0.0
    for layer in range(arch.depth + 1):
        bound = arch.bounds[layer]
        lip = ell if layer < arch.depth else 1.0
        d = lip * (delta * (m[layer] * h + 1.0) + m[layer] * (bound + delta) * d)
        h = min(a + ell * bound * (m[layer] * h + 1.0), cap)
    return d


def lipschitz(arch: Architecture) -> float:
    """``Lambda = dD/d delta`` at 0.

    ``Lambda_l = ell_l (m_l H_{l-1} + 1 + m_l B_l Lambda_{l-1})``, ``Lambda_0 = 0``.
    """
    ell, a, cap = ACTIVATION_CONSTANTS[arch.activation.value]
    m = fan_in(arch)
    h, lam = 1.0, 0.0
    for layer in range(arch.depth + 1):
        bound = arch.bounds[layer]
        lip = ell if layer < arch.depth else 1.0
        lam = lip * (m[layer] * h + 1.0 + m[layer] * bound * lam)
        h = min(a + ell * bound * (m[layer] * h + 1.0), cap)
    return lam


def delta_star(arch: Architecture, eta: float) -> float:
    """The root of ``D(delta) = eta`` (``D`` increasing), by Brent's method."""
    hi = eta / lipschitz(arch)  # D(delta) >= Lambda delta
    return optimize.brentq(lambda x: perturbation(arch, x) - eta, 0.0, hi, xtol=1e-300, rtol=1e-15)
