"""fluxion.lax against jax.lax: results, gradients (vs jax.grad) and vmap (vs a Python loop)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_testing import assert_same, x64  # noqa: F401  (x64: JAX in float64)

import fluxion as fx
import fluxion.numpy as fnp
from fluxion import lax as flax_
from fluxion.errors import ShapeError

R = np.random.default_rng(1)
XS = R.normal(size=(5, 3))
W = R.normal(size=(3, 3)) * 0.5
M = R.normal(size=(6, 5))


def programs(m, lax):
    """Each takes float64 arrays and returns a scalar, written once for both libraries."""

    def scan_rnn(w, xs):
        def step(h, x):
            h = m.tanh(h @ w + x)
            return h, m.sum(h**2)

        h, ys = lax.scan(step, m.zeros(3, dtype=m.float64), xs)
        return m.sum(h) + m.sum(ys)

    def scan_reverse_pytree(w, xs):
        def step(carry, x):
            a, b = carry
            return (a * m.cos(x), b + a), {"y": m.sin(x) * a[0]}

        (a, b), out = lax.scan(step, (w[0], m.zeros(3, dtype=m.float64)), xs, reverse=True)
        return m.sum(a * b) + m.sum(out["y"])

    def fori(w, xs):
        return m.sum(lax.fori_loop(0, 4, lambda i, v: m.sin(v @ w) + xs[i], xs[4]))

    def cond_switch(w, xs):
        total = 0.0
        for k in range(3):
            x = xs[k]
            total = total + lax.cond(
                m.sum(x) > 0, lambda v: m.sum(v**2), lambda v: m.sum(m.exp(v)), x
            )
            total = total + lax.switch(k, [m.sum, lambda v: m.sum(v @ w), lambda v: m.prod(v)], x)
        return total

    def slices(w, xs):
        start = m.argmax(xs[:, 0])  # a traced start under jit
        window = lax.dynamic_slice(xs, (start, 1), (2, 2))
        written = lax.dynamic_update_slice(w, window * 3.0, (1, start % 2))
        row = lax.dynamic_index_in_dim(xs, 2, axis=0, keepdims=False)
        return m.sum(written**2) + m.sum(row * lax.dynamic_slice_in_dim(w, 1, 1, axis=1)[:, 0])

    def dot_general(w, xs):
        a = m.stack([xs[:3], xs[1:4]])  # (2, 3, 3)
        b = m.stack([w, w.T])
        batched = lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,))))
        plain = lax.dot_general(xs, w, (((1,), (0,)), ((), ())))
        return m.sum(m.sin(batched)) + m.sum(plain**2)

    def select_stop_gradient(w, xs):
        picked = lax.select(xs > 0, xs, -xs * 2)
        return m.sum(picked * lax.stop_gradient(w[0])) + m.sum(lax.stop_gradient(xs) * w[1])

    def while_and_map(w, xs):
        n = lax.while_loop(lambda c: c[0] < 10.0, lambda c: (c[0] * 2.0 + 1.0, c[1] + 1), (1.0, 0))[
            1
        ]
        mapped = lax.map(lambda x: m.sum(x * w[0]), xs)
        return m.sum(mapped) * n

    return {
        f.__name__: f
        for f in (
            scan_rnn,
            scan_reverse_pytree,
            fori,
            cond_switch,
            slices,
            dot_general,
            select_stop_gradient,
            while_and_map,
        )
    }


NAMES = list(programs(jnp, jax.lax))


@pytest.mark.parametrize("name", NAMES)
def test_value_grad_and_jit_match_jax(name):
    want_f, got_f = programs(jnp, jax.lax)[name], programs(fnp, flax_)[name]
    want = jax.jit(jax.value_and_grad(want_f, argnums=(0, 1)))(jnp.asarray(W), jnp.asarray(XS))
    args = (fx.asarray(W), fx.asarray(XS))
    assert_same(fx.value_and_grad(got_f, argnums=(0, 1))(*args), want)
    assert_same(fx.jit(fx.value_and_grad(got_f, argnums=(0, 1)))(*args), want)


@pytest.mark.parametrize("name", ["scan_rnn", "fori", "cond_switch", "slices", "dot_general"])
def test_vmap_matches_a_loop(name):
    f = programs(fnp, flax_)[name]
    batch = fx.asarray(R.normal(size=(3,) + XS.shape))
    loop = fx.stack([f(fx.asarray(W), batch[b]) for b in range(3)])
    assert_same(fx.vmap(f, in_axes=(None, 0))(fx.asarray(W), batch), loop)
    assert_same(
        fx.jit(fx.vmap(fx.grad(f), in_axes=(None, 0)))(fx.asarray(W), batch),
        fx.stack([fx.grad(f)(fx.asarray(W), batch[b]) for b in range(3)]),
    )


def test_dynamic_slice_clamps_like_jax():
    for start in [(-3, 0), (4, 1), (5, 5), (0, 2), (-9, -1)]:
        want = jax.lax.dynamic_slice(jnp.asarray(M), start, (3, 2))
        got = flax_.dynamic_slice(fx.asarray(M), start, (3, 2))
        assert_same(got, want)
        upd = R.normal(size=(2, 4))
        assert_same(
            flax_.dynamic_update_slice(fx.asarray(M), fx.asarray(upd), start),
            jax.lax.dynamic_update_slice(jnp.asarray(M), jnp.asarray(upd), start),
        )
    with pytest.raises(ShapeError, match="size 7"):
        flax_.dynamic_slice(fx.asarray(M), (0, 0), (7, 1))


def test_switch_clamps_the_index_and_elementwise_names():
    branches = [lambda v: v + 1, lambda v: v * 10, lambda v: -v]
    for index in (-2, 0, 1, 2, 7):
        want = jax.lax.switch(index, branches, jnp.asarray(2.0))
        assert_same(flax_.switch(index, branches, fx.tensor(2.0, dtype=fx.float64)), want)
        traced = fx.jit(lambda i: flax_.switch(i, branches, fx.tensor(2.0, dtype=fx.float64)))
        assert_same(traced(fx.tensor(index)), want)
    a, b = np.array([7, -7, 7, -7]), np.array([2, 2, -2, -2])
    assert_same(
        flax_.div(fx.asarray(a), fx.asarray(b)), jax.lax.div(jnp.asarray(a), jnp.asarray(b))
    )
    assert_same(flax_.clamp(0.0, fx.asarray(XS), 0.5), jax.lax.clamp(0.0, jnp.asarray(XS), 0.5))
    assert_same(
        flax_.cumsum(fx.asarray(XS), axis=0, reverse=True),
        jax.lax.cumsum(jnp.asarray(XS), axis=0, reverse=True),
    )
    assert_same(flax_.iota(fx.int32, 4), jax.lax.iota(jnp.int32, 4))
    assert_same(
        flax_.slice(fx.asarray(M), (1, 0), (5, 5), (2, 2)),
        jax.lax.slice(jnp.asarray(M), (1, 0), (5, 5), (2, 2)),
    )
    assert_same(
        tuple(flax_.top_k(fx.asarray(XS[0]), 2)),
        tuple(jax.lax.top_k(jnp.asarray(XS[0]), 2)),
        dtype=False,
    )
