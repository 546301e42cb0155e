"""Staging: tracing a function into a Graph, with what it reads and writes besides its arguments.

``trace_graph`` runs a function on tracers of a ``GraphTrace``, which is the dynamic trace
(``ctx.dynamic``) meanwhile: every op, even one on concrete tensors only, is staged as an
equation, so tensors captured from closures become graph inputs read afresh at each call.
What the function writes besides its outputs becomes extra outputs of the graph (see
``_collect_effects``): in-place updates, and every slot of state whose owner notes its writes
(core/trace.py's ``note_write``: a module's buffers, ``.grad`` set by ``backward()``, the global
random key). ``trace_subgraph`` stages a control-flow body, or a jitted function called under
an outer transform. jit (transforms/jit.py) compiles and caches what is staged here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fluxion.core import dtypes
from fluxion.core.effects import carry_out, kept_kind
from fluxion.core.ir import Eqn, Graph, Literal, Var, eval_graph
from fluxion.core.primitive import ShapedArray
from fluxion.core.pytree import tree_flatten, tree_unflatten
from fluxion.core.tensor import Tensor, Tracer, to_tensor
from fluxion.core.trace import Trace, ctx, new_trace, set_state, user_frame
from fluxion.errors import TracerError

# Call primitives whose graph is inlined when staged into another graph (jit's, see
# transforms/jit.py): a jitted function inside a jitted one is one graph, one compile.
INLINED: set = set()


class GraphTracer(Tracer):
    __slots__ = ("var", "_weak")

    def __init__(self, trace, var, weak=False):
        self._init_tracer(trace)
        self.var, self._weak = var, weak

    @property
    def aval(self):
        return self.var.aval

    def _alias(self):
        return GraphTracer(self._trace, self.var)

    def _concrete(self):
        raise TracerError(
            f"{self._trace.fn_name}: a traced value ({self.dtype}{list(self.shape)}) was used where "
            f"Python needs a concrete one, at {user_frame()} (an if/while on a tensor, .item(), "
            ".numpy(), bool()); use fx.where or fx.cond/fx.while_loop for data-dependent control "
            "flow, mark the argument static (static_argnums=...), or compile with fallback=True"
        )


class GraphTrace(Trace):
    """Builds a Graph: one equation per primitive applied to its tracers."""

    def __init__(self, level, fn_name, nested=False):
        super().__init__(level)
        self.fn_name = fn_name
        self.nested = nested  # a control-flow body: values from outside become inputs
        self.invars, self.eqns = [], []
        self.born: set[int] = set()  # ids of tensors created while tracing: constants
        self.captured: dict[int, tuple] = {}  # id -> (tensor, var): closure inputs
        self.writes: dict[int, tuple] = {}  # id -> (tensor, tracer): in-place updates
        self.grads_set: set[int] = set()  # tensors whose .grad the function assigned
        self.differentiates = False  # it takes gradients itself (grad, vjp, backward inside)
        # id -> the kind of leaf a traced value comes back as (a trainable nn.Parameter): of
        # the arguments, and what an optimizer's update returns for them (core/effects.py)
        self.kinds: dict[int, type] = {}
        self.grad_guards: dict[int, tuple] = {}  # id -> (tensor, .grad was None when read)
        self.read_from: dict[int, tuple] = {}  # id of a tensor read from a slot -> the slot
        self.lines: dict[int, tuple] = {}  # under debug_nans: a value's id -> (op, user line)

    def new_input(self, aval, weak=False) -> GraphTracer:
        var = Var(aval)
        self.invars.append(var)
        return GraphTracer(self, var, weak)

    def to_var(self, x):
        if isinstance(x, GraphTracer) and x._trace is self:
            return x.var
        if x._trace is not None:
            if not (self.nested and x._trace.level < self.level):
                raise TracerError(
                    f"{self.fn_name}: a value from another transform leaked into jit tracing"
                )
            # a control-flow body closing over a value of an enclosing transform (an outer
            # jit's tracer, a vmapped or differentiated value): an input the caller passes
            if id(x) not in self.captured:
                self.captured[id(x)] = (x, Var(ShapedArray(x.shape, x._np_dtype)))
            return self.captured[id(x)][1]
        if id(x) in self.writes:
            return self.writes[id(x)][1].var
        if id(x) in self.born:
            return Literal(x._value)
        if id(x) not in self.captured:
            self.captured[id(x)] = (x, Var(ShapedArray(x.shape, x._np_dtype)))
        return self.captured[id(x)][1]

    def write(self, target: Tensor, value) -> None:
        self.writes[id(target)] = (target, value)

    def process_primitive(self, prim, tracers, params):
        if prim in INLINED:  # a jitted function inside one being traced: one graph, one compile
            return tuple(eval_graph(params["graph"], *tracers))
        inputs = [self.to_var(t) for t in tracers]
        avals = prim.abstract(*[v.aval for v in inputs], **params)
        outs = [Var(a) for a in (avals if prim.multiple_results else [avals])]
        self.eqns.append(Eqn(prim, inputs, params, outs))
        if ctx.debug_nans:  # the compiled code checks each value it computes (see _compile)
            where = user_frame()
            self.lines.update((id(v), (prim.name, where)) for v in outs)
        tracers_out = [GraphTracer(self, v) for v in outs]
        return tuple(tracers_out) if prim.multiple_results else tracers_out[0]


# ----------------------------------------------------------------------------- tracing


@dataclass
class Traced:
    """A function traced for one signature: its graph and how to call and unpack it."""

    graph: Graph
    captured: list  # tensors read as extra inputs, after the arguments
    out_tree: object
    out_static: dict  # output leaf index -> a non-tensor value returned as is
    effects: list  # slots written from the extra outputs, in order (see _collect_effects)
    constant: list  # (slot, value): slots written with the same non-tensor at each call
    # per captured tensor: (holder, attribute) to read afresh at each call, or None (the
    # tensor itself). A slot the function writes (the global key, a .grad, a module's
    # buffer) holds a new tensor after each call: reading the traced-time one would be stale.
    sources: list
    # (tensor, grad_was_none): the graph assumes each of these .grad states at a call's
    # start (backward inside sets .grad when it was None, accumulates otherwise)
    guards: list
    # Whether a call whose inputs require grad goes on the autograd tape, as one node (the
    # PyTorch face: a compiled model's output has a grad_fn). Not for a function that takes
    # gradients itself (a training step: grad or backward() inside), whose results are
    # plain values (the JAX face), nor for one that returns no float tensor.
    on_tape: bool
    out_kinds: dict  # output leaf index -> the kind it comes back as (an nn.Parameter)
    lines: dict  # under debug_nans: a value's id -> (the op making it, the user's line)
    checks: list = field(init=False)  # (tensor, source, aval) of each captured input

    def __post_init__(self):
        n = len(self.graph.invars) - len(self.captured)
        self.checks = [
            (t, src, var.aval)
            for t, src, var in zip(self.captured, self.sources, self.graph.invars[n:])
        ]

    def input_tensors(self, leaves) -> list:
        """The graph's inputs at this call: the argument leaves, then the captured tensors."""
        return list(leaves) + [
            t if src is None else getattr(*src) for t, src in zip(self.captured, self.sources)
        ]

    def guards_hold(self) -> bool:
        """The captured tensors still have the shapes and dtypes traced (``p.data = ...``
        may change them), and the .grad states are those assumed."""
        for t, was_none in self.guards:
            if (t.grad is None) != was_none:
                return False
        for t, src, aval in self.checks:
            current = t if src is None else getattr(*src)
            if current is None or (current.shape, current._np_dtype) != aval:
                return False
        return True


