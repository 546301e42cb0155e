"""Reductions with NumPy's names; ``axis=`` and ``axes=`` are both accepted.

One rule for PyTorch code: ``dim=``/``keepdim=`` mean PyTorch's semantics, ``axis=``/
``keepdims=`` NumPy's. They differ where PyTorch's result does: with ``dim=``, ``max``,
``min``, ``sort``, ``median`` return a named (values, indices) tuple and ``var``/``std``
default to the unbiased estimate (correction 1); elsewhere ``dim`` is another name for ``axis``.

>>> x = fx.tensor([[1.0, 5.0, 3.0]])
>>> fx.max(x, axis=1)
[5.]:f32[1]:cpu(0)
>>> fx.max(x, dim=1).indices
[1]:i64[1]:cpu(0)
"""

from __future__ import annotations

import builtins
import collections
import functools
import inspect

import numpy as np

from fluxion.core import dtypes
from fluxion.core.checks import check_dtype, check_number, check_size
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import (
    _floating,
    astype,
    exp,
    log,
    maximum,
    minimum,
    sqrt,
    stop_gradient,
    where,
)


def _axes(op, x, axis, axes, dim=None):
    given = [(n, v) for n, v in (("axis", axis), ("axes", axes), ("dim", dim)) if v is not None]
    # a bad value is named before a clash of names
    checked = [P.check_axes(op, v, x.ndim, n) for n, v in given] or [tuple(range(x.ndim))]
    if len(given) > 1:
        raise InvalidArgumentError(f"{op}: give one of axis=, axes=, dim=; got {given}")
    return checked[0] if x.ndim else ()  # axis 0/-1 of a 0-d tensor (as PyTorch): no axis


def _keepdims(op, keepdims, keepdim) -> bool:
    """NumPy's ``keepdims=`` or PyTorch's ``keepdim=`` (the same flag)."""
    if keepdim is None:
        return keepdims
    if keepdims:
        raise InvalidArgumentError(
            f"{op}: give keepdims= or keepdim=, not both (got {keepdims!r}, {keepdim!r})"
        )
    return keepdim


def _values_indices(name):
    return collections.namedtuple(name, ["values", "indices"], module="fluxion.return_types")


# PyTorch's named results (torch.return_types): ``v, i = x.sort(dim=-1)`` or ``.values``
return_types = collections.namedtuple("return_types", "max min sort topk median mode")(
    *map(_values_indices, ("max", "min", "sort", "topk", "median", "mode"))
)


def _keep(x: Tensor, reduced: Tensor, axes, keepdims) -> Tensor:
    if not keepdims:
        return reduced
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return bind(P.reshape_p, reduced, shape=shape)


def widened(fn):
    """``fn`` run in float32 when its first argument is float16 or bfloat16, the result
    rounded to that dtype once: the sums inside it (a mean, a norm's statistics, softmax's
    denominator, a loss) accumulate wide, as PyTorch's CPU kernels do, instead of rounding
    at each step (layer_norm of float16 activations overflowed to NaN in its squares)."""

    first = next(iter(inspect.signature(fn).parameters))  # also given by keyword (input=)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        x = args[0] if args else kwargs.pop(first)
        low = to_tensor(x)._np_dtype
        if low not in dtypes.LOW_FLOATS:
            return fn(x, *args[1:], **kwargs)
        return astype(fn(astype(x, np.float32), *args[1:], **kwargs), low)

    return run


def accumulator_dtype(np_dtype):
    """The dtype sums and products accumulate in (NumPy's and the array API's): int64 for
    bools and signed ints, uint64 for unsigned ones; floats and complex as they are."""
    if dtypes.is_inexact(np_dtype):
        return np_dtype
    return np.dtype(np.uint64) if np_dtype.kind == "u" else dtypes.DEFAULT_INT


def _reduce(prim, x, axes, keepdims):
    return _keep(x, bind(prim, x, axes=axes), axes, keepdims)


