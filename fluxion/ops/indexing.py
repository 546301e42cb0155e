"""Indexing: ``x[...]`` with NumPy semantics, take/gather, scatter-add, ``.at[]`` updates.

Everything lowers to four primitives: slice (ints and slices), rev (negative
steps), reshape (None, dropped int axes) and gather (integer arrays; boolean masks
become integer arrays, which needs a concrete mask).
"""

from __future__ import annotations

import numpy as np

from fluxion.core import dtypes
from fluxion.core.checks import check_allocation, check_dtype, check_size
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.errors import (
    DTypeError,
    IndexOutOfRangeError,
    InvalidArgumentError,
    ShapeError,
    TracerError,
)
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import astype, equal, maximum, minimum, multiply, where
from fluxion.ops.shape import broadcast_to, expand_dims, reshape, transpose


def _concrete_index(op, value) -> np.ndarray:
    if isinstance(value, Tensor):
        if value._trace is not None:
            raise TracerError(
                f"{op}: this index needs concrete values (a boolean mask, or .at[] with a traced "
                "index); use fx.where(mask, x, y) or take/take_along_axis with integer tensors"
            )
        return value._value
    return np.asarray(value)


def _is_array_index(item) -> bool:
    return isinstance(item, Tensor | np.ndarray | list)


def _normalize_index(x, index) -> tuple[list, bool]:
    """Expand Ellipsis, turn boolean masks into integer arrays; items: None/int/slice/Tensor."""
    items = list(index) if isinstance(index, tuple) else [index]
    # masks: id of the first index array a boolean mask became -> the mask's shape
    expanded, masks, separated = [], {}, False
    for item in items:
        if _is_array_index(item):
            array = item if isinstance(item, Tensor) else np.asarray(item)
            if isinstance(item, list) and array.size == 0:
                array = array.astype(np.int64)  # NumPy reads [] as an empty integer index
            array = to_tensor(array)
            if array._np_dtype == dtypes.BOOL:
                if array.ndim == 0:
                    raise InvalidArgumentError(  # _zero_d_masks takes them out before
                        "getitem: a 0-d boolean index only works with ints, slices, None "
                        "and integer or boolean arrays after it (no Ellipsis before it)"
                    )
                parts = [to_tensor(i) for i in np.nonzero(_concrete_index("getitem", array))]
                masks[id(parts[0])] = array.shape
                expanded.extend(parts)
                continue
            if array._np_dtype not in dtypes.INTEGERS:
                raise InvalidArgumentError(
                    f"getitem: index arrays must be integers or booleans, got {array.dtype}"
                )
            expanded.append(array)
        elif (
            isinstance(item, Tensor | np.integer)
            or isinstance(item, int)
            and not isinstance(item, bool)
        ):
            expanded.append(int(item))
        elif item is None or item is Ellipsis or isinstance(item, slice):
            expanded.append(item)
        else:
            raise InvalidArgumentError(
                f"getitem: unsupported index {item!r}; use ints, slices, None, Ellipsis, "
                "integer tensors or boolean masks"
            )
    consumed = sum(1 for i in expanded if i is not None and i is not Ellipsis)
    ellipses = [k for k, i in enumerate(expanded) if i is Ellipsis]
    if len(ellipses) > 1:
        raise InvalidArgumentError("getitem: an index can only have a single ellipsis ('...')")
    if consumed > x.ndim:
        raise IndexOutOfRangeError(
            f"getitem: too many indices ({consumed}) for a tensor of shape {x.shape}"
        )
    if ellipses:
        at = ellipses[0]
        # an Ellipsis of no axes still separates advanced indices, as in NumPy: their
        # result axes then go first, as if a slice stood between them
        advanced = [i is not None and not isinstance(i, slice) for i in expanded]
        separated = consumed == x.ndim and any(advanced[:at]) and any(advanced[at + 1 :])
        expanded[at : at + 1] = [slice(None)] * (x.ndim - consumed)
    else:
        expanded += [slice(None)] * (x.ndim - consumed)
    axis = 0
    for item in expanded:
        shape = masks.get(id(item)) if isinstance(item, Tensor) else None
        if shape is not None and shape != x.shape[axis : axis + len(shape)]:
            raise IndexOutOfRangeError(
                f"getitem: boolean index of shape {shape} does not match axes {axis} to "
                f"{axis + len(shape) - 1} of the tensor of shape {x.shape}; a mask must have "
                "the shape of the axes it selects from"
            )
        axis += item is not None
    return expanded, separated


