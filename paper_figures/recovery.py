"""Node recovery (notebook 03): kept nodes against the truth, training trajectories, inputs.

* :func:`nodes_figure`: kept nodes per hidden layer against ``n`` (inclusion probability
  > 1/2, :func:`simulations.report.recovery_long`), every replicate as a point, the
  replicate mean as a line, the truth's active nodes dashed, one colour per prior;
* :func:`trajectories_figure`: node inclusion probabilities during training
  (:func:`paper_figures.refit.refit` with a recorder), one column per prior: one row per
  hidden layer (each node of replicate 0 a line) and a row with the number of nodes above
  1/2 per layer (mean and range over replicates) against the truth;
* :func:`inputs_figure`: input false-negative and false-positive rates against ``n``;
* :func:`recovery_summary`: kept nodes (mean ± sd), share exactly right, input FNR/FPR.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from paper_figures.plotting import figure_stem, save, student_label, style_of
from paper_figures.results import prior_families, prior_name

__all__ = [
    "inputs_figure",
    "nodes_figure",
    "recovery_summary",
    "trajectories",
    "trajectories_figure",
]


def _priors(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["prior"].astype(str)))


def recovery_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per prior and ``n``: kept nodes per layer (mean ± sd, truth), exact share, input rates."""
    from simulations.report import recovery_table

    recovery = recovery_table(table)
    families = prior_families(table)
    rows = []
    for (prior, n), part in recovery.groupby(["prior", "n"], sort=False, observed=True):
        entry: dict[str, Any] = {"prior": prior_name(families[str(prior)]), "n": int(n)}
        for _, r in part.iterrows():
            true = "" if not np.isfinite(r["true"]) else f" (true {int(r['true'])})"
            sd = 0.0 if not np.isfinite(r["kept_sd"]) else r["kept_sd"]
            entry[f"layer {int(r['layer'])} kept"] = f"{r['kept_mean']:.1f} ± {sd:.1f}{true}"
        entry["share exact, all layers"] = float(part["all_exact"].iloc[0])
        cell = table[(table["prior"].astype(str) == str(prior)) & (table["n"] == n)]
        entry["input FNR"] = float(cell["input_fnr"].mean())
        entry["input FPR"] = float(cell["input_fpr"].mean())
        rows.append(entry)
    return pd.DataFrame(rows)


def nodes_figure(
    table: pd.DataFrame, out: str | Path, *, outputs: int = 1, stem: str = "recovery_nodes"
) -> list[Path]:
    """Kept nodes per hidden layer against ``n`` for every prior, with the truth (dashed).

    The study report's figure (:func:`simulations.report.nodes_figure`) with the priors'
    display names and the paper's title.
    """
    from simulations.report import nodes_figure as report_nodes_figure
    from simulations.report import recovery_long

    families = prior_families(table)
    return report_nodes_figure(
        recovery_long(table),
        figure_stem(out, stem),
        label=lambda prior: prior_name(families[str(prior)]),
        title=_title(table, "kept nodes (inclusion probability > 1/2)", outputs),
    )


def _title(table: pd.DataFrame, what: str, outputs: int) -> str:
    row = table.iloc[0]
    student = student_label(row["p"], row["hidden"], outputs, row["activation"])
    return (
        f"{row['design']}, student {student}: {what}; "
        f"points: {table['replicate'].nunique()} replicates, lines: means"
    )


def inputs_figure(
    table: pd.DataFrame, out: str | Path, *, outputs: int = 1, stem: str = "recovery_inputs"
) -> list[Path]:
    """Input false-negative and false-positive rates against ``n`` for every prior."""
    from ssbnn_theory import style

    ns = sorted(table["n"].unique())
    priors = _priors(table)
    families = prior_families(table)
    metrics = (
        ("input_fnr", "input false-negative rate\n(relevant inputs dropped)"),
        ("input_fpr", "input false-positive rate\n(irrelevant inputs kept)"),
    )
    with style.context():
        fig, axes = style.figure(ncols=2)
        for ax, (metric, label) in zip(axes, metrics, strict=True):
            for index, prior in enumerate(priors):
                part = table[table["prior"].astype(str) == prior]
                look = style_of(families[prior])
                x = style.dodge(part["n"], index, len(priors), factor=0.06)
                ax.scatter(x, part[metric], s=16, alpha=0.35, color=look["color"], lw=0)
                means = part.groupby("n")[metric].mean()
                ax.plot(
                    style.dodge(means.index, index, len(priors), factor=0.06),
                    means.to_numpy(), "-", label=prior_name(families[prior]), **look,
                )  # fmt: skip
            style.log_n_axis(ax, ns)
            ax.set_ylim(-0.04, 1.04)
            ax.set_ylabel(label)
        axes[0].legend(loc="best")
        fig.suptitle(_title(table, "input selection", outputs))
        return save(fig, out, stem)


