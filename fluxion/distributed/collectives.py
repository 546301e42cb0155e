"""Collectives: primitives whose kernel talks to the other processes through MPI.

Each is a primitive with every rule (STYLE.md point 1), so it runs eagerly, under
``grad``, ``jvp`` and ``vmap``, and inside ``fx.jit``: codegen calls the kernel, so a
compiled step calls MPI once per collective. The rules read the processes as one
program: rank ``r`` holds ``x_r``, and a collective is a function of all of them.

* ``all_reduce`` (sum, mean): every rank gets ``sum_r x_r``; linear, and its own
  transpose. max/min: the derivative flows to the ranks attaining the extremum,
  shared evenly where several do (as ``reduce_max``'s).
* ``all_gather(axis)``: every rank gets the ``x_r`` concatenated along ``axis``; its
  transpose is ``reduce_scatter``: rank ``r``'s cotangent is the sum over ranks of the
  ``r``-th block of theirs.
* ``reduce_scatter(axis)``: rank ``r`` gets the ``r``-th block of ``sum_r x_r``; its
  transpose is ``all_gather``.
* ``broadcast(root)``: every rank gets ``x_root``; its transpose sums the cotangents
  onto the root (the other ranks' inputs get zero).
* ``replicated_mean``: the mean all-reduce of values already equal on every rank
  (replicated parameters): it returns them as they are, and its derivative is the mean
  all-reduce, run on buckets of many tensors at once (data-parallel gradients).

Every kernel first checks that the ranks agree on the call, shape and dtype
(``world.check_agreement``); in a world of one process each is the identity.
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.core.dtypes import BOOL, FLOATS, LOW_FLOATS
from fluxion.core.primitive import Primitive, ShapedArray
from fluxion.core.pytree import tree_flatten, tree_unflatten
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.distributed import world
from fluxion.errors import DTypeError, InvalidArgumentError, ShapeError
from fluxion.ops import primitives as P

REDUCTIONS = ("sum", "mean", "max", "min")

# ~25 MB per all-reduce of gradients, as torch's DistributedDataParallel (bucket_cap_mb)
BUCKET_BYTES = 25 * 2**20


# ----------------------------------------------------------------------------- kernels' helpers


def _wire(x: np.ndarray) -> np.ndarray:
    """``x`` as a contiguous array of a type MPI reduces: bfloat16/float16 travel as
    float32 (MPI has no standard type for them), bool as uint8."""
    if x.dtype in LOW_FLOATS:
        x = x.astype(np.float32)
    elif x.dtype == BOOL:
        x = x.view(np.uint8)
    return np.asarray(x, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)


def _back(out: np.ndarray, dtype) -> np.ndarray:
    return out.view(dtype) if dtype == BOOL else out.astype(dtype, copy=False)


def _agreed(op: str, params: str, x: np.ndarray):
    """The communicator, once the ranks agree on the call (``op[params]``) and on ``x``'s
    shape and dtype; None in a world of one process."""
    comm = world.comm()
    if comm is not None:
        world.check_agreement(op, f"{op}[{params}]", x)
    return comm


# ----------------------------------------------------------------------------- all_reduce


def _all_reduce_impl(xp, x, *, op):
    comm = _agreed("all_reduce", op, x)
    if comm is None:
        return x
    send = _wire(x)
    out = np.empty_like(send)
    comm.Allreduce(send, out, op=world.mpi_op(op))
    if op == "mean":
        out /= comm.Get_size()
    return _back(out, x.dtype)


def _all_reduce_aval(x, *, op):
    if x.dtype == BOOL and op in ("sum", "mean") or op == "mean" and x.dtype not in FLOATS:
        raise DTypeError(
            f"all_reduce: op={op!r} needs a {'floating-point' if op == 'mean' else 'numeric'} "
            f"tensor, got {x.dtype}; cast it with .astype"
        )
    return x


def _extremum_weights(x, y):
    """Where rank r's ``x`` attains the all-reduced extremum ``y``, its share of it."""
    hit = (x == y).astype(x._np_dtype)
    return hit / bind(all_reduce_p, hit, op="sum")


