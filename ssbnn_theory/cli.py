"""``ssbnn rate``: contraction-rate bounds for an architecture, as a table, JSON or a plot.

``python -m ssbnn_theory rate ...`` and ``ssbnn rate ...`` are the same command: the
top-level ``ssbnn`` command (``simulations.cli``) registers it with
:func:`add_rate_command`. Bad input exits with status 2 and one line on stderr naming
the field and its allowed range.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ssbnn_theory.architecture import MAX_WIDTH, Architecture
from ssbnn_theory.enums import Activation, FanIn, Likelihood, Prior
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.priors import ENGINE_GLOBAL_SCALE, ENGINE_SLAB_WIDTH, PriorSpec
from ssbnn_theory.rates import (
    DEFAULT_KAPPA_LOG,
    N_MAX,
    RISK_LABEL,
    ContractionRate,
    contraction_rate,
    edge_sparse_rate,
)
from ssbnn_theory.slabs import families, slab_of
from ssbnn_theory.targets import DEFAULT_ARCHITECTURE
from ssbnn_theory.validation import check_integer_sequence, check_real

__all__ = ["ArgumentParser", "add_rate_command", "main", "parse_n", "run_rate"]

DEFAULT_N = tuple(2**j for j in range(9, 16))  # 512 ... 32768: the relu_teacher design grid
MAX_N_POINTS = 2000  # sample sizes per run (all --n tokens together): seconds, not minutes
_RANGE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with one-line errors ``<prog>: error: <message>``, exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` as one line on stderr and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def parse_n(text: str) -> list[float]:
    """One ``--n`` token: a number ``> 1`` or a log-spaced range ``START:STOP:COUNT``.

    ``1e3:1e6:20`` is 20 values from ``1e3`` to ``1e6`` evenly spaced in ``log n``, rounded
    to integers (sample sizes); duplicates after rounding are dropped.
    """
    allowed = (
        f"a number in (1, {N_MAX:.0e}] or a range START:STOP:COUNT (e.g. 1e3:1e6:20, "
        f"1 < START < STOP <= {N_MAX:.0e})"
    )
    match = _RANGE.match(text)
    try:
        if match is None:
            value = float(text)
            if not np.isfinite(value) or value <= 1.0 or value > N_MAX:
                raise ValueError
            return [value]
        start, stop, count = float(match[1]), float(match[2]), float(match[3])
        if not (np.isfinite(start) and np.isfinite(stop) and 1.0 < start < stop):
            raise ValueError
        if count != int(count) or count < 2:
            raise ValueError
        if not stop <= N_MAX:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {allowed} (got {text!r})") from None
    if count > MAX_N_POINTS:
        raise argparse.ArgumentTypeError(
            f"a range has at most {MAX_N_POINTS} points (COUNT in [2, {MAX_N_POINTS}]; "
            f"got {text!r})"
        )
    values = np.unique(np.round(np.geomspace(start, stop, int(count))))
    return [float(v) for v in values if v > 1.0]


def _prior_choice(text: str) -> str:
    key = text.strip().lower()
    allowed = [p.value for p in families()] + ["all"]
    if key not in allowed:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(repr(a) for a in allowed)} (got {text!r})"
        )
    return key


def _slab_width(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a finite number > 0 or 'none' (got {text!r})"
        ) from None


def add_rate_command(subparsers: Any) -> ArgumentParser:
    """Register the ``rate`` subcommand on an ``argparse`` subparsers object.

    The parser's default ``run`` is :func:`run_rate` (``args.run(args) -> int``).
    """
    parser = subparsers.add_parser(
        "rate",
        help="contraction-rate bounds for an architecture (table, JSON or plot)",
        description=(
            "Variational contraction-rate bound eps_n and VB risk bound for a node-sparse "
            "network, term by term (docs/theory.md), and n_informative, the n from which "
            "eps_n^2 < 1 (a squared Hellinger distance is at most 1: below it the bound says "
            "nothing). Base architecture: --arch FILE, else the relu_teacher default (p=100, "
            "hidden 16-16, active 4-3, bounds 1.5, ReLU); each architecture flag replaces the "
            "field it names."
        ),
        epilog=(
            "examples: ssbnn rate | ssbnn rate --prior ss-ghs --n 1e3:1e6:7 --json | "
            "ssbnn rate --hidden 64 64 --active 4 3 --bound 1.5 --plot rate.png"
        ),
    )
    arch = parser.add_argument_group("architecture (default: relu_teacher 100-16-16-1)")
    arch.add_argument(
        "--arch",
        metavar="FILE",
        type=Path,
        help="TOML file with p, hidden, active, bounds, activation, outputs, "
        "fan_in (top level or an [architecture] table, not both); each architecture flag "
        "replaces the field it names and nothing else",
    )
    arch.add_argument("--p", type=int, metavar="P", help="number of inputs p >= 1")
    arch.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        metavar="K",
        help="hidden widths k_1 ... k_L (another depth than the base architecture's needs "
        "--active, and --bound unless the base's bounds are all equal)",
    )
    arch.add_argument(
        "--active",
        type=int,
        nargs="+",
        metavar="S",
        help="active nodes s_1 ... s_L of the truth, 1 <= s_l <= k_l",
    )
    arch.add_argument(
        "--bound",
        type=float,
        nargs="+",
        metavar="B",
        help="weight bounds B_1 ... B_{L+1} (one per layer incl. output) or one value",
    )
    arch.add_argument(
        "--activation", choices=[a.value for a in Activation], help="activation psi (default relu)"
    )
    arch.add_argument("--outputs", type=int, metavar="K", help="output width (default 1)")
    arch.add_argument(
        "--fan-in",
        dest="fan_in",
        choices=[f.value for f in FanIn],
        help="L1 fan-in counting: full (default) or active (needs psi(0) = 0)",
    )
    pri = parser.add_argument_group("prior")
    pri.add_argument(
        "--prior",
        type=_prior_choice,
        action="append",
        metavar="PRIOR",
        help=", ".join(f.value for f in families()) + " or all (repeatable; default all)",
    )
    pri.add_argument(
        "--sigma0", type=float, default=1.0, metavar="S", help="slab scale sigma_0 > 0 (default 1)"
    )
    pri.add_argument(
        "--kappa",
        type=float,
        default=1.0,
        metavar="K",
        help="group-lasso parameter kappa > 0 of ss-gl (default 1)",
    )
    pri.add_argument(
        "--global-scale",
        dest="global_scale",
        type=float,
        default=ENGINE_GLOBAL_SCALE,
        metavar="G",
        help="global scale g > 0 of ss-ghs (default sqrt(1e-5), the engine's global_scale)",
    )
    pri.add_argument(
        "--slab-width",
        dest="slab_width",
        type=_slab_width,
        default=ENGINE_SLAB_WIDTH,
        metavar="C",
        help="slab width c > 0 of the regularised horseshoe (ss-ghs; default 1, the engine's "
        "slab_width), or 'none' for the plain horseshoe",
    )
    pri.add_argument(
        "--output-slab",
        choices=["same", "gaussian"],
        default="same",
        help="slab of the dense output layer: the hidden layers' slab family without a spike "
        "(default, as the reference MLPs) or gaussian N(0, sigma_0^2)",
    )
    rate = parser.add_argument_group("rate")
    rate.add_argument(
        "--n",
        type=parse_n,
        nargs="+",
        metavar="N",
        help="sample sizes, numbers > 1 or log-spaced ranges START:STOP:COUNT "
        "(default 512 1024 ... 32768)",
    )
    rate.add_argument(
        "--likelihood",
        choices=[lik.value for lik in Likelihood],
        default=Likelihood.GAUSSIAN.value,
        help="gaussian (default), bernoulli (one logit output) or categorical (one logit per "
        "class, --outputs >= 2): the KL scale of the link replaces sigma_e",
    )
    rate.add_argument(
        "--sigma-e",
        dest="sigma_e",
        type=float,
        default=None,
        metavar="S",
        help="noise standard deviation sigma_e > 0 of the gaussian likelihood (default 1)",
    )
    rate.add_argument(
        "--kappa-log",
        dest="kappa_log",
        type=float,
        default=DEFAULT_KAPPA_LOG,
        metavar="K",
        help=f"log exponent in eps_n = sqrt(r_n) (log n)^K, 0 <= K <= 10 (default "
        f"{DEFAULT_KAPPA_LOG:g}; K <= 1 is outside the standard argument and warned about)",
    )
    rate.add_argument(
        "--target-eps2",
        dest="target_eps2",
        type=float,
        metavar="X",
        help="also solve for the n from which eps_n^2 < X (X > 0), per prior",
    )
    rate.add_argument(
        "--xi",
        type=float,
        default=0.0,
        metavar="XI",
        help="approximation error xi_n >= 0 (default 0: a teacher in the class)",
    )
    rate.add_argument(
        "--inclusion",
        default="theory",
        choices=["theory", "reference"],
        help="inclusion probabilities: ours (docs/theory.md, section 4.2) or the "
        "reference scripts' layer-wise formula (docs/engine.md, Layers)",
    )
    rate.add_argument(
        "--inclusion-prob",
        dest="inclusion_prob",
        type=float,
        nargs="+",
        metavar="LAMBDA",
        help="your own lambda_1 ... lambda_L in (0, 1) (overrides --inclusion)",
    )
    rate.add_argument(
        "--c-lambda",
        dest="c_lambda",
        type=float,
        default=1.0,
        metavar="C",
        help="constant C_lambda >= 0 of our inclusion prescription (default 1)",
    )
    rate.add_argument(
        "--closed-form",
        dest="closed_form",
        action="store_true",
        help="closed-form delta_n and t (the symbolic variant) instead of the sharp numerical ones",
    )
    rate.add_argument(
        "--compare",
        action="store_true",
        help="also report the edge-sparse (Bai et al. 2020) and dense rates",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (a list of them for several priors)",
    )
    out.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="write eps_n^2 against n (log-log) per prior to FILE (.png or .pdf)",
    )
    parser.set_defaults(run=run_rate)
    return parser


# ------------------------------------------------------------------------ helpers
def _architecture(args: argparse.Namespace) -> Architecture:
    """The base architecture (``--arch`` or the default) with each flag replacing its field.

    Nothing but the named field changes. When ``--hidden`` changes the depth, the base's
    ``active`` cannot apply: ``--active`` is then required, and ``--bound`` too unless the
    base's bounds are all equal (that value is kept for every layer).
    """
    base = Architecture.from_toml(args.arch) if args.arch is not None else DEFAULT_ARCHITECTURE
    fields = base.to_dict()
    if args.hidden is not None:
        check_integer_sequence("hidden", args.hidden, upper=MAX_WIDTH)
    source = f"--arch {args.arch}" if args.arch is not None else "the default architecture"
    if args.hidden is not None and len(args.hidden) != base.depth:
        if args.active is None:
            raise InvalidParameterError(
                "active",
                f"given (--active, {len(args.hidden)} values) when --hidden changes the depth "
                f"of {source} ({base.depth} hidden layers)",
                "no --active",
            )
        if args.bound is None:
            if len(set(base.bounds)) != 1:
                raise InvalidParameterError(
                    "bound",
                    f"given (one value or {len(args.hidden) + 1}) when --hidden changes the "
                    f"depth of {source}, whose bounds differ between layers",
                    "no --bound",
                )
            fields["bounds"] = base.bounds[0]
    for name, value in (
        ("p", args.p),
        ("hidden", args.hidden),
        ("active", args.active),
        ("bounds", args.bound),
        ("activation", args.activation),
        ("outputs", args.outputs),
        ("fan_in", args.fan_in),
    ):
        if value is not None:
            fields[name] = value
    return Architecture.from_dict(fields)


def _priors(args: argparse.Namespace) -> list[PriorSpec]:
    names = args.prior or ["all"]
    chosen: list[Prior] = []
    for name in names:
        for prior in families() if name == "all" else [Prior(name)]:
            if prior not in chosen:
                chosen.append(prior)
    # hyperparameters are checked for every prior (a bad value is an error even if unused)
    PriorSpec(
        Prior.SS_GHS,
        sigma_0=args.sigma0,
        kappa=args.kappa,
        global_scale=args.global_scale,
        slab_width=args.slab_width,
    )
    return [
        PriorSpec(
            prior,
            sigma_0=args.sigma0,
            kappa=args.kappa,
            global_scale=args.global_scale,
            slab_width=args.slab_width if slab_of(prior).takes_slab_width else None,
            gaussian_output=args.output_slab == "gaussian",
        )
        for prior in chosen
    ]


def _n_grid(args: argparse.Namespace) -> np.ndarray:
    if not args.n:
        return np.asarray(DEFAULT_N, dtype=np.float64)
    grid = np.unique(np.asarray([v for group in args.n for v in group], dtype=np.float64))
    if grid.size > MAX_N_POINTS:
        raise InvalidParameterError(
            "n", f"at most {MAX_N_POINTS} sample sizes in all (--n tokens together)", grid.size
        )
    return grid


def _fmt_n(x: float) -> str:
    return f"{int(x)}" if float(x).is_integer() and x < 1e9 else f"{x:.8g}"


def _informative_line(rate: ContractionRate) -> str:
    n_inf = rate.n_informative
    if n_inf is None:
        return f"  vacuous (eps_n^2 >= 1) for every n <= {N_MAX:.0e}: n_informative = none"
    if n_inf <= np.e:
        return "  informative (eps_n^2 < 1) for every n >= e: n_informative = e"
    return f"  vacuous (eps_n^2 >= 1) for n < {n_inf:.4g}: n_informative = {n_inf:.4g}"


def _target_line(target: float, n_target: float | None) -> str:
    if n_target is None:
        return f"  eps_n^2 < {target:g} is not reached by n = {N_MAX:.0e}"
    return f"  eps_n^2 < {target:g} from n = {n_target:.4g}"


def _table(
    rate: ContractionRate,
    slope: np.ndarray,
    compare: dict[str, np.ndarray] | None,
    target: tuple[float, float | None] | None = None,
) -> str:
    lines = [f"prior {rate.prior.label}", _informative_line(rate)]
    if target is not None:
        lines.append(_target_line(*target))
    head = f"{'n':>10} {'eps_n^2':>11} {'r_n':>11} {'delta_n':>10} {'risk*':>11} {'slope':>7}"
    if compare is not None:
        head += f" {'edge eps^2':>11} {'dense eps^2':>11}"
    lines.append(head + "  dominant term of n r_n")
    failures = rate.failures()
    for i, n in enumerate(rate.n):
        slope_text = f"{slope[i]:7.3f}" if np.isfinite(slope[i]) else f"{'-':>7}"
        row = (
            f"{_fmt_n(n):>10} {rate.eps2[i]:11.4g} {rate.r_n[i]:11.4g} {rate.delta[i]:10.3g} "
            f"{rate.risk_bound[i]:11.4g} {slope_text}"
        )
        if compare is not None:
            row += f" {compare['edge'][i]:11.4g} {compare['dense'][i]:11.4g}"
        row += f"  {rate.dominant[i]}"
        if failures[i]:
            row += f"  [not a proven rate: {', '.join(failures[i])} fails]"
        elif rate.eps2[i] >= 1.0:
            row += "  [vacuous]"
        lines.append(row)
    lines.append(
        f"  * risk = eps_n^2 + r_n + xi_n, {RISK_LABEL.split(':')[0]} (C1 = C2 = 1); "
        "slope = d log eps_n^2 / d log n; vacuous: eps_n^2 >= 1"
    )
    if compare is not None:
        lines.append(
            "  edge eps^2: Bai et al. (2020)'s edge-sparse rate is an order without constants, "
            "not a bound (docs/theory.md, section 4.3): compare its shape in n, not its level"
        )
    last = len(rate.n) - 1
    arch = rate.architecture
    lines.append(f"  per layer at n = {_fmt_n(rate.n[last])} (terms of n r_n in nats):")
    lines.append(
        f"  {'layer':>7} {'k':>6} {'s':>6} {'r':>6} {'B':>7} {'log 1/lambda':>13} "
        f"{'selection':>11} {'slab':>11} {'resolution':>11} {'magnitude':>11}  dominant"
    )
    k_all, s_all = arch.widths[1:], arch.active_nodes
    for layer in range(arch.depth + 1):
        hidden = layer < arch.depth
        name = str(layer + 1) if hidden else f"{layer + 1} out"
        log_inv = f"{rate.log_inv_inclusion[last, layer]:13.4g}" if hidden else f"{'-':>13}"
        sel = f"{rate.selection[last, layer]:11.4g}" if hidden else f"{'-':>11}"
        lines.append(
            f"  {name:>7} {k_all[layer]:>6} {s_all[layer]:>6} {arch.constrained[layer]:>6} "
            f"{arch.bounds[layer]:7.3g} {log_inv} {sel} {rate.slab[last, layer]:11.4g} "
            f"{rate.resolution[last, layer]:11.4g} {rate.magnitude[last, layer]:11.4g}  "
            f"{rate.dominant_per_layer[last][layer]}"
        )
    lines.append("  conditions:")
    for cond in rate.conditions:
        lines.append(f"    {cond.name:<26} {cond.verdict}")
    return "\n".join(lines)


def _plot(path: Path, rates: list[ContractionRate], compare: dict | None) -> None:
    from ssbnn_theory import style

    with style.context():
        fig, ax = style.figure()
        for rate in rates:
            family = rate.prior.prior.value
            ax.loglog(
                rate.n,
                rate.eps2,
                color=style.prior_color(family),
                marker=style.prior_marker(family),
                label=rate.prior.label,
            )
        if compare is not None:
            ax.loglog(
                rates[0].n,
                compare["edge"],
                color=style.prior_color("edge-ss"),
                linestyle="--",
                marker=style.prior_marker("edge-ss"),
                label="edge-sparse (Bai et al. 2020)",
            )
            ax.loglog(
                rates[0].n,
                compare["dense"],
                color=style.prior_color("dense"),
                linestyle=":",
                marker=style.prior_marker("dense"),
                label=f"dense ({rates[0].prior.prior.value})",
            )
        style.shade_vacuous(ax)
        for rate in rates:
            color = style.prior_color(rate.prior.prior.value)
            style.mark_informative(ax, rate.n_informative, color)
        ax.set_xlabel("sample size n")
        ax.set_ylabel(r"$\varepsilon_n^2$ (squared contraction radius)")
        ax.set_title(rates[0].architecture.describe(), fontsize=9)
        ax.legend()
        style.save(fig, path)


def run_rate(args: argparse.Namespace) -> int:
    """Run ``ssbnn rate`` for parsed arguments; returns the exit status."""
    try:
        arch = _architecture(args)
        specs = _priors(args)
        n = _n_grid(args)
        inclusion: Any = args.inclusion
        if args.inclusion_prob is not None:
            inclusion = np.asarray(args.inclusion_prob, dtype=np.float64)
        if args.plot is not None and args.plot.suffix.lower() not in (".png", ".pdf"):
            raise InvalidParameterError(
                "plot", "a file name ending in .png or .pdf", str(args.plot)
            )
        if args.target_eps2 is not None:
            check_real("target_eps2", args.target_eps2, lower=0.0, lower_open=True)
        settings = dict(
            likelihood=args.likelihood,
            kappa_log=args.kappa_log,
            C_lambda=args.c_lambda,
            closed_form=args.closed_form,
        )
        rates, slopes, targets = [], [], []
        for spec in specs:
            rate = contraction_rate(
                arch, spec, n, args.sigma_e, xi_n=args.xi, inclusion=inclusion, **settings
            )
            rates.append(rate)
            slopes.append(rate.local_slope() if np.all(n > 1.02) else np.full(n.shape, np.nan))
            _ = rate.n_informative
            if args.target_eps2 is not None:
                targets.append((args.target_eps2, rate.n_for_eps2(args.target_eps2)))
            _check_finite(rate)
        compare = None
        if args.compare:
            edge = edge_sparse_rate(arch, n, kappa_log=args.kappa_log)
            dense = contraction_rate(
                arch.dense(), specs[0], n, args.sigma_e, conditions=False, **settings
            )
            compare = {"edge": edge.eps2, "dense": dense.eps2, "edge_result": edge}
        if args.plot is not None:
            _plot(args.plot, rates, compare)
    except InvalidParameterError as exc:
        print(f"ssbnn rate: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    if args.kappa_log <= 1.0:
        print(
            f"ssbnn rate: warning: kappa_log = {args.kappa_log:g} <= 1 is outside the standard "
            "argument (it needs an exponent above 1; docs/theory.md, section 4.2)",
            file=sys.stderr,
        )
    if args.json:
        objects = []
        for i, (rate, slope) in enumerate(zip(rates, slopes, strict=True)):
            obj = rate.to_dict()
            obj["local_slope"] = _jsonable_list(slope)
            if not np.all(np.isfinite(slope)):
                obj["local_slope_note"] = (
                    "null where n <= 1.02: the central difference in log n needs n e^-0.01 > 1"
                )
            if targets:
                obj["target_eps2"] = {"value": targets[i][0], "n": targets[i][1]}
            if compare is not None:
                obj["comparison"] = {
                    "edge_sparse": compare["edge_result"].to_dict(),
                    "dense_eps2": _jsonable_list(compare["dense"]),
                }
            objects.append(obj)
        json.dump(objects[0] if len(objects) == 1 else objects, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    print("ssbnn rate: variational contraction-rate bound (docs/theory.md)")
    print(f"architecture: {arch.describe()}")
    scale = (
        f"sigma_e = {rates[0].sigma_e:g}"
        if rates[0].likelihood == Likelihood.GAUSSIAN.value
        else f"{rates[0].likelihood} likelihood (KL scale {rates[0].kl_scale:g})"
    )
    print(
        f"T = {arch.coordinates} constrained coordinates, "
        f"log Lambda = {rates[0].log_lipschitz:.4g}, "
        f"{scale}, eps_n = sqrt(r_n) (log n)^{args.kappa_log:g}, "
        f"inclusion: {rates[0].inclusion}, {'closed-form' if args.closed_form else 'sharp'} bounds"
    )
    for i, (rate, slope) in enumerate(zip(rates, slopes, strict=True)):
        print()
        print(_table(rate, slope, compare, targets[i] if targets else None))
    if args.plot is not None:
        print(f"\nplot written to {args.plot}")
    return 0


def _jsonable_list(values: np.ndarray) -> list[float | None]:
    return [float(x) if np.isfinite(x) else None for x in np.asarray(values, dtype=np.float64)]


def _check_finite(rate: ContractionRate) -> None:
    """Refuse a result with a non-finite headline number (inputs beyond float64's range)."""
    for name in ("eps_n", "r_n", "risk_bound", "delta", "n_r_n"):
        values = getattr(rate, name)
        if not np.all(np.isfinite(values)):
            raise InvalidParameterError(
                "input",
                "values whose bound stays inside float64 range (here "
                f"{name} is not finite; reduce --bound, --sigma0, --kappa, --global-scale, "
                "--slab-width or the widths)",
                rate.prior.label,
            )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ssbnn_theory rate ...``: the same command as ``ssbnn rate``."""
    parser = ArgumentParser(
        prog="ssbnn", description="ssbnn theory tools (the full `ssbnn` command adds simulations)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_rate_command(subparsers)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.run(args))