def _zero_d_masks(x, index):
    """NumPy's ``x[True]`` / ``x[False]``: a new axis of length 1 or 0 where the 0-d mask
    stands; returns ``x`` with that axis and the index slicing it instead."""
    items = list(index) if isinstance(index, tuple) else [index]
    for k, item in enumerate(items):
        zero_d = isinstance(item, bool) or (
            isinstance(item, np.ndarray | Tensor) and item.ndim == 0 and item.dtype == bool
        )
        if zero_d and not any(i is Ellipsis for i in items[:k]):
            axis = sum(i is not None for i in items[:k])
            keep = bool(_concrete_index("getitem", to_tensor(item)))
            items[k] = slice(0, int(keep))
            return _zero_d_masks(expand_dims(x, axis), tuple(items))
    return x, index


def getitem(x, index) -> Tensor:
    """``x[index]`` with NumPy's basic and advanced indexing."""
    x = to_tensor(x)
    x, index = _zero_d_masks(x, index)
    basic = _ints_and_forward_slices(x, index)
    if basic is not None:
        return basic
    items, separated = _normalize_index(x, index)
    has_arrays = any(isinstance(i, Tensor) for i in items)
    # 1. slices and ints become one slice; None becomes a size-1 axis (sliced whole)
    starts, stops, steps, flips, shape_with_new, axis = [], [], [], [], [], 0
    for item in items:
        if item is None:
            shape_with_new.append(None)
            continue
        n = x.shape[axis]
        if isinstance(item, int):
            if not -n <= item < n:
                raise IndexOutOfRangeError(
                    f"getitem: index {item} is out of range for axis {axis} of size {n}"
                )
            item %= n
            starts.append(item), stops.append(item + 1), steps.append(1)
        elif isinstance(item, slice):
            b, e, s = item.indices(n)
            if s < 0:  # a reversed slice is the forward slice of the same elements, flipped
                count = P._slice_len(e, b, -s) if b > e else 0
                b, e, s = (b - (count - 1) * -s, b + 1, -s) if count else (0, 0, 1)
                flips.append(len(starts))
            starts.append(b), stops.append(max(b, e)), steps.append(s)
        else:
            starts.append(0), stops.append(n), steps.append(1)
        shape_with_new.append(axis)
        axis += 1
    y = x
    if (tuple(starts), tuple(stops), tuple(steps)) != ((0,) * x.ndim, x.shape, (1,) * x.ndim):
        y = bind(P.slice_p, x, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))
    if flips:
        y = bind(P.rev_p, y, axes=tuple(flips))
    # 2. None axes are inserted now, so they count as basic dims for advanced indexing
    y = reshape(y, tuple(1 if a is None else y.shape[a] for a in shape_with_new))
    full = [slice(None) if i is None else i for i in items]
    if not has_arrays:
        keep = tuple(d for d, i in zip(y.shape, full) if not isinstance(i, int))
        return reshape(y, keep)
    adv = [(a, i) for a, i in enumerate(full) if not isinstance(i, slice)]
    return _advanced(y, adv, separated)


