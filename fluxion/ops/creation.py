"""Creating tensors: from data, constants, ranges, and triangular masks."""

from __future__ import annotations

import numpy as np

from fluxion.core import dtypes
from fluxion.core.tensor import Tensor, _to_array, to_tensor
from fluxion.errors import InvalidArgumentError
from fluxion.ops.elementwise import where
from fluxion.ops.shape import _shape_arg


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (Python numbers, nested lists, arrays).

    Python floats become float32, ints int64, bools bool; NumPy arrays keep their dtype.

    >>> fx.tensor([[1, 2], [3, 4]]).dtype
    int64
    """
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def asarray(data, dtype=None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array (or tensor) when it can."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == dtype):
        return data
    return Tensor._from_array(_to_array(data, dtype, copy=False))


def from_numpy(array: np.ndarray) -> Tensor:
    return asarray(array)


def from_dlpack(obj) -> Tensor:
    """Zero-copy import of a DLPack producer (NumPy arrays, CPU PyTorch tensors)."""
    return Tensor.from_dlpack(obj)


def _filled(shape, value, dtype) -> Tensor:
    return Tensor._from_array(np.full(_shape_arg(shape), value, dtypes.to_np(dtype)))


def zeros(*shape, dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """Zeros of ``shape`` (``zeros(2, 3)`` and ``zeros((2, 3))`` both work)."""
    return _filled(shape, 0, dtype)


def ones(*shape, dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """Ones of ``shape``."""
    return _filled(shape, 1, dtype)


def full(shape, fill_value, dtype=None) -> Tensor:
    """``shape`` filled with ``fill_value`` (dtype inferred from the value if not given)."""
    return _filled(
        shape, fill_value, dtype if dtype is not None else dtypes.scalar_default_dtype(fill_value)
    )


def zeros_like(x, dtype=None) -> Tensor:
    x = to_tensor(x)
    return _filled(x.shape, 0, dtype or x._np_dtype)


def ones_like(x, dtype=None) -> Tensor:
    x = to_tensor(x)
    return _filled(x.shape, 1, dtype or x._np_dtype)


def full_like(x, fill_value, dtype=None) -> Tensor:
    x = to_tensor(x)
    return _filled(x.shape, fill_value, dtype or x._np_dtype)


def empty(*shape, dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """Like ``zeros`` (NumPy's uninitialised memory is never exposed)."""
    return zeros(*shape, dtype=dtype)


def arange(start, stop=None, step=1, dtype=None) -> Tensor:
    """``start, start + step, ...`` below ``stop``; int64 for ints, float32 for floats."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise InvalidArgumentError("arange: step must not be zero")
    if dtype is None:
        dtype = (
            dtypes.DEFAULT_INT
            if all(isinstance(v, int) for v in (start, stop, step))
            else dtypes.DEFAULT_FLOAT
        )
    return Tensor._from_array(np.arange(start, stop, step, dtype=dtypes.to_np(dtype)))


def linspace(
    start, stop, num: int = 50, endpoint: bool = True, dtype=dtypes.DEFAULT_FLOAT
) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop``."""
    return Tensor._from_array(
        np.linspace(start, stop, num, endpoint=endpoint).astype(dtypes.to_np(dtype))
    )


def eye(n: int, m: int | None = None, k: int = 0, dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """Identity-like matrix: ones on diagonal ``k``."""
    return Tensor._from_array(np.eye(n, m, k, dtype=dtypes.to_np(dtype)))


def tril(x, k: int = 0) -> Tensor:
    """Zero out the elements above diagonal ``k`` of the last two axes."""
    x = to_tensor(x)
    mask = np.tri(x.shape[-2], x.shape[-1], k, dtype=bool)
    return where(Tensor._from_array(mask), x, 0)


def triu(x, k: int = 0) -> Tensor:
    """Zero out the elements below diagonal ``k`` of the last two axes."""
    x = to_tensor(x)
    mask = ~np.tri(x.shape[-2], x.shape[-1], k - 1, dtype=bool)
    return where(Tensor._from_array(mask), x, 0)
