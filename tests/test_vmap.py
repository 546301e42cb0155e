"""fx.vmap: the forms it is called in, its composition with the other transforms,
random numbers under it, and the errors it raises. Per-op coverage lives in
test_ops_vmap.py (generated from the op table)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import BatchingError


def rand(*shape, seed=0):
    return fx.asarray(np.random.default_rng(seed).normal(size=shape))


def close(got, want, tol=1e-10):
    want = np.asarray(want.numpy() if isinstance(want, fx.Tensor) else want)
    got = got.numpy()
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def stack_loop(fn, *batched):
    """``np.stack([fn(*slices_i)])`` over axis 0 of every argument: the reference."""
    return np.stack([fn(*[b[i] for b in batched]).numpy() for i in range(batched[0].shape[0])])


# ----------------------------------------------------------------------------- the seed


def test_seed_001_vmap_of_grad():
    """Notebook 001, section 4: per-row gradients of sum(2 x^2) are 4 x."""

    def function(x):
        return fx.sum(x * 2 * x, axes=0)

    batched_input = fx.randn(3, 5)
    vmapped_grad_function = fx.vmap(fx.grad(function), in_axes=0)
    res = vmapped_grad_function(batched_input)
    assert res.shape == (3, 5) and res.dtype == fx.float32
    np.testing.assert_allclose(res.numpy(), 4 * batched_input.numpy(), rtol=1e-6)


def test_seed_001_jit_of_vmap_of_grad():
    """Notebook 001, section 5: the same under jit."""

    def function(x):
        return fx.sum(x * 2 * x, axes=0)

    x = rand(3, 5)
    close(fx.jit(fx.vmap(fx.grad(function)))(x), 4 * x.numpy())


# ----------------------------------------------------------------------------- forms


def test_decorator_forms():
    x, y = rand(3, 4), rand(4, seed=1)

    @fx.vmap
    def row_sum(row):
        return row.sum()

    @fx.vmap(in_axes=(0, None))
    def shifted(row, shift):
        return row + shift

    close(row_sum(x), x.numpy().sum(1))
    close(shifted(x, y), x.numpy() + y.numpy())
    close(fx.vmap(in_axes=1)(lambda col: col.sum())(x), x.numpy().sum(0))
    assert row_sum.__name__ == "row_sum"


def test_in_axes_int_none_tuple_list():
    x, y = rand(3, 4), rand(4, 3, seed=1)
    want = x.numpy() * y.numpy().T
    close(fx.vmap(lambda a, b: a * b, in_axes=(0, 1))(x, y), want)
    close(fx.vmap(lambda a, b: a * b, in_axes=[0, 1])(x, y), want)
    close(fx.vmap(lambda a, b: a * b, in_axes=1)(x.T, y), want)
    v = rand(4, seed=2)
    close(fx.vmap(lambda a, b: a * b, in_axes=(0, None))(x, v), x.numpy() * v.numpy())
    # non-tensor arguments with in_axes=None pass through untouched
    close(fx.vmap(lambda a, k: a * k, in_axes=(0, None))(x, 3.0), 3 * x.numpy())


def test_in_axes_negative():
    x = rand(2, 3, 4)
    close(fx.vmap(lambda a: a.sum(), in_axes=-1)(x), x.numpy().sum((0, 1)))
    close(fx.vmap(lambda a: a.sum(0), in_axes=-2)(x), x.numpy().sum(0))
    close(fx.vmap(lambda a: a, in_axes=-3)(x), x.numpy())


def test_in_axes_pytree_prefix():
    p, q = rand(3, 4), rand(4, seed=1)
    r = rand(4, 3, seed=2)
    # a dict argument: one entry per key
    got = fx.vmap(lambda d: d["p"] * d["q"], in_axes=({"p": 0, "q": None},))({"p": p, "q": q})
    close(got, p.numpy() * q.numpy())
    # an int for a whole subtree
    got = fx.vmap(lambda d, s: d["p"] + d["r"] * s, in_axes=(0, None))({"p": p, "r": r.T}, 2.0)
    close(got, p.numpy() + 2.0 * r.numpy().T)
    # nested tuples
    got = fx.vmap(lambda t: t[0] + t[1][0] * t[1][1], in_axes=((0, (None, 1)),))((p, (q, r)))
    close(got, p.numpy() + q.numpy() * r.numpy().T)
    # a dict of in_axes is used as is for a single dict argument
    got = fx.vmap(lambda d: d["p"] * d["q"], in_axes={"p": 0, "q": None})({"p": p, "q": q})
    close(got, p.numpy() * q.numpy())


def test_out_axes():
    x = rand(3, 4, 5)
    close(fx.vmap(lambda a: a, out_axes=1)(x), np.moveaxis(x.numpy(), 0, 1))
    close(fx.vmap(lambda a: a, out_axes=-1)(x), np.moveaxis(x.numpy(), 0, -1))
    close(fx.vmap(lambda a: a * 2, in_axes=2, out_axes=2)(x), 2 * x.numpy())
    # a pytree of out_axes; None for an output that does not depend on the batch
    out = fx.vmap(
        lambda a: {"same": a, "sums": (a.sum(0), a.sum()), "const": fx.ones(2)},
        out_axes={"same": -1, "sums": (1, 0), "const": None},
    )(x)
    close(out["same"], np.moveaxis(x.numpy(), 0, -1))
    close(out["sums"][0], x.numpy().sum(1).T)
    close(out["sums"][1], x.numpy().sum((1, 2)))
    close(out["const"], np.ones(2))
    # an unbatched output asked for an axis is broadcast along it
    close(fx.vmap(lambda a: fx.ones(2), out_axes=1)(x), np.ones((2, 3)))
    close(fx.vmap(lambda a: 1.5)(x), np.full(3, 1.5, np.float32))


def test_axis_size():
    y = rand(4)
    out = fx.vmap(lambda a: a * 2, in_axes=None, axis_size=3)(y)
    close(out, np.broadcast_to(2 * y.numpy(), (3, 4)))
    close(fx.vmap(lambda: fx.zeros(2), axis_size=5)(), np.zeros((5, 2), np.float32))
    close(fx.vmap(lambda a: a, axis_size=3)(rand(3, 2)), rand(3, 2).numpy())
    assert fx.vmap(lambda a: a.sum())(fx.zeros((0, 4))).shape == (0,)


def test_nested_vmap():
    x = rand(2, 3, 4)
    close(fx.vmap(fx.vmap(lambda a: a.sum()))(x), x.numpy().sum(-1))
    # the inner map runs over an axis of a value batched by the outer one
    close(fx.vmap(lambda a: fx.vmap(lambda c: c.sum(), in_axes=1)(a))(x), x.numpy().sum(1))
    # the inner function closes over the outer tracer
    v, w = rand(3), rand(5, seed=1)
    got = fx.vmap(lambda a: fx.vmap(lambda b: a * b)(w))(v)
    close(got, np.outer(v.numpy(), w.numpy()))
    # the outer map at the last axis, the inner at 0
    close(fx.vmap(fx.vmap(lambda a: a * 2), in_axes=-1)(x), 2 * np.moveaxis(x.numpy(), -1, 0))


# ----------------------------------------------------------------------------- autodiff


def test_grad_of_vmap_vs_loop():
    xs, w = rand(5, 3), rand(3, 2, seed=1)

    def per_example(w, x):
        return fx.tanh(x @ w).sum()

    def total(w):
        return fx.sum(fx.vmap(per_example, in_axes=(None, 0))(w, xs))

    want = sum(fx.grad(per_example)(w, xs[i]).numpy() for i in range(5))
    close(fx.grad(total)(w), want)


def _mlp_params():
    return {
        "w1": rand(4, 8, seed=1),
        "b1": rand(8, seed=2),
        "w2": rand(8, 3, seed=3),
        "b2": rand(3, seed=4),
    }


def _mlp_loss(params, x, y):
    h = fx.tanh(x @ params["w1"] + params["b1"])
    logits = h @ params["w2"] + params["b2"]
    return -fx.sum(fx.log_softmax(logits) * fx.one_hot(y, 3, dtype=fx.float64))


def test_per_example_gradients_of_mlp():
    params, xs = _mlp_params(), rand(6, 4, seed=5)
    ys = fx.tensor(np.array([0, 2, 1, 1, 0, 2]))
    grads = fx.vmap(fx.grad(_mlp_loss), in_axes=(None, 0, 0))(params, xs, ys)
    assert sorted(grads) == ["b1", "b2", "w1", "w2"]
    for i in range(6):
        g = fx.grad(_mlp_loss)(params, xs[i], ys[i])
        for k in params:
            assert grads[k].shape == (6,) + params[k].shape
            close(grads[k][i], g[k])
    # their mean is the gradient of the mean loss
    mean_grad = fx.grad(lambda p: fx.mean(fx.vmap(_mlp_loss, in_axes=(None, 0, 0))(p, xs, ys)))(
        params
    )
    for k in params:
        close(mean_grad[k], grads[k].numpy().mean(0))


def test_vmap_of_value_and_grad_and_of_vjp():
    xs = rand(4, 3)

    def f(x):
        return fx.sum(fx.sin(x) * x)

    values, grads = fx.vmap(fx.value_and_grad(f))(xs)
    close(values, [f(xs[i]).numpy() for i in range(4)])
    close(grads, stack_loop(fx.grad(f), xs))

    cts = rand(4, 3, seed=1)

    def pull(x, ct):
        return fx.vjp(fx.tanh, x)[1](ct)[0]

    close(fx.vmap(pull)(xs, cts), stack_loop(pull, xs, cts))


def test_backward_through_vmap():
    w = fx.tensor(rand(3, 2).numpy(), requires_grad=True)
    fx.vmap(lambda a: (a * a).sum())(w).sum().backward()
    close(w.grad, 2 * w.numpy())


def finite_differences(f, x, eps=1e-6):
    """d f / d x by central differences: shape f(x).shape + x.shape."""
    x = x.numpy()
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = eps
        plus, minus = f(fx.asarray(x + e)).numpy(), f(fx.asarray(x - e)).numpy()
        cols.append((plus - minus) / (2 * eps))
    return np.stack(cols, -1).reshape(np.shape(cols[0]) + x.shape)


def _vector_fn(v):
    return fx.concatenate([fx.tanh(v) * fx.sum(v * v), fx.sin(v[::-1])[:2]])


@pytest.mark.parametrize("jac", [fx.jacfwd, fx.jacrev], ids=["jacfwd", "jacrev"])
def test_jacobians_vs_finite_differences(jac):
    x = rand(4)
    want = finite_differences(_vector_fn, x)
    assert want.shape == (6, 4)
    close(jac(_vector_fn)(x), want, tol=1e-7)
    m = rand(2, 3, seed=1)

    def matrix_fn(a):
        return fx.exp(a) @ fx.ones((3, 2), dtype=fx.float64)

    close(jac(matrix_fn)(m), finite_differences(matrix_fn, m), tol=1e-7)


def test_jacobians_agree_and_vmap_over_them():
    xs = rand(3, 4)
    fwd = fx.vmap(fx.jacfwd(_vector_fn))(xs)
    rev = fx.vmap(fx.jacrev(_vector_fn))(xs)
    assert fwd.shape == (3, 6, 4)
    close(fwd, rev)
    close(fwd, stack_loop(fx.jacfwd(_vector_fn), xs))


def test_hessian_vs_finite_differences():
    def g(v):
        return fx.sum(fx.tanh(v) * fx.sin(v) * v)

    x = rand(4)
    close(fx.hessian(g)(x), finite_differences(fx.grad(g), x), tol=1e-7)
    xs = rand(2, 4, seed=1)
    close(fx.vmap(fx.hessian(g))(xs), stack_loop(fx.hessian(g), xs))


def test_custom_vjp_under_vmap():
    """A custom rule holds whichever side of vmap the derivative is taken on."""

    @fx.custom_vjp
    def clip_gradient(x):
        return x

    clip_gradient.defvjp(lambda x: (x, None), lambda res, ct: (fx.clip(ct, -1.0, 1.0),))

    def f(x):
        return fx.sum(clip_gradient(x) * 5.0)

    xs = rand(3, 2)
    want = np.ones((3, 2))  # 5 clipped to 1
    close(fx.vmap(fx.grad(f))(xs), want)
    close(fx.grad(lambda x: fx.sum(fx.vmap(f)(x)))(xs), want)


def test_custom_jvp_under_vmap():
    """A custom rule holds whichever side of vmap the derivative is taken on."""
    xs = rand(3, 2)

    @fx.custom_jvp
    def sin_with_fake_derivative(x):
        return fx.sin(x)

    sin_with_fake_derivative.defjvp(lambda p, t: (fx.sin(p[0]), t[0] * 100.0))
    ones = fx.ones_like(xs)
    close(
        fx.vmap(lambda a, t: fx.jvp(sin_with_fake_derivative, (a,), (t,))[1])(xs, ones),
        np.full((3, 2), 100.0),
    )
    close(fx.jvp(fx.vmap(sin_with_fake_derivative), (xs,), (ones,))[1], np.full((3, 2), 100.0))


def test_control_flow_under_vmap():
    x = fx.asarray(np.array([-2.0, -0.5, 1.0, 3.0]))

    def piecewise(a):
        return fx.cond(a > 0, lambda v: v * 2, lambda v: -v, a)

    close(fx.vmap(piecewise)(x), stack_loop(piecewise, x))
    close(fx.vmap(fx.grad(piecewise))(x), [-1.0, -1.0, 2.0, 2.0])

    def doublings(a):  # a different trip count per example
        zero = fx.zeros((), dtype=fx.float64)
        return fx.while_loop(lambda c: c[0] < 10.0, lambda c: (c[0] * 2, c[1] + 1), (a, zero))[1]

    close(fx.vmap(doublings)(fx.asarray(np.array([1.0, 3.0, 0.5, 20.0]))), [4.0, 2.0, 5.0, 0.0])

    def running(v):
        return fx.scan(lambda c, e: (c + e, c * e), fx.zeros((), dtype=fx.float64), v)[1]

    m = rand(3, 4)
    close(fx.vmap(running)(m), stack_loop(running, m))
    close(fx.vmap(running, in_axes=1)(m), stack_loop(running, m.T))


# ----------------------------------------------------------------------------- random numbers


def test_random_keys_under_vmap():
    keys = fx.random.split(fx.random.key(0), 3)
    draws = fx.vmap(lambda k: fx.random.normal(k, (4,)))(keys)
    assert draws.shape == (3, 4)
    for i in range(3):
        np.testing.assert_array_equal(draws[i].numpy(), fx.random.normal(keys[i], (4,)).numpy())
    # independent draws: no two rows alike
    assert len({tuple(r) for r in draws.numpy().tolist()}) == 3
    # keys batched at axis 1, and split under vmap
    uni = fx.vmap(lambda k: fx.random.uniform(k, (2,)), in_axes=1)(keys.T)
    for i in range(3):
        np.testing.assert_array_equal(uni[i].numpy(), fx.random.uniform(keys[i], (2,)).numpy())
    subkeys = fx.vmap(fx.random.split)(keys)
    assert subkeys.shape == (3, 2, 2)
    np.testing.assert_array_equal(subkeys[1].numpy(), fx.random.split(keys[1]).numpy())


def test_random_key_shared_by_the_batch():
    key = fx.random.key(7)
    out = fx.vmap(lambda x, k: x + fx.random.normal(k, (2,), dtype=fx.float64), in_axes=(0, None))(
        fx.zeros((3, 2), dtype=fx.float64), key
    )
    for i in range(3):
        np.testing.assert_array_equal(
            out[i].numpy(), fx.random.normal(key, (2,), fx.float64).numpy()
        )


# ----------------------------------------------------------------------------- errors


def raises(match, fn, *args):
    with pytest.raises(BatchingError, match=match) as info:
        fn(*args)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_error_in_axes_structure():
    x = rand(3, 4)
    msg = raises("in_axes has 2 entries", fx.vmap(lambda a: a, in_axes=(0, 0)), x)
    assert "1 positional argument" in msg
    msg = raises("in_axes does not fit", fx.vmap(lambda d: d["a"], in_axes=({"b": 0},)), {"a": x})
    assert "'b'" in msg and "'a'" in msg
    raises("in_axes does not fit", fx.vmap(lambda a, b: a, in_axes=(0, (0, 0))), x, x)
    raises("ints or None", fx.vmap(lambda a: a, in_axes=0.5), x)
    raises("ints or None", fx.vmap(lambda a: a, in_axes=(True,)), x)


def test_error_batch_sizes_disagree():
    msg = raises("different sizes", fx.vmap(lambda a, b: a + b), rand(3, 4), rand(4, 4))
    assert "argument 0: 3" in msg and "argument 1: 4" in msg
    msg = raises(
        "different sizes", fx.vmap(lambda d: d["p"] + d["q"]), {"p": rand(3), "q": rand(2)}
    )
    assert "argument 0['p']: 3" in msg and "argument 0['q']: 2" in msg
    msg = raises("different sizes", fx.vmap(lambda a: a, axis_size=5), rand(3, 2))
    assert "axis_size: 5" in msg and "argument 0: 3" in msg
    # a callable without __name__ still gets a message
    part = functools.partial(lambda a, b, c: a + b, c=0)
    raises("different sizes", fx.vmap(part), rand(3), rand(2))


def test_error_axis_out_of_range():
    msg = raises("out of range", fx.vmap(lambda a: a, in_axes=2), rand(3, 4))
    assert "(3, 4)" in msg and "[-2, 2)" in msg
    raises("out of range", fx.vmap(lambda a: a, in_axes=-3), rand(3, 4))
    msg = raises("out_axes 3 does not fit", fx.vmap(lambda a: a, out_axes=3), rand(3, 4))
    assert "[-2, 1]" in msg


def test_error_zero_dim_argument():
    msg = raises("0-d", fx.vmap(lambda a: a), fx.tensor(1.0))
    assert "in_axes=None" in msg and "argument 0" in msg


def test_error_out_axes_none_for_batched_output():
    msg = raises("out_axes is None", fx.vmap(lambda a: a, out_axes=None), rand(3, 4))
    assert "output" in msg
    msg = raises(
        "out_axes is None", fx.vmap(lambda a: (a.sum(), a), out_axes=(0, None)), rand(3, 4)
    )
    assert "output[1]" in msg
    raises("out_axes does not fit", fx.vmap(lambda a: (a, a), out_axes=(0, 1, 2)), rand(3, 4))


def test_error_nothing_mapped():
    msg = raises("axis_size", fx.vmap(lambda a: a, in_axes=None), rand(3))
    assert "in_axes are None" in msg
    raises("axis_size must be", fx.vmap(lambda a: a, in_axes=None, axis_size=-1), rand(3))


def test_error_output_not_a_tensor():
    msg = raises("not a tensor", fx.vmap(lambda a: (a, "label")), rand(3))
    assert "output[1]" in msg and "str" in msg


def test_error_python_control_flow_names_vmap():
    with pytest.raises(fx.errors.TracerError, match="BatchTrace"):
        fx.vmap(lambda a: a if a.sum() > 0 else -a)(rand(3, 2))