def _ints_and_forward_slices(x, index):
    """The common case (``x[1:5]``, ``x[:, 0]``) as one slice and one reshape; None when
    the index needs the general path (which also gives the errors)."""
    items = index if type(index) is tuple else (index,)
    shape = x.shape
    if len(items) > len(shape):
        return None
    starts, stops, steps, kept = [], [], [], []
    for axis, item in enumerate(items):
        n = shape[axis]
        if type(item) is slice:
            b, e, step = item.indices(n)
            if step < 0:
                return None
            starts.append(b), stops.append(e if e > b else b), steps.append(step)
            kept.append(axis)
        elif type(item) is int and -n <= item < n:
            item %= n
            starts.append(item), stops.append(item + 1), steps.append(1)
        else:
            return None
    rest = len(shape) - len(items)
    starts, stops = (*starts, *(0,) * rest), (*stops, *shape[len(items) :])
    steps = (*steps, *(1,) * rest)
    y = x
    if stops != shape or any(starts) or any(s != 1 for s in steps):
        y = bind(P.slice_p, x, starts=starts, stops=stops, steps=steps)
    if len(kept) < len(items):  # ints drop their axis
        y = bind(P.reshape_p, y, shape=tuple(y.shape[a] for a in kept) + y.shape[len(items) :])
    return y


def _advanced(y, adv, separated: bool = False) -> Tensor:
    """Integer-array indexing of ``y`` at positions ``adv`` [(axis, int or int tensor)]."""
    axes = [a for a, _ in adv]
    arrays = []
    for a, item in adv:
        # ints were sliced to size 1 above; as index 0 they broadcast like NumPy's scalars
        idx = (
            P.constant(0, dtypes.DEFAULT_INT)
            if isinstance(item, int)
            else astype(item, dtypes.DEFAULT_INT)
        )
        arrays.append(_checked("getitem", idx, y.shape[a], a))
    shape = P.broadcast_shapes(
        "getitem", *[i.shape for i in arrays], names=[f"index {a}" for a in axes]
    )
    adjacent = not separated and axes == list(range(axes[0], axes[0] + len(axes)))
    rest = [a for a in range(y.ndim) if a not in axes]
    at = axes[0] if adjacent else 0
    moved = transpose(y, rest[:at] + axes + rest[at:])
    dims = [y.shape[a] for a in axes]
    merged = reshape(
        moved, moved.shape[:at] + (int(np.prod(dims)),) + moved.shape[at + len(axes) :]
    )
    linear = P.constant(0, dtypes.DEFAULT_INT)
    for idx, n in zip(arrays, dims):
        linear = linear * n + broadcast_to(idx, shape)
    return bind(P.gather_p, merged, broadcast_to(linear, shape), axis=at)


def _checked(op: str, idx: Tensor, n: int, axis: int) -> Tensor:
    """Wrap negative indices; check the range when the values are known."""
    if idx._trace is None and idx.size:
        lo, hi = int(idx._value.min()), int(idx._value.max())
        if lo < -n or hi >= n:
            bad = lo if lo < -n else hi
            raise IndexOutOfRangeError(
                f"{op}: index {bad} is out of range for axis {axis} of size {n}; indices must "
                f"lie in [{-n}, {n})"
            )
    return where(idx < 0, idx + n, idx)


def take(x, indices, axis=None) -> Tensor:
    """Elements of ``x`` at ``indices`` along ``axis`` (the flattened tensor when None)."""
    x, indices = to_tensor(x), to_tensor(indices)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    axis = P.check_axis("take", axis, x.ndim)
    if indices._np_dtype not in dtypes.INTEGERS:
        raise InvalidArgumentError(f"take: indices must be integers, got {indices.dtype}")
    return bind(P.gather_p, x, _checked("take", indices, x.shape[axis], axis), axis=axis)


