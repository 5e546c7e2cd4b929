"""Theorem figures (notebook 01): the contraction-rate bound of ``ssbnn_theory``, term by term.

Every number here is computed by ``ssbnn_theory`` (no study is needed):

* :func:`rate_figure`: ``eps_n^2`` against ``n`` and its sensitivity to the active nodes
  ``s_l``, the widths ``k_l`` and the weight bounds ``B_l``, for SS-IG, SS-GL and SS-GHS
  (:func:`ssbnn_theory.contraction_rate`; local slopes by :func:`ssbnn_theory.local_slope`);
* :func:`terms_figure`: the three parts of ``n r_n`` in every layer (selection
  ``s_l log(1/lambda_l) + (k_l - s_l) log(1/(1 - lambda_l))``, slab resolution
  ``s_l r_l log(1/delta_n)`` and slab magnitude ``s_l phi_l - s_l r_l log(1/delta_n)``);
* :func:`node_edge_figure`: node sparsity against edge sparsity (Bai, Song & Cheng 2020,
  :func:`ssbnn_theory.edge_sparse_rate`) and no sparsity (:func:`ssbnn_theory.dense_rate`)
  for the same truth;
* :func:`weight_bound_figure`: Lemma L2's slab small-ball bound ``phi(delta, B)`` against
  ``B`` (:func:`ssbnn_theory.slab_small_ball`): quadratic growth for the Gaussian slab,
  linear for the group lasso, logarithmic for the horseshoe, quadratic again beyond the
  slab width ``c`` of the regularised horseshoe.

The default network is the ``relu_teacher`` truth of docs/designs.md seen by a 16-16 ReLU
student (:func:`ssbnn_theory.relu_teacher_architecture`: ``p = 100``, ``s = (4, 3)``,
``B_l = 1.5``), ``sigma_e = 1``, and the priors' default hyperparameters
(``sigma_0 = 1``; SS-GL ``kappa = 1``; SS-GHS ``global_scale = sqrt(1e-5)``, ``slab_width = 1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from paper_figures.plotting import save, style_of
from ssbnn_theory import (
    Architecture,
    PriorSpec,
    contraction_rate,
    dense_rate,
    edge_sparse_rate,
    local_slope,
    relu_teacher_architecture,
    slab_small_ball,
)

__all__ = [
    "ARCHITECTURE",
    "N_GRID",
    "N_REFERENCE",
    "PRIORS",
    "node_edge_figure",
    "rate_figure",
    "rate_table",
    "terms_figure",
    "terms_table",
    "weight_bound_figure",
]

ARCHITECTURE = relu_teacher_architecture(p=100, width=16)
"""``p = 100``, hidden 16-16, active ``(4, 3)``, ``B_l = 1.5``, ReLU."""

PRIORS = (PriorSpec("ss-ig"), PriorSpec("ss-gl"), PriorSpec("ss-ghs"))
"""The three node priors with their default hyperparameters."""

N_GRID = np.logspace(2.5, 6.0, 29)
"""Sample sizes of the rate curves, ``10^2.5 .. 10^6``."""

N_REFERENCE = 1e4
"""The ``n`` of the sensitivity panels and the term decomposition."""

_TERMS = ("selection", "slab resolution", "slab magnitude")


def _name(spec: PriorSpec) -> str:
    return spec.slab.display


def _hyper(spec: PriorSpec) -> str:
    """``sigma_0 = 1, kappa = 1`` in math text."""
    return ", ".join([rf"$\sigma_0={spec.sigma_0:g}$", *spec.slab.math_hyperparameters(spec)])


def _dashed(widths: Sequence[int]) -> str:
    """``16-8`` for the widths ``(16, 8)``."""
    return "-".join(map(str, widths))


def _shape(arch: Architecture) -> str:
    """``p = 10, hidden 16-16, active 4-3`` (figure titles)."""
    return f"p = {arch.p}, hidden {_dashed(arch.hidden)}, active {_dashed(arch.active)}"


def _eps2(arch: Architecture, spec: PriorSpec, n: float | np.ndarray, sigma_e: float) -> np.ndarray:
    return contraction_rate(arch, spec, n, sigma_e, conditions=False).eps2


def _width_grid(arch: Architecture) -> np.ndarray:
    """The width panels' hidden widths: powers of two from ``max(4, max(s_l))`` (rounded up) to
    1024."""
    return 2 ** np.arange(max(2, int(np.ceil(np.log2(max(arch.active))))), 11)


def _all_bounds(arch: Architecture, bound: float) -> Architecture:
    """``arch`` with every layer's bound, the output layer's included, set to ``bound``."""
    return arch.replace(bounds=(bound,) * (arch.depth + 1))


def rate_table(
    arch: Architecture = ARCHITECTURE,
    priors: Sequence[PriorSpec] = PRIORS,
    n: Sequence[float] = (1e3, 1e4, 1e5, 1e6),
    sigma_e: float = 1.0,
) -> pd.DataFrame:
    """``eps_n^2``, ``r_n`` and the local slope ``d log eps_n^2 / d log n`` per prior and ``n``."""
    rows = []
    for spec in priors:
        rate = contraction_rate(arch, spec, np.asarray(n, float), sigma_e, conditions=False)
        slope = local_slope(arch, spec, np.asarray(n, float), sigma_e=sigma_e)
        for i, value in enumerate(rate.n):
            rows.append(
                {
                    "prior": _name(spec),
                    "n": int(value),
                    "eps_n^2": rate.eps2[i],
                    "r_n": rate.r_n[i],
                    "local slope": slope[i],
                    "dominant term": rate.dominant[i],
                }
            )
    return pd.DataFrame(rows)


def terms_table(
    arch: Architecture = ARCHITECTURE,
    priors: Sequence[PriorSpec] = PRIORS,
    n: float = N_REFERENCE,
    sigma_e: float = 1.0,
) -> pd.DataFrame:
    """The parts of ``n r_n`` per prior and layer at one ``n``, and the largest one per layer."""
    rows = []
    for spec in priors:
        rate = contraction_rate(arch, spec, n, sigma_e, conditions=False)
        for layer in range(arch.depth + 1):
            selection = rate.selection[0, layer] if layer < arch.depth else np.nan
            rows.append(
                {
                    "prior": _name(spec),
                    "layer": "output" if layer == arch.depth else str(layer + 1),
                    "selection": selection,
                    "slab resolution": rate.resolution[0, layer],
                    "slab magnitude": rate.magnitude[0, layer],
                    "dominant": rate.dominant_per_layer[0][layer],
                    "n r_n (all layers)": rate.n_r_n[0],
                }
            )
    return pd.DataFrame(rows)


def rate_figure(
    out: str | Path,
    *,
    arch: Architecture = ARCHITECTURE,
    priors: Sequence[PriorSpec] = PRIORS,
    n: np.ndarray = N_GRID,
    n_ref: float = N_REFERENCE,
    sigma_e: float = 1.0,
    stem: str = "rate_bounds",
) -> list[Path]:
    """``eps_n^2`` against ``n``, ``s_l``, ``k_l`` and ``B_l`` for each prior (2 x 2 panels).

    (a) ``eps_n^2(n)`` with the local slope at ``n_ref`` in the legend and ``n_informative``
    (the ``n`` from which ``eps_n^2 < 1``) as a dotted line; the ``n`` axis is extended to
    three times the largest ``n_informative`` when that is below ``1e12``; (b)
    against ``s_1 = s_2 = s`` (every width ``k_l`` at least ``s``); (c) against
    ``k_1 = k_2 = k`` with ``s`` fixed; (d) against a common bound ``B_l = B`` of every layer
    (the output layer has the hidden layers' slab family by default). Panels (b)-(d) at
    ``n = n_ref``. The grey band ``eps_n^2 >= 1`` is where the bound is vacuous (a squared
    Hellinger distance is at most 1).
    """
    from ssbnn_theory import style

    actives = np.arange(1, min(arch.hidden) + 1)
    widths = _width_grid(arch)
    bounds = np.logspace(-1.3, 1.7, 19)
    with style.context():
        fig, axes = style.figure(ncols=2, nrows=2)
        (ax_n, ax_s), (ax_k, ax_b) = axes
        informative_at: list[tuple[float | None, str]] = []
        # panel (a) reaches past the n from which the bound says something (eps_n^2 < 1),
        # when that is below 1e12, so that the crossing of the vacuous band is visible
        crossings = [
            contraction_rate(arch, spec, n[:1], sigma_e, conditions=False).n_informative
            for spec in priors
        ]
        finite = [c for c in crossings if c is not None and c <= 1e12]
        if finite and 3.0 * max(finite) > n[-1]:
            decades = np.log10(3.0 * max(finite) / n[0])
            n = np.geomspace(n[0], 3.0 * max(finite), max(len(n), int(8 * decades) + 1))
        for spec in priors:
            look = style_of(spec.prior.value)
            full = contraction_rate(arch, spec, n, sigma_e, conditions=False)
            slope = float(local_slope(arch, spec, n_ref, sigma_e=sigma_e)[0])
            n_inf = full.n_informative
            informative = f"{n_inf:.2g}" if n_inf is not None else "none"
            ax_n.loglog(
                n, full.eps2, **look, markevery=4, label=f"{_name(spec)} ({_hyper(spec)}): "
                f"slope {slope:.2f} at $n=10^{{{np.log10(n_ref):g}}}$; "
                rf"$\varepsilon_n^2 < 1$ from $n \approx$ {informative}",
            )  # fmt: skip
            informative_at.append((n_inf, look.get("color", "0.3")))
            by_s = [_eps2(arch.replace(active=(s,) * arch.depth), spec, n_ref, sigma_e)[0]
                    for s in actives]  # fmt: skip
            ax_s.semilogy(actives, by_s, **look, label=_name(spec))
            by_k = [_eps2(arch.replace(hidden=(int(k),) * arch.depth), spec, n_ref, sigma_e)[0]
                    for k in widths]  # fmt: skip
            ax_k.loglog(widths, by_k, **look, label=_name(spec))
            by_b = [_eps2(_all_bounds(arch, float(b)), spec, n_ref, sigma_e)[0] for b in bounds]
            ax_b.loglog(bounds, by_b, **look, markevery=3, label=_name(spec))
        ax_n.set_xlabel("sample size $n$ (log scale)")
        ax_n.set_title("(a) against $n$")
        ax_s.set_xlabel(r"active nodes per hidden layer $s_1 = s_2$")
        ax_s.set_title(f"(b) against $s_l$ ($k_l = {max(arch.hidden)}$)")
        ax_s.xaxis.get_major_locator().set_params(integer=True)
        ax_k.set_xlabel(r"hidden width $k_1 = k_2$ (log scale)")
        ax_k.set_xscale("log", base=2)
        ax_k.set_title(f"(c) against $k_l$ ($s = {tuple(arch.active)}$)")
        ax_b.set_xlabel(r"weight bound of every layer $B_l = B$ (log scale)")
        ax_b.set_title(r"(d) against $B_l$ (all layers)")
        for n_inf, color in informative_at:
            style.mark_informative(ax_n, n_inf, color)
        for ax in (ax_n, ax_s, ax_k, ax_b):
            style.shade_vacuous(ax)
            ax.set_ylabel(r"$\varepsilon_n^2$ (log scale)")
            ax.legend()
        for ax in (ax_s, ax_k, ax_b):
            ax.text(
                0.98, 0.04, f"$n = 10^{{{np.log10(n_ref):g}}}$", transform=ax.transAxes,
                ha="right", va="bottom",
            )  # fmt: skip
        fig.suptitle(
            r"Contraction rate bound $\varepsilon_n^2$ (up to constants, $\sigma_e = "
            f"{sigma_e:g}$): {_shape(arch)}, $B_l = {arch.bounds[0]:g}$, {arch.activation.value}"
        )
        return save(fig, out, stem)


def terms_figure(
    out: str | Path,
    *,
    arch: Architecture = ARCHITECTURE,
    priors: Sequence[PriorSpec] = PRIORS,
    n: float = N_REFERENCE,
    sigma_e: float = 1.0,
    stem: str = "rate_terms",
) -> list[Path]:
    """The parts of ``n r_n`` per layer, one panel per prior, log scale; largest part starred."""
    from ssbnn_theory import style

    table = terms_table(arch, priors, n, sigma_e)
    colours = [style.OKABE_ITO[c] for c in ("orange", "reddish_purple", "sky_blue")]
    hatches = ("", "//", "..")
    layers = list(dict.fromkeys(table["layer"]))
    x = np.arange(len(layers))
    width = 0.26
    with style.context():
        fig, axes = style.figure(ncols=len(priors), sharey=True)
        axes = np.atleast_1d(axes)
        top = np.nanmax(table[list(_TERMS)].to_numpy())
        for ax, spec in zip(axes, priors, strict=True):
            part = table[table["prior"] == _name(spec)]
            for j, term in enumerate(_TERMS):
                values = part[term].to_numpy(dtype=float)
                shown = np.where(values > 0, values, np.nan)
                ax.bar(
                    x + (j - 1) * width, shown, width, color=colours[j], hatch=hatches[j],
                    edgecolor="white", label=term,
                )  # fmt: skip
                for i, (value, dominant) in enumerate(zip(values, part["dominant"], strict=True)):
                    if dominant == term and value > 0:
                        ax.annotate("★", (x[i] + (j - 1) * width, value), ha="center",
                                    va="bottom", fontsize=13)  # fmt: skip
            ax.set_yscale("log")
            ax.set_ylim(top=top * 4)
            ax.set_xticks(x, [f"layer {v}" if v != "output" else "output" for v in layers])
            total = float(part["n r_n (all layers)"].iloc[0])
            ax.set_title(f"{_name(spec)} ({_hyper(spec)})\n$n r_n = {total:.0f}$")
            ax.grid(axis="x", visible=False)
        axes[0].set_ylabel(r"term of $n r_n$ (nats, log scale)")
        axes[0].legend(loc="upper right")
        fig.suptitle(
            f"Which term dominates each layer ($n = 10^{{{np.log10(n):g}}}$; ★ largest per "
            f"layer): {_shape(arch)}"
        )
        return save(fig, out, stem)


def node_edge_figure(
    out: str | Path,
    *,
    arch: Architecture = ARCHITECTURE,
    prior: PriorSpec = PRIORS[1],
    n: np.ndarray = N_GRID,
    n_ref: float = N_REFERENCE,
    sigma_e: float = 1.0,
    stem: str = "rate_node_edge",
) -> list[Path]:
    """Node against edge sparsity for the same truth: ``eps_n^2`` against ``n`` and the width.

    Four rates of one truth: node-sparse with full fan-in (each active group constrains
    ``k_{l-1} + 1`` coordinates), node-sparse with ``fan_in="active"`` (``s_{l-1} + 1``;
    ReLU only), the edge-sparse rate of Bai et al. (2020) with ``s`` = edges of the active
    subnetwork, and the dense rate (every node active).
    """
    from ssbnn_theory import style

    node = style.prior_color(prior.prior)
    series = (
        ("node, full fan-in", {"color": node, "marker": "o", "ls": "-"}),
        ("node, active fan-in", {"color": node, "marker": "o", "ls": "--", "mfc": "white"}),
        ("edge (Bai et al. 2020)", {"color": style.prior_color("edge-ss"), "marker": "D"}),
        ("dense (no sparsity)", {"color": style.prior_color("dense"), "marker": "x", "ls": ":"}),
    )

    def rates(a: Architecture, grid: np.ndarray | float) -> list[np.ndarray]:
        return [
            _eps2(a, prior, grid, sigma_e),
            _eps2(a.replace(fan_in="active"), prior, grid, sigma_e),
            edge_sparse_rate(a, grid).eps2,
            dense_rate(a, prior, grid, sigma_e=sigma_e, conditions=False).eps2,
        ]

    widths = _width_grid(arch)
    by_width = np.array([[r[0] for r in rates(arch.replace(hidden=(int(k),) * arch.depth), n_ref)]
                         for k in widths])  # fmt: skip
    with style.context():
        fig, (ax_n, ax_k) = style.figure(ncols=2)
        for (label, look), values in zip(series, rates(arch, n), strict=True):
            ax_n.loglog(n, values, markevery=4, label=label, **look)
        for (label, look), values in zip(series, by_width.T, strict=True):
            ax_k.loglog(widths, values, label=label, **look)
        ax_n.set_xlabel("sample size $n$ (log scale)")
        ax_n.set_title(f"(a) against $n$ (hidden {_dashed(arch.hidden)})")
        ax_k.set_xlabel(r"hidden width $k_1 = k_2$ (log scale)")
        ax_k.set_xscale("log", base=2)
        ax_k.set_title(f"(b) against the width ($n = 10^{{{np.log10(n_ref):g}}}$)")
        for ax in (ax_n, ax_k):
            ax.set_ylabel(r"$\varepsilon_n^2$ (log scale)")
            ax.legend()
        fig.suptitle(
            f"Node against edge sparsity, same truth: p = {arch.p}, active "
            f"{_dashed(arch.active)}, {arch.edges} active weights; node prior "
            f"{_name(prior)} ({_hyper(prior)})"
        )
        return save(fig, out, stem)


def weight_bound_figure(
    out: str | Path,
    *,
    delta: float = 0.01,
    coordinates: int = 10,
    c: float = 3.0,
    stem: str = "weight_bound",
) -> list[Path]:
    """Lemma L2 against the weight bound ``B``: ``phi(delta, B)`` and its growth over ``B = 0``.

    One active group of ``coordinates`` constrained coordinates (``r = d``), box half-width
    ``delta``. (a) ``phi`` on linear axes; (b) the growth ``phi(delta, B) - phi(delta, 1)``
    for ``B >= 1`` on log-log axes, with guides of slope 2 (quadratic), 1 (linear) and the
    curve ``r log B`` (logarithmic), each a factor 3 below the curve it follows.
    """
    from ssbnn_theory import style

    specs = (
        (PriorSpec("ss-ig"), {"ls": "-"}),
        (PriorSpec("ss-gl"), {"ls": "-"}),
        (PriorSpec("ss-ghs", slab_width=None), {"ls": "-"}),
        (PriorSpec("ss-ghs", slab_width=c), {"ls": "--", "mfc": "white"}),
    )
    linear = np.linspace(0.0, 10.0, 41)
    wide = np.logspace(0, 3, 31)
    with style.context():
        fig, (ax_lin, ax_log) = style.figure(ncols=2)
        growths = {}
        for spec, extra in specs:
            look = style_of(spec.prior.value)
            name = _name(spec) + (
                f", regularised ($c = {c:g}$)" if spec.slab_width is not None else ", plain"
            )
            phi = slab_small_ball(spec, delta, linear, coordinates)
            ax_lin.plot(linear, phi, markevery=5, label=name, **look, **extra)
            base = slab_small_ball(spec, delta, 1.0, coordinates)
            growths[spec] = slab_small_ball(spec, delta, wide, coordinates) - base
            ax_log.loglog(wide[1:], growths[spec][1:], markevery=5, label=name, **look, **extra)
        # guides: slope 2 and 1 a factor 3 below the Gaussian and group-lasso curves, and
        # r log B through the horseshoe's curve at B = 10
        guide = wide[(wide >= 3) & (wide <= 300)]
        for power, spec in ((2, specs[0][0]), (1, specs[1][0])):
            at = np.exp(np.interp(np.log(guide[0]), np.log(wide[1:]), np.log(growths[spec][1:])))
            ref = at / 3.0 * (guide / guide[0]) ** power
            ax_log.loglog(guide, ref, color="0.45", lw=1.2, ls=":")
            ax_log.annotate(f"slope {power}", (guide[-1], ref[-1]), xytext=(4, -4),
                            textcoords="offset points", ha="left", va="top", color="0.3",
                            fontsize=10)  # fmt: skip
        log_guide = coordinates * np.log(guide)
        ax_log.loglog(guide, log_guide / 3.0, color="0.45", lw=1.2, ls="-.")
        ax_log.annotate(rf"${coordinates} \log B$ / 3", (guide[-1], log_guide[-1] / 3.0),
                        xytext=(4, -4), textcoords="offset points", ha="left", va="top",
                        color="0.3", fontsize=10)  # fmt: skip
        ax_lin.set_xlabel(r"weight bound $B$")
        ax_lin.set_ylabel(r"$\phi(\delta, B)$ (nats)")
        ax_lin.set_title("(a) the bound")
        ax_log.set_xlabel(r"weight bound $B$ (log scale)")
        ax_log.set_ylabel(r"$\phi(\delta, B) - \phi(\delta, 1)$ (nats, log scale)")
        ax_log.set_title("(b) its growth in $B$ beyond $B = 1$")
        for ax in (ax_lin, ax_log):
            ax.legend()
        fig.suptitle(
            r"Slab small-ball bound (Lemma L2): $-\log$ prior mass of a box of half-width "
            rf"$\delta = {delta:g}$ around a group of {coordinates} weights bounded by $B$ "
            r"($\sigma_0 = 1$)"
        )
        return save(fig, out, stem)
