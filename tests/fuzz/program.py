"""Random straight-line programs: one description, run by fluxion, NumPy and PyTorch.

A ``Program`` is its inputs' shapes, a seed for their values, and a list of ops, each
``(op name, input value ids, params)``; value ``i`` is input ``i``, then op ``j`` makes
value ``len(shapes) + j``. Its ``outputs`` are the values nothing reads, and its loss is
``sum_k sum(output_k * weight_k)`` with fixed weights, so that every value takes part in
the gradient. ``source`` prints it as fluxion code (that code is what runs under fluxion),
``run_numpy`` and ``run_torch`` interpret the same list with the oracles of ``ops.py``.
"""

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch

from tests.fuzz.ops import OPS, OPS_BY_NAME

# A value larger than this, or not finite, and the op that made it is drawn again: the
# programs stay where float32 still has digits to compare.
MAX_ABS = 1e3


@dataclass(frozen=True)
class Program:
    shapes: tuple  # of the inputs
    seed: int
    ops: tuple  # ((name, input ids, params), ...)
    outputs: tuple  # value ids
    rounded: bool = False  # input values rounded to one decimal (the shrinker's simplest)

    def arity(self) -> int:
        return len(self.shapes)


# The helpers the programs need, as source: run here, and printed into every repro script.
HELPERS = """\
def weight(shape, k):
    \"\"\"The loss's fixed weight for output ``k``: no two elements alike, none zero.\"\"\"
    return np.cos(1.3 * np.arange(math.prod(shape)) + k).reshape(shape) + 0.25


def draw(shapes, seed, rounded, batch=None, salt=0, in_axes=None):
    \"\"\"The float64 inputs; with ``batch``, each batched along its axis of ``in_axes``
    (None: not batched; all along 0 by default).\"\"\"
    out = []
    for i, shape in enumerate(shapes):
        axis = None if batch is None else 0 if in_axes is None else in_axes[i]
        rng = np.random.default_rng([seed, salt, i])
        x = rng.standard_normal(shape) if axis is None else np.moveaxis(rng.standard_normal((batch, *shape)), 0, axis)
        out.append(np.round(x, 1) if rounded else x)
    return out
"""
_helpers = {"np": np, "math": math}
exec(HELPERS, _helpers)
weight, draw = _helpers["weight"], _helpers["draw"]


def inputs(
    program: Program, batch: int | None = None, salt: int = 0, in_axes=None
) -> list[np.ndarray]:
    """The program's float64 inputs (see ``draw``)."""
    return draw(program.shapes, program.seed, program.rounded, batch, salt, in_axes)


def vmap_axes(program: Program) -> tuple:
    """The ``in_axes`` its batched gradient is checked with: 0, -1 or None, one batched at least."""
    rng = np.random.default_rng([program.seed, 99])
    axes = [[0, 0, -1, None][int(rng.integers(0, 4))] for _ in program.shapes]
    return tuple(axes) if any(a is not None for a in axes) else (0, *axes[1:])


def _call(op, args, params):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's var of no elements
        return op.np_fn(*args, **params)


