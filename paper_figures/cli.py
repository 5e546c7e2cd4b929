"""``python -m paper_figures``: regenerate every figure of the paper, with its index.

Exit status: 0 when every figure was made; 1 when a figure or a study cell failed (the
others are still made and the index says which); 2 on bad input, with one line on stderr
naming the option and what is allowed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from paper_figures.registry import FIGURES, Context, build, describe
from paper_figures.results import SOURCES, default_output, default_results_root
from paper_figures.size import Size, size_from_env
from ssbnn_theory.cli import ArgumentParser
from ssbnn_theory.errors import InvalidParameterError

__all__ = ["build_parser", "main"]


def _spec_override(text: str) -> tuple[str, Path]:
    key, sep, path = text.partition("=")
    if not sep or key not in SOURCES or not path:
        raise argparse.ArgumentTypeError(
            f"must be KEY=PATH with KEY one of {', '.join(SOURCES)} (got {text!r})"
        )
    return key, Path(path)


def build_parser() -> ArgumentParser:
    """The argument parser."""
    parser = ArgumentParser(
        prog="python -m paper_figures",
        description=(
            "Regenerate every figure of the paper (PNG and PDF) and the Markdown index "
            "index.md from stored study results. Quick size (--quick, or the environment "
            "variables CI / SSBNN_QUICK=1): the *_quick studies, run when not stored. Full "
            "size: the full studies' stored results, the quick studies where none are stored "
            "(--run-full runs the full studies' missing cells first: hours on a CPU)."
        ),
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_const",
        const=Size.QUICK,
        dest="size",
        help="quick studies (default when CI or SSBNN_QUICK=1 is set)",
    )
    size.add_argument(
        "--full",
        action="store_const",
        const=Size.FULL,
        dest="size",
        help="full studies (the default otherwise)",
    )
    parser.add_argument(
        "--run-full",
        action="store_true",
        help="full size: run the full studies' unfinished cells first",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: $SSBNN_FIGURES, else paper_figures/output/)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="parent folder of the studies' results (default: $SSBNN_RESULTS, "
        "else ssbnn-results/ in the repository)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help="make only these figures (see --list)",
    )
    parser.add_argument(
        "--spec",
        type=_spec_override,
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="use another spec for a study: " + ", ".join(SOURCES),
    )
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    parser.add_argument("--progress", action="store_true", help="progress bars while studies run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for row in describe():
            print(f"{row['name']:<34} {row['notebook']:<28} {row['study']:<16} {row['title']}")
        return 0
    try:
        size = args.size or size_from_env()
        ctx = Context(
            out=args.out or default_output(),
            size=size,
            results=args.results or default_results_root(),
            run_full=args.run_full,
            specs=dict(args.spec),
            quiet=not args.progress,
        )
        result = build(ctx, args.only, log=lambda line: print(line, file=sys.stderr))
    except InvalidParameterError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    made = sum(len(v) for v in result.files.values())
    print(
        f"{made} files for {len(result.files)} of {len(args.only or FIGURES)} figures "
        f"in {ctx.out}; index: {result.index}"
    )
    for name, error in result.errors.items():
        print(f"figure {name} failed: {error}", file=sys.stderr)
    for study in result.studies.values():
        for failure in study.failed:
            print(f"study {study.spec.name}: cell {failure}", file=sys.stderr)
    return 0 if result.ok else 1
