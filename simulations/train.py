"""Training: ``TrainConfig`` and ``fit``, the negative ELBO per observation minimised with Adam.

For replicate ``r`` and a minibatch ``S`` of size ``B`` out of ``n`` observations,

    loss_r = ( (n / B) sum_{i in S} -log p(y_i | f_theta(x_i)) + beta_t KL(q_r || prior) ) / n

with the KL weight ``beta_t`` rising linearly to 1 over the warm-up steps
(``docs/elbo.md``). ``TrainConfig(steps="auto")`` trains in phases until a
per-replicate convergence rule holds (:mod:`simulations.convergence`), with the
coordinate-ascent pass over the indicators between them (:mod:`simulations.structure`);
``docs/engine.md``, "Training until convergence".

The replicates' losses are summed before the backward pass, so replicate ``r``'s
gradient is that of ``loss_r`` alone. Gradient clipping rescales each replicate's
gradient by its own norm; Adam acts elementwise. All randomness of replicate ``r``
(initial values, minibatches, weight and mask noise) comes from its own generators, so
a replicate's numbers do not depend on the other replicates, and a batched run over
``R`` replicates equals ``R`` separate runs with the same seeds up to the summation
order of batched matrix products
(``docs/engine.md``, "Replicates and seeds").

Implementation: all parameters of the model live in one ``[R, P]`` buffer (each
parameter a view into it) with one ``[R, P]`` gradient buffer, so zeroing,
per-replicate clipping, the finiteness check and the Adam step are each a
single operation whatever the number of parameter tensors (``docs/engine.md``).
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch

from simulations._io import atomic_write, plain
from simulations.convergence import ConvergenceRule, Plateau
from simulations.enums import Likelihood
from simulations.layers import replicate_generators
from simulations.memory import keep_freed_memory
from simulations.metrics import kept_counts
from simulations.minibatch import Minibatches, Shuffle
from simulations.model import BayesianMLP
from simulations.optim import RowAdam, RowOptimizer, RowSGD
from simulations.relaxed import TemperatureSchedule
from simulations.rng import stream_seed
from simulations.screen import (
    either,
    joined,
    screening_model,
    take_rows,
    take_screened,
    twin_model,
)
from simulations.search import removal_search
from simulations.step import LossStep, compile_pays
from simulations.structure import (
    ElboEstimate,
    block_names,
    indicator_pass,
    removal_costs,
    remove_nodes,
    replicate_rows,
)
from ssbnn_theory.enums import parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import is_integer

__all__ = [
    "FitReport",
    "NonFiniteError",
    "Optimizer",
    "TrainConfig",
    "auto_budget",
    "boolean_or_word",
    "checkpoint_files",
    "fit",
    "restart_seeds",
]

_CHECKPOINT_FORMAT = "ssbnn-fit-checkpoint/7"
# KL warm-up steps of an "auto" run's relaxed phase (TrainConfig.kl_warmup_steps).
_AUTO_WARMUP = 2000
# Steps of an "auto" run's dense phase (TrainConfig.dense_steps).
_AUTO_DENSE = 6000
# Starts per replicate of an "auto" run (TrainConfig.restarts).
_AUTO_RESTARTS = 5
# The "auto" budget (TrainConfig.max_steps and trial_steps left at None, auto_budget): the
# cap and the removal trials' arm length up to n = _AUTO_BUDGET_N observations, each growing
# by half the cap and by one arm length per doubling of n above it.
_AUTO_CAP = 36_000
_AUTO_ARMS = 1000
_AUTO_BUDGET_N = 8192
# Rows per minibatch of batch_size = "auto" (every row when n is at most this).
_AUTO_BATCH = 512
_BATCH_WORDS = ("auto", "full")
# What a replicate is doing in the rounds of an "auto" run (_Fit.stage).
_ROUND, _CONTROL, _REMOVAL, _FINISHED = 0, 1, 2, 3
# Autograd notes that a gradient view of the [R, P] buffer is not contiguous for R > 1;
# the views are preallocated and accumulated in place, so the note does not apply.
_LAYOUT_WARNING = ".*gradient layout contract.*"


class Optimizer(StrEnum):
    """Optimiser of the variational parameters."""

    ADAM = "adam"
    """Adam (Kingma & Ba 2015) with ``betas``; elementwise, so replicates stay independent."""
    SGD = "sgd"
    """Plain stochastic gradient descent."""


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter.

    Attributes
    ----------
    replicate
        The first replicate affected (0-based).
    step
        The training step (1-based) at which it was detected.
    """

    def __init__(self, what: str, replicate: int, step: int) -> None:
        self.replicate = replicate
        self.step = step
        super().__init__(f"non-finite {what} in replicate {replicate} at step {step}")


def auto_budget(n: int) -> tuple[int, int]:
    """``(max_steps, trial_steps)`` of an ``"auto"`` run on ``n`` observations by default:
    ``(36000, 1000)`` up to ``n = 8192``, then ``36000 (1 + d / 2)`` and ``1000 (1 + d)``
    with ``d = log2(n / 8192)`` doublings, rounded to whole steps. The recovery benchmark's
    fits at ``n = 32768`` reach a lower negative ELBO and fewer extra nodes with 3,000-step
    arms and a 72,000-step cap (``docs/engine.md``, "The budget grows with n")."""
    doublings = max(0.0, math.log2(n / _AUTO_BUDGET_N))
    return round(_AUTO_CAP * (1 + doublings / 2)), round(_AUTO_ARMS * (1 + doublings))


