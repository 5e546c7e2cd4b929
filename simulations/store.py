"""Results of a study on disk: verified cell files, a JSON manifest, a folder lock, resume.

Layout of a study's output folder ``DIR``::

    DIR/manifest.json          the study's cells, their status, failures (atomic JSON)
    DIR/cells/<cell_id>.parquet one file per finished cell, one row per replicate
    DIR/.lock                  the writer's lock (``fcntl.flock``) and its pid

Every file is written atomically: the bytes go to a temporary file in the same
folder, are flushed and ``fsync``-ed, and the temporary file is renamed over
the target with :func:`os.replace` (atomic on POSIX and Windows). A reader
therefore sees either no file or a complete one, whatever kills the writer.
Files are created with the permissions the umask allows (``0644`` under the
usual ``022``).

**Verified cells.** A cell file carries, in its Parquet key-value metadata,
``ssbnn.cell`` (JSON: the cell id, its replicate set, row count, study, label
and summary) and ``ssbnn.sha256``: the SHA-256 of the file's own bytes, taken
with those 64 digest characters set to ``0``. The digest therefore covers every
byte of the file (data pages, page headers, footer, the other metadata) except
itself, and a change to any byte, including one that would decode silently to
other numbers, is detected. :meth:`ResultStore.verify_cell` reads the file once,
checks the digest, the cell id (a file copied over another), the replicate set
and the rows (one per replicate, none twice) and only then decodes the table.

The Parquet files are the source of truth: a cell is *done* when its file
verifies, whatever the manifest says (a run killed between writing the cell
file and the manifest loses nothing). The manifest is an index: which cells the
study has, their configuration summary, and the failures of the last run. It
carries the SHA-256 of its own content (``sha256``); a manifest that cannot be
read or does not match it is moved aside and rebuilt from the cell files by
``simulate``, and readers use such a rebuilt index without writing it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from simulations._io import TMP_PREFIX, atomic_write
from ssbnn_theory.errors import InvalidParameterError

__all__ = [
    "LOCK",
    "MANIFEST",
    "BadCell",
    "BadCellsError",
    "CellRecord",
    "IntegrityWarning",
    "ResultStore",
    "StudyLockedError",
    "atomic_write",
]

MANIFEST = "manifest.json"
"""File name of the manifest inside a study's output folder."""

LOCK = ".lock"
"""File name of the writer's lock inside a study's output folder."""

_SCHEMA = 1
_KEY_CELL = b"ssbnn.cell"
_KEY_SHA = b"ssbnn.sha256"
_PLACEHOLDER = b"0" * 64


class IntegrityWarning(UserWarning):
    """A damaged file was set aside or skipped (a corrupt manifest or checkpoint)."""


@dataclass(frozen=True)
class BadCell:
    """A cell file that does not verify: its path and the reason in words."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class BadCellsError(Exception):
    """Cell files of a study do not verify; the table would be wrong, so it is refused.

    ``bad`` lists them; the message is one line naming every file and its reason.
    """

    def __init__(self, bad: Iterable[BadCell]) -> None:
        self.bad = tuple(bad)
        head = (
            "1 cell file does not verify"
            if len(self.bad) == 1
            else (f"{len(self.bad)} cell files do not verify")
        )
        super().__init__(f"{head}: " + "; ".join(str(b) for b in self.bad))


class StudyLockedError(InvalidParameterError):
    """Another process holds the study folder's lock (another ``ssbnn simulate``)."""

    def __init__(self, root: Path, holder: str) -> None:
        self.field, self.value, self.holder = "out", str(root), holder
        self.allowed = "a folder no other ssbnn simulate is writing"
        ValueError.__init__(
            self,
            f"out: {root} is being written by another ssbnn simulate (pid {holder}); "
            "wait for it to finish or pass --wait",
        )


# --------------------------------------------------------------------------- cell files


