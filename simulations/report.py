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
* :func:`write_report`: ``DIR/report/summary.md`` and the figures (PNG and PDF).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "CONTRACTION",
    "GROUP",
    "Slope",
    "format_markdown",
    "loglog_slope",
    "recovery_table",
    "slope_table",
    "summary_table",
    "write_report",
]

GROUP = ("design", "prior", "hidden", "n")
"""Columns that identify a row of the summary: one cell of the study."""

CONTRACTION = {
    "dH2_mean": "E_q d_H^2",
    "l2_risk_mean": "E_q ||f - f0||^2",
}
"""The contraction metrics whose log-log slopes the report estimates, with their labels."""

SUMMARY_METRICS = (
    "dH2_mean",
    "l2_risk_mean",
    "l2_risk_of_mean",
    "rmse_test",
    "node_density",
    "weight_density",
    "input_fnr",
    "input_fpr",
    "flops",
)
"""Metrics summarised by mean and spread over replicates (those present in the table)."""


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
    """``[16, 8] -> "16x8"``: the architecture label used in tables and file names."""
    return "x".join(str(int(k)) for k in hidden)


def _with_labels(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    out["hidden"] = [hidden_label(h) for h in table["hidden"]]
    return out


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per design, prior, architecture and ``n``: replicates, and mean and sd of each metric.

    Columns ``<metric>`` hold the replicate mean and ``<metric>_sd`` the sample
    standard deviation (``ddof = 1``; NaN for one replicate), plus ``eps_n``
    and ``r_n`` (one value per cell).
    """
    labelled = _with_labels(table)
    metrics = [m for m in SUMMARY_METRICS if m in labelled]
    grouped = labelled.groupby(list(GROUP), sort=True)
    out = grouped.agg(replicates=("replicate", "size"))
    for metric in metrics:
        out[metric] = grouped[metric].mean()
        out[f"{metric}_sd"] = grouped[metric].std(ddof=1)
    for theory in ("eps_n", "r_n"):
        if theory in labelled:
            out[theory] = grouped[theory].first()
    return out.reset_index()


def slope_table(table: pd.DataFrame, *, boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per design, prior and architecture: empirical slopes beside the theory's.

    For each metric of :data:`CONTRACTION`, ``slope_<metric>`` with
    ``<metric>_low``/``_high`` (95 % bootstrap interval, :func:`loglog_slope`).
    ``slope_eps2`` is the least-squares slope of ``log eps_n^2`` on ``log n``
    over the same grid, and ``local_eps2_first``/``_last`` the local slope
    ``d log eps_n^2 / d log n`` (column ``eps2_local_slope``) at the smallest and
    largest ``n``. Groups with fewer than two ``n`` values are left out.
    """
    labelled = _with_labels(table)
    rows = []
    for (design, prior, hidden), group in labelled.groupby(
        ["design", "prior", "hidden"], sort=True
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


def recovery_table(table: pd.DataFrame) -> pd.DataFrame:
    """Kept against true nodes, per design, prior, architecture, ``n`` and hidden layer.

    ``kept_mean``/``kept_sd``: kept nodes of the layer (inclusion probability
    > 0.5) over replicates; ``true``: the truth's active nodes of that layer
    (NaN when the truth is not a network of the student's depth); ``exact``:
    share of replicates that keep exactly the true number.
    """
    rows = []
    for _, row in _with_labels(table).iterrows():
        kept = list(row["kept_nodes"])
        true = row.get("true_nodes")
        true = list(true) if true is not None and len(true) == len(kept) else None
        for layer, k in enumerate(kept, start=1):
            rows.append(
                {
                    **{c: row[c] for c in GROUP},
                    "layer": layer,
                    "kept": int(k),
                    "true": math.nan if true is None else int(true[layer - 1]),
                }
            )
    if not rows:
        return pd.DataFrame(columns=[*GROUP, "layer", "true", "kept_mean", "kept_sd", "exact"])
    long = pd.DataFrame(rows)
    long["hit"] = (long["kept"] == long["true"]).astype(float)
    long.loc[long["true"].isna(), "hit"] = math.nan
    grouped = long.groupby([*GROUP, "layer"], sort=True)
    out = grouped.agg(
        true=("true", "first"),
        kept_mean=("kept", "mean"),
        kept_sd=("kept", "std"),
        exact=("hit", "mean"),
    )
    return out.reset_index()


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


def contraction_figure(group: pd.DataFrame, slopes: pd.DataFrame, path_stem: Path) -> list[Path]:
    """Log-log figure of ``E_q d_H^2`` and ``E_q ||f - f0||^2`` against ``n`` for one design.

    One panel per contraction metric, one colour per prior: every replicate as a
    faint point, the replicate mean as a line with the 10-90 % replicate range
    as a band, and the theory overlay ``C eps_n^2`` (dashed; ``C`` fitted by
    :func:`theory_constant`). Legends give the fitted slopes. Writes PNG and PDF.
    """
    import matplotlib.pyplot as plt

    from ssbnn_theory import style

    metrics = [m for m in CONTRACTION if m in group and np.isfinite(group[m]).any()]
    with style.context():
        fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.2), squeeze=False)
        for ax, metric in zip(axes[0], metrics, strict=True):
            for prior, rows in group.groupby("prior", sort=True):
                colour = style.prior_colour(str(prior).split("(")[0])
                ns = np.array(sorted(rows["n"].unique()), dtype=float)
                per_n = [rows.loc[rows["n"] == n, metric].to_numpy(dtype=float) for n in ns]
                ax.scatter(rows["n"], rows[metric], s=10, alpha=0.35, color=colour, lw=0)
                mean = np.array([v.mean() for v in per_n])
                low = np.array([np.quantile(v, 0.1) for v in per_n])
                high = np.array([np.quantile(v, 0.9) for v in per_n])
                fit = slopes[(slopes["prior"] == prior)]
                label = str(prior)
                if not fit.empty and np.isfinite(fit[f"slope_{metric}"].iloc[0]):
                    f = fit.iloc[0]
                    label += (
                        f": slope {f[f'slope_{metric}']:.2f} "
                        f"[{f[f'{metric}_low']:.2f}, {f[f'{metric}_high']:.2f}]"
                    )
                ax.plot(ns, mean, "o-", color=colour, label=label)
                ax.fill_between(ns, low, high, color=colour, alpha=0.15, lw=0)
                eps2 = (
                    np.array([rows.loc[rows["n"] == n, "eps_n"].iloc[0] for n in ns], dtype=float)
                    ** 2
                )
                if np.isfinite(eps2).all() and (mean > 0).all():
                    const = theory_constant(mean, eps2)
                    theory_slope = float(_ols_slope(np.log(ns), np.log(eps2)))
                    ax.plot(
                        ns,
                        const * eps2,
                        "--",
                        color=colour,
                        alpha=0.8,
                        label=f"theory C·eps_n² (slope {theory_slope:.2f})",
                    )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("training-set size n")
            ax.set_ylabel(CONTRACTION[metric])
            ax.legend(fontsize="small")
        design = group["design"].iloc[0]
        fig.suptitle(f"{design}, student {group['hidden'].iloc[0]}: contraction against n")
        fig.tight_layout()
        paths = [path_stem.with_suffix(".png"), path_stem.with_suffix(".pdf")]
        for path in paths:
            fig.savefig(path, dpi=150)
        plt.close(fig)
    return paths


