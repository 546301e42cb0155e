"""The first call of a compiled training step, in fresh processes: with the kernel cache
empty (the first run of a program on a machine: gcc builds its kernels) and full (every
later run: they are loaded from disk).

Each sample is a new Python process (so nothing is cached in memory) running workload A's
or B's compiled functional step once (``workloads.fluxion_run``); an empty-cache sample
gets a new ``FLUXION_CACHE_DIR``, and the full-cache sample after it reuses that directory.
Per sample it reports the first call, the part of it spent waiting for the C compiler
(``toolchain.build``), and how many kernels were built. The pairs of samples alternate, so a
slow spell of the machine hits both alike; the median is reported.

    python bench/first_call.py                 # workload A, 7 pairs of samples
    python bench/first_call.py --workload B --repeat 3
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def child(workload: str) -> None:
    """One sample, in this process: the first call of the step, as JSON on stdout."""
    import workloads

    from fluxion.compiler.native import toolchain

    built = {"ms": 0.0, "kernels": 0}
    build = toolchain.build

    def timed_build(sources, prelude):
        start = time.perf_counter()
        try:
            return build(sources, prelude)
        finally:
            built["ms"] += (time.perf_counter() - start) * 1e3
            built["kernels"] += len(sources)

    toolchain.build = timed_build
    run = workloads.fluxion_run(workload, "compiled_functional")
    start = time.perf_counter()
    run.step()
    first = (time.perf_counter() - start) * 1e3
    print(json.dumps({"first_ms": first, "build_ms": built["ms"], "kernels": built["kernels"]}))


def sample(workload: str, cache: str) -> dict:
    env = dict(os.environ, FLUXION_CACHE_DIR=cache)
    command = [sys.executable, os.path.abspath(__file__), "--child", workload]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=["A", "B"], default="A")
    p.add_argument("--repeat", type=int, default=7, help="pairs of samples (default 7)")
    p.add_argument("--json", action="store_true", help="one JSON object per line, no table")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return 0
    samples = {"empty": [], "full": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="fluxion_bench_kernels_") as cache:
            samples["empty"].append(sample(args.workload, cache))
            samples["full"].append(sample(args.workload, cache))
    rows = []
    for cache, got in samples.items():
        first = [s["first_ms"] for s in got]
        rows.append(
            {
                "cache": cache,
                "first": statistics.median(first),
                "min": min(first),
                "max": max(first),
                "gcc": statistics.median(s["build_ms"] for s in got),
                "kernels": got[0]["kernels"] if cache == "empty" else 0,
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps({"workload": args.workload, **row}))
        return 0
    print(f"first call of workload {args.workload}'s compiled step, {args.repeat} samples each")
    print(f"environment: {common.environment()}")
    columns = [
        ("cache", "kernel cache", ""),
        ("first", "first call ms (median)", ".0f"),
        ("min", "min", ".0f"),
        ("max", "max", ".0f"),
        ("gcc", "waiting for gcc ms", ".0f"),
        ("kernels", "kernels built", ""),
    ]
    print(common.table(rows, columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