def _along_axis_linear(x, indices, axis, op, torch_rule=False):
    """Flat positions in ``x`` of ``indices`` taken along ``axis``: NumPy's take_along_axis
    (the other dims broadcast), or with ``torch_rule`` PyTorch's gather (an index no larger
    than ``x`` in the other dims reads those positions only)."""
    if indices.ndim != x.ndim:
        raise ShapeError(
            f"{op}: indices of shape {indices.shape} need as many dimensions as x {x.shape}"
        )
    if indices._np_dtype not in dtypes.INTEGERS:
        raise InvalidArgumentError(f"{op}: indices must be integers, got {indices.dtype}")
    if torch_rule:
        for k, (d, i) in enumerate(zip(x.shape, indices.shape)):
            if k != axis and i > d and indices.size:  # an empty index reads nothing (torch)
                raise ShapeError(
                    f"{op}: index of shape {indices.shape} is larger than input of shape "
                    f"{x.shape} in dim {k} ({i} > {d}); outside dim={axis} it may only be smaller"
                )
        shape = tuple(indices.shape)
    else:
        shape = tuple(
            i
            if k == axis
            else P.broadcast_shapes(op, (d,), (i,), names=(f"x dim {k}", f"indices dim {k}"))[0]
            for k, (d, i) in enumerate(zip(x.shape, indices.shape))
        )
    idx = broadcast_to(_checked(op, indices, x.shape[axis], axis), shape)
    strides = np.cumprod((x.shape[1:] + (1,))[::-1])[::-1]
    linear = P.constant(0, dtypes.DEFAULT_INT)
    for k, stride in enumerate(strides):
        coord = (
            idx
            if k == axis
            else P.constant(
                np.arange(shape[k]).reshape([-1 if j == k else 1 for j in range(len(shape))]),
                dtypes.DEFAULT_INT,
            )
        )
        linear = linear + coord * int(stride)
    return broadcast_to(linear, shape)


def take_along_axis(x, indices, axis: int = -1) -> Tensor:
    """NumPy's take_along_axis: ``out[..., i, ...] = x[..., indices[..., i, ...], ...]``."""
    x, indices = to_tensor(x), to_tensor(indices)
    axis = P.check_axis("take_along_axis", axis, x.ndim)
    linear = _along_axis_linear(x, indices, axis, "take_along_axis")
    return bind(P.gather_p, reshape(x, (-1,)), linear, axis=0)


def gather(x, dim: int, index) -> Tensor:
    """PyTorch's gather(input, dim, index): ``out[i][j] = x[index[i][j]][j]`` (dim 0), the
    output of ``index``'s shape, which may be smaller than ``x`` outside ``dim`` (only
    those positions are read; NumPy's take_along_axis would broadcast instead)."""
    x, index = to_tensor(x), to_tensor(index)
    dim = P.check_axis("gather", dim, x.ndim, "dim")
    linear = _along_axis_linear(x, index, dim, "gather", torch_rule=True)
    return bind(P.gather_p, reshape(x, (-1,)), linear, axis=0)


def scatter_add(x, dim: int, index, src) -> Tensor:
    """PyTorch's scatter_add: ``out[index[i][j]][j] += src[i][j]`` (dim 0), out of place,
    over the positions of ``index`` only (``src`` at least as large, as in PyTorch)."""
    x, index, src = to_tensor(x), to_tensor(index), to_tensor(src)
    dim = P.check_axis("scatter_add", dim, x.ndim, "dim")
    linear = _along_axis_linear(x, index, dim, "scatter_add", torch_rule=True)
    if src.ndim != index.ndim or any(s < n for s, n in zip(src.shape, index.shape)):
        raise ShapeError(
            f"scatter_add: src of shape {src.shape} is smaller than index of shape "
            f"{index.shape}; it needs a value for each index (as many dims, each at least as large)"
        )
    src = astype(src[tuple(slice(0, n) for n in index.shape)], x._np_dtype)
    flat = bind(
        P.scatter_add_p, reshape(x, (-1,)), reshape(linear, (-1,)), reshape(src, (-1,)), axis=0
    )
    return reshape(flat, x.shape)


