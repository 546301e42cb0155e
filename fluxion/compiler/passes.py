"""IR-to-IR passes. Each takes a Graph and returns a new, equivalent Graph.

``optimize`` runs them in order and type-checks after each one.
"""

from __future__ import annotations

import numpy as np

from fluxion.compiler.fusion import fuse_elementwise
from fluxion.core.ir import Eqn, Graph, Literal, Var, typecheck
from fluxion.core.primitive import ShapedArray
from fluxion.core.trace import backend
from fluxion.ops import primitives as P


def _substitute(graph: Graph, replace: dict, eqns) -> Graph:
    def sub(v):
        while not isinstance(v, Literal) and id(v) in replace:
            v = replace[id(v)]
        return v

    new_eqns = [Eqn(e.prim, [sub(v) for v in e.inputs], e.params, e.outputs) for e in eqns]
    return Graph(graph.invars, new_eqns, [sub(v) for v in graph.outvars])


def dead_code(graph: Graph) -> Graph:
    """Drop equations whose outputs nobody uses (primitives have no side effects)."""
    live = {id(v) for v in graph.outvars if not isinstance(v, Literal)}
    kept = []
    for eqn in reversed(graph.eqns):
        if any(id(v) in live for v in eqn.outputs):
            kept.append(eqn)
            live.update(id(v) for v in eqn.inputs if not isinstance(v, Literal))
    return Graph(graph.invars, kept[::-1], graph.outvars)


def _literal_key(v: Literal):
    return (
        ("lit", v.value.dtype.str, v.value.shape, v.value.tobytes())
        if v.value.size <= 64
        else ("lit", id(v))
    )


def common_subexpressions(graph: Graph) -> Graph:
    """Compute each (primitive, params, inputs) once."""
    seen, replace, kept = {}, {}, []
    for eqn in graph.eqns:
        inputs = [replace.get(id(v), v) if not isinstance(v, Literal) else v for v in eqn.inputs]
        try:
            key = (
                eqn.prim.name,
                tuple(sorted(eqn.params.items())),
                tuple(_literal_key(v) if isinstance(v, Literal) else id(v) for v in inputs),
            )
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in seen:
            for old, new in zip(eqn.outputs, seen[key].outputs):
                replace[id(old)] = new
            continue
        if key is not None:
            seen[key] = eqn
        kept.append(eqn)
    return _substitute(graph, replace, kept)


def constant_folding(graph: Graph, max_size: int = 1 << 16) -> Graph:
    """Evaluate equations whose inputs are all literals (small results only)."""
    replace, kept = {}, []
    for eqn in graph.eqns:
        inputs = [replace.get(id(v), v) if not isinstance(v, Literal) else v for v in eqn.inputs]
        if inputs and all(isinstance(v, Literal) for v in inputs):
            out = eqn.prim.impl(backend.xp, *[v.value for v in inputs], **eqn.params)
            outs = list(out) if eqn.prim.multiple_results else [out]
            if all(np.size(o) <= max_size for o in outs):
                for v, o in zip(eqn.outputs, outs):
                    replace[id(v)] = Literal(np.asarray(o))
                continue
        kept.append(Eqn(eqn.prim, inputs, eqn.params, eqn.outputs))
    return _substitute(graph, replace, kept)


def _is_scalar_literal(v, value) -> bool:
    """A literal equal to ``value`` everywhere (a scalar, or a broadcast of one)."""
    return isinstance(v, Literal) and v.value.size <= 1 << 16 and bool(np.all(v.value == value))


def _swaps_last_two(perm) -> bool:
    n = len(perm)
    return n >= 2 and tuple(perm) == (*range(n - 2), n - 1, n - 2)