def encode_cell(table: pd.DataFrame, info: Mapping[str, Any]) -> bytes:
    """The Parquet bytes of a cell's ``table`` with ``info`` and the file's own SHA-256.

    The digest is computed over the whole file with its 64 characters set to
    ``0``, then written in their place (same length: no offset moves).
    """
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[_KEY_CELL] = json.dumps(dict(info), sort_keys=True, default=str).encode()
    meta[_KEY_SHA] = _PLACEHOLDER
    arrow = arrow.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    pq.write_table(arrow, sink)
    data = bytearray(sink.getvalue().to_pybytes())
    start = _footer_start(data)
    pos = data.find(_PLACEHOLDER, start)
    if start < 0 or pos < 0 or data.find(_PLACEHOLDER, pos + 1) >= 0:  # pragma: no cover
        raise RuntimeError("cannot place the checksum in the Parquet footer")
    digest = hashlib.sha256(data).hexdigest().encode()
    data[pos : pos + len(digest)] = digest
    return bytes(data)


def _footer_start(data: bytes | bytearray) -> int:
    """Offset of the Parquet footer (file metadata), or -1 when the framing is broken."""
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        return -1
    length = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - length
    return start if 4 <= start < len(data) - 8 else -1


def decode_cell(data: bytes, cell_id: str | None, rows: int | None) -> tuple[Any, Any]:
    """Verify a cell file's bytes: ``(table, info)``, or ``(None, reason)`` when they do not.

    ``cell_id`` / ``rows``: what the file must hold (``None``: what its metadata says).
    """
    start = _footer_start(data)
    if start < 0:
        return None, "not a complete Parquet file (truncated or overwritten)"
    try:
        meta = pq.read_metadata(pa.BufferReader(data)).metadata or {}
    except (OSError, pa.ArrowException, ValueError):
        return None, "unreadable Parquet footer"
    digest = meta.get(_KEY_SHA)
    if digest is None or _KEY_CELL not in meta:
        return None, "no checksum (not written by this version of ssbnn simulate)"
    pos = bytes(data).find(digest, start) if len(digest) == len(_PLACEHOLDER) else -1
    if pos < 0:
        return None, "checksum mismatch (the file changed after it was written)"
    blank = bytearray(data)
    blank[pos : pos + len(digest)] = _PLACEHOLDER
    if hashlib.sha256(blank).hexdigest().encode() != digest:
        return None, "checksum mismatch (the file changed after it was written)"
    try:
        info = json.loads(meta[_KEY_CELL])
        owner, replicates, expected = info["cell_id"], list(info["replicates"]), info["rows"]
    except (ValueError, KeyError, TypeError):  # pragma: no cover - digest matched: our own write
        return None, "unreadable cell metadata"
    if cell_id is not None and owner != cell_id:
        return None, f"holds cell {owner}, not {cell_id} (a file copied over another)"
    rows = expected if rows is None else rows
    if sorted(replicates) != list(range(rows)):
        return None, f"holds replicates {replicates}, not 0..{rows - 1}"
    try:
        table = pq.read_table(pa.BufferReader(data)).to_pandas()
    except (OSError, pa.ArrowException, ValueError) as exc:  # pragma: no cover - digest matched
        return None, f"undecodable Parquet data ({type(exc).__name__})"
    if len(table) != rows or "replicate" not in table or "cell_id" not in table:
        return None, f"holds {len(table)} rows, not {rows}"
    if sorted(table["replicate"].tolist()) != list(range(rows)):
        return None, "holds a replicate twice or misses one"
    if set(table["cell_id"]) != {owner}:
        return None, f"rows of other cells than {owner}"
    return table, info


