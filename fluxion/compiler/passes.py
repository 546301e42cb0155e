"""IR-to-IR passes. Each takes a Graph and returns a new, equivalent Graph.

``optimize`` runs them in order and type-checks after each one.
"""

from __future__ import annotations

import numpy as np

from fluxion.compiler.fusion import fuse_elementwise
from fluxion.compiler.ir import Eqn, Graph, Literal, typecheck
from fluxion.core.trace import ctx


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
            out = eqn.prim.impl(ctx.xp, *[v.value for v in inputs], **eqn.params)
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


def algebraic_simplification(graph: Graph) -> Graph:
    """x*1, 1*x, x+0, 0+x, x-0, x/1 (when the result keeps x's shape), casts to the same
    dtype, reshapes and broadcasts to the same shape, reshape of reshape, transpose of transpose."""
    replace, kept, producer = {}, [], {}

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
        if identity is not None and not isinstance(identity, Literal) and same(identity, out):
            replace[id(out)] = identity
            continue
        new = Eqn(eqn.prim, inputs, params, eqn.outputs)
        for v in new.outputs:
            producer[id(v)] = new
        kept.append(new)
    return _substitute(graph, replace, kept)


PASSES = [
    constant_folding,
    algebraic_simplification,
    common_subexpressions,
    dead_code,
    fuse_elementwise,
]


def optimize(graph: Graph) -> Graph:
    for p in PASSES:
        graph = p(graph)
        typecheck(graph)
    return graph
