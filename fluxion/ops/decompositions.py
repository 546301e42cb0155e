"""The linear-algebra primitives of ``fx.linalg``, each one block with all of its rules.

Each acts on the last two axes of its arguments (stacks of matrices, as NumPy's
``np.linalg``), so its vmap rule moves the batch axis first and calls it again. Rules are
written with fluxion ops. ``svd`` and ``qr`` have no derivative yet: their rules raise
``GradError`` rather than give a zero gradient (``svdvals``, a primitive of its own, has).
"""

from __future__ import annotations

import numpy as np

from fluxion.core.dtypes import COMPLEX, FLOATS, real_for
from fluxion.core.primitive import Primitive, ShapedArray
from fluxion.core.tensor import Tensor
from fluxion.core.trace import bind
from fluxion.errors import DTypeError, GradError, ShapeError
from fluxion.ops import primitives as P


def _mT(x: Tensor) -> Tensor:
    return P._mT(x)


def _mm(a: Tensor, b: Tensor) -> Tensor:
    return bind(P.matmul_p, a, b)


def _check_matrix(op: str, a, square: bool = True):
    if a.dtype not in FLOATS and a.dtype not in COMPLEX:
        raise DTypeError(f"{op}: needs a floating-point matrix, got {a.dtype}")
    if len(a.shape) < 2 or (square and a.shape[-1] != a.shape[-2]):
        kind = "square matrix" if square else "matrix"
        raise ShapeError(
            f"{op}: needs a {kind} (or a stack of them) in the last two axes, got shape "
            f"{tuple(a.shape)}"
        )


def _batch_front(prim):
    """vmap rule: the batch axis first, the op on the stack (every output batched at 0)."""

    def rule(args, dims, **params):
        out = bind(prim, *P.all_batched(args, dims), **params)
        return out, [0] * len(out) if prim.multiple_results else 0

    return rule


def _diag_embed(v: Tensor) -> Tensor:
    """Matrices with ``v``'s last axis on their diagonals."""
    n = v.shape[-1]
    eye = Tensor._from_array(np.eye(n, dtype=v._np_dtype))
    return bind(P.reshape_p, v, shape=v.shape + (1,)) * eye


def _diagonal(m: Tensor) -> Tensor:
    n = m.shape[-1]
    eye = Tensor._from_array(np.eye(n, dtype=m._np_dtype))
    return bind(P.reduce_sum_p, m * eye, axes=(m.ndim - 1,))


def _no_gradient(name):
    def rule(*args, **params):
        raise GradError(
            f"{name}: gradients are not implemented yet; compute it under fx.no_grad() or on "
            "x.detach() if its inputs are constants to you"
        )

    return rule


# ----------------------------------------------------------------------------- inv


def _inv_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    y = bind(inv_p, a)
    return y, -_mm(_mm(y, t), y)


def _inv_vjp(ct, primals, outputs):
    (y,) = outputs
    yt = _mT(y)
    return (-_mm(_mm(yt, ct), yt),)


def _inv_aval(a):
    _check_matrix("inv", a)
    return a


inv_p = Primitive(
    "inv",
    impl=lambda xp, a: xp.linalg.inv(a),
    abstract=_inv_aval,
    jvp=_inv_jvp,
    vjp=_inv_vjp,
    batch=None,
)
inv_p.batch = _batch_front(inv_p)


# ----------------------------------------------------------------------------- solve


def _solve_aval(a, b):
    _check_matrix("solve", a)
    if a.dtype != b.dtype or len(b.shape) != len(a.shape) or b.shape[:-1] != a.shape[:-1]:
        raise ShapeError(
            f"solve: b must be a stack of {a.shape[-1]}-row matrices matching a's "
            f"{tuple(a.shape)} and its dtype, got {b.dtype}{list(b.shape)}"
        )
    return b


def _solve_jvp(primals, tangents):
    (a, b), (ta, tb) = primals, tangents
    x = bind(solve_p, a, b)
    return x, bind(solve_p, a, tb - _mm(ta, x))


def _solve_vjp(ct, primals, outputs):
    (a, _b), (x,) = primals, outputs
    gb = bind(solve_p, _mT(a), ct)
    return -_mm(gb, _mT(x)), gb


solve_p = Primitive(
    "solve",
    impl=lambda xp, a, b: xp.linalg.solve(a, b),
    abstract=_solve_aval,
    jvp=_solve_jvp,
    vjp=_solve_vjp,
    batch=None,
)
solve_p.batch = _batch_front(solve_p)


# ----------------------------------------------------------------------------- slogdet


def _slogdet_aval(a):
    _check_matrix("slogdet", a)
    batch = tuple(a.shape[:-2])
    return [ShapedArray(batch, a.dtype), ShapedArray(batch, real_for(np.dtype(a.dtype)))]


