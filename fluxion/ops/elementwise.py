"""Elementwise ops: NumPy names and semantics, with JAX's dtype promotion.

Composites here (sigmoid, relu, gelu, clip, logical ops...) carry no rules: their
derivatives and batching come from the primitives they are made of.
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.core import dtypes
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.errors import DTypeError, InvalidArgumentError, ShapeError
from fluxion.ops import primitives as P
from fluxion.ops.inspection import check_device


def astype(x, dtype, *, copy: bool = True, device=None) -> Tensor:
    """Cast to ``dtype`` (``fx.float32``, ``"int64"``, ``np.float16``...). Tensors are
    values, so ``copy=False`` (the array API's) returns ``x`` itself where the dtype is its.

    >>> fx.astype(fx.tensor([1.7, -1.7]), fx.int32)
    [ 1 -1]:i32[2]:cpu(0)
    """
    check_device("astype", device)
    x = to_tensor(x)
    try:
        np_dtype = dtypes.to_np(dtype)
    except DTypeError as e:
        raise DTypeError(f"astype: {e}") from None
    if x._np_dtype in dtypes.COMPLEX and np_dtype not in dtypes.COMPLEX and np_dtype != dtypes.BOOL:
        raise DTypeError(
            f"astype: casting {x.dtype} to {dtypes.to_dtype(np_dtype)} would drop the imaginary "
            "part (the array API does not allow it); take fx.real(x) or fx.abs(x) first"
        )
    return x if x._np_dtype == np_dtype else bind(P.convert_p, x, dtype=np_dtype)


cast = astype


def clone(x) -> Tensor:
    """A copy of ``x`` (PyTorch's clone): a new tensor whose gradient passes through unchanged."""
    x = to_tensor(x)
    return bind(P.convert_p, x, dtype=x._np_dtype)


def _promoted(x, y) -> tuple[Tensor, Tensor]:
    """Both operands as tensors of their promoted dtype (Python scalars are weak)."""
    if isinstance(x, Tensor) and isinstance(y, Tensor):
        if x._np_dtype == y._np_dtype:
            return x, y
        if x._weak != y._weak:  # a Python scalar traced by jit still promotes like one
            weak, strong = (x, y) if x._weak else (y, x)
            dtype = dtypes.weak_scalar_dtype(
                (False, 0, 0.0, 0j)[dtypes.kind(weak._np_dtype)], strong._np_dtype
            )
        else:
            dtype = dtypes.promote(x._np_dtype, y._np_dtype)
    elif isinstance(x, Tensor) and isinstance(y, bool | int | float | complex):
        dtype = dtypes.weak_scalar_dtype(y, x._np_dtype)
        return _widened(x, dtype), P.constant(y, dtype)
    elif isinstance(y, Tensor) and isinstance(x, bool | int | float | complex):
        dtype = dtypes.weak_scalar_dtype(x, y._np_dtype)
        return P.constant(x, dtype), _widened(y, dtype)
    else:
        x, y = to_tensor(x), to_tensor(y)
        dtype = dtypes.promote(x._np_dtype, y._np_dtype)
    return _widened(x, dtype), _widened(y, dtype)


def _widened(x: Tensor, np_dtype) -> Tensor:
    """``x`` cast up to the dtype promotion gave (astype's checks cannot fail here)."""
    return x if x._np_dtype == np_dtype else bind(P.convert_p, x, dtype=np_dtype)


def _floating(x) -> Tensor:
    x = to_tensor(x)
    return x if dtypes.is_inexact(x._np_dtype) else astype(x, dtypes.DEFAULT_FLOAT)


def _unary_float(prim, doc):
    def op(x) -> Tensor:
        return bind(prim, _floating(x))

    op.__name__, op.__doc__ = prim.name, doc
    return op


def _broadcast_check(name, *xs, names=("x", "y")):
    """Raise the ShapeError of ``xs`` not broadcasting under the public op's ``name``.

    Called after a primitive failed, so that ``fx.subtract`` says ``subtract:`` rather
    than the primitive's ``sub:``; costs nothing when the op succeeds."""
    try:
        P.broadcast_shapes(name, *[x.shape for x in xs], names=names)
    except ShapeError as e:
        raise e from None


def _binary(prim, name, doc, floating=False, integer=False):
    def op(x, y) -> Tensor:
        x, y = _promoted(x, y)
        if floating and not dtypes.is_inexact(x._np_dtype):
            x, y = astype(x, dtypes.DEFAULT_FLOAT), astype(y, dtypes.DEFAULT_FLOAT)
        if integer and dtypes.is_float(x._np_dtype):
            raise DTypeError(
                f"{name}: needs bool or integer arguments, got {x.dtype} (x) and {y.dtype} (y); "
                f"use logical_{name.split('_')[1]} for truth values, or cast with .astype(fx.int64)"
            )
        try:
            return bind(prim, x, y)
        except ShapeError:
            _broadcast_check(name, x, y)
            raise

    op.__name__, op.__doc__ = name, doc
    return op


exp = _unary_float(P.exp_p, "e**x elementwise. ``fx.exp(fx.tensor(0.0))`` is ``1.0``.")
log = _unary_float(P.log_p, "Natural logarithm. ``fx.log(fx.tensor(1.0))`` is ``0.0``.")
log1p = _unary_float(P.log1p_p, "log(1 + x), accurate for small x.")
expm1 = _unary_float(P.expm1_p, "exp(x) - 1, accurate for small x.")
sin = _unary_float(P.sin_p, "Sine (radians).")
cos = _unary_float(P.cos_p, "Cosine (radians).")
tanh = _unary_float(P.tanh_p, "Hyperbolic tangent.")
sqrt = _unary_float(P.sqrt_p, "Square root. ``fx.sqrt(fx.tensor(4.0))`` is ``2.0``.")
erf = _unary_float(P.erf_p, "The error function.")


def _rounding(prim, doc, bools=True):
    """floor/ceil/round: integers are whole already and come back as they are (as in NumPy
    and JAX); so do bools, except for round, which JAX refuses them."""

    def op(x) -> Tensor:
        x = to_tensor(x)
        if x._np_dtype == dtypes.BOOL and not bools:
            raise DTypeError(
                f"{prim.name}: needs a numeric argument, got bool; cast with .astype(fx.int64)"
            )
        return bind(prim, x) if dtypes.is_inexact(x._np_dtype) else x  # complex: refused

    op.__name__, op.__doc__ = prim.name, doc
    return op


floor = _rounding(P.floor_p, "Round down (integers stay as they are); its gradient is zero.")
ceil = _rounding(P.ceil_p, "Round up (integers stay as they are); its gradient is zero.")
round = _rounding(
    P.round_p,
    "Round half to even, like NumPy (integers stay as they are); its gradient is zero.",
    bools=False,
)

add = _binary(P.add_p, "add", "x + y with broadcasting. ``fx.add(fx.ones(2), 1)`` is ``[2. 2.]``.")
subtract = _binary(P.sub_p, "subtract", "x - y with broadcasting.")
multiply = _binary(P.mul_p, "multiply", "x * y with broadcasting.")
divide = _binary(P.div_p, "divide", "True division; integers divide as floats.", floating=True)
true_divide = divide
_power = _binary(P.pow_p, "power", "x ** y elementwise.")


def power(x, y) -> Tensor:
    """x ** y elementwise. A Python-number exponent is a constant of the op (no derivative
    in it is ever formed); with a tensor exponent, d/dy = x**y log x is NaN where x < 0."""
    if isinstance(y, int | float) and not isinstance(x, int | float):
        x, _ = _promoted(x, y)
        return bind(P.pow_scalar_p, x, exponent=y)
    return _power(x, y)


pow = power
maximum = _binary(P.max_p, "maximum", "Elementwise maximum (ties share the gradient).")
minimum = _binary(P.min_p, "minimum", "Elementwise minimum (ties share the gradient).")
remainder = _binary(P.rem_p, "remainder", "x % y with the sign of y, like Python and NumPy.")
mod = remainder
floor_divide = _binary(P.floor_divide_p, "floor_divide", "x // y, like Python and NumPy.")
equal = _binary(P.eq_p, "equal", "x == y elementwise (bool).")
not_equal = _binary(P.ne_p, "not_equal", "x != y elementwise (bool).")
less = _binary(P.lt_p, "less", "x < y elementwise (bool).")
less_equal = _binary(P.le_p, "less_equal", "x <= y elementwise (bool).")
greater = _binary(P.gt_p, "greater", "x > y elementwise (bool).")
greater_equal = _binary(P.ge_p, "greater_equal", "x >= y elementwise (bool).")
bitwise_and = _binary(P.and_p, "bitwise_and", "x & y on bools and integers.", integer=True)
bitwise_or = _binary(P.or_p, "bitwise_or", "x | y on bools and integers.", integer=True)
bitwise_xor = _binary(P.xor_p, "bitwise_xor", "x ^ y on bools and integers.", integer=True)


def negative(x) -> Tensor:
    """-x."""
    return bind(P.neg_p, to_tensor(x))


def abs(x) -> Tensor:
    """|x|; the gradient at 0 is 0."""
    return bind(P.abs_p, to_tensor(x))


def sign(x) -> Tensor:
    """-1, 0 or 1 by the sign of x; its gradient is zero."""
    return bind(P.sign_p, to_tensor(x))


def invert(x) -> Tensor:
    """~x: logical not on bools, bitwise not on integers."""
    x = to_tensor(x)
    if dtypes.is_float(x._np_dtype):
        raise DTypeError(
            f"invert: needs a bool or integer tensor, got {x.dtype}; use logical_not for "
            "truth values, or cast with .astype(fx.int64)"
        )
    return bind(P.invert_p, x)


def where(condition, x, y) -> Tensor:
    """Pick from ``x`` where ``condition`` holds, else from ``y`` (broadcasting).

    >>> fx.where(fx.tensor([True, False]), 1.0, fx.tensor([5.0, 6.0]))
    [1. 6.]:f32[2]:cpu(0)
    """
    condition = astype(condition, bool)
    x, y = _promoted(x, y)
    return bind(P.select_p, condition, x, y)


def stop_gradient(x) -> Tensor:
    """The value of ``x``, through which no gradient flows (``detach``)."""
    return bind(P.stop_gradient_p, to_tensor(x))


# ----------------------------------------------------------------------------- composites


def rsqrt(x) -> Tensor:
    """1 / sqrt(x)."""
    return 1.0 / sqrt(x)


def square(x) -> Tensor:
    """x * x."""
    x = to_tensor(x)
    return x * x


def reciprocal(x) -> Tensor:
    """1 / x."""
    return 1.0 / _floating(x)


def _minus_abs(x: Tensor, nonnegative: Tensor) -> Tensor:
    """-|x| for the stable formulas that branch on ``nonnegative`` (x >= 0): -x there, x
    elsewhere, so that each branch differentiates as its own smooth formula (abs' is 0 at
    0, which would make sigmoid'(0) 0 rather than 1/4)."""
    return where(nonnegative, -x, x)


def sigmoid(x) -> Tensor:
    """1 / (1 + exp(-x)), written so that no branch overflows."""
    x = _floating(x)
    nonnegative = x >= 0
    e = exp(_minus_abs(x, nonnegative))
    return where(nonnegative, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x) -> Tensor:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), which never overflows."""
    x = _floating(x)
    nonnegative = x >= 0
    return where(nonnegative, x, 0.0) + log1p(exp(_minus_abs(x, nonnegative)))


def relu(x) -> Tensor:
    """max(x, 0); the gradient at 0 is 0, as in PyTorch, and NaN stays NaN."""
    x = to_tensor(x)
    return where(x <= 0, 0, x)


def silu(x) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    x = _floating(x)
    return x * sigmoid(x)


def gelu(x, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit: exact (``"none"``, with erf) or the ``"tanh"`` form."""
    x = _floating(x)
    if approximate == "tanh":
        return 0.5 * x * (1.0 + tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise InvalidArgumentError(
            f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}"
        )
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))


