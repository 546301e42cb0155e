"""Autodiff of every op in the table (STYLE.md point 7), in float64.

For each differentiable ``OpCase`` x ``Sample``:

* jvp vs central finite differences in a random direction;
* vjp by the inner-product identity ``<t, vjp(c)> == <jvp(t), c>``;
* second order: forward-over-reverse == reverse-over-reverse == finite differences
  of the gradient (Hessian-vector products);
* ``Tensor.backward()`` == ``fx.grad`` (one set of rules, two styles).

For each non-differentiable case: the gradient through ``astype(float)`` is zero,
the jvp is zero, and differentiating an int/bool output directly raises GradError.

Nothing here names an op: every test is generated from ``tests.op_table.OPS``, in
float64 (cases that run in no float dtype, e.g. integer-only variants, are left out).
Samples are filtered where a check is meaningless, never skipped at run time: no
float argument to differentiate; finite differences where an output is not finite
float64 (astype to float16, -inf over an empty axis); second order on size-0 inputs
or outputs.
"""

from __future__ import annotations

import zlib

import ml_dtypes
import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import GradError
from tests.op_table import OPS

EPS = 1e-6  # central differences in float64: truncation ~eps^2, rounding ~1e-16/eps


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _is_float_array(a) -> bool:
    """Real floating or complex: what gradients flow through."""
    return np.issubdtype(np.asarray(a).dtype, np.inexact)


def _inexact(t) -> bool:
    return t.dtype.is_floating_point or t.dtype.is_complex


def _diff_index(case, sample) -> tuple:
    """Positions of the arguments to differentiate: ``diff_args`` (or all), float ones only."""
    candidates = case.diff_args if case.diff_args is not None else range(len(sample.args))
    return tuple(i for i in candidates if _is_float_array(sample.args[i]))


def _runs_in_float(case) -> bool:
    return any("float" in d or "complex" in d for d in case.dtypes)


def _params(differentiable: bool, keep=lambda case, sample, idx: True):
    out = []
    for case in OPS:
        if case.differentiable != differentiable or not _runs_in_float(case):
            continue
        for k, sample in enumerate(case.samples(_rng(case.name))):
            idx = _diff_index(case, sample)
            if idx and keep(case, sample, idx):
                out.append(pytest.param(case, sample, idx, id=f"{case.name}-{k}-{sample!r}"))
    return out


def _outputs(case, sample):
    """The op's output leaves, or None when the forward fails (its tests then show why)."""
    try:
        return fx.tree_leaves(case.fx_fn(*map(fx.from_numpy, sample.args), **sample.kwargs))
    except Exception:
        return None


def _float64_outputs(case, sample, idx) -> bool:
    """Finite differences are meaningful only where the outputs are finite float64 (not
    astype float16, not logsumexp's -inf over an empty axis)."""
    outs = _outputs(case, sample)
    return outs is None or all(
        o.dtype in (fx.float64, fx.complex128) and np.isfinite(o.numpy()).all()
        for o in outs
        if _inexact(o)
    )


def _second_order(case, sample, idx) -> bool:
    """Second order needs something to perturb and something to measure, in float64."""
    if not case.second_order or any(np.size(sample.args[i]) == 0 for i in idx):
        return False
    if not _float64_outputs(case, sample, idx):
        return False
    outs = _outputs(case, sample)
    return outs is None or any(o.size > 0 and _inexact(o) for o in outs)


def _int_output(case, sample, idx) -> bool:
    outs = _outputs(case, sample)
    return outs is None or not all(_inexact(o) for o in outs)


DIFF = _params(True)
DIFF_F64 = _params(True, _float64_outputs)
DIFF_SECOND = _params(True, _second_order)
NONDIFF = _params(False)
NONDIFF_INT_OUT = _params(False, _int_output)
NO_GRADIENT_YET = _params("raises")
ARGS = "case, sample, idx"


# ----------------------------------------------------------------------------- helpers


def _fn(case, sample, idx, float_outputs=True):
    """``f(*xs)``: the op with the arguments at ``idx`` replaced by ``xs``, returning
    the list of its (float) output leaves."""
    consts = [fx.from_numpy(a) for a in sample.args]

    def f(*xs):
        args = list(consts)
        for i, x in zip(idx, xs):
            args[i] = x
        outs = fx.tree_leaves(case.fx_fn(*args, **sample.kwargs))
        return [o for o in outs if _inexact(o) or not float_outputs]

    return f


def _primals(sample, idx):
    return tuple(fx.from_numpy(sample.args[i]) for i in idx)


def _randn_like(rng, likes):
    """Normal draws shaped as ``likes`` (tensors), complex for the complex ones."""
    return tuple(
        rng.normal(size=x.shape) + 1j * rng.normal(size=x.shape)
        if x.dtype.is_complex
        else rng.normal(size=x.shape)
        for x in likes
    )


