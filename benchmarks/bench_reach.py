"""Benchmark: does plain gradient training reach a panel truth's function from random starts?

Run ``python benchmarks/bench_reach.py --truth relu_deep --n 8192 32768`` (``--markdown``
prints the ``RESULTS.md`` table; ``--csv FILE`` keeps one row per cell). For each cell (a
truth of ``bench_recovery.PANEL`` and ``n``; the panel's data, ``R`` replicates), plain
least-squares networks, with no prior and no weight noise, see only the truth's relevant
inputs (an oracle screening) and are trained by Adam on minibatches of 512 (``SCHEDULE``,
the same for every arm, an arm's replicates as one batch) in three arms:

* ``placed``: the student's widths, started at the teacher (its weights and biases, zero
  beyond its nodes);
* ``random``: the student's widths from the default initialisation of
  :class:`torch.nn.Linear` (weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``);
* ``random, truth widths``: the same at the truth's active counts.

With ``--starts K`` each random arm trains ``K`` starts per replicate (all as one batch) and
reports, per replicate, the start with the lowest training objective (as the engine's
restarts keep the best start); the table's ``starts`` column gives ``K``.
``--seed S`` draws another truth (the teacher's weights: the panel's truths are one draw
each, of seed 7), other data and other starts.

Reported per arm: the RMSE of the fit against ``f0`` on the panel's test points (median
and range over replicates) and the training objective's gap to the placed arm in nats,
``n (MSE_arm - MSE_placed) / (2 sigma^2)`` (median and range; positive: the arm ends
worse on its own training data). A random arm that ends worse on both counts has stopped
in another basin of the least-squares landscape: no prior is involved, so the recovery
panel's protocol cannot be blamed for it.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time

from bench_recovery import PANEL, SEED, add_seed_option, generate_truth, run_cells

SCHEDULE = ((15000, 1e-3), (5000, 3e-4))
BATCH = 512
ARMS = ("placed", "random", "random, truth widths")


def init_params(replicates: int, sizes, generator):
    """``[(W, b)]`` per layer, ``W: [R, out, in]``, ``b: [R, out]``, drawn as
    :class:`torch.nn.Linear` draws them."""
    import torch

    params = []
    for fan_in, out in itertools.pairwise(sizes):
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(replicates, out, fan_in, generator=generator) * 2 - 1) * bound
        b = (torch.rand(replicates, out, generator=generator) * 2 - 1) * bound
        params.append((w, b))
    return params


def teacher_params(truth, replicates: int, sizes):
    """The teacher's layers on its relevant inputs, zero-padded to ``sizes``."""
    import torch

    params = []
    relevant = list(truth.relevant_inputs)
    for i, (w, b) in enumerate(zip(truth.weights, truth.biases, strict=True)):
        w = w[:, relevant] if i == 0 else w
        group_w = torch.zeros(sizes[i + 1], sizes[i], dtype=torch.float32)
        group_b = torch.zeros(sizes[i + 1], dtype=torch.float32)
        group_w[: w.shape[0], : w.shape[1]] = torch.tensor(w, dtype=torch.float32)
        group_b[: b.shape[0]] = torch.tensor(b, dtype=torch.float32)
        params.append((group_w.expand(replicates, -1, -1), group_b.expand(replicates, -1)))
    return params


def forward(params, x, activation):
    """``f(x)`` of every replicate's network: ``x: [R, m, k_0]`` to ``[R, m]``."""
    import torch

    h = x
    for i, (w, b) in enumerate(params):
        h = torch.baddbmm(b[:, None, :], h, w.transpose(1, 2))
        if i < len(params) - 1:
            h = activation(h)
    return h[..., 0]


def train(params, x, y, activation, generator) -> None:
    """Adam on ``sum_r mean_batch (f_r(x) - y)^2`` (independent across replicates)."""
    import torch

    leaves = [t for wb in params for t in wb]
    replicates, n = y.shape
    rows = torch.arange(replicates)[:, None]
    for steps, lr in SCHEDULE:
        optimizer = torch.optim.Adam(leaves, lr=lr)
        for _ in range(steps):
            idx = torch.randint(0, n, (replicates, BATCH), generator=generator)
            loss = (forward(params, x[rows, idx], activation) - y[rows, idx]).square()
            optimizer.zero_grad()
            loss.mean(1).sum().backward()
            optimizer.step()


