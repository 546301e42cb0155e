"""Where more threads start to pay: float32 matmuls (and stacks of them) timed on one
BLAS thread and on all cores, interleaved in one process; the crossover sets
``fluxion.backends.threads.MATMUL_GRAIN``. With ``--kernels``: native kernels of fused
groups (an add, a GELU, a softmax's row sums, a bias gradient's column sums, AdamW's
update) at sizes from 4K to 4M elements, on one thread and on all cores, every kernel cut
into as many ranges as there are threads (no grain); the crossover sets ``KERNEL_GRAIN``.

    python bench/threads.py                 # ~20 s
    python bench/threads.py --repeat 15
    python bench/threads.py --kernels       # ~30 s
    python bench/threads.py --idle          # ~10 s

``--idle`` measures the CPU time the process burns in the second after a call, while it
sleeps: what the idle threads of OpenBLAS and of fluxion's pool spin before they sleep.
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import argparse

import numpy as np

import fluxion as fx
from fluxion.backends import threads

SHAPES = [  # (stack, m, k, n): attention-sized stacks and square products
    (1, 8, 8, 8),
    (1, 32, 32, 32),
    (1, 64, 64, 64),
    (1, 96, 96, 96),
    (1, 128, 128, 128),
    (1, 192, 192, 192),
    (1, 256, 256, 256),
    (1, 512, 512, 512),
    (32, 64, 64, 64),
    (128, 32, 32, 32),
    (1, 4096, 256, 256),
]


def _adamw(p, g, m, v):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    return p - 1e-3 * (m / (fx.sqrt(v) + 1e-8) + 0.01 * p), m, v


GROUPS = {  # name -> (function, arrays it takes: (rows, 1024) or (1024,))
    "add": (lambda x, y: x + y, ("x", "x")),
    "gelu": (lambda x: 0.5 * x * (1 + fx.tanh(0.79788456 * (x + 0.044715 * x * x * x))), ("x",)),
    "softmax": (lambda x: fx.softmax(x, axis=-1), ("x",)),
    "column sums": (lambda x, y: fx.sum(x * y, axis=0), ("x", "x")),
    "adamw": (_adamw, ("x", "x", "x", "x")),
}


def kernels(args, cores: int) -> None:
    """Native kernels on one thread and on ``cores``, every one cut as finely as asked."""
    threads.KERNEL_GRAIN = 1  # no grain: measure where one would be
    rng = np.random.default_rng(0)
    print(
        f"{'group':>12}  {'elements':>9}  {'1 thread us':>11}  {cores} threads us  ratio  min ratio"
    )
    for name, (fn, shapes) in GROUPS.items():
        for rows in (4, 16, 32, 64, 128, 512, 4096):
            arrays = [fx.tensor(rng.random((rows, 1024), dtype=np.float32) + 0.5) for _ in shapes]
            compiled = fx.jit(fn)

            def on(count):
                def run():
                    with fx.num_threads(count):
                        compiled(*arrays)

                return run

            times = common.time_interleaved({"one": on(1), "all": on(cores)}, repeat=args.repeat)
            one, all_ = (float(np.median(times[key])) * 1e6 for key in ("one", "all"))
            fastest = min(times["one"]) / min(times["all"])  # the least disturbed samples
            print(
                f"{name:>12}  {rows * 1024:>9,}  {one:>11.1f}  {all_:>13.1f}  {one / all_:.2f}"
                f"  {fastest:9.2f}"
            )
    print(f"KERNEL_GRAIN now: {threads.KERNEL_GRAIN:,} elements per thread")


def idle(cores: int, samples: int = 5) -> None:
    """CPU seconds this process uses while sleeping 1 s after a call on ``cores`` threads."""
    import os
    import time

    def after(call) -> float:
        call()
        start = os.times()
        time.sleep(1.0)
        end = os.times()
        return (end.user + end.system) - (start.user + start.system)

    a = np.ones((512, 512), np.float32)
    x = fx.tensor(np.ones((2048, 1024), np.float32))
    kernel = fx.jit(lambda x: fx.tanh(x) * x)
    threads.set_blas_threads(cores)

    def on_threads():
        with fx.num_threads(cores):
            kernel(x)

    for name, call in (("OpenBLAS, a 512^2 matmul", lambda: a @ a), ("fluxion's pool", on_threads)):
        spent = [after(call) for _ in range(samples)]
        print(f"{name:>26} on {cores} threads: {max(spent):.3f} s of CPU in the idle second after")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--kernels", action="store_true", help="native kernels, not matmuls")
    parser.add_argument("--idle", action="store_true", help="CPU spent by idle threads")
    args = parser.parse_args()
    cores = threads.available_cores()
    env = common.environment()
    if args.idle:
        idle(cores)
        return
    if args.kernels:
        kernels(args, cores)
        common.finish(env, False, "threads")
        return
    rng = np.random.default_rng(0)
    print(f"{'shape':>22}  {'multiply-adds':>13}  {'1 thread us':>11}  {cores} threads us  ratio")
    for stack, m, k, n in SHAPES:
        a = rng.standard_normal((stack, m, k), dtype=np.float32)
        b = rng.standard_normal((stack, k, n), dtype=np.float32)

        def on(count):
            def run():
                threads.set_blas_threads(count)
                np.matmul(a, b)

            return run

        times = common.time_interleaved({"one": on(1), "all": on(cores)}, repeat=args.repeat)
        one, all_ = (float(np.median(times[key])) * 1e6 for key in ("one", "all"))
        shape = f"{stack}x{m}x{k}x{n}"
        print(
            f"{shape:>22}  {stack * m * k * n:>13,}  {one:>11.1f}  {all_:>13.1f}  {one / all_:.2f}"
        )
    print(f"MATMUL_GRAIN now: {threads.MATMUL_GRAIN:,} multiply-adds (one thread below it)")
    common.finish(env, False, "threads")


if __name__ == "__main__":
    main()