def trace_graph(fn, args_leaves, in_tree, fn_name, weak=None) -> Traced:
    previous = ctx.dynamic
    with new_trace(GraphTrace, fn_name) as trace:
        ctx.dynamic = trace
        try:
            weak = weak or [False] * len(args_leaves)
            tracers = [
                trace.new_input(ShapedArray(x.shape, x._np_dtype), w)
                for x, w in zip(args_leaves, weak)
            ]
            trace.kinds.update(
                (id(t), kind) for t, x in zip(tracers, args_leaves) if (kind := kept_kind(x))
            )
            args = tree_unflatten(in_tree, tracers)
            out = fn(*args)
            out_leaves, out_tree = tree_flatten(out)
            outvars, out_static = [], {}
            for i, o in enumerate(out_leaves):
                if isinstance(o, Tensor):
                    outvars.append(trace.to_var(o))
                else:
                    out_static[i] = o
            effects, effect_vars, constant, sources = _collect_effects(trace, args)
        finally:
            ctx.dynamic = previous
    captured = [t for t, _ in trace.captured.values()]
    graph = Graph(
        trace.invars + [v for _, v in trace.captured.values()], trace.eqns, outvars + effect_vars
    )
    return Traced(
        graph,
        captured,
        out_tree,
        out_static,
        effects,
        constant,
        [sources.get(id(t)) for t in captured],
        list(trace.grad_guards.values()),
        not trace.differentiates and any(dtypes.is_float(v.aval.dtype) for v in outvars),
        {i: trace.kinds[id(o)] for i, o in enumerate(out_leaves) if id(o) in trace.kinds},
        trace.lines,
    )


