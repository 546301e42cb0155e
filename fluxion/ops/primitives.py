"""Every primitive of fluxion, each in one block with all of its rules.

Conventions (STYLE.md points 1-3): arrays are positional, params keyword-only and
hashable; public wrappers (``fluxion.ops.*``) normalise params and dtypes, so rules
may assume equal dtypes and in-range, sorted, non-negative axes. Rules use fluxion
ops (Tensor operators and the small binders below), so they can be differentiated
again, batched and traced. ``xp`` is the backend's array module (NumPy's API).
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.backends import cpu
from fluxion.core.checks import check_axes, check_axis
from fluxion.core.dtypes import (
    BOOL,
    COMPLEX,
    DEFAULT_INT,
    FLOATS,
    INTEGERS,
    LOW_FLOATS,
    is_inexact,
    real_for,
)
from fluxion.core.primitive import NOT_DIFFERENTIABLE, PRIMITIVES, Primitive, ShapedArray
from fluxion.core.tensor import Tensor
from fluxion.core.trace import bind
from fluxion.errors import (
    AxisError,
    DTypeError,
    IndexOutOfRangeError,
    ShapeError,
)

# ----------------------------------------------------------------------------- shared helpers


def constant(value, dtype) -> Tensor:
    return Tensor._from_array(np.asarray(value, dtype=dtype))


def zeros(shape, dtype) -> Tensor:
    return Tensor._from_array(np.zeros(shape, dtype))


def broadcast_shapes(op: str, *shapes, names=None) -> tuple:
    """NumPy broadcasting of ``shapes``; a ShapeError naming the arguments otherwise."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(-ndim, 0):
        dims = {s[i] for s in shapes if len(s) >= -i} - {1}
        if len(dims) > 1:
            names = names or [f"argument {k}" for k in range(len(shapes))]
            listing = " and ".join(f"{tuple(s)} ({n})" for s, n in zip(shapes, names))
            raise ShapeError(
                f"{op}: cannot broadcast shapes {listing}: dimension {i} is "
                f"{' vs '.join(str(s[i]) if len(s) >= -i else '-' for s in shapes)}; "
                "make those dimensions equal or 1 (reshape or expand_dims)"
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _same_dtypes(op, avals, names):
    dts = {a.dtype for a in avals}
    if len(dts) > 1:
        listing = ", ".join(f"{n}: {a.dtype}" for a, n in zip(avals, names))
        raise DTypeError(f"{op}: arguments must share one dtype ({listing}); cast with .astype")
    return avals[0].dtype


def unbroadcast(ct: Tensor, shape: tuple) -> Tensor:
    """Sum ``ct`` down to ``shape``: the transpose of broadcasting."""
    if ct.shape == shape:
        return ct
    lead = ct.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and ct.shape[lead + i] != 1
    )
    summed = bind(reduce_sum_p, ct, axes=axes) if axes else ct
    return bind(reshape_p, summed, shape=shape) if summed.shape != shape else summed


def moveaxis_to_front(x: Tensor, dim: int) -> Tensor:
    if dim == 0:
        return x
    perm = (dim,) + tuple(i for i in range(x.ndim) if i != dim)
    return bind(transpose_p, x, perm=perm)


def batch_size(args, dims) -> int:
    return next(a.shape[d] for a, d in zip(args, dims) if d is not None)


def all_batched(args, dims):
    """Every argument with its batch dimension first (unbatched ones broadcast)."""
    size = batch_size(args, dims)
    out = []
    for a, d in zip(args, dims):
        if d is None:
            a = bind(broadcast_to_p, a, shape=(size,) + a.shape)
        out.append(moveaxis_to_front(a, d) if d else a)
    return out


def _batch_broadcasting(name):
    """vmap rule of an op that broadcasts its arguments NumPy-style (elementwise, matmul)."""

    def rule(args, dims, **params):
        rank = max(a.ndim - (d is not None) for a, d in zip(args, dims))
        moved = []
        for a, d in zip(args, dims):
            if d is not None:
                a = moveaxis_to_front(a, d)
                pad = rank - (a.ndim - 1)
                if pad:
                    a = bind(reshape_p, a, shape=a.shape[:1] + (1,) * pad + a.shape[1:])
            moved.append(a)
        return bind(PRIMITIVES[name], *moved, **params), 0

    return rule


def _batch_front(name, shift):
    """vmap rule for a unary op whose params name axes: batch goes first, axes shift by one."""

    def rule(args, dims, **params):
        (x,), (d,) = args, dims
        return bind(PRIMITIVES[name], moveaxis_to_front(x, d), **shift(params)), 0

    return rule


def _shift_axes(params):
    return params | {"axes": tuple(a + 1 for a in params["axes"])}


def _shift_axis(params):
    return params | {"axis": params["axis"] + 1}


# ----------------------------------------------------------------------------- elementwise unary


# the dtypes an elementwise op takes, and how its error names them
_ANY = None
_FLOATING = (FLOATS, "a real floating-point")
_INEXACT = (FLOATS | COMPLEX, "a floating-point or complex")
_NUMBERS = (
    FLOATS | INTEGERS | COMPLEX,
    "a numeric (not bool)",
)  # NumPy refuses -x, sign(x) on bools
_BITWISE = (INTEGERS | {BOOL}, "a bool or integer")  # NumPy's and C's bitwise ops refuse floats


def _check_kind(op, dtype, takes):
    if takes is not _ANY and dtype not in takes[0]:
        raise DTypeError(f"{op}: needs {takes[1]} argument, got {dtype}")


def _unary_aval(op, takes, out_dtype=None):
    def rule(x, **_):
        _check_kind(op, x.dtype, takes)
        return x if out_dtype is None else ShapedArray(x.shape, out_dtype(x.dtype))

    return rule


def ufunc_rules(kernel):
    """``(impl, emit)`` of an elementwise op: a NumPy ufunc name gives both (codegen calls
    it directly, into a reused buffer); a function is an impl that codegen calls as is."""
    if callable(kernel):
        return kernel, None
    return (lambda xp, *arrays: getattr(xp, kernel)(*arrays)), f"xp.{kernel}({{args}}{{out}})"


def unary(name, kernel, deriv, c_expr, takes=_INEXACT, out_dtype=None):
    """An elementwise unary primitive; ``kernel`` a ufunc name or an impl; ``deriv(x, y)``
    is dy/dx written with fluxion ops (``None`` for piecewise-constant ops: zero gradient);
    ``c_expr`` the op in C (C's <tgmath.h> names are type-generic: ``exp`` is ``expf`` on
    float32); ``out_dtype(dtype)`` the result's dtype where it is not the argument's."""
    impl, emit = ufunc_rules(kernel)

    def jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        y = bind(PRIMITIVES[name], x)
        dy = t * deriv(x, y)
        # from complex to real (abs, real, imag): the real part, JAX's R-linear tangent
        return y, bind(real_p, dy) if dy._np_dtype in COMPLEX and y._np_dtype not in COMPLEX else dy

    def vjp(ct, primals, outputs):
        (x,), (y,) = primals, outputs
        return (ct * deriv(x, y),)

    return Primitive(
        name,
        impl=impl,
        abstract=_unary_aval(name, takes, out_dtype),
        jvp=NOT_DIFFERENTIABLE if deriv is None else jvp,
        vjp=NOT_DIFFERENTIABLE if deriv is None else vjp,
        batch=_batch_broadcasting(name),
        emit=emit,
        elementwise=True,
        c_expr=c_expr,
    )


