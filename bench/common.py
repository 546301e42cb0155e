"""Shared helpers of fluxion's benchmarks: timing, environment, tables, JSON lines.

Timing follows three rules, because this machine is a noisy 2-core VM:

* warm up every candidate before measuring (first calls pay for imports and caches);
* take the median of ``repeat`` samples measured with ``time.perf_counter``; a sample
  times ``number`` back-to-back calls, with ``number`` calibrated per candidate so a
  sample lasts at least ``min_sample_s`` (micro-second ops are not timed one call at a time);
* interleave the candidates inside one process (sample 1 of A, B, C, then sample 2 of
  B, C, A, ...), so slow drift of the machine hits every candidate alike.

Importing this module also puts the repository root on ``sys.path``, so the scripts
run as ``python bench/<name>.py`` from a plain checkout (no ``pip install -e .``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


# ----------------------------------------------------------------------------- timing


def calibrate(fn: Callable, min_sample_s: float, max_number: int = 1_000_000) -> int:
    """How many back-to-back calls of ``fn`` make one sample of at least ``min_sample_s``."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_sample_s or number >= max_number:
            return number
        # Aim a little past the target so the next try usually ends the search.
        number = min(max_number, max(number * 2, int(number * 1.2 * min_sample_s / max(dt, 1e-9))))


def time_interleaved(
    fns: dict[str, Callable],
    repeat: int = 7,
    warmup: int = 2,
    min_sample_s: float = 0.005,
    number: int | None = None,
    settle: int = 1,
    settle_s: float = 0.0,
) -> dict[str, list[float]]:
    """Seconds per call of each candidate: ``{name: [sample, ...]}`` (``repeat`` samples).

    Candidates are warmed up, calibrated (unless ``number`` is given), then sampled
    round-robin with a rotating order. ``gc.collect()`` runs before each sample so no
    candidate inherits another's garbage; the collector stays on while timing (the
    garbage a framework makes is part of its cost), but objects alive before timing
    starts are frozen out of it (``gc.freeze``).

    ``settle`` untimed calls precede each sample, and ``settle_s`` seconds of sleep before
    those: after a multi-threaded kernel, a framework's idle threads keep spinning for a
    while and take a core from whoever runs next (OpenBLAS behind NumPy spins for 2**28
    cycles, about 0.1 s; torch's OpenMP threads for less). Measured on this 2-core VM: a
    torch 1024^2 matmul takes 11.8 ms alone, 28 ms right after a NumPy matmul, 31-37 ms
    after a 0.01-0.06 s pause, 13.5 ms after 0.1 s or more; a NumPy one takes 11.1 ms
    alone, 18.3 ms right after a torch matmul and 11.2 ms after a 0.01 s pause.
    """
    names = list(fns)
    # Long-lived objects (torch's and fluxion's modules, the inputs) go to the permanent
    # generation: a full collection then costs ~1 us instead of ~60 ms with torch loaded.
    gc.collect()
    gc.freeze()
    for name in names:
        for _ in range(warmup):
            fns[name]()
    numbers = {n: number or calibrate(fns[n], min_sample_s) for n in names}
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, num = fns[name], numbers[name]
            if settle_s:
                time.sleep(settle_s)
            for _ in range(settle):
                fn()
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(num):
                fn()
            samples[name].append((time.perf_counter() - t0) / num)
    return samples


def median(xs) -> float:
    return statistics.median(xs)


def spread(xs) -> str:
    """'min-max' of the samples, for a quick read of the noise."""
    return f"{min(xs):.4g}-{max(xs):.4g}"


# ----------------------------------------------------------------------------- frameworks


def import_torch(threads: int = 2):
    """``torch`` with ``threads`` intra-op threads, or None if it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def blas_threads() -> int | None:
    """The thread count of NumPy's BLAS (threadpoolctl's report); None if not found."""
    from fluxion.backends.threads import blas_info

    info = blas_info()
    return info[0]["num_threads"] if info else None


def set_threads(n: int, torch=None) -> None:
    """Run fluxion (``fx.set_num_threads``), NumPy's BLAS and torch (if given) on ``n``
    threads."""
    from fluxion.backends import threads

    threads.set_num_threads(n)
    threads.set_blas_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def _cpu_snapshot():
    """(busy CPU seconds of the whole machine, CPU seconds of this process, wall time)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    busy = sum(fields) - fields[3] - fields[4]
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system, time.perf_counter()


