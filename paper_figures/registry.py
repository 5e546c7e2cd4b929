"""Every figure of the paper: what it shows, where its numbers come from, how to make it.

:data:`FIGURES` lists the figures in paper order. :func:`build` makes them (or some) into
one folder, each as PNG and PDF, and writes the Markdown index ``index.md`` there: for each
figure its files, what it shows, the notebook that explains it, the command that made it,
and the study behind it (spec, results folder, cells, the ``ssbnn simulate`` command).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from paper_figures import compression, contraction, recovery, theory
from paper_figures.refit import latency_table
from paper_figures.results import REPO, SOURCES, StudyResults, obtain
from paper_figures.size import Size
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "FIGURES",
    "INDEX",
    "BuildResult",
    "Context",
    "FigureSpec",
    "build",
    "describe",
    "select",
    "write_index",
]

INDEX = "index.md"
"""File name of the Markdown index in the output folder."""

_SUFFIXES = (".png", ".pdf")


@dataclass
class Context:
    """What a figure needs: the size, the folders, and the studies loaded once.

    Attributes
    ----------
    out
        Output folder of the figures.
    size
        :class:`~paper_figures.size.Size`.
    results
        Parent folder of the studies' output folders.
    run_full
        Full size: run the full studies' missing cells (else load what is stored).
    specs
        Spec files replacing a study source's, by key (``--spec KEY=PATH``).
    quiet
        No progress bars while studies run.
    """

    out: Path
    size: Size
    results: Path
    run_full: bool = False
    specs: Mapping[str, Path] = field(default_factory=dict)
    quiet: bool = True
    _studies: dict[str, StudyResults] = field(default_factory=dict, repr=False)
    _latency: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def study(self, key: str) -> StudyResults:
        """The results of study ``key`` (:func:`paper_figures.results.obtain`), loaded once."""
        if key not in self._studies:
            self._studies[key] = obtain(
                key,
                self.size,
                results=self.results,
                run=self.run_full,
                spec=self.specs.get(key),
                quiet=self.quiet,
            )
        return self._studies[key]

    def latency(self, key: str) -> pd.DataFrame:
        """Latencies of study ``key``'s compacted networks (:func:`latency_table`), once."""
        if key not in self._latency:
            results = self.study(key)
            options = compression.latency_options(results.size)
            self._latency[key] = latency_table(results, **dataclasses.asdict(options))
        return self._latency[key]


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the paper.

    Attributes
    ----------
    name
        File stem (a figure may write several files that start with it).
    title
        Short title.
    shows
        What the figure shows, in a few sentences.
    notebook
        The notebook that explains it (``notebooks/<file>``).
    study
        Key of the study behind it (:data:`paper_figures.results.SOURCES`), or ``None``.
    function
        The function that draws it (for the index).
    make
        ``make(context) -> list of paths`` (PNG and PDF).
    details
        ``details(context) -> Markdown`` shown under the figure in the index (the numbers it
        shows), or ``None``.
    """

    name: str
    title: str
    shows: str
    notebook: str
    study: str | None
    function: str
    make: Callable[[Context], list[Path]]
    details: Callable[[Context], str] | None = None


def _contraction(ctx: Context) -> list[Path]:
    return contraction.contraction_figures(ctx.study("contraction").table, ctx.out)


def _slopes(ctx: Context) -> str:
    from simulations.report import format_markdown

    summary = contraction.slope_summary(ctx.study("contraction").table)
    if summary.empty:
        return "(fewer than two n values: no slopes)"
    return (
        "Fitted log-log slopes with 95% replicate-bootstrap intervals, beside the theory's "
        "slope of eps_n^2 over the same grid and its local slope at the grid's ends:\n\n"
        + format_markdown(summary)
    )


def _trajectories(ctx: Context) -> list[Path]:
    refits = recovery.trajectories(ctx.study("recovery"))
    return recovery.trajectories_figure(refits, ctx.out)


def _tradeoff(key: str, stem: str) -> Callable[[Context], list[Path]]:
    def make(ctx: Context) -> list[Path]:
        results = ctx.study(key)
        return compression.tradeoff_figure(
            results.table,
            ctx.latency(key),
            ctx.out,
            stem=stem,
            noise_sd=results.spec.design.noise_sd,
            outputs=results.spec.design.outputs,
        )

    return make


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "rate_bounds",
        "The contraction rate against n, s_l, k_l and B_l",
        "eps_n^2 of ssbnn_theory for SS-IG, SS-GL and SS-GHS on the relu_teacher truth "
        "(p = 100, hidden 16-16, active 4-3, B = 1.5): against n with the local slope, and at "
        "n = 10^4 against the active nodes s_l, the widths k_l and the hidden layers' bound B_l.",
        "01_rate_bounds.py",
        None,
        "paper_figures.theory.rate_figure",
        lambda ctx: theory.rate_figure(ctx.out),
    ),
    FigureSpec(
        "rate_terms",
        "Which term of the rate dominates each layer",
        "The parts of n r_n at n = 10^4 per layer and prior: selection, slab resolution "
        "s_l r_l log(1/delta_n) and slab magnitude, on a log scale, the largest starred.",
        "01_rate_bounds.py",
        None,
        "paper_figures.theory.terms_figure",
        lambda ctx: theory.terms_figure(ctx.out),
    ),
    FigureSpec(
        "rate_node_edge",
        "Node against edge sparsity",
        "eps_n^2 of one truth as a node-sparse network (full and active fan-in), as an "
        "edge-sparse network (Bai, Song & Cheng 2020) and without sparsity, against n and "
        "against the hidden width.",
        "01_rate_bounds.py",
        None,
        "paper_figures.theory.node_edge_figure",
        lambda ctx: theory.node_edge_figure(ctx.out),
    ),
    FigureSpec(
        "weight_bound",
        "The slab small-ball bound against the weight bound",
        "Lemma L2's phi(delta, B) for one group of 10 weights: quadratic growth in B for the "
        "Gaussian slab, linear for the group lasso, logarithmic for the horseshoe, quadratic "
        "again beyond the slab width c of the regularised horseshoe.",
        "01_rate_bounds.py",
        None,
        "paper_figures.theory.weight_bound_figure",
        lambda ctx: theory.weight_bound_figure(ctx.out),
    ),
    FigureSpec(
        "contraction",
        "Empirical contraction against theory",
        "E_q d_H^2 and E_q ||f - f0||^2 against n (log-log) on relu_teacher, one figure per "
        "student: replicates as points, means with the 10-90% band, the theory's C eps_n^2 "
        "with one fitted constant, and the fitted slopes with 95% bootstrap intervals.",
        "02_contraction.py",
        "contraction",
        "paper_figures.contraction.contraction_figures",
        _contraction,
        _slopes,
    ),
    FigureSpec(
        "recovery_nodes",
        "Kept nodes against the truth",
        "Kept nodes per hidden layer (inclusion probability > 1/2) against n for SS-IG, SS-GL, "
        "SS-GHS and the edge spike-and-slab on relu_teacher, with the true active nodes.",
        "03_node_recovery.py",
        "recovery",
        "paper_figures.recovery.nodes_figure",
        lambda ctx: recovery.nodes_figure(ctx.study("recovery").table, ctx.out),
    ),
    FigureSpec(
        "recovery_trajectories",
        "Inclusion probabilities during training",
        "Each node's inclusion probability during training (replicate 0) at the largest n, "
        "per prior and hidden layer, and the number of nodes above 1/2 against the truth.",
        "03_node_recovery.py",
        "recovery",
        "paper_figures.recovery.trajectories_figure",
        _trajectories,
    ),
    FigureSpec(
        "recovery_inputs",
        "Input selection",
        "Input false-negative and false-positive rates against n per prior (node priors with "
        "a spike on the inputs; the edge prior selects inputs through its weights).",
        "03_node_recovery.py",
        "recovery",
        "paper_figures.recovery.inputs_figure",
        lambda ctx: recovery.inputs_figure(ctx.study("recovery").table, ctx.out),
    ),
    FigureSpec(
        "compression_bai_sparse_function",
        "Test error, node density and latency: bai_sparse_function",
        "Test RMSE against node density and against the latency of the compacted network, "
        "every prior and baseline, bai_sparse_function.",
        "04_compression_latency.py",
        "compression_bai",
        "paper_figures.compression.tradeoff_figure",
        _tradeoff("compression_bai", "compression_bai_sparse_function"),
    ),
    FigureSpec(
        "compression_sun_regression",
        "Test error, node density and latency: sun_regression",
        "Test RMSE against node density and against the latency of the compacted network, "
        "every prior and baseline, sun_regression.",
        "04_compression_latency.py",
        "compression_sun",
        "paper_figures.compression.tradeoff_figure",
        _tradeoff("compression_sun", "compression_sun_regression"),
    ),
    FigureSpec(
        "accuracy_sun_classification",
        "Accuracy, node density and latency: sun_classification",
        "Test accuracy against node density and against the latency of the compacted "
        "network, every prior and baseline, sun_classification.",
        "04_compression_latency.py",
        "classification",
        "paper_figures.compression.tradeoff_figure",
        _tradeoff("classification", "accuracy_sun_classification"),
    ),
)
"""The paper's figures in order."""


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build` made.

    Attributes
    ----------
    index
        Path of ``index.md``.
    files
        Per figure name, the files written.
    errors
        Per figure name that failed, the one-line error.
    studies
        The studies used, by key.
    """

    index: Path
    files: dict[str, list[Path]]
    errors: dict[str, str]
    studies: dict[str, StudyResults]

    @property
    def ok(self) -> bool:
        """Every figure was made and no study cell failed."""
        return not self.errors and not any(s.failed for s in self.studies.values())


def select(
    names: Sequence[str] | None, figures: Sequence[FigureSpec] = FIGURES
) -> tuple[FigureSpec, ...]:
    """The ``figures`` named (all when ``names`` is empty or ``None``), in their order.

    Raises
    ------
    InvalidParameterError
        ``only`` names a figure that does not exist.
    """
    if not names:
        return tuple(figures)
    known = {f.name for f in figures}
    for name in names:
        if name not in known:
            raise InvalidParameterError("only", "figure names: " + ", ".join(sorted(known)), name)
    return tuple(f for f in figures if f.name in names)


def build(
    ctx: Context,
    names: Sequence[str] | None = None,
    *,
    figures: Sequence[FigureSpec] = FIGURES,
    log: Callable[[str], None] | None = None,
) -> BuildResult:
    """Make the ``figures`` named ``names`` (default all) into ``ctx.out``; write the index.

    A figure that raises is reported in :attr:`BuildResult.errors` and in the index; the
    others are still made. Unknown figure names and spec files that do not load raise
    :class:`InvalidParameterError` before anything is made.
    With ``names``, the index still lists every figure of :data:`FIGURES`, those not made
    now with the files an earlier run left in ``ctx.out``.
    """
    figures = select(names, figures)
    from simulations.spec import load_spec

    for key, path in ctx.specs.items():
        if key not in SOURCES:
            raise InvalidParameterError("spec", "a study key: " + ", ".join(SOURCES), key)
        load_spec(path)
    ctx.out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {}
    errors: dict[str, str] = {}
    details: dict[str, str] = {}
    for figure in figures:
        started = time.perf_counter()
        try:
            files[figure.name] = figure.make(ctx)
            if figure.details is not None:
                details[figure.name] = figure.details(ctx)
        except Exception as exc:  # a figure's failure must not stop the others
            errors[figure.name] = f"{type(exc).__name__}: {exc}"
        if log is not None:
            status = "failed: " + errors[figure.name] if figure.name in errors else "done"
            log(f"{figure.name}: {status} ({time.perf_counter() - started:.1f} s)")
    index = write_index(ctx, FIGURES if names else figures, files, errors, details)
    return BuildResult(index, files, errors, dict(ctx._studies))


def _rel(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def _command(ctx: Context, name: str) -> str:
    parts = ["python -m paper_figures", f"--only {name}"]
    parts.append("--quick" if ctx.size is Size.QUICK else "--full")
    if ctx.run_full:
        parts.append("--run-full")
    parts += [f"--spec {key}={_rel(path, REPO)}" for key, path in ctx.specs.items()]
    return " ".join(parts)


def write_index(
    ctx: Context,
    figures: Sequence[FigureSpec],
    files: Mapping[str, list[Path]],
    errors: Mapping[str, str],
    details: Mapping[str, str] | None = None,
) -> Path:
    """Write ``ctx.out/index.md``: one section per figure (module docstring)."""
    from simulations._io import git_commit

    commit = git_commit(REPO) or "unknown"
    lines = [
        "# ssbnn paper figures",
        "",
        f"Made by `python -m paper_figures` ({ctx.size.value} size) on "
        f"{datetime.now(UTC).isoformat(timespec='seconds')} at commit {commit}. "
        "Every figure is a PNG and a PDF in this folder; the notebooks in `notebooks/` "
        "explain them.",
        "",
    ]
    for figure in figures:
        lines += [f"## {figure.name}: {figure.title}", ""]
        made = files.get(figure.name, [])
        earlier = figure.name not in files and figure.name not in errors
        if earlier:  # not made in this run (--only): list the files an earlier run left
            made = sorted(p for p in ctx.out.glob(f"{figure.name}*") if p.suffix in _SUFFIXES)
        for png in (p for p in made if p.suffix == ".png"):
            lines += [f"![{png.stem}]({_rel(png, ctx.out)})", ""]
        lines += [f"**Shows.** {figure.shows}", ""]
        if details and figure.name in details:
            lines += [details[figure.name], ""]
        if figure.name in errors:
            lines += [f"**Not made:** `{errors[figure.name]}`", ""]
        if earlier:
            lines += ["- Not remade in this run" + (": files of an earlier run" if made else "")]
        if made:
            listed = ", ".join(f"`{_rel(p, ctx.out)}`" for p in made)
            lines += [f"- Files: {listed}"]
        lines += [
            f"- Command: `{_command(ctx, figure.name)}` (function `{figure.function}`)",
            f"- Notebook: `notebooks/{figure.notebook}`",
        ]
        if figure.study is None:
            lines += ["- Study: none (theory only: `ssbnn_theory`)"]
        elif figure.study in ctx._studies:
            study = ctx._studies[figure.study]
            lines += [
                f"- Study: `{study.spec.name}` ({SOURCES[figure.study].purpose}); spec "
                f"`{_rel(study.spec_path, REPO)}`; results `{_rel(study.folder, REPO)}`; "
                f"{study.cells_done} of {study.cells_total} cells; {study.note}",
                f"- Run the study: `{study.command}`",
            ]
            if study.failed:
                lines += [f"- Failed cells: {'; '.join(study.failed)}"]
        else:
            spec = SOURCES[figure.study].spec_path(ctx.size)
            lines += [f"- Study: `{_rel(spec, REPO)}` (not loaded in this run)"]
        lines.append("")
    path = ctx.out / INDEX
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def describe() -> list[dict[str, Any]]:
    """The figure list as plain rows (``python -m paper_figures --list``)."""
    return [
        {"name": f.name, "notebook": f.notebook, "study": f.study or "-", "title": f.title}
        for f in FIGURES
    ]
