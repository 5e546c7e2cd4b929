"""Process heap settings for training: keep freed memory for the next step (glibc malloc).

A training step allocates its temporaries (noise, slab samples, gradients: megabytes each
for wide first layers) and frees them at its end. With glibc's default settings, blocks
above a moving threshold are mapped afresh for every allocation and the top of the heap is
handed back to the operating system whenever more than a few megabytes are free there, so
every step pays page faults to get the same memory back: on W1 of
``benchmarks/bench_engine.py`` (R = 64) over a quarter of the step (``docs/engine.md``,
"Performance"). :func:`keep_freed_memory` fixes the two settings for the process: blocks up
to 32 MiB come from the heap (``M_MMAP_THRESHOLD``, glibc's largest allowed value), and up
to 256 MiB of free memory stays at the heap's top (``M_TOP_PAD``). The process keeps at most
that much more than it uses; larger tensors (data sets) are still mapped and unmapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["keep_freed_memory"]

M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TOP_PAD = 256 << 20
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc malloc's ``M_MMAP_THRESHOLD`` (32 MiB) and ``M_TOP_PAD`` (256 MiB) once per
    process; ``True`` where they are in force, ``False`` where the C library is not glibc
    (nothing is changed there). :func:`simulations.fit` calls it."""
    global _applied
    if _applied is None:
        _applied = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _applied = bool(
                    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                    and libc.mallopt(M_TOP_PAD, TOP_PAD)
                )
            except (OSError, AttributeError):
                _applied = False
    return _applied
