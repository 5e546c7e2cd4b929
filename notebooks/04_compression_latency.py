# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Compression and latency
#
# What does node sparsity buy at prediction time? Each fitted replicate is compacted into a
# plain `torch.nn.Sequential` holding only its kept inputs and nodes, with the variational
# means as weights (`simulations.compress`); it computes exactly the variational-mean
# network. We compare, for every prior and baseline (SS-IG, SS-GL, SS-GHS, the edge
# spike-and-slab and the dense mean-field BNN):
#
# * the test error (RMSE against noisy responses, whose floor is $\sigma_e$; accuracy for
#   classification) against the node density (kept hidden nodes / hidden nodes);
# * the same error against the latency of the compacted network relative to the dense
#   student (same weights, unpruned), the two timed back to back on the same rows with
#   `torch.utils.benchmark` on one thread. The dense baseline compacts to the dense student
#   itself: its ratio, 1 in principle, shows how noisy the timings of the run are.
#
# Designs: `bai_sparse_function` (Bai, Song & Cheng 2020) and `sun_regression` (Sun, Song &
# Liang 2021) for regression, `sun_classification` for accuracy; studies in
# `paper_figures/studies/compression_*.toml`. The stored studies hold the metrics, not the
# fitted models, so each cell is refitted from its seeds to time it; the refit must keep the
# stored nodes and inputs (the compacted network depends on nothing else), and the timings
# are stored beside the study (`latency.parquet`) so that later runs reuse them.
#
# **Size knob.** `SIZE` is `quick` under `CI` or `SSBNN_QUICK=1` (tiny studies, 20 steps,
# short timings: the latencies are noise); `full` loads the stored full studies (falling
# back to the quick ones), `RUN_FULL = True` runs their missing cells.

# %%
import dataclasses

from IPython.display import Image, display

import paper_figures
from paper_figures.compression import compression_summary, latency_options, tradeoff_figure
from paper_figures.refit import latency_table

SIZE = paper_figures.size_from_env()
RUN_FULL = False
OUT = paper_figures.default_output()
TIMING = dataclasses.asdict(latency_options(SIZE))
STUDIES = {
    "compression_bai": "compression_bai_sparse_function",
    "compression_sun": "compression_sun_regression",
    "classification": "accuracy_sun_classification",
}
print(f"size: {SIZE}; timing options: {TIMING}")


def report(key, stem):
    """Load (or run) one study, time its compacted networks, show the table and figure."""
    results = paper_figures.obtain(key, SIZE, run=RUN_FULL)
    print(f"study {results.spec.name}: {results.note}")
    latency = latency_table(results, **TIMING)
    display(compression_summary(results.table, latency).round(4))
    paths = tradeoff_figure(
        results.table,
        latency,
        OUT,
        stem=stem,
        noise_sd=results.spec.design.noise_sd,
        outputs=results.spec.design.outputs,
    )
    display(Image(filename=str(paths[0]), width=960))


# %% [markdown]
# ## `bai_sparse_function`
#
# $f_0 = 7x_2/(1 + x_1^2) + 5\sin(x_3 x_4) + 2x_5$ with nuisance inputs; Bai et al. report
# test RMSE, input FNR/FPR and density at $n = 3000$.

# %%
report("compression_bai", STUDIES["compression_bai"])

# %% [markdown]
# ## `sun_regression`
#
# The same kind of function of 5 of many equicorrelated Gaussian inputs (correlation 1/2).

# %%
report("compression_sun", STUDIES["compression_sun"])

# %% [markdown]
# ## `sun_classification`: accuracy
#
# Balanced classes of $y = 1\{e^{x_1} + x_2^2 + 5\sin(x_3x_4) - 3 > 0\}$; the label is a
# function of $x$, so accuracy can approach 1.

# %%
report("classification", STUDIES["classification"])
