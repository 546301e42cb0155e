"""Where more threads start to pay: float32 matmuls (and stacks of them) timed on one
BLAS thread and on all cores, interleaved in one process; the crossover sets
``fluxion.backends.threads.MATMUL_GRAIN``.

    python bench/threads.py                 # ~20 s
    python bench/threads.py --repeat 15
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import argparse

import numpy as np

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    cores = threads.available_cores()
    env = common.environment()
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
