"""Reductions with NumPy's names; ``axis=`` and ``axes=`` are both accepted."""

from __future__ import annotations

import builtins
import functools
import inspect

import numpy as np

from fluxion.core import dtypes
from fluxion.core.checks import check_dtype, check_number, check_size
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import _floating, astype, exp, log, sqrt, stop_gradient, where


def _axes(op, x, axis, axes):
    if axis is not None and axes is not None:
        raise InvalidArgumentError(f"{op}: give axis= or axes=, not both")
    checked = P.check_axes(op, axes if axes is not None else axis, x.ndim)
    return checked if x.ndim else ()  # axis 0/-1 of a 0-d tensor (as PyTorch): no axis


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


def sum(x, axis=None, keepdims: bool = False, dtype=None, *, axes=None) -> Tensor:
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
    return _reduce(P.reduce_sum_p, x, _axes("sum", x, axis, axes), keepdims)


@widened
def mean(x, axis=None, keepdims: bool = False, *, axes=None) -> Tensor:
    """Arithmetic mean; integers average as float32."""
    x = _floating(x)
    axes = _axes("mean", x, axis, axes)
    count = int(np.prod([x.shape[a] for a in axes]))
    return _reduce(P.reduce_sum_p, x, axes, keepdims) / float(count)


@widened
def var(
    x, axis=None, keepdims: bool = False, ddof: int = 0, *, axes=None, correction=None
) -> Tensor:
    """Variance with NumPy's ``ddof`` (PyTorch's ``correction`` is accepted too)."""
    return _var("var", x, axis, keepdims, ddof, axes, correction)


def _var(op, x, axis, keepdims, ddof, axes, correction) -> Tensor:
    x = _floating(x)
    axes = _axes(op, x, axis, axes)
    if correction is None:
        ddof = check_number(op, "ddof", ddof)
    else:
        ddof = check_number(op, "correction", correction)
    count = int(np.prod([x.shape[a] for a in axes]))
    centered = x - mean(x, axes=axes, keepdims=True)
    return _reduce(P.reduce_sum_p, centered * centered, axes, keepdims) / float(
        builtins.max(count - ddof, 0)
    )


@widened
def std(
    x, axis=None, keepdims: bool = False, ddof: int = 0, *, axes=None, correction=None
) -> Tensor:
    """Standard deviation: ``sqrt(var(...))``; its gradient is 0 where the variance is 0,
    as in PyTorch (sqrt' is infinite there, and would meet a zero: NaN)."""
    v = _var("std", x, axis, keepdims, ddof, axes, correction)
    spread = v != 0
    return where(spread, sqrt(where(spread, v, 1.0)), 0.0)


def _nonempty(op, x, axes):
    if builtins.any(x.shape[a] == 0 for a in axes):
        raise ShapeError(
            f"{op}: cannot reduce over an empty axis (shape {x.shape}, axis {axes}): it has no "
            "identity; reduce over non-empty axes or mask with fx.where first"
        )
    return axes


def max(x, axis=None, keepdims: bool = False, *, axes=None) -> Tensor:
    """Largest element (``amax``); ties share the gradient evenly."""
    x = to_tensor(x)
    return _reduce(P.reduce_max_p, x, _nonempty("max", x, _axes("max", x, axis, axes)), keepdims)


def min(x, axis=None, keepdims: bool = False, *, axes=None) -> Tensor:
    """Smallest element (``amin``); ties share the gradient evenly."""
    x = to_tensor(x)
    return _reduce(P.reduce_min_p, x, _nonempty("min", x, _axes("min", x, axis, axes)), keepdims)


amax, amin = max, min


def prod(x, axis=None, keepdims: bool = False, dtype=None, *, axes=None) -> Tensor:
    """Product of elements; the gradient is exact even where elements are zero."""
    x = to_tensor(x)
    if dtype is not None:
        x = astype(x, check_dtype("prod", "dtype", dtype))
    else:
        x = astype(x, accumulator_dtype(x._np_dtype))
    return _reduce(P.reduce_prod_p, x, _axes("prod", x, axis, axes), keepdims)


