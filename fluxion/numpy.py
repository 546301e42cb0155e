"""JAX's ``jax.numpy`` over fluxion's ops: ``import fluxion.numpy as jnp``.

The names and signatures are jax.numpy's (``jnp.zeros(shape, dtype)``, ``jnp.sum(a, axis,
dtype, out, keepdims)``, ``jnp.var(a, ddof=1)``, ``jnp.where(c)``, ``jnp.clip(a, min, max)``);
each is one of fluxion's ops or a short composite of them, so every transform sees through
it. Arrays are fluxion tensors, updated out of place with ``x.at[idx].set(v)``.

>>> import fluxion.numpy as jnp
>>> x = jnp.arange(6.0).reshape(2, 3)
>>> jnp.sum(x, axis=0), jnp.var(x, ddof=1)
([3. 5. 7.]:f32[3]:cpu(0), 3.5:f32[]:cpu(0))
>>> x.at[0, 1].set(10.0)
[[ 0. 10.  2.]
 [ 3.  4.  5.]]:f32[2,3]:cpu(0)

Where fluxion differs from JAX (see the README, "Coming from JAX"): integers default to
int64 (JAX: int32 unless x64 is on), an index out of range raises instead of being clamped
or dropped, and ``out=``/``where=`` arguments are refused rather than ignored.
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from fluxion import array_api as _api
from fluxion import fft, linalg  # noqa: F401  (jnp.fft, jnp.linalg)
from fluxion.array_api import (  # noqa: F401  (the same in jax.numpy)
    broadcast_shapes,
    count_nonzero,
    diff,
    isin,
    matrix_transpose,
    meshgrid,
    permute_dims,
    vecdot,
)
from fluxion.core import dtypes
from fluxion.core.dtypes import DType
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.errors import InvalidArgumentError
from fluxion.ops import creation as _creation
from fluxion.ops import elementwise as _el
from fluxion.ops import indexing as _ix
from fluxion.ops import linalg as _la
from fluxion.ops import reduction as _red
from fluxion.ops import shape as _sh
from fluxion.ops.creation import tril, triu  # noqa: F401
from fluxion.ops.elementwise import (  # noqa: F401
    abs,
    add,
    angle,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    astype,
    bitwise_and,
    bitwise_invert,
    bitwise_or,
    bitwise_xor,
    ceil,
    conj,
    copysign,
    cos,
    cosh,
    divide,
    equal,
    exp,
    expm1,
    floor,
    floor_divide,
    greater,
    greater_equal,
    hypot,
    imag,
    invert,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    nextafter,
    not_equal,
    positive,
    power,
    real,
    reciprocal,
    remainder,
    sign,
    signbit,
    sin,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    true_divide,
    trunc,
)
from fluxion.ops.inspection import can_cast, finfo, iinfo, result_type  # noqa: F401
from fluxion.ops.linalg import outer  # noqa: F401
from fluxion.ops.shape import (  # noqa: F401
    broadcast_arrays,
    broadcast_to,
    moveaxis,
    swapaxes,
    tile,
)

ndarray = Array = Tensor
absolute = fabs = abs
acos, acosh, asin, asinh, atan, atan2, atanh = (
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
)
pow, conjugate, fix, bitwise_not = power, conj, trunc, bitwise_invert

pi, e, inf, nan, newaxis, euler_gamma = (
    math.pi,
    math.e,
    math.inf,
    math.nan,
    None,
    0.5772156649015329,
)

# NumPy's abstract scalar types, for jnp.issubdtype(x.dtype, jnp.floating)
generic, number, inexact, floating, complexfloating = (
    np.generic,
    np.number,
    np.inexact,
    np.floating,
    np.complexfloating,
)
integer, signedinteger, unsignedinteger = np.integer, np.signedinteger, np.unsignedinteger


class _ScalarType(DType):
    """A dtype that, as JAX's, also makes arrays: ``jnp.float32(1.5)``; equal to fluxion's."""

    __slots__ = ()

    def __call__(self, x) -> Tensor:
        return asarray(x, dtype=self)


for _name in (
    "bool",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
    "complex128",
):
    _d = getattr(DType, _name)
    globals()[_name] = _ScalarType(_d.name, _d.np, _d.short)
bool_ = globals()["bool"]
del _name, _d


def _refuse(op: str, **given) -> None:
    """JAX arguments fluxion does not take: an error naming them, never a silent no-op."""
    for name, value in given.items():
        if value is not None and value is not False:
            why = (
                "arrays are immutable: use the returned array"
                if name == "out"
                else "leave it out, or write the equivalent with fluxion.numpy's functions"
            )
            raise InvalidArgumentError(f"jnp.{op}: {name}= is not supported by fluxion ({why})")


def _contains_tensor(obj) -> builtins.bool:
    if isinstance(obj, Tensor):
        return True
    return isinstance(obj, list | tuple) and builtins.any(map(_contains_tensor, obj))


# ----------------------------------------------------------------------------- dtypes


def dtype(obj) -> DType:
    """The fluxion dtype that ``obj`` names (a dtype, a name, a Python or NumPy type)."""
    return dtypes.to_dtype(dtypes.to_np(obj))


def issubdtype(arg1, arg2) -> builtins.bool:
    """NumPy's issubdtype, bfloat16 included among the floating types."""
    first = dtypes.to_np(arg1)
    if isinstance(arg2, type) and issubclass(arg2, np.generic):
        if first == dtypes.bfloat16_np:
            return arg2 in (np.generic, np.number, np.inexact, np.floating)
        return np.issubdtype(first, arg2)
    return first == dtypes.to_np(arg2)


