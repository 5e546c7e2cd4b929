"""Study reports: replicate summaries, log-log slopes with bootstrap intervals, figures.

Everything here works on the consolidated results table (one row per cell and
replicate, :mod:`simulations.store`):

* :func:`summary_table`: per design, prior, architecture and ``n``, the mean
  and standard deviation over replicates of each metric;
* :func:`loglog_slope`: the least-squares slope of ``log mean_r v[n, r]``
  against ``log n`` with a percentile bootstrap interval that resamples the
  replicates within each ``n``;
* :func:`slope_table`: those slopes for ``E_q d_H^2`` and ``E_q ||f - f0||^2``
  beside the slope of ``log eps_n^2`` (``ssbnn_theory``) over the same grid and
  its local slope ``d log eps_n^2 / d log n`` at the grid's ends;
* :func:`recovery_table`: kept against true nodes per hidden layer;
* :func:`replicate_notes`: the failed and unconverged replicates, per cell;
* :func:`write_report`: ``DIR/report/summary.md`` and the figures (PNG and PDF).

Failed replicates (``status == "failed"``: a diverged fit, NaN metrics) are
counted but left out of every mean, slope and recovery share; replicates that
reached ``max_steps`` without converging are kept and their cells marked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulations.schema import (
    CONTRACTION,
    STRUCTURE_METRICS,
    SUMMARY_METRICS,
    column,
    label,
    slope_labels,
    with_derived_columns,
)
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "CONTRACTION",
    "GROUP",
    "SUMMARY_METRICS",
    "Report",
    "Slope",
    "build_report",
    "contraction_figure",
    "contraction_markdown",
    "format_markdown",
    "has_contraction",
    "hidden_label",
    "loglog_slope",
    "nodes_figure",
    "recovery_long",
    "recovery_markdown",
    "recovery_table",
    "replicate_notes",
    "report_markdown",
    "slope_table",
    "slopes_markdown",
    "structure_markdown",
    "summary_table",
    "theory_constant",
    "with_labels",
    "write_report",
]

GROUP = ("design", "prior", "hidden", "n")
"""Columns that identify a row of the summary: one cell of the study."""


@dataclass(frozen=True)
class Slope:
    """A log-log slope with its bootstrap interval.

    Attributes
    ----------
    slope
        Least-squares slope ``b`` of ``log ybar_n = a + b log n``, where
        ``ybar_n`` is the replicate mean at ``n``.
    low, high
        Percentile bootstrap interval at ``level``.
    intercept
        ``a`` (natural logs).
    level
        Coverage of the interval.
    """

    slope: float
    low: float
    high: float
    intercept: float
    level: float


def _ols_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of the rows of ``y`` (``[..., k]``) against ``x`` (``[k]``)."""
    xc = x - x.mean()
    return (y - y.mean(axis=-1, keepdims=True)) @ xc / (xc @ xc)


