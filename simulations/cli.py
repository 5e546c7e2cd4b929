"""The ``ssbnn`` command: ``rate``, ``simulate``, ``results``, ``report`` and ``demo``.

Exit status: 0 on success; 1 when a study ran but some cells failed; 2 on bad
input (a spec error, a bad flag, a folder that is not a study's output), with
one line on stderr that names the field or key and what is allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ssbnn_theory import __version__
from ssbnn_theory.cli import ArgumentParser, add_rate_command
from ssbnn_theory.errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["build_parser", "main"]

_DEFAULT_ROOT = Path("ssbnn-results")
"""Parent of the default output folders (``./ssbnn-results/<study name>``)."""

_PRINTED_COLUMNS = (
    "design",
    "prior",
    "hidden",
    "n",
    "replicate",
    "kept_nodes",
    "true_nodes",
    "dH2_mean",
    "l2_risk_mean",
    "l2_risk_of_mean",
    "rmse_test",
    "node_density",
    "eps_n",
    "wall_s",
)
"""Columns ``ssbnn results`` prints (the exported files hold every column)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})")
    return value


def build_parser() -> ArgumentParser:
    """The ``ssbnn`` argument parser with its five subcommands."""
    parser = ArgumentParser(
        prog="ssbnn",
        description=(
            "Node-sparse Bayesian neural networks: contraction-rate bounds (rate) and "
            "simulation studies (simulate, results, report, demo)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"ssbnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_rate_command(commands)

    simulate = commands.add_parser(
        "simulate",
        help="run (or resume) a simulation study described by a TOML spec",
        description=(
            "Run a study: every cell (design x prior x architecture x n) trains its "
            "replicates as one batched model and is stored as it finishes. Rerunning "
            "skips finished cells. Spec keys: docs/studies.md."
        ),
    )
    simulate.add_argument("spec", metavar="SPEC", help="the study file (TOML)")
    where = simulate.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="run cells in a local pool of N processes (default: in this process)",
    )
    where.add_argument(
        "--dask",
        action="store_true",
        help="run cells on a local Dask cluster with one single-threaded worker per CPU",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run cells on the running Dask cluster at ADDRESS (e.g. tcp://host:8786; "
        "for SLURM start one with dask-jobqueue, see docs/studies.md)",
    )
    simulate.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="torch device the cells train on (default: cpu)",
    )
    simulate.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: the spec's [study] output, else ./ssbnn-results/NAME)",
    )
    simulate.add_argument(
        "--quiet", action="store_true", help="no progress bars; print failures and a summary"
    )
    simulate.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first failed cell (default: run the others and report failures)",
    )
    simulate.set_defaults(run=_simulate)

    results = commands.add_parser(
        "results",
        help="print and export the consolidated results table of a study",
        description="Print the main columns of a study's results; export every column.",
    )
    results.add_argument("dir", metavar="DIR", help="the study's output folder")
    results.add_argument("--csv", metavar="FILE", help="write the full table as CSV")
    results.add_argument("--parquet", metavar="FILE", help="write the full table as Parquet")
    results.set_defaults(run=_results)

    report = commands.add_parser(
        "report",
        help="write a study's summary tables and figures to DIR/report/",
        description=(
            "Per design, prior and n: metric means with their spread over replicates; "
            "log-log slopes of E_q d_H^2 and E_q ||f - f0||^2 against n with bootstrap "
            "intervals beside the slope of eps_n^2; node recovery per layer. Writes "
            "DIR/report/summary.md and figures (PNG and PDF)."
        ),
    )
    report.add_argument("dir", metavar="DIR", help="the study's output folder")
    report.set_defaults(run=_report)

    demo = commands.add_parser(
        "demo",
        help="run the built-in contraction study and print empirical contraction beside theory",
        description=(
            "A small relu_teacher contraction study (SS-GL and SS-GHS, five values of n, "
            "4 replicates; a few minutes on 2 CPU cores): prints the contraction table, "
            "fitted slopes and node recovery, and writes results and figures."
        ),
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: ./ssbnn-results/demo, or demo-quick with --quick)",
    )
    demo.add_argument(
        "--quick", action="store_true", help="a tiny version that runs in seconds (for tests)"
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ssbnn``; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except InvalidParameterError as exc:
        print(f"ssbnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ssbnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# --------------------------------------------------------------------------- commands


def _simulate(args: argparse.Namespace) -> int:
    from simulations.execution import Execution
    from simulations.spec import load_spec
    from simulations.study import run_study

    spec = load_spec(args.spec)
    if args.workers is not None:
        execution = Execution("pool", workers=args.workers, fail_fast=args.fail_fast)
    elif args.dask or args.scheduler:
        execution = Execution("dask", scheduler=args.scheduler, fail_fast=args.fail_fast)
    else:
        execution = Execution(fail_fast=args.fail_fast)
    out = Path(args.out) if args.out else spec.output or _DEFAULT_ROOT / spec.name
    summary = run_study(spec, out, execution=execution, device=args.device, quiet=args.quiet)
    print(summary.line())
    return 0 if summary.ok else 1


def _results(args: argparse.Namespace) -> int:
    import pandas as pd

    from simulations.store import ResultStore

    table = ResultStore(args.dir).load_table()
    if table.empty:
        raise InvalidParameterError(
            "DIR", "a study folder with at least one finished cell", args.dir
        )
    for flag, path, write in (
        ("--csv", args.csv, lambda p: _for_csv(table).to_csv(p, index=False)),
        ("--parquet", args.parquet, lambda p: table.to_parquet(p, index=False)),
    ):
        if path:
            try:
                write(path)
            except OSError as exc:
                raise InvalidParameterError(
                    flag, f"a writable file ({exc.strerror})", path
                ) from None
    shown = table[[c for c in _PRINTED_COLUMNS if c in table]]
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.precision", 4):
        print(_for_csv(shown).to_string(index=False))
    return 0


def _for_csv(table: pd.DataFrame) -> pd.DataFrame:
    """List-valued columns (``hidden``, ``kept_nodes``, ...) as JSON text, ``[16, 8]``."""
    import numpy as np

    def is_list(value: object) -> bool:
        return isinstance(value, list | np.ndarray)

    out = table.copy()
    for column in out.columns:
        if out[column].map(is_list).any():
            out[column] = out[column].map(
                lambda v: json.dumps(np.asarray(v).tolist()) if is_list(v) else v
            )
    return out


def _report(args: argparse.Namespace) -> int:
    from simulations.report import write_report

    report = write_report(args.dir)
    print(report.text)
    print(f"\nwrote {report.summary} and {len(report.figures)} figures in {report.summary.parent}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from simulations.demo import run_demo

    out = Path(args.out) if args.out else _DEFAULT_ROOT / ("demo-quick" if args.quick else "demo")
    return run_demo(out, quick=args.quick)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
