"""JAX's ``jax.lax``: control flow, slicing and collectives, with JAX's signatures.

The loops and branches are fluxion's own (``fx.scan``, ``fx.cond``... of
``fluxion.ops.control``), so they trace, batch, differentiate and compile the same way;
the slicing ops are composites of gather, so their start indices may be traced.

>>> from fluxion import lax
>>> lax.scan(lambda c, x: (c + x, c * x), 0.0, fx.arange(1.0, 4.0))
(6.0:f32[]:cpu(0), [0. 2. 9.]:f32[3]:cpu(0))
>>> lax.dynamic_slice(fx.arange(6.0), (fx.tensor(4),), (3,))   # the start clamps, as in JAX
[3. 4. 5.]:f32[3]:cpu(0)

The collectives run over a named axis of ``fx.pmap``, which spans the processes (one device
each): each is the matching ``fx.distributed`` collective, once the name is checked to be
a running pmap's. Each takes a pytree of tensors, as in JAX.

>>> fx.pmap(lambda x: fx.lax.pmean(x, "batch"))(fx.tensor([[2.0]]))   # a world of one
[[2.]]:f32[1,1]:cpu(0)
"""

from __future__ import annotations

import builtins
import string

import numpy as np

from fluxion.core import dtypes
from fluxion.core.pytree import tree_map
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.distributed import collectives as C
from fluxion.distributed import world
from fluxion.distributed.pmap import check_axis_name
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.ops.creation import arange, tensor
from fluxion.ops.elementwise import (  # noqa: F401  (the same in jax.lax)
    abs,
    add,
    astype,
    clip,
    cos,
    erf,
    exp,
    expm1,
    log,
    log1p,
    maximum,
    minimum,
    multiply,
    negative,
    rsqrt,
    sigmoid,
    sin,
    sqrt,
    square,
    subtract,
    tanh,
    where,
)
from fluxion.ops.elementwise import stop_gradient as _stop_gradient
from fluxion.ops.indexing import take
from fluxion.ops.linalg import einsum
from fluxion.ops.reduction import cumsum as _cumsum
from fluxion.ops.reduction import top_k  # noqa: F401
from fluxion.ops.shape import concatenate as _concatenate
from fluxion.ops.shape import expand_dims, flip, squeeze
from fluxion.transforms import control

max, min, mul, sub, neg, logistic = maximum, minimum, multiply, subtract, negative, sigmoid  # noqa: A001
convert_element_type = astype


def div(x, y):
    """``x / y``; for integers rounded toward zero, as C (and XLA) divide."""
    x, y = to_tensor(x), to_tensor(y)
    if dtypes.is_inexact(x._np_dtype):
        return x / y
    quotient = abs(x) // abs(y)
    return where((x < 0) != (y < 0), -quotient, quotient)


def integer_pow(x, y: int):
    return to_tensor(x) ** y


def clamp(min, x, max):  # noqa: A002  (JAX's argument order: the bounds around x)
    return clip(x, min, max)


def iota(dtype, size: int):
    return arange(size, dtype=dtype)


def concatenate(operands, dimension: int):
    return _concatenate(list(operands), dimension)


def cumsum(operand, axis: int = 0, reverse: bool = False):
    if not reverse:
        return _cumsum(operand, axis)
    return flip(_cumsum(flip(operand, axis), axis), axis)


# ----------------------------------------------------------------------------- control flow


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """``carry, y = f(carry, x)`` over the leading axis of ``xs``; returns ``(carry, ys)``.

    ``unroll`` is accepted for JAX's code: it changes how XLA lays the loop out, not the
    result, and fluxion's compiled loop is one primitive either way.
    """
    return control.scan(f, init, xs, length, reverse)


def fori_loop(lower, upper, body_fun, init_val, *, unroll=None):
    """``for i in range(lower, upper): val = body_fun(i, val)`` (``unroll``: as in scan)."""
    return control.fori_loop(lower, upper, body_fun, init_val)


def while_loop(cond_fun, body_fun, init_val):
    """``while cond_fun(val): val = body_fun(val)``; forward-differentiable, as in JAX."""
    return control.while_loop(cond_fun, body_fun, init_val)