# erf(x) ~ x P(x^2) / Q(x^2) on [-4, 4] (erf is +-1 to float32 precision beyond): the
# rational fit XLA uses for float32; max error 4.2e-7 against math.erf (tests/test_ops_forward).
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)  # fmt: skip
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)  # fmt: skip


def _erf_impl(xp, x):
    if x.dtype == np.float64:  # exact to the last bit, where precision is asked for
        return _erf_exact(x)
    z = xp.clip(x.astype(np.float32, copy=False), -4.0, 4.0)
    z2 = z * z
    p, q = z2 * _ERF_P[0], z2 * _ERF_Q[0]  # Horner's rule from the leading coefficient
    for c in _ERF_P[1:-1]:
        p += c
        p *= z2
    for c in _ERF_Q[1:-1]:
        q += c
        q *= z2
    p += _ERF_P[-1]
    q += _ERF_Q[-1]
    p *= z
    p /= q
    return p.astype(x.dtype, copy=False)


_erf_exact = np.vectorize(math.erf, otypes=[np.float64])

neg_p = unary("neg", "negative", lambda x, y: -1.0, "(-{0})", takes=_NUMBERS)
exp_p = unary(
    "exp", "exp", lambda x, y: y, "fx_exp({0})"
)  # the prelude's: fast where it underflows
log_p = unary("log", "log", lambda x, y: 1.0 / x, "log({0})")
log1p_p = unary("log1p", "log1p", lambda x, y: 1.0 / (1.0 + x), "log1p({0})")


def _expm1_impl(xp, x):
    if x.dtype.kind != "c":
        return xp.expm1(x)
    # NumPy's complex expm1 loses C99's special values (expm1(inf + 0j) is inf + nanj) and
    # exp(z) - 1 cancels near 0; so: the accurate real and imaginary parts where z is
    # finite, exp(z) - 1 (which has C99's special values) elsewhere
    a, b = x.real, x.imag
    with np.errstate(all="ignore"):
        half = xp.sin(b / 2)
        near = (
            xp.expm1(a) * xp.cos(b)
            - 2 * half * half
            + 1j * xp.where(b == 0, b, xp.exp(a) * xp.sin(b))
        )
        far = xp.exp(x) - 1
    return xp.where(xp.isfinite(a) & xp.isfinite(b), near, far).astype(x.dtype)


expm1_p = unary("expm1", _expm1_impl, lambda x, y: y + 1.0, "expm1({0})")
sin_p = unary("sin", "sin", lambda x, y: bind(cos_p, x), "sin({0})")
cos_p = unary("cos", "cos", lambda x, y: -bind(sin_p, x), "cos({0})")


def _tanh_impl(xp, x):
    out = xp.tanh(x)
    if x.dtype.kind != "c":
        return out
    # tanh(+-inf + yj) for a finite y is +-1 with the imaginary zero's sign y's, as the array
    # API asks (NumPy's sign follows sin(2y))
    a, b = x.real, x.imag
    at_inf = xp.isinf(a) & xp.isfinite(b)
    limit = (xp.sign(a) + 1j * xp.copysign(xp.zeros_like(b), b)).astype(x.dtype)
    return xp.where(at_inf, limit, out)


tanh_p = unary("tanh", _tanh_impl, lambda x, y: 1.0 - y * y, "tanh({0})")
sqrt_p = unary("sqrt", "sqrt", lambda x, y: 0.5 / y, "sqrt({0})")
erf_p = unary(
    "erf",
    _erf_impl,
    lambda x, y: (2.0 / math.sqrt(math.pi)) * bind(exp_p, -(x * x)),
    "fx_erf({0})",  # the same fit, in the native kernels' prelude
    takes=_FLOATING,
)


def _abs_deriv(x, y):
    if x._np_dtype not in COMPLEX:
        return bind(sign_p, x)
    # d|x| = Re(conj(x) dx) / |x|: smooth away from 0 (so not conj(sign(x)), whose
    # derivative is 0); 0 at 0, as JAX
    safe = bind(select_p, y == 0, constant(1, y._np_dtype), y)
    return bind(conj_p, x) / bind(convert_p, safe, dtype=x._np_dtype)


abs_p = unary(
    "abs",
    "abs",
    lambda x, y: _abs_deriv(x, y),
    "_Generic({0}, float: fabsf({0}), double: fabs({0}), default: {0} < 0 ? -{0} : {0})",
    takes=_ANY,
    out_dtype=real_for,  # |z| of a complex z is real
)
sign_p = unary(
    "sign", "sign", None, "({0} > 0 ? 1 : {0} < 0 ? -1 : {0} == 0 ? 0 : {0})", takes=_NUMBERS
)  # 0 for -0.0, NaN for NaN, as NumPy
floor_p = unary("floor", "floor", None, "floor({0})", takes=_FLOATING)
ceil_p = unary("ceil", "ceil", None, "ceil({0})", takes=_FLOATING)
round_p = unary("round", "round", None, "nearbyint({0})", takes=_FLOATING)  # half to even
invert_p = unary(
    "invert", "invert", None, "_Generic({0}, _Bool: !{0}, default: ~{0})", takes=_BITWISE
)


# ----------------------------------------------------------------------------- elementwise binary


def _binary_aval(op, out_dtype, takes):
    def rule(x, y, **_):
        dtype = _same_dtypes(op, (x, y), ("x", "y"))
        _check_kind(op, dtype, takes)
        shape = broadcast_shapes(op, x.shape, y.shape, names=("x", "y"))
        return ShapedArray(shape, out_dtype or dtype)

    return rule


def binary(name, kernel, jvp, vjp, c_expr=None, out_dtype=None, takes=_ANY):
    """An elementwise binary primitive (NumPy broadcasting); ``kernel`` and ``c_expr`` as in
    ``unary`` (``c_expr=None``: no C twin of NumPy's semantics, groups stay on NumPy)."""
    impl, emit = ufunc_rules(kernel)
    return Primitive(
        name,
        impl=impl,
        abstract=_binary_aval(name, out_dtype, takes),
        jvp=jvp,
        vjp=vjp,
        batch=_batch_broadcasting(name),
        emit=emit,
        elementwise=True,
        c_expr=c_expr,
    )


def _linear_jvp(name):
    return lambda primals, tangents: (
        bind(PRIMITIVES[name], *primals),
        bind(PRIMITIVES[name], *tangents),
    )


def _add_vjp(ct, primals, outputs):
    x, y = primals
    return unbroadcast(ct, x.shape), unbroadcast(ct, y.shape)


