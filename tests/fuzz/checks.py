"""What the fuzzer checks on each program, against an independent answer each time.

- ``eager``: fluxion's values in float64 against NumPy's.
- ``grad`` and ``backward``: ``fx.grad`` and ``Tensor.backward()`` in float64 against
  ``torch.autograd``; ``jvp``: ``fx.jvp``'s tangent against ``<grad, t>``; ``vmap``: eager
  ``vmap(grad)`` against a Python loop of ``grad``.
- ``jit``, ``jit_grad``, ``jit_vmap_grad``: the compiled function against eager fluxion,
  with native kernels on and off, in float64 and float32; ``jit_grad`` is called again
  with new values (a cache hit) and ``jit_vmap_grad`` with a new batch size (a retrace).
- ``grad_of_jit``, ``jvp_of_jit``, ``vmap_of_jit``, ``backward_of_jit``: jit inside a
  transform, where the jitted function is one ``jit`` equation whose rules derive compiled
  graphs (its pullback, its tangent, its batched graph), against eager.

Tolerances. Every comparison is array-wise: ``max|got - want| <= tol``, with ``scale =
1 + max|want|``. float64 against NumPy or torch, or eager: ``1e-9 * scale`` for values,
``1e-7 * scale`` for gradients (a 40-op chain's rounding is ~1e-13 relative; reassociated
sums, a softmax or layer_norm written differently from torch's, and cancellation in the
loss's sum take some of the rest). float32, compiled against eager: ``8 * err32 + 1e-5 *
scale``, where ``err32`` is eager float32's own distance from eager float64 on the same
program: a compiled float32 result may round differently from eager's, but its error must
be of the size float32 itself makes on this program, not beyond. Where both sides are
the same inf, or both NaN, they agree (inputs drawn anew for a cache hit or a batch may
leave the domain the program was drawn in). A float32 compiled check failing on a program
with a discontinuous op (sort, max, where, relu...) passes when the same check passes in
float64: compiled and eager float32 round an input of the jump differently and take its
two sides (``run_check``; bench/fuzz.py counts these).
"""

import contextlib
import os
import warnings
from dataclasses import dataclass

import numpy as np

import fluxion as fx
from fluxion.compiler.native import toolchain
from tests.fuzz.program import (
    Program,
    compiled,
    inputs,
    numpy_loss,
    run_numpy,
    script,
    torch_grads,
    vmap_axes,
)

BATCH, NEW_BATCH = 2, 3


@dataclass
class Failure:
    check: str  # e.g. "jit_grad float32 native" (see CHECKS)
    message: str
    program: Program
    repro: str = ""  # the shrunk program as a runnable script

    def __str__(self):
        return f"{self.check}: {self.message}\n--- repro (runnable) ---\n{self.repro}"


class Mismatch(AssertionError):
    pass


def _np(t) -> np.ndarray:
    return (
        np.zeros(())
        if t is None
        else np.asarray(t.numpy() if hasattr(t, "numpy") else t, dtype=np.float64)
    )


def _diff(g: np.ndarray, w: np.ndarray) -> np.ndarray:
    """|g - w| elementwise, 0 where both are the same inf or both NaN (inputs drawn anew,
    for a cache hit or a batch, may leave the domain the program was drawn in), inf where
    only one is finite."""
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    with np.errstate(invalid="ignore"):
        d = np.where(same, 0.0, np.abs(g - w))
    return np.where(np.isnan(d), np.inf, d)


def _scale(w: np.ndarray) -> float:
    finite = np.abs(w[np.isfinite(w)])
    return 1.0 + (float(np.max(finite)) if finite.size else 0.0)


