"""Benchmark: ``contraction_rate`` for 20 hidden layers and 1000 values of n (target: under 50 ms).

Run ``python benchmarks/bench_theory.py`` (add ``--markdown`` for the RESULTS.md table).
Each configuration is timed with ``time.perf_counter`` (one warm-up call, then
``--repeat`` calls): the minimum and median wall time per call, and the minimum process
CPU time (``time.process_time``), are reported. Timings are not asserted in tests; they
depend on the machine and its load, so the script also prints the CPU count and the
1-minute load average it ran under.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from ssbnn_theory import Architecture, contraction_rate, symbolic_rate

N_GRID = np.geomspace(1e3, 1e9, 1000)

ARCHITECTURES = {
    # 20 equal hidden layers: equal layers share their slab computation
    "uniform 20 x 1000 (50 active)": Architecture(1000, [1000] * 20, [50] * 20, 2.0, "relu"),
    # 20 different hidden layers (widths, active counts and bounds all differ): worst case
    "heterogeneous 20 layers": Architecture(
        1000,
        list(range(500, 1500, 50)),
        list(range(10, 50, 2)),
        [float(b) for b in np.linspace(0.5, 3.0, 21)],
        "relu",
    ),
}


def _time(call, repeat: int) -> tuple[float, float, float]:
    """Minimum and median wall time (``time.perf_counter``) and minimum process CPU time.

    CPU time (``time.process_time``) is what the call costs when it has a core to itself;
    on a shared, loaded machine the wall time is larger by the time spent waiting.
    """
    call()  # warm-up: caches of the architecture, numpy/scipy code paths
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return min(wall), statistics.median(wall), min(cpu)


def run(repeat: int) -> list[dict[str, object]]:
    """Time every (architecture, prior, conditions) configuration; returns rows."""
    rows = []
    for name, arch in ARCHITECTURES.items():
        for prior in ("ss-ig", "ss-gl", "ss-ghs"):
            for conditions in (False, True):
                best, median, cpu = _time(
                    lambda a=arch, p=prior, c=conditions: contraction_rate(
                        a, p, N_GRID, conditions=c
                    ),
                    repeat,
                )
                rows.append(
                    {
                        "architecture": name,
                        "prior": prior,
                        "conditions": conditions,
                        "min_ms": 1e3 * best,
                        "median_ms": 1e3 * median,
                        "cpu_ms": 1e3 * cpu,
                    }
                )
    small = Architecture(5, [4, 3], [2, 1], [1.0, 2.0, 0.5])
    best, median, cpu = _time(lambda: symbolic_rate(small, "ss-gl").evaluate(N_GRID[:10]), 3)
    rows.append(
        {
            "architecture": "symbolic 5-4-3-1 (build + 10 evaluations)",
            "prior": "ss-gl",
            "conditions": False,
            "min_ms": 1e3 * best,
            "median_ms": 1e3 * median,
            "cpu_ms": 1e3 * cpu,
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per configuration")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    rows = run(args.repeat)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average (1 min) {load:.2f}, numpy {np.__version__}"
    )
    if args.markdown:
        print(
            "| architecture | prior | conditions | wall min (ms) | wall median (ms) "
            "| CPU min (ms) |"
        )
        print("|---|---|---|---:|---:|---:|")
    for row in rows:
        if args.markdown:
            print(
                f"| {row['architecture']} | {row['prior']} | {row['conditions']} | "
                f"{row['min_ms']:.1f} | {row['median_ms']:.1f} | {row['cpu_ms']:.1f} |"
            )
        else:
            print(
                f"{row['architecture']:<45} {row['prior']:<7} conditions={row['conditions']!s:<5} "
                f"min {row['min_ms']:7.1f} ms   median {row['median_ms']:7.1f} ms   "
                f"CPU {row['cpu_ms']:7.1f} ms"
            )


if __name__ == "__main__":
    main()
