"""The default backend: NumPy, with faster kernels for a few primitives.

Each kernel here overrides a reference kernel of ``ops/primitives.py`` (the one-line NumPy
``impl``) under the same name, for inputs where NumPy's direct call is slow; elsewhere it
calls the reference. Each gives the reference's answer bit for bit, except where it adds in
another order (the sums, the stacked matmul, scatter_add's one-hot product: the same error
bound); tests/test_backends.py checks every one
against its reference, and ``fx.backends.set_backend("numpy")`` runs the references alone.
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.backends import threads

_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def select(reference):
    # np.where branches on every element: on a mask with no pattern (relu, dropout) that
    # is ~10x slower than blending the bits, which is exact for every dtype (bits move,
    # values are never computed). Small arrays keep np.where: one call is cheaper there.
    def kernel(xp, c, x, y):
        if max(c.size, x.size, y.size) < 4096 or x.dtype.itemsize not in _BITS:
            return reference(xp, c, x, y)
        shape = np.broadcast_shapes(c.shape, x.shape, y.shape)
        bits = _BITS[x.dtype.itemsize]
        mask = np.broadcast_to(c, shape).astype(bits)  # 1 where c
        if y.ndim == 0 and not y.view(bits):  # where(c, x, +0): a relu or a masked gradient
            np.negative(mask, out=mask)  # all ones where c
            return (np.broadcast_to(x, shape).view(bits) & mask).view(x.dtype)
        if x.ndim == 0 and not x.view(bits):
            np.subtract(mask, 1, out=mask)  # all ones where not c
            return (np.broadcast_to(y, shape).view(bits) & mask).view(x.dtype)
        np.negative(mask, out=mask)
        out = np.broadcast_to(x, shape).view(bits) & mask
        np.invert(mask, out=mask)
        out |= np.broadcast_to(y, shape).view(bits) & mask
        return out.view(x.dtype)

    return kernel


def reduce_sum(reference):
    def kernel(xp, x, *, axes):
        if x.dtype not in (np.float32, np.float64):
            return reference(xp, x, axes=axes)
        if x.ndim - 1 in axes and x.shape[-1] <= 1024:
            # NumPy's sum over a short innermost axis runs one tiny pairwise loop per output
            # element; einsum's vectorized loop is 2.5-3x faster (same error for axes this short)
            kept = "".join(_LETTERS[i] for i in range(x.ndim) if i not in axes)
            return np.einsum(f"{_LETTERS[: x.ndim]}->{kept}", x)
        if axes == tuple(range(len(axes))) and x.size:
            # the leading axes (a bias gradient): ones @ rows is one BLAS matrix-vector
            # product, 2.5-7x faster than np.sum and no less accurate
            rows = math.prod(x.shape[: len(axes)])
            flat = x.reshape(rows, x.size // rows)
            return (np.ones(rows, x.dtype) @ flat).reshape(x.shape[len(axes) :])
        return reference(xp, x, axes=axes)

    return kernel


def reduce_extremum(reference):
    def kernel(xp, x, *, axes):
        if axes == (x.ndim - 1,) and x.shape[-1] <= 32 and x.size >= 64 * x.shape[-1]:
            # NumPy reduces a short innermost axis with one tiny loop per result (attention
            # scores over 8 keys: 0.2 ms); moved outermost by one copy, it is a few
            # vectorized passes (3-10x faster)
            return reference(xp, np.ascontiguousarray(np.moveaxis(x, -1, 0)), axes=(0,))
        return reference(xp, x, axes=axes)

    return kernel


def matmul(reference):
    def kernel(xp, a, b):
        threads.for_matmul(math.prod(a.shape) * b.shape[-1])  # a small product: one thread
        if a.ndim > 2 and b.ndim == 2:
            # a stack times one matrix is one matrix product: NumPy would loop over the stack
            flat = a.reshape(math.prod(a.shape[:-1]), a.shape[-1])
            return reference(xp, flat, b).reshape(a.shape[:-1] + b.shape[-1:])
        return reference(xp, a, b)

    return kernel


def scatter_add(reference):
    def kernel(xp, x, idx, updates, *, axis):
        rows, flat = x.shape[0], idx.reshape(-1)
        if (
            axis == 0
            and x.dtype.kind == "f"
            and 0 < flat.size * rows <= 1 << 22
            and -rows <= flat.min()
            and flat.max() < rows  # out of range: the reference raises the IndexError
        ):
            # an embedding's gradient: a one-hot matrix product is ~10x faster than ufunc.add.at
            one_hot = (np.arange(rows)[:, None] == flat % rows).astype(x.dtype)
            return x + (one_hot @ updates.reshape(flat.size, -1)).reshape(x.shape)
        return reference(xp, x, idx, updates, axis=axis)

    return kernel


# primitive name -> kernel(reference kernel) -> the faster kernel
KERNELS = {
    "select": select,
    "reduce_sum": reduce_sum,
    "reduce_max": reduce_extremum,
    "reduce_min": reduce_extremum,
    "matmul": matmul,
    "scatter_add": scatter_add,
}