def promote_types(a, b) -> DType:
    return result_type(a, b)


def shape(a) -> tuple:
    return tuple(to_tensor(a).shape)


def ndim(a) -> int:
    return to_tensor(a).ndim


def size(a, axis=None) -> int:
    a = to_tensor(a)
    return a.size if axis is None else a.shape[axis]


# ----------------------------------------------------------------------------- creation


def array(object, dtype=None, copy: builtins.bool = True, ndmin: int = 0) -> Tensor:
    """An array from nested data; lists of (traced) arrays are stacked, as in JAX."""
    if isinstance(object, list | tuple) and _contains_tensor(object):
        out = _sh.stack([array(o) for o in object]) if object else _creation.tensor(object)
        out = out if dtype is None else _el.astype(out, dtype)
    elif isinstance(object, Tensor):
        out = _el.astype(object, object.dtype if dtype is None else dtype, copy=copy)
    else:
        out = _creation.asarray(object, dtype, copy=copy or None)
    return _sh.reshape(out, (1,) * (ndmin - out.ndim) + out.shape) if out.ndim < ndmin else out


def asarray(a, dtype=None, copy=None) -> Tensor:
    if isinstance(a, Tensor) or _contains_tensor(a):
        return array(a, dtype, copy=builtins.bool(copy))
    return _creation.asarray(a, dtype, copy=copy)


def _float_or(dtype):
    return dtypes.DEFAULT_FLOAT if dtype is None else dtype


def zeros(shape, dtype=None) -> Tensor:
    return _creation.zeros(shape, dtype=_float_or(dtype))


def ones(shape, dtype=None) -> Tensor:
    return _creation.ones(shape, dtype=_float_or(dtype))


empty = zeros


def full(shape, fill_value, dtype=None) -> Tensor:
    if isinstance(fill_value, Tensor):
        value = fill_value if dtype is None else _el.astype(fill_value, dtype)
        return _sh.broadcast_to(value, shape)
    return _creation.full(shape, fill_value, dtype)


def _like(a, dtype, shape) -> tuple:
    """The shape and dtype of an array made like ``a``: its own unless given."""
    a = to_tensor(a)
    return (a.shape if shape is None else shape), (a.dtype if dtype is None else dtype)