def loglog_slope(
    n: Sequence[float],
    samples: Sequence[Sequence[float]],
    *,
    level: float = 0.95,
    boot: int = 2000,
    seed: int = 0,
) -> Slope:
    """Least-squares slope of ``log mean_r v[n, r]`` on ``log n``, bootstrap over replicates.

    With ``x_k = log n_k`` and ``y_k = log( (1/R_k) sum_r v_{k r} )`` the slope is
    ``b = sum_k (x_k - xbar)(y_k - ybar) / sum_k (x_k - xbar)^2``. The interval
    is the percentile interval of ``b*`` over ``boot`` bootstrap tables, each
    resampling the ``R_k`` replicates of every ``n_k`` with replacement (the
    replicates are independent; the ``n`` values are the design).

    Parameters
    ----------
    n
        At least two distinct sample sizes.
    samples
        ``samples[k]``: the replicate values (positive, finite) at ``n[k]``.
    level
        Interval coverage in ``(0, 1)``.
    boot
        Number of bootstrap resamples (``>= 100``).
    seed
        Seed of the resampling.

    Raises
    ------
    InvalidParameterError
        Fewer than two distinct ``n``, an empty sample, or a non-positive value.
    """
    x = np.log(np.asarray(n, dtype=float))
    if len(x) != len(samples):
        raise InvalidParameterError("samples", f"{len(x)} samples, one per n", len(samples))
    if len(np.unique(x)) < 2 or not np.isfinite(x).all():
        raise InvalidParameterError("n", "at least two distinct positive sizes", list(n))
    if not 0 < level < 1:
        raise InvalidParameterError("level", "a number in (0, 1)", level)
    if boot < 100:
        raise InvalidParameterError("boot", "an integer >= 100", boot)
    arrays = [np.asarray(s, dtype=float) for s in samples]
    for k, values in enumerate(arrays):
        if values.size == 0 or not (np.isfinite(values).all() and (values > 0).all()):
            raise InvalidParameterError(
                f"samples[{k}]", "a non-empty set of positive finite values", values.tolist()
            )
    y = np.log([values.mean() for values in arrays])
    slope = float(_ols_slope(x, y))
    rng = np.random.default_rng(seed)
    means = np.stack(
        [
            values[rng.integers(0, values.size, (boot, values.size))].mean(axis=1)
            for values in arrays
        ],
        axis=1,
    )
    draws = _ols_slope(x, np.log(means))
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    intercept = float(y.mean() - slope * x.mean())
    return Slope(slope, float(low), float(high), intercept, level)


def hidden_label(hidden: Sequence[int]) -> str:
    """``[16, 8] -> "16x8"``: the widths part of the architecture label of tables and files."""
    return "x".join(str(int(k)) for k in hidden)


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """``prior`` and ``hidden`` as categories in order of first appearance (the study's order).

    Sorting and grouping then follow the spec (``ss-gl`` before ``ss-ghs`` if
    the spec lists them so) rather than the alphabet.
    """
    out = frame.copy()
    for name in ("prior", "hidden"):
        if name in out and not isinstance(out[name].dtype, pd.CategoricalDtype):
            order = list(dict.fromkeys(out[name]))
            out[name] = pd.Categorical(out[name], categories=order, ordered=True)
    return out