def _eval(f, arrays):
    return [o.numpy() for o in f(*map(fx.from_numpy, arrays))]


def _dot(xs, ys) -> float:
    """The real inner product Re(sum(x * y)), unconjugated: JAX's vjp is the transpose of
    the jvp for it (for real arrays, the plain dot product)."""
    return float(sum(np.sum(np.real(np.asarray(x) * np.asarray(y))) for x, y in zip(xs, ys)))


def _abs_dot(xs, ys) -> float:
    return float(sum(np.sum(np.abs(np.asarray(x) * np.asarray(y))) for x, y in zip(xs, ys)))


def _scale(arrays) -> float:
    return 1.0 + max((float(np.max(np.abs(a))) for a in arrays if np.size(a)), default=0.0)


def _close(got, want, rtol, atol, what):
    """allclose where a NaN is a failure, not a match."""
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=False, err_msg=what)


def _check_like(got, want, what):
    """Shape and dtype before values."""
    assert len(got) == len(want), f"{what}: {len(got)} results, expected {len(want)}"
    for g, w in zip(got, want):
        assert g.shape == w.shape, f"{what}: shape {g.shape}, expected {w.shape}"
        assert g.dtype == w.dtype, f"{what}: dtype {g.dtype}, expected {w.dtype}"


def _loss(outs, cts):
    """``sum_j <out_j, c_j>`` (the real inner product) as a fluxion scalar."""
    total = fx.tensor(0.0, dtype=fx.float64)
    for o, c in zip(outs, cts):
        total = total + fx.real(fx.sum(o * fx.from_numpy(c)))
    return total


# ----------------------------------------------------------------------------- first order


@pytest.mark.parametrize(ARGS, DIFF_F64)
def test_jvp_matches_finite_differences(case, sample, idx):
    f = _fn(case, sample, idx)
    primals = _primals(sample, idx)
    rng = _rng(case.name, "jvp", repr(sample))
    tangents = _randn_like(rng, primals)
    outs, touts = fx.jvp(f, primals, tuple(map(fx.from_numpy, tangents)))
    want = f(*primals)
    _check_like(outs, want, f"{case.name} jvp primal out")
    _check_like(touts, want, f"{case.name} jvp tangent out")
    xs = [sample.args[i] for i in idx]
    plus = _eval(f, [x + EPS * t for x, t in zip(xs, tangents)])
    minus = _eval(f, [x - EPS * t for x, t in zip(xs, tangents)])
    scale = _scale([o.numpy() for o in want])
    for o, w, t, p, m in zip(outs, want, touts, plus, minus):
        np.testing.assert_array_equal(o.numpy(), w.numpy())
        fd = (p - m) / (2 * EPS)
        _close(t.numpy(), fd, 1e-6, 1e-8 * scale, f"{case.name} jvp vs FD")


@pytest.mark.parametrize(ARGS, DIFF)
def test_vjp_inner_product_identity(case, sample, idx):
    f = _fn(case, sample, idx)
    primals = _primals(sample, idx)
    rng = _rng(case.name, "vjp", repr(sample))
    tangents = _randn_like(rng, primals)
    outs, pullback = fx.vjp(f, *primals)
    cts = _randn_like(rng, outs)
    in_cts = pullback([fx.from_numpy(c) for c in cts])
    _check_like(in_cts, primals, f"{case.name} vjp")
    _, touts = fx.jvp(f, primals, tuple(map(fx.from_numpy, tangents)))
    lhs, rhs = _dot(tangents, in_cts), _dot(touts, cts)
    scale = _abs_dot(tangents, in_cts) + _abs_dot(touts, cts)
    # float64 throughout, unless the op casts down (astype): then that dtype's precision
    eps = max([ml_dtypes.finfo(o.numpy().dtype).eps for o in outs] + [1e-14])
    assert abs(lhs - rhs) <= 1e4 * eps * (1.0 + scale), (
        f"{case.name}: <t, vjp(c)> = {lhs!r} but <jvp(t), c> = {rhs!r}"
    )


@pytest.mark.parametrize(ARGS, DIFF)
def test_backward_equals_grad(case, sample, idx):
    f = _fn(case, sample, idx)
    rng = _rng(case.name, "backward", repr(sample))
    cts = _randn_like(rng, f(*_primals(sample, idx)))
    leaves = [fx.tensor(sample.args[i], requires_grad=True) for i in idx]
    loss = _loss(f(*leaves), cts)
    loss.backward()
    want = fx.grad(lambda *xs: _loss(f(*xs), cts), argnums=tuple(range(len(idx))))(
        *_primals(sample, idx)
    )
    _check_like(want, leaves, f"{case.name} grad")
    for leaf, g in zip(leaves, want):
        got = np.zeros(leaf.shape) if leaf.grad is None else leaf.grad.numpy()
        assert leaf.grad is None or leaf.grad.dtype == leaf.dtype
        want = np.conj(g.numpy())  # .grad is PyTorch's: the conjugate, for a complex leaf
        _close(got, want, 1e-12, 1e-14 * _scale([want]), f"{case.name} backward vs grad")


