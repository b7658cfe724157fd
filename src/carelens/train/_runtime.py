"""CPU settings measured to make PyTorch 1.5-3x faster on this kind of machine (PERF-NOTES.md)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import torch

__all__ = ["autocast", "configure_runtime", "describe", "device"]

_done = False


def configure_runtime(threads: int | None = None) -> None:
    """Threads = cores; glibc keeps big activation buffers instead of unmapping them every step."""
    global _done
    torch.set_num_threads(threads or os.cpu_count() or 1)
    if _done:
        return
    _done = True
    if sys.platform.startswith("linux") and "MALLOC_MMAP_MAX_" not in os.environ:
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-4, 0)  # M_MMAP_MAX = 0
            libc.mallopt(-1, 1 << 40)  # M_TRIM_THRESHOLD: never trim
        except (OSError, AttributeError):
            pass  # not glibc: nothing to tune


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _bf16(dev: torch.device) -> bool:
    return dev.type == "cuda" and torch.cuda.is_bf16_supported()


def autocast(dev: torch.device) -> contextlib.AbstractContextManager[object]:
    """bf16 mixed precision on a CUDA device that has it (Ampere and later): the matrix work in bfloat16, the losses
    and reductions in float32 (no loss scaling needed, unlike float16). On the CPU nothing changes: the weights and
    every figure measured there stay float32."""
    if _bf16(dev):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(dev: torch.device, processes: int = 1) -> str:
    """Where training runs, in one line: the device, its forward passes' precision, and the threads or processes."""
    if dev.type == "cuda":
        where = f"{dev} ({torch.cuda.get_device_name(dev)}, {'bf16 autocast' if _bf16(dev) else 'float32'})"
    else:
        n = torch.get_num_threads()
        where = f"the CPU ({n} thread{'s' * (n != 1)}{' a process' if processes > 1 else ''})"
    return f"training on {where}" + (f", {processes} processes" if processes > 1 else "")
