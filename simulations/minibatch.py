"""Per-replicate minibatches for :func:`simulations.train.fit`.

Sampling scheme: replicate ``r`` draws a fresh random permutation of its ``n``
observations at the start of every epoch, from its own generator (stream
``"minibatch"`` of its seed), and takes ``floor(n / B)`` consecutive minibatches
of ``B`` rows from it; a remainder of ``n mod B`` rows is left out of that epoch.
Replicate ``r``'s minibatches therefore depend on its seed and ``n`` alone, so a
batched run over ``R`` replicates sees the same minibatches as ``R`` separate runs.

With ``shuffle="once"`` the permutation is drawn once (the first epoch's, the same rows as
above) and every later epoch visits the same ``floor(n / B)`` minibatches in the same
order ("shuffle once", a cyclic pass over one random partition; the ``n mod B`` rows left
out of it stay out). The rows are then copied into the epoch buffer once, and every step
hands out a view of it: no data moves per step, which matters when the minibatch copy is
a large part of the step (wide inputs, many replicates; ``docs/engine.md``,
"Performance"). It is still a function of the replicate's seed and ``n`` alone.

Two layouts give identical minibatches (the same rows in the same order):

* ``"epoch"``: at the start of each epoch the ``floor(n / B) * B`` rows the epoch uses are
  copied once, in permutation order, into a reused ``[R, floor(n/B) B, p]`` buffer;
  each minibatch is then a slice of it, a view with no copy per step. It moves the same
  number of bytes per epoch as gathering every minibatch, in one long copy, and costs a
  second copy of the data in memory.
* ``"gather"``: each step gathers its ``R * B`` rows with ``index_select`` into a reused
  ``[R, B, p]`` buffer (a fresh buffer per step would be page-faulted in anew once it
  exceeds the allocator's reuse threshold).

The default is ``"gather"``: on the measured CPU the two layouts trained at the same
speed (the epoch copy ran at no better bandwidth than the per-step gathers, as expected
from the equal byte count) and the epoch layout doubles the data's memory;
``docs/engine.md`` ("Performance") has the figures.

Replicates need not be at the same step: :meth:`Minibatches.gather` takes one step index
for all, or one per replicate (the rounds of an ``"auto"`` fit, where each replicate starts
its phases on its own), and :meth:`Minibatches.restart` gives some replicates new
generators and a fresh permutation at their next step. Replicate ``r``'s minibatches stay
a function of its own generator and step index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

import torch

from simulations.layers import replicate_generators
from simulations.rng import stream_seed
from ssbnn_theory.enums import parse_enum
from ssbnn_theory.errors import InvalidParameterError

__all__ = ["LAYOUTS", "Minibatches", "Shuffle"]

LAYOUTS = ("epoch", "gather")


class Shuffle(StrEnum):
    """When a replicate's observations are permuted (see the module docstring)."""

    EPOCH = "epoch"
    """A fresh permutation every epoch (random reshuffling)."""
    ONCE = "once"
    """One permutation; its minibatches visited cyclically, no data copied per step."""


