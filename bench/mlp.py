"""One forward+backward step of a 3-layer MLP: fluxion (imperative and functional) vs PyTorch.

Workload: batch 256, 512 -> 512 -> 512 -> 10, tanh (or relu), float32; the loss is
softmax cross-entropy (or mean squared error against one-hot targets) written with
basic ops in both frameworks (max, exp, sum, log; no fused library loss). All
candidates start from the same NumPy-generated weights and data and run in one
process, interleaved. No optimizer: each step computes the loss and every gradient.

* ``fluxion imperative``: parameters with ``requires_grad=True``; ``loss.backward()``.
* ``fluxion functional``: ``fx.value_and_grad(loss)(params, x, y)`` over a dict.
* ``torch eager``: the same as the imperative one, ``torch.set_num_threads(2)``.

Goal: fluxion within 1.5x of PyTorch eager. ``--profile`` runs cProfile over fluxion
steps and splits the time into NumPy kernels (matmul separately) and Python.

    python bench/mlp.py                        # ~15 s (21 samples of 3 candidates, 0.15 s pause each)
    python bench/mlp.py --act relu --loss mse --repeat 31
    python bench/mlp.py --profile imperative   # where fluxion's time goes
    python bench/mlp.py --batch 2 --in 8 --width 8 --out 4 --settle-ms 0
                                               # tiny sizes: per-step framework overhead
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import cProfile
import pstats
import types

import numpy as np

import fluxion as fx

BATCH, IN, WIDTH, OUT = 256, 512, 512, 10
NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


def init(seed: int = 0, batch=BATCH, d_in=IN, width=WIDTH, d_out=OUT):
    """Weights in the ``x @ W`` layout, uniform(+-1/sqrt(fan_in)) like torch's Linear; data."""
    rng = np.random.default_rng(seed)
    dims = [d_in, width, width, d_out]
    params = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]), start=1):
        bound = 1.0 / np.sqrt(a)
        params[f"w{i}"] = rng.uniform(-bound, bound, (a, b)).astype(np.float32)
        params[f"b{i}"] = rng.uniform(-bound, bound, (b,)).astype(np.float32)
    x = rng.standard_normal((batch, d_in), dtype=np.float32)
    labels = rng.integers(0, d_out, batch)
    y = np.eye(d_out, dtype=np.float32)[labels]  # one-hot targets
    return params, x, y


# ----------------------------------------------------------------------------- the loss, twice


def fx_loss(params, x, y, act="tanh", loss="xent"):
    f = fx.tanh if act == "tanh" else fx.relu
    h = f(x @ params["w1"] + params["b1"])
    h = f(h @ params["w2"] + params["b2"])
    logits = h @ params["w3"] + params["b3"]
    if loss == "mse":
        d = logits - y
        return fx.mean(d * d)
    z = logits - fx.max(logits, axis=-1, keepdims=True)
    logp = z - fx.log(fx.sum(fx.exp(z), axis=-1, keepdims=True))
    return -fx.sum(y * logp) / float(x.shape[0])


def torch_loss(torch, params, x, y, act="tanh", loss="xent"):
    f = torch.tanh if act == "tanh" else torch.relu
    h = f(x @ params["w1"] + params["b1"])
    h = f(h @ params["w2"] + params["b2"])
    logits = h @ params["w3"] + params["b3"]
    if loss == "mse":
        d = logits - y
        return torch.mean(d * d)
    z = logits - torch.amax(logits, dim=-1, keepdim=True)
    logp = z - torch.log(torch.sum(torch.exp(z), dim=-1, keepdim=True))
    return -torch.sum(y * logp) / float(x.shape[0])


# ----------------------------------------------------------------------------- the steps


