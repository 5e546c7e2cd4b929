"""The report as text and files: the Markdown tables and ``DIR/report/summary.md`` with the
figures (:func:`write_report`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulations.report.figures import contraction_figure, figure_stem, nodes_figure
from simulations.report.statistics import theory_constant
from simulations.report.tables import (
    GROUP,
    build_report,
    has_contraction,
    recovery_long,
    replicate_notes,
    usable_rows,
    with_labels,
)
from simulations.schema import CONTRACTION, STRUCTURE_METRICS, label, slope_labels
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "Report",
    "contraction_markdown",
    "format_markdown",
    "recovery_markdown",
    "report_markdown",
    "slopes_markdown",
    "structure_markdown",
    "write_report",
]


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
            if pd.notna(r.get("screened", math.nan)):
                rows[-1]["screened"] = f"{int(r['screened'])} of {int(r['replicates'])}"
    frame = pd.DataFrame(rows)
    for column in ("not converged", "screened"):
        if column in frame:
            frame[column] = frame[column].fillna("")
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
    usable = usable_rows(table)
    labelled = with_labels(usable)
    for design, parts in tables.items():
        for hidden in labelled["hidden"].cat.categories:
            mask = ((labelled["design"] == design) & (labelled["hidden"] == hidden)).to_numpy()
            if not mask.any():
                continue
            slopes = parts["slopes"]
            slopes = slopes[slopes["hidden"] == hidden] if not slopes.empty else slopes
            if not slopes.empty and has_contraction(labelled[mask]):
                stem = folder / figure_stem(design, str(hidden), "contraction")
                figures += contraction_figure(labelled[mask], slopes, stem)
            long = recovery_long(usable[mask])
            if not long.empty:
                figures += nodes_figure(long, folder / figure_stem(design, str(hidden), "nodes"))
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
