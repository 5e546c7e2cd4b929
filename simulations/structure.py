"""The ELBO on fixed noise, and the coordinate-ascent pass over the node indicators.

**ELBO on fixed noise.** For replicate ``r`` with ``n`` training observations,
:class:`ElboEstimate` estimates the negative ELBO per observation

    L(q) = ( -(n / m) (1/S) sum_s sum_{i in E} log p(y_i | f_{theta_s}(x_i)) + KL(q || prior) ) / n

on ``m`` fixed evaluation rows ``E`` of the training data and ``S`` fixed noise
draws ``theta_s ~ q`` (hard indicators, exact Bernoulli draws or the frozen
mask). Rows and noise come from replicate ``r``'s own streams and are the same
at every call (common random numbers), so two estimates differ only through
the parameters: the convergence rule of ``simulations.train`` compares them over
time and the indicator pass compares structures with them. An estimate for some of the
replicates runs the network on those alone, and so does the least-squares refit of a
removal: a move usually concerns one replicate of many.

**Indicator pass** (:func:`indicator_pass`). With the indicators frozen (``q(z)``
a point mass on a structure), the coordinate-ascent step for ``q(z_j)`` of one
node compares the ELBO with ``z_j = 1`` and ``z_j = 0``, everything else fixed.
Switching a node off saves its KL ``log(lambda / (1 - lambda))^{-1}`` and its
slab KL; where the activation has ``psi(0) = 0`` the node then outputs exactly
0, so its outgoing weights do not reach the likelihood and their ``q`` is set
to the prior (their KL becomes 0). The pass visits the kept nodes of every
hidden layer (and, with an input spike, the kept inputs), weakest first, and
keeps every switch that lowers ``L(q)`` (``docs/engine.md``, "Training until
convergence").

**Removal costs** (:func:`removal_costs`): the rise of ``L(q)`` under the pass's proposal
for every kept node, the order in which ``fit``'s removal trials propose nodes; a trial
applies the proposal with :func:`remove_nodes` and then trains (``simulations.train``).

**A student at the truth** (:func:`place_at_truth`, :func:`freeze_structure`): the slab means
set to a teacher's weights and the indicators to its structure, the start of the
measurements of when the truth is an optimum of the ELBO (``docs/engine.md``).
"""

from __future__ import annotations

import contextlib
import itertools
import math

import torch

from simulations.layers import replicate_generators
from simulations.model import BayesianMLP
from simulations.rng import stream_seed
from ssbnn_theory.enums import Activation
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "ElboEstimate",
    "block_names",
    "freeze_structure",
    "indicator_pass",
    "kept_nodes",
    "place_at_truth",
    "removal_costs",
    "remove_nodes",
]

# Rows of one evaluation chunk times the widest layer, per replicate: bounds the memory.
_CHUNK_ELEMENTS = 2**24


