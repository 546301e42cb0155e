"""The anchor training workloads, fluxion beside PyTorch (and JAX) in one process.

Workload A ("seed", 17,827 parameters): the seed notebook's Transformer classifier, full
batch, 60 AdamW steps; step 1 is the first call and the statistics cover steps 2-60.
Workload B ("GPT", 3.2 M parameters, ~84 GFLOP of matmuls per step): 3 warm-up steps
(step 1 = first call) and 20 timed steps. Sizes, data and initial parameters are those of
the anchor benchmarks (``bench/workload_models.py``), so the losses match PyTorch's and
JAX's to 4-5 digits and the step times can be set beside theirs.

Modes (every one starts from the same initial parameters):

* ``eager_imperative``: ``fx.nn.Parameter`` leaves, ``loss.backward()``, stateful
  ``fx.optim.AdamW.step()``.
* ``eager_functional``: ``fx.value_and_grad`` over the parameter dict and
  ``fx.optim.adamw_update``.
* ``compiled_functional``: ``fx.jit`` of that whole functional step (value_and_grad +
  adamw_update); the first call traces and compiles.
* ``compiled_imperative``: ``fx.jit`` of ``zero_grad(); loss.backward(); optimizer.step()``.
* peers: ``torch_eager`` (``torch.set_num_threads(2)``, ``torch.optim.AdamW``),
  ``torch_compile`` (``torch.compile`` of model + loss and of ``opt.step()``; only with
  ``--torch-compile``: 35-45 s of cold compiling in repeat 1, ~2 s in later repeats), ``jax_jit`` (one ``jax.jit`` of
  value_and_grad + AdamW, parameters and state donated; when JAX is importable).

``--precision bf16`` runs every fluxion mode's forward and backward under
``fx.autocast(dtype=fx.bfloat16)`` (weights, gradients and AdamW's moments stay float32) and
adds the peer ``torch_autocast``: torch eager under ``torch.autocast("cpu",
dtype=torch.bfloat16)``. ``torch_eager`` stays float32, so "x torch" is the speed over
float32 PyTorch; the loss trajectories are checked against ``torch_autocast`` (to
``--rtol``, default 1e-2 in bfloat16) and float32 torch to ``--peer-rtol``. JAX has no
autocast: ``jax_jit`` is left out.

Each repeat trains every mode once, from the initial parameters, with a fresh ``fx.jit`` /
``torch.compile`` / ``jax.jit``. The modes take turns within a repeat: ``--block`` steps
of one (A 20, B 1), then the next, the order rotating at every turn, so the bursts of load
on this shared 2-core VM (and its slow drift) hit all modes alike; a pause before each turn
(``--settle-ms``) lets the previous framework's worker threads stop spinning. Only repeat
1's first call of a compiled mode is cold; later repeats reuse in-process (and torch's
on-disk) caches of the libraries. Step statistics pool the timed steps of all repeats; the
ratio is to ``torch_eager`` in the same run. Loss trajectories are checked against each
other (and PyTorch's); the script exits with status 1 when they disagree.

    python bench/workloads.py --workload A                  # 3 repeats, ~45 s
    python bench/workloads.py --workload B                  # 1 repeat, ~3.5 min
    python bench/workloads.py --workload A --torch-compile  # + torch.compile: ~1.5 min
    python bench/workloads.py --workload B --modes compiled_functional,torch_eager --repeat 3
    python bench/workloads.py --workload B --profile        # cProfile + per-primitive times of
                                                            # one compiled fluxion step
"""

from __future__ import annotations

import common  # noqa: I001  (also puts the repository root on sys.path)

# isort: split

import cProfile
import gc
import io
import math
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict

try:
    import resource
except ImportError:  # not on Windows
    resource = None

import numpy as np
import workload_models as wm

FLUXION_MODES = [
    "eager_imperative",
    "eager_functional",
    "compiled_functional",
    "compiled_imperative",
]
PEER_MODES = ["torch_eager", "torch_autocast", "torch_compile", "jax_jit"]
DEFAULT_REPEAT = {"A": 3, "B": 1}  # B: ~3.5 min for one repeat of the default modes
DEFAULT_BLOCK = {"A": 20, "B": 1}  # steps a mode runs before the next mode takes its turn


# ----------------------------------------------------------------------------- fluxion


class Run:
    """One training run: ``step()`` takes a step and returns the loss as a float;
    ``details()`` adds what the mode can tell about itself (compile statistics)."""

    def __init__(self, step, details=None, params=None):
        self.step, self.details, self.params = step, details or dict, params