def _arg(prim, op, x, axis, keepdims):
    x = to_tensor(x)
    _nonempty(op, x, _axes(op, x, axis, None))
    if axis is None:
        out = bind(prim, bind(P.reshape_p, x, shape=(x.size,)), axis=0)
        return bind(P.reshape_p, out, shape=(1,) * x.ndim) if keepdims else out
    if x.ndim == 0:  # axis 0/-1 of a 0-d tensor, as PyTorch: the only index is 0
        P.check_axes(op, axis, 0)
        return P.constant(0, dtypes.DEFAULT_INT)
    axis = P.check_axis(op, axis, x.ndim)
    return _keep(x, bind(prim, x, axis=axis), (axis,), keepdims)


def argmax(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the largest element (first on ties), as int64."""
    return _arg(P.argmax_p, "argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the smallest element (first on ties), as int64."""
    return _arg(P.argmin_p, "argmin", x, axis, keepdims)


def argsort(x, axis: int = -1, descending: bool = False, *, stable: bool = True) -> Tensor:
    """Indices that sort ``x`` along ``axis`` (stable: equal keys keep their order, whatever
    ``stable`` says, which the array API lets an implementation do), int64."""
    x = to_tensor(x)
    if x.ndim == 0:
        P.check_axes("argsort", axis, 0)
        return P.constant(0, dtypes.DEFAULT_INT)
    return bind(P.argsort_p, x, axis=P.check_axis("argsort", axis, x.ndim), descending=descending)


def sort(x, axis: int = -1, descending: bool = False, *, stable: bool = True) -> Tensor:
    """``x`` sorted along ``axis``; differentiable (the gradient follows the permutation);
    always stable."""
    from fluxion.ops.indexing import take_along_axis

    x = to_tensor(x)
    if x.ndim == 0:
        return x
    return take_along_axis(x, argsort(x, axis, descending), axis)


def top_k(x, k: int, axis: int = -1) -> tuple[Tensor, Tensor]:
    """The ``k`` largest values along ``axis`` (largest first) and their indices."""
    from fluxion.ops.indexing import take_along_axis
    from fluxion.ops.shape import slice_tensor

    x = to_tensor(x)
    axis = P.check_axis("top_k", axis, x.ndim)
    if not 0 <= check_size("top_k", "k", k) <= x.shape[axis]:
        raise InvalidArgumentError(
            f"top_k: k={k} must lie in [0, {x.shape[axis]}] (axis {axis} of shape {x.shape})"
        )
    order = argsort(x, axis, descending=True)
    size = tuple(k if a == axis else d for a, d in enumerate(x.shape))
    indices = slice_tensor(order, (0,) * x.ndim, size)
    return take_along_axis(x, indices, axis), indices


def _logical(op, prim, identity, x, axis, keepdims, axes):
    x = astype(x, bool)
    axes = _axes(op, x, axis, axes)
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


def all(x, axis=None, keepdims: bool = False, *, axes=None) -> Tensor:
    """True where every element is truthy (True over an empty axis)."""
    return _logical("all", P.reduce_min_p, True, x, axis, keepdims, axes)


def any(x, axis=None, keepdims: bool = False, *, axes=None) -> Tensor:
    """True where some element is truthy (False over an empty axis)."""
    return _logical("any", P.reduce_max_p, False, x, axis, keepdims, axes)


def cumsum(x, axis=None, dtype=None) -> Tensor:
    """Running sum along ``axis`` (of the flattened tensor when ``axis`` is None)."""
    x = to_tensor(x)
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
def logsumexp(x, axis=None, keepdims: bool = False, *, axes=None) -> Tensor:
    """log(sum(exp(x))) computed stably (the max is subtracted first); -inf over an empty axis."""
    x = _floating(x)
    axes = _axes("logsumexp", x, axis, axes)
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
def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, stable for large inputs."""
    x = _floating(x)
    axes = _axes("softmax", x, axis, None)
    if _empty(x, axes):
        return x  # nothing to normalize
    e = exp(_minus_max(x, axes))
    return e / sum(e, axes=axes, keepdims=True)


@widened
def log_softmax(x, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along ``axis``, computed as (x - max) - log(sum(exp(x - max))): the
    max leaves before anything is rounded (x - logsumexp(x) loses 3e-5 at x = 1000 in float32)."""
    x = _floating(x)
    axes = _axes("log_softmax", x, axis, None)
    if _empty(x, axes):
        return x  # nothing to normalize
    z = _minus_max(x, axes)
    return z - log(sum(exp(z), axes=axes, keepdims=True))