def run_cell(truth: str, n: int, replicates: int, starts: int = 1, seed: int = SEED) -> dict:
    """Train the three arms of one cell and measure them (``starts`` per random arm); ``seed``
    draws the truth, the data and the random starts."""
    import torch

    torch.set_num_threads(1)
    spec = PANEL[truth]
    data = generate_truth(truth, n, replicates, seed)
    relevant = list(data.truth.relevant_inputs)
    x = data.x_train[..., relevant].float()
    y = data.y_train[..., 0].float()
    x_test = data.x_test[:, relevant].float()
    f_test = data.f_test[:, 0].float()
    activation = torch.tanh if truth == "tanh_p200" else torch.relu
    inputs = len(relevant)
    student = (inputs, *spec["hidden"], 1)
    widths = (inputs, *(int(a) for a in data.truth.active_nodes), 1)
    generator = torch.Generator().manual_seed(seed)
    initial = {
        "placed": teacher_params(data.truth, replicates, student),
        "random": init_params(replicates * starts, student, generator),
        "random, truth widths": init_params(replicates * starts, widths, generator),
    }
    row = {"truth": truth, "n": n, "replicates": replicates, "starts": starts}
    row["true"] = widths[1:-1]
    started = time.perf_counter()
    mse = {}
    for arm in ARMS:
        k = 1 if arm == "placed" else starts  # rows r * k ... r * k + k - 1: replicate r
        params = [(w.clone().requires_grad_(), b.clone().requires_grad_()) for w, b in initial[arm]]
        xs, ys = x.repeat_interleave(k, 0), y.repeat_interleave(k, 0)
        train(params, xs, ys, activation, generator)
        with torch.no_grad():
            test = x_test.expand(replicates * k, -1, -1)
            rmse = (forward(params, test, activation) - f_test).square().mean(1).sqrt()
            fit_mse = (forward(params, xs, activation) - ys).square().mean(1).double()
        best = fit_mse.view(replicates, k).argmin(1) + torch.arange(replicates) * k
        mse[arm] = fit_mse[best]
        row[f"rmse {arm}"] = rmse[best].tolist()
    for arm in ARMS:
        gap = n * (mse[arm] - mse["placed"]) / (2 * spec["noise"] ** 2)
        row[f"gap {arm}"] = gap.tolist()
    row["wall_s"] = time.perf_counter() - started
    return row


def _spread(values, digits: int) -> str:
    """``median (min to max)``."""
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def markdown(rows: list[dict]) -> str:
    """The ``RESULTS.md`` table."""
    lines = [
        "| truth | n | RMSE placed | RMSE random | RMSE random, truth widths | "
        "gap random (nats) | gap random, truth widths (nats) | starts | wall s |",
        "|---|---:|---|---|---|---|---|---:|---:|",
    ]
    for r in rows:
        rmse = " | ".join(_spread(r[f"rmse {arm}"], 3) for arm in ARMS)
        gaps = " | ".join(_spread(r[f"gap {arm}"], 0) for arm in ARMS[1:])
        lines.append(
            f"| {r['truth']} {r['true']} | {r['n']} | {rmse} | {gaps} | {r['starts']} | "
            f"{r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--truth", action="append", choices=sorted(PANEL))
    parser.add_argument("--n", type=int, nargs="+", default=[8192, 32768])
    parser.add_argument("--replicates", type=int, default=8)
    parser.add_argument("--starts", type=int, default=1, help="random starts per replicate")
    add_seed_option(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    truths = args.truth or list(PANEL)
    cells = [(t, n, args.replicates, args.starts, args.seed) for t in truths for n in args.n]
    print(
        f"plain networks on the relevant inputs, R = {args.replicates}, {args.starts} start(s), "
        f"schedule {SCHEDULE}, batch {BATCH}, seed {args.seed}",
        flush=True,
    )
    print(markdown([]), flush=True)
    rows = run_cells(run_cell, cells, args.workers, markdown, args.csv)
    if args.markdown:
        print()
        print(markdown(rows))


if __name__ == "__main__":
    main()