def zeros_like(a, dtype=None, shape=None) -> Tensor:
    shape, dtype = _like(a, dtype, shape)
    return _creation.zeros(shape, dtype=dtype)


def ones_like(a, dtype=None, shape=None) -> Tensor:
    shape, dtype = _like(a, dtype, shape)
    return _creation.ones(shape, dtype=dtype)


empty_like = zeros_like


def full_like(a, fill_value, dtype=None, shape=None) -> Tensor:
    shape, dtype = _like(a, dtype, shape)
    return full(shape, fill_value, dtype)


def arange(start, stop=None, step=None, dtype=None) -> Tensor:
    return _creation.arange(start, stop, 1 if step is None else step, dtype)


def linspace(
    start, stop, num: int = 50, endpoint: builtins.bool = True, retstep=False, dtype=None, axis=0
):
    """``num`` evenly spaced values; ``retstep=True`` also returns the spacing."""
    if axis != 0:
        _refuse("linspace", axis=axis)
    out = _creation.linspace(start, stop, num, endpoint, dtype)
    if not retstep:
        return out
    return out, (stop - start) / builtins.max(num - 1 if endpoint else num, 1)


def eye(N: int, M: int | None = None, k: int = 0, dtype=None) -> Tensor:
    return _creation.eye(N, M, k, dtype=_float_or(dtype))


def identity(n: int, dtype=None) -> Tensor:
    return eye(n, dtype=dtype)


def diag(v, k: int = 0) -> Tensor:
    """The ``k``-th diagonal of a matrix, or a matrix with the vector ``v`` on it."""
    v = to_tensor(v)
    if v.ndim == 2:
        return diagonal(v, offset=k)
    if v.ndim != 1:
        raise InvalidArgumentError(f"jnp.diag: v must be 1-d or 2-d, got shape {v.shape}")
    n, steps = v.shape[0] + builtins.abs(k), np.arange(v.shape[0])
    rows, cols = steps + builtins.max(-k, 0), steps + builtins.max(k, 0)
    return _creation.zeros((n, n), dtype=v.dtype).at[rows, cols].set(v)


# ----------------------------------------------------------------------------- reductions


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None) -> Tensor:
    _refuse("sum", out=out, initial=initial, where=where)
    return _red.sum(a, axis, keepdims, dtype)


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None) -> Tensor:
    _refuse("prod", out=out, initial=initial, where=where)
    return _red.prod(a, axis, keepdims, dtype)


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None) -> Tensor:
    _refuse("mean", out=out, where=where)
    a = to_tensor(a)
    return _red.mean(a if dtype is None else _el.astype(a, dtype), axis, keepdims)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, correction=None):
    """The variance, divided by ``N - ddof`` (``correction`` is the array API's name)."""
    _refuse("var", out=out, where=where)
    a = to_tensor(a)
    ddof = ddof if correction is None else correction
    return _red.var(a if dtype is None else _el.astype(a, dtype), axis, keepdims, ddof)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, correction=None):
    return sqrt(var(a, axis, dtype, out, ddof, keepdims, where=where, correction=correction))


def _extremum(op, reduce):
    def extremum(a, axis=None, out=None, keepdims=False, initial=None, where=None) -> Tensor:
        _refuse(op, out=out, initial=initial, where=where)
        return reduce(a, axis, keepdims)

    extremum.__name__ = extremum.__qualname__ = op
    return extremum


max = amax = _extremum("max", _red.amax)
min = amin = _extremum("min", _red.amin)


def _logical(op, reduce):
    def logical(a, axis=None, out=None, keepdims=False, *, where=None) -> Tensor:
        _refuse(op, out=out, where=where)
        return reduce(a, axis, keepdims)

    logical.__name__ = logical.__qualname__ = op
    return logical


all = _logical("all", _red.all)
any = _logical("any", _red.any)


