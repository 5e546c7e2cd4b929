"""The report's figures: contraction against ``n`` with the theory overlay, kept nodes per
hidden layer (PNG and PDF, in the project's style, ``ssbnn_theory.style``), each with the
training budget behind it and its cells with a replicate at the step cap marked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from simulations.report.statistics import ols_slope, theory_constant
from simulations.schema import CONTRACTION, column

__all__ = ["capped_cells", "contraction_figure", "figure_stem", "nodes_figure", "training_note"]

_RING = {"s": 160, "facecolors": "none", "linewidths": 1.4}
"""The ring drawn around the mean of a cell with a replicate at its step cap."""


def figure_stem(design: str, hidden: str, kind: str) -> str:
    return f"{kind}_{design}_{hidden}"


def _priors_present(frame: pd.DataFrame) -> list[str]:
    """The priors of ``frame`` in the study's order."""
    return [p for p in frame["prior"].cat.categories if (frame["prior"] == p).any()]


def _look(rows: pd.DataFrame) -> tuple[str, str]:
    """Colour and marker of the prior family of ``rows`` (rows of one prior)."""
    from ssbnn_theory import style

    family = rows["prior_family"].iloc[0]
    return style.prior_color(family), style.prior_marker(family)


def capped_cells(rows: pd.DataFrame) -> set:
    """The ``n`` of the cells of ``rows`` (one prior) with a replicate that stopped at its
    step cap without converging (``status == "max_steps"``); empty without ``status``."""
    if "status" not in rows:
        return set()
    return set(rows.loc[rows["status"].astype(str) == "max_steps", "n"].unique())


def training_note(rows: pd.DataFrame) -> str | None:
    """The training budget behind ``rows`` (one design and student; a row per replicate, or
    per replicate and layer), for a figure's title: the range of steps per replicate and how
    many replicates stopped at their cap (ringed in the figure); ``None`` without a
    ``steps`` column."""
    if "steps" not in rows:
        return None
    keys = [c for c in ("prior", "n", "replicate") if c in rows]
    per = rows.drop_duplicates(keys)
    steps = pd.to_numeric(per["steps"], errors="coerce").dropna()
    if steps.empty:
        return None
    low, high = int(steps.min()), int(steps.max())
    span = f"{low:,}" if low == high else f"{low:,} to {high:,}"
    if "status" not in per:
        return f"training: {span} steps per replicate"
    status = per["status"].astype(str)
    if (status == "fixed").all():
        return f"training: {span} steps per replicate (fixed)"
    capped = int((status == "max_steps").sum())
    note = f"training: {span} steps per replicate until convergence"
    if capped:
        note += f"; {capped} of {len(per)} stopped at their step cap (ringed cells)"
    return note


def _ring(ax, ns, x, means, capped: set, colour: str) -> None:
    """Ring the means (at positions ``x``) of the cells whose ``n`` is in ``capped``."""
    at = np.isin(np.asarray(ns, dtype=float), [float(n) for n in capped])
    if at.any():
        ax.scatter(np.asarray(x)[at], np.asarray(means)[at], edgecolors=colour, **_RING)


def _title(title: str, rows: pd.DataFrame) -> str:
    note = training_note(rows)
    return title if note is None else f"{title}\n{note}"


