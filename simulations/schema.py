"""The results schema: every column of a study's results table, in one table.

A study's results are one row per cell and replicate (:func:`simulations.study.run_cell`,
stored by :mod:`simulations.store`). :data:`COLUMNS` lists every column a row can have with
its type, its role and its label; the runner, the store, ``ssbnn results``, the report, the
demo and ``paper_figures`` all read their column lists from here:

* role ``identity``: what the row is (design, prior, student, ``n``, replicate, seeds);
* role ``result``: what the cell measured (metrics, the theory's radius, training outcome);
* role ``run``: how the run went (wall times, machine, versions); these may differ between
  two runs of the same cell, every other column may not.

The prior and the student have their own columns beside their labels: ``prior_family``
(``ss-gl``), ``prior_options`` (the prior's hyperparameters as JSON, ``{}`` for none) and
``student`` (``16x16-relu``). Tables written before those columns existed get them from
:func:`with_derived_columns`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd

from simulations.enums import Prior

__all__ = [
    "COLUMNS",
    "CONTRACTION",
    "PRINTED_COLUMNS",
    "RESULT_COLUMNS",
    "RUN_COLUMNS",
    "STRUCTURE_METRICS",
    "SUMMARY_METRICS",
    "Column",
    "Role",
    "column",
    "label",
    "slope_labels",
    "with_derived_columns",
]


class Role(StrEnum):
    """What a column says: which row it is, what the cell measured, or how the run went."""

    IDENTITY = "identity"
    RESULT = "result"
    RUN = "run"


@dataclass(frozen=True)
class Column:
    """One column of the results table.

    Attributes
    ----------
    name
        The column's name.
    dtype
        Its values: ``str``, ``int``, ``float``, ``bool``, ``list[int]`` or ``json`` (text).
    role
        :class:`Role`.
    label
        Its name in reports and figures (plain text).
    always
        Every row has it (NaN or ``None`` where it does not apply); these come first, in
        this table's order (:data:`RESULT_COLUMNS`).
    printed
        ``ssbnn results`` prints it.
    summary
        Its place (1, 2, ...) among the metrics the report summarises by mean and spread
        over replicates; ``None``: not summarised.
    structure
        Its place among the columns of the report's "structure and prediction" table.
    axis
        Its axis label in figures (TeX), where it is plotted against ``n``.
    """

    name: str
    dtype: str
    role: Role
    label: str
    always: bool = False
    printed: bool = False
    summary: int | None = None
    structure: int | None = None
    axis: str | None = None


_I, _R, _U = Role.IDENTITY, Role.RESULT, Role.RUN

COLUMNS: tuple[Column, ...] = (
    # every row has these, in this order
    Column("design", "str", _I, "design", always=True, printed=True),
    Column("prior", "str", _I, "prior", always=True, printed=True),
    Column("prior_family", "str", _I, "prior family", always=True),
    Column("prior_options", "json", _I, "prior options", always=True),
    Column("hidden", "list[int]", _I, "hidden", always=True, printed=True),
    Column("student", "str", _I, "student", always=True),
    Column("n", "int", _I, "n", always=True, printed=True),
    Column("replicate", "int", _I, "replicate", always=True, printed=True),
    Column("seed", "int", _I, "seed", always=True),
    Column("kept_nodes", "list[int]", _R, "kept nodes", always=True, printed=True),
    Column("true_nodes", "list[int]", _R, "true nodes", always=True, printed=True),
    Column(
        "dH2_mean",
        "float",
        _R,
        "E_q d_H^2",
        always=True,
        printed=True,
        summary=1,
        axis=r"$E_q\, d_H^2(p_\theta, p_0)$",
    ),
    Column(
        "l2_risk_mean",
        "float",
        _R,
        "E_q ‖f-f0‖^2",
        always=True,
        printed=True,
        summary=2,
        axis=r"$E_q \|f_\theta - f_0\|_2^2$",
    ),
    Column("l2_risk_of_mean", "float", _R, "‖E_q f-f0‖^2", always=True, printed=True, summary=3),
    Column(
        "rmse_test",
        "float",
        _R,
        "test RMSE",
        always=True,
        printed=True,
        summary=4,
        structure=6,
    ),
    Column("input_fnr", "float", _R, "input FNR", always=True, summary=9, structure=3),
    Column("input_fpr", "float", _R, "input FPR", always=True, summary=10, structure=4),
    Column(
        "node_density",
        "float",
        _R,
        "node density",
        always=True,
        printed=True,
        summary=7,
        structure=1,
    ),
    Column(
        "weight_density",
        "float",
        _R,
        "weight density",
        always=True,
        summary=8,
        structure=2,
    ),
    Column("flops", "int", _R, "FLOPs", always=True, summary=11, structure=5),
    Column("eps_n", "float", _R, "eps_n", always=True, printed=True),
    Column("r_n", "float", _R, "r_n", always=True),
    Column("steps", "int", _R, "steps", always=True),
    Column("wall_s", "float", _U, "wall time (s)", always=True, printed=True),
    Column("status", "str", _R, "status", always=True, printed=True),
    Column("converged", "bool", _R, "converged", always=True),
    Column("failed_step", "int", _R, "failed at step", always=True),
    Column("failure", "str", _R, "failure", always=True),
    # identity and seeds
    Column("study", "str", _I, "study"),
    Column("cell_id", "str", _I, "cell"),
    Column("design_version", "str", _I, "design version"),
    Column("activation", "str", _I, "activation"),
    Column("p", "int", _I, "p"),
    Column("data_seed", "int", _I, "data seed"),
    # metrics of simulations.metrics.evaluate (those that apply to the design)
    Column("l2_risk_mean_network", "float", _R, "‖f(E_q θ)-f0‖^2"),
    Column("dH2_mean_network", "float", _R, "d_H^2 at E_q θ"),
    Column("dH_exceeds_1eps", "float", _R, "Q(d_H > eps_n)"),
    Column("dH_exceeds_2eps", "float", _R, "Q(d_H > 2 eps_n)"),
    Column("dH_exceeds_4eps", "float", _R, "Q(d_H > 4 eps_n)"),
    Column("accuracy_test", "float", _R, "test accuracy", summary=5, structure=7),
    Column("nll_test", "float", _R, "test NLL", summary=6, structure=8),
    Column("kept_nodes_median", "list[int]", _R, "kept nodes (median model)"),
    Column("kept_inputs", "int", _R, "kept inputs"),
    Column("kept_weights", "int", _R, "kept weights"),
    Column("flops_dense", "int", _R, "FLOPs (dense)"),
    Column("flops_true", "int", _R, "FLOPs (truth)"),
    Column("eps2_local_slope", "float", _R, "d log eps_n^2 / d log n"),
    Column("final_nll", "float", _R, "final NLL"),
    Column("final_kl", "float", _R, "final KL"),
    Column("screened", "bool", _R, "screened fit"),
    # the run
    Column("replicate_steps_per_s", "float", _U, "replicate steps per second"),
    Column("peak_memory_bytes", "int", _U, "peak memory (bytes)"),
    Column("cell_wall_s", "float", _U, "cell wall time (s)"),
    Column("device", "str", _U, "device"),
    Column("ssbnn_version", "str", _U, "ssbnn version"),
    Column("torch_version", "str", _U, "torch version"),
    Column("numpy_version", "str", _U, "numpy version"),
    Column("python_version", "str", _U, "python version"),
    Column("git_commit", "str", _U, "git commit"),
)
"""Every column of a results table (module docstring)."""

_BY_NAME = {c.name: c for c in COLUMNS}


def _names(columns: Iterable[Column]) -> tuple[str, ...]:
    return tuple(c.name for c in columns)


RESULT_COLUMNS = _names(c for c in COLUMNS if c.always)
"""Columns every row has, first and in this order (NaN or ``None`` where a metric does not
apply).

