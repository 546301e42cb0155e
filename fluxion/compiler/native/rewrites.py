"""The rewrites of a compiled graph for its native kernels, each type-checked as the
passes are (one that breaks the graph raises IRTypeError, never compiles): groups of one,
groups recomputing what they would read back, groups reading through views."""

from __future__ import annotations

import math

from fluxion.compiler.fusion import FUSED, as_group
from fluxion.compiler.native.emit import VIEWS, c_strides, small_matmul, supported, view_layout
from fluxion.compiler.passes import dead_code
from fluxion.core.dtypes import is_float
from fluxion.core.ir import Eqn, Graph, Literal, Var, typecheck
from fluxion.ops import primitives as P
from fluxion.ops.primitives import convert_p, matmul_p, reduce_sum_p, transpose_p


def rewrite(graph: Graph) -> Graph:
    """``graph`` through every rewrite, each result type-checked against ``graph``."""
    checked: dict = {}
    rewritten = graph
    for step in (groups_of_one, recompute_residuals, read_through_views):
        rewritten = step(rewritten)
        typecheck(rewritten, checked, like=graph)
    return rewritten


# Below this many elements a single elementwise op stays a NumPy call: as fast as calling
# a kernel, and one kernel less to compile.
SINGLE_OP_ELEMENTS = 4096


def groups_of_one(graph: Graph) -> Graph:
    """``graph`` with its large single elementwise equations and its stacks of small
    matmuls made groups of one."""

    def wanted(eqn):
        if eqn.prim is matmul_p:
            return small_matmul(*(v.aval for v in eqn.inputs))
        if not (eqn.prim.elementwise and eqn.prim.c_expr):
            return False
        large = math.prod(eqn.outputs[0].aval.shape) >= SINGLE_OP_ELEMENTS
        return large and supported(Graph(eqn.inputs, [eqn], eqn.outputs))

    return Graph(graph.invars, [as_group(e) if wanted(e) else e for e in graph.eqns], graph.outvars)


# Work a group may repeat to read one array less: a few ops per element cost less than
# reading and writing 4 bytes each from memory, up to about this many.
RECOMPUTED_OPS = 24


def recompute_residuals(graph: Graph) -> Graph:
    """``graph`` with each group recomputing the values it reads from an earlier group (made
    there by elementwise ops from the arrays that group reads) where that reads fewer bytes,
    and groups no longer writing what nobody reads then: the backward pass of an exact GELU
    reads its input and gradient, where it read three arrays the forward pass wrote."""
    made_in = {}  # value -> the group equation making it
    recomputed: set[int] = set()  # values a group now makes for itself
    eqns = []
    for eqn in graph.eqns:
        if eqn.prim is FUSED and supported(eqn.params["graph"]):
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
            eqn = Eqn(FUSED, [x for x, _ in kept], {"graph": group}, outputs)
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
            return Eqn(FUSED, inputs, {"graph": body}, eqn.outputs)
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


def read_through_views(graph: Graph) -> Graph:
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
        if eqn.prim is FUSED and supported(eqn.params["graph"]):
            eqn = _with_views(eqn, producer, readers, written)
        eqns.append(eqn)
    live = {id(v) for v in graph.outvars}
    kept = []
    for eqn in reversed(eqns):
        if eqn.prim not in VIEWS or id(eqn.outputs[0]) in live:
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
    return Eqn(FUSED, inputs, {"graph": Graph(invars, head + body + tail, outvars)}, outvars)


def _view_chain(v, producer: dict):
    """The array ``v`` is a view of and the views making it, first to last; the chain starts
    after the last reshape that would copy (its result is an array of its own)."""
    chain = []
    while id(v) in producer and producer[id(v)].prim in VIEWS:
        chain.insert(0, producer[id(v)])
        v = chain[0].inputs[0]
    start, layout = 0, (0, c_strides(v.aval.shape))
    for k, view in enumerate(chain):
        layout = view_layout(layout, view, math.prod(chain[start].inputs[0].aval.shape))
        if layout is None:  # start again from what this view reads
            start, base = k, view.inputs[0]
            layout = view_layout((0, c_strides(base.aval.shape)), view, math.prod(base.aval.shape))
        if layout is None:  # not even a view of its own input (size 0): an array
            start, layout = k + 1, (0, c_strides(view.outputs[0].aval.shape))
    chain = chain[start:]
    return (chain[0].inputs[0] if chain else v), chain