def boolean_or_word(field: str, value: object, word: str = "auto") -> bool | str:
    """``value`` of an option that is a boolean or the word ``word`` (any case)."""
    if isinstance(value, str) and value.strip().lower() == word:
        return word
    if not isinstance(value, bool):
        raise InvalidParameterError(field, f"true, false or '{word}'", value)
    return value


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`fit`.

    Parameters
    ----------
    steps
        Optimisation steps with relaxed indicators, or ``"auto"`` (the default): train
        in phases until the ``convergence`` rule holds, at most ``max_steps`` steps
        per replicate (:func:`fit`).
    max_steps
        Cap of an ``"auto"`` run: the steps in which a replicate is updated, all phases
        together. A replicate that reaches it stops (status ``"max_steps"``) while the others
        go on, so a replicate's fit does not depend on the others'; the batch's own step
        count can pass it, since the dense and relaxed phases last until their last
        replicate stops. ``None`` (the default): by the number of observations ``n``,
        36,000 up to ``n = 8192`` and 18,000 more per doubling of ``n`` above it
        (:func:`auto_budget`, resolved by :meth:`at_n` when :func:`fit` starts).
    dense_steps
        ``"auto"`` runs: steps of the dense phase, which trains every node (the indicators
        held at 1, full KL weight) before the relaxed phase, so that pruning starts from a
        dense fit (``docs/engine.md``). ``None`` (the default): 6,000 in an ``"auto"`` run
        (``max_steps // 6`` when that is less, 36,000 standing for a ``max_steps`` of
        ``None``); 0 (none) with a fixed number of steps, which only accepts 0.
    prune_every
        ``"auto"`` runs: steps of a pruning round, the training between two indicator
        passes while the passes still switch nodes. The relaxed phase takes at most
        ``kl_warmup_steps + prune_every`` steps (and at most ``max_steps // 2``).
    trial_steps
        ``"auto"`` runs: steps of each arm of a removal trial (the control arm and the arm
        without the node), at the learning rate ``lr``: long enough for the nodes that stay
        to take over the removed node's work (``docs/engine.md``, "Trial arms"). ``None``
        (the default): by ``n``, 1,000 up to ``n = 8192`` and 1,000 more per doubling of
        ``n`` above it (:func:`auto_budget`).
    search_steps
        ``"auto"`` runs: steps of each arm of the removal search (``search``). ``None`` (the
        default): ``trial_steps``. Longer arms give the nodes that stay after a removal
        time to reorganise: on the recovery benchmark's deep truth 10,000-step arms remove
        extra nodes that 1,000-step arms keep, on its p = 100 truth true second-layer nodes
        too (``docs/recovery.md``, "Long search arms").
    trial_misses
        ``"auto"`` runs: rejected removal trials in a row after which a replicate leaves
        the trials.
    batch_size
        Minibatch size ``B``: an integer in ``[1, n]``; ``"full"`` (every row at every step);
        or ``"auto"``: 512 rows, every row when ``n <= 512`` (as good as full batches on the
        recovery benchmark's fits, in much less time: ``docs/engine.md``, "Minibatches").
        ``None`` (the default): ``"auto"`` in an ``"auto"`` run, ``"full"`` with a fixed
        number of steps. Each replicate draws its own minibatches: a fresh random
        permutation of its ``n`` observations every epoch, ``floor(n / B)`` minibatches per
        epoch.
    shuffle
        ``"epoch"`` (the default): a fresh permutation every epoch, as above; ``"once"``:
        one permutation per phase, its minibatches visited cyclically, which copies no
        data per step (faster with wide inputs and many replicates;
        :mod:`simulations.minibatch`).
    lr
        Learning rate.
    logit_lr
        Learning rate of the inclusion logits ``theta``, applied by scaling their optimiser
        update by ``logit_lr / lr``. ``None`` (the default): ``lr / 3`` in an ``"auto"``
        run (slower logits let the likelihood keep up with the KL's pull on the relaxed
        indicators, ``docs/engine.md``), ``lr`` with a fixed number of steps.
    optimizer
        :class:`Optimizer` (default Adam).
    betas
        Adam's ``(beta1, beta2)``.
    grad_clip
        Maximum gradient norm per replicate (``None``: no clipping).
    kl_warmup_steps
        The KL weight rises linearly, ``min(1, (t + 1) / kl_warmup_steps)`` at step ``t``
        of the relaxed phase. ``None`` (the default): 2,000 steps in an ``"auto"`` run,
        none with a fixed number of steps. The warm-up lets the likelihood establish the
        nodes before the KL prices them: without it, the relaxed phase of a p = 100
        student drops every first-layer node (``docs/engine.md``).
    finetune_steps
        With an integer ``steps``: extra steps after ``steps`` with the indicators
        frozen at the kept structure (inclusion probability > 1/2): only the slab and
        scale factors move. Must be 0 with ``"auto"``, whose fine-tuning runs until convergence.
    indicator_pass
        Run :func:`simulations.structure.indicator_pass` (coordinate ascent on the
        frozen indicators) when the indicators are frozen.
    search
        End an ``"auto"`` run (with ``indicator_pass``) with the removal search
        (:mod:`simulations.search`): rounds in which every single-node removal of a
        replicate is trained ``search_steps`` steps beside a control arm, the best taken
        while it beats the control. On by default (``docs/engine.md``, "The removal
        search"); its rounds come after ``max_steps``.
    screen_inputs
        ``"auto"`` runs: let a node spike on each input lead the structure search
        (:mod:`simulations.screen`): the protocol runs first on the model with an input
        spike as well, then each replicate's hidden structure and values pass to the model
        itself (the first-layer weights on the inputs the spike dropped at mean 0 and
        ``rho_init``), which goes on from the rounds (a round until the rule holds, then the
        passes, rounds and removal trials, with a cap of ``max_steps`` of its own) and the
        removal search. The model fitted is the one asked for. ``"both"``: the fit without
        and the fit with screening, one after the other from the same start, each replicate
        keeping the one with the lower ``L(q)`` (the same estimate, as among restarts), then
        the removal search; twice the compute. Off by default (``docs/engine.md``,
        "Screening the inputs").
    convergence
        :class:`simulations.convergence.ConvergenceRule` of an ``"auto"`` run.
    temperature
        A :class:`simulations.relaxed.TemperatureSchedule` for the Concrete
        temperature; ``None`` keeps the model's ``temperature``.
    checkpoint_every
        With a checkpoint path, write a checkpoint every this many steps (and at the end).
    log_every
        Record the per-replicate loss every this many steps (and at the last step).
    restarts
        ``K``: independent starts per replicate (initial values, noise and minibatches
        from streams of their own), trained as one batched fit of ``K R`` replicates;
        each replicate keeps the start with the lowest ``L(q)`` at the end, estimated on
        the same rows and noise for all its starts (``docs/engine.md``, "Restarts").
        Costs ``K`` times the compute and the data's memory. ``None`` (the default): 5 in
        an ``"auto"`` run (a start reaches the truth's basin in only some fits; the
        recovery benchmark's exact shares with five starts, ``docs/engine.md``), 1 with a
        fixed number of steps.
    compile
        Compile the step's network and loss with ``torch.compile``
        (:class:`simulations.step.LossStep`; falls back to eager, with a warning, when
        compilation fails). Results equal the eager step's up to float rounding.
        ``"auto"`` (the default) compiles where it was measured to pay
        (:func:`simulations.step.compile_pays`: float32 on an x86-64 CPU with a C++
        compiler and a budget of at least ``COMPILE_MIN_STEPS`` steps), else runs eagerly;
        ``docs/engine.md`` ("A compiled step") has the measured speeds.
    """

    steps: int | str = "auto"
    max_steps: int | None = None
    dense_steps: int | None = None
    prune_every: int = 1000
    trial_steps: int | None = None
    search_steps: int | None = None
    trial_misses: int = 3
    batch_size: int | str | None = None
    shuffle: Shuffle | str = Shuffle.EPOCH
    lr: float = 3e-3
    logit_lr: float | None = None
    optimizer: Optimizer | str = Optimizer.ADAM
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = None
    kl_warmup_steps: int | None = None
    finetune_steps: int = 0
    indicator_pass: bool = True
    search: bool = True
    screen_inputs: bool | str = False
    convergence: ConvergenceRule = field(default_factory=ConvergenceRule)
    temperature: TemperatureSchedule | None = None
    checkpoint_every: int = 500
    log_every: int = 50
    restarts: int | None = None
    compile: bool | str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.steps, str) and self.steps.strip().lower() == "auto":
            object.__setattr__(self, "steps", "auto")
        elif not is_integer(self.steps, 1):
            raise InvalidParameterError("steps", "an integer >= 1 or 'auto'", self.steps)
        if self.restarts is None:
            object.__setattr__(self, "restarts", _AUTO_RESTARTS if self.steps == "auto" else 1)
        for name, low in (
            ("prune_every", 1), ("trial_misses", 1), ("finetune_steps", 0),
            ("checkpoint_every", 1), ("log_every", 1), ("restarts", 1),
        ):  # fmt: skip
            if not is_integer(getattr(self, name), low):
                raise InvalidParameterError(name, f"an integer >= {low}", getattr(self, name))
        for name, low in (("max_steps", 2), ("trial_steps", 1), ("search_steps", 1)):
            if getattr(self, name) is not None and not is_integer(getattr(self, name), low):
                allowed = f"an integer >= {low} or None"
                raise InvalidParameterError(name, allowed, getattr(self, name))
        cap = _AUTO_CAP if self.max_steps is None else self.max_steps  # the least cap of None
        if self.kl_warmup_steps is None:
            object.__setattr__(self, "kl_warmup_steps", _AUTO_WARMUP if self.steps == "auto" else 0)
        elif not is_integer(self.kl_warmup_steps, 0):
            allowed = "an integer >= 0 or None"
            raise InvalidParameterError("kl_warmup_steps", allowed, self.kl_warmup_steps)
        if self.dense_steps is None:
            dense = min(_AUTO_DENSE, cap // 6) if self.steps == "auto" else 0
            object.__setattr__(self, "dense_steps", dense)
        elif not is_integer(self.dense_steps, 0):
            raise InvalidParameterError("dense_steps", "an integer >= 0 or None", self.dense_steps)
        if self.steps != "auto" and self.dense_steps:
            allowed = "0 with an integer number of steps (the dense phase is part of 'auto')"
            raise InvalidParameterError("dense_steps", allowed, self.dense_steps)
        if self.dense_steps >= cap // 2:
            allowed = f"an integer below max_steps // 2 = {cap // 2}"
            raise InvalidParameterError("dense_steps", allowed, self.dense_steps)
        if self.steps == "auto" and self.finetune_steps:
            allowed = "0 with steps = 'auto' (its fine-tuning runs until convergence)"
            raise InvalidParameterError("finetune_steps", allowed, self.finetune_steps)
        if not isinstance(self.indicator_pass, bool):
            raise InvalidParameterError("indicator_pass", "true or false", self.indicator_pass)
        if not isinstance(self.search, bool):
            raise InvalidParameterError("search", "true or false", self.search)
        screen = boolean_or_word("screen_inputs", self.screen_inputs, "both")
        object.__setattr__(self, "screen_inputs", screen)
        if self.screen_inputs and self.steps != "auto":
            allowed = "false with an integer number of steps (screening is part of 'auto')"
            raise InvalidParameterError("screen_inputs", allowed, self.screen_inputs)
        object.__setattr__(self, "compile", boolean_or_word("compile", self.compile))
        if not isinstance(self.convergence, ConvergenceRule):
            allowed = "a ConvergenceRule"
            raise InvalidParameterError("convergence", allowed, self.convergence)
        batch = self.batch_size
        if batch is None:
            batch = "auto" if self.steps == "auto" else "full"
        elif isinstance(batch, str):
            batch = batch.strip().lower()
        if batch not in _BATCH_WORDS and not is_integer(batch, 1):
            allowed = "an integer >= 1, 'auto', 'full' or None"
            raise InvalidParameterError("batch_size", allowed, self.batch_size)
        object.__setattr__(self, "batch_size", batch)
        if not isinstance(self.lr, int | float) or not (math.isfinite(self.lr) and self.lr > 0):
            raise InvalidParameterError("lr", "a finite number > 0", self.lr)
        if self.logit_lr is None:
            object.__setattr__(self, "logit_lr", self.lr / 3 if self.steps == "auto" else self.lr)
        if not (
            isinstance(self.logit_lr, int | float)
            and not isinstance(self.logit_lr, bool)
            and math.isfinite(self.logit_lr)
            and self.logit_lr > 0
        ):
            raise InvalidParameterError("logit_lr", "a finite number > 0 or None", self.logit_lr)
        object.__setattr__(self, "optimizer", parse_enum(Optimizer, self.optimizer, "optimizer"))
        object.__setattr__(self, "shuffle", parse_enum(Shuffle, self.shuffle, "shuffle"))
        betas = tuple(self.betas) if isinstance(self.betas, list | tuple) else ()
        if len(betas) != 2 or not all(isinstance(b, int | float) and 0 <= b < 1 for b in betas):
            raise InvalidParameterError("betas", "two numbers in [0, 1)", self.betas)
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        if self.grad_clip is not None and not (
            isinstance(self.grad_clip, int | float)
            and math.isfinite(self.grad_clip)
            and self.grad_clip > 0
        ):
            raise InvalidParameterError("grad_clip", "a finite number > 0 or None", self.grad_clip)
        if self.temperature is not None and not isinstance(self.temperature, TemperatureSchedule):
            allowed = "a TemperatureSchedule or None"
            raise InvalidParameterError("temperature", allowed, self.temperature)

    @property
    def total_steps(self) -> int:
        """``steps + finetune_steps``, or ``max_steps`` (the cap) of an ``"auto"`` run
        (resolved: :meth:`at_n`)."""
        if self.steps == "auto":
            if self.max_steps is None:
                raise ValueError("max_steps is None until resolved for n: use at_n(n)")
            return self.max_steps
        return self.steps + self.finetune_steps

    def at_n(self, n: int) -> TrainConfig:
        """These options for ``n`` observations: ``max_steps`` and ``trial_steps`` left at
        ``None`` take :func:`auto_budget` of ``n`` in an ``"auto"`` run, and its values
        at ``n <= 8192`` with a fixed number of steps (which uses neither)."""
        if not is_integer(n, 1):
            raise InvalidParameterError("n", "an integer >= 1", n)
        cap, arms = auto_budget(n if self.steps == "auto" else 1)
        return replace(
            self,
            max_steps=cap if self.max_steps is None else self.max_steps,
            trial_steps=arms if self.trial_steps is None else self.trial_steps,
        )

    @property
    def search_arm_steps(self) -> int:
        """Steps of each arm of the removal search: ``search_steps``, or ``trial_steps``
        where it is ``None`` (resolved: :meth:`at_n`)."""
        arms = self.trial_steps if self.search_steps is None else self.search_steps
        if arms is None:
            raise ValueError("trial_steps is None until resolved for n: use at_n(n)")
        return arms

    def batch_rows(self, n: int) -> int:
        """Rows ``B`` of each step's minibatch for ``n`` observations (see ``batch_size``)."""
        if self.batch_size == "full":
            return n
        if self.batch_size == "auto":
            return min(_AUTO_BATCH, n)
        if self.batch_size > n:
            raise InvalidParameterError(
                "batch_size", f"an integer in [1, n] = [1, {n}]", self.batch_size
            )
        return self.batch_size

    def kl_weight(self, step: int) -> float:
        """KL weight at step ``step`` (0-based) of the relaxed phase: the warm-up, then 1."""
        if self.kl_warmup_steps == 0 or step >= self.kl_warmup_steps:
            return 1.0
        return (step + 1) / self.kl_warmup_steps

    def record(self) -> dict:
        """The options as plain values (checkpoints compare them on resume); ``compile`` is
        left out: it changes the speed, not the run (a run may resume either way); so are
        ``shuffle``, ``screen_inputs`` and ``search_steps`` at their defaults, which keeps
        the records of runs made before they existed."""
        record = plain(asdict(self))
        del record["compile"]
        if self.shuffle is Shuffle.EPOCH:
            del record["shuffle"]
        if not self.screen_inputs:
            del record["screen_inputs"]
        if self.search_steps is None:
            del record["search_steps"]
        return record


@dataclass(frozen=True)
class FitReport:
    """What :func:`fit` measured.

    Attributes
    ----------
    steps
        Steps completed (over all sessions of a resumed run).
    replicates
        ``R``.
    wall_s
        Training wall time in seconds (summed over the sessions of a resumed run).
    replicate_steps_per_s
        ``R * steps / wall_s``.
    peak_memory_bytes
        CUDA: ``torch.cuda.max_memory_allocated`` during this call; CPU: the
        process's peak resident set size.
    loss_history
        Per-replicate loss (negative ELBO per observation on the minibatch) at the
        logged steps, ``[logged, R]``; a replicate that has stopped keeps the value of its
        last step.
    logged_steps
        The steps (1-based) of ``loss_history``.
    final_nll
        Negative log-likelihood per observation of the replicate's last minibatch (that of
        its last step before the removal search of an ``"auto"`` run), ``[R]``.
    final_kl
        ``KL(q || prior) / n`` of the fitted model, ``[R]``.
    resumed_from
        The checkpoint step this call started from (0 for a fresh run).
    device
        The device trained on.
    converged
        Per replicate, ``[R]``: every phase of an ``"auto"`` run ended by the
        convergence rule (always ``False`` for a fixed number of steps).
    steps_taken
        Per replicate, ``[R]``: the steps in which it was updated (a converged
        replicate stops updating while the others go on), each round of the removal
        search counted as ``search_steps`` (its arms train side by side).
    status
        Per replicate: ``"converged"``, ``"max_steps"`` (an ``"auto"`` run that hit
        its cap), ``"fixed"`` (a fixed number of steps) or ``"failed"``.
    failure
        Per replicate: why it failed (``"non-finite gradient at step 812"``) or ``None``.
    final_neg_elbo
        Negative ELBO per observation on fixed rows and noise
        (:class:`simulations.structure.ElboEstimate`), ``[R]``; ``None`` when no
        estimate was made (a fixed run without the indicator pass).
    indicator_switches
        Per replicate, ``[R]``: nodes the indicator passes, the removal trials and the
        removal search switched off.
    removal_trials
        Per replicate, ``[R]``: removal trials (a removal against a control arm) taken
        part in (``"auto"`` runs).
    compile_s
        With a compiled step (``TrainConfig.compile``): seconds of the first step, which
        compiles (they are part of ``wall_s``); 0 when the step ran eagerly.
    restart
        Per replicate, ``[R]``: the start it kept (``TrainConfig.restarts``); ``None``
        without restarts.
    restart_neg_elbo
        ``L(q)`` of every start, ``[R, K]`` (``inf`` for a failed start); ``None`` without
        restarts. The per-replicate fields above describe the kept start, ``steps``,
        ``wall_s`` and ``replicate_steps_per_s`` the whole batched fit.
    structure_events
        The structure moves (of the kept starts, with restarts), in order: one dict per
        indicator pass that switched a node (``move = "pass"``), per removal trial of an
        ``"auto"`` run (``move = "removal trial"``) and per round of its removal search
        (``move = "search"``, after the other moves), with ``replicate``, ``step`` (its
        ``steps_taken`` then) and ``kept`` (nodes per hidden layer after the move); a pass
        also has ``before``, a trial or search round ``block`` (``"inputs"`` or ``"layer
        l"``), ``node`` (a trial's) or ``nodes`` (a search round's best removal: one node,
        or two in a round of pairs), ``delta_nats`` (``n`` times the removal arm's ``L(q)``
        minus the control arm's) and ``accepted``. With ``screen_inputs`` the screening
        fit's moves come first, marked ``"screened": True``.
        ``docs/engine.md`` ("Training until convergence").
    screened
        Per replicate, ``[R]``: whether its fit is a screened one (``screen_inputs``; with
        ``"both"``, whether it kept the screened fit); ``None`` without screening.
    """

    steps: int
    replicates: int
    wall_s: float
    replicate_steps_per_s: float
    peak_memory_bytes: int
    loss_history: np.ndarray
    logged_steps: np.ndarray
    final_nll: np.ndarray
    final_kl: np.ndarray
    resumed_from: int = 0
    device: str = field(default="cpu")
    converged: np.ndarray | None = None
    steps_taken: np.ndarray | None = None
    status: tuple[str, ...] = ()
    failure: tuple[str | None, ...] = ()
    final_neg_elbo: np.ndarray | None = None
    indicator_switches: np.ndarray | None = None
    removal_trials: np.ndarray | None = None
    compile_s: float = 0.0
    restart: np.ndarray | None = None
    restart_neg_elbo: np.ndarray | None = None
    structure_events: tuple[dict, ...] = ()
    screened: np.ndarray | None = None


class _FlatParameters:
    """All parameters of ``module`` as views into one ``[R, P]`` buffer, with one gradient buffer.

    Each parameter's ``.data`` becomes a view of ``data[:, a:b]`` and its ``.grad``
    a view of ``grad[:, a:b]``; autograd accumulates into those views in place. The
    optimiser (:mod:`simulations.optim`) updates the buffer row by row.
    """

    def __init__(self, module: torch.nn.Module, replicates: int) -> None:
        params = list(module.parameters())
        for name, p in module.named_parameters():
            if p.dim() == 0 or p.shape[0] != replicates:
                raise InvalidParameterError(
                    f"model parameter {name}", f"a leading replicate axis of size {replicates}",
                    tuple(p.shape),
                )  # fmt: skip
        sizes = [p[0].numel() for p in params]
        total = sum(sizes)
        ref = params[0]
        self.data = torch.empty((replicates, total), dtype=ref.dtype, device=ref.device)
        self.grad = torch.zeros_like(self.data)
        self.slices = {}
        names = dict((id(p), n) for n, p in module.named_parameters())
        offset = 0
        for p, size in zip(params, sizes, strict=True):
            view = self.data[:, offset : offset + size]
            view.copy_(p.detach().reshape(replicates, size))
            p.data = view.view(p.shape)
            p.grad = self.grad[:, offset : offset + size].view(p.shape)
            self.slices[names[id(p)]] = (offset, offset + size)
            offset += size
        self.params = params

    def columns(self, suffixes: tuple[str, ...]) -> torch.Tensor:
        """Column indices of the parameters whose names end with one of ``suffixes``."""
        cols = [
            torch.arange(a, b) for name, (a, b) in self.slices.items() if name.endswith(suffixes)
        ]
        if not cols:
            return torch.empty(0, dtype=torch.long, device=self.data.device)
        return torch.cat(cols).to(self.data.device)

    def release_grads(self) -> None:
        """Drop the gradient views (the model keeps its parameter views)."""
        for p in self.params:
            p.grad = None

    def take_grads(self, pick: torch.Tensor, leaves: list[torch.Tensor]) -> None:
        """Write the gradients of ``leaves``, the parameters restricted to the rows ``pick``
        (``[k]``; in the order of ``params``; no gradient for a parameter the loss does not
        read, such as frozen logits), into those rows of ``grad``."""
        for leaf, (a, b) in zip(leaves, self.slices.values(), strict=True):
            if leaf.grad is not None:
                self.grad[pick, a:b] = leaf.grad.reshape(len(pick), b - a)


@contextlib.contextmanager
def _fresh_leaves(module: torch.nn.Module):
    """While the block runs, each parameter of ``module`` is a new leaf on the same values
    (yielded, in the order of ``module.parameters()``), so that autograd differentiates with
    respect to their current shapes (a parameter's own gradient accumulator keeps the shape
    it had when autograd first used it). Restored after."""
    swapped = [
        (owner, name, p)
        for owner in module.modules()
        for name, p in owner._parameters.items()
        if p is not None
    ]
    leaves = []
    try:
        for owner, name, p in swapped:
            owner._parameters[name] = leaf = torch.nn.Parameter(p.data)
            leaves.append(leaf)
        yield leaves
    finally:
        for owner, name, p in swapped:
            owner._parameters[name] = p


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every value of ``t`` is finite, in one reduction without a temporary.

    A NaN or an infinity makes the sum non-finite, so a finite sum proves the check;
    a non-finite sum of finite values (overflow, for values near the dtype's limit)
    is rechecked elementwise.
    """
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _validate_data(model: BayesianMLP, x: torch.Tensor, y: torch.Tensor):
    reps, p = model.replicates, model.config.p
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise InvalidParameterError("x", "a floating-point torch.Tensor", type(x).__name__)
    if x.dim() != 3 or x.shape[0] != reps or x.shape[2] != p or x.shape[1] < 1:
        raise InvalidParameterError("x", f"shape [R={reps}, n, p={p}]", tuple(x.shape))
    n = x.shape[1]
    if not _all_finite(x):
        raise InvalidParameterError("x", "finite (no NaN or inf)", "non-finite values")
    if not isinstance(y, torch.Tensor):
        raise InvalidParameterError("y", "a torch.Tensor", type(y).__name__)
    lik = model.likelihood
    expected = lik.target_shape(reps, n)
    if lik.kind is not Likelihood.CATEGORICAL and y.dim() == 2 and model.config.outputs == 1:
        y = y.unsqueeze(-1)
    if tuple(y.shape) != expected:
        raise InvalidParameterError("y", f"shape {list(expected)}", tuple(y.shape))
    lik.check_targets(y, "y")
    x = x.to(device=model.device, dtype=model.dtype)
    if lik.kind is not Likelihood.CATEGORICAL:
        y = y.to(device=model.device, dtype=model.dtype)
    else:
        y = y.to(device=model.device)
    return x.contiguous(), y.contiguous(), n


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _fingerprint(x: torch.Tensor, y: torch.Tensor) -> list:
    """Shapes and sums of the data: a resumed run must see the same data."""
    return [list(x.shape), list(y.shape), float(x.sum()), float(y.sum())]


def fit(
    model: BayesianMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    *,
    checkpoint: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FitReport:
    """Fit the ``R`` replicates of ``model`` to their data by minimising the negative ELBO.

    With ``config.steps = "auto"`` the fit runs in phases, at most ``max_steps``
    steps per replicate (a replicate that has converged or reached the cap stops updating
    while the others go on):

    0. the dense phase: ``dense_steps`` steps with every indicator held at 1;
    1. relaxed indicators (Concrete, straight-through), for the KL warm-up and one
       pruning round (``kl_warmup_steps + prune_every`` steps) or until the
       :class:`~simulations.convergence.ConvergenceRule` holds;
    2. rounds with the indicators frozen, each after the coordinate-ascent
       :func:`~simulations.structure.indicator_pass`: ``prune_every`` steps while the
       replicate's pass switches nodes, then until the rule holds; a replicate is done
       when the rule held and the next pass switched nothing;
    3. when a replicate is done, its removal trials against a control arm
       (``docs/engine.md``); a replicate that accepted a removal goes back to 2;
    4. when every replicate is finished (after the choice among restarts), the removal
       search (:mod:`simulations.search`, unless ``search = False``).

    With ``screen_inputs`` the steps 0 to 4 run first on the model with an input spike as
    well, and ``model`` goes on from step 2 with the structure and values found
    (:mod:`simulations.screen`).

    The batch shares phases 0 and 1; from 2 on each replicate goes through its rounds and
    trials by itself, without waiting for the others. Each phase, round and trial arm
    starts the replicate's optimiser state afresh and draws its noise and minibatches from
    streams of its own (``"noise/<phase>"``, ``"minibatch/<phase>"``), so a replicate's
    numbers do not depend on when the other replicates converged.

    With an integer ``steps`` the fit runs ``steps`` relaxed steps, then
    ``finetune_steps`` with frozen indicators (after the indicator pass when
    ``indicator_pass`` is set).

    The process keeps freed heap memory for the next step
    (:func:`simulations.memory.keep_freed_memory`, set once per process).

    Parameters
    ----------
    model
        A :class:`~simulations.model.BayesianMLP` (on its device and dtype; the data follow).
    x
        Inputs ``[R, n, p]``.
    y
        Targets ``[R, n, outputs]`` (``[R, n]`` accepted for one output), or class
        indices ``[R, n]`` (int64) for a categorical likelihood.
    config
        :class:`TrainConfig`.
    checkpoint
        A file path. If it exists, training resumes from it (the model, data and
        options must match those that wrote it); a checkpoint is written every
        ``config.checkpoint_every`` steps, at each phase change and at the end, atomically.
    progress
        Called as ``progress(step, total)`` after every step of the batch (``total`` is
        ``max_steps`` in an ``"auto"`` run, which ``step`` can pass: the cap is per replicate).

    Returns
    -------
    FitReport

    Raises
    ------
    InvalidParameterError
        Bad data (shape, NaN or inf, targets outside the likelihood's support),
        bad options, or a checkpoint that does not match.
    NonFiniteError
        When every replicate has failed (a non-finite loss, gradient or parameter);
        a single failing replicate is reported in ``FitReport.status`` instead.
    """
    if not isinstance(model, BayesianMLP):
        raise InvalidParameterError("model", "a BayesianMLP", type(model).__name__)
    if not isinstance(config, TrainConfig):
        raise InvalidParameterError("config", "a TrainConfig", type(config).__name__)
    x, y, n = _validate_data(model, x, y)
    config = config.at_n(n)
    keep_freed_memory()
    if config.screen_inputs == "both":
        report = _fit_both(model, x, y, config, checkpoint, progress)
    else:
        report = _search(model, x, y, config, checkpoint, progress)
    if config.steps != "auto" or not (config.indicator_pass and config.search):
        return report
    started = time.perf_counter()
    report = removal_search(model, x, y, config, report, _train_arms)
    wall = report.wall_s + time.perf_counter() - started
    rate = float(report.steps_taken.sum()) / wall if wall > 0 else float("nan")
    return replace(report, wall_s=wall, replicate_steps_per_s=rate)


def _train_arms(arms: BayesianMLP, x, y, config: TrainConfig) -> None:
    """Train ``arms`` ``config.steps`` steps with their indicators frozen as they are."""
    _Fit(arms, x, y, config, None, None, frozen=True).run()


def restart_seeds(seeds: tuple[int, ...], restarts: int) -> tuple[int, ...]:
    """Seeds of the ``K R`` starts, start-major: start 0 of every replicate is the replicate
    itself, start ``k > 0`` of replicate ``r`` takes ``stream_seed(seed_r, "restart", k)``."""
    return tuple(
        s if k == 0 else stream_seed(s, "restart", k) for k in range(restarts) for s in seeds
    )


def checkpoint_files(checkpoint: str | os.PathLike) -> tuple[Path, ...]:
    """The files that :func:`fit` with ``checkpoint`` may write: ``checkpoint`` and, with
    ``screen_inputs = "both"``, its screened fit's ``<checkpoint>.screened``."""
    path = Path(checkpoint)
    return path, path.with_name(f"{path.name}.screened")


def _search(model, x, y, config, checkpoint, progress) -> FitReport:
    """:func:`fit` up to the removal search, with or without screening (not ``"both"``)."""
    if config.screen_inputs:
        return _fit_screened(model, x, y, config, checkpoint, progress)
    if config.restarts == 1:
        return _Fit(model, x, y, config, checkpoint, progress).run()
    return _fit_restarts(model, x, y, config, checkpoint, progress)


def _fit_both(model, x, y, config, checkpoint, progress) -> FitReport:
    """``fit`` with ``screen_inputs = "both"``: the fit without screening on ``model``, the
    screened fit on a twin of it (the same start; checkpointed at
    :func:`checkpoint_files`' second path), then each replicate of ``model`` takes over the
    twin's values and structure where the screened fit's ``L(q)`` is lower."""
    _check_screenable(model, config)
    twin = twin_model(model)
    plain = _search(model, x, y, replace(config, screen_inputs=False), checkpoint, progress)
    later = None if checkpoint is None else checkpoint_files(checkpoint)[1]
    screened = _search(twin, x, y, replace(config, screen_inputs=True), later, progress)
    better = _scores(screened) < _scores(plain)
    take_rows(twin, model, torch.as_tensor(better, device=model.device))
    return either(plain, screened, better)


def _check_screenable(model: BayesianMLP, config: TrainConfig) -> None:
    """Screening needs a model without an input spike of its own."""
    if model.input_spike is not None:
        allowed = "false for a model with an input spike (ModelConfig.input_spike)"
        raise InvalidParameterError("screen_inputs", allowed, config.screen_inputs)


def _scores(report: FitReport) -> np.ndarray:
    """``L(q)`` per replicate, ``inf`` where the replicate failed."""
    failed = np.array([s == "failed" for s in report.status])
    return np.where(failed, np.inf, report.final_neg_elbo)


def _fit_screened(model, x, y, config, checkpoint, progress) -> FitReport:
    """``fit`` with ``config.screen_inputs``: the protocol on the model with an input spike
    (checkpointed at ``checkpoint``), then ``model`` from the rounds on, with a cap of its
    own and streams named ``"screened/..."`` (not checkpointed: a killed fit resumes the
    finished screening and runs the rounds again)."""
    _check_screenable(model, config)
    screen = screening_model(model)
    inner = replace(config, screen_inputs=False)
    first = fit(screen, x, y, inner, checkpoint=checkpoint, progress=progress)
    take_screened(screen, model)
    rounds = replace(inner, restarts=1)
    rest = _Fit(model, x, y, rounds, None, progress, from_rounds=True).run()
    return joined(first, rest)


def _fit_restarts(model, x, y, config, checkpoint, progress) -> FitReport:
    """``fit`` with ``config.restarts = K``: the ``K R`` starts as one batched fit, then each
    replicate takes over the parameters and structure of its start with the lowest ``L(q)``.

    Start 0 of a replicate is the model's replicate as it stands (so it trains exactly as
    without restarts); start ``k > 0`` begins at the initial values of its own seed.
    """
    x, y, _ = _validate_data(model, x, y)
    k, reps = config.restarts, model.replicates
    starts = BayesianMLP(
        model.config, restart_seeds(model.replicate_seeds, k), n=model.n,
        dtype=model.dtype, device=model.device,
    )  # fmt: skip
    starts.temperature = model.temperature
    with torch.no_grad():  # start 0 is the model as it stands, as in a fit without restarts
        for mine, theirs in zip(model.parameters(), starts.parameters(), strict=True):
            theirs[:reps].copy_(mine)
    tile = (k, *[1] * (x.dim() - 1)), (k, *[1] * (y.dim() - 1))
    run = _Fit(
        starts, x.repeat(tile[0]), y.repeat(tile[1]), config, checkpoint, progress,
        estimate_seeds=model.replicate_seeds * k,
    )  # fmt: skip
    report = run.run()
    scores = np.where(run.failed.numpy(), np.inf, report.final_neg_elbo).reshape(k, reps)
    chosen = scores.argmin(axis=0)
    rows = torch.as_tensor(chosen * reps + np.arange(reps), device=model.device)
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), starts.parameters(), strict=True):
            mine.copy_(theirs[rows])
    for mine, theirs in zip(model._indicators(), starts._indicators(), strict=True):
        mine.frozen_mask = None if theirs.frozen_mask is None else theirs.frozen_mask[rows].clone()
    model.temperature = starts.temperature
    pick = rows.cpu().numpy()
    per_replicate = {
        name: getattr(report, name)[pick]
        for name in (
            "final_nll", "final_kl", "converged", "steps_taken", "final_neg_elbo",
            "indicator_switches", "removal_trials",
        )
    }  # fmt: skip
    events = tuple(
        dict(e, replicate=e["replicate"] % reps)
        for e in report.structure_events
        if e["replicate"] == pick[e["replicate"] % reps]
    )
    return replace(
        report,
        replicates=reps,
        structure_events=events,
        loss_history=report.loss_history[:, pick],
        status=tuple(report.status[i] for i in pick),
        failure=tuple(report.failure[i] for i in pick),
        restart=chosen,
        restart_neg_elbo=scores.T.copy(),
        **per_replicate,
    )


class _Fit:
    """The state of one :func:`fit` call: phases, per-replicate stops, checkpoints."""

    def __init__(
        self, model, x, y, config, checkpoint, progress, estimate_seeds=None, frozen=False,
        from_rounds=False,
    ) -> None:  # fmt: skip
        """``frozen``: a run of ``config.steps`` steps with the indicators frozen as they are
        (the fine-tuning phase from the start; the removal search's arms). ``from_rounds``:
        an ``"auto"`` run that starts at the rounds, from the indicators frozen as they are
        (no dense or relaxed phase; a first round until the rule holds, then the first
        pass), its rounds' and trials' streams named ``"screened/phase<k>"`` and
        ``"screened/trial<t>"`` (a screened fit's second stage)."""
        x, y, n = _validate_data(model, x, y)
        batch = config.batch_rows(n)
        self.model, self.config, self.progress = model, config, progress
        self.x, self.y, self.n, self.batch = x, y, n, batch
        self.auto = config.steps == "auto"
        reps, device = model.replicates, model.device
        self.reps, self.device = reps, device
        self.flat = _FlatParameters(model, reps)
        self.spike_cols = self.flat.columns(("theta",))
        # [P]: the factor logit_lr / lr of the logits' updates (1 on the other columns);
        # None when it is 1 everywhere.
        self.column_lr = None
        if config.logit_lr != config.lr and len(self.spike_cols):
            self.column_lr = torch.ones_like(self.flat.data[0])
            self.column_lr[self.spike_cols] = config.logit_lr / config.lr
        self.batches = Minibatches(x, y, batch, model.replicate_seeds, shuffle=config.shuffle)
        compile = config.compile
        if compile == "auto":
            compile = compile_pays(model, config.total_steps)
        self.loss_step = LossStep(model, n, batch, compile=compile)
        self.elbo = None
        if self.auto or config.indicator_pass or estimate_seeds is not None:
            rule = config.convergence
            self.elbo = ElboEstimate(
                model, x, y, rows=rule.rows, draws=rule.draws, seeds=estimate_seeds
            )
        self.path = None if checkpoint is None else Path(checkpoint)
        self.fingerprint = _fingerprint(x, y) if self.path is not None else None
        # Run state (all of it goes into a checkpoint).
        self.step = 0
        # -1: dense; 0: relaxed; 1, 2, ...: rounds with frozen indicators
        self.phase = -1 if self.auto and config.dense_steps and not from_rounds else 0
        self.from_rounds = from_rounds and self.auto
        self.streams = "screened/" if self.from_rounds else ""
        self.phase_start = 0  # the step at which the phase started ("auto" runs)
        self.wall_before = 0.0
        self.history: list[torch.Tensor] = []
        self.logged: list[int] = []
        self.last_loss = self.last_nll = None
        self.stopped = torch.zeros(reps, dtype=torch.bool)
        self.failed = torch.zeros(reps, dtype=torch.bool)
        self.failure: list[str | None] = [None] * reps
        self.done = torch.zeros(reps, dtype=torch.bool)  # converged: no more rounds
        self.pruning = torch.zeros(reps, dtype=torch.bool)  # the last pass switched a node
        self.plateaued = torch.zeros(reps, dtype=torch.bool)  # the rule held in this phase
        self.trials = torch.zeros(reps, dtype=torch.long)  # trials taken part in
        # The rounds (phase 1 of an "auto" run), per replicate: what it is doing
        # (_ROUND, _CONTROL, _REMOVAL, _FINISHED), steps since that began, rounds begun.
        self.stage = torch.full((reps,), _FINISHED, dtype=torch.long)
        self.local = torch.zeros(reps, dtype=torch.long)
        self.rounds = torch.zeros(reps, dtype=torch.long)
        # Removal trials, per replicate: whether they have begun (they run once), rejections
        # in a row, removals accepted, the rejected nodes and the node tried (per spiked
        # block), the trial's starting values and masks, the control arm's end and L(q).
        # The control arm stands until a removal is accepted, so while a replicate has
        # rejections in a row (misses > 0) its next removal arm reuses it.
        self.trials_run = torch.zeros(reps, dtype=torch.bool)
        self.misses = torch.zeros(reps, dtype=torch.long)
        self.accepted = torch.zeros(reps, dtype=torch.long)
        self.rejected: list[torch.Tensor] | None = None
        self.removal: list[torch.Tensor] | None = None
        self.trial_start: torch.Tensor | None = None
        self.trial_masks: list[torch.Tensor | None] | None = None
        self.control_state: torch.Tensor | None = None
        self.control_neg_elbo = torch.full((reps,), math.inf, dtype=torch.float64)
        self.steps_taken = torch.zeros(reps, dtype=torch.long)
        self.held = self.flat.data.detach().clone()
        self.plateau = Plateau(config.convergence, reps)
        self.switches = torch.zeros(reps, dtype=torch.long)
        self.events: list[dict] = []  # the structure moves (FitReport.structure_events)
        self.frozen_values = None
        self.frozen = frozen and not self.auto
        if self.frozen:
            self.phase = 1
            self.frozen_values = self.flat.data[:, self.spike_cols].clone()
        self.opt = self._optimizer()
        self.finished = False

    # ------------------------------------------------------------------ pieces

    def _optimizer(self) -> RowOptimizer:
        config, flat = self.config, self.flat
        if config.optimizer is Optimizer.ADAM:
            return RowAdam(flat.data, flat.grad, config.lr, betas=config.betas)
        return RowSGD(flat.data, flat.grad, config.lr)

    @property
    def cap(self) -> float:
        """The last step of the current phase (rounds: none, each replicate has its own cap)."""
        config = self.config
        if not self.auto:
            return config.steps if self.phase == 0 else config.total_steps
        if self.phase == -1:
            return config.dense_steps
        if self.phase == 0:
            relaxed = min(config.max_steps // 2, config.kl_warmup_steps + config.prune_every)
            return self.phase_start + (0 if self.from_rounds else relaxed)
        return math.inf

    @property
    def capped(self) -> torch.Tensor:
        """``[R]``: the replicates of an ``"auto"`` run that took ``max_steps`` steps."""
        if not self.auto:
            return torch.zeros(self.reps, dtype=torch.bool)
        return self.steps_taken >= self.config.max_steps

    def _stop(self, which: torch.Tensor) -> None:
        """Stop updating the replicates ``which`` (``[R]`` bool) at their current values."""
        which = which & ~self.stopped
        if bool(which.any()):
            rows = which.to(self.device)
            self.held[rows] = self.flat.data[rows]
            self.stopped |= which

    def _fail(self, what: str, replicates: torch.Tensor, step: int) -> None:
        for r in replicates.nonzero().flatten().tolist():
            if not self.failed[r]:
                self.failure[r] = f"non-finite {what} at step {step}"
        self.failed |= replicates
        self.done &= ~replicates
        self._stop(replicates)
        if bool(self.failed.all()):
            first = int(self.failed.nonzero()[0, 0])
            raise NonFiniteError(what, first, step)

    def _hold_all_on(self) -> None:
        """The dense phase: every indicator frozen at 1, the logits held where they are."""
        for indicators in self.model._indicators():
            indicators.frozen_mask = torch.ones_like(indicators.theta).detach()
        self.frozen_values = self.flat.data[:, self.spike_cols].clone()

    def _start_relaxed(self) -> None:
        """End the dense phase: relaxed indicators, fresh optimiser, noise and minibatches."""
        self.model.unfreeze_masks()
        self.frozen_values = None
        self._open_phase(0, "relaxed")

    def _open_phase(self, phase: int, streams: str) -> None:
        """A phase of the whole batch starts: its own step count, fresh streams ``streams``,
        optimiser state and rule, and every replicate that has not failed moving again."""
        self.phase, self.phase_start = phase, self.step
        self._restart(torch.ones(self.reps, dtype=torch.bool), [streams] * self.reps)
        self.stopped = self.failed | self.capped
        self.held = self.flat.data.detach().clone()

    def _restart(self, rows: torch.Tensor, names: list[str]) -> None:
        """Replicates ``rows`` (``[R]`` bool) start a round or an arm of their own: streams
        ``"noise/<name>"`` and ``"minibatch/<name>"`` (one name per selected replicate), a
        new epoch, fresh optimiser state and a fresh rule, step count 0."""
        picked = rows.nonzero().flatten().tolist()
        seeds = [self.model.replicate_seeds[r] for r in picked]
        noise = replicate_generators(
            [stream_seed(s, f"noise/{n}") for s, n in zip(seeds, names, strict=True)], self.device
        )
        for r, g in zip(picked, noise, strict=True):
            self.model.generators[r] = g
        self.batches.restart(
            rows,
            replicate_generators(
                [stream_seed(s, f"minibatch/{n}") for s, n in zip(seeds, names, strict=True)],
                self.device,
            ),
        )
        self.opt.reset(picked)
        self.plateau.reset(rows)
        self.plateaued &= ~rows
        self.local = torch.where(rows, 0, self.local)

    def _check(self) -> None:
        """One convergence check of the relaxed phase: stop the replicates that converged."""
        converged = self.plateau.update(self.elbo()) & ~self.stopped
        self.plateaued |= converged
        self._stop(converged)

    def _pass(self, rows: torch.Tensor) -> torch.Tensor:
        """The indicator pass for the replicates ``rows``; ``[R]`` bool: which switched a node."""
        if not self.config.indicator_pass or not bool(rows.any()):
            return torch.zeros(self.reps, dtype=torch.bool)
        before = self._structures()
        switches = indicator_pass(self.model, self.elbo, replicates=rows).cpu()
        self.switches += switches
        self.frozen_values = self.flat.data[:, self.spike_cols].clone()
        after = self._structures()
        for r in (switches > 0).nonzero().flatten().tolist():
            self.events.append({
                "replicate": r, "step": int(self.steps_taken[r]), "move": "pass",
                "before": before[r], "kept": after[r],
            })  # fmt: skip
        return switches > 0

    def _structures(self) -> list[list[int]]:
        """Per replicate, the kept nodes per hidden layer."""
        return kept_counts(self.model.kept().nodes).tolist()

    def _end_phase(self) -> bool:
        """Close a phase of the whole batch; ``True`` when the fit is finished.

        ``"auto"`` runs: after the dense phase, the relaxed phase; after the relaxed phase,
        the rounds, in which each replicate goes on by itself (:meth:`_events`). A fixed
        number of steps: the fine-tuning phase when there is one.
        """
        if not self.auto:
            if self.phase == 0 and self.config.finetune_steps > 0:
                if not self.model.masks_frozen:
                    self.model.freeze_masks()
                if self.config.indicator_pass:
                    self._pass(~self.failed)
                self.frozen_values = self.flat.data[:, self.spike_cols].clone()
                self.phase = 1
                return False
            return True
        if bool((self.capped | self.failed).all()):
            return True
        if self.phase == -1:
            self._start_relaxed()
            return False
        # The relaxed phase has ended: freeze the indicators, pass over them, and start
        # every replicate's first round (a pruning round where its pass switched a node).
        if not self.model.masks_frozen:
            self.model.freeze_masks()
        taking_part = ~(self.failed | self.capped)
        self.phase = 1
        self.stage = torch.full((self.reps,), _FINISHED, dtype=torch.long)
        # A screened fit's second stage trains a round before its first pass: its weights on
        # the inputs the screening dropped start afresh, and a pass would price them there.
        if self.from_rounds:
            self._new_rounds(taking_part, torch.zeros_like(taking_part))
        else:
            self._new_rounds(taking_part, self._pass(taking_part))
        self.stopped = ~taking_part
        self.held = self.flat.data.detach().clone()
        return False

    def _names(self, rows: torch.Tensor, index: torch.Tensor, prefix: str) -> list[str]:
        """Stream names ``"<prefix><index[r]>"`` of the selected replicates (after the fit's
        own prefix, ``"screened/"`` in the rounds of a screened fit)."""
        return [f"{self.streams}{prefix}{int(k)}" for k in index[rows].tolist()]

    # ------------------------------------------------------------------ rounds and trials

    def _events(self) -> None:
        """After a step of the rounds: each replicate's checks, the ends of its rounds and
        of its trial arms, and what follows them (``docs/engine.md``, steps 2 to 4).

        A replicate's round ends when the rule holds at one of its checks (every
        ``check_every`` of its own steps), or after ``prune_every`` steps of a pruning
        round; an arm ends after ``trial_steps``. Everything a replicate does here depends
        on its own state only, so the replicates need not be in step.
        """
        config = self.config
        live = ~self.stopped
        in_round = live & (self.stage == _ROUND)
        due = in_round & (self.local % config.convergence.check_every == 0)
        pruned = in_round & self.pruning & (self.local >= config.prune_every)
        arms = live & (self.stage != _ROUND) & (self.local >= config.trial_steps)
        if not bool((due | pruned | arms).any()):
            return
        value = self.elbo((due | arms).to(self.device)).cpu() if bool((due | arms).any()) else None
        ended = pruned
        if bool(due.any()):
            converged = self.plateau.update(value, due)
            self.plateaued |= converged
            ended = ended | converged
        if bool(ended.any()):
            self._end_rounds(ended)
        if bool(arms.any()):
            self._end_arms(arms, value)
        self._stop(self.stage == _FINISHED)

    def _new_rounds(self, rows: torch.Tensor, pruning: torch.Tensor) -> None:
        """Replicates ``rows`` start their next round (a pruning round where ``pruning``)."""
        self.rounds += rows.long()
        self._restart(rows, self._names(rows, self.rounds, "phase"))
        self.pruning = torch.where(rows, pruning, self.pruning)
        self.stage = torch.where(rows, _ROUND, self.stage)

    def _end_rounds(self, ended: torch.Tensor) -> None:
        """The rounds of ``ended`` are over: their pass; a replicate whose rule held in the
        round and whose pass switched nothing is done, and goes to its removal trials (once);
        the others start another round."""
        settled = ended & self.plateaued
        switched = self._pass(ended)
        done = settled & ~switched
        self.done |= done
        self._new_rounds(ended & ~done, switched)
        trials = done & ~self.trials_run & self.config.indicator_pass
        self.stage = torch.where(done & ~trials, _FINISHED, self.stage)
        if bool(trials.any()):
            self.trials_run |= trials
            self.misses = torch.where(trials, 0, self.misses)
            self.accepted = torch.where(trials, 0, self.accepted)
            self._next_trial(trials)

    def _next_trial(self, rows: torch.Tensor) -> None:
        """Replicates ``rows`` propose their next removal: the cheapest node
        (:func:`removal_costs`) that no earlier trial of theirs rejected, tried by a control
        arm and a removal arm of ``trial_steps`` steps each, from the same state and streams
        ``"trial<t>"`` (``t``: the replicate's trial count when the control arm began).
        After a rejection the control arm still stands: the next removal arm starts from
        that trial's start and is compared with the same control arm, so a run of
        rejections trains one control arm. A replicate leaves the trials after
        ``trial_misses`` rejections in a row, when no candidate is left, or when its arms
        would take it past ``max_steps``."""
        config, model, flat = self.config, self.model, self.flat
        shared = self.misses > 0  # the control arm of the last rejection still stands
        arms = torch.where(shared, 1, 2)
        budget = self.steps_taken + arms * config.trial_steps <= config.max_steps
        go = rows & (self.misses < config.trial_misses) & ~self.failed & budget
        costs = [c.cpu() for c in removal_costs(model, self.elbo, go)] if bool(go.any()) else []
        if not costs:  # nobody searching, or no node indicators (edge or dense layers only)
            go = torch.zeros_like(go)
        else:
            if self.rejected is None:
                self.rejected = [torch.zeros(c.shape, dtype=torch.bool) for c in costs]
                self.removal = [torch.full((self.reps,), -1, dtype=torch.long) for _ in costs]
            costs = [c.masked_fill(r, math.inf) for c, r in zip(costs, self.rejected, strict=True)]
            flat_costs = torch.cat(costs, dim=1)
            best = flat_costs.argmin(dim=1)
            go &= torch.isfinite(flat_costs.min(dim=1).values)
            offset = 0
            for b, c in enumerate(costs):  # the others keep the node of their running trial
                inside = (best >= offset) & (best < offset + c.shape[1])
                node = torch.where(inside, best - offset, -1)
                self.removal[b] = torch.where(go, node, self.removal[b])
                offset += c.shape[1]
        fresh = go & ~shared
        if bool(fresh.any()):
            on = fresh.to(self.device)
            if self.trial_start is None:
                self.trial_start = flat.data.clone()
                self.control_state = flat.data.clone()
                self.trial_masks = [
                    None if ind.frozen_mask is None else ind.frozen_mask.clone()
                    for ind in model._indicators()
                ]
            self.trial_start[on] = flat.data[on]
            for ind, saved in zip(model._indicators(), self.trial_masks, strict=True):
                if saved is not None:  # node masks [R, k], edge masks [R, out, in]
                    saved[on] = ind.frozen_mask[on]
            self.stage = torch.where(fresh, _CONTROL, self.stage)
            self._restart(fresh, self._names(fresh, self.trials, "trial"))
        self._start_removal(go & shared)
        self._end_trials(rows & ~go)

    def _start_removal(self, rows: torch.Tensor) -> None:
        """Replicates ``rows`` start a removal arm: their trial's start without the node
        ``self.removal``, on the streams of the control arm it will be compared with (that
        arm's trial count: each rejection since it counted one trial and one miss)."""
        if not bool(rows.any()):
            return
        model, flat = self.model, self.flat
        on = rows.to(self.device)
        flat.data[on] = self.trial_start[on]
        for ind, saved in zip(model._indicators(), self.trial_masks, strict=True):
            if saved is not None:
                ind.frozen_mask[on] = saved[on]
        choice = [torch.where(rows, j, -1).to(self.device) for j in self.removal]
        remove_nodes(model, choice, self.elbo.x)
        self.frozen_values = flat.data[:, self.spike_cols].clone()
        self.stage = torch.where(rows, _REMOVAL, self.stage)
        self._restart(rows, self._names(rows, self.trials - self.misses, "trial"))

    def _end_arms(self, arms: torch.Tensor, value: torch.Tensor) -> None:
        """The arms of ``arms`` have ended (``value``: ``L(q)`` per replicate). After a control
        arm, the removal arm starts from the trial's start without the node; after a removal
        arm, the replicate keeps it if its ``L(q)`` is lower than the control arm's (and
        needs a new control arm), and otherwise goes back to the control arm's end; then its
        next trial."""
        model, flat = self.model, self.flat
        control = arms & (self.stage == _CONTROL)
        moved = arms & (self.stage == _REMOVAL)
        if bool(control.any()):
            on = control.to(self.device)
            self.control_neg_elbo = torch.where(control, value, self.control_neg_elbo)
            self.control_state[on] = flat.data[on]
            self._start_removal(control)
        if bool(moved.any()):
            keep = moved & (value < self.control_neg_elbo) & ~self.failed
            back = moved & ~keep
            on = back.to(self.device)
            flat.data[on] = self.control_state[on]
            for ind, saved in zip(model._indicators(), self.trial_masks, strict=True):
                if saved is not None:
                    ind.frozen_mask[on] = saved[on]
            self.frozen_values = flat.data[:, self.spike_cols].clone()
            for rejected, j in zip(self.rejected, self.removal, strict=True):
                miss = (back & (j >= 0)).nonzero().flatten()
                rejected[miss, j[miss]] = True
            self._log_trials(moved, keep, value)
            self.misses = torch.where(keep, 0, self.misses + back.long())
            self.accepted += keep.long()
            self.trials += moved.long()
            self.switches += keep.long()
            self._next_trial(moved)

    def _log_trials(self, moved: torch.Tensor, keep: torch.Tensor, value: torch.Tensor) -> None:
        """Record the removal trials of ``moved`` that ended (``keep``: accepted)."""
        names = block_names(self.model)
        after = self._structures()
        for r in moved.nonzero().flatten().tolist():
            block = next(b for b, j in enumerate(self.removal) if j[r] >= 0)
            self.events.append({
                "replicate": r, "step": int(self.steps_taken[r]), "move": "removal trial",
                "block": names[block], "node": int(self.removal[block][r]),
                "delta_nats": float(value[r] - self.control_neg_elbo[r]) * self.n,
                "accepted": bool(keep[r]), "kept": after[r],
            })  # fmt: skip

    def _end_trials(self, rows: torch.Tensor) -> None:
        """The trials of ``rows`` are over: a replicate that accepted a removal settles again
        (a pass, then rounds until the rule holds); the others are finished."""
        accepted = rows & (self.accepted > 0)
        self.stage = torch.where(rows & ~accepted, _FINISHED, self.stage)
        if bool(accepted.any()):
            self.done &= ~accepted
            self._new_rounds(accepted, self._pass(accepted))

    def _loss(self, xb, yb, weight: float):
        """The step's ``(loss, nll)`` per replicate, with its gradient in ``flat.grad``.

        Once at most three quarters of the replicates move (and the step is eager), the
        network runs on those alone (:func:`simulations.structure.replicate_rows`): a
        stopped replicate keeps its values, so its gradient is not needed, and the step's
        work shrinks with the replicates that move. A replicate's values are its own
        computation either way. A stopped replicate's loss and NLL keep the values of its
        last step (its values do not change, and that minibatch was its last).
        """
        live = ~self.stopped
        moving = int(live.sum())
        partial = 0 < moving <= 3 * self.reps // 4 and self.last_loss is not None
        if not partial or self.loss_step.compiled:
            loss, nll, _ = self.loss_step(xb, yb, weight)
            loss.sum().backward()
            if self.last_loss is None or moving == self.reps:
                return loss, nll
            held = self.stopped.to(self.device)
            return (
                torch.where(held, self.last_loss, loss.detach()),
                torch.where(held, self.last_nll, nll.detach()),
            )
        pick = live.nonzero().flatten().to(self.device)
        with replicate_rows(self.model, pick), _fresh_leaves(self.model) as leaves:
            part_loss, part_nll, _ = self.loss_step(xb[pick], yb[pick], weight)
            part_loss.sum().backward()
        self.flat.take_grads(pick, leaves)
        loss, nll = self.last_loss.clone(), self.last_nll.clone()
        loss[pick], nll[pick] = part_loss.detach(), part_nll.detach()
        return loss, nll

    def _update(self, xb, yb, weight: float, lr_scale: torch.Tensor, step: int):
        """One optimiser step of the replicates not stopped; ``(loss, nll)`` per replicate."""
        config, flat = self.config, self.flat
        loss, nll = self._loss(xb, yb, weight)
        gnorm = torch.linalg.vector_norm(flat.grad, dim=1)
        bad = (~(torch.isfinite(loss) & torch.isfinite(gnorm))).cpu() & ~self.stopped
        if bool(bad.any()):
            what = "loss" if not bool(torch.isfinite(loss[bad]).all()) else "gradient"
            self._fail(what, bad, step + 1)
        stopped = self.stopped.to(self.device)
        if bool(stopped.any()):
            flat.grad[stopped] = 0.0
        if config.grad_clip is not None:
            coef = (config.grad_clip / (gnorm + 1e-12)).clamp_(max=1.0)
            coef = torch.where(torch.isfinite(coef), coef, 0.0)
            flat.grad.mul_(coef.unsqueeze(1))
        scale = lr_scale.to(flat.data)
        scaled = self.column_lr is not None or bool((scale != 1.0).any())
        before = flat.data.clone() if scaled else None
        self.opt.step()
        flat.grad.zero_()
        if scaled:  # the update times the logits' factor, times the replicate's scale
            delta = flat.data - before
            if self.column_lr is not None:
                delta.mul_(self.column_lr)
            torch.addcmul(before, delta, scale.unsqueeze(1), out=flat.data)
        if self.frozen_values is not None:
            flat.data[:, self.spike_cols] = self.frozen_values
        if bool(stopped.any()):
            flat.data.copy_(torch.where(stopped[:, None], self.held, flat.data))
        return loss, nll

    # ------------------------------------------------------------------ loop

    def run(self) -> FitReport:
        model, config, flat = self.model, self.config, self.flat
        if self.path is not None and self.path.exists():
            self._resume()
        elif model.masks_frozen and not (self.frozen or self.from_rounds):
            # an earlier fit's indicators: relaxed again
            model.unfreeze_masks()
        if self.phase == -1 and self.step == 0:
            self._hold_all_on()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        rule = config.convergence
        total = config.max_steps if self.auto else config.total_steps
        t0 = time.perf_counter()
        self.t0 = t0
        saved_filters = list(warnings.filters)
        nll = None
        try:
            warnings.filterwarnings("ignore", message=_LAYOUT_WARNING)
            while not self.finished:
                per_replicate = self.auto and self.phase >= 1  # the rounds: each on its own
                if per_replicate and bool(self.stopped.all()):
                    self.finished = True
                    if self.path is not None:
                        self._save()
                    continue
                if not per_replicate and (self.step >= self.cap or bool(self.stopped.all())):
                    self.finished = self._end_phase()
                    if self.path is not None:
                        self._save()
                    continue
                step = self.step
                # the phase's own step count (in the rounds, each replicate's own)
                local = self.local if per_replicate else step - self.phase_start
                relaxed = self.phase == 0
                if config.temperature is not None and relaxed:
                    model.temperature = config.temperature(local)
                xb, yb = self.batches.gather(local)
                weight = config.kl_weight(local) if relaxed else 1.0
                loss, nll = self._update(xb, yb, weight, self.plateau.lr_scale, step)
                moved = (~self.stopped).long()
                self.steps_taken += moved
                if per_replicate:
                    self.local = self.local + moved
                if self.auto:
                    self._stop(self.capped)
                self.step = done = step + 1
                self.last_loss, self.last_nll = loss.detach(), nll.detach()
                if done % config.log_every == 0 or done == total:
                    self.history.append(loss.detach())
                    self.logged.append(done)
                    finite = torch.isfinite(flat.data).all(dim=1).cpu()
                    if not bool(finite.all()):
                        self._fail("parameters", ~finite & ~self.stopped, done)
                if per_replicate:
                    self._events()
                elif self.auto and self.phase == 0 and (local + 1) % rule.check_every == 0:
                    self._check()
                if self.path is not None and done % config.checkpoint_every == 0:
                    self._save()
                if progress := self.progress:
                    progress(done, total)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            elapsed = time.perf_counter() - t0
        finally:
            warnings.filters[:] = saved_filters
            flat.release_grads()
        return self._report(elapsed)

    def _report(self, elapsed: float) -> FitReport:
        model, reps = self.model, self.reps
        with torch.no_grad():
            final_kl = (model.kl() / self.n).cpu().numpy()
            neg_elbo = None if self.elbo is None else self.elbo().cpu().numpy()
        wall = self.wall_before + elapsed
        taken = self.steps_taken.numpy().copy()
        if self.auto:
            converged = (self.done & ~self.failed).numpy()
            status = tuple(
                "failed" if self.failed[r] else ("converged" if converged[r] else "max_steps")
                for r in range(reps)
            )
        else:
            converged = np.zeros(reps, dtype=bool)
            status = tuple("failed" if self.failed[r] else "fixed" for r in range(reps))
        nll = self.last_nll
        return FitReport(
            steps=self.step,
            replicates=reps,
            wall_s=wall,
            replicate_steps_per_s=float(taken.sum()) / wall if wall > 0 else float("nan"),
            peak_memory_bytes=_peak_memory(self.device),
            loss_history=torch.stack(self.history).cpu().numpy()
            if self.history
            else np.zeros((0, reps)),
            logged_steps=np.asarray(self.logged, dtype=np.int64),
            final_nll=(nll / self.batch).cpu().numpy()
            if nll is not None
            else np.full(reps, np.nan),
            final_kl=final_kl,
            resumed_from=self.resumed_from,
            device=str(self.device),
            converged=converged,
            steps_taken=taken,
            status=status,
            failure=tuple(self.failure),
            final_neg_elbo=neg_elbo,
            indicator_switches=self.switches.numpy().copy(),
            removal_trials=self.trials.numpy().copy(),
            compile_s=self.loss_step.compile_s,
            structure_events=tuple(self.events),
        )

    # ------------------------------------------------------------------ checkpoints

    resumed_from = 0

    def _save(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        model = self.model
        masks = [ind.frozen_mask for ind in model._indicators()]
        payload = {
            "format": _CHECKPOINT_FORMAT,
            "train_config": self.config.record(),
            "replicate_seeds": list(model.replicate_seeds),
            "fingerprint": self.fingerprint,
            "step": self.step,
            "phase": self.phase,
            "phase_start": self.phase_start,
            "finished": self.finished,
            "wall_s": self.wall_before + time.perf_counter() - self.t0,
            "flat": self.flat.data.detach().cpu(),
            "held": self.held.detach().cpu(),
            "optimizer": self.opt.state_dict(),
            "noise_generators": [g.get_state() for g in model.generators],
            "batch_generators": [g.get_state() for g in self.batches.generators],
            "perm": None if self.batches.perm is None else self.batches.perm.cpu(),
            "fresh": self.batches.fresh.clone(),
            "model_config": plain(asdict(model.config)),
            "temperature": model.temperature,
            "masks": [None if m is None else m.cpu() for m in masks],
            "frozen_values": None if self.frozen_values is None else self.frozen_values.cpu(),
            "last_nll": None if self.last_nll is None else self.last_nll.cpu(),
            "last_loss": None if self.last_loss is None else self.last_loss.cpu(),
            "loss_history": [h.cpu() for h in self.history],
            "logged_steps": list(self.logged),
            "plateau": self.plateau.state_dict(),
            "stopped": self.stopped.clone(),
            "failed": self.failed.clone(),
            "failure": list(self.failure),
            "done": self.done.clone(),
            "pruning": self.pruning.clone(),
            "plateaued": self.plateaued.clone(),
            "trials": self.trials.clone(),
            "steps_taken": self.steps_taken.clone(),
            "switches": self.switches.clone(),
            "events": list(self.events),
            **{name: _to(getattr(self, name), "cpu") for name in _PER_REPLICATE},
        }
        atomic_write(self.path, lambda handle: torch.save(payload, handle))

    def _resume(self) -> None:
        state = _load_checkpoint(self.path, self.model, self.config, self.fingerprint)
        model, device = self.model, self.device
        self.step = self.resumed_from = state["step"]
        self.phase, self.finished = state["phase"], state["finished"]
        self.phase_start = state["phase_start"]
        self.wall_before = state["wall_s"]
        self.flat.data.copy_(state["flat"].to(device))
        self.held = state["held"].to(device)
        self.opt.load_state_dict(state["optimizer"])
        for g, s in zip(model.generators, state["noise_generators"], strict=True):
            g.set_state(s)
        for g, s in zip(self.batches.generators, state["batch_generators"], strict=True):
            g.set_state(s)
        self.batches.perm = None if state["perm"] is None else state["perm"].to(device)
        self.batches.fresh = state["fresh"]
        model.temperature = state["temperature"]
        for ind, mask in zip(model._indicators(), state["masks"], strict=True):
            ind.frozen_mask = None if mask is None else mask.to(device)
        values = state["frozen_values"]
        self.frozen_values = None if values is None else values.to(device)
        self.last_nll = None if state["last_nll"] is None else state["last_nll"].to(device)
        self.last_loss = None if state["last_loss"] is None else state["last_loss"].to(device)
        self.history = [h.to(device) for h in state["loss_history"]]
        self.logged = list(state["logged_steps"])
        self.plateau.load_state_dict(state["plateau"])
        self.stopped, self.failed = state["stopped"].clone(), state["failed"].clone()
        self.failure = list(state["failure"])
        self.done = state["done"].clone()
        self.pruning = state["pruning"].clone()
        self.plateaued = state["plateaued"].clone()
        self.trials = state["trials"].clone()
        self.steps_taken = state["steps_taken"].clone()
        self.switches = state["switches"].clone()
        self.events = list(state["events"])
        for name in _PER_REPLICATE:
            on_device = name in ("trial_start", "trial_masks", "control_state")
            setattr(self, name, _to(state[name], device if on_device else "cpu"))


# The state of the rounds and removal trials that a checkpoint carries (_Fit.__init__).
_PER_REPLICATE = (
    "stage", "local", "rounds", "trials_run", "misses", "accepted", "rejected", "removal",
    "trial_start", "trial_masks", "control_state", "control_neg_elbo",
)  # fmt: skip


def _to(value, device):
    """A tensor, a list of tensors (or ``None``s) or ``None``, copied to ``device``."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_to(v, device) for v in value]
    return value.detach().to(device, copy=True)


def _load_checkpoint(path: Path, model: BayesianMLP, config: TrainConfig, fingerprint) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidParameterError("checkpoint", "a checkpoint written by fit", str(path)) from exc
    if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
        raise InvalidParameterError("checkpoint", "a checkpoint written by fit", str(path))
    if state["train_config"] != config.record():
        raise InvalidParameterError(
            "checkpoint", "written with the same TrainConfig", state["train_config"]
        )
    if list(state["replicate_seeds"]) != list(model.replicate_seeds):
        raise InvalidParameterError(
            "checkpoint", "written for a model with the same replicate seeds",
            state["replicate_seeds"],
        )  # fmt: skip
    if state["model_config"] != plain(asdict(model.config)):
        raise InvalidParameterError(
            "checkpoint", "written for a model with the same ModelConfig", state["model_config"]
        )
    if state["fingerprint"] != fingerprint:
        raise InvalidParameterError("checkpoint", "written for the same data", str(path))
    return state