def argmax(a, axis=None, out=None, keepdims=None) -> Tensor:
    _refuse("argmax", out=out)
    return _red.argmax(a, axis, builtins.bool(keepdims))


def argmin(a, axis=None, out=None, keepdims=None) -> Tensor:
    _refuse("argmin", out=out)
    return _red.argmin(a, axis, builtins.bool(keepdims))


def ptp(a, axis=None, out=None, keepdims=False) -> Tensor:
    return max(a, axis, out, keepdims) - min(a, axis, out, keepdims)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False) -> Tensor:
    _refuse("median", out=out)
    return _red.median(a, axis, keepdims)


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    """The mean, or the ``weights``-weighted mean (``returned``: and the sum of weights)."""
    a = to_tensor(a)
    if weights is None:
        avg = mean(a, axis, keepdims=keepdims)
        total = _creation.full(avg.shape, a.size // builtins.max(avg.size, 1), dtype=avg.dtype)
    else:
        w = to_tensor(weights)
        if w.shape != a.shape:  # NumPy: a 1-d weight along axis
            w = _sh.reshape(w, [-1 if k == (axis % a.ndim) else 1 for k in range(a.ndim)])
        w = _sh.broadcast_to(w, a.shape)
        total = sum(w, axis, keepdims=keepdims)
        avg = sum(a * w, axis, keepdims=keepdims) / total
    return (avg, total) if returned else avg


def nansum(a, axis=None, dtype=None, out=None, keepdims=False) -> Tensor:
    a = to_tensor(a)
    return sum(_el.where(isnan(a), 0, a), axis, dtype, out, keepdims)


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False) -> Tensor:
    a = to_tensor(a)
    count = sum(logical_not(isnan(a)), axis, keepdims=keepdims)
    return nansum(a, axis, dtype, out, keepdims) / count


def cumsum(a, axis=None, dtype=None, out=None) -> Tensor:
    _refuse("cumsum", out=out)
    return _red.cumsum(a, axis, dtype)


def cumprod(a, axis=None, dtype=None, out=None) -> Tensor:
    _refuse("cumprod", out=out)
    a = to_tensor(a)
    if axis is None:
        a, axis = _sh.reshape(a, (-1,)), 0
    return _api.cumulative_prod(a, axis=axis, dtype=dtype)


cumulative_sum, cumulative_prod = _api.cumulative_sum, _api.cumulative_prod


# ----------------------------------------------------------------------------- linear algebra


def _product(op, fn):
    def product(a, b, *, precision=None, preferred_element_type=None) -> Tensor:
        # precision picks TPU/GPU matmul passes in JAX; NumPy always computes in full
        out = fn(a, b)
        return out if preferred_element_type is None else _el.astype(out, preferred_element_type)

    product.__name__ = product.__qualname__ = op
    return product


dot = _product("dot", _la.dot)
matmul = _product("matmul", _la.matmul)


def vdot(a, b) -> Tensor:
    return sum(ravel(conj(to_tensor(a))) * ravel(b))


def inner(a, b) -> Tensor:
    return _la.tensordot(a, b, axes=([-1], [-1]))


def tensordot(a, b, axes=2, *, precision=None, preferred_element_type=None) -> Tensor:
    return _product("tensordot", lambda x, y: _la.tensordot(x, y, axes))(
        a, b, precision=precision, preferred_element_type=preferred_element_type
    )


def einsum(
    subscripts, *operands, out=None, optimize=None, precision=None, preferred_element_type=None
):
    """``jnp.einsum("ij,jk->ik", a, b)``; ``optimize`` (the contraction order) is fluxion's own."""
    _refuse("einsum", out=out)
    result = _la.einsum(subscripts, *operands)
    return result if preferred_element_type is None else _el.astype(result, preferred_element_type)


