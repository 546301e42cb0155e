"""How many threads fluxion's work runs on: the BLAS behind NumPy's matmuls and
fluxion's own compiled kernels.

``fx.set_num_threads(n)`` and ``fx.get_num_threads()`` (PyTorch's names),
``FLUXION_NUM_THREADS`` at start, and ``with fx.num_threads(n):`` for a block. The
default is the number of cores this process may run on: ``os.sched_getaffinity`` (which
``taskset`` and cgroup cpusets restrict) and a cgroup CPU quota, not ``os.cpu_count()``.

The BLAS is told through ``threadpoolctl`` (the kept library for exactly this). A matmul
too small to gain from more threads runs on one (``MATMUL_GRAIN``): OpenBLAS otherwise
wakes every thread for an 8x8 product, and their spinning is what made a compiled step
3-40x slower when another process shared the cores (issue 21's table).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading

from fluxion.errors import InvalidArgumentError

# Below this many multiply-adds a matmul runs on one BLAS thread. Measured with
# bench/threads.py on this project's 2-core machine: two threads first pay at 128x128x128
# (1.9x on a quiet machine), but while other processes keep the cores busy every product
# on two threads from 128**3 to 256**3 took ~55 ms (0.24-1.3 ms on one): OpenBLAS's
# second thread waits for a core. Workload A's products (up to 3.7 M multiply-adds) made
# its compiled step 195-313 ms on two threads under such load, 20-21 ms on one. Above
# 256**3 the wait is a smaller part of the product (512**3: 88 ms on two against 14 on
# one under load, 1.9x faster quiet; workload B's 4096x256x256: 26 against 20).
MATMUL_GRAIN = 256**3

# A native kernel (a fused group) runs on at most one thread per this many elements of
# its loop (multiply-adds for a stack of small matmuls), so one smaller than twice this
# runs on one. PyTorch's grain for elementwise work; bench/threads.py --kernels, run while
# other processes held 80% of this 2-core machine, had the fastest samples gain on two
# threads from 32K-64K elements in most groups (GELU, softmax, column sums, AdamW's
# update: 1.7-2.6x at 64K), and the medians too noisy to move it.
KERNEL_GRAIN = 32768


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, and a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this OS
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _from_environment() -> int:
    value = os.environ.get("FLUXION_NUM_THREADS")
    if value is None:
        return available_cores()
    try:
        return _checked(int(value), "FLUXION_NUM_THREADS")
    except ValueError:
        raise InvalidArgumentError(
            f"FLUXION_NUM_THREADS={value!r} is not a positive integer; unset it or give one"
        ) from None


def _checked(n, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgumentError(f"{name}: the number of threads must be an int >= 1, got {n!r}")
    return n


class _Threads:
    """The process's setting and what the BLAS was last told (one per process, as the
    BLAS's own thread pool is)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = _from_environment()
        self.blas = None  # what the BLAS runs on now (None: not told yet)
        self.controllers = None  # threadpoolctl's handles of the loaded BLAS libraries

    def tell_blas(self, n: int) -> None:
        if n == self.blas:
            return
        with self.lock:
            if self.controllers is None:
                self.controllers = _blas_controllers()
            for controller in self.controllers:
                controller.set_num_threads(n)
            self.blas = n


def _blas_controllers() -> list:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # fluxion runs without it; the BLAS then picks its own threads
        return []
    return ThreadpoolController().select(user_api="blas").lib_controllers


setting = _Threads()  # read by every native kernel call (native.caller)


def get_num_threads() -> int:
    """The number of threads fluxion's work may use (``set_num_threads``)."""
    return setting.count


def set_num_threads(n: int) -> None:
    """Run fluxion's work (BLAS matmuls, compiled kernels) on at most ``n`` threads."""
    setting.count = _checked(n, "set_num_threads")


@contextlib.contextmanager
def num_threads(n: int):
    """``with fx.num_threads(1):`` runs the block on ``n`` threads, then restores."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        setting.count = previous


def set_blas_threads(n: int) -> None:
    """Tell the BLAS to use ``n`` threads now (benchmarks calling NumPy directly; fluxion's
    own matmuls choose per call, see ``for_matmul``)."""
    setting.tell_blas(_checked(n, "set_blas_threads"))


def for_matmul(multiply_adds: int) -> None:
    """Before a matmul of ``multiply_adds``: the BLAS runs it on one thread when it is too
    small to gain from more, else on ``get_num_threads()``."""
    setting.tell_blas(1 if multiply_adds < MATMUL_GRAIN else setting.count)


def blas_info() -> list[dict]:
    """The BLAS libraries loaded and their thread counts (threadpoolctl's report)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]
