"""Native kernels: each fused group of a compiled graph (and each large single elementwise
op, and each stack of small matmuls) becomes one C loop; ``toolchain.py`` builds a compiled
function's loops with the system's C compiler into one shared library, keeps it in a cache
on disk, and loads it. The loops are plain C: Python's headers would take gcc longer
to read than the loops take to compile. Python runs them through ``_call.c``'s ``call``,
the one extension module, the same for every kernel (pip builds it at install).

A group of ten elementwise ops costs NumPy ten passes over memory and ten calls; in C it is
one pass that keeps every intermediate in a register. Measured on an exact GELU (erf, 7 ops):
1.7 ms for (32,128,1024) float32 against 30 ms for NumPy's passes, 0.016 ms against 0.16 ms
for (150,8,32). The op of each equation comes from its primitive's ``c_expr``; C's
``<tgmath.h>`` picks the float32 or float64 function, and glibc's vector math library
(libmvec) lets the compiler vectorize exp, log, tanh... as NumPy does.

    static void k0_loop(const float *restrict a0, const float *restrict a1, float *restrict o0,
                        int64_t begin, int64_t end) {
        for (long i0 = begin; i0 < end; i0++) {
            for (long i1 = 0; i1 < 32; i1++) {
                float r0 = a0[i0 * 32 + i1];
                float r1 = a1[i1];
                float v0 = (r0 + r1);
                o0[i0 * 32 + i1] = v0;
            }
        }
    }
    void k0(void *const *data, int64_t begin, int64_t end) { k0_loop(data[0], ..., begin, end); }
    const int64_t k0_split[2] = {2400, 2};

A kernel large enough to gain from a second thread (here 76,800 elements, two
``threads.KERNEL_GRAIN``) runs ``begin`` to ``end`` of its outermost loop along which no sum of
the group runs, so each thread writes its own elements and every sum adds in one thread in
one order: the bits are the same on any number of threads. ``k0_split`` is that loop's
length (in blocks of ``BLOCK`` elements where it is the innermost loop, the vectorized one)
and the most ranges its work gains from; ``_call.c`` cuts it into ranges for at most
``fx.get_num_threads()`` threads. Smaller kernels, and sums over every loop (a full sum),
keep their loops' bounds (``k0_split`` 1, 1) and run on the calling thread.

A sum in a group accumulates in the same pass (row sums in a register, column sums into
their output). A kernel reads its inputs through the views that make them (transposes,
slices, reshapes, broadcasts: attention's heads are slices and transposes of one
projection) at strides fixed when it is built, and writes an output transposed where only
a transpose reads it, so no view is copied on the way in or out. A group goes native when every op has a ``c_expr`` (or is such a sum) and
every value a C type (float16 and bfloat16 stay on NumPy). Without a C compiler, or when
building, storing or loading fails, the groups run on NumPy and one warning says why. ``FLUXION_NATIVE_KERNELS=0`` keeps them on NumPy (for comparisons).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from fluxion.backends import threads
from fluxion.compiler import toolchain
from fluxion.compiler.fusion import as_group, fused_p
from fluxion.compiler.passes import dead_code
from fluxion.core.dtypes import is_float
from fluxion.core.ir import Eqn, Graph, Literal, Var, typecheck
from fluxion.ops import primitives as P
from fluxion.ops.primitives import (
    _ERF_P,
    _ERF_Q,
    broadcast_to_p,
    convert_p,
    matmul_p,
    reduce_sum_p,
    reshape_p,
    slice_p,
    transpose_p,
)

C_TYPES = {
    np.dtype(np.bool_): "_Bool",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.uint32): "uint32_t",
    np.dtype(np.int8): "int8_t",
    np.dtype(np.int16): "int16_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.int64): "int64_t",
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
}

# functions glibc's libmvec has in vector form (tanh, log1p, expm1 since glibc 2.35); erf is
# not among them on purpose: float32 erf is our fit, and float64 erf stays libm's scalar one,
# which eager float64 erf (math.erf) calls, so the two agree to the last bit
_VECTOR_MATH = ["exp", "log", "log1p", "expm1", "sin", "cos", "tanh"]


@functools.cache
def _prelude() -> str:
    declarations = [
        f"FX_SIMD {c_type} {name}{suffix}({c_type});"
        for name in _VECTOR_MATH
        for c_type, suffix in (("float", "f"), ("double", ""))
    ]

    def horner(name, coefficients):  # the order of _erf_impl's NumPy passes, bit for bit
        lines = [f"    float {name} = z2 * {_c_literal(coefficients[0], np.float32)};"]
        for c in coefficients[1:-1]:
            lines.append(f"    {name} += {_c_literal(c, np.float32)}; {name} *= z2;")
        lines.append(f"    {name} += {_c_literal(coefficients[-1], np.float32)};")
        return lines

    # libmvec's exp takes a scalar path for a whole vector when a lane is below its range: a
    # causal mask's -inf made softmax's exp 7x slower. There the exponent is raised by an
    # exact addition and the result scaled back down (its subnormals kept; below ``floor``
    # it rounds to 0 anyway). Arithmetic, not branches: gcc splits a call fed by a select
    # into one call per branch. Costs 2x on inputs in range, saves 2-4x on masked ones.
    def exp_in_range(dtype, low, floor, shift):
        c_type, lit = C_TYPES[np.dtype(dtype)], functools.partial(_c_literal, dtype=dtype)
        return [
            f"static inline {c_type} fx_exp_{c_type}({c_type} x) {{",
            f"    {c_type} z = x < {lit(floor)} ? {lit(floor)} : x;  /* a NaN stays */",
            f"    {c_type} t = {lit(low)} - z;",
            f"    t = (t > 0 ? t : 0) * {lit(np.finfo(dtype).max / 4)};",
            f"    {c_type} below = t < 1 ? t : 1;  /* 1 below the range, else 0 */",
            f"    {c_type} y = exp(z + {lit(shift)} * below);",
            f"    return y * (below * {lit(np.exp(dtype(-shift)))} + (1 - below));",
            "}",
        ]

    return "\n".join(
        [
            "#include <stdint.h>",
            "#include <math.h>",
            '#define FX_SIMD _Pragma("omp declare simd notinbranch")',
            *declarations,
            "#include <tgmath.h>",
            "",
            "static inline float fx_erf_f32(float x) {",
            "    float z = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x;",
            "    float z2 = z * z;",
            *horner("p", _ERF_P),
            *horner("q", _ERF_Q),
            "    p *= z;",
            "    return p / q;",
            "}",
            "#define fx_erf(x) _Generic((x), float: fx_erf_f32, double: erf)(x)",
            "",
            *exp_in_range(np.float32, -87.0, -104.0, 40.0),  # exp(-104) < 2**-150: 0
            *exp_in_range(np.float64, -708.0, -746.0, 100.0),  # exp(-746) < 2**-1075: 0
            "#define fx_exp(x) _Generic((x), float: fx_exp_float, double: fx_exp_double)(x)",
        ]
    )


def _c_literal(value, dtype) -> str:
    dtype = np.dtype(dtype)
    c_type = C_TYPES[dtype]
    if dtype.kind == "f":
        x = float(value)
        if math.isnan(x):
            return f"(({c_type})NAN)"
        if math.isinf(x):
            return f"(({c_type}){'-' if x < 0 else ''}INFINITY)"
        x = float(np.asarray(value, dtype=dtype))  # rounded to the dtype, then exact in hex
        return f"(({c_type}){x.hex()})"
    if dtype.kind == "b":
        return "1" if value else "0"
    bits = int(value) & ((1 << (8 * dtype.itemsize)) - 1)  # two's complement, read back by the cast
    return f"(({c_type}){bits:#x}ULL)"


def supported(graph: Graph) -> bool:
    """Whether every op and dtype of a fused group has a C form: elementwise ops with a
    ``c_expr``, sums, views, matmuls (its sums' axes and its matmuls' sizes aside)."""
    values = list(graph.invars) + [v for e in graph.eqns for v in e.inputs + e.outputs]
    return all(
        e.prim.c_expr is not None or e.prim in _VIEWS or e.prim in (reduce_sum_p, matmul_p)
        for e in graph.eqns
    ) and all(np.dtype(v.aval.dtype) in C_TYPES for v in values)


# A kernel reads its inputs through these (and writes an output through a transpose): the
# array the view is of, at the view's strides, fixed when the kernel is made. A view would
# otherwise be copied whole to enter the kernel.
_VIEWS = (transpose_p, reshape_p, slice_p, broadcast_to_p)


def _c_strides(shape) -> tuple:
    return tuple(math.prod(shape[d + 1 :]) for d in range(len(shape)))


def _view_layout(layout: tuple, eqn, size: int) -> tuple | None:
    """``(offset, strides)`` in elements of a view ``eqn`` of an array laid out as ``layout``
    in ``size`` contiguous elements; None where the view would copy (a reshape of strided
    elements). The primitive's own NumPy impl, run on a stand-in, says where it points."""
    offset, strides = layout
    memory = np.empty(size, np.uint8)  # one byte per element: byte offsets are element offsets
    x = np.lib.stride_tricks.as_strided(memory[offset:], eqn.inputs[0].aval.shape, strides)
    y = eqn.prim.impl(np, x, **eqn.params)
    if not np.may_share_memory(y, memory):
        return None
    return y.ctypes.data - memory.ctypes.data, y.strides