def fluxion_run(workload: str, mode: str, precision: str = "fp32") -> Run:
    import fluxion as fx

    cfg = wm.CONFIG[workload]
    loss_fn = wm.fluxion_loss(workload)
    if precision == "bf16":
        loss_fn = fx.autocast(dtype=fx.bfloat16)(loss_fn)
    inputs, targets = (fx.tensor(a) for a in wm.data(workload))
    hyper = dict(lr=cfg["lr"], betas=wm.BETAS, eps=wm.EPS, weight_decay=wm.WEIGHT_DECAY)
    compiled = mode.startswith("compiled")

    if mode.endswith("imperative"):
        params = {k: fx.nn.Parameter(fx.tensor(v)) for k, v in wm.init(workload).items()}
        optimizer = fx.optim.AdamW(list(params.values()), **hyper)

        def train_step(x, y):
            optimizer.zero_grad()
            loss = loss_fn(params, x, y)
            loss.backward()
            optimizer.step()
            return loss

        run = fx.jit(train_step) if compiled else train_step

        def step():
            return float(run(inputs, targets))

        def current():
            return params

    else:
        state = [{k: fx.tensor(v) for k, v in wm.init(workload).items()}, None]
        state[1] = fx.optim.adamw_init(state[0])
        value_and_grad = fx.value_and_grad(loss_fn)

        def train_step(params, opt_state, x, y):
            loss, grads = value_and_grad(params, x, y)
            params, opt_state = fx.optim.adamw_update(params, grads, opt_state, **hyper)
            return params, opt_state, loss

        run = fx.jit(train_step) if compiled else train_step

        def step():
            state[0], state[1], loss = run(state[0], state[1], inputs, targets)
            return float(loss)

        def current():
            return state[0]

    def details():
        if not compiled:
            return {}
        stats = run.stats
        out = {
            "compile_ms": round(stats.compile_time_ms, 1),
            "jit_hits": stats.hits,
            "jit_misses": stats.misses,
            "jit_fallbacks": stats.fallbacks,
        }
        entries = [e for e in run.cache.values() if hasattr(e, "optimized")]
        if entries:  # the size of the compiled program (internal, for the compiler work)
            out["graph_eqns"] = len(entries[-1].optimized.eqns)
            out["graph_inputs"] = len(entries[-1].optimized.invars)
        return out

    run_obj = Run(step, details, current)
    run_obj.compiled = run if compiled else None
    return run_obj


# ----------------------------------------------------------------------------- peers


def torch_run(workload: str, mode: str, torch) -> Run:
    cfg = wm.CONFIG[workload]
    if mode == "torch_compile":
        torch._dynamo.reset()  # a fresh compile each repeat (Inductor's disk cache stays)
    model, loss_fn = wm.torch_model(workload, torch)
    if mode == "torch_autocast":
        loss_fn = torch.autocast("cpu", dtype=torch.bfloat16)(loss_fn)
    model.train()
    x, y = (torch.from_numpy(a) for a in wm.data(workload))
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg["lr"], betas=wm.BETAS, eps=wm.EPS, weight_decay=wm.WEIGHT_DECAY
    )
    opt_step = opt.step
    if mode == "torch_compile":
        loss_fn = torch.compile(loss_fn)

        @torch.compile(fullgraph=False)
        def opt_step():
            opt.step()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x, y)
        loss.backward()
        opt_step()
        return loss.item()

    def details():
        if mode != "torch_compile":
            return {}
        from torch._dynamo.utils import counters

        return {
            "dynamo_graphs": int(counters["stats"]["unique_graphs"]),
            "graph_breaks": int(sum(counters["graph_break"].values())),
        }

    return Run(step, details)


def jax_run(workload: str, jax) -> Run:
    cfg = wm.CONFIG[workload]
    loss_fn = wm.jax_loss(workload, jax)
    adamw_init, adamw_update = wm.jax_adamw(jax, cfg["lr"])
    params = {k: jax.numpy.asarray(v) for k, v in wm.init(workload).items()}
    x, y = (jax.numpy.asarray(a) for a in wm.data(workload))
    value_and_grad = jax.value_and_grad(loss_fn)

    def train_step(params, opt_state, x, y):  # a new function each run: a fresh jit cache
        loss, grads = value_and_grad(params, x, y)
        params, opt_state = adamw_update(params, grads, opt_state)
        return params, opt_state, loss

    run = jax.jit(train_step, donate_argnums=(0, 1))
    state = [params, adamw_init(params)]

    def step():
        state[0], state[1], loss = jax.block_until_ready(run(state[0], state[1], x, y))
        return float(loss)

    return Run(step)


# ----------------------------------------------------------------------------- measuring