# ----------------------------------------------------------------------------- second order


@pytest.mark.parametrize(ARGS, DIFF_SECOND)
def test_hvp_forward_over_reverse_equals_reverse_over_reverse(case, sample, idx):
    f = _fn(case, sample, idx)
    primals = _primals(sample, idx)
    rng = _rng(case.name, "hvp", repr(sample))
    cts = _randn_like(rng, f(*primals))
    vs = _randn_like(rng, primals)
    argnums = tuple(range(len(idx)))
    grad_g = fx.grad(lambda *xs: _loss(f(*xs), cts), argnums=argnums)

    _, fwd_rev = fx.jvp(grad_g, primals, tuple(map(fx.from_numpy, vs)))
    rev_rev = fx.grad(lambda *xs: _loss(grad_g(*xs), vs), argnums=argnums)(*primals)
    _check_like(fwd_rev, primals, f"{case.name} forward-over-reverse")
    _check_like(rev_rev, primals, f"{case.name} reverse-over-reverse")

    xs = [sample.args[i] for i in idx]
    plus = [g.numpy() for g in grad_g(*[fx.from_numpy(x + EPS * v) for x, v in zip(xs, vs)])]
    minus = [g.numpy() for g in grad_g(*[fx.from_numpy(x - EPS * v) for x, v in zip(xs, vs)])]
    scale = _scale([g.numpy() for g in grad_g(*primals)] + [h.numpy() for h in fwd_rev])
    for a, b, p, m in zip(fwd_rev, rev_rev, plus, minus):
        _close(a.numpy(), b.numpy(), 1e-9, 1e-12 * scale, f"{case.name} fwd-rev vs rev-rev")
        fd = (p - m) / (2 * EPS)
        _close(a.numpy(), fd, 1e-6, 1e-8 * scale, f"{case.name} hvp vs FD of the gradient")


# ----------------------------------------------------------------------------- non-differentiable


@pytest.mark.parametrize(ARGS, NONDIFF)
def test_nondifferentiable_gradient_is_zero(case, sample, idx):
    f = _fn(case, sample, idx, float_outputs=False)
    primals = _primals(sample, idx)
    rng = _rng(case.name, "zero", repr(sample))
    cts = _randn_like(rng, f(*primals))

    def as_float(*xs):
        return _loss([o.astype(fx.float64) for o in f(*xs)], cts)

    grads = fx.grad(as_float, argnums=tuple(range(len(idx))))(*primals)
    _check_like(grads, primals, f"{case.name} grad")
    for g in grads:
        np.testing.assert_array_equal(g.numpy(), 0.0)

    tangents = tuple(fx.from_numpy(t) for t in _randn_like(rng, primals))
    outs, touts = fx.jvp(f, primals, tangents)
    _check_like(touts, outs, f"{case.name} jvp tangent out")
    for t in touts:
        np.testing.assert_array_equal(t.numpy(), 0)


@pytest.mark.parametrize(ARGS, NONDIFF_INT_OUT)
def test_differentiating_int_or_bool_output_raises(case, sample, idx):
    f = _fn(case, sample, idx, float_outputs=False)
    primals = _primals(sample, idx)
    outs = f(*primals)
    for k in [k for k, o in enumerate(outs) if not o.dtype.is_floating_point]:
        dtype = outs[k].dtype
        with pytest.raises(GradError) as info:
            fx.grad(lambda *xs: f(*xs)[k], argnums=tuple(range(len(idx))))(*primals)
        message = str(info.value)
        assert "grad" in message and "float" in message and str(dtype) in message, message


@pytest.mark.parametrize(ARGS, NO_GRADIENT_YET)
def test_op_without_a_derivative_raises(case, sample, idx):
    f = _fn(case, sample, idx)
    primals = _primals(sample, idx)
    cts = _randn_like(_rng(case.name, "raises", repr(sample)), f(*primals))
    with pytest.raises(GradError, match="not implemented"):
        fx.grad(lambda *xs: _loss(f(*xs), cts), argnums=tuple(range(len(idx))))(*primals)
    with pytest.raises(GradError, match="not implemented"):
        fx.jvp(f, primals, tuple(fx.ones_like(p) for p in primals))


def test_the_table_feeds_every_check():
    """Guards the generator: an empty parameter list would pass silently."""
    for name, params in [("differentiable", DIFF), ("finite differences", DIFF_F64),
                         ("second order", DIFF_SECOND), ("non-differentiable", NONDIFF),
                         ("int/bool outputs", NONDIFF_INT_OUT)]:  # fmt: skip
        assert params, f"no op-table sample reaches the {name} checks"
    assert len(DIFF_F64) > len(DIFF) // 2 and len(DIFF_SECOND) > len(DIFF) // 2
