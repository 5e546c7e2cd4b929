"""Fuzz: damaged result folders never give a traceback or a wrong table.

A finished quick study (``studies/relu_teacher_quick.toml``) is built once and
copied for every example; hypothesis then damages the copy: truncated cell
files, flipped bytes in the data pages or the footer, a cell file copied over
another, stray copies beside the cells, a file holding a replicate twice, a
deleted cell, a garbage manifest, a read-only folder. Whatever the damage,

* ``ssbnn results`` exits 0 with exactly the original table (when no cell it
  uses changed), or exits 1 with one line that names every damaged cell file;
* ``--skip-bad`` exits 0 with the original rows of the intact cells only;
* the check ``simulate`` uses to decide what to recompute rejects exactly the
  damaged cells, and a few examples run ``simulate`` and ``report`` for real:
  the recomputed table equals the original.

The number of folders tried is printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulations.cli import main
from simulations.schema import RUN_COLUMNS
from simulations.store import MANIFEST, IntegrityWarning, ResultStore, encode_cell
from ssbnn_theory.errors import InvalidParameterError
from tests.simulations.damage import footer_start, make_read_only, make_writable

SPEC = Path(__file__).resolve().parents[2] / "studies" / "relu_teacher_quick.toml"
COUNTS = {"folders": 0, "refused": 0, "identical": 0, "recomputed": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_count(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"fuzz of damaged result folders: {COUNTS['folders']} folders tried "
        f"({COUNTS['refused']} refused with one line naming the files, "
        f"{COUNTS['identical']} read back identical, {COUNTS['recomputed']} recomputed by simulate)"
    )
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            reporter.write_line("")
            reporter.write_line(line)
    else:  # pragma: no cover - without the terminal reporter (pytest -p no:terminal)
        print(line)


class Finished(tuple):
    """(folder, printed table, table, {cell_id: bytes}); a short repr for hypothesis."""

    def __repr__(self) -> str:
        return f"Finished({self[0]})"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The finished quick study: (folder, printed table, table, {cell_id: bytes})."""
    folder = tmp_path_factory.mktemp("fuzz") / "study"
    assert main(["simulate", str(SPEC), "--out", str(folder), "--quiet"]) == 0
    code, stdout, err = _cli("results", folder)
    assert code == 0, err
    cells = {p.stem: p.read_bytes() for p in sorted((folder / "cells").glob("*.parquet"))}
    assert len(cells) == 4
    return Finished((folder, stdout, ResultStore(folder).load_table(), cells))


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        # integrity warnings printed as the command prints them (one line each)
        warnings.simplefilter("always", IntegrityWarning)
        warnings.showwarning = lambda message, category, filename, lineno, *_: err.write(
            warnings.formatwarning(message, category, filename, lineno)
        )
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


# one damage: (kind, cell index, another cell index, position in [0, 1), xor mask)
damage = st.tuples(
    st.sampled_from(
        [
            "truncate",
            "flip-data",
            "flip-footer",
            "flip-any",
            "copy-over",
            "stray-copy",
            "replicate-twice",
            "delete",
            "manifest",
            "read-only",
        ]
    ),
    st.integers(0, 3),
    st.integers(1, 3),
    st.floats(0.0, 1.0, exclude_max=True),
    st.integers(1, 255),
)


def _apply(folder: Path, cells: dict[str, bytes], how, monkeypatch) -> None:
    """Damage ``folder`` one way."""
    kind, index, offset, where, mask = how
    ids = list(cells)
    cell_id = ids[index]
    path = folder / "cells" / f"{cell_id}.parquet"
    if not path.exists() and kind not in ("manifest", "read-only"):
        return  # an earlier damage deleted it
    data = bytearray(path.read_bytes()) if path.exists() else bytearray()
    if kind == "truncate":
        path.write_bytes(bytes(data[: int(where * len(data))]))
    elif kind.startswith("flip"):
        start = footer_start(data) if len(data) >= 12 else 0
        low, high = {"flip-data": (4, start), "flip-footer": (start, len(data))}.get(
            kind, (0, len(data))
        )
        if high <= low:
            return
        data[low + int(where * (high - low))] ^= mask
        path.write_bytes(bytes(data))
    elif kind == "copy-over":
        source = folder / "cells" / f"{ids[(index + offset) % len(ids)]}.parquet"
        if source.exists():  # (an earlier damage may have deleted it)
            shutil.copyfile(source, path)
    elif kind == "stray-copy":  # copies beside the cells that no manifest entry names
        shutil.copyfile(path, folder / "cells" / f"{mask:016x}.parquet")
        shutil.copyfile(path, folder / "cells" / f"{cell_id}.parquet.bak")
    elif kind == "replicate-twice":
        table = pd.read_parquet(io.BytesIO(cells[cell_id]))
        twice = pd.concat([table[table["replicate"] == 0]] * 2, ignore_index=True)
        path.write_bytes(encode_cell(twice, {"cell_id": cell_id, "replicates": [0, 0], "rows": 2}))
    elif kind == "delete":
        path.unlink()
    elif kind == "manifest":
        text = (folder / MANIFEST).read_bytes()
        cut = int(where * len(text))
        (folder / MANIFEST).write_bytes(text[:cut] + bytes([text[cut] ^ mask]) + text[cut + 1 :])
    elif kind == "read-only":
        make_read_only(folder, monkeypatch)


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    table = table.drop(columns=[c for c in RUN_COLUMNS if c in table])
    return table.sort_values(["cell_id", "replicate"]).reset_index(drop=True)


