"""Training: ``TrainConfig`` and ``fit``, the negative ELBO per observation minimised with Adam.

For replicate ``r`` and a minibatch ``S`` of size ``B`` out of ``n`` observations,

    loss_r = ( (n / B) sum_{i in S} -log p(y_i | f_theta(x_i)) + beta_t KL(q_r || prior) ) / n

with the KL weight ``beta_t`` rising linearly to 1 over the warm-up steps
(``docs/elbo.md``). The replicates' losses are summed before the backward pass,
so replicate ``r``'s gradient is that of ``loss_r`` alone. Gradient clipping
rescales each replicate's gradient by its own norm; Adam acts elementwise. All
randomness of replicate ``r`` (initial values, minibatches, weight and mask
noise) comes from its own generators, so a replicate's numbers do not depend on the
other replicates, and a batched run over ``R`` replicates equals ``R`` separate runs
with the same seeds up to the summation order of batched matrix products
(``docs/engine.md``, "Replicates and seeds").

Implementation: all parameters of the model live in one ``[R, P]`` buffer (each
parameter a view into it) with one ``[R, P]`` gradient buffer, so zeroing,
per-replicate clipping, the finiteness check and the Adam step are each a
single operation whatever the number of parameter tensors (``docs/engine.md``).
"""

from __future__ import annotations

import math
import os
import resource
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch

from simulations.enums import Likelihood
from simulations.layers import replicate_generators
from simulations.model import BayesianMLP
from simulations.relaxed import TemperatureSchedule
from simulations.rng import stream_seed
from ssbnn_theory.enums import parse_enum
from ssbnn_theory.errors import InvalidParameterError

__all__ = ["FitReport", "NonFiniteError", "Optimizer", "TrainConfig", "fit"]

_CHECKPOINT_FORMAT = "ssbnn-fit-checkpoint/1"
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


