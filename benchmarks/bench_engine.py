"""Engine benchmark: the batched engine against a loop over R = 1 models and a plain MLP.

Run ``python benchmarks/bench_engine.py`` (about 10 minutes on 2 cores). Two workloads:

* W1: p = 2000, hidden 6-4-3, tanh, batch 500 (n = 2000 per replicate);
* W2: p = 100, hidden 256-256, ReLU, batch 512 (n = 2048 per replicate).

For SS-GL and SS-GHS it measures the batched engine at R in {1, 16, 64}; a
Python loop over R separate R = 1 models (each trained by ``fit``); and a plain
deterministic ``nn.Linear`` MLP of the same shape trained with Adam on equally
drawn minibatches (the floor). Every step is timed on its own (``fit``'s progress
callback marks the end of each step), the first two are dropped, and the tables
give the median and the minimum; the loop's step is the sum over its R models.
Ratios are against baselines measured in the same run. Targets: W1 at R = 64,
batched replicate-steps per second >= 10x the loop's; W2, one SS-GL / SS-GHS
step <= 1.5x the plain step.

``--case W2:ss-ghs:1 --steps 400`` runs one configuration for a fixed number of
steps and exits (``plain`` as the prior runs the plain MLP), for timing whole
processes with an external tool.
"""

from __future__ import annotations

import argparse
import itertools
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


def summary(intervals) -> dict:
    """Median and minimum of per-step wall times (seconds), the first two steps dropped."""
    kept = sorted(intervals[2:])
    return {"median": statistics.median(kept), "min": kept[0]}


def engine_steps(model: BayesianMLP, x, y, w: Workload, steps: int) -> list[float]:
    """Wall time of each step of one ``fit`` call (from its progress callback)."""
    marks = [time.perf_counter()]
    fit(model, x, y, train_config(w, steps), progress=lambda *_: marks.append(time.perf_counter()))
    return [b - a for a, b in itertools.pairwise(marks)]


def batched(w: Workload, prior: str, replicates: int, x, y, steps: int) -> dict:
    model = engine_model(w, prior, range(replicates))
    return summary(engine_steps(model, x[:replicates], y[:replicates], w, steps))


def loop(w: Workload, prior: str, replicates: int, x, y, steps: int) -> dict:
    """One step of each of ``replicates`` separate R = 1 models: the sum of their step times."""
    per_model = [
        summary(engine_steps(engine_model(w, prior, [r]), x[r : r + 1], y[r : r + 1], w, steps))
        for r in range(replicates)
    ]
    return {key: sum(m[key] for m in per_model) for key in ("median", "min")}


def plain(w: Workload, x, y, steps: int) -> dict:
    """Step times of a deterministic ``nn.Linear`` MLP of the same widths, Adam, same batches."""
    torch.manual_seed(0)
    widths = (w.p, *w.hidden)
    layers: list[nn.Module] = []
    for i in range(len(w.hidden)):
        act = nn.Tanh() if w.activation == "tanh" else nn.ReLU()
        layers += [nn.Linear(widths[i], widths[i + 1]), act]
    net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x0, y0 = x[0], y[0]
    gen = torch.Generator().manual_seed(1)
    intervals = []
    for _ in range(steps):
        start = time.perf_counter()
        idx = torch.randint(w.n, (w.batch,), generator=gen)
        loss = (net(x0.index_select(0, idx)) - y0.index_select(0, idx)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        intervals.append(time.perf_counter() - start)
    return summary(intervals)


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


def run_all(steps: dict[str, int], loop_steps: int, names=("W1", "W2")) -> dict:
    results = {"machine": machine(), "workloads": {}}
    for name in names:
        w = workload(name)
        x, y = make_data(w, 64)
        out = {"plain": plain(w, x, y, 4 * steps[name])}
        print(f"{name} plain: {out['plain']}", flush=True)
        for prior in PRIORS:
            rows = {}
            for reps in (1, 16, 64):
                rows[reps] = {"batched": batched(w, prior, reps, x, y, steps[name])}
                if reps > 1:
                    rows[reps]["loop"] = loop(w, prior, reps, x, y, loop_steps)
                print(f"{name} {prior} R={reps}: {rows[reps]}", flush=True)
            out[prior] = rows
        results["workloads"][name] = out
    return results


def table(results: dict, key: str = "median") -> str:
    lines = [
        f"| workload | prior | R | batched step ({key}, ms) | replicate-steps/s "
        "| loop replicate-steps/s | batched / loop | step / R / plain step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, out in results["workloads"].items():
        base = out["plain"][key]
        lines.append(f"| {name} | plain MLP | 1 | {base * 1e3:.2f} | {1 / base:.0f} | | | 1.00 |")
        for prior in PRIORS:
            for reps, row in out[prior].items():
                step = row["batched"][key]
                rate = int(reps) / step
                if "loop" in row:
                    loop_rate = int(reps) / row["loop"][key]
                    loop_cells = f"{loop_rate:.0f} | {rate / loop_rate:.1f}x"
                else:
                    loop_cells = " | "
                per_rep = step / int(reps) / base
                cells = (name, prior, reps, f"{step * 1e3:.2f}", f"{rate:.0f}", loop_cells)
                lines.append("| " + " | ".join(map(str, cells)) + f" | {per_rep:.2f} |")
    return "\n".join(lines)


def single_case(case: str, steps: int) -> None:
    name, prior, reps = case.split(":")
    w = workload(name)
    x, y = make_data(w, int(reps))
    if prior == "plain":
        plain(w, x, y, steps)
    else:
        engine_steps(engine_model(w, prior, range(int(reps))), x, y, w, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke run)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--case", help="WORKLOAD:PRIOR:R, run it --steps steps and exit")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), help="only this workload")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.case:
        single_case(args.case, args.steps)
        return
    steps = {"W1": 6, "W2": 6} if args.quick else {"W1": 30, "W2": 60}
    names = (args.workload,) if args.workload else ("W1", "W2")
    results = run_all(steps, 4 if args.quick else 12, names)
    print(json.dumps(results["machine"]))
    print(table(results, "median"))
    print()
    print(table(results, "min"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
