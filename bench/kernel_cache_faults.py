"""A fault campaign against the kernel cache: seeded damage to a random entry, then three
compiled functions run in a fresh process; prints how many trials crashed, raised, gave a
wrong answer, or gave the right one (natively or on NumPy), and how many warned once.

The cache is filled once (three functions of + - * / and selects, whose native results
are the NumPy path's to the bit, so any difference is a wrong answer); each trial restores
it, picks an entry (a library of kernels, or ``_call``'s module where pip did not build it),
a kind of damage and a place, damages it, and forks a new process (from one that has
imported fluxion and loaded nothing) to run the functions. Damage kinds: a flipped bit, a
truncation, a span of random bytes, a zeroed page, garbage, an empty file, another entry's
bytes, a symbolic link to another entry, a mode others can write, and (as root) another
owner. It only uses what a user has (the files, ``FLUXION_CACHE_DIR``), so it runs as it is
against an older fluxion too (copy it into that checkout's bench/).

    python bench/kernel_cache_faults.py                 # 300 trials, seed 0
    python bench/kernel_cache_faults.py --trials 50 --seed 1
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # no threads in the process that forks the trials

import common  # noqa: E402, I001  (also puts the repository root on sys.path)

# isort: split

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import fluxion as fx  # noqa: E402

N = 5000
X = np.linspace(-3, 3, N, dtype=np.float32)
Y = np.cos(X)
FUNCTIONS = {  # name -> (the function, its inputs, its NumPy answer)
    "affine": (
        lambda x, y: (x * 2.0 + y) * x - y / 3.0,
        (X, Y),
        (X * np.float32(2) + Y) * X - Y / np.float32(3),
    ),
    "quadratic": (
        lambda x: x * x * 0.5 - x / 7.0 + 1.0,
        (X[: N - 1],),
        X[: N - 1] * X[: N - 1] * np.float32(0.5) - X[: N - 1] / np.float32(7) + np.float32(1),
    ),
    "select": (
        lambda x, y: fx.where(x > y, x - y, y * 0.25),
        (X[: N - 2], Y[: N - 2]),
        np.where(X[: N - 2] > Y[: N - 2], X[: N - 2] - Y[: N - 2], Y[: N - 2] * np.float32(0.25)),
    ),
}
NOBODY = 65534


def run_functions() -> dict:
    """Each function compiled and run here: whether it was right, the warnings, and
    whether its fused group ran natively."""
    from fluxion.compiler.fusion import FUSED

    right, native = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fn, args, expected in FUNCTIONS.values():
            compiled = fx.jit(fn)
            got = compiled(*map(fx.tensor, args)).numpy()
            right.append(got.tobytes() == expected.tobytes())
            (entry,) = compiled.cache.values()
            groups = [e.params["graph"] for e in entry.optimized.eqns if e.prim is FUSED]
            native.append(all("static void" in g.compiled.source for g in groups))
    jit_warning = "was traced"  # not the cache's
    messages = [str(w.message) for w in caught if jit_warning not in str(w.message)]
    return {"right": all(right), "native": all(native), "warnings": messages}


def in_fresh_process() -> tuple[str, dict | None]:
    """``run_functions`` in a forked process: ("ok", its report), ("crashed", signal name)
    or ("raised", the error)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the trial's process
        os.close(read)
        try:
            report = json.dumps(run_functions())
        except BaseException as e:  # noqa: BLE001  (reported to the parent)
            report = json.dumps({"raised": f"{type(e).__name__}: {e}"[:300]})
        with os.fdopen(write, "w") as out:
            out.write(report)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as got:
        text = got.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "crashed", signal.Signals(os.WTERMSIG(status)).name
    report = json.loads(text)
    return ("raised", report["raised"]) if "raised" in report else ("ok", report)


def _flip(data, rng):
    data = bytearray(data)
    data[rng.integers(len(data))] ^= 1 << rng.integers(8)
    return data


def _span(data, rng):
    data = bytearray(data)
    k = rng.integers(len(data))
    data[k : k + rng.integers(1, 65)] = rng.bytes(64)[: len(data[k : k + 64])]
    return data


def _page(data, rng):
    data = bytearray(data)
    k = rng.integers(len(data)) // 4096 * 4096
    data[k : k + 4096] = bytes(len(data[k : k + 4096]))
    return data


BYTES = {  # damage to an entry's bytes: name -> (bytes, rng) -> new bytes
    "bit flipped": _flip,
    "truncated": lambda data, rng: data[: rng.integers(len(data))],
    "random span": _span,
    "page zeroed": _page,
    "garbage": lambda data, rng: rng.bytes(len(data)),
    "emptied": lambda data, rng: b"",
}
KINDS = [*BYTES, "another entry", "symbolic link", "writable by others"]
if os.geteuid() == 0:
    KINDS.append("another owner")


def damage(path: str, kind: str, others: list[str], rng) -> None:
    if kind in BYTES:
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(BYTES[kind](data, rng))
    elif kind == "another entry":
        shutil.copyfile(others[rng.integers(len(others))], path)
    elif kind == "symbolic link":
        os.unlink(path)
        os.symlink(others[rng.integers(len(others))], path)
    elif kind == "writable by others":
        os.chmod(path, 0o666)
    else:
        os.chown(path, NOBODY, NOBODY)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object per line, no table")
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    work = tempfile.mkdtemp(prefix="fluxion_cache_faults_")
    pristine, cache = os.path.join(work, "pristine"), os.path.join(work, "cache")
    os.environ["FLUXION_CACHE_DIR"] = pristine
    outcome, report = in_fresh_process()
    assert outcome == "ok" and report["right"] and report["native"] and not report["warnings"], (
        outcome,
        report,
    )
    os.environ["FLUXION_CACHE_DIR"] = cache
    rows = {
        kind: dict.fromkeys(
            ["trials", "crashed", "raised", "wrong", "native", "numpy", "warned once"], 0
        )
        for kind in KINDS
    }
    examples = {}
    try:
        for _ in range(args.trials):
            shutil.rmtree(cache, ignore_errors=True)
            shutil.copytree(pristine, cache, symlinks=True)
            folder = os.path.join(cache, "kernels")
            entries = sorted(os.path.join(folder, n) for n in os.listdir(folder))
            path = entries[rng.integers(len(entries))]
            kind = KINDS[rng.integers(len(KINDS))]
            damage(path, kind, [e for e in entries if e != path], rng)
            outcome, report = in_fresh_process()
            row = rows[kind]
            row["trials"] += 1
            if outcome != "ok":
                row[outcome] += 1
                examples.setdefault(outcome, f"{kind}: {report}")
                continue
            if not report["right"]:
                row["wrong"] += 1
                examples.setdefault("wrong", kind)
            else:
                row["native" if report["native"] else "numpy"] += 1
            row["warned once"] += len(report["warnings"]) == 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = {key: sum(r[key] for r in rows.values()) for key in rows[KINDS[0]]}
    table = [{"damage": kind, **row} for kind, row in rows.items()] + [{"damage": "all", **total}]
    if args.json:
        for row in table:
            print(json.dumps(row))
        return 0
    print(f"kernel cache fault campaign: {args.trials} trials, seed {args.seed}")
    print(f"environment: {common.environment()}")
    columns = [("damage", "damage", "")] + [(key, key, "") for key in rows[KINDS[0]]]
    print(common.table(table, columns))
    for outcome, example in examples.items():
        print(f"first {outcome}: {example}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