def one_hot(indices, num_classes: int, dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """``indices[..., None] == arange(num_classes)`` as ``dtype``.

    >>> fx.one_hot(fx.tensor([0, 2]), 3)
    [[1. 0. 0.]
     [0. 0. 1.]]:f32[2,3]:cpu(0)
    """
    indices = to_tensor(indices)
    if indices._np_dtype not in dtypes.INTEGERS:
        raise DTypeError(
            f"one_hot: indices must be integers, got {indices.dtype}; cast with .astype(fx.int64)"
        )
    num_classes = check_size("one_hot", "num_classes", num_classes)
    np_dtype = check_dtype("one_hot", "dtype", dtype)
    shape = indices.shape + (num_classes,)
    check_allocation("one_hot", shape, np_dtype, f"num_classes={num_classes}")
    if indices._trace is None and indices.size:
        lo, hi = int(indices._value.min()), int(indices._value.max())
        if lo < 0 or hi >= num_classes:
            raise IndexOutOfRangeError(
                f"one_hot: index {lo if lo < 0 else hi} is out of range for num_classes="
                f"{num_classes}; indices must lie in [0, {num_classes})"
            )
    return astype(
        equal(indices[..., None], P.constant(np.arange(num_classes), indices._np_dtype)), np_dtype
    )


_COMBINE = {  # how .at[] writes a new value over the old one
    "set": lambda old, new: new,
    "multiply": multiply,
    "min": minimum,
    "max": maximum,
}


def index_update(x, index, value, mode: str) -> Tensor:
    """``x.at[index].set(value)`` (``add``, ``multiply``, ``min``, ``max``): a new tensor,
    differentiable in x and value.

    Repeated positions accumulate for ``add``/``multiply``/``min``/``max`` and the last
    write wins for ``set``, as in NumPy. A traced index (inside jit, scan or vmap) works
    too; there a position named twice by ``set`` gets the sum of its values (JAX leaves
    which write wins unspecified).
    """
    x = to_tensor(x)
    parts = index if isinstance(index, tuple) else (index,)
    traced = any(isinstance(i, Tensor) and i._trace is not None for i in parts)
    if not traced and any(isinstance(i, Tensor) for i in parts):
        index = tuple(_concrete_index("at[]", i) if isinstance(i, Tensor) else i for i in parts)
        index = index if len(index) > 1 else index[0]
    positions = np.arange(x.size).reshape(x.shape)
    try:  # a traced index selects the positions with fluxion ops, a concrete one with NumPy's
        selected = getitem(P.constant(positions, dtypes.DEFAULT_INT), index) if traced else None
        selected = np.asarray(positions[index]) if selected is None else selected
    except IndexError as e:
        raise IndexOutOfRangeError(f"at[]: {e} (tensor of shape {x.shape})") from None
    if isinstance(value, complex) and x._np_dtype not in dtypes.COMPLEX:
        raise DTypeError(
            f"at[]: cannot write the complex {value!r} into a {x.dtype} tensor (its imaginary "
            "part would be lost); cast the tensor first with .astype(fx.complex64)"
        )
    value = (
        to_tensor(value)
        if not isinstance(value, bool | int | float | complex)
        else P.constant(value, x._np_dtype)  # a Python number takes x's dtype, at full precision
    )
    extra = value.ndim - selected.ndim  # leading size-1 axes drop, as in NumPy's x[i] = v
    if extra > 0 and all(n == 1 for n in value.shape[:extra]):
        value = reshape(value, value.shape[extra:])
    value = broadcast_to(astype(value, x._np_dtype), selected.shape)
    linear = reshape(selected, (-1,)) if traced else selected.reshape(-1)
    values, flat = reshape(value, (-1,)), reshape(x, (-1,))
    if mode == "add":
        out = bind(P.scatter_add_p, flat, to_tensor(linear), values, axis=0)
    elif traced and mode == "set":
        hit = bind(
            P.scatter_add_p,
            P.zeros(flat.shape, np.int8),
            linear,
            P.zeros(linear.shape, np.int8) + 1,
            axis=0,
        )
        out = where(
            hit > 0,
            bind(P.scatter_add_p, P.zeros(flat.shape, x._np_dtype), linear, values, axis=0),
            flat,
        )
    elif traced:  # each position against each update: multiply/min/max accumulate repeats
        hits = equal(reshape(linear, (-1, 1)), P.constant(np.arange(x.size), dtypes.DEFAULT_INT))
        neutral = {
            "multiply": 1,
            "min": _extreme(x._np_dtype, 1),
            "max": _extreme(x._np_dtype, -1),
        }[mode]
        reduce = {"multiply": P.reduce_prod_p, "min": P.reduce_min_p, "max": P.reduce_max_p}[mode]
        spread = where(hits, reshape(values, (-1, 1)), P.constant(neutral, x._np_dtype))
        out = _COMBINE[mode](flat, bind(reduce, spread, axes=(0,)))
    else:
        out = _write_in_rounds(flat, linear, values, _COMBINE[mode], last_only=mode == "set")
    return reshape(out, x.shape)


def _extreme(np_dtype, sign: int):
    """The largest (sign 1) or smallest (-1) value of a dtype: min's and max's identity."""
    if dtypes.is_float(np_dtype):
        return sign * np.inf
    if np_dtype == dtypes.BOOL:
        return sign > 0
    info = np.iinfo(np_dtype)
    return info.max if sign > 0 else info.min


def _write_in_rounds(flat, linear: np.ndarray, values, combine, last_only: bool):
    """``combine(old, new)`` at the concrete positions ``linear``; a position named k times
    takes k rounds, each writing every position at most once (only the last, for set)."""
    if last_only:
        keep = len(linear) - 1 - np.unique(linear[::-1], return_index=True)[1]
        linear, values = (
            linear[keep],
            bind(P.gather_p, values, P.constant(keep, dtypes.DEFAULT_INT), axis=0),
        )
    order = np.argsort(linear, kind="stable")
    firsts = np.searchsorted(linear[order], linear[order], side="left")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order)) - firsts  # how many earlier writes name the same position
    out = flat
    for r in range(int(rank.max(initial=-1)) + 1):
        picked = np.nonzero(rank == r)[0]
        mask = np.zeros(flat.shape, bool)
        mask[linear[picked]] = True
        new = bind(
            P.scatter_add_p,
            P.zeros(flat.shape, flat._np_dtype),
            P.constant(linear[picked], dtypes.DEFAULT_INT),
            bind(P.gather_p, values, P.constant(picked, dtypes.DEFAULT_INT), axis=0),
            axis=0,
        )
        out = where(P.constant(mask, bool), combine(out, new), out)
    return out


