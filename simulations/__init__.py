"""Batched variational engine and simulation studies for node-sparse Bayesian neural networks."""

from ssbnn_theory import __version__

__all__ = ["__version__"]