def make_steps(torch, act, loss, seed=0, **sizes):
    """``{name: step()}``; each step returns (loss, {name: grad}). ``sizes``: see ``init``."""
    params, x_np, y_np = init(seed, **sizes)
    steps = {}

    p_imp = {k: fx.tensor(v, requires_grad=True) for k, v in params.items()}
    x_fx, y_fx = fx.tensor(x_np), fx.tensor(y_np)

    def fluxion_imperative():
        for p in p_imp.values():
            p.grad = None
        value = fx_loss(p_imp, x_fx, y_fx, act, loss)
        value.backward()
        return value, {k: p.grad for k, p in p_imp.items()}

    steps["fluxion imperative"] = fluxion_imperative

    p_fun = {k: fx.tensor(v) for k, v in params.items()}
    value_and_grad = fx.value_and_grad(lambda p, x, y: fx_loss(p, x, y, act, loss))

    def fluxion_functional():
        return value_and_grad(p_fun, x_fx, y_fx)

    steps["fluxion functional"] = fluxion_functional

    if torch is not None:
        p_t = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
        x_t, y_t = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.copy())

        def torch_eager():
            for p in p_t.values():
                p.grad = None
            value = torch_loss(torch, p_t, x_t, y_t, act, loss)
            value.backward()
            return value, {k: p.grad for k, p in p_t.items()}

        steps["torch eager"] = torch_eager
    return steps


def agreement(steps) -> list[dict]:
    """max |loss difference| and max |grad difference| between every pair of candidates."""
    results = {name: step() for name, step in steps.items()}
    names = list(results)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            (la, ga), (lb, gb) = results[a], results[b]
            scale = max(float(np.max(np.abs(common.to_numpy(g)))) for g in ga.values())
            rows.append(
                {
                    "pair": f"{a} vs {b}",
                    "loss_a": float(common.to_numpy(la)),
                    "loss_diff": common.max_abs_diff(la, lb),
                    "grad_diff": common.max_abs_diff(ga, gb),
                    "grad_max": scale,
                }
            )
    return rows


def _named_kernel(name, impl):
    """``impl`` behind a wrapper whose code object is named ``kernel:<name>``.

    Several primitives share one impl function (elementwise ops are built by a factory),
    and NumPy ufuncs do not show up as calls of their own in cProfile; a distinct code
    object per primitive lets the profile attribute kernel time to each primitive.
    """

    def kernel(xp, *arrays, **params):
        return impl(xp, *arrays, **params)

    code = kernel.__code__.replace(co_name=f"kernel:{name}")
    return types.FunctionType(code, kernel.__globals__, code.co_name, None, kernel.__closure__)


def profile(step, n: int, top: int):
    """cProfile ``n`` steps; print time per primitive kernel, the Python rest, and hot spots.

    For the run, every primitive's ``impl`` is wrapped by ``_named_kernel`` (restored
    afterwards), so a kernel's time is the cumulative time of its wrapper.
    """
    from fluxion.core.primitive import PRIMITIVES

    saved = {name: prim.impl for name, prim in PRIMITIVES.items()}
    try:
        for name, prim in PRIMITIVES.items():
            prim.impl = _named_kernel(name, prim.impl)
        _profile(step, n, top)
    finally:
        for name, prim in PRIMITIVES.items():
            prim.impl = saved[name]


