"""A fault campaign against `fluxion train` and its checkpoints: trials / survived / lost.

    python bench/faults.py [--seed 0] [--scale 1.0]

Each trial runs the `fluxion train` command (its ``main()``, in a process forked from this
one, so that a trial costs the run and not the start of Python) on a tiny ``classify``
configuration, compiled or eager, and does one thing to it:

* ``SIGINT`` / ``SIGTERM`` / ``kill -9`` at a random moment of the run (uniform over 90%
  of its length: compiling, stepping, inside ``AdamW.step``, writing a row, saving, evaluating),
  then ``--resume`` (or the same command again where no checkpoint was written yet);
* ``full disk``: no file may grow past a random size, up to a little more than the largest
  the run writes (``RLIMIT_FSIZE``: a write past it fails as on a full disk), then
  ``--resume`` with room again;
* ``truncation`` / ``byte flip``: a finished run's checkpoint cut at a random length, or
  one random byte changed anywhere in it, then loaded.

A trial *survives* when the run ends with exactly the files of a run never interrupted
(the checkpoint's and eval.json's bytes, every metrics row once, timings aside), after an
exit status that says what happened (130, 143, 1 with one line ``error: ...``, after the
kernel cache's one warning where it could not load its libraries either); for a
damaged checkpoint, when loading it raises ``CheckpointError``. Anything else is *lost*,
and printed.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # no threads in the process that forks the trials

import common  # noqa: E402, F401, I001  (also puts the repository root on sys.path)

# isort: split

import numpy as np

import fluxion as fx
from fluxion.cli.main import main as fluxion_main
from fluxion.errors import CheckpointError
from fluxion.tasks.classify import Classify
from fluxion.tasks.loop import TIMING, read_metrics

TINY = ["--steps", "8", "--batch-size", "8", "--d-model", "16", "--heads", "2", "--layers",
        "1", "--eval-every", "3", "--warmup", "2", "--no-progress", "--no-tensorboard"]  # fmt: skip


def files(out: str) -> dict | None:
    try:
        with open(os.path.join(out, "checkpoint.safetensors"), "rb") as f:
            checkpoint = f.read()
        with open(os.path.join(out, "eval.json"), "rb") as f:
            evaluation = f.read()
    except FileNotFoundError:
        return None
    rows = read_metrics(pathlib.Path(out, "metrics.jsonl"))
    return {
        "checkpoint": checkpoint,
        "eval": evaluation,
        "rows": [{k: v for k, v in r.items() if k not in TIMING} for r in rows],
    }


def fork_train(out: str, eager: bool, resume: bool = False, fsize: int | None = None) -> int:
    """Start ``fluxion train classify ...`` in a forked child; its pid."""
    argv = ["train", "classify", *TINY, "--out", out] + ["--eager"] * eager + ["--resume"] * resume
    pid = os.fork()
    if pid:
        return pid
    code = 3
    try:
        with open(os.path.join(os.path.dirname(out), "stderr"), "w") as err:
            os.dup2(err.fileno(), 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))
        code = fluxion_main(argv)
    except BaseException as e:  # noqa: BLE001 - a trial reports whatever escaped
        print(f"escaped: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        sys.stderr.flush()
        os._exit(code)


def wait(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def stderr_of(out: str) -> list[str]:
    with open(os.path.join(os.path.dirname(out), "stderr")) as f:
        return f.read().strip().splitlines()


def finish(out: str, eager: bool) -> int:
    """The user's next command: --resume where a checkpoint is, else the run again."""
    again = os.path.exists(os.path.join(out, "checkpoint.safetensors"))
    return wait(fork_train(out, eager, resume=again))


def signal_trial(out, eager, kind, delay) -> tuple[bool, str]:
    pid = fork_train(out, eager)
    time.sleep(delay)
    os.kill(pid, kind)
    status = wait(pid)
    began = os.path.exists(os.path.join(out, "checkpoint.safetensors"))
    expected = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}[kind]
    if status == -signal.SIGTERM and not began:  # before train() handles it: nothing started
        status = expected
    if status not in (expected, 0):
        return False, f"exit status {status}: {stderr_of(out)[-3:]}"
    how = "finished first" if status == 0 else "stopped" if began else "stopped before a checkpoint"
    if finish(out, eager) != 0:
        return False, f"the resume failed: {stderr_of(out)[-3:]}"
    return True, how


