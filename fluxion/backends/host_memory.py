"""Host memory: keep freed memory in the process, so new arrays do not page-fault again.

glibc's malloc gives every block above its mmap threshold (128 KiB to 32 MiB, adapting)
fresh pages from the kernel and hands them back on free; each new array then faults on
first touch, page by page. On this project's VM a fault costs 0.6-10 us per 4 KiB page:
the float32 erf of a (150, 8, 64) array took 0.90 ms instead of 0.18 ms, and a step of the
GPT workload re-faulted ~130 MB. PyTorch's and JAX's CPU allocators keep freed memory for
reuse; NumPy asks malloc, so fluxion tells glibc to do the same: serve big blocks from its
heap and never trim it. The process's resident memory then stays at its peak.

``FLUXION_KEEP_FREED_MEMORY=0`` leaves malloc as it is (set it to share the machine's
memory with other processes). Elsewhere than glibc (macOS, Windows, musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_LARGEST_HEAP_BLOCK = 1 << 30  # blocks above this still get their own mapping


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse freed memory; True if it accepted."""
    if not sys.platform.startswith("linux") or os.environ.get("FLUXION_KEEP_FREED_MEMORY") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _LARGEST_HEAP_BLOCK) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    )


KEEPING_FREED_MEMORY = keep_freed_memory()
