"""fx.distributed measured: all-reduce bandwidth beside raw mpi4py on the same buffers; the
`fluxion train gpt` step (its CompiledRunner) on 1 process x 2 threads against 2 processes x
1 thread; the share of a data-parallel step spent all-reducing the gradients.

    python bench/distributed.py                 # starts the parts below, ~1-2 min
    python bench/distributed.py --steps 30      # more steps per timing

Parts (each run by the orchestrator; rank 0 prints):
    mpirun -n 2 python bench/distributed.py --part allreduce
    python bench/distributed.py --part step               (FLUXION_NUM_THREADS=2)
    mpirun -n 2 python bench/distributed.py --part step   (FLUXION_NUM_THREADS=1)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import fluxion as fx  # noqa: E402
from fluxion.distributed import world  # noqa: E402


def _median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        world.barrier()  # every rank starts together, so a rank's time is the collective's
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def part_allreduce(repeat: int) -> dict:
    """fluxion's all_reduce against mpi4py's Allreduce on 4 MB and other sizes."""
    from mpi4py import MPI

    comm, rows = world.comm(), []
    for nbytes in (4 << 10, 256 << 10, 4 << 20, 32 << 20):
        x = np.random.default_rng(0).standard_normal(nbytes // 4).astype(np.float32)
        out = np.empty_like(x)
        tensor = fx.tensor(x)
        raw = _median_time(lambda: comm.Allreduce(x, out, op=MPI.SUM), repeat)
        ours = _median_time(lambda: fx.distributed.all_reduce(tensor), repeat)
        # what fluxion adds: the ranks check that they agree on the call (one small Allgather)
        check = _median_time(lambda: world.check_agreement("all_reduce", "bench", x), repeat)
        rows.append(
            {
                "bytes": nbytes,
                "mpi4py_s": raw,
                "fluxion_s": ours,
                "ratio": ours / raw,
                "check_s": check,
            }
        )
    return {"part": "allreduce", "ranks": world.world_size(), "rows": rows}


def part_step(steps: int) -> dict:
    """The compiled training step of `fluxion train gpt` on this process's share of the
    global batch (32), and the eager bucketed all-reduce of a gradient-shaped tree."""
    from fluxion.tasks import make_config
    from fluxion.tasks.base import make_task, step_rng
    from fluxion.tasks.loop import CompiledRunner

    config = make_config("gpt")
    task = make_task(config)
    fx.manual_seed(config.seed)
    model = task.build_model()
    runner = CompiledRunner(task, model, config)
    batches = [
        tuple(fx.asarray(b) for b in fx.data.shard_batch(task.train_batch(step_rng(0, t))))
        for t in range(steps + 2)
    ]
    for b in batches[:2]:  # compile, warm
        runner.step(b, 1e-3)
    world.barrier()
    t0 = time.perf_counter()
    for b in batches[2:]:
        runner.step(b, 1e-3)
    step_s = (time.perf_counter() - t0) / steps
    grads = [fx.zeros_like(p) for p in model.parameters()]
    reduce_s = _median_time(lambda: fx.distributed.all_reduce(grads, "mean"), steps)
    return {
        "part": "step",
        "ranks": world.world_size(),
        "threads": fx.get_num_threads(),
        "parameters": int(sum(p.size for p in model.parameters())),
        "global_batch": config.batch_size,
        "step_s": step_s,
        "samples_per_s": config.batch_size / step_s,
        "gradient_allreduce_s": reduce_s,
    }


def run_part(part: str, procs: int, threads: int, steps: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--part", part, "--steps", str(steps)]
    if procs > 1:
        command = [world.launcher(), "-n", str(procs), *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI_"))}
    env["FLUXION_NUM_THREADS"] = str(threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["allreduce", "step"])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    if args.part:
        result = part_allreduce(args.steps) if args.part == "allreduce" else part_step(args.steps)
        if world.rank() == 0:
            print(json.dumps(result))
        return
    print(f"{world.mpi_library()}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    reduce = run_part("allreduce", 2, 1, args.steps)
    print("all_reduce (sum, float32) on 2 ranks: median per call")
    print(f"{'bytes':>10} {'mpi4py':>10} {'fluxion':>10} {'ratio':>6} {'check':>10}  GB/s")
    for r in reduce["rows"]:
        print(
            f"{r['bytes']:>10} {r['mpi4py_s'] * 1e3:>8.3f}ms {r['fluxion_s'] * 1e3:>8.3f}ms "
            f"{r['ratio']:>6.2f} {r['check_s'] * 1e3:>8.3f}ms  {r['bytes'] / r['fluxion_s'] / 1e9:.2f}"
        )
    single = run_part("step", 1, 1, args.steps)
    one = run_part("step", 1, 2, args.steps)
    two = run_part("step", 2, 1, args.steps)
    print(f"fluxion train gpt step ({one['parameters']:,} parameters, global batch "
          f"{one['global_batch']}):")  # fmt: skip
    for r in (single, one, two):
        print(
            f"  {r['ranks']} process(es) x {r['threads']} thread(s): {r['step_s'] * 1e3:.1f} ms "
            f"per step, {r['samples_per_s']:.0f} samples/s; the gradients' all-reduce "
            f"{r['gradient_allreduce_s'] * 1e3:.2f} ms ({r['gradient_allreduce_s'] / r['step_s']:.1%})"
        )
    print(
        f"2 processes x 1 thread against 1 x 2: {two['samples_per_s'] / one['samples_per_s']:.2f}; "
        f"scaling efficiency (2x1 against twice 1x1): "
        f"{two['samples_per_s'] / (2 * single['samples_per_s']):.2f}"
    )


if __name__ == "__main__":
    main()
