"""Code generation: a Graph becomes one straight-line Python function over NumPy.

Each equation becomes one call of its primitive's kernel with the params bound
ahead of time, so a compiled call pays no tracing, no dispatch and no Tensor
wrapping between ops. ``source`` keeps the generated text (``show_graph=True``).
"""

from __future__ import annotations

import functools

from fluxion.compiler.ir import Graph, Literal
from fluxion.core.trace import ctx


def compile_graph(graph: Graph, name: str = "compiled"):
    """Return ``run(*arrays) -> list of arrays`` for ``graph``; ``run.source`` is its code."""
    xp = ctx.xp
    namespace: dict = {}
    names: dict[int, str] = {}

    def ref(v) -> str:
        if isinstance(v, Literal):
            key = f"c{len(namespace)}"
            namespace[key] = v.value
            return key
        return names[id(v)]

    for i, v in enumerate(graph.invars):
        names[id(v)] = f"in{i}"
    body = []
    for k, eqn in enumerate(graph.eqns):
        kernel = f"k{k}_{eqn.prim.name}"
        namespace[kernel] = functools.partial(eqn.prim.impl, xp, **eqn.params)
        args = ", ".join(ref(v) for v in eqn.inputs)
        for j, v in enumerate(eqn.outputs):
            names[id(v)] = f"v{k}_{j}" if eqn.prim.multiple_results else f"v{k}"
        outs = ", ".join(names[id(v)] for v in eqn.outputs) + (
            "," if eqn.prim.multiple_results else ""
        )
        body.append(f"    {outs} = {kernel}({args})")
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


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)
    return cleaned if cleaned[:1].isalpha() else f"f_{cleaned}"