def _is_int(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`fit`.

    Parameters
    ----------
    steps
        Optimisation steps with relaxed indicators.
    batch_size
        Minibatch size ``B`` (at most ``n``); ``None`` for full-batch training.
        Each replicate draws its own minibatches: a fresh random permutation of
        its ``n`` observations every epoch, ``floor(n / B)`` minibatches per epoch.
    lr
        Learning rate (default 1e-3).
    optimizer
        :class:`Optimizer` (default Adam).
    betas
        Adam's ``(beta1, beta2)``.
    grad_clip
        Maximum gradient norm per replicate (``None``: no clipping).
    kl_warmup_steps
        The KL weight rises linearly, ``min(1, (t + 1) / kl_warmup_steps)`` at step ``t``.
    finetune_steps
        Extra steps after ``steps`` with the indicators frozen at the kept
        structure (inclusion probability > 1/2): only the slab and scale factors move.
    temperature
        A :class:`simulations.relaxed.TemperatureSchedule` for the Concrete
        temperature; ``None`` keeps the model's ``temperature``.
    checkpoint_every
        With a checkpoint path, write a checkpoint every this many steps (and at the end).
    log_every
        Record the per-replicate loss every this many steps (and at the last step).
    """

    steps: int = 2000
    batch_size: int | None = None
    lr: float = 1e-3
    optimizer: Optimizer | str = Optimizer.ADAM
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = None
    kl_warmup_steps: int = 0
    finetune_steps: int = 0
    temperature: TemperatureSchedule | None = None
    checkpoint_every: int = 500
    log_every: int = 50

    def __post_init__(self) -> None:
        for name, low in (
            ("steps", 1), ("kl_warmup_steps", 0), ("finetune_steps", 0),
            ("checkpoint_every", 1), ("log_every", 1),
        ):  # fmt: skip
            if not _is_int(getattr(self, name), low):
                raise InvalidParameterError(name, f"an integer >= {low}", getattr(self, name))
        if self.batch_size is not None and not _is_int(self.batch_size, 1):
            raise InvalidParameterError("batch_size", "an integer >= 1 or None", self.batch_size)
        if not isinstance(self.lr, int | float) or not (math.isfinite(self.lr) and self.lr > 0):
            raise InvalidParameterError("lr", "a finite number > 0", self.lr)
        object.__setattr__(self, "optimizer", parse_enum(Optimizer, self.optimizer, "optimizer"))
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
        """``steps + finetune_steps``."""
        return self.steps + self.finetune_steps

    def kl_weight(self, step: int) -> float:
        """KL weight at step ``step`` (0-based): warm-up in the relaxed phase, then 1."""
        if self.kl_warmup_steps == 0 or step >= self.kl_warmup_steps:
            return 1.0
        return (step + 1) / self.kl_warmup_steps

    def record(self) -> dict:
        """The options as plain values (checkpoints compare them on resume)."""
        return _plain(asdict(self))


def _plain(value):
    """Dataclass records with enums and tuples turned into plain ``str`` and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return str(value.value)
    return value


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
        logged steps, ``[logged, R]``.
    logged_steps
        The steps (1-based) of ``loss_history``.
    final_nll
        Negative log-likelihood per observation of the last minibatch, ``[R]``.
    final_kl
        ``KL(q || prior) / n`` after the last step, ``[R]``.
    resumed_from
        The checkpoint step this call started from (0 for a fresh run).
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


class _FlatParameters:
    """All parameters of ``module`` as views into one ``[R, P]`` buffer, with one gradient buffer.

    Each parameter's ``.data`` becomes a view of ``data[:, a:b]`` and its ``.grad``
    a view of ``grad[:, a:b]``; autograd accumulates into those views in place.
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
        self.parameter = torch.nn.Parameter(self.data)
        self.parameter.grad = self.grad

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


class _Minibatches:
    """Per-replicate minibatches: a fresh permutation of ``n`` each epoch from replicate ``r``'s
    own generator (stream ``"minibatch"``); ``floor(n / B)`` minibatches per epoch."""

    def __init__(self, model: BayesianMLP, x: torch.Tensor, y: torch.Tensor, batch: int) -> None:
        reps, n = x.shape[:2]
        self.x, self.y, self.n, self.batch = x, y, n, batch
        self.full = batch == n
        self.per_epoch = n // batch
        seeds = [stream_seed(s, "minibatch") for s in model.replicate_seeds]
        self.generators = replicate_generators(seeds, model.device)
        self.perm: torch.Tensor | None = None
        self.offsets = (torch.arange(reps, device=model.device) * n).unsqueeze(1)
        # Minibatches are gathered into the same buffers every step: a fresh allocation
        # of R * B * p values would be page-faulted in anew each time once it is large.
        if not self.full:
            self.x_batch = x.new_empty((reps, batch, x.shape[2]))
            self.y_batch = y.new_empty((reps, batch, *y.shape[2:]))

    def gather(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``[R, B, p]`` and targets of step ``step`` (the data themselves when full)."""
        idx = self.indices(step)
        if idx is None:
            return self.x, self.y
        reps, n = self.x.shape[:2]
        torch.index_select(self.x.view(reps * n, -1), 0, idx, out=self.x_batch.view(len(idx), -1))
        flat_y = self.y.view(reps * n, *self.y.shape[2:])
        torch.index_select(flat_y, 0, idx, out=self.y_batch.view(len(idx), *self.y.shape[2:]))
        return self.x_batch, self.y_batch

    def indices(self, step: int) -> torch.Tensor | None:
        """Flat row indices ``[R * B]`` of step ``step`` (``None``: the full batch)."""
        if self.full:
            return None
        k = step % self.per_epoch
        if k == 0 or self.perm is None:
            self.perm = torch.stack(
                [
                    torch.randperm(self.n, generator=g, device=self.offsets.device)
                    for g in self.generators
                ]
            )
        rows = self.perm[:, k * self.batch : (k + 1) * self.batch]
        return (rows + self.offsets).reshape(-1)


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


def _write_atomic(path: Path, payload: dict) -> None:
    """Write ``payload`` with ``torch.save`` to a temporary file beside ``path``, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
        ``config.checkpoint_every`` steps and at the end, atomically.
    progress
        Called as ``progress(step, total)`` after every step.

    Returns
    -------
    FitReport

    Raises
    ------
    InvalidParameterError
        Bad data (shape, NaN or inf, targets outside the likelihood's support),
        bad options, or a checkpoint that does not match.
    NonFiniteError
        A non-finite loss, gradient or parameter; names the replicate and the step.
    """
    if not isinstance(model, BayesianMLP):
        raise InvalidParameterError("model", "a BayesianMLP", type(model).__name__)
    if not isinstance(config, TrainConfig):
        raise InvalidParameterError("config", "a TrainConfig", type(config).__name__)
    x, y, n = _validate_data(model, x, y)
    batch = n if config.batch_size is None else config.batch_size
    if batch > n:
        raise InvalidParameterError("batch_size", f"an integer in [1, n] = [1, {n}]", batch)
    reps, device = model.replicates, model.device
    flat = _FlatParameters(model, reps)
    if config.optimizer is Optimizer.ADAM:
        opt = torch.optim.Adam([flat.parameter], lr=config.lr, betas=config.betas, fused=True)
    else:
        opt = torch.optim.SGD([flat.parameter], lr=config.lr)
    batches = _Minibatches(model, x, y, batch)
    spike_cols = flat.columns(("theta",))
    path = None if checkpoint is None else Path(checkpoint)
    history: list[torch.Tensor] = []
    logged: list[int] = []
    start, wall_before, last_nll = 0, 0.0, None
    fingerprint = _fingerprint(x, y) if path is not None else None
    if path is not None and path.exists():
        state = _load_checkpoint(path, model, config, fingerprint)
        start, wall_before = state["step"], state["wall_s"]
        flat.data.copy_(state["flat"].to(device))
        opt.load_state_dict(state["optimizer"])
        for g, s in zip(model.generators, state["noise_generators"], strict=True):
            g.set_state(s)
        for g, s in zip(batches.generators, state["batch_generators"], strict=True):
            g.set_state(s)
        batches.perm = None if state["perm"] is None else state["perm"].to(device)
        model.temperature = state["temperature"]
        history = [h.to(device) for h in state["loss_history"]]
        logged = list(state["logged_steps"])
        last_nll = state["last_nll"]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    frozen_values = None
    if start > config.steps:  # resumed inside the fine-tuning phase (the loop freezes at steps)
        model.freeze_masks()
        frozen_values = flat.data[:, spike_cols].clone()
    else:  # a model fine-tuned by an earlier fit starts with relaxed indicators again
        model.unfreeze_masks()
    total = config.total_steps
    nll = kl = None
    t0 = time.perf_counter()
    saved_filters = list(warnings.filters)

    def save(step_done: int) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        _write_atomic(
            path,
            {
                "format": _CHECKPOINT_FORMAT,
                "train_config": config.record(),
                "replicate_seeds": list(model.replicate_seeds),
                "fingerprint": fingerprint,
                "step": step_done,
                "wall_s": wall_before + time.perf_counter() - t0,
                "flat": flat.data.detach().cpu(),
                "optimizer": opt.state_dict(),
                "noise_generators": [g.get_state() for g in model.generators],
                "batch_generators": [g.get_state() for g in batches.generators],
                "perm": None if batches.perm is None else batches.perm.cpu(),
                "model_config": _plain(asdict(model.config)),
                "temperature": model.temperature,
                "last_nll": None if nll is None else nll.detach().cpu(),
                "loss_history": [h.cpu() for h in history],
                "logged_steps": list(logged),
            },
        )

    try:
        warnings.filterwarnings("ignore", message=_LAYOUT_WARNING)
        for step in range(start, total):
            if step == config.steps:
                model.freeze_masks()
                frozen_values = flat.data[:, spike_cols].clone()
            if config.temperature is not None:
                model.temperature = config.temperature(step)
            xb, yb = batches.gather(step)
            f, kl = model.forward_kl(xb)
            nll = model.likelihood.nll(f, yb)
            weight = config.kl_weight(step) if step < config.steps else 1.0
            loss = (nll * (n / batch) + weight * kl) / n
            loss.sum().backward()
            gnorm = torch.linalg.vector_norm(flat.grad, dim=1)
            bad = ~(torch.isfinite(loss) & torch.isfinite(gnorm))
            if bool(bad.any()):
                what = "loss" if not bool(torch.isfinite(loss).all()) else "gradient"
                raise NonFiniteError(what, int(bad.nonzero()[0, 0]), step + 1)
            if config.grad_clip is not None:
                coef = (config.grad_clip / (gnorm + 1e-12)).clamp_(max=1.0)
                flat.grad.mul_(coef.unsqueeze(1))
            opt.step()
            flat.grad.zero_()
            if frozen_values is not None:
                flat.data[:, spike_cols] = frozen_values
            done = step + 1
            if done % config.log_every == 0 or done == total:
                history.append(loss.detach())
                logged.append(done)
                finite = torch.isfinite(flat.data).all(dim=1)
                if not bool(finite.all()):
                    raise NonFiniteError("parameters", int((~finite).nonzero()[0, 0]), done)
            if path is not None and (done % config.checkpoint_every == 0 or done == total):
                save(done)
            if progress is not None:
                progress(done, total)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t0
    finally:
        warnings.filters[:] = saved_filters
        flat.release_grads()
    if nll is None:  # resumed from a finished run: its last minibatch
        nll = last_nll
    with torch.no_grad():
        final_kl = (model.kl() / n).cpu().numpy()
    wall = wall_before + elapsed
    rate = reps * total / wall if wall > 0 else float("nan")
    return FitReport(
        steps=total,
        replicates=reps,
        wall_s=wall,
        replicate_steps_per_s=rate,
        peak_memory_bytes=_peak_memory(device),
        loss_history=torch.stack(history).cpu().numpy() if history else np.zeros((0, reps)),
        logged_steps=np.asarray(logged, dtype=np.int64),
        final_nll=(nll.detach() / batch).cpu().numpy(),
        final_kl=final_kl,
        resumed_from=start,
        device=str(device),
    )


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
    if state["model_config"] != _plain(asdict(model.config)):
        raise InvalidParameterError(
            "checkpoint", "written for a model with the same ModelConfig", state["model_config"]
        )
    if state["fingerprint"] != fingerprint:
        raise InvalidParameterError("checkpoint", "written for the same data", str(path))
    return state