def diagonal(a, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    return linalg.diagonal(_sh.moveaxis(a, (axis1, axis2), (-2, -1)), offset=offset)


def trace(a, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype=None, out=None) -> Tensor:
    return sum(diagonal(a, offset, axis1, axis2), -1, dtype, out)


# ----------------------------------------------------------------------------- shapes


def reshape(a, shape=None, order="C", *, newshape=None, copy=None) -> Tensor:
    if order != "C":
        _refuse("reshape", order=order)
    return _sh.reshape(a, shape if newshape is None else newshape)


def ravel(a, order="C") -> Tensor:
    return reshape(a, (-1,), order)


def transpose(a, axes=None) -> Tensor:
    return _sh.transpose(a, axes)


def squeeze(a, axis=None) -> Tensor:
    return _sh.squeeze(a, axis)


def expand_dims(a, axis) -> Tensor:
    return _sh.expand_dims(a, axis)


def concatenate(arrays, axis: int | None = 0, dtype=None) -> Tensor:
    """Join along ``axis`` (``None``: the flattened arrays)."""
    arrays = [ravel(x) if axis is None else to_tensor(x) for x in arrays]
    out = _sh.concatenate(arrays, 0 if axis is None else axis)
    return out if dtype is None else _el.astype(out, dtype)


concat = concatenate


def stack(arrays, axis: int = 0, out=None, dtype=None) -> Tensor:
    _refuse("stack", out=out)
    joined = _sh.stack([to_tensor(x) for x in arrays], axis)
    return joined if dtype is None else _el.astype(joined, dtype)


def atleast_1d(*arys):
    out = [reshape(x, (1,)) if to_tensor(x).ndim == 0 else to_tensor(x) for x in arys]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys):
    out = [to_tensor(x) for x in arys]
    out = [reshape(x, (1,) * (2 - x.ndim) + x.shape) if x.ndim < 2 else x for x in out]
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys):
    out = []
    for x in map(to_tensor, arys):  # NumPy: (N,) -> (1, N, 1), (M, N) -> (M, N, 1)
        shape = {0: (1, 1, 1), 1: (1,) + x.shape + (1,), 2: x.shape + (1,)}.get(x.ndim, x.shape)
        out.append(reshape(x, shape))
    return out[0] if len(out) == 1 else out


def hstack(tup, dtype=None) -> Tensor:
    arrays = [atleast_1d(x) for x in tup]
    return concatenate(arrays, 0 if arrays[0].ndim == 1 else 1, dtype)


def vstack(tup, dtype=None) -> Tensor:
    return concatenate([atleast_2d(x) for x in tup], 0, dtype)


def dstack(tup, dtype=None) -> Tensor:
    return concatenate([atleast_3d(x) for x in tup], 2, dtype)


def column_stack(tup) -> Tensor:
    arrays = [to_tensor(x) for x in tup]
    return concatenate([reshape(x, (-1, 1)) if x.ndim < 2 else x for x in arrays], 1)


def append(arr, values, axis=None) -> Tensor:
    return concatenate([arr, values], axis)


def split(ary, indices_or_sections, axis: int = 0) -> list:
    """NumPy's split: an int is that many equal sections, a list the split points."""
    return _sh.split(ary, indices_or_sections, axis)


def repeat(a, repeats, axis=None, *, total_repeat_length=None) -> Tensor:
    out = _sh.repeat(a, repeats, axis)
    if (
        total_repeat_length is not None
        and out.shape[0 if axis is None else axis] != total_repeat_length
    ):
        raise InvalidArgumentError(
            f"jnp.repeat: the result has length {out.shape[0 if axis is None else axis]}, but "
            f"total_repeat_length={total_repeat_length}"
        )
    return out


def flip(m, axis=None) -> Tensor:
    return _sh.flip(m, axis)


def fliplr(m) -> Tensor:
    return flip(m, 1)


def flipud(m) -> Tensor:
    return flip(m, 0)


def roll(a, shift, axis=None) -> Tensor:
    return _api.roll(a, shift, axis=axis)


