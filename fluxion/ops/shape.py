"""Shape ops with NumPy's names and semantics, all composites of a few primitives."""

from __future__ import annotations

import functools
import math

import numpy as np

from fluxion.core import dtypes
from fluxion.core.checks import check_allocation, check_count, check_ints, check_shape, check_size
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.errors import (
    ArgumentTypeError,
    AxisError,
    IndexOutOfRangeError,
    InvalidArgumentError,
    ShapeError,
)
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import astype


def _star_shape(shape: tuple):
    """A shape given through ``*shape``: ``zeros(2, 3)``, or one sequence: ``zeros((2, 3))``."""
    if len(shape) == 1 and isinstance(shape[0], tuple | list | np.ndarray | Tensor):
        return shape[0]
    return shape


def reshape(x, shape, *more, copy=None) -> Tensor:
    """Same elements, new shape; one dimension may be -1 (inferred). Tensors are values, so
    ``copy`` (the array API's) changes nothing a program can see.

    >>> fx.reshape(fx.arange(6), (2, -1)).shape
    (2, 3)
    """
    x = to_tensor(x)
    shape = check_shape("reshape", "shape", (shape,) + more if more else shape, inferred=True)
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or x.size % known:
            raise ShapeError(
                f"reshape: cannot reshape {x.shape} ({x.size} elements) into {shape}; the known "
                f"dimensions ({known} elements) must divide the size"
            )
        shape = tuple(x.size // known if d == -1 else d for d in shape)
    return x if shape == x.shape else bind(P.reshape_p, x, shape=shape)


def ravel(x) -> Tensor:
    return reshape(x, (-1,))


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` (all of them by default)."""
    x = to_tensor(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    start = P.check_axis("flatten", start_dim, x.ndim, "start_dim")
    end = P.check_axis("flatten", end_dim, x.ndim, "end_dim")
    if start > end:
        raise AxisError(
            f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}; "
            "give start_dim <= end_dim"
        )
    merged = math.prod(x.shape[start : end + 1])  # not -1: ambiguous with 0 elements
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1 :])


def _dim_or_axis(op, axis, dim, default=None, name="dim"):
    """The axis given as ``axis`` (NumPy) or ``dim`` (PyTorch; the same meaning here)."""
    if dim is None:
        return axis
    check_ints(op, name, dim)  # a bad value is named before a clash of names
    if axis is not default:
        raise InvalidArgumentError(
            f"{op}: give axis= or {name}=, not both (got axis={axis!r}, {name}={dim!r})"
        )
    return dim


def expand_dims(x, axis=None, *, dim=None) -> Tensor:
    """Insert size-1 dimensions at ``axis`` (int or tuple) of the result."""
    x = to_tensor(x)
    axis = _dim_or_axis("expand_dims", axis, dim)
    if axis is None:
        raise InvalidArgumentError("expand_dims: give the axis (dim) at which to insert")
    axes = _axis_list(axis)
    axes = P.check_axes("expand_dims", axes, x.ndim + len(axes))
    shape, rest = [], iter(x.shape)
    for i in range(x.ndim + len(axes)):
        shape.append(1 if i in axes else next(rest))
    return bind(P.reshape_p, x, shape=tuple(shape))


unsqueeze = expand_dims


def squeeze(x, axis=None, *, dim=None) -> Tensor:
    """Remove size-1 dimensions (all of them, or those named by ``axis``, which must have
    size 1). With ``dim=``, PyTorch's rule: a named dimension of another size stays."""
    x = to_tensor(x)
    if dim is not None:
        _dim_or_axis("squeeze", axis, dim)
        axes = P.check_axes("squeeze", dim, x.ndim, "dim")
        return squeeze(x, tuple(a for a in axes if x.shape[a] == 1))
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = P.check_axes("squeeze", axis, x.ndim)  # () for axis 0/-1 of a 0-d tensor
        for a in axes:
            if x.shape[a] != 1:
                raise ShapeError(
                    f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1"
                )
    return bind(P.reshape_p, x, shape=tuple(d for i, d in enumerate(x.shape) if i not in axes))


def broadcast_to(x, shape) -> Tensor:
    """View ``x`` with ``shape`` by NumPy broadcasting."""
    x = to_tensor(x)
    shape = check_shape("broadcast_to", "shape", shape)
    return x if x.shape == shape else bind(P.broadcast_to_p, x, shape=shape)


def broadcast_arrays(*xs) -> list[Tensor]:
    xs = [to_tensor(x) for x in xs]
    shape = P.broadcast_shapes("broadcast_arrays", *[x.shape for x in xs])
    return [broadcast_to(x, shape) for x in xs]


def transpose(x, axes=None, dim1=None) -> Tensor:
    """Permute dimensions (reverse them when ``axes`` is None); ``transpose(x, d0, d1)`` with
    two ints swaps those two, as PyTorch's ``transpose(input, dim0, dim1)``."""
    x = to_tensor(x)
    if dim1 is not None:
        return swapaxes(x, axes, dim1)
    if axes is None:
        perm = tuple(range(x.ndim))[::-1]
    else:
        given = check_ints("transpose", "axes", axes)
        perm = tuple(a % x.ndim if -x.ndim <= a < x.ndim else a for a in given)
        if sorted(perm) != list(range(x.ndim)):
            raise AxisError(
                f"transpose: axes {axes!r} are not a permutation of the {x.ndim} axes of a "
                f"tensor of shape {x.shape}; name each axis in range(0, {x.ndim}) exactly once"
            )
    return x if perm == tuple(range(x.ndim)) else bind(P.transpose_p, x, perm=perm)


permute = transpose


def moveaxis(x, source, destination) -> Tensor:
    x = to_tensor(x)
    src, dst = (
        [P.check_axis("moveaxis", a, x.ndim, name) for a in _axis_list(axes)]
        for name, axes in (("source", source), ("destination", destination))
    )
    if len(src) != len(dst):
        raise AxisError(f"moveaxis: {len(src)} source axes but {len(dst)} destinations")
    order = [a for a in range(x.ndim) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


def _axis_list(axes) -> list:
    return list(axes) if isinstance(axes, tuple | list) else [axes]


def swapaxes(x, axis1: int, axis2: int) -> Tensor:
    x = to_tensor(x)
    a = P.check_axis("swapaxes", axis1, x.ndim, "axis1")
    b = P.check_axis("swapaxes", axis2, x.ndim, "axis2")
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def concatenate(tensors, axis: int = 0, *, dim=None) -> Tensor:
    """Join tensors along an existing axis; dtypes are promoted."""
    axis = _dim_or_axis("concatenate", axis, dim, 0)
    tensors = [to_tensor(t) for t in tensors]
    if not tensors:
        raise InvalidArgumentError("concatenate: needs at least one tensor")
    dtype = functools.reduce(dtypes.promote, [t._np_dtype for t in tensors])
    tensors = [astype(t, dtype) for t in tensors]
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ShapeError(
                f"concatenate: tensor {i} is 0-d (shape ()); zero-dimensional tensors cannot be "
                "concatenated: use stack, or reshape them to (1,)"
            )
    axis = P.check_axis("concatenate", axis, tensors[0].ndim)
    if len(tensors) == 1:
        return tensors[0]
    return bind(P.concatenate_p, *tensors, axis=axis)


cat = concatenate


def stack(tensors, axis: int = 0, *, dim=None) -> Tensor:
    """Join tensors of one shape along a new axis."""
    axis = _dim_or_axis("stack", axis, dim, 0)
    tensors = [to_tensor(t) for t in tensors]
    if not tensors:
        raise InvalidArgumentError("stack: needs at least one tensor")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ShapeError(
                f"stack: tensor {i} has shape {t.shape} but tensor 0 has {tensors[0].shape}; all must match"
            )
    axis = P.check_axis("stack", axis, tensors[0].ndim + 1)
    return concatenate([expand_dims(t, axis) for t in tensors], axis=axis)


def slice_tensor(x, start, size) -> Tensor:
    """The block of ``size`` starting at ``start`` (one entry per dimension)."""
    x = to_tensor(x)
    start, size = (
        check_ints("slice_tensor", "start", start),
        check_ints("slice_tensor", "size", size),
    )
    if len(start) != x.ndim or len(size) != x.ndim:
        raise ShapeError(
            f"slice_tensor: start {start} and size {size} need one entry per dimension of {x.shape}"
        )
    for a, (b, n, d) in enumerate(zip(start, size, x.shape)):
        if not (0 <= b and 0 <= n and b + n <= d):
            raise IndexOutOfRangeError(
                f"slice_tensor: start {b} with size {n} does not fit axis {a} of size {d} (shape "
                f"{x.shape}); need 0 <= start, 0 <= size and start + size <= {d}"
            )
    stops = tuple(b + n for b, n in zip(start, size))
    return bind(P.slice_p, x, starts=start, stops=stops, steps=(1,) * x.ndim)


def _slice_axis(x, axis, start, stop):
    starts = tuple(start if k == axis else 0 for k in range(x.ndim))
    stops = tuple(stop if k == axis else d for k, d in enumerate(x.shape))
    return bind(P.slice_p, x, starts=starts, stops=stops, steps=(1,) * x.ndim)


def split(x, indices_or_sections, axis: int = 0, *, dim=None) -> list[Tensor]:
    """NumPy's split: a number of equal sections, or the indices to cut at.

    Piece k is ``x[cut[k-1]:cut[k]]`` along ``axis`` with Python's slicing rules, as in
    NumPy: negative cuts count from the end, cuts past the end clamp, and a cut before
    the previous one gives an empty piece (the next piece starts from that cut).

    With ``dim=``, PyTorch's split: an int is the size of each piece (the last may be
    smaller), a list the sizes of the pieces (they must add up to the dimension).
    """
    x = to_tensor(x)
    if dim is not None:
        _dim_or_axis("split", axis, dim, 0)
        return _split_sizes(x, indices_or_sections, P.check_axis("split", dim, x.ndim, "dim"))
    axis = P.check_axis("split", axis, x.ndim)
    n = x.shape[axis]
    if isinstance(indices_or_sections, int | np.integer):
        sections = int(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ShapeError(
                f"split: axis {axis} of size {n} does not split into {sections} equal "
                "sections; give the indices to cut at, or use chunk"
            )
        cuts = [n // sections * k for k in range(1, sections)]
    else:
        cuts = check_ints("split", "indices_or_sections", indices_or_sections)
    bounds = [0, *cuts, n]
    pieces = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        start, stop, _ = slice(a, b).indices(n)
        pieces.append(_slice_axis(x, axis, start, max(start, stop)))
    return pieces


def _split_sizes(x, sizes, axis) -> list[Tensor]:
    n = x.shape[axis]
    if isinstance(sizes, int | np.integer):
        size = check_count("split", "split_size_or_sections", sizes)
        sizes = [min(size, n - a) for a in range(0, n, size)] or [0]
    sizes = check_ints("split", "split_size_or_sections", sizes)
    if sum(sizes) != n or min(sizes, default=0) < 0:
        raise ShapeError(
            f"split: sizes {list(sizes)} do not add up to dim {axis} of shape {x.shape} "
            f"(size {n}); give non-negative sizes that sum to {n}, or one piece size"
        )
    starts = np.cumsum([0, *sizes]).tolist()
    return [_slice_axis(x, axis, a, b) for a, b in zip(starts[:-1], starts[1:])]


def chunk(x, chunks: int, axis: int = 0, *, dim=None) -> list[Tensor]:
    """PyTorch's chunk: pieces of ceil(n / chunks) along ``axis`` (the last may be smaller)."""
    x = to_tensor(x)
    axis = P.check_axis("chunk", _dim_or_axis("chunk", axis, dim, 0), x.ndim)
    chunks = check_count("chunk", "chunks", chunks)
    n = x.shape[axis]
    if n == 0:  # PyTorch: an empty axis gives `chunks` empty pieces
        return [_slice_axis(x, axis, 0, 0) for _ in range(chunks)]
    step = -(-n // chunks)
    return [_slice_axis(x, axis, a, min(a + step, n)) for a in range(0, n, step)]


def pad(x, pad_width, mode: str = "constant", constant_values=0) -> Tensor:
    """NumPy's constant pad: ``pad_width`` is an int, a (before, after) pair, or one per axis."""
    x = to_tensor(x)
    if mode != "constant":
        raise InvalidArgumentError(f"pad: only mode='constant' is supported, got {mode!r}")
    try:
        widths = np.broadcast_to(np.asarray(pad_width), (x.ndim, 2))
    except ValueError:
        raise ShapeError(
            f"pad: pad_width {pad_width!r} does not give (before, after) for each of the "
            f"{x.ndim} dimensions"
        ) from None
    if widths.dtype.kind not in "iu":
        raise ArgumentTypeError(f"pad: pad_width must hold ints, got {pad_width!r}")
    if (widths < 0).any():
        raise ShapeError(
            f"pad: pad_width must be non-negative, got {pad_width!r} for a tensor of shape "
            f"{x.shape}; to crop, slice (or use F.pad)"
        )
    widths = widths.tolist()
    padded = tuple(d + a + b for d, (a, b) in zip(x.shape, widths))
    check_allocation("pad", padded, x._np_dtype, f"pad_width={pad_width!r}")
    return bind(
        P.pad_p, x, widths=tuple((int(a), int(b), 0) for a, b in widths), value=constant_values
    )


def flip(x, axis=None, *, dims=None) -> Tensor:
    """Reverse the order of elements along ``axis`` (PyTorch: ``dims``; all axes by default)."""
    x = to_tensor(x)
    axes = P.check_axes("flip", _dim_or_axis("flip", axis, dims, name="dims"), x.ndim)
    return bind(P.rev_p, x, axes=axes if x.ndim else ())


def _repeat_each(x, repeats, axis) -> Tensor:
    """``repeat`` with one count per element: a gather of the indices NumPy repeats."""
    from fluxion.ops.indexing import take

    counts = to_tensor(repeats)._data("repeat()")
    if counts.ndim > 1 or counts.dtype.kind not in "iu" or (counts < 0).any():
        raise InvalidArgumentError(
            f"repeat: repeats must be an int or a 1-d tensor of counts >= 0, got {repeats!r}"
        )
    if counts.ndim == 0 or counts.size == 1:
        return repeat(x, int(counts.reshape(())), axis)
    if counts.size != x.shape[axis]:
        raise ShapeError(
            f"repeat: {counts.size} counts for axis {axis} of length {x.shape[axis]} (shape "
            f"{x.shape}); give one count per element"
        )
    index = np.repeat(np.arange(x.shape[axis]), counts)
    return take(x, Tensor._from_array(index.astype(np.int64)), axis=axis)


def tile(x, reps) -> Tensor:
    """Repeat the whole tensor ``reps`` times along each axis (NumPy's tile)."""
    x = to_tensor(x)
    reps = check_shape("tile", "reps", reps)
    ndim = max(x.ndim, len(reps))
    reps = (1,) * (ndim - len(reps)) + reps
    x = reshape(x, (1,) * (ndim - x.ndim) + x.shape)
    out_shape = tuple(r * d for r, d in zip(reps, x.shape))
    check_allocation(
        "tile", out_shape, x._np_dtype, f"reps={reps!r} of a tensor of shape {x.shape}"
    )
    expanded = broadcast_to(
        reshape(x, sum(((1, d) for d in x.shape), ())),
        sum(((r, d) for r, d in zip(reps, x.shape)), ()),
    )
    return reshape(expanded, tuple(r * d for r, d in zip(reps, x.shape)))


def repeat(x, repeats, axis=None) -> Tensor:
    """Repeat each element ``repeats`` times along ``axis`` (NumPy's repeat); ``repeats``
    an int, or one count per element (a 1-d tensor or sequence of ints)."""
    x = to_tensor(x)
    if axis is None:
        x, axis = ravel(x), 0
    axis = P.check_axis("repeat", axis, x.ndim)
    if isinstance(repeats, Tensor | np.ndarray | list | tuple):
        return _repeat_each(x, repeats, axis)
    repeats = check_size("repeat", "repeats", repeats)
    target = x.shape[: axis + 1] + (repeats,) + x.shape[axis + 1 :]
    check_allocation("repeat", target, x._np_dtype, f"repeats={repeats}")
    expanded = expand_dims(x, axis + 1)
    return reshape(
        broadcast_to(expanded, target),
        x.shape[:axis] + (x.shape[axis] * repeats,) + x.shape[axis + 1 :],
    )


def repeat_interleave(x, repeats: int, dim=None) -> Tensor:
    """PyTorch's repeat_interleave: each element ``repeats`` times along ``dim`` (of the
    flattened tensor when None); NumPy's ``repeat``.

    >>> fx.repeat_interleave(fx.tensor([1, 2]), 2)
    [1 1 2 2]:i64[4]:cpu(0)
    """
    return repeat(x, repeats, dim)