def algebraic_simplification(graph: Graph) -> Graph:
    """x*1, 1*x, x+0, 0+x, x-0, x/1 (when the result keeps x's shape), casts to the same
    dtype, reshapes and broadcasts to the same shape, reshape of reshape, transpose of
    transpose, and (a @ b)^T = b^T @ a^T where the product is read only transposed: the
    operands' transposes are views BLAS reads as they are, and the result comes out
    contiguous (a weight gradient, which the optimizer's kernel would read across rows)."""
    replace, kept, producer = {}, [], {}
    readers = _readers(graph)

    def transposed(v):  # v with its last two axes swapped: a new transpose, or one undone
        perm = (*range(v.aval.ndim - 2), v.aval.ndim - 1, v.aval.ndim - 2)
        source = producer.get(id(v))
        if source is not None and source.prim.name == "transpose" and source.params["perm"] == perm:
            return source.inputs[0]
        out = Var(ShapedArray(tuple(v.aval.shape[p] for p in perm), v.aval.dtype))
        kept.append(Eqn(P.transpose_p, [v], {"perm": perm}, [out]))
        return out

    def same(a, b):
        return tuple(a.aval.shape) == tuple(b.aval.shape) and np.dtype(a.aval.dtype) == np.dtype(
            b.aval.dtype
        )

    for eqn in graph.eqns:
        inputs = [replace.get(id(v), v) if not isinstance(v, Literal) else v for v in eqn.inputs]
        name, out = eqn.prim.name, eqn.outputs[0]
        # merge chains first, so that a chain that cancels out becomes an identity below
        source = (
            producer.get(id(inputs[0])) if inputs and not isinstance(inputs[0], Literal) else None
        )
        params = eqn.params
        if (
            name == "transpose"
            and source is not None
            and source.prim.name == "matmul"
            and _swaps_last_two(params["perm"])
            and readers.get(id(inputs[0])) == 1
            and min(v.aval.ndim for v in source.inputs) >= 2
        ):
            a, b = source.inputs
            new = Eqn(P.matmul_p, [transposed(b), transposed(a)], {}, eqn.outputs)
            producer[id(out)] = new
            kept.append(new)
            continue
        if source is not None and name == "reshape" and source.prim.name == "reshape":
            inputs = [source.inputs[0]]
        elif source is not None and name == "transpose" and source.prim.name == "transpose":
            inner, outer = source.params["perm"], params["perm"]
            inputs, params = [source.inputs[0]], {"perm": tuple(inner[p] for p in outer)}
        identity = None
        if (
            name == "mul"
            and _is_scalar_literal(inputs[1], 1)
            or name == "add"
            and _is_scalar_literal(inputs[1], 0)
        ):
            identity = inputs[0]
        elif name in ("sub", "div") and _is_scalar_literal(inputs[1], 1 if name == "div" else 0):
            identity = inputs[0]
        elif (
            name == "mul"
            and _is_scalar_literal(inputs[0], 1)
            or name == "add"
            and _is_scalar_literal(inputs[0], 0)
        ):
            identity = inputs[1]
        elif name in ("reshape", "broadcast_to", "convert", "transpose") and same(inputs[0], out):
            if name != "transpose" or params["perm"] == tuple(range(out.aval.ndim)):
                identity = inputs[0]
        elif name == "reduce_sum" and not params["axes"]:  # a sum over no axis (vmap's)
            identity = inputs[0]
        if identity is not None and not isinstance(identity, Literal) and same(identity, out):
            replace[id(out)] = identity
            continue
        new = Eqn(eqn.prim, inputs, params, eqn.outputs)
        for v in new.outputs:
            producer[id(v)] = new
        kept.append(new)
    return _substitute(graph, replace, kept)


def _readers(graph: Graph) -> dict:
    counts: dict[int, int] = {}
    for v in [v for e in graph.eqns for v in e.inputs] + list(graph.outvars):
        counts[id(v)] = counts.get(id(v), 0) + 1
    return counts


