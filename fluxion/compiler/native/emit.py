"""The C of native kernels (``native/__init__.py`` says what they are): the prelude every
library starts with, and each group's kernel, described first as data (a ``Kernel`` of
``Nest``s: loops, the statements in and around them, the loop threads share) and then
printed to C in one place (``c_source``). An op's C is its primitive's ``c_expr``;
``<tgmath.h>`` picks the float32 or float64 function, and glibc's vector math library
(libmvec) lets gcc vectorize exp, log, tanh... as NumPy does. Inputs are read through the
views that make them, at strides fixed when the kernel is built (no view is copied).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from fluxion.backends import threads
from fluxion.core.ir import Graph, Literal
from fluxion.ops.primitives import (
    _ERF_P,
    _ERF_Q,
    broadcast_to_p,
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
def prelude() -> str:
    declarations = [
        f"FX_SIMD {c_type} {name}{suffix}({c_type});"
        for name in _VECTOR_MATH
        for c_type, suffix in (("float", "f"), ("double", ""))
    ]

    def horner(name, coefficients):  # the order of _erf_impl's NumPy passes, bit for bit
        lines = [f"    float {name} = z2 * {c_literal(coefficients[0], np.float32)};"]
        for c in coefficients[1:-1]:
            lines.append(f"    {name} += {c_literal(c, np.float32)}; {name} *= z2;")
        lines.append(f"    {name} += {c_literal(coefficients[-1], np.float32)};")
        return lines

    # libmvec's exp takes a scalar path for a whole vector when a lane is below its range: a
    # causal mask's -inf made softmax's exp 7x slower. There the exponent is raised by an
    # exact addition and the result scaled back down (its subnormals kept; below ``floor``
    # it rounds to 0 anyway). Arithmetic, not branches: gcc splits a call fed by a select
    # into one call per branch. Costs 2x on inputs in range, saves 2-4x on masked ones.
    def exp_in_range(dtype, low, floor, shift):
        c_type, lit = C_TYPES[np.dtype(dtype)], functools.partial(c_literal, dtype=dtype)
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


def c_literal(value, dtype) -> str:
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
        e.prim.c_expr is not None or e.prim in VIEWS or e.prim in (reduce_sum_p, matmul_p)
        for e in graph.eqns
    ) and all(np.dtype(v.aval.dtype) in C_TYPES for v in values)


# A kernel reads its inputs through these (and writes an output through a transpose): the
# array the view is of, at the view's strides, fixed when the kernel is made. A view would
# otherwise be copied whole to enter the kernel.
VIEWS = (transpose_p, reshape_p, slice_p, broadcast_to_p)


def c_strides(shape) -> tuple:
    return tuple(math.prod(shape[d + 1 :]) for d in range(len(shape)))


def view_layout(layout: tuple, eqn, size: int) -> tuple | None:
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
    layouts = {id(v): (j, 0, c_strides(v.aval.shape)) for j, v in enumerate(graph.invars)}
    for eqn in graph.eqns:
        x = eqn.inputs[0]
        if eqn.prim in VIEWS and id(x) in layouts:
            j, offset, strides = layouts[id(x)]
            size = math.prod(graph.invars[j].aval.shape)
            layout = view_layout((offset, strides), eqn, size)
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


# ------------------------------------------------------------------ kernels as data, and C


@dataclass
class Nest:
    """A loop nest: ``loops`` (index, length), outermost first; ``body``, the statements of
    the innermost loop (C, or nests of their own); ``before`` and ``after`` (depth ->
    statements), just outside the loop at that depth; ``sums``, the registers the innermost
    loop adds into in any order (that lets it vectorize); ``cut``, ``(index, block)``: the
    loop threads share, its blocks of ``block`` elements run from ``begin`` to ``end``."""

    loops: list
    body: list
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    sums: list = field(default_factory=list)
    cut: tuple | None = None


@dataclass
class Kernel:
    """A kernel: the avals of its inputs and outputs, its statements (nests and C), and how
    threads split it: the length of the loop cut and the most ranges to cut it into."""

    ins: list
    outs: list
    body: list
    split: tuple


def c_source(kernel: Kernel, name: str) -> str:
    """A kernel's C: ``{name}_loop(a0.., o0.., begin, end)`` running its statements over
    typed pointers, ``{name}(data, begin, end)`` calling it with the arrays' data, inputs
    first, and ``{name}_split`` (read by ``toolchain.Library``)."""
    pointers = [f"const {_stored(a.dtype)} *restrict a{j}" for j, a in enumerate(kernel.ins)]
    pointers += [f"{_stored(a.dtype)} *restrict o{j}" for j, a in enumerate(kernel.outs)]
    data = ", ".join(f"data[{j}]" for j in range(len(kernel.ins) + len(kernel.outs)))
    return "\n".join(
        [f"static void {name}_loop({', '.join(pointers + ['int64_t begin', 'int64_t end'])}) {{"]
        + _lines(kernel.body, 1)
        + ["}", f"void {name}(void *const *data, int64_t begin, int64_t end) {{"]
        + [f"    {name}_loop({data}, begin, end);", "}"]
        + [f"const int64_t {name}_split[2] = {{{kernel.split[0]}, {kernel.split[1]}}};"]
    )


def _lines(statements: list, depth: int) -> list[str]:
    lines = []
    for s in statements:
        lines += _loop_lines(s, 0, depth) if isinstance(s, Nest) else ["    " * depth + s]
    return lines


def _loop_lines(nest: Nest, d: int, depth: int) -> list[str]:
    """The C of ``nest``'s loops from the one at depth ``d`` in, indented ``depth`` deep."""
    if d == len(nest.loops):
        return _lines(nest.body, depth)
    (i, n), pad = nest.loops[d], "    " * depth
    lines = _lines(nest.before.get(d, []), depth)
    block = nest.cut[1] if nest.cut and nest.cut[0] == i else None
    start, stop, loop = (0, n, pad) if block is None else ("begin", "end", pad)
    if block is not None and block > 1:  # whole blocks of the loop, from begin to end
        lines += [
            f"{pad}for (long {i}_block = begin; {i}_block < end; {i}_block++) {{",
            f"{pad}    long {i}_end = {i}_block * {block} + {block};",
            f"{pad}    if ({i}_end > {n}) {i}_end = {n};",
        ]
        start, stop, loop = f"{i}_block * {block}", f"{i}_end", pad + "    "
    if nest.sums and d == len(nest.loops) - 1:
        lines.append(f"{loop}#pragma omp simd reduction(+:{', '.join(nest.sums)})")
    lines.append(f"{loop}for (long {i} = {start}; {i} < {stop}; {i}++) {{")
    lines += _loop_lines(nest, d + 1, len(loop) // 4 + 1) + [f"{loop}}}"]
    lines += [f"{pad}}}"] * (loop != pad)  # the blocks' loop
    return lines + _lines(nest.after.get(d, []), depth)


# A kernel cut along its innermost loop is cut between blocks of this many elements, each
# run by the same vectorized loop whichever thread runs it: cut anywhere, a range's first
# and last elements would fall in the loop's scalar tail (1 ulp off, in exp or tanh) where
# one thread would run them in a vector.
BLOCK = 256


def _cut(loops, index, block: int, work: int):
    """How threads share a kernel: ``(index, block)``, the loop cut into ranges of whole
    blocks of ``block`` elements, and the kernel's split: that loop's number of blocks and
    the most ranges its ``work`` (elements, or multiply-adds) gains from, one range per
    ``threads.KERNEL_GRAIN`` of it. ``None, (1, 1)`` where no loop may be cut (``index``
    None) or no second thread gains: the loops then keep the bounds known when compiling
    (gcc takes ~25% longer over loops of unknown length)."""
    if index is not None:
        length = -(-dict(loops)[index] // block)
        parts = min(length, work // threads.KERNEL_GRAIN)
        if parts > 1:
            return (index, block), (length, parts)
    return None, (1, 1)


def kernel(graph: Graph) -> Kernel | None:
    """The kernel of a fused group; None where it is not ``supported`` or its loops cannot
    be made."""
    if not supported(graph):
        return None
    holds_matmul = any(e.prim is matmul_p for e in graph.eqns)
    return (_matmul_kernel if holds_matmul else _group_kernel)(graph)


def _group_kernel(graph: Graph) -> Kernel | None:
    """One fused group: one pass over its shape, every value in a register, each input
    read where the group's views of it point, an output transposed where the group
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
        out = id(eqn.outputs[0])
        return eqn.prim in VIEWS and id(eqn.inputs[0]) in memory and out not in transposed

    def key(v):  # the load of a value read from memory: (input, offset, strides on the loops)
        j, offset, strides = memory[id(v)]
        return j, offset, _broadcast_row(shape, v.aval.shape, strides)

    # the group's shape: its first computed value's (a sum's operand's), or its output's
    first = next((e for e in graph.eqns if not is_view(e)), None)
    shape = tuple(
        graph.outvars[0].aval.shape
        if first is None
        else (first.inputs[0] if first.prim is reduce_sum_p else first.outputs[0]).aval.shape
    )
    loads = {}  # load key -> the C value it loads into
    stores = {id(v): c_strides(shape) for v in graph.outvars}
    for eqn in graph.eqns:
        (out, *_), x = eqn.outputs, eqn.inputs[0]
        if is_view(eqn):
            if id(out) not in memory:
                return None
            continue
        if id(out) in transposed:
            inverse = np.argsort(eqn.params["perm"])
            stores[id(out)] = tuple(c_strides(out.aval.shape)[p] for p in inverse)
            continue
        if eqn.prim is reduce_sum_p:
            kept = iter(c_strides(out.aval.shape))
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
            loads.setdefault(key(v), (f"r{len(loads)}", C_TYPES[np.dtype(v.aval.dtype)]))
    lengths, rows = _loops(shape, [row for _, _, row in loads] + list(stores.values()))
    loops = [(f"i{k}", n) for k, n in enumerate(lengths)]
    load_rows, store_rows = dict(zip(loads, rows)), dict(zip(stores, rows[len(loads) :]))
    out_index = {id(v): j for j, v in enumerate(graph.outvars)}
    # the loop cut among threads: the outermost one no sum runs along, so that each thread
    # writes its own elements and every sum adds in one thread, in the order of one
    sum_rows = [store_rows[v] for v in sums if v in store_rows]
    index = next((i for k, (i, _) in enumerate(loops) if all(r[k] for r in sum_rows)), None)
    vectorized = loops and index == loops[-1][0]
    cut, split = _cut(loops, index, BLOCK if vectorized else 1, math.prod(shape))
    nest, zeroed = Nest(loops, [], cut=cut), []
    names: dict[int, str] = {}
    statements = []  # (the values it reads, its C), in order: a load goes where first read

    def c(v) -> str:  # a value's C: a literal, a register loaded from memory, or one computed
        if isinstance(v, Literal):
            return c_literal(v.value, v.aval.dtype)
        return names[id(v)] if id(v) not in memory else loads[key(v)][0]

    for eqn in graph.eqns:
        (out, *_), x = eqn.outputs, eqn.inputs[0]
        c_type = C_TYPES[np.dtype(out.aval.dtype)]
        if is_view(eqn):
            continue
        if eqn.prim is transpose_p:
            names[id(out)] = c(x)
            statements.append(([x], None))
        elif eqn.prim is reduce_sum_p:
            if id(out) not in out_index:
                return None  # a sum read inside its group: the loop has it only at the end
            j, row = out_index[id(out)], store_rows[id(out)]
            reduced = [s == 0 for s in row]
            first = reduced.index(True) if True in reduced else len(loops)
            if first == len(loops):  # over length-1 axes only: a copy
                statements.append(([x], f"o{j}[{_index(loops, row)}] = {c(x)};"))
            elif all(reduced[first:]):  # a row sum: a register per row
                nest.before.setdefault(first, []).append(f"{c_type} s{j} = 0;")
                nest.after.setdefault(first, []).append(f"o{j}[{_index(loops, row)}] = s{j};")
                statements.append(([x], f"s{j} += {c(x)};"))
                nest.sums.append(f"s{j}")
            elif not any(reduced[reduced.index(False) :]):  # a column sum, into its output
                kept = [(loop, s) for loop, s in zip(loops, row) if s]  # a thread's part of it
                zero = f"o{j}[{_index([loop for loop, _ in kept], [s for _, s in kept])}] = 0;"
                zeroed.append(Nest([loop for loop, _ in kept], [zero], cut=cut))
                statements.append(([x], f"o{j}[{_index(loops, row)}] += {c(x)};"))
            else:
                return None
        else:
            params = {
                k: C_TYPES.get(p, p) if isinstance(p, np.dtype) else p
                for k, p in eqn.params.items()
            }
            args = [c(v) for v in eqn.inputs]
            names[id(out)] = f"v{len(names)}"
            text = f"{c_type} {names[id(out)]} = {eqn.prim.c_expr.format(*args, **params)};"
            statements.append((eqn.inputs, text))
    statements += [
        ([v], f"o{j}[{_index(loops, store_rows[id(v)])}] = {c(v)};")
        for j, v in enumerate(graph.outvars)
        if id(v) in names or id(v) in memory
    ]
    for reads, text in statements:
        for j, offset, row in [key(v) for v in reads if id(v) in memory]:
            if (j, offset, row) in load_rows:  # not loaded yet
                name, c_type = loads[j, offset, row]
                index = _index(loops, load_rows.pop((j, offset, row)), offset)
                nest.body.append(f"{c_type} {name} = a{j}[{index}];")
        nest.body += [text] * (text is not None)
    ins, outs = [v.aval for v in graph.invars], [v.aval for v in graph.outvars]
    return Kernel(ins, outs, [*zeroed, nest], split)


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


def _matmul_kernel(graph: Graph) -> Kernel | None:
    """A group holding one small matmul, its operands read through the group's views, its
    product written transposed where the group transposes it; else None."""
    (mm,) = [e for e in graph.eqns if e.prim is matmul_p]
    (a, b), (out,) = mm.inputs, mm.outputs
    memory = _memory(graph)
    if id(a) not in memory or id(b) not in memory or not small_matmul(a.aval, b.aval):
        return None
    (written,) = graph.outvars
    store = c_strides(out.aval.shape)
    if written is not out:  # the group's last equation transposes the product
        store = tuple(
            c_strides(written.aval.shape)[p] for p in np.argsort(graph.eqns[-1].params["perm"])
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
        gather = f"tile[p * {n} + j] = y[p * {sy_p} + j * {sy_j}];"
        body += [f"{c_type} tile[{k * n}];", Nest([("p", k), ("j", n)], [gather]), "y = tile;"]
        sy_p = n
    (sx_i, sx_p), (sz_i, sz_j) = sa[-2:], store[-2:]
    product = f"row[j] += x[i * {sx_i} + p * {sx_p}] * y[p * {sy_p} + j];"
    row = [  # a row of the product at a time, accumulated in registers over k
        f"{c_type} row[{n}] = {{0}};",
        Nest([("p", k), ("j", n)], [product]),
        Nest([("j", n)], [f"z[i * {sz_i} + j * {sz_j}] = row[j];"]),
    ]
    work = math.prod(a.aval.shape) * n
    cut, split = _cut(loops, loops[0][0] if loops else None, 1, work)  # a matrix per thread
    nest = Nest(loops, body + [Nest([("i", m)], row)], cut=cut)
    return Kernel([v.aval for v in graph.invars], [written.aval], [nest], split)
