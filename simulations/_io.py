"""Files and the source tree: atomic writes (every file the package writes), records as plain
values (what checkpoints and a cell's identity store) and the git commit."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import IO, Any

__all__ = ["TMP_PREFIX", "atomic_write", "fsync_dir", "git_commit", "plain"]

TMP_PREFIX = ".tmp-"
"""Prefix of the temporary files :func:`atomic_write` renames over their target."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` atomically: ``write`` fills a temporary file that then replaces ``path``.

    The temporary file lives in ``path``'s folder (so the rename never crosses
    file systems), gets the permissions the umask allows for a new file (not
    ``mkstemp``'s ``0600``), is ``fsync``-ed before :func:`os.replace`, and the
    folder is ``fsync``-ed after it, so the new content survives a crash once
    this returns. On any error the temporary file is removed and ``path`` is
    left untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix="-" + path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
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


def plain(value: object, *, nonfinite_as_str: bool = False) -> Any:
    """``value`` (a record such as ``dataclasses.asdict`` gives) as plain JSON-able values.

    Mappings become new dicts with ``str`` keys, lists and tuples become new lists, enum
    members their values (a ``StrEnum``'s is a ``str``); anything else is returned as it is.
    With ``nonfinite_as_str`` an infinite or NaN float becomes its ``str`` (``"inf"``,
    ``"nan"``), which a cell's identity hashes; without it the float is kept, as checkpoints
    store it.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v, nonfinite_as_str=nonfinite_as_str) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, nonfinite_as_str=nonfinite_as_str) for v in value]
    if isinstance(value, Enum):
        return value.value
    if nonfinite_as_str and isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def git_commit(folder: str | Path) -> str | None:
    """The commit checked out in the git work tree containing ``folder``, or ``None``.

    ``None`` when ``folder`` is not inside a git checkout (e.g. an installed
    package) or git is not available.
    """
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None