def sum(
    x, axis=None, keepdims: bool = False, dtype=None, *, axes=None, dim=None, keepdim=None
) -> Tensor:
    """Sum over ``axis`` (all axes by default); bools and signed integers sum as int64,
    unsigned ones as uint64.

    >>> fx.sum(fx.ones((2, 3)), axis=0)
    [2. 2. 2.]:f32[3]:cpu(0)
    """
    x = to_tensor(x)
    if dtype is not None:
        x = astype(x, check_dtype("sum", "dtype", dtype))
    else:
        x = astype(x, accumulator_dtype(x._np_dtype))
    keepdims = _keepdims("sum", keepdims, keepdim)
    return _reduce(P.reduce_sum_p, x, _axes("sum", x, axis, axes, dim), keepdims)


@widened
def mean(x, axis=None, keepdims: bool = False, *, axes=None, dim=None, keepdim=None) -> Tensor:
    """Arithmetic mean; integers average as float32."""
    x = _floating(x)
    axes, keepdims = _axes("mean", x, axis, axes, dim), _keepdims("mean", keepdims, keepdim)
    count = int(np.prod([x.shape[a] for a in axes]))
    return _reduce(P.reduce_sum_p, x, axes, keepdims) / float(count)


@widened
def var(
    x,
    axis=None,
    keepdims: bool = False,
    ddof: int | None = None,
    *,
    axes=None,
    correction=None,
    dim=None,
    keepdim=None,
    unbiased=None,
) -> Tensor:
    """Variance with NumPy's ``ddof`` (0 by default); with ``dim=``, PyTorch's unbiased one
    (``correction`` 1 by default; ``unbiased=False`` or ``correction=0`` for the biased)."""
    return _var("var", x, axis, keepdims, ddof, axes, correction, dim, keepdim, unbiased)


def _var(op, x, axis, keepdims, ddof, axes, correction, dim, keepdim, unbiased) -> Tensor:
    x = _floating(x)
    axes, keepdims = _axes(op, x, axis, axes, dim), _keepdims(op, keepdims, keepdim)
    given = [(n, v) for n, v in (("ddof", ddof), ("correction", correction)) if v is not None]
    if unbiased is not None:
        given.append(("unbiased", int(bool(unbiased))))
    for n, v in given:  # a bad value is named before a clash of names
        check_number(op, n, v)
    if len(given) > 1:
        raise InvalidArgumentError(f"{op}: give one of ddof=, correction=, unbiased=; got {given}")
    name, value = given[0] if given else ("ddof", 0 if dim is None else 1)
    ddof = check_number(op, name, value)
    count = int(np.prod([x.shape[a] for a in axes]))
    centered = x - mean(x, axes=axes, keepdims=True)
    return _reduce(P.reduce_sum_p, centered * centered, axes, keepdims) / float(
        builtins.max(count - ddof, 0)
    )


@widened
def std(
    x,
    axis=None,
    keepdims: bool = False,
    ddof: int | None = None,
    *,
    axes=None,
    correction=None,
    dim=None,
    keepdim=None,
    unbiased=None,
) -> Tensor:
    """Standard deviation: ``sqrt(var(...))`` (the same ``ddof``/``dim=`` defaults); its
    gradient is 0 where the variance is 0, as in PyTorch (sqrt' is infinite there, and
    would meet a zero: NaN)."""
    v = _var("std", x, axis, keepdims, ddof, axes, correction, dim, keepdim, unbiased)
    spread = v != 0
    return where(spread, sqrt(where(spread, v, 1.0)), 0.0)


def _nonempty(op, x, axes):
    if builtins.any(x.shape[a] == 0 for a in axes):
        raise ShapeError(
            f"{op}: cannot reduce over an empty axis (shape {x.shape}, axis {axes}): it has no "
            "identity; reduce over non-empty axes or mask with fx.where first"
        )
    return axes


def amax(x, axis=None, keepdims: bool = False, *, axes=None, dim=None, keepdim=None) -> Tensor:
    """Largest element along ``axis`` (all by default); ties share the gradient evenly."""
    x = to_tensor(x)
    axes, keepdims = _axes("amax", x, axis, axes, dim), _keepdims("amax", keepdims, keepdim)
    return _reduce(P.reduce_max_p, x, _nonempty("amax", x, axes), keepdims)


