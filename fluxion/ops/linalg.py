"""Linear algebra: matmul is the primitive; dot, einsum, tensordot and outer are composites."""

from __future__ import annotations

import builtins
import functools
import math

from fluxion.core import dtypes
from fluxion.core.checks import check_int
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.errors import (
    ArgumentTypeError,
    AxisError,
    DTypeError,
    InvalidArgumentError,
    ShapeError,
)
from fluxion.ops import primitives as P
from fluxion.ops.amp import autocast_op
from fluxion.ops.elementwise import _promoted, astype, multiply
from fluxion.ops.reduction import sum
from fluxion.ops.shape import expand_dims, reshape, squeeze, transpose


@autocast_op
def matmul(x, y) -> Tensor:
    """Matrix product with NumPy's rules: batch dims broadcast, 1-d operands are vectors.

    >>> fx.matmul(fx.ones((2, 3)), fx.ones(3))
    [3. 3.]:f32[2]:cpu(0)
    """
    return _matmul("matmul", x, y)


def _matmul(op, x, y) -> Tensor:
    x, y = _promoted(x, y)
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError(
            f"{op}: operands must have at least one dimension, got {x.shape} and {y.shape}; use multiply for scalars"
        )
    if x._np_dtype == dtypes.BOOL:
        raise DTypeError(f"{op}: bool operands are not supported; cast them to a number type")
    xv, yv = x.ndim == 1, y.ndim == 1
    k_y = y.shape[0] if yv else y.shape[-2]
    if x.shape[-1] != k_y:
        raise ShapeError(
            f"{op}: inner dimensions differ: x {x.shape} has {x.shape[-1]} along its last axis but "
            f"y {y.shape} has {k_y} along its {'only' if yv else 'second-to-last'} axis; "
            "transpose one of them or fix the shapes"
        )
    out = bind(P.matmul_p, expand_dims(x, 0) if xv else x, expand_dims(y, 1) if yv else y)
    if xv or yv:
        out = squeeze(out, axis=tuple(a for a, v in ((-2, xv), (-1, yv)) if v))
    return out


def dot(x, y) -> Tensor:
    """NumPy's dot: products of scalars, vectors and matrices; sums over x's last and y's
    second-to-last axis for higher ranks."""
    x, y = _promoted(x, y)
    if x.ndim == 0 or y.ndim == 0:
        return multiply(x, y)
    if x.ndim <= 2 and y.ndim <= 2:
        return _matmul("dot", x, y)
    return tensordot(x, y, axes=([-1], [max(y.ndim - 2, 0)]))


def outer(x, y) -> Tensor:
    """Outer product of the flattened inputs."""
    x, y = _promoted(x, y)
    return reshape(x, (-1, 1)) * reshape(y, (1, -1))


@autocast_op
def tensordot(x, y, axes=2) -> Tensor:
    """Sum products over ``axes`` (an int: the last n of x with the first n of y; or two lists)."""
    x, y = _promoted(x, y)
    if not isinstance(axes, tuple | list):
        axes = check_int("tensordot", "axes", axes)
        if not 0 <= axes <= min(x.ndim, y.ndim):
            raise AxisError(
                f"tensordot: axes={axes} needs 0 <= axes <= min(x.ndim, y.ndim) for x {x.shape} "
                f"and y {y.shape}"
            )
        ax, ay = list(range(x.ndim - axes, x.ndim)), list(range(axes))
    else:
        if len(axes) != 2 or len(axes[0]) != len(axes[1]):
            raise AxisError(
                f"tensordot: axes {axes} must be two lists of equal length (axes of x, axes of y)"
            )
        ax = [P.check_axis("tensordot", a, x.ndim) for a in axes[0]]
        ay = [P.check_axis("tensordot", a, y.ndim) for a in axes[1]]
        if len(set(ax)) != len(ax) or len(set(ay)) != len(ay):
            raise AxisError(f"tensordot: axis repeated in {axes}; name each axis once")
    for a, b in zip(ax, ay):
        if x.shape[a] != y.shape[b]:
            raise ShapeError(
                f"tensordot: axis {a} of x {x.shape} and axis {b} of y {y.shape} differ in size"
            )
    free_x = [a for a in range(x.ndim) if a not in ax]
    free_y = [b for b in range(y.ndim) if b not in ay]
    k = math.prod(x.shape[a] for a in ax)
    out_x, out_y = tuple(x.shape[a] for a in free_x), tuple(y.shape[b] for b in free_y)
    # sizes, not -1: with k = 0 (an empty contracted axis) -1 has no answer
    xm = reshape(transpose(x, free_x + ax), (math.prod(out_x), k))
    ym = reshape(transpose(y, ay + free_y), (k, math.prod(out_y)))
    return reshape(bind(P.matmul_p, xm, ym), out_x + out_y)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@autocast_op