def _memory(graph: Graph) -> dict:
    """Where each value of a group read from memory lives: ``(input index, offset,
    strides)`` for the group's inputs and the views of them."""
    layouts = {id(v): (j, 0, _c_strides(v.aval.shape)) for j, v in enumerate(graph.invars)}
    for eqn in graph.eqns:
        x = eqn.inputs[0]
        if eqn.prim in _VIEWS and id(x) in layouts:
            j, offset, strides = layouts[id(x)]
            size = math.prod(graph.invars[j].aval.shape)
            layout = _view_layout((offset, strides), eqn, size)
            if layout is not None:
                layouts[id(eqn.outputs[0])] = (j, *layout)
    return layouts


def _loops(shape: tuple, rows: list[tuple]):
    """The loop nest over ``shape``: its length-1 axes dropped, and neighbours merged where
    every row of element strides (one per array read or written, 0 where it repeats) steps
    across the two as across one axis; returns the loop lengths and each row's strides
    along them."""
    runs: list[list[int]] = []  # the axes each loop covers
    for d in (d for d, n in enumerate(shape) if n != 1):
        if runs and all(row[runs[-1][-1]] == row[d] * shape[d] for row in rows):
            runs[-1].append(d)
        else:
            runs.append([d])
    lengths = [math.prod(shape[d] for d in run) for run in runs]
    return lengths, [[row[run[-1]] for run in runs] for row in rows]


