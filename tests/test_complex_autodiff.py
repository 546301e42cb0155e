"""Gradients through complex values, against JAX (the convention fluxion follows) and
PyTorch (whose ``.grad`` convention ``Tensor.backward`` follows).

JAX's convention: a jvp is R-linear in the tangent (C-linear for holomorphic ops); a vjp
is its transpose for the real inner product ``Re(sum(a * b))``, never conjugated; so
``grad`` of a real loss over a complex z is ``dL/dx - i dL/dy``. PyTorch's ``.grad`` is
its conjugate (gradient descent steps along ``-z.grad``). Each check compares values of
jax.jvp / jax.vjp / jax.grad / jax.vmap on the same inputs, and central differences.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import fluxion as fx


@pytest.fixture(autouse=True)
def x64():
    """JAX in float64 for each test of this file only (a global switch would change the
    default dtypes other files' JAX references assume)."""
    with jax.enable_x64(True):
        yield


RNG = np.random.default_rng(17)


def _c(*shape):
    return RNG.normal(size=shape) + 1j * RNG.normal(size=shape)


Z, W = _c(3), _c(3)

# (name, fluxion loss, jax loss): real scalars of a complex vector
LOSSES = [
    ("abs_squared", lambda m, z: m.sum(m.abs(z) ** 2)),
    ("abs", lambda m, z: m.sum(m.abs(z))),
    ("real_exp", lambda m, z: m.sum(m.real(m.exp(z) * m.asarray(W)))),
    ("imag_log", lambda m, z: m.sum(m.imag(m.log(z) * z))),
    ("conj_sin", lambda m, z: m.sum(m.real(m.conj(z) * m.sin(z)))),
    ("power", lambda m, z: m.sum(m.real(z ** m.asarray(W)))),
    ("sqrt_tanh_div", lambda m, z: m.sum(m.imag(m.sqrt(z) / (m.tanh(z) + 2.0)))),
    (
        "matmul",
        lambda m, z: m.real(m.sum(m.reshape(z, (3, 1)) @ m.reshape(m.conj(z), (1, 3)) * 1j)),
    ),
    ("prod_cumsum", lambda m, z: m.abs(m.prod(z)) + m.sum(m.real(m.cumsum(z, axis=0) * z))),
]


@pytest.mark.parametrize("name, loss", LOSSES, ids=[n for n, _ in LOSSES])
def test_grad_of_a_real_loss_over_complex_inputs_is_jaxs(name, loss):
    got = fx.grad(lambda z: loss(fx, z))(fx.asarray(Z))
    want = jax.grad(lambda z: loss(jnp, z))(Z)
    assert got.dtype == fx.complex128
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    # and by central differences: dL/dx - i dL/dy
    eps, fd = 1e-6, np.zeros(3, complex)
    for k in range(3):
        for step, part in ((1.0, 1.0), (1j, -1j)):
            e = np.zeros(3, complex)
            e[k] = eps * step
            plus, minus = (float(loss(fx, fx.asarray(Z + s * e))) for s in (1, -1))
            fd[k] += part * (plus - minus) / (2 * eps)
    np.testing.assert_allclose(got.numpy(), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name, loss", LOSSES, ids=[n for n, _ in LOSSES])
def test_backward_gives_pytorchs_conjugate_gradient(name, loss):
    z = fx.tensor(Z, requires_grad=True)
    loss(fx, z).backward()
    jax_grad = jax.grad(lambda z: loss(jnp, z))(Z)
    np.testing.assert_allclose(z.grad.numpy(), np.conj(jax_grad), rtol=1e-12, atol=1e-12)


def test_backward_and_autograd_grad_match_torch_on_complex_outputs():
    a, b = fx.tensor(Z, requires_grad=True), torch.tensor(Z, requires_grad=True)
    (a * a * fx.exp(a)).backward(fx.asarray(W))
    (b * b * torch.exp(b)).backward(torch.tensor(W))
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)
    a, b = fx.tensor(Z, requires_grad=True), torch.tensor(Z, requires_grad=True)
    (got,) = fx.autograd.grad(fx.conj(a) * a * a, a, fx.asarray(W))
    (want,) = torch.autograd.grad(torch.conj(b) * b * b, b, torch.tensor(W))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def _holo(m, z):
    return m.tanh(z) * m.conj(z) + m.abs(z) * z


def test_jvp_and_vjp_of_complex_functions_are_jaxs():
    t, c = _c(3), _c(3)
    _, got = fx.jvp(lambda z: _holo(fx, z), (fx.asarray(Z),), (fx.asarray(t),))
    _, want = jax.jvp(lambda z: _holo(jnp, z), (Z,), (t,))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    (got,) = fx.vjp(lambda z: _holo(fx, z), fx.asarray(Z))[1](fx.asarray(c))
    (want,) = jax.vjp(lambda z: _holo(jnp, z), Z)[1](c)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_real_inputs_through_complex_intermediates():
    x = RNG.normal(size=4)

    def loss(m, x):
        z = x * (1 + 2j)
        return m.sum(m.abs(m.exp(z)) * m.real(m.sqrt(x.astype(m.complex128) + 3j)))

    got = fx.grad(lambda x: loss(fx, x))(fx.asarray(x))
    assert got.dtype == fx.float64
    np.testing.assert_allclose(got.numpy(), jax.grad(lambda x: loss(jnp, x))(x), rtol=1e-12)


def test_vmap_and_jit_of_complex_gradients_are_jaxs():
    zs = _c(4, 3)

    def loss(m, z):
        return m.real(m.sum(z * z * z)) + m.sum(m.abs(z))

    want = jax.vmap(jax.grad(lambda z: loss(jnp, z)))(zs)
    got = fx.vmap(fx.grad(lambda z: loss(fx, z)))(fx.asarray(zs))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    got = fx.jit(fx.vmap(fx.grad(lambda z: loss(fx, z))))(fx.asarray(zs))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    hvp = jax.jvp(jax.grad(lambda z: loss(jnp, z)), (zs[0],), (zs[1],))[1]
    got = fx.jvp(fx.grad(lambda z: loss(fx, z)), (fx.asarray(zs[0]),), (fx.asarray(zs[1]),))[1]
    np.testing.assert_allclose(got.numpy(), hvp, rtol=1e-12)


def test_grad_of_a_complex_output_is_refused_as_in_jax():
    with pytest.raises(fx.errors.GradError, match="float scalar"):
        fx.grad(lambda z: fx.sum(z * z))(fx.asarray(Z))


# ----------------------------------------------------------------------------- fx.fft

FFTS = [
    ("fft", {}, "c"), ("fft", {"n": 7}, "c"), ("ifft", {"n": 3, "norm": "ortho"}, "c"),
    ("fftn", {"axes": (0, 1)}, "c"), ("ifftn", {"s": (2, 7), "norm": "forward"}, "c"),
    ("rfft", {"axis": 0}, "r"), ("rfft", {"n": 4, "norm": "forward"}, "r"),
    ("rfftn", {"s": (3, 8), "norm": "ortho"}, "r"), ("irfft", {}, "c"),
    ("irfft", {"n": 7, "norm": "ortho"}, "c"), ("irfftn", {"s": (3, 6), "norm": "forward"}, "c"),
    ("hfft", {"n": 8}, "c"), ("hfft", {"n": 5, "norm": "forward"}, "c"),
    ("ihfft", {"n": 7, "norm": "ortho"}, "r"), ("ihfft", {}, "r"),
]  # fmt: skip


def _fft_input(kind, shape=(4, 5)):
    return _c(*shape) if kind == "c" else RNG.normal(size=shape)


@pytest.mark.parametrize("name, kwargs, kind", FFTS)
def test_fft_jvp_vjp_and_vmap_are_jaxs(name, kwargs, kind):
    x, t = _fft_input(kind), _fft_input(kind)
    f = lambda a: getattr(fx.fft, name)(a, **kwargs)  # noqa: E731
    g = lambda a: getattr(jnp.fft, name)(a, **kwargs)  # noqa: E731
    out = jax.eval_shape(g, x)
    ct = _fft_input("c" if np.issubdtype(out.dtype, np.complexfloating) else "r", out.shape)
    cts = np.stack([ct, 2 * ct])  # vmap of the vjp over a batch of cotangents

    @jax.jit  # one XLA compilation
    def jax_transforms(x, t, ct, cts):
        pullback = jax.vjp(g, x)[1]
        return jax.jvp(g, (x,), (t,)), pullback(ct)[0], jax.vmap(lambda c: pullback(c)[0])(cts)

    (jy, jty), want, want_batched = jax_transforms(x, t, ct, cts)
    y, ty = fx.jvp(f, (fx.asarray(x),), (fx.asarray(t),))
    np.testing.assert_allclose(y.numpy(), jy, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ty.numpy(), jty, rtol=1e-12, atol=1e-12)
    (got,) = fx.vjp(f, fx.asarray(x))[1](fx.asarray(ct))
    assert got.numpy().dtype == want.dtype
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    got = fx.vmap(lambda c: fx.vjp(f, fx.asarray(x))[1](c)[0])(fx.asarray(cts))
    np.testing.assert_allclose(got.numpy(), want_batched, rtol=1e-12, atol=1e-12)


def test_fft_gradient_of_a_real_loss_by_finite_differences():
    x = RNG.normal(size=6)

    def loss(m, x):
        spectrum = m.fft.rfft(x)
        return m.sum(m.abs(spectrum) ** 2 * m.arange(4.0)) + m.sum(
            m.fft.irfft(spectrum * 1j, n=6) * x
        )

    got = fx.grad(lambda x: loss(fx, x))(fx.asarray(x)).numpy()
    np.testing.assert_allclose(got, jax.grad(lambda x: loss(jnp, x))(x), rtol=1e-12, atol=1e-12)
    eps = 1e-6
    fd = [
        (float(loss(fx, fx.asarray(x + eps * e))) - float(loss(fx, fx.asarray(x - eps * e))))
        / (2 * eps)
        for e in np.eye(6)
    ]
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


def test_real_and_imag_under_jit_leave_their_input_alone():
    # NumPy's real/imag are views: compiled code reusing their buffer wrote into the input
    z = fx.asarray(np.array([1 + 2j, -0.5 + 0.3j]))
    f = fx.jit(lambda z: fx.imag(z) * 2.0 + fx.real(z) * fx.real(z))
    np.testing.assert_allclose(f(z).numpy(), [5.0, 0.85])
    np.testing.assert_allclose(f(z).numpy(), [5.0, 0.85])
    np.testing.assert_array_equal(z.numpy(), [1 + 2j, -0.5 + 0.3j])


# ----------------------------------------------------------------------------- fx.linalg


def _hpd(*shape):
    a = _c(*shape)
    return np.conj(np.swapaxes(a, -1, -2)) @ a / shape[-1] + np.diag(np.arange(1.0, shape[-1] + 1))


def _hermitian(x):
    return (x + np.conj(np.swapaxes(x, -1, -2))) / 2


def _svd_invariants(m, a):
    """Functions of an SVD that do not depend on the phases of its complex vectors."""
    u, s, vh = m.linalg.svd(a, full_matrices=False)
    rebuilt = (u * s[..., None, :].astype(u.dtype)) @ vh
    return [
        m.abs(u) ** 2,
        s,
        rebuilt,
        m.abs(vh) ** 2,
        m.real(u[..., :1, :] * m.conj(u[..., 1:2, :])),
    ]


def _eigh_invariants(m, a):
    w, v = m.linalg.eigh(a)
    return [w, m.abs(v) ** 2]


LINALG = [
    ("svd", _svd_invariants, [(4, 2), (2, 3, 4)], _c),
    ("qr", lambda m, a: list(m.linalg.qr(a)), [(4, 2), (2, 3, 3)], _c),
    ("pinv", lambda m, a: m.linalg.pinv(a), [(2, 4)], _c),
    ("slogdet", lambda m, a: list(m.linalg.slogdet(a)), [(2, 3, 3)], lambda *s: _c(*s) + 3 * np.eye(s[-1])),
    ("cholesky", lambda m, a: m.linalg.cholesky(a), [(2, 3, 3)], _hpd),
    ("cholesky_upper", lambda m, a: m.linalg.cholesky(a, upper=True), [(3, 3)], _hpd),
    ("eigh", _eigh_invariants, [(2, 3, 3)], _hpd),
    ("matrix_norm_nuc", lambda m, a: m.linalg.matrix_norm(a, ord="nuc"), [(3, 4)], _c),
    ("matrix_norm_2", lambda m, a: m.linalg.matrix_norm(a, ord=2), [(2, 3, 3)], _c),
]  # fmt: skip


@pytest.mark.parametrize("name, fn, shapes, make", LINALG, ids=[case[0] for case in LINALG])
@pytest.mark.parametrize("dtype", ["real", "complex"])
def test_linalg_jvp_and_vjp_are_jaxs(name, fn, shapes, make, dtype):
    hermitian = name.startswith(("cholesky", "eigh"))
    for shape in shapes:
        a = make(*shape) if dtype == "complex" else np.real(make(*shape))
        t = _c(*shape) if dtype == "complex" else RNG.normal(size=shape)
        t = _hermitian(t) if hermitian else t  # JAX symmetrizes; NumPy reads one triangle
        outs = jax.eval_shape(lambda a: [fn(jnp, a)], a)
        cts = jax.tree_util.tree_map(
            lambda o: (
                _c(*o.shape)
                if np.issubdtype(o.dtype, np.complexfloating)
                else RNG.normal(size=o.shape)
            ),
            outs,
        )

        @jax.jit  # one XLA compilation, rather than one per op of the rules
        def jax_jvp_and_vjp(a, t, c):
            return jax.jvp(lambda a: [fn(jnp, a)], (a,), (t,))[1], jax.vjp(
                lambda a: [fn(jnp, a)], a
            )[1](c)

        want_t, (want,) = jax_jvp_and_vjp(a, t, cts)
        _, got = fx.jvp(lambda a: [fn(fx, a)], (fx.asarray(a),), (fx.asarray(t),))
        for g, w in zip(fx.tree_leaves(got), jax.tree_util.tree_leaves(want_t)):
            np.testing.assert_allclose(
                g.numpy(), w, rtol=1e-8, atol=1e-9, err_msg=f"{name} jvp {shape}"
            )
        (got,) = fx.vjp(lambda a: [fn(fx, a)], fx.asarray(a))[1](
            jax.tree_util.tree_map(fx.asarray, cts)
        )
        if hermitian:  # fluxion's gradient lies on the triangle NumPy reads: compare along t
            got, want = np.sum(np.real(got.numpy() * t)), np.sum(np.real(want * t))
        else:
            got = got.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-9, err_msg=f"{name} vjp {shape}")