def einsum(subscripts: str, *operands) -> Tensor:
    """Einstein summation over one or more operands (``"bij,bjk->bik"``), as in NumPy and
    PyTorch: ``...`` stands for an operand's leading unnamed axes (broadcast against the
    other operands'), an index repeated in one term takes a diagonal (``"ii->i"``; ``"ii"``
    is the trace), and an axis of size 1 broadcasts against its index's size elsewhere.
    Lowered to strided slices (diagonals), transposes, reshapes, sums and batched matmuls.

    >>> fx.einsum("ii", fx.eye(3))
    3.0:f32[]:cpu(0)
    """
    if not isinstance(subscripts, str):
        raise ArgumentTypeError(
            f"einsum: subscripts must be a str such as 'ij,jk->ik', got {subscripts!r}"
        )
    operands = [to_tensor(o) for o in operands]
    dtype = functools.reduce(dtypes.promote, [o._np_dtype for o in operands])
    ops = [astype(o, dtype) for o in operands]
    inputs, arrow, output = subscripts.replace(" ", "").partition("->")
    terms = inputs.split(",")
    if len(terms) != len(ops):
        raise InvalidArgumentError(
            f"einsum: {subscripts!r} names {len(terms)} operands but {len(ops)} were given"
        )
    terms, ellipsis = _expand_ellipsis(subscripts, terms, ops)
    letters = "".join(terms)
    if not arrow:  # NumPy's implicit output: the ellipsis, then the indices used once, sorted
        once = sorted(c for c in set(letters) - set(ellipsis) if letters.count(c) == 1)
        output = ellipsis + "".join(once)
    output = output.replace("...", ellipsis, 1)
    for c in output:
        if c not in letters or output.count(c) > 1:
            raise InvalidArgumentError(
                f"einsum: output index {c!r} of {subscripts!r} "
                + ("appears twice" if output.count(c) > 1 else "is not in any input term")
                + "; name each output index once, from the inputs"
            )
    for i, t in enumerate(terms):
        ops[i], terms[i] = _diagonals(subscripts, ops[i], t)
    sizes = _index_sizes(subscripts, terms, ops)
    for i, (t, o) in enumerate(zip(terms, ops)):
        # a size-1 axis meeting a larger size broadcasts: it leaves its term, and its index
        # lives on in the operands that have it whole
        thin = tuple(a for a, c in enumerate(t) if o.shape[a] == 1 and sizes[c] != 1)
        if thin:
            ops[i] = squeeze(o, axis=thin)
            terms[i] = "".join(c for a, c in enumerate(t) if a not in thin)
    # Sum out indices that appear in one operand only and not in the output.
    for i, (t, o) in enumerate(zip(terms, ops)):
        others = "".join(terms[:i] + terms[i + 1 :]) + output
        lone = tuple(a for a, c in enumerate(t) if c not in others)
        if lone:
            ops[i], terms[i] = sum(o, axis=lone), "".join(c for c in t if c in others)
    while len(ops) > 1:
        (a, ta), (b, tb) = (ops.pop(0), terms.pop(0)), (ops.pop(0), terms.pop(0))
        rest = "".join(terms) + output
        batch = [c for c in ta if c in tb and c in rest]
        contract = [c for c in ta if c in tb and c not in rest]
        free_a = [c for c in ta if c not in tb]
        free_b = [c for c in tb if c not in ta]
        am = transpose(a, [ta.index(c) for c in batch + free_a + contract])
        bm = transpose(b, [tb.index(c) for c in batch + contract + free_b])
        nb, nfa, nc, nfb = (
            math.prod(sizes[c] for c in g) for g in (batch, free_a, contract, free_b)
        )
        prod = bind(P.matmul_p, reshape(am, (nb, nfa, nc)), reshape(bm, (nb, nc, nfb)))
        ops.insert(0, reshape(prod, tuple(sizes[c] for c in batch + free_a + free_b)))
        terms.insert(0, "".join(batch + free_a + free_b))
    (result,), (term,) = ops, terms
    extra = tuple(a for a, c in enumerate(term) if c not in output)
    if extra:
        result, term = sum(result, axis=extra), "".join(c for c in term if c in output)
    return transpose(result, [term.index(c) for c in output])


