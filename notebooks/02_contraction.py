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
# # 02 · Empirical contraction against theory
#
# On the `relu_teacher` design the truth is a node-sparse ReLU network in the model class
# (5 relevant inputs, active nodes $(4, 3)$, so $\xi_n = 0$) and the theory applies exactly.
# For every prior, student and $n$, the study stores per replicate the variational posterior
# means $E_q\, d_H^2(p_\theta, p_0)$ (exact for Gaussian noise, `docs/metrics.md`) and
# $E_q \|f_\theta - f_0\|_2^2$ (Monte Carlo over $\theta \sim q$ on a fresh test set), and
# the theory's $\varepsilon_n$ for that student (`ssbnn_theory`, the engine's prior
# hyperparameters and inclusion probabilities).
#
# The theorem bounds $E_q d_H^2$ by $C \varepsilon_n^2$ with unknown universal constants, so
# the figure overlays $C\varepsilon_n^2$ with **one** constant fitted in logs; what can be
# compared is the *slope* in $\log n$. The slope table gives the least-squares slopes of
# $\log \overline{E_q d_H^2}$ and $\log \overline{E_q\|f - f_0\|^2}$ against $\log n$ with
# 95 % bootstrap intervals over replicates (`simulations.report`), beside the slope of
# $\log \varepsilon_n^2$ over the same grid and its local slope at the grid's ends
# (`ssbnn_theory`).
#
# **Size knob.** `SIZE` is `quick` under `CI` or `SSBNN_QUICK=1`: the tiny
# `studies/relu_teacher_quick.toml` (two $n$, 20 steps: a smoke test, not evidence). In
# `full` size the notebook loads the stored `studies/relu_teacher.toml` results (falling back
# to the quick study when none are stored); set `RUN_FULL = True` to run its missing cells
# (many CPU hours; `ssbnn simulate studies/relu_teacher.toml --device cuda` on a GPU), or set
# `SPEC` to another `relu_teacher` study, e.g. `simulations/data/demo.toml` (minutes).

# %%
from IPython.display import Image, Markdown, display

import paper_figures
from paper_figures.contraction import contraction_figures, slope_summary
from simulations.report import contraction_markdown, summary_table

SIZE = paper_figures.size_from_env()
RUN_FULL = False
SPEC = None  # or the path of another relu_teacher study spec
OUT = paper_figures.default_output()

results = paper_figures.obtain("contraction", SIZE, run=RUN_FULL, spec=SPEC)
print(f"study {results.spec.name}: {results.note}")
print(f"results in {results.folder}; rerun or extend with: {results.command}")
table = results.table

# %% [markdown]
# ## Contraction beside theory, cell by cell
#
# Mean ± sd over replicates; `C eps_n^2` uses the constant fitted to $E_q d_H^2$ over the
# $n$ grid of each prior and student.

# %%
display(Markdown(contraction_markdown(summary_table(table))))

# %% [markdown]
# ## The figure
#
# Points: replicates; line and band: replicate mean and 10-90 % range; dashed: the theory's
# $C\varepsilon_n^2$ with its fitted constant. Legends: fitted slopes with 95 % bootstrap
# intervals.

# %%
for path in contraction_figures(table, OUT):
    if path.suffix == ".png":
        display(Image(filename=str(path), width=960))

# %% [markdown]
# ## Slopes: empirical against theoretical
#
# A slope steeper than the theory's is allowed (the theorem is an upper bound); a slope
# clearly shallower, with the interval excluding the theory's slope, is evidence against
# the bound's rate on this grid (or of an optimisation that has not converged: compare
# `steps` across $n$).

# %%
slopes = slope_summary(table)
display(slopes.round(3))
for _, row in slopes.iterrows():
    local = (row["theory local slope at n_min"], row["theory local slope at n_max"])
    print(
        f"{row['prior']:>8} {row['student']}: E_q d_H^2 slope {row['slope E_q d_H^2']:.3f} "
        f"[{row['E_q d_H^2 low']:.3f}, {row['E_q d_H^2 high']:.3f}]; theory: "
        f"{row['theory slope (grid)']:.3f} over the grid, local {local[0]:.3f} (n_min) .. "
        f"{local[1]:.3f} (n_max)"
    )
