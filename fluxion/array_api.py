"""The array API standard's functions that NumPy-style fluxion lacked, as composites.

Each is written with fluxion's ops (no rules of its own): values flow through gathers,
concatenations and scans, so they differentiate, batch and compile where their shapes
are static. The data-dependent ones (``nonzero``, ``unique_*``, ``searchsorted``,
``count_nonzero``'s indices) compute their indices from concrete values, as NumPy does;
under ``jit`` or ``vmap`` they raise ``TracerError``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from fluxion.core import dtypes
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.ops import primitives as P
from fluxion.ops.amp import autocast_op
from fluxion.ops.elementwise import astype, conj, multiply, not_equal, stop_gradient
from fluxion.ops.indexing import take
from fluxion.ops.reduction import accumulator_dtype, sum
from fluxion.ops.shape import (
    broadcast_to,
    concatenate,
    expand_dims,
    moveaxis,
    ravel,
    reshape,
    swapaxes,
    transpose,
)
from fluxion.transforms.control import scan


def concat(arrays, /, *, axis=0) -> Tensor:
    """``concatenate``; ``axis=None`` joins the flattened arrays."""
    if axis is None:
        return concatenate([ravel(a) for a in arrays], axis=0)
    return concatenate(arrays, axis=axis)


def permute_dims(x, /, axes) -> Tensor:
    """Permute the axes of ``x`` (``transpose`` with the axes given)."""
    return transpose(x, tuple(axes))


def matrix_transpose(x, /) -> Tensor:
    """Swap the last two axes (a stack of matrices, each transposed)."""
    x = to_tensor(x)
    if x.ndim < 2:
        raise ShapeError(f"matrix_transpose: needs at least 2 dimensions, got shape {x.shape}")
    return swapaxes(x, -1, -2)


def unstack(x, /, *, axis=0) -> tuple[Tensor, ...]:
    """The slices of ``x`` along ``axis``, as a tuple (``stack``'s inverse)."""
    x = to_tensor(x)
    axis = P.check_axis("unstack", axis, x.ndim)
    moved = moveaxis(x, axis, 0)
    return tuple(moved[i] for i in range(moved.shape[0]))


@autocast_op
def vecdot(x1, x2, /, *, axis=-1) -> Tensor:
    """The dot product of vectors along ``axis`` (broadcasting the others); the first
    argument is conjugated, as the array API asks."""
    x1, x2 = to_tensor(x1), to_tensor(x2)
    ndim = max(x1.ndim, x2.ndim)
    if not -min(x1.ndim, x2.ndim) <= axis < 0 and not 0 <= axis < min(x1.ndim, x2.ndim):
        raise ShapeError(
            f"vecdot: axis {axis} is out of range for shapes {x1.shape} and {x2.shape}"
        )
    axis = axis if axis < 0 else axis - ndim
    if x1.shape[axis] != x2.shape[axis]:
        raise ShapeError(
            f"vecdot: the vectors have lengths {x1.shape[axis]} and {x2.shape[axis]} along "
            f"axis {axis} (shapes {x1.shape} and {x2.shape}); they must match"
        )
    products = multiply(conj(x1), x2)
    return sum(products, axis=axis, dtype=products._np_dtype)  # uint8 stays uint8


def roll(x, /, shift, *, axis=None) -> Tensor:
    """Shift elements along ``axis`` (of the flattened tensor when None), wrapping around."""
    x = to_tensor(x)
    if axis is None:
        return reshape(roll(ravel(x), shift, axis=0), x.shape)
    shifts = shift if isinstance(shift, tuple | list) else (shift,)
    axes = axis if isinstance(axis, tuple | list) else (axis,)
    if len(shifts) != len(axes):
        if len(shifts) == 1:
            shifts = shifts * len(axes)
        else:
            raise InvalidArgumentError(
                f"roll: {len(shifts)} shifts for {len(axes)} axes; give one per axis"
            )
    for s, a in zip(shifts, axes):
        a = P.check_axis("roll", a, x.ndim)
        n = x.shape[a]
        if n:
            x = take(x, Tensor._from_array((np.arange(n) - s) % n), axis=a)
    return x


def meshgrid(*arrays, indexing: str = "xy") -> list[Tensor]:
    """Coordinate grids of 1-d ``arrays`` (``indexing="xy"``: the first two axes swapped,
    as NumPy's)."""
    if indexing not in ("xy", "ij"):
        raise InvalidArgumentError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    arrays = [to_tensor(a) for a in arrays]
    for i, a in enumerate(arrays):
        if a.ndim != 1:
            raise ShapeError(f"meshgrid: array {i} has shape {a.shape}; each must be 1-d")
    if arrays:
        dtype = functools.reduce(dtypes.promote, [a._np_dtype for a in arrays])
        arrays = [astype(a, dtype) for a in arrays]
    n = len(arrays)
    shape = [a.shape[0] for a in arrays]
    if indexing == "xy" and n >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for i, a in enumerate(arrays):
        where = i if indexing == "ij" or n < 2 or i > 1 else 1 - i
        view = (1,) * where + (a.shape[0],) + (1,) * (n - where - 1)
        out.append(broadcast_to(reshape(a, view), tuple(shape)))
    return out


def _cumulative(op, step, identity, x, axis, dtype, include_initial):
    x = to_tensor(x)
    if axis is None:
        if x.ndim > 1:
            raise ShapeError(
                f"{op}: axis=None needs a tensor of at most one dimension, got shape {x.shape}; "
                "pass axis="
            )
        if x.ndim == 0:
            x = reshape(x, (1,))
        axis = 0
    axis = P.check_axis(op, axis, x.ndim)
    if dtype is not None:
        x = astype(x, dtype)
    else:
        x = astype(x, accumulator_dtype(x._np_dtype))
    moved = moveaxis(x, axis, 0)
    init = P.constant(np.full(moved.shape[1:], identity), x._np_dtype)

    def body(carry, xi):
        nxt = step(carry, xi)
        return nxt, nxt

    _, ys = scan(body, init, moved) if moved.shape[0] else (init, moved)
    if include_initial:
        ys = concatenate([expand_dims(init, 0), ys], axis=0)
    return moveaxis(ys, 0, axis)


def cumulative_sum(x, /, *, axis=None, dtype=None, include_initial: bool = False) -> Tensor:
    """Running sums along ``axis``; ``include_initial`` puts the empty sum (0) first."""
    return _cumulative("cumulative_sum", lambda c, v: c + v, 0, x, axis, dtype, include_initial)


def cumulative_prod(x, /, *, axis=None, dtype=None, include_initial: bool = False) -> Tensor:
    """Running products along ``axis``; ``include_initial`` puts the empty product (1) first."""
    return _cumulative("cumulative_prod", lambda c, v: c * v, 1, x, axis, dtype, include_initial)


def diff(x, /, *, axis=-1, n: int = 1, prepend=None, append=None) -> Tensor:
    """The ``n``-th forward difference along ``axis`` (``prepend``/``append`` joined first)."""
    x = to_tensor(x)
    axis = P.check_axis("diff", axis, x.ndim)
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        x = concatenate(parts, axis=axis)
    for _ in range(n):
        length = x.shape[axis]
        hi = x[(slice(None),) * axis + (slice(1, length),)]
        lo = x[(slice(None),) * axis + (slice(0, max(length - 1, 0)),)]
        x = not_equal(hi, lo) if x._np_dtype == dtypes.BOOL else hi - lo
    return x


# ----------------------------------------------------------------------------- data-dependent


def _values(op, x) -> np.ndarray:
    """The concrete values indices are computed from (constants to differentiation)."""
    return stop_gradient(x)._data(f"{op}()")


def count_nonzero(x, /, *, axis=None, keepdims: bool = False) -> Tensor:
    """How many elements are nonzero (true), over ``axis``; int64."""
    x = to_tensor(x)
    return sum(astype(astype(x, bool), dtypes.DEFAULT_INT), axis=axis, keepdims=keepdims)


def searchsorted(x1, x2, /, *, side: str = "left", sorter=None) -> Tensor:
    """Where the values of ``x2`` go in the sorted 1-d ``x1`` to keep it sorted; int64."""
    if side not in ("left", "right"):
        raise InvalidArgumentError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    a, v = _values("searchsorted", x1), _values("searchsorted", x2)
    order = None if sorter is None else _values("searchsorted", sorter)
    return Tensor._from_array(np.searchsorted(a, v, side=side, sorter=order).astype(np.int64))


class UniqueAllResult(NamedTuple):
    values: Tensor
    indices: Tensor
    inverse_indices: Tensor
    counts: Tensor


class UniqueCountsResult(NamedTuple):
    values: Tensor
    counts: Tensor


class UniqueInverseResult(NamedTuple):
    values: Tensor
    inverse_indices: Tensor


def _unique(op, x):
    """(values, first indices, inverse indices, counts); NaNs are each their own value."""
    x = to_tensor(x)
    flat = ravel(x)
    array = _values(op, flat)
    _, first, inverse, counts = np.unique(
        array, return_index=True, return_inverse=True, return_counts=True, equal_nan=False
    )
    values = take(flat, Tensor._from_array(first.astype(np.int64)))  # differentiable values
    return (
        values,
        Tensor._from_array(first.astype(np.int64)),
        Tensor._from_array(inverse.reshape(x.shape).astype(np.int64)),
        Tensor._from_array(counts.astype(np.int64)),
    )


def unique_all(x, /) -> UniqueAllResult:
    """The sorted distinct values, the index of each's first occurrence, where each element
    went, and how often each occurs."""
    return UniqueAllResult(*_unique("unique_all", x))


def unique_counts(x, /) -> UniqueCountsResult:
    values, _, _, counts = _unique("unique_counts", x)
    return UniqueCountsResult(values, counts)


def unique_inverse(x, /) -> UniqueInverseResult:
    values, _, inverse, _ = _unique("unique_inverse", x)
    return UniqueInverseResult(values, inverse)


def unique_values(x, /) -> Tensor:
    return _unique("unique_values", x)[0]


def broadcast_shapes(*shapes) -> tuple:
    """The shape ``shapes`` broadcast to (NumPy's rule); a ShapeError otherwise."""
    return P.broadcast_shapes("broadcast_shapes", *[tuple(s) for s in shapes]) if shapes else ()


def isin(x1, x2, /, *, invert: bool = False) -> Tensor:
    """Whether each element of ``x1`` is among ``x2``'s (bool)."""
    a, b = _values("isin", x1), _values("isin", x2)
    return Tensor._from_array(np.isin(a, b, invert=invert))
