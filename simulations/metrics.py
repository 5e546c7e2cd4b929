"""Contraction, prediction, structure and cost metrics of a fitted model (``docs/metrics.md``).

The pure functions work on tensors with any leading axes (draws ``M``,
replicates ``R``) and reduce the trailing ``[n, outputs]`` axes: the mean over
the test inputs ``x_1..x_n`` of a sum over outputs. :func:`evaluate` applies
them to a model and a :class:`~simulations.designs.SimulationData` and returns
one value per replicate.

Conventions (``docs/metrics.md``):

* ``||g||_2^2 = E_X sum_k g_k(X)^2``, the squared ``L2(P_X)`` norm, estimated on
  the shared test set. For classification, ``f`` is compared with ``f0`` on the
  probability scale (``sigmoid`` / ``softmax`` of the network's logits).
* ``d_H^2(p, q) = 1 - int sqrt(p q)``, in ``[0, 1]``, between the joint laws of
  ``(X, Y)`` under the model and under the truth.
* A node is kept when its inclusion probability exceeds 1/2; density is the
  fraction kept (sparsity is one minus density).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from simulations.designs import SimulationData
from simulations.enums import Likelihood
from simulations.rng import stream_seed
from ssbnn_theory.enums import parse_enum
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.validation import check_integer, check_positive

__all__ = [
    "EXCEEDANCE_MULTIPLES",
    "Evaluation",
    "cost_metrics",
    "count_flops",
    "count_kept_weights",
    "count_parameters",
    "evaluate",
    "exceedance",
    "hellinger_sq",
    "input_error_rates",
    "kept_counts",
    "mean_parameter",
    "median_mask_counts",
    "prediction_scores",
    "squared_l2",
]

EXCEEDANCE_MULTIPLES = (1, 2, 4)
"""The multiples ``M`` of ``eps_n`` at which ``Q(d_H > M eps_n)`` is reported."""


# --------------------------------------------------------------------------- checks


def _tensor(field: str, value: object, min_dim: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() < min_dim:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise InvalidParameterError(field, f"a tensor with at least {min_dim} axes", shape)
    if value.is_floating_point() and not torch.isfinite(value).all():
        raise InvalidParameterError(field, "finite values (no NaN or inf)", "non-finite entries")
    return value


def _matching(f: torch.Tensor, f0: torch.Tensor) -> None:
    if f0.dim() != 2 or f.shape[-2:] != f0.shape:
        raise InvalidParameterError(
            "f0", f"a tensor [n, outputs] = {list(f.shape[-2:])} matching f", tuple(f0.shape)
        )


# --------------------------------------------------------------------------- contraction


def mean_parameter(f: torch.Tensor, likelihood: Likelihood | str) -> torch.Tensor:
    """The network output on the scale of ``f0``: ``f`` (Gaussian), ``sigmoid f``, ``softmax f``.

    Parameters
    ----------
    f
        ``[..., n, outputs]`` network outputs (logits for classification).
    likelihood
        The observation model.
    """
    lik = parse_enum(Likelihood, likelihood, "likelihood")
    if lik is Likelihood.BERNOULLI:
        return torch.sigmoid(f)
    if lik is Likelihood.CATEGORICAL:
        return torch.softmax(f, dim=-1)
    return f


def squared_l2(f: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
    """``||f - f0||_2^2 = (1/n) sum_i sum_k (f_k(x_i) - f0_k(x_i))^2``.

    Parameters
    ----------
    f
        ``[..., n, outputs]``, e.g. ``[M, R, n, outputs]`` draws.
    f0
        ``[n, outputs]`` truth at the same inputs.

    Returns
    -------
    torch.Tensor
        ``f.shape[:-2]``.
    """
    _tensor("f", f, 2)
    _tensor("f0", f0, 2)
    _matching(f, f0)
    return (f - f0).square().sum(dim=-1).mean(dim=-1)


def hellinger_sq(
    f: torch.Tensor,
    f0: torch.Tensor,
    likelihood: Likelihood | str,
    sigma_e: float | None = None,
) -> torch.Tensor:
    """Squared Hellinger distance ``d_H^2 = 1 - E_X int sqrt(p_f(y|X) p_0(y|X)) dy`` of joint laws.

    Both laws share the law of ``X`` (the test set's empirical law), so the
    affinity integrates over ``y`` only (``docs/metrics.md`` has the derivations):

    * Gaussian, ``y | x ~ N(f(x), sigma_e^2 I_K)``: the product over outputs of
      ``exp(-(f_k - f0_k)^2 / (8 sigma_e^2))``, so
      ``d_H^2 = 1 - E_X exp(-||f(X) - f0(X)||^2 / (8 sigma_e^2))``, evaluated as
      ``E_X[-expm1(-u)]`` (no cancellation for small distances);
    * Bernoulli, ``q = sigmoid f``, ``p = f0``:
      ``1 - sqrt(p q) - sqrt((1-p)(1-q)) = ((sqrt p - sqrt q)^2 + (sqrt(1-p) - sqrt(1-q))^2) / 2``;
    * categorical, ``q = softmax f``, ``p = f0``:
      ``1 - sum_k sqrt(p_k q_k) = sum_k (sqrt p_k - sqrt q_k)^2 / 2``.

    The square roots of ``q`` come from ``exp(log_sigmoid / 2)`` and
    ``exp(log_softmax / 2)``, which stay accurate for large logits.

    Parameters
    ----------
    f
        ``[..., n, outputs]`` network outputs (logits for classification).
    f0
        ``[n, outputs]``: ``f0`` (Gaussian) or the class probabilities.
    likelihood
        The observation model.
    sigma_e
        Noise sd, required for the Gaussian likelihood.

    Returns
    -------
    torch.Tensor
        ``f.shape[:-2]``, values in ``[0, 1]``.
    """
    lik = parse_enum(Likelihood, likelihood, "likelihood")
    _tensor("f", f, 2)
    _tensor("f0", f0, 2)
    _matching(f, f0)
    if lik is Likelihood.GAUSSIAN:
        if sigma_e is None:
            raise InvalidParameterError("sigma_e", "a finite number > 0 (Gaussian)", None)
        sigma = check_positive("sigma_e", sigma_e)
        u = (f - f0).square().sum(dim=-1) / (8.0 * sigma**2)
        return (-torch.expm1(-u)).mean(dim=-1)
    if (f0 < 0).any() or (f0 > 1).any():
        raise InvalidParameterError("f0", "class probabilities in [0, 1]", "values outside")
    if lik is Likelihood.BERNOULLI:
        if f.shape[-1] != 1:
            raise InvalidParameterError("f", "one output (a logit) for bernoulli", f.shape[-1])
        root_q = torch.exp(0.5 * torch.nn.functional.logsigmoid(f))
        root_not_q = torch.exp(0.5 * torch.nn.functional.logsigmoid(-f))
        gap = (root_q - f0.sqrt()).square() + (root_not_q - (1 - f0).sqrt()).square()
        return 0.5 * gap.sum(dim=-1).mean(dim=-1)
    root_q = torch.exp(0.5 * torch.log_softmax(f, dim=-1))
    return 0.5 * (root_q - f0.sqrt()).square().sum(dim=-1).mean(dim=-1)


def exceedance(dh_sq: torch.Tensor, radius: float) -> torch.Tensor:
    """``Q(d_H > radius)``: the share of draws (axis 0) whose Hellinger distance exceeds ``radius``.

    Parameters
    ----------
    dh_sq
        ``[M, ...]`` squared Hellinger distances of ``M`` posterior draws.
    radius
        ``M eps_n`` (``> 0``).

    Returns
    -------
    torch.Tensor
        ``dh_sq.shape[1:]``, in ``[0, 1]``.
    """
    _tensor("dh_sq", dh_sq, 1)
    r = check_positive("radius", radius)
    return (dh_sq > r * r).to(dh_sq.dtype if dh_sq.is_floating_point() else torch.float64).mean(0)


def prediction_scores(
    prediction: torch.Tensor, y: torch.Tensor, likelihood: Likelihood | str
) -> dict[str, torch.Tensor]:
    """Test-set scores of a predictive mean, one per replicate.

    Gaussian: ``rmse_test = sqrt(mean_{i,k} (yhat_ik - y_ik)^2)`` (it has a floor
    at ``sigma_e``). Classification: ``accuracy_test``, the share of test points
    whose most probable class is the observed one, and ``nll_test``,
    ``-(1/n) sum_i log phat(y_i | x_i)``, with probabilities clamped to
    ``[1e-12, 1]`` so a confident mistake costs at most ``log 1e12``.

    Parameters
    ----------
    prediction
        ``[R, n, outputs]``: predictive mean of ``y`` (Gaussian) or predictive
        class probabilities (``P(y = 1)`` for Bernoulli).
    y
        ``[n, outputs]`` responses (Gaussian, Bernoulli) or ``[n]`` class indices.
    likelihood
        The observation model.
    """
    lik = parse_enum(Likelihood, likelihood, "likelihood")
    _tensor("prediction", prediction, 3)
    if lik is Likelihood.CATEGORICAL:
        if y.shape != prediction.shape[-2:-1] or y.dtype != torch.int64:
            raise InvalidParameterError(
                "y", f"int64 class indices of shape {list(prediction.shape[-2:-1])}", tuple(y.shape)
            )
        if y.min() < 0 or y.max() >= prediction.shape[-1]:
            raise InvalidParameterError(
                "y",
                f"class indices in [0, {prediction.shape[-1] - 1}]",
                (int(y.min()), int(y.max())),
            )
        picked = prediction.gather(-1, y.expand(*prediction.shape[:-1])[..., None])[..., 0]
        return {
            "accuracy_test": (prediction.argmax(dim=-1) == y).double().mean(dim=-1),
            "nll_test": -picked.clamp(1e-12, 1.0).log().double().mean(dim=-1),
        }
    if y.shape != prediction.shape[-2:]:
        raise InvalidParameterError(
            "y", f"a tensor of shape {list(prediction.shape[-2:])}", tuple(y.shape)
        )
    if lik is Likelihood.BERNOULLI:
        p1 = prediction[..., 0]
        hit = (p1 > 0.5) == (y[:, 0] > 0.5)
        p_obs = torch.where(y[:, 0] > 0.5, p1, 1 - p1)
        return {
            "accuracy_test": hit.double().mean(dim=-1),
            "nll_test": -p_obs.clamp(1e-12, 1.0).log().double().mean(dim=-1),
        }
    return {"rmse_test": (prediction - y).square().double().mean(dim=(-2, -1)).sqrt()}


# --------------------------------------------------------------------------- structure


def kept_counts(kept: Sequence[torch.Tensor]) -> torch.Tensor:
    """Kept nodes per replicate and layer: ``[R, L]`` from boolean ``[R, k_l]`` masks."""
    if len(kept) == 0:
        raise InvalidParameterError("kept", "one boolean [R, k_l] tensor per hidden layer", kept)
    return torch.stack([k.sum(dim=-1) for k in kept], dim=-1)


def median_mask_counts(masks: Sequence[torch.Tensor]) -> np.ndarray:
    """Median over sampled masks of the kept nodes per layer: ``[R, L]``.

    ``masks[l]`` is ``[draws, R, k_l]`` (0/1). For each draw and replicate the
    nodes switched on are counted; the median over the draws is taken with
    numpy's convention (mean of the two middle values for an even count).
    """
    if len(masks) == 0:
        raise InvalidParameterError("masks", "one [draws, R, k_l] tensor per hidden layer", masks)
    counts = np.stack([(m != 0).sum(dim=-1).cpu().numpy() for m in masks], axis=-1)
    return np.median(counts, axis=0)


def input_error_rates(
    kept_inputs: torch.Tensor, relevant: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Input false-negative and false-positive rates per replicate.

    With ``S`` the relevant inputs and ``K_r`` the inputs replicate ``r`` keeps:
    ``FNR = |S \\ K_r| / |S|`` and ``FPR = |K_r \\ S| / (p - |S|)``; ``FPR = 0``
    when every input is relevant (no false positive is possible).

    Parameters
    ----------
    kept_inputs
        ``[R, p]`` booleans.
    relevant
        0-based indices of the relevant inputs (non-empty, distinct, ``< p``).
    """
    if kept_inputs.dim() != 2 or kept_inputs.dtype != torch.bool:
        raise InvalidParameterError(
            "kept_inputs", "a boolean tensor [R, p]", tuple(kept_inputs.shape)
        )
    p = kept_inputs.shape[1]
    index = [int(i) for i in relevant]
    if not index or len(set(index)) != len(index) or min(index) < 0 or max(index) >= p:
        raise InvalidParameterError(
            "relevant", f"distinct indices in [0, {p - 1}], at least one", relevant
        )
    truth = torch.zeros(p, dtype=torch.bool, device=kept_inputs.device)
    truth[index] = True
    kept = kept_inputs.cpu()
    truth = truth.cpu()
    fnr = (~kept & truth).sum(dim=1).double() / truth.sum()
    irrelevant = int((~truth).sum())
    fp = (kept & ~truth).sum(dim=1).double()
    fpr = fp / irrelevant if irrelevant else torch.zeros_like(fp)
    return fnr.numpy(), fpr.numpy()


def _sizes(sizes: Sequence[Any]) -> list[np.ndarray]:
    if isinstance(sizes, (str, bytes)) or len(sizes) < 2:
        raise InvalidParameterError(
            "sizes", "(inputs, hidden widths..., outputs), at least 2", sizes
        )
    out = [np.asarray(s.cpu() if isinstance(s, torch.Tensor) else s) for s in sizes]
    for i, s in enumerate(out):
        if s.dtype.kind not in "iu" or (s < 0).any():
            raise InvalidParameterError(f"sizes[{i}]", "integers >= 0", s)
    return out


def count_parameters(sizes: Sequence[Any]) -> np.ndarray:
    """Weights and biases of a dense MLP with layer sizes ``(k_0, k_1, ..., k_{L+1})``.

    ``sum_{l=1}^{L+1} k_l (k_{l-1} + 1)``. Each size may be an integer or an
    integer array (e.g. kept counts per replicate); arrays broadcast.
    """
    k = _sizes(sizes)
    return sum(k[i] * (k[i - 1] + 1) for i in range(1, len(k)))


def count_flops(sizes: Sequence[Any]) -> np.ndarray:
    """Floating-point operations of one forward pass (one input) of a dense MLP.

    Convention (``docs/metrics.md``): an affine layer from ``k_{l-1}`` to ``k_l``
    costs ``2 k_{l-1} k_l`` (``k_{l-1}`` multiplications and ``k_{l-1}``
    additions, the bias included, per output), and each hidden activation one
    operation; the output link (identity, sigmoid, softmax) is not counted::

        FLOPs = sum_{l=1}^{L+1} 2 k_{l-1} k_l + sum_{l=1}^{L} k_l

    For a compacted network, ``k_0`` is the number of kept inputs and ``k_l``
    the kept nodes. Sizes may be integers or integer arrays (broadcast).
    """
    k = _sizes(sizes)
    affine = sum(2 * k[i - 1] * k[i] for i in range(1, len(k)))
    return affine + sum(k[1:-1])


def count_kept_weights(
    inputs: torch.Tensor,
    nodes: Sequence[torch.Tensor],
    outputs: int,
    edges: Sequence[torch.Tensor | None] | None = None,
) -> np.ndarray:
    """Weights and biases of each replicate's compacted network: ``[R]``.

    Hidden layer ``l`` keeps, for each kept node, its kept incoming weights from
    kept nodes of layer ``l - 1`` (kept inputs for ``l = 1``) and its bias; the
    output layer keeps its weights from the kept nodes of layer ``L`` and its
    biases. Without ``edges`` (node and dense layers) every weight of a kept
    node's group is kept, and the count is
    ``sum_l s_l (s_{l-1} + 1) + outputs (s_L + 1)`` with ``s_0`` the kept inputs,
    i.e. :func:`count_parameters` of the kept sizes.

    Parameters
    ----------
    inputs
        ``[R, p]`` kept inputs.
    nodes
        ``[R, k_l]`` kept nodes per hidden layer.
    outputs
        Network outputs.
    edges
        Per hidden layer, ``[R, k_l, k_{l-1}]`` kept weights of an edge-sparse
        layer, or ``None`` for a layer that keeps whole groups.
    """
    if len(nodes) == 0:
        raise InvalidParameterError("nodes", "one boolean [R, k_l] tensor per hidden layer", nodes)
    edges = [None] * len(nodes) if edges is None else list(edges)
    if len(edges) != len(nodes):
        raise InvalidParameterError(
            "edges", f"one entry per hidden layer ({len(nodes)})", len(edges)
        )
    sources = [inputs, *nodes[:-1]]
    total = torch.zeros(inputs.shape[0], dtype=torch.int64, device=inputs.device)
    for layer, (src, dst, kept_edges) in enumerate(zip(sources, nodes, edges, strict=True)):
        block = dst.unsqueeze(-1) & src.unsqueeze(-2)
        if kept_edges is not None:
            if kept_edges.shape != block.shape:
                raise InvalidParameterError(
                    f"edges[{layer}]",
                    f"a boolean tensor of shape {tuple(block.shape)}",
                    tuple(kept_edges.shape),
                )
            block = block & kept_edges
        total += block.sum(dim=(-2, -1)) + dst.sum(dim=-1)
    total += outputs * (nodes[-1].sum(dim=-1) + 1)
    return total.cpu().numpy()


# --------------------------------------------------------------------------- cost


def cost_metrics(report: Any) -> dict[str, np.ndarray]:
    """The cost of a fit, one value per replicate, from :class:`simulations.train.FitReport`.

    The replicates are trained as one batched computation, so wall time
    (``wall_s``), throughput (``replicate_steps_per_s = R * steps / wall_s``) and
    peak memory (``peak_memory_bytes``: CUDA allocator peak, or the process's
    peak resident set size on CPU) are shared: each is repeated ``R`` times, as
    are the ``steps`` completed.
    """
    for name in ("replicates", "steps", "wall_s", "replicate_steps_per_s", "peak_memory_bytes"):
        if not hasattr(report, name):
            raise InvalidParameterError("report", "a FitReport (simulations.train.fit)", report)
    r = int(report.replicates)
    return {
        "steps": np.full(r, int(report.steps)),
        "wall_s": np.full(r, float(report.wall_s)),
        "replicate_steps_per_s": np.full(r, float(report.replicate_steps_per_s)),
        "peak_memory_bytes": np.full(r, int(report.peak_memory_bytes)),
    }


# --------------------------------------------------------------------------- evaluate


@dataclass(frozen=True, kw_only=True, eq=False)
class Evaluation(Mapping[str, np.ndarray]):
    """The metrics of :func:`evaluate`: one array per metric, the replicate axis first.

    Each array is ``[R]``, or ``[R, L]`` for per-layer counts (``kept_nodes``,
    ``kept_nodes_median``, ``true_nodes``). A metric the design does not have is ``None``:
    the contraction metrics and exceedances without a noise-free truth ``f0``, the test
    scores of the other likelihoods, the truth's counts and input rates without a known
    truth. ``docs/metrics.md`` defines each.

    As a mapping it holds the metrics the design has, under their column names in the
    results table (``dH_exceeds_<M>eps`` for ``exceedance[M]``); :meth:`row` gives one
    replicate's values.
    """

    l2_risk_mean: np.ndarray | None = None
    l2_risk_of_mean: np.ndarray | None = None
    l2_risk_mean_network: np.ndarray | None = None
    dH2_mean: np.ndarray | None = None
    dH2_mean_network: np.ndarray | None = None
    exceedance: dict[int, np.ndarray] = field(default_factory=dict)
    """``Q(d_H > M eps_n)`` per multiple ``M`` of :data:`EXCEEDANCE_MULTIPLES` (NaN without
    a theory radius; empty without ``f0``)."""
    rmse_test: np.ndarray | None = None
    accuracy_test: np.ndarray | None = None
    nll_test: np.ndarray | None = None
    kept_nodes: np.ndarray
    kept_nodes_median: np.ndarray
    kept_inputs: np.ndarray
    node_density: np.ndarray
    kept_weights: np.ndarray
    weight_density: np.ndarray
    flops: np.ndarray
    flops_dense: np.ndarray
    input_fnr: np.ndarray | None = None
    input_fpr: np.ndarray | None = None
    true_nodes: np.ndarray | None = None
    flops_true: np.ndarray | None = None

    def _present(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "exceedance":
                out.update({f"dH_exceeds_{m}eps": v for m, v in value.items()})
            elif value is not None:
                out[f.name] = value
        return out

    def __getitem__(self, key: str) -> np.ndarray:
        return self._present()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._present())

    def __len__(self) -> int:
        return len(self._present())

    def row(self, replicate: int, always: Sequence[str] = ()) -> dict[str, object]:
        """Replicate ``replicate``'s metrics as plain Python values (lists for per-layer counts).

        Metrics named in ``always`` that the design does not have are ``None`` (per-layer
        counts) or NaN, so that every row has them.
        """
        row: dict[str, object] = {}
        for f in fields(self):
            if f.name in always and getattr(self, f.name) is None:
                row[f.name] = None if f.name == "true_nodes" else math.nan
        for key, values in self.items():
            value = values[replicate]
            row[key] = value.tolist() if np.ndim(value) else value.item()
        return row


def evaluate(
    model: Any,
    data: SimulationData,
    *,
    eps_n: float | None,
    draws: int = 200,
    seed: int,
    sigma_e: float | None = None,
    chunk: int = 25,
) -> Evaluation:
    """All metrics of a fitted :class:`~simulations.model.BayesianMLP` on a design's test set.

    Uses the model API of ``docs/architecture.md``: ``sample_functions``,
    ``mean_function``, ``sample_masks``, ``kept``, ``inclusion_probs``.
    Posterior draws are requested ``chunk`` at a time (memory
    ``chunk x R x n_test x outputs``); replicate ``r``'s draws use one generator
    seeded from stream ``"evaluate"``, key ``r``, of ``seed``, first for the
    ``draws`` functions and then for the ``draws`` masks. The engine draws its
    noise draw by draw, so the numbers do not depend on ``chunk`` (tested).

    Parameters
    ----------
    model
        A fitted model with ``R = data.replicates`` replicates.
    data
        The design draw the model was fitted to.
    eps_n
        Contraction radius for ``Q(d_H > M eps_n)``, ``M`` in
        :data:`EXCEEDANCE_MULTIPLES` (``ssbnn_theory``, student architecture);
        ``None`` (no theory radius, e.g. a truth outside the class) gives NaN
        exceedances.
    draws
        ``M``, posterior draws per replicate.
    seed
        Seed of the posterior draws.
    sigma_e
        Noise sd of the Gaussian Hellinger distance; default ``data.noise_sd``
        (the true sd).
    chunk
        Draws per call of ``sample_functions``.

    Returns
    -------
    Evaluation
        Each metric has the replicate axis first: ``[R]``, or ``[R, L]`` for
        per-layer counts. Its keys as a mapping (those that apply; ``docs/metrics.md``):
        ``l2_risk_mean``, ``l2_risk_of_mean``, ``l2_risk_mean_network``,
        ``dH2_mean``, ``dH2_mean_network``, ``dH_exceeds_{M}eps``, ``rmse_test``
        or ``accuracy_test`` and ``nll_test``, ``kept_nodes``,
        ``kept_nodes_median``, ``true_nodes``, ``kept_inputs``, ``input_fnr``,
        ``input_fpr``, ``node_density``, ``weight_density``, ``kept_weights``,
        ``flops``, ``flops_dense``, ``flops_true``.
    """
    if not isinstance(data, SimulationData):
        raise InvalidParameterError("data", "a SimulationData (simulations.designs.generate)", data)
    eps = None if eps_n is None else check_positive("eps_n", eps_n)
    for name, value in (("draws", draws), ("chunk", chunk), ("seed", seed)):
        check_integer(name, value, lower=0 if name == "seed" else 1)
    lik = data.likelihood
    sigma = None
    if lik is Likelihood.GAUSSIAN and data.f_test is not None:
        sigma = check_positive("sigma_e", data.noise_sd if sigma_e is None else sigma_e)
    replicates = data.replicates
    if model.replicates != replicates:
        raise InvalidParameterError(
            "model", f"a model with R = data.replicates = {replicates} replicates", model.replicates
        )
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    x = data.x_test.to(device=device, dtype=dtype)
    f0 = None if data.f_test is None else data.f_test.to(device=device, dtype=torch.float64)
    generators = []
    for r in range(replicates):
        gen = torch.Generator(device=device)
        gen.manual_seed(stream_seed(seed, "evaluate", r))
        generators.append(gen)

    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        total = None
        risk, dh2 = [], []
        for start in range(0, draws, chunk):
            f = model.sample_functions(x, min(chunk, draws - start), generators).double()
            theta = mean_parameter(f, lik)
            total = theta.sum(0) if total is None else total + theta.sum(0)
            if f0 is not None:
                risk.append(squared_l2(theta, f0))
                dh2.append(hellinger_sq(f, f0, lik, sigma))
        posterior_mean = total / draws
        mean_net = model.mean_function(x).double()
        if f0 is not None:
            dh2_draws = torch.cat(dh2)
            out["l2_risk_mean"] = torch.cat(risk).mean(0)
            out["l2_risk_of_mean"] = squared_l2(posterior_mean, f0)
            out["l2_risk_mean_network"] = squared_l2(mean_parameter(mean_net, lik), f0)
            out["dH2_mean"] = dh2_draws.mean(0)
            out["dH2_mean_network"] = hellinger_sq(mean_net, f0, lik, sigma)
            for multiple in EXCEEDANCE_MULTIPLES:
                out[f"dH_exceeds_{multiple}eps"] = (
                    np.full(replicates, np.nan)
                    if eps is None
                    else exceedance(dh2_draws, multiple * eps)
                )
        y = data.y_test.to(device)
        out.update(
            prediction_scores(posterior_mean, y if y.dtype == torch.int64 else y.double(), lik)
        )

        kept = model.kept()
        nodes = kept_counts(kept.nodes).cpu()
        masks = model.sample_masks(draws, generators)
        out["kept_nodes"] = nodes.numpy()
        out["kept_nodes_median"] = median_mask_counts(masks)
        inputs = kept.inputs.sum(dim=1).cpu().numpy()
        out["kept_inputs"] = inputs
        hidden = [int(k.shape[-1]) for k in kept.nodes]
        out["node_density"] = nodes.sum(dim=1).double().numpy() / sum(hidden)
        kept_sizes = [inputs, *(nodes[:, i].numpy() for i in range(len(hidden))), data.outputs]
        full_sizes = [data.p, *hidden, data.outputs]
        edges = [pi > 0.5 if pi.dim() == 3 else None for pi in model.inclusion_probs()]
        out["kept_weights"] = count_kept_weights(kept.inputs, kept.nodes, data.outputs, edges)
        out["weight_density"] = out["kept_weights"] / count_parameters(full_sizes)
        out["flops"] = np.asarray(count_flops(kept_sizes))
        out["flops_dense"] = np.full(replicates, count_flops(full_sizes))
        truth = data.truth
        if truth is not None:
            fnr, fpr = input_error_rates(kept.inputs, truth.relevant_inputs)
            out["input_fnr"], out["input_fpr"] = fnr, fpr
            if truth.active_nodes is not None:
                true_sizes = [len(truth.relevant_inputs), *truth.active_nodes, data.outputs]
                out["true_nodes"] = np.tile(np.asarray(truth.active_nodes), (replicates, 1))
                out["flops_true"] = np.full(replicates, count_flops(true_sizes))
    arrays = {
        k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
        for k, v in out.items()
    }
    exceeds = {m: arrays.pop(f"dH_exceeds_{m}eps") for m in EXCEEDANCE_MULTIPLES if f0 is not None}
    return Evaluation(exceedance=exceeds, **arrays)