``status`` is the replicate's training outcome: ``"converged"``, ``"max_steps"`` (an
``steps = "auto"`` run that hit ``max_steps`` unconverged), ``"fixed"`` (a fixed number of
steps) or ``"failed"`` (its loss or gradient became non-finite: ``failed_step`` and
``failure`` say where and why, and its metrics are NaN). ``steps`` is the steps that
replicate trained."""

RUN_COLUMNS = _names(c for c in COLUMNS if c.role is Role.RUN)
"""Columns that describe the run (cost, machine, versions), not the result: they may differ
between two runs of the same cell, every other column may not."""

PRINTED_COLUMNS = _names(
    sorted((c for c in COLUMNS if c.printed), key=lambda c: c.role is Role.RUN)
)
"""Columns ``ssbnn results`` prints, the run's last (the exported files hold every column)."""

SUMMARY_METRICS = _names(sorted((c for c in COLUMNS if c.summary), key=lambda c: c.summary))
"""Metrics the report summarises by mean and spread over replicates (those present)."""

STRUCTURE_METRICS = _names(sorted((c for c in COLUMNS if c.structure), key=lambda c: c.structure))
"""Metrics of the report's "structure and prediction" table (those present)."""

CONTRACTION = ("dH2_mean", "l2_risk_mean")
"""The contraction metrics whose log-log slopes against ``n`` the report estimates."""