def trunc(x) -> Tensor:
    """Round towards zero (integers stay as they are); its gradient is zero."""
    x = to_tensor(x)
    if not dtypes.is_inexact(x._np_dtype):
        return x
    return where(floor(x) < 0, ceil(x), floor(x))  # floor first: it refuses complex


def clip(x, min=None, max=None) -> Tensor:
    """Limit x to [min, max]; the gradient passes where min <= x <= max, as in PyTorch
    (so not at a NaN, which stays NaN)."""
    x = to_tensor(x)
    if dtypes.is_float(x._np_dtype):
        x = where(x != x, stop_gradient(x), x)
    try:
        if min is not None:
            x = where(x < min, min, x)
        if max is not None:
            x = where(x > max, max, x)
    except ShapeError:
        bounds = [to_tensor(b) for b in (min, max) if b is not None]
        _broadcast_check("clip", x, *bounds, names=("x", "min", "max")[: 1 + len(bounds)])
        raise
    return x


clamp = clip


def logical_not(x) -> Tensor:
    return invert(astype(x, bool))


def _logical(op, name, x, y) -> Tensor:
    x, y = astype(x, bool), astype(y, bool)
    try:
        return op(x, y)
    except ShapeError:
        _broadcast_check(name, x, y)
        raise


def logical_and(x, y) -> Tensor:
    """Truth of x and y (nonzero is true), as bool."""
    return _logical(bitwise_and, "logical_and", x, y)


