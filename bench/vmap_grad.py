"""Per-example gradients of a small MLP: fluxion vmap(grad) vs a Python loop vs torch.func.

Workload: 512 examples, MLP 32 -> 64 -> 64 -> 1 with tanh, squared error per example,
float32, same NumPy-generated weights and data everywhere. Result: the gradient of
every parameter for every example (``w1`` grads are 512 x 32 x 64).

* ``fluxion vmap(grad)``: ``fx.vmap(fx.grad(loss), in_axes=(None, 0, 0))(params, x, y)``.
* ``fluxion vmap(jit(grad))``: the same with the gradient compiled: the vmap rule of the
  jit call batches its graph, compiled once.
* ``fluxion jit(vmap(grad))``: the whole per-example gradient compiled.
* ``fluxion loop``: ``fx.grad(loss)`` per example, then ``fx.stack`` per parameter.
* ``torch.func vmap(grad)``: ``torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))``.
* ``torch loop``: ``torch.func.grad`` per example, then ``torch.stack`` (reference).

    python bench/vmap_grad.py          # ~15 s
    python bench/vmap_grad.py --examples 128 --repeat 11
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import numpy as np

import fluxion as fx

D_IN, HIDDEN, D_OUT = 32, 64, 1


def init(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    dims = [D_IN, HIDDEN, HIDDEN, D_OUT]
    params = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]), start=1):
        bound = 1.0 / np.sqrt(a)
        params[f"w{i}"] = rng.uniform(-bound, bound, (a, b)).astype(np.float32)
        params[f"b{i}"] = rng.uniform(-bound, bound, (b,)).astype(np.float32)
    x = rng.standard_normal((n, D_IN), dtype=np.float32)
    y = rng.standard_normal((n, D_OUT), dtype=np.float32)
    return params, x, y


def fx_loss(params, x, y):
    """Squared error of one example (x: (32,), y: (1,))."""
    h = fx.tanh(x @ params["w1"] + params["b1"])
    h = fx.tanh(h @ params["w2"] + params["b2"])
    d = h @ params["w3"] + params["b3"] - y
    return fx.sum(d * d)


def torch_loss(torch, params, x, y):
    h = torch.tanh(x @ params["w1"] + params["b1"])
    h = torch.tanh(h @ params["w2"] + params["b2"])
    d = h @ params["w3"] + params["b3"] - y
    return torch.sum(d * d)


def make_candidates(torch, n: int):
    params, x_np, y_np = init(n)
    cands = {}

    p_fx = {k: fx.tensor(v) for k, v in params.items()}
    x_fx, y_fx = fx.tensor(x_np), fx.tensor(y_np)
    per_example = fx.vmap(fx.grad(fx_loss), in_axes=(None, 0, 0))
    cands["fluxion vmap(grad)"] = lambda: per_example(p_fx, x_fx, y_fx)
    batched_jit = fx.vmap(fx.jit(fx.grad(fx_loss)), in_axes=(None, 0, 0))
    cands["fluxion vmap(jit(grad))"] = lambda: batched_jit(p_fx, x_fx, y_fx)
    jit_batched = fx.jit(per_example)
    cands["fluxion jit(vmap(grad))"] = lambda: jit_batched(p_fx, x_fx, y_fx)

    grad_fx = fx.grad(fx_loss)
    xs_fx = [fx.tensor(r) for r in x_np]  # the data split up front: the loop times grad only
    ys_fx = [fx.tensor(r) for r in y_np]

    def fluxion_loop():
        gs = [grad_fx(p_fx, xi, yi) for xi, yi in zip(xs_fx, ys_fx)]
        return {k: fx.stack([g[k] for g in gs]) for k in p_fx}

    cands["fluxion loop"] = fluxion_loop

    if torch is not None and hasattr(torch, "func"):
        p_t = {k: torch.from_numpy(v.copy()) for k, v in params.items()}
        x_t, y_t = torch.from_numpy(x_np.copy()), torch.from_numpy(y_np.copy())

        def loss_t(p, x, y):
            return torch_loss(torch, p, x, y)

        per_example_t = torch.func.vmap(torch.func.grad(loss_t), in_dims=(None, 0, 0))
        cands["torch.func vmap(grad)"] = lambda: per_example_t(p_t, x_t, y_t)

        grad_t = torch.func.grad(loss_t)
        xs_t, ys_t = list(x_t.unbind(0)), list(y_t.unbind(0))

        def torch_loop():
            gs = [grad_t(p_t, xi, yi) for xi, yi in zip(xs_t, ys_t)]
            return {k: torch.stack([g[k] for g in gs]) for k in p_t}

        cands["torch loop"] = torch_loop
    return cands


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0], repeat=7, torch_optional=True)
    p.add_argument("--examples", type=int, default=512)
    p.add_argument(
        "--settle-ms",
        type=float,
        default=100.0,
        help="sleep before each sample (lets another framework's spinning threads time out)",
    )
    p.add_argument("--no-loops", action="store_true", help="time only the vmap candidates (faster)")
    args = p.parse_args(argv)
    torch = common.torch_from_args(args)
    env = common.environment(torch)
    cands = make_candidates(torch, args.examples)

    results = {name: fn() for name, fn in cands.items()}
    ref_name = "fluxion loop"
    ref = results[ref_name]
    checks = [
        {"pair": f"{name} vs {ref_name}", "grad_diff": common.max_abs_diff(ref, res)}
        for name, res in results.items()
        if name != ref_name
    ]
    grad_max = max(float(np.max(np.abs(common.to_numpy(g)))) for g in ref.values())
    shapes = {k: tuple(common.to_numpy(v).shape) for k, v in ref.items()}

    if args.no_loops:
        cands = {k: v for k, v in cands.items() if "loop" not in k}
    t = common.time_interleaved(
        cands, repeat=args.repeat, warmup=1, min_sample_s=0.02, settle_s=args.settle_ms / 1e3
    )
    ms = {k: common.median(v) * 1e3 for k, v in t.items()}
    base = ms.get("fluxion vmap(grad)")
    rows = [
        {
            "mode": name,
            "ms": ms[name],
            "us_per_example": ms[name] * 1e3 / args.examples,
            "vs_fx_vmap": ms[name] / base,
            "vs_torch_vmap": ms[name] / ms["torch.func vmap(grad)"]
            if "torch.func vmap(grad)" in ms
            else None,
        }
        for name in cands
    ]
    config = {"examples": args.examples, "sizes": [D_IN, HIDDEN, HIDDEN, D_OUT], "act": "tanh"}
    if args.json:
        common.emit_json({"bench": "vmap_grad", "env": env, "config": config})
        for row in rows:
            common.emit_json({"bench": "vmap_grad", **config, **row})
        for row in checks:
            common.emit_json({"bench": "vmap_grad", "check": True, "grad_max": grad_max, **row})
        common.finish(env, True, "vmap_grad")
        return
    print(f"per-example gradients (median of {args.repeat} samples); {config}; {env}\n")
    print(
        common.table(
            rows,
            [
                ("mode", "mode", ""),
                ("ms", "ms", ".2f"),
                ("us_per_example", "us/example", ".1f"),
                ("vs_fx_vmap", "x fx vmap", ".2f"),
                ("vs_torch_vmap", "x torch vmap", ".2f"),
            ],
        )
    )
    print(f"\nagreement (gradient shapes {shapes}; max |grad| {grad_max:.3g}):")
    print(common.table(checks, [("pair", "pair", ""), ("grad_diff", "max |grad diff|", ".2e")]))
    if "fluxion loop" in ms and base:
        print(f"\nfluxion vmap(grad) is {ms['fluxion loop'] / base:.1f}x faster than its loop")
    common.finish(env, False, "vmap_grad")


if __name__ == "__main__":
    main()
