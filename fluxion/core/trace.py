"""The trace stack, ``bind``, and the imperative autograd tape.

Every op ends in ``bind(prim, *tensors, **params)``:

* With no transform active and no input requiring grad it takes the fast path: the
  backend kernel runs on the arrays and the result is wrapped (no shape rule runs;
  if the kernel fails, the shape rule runs to turn the failure into a clear error).
* Otherwise the trace of the highest level among the inputs processes it (JVP,
  reverse mode, vmap, jit): each transform is a ``Trace`` subclass with one hook,
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

import numpy as np

from fluxion.core.primitive import NOT_DIFFERENTIABLE, ShapedArray
from fluxion.errors import FloatingPointCheckError


class _Context:
    """Process-wide state. ``fast`` caches "nothing special is going on"."""

    __slots__ = ("stack", "grad_enabled", "debug_nans", "fast", "xp", "dynamic")

    def __init__(self):
        self.stack: list[Trace] = []
        # The jit trace being built, if any: every op inside jit is staged into it, even
        # one on concrete tensors only (so closures' tensors become inputs, not constants).
        self.dynamic: Trace | None = None
        self.grad_enabled = True
        self.debug_nans = os.environ.get("FLUXION_DEBUG_NANS", "0") != "0"
        self.xp = np
        self.refresh()

    def refresh(self):
        self.fast = not self.stack and not self.debug_nans


ctx = _Context()


# ----------------------------------------------------------------------------- traces


class Trace:
    """An interpreter for one transform at one level of the stack."""

    def __init__(self, level: int):
        self.level = level

    def lift(self, value):
        """Wrap a value from a lower level as a tracer of this trace."""
        raise NotImplementedError

    def process_primitive(self, prim, tracers, params):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(level={self.level})"


@contextlib.contextmanager
def new_trace(trace_type, *args):
    """Push a trace of ``trace_type`` one level above the current top; pop it on exit."""
    trace = trace_type(len(ctx.stack) + 1, *args)
    ctx.stack.append(trace)
    ctx.refresh()
    try:
        yield trace
    finally:
        ctx.stack.pop()
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
    if ctx.fast:
        for a in args:
            if a.requires_grad and ctx.grad_enabled:
                break
        else:
            return _run_impl(prim, [a._value for a in args], params)
    trace = top_trace(args)
    if ctx.dynamic is not None and (trace is None or trace.level < ctx.dynamic.level):
        trace = ctx.dynamic
    if trace is None:
        out = _run_impl(prim, [a._concrete() for a in args], params)
    else:
        out = trace.process_primitive(prim, args, params)
    if ctx.grad_enabled:
        # The tape records at the level its tensors live on; jit stages concrete tensors
        # (a closure's parameters) into its graph, so they record at jit's level.
        level = 0 if trace is None else trace.level
        staged = trace is not None and trace is ctx.dynamic
        if any(a.requires_grad and (staged or level_of(a) == level) for a in args):
            record(prim, params, args, out)
    if ctx.debug_nans:
        _check_finite(prim, out)
    return out


def _run_impl(prim, arrays, params):
    """Run the kernel and wrap its result(s) as tensors."""
    try:
        out = prim.impl(ctx.xp, *arrays, **params)
    except Exception:
        # The kernel failed: let the shape/dtype rule explain why in fluxion's words.
        prim.abstract(*[ShapedArray(a.shape, a.dtype) for a in arrays], **params)
        raise
    if prim.multiple_results:
        return tuple(from_array(np.asarray(o)) for o in out)
    return from_array(out if type(out) is np.ndarray else np.asarray(out))


# Set by fluxion.core.tensor: Tensor needs bind for its operators, bind makes Tensors.
from_array = None


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
    outs = out if prim.multiple_results else (out,)
    parents = [a if a.requires_grad else None for a in args]
    node = Node(
        prim.name,
        _zero_vjp if prim.vjp is NOT_DIFFERENTIABLE else prim.vjp,
        params,
        list(args),
        [o._alias() for o in outs],
        parents,
        prim.multiple_results,
    )
    attach(node, outs)


def _zero_vjp(ct, primals, outputs, **params):
    # A piecewise-constant op (floor, sign...): its float outputs still require grad, as in
    # PyTorch, and backward() gives its inputs zero gradients, as fx.grad does.
    return tuple(from_array(np.zeros(a.shape, a._np_dtype)) for a in primals)


def attach(node, outs):
    from fluxion.core.dtypes import is_float

    for i, o in enumerate(outs):
        if is_float(o._np_dtype):
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
    from fluxion.core.dtypes import is_float

    for o in out if prim.multiple_results else (out,):
        if o._trace is None and is_float(o._np_dtype) and not np.isfinite(o._value).all():
            raise FloatingPointCheckError(
                f"{prim.name}: produced a NaN or inf (at {user_frame()}); "
                "inspect that op's inputs, or leave fx.debug_nans() to continue"
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