def cond(pred, true_fun, false_fun, *operands):
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``."""
    return control.cond(to_tensor(pred) != 0, true_fun, false_fun, *operands)


def switch(index, branches, *operands):
    """``branches[index](*operands)``, the index clamped into range as in JAX; a traced
    index becomes a balanced tree of conds."""
    branches = list(branches)
    if not branches:
        raise InvalidArgumentError("lax.switch: branches must hold at least one function")
    index = clip(astype(to_tensor(index), np.int64), 0, len(branches) - 1)

    def between(lo, hi):  # the branch for an index in [lo, hi)
        if hi - lo == 1:
            return branches[lo]
        mid = (lo + hi) // 2
        return lambda *ops: control.cond(index < mid, between(lo, mid), between(mid, hi), *ops)

    return between(0, len(branches))(*operands)


def map(f, xs):  # noqa: A001  (JAX's name)
    """``f`` applied to each slice of ``xs`` along its leading axis, stacked: a scan."""
    return control.scan(lambda carry, x: (carry, f(x)), (), xs)[1]


def select(pred, on_true, on_false):
    """Elementwise ``on_true`` where ``pred`` else ``on_false``."""
    return where(pred, on_true, on_false)


def stop_gradient(x):
    """``x`` (a pytree) as a constant to every differentiating transform."""
    return tree_map(_stop_gradient, x)


# ----------------------------------------------------------------------------- slicing


def _starts(op, operand, start_indices, sizes):
    """Per axis, the start: from the end if negative, then clamped so the slice fits (JAX's)."""
    if isinstance(start_indices, Tensor) and start_indices.ndim == 1:
        start_indices = [start_indices[k] for k in range(start_indices.shape[0])]
    start_indices, sizes = list(start_indices), list(sizes)
    if len(start_indices) != operand.ndim or len(sizes) != operand.ndim:
        raise ShapeError(
            f"lax.{op}: an operand of shape {operand.shape} needs {operand.ndim} start indices "
            f"and sizes, got {len(start_indices)} and {len(sizes)}"
        )
    for axis, (n, size) in enumerate(zip(operand.shape, sizes)):
        if not 0 <= size <= n:
            raise ShapeError(f"lax.{op}: size {size} does not fit axis {axis} of length {n}")
    starts = [astype(to_tensor(s), np.int64) for s in start_indices]
    return [  # a negative start counts from the end, as JAX's
        clip(where(s < 0, s + n, s), 0, n - size)
        for s, n, size in zip(starts, operand.shape, sizes)
    ]


def dynamic_slice(operand, start_indices, slice_sizes):
    """``operand[s0:s0 + n0, s1:s1 + n1, ...]`` for starts that may be traced."""
    out = to_tensor(operand)
    for axis, (start, size) in enumerate(
        zip(_starts("dynamic_slice", out, start_indices, slice_sizes), slice_sizes)
    ):
        out = take(out, start + arange(size), axis=axis)
    return out


def dynamic_update_slice(operand, update, start_indices):
    """``operand`` with ``update`` written at ``start_indices`` (clamped; may be traced)."""
    operand, update = to_tensor(operand), astype(to_tensor(update), to_tensor(operand).dtype)
    starts = _starts("dynamic_update_slice", operand, start_indices, update.shape)
    placed, inside = update, tensor(True)
    for axis, (start, n, size) in enumerate(zip(starts, operand.shape, update.shape)):
        offset = arange(n) - start  # position along the axis -> position in the update
        placed = take(placed, clip(offset, 0, builtins.max(size - 1, 0)), axis=axis)
        shape = [n if k == axis else 1 for k in range(operand.ndim)]
        inside = inside & ((offset >= 0) & (offset < size)).reshape(shape)
    return where(inside, placed, operand) if update.size else operand


def dynamic_slice_in_dim(operand, start_index, slice_size: int, axis: int = 0):
    operand = to_tensor(operand)
    starts = [start_index if k == axis % operand.ndim else 0 for k in range(operand.ndim)]
    sizes = [slice_size if k == axis % operand.ndim else n for k, n in enumerate(operand.shape)]
    return dynamic_slice(operand, starts, sizes)


def dynamic_index_in_dim(operand, index, axis: int = 0, keepdims: bool = True):
    out = dynamic_slice_in_dim(operand, index, 1, axis)
    return out if keepdims else squeeze(out, axis)


def dynamic_update_slice_in_dim(operand, update, start_index, axis: int):
    operand = to_tensor(operand)
    starts = [start_index if k == axis % operand.ndim else 0 for k in range(operand.ndim)]
    return dynamic_update_slice(operand, update, starts)


def slice(operand, start_indices, limit_indices, strides=None):  # noqa: A001  (JAX's name)
    """``operand[start:limit:stride]`` on every axis, with static bounds."""
    strides = strides or (1,) * len(start_indices)
    return to_tensor(operand)[
        tuple(builtins.slice(a, b, c) for a, b, c in zip(start_indices, limit_indices, strides))
    ]


def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """XLA's general contraction: ``(((lhs_contract), (rhs_contract)), ((lhs_batch),
    (rhs_batch)))``; the result holds the batch axes, then lhs's free ones, then rhs's."""
    lhs, rhs = to_tensor(lhs), to_tensor(rhs)
    (lc, rc), (lb, rb) = dimension_numbers
    lc, rc, lb, rb = (
        [a % x.ndim for a in axes] for axes, x in ((lc, lhs), (rc, rhs), (lb, lhs), (rb, rhs))
    )
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise ShapeError(
            f"lax.dot_general: contracting {lc} with {rc} and batching {lb} with {rb}: each pair "
            "needs as many axes on both sides"
        )
    letters = iter(string.ascii_letters)
    left = [next(letters) for _ in range(lhs.ndim)]
    right = [next(letters) for _ in range(rhs.ndim)]
    for a, b in zip(lc + lb, rc + rb):
        right[b] = left[a]
    free_l = [left[k] for k in range(lhs.ndim) if k not in lc + lb]
    free_r = [right[k] for k in range(rhs.ndim) if k not in rc + rb]
    out = "".join(left[a] for a in lb) + "".join(free_l) + "".join(free_r)
    result = einsum(f"{''.join(left)},{''.join(right)}->{out}", lhs, rhs)
    return result if preferred_element_type is None else astype(result, preferred_element_type)


# ----------------------------------------------------------------------------- collectives


def _over_axis(op, fn):
    def collective(x, axis_name, **kwargs):
        check_axis_name(op, axis_name)
        return fn(x, **kwargs)

    collective.__name__ = collective.__qualname__ = op
    return collective


# a pytree is all-reduced in buckets (fx.distributed.all_reduce)
psum = _over_axis("psum", lambda x: C.all_reduce(x, "sum"))
pmean = _over_axis("pmean", lambda x: C.all_reduce(x, "mean"))
pmax = _over_axis("pmax", lambda x: C.all_reduce(x, "max"))
pmin = _over_axis("pmin", lambda x: C.all_reduce(x, "min"))
psum.__doc__ = "The sum over the processes of the named pmap axis."
pmean.__doc__ = "The mean over the processes of the named pmap axis."
pmax.__doc__ = "The elementwise maximum over the processes of the named pmap axis."
pmin.__doc__ = "The elementwise minimum over the processes of the named pmap axis."


def _all_gather(x, axis=0, tiled=False):
    if tiled:
        return tree_map(lambda t: C.all_gather(t, axis), x)
    return tree_map(lambda t: C.all_gather(expand_dims(t, axis), axis), x)


def _psum_scatter(x, scatter_dimension=0, tiled=False):
    if tiled:
        return tree_map(lambda t: C.reduce_scatter(t, scatter_dimension), x)
    return tree_map(lambda t: squeeze(C.reduce_scatter(t, scatter_dimension), scatter_dimension), x)


all_gather = _over_axis("all_gather", _all_gather)
all_gather.__doc__ = """Every process gets all the processes' ``x``: stacked along a new
axis ``axis`` (JAX's default), or with ``tiled=True`` concatenated along ``axis``."""
psum_scatter = _over_axis("psum_scatter", _psum_scatter)
psum_scatter.__doc__ = """The sum over processes, scattered: process ``r`` gets the ``r``-th
slice of ``scatter_dimension`` (whose length is the number of processes), or with
``tiled=True`` its ``r``-th block."""


def axis_index(axis_name) -> object:
    """This process's position along the named pmap axis (its rank), an int64 scalar."""
    check_axis_name("axis_index", axis_name)
    return tensor(world.rank(), dtype="int64")
