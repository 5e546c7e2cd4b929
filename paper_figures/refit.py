"""Refit a study cell from its seeds: inclusion-probability trajectories and compact latency.

A stored study keeps each cell's metrics, not its fitted model. Two figures need the model:
the inclusion probabilities *during* training (notebook 03) and the inference latency of the
compacted network (notebook 04). :func:`refit` rebuilds a cell exactly as
:func:`simulations.study.run_cell` trains it, through the public API and with the cell's own
seeds: ``cell.generate_data()``, ``cell.build_model()`` (the calls ``run_cell`` makes),
``fit(model, x, y, cell.train_config)``. Training is deterministic on the CPU, so with the
same engine the refit is the stored fit, number for number; :func:`check_stored` checks the
part the figures depend on (kept nodes and kept inputs of every replicate equal the stored
ones), and the figures refuse a refit that differs.

Recording uses ``fit``'s ``progress(step, total)`` hook: every ``record_every`` steps the
closure stores ``model.inclusion_probs()``. For a node (and dense) layer that is
``P(gamma_lj = 1)`` per node; for an edge layer it is the largest inclusion probability of
the node's incoming weights, which exceeds 1/2 exactly when the node is kept
(``BayesianMLP.kept``), so the 1/2 line reads the same for every family.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "LATENCY_FILE",
    "Refit",
    "Trajectory",
    "check_stored",
    "latency_table",
    "node_probs",
    "refit",
]

LATENCY_FILE = "latency.parquet"
"""File in a study's output folder holding the latencies of its compacted networks."""


@dataclass(frozen=True)
class Trajectory:
    """Node inclusion probabilities during training.

    Attributes
    ----------
    steps
        Recorded steps ``[T]`` (0 is the initial state).
    nodes
        Per hidden layer, ``[T, R, k_l]`` node inclusion probabilities (:func:`node_probs`).
    inputs
        ``[T, R, p]`` inclusion probabilities of the inputs, or ``None`` without an input spike.
    """

    steps: np.ndarray
    nodes: tuple[np.ndarray, ...]
    inputs: np.ndarray | None


@dataclass(frozen=True)
class Refit:
    """A cell trained again from its seeds.

    Attributes
    ----------
    cell
        The :class:`simulations.study.Cell`.
    model
        The fitted :class:`simulations.model.BayesianMLP`.
    data
        Its :class:`simulations.designs.SimulationData`.
    report
        The :class:`simulations.train.FitReport`.
    trajectory
        The recorded :class:`Trajectory`, or ``None`` when not recorded.
    """

    cell: Any
    model: Any
    data: Any
    report: Any
    trajectory: Trajectory | None


def node_probs(model: Any) -> list[np.ndarray]:
    """Per hidden layer, ``[R, k_l]`` node inclusion probabilities (module docstring).

    Node and dense layers: ``inclusion_probs()`` as is; edge layers (``[R, k_l, k_{l-1}]``):
    the maximum over the incoming weights.
    """
    import torch

    out = []
    with torch.no_grad():
        for probs in model.inclusion_probs():
            values = probs.amax(dim=-1) if probs.dim() == 3 else probs
            out.append(values.detach().cpu().double().numpy())
    return out


def refit(cell: Any, *, record_every: int | None = None, device: str = "cpu") -> Refit:
    """Train ``cell`` again with its seeds; record inclusion probabilities every ``record_every``.

    Parameters
    ----------
    cell
        A :class:`simulations.study.Cell` (``simulations.study.expand(spec)``).
    record_every
        Record the node (and input) inclusion probabilities at step 0 and every this many
        steps, and at the last step; ``None`` records nothing.
    device
        Torch device.

    Raises
    ------
    InvalidParameterError
        ``record_every`` is not a positive integer.
    """
    import torch

    from simulations.train import fit

    if record_every is not None and (
        isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1
    ):
        raise InvalidParameterError("record_every", "a positive integer or None", record_every)
    data = cell.generate_data()
    model = cell.build_model(device)
    steps: list[int] = []
    nodes: list[list[np.ndarray]] = []
    inputs: list[np.ndarray] = []

    def record(step: int) -> None:
        steps.append(step)
        nodes.append(node_probs(model))
        probs = model.input_inclusion_probs()
        if probs is not None:
            with torch.no_grad():
                inputs.append(probs.detach().cpu().double().numpy())

    def progress(step: int, total: int) -> None:
        if step % record_every == 0 or step == total:
            record(step)

    if record_every is not None:
        record(0)
    report = fit(
        model,
        data.x_train,
        data.y_train,
        cell.train_config,
        progress=progress if record_every is not None else None,
    )
    trajectory = None
    if record_every is not None:
        trajectory = Trajectory(
            steps=np.asarray(steps),
            nodes=tuple(np.stack(layer) for layer in zip(*nodes, strict=True)),
            inputs=np.stack(inputs) if inputs else None,
        )
    return Refit(cell, model, data, report, trajectory)


