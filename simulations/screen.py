"""Screening the inputs: an input spike that leads the structure search of a plain model.

At p = 100 with 5 relevant inputs, the fits of the hidden-node model stop in optima worse
than the teacher's, while the same protocol on the model with a node spike on each input
as well (``ModelConfig(input_spike=True)``) finds the teacher's structure far more often.
``TrainConfig(screen_inputs=True)`` uses that model as a search device only
(``docs/engine.md``, "Screening the inputs"):

1. the protocol runs on the model with an input spike (:func:`screening_model`, its
   values those of the model to fit);
2. each replicate's hidden structure and values pass back to the model to fit
   (:func:`take_screened`); the first-layer weights on the inputs the spike dropped get
   mean 0 and the first layer's ``rho_init`` (gated by 0, they had drifted to their prior's spread);
3. that model goes on from the rounds: a round until the rule holds (so that the weights
   on the dropped inputs find their values before a pass prices them), its indicator
   pass, rounds, removal trials, then the removal search (``simulations.train``).

The model fitted is the model asked for; the input spike only chooses where its search
starts. :func:`joined` puts the two stages' reports together.

``TrainConfig(screen_inputs="both")`` runs the fit without screening and the screened fit
from the same start (on a :func:`twin_model`), and each replicate keeps the one with the
lower ``L(q)`` (:func:`take_rows`, :func:`either`): by construction never worse in the
objective than either.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from simulations.model import BayesianMLP

__all__ = ["either", "joined", "screening_model", "take_rows", "take_screened", "twin_model"]


def screening_model(model: BayesianMLP) -> BayesianMLP:
    """``model`` with a node spike on each input as well, holding ``model``'s values."""
    screen = BayesianMLP(
        replace(model.config, input_spike=True), model.replicate_seeds, n=model.n,
        dtype=model.dtype, device=model.device,
    )  # fmt: skip
    screen.temperature = model.temperature
    theirs = dict(screen.named_parameters())
    with torch.no_grad():
        for name, mine in model.named_parameters():
            theirs[name].copy_(mine)
    return screen


def twin_model(model: BayesianMLP) -> BayesianMLP:
    """A model of ``model``'s configuration and seeds holding its values and frozen masks."""
    twin = BayesianMLP(
        model.config, model.replicate_seeds, n=model.n, dtype=model.dtype, device=model.device
    )
    take_rows(model, twin, torch.ones(model.replicates, dtype=torch.bool, device=model.device))
    return twin


def take_rows(source: BayesianMLP, model: BayesianMLP, rows: torch.Tensor) -> None:
    """The replicates ``rows`` (``[R]`` booleans) of ``model`` take over ``source``'s values
    and frozen masks (the two models alike); the temperature comes along."""
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), source.parameters(), strict=True):
            mine[rows] = theirs[rows]
    for mine, theirs in zip(model._indicators(), source._indicators(), strict=True):
        if theirs.frozen_mask is None:
            continue
        if mine.frozen_mask is None:
            mine.frozen_mask = torch.ones_like(theirs.frozen_mask)
        mine.frozen_mask[rows] = theirs.frozen_mask[rows]
    model.temperature = source.temperature


def take_screened(screen: BayesianMLP, model: BayesianMLP) -> None:
    """``model`` takes the values and frozen hidden structure of the screened fit ``screen``;
    the first layer's weights on the inputs that ``screen`` dropped get mean 0 and
    the first layer's ``rho_init`` (the weights on kept inputs and the biases stay as fitted)."""
    theirs = dict(screen.named_parameters())
    with torch.no_grad():
        for name, mine in model.named_parameters():
            mine.copy_(theirs[name])
        first = model.layers[0]
        dropped = torch.zeros_like(first.mu, dtype=torch.bool)  # [R, out, p + 1]
        dropped[..., : model.config.p] = ~screen.input_spike.kept().unsqueeze(-2)
        first.mu[dropped] = 0.0
        first.rho[dropped] = model.config.rho_inits[0]
    hidden = [i for i in screen._indicators() if i is not screen.input_spike.indicators]
    for mine, theirs_ in zip(model._indicators(), hidden, strict=True):
        mine.frozen_mask = None if theirs_.frozen_mask is None else theirs_.frozen_mask.clone()
    model.temperature = screen.temperature