def _all_reduce_jvp(primals, tangents, *, op):
    (x,), (t,) = primals, tangents
    y = bind(all_reduce_p, x, op=op)
    if op in ("sum", "mean"):
        return y, bind(all_reduce_p, t, op=op)
    return y, bind(all_reduce_p, t * _extremum_weights(x, y), op="sum")


def _all_reduce_vjp(ct, primals, outputs, *, op):
    (x,), (y,) = primals, outputs
    if op in ("sum", "mean"):
        return (bind(all_reduce_p, ct, op=op),)
    return (_extremum_weights(x, y) * bind(all_reduce_p, ct, op="sum"),)


all_reduce_p = Primitive(
    "all_reduce",
    impl=_all_reduce_impl,
    abstract=_all_reduce_aval,
    jvp=_all_reduce_jvp,
    vjp=_all_reduce_vjp,
    batch=lambda args, dims, *, op: (bind(all_reduce_p, args[0], op=op), dims[0]),
)


# ----------------------------------------------------------------------------- all_gather


def _all_gather_impl(xp, x, *, axis):
    comm = _agreed("all_gather", f"axis={axis}", x)
    if comm is None:
        return x
    send = _wire(x)
    out = np.empty((comm.Get_size(),) + send.shape, send.dtype)
    comm.Allgather(send, out)
    # (ranks, ...) -> the ranks' blocks one after another along ``axis``
    moved = np.moveaxis(out, 0, axis)
    return _back(moved.reshape(_gathered_shape(x.shape, axis, comm.Get_size())), x.dtype)


def _gathered_shape(shape, axis, size):
    return shape[:axis] + (shape[axis] * size,) + shape[axis + 1 :]


def _all_gather_aval(x, *, axis):
    return ShapedArray(_gathered_shape(x.shape, axis, world.world_size()), x.dtype)


all_gather_p = Primitive(
    "all_gather",
    impl=_all_gather_impl,
    abstract=_all_gather_aval,
    jvp=lambda primals, tangents, *, axis: (
        bind(all_gather_p, primals[0], axis=axis),
        bind(all_gather_p, tangents[0], axis=axis),
    ),
    vjp=lambda ct, primals, outputs, *, axis: (bind(reduce_scatter_p, ct, axis=axis, op="sum"),),
    batch=lambda args, dims, *, axis: (
        bind(all_gather_p, P.moveaxis_to_front(args[0], dims[0]), axis=axis + 1),
        0,
    ),
)


# ----------------------------------------------------------------------------- reduce_scatter