def check_stored(fitted: Refit, table: pd.DataFrame) -> None:
    """Check that a refit has the stored fit's structure: kept nodes per layer, kept inputs.

    ``table`` is the study's results table (the rows of ``fitted.cell`` are picked by
    ``cell_id``). The compacted network, and so its latency, is a function of this structure
    alone. Float rounding may differ from the stored run when the engine changed in between
    (a fused optimiser, another order of the same sums); a different structure means the
    stored results were made by a different fit.

    Raises
    ------
    InvalidParameterError
        ``refit``: the cell is not finished in ``table``, or a replicate keeps other nodes or
        another number of inputs.
    """
    cell = fitted.cell
    rows = table[table["cell_id"] == cell.cell_id].sort_values("replicate")
    if len(rows) != cell.spec.replicates:
        raise InvalidParameterError(
            "refit", f"a cell of the stored study ({cell.label} is not finished)", len(rows)
        )
    kept = fitted.model.kept()
    nodes = [k.sum(dim=-1).cpu().numpy() for k in kept.nodes]
    inputs = kept.inputs.sum(dim=-1).cpu().numpy()
    for r, (expected, expected_inputs) in enumerate(
        zip(rows["kept_nodes"], rows["kept_inputs"], strict=True)
    ):
        got = ([int(layer[r]) for layer in nodes], int(inputs[r]))
        want = ([int(v) for v in expected], int(expected_inputs))
        if got != want:
            raise InvalidParameterError(
                "refit",
                f"the stored fit of {cell.label} replicate {r} (kept nodes {want[0]}, kept "
                f"inputs {want[1]}); was the study run with another engine version? (rerun "
                "it into a new folder)",
                f"kept nodes {got[0]}, kept inputs {got[1]}",
            )


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def latency_table(
    results: Any,
    *,
    batch: int = 1000,
    min_run_time: float = 0.2,
    threads: int = 1,
    device: str = "cpu",
) -> pd.DataFrame:
    """Inference latency of every replicate's compacted network, for every finished cell.

    Each finished cell of ``results`` (a :class:`paper_figures.results.StudyResults`) not yet
    in ``<folder>/latency.parquet`` is refitted (:func:`refit`), checked against the stored
    kept structure of each replicate (:func:`check_stored`), and timed with
    :func:`simulations.compress.inference_latency` (median of ``torch.utils.benchmark``
    blocks of at least ``min_run_time`` s, on ``batch`` rows, ``threads`` torch threads)
    against the dense student with the same weights. The file is extended and rewritten
    atomically after each cell, so an interrupted run resumes; timings made with another
    ``batch`` or ``threads`` are made again.

    Returns
    -------
    pandas.DataFrame
        One row per cell and replicate: ``cell_id``, ``replicate``, ``prior``, ``n``,
        ``compact_ms``, ``dense_ms``, ``speedup``, ``compact_widths``, ``batch``, ``threads``.

    Raises
    ------
    InvalidParameterError
        ``refit``: a refitted replicate keeps another structure than the stored one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from simulations._io import atomic_write
    from simulations.compress import inference_latency
    from simulations.study import expand

    path = Path(results.folder) / LATENCY_FILE
    table = _read(path)
    if not table.empty:  # timings made with another batch or thread count are made again
        table = table[(table["batch"] == batch) & (table["threads"] == threads)]
    stored = results.table
    have = set(table["cell_id"]) if not table.empty else set()
    done = set(stored["cell_id"])
    for cell in expand(results.spec):
        if cell.cell_id in have or cell.cell_id not in done:
            continue
        fitted = refit(cell, device=device)
        check_stored(fitted, stored)
        new = []
        for r in range(cell.spec.replicates):
            timing = inference_latency(
                fitted.model, r, batch=batch, min_run_time=min_run_time, threads=threads
            )
            new.append(
                {
                    "cell_id": cell.cell_id,
                    "replicate": r,
                    "prior": cell.prior.label,
                    "n": cell.n,
                    "compact_ms": 1e3 * timing.compact_s,
                    "dense_ms": 1e3 * timing.dense_s,
                    "speedup": timing.speedup,
                    "compact_widths": list(timing.compact_widths),
                    "batch": timing.batch,
                    "threads": timing.threads,
                }
            )
        table = pd.concat([table, pd.DataFrame(new)], ignore_index=True)
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        atomic_write(path, lambda handle, arrow=arrow: pq.write_table(arrow, handle))
    return table[table["cell_id"].isin(done)].reset_index(drop=True)