def _profile(step, n: int, top: int):
    step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        step()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt
    kernels: dict[str, list] = {}
    binds = 0
    for key, (_, ncalls, _, ct, _) in stats.stats.items():
        if key[2].startswith("kernel:"):
            entry = kernels.setdefault(key[2][len("kernel:") :], [0, 0.0])
            entry[0] += ncalls
            entry[1] += ct
        if key[2] == "bind" and key[0].endswith("trace.py"):
            binds = ncalls
    kernel_tt = sum(ct for _, ct in kernels.values())
    rows = [
        {"prim": name, "calls": c / n, "ms": ct / n * 1e3, "share": 100 * ct / total}
        for name, (c, ct) in sorted(kernels.items(), key=lambda kv: -kv[1][1])
    ]
    rows.append(
        {
            "prim": "(all kernels)",
            "calls": sum(c for c, _ in kernels.values()) / n,
            "ms": kernel_tt / n * 1e3,
            "share": 100 * kernel_tt / total,
        }
    )
    rows.append(
        {
            "prim": "(Python: everything else)",
            "ms": (total - kernel_tt) / n * 1e3,
            "share": 100 * (total - kernel_tt) / total,
        }
    )
    print(f"cProfile over {n} steps: {total / n * 1e3:.2f} ms/step under the profiler")
    print(f"bind() calls per step: {binds / n:.0f}\n")
    print(
        common.table(
            rows,
            [
                ("prim", "primitive kernel", ""),
                ("calls", "calls/step", ".0f"),
                ("ms", "ms/step", ".3f"),
                ("share", "% of time", ".1f"),
            ],
        )
    )
    print(f"\ntop {top} by own time (tottime; ufunc time shows in the impl that calls it):")
    stats.sort_stats("tottime").print_stats(top)
    print(f"top {top} by cumulative time:")
    stats.sort_stats("cumulative").print_stats(top)


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0], repeat=21, torch_optional=True)
    p.add_argument("--act", choices=["tanh", "relu"], default="tanh")
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--in", dest="d_in", type=int, default=IN)
    p.add_argument("--width", type=int, default=WIDTH)
    p.add_argument("--out", dest="d_out", type=int, default=OUT)
    p.add_argument("--loss", choices=["xent", "mse"], default="xent")
    p.add_argument(
        "--min-sample-ms", type=float, default=20.0, help="minimum length of one timed sample"
    )
    p.add_argument(
        "--settle-ms",
        type=float,
        default=150.0,
        help="sleep before each sample so the previous framework's spinning BLAS/OpenMP "
        "threads time out (OpenBLAS spins ~0.1 s after a call; see common.time_interleaved)",
    )
    p.add_argument(
        "--profile",
        choices=["imperative", "functional"],
        help="cProfile fluxion's steps instead of timing",
    )
    p.add_argument(
        "--modes",
        help="comma list of candidates to time: imperative, functional, torch (default all)",
    )
    p.add_argument("--profile-steps", type=int, default=30)
    p.add_argument("--top", type=int, default=25, help="rows of the profile to print")
    args = p.parse_args(argv)
    torch = common.torch_from_args(args)
    sizes = {"batch": args.batch, "d_in": args.d_in, "width": args.width, "d_out": args.d_out}
    steps = make_steps(torch, args.act, args.loss, **sizes)
    if args.profile:
        profile(steps[f"fluxion {args.profile}"], args.profile_steps, args.top)
        return

    if args.modes:
        keep = args.modes.split(",")
        steps = {k: v for k, v in steps.items() if k.split()[-1] in keep or k.split()[0] in keep}
    env = common.environment(torch)
    config = {
        "batch": args.batch,
        "sizes": [args.d_in, args.width, args.width, args.d_out],
        "act": args.act,
        "loss": args.loss,
    }
    checks = agreement(steps)
    t = common.time_interleaved(
        steps,
        repeat=args.repeat,
        min_sample_s=args.min_sample_ms / 1e3,
        settle_s=args.settle_ms / 1e3,
    )
    ms = {k: common.median(v) * 1e3 for k, v in t.items()}
    rows = [
        {
            "mode": name,
            "ms": ms[name],
            "min_ms": min(t[name]) * 1e3,
            "max_ms": max(t[name]) * 1e3,
            "vs_torch": ms[name] / ms["torch eager"] if "torch eager" in ms else None,
        }
        for name in steps
    ]
    if args.json:
        common.emit_json({"bench": "mlp", "env": env, "config": config})
        for row in rows:
            common.emit_json({"bench": "mlp", **config, **row})
        for row in checks:
            common.emit_json({"bench": "mlp", "check": True, **row})
        common.finish(env, True, "mlp")
        return
    print(f"MLP forward+backward per step (median of {args.repeat} samples); {config}; {env}\n")
    print(
        common.table(
            rows,
            [
                ("mode", "mode", ""),
                ("ms", "ms/step", ".2f"),
                ("min_ms", "min", ".2f"),
                ("max_ms", "max", ".2f"),
                ("vs_torch", "x torch", ".2f"),
            ],
        )
    )
    print("\nagreement (same weights and data):")
    print(
        common.table(
            checks,
            [
                ("pair", "pair", ""),
                ("loss_a", "loss", ".6f"),
                ("loss_diff", "|loss diff|", ".2e"),
                ("grad_diff", "max |grad diff|", ".2e"),
                ("grad_max", "max |grad|", ".2e"),
            ],
        )
    )
    if "torch eager" in ms:
        worst = max(r["vs_torch"] for r in rows if r["mode"] != "torch eager")
        verdict = "meets" if worst <= 1.5 else "misses"
        print(f"\nslowest fluxion mode is {worst:.2f}x torch eager ({verdict} the 1.5x goal)")
    common.finish(env, False, "mlp")


if __name__ == "__main__":
    main()
