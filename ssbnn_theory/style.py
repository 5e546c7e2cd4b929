"""The one plotting style of ssbnn: CLI plots, study reports, notebooks and ``paper_figures``.

Colours are the Okabe-Ito palette (Okabe & Ito 2008, colour-blind safe), one fixed colour
and marker per prior family so a family looks the same in every figure. matplotlib is
imported inside the functions, never when ``ssbnn_theory`` is imported. Data figures share
:func:`log_n_axis` (training-set size on a log axis), :func:`dodge` (series at one ``n`` side
by side) and :func:`save_png_pdf` (every figure as PNG and PDF).

Example::

    from ssbnn_theory import style

    with style.context():
        fig, ax = style.figure()
        ax.loglog(n, eps2, color=style.prior_color("ss-gl"), marker=style.prior_marker("ss-gl"))
        style.save(fig, "rate.png")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ssbnn_theory.enums import Prior
from ssbnn_theory.errors import InvalidParameterError
from ssbnn_theory.slabs import SLABS

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BASELINE_COLORS",
    "BASELINE_MARKERS",
    "BASELINE_NAMES",
    "OKABE_ITO",
    "PRIOR_COLORS",
    "PRIOR_MARKERS",
    "RC_PARAMS",
    "VACUOUS_LABEL",
    "apply",
    "context",
    "dodge",
    "figure",
    "log_n_axis",
    "mark_informative",
    "prior_color",
    "prior_marker",
    "prior_name",
    "save",
    "save_png_pdf",
    "shade_vacuous",
]

OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
"""The eight Okabe-Ito colours by name."""

BASELINE_COLORS: dict[str, str] = {
    "edge-ss": OKABE_ITO["bluish_green"],
    "dense": OKABE_ITO["black"],
}
"""Colours of the engine's baselines (edge-level spike-and-slab, dense)."""

BASELINE_MARKERS: dict[str, str] = {"edge-ss": "D", "dense": "x"}
"""Markers of the engine's baselines."""

BASELINE_NAMES: dict[str, str] = {"edge-ss": "edge SS", "dense": "dense"}
"""Display names of the engine's baselines."""

PRIOR_COLORS: dict[str, str] = {
    **{f.value: OKABE_ITO.get(s.color, s.color) for f, s in SLABS.items()},
    **BASELINE_COLORS,
}
"""One colour per prior family (node priors, from their slab classes, and the engine's
baselines); a family registered later takes its slab's colour too."""

PRIOR_MARKERS: dict[str, str] = {
    **{f.value: s.marker for f, s in SLABS.items()},
    **BASELINE_MARKERS,
}
"""One marker per prior family, so figures also read in greyscale."""

_CYCLE = [
    OKABE_ITO[k]
    for k in (
        "blue",
        "vermillion",
        "bluish_green",
        "orange",
        "reddish_purple",
        "sky_blue",
        "yellow",
    )
]

