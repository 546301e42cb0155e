"""jit / compile: trace a function into a Graph, optimize it, generate code, cache it.

Tracing stages every op into the graph (even ops on concrete tensors only), so
tensors captured from closures become graph inputs read afresh at each call; what
the function writes while traced is replayed after each call of the compiled code:
in-place updates (``p.data = ...``, ``x[...] = ...``), ``.grad`` set by ``backward()``
on captured parameters, and the global random key (each call draws fresh numbers,
reproducibly from ``fx.manual_seed``).
"""

from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from fluxion.compiler import codegen, passes
from fluxion.compiler.ir import Eqn, Graph, Literal, Var, pp_graph, typecheck
from fluxion.core import dtypes
from fluxion.core.primitive import ShapedArray
from fluxion.core.pytree import tree_flatten, tree_unflatten
from fluxion.core.tensor import Tensor, Tracer, to_tensor
from fluxion.core.trace import Trace, ctx, new_trace, user_frame
from fluxion.errors import InvalidArgumentError, TracerError

log = logging.getLogger("fluxion.jit")


class GraphTracer(Tracer):
    __slots__ = ("var",)

    def __init__(self, trace, var):
        self._init_tracer(trace)
        self.var = var

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

    def new_input(self, aval) -> GraphTracer:
        var = Var(aval)
        self.invars.append(var)
        return GraphTracer(self, var)

    def to_var(self, x):
        if isinstance(x, GraphTracer) and x._trace is self:
            return x.var
        if x._trace is not None:
            raise TracerError(
                f"{self.fn_name}: a value from another transform leaked into jit tracing"
            )
        if id(x) in self.writes:
            return self.writes[id(x)][1].var
        if id(x) in self.born:
            return Literal(x._value)
        if id(x) not in self.captured:
            # remember .grad as it was: backward() inside may set it, and it is restored
            self.captured[id(x)] = (x, Var(ShapedArray(x.shape, x._np_dtype)), x.grad)
        return self.captured[id(x)][1]

    def write(self, target: Tensor, value) -> None:
        self.writes[id(target)] = (target, value)

    def process_primitive(self, prim, tracers, params):
        inputs = [self.to_var(t) for t in tracers]
        avals = prim.abstract(*[v.aval for v in inputs], **params)
        outs = [Var(a) for a in (avals if prim.multiple_results else [avals])]
        self.eqns.append(Eqn(prim, inputs, params, outs))
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
    effects: list  # (holder, attribute) written from the extra outputs, in order


def _state_holders():
    from fluxion.ops.random import _GlobalKey

    return [(_GlobalKey, "value")]


def trace_graph(fn, args_leaves, in_tree, fn_name) -> Traced:
    holders = _state_holders()
    saved = [getattr(h, a) for h, a in holders]
    previous = ctx.dynamic
    with new_trace(GraphTrace, fn_name) as trace:
        ctx.dynamic = trace
        try:
            tracers = [trace.new_input(ShapedArray(x.shape, x._np_dtype)) for x in args_leaves]
            out = fn(*tree_unflatten(in_tree, tracers))
            out_leaves, out_tree = tree_flatten(out)
            outvars, out_static = [], {}
            for i, o in enumerate(out_leaves):
                if isinstance(o, Tensor):
                    outvars.append(trace.to_var(o))
                else:
                    out_static[i] = o
            effects, effect_vars = _collect_effects(trace, holders, saved)
        finally:
            ctx.dynamic = previous
            for (holder, attr), value in zip(holders, saved):
                setattr(holder, attr, value)
    captured = [t for t, _, _ in trace.captured.values()]
    graph = Graph(
        trace.invars + [v for _, v, _ in trace.captured.values()], trace.eqns, outvars + effect_vars
    )
    return Traced(graph, captured, out_tree, out_static, effects)


def _collect_effects(trace, holders, saved):
    """What the traced function wrote outside its outputs, as (holder, attr) and vars."""
    effects, effect_vars = [], []
    for target, value in trace.writes.values():
        effects.append((target, "_value"))
        effect_vars.append(value.var)
    for tensor, _, grad_before in list(trace.captured.values()):
        g = tensor.grad
        if isinstance(g, GraphTracer) and g._trace is trace:
            effects.append((tensor, "grad"))
            effect_vars.append(g.var)
            tensor.grad = grad_before  # each call of the compiled code writes the new one
    for (holder, attr), before in zip(holders, saved):
        value = getattr(holder, attr)
        if value is not before:
            effects.append((holder, attr))
            effect_vars.append(trace.to_var(value))
    return effects, effect_vars