def _sub_vjp(ct, primals, outputs):
    x, y = primals
    return unbroadcast(ct, x.shape), unbroadcast(-ct, y.shape)


def _mul_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    return x * y, tx * y + x * ty


def _mul_vjp(ct, primals, outputs):
    x, y = primals
    return unbroadcast(ct * y, x.shape), unbroadcast(ct * x, y.shape)


def _div_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = x / y
    return out, (tx - ty * out) / y


def _div_vjp(ct, primals, outputs):
    (x, y), (out,) = primals, outputs
    return unbroadcast(ct / y, x.shape), unbroadcast(-ct * out / y, y.shape)


def _pow_partials(x, y, out):
    # d/dx = y x^(y-1), 0 where y == 0. d/dy = x^y log x, as in PyTorch: NaN where x < 0;
    # at x == 0 its limit from x > 0, 0 where y >= 0 and -inf where y < 0 (log x is taken
    # as 0 and -inf there). log runs on a positive stand-in where x <= 0, and no 0 * -inf
    # is formed, so that no warning fires for the values chosen.
    dtype = x._np_dtype
    dx = bind(select_p, y == 0, constant(0, dtype), y * bind(pow_p, x, y - 1.0))
    if dtype in COMPLEX:  # log's principal branch; 0 where x == 0, as JAX
        return dx, out * bind(log_p, bind(select_p, x == 0, constant(1, dtype), x))
    positive = x > 0
    at_zero = bind(select_p, y >= 0, constant(0, dtype), constant(-np.inf, dtype))
    log_x = bind(
        select_p,
        positive,
        bind(log_p, bind(select_p, positive, x, constant(1, dtype))),
        bind(select_p, x == 0, at_zero, constant(np.nan, dtype)),
    )
    return dx, out * log_x


def _pow_jvp(primals, tangents):
    # A direction that leaves an argument still takes nothing from its partial, which is
    # NaN or inf where it does not exist (d/dy at x < 0): 0, not 0 * NaN. (Transforms hand
    # a constant exponent a zero tangent.)
    (x, y), (tx, ty) = primals, tangents
    out = bind(pow_p, x, y)
    zero = constant(0, x._np_dtype)
    dx, dy = (bind(select_p, t == 0, zero, d) for t, d in zip((tx, ty), _pow_partials(x, y, out)))
    return out, tx * dx + ty * dy


def _pow_vjp(ct, primals, outputs):
    (x, y), (out,) = primals, outputs
    dx, dy = _pow_partials(x, y, out)
    return unbroadcast(ct * dx, x.shape), unbroadcast(ct * dy, y.shape)


def _extremum(name, pick):
    """maximum/minimum: the gradient goes to the chosen argument, split evenly on ties."""

    def weights(x, y):
        chosen = pick(x, y).astype(x._np_dtype)
        tie = bind(eq_p, x, y).astype(x._np_dtype)
        return chosen + 0.5 * tie

    def jvp(primals, tangents):
        (x, y), (tx, ty) = primals, tangents
        wx = weights(x, y)
        return bind(PRIMITIVES[name], x, y), tx * wx + ty * (1.0 - wx)

    def vjp(ct, primals, outputs):
        x, y = primals
        wx = weights(x, y)
        return unbroadcast(ct * wx, x.shape), unbroadcast(ct * (1.0 - wx), y.shape)

    return jvp, vjp


def _rem_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    return bind(rem_p, x, y), tx - ty * bind(floor_divide_p, x, y)


def _rem_vjp(ct, primals, outputs):
    x, y = primals
    return unbroadcast(ct, x.shape), unbroadcast(-ct * bind(floor_divide_p, x, y), y.shape)


add_p = binary("add", "add", _linear_jvp("add"), _add_vjp, "({0} + {1})")
sub_p = binary("sub", "subtract", _linear_jvp("sub"), _sub_vjp, "({0} - {1})", takes=_NUMBERS)
mul_p = binary("mul", "multiply", _mul_jvp, _mul_vjp, "({0} * {1})")
div_p = binary("div", "divide", _div_jvp, _div_vjp, "({0} / {1})", takes=_INEXACT)
pow_p = binary("pow", "power", _pow_jvp, _pow_vjp)  # NumPy's integer powers raise on x ** -1


def _pow_scalar_aval(x, *, exponent):
    if x.dtype in INTEGERS and exponent < 0:
        raise DTypeError(
            f"power: an integer tensor ({x.dtype}) to the negative power {exponent} is not an "
            "integer; cast the tensor to a float dtype first"
        )
    return x


def _pow_scalar_partial(x, exponent):
    if exponent == 0:
        return zeros(x.shape, x._np_dtype)
    return exponent * bind(pow_scalar_p, x, exponent=exponent - 1)


# x ** c for a Python number c: the exponent is a param, so no derivative in it is formed
# (pow's d/dy is NaN where x < 0, which x ** 2 must not compute, as JAX's integer_pow)
pow_scalar_p = Primitive(
    "pow_scalar",
    impl=lambda xp, x, *, exponent: xp.power(x, np.asarray(exponent, x.dtype)),
    abstract=_pow_scalar_aval,
    jvp=lambda primals, tangents, *, exponent: (
        bind(pow_scalar_p, primals[0], exponent=exponent),
        tangents[0] * _pow_scalar_partial(primals[0], exponent),
    ),
    vjp=lambda ct, primals, outputs, *, exponent: (ct * _pow_scalar_partial(primals[0], exponent),),
    batch=_batch_broadcasting("pow_scalar"),
    elementwise=True,
)
# NaN wins, as in NumPy's maximum/minimum
max_p = binary(
    "max",
    "maximum",
    *_extremum("max", lambda x, y: x > y),
    "({0} != {0} || {0} > {1} ? {0} : {1})",
)
min_p = binary(
    "min",
    "minimum",
    *_extremum("min", lambda x, y: x < y),
    "({0} != {0} || {0} < {1} ? {0} : {1})",
)
rem_p = binary("rem", "remainder", _rem_jvp, _rem_vjp)  # floored: C's % and fmod truncate
floor_divide_p = binary("floor_divide", "floor_divide", NOT_DIFFERENTIABLE, NOT_DIFFERENTIABLE)
and_p = binary(
    "and", "bitwise_and", NOT_DIFFERENTIABLE, NOT_DIFFERENTIABLE, "({0} & {1})", takes=_BITWISE
)
or_p = binary(
    "or", "bitwise_or", NOT_DIFFERENTIABLE, NOT_DIFFERENTIABLE, "({0} | {1})", takes=_BITWISE
)
xor_p = binary(
    "xor", "bitwise_xor", NOT_DIFFERENTIABLE, NOT_DIFFERENTIABLE, "({0} ^ {1})", takes=_BITWISE
)


def compare(name, kernel, c_operator):
    c_expr = f"({{0}} {c_operator} {{1}})"
    return binary(name, kernel, NOT_DIFFERENTIABLE, NOT_DIFFERENTIABLE, c_expr, out_dtype=BOOL)


