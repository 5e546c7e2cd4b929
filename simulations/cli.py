"""The ``ssbnn`` command: ``rate``, ``simulate``, ``results``, ``report`` and ``demo``.

Exit status: 0 on success; 1 when a study ran but some cells failed, or when
``results`` / ``report`` find cell files that do not verify (one line naming
them; ``--skip-bad`` goes on without them); 2 on bad input (a spec error, a bad
flag, a folder that is not a study's output or cannot be written, a folder
locked by another ``simulate``), with one line on stderr that names the field
or key and what is allowed; 130 / 143 when ``simulate`` is stopped by SIGINT /
SIGTERM (the finished cells are kept; rerunning resumes).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})")
    return value


def _add_skip_bad(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out cell files that do not verify and say how many "
        "(default: refuse them, exit 1)",
    )


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
    simulate.add_argument(
        "--wait",
        action="store_true",
        help="if another ssbnn simulate is writing DIR, wait for it to finish "
        "(default: exit 2 naming its pid)",
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
    _add_skip_bad(results)
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
    _add_skip_bad(report)
    report.set_defaults(run=_report)

    demo = commands.add_parser(
        "demo",
        help="run the built-in contraction study and print empirical contraction beside theory",
        description=(
            "A small relu_teacher contraction study (SS-GL and SS-GHS, n = 2048 and 8192, "
            "4 replicates of 3 starts each; about 4 to 5 minutes on 2 CPU cores, more in a "
            "slow hour): prints the contraction table, fitted slopes and node recovery, and "
            "writes results and figures."
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
    from simulations.execution import Interrupted
    from simulations.store import BadCellsError, IntegrityWarning

    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = f"ssbnn {args.command}"
    plain = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):
        if issubclass(category, IntegrityWarning):
            return f"{prefix}: warning: {message}\n"
        return plain(message, category, filename, lineno, line)

    warnings.formatwarning = one_line
    try:
        return int(args.run(args))
    except InvalidParameterError as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return 2
    except BadCellsError as exc:
        print(
            f"{prefix}: error: {exc}; rerun ssbnn simulate to recompute, "
            "or pass --skip-bad to go on without them",
            file=sys.stderr,
        )
        return 1
    except Interrupted as exc:
        print(f"{prefix}: interrupted by {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        warnings.formatwarning = plain


# --------------------------------------------------------------------------- commands


def _simulate(args: argparse.Namespace) -> int:
    from simulations.execution import Execution
    from simulations.spec import load_spec
    from simulations.study import StudyInterrupted, run_study

    spec = load_spec(args.spec)
    if args.workers is not None:
        execution = Execution("pool", workers=args.workers, fail_fast=args.fail_fast)
    elif args.dask or args.scheduler:
        execution = Execution("dask", scheduler=args.scheduler, fail_fast=args.fail_fast)
    else:
        execution = Execution(fail_fast=args.fail_fast)
    out = Path(args.out) if args.out else spec.output or _DEFAULT_ROOT / spec.name
    try:
        summary = run_study(
            spec, out, execution=execution, device=args.device, quiet=args.quiet, wait=args.wait
        )
    except StudyInterrupted as exc:
        done = exc.summary
        kept = done.skipped + done.completed
        command = shlex.join(["ssbnn", "simulate", str(args.spec), "--out", str(out)])
        print(
            f"ssbnn simulate: interrupted by {exc}: kept {kept} of {done.total} cells "
            f"({done.completed} finished now, {done.skipped} before; {done.cancelled} not "
            f"finished) in {out}; resume with: {command}",
            file=sys.stderr,
        )
        return exc.exit_status
    print(summary.line())
    return 0 if summary.ok else 1


def _export_path(flag: str, path: str | None) -> Path | None:
    """Check an export file name before the table is built (one line and exit 2 if bad)."""
    if path is None:
        return None
    if not path.strip():
        raise InvalidParameterError(flag, "a file name", path)
    target = Path(path)
    suffix = target.suffix.lower()
    if flag == "--csv" and suffix in (".parquet", ".pq"):
        raise InvalidParameterError(flag, "a CSV file name (use --parquet FILE for Parquet)", path)
    if flag == "--parquet" and suffix in (".csv", ".tsv", ".txt"):
        raise InvalidParameterError(flag, "a Parquet file name (use --csv FILE for CSV)", path)
    if target.is_dir():
        raise InvalidParameterError(flag, "a file name, not a folder", path)
    if not target.parent.is_dir():
        raise InvalidParameterError(
            flag, f"a file in an existing folder (there is no folder {target.parent})", path
        )
    return target


def _results(args: argparse.Namespace) -> int:
    import pandas as pd

    from simulations._io import atomic_write
    from simulations.report import replicate_notes
    from simulations.schema import PRINTED_COLUMNS
    from simulations.store import ResultStore

    csv = _export_path("--csv", args.csv)
    parquet = _export_path("--parquet", args.parquet)
    store = ResultStore(args.dir)
    table = store.load_table(skip_bad=args.skip_bad)
    if store.skipped:
        print(
            f"ssbnn results: warning: left out {len(store.skipped)} cell file(s) that do not "
            "verify: " + "; ".join(str(b) for b in store.skipped),
            file=sys.stderr,
        )
    if table.empty:
        raise InvalidParameterError(
            "DIR", "a study folder with at least one finished cell", args.dir
        )
    for flag, path, write in (
        ("--csv", csv, lambda h: h.write(_for_csv(table).to_csv(index=False).encode("utf-8"))),
        ("--parquet", parquet, lambda h: table.to_parquet(h, index=False)),
    ):
        if path is not None:
            try:
                atomic_write(path, write)
            except OSError as exc:
                reason = exc.strerror or str(exc) or type(exc).__name__
                raise InvalidParameterError(
                    flag, f"a writable file ({reason})", str(path)
                ) from None
    notes = replicate_notes(table)
    if notes:
        print("\n".join(notes) + "\n")
    shown = table[[c for c in PRINTED_COLUMNS if c in table]]
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

    report = write_report(args.dir, skip_bad=args.skip_bad)
    if report.skipped:
        print(
            f"ssbnn report: warning: left out {len(report.skipped)} cell file(s) that do not "
            "verify: " + "; ".join(str(b) for b in report.skipped),
            file=sys.stderr,
        )
    print(report.text)
    print(f"\nwrote {report.summary} and {len(report.figures)} figures in {report.summary.parent}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from simulations.demo import run_demo

    out = Path(args.out) if args.out else _DEFAULT_ROOT / ("demo-quick" if args.quick else "demo")
    return run_demo(out, quick=args.quick)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
