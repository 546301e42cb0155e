"""The trace stack, ``bind``, and the imperative autograd tape.

Every op ends in ``bind(prim, *tensors, **params)``:

* With no transform active it takes the fast path: the backend kernel runs on the
  arrays and the result is wrapped (no shape rule runs; if the kernel fails, the shape
  rule runs to turn the failure into a clear error), and recorded if an input requires grad.
* Otherwise the trace of the highest level among the inputs processes it (JVP,
  reverse mode, vmap, staging): each transform is a ``Trace`` subclass with one hook,
  ``process_primitive``. Traces are kept apart by levels, so nested transforms
  never confuse their perturbations.
* When an input requires grad (PyTorch style), a ``Node`` is recorded on the
  outputs; ``Tensor.backward`` later walks those nodes with the same vjp rules
  that ``fx.grad`` uses (see ``fluxion.transforms.autodiff.backward_pass``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading

import numpy as np

from fluxion.core.dtypes import is_float, is_inexact
from fluxion.core.primitive import NOT_DIFFERENTIABLE, ShapedArray
from fluxion.errors import FloatingPointCheckError, TracerError


class _Context(threading.local):
    """The state of transforms, grad mode and debugging: each thread has its own, as in
    PyTorch and JAX (no_grad in one thread leaves another's backward alone). ``fast``
    caches "nothing special is going on"."""

    def __init__(self):
        self.stack: list[Trace] = []
        # The graph being staged (core/staging.py), if any: every op is staged into it, even
        # one on concrete tensors only (so closures' tensors become inputs, not constants).
        self.dynamic: Trace | None = None
        self.grad_enabled = True
        self.settling = False  # writes made while a trace's state is settled are not noted
        self.recorders: list[dict] = []  # see recording_writes
        self.debug_nans = os.environ.get("FLUXION_DEBUG_NANS", "0") != "0"
        self.refresh()

    def refresh(self):
        self.fast = not self.stack and not self.debug_nans
        self.noting = bool(self.stack or self.recorders)  # owners of state call note_write


ctx = _Context()


class _Backend:
    """The array module every kernel gets as ``xp`` (backends/): one per process."""

    xp = np


backend = _Backend()


# ----------------------------------------------------------------------------- traces


class Trace:
    """An interpreter for one transform at one level of the stack."""

    def __init__(self, level: int):
        self.level = level
        # state written while this trace is the innermost (see note_write): (id(holder),
        # attribute) -> (holder, attribute, what it held before)
        self.noted: dict[tuple, tuple] = {}

    def lift(self, value):
        """Wrap a value from a lower level as a tracer of this trace."""
        raise NotImplementedError

    def process_primitive(self, prim, tracers, params):
        raise NotImplementedError

    def lower_state(self, value, holder, name):
        """What a slot of state written with ``value`` under this trace holds once the
        trace ends (a tracer of this trace must not stay behind)."""
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(level={self.level})"


# ----------------------------------------------------------------------------- staging
# While a function is staged, ``ctx.dynamic`` is its GraphTrace (core/staging.py): every op
# is staged into the graph, and what the function makes, reads and writes reaches the graph
# through these hooks. Nothing else looks at ``ctx.dynamic``.


def staging() -> bool:
    """Whether a function is being staged into a graph (a compiled function, or a control-flow body)."""
    return ctx.dynamic is not None


def is_staged(x) -> bool:
    """Whether ``x`` is a value of the graph being staged."""
    return ctx.dynamic is not None and getattr(x, "_trace", None) is ctx.dynamic


def note_made(tensor) -> None:
    """A concrete tensor made while staging: a constant of the graph."""
    if ctx.dynamic is not None:
        ctx.dynamic.born.add(id(tensor))


def note_grad_read(tensor) -> None:
    """A staged function reads ``tensor.grad``: the graph holds for calls where .grad is None
    (or not) as it is now, and reads .grad afresh at each call (backward() sets a new tensor)."""
    trace = ctx.dynamic
    if trace is not None and id(tensor) not in trace.grads_set:
        trace.grad_guards.setdefault(id(tensor), (tensor, tensor._grad is None))
        if tensor._grad is not None:
            trace.read_from.setdefault(id(tensor._grad), (tensor, "grad"))


def note_grad_set(tensor) -> None:
    if ctx.dynamic is not None:
        ctx.dynamic.grads_set.add(id(tensor))


def note_differentiates() -> None:
    """The staged function takes gradients itself (grad, vjp, backward() inside): its results
    are values, not a node on the caller's tape."""
    if ctx.dynamic is not None:
        ctx.dynamic.differentiates = True


def stage_write(op: str, target, value) -> None:
    """``target`` (a concrete tensor) updated in place with a staged value: the compiled
    function writes it back after each call."""
    if not is_staged(value):
        raise TracerError(f"{op}: cannot store a traced value into a concrete tensor here")
    ctx.dynamic.write(target, value)


def carry_kind(old, new) -> None:
    """``new`` replaces ``old`` in a staged function's result (an optimizer's update): it comes
    back of ``old``'s kind (see core/effects.register_kept_kind)."""
    if ctx.dynamic is not None and id(old) in ctx.dynamic.kinds:
        ctx.dynamic.kinds[id(new)] = ctx.dynamic.kinds[id(old)]


# ----------------------------------------------------------------------------- state


def note_write(holder, name: str, previous) -> None:
    """Called by whoever owns a piece of state (a module's buffers, the global random key,
    a tensor's .grad) just before it sets ``holder.name`` while a transform is active. When
    the innermost trace ends, the slot keeps what the trace makes of the value written
    (``Trace.lower_state``: the primal under grad and jvp; staging makes it an output of
    the graph) and passes to the enclosing trace; if the function raises, the slot
    gets back what it held before."""
    if ctx.settling:
        return
    if ctx.stack:
        ctx.stack[-1].noted.setdefault((id(holder), name), (holder, name, previous))
    for recorder in ctx.recorders:
        recorder.setdefault((id(holder), name), (holder, name, previous))


@contextlib.contextmanager
def recording_writes():
    """Collect the slots of state written in the block, each with what it held before:
    ``{key: (holder, attribute, previous)}`` (gradient checkpointing runs its function
    again in the backward pass from the state it first saw)."""
    recorder: dict = {}
    ctx.recorders.append(recorder)
    ctx.refresh()
    try:
        yield recorder
    finally:
        ctx.recorders.remove(recorder)
        ctx.refresh()


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # the "previous value" of an attribute a traced function created


def set_state(holder, name: str, value) -> None:
    """``setattr`` without noting the write (a trace settling its state); ``ABSENT``
    deletes an attribute the function created."""
    ctx.settling = True
    try:
        if value is ABSENT:
            delattr(holder, name)
        else:
            setattr(holder, name, value)
    finally:
        ctx.settling = False


def _settle(trace) -> None:
    written = [(holder, name, getattr(holder, name)) for holder, name, _ in trace.noted.values()]
    try:
        lowered = [trace.lower_state(value, holder, name) for holder, name, value in written]
    except Exception:
        _restore(trace)
        raise
    for (holder, name, value), low in zip(written, lowered):
        if low is not value:
            set_state(holder, name, low)
    if ctx.stack:  # the enclosing trace settles them in turn
        for key, record in trace.noted.items():
            ctx.stack[-1].noted.setdefault(key, record)


def _restore(trace) -> None:
    for holder, name, previous in trace.noted.values():
        set_state(holder, name, previous)


@contextlib.contextmanager
def new_trace(trace_type, *args):
    """Push a trace of ``trace_type`` one level above the current top; pop it on exit,
    settling the state the function wrote meanwhile (see ``note_write``)."""
    trace = trace_type(len(ctx.stack) + 1, *args)
    ctx.stack.append(trace)
    ctx.refresh()
    try:
        yield trace
    except BaseException:
        ctx.stack.pop()
        _restore(trace)
        raise
    else:
        ctx.stack.pop()
        _settle(trace)
    finally:
        ctx.refresh()


def level_of(x) -> int:
    trace = getattr(x, "_trace", None)
    return 0 if trace is None else trace.level


def top_trace(args):
    top = None
    for a in args:
        trace = getattr(a, "_trace", None)
        if trace is not None and (top is None or trace.level > top.level):
            top = trace
    return top


# ----------------------------------------------------------------------------- grad mode


class _GradMode(contextlib.ContextDecorator):
    # A stack of previous states: one instance may be entered again before it exits
    # (a recursive function decorated with @fx.no_grad()).
    def __init__(self, enabled: bool):
        self.enabled, self.prev = enabled, []

    def __enter__(self):
        self.prev.append(ctx.grad_enabled)
        ctx.grad_enabled = self.enabled

    def __exit__(self, *exc):
        ctx.grad_enabled = self.prev.pop()


def no_grad():
    """Context manager / decorator: ops record nothing for ``backward()``."""
    return _GradMode(False)


def enable_grad():
    """Context manager / decorator: ops record for ``backward()`` again."""
    return _GradMode(True)


def set_grad_enabled(enabled: bool):
    return _GradMode(enabled)


def is_grad_enabled() -> bool:
    return ctx.grad_enabled


# ----------------------------------------------------------------------------- bind


def bind(prim, *args, **params):
    """Apply ``prim`` to tensors; returns a Tensor (or a tuple for multi-result prims)."""
    if ctx.fast:  # no transform: concrete tensors (a leaked tracer's _value raises)
        out = _run_impl(prim, [a._value for a in args], params)
        if ctx.grad_enabled:
            for a in args:
                if a.requires_grad:
                    record(prim, params, args, out)
                    break
        return out
    trace = top_trace(args)
    if trace is not None and not _active(trace):
        raise TracerError(
            f"{prim.name}: an argument is a value traced by a transform that has already "
            f"returned ({trace!r}), at {user_frame()}: it leaked out of the function "
            "(stored in a global, an object or a closure); return it from the function instead"
        )
    if ctx.dynamic is not None and (trace is None or trace.level < ctx.dynamic.level):
        trace = ctx.dynamic
    if trace is None:
        out = _run_impl(prim, [a._concrete() for a in args], params)
    else:
        out = trace.process_primitive(prim, args, params)
    if ctx.grad_enabled:
        # The tape records at the level its tensors live on; staging takes concrete tensors
        # (a closure's parameters) into its graph, so they record at the staging level.
        level = 0 if trace is None else trace.level
        staged = trace is not None and trace is ctx.dynamic
        if any(a.requires_grad and (staged or level_of(a) == level) for a in args):
            record(prim, params, args, out)
    if ctx.debug_nans:
        _check_finite(prim, out)
    return out


def _active(trace) -> bool:
    stack = ctx.stack
    return trace.level <= len(stack) and stack[trace.level - 1] is trace


def _run_impl(prim, arrays, params):
    """Run the kernel and wrap its result(s) as tensors."""
    try:
        out = prim.impl(backend.xp, *arrays, **params)
    except Exception:
        # The kernel failed: let the shape/dtype rule explain why in fluxion's words.
        prim.abstract(*[ShapedArray(a.shape, a.dtype) for a in arrays], **params)
        raise
    if prim.multiple_results:
        return tuple(wrap(np.asarray(o)) for o in out)
    return wrap(out if type(out) is np.ndarray else np.asarray(out))


# Set by fluxion.core.tensor: Tensor needs bind for its operators, bind makes Tensors.
# ``wrap`` makes a kernel's result a tensor (no graph is being staged where kernels run).
from_array = wrap = None


# ----------------------------------------------------------------------------- the tape


class Node:
    """One recorded application of a primitive, for the reverse sweep.

    ``parents[i]`` is the input tensor gradients flow into (None if none does);
    ``primals``/``outputs`` are what the vjp rule needs. Outputs are stored as
    aliases without the autograd link so that no reference cycle forms.
    """

    __slots__ = ("name", "vjp", "params", "primals", "outputs", "parents", "multiple", "where")

    def __init__(self, name, vjp, params, primals, outputs, parents, multiple=False):
        self.name, self.vjp, self.params = name, vjp, params
        self.primals, self.outputs, self.parents = primals, outputs, parents
        self.multiple = multiple  # the vjp takes (and outputs hold) a list
        self.where = user_frame() if ctx.debug_nans else None

    def __repr__(self) -> str:
        return f"<{self.name.title().replace('_', '')}Backward>"


def record(prim, params, args, out):
    """Attach a Node to the outputs of ``prim`` (imperative autograd)."""
    outs, many = (out, True) if prim.multiple_results else ((out,), False)
    vjp = _zero_vjp if prim.vjp is NOT_DIFFERENTIABLE else prim.vjp
    parents = [a if a.requires_grad else None for a in args]
    aliases = [o._alias() for o in outs]
    attach(Node(prim.name, vjp, params, list(args), aliases, parents, many), outs)


def _zero_vjp(ct, primals, outputs, **params):
    # A piecewise-constant op (floor, sign...): its float outputs still require grad, as in
    # PyTorch, and backward() gives its inputs zero gradients, as fx.grad does.
    return tuple(from_array(np.zeros(a.shape, a._np_dtype)) for a in primals)


def attach(node, outs):
    for i, o in enumerate(outs):
        if is_inexact(o._np_dtype):
            o._node, o._out_index, o.requires_grad = node, i, True


# ----------------------------------------------------------------------------- debugging


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_frame() -> str:
    """``file:line`` of the innermost frame outside the fluxion package."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _check_finite(prim, out):
    for o in out if prim.multiple_results else (out,):
        if o._trace is None:
            check_finite(
                o._value, lambda: f"{prim.name}: produced a NaN or inf (at {user_frame()})"
            )


def check_finite(array, what) -> None:
    """Raise FloatingPointCheckError where a float ``array`` holds a NaN or inf; ``what``
    says where (a string, or a function making it: finding the user's frame costs)."""
    if is_float(array.dtype) and not np.isfinite(array).all():
        where = what() if callable(what) else what
        raise FloatingPointCheckError(
            f"{where}; inspect that op's inputs, or leave fx.debug_nans() to continue"
        )


class debug_nans:
    """Raise at the first op producing a NaN or inf, forward or backward, naming the op and
    the line of your code that ran it.

    As with ``torch.set_grad_enabled``, the call switches the check at once; used as ``with``
    (or as a decorator) it restores the previous setting when the block (the call) ends::

        fx.debug_nans(True)            # on from here; FLUXION_DEBUG_NANS=1 starts it on
        with fx.debug_nans():          # on inside the block only
            fx.log(fx.tensor(-1.0))    # raises FloatingPointCheckError naming `log`
        with fx.debug_nans(False):     # off inside, for code that makes infs on purpose
            fx.log(fx.tensor(0.0))
    """

    def __init__(self, enabled: bool = True):
        self.enabled, self.prev = bool(enabled), ctx.debug_nans
        self._switch(self.enabled)

    def __enter__(self):
        self._switch(self.enabled)  # again: the instance may have been made earlier
        return self

    def __exit__(self, *exc):
        self._switch(self.prev)

    def __call__(self, func):
        # a decorator checks inside its calls only: undo the switch, and enter a fresh
        # instance per call, so that a recursive call restores its own caller's setting
        self._switch(self.prev)
        enabled = self.enabled

        @functools.wraps(func)
        def checked(*args, **kwargs):
            with debug_nans(enabled):
                return func(*args, **kwargs)

        return checked

    @staticmethod
    def _switch(enabled: bool):
        ctx.debug_nans = enabled
        ctx.refresh()
