"""Benchmark: is a truth of the recovery panel a local optimum of the ELBO over single-node moves?

Run ``python benchmarks/bench_optimum.py --truth relu_deep --n 8192 32768`` (``--markdown``
prints the ``RESULTS.md`` table; ``--csv FILE`` keeps one row per cell). For each cell (a
truth of ``bench_recovery.PANEL``, a prior, ``n``; the panel's data and replicate seeds,
``R`` replicates, float32, the reference prior inclusion; ``--seed`` draws other truths
and data, as in ``bench_recovery``):

1. a student of the panel's widths is placed at the teacher: slab means the teacher's
   weights (over the layer's expected scale, zero beyond the teacher's nodes), ``rho = -5``,
   the true structure frozen; fine-tuned ``PLACE`` (steps, learning rate), minibatches of 512;
2. from there, the truth and, in every hidden layer, two moves: the true node with the
   smallest outgoing slab means removed, and one node added (small random weights in and
   out); each of these arms gets ``MOVE`` further steps, all as one batch, each arm on its
   replicate's noise and minibatch streams (common random numbers);
3. every arm's negative ELBO ``L`` on all ``n`` rows with 16 fixed draws, and the RMSE of
   its mean network against ``f0``.

Reported per move: ``n (L_move - L_truth)`` in nats, per replicate (positive: the truth is
better). With frozen indicators the prior inclusion moves no continuous parameter, so under
another inclusion a move's figure shifts by the difference of the log-odds per node
(``docs/engine.md``, "When the truth is the optimum").
"""

from __future__ import annotations

import argparse
import math
import time

from bench_recovery import PANEL, SEED, add_seed_option, generate_truth, run_cells

PLACE = ((8000, 3e-3), (4000, 1e-3), (3000, 3e-4))
MOVE = ((10000, 1e-3), (5000, 3e-4))
DRAWS = 16
BATCH = 512
ADDED_SCALE = 0.1  # standard deviation of an added node's weights


def _train(model, x, y, schedule) -> None:
    """Fine-tune ``model`` with its indicators frozen, ``schedule`` of (steps, lr)."""
    from simulations import TrainConfig, fit

    for steps, lr in schedule:
        options = TrainConfig(
            steps=1, finetune_steps=steps, batch_size=BATCH, lr=lr, indicator_pass=False
        )
        fit(model, x, y, options)


def placed_student(data, config, seeds):
    """The student at the teacher, fine-tuned with the true structure frozen (step 1)."""
    from simulations import BayesianMLP
    from simulations.structure import place_at_truth

    model = BayesianMLP(config, seeds, n=data.x_train.shape[1])
    place_at_truth(model, data.truth)
    _train(model, data.x_train, data.y_train, PLACE)
    return model


def move_arms(model, active: tuple[int, ...]):
    """The truth and its moves (step 2) as one batch of ``len(moves) R`` replicates, arm-major;
    returns the batch and the moves, ``("truth", None)``, ``("remove", l)``, ``("add", l)``."""
    import torch

    from simulations import BayesianMLP
    from simulations.structure import freeze_structure

    reps, depth = model.replicates, len(active)
    moves = [("truth", None)]
    moves += [("remove", layer) for layer in range(depth)]
    moves += [("add", layer) for layer in range(depth)]
    batch = BayesianMLP(model.config, [s for _ in moves for s in model.replicate_seeds], n=model.n)
    with torch.no_grad():
        for mine, theirs in zip(model.parameters(), batch.parameters(), strict=True):
            theirs.copy_(mine.repeat(len(moves), *[1] * (mine.dim() - 1)))
    masks = [(layer.indicators.theta.detach() > 0).float().repeat(len(moves), 1)
             for layer in model.hidden_layers]  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for a, (kind, layer) in enumerate(moves):
            rows = torch.arange(a * reps, (a + 1) * reps)
            if kind == "remove":
                out = batch.layers[layer + 1].mu[rows][..., :-1].abs().sum(-2)
                strength = torch.where(masks[layer][rows] > 0, out, math.inf)
                masks[layer][rows, strength.argmin(-1)] = 0.0
            elif kind == "add":
                j = active[layer]
                here, above = batch.layers[layer].mu, batch.layers[layer + 1].mu
                here[rows, j] = ADDED_SCALE * torch.randn(reps, here.shape[-1], generator=gen)
                above[rows, :, j] = ADDED_SCALE * torch.randn(reps, above.shape[1], generator=gen)
                masks[layer][rows, j] = 1.0
    freeze_structure(batch, masks)
    return batch, moves