class Minibatches:
    """The minibatches of ``R`` replicates: inputs ``[R, B, p]`` and targets ``[R, B, ...]``.

    Parameters
    ----------
    x, y
        Data ``[R, n, p]`` and targets ``[R, n, ...]`` (contiguous, on the model's device).
    batch
        ``B`` in ``[1, n]``; ``B = n`` is full-batch training (the data themselves).
    seeds
        Replicate seeds; replicate ``r``'s generator is seeded with
        ``stream_seed(seeds[r], "minibatch")``.
    layout
        ``"gather"`` or ``"epoch"`` (see the module docstring); ``None`` (the default):
        ``"gather"``, or ``"epoch"`` with ``shuffle="once"``.
    shuffle
        ``"epoch"`` (the default): a fresh permutation every epoch; ``"once"``: one
        permutation, its minibatches visited cyclically (see the module docstring).

    Attributes
    ----------
    generators
        One generator per replicate (a checkpoint saves their states).
    perm
        The current epoch's permutations ``[R, n]`` (``None`` before the first step);
        assigning it (a checkpoint's) makes the next step continue that epoch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch: int,
        seeds: Sequence[int],
        *,
        layout: str | None = None,
        shuffle: Shuffle | str = Shuffle.EPOCH,
    ) -> None:
        reps, n = x.shape[:2]
        if len(seeds) != reps:
            raise InvalidParameterError("seeds", f"one seed per replicate ({reps})", len(seeds))
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= n:
            raise InvalidParameterError("batch_size", f"an integer in [1, n] = [1, {n}]", batch)
        shuffle = parse_enum(Shuffle, shuffle, "shuffle")
        if layout is None:
            layout = "epoch" if shuffle is Shuffle.ONCE else "gather"
        if layout not in LAYOUTS:
            raise InvalidParameterError("layout", f"one of {LAYOUTS}", layout)
        self.reshuffle = shuffle is Shuffle.EPOCH
        self.x, self.y, self.n, self.batch = x, y, n, batch
        self.full = batch == n
        self.per_epoch = n // batch
        device = x.device
        self.generators = replicate_generators([stream_seed(s, "minibatch") for s in seeds], device)
        self._perm: torch.Tensor | None = None
        self._stale = True  # the epoch buffer does not hold self._perm's rows
        self._fresh = torch.zeros(reps, dtype=torch.bool)  # draw these rows' permutation anew
        self._last = [-1] * reps  # each row's last step
        self.offsets = (torch.arange(reps, device=device) * n).unsqueeze(1)
        used = self.per_epoch * batch
        self.layout = "full" if self.full else layout
        self.x_buffer = self.y_buffer = None
        if self.layout != "full":
            rows = used if self.layout == "epoch" else batch
            self.x_buffer = x.new_empty((reps, rows, *x.shape[2:]))
            self.y_buffer = y.new_empty((reps, rows, *y.shape[2:]))

    @property
    def perm(self) -> torch.Tensor | None:
        return self._perm

    @perm.setter
    def perm(self, value: torch.Tensor | None) -> None:
        self._perm = value
        self._stale = True

    @property
    def fresh(self) -> torch.Tensor:
        """``[R]`` bool: the replicates whose next step draws a new permutation
        (:meth:`restart`; a checkpoint saves it)."""
        return self._fresh

    @fresh.setter
    def fresh(self, value: torch.Tensor) -> None:
        self._fresh = value.clone()

    def restart(self, rows: torch.Tensor, generators: Sequence[torch.Generator]) -> None:
        """Replicates ``rows`` (``[R]`` bool) take ``generators`` (one per selected replicate,
        in order) and start a new epoch, with a fresh permutation, at their next step."""
        for r, g in zip(rows.nonzero().flatten().tolist(), generators, strict=True):
            self.generators[r] = g
        self._fresh |= rows

    def _permutations(self, step: int | torch.Tensor) -> list[int]:
        """Draw a replicate's permutation when its step starts an epoch (with
        ``shuffle="once"``: only its first) or it was restarted; each replicate's minibatch
        index into its permutation. A replicate asked for the same step again (one that has
        stopped while the others go on) keeps its minibatch. (Bookkept in Python integers:
        a few tensor operations per step on ``R`` values cost more than the arithmetic.)"""
        reps = len(self.generators)
        if isinstance(step, torch.Tensor) and step.dim() > 0:
            steps = step.tolist()
        else:
            steps = [int(step)] * reps
        ks = [s % self.per_epoch for s in steps]
        fresh = self._fresh.tolist()
        draw = [
            f or (k == 0 and s != last and self.reshuffle)
            for f, k, s, last in zip(fresh, ks, steps, self._last, strict=True)
        ]
        self._last = steps
        if self._perm is None:
            draw = [True] * reps
            self._perm = torch.empty((reps, self.n), dtype=torch.long, device=self.offsets.device)
        drawn = [r for r, d in enumerate(draw) if d]
        for r in drawn:
            self._perm[r] = torch.randperm(
                self.n, generator=self.generators[r], device=self.offsets.device
            )
        if drawn:
            self._stale = True
            if any(fresh):
                self._fresh = self._fresh & ~torch.tensor(draw)
        return ks

    def _window(self, ks: list[int]) -> torch.Tensor | int:
        """Column indices ``[R, B]`` of each replicate's minibatch in its permutation, or the
        common first column when every replicate is at the same index."""
        if ks.count(ks[0]) == len(ks):
            return ks[0] * self.batch
        cols = torch.arange(self.batch, device=self.offsets.device)
        k = torch.tensor(ks, device=self.offsets.device)
        return k.unsqueeze(1) * self.batch + cols

    def indices(self, step: int | torch.Tensor) -> torch.Tensor | None:
        """Flat row indices ``[R * B]`` of step ``step`` (one for all replicates or one per
        replicate, ``[R]``) into ``x.view(R * n, p)`` (``None``: the full batch)."""
        if self.full:
            return None
        window = self._window(self._permutations(step))
        if isinstance(window, int):
            rows = self._perm[:, window : window + self.batch]
        else:
            rows = self._perm.gather(1, window)
        return (rows + self.offsets).reshape(-1)

    def gather(self, step: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``[R, B, p]`` and targets of step ``step`` (0-based; one for all replicates,
        or one per replicate, ``[R]``).

        A replicate's steps must come in order within an epoch (a new epoch, or a resumed
        run whose ``perm`` was restored, may start anywhere). The returned tensors are views
        of reused buffers, valid until the next call.
        """
        if self.full:
            return self.x, self.y
        if self.layout == "gather":
            idx = self.indices(step)
            _select(self.x, idx, self.x_buffer)
            _select(self.y, idx, self.y_buffer)
            return self.x_buffer, self.y_buffer
        k = self._permutations(step)
        if self._stale:
            used = self.per_epoch * self.batch
            idx = (self._perm[:, :used] + self.offsets).reshape(-1)
            _select(self.x, idx, self.x_buffer)
            _select(self.y, idx, self.y_buffer)
            self._stale = False
        window = self._window(k)
        if isinstance(window, int):
            rows = slice(window, window + self.batch)
            return self.x_buffer[:, rows], self.y_buffer[:, rows]
        # Replicates at different indices: gather their windows of the epoch buffer.
        used = self.per_epoch * self.batch
        idx = (window + self.offsets // self.n * used).reshape(-1)
        return _select(self.x_buffer, idx), _select(self.y_buffer, idx)


def _select(data: torch.Tensor, idx: torch.Tensor, out: torch.Tensor | None = None):
    """Rows ``idx`` (``[R * B]``) of ``data`` viewed as ``[R * n, ...]``, as ``[R, B, ...]``:
    written into ``out`` when given, else a new tensor."""
    reps, n = data.shape[:2]
    rest = data.shape[2:]
    # One value per row (targets [R, n, 1]): select from the flat vector, which is several
    # times faster than selecting rows of one element.
    row = () if math.prod(rest) == 1 else rest
    flat = data.view(reps * n, *row)
    if out is None:
        return torch.index_select(flat, 0, idx).view(reps, -1, *rest)
    return torch.index_select(flat, 0, idx, out=out.view(len(idx), *row)).view(out.shape)
