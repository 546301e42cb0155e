"""``fx.linalg``: the array API's linear-algebra extension, NumPy's ``np.linalg`` names.

Decompositions and solves are primitives (``fluxion/ops/decompositions.py``) with their
derivatives, for real and complex matrices (JAX's convention); everything else here is a
composite of them and of fluxion's ops.

>>> a = fx.tensor([[4.0, 1.0], [1.0, 3.0]])
>>> fx.linalg.det(a)
11.0:f32[]:cpu(0)
"""

from __future__ import annotations

import builtins
import math
from typing import NamedTuple

import numpy as np

from fluxion.array_api import matrix_transpose, vecdot
from fluxion.core import dtypes
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.ops import decompositions as D
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import _floating, abs, astype, conj, sqrt, stop_gradient, where
from fluxion.ops.indexing import take
from fluxion.ops.linalg import matmul, tensordot
from fluxion.ops.reduction import max, min, sum
from fluxion.ops.shape import broadcast_to, moveaxis, reshape, stack

__all__ = [
    "cholesky",
    "cross",
    "det",
    "diagonal",
    "eigh",
    "eigvalsh",
    "inv",
    "matmul",
    "matrix_norm",
    "matrix_power",
    "matrix_rank",
    "matrix_transpose",
    "norm",
    "outer",
    "pinv",
    "qr",
    "slogdet",
    "solve",
    "svd",
    "svdvals",
    "tensordot",
    "trace",
    "vecdot",
    "vector_norm",
]


class EighResult(NamedTuple):
    eigenvalues: Tensor
    eigenvectors: Tensor


class QRResult(NamedTuple):
    Q: Tensor
    R: Tensor


class SlogdetResult(NamedTuple):
    sign: Tensor
    logabsdet: Tensor


class SVDResult(NamedTuple):
    U: Tensor
    S: Tensor
    Vh: Tensor


def inv(x, /) -> Tensor:
    """The inverse of each square matrix in the last two axes."""
    return bind(D.inv_p, _floating(x))


def solve(x1, x2, /) -> Tensor:
    """``x`` with ``x1 @ x = x2``; ``x2`` a vector (1-d) or a stack of matrices whose batch
    axes broadcast against ``x1``'s."""
    a, b = _floating(x1), _floating(x2)
    dtype = dtypes.promote(a._np_dtype, b._np_dtype)
    a, b = astype(a, dtype), astype(b, dtype)
    if a.ndim < 2:
        raise ShapeError(f"solve: x1 must be a (stack of) square matrices, got shape {a.shape}")
    vector = b.ndim == 1
    if vector:
        b = reshape(b, (b.shape[0], 1))
    batch = P.broadcast_shapes("solve", a.shape[:-2], b.shape[:-2], names=("x1", "x2"))
    a = broadcast_to(a, batch + a.shape[-2:])
    b = broadcast_to(b, batch + b.shape[-2:])
    out = bind(D.solve_p, a, b)
    return reshape(out, out.shape[:-1]) if vector else out


def slogdet(x, /) -> SlogdetResult:
    """The sign and the log of the absolute value of each determinant."""
    return SlogdetResult(*bind(D.slogdet_p, _floating(x)))


def det(x, /) -> Tensor:
    """The determinant of each square matrix (its gradient needs the matrix invertible)."""
    return bind(D.det_p, _floating(x))


def cholesky(x, /, *, upper: bool = False) -> Tensor:
    """The Cholesky factor of each symmetric positive-definite matrix (lower, or upper)."""
    return bind(D.cholesky_p, _floating(x), upper=bool(upper))


def eigh(x, /) -> EighResult:
    """Eigenvalues (ascending) and eigenvectors of each symmetric matrix (its lower
    triangle is read, as NumPy's)."""
    return EighResult(*bind(D.eigh_p, _floating(x)))


def eigvalsh(x, /) -> Tensor:
    return eigh(x).eigenvalues


