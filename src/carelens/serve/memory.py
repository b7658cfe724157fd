"""Memory of a long-running service process.

glibc gives each thread that allocates its own malloc arena (up to 8 per core). The service decodes images,
runs ONNX Runtime and writes the audit log on several threads, and freed memory in one arena is not reused
by another: measured in the soak benchmark (bench/soak.py, 4 minutes of mixed traffic at 2x capacity),
resident memory grew 20% with the default arenas and 7% with two. Two arenas cost nothing measurable here.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["limit_malloc_arenas"]

M_ARENA_MAX = -8  # mallopt parameter number (malloc.h)


def limit_malloc_arenas(n: int = 2) -> bool:
    """Cap glibc's malloc arenas (call before threads start); False where it does not apply (not glibc, or
    ``MALLOC_ARENA_MAX`` already set by the operator)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, n))
    except (OSError, AttributeError):
        return False
