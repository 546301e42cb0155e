"""The differential fuzzer's long campaign: random programs, every check, shrunk repros.

Each seed is one program of 10-40 ops drawn by ``tests/fuzz/program.py`` and checked every
way ``tests/fuzz/checks.py`` lists (eager vs NumPy float64; grad and backward() vs
torch.autograd; jvp; vmap; jit, jit(grad) with a cache hit and jit(vmap(grad)) with a
retrace, each against eager with native kernels on and off, float64 and float32). A
failure is shrunk to a smallest program failing the same check and printed as a runnable
script. At the end: programs, checks, failures, time, and for each check the largest
difference it passed with (relative to 1 + max|expected|), how many of its results were
bit-identical to what they were compared with, and how many float32 results took the
other side of a jump (a sort, a max...) than eager float32 where float64 agreed.

    python bench/fuzz.py --n 5000                 # the long campaign (seeds 0..4999)
    python bench/fuzz.py --n 200 --start 10000    # other seeds
    python bench/fuzz.py --n 500 --jobs 2         # two processes (each its own seeds)
"""

from __future__ import annotations

import common  # noqa: F401, I001  (puts the repository root on sys.path)

# isort: split

import argparse
import multiprocessing
import time

from tests.fuzz.checks import CHECKS, check_program
from tests.fuzz.program import generate


def run(seeds, shrink_budget: int, quiet: bool, deadline: float):
    """(programs, checks, failures, worst, exact) over ``seeds``, or those begun before
    ``deadline`` (a ``time.time()``); failures printed as found."""
    worst, exact, flips, failures, checks, done = {}, {}, {}, [], 0, 0
    for seed in seeds:
        if time.time() > deadline:
            break
        done += 1
        program = generate(seed)
        found = check_program(
            program, shrink_budget=shrink_budget, worst=worst, exact=exact, flips=flips
        )
        checks += len(CHECKS)
        for f in found:
            print(f"\n=== seed {seed}: {f}", flush=True)
        failures += [(seed, f.check, f.message.splitlines()[0]) for f in found]
        if not quiet:
            print(
                f"seed {seed}: {len(program.ops)} ops, shapes {program.shapes}, {len(found)} failed",
                flush=True,
            )
    return done, checks, failures, worst, exact, flips


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="programs (default 5000)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    parser.add_argument(
        "--shrink-budget", type=int, default=300, help="candidates tried per shrink"
    )
    parser.add_argument("--quiet", action="store_true", help="no line per program")
    parser.add_argument(
        "--minutes", type=float, default=None, help="begin no program after this long"
    )
    args = parser.parse_args()
    seeds = list(range(args.start, args.start + args.n))
    t0 = time.perf_counter()
    deadline = time.time() + (args.minutes * 60 if args.minutes else float("inf"))
    parts = [seeds[j :: args.jobs] for j in range(args.jobs)]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.starmap(run, [(p, args.shrink_budget, args.quiet, deadline) for p in parts])
    programs = sum(r[0] for r in results)
    checks = sum(r[1] for r in results)
    failures = [f for r in results for f in r[2]]
    worst, exact, flips = {}, {}, {}
    for r in results:
        for name, v in r[5].items():
            flips[name] = flips.get(name, 0) + v
        for name, v in r[3].items():
            worst[name] = max(worst.get(name, 0.0), v)
        for name, v in r[4].items():
            exact[name] = exact.get(name, 0) + v
    elapsed = time.perf_counter() - t0
    print(
        f"\nseeds from {args.start} ({args.n} asked): {programs} programs, {checks} checks, "
        f"{len(failures)} failures, {elapsed:.0f} s ({elapsed / max(programs, 1):.2f} s a program)"
    )
    print(
        f"{'check':<28} {'largest passing difference':>27} {'bit-identical':>14} {'float32 flips':>14}"
    )
    for name in CHECKS:
        row = f"{name:<28} {worst.get(name, 0.0):>27.3g} {exact.get(name, 0):>9}/{programs}"
        print(row + (f" {flips[name]:>14}" if name in flips else ""))
    for seed, check, message in failures:
        print(f"FAILED seed {seed} {check}: {message}")


if __name__ == "__main__":
    main()
