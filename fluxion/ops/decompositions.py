"""The linear-algebra primitives of ``fx.linalg``, each one block with all of its rules.

Each acts on the last two axes of its arguments (stacks of matrices, as NumPy's
``np.linalg``), so its vmap rule moves the batch axis first and calls it again. Rules are
written with fluxion ops, for real and complex matrices (JAX's convention: a jvp is
R-linear, a vjp its transpose, never conjugated), except where a rule says otherwise.
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


def _conj(x: Tensor) -> Tensor:
    return bind(P.conj_p, x) if x._np_dtype in COMPLEX else x


def _mH(x: Tensor) -> Tensor:
    return _conj(_mT(x))


def _as(x: Tensor, like: Tensor) -> Tensor:
    return bind(P.convert_p, x, dtype=like._np_dtype) if x._np_dtype != like._np_dtype else x


def _row(v: Tensor) -> Tensor:
    return bind(P.reshape_p, v, shape=v.shape[:-1] + (1, v.shape[-1]))


def _real(x: Tensor) -> Tensor:
    return bind(P.real_p, x) if x._np_dtype in COMPLEX else x


def _imag_diagonal(x: Tensor) -> Tensor:
    """``i Im(diag(x))`` as a diagonal matrix: the phase of complex singular vectors or
    of a QR's columns, zero for a real ``x``."""
    if x._np_dtype not in COMPLEX:
        return P.zeros(x.shape, x._np_dtype)
    d = _diagonal(x)
    return _diag_embed(d - _as(_real(d), d))


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
    # with tau = trace(a^-1 t) = d log det a: d log|det a| = Re(tau), d sign = i Im(tau) sign
    # (a real matrix's sign is piecewise constant)
    dlog = _diagonal(bind(solve_p, a, t))
    tau = bind(P.reduce_sum_p, dlog, axes=(dlog.ndim - 1,))
    if a._np_dtype not in COMPLEX:
        return (sign, logabs), (P.zeros(sign.shape, sign._np_dtype), tau)
    real = bind(P.real_p, tau)
    return (sign, logabs), ((tau - _as(real, tau)) * sign, real)


def _slogdet_vjp(cts, primals, outputs):
    (a,), (sign, _), (ct_sign, ct_logabs) = primals, outputs, cts
    ct_tau = ct_logabs
    if a._np_dtype in COMPLEX:  # the transpose of tau -> (i Im(tau) sign, Re(tau))
        ct_tau = _as(ct_logabs, a) - 1j * _as(bind(P.real_p, 1j * sign * ct_sign), a)
    inv_t = _mT(bind(inv_p, a))
    return (inv_t * bind(P.reshape_p, ct_tau, shape=ct_tau.shape + (1, 1)),)


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
    """The symmetric (Hermitian) matrix NumPy's eigh reads from ``t``: its lower triangle,
    mirrored (conjugated), the real part of its diagonal."""
    n = t.shape[-1]
    low = Tensor._from_array(np.tri(n, dtype=t._np_dtype))
    strict = Tensor._from_array(np.tri(n, k=-1, dtype=t._np_dtype))
    return t * low + _mH(t * strict) - _imag_diagonal(t)


def _lower_part_transpose(g: Tensor) -> Tensor:
    """The transpose of ``_lower_part``: where each entry it read came from."""
    n = g.shape[-1]
    low = Tensor._from_array(np.tri(n, dtype=g._np_dtype))
    strict = Tensor._from_array(np.tri(n, k=-1, dtype=g._np_dtype))
    return g * low + _mH(g) * strict - _imag_diagonal(g)


def _phi(x: Tensor) -> Tensor:
    """The lower triangle of ``x`` with its diagonal halved."""
    n = x.shape[-1]
    mask = Tensor._from_array(np.tri(n, dtype=x._np_dtype) - 0.5 * np.eye(n, dtype=x._np_dtype))
    return x * mask


def _cholesky_aval(a, *, upper):
    _check_matrix("cholesky", a)
    return a


def _lower(l_or_u, upper):
    return _mH(l_or_u) if upper else l_or_u


def _cholesky_jvp(primals, tangents, *, upper):
    # a = L L^H: dL = L phi(L^-1 da L^-H), da the Hermitian matrix NumPy reads (the lower
    # triangle of the tangent, mirrored)
    (a,), (t,) = primals, tangents
    out = bind(cholesky_p, a, upper=upper)
    low = _lower(out, upper)
    low_inv = bind(inv_p, low)
    sym = _lower_part(_lower(t, upper))  # upper=True reads the upper triangle
    dlow = _mm(low, _phi(_mm(_mm(low_inv, sym), _mH(low_inv))))
    return out, _lower(dlow, upper)


def _cholesky_vjp(ct, primals, outputs, *, upper):
    (out,) = outputs
    low, g = _lower(out, upper), _lower(ct, upper)
    low_inv = bind(inv_p, low)
    ga = _mm(_mm(_mT(low_inv), _phi(_mm(_mT(low), g))), _conj(low_inv))
    ga = _lower_part_transpose(ga)
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
    inner = _mm(_mm(_mH(v), _lower_part(t)), v)
    return (w, v), (_real(_diagonal(inner)), _mm(v, _as(_gaps(w), v) * inner))


def _eigh_vjp(cts, primals, outputs):
    (w, v), (gw, gv) = outputs, cts
    inner = _diag_embed(gw) + _gaps(w) * _mm(_mT(v), gv)
    return (_lower_part_transpose(_mm(_mm(_conj(v), inner), _mT(v))),)


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


def _svd_thin(name, a, full_matrices):
    m, n = a.shape[-2:]
    if full_matrices and m != n:
        raise GradError(
            f"{name}: derivatives are not implemented for a full SVD of a non-square matrix "
            f"({m}x{n}: its extra singular vectors are arbitrary); use full_matrices=False"
        )


