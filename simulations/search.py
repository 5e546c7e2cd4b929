"""The removal search: every removal of one node, then of two nodes of a layer, trained and
judged at once.

The removal trials of an ``"auto"`` fit (``simulations.train``, step 4) try one node at a
time, cheapest first by the least-squares proposal, and stop after ``trial_misses``
rejections in a row, so a removal that the proposal prices high is never trained. The
search ends the fit with best-improvement steps over all such moves. In round ``t``, for
each replicate ``r`` still searching, one batch holds

    a control arm (the structure as it is) and one removal arm per move: for every kept
    node j, the structure without j; or, in a round of pairs, for every two kept nodes
    j, k of the same layer, the structure without both (by
    :func:`~simulations.structure.remove_nodes`, one node after the other),

all from the replicate's values, trained ``search_steps`` steps (``trial_steps`` by
default) at ``lr`` with the structure frozen, on the same noise and minibatch streams
``"search<t>"`` of the replicate's seed (common random numbers). Each arm is then scored by
the fit's own :class:`~simulations.structure.ElboEstimate` (the replicate's rows and
noise). The replicate takes the removal arm with the lowest ``L(q)`` when it is below the
control arm's, and searches again with single removals; otherwise it keeps the lower of its
values before the round and the control arm's end, and goes on to a round of pairs after a
round of single removals, or is finished after a round of pairs (or when no layer keeps two
nodes). Pairs find two extra nodes that share one role, where removing either alone loses.
Each round adds those steps to the replicate's steps (the arms run side by side);
``max_steps`` bounds the phases before the search. A round's arms train in batches whose
data (a copy per arm) is at most the larger of the fit's batch of starts and 2 GiB.
``docs/engine.md``, "The removal search".
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import torch

from simulations.model import BayesianMLP
from simulations.rng import stream_seed
from simulations.structure import ElboEstimate, block_names, kept_nodes, remove_nodes

__all__ = ["removal_search"]


def removal_search(model: BayesianMLP, x, y, config, report, train_arms):
    """Run the search on the fitted ``model`` (frozen indicators) and return ``report`` with
    the replicates' steps, ``L(q)`` and structure events brought up to date.

    ``train_arms(arms, x, y, arm_config)`` trains a batch of arms ``arm_config.steps`` steps
    with their indicators frozen (``simulations.train``).
    """
    if not model.masks_frozen:
        return report
    rule = config.convergence
    elbo = ElboEstimate(model, x, y, rows=rule.rows, draws=rule.draws)
    current = elbo().cpu().numpy()
    steps = report.steps_taken.copy()
    events = list(report.structure_events)
    names = block_names(model)
    arm_steps = config.search_arm_steps
    arm_config = replace(
        config, steps=arm_steps, restarts=1, dense_steps=0, finetune_steps=0,
        kl_warmup_steps=0, indicator_pass=False, screen_inputs=False,
    )  # fmt: skip
    searching = [r for r in range(model.replicates) if report.status[r] != "failed"]
    size = dict.fromkeys(searching, 1)  # nodes per move of the replicate's next round
    switched = np.zeros(model.replicates, dtype=np.int64)
    row_bytes = x[0].numel() * x.element_size() + y[0].numel() * y.element_size()
    limit = max(config.restarts * model.replicates, _ARM_BYTES // row_bytes)
    round_ = batches = 0
    while searching:
        candidates = kept_nodes(model)
        moves = {r: _moves(candidates[r], size[r]) for r in searching}
        searching = [r for r in searching if moves[r]]
        if not searching:
            break
        still = []
        for group in _groups(searching, moves, limit):
            arms = [(r, None) for r in group] + [(r, m) for r in group for m in moves[r]]
            batch, value = _round(model, x, y, arms, round_, arm_config, train_arms)
            batches += 1
            for r in group:
                own = [i for i, (s, _) in enumerate(arms) if s == r]
                control, best = own[0], min(own[1:], key=lambda i: value[i])
                accepted = bool(value[best] < value[control])
                steps[r] += arm_steps
                if accepted or value[control] < current[r]:
                    kept_arm = best if accepted else control
                    _take(model, r, batch, kept_arm)
                    current[r] = value[kept_arm]
                move = arms[best][1]
                if accepted:
                    switched[r] += len(move)
                if accepted or size[r] == 1:
                    still.append(r)
                    size[r] = 1 if accepted else 2
                events.append({
                    "replicate": r, "step": int(steps[r]), "move": "search",
                    "block": names[move[0][0]], "nodes": [int(j) for _, j in move],
                    "delta_nats": float(value[best] - value[control]) * x.shape[1],
                    "accepted": accepted, "kept": [int(k[r].sum()) for k in model.kept().nodes],
                })  # fmt: skip
        searching = still
        round_ += 1
    with torch.no_grad():
        final_kl = (model.kl() / x.shape[1]).cpu().numpy()
    return replace(
        report,
        steps=report.steps + batches * arm_steps,
        steps_taken=steps,
        final_neg_elbo=current,
        final_kl=final_kl,
        indicator_switches=report.indicator_switches + switched,
        structure_events=tuple(events),
    )


# The data of one batch of arms (each arm holds a copy of its replicate's data) is at most
# that of the fit's own batch of starts or _ARM_BYTES, whichever is larger.
_ARM_BYTES = 2**31


def _moves(kept: list[tuple[int, int]], size: int) -> list[tuple[tuple[int, int], ...]]:
    """The removals of a round: each kept ``(block, node)`` alone (``size = 1``), or every two
    kept nodes of the same block (``size = 2``)."""
    if size == 1:
        return [(node,) for node in kept]
    return [(a, b) for a, b in itertools.combinations(kept, 2) if a[0] == b[0]]


def _groups(searching: list[int], moves, limit: int) -> list[list[int]]:
    """The replicates ``searching`` in order, in groups of at most ``limit`` arms (a control
    arm and one per move each; a replicate with more arms than that alone)."""
    groups: list[list[int]] = [[]]
    rows = 0
    for r in searching:
        arms = len(moves[r]) + 1
        if groups[-1] and rows + arms > limit:
            groups.append([])
            rows = 0
        groups[-1].append(r)
        rows += arms
    return groups


def _round(model, x, y, arms, round_, arm_config, train_arms):
    """Train one round's ``arms`` (``(replicate, None)`` for a control arm, ``(replicate,
    move)`` for a removal, ``move`` a tuple of ``(block, node)``) as one batch; return it and
    the arms' ``L(q)``."""
    pick = torch.tensor([r for r, _ in arms], device=model.device)
    seeds = [model.replicate_seeds[r] for r, _ in arms]
    batch = BayesianMLP(
        model.config, [stream_seed(s, "search", round_) for s in seeds], n=model.n,
        dtype=model.dtype, device=model.device,
    )  # fmt: skip
    batch.temperature = model.temperature
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), batch.parameters(), strict=True):
            theirs.copy_(mine[pick])
    for mine, theirs in zip(model._indicators(), batch._indicators(), strict=True):
        theirs.frozen_mask = None if mine.frozen_mask is None else mine.frozen_mask[pick].clone()
    xa, ya = x[pick.to(x.device)], y[pick.to(y.device)]
    rule = arm_config.convergence
    estimate = ElboEstimate(batch, xa, ya, rows=rule.rows, draws=rule.draws, seeds=seeds)
    blocks = range(len(block_names(model)))
    for k in range(max(len(move or ()) for _, move in arms)):  # one node of each move at a time
        nodes = [None if move is None or len(move) <= k else move[k] for _, move in arms]
        choice = [
            torch.tensor(
                [-1 if m is None or m[0] != b else m[1] for m in nodes], device=model.device
            )
            for b in blocks
        ]
        remove_nodes(batch, choice, estimate.x)
    train_arms(batch, xa, ya, arm_config)
    return batch, estimate().cpu().numpy()


def _take(model: BayesianMLP, r: int, batch: BayesianMLP, arm: int) -> None:
    """Replicate ``r`` of ``model`` takes the values and structure of ``batch``'s arm ``arm``."""
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), batch.parameters(), strict=True):
            mine[r] = theirs[arm]
    for mine, theirs in zip(model._indicators(), batch._indicators(), strict=True):
        if mine.frozen_mask is not None:
            mine.frozen_mask[r] = theirs.frozen_mask[arm]
