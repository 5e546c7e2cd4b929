"""Small plotting helpers shared by the figures, on top of :mod:`ssbnn_theory.style`.

Colours, markers, fonts, sizes and the axes of data figures (``style.log_n_axis``,
``style.dodge``) come from ``ssbnn_theory.style`` (the one style of the project); this
module names the files, gives a prior label's look and writes a student's label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssbnn_theory.errors import InvalidParameterError

__all__ = ["figure_stem", "save", "student_label", "style_of"]


def figure_stem(out: str | Path, stem: str) -> Path:
    """``out/stem``, with ``stem`` checked to be a plain file name without suffix."""
    if not stem or "/" in stem or stem.startswith("."):
        raise InvalidParameterError("stem", "a plain file name without suffix", stem)
    return Path(out) / stem


def save(fig: Any, out: str | Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``out/stem.png`` and ``out/stem.pdf`` (folder created) and close it."""
    from ssbnn_theory import style

    return style.save_png_pdf(fig, figure_stem(out, stem))


def style_of(family: object) -> dict[str, str]:
    """``color`` and ``marker`` of a prior family (a ``prior_family`` value or a ``Prior``)."""
    from ssbnn_theory import style

    return {"color": style.prior_color(family), "marker": style.prior_marker(family)}


def student_label(p: int, hidden: Sequence[int], outputs: int, activation: object) -> str:
    """``"10-8-8-1 relu"``: the widths ``p-k_1-...-k_L-outputs`` and the activation."""
    widths = "-".join(str(int(k)) for k in (p, *hidden, outputs))
    return f"{widths} {getattr(activation, 'value', activation)}"
