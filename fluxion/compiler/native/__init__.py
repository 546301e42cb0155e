"""Native kernels: each fused group of a compiled graph (and each large single elementwise
op, and each stack of small matmuls) becomes one C loop. ``rewrites.py`` readies the graph,
``emit.py`` writes each group's loops, ``toolchain.py`` builds a compiled function's loops
with the system's C compiler into one shared library, keeps it in a cache on disk, and
loads it; ``caller`` wraps each kernel in a Python function. The loops are plain C:
Python's headers would take gcc longer to read than the loops take to compile. Python runs
them through ``_call.c``'s ``call``, the one extension module, the same for every kernel
(pip builds it at install).

A group of ten elementwise ops costs NumPy ten passes over memory and ten calls; in C it is
one pass that keeps every intermediate in a register. Measured on an exact GELU (erf, 7 ops):
1.7 ms for (32,128,1024) float32 against 30 ms for NumPy's passes, 0.016 ms against 0.16 ms
for (150,8,32).

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
``threads.KERNEL_GRAIN``) runs ``begin`` to ``end`` of its outermost loop along which no sum
runs, so every sum adds in one thread in one order: the bits are the same on any number of
threads. ``k0_split`` is that loop's length (in blocks, ``emit._cut``) and the most ranges
its work gains from; ``_call.c`` cuts it into ranges for ``fx.get_num_threads()`` threads.

A group goes native when every op has a ``c_expr`` (or is a sum, a view or a small matmul)
and every value a C type (float16 and bfloat16 stay on NumPy). Without a C compiler, or
when building, storing or loading fails, the groups run on NumPy and one warning says why.
``FLUXION_NATIVE_KERNELS=0`` keeps them on NumPy (for comparisons).
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.backends import threads
from fluxion.compiler import codegen
from fluxion.compiler.fusion import FUSED
from fluxion.compiler.native import emit, rewrites, toolchain
from fluxion.core.ir import Graph


def native_kernels(graph: Graph) -> tuple[Graph, dict]:
    """``graph`` rewritten for native kernels (``rewrites.rewrite``), and C kernels for its
    groups by equation index, all built in one go; each group also keeps its kernel as its
    ``compiled`` function (show_graph prints it). Equations without one run on NumPy, and
    all of them do where the kernels cannot be built."""
    if toolchain.usable_compiler() is None:
        return graph, {}
    grouped = rewrites.rewrite(graph)
    wanted = {}  # equation index -> its kernel's C, named "{name}" until names are given
    for k, eqn in enumerate(grouped.eqns):
        group = eqn.params["graph"] if eqn.prim is FUSED else None
        kernel = emit.kernel(group) if group is not None and group.compiled is None else None
        if kernel is not None:
            wanted[k] = emit.c_source(kernel, "{name}")
    # equations alike (a layer's, repeated) share one kernel: the compiler's time is by kernel
    names = {text: f"k{j}" for j, text in enumerate(dict.fromkeys(wanted.values()))}
    sources = {name: text.replace("{name}", name) for text, name in names.items()}
    library = toolchain.build(sources, emit.prelude()) if sources else None
    if library is None:
        return graph, {}
    kernels = {}
    for k, text in wanted.items():
        eqn, name = grouped.eqns[k], names[text]
        kernels[k] = eqn.params["graph"].compiled = caller(library, name, eqn, sources[name])
    return grouped, kernels


def caller(library: toolchain.Library, name: str, eqn, c_source: str):
    """A Python function that allocates an equation's outputs and runs kernel ``name`` of
    ``library`` into them through ``_call.c``'s ``call``."""
    sizes = [math.prod(v.aval.shape) * v.aval.dtype.itemsize for v in eqn.inputs + eqn.outputs]
    address, length, parts = library.kernels[name]
    kernel = np.array([address, len(eqn.inputs), length, parts, *sizes], np.int64).tobytes()
    namespace = dict(empty=np.empty, call=library.call, kernel=kernel, threads=threads.setting)
    namespace["library"] = library  # held: a library is unloaded once nothing holds it
    params = [f"in{i}" for i in range(len(eqn.inputs))]
    outs = [f"o{j}" for j in range(len(eqn.outputs))]
    body = [
        f"    {o} = empty({tuple(v.aval.shape)!r}, {codegen.param_source(namespace, np.dtype(v.aval.dtype))})"
        for o, v in zip(outs, eqn.outputs)
    ]
    results = f"[{', '.join(outs)}]" if eqn.prim.multiple_results else outs[0]
    # the thread count read at each call: fx.num_threads(1) around a compiled call holds
    body += [
        f"    call(kernel, threads.count, {', '.join(params + outs)})",
        f"    return {results}",
    ]
    run = codegen.python_function(eqn.prim.name, params, body, namespace)
    run.source += "\n" + c_source
    return run