def trace_subgraph(fn, in_avals, name):
    """Trace a control-flow body: ``(graph, captured, out_tree)``.

    The graph's inputs are the body's arguments followed by the values it closes over
    (``captured``: tensors or tracers of enclosing transforms, passed in by the caller).
    """
    holders = _state_holders()
    saved = [getattr(h, a) for h, a in holders]
    previous = ctx.dynamic
    with new_trace(GraphTrace, name, True) as trace:
        ctx.dynamic = trace
        try:
            tracers = [trace.new_input(a) for a in in_avals]
            out_leaves, out_tree = tree_flatten(fn(*tracers))
            outvars = [trace.to_var(to_tensor(o)) for o in out_leaves]
            changed = [getattr(h, a) is not v for (h, a), v in zip(holders, saved)]
        finally:
            ctx.dynamic = previous
            for (holder, attr), value in zip(holders, saved):
                setattr(holder, attr, value)
    if any(changed) or trace.writes:
        raise TracerError(
            f"{name}: the body draws from the global random generator or updates tensors in "
            "place; pass a key (fx.random) as an argument and return new values instead"
        )
    captured = [t for t, _, _ in trace.captured.values()]
    graph = Graph(trace.invars + [v for _, v, _ in trace.captured.values()], trace.eqns, outvars)
    return graph, captured, out_tree


# ----------------------------------------------------------------------------- jit


@dataclass
class CompilationStats:
    hits: int = 0
    misses: int = 0
    fallbacks: int = 0
    compile_time_ms: float = 0.0

    @property
    def hit_rate(self) -> float:
        calls = self.hits + self.misses + self.fallbacks
        return self.hits / calls if calls else 0.0

    def __repr__(self) -> str:
        return (
            f"CompilationStats(hits={self.hits}, misses={self.misses}, fallbacks={self.fallbacks}, "
            f"hit_rate={self.hit_rate:.1%}, compile_time={self.compile_time_ms:.1f}ms)"
        )


class _Entry:
    __slots__ = ("traced", "run", "optimized")

    def __init__(self, traced, run, optimized):
        self.traced, self.run, self.optimized = traced, run, optimized


_FALLBACK = object()
RETRACE_WARNING = 8


