"""Benchmark: node recovery and fit quality of the training protocol on a fixed panel of truths.

Run ``python benchmarks/bench_recovery.py`` (``--markdown`` prints the ``RESULTS.md``
table; ``--csv FILE`` keeps one row per cell). The panel:

* ``relu_p20``: ``relu_teacher``, p = 20 (5 relevant), active (4, 3), noise sd 0.5, 16-16 student;
* ``relu_p100``: ``relu_teacher``, p = 100 (5 relevant), active (4, 3), noise sd 1, 16-16 student;
* ``relu_deep``: ``relu_teacher``, p = 20 (5 relevant), active (5, 4, 2), noise sd 0.5,
  16-16-16 student;
* ``relu_deep_indep``: ``relu_deep``'s upper layers on a first layer that reads one input per
  node, so that its features are independent (:func:`independent_deep_teacher`), otherwise as
  ``relu_deep``;
* ``tanh_p200``: a tanh teacher with biases on 8 of p = 200 inputs, active (6, 3),
  noise sd 0.5, 12-8 student (weights ``+-U[0.5, 1.5]``, biases ``U(-0.5, 0.5)``, output
  scaled to ``Var f0 = 1``);

at n = 2048, 8192, 32768, R = 8 replicates trained as one batch, for each prior with the
default options of ``ModelConfig`` and ``TrainConfig`` (``steps = "auto"``: until the
convergence rule holds). Per cell: the share of replicates with exactly the true number
of kept nodes in every hidden layer, the mean over- and under-pruning per layer
(``max(kept - true, 0)``, ``max(true - kept, 0)``), the RMSE of the variational-mean
network against ``f0`` on 5,000 test points, the final negative ELBO per observation
(fixed-noise estimate), the median steps taken, the share of replicates whose rule
fired, and the wall time. Statistical quality is measured here, never asserted in tests.
``--restarts K`` trains every replicate from ``K`` starts (``TrainConfig.restarts``, whose
default is five starts in an ``"auto"`` run);
``--set model.FIELD=VALUE`` or ``--set train.FIELD=VALUE`` (repeatable; ``VALUE`` is read
as JSON, else kept as a string) changes one option of ``ModelConfig`` or ``TrainConfig``,
so that a candidate protocol is measured on the same cells as the defaults;
``model.hidden`` changes the student's widths (one per layer of the truth) on the same data;
``train.convergence`` takes a JSON object of ``ConvergenceRule`` options, e.g.
``train.convergence={"tolerance": 2.5e-4}``. Each truth is one draw of its teacher, with
the data and the replicates' seeds, from ``--seed`` (default 7): another seed measures the
protocol on other draws of the same truths.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

PANEL = {
    "relu_p20": {"p": 20, "active": (4, 3), "hidden": (16, 16), "noise": 0.5},
    "relu_p100": {"p": 100, "active": (4, 3), "hidden": (16, 16), "noise": 1.0},
    "relu_deep": {"p": 20, "active": (5, 4, 2), "hidden": (16, 16, 16), "noise": 0.5},
    "relu_deep_indep": {"p": 20, "active": (5, 4, 2), "hidden": (16, 16, 16), "noise": 0.5},
    "tanh_p200": {"p": 200, "active": (6, 3), "hidden": (12, 8), "noise": 0.5},
}
N_GRID = (2048, 8192, 32768)
PRIORS = ("ss-gl", "ss-ghs", "ss-ig", "edge-ss")
SEED = 7
N_TEST = 5000
_PANEL_FIELDS = {
    "p": "the truth sets the inputs",
    "prior": "choose priors with --prior",
    "activation": "the truth sets the activation",
    "sigma_e": "the truth sets the noise",
}
"""``ModelConfig`` options that ``--set`` may not change, and why."""


def tanh_teacher(seed: int = SEED, relevant: int = 8, active: tuple[int, ...] = (6, 3)):
    """The ``tanh_p200`` teacher: ``{"W1": ..., "b1": ..., ...}`` with ``Var f0 = 1``."""
    rng = np.random.default_rng(seed)
    sizes = (relevant, *active, 1)
    layers = {}
    for i, (fan_in, out) in enumerate(itertools.pairwise(sizes), start=1):
        sign = rng.choice([-1.0, 1.0], size=(out, fan_in))
        layers[f"W{i}"] = sign * rng.uniform(0.5, 1.5, size=(out, fan_in))
        layers[f"b{i}"] = rng.uniform(-0.5, 0.5, size=out)
    x = rng.uniform(-1.0, 1.0, size=(100_000, relevant))
    h = x
    for i in range(1, len(sizes) - 1):
        h = np.tanh(h @ layers[f"W{i}"].T + layers[f"b{i}"])
    last = len(sizes) - 1
    sd = float((h @ layers[f"W{last}"].T + layers[f"b{last}"]).std())
    layers[f"W{last}"] /= sd
    layers[f"b{last}"] /= sd
    return layers


def independent_deep_teacher(seed: int = SEED) -> dict[str, np.ndarray]:
    """The ``relu_deep_indep`` teacher: ``{"W1": ..., "b1": ..., ...}`` with ``Var f0 = 1``.

    ``relu_deep``'s (of the same ``seed``) second and third layers and output, on a first
    layer whose node ``j`` is ``relu(x_j + s_j)`` on relevant input ``j``, with
    ``s_j = 1 - 2 z_j``: for ``x_j ~ U(-1, 1)`` it is 0 with probability ``z_j``, the share of
    ``U(-1, 1)^5`` on which ``relu_deep``'s first-layer node ``j`` is 0. The features are
    then independent, where ``relu_deep``'s (ReLUs of the same inputs) are not. The output
    is scaled on 200,000 reference points.
    """
    from simulations.designs.teachers import teacher_forward

    deep = generate_truth("relu_deep", 64, 1, seed).truth
    active, relevant = deep.active_nodes, list(deep.relevant_inputs)
    if active[0] != len(relevant):
        raise ValueError(f"one first-layer node per relevant input: {active[0]} and {relevant}")
    outs = [range(k) for k in (*active, 1)]  # the active nodes come first in every layer
    ins = [relevant, *outs[:-1]]
    weights = [np.asarray(w)[np.ix_(o, i)] for w, o, i in zip(deep.weights, outs, ins, strict=True)]
    biases = [np.asarray(b)[list(o)] for b, o in zip(deep.biases, outs, strict=True)]
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(200_000, len(relevant)))
    zero_share = (x @ weights[0].T + biases[0] <= 0).mean(axis=0)
    weights[0], biases[0] = np.eye(len(relevant)), 1.0 - 2.0 * zero_share
    sd = float(teacher_forward(x, weights, biases, "relu").std())
    weights[-1], biases[-1] = weights[-1] / sd, biases[-1] / sd
    layers = {f"W{i}": w for i, w in enumerate(weights, start=1)}
    return layers | {f"b{i}": b for i, b in enumerate(biases, start=1)}


def generate_truth(truth: str, n: int, replicates: int, seed: int):
    """The data of one panel entry."""
    from simulations import generate

    spec = PANEL[truth]
    given = {
        "tanh_p200": (tanh_teacher, "tanh"),
        "relu_deep_indep": (independent_deep_teacher, "relu"),
    }
    if truth in given:
        teacher, activation = given[truth]
        return generate(
            "teacher", n=n, replicates=replicates, seed=seed, n_test=N_TEST,
            weights=teacher(seed), activation=activation, p=spec["p"], sigma_e=spec["noise"],
        )  # fmt: skip
    return generate(
        "relu_teacher", n=n, replicates=replicates, seed=seed, n_test=N_TEST,
        p=spec["p"], sigma_e=spec["noise"], active=spec["active"], hidden=spec["hidden"],
    )  # fmt: skip


def add_seed_option(parser: argparse.ArgumentParser) -> None:
    """``--seed``, the panel's benchmarks' one seed: it draws the truths (the teachers), their
    data and the replicates (or starts)."""
    parser.add_argument(
        "--seed", type=int, default=SEED,
        help=f"draws the truths (teachers), the data, the replicates or starts (default {SEED})",
    )  # fmt: skip


def parse_setting(text: str) -> tuple[str, str, object]:
    """``"model.FIELD=VALUE"`` or ``"train.FIELD=VALUE"`` as ``(section, field, value)``."""
    key, sep, raw = text.partition("=")
    section, dot, field = key.partition(".")
    if not sep or not dot or section not in ("model", "train") or not field:
        raise argparse.ArgumentTypeError(
            f"--set {text!r}: expected model.FIELD=VALUE or train.FIELD=VALUE"
        )
    from simulations import ModelConfig, TrainConfig
    from simulations.convergence import ConvergenceRule

    options = {
        f.name for f in dataclasses.fields(ModelConfig if section == "model" else TrainConfig)
    }
    if field not in options:
        raise argparse.ArgumentTypeError(f"--set {text!r}: {section} has no option {field!r}")
    if section == "model" and field in _PANEL_FIELDS:
        raise argparse.ArgumentTypeError(f"--set {text!r}: {_PANEL_FIELDS[field]}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if field == "hidden" and not (
        isinstance(value, list) and value and all(type(k) is int and k >= 1 for k in value)
    ):
        raise argparse.ArgumentTypeError(
            f"--set {text!r}: model.hidden must be a JSON list of integers >= 1, e.g. [32, 32]"
        )
    if field == "convergence":
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(
                f"--set {text!r}: train.convergence must be a JSON object of ConvergenceRule "
                'options, e.g. {"tolerance": 2.5e-4}'
            )
        try:  # an unknown option is a TypeError naming it, a bad value names its range
            value = ConvergenceRule(**value)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(f"--set {text!r}: {exc}") from None
    return section, field, value


def student_widths(truth: str, settings) -> tuple[int, ...]:
    """The student's hidden widths: the panel's, or ``model.hidden`` of ``settings``, which
    must have one width per layer of the truth, each at least its active count."""
    spec = PANEL[truth]
    hidden = next((v for s, f, v in settings if (s, f) == ("model", "hidden")), spec["hidden"])
    hidden = tuple(hidden)
    active = spec["active"]
    if len(hidden) != len(active) or any(k < a for k, a in zip(hidden, active, strict=True)):
        raise ValueError(
            f"model.hidden = {list(hidden)}: {truth} needs {len(active)} widths of at least "
            f"{list(active)} (its active nodes)"
        )
    return hidden


def run_cell(
    truth: str,
    prior: str,
    n: int,
    replicates: int,
    max_steps: int | None,
    restarts: int | None,
    settings: tuple[tuple[str, str, object], ...] = (),
    seed: int = SEED,
) -> dict:
    """Train one cell with the default options (``max_steps``, ``restarts`` and
    ``settings`` aside) and measure it; ``seed`` draws the truth, the data and the
    replicates' seeds."""
    import torch

    from simulations import BayesianMLP, ModelConfig, TrainConfig, fit
    from simulations.rng import replicate_seeds

    torch.set_num_threads(1)
    spec = PANEL[truth]
    data = generate_truth(truth, n, replicates, seed)
    activation = "tanh" if truth == "tanh_p200" else "relu"
    changes = {s: {f: v for sec, f, v in settings if sec == s} for s in ("model", "train")}
    changes["model"]["hidden"] = student_widths(truth, settings)
    config = ModelConfig(
        p=data.p, prior=prior, activation=activation, sigma_e=spec["noise"], **changes["model"]
    )
    model = BayesianMLP(config, replicate_seeds(seed, replicates, "model"), n=n)
    limits = {} if max_steps is None else {"max_steps": max_steps}
    options = TrainConfig(restarts=restarts, **limits, **changes["train"])
    started = time.perf_counter()
    report = fit(model, data.x_train, data.y_train, options)
    wall = time.perf_counter() - started
    kept = np.stack([k.sum(1).numpy() for k in model.kept().nodes], axis=1)
    true = np.asarray(data.truth.active_nodes)
    f = model.mean_function(data.x_test)
    rmse = (f - data.f_test.to(f.dtype)).square().mean((1, 2)).sqrt().numpy()
    return {
        "truth": truth,
        "prior": prior,
        "n": n,
        "replicates": replicates,
        "true": tuple(int(t) for t in true),
        "exact": float((kept == true).all(axis=1).mean()),
        "over": tuple(np.clip(kept - true, 0, None).mean(axis=0).round(2).tolist()),
        "under": tuple(np.clip(true - kept, 0, None).mean(axis=0).round(2).tolist()),
        "collapsed": int((kept == 0).any(axis=1).sum()),
        "rmse": float(np.mean(rmse)),
        "neg_elbo": float(np.nanmean(report.final_neg_elbo)),
        "steps": int(np.median(report.steps_taken)),
        "converged": float(np.mean(report.converged)),
        "wall_s": wall,
        "screened": None if report.screened is None else float(np.mean(report.screened)),
    }