class ElboEstimate:
    """Negative ELBO per observation of every replicate on fixed rows and fixed noise.

    Parameters
    ----------
    model
        The :class:`BayesianMLP` (its parameters are read at every call).
    x, y
        The training data ``[R, n, p]`` and targets, as passed to ``fit``.
    rows
        ``m``: evaluation rows per replicate (all ``n`` when ``n <= rows``).
    draws
        ``S``: noise draws.
    stream
        Name of the seed streams (rows: ``stream + "/rows"``, noise: ``stream + "/noise"``).
    seeds
        The replicates' seeds of those streams (default: ``model.replicate_seeds``);
        restarts of one replicate share its seed, so their estimates are comparable.
    """

    def __init__(
        self,
        model: BayesianMLP,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        rows: int = 2048,
        draws: int = 4,
        stream: str = "elbo",
        seeds: tuple[int, ...] | None = None,
    ) -> None:
        self.model = model
        reps, n = x.shape[:2]
        self.n = n
        self.draws = draws
        seeds = model.replicate_seeds if seeds is None else seeds
        if rows >= n:
            self.x, self.y = x, y
        else:
            gens = replicate_generators([stream_seed(s, stream + "/rows") for s in seeds])
            idx = torch.stack([torch.randperm(n, generator=g)[:rows] for g in gens])
            idx = idx.sort(dim=1).values.to(x.device)
            self.x = torch.stack([x[r, idx[r]] for r in range(reps)])
            self.y = torch.stack([y[r, idx[r]] for r in range(reps)])
        self.noise_seeds = [stream_seed(s, stream + "/noise") for s in seeds]

    @property
    def rows(self) -> int:
        """``m``."""
        return self.x.shape[1]

    @torch.no_grad()
    def __call__(self, replicates: torch.Tensor | None = None) -> torch.Tensor:
        """``L(q)`` per replicate, ``[R]`` (float64). With ``replicates`` (``[R]`` bool) only
        theirs, ``nan`` for the others: the network then runs on those replicates alone
        (:func:`replicate_rows`; a move usually concerns one replicate of many)."""
        model = self.model
        reps = model.replicates
        widest = max(model.config.p, *model.config.hidden)
        chunk = max(1, _CHUNK_ELEMENTS // (reps * widest))  # the same rows for any subset
        if replicates is None or bool(replicates.all()):
            return self._estimate(self.x, self.y, self.noise_seeds, chunk)
        value = torch.full((reps,), math.nan, dtype=torch.float64, device=model.device)
        pick = replicates.to(model.device).nonzero().flatten()
        if len(pick):
            seeds = [self.noise_seeds[r] for r in pick.tolist()]
            with replicate_rows(model, pick):
                value[pick] = self._estimate(self.x[pick], self.y[pick], seeds, chunk)
        return value

    def _estimate(self, x, y, noise_seeds, chunk: int) -> torch.Tensor:
        """The estimate on the rows ``x``, ``y`` of the model's replicates as they stand."""
        model = self.model
        saved = model.generators
        model.generators = replicate_generators(noise_seeds, model.device)
        try:
            nll = torch.zeros(len(noise_seeds), dtype=torch.float64, device=model.device)
            for _ in range(self.draws):
                # One weight draw per pass: the chunks of a draw share it.
                state = [g.get_state() for g in model.generators]
                for start in range(0, self.rows, chunk):
                    for g, s in zip(model.generators, state, strict=True):
                        g.set_state(s)
                    f, kl = model.forward_kl(x[:, start : start + chunk])
                    nll += model.likelihood.nll(f, y[:, start : start + chunk]).double()
            kl = kl.double()
        finally:
            model.generators = saved
        return (nll * (self.n / (self.rows * self.draws)) + kl) / self.n


# Buffers that hold one row per replicate (the frozen indicators, a fixed noise sd); the
# parameters all do (they are rows of the training's flat buffer).
_REPLICATE_BUFFERS = ("frozen_mask", "log_sigma")


@contextlib.contextmanager
def replicate_rows(model: BayesianMLP, pick: torch.Tensor):
    """While the block runs, ``model`` is the replicates ``pick`` (indices, ``[k]``) alone:
    its parameters, per-replicate buffers, generators and ``replicates`` are theirs. Each
    replicate's computation reads its own rows only, so its values are those of the whole
    batch up to the rounding of batched kernels of another batch size. Restored after."""
    params = [(p, p.data) for p in model.parameters()]
    buffers = [
        (module, name, module._buffers[name])
        for module in model.modules()
        for name in _REPLICATE_BUFFERS
        if module._buffers.get(name) is not None
    ]
    saved = model.generators, model.replicates
    try:
        for p, data in params:
            p.data = data[pick]
        for module, name, buffer in buffers:
            module._buffers[name] = buffer[pick]
        model.generators = [saved[0][r] for r in pick.tolist()]
        model.replicates = len(pick)
        yield model
    finally:
        for p, data in params:
            p.data = data
        for module, name, buffer in buffers:
            module._buffers[name] = buffer
        model.generators, model.replicates = saved


def _prior_rho(sigma_0: float) -> float:
    """``rho`` with ``softplus(rho) = sigma_0``."""
    return sigma_0 + math.log(-math.expm1(-sigma_0))


@torch.no_grad()
def indicator_pass(
    model: BayesianMLP,
    elbo: ElboEstimate,
    *,
    sweeps: int = 2,
    replicates: torch.Tensor | None = None,
) -> torch.Tensor:
    """Coordinate ascent over the frozen node (and input) indicators.

    The model's indicators must be frozen (``model.freeze_masks()``). Each replicate
    visits its kept nodes layer by layer, weakest first (smallest outgoing mean
    weights ``sum_k |E_q w_kj|``). A visit proposes the structure without the node:
    its outgoing weights' ``q`` set to the prior and the next layer's mean weights
    refitted by least squares to what they received before (:func:`_compensated_means`),
    so that a node whose output the others can carry costs nothing to remove. The
    proposal is kept when ``L(q)`` falls and reverted otherwise. Replicates take their
    steps together but each decides on its own values. A sweep visits every layer;
    sweeps repeat until one makes no switch (at most ``sweeps``). ``replicates`` (``[R]``
    bool, default all) selects the replicates that take part; the others are left as they
    are. Returns the switches per replicate, ``[R]``.
    """
    reps = model.replicates
    if not _spiked_blocks(model):  # no node or input indicators: nothing to switch
        return torch.zeros(reps, dtype=torch.long, device=model.device)
    if not model.masks_frozen:
        raise RuntimeError("indicator_pass needs frozen indicators (model.freeze_masks())")
    every = torch.arange(reps, device=model.device)
    taking_part = (
        torch.ones(reps, dtype=torch.bool, device=model.device)
        if replicates is None
        else replicates.to(model.device)
    )
    switched = torch.zeros(reps, dtype=torch.long, device=model.device)
    current = elbo(taking_part)
    for _ in range(sweeps):
        before = int(switched.sum())
        for block, index in _spiked_blocks(model):
            outgoing = model.layers[index]
            own = _own_means(model, index)
            mask = block.indicators.frozen_mask
            order = _weakest_first(outgoing)
            for t in range(order.shape[1]):
                j = order[:, t]
                on = (mask[every, j] > 0.5) & taking_part
                if not bool(on.any()):
                    continue
                saved_mu, saved_rho = outgoing.mu.clone(), outgoing.rho[every, :, j].clone()
                saved_own = own.clone()
                _propose_removal(model, block, index, j, on, elbo.x)
                trial = elbo(on)
                better = on & (trial < current)
                revert = on & ~better
                mask[every, j] = torch.where(revert, 1.0, mask[every, j])
                outgoing.mu.copy_(torch.where(revert[:, None, None], saved_mu, outgoing.mu))
                own.copy_(torch.where(revert[:, None, None], saved_own, own))
                outgoing.rho[every, :, j] = torch.where(
                    revert[:, None], saved_rho, outgoing.rho[every, :, j]
                )
                current = torch.where(better, trial, current)
                switched += better.long()
        if int(switched.sum()) == before:
            break
    _sync_logits(model)
    return switched


def _propose_removal(model: BayesianMLP, block, index: int, j: torch.Tensor, on, x) -> None:
    """Switch node ``j[r]`` of ``block`` off in the replicates ``on`` (``[R]`` bool).

    Where the activation has ``psi(0) = 0`` the outgoing weights' ``q`` goes to the prior
    and the next layer's means are refitted by least squares (:func:`_compensated_means`,
    on the rows ``x``).
    """
    outgoing = model.layers[index]
    every = torch.arange(model.replicates, device=model.device)
    if model.config.activation is not Activation.SIGMOID:
        if _compensable(outgoing):
            mu, reflected = _compensated_means(model, index, j, x, on)
            outgoing.mu.copy_(torch.where(on[:, None, None], mu, outgoing.mu))
            if bool(reflected.any()):  # the block's reflected nodes: their incoming means negated
                own = model.layers[index - 1].mu
                flip = (reflected & on[:, None])[..., None]
                own.copy_(torch.where(flip, -own, own))
        rho = outgoing.rho[every, :, j]
        prior = torch.full_like(rho, _prior_rho(outgoing.sigma_0))
        outgoing.mu[every, :, j] = torch.where(on[:, None], 0.0, outgoing.mu[every, :, j])
        outgoing.rho[every, :, j] = torch.where(on[:, None], prior, rho)
    mask = block.indicators.frozen_mask
    mask[every, j] = torch.where(on, 0.0, mask[every, j])


@torch.no_grad()
def removal_costs(
    model: BayesianMLP, elbo: ElboEstimate, replicates: torch.Tensor
) -> list[torch.Tensor]:
    """``L(q)`` after the removal proposal of each kept node minus ``L(q)`` now, per node.

    One ``[R, k]`` float64 tensor per spiked block (the input spike, then the node layers);
    ``inf`` where the node is not kept or the replicate is not in ``replicates``. The
    model is left as it was.
    """
    every = torch.arange(model.replicates, device=model.device)
    taking_part = replicates.to(model.device)
    current = elbo(taking_part)
    costs = []
    for block, index in _spiked_blocks(model):
        outgoing = model.layers[index]
        own = _own_means(model, index)
        mask = block.indicators.frozen_mask
        cost = torch.full(mask.shape, math.inf, dtype=torch.float64, device=model.device)
        for node in range(mask.shape[1]):
            j = torch.full((model.replicates,), node, device=model.device)
            on = (mask[:, node] > 0.5) & taking_part
            if not bool(on.any()):
                continue
            saved_mu, saved_rho, saved_own = outgoing.mu.clone(), outgoing.rho.clone(), own.clone()
            _propose_removal(model, block, index, j, on, elbo.x)
            cost[:, node] = torch.where(on, elbo(on) - current, math.inf)
            mask[every, j] = torch.where(on, 1.0, mask[every, j])
            outgoing.mu.copy_(saved_mu)
            outgoing.rho.copy_(saved_rho)
            own.copy_(saved_own)
        costs.append(cost)
    return costs


@torch.no_grad()
def remove_nodes(model: BayesianMLP, choice: list[torch.Tensor], x: torch.Tensor) -> None:
    """Switch off node ``choice[b][r]`` of spiked block ``b`` in replicate ``r`` (``-1``: none).

    Each removal is :func:`indicator_pass`'s proposal (outgoing ``q`` to the prior, the next
    layer refitted by least squares on the rows ``x``); the logits follow the masks.
    """
    for (block, index), nodes in zip(_spiked_blocks(model), choice, strict=True):
        on = nodes >= 0
        if bool(on.any()):
            _propose_removal(model, block, index, nodes.clamp_min(0), on, x)
    _sync_logits(model)


# Rows used for the least-squares refit of a removal, and its ridge (relative to the mean
# diagonal of the Gram matrix): enough to determine k_l + 1 coefficients per next-layer node.
_REFIT_ROWS = 2048
_REFIT_RIDGE = 1e-6


def _compensable(layer) -> bool:
    """Layers whose mean weights the refit can set: dense and node layers (not edge layers)."""
    indicators = getattr(layer, "indicators", None)
    return indicators is None or indicators.theta.dim() == 2


def _compensated_means(
    model: BayesianMLP, index: int, j: torch.Tensor, x: torch.Tensor, on: torch.Tensor
):
    """Layer ``index`` refitted after its input ``j[r]`` is removed, in the replicates ``on``
    (``[R]`` bool): ``(mu, reflected)``, the other replicates' rows as they are.

    With ``h`` the layer's inputs under the variational-mean network (``[R, m, in]``, on
    evaluation rows) and ``(W, b)`` its effective mean weights, the refit solves the ridge
    least-squares problem ``min_A || [h_{-j}, 1] A - (h W^T + b) ||^2`` per replicate
    (``h_{-j}``: column ``j`` set to 0), and divides the new effective weights by the
    layer's gates ``kept_k E_q[scale_k]`` to get the slab means ``mu`` (``[R, out, in + 1]``;
    rows of nodes that are not kept keep their means). Only the replicates ``on`` are
    computed (a pass or a trial often moves one replicate of many); each replicate's refit
    reads its own values only.

    When the inputs are the nodes of a hidden layer whose activation has
    ``psi(u) - psi(-u) = u`` (ReLU, SiLU), the refit may also *reflect* kept nodes of that
    layer, ``psi(-z_k)`` in place of ``psi(z_k)`` (:func:`_reflections`): their outputs then
    span the linear part ``z_k`` that the removed node may have carried. ``reflected``
    (``[R, in]`` bool) says which; the caller negates their incoming means.
    """
    pick = on.nonzero().flatten()
    weights = [(w[pick], b[pick]) for w, b in model.mean_weights()]
    h = x[pick, :_REFIT_ROWS].to(model.dtype)
    z = None
    for w, b in weights[:index]:
        z = torch.baddbmm(b.unsqueeze(-2), h, w.transpose(-1, -2))
        h = model._act(z)
    w, b = weights[index]
    target = torch.baddbmm(b.unsqueeze(-2), h, w.transpose(-1, -2))
    reps, width = h.shape[0], h.shape[-1]
    every = torch.arange(reps, device=h.device)
    h = h.clone()
    h[every, :, j[pick]] = 0.0
    reflected = torch.zeros(model.replicates, width, dtype=torch.bool, device=h.device)
    if index > 0 and model.config.activation in _REFLECTABLE and width <= _REFLECTION_WIDTH:
        kept = model.layers[index - 1].kept()[pick] > 0
        kept[every, j[pick]] = False
        picked = _reflections(h, model._act(-z), target, kept)
        reflected[pick] = picked
        h = torch.where(picked[:, None, :], model._act(-z), h)
    effective = _least_squares(h, target)[0].transpose(-1, -2).to(h.dtype)  # [r, out, in + 1]
    layer = model.layers[index]
    mu = layer.mu.clone()
    if getattr(layer, "indicators", None) is None:
        mu[pick] = effective
        return mu, reflected
    gate = (layer.kept().to(h.dtype) * layer.expected_scale())[pick]
    usable = gate > 0
    mu[pick] = torch.where(
        usable[..., None], effective / gate.clamp_min(1e-30)[..., None], mu[pick]
    )
    return mu, reflected


# Activations with psi(u) - psi(-u) = u, whose nodes a refit may reflect, in layers at most
# _REFLECTION_WIDTH wide (the search solves one system per candidate set); the most nodes one
# refit reflects; a reflection is taken when it removes at least _REFLECTION_GAIN of the
# residual sum of squares and at least _REFLECTION_FLOOR of the target's (centred) one.
_REFLECTABLE = (Activation.RELU, Activation.SILU)
_REFLECTION_WIDTH = 32
_REFLECTION_SIZE = 2
_REFLECTION_GAIN = 0.1
_REFLECTION_FLOOR = 1e-3
_REFLECTION_ELEMENTS = 2**24  # Gram entries of the candidate sets solved at once


def _least_squares(h: torch.Tensor, target: torch.Tensor):
    """Ridge least squares of ``target`` (``[R, m, out]``) on ``[h, 1]``: ``(coef, rss)``,
    ``coef`` ``[R, in + 1, out]`` (weights, then the bias), ``rss`` the residual sum of
    squares ``[R]``; in float64 (:func:`_solve`)."""
    h, target = h.double(), target.double()
    design = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)
    gram, cross = design.transpose(-1, -2) @ design, design.transpose(-1, -2) @ target
    coef, rss = _solve(gram, cross, target.square().sum((-2, -1)))
    return coef, rss


