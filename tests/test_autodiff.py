"""Autodiff in both styles: functional transforms (grad, vjp, jvp, jacobians, custom
rules, checkpoint) and PyTorch-style ``backward()``, debug_nans, errors, and random
programs checked against PyTorch autograd.

Per-op derivatives are covered by ``test_ops_autodiff.py`` (generated from the op
table); this file tests the machinery.
"""

from __future__ import annotations

import inspect
import os
import pathlib
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import FloatingPointCheckError, GradError, InvalidArgumentError, TracerError

F64 = fx.float64
EPS = 1e-6


def t64(data, requires_grad=False):
    return fx.tensor(np.asarray(data, dtype=np.float64), requires_grad=requires_grad)


def close(got, want, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(
        np.asarray(got), np.asarray(want), rtol=rtol, atol=atol, equal_nan=False
    )


def fd_jacobian(f, x: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian of ``f: ndarray -> ndarray``, shaped ``out + in``."""
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = EPS
        e = e.reshape(x.shape)
        cols.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * EPS))
    out = np.asarray(f(x))
    return np.stack(cols, axis=-1).reshape(out.shape + x.shape)


# ----------------------------------------------------------------------------- seed 001


def test_seed_001_grad_of_sum_x_2_x_is_4x():
    x = t64(np.random.default_rng(1).normal(size=5))
    g = fx.grad(lambda x: fx.sum(x * 2 * x, axes=0))(x)
    assert g.shape == (5,) and g.dtype == F64
    close(g.numpy(), 4 * x.numpy())
    x32 = fx.tensor([1.0, 2.0, -3.0])
    g32 = fx.grad(lambda x: fx.sum(x * 2 * x, axes=0))(x32)
    assert g32.dtype == fx.float32
    close(g32.numpy(), [4.0, 8.0, -12.0])


def test_seed_001_vmap_of_grad():
    xs = t64(np.random.default_rng(2).normal(size=(3, 5)))
    g = fx.vmap(fx.grad(lambda x: fx.sum(x * 2 * x, axes=0)), in_axes=0)(xs)
    close(g.numpy(), 4 * xs.numpy())


# ----------------------------------------------------------------------------- grad, value_and_grad


def f_xy(x, y):
    return fx.sum(x * y * y + fx.sin(x))


def test_grad_argnums_int_tuple_and_negative():
    x, y = t64([0.5, -1.0, 2.0]), t64([1.5, 2.0, -0.5])
    xn, yn = x.numpy(), y.numpy()
    close(fx.grad(f_xy)(x, y).numpy(), yn**2 + np.cos(xn))
    close(fx.grad(f_xy, argnums=1)(x, y).numpy(), 2 * xn * yn)
    close(fx.grad(f_xy, argnums=-1)(x, y).numpy(), 2 * xn * yn)
    gx, gy = fx.grad(f_xy, argnums=(0, 1))(x, y)
    close(gx.numpy(), yn**2 + np.cos(xn))
    close(gy.numpy(), 2 * xn * yn)
    (gy_only,) = fx.grad(f_xy, argnums=(1,))(x, y)
    close(gy_only.numpy(), 2 * xn * yn)


def test_value_and_grad_and_kwargs_pass_through():
    x, y = t64([0.5, -1.0]), t64([1.5, 2.0])
    value, g = fx.value_and_grad(f_xy)(x, y)
    close(value.numpy(), f_xy(x, y).numpy())
    close(g.numpy(), y.numpy() ** 2 + np.cos(x.numpy()))
    g2 = fx.grad(lambda x, scale=1.0: fx.sum(x * x) * scale)(x, scale=3.0)
    close(g2.numpy(), 6 * x.numpy())


def test_has_aux():
    x = t64([1.0, 2.0, 3.0])

    def loss(x):
        y = x * x
        return fx.sum(y), {"y": y, "n": 3}

    g, aux = fx.grad(loss, has_aux=True)(x)
    close(g.numpy(), 2 * x.numpy())
    assert aux["n"] == 3 and not isinstance(aux["y"], fx.core.tensor.Tracer)
    close(aux["y"].numpy(), x.numpy() ** 2)
    (value, aux2), g2 = fx.value_and_grad(loss, has_aux=True)(x)
    close(value.numpy(), 14.0)
    close(g2.numpy(), g.numpy())
    close(aux2["y"].numpy(), x.numpy() ** 2)


Params = namedtuple("Params", ["w", "b"])


@pytest.mark.parametrize(
    "make",
    [
        lambda w, b: {"w": w, "b": b},
        lambda w, b: (w, b),
        lambda w, b: [w, b],
        lambda w, b: Params(w, b),
        lambda w, b: {"layer": [Params(w, b)], "meta": None},
    ],
    ids=["dict", "tuple", "list", "namedtuple", "nested"],
)
def test_grad_of_pytree_has_the_same_structure(make):
    rng = np.random.default_rng(3)
    wn, bn, xn = rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(4, 3))
    params = make(t64(wn), t64(bn))

    def loss(params, x):
        w, b = _find(params, "w"), _find(params, "b")
        return fx.sum(fx.tanh(x @ w + b) ** 2)

    g = fx.grad(loss)(params, t64(xn))
    assert fx.tree_structure(g) == fx.tree_structure(params)
    assert type(g) is type(params)
    # each leaf against the gradient w.r.t. (w, b) as plain arguments
    gw, gb = fx.grad(lambda w, b: fx.sum(fx.tanh(t64(xn) @ w + b) ** 2), argnums=(0, 1))(
        t64(wn), t64(bn)
    )
    for leaf, want in zip(fx.tree_leaves(g), fx.tree_leaves(make(gw, gb))):
        close(leaf.numpy(), want.numpy(), rtol=1e-12, atol=1e-14)


def _find(tree, name):
    """The first leaf at a 'w'/'b' position of the pytrees used above."""
    if isinstance(tree, Params):
        return getattr(tree, name)
    if isinstance(tree, dict) and name in tree:
        return tree[name]
    if isinstance(tree, dict):
        return _find(tree["layer"][0], name)
    return tree[0 if name == "w" else 1]


def test_vjp_and_jvp_with_pytrees():
    rng = np.random.default_rng(4)
    an, bn = rng.normal(size=3), rng.normal(size=(2, 3))

    def f(inp):
        a, b = inp["a"], inp["pair"][1]
        return {"s": fx.sum(a * b, axis=1), "t": (fx.exp(a), a[0] * b[1, 2])}

    primals = {"a": t64(an), "pair": (t64(1.0), t64(bn))}
    out, pullback = fx.vjp(f, primals)
    assert set(out) == {"s", "t"} and isinstance(out["t"], tuple)
    cts = {"s": t64(rng.normal(size=2)), "t": (t64(rng.normal(size=3)), t64(0.7))}
    (g,) = pullback(cts)
    assert fx.tree_structure(g) == fx.tree_structure(primals)
    close(g["pair"][0].numpy(), 0.0)  # unused input: zero cotangent
    tangents = {"a": t64(rng.normal(size=3)), "pair": (t64(0.3), t64(rng.normal(size=(2, 3))))}
    out2, tout = fx.jvp(f, (primals,), (tangents,))
    assert fx.tree_structure(tout) == fx.tree_structure(out)
    lhs = sum(
        np.sum(t.numpy() * c.numpy()) for t, c in zip(fx.tree_leaves(tangents), fx.tree_leaves(g))
    )
    rhs = sum(
        np.sum(t.numpy() * c.numpy()) for t, c in zip(fx.tree_leaves(tout), fx.tree_leaves(cts))
    )
    close(lhs, rhs, rtol=1e-12)
    for o, o2 in zip(fx.tree_leaves(out), fx.tree_leaves(out2)):
        close(o.numpy(), o2.numpy())


def test_pullback_can_be_called_twice_and_constants_get_zero_gradients():
    x = t64([1.0, 2.0])
    _, pullback = fx.vjp(lambda x: fx.sin(x) * x, x)
    ct = t64([1.0, -1.0])
    (g1,), (g2,) = pullback(ct), pullback(ct)
    close(g1.numpy(), g2.numpy())
    close(g1.numpy(), (np.cos([1.0, 2.0]) * [1.0, 2.0] + np.sin([1.0, 2.0])) * [1.0, -1.0])
    close(fx.grad(lambda x: fx.sum(t64([1.0, 2.0])))(x).numpy(), [0.0, 0.0])
    close(fx.grad(lambda x, n: fx.sum(x * n))(x, fx.tensor([3, 4])).numpy(), [3.0, 4.0])


# ----------------------------------------------------------------------------- jacobians, hessian


def _pytree_fn(d):
    x, y = d["x"], d["y"]
    return {"u": fx.sin(x) * fx.sum(y), "v": (y @ x, fx.sum(x * x))}


def _flat_np(tree):
    return np.concatenate([np.ravel(leaf.numpy()) for leaf in fx.tree_leaves(tree)])


@pytest.mark.parametrize("jac", [fx.jacrev, fx.jacfwd], ids=["jacrev", "jacfwd"])
def test_jacobian_of_pytrees_matches_finite_differences(jac):
    rng = np.random.default_rng(5)
    xn, yn = rng.normal(size=3), rng.normal(size=(2, 3))
    inp = {"x": t64(xn), "y": t64(yn)}
    J = jac(_pytree_fn)(inp)
    # structure: output tree of input trees, blocks shaped out.shape + in.shape
    assert set(J) == {"u", "v"} and set(J["u"]) == {"x", "y"}
    assert J["u"]["x"].shape == (3, 3) and J["u"]["y"].shape == (3, 2, 3)
    assert J["v"][0]["y"].shape == (2, 2, 3) and J["v"][1]["x"].shape == (3,)

    def flat_f(flat):
        d = {"x": t64(flat[:3]), "y": t64(flat[3:].reshape(2, 3))}
        return _flat_np(_pytree_fn(d))

    want = fd_jacobian(flat_f, np.concatenate([xn, yn.ravel()]))
    out_sizes = [3, 2, 1]
    rows = np.split(want, np.cumsum(out_sizes)[:-1], axis=0)
    for block_tree, rows_k in zip([J["u"], J["v"][0], J["v"][1]], rows):
        got = np.concatenate(
            [block_tree["x"].numpy().reshape(rows_k.shape[0], -1),
             block_tree["y"].numpy().reshape(rows_k.shape[0], -1)],
            axis=1,
        )  # fmt: skip
        close(got, rows_k, rtol=1e-6, atol=1e-8)


def test_jacrev_equals_jacfwd_with_argnums_and_aux():
    rng = np.random.default_rng(6)
    a, b = t64(rng.normal(size=(3, 2))), t64(rng.normal(size=2))

    def f(a, b):
        y = fx.tanh(a @ b) * fx.exp(b[0])
        return y, {"norm": fx.sum(y * y)}

    (ja_r, jb_r), aux_r = fx.jacrev(f, argnums=(0, 1), has_aux=True)(a, b)
    (ja_f, jb_f), aux_f = fx.jacfwd(f, argnums=(0, 1), has_aux=True)(a, b)
    assert ja_r.shape == (3, 3, 2) and jb_r.shape == (3, 2)
    close(ja_r.numpy(), ja_f.numpy())
    close(jb_r.numpy(), jb_f.numpy())
    close(aux_r["norm"].numpy(), aux_f["norm"].numpy())
    close(
        jb_r.numpy(),
        fd_jacobian(lambda bn: f(a, t64(bn))[0].numpy(), b.numpy()),
        rtol=1e-6,
        atol=1e-8,
    )


def test_hessian_matches_finite_differences_and_closed_form():
    rng = np.random.default_rng(7)
    xn, A = rng.normal(size=4), rng.normal(size=(4, 4))

    def f(x):
        return fx.sum(fx.sin(x) * x) + 0.5 * fx.sum(x * (t64(A) @ x)) + fx.logsumexp(x)

    H = fx.hessian(f)(t64(xn))
    assert H.shape == (4, 4)
    want = fd_jacobian(lambda v: fx.grad(f)(t64(v)).numpy(), xn)
    close(H.numpy(), want, rtol=1e-6, atol=1e-8)
    close(H.numpy(), H.numpy().T, rtol=1e-12, atol=1e-12)
    s = np.exp(xn - xn.max())
    p = s / s.sum()
    closed = (
        np.diag(2 * np.cos(xn) - xn * np.sin(xn)) + 0.5 * (A + A.T) + np.diag(p) - np.outer(p, p)
    )
    close(H.numpy(), closed, rtol=1e-12, atol=1e-12)


def test_jacobians_with_size_0_inputs_or_outputs():
    x = t64([0.5, 1.2, -0.3])
    empty = t64(np.zeros((0, 3)))
    for jac in (fx.jacfwd, fx.jacrev):
        assert jac(lambda x: x * 2)(empty).shape == (0, 3, 0, 3)
        assert jac(fx.sum)(empty).shape == (0, 3)
        assert jac(lambda x: x[:0])(x).shape == (0, 3)


def _scan_fn(x):
    c, ys = fx.scan(lambda c, xi: (fx.sin(c * xi), c * xi), t64(1.0), x)
    return c + fx.sum(ys * ys)


def _cond_fn(x):
    return fx.cond(fx.sum(x) > 0, lambda x: fx.sum(fx.sin(x) * x), lambda x: fx.sum(x * x * x), x)


def _fori_fn(x):
    return fx.sum(fx.fori_loop(0, 3, lambda i, v: v * fx.tanh(v) + 0.1, x))


@pytest.mark.parametrize(
    "f, xn",
    [
        (_scan_fn, [0.5, 1.2, -0.3]),
        (_cond_fn, [0.5, 1.2, -0.3]),
        (_cond_fn, [-0.5, 1.2, -0.9]),
        (_fori_fn, [0.5, 1.2, -0.3]),
    ],
    ids=["scan", "cond_true", "cond_false", "fori_loop"],
)
def test_derivatives_through_control_flow_eager_and_under_jit(f, xn):
    # eager, control flow runs as Python; under jit it is a primitive with its own rules
    xn = np.array(xn)
    x = t64(xn)
    want_g = fd_jacobian(lambda v: f(t64(v)).numpy(), xn)
    want_h = fd_jacobian(lambda v: fx.grad(f)(t64(v)).numpy(), xn)
    for g in (fx.grad(f), fx.jit(fx.grad(f)), fx.grad(fx.jit(f))):
        close(g(x).numpy(), want_g, rtol=1e-6, atol=1e-8)
    for h in (fx.hessian(f), fx.jit(fx.hessian(f)), fx.jacrev(fx.grad(fx.jit(f)))):
        close(h(x).numpy(), want_h, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- higher order


def test_power_with_a_constant_exponent_at_negative_bases():
    # the rule computes d/dy too; it must not turn into NaN where x < 0 (regression)
    xn = np.array([-1.5, -0.5, 2.0])
    x = t64(xn)
    close(fx.jvp(lambda x: x**2, (x,), (fx.ones_like(x),))[1].numpy(), 2 * xn)
    close(fx.hessian(lambda x: fx.sum(x**3))(x).numpy(), np.diag(6 * xn))
    with fx.debug_nans():
        close(fx.grad(lambda x: fx.sum(x**3))(x).numpy(), 3 * xn**2)


def test_nested_grad_on_polynomials():
    def p(x):
        return 3 * x**4 - 2 * x * x * x + x * 5.0 - 7.0

    for xv in (-1.5, 0.0, 0.7, 2.0):
        x = t64(xv)
        close(fx.grad(p)(x).numpy(), 12 * xv**3 - 6 * xv**2 + 5)
        close(fx.grad(fx.grad(p))(x).numpy(), 36 * xv**2 - 12 * xv)
        close(fx.grad(fx.grad(fx.grad(p)))(x).numpy(), 72 * xv - 12)
        close(fx.grad(fx.grad(fx.grad(fx.grad(p))))(x).numpy(), 72.0)


def test_mixed_forward_and_reverse_third_derivatives():
    def f(x):
        return fx.sin(x) * fx.exp(x)

    x = t64(0.3)
    one = t64(1.0)

    def d1_fwd(x):
        return fx.jvp(f, (x,), (one,))[1]

    want3 = 2 * np.exp(0.3) * (np.cos(0.3) - np.sin(0.3))  # d^3/dx^3 of sin(x) e^x
    close(fx.grad(fx.grad(d1_fwd))(x).numpy(), want3)
    close(fx.jvp(fx.grad(fx.grad(f)), (x,), (one,))[1].numpy(), want3)
    close(fx.grad(lambda x: fx.jvp(fx.grad(f), (x,), (one,))[1])(x).numpy(), want3)


def test_jvp_of_grad_is_a_hessian_vector_product():
    rng = np.random.default_rng(8)
    xn, vn = rng.normal(size=5), rng.normal(size=5)

    def f(x):
        return fx.sum(fx.tanh(x) ** 3) + fx.sum(x[1:] * x[:-1])

    _, hv = fx.jvp(fx.grad(f), (t64(xn),), (t64(vn),))
    close(hv.numpy(), fx.hessian(f)(t64(xn)).numpy() @ vn, rtol=1e-12, atol=1e-12)


def test_no_perturbation_confusion_reverse():
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1 (confusing the two perturbations gives 2)
    def outer(x):
        return x * fx.grad(lambda y: x + y)(t64(1.0))

    close(fx.grad(outer)(t64(1.0)).numpy(), 1.0)

    # d/dx [x * d/dy (x * y)] = d/dx [x * x] = 2x
    def outer2(x):
        return x * fx.grad(lambda y: x * y)(t64(3.0))

    close(fx.grad(outer2)(t64(1.5)).numpy(), 3.0)


def test_no_perturbation_confusion_forward_and_mixed():
    one = t64(1.0)

    def inner_fwd(x):
        return fx.jvp(lambda y: x + y, (t64(1.0),), (one,))[1]

    close(fx.jvp(lambda x: x * inner_fwd(x), (t64(1.0),), (one,))[1].numpy(), 1.0)
    close(fx.grad(lambda x: x * inner_fwd(x))(t64(1.0)).numpy(), 1.0)
    close(
        fx.jvp(lambda x: x * fx.grad(lambda y: x * y)(t64(3.0)), (t64(1.5),), (one,))[1].numpy(),
        3.0,
    )


def test_closure_differentiates_an_outer_variable():
    # f(x) = d/dy sin(x y) at y0 = x cos(x y0); f'(x) = cos(x y0) - x y0 sin(x y0)
    y0 = 0.8

    def f(x):
        return fx.grad(lambda y: fx.sin(x * y))(t64(y0))

    for xv in (0.3, -1.2):
        want = np.cos(xv * y0) - xv * y0 * np.sin(xv * y0)
        close(fx.grad(f)(t64(xv)).numpy(), want)
        close(fx.jvp(f, (t64(xv),), (t64(1.0),))[1].numpy(), want)


def test_stop_gradient_and_detach():
    x = t64([1.0, -2.0, 3.0])
    close(fx.grad(lambda x: fx.sum(fx.stop_gradient(x) * x))(x).numpy(), x.numpy())
    close(fx.grad(lambda x: fx.sum(x.detach() * x * x))(x).numpy(), 2 * x.numpy() ** 2)
    close(fx.jvp(lambda x: fx.stop_gradient(x) * x, (x,), (fx.ones_like(x),))[1].numpy(), x.numpy())
    close(fx.grad(lambda x: fx.sum(fx.stop_gradient(x * x)))(x).numpy(), 0.0)


# ----------------------------------------------------------------------------- custom rules


def _clip_gradient():
    calls = []

    @fx.custom_vjp
    def clip_gradient(x):
        return x

    def fwd(x):
        return x, None

    def bwd(res, ct):
        calls.append(ct.shape)
        return (fx.clip(ct, -1.0, 1.0),)

    clip_gradient.defvjp(fwd, bwd)
    return clip_gradient, calls


def test_custom_vjp_rule_is_used_functional_and_imperative():
    clip_gradient, calls = _clip_gradient()
    x = t64([0.5, -2.0, 3.0])
    close(clip_gradient(x).numpy(), x.numpy())
    g = fx.grad(lambda x: fx.sum(clip_gradient(x) * t64([10.0, -0.5, -3.0])))(x)
    close(g.numpy(), [1.0, -0.5, -1.0])
    assert calls == [(3,)]
    leaf = t64([0.5, -2.0, 3.0], requires_grad=True)
    fx.sum(clip_gradient(leaf * 1.0) * 10.0).backward()
    close(leaf.grad.numpy(), [1.0, 1.0, 1.0])
    assert len(calls) == 2
    # forward mode and no transform run the plain function
    close(fx.jvp(lambda x: clip_gradient(x) * 10.0, (x,), (fx.ones_like(x),))[1].numpy(), 10.0)


def test_custom_vjp_with_residuals_and_two_arguments_differentiates_twice():
    @fx.custom_vjp
    def cube_times(x, y):
        return x * x * x * y

    cube_times.defvjp(
        lambda x, y: (cube_times(x, y), (x, y)),
        lambda res, ct: (3 * res[0] * res[0] * res[1] * ct, res[0] * res[0] * res[0] * ct),
    )
    x, y = t64(1.3), t64(-0.7)
    gx, gy = fx.grad(cube_times, argnums=(0, 1))(x, y)
    close(gx.numpy(), 3 * 1.3**2 * -0.7)
    close(gy.numpy(), 1.3**3)
    # the rule is made of fluxion ops, so it is differentiated again by an outer grad
    close(fx.grad(fx.grad(cube_times))(x, y).numpy(), 6 * 1.3 * -0.7)


def test_custom_vjp_under_vmap_with_unbatched_and_moved_axes():
    calls = []

    @fx.custom_vjp
    def scaled(x, w):
        return x * w

    def bwd(res, ct):
        calls.append(1)
        x, w = res
        return ct * w, ct * x

    scaled.defvjp(lambda x, w: (x * w, (x, w)), bwd)
    rng = np.random.default_rng(13)
    xs, w = t64(rng.normal(size=(2, 3))), t64(rng.normal(size=2))

    def batched(xs, w):  # examples along axis 1 of xs; w shared by all of them
        return fx.sum(fx.vmap(scaled, in_axes=(1, None))(xs, w) ** 2)

    def plain(xs, w):
        return fx.sum((xs.T * w) ** 2)

    got = fx.grad(batched, argnums=(0, 1))(xs, w)
    want = fx.grad(plain, argnums=(0, 1))(xs, w)
    assert calls == [1]  # one batched call of the rule
    for g, h in zip(got, want):
        assert g.shape == h.shape
        close(g.numpy(), h.numpy())


def test_custom_jvp_rule_is_used():
    calls = []

    @fx.custom_jvp
    def softplus(x):
        return fx.log(1.0 + fx.exp(x))

    @softplus.defjvp
    def _softplus_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        calls.append(1)
        return softplus(x), t * fx.sigmoid(x)

    x = t64([-3.0, 0.0, 2.5])
    out, tout = fx.jvp(softplus, (x,), (t64([1.0, 2.0, -1.0]),))
    s = 1 / (1 + np.exp(-x.numpy()))
    close(out.numpy(), np.log1p(np.exp(x.numpy())))
    close(tout.numpy(), s * [1.0, 2.0, -1.0])
    assert calls == [1]
    close(np.diag(fx.jacfwd(softplus)(x).numpy()), s)
    assert len(calls) == 2
    # reverse mode differentiates the plain function op by op (documented); same values here
    close(fx.grad(lambda x: fx.sum(softplus(x)))(x).numpy(), s)


def _block_and_counter():
    calls = []

    def block(x, w):
        calls.append(1)
        h = x @ w
        return fx.tanh(h) * fx.sin(h)

    return block, calls


def test_checkpoint_gives_the_same_gradients():
    rng = np.random.default_rng(9)
    xn, wn = rng.normal(size=(4, 3)), rng.normal(size=(3, 3)) * 0.5
    block, calls = _block_and_counter()
    ck = fx.checkpoint(block)

    def plain(x, w):
        return fx.sum(block(block(x, w), w) ** 2)

    def ckpt(x, w):
        return fx.sum(ck(ck(x, w), w) ** 2)

    want = fx.grad(plain, argnums=(0, 1))(t64(xn), t64(wn))
    calls.clear()
    got = fx.grad(ckpt, argnums=(0, 1))(t64(xn), t64(wn))
    assert len(calls) == 4  # two forward runs and two recomputations
    for g, w in zip(got, want):
        close(g.numpy(), w.numpy())
    # imperative backward through checkpoint
    x, w = t64(xn, requires_grad=True), t64(wn, requires_grad=True)
    ckpt(x, w).backward()
    close(x.grad.numpy(), want[0].numpy())
    close(w.grad.numpy(), want[1].numpy())
    # second order through checkpoint: Hessian-vector products agree
    vn = rng.normal(size=(3, 3))
    hv_plain = fx.jvp(
        fx.grad(plain, argnums=1), (t64(xn), t64(wn)), (fx.zeros_like(t64(xn)), t64(vn))
    )[1]
    hv_ckpt = fx.jvp(
        fx.grad(ckpt, argnums=1), (t64(xn), t64(wn)), (fx.zeros_like(t64(xn)), t64(vn))
    )[1]
    close(hv_ckpt.numpy(), hv_plain.numpy())


def test_linearize():
    rng = np.random.default_rng(10)
    xn = rng.normal(size=4)

    def f(x):
        return fx.softmax(x) * fx.tanh(x)

    out, f_jvp = fx.linearize(f, t64(xn))
    close(out.numpy(), f(t64(xn)).numpy())
    for _ in range(2):
        tn = rng.normal(size=4)
        close(f_jvp(t64(tn)).numpy(), fx.jvp(f, (t64(xn),), (t64(tn),))[1].numpy())
        close(
            f_jvp(t64(tn)).numpy(),
            fd_jacobian(lambda v: f(t64(v)).numpy(), xn) @ tn,
            rtol=1e-6,
            atol=1e-9,
        )


# ----------------------------------------------------------------------------- imperative (PyTorch style)


def test_requires_grad_and_is_leaf():
    x = t64([1.0, 2.0], requires_grad=True)
    y = fx.tensor(np.ones(2))
    assert x.requires_grad and x.is_leaf and x.grad is None and x.grad_fn is None
    assert not y.requires_grad
    assert y.requires_grad_() is y and y.requires_grad and y.is_leaf
    z = x * y
    assert z.requires_grad and not z.is_leaf and z.grad_fn is not None
    w = fx.tensor(np.ones(2))
    assert not (w * 2.0).requires_grad
    with pytest.raises(GradError, match="floating-point"):
        fx.tensor([1, 2]).requires_grad_()
    with pytest.raises(GradError, match="detach"):
        z.requires_grad_(False)


def test_grad_accumulates_and_is_reset_by_assigning_none():
    x = t64([1.0, 2.0, 3.0], requires_grad=True)
    fx.sum(x * x).backward()
    close(x.grad.numpy(), 2 * x.numpy())
    fx.sum(x * x * x).backward()
    close(x.grad.numpy(), 2 * x.numpy() + 3 * x.numpy() ** 2)
    x.grad = None
    fx.sum(fx.sin(x)).backward()
    close(x.grad.numpy(), np.cos(x.numpy()))


def test_grad_fn_names_the_op():
    x = t64([1.0, 2.0], requires_grad=True)
    assert "Mul" in repr((x * x).grad_fn)
    assert "Exp" in repr(fx.exp(x).grad_fn)
    assert "Matmul" in repr((x.reshape(1, 2) @ x.reshape(2, 1)).grad_fn)
    assert fx.exp(x).grad_fn.name == "exp"


def test_in_place_update_of_a_leaf_requiring_grad_raises():
    x = t64([1.0, 2.0], requires_grad=True)
    with pytest.raises(GradError, match="in-place") as info:
        x += 1.0
    assert "no_grad" in str(info.value)
    with pytest.raises(GradError, match="in-place"):
        x[0] = 5.0
    close(x.numpy(), [1.0, 2.0])
    # the optimizer pattern: an update under no_grad keeps the leaf
    fx.sum(x * x).backward()
    with fx.no_grad():
        x -= 0.25 * x.grad
    assert x.is_leaf and x.requires_grad
    close(x.numpy(), [0.5, 1.0])


def test_no_grad_and_enable_grad_as_context_managers_and_decorators():
    x = t64([1.0, 2.0], requires_grad=True)
    with fx.no_grad():
        assert not fx.is_grad_enabled()
        assert not (x * 2).requires_grad
        with fx.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert fx.is_grad_enabled() and (x * 2).requires_grad

    @fx.no_grad()
    def frozen(x):
        return x * 2

    @fx.enable_grad()
    def thawed(x):
        return x * 2

    assert not frozen(x).requires_grad
    with fx.no_grad():
        assert thawed(x).requires_grad
    assert fx.is_grad_enabled()
    with fx.set_grad_enabled(False):
        assert not (x * 2).requires_grad


def test_grad_mode_and_debug_nans_instances_are_reentrant():
    # a decorated recursive function enters the same instance again before it exits
    @fx.no_grad()
    def depth(n):
        return depth(n - 1) if n else fx.is_grad_enabled()

    assert depth(3) is False
    assert fx.is_grad_enabled()
    checking = fx.debug_nans()

    @checking
    def log_twice(n):
        return log_twice(n - 1) if n else fx.log(fx.tensor(2.0))

    log_twice(2)
    fx.log(fx.tensor(-1.0))  # checking is off again: no error


def test_functional_transforms_work_under_no_grad():
    x = t64([0.3, 1.2])
    with fx.no_grad():
        close(fx.grad(lambda x: fx.sum(fx.sin(x)))(x).numpy(), np.cos(x.numpy()))
        close(fx.hessian(lambda x: fx.sum(x * x * x))(x).numpy(), np.diag(6 * x.numpy()))
        ck = fx.checkpoint(fx.sin)
        close(fx.grad(lambda x: fx.sum(ck(x)))(x).numpy(), np.cos(x.numpy()))


def test_detach_cuts_the_graph():
    x = t64([1.0, 2.0], requires_grad=True)
    d = (x * 3).detach()
    assert not d.requires_grad and d.is_leaf
    y = fx.sum(d * x)
    y.backward()
    close(x.grad.numpy(), 3 * x.numpy())


def test_backward_with_gradient_for_a_non_scalar():
    torch = pytest.importorskip("torch")
    xn, gn = np.array([[0.5, -1.0], [2.0, 0.1]]), np.array([[1.0, 2.0], [-1.0, 0.5]])
    x = t64(xn, requires_grad=True)
    fx.tanh(x * x).backward(gradient=t64(gn))
    xt = torch.tensor(xn, requires_grad=True)
    torch.tanh(xt * xt).backward(gradient=torch.tensor(gn))
    close(x.grad.numpy(), xt.grad.numpy())


def test_grad_has_the_dtype_of_its_leaf():
    # a gradient argument of another dtype is cast to the output's dtype, as in PyTorch
    x32 = fx.tensor([1.0, 2.0], requires_grad=True)
    (x32 * 2).backward(gradient=t64([1.0, 0.5]))
    assert x32.grad.dtype == fx.float32
    close(x32.grad.numpy(), [2.0, 1.0])
    x64 = t64([1.0, 2.0], requires_grad=True)
    (x64 * 2).backward(gradient=fx.tensor([1, 2]))
    assert x64.grad.dtype == F64
    (g,) = fx.autograd.grad(x32 * 3, x32, grad_outputs=t64([1.0, 1.0]))
    assert g.dtype == fx.float32
    _, pullback = fx.vjp(fx.sin, fx.tensor([0.0, 1.0]))
    assert pullback(t64([1.0, 1.0]))[0].dtype == fx.float32


def test_retain_graph():
    x = t64([1.0, 2.0], requires_grad=True)
    y = fx.sum(fx.exp(x) * x)
    y.backward(retain_graph=True)
    y.backward()
    close(x.grad.numpy(), 2 * np.exp(x.numpy()) * (1 + x.numpy()))
    with pytest.raises(GradError, match="retain_graph=True"):
        y.backward()


def test_create_graph_double_backward_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    xn, vn = rng.normal(size=4), rng.normal(size=4)

    x = t64(xn, requires_grad=True)
    y = fx.sum(fx.sin(x) * x * x) + fx.logsumexp(x * x)
    y.backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    x.grad = None
    fx.sum(g * t64(vn)).backward()

    xt = torch.tensor(xn, requires_grad=True)
    yt = torch.sum(torch.sin(xt) * xt * xt) + torch.logsumexp(xt * xt, 0)
    (gt,) = torch.autograd.grad(yt, xt, create_graph=True)
    torch.sum(gt * torch.tensor(vn)).backward()
    close(g.detach().numpy(), gt.detach().numpy())
    close(x.grad.numpy(), xt.grad.numpy())


def test_autograd_grad_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    an, bn, cn = rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=3)

    a, b = t64(an, requires_grad=True), t64(bn, requires_grad=True)
    h = fx.tanh(a @ b)
    out = h * h
    ga, gb, gh = fx.autograd.grad(out, [a, b, h], grad_outputs=t64(cn), create_graph=True)
    assert a.grad is None and b.grad is None  # autograd.grad does not touch .grad
    (gga,) = fx.autograd.grad(fx.sum(ga * ga) + fx.sum(gb), a)

    at, bt = torch.tensor(an, requires_grad=True), torch.tensor(bn, requires_grad=True)
    ht = torch.tanh(at @ bt)
    outt = ht * ht
    gat, gbt, ght = torch.autograd.grad(outt, [at, bt, ht], torch.tensor(cn), create_graph=True)
    (ggat,) = torch.autograd.grad(torch.sum(gat * gat) + torch.sum(gbt), at)
    for mine, ref in [(ga, gat), (gb, gbt), (gh, ght), (gga, ggat)]:
        close(mine.detach().numpy(), ref.detach().numpy())

    unused = t64([1.0], requires_grad=True)
    y = fx.sum(a)
    with pytest.raises(GradError, match="allow_unused=True"):
        fx.autograd.grad(y, [a, unused], retain_graph=True)
    g_a, g_unused = fx.autograd.grad(y, [a, unused], allow_unused=True)
    assert g_unused is None
    close(g_a.numpy(), np.ones((3, 2)))


def test_backward_and_grad_mixed_with_functional_transforms():
    # leaves requiring grad can be passed to fx.grad; arguments of a functional transform
    # are values: the gradient is a plain tensor and nothing is recorded for .backward()
    w = t64([0.5, -1.0], requires_grad=True)
    g = fx.grad(lambda w: fx.sum(w * w * w))(w)
    close(g.numpy(), 3 * w.numpy() ** 2)
    assert w.grad is None and not g.requires_grad
    # a gradient penalty differentiates a functional gradient with another fx.grad ...
    wn = w.numpy()
    first = np.sin(wn) + wn * np.cos(wn)
    second = 2 * np.cos(wn) - wn * np.sin(wn)
    inner = fx.grad(lambda w: fx.sum(fx.sin(w) * w))
    close(fx.grad(lambda w: fx.sum(inner(w) ** 2))(w).numpy(), 2 * first * second)
    # ... or with .backward() when the tensor is captured rather than passed as an argument
    penalty = fx.sum(fx.grad(lambda v: fx.sum(fx.sin(v + w) * (v + w)))(fx.zeros_like(w)) ** 2)
    penalty.backward()
    close(w.grad.numpy(), 2 * first * second)


# ----------------------------------------------------------------------------- debug_nans


def test_debug_nans_names_the_op_and_the_user_line():
    with pytest.raises(FloatingPointCheckError) as info:
        with fx.debug_nans():
            line = inspect.currentframe().f_lineno + 1
            fx.log(fx.tensor(-1.0))
    message = str(info.value)
    assert message.startswith("log") and f"{__file__}:{line}" in message, message
    fx.log(fx.tensor(-1.0))  # outside the context nothing is checked


def test_debug_nans_reports_nan_produced_in_the_backward_pass():
    with pytest.raises(FloatingPointCheckError) as info:
        with fx.debug_nans():
            line = inspect.currentframe().f_lineno + 1
            fx.grad(lambda x: fx.sqrt(x))(t64(0.0))
    message = str(info.value)
    assert "backward" in message and "sqrt" in message and f"{__file__}:{line}" in message, message

    x = t64(0.0, requires_grad=True)
    with pytest.raises(FloatingPointCheckError) as info:
        with fx.debug_nans():
            y = fx.sqrt(x)  # forward is finite
            y.backward()
    assert "backward" in str(info.value) and "sqrt" in str(info.value)


def _checks_nans() -> bool:
    """Whether an op producing a NaN raises now (the behaviour, not a flag)."""
    try:
        fx.log(fx.tensor(-1.0))
    except FloatingPointCheckError:
        return True
    return False


def test_debug_nans_called_alone_switches_at_once():
    try:
        fx.debug_nans(True)  # no `with`: as torch.set_grad_enabled, this takes effect
        assert _checks_nans()
        fx.debug_nans()  # the default is on
        assert _checks_nans()
        fx.debug_nans(False)
        assert not _checks_nans()
    finally:
        fx.debug_nans(False)


def test_debug_nans_blocks_restore_the_setting_they_found_and_nest():
    assert not _checks_nans()
    with fx.debug_nans():
        assert _checks_nans()
        with fx.debug_nans(False):
            assert not _checks_nans()
            with fx.debug_nans(True):
                assert _checks_nans()
            assert not _checks_nans()
        assert _checks_nans()
    assert not _checks_nans()
    try:
        fx.debug_nans(True)
        with fx.debug_nans(False):
            assert not _checks_nans()
        assert _checks_nans()  # on again: the switch made before the block
        with pytest.raises(KeyError):
            with fx.debug_nans(False):
                raise KeyError("any exception")
        assert _checks_nans()  # an exception leaving the block restores it too
    finally:
        fx.debug_nans(False)


def test_debug_nans_made_early_and_entered_later():
    checking = fx.debug_nans()
    fx.debug_nans(False)
    with checking:  # the instance switches on again when entered
        assert _checks_nans()
    assert not _checks_nans()  # and restores what it found when made


@pytest.mark.parametrize("value, on", [("1", True), ("0", False), (None, False)])
def test_debug_nans_environment_variable(value, on):
    env = {k: v for k, v in os.environ.items() if k != "FLUXION_DEBUG_NANS"}
    if value is not None:
        env["FLUXION_DEBUG_NANS"] = value
    code = "import fluxion as fx; fx.log(fx.tensor(-1.0))"
    root = pathlib.Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
    )
    assert (run.returncode != 0) == on, run.stderr
    assert ("FloatingPointCheckError: log" in run.stderr) == on, run.stderr


# ----------------------------------------------------------------------------- bad input


def test_grad_of_a_non_scalar_output():
    with pytest.raises(GradError) as info:
        fx.grad(lambda x: x * 2)(t64([1.0, 2.0]))
    message = str(info.value)
    assert "scalar" in message and "(2,)" in message and "sum" in message and "jacrev" in message


def test_grad_with_respect_to_an_integer_input():
    with pytest.raises(GradError) as info:
        fx.grad(lambda x: fx.sum(x * 2.0))(fx.tensor([1, 2]))
    message = str(info.value)
    assert "argument 0" in message and "int64" in message and "astype" in message


def test_argnums_out_of_range():
    with pytest.raises(InvalidArgumentError) as info:
        fx.grad(f_xy, argnums=2)(t64(1.0), t64(2.0))
    message = str(info.value)
    assert "argnums" in message and "out of range" in message and "2 positional" in message
    with pytest.raises(InvalidArgumentError, match="argnums"):
        fx.jacrev(f_xy, argnums=(0, 5))(t64(1.0), t64(2.0))


def test_has_aux_without_a_pair():
    with pytest.raises(InvalidArgumentError) as info:
        fx.grad(lambda x: fx.sum(x), has_aux=True)(t64([1.0]))
    message = str(info.value)
    assert message.startswith("grad:") and "has_aux" in message and "pair" in message
    assert "float64 tensor of shape (1,)" in message or "float64 tensor of shape ()" in message
    for transform in (fx.jacrev, fx.jacfwd):
        with pytest.raises(InvalidArgumentError, match=f"^{transform.__name__}: has_aux"):
            transform(lambda x: x * 2, has_aux=True)(t64([1.0]))


def test_second_backward_without_retain_graph():
    x = t64([1.0, 2.0], requires_grad=True)
    y = fx.sum(x * x)
    y.backward()
    with pytest.raises(GradError) as info:
        y.backward()
    message = str(info.value)
    assert "freed" in message and "retain_graph=True" in message


def test_backward_on_a_tensor_that_needs_no_grad():
    with pytest.raises(GradError) as info:
        fx.sum(t64([1.0, 2.0]) * 2).backward()
    message = str(info.value)
    assert "does not require grad" in message and "requires_grad=True" in message
    x = t64([1.0, 2.0], requires_grad=True)
    with pytest.raises(GradError, match="scalar"):
        (x * 2).backward()


def test_vjp_and_jvp_shape_errors():
    _, pullback = fx.vjp(fx.sin, t64([1.0, 2.0]))
    with pytest.raises(fx.errors.ShapeError, match="cotangent"):
        pullback(t64([1.0, 2.0, 3.0]))
    with pytest.raises(fx.errors.ShapeError, match="tangent"):
        fx.jvp(fx.sin, (t64([1.0, 2.0]),), (t64([1.0]),))
    with pytest.raises(InvalidArgumentError, match="tuples"):
        fx.jvp(fx.sin, t64([1.0]), t64([1.0]))


# ----------------------------------------------------------------------------- random programs vs PyTorch


def _axes_params(rng, shape, single=False):
    if not shape:
        return None
    if single:
        return {"axis": int(rng.integers(len(shape)))}
    k = int(rng.integers(1, len(shape) + 1))
    axes = tuple(sorted(int(a) for a in rng.choice(len(shape), size=k, replace=False)))
    return {"axes": axes, "keepdims": bool(rng.integers(2))}


def _slice_params(rng, shape):
    axes = [a for a, d in enumerate(shape) if d >= 2]
    if not axes:
        return None
    a = int(rng.choice(axes))
    item = slice(1, None) if rng.integers(2) else slice(None, None, 2)
    return {"index": (slice(None),) * a + (item,)}


def _take_params(rng, shape):
    if not shape:
        return None
    return {"index": [int(i) for i in rng.integers(0, shape[0], size=int(rng.integers(1, 5)))]}


def _reshape_params(rng, shape):
    size = int(np.prod(shape))
    options = [(size,)] + [(k, size // k) for k in (2, 3, 4) if size % k == 0 and size > k]
    target = options[int(rng.integers(len(options)))]
    return None if target == shape else {"shape": target}


def _broadcastable(a, b):
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _program_ops(torch):
    """(name, arity, compatible(shape_a, shape_b), params(rng, *shapes), fluxion fn, torch fn)."""
    F = torch.nn.functional
    unary_ops = [
        ("tanh", fx.tanh, torch.tanh),
        ("sin", fx.sin, torch.sin),
        ("cos", fx.cos, torch.cos),
        ("exp_small", lambda x: fx.exp(0.5 * fx.tanh(x)), lambda x: torch.exp(0.5 * torch.tanh(x))),
        ("sigmoid", fx.sigmoid, torch.sigmoid),
        ("softplus", lambda x: fx.log1p(fx.exp(-fx.abs(x))) + fx.relu(x), F.softplus),
        ("log_1p_sq", lambda x: fx.log(1.0 + x * x), lambda x: torch.log(1.0 + x * x)),
        ("sqrt_1p_sq", lambda x: fx.sqrt(1.0 + fx.square(x)), lambda x: torch.sqrt(1.0 + x * x)),
        ("gelu", fx.gelu, F.gelu),
        ("gelu_tanh", lambda x: fx.gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh")),
        ("erf", fx.erf, torch.erf),
        ("silu", fx.silu, F.silu),
        ("neg_scale", lambda x: -0.7 * x, lambda x: -0.7 * x),
        ("tanh_cubed", lambda x: fx.tanh(x) ** 3, lambda x: torch.tanh(x) ** 3),
    ]
    ops = [(n, 1, None, lambda rng, s: {}, f, t) for n, f, t in unary_ops]
    ops += [
        ("add", 2, _broadcastable, lambda rng, a, b: {}, lambda a, b: a + b, lambda a, b: a + b),
        ("sub", 2, _broadcastable, lambda rng, a, b: {}, lambda a, b: a - b, lambda a, b: a - b),
        ("mul", 2, _broadcastable, lambda rng, a, b: {}, lambda a, b: a * b, lambda a, b: a * b),
        ("div", 2, _broadcastable, lambda rng, a, b: {},
         lambda a, b: a / (1.5 + fx.sin(b)), lambda a, b: a / (1.5 + torch.sin(b))),
        ("maximum", 2, _broadcastable, lambda rng, a, b: {}, fx.maximum, torch.maximum),
        ("pow", 2, _broadcastable, lambda rng, a, b: {},
         lambda a, b: (1.0 + a * a) ** (0.5 * fx.tanh(b)),
         lambda a, b: (1.0 + a * a) ** (0.5 * torch.tanh(b))),
        ("where", 2, _broadcastable, lambda rng, a, b: {},
         lambda a, b: fx.where(a > b, a, 0.5 * b), lambda a, b: torch.where(a > b, a, 0.5 * b)),
        ("matmul", 2, lambda a, b: len(a) == len(b) == 2 and a[1] == b[0],
         lambda rng, a, b: {"scale": 1.0 / a[1]},
         lambda a, b, scale: fx.matmul(a, b) * scale, lambda a, b, scale: torch.matmul(a, b) * scale),
        ("concat", 2, lambda a, b: len(a) == len(b) >= 1 and a[1:] == b[1:],
         lambda rng, a, b: {},
         lambda a, b: fx.concatenate([a, b], axis=0), lambda a, b: torch.cat([a, b], dim=0)),
        ("sum", 1, None, _axes_params,
         lambda x, axes, keepdims: fx.sum(x, axis=axes, keepdims=keepdims),
         lambda x, axes, keepdims: torch.sum(x, dim=axes, keepdim=keepdims)),
        ("mean", 1, None, _axes_params,
         lambda x, axes, keepdims: fx.mean(x, axis=axes, keepdims=keepdims),
         lambda x, axes, keepdims: torch.mean(x, dim=axes, keepdim=keepdims)),
        ("logsumexp", 1, None, _axes_params,
         lambda x, axes, keepdims: fx.logsumexp(x, axis=axes, keepdims=keepdims),
         lambda x, axes, keepdims: torch.logsumexp(x, dim=axes, keepdim=keepdims)),
        ("amax", 1, None, _axes_params,
         lambda x, axes, keepdims: fx.max(x, axis=axes, keepdims=keepdims),
         lambda x, axes, keepdims: torch.amax(x, dim=axes, keepdim=keepdims)),
        ("softmax", 1, None, lambda rng, s: _axes_params(rng, s, single=True),
         lambda x, axis: fx.softmax(x, axis=axis), lambda x, axis: torch.softmax(x, dim=axis)),
        ("log_softmax", 1, None, lambda rng, s: _axes_params(rng, s, single=True),
         lambda x, axis: fx.log_softmax(x, axis=axis),
         lambda x, axis: torch.log_softmax(x, dim=axis)),
        ("cumsum", 1, None, lambda rng, s: _axes_params(rng, s, single=True),
         lambda x, axis: fx.cumsum(x, axis=axis), lambda x, axis: torch.cumsum(x, dim=axis)),
        ("transpose", 1, None, lambda rng, s: {} if len(s) >= 2 else None,
         fx.transpose, lambda x: x.permute(*reversed(range(x.ndim)))),
        ("reshape", 1, None, _reshape_params,
         lambda x, shape: fx.reshape(x, shape), lambda x, shape: x.reshape(shape)),
        ("expand_dims", 1, None, lambda rng, s: {"axis": int(rng.integers(len(s) + 1))} if len(s) < 3 else None,
         lambda x, axis: fx.expand_dims(x, axis), lambda x, axis: x.unsqueeze(axis)),
        ("flip", 1, None, lambda rng, s: _axes_params(rng, s, single=True),
         lambda x, axis: fx.flip(x, axis=axis), lambda x, axis: torch.flip(x, dims=(axis,))),
        ("slice", 1, None, _slice_params, lambda x, index: x[index], lambda x, index: x[index]),
        ("int_index", 1, None, lambda rng, s: {"i": int(rng.integers(s[0]))} if s else None,
         lambda x, i: x[i], lambda x, i: x[i]),
        ("take", 1, None, _take_params,
         lambda x, index: x[fx.tensor(index)], lambda x, index: x[torch.tensor(index)]),
    ]  # fmt: skip
    return ops


def _generate_program(rng, ops, inputs, steps):
    """Grow a program op by op on concrete fluxion values (which gives the shapes),
    keeping values finite and moderate. Operands favour recent values."""
    pool = list(inputs)
    program = []
    while len(program) < steps:
        name, arity, compatible, make, fx_fn, _ = ops[int(rng.integers(len(ops)))]
        recent = len(pool) - 1 - int(min(rng.geometric(0.4) - 1, len(pool) - 1))
        a = recent if rng.uniform() < 0.8 else int(rng.integers(len(pool)))
        operands = [a]
        if arity == 2:
            fits = [k for k in range(len(pool)) if compatible(pool[a].shape, pool[k].shape)]
            if not fits:
                continue
            operands.append(int(rng.choice(fits)))
        params = make(rng, *[pool[k].shape for k in operands])
        if params is None:
            continue
        value = fx_fn(*[pool[k] for k in operands], **params)
        v = value.numpy()
        if v.size == 0 or not np.isfinite(v).all() or np.abs(v).max() > 50:
            continue
        pool.append(value)
        program.append((name, operands, params))
    return program


def _run_program(program, table, inputs, n_outputs):
    pool = list(inputs)
    for name, operands, params in program:
        pool.append(table[name](*[pool[k] for k in operands], **params))
    return pool[-n_outputs:]


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(30))
def test_random_program_matches_torch_autograd(seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1000 + seed)
    ops = _program_ops(torch)
    fx_table = {name: f for name, _, _, _, f, _ in ops}
    th_table = {name: t for name, _, _, _, _, t in ops}
    m, n = int(rng.integers(2, 5)), int(rng.integers(3, 6))
    shapes = [(m, n), (1, n), (n, n)][: int(rng.integers(2, 4))]
    xs = [rng.normal(size=s) for s in shapes]
    program = _generate_program(rng, ops, [t64(x) for x in xs], steps=int(rng.integers(20, 36)))
    n_out = 2
    outs = _run_program(program, fx_table, [t64(x) for x in xs], n_out)
    ws = [rng.normal(size=o.shape) for o in outs]
    used = sorted({name for name, _, _ in program})

    def loss(*inputs):
        outs = _run_program(program, fx_table, inputs, n_out)
        return sum(fx.sum(o * t64(w)) for o, w in zip(outs, ws))

    value, grads = fx.value_and_grad(loss, argnums=tuple(range(len(xs))))(*[t64(x) for x in xs])

    leaves = [t64(x, requires_grad=True) for x in xs]
    loss(*leaves).backward()

    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    touts = _run_program(program, th_table, ts, n_out)
    tloss = sum(torch.sum(o * torch.tensor(w)) for o, w in zip(touts, ws))
    tgrads = torch.autograd.grad(tloss, ts, allow_unused=True)

    where = f"program {seed} using {used}"
    for o, to in zip(outs, touts):
        assert o.shape == tuple(to.shape), where
        np.testing.assert_allclose(o.numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-10, err_msg=where, equal_nan=False)  # fmt: skip
    np.testing.assert_allclose(value.numpy(), tloss.item(), rtol=1e-10, atol=1e-10, err_msg=where)
    for g, leaf, tg in zip(grads, leaves, tgrads):
        want = np.zeros(g.shape) if tg is None else tg.numpy()
        np.testing.assert_allclose(g.numpy(), want, rtol=1e-10, atol=1e-10, err_msg=where, equal_nan=False)  # fmt: skip
        got = np.zeros(g.shape) if leaf.grad is None else leaf.grad.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=where, equal_nan=False)  # fmt: skip


def test_random_programs_cover_the_op_list():
    """The 30 programs above exercise every op pair of the list (guards the generator)."""
    torch = pytest.importorskip("torch")
    ops = _program_ops(torch)
    seen = set()
    for seed in range(30):
        rng = np.random.default_rng(1000 + seed)
        m, n = int(rng.integers(2, 5)), int(rng.integers(3, 6))
        shapes = [(m, n), (1, n), (n, n)][: int(rng.integers(2, 4))]
        xs = [t64(rng.normal(size=s)) for s in shapes]
        program = _generate_program(rng, ops, xs, steps=int(rng.integers(20, 36)))
        seen |= {name for name, _, _ in program}
    assert seen == {op[0] for op in ops}


# ----------------------------------------------------------------------------- no silent constants

CONVERSIONS = {
    "numpy": lambda x: x.numpy(),
    "item": lambda x: x.sum().item(),
    "tolist": lambda x: x.tolist(),
    "float": lambda x: float(x.sum()),
    "int": lambda x: int(x.sum()),
    "np.asarray": lambda x: np.asarray(x),
}
DIFFERENTIATING = {
    "grad": lambda f, x: fx.grad(lambda x: fx.sum(x * f(x)))(x),
    "jacrev": lambda f, x: fx.jacrev(lambda x: x * f(x))(x),
    "jvp": lambda f, x: fx.jvp(lambda x: x * f(x), (x,), (fx.ones_like(x),)),
    "jacfwd": lambda f, x: fx.jacfwd(lambda x: x * f(x))(x),
}


@pytest.mark.parametrize("transform", list(DIFFERENTIATING))
@pytest.mark.parametrize("conversion", list(CONVERSIONS))
def test_a_differentiated_value_does_not_become_a_silent_constant(transform, conversion):
    """Turned into data, the value would be a constant: d/dx x * c(x) would come out as
    c(x) instead of the true derivative; raise instead, naming what to write."""
    x = fx.tensor([0.5, 2.0])
    with pytest.raises(TracerError, match=r"x\.detach\(\) first"):
        DIFFERENTIATING[transform](lambda v: CONVERSIONS[conversion](v), x)
    # detached, it is a constant on purpose: the gradient of x * c is c
    g = fx.grad(lambda x: fx.sum(x * float(fx.sum(x.detach()))))(x)
    np.testing.assert_allclose(g.numpy(), [2.5, 2.5])


def test_python_control_flow_and_integer_data_still_work_under_grad():
    def f(x, n):
        total = x
        for _ in range(int(n)):  # an integer argument: no gradient to lose
            total = total * x if bool(fx.sum(x) > 0) else total - x
        return fx.sum(total)

    g = fx.grad(f)(fx.tensor([1.0, 2.0]), fx.tensor(2))
    np.testing.assert_allclose(g.numpy(), 3 * np.array([1.0, 2.0]) ** 2)


def test_repeated_argnums_are_refused():
    with pytest.raises(InvalidArgumentError, match="names an argument twice"):
        fx.grad(lambda x, y: x * y, argnums=(0, 0))(fx.tensor(2.0), fx.tensor(3.0))
    with pytest.raises(InvalidArgumentError, match="names an argument twice"):
        fx.jacrev(lambda x, y: x * y, argnums=(1, -1))(fx.tensor(2.0), fx.tensor(3.0))
