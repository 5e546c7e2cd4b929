"""Contraction-rate bounds for node-sparse Bayesian neural networks (pure numpy/scipy/sympy)."""

from importlib.metadata import PackageNotFoundError, version

from ssbnn_theory.enums import Activation, FanIn, Prior
from ssbnn_theory.errors import InvalidParameterError

try:
    __version__ = version("ssbnn")
except PackageNotFoundError:  # pragma: no cover - source tree without installation
    __version__ = "0+unknown"

__all__ = ["Activation", "FanIn", "InvalidParameterError", "Prior", "__version__"]
