"""Small plotting helpers shared by the figures, on top of :mod:`ssbnn_theory.style`.

Colours, markers, fonts and sizes come from ``ssbnn_theory.style`` (the one style of the
project); this module only saves figures and formats the axes every data figure shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssbnn_theory.errors import InvalidParameterError

__all__ = ["dodge", "log_n_axis", "save", "student_label", "style_of"]


def save(fig: Any, out: str | Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``out/stem.png`` and ``out/stem.pdf`` (folder created) and close it."""
    from ssbnn_theory import style

    if not stem or "/" in stem or stem.startswith("."):
        raise InvalidParameterError("stem", "a plain file name without suffix", stem)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    png, pdf = folder / f"{stem}.png", folder / f"{stem}.pdf"
    fig.savefig(png)
    style.save(fig, pdf)
    return [png, pdf]


def style_of(prior: object) -> dict[str, str]:
    """``color`` and ``marker`` of a prior label's family (``ss-gl(input_spike=True)`` too)."""
    from paper_figures.results import prior_family
    from ssbnn_theory import style

    family = prior_family(prior)
    return {"color": style.prior_color(family), "marker": style.prior_marker(family)}


def log_n_axis(ax: Any, ns: Sequence[float]) -> None:
    """Log-scaled training-set-size axis labelled with the grid's values."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(list(ns), [str(int(n)) for n in ns])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training-set size $n$ (log scale)")


def dodge(x: np.ndarray, index: int, count: int, *, factor: float = 0.04) -> np.ndarray:
    """``x * exp(factor (index - (count - 1)/2))``: series at the same ``n`` side by side."""
    return np.asarray(x, dtype=float) * np.exp(factor * (index - (count - 1) / 2))


def student_label(p: int, hidden: Sequence[int], outputs: int, activation: object) -> str:
    """``"10-8-8-1 relu"``: the widths ``p-k_1-...-k_L-outputs`` and the activation."""
    widths = "-".join(str(int(k)) for k in (p, *hidden, outputs))
    return f"{widths} {getattr(activation, 'value', activation)}"