def trajectories(results: Any, *, n: int | None = None, points: int = 100) -> dict[str, Any]:
    """Refit the cells at ``n`` (default: the largest) of every prior, recording probabilities.

    ``points`` records per run (every ``max(1, total_steps // points)`` steps); each refit
    is checked against the stored cell (:func:`paper_figures.refit.check_stored`). Returns
    ``{prior label: Refit}`` in the study's order.
    """
    from paper_figures.refit import check_stored, refit
    from simulations.study import expand

    spec = results.spec
    size = max(spec.n) if n is None else n
    out = {}
    for cell in expand(spec):
        if cell.n == size and cell.student == spec.students[0]:
            every = max(1, cell.train_config.total_steps // points)
            fitted = refit(cell, record_every=every)
            check_stored(fitted, results.table)
            out[cell.prior.label] = fitted
    return out


def trajectories_figure(
    refits: Mapping[str, Any], out: str | Path, *, stem: str = "recovery_trajectories"
) -> list[Path]:
    """Inclusion probabilities during training, one column per prior (module docstring)."""
    from ssbnn_theory import style

    priors = list(refits)
    first = refits[priors[0]]
    depth = len(first.trajectory.nodes)
    truth = first.data.truth.active_nodes if first.data.truth is not None else None
    width, height = style.RC_PARAMS["figure.figsize"]
    with style.context():
        fig, axes = style.figure(
            ncols=len(priors), nrows=depth + 1, squeeze=False, sharex=True,
            figsize=(0.62 * width * len(priors), 0.62 * height * (depth + 1)),
        )  # fmt: skip
        for col, prior in enumerate(priors):
            run = refits[prior].trajectory
            family = refits[prior].cell.prior.prior
            colour = style_of(family)["color"]
            for layer in range(depth):
                ax = axes[layer][col]
                probs = run.nodes[layer][:, 0, :]
                ax.plot(run.steps, probs, color=colour, lw=1.0, alpha=0.75)
                ax.axhline(0.5, color="0.3", ls=":", lw=1.0)
                ax.set_ylim(-0.03, 1.03)
                if col == 0:
                    ax.set_ylabel(f"layer {layer + 1}: inclusion\nprobability (replicate 0)")
            ax = axes[depth][col]
            for layer in range(depth):
                counts = (run.nodes[layer] > 0.5).sum(axis=-1)
                ls = ("-", "--", "-.", ":")[layer % 4]
                ax.plot(run.steps, counts.mean(axis=1), color=colour, ls=ls,
                        label=f"layer {layer + 1}")  # fmt: skip
                ax.fill_between(run.steps, counts.min(axis=1), counts.max(axis=1),
                                color=colour, alpha=0.15, lw=0)  # fmt: skip
                if truth is not None and len(truth) == depth:
                    ax.axhline(truth[layer], color="black", ls=ls, lw=1.0)
            ax.set_xlabel("training step")
            ax.set_ylim(bottom=0)
            ax.yaxis.get_major_locator().set_params(integer=True)
            if col == 0:
                ax.set_ylabel("nodes with inclusion\nprobability > 1/2")
            ax.legend(loc="upper right", fontsize=9)
            axes[0][col].set_title(prior_name(family))
        cell = first.cell
        design = cell.spec.design
        student = student_label(
            design.p, cell.student.hidden, design.outputs, cell.student.activation
        )
        fig.suptitle(
            f"{design.name}, student {student}, n = {cell.n}: inclusion probabilities during "
            f"training (dotted: 1/2)\nbottom row: mean and range over {cell.spec.replicates} "
            "replicates; black: true active nodes"
        )
        return save(fig, out, stem)