def nodes_figure(recovery: pd.DataFrame, path_stem: Path) -> list[Path]:
    """Kept nodes per hidden layer against ``n`` (mean and sd over replicates), truth dashed."""
    import matplotlib.pyplot as plt

    from ssbnn_theory import style

    layers = sorted(recovery["layer"].unique())
    with style.context():
        fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.8), squeeze=False)
        for ax, layer in zip(axes[0], layers, strict=True):
            rows = recovery[recovery["layer"] == layer]
            for prior, part in rows.groupby("prior", sort=True):
                colour = style.prior_colour(str(prior).split("(")[0])
                ax.errorbar(
                    part["n"],
                    part["kept_mean"],
                    yerr=part["kept_sd"].fillna(0.0),
                    fmt="o-",
                    color=colour,
                    capsize=3,
                    label=str(prior),
                )
            true = rows["true"].dropna()
            if not true.empty:
                ax.axhline(true.iloc[0], color="black", ls="--", lw=1, label="true active nodes")
            ax.set_xscale("log")
            ax.set_xlabel("training-set size n")
            ax.set_ylabel(f"kept nodes, hidden layer {layer}")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize="small")
        fig.suptitle(
            f"{recovery['design'].iloc[0]}, student {recovery['hidden'].iloc[0]}: node recovery"
        )
        fig.tight_layout()
        paths = [path_stem.with_suffix(".png"), path_stem.with_suffix(".pdf")]
        for path in paths:
            fig.savefig(path, dpi=150)
        plt.close(fig)
    return paths


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
    for (prior, hidden), part in summary.groupby(["prior", "hidden"], sort=True):
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
                    "E_q d_H^2": _pm(r["dH2_mean"], r["dH2_mean_sd"]),
                    "E_q ||f-f0||^2": _pm(r["l2_risk_mean"], r["l2_risk_mean_sd"]),
                    "||E_q f-f0||^2": _pm(r["l2_risk_of_mean"], r["l2_risk_of_mean_sd"]),
                    "eps_n^2": e2,
                    "C eps_n^2": const * e2,
                }
            )
    return format_markdown(pd.DataFrame(rows))


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
            "slope E_q d_H^2 [95% CI]": interval(row, "dH2_mean"),
            "slope E_q ||f-f0||^2 [95% CI]": interval(row, "l2_risk_mean"),
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
    for keys, part in recovery.groupby(list(GROUP), sort=True):
        entry = dict(zip(GROUP, keys, strict=True))
        entry["n"] = int(entry["n"])
        for _, r in part.iterrows():
            true = "" if not np.isfinite(r["true"]) else f" ({int(r['true'])})"
            entry[f"layer {int(r['layer'])} kept (true)"] = _pm(r["kept_mean"], r["kept_sd"]) + true
        exact = part["exact"].to_numpy(dtype=float)
        entry["all layers exact"] = "n/a" if np.isnan(exact).all() else f"{np.nanmean(exact):.2f}"
        rows.append(entry)
    return format_markdown(pd.DataFrame(rows))


