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

The modules: :mod:`~simulations.report.statistics` (slopes, bootstrap, the overlay's
constant), :mod:`~simulations.report.tables` (the DataFrames),
:mod:`~simulations.report.figures` and :mod:`~simulations.report.writing` (Markdown and
files); this package re-exports their public names.

Failed replicates (``status == "failed"``: a diverged fit, NaN metrics) are
counted but left out of every mean, slope and recovery share; replicates that
reached ``max_steps`` without converging are kept and their cells marked (in the tables'
``not converged`` column; in the figures by a ring around the cell's mean, with the
training budget in the title, :func:`training_note`). Cells fitted with
``screen_inputs`` get a ``screened`` count (the replicates whose fit is a screened one).
"""

from simulations.report.figures import capped_cells, contraction_figure, nodes_figure, training_note
from simulations.report.statistics import Slope, loglog_slope, theory_constant
from simulations.report.tables import (
    GROUP,
    build_report,
    has_contraction,
    hidden_label,
    recovery_long,
    recovery_table,
    replicate_notes,
    slope_table,
    summary_table,
    with_labels,
)
from simulations.report.writing import (
    Report,
    contraction_markdown,
    format_markdown,
    recovery_markdown,
    report_markdown,
    slopes_markdown,
    structure_markdown,
    write_report,
)
from simulations.schema import CONTRACTION, SUMMARY_METRICS

__all__ = [
    "CONTRACTION",
    "GROUP",
    "SUMMARY_METRICS",
    "Report",
    "Slope",
    "build_report",
    "capped_cells",
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
    "training_note",
    "with_labels",
    "write_report",
]