eq_p = compare("eq", "equal", "==")
ne_p = compare("ne", "not_equal", "!=")
lt_p = compare("lt", "less", "<")
le_p = compare("le", "less_equal", "<=")
gt_p = compare("gt", "greater", ">")
ge_p = compare("ge", "greater_equal", ">=")


# ----------------------------------------------------------------------------- select, convert


def _select_aval(c, x, y):
    if c.dtype != BOOL:
        raise DTypeError(f"where: the condition must be bool, got {c.dtype}; compare first (x > 0)")
    dtype = _same_dtypes("where", (x, y), ("x", "y"))
    return ShapedArray(
        broadcast_shapes("where", c.shape, x.shape, y.shape, names=("condition", "x", "y")), dtype
    )


def _select_vjp(ct, primals, outputs):
    c, x, y = primals
    zero = constant(0, ct._np_dtype)
    return (
        None,
        unbroadcast(bind(select_p, c, ct, zero), x.shape),
        unbroadcast(bind(select_p, c, zero, ct), y.shape),
    )


select_p = Primitive(
    "select",
    impl=lambda xp, c, x, y: xp.where(c, x, y),
    abstract=_select_aval,
    jvp=lambda primals, tangents: (
        bind(select_p, *primals),
        bind(select_p, primals[0], *tangents[1:]),
    ),
    vjp=_select_vjp,
    batch=_batch_broadcasting("select"),
    elementwise=True,
    c_expr="({0} ? {1} : {2})",
)


def _convert_jvp(primals, tangents, *, dtype):
    (x,), (t,) = primals, tangents
    out = bind(convert_p, x, dtype=dtype)
    if not is_inexact(dtype):
        return out, None
    return out, bind(convert_p, t, dtype=dtype) if t is not None else zeros(x.shape, dtype)


def _convert_vjp(ct, primals, outputs, *, dtype):
    (x,) = primals
    if not is_inexact(x._np_dtype):
        return (None,)
    if ct._np_dtype in COMPLEX and x._np_dtype not in COMPLEX:  # JAX's transpose: the real part
        ct = bind(real_p, ct)
    return (bind(convert_p, ct, dtype=x._np_dtype),)


convert_p = Primitive(
    "convert",
    impl=lambda xp, x, *, dtype: x.astype(dtype),
    emit="{args}.astype({dtype})",
    abstract=lambda x, *, dtype: ShapedArray(x.shape, dtype),
    jvp=_convert_jvp,
    vjp=_convert_vjp,
    batch=lambda args, dims, *, dtype: (bind(convert_p, args[0], dtype=dtype), dims[0]),
    elementwise=True,
    c_expr="(({dtype}){0})",  # C's casts are NumPy's: truncating, x != 0 to bool
)

stop_gradient_p = Primitive(
    "stop_gradient",
    impl=lambda xp, x: x,
    abstract=_unary_aval("stop_gradient", _ANY),
    jvp=NOT_DIFFERENTIABLE,
    vjp=NOT_DIFFERENTIABLE,
    batch=lambda args, dims: (bind(stop_gradient_p, args[0]), dims[0]),
)


# ----------------------------------------------------------------------------- reductions


def _reduce_aval(op, has_identity=True):
    def rule(x, *, axes):
        check_axes(op, axes, x.ndim)
        if not has_identity and any(x.shape[a] == 0 for a in axes):
            raise ShapeError(
                f"{op}: cannot reduce over an empty axis (shape {x.shape}, axes {axes})"
            )
        return ShapedArray(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype)

    return rule


def expand_reduced(ct: Tensor, shape: tuple, axes: tuple) -> Tensor:
    """Broadcast a reduction's cotangent back over the reduced axes of ``shape``."""
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    return bind(broadcast_to_p, bind(reshape_p, ct, shape=kept), shape=shape)


def _wide(x) -> np.dtype:
    """The dtype a reduction of ``x`` accumulates in: float32 for float16/bfloat16 (whose
    running sums would round at every step: 1000 bfloat16 ones summed to 256)."""
    return np.dtype(np.float32) if x.dtype in LOW_FLOATS else x.dtype


def _reduce_sum_impl(xp, x, *, axes):
    return xp.sum(x, axis=axes, dtype=_wide(x)).astype(x.dtype, copy=False)


reduce_sum_p = Primitive(
    "reduce_sum",
    impl=_reduce_sum_impl,
    abstract=_reduce_aval("sum"),
    jvp=lambda primals, tangents, *, axes: (
        bind(reduce_sum_p, primals[0], axes=axes),
        bind(reduce_sum_p, tangents[0], axes=axes),
    ),
    vjp=lambda ct, primals, outputs, *, axes: (expand_reduced(ct, primals[0].shape, axes),),
    batch=_batch_front("reduce_sum", _shift_axes),
)


def reduce_extremum(name, impl):
    """reduce_max / reduce_min: the gradient is shared evenly by the positions attaining it."""

    def weights(x, out, axes):
        hit = (x == expand_reduced(out, x.shape, axes)).astype(x._np_dtype)
        return hit / expand_reduced(bind(reduce_sum_p, hit, axes=axes), x.shape, axes)

    def jvp(primals, tangents, *, axes):
        (x,), (t,) = primals, tangents
        out = bind(PRIMITIVES[name], x, axes=axes)
        return out, bind(reduce_sum_p, t * weights(x, out, axes), axes=axes)

    def vjp(ct, primals, outputs, *, axes):
        (x,), (out,) = primals, outputs
        return (expand_reduced(ct, x.shape, axes) * weights(x, out, axes),)

    return Primitive(
        name,
        impl=impl,
        abstract=_reduce_aval(name, has_identity=False),
        jvp=jvp,
        vjp=vjp,
        batch=_batch_front(name, _shift_axes),
    )


reduce_max_p = reduce_extremum("reduce_max", lambda xp, x, *, axes: xp.maximum.reduce(x, axis=axes))
reduce_min_p = reduce_extremum("reduce_min", lambda xp, x, *, axes: xp.minimum.reduce(x, axis=axes))


def _slice_last(x, start, stop, step=1):
    lead = x.ndim - 1
    return bind(
        slice_p,
        x,
        starts=(0,) * lead + (start,),
        stops=x.shape[:-1] + (stop,),
        steps=(1,) * lead + (step,),
    )