RC_PARAMS: dict[str, Any] = {
    "figure.figsize": (6.4, 4.4),
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "lines.linewidth": 2.0,
    "lines.markersize": 6,
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
"""matplotlib rc settings of the style (the colour cycle is added by :func:`apply`)."""


def _family(prior: object) -> str:
    key = str(getattr(prior, "value", prior)).strip().lower()
    if key not in _colors():
        allowed = "one of " + ", ".join(repr(k) for k in _colors())
        raise InvalidParameterError("prior", allowed, prior)
    return key


def _colors() -> dict[str, str]:
    """Colours of every registered family and of the baselines."""
    return {
        **{f.value: OKABE_ITO.get(s.color, s.color) for f, s in SLABS.items()},
        **BASELINE_COLORS,
    }


def prior_color(prior: object) -> str:
    """Colour (hex) of a prior family: a ``Prior`` (theory or engine) or its value, as in a
    results table's ``prior_family`` column."""
    return _colors()[_family(prior)]


def prior_marker(prior: object) -> str:
    """Marker of a prior family."""
    key = _family(prior)
    return BASELINE_MARKERS[key] if key in BASELINE_MARKERS else SLABS[Prior(key)].marker


def prior_name(prior: object) -> str:
    """Display name of a prior family (``ss-gl`` -> ``SS-GL``, ``edge-ss`` -> ``edge SS``): the
    slab's :attr:`~ssbnn_theory.slabs.Slab.display`, or the baseline's name."""
    key = _family(prior)
    return BASELINE_NAMES[key] if key in BASELINE_NAMES else SLABS[Prior(key)].display


def _params() -> dict[str, Any]:
    from cycler import cycler

    return {**RC_PARAMS, "axes.prop_cycle": cycler(color=_CYCLE)}


def apply() -> None:
    """Apply the style globally (``matplotlib.rcParams.update``)."""
    import matplotlib

    matplotlib.rcParams.update(_params())


@contextmanager
def context() -> Iterator[None]:
    """Apply the style inside a ``with`` block only (``matplotlib.rc_context``)."""
    import matplotlib

    with matplotlib.rc_context(_params()):
        yield


def figure(ncols: int = 1, nrows: int = 1, **kwargs: Any) -> tuple[Figure, Axes]:
    """A new figure and axes with the style's size (width scales with ``ncols``)."""
    import matplotlib.pyplot as plt

    width, height = RC_PARAMS["figure.figsize"]
    kwargs.setdefault("figsize", (width * ncols, height * nrows))
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, **kwargs)


def save(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` (format from the extension: ``.png`` or ``.pdf``) and close it."""
    return _write(fig, [Path(path)])[0]


def save_png_pdf(fig: Figure, stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` (folder created) and close it."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    return _write(fig, [stem.parent / f"{stem.name}{suffix}" for suffix in (".png", ".pdf")])


def _write(fig: Figure, paths: list[Path]) -> list[Path]:
    import matplotlib.pyplot as plt

    try:
        for path in paths:
            if path.suffix.lower() not in (".png", ".pdf"):
                raise InvalidParameterError("plot", "a file name ending in .png or .pdf", str(path))
            fig.savefig(path)
    except OSError as exc:
        raise InvalidParameterError(
            "plot", f"a writable path ({exc.strerror})", str(path)
        ) from None
    finally:
        plt.close(fig)
    return paths


def log_n_axis(ax: Axes, ns: Sequence[float]) -> None:
    """Log-scaled training-set-size axis with the grid's values ``ns`` as the tick labels."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(list(ns), [str(int(n)) for n in ns])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training-set size $n$ (log scale)")


def dodge(x: np.ndarray, index: int, count: int, *, factor: float = 0.04) -> np.ndarray:
    """``x * exp(factor (index - (count - 1)/2))``: ``count`` series at one ``n`` side by side."""
    return np.asarray(x, dtype=float) * np.exp(factor * (index - (count - 1) / 2))


VACUOUS_LABEL = r"vacuous: $\varepsilon_n^2 \geq 1$"
"""Legend label of :func:`shade_vacuous`."""


def shade_vacuous(ax: Axes, *, threshold: float = 1.0, label: str | None = VACUOUS_LABEL) -> None:
    """Shade the part of an ``eps_n^2`` axis at or above ``threshold`` (default 1), in grey.

    ``eps_n^2`` bounds a squared Hellinger distance, which never exceeds 1: where a curve lies
    in the band the bound says nothing. Call after plotting (the axis limits are kept).
    """
    lo, hi = ax.get_ylim()
    if hi > threshold:
        ax.axhspan(max(lo, threshold), hi, color="0.88", lw=0, zorder=0, label=label)
        ax.set_ylim(lo, hi)


def mark_informative(ax: Axes, n_informative: float | None, color: str) -> None:
    """A dotted vertical line at ``n_informative`` when it lies inside the ``n`` axis."""
    if n_informative is None:
        return
    lo, hi = ax.get_xlim()
    if lo <= n_informative <= hi:
        ax.axvline(n_informative, color=color, ls=":", lw=1.2, zorder=1)
        ax.set_xlim(lo, hi)
