"""Memory of a long-running service process: glibc's allocator, tuned so that freed memory goes back.

Two glibc behaviours make a service's resident memory creep up under mixed traffic:

- Each thread that allocates gets its own malloc arena (up to 8 per core), and memory freed in one arena is
  not reused by another. The service decodes images, runs ONNX Runtime and writes the audit log on several
  threads: in the soak benchmark (bench/soak.py, 4 minutes of mixed traffic at 2x capacity) resident memory
  grew 20% with the default arenas and 7% with two. Two arenas cost nothing measurable here.
- Blocks above the mmap threshold (128 KiB) are mapped and unmapped on their own, but glibc raises that
  threshold to the size of each such block freed (up to 32 MiB), after which decoded images, model inputs and
  outputs come from the heap, whose free space stays resident wherever a small live block sits above it.
  Fixing the threshold at its default keeps them mapped: the same soak with a reload every 30 s grew 18% in 4
  minutes (332 -> 392 MB) with the moving threshold and 3% (296 -> 306 MB) with it fixed, at the same capacity;
  over 10 minutes 17% against 4%, level after the first minute.

Both are set with ``mallopt`` for this process and through glibc's environment variables (read when a process
starts) for the worker processes the service starts; an operator's own ``MALLOC_*`` setting stands.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MALLOC_ARENAS", "MMAP_THRESHOLD", "tune_malloc"]

MALLOC_ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # bytes: glibc's own starting value, kept fixed


def tune_malloc(arenas: int = MALLOC_ARENAS, mmap_threshold: int = MMAP_THRESHOLD) -> dict[str, int]:
    """Cap glibc's malloc arenas and fix its mmap threshold (call before threads start); the settings applied,
    by name: none where this is not glibc, and not one the operator already set in the environment."""
    if not sys.platform.startswith("linux"):
        return {}
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return {}
    applied: dict[str, int] = {}
    # name, mallopt parameter number (malloc.h), the environment variable glibc reads for it, value
    for name, param, env, value in (("arenas", -8, "MALLOC_ARENA_MAX", arenas),
                                    ("mmap_threshold", -3, "MALLOC_MMAP_THRESHOLD_", mmap_threshold)):
        if env in os.environ:
            continue
        try:
            ok = bool(libc.mallopt(param, value))
        except AttributeError:  # a libc.so.6 that is not glibc
            return applied
        if ok:
            os.environ[env] = str(value)  # for the worker processes started after this
            applied[name] = value
    return applied