def make_run(workload, mode, torch, jax, precision) -> Run:
    if mode in FLUXION_MODES:
        return fluxion_run(workload, mode, precision)
    if mode.startswith("torch"):
        return torch_run(workload, mode, torch)
    return jax_run(workload, jax)


def train_interleaved(
    workload: str, runs: dict[str, Run], block: int, settle_s: float, shift: int = 0
) -> dict[str, dict]:
    """Train every run, ``block`` steps at a time, the runs taking turns (the order rotates
    each block), so bursts of load from elsewhere hit all runs alike. Returns each step's
    wall time (s) and loss, the loss forced to a Python float."""
    out = {m: {"times": [], "losses": [], "faults": []} for m in runs}
    names = list(runs)
    n = wm.total_steps(workload)
    for b, start in enumerate(range(0, n, block)):
        k = (b + shift) % len(names)
        for mode in names[k:] + names[:k]:
            settle(settle_s)
            step, rec = runs[mode].step, out[mode]
            for _ in range(start, min(start + block, n)):
                f0 = _minor_faults()
                t0 = time.perf_counter()
                loss = step()
                rec["times"].append(time.perf_counter() - t0)
                rec["faults"].append(_minor_faults() - f0)
                rec["losses"].append(loss)
    return out


def _minor_faults() -> int:
    """Page faults of this process so far: memory touched for the first time since the
    allocator got it from the kernel (on this VM each costs ~0.6-10 us)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def settle(seconds: float) -> None:
    """Let the worker threads of the previous framework stop spinning (OpenBLAS, OpenMP,
    XLA spin for ~0.1 s after their last kernel and steal the 2 cores), then collect its
    garbage and freeze what lives on, so no mode pays a full collection of another's."""
    time.sleep(seconds)
    gc.collect()
    gc.freeze()