def contraction_figure(group: pd.DataFrame, slopes: pd.DataFrame, path_stem: Path) -> list[Path]:
    """Log-log figure of ``E_q d_H^2`` and ``E_q ||f - f0||^2`` against ``n`` for one student.

    ``group`` holds the labelled rows (:func:`summary_table` labels) of one
    design and student. One panel per contraction metric, one colour and marker
    per prior (``ssbnn_theory.style``): every replicate as a faint point, the
    replicate mean as a line with the 10-90 % range over replicates as a band,
    and the theory overlay ``C eps_n^2`` (dashed; one constant ``C`` fitted by
    :func:`theory_constant`). Legends give the fitted slopes with their 95 %
    bootstrap intervals and the theory's slope over the same grid; a ring marks the
    mean of a cell with a replicate at its step cap, and the title gives the training
    budget (:func:`training_note`). Writes PNG and PDF.
    """
    from ssbnn_theory import style

    metrics = [m for m in CONTRACTION if m in group and np.isfinite(group[m]).any()]
    all_ns = sorted(group["n"].unique())
    priors = _priors_present(group)
    with style.context():
        fig, axes = style.figure(ncols=len(metrics), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            for index, prior in enumerate(priors):
                rows = group[group["prior"] == prior]
                colour, marker = _look(rows)
                ns = np.array(sorted(rows["n"].unique()), dtype=float)
                per_n = [rows.loc[rows["n"] == n, metric].to_numpy(dtype=float) for n in ns]
                shift = style.dodge(rows["n"], index, len(priors))
                ax.scatter(shift, rows[metric], s=12, alpha=0.35, color=colour, lw=0)
                mean = np.array([v.mean() for v in per_n])
                low = np.array([np.quantile(v, 0.1) for v in per_n])
                high = np.array([np.quantile(v, 0.9) for v in per_n])
                fit = slopes[slopes["prior"] == prior]
                label = str(prior)
                if not fit.empty and np.isfinite(fit[f"slope_{metric}"].iloc[0]):
                    f = fit.iloc[0]
                    label += (
                        f": slope {f[f'slope_{metric}']:.2f} "
                        f"[{f[f'{metric}_low']:.2f}, {f[f'{metric}_high']:.2f}]"
                    )
                dodged = style.dodge(ns, index, len(priors))
                ax.plot(dodged, mean, "-", marker=marker, color=colour, label=label)
                _ring(ax, ns, dodged, mean, capped_cells(rows), colour)
                ax.fill_between(ns, low, high, color=colour, alpha=0.12, lw=0)
                eps = [rows.loc[rows["n"] == n, "eps_n"].iloc[0] for n in ns]
                eps2 = np.asarray(eps, dtype=float) ** 2
                if np.isfinite(eps2).all() and (mean > 0).all():
                    const = theory_constant(mean, eps2)
                    theory_slope = float(ols_slope(np.log(ns), np.log(eps2)))
                    ax.plot(
                        ns,
                        const * eps2,
                        "--",
                        color=colour,
                        lw=1.5,
                        label=rf"theory $C\,\varepsilon_n^2$, slope {theory_slope:.2f}",
                    )
            ax.set_yscale("log")
            style.log_n_axis(ax, all_ns)
            ax.set_ylabel(column(metric).axis or label(metric))
            ax.legend(loc="lower left")
        title = (
            f"{group['design'].iloc[0]}, student {group['hidden'].iloc[0]}: contraction against "
            "$n$ (points: replicates; band: 10-90% of replicates)"
        )
        fig.suptitle(_title(title, group))
        return style.save_png_pdf(fig, path_stem)


def nodes_figure(
    long: pd.DataFrame,
    path_stem: Path,
    *,
    label: Callable[[str], str] = str,
    title: str | None = None,
) -> list[Path]:
    """Kept nodes per hidden layer against ``n``: replicates as points, means as lines.

    ``long`` is :func:`recovery_long` of one design and student; one panel per hidden
    layer, one colour and marker per prior, the truth's active nodes dashed where known,
    rings and the title's last line as in :func:`contraction_figure`.
    ``label`` names a prior in the legend (default: its label); ``title`` replaces the
    default title (design, student, what the points and lines are). Writes PNG and PDF.
    """
    from ssbnn_theory import style

    layers = sorted(long["layer"].unique())
    all_ns = sorted(long["n"].unique())
    priors = _priors_present(long)
    with style.context():
        fig, axes = style.figure(ncols=len(layers), squeeze=False)
        for ax, layer in zip(axes[0], layers, strict=True):
            rows = long[long["layer"] == layer]
            for index, prior in enumerate(priors):
                part = rows[rows["prior"] == prior]
                colour, marker = _look(part)
                shift = style.dodge(part["n"], index, len(priors), factor=0.06)
                ax.scatter(shift, part["kept"], s=16, alpha=0.35, color=colour, lw=0)
                means = part.groupby("n")["kept"].mean()
                ns = style.dodge(means.index, index, len(priors), factor=0.06)
                ax.plot(ns, means.to_numpy(), "-", marker=marker, color=colour, label=label(prior))
                _ring(ax, means.index, ns, means.to_numpy(), capped_cells(part), colour)
            true = rows["true"].dropna()
            top = rows["kept"].max()
            if not true.empty:
                ax.axhline(true.iloc[0], color="black", ls="--", lw=1.3, label="true active nodes")
                top = max(top, true.max())
            style.log_n_axis(ax, all_ns)
            ax.set_ylabel(f"kept nodes in hidden layer {layer}")
            ax.set_ylim(0, top + 1)
            ax.yaxis.get_major_locator().set_params(integer=True)
            ax.set_title(f"hidden layer {layer}")
        axes[0][0].legend(loc="best")
        if title is None:
            title = (
                f"{long['design'].iloc[0]}, student {long['hidden'].iloc[0]}: kept nodes "
                "(inclusion probability > 0.5; points: replicates, lines: means)"
            )
        fig.suptitle(_title(title, long))
        return style.save_png_pdf(fig, path_stem)