def with_labels(table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``hidden`` as the student's label, ``16x16-relu`` (column ``student``).

    Tables without the ``student``, ``prior_family`` or ``prior_options`` columns get them
    first (:func:`simulations.schema.with_derived_columns`).
    """
    out = with_derived_columns(table)
    out = out.assign(hidden=out["student"].to_numpy())
    return _ordered(out)


def _usable(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of replicates that did not fail (all rows of a table without ``status``)."""
    if "status" not in table:
        return table
    return table[table["status"].astype(str) != "failed"]


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per design, prior, architecture and ``n``: replicates, and mean and sd of each metric.

    Columns ``<metric>`` hold the replicate mean and ``<metric>_sd`` the sample
    standard deviation (``ddof = 1``; NaN for one replicate), plus ``eps_n``
    and ``r_n`` (one value per cell). ``replicates`` counts the replicates
    that did not fail; with a ``status`` column, ``failed`` and
    ``not_converged`` (``status == "max_steps"``) count the others.
    """
    labelled = with_labels(table)
    metrics = [m for m in SUMMARY_METRICS if m in labelled]
    status = labelled["status"].astype(str) if "status" in labelled else None
    if status is not None:
        labelled = labelled.assign(
            _ok=(status != "failed").astype(int),
            _failed=(status == "failed").astype(int),
            _max_steps=(status == "max_steps").astype(int),
        )
    grouped = labelled.groupby(list(GROUP), sort=True, observed=True)
    if status is None:
        out = grouped.agg(replicates=("replicate", "size"))
    else:
        out = grouped.agg(
            replicates=("_ok", "sum"),
            failed=("_failed", "sum"),
            not_converged=("_max_steps", "sum"),
        )
    usable = _usable(labelled).groupby(list(GROUP), sort=True, observed=True)
    for metric in metrics:
        out[metric] = usable[metric].mean()
        out[f"{metric}_sd"] = usable[metric].std(ddof=1)
    for theory in ("eps_n", "r_n"):
        if theory in labelled:
            out[theory] = grouped[theory].first()
    return out.reset_index()


def replicate_notes(table: pd.DataFrame) -> list[str]:
    """Lines on the failed and unconverged replicates of a results table, per cell.

    Empty when every replicate trained normally (or the table has no ``status``).
    """
    if table.empty or "status" not in table:
        return []
    labelled = with_labels(table)
    status = labelled["status"].astype(str)
    sizes = labelled.groupby(list(GROUP), sort=True, observed=True).size()
    lines = []
    for kind, mask, what in (
        ("failed", status == "failed", "failed (diverged; left out of every mean and slope)"),
        ("max_steps", status == "max_steps", "reached max_steps without converging"),
    ):
        if not mask.any():
            continue
        part = labelled[mask.to_numpy()]
        cells = part.groupby(list(GROUP), sort=True, observed=True)
        where = "1 cell" if cells.ngroups == 1 else f"{cells.ngroups} cells"
        lines.append(f"{int(mask.sum())} of {len(table)} replicates {what}, in {where}:")
        for keys, rows in cells:
            label = "/".join(str(k) for k in keys[:3]) + f"/n={int(keys[3])}"
            details = []
            for _, row in rows.iterrows():
                text = f"replicate {int(row['replicate'])}"
                if kind == "failed":
                    step = row.get("failed_step")
                    if step is not None and not pd.isna(step):
                        text += f" at step {int(step)}"
                    if row.get("failure"):
                        text += f" ({row['failure']})"
                details.append(text)
            total = int(sizes.loc[keys])
            lines.append(f"  {label}: {len(rows)} of {total}: " + ", ".join(details))
    return lines


def slope_table(table: pd.DataFrame, *, boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per design, prior and architecture: empirical slopes beside the theory's.

    For each metric of :data:`simulations.schema.CONTRACTION`, ``slope_<metric>`` with
    ``<metric>_low``/``_high`` (95 % bootstrap interval, :func:`loglog_slope`).
    ``slope_eps2`` is the least-squares slope of ``log eps_n^2`` on ``log n``
    over the same grid, and ``local_eps2_first``/``_last`` the local slope
    ``d log eps_n^2 / d log n`` (column ``eps2_local_slope``) at the smallest and
    largest ``n``. Groups with fewer than two ``n`` values are left out.
    """
    labelled = with_labels(_usable(table))
    rows = []
    for (design, prior, hidden), group in labelled.groupby(
        ["design", "prior", "hidden"], sort=True, observed=True
    ):
        ns = sorted(group["n"].unique())
        if len(ns) < 2:
            continue
        row: dict[str, object] = {"design": design, "prior": prior, "hidden": hidden}
        row["n_min"], row["n_max"] = int(ns[0]), int(ns[-1])
        for metric in CONTRACTION:
            samples = [group.loc[group["n"] == n, metric].to_numpy() for n in ns]
            valid = all(np.isfinite(s).all() and (s > 0).all() for s in samples)
            fit = loglog_slope(ns, samples, boot=boot, seed=seed) if valid else None
            row[f"slope_{metric}"] = fit.slope if fit else math.nan
            row[f"{metric}_low"] = fit.low if fit else math.nan
            row[f"{metric}_high"] = fit.high if fit else math.nan
        eps = np.array([group.loc[group["n"] == n, "eps_n"].iloc[0] for n in ns], dtype=float)
        row["slope_eps2"] = (
            float(_ols_slope(np.log(ns), 2 * np.log(eps))) if np.isfinite(eps).all() else math.nan
        )
        if "eps2_local_slope" in group:
            local = [group.loc[group["n"] == n, "eps2_local_slope"].iloc[0] for n in ns]
            row["local_eps2_first"], row["local_eps2_last"] = float(local[0]), float(local[-1])
        rows.append(row)
    return pd.DataFrame(rows)


def recovery_long(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, replicate, hidden layer): ``kept`` and ``true`` nodes of the layer.

    ``true`` is NaN when the truth is not a network of the student's depth.
    """
    rows = []
    for _, row in with_labels(_usable(table)).iterrows():
        if row["kept_nodes"] is None:
            continue
        kept = list(row["kept_nodes"])
        true = row.get("true_nodes")
        true = list(true) if true is not None and len(true) == len(kept) else None
        for layer, k in enumerate(kept, start=1):
            rows.append(
                {
                    **{c: row[c] for c in GROUP},
                    "prior_family": row["prior_family"],
                    "replicate": row["replicate"],
                    "layer": layer,
                    "kept": int(k),
                    "true": math.nan if true is None else int(true[layer - 1]),
                }
            )
    columns = [*GROUP, "prior_family", "replicate", "layer", "kept", "true"]
    return _ordered(pd.DataFrame(rows, columns=columns))


def recovery_table(table: pd.DataFrame) -> pd.DataFrame:
    """Kept against true nodes, per design, prior, architecture, ``n`` and hidden layer.

    ``kept_mean``/``kept_sd``: kept nodes of the layer (inclusion probability
    > 0.5) over replicates; ``true``: the truth's active nodes of that layer
    (NaN when the truth is not a network of the student's depth); ``exact``:
    share of replicates that keep exactly the true number in that layer;
    ``all_exact``: share that do so in every layer at once.
    """
    long = recovery_long(table)
    if long.empty:
        return pd.DataFrame(
            columns=[*GROUP, "layer", "true", "kept_mean", "kept_sd", "exact", "all_exact"]
        )
    long["hit"] = (long["kept"] == long["true"]).astype(float)
    long.loc[long["true"].isna(), "hit"] = math.nan
    every = long.groupby([*GROUP, "replicate"], sort=True, observed=True)["hit"].agg(
        lambda hits: math.nan if hits.isna().any() else float(hits.all())
    )
    all_exact = every.groupby(list(GROUP), sort=True, observed=True).mean().rename("all_exact")
    grouped = long.groupby([*GROUP, "layer"], sort=True, observed=True)
    out = grouped.agg(
        true=("true", "first"),
        kept_mean=("kept", "mean"),
        kept_sd=("kept", "std"),
        exact=("hit", "mean"),
    )
    out = out.reset_index().merge(all_exact.reset_index(), on=list(GROUP))
    return _ordered(out)


def format_markdown(frame: pd.DataFrame, *, digits: int = 3) -> str:
    """A plain GitHub-Markdown table of ``frame`` (numbers to ``digits`` significant digits)."""

    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return "nan" if not np.isfinite(value) else f"{value:.{digits}g}"
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


# --------------------------------------------------------------------------- figures


def theory_constant(y: np.ndarray, eps2: np.ndarray) -> float:
    """The one constant ``C`` of the overlay ``C eps_n^2``: least squares in logs.

    Minimises ``sum_k (log ybar_k - log C - log eps_k^2)^2``, so
    ``log C = mean_k (log ybar_k - log eps_k^2)``: the theory curve keeps its
    shape (its slope in ``n``) and only its level is fitted.
    """
    return float(np.exp(np.mean(np.log(y) - np.log(eps2))))


def _figure_stem(design: str, hidden: str, kind: str) -> str:
    return f"{kind}_{design}_{hidden}"


def _priors_present(frame: pd.DataFrame) -> list[str]:
    """The priors of ``frame`` in the study's order."""
    return [p for p in frame["prior"].cat.categories if (frame["prior"] == p).any()]


def _look(rows: pd.DataFrame) -> tuple[str, str]:
    """Colour and marker of the prior family of ``rows`` (rows of one prior)."""
    from ssbnn_theory import style

    family = rows["prior_family"].iloc[0]
    return style.prior_color(family), style.prior_marker(family)


def contraction_figure(group: pd.DataFrame, slopes: pd.DataFrame, path_stem: Path) -> list[Path]:
    """Log-log figure of ``E_q d_H^2`` and ``E_q ||f - f0||^2`` against ``n`` for one student.

    ``group`` holds the labelled rows (:func:`summary_table` labels) of one
    design and student. One panel per contraction metric, one colour and marker
    per prior (``ssbnn_theory.style``): every replicate as a faint point, the
    replicate mean as a line with the 10-90 % range over replicates as a band,
    and the theory overlay ``C eps_n^2`` (dashed; one constant ``C`` fitted by
    :func:`theory_constant`). Legends give the fitted slopes with their 95 %
    bootstrap intervals and the theory's slope over the same grid. Writes PNG
    and PDF.
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
                ax.fill_between(ns, low, high, color=colour, alpha=0.12, lw=0)
                eps = [rows.loc[rows["n"] == n, "eps_n"].iloc[0] for n in ns]
                eps2 = np.asarray(eps, dtype=float) ** 2
                if np.isfinite(eps2).all() and (mean > 0).all():
                    const = theory_constant(mean, eps2)
                    theory_slope = float(_ols_slope(np.log(ns), np.log(eps2)))
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
        fig.suptitle(
            f"{group['design'].iloc[0]}, student {group['hidden'].iloc[0]}: contraction against "
            "$n$ (points: replicates; band: 10-90% of replicates)"
        )
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
    layer, one colour and marker per prior, the truth's active nodes dashed where known.
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
        fig.suptitle(title)
        return style.save_png_pdf(fig, path_stem)


# --------------------------------------------------------------------------- summary


def _pm(mean: float, sd: float) -> str:
    if not np.isfinite(mean):
        return "nan"
    return f"{mean:.3g}" if not np.isfinite(sd) else f"{mean:.3g} ± {sd:.2g}"


def contraction_markdown(summary: pd.DataFrame) -> str:
    """Empirical contraction beside theory, one row per prior, architecture and ``n``.

    ``C eps_n^2`` uses the constant fitted to ``E_q d_H^2`` over the ``n`` grid
    of that prior and architecture (:func:`theory_constant`).
    """
    rows = []
    for (prior, hidden), part in summary.groupby(["prior", "hidden"], sort=True, observed=True):
        eps2 = part["eps_n"].to_numpy(dtype=float) ** 2
        dh2 = part["dH2_mean"].to_numpy(dtype=float)
        ok = np.isfinite(eps2).all() and (dh2 > 0).all()
        const = theory_constant(dh2, eps2) if ok else math.nan
        for (_, r), e2 in zip(part.iterrows(), eps2, strict=True):
            rows.append(
                {
                    "prior": prior,
                    "hidden": hidden,
                    "n": int(r["n"]),
                    "R": int(r["replicates"]),
                    **{
                        label(m): _pm(r[m], r[f"{m}_sd"])
                        for m in ("dH2_mean", "l2_risk_mean", "l2_risk_of_mean")
                    },
                    "eps_n^2": e2,
                    "C eps_n^2": const * e2,
                }
            )
            if int(r.get("failed", 0) or 0):
                rows[-1]["R"] = f"{int(r['replicates'])} (+{int(r['failed'])} failed)"
            if int(r.get("not_converged", 0) or 0):
                rows[-1]["not converged"] = f"{int(r['not_converged'])} of {int(r['replicates'])}"
    frame = pd.DataFrame(rows)
    if "not converged" in frame:
        frame["not converged"] = frame["not converged"].fillna("")
    return format_markdown(frame)


def slopes_markdown(slopes: pd.DataFrame) -> str:
    """Fitted log-log slopes with 95 % bootstrap intervals beside the theory's slopes."""

    def interval(row: pd.Series, metric: str) -> str:
        if not np.isfinite(row[f"slope_{metric}"]):
            return "nan"
        return (
            f"{row[f'slope_{metric}']:.2f} "
            f"[{row[f'{metric}_low']:.2f}, {row[f'{metric}_high']:.2f}]"
        )

    rows = []
    for _, row in slopes.iterrows():
        entry = {
            "prior": row["prior"],
            "hidden": row["hidden"],
            "n range": f"{row['n_min']}-{row['n_max']}",
            **{f"{slope_labels(m)[f'slope_{m}']} [95% CI]": interval(row, m) for m in CONTRACTION},
            "slope eps_n^2 (theory, same grid)": row["slope_eps2"],
        }
        if "local_eps2_first" in row:
            entry["local slope eps_n^2 (n_min, n_max)"] = (
                f"{row['local_eps2_first']:.2f}, {row['local_eps2_last']:.2f}"
            )
        rows.append(entry)
    return format_markdown(pd.DataFrame(rows))


def recovery_markdown(recovery: pd.DataFrame) -> str:
    """Kept nodes per hidden layer: mean ± sd over replicates (true), share exactly right."""
    if recovery.empty:
        return "(no kept-node records)"
    rows = []
    for keys, part in recovery.groupby(list(GROUP), sort=True, observed=True):
        entry = dict(zip(GROUP, keys, strict=True))
        entry["n"] = int(entry["n"])
        for _, r in part.iterrows():
            true = "" if not np.isfinite(r["true"]) else f" ({int(r['true'])})"
            entry[f"layer {int(r['layer'])} kept (true)"] = _pm(r["kept_mean"], r["kept_sd"]) + true
        exact = float(part["all_exact"].iloc[0])
        entry["share exact in all layers"] = "n/a" if np.isnan(exact) else f"{exact:.2f}"
        rows.append(entry)
    return format_markdown(pd.DataFrame(rows))


def structure_markdown(summary: pd.DataFrame) -> str:
    """Density, input recovery, FLOPs and test scores: mean ± sd over replicates.

    Metrics the design does not have (all NaN, e.g. test RMSE of a classifier)
    are left out.
    """
    present = {m: label(m) for m in STRUCTURE_METRICS if m in summary and summary[m].notna().any()}
    rows = []
    for _, r in summary.iterrows():
        entry = {c: r[c] for c in GROUP}
        entry["n"] = int(entry["n"])
        for metric, text in present.items():
            entry[text] = _pm(r[metric], r[f"{metric}_sd"])
        rows.append(entry)
    return format_markdown(pd.DataFrame(rows))


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` produced.

    Attributes
    ----------
    summary
        Path of ``summary.md``.
    figures
        Paths of the figures (PNG and PDF).
    text
        The Markdown text of the summary.
    skipped
        Cell files left out because they do not verify (``skip_bad``).
    table
        The results table the report was made from.
    tables
        Its tables per design (:func:`build_report`).
    """

    summary: Path
    figures: tuple[Path, ...]
    text: str
    skipped: tuple[Any, ...] = ()
    table: pd.DataFrame | None = None
    tables: dict[str, Any] = field(default_factory=dict)


def build_report(table: pd.DataFrame, *, boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The report's tables for a results table: summary, slopes and recovery, per design."""
    if table.empty:
        raise InvalidParameterError("DIR", "a study folder with at least one finished cell", 0)
    out: dict[str, Any] = {}
    for design, part in table.groupby("design", sort=True, observed=True):
        out[str(design)] = {
            "summary": summary_table(part),
            "slopes": slope_table(part, boot=boot, seed=seed),
            "recovery": recovery_table(part),
        }
    return out


def has_contraction(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` has any finite contraction metric (not so for user data without f0)."""
    return any(
        m in frame and np.isfinite(frame[m].to_numpy(dtype=float)).any() for m in CONTRACTION
    )


def report_markdown(tables: dict[str, Any]) -> str:
    """The Markdown sections (one per design) of a report from :func:`build_report`'s tables."""
    lines = []
    for design, parts in tables.items():
        lines += [f"## {design}", "", "### Contraction (mean ± sd over replicates)", ""]
        if not has_contraction(parts["summary"]):
            lines += ["Not available: the design has no noise-free truth f0 (user data).", ""]
        else:
            lines += [contraction_markdown(parts["summary"]), ""]
            if not parts["slopes"].empty:
                lines += ["### Log-log slopes against n", "", slopes_markdown(parts["slopes"]), ""]
        lines += [
            "### Node recovery per hidden layer",
            "",
            recovery_markdown(parts["recovery"]),
            "",
        ]
        lines += ["### Structure and prediction", "", structure_markdown(parts["summary"]), ""]
    return "\n".join(lines)


def write_report(
    root: str | Path, *, boot: int = 2000, seed: int = 0, skip_bad: bool = False
) -> Report:
    """Write ``root/report/summary.md`` and the standard figures (PNG and PDF).

    Per design and student: ``contraction_<design>_<student>`` (when the study
    has at least two ``n``) and ``nodes_<design>_<student>``. The top of the
    summary counts the cells done, the cell files left out (``skip_bad``), and
    the failed and unconverged replicates per cell (:func:`replicate_notes`).

    Parameters
    ----------
    root
        A study's output folder (``ssbnn simulate --out``).
    boot, seed
        Bootstrap resamples and their seed for the slope intervals.
    skip_bad
        Leave out cell files that do not verify instead of refusing.

    Raises
    ------
    InvalidParameterError
        ``DIR`` when ``root`` is not a study folder or holds no finished cell;
        ``root/report`` when it is not a folder or cannot be written.
    simulations.store.BadCellsError
        A cell file does not verify and ``skip_bad`` is false.
    """
    from simulations.store import ResultStore

    store = ResultStore(root)
    manifest = store.index()
    table = store.load_table(skip_bad=skip_bad, manifest=manifest)
    tables = build_report(table, boot=boot, seed=seed)
    folder = Path(root) / "report"
    try:
        return _write_report(folder, manifest, table, tables, store.skipped)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, FileExistsError | NotADirectoryError):
            reason = "it is a file"
        raise InvalidParameterError(
            str(folder), f"a folder the report can be written to ({reason})", str(folder)
        ) from None


def _write_report(
    folder: Path,
    manifest: dict[str, Any],
    table: pd.DataFrame,
    tables: dict[str, Any],
    skipped: tuple[Any, ...],
) -> Report:
    folder.mkdir(exist_ok=True)
    figures: list[Path] = []
    usable = _usable(table)
    labelled = with_labels(usable)
    for design, parts in tables.items():
        for hidden in labelled["hidden"].cat.categories:
            mask = ((labelled["design"] == design) & (labelled["hidden"] == hidden)).to_numpy()
            if not mask.any():
                continue
            slopes = parts["slopes"]
            slopes = slopes[slopes["hidden"] == hidden] if not slopes.empty else slopes
            if not slopes.empty and has_contraction(labelled[mask]):
                stem = folder / _figure_stem(design, str(hidden), "contraction")
                figures += contraction_figure(labelled[mask], slopes, stem)
            long = recovery_long(usable[mask])
            if not long.empty:
                figures += nodes_figure(long, folder / _figure_stem(design, str(hidden), "nodes"))
    cells = manifest["cells"]
    done = sum(1 for entry in cells.values() if entry["status"] == "done") - len(skipped)
    lines = [
        f"# Study {manifest['study']}: report",
        "",
        f"Cells done: {done} of {len(cells)}; rows (cell x replicate): {len(table)}.",
        "",
    ]
    if skipped:
        lines += [
            f"Left out: {len(skipped)} cell files that do not verify "
            "(rerun ssbnn simulate to recompute them):",
            "",
            *(f"* {bad}" for bad in skipped),
            "",
        ]
    notes = replicate_notes(table)
    if notes:
        lines += ["```", *notes, "```", ""]
    lines += [
        *(f"![{p.stem}]({p.name})" for p in figures if p.suffix == ".png"),
        "",
        report_markdown(tables),
    ]
    text = "\n".join(lines)
    path = folder / "summary.md"
    from simulations._io import atomic_write

    atomic_write(path, lambda handle: handle.write((text + "\n").encode("utf-8")))
    return Report(path, tuple(figures), text, tuple(skipped), table, tables)