_START = None


def environment(torch=None) -> dict:
    """What the numbers depend on: versions, cores, threads; starts the CPU-share count."""
    global _START
    import fluxion

    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fluxion": fluxion.__version__,
        "cpu_count": os.cpu_count(),
        "numpy_blas_threads": blas_threads(),
        "machine": platform.machine(),
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    _START = _cpu_snapshot()
    return env


def others_cpu_share() -> float | None:
    """Share of the machine's CPU time used by other processes since ``environment()``."""
    end = _cpu_snapshot()
    if _START is None or end is None or end[2] <= _START[2]:
        return None
    busy, own, wall = (e - s for e, s in zip(end, _START))
    return max(0.0, busy - own) / (wall * (os.cpu_count() or 1))


def load_note(env: dict) -> str | None:
    """A warning when other processes used the CPUs during the run, else None.

    Other processes on a 2-core VM skew everything, multi-threaded kernels most (their
    threads wait for each other at every barrier). The load average cannot tell them
    from this process's own threads; /proc/stat minus our own CPU time can.
    """
    share = others_cpu_share()
    env["others_cpu_share"] = None if share is None else round(share, 3)
    if share is None or share < 0.05:
        return None
    return (
        f"other processes used {share:.0%} of the machine's CPU time during this run, "
        "so these timings (multi-threaded ones most) are unreliable; rerun on a quiet machine"
    )


def max_abs_diff(a, b) -> float:
    """max |a - b| over arrays, tensors of any framework, or equal pytrees of them."""
    if isinstance(a, dict):
        return max((max_abs_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list | tuple):
        return max((max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)
    x, y = to_numpy(a), to_numpy(b)
    if x.shape != y.shape:
        raise ValueError(f"max_abs_diff: shapes differ: {x.shape} vs {y.shape}")
    return float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)), initial=0.0))


def to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch, or a fluxion tensor (detach is cheap in both)
        x = x.detach()
    if hasattr(x, "numpy"):
        return np.asarray(x.numpy())
    return np.asarray(x)


# ----------------------------------------------------------------------------- output


def parser(description: str, repeat: int, torch_optional: bool = False) -> argparse.ArgumentParser:
    """The options every script shares; ``torch_optional`` adds ``--no-torch``. Read the
    thread and torch options back with ``torch_from_args``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--repeat",
        type=int,
        default=repeat,
        help=f"timed samples per candidate; the median is reported (default {repeat})",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object per result line, no table"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="threads of torch and of NumPy's OpenBLAS (default 2, the machine's cores)",
    )
    if torch_optional:
        p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    return p


def torch_from_args(args):
    """``torch`` (None with ``--no-torch`` or when it is not installed), with torch and
    NumPy's BLAS set to ``--threads`` threads."""
    torch = None if getattr(args, "no_torch", False) else import_torch(threads=args.threads)
    set_threads(args.threads, torch)
    return torch


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A plain-text table. ``columns``: (key, header, format spec such as '.2f' or '')."""

    def cell(row, key, fmt):
        v = row.get(key)
        if v is None:
            return "-"
        return format(v, fmt) if fmt and isinstance(v, int | float) else str(v)

    body = [[cell(r, k, f) for k, _, f in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(heads)]

    def line(cells):
        # First column (a name) left-aligned, numbers right-aligned.
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    out = [line(heads), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)


def finish(env: dict, as_json: bool, bench: str) -> None:
    """End a run: say so if other processes competed for the CPUs meanwhile."""
    note = load_note(env)
    if note and as_json:
        emit_json({"bench": bench, "note": note})
    elif note:
        print(f"\nnote: {note}")


def emit_json(record: dict) -> None:
    print(json.dumps(record, default=_json_default), flush=True)


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    return str(x)