def structure_markdown(summary: pd.DataFrame) -> str:
    """Density, input recovery, FLOPs and test RMSE: mean ± sd over replicates."""
    names = {
        "node_density": "node density",
        "weight_density": "weight density",
        "input_fnr": "input FNR",
        "input_fpr": "input FPR",
        "flops": "FLOPs",
        "rmse_test": "test RMSE",
    }
    rows = []
    for _, r in summary.iterrows():
        entry = {c: r[c] for c in GROUP}
        entry["n"] = int(entry["n"])
        for metric, label in names.items():
            if metric in summary:
                entry[label] = _pm(r[metric], r[f"{metric}_sd"])
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
    """

    summary: Path
    figures: tuple[Path, ...]
    text: str


def build_report(table: pd.DataFrame, *, boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The report's tables for a results table: summary, slopes and recovery, per design."""
    if table.empty:
        raise InvalidParameterError("DIR", "a study folder with at least one finished cell", 0)
    out: dict[str, Any] = {}
    for design, part in table.groupby("design", sort=True):
        out[str(design)] = {
            "summary": summary_table(part),
            "slopes": slope_table(part, boot=boot, seed=seed),
            "recovery": recovery_table(part),
        }
    return out


def report_markdown(tables: dict[str, Any], *, title: str) -> str:
    """The Markdown text of a report from :func:`build_report`'s tables."""
    lines = [f"# {title}", ""]
    for design, parts in tables.items():
        lines += [f"## {design}", "", "### Contraction (mean ± sd over replicates)", ""]
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


def write_report(root: str | Path, *, boot: int = 2000, seed: int = 0) -> Report:
    """Write ``root/report/summary.md`` and the standard figures (PNG and PDF).

    Parameters
    ----------
    root
        A study's output folder (``ssbnn simulate --out``).
    boot, seed
        Bootstrap resamples and their seed for the slope intervals.

    Raises
    ------
    InvalidParameterError
        ``DIR`` when ``root`` is not a study folder or holds no finished cell.
    """
    from simulations.store import ResultStore

    store = ResultStore(root)
    manifest = store.manifest()
    table = store.load_table()
    tables = build_report(table, boot=boot, seed=seed)
    folder = Path(root) / "report"
    folder.mkdir(exist_ok=True)
    figures: list[Path] = []
    for design, parts in tables.items():
        labelled = _with_labels(table[table["design"] == design])
        for hidden, group in labelled.groupby("hidden", sort=True):
            slopes = parts["slopes"]
            slopes = slopes[slopes["hidden"] == hidden] if not slopes.empty else slopes
            if not slopes.empty:
                stem = folder / _figure_stem(design, str(hidden), "contraction")
                figures += contraction_figure(group, slopes, stem)
            recovery = parts["recovery"]
            recovery = recovery[recovery["hidden"] == hidden]
            if not recovery.empty and recovery["n"].nunique() >= 1:
                figures += nodes_figure(
                    recovery, folder / _figure_stem(design, str(hidden), "nodes")
                )
    cells = manifest["cells"]
    done = sum(1 for e in cells.values() if e["status"] == "done")
    title = f"Study {manifest['study']}: report"
    header = [
        f"Cells done: {done} of {len(cells)}; rows: {len(table)}.",
        "",
        *(f"![{p.stem}]({p.name})" for p in figures if p.suffix == ".png"),
        "",
    ]
    text = report_markdown(tables, title=title)
    text = text.replace("\n", "\n" + "\n".join(header) + "\n", 1) if header else text
    path = folder / "summary.md"
    path.write_text(text + "\n", encoding="utf-8")
    return Report(path, tuple(figures), text)