def masked_fill(x, mask, value) -> Tensor:
    """PyTorch's masked_fill: ``value`` where the boolean ``mask`` is True, ``x`` elsewhere;
    the two broadcast (as PyTorch's, the result may be larger than ``x``).

    >>> fx.masked_fill(fx.zeros(3), fx.tensor([True, False, True]), -1.0)
    [-1.  0. -1.]:f32[3]:cpu(0)
    """
    x, mask = to_tensor(x), to_tensor(mask)
    if mask._np_dtype != dtypes.BOOL:
        raise DTypeError(f"masked_fill: mask must be bool, got {mask.dtype}; compare first (m > 0)")
    P.broadcast_shapes("masked_fill", x.shape, mask.shape, names=("x", "mask"))
    fill = (
        astype(value, x._np_dtype) if isinstance(value, Tensor) else P.constant(value, x._np_dtype)
    )
    return where(mask, fill, x)


def index_put(x, indices, values, accumulate: bool = False) -> Tensor:
    """PyTorch's index_put: ``x[indices] = values`` (``+=`` with ``accumulate``), out of
    place; ``indices`` is a tuple of index tensors (or anything ``x[...]`` takes)."""
    index = tuple(indices) if isinstance(indices, list) else indices
    return index_update(x, index, values, mode="add" if accumulate else "set")


