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

Sections (``--section``, default ``speed``; ``all`` runs every one):

* ``tables``: the tables above (batched against the loop and the plain MLP).
* ``speed``: the targets in one run: W1 at R = 64 (replicate-steps/s; also with
  ``TrainConfig.shuffle = "once"``, the case suffix ``:once``, which copies no data per
  step) and W2's R = 1 step against the plain MLP step, eager and compiled
  (``TrainConfig.compile``),
  with the compile time apart from the step time; with ``--baseline DIR`` the same cases
  of an older checkout in ``DIR`` run in subprocesses interleaved with this one
  (``--rounds`` times each), so ratios are against the same conditions.
* ``datapath``: the minibatch data path alone: ``index_select`` of the R * B rows of a
  step against ``copy_`` of as many bytes and a plain read (``sum``), and
  :class:`simulations.minibatch.Minibatches` per step in its two layouts; then W1's step
  at R = 64 against the parts that read its minibatch (the gather, the first layer's
  forward product and weight gradient, each timed alone), and the rates they bound.
* ``products``: a layer's three products (``x W^T + b``, ``G^T X``, ``G W``) through the
  batched GEMM and through oneDNN (:mod:`simulations.layers.products`) on the layer shapes
  of W1, W2, the recovery panel's tanh teacher and the demo, and the engine's pick.
* ``scaling``: replicate-steps/s against R (1 to 256) on W1 and W2 and against the
  hidden width at R = 16, eager and compiled, with the machine's ceilings measured in the
  same run (read bandwidth and GEMM rate) drawn as lines in ``--plot``
  (default ``benchmarks/engine_scaling.png``).
* ``gpu``: W1 and W2 at R = 64, 256, 1024 on ``--device cuda`` and the fraction of the
  device's measured GEMM rate reached.
* ``moves``: the structure moves of an ``"auto"`` fit: the removal costs of every kept
  node (:func:`simulations.structure.removal_costs`: a least-squares refit and a
  fixed-noise ELBO per node) on the demo's students (p = 20, 16-16 ReLU, SS-GL, n = 8192,
  R = 20, as ``ssbnn demo``'s four replicates of five starts), for one replicate (a trial
  or a pass usually moves one) and for all 20; with ``--baseline DIR`` the same calls with
  the ``simulations`` package of ``DIR``, interleaved (``--rounds`` times each).
* ``auto``: whole ``"auto"`` fits of the demo's cells at n = 2048 (SS-GL and SS-GHS, 20
  models each, ``max_steps = 18000``, so every phase, pass and trial runs), wall seconds;
  with ``--baseline DIR`` the same fits by ``DIR``'s package, interleaved, and whether
  both took the same steps to the same negative ELBO (a change meant to be only faster).

