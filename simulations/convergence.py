"""When a fit has converged: a per-replicate plateau rule on the ELBO with learning-rate halving.

Every ``check_every`` steps, :class:`Plateau` reads each replicate's negative ELBO
per observation ``L_r`` on fixed rows and fixed noise
(:class:`simulations.structure.ElboEstimate`). For
replicate ``r``:

* an **improvement** is a check with ``L_r < best_r - tolerance``;
* after ``patience`` checks without improvement (a **plateau**) the replicate's
  learning rate halves, and the count restarts;
* a plateau at the smallest learning rate (after ``decays`` halvings) is
  **convergence**: the replicate stops updating while the others go on.

A replicate's schedule depends on its own trajectory only, so the batched run still
equals the separate runs. ``docs/engine.md`` ("Training until convergence") gives
the evidence behind the defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import is_integer

__all__ = ["ConvergenceRule", "Plateau"]


@dataclass(frozen=True)
class ConvergenceRule:
    """Options of the plateau rule (see the module docstring).

    Parameters
    ----------
    check_every
        Steps between two ELBO checks.
    patience
        Checks without improvement that make a plateau.
    decays
        Learning-rate halvings before a plateau counts as convergence.
    tolerance
        Smallest improvement of the negative ELBO per observation that counts.
    rows
        Evaluation rows per replicate of the fixed-noise ELBO (all rows when ``n`` is smaller).
    draws
        Noise draws of the fixed-noise ELBO.
    """

    check_every: int = 200
    patience: int = 4
    decays: int = 2
    tolerance: float = 1e-3
    rows: int = 4096
    draws: int = 4

    def __post_init__(self) -> None:
        for name, low in (("check_every", 1), ("patience", 1), ("decays", 0), ("rows", 1),
                          ("draws", 1)):  # fmt: skip
            if not is_integer(getattr(self, name), low):
                raise InvalidParameterError(
                    f"convergence.{name}", f"an integer >= {low}", getattr(self, name)
                )
        tol = self.tolerance
        if (
            not isinstance(tol, int | float)
            or isinstance(tol, bool)
            or not (math.isfinite(tol) and tol >= 0)
        ):
            raise InvalidParameterError("convergence.tolerance", "a finite number >= 0", tol)


class Plateau:
    """Per-replicate state of the rule: best value, checks since, halvings, learning-rate scale.

    Parameters
    ----------
    rule
        :class:`ConvergenceRule`.
    replicates
        ``R``.
    """

    def __init__(self, rule: ConvergenceRule, replicates: int) -> None:
        self.rule = rule
        self.best = torch.full((replicates,), math.inf, dtype=torch.float64)
        self.since = torch.zeros(replicates, dtype=torch.long)
        self.halvings = torch.zeros(replicates, dtype=torch.long)

    @property
    def lr_scale(self) -> torch.Tensor:
        """``2^-halvings`` per replicate, ``[R]``."""
        return torch.pow(0.5, self.halvings.double())

    def update(self, value: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Record one check of ``L_r`` (``[R]``) for the replicates ``rows`` (``[R]`` bool,
        default all; the others keep their state); returns which of them converged at it."""
        value = value.detach().double().cpu()
        rows = torch.ones_like(self.best, dtype=torch.bool) if rows is None else rows
        improved = value < self.best - self.rule.tolerance
        best = torch.minimum(self.best, value)
        since = torch.where(improved, 0, self.since + 1)
        plateau = rows & (since >= self.rule.patience)
        converged = plateau & (self.halvings >= self.rule.decays)
        halve = plateau & ~converged
        self.best = torch.where(rows, best, self.best)
        self.since = torch.where(rows & ~halve, since, torch.where(halve, 0, self.since))
        self.halvings = self.halvings + halve.long()
        return converged

    def reset(self, rows: torch.Tensor) -> None:
        """Start the rule afresh for the replicates ``rows`` (``[R]`` bool): a new phase."""
        self.best = torch.where(rows, math.inf, self.best)
        self.since = torch.where(rows, 0, self.since)
        self.halvings = torch.where(rows, 0, self.halvings)

    def state_dict(self) -> dict:
        """The state as tensors (for checkpoints)."""
        return {
            "best": self.best.clone(),
            "since": self.since.clone(),
            "halvings": self.halvings.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.best = state["best"].clone()
        self.since = state["since"].clone()
        self.halvings = state["halvings"].clone()
