"""Elementwise fusion: runs of elementwise equations over one shape become one ``fused``
equation holding them as a sub-graph, which codegen runs a cache-sized block at a time.

    { lambda (a:f32[4096,1024]:cpu(0)) ;
      let b:f32[4096,1024]:cpu(0) = fused[graph=
              { lambda (c:f32[4096,1024]:cpu(0)) ;
              let d:f32[4096,1024]:cpu(0) = mul c 0.5
                  e:f32[4096,1024]:cpu(0) = erf c
                  ...
              in f }] a
      in b }

The pass walks the equations in order and keeps one open group per shape. An elementwise
equation (or a broadcast_to) joins the group of its shape; a float sum of a group's value
over its leading or trailing axes joins that group too (its pass accumulates the sum); any
other equation first closes (emits) the groups whose values it reads, and so does one that
reads a sum made in a group, so a group is emitted after everything it reads and before
everything that reads it, and equations that do not touch an open group may move ahead of
it. A closed group is emitted as its independent parts, those that share no array but
smaller ones broadcast to its shape (scalars): one optimizer update per parameter, not one
of all the parameters of a shape. A group's outputs are its values that something outside
the group reads.
"""

from __future__ import annotations

import math

from fluxion.compiler.codegen import subgraph_kernel
from fluxion.core.dtypes import is_float
from fluxion.core.ir import Eqn, Graph, Literal, Var
from fluxion.errors import ShapeError


class Fused:
    """What a ``fused`` equation applies: its group, the sub-graph ``graph``. Not a
    primitive: a group only appears in optimized graphs, which are run, never transformed,
    so it has no jvp, vjp or batch rule; codegen runs it through ``impl`` (or a native
    kernel), and the IR type-checks it through ``abstract``."""

    name, multiple_results, emit, elementwise, c_expr = "fused", True, None, False, None

    @staticmethod
    def impl(xp, *arrays, graph):
        return subgraph_kernel(graph, blocked=True)(*arrays)

    @staticmethod
    def abstract(*avals, graph):
        if [tuple(a.shape) for a in avals] != [tuple(a.shape) for a in graph.in_avals]:
            raise ShapeError(
                f"fused: inputs of shapes {[a.shape for a in avals]} given to a group built "
                f"for {[a.shape for a in graph.in_avals]}"
            )
        return graph.out_avals

    def __repr__(self) -> str:
        return self.name


FUSED = Fused()


def kernel_sources(graph: Graph) -> dict[int, str]:
    """The generated code of each ``fused`` group of ``graph`` by equation index (codegen
    calls it ``k{index}_fused``), for show_graph."""
    return {
        k: subgraph_kernel(eqn.params["graph"], blocked=True).source
        for k, eqn in enumerate(graph.eqns)
        if eqn.prim is FUSED
    }


def _fusible(eqn: Eqn) -> bool:
    # a broadcast_to joins too, so its group sees the array it repeats (a native kernel
    # reads that at stride 0; native/rewrites.py would also take it in as a view of the input)
    shape = eqn.outputs[0].aval.shape
    joins = eqn.prim.elementwise or eqn.prim.name == "broadcast_to"
    return joins and len(shape) > 0 and math.prod(shape) > 0


def _summed_in_group(eqn: Eqn, group_of: dict, sums: set) -> bool:
    """A float sum of a value of an open group (not itself a sum) over its leading or
    trailing axes, which the group's pass can accumulate (a column or a row sum) instead
    of reading it again."""
    if eqn.prim.name != "reduce_sum" or not eqn.params["axes"] or id(eqn.inputs[0]) in sums:
        return False
    x, axes = eqn.inputs[0].aval, tuple(eqn.params["axes"])
    if group_of.get(id(eqn.inputs[0])) != tuple(x.shape):
        return False  # not a value of an open group's shape (a sum in it, already)
    n = len(axes)
    return is_float(x.dtype) and axes in (
        tuple(range(n)),
        tuple(range(x.ndim - n, x.ndim)),
    )