def logical_or(x, y) -> Tensor:
    """Truth of x or y (nonzero is true), as bool."""
    return _logical(bitwise_or, "logical_or", x, y)


def logical_xor(x, y) -> Tensor:
    """Truth of exactly one of x and y (nonzero is true), as bool."""
    return _logical(bitwise_xor, "logical_xor", x, y)


def isnan(x) -> Tensor:
    x = to_tensor(x)
    return x != x


def isinf(x) -> Tensor:
    x = to_tensor(x)
    if not dtypes.is_float(x._np_dtype):
        return x != x  # integers are never infinite
    return abs(x) == np.inf


def isfinite(x) -> Tensor:
    return logical_not(logical_or(isnan(x), isinf(x)))


# ----------------------------------------------------------------------------- the array API's

tan = _unary_float(P.tan_p, "Tangent (radians).")
sinh = _unary_float(P.sinh_p, "Hyperbolic sine.")
cosh = _unary_float(P.cosh_p, "Hyperbolic cosine.")
asin = _unary_float(P.asin_p, "Inverse sine, in [-pi/2, pi/2]; NaN outside [-1, 1].")
acos = _unary_float(P.acos_p, "Inverse cosine, in [0, pi]; NaN outside [-1, 1].")
atan = _unary_float(P.atan_p, "Inverse tangent, in [-pi/2, pi/2].")
asinh = _unary_float(P.asinh_p, "Inverse hyperbolic sine.")
acosh = _unary_float(P.acosh_p, "Inverse hyperbolic cosine; NaN below 1.")
atanh = _unary_float(P.atanh_p, "Inverse hyperbolic tangent; +-inf at +-1.")
log2 = _unary_float(P.log2_p, "Base-2 logarithm. ``fx.log2(fx.tensor(8.0))`` is ``3.0``.")
log10 = _unary_float(P.log10_p, "Base-10 logarithm.")
arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh
atan2 = _binary(
    P.atan2_p, "atan2", "The angle of the point (x2, y=x1): ``atan2(y, x)``.", floating=True
)
arctan2 = atan2
hypot = _binary(P.hypot_p, "hypot", "sqrt(x**2 + y**2), without overflow.", floating=True)
nextafter = _binary(
    P.nextafter_p, "nextafter", "The next float after x towards y; its gradient is zero."
)
bitwise_left_shift = _binary(P.left_shift_p, "bitwise_left_shift", "x << y on integers.")
bitwise_right_shift = _binary(
    P.right_shift_p, "bitwise_right_shift", "x >> y on integers (arithmetic for signed ones)."
)
bitwise_invert = invert


