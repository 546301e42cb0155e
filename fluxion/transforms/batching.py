"""vmap: run a function on a batch by applying each primitive's batching rule.

A ``BatchTracer`` holds the batched value and where its batch dimension is; no
hidden batch dimensions live on tensors. Values without a batch dimension stay
plain, and rules are only called when some argument is batched.
"""

from __future__ import annotations

import functools

import numpy as np

from fluxion.core.effects import write_to_originals
from fluxion.core.primitive import ShapedArray
from fluxion.core.pytree import broadcast_prefix, tree_flatten, tree_structure, tree_unflatten
from fluxion.core.tensor import Tracer, to_tensor
from fluxion.core.trace import Trace, bind, new_trace
from fluxion.errors import BatchingError, DTypeError, InvalidArgumentError
from fluxion.ops import primitives as P


class BatchTracer(Tracer):
    __slots__ = ("value", "bdim")

    def __init__(self, trace, value, bdim):
        self._init_tracer(trace)
        self.value, self.bdim = value, bdim

    @property
    def aval(self):
        shape = self.value.shape
        return ShapedArray(shape[: self.bdim] + shape[self.bdim + 1 :], self.value._np_dtype)

    def _alias(self):
        return BatchTracer(self._trace, self.value, self.bdim)


class BatchTrace(Trace):
    def __init__(self, level, size):
        super().__init__(level)
        self.size = size

    def lower(self, x):
        if isinstance(x, BatchTracer) and x._trace is self:
            return x.value, x.bdim
        return x, None

    def lower_state(self, value, holder, name):
        if isinstance(value, BatchTracer) and value._trace is self:
            raise BatchingError(
                f"vmap: {type(holder).__name__}.{name} was written inside vmap with a value that "
                "differs across the batch (running statistics, say), and state cannot leave vmap "
                "batched; return the new value from the function instead, compute it outside "
                "vmap, or stop writing it (model.eval(), BatchNorm(track_running_stats=False))"
            )
        return value

    def process_primitive(self, prim, tracers, params):
        values, dims = zip(*[self.lower(t) for t in tracers])
        if all(d is None for d in dims):
            return bind(prim, *values, **params)
        out, out_dim = prim.batch(list(values), list(dims), **params)
        if prim.multiple_results:
            return tuple(
                BatchTracer(self, o, d) if d is not None else o for o, d in zip(out, out_dim)
            )
        return BatchTracer(self, out, out_dim)

    def __repr__(self) -> str:
        return f"BatchTrace(level={self.level}, size={self.size})"


def _move_out(value, dim, to, size):
    """Put the batch dimension of ``value`` (None: unbatched) at position ``to``."""
    if dim is None:
        value = bind(P.broadcast_to_p, value, shape=(size,) + value.shape)
        dim = 0
    to = to % value.ndim
    if dim == to:
        return value
    perm = [a for a in range(value.ndim) if a != dim]
    perm.insert(to, dim)
    return bind(P.transpose_p, value, perm=tuple(perm))


def vmap(f=None, in_axes=0, out_axes=0, axis_size=None):
    """Vectorize ``f`` over a batch axis of its arguments.

    ``in_axes``/``out_axes``: an int, None (not batched), or a pytree prefix of the
    arguments/outputs with those. Usable as ``@fx.vmap`` or ``fx.vmap(f, in_axes=(0, None))``.

    >>> fx.vmap(lambda row: row.sum())(fx.ones((3, 4)))
    [4. 4. 4.]:f32[3]:cpu(0)
    """
    if f is None:
        return functools.partial(vmap, in_axes=in_axes, out_axes=out_axes, axis_size=axis_size)

    name = getattr(f, "__name__", type(f).__name__)

    @functools.wraps(f)
    def batched(*args):
        if isinstance(in_axes, list | tuple):
            if len(in_axes) != len(args):
                raise BatchingError(
                    f"vmap: in_axes has {len(in_axes)} entries but {name} was called with "
                    f"{len(args)} positional argument(s); give one entry per argument"
                )
            prefix = tuple(in_axes)
        else:
            prefix = (in_axes,) * len(args)
        leaves, in_tree = tree_flatten(args)
        try:
            axes = broadcast_prefix(prefix, args)
        except InvalidArgumentError as e:
            raise BatchingError(
                f"vmap: in_axes does not fit the arguments of {name}: {e}; give an int for all "
                "arguments or a prefix of their structure"
            ) from None
        leaves = [to_tensor(x) if a is not None else x for x, a in zip(leaves, axes)]
        names = [n for i, a in enumerate(args) for n in _leaf_names(a, f"argument {i}")]
        size = _batch_size(name, leaves, axes, axis_size, names)
        with new_trace(BatchTrace, size) as trace:
            tracers = [
                BatchTracer(trace, x, int(a) % x.ndim) if a is not None else x
                for x, a in zip(leaves, axes)
            ]
            copies = tree_unflatten(in_tree, tracers)
            out = f(*copies)
            write_to_originals(trace, args, copies)
            out_leaves, out_tree = tree_flatten(out)
            try:
                targets = broadcast_prefix(out_axes, out)
            except InvalidArgumentError as e:
                raise BatchingError(
                    f"vmap: out_axes does not fit the outputs of {name}: {e}; give an int for "
                    "all outputs or a prefix of the output's structure"
                ) from None
            names = _leaf_names(out, "output")
            results = [
                _output(trace, o, to, where) for o, to, where in zip(out_leaves, targets, names)
            ]
        return tree_unflatten(out_tree, results)

    return batched


