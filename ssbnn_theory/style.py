"""The one plotting style of ssbnn: CLI plots, study reports, notebooks and ``paper_figures``.

Colours are the Okabe-Ito palette (Okabe & Ito 2008, colour-blind safe), one fixed colour
and marker per prior family so a family looks the same in every figure. matplotlib is
imported inside the functions, never when ``ssbnn_theory`` is imported.

Example::

    from ssbnn_theory import style

    with style.context():
        fig, ax = style.figure()
        ax.loglog(n, eps2, color=style.prior_color("ss-gl"), marker=style.prior_marker("ss-gl"))
        style.save(fig, "rate.png")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssbnn_theory.errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "OKABE_ITO",
    "PRIOR_COLORS",
    "PRIOR_MARKERS",
    "RC_PARAMS",
    "apply",
    "context",
    "figure",
    "prior_color",
    "prior_marker",
    "save",
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

PRIOR_COLORS: dict[str, str] = {
    "ss-ig": OKABE_ITO["sky_blue"],
    "ss-gl": OKABE_ITO["blue"],
    "ss-ghs": OKABE_ITO["vermillion"],
    "edge-ss": OKABE_ITO["bluish_green"],
    "dense": OKABE_ITO["black"],
}
"""One colour per prior family (node priors and the engine's baselines)."""

PRIOR_MARKERS: dict[str, str] = {
    "ss-ig": "s",
    "ss-gl": "o",
    "ss-ghs": "^",
    "edge-ss": "D",
    "dense": "x",
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
    if key not in PRIOR_COLORS:
        allowed = "one of " + ", ".join(repr(k) for k in PRIOR_COLORS)
        raise InvalidParameterError("prior", allowed, prior)
    return key


def prior_color(prior: object) -> str:
    """Colour (hex) of a prior family: ``Prior``, engine ``Prior``, or its string value."""
    return PRIOR_COLORS[_family(prior)]


def prior_marker(prior: object) -> str:
    """Marker of a prior family."""
    return PRIOR_MARKERS[_family(prior)]


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
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        if path.suffix.lower() not in (".png", ".pdf"):
            raise InvalidParameterError("plot", "a file name ending in .png or .pdf", str(path))
        fig.savefig(path)
    except OSError as exc:
        raise InvalidParameterError(
            "plot", f"a writable path ({exc.strerror})", str(path)
        ) from None
    finally:
        plt.close(fig)
    return path