def fuse_elementwise(graph: Graph) -> Graph:
    """Group elementwise equations of one output shape into ``fused`` equations."""
    readers: dict[int, set[int]] = {}  # value -> the equations (by id) that read it
    for eqn in graph.eqns:
        for v in eqn.inputs:
            readers.setdefault(id(v), set()).add(id(eqn))
    results = {id(v) for v in graph.outvars}
    out: list[Eqn] = []
    open_groups: dict[tuple, list[Eqn]] = {}  # shape -> members, in order
    group_of: dict[int, tuple] = {}  # value made by an open group -> that group's shape
    sums: set[int] = set()  # values summed inside their group: complete once it closes

    def close(shape):
        members = open_groups.pop(shape)
        for eqn in members:
            for v in eqn.outputs:
                group_of.pop(id(v), None)
        for part in _independent_parts(members, shape):
            if len(part) == 1:
                out.append(part[0])
                continue
            inside = {id(e) for e in part}
            outputs = [
                v
                for e in part
                for v in e.outputs
                if id(v) in results or readers.get(id(v), set()) - inside
            ]
            out.append(_fused_eqn(part, outputs))

    def close_readers_of(eqn, keep=None):
        shapes = {group_of.get(id(v)) for v in eqn.inputs} - {None}
        if not any(id(v) in sums and group_of.get(id(v)) == keep for v in eqn.inputs):
            shapes.discard(keep)
        for shape in shapes:
            close(shape)

    for eqn in graph.eqns:
        if _fusible(eqn):
            shape = tuple(eqn.outputs[0].aval.shape)
            close_readers_of(eqn, keep=shape)
            open_groups.setdefault(shape, []).append(eqn)
            group_of[id(eqn.outputs[0])] = shape
        elif _summed_in_group(eqn, group_of, sums):
            shape = group_of[id(eqn.inputs[0])]
            open_groups[shape].append(eqn)
            group_of[id(eqn.outputs[0])] = shape
            sums.add(id(eqn.outputs[0]))
        else:
            close_readers_of(eqn)
            out.append(eqn)
    for shape in list(open_groups):
        close(shape)
    return Graph(graph.invars, out, graph.outvars)


def _independent_parts(members: list[Eqn], shape: tuple) -> list[list[Eqn]]:
    """The members of a group over ``shape`` in the parts that share no value but smaller
    ones broadcast to it (scalars), each in order: one optimizer update per parameter, not
    one of all the parameters of a shape (each has the same native kernel, compiled once)."""
    part = list(range(len(members)))  # union-find: a member -> one of its part

    def root(k):
        while part[k] != k:
            part[k] = k = part[part[k]]
        return k

    seen = {}  # a value -> the first member that made or read it
    for k, eqn in enumerate(members):
        for v in eqn.inputs + eqn.outputs:
            if isinstance(v, Literal) or math.prod(v.aval.shape) < math.prod(shape):
                continue
            j = seen.setdefault(id(v), k)
            part[root(j)] = root(k)
    parts: dict[int, list[Eqn]] = {}
    for k, eqn in enumerate(members):
        parts.setdefault(root(k), []).append(eqn)
    return list(parts.values())


def as_group(eqn: Eqn) -> Eqn:
    """One elementwise equation as a group of one (the pass leaves single equations alone:
    on NumPy a group of one is one call anyway; a native kernel still saves the passes
    of a broadcast, a mask, a cast)."""
    return _fused_eqn([eqn], eqn.outputs)


def _fused_eqn(members: list[Eqn], outputs: list) -> Eqn:
    """One equation computing ``members`` and giving ``outputs``; array literals become
    inputs (a block loop slices inputs; only 0-d constants are the same for every block)."""
    made = {id(v) for e in members for v in e.outputs}
    inputs, sub_inputs, sub_of = [], [], {}

    def sub(v):
        if isinstance(v, Literal) and v.aval.ndim == 0 or id(v) in made:
            return v
        if id(v) not in sub_of:
            sub_of[id(v)] = Var(v.aval)
            inputs.append(v)
            sub_inputs.append(sub_of[id(v)])
        return sub_of[id(v)]

    eqns = [Eqn(e.prim, [sub(v) for v in e.inputs], e.params, e.outputs) for e in members]
    return Eqn(FUSED, inputs, {"graph": Graph(sub_inputs, eqns, outputs)}, outputs)