def disk_trial(out, eager, limit) -> tuple[bool, str]:
    status = wait(fork_train(out, eager, fsize=limit))
    if status not in (0, 1):
        return False, f"exit status {status} under a file limit of {limit}: {stderr_of(out)[-3:]}"
    if status == 1:  # one error line, last; before it only the kernel cache's one warning
        lines = stderr_of(out)
        errors = [line for line in lines if line.startswith("error: ")]
        warned = any("UserWarning: fluxion: native kernels" in line for line in lines)
        if errors != lines[-1:] or len(lines) not in (1, 4 if warned else 1):
            return False, f"not one error line: {lines}"
    if finish(out, eager) != 0:
        return False, f"the resume failed: {stderr_of(out)[-3:]}"
    return True, "refused" if status == 1 else "fitted"


def damage_trial(path: str, good: bytes, rng, kind: str) -> tuple[bool, str]:
    data = bytearray(good)
    if kind == "truncation":
        data = data[: int(rng.integers(0, len(good)))]
    else:
        data[int(rng.integers(0, len(good)))] ^= int(rng.integers(1, 256))
    with open(path, "wb") as f:
        f.write(data)
    try:
        fx.load(path)
    except CheckpointError:
        return True, "CheckpointError"
    except Exception as e:  # noqa: BLE001
        return False, f"{type(e).__name__}: {e}"
    return False, "loaded without an error"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the trial counts")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    Classify.train_size, Classify.eval_lengths = 64, (6, 8, 10)  # seconds-long runs
    counts = {"SIGINT": 30, "SIGTERM": 30, "kill -9": 60, "full disk": 30}
    counts = {k: max(2, int(v * args.scale)) for k, v in counts.items()}
    damage = {"truncation": int(400 * args.scale), "byte flip": int(400 * args.scale)}
    root = tempfile.mkdtemp(prefix="fluxion-faults-")
    reference, duration, largest = {}, {}, {}
    for eager in (False, True):
        out = os.path.join(root, f"reference-{eager}", "run")
        os.makedirs(os.path.dirname(out))
        for _ in range(2):  # the second run finds its kernels compiled: the trials' duration
            shutil.rmtree(out, ignore_errors=True)
            began = time.perf_counter()
            assert wait(fork_train(out, eager)) == 0, stderr_of(out)
            duration[eager] = time.perf_counter() - began
        reference[eager] = files(out)
        largest[eager] = max(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(
        f"reference runs: compiled {duration[False]:.2f}s, eager {duration[True]:.2f}s; "
        f"largest file {largest[False]:,} bytes"
    )
    table: dict[str, Counter] = {}
    losses: list[str] = []
    trial = 0
    kinds = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "kill -9": signal.SIGKILL}
    for name, count in counts.items():
        table[name] = Counter()
        for i in range(count):
            eager = bool(i % 2)
            out = os.path.join(root, f"trial{trial}", "run")
            os.makedirs(os.path.dirname(out))
            trial += 1
            if name == "full disk":
                limit = int(rng.integers(0, largest[eager] * 6 // 5))
                ok, how = disk_trial(out, eager, limit)
            else:
                delay = float(rng.uniform(0, 0.9 * duration[eager]))
                ok, how = signal_trial(out, eager, kinds[name], delay)
            if ok and files(out) != reference[eager]:
                ok, how = False, "the files differ from the uninterrupted run's"
            table[name]["trials"] += 1
            table[name]["survived" if ok else "lost"] += 1
            if ok:
                table[name][how] += 1
            else:
                losses.append(f"{name} trial {i} ({'eager' if eager else 'compiled'}): {how}")
            shutil.rmtree(os.path.dirname(out))
    good_path = os.path.join(root, f"reference-{False}", "run", "checkpoint.safetensors")
    with open(good_path, "rb") as f:
        good = f.read()
    for name, count in damage.items():
        table[name] = Counter()
        path = os.path.join(root, "damaged.safetensors")
        for i in range(count):
            ok, how = damage_trial(path, good, rng, name)
            table[name]["trials"] += 1
            table[name]["survived" if ok else "lost"] += 1
            if not ok:
                losses.append(f"{name} trial {i}: {how}")
    shutil.rmtree(root)
    print(f"{'fault':<12} {'trials':>7} {'survived':>9} {'lost':>5}  how")
    for name, c in table.items():
        how = ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("trials", "survived", "lost"))
        print(f"{name:<12} {c['trials']:>7} {c['survived']:>9} {c['lost']:>5}  {how}")
    total = Counter()
    for c in table.values():
        total.update({k: c[k] for k in ("trials", "survived", "lost")})
    print(f"{'all':<12} {total['trials']:>7} {total['survived']:>9} {total['lost']:>5}")
    for line in losses[:20]:
        print("lost:", line)


if __name__ == "__main__":
    main()