def _reduce_scatter_impl(xp, x, *, axis, op):
    comm = _agreed("reduce_scatter", f"axis={axis},{op}", x)
    if comm is None:
        return x
    size = comm.Get_size()
    # rank r's block of ``axis`` made the r-th of a leading axis, in one contiguous buffer
    front = np.moveaxis(_wire(x), axis, 0)
    send = np.ascontiguousarray(front.reshape((size, front.shape[0] // size) + front.shape[1:]))
    out = np.empty(send.shape[1:], send.dtype)
    comm.Reduce_scatter_block(send, out, op=world.mpi_op(op))
    if op == "mean":
        out /= size
    return _back(np.moveaxis(out, 0, axis), x.dtype)


def _reduce_scatter_aval(x, *, axis, op):
    _all_reduce_aval(x, op=op)
    size = world.world_size()
    if x.shape[axis] % size:
        raise ShapeError(
            f"reduce_scatter: axis {axis} of the tensor of shape {x.shape} has length "
            f"{x.shape[axis]}, which does not split into {size} equal blocks (one per rank); "
            "pad it to a multiple of the world size"
        )
    return ShapedArray(x.shape[:axis] + (x.shape[axis] // size,) + x.shape[axis + 1 :], x.dtype)


def _reduce_scatter_vjp(ct, primals, outputs, *, axis, op):
    gathered = bind(all_gather_p, ct, axis=axis)
    return (gathered / world.world_size() if op == "mean" else gathered,)


reduce_scatter_p = Primitive(
    "reduce_scatter",
    impl=_reduce_scatter_impl,
    abstract=_reduce_scatter_aval,
    jvp=lambda primals, tangents, *, axis, op: (
        bind(reduce_scatter_p, primals[0], axis=axis, op=op),
        bind(reduce_scatter_p, tangents[0], axis=axis, op=op),
    ),
    vjp=_reduce_scatter_vjp,
    batch=lambda args, dims, *, axis, op: (
        bind(reduce_scatter_p, P.moveaxis_to_front(args[0], dims[0]), axis=axis + 1, op=op),
        0,
    ),
)


# ----------------------------------------------------------------------------- broadcast


def _broadcast_impl(xp, x, *, root):
    comm = _agreed("broadcast", f"root={root}", x)
    if comm is None:
        return x
    buffer = _wire(x).copy()  # the other ranks receive into it
    comm.Bcast(buffer, root=root)
    return _back(buffer, x.dtype)


def _broadcast_vjp(ct, primals, outputs, *, root):
    # every rank runs the same graph (a rank-dependent one would leave a collective
    # unmatched); only the mask differs: the cotangents' sum on the root, zero elsewhere
    total = bind(all_reduce_p, ct, op="sum")
    on_root = P.constant(world.rank() == root, BOOL)
    return (bind(P.select_p, on_root, total, P.zeros((), ct._np_dtype)),)


broadcast_p = Primitive(
    "broadcast",
    impl=_broadcast_impl,
    abstract=lambda x, *, root: x,
    jvp=lambda primals, tangents, *, root: (
        bind(broadcast_p, primals[0], root=root),
        bind(broadcast_p, tangents[0], root=root),
    ),
    vjp=_broadcast_vjp,
    batch=lambda args, dims, *, root: (bind(broadcast_p, args[0], root=root), dims[0]),
)


# ----------------------------------------------------------------------------- replicated_mean


def buckets(tensors, bucket_bytes: int) -> list[list[int]]:
    """The positions of ``tensors`` in runs of one dtype of at most ``bucket_bytes`` each
    (a larger tensor is a bucket of its own), in order."""
    out, open_by_dtype = [], {}
    for i, t in enumerate(tensors):
        nbytes = math.prod(t.shape) * t._np_dtype.itemsize
        bucket = open_by_dtype.get(t._np_dtype)
        if bucket is None or bucket[1] + nbytes > bucket_bytes:
            bucket = open_by_dtype[t._np_dtype] = [[], 0]
            out.append(bucket[0])
        bucket[0].append(i)
        bucket[1] += nbytes
    return out


def bucketed(collective, tensors, bucket_bytes: int = BUCKET_BYTES) -> list[Tensor]:
    """``collective`` (a function of one flat tensor) applied to ``tensors`` a bucket at a
    time: each bucket flattened into one tensor, so many small tensors cost one call."""
    out = [None] * len(tensors)
    for bucket in buckets(tensors, bucket_bytes):
        flat = [bind(P.reshape_p, tensors[i], shape=(math.prod(tensors[i].shape),)) for i in bucket]
        joined = collective(flat[0] if len(flat) == 1 else bind(P.concatenate_p, *flat, axis=0))
        start = 0
        for i, f in zip(bucket, flat):
            stop = start + f.shape[0]
            part = bind(P.slice_p, joined, starts=(start,), stops=(stop,), steps=(1,))
            out[i] = bind(P.reshape_p, part, shape=tensors[i].shape)
            start = stop
    return out


def _mean_of_buckets(tensors, bucket_bytes):
    return bucketed(lambda flat: bind(all_reduce_p, flat, op="mean"), tensors, bucket_bytes)


replicated_mean_p = Primitive(
    "replicated_mean",
    impl=lambda xp, *xs, bucket_bytes: xs,
    abstract=lambda *xs, bucket_bytes: list(xs),
    jvp=lambda primals, tangents, *, bucket_bytes: (
        list(primals),
        _mean_of_buckets(tangents, bucket_bytes),
    ),
    vjp=lambda cts, primals, outputs, *, bucket_bytes: tuple(_mean_of_buckets(cts, bucket_bytes)),
    batch=lambda args, dims, *, bucket_bytes: (
        list(bind(replicated_mean_p, *args, bucket_bytes=bucket_bytes)),
        list(dims),
    ),
    multiple_results=True,
)


# ----------------------------------------------------------------------------- public functions


def _reduction(op_name: str, op) -> str:
    if op not in REDUCTIONS:
        raise InvalidArgumentError(
            f"{op_name}: op must be one of {', '.join(map(repr, REDUCTIONS))}, got {op!r}"
        )
    return op


def all_reduce(x, op: str = "sum", bucket_cap_mb: float = BUCKET_BYTES / 2**20):
    """Every rank gets the reduction over ranks of ``x`` (``op``: sum, mean, max, min).
    ``x`` may be a pytree of tensors (gradients): its leaves are reduced in buckets of
    ``bucket_cap_mb`` at most, one call per bucket rather than per tensor.

    >>> fx.distributed.all_reduce(fx.tensor([1.0, 2.0]))   # a world of one process
    [1. 2.]:f32[2]:cpu(0)
    """
    op = _reduction("all_reduce", op)
    leaves, tree = tree_flatten(x)
    if tree.node_type is None:
        return bind(all_reduce_p, to_tensor(x), op=op)
    reduce = lambda flat: bind(all_reduce_p, flat, op=op)  # noqa: E731
    bucket_bytes = int(bucket_cap_mb * 2**20)
    return tree_unflatten(tree, bucketed(reduce, [to_tensor(t) for t in leaves], bucket_bytes))


def all_gather(x, axis: int = 0) -> Tensor:
    """Every rank gets the ranks' ``x`` concatenated along ``axis``, rank 0's first."""
    x = to_tensor(x)
    return bind(all_gather_p, x, axis=P.check_axis("all_gather", axis, x.ndim))


def reduce_scatter(x, axis: int = 0, op: str = "sum") -> Tensor:
    """Rank ``r`` gets the ``r``-th of ``world_size()`` equal blocks along ``axis`` of the
    reduction over ranks of ``x`` (``op``: sum or mean)."""
    x = to_tensor(x)
    if op not in ("sum", "mean"):
        raise InvalidArgumentError(f"reduce_scatter: op must be 'sum' or 'mean', got {op!r}")
    return bind(reduce_scatter_p, x, axis=P.check_axis("reduce_scatter", axis, x.ndim), op=op)


def broadcast(x, root: int = 0) -> Tensor:
    """Every rank gets rank ``root``'s ``x`` (every rank passes a tensor of its shape)."""
    size = world.world_size()
    if isinstance(root, bool) or not isinstance(root, int) or not 0 <= root < size:
        raise InvalidArgumentError(f"broadcast: root must be a rank in [0, {size}), got {root!r}")
    return bind(broadcast_p, to_tensor(x), root=root)


def replicated_mean(tensors, bucket_bytes: int = BUCKET_BYTES) -> list[Tensor]:
    """``tensors`` (equal on every rank) as they are, differentiated as their mean over
    ranks: the gradients that flow back through them come out averaged over ranks, in
    all-reduces of ``bucket_bytes`` at most."""
    if not tensors:
        return []
    return list(bind(replicated_mean_p, *map(to_tensor, tensors), bucket_bytes=bucket_bytes))
