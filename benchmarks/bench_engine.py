"""Engine benchmark: the batched engine against a loop over R = 1 models and a plain MLP.

Run ``python benchmarks/bench_engine.py`` (about 10 minutes on 2 cores). Two workloads:

* W1: p = 2000, hidden 6-4-3, tanh, batch 500 (n = 2000 per replicate);
* W2: p = 100, hidden 256-256, ReLU, batch 512 (n = 2048 per replicate).

For SS-GL and SS-GHS it measures the batched engine at R in {1, 16, 64}; a
Python loop over R separate R = 1 models (each trained by ``fit``); and a plain
deterministic ``nn.Linear`` MLP of the same shape trained with Adam on the same
minibatches (the floor). A step time is the slope of wall time over the number
of steps, ``(T(2K) - T(K)) / K`` with medians over repeats, which removes the
fixed cost of a ``fit`` call (validation, setup). Ratios are against baselines
measured in the same run. Targets: W1 at R = 64, batched replicate-steps per
second >= 10x the loop's; W2, one SS-GL / SS-GHS step <= 1.5x the plain step.

``--case W2:ss-ghs:1 --steps 400`` runs one configuration for a fixed number of
steps and exits (``plain`` as the prior runs the plain MLP), for timing whole
processes with an external tool.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from simulations import BayesianMLP, ModelConfig, TrainConfig, fit

WORKLOADS = {
    "W1": {"p": 2000, "hidden": (6, 4, 3), "activation": "tanh", "batch": 500, "n": 2000},
    "W2": {"p": 100, "hidden": (256, 256), "activation": "relu", "batch": 512, "n": 2048},
}
PRIORS = ("ss-gl", "ss-ghs")


@dataclass(frozen=True)
class Workload:
    name: str
    p: int
    hidden: tuple[int, ...]
    activation: str
    batch: int
    n: int


def workload(name: str) -> Workload:
    return Workload(name, **WORKLOADS[name])


def make_data(w: Workload, replicates: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(replicates, w.n, w.p, generator=gen) * 2 - 1
    y = torch.randn(replicates, w.n, 1, generator=gen)
    return x, y


def engine_model(w: Workload, prior: str, seeds) -> BayesianMLP:
    config = ModelConfig(p=w.p, hidden=w.hidden, activation=w.activation, prior=prior, sigma_e=1.0)
    return BayesianMLP(config, list(seeds), n=w.n)


def train_config(w: Workload, steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=w.batch, log_every=steps)


def timed(run, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return time.perf_counter() - start


def step_time(run, steps: int, repeats: int) -> float:
    """Seconds per step: median over repeats of ``(T(2K) - T(K)) / K``."""
    run(2)  # warm-up
    slopes = []
    for _ in range(repeats):
        slopes.append((timed(run, 2 * steps) - timed(run, steps)) / steps)
    return statistics.median(slopes)


def engine_runner(w: Workload, prior: str, replicates: int, x, y):
    model = engine_model(w, prior, range(replicates))
    xs, ys = x[:replicates], y[:replicates]
    return lambda steps: fit(model, xs, ys, train_config(w, steps))


def loop_runner(w: Workload, prior: str, replicates: int, x, y):
    models = [engine_model(w, prior, [r]) for r in range(replicates)]

    def run(steps):
        for r, model in enumerate(models):
            fit(model, x[r : r + 1], y[r : r + 1], train_config(w, steps))

    return run


def plain_runner(w: Workload, x, y):
    torch.manual_seed(0)
    widths = (w.p, *w.hidden)
    layers: list[nn.Module] = []
    for i in range(len(w.hidden)):
        layers += [
            nn.Linear(widths[i], widths[i + 1]),
            nn.Tanh() if w.activation == "tanh" else nn.ReLU(),
        ]
    net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x0, y0 = x[0], y[0]
    gen = torch.Generator().manual_seed(1)

    def run(steps):
        for _ in range(steps):
            idx = torch.randint(w.n, (w.batch,), generator=gen)
            loss = (net(x0.index_select(0, idx)) - y0.index_select(0, idx)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    return run


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def run_all(steps: dict[str, int], repeats: int) -> dict:
    results = {"machine": machine(), "workloads": {}}
    for name in ("W1", "W2"):
        w = workload(name)
        x, y = make_data(w, 64)
        k = steps[name]
        out = {"plain_step_s": step_time(plain_runner(w, x, y), 4 * k, repeats)}
        for prior in PRIORS:
            rows = {}
            for reps in (1, 16, 64):
                batched = step_time(
                    engine_runner(w, prior, reps, x, y), max(2, k // max(1, reps // 16)), repeats
                )
                rows[reps] = {"batched_step_s": batched}
                if reps > 1:
                    loop = step_time(loop_runner(w, prior, reps, x, y), max(2, k // 4), 1)
                    rows[reps]["loop_step_s"] = loop
                print(f"{name} {prior} R={reps}: {rows[reps]}", flush=True)
            out[prior] = rows
        results["workloads"][name] = out
    return results


def table(results: dict) -> str:
    lines = [
        "| workload | prior | R | batched step (ms) | replicate-steps/s "
        "| loop replicate-steps/s | batched / loop | step / R / plain step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, out in results["workloads"].items():
        plain = out["plain_step_s"]
        lines.append(f"| {name} | plain MLP | 1 | {plain * 1e3:.2f} | {1 / plain:.0f} | | | 1.00 |")
        for prior in PRIORS:
            for reps, row in out[prior].items():
                step = row["batched_step_s"]
                rate = int(reps) / step
                if "loop_step_s" in row:
                    loop_rate = int(reps) / row["loop_step_s"]
                    loop = f"{loop_rate:.0f} | {rate / loop_rate:.1f}x"
                else:
                    loop = " | "
                per_rep = step / int(reps) / plain
                cells = (
                    name,
                    prior,
                    reps,
                    f"{step * 1e3:.2f}",
                    f"{rate:.0f}",
                    loop,
                    f"{per_rep:.2f}",
                )
                lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def single_case(case: str, steps: int) -> None:
    name, prior, reps = case.split(":")
    w = workload(name)
    x, y = make_data(w, int(reps))
    run = plain_runner(w, x, y) if prior == "plain" else engine_runner(w, prior, int(reps), x, y)
    run(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--case", help="WORKLOAD:PRIOR:R, run it --steps steps and exit")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    if args.case:
        single_case(args.case, args.steps)
        return
    steps = {"W1": 4, "W2": 4} if args.quick else {"W1": 16, "W2": 40}
    results = run_all(steps, 1 if args.quick else args.repeats)
    print(json.dumps(results["machine"]))
    print(table(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
