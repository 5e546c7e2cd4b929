"""The report's tables as DataFrames: per-cell summaries, slopes, node recovery, notes on
failed and unconverged replicates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simulations.report.statistics import loglog_slope, ols_slope
from simulations.schema import CONTRACTION, SUMMARY_METRICS, with_derived_columns
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "GROUP",
    "TRAINING",
    "build_report",
    "has_contraction",
    "hidden_label",
    "ordered",
    "recovery_long",
    "recovery_table",
    "replicate_notes",
    "slope_table",
    "summary_table",
    "usable_rows",
    "with_labels",
]

GROUP = ("design", "prior", "hidden", "n")
"""Columns that identify a row of the summary: one cell of the study."""

TRAINING = ("steps", "status")
"""A replicate's training: the steps it took and how it ended (``"max_steps"``: at its cap)."""


def hidden_label(hidden: Sequence[int]) -> str:
    """``[16, 8] -> "16x8"``: the widths part of the architecture label of tables and files."""
    return "x".join(str(int(k)) for k in hidden)


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
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
    return ordered(out)


def usable_rows(table: pd.DataFrame) -> pd.DataFrame:
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
    ``not_converged`` (``status == "max_steps"``) count the others. With a ``screened``
    column (fits with ``screen_inputs``), ``screened`` counts the replicates that did not
    fail and whose fit is a screened one, in the cells that have the column's values (NaN
    in the others).
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
    usable = usable_rows(labelled).groupby(list(GROUP), sort=True, observed=True)
    for metric in metrics:
        out[metric] = usable[metric].mean()
        out[f"{metric}_sd"] = usable[metric].std(ddof=1)
    for theory in ("eps_n", "r_n"):
        if theory in labelled:
            out[theory] = grouped[theory].first()
    if "screened" in labelled:
        kept = usable_rows(labelled)
        flag = kept["screened"]
        counts = (
            kept.assign(_screened=flag.eq(True).astype(int), _valued=flag.notna().astype(int))
            .groupby(list(GROUP), sort=True, observed=True)[["_screened", "_valued"]]
            .sum()
        )
        out["screened"] = counts["_screened"].where(counts["_valued"] > 0)
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
    labelled = with_labels(usable_rows(table))
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
            float(ols_slope(np.log(ns), 2 * np.log(eps))) if np.isfinite(eps).all() else math.nan
        )
        if "eps2_local_slope" in group:
            local = [group.loc[group["n"] == n, "eps2_local_slope"].iloc[0] for n in ns]
            row["local_eps2_first"], row["local_eps2_last"] = float(local[0]), float(local[-1])
        rows.append(row)
    return pd.DataFrame(rows)


def recovery_long(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, replicate, hidden layer): ``kept`` and ``true`` nodes of the layer.

    ``true`` is NaN when the truth is not a network of the student's depth; ``steps`` and
    ``status`` are the replicate's training (missing from tables without them).
    """
    rows = []
    for _, row in with_labels(usable_rows(table)).iterrows():
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
                    **{c: row[c] for c in TRAINING if c in row.index},
                }
            )
    training = [c for c in TRAINING if c in table]
    columns = [*GROUP, "prior_family", "replicate", "layer", "kept", "true", *training]
    return ordered(pd.DataFrame(rows, columns=columns))


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
    return ordered(out)


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