``--device cuda`` runs any section on the GPU (steps timed with a synchronisation in
``fit``'s progress callback). Output: the tables on stdout, one JSON object per section
with ``--json FILE`` (``docs/engine.md``, "Performance", describes the format).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from simulations import BayesianMLP, ModelConfig, TrainConfig, fit

try:
    from simulations.memory import keep_freed_memory
except ImportError:  # the package of a --baseline checkout from before it

    def keep_freed_memory() -> bool:
        return False


DEVICE = torch.device("cpu")
CLOCK = "wall"  # the clock of the headline figures: "wall" or "cpu" (process CPU time)
THREADS: int | None = None  # --threads, passed on to the subprocesses of --baseline runs
_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
HAS_COMPILE = "compile" in _FIELDS

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
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    x = torch.rand(replicates, w.n, w.p, generator=gen, device=DEVICE).mul_(2).sub_(1)
    y = torch.randn(replicates, w.n, 1, generator=gen, device=DEVICE)
    return x, y


def engine_model(w: Workload, prior: str, seeds) -> BayesianMLP:
    config = ModelConfig(p=w.p, hidden=w.hidden, activation=w.activation, prior=prior, sigma_e=1.0)
    return BayesianMLP(config, list(seeds), n=w.n, device=DEVICE)


def train_config(
    w: Workload, steps: int, compile: bool = False, shuffle: str | None = None
) -> TrainConfig:
    extra = {"compile": compile} if HAS_COMPILE else {}
    if shuffle is not None:
        extra["shuffle"] = shuffle
    if "indicator_pass" in _FIELDS:  # the pass after the timed steps is not timed: skip it
        extra["indicator_pass"] = False
    return TrainConfig(steps=steps, batch_size=w.batch, log_every=steps, **extra)


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def summary(intervals) -> dict:
    """Median and minimum of per-step wall times (seconds), the first two steps dropped."""
    kept = sorted(intervals[2:])
    return {"median": statistics.median(kept), "min": kept[0]}


def engine_steps(
    model: BayesianMLP, x, y, w: Workload, steps: int, compile: bool = False, clock=None
) -> list[float]:
    """Time of each step of one ``fit`` call (from its progress callback): wall time, or
    with ``clock="cpu"`` the process's CPU time."""
    timer = time.process_time if (clock or CLOCK) == "cpu" else time.perf_counter
    sync()
    marks = [timer()]

    def mark(*_):
        sync()
        marks.append(timer())

    fit(model, x, y, train_config(w, steps, compile), progress=mark)
    return [b - a for a, b in itertools.pairwise(marks)]


def timed_fit(
    w: Workload, prior: str, reps: int, x, y, steps: int, compile=False, shuffle=None
) -> dict:
    """Step time (s) of a fresh R-replicate model and replicate-steps/s: the mean over whole
    epochs after two warm-up steps (an epoch's steps differ in cost when the minibatch
    layout copies once per epoch), in wall and in process CPU time; and the compile time
    (the first step's excess over the mean: compilation happens in it)."""
    per_epoch = w.n // w.batch
    steps = 2 + per_epoch * max(1, -(-(steps - 2) // per_epoch))
    timer = {"wall": time.perf_counter, "cpu": time.process_time}
    marks: dict = {k: [] for k in timer}

    def mark(*_):
        sync()
        for k, t in timer.items():
            marks[k].append(t())

    model = engine_model(w, prior, range(reps))
    mark()
    fit(model, x[:reps], y[:reps], train_config(w, steps, compile, shuffle), progress=mark)
    out: dict = {"steps": steps}
    for k, m in marks.items():
        intervals = [b - a for a, b in itertools.pairwise(m)]
        mean = statistics.fmean(intervals[2:])
        out[f"{k}_step_s"] = mean
        out[f"{k}_compile_s"] = max(0.0, intervals[0] - mean) if compile else 0.0
    out["step_s"] = out[f"{CLOCK}_step_s"]
    out["rate"] = reps / out["step_s"]
    out["compile_s"] = out["wall_compile_s"]
    return out


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
    return summary(plain_intervals(w, x, y, steps))


def plain_intervals(w: Workload, x, y, steps: int) -> list[float]:
    """Each step's time (``CLOCK``) of the plain MLP, under the heap settings of ``fit``."""
    keep_freed_memory()
    torch.manual_seed(0)
    widths = (w.p, *w.hidden)
    layers: list[nn.Module] = []
    for i in range(len(w.hidden)):
        act = nn.Tanh() if w.activation == "tanh" else nn.ReLU()
        layers += [nn.Linear(widths[i], widths[i + 1]), act]
    net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
    net = net.to(DEVICE)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x0, y0 = x[0], y[0]
    gen = torch.Generator(device=DEVICE).manual_seed(1)
    intervals = []
    timer = time.process_time if CLOCK == "cpu" else time.perf_counter
    for _ in range(steps):
        sync()
        start = timer()
        idx = torch.randint(w.n, (w.batch,), generator=gen, device=DEVICE)
        loss = (net(x0.index_select(0, idx)) - y0.index_select(0, idx)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        intervals.append(timer() - start)
    return intervals


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
    if DEVICE.type == "cuda":
        cpu = f"{torch.cuda.get_device_name(DEVICE)} (host: {cpu})"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "cpu": cpu,
        "device": str(DEVICE),
        "load_average_1min": round(load, 2),
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


# --------------------------------------------------------------------------- ceilings


def _median_time(fn, repeat: int = 7) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ceilings(mbytes: int = 256) -> dict:
    """The machine's memory bandwidth (GB/s: a plain read with ``sum``, and ``copy_``, counted
    as the bytes copied) and GEMM rate (GFLOP/s, a square float32 product by the faster of
    ``torch.mm`` and, on the CPU, oneDNN's linear operator), measured now."""
    n = mbytes * 2**20 // 4
    src = torch.rand(n, device=DEVICE)
    dst = torch.empty_like(src)
    read = n * 4 / _median_time(lambda: src.sum()) / 1e9
    copy = n * 4 / _median_time(lambda: dst.copy_(src)) / 1e9
    size = 4096 if DEVICE.type == "cuda" else 1536
    a = torch.rand(size, size, device=DEVICE)
    b = torch.rand(size, size, device=DEVICE)
    out = torch.empty_like(a)
    rates = {"torch.mm": 2 * size**3 / _median_time(lambda: torch.mm(a, b, out=out)) / 1e9}
    from simulations.layers import products

    if DEVICE.type == "cpu" and products.HAS_ONEDNN:  # oneDNN's kernel, a b^T
        rates["oneDNN"] = 2 * size**3 / _median_time(lambda: products.onednn_linear(a, b)) / 1e9
    kernel = max(rates, key=rates.get)
    return {
        "read_GBps": read, "copy_GBps": copy, "gemm_GFLOPs": rates[kernel], "gemm_size": size,
        "gemm_kernel": kernel, "gemm_rates": rates,
    }  # fmt: skip


def step_cost(w: Workload) -> dict:
    """Per replicate-step: the matmul FLOPs (forward, weight and input gradients) and the
    minibatch bytes the first layer must read (forward and weight gradient)."""
    widths = (w.p, *w.hidden, 1)
    pairs = list(itertools.pairwise(widths))
    flops = 2 * w.batch * (2 * sum(a * b for a, b in pairs) + sum(a * b for a, b in pairs[1:]))
    return {"flops": flops, "bytes": 2 * w.batch * w.p * 4}


def ceiling_rates(w: Workload, c: dict) -> dict:
    """Replicate-steps/s that the measured bandwidth and GEMM rate allow for ``w``."""
    cost = step_cost(w)
    return {
        "bandwidth": c["read_GBps"] * 1e9 / cost["bytes"],
        "gemm": c["gemm_GFLOPs"] * 1e9 / cost["flops"],
    }


# --------------------------------------------------------------------------- data path


def datapath(reps: int = 64, repeat: int = 7) -> dict:
    """W1's minibatch of one step (R x B rows of p floats): gather against copy and read."""
    w = workload("W1")
    x, y = make_data(w, reps)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    perm = torch.stack([torch.randperm(w.n, generator=gen, device=DEVICE) for _ in range(reps)])
    offsets = (torch.arange(reps, device=DEVICE) * w.n).unsqueeze(1)
    idx = (perm[:, : w.batch] + offsets).reshape(-1)
    buf = x.new_empty((reps, w.batch, w.p))
    nbytes = buf.numel() * 4
    flat = x.view(reps * w.n, w.p)
    out = {
        "bytes_per_step": nbytes,
        "gather_s": _median_time(
            lambda: torch.index_select(flat, 0, idx, out=buf.view(-1, w.p)), repeat
        ),
        "copy_s": _median_time(lambda: buf.copy_(x[:, : w.batch]), repeat),
        "read_s": _median_time(lambda: x[:, w.batch : 2 * w.batch].sum(), repeat),
    }
    from simulations.minibatch import Minibatches

    per_epoch = w.n // w.batch
    for layout in ("gather", "epoch"):
        batches = Minibatches(x, y, w.batch, list(range(reps)), layout=layout)
        # a whole epoch per timing, so that the epoch layout's copy is included
        out[f"minibatches_{layout}_s"] = (
            _median_time(lambda b=batches: [b.gather(k) for k in range(per_epoch)], repeat)
            / per_epoch
        )
    for key in list(out):
        if key.endswith("_s"):
            out[key.replace("_s", "_GBps")] = nbytes / out[key] / 1e9
    out["budget"] = step_budget(w, x, y, buf, repeat)
    return out


def step_budget(w: Workload, x, y, batch, repeat: int) -> dict:
    """Where a W1 step at ``R = len(x)`` goes: the whole step (SS-GL, default options) and,
    timed alone on its operands, the minibatch gather and the first layer's forward product
    and weight gradient (``simulations.layers.products``, the engine's pick), which read
    the minibatch; the rest of the step is the difference. The gather and the two products
    bound the step's rate under random reshuffling, the products alone with shuffling once
    (no copy per step)."""
    from simulations.layers import products

    reps = len(x)
    keep_freed_memory()  # as in fit
    gen = torch.Generator(device=DEVICE).manual_seed(1)
    fan_out = w.hidden[0]
    weight = torch.randn(reps, fan_out, w.p + 1, generator=gen, device=DEVICE)
    grad = torch.randn(reps, fan_out, w.batch, generator=gen, device=DEVICE).transpose(-1, -2)
    onednn = products.use_onednn(w.batch, w.p, fan_out, batch)
    step = timed_fit(w, "ss-gl", reps, x, y, 16)["step_s"]
    flat = x.view(reps * w.n, w.p)
    idx = torch.randint(0, reps * w.n, (reps * w.batch,), generator=gen, device=DEVICE)
    times = _product_times(batch, weight, grad, onednn, repeat)
    out = {
        "replicates": reps,
        "step_s": step,
        "gather_s": _median_time(
            lambda: torch.index_select(flat, 0, idx, out=batch.view(-1, w.p)), repeat
        ),
        "forward_s": times["forward"],
        "weight_grad_s": times["weight_grad"],
    }
    reads = out["forward_s"] + out["weight_grad_s"]
    out["rest_s"] = step - out["gather_s"] - reads
    out["bound_reshuffled"] = reps / (out["gather_s"] + reads)
    out["bound_once"] = reps / reads
    out["rate"] = reps / step
    return out


def datapath_table(d: dict) -> str:
    rows = [
        ("`index_select` of the step's rows into a reused buffer", "gather"),
        ("`copy_` of as many bytes (contiguous)", "copy"),
        ("plain read (`sum`) of as many bytes", "read"),
        ("`Minibatches`, gather layout (per step)", "minibatches_gather"),
        ("`Minibatches`, epoch layout (per step, its epoch copy included)", "minibatches_epoch"),
    ]
    lines = [
        "| operation (W1, R = 64: 64 x 500 rows of 2000 floats) | ms | GB/s |",
        "|---|---|---|",
    ]
    for label, key in rows:
        lines.append(f"| {label} | {d[key + '_s'] * 1e3:.1f} | {d[key + '_GBps']:.1f} |")
    b = d["budget"]
    lines += [
        "",
        f"| W1 step, SS-GL, R = {b['replicates']} | ms | replicate-steps/s |",
        "|---|---|---|",
        f"| the whole step | {b['step_s'] * 1e3:.1f} | {b['rate']:,.0f} |",
        f"| the minibatch gather | {b['gather_s'] * 1e3:.1f} | |",
        f"| first layer, forward product | {b['forward_s'] * 1e3:.1f} | |",
        f"| first layer, weight gradient | {b['weight_grad_s'] * 1e3:.1f} | |",
        f"| the rest (the difference) | {b['rest_s'] * 1e3:.1f} | |",
        f"| bound: gather and the two products alone | | {b['bound_reshuffled']:,.0f} |",
        f"| bound: the two products alone (shuffle once) | | {b['bound_once']:,.0f} |",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- layer products

PRODUCT_SHAPES = (  # (R, B, in, out): W1's first layer, W2's layers, the first layer of the
    # recovery benchmark's tanh teacher (40 models), the demo's second layer
    (64, 500, 2000, 6), (1, 512, 100, 256), (1, 512, 256, 256), (16, 512, 256, 256),
    (40, 512, 200, 12), (20, 512, 16, 16),
)  # fmt: skip


def _product_times(x, weight, grad, onednn: bool, repeat: int) -> dict:
    """Median seconds of a layer's three products, one way (``simulations.layers.products``;
    the input gradient too, whatever the rule says of it)."""
    from simulations.layers import products

    w, b = weight[..., :-1], weight[..., -1]
    out = torch.empty_like(weight)[..., :-1]
    calls = {
        "forward": lambda: products.affine(x, w, b, onednn),
        "weight_grad": lambda: products.weight_grad(grad, x, out, onednn),
        "input_grad": lambda: products.input_grad(grad, w, onednn),
    }
    saved = products.INPUT_GRAD_MIN_OUT, products.INPUT_GRAD_MIN_BATCH
    products.INPUT_GRAD_MIN_OUT = products.INPUT_GRAD_MIN_BATCH = 0
    try:
        return {name: _median_time(call, repeat) for name, call in calls.items()}
    finally:
        products.INPUT_GRAD_MIN_OUT, products.INPUT_GRAD_MIN_BATCH = saved


def layer_products(repeat: int = 15) -> list[dict]:
    """The three products of a layer's step (``x W^T + b``, ``G^T X``, ``G W``) through the
    batched GEMM and, on the CPU, through oneDNN (``simulations.layers.products``), and which
    of the two the engine's rule picks."""
    from simulations.layers import products

    keep_freed_memory()  # as in fit
    rows = []
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    for reps, batch, fan_in, fan_out in PRODUCT_SHAPES:
        x = torch.randn(reps, batch, fan_in, generator=gen, device=DEVICE)
        weight = torch.randn(reps, fan_out, fan_in + 1, generator=gen, device=DEVICE)
        # the layouts of a step: the data batch-major, the output's gradient feature-major
        grad = torch.randn(reps, fan_out, batch, generator=gen, device=DEVICE).transpose(-1, -2)
        onednn = products.use_onednn(batch, fan_in, fan_out, x)
        grad_onednn = onednn and products.input_grad_onednn(batch, fan_out)
        picks = {"forward": onednn, "weight_grad": onednn, "input_grad": grad_onednn}
        row = {
            "shape": (reps, batch, fan_in, fan_out),
            "rule": {k: "onednn" if v else "gemm" for k, v in picks.items()},
        }
        row["gemm_s"] = _product_times(x, weight, grad, False, repeat)
        if DEVICE.type == "cpu" and products.HAS_ONEDNN:  # the float32 CPU path
            row["onednn_s"] = _product_times(x, weight, grad, True, repeat)
        rows.append(row)
    return rows


def products_table(rows: list[dict]) -> str:
    lines = [
        "| R, B, in -> out | product | batched GEMM (ms) | oneDNN (ms) | GEMM / oneDNN | rule |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        reps, batch, fan_in, fan_out = row["shape"]
        for product, gemm in row["gemm_s"].items():
            fast = row.get("onednn_s", {}).get(product)
            cells = (
                f"{reps}, {batch}, {fan_in} -> {fan_out}", product, f"{gemm * 1e3:.3f}",
                "-" if fast is None else f"{fast * 1e3:.3f}",
                "-" if fast is None else f"{gemm / fast:.2f}", row["rule"][product],
            )  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- speed targets


def _subprocess_case(root: str, case: str, steps: int, compile: bool) -> dict:
    """One case measured by the checkout in ``root`` (a fresh process)."""
    cmd = [sys.executable, __file__, "--case", case, "--steps", str(steps), "--case-json"]
    cmd += ["--clock", CLOCK]
    if THREADS:
        cmd += ["--threads", str(THREADS)]
    if compile:
        cmd.append("--compile")
    # This script, with the ``simulations`` package of ``root`` first on the path.
    env = dict(os.environ, PYTHONPATH=str(root))
    res = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def case_result(case: str, steps: int, compile: bool = False) -> dict:
    """``WORKLOAD:PRIOR:R[:SHUFFLE]`` timed in this process (``plain``: the plain MLP;
    ``SHUFFLE``: ``TrainConfig.shuffle``, default the engine's)."""
    name, prior, reps, *shuffle = case.split(":")
    if name == "moves":
        return moves_result(prior, int(reps), steps, *shuffle)
    if name == "auto":  # reps: the cell's n; steps: max_steps
        return auto_result(prior, int(reps), steps)
    w = workload(name)
    x, y = make_data(w, int(reps))
    if prior == "plain":
        step = statistics.fmean(plain_intervals(w, x, y, steps)[2:])
        return {"step_s": step, "rate": 1 / step, "compile_s": 0.0}
    return timed_fit(w, prior, int(reps), x, y, steps, compile, *shuffle)


SPEED_CASES = (
    "W1:ss-gl:64", "W1:ss-ghs:64", "W1:ss-gl:64:once", "W1:ss-ghs:64:once",
    "W2:ss-gl:1", "W2:ss-ghs:1", "W2:plain:1",
)  # fmt: skip


def speed(rounds: int, baseline: str | None, compile: bool, quick: bool) -> dict:
    """The target cases, ``rounds`` times, interleaved: this checkout (eager, compiled) and
    the ``baseline`` checkout in turn; medians over the rounds."""
    steps = {"W1": 8 if quick else 16, "W2": 30 if quick else 120}
    variants = ["eager"] + (["compiled"] if compile and HAS_COMPILE else [])
    variants += ["baseline"] if baseline else []
    raw: dict = {v: {c: [] for c in SPEED_CASES} for v in variants}
    compile_s: dict = {}
    here = str(Path(__file__).resolve().parents[1])
    for r in range(rounds):
        for case in SPEED_CASES:
            n = steps[case[:2]] * (2 if "plain" in case else 1)
            for v in variants:
                if (v == "compiled" and "plain" in case) or (v == "baseline" and "once" in case):
                    continue
                if v == "baseline":
                    res = _subprocess_case(baseline, case, n, False)
                else:
                    res = _subprocess_case(here, case, n, v == "compiled")
                raw[v][case].append(res)
                if v == "compiled":
                    compile_s.setdefault(case, []).append(res["compile_s"])
                print(f"round {r} {v} {case}: {res['step_s'] * 1e3:.2f} ms", flush=True)
    med = {
        v: {
            c: statistics.median(x["step_s"] for x in runs) if runs else None
            for c, runs in cases.items()
        }
        for v, cases in raw.items()
    }
    return {"rounds": rounds, "step_s": med, "compile_s": compile_s, "raw": raw}


def default_variants(steps: int = 36_000) -> dict:
    """The step ``TrainConfig.compile = "auto"`` (the default) picks for a fit of each
    workload with a budget of ``steps`` (an ``"auto"`` run's cap up to n = 8192); empty in
    a checkout without the rule."""
    try:
        from simulations.step import compile_pays
    except ImportError:
        return {}
    picks = {}
    for name in WORKLOADS:
        w = workload(name)
        pays = compile_pays(engine_model(w, PRIORS[0], [0]), steps)
        picks[name] = "compiled" if pays else "eager"
    return picks


def speed_table(sp: dict) -> str:
    med = sp["step_s"]
    variants = list(med)
    head = "| case | " + " | ".join(f"{v} step (ms) | {v} replicate-steps/s" for v in variants)
    lines = [head + " |", "|---" * (1 + 2 * len(variants)) + "|"]
    for case in SPEED_CASES:
        reps = int(case.split(":")[2])
        cells = []
        for v in variants:
            t = med[v].get(case)
            cells += ["", ""] if t is None else [f"{t * 1e3:.2f}", f"{reps / t:.0f}"]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines.append("")
    for v in variants:
        plain_step = med[v].get("W2:plain:1") or med["eager"]["W2:plain:1"]
        for prior in PRIORS:
            t = med[v].get(f"W2:{prior}:1")
            if t is not None:
                lines.append(f"* {v}: W2 {prior} R = 1 step / plain step = {t / plain_step:.2f}")
    for v in [v for v in variants if v != "baseline"]:
        for prior in PRIORS:
            once, every = med[v].get(f"W1:{prior}:64:once"), med[v].get(f"W1:{prior}:64")
            if once and every:
                lines.append(
                    f"* {v}: W1 {prior} R = 64, shuffle once / every epoch: "
                    f"{every / once:.2f}x replicate-steps/s"
                )
    if "baseline" in med:
        for v in [v for v in variants if v != "baseline"]:
            for prior in PRIORS:
                for case in (f"W1:{prior}:64", f"W1:{prior}:64:once"):
                    ratio = med["baseline"][f"W1:{prior}:64"] / med[v][case]
                    lines.append(f"* {v} {case} / baseline W1:{prior}:64: {ratio:.2f}x")
    for case, times in sp["compile_s"].items():
        lines.append(f"* compile time {case}: median {statistics.median(times):.1f} s")
    picks = default_variants()
    if picks:
        chosen = ", ".join(f"{name} {v}" for name, v in picks.items())
        lines.append(f'* the default step (`compile = "auto"`, a 36,000-step budget): {chosen}')
    return "\n".join(lines)


# --------------------------------------------------------------------------- scaling


SCALING_R = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SCALING_WIDTHS = (16, 32, 64, 128, 256, 512)
COMPILED_R = (1, 16, 64, 256)
COMPILED_WIDTHS = (32, 128, 512)


def scaling(compile: bool, quick: bool, prior: str = "ss-gl") -> dict:
    """Replicate-steps/s against R (W1 with n = 1000 to bound memory, W2) and against the
    hidden width (W2's shape, R = 16); eager, and compiled on a subset."""
    c = ceilings()
    out: dict = {"ceilings": c, "vs_R": {}, "vs_width": {}, "prior": prior, "clock": CLOCK}
    out["machine"], out["threads"] = machine(), torch.get_num_threads()
    r_values = SCALING_R[:7] if quick else SCALING_R
    steps = 6 if quick else 12
    for name in ("W1", "W2"):
        w = workload(name)
        if name == "W1":
            w = dataclasses.replace(w, n=1000)
        x, y = make_data(w, max(r_values))
        rows = {}
        for reps in r_values:
            rows[reps] = {"eager": timed_fit(w, prior, reps, x, y, steps)}
            if compile and HAS_COMPILE and reps in COMPILED_R:
                rows[reps]["compiled"] = timed_fit(w, prior, reps, x, y, steps, True)
            print(f"scaling {name} R={reps}: {rows[reps]}", flush=True)
        out["vs_R"][name] = {"rows": rows, "ceiling": ceiling_rates(w, c), **step_cost(w)}
        del x, y
    reps = 16
    for width in SCALING_WIDTHS[:4] if quick else SCALING_WIDTHS:
        w = dataclasses.replace(workload("W2"), hidden=(width, width))
        x, y = make_data(w, reps)
        row = {"eager": timed_fit(w, prior, reps, x, y, steps)}
        if compile and HAS_COMPILE and width in COMPILED_WIDTHS:
            row["compiled"] = timed_fit(w, prior, reps, x, y, steps, True)
        row["ceiling"] = ceiling_rates(w, c)
        out["vs_width"][width] = row
        print(f"scaling width {width}: {row}", flush=True)
    return out


def scaling_table(sc: dict) -> str:
    c = sc["ceilings"]
    lines = [
        f"Ceilings measured in the run: read {c['read_GBps']:.1f} GB/s, copy "
        f"{c['copy_GBps']:.1f} GB/s, GEMM {c['gemm_GFLOPs']:.0f} GFLOP/s "
        f"({c['gemm_size']}^2 float32 product, {c.get('gemm_kernel', 'torch.mm')}).",
        "",
        "| workload | R | eager replicate-steps/s | compiled | bandwidth ceiling | GEMM ceiling |",
        "|---|---|---|---|---|---|",
    ]
    for name, block in sc["vs_R"].items():
        for reps, row in block["rows"].items():
            comp = row.get("compiled", {}).get("rate")
            lines.append(
                f"| {name} | {reps} | {row['eager']['rate']:.0f} | "
                f"{'' if comp is None else f'{comp:.0f}'} | "
                f"{block['ceiling']['bandwidth']:.0f} | {block['ceiling']['gemm']:.0f} |"
            )
    lines += ["", "| width (R = 16) | eager | compiled | bandwidth ceiling | GEMM ceiling |"]
    lines.append("|---|---|---|---|---|")
    for width, row in sc["vs_width"].items():
        comp = row.get("compiled", {}).get("rate")
        lines.append(
            f"| {width} | {row['eager']['rate']:.0f} | {'' if comp is None else f'{comp:.0f}'} | "
            f"{row['ceiling']['bandwidth']:.0f} | {row['ceiling']['gemm']:.0f} |"
        )
    return "\n".join(lines)


def plot_scaling(sc: dict, path: str) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, (name, block) in zip(axes[:2], sc["vs_R"].items(), strict=False):
        reps = [int(r) for r in block["rows"]]
        eager = [row["eager"]["rate"] for row in block["rows"].values()]
        ax.plot(reps, eager, "o-", label="eager")
        comp = [(int(r), row["compiled"]["rate"]) for r, row in block["rows"].items()
                if "compiled" in row]  # fmt: skip
        if comp:
            ax.plot(*zip(*comp, strict=True), "s--", label="compiled")
        ax.axhline(block["ceiling"]["bandwidth"], color="C3", ls=":", label="bandwidth ceiling")
        ax.axhline(block["ceiling"]["gemm"], color="C2", ls="-.", label="GEMM ceiling")
        ax.set(xscale="log", yscale="log", xlabel="replicates R", ylabel="replicate-steps/s")
        ax.set_title(f"{name} ({sc['prior']})")
        ax.legend(fontsize=8)
    ax = axes[2]
    widths = [int(k) for k in sc["vs_width"]]
    rows = list(sc["vs_width"].values())
    ax.plot(widths, [r["eager"]["rate"] for r in rows], "o-", label="eager")
    comp = [(wd, r["compiled"]["rate"]) for wd, r in zip(widths, rows, strict=True)
            if "compiled" in r]  # fmt: skip
    if comp:
        ax.plot(*zip(*comp, strict=True), "s--", label="compiled")
    ax.plot(widths, [r["ceiling"]["bandwidth"] for r in rows], "C3:", label="bandwidth ceiling")
    ax.plot(widths, [r["ceiling"]["gemm"] for r in rows], "C2-.", label="GEMM ceiling")
    ax.set(xscale="log", yscale="log", xlabel="hidden width (2 layers, p = 100, R = 16)")
    ax.set_xticks(widths, [str(wd) for wd in widths])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title("W2 shape against width")
    ax.legend(fontsize=8)
    c = sc["ceilings"]
    fig.suptitle(
        f"{sc.get('machine', machine())['cpu']}, {sc.get('threads', torch.get_num_threads())} "
        f"thread(s), {sc.get('clock', CLOCK)} time; read {c['read_GBps']:.1f} GB/s, GEMM "
        f"{c['gemm_GFLOPs']:.0f} GFLOP/s (measured in the same run)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- GPU


def gpu(compile: bool, quick: bool) -> dict:
    """W1 and W2 at R = 64, 256, 1024 and the fraction of the measured GEMM rate reached."""
    c = ceilings(1024)
    out: dict = {"ceilings": c, "rows": {}}
    for name in ("W1", "W2"):
        w = workload(name)
        cost = step_cost(w)
        for reps in (64, 256) if quick else (64, 256, 1024):
            x, y = make_data(w, reps)
            for prior in PRIORS:
                row = {"eager": timed_fit(w, prior, reps, x, y, 8 if quick else 20)}
                # compiled once per workload (each shape compiles anew: tens of seconds)
                if compile and HAS_COMPILE and prior == "ss-gl" and reps == 256:
                    row["compiled"] = timed_fit(w, prior, reps, x, y, 8 if quick else 20, True)
                for v in list(row):
                    row[v]["gemm_fraction"] = (
                        row[v]["rate"] * cost["flops"] / 1e9 / c["gemm_GFLOPs"]
                    )
                out["rows"][f"{name}:{prior}:{reps}"] = row
                print(f"gpu {name} {prior} R={reps}: {row}", flush=True)
            del x, y
            torch.cuda.empty_cache() if DEVICE.type == "cuda" else None
    return out


def gpu_table(g: dict) -> str:
    c = g["ceilings"]
    lines = [
        f"Device ceilings: read {c['read_GBps']:.0f} GB/s, copy {c['copy_GBps']:.0f} GB/s, "
        f"GEMM {c['gemm_GFLOPs']:.0f} GFLOP/s ({c['gemm_size']}^2 float32).",
        "",
        "| case | variant | step (ms) | replicate-steps/s | fraction of GEMM rate | compile (s) |",
        "|---|---|---|---|---|---|",
    ]
    for case, row in g["rows"].items():
        for v, r in row.items():
            lines.append(
                f"| {case} | {v} | {r['step_s'] * 1e3:.2f} | {r['rate']:.0f} | "
                f"{r['gemm_fraction']:.3f} | {r['compile_s']:.1f} |"
            )
    return "\n".join(lines)


MOVES = Workload("moves", p=20, hidden=(16, 16), activation="relu", batch=512, n=8192)
MOVES_CASES = ("moves:ss-gl:20:one", "moves:ss-gl:20:all")


def moves_result(prior: str, reps: int, repeat: int, who: str = "one") -> dict:
    """Median time of ``removal_costs`` over ``repeat`` calls: replicate 0 (``who = "one"``)
    or every replicate (``"all"``) priced, on a frozen model of the demo's shape."""
    from simulations.structure import ElboEstimate, removal_costs

    x, y = make_data(MOVES, reps)
    model = engine_model(MOVES, prior, range(reps))
    model.freeze_masks()
    elbo = ElboEstimate(model, x, y, rows=4096, draws=4)  # the convergence rule's estimate
    taking_part = torch.arange(reps) == 0 if who == "one" else torch.ones(reps, dtype=torch.bool)
    step = _median_time(lambda: removal_costs(model, elbo, taking_part), repeat)
    return {"step_s": step, "rate": 1 / step, "compile_s": 0.0}


def moves(rounds: int, baseline: str | None, quick: bool) -> dict:
    """The ``MOVES_CASES`` in this checkout and the ``baseline`` one in turn, ``rounds``
    times; medians over the rounds (seconds per ``removal_costs`` call)."""
    here = str(Path(__file__).resolve().parents[1])
    roots = {"this": here} | ({"baseline": baseline} if baseline else {})
    raw: dict = {v: {c: [] for c in MOVES_CASES} for v in roots}
    for r in range(rounds):
        for case in MOVES_CASES:
            for v, root in roots.items():
                res = _subprocess_case(root, case, 1 if quick else 3, False)
                raw[v][case].append(res["step_s"])
                print(f"round {r} {v} {case}: {res['step_s'] * 1e3:.0f} ms", flush=True)
    med = {v: {c: statistics.median(t) for c, t in cases.items()} for v, cases in raw.items()}
    return {"rounds": rounds, "call_s": med, "raw": raw}


def moves_table(mv: dict) -> str:
    med = mv["call_s"]
    lines = ["| removal costs, R = 20 | " + " | ".join(f"{v} (ms)" for v in med) + " |"]
    lines[0] += " this / baseline |" if "baseline" in med else ""
    lines.append("|---" * (1 + len(med) + ("baseline" in med)) + "|")
    for case in MOVES_CASES:
        who = "one replicate priced" if case.endswith("one") else "all 20 priced"
        cells = [f"{med[v][case] * 1e3:.0f}" for v in med]
        if "baseline" in med:
            cells.append(f"{med['this'][case] / med['baseline'][case]:.2f}")
        lines.append(f"| {who} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- a converged fit

AUTO_CASES = ("auto:ss-gl:2048", "auto:ss-ghs:2048")


def auto_result(prior: str, n: int, max_steps: int) -> dict:
    """One ``"auto"`` fit of the demo's cell (``ssbnn demo``'s data and students: p = 20,
    16-16 ReLU, four replicates of five starts, minibatches of 512) for ``prior`` at ``n``,
    with ``max_steps`` (the dense phase resolved from it): wall seconds and what it did."""
    from simulations.demo import demo_spec
    from simulations.study import expand

    cell = next(c for c in expand(demo_spec()) if c.n == n and c.prior.label == prior)
    data = cell.generate_data()
    model = cell.build_model(str(DEVICE))
    config = dataclasses.replace(cell.train_config, max_steps=max_steps, dense_steps=None)
    start = time.perf_counter()
    report = fit(model, data.x_train, data.y_train, config)
    sync()
    wall = time.perf_counter() - start
    return {
        "step_s": wall / report.steps, "rate": report.steps / wall, "compile_s": 0.0,
        "wall_s": wall, "steps": report.steps,
        "steps_taken": report.steps_taken.tolist(),
        "neg_elbo": [float(v) for v in report.final_neg_elbo],
    }  # fmt: skip


def auto(rounds: int, baseline: str | None, quick: bool) -> dict:
    """The ``AUTO_CASES`` in this checkout and the ``baseline`` one in turn, ``rounds``
    times; medians over the rounds (wall seconds per fit)."""
    here = str(Path(__file__).resolve().parents[1])
    roots = {"this": here} | ({"baseline": baseline} if baseline else {})
    raw: dict = {v: {c: [] for c in AUTO_CASES} for v in roots}
    max_steps = 7_000 if quick else 18_000
    for r in range(rounds):
        for case in AUTO_CASES:
            for v, root in roots.items():
                res = _subprocess_case(root, case, max_steps, False)
                raw[v][case].append(res)
                print(f"round {r} {v} {case}: {res['wall_s']:.1f} s", flush=True)
    med = {
        v: {c: statistics.median(x["wall_s"] for x in runs) for c, runs in cases.items()}
        for v, cases in raw.items()
    }
    return {"rounds": rounds, "max_steps": max_steps, "wall_s": med, "raw": raw}


def auto_table(au: dict) -> str:
    med, raw = au["wall_s"], au["raw"]
    lines = [f'| "auto" fit, max_steps = {au["max_steps"]} | steps | ']
    lines[0] += " | ".join(f"{v} (s)" for v in med) + " |"
    if "baseline" in med:
        lines[0] += " this / baseline | same fit |"
    lines.append("|---" * (2 + len(med) + 2 * ("baseline" in med)) + "|")
    for case in AUTO_CASES:
        cells = [str(raw["this"][case][0]["steps"])] + [f"{med[v][case]:.1f}" for v in med]
        if "baseline" in med:
            cells.append(f"{med['this'][case] / med['baseline'][case]:.2f}")
            ours, theirs = raw["this"][case][0], raw["baseline"][case][0]
            keys = ("steps_taken", "neg_elbo")
            cells.append("yes" if all(ours[k] == theirs[k] for k in keys) else "no")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def single_case(case: str, steps: int, compile: bool = False, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(case_result(case, steps, compile)))
        return
    name, prior, reps = case.split(":")
    w = workload(name)
    x, y = make_data(w, int(reps))
    if prior == "plain":
        plain(w, x, y, steps)
    else:
        engine_steps(engine_model(w, prior, range(int(reps))), x, y, w, steps, compile)


def main() -> None:
    global DEVICE, CLOCK, THREADS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps (a smoke run)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--case", help="WORKLOAD:PRIOR:R, run it --steps steps and exit")
    parser.add_argument("--case-json", action="store_true", help="--case: print its timing")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), help="only this workload")
    parser.add_argument(
        "--section", default="speed",
        choices=(
            "tables", "speed", "datapath", "products", "scaling", "gpu", "moves", "auto", "all"
        ),
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--clock", default="wall", choices=("wall", "cpu"),
        help="time steps by wall clock or by process CPU time (on a loaded machine)",
    )  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="also time the compiled step")
    parser.add_argument("--baseline", help="speed, moves, auto: a checkout to compare with")
    parser.add_argument(
        "--rounds", type=int, default=3, help="speed, moves, auto: interleaved rounds"
    )
    parser.add_argument("--plot", default=str(Path(__file__).with_name("engine_scaling.png")))
    args = parser.parse_args()
    DEVICE, CLOCK = torch.device(args.device), args.clock
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.threads:
        THREADS = args.threads
        torch.set_num_threads(args.threads)
    if args.case:
        single_case(args.case, args.steps, args.compile, args.case_json)
        return
    results: dict = {"machine": machine()}
    print(json.dumps(results["machine"]), flush=True)
    every = ("speed", "datapath", "products", "scaling")
    sections = every if args.section == "all" else (args.section,)
    for section in sections:
        if section == "tables":
            steps = {"W1": 6, "W2": 6} if args.quick else {"W1": 30, "W2": 60}
            names = (args.workload,) if args.workload else ("W1", "W2")
            results["tables"] = run_all(steps, 4 if args.quick else 12, names)
            print(table(results["tables"], "median"))
            print()
            print(table(results["tables"], "min"))
        elif section == "speed":
            results["speed"] = speed(args.rounds, args.baseline, args.compile, args.quick)
            print(speed_table(results["speed"]))
        elif section == "datapath":
            results["datapath"] = datapath(16 if args.quick else 64)
            print(datapath_table(results["datapath"]))
        elif section == "products":
            results["products"] = layer_products(5 if args.quick else 15)
            print(products_table(results["products"]))
        elif section == "scaling":
            results["scaling"] = scaling(args.compile, args.quick)
            print(scaling_table(results["scaling"]))
            plot_scaling(results["scaling"], args.plot)
            print(f"figure: {args.plot}")
        elif section == "gpu":
            results["gpu"] = gpu(args.compile, args.quick)
            print(gpu_table(results["gpu"]))
        elif section == "moves":
            results["moves"] = moves(args.rounds, args.baseline, args.quick)
            print(moves_table(results["moves"]))
        elif section == "auto":
            results["auto"] = auto(args.rounds, args.baseline, args.quick)
            print(auto_table(results["auto"]))
        print(flush=True)
    results["machine"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