def run_numpy(program: Program, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Every value of the program in float64 NumPy."""
    vals = list(xs)
    for name, ids, params in program.ops:
        vals.append(
            np.asarray(_call(OPS_BY_NAME[name], [vals[i] for i in ids], params), dtype=np.float64)
        )
    return vals


def numpy_loss(program: Program, vals) -> float:
    return float(
        sum(np.sum(vals[v] * weight(vals[v].shape, k)) for k, v in enumerate(program.outputs))
    )


def run_torch(program: Program, xs: list[torch.Tensor]) -> torch.Tensor:
    """The program's loss in PyTorch, from leaves ``xs``."""
    vals = list(xs)
    for name, ids, params in program.ops:
        vals.append(OPS_BY_NAME[name].torch_fn(*[vals[i] for i in ids], **params))
    loss = torch.zeros((), dtype=torch.float64)
    for k, v in enumerate(program.outputs):
        w = torch.as_tensor(weight(tuple(vals[v].shape), k))
        loss = loss + torch.sum(vals[v] * w)
    return loss


def torch_grads(program: Program, xs: list[np.ndarray]) -> list[torch.Tensor]:
    """The loss's gradient by torch.autograd (zeros where an input is not reached)."""
    leaves = [torch.tensor(x, requires_grad=True) for x in xs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's about degrees of freedom
        run_torch(program, leaves).backward()
    return [torch.zeros_like(t) if t.grad is None else t.grad for t in leaves]


def valid(program: Program) -> bool:
    """Whether NumPy and PyTorch both run it to finite values of moderate size, and
    torch's gradient is finite (not so at a std of zero spread, where fluxion's is 0)."""
    try:
        vals = run_numpy(program, inputs(program))
        grads = torch_grads(program, inputs(program))
    except (ValueError, IndexError, TypeError, RuntimeError):
        return False
    values_ok = all(np.all(np.isfinite(v)) and np.all(np.abs(v) <= MAX_ABS) for v in vals)
    return values_ok and all(bool(torch.all(torch.isfinite(g))) for g in grads)


# --------------------------------------------------------------------------- printing


def source(program: Program) -> str:
    """The program as fluxion code: ``values(x0, ...)`` returns its outputs, ``loss`` its
    loss; ``DT`` is the dtype of the loss's weights (that of the inputs)."""
    n = program.arity()
    args = ", ".join(f"x{i}" for i in range(n))
    name = [f"x{i}" for i in range(n)] + [f"v{n + j}" for j in range(len(program.ops))]
    lines = [f"def values({args}):"]
    for j, (op_name, ids, params) in enumerate(program.ops):
        op = OPS_BY_NAME[op_name]
        code = op.template.format(**dict(zip("abcd", (name[i] for i in ids))), **params)
        lines.append(f"    {name[n + j]} = {code}")
    lines.append(f"    return ({', '.join(name[v] for v in program.outputs)},)")
    lines.append("")
    lines.append("")
    lines.append(f"def loss({args}):")
    outs = ", ".join(name[v] for v in program.outputs)
    lines.append(f"    ({outs},) = values({args})")
    terms = " + ".join(
        f"fx.sum({name[v]} * fx.tensor(weight({name[v]}.shape, {k}), dtype=DT))"
        for k, v in enumerate(program.outputs)
    )
    lines.append(f"    return {terms}")
    return "\n".join(lines) + "\n"


PRELUDE = (
    """\
import math

import numpy as np

import fluxion as fx


"""
    + HELPERS
)


def script(program: Program, dtype: str, lines: list[str], native: bool | None = None) -> str:
    """A runnable Python file: the program, its inputs, then ``lines`` (the failed check)."""
    head = ""
    if native is not None:  # the native kernels are chosen when fluxion compiles
        head = f'import os\n\nos.environ["FLUXION_NATIVE_KERNELS"] = "{int(native)}"\n'
    return (
        head
        + PRELUDE
        + f"\nDT = fx.{dtype}\n\n\n"
        + source(program)
        + f"\n\nxs = [fx.tensor(x, dtype=DT) for x in draw({program.shapes}, {program.seed}, {program.rounded})]\n"
        + f"argnums = {tuple(range(program.arity()))}\n"
        + "\n".join(lines)
        + "\n"
    )


def namespace(dtype) -> dict:
    """What the printed code needs, for ``exec``."""
    import fluxion as fx

    return {"fx": fx, "np": np, "math": math, "weight": weight, "DT": getattr(fx, dtype)}


def compiled(program: Program, dtype: str):
    """``(values, loss)``: the program's fluxion functions, compiled from its printed source."""
    ns = namespace(dtype)
    exec(compile(source(program), "<fuzz program>", "exec"), ns)
    return ns["values"], ns["loss"]


# --------------------------------------------------------------------------- drawing


def _shape(rng, big: bool) -> tuple:
    if big:
        return [(64, 80), (5000,), (2, 40, 60), (72, 72)][int(rng.integers(0, 4))]
    ndim = int(rng.choice([0, 1, 2, 2, 3, 3, 4]))
    return tuple(
        int(rng.choice([0, 1, 2, 3, 4, 5], p=[0.04, 0.2, 0.26, 0.22, 0.16, 0.12]))
        for _ in range(ndim)
    )


def _variant(rng, base):
    """``base`` with leading axes dropped and some of its axes made 1: it broadcasts."""
    shape = base[int(rng.integers(0, len(base) + 1)) :] if rng.random() < 0.4 else base
    return tuple(1 if rng.random() < 0.2 else d for d in shape)


def generate(seed: int, n_ops: int | None = None) -> Program:
    """A random valid program of 10-40 ops (``n_ops`` if given) from ``seed`` (drawn again,
    from the seed and a count, until its gradient is finite too)."""
    for attempt in range(100):
        program = _draw(seed, attempt, n_ops)
        if valid(program):
            return program
    raise RuntimeError(f"no valid program from seed {seed}")


def _draw(seed: int, attempt: int, n_ops: int | None) -> Program:
    rng = np.random.default_rng([seed, attempt])
    n_ops = int(rng.integers(10, 41)) if n_ops is None else n_ops
    big = rng.random() < 0.08
    max_size = 30_000 if big else 400
    base = _shape(rng, big)
    shapes = tuple([base] + [_variant(rng, base) for _ in range(int(rng.integers(0, 3)))])
    program = Program(shapes, seed, (), ())
    vals = run_numpy(program, inputs(program))
    tvals = [torch.as_tensor(x) for x in inputs(program)]
    ops: list = []
    for _ in range(n_ops * 40):
        if len(ops) == n_ops:
            break
        op = OPS[int(rng.integers(0, len(OPS)))]
        recent = max(len(vals) - 5, 0)
        for _ in range(8 if op.arity > 1 else 1):  # operands that fit each other are rarer
            ids = tuple(
                int(rng.integers(recent, len(vals)))
                if rng.random() < 0.7
                else int(rng.integers(0, len(vals)))
                for _ in range(op.arity)
            )
            params = op.params(rng, *(vals[i].shape for i in ids))
            if params is not None:
                break
        if params is None:
            continue
        try:
            out = np.asarray(_call(op, [vals[i] for i in ids], params), dtype=np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's about degrees of freedom
                tout = op.torch_fn(*[tvals[i] for i in ids], **params)
        except (ValueError, IndexError, TypeError, RuntimeError):
            continue
        if tuple(tout.shape) != out.shape or out.size > max_size:
            continue
        if not np.all(np.isfinite(out)) or np.any(np.abs(out) > MAX_ABS):
            continue
        if not np.allclose(tout.numpy(), out, rtol=1e-9, atol=1e-9):
            continue  # the oracles disagree: a case neither decides (not seen so far)
        ops.append((op.name, ids, params))
        vals.append(out)
        tvals.append(tout)
    read = {i for _, ids, _ in ops for i in ids}
    outputs = tuple(v for v in range(len(shapes), len(vals)) if v not in read) or (len(vals) - 1,)
    return replace(program, ops=tuple(ops), outputs=outputs)


# --------------------------------------------------------------------------- shrinking


def _pruned(program: Program) -> Program:
    """Without the ops that no output needs, and the inputs nothing reads, renumbered."""
    n = program.arity()
    needed = set(program.outputs)
    for j in range(len(program.ops) - 1, -1, -1):
        if n + j in needed:
            needed.update(program.ops[j][1])
    keep_in = [i for i in range(n) if i in needed] or [0]
    keep_ops = [j for j in range(len(program.ops)) if n + j in needed]
    renum = {old: new for new, old in enumerate(keep_in + [n + j for j in keep_ops])}
    ops = tuple(
        (name, tuple(renum[i] for i in ids), params)
        for name, ids, params in (program.ops[j] for j in keep_ops)
    )
    shapes = tuple(program.shapes[i] for i in keep_in)
    return replace(
        program, shapes=shapes, ops=ops, outputs=tuple(renum[v] for v in program.outputs)
    )


def _without_op(program: Program, j: int) -> Program | None:
    """Op ``j`` removed, its readers reading its first input of the same shape instead."""
    n = program.arity()
    name, ids, params = program.ops[j]
    vals = run_numpy(program, inputs(program))
    same = [i for i in ids if vals[i].shape == vals[n + j].shape]
    if not same:
        return None
    sub = same[0]

    def moved(i):
        i = sub if i == n + j else i
        return i - 1 if i > n + j else i

    ops = tuple(
        (nm, tuple(moved(i) for i in ii), pp)
        for k, (nm, ii, pp) in enumerate(program.ops)
        if k != j
    )
    outputs = tuple(dict.fromkeys(moved(v) for v in program.outputs))
    return replace(program, ops=ops, outputs=outputs)


def candidates(program: Program):
    """Smaller programs, the likeliest to keep a failure first."""
    yield from (_without_op(program, j) for j in range(len(program.ops) - 1, -1, -1))
    if len(program.outputs) > 1:
        for v in program.outputs:
            yield replace(program, outputs=(v,))
    for j in range(len(program.ops)):
        yield replace(program, outputs=(program.arity() + j,))
    for i, shape in enumerate(program.shapes):
        for d, size in enumerate(shape):
            for new in (
                shape[:d] + shape[d + 1 :],
                shape[:d] + (1,) + shape[d + 1 :],
                shape[:d] + (size - 1,) + shape[d + 1 :],
            ):
                if new != shape and all(x >= 0 for x in new):
                    yield replace(
                        program, shapes=program.shapes[:i] + (new,) + program.shapes[i + 1 :]
                    )
    if not program.rounded:
        yield replace(program, rounded=True)


def size(program: Program) -> tuple:
    return (
        len(program.ops),
        sum(math.prod(s) for s in program.shapes),
        len(program.outputs),
        not program.rounded,
    )


def shrink(program: Program, fails, budget: int = 300) -> Program:
    """The smallest program found, by greedy delta debugging, on which ``fails`` (a
    predicate) still holds: drop ops, outputs and inputs, shrink shapes, round values."""
    tries = 0
    improved = True
    while improved and tries < budget:
        improved = False
        for cand in candidates(program):
            if cand is None:
                continue
            cand = _pruned(cand)
            if size(cand) >= size(program) or not valid(cand):
                continue
            tries += 1
            if fails(cand):
                program, improved = cand, True
                break
            if tries >= budget:
                break
    return program