def _expand_ellipsis(subscripts, terms, operands) -> tuple[list[str], str]:
    """The terms with ``...`` spelled out in letters that no term names, and those letters
    (an operand with fewer unnamed axes takes the last ones: they align from the right)."""
    unused = [c for c in _LETTERS if c not in subscripts]
    widths = []
    for i, (t, o) in enumerate(zip(terms, operands)):
        named = t.replace("...", "", 1)
        if any(c not in _LETTERS for c in named):
            raise InvalidArgumentError(
                f"einsum: term {t!r} of {subscripts!r}: name axes with the letters a-z and A-Z, "
                "and the leading others with one '...'"
            )
        width = o.ndim - len(named)
        if width < 0 or width and "..." not in t:
            raise ShapeError(
                f"einsum: term {t!r} names {len(named)} axes but operand {i} has shape "
                f"{o.shape}" + ("" if "..." in t else "; name each axis, or use '...'")
            )
        widths.append(width)
    ellipsis = "".join(unused[: builtins.max(widths, default=0)])
    expanded = [t.replace("...", ellipsis[len(ellipsis) - w :], 1) for t, w in zip(terms, widths)]
    return expanded, ellipsis


def _diagonals(subscripts, x, term) -> tuple[Tensor, str]:
    """``x`` with each index repeated in ``term`` reduced to its diagonal (a last axis)."""
    for c in dict.fromkeys(term):
        axes = [a for a, d in enumerate(term) if d == c]
        if len(axes) == 1:
            continue
        n = x.shape[axes[0]]
        if any(x.shape[a] != n for a in axes):
            raise ShapeError(
                f"einsum: index {c!r} repeats in term {term!r} of {subscripts!r} over axes of "
                f"sizes {[x.shape[a] for a in axes]}; a diagonal needs them equal"
            )
        rest = [a for a in range(x.ndim) if a not in axes]
        flat = reshape(
            transpose(x, rest + axes), tuple(x.shape[a] for a in rest) + (n ** len(axes),)
        )
        # element (i, i, ..., i) of the flattened block sits at i * (1 + n + n^2 + ...)
        step = builtins.sum(n**k for k in range(len(axes)))
        starts = (0,) * flat.ndim
        steps = (1,) * (flat.ndim - 1) + (step,)
        x = bind(P.slice_p, flat, starts=starts, stops=flat.shape, steps=steps)
        term = "".join(term[a] for a in rest) + c
    return x, term


def _index_sizes(subscripts, terms, operands) -> dict:
    """The size of each index: equal wherever it appears, or 1 there (broadcast)."""
    sizes = {}
    for i, (t, o) in enumerate(zip(terms, operands)):
        for c, d in zip(t, o.shape):
            known = sizes.setdefault(c, d)
            if d != known and 1 not in (d, known):
                raise ShapeError(
                    f"einsum: index {c!r} of {subscripts!r} has size {known} in one operand and "
                    f"{d} in operand {i}; make them equal, or one of them 1 (broadcast)"
                )
            sizes[c] = d if known == 1 else known  # 1 against 0 broadcasts to 0
    return sizes


def norm(x, p="fro", dim=None, keepdim: bool = False) -> Tensor:
    """PyTorch's norm: the vector ``p``-norm over ``dim`` (all elements by default; ``"fro"``
    is p=2, ``inf``/``-inf`` the largest/smallest magnitude, 0 the count of non-zeros). At a
    zero vector the 2-norm's gradient is 0, as in PyTorch (sqrt' is infinite there).

    >>> fx.norm(fx.tensor([3.0, 4.0]))
    5.0:f32[]:cpu(0)
    """
    from fluxion.ops.elementwise import _floating, abs, sqrt, where
    from fluxion.ops.reduction import amax, amin

    x = _floating(x)
    if p == "fro":
        p = 2
    if isinstance(p, str) or not isinstance(p, int | float):
        raise InvalidArgumentError(f"norm: p must be a number, 'fro', or +-inf, got {p!r}")
    a = abs(x)
    if p == math.inf:
        return amax(a, dim, keepdim)
    if p == -math.inf:
        return amin(a, dim, keepdim)
    if p == 0:
        return sum(astype(a != 0, x._np_dtype), dim, keepdim)
    if p == 1:
        return sum(a, dim, keepdim)
    if p == 2:
        squares = sum(x * x, dim, keepdim)
        nonzero = squares != 0
        return where(nonzero, sqrt(where(nonzero, squares, 1.0)), 0.0)
    return sum(a**p, dim, keepdim) ** (1.0 / p)