def svd(x, /, *, full_matrices: bool = True) -> SVDResult:
    """``U, S, Vh`` with ``x = U @ diag(S) @ Vh``; differentiable with ``full_matrices=False``
    (or a square ``x``) where the singular values are distinct and nonzero."""
    return SVDResult(*bind(D.svd_p, _floating(x), full_matrices=bool(full_matrices)))


def svdvals(x, /) -> Tensor:
    """The singular values, descending (differentiable where they are distinct)."""
    return bind(D.svdvals_p, _floating(x))


def qr(x, /, *, mode: str = "reduced") -> QRResult:
    """``Q, R`` with ``x = Q @ R``; differentiable for a matrix with at least as many rows as
    columns (mode ``"reduced"``), as in JAX."""
    if mode not in ("reduced", "complete"):
        raise InvalidArgumentError(f"qr: mode must be 'reduced' or 'complete', got {mode!r}")
    return QRResult(*bind(D.qr_p, _floating(x), mode=mode))


def diagonal(x, /, *, offset: int = 0) -> Tensor:
    """Diagonal ``offset`` of each matrix in the last two axes."""
    x = to_tensor(x)
    if x.ndim < 2:
        raise ShapeError(f"diagonal: needs at least 2 dimensions, got shape {x.shape}")
    n, m = x.shape[-2:]
    rows = np.arange(builtins.max(0, -offset), n)
    rows = rows[rows + offset < m]
    flat = reshape(x, x.shape[:-2] + (n * m,))
    index = Tensor._from_array((rows * m + rows + offset).astype(np.int64))
    return take(flat, index, axis=flat.ndim - 1)


def trace(x, /, *, offset: int = 0, dtype=None) -> Tensor:
    """The sum of diagonal ``offset`` of each matrix."""
    return sum(diagonal(x, offset=offset), axis=-1, dtype=dtype)


def outer(x1, x2, /) -> Tensor:
    """The outer product of two vectors."""
    x1, x2 = to_tensor(x1), to_tensor(x2)
    if x1.ndim != 1 or x2.ndim != 1:
        raise ShapeError(f"outer: needs two vectors, got shapes {x1.shape} and {x2.shape}")
    return reshape(x1, (-1, 1)) * reshape(x2, (1, -1))


def cross(x1, x2, /, *, axis: int = -1) -> Tensor:
    """The cross product of 3-vectors along ``axis`` (the others broadcast)."""
    x1, x2 = to_tensor(x1), to_tensor(x2)
    for name, x in (("x1", x1), ("x2", x2)):
        if not -x.ndim <= axis < x.ndim or x.shape[axis] != 3:
            raise ShapeError(f"cross: {name} of shape {x.shape} has no length-3 axis {axis}")
    a, b = moveaxis(x1, axis, -1), moveaxis(x2, axis, -1)
    a0, a1, a2 = (a[..., i] for i in range(3))
    b0, b1, b2 = (b[..., i] for i in range(3))
    out = stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return moveaxis(out, -1, axis if axis < 0 else axis - x1.ndim)