def _output(trace, out, to, where):
    """An output of the batched function, its batch axis moved to ``to`` (None: unbatched)."""
    try:
        value, dim = trace.lower(to_tensor(out))
    except (InvalidArgumentError, DTypeError):
        raise BatchingError(
            f"vmap: {where} is a {type(out).__name__}, not a tensor; a vmapped function must "
            "return tensors or numbers (in any pytree); return other values through a closure"
        ) from None
    if to is None:
        if dim is not None:
            raise BatchingError(
                f"vmap: out_axes is None for {where}, but it varies over the batch; give it an "
                "axis (out_axes=0), or return a value that does not depend on the mapped arguments"
            )
        return value
    ndim = value.ndim - (dim is not None)  # of one example's output
    if not _is_axis(to) or not -ndim - 1 <= to <= ndim:
        raise BatchingError(
            f"vmap: out_axes {to!r} does not fit {where} ({ndim} dimension(s) per example); "
            f"use an int in [{-ndim - 1}, {ndim}], or None for an output that is not batched"
        )
    return _move_out(value, dim, to, trace.size)


def _is_axis(a) -> bool:
    return isinstance(a, int | np.integer) and not isinstance(a, bool)


def _leaf_names(tree, path) -> list[str]:
    """One name per leaf of ``tree`` for messages: ``argument 0``, ``argument 1['w'][0]``."""
    names = []

    def walk(node, path):
        if node.node_type is None:
            names.append(path)
            return
        keys = node.aux if node.node_type is dict else range(len(node.children))
        for k, child in zip(keys, node.children):
            walk(child, f"{path}[{k!r}]")

    walk(tree_structure(tree), path)
    return names


def _batch_size(name, leaves, axes, axis_size, names) -> int:
    if axis_size is not None and not (_is_axis(axis_size) and axis_size >= 0):
        raise BatchingError(f"vmap: axis_size must be a non-negative int, got {axis_size!r}")
    sizes = [] if axis_size is None else [("axis_size", axis_size)]
    for x, a, where in zip(leaves, axes, names):
        if a is None:
            continue
        if not _is_axis(a):
            raise BatchingError(
                f"vmap: in_axes entries must be ints or None, got {a!r} for {where}"
            )
        if x.ndim == 0:
            raise BatchingError(
                f"vmap: {where} is 0-d (a scalar) but in_axes asks to map over its axis {a}; "
                "use in_axes=None for it (it is then shared by the whole batch)"
            )
        if not -x.ndim <= a < x.ndim:
            raise BatchingError(
                f"vmap: in_axes {a} is out of range for {where} of shape {x.shape}; "
                f"use an axis in [{-x.ndim}, {x.ndim}), or None"
            )
        sizes.append((where, x.shape[a]))
    if not sizes:
        raise BatchingError(
            f"vmap: no argument of {name} is mapped (all in_axes are None), so the batch size "
            "is unknown; pass axis_size=N"
        )
    if len({s for _, s in sizes}) > 1:
        listing = ", ".join(f"{w}: {s}" for w, s in sizes)
        raise BatchingError(
            f"vmap: the mapped axes of {name}'s arguments have different sizes ({listing}); "
            "they must agree: map arguments of one batch size, or give in_axes=None to those "
            "shared by the whole batch"
        )
    return sizes[0][1]