class Compiled:
    """A jitted function; see ``jit``."""

    def __init__(self, fn, static_argnums, static_argnames, show_graph, max_cache_size, fallback):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.static_argnums = (
            (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        )
        self.static_argnames = (
            (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        )
        self.show_graph, self.max_cache_size, self.fallback = show_graph, max_cache_size, fallback
        self.cache: OrderedDict = OrderedDict()
        self.stats = CompilationStats()
        self._last_key = None

    def clear_cache(self) -> None:
        self.cache.clear()

    def _split(self, args, kwargs):
        for n in self.static_argnums:
            if not -len(args) <= n < len(args):
                raise InvalidArgumentError(
                    f"jit: static_argnums {n} is out of range for {len(args)} argument(s)"
                )
        nums = {n % len(args) for n in self.static_argnums}
        static = tuple((n, args[n]) for n in sorted(nums)) + tuple(
            (k, kwargs[k]) for k in sorted(kwargs) if k in self.static_argnames
        )
        dynamic = (
            [a for i, a in enumerate(args) if i not in nums],
            {k: v for k, v in kwargs.items() if k not in self.static_argnames},
        )
        for _, value in static:
            try:
                hash(value)
            except TypeError:
                raise InvalidArgumentError(
                    f"jit: static argument {value!r} must be hashable"
                ) from None
        return nums, static, dynamic

    def __call__(self, *args, **kwargs):
        if ctx.stack:  # under an outer transform the function runs inline: it sees every op
            return self.fn(*args, **kwargs)
        nums, static, (dyn_args, dyn_kwargs) = self._split(args, kwargs)
        leaves, in_tree = tree_flatten((dyn_args, dyn_kwargs))
        leaves = [
            to_tensor(x) if isinstance(x, int | float | bool | np.ndarray | np.generic) else x
            for x in leaves
        ]
        for x in leaves:
            if not isinstance(x, Tensor):
                raise InvalidArgumentError(
                    f"jit: argument leaf {x!r} of type {type(x).__name__} is not a tensor; "
                    "pass it through static_argnums/static_argnames"
                )
        key = (in_tree, tuple((x.shape, x._np_dtype) for x in leaves), static)
        entry = self.cache.get(key)
        if entry is None:
            entry = self._compile(key, leaves, in_tree, nums, static)
        else:
            self.cache.move_to_end(key)
            if entry is not _FALLBACK:
                self.stats.hits += 1
        if entry is _FALLBACK:
            self.stats.fallbacks += 1
            return self.fn(*args, **kwargs)
        return self._run(entry, leaves)

    def _compile(self, key, leaves, in_tree, nums, static):
        self.stats.misses += 1
        self._explain_miss(key)
        start = time.perf_counter()

        def flat_fn(dyn_args, dyn_kwargs):
            full, it = [], iter(dyn_args)
            statics = dict(static)
            for i in range(len(dyn_args) + len(nums)):
                full.append(statics[i] if i in nums else next(it))
            kwargs = dyn_kwargs | {k: v for k, v in static if isinstance(k, str)}
            return self.fn(*full, **kwargs)

        try:
            traced = trace_graph(flat_fn, leaves, in_tree, self.__name__)
        except TracerError:
            if not self.fallback:
                raise
            self.cache[key] = _FALLBACK
            self.stats.misses -= 1
            return _FALLBACK
        typecheck(traced.graph)
        optimized = passes.optimize(traced.graph)
        run = codegen.compile_graph(optimized, name=self.__name__)
        entry = _Entry(traced, run, optimized)
        self.cache[key] = entry
        if len(self.cache) > self.max_cache_size:
            self.cache.popitem(last=False)
        self.stats.compile_time_ms += (time.perf_counter() - start) * 1e3
        if self.show_graph:
            print(
                f"--- {self.__name__}: optimized graph\n{pp_graph(optimized)}\n--- generated code\n{run.source}"
            )
        return entry

    def _explain_miss(self, key):
        previous, self._last_key = self._last_key, key
        if self.stats.misses > RETRACE_WARNING and self.stats.misses % RETRACE_WARNING == 1:
            warnings.warn(
                f"jit: {self.__name__} was traced {self.stats.misses} times; each new shape, dtype, "
                "structure or static value retraces (see FLUXION_LOG_COMPILES=1 for why)",
                stacklevel=4,
            )
        if not (os.environ.get("FLUXION_LOG_COMPILES") or log.isEnabledFor(logging.INFO)):
            return
        log.warning("jit: compiling %s: %s", self.__name__, explain_key_change(previous, key))

    def _run(self, entry, leaves):
        traced = entry.traced
        inputs = [x._value for x in leaves] + [t._value for t in traced.captured]
        outs = entry.run(*inputs)
        n_effects = len(traced.effects)
        results = outs[: len(outs) - n_effects] if n_effects else outs
        for (holder, attr), value in zip(traced.effects, outs[len(outs) - n_effects :]):
            _write_back(holder, attr, np.asarray(value))
        out_leaves, it = [], iter(results)
        for i in range(len(results) + len(traced.out_static)):
            out_leaves.append(
                traced.out_static[i]
                if i in traced.out_static
                else Tensor._from_array(np.asarray(next(it)))
            )
        return tree_unflatten(traced.out_tree, out_leaves)


def _write_back(holder, attr, value: np.ndarray):
    current = getattr(holder, attr)
    if isinstance(current, Tensor) and current._trace is None and current.shape == value.shape:
        current._value = value  # in place: the same tensor object stays an input next call
    else:
        setattr(holder, attr, Tensor._from_array(value))


def explain_key_change(previous, key) -> str:
    if previous is None:
        return "first call"
    (old_tree, old_avals, old_static), (tree, avals, static) = previous, key
    if old_tree != tree:
        return f"argument structure changed: {old_tree} -> {tree}"
    if old_static != static:
        return f"static arguments changed: {old_static} -> {static}"
    for i, (a, b) in enumerate(zip(old_avals, avals)):
        if a != b:
            return (
                f"argument leaf {i} changed from {dtypes.SHORT_NAMES[a[1]]}{list(a[0])} to "
                f"{dtypes.SHORT_NAMES[b[1]]}{list(b[0])}"
            )
    return "evicted from the cache (max_cache_size)"


def jit(
    fn=None,
    *,
    static_argnums=(),
    static_argnames=(),
    show_graph=False,
    max_cache_size=64,
    fallback=False,
):
    """Compile ``fn``: trace once per signature, optimize the graph, generate NumPy code.

    >>> @fx.jit
    ... def f(x):
    ...     return fx.sum(x * 2 * x)
    >>> f(fx.ones(3)), f.stats.misses
    (6.0:f32[]:cpu(0), 1)
    """
    if fn is None:
        return functools.partial(
            jit,
            static_argnums=static_argnums,
            static_argnames=static_argnames,
            show_graph=show_graph,
            max_cache_size=max_cache_size,
            fallback=fallback,
        )
    return Compiled(fn, static_argnums, static_argnames, show_graph, max_cache_size, fallback)


compile = jit


def make_graph(fn, *args, **kwargs) -> Graph:
    """The traced (unoptimized) graph of ``fn`` at these arguments."""
    leaves, in_tree = tree_flatten((args, kwargs))
    leaves = [to_tensor(x) for x in leaves]
    traced = trace_graph(lambda a, k: fn(*a, **k), leaves, in_tree, getattr(fn, "__name__", "fn"))
    return traced.graph


def xpr(fn, *args, **kwargs) -> str:
    """The IR of ``fn`` at these arguments, in the seed-001 format.

    >>> print(fx.xpr(lambda x: fx.sum(x * 2 * x), fx.ones(5)))
    { lambda (a:f32[5]:cpu(0)) ;
    let
    b:f32[5]:cpu(0) = mul a 2.0
    ...
    """
    return pp_graph(make_graph(fn, *args, **kwargs))