def amin(x, axis=None, keepdims: bool = False, *, axes=None, dim=None, keepdim=None) -> Tensor:
    """Smallest element along ``axis`` (all by default); ties share the gradient evenly."""
    x = to_tensor(x)
    axes, keepdims = _axes("amin", x, axis, axes, dim), _keepdims("amin", keepdims, keepdim)
    return _reduce(P.reduce_min_p, x, _nonempty("amin", x, axes), keepdims)


def _picked(op, x, order, dim, keepdim, position: int):
    """Values and indices at ``position`` of ``order`` (indices that sort ``x`` along ``dim``)."""
    from fluxion.ops.indexing import take_along_axis
    from fluxion.ops.shape import slice_tensor

    x = to_tensor(x)
    axis = P.check_axis(op, dim, x.ndim, "dim") if x.ndim else None
    if axis is None:  # dim 0/-1 of a 0-d tensor, as PyTorch: the value at index 0
        P.check_axes(op, dim, 0, "dim")
        return x, P.constant(0, dtypes.DEFAULT_INT)
    _nonempty(op, x, (axis,))
    start = tuple(position if a == axis else 0 for a in range(x.ndim))
    size = tuple(1 if a == axis else d for a, d in enumerate(x.shape))
    indices = slice_tensor(order(x, axis), start, size)
    values = take_along_axis(x, indices, axis)
    if keepdim:
        return values, indices
    shape = tuple(d for a, d in enumerate(x.shape) if a != axis)
    return bind(P.reshape_p, values, shape=shape), bind(P.reshape_p, indices, shape=shape)


def max(x, axis=None, keepdims: bool = False, *, axes=None, dim=None, keepdim=None):
    """Largest element (``amax``; ties share the gradient evenly). With ``dim=``, PyTorch's
    ``(values, indices)`` along it (the first index on ties, which gets the gradient);
    ``fx.max(x, y)`` of two tensors is ``fx.maximum``."""
    if isinstance(axis, Tensor):
        return maximum(x, axis)
    if dim is None:
        return amax(x, axis, keepdims, axes=axes, keepdim=keepdim)
    _axes("max", to_tensor(x), axis, axes, dim)
    keepdim = _keepdims("max", keepdims, keepdim)
    first = _picked("max", x, lambda t, a: argmax(t, a, keepdims=True), dim, keepdim, 0)
    return return_types.max(*first)


def min(x, axis=None, keepdims: bool = False, *, axes=None, dim=None, keepdim=None):
    """Smallest element (``amin``); with ``dim=``, PyTorch's ``(values, indices)``;
    ``fx.min(x, y)`` of two tensors is ``fx.minimum``."""
    if isinstance(axis, Tensor):
        return minimum(x, axis)
    if dim is None:
        return amin(x, axis, keepdims, axes=axes, keepdim=keepdim)
    _axes("min", to_tensor(x), axis, axes, dim)
    keepdim = _keepdims("min", keepdims, keepdim)
    first = _picked("min", x, lambda t, a: argmin(t, a, keepdims=True), dim, keepdim, 0)
    return return_types.min(*first)


def prod(
    x, axis=None, keepdims: bool = False, dtype=None, *, axes=None, dim=None, keepdim=None
) -> Tensor:
    """Product of elements; the gradient is exact even where elements are zero."""
    x = to_tensor(x)
    if dtype is not None:
        x = astype(x, check_dtype("prod", "dtype", dtype))
    else:
        x = astype(x, accumulator_dtype(x._np_dtype))
    keepdims = _keepdims("prod", keepdims, keepdim)
    return _reduce(P.reduce_prod_p, x, _axes("prod", x, axis, axes, dim), keepdims)