def _products_of_others(x, axes):
    """d prod / d x_i: for each element, the product of the others in its reduced slice.

    A product tree run up and then back down (each node hands its children the product
    of everything outside them), so that the result is the product of the others in IEEE
    arithmetic even where elements are 0, inf or NaN (out / x_i would be 0 / 0 at a zero,
    NaN / NaN beside a NaN). Linear work, logarithmic depth.
    """
    dtype, kept = x._np_dtype, tuple(a for a in range(x.ndim) if a not in axes)
    n = math.prod(x.shape[a] for a in axes)
    if n == 0:
        return zeros(x.shape, dtype)
    perm = kept + tuple(axes)
    rows = tuple(x.shape[a] for a in kept)
    level = bind(reshape_p, bind(transpose_p, x, perm=perm), shape=rows + (n,))
    width = 1 << (n - 1).bit_length()  # the leaves, padded with ones to a power of two
    if width > n:
        level = bind(pad_p, level, widths=((0, 0, 0),) * len(rows) + ((0, width - n, 0),), value=1)
    children = []
    while level.shape[-1] > 1:
        left, right = (
            _slice_last(level, 0, level.shape[-1], 2),
            _slice_last(level, 1, level.shape[-1], 2),
        )
        children.append((left, right))
        level = left * right
    outside = Tensor._from_array(np.ones(rows + (1,), dtype))
    for left, right in reversed(children):  # the left child's outside: parent's * right's
        pair = (bind(reshape_p, outside * o, shape=o.shape + (1,)) for o in (right, left))
        both = bind(concatenate_p, *pair, axis=len(rows) + 1)
        outside = bind(reshape_p, both, shape=rows + (2 * left.shape[-1],))
    moved = bind(reshape_p, _slice_last(outside, 0, n), shape=tuple(x.shape[p] for p in perm))
    return bind(transpose_p, moved, perm=tuple(np.argsort(perm).tolist()))


def _reduce_prod_jvp(primals, tangents, *, axes):
    (x,), (t,) = primals, tangents
    out = bind(reduce_prod_p, x, axes=axes)
    return out, bind(reduce_sum_p, t * _products_of_others(x, axes), axes=axes)


reduce_prod_p = Primitive(
    "reduce_prod",
    impl=lambda xp, x, *, axes: xp.prod(x, axis=axes, dtype=_wide(x)).astype(x.dtype),
    abstract=_reduce_aval("prod"),
    jvp=_reduce_prod_jvp,
    vjp=lambda ct, primals, outputs, *, axes: (
        expand_reduced(ct, primals[0].shape, axes) * _products_of_others(primals[0], axes),
    ),
    batch=_batch_front("reduce_prod", _shift_axes),
)


def arg_extremum(name, impl):
    def abstract(x, *, axis):
        _reduce_aval(name, has_identity=False)(x, axes=(axis,))
        return ShapedArray(x.shape[:axis] + x.shape[axis + 1 :], DEFAULT_INT)

    return Primitive(
        name,
        impl=lambda xp, x, *, axis: impl(xp, x, axis=axis).astype(np.int64),
        abstract=abstract,
        jvp=NOT_DIFFERENTIABLE,
        vjp=NOT_DIFFERENTIABLE,
        batch=_batch_front(name, _shift_axis),
    )


argmax_p = arg_extremum("argmax", lambda xp, x, *, axis: xp.argmax(x, axis=axis))
argmin_p = arg_extremum("argmin", lambda xp, x, *, axis: xp.argmin(x, axis=axis))


def _argsort_impl(xp, x, *, axis, descending):
    if not descending:
        return xp.argsort(x, axis=axis, kind="stable").astype(np.int64)
    # Stable descending for every dtype: sort the reversed keys ascending and reverse the
    # result back. (Negated keys would wrap unsigned and minimum integers, and leave NaN
    # last where PyTorch puts it first, as the largest value.)
    ascending = xp.argsort(xp.flip(x, axis), axis=axis, kind="stable")
    return (x.shape[axis] - 1 - xp.flip(ascending, axis)).astype(np.int64)


argsort_p = Primitive(
    "argsort",
    impl=_argsort_impl,
    abstract=lambda x, *, axis, descending: ShapedArray(
        x.shape, (check_axis("argsort", axis, x.ndim), DEFAULT_INT)[1]
    ),
    jvp=NOT_DIFFERENTIABLE,
    vjp=NOT_DIFFERENTIABLE,
    batch=_batch_front("argsort", _shift_axis),
)


def _cumsum_impl(xp, x, *, axis, reverse):
    if reverse:
        return xp.flip(_cumsum_impl(xp, xp.flip(x, axis), axis=axis, reverse=False), axis)
    return xp.cumsum(x, axis=axis, dtype=_wide(x)).astype(x.dtype, copy=False)


cumsum_p = Primitive(
    "cumsum",
    impl=_cumsum_impl,
    abstract=lambda x, *, axis, reverse: (check_axes("cumsum", axis, x.ndim), x)[1],
    jvp=lambda primals, tangents, *, axis, reverse: (
        bind(cumsum_p, primals[0], axis=axis, reverse=reverse),
        bind(cumsum_p, tangents[0], axis=axis, reverse=reverse),
    ),
    vjp=lambda ct, primals, outputs, *, axis, reverse: (
        bind(cumsum_p, ct, axis=axis, reverse=not reverse),
    ),
    batch=_batch_front("cumsum", _shift_axis),
)


# ----------------------------------------------------------------------------- linear algebra


def _matmul_aval(a, b):
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(
            f"matmul: the primitive needs 2-d or batched operands, got {a.shape} and {b.shape}"
        )
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(
            f"matmul: inner dimensions differ: x is {a.shape} (last dim {a.shape[-1]}) and "
            f"y is {b.shape} (second-to-last dim {b.shape[-2]}); transpose one of them or fix the shapes"
        )
    dtype = _same_dtypes("matmul", (a, b), ("x", "y"))
    if dtype == BOOL:
        raise DTypeError("matmul: bool operands are not supported; cast them to a number type")
    batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2], names=("x batch", "y batch"))
    return ShapedArray(batch + (a.shape[-2], b.shape[-1]), dtype)


def _mT(x):
    return bind(transpose_p, x, perm=tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))


def _matmul_impl(xp, a, b):
    low = a.dtype if a.dtype in LOW_FLOATS else None
    if low is not None:  # float32 BLAS, float32 accumulation (backends/cpu.py)
        cpu.note_low_precision_matmul()
        a, b = cpu.widen(a), cpu.widen(b)
    return xp.matmul(a, b).astype(low or a.dtype, copy=False)


def _matmul_vjp(ct, primals, outputs):
    a, b = primals
    if a.ndim > 2 and b.ndim == 2:
        # the gradient of a matrix shared by the stack: one product over the flattened stack,
        # rather than a product per matrix summed afterwards (2x faster, no stack-sized temporary)
        rows = math.prod(a.shape[:-1])
        flat_a = bind(reshape_p, a, shape=(rows, a.shape[-1]))
        flat_ct = bind(reshape_p, ct, shape=(rows, ct.shape[-1]))
        return bind(matmul_p, ct, _mT(b)), bind(matmul_p, _mT(flat_a), flat_ct)
    return (
        unbroadcast(bind(matmul_p, ct, _mT(b)), a.shape),
        unbroadcast(bind(matmul_p, _mT(a), ct), b.shape),
    )


matmul_p = Primitive(
    "matmul",
    impl=_matmul_impl,
    abstract=_matmul_aval,
    jvp=lambda primals, tangents: (
        bind(matmul_p, *primals),
        bind(matmul_p, tangents[0], primals[1]) + bind(matmul_p, primals[0], tangents[1]),
    ),
    vjp=_matmul_vjp,
    batch=_batch_broadcasting("matmul"),
)