def _solve(gram, cross, total):
    """Ridge solution ``coef = (G + ridge I)^{-1} c`` and the residual sum of squares
    ``total - 2 coef . c + coef^T G coef`` of the normal equations ``(G, c)``, batched.

    ``G + ridge I`` is symmetric positive definite, so it is solved by its Cholesky factor
    (batched LU factorisation is not used: torch's CPU build gave wrong solutions, or stopped
    on an MKL error, for batches of systems from about 150 unknowns on two threads). The
    callers form ``G`` in float64: the ridge, ``1e-6`` of the mean diagonal, is about ten
    float32 roundings of the largest entries, so in float32 the factorisation of nearly
    collinear columns can end on a zero pivot. A system whose factorisation fails even so
    gets the least-norm solution (``pinv``)."""
    size = gram.shape[-1]
    ridge = _REFIT_RIDGE * gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)
    eye = torch.eye(size, dtype=gram.dtype, device=gram.device)
    system = gram + ridge[..., None, None] * eye
    factor, info = torch.linalg.cholesky_ex(system)
    coef = torch.cholesky_solve(cross, factor)
    singular = info != 0
    if bool(singular.any()):
        coef[singular] = torch.linalg.pinv(system[singular]) @ cross[singular]
    rss = total - 2 * (coef * cross).sum((-2, -1)) + (coef * (gram @ coef)).sum((-2, -1))
    return coef, rss