def close(what: str, got, want, tol_of) -> float:
    """Raises Mismatch where ``got`` and ``want`` (sequences of arrays) differ in shape or
    by more than ``tol_of(k, want_k)``; returns the largest difference relative to scale."""
    worst = 0.0
    if len(got) != len(want):
        raise Mismatch(f"{what}: {len(got)} results, expected {len(want)}")
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = _np(g), _np(w)
        if g.shape != w.shape:
            raise Mismatch(f"{what}: result {k} has shape {g.shape}, expected {w.shape}")
        if g.size == 0:
            continue
        diff = _diff(g, w)
        err, tol = float(np.max(diff)), tol_of(k, w)
        if not err <= tol:
            at = np.unravel_index(int(np.argmax(diff)), g.shape)
            raise Mismatch(
                f"{what}: result {k} differs by {err:.3g} (tolerance {tol:.3g}); at {tuple(int(i) for i in at)}: "
                f"got {g[at]!r}, expected {w[at]!r}"
            )
        worst = max(worst, err / _scale(w))
    return worst


def _tol(rtol):
    return lambda k, w: rtol * _scale(_np(w))


@contextlib.contextmanager
def native(on: bool):
    """fluxion's C kernels on or off for the functions compiled inside."""
    old = os.environ.get("FLUXION_NATIVE_KERNELS")
    os.environ["FLUXION_NATIVE_KERNELS"] = "1" if on else "0"
    toolchain._compiler.cache_clear()
    try:
        yield
        if on and toolchain.usable_compiler() is None:
            raise Mismatch(f"native kernels were asked for but are off: {toolchain._FAILED}")
    finally:
        if old is None:
            del os.environ["FLUXION_NATIVE_KERNELS"]
        else:
            os.environ["FLUXION_NATIVE_KERNELS"] = old
        toolchain._compiler.cache_clear()


def _fx_inputs(xs, dtype):
    return [fx.tensor(x, dtype=getattr(fx, dtype)) for x in xs]