def _svd_jvp(primals, tangents, *, full_matrices):
    # JAX's rule (distinct nonzero singular values; the phases of complex vectors go to U)
    (a,), (t,) = primals, tangents
    _svd_thin("svd", a, full_matrices)
    u, s, vh = bind(svd_p, a, full_matrices=full_matrices)
    v, (m, n) = _mH(vh), a.shape[-2:]
    inner = _mm(_mm(_mH(u), t), v)
    ds = _real(_diagonal(inner))
    gaps = _as(_gaps(s * s), a)
    s_row = _as(_row(s), a)
    s_inv = _as(bind(P.select_p, s == 0, P.constant(0, s._np_dtype), 1.0 / s), a)
    ss, ss_t = s_row * inner, _mT(s_row) * inner
    du = _mm(u, gaps * (ss + _mH(ss)) + _imag_diagonal(inner) * _row(s_inv))
    dv = _mm(v, gaps * (ss_t + _mH(ss_t)))
    if m > n:
        tv = _mm(t, v)
        du = du + (tv - _mm(u, _mm(_mH(u), tv))) / s_row
    if n > m:
        tu = _mm(_mH(t), u)
        dv = dv + (tu - _mm(v, _mm(vh, tu))) / s_row
    return (u, s, vh), (du, ds, _mH(dv))


def _svd_vjp(cts, primals, outputs, *, full_matrices):
    # The adjoint (PyTorch's conjugate-convention rule, as in Townsend's note), conjugated
    # on the way in and out: JAX's transpose
    (a,), (u, s, vh) = primals, outputs
    _svd_thin("svd", a, full_matrices)
    gu, gs, gvh = (_conj(c) for c in cts)
    v, gv, (m, n) = _mH(vh), _mH(gvh), a.shape[-2:]
    gaps, s_row = _as(_gaps(s * s), a), _as(_row(s), a)
    ugu, vgv = _mm(_mH(u), gu), _mm(_mH(v), gv)
    j, k = gaps * ugu, gaps * vgv
    inner = (j + _mH(j)) * s_row + _mT(s_row) * (k + _mH(k)) + _as(_diag_embed(gs), a)
    inner = inner + _imag_diagonal(ugu) / s_row
    g = _mm(_mm(u, inner), vh)
    if m > n:
        g = g + _mm((gu - _mm(u, ugu)) / s_row, vh)
    if n > m:
        g = g + _mm(u, (gvh - _mm(_mm(gvh, v), vh)) / _mT(s_row))
    return (_conj(g),)


svd_p = Primitive(
    "svd",
    impl=lambda xp, a, *, full_matrices: list(xp.linalg.svd(a, full_matrices=full_matrices)),
    abstract=_svd_aval,
    jvp=_svd_jvp,
    vjp=_svd_vjp,
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
    # ds_i = Re(u_i^H da v_i) (distinct singular values)
    (a,), (t,) = primals, tangents
    u, vh = _singular_vectors(a)
    s = bind(svdvals_p, a)
    return s, _real(_diagonal(_mm(_mm(_mH(u), t), _mH(vh))))


def _svdvals_vjp(ct, primals, outputs):
    (a,) = primals
    u, vh = _singular_vectors(a)
    return (_conj(_mm(u * _as(_row(ct), u), vh)),)


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


def _strictly_lower(x: Tensor) -> Tensor:
    return x * Tensor._from_array(np.tri(x.shape[-1], k=-1, dtype=real_for(x._np_dtype)))


def _qr_tall(a, mode):
    m, n = a.shape[-2:]
    if m < n or (mode == "complete" and m != n):
        raise GradError(
            f"qr: derivatives are not implemented for a {m}x{n} matrix in mode={mode!r} (only "
            "for the reduced QR of a matrix with at least as many rows as columns, as in JAX)"
        )


def _right_solve(x, r):
    """``x @ inv(r)``."""
    return _mT(bind(solve_p, _mT(r), _mT(x)))


def _qr_jvp(primals, tangents, *, mode):
    # JAX's rule: with X = Q^H dA R^-1, dQ = Q (W - X) + dA R^-1 and dR = (X - W) R for the
    # skew-Hermitian W holding X's strict lower part (and the imaginary part of its
    # diagonal, so that R's diagonal stays real)
    (a,), (t,) = primals, tangents
    _qr_tall(a, mode)
    q, r = bind(qr_p, a, mode=mode)
    t_rinv = _right_solve(t, r)
    x = _mm(_mH(q), t_rinv)
    low = _strictly_lower(x)
    w = low - _mH(low) + _imag_diagonal(x)
    return (q, r), (_mm(q, w - x) + t_rinv, _mm(x - w, r))


def _qr_vjp(cts, primals, outputs, *, mode):
    # the jvp's transpose, step by step (W's map from X is its own transpose but for the
    # strict lower part of X^H: c -> sl(c) - sl(c^H) + i Im(diag c))
    (a,), (q, r) = primals, outputs
    _qr_tall(a, mode)
    gq, gr = cts
    gw = _mm(_mT(q), gq) - _mm(gr, _mT(r))
    gx = _strictly_lower(gw) - _strictly_lower(_mH(gw)) + _imag_diagonal(gw) - gw
    return (_right_solve(gq + _mm(_conj(q), gx), _mT(r)),)


qr_p = Primitive(
    "qr",
    impl=lambda xp, a, *, mode: list(xp.linalg.qr(a, mode=mode)),
    abstract=_qr_aval,
    jvp=_qr_jvp,
    vjp=_qr_vjp,
    batch=None,
    multiple_results=True,
)
qr_p.batch = _batch_front(qr_p)
