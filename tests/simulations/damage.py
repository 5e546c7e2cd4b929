"""Helpers of the fault tests: damage a study's output folder the ways disks and people do."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import pytest


def footer_start(data: bytes) -> int:
    """Offset of a Parquet file's footer: the data pages are ``data[4:footer_start]``."""
    return len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def make_read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``folder`` read-only: its mode bits, and, for root (whom mode bits do not stop),
    writes under it that fail with ``EACCES`` as they would for anyone else."""
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    if os.geteuid() != 0:
        return
    root = str(folder.resolve())

    def inside(path) -> bool:
        return str(Path(os.fsdecode(path)).resolve()).startswith(root)

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

    real_open, real_mkstemp, real_mkdir = os.open, tempfile.mkstemp, Path.mkdir

    def fake_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def fake_mkstemp(*args, dir=None, **kwargs):
        if dir is not None and inside(dir):
            refuse(dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    def fake_mkdir(self, *args, **kwargs):
        if inside(self) and not self.is_dir():
            refuse(self)
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(tempfile, "mkstemp", fake_mkstemp)
    monkeypatch.setattr(Path, "mkdir", fake_mkdir)


def make_writable(folder: Path) -> None:
    """Undo the mode bits of :func:`make_read_only` (so the folder can be removed)."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