def _slogdet_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    sign, logabs = bind(slogdet_p, a)
    # d log|det a| = trace(a^-1 t); the sign of a real matrix is piecewise constant
    dlog = _diagonal(bind(solve_p, a, t))
    trace = bind(P.reduce_sum_p, dlog, axes=(dlog.ndim - 1,))
    return (sign, logabs), (P.zeros(sign.shape, sign._np_dtype), trace)


def _slogdet_vjp(cts, primals, outputs):
    (a,), (_, ct_logabs) = primals, cts
    inv_t = _mT(bind(inv_p, a))
    return (inv_t * bind(P.reshape_p, ct_logabs, shape=ct_logabs.shape + (1, 1)),)


slogdet_p = Primitive(
    "slogdet",
    impl=lambda xp, a: list(xp.linalg.slogdet(a)),
    abstract=_slogdet_aval,
    jvp=_slogdet_jvp,
    vjp=_slogdet_vjp,
    batch=None,
    multiple_results=True,
)
slogdet_p.batch = _batch_front(slogdet_p)


# ----------------------------------------------------------------------------- det


def _det_aval(a):
    _check_matrix("det", a)
    return ShapedArray(tuple(a.shape[:-2]), a.dtype)


def _det_jvp(primals, tangents):
    # d det a = det a * trace(a^-1 t)
    (a,), (t,) = primals, tangents
    d = bind(det_p, a)
    dlog = _diagonal(bind(solve_p, a, t))
    return d, d * bind(P.reduce_sum_p, dlog, axes=(dlog.ndim - 1,))


def _det_vjp(ct, primals, outputs):
    (a,), (d,) = primals, outputs
    scale = bind(P.reshape_p, ct * d, shape=d.shape + (1, 1))
    return (scale * _mT(bind(inv_p, a)),)


det_p = Primitive(
    "det",
    impl=lambda xp, a: xp.linalg.det(a),
    abstract=_det_aval,
    jvp=_det_jvp,
    vjp=_det_vjp,
    batch=None,
)
det_p.batch = _batch_front(det_p)


# ----------------------------------------------------------------------------- cholesky


def _lower_part(t: Tensor) -> Tensor:
    """The symmetric matrix NumPy's eigh reads from ``t``: its lower triangle, mirrored."""
    n = t.shape[-1]
    low = Tensor._from_array(np.tri(n, dtype=t._np_dtype))
    strict = Tensor._from_array(np.tri(n, k=-1, dtype=t._np_dtype))
    return t * low + _mT(t * strict)


def _lower_part_transpose(g: Tensor) -> Tensor:
    """The transpose of ``_lower_part``: where each entry it read came from."""
    n = g.shape[-1]
    low = Tensor._from_array(np.tri(n, dtype=g._np_dtype))
    strict = Tensor._from_array(np.tri(n, k=-1, dtype=g._np_dtype))
    return g * low + _mT(g) * strict


def _phi(x: Tensor) -> Tensor:
    """The lower triangle of ``x`` with its diagonal halved."""
    n = x.shape[-1]
    mask = Tensor._from_array(np.tri(n, dtype=x._np_dtype) - 0.5 * np.eye(n, dtype=x._np_dtype))
    return x * mask


def _cholesky_aval(a, *, upper):
    _check_matrix("cholesky", a)
    return a


def _lower(l_or_u, upper):
    return _mT(l_or_u) if upper else l_or_u


def _cholesky_jvp(primals, tangents, *, upper):
    # a = L L^T: dL = L phi(L^-1 da L^-T), da the symmetric matrix NumPy reads (the lower
    # triangle of the tangent, mirrored)
    (a,), (t,) = primals, tangents
    out = bind(cholesky_p, a, upper=upper)
    low = _lower(out, upper)
    low_inv = bind(inv_p, low)
    sym = _lower_part(_lower(t, upper))  # upper=True reads the upper triangle
    dlow = _mm(low, _phi(_mm(_mm(low_inv, sym), _mT(low_inv))))
    return out, _lower(dlow, upper)


def _cholesky_vjp(ct, primals, outputs, *, upper):
    (out,) = outputs
    low, g = _lower(out, upper), _lower(ct, upper)
    low_inv = bind(inv_p, low)
    ga = _lower_part_transpose(_mm(_mm(_mT(low_inv), _phi(_mm(_mT(low), g))), low_inv))
    return (_lower(ga, upper),)


cholesky_p = Primitive(
    "cholesky",
    impl=lambda xp, a, *, upper: xp.linalg.cholesky(a, upper=upper),
    abstract=_cholesky_aval,
    jvp=_cholesky_jvp,
    vjp=_cholesky_vjp,
    batch=None,
)
cholesky_p.batch = _batch_front(cholesky_p)