def _check(folder: Path, finished) -> None:
    """The promises of the module docstring for one damaged folder."""
    _, printed, reference, cells = finished
    store = ResultStore(folder)
    try:
        store.manifest()
        manifest_ok = True
    except InvalidParameterError:
        manifest_ok = False
    changed = {c for c, data in cells.items() if _read(folder, c) not in (data, None)}
    deleted = {c for c in cells if _read(folder, c) is None}
    strays = {p.stem for p in (folder / "cells").glob("[!.]*.parquet")} - set(cells)
    # with its manifest, a study knows every cell (a deleted one is bad) and ignores strays;
    # an index rebuilt from the files cannot know a deleted cell and refuses every stray
    bad = changed | deleted if manifest_ok else changed | strays
    code, stdout, err = _cli("results", folder)
    assert "Traceback" not in err and "Traceback" not in stdout
    lines = err.strip().splitlines()
    if bad:
        assert code == 1, (code, err)
        assert len(lines) == 1 + (not manifest_ok), err  # a rebuilt index adds one warning
        line = lines[-1]
        assert line.startswith("ssbnn results: error: ") and "not verify" in line, line
        for cell_id in bad:
            assert f"{cell_id}.parquet" in line, (cell_id, line)
        COUNTS["refused"] += 1
    else:
        assert code == 0 and len(lines) == (not manifest_ok), (code, err)
        if manifest_ok:
            assert stdout == printed
        COUNTS["identical"] += 1
    # --skip-bad: the rows of the intact cells, exactly as written
    expected = reference[~reference["cell_id"].isin(changed | deleted)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrityWarning)
        table = store.load_table(skip_bad=True)
    if len(expected):
        pd.testing.assert_frame_equal(_sorted(table), _sorted(expected))
    # what simulate would recompute: exactly the damaged cells
    assert {c for c in cells if not store.is_done(c, 2)} == changed | deleted


def _read(folder: Path, cell_id: str) -> bytes | None:
    path = folder / "cells" / f"{cell_id}.parquet"
    return path.read_bytes() if path.exists() else None


@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(damages=st.lists(damage, min_size=1, max_size=3))
def test_damaged_folders_are_refused_or_read_back_identical(finished, damages):
    folder0, _, _, cells = finished
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as monkeypatch:
        folder = Path(tmp) / "study"
        shutil.copytree(folder0, folder)
        try:
            for how in damages:
                _apply(folder, cells, how, monkeypatch)
            COUNTS["folders"] += 1
            _check(folder, finished)
        finally:
            monkeypatch.undo()
            make_writable(folder)


def _truly_bad(folder: Path, cells: dict[str, bytes]) -> set[str]:
    """The cells whose file is gone or no longer holds exactly the bytes that were written."""
    return {c for c, data in cells.items() if _read(folder, c) != data}


@settings(
    max_examples=4,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(damages=st.lists(damage.filter(lambda d: d[0] != "read-only"), min_size=1, max_size=2))
def test_simulate_recomputes_damaged_cells_and_report_refuses_them(finished, damages):
    folder0, _, reference, cells = finished
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as monkeypatch:
        folder = Path(tmp) / "study"
        shutil.copytree(folder0, folder)
        for how in damages:
            _apply(folder, cells, how, monkeypatch)
        bad = _truly_bad(folder, cells)
        COUNTS["folders"] += 1
        code, _, err = _cli("report", folder)
        assert "Traceback" not in err
        if bad:
            assert code == 1 and all(f"{c}.parquet" in err for c in bad), err
        code, stdout, err = _cli("simulate", SPEC, "--out", folder, "--quiet")
        assert code == 0 and f"({len(bad)} now, {4 - len(bad)} before)" in stdout, (stdout, err)
        pd.testing.assert_frame_equal(_sorted(ResultStore(folder).load_table()), _sorted(reference))
        COUNTS["recomputed"] += bool(bad)