def _collect_effects(trace, args):
    """What the traced function wrote besides its outputs: ``(effects, vars, constant,
    sources)``. ``effects`` are the slots written after each call, in order, from ``vars``:
    a tensor's ``_value`` (in place), ``(holder, attribute)`` of state noted by its owner
    (a module's buffer, the global key, a .grad), or ``(k, attribute)`` of the k-th module
    among the call's arguments; ``constant``: (slot, value) written with a value that is
    no tensor (None). ``sources``: a captured tensor that a written slot held before ->
    that slot, read afresh at each call (each call writes a new tensor there). The slots
    get back what they held before: the compiled function writes them, not the tracing."""
    effects, effect_vars, constant, sources = [], [], [], dict(trace.read_from)

    def written(slot, value):
        if isinstance(value, Tensor):
            effects.append(slot)
            effect_vars.append(trace.to_var(value))
        else:  # None (a .grad cleared): the same at every call
            constant.append((slot, value))

    for target, value in trace.writes.values():
        written((target, "_value"), value)
    for k, name, value in carry_out(trace, args):  # into the modules it was given
        written((k, name), value)
    for holder, name, before in trace.noted.values():
        value = getattr(holder, name)
        set_state(holder, name, before)
        if isinstance(holder, Tracer) or id(holder) in trace.born:
            continue  # state of a value made while tracing: gone with it
        written((holder, name), value)
        if isinstance(before, Tensor) and id(before) in trace.captured:
            sources[id(before)] = (holder, name)
    trace.noted.clear()
    return effects, effect_vars, constant, sources


def outlive_trace(tensor: Tensor) -> Tensor:
    """A tensor made while tracing that lives on after it (an optimizer's new state):
    an input of the compiled function, read at each call, rather than a constant."""
    if ctx.dynamic is not None:
        ctx.dynamic.born.discard(id(tensor))
    return tensor


def trace_subgraph(fn, in_avals, name, weak=None):
    """Trace a control-flow body, or a jitted function under an outer transform:
    ``(graph, captured, out_tree)``. ``weak``: which inputs stand for Python numbers.

    The graph's inputs are the body's arguments followed by the values it closes over
    (``captured``: tensors or tracers of enclosing transforms, passed in by the caller).
    """
    previous = ctx.dynamic
    with new_trace(GraphTrace, name, True) as trace:
        ctx.dynamic = trace
        try:
            tracers = [
                trace.new_input(a, w) for a, w in zip(in_avals, weak or [False] * len(in_avals))
            ]
            out_leaves, out_tree = tree_flatten(fn(*tracers))
            outvars = [trace.to_var(to_tensor(o)) for o in out_leaves]
            if trace.noted or trace.writes:
                raise TracerError(
                    f"{name}: the body writes state (draws from the global random generator, "
                    "updates a module's buffers or a tensor in place); pass a key (fx.random) "
                    "as an argument and return new values from the body instead"
                )
        finally:
            ctx.dynamic = previous
            if previous is not None and trace.differentiates:
                previous.differentiates = True
    captured = [t for t, _ in trace.captured.values()]
    graph = Graph(trace.invars + [v for _, v in trace.captured.values()], trace.eqns, outvars)
    return graph, captured, out_tree