def _broadcast_row(shape: tuple, value_shape: tuple, strides: tuple) -> tuple:
    """A value's strides along the axes of ``shape`` it is broadcast to (0 where it repeats)."""
    lead = len(shape) - len(value_shape)
    return (0,) * lead + tuple(0 if n == 1 else s for n, s in zip(value_shape, strides))


def _broadcasts_to(value_shape: tuple, shape: tuple) -> bool:
    trailing = zip(reversed(value_shape), reversed(shape))
    return len(value_shape) <= len(shape) and all(n in (1, m) for n, m in trailing)


def _index(loops, row, offset=0) -> str:
    terms = [f"{i} * {s}" if s != 1 else i for (i, _), s in zip(loops, row) if s]
    return " + ".join(terms + [str(offset)] * bool(offset)) or "0"


def _stored(dtype) -> str:
    """The C type an array's elements are read and written as: bools as bytes (NumPy's 0 and
    1), since gcc does not vectorize loads of _Bool; values in registers stay _Bool."""
    return "uint8_t" if np.dtype(dtype) == np.dtype(np.bool_) else C_TYPES[np.dtype(dtype)]


def _c_function(name: str, ins: list, outs: list, body: list[str], split=(1, 1)) -> str:
    """A kernel's C: ``{name}_loop(a0.., o0.., begin, end)`` running ``body`` over typed
    pointers, ``{name}(data, begin, end)`` calling it with the arrays' data, inputs first,
    and ``{name}_split``: the length of the loop ``body`` runs from ``begin`` to ``end`` and
    the most ranges to cut it into (``_split``; 1, 1 where it runs whole)."""
    pointers = [f"const {_stored(a.dtype)} *restrict a{j}" for j, a in enumerate(ins)]
    pointers += [f"{_stored(a.dtype)} *restrict o{j}" for j, a in enumerate(outs)]
    data = ", ".join(f"data[{j}]" for j in range(len(ins) + len(outs)))
    return "\n".join(
        [f"static void {name}_loop({', '.join(pointers + ['int64_t begin', 'int64_t end'])}) {{"]
        + [*body, "}"]
        + [f"void {name}(void *const *data, int64_t begin, int64_t end) {{"]
        + [f"    {name}_loop({data}, begin, end);", "}"]
        + [f"const int64_t {name}_split[2] = {{{split[0]}, {split[1]}}};"]
    )


# A kernel cut along its innermost loop is cut between blocks of this many elements, each
# run by the same vectorized loop whichever thread runs it: cut anywhere, a range's first
# and last elements would fall in the loop's scalar tail (1 ulp off, in exp or tanh) where
# one thread would run them in a vector.
BLOCK = 256


def _splitting(loops, index, block: int, work: int):
    """``(index, block)``: the loop ``index`` is cut into ranges of whole blocks of
    ``block`` elements; None where no loop may be cut (``index`` None) or ``work`` gains
    from no second thread: the loops then keep the bounds known when compiling (gcc takes
    ~25% longer over loops of unknown length)."""
    split = None if index is None else (index, block)
    return split if split and _split(loops, split, work)[1] > 1 else None