def _reflections(h, mirrored, target, kept) -> torch.Tensor:
    """The nodes to reflect, ``[R, in]`` bool: the set of at most ``_REFLECTION_SIZE`` kept
    nodes whose reflection gives the refit the smallest residual, searched exhaustively
    (the layer is at most ``_REFLECTION_WIDTH`` wide).

    ``h``: the inputs after the removal (``[R, m, in]``), ``mirrored``: every input's
    reflection ``psi(-z)``, ``kept``: the nodes that may be reflected. One Gram matrix of
    ``[h, mirrored, 1]`` serves every candidate set: a set picks its columns. (Single
    reflections are not enough: a node carrying the linear parts of two reflected nodes
    needs both reflected at once.)
    """
    reps, _, width = h.shape
    h, mirrored, target = h.double(), mirrored.double(), target.double()
    full = torch.cat([h, mirrored, torch.ones_like(h[..., :1])], dim=-1)
    gram, cross = full.transpose(-1, -2) @ full, full.transpose(-1, -2) @ target
    total = target.square().sum((-2, -1))
    candidates = kept.any(0).nonzero().flatten().tolist()
    members = torch.tensor(  # [sets, _REFLECTION_SIZE]: the nodes of each set, -1 padding
        [
            c + (-1,) * (_REFLECTION_SIZE - size)
            for size in range(_REFLECTION_SIZE + 1)
            for c in itertools.combinations(candidates, size)
        ],
        dtype=torch.long,
        device=h.device,
    ).reshape(-1, _REFLECTION_SIZE)
    step = max(1, _REFLECTION_ELEMENTS // (reps * (width + 1) ** 2))
    plain = torch.arange(width + 1, device=h.device)
    plain[-1] = 2 * width  # the constant column
    # A set's columns: node k's reflection (column width + k) in place of k; a padded slot
    # points at the constant column, which stays as it is.
    slots = torch.where(members >= 0, members, width)
    cols_all = plain.repeat(members.shape[0], 1).scatter(
        1, slots, plain[slots] + width * (members >= 0)
    )
    kept_or_pad = torch.cat([kept, torch.ones_like(kept[:, :1])], dim=1)  # [R, in + 1]
    allowed_all = kept_or_pad[:, slots].all(-1).T  # [sets, R]: every member kept
    best_rss = torch.full((reps,), math.inf, dtype=total.dtype, device=h.device)
    best_cols = plain.repeat(reps, 1)
    base = None
    for start in range(0, members.shape[0], step):
        cols, allowed = cols_all[start : start + step], allowed_all[start : start + step]
        g = gram[:, cols[:, :, None], cols[:, None, :]].transpose(0, 1)  # [sets, R, in+1, in+1]
        c = cross[:, cols].transpose(0, 1)  # [sets, R, in + 1, out]
        rss = torch.where(allowed, _solve(g, c, total)[1], math.inf)
        if base is None:
            base = rss[0]  # the empty set: no reflection
        low, which = rss.min(dim=0)
        better = low < best_rss
        best_rss = torch.where(better, low, best_rss)
        best_cols = torch.where(better[:, None], cols[which], best_cols)
    gain = base - best_rss
    floor = _REFLECTION_FLOOR * (target - target.mean(-2, keepdim=True)).square().sum((-2, -1))
    take = (gain >= _REFLECTION_GAIN * base) & (gain > floor)
    return (best_cols[:, :width] >= width) & take[:, None]


def _spiked_blocks(model: BayesianMLP):
    """``(block, index of the layer its outputs feed)`` for the input spike and the node layers."""
    blocks = []
    if model.input_spike is not None:
        blocks.append((model.input_spike, 0))
    for i, layer in enumerate(model.hidden_layers):
        indicators = getattr(layer, "indicators", None)
        if indicators is not None and indicators.frozen_mask.dim() == 2:  # node layers
            blocks.append((layer, i + 1))
    return blocks


def kept_nodes(model: BayesianMLP) -> list[list[tuple[int, int]]]:
    """Per replicate, ``(block, node)`` of every kept node of the spiked blocks (frozen
    indicators; blocks in the order of :func:`block_names`)."""
    kept: list[list[tuple[int, int]]] = [[] for _ in range(model.replicates)]
    for b, (block, _) in enumerate(_spiked_blocks(model)):
        for r, j in (block.indicators.frozen_mask > 0.5).nonzero().tolist():
            kept[r].append((b, j))
    return kept


def block_names(model: BayesianMLP) -> list[str]:
    """Names of the spiked blocks in the order of :func:`removal_costs` (frozen indicators):
    ``"inputs"`` for the input spike, ``"layer l"`` for hidden node layer ``l`` (1-based)."""
    return ["inputs" if index == 0 else f"layer {index}" for _, index in _spiked_blocks(model)]


def _own_means(model: BayesianMLP, index: int) -> torch.Tensor:
    """The means of the layer whose nodes feed layer ``index`` (a removal may reflect some of
    them); an empty tensor for the input spike's block."""
    if index == 0:
        return torch.empty(model.replicates, 0, 0, dtype=model.dtype, device=model.device)
    return model.layers[index - 1].mu


def _weakest_first(outgoing) -> torch.Tensor:
    """Per replicate, the nodes by increasing ``sum_k |E_q w_kj|`` of the next layer, ``[R, k]``."""
    return torch.argsort(outgoing.mu[..., :-1].abs().sum(-2), dim=-1)


def _sync_logits(model: BayesianMLP) -> None:
    """Set each frozen indicator's logit to the side of 0 of its mask, so ``kept()`` and a later
    unfreeze agree with the pass: ``theta = +-logit(0.99)`` (the reference initial value)."""
    logit = math.log(99.0)
    for block, _ in _spiked_blocks(model):
        ind = block.indicators
        agree = (ind.theta > 0) == (ind.frozen_mask > 0.5)
        ind.theta.data.copy_(torch.where(agree, ind.theta.data, (2 * ind.frozen_mask - 1) * logit))


def freeze_structure(model: BayesianMLP, masks: list[torch.Tensor]) -> None:
    """Inclusion logits at ``+-9`` on ``masks`` (``[R, k]`` per hidden layer, 1 for a kept
    node): inclusion probabilities of ``1 - 1.2e-4`` and ``1.2e-4``, which ``fit`` freezes."""
    for layer, mask in zip(model.hidden_layers, masks, strict=True):
        layer.indicators.theta.data.copy_((2 * mask - 1) * 9.0)


def place_at_truth(model: BayesianMLP, truth, rho: float = -5.0) -> None:
    """Place every replicate of ``model`` at the teacher ``truth`` (a design's ``Truth``).

    Slab means: layer ``l``'s teacher weights and biases ``[W_l, b_l]``, in the first rows
    and columns of the student's, zero beyond them, divided by the layer's expected scale
    for a hidden layer (so that the mean network is the teacher's); ``rho`` everywhere;
    the indicators at the true structure (the first ``active_nodes[l]`` nodes of each
    hidden layer kept, :func:`freeze_structure`).
    """
    hidden = model.config.hidden
    depth = len(truth.weights) - 1
    fits = (
        depth == len(hidden)
        and all(
            w.shape[0] <= k and truth.active_nodes[i] <= k
            for i, (w, k) in enumerate(zip(truth.weights, hidden, strict=False))
        )
        and truth.weights[0].shape[1] <= model.config.p
    )
    if not fits:
        allowed = f"a teacher of {len(hidden)} hidden layers within the student's {list(hidden)}"
        shapes = [tuple(w.shape) for w in truth.weights]
        raise InvalidParameterError("truth", allowed, f"weights {shapes}")
    masks = []
    with torch.no_grad():
        for i, (w, b) in enumerate(zip(truth.weights, truth.biases, strict=True)):
            layer = model.layers[i]
            out, fan = w.shape
            group = torch.zeros(layer.mu.shape[1:], dtype=layer.mu.dtype)
            group[:out, :fan] = torch.tensor(w, dtype=layer.mu.dtype)
            group[:out, -1] = torch.tensor(b, dtype=layer.mu.dtype)
            if i < len(hidden):
                mask = torch.zeros(model.replicates, hidden[i], dtype=layer.mu.dtype)
                mask[:, : truth.active_nodes[i]] = 1.0
                masks.append(mask)
                group = group.to(layer.mu.device) / layer.expected_scale()[..., None]
            layer.mu.copy_(group.expand_as(layer.mu))
            layer.rho.fill_(rho)
    freeze_structure(model, [m.to(model.device) for m in masks])
