"""Where the figures' numbers come from: the studies behind them, loaded or run.

Each data figure is made from one study (:data:`SOURCES`): a full-size spec for the paper
and its ``*_quick`` version for CI. :func:`obtain` returns the study's consolidated results
table (:mod:`simulations.store`) from ``<results>/<study name>`` (the folder ``ssbnn
simulate`` uses by default under ``./ssbnn-results``):

* size ``quick``: runs the quick study's unfinished cells (none when it is stored: the
  study layer resumes), then loads it;
* size ``full`` with ``run=True``: the same with the full study (hours to days on a CPU);
* size ``full`` with ``run=False`` (``python -m paper_figures`` without ``--run-full``):
  loads the full study's finished cells when there are any, else the committed reference
  results of the study when it has them (``paper_figures/reference/``: a consolidated
  table and the spec that made it, ``paper_figures/reference/README.md``), else falls
  back to the quick study (run when missing), and says so in :attr:`StudyResults.note`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from paper_figures.size import Size
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "REPO",
    "SOURCES",
    "SPECS",
    "StudyResults",
    "StudySource",
    "default_output",
    "default_results_root",
    "obtain",
    "prior_families",
    "prior_name",
]

REPO = Path(__file__).resolve().parent.parent
"""The repository checkout holding ``paper_figures`` and ``studies/``."""

SPECS = Path(__file__).resolve().parent / "studies"
"""The study specs made for the figures (``paper_figures/studies/*.toml``)."""

REFERENCE = Path(__file__).resolve().parent / "reference"
"""Committed reference results: ``<name>.toml`` (the spec) and ``<name>.csv`` (its table)."""


@dataclass(frozen=True)
class StudySource:
    """A study behind some figures: its full and quick specs.

    Attributes
    ----------
    key
        Name used by the figures and on the command line (``--spec KEY=PATH``).
    full, quick
        The two spec files.
    purpose
        One line: what the study is for.
    reference
        Name of the committed reference results in :data:`REFERENCE` that stand in for
        the full study when it is not stored (``None``: there are none).
    """

    key: str
    full: Path
    quick: Path
    purpose: str
    reference: str | None = None

    def spec_path(self, size: Size | str) -> Path:
        """The spec file of ``size``."""
        return self.quick if Size(size) is Size.QUICK else self.full


SOURCES: dict[str, StudySource] = {
    source.key: source
    for source in (
        StudySource(
            "contraction",
            REPO / "studies" / "relu_teacher.toml",
            REPO / "studies" / "relu_teacher_quick.toml",
            "empirical contraction against the theory's eps_n^2 (relu_teacher)",
            "relu_teacher_p100",
        ),
        StudySource(
            "recovery",
            SPECS / "node_recovery.toml",
            SPECS / "node_recovery_quick.toml",
            "node and input recovery, SS-IG/SS-GL/SS-GHS/edge-ss (relu_teacher)",
            "relu_teacher",
        ),
        StudySource(
            "compression_bai",
            SPECS / "compression_bai_sparse_function.toml",
            SPECS / "compression_bai_sparse_function_quick.toml",
            "test error, node density and latency, every prior (bai_sparse_function)",
        ),
        StudySource(
            "compression_sun",
            SPECS / "compression_sun_regression.toml",
            SPECS / "compression_sun_regression_quick.toml",
            "test error, node density and latency, every prior (sun_regression)",
        ),
        StudySource(
            "classification",
            SPECS / "compression_sun_classification.toml",
            SPECS / "compression_sun_classification_quick.toml",
            "accuracy, node density and latency, every prior (sun_classification)",
        ),
    )
}
"""The studies behind the data figures, by key."""


def prior_name(family: object) -> str:
    """Display name of a prior family (``ss-gl`` -> ``SS-GL``, ``edge-ss`` -> ``edge SS``).

    The figures name a prior by its family alone: hyperparameters (an input spike) are not
    named. ``family`` is a results table's ``prior_family`` value or a ``Prior``
    (:func:`ssbnn_theory.style.prior_name`).
    """
    from ssbnn_theory import style

    return style.prior_name(family)


def prior_families(table: pd.DataFrame) -> dict[str, str]:
    """``{prior label: prior family}`` of a results table, in the study's order.

    From the ``prior_family`` column (:func:`simulations.schema.with_derived_columns` adds it
    to tables written before it existed).
    """
    from simulations.schema import with_derived_columns

    table = with_derived_columns(table)
    return dict(zip(table["prior"].astype(str), table["prior_family"].astype(str), strict=True))


def default_results_root() -> Path:
    """``$SSBNN_RESULTS`` if set, else ``<repository>/ssbnn-results``."""
    env = os.environ.get("SSBNN_RESULTS", "").strip()
    return Path(env) if env else REPO / "ssbnn-results"


def default_output() -> Path:
    """``$SSBNN_FIGURES`` if set, else ``<repository>/paper_figures/output`` (git-ignored)."""
    env = os.environ.get("SSBNN_FIGURES", "").strip()
    return Path(env) if env else REPO / "paper_figures" / "output"


@dataclass(frozen=True)
class StudyResults:
    """A study's results as the figures use them.

    Attributes
    ----------
    key
        The :data:`SOURCES` key (or the key given with an own spec).
    spec
        The validated study (:class:`simulations.spec.StudySpec`).
    spec_path
        Its file.
    size
        The size actually used (``quick`` after a fallback).
    folder
        The study's output folder.
    table
        One row per finished cell and replicate (:meth:`simulations.store.ResultStore.load_table`).
    cells_done, cells_total
        Finished cells and cells of the study.
    failed
        The cells that failed in this call: label and one-line error.
    note
        How the results were obtained, in words (for the figure index).
    """

    key: str
    spec: Any
    spec_path: Path
    size: Size
    folder: Path
    table: pd.DataFrame
    cells_done: int
    cells_total: int
    failed: tuple[str, ...]
    note: str

    @property
    def command(self) -> str:
        """The ``ssbnn simulate`` command that (re)runs this study into its folder; for the
        committed reference results, into a folder ``DIR`` of the user's and then the
        consolidated table (the committed folder holds the table, not the cells)."""
        spec = _shown(self.spec_path)
        if self.folder == REFERENCE:
            table = _shown(self.spec_path.with_suffix(".csv"))
            return f"ssbnn simulate {spec} --out DIR && ssbnn results DIR --csv {table}"
        return f"ssbnn simulate {spec} --out {_shown(self.folder)}"


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path.resolve())


def reference_results(key: str) -> StudyResults:
    """The committed reference results standing in for study ``key`` (module docstring)."""
    from simulations.schema import with_derived_columns
    from simulations.spec import load_spec
    from simulations.study import expand

    name = SOURCES[key].reference
    spec_path = REFERENCE / f"{name}.toml"
    study = load_spec(spec_path)
    table = pd.read_csv(REFERENCE / f"{name}.csv")
    for column in table.columns:
        if table[column].map(lambda v: isinstance(v, str) and v.startswith("[")).all():
            table[column] = table[column].map(json.loads)  # list columns are JSON text
    table = with_derived_columns(table, study.priors)  # the CSV predates these columns
    return StudyResults(
        key=key,
        spec=study,
        spec_path=spec_path.resolve(),
        size=Size.FULL,
        folder=REFERENCE,
        table=table,
        cells_done=table["cell_id"].nunique(),
        cells_total=len(expand(study)),
        failed=(),
        note=f"committed reference results ({_shown(REFERENCE / name)}.csv, "
        "paper_figures/reference/README.md)",
    )


def _done_cells(folder: Path) -> int:
    from simulations.store import ResultStore

    if not (folder / "manifest.json").is_file():
        return 0
    manifest = ResultStore(folder).manifest()
    return sum(1 for entry in manifest["cells"].values() if entry["status"] == "done")


def obtain(
    key: str,
    size: Size | str,
    *,
    results: str | Path | None = None,
    run: bool = True,
    spec: str | Path | None = None,
    quiet: bool = True,
) -> StudyResults:
    """The results of study ``key`` at ``size``, running what is missing (module docstring).

    Parameters
    ----------
    key
        A key of :data:`SOURCES`.
    size
        :class:`~paper_figures.size.Size` or its value.
    results
        Parent folder of the studies' output folders (default :func:`default_results_root`).
    run
        Full size only: run the full study's unfinished cells (else load what is stored,
        falling back to the quick study when nothing is).
    spec
        Use this spec file instead of the source's (a study of the same kind); its missing
        cells are always run, whatever ``size`` and ``run`` say.
    quiet
        No progress bars.

    Raises
    ------
    InvalidParameterError
        ``key`` unknown, ``size`` invalid, or the study has no finished cell after running.
    """
    from simulations.schema import with_derived_columns
    from simulations.spec import load_spec
    from simulations.store import ResultStore
    from simulations.study import expand, run_study
    from ssbnn_theory.enums import parse_enum

    if key not in SOURCES:
        raise InvalidParameterError("study", "one of " + ", ".join(SOURCES), key)
    size = parse_enum(Size, size, "size")
    root = Path(results) if results is not None else default_results_root()
    path = Path(spec) if spec is not None else SOURCES[key].spec_path(size)
    study = load_spec(path)
    folder = root / study.name
    cells = {cell.cell_id: cell.label for cell in expand(study)}
    total = len(cells)
    failed: tuple[str, ...] = ()
    if size is Size.QUICK or run or spec is not None:
        before = _done_cells(folder)
        with warnings.catch_warnings():
            if quiet:  # no bars are drawn: tqdm's "IProgress not found" (Jupyter) is moot
                warnings.filterwarnings("ignore", message="IProgress not found")
            summary = run_study(study, folder, quiet=quiet)
        failed = tuple(f"{cells[f.key]}: {f.error}" for f in summary.failed)
        ran = summary.completed
        kind = "given" if spec is not None else size.value
        note = f"{kind} study, {ran} of {total} cells run now, {before} stored before"
    else:
        stored = _done_cells(folder)
        reference = SOURCES[key].reference
        if stored == 0 and reference is not None and (REFERENCE / f"{reference}.csv").is_file():
            return reference_results(key)
        if stored == 0:
            fallback = obtain(key, Size.QUICK, results=root, run=True, quiet=quiet)
            note = f"no stored full results in {_shown(folder)}: {fallback.note}"
            return dataclasses.replace(fallback, note=note)
        note = f"full study, stored results ({stored} of {total} cells)"
    table = with_derived_columns(ResultStore(folder).load_table(), study.priors)
    if table.empty:
        raise InvalidParameterError(
            "results", f"a study with at least one finished cell in {folder}", "none finished"
        )
    return StudyResults(
        key=key,
        spec=study,
        spec_path=path.resolve(),
        size=size,
        folder=folder,
        table=table,
        cells_done=table["cell_id"].nunique(),
        cells_total=total,
        failed=failed,
        note=note,
    )