# ----------------------------------------------------------------------------- shape primitives


def _reshape_aval(x, *, shape):
    if math.prod(shape) != math.prod(x.shape):
        raise ShapeError(
            f"reshape: cannot reshape {x.shape} ({math.prod(x.shape)} elements) into {shape} "
            f"({math.prod(shape)} elements); the sizes must match (use -1 for one inferred dimension)"
        )
    return ShapedArray(tuple(shape), x.dtype)


reshape_p = Primitive(
    "reshape",
    impl=lambda xp, x, *, shape: x.reshape(shape),  # the method: no np.reshape wrapper
    emit="{args}.reshape({shape})",
    abstract=_reshape_aval,
    jvp=lambda primals, tangents, *, shape: (
        bind(reshape_p, primals[0], shape=shape),
        bind(reshape_p, tangents[0], shape=shape),
    ),
    vjp=lambda ct, primals, outputs, *, shape: (bind(reshape_p, ct, shape=primals[0].shape),),
    batch=lambda args, dims, *, shape: (
        bind(
            reshape_p,
            moveaxis_to_front(args[0], dims[0]),
            shape=args[0].shape[dims[0] : dims[0] + 1] + shape,
        ),
        0,
    ),
)


def _broadcast_to_aval(x, *, shape):
    if len(shape) < x.ndim or any(d not in (1, s) for d, s in zip(x.shape[::-1], shape[::-1])):
        raise ShapeError(
            f"broadcast_to: cannot broadcast shape {x.shape} to {shape}; each dimension must be "
            "1 or equal to the target's, counting from the right"
        )
    return ShapedArray(tuple(shape), x.dtype)


def _broadcast_to_batch(args, dims, *, shape):
    (x,), (d,) = args, dims
    x = moveaxis_to_front(x, d)
    pad = len(shape) - (x.ndim - 1)
    if pad:
        x = bind(reshape_p, x, shape=x.shape[:1] + (1,) * pad + x.shape[1:])
    return bind(broadcast_to_p, x, shape=x.shape[:1] + shape), 0


broadcast_to_p = Primitive(
    "broadcast_to",
    impl=lambda xp, x, *, shape: xp.broadcast_to(x, shape),
    emit="xp.broadcast_to({args}, {shape})",
    abstract=_broadcast_to_aval,
    jvp=lambda primals, tangents, *, shape: (
        bind(broadcast_to_p, primals[0], shape=shape),
        bind(broadcast_to_p, tangents[0], shape=shape),
    ),
    vjp=lambda ct, primals, outputs, *, shape: (unbroadcast(ct, primals[0].shape),),
    batch=_broadcast_to_batch,
    # of a scalar in a group's loop: that value; of an array, a native kernel reads the
    # array itself, at stride 0 where it repeats (native/emit.py's views)
    c_expr="{0}",
)


def _transpose_aval(x, *, perm):
    if sorted(perm) != list(range(x.ndim)):
        raise AxisError(
            f"transpose: axes {perm} are not a permutation of the {x.ndim} axes of a tensor of "
            f"shape {x.shape}; name each axis in range(0, {x.ndim}) exactly once"
        )
    return ShapedArray(tuple(x.shape[p] for p in perm), x.dtype)


transpose_p = Primitive(
    "transpose",
    impl=lambda xp, x, *, perm: x.transpose(perm),
    emit="{args}.transpose({perm})",
    abstract=_transpose_aval,
    jvp=lambda primals, tangents, *, perm: (
        bind(transpose_p, primals[0], perm=perm),
        bind(transpose_p, tangents[0], perm=perm),
    ),
    vjp=lambda ct, primals, outputs, *, perm: (
        bind(transpose_p, ct, perm=tuple(np.argsort(perm).tolist())),
    ),
    batch=lambda args, dims, *, perm: (
        bind(
            transpose_p, moveaxis_to_front(args[0], dims[0]), perm=(0,) + tuple(p + 1 for p in perm)
        ),
        0,
    ),
)