def pad(array, pad_width, mode="constant", *, constant_values=0) -> Tensor:
    """NumPy's pad: ``constant``, or the modes that repeat elements (``edge``, ``wrap``,
    ``reflect``, ``symmetric``), which gather from positions NumPy's pad computes."""
    if mode == "constant":
        return _sh.pad(array, pad_width, mode, constant_values)
    if mode not in ("edge", "wrap", "reflect", "symmetric"):
        raise InvalidArgumentError(
            f"jnp.pad: mode {mode!r} is not supported; use 'constant', 'edge', 'wrap', "
            "'reflect' or 'symmetric'"
        )
    out = to_tensor(array)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (out.ndim, 2))
    for axis, width in enumerate(widths):
        out = _ix.take(out, np.pad(np.arange(out.shape[axis]), width, mode=mode), axis=axis)
    return out


# ----------------------------------------------------------------------------- indexing, selection


def where(condition, x=None, y=None, /, *, size=None, fill_value=None):
    """``x`` where ``condition`` else ``y``; with the condition alone, its nonzero indices."""
    if x is None and y is None:
        return nonzero(condition, size=size, fill_value=fill_value)
    if x is None or y is None:
        raise InvalidArgumentError("jnp.where: give both x and y, or neither (for the indices)")
    _refuse("where", size=size, fill_value=fill_value)
    return _el.where(condition, x, y)


def nonzero(a, *, size=None, fill_value=None) -> tuple:
    """The indices of the nonzero elements (``a`` must be concrete: not under jit or vmap)."""
    _refuse("nonzero", size=size, fill_value=fill_value)
    return _ix.nonzero(a)


def argwhere(a, *, size=None, fill_value=None) -> Tensor:
    _refuse("argwhere", size=size, fill_value=fill_value)
    return _ix.argwhere(a)


def flatnonzero(a) -> Tensor:
    return nonzero(ravel(a))[0]


def _indices_by_mode(op, indices, n, mode):
    """JAX's out-of-range modes for take: ``clip`` or ``wrap``; the default raises."""
    indices = to_tensor(indices)
    if mode in (None, "raise", "promise_in_bounds"):
        return indices
    if mode == "clip":
        return _el.clip(indices, 0, n - 1)
    if mode == "wrap":
        return _el.remainder(indices, n)
    raise InvalidArgumentError(f"jnp.{op}: mode must be None, 'clip' or 'wrap', got {mode!r}")


def take(
    a,
    indices,
    axis=None,
    out=None,
    mode=None,
    unique_indices=False,
    indices_are_sorted=False,
    fill_value=None,
):
    """Elements of ``a`` at ``indices`` along ``axis`` (flattened when None)."""
    _refuse("take", out=out, fill_value=fill_value)
    a = to_tensor(a)
    n = a.size if axis is None else a.shape[axis]
    return _ix.take(a, _indices_by_mode("take", indices, n, mode), axis)


def take_along_axis(arr, indices, axis, mode=None, fill_value=None) -> Tensor:
    _refuse("take_along_axis", fill_value=fill_value)
    arr = to_tensor(arr)
    if axis is None:
        arr, axis = ravel(arr), 0
    return _ix.take_along_axis(
        arr, _indices_by_mode("take_along_axis", indices, arr.shape[axis], mode), axis
    )


def select(condlist, choicelist, default=0) -> Tensor:
    """The first choice whose condition holds, elementwise; ``default`` where none does."""
    if len(condlist) != len(choicelist):
        raise InvalidArgumentError(
            f"jnp.select: {len(condlist)} conditions for {len(choicelist)} choices; give one each"
        )
    out = default
    for cond, choice in zip(reversed(condlist), reversed(choicelist)):
        out = _el.where(cond, choice, out)
    return to_tensor(out)


def clip(arr, min=None, max=None, *, a_min=None, a_max=None) -> Tensor:
    """Clamp into [min, max] (``a_min``/``a_max``: the older names)."""
    return _el.clip(arr, a_min if min is None else min, a_max if max is None else max)


