"""What the CPU offers bfloat16 matmuls, and what fluxion does with it.

fluxion has no bfloat16 kernel of its own: a bfloat16 (or float16) matmul widens its
operands to float32, runs NumPy's float32 BLAS (float32 accumulation) and rounds the
product back. Widening costs 2-7% over a float32 matmul of the same size here; NumPy's
own bfloat16 matmul (ml_dtypes' loop) is not used, it depends on ml_dtypes' version to
reach BLAS at all. A CPU with bfloat16 instructions (avx512_bf16, amx_bf16) would want a
kernel using them (issue 18); ``fluxion info`` and one log line, at the first bfloat16
matmul, say which case this machine is.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger("fluxion")

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


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