# --------------------------------------------------------------------------- the store


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
        The study's output folder; created on :meth:`lock` or :meth:`prepare`.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.cells_dir = self.root / "cells"
        self.manifest_path = self.root / MANIFEST
        self.skipped: tuple[BadCell, ...] = ()
        """Bad cells that the last :meth:`load_table` with ``skip_bad`` left out."""

    # -- the writer's lock -------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, *, wait: bool = False) -> Iterator[None]:
        """Hold the folder's exclusive writer lock (``fcntl.flock`` on ``DIR/.lock``).

        The lock belongs to this process's open file: the operating system
        releases it on any exit, ``kill -9`` included. The holder's pid is
        written into the file so that a refused writer can name it.

        Raises
        ------
        StudyLockedError
            Another process holds the lock and ``wait`` is false.
        InvalidParameterError
            ``out`` when the folder cannot be created or written (read-only).
        """
        self._make_folder()
        path = self.root / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise _unwritable("out", self.root, exc) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    raise StudyLockedError(self.root, holder) from None
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _make_folder(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise InvalidParameterError("out", "a folder", str(self.root))
        try:
            self.cells_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidParameterError(
                "out", f"a folder that can be created ({exc.strerror})", str(self.root)
            ) from None

    # -- writing -----------------------------------------------------------------

    def prepare(
        self,
        study: str,
        cells: Iterable[CellRecord],
        meta: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Create the folder, register the study's cells and return the ids already done.

        Call it while holding :meth:`lock`. Leftover temporary files of a killed
        run are removed. A cell is done when its file verifies
        (:meth:`verify_cell`); a file that does not is left for the cell to be
        recomputed (its new file replaces it). A manifest that cannot be read is
        moved aside (``manifest.json.corrupt-<time>``, named in an
        :class:`IntegrityWarning`) and rebuilt. A folder that holds another study
        (a different ``study`` name in its manifest or cells) is refused, so two
        studies never mix their results. Cells registered by an earlier run of
        the same study but absent now (the spec changed) are dropped from the
        manifest; their files stay on disk but no longer enter the table.

        Raises
        ------
        InvalidParameterError
            ``out`` when the folder belongs to another study, is not a folder or
            cannot be written.
        """
        self._make_folder()
        try:
            for folder in (self.cells_dir, self.root):
                for stale in folder.glob(TMP_PREFIX + "*"):
                    stale.unlink(missing_ok=True)
        except OSError as exc:
            raise _unwritable("out", self.root, exc) from None
        old = None
        if self.manifest_path.exists():
            try:
                old = self._read_manifest()
            except InvalidParameterError:
                old = self._set_aside_manifest()
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
            "created": old.get("created", _now()) if old else _now(),
            "updated": _now(),
            "cells": entries,
        }
        self._write_manifest(manifest)
        return done

    def write_cell(self, cell_id: str, table: pd.DataFrame) -> Path:
        """Store a finished cell's rows atomically, with their checksum; mark the cell done.

        Raises
        ------
        InvalidParameterError
            The table does not hold one row per replicate ``0..R-1`` of this cell.
        """
        manifest = self._read_manifest()
        entry = self._entry(manifest, cell_id)
        rows = int(entry["rows"])
        if len(table) != rows:
            raise InvalidParameterError(
                f"cell {entry['label']} rows", f"{rows} (one per replicate)", len(table)
            )
        if "replicate" in table and sorted(table["replicate"].tolist()) != list(range(rows)):
            raise InvalidParameterError(
                f"cell {entry['label']} replicates",
                f"0..{rows - 1}, each once",
                table["replicate"].tolist(),
            )
        if "cell_id" in table and set(table["cell_id"]) != {cell_id}:
            raise InvalidParameterError(
                f"cell {entry['label']} cell_id", cell_id, sorted(set(table["cell_id"]))
            )
        table = table.copy()
        table["cell_id"] = cell_id
        if "replicate" not in table:
            table["replicate"] = range(rows)
        info = {
            "cell_id": cell_id,
            "replicates": list(range(rows)),
            "rows": rows,
            "study": manifest.get("study"),
            "study_cells": list(manifest["cells"]),
            "label": entry["label"],
            "summary": {
                k: v
                for k, v in entry.items()
                if k not in ("label", "rows", "file", "status", "attempts", "error", "details")
            },
        }
        data = encode_cell(table, info)
        target = self.cells_dir / f"{cell_id}.parquet"
        atomic_write(target, lambda handle: handle.write(data))
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

    def verify_cell(self, cell_id: str, rows: int | None = None) -> tuple[Any, str | None]:
        """``(table, None)`` when the cell's file verifies, ``(None, reason)`` when it does not.

        ``(None, None)``: there is no file (the cell is not finished).
        """
        path = self.cells_dir / f"{cell_id}.parquet"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"unreadable ({exc.strerror or type(exc).__name__})"
        table, info = decode_cell(data, cell_id, rows)
        return (table, None) if table is not None else (None, info)

    def is_done(self, cell_id: str, rows: int) -> bool:
        """Whether the cell's file exists and verifies (checksum, cell id, replicates, rows)."""
        return self.verify_cell(cell_id, rows)[0] is not None

    def manifest(self) -> dict[str, Any]:
        """The manifest as a dictionary."""
        return self._read_manifest()

    def index(self) -> dict[str, Any]:
        """The manifest; when it cannot be read, one rebuilt from the verified cell files.

        A rebuilt index is not written (readers do not write; the next
        ``ssbnn simulate`` rewrites the manifest) and an :class:`IntegrityWarning`
        says so.

        Raises
        ------
        InvalidParameterError
            ``DIR`` when the folder has no manifest and no cell file.
        """
        try:
            return self._read_manifest()
        except InvalidParameterError:
            if not self.manifest_path.is_file():
                raise
        rebuilt = self._rebuild()
        warnings.warn(
            f"{self.manifest_path} cannot be read; using an index rebuilt from the "
            f"{len(rebuilt['cells'])} verified cell files (ssbnn simulate rewrites it)",
            IntegrityWarning,
            stacklevel=2,
        )
        return rebuilt

    def load_table(self, *, skip_bad: bool = False, manifest: dict | None = None) -> pd.DataFrame:
        """The consolidated table: the rows of every done cell of the study, in manifest order.

        Every cell file is verified (:meth:`verify_cell`) before its rows are
        used; no (cell, replicate) pair can appear twice.

        Parameters
        ----------
        skip_bad
            Leave out the cells whose files do not verify (listed in
            :attr:`skipped`) instead of refusing the table.
        manifest
            The index to use (default :meth:`index`).

        Raises
        ------
        BadCellsError
            Some cell file does not verify, or a cell the manifest marks done has
            no file, and ``skip_bad`` is false.
        InvalidParameterError
            ``DIR`` when the folder has no manifest (it is not a study's output).
        """
        manifest = self.index() if manifest is None else manifest
        frames, bad = [], []
        for cell_id, entry in manifest["cells"].items():
            rows = entry.get("rows")
            table, reason = self.verify_cell(cell_id, None if rows is None else int(rows))
            if table is not None:
                frames.append(table)
            elif reason is not None:
                bad.append(BadCell(self.cells_dir / f"{cell_id}.parquet", reason))
            elif entry.get("status") == "done":
                bad.append(
                    BadCell(
                        self.cells_dir / f"{cell_id}.parquet",
                        "missing (the manifest marks it done)",
                    )
                )
        if bad and not skip_bad:
            raise BadCellsError(bad)
        self.skipped = tuple(bad)
        if not frames:
            return pd.DataFrame()
        table = pd.concat(frames, ignore_index=True)
        if table.duplicated(["cell_id", "replicate"]).any():  # pragma: no cover - verified above
            raise BadCellsError([BadCell(self.cells_dir, "duplicate (cell, replicate) rows")])
        return table

    # -- internals ---------------------------------------------------------------

    def _entry(self, manifest: dict[str, Any], cell_id: str) -> dict[str, Any]:
        try:
            return manifest["cells"][cell_id]
        except KeyError:
            raise InvalidParameterError(
                "cell_id", "a cell registered with prepare()", cell_id
            ) from None

    def _rebuild(self) -> dict[str, Any]:
        """An index rebuilt from the cell files, for a manifest that cannot be read.

        Verified files give their cell's entry (label, summary, rows) and the
        study's other cells, which are listed as pending when they have no
        file; a file that does not verify stays in the index under its name,
        so that readers refuse it rather than silently drop its rows.
        """
        infos, unverified = [], []
        for path in sorted(self.cells_dir.glob("[!.]*.parquet")):
            try:
                table, info = decode_cell(path.read_bytes(), path.stem, None)
            except OSError:
                table, info = None, None
            if table is not None:
                infos.append(info)
            else:
                unverified.append(path.stem)
        studies = [i.get("study") for i in infos]
        study = max(set(studies), key=studies.count) if studies else None
        infos = [i for i in infos if i.get("study") == study]
        infos.sort(key=lambda i: (str(i.get("label")), i["cell_id"]))

        def entry(cell_id: str, label: str, rows: int | None, status: str, **summary: Any):
            return {
                "label": label,
                **summary,
                "rows": rows,
                "file": f"cells/{cell_id}.parquet",
                "status": status,
                "attempts": 1 if status == "done" else 0,
                "error": None,
                "details": None,
            }

        cells = {
            i["cell_id"]: entry(
                i["cell_id"],
                i.get("label", i["cell_id"]),
                i["rows"],
                "done",
                **(i.get("summary") or {}),
            )
            for i in infos
        }
        rows = infos[0]["rows"] if infos else None
        for cell_id in unverified:
            cells.setdefault(cell_id, entry(cell_id, cell_id, rows, "done"))
        for info in infos:
            for cell_id in info.get("study_cells") or ():
                cells.setdefault(cell_id, entry(cell_id, cell_id, rows, "pending"))
        return {"schema": _SCHEMA, "study": study, "rebuilt": _now(), "cells": cells}

    def _set_aside_manifest(self) -> dict[str, Any] | None:
        """Move an unreadable manifest aside and return an index rebuilt from the cells."""
        aside = self.root / f"{MANIFEST}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
        try:
            os.replace(self.manifest_path, aside)
        except OSError as exc:
            raise _unwritable("out", self.root, exc) from None
        rebuilt = self._rebuild()
        warnings.warn(
            f"{self.manifest_path} could not be read: moved to {aside} and rebuilt from "
            f"{len(rebuilt['cells'])} verified cell files",
            IntegrityWarning,
            stacklevel=3,
        )
        return rebuilt if rebuilt["cells"] else None

    def _read_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            raise InvalidParameterError(
                "DIR", f"a study output folder holding {MANIFEST}", str(self.root)
            )
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidParameterError(
                str(self.manifest_path), "a readable JSON manifest", type(exc).__name__
            ) from None
        schema = manifest.get("schema") if isinstance(manifest, dict) else None
        if schema != _SCHEMA:
            raise InvalidParameterError(
                str(self.manifest_path), f"a manifest of schema {_SCHEMA}", schema
            )
        if manifest.pop("sha256", None) != _manifest_digest(manifest):
            raise InvalidParameterError(
                str(self.manifest_path), "a manifest whose checksum matches", "changed"
            )
        cells = manifest.get("cells")
        if not isinstance(cells, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("rows"), int) and "label" in e
            for e in cells.values()
        ):
            raise InvalidParameterError(
                str(self.manifest_path), "a manifest whose cells have labels and rows", "damaged"
            )
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        manifest = json.loads(json.dumps(manifest, default=str))
        manifest.pop("sha256", None)
        manifest["sha256"] = _manifest_digest(manifest)
        text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
        try:
            atomic_write(self.manifest_path, lambda handle: handle.write(text.encode("utf-8")))
        except OSError as exc:
            raise _unwritable("out", self.root, exc) from None


def _unwritable(key: str, root: Path, exc: OSError) -> InvalidParameterError:
    """``out: must be a writable folder (Permission denied: ...)`` for a read-only folder."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InvalidParameterError(key, f"a writable folder ({reason})", str(root))
    return InvalidParameterError(key, f"a folder that can be written ({reason})", str(root))


def _manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's content (without its ``sha256``), as canonical JSON."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