def _slice_len(start, stop, step) -> int:
    return max(0, -(-(stop - start) // step))


def _slice_aval(x, *, starts, stops, steps):
    if not len(starts) == len(stops) == len(steps) == x.ndim:
        raise ShapeError(f"slice: {len(starts)} start(s) for a tensor of {x.ndim} dimension(s)")
    for a, (b, e, s, n) in enumerate(zip(starts, stops, steps, x.shape)):
        if not (0 <= b <= n and b <= e <= n and s >= 1):
            raise IndexOutOfRangeError(
                f"slice: start {b}, stop {e}, step {s} do not fit axis {a} of size {n}; "
                "need 0 <= start <= stop <= size and step >= 1"
            )
    return ShapedArray(tuple(map(_slice_len, starts, stops, steps)), x.dtype)


def _slice_vjp(ct, primals, outputs, *, starts, stops, steps):
    (x,) = primals
    widths = []
    for b, s, n, m in zip(starts, steps, x.shape, ct.shape):
        used = (m - 1) * s + 1 if m else 0
        widths.append((b, n - b - used, s - 1))
    return (bind(pad_p, ct, widths=tuple(widths), value=0),)


slice_p = Primitive(
    "slice",
    impl=lambda xp, x, *, starts, stops, steps: x[tuple(map(slice, starts, stops, steps))],
    abstract=_slice_aval,
    jvp=lambda primals, tangents, **p: (
        bind(slice_p, primals[0], **p),
        bind(slice_p, tangents[0], **p),
    ),
    vjp=_slice_vjp,
    batch=lambda args, dims, *, starts, stops, steps: (
        bind(
            slice_p,
            moveaxis_to_front(args[0], dims[0]),
            starts=(0,) + starts,
            stops=(args[0].shape[dims[0]],) + stops,
            steps=(1,) + steps,
        ),
        0,
    ),
)


def _padded_len(n, lo, hi, interior) -> int:
    return lo + hi + n + max(n - 1, 0) * interior


def _pad_aval(x, *, widths, value):
    if len(widths) != x.ndim or any(min(w) < 0 for w in widths):
        raise ShapeError(
            f"pad: need one (before, after) pair of non-negative widths per dimension of "
            f"shape {x.shape}, got {widths}"
        )
    return ShapedArray(tuple(_padded_len(n, *w) for n, w in zip(x.shape, widths)), x.dtype)


def _pad_impl(xp, x, *, widths, value):
    out = xp.full(_pad_aval(x, widths=widths, value=value).shape, value, dtype=x.dtype)
    out[
        tuple(
            slice(lo, lo + _padded_len(n, 0, 0, i), i + 1) for n, (lo, _, i) in zip(x.shape, widths)
        )
    ] = x
    return out


def _pad_vjp(ct, primals, outputs, *, widths, value):
    (x,) = primals
    starts = tuple(lo for lo, _, _ in widths)
    stops = tuple(lo + _padded_len(n, 0, 0, i) for n, (lo, _, i) in zip(x.shape, widths))
    return (
        bind(slice_p, ct, starts=starts, stops=stops, steps=tuple(i + 1 for _, _, i in widths)),
    )


pad_p = Primitive(
    "pad",
    impl=_pad_impl,
    abstract=_pad_aval,
    jvp=lambda primals, tangents, *, widths, value: (
        bind(pad_p, primals[0], widths=widths, value=value),
        bind(pad_p, tangents[0], widths=widths, value=0),
    ),
    vjp=_pad_vjp,
    batch=lambda args, dims, *, widths, value: (
        bind(pad_p, moveaxis_to_front(args[0], dims[0]), widths=((0, 0, 0),) + widths, value=value),
        0,
    ),
)


def _concatenate_aval(*xs, axis):
    dtype = _same_dtypes("concatenate", xs, [f"tensor {i}" for i in range(len(xs))])
    first = xs[0].shape
    for i, x in enumerate(xs):
        if x.ndim != len(first) or any(
            a != b for k, (a, b) in enumerate(zip(x.shape, first)) if k != axis
        ):
            raise ShapeError(
                f"concatenate: tensor {i} has shape {x.shape} but tensor 0 has {first}; all "
                f"dimensions except axis {axis} must match"
            )
    return ShapedArray(first[:axis] + (sum(x.shape[axis] for x in xs),) + first[axis + 1 :], dtype)


def _concatenate_vjp(ct, primals, outputs, *, axis):
    cts, start = [], 0
    for x in primals:
        starts = tuple(start if k == axis else 0 for k in range(ct.ndim))
        stops = tuple(start + x.shape[axis] if k == axis else d for k, d in enumerate(ct.shape))
        cts.append(bind(slice_p, ct, starts=starts, stops=stops, steps=(1,) * ct.ndim))
        start += x.shape[axis]
    return tuple(cts)


concatenate_p = Primitive(
    "concatenate",
    impl=lambda xp, *xs, axis: xp.concatenate(xs, axis=axis),
    abstract=_concatenate_aval,
    jvp=lambda primals, tangents, *, axis: (
        bind(concatenate_p, *primals, axis=axis),
        bind(concatenate_p, *tangents, axis=axis),
    ),
    vjp=_concatenate_vjp,
    batch=lambda args, dims, *, axis: (
        bind(concatenate_p, *all_batched(args, dims), axis=axis + 1),
        0,
    ),
)

rev_p = Primitive(
    "rev",
    impl=lambda xp, x, *, axes: xp.flip(x, axes),
    abstract=lambda x, *, axes: (check_axes("flip", axes, x.ndim), x)[1],
    jvp=lambda primals, tangents, *, axes: (
        bind(rev_p, primals[0], axes=axes),
        bind(rev_p, tangents[0], axes=axes),
    ),
    vjp=lambda ct, primals, outputs, *, axes: (bind(rev_p, ct, axes=axes),),
    batch=_batch_front("rev", _shift_axes),
)


# ----------------------------------------------------------------------------- gather / scatter-add


def _index_check(op, idx):
    if idx.dtype not in INTEGERS:
        raise DTypeError(
            f"{op}: indices must be integers, got {idx.dtype}; cast with .astype(fx.int64)"
        )


def _gather_aval(x, idx, *, axis):
    _index_check("gather", idx)
    check_axis("gather", axis, x.ndim)
    return ShapedArray(x.shape[:axis] + idx.shape + x.shape[axis + 1 :], x.dtype)


def _flat_batched_index(x, idx, axis):
    """Turn a per-example gather along ``axis`` into one gather on a flattened axis 0.

    ``x`` and ``idx`` are batched at 0. Returns ``(flat, lin, restore)``: ``flat`` has the
    batch and indexed axes merged first, ``lin`` the matching indices, and
    ``restore(y)`` puts a gathered ``(B, *idx, *pre, *post)`` into ``(B, *pre, *idx, *post)``.
    """
    size, n = x.shape[0], x.shape[axis + 1]
    moved = bind(
        transpose_p, x, perm=(0, axis + 1) + tuple(k for k in range(1, x.ndim) if k != axis + 1)
    )
    flat = bind(reshape_p, moved, shape=(size * n,) + moved.shape[2:])
    offsets = constant(np.arange(size).reshape((size,) + (1,) * (idx.ndim - 1)) * n, idx._np_dtype)
    lin = idx + offsets
    k, pre = idx.ndim - 1, axis

    def restore(y):
        perm = (
            (0,)
            + tuple(range(1 + k, 1 + k + pre))
            + tuple(range(1, 1 + k))
            + tuple(range(1 + k + pre, y.ndim))
        )
        return bind(transpose_p, y, perm=perm)

    return flat, lin, restore


def _gather_batch(args, dims, *, axis):
    (x, idx), (dx, di) = args, dims
    if di is None:
        return bind(gather_p, moveaxis_to_front(x, dx), idx, axis=axis + 1), 0
    if dx is None:
        return bind(gather_p, x, idx, axis=axis), axis + di
    x, idx = moveaxis_to_front(x, dx), moveaxis_to_front(idx, di)
    flat, lin, restore = _flat_batched_index(x, idx, axis)
    return restore(bind(gather_p, flat, lin, axis=0)), 0


def _take_impl(xp, x, idx, *, axis):
    return xp.take(x, idx, axis=axis)


gather_p = Primitive(
    "gather",
    impl=_take_impl,
    abstract=_gather_aval,
    jvp=lambda primals, tangents, *, axis: (
        bind(gather_p, *primals, axis=axis),
        bind(gather_p, tangents[0], primals[1], axis=axis),
    ),
    vjp=lambda ct, primals, outputs, *, axis: (
        bind(scatter_add_p, zeros(primals[0].shape, ct._np_dtype), primals[1], ct, axis=axis),
        None,
    ),
    batch=_gather_batch,
)


def _scatter_add_aval(x, idx, updates, *, axis):
    _index_check("scatter_add", idx)
    want = x.shape[:axis] + idx.shape + x.shape[axis + 1 :]
    if updates.shape != want:
        raise ShapeError(
            f"scatter_add: updates have shape {updates.shape} but indices {idx.shape} into "
            f"axis {axis} of {x.shape} need {want}"
        )
    _same_dtypes("scatter_add", (x, updates), ("operand", "updates"))
    return x


def _scatter_add_impl(xp, x, idx, updates, *, axis):
    out = x.copy()
    xp.add.at(out, (slice(None),) * axis + (idx,), updates)
    return out


def _scatter_add_batch(args, dims, *, axis):
    x, idx, updates = all_batched(args, dims)
    flat, lin, _ = _flat_batched_index(x, idx, axis)
    # updates are (B, *pre, *idx, *post); the flat scatter wants (B, *idx, *pre, *post)
    k, pre = idx.ndim - 1, axis
    perm = (
        (0,)
        + tuple(range(1 + pre, 1 + pre + k))
        + tuple(range(1, 1 + pre))
        + tuple(range(1 + pre + k, updates.ndim))
    )
    out = bind(scatter_add_p, flat, lin, bind(transpose_p, updates, perm=perm), axis=0)
    moved_shape = (x.shape[0], x.shape[axis + 1]) + tuple(
        d for k2, d in enumerate(x.shape) if k2 not in (0, axis + 1)
    )
    out = bind(reshape_p, out, shape=moved_shape)
    back = (0,) + tuple(range(2, axis + 2)) + (1,) + tuple(range(axis + 2, x.ndim))
    return bind(transpose_p, out, perm=back), 0


scatter_add_p = Primitive(
    "scatter_add",
    impl=_scatter_add_impl,
    abstract=_scatter_add_aval,
    jvp=lambda primals, tangents, *, axis: (
        bind(scatter_add_p, *primals, axis=axis),
        bind(scatter_add_p, tangents[0], primals[1], tangents[2], axis=axis),
    ),
    vjp=lambda ct, primals, outputs, *, axis: (ct, None, bind(gather_p, ct, primals[1], axis=axis)),
    batch=_scatter_add_batch,
)


# ----------------------------------------------------------------------------- random bits


def _random_bits_impl(xp, key, *, shape):
    # NumPy's Philox is counter-based: the key alone fixes the stream, as in JAX.
    keys = key.reshape(-1, 2).astype(np.uint64)
    draws = [
        np.random.Generator(np.random.Philox(key=int(k[0]) << 32 | int(k[1]))).integers(
            0, 2**32, size=shape, dtype=np.uint32
        )
        for k in keys
    ]
    return xp.stack(draws).reshape(key.shape[:-1] + tuple(shape))


def _random_bits_aval(key, *, shape):
    if key.dtype != np.uint32 or key.shape[-1:] != (2,):
        raise DTypeError(
            f"random: a key is a uint32 tensor of shape (2,), got {key.dtype}{list(key.shape)}; "
            "make one with fx.random.key(seed)"
        )
    return ShapedArray(key.shape[:-1] + tuple(shape), np.dtype(np.uint32))


random_bits_p = Primitive(
    "random_bits",
    impl=_random_bits_impl,
    abstract=_random_bits_aval,
    jvp=NOT_DIFFERENTIABLE,
    vjp=NOT_DIFFERENTIABLE,
    batch=lambda args, dims, *, shape: (
        bind(random_bits_p, moveaxis_to_front(args[0], dims[0]), shape=shape),
        0,
    ),
)


# ----------------------------------------------------------------------------- the array API's
# elementwise functions beyond the core set. They run on NumPy (no C twin yet: a jit group
# holding one stays on NumPy). Derivatives are written with the primitives above.


def _sqrt(x):
    return bind(sqrt_p, x)


tan_p = unary("tan", "tan", lambda x, y: 1.0 + y * y, None)
sinh_p = unary("sinh", "sinh", lambda x, y: bind(cosh_p, x), None)
cosh_p = unary("cosh", "cosh", lambda x, y: bind(sinh_p, x), None)
asin_p = unary("asin", "arcsin", lambda x, y: 1.0 / _sqrt(1.0 - x * x), None)
acos_p = unary("acos", "arccos", lambda x, y: -1.0 / _sqrt(1.0 - x * x), None)
atan_p = unary("atan", "arctan", lambda x, y: 1.0 / (1.0 + x * x), None)
asinh_p = unary("asinh", "arcsinh", lambda x, y: 1.0 / _sqrt(x * x + 1.0), None)
acosh_p = unary("acosh", "arccosh", lambda x, y: 1.0 / _sqrt(x * x - 1.0), None)
atanh_p = unary("atanh", "arctanh", lambda x, y: 1.0 / (1.0 - x * x), None)
log2_p = unary("log2", "log2", lambda x, y: (1.0 / math.log(2.0)) / x, None)
log10_p = unary("log10", "log10", lambda x, y: (1.0 / math.log(10.0)) / x, None)
signbit_p = unary(
    "signbit", "signbit", None, None, takes=_FLOATING, out_dtype=lambda d: BOOL
)  # True for -0.0 and a NaN with its sign bit set, as NumPy


def _atan2_partials(y, x):
    r2 = x * x + y * y
    return x / r2, -y / r2


def _atan2_jvp(primals, tangents):
    (y, x), (ty, tx) = primals, tangents
    dy, dx = _atan2_partials(y, x)
    return bind(atan2_p, y, x), ty * dy + tx * dx


def _atan2_vjp(ct, primals, outputs):
    y, x = primals
    dy, dx = _atan2_partials(y, x)
    return unbroadcast(ct * dy, y.shape), unbroadcast(ct * dx, x.shape)


def _hypot_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    h = bind(hypot_p, x, y)
    return h, (tx * x + ty * y) / h


def _hypot_vjp(ct, primals, outputs):
    (x, y), (h,) = primals, outputs
    return unbroadcast(ct * x / h, x.shape), unbroadcast(ct * y / h, y.shape)


# atan2(y, x), the angle of the point (x, y): the array API's argument order
atan2_p = binary("atan2", "arctan2", _atan2_jvp, _atan2_vjp, takes=_FLOATING)
# sqrt(x**2 + y**2) without overflow or underflow in the squares
hypot_p = binary("hypot", "hypot", _hypot_jvp, _hypot_vjp, takes=_FLOATING)
nextafter_p = binary(
    "nextafter", "nextafter", NOT_DIFFERENTIABLE, NOT_DIFFERENTIABLE, takes=_FLOATING
)
_INTEGER = (INTEGERS, "an integer")
left_shift_p = binary(
    "left_shift", "left_shift", NOT_DIFFERENTIABLE, NOT_DIFFERENTIABLE, takes=_INTEGER
)
right_shift_p = binary(
    "right_shift", "right_shift", NOT_DIFFERENTIABLE, NOT_DIFFERENTIABLE, takes=_INTEGER
)

# the parts of a complex number. Derivatives follow JAX: a jvp is R-linear in the tangent,
# a vjp its transpose for the real inner product Re(sum(a * b)), never conjugated: real's
# takes ct as a complex number, imag's gives -1j * ct, conj is its own transpose.
_COMPLEX_ONLY = (COMPLEX, "a complex")
# (NumPy's real and imag are views into the complex array: copied, so that compiled code
# reusing the result's buffer does not write into the input)
real_p = unary(
    "real",
    lambda xp, x: xp.real(x).copy(),
    lambda x, y: constant(1, x._np_dtype),
    None,
    _COMPLEX_ONLY,
    real_for,
)
imag_p = unary(
    "imag",
    lambda xp, x: xp.imag(x).copy(),
    lambda x, y: constant(-1j, x._np_dtype),
    None,
    _COMPLEX_ONLY,
    real_for,
)
_conj_impl, _conj_emit = ufunc_rules("conjugate")
conj_p = Primitive(
    "conj",
    impl=_conj_impl,
    emit=_conj_emit,
    abstract=_unary_aval("conj", _COMPLEX_ONLY),
    jvp=_linear_jvp("conj"),
    vjp=lambda ct, primals, outputs: (bind(conj_p, ct),),
    batch=_batch_broadcasting("conj"),
    elementwise=True,
)
