"""``ssbnn demo``: the built-in contraction study, run and reported in one command.

The study is ``simulations/data/demo.toml`` (``demo_quick.toml`` with
``--quick``): the ``relu_teacher`` design (5 relevant of 20 inputs, active nodes
(4, 3), ``sigma_e = 0.5``), students 16-16 with SS-GL and SS-GHS, ``n`` = 2048 and
8192, 4 replicates of three starts, every fit trained until convergence. The demo
runs it (resuming if the output folder holds part of it), writes the report
(:func:`simulations.report.write_report`) and prints the empirical contraction beside
the theory's ``eps_n^2``, the fitted log-log slopes and the node recovery.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from simulations.execution import Execution
from simulations.report import (
    contraction_markdown,
    recovery_markdown,
    replicate_notes,
    slopes_markdown,
)
from simulations.spec import StudySpec, load_spec

__all__ = ["demo_execution", "demo_spec", "run_demo"]

_DATA = Path(__file__).resolve().parent / "data"
"""The package data folder holding the demo specs (``simulations/data/*.toml``)."""


def demo_spec(quick: bool = False) -> StudySpec:
    """The embedded demo study (``quick``: the tiny version)."""
    name = "demo_quick.toml" if quick else "demo.toml"
    return load_spec(_DATA / name)


def demo_execution(quick: bool) -> Execution:
    """Two or more cores: a process pool (one single-threaded worker per core, capped at the
    cells' number); the quick demo, or one core: in-process."""
    cores = os.cpu_count() or 1
    if quick or cores < 2:
        return Execution()
    cells = len(demo_spec().n) * 2
    return Execution("pool", workers=min(cores, cells))


def run_demo(out: str | Path, *, quick: bool = False, quiet: bool = False) -> int:
    """Run the demo study into ``out``, write its report and print the tables; exit status.

    Returns 0 when every cell finished, 1 otherwise (the failures are printed).
    """
    from simulations.report import write_report
    from simulations.study import run_study

    spec = demo_spec(quick)
    out = Path(out)
    summary = run_study(spec, out, execution=demo_execution(quick), quiet=quiet)
    print(summary.line(), file=sys.stderr)
    if summary.completed + summary.skipped == 0:
        return 1
    report = write_report(out)
    table, tables = report.table, report.tables["relu_teacher"]
    print(
        f"\nssbnn demo: {spec.description}\n"
        f"relu_teacher (p = {spec.design.p}, sigma_e = {spec.design.noise_sd}), "
        f"students {', '.join(s.label for s in spec.students)}, {spec.replicates} replicates\n"
    )
    notes = replicate_notes(table)  # failed replicates, and those that did not converge
    if notes:
        print("\n".join(notes) + "\n")
    print("Empirical contraction beside theory (mean ± sd over replicates; C fitted once):\n")
    print(contraction_markdown(tables["summary"]))
    if not tables["slopes"].empty:
        print("\nLog-log slopes against n (95% bootstrap intervals over replicates):\n")
        print(slopes_markdown(tables["slopes"]))
    print("\nNode recovery (kept nodes per hidden layer; true active nodes in brackets):\n")
    print(recovery_markdown(tables["recovery"]))
    print(f"\nresults: {out}   report: {report.summary}")
    for figure in report.figures:
        if figure.suffix == ".png":
            print(f"figure: {figure}")
    return 0 if summary.ok else 1