def round(a, decimals: int = 0, out=None) -> Tensor:
    _refuse("round", out=out)
    if decimals == 0:
        return _el.round(a)
    scale = 10.0**decimals
    return _el.round(to_tensor(a) * scale) / scale


around = rint = round


def sort(
    a, axis: int | None = -1, *, kind=None, order=None, stable=True, descending=False
) -> Tensor:
    _refuse("sort", order=order)
    if axis is None:
        a, axis = ravel(a), 0
    return _red.sort(a, axis, descending)


def argsort(
    a, axis: int | None = -1, *, kind=None, order=None, stable=True, descending=False
) -> Tensor:
    _refuse("argsort", order=order)
    if axis is None:
        a, axis = ravel(a), 0
    return _red.argsort(a, axis, descending)


def searchsorted(a, v, side="left", sorter=None, *, method=None) -> Tensor:
    return _api.searchsorted(a, v, side=side, sorter=sorter)


def unique(
    ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *, size=None
):
    """The sorted unique values (of the flattened array), with NumPy's optional extras."""
    _refuse("unique", axis=axis, size=size)
    if not (return_index or return_inverse or return_counts):
        return _api.unique_values(ar)
    values, index, inverse, counts = _api.unique_all(ar)
    extras = [
        x
        for x, wanted in ((index, return_index), (inverse, return_inverse), (counts, return_counts))
        if wanted
    ]
    return (values, *extras)


def bincount(x, weights=None, minlength: int = 0, *, length=None) -> Tensor:
    out = _ix.bincount(x, weights, minlength if length is None else length)
    return out if length is None else out[:length]


# ----------------------------------------------------------------------------- elementwise extras


def exp2(x) -> Tensor:
    return _el.power(2.0, x)


def cbrt(x) -> Tensor:
    x = to_tensor(x)
    return sign(x) * _el.power(abs(x), 1.0 / 3.0)


def deg2rad(x) -> Tensor:
    return to_tensor(x) * (math.pi / 180.0)


def rad2deg(x) -> Tensor:
    return to_tensor(x) * (180.0 / math.pi)


radians, degrees = deg2rad, rad2deg


def sinc(x) -> Tensor:
    x = to_tensor(x)
    safe = _el.where(x == 0, 1.0, x)  # the gradient at 0 stays finite
    return _el.where(x == 0, 1.0, sin(math.pi * safe) / (math.pi * safe))


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    a, b = to_tensor(a), to_tensor(b)
    close = abs(a - b) <= atol + rtol * abs(b)
    close = logical_or(close, a == b)  # equal infinities
    return logical_or(close, logical_and(isnan(a), isnan(b))) if equal_nan else close


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    return all(isclose(a, b, rtol, atol, equal_nan))


def array_equal(a1, a2, equal_nan=False) -> Tensor:
    a1, a2 = to_tensor(a1), to_tensor(a2)
    if a1.shape != a2.shape:
        return _creation.tensor(False)
    same = a1 == a2
    return all(logical_or(same, logical_and(isnan(a1), isnan(a2))) if equal_nan else same)


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None) -> Tensor:
    """NaN to ``nan``, infinities to ``posinf``/``neginf`` (default: the dtype's extremes)."""
    x = to_tensor(x)
    if not dtypes.is_float(x._np_dtype):
        return x
    big = (
        float(np.finfo(x._np_dtype).max)
        if x._np_dtype != dtypes.bfloat16_np
        else 3.3895313892515355e38
    )
    out = _el.where(isnan(x), nan, x)
    out = _el.where(out == math.inf, big if posinf is None else posinf, out)
    return _el.where(out == -math.inf, -big if neginf is None else neginf, out)


def heaviside(x1, x2) -> Tensor:
    x1, x2 = to_tensor(x1), to_tensor(x2)
    out = _el.where(x1 < 0, 0.0, _el.where(x1 > 0, 1.0, x2))
    return _el.astype(out, result_type(x1, x2))
