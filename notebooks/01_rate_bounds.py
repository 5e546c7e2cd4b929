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
# # 01 · Rate bounds: how $\varepsilon_n^2$ depends on $n$, $s_l$, $k_l$ and $B_l$
#
# The variational contraction rate of a node-sparse network (`docs/theory.md`, section 4) is
#
# $$n r_n = \underbrace{\sum_{l \le L} \Big[s_l \log\tfrac{1}{\lambda_l}
#   + (k_l - s_l)\log\tfrac{1}{1-\lambda_l}\Big]}_{\text{selection}}
#   + \sum_{l \le L+1} s_l\, \phi_l(\delta_n, B_l),
# \qquad \varepsilon_n^2 = r_n (\log n)^{2\kappa},$$
#
# where $\phi_l$ is the slab small-ball bound (Lemma L2) at the resolution $\delta_n$ that the
# network's Lipschitz factor allows (Lemma L1). We split each $s_l \phi_l$ into a
# *resolution* part $s_l r_l \log(1/\delta_n)$, the same for every slab, and a *magnitude*
# part, where the slab family (Gaussian, group lasso, horseshoe) enters through $B_l$.
#
# Everything below is computed by `ssbnn_theory` (no training). The figures are the ones
# `python -m paper_figures` writes; this notebook shows them with the numbers behind them.
#
# **Size knob.** `SIZE` is `quick` when the environment sets `CI` or `SSBNN_QUICK=1` (coarser
# $n$ grids), else `full`.

# %%
import numpy as np
from IPython.display import Image, display

import paper_figures
from paper_figures import theory
from ssbnn_theory import PriorSpec, contraction_rate, slab_small_ball

SIZE = paper_figures.size_from_env()
OUT = paper_figures.default_output()
N_GRID = np.logspace(2.5, 6.0, 8 if SIZE == "quick" else 29)
print(f"size: {SIZE}; figures are written to {OUT}")
print("network:", theory.ARCHITECTURE.describe())
print("priors:", "; ".join(spec.label for spec in theory.PRIORS))


def show(paths):
    """Display the PNG among the written files."""
    for path in paths:
        if path.suffix == ".png":
            display(Image(filename=str(path), width=960))


# %% [markdown]
# ## The rate against $n$, and its sensitivity to $s_l$, $k_l$ and $B_l$
#
# The local slope $d\log\varepsilon_n^2 / d\log n$ tends to $-1$ slowly: the
# $(\log n)^{1+2\kappa}$ factor keeps it above $-1$ at any finite $n$.

# %%
rates = theory.rate_table(n=(1e3, 1e4, 1e5, 1e6))
display(rates.round({"eps_n^2": 3, "r_n": 5, "local slope": 3}))
show(theory.rate_figure(OUT, n=N_GRID))

# %% [markdown]
# ## Where the bound says something
#
# $\varepsilon_n^2$ bounds a squared Hellinger distance, which is never above 1: the grey band
# $\varepsilon_n^2 \ge 1$ in the figures is where the bound is vacuous. `n_informative` is the
# $n$ from which $\varepsilon_n^2 < 1$ (a root search on the rate, `None` beyond $10^{30}$);
# for this network it lies far beyond the simulated sample sizes.

# %%
for spec in theory.PRIORS:
    n_inf = contraction_rate(theory.ARCHITECTURE, spec, 1e4, conditions=False).n_informative
    print(f"{spec.label:<60} n_informative = {n_inf:.3g}")

# %% [markdown]
# How much do the three priors differ at the default bound $B_l = 1.5$? The selection term
# does not depend on the slab and the resolution part is the same for every slab, so only
# the magnitude part separates them; panel (d) sets every layer's bound to $B$ (the output
# layer has the hidden layers' slab family) and shows that part growing like $B^2$ (Gaussian),
# $B$ (group lasso) and $\log B$ (plain horseshoe; the regularised one is Gaussian beyond its
# slab width). The cell below measures the spread at $B = 1.5$.

# %%
at = rates[rates["n"] == 10_000].set_index("prior")["eps_n^2"]
spread = at.max() / at.min() - 1.0
print(f"at n = 10^4 the priors' eps_n^2 differ by at most {spread:.1%}: {at.round(2).to_dict()}")

# %% [markdown]
# ## Which term dominates each layer
#
# `dominant` is the largest of the three parts in each layer; `rate_table` above names the
# largest part overall at each $n$ (or the noise floor $T/2$ when that is larger).

# %%
terms = theory.terms_table()
display(terms.round(1))
show(theory.terms_figure(OUT))

# %% [markdown]
# ## Node against edge sparsity for the same network
#
# The same truth written as an edge-sparse network (Bai, Song & Cheng 2020: $s$ = the active
# weights, $N$ = the width) and as a dense network. The edge rate is an order "up to
# constants" from another proof, so compare slopes and growth in the width, not levels. A
# node group constrains its whole fan-in ($k_{l-1} + 1$ coordinates) under full fan-in, or
# only the active part ($s_{l-1} + 1$) with `fan_in="active"` (ReLU and tanh, $\psi(0) = 0$).

# %%
show(theory.node_edge_figure(OUT, n=N_GRID))

# %% [markdown]
# ## The weight-bound figure: quadratic, linear and logarithmic growth
#
# Lemma L2 for one group of 10 weights bounded by $B$: the Gaussian slab's bound grows like
# $B^2$, the group lasso's like $\kappa\sqrt{r}B/\sigma_0$, the horseshoe's like $\log B$; the
# regularised horseshoe is a horseshoe up to its slab width $c$ and Gaussian beyond it. The
# table fits the growth exponent $d \log[\phi(\delta, B) - \phi(\delta, 1)] / d\log B$ over
# $B \in [10^2, 10^3]$ to check this.

# %%
show(theory.weight_bound_figure(OUT))
B = np.array([100.0, 1000.0])
for spec in (
    PriorSpec("ss-ig"),
    PriorSpec("ss-gl"),
    PriorSpec("ss-ghs", slab_width=None),
    PriorSpec("ss-ghs", slab_width=3.0),
):
    growth = slab_small_ball(spec, 0.01, B, 10) - slab_small_ball(spec, 0.01, 1.0, 10)
    exponent = np.diff(np.log(growth))[0] / np.diff(np.log(B))[0]
    print(f"{spec.label:<40} growth exponent over B in [1e2, 1e3]: {exponent:.2f}")