def column(name: str) -> Column:
    """The :class:`Column` called ``name`` (``KeyError`` for a column outside the schema)."""
    return _BY_NAME[name]


def label(name: str) -> str:
    """The label of column ``name`` in reports and figures (the name itself if unknown)."""
    known = _BY_NAME.get(name)
    return known.label if known is not None else name


def slope_labels(metric: str) -> dict[str, str]:
    """Labels of the slope table's columns for ``metric`` (:func:`simulations.report.slope_table`).

    ``slope_<metric>``, ``<metric>_low`` and ``<metric>_high``: ``slope E_q d_H^2``,
    ``E_q d_H^2 low``, ``E_q d_H^2 high``.
    """
    text = label(metric)
    return {
        f"slope_{metric}": f"slope {text}",
        f"{metric}_low": f"{text} low",
        f"{metric}_high": f"{text} high",
    }


# --------------------------------------------------------------------------- older tables


def legacy_prior_family(prior_label: object) -> str:
    """The family of a prior label, for tables written before ``prior_family`` existed.

    The one place that reads a family from a label: a label is the family's name, alone or
    followed by its hyperparameters in brackets (``ss-ghs(global_scale=0.001)``), so the
    family is the longest registered name the label equals or starts with followed by ``(``.
    Raises ``KeyError`` when no family matches.
    """
    text = str(prior_label).strip().lower()
    for name in sorted((p.value for p in Prior), key=len, reverse=True):
        if text == name or text.startswith(name + "("):
            return name
    raise KeyError(prior_label)


def with_derived_columns(table: pd.DataFrame, priors: Iterable[object] = ()) -> pd.DataFrame:
    """``table`` with ``prior_family``, ``prior_options`` and ``student`` where it lacks them.

    Tables written before these columns existed (stored studies, the committed reference
    results) get them here: ``student`` from ``hidden`` and ``activation``; the prior's columns
    from the study's priors (``priors``: :class:`simulations.spec.StudyPrior` objects, matched
    by label) where given, else ``prior_family`` from :func:`legacy_prior_family` and
    ``prior_options`` ``None`` (unknown). A table that has them is returned as it is.
    """
    missing = [c for c in ("prior_family", "prior_options", "student") if c not in table]
    if not missing or (table.empty and "prior" not in table):
        return table
    out = table.copy()
    by_label = {getattr(p, "label", None): p for p in priors}
    labels = out["prior"].astype(str) if "prior" in out else None
    if "prior_family" not in out and labels is not None:
        out["prior_family"] = [
            by_label[x].prior.value if x in by_label else legacy_prior_family(x) for x in labels
        ]
    if "prior_options" not in out and labels is not None:
        out["prior_options"] = [
            options_json(by_label[x].options) if x in by_label else None for x in labels
        ]
    if "student" not in out and "hidden" in out:
        from simulations.spec import Student
        from ssbnn_theory.enums import Activation

        if "activation" in out:
            out["student"] = [
                Student(tuple(int(k) for k in h), Activation(a)).label
                for h, a in zip(out["hidden"], out["activation"], strict=True)
            ]
        else:  # a table without activations: the widths alone
            out["student"] = ["x".join(str(int(k)) for k in h) for h in out["hidden"]]
    return out


def options_json(options: dict[str, object]) -> str:
    """A prior's hyperparameters as the ``prior_options`` column holds them (sorted JSON)."""
    return json.dumps(options, sort_keys=True, separators=(",", ":"))
