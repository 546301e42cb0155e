"""``pmap``: a function mapped over the processes, JAX's model with one device per process.

The mapped axis spans the processes: each process holds one slice of it, so the mapped
axis of its inputs has length 1 (its own shard, as ``jax.pmap`` sees one local device).
Inside, ``fx.lax.psum(x, axis_name)`` and friends reduce over that axis, that is over
the processes. It is a plain function of its inputs: grad, vmap and jit compose with it
either way round (the collectives inside carry their own rules).
"""

from __future__ import annotations

import functools

from fluxion.core.pytree import broadcast_prefix, tree_flatten, tree_unflatten
from fluxion.core.tensor import to_tensor
from fluxion.errors import BatchingError, DistributedError, InvalidArgumentError
from fluxion.ops.shape import expand_dims, squeeze

_bound_axes: list[str] = []  # the axis names of the pmaps running now, innermost last


def check_axis_name(op: str, axis_name) -> None:
    """A collective over ``axis_name`` is inside the pmap of that name."""
    if axis_name not in _bound_axes:
        bound = ", ".join(map(repr, _bound_axes)) or "none"
        raise DistributedError(
            f"{op}: unbound axis name {axis_name!r} (the pmaps running now name: {bound}); "
            f"call it inside fx.pmap(f, axis_name={axis_name!r})"
        )


def pmap(f=None, axis_name="batch", in_axes=0, out_axes=0):
    """Map ``f`` over the processes: the process of rank ``r`` runs ``f`` on its slice of
    the mapped axis, which has length 1 in each process's inputs (``in_axes``: an int or
    None per argument, or a pytree prefix of them); the outputs get that axis back at
    ``out_axes``. Collectives named by ``axis_name`` reduce over the processes.

    >>> step = fx.pmap(lambda x: x / fx.lax.psum(x.sum(), "batch"))   # a world of one
    >>> step(fx.tensor([[1.0, 3.0]]))
    [[0.25 0.75]]:f32[1,2]:cpu(0)
    """
    if f is None:
        return functools.partial(pmap, axis_name=axis_name, in_axes=in_axes, out_axes=out_axes)
    name = getattr(f, "__name__", type(f).__name__)

    @functools.wraps(f)
    def mapped(*args):
        prefix = tuple(in_axes) if isinstance(in_axes, list | tuple) else (in_axes,) * len(args)
        if len(prefix) != len(args):
            raise BatchingError(
                f"pmap: in_axes has {len(prefix)} entries but {name} was called with "
                f"{len(args)} positional argument(s); give one entry per argument"
            )
        leaves, tree = tree_flatten(args)
        axes = _prefix("in_axes", prefix, args, name)
        shards = [x if a is None else _shard(to_tensor(x), a, name) for x, a in zip(leaves, axes)]
        _bound_axes.append(axis_name)
        try:
            out = f(*tree_unflatten(tree, shards))
        finally:
            _bound_axes.pop()
        out_leaves, out_tree = tree_flatten(out)
        targets = _prefix("out_axes", out_axes, out, name)
        return tree_unflatten(
            out_tree,
            [o if a is None else expand_dims(o, a) for o, a in zip(out_leaves, targets)],
        )

    return mapped


def _prefix(what, prefix, tree, name) -> list:
    try:
        return broadcast_prefix(prefix, tree)
    except InvalidArgumentError as e:
        raise BatchingError(
            f"pmap: {what} does not fit {name}: {e}; give an int for all of them or a prefix "
            "of their structure"
        ) from None


def _shard(x, axis, name):
    if not isinstance(axis, int) or not -x.ndim <= axis < x.ndim or x.shape[axis] != 1:
        raise BatchingError(
            f"pmap: {name} maps axis {axis!r} of a tensor of shape {x.shape}, which must "
            "exist and have length 1: each process is one device and holds its own slice "
            "of the mapped axis (pass x[None] of this process's data; to map more inside "
            "a process, vmap inside the pmapped function)"
        )
    return squeeze(x, axis)
