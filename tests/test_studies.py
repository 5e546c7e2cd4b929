"""The shipped studies: every spec validates, and every quick version runs end to end.

Every ``studies/*.toml`` must be registered in :data:`STUDIES`, as a full-size
study or as the quick version of one; a new spec without a quick counterpart,
or one not listed here, fails :func:`test_every_study_is_registered`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from simulations.designs import DESIGNS
from simulations.report import write_report
from simulations.schema import RESULT_COLUMNS
from simulations.spec import load_spec
from simulations.store import ResultStore
from simulations.study import expand, run_study

STUDIES_DIR = Path(__file__).resolve().parents[1] / "studies"

STUDIES = {
    p.name: f"{p.stem}_quick.toml"
    for p in sorted(STUDIES_DIR.glob("*.toml"))
    if not p.stem.endswith("_quick")
}
"""Full-size study -> its quick version (run in CI): every ``studies/X.toml`` has one,
``studies/X_quick.toml``."""

STUDIED = {name for name, design in DESIGNS.items() if design.rows is None}
"""The designs that must each have a shipped study: all but user data (``dataset``)."""


def test_every_study_has_a_quick_version_and_nothing_else_is_there():
    on_disk = {p.name for p in STUDIES_DIR.glob("*.toml")}
    paired = set(STUDIES) | set(STUDIES.values())
    assert on_disk == paired, (
        f"quick specs without a full one: {sorted(on_disk - paired)}; "
        f"full specs without a quick one: {sorted(paired - on_disk)}"
    )
    assert len(STUDIES) >= 6


def test_every_design_has_a_full_size_study():
    designs = {load_spec(STUDIES_DIR / full).design.name for full in STUDIES}
    assert designs == STUDIED


@pytest.mark.parametrize("full", sorted(STUDIES))
def test_full_spec_validates_and_its_quick_version_matches(full):
    spec = load_spec(STUDIES_DIR / full)
    quick = load_spec(STUDIES_DIR / STUDIES[full])
    assert quick.design.name == spec.design.name
    assert {p.label for p in quick.priors} <= {p.label for p in spec.priors}
    assert {s.activation for s in quick.students} <= {s.activation for s in spec.students}
    assert len(expand(quick)) <= 8 and quick.train["steps"] <= 50  # quick means quick
    assert spec.name == full.removesuffix(".toml") and quick.name == STUDIES[full].removesuffix(
        ".toml"
    )


@pytest.mark.parametrize("quick", sorted(STUDIES.values()))
def test_quick_study_runs_end_to_end(quick, tmp_path):
    spec = load_spec(STUDIES_DIR / quick)
    summary = run_study(spec, tmp_path, quiet=True)
    assert summary.ok, summary.line()
    table = ResultStore(tmp_path).load_table()
    cells = expand(spec)
    assert len(table) == len(cells) * spec.replicates
    assert not table.duplicated(["cell_id", "replicate"]).any()
    assert set(RESULT_COLUMNS) <= set(table.columns)
    assert np.isfinite(table["dH2_mean"]).all() and (table["dH2_mean"] > 0).all()
    report = write_report(tmp_path, boot=200)
    assert report.summary.is_file() and report.figures


def test_teacher_npz_holds_the_arrays_of_its_script():
    source = importlib.util.spec_from_file_location("make_teacher", STUDIES_DIR / "make_teacher.py")
    module = importlib.util.module_from_spec(source)
    source.loader.exec_module(module)
    expected = module.teacher_arrays()
    with np.load(STUDIES_DIR / "teacher.npz") as archive:
        assert sorted(archive.files) == sorted(expected)
        for name, array in expected.items():
            np.testing.assert_array_equal(archive[name], array)
