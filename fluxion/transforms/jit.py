"""jit / compile: trace a function into a Graph, optimize it, generate code, cache it.

Tracing stages every op into the graph (even ops on concrete tensors only), so
tensors captured from closures become graph inputs read afresh at each call. What the
function writes while traced becomes extra outputs of the compiled function, written
after each call: in-place updates (``p.data = ...``, ``x[...] = ...``), and every slot of
state whose owner notes its writes (core/trace.py's ``note_write``): a module's buffers
(running statistics, also of a module passed as an argument: the module of each call
gets them), ``.grad`` set by ``backward()``, the global random key (each call draws fresh
numbers, reproducibly from ``fx.manual_seed``). A slot the function writes, and a
parameter's .grad, are read afresh at every call (they hold new tensors after each); a
call whose closed-over tensors changed shape or dtype, or whose parameters' .grad went
from None to set (or back) when the function's backward() depends on it, traces again.

Under an outer transform a jitted function is one ``jit`` equation (``jit_p``, below) whose
rules derive compiled graphs for the transform; staged into another jit, it is inlined.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from fluxion.compiler import codegen, fusion, native, passes
from fluxion.core import dtypes
from fluxion.core.effects import call_key, explain_call_key, holders
from fluxion.core.ir import Graph, eval_graph, pp_graph
from fluxion.core.primitive import Primitive, ShapedArray
from fluxion.core.pytree import tree_flatten, tree_unflatten
from fluxion.core.staging import INLINED, trace_graph, trace_subgraph
from fluxion.core.tensor import Tensor, Tracer, to_tensor
from fluxion.core.trace import (
    bind,
    check_finite,
    ctx,
)
from fluxion.errors import IndexOutOfRangeError, InvalidArgumentError, TracerError
from fluxion.ops import primitives as P
from fluxion.transforms.control import batch_graph, jvp_graph, vjp_graph

log = logging.getLogger("fluxion.jit")


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
    __slots__ = ("key", "traced", "run", "optimized", "pullback")

    def __init__(self, key, traced, run, optimized):
        # the key object it is cached under: the LRU update finds it by identity, where a
        # new key would be compared in full again (a model's structure: ~0.3 ms)
        self.key = key
        self.traced, self.run, self.optimized = traced, run, optimized
        self.pullback = None  # compiled on the first backward() through this entry


_FALLBACK = object()
RETRACE_WARNING = 8


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off while compiling: tracing and the passes make
    ~10^5 short-lived objects, and the collector scanned the heap ~50 times meanwhile
    (workload A's first call: 30-40 ms of ~430)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class _Call:
    """A jitted function traced under an outer transform, for one signature."""

    graph: Graph
    captured: list  # what it closes over: inputs after the arguments, read at each call
    out_tree: object

    @property
    def reusable(self) -> bool:
        # a value of the outer transform (a tracer) is that call's alone
        return not any(isinstance(t, Tracer) for t in self.captured)

    def holds(self) -> bool:
        """The tensors it closes over still have the shapes and dtypes traced."""
        n = len(self.graph.invars) - len(self.captured)
        return all(
            (t.shape, t._np_dtype) == tuple(v.aval)
            for t, v in zip(self.captured, self.graph.invars[n:])
        )


_INLINE = object()  # a function that runs inline under outer transforms


class Compiled:
    """A jitted function; see ``jit``."""

    def __init__(self, fn, static_argnums, static_argnames, show_graph, max_cache_size, fallback):
        functools.update_wrapper(self, fn)
        if not hasattr(self, "__name__"):  # a callable object: fx.jit(model)
            self.__name__ = type(fn).__name__
        self.fn = fn
        self.static_argnums = (
            (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        )
        self.static_argnames = (
            (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        )
        self.show_graph, self.max_cache_size, self.fallback = show_graph, max_cache_size, fallback
        self.cache: OrderedDict = OrderedDict()
        self.calls: OrderedDict = OrderedDict()  # signature -> _Call, under outer transforms
        self._lock = threading.RLock()
        self.stats = CompilationStats()
        self._last_key = None

    def clear_cache(self) -> None:
        self.cache.clear()
        self.calls.clear()

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

    def _leaves(self, args, kwargs):
        """``(nums, static, dynamic, leaves, in_tree, weak)`` of a call: the static
        arguments apart, the dynamic ones flattened to tensors, ``weak`` where a leaf was
        a Python number (it takes the dtype of what it meets, as eagerly)."""
        nums, static, dynamic = self._split(args, kwargs)
        leaves, in_tree = tree_flatten(dynamic)
        weak = tuple(
            isinstance(x, int | float | bool) and not isinstance(x, np.generic) for x in leaves
        )
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
        return nums, static, dynamic, leaves, in_tree, weak

    def __call__(self, *args, **kwargs):
        if ctx.stack:
            return self._call_under_transform(args, kwargs)
        nums, static, (dyn_args, dyn_kwargs), leaves, in_tree, weak = self._leaves(args, kwargs)
        # static values compare with their types: 2 == 2.0 == True, yet x * 2 and x * 2.0
        # give different dtypes
        key = (
            in_tree,
            tuple((x.shape, x._np_dtype, w) for x, w in zip(leaves, weak)),
            static,
            _typed(static),
            # what the graph depends on beyond the arguments' structure (core/effects.py):
            # a Module's train/eval mode (dropout), fx.autocast's dtype (the casts it holds)
            call_key(in_tree),
            ctx.debug_nans,  # the compiled code checks every value it computes, or none
        )
        with self._lock:  # threads calling it for the first time at once compile it once
            entry = self.cache.get(key)
            if entry is None:
                entry = self._compile(key, leaves, in_tree, nums, static)
            elif entry is not _FALLBACK and not entry.traced.guards_hold():
                entry = self._compile(key, leaves, in_tree, nums, static, stale=entry)
            else:
                self.cache.move_to_end(key if entry is _FALLBACK else entry.key)
                if entry is not _FALLBACK:
                    self.stats.hits += 1
        inputs = entry.traced.input_tensors(leaves) if entry is not _FALLBACK else None
        run = self._run
        if inputs is not None and ctx.grad_enabled and entry.traced.on_tape:
            if any(x.requires_grad for x in inputs):
                in_place = any(attr == "_value" for _, attr in entry.traced.effects)
                if in_place or entry.traced.out_static:
                    # backward() recomputes from the inputs, which an in-place write changes
                    entry = _FALLBACK
                    if not self.stats.fallbacks:
                        warnings.warn(
                            f"jit: {self.__name__} runs op by op: its inputs require grad and "
                            "it updates a tensor in place or returns non-tensors; compile the "
                            "whole step (backward() inside) or return the new values instead",
                            stacklevel=2,
                        )
                else:
                    run = self._run_on_tape
        if entry is _FALLBACK:
            self.stats.fallbacks += 1
            return self.fn(*args, **kwargs)
        try:
            return run(entry, inputs, (dyn_args, dyn_kwargs))
        except IndexOutOfRangeError as compiled:
            # the compiled code indexes flattened arrays; run op by op, the failing op
            # names the index in the user's coordinates (nothing was written yet)
            try:
                self.fn(*args, **kwargs)
            except IndexError as eager:
                raise eager from None
            raise compiled from None

    def _with_statics(self, nums, static):
        """The function of the dynamic arguments alone, the static ones put back in place."""

        def flat_fn(dyn_args, dyn_kwargs):
            full, it = [], iter(dyn_args)
            statics = dict(static)
            for i in range(len(dyn_args) + len(nums)):
                full.append(statics[i] if i in nums else next(it))
            kwargs = dyn_kwargs | {k: v for k, v in static if isinstance(k, str)}
            return self.fn(*full, **kwargs)

        return flat_fn

    def _call_under_transform(self, args, kwargs):
        """Under an outer transform (grad, vmap, jvp, another jit): one ``jit`` equation over
        the function's graph, whose rules derive the graphs the transform needs (its vjp, its
        vmap), each compiled once. A function the outer transform must see op by op runs
        inline: one that writes state (a module's buffers, the global random key, .grad) or
        returns non-tensors, one that needs concrete values, and any under debug_nans."""
        if ctx.debug_nans:
            return self.fn(*args, **kwargs)
        nums, static, _, leaves, in_tree, weak = self._leaves(args, kwargs)
        key = (
            in_tree,
            tuple((x.shape, x._np_dtype, w) for x, w in zip(leaves, weak)),
            static,
            _typed(static),
            call_key(in_tree),
        )
        with self._lock:
            call = self.calls.get(key)
            if call is None or (call is not _INLINE and not call.holds()):
                call = self._trace_call(leaves, in_tree, weak, nums, static)
                if call is _INLINE or call.reusable:
                    self.calls[key] = call
                    if len(self.calls) > self.max_cache_size:
                        self.calls.popitem(last=False)
        if call is _INLINE:
            return self.fn(*args, **kwargs)
        outs = bind(jit_p, *leaves, *call.captured, graph=call.graph, fn=self)
        return tree_unflatten(call.out_tree, outs)

    def _trace_call(self, leaves, in_tree, weak, nums, static):
        flat_fn = self._with_statics(nums, static)

        def tensors_only(*tracers):
            out = flat_fn(*tree_unflatten(in_tree, list(tracers)))
            if not all(isinstance(o, Tensor) for o in tree_flatten(out)[0]):
                raise TracerError(f"{self.__name__}: returns values that are no tensors")
            return out

        avals = [ShapedArray(x.shape, x._np_dtype) for x in leaves]
        try:
            graph, captured, out_tree = trace_subgraph(tensors_only, avals, self.__name__, weak)
        except TracerError:
            return _INLINE
        return _Call(graph, captured, out_tree)

    @_collector_paused()
    def _compile(self, key, leaves, in_tree, nums, static, stale=None):
        self.stats.misses += 1
        self._explain_miss(key, stale)
        start = time.perf_counter()

        try:
            traced = trace_graph(
                self._with_statics(nums, static),
                leaves,
                in_tree,
                self.__name__,
                [a[2] for a in key[1]],
            )
        except TracerError:
            if not self.fallback:
                raise
            self.cache[key] = _FALLBACK
            self.stats.misses -= 1
            return _FALLBACK
        debugging = key[-1]  # debug_nans: each value checked, none hidden inside a kernel
        optimized = passes.optimize(traced.graph, fuse=not debugging)
        optimized, kernels = (optimized, {}) if debugging else native.native_kernels(optimized)
        checks = _finite_checks(traced.lines, self.__name__) if debugging else None
        run = codegen.compile_graph(optimized, self.__name__, kernels, checks)
        entry = _Entry(key, traced, run, optimized)
        self.cache[key] = entry
        if len(self.cache) > self.max_cache_size:
            self.cache.popitem(last=False)
        self.stats.compile_time_ms += (time.perf_counter() - start) * 1e3
        if self.show_graph:
            print(
                f"--- {self.__name__}: optimized graph\n{pp_graph(optimized)}\n--- generated code\n{run.source}"
            )
            fused = fusion.kernel_sources(optimized)
            sources = fused | {k: f.source for k, f in kernels.items()}
            for k, source in sorted(sources.items()):
                what = "a fused group of elementwise ops" if k in fused else "a native kernel"
                print(f"--- k{k}_{optimized.eqns[k].prim.name}: {what}\n{source}")
        return entry

    def _explain_miss(self, key, stale=None):
        previous, self._last_key = self._last_key, key
        if self.stats.misses > RETRACE_WARNING and self.stats.misses % RETRACE_WARNING == 1:
            warnings.warn(
                f"jit: {self.__name__} was traced {self.stats.misses} times; each new shape, dtype, "
                "structure or static value retraces (see FLUXION_LOG_COMPILES=1 for why)",
                stacklevel=5,  # the caller's line: past _compile, its decorator and __call__
            )
        if not (os.environ.get("FLUXION_LOG_COMPILES") or log.isEnabledFor(logging.INFO)):
            return
        why = (
            "a tensor it closes over changed shape or dtype, or the .grad of one was set or "
            "cleared, since it was traced"
            if stale is not None
            else explain_key_change(previous, key, self.fn)
        )
        log.warning("jit: compiling %s: %s", self.__name__, why)

    def _run_on_tape(self, entry, inputs, args):
        """One node of the autograd tape: the compiled graph forward, and for backward() a
        compiled pullback of the traced graph (it recomputes the forward pass inside); the
        state it writes (running statistics) is written after the forward pass."""
        from fluxion.ops.creation import zeros
        from fluxion.transforms.autodiff import _record_call

        traced = entry.traced

        def forward(primals):
            outs = self._call_graph(entry.run, [x._value for x in primals])
            return [Tensor._from_array(np.asarray(o)) for o in outs], primals

        def backward(primals, cts):
            if entry.pullback is None:
                entry.pullback = jit(_pullback(traced.graph))
            cts = [
                zeros(v.aval.shape, v.aval.dtype) if c is None else c
                for c, v in zip(cts, traced.graph.outvars)
            ]
            return entry.pullback([x.detach() for x in primals], cts)

        outs = _record_call(f"jit[{self.__name__}]", inputs, forward, backward)
        n_results = len(outs) - len(traced.effects)
        _write_effects(traced, [o._value for o in outs[n_results:]], args)
        return tree_unflatten(traced.out_tree, outs[:n_results])

    def _call_graph(self, run, arrays):
        try:
            return run(*arrays)
        except IndexError as e:  # values (indices) are only known now, not at trace time
            raise IndexOutOfRangeError(
                f"{self.__name__} (compiled): {e}; an index (a gather, take, embedding lookup) is "
                "out of range for the axis it indexes; run it eagerly to see which op"
            ) from None

    def _run(self, entry, inputs, args):
        traced = entry.traced
        outs = self._call_graph(entry.run, [x._value for x in inputs])
        n_results = len(outs) - len(traced.effects)
        results = outs[:n_results]
        _write_effects(traced, outs[n_results:], args)
        out_leaves, it = [], iter(results)
        for i in range(len(results) + len(traced.out_static)):
            if i in traced.out_static:
                out_leaves.append(traced.out_static[i])
            elif i in traced.out_kinds:  # an nn.Parameter, as adamw_update returns it eagerly
                out_leaves.append(traced.out_kinds[i](np.asarray(next(it))))
            else:
                out_leaves.append(Tensor._from_array(np.asarray(next(it))))
        return tree_unflatten(traced.out_tree, out_leaves)


# ------------------------------------------------------------- jit under outer transforms
# The JAX pjit / closed_call model: a jitted function called under a transform is one
# equation over its graph; the rules below make the graphs the transform needs from it
# (transforms/control.py's jvp_graph, vjp_graph, batch_graph, each made once per graph), and its
# kernel compiles a graph once, through the same passes as a top-level call. Staged into
# another jit's graph, it is inlined (GraphTrace.process_primitive): one graph, one compile.


@_collector_paused()
def _compile_call(graph: Graph, fn: Compiled):
    start = time.perf_counter()
    optimized, kernels = native.native_kernels(passes.optimize(graph))
    graph.compiled = codegen.compile_graph(optimized, fn.__name__, kernels)
    fn.stats.misses += 1
    fn.stats.compile_time_ms += (time.perf_counter() - start) * 1e3


def _jit_impl(xp, *arrays, graph, fn):
    if graph.compiled is None:
        _compile_call(graph, fn)
    else:
        fn.stats.hits += 1
    return fn._call_graph(graph.compiled, list(arrays))


def _jit_aval(*avals, graph, fn):
    want = [(tuple(a.shape), np.dtype(a.dtype)) for a in graph.in_avals]
    if [(tuple(a.shape), np.dtype(a.dtype)) for a in avals] != want:
        raise TracerError(f"jit[{fn.__name__}]: internal error: inputs do not match the graph's")
    return graph.out_avals


def _jit_jvp(primals, tangents, *, graph, fn):
    tangents = [
        P.zeros(x.shape, x._np_dtype) if t is None else t for x, t in zip(primals, tangents)
    ]
    outs = bind(jit_p, *primals, *tangents, graph=jvp_graph(graph), fn=fn)
    n = len(graph.outvars)
    return outs[:n], outs[n:]


def _jit_vjp(cts, primals, outputs, *, graph, fn):
    in_cts = bind(jit_p, *primals, *cts, graph=vjp_graph(graph), fn=fn)
    return tuple(c if dtypes.is_inexact(x._np_dtype) else None for c, x in zip(in_cts, primals))


def _jit_batch(args, dims, *, graph, fn):
    size = P.batch_size(args, dims)
    outs = bind(jit_p, *args, graph=batch_graph(graph, dims, size), fn=fn)
    return outs, [0] * len(outs)


jit_p = Primitive(
    "jit",
    impl=_jit_impl,
    abstract=_jit_aval,
    jvp=_jit_jvp,
    vjp=_jit_vjp,
    batch=_jit_batch,
    multiple_results=True,
)
INLINED.add(jit_p)


def _finite_checks(lines: dict, fn_name: str) -> dict:
    """Under debug_nans: for each value the compiled code computes (by id), a function
    raising where it holds a NaN or an inf, naming the op and the line that traced it."""
    return {
        v: functools.partial(
            check_finite, what=f"{op}: produced a NaN or inf (at {where}, compiled in {fn_name})"
        )
        for v, (op, where) in lines.items()
    }


def _write_effects(traced, values, args) -> None:
    """Write what a call computed for each slot the function writes (``values``, in the
    order of ``traced.effects``), and the constant ones; ``args``: the call's arguments."""
    given = []  # the modules among the arguments, found once if one is written

    def target(holder):
        if not isinstance(holder, int):
            return holder
        given[:] = given or holders(args)
        return given[holder]

    for (holder, attr), value in zip(traced.effects, values):
        _write_back(target(holder), attr, np.asarray(value))
    for (holder, attr), value in traced.constant:
        setattr(target(holder), attr, value)


def _pullback(graph: Graph):
    """``(inputs, cotangents) -> input cotangents`` of ``graph`` (None for non-float inputs)."""
    from fluxion.transforms.autodiff import vjp

    floats = [i for i, v in enumerate(graph.invars) if dtypes.is_inexact(np.dtype(v.aval.dtype))]

    def pullback(inputs, cts):
        def f(*wrt):
            full = list(inputs)
            for i, x in zip(floats, wrt):
                full[i] = x
            return eval_graph(graph, *full)

        _, vjp_fn = vjp(f, *[inputs[i] for i in floats])
        grads = dict(zip(floats, vjp_fn(list(cts))))
        return [grads.get(i) for i in range(len(inputs))]

    return pullback


def _write_back(holder, attr, value: np.ndarray):
    if attr == "_value":  # an in-place update (p.data = ..., x[...] = ...): same object
        holder._value = value
    else:  # a new tensor, as eagerly (a .grad or key the caller kept must not change)
        setattr(holder, attr, Tensor._from_array(value))


def explain_key_change(previous, key, fn=None) -> str:
    """Why ``key`` missed the cache, against the ``previous`` key compiled: which argument
    (by name when ``fn``'s signature gives one) changed from what shape/dtype to what."""
    if previous is None:
        return "first call"
    (old_tree, old_avals, old_static, old_types, old_calls, old_nans) = previous
    (tree, avals, static, types, calls, nans) = key
    names = _argument_names(fn, static)
    if old_calls != calls:
        return explain_call_key(old_calls, calls)
    if old_nans != nans:
        return f"fx.debug_nans was switched {'on' if nans else 'off'}"
    if old_tree != tree:
        return f"argument structure changed: {_name_tree(old_tree)} -> {_name_tree(tree)}"
    if old_static != static or old_types != types:
        changed = [
            f"{names(k)}: {old!r} -> {new!r}"
            for (k, old), (_, new) in zip(old_static, static)
            if _typed(old) != _typed(new) or old != new
        ]
        return "static argument changed: " + (
            "; ".join(changed) or f"{dict(old_static)} -> {dict(static)}"
        )
    paths = _leaf_paths(tree)
    changed = [
        f"{names(path)} changed from {_aval_text(a)} to {_aval_text(b)}"
        for path, a, b in zip(paths, old_avals, avals)
        if a != b
    ]
    return "; ".join(changed) or "compiled before, then evicted (max_cache_size) or cleared"


def _typed(value):
    if type(value) is tuple:
        return tuple(_typed(v) for v in value)
    if isinstance(value, tuple | frozenset):
        return (type(value), tuple(_typed(v) for v in value))
    return type(value)


def _aval_text(aval) -> str:
    shape, dtype, weak = aval
    if weak:
        return f"a Python {('bool', 'int', 'float')[dtypes.kind(np.dtype(dtype))]}"
    return f"{dtypes.SHORT_NAMES[np.dtype(dtype)]}[{','.join(map(str, shape))}]"


def _leaf_paths(tree) -> list:
    """One path per leaf of the (args, kwargs) structure: (argument, "['w'][0]")."""

    def walk(node, suffix):
        if node.node_type is None:
            return [suffix]
        keys = node.aux if node.node_type is dict else range(len(node.children))
        return [p for k, c in zip(keys, node.children) for p in walk(c, f"{suffix}[{k!r}]")]

    args, kwargs = tree.children
    return [(i, p) for i, c in enumerate(args.children) for p in walk(c, "")] + [
        (k, p) for k, c in zip(kwargs.aux, kwargs.children) for p in walk(c, "")
    ]


def _name_tree(tree) -> str:
    args, kwargs = tree.children
    return f"args {args!r}, kwargs {kwargs!r}"


def _argument_names(fn, static):
    """``name(k)`` or ``name((k, path))``: an argument by its parameter name. ``k`` is a
    keyword, or the index among the dynamic (non-static) positional arguments."""
    import inspect

    try:
        params = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    static_positions = {k for k, _ in static if isinstance(k, int)}

    def position(dynamic_index):  # the dynamic argument's index among all positional ones
        pos = -1
        for _ in range(dynamic_index + 1):
            pos += 1
            while pos in static_positions:
                pos += 1
        return pos

    def name(k, path="", static_arg=False):
        if isinstance(k, str):
            return f"argument {k}{path}"
        pos = k if static_arg else position(k)
        label = params[pos] if pos < len(params) else f"#{pos}"
        return f"argument {label}{path} (positional {pos})"

    def describe(item):
        if isinstance(item, tuple):
            return name(*item)
        return name(item, static_arg=True)

    return describe


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
