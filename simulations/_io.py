"""Files and the source tree: atomic writes (every file the package writes) and the git commit."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["TMP_PREFIX", "atomic_write", "fsync_dir", "git_commit"]

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
