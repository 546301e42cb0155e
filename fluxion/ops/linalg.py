"""Linear algebra: matmul is the primitive; dot, einsum, tensordot and outer are composites."""

from __future__ import annotations

import functools
import math

from fluxion.core import dtypes
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.errors import AxisError, DTypeError, InvalidArgumentError, ShapeError
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import _promoted, astype, multiply
from fluxion.ops.reduction import sum
from fluxion.ops.shape import expand_dims, reshape, squeeze, transpose


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


def tensordot(x, y, axes=2) -> Tensor:
    """Sum products over ``axes`` (an int: the last n of x with the first n of y; or two lists)."""
    x, y = _promoted(x, y)
    if isinstance(axes, int):
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
    xm = reshape(transpose(x, free_x + ax), (-1, k))
    ym = reshape(transpose(y, ay + free_y), (k, -1))
    return reshape(
        bind(P.matmul_p, xm, ym),
        tuple(x.shape[a] for a in free_x) + tuple(y.shape[b] for b in free_y),
    )


def einsum(subscripts: str, *operands) -> Tensor:
    """Einstein summation over one or more operands (``"bij,bjk->bik"``), lowered to
    transposes, reshapes, sums and batched matmuls. Repeated indices within one operand
    (diagonals) are not supported."""
    operands = [to_tensor(o) for o in operands]
    dtype = functools.reduce(dtypes.promote, [o._np_dtype for o in operands])
    operands = [astype(o, dtype) for o in operands]
    if "->" in subscripts:
        inputs, output = subscripts.replace(" ", "").split("->")
    else:
        inputs = subscripts.replace(" ", "")
        letters = inputs.replace(",", "")
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    terms = inputs.split(",")
    letters = "".join(terms)
    for c in output:
        if c not in letters or output.count(c) > 1:
            raise InvalidArgumentError(
                f"einsum: output index {c!r} of {subscripts!r} "
                + ("appears twice" if output.count(c) > 1 else "is not in any input term")
                + "; name each output index once, from the inputs"
            )
    if len(terms) != len(operands):
        raise InvalidArgumentError(
            f"einsum: {subscripts!r} names {len(terms)} operands but {len(operands)} were given"
        )
    for t, o in zip(terms, operands):
        if "." in t:
            raise InvalidArgumentError("einsum: ellipsis ('...') is not supported; name every axis")
        if len(t) != o.ndim:
            raise ShapeError(
                f"einsum: term {t!r} names {len(t)} axes but its operand has shape {o.shape}"
            )
        if len(set(t)) != len(t):
            raise InvalidArgumentError(
                f"einsum: repeated index in {t!r} (diagonals) is not supported"
            )
    sizes = {}
    for t, o in zip(terms, operands):
        for c, d in zip(t, o.shape):
            if sizes.setdefault(c, d) != d:
                raise ShapeError(
                    f"einsum: index {c!r} has size {sizes[c]} in one operand and {d} in another"
                )
    terms = list(terms)
    ops = list(operands)
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