def joined(first, rest):
    """The :class:`~simulations.train.FitReport` of a screened fit: ``first`` (the screening
    fit) then ``rest`` (the model's own rounds). Per replicate, steps, switches and trials
    add up; the final values, convergence and status are ``rest``'s (a replicate that failed
    in either stage is failed); the starts are the screening's; the screening's structure
    events come first, marked ``"screened": True``, and ``rest``'s steps follow on."""
    offset = first.steps_taken
    events = tuple({**e, "screened": True} for e in first.structure_events) + tuple(
        {**e, "step": int(e["step"] + offset[e["replicate"]])} for e in rest.structure_events
    )
    failed = ["failed" in (a, b) for a, b in zip(first.status, rest.status, strict=True)]
    wall = first.wall_s + rest.wall_s
    steps_taken = first.steps_taken + rest.steps_taken
    return replace(
        rest,
        steps=first.steps + rest.steps,
        wall_s=wall,
        replicate_steps_per_s=float(steps_taken.sum()) / wall if wall > 0 else float("nan"),
        peak_memory_bytes=max(first.peak_memory_bytes, rest.peak_memory_bytes),
        loss_history=np.concatenate([first.loss_history, rest.loss_history]),
        logged_steps=np.concatenate([first.logged_steps, rest.logged_steps + first.steps]),
        resumed_from=first.resumed_from,
        converged=rest.converged & ~np.asarray(failed),
        steps_taken=steps_taken,
        status=tuple("failed" if f else s for f, s in zip(failed, rest.status, strict=True)),
        failure=tuple(a or b for a, b in zip(first.failure, rest.failure, strict=True)),
        indicator_switches=first.indicator_switches + rest.indicator_switches,
        removal_trials=first.removal_trials + rest.removal_trials,
        compile_s=first.compile_s + rest.compile_s,
        restart=first.restart,
        restart_neg_elbo=first.restart_neg_elbo,
        structure_events=events,
        screened=np.ones(rest.replicates, dtype=bool),
    )


def either(plain, screened, better: np.ndarray):
    """The :class:`~simulations.train.FitReport` of a fit with ``screen_inputs = "both"``:
    per replicate the fields of the fit it kept (the ``screened`` one where ``better``),
    ``screened = better``; steps, wall time and loss history of the two fits one after the
    other (the plain fit's first)."""
    pick = np.asarray(better, dtype=bool)
    per_replicate = {
        name: np.where(pick, getattr(screened, name), getattr(plain, name))
        for name in (
            "final_nll", "final_kl", "converged", "steps_taken", "final_neg_elbo",
            "indicator_switches", "removal_trials",
        )
    }  # fmt: skip
    restart = None
    if plain.restart is not None:
        restart = np.where(pick, screened.restart, plain.restart)
        scores = np.where(pick[:, None], screened.restart_neg_elbo, plain.restart_neg_elbo)
    events = tuple(e for e in plain.structure_events if not pick[e["replicate"]]) + tuple(
        e for e in screened.structure_events if pick[e["replicate"]]
    )
    wall = plain.wall_s + screened.wall_s
    total = float(plain.steps_taken.sum() + screened.steps_taken.sum())
    return replace(
        plain,
        steps=plain.steps + screened.steps,
        wall_s=wall,
        replicate_steps_per_s=total / wall if wall > 0 else float("nan"),
        peak_memory_bytes=max(plain.peak_memory_bytes, screened.peak_memory_bytes),
        loss_history=np.concatenate([plain.loss_history, screened.loss_history]),
        logged_steps=np.concatenate([plain.logged_steps, screened.logged_steps + plain.steps]),
        status=_per_replicate(plain.status, screened.status, pick),
        failure=_per_replicate(plain.failure, screened.failure, pick),
        compile_s=plain.compile_s + screened.compile_s,
        restart=restart,
        restart_neg_elbo=None if restart is None else scores,
        structure_events=events,
        screened=pick,
        **per_replicate,
    )


def _per_replicate(plain: tuple, screened: tuple, pick: np.ndarray) -> tuple:
    """``screened[r]`` where ``pick[r]``, else ``plain[r]``."""
    return tuple(b if p else a for a, b, p in zip(plain, screened, pick, strict=True))
