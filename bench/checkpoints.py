"""Loading a large checkpoint: time and peak memory of fx.load, safetensors.numpy, torch.

    python bench/checkpoints.py [--mb 800] [--repeats 3] [--folder DIR]

Writes one checkpoint of ``--mb`` MB (float32 tensors of 4 MB, as a model's layers) with
``fx.save``, then loads it in a fresh process per measurement (the file stays in the page
cache: what is measured is the loader, not the disk) and prints, for each loader, the
median seconds of the load, of the load and a sum over every tensor (what using the
tensors costs at least; a lazy loader reads the file there), and the process's peak
resident memory (``VmHWM``, mapped file pages included) above what it held before loading.
fx.load has read every byte when it returns: it checks the file's checksum over the mapping.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import common  # noqa: F401, I001  (also puts the repository root on sys.path)

LOADERS = {
    "fx.load (mapped, checksum checked)": (
        "import fluxion as fx",
        "tensors = fx.load(PATH)",
        "sum(float(t.numpy().sum()) for t in tensors.values())",
    ),
    "safetensors.numpy.load_file": (
        "import safetensors.numpy",
        "tensors = safetensors.numpy.load_file(PATH)",
        "sum(float(a.sum()) for a in tensors.values())",
    ),
    "safetensors.torch.load_file": (
        "import torch, safetensors.torch",
        "tensors = safetensors.torch.load_file(PATH)",
        "sum(float(a.sum()) for a in tensors.values())",
    ),
}

# VmHWM, the peak resident memory of this process image (ru_maxrss would carry over the
# parent's peak through fork and exec); it counts the file's pages a mapping touched
CHILD = """
import json, time
def peak_kb():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
{imports}
PATH = {path!r}
before = peak_kb()
t0 = time.perf_counter()
{load}
seconds = time.perf_counter() - t0
{touch}
used = time.perf_counter() - t0
peak = peak_kb()
print(json.dumps({{"seconds": seconds, "used": used, "peak_kb": peak - before}}))
"""


def measure(path: str, imports: str, load: str, touch: str) -> dict:
    code = CHILD.format(imports=imports, path=path, load=load, touch=touch)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=800)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", default=None, help="where the checkpoint goes (a temp dir)")
    args = parser.parse_args()
    import numpy as np

    import fluxion as fx

    folder = args.folder or tempfile.mkdtemp(prefix="fluxion-bench-")
    path = os.path.join(folder, "big.safetensors")
    layers = args.mb // 4
    rng = np.random.default_rng(0)
    tensors = {
        f"layers.{i}.weight": fx.tensor(rng.standard_normal(1_000_000, dtype=np.float32))
        for i in range(layers)
    }
    fx.save(tensors, path)
    del tensors
    nbytes = layers * 4_000_000
    print(f"checkpoint: {layers} float32 tensors, {nbytes / 1e6:.0f} MB of tensor data")
    print(f"{'loader':<38} {'load s':>7} {'+ read s':>9} {'peak MB':>8} {'x tensor bytes':>15}")
    for name, (imports, load, touch) in LOADERS.items():
        runs = [measure(path, imports, load, touch) for _ in range(args.repeats)]
        seconds = statistics.median(r["seconds"] for r in runs)
        used = statistics.median(r["used"] for r in runs)
        peak = statistics.median(r["peak_kb"] for r in runs) * 1024
        print(f"{name:<38} {seconds:>7.3f} {used:>9.3f} {peak / 1e6:>8.0f} {peak / nbytes:>15.2f}")
    if args.folder is None:
        os.remove(path)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
