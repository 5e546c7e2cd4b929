"""Train SS-GHS on the relu_teacher design and compare the kept nodes with the truth.

    python examples/teacher_ssghs.py                  # about 35 s on 2 cores
    SSBNN_QUICK=1 python examples/teacher_ssghs.py    # tiny sizes, seconds (CI)

On a machine shared with other jobs, run it with ``OMP_NUM_THREADS=1`` (see
``docs/engine.md``, "Threads").

The teacher is a ReLU network on 5 of the p = 20 inputs with (4, 3) active hidden
nodes; the student has 16 nodes per hidden layer and an SS-GHS prior on each, 4
replicates trained as one batch.
"""

import os

from simulations import BayesianMLP, ModelConfig, TrainConfig, compact, fit, generate
from simulations.rng import replicate_seeds

QUICK = os.environ.get("SSBNN_QUICK") == "1"
N, STEPS, BATCH = (1024, 100, 256) if QUICK else (16_384, 12_000, 512)
REPLICATES, SIGMA_E, WIDTH = 4, 0.5, 16


def main() -> None:
    data = generate(
        "relu_teacher", n=N, replicates=REPLICATES, seed=1, n_test=2000, p=20, sigma_e=SIGMA_E
    )
    config = ModelConfig(p=data.p, hidden=(WIDTH, WIDTH), prior="ss-ghs", sigma_e=SIGMA_E)
    model = BayesianMLP(config, replicate_seeds(1, REPLICATES, "model"), n=data.n)
    options = TrainConfig(steps=STEPS, batch_size=BATCH, lr=1e-2)
    report = fit(model, data.x_train, data.y_train, options)
    kept = model.kept()
    rmse = (model.mean_function(data.x_test) - data.f_test).square().mean((1, 2)).sqrt()
    print(f"{REPLICATES} replicates x {STEPS} steps: {report.wall_s:.1f} s")
    print(f"truth: active nodes {data.truth.active_nodes}, student {config.hidden}")
    print("replicate | kept nodes per layer | compact widths | RMSE of the mean network vs f0")
    for r in range(REPLICATES):
        nodes = tuple(int(k[r].sum()) for k in kept.nodes)
        widths = compact(model, r).widths
        print(f"{r:>9} | {nodes!s:>20} | {widths!s:>14} | {float(rmse[r]):.3f}")


if __name__ == "__main__":
    main()
