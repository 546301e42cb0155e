"""Creating tensors: from data, constants, ranges, and triangular masks."""

from __future__ import annotations

import math

import numpy as np

from fluxion.core import dtypes
from fluxion.core.checks import (
    check_allocation,
    check_dtype,
    check_int,
    check_number,
    check_shape,
    check_size,
)
from fluxion.core.tensor import Tensor, _to_array, to_tensor
from fluxion.errors import DTypeError, InvalidArgumentError, ShapeError
from fluxion.ops.elementwise import where
from fluxion.ops.inspection import check_device
from fluxion.ops.shape import _star_shape


def tensor(data, dtype=None, requires_grad: bool = False, *, device=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (Python numbers, nested lists, arrays).

    Python floats become float32, ints int64, bools bool; NumPy arrays keep their dtype.

    >>> fx.tensor([[1, 2], [3, 4]]).dtype
    int64
    """
    check_device("tensor", device)
    if dtype is not None:
        dtype = check_dtype("tensor", "dtype", dtype)
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def asarray(data, dtype=None, *, device=None, copy=None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array (or tensor) when it can.

    ``copy`` is the array API's: True always copies, False never does (a ValueError where
    it would have to: another dtype, Python data), None copies only when it must."""
    check_device("asarray", device)
    if dtype is not None:
        dtype = check_dtype("asarray", "dtype", dtype)
    if copy:
        return Tensor._from_array(_to_array(data, dtype, copy=True))
    shares = isinstance(data, Tensor | np.ndarray) and (dtype is None or data.dtype == dtype)
    if copy is False and not shares:
        raise InvalidArgumentError(
            f"asarray: copy=False, but a {type(data).__name__} of dtype "
            f"{getattr(data, 'dtype', None)} cannot become a tensor of dtype {dtype} without a "
            "copy; pass copy=None (copy when needed)"
        )
    if isinstance(data, Tensor) and (dtype is None or data.dtype == dtype):
        return data
    return Tensor._from_array(_to_array(data, dtype, copy=False))


def from_numpy(array: np.ndarray) -> Tensor:
    return asarray(array)


def from_dlpack(obj, *, device=None, copy=None) -> Tensor:
    """Zero-copy import of a DLPack producer (NumPy arrays, CPU PyTorch tensors)."""
    check_device("from_dlpack", device)
    out = Tensor.from_dlpack(obj)
    return Tensor._from_array(out._value.copy()) if copy else out


def _filled(op, shape, value, dtype, device=None) -> Tensor:
    # dtype=None means the default, as in PyTorch (np.dtype(None) would be float64)
    check_device(op, device)
    np_dtype = check_dtype(op, "dtype", dtype, default=dtypes.DEFAULT_FLOAT)
    return Tensor._from_array(np.full(check_shape(op, "shape", shape, np_dtype), value, np_dtype))


def zeros(shape=(), *more, dtype=dtypes.DEFAULT_FLOAT, device=None) -> Tensor:
    """Zeros of ``shape`` (``zeros(2, 3)`` and ``zeros((2, 3))`` both work)."""
    return _filled("zeros", _star_shape((shape, *more)), 0, dtype, device)


def ones(shape=(), *more, dtype=dtypes.DEFAULT_FLOAT, device=None) -> Tensor:
    """Ones of ``shape``."""
    return _filled("ones", _star_shape((shape, *more)), 1, dtype, device)


def full(shape, fill_value, dtype=None, *, device=None) -> Tensor:
    """``shape`` filled with ``fill_value`` (dtype inferred from the value if not given)."""
    check_device("full", device)
    if isinstance(fill_value, Tensor | np.ndarray | np.generic):
        # a NumPy scalar or 0-d tensor keeps its dtype, as fx.tensor(value) would
        fill_value = _to_array(fill_value, None, copy=False)
        dtype = fill_value.dtype if dtype is None else dtype
    elif dtype is None:
        if not isinstance(fill_value, bool | int | float | complex):
            raise DTypeError(
                f"full: fill_value must be a number (or a 0-d tensor), got {fill_value!r}"
            )
        dtype = dtypes.scalar_default_dtype(fill_value)
    return _filled("full", shape, fill_value, dtype, device)


def zeros_like(x, dtype=None, *, device=None) -> Tensor:
    x = to_tensor(x)
    return _filled("zeros_like", x.shape, 0, x._np_dtype if dtype is None else dtype, device)


def ones_like(x, dtype=None, *, device=None) -> Tensor:
    x = to_tensor(x)
    return _filled("ones_like", x.shape, 1, x._np_dtype if dtype is None else dtype, device)


def full_like(x, fill_value, dtype=None, *, device=None) -> Tensor:
    x = to_tensor(x)
    dtype = x._np_dtype if dtype is None else dtype
    return _filled("full_like", x.shape, fill_value, dtype, device)


def empty_like(x, dtype=None, *, device=None) -> Tensor:
    """Like ``zeros_like`` (NumPy's uninitialised memory is never exposed)."""
    return zeros_like(x, dtype, device=device)


def empty(shape=(), *more, dtype=dtypes.DEFAULT_FLOAT, device=None) -> Tensor:
    """Like ``zeros`` (NumPy's uninitialised memory is never exposed)."""
    return _filled("empty", _star_shape((shape, *more)), 0, dtype, device)


def arange(start, stop=None, step=1, dtype=None, *, device=None) -> Tensor:
    """``start, start + step, ...`` below ``stop``; int64 for ints, float32 for floats."""
    check_device("arange", device)
    for name, v in (("start", start), ("stop", stop), ("step", step)):
        if v is not None or name != "stop":
            check_number("arange", name, v)
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise InvalidArgumentError("arange: step must not be zero")
    if dtype is None:
        whole = all(isinstance(v, int | np.integer) for v in (start, stop, step))
        dtype = dtypes.DEFAULT_INT if whole else dtypes.DEFAULT_FLOAT
    np_dtype = check_dtype("arange", "dtype", dtype)
    check_allocation("arange", (max(math.ceil((stop - start) / step), 0),), np.float64)
    # NumPy steps in the target dtype when given one (float32 accumulates error); count and
    # compute in float64/int64 as PyTorch does, then cast
    values = np.arange(start, stop, step)
    return Tensor._from_array(values.astype(np_dtype))


def linspace(
    start, stop, num: int = 50, endpoint: bool = True, dtype=None, *, device=None
) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop`` (complex ones give the
    default complex dtype)."""
    check_device("linspace", device)
    if isinstance(start, complex) or isinstance(stop, complex):
        default = dtypes.DEFAULT_COMPLEX
    else:
        start = check_number("linspace", "start", start)
        stop = check_number("linspace", "stop", stop)
        default = dtypes.DEFAULT_FLOAT
    np_dtype = check_dtype("linspace", "dtype", dtype, default=default)
    num = check_size("linspace", "num", num)
    check_allocation("linspace", (num,), np.float64)  # computed in float64, then cast
    return Tensor._from_array(np.linspace(start, stop, num, endpoint=endpoint).astype(np_dtype))


def eye(
    n: int, m: int | None = None, k: int = 0, dtype=dtypes.DEFAULT_FLOAT, *, device=None
) -> Tensor:
    """Identity-like matrix: ones on diagonal ``k``."""
    check_device("eye", device)
    n = check_size("eye", "n", n)
    m = n if m is None else check_size("eye", "m", m)
    k = check_int("eye", "k", k)
    np_dtype = check_dtype("eye", "dtype", dtype, default=dtypes.DEFAULT_FLOAT)
    check_allocation("eye", (n, m), np_dtype)
    return Tensor._from_array(np.eye(n, m, k, dtype=np_dtype))


def _triangle(op, x, mask_of) -> Tensor:
    x = to_tensor(x)
    if x.ndim < 2:
        raise ShapeError(
            f"{op}: needs a tensor of at least 2 dimensions (a matrix or a batch of them), "
            f"got shape {x.shape}; for a mask of size n use fx.{op}(fx.ones((n, n)))"
        )
    mask = Tensor._from_array(mask_of(x.shape[-2], x.shape[-1]))
    # the zero has x's dtype: a Python 0 would promote a bool tensor to int64
    return where(mask, x, Tensor._from_array(np.zeros((), x._np_dtype)))


def _diagonal(op, k, diagonal) -> int:
    """NumPy's ``k`` or PyTorch's ``diagonal``: the same offset."""
    if diagonal is None:
        return check_int(op, "k", k)
    if k != 0:
        raise InvalidArgumentError(f"{op}: give k= or diagonal=, not both (got {k}, {diagonal})")
    return check_int(op, "diagonal", diagonal)


def tril(x, k: int = 0, *, diagonal=None) -> Tensor:
    """Zero out the elements above diagonal ``k`` (PyTorch: ``diagonal``) of the last two axes."""
    k = _diagonal("tril", k, diagonal)
    return _triangle("tril", x, lambda n, m: np.tri(n, m, k, dtype=bool))


def triu(x, k: int = 0, *, diagonal=None) -> Tensor:
    """Zero out the elements below diagonal ``k`` (PyTorch: ``diagonal``) of the last two axes."""
    k = _diagonal("triu", k, diagonal)
    return _triangle("triu", x, lambda n, m: ~np.tri(n, m, k - 1, dtype=bool))
