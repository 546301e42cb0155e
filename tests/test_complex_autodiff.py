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

jax.config.update("jax_enable_x64", True)

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
    y, ty = fx.jvp(f, (fx.asarray(x),), (fx.asarray(t),))
    jy, jty = jax.jvp(g, (x,), (t,))
    np.testing.assert_allclose(y.numpy(), jy, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ty.numpy(), jty, rtol=1e-12, atol=1e-12)
    ct = _fft_input("c" if np.iscomplexobj(jy) else "r", jy.shape)
    (got,) = fx.vjp(f, fx.asarray(x))[1](fx.asarray(ct))
    (want,) = jax.vjp(g, x)[1](ct)
    assert got.numpy().dtype == want.dtype
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    # vmap of the vjp over a batch of cotangents
    cts = np.stack([ct, 2 * ct])
    got = fx.vmap(lambda c: fx.vjp(f, fx.asarray(x))[1](c)[0])(fx.asarray(cts))
    want = jax.vmap(lambda c: jax.vjp(g, x)[1](c)[0])(cts)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


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