class Context:
    """A program's functions and eager answers, computed once for all its checks."""

    def __init__(self, program: Program):
        self.program = program
        self.argnums = tuple(range(program.arity()))
        self._memo = {}

    def memo(self, key, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def fns(self, dtype):
        return self.memo(("fns", dtype), lambda: compiled(self.program, dtype))

    def xs(self, dtype, batch=None, salt=0):
        axes = None if batch is None else vmap_axes(self.program)
        return _fx_inputs(inputs(self.program, batch, salt, axes), dtype)

    def grad_fn(self, dtype):
        return fx.grad(self.fns(dtype)[1], argnums=self.argnums)

    def vmap_grad_fn(self, dtype):
        return fx.vmap(self.grad_fn(dtype), in_axes=vmap_axes(self.program))

    def eager(self, dtype, what, batch=None, salt=0):
        """Eager fluxion's ``what`` ("values", "grad", "vmap_grad") on these inputs."""

        def make():
            fn = {
                "values": lambda: self.fns(dtype)[0],
                "grad": lambda: self.grad_fn(dtype),
                "vmap_grad": lambda: self.vmap_grad_fn(dtype),
            }[what]()
            return list(fn(*self.xs(dtype, batch, salt)))

        return self.memo(("eager", dtype, what, batch, salt), make)


def _f32_tol(ctx, what, batch=None, salt=0):
    """float32's own error on this program, from eager float32 against eager float64."""
    ref64 = ctx.eager("float64", what, batch, salt)
    ref32 = ctx.eager("float32", what, batch, salt)

    def tol(k, w):
        r32, r64 = _np(ref32[k]), _np(ref64[k])
        err = float(np.max(_diff(r32, r64))) if r64.size else 0.0
        return 8 * err + 1e-5 * _scale(r64)

    return tol


def _compiled_tol(ctx, dtype, what, batch=None, salt=0):
    return (
        _tol(1e-9 if what == "values" else 1e-7)
        if dtype == "float64"
        else _f32_tol(ctx, what, batch, salt)
    )


# --------------------------------------------------------------------------- checks


def check_eager(ctx: Context) -> float:
    want = run_numpy(ctx.program, inputs(ctx.program))
    return close(
        "eager float64 vs NumPy",
        ctx.eager("float64", "values"),
        [want[v] for v in ctx.program.outputs],
        _tol(1e-9),
    )


def _torch_grads(ctx: Context):
    return ctx.memo("torch_grads", lambda: torch_grads(ctx.program, inputs(ctx.program)))


def check_grad(ctx: Context) -> float:
    return close(
        "fx.grad float64 vs torch.autograd",
        ctx.eager("float64", "grad"),
        _torch_grads(ctx),
        _tol(1e-7),
    )


def check_backward(ctx: Context) -> float:
    xs = [fx.tensor(x, dtype=fx.float64, requires_grad=True) for x in inputs(ctx.program)]
    ctx.fns("float64")[1](*xs).backward()
    got = [
        np.zeros(x.shape) if x.grad is None else x.grad for x in xs
    ]  # None: not reached, as torch
    return close("backward() float64 vs torch.autograd", got, _torch_grads(ctx), _tol(1e-7))


def check_jvp(ctx: Context) -> float:
    xs = ctx.xs("float64")
    ts = ctx.xs("float64", salt=7)
    value, tangent = fx.jvp(ctx.fns("float64")[1], tuple(xs), tuple(ts))
    grads = ctx.eager("float64", "grad")
    want = sum(float(np.sum(_np(g) * _np(t))) for g, t in zip(grads, ts))
    scale = sum(float(np.sum(np.abs(_np(g) * _np(t)))) for g, t in zip(grads, ts))
    loss = numpy_loss(ctx.program, run_numpy(ctx.program, inputs(ctx.program)))
    close("fx.jvp's value float64 vs NumPy's loss", [value], [loss], _tol(1e-9))
    return close(
        "fx.jvp's tangent vs <grad, t>", [tangent], [want], lambda k, w: 1e-8 * (1 + scale)
    )


def check_vmap(ctx: Context) -> float:
    got = ctx.eager("float64", "vmap_grad", BATCH, 1)
    grad = ctx.grad_fn("float64")
    xs = ctx.xs("float64", BATCH, 1)
    axes = vmap_axes(ctx.program)
    rows = [
        grad(*(x if a is None else fx.take(x, b, axis=a) for x, a in zip(xs, axes)))
        for b in range(BATCH)
    ]
    want = [np.stack([_np(r[i]) for r in rows]) for i in range(len(xs))]
    return close("vmap(grad) float64 vs a loop of grad", got, want, _tol(1e-9))


def check_jit(ctx: Context, dtype: str, on: bool) -> float:
    with native(on):
        fn = fx.jit(ctx.fns(dtype)[0])
        got = list(fn(*ctx.xs(dtype)))
    _no_fallback(fn)
    return close(
        f"jit(values) {dtype} vs eager",
        got,
        ctx.eager(dtype, "values"),
        _compiled_tol(ctx, dtype, "values"),
    )


def _strided(x):
    """``x`` as a non-contiguous view (every other element of a wider array)."""
    return x if x.ndim == 0 else fx.repeat(x, 2, axis=-1)[..., ::2]


def check_jit_grad(ctx: Context, dtype: str, on: bool) -> float:
    with native(on):
        fn = fx.jit(ctx.grad_fn(dtype))
        got = list(fn(*ctx.xs(dtype)))
        # new values, same shapes, as strided views: a cache hit
        again = list(fn(*(_strided(x) for x in ctx.xs(dtype, salt=3))))
    _no_fallback(fn)
    if fn.stats.hits != 1 or fn.stats.misses != 1:
        raise Mismatch(
            f"jit(grad) {dtype}: a second call with new values gave {fn.stats}, expected 1 hit"
        )
    worst = close(
        f"jit(grad) {dtype} vs eager",
        got,
        ctx.eager(dtype, "grad"),
        _compiled_tol(ctx, dtype, "grad"),
    )
    want = ctx.eager(dtype, "grad", salt=3)
    tol = _compiled_tol(ctx, dtype, "grad", salt=3)
    return max(
        worst, close(f"jit(grad) {dtype}, cache hit with new values, vs eager", again, want, tol)
    )


def check_jit_vmap_grad(ctx: Context, dtype: str, on: bool) -> float:
    with native(on):
        fn = fx.jit(ctx.vmap_grad_fn(dtype))
        got = list(fn(*ctx.xs(dtype, BATCH, 1)))
        wider = list(fn(*ctx.xs(dtype, NEW_BATCH, 2)))  # a new shape: a retrace
    _no_fallback(fn)
    if fn.stats.misses != 2:
        raise Mismatch(
            f"jit(vmap(grad)) {dtype}: a new batch size gave {fn.stats}, expected 2 misses"
        )
    want = ctx.eager(dtype, "vmap_grad", BATCH, 1)
    worst = close(
        f"jit(vmap(grad)) {dtype} vs eager",
        got,
        want,
        _compiled_tol(ctx, dtype, "vmap_grad", BATCH, 1),
    )
    want = ctx.eager(dtype, "vmap_grad", NEW_BATCH, 2)
    tol = _compiled_tol(ctx, dtype, "vmap_grad", NEW_BATCH, 2)
    return max(worst, close(f"jit(vmap(grad)) {dtype}, new batch size, vs eager", wider, want, tol))


def _no_fallback(fn):
    if fn.stats.fallbacks:
        raise Mismatch(f"the compiled function fell back to eager: {fn.stats}")


def check_grad_of_jit(ctx: Context) -> float:
    """jit inside grad: the compiled function's pullback, in float64, native kernels on."""
    with native(True):
        got = list(fx.grad(fx.jit(ctx.fns("float64")[1]), argnums=ctx.argnums)(*ctx.xs("float64")))
    return close(
        "grad(jit(loss)) float64 vs eager grad", got, ctx.eager("float64", "grad"), _tol(1e-7)
    )


def check_backward_of_jit(ctx: Context) -> float:
    """backward() through a compiled function called on leaves that require grad."""
    xs = [fx.tensor(x, dtype=fx.float64, requires_grad=True) for x in inputs(ctx.program)]
    with native(True):
        fx.jit(ctx.fns("float64")[1])(*xs).backward()
    got = [np.zeros(x.shape) if x.grad is None else x.grad for x in xs]
    return close(
        "jit(loss)(leaves).backward() float64 vs torch.autograd", got, _torch_grads(ctx), _tol(1e-7)
    )


def check_jvp_of_jit(ctx: Context) -> float:
    """jit inside jvp, against jvp of the eager function."""
    xs, ts = tuple(ctx.xs("float64")), tuple(ctx.xs("float64", salt=7))
    with native(True):
        got = fx.jvp(fx.jit(ctx.fns("float64")[1]), xs, ts)
    want = fx.jvp(ctx.fns("float64")[1], xs, ts)
    return close("jvp(jit(loss)) float64 vs jvp(loss)", list(got), list(want), _tol(1e-8))


def check_vmap_of_jit(ctx: Context) -> float:
    """jit inside vmap: the compiled gradient batched by the jit call's vmap rule (one
    compile of the batched graph), against eager vmap(grad)."""
    with native(True):
        fn = fx.jit(ctx.grad_fn("float64"))
        got = list(fx.vmap(fn, in_axes=vmap_axes(ctx.program))(*ctx.xs("float64", BATCH, 1)))
    if fn.stats.misses != 1:
        raise Mismatch(f"vmap(jit(grad)) float64: compiled {fn.stats.misses} graphs, expected 1")
    want = ctx.eager("float64", "vmap_grad", BATCH, 1)
    return close("vmap(jit(grad)) float64 vs eager vmap(grad)", got, want, _tol(1e-7))


def _compiled_checks():
    out = {}
    for dtype in ("float64", "float32"):
        for on in (True, False):
            mode = "native" if on else "numpy"
            for name, fn in (
                ("jit", check_jit),
                ("jit_grad", check_jit_grad),
                ("jit_vmap_grad", check_jit_vmap_grad),
            ):
                out[f"{name} {dtype} {mode}"] = lambda ctx, fn=fn, dtype=dtype, on=on: fn(
                    ctx, dtype, on
                )
    return out


CHECKS = {
    "eager": check_eager,
    "grad": check_grad,
    "backward": check_backward,
    "jvp": check_jvp,
    "vmap": check_vmap,
    **_compiled_checks(),
    "grad_of_jit": check_grad_of_jit,
    "backward_of_jit": check_backward_of_jit,
    "jvp_of_jit": check_jvp_of_jit,
    "vmap_of_jit": check_vmap_of_jit,
}


# Ops whose value or derivative jumps: a float32 compiled result may take the other side
# of a jump than eager float32 where the two round an input of it differently (cos of
# 72x72 values in C and in NumPy, then argsort: two values an ulp apart change places).
DISCONTINUOUS = {
    "sign", "floor", "relu", "abs", "clip", "maximum", "minimum", "max", "min", "sort", "top_k",
    "argmax_take", "argsort_take", "where", "remainder", "std", "var", "layer_norm", "rms_norm",
}  # fmt: skip


def _run(name: str, ctx: Context) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ctx.memo(("worst", name), lambda: CHECKS[name](ctx))
    except Exception as e:  # a crash is a failure as much as a wrong value
        return f"{type(e).__name__}: {e}"
    return None


def run_check(name: str, program: Program, ctx: Context | None = None) -> str | None:
    """None where check ``name`` passes on ``program``, else what went wrong. A float32
    compiled check that fails on a program with a discontinuous op passes if the same
    check passes in float64: the two sides of a jump were taken on values within float32's
    rounding of each other (counted as ``flips``), which no tolerance can absorb."""
    ctx = ctx or Context(program)
    message = _run(name, ctx)
    if message is None or " float32 " not in name or Mismatch.__name__ not in message:
        return message
    if not DISCONTINUOUS & {op for op, _, _ in program.ops}:
        return message
    if _run(name.replace("float32", "float64"), ctx) is not None:
        return message
    ctx.memo("flips", list).append(name)
    return None


# --------------------------------------------------------------------------- repro code


def repro_lines(name: str) -> tuple[str, list[str], bool | None]:
    """The dtype, the lines that show check ``name`` failing, and the native setting."""
    parts = name.split()
    dtype = parts[1] if len(parts) > 1 else "float64"
    on = None if len(parts) < 3 else parts[2] == "native"
    what = parts[0]
    grad = "fx.grad(loss, argnums=argnums)"
    batched = "[fx.tensor(x, dtype=DT) for x in draw({s}, {seed}, {r}, 2, 1, in_axes)]"
    lines = {
        "eager": ["print(values(*xs))  # NumPy float64 disagrees"],
        "grad": [f"print({grad}(*xs))  # torch.autograd disagrees"],
        "backward": [
            "leaves = [fx.tensor(x.numpy(), requires_grad=True) for x in xs]",
            "loss(*leaves).backward()",
            "print([x.grad for x in leaves])  # torch.autograd disagrees",
        ],
        "jvp": [
            "ts = [fx.tensor(x, dtype=DT) for x in draw({s}, {seed}, {r}, salt=7)]",
            "print(fx.jvp(loss, tuple(xs), tuple(ts))[1])",
            f"print(sum(fx.sum(g * t) for g, t in zip({grad}(*xs), ts)))",
        ],
        "vmap": [
            f"xb = {batched}",
            f"print(fx.vmap({grad}, in_axes=in_axes)(*xb))",
            "print([{grad}(*(x if a is None else fx.take(x, b, axis=a) for x, a in zip(xb, in_axes)))"
            " for b in range(2)])".replace("{grad}", grad),
        ],
        "jit": ["print(fx.jit(values)(*xs))", "print(values(*xs))"],
        "grad_of_jit": [f"print(fx.grad(fx.jit(loss), argnums=argnums)(*xs), {grad}(*xs))"],
        "backward_of_jit": [
            "leaves = [fx.tensor(x.numpy(), requires_grad=True) for x in xs]",
            "fx.jit(loss)(*leaves).backward()",
            "print([x.grad for x in leaves])  # torch.autograd disagrees",
        ],
        "jvp_of_jit": [
            "ts = [fx.tensor(x, dtype=DT) for x in draw({s}, {seed}, {r}, salt=7)]",
            "print(fx.jvp(fx.jit(loss), tuple(xs), tuple(ts)), fx.jvp(loss, tuple(xs), tuple(ts)))",
        ],
        "vmap_of_jit": [
            f"xb = {batched}",
            f"print(fx.vmap(fx.jit({grad}), in_axes=in_axes)(*xb), fx.vmap({grad}, in_axes=in_axes)(*xb))",
        ],
        "jit_grad": [
            f"compiled = fx.jit({grad})",
            f"print(compiled(*xs), {grad}(*xs))",
            "xs = [fx.tensor(x, dtype=DT) for x in draw({s}, {seed}, {r}, salt=3)]",
            "xs = [x if x.ndim == 0 else fx.repeat(x, 2, axis=-1)[..., ::2] for x in xs]  # strided views",
            f"print(compiled(*xs), {grad}(*xs))",
        ],
        "jit_vmap_grad": [
            f"xb = {batched}",
            f"compiled = fx.jit(fx.vmap({grad}, in_axes=in_axes))",
            f"print(compiled(*xb), fx.vmap({grad}, in_axes=in_axes)(*xb))",
            "xb = [fx.tensor(x, dtype=DT) for x in draw({s}, {seed}, {r}, 3, 2, in_axes)]  # a retrace",
            f"print(compiled(*xb), fx.vmap({grad}, in_axes=in_axes)(*xb))",
        ],
    }[what]
    return dtype, lines, on


def repro(name: str, program: Program) -> str:
    dtype, lines, on = repro_lines(name)
    fill = {"s": program.shapes, "seed": program.seed, "r": program.rounded}
    lines = [f"in_axes = {vmap_axes(program)}"] + [line.format(**fill) for line in lines]
    return script(program, dtype, lines, on)


def check_program(
    program: Program,
    names=None,
    shrink_budget: int = 300,
    worst: dict | None = None,
    exact: dict | None = None,
    flips: dict | None = None,
) -> list[Failure]:
    """Every check of ``names`` (all by default) on ``program``; each failure shrunk to a
    smallest program failing the same check, with its runnable repro. ``worst`` collects
    the largest relative difference seen by each check that passed, ``exact`` how many of
    its results were bit-identical to what they were compared with, ``flips`` how many
    passed as float32 decisions taken the other way (see ``run_check``)."""
    from tests.fuzz.program import shrink

    ctx = Context(program)
    failures = []
    for name in names or CHECKS:
        message = run_check(name, program, ctx)
        if message is None and name in ctx.memo("flips", list):
            if flips is not None:
                flips[name] = flips.get(name, 0) + 1
            continue
        if message is None:
            diff = ctx.memo(("worst", name), lambda: 0.0)
            if worst is not None:
                worst[name] = max(worst.get(name, 0.0), diff)
            if exact is not None:
                exact[name] = exact.get(name, 0) + (diff == 0.0)
            continue
        small = shrink(program, lambda p, name=name: run_check(name, p) is not None, shrink_budget)
        failures.append(Failure(name, run_check(name, small) or message, small, repro(name, small)))
    return failures
