"""Empirical contraction against theory (notebook 02): the ``relu_teacher`` study.

The figure is the study report's (:func:`simulations.report.contraction_figure`), one per
student: ``E_q d_H^2`` and ``E_q ||f - f0||_2^2`` against ``n`` on log-log axes, every
replicate as a point, the replicate mean with the 10-90 % band, and the theory's
``C eps_n^2`` with one constant fitted in logs (:func:`simulations.report.theory_constant`);
the legends give the least-squares slopes with their 95 % replicate-bootstrap intervals
(:func:`simulations.report.slope_table`). :func:`slope_summary` is the slope table beside the
theory: the slope of ``log eps_n^2`` over the same grid and its local slope
``d log eps_n^2 / d log n`` at the grid's ends, both computed by ``ssbnn_theory`` for each
cell's student when the study ran (``eps_n``, ``eps2_local_slope`` columns).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["contraction_figures", "slope_summary"]


def slope_summary(table: pd.DataFrame, *, boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Fitted log-log slopes with 95 % bootstrap intervals beside the theory's, per student.

    Columns: ``prior``, ``student``, ``n range``, ``slope E_q d_H^2`` with its 95 % interval
    ``E_q d_H^2 low``/``high``, ``slope E_q ‖f-f0‖^2`` with ``E_q ‖f-f0‖^2 low``/``high``
    (:func:`simulations.schema.slope_labels`),
    ``theory slope (grid)`` (least squares of ``log eps_n^2`` on ``log n``) and
    ``theory local slope at n_min``/``at n_max``.
    """
    from simulations.report import slope_table
    from simulations.schema import CONTRACTION, slope_labels

    slopes = slope_table(table, boot=boot, seed=seed)
    if slopes.empty:
        return pd.DataFrame()
    rows = []
    for _, row in slopes.iterrows():
        entry: dict[str, Any] = {
            "prior": str(row["prior"]),
            "student": str(row["hidden"]),
            "n range": f"{row['n_min']}-{row['n_max']}",
            **{
                text: row[name]
                for metric in CONTRACTION
                for name, text in slope_labels(metric).items()
            },
            "theory slope (grid)": row["slope_eps2"],
        }
        if "local_eps2_first" in row:
            entry["theory local slope at n_min"] = row["local_eps2_first"]
            entry["theory local slope at n_max"] = row["local_eps2_last"]
        rows.append(entry)
    return pd.DataFrame(rows)


def contraction_figures(
    table: pd.DataFrame, out: str | Path, *, boot: int = 2000, seed: int = 0
) -> list[Path]:
    """One contraction figure per design and student (PNG and PDF), the report's figure.

    Files ``contraction_<design>_<student>.png``/``.pdf``; students with fewer than two
    ``n`` values are skipped (no slope).
    """
    from simulations.report import contraction_figure, slope_table, with_labels

    frame = with_labels(table)
    slopes = slope_table(table, boot=boot, seed=seed)
    folder = Path(out)
    paths: list[Path] = []
    for design in dict.fromkeys(frame["design"]):
        for student in frame["hidden"].cat.categories:
            mask = ((frame["design"] == design) & (frame["hidden"] == student)).to_numpy()
            part = slopes[(slopes["design"] == design) & (slopes["hidden"] == student)]
            if not mask.any() or part.empty:
                continue
            stem = folder / f"contraction_{design}_{student}"
            paths += contraction_figure(frame[mask], part, stem)
    return paths