def scatter(x, dim: int, index, src=None, *, value=None, reduce=None) -> Tensor:
    """PyTorch's scatter: ``out[index[i][j]][j] = src[i][j]`` (dim 0), out of place; ``src``
    may be a number (or give ``value=``); ``reduce="add"`` is ``scatter_add``. Positions
    that ``index`` names twice get the sum of their sources (PyTorch leaves them undefined)."""
    x, index = to_tensor(x), to_tensor(index)
    if (src is None) == (value is None):
        raise InvalidArgumentError("scatter: give src (a tensor or number) or value=, one of them")
    src = value if src is None else src
    if not isinstance(src, Tensor):
        src = broadcast_to(P.constant(src, x._np_dtype), index.shape)
    if reduce not in (None, "add"):
        raise InvalidArgumentError(f"scatter: reduce must be None or 'add', got {reduce!r}")
    if reduce == "add":
        return scatter_add(x, dim, index, src)
    written = scatter_add(P.zeros(x.shape, x._np_dtype), dim, index, src)
    ones = broadcast_to(P.constant(1, dtypes.DEFAULT_INT), index.shape)
    hit = scatter_add(P.zeros(x.shape, dtypes.DEFAULT_INT), dim, index, ones) > 0
    return where(hit, written, x)


def nonzero(x, /, *, as_tuple: bool = True):
    """The indices of the non-zero elements: one int64 tensor per axis (NumPy's and the
    array API's ``nonzero``); ``as_tuple=False``: one row per element, shape (n, ndim)
    (``torch.nonzero``'s default, and ``x.nonzero()``'s, as in PyTorch; ``fx.argwhere``).
    The count depends on the values, so ``x`` must be concrete (not inside jit or vmap)."""
    x = to_tensor(x)
    values = _concrete_index("nonzero", x)
    if x.ndim == 0:
        if as_tuple:
            raise ShapeError(
                "nonzero: a 0-d tensor has no axes to index; reshape it to (1,) first, or "
                "pass as_tuple=False for PyTorch's (n, 0) rows"
            )
        return P.constant(np.zeros((int(values != 0), 0), np.int64), dtypes.DEFAULT_INT)
    found = np.nonzero(values)
    if as_tuple:
        return tuple(P.constant(i, dtypes.DEFAULT_INT) for i in found)
    return P.constant(np.stack(found, axis=-1), dtypes.DEFAULT_INT)


def argwhere(x) -> Tensor:
    """NumPy's ``argwhere``: the indices of the non-zero elements, one row each, (n, ndim)."""
    return nonzero(x, as_tuple=False)


def bincount(x, weights=None, minlength: int = 0) -> Tensor:
    """Counts of each value in the 1-d non-negative integer tensor ``x`` (the sums of
    ``weights`` when given), of length ``max(x) + 1`` or ``minlength``; ``x`` must be
    concrete (its largest value sets the length)."""
    x = to_tensor(x)
    values = _concrete_index("bincount", x)
    minlength = check_size("bincount", "minlength", minlength)
    if x.ndim != 1 or x._np_dtype not in dtypes.INTEGERS:
        raise ShapeError(
            f"bincount: x must be a 1-d integer tensor, got {x.dtype} of shape {x.shape}"
        )
    if values.size and values.min() < 0:
        raise InvalidArgumentError(f"bincount: x must be non-negative, got {int(values.min())}")
    n = max(int(values.max()) + 1 if values.size else 0, minlength)
    if weights is None:
        src, dtype = broadcast_to(P.constant(1, dtypes.DEFAULT_INT), x.shape), dtypes.DEFAULT_INT
    else:
        src = to_tensor(weights)
        dtype = src._np_dtype if dtypes.is_float(src._np_dtype) else np.dtype(np.float64)
        src = astype(src, dtype)
    return bind(P.scatter_add_p, P.zeros((n,), dtype), x, src, axis=0)
