"""Code generation: a Graph becomes one straight-line Python function over the backend.

* Primitives with an ``emit`` template (ufuncs, reshapes, sums...) are written as direct
  calls; the others call their kernel with the params bound ahead of time.
* Memory planning: an elementwise op writes into the buffer of an input that dies there
  (``xp.exp(v3, out=v3)``) when that buffer was allocated by this function, has the
  output's shape and dtype, and was never handed to an op that might return a view of it.
* Values are deleted after their last use, so the allocator can reuse their memory.

``source`` keeps the generated text (``show_graph=True`` prints it).
"""

from __future__ import annotations

import functools

from fluxion.compiler.ir import Graph, Literal
from fluxion.core.trace import ctx


def compile_graph(graph: Graph, name: str = "compiled"):
    """Return ``run(*arrays) -> list of arrays`` for ``graph``; ``run.source`` is its code."""
    namespace: dict = {"xp": ctx.xp}
    names: dict[int, str] = {}
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
    owned: set[int] = set()  # buffers this function allocated (outputs of emitted ufuncs)

    def ref(v) -> str:
        if isinstance(v, Literal):
            key = f"c{len(namespace)}"
            namespace[key] = v.value
            return key
        return names[id(v)]

    for i, v in enumerate(graph.invars):
        names[id(v)] = f"in{i}"
    body = []
    for k, eqn in enumerate(eqns):
        args = ", ".join(ref(v) for v in eqn.inputs)
        for j, v in enumerate(eqn.outputs):
            names[id(v)] = f"v{k}_{j}" if eqn.prim.multiple_results else f"v{k}"
        outs = ", ".join(names[id(v)] for v in eqn.outputs) + (
            "," if eqn.prim.multiple_results else ""
        )
        if eqn.prim.emit is not None:
            out = eqn.outputs[0]
            params = {k: _param(namespace, v) for k, v in eqn.params.items()}
            reusable = "{out}" in eqn.prim.emit and next(
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
            out_clause = f", out={names[id(reusable)]}" if reusable else ""
            body.append(f"    {outs} = {eqn.prim.emit.format(args=args, out=out_clause, **params)}")
            if (
                "{out}" in eqn.prim.emit
            ):  # a ufunc: its result is a fresh buffer (or the reused one)
                owned.add(id(out))
        else:
            kernel = f"k{k}_{eqn.prim.name}"
            namespace[kernel] = functools.partial(eqn.prim.impl, ctx.xp, **eqn.params)
            body.append(f"    {outs} = {kernel}({args})")
        dead = sorted(
            {
                names[id(v)]
                for v in eqn.inputs
                if not isinstance(v, Literal) and last_use[id(v)] == k
            }
            | {names[id(v)] for v in eqn.outputs if id(v) not in last_use}
        )
        if dead:
            body.append(f"    del {', '.join(dead)}")
    returns = ", ".join(ref(v) for v in graph.outvars)
    source = "\n".join(
        [f"def {_identifier(name)}({', '.join(f'in{i}' for i in range(len(graph.invars)))}):"]
        + body
        + [f"    return [{returns}]"]
    )
    exec(compile(source, f"<fluxion.jit {name}>", "exec"), namespace)
    run = namespace[_identifier(name)]
    run.source = source
    return run


def _param(namespace: dict, value) -> str:
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
