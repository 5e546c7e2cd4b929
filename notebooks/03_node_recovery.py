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
# # 03 · Node recovery
#
# Does the variational posterior keep the right number of nodes? On `relu_teacher` the truth
# has 4 and 3 active nodes in its two hidden layers and 5 relevant inputs; the students are
# wider. A node is **kept** when its variational inclusion probability exceeds 1/2 (for the
# edge spike-and-slab: when one of its incoming weights is kept). SS-IG, SS-GL, SS-GHS and
# the edge spike-and-slab (Bai, Song & Cheng 2020) are fitted to the same training sets
# (`paper_figures/studies/node_recovery.toml`); the node priors carry a spike on the inputs
# too, so that they select inputs.
#
# * kept nodes per layer against the truth over $n$ (the study's stored results);
# * inclusion-probability trajectories during training: the cells at the largest $n$ are
#   refitted from their seeds with a recorder on `simulations.train.fit`'s `progress` hook
#   (the refit is the stored fit: same seeds, deterministic on the CPU);
# * input false-negative and false-positive rates.
#
# **Size knob.** `SIZE` is `quick` under `CI` or `SSBNN_QUICK=1` (the tiny
# `node_recovery_quick.toml`: 20 steps, nothing is pruned yet); `full` loads the stored
# full study (falling back to the quick one), `RUN_FULL = True` runs its missing cells.

# %%
from IPython.display import Image, display

import paper_figures
from paper_figures import recovery

SIZE = paper_figures.size_from_env()
RUN_FULL = False
SPEC = None  # or the path of another study with these priors
OUT = paper_figures.default_output()

results = paper_figures.obtain("recovery", SIZE, run=RUN_FULL, spec=SPEC)
print(f"study {results.spec.name}: {results.note}")
print(f"results in {results.folder}; rerun or extend with: {results.command}")
table = results.table
outputs = results.spec.design.outputs


def show(paths):
    """Display the PNG among the written files."""
    for path in paths:
        if path.suffix == ".png":
            display(Image(filename=str(path), width=960))


# %% [markdown]
# ## Kept nodes against the truth
#
# Kept nodes per layer (mean ± sd over replicates, the truth in brackets), the share of
# replicates that keep exactly the true number in every layer, and the input error rates.

# %%
display(recovery.recovery_summary(table).round(3))
show(recovery.nodes_figure(table, OUT, outputs=outputs))

# %% [markdown]
# ## Inclusion probabilities during training
#
# Top rows: each node's inclusion probability in replicate 0 (dotted: the 1/2 threshold).
# Bottom row: the number of nodes above 1/2 per layer, mean and range over replicates,
# against the true active nodes (black).

# %%
refits = recovery.trajectories(results)
for prior, fitted in refits.items():
    final = [int((layer[-1] > 0.5).sum(axis=-1)[0]) for layer in fitted.trajectory.nodes]
    print(
        f"{prior}: {len(fitted.trajectory.steps)} records over {fitted.report.steps} steps; "
        f"replicate 0 ends with {final} nodes above 1/2"
    )
show(recovery.trajectories_figure(refits, OUT))

# %% [markdown]
# ## Input selection
#
# False-negative rate: the share of the relevant inputs that are dropped; false-positive
# rate: the share of the irrelevant inputs that are kept.

# %%
show(recovery.inputs_figure(table, OUT, outputs=outputs))