def run_cell(truth: str, prior: str, n: int, replicates: int, seed: int = SEED) -> dict:
    """Steps 1 to 3 for one cell; ``seed`` draws the truth, the data and the replicates'
    seeds, as in ``bench_recovery``."""
    import torch

    from simulations import ModelConfig
    from simulations.rng import replicate_seeds
    from simulations.structure import ElboEstimate

    torch.set_num_threads(1)
    started = time.perf_counter()
    spec = PANEL[truth]
    data = generate_truth(truth, n, replicates, seed)
    activation = "tanh" if truth == "tanh_p200" else "relu"
    config = ModelConfig(
        p=data.p, hidden=spec["hidden"], prior=prior, activation=activation,
        sigma_e=spec["noise"],
    )  # fmt: skip
    model = placed_student(data, config, replicate_seeds(seed, replicates, "model"))
    active = tuple(int(a) for a in data.truth.active_nodes)
    batch, moves = move_arms(model, active)
    x = data.x_train.repeat(len(moves), 1, 1)
    y = data.y_train.repeat(len(moves), 1, 1)
    _train(batch, x, y, MOVE)
    neg_elbo = ElboEstimate(batch, x, y, rows=n, draws=DRAWS)().numpy().reshape(len(moves), -1)
    f = batch.mean_function(data.x_test)
    rmse = (f - data.f_test.to(f.dtype)).square().mean((1, 2)).sqrt().numpy()
    rmse = rmse.reshape(len(moves), -1)
    row = {
        "truth": truth, "prior": prior, "n": n, "replicates": replicates,
        "true": active, "neg_elbo": neg_elbo[0].tolist(), "rmse": rmse[0].tolist(),
    }  # fmt: skip
    for a, (kind, layer) in enumerate(moves[1:], start=1):
        row[f"{kind}_{layer + 1}"] = (n * (neg_elbo[a] - neg_elbo[0])).tolist()
        row[f"{kind}_{layer + 1}_rmse"] = rmse[a].tolist()
    row["wall_s"] = time.perf_counter() - started
    return row


def _span(values) -> str:
    return f"{min(values):.1f} to {max(values):.1f}"


def markdown(rows: list[dict]) -> str:
    """The ``RESULTS.md`` table: per move and layer, the range over replicates in nats."""
    lines = [
        "| truth | prior | n | truth -ELBO/n | truth RMSE vs f0 | remove a true node (nats), "
        "by layer | add a node (nats), by layer | wall s |",
        "|---|---|---:|---|---|---|---|---:|",
    ]
    for r in rows:
        depth = len(r["true"])
        remove = "; ".join(_span(r[f"remove_{i}"]) for i in range(1, depth + 1))
        add = "; ".join(_span(r[f"add_{i}"]) for i in range(1, depth + 1))
        lines.append(
            f"| {r['truth']} {r['true']} | {r['prior']} | {r['n']} | "
            f"{min(r['neg_elbo']):.4f} to {max(r['neg_elbo']):.4f} | "
            f"{min(r['rmse']):.3f} to {max(r['rmse']):.3f} | {remove} | {add} | "
            f"{r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--truth", action="append", choices=sorted(PANEL))
    parser.add_argument("--prior", action="append", choices=("ss-gl", "ss-ghs"))
    parser.add_argument("--n", type=int, nargs="+", default=[8192])
    parser.add_argument("--replicates", type=int, default=4)
    add_seed_option(parser)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--csv", default=None)
    args = parser.parse_args()
    if args.replicates < 1:
        parser.error(f"--replicates must be >= 1 (got {args.replicates})")
    if min(args.n) < BATCH:
        parser.error(f"--n must be >= {BATCH}, the minibatch size (got {min(args.n)})")
    cells = [
        (t, p, n)
        for t in args.truth or list(PANEL)
        for p in args.prior or ["ss-gl", "ss-ghs"]
        for n in args.n
    ]
    cells = [(*cell, args.replicates, args.seed) for cell in cells]
    rows = run_cells(run_cell, cells, args.workers, markdown, args.csv)
    if args.markdown:
        print(markdown(rows))


if __name__ == "__main__":
    main()