def _arg(prim, op, x, axis, keepdims, dim=None, keepdim=None):
    x = to_tensor(x)
    keepdims = _keepdims(op, keepdims, keepdim)
    if dim is not None:
        _axes(op, x, axis, None, dim)
        axis = dim
    _nonempty(op, x, _axes(op, x, axis, None))
    if axis is None:
        out = bind(prim, bind(P.reshape_p, x, shape=(x.size,)), axis=0)
        return bind(P.reshape_p, out, shape=(1,) * x.ndim) if keepdims else out
    if x.ndim == 0:  # axis 0/-1 of a 0-d tensor, as PyTorch: the only index is 0
        P.check_axes(op, axis, 0)
        return P.constant(0, dtypes.DEFAULT_INT)
    axis = P.check_axis(op, axis, x.ndim)
    return _keep(x, bind(prim, x, axis=axis), (axis,), keepdims)


def argmax(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    """Index of the largest element (first on ties), as int64."""
    return _arg(P.argmax_p, "argmax", x, axis, keepdims, dim, keepdim)


def argmin(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None) -> Tensor:
    """Index of the smallest element (first on ties), as int64."""
    return _arg(P.argmin_p, "argmin", x, axis, keepdims, dim, keepdim)


def _sort_axis(op, x, axis, dim) -> int:
    """The axis of a sort: ``axis`` (NumPy) or ``dim`` (PyTorch), the last by default."""
    if dim is None:
        return axis
    P.check_axis(op, dim, x.ndim, "dim") if x.ndim else P.check_axes(op, dim, 0, "dim")
    if axis != -1:
        raise InvalidArgumentError(
            f"{op}: give axis= or dim=, not both (got axis={axis!r}, dim={dim!r})"
        )
    return dim


def argsort(
    x, axis: int = -1, descending: bool = False, *, dim=None, stable: bool = True
) -> Tensor:
    """Indices that sort ``x`` along ``axis`` (stable: equal keys keep their order, whatever
    ``stable`` says, which the array API lets an implementation do), int64."""
    x = to_tensor(x)
    axis = _sort_axis("argsort", x, axis, dim)
    if x.ndim == 0:
        P.check_axes("argsort", axis, 0)
        return P.constant(0, dtypes.DEFAULT_INT)
    return bind(P.argsort_p, x, axis=P.check_axis("argsort", axis, x.ndim), descending=descending)


def sort(x, axis: int = -1, descending: bool = False, *, dim=None, stable: bool = True):
    """``x`` sorted along ``axis``; differentiable (the gradient follows the permutation);
    always stable. With ``dim=``, PyTorch's ``(values, indices)``: ``v, i = x.sort(dim=-1)``."""
    from fluxion.ops.indexing import take_along_axis

    x = to_tensor(x)
    axis = _sort_axis("sort", x, axis, dim)
    order = argsort(x, axis, descending)
    values = x if x.ndim == 0 else take_along_axis(x, order, axis)
    return values if dim is None else return_types.sort(values, order)


def topk(x, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """PyTorch's topk: the ``k`` largest (``largest=False``: smallest) values along ``dim``
    and their indices, as a named ``(values, indices)`` tuple, always in sorted order.

    >>> fx.topk(fx.tensor([1.0, 4.0, 2.0]), 2).indices
    [1 2]:i64[2]:cpu(0)
    """
    return return_types.topk(*_top_k("topk", x, k, dim, "dim", largest))


def top_k(x, k: int, axis: int = -1) -> tuple[Tensor, Tensor]:
    """The ``k`` largest values along ``axis`` (largest first) and their indices."""
    return _top_k("top_k", x, k, axis, "axis", True)


def _top_k(op, x, k, axis, name, largest):
    from fluxion.ops.indexing import take_along_axis
    from fluxion.ops.shape import slice_tensor

    x = to_tensor(x)
    axis = P.check_axis(op, axis, x.ndim, name)
    if not 0 <= check_size(op, "k", k) <= x.shape[axis]:
        raise InvalidArgumentError(
            f"{op}: k={k} must lie in [0, {x.shape[axis]}] ({name} {axis} of shape {x.shape})"
        )
    order = argsort(x, axis, descending=largest)
    size = tuple(k if a == axis else d for a, d in enumerate(x.shape))
    indices = slice_tensor(order, (0,) * x.ndim, size)
    return take_along_axis(x, indices, axis), indices


def median(x, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
    """NumPy's median: the middle value along ``axis`` (all elements by default), the mean
    of the two middle ones for an even count. With ``dim=``, PyTorch's: the lower of the
    two middle values and its index, as a named ``(values, indices)`` tuple.

    >>> fx.median(fx.tensor([1.0, 4.0, 2.0, 3.0]))
    2.5:f32[]:cpu(0)
    >>> fx.median(fx.tensor([1.0, 4.0, 2.0, 3.0]), dim=0).values
    2.0:f32[]:cpu(0)
    """
    if dim is not None:
        x = to_tensor(x)
        _axes("median", x, axis, None, dim)
        n = x.shape[dim] if x.ndim else 1
        keepdim = _keepdims("median", keepdims, keepdim)
        return return_types.median(*_picked("median", x, argsort, dim, keepdim, (n - 1) // 2))
    from fluxion.ops.shape import slice_tensor, transpose

    x = _floating(x)
    axes, keepdims = _axes("median", x, axis, None), _keepdims("median", keepdims, keepdim)
    _nonempty("median", x, axes)
    rest = [a for a in range(x.ndim) if a not in axes]
    n = int(np.prod([x.shape[a] for a in axes]))
    rows = transpose(x, rest + list(axes))
    rows = bind(P.reshape_p, rows, shape=tuple(x.shape[a] for a in rest) + (n,))
    ordered = sort(rows, axis=-1)
    size = tuple(x.shape[a] for a in rest) + (1,)
    start = (0,) * len(rest)
    lo = slice_tensor(ordered, start + ((n - 1) // 2,), size)
    hi = slice_tensor(ordered, start + (n // 2,), size)
    return _keep(x, bind(P.reshape_p, (lo + hi) * 0.5, shape=size[:-1]), axes, keepdims)


def mode(x, dim: int = -1, keepdim: bool = False):
    """PyTorch's mode: the most frequent value along ``dim`` (the smallest of equally
    frequent ones) and the index of its last occurrence, as a named ``(values, indices)``.
    Compares all pairs along ``dim``: memory grows with its length squared.

    >>> fx.mode(fx.tensor([3, 1, 3, 2])).values
    3:i64[]:cpu(0)
    """
    from fluxion.ops.indexing import take_along_axis
    from fluxion.ops.shape import expand_dims, moveaxis

    x = to_tensor(x)
    if x.ndim == 0:
        P.check_axes("mode", dim, 0, "dim")
        return return_types.mode(x, P.constant(0, dtypes.DEFAULT_INT))
    axis = P.check_axis("mode", dim, x.ndim, "dim")
    _nonempty("mode", x, (axis,))
    rows = moveaxis(x, axis, -1)
    n = rows.shape[-1]
    same = expand_dims(rows, -1) == expand_dims(rows, -2)  # (..., n, n)
    counts = sum(same, axis=-1)
    best = counts == amax(counts, axis=-1, keepdims=True)
    # the smallest value among the most frequent: rank the candidates by value
    rank = argsort(argsort(rows, axis=-1), axis=-1)
    chosen = argmin(where(best, rank, n), axis=-1, keepdims=True)
    positions = P.constant(np.arange(n), dtypes.DEFAULT_INT)
    last = amax(where(rows == take_along_axis(rows, chosen, -1), positions, -1), -1, True)
    # the value read at the index returned, so that its gradient goes there (as PyTorch)
    values, indices = moveaxis(take_along_axis(rows, last, -1), -1, axis), moveaxis(last, -1, axis)
    if not keepdim:
        values, indices = (
            bind(P.reshape_p, t, shape=t.shape[:axis] + t.shape[axis + 1 :])
            for t in (values, indices)
        )
    return return_types.mode(values, indices)


def _logical(op, prim, identity, x, axis, keepdims, axes, dim, keepdim):
    x = astype(x, bool)
    axes, keepdims = _axes(op, x, axis, axes, dim), _keepdims(op, keepdims, keepdim)
    if builtins.any(x.shape[a] == 0 for a in axes):
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        out = P.constant(np.full(shape, identity), bool)
        return (
            out
            if keepdims
            else bind(
                P.reshape_p, out, shape=tuple(d for i, d in enumerate(x.shape) if i not in axes)
            )
        )
    return _reduce(prim, x, axes, keepdims)


def all(x, axis=None, keepdims: bool = False, *, axes=None, dim=None, keepdim=None) -> Tensor:
    """True where every element is truthy (True over an empty axis)."""
    return _logical("all", P.reduce_min_p, True, x, axis, keepdims, axes, dim, keepdim)


def any(x, axis=None, keepdims: bool = False, *, axes=None, dim=None, keepdim=None) -> Tensor:
    """True where some element is truthy (False over an empty axis)."""
    return _logical("any", P.reduce_max_p, False, x, axis, keepdims, axes, dim, keepdim)


def cumsum(x, axis=None, dtype=None, *, dim=None) -> Tensor:
    """Running sum along ``axis`` (of the flattened tensor when ``axis`` is None)."""
    x = to_tensor(x)
    if dim is not None:
        _axes("cumsum", x, axis, None, dim)
        axis = dim
    if dtype is not None:
        x = astype(x, check_dtype("cumsum", "dtype", dtype))
    else:
        x = astype(x, accumulator_dtype(x._np_dtype))
    if axis is None:
        x, axis = bind(P.reshape_p, x, shape=(x.size,)), 0
    if x.ndim == 0:  # axis 0/-1 of a 0-d tensor, as PyTorch: the running sum is x
        P.check_axes("cumsum", axis, 0)
        return x
    axis = P.check_axis("cumsum", axis, x.ndim)
    return bind(P.cumsum_p, x, axis=axis, reverse=False)


def _empty(x, axes) -> bool:
    return builtins.any(x.shape[a] == 0 for a in axes)


@widened
def logsumexp(x, axis=None, keepdims: bool = False, *, axes=None, dim=None, keepdim=None) -> Tensor:
    """log(sum(exp(x))) computed stably (the max is subtracted first); -inf over an empty axis."""
    x = _floating(x)
    axes, keepdims = (
        _axes("logsumexp", x, axis, axes, dim),
        _keepdims("logsumexp", keepdims, keepdim),
    )
    if _empty(x, axes):
        # log(0) = -inf, without NumPy's warning about it; the (empty) sum keeps the result
        # a function of x, so that it has a gradient as in PyTorch
        out = sum(x, axes=axes, keepdims=True) - np.inf
    else:
        shift = stop_gradient(max(x, axes=axes, keepdims=True))
        shift = where(shift == shift * 2, 0.0, shift)  # 0 and +-inf give no useful shift
        out = log(sum(exp(x - shift), axes=axes, keepdims=True)) + shift
    return (
        out
        if keepdims
        else bind(P.reshape_p, out, shape=tuple(d for i, d in enumerate(x.shape) if i not in axes))
    )


def _minus_max(x, axes) -> Tensor:
    """``x`` less its max along ``axes``, through which no gradient flows: exp of it cannot
    overflow (a row holding +inf becomes NaN, as in PyTorch)."""
    return x - stop_gradient(max(x, axes=axes, keepdims=True))


@widened
def softmax(x, axis: int = -1, *, dim=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, stable for large inputs."""
    x = _floating(x)
    axes = _axes("softmax", x, None if dim is not None and axis == -1 else axis, None, dim)
    if _empty(x, axes):
        return x  # nothing to normalize
    e = exp(_minus_max(x, axes))
    return e / sum(e, axes=axes, keepdims=True)


@widened
def log_softmax(x, axis: int = -1, *, dim=None) -> Tensor:
    """x - logsumexp(x) along ``axis``, computed as (x - max) - log(sum(exp(x - max))): the
    max leaves before anything is rounded (x - logsumexp(x) loses 3e-5 at x = 1000 in float32)."""
    x = _floating(x)
    axes = _axes("log_softmax", x, None if dim is not None and axis == -1 else axis, None, dim)
    if _empty(x, axes):
        return x  # nothing to normalize
    z = _minus_max(x, axes)
    return z - log(sum(exp(z), axes=axes, keepdims=True))