# ----------------------------------------------------------------------------- eigh


def _eigh_aval(a):
    _check_matrix("eigh", a)
    return [ShapedArray(tuple(a.shape[:-1]), real_for(np.dtype(a.dtype))), a]


def _gaps(w: Tensor) -> Tensor:
    """F[i, j] = 1 / (w[j] - w[i]) off the diagonal, 0 on it."""
    n = w.shape[-1]
    off = Tensor._from_array(1.0 - np.eye(n, dtype=w._np_dtype))
    diff = bind(P.reshape_p, w, shape=w.shape[:-1] + (1, n)) - bind(
        P.reshape_p, w, shape=w.shape + (1,)
    )
    return off / (diff + (1.0 - off))  # 1 on the diagonal, where off is 0


def _eigh_jvp(primals, tangents):
    (a,), (t,) = primals, tangents
    w, v = bind(eigh_p, a)
    inner = _mm(_mm(_mT(v), _lower_part(t)), v)
    return (w, v), (_diagonal(inner), _mm(v, _gaps(w) * inner))


def _eigh_vjp(cts, primals, outputs):
    (w, v), (gw, gv) = outputs, cts
    inner = _diag_embed(gw) + _gaps(w) * _mm(_mT(v), gv)
    return (_lower_part_transpose(_mm(_mm(v, inner), _mT(v))),)


eigh_p = Primitive(
    "eigh",
    impl=lambda xp, a: list(xp.linalg.eigh(a)),
    abstract=_eigh_aval,
    jvp=_eigh_jvp,
    vjp=_eigh_vjp,
    batch=None,
    multiple_results=True,
)
eigh_p.batch = _batch_front(eigh_p)


# ----------------------------------------------------------------------------- svd, qr


def _svd_aval(a, *, full_matrices):
    _check_matrix("svd", a, square=False)
    *batch, m, n = a.shape
    k = min(m, n)
    batch = tuple(batch)
    u_cols, v_rows = (m, n) if full_matrices else (k, k)
    real = real_for(np.dtype(a.dtype))
    return [
        ShapedArray(batch + (m, u_cols), a.dtype),
        ShapedArray(batch + (k,), real),
        ShapedArray(batch + (v_rows, n), a.dtype),
    ]


svd_p = Primitive(
    "svd",
    impl=lambda xp, a, *, full_matrices: list(xp.linalg.svd(a, full_matrices=full_matrices)),
    abstract=_svd_aval,
    jvp=_no_gradient("svd"),
    vjp=_no_gradient("svd"),
    batch=None,
    multiple_results=True,
)
svd_p.batch = _batch_front(svd_p)


def _svdvals_aval(a):
    _check_matrix("svdvals", a, square=False)
    *batch, m, n = a.shape
    return ShapedArray(tuple(batch) + (min(m, n),), real_for(np.dtype(a.dtype)))


def _singular_vectors(a):
    u, _, vh = bind(svd_p, a, full_matrices=False)
    return u, vh


def _svdvals_jvp(primals, tangents):
    # ds_i = u_i^T da v_i (distinct singular values)
    (a,), (t,) = primals, tangents
    u, vh = _singular_vectors(a)
    s = bind(svdvals_p, a)
    return s, _diagonal(_mm(_mm(_mT(u), t), _mT(vh)))


def _svdvals_vjp(ct, primals, outputs):
    (a,) = primals
    u, vh = _singular_vectors(a)
    return (_mm(u * bind(P.reshape_p, ct, shape=ct.shape[:-1] + (1, ct.shape[-1])), vh),)


svdvals_p = Primitive(
    "svdvals",
    impl=lambda xp, a: xp.linalg.svd(a, compute_uv=False),
    abstract=_svdvals_aval,
    jvp=_svdvals_jvp,
    vjp=_svdvals_vjp,
    batch=None,
)
svdvals_p.batch = _batch_front(svdvals_p)


def _qr_aval(a, *, mode):
    _check_matrix("qr", a, square=False)
    *batch, m, n = a.shape
    k = m if mode == "complete" else min(m, n)
    return [
        ShapedArray(tuple(batch) + (m, k), a.dtype),
        ShapedArray(tuple(batch) + (k, n), a.dtype),
    ]


qr_p = Primitive(
    "qr",
    impl=lambda xp, a, *, mode: list(xp.linalg.qr(a, mode=mode)),
    abstract=_qr_aval,
    jvp=_no_gradient("qr"),
    vjp=_no_gradient("qr"),
    batch=None,
    multiple_results=True,
)
qr_p.batch = _batch_front(qr_p)