def _padded_range(pad: Eqn):
    """``(axis, start, stop)`` of the one axis a zero pad widens (no interior padding)."""
    widened = [k for k, w in enumerate(pad.params["widths"]) if w != (0, 0, 0)]
    if pad.params["value"] != 0 or len(widened) != 1:
        return None
    (axis,) = widened
    lo, _, interior = pad.params["widths"][axis]
    if interior:
        return None
    return axis, lo, lo + pad.inputs[0].aval.shape[axis]


def _joined_pads(a: Eqn, b: Eqn, out: Var) -> list[Eqn] | None:
    """``add(pad(x), pad(y))`` where x and y fill adjacent ranges of one axis: the
    concatenation of x and y, padded only where neither reaches."""
    ranges = _padded_range(a), _padded_range(b)
    if None in ranges or ranges[0][0] != ranges[1][0]:
        return None
    (axis, start_a, stop_a), (_, start_b, stop_b) = ranges
    if stop_b == start_a:
        a, b, start_a, stop_b = b, a, start_b, stop_a
    elif stop_a != start_b:
        return None
    pieces = [a.inputs[0], b.inputs[0]]
    after = out.aval.shape[axis] - stop_b
    if start_a == 0 and after == 0:
        return [Eqn(P.concatenate_p, pieces, {"axis": axis}, [out])]
    shape = list(out.aval.shape)
    shape[axis] = stop_b - start_a
    joined = Var(ShapedArray(tuple(shape), out.aval.dtype))
    widths = tuple((start_a, after, 0) if k == axis else (0, 0, 0) for k in range(len(shape)))
    return [
        Eqn(P.concatenate_p, pieces, {"axis": axis}, [joined]),
        Eqn(P.pad_p, [joined], {"widths": widths, "value": a.params["value"]}, [out]),
    ]


def pads_to_concatenate(graph: Graph) -> Graph:
    """The gradient of a split (q, k, v cut from one projection) is a sum of zero pads, one
    per piece: ``add(pad(x), pad(y))`` over adjacent ranges becomes ``pad(concatenate(x,
    y))``, and a concatenate of a concatenate along the same axis one concatenate. One
    write of the result instead of a zero-filled copy per piece and a pass per add."""
    readers, producer, kept = _readers(graph), {}, []

    def sole(v, name):  # the equation making v, when it is a `name` read only here
        e = producer.get(id(v))
        return e if e is not None and e.prim.name == name and readers[id(v)] == 1 else None

    def flattened(concat):
        axis, pieces = concat.params["axis"], []
        for v in concat.inputs:
            inner = sole(v, "concatenate")
            pieces += inner.inputs if inner and inner.params["axis"] == axis else [v]
        return Eqn(concat.prim, pieces, concat.params, concat.outputs)

    for eqn in graph.eqns:
        new = [eqn]
        if eqn.prim.name == "add":
            a, b = (sole(v, "pad") for v in eqn.inputs)
            same = all(v.aval == eqn.outputs[0].aval for v in eqn.inputs)
            if a is not None and b is not None and same:
                new = _joined_pads(a, b, eqn.outputs[0]) or new
        for k, e in enumerate(new):
            if e.prim.name == "concatenate":
                new[k] = e = flattened(e)
            producer[id(e.outputs[0])] = e
            readers.setdefault(id(e.outputs[0]), 1)  # a joined range: read by its pad only
        kept += new
    return dead_code(Graph(graph.invars, kept, graph.outvars))


PASSES = [
    constant_folding,
    algebraic_simplification,
    common_subexpressions,
    dead_code,
    pads_to_concatenate,
    fuse_elementwise,
]


def optimize(graph: Graph, fuse: bool = True) -> Graph:
    """``graph`` through every pass (but fusion where ``fuse`` is False: every value stays
    an equation's output, as debug_nans checks them), type-checked before and after each."""
    checked: dict = {}  # the checks share it: a pass keeps most equations as they were
    typecheck(graph, checked)
    traced = graph
    for p in PASSES if fuse else [p for p in PASSES if p is not fuse_elementwise]:
        graph = p(graph)
        typecheck(graph, checked, like=traced)
    return graph
