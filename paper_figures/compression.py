"""Compression and latency (notebook 04): test error against node density and latency.

For each prior and baseline of a study with one student: (a) the test error against the
node density (kept hidden nodes / hidden nodes; a dense layer keeps every node), (b) the
same test error against the inference latency of the compacted network
(:func:`simulations.compress.inference_latency`, via :func:`paper_figures.refit.latency_table`)
relative to the dense student's (the same weights, unpruned) timed right after it on the same
rows: ``compact_ms / dense_ms`` (1 = no gain). The ratio of two timings made back to back is
far less sensitive to other load on the machine than either timing; the absolute
milliseconds are in :func:`compression_summary`. The dense baseline compacts to the dense
student itself, so its ratio, 1 in principle, shows the timing noise of the run. Every
replicate is a point; the replicate mean is a large marker with one standard deviation as
error bars (the geometric mean and standard deviation for the latency ratio). Regression
designs show the test RMSE against noisy responses (its floor ``sigma_e`` dotted);
classification shows the test accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from paper_figures.plotting import save, student_label, style_of
from paper_figures.results import prior_families, prior_name
from paper_figures.size import Size

__all__ = ["LatencyOptions", "compression_summary", "latency_options", "tradeoff_figure"]


@dataclass(frozen=True)
class LatencyOptions:
    """How the compacted networks are timed (arguments of ``latency_table``).

    Attributes
    ----------
    batch
        Rows per forward pass.
    min_run_time
        Seconds of each ``torch.utils.benchmark`` block measurement.
    threads
        Torch threads (1: per-request latency, least sensitive to other load).
    """

    batch: int = 10_000
    min_run_time: float = 0.2
    threads: int = 1


def latency_options(size: Size | str) -> LatencyOptions:
    """Quick: 256 rows, 0.01 s blocks; full: 10,000 rows, 0.2 s blocks; one thread each.

    The full size times large batches: a forward pass of these small networks on a few rows
    costs mostly the per-layer call overhead, which pruning does not remove, and its timing
    is dominated by noise.
    """
    if Size(size) is Size.QUICK:
        return LatencyOptions(batch=256, min_run_time=0.01)
    return LatencyOptions()


_RATIO_TICKS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0)
"""Candidate ticks of the latency-ratio axis."""

_METRICS = {
    "rmse_test": "test RMSE (units of $y$)",
    "accuracy_test": "test accuracy (share correct)",
}


def _metric(table: pd.DataFrame) -> str:
    for metric in _METRICS:
        if metric in table and table[metric].notna().any():
            return metric
    raise KeyError("the table has neither rmse_test nor accuracy_test")


def _joined(table: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    keys = ["cell_id", "replicate"]
    return table.merge(latency[[*keys, "compact_ms", "dense_ms", "speedup"]], on=keys)


def compression_summary(table: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    """Per prior: test error, densities, kept inputs, FLOPs and latency (means over replicates).

    ``± sd`` columns hold the standard deviation over replicates (``ddof = 1``).
    """
    metric = _metric(table)
    joined = _joined(table, latency)
    families = prior_families(table)
    rows = []
    for prior, part in joined.groupby("prior", sort=False):
        rows.append(
            {
                "prior": prior_name(families[str(prior)]),
                "n": int(part["n"].iloc[0]),
                metric: part[metric].mean(),
                f"{metric} sd": part[metric].std(ddof=1),
                "node density": part["node_density"].mean(),
                "weight density": part["weight_density"].mean(),
                "kept inputs": part["kept_inputs"].mean(),
                "FLOPs (compact)": part["flops"].mean(),
                "FLOPs (dense)": part["flops_dense"].iloc[0],
                "latency compact (ms)": part["compact_ms"].median(),
                "latency dense (ms)": part["dense_ms"].median(),
                "speed-up": part["speedup"].median(),
            }
        )
    return pd.DataFrame(rows)


def tradeoff_figure(
    table: pd.DataFrame,
    latency: pd.DataFrame,
    out: str | Path,
    *,
    stem: str,
    noise_sd: float | None = None,
    outputs: int = 1,
) -> list[Path]:
    """Test error against node density and against compact latency (module docstring).

    Parameters
    ----------
    table
        The study's results (one student, one ``n``).
    latency
        :func:`paper_figures.refit.latency_table` of the same study.
    out, stem
        Output folder and file stem (PNG and PDF).
    noise_sd
        ``sigma_e`` of a regression design: the RMSE floor, drawn dotted.
    outputs
        Network outputs (for the student's label).
    """
    from matplotlib.ticker import FuncFormatter, NullLocator

    from ssbnn_theory import style

    metric = _metric(table)
    joined = _joined(table, latency)
    families = prior_families(table)
    priors = list(dict.fromkeys(joined["prior"].astype(str)))
    with style.context():
        fig, (ax_d, ax_t) = style.figure(ncols=2, sharey=True)
        for prior in priors:
            part = joined[joined["prior"].astype(str) == prior]
            look = style_of(families[prior])
            ratio = (part["compact_ms"] / part["dense_ms"]).to_numpy(dtype=float)
            y = part[metric].to_numpy(dtype=float)
            ax_d.scatter(part["node_density"], y, s=18, alpha=0.35, color=look["color"], lw=0)
            ax_t.scatter(ratio, y, s=18, alpha=0.35, color=look["color"], lw=0)
            common = {"color": look["color"], "marker": look["marker"], "ms": 9, "capsize": 3}
            ax_d.errorbar(
                part["node_density"].mean(), y.mean(), xerr=_sd(part["node_density"]),
                yerr=_sd(y), lw=1.5, label=prior_name(families[prior]), **common,
            )  # fmt: skip
            centre, spread = np.exp(np.mean(np.log(ratio))), np.exp(_sd(np.log(ratio)))
            ax_t.errorbar(
                centre, y.mean(), xerr=[[centre - centre / spread], [centre * spread - centre]],
                yerr=_sd(y), lw=1.5, **common,
            )  # fmt: skip
        ax_t.axvline(1.0, color="0.3", ls="--", lw=1.2, label="dense student")
        if noise_sd is not None and metric == "rmse_test":
            for ax in (ax_d, ax_t):
                ax.axhline(noise_sd, color="0.3", ls=":", lw=1.2, label=r"floor $\sigma_e$")
        ax_d.set_xlabel("node density (kept hidden nodes / hidden nodes)")
        ax_d.set_xlim(-0.03, 1.05)
        ax_d.set_ylabel(_METRICS[metric])
        ax_t.set_xscale("log")
        low, high = ax_t.get_xlim()
        ax_t.set_xticks([t for t in _RATIO_TICKS if low <= t <= high])
        ax_t.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax_t.xaxis.set_minor_locator(NullLocator())
        row = joined.iloc[0]
        ax_t.set_xlabel(
            "latency of the compacted network / dense student\n"
            f"({int(latency['batch'].iloc[0])} rows, {int(latency['threads'].iloc[0])} thread; "
            f"dense: {joined['dense_ms'].median():.3g} ms; log scale)"
        )
        ax_d.legend(loc="best")
        ax_t.legend(loc="best")
        student = student_label(row["p"], row["hidden"], outputs, row["activation"])
        fig.suptitle(
            f"{row['design']}, student {student}, "
            f"n = {int(row['n'])}: {_METRICS[metric].split(' (')[0]} against node density "
            f"and latency\n(points: {joined['replicate'].nunique()} replicates; markers: mean ± sd)"
        )
        return save(fig, out, stem)


def _sd(values: Any) -> float:
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if values.size > 1 else 0.0