def signbit(x) -> Tensor:
    """Whether the sign bit is set (True for -0.0 and -inf), as bool."""
    x = to_tensor(x)
    if x._np_dtype in dtypes.INTEGERS or x._np_dtype == dtypes.BOOL:
        return x < 0
    return bind(P.signbit_p, x)


def copysign(x, y) -> Tensor:
    """|x| with the sign (bit) of y."""
    x, y = _promoted(x, y)
    x, y = _floating(x), _floating(y)
    return where(signbit(x) != signbit(y), -x, x)


def logaddexp(x, y) -> Tensor:
    """log(exp(x) + exp(y)), which never overflows (equal infinities give themselves)."""
    x, y = _promoted(x, y)
    x, y = _floating(x), _floating(y)
    big = maximum(x, y)
    both_inf = isinf(x) & (x == y)
    gap = where(both_inf, 0.0, x - y)  # no inf - inf
    return where(both_inf, x, big + log1p(exp(-abs(gap))))


def positive(x) -> Tensor:
    """+x: x itself (a number, not a bool)."""
    x = to_tensor(x)
    if x._np_dtype == dtypes.BOOL:
        raise DTypeError("positive: needs a numeric argument, got bool")
    return x


def real(x) -> Tensor:
    """The real part of a complex tensor; a real tensor as it is."""
    x = to_tensor(x)
    return bind(P.real_p, x) if x._np_dtype in dtypes.COMPLEX else x


def imag(x) -> Tensor:
    """The imaginary part of a complex tensor; zeros for a real one."""
    x = to_tensor(x)
    if x._np_dtype in dtypes.COMPLEX:
        return bind(P.imag_p, x)
    return P.zeros(x.shape, x._np_dtype)


def conj(x) -> Tensor:
    """The complex conjugate; a real tensor as it is."""
    x = to_tensor(x)
    return bind(P.conj_p, x) if x._np_dtype in dtypes.COMPLEX else x


def angle(x) -> Tensor:
    """The argument of each complex number, in [-pi, pi] (NumPy's ``np.angle``: 0 or pi
    for a real one); differentiable away from 0 through atan2, real and imag."""
    x = to_tensor(x)
    return atan2(imag(x), real(x))
