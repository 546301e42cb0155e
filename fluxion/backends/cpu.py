"""What the CPU offers bfloat16 matmuls, and what fluxion does with it.

fluxion has no bfloat16 kernel of its own: a bfloat16 (or float16) matmul widens its
operands to float32, runs NumPy's float32 BLAS (float32 accumulation) and rounds the
product back once (``bench/precision.py`` measures it beside float32 and torch). A CPU
with bfloat16 instructions (avx512_bf16, amx_bf16) would want a kernel using them (issue
18); ``fluxion info`` and one log line, at the first bfloat16 matmul, say which case this
machine is.
"""

from __future__ import annotations

import functools
import logging

import ml_dtypes
import numpy as np

log = logging.getLogger("fluxion")

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_BF16 = np.dtype(ml_dtypes.bfloat16)


def widen(a: np.ndarray) -> np.ndarray:
    """``a`` (bfloat16 or float16) as float32, exactly. A bfloat16 is the top half of the
    float32 of the same value: shifting its bits is 6x faster than ml_dtypes' cast
    (0.4 against 2.5 ms for 1024 x 1024 here)."""
    if a.dtype != _BF16:
        return a.astype(np.float32)
    return np.left_shift(a.view(np.uint16), 16, dtype=np.uint32).view(np.float32)


@functools.cache
def bf16_instructions() -> tuple[str, ...]:
    """The CPU's bfloat16 instruction sets (from /proc/cpuinfo; none where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(name for name in BF16_FLAGS if name in flags)
    except OSError:
        pass
    return ()


def describe_bf16() -> str:
    found = bf16_instructions()
    if found:
        return f"float32 compute: the CPU has {', '.join(found)}, fluxion has no kernel for it yet"
    return "float32 compute: the CPU has no bf16 instructions (avx512_bf16, amx_bf16)"


@functools.cache
def note_low_precision_matmul() -> None:
    """Log, once per process, how bfloat16 matmuls run on this machine."""
    log.info("fluxion: bfloat16 matmuls run in %s", describe_bf16())
