"""bfloat16 matmuls: fluxion float32 beside fluxion under ``fx.autocast``, PyTorch float32,
PyTorch bfloat16 and ``torch.autocast``, square n x n products interleaved in one process.

Candidates, each ``x @ w`` of float32 tensors unless named otherwise:

* ``fx f32``: a float32 matmul (NumPy's float32 BLAS).
* ``fx autocast``: under ``fx.autocast(dtype=fx.bfloat16)`` (casts to bfloat16, matmul,
  bfloat16 result).
* ``fx bf16``: the bfloat16 matmul alone, operands already bfloat16.
* ``np bf16``: NumPy's matmul of ml_dtypes bfloat16 arrays, what fluxion would get without
  its own widening.
* ``torch f32``, ``torch bf16`` (operands already bfloat16), ``torch autocast``.

GFLOP/s are 2 n^3 over the median sample; ``x fx f32`` is the candidate's speed over
fluxion's float32 matmul of the same size (above 1 is faster). On a CPU without bf16
instructions torch's bfloat16 matmul is 20-50x slower than its float32 one (7 s at 1024 on
this project's AVX2 machine), so the torch bfloat16 candidates stop at ``--torch-bf16-max``.

    python bench/precision.py                 # 256..2048, ~3 min
    python bench/precision.py --sizes 256,512 --repeat 5
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import numpy as np

import fluxion as fx
from fluxion.backends import cpu


def candidates(n: int, torch, torch_bf16: bool) -> dict:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    x, w = fx.tensor(a), fx.tensor(b)
    xb, wb = x.astype(fx.bfloat16), w.astype(fx.bfloat16)
    an, bn = xb.numpy(), wb.numpy()

    def fx_autocast():
        with fx.autocast(dtype=fx.bfloat16):
            return x @ w

    fns = {
        "fx f32": lambda: x @ w,
        "fx autocast": fx_autocast,
        "fx bf16": lambda: xb @ wb,
        "np bf16": lambda: np.matmul(an, bn),
    }
    if torch is not None:
        tx, tw = torch.from_numpy(a), torch.from_numpy(b)
        txb, twb = tx.bfloat16(), tw.bfloat16()

        def torch_autocast():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return tx @ tw

        fns["torch f32"] = lambda: tx @ tw
        if torch_bf16:
            fns |= {"torch bf16": lambda: txb @ twb, "torch autocast": torch_autocast}
    return fns


def main():
    parser = common.parser(__doc__.splitlines()[0], repeat=7, torch_optional=True)
    parser.add_argument("--sizes", default="256,512,1024,2048", help="comma-separated n")
    parser.add_argument(
        "--torch-bf16-max", type=int, default=1024, help="largest n of torch's bf16 candidates"
    )
    args = parser.parse_args()
    torch = common.torch_from_args(args)
    env = common.environment(torch)
    if not args.json:
        print(f"bf16 matmuls in fluxion: {cpu.describe_bf16()}")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        fns = candidates(n, torch, n <= args.torch_bf16_max)
        times = common.time_interleaved(
            fns, repeat=args.repeat, warmup=1, min_sample_s=0.05, settle=0, settle_s=0.1
        )
        base = common.median(times["fx f32"])
        for name, samples in times.items():
            t = common.median(samples)
            row = {
                "n": n,
                "candidate": name,
                "ms": t * 1e3,
                "spread_ms": f"{min(samples) * 1e3:.2f}-{max(samples) * 1e3:.2f}",
                "gflops": 2 * n**3 / t / 1e9,
                "vs_f32": base / t,
            }
            rows.append(row)
            if args.json:
                common.emit_json({"bench": "precision", **row, **env})
    if not args.json:
        columns = [
            ("candidate", "candidate", ""),
            ("n", "n", "d"),
            ("ms", "ms (median)", ".2f"),
            ("spread_ms", "min-max ms", ""),
            ("gflops", "GFLOP/s", ".1f"),
            ("vs_f32", "x fx f32", ".2f"),
        ]
        print(common.table(rows, columns))
    common.finish(env, args.json, "precision")


if __name__ == "__main__":
    main()