def run_cells(run_cell, cells, workers: int, markdown, csv: str | None = None) -> list[dict]:
    """``run_cell(*cell)`` for every cell, on ``workers`` processes; the rows in order, each
    printed as its line of ``markdown`` when it comes and all kept in ``csv`` after each."""
    rows = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_cell, *cell) for cell in cells]
        for future in futures:
            rows.append(future.result())
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
            if csv:
                import pandas as pd

                pd.DataFrame(rows).to_csv(csv, index=False)
    return rows


def markdown(rows: list[dict]) -> str:
    """The ``RESULTS.md`` table; with screening, a last column: the share of replicates whose
    fit is a screened one (with ``screen_inputs = "both"``, that kept the screened fit)."""
    screening = any(r.get("screened") is not None for r in rows)
    lines = [
        "| truth | prior | n | exact | over per layer | under per layer | collapsed | "
        "RMSE vs f0 | -ELBO/n | steps (median) | converged | wall s |"
        + (" screened |" if screening else ""),
        "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"
        + ("---:|" if screening else ""),
    ]
    for r in rows:
        over = ", ".join(f"{v:g}" for v in r["over"])
        under = ", ".join(f"{v:g}" for v in r["under"])
        screened = r.get("screened")
        lines.append(
            f"| {r['truth']} {r['true']} | {r['prior']} | {r['n']} | "
            f"{r['exact'] * r['replicates']:.0f}/{r['replicates']} | {over} | {under} | "
            f"{r['collapsed']} | {r['rmse']:.3f} | {r['neg_elbo']:.4f} | {r['steps']} | "
            f"{r['converged']:.0%} | {r['wall_s']:.0f} |"
            + ("" if not screening else " – |" if screened is None else f" {screened:.0%} |")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--truth", action="append", choices=sorted(PANEL))
    parser.add_argument("--prior", action="append", choices=PRIORS)
    parser.add_argument("--n", type=int, nargs="+", default=list(N_GRID))
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=None, help="TrainConfig.max_steps")
    parser.add_argument(
        "--restarts", type=int, default=None, help="TrainConfig.restarts (default: its default)"
    )
    parser.add_argument(
        "--set", action="append", type=parse_setting, default=[], dest="settings",
        metavar="SECTION.FIELD=VALUE", help="change one ModelConfig (model.) or TrainConfig "
        "(train.) option, e.g. model.prior_inclusion=1e-13",
    )  # fmt: skip
    add_seed_option(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    truths = args.truth or list(PANEL)
    priors = args.prior or list(PRIORS)
    cells = [(t, p, n) for t in truths for p in priors for n in args.n]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    settings = tuple(args.settings)
    for truth in truths:
        try:
            student_widths(truth, settings)
        except ValueError as exc:
            parser.error(str(exc))
    changed = "".join(f", {s}.{f} = {v!r}" for s, f, v in settings)
    starts = args.restarts or "default"
    print(f"# {machine}; {len(cells)} cells, R = {args.replicates}, restarts {starts}"
          f"{changed}, seed {args.seed}", flush=True)  # fmt: skip
    options = (args.replicates, args.max_steps, args.restarts, settings, args.seed)
    rows = run_cells(
        run_cell, [(*cell, *options) for cell in cells], args.workers, markdown, args.csv
    )
    if args.markdown:
        print(markdown(rows))


if __name__ == "__main__":
    main()