def matmul_peak(torch=None, n: int = 1024, best_of: int = 5) -> dict:
    """GFLOP/s of an n x n float32 matmul, best of ``best_of`` (NumPy; torch too if given)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    flops = 2.0 * n**3
    out = {}
    candidates = [("numpy", lambda: np.matmul(a, b))]
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        candidates.append(("torch", lambda: torch.matmul(ta, tb)))
    for name, fn in candidates:
        time.sleep(0.2)
        fn()
        best = min(_timed(fn) for _ in range(best_of))
        out[name] = flops / best / 1e9
    return out


def cpu_model() -> str:
    """The CPU's model name and its widest vector extensions (AMX, AVX-512): the anchor
    reference numbers came from an Intel Sapphire Rapids VM, other hosts differ."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "unknown"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), "")
    flags = next(
        (ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []
    )
    ext = [f for f in ("amx_tile", "avx512f", "avx2") if f in flags]
    return f"{name} ({', '.join(ext)})" if ext else name


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def summarize(workload, mode, reps: list[dict], torch_median) -> dict:
    k = wm.untimed_steps(workload)
    timed = [t * 1e3 for r in reps for t in r["times"][k:]]
    first = reps[0]
    rec = {
        "workload": workload,
        "mode": mode,
        "first_call_ms": first["times"][0] * 1e3,
        "first_call_ms_later_repeats": [round(r["times"][0] * 1e3, 1) for r in reps[1:]],
        "second_call_ms": first["times"][1] * 1e3,
        "step_ms_median": statistics.median(timed),
        "step_ms_min": min(timed),
        "step_ms_mean": statistics.fmean(timed),
        "step_ms_median_per_repeat": [
            round(statistics.median(r["times"][k:]) * 1e3, 3) for r in reps
        ],
        "steps_timed": len(timed),
        # page faults per timed step: memory the allocator handed back to the kernel and
        # took again (4 KiB each); ~0 when buffers are reused
        "page_faults_per_step": statistics.median(f for r in reps for f in r["faults"][k:]),
        "initial_loss": first["losses"][0],
        "final_loss": first["losses"][-1],
        "loss_trace": {
            str(i + 1): round(v, 6)
            for i, v in enumerate(first["losses"])
            if i < 5 or (i + 1) % 10 == 0 or i + 1 == len(first["losses"])
        },
    }
    if torch_median:
        rec["ratio_to_torch_eager"] = rec["step_ms_median"] / torch_median
    flops = wm.matmul_flops(workload)["step"]
    rec["matmul_gflop_per_step"] = flops / 1e9
    rec["gflops_achieved"] = flops / (rec["step_ms_median"] * 1e-3) / 1e9
    rec.update(first["details"])
    return rec


# ----------------------------------------------------------------------------- correctness


def check(
    workload, results: dict, rtol: float, peer_rtol: float, rtol_initial: float
) -> tuple[bool, list[dict]]:
    """Compare every mode's loss trajectory with the reference mode's (torch_eager when it
    ran, else the first fluxion mode): max |diff| over all steps, relative diff of the
    final and of the initial loss (a pure forward pass: it must agree much more tightly).
    fluxion modes must agree to ``rtol``; the other peers to ``peer_rtol`` (their own
    float32 rounding drifts further: JAX ends A 2.6e-4 away from PyTorch, as in the anchor
    runs). Repeats of a fluxion mode must give the same trajectory (to 1e-6 relative), a
    peer's to its tolerance (torch.compile differs between its cold and warm compiles)."""
    ref_mode = next(
        (m for m in ("torch_autocast", "torch_eager") if m in results), next(iter(results))
    )
    ref = np.asarray(results[ref_mode][0]["losses"], np.float64)
    fx_ref = next((m for m in FLUXION_MODES if m in results), None)
    rows, ok = [], True
    for mode, reps in results.items():
        traj = np.asarray(reps[0]["losses"], np.float64)
        row = {
            "mode": mode,
            "vs": ref_mode,
            "max_abs_diff": float(np.max(np.abs(traj - ref))),
            "final_rel_diff": abs(traj[-1] - ref[-1]) / abs(ref[-1]),
            "initial_rel_diff": abs(traj[0] - ref[0]) / abs(ref[0]),
            "repeat_max_abs_diff": max(
                (float(np.max(np.abs(np.asarray(r["losses"]) - traj))) for r in reps[1:]),
                default=0.0,
            ),
        }
        if fx_ref is not None and mode in FLUXION_MODES:
            other = np.asarray(results[fx_ref][0]["losses"], np.float64)
            row["vs_" + fx_ref] = float(np.max(np.abs(traj - other)))
        bad, tol = [], rtol if mode in FLUXION_MODES or mode == ref_mode else peer_rtol
        if not np.all(np.isfinite(traj)):
            bad.append("non-finite loss")
        if row["final_rel_diff"] > tol:
            bad.append(f"final loss off by {row['final_rel_diff']:.2e} relative (> {tol:g})")
        if row["initial_rel_diff"] > rtol_initial:
            bad.append(
                f"initial loss off by {row['initial_rel_diff']:.2e} relative (> {rtol_initial:g})"
            )
        # fluxion must be deterministic; torch.compile is not across recompiles (repeat 1
        # compiles cold, later ones reuse Inductor's cache: A's final loss moves by 3e-5)
        if row["repeat_max_abs_diff"] > (1e-6 if mode in FLUXION_MODES else tol) * abs(ref[0]):
            bad.append(f"repeats differ by {row['repeat_max_abs_diff']:.1e}")
        row["status"] = "ok" if not bad else "FAIL: " + "; ".join(bad)
        ok = ok and not bad
        rows.append(row)
    return ok, rows


# ----------------------------------------------------------------------------- profile


def profile_compiled(workload: str, mode: str, steps: int, top: int) -> None:
    """Where one compiled fluxion step spends its time.

    1. cProfile over ``steps`` steps: the top functions by own time and by cumulative time.
       NumPy's ufuncs are not Python functions: their time shows up as the own time of
       their caller (the generated function for emitted ops, else the primitive's ``impl``).
    2. The compiled program re-run equation by equation with a timer around each kernel
       (``prim.impl`` on the inputs the compiled step received), interleaved with plain
       compiled steps: time per primitive, grouped into matmul / elementwise / reductions /
       layout / gather-scatter. The compiled step's wall time minus the kernels' sum is
       what runs around them (the generated code's own Python, argument flattening, the
       cache lookup, wrapping results) less what the generated code saves over plain
       kernels (buffer reuse); it can be negative.
    """
    from fluxion.core.trace import backend

    machine = common.environment()  # starts counting other processes' CPU time
    run = fluxion_run(workload, mode)
    for _ in range(3):  # compile (twice for the imperative step: .grad starts as None)
        run.step()

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        run.step()
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    total_calls = sum(v[1] for v in st.stats.values())
    print(f"\n=== cProfile of {steps} {mode} steps of workload {workload} ===")
    print(f"{total_calls / steps:.0f} Python function calls per step under the profiler")
    print(_trim_pstats(buf.getvalue()))

    # Per-primitive times: capture the compiled program's inputs, then interpret it.
    entry = [e for e in run.compiled.cache.values() if hasattr(e, "optimized")][-1]
    captured = {}
    original = entry.run

    def recording(*arrays):
        captured["args"] = arrays
        return original(*arrays)

    entry.run = recording
    run.step()
    entry.run = original
    graph, xp = entry.optimized, backend.xp
    # the kernels the generated code calls by equation index (native ones among them)
    namespace = original.__globals__
    kernels = {
        k: namespace[f"k{k}_{eqn.prim.name}"]
        for k, eqn in enumerate(graph.eqns)
        if f"k{k}_{eqn.prim.name}" in namespace
    }
    walls, sums = [], []
    best = [math.inf] * len(graph.eqns)  # per equation: its fastest run over the passes
    reps = max(4, steps)
    # free each value after its last use, as the generated code does: holding them all
    # would make every kernel write into fresh memory (on this VM first-touch page faults
    # cost 0.6-10 us a page: B's kernels then look up to 1.7x slower)
    last_use = {}
    for k, eqn in enumerate(graph.eqns):
        for v in eqn.inputs:
            last_use[id(v)] = k
    for v in graph.outvars:
        last_use[id(v)] = len(graph.eqns)
    gen_times = []

    def timed_run(*arrays):
        t0 = time.perf_counter()
        result = original(*arrays)
        gen_times.append(time.perf_counter() - t0)
        return result

    faults = []
    for rep in range(reps):
        entry.run = timed_run
        f0 = _minor_faults()
        walls.append(_timed(run.step))
        faults.append(_minor_faults() - f0)
        entry.run = original
        env = {id(v): a for v, a in zip(graph.invars, captured["args"])}
        total = 0.0
        for k, eqn in enumerate(graph.eqns):
            args = [v.value if hasattr(v, "value") else env[id(v)] for v in eqn.inputs]
            t0 = time.perf_counter()
            out = kernels[k](*args) if k in kernels else eqn.prim.impl(xp, *args, **eqn.params)
            dt = time.perf_counter() - t0
            del args
            outs = out if eqn.prim.multiple_results else (out,)
            for v, o in zip(eqn.outputs, outs):
                if id(v) in last_use:
                    env[id(v)] = o
            del out, outs
            for v in eqn.inputs:
                if not hasattr(v, "value") and last_use.get(id(v)) == k:
                    env.pop(id(v), None)
            total += dt
            if rep:  # the first pass warms the allocator
                best[k] = min(best[k], dt)
        del env
        if rep:
            sums.append(total)
    wall, kernels = statistics.median(walls[1:]), statistics.median(sums)
    gen = statistics.median(gen_times[1:])
    # the tables use each equation's fastest run: page faults and other processes' bursts
    # inflate single runs on this VM by up to 5x (a 16 MB add taking 40 ms instead of 1.5)
    per_eqn = list(zip(best, graph.eqns))
    per_prim = defaultdict(lambda: [0, 0.0])
    for dt, eqn in per_eqn:
        per_prim[eqn.prim.name][0] += 1
        per_prim[eqn.prim.name][1] += dt
    best_sum = sum(best)
    groups = defaultdict(float)
    for name, (_, t) in per_prim.items():
        groups[_category(name)] += t
    print(
        f"=== per-primitive time of one {mode} step, workload {workload}: {len(graph.eqns)} "
        f"equations, {len(graph.invars)} inputs ==="
    )
    print(
        f"compiled step wall {wall * 1e3:.2f} ms (median of {reps - 1}) = generated function "
        f"{gen * 1e3:.2f} ms + around it {(wall - gen) * 1e3:.2f} ms (flatten the arguments, "
        "cache key, write-backs, wrap the outputs, float(loss)); page faults per step "
        f"{statistics.median(faults[1:]):.0f} (4 KiB each: memory the allocator gave back "
        "and took again)"
    )
    print(
        f"its {len(graph.eqns)} kernels run one by one (prim.impl, values freed after last use, "
        f"no out= reuse): {kernels * 1e3:.2f} ms (median of {reps - 1} passes); generated "
        f"function - kernels = {(gen - kernels) * 1e3:.2f} ms (the generated code's own "
        "Python, less what its buffer reuse saves)"
    )
    flops = sum(_matmul_flops(e) for _, e in per_eqn)
    mm_s = groups.get("matmul", 0.0)
    if mm_s:
        print(
            f"matmul kernels: {flops / 1e9:.3f} GFLOP per step (analytic count "
            f"{wm.matmul_flops(workload)['step'] / 1e9:.3f}) in {mm_s * 1e3:.2f} ms = "
            f"{flops / mm_s / 1e9:.0f} GFLOP/s"
        )
    print(
        f"below: each kernel's fastest run over {reps - 1} passes (sum {best_sum * 1e3:.2f} ms); "
        "shares of that sum"
    )
    rows = [
        {"what": g, "ms": t * 1e3, "share": f"{t / best_sum:.0%}"}
        for g, t in sorted(groups.items(), key=lambda kv: -kv[1])
    ]
    print(
        common.table(
            rows, [("what", "category", ""), ("ms", "ms/step", ".2f"), ("share", "share", "")]
        )
    )
    rows = [
        {
            "prim": name,
            "n": n,
            "ms": t * 1e3,
            "us": t / n * 1e6,
            "share": f"{t / best_sum:.1%}",
        }
        for name, (n, t) in sorted(per_prim.items(), key=lambda kv: -kv[1][1])
    ]
    print()
    print(
        common.table(
            rows,
            [
                ("prim", "primitive", ""),
                ("n", "count", ""),
                ("ms", "ms/step", ".3f"),
                ("us", "us/call", ".1f"),
                ("share", "share", ""),
            ],
        )
    )
    by_shape = defaultdict(lambda: [0, 0.0])
    for dt, eqn in per_eqn:
        key = (_category(eqn.prim.name), tuple(eqn.outputs[0].aval.shape))
        by_shape[key][0] += 1
        by_shape[key][1] += dt
    rows = [
        {"cat": cat.split(" ")[0], "shape": str(list(shape)), "n": n, "ms": t * 1e3}
        for (cat, shape), (n, t) in sorted(by_shape.items(), key=lambda kv: -kv[1][1])[:top]
    ]
    print("\ntime by category and output shape:")
    print(
        common.table(
            rows,
            [
                ("cat", "category", ""),
                ("shape", "output shape", ""),
                ("n", "count", ""),
                ("ms", "ms/step", ".2f"),
            ],
        )
    )
    print(f"\nslowest {min(top, len(per_eqn))} equations:")
    for dt, eqn in sorted(per_eqn, key=lambda x: -x[0])[:top]:
        shapes = " ".join(_shape(v) for v in eqn.inputs)
        params = ", ".join(f"{k}={v}" for k, v in eqn.params.items())
        if eqn.prim.name == "fused":  # its ops, not its printed graph
            params = " ".join(e.prim.name for e in eqn.params["graph"].eqns)
        print(
            f"  {dt * 1e3:8.3f} ms  {eqn.prim.name}[{params[:60]}] {shapes} -> "
            f"{_shape(eqn.outputs[0])}"
        )
    common.finish(machine, False, "workloads --profile")


def _matmul_flops(eqn) -> float:
    if eqn.prim.name != "matmul":
        return 0.0
    a, b = (v.aval.shape for v in eqn.inputs)
    out = eqn.outputs[0].aval.shape
    return 2.0 * math.prod(out) * a[-1]


def _shape(v) -> str:
    aval = v.aval
    return f"{np.dtype(aval.dtype).name}{list(aval.shape)}"


ELEMENTWISE = {
    "neg", "exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "sqrt", "erf", "abs",
    "sign", "floor", "ceil", "round", "invert", "add", "sub", "mul", "div", "pow", "max",
    "min", "rem", "floor_divide", "and", "or", "xor", "eq", "ne", "lt", "le", "gt", "ge",
    "select", "convert", "stop_gradient",
}  # fmt: skip
LAYOUT = {"reshape", "broadcast_to", "transpose", "slice", "pad", "concatenate", "rev"}


def _category(name: str) -> str:
    if name in ("matmul", "dot_general"):
        return "matmul"
    if name in ELEMENTWISE:
        return "elementwise"
    if name.startswith("reduce") or name in ("argmax", "argmin", "cumsum"):
        return "reductions"
    if name in LAYOUT:
        return "layout (reshape/transpose/broadcast/slice/concat)"
    if name in ("gather", "scatter_add"):
        return "gather / scatter_add"
    return "other"


def _trim_pstats(text: str) -> str:
    """pstats output without its blank preamble lines and with short paths."""
    root = common.ROOT + os.sep
    site = os.path.dirname(np.__path__[0]) + os.sep
    lines = [ln.replace(root, "").replace(site, "") for ln in text.splitlines()]
    return "\n".join(ln for ln in lines if ln.strip() and "Ordered by" not in ln or not ln)


# ----------------------------------------------------------------------------- main


def main() -> int:
    p = common.parser(__doc__.split("\n\n")[0], repeat=0)
    p.add_argument("--workload", choices=["A", "B"], default="A")
    p.add_argument(
        "--modes",
        default=None,
        help="comma list; default: the four fluxion modes, torch_eager, jax_jit when JAX "
        "is importable, torch_compile with --torch-compile",
    )
    p.add_argument("--torch-compile", action="store_true", help="add the torch_compile peer")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: fluxion under fx.autocast, and the torch_autocast peer",
    )
    p.add_argument(
        "--rtol",
        type=float,
        default=None,
        help="tolerance of fluxion's final losses, relative to the reference mode's "
        "(torch_autocast or else torch_eager when it runs; default 1e-4, bf16 1e-2)",
    )
    p.add_argument(
        "--peer-rtol",
        type=float,
        default=None,
        help="the same for the other peers (JAX, torch.compile, float32 torch in a bf16 "
        "run; default 1e-3, bf16 5e-2)",
    )
    p.add_argument(
        "--block",
        type=int,
        default=None,
        help="steps a mode takes before the next one's turn (default A 20, B 1)",
    )
    p.add_argument(
        "--settle-ms",
        type=float,
        default=150.0,
        help="pause before each turn, so the previous framework's threads stop spinning",
    )
    p.add_argument("--profile", action="store_true", help="profile a compiled fluxion step")
    p.add_argument("--profile-only", action="store_true", help="profile, no benchmark")
    p.add_argument("--profile-mode", default="compiled_functional")
    p.add_argument("--profile-steps", type=int, default=None)
    p.add_argument("--top", type=int, default=20, help="rows of the profile listings")
    args = p.parse_args()
    bf16 = args.precision == "bf16"
    rtol = args.rtol if args.rtol is not None else 1e-2 if bf16 else 1e-4
    peer_rtol = args.peer_rtol if args.peer_rtol is not None else 5e-2 if bf16 else 1e-3
    wl = args.workload
    repeat = args.repeat or DEFAULT_REPEAT[wl]

    if args.profile_only:
        profile_compiled(
            wl, args.profile_mode, args.profile_steps or (20 if wl == "A" else 3), args.top
        )
        return 0

    modes = args.modes.split(",") if args.modes else None
    unknown = set(modes or []) - set(FLUXION_MODES) - set(PEER_MODES)
    if unknown:
        p.error(f"unknown mode(s) {sorted(unknown)}; choose from {FLUXION_MODES + PEER_MODES}")
    want_compile = args.torch_compile or (modes is not None and "torch_compile" in modes)
    if want_compile and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        # a fresh Inductor cache: repeat 1 compiles cold, later repeats hit this disk cache
        tmp_cache = tempfile.TemporaryDirectory(prefix="fluxion_bench_inductor_")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tmp_cache.name
    torch = common.torch_from_args(args)
    try:
        import jax

        jax.config.update("jax_platforms", "cpu")
    except ImportError:
        jax = None
    if modes is None:
        modes = list(FLUXION_MODES)
        if torch is not None:
            modes.append("torch_eager")
            if bf16:
                modes.append("torch_autocast")
            if args.torch_compile:
                modes.append("torch_compile")
        if jax is not None and not bf16:
            modes.append("jax_jit")
    if bf16 and "jax_jit" in modes:
        p.error("jax_jit: JAX has no autocast; leave it out of a --precision bf16 run")
    for m in modes:
        if m.startswith("torch") and torch is None or m == "jax_jit" and jax is None:
            p.error(f"{m}: {'torch' if m.startswith('torch') else 'jax'} is not importable")

    env = common.environment(torch)
    env["cpu"] = cpu_model()
    if jax is not None:
        env["jax"] = jax.__version__
    peak = matmul_peak(torch)
    if not args.json:
        print(f"workload {wl} ({args.precision}), {repeat} repeat(s), modes {', '.join(modes)}")
        print(f"environment: {env}")
        print(
            "float32 1024^2 matmul peak (best of 5): "
            + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items())
        )

    results: dict[str, list[dict]] = {m: [] for m in modes}
    block = args.block or DEFAULT_BLOCK[wl]
    t_start = time.perf_counter()
    for r in range(repeat):
        runs = {m: make_run(wl, m, torch, jax, args.precision) for m in modes}
        out = train_interleaved(wl, runs, block, args.settle_ms / 1e3, shift=r)
        for mode in modes:
            times, losses = out[mode]["times"], out[mode]["losses"]
            results[mode].append(
                {
                    "times": times,
                    "losses": losses,
                    "faults": out[mode]["faults"],
                    "details": runs[mode].details(),
                }
            )
            if not args.json:
                print(
                    f"  repeat {r + 1} {mode:20s} first {times[0] * 1e3:9.1f} ms, median "
                    f"{statistics.median(times[wm.untimed_steps(wl) :]) * 1e3:8.2f} ms, "
                    f"final loss {losses[-1]:.6f}",
                    flush=True,
                )
        del runs, out
        gc.unfreeze()
    wall = time.perf_counter() - t_start
    settle(args.settle_ms / 1e3)
    gc.unfreeze()
    peak_end = matmul_peak(torch)
    peak = {k: max(v, peak_end.get(k, 0.0)) for k, v in peak.items()}
    if not args.json:
        print(
            "float32 1024^2 matmul peak at the end: "
            + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak_end.items())
            + " (the best of start and end is used below)"
        )

    torch_median = None
    if "torch_eager" in results:
        k = wm.untimed_steps(wl)
        torch_median = statistics.median(
            t * 1e3 for r in results["torch_eager"] for t in r["times"][k:]
        )
    recs = [summarize(wl, m, results[m], torch_median) for m in modes]
    # a forward pass in bfloat16 rounds its products: fluxion's and torch's agree to ~1e-3
    ok, checks = check(wl, results, rtol, peer_rtol, rtol_initial=1e-3 if bf16 else 1e-5)
    for rec, row in zip(recs, checks):
        rec["check"] = row
    peak_np = peak["numpy"]
    if args.json:
        for rec in recs:
            rec.update(env=env, matmul_peak_gflops=peak, repeats=repeat)
            common.emit_json(rec)
    else:
        print(
            f"\nworkload {wl}: {repeat} repeat(s), {wm.untimed_steps(wl)} untimed + "
            f"{wm.total_steps(wl) - wm.untimed_steps(wl)} timed steps each; {wall:.0f} s"
        )
        cols = [
            ("mode", "mode", ""),
            ("first_call_ms", "first ms", ".1f"),
            ("second_call_ms", "2nd ms", ".1f"),
            ("step_ms_median", "median ms", ".2f"),
            ("step_ms_min", "min ms", ".2f"),
            ("ratio_to_torch_eager", "x torch", ".2f"),
            ("final_loss", "final loss", ".6f"),
            ("page_faults_per_step", "faults/step", ".0f"),
        ]
        if wl == "B":
            for rec in recs:
                rec["peak_share"] = f"{rec['gflops_achieved'] / peak_np:.0%}"
            cols += [("gflops_achieved", "GFLOP/s", ".0f"), ("peak_share", "of np peak", "")]
        print(common.table(recs, cols))
        if wl == "B":
            print(
                f"GFLOP/s: {recs[0]['matmul_gflop_per_step']:.1f} GFLOP of matmuls per step "
                f"(fwd 2MNK, bwd 2x fwd) / median step; NumPy float32 matmul peak "
                f"{peak_np:.0f} GFLOP/s"
                + (f", torch {peak['torch']:.0f} GFLOP/s" if "torch" in peak else "")
            )
        for rec in recs:
            extra = {
                k: rec[k]
                for k in (
                    "compile_ms", "jit_hits", "jit_misses", "graph_eqns", "graph_inputs",
                    "dynamo_graphs", "graph_breaks",
                )
                if k in rec
            }  # fmt: skip
            if extra or rec["first_call_ms_later_repeats"]:
                print(
                    f"  {rec['mode']}: first call of later repeats "
                    f"{rec['first_call_ms_later_repeats']} ms; medians per repeat "
                    f"{rec['step_ms_median_per_repeat']} ms; {extra}"
                )
        print(
            f"\nloss trajectories (tolerance of the final loss: fluxion {rtol:g}, other peers "
            f"{peer_rtol:g} relative; initial loss {1e-3 if bf16 else 1e-5:g} relative):"
        )
        ccols = [
            ("mode", "mode", ""),
            ("vs", "against", ""),
            ("max_abs_diff", "max |diff|", ".2e"),
            ("final_rel_diff", "final rel", ".2e"),
            ("initial_rel_diff", "initial rel", ".2e"),
        ]
        fx_ref = next((m for m in FLUXION_MODES if m in results), None)
        if fx_ref:
            ccols.append(("vs_" + fx_ref, f"max |diff| vs {fx_ref}", ".2e"))
        ccols += [("repeat_max_abs_diff", "repeats", ".1e"), ("status", "status", "")]
        print(common.table(checks, ccols))
        trace = {m: results[m][0]["losses"] for m in modes}
        steps = sorted({int(s) for s in recs[0]["loss_trace"]})
        print("\nloss at step " + ", ".join(map(str, steps)) + ":")
        for m in modes:
            print(f"  {m:20s} " + " ".join(f"{trace[m][s - 1]:.6f}" for s in steps))
    common.finish(env, args.json, "workloads")

    if args.profile:
        profile_compiled(
            wl, args.profile_mode, args.profile_steps or (20 if wl == "A" else 3), args.top
        )
    if not ok:
        print("\nFAILED: the loss trajectories disagree (see the table above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