def vector_norm(x, /, *, axis=None, keepdims: bool = False, ord=2) -> Tensor:
    """The ``ord``-norm of the vectors along ``axis`` (all elements when None); real."""
    mag = abs(_floating(x))
    if ord == 2:
        return sqrt(sum(mag * mag, axis=axis, keepdims=keepdims))
    if ord == math.inf:
        return max(mag, axis=axis, keepdims=keepdims)
    if ord == -math.inf:
        return min(mag, axis=axis, keepdims=keepdims)
    if ord == 0:
        return sum(astype(mag != 0, mag._np_dtype), axis=axis, keepdims=keepdims)
    if ord == 1:
        return sum(mag, axis=axis, keepdims=keepdims)
    return sum(mag**ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def matrix_norm(x, /, *, keepdims: bool = False, ord="fro") -> Tensor:
    """The ``ord``-norm of each matrix: ``"fro"``, ``"nuc"``, 1, -1, 2, -2, inf, -inf."""
    x = _floating(x)
    if x.ndim < 2:
        raise ShapeError(f"matrix_norm: needs at least 2 dimensions, got shape {x.shape}")
    mag = abs(x)
    if ord == "fro":
        out = sqrt(sum(mag * mag, axis=(-2, -1)))
    elif ord == "nuc":
        out = sum(svdvals(x), axis=-1)
    elif ord in (2, -2):
        out = (max if ord == 2 else min)(svdvals(x), axis=-1)
    elif ord in (1, -1):
        out = (max if ord == 1 else min)(sum(mag, axis=-2), axis=-1)
    elif ord in (math.inf, -math.inf):
        out = (max if ord > 0 else min)(sum(mag, axis=-1), axis=-1)
    else:
        raise InvalidArgumentError(
            f"matrix_norm: ord must be 'fro', 'nuc', 1, -1, 2, -2, inf or -inf, got {ord!r}"
        )
    return reshape(out, out.shape + (1, 1)) if keepdims else out


def norm(x, /, ord=None, axis=None, keepdims: bool = False) -> Tensor:
    """NumPy's ``np.linalg.norm``: a vector norm, or a matrix norm over two axes (those of
    a 2-d ``x`` when ``ord`` is given)."""
    x = to_tensor(x)
    if axis is None and ord is not None and x.ndim == 2:
        axis = (0, 1)
    if not (isinstance(axis, tuple | list) and len(axis) == 2):
        return vector_norm(x, axis=axis, keepdims=keepdims, ord=2 if ord is None else ord)
    axes = [P.check_axis("norm", a, x.ndim) for a in axis]
    out = matrix_norm(moveaxis(x, axes, (-2, -1)), ord="fro" if ord is None else ord)
    if keepdims:
        out = reshape(out, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return out


def matrix_power(x, n: int, /) -> Tensor:
    """``x`` multiplied by itself ``n`` times (``n < 0``: its inverse's powers; 0: I)."""
    x = to_tensor(x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"matrix_power: needs square matrices, got shape {x.shape}")
    if n == 0:
        eye = Tensor._from_array(np.eye(x.shape[-1], dtype=x._np_dtype))
        return broadcast_to(eye, x.shape)
    if n < 0:
        x, n = inv(x), -n
    out, base = None, x
    while n:  # by squaring
        if n & 1:
            out = base if out is None else matmul(out, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return out


def _tolerance(x, s, rtol) -> Tensor:
    """``rtol`` (default max(M, N) eps) times the largest singular value, per matrix."""
    if rtol is None:
        rtol = builtins.max(x.shape[-2:]) * np.finfo(dtypes.real_for(x._np_dtype)).eps
    rtol = astype(to_tensor(rtol), s._np_dtype)
    top = max(s, axis=-1, keepdims=True) if s.shape[-1] else sum(s, axis=-1, keepdims=True)
    return top * reshape(rtol, rtol.shape + (1,))


def matrix_rank(x, /, *, rtol=None) -> Tensor:
    """How many singular values exceed ``rtol`` times the largest (default: max(M, N) eps)."""
    x = stop_gradient(_floating(x))  # an integer: no gradient, so none through the SVD
    s = svdvals(x)
    return sum(astype(s > _tolerance(x, s, rtol), dtypes.DEFAULT_INT), axis=-1)


def pinv(x, /, *, rtol=None) -> Tensor:
    """The Moore-Penrose pseudo-inverse, through the SVD."""
    x = _floating(x)
    u, s, vh = svd(x, full_matrices=False)
    kept = s > _tolerance(x, s, rtol)
    s_inv = astype(where(kept, 1.0 / where(kept, s, 1.0), 0.0), x._np_dtype)
    scaled = conj(matrix_transpose(vh)) * reshape(s_inv, s_inv.shape[:-1] + (1, s_inv.shape[-1]))
    return matmul(scaled, conj(matrix_transpose(u)))
