"""Code generation: a Graph becomes one straight-line Python function over the backend.

* Primitives with an ``emit`` template (ufuncs, reshapes, sums...) are written as direct
  calls; the others call their kernel with the params bound ahead of time.
* Memory (``plan_memory``): an elementwise op writes into the buffer of an input that dies
  there (``xp.exp(v3, out=v3)``) when that buffer was allocated by this function, has the
  output's shape and dtype, and was never handed to an op that might return a view of it;
  values are deleted after their last use, so the allocator can reuse their memory.
* Equations given a kernel of their own (``kernels``: the C loops of ``native/``) call it.
* A ``fused`` group of elementwise ops (``fusion.py``) without one, over a large shape, runs
  as a loop over blocks of rows that fit in the cache (``compile_blocked``): every op of the
  group touches a block while it is still in L2, instead of streaming whole arrays through
  memory each time.

``source`` keeps the generated text (``show_graph=True`` prints it).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from fluxion.core.ir import Graph, Literal
from fluxion.core.trace import backend

# Bytes of the widest value per block of a blocked loop: on a gelu-like chain of 10 ops
# over 4M float32, 256 KiB blocks ran 1.8x faster than whole arrays, 64 KiB blocks only
# 1.6x (more calls per element).
BLOCK_BYTES = 1 << 18


@dataclass
class MemoryPlan:
    """For each equation (by index): the input whose buffer its output overwrites, and the
    values that die right after it."""

    reuse: dict
    dead: dict


def plan_memory(graph: Graph) -> MemoryPlan:
    eqns = graph.eqns
    last_use = {}
    for k, eqn in enumerate(eqns):
        for v in eqn.inputs:
            last_use[id(v)] = k
    for v in graph.outvars:
        last_use[id(v)] = len(eqns)
    # a value given to an op that is not a ufunc may come back as a view of it
    maybe_viewed = {
        id(v) for eqn in eqns if "{out}" not in (eqn.prim.emit or "") for v in eqn.inputs
    }
    owned: set[int] = set()  # buffers this function allocated (results of emitted ufuncs)
    reuse, dead = {}, {}
    for k, eqn in enumerate(eqns):
        if "{out}" in (eqn.prim.emit or ""):
            out = eqn.outputs[0]
            buffer = next(
                (
                    v
                    for v in eqn.inputs
                    if id(v) in owned
                    and id(v) not in maybe_viewed
                    and last_use[id(v)] == k
                    and len(out.aval.shape) > 0  # a ufunc's 0-d result is a scalar, no buffer
                    and tuple(v.aval.shape) == tuple(out.aval.shape)
                    and v.aval.dtype == out.aval.dtype
                ),
                None,
            )
            if buffer is not None:
                reuse[k] = buffer
            owned.add(id(out))
        dying = [v for v in eqn.inputs if not isinstance(v, Literal) and last_use[id(v)] == k] + [
            v for v in eqn.outputs if id(v) not in last_use
        ]
        if dying:
            dead[k] = list({id(v): v for v in dying}.values())
    return MemoryPlan(reuse, dead)


def _emit_body(
    graph: Graph,
    names: dict,
    namespace: dict,
    targets: dict,
    in_loop: bool = False,
    kernels: dict | None = None,
    checks: dict | None = None,
) -> list[str]:
    """The lines computing ``graph``'s equations, inputs already bound to ``names``;
    ``targets`` maps some outputs to the buffer expression they must be written into.
    ``in_loop``: the body of a blocked loop, whose inputs the next block reads again.
    ``kernels``: functions to call for some equations (by index), native ones."""
    kernels = kernels or {}
    plan = plan_memory(graph)
    kept = {id(v) for v in graph.invars} if in_loop else set()

    def ref(v) -> str:
        if isinstance(v, Literal):
            key = f"c{len(namespace)}"
            namespace[key] = v.value
            return key
        return names[id(v)]

    body = []
    for k, eqn in enumerate(graph.eqns):
        args = ", ".join(ref(v) for v in eqn.inputs)
        for j, v in enumerate(eqn.outputs):
            names[id(v)] = f"v{k}_{j}" if eqn.prim.multiple_results else f"v{k}"
        outs = ", ".join(names[id(v)] for v in eqn.outputs) + (
            "," if eqn.prim.multiple_results else ""
        )
        target = targets.get(id(eqn.outputs[0]))
        if k in kernels:
            namespace[f"k{k}_{eqn.prim.name}"] = kernels[k]
            body.append(f"    {outs} = k{k}_{eqn.prim.name}({args})")
        elif eqn.prim.emit is not None:
            params = {k: param_source(namespace, v) for k, v in eqn.params.items()}
            if "{out}" in eqn.prim.emit and target is not None:
                out_clause, target = f", out={target}", None
            elif k in plan.reuse:
                out_clause = f", out={names[id(plan.reuse[k])]}"
            else:
                out_clause = ""
            body.append(f"    {outs} = {eqn.prim.emit.format(args=args, out=out_clause, **params)}")
        else:
            kernel = f"k{k}_{eqn.prim.name}"
            namespace[kernel] = functools.partial(eqn.prim.impl, backend.xp, **eqn.params)
            body.append(f"    {outs} = {kernel}({args})")
        if target is not None:
            body.append(f"    {target} = {outs}")
        for j, v in enumerate(eqn.outputs):
            if checks and id(v) in checks:
                namespace[f"check{k}_{j}"] = checks[id(v)]
                body.append(f"    check{k}_{j}({names[id(v)]})")
        dead = sorted(names[id(v)] for v in plan.dead.get(k, ()) if id(v) not in kept)
        if dead:
            body.append(f"    del {', '.join(dead)}")
    return body


def python_function(name: str, params: list[str], body: list[str], namespace: dict):
    source = "\n".join([f"def {_identifier(name)}({', '.join(params)}):"] + body)
    exec(compile(source, f"<fluxion.jit {name}>", "exec"), namespace)
    run = namespace[_identifier(name)]
    run.source = source
    return run


def compile_graph(graph: Graph, name="compiled", kernels=None, checks: dict | None = None):
    """Return ``run(*arrays) -> list of arrays`` for ``graph``; ``run.source`` is its code.
    ``kernels``: functions that run some equations (by index) instead of their primitive;
    ``checks``: a function to call on some values (by id) as soon as they are computed."""
    namespace: dict = {"xp": backend.xp}
    params = [f"in{i}" for i in range(len(graph.invars))]
    names = {id(v): p for v, p in zip(graph.invars, params)}
    body = _emit_body(graph, names, namespace, {}, kernels=kernels, checks=checks)
    returns = ", ".join(
        names[id(v)] if not isinstance(v, Literal) else param_source(namespace, v.value)
        for v in graph.outvars
    )
    return python_function(name, params, body + [f"    return [{returns}]"], namespace)


def subgraph_kernel(graph: Graph, blocked: bool = False):
    """The generated function of a sub-graph (a control-flow body, or with ``blocked`` a
    fused group), made on first use and kept on the graph."""
    if graph.compiled is None:
        graph.compiled = compile_blocked(graph) if blocked else compile_graph(graph, "body")
    return graph.compiled


def blocked_layout(shape: tuple, in_shapes: list[tuple]) -> int:
    """How many leading axes of ``shape`` a blocked loop can run over: the most ``k`` such
    that every input either spans all of ``shape[:k]`` or is broadcast along all of it
    (so a block of rows of those axes, flattened, is a plain slice of each spanning input)."""

    def fits(in_shape, k):
        lead = (1,) * (len(shape) - len(in_shape)) + tuple(in_shape)
        return lead[:k] == shape[:k] or all(d == 1 for d in lead[:k])

    k = len(shape)
    while k and not all(fits(s, k) for s in in_shapes):
        k -= 1
    return k


def compile_blocked(graph: Graph, name: str = "fused"):
    """Like ``compile_graph`` for a graph of elementwise equations that all share one shape,
    run a block of rows at a time when that shape is larger than a block (a group that also
    sums or broadcasts runs whole: a block would see part of a sum, and a broadcast_to
    names the whole shape)."""
    shape = tuple(graph.eqns[0].outputs[0].aval.shape)
    in_shapes = [tuple(v.aval.shape) for v in graph.invars]
    k = blocked_layout(shape, in_shapes)
    rows, row_size = math.prod(shape[:k]), math.prod(shape[k:])
    widest = max(np.dtype(v.aval.dtype).itemsize for v in graph.invars + graph.outvars)
    block = max(1, BLOCK_BYTES // max(1, row_size * widest))
    if rows <= block or not all(e.prim.elementwise for e in graph.eqns):
        return compile_graph(graph, name)
    namespace: dict = {"xp": backend.xp}
    params = [f"in{i}" for i in range(len(graph.invars))]
    lines, names = [], {}
    for i, (v, s) in enumerate(zip(graph.invars, in_shapes)):
        spans = (1,) * (len(shape) - len(s)) + s
        if len(s) == len(shape) and spans[:k] == shape[:k]:  # spans the rows: sliced per block
            lines.append(f"    x{i} = in{i}.reshape({(rows,) + s[k:]!r})")
            names[id(v)] = f"x{i}[s:e]"
        else:  # broadcast along the rows: the same for every block
            lines.append(f"    x{i} = in{i}.reshape({spans[k:]!r})")
            names[id(v)] = f"x{i}"
    targets = {}
    for j, v in enumerate(graph.outvars):
        dtype = param_source(namespace, np.dtype(v.aval.dtype))
        lines.append(f"    o{j} = xp.empty({(rows,) + shape[k:]!r}, dtype={dtype})")
        targets[id(v)] = f"o{j}[s:e]"
    lines.append(f"    for s in range(0, {rows}, {block}):")
    lines.append(f"        e = s + {block}")
    body = _emit_body(graph, names, namespace, targets, in_loop=True)
    lines += ["    " + line for line in body]
    returns = ", ".join(f"o{j}.reshape({shape!r})" for j in range(len(graph.outvars)))
    return python_function(name, params, lines + [f"    return [{returns}]"], namespace)


def param_source(namespace: dict, value) -> str:
    """A param as source text: ints and tuples of them inline, anything else by name."""
    if isinstance(value, int | tuple) and all(
        isinstance(v, int) for v in (value if isinstance(value, tuple) else (value,))
    ):
        return repr(value)
    key = f"p{len(namespace)}"
    namespace[key] = value
    return key


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned if cleaned[:1].isalpha() else f"f_{cleaned}"
