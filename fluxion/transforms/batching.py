"""vmap: run a function on a batch by applying each primitive's batching rule.

A ``BatchTracer`` holds the batched value and where its batch dimension is; no
hidden batch dimensions live on tensors. Values without a batch dimension stay
plain, and rules are only called when some argument is batched.
"""

from __future__ import annotations

import functools

from fluxion.core.primitive import ShapedArray
from fluxion.core.pytree import broadcast_prefix, tree_flatten, tree_unflatten
from fluxion.core.tensor import Tracer, to_tensor
from fluxion.core.trace import Trace, bind, new_trace
from fluxion.errors import BatchingError, InvalidArgumentError
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

    @functools.wraps(f)
    def batched(*args):
        if isinstance(in_axes, list | tuple):
            if len(in_axes) != len(args):
                raise BatchingError(
                    f"vmap: in_axes has {len(in_axes)} entries but {f.__name__} was called with "
                    f"{len(args)} positional argument(s); give one entry per argument"
                )
            prefix = tuple(in_axes)
        else:
            prefix = (in_axes,) * len(args)
        leaves, in_tree = tree_flatten(args)
        try:
            axes = broadcast_prefix(prefix, args)
        except InvalidArgumentError as e:
            raise BatchingError(f"vmap: in_axes does not fit the arguments: {e}") from None
        leaves = [to_tensor(x) if a is not None else x for x, a in zip(leaves, axes)]
        size = _batch_size(f, leaves, axes, axis_size)
        with new_trace(BatchTrace, size) as trace:
            tracers = [
                BatchTracer(trace, x, a % x.ndim) if a is not None else x
                for x, a in zip(leaves, axes)
            ]
            out = f(*tree_unflatten(in_tree, tracers))
            out_leaves, out_tree = tree_flatten(out)
            try:
                targets = broadcast_prefix(out_axes, out)
            except InvalidArgumentError as e:
                raise BatchingError(f"vmap: out_axes does not fit the outputs: {e}") from None
            results = []
            for o, to in zip(out_leaves, targets):
                value, dim = trace.lower(to_tensor(o))
                if to is None:
                    if dim is not None:
                        raise BatchingError(
                            "vmap: out_axes is None for an output that depends on the batch; "
                            "give it an axis, or return a value that does not vary over the batch"
                        )
                    results.append(value)
                else:
                    if not -(value.ndim + (dim is None)) <= to < value.ndim + (dim is None):
                        raise BatchingError(
                            f"vmap: out_axes {to} is out of range for an output of {value.ndim - (dim is not None)} dimension(s)"
                        )
                    results.append(_move_out(value, dim, to, size))
        return tree_unflatten(out_tree, results)

    return batched


def _batch_size(f, leaves, axes, axis_size) -> int:
    sizes = []
    for i, (x, a) in enumerate(zip(leaves, axes)):
        if a is None:
            continue
        if not isinstance(a, int):
            raise BatchingError(f"vmap: in_axes entries must be ints or None, got {a!r}")
        if x.ndim == 0:
            raise BatchingError(
                f"vmap: argument {i} is a 0-d tensor but in_axes asks to map over axis {a}; "
                "use in_axes=None for it (it is then shared by the whole batch)"
            )
        if not -x.ndim <= a < x.ndim:
            raise BatchingError(
                f"vmap: in_axes {a} is out of range for argument {i} of shape {x.shape}"
            )
        sizes.append((i, x.shape[a]))
    if not sizes:
        if axis_size is None:
            raise BatchingError(
                "vmap: no argument is mapped (all in_axes are None); pass axis_size="
            )
        return axis_size
    if len({s for _, s in sizes}) > 1 or axis_size is not None and sizes[0][1] != axis_size:
        listing = ", ".join(f"argument {i}: {s}" for i, s in sizes)
        raise BatchingError(
            f"vmap: the mapped axes of {f.__name__}'s arguments have different sizes ({listing}); they must agree"
        )
    return sizes[0][1]