def _split(loops, split, work: int) -> tuple[int, int]:
    """How a kernel cuts its loops among threads (``_splitting``): the number of blocks of
    the loop cut, and the most ranges its ``work`` (elements, or multiply-adds) gains from,
    one range per ``threads.KERNEL_GRAIN`` of it."""
    if split is None:
        return 1, 1
    index, block = split
    length = -(-dict(loops)[index] // block)
    return length, max(1, min(length, work // threads.KERNEL_GRAIN))


def _nest(loops, body, before=None, after=None, pragma=None, split=None) -> list[str]:
    """``body`` inside ``for`` loops over ``(index, length)``, outermost first, the blocks of
    the loop ``split`` names (``_splitting``) from ``begin`` to ``end``; ``before`` and
    ``after`` (depth -> lines) go just before and after the loop at that depth, ``pragma``
    on the innermost loop."""
    before, after = before or {}, after or {}
    lines, closing = [], []
    for d, (i, n) in enumerate(loops):
        pad = "    " * (d + 1)
        lines += [pad + line for line in before.get(d, [])]
        start, stop = 0, n
        if split and i == split[0] and split[1] == 1:
            start, stop = "begin", "end"
        elif split and i == split[0]:
            block = split[1]
            lines.append(f"{pad}for (long {i}_block = begin; {i}_block < end; {i}_block++) {{")
            lines.append(f"{pad}    long {i}_end = {i}_block * {block} + {block};")
            lines.append(f"{pad}    if ({i}_end > {n}) {i}_end = {n};")
            start, stop = f"{i}_block * {block}", f"{i}_end"
            pad += "    "
            closing.append(d)
        if pragma and d == len(loops) - 1:
            lines.append(f"{pad}#pragma {pragma}")
        lines.append(f"{pad}for (long {i} = {start}; {i} < {stop}; {i}++) {{")
    lines += ["    " * (len(loops) + len(closing) + 1) + line for line in body]
    for d in reversed(range(len(loops))):
        pad = "    " * (d + 1)
        if d in closing:
            lines.append(f"{pad}    }}")
        lines.append(f"{pad}}}")
        lines += [pad + line for line in after.get(d, [])]
    return lines


def group_source(graph: Graph, name: str) -> str | None:
    """The C of one fused group: one pass over its shape, every value in a register, each
    input read where the group's views of it point, an output transposed where the group
    transposes it. A sum in the group accumulates in the same pass: a row sum (its axes the
    innermost loops) in a register, a column sum (the outermost loops) into its output.
    None for a sum over axes in between, or a view the loop cannot read at fixed strides."""
    memory = _memory(graph)
    read = {id(v) for e in graph.eqns for v in e.inputs}
    outputs = {id(v) for v in graph.outvars}
    # an output only a transpose makes is written transposed, even where what it
    # transposes is itself a view of an input (not read through that view)
    transposed = {
        id(e.outputs[0])
        for e in graph.eqns
        if e.prim is transpose_p and id(e.outputs[0]) in outputs and id(e.outputs[0]) not in read
    }
    for v in transposed:
        memory.pop(v, None)

    def is_view(eqn):  # of an input: read where it is used
        return (
            eqn.prim in _VIEWS
            and id(eqn.inputs[0]) in memory
            and id(eqn.outputs[0]) not in transposed
        )

    # the group's shape: its first computed value's (a sum's operand's), or its output's
    first = next((e for e in graph.eqns if not is_view(e)), None)
    shape = tuple(
        graph.outvars[0].aval.shape
        if first is None
        else (first.inputs[0] if first.prim is reduce_sum_p else first.outputs[0]).aval.shape
    )
    loads = {}  # (input, offset, strides along the group's axes) -> the C value it loads into
    stores = {id(v): _c_strides(shape) for v in graph.outvars}
    for eqn in graph.eqns:
        (out, *_), x = eqn.outputs, eqn.inputs[0]
        if is_view(eqn):
            if id(out) not in memory:
                return None
            continue
        if id(out) in transposed:
            inverse = np.argsort(eqn.params["perm"])
            stores[id(out)] = tuple(_c_strides(out.aval.shape)[p] for p in inverse)
            continue
        if eqn.prim is reduce_sum_p:
            kept = iter(_c_strides(out.aval.shape))
            axes = eqn.params["axes"]
            stores[id(out)] = tuple(0 if d in axes else next(kept) for d in range(len(shape)))
        elif eqn.prim.c_expr is None:
            return None
    sums = {id(e.outputs[0]) for e in graph.eqns if e.prim is reduce_sum_p}
    if any(v.aval.shape != shape for v in graph.outvars if id(v) not in transposed | sums):
        return None  # the loop writes its plain outputs in its own order
    computed = [e for e in graph.eqns if e.prim.c_expr or e.prim is reduce_sum_p]
    for v in [v for e in computed if not is_view(e) for v in e.inputs] + list(graph.outvars):
        if id(v) in memory and id(v) not in transposed:
            if not _broadcasts_to(v.aval.shape, shape):
                return None  # the loop reads it along its own axes
            j, offset, strides = memory[id(v)]
            loads.setdefault(
                (j, offset, _broadcast_row(shape, v.aval.shape, strides)), f"r{len(loads)}"
            )
    lengths, rows = _loops(shape, [row for _, _, row in loads] + list(stores.values()))
    loops = [(f"i{k}", n) for k, n in enumerate(lengths)]
    n_loops = len(loops)
    load_rows, store_rows = dict(zip(loads, rows)), dict(zip(stores, rows[len(loads) :]))
    out_index = {id(v): j for j, v in enumerate(graph.outvars)}
    # the loop cut among threads: the outermost one no sum runs along, so that each thread
    # writes its own elements and every sum adds in one thread, in the order of one
    sum_rows = [store_rows[v] for v in sums if v in store_rows]
    cut = next((i for k, (i, _) in enumerate(loops) if all(r[k] for r in sum_rows)), None)
    vectorized = loops and cut == loops[-1][0]
    split = _splitting(loops, cut, BLOCK if vectorized else 1, math.prod(shape))
    names: dict[int, str] = {}
    body, before, after, row_sums, loaded, zeroed = [], {}, {}, [], set(), []

    def value(v) -> str:
        if isinstance(v, Literal):
            return _c_literal(v.value, v.aval.dtype)
        if id(v) not in memory:
            return names[id(v)]
        j, offset, strides = memory[id(v)]
        key = (j, offset, _broadcast_row(shape, v.aval.shape, strides))
        if key not in loaded:  # loaded where first used
            loaded.add(key)
            c_type = C_TYPES[np.dtype(v.aval.dtype)]
            body.append(f"{c_type} {loads[key]} = a{j}[{_index(loops, load_rows[key], offset)}];")
        return loads[key]

    for eqn in graph.eqns:
        (out, *_), x = eqn.outputs, eqn.inputs[0]
        c_type = C_TYPES[np.dtype(out.aval.dtype)]
        if is_view(eqn):
            continue
        if eqn.prim is transpose_p:
            names[id(out)] = value(x)
        elif eqn.prim is reduce_sum_p:
            if id(out) not in out_index:
                return None  # a sum read inside its group: the loop has it only at the end
            j, row = out_index[id(out)], store_rows[id(out)]
            reduced = [s == 0 for s in row]
            first = reduced.index(True) if True in reduced else n_loops
            if first == n_loops:  # over length-1 axes only: a copy
                body.append(f"o{j}[{_index(loops, row)}] = {value(x)};")
            elif all(reduced[first:]):  # a row sum: a register per row
                before.setdefault(first, []).append(f"{c_type} s{j} = 0;")
                after.setdefault(first, []).append(f"o{j}[{_index(loops, row)}] = s{j};")
                body.append(f"s{j} += {value(x)};")
                row_sums.append(f"s{j}")
            elif not any(reduced[reduced.index(False) :]):  # a column sum, into its output
                kept = [(loop, s) for loop, s in zip(loops, row) if s]  # a thread's part of it
                zero = [f"o{j}[{_index([loop for loop, _ in kept], [s for _, s in kept])}] = 0;"]
                zeroed += _nest([loop for loop, _ in kept], zero, split=split)
                body.append(f"o{j}[{_index(loops, row)}] += {value(x)};")
            else:
                return None
        else:
            params = {
                k: C_TYPES.get(p, p) if isinstance(p, np.dtype) else p
                for k, p in eqn.params.items()
            }
            args = [value(v) for v in eqn.inputs]
            names[id(out)] = f"v{len(names)}"
            body.append(f"{c_type} {names[id(out)]} = {eqn.prim.c_expr.format(*args, **params)};")
    body += [
        f"o{j}[{_index(loops, store_rows[id(v)])}] = {value(v)};"
        for j, v in enumerate(graph.outvars)
        if id(v) in names or id(v) in memory
    ]
    # the sums' order across a row is free: that is what lets the row's loop vectorize
    pragma = f"omp simd reduction(+:{', '.join(row_sums)})" if row_sums and n_loops else None
    ins, outs = [v.aval for v in graph.invars], [v.aval for v in graph.outvars]
    nest = _nest(loops, body, before, after, pragma, split)
    return _c_function(name, ins, outs, zeroed + nest, _split(loops, split, math.prod(shape)))


# Attention's per-head products at seq 8 and head 8 are a stack of tiny matrices: NumPy calls
# gemm once per matrix. Measured on stacks of 600: 8x8x8 24 us here against NumPy's 45 us,
# 5x5x5 19 against 43; from 11 or 16 on a side NumPy wins (70 us against up to 420 us).
SMALL_MATMUL = 8


def small_matmul(a, b) -> bool:
    """Whether ``a @ b`` (avals) is a stack of small float matrices with the same batch axes."""
    return (
        a.ndim >= 3
        and tuple(a.shape[:-2]) == tuple(b.shape[:-2])
        and np.dtype(a.dtype) in (np.dtype(np.float32), np.dtype(np.float64))
        and max(a.shape[-2:] + b.shape[-1:]) <= SMALL_MATMUL
        and math.prod(a.shape + b.shape[-1:]) > 0
    )


def matmul_source(graph: Graph, name: str) -> str | None:
    """The C of a group holding one small matmul, its operands read through the group's
    views, its product written transposed where the group transposes it; else None."""
    (mm,) = [e for e in graph.eqns if e.prim is matmul_p]
    (a, b), (out,) = mm.inputs, mm.outputs
    memory = _memory(graph)
    if id(a) not in memory or id(b) not in memory or not small_matmul(a.aval, b.aval):
        return None
    (written,) = graph.outvars
    store = _c_strides(out.aval.shape)
    if written is not out:  # the group's last equation transposes the product
        store = tuple(
            _c_strides(written.aval.shape)[p] for p in np.argsort(graph.eqns[-1].params["perm"])
        )
    (ja, offset_a, sa), (jb, offset_b, sb) = memory[id(a)], memory[id(b)]
    lengths, (ra, rb, rz) = _loops(a.aval.shape[:-2], [sa[:-2], sb[:-2], store[:-2]])
    loops = [(f"s{k}", n) for k, n in enumerate(lengths)]
    (m, k), n = a.aval.shape[-2:], b.aval.shape[-1]
    c_type = C_TYPES[np.dtype(a.aval.dtype)]
    body = [
        f"const {c_type} *x = a{ja} + {_index(loops, ra, offset_a)};",
        f"const {c_type} *y = a{jb} + {_index(loops, rb, offset_b)};",
        f"{c_type} *z = o0 + {_index(loops, rz)};",
    ]
    (sy_p, sy_j) = sb[-2:]
    if sy_j != 1:  # the rows of b are strided: gather the matrix first, so the j loop vectorizes
        body += [
            f"{c_type} tile[{k * n}];",
            f"for (long p = 0; p < {k}; p++)",
            f"    for (long j = 0; j < {n}; j++) tile[p * {n} + j] = y[p * {sy_p} + j * {sy_j}];",
            "y = tile;",
        ]
        sy_p = n
    (sx_i, sx_p), (sz_i, sz_j) = sa[-2:], store[-2:]
    body += [  # a row of the product at a time, accumulated in registers over k
        f"for (long i = 0; i < {m}; i++) {{",
        f"    {c_type} row[{n}] = {{0}};",
        f"    for (long p = 0; p < {k}; p++)",
        f"        for (long j = 0; j < {n}; j++) row[j] += x[i * {sx_i} + p * {sx_p}] * y[p * {sy_p} + j];",
        f"    for (long j = 0; j < {n}; j++) z[i * {sz_i} + j * {sz_j}] = row[j];",
        "}",
    ]
    ins = [v.aval for v in graph.invars]
    work = math.prod(a.aval.shape) * n
    split = _splitting(loops, loops[0][0] if loops else None, 1, work)  # a matrix per thread
    return _c_function(
        name, ins, [written.aval], _nest(loops, body, split=split), _split(loops, split, work)
    )


# Below this many elements a single elementwise op stays a NumPy call: as fast as calling
# a kernel, and one kernel less to compile.
SINGLE_OP_ELEMENTS = 4096


def native_kernels(graph: Graph) -> tuple[Graph, dict]:
    """``graph`` with its large single elementwise equations and its stacks of small matmuls
    made groups of one, each group reading its inputs through the views that make them, and
    C kernels for its groups by equation index, all built in one go; each group also keeps
    its kernel as its ``compiled`` function (show_graph prints it). Equations without one
    run on NumPy, and all of them do where the kernels cannot be built."""
    if toolchain.usable_compiler() is None:
        return graph, {}

    def single(eqn):
        if eqn.prim is matmul_p:
            return as_group(eqn) if small_matmul(*(v.aval for v in eqn.inputs)) else eqn
        if not (eqn.prim.elementwise and eqn.prim.c_expr):
            return eqn
        if math.prod(eqn.outputs[0].aval.shape) < SINGLE_OP_ELEMENTS:
            return eqn
        group = as_group(eqn)
        return group if supported(group.params["graph"]) else eqn

    grouped = Graph(graph.invars, [single(e) for e in graph.eqns], graph.outvars)
    checked = {}  # the rewrites are checked as the passes are: each one's result
    typecheck(grouped, checked, like=graph)
    for rewrite in (_recompute_residuals, _read_through_views):
        grouped = rewrite(grouped)
        typecheck(grouped, checked, like=graph)
    wanted = {}  # equation index -> its kernel's C, named "{name}" until names are given
    for k, eqn in enumerate(grouped.eqns):
        group = eqn.params.get("graph") if eqn.prim is fused_p else None
        if group is not None and group.compiled is None and supported(group):
            holds_matmul = any(e.prim is matmul_p for e in group.eqns)
            source = (matmul_source if holds_matmul else group_source)(group, "{name}")
            if source is not None:
                wanted[k] = source
    # equations alike (a layer's, repeated) share one kernel: the compiler's time is by kernel
    names = {text: f"k{j}" for j, text in enumerate(dict.fromkeys(wanted.values()))}
    sources = {name: text.replace("{name}", name) for text, name in names.items()}
    library = toolchain.build(sources, _prelude()) if sources else None
    if library is None:
        return graph, {}
    kernels = {}
    for k, text in wanted.items():
        eqn, name = grouped.eqns[k], names[text]
        caller = toolchain.caller(library, name, eqn, sources[name])
        kernels[k] = eqn.params["graph"].compiled = caller
    return grouped, kernels


# Work a group may repeat to read one array less: a few ops per element cost less than
# reading and writing 4 bytes each from memory, up to about this many.
RECOMPUTED_OPS = 24


def _recompute_residuals(graph: Graph) -> Graph:
    """``graph`` with each group recomputing the values it reads from an earlier group (made
    there by elementwise ops from the arrays that group reads) where that reads fewer bytes,
    and groups no longer writing what nobody reads then: the backward pass of an exact GELU
    reads its input and gradient, where it read three arrays the forward pass wrote."""
    made_in = {}  # value -> the group equation making it
    recomputed: set[int] = set()  # values a group now makes for itself
    eqns = []
    for eqn in graph.eqns:
        if eqn.prim is fused_p and supported(eqn.params["graph"]):
            eqn = _recomputing(eqn, made_in, recomputed)
            made_in |= {id(v): eqn for v in eqn.outputs}
        eqns.append(eqn)
    read = {id(v) for e in eqns for v in e.inputs} | {id(v) for v in graph.outvars}
    pruned = []
    for eqn in eqns:
        unread = {id(v) for v in eqn.outputs if id(v) in recomputed and id(v) not in read}
        if unread:
            outputs = [v for v in eqn.outputs if id(v) not in unread]
            if not outputs:
                continue
            group = dead_code(Graph(eqn.params["graph"].invars, eqn.params["graph"].eqns, outputs))
            used = {id(v) for e in group.eqns for v in e.inputs}
            kept = [(x, v) for x, v in zip(eqn.inputs, group.invars) if id(v) in used]
            group = Graph([v for _, v in kept], group.eqns, outputs)
            eqn = Eqn(fused_p, [x for x, _ in kept], {"graph": group}, outputs)
        pruned.append(eqn)
    return Graph(graph.invars, pruned, graph.outvars)


def _recomputing(eqn, made_in: dict, recomputed: set):
    """Group ``eqn`` making for itself the values of its shape it reads from earlier groups
    (``made_in``), when all of them are elementwise recipes and their arrays are fewer
    bytes than the values, and no op that jumps reads a value recomputed inexactly (see
    ``_EXACT``); records them in ``recomputed``."""
    group = eqn.params["graph"]
    shape = next((e.outputs[0].aval.shape for e in group.eqns if e.prim.elementwise), None)
    recipes = {}  # value read -> (the equations making it in its group, the arrays they read)
    for x in eqn.inputs:
        if id(x) in made_in and x.aval.shape == shape:
            recipe = _recipe(x, made_in[id(x)])
            if recipe is not None:
                recipes[id(x)] = recipe
    while recipes:
        inner_of = {id(x): v for x, v in zip(eqn.inputs, group.invars)}
        steps = {id(e): e for making, _ in recipes.values() for e in making}
        arrays = {id(a): a for _, reads in recipes.values() for a in reads if id(a) not in inner_of}
        added = sum(math.prod(a.aval.shape) * a.aval.dtype.itemsize for a in arrays.values())
        removed = sum(
            math.prod(x.aval.shape) * x.aval.dtype.itemsize for x in eqn.inputs if id(x) in recipes
        )
        if added >= removed or len(steps) > RECOMPUTED_OPS:
            return eqn
        inputs = [x for x in eqn.inputs if id(x) not in recipes] + list(arrays.values())
        invars = [inner_of[id(x)] for x in eqn.inputs if id(x) not in recipes]
        invars += [Var(a.aval) for a in arrays.values()]
        sub = dict(zip(map(id, inputs), invars))  # an array read -> the group's input of it
        copies = {}  # the copy of a step -> the step
        makers = {id(made_in[v]) for v in recipes}
        for maker in [m for m in dict.fromkeys(made_in.values()) if id(m) in makers]:  # in order
            source = maker.params["graph"]
            outer = dict(zip(map(id, source.invars), maker.inputs))
            for e in source.eqns:
                if id(e) in steps and id(e.outputs[0]) not in sub:  # not read as it is anyway
                    ins = [
                        v if isinstance(v, Literal) else sub[id(outer.get(id(v), v))]
                        for v in e.inputs
                    ]
                    outs = [inner_of[id(v)] if id(v) in recipes else Var(v.aval) for v in e.outputs]
                    sub |= {id(v): w for v, w in zip(e.outputs, outs)}
                    copies[Eqn(e.prim, ins, e.params, outs)] = e
        body = Graph(invars, list(copies) + group.eqns, group.outvars)
        wrong = _inexact_into_jumps(body, copies)
        if not wrong:
            recomputed.update(recipes)
            return Eqn(fused_p, inputs, {"graph": body}, eqn.outputs)
        recipes = {x: r for x, r in recipes.items() if not any(id(e) in wrong for e in r[0])}
    return eqn


# A value recomputed in another kernel may round differently from the one stored (NumPy's
# sin against libmvec's, a vector lane against the scalar tail). That is harmless where the
# value flows on smoothly, and wrong where it meets an op whose result jumps: max's and
# relu's gradients compare x with a value made from the stored x, and one ulp drops the
# gradient. So no op that jumps may read a value recomputed by an op outside these, which
# are correctly rounded (or exact) and so give the same bits in every kernel and in NumPy.
_EXACT = {
    P.add_p, P.sub_p, P.mul_p, P.div_p, P.neg_p, P.abs_p, P.sqrt_p, P.max_p, P.min_p,
    P.select_p, P.convert_p, P.eq_p, P.ne_p, P.lt_p, P.le_p, P.gt_p, P.ge_p, P.sign_p,
    P.floor_p, P.ceil_p, P.round_p,
}  # fmt: skip


def _inexact_into_jumps(group: Graph, copies: dict) -> set:
    """The steps (by id) recomputed inexactly in ``group`` (``copies``: copy -> step) whose
    values reach an op that jumps."""
    upstream = {}  # value -> the inexact steps it was computed from
    wrong = set()
    for e in group.eqns:
        found = set().union(*(upstream.get(id(v), ()) for v in e.inputs))
        if _jumps(e):
            wrong |= found
        step = copies.get(e)
        if step is not None and e.prim not in _EXACT:
            found = found | {id(step)}
        for v in e.outputs:
            upstream[id(v)] = found
    return wrong


def _jumps(eqn) -> bool:
    """Whether ``eqn``'s result can jump when an input moves by one ulp."""
    if eqn.prim is convert_p:
        return not is_float(eqn.params["dtype"])
    return not eqn.prim.differentiable


def _recipe(x, maker):
    """The equations of ``maker``'s group making ``x`` from the arrays it reads, and those
    arrays; None where one of them is not elementwise (a sum)."""
    group = maker.params["graph"]
    outer = dict(zip(map(id, group.invars), maker.inputs))
    making = {id(v): e for e in group.eqns for v in e.outputs}
    steps, reads, stack = {}, {}, [x]
    while stack:
        v = stack.pop()
        if isinstance(v, Literal) or id(v) in steps:
            continue
        if id(v) in outer:
            reads[id(v)] = outer[id(v)]
            continue
        e = making[id(v)]
        if e.prim.c_expr is None:
            return None
        steps[id(v)] = e
        stack += e.inputs
    return list({id(e): e for e in steps.values()}.values()), list(reads.values())


def _read_through_views(graph: Graph) -> Graph:
    """``graph`` with each group that can go native reading its inputs through the views
    that make them (the arrays viewed become its inputs) and writing each output that only
    a transpose reads transposed; views nobody reads any more are dropped."""
    producer = {id(v): e for e in graph.eqns for v in e.outputs}
    readers: dict[int, list] = {}
    for eqn in graph.eqns:
        for v in eqn.inputs:
            readers.setdefault(id(v), []).append(eqn)
    for v in graph.outvars:
        readers.setdefault(id(v), []).append(None)
    written = set()  # the transposes groups now write
    eqns = []
    for eqn in graph.eqns:
        if id(eqn) in written:
            continue
        if eqn.prim is fused_p and supported(eqn.params["graph"]):
            eqn = _with_views(eqn, producer, readers, written)
        eqns.append(eqn)
    live = {id(v) for v in graph.outvars}
    kept = []
    for eqn in reversed(eqns):
        if eqn.prim not in _VIEWS or id(eqn.outputs[0]) in live:
            kept.append(eqn)
            live.update(id(v) for v in eqn.inputs)
    return Graph(graph.invars, kept[::-1], graph.outvars)


def _with_views(eqn, producer: dict, readers: dict, written: set):
    group = eqn.params["graph"]
    inputs, invars, head, replace = [], [], [], {}

    def enter(outer, inner=None):
        if id(outer) not in replace:
            replace[id(outer)] = Var(outer.aval) if inner is None else inner
            inputs.append(outer)
            invars.append(replace[id(outer)])
        return replace[id(outer)]

    for outer, inner in zip(eqn.inputs, group.invars):
        base, chain = _view_chain(outer, producer)
        x = enter(base, None if chain else inner)
        if not chain:
            replace[id(inner)] = x
            continue
        for view in chain[:-1]:
            y = Var(view.outputs[0].aval)
            head.append(Eqn(view.prim, [x], view.params, [y]))
            x = y
        head.append(Eqn(chain[-1].prim, [x], chain[-1].params, [inner]))
    body = [
        Eqn(e.prim, [replace.get(id(v), v) for v in e.inputs], e.params, e.outputs)
        for e in group.eqns
    ]
    made_by = {id(v): e for e in group.eqns for v in e.outputs}
    outvars, tail = list(group.outvars), []
    for j, v in enumerate(outvars):
        users = readers.get(id(v), [])
        if len(users) == 1 and users[0] is not None and users[0].prim is transpose_p:
            if made_by[id(v)].prim is not reduce_sum_p:
                (transpose,) = users
                tail.append(Eqn(transpose_p, [v], transpose.params, transpose.outputs))
                outvars[j] = transpose.outputs[0]
                written.add(id(transpose))
                del producer[id(transpose.outputs[0])]  # now an array of its own
    if not head and not tail:
        return eqn
    return Eqn(fused_p, inputs, {"graph": Graph(invars, head + body + tail, outvars)}, outvars)


def _view_chain(v, producer: dict):
    """The array ``v`` is a view of and the views making it, first to last; the chain starts
    after the last reshape that would copy (its result is an array of its own)."""
    chain = []
    while id(v) in producer and producer[id(v)].prim in _VIEWS:
        chain.insert(0, producer[id(v)])
        v = chain[0].inputs[0]
    start, layout = 0, (0, _c_strides(v.aval.shape))
    for k, view in enumerate(chain):
        layout = _view_layout(layout, view, math.prod(chain[start].inputs[0].aval.shape))
        if layout is None:  # start again from what this view reads
            start, base = k, view.inputs[0]
            layout = _view_layout(
                (0, _c_strides(base.aval.shape)), view, math.prod(base.aval.shape)
            )
        if layout is None:  # not even a view of its own input (size 0): an array
            start, layout = k + 1, (0, _c_strides(view.outputs[0].aval.shape))
    chain = chain[start:]
    return (chain[0].inputs[0] if chain else v), chain
