"""Results of a study on disk: one Parquet file per finished cell, a JSON manifest, resume.

Layout of a study's output folder ``DIR``::

    DIR/manifest.json          the study's cells, their status, failures (atomic JSON)
    DIR/cells/<cell_id>.parquet one file per finished cell, one row per replicate

Every file is written atomically: the bytes go to a temporary file in the same
folder, are flushed and ``fsync``-ed, and the temporary file is renamed over
the target with :func:`os.replace` (atomic on POSIX and Windows). A reader
therefore sees either no file or a complete one, whatever kills the writer.

The Parquet files are the source of truth: a cell is *done* when its file
exists and holds the expected number of rows, whatever the manifest says (a
run killed between writing the cell file and the manifest loses nothing). The
manifest is an index: which cells the study has, their configuration summary,
and the failures of the last run.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ssbnn_theory.errors import InvalidParameterError

__all__ = ["MANIFEST", "CellRecord", "ResultStore", "atomic_write"]

MANIFEST = "manifest.json"
"""File name of the manifest inside a study's output folder."""

_SCHEMA = 1
_TMP_PREFIX = ".tmp-"


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` atomically: ``write`` fills a temporary file that then replaces ``path``.

    The temporary file lives in ``path``'s folder (so the rename never crosses
    file systems), is ``fsync``-ed before :func:`os.replace`, and the folder is
    ``fsync``-ed after it, so the new content survives a crash once this returns.
    On any error the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix="-" + path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platform without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on folders
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class CellRecord:
    """What the manifest knows of one cell.

    Attributes
    ----------
    cell_id
        Hash of the cell's fully resolved configuration and the package version.
    label
        Human-readable identity, ``design/prior/hidden/n=...``.
    summary
        Small JSON-able description of the cell (design, prior, hidden, n, replicates).
    rows
        Expected number of rows in the cell's file (its replicates).
    """

    cell_id: str
    label: str
    summary: Mapping[str, Any]
    rows: int


class ResultStore:
    """The output folder of one study.

    Parameters
    ----------
    root
        The study's output folder; created on :meth:`prepare`.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.cells_dir = self.root / "cells"
        self.manifest_path = self.root / MANIFEST

    # -- writing -----------------------------------------------------------------

    def prepare(
        self, study: str, cells: Iterable[CellRecord], meta: Mapping[str, Any] | None = None
    ) -> list[str]:
        """Create the folder, register the study's cells and return the ids already done.

        Leftover temporary files of a killed run are removed. A folder that holds
        another study (a different ``study`` name in its manifest) is refused, so
        two studies never mix their results. Cells registered by an earlier run
        of the same study but absent now (the spec changed) are dropped from the
        manifest; their files stay on disk but no longer enter the table.

        Raises
        ------
        InvalidParameterError
            ``out`` when the folder belongs to another study or is not a folder.
        """
        if self.root.exists() and not self.root.is_dir():
            raise InvalidParameterError("out", "a folder", str(self.root))
        try:
            self.cells_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidParameterError(
                "out", f"a folder that can be created ({exc.strerror})", str(self.root)
            ) from None
        for stale in self.cells_dir.glob(_TMP_PREFIX + "*"):
            stale.unlink(missing_ok=True)
        for stale in self.root.glob(_TMP_PREFIX + "*"):
            stale.unlink(missing_ok=True)
        old = self._read_manifest() if self.manifest_path.exists() else None
        if old is not None and old.get("study") != study:
            raise InvalidParameterError(
                "out",
                f"an empty folder or one holding study {study!r}",
                f"{self.root} (holds study {old.get('study')!r})",
            )
        old_cells = old["cells"] if old is not None else {}
        entries: dict[str, dict[str, Any]] = {}
        done: list[str] = []
        for record in cells:
            previous = old_cells.get(record.cell_id, {})
            finished = self.is_done(record.cell_id, record.rows)
            entries[record.cell_id] = {
                "label": record.label,
                **dict(record.summary),
                "rows": record.rows,
                "file": f"cells/{record.cell_id}.parquet",
                "status": "done" if finished else "pending",
                "attempts": int(previous.get("attempts", 0)),
                "error": None,
                "details": None,
            }
            if finished:
                done.append(record.cell_id)
        manifest = {
            "schema": _SCHEMA,
            "study": study,
            **dict(meta or {}),
            "created": old.get("created") if old else _now(),
            "updated": _now(),
            "cells": entries,
        }
        self._write_manifest(manifest)
        return done

    def write_cell(self, cell_id: str, table: pd.DataFrame) -> Path:
        """Store a finished cell's rows atomically and mark it done in the manifest."""
        manifest = self._read_manifest()
        entry = self._entry(manifest, cell_id)
        if len(table) != entry["rows"]:
            raise InvalidParameterError(
                f"cell {entry['label']} rows", f"{entry['rows']} (one per replicate)", len(table)
            )
        target = self.cells_dir / f"{cell_id}.parquet"
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        atomic_write(target, lambda handle: pq.write_table(arrow, handle))
        entry.update(status="done", attempts=entry["attempts"] + 1, error=None, details=None)
        manifest["updated"] = _now()
        self._write_manifest(manifest)
        return target

    def record_failure(self, cell_id: str, error: str, details: str | None = None) -> None:
        """Mark a cell failed in the manifest: one-line ``error``, traceback ``details``."""
        manifest = self._read_manifest()
        entry = self._entry(manifest, cell_id)
        entry.update(status="failed", attempts=entry["attempts"] + 1, error=error, details=details)
        manifest["updated"] = _now()
        self._write_manifest(manifest)

    # -- reading -----------------------------------------------------------------

    def is_done(self, cell_id: str, rows: int) -> bool:
        """Whether the cell's file exists, is readable Parquet and holds ``rows`` rows."""
        path = self.cells_dir / f"{cell_id}.parquet"
        if not path.is_file():
            return False
        try:
            return pq.read_metadata(path).num_rows == rows
        except (OSError, pa.ArrowException):
            return False

    def manifest(self) -> dict[str, Any]:
        """The manifest as a dictionary."""
        return self._read_manifest()

    def load_table(self) -> pd.DataFrame:
        """The consolidated table: the rows of every done cell of the study, in manifest order.

        Raises
        ------
        InvalidParameterError
            ``DIR`` when the folder has no manifest (it is not a study's output).
        """
        manifest = self._read_manifest()
        frames = [
            pd.read_parquet(self.root / entry["file"])
            for cell_id, entry in manifest["cells"].items()
            if self.is_done(cell_id, entry["rows"])
        ]
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    # -- internals ---------------------------------------------------------------

    def _entry(self, manifest: dict[str, Any], cell_id: str) -> dict[str, Any]:
        try:
            return manifest["cells"][cell_id]
        except KeyError:
            raise InvalidParameterError(
                "cell_id", "a cell registered with prepare()", cell_id
            ) from None

    def _read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            raise InvalidParameterError(
                "DIR", f"a study output folder holding {MANIFEST}", str(self.root)
            )
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidParameterError(
                str(self.manifest_path), "a readable JSON manifest", type(exc).__name__
            ) from None
        schema = manifest.get("schema") if isinstance(manifest, dict) else None
        if schema != _SCHEMA:
            raise InvalidParameterError(
                str(self.manifest_path), f"a manifest of schema {_SCHEMA}", schema
            )
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n"
        atomic_write(self.manifest_path, lambda handle: handle.write(text.encode("utf-8")))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
