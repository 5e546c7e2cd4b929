"""Results store: atomic files, manifest, what counts as done."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from simulations.store import (
    MANIFEST,
    BadCellsError,
    CellRecord,
    ResultStore,
    atomic_write,
)
from ssbnn_theory.errors import InvalidParameterError


def _records(count: int, rows: int = 3) -> list[CellRecord]:
    return [
        CellRecord(f"id{i}", f"design/prior/16/n={100 * (i + 1)}", {"n": 100 * (i + 1)}, rows)
        for i in range(count)
    ]


def _table(cell: int, rows: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(cell)
    return pd.DataFrame(
        {
            "cell_id": [f"id{cell}"] * rows,
            "replicate": np.arange(rows),
            "hidden": [[16, 8]] * rows,
            "dH2_mean": rng.random(rows),
        }
    )


def test_atomic_write_failure_leaves_old_file_and_no_temporaries(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def broken(handle):
        handle.write(b"half-written")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    atomic_write(target, lambda h: h.write(b"new"))
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_round_trip_keeps_rows_lists_and_manifest_order(tmp_path):
    store = ResultStore(tmp_path / "out")
    records = _records(3)
    assert store.prepare("s", records) == []
    # finish out of order: the table still follows the manifest's (the study's) order
    store.write_cell("id2", _table(2))
    store.write_cell("id0", _table(0))
    table = store.load_table()
    assert list(table["cell_id"]) == ["id0"] * 3 + ["id2"] * 3
    assert [list(h) for h in table["hidden"]] == [[16, 8]] * 6
    np.testing.assert_array_equal(table["dH2_mean"][:3], _table(0)["dH2_mean"])
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert [manifest["cells"][k]["status"] for k in ("id0", "id1", "id2")] == [
        "done",
        "pending",
        "done",
    ]
    assert store.prepare("s", records) == ["id0", "id2"]


def test_cell_file_without_manifest_update_counts_as_done(tmp_path):
    # a run killed after the cell's rename but before the manifest's keeps the cell
    store = ResultStore(tmp_path)
    records = _records(2)
    store.prepare("s", records)
    store.write_cell("id1", _table(1))
    manifest = store.manifest()
    manifest["cells"]["id1"]["status"] = "pending"
    store._write_manifest(manifest)
    assert store.prepare("s", records) == ["id1"]
    assert store.manifest()["cells"]["id1"]["status"] == "done"


def test_corrupt_or_short_files_are_not_done_and_temporaries_are_cleared(tmp_path):
    store = ResultStore(tmp_path)
    records = _records(2)
    store.prepare("s", records)
    store.write_cell("id0", _table(0))
    good = (tmp_path / "cells" / "id0.parquet").read_bytes()
    (tmp_path / "cells" / "id0.parquet").write_bytes(good[: len(good) // 2])
    (tmp_path / "cells" / "id1.parquet").write_bytes(b"not parquet")
    (tmp_path / "cells" / ".tmp-abc-id1.parquet").write_bytes(good)
    assert store.prepare("s", records) == []
    assert not list((tmp_path / "cells").glob(".tmp-*"))
    # the table is refused, naming both files; skip_bad leaves them out and lists them
    with pytest.raises(BadCellsError, match=r"2 cell files do not verify: .*id0.parquet: not a"):
        store.load_table()
    assert store.load_table(skip_bad=True).empty
    assert [b.path.name for b in store.skipped] == ["id0.parquet", "id1.parquet"]
    # a Parquet file without the checksum (another writer, an older version) is not done
    pd.DataFrame({"replicate": [0, 1, 2], "cell_id": "id0"}).to_parquet(
        tmp_path / "cells" / "id0.parquet"
    )
    assert not store.is_done("id0", 3)
    assert "no checksum" in store.verify_cell("id0", 3)[1]


def test_failures_are_recorded_and_cleared_by_success(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare("s", _records(1))
    store.record_failure("id0", "RuntimeError: boom")
    entry = store.manifest()["cells"]["id0"]
    assert (entry["status"], entry["error"], entry["attempts"]) == (
        "failed",
        "RuntimeError: boom",
        1,
    )
    store.prepare("s", _records(1))
    store.write_cell("id0", _table(0))
    entry = store.manifest()["cells"]["id0"]
    assert (entry["status"], entry["error"], entry["attempts"]) == ("done", None, 2)


def test_refuses_other_study_wrong_rows_unknown_cells_and_missing_manifest(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare("first", _records(1))
    with pytest.raises(InvalidParameterError, match=r"out: must be .*'second'"):
        store.prepare("second", _records(1))
    with pytest.raises(InvalidParameterError, match="rows: must be 3"):
        store.write_cell("id0", _table(0, rows=2))
    with pytest.raises(InvalidParameterError, match="cell_id"):
        store.write_cell("nope", _table(0))
    with pytest.raises(InvalidParameterError, match="DIR: must be a study output folder"):
        ResultStore(tmp_path / "empty").load_table()
    (tmp_path / MANIFEST).write_text("{")
    with pytest.raises(InvalidParameterError, match="readable JSON manifest"):
        store.manifest()
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(InvalidParameterError, match="out: must be a folder"):
        ResultStore(not_a_folder).prepare("s", [])


def test_spec_change_drops_cells_from_the_table(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare("s", _records(2))
    store.write_cell("id0", _table(0))
    store.write_cell("id1", _table(1))
    store.prepare("s", _records(2)[1:])
    assert list(store.load_table()["cell_id"].unique()) == ["id1"]
