"""Per-op eager overhead: fluxion vs NumPy vs PyTorch, on small and large float32 tensors.

Each op is timed as users write it (``x + y``, ``fx.exp(x)``, ``x[1:5]``...), with every
framework working on the same NumPy-generated data. On small tensors the kernel is
nearly free, so ``fluxion - numpy`` is the price of fluxion's Python layer (op wrapper,
dtype promotion, ``bind``, wrapping the result). The goal (DESIGN.md) is at most 2 us
per op over NumPy on small tensors, with nothing requiring grad.

    python bench/dispatch.py                   # both sizes, ~12 s
    python bench/dispatch.py --sizes small --requires-grad --repeat 15
    python bench/dispatch.py --json            # one JSON object per (op, size)
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import time

import numpy as np

import fluxion as fx

SIZES = {
    # name: (vector-ish shape for elementwise/reductions, matrix shape for matmul/transpose)
    "small": ((8,), (8, 8)),
    "large": ((1024, 1024), (1024, 1024)),
}


def cases(size: str, torch, requires_grad: bool):
    """``[(op, shape, {framework: zero-argument callable})]`` for one size."""
    vshape, mshape = SIZES[size]
    rng = np.random.default_rng(0)
    xv, yv = (rng.standard_normal(vshape, dtype=np.float32) for _ in range(2))
    xm, ym = (rng.standard_normal(mshape, dtype=np.float32) for _ in range(2))
    cv = xv > 0
    n = int(np.prod(vshape))
    new_shape = (2, n // 2) if len(vshape) == 1 else (vshape[0] * 2, vshape[1] // 2)
    sl = slice(1, 1 + vshape[0] // 2)

    fw = {"numpy": lambda a: a}
    fw["fluxion"] = fx.tensor
    if requires_grad:
        fw["fluxion_rg"] = lambda a: fx.tensor(a, requires_grad=a.dtype != np.bool_)
    if torch is not None:
        fw["torch"] = lambda a: torch.from_numpy(a.copy())

    # Per framework: the namespace with exp/tanh/sum/reshape/transpose/where/matmul.
    ns = {"numpy": np, "fluxion": fx, "fluxion_rg": fx, "torch": torch}

    def transpose(mod, a):
        return a.T if mod is np else (mod.transpose(a) if mod is fx else a.t())

    specs = [
        ("add", vshape, lambda m, x, y, c, a, b: lambda: x + y),
        ("mul", vshape, lambda m, x, y, c, a, b: lambda: x * y),
        ("exp", vshape, lambda m, x, y, c, a, b: lambda: m.exp(x)),
        ("tanh", vshape, lambda m, x, y, c, a, b: lambda: m.tanh(x)),
        ("sum", vshape, lambda m, x, y, c, a, b: lambda: m.sum(x)),
        ("matmul", mshape, lambda m, x, y, c, a, b: lambda: m.matmul(a, b)),
        ("reshape", vshape, lambda m, x, y, c, a, b: lambda: m.reshape(x, new_shape)),
        ("transpose", mshape, lambda m, x, y, c, a, b: lambda: transpose(m, a)),
        ("getitem", vshape, lambda m, x, y, c, a, b: lambda: x[sl]),
        ("where", vshape, lambda m, x, y, c, a, b: lambda: m.where(c, x, y)),
    ]
    out = []
    for op, shape, make in specs:
        fns = {}
        for name, conv in fw.items():
            args = [conv(v) for v in (xv, yv, cv, xm, ym)]
            fns[name] = make(ns[name], *args)
        out.append((op, shape, fns))
    return out


def check(op, fns):
    """Every framework computes the same values (catches a benchmark measuring the wrong thing)."""
    ref = np.asarray(fns["numpy"]())
    for name, fn in fns.items():
        got = common.to_numpy(fn())
        if got.shape != ref.shape or not np.allclose(got, ref, rtol=1e-4, atol=1e-3):
            raise AssertionError(f"{op}: {name} disagrees with numpy")


def profile(fn, calls: int, top: int = 20):
    """Where one op's time goes: cProfile over ``calls`` calls, sorted by own time."""
    import cProfile
    import pstats

    fn()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    print(f"{stats.total_tt / calls * 1e6:.2f} us per call under the profiler")
    stats.sort_stats("tottime").print_stats(top)


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0], repeat=7, torch_optional=True)
    p.add_argument("--sizes", default="small,large", help="comma list of: small, large")
    p.add_argument(
        "--min-sample-ms", type=float, default=5.0, help="minimum length of one timed sample"
    )
    p.add_argument(
        "--settle-ms",
        type=float,
        default=150.0,
        help="sleep before each sample of the large matmul (see common.time_interleaved)",
    )
    p.add_argument(
        "--requires-grad",
        action="store_true",
        help="add a column: fluxion with float inputs requiring grad (records the tape)",
    )
    p.add_argument(
        "--profile", metavar="OP", help="cProfile fluxion's OP on the first size instead of timing"
    )
    args = p.parse_args(argv)
    torch = common.torch_from_args(args)
    if args.profile:
        size = args.sizes.split(",")[0]
        fns = {op: f for op, _, f in cases(size, None, args.requires_grad)}[args.profile]
        profile(fns["fluxion_rg" if args.requires_grad else "fluxion"], calls=20000)
        return
    env = common.environment(torch)
    if args.json:
        common.emit_json({"bench": "dispatch", "env": env})
    else:
        print(f"dispatch overhead per op (median of {args.repeat} samples); {env}")

    small_overheads = []
    for size in args.sizes.split(","):
        rows = []
        for op, shape, fns in cases(size, torch, args.requires_grad):
            check(op, fns)
            # Big matmuls run on several BLAS/OpenMP threads that keep spinning after
            # the call; let them time out before the next framework's sample.
            settle_s = args.settle_ms / 1e3 if op == "matmul" and size == "large" else 0.0
            t = common.time_interleaved(
                fns, repeat=args.repeat, min_sample_s=args.min_sample_ms / 1e3, settle_s=settle_s
            )
            time.sleep(settle_s)
            us = {k: common.median(v) * 1e6 for k, v in t.items()}
            row = {
                "op": op,
                "size": size,
                "shape": "x".join(map(str, shape)),
                "numpy_us": us["numpy"],
                "fluxion_us": us["fluxion"],
                "torch_us": us.get("torch"),
                "fluxion_rg_us": us.get("fluxion_rg"),
                "overhead_us": us["fluxion"] - us["numpy"],
                "fx_over_np": us["fluxion"] / us["numpy"],
                "fx_over_torch": us["fluxion"] / us["torch"] if "torch" in us else None,
            }
            if size == "small":
                small_overheads.append(row["overhead_us"])
            rows.append(row)
            if args.json:
                common.emit_json({"bench": "dispatch", **row})
        if not args.json:
            columns = [
                ("op", "op", ""),
                ("shape", "shape", ""),
                ("numpy_us", "numpy us", ".2f"),
                ("fluxion_us", "fluxion us", ".2f"),
                ("torch_us", "torch us", ".2f"),
                ("overhead_us", "fx-np us", ".2f"),
                ("fx_over_np", "fx/np", ".2f"),
                ("fx_over_torch", "fx/torch", ".2f"),
            ]
            if args.requires_grad:
                columns.insert(5, ("fluxion_rg_us", "fx(rg) us", ".2f"))
            print(f"\n[{size}]")
            print(common.table(rows, columns))

    if small_overheads:
        med = common.median(small_overheads)
        verdict = "meets" if med <= 2.0 else "misses"
        if args.json:
            common.emit_json(
                {"bench": "dispatch", "summary": "small_median_overhead_us", "value": med}
            )
        else:
            print(
                f"\nfluxion adds {med:.2f} us per op over NumPy on small tensors "
                f"(median over {len(small_overheads)} ops; {verdict} the 2 us goal)"
            )
    common.finish(env, args.json, "dispatch")


if __name__ == "__main__":
    main()
