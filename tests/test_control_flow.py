"""cond, while_loop, fori_loop, scan: eagerly, under jit, vmap, grad/jvp and their nestings.

The answers are independent of fluxion's control flow: Python loops and ``if`` over the
same fluxion ops (or NumPy), closed forms, and central finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import GradError, InvalidArgumentError, ShapeError


def _np(x) -> np.ndarray:
    return x.numpy() if isinstance(x, fx.Tensor) else np.asarray(x)


def _t64(x) -> fx.Tensor:
    return fx.tensor(np.asarray(x, dtype=np.float64))


def _close(got, want, rtol=1e-10, atol=1e-12):
    got_leaves, got_tree = fx.tree_flatten(got)
    want_leaves, want_tree = fx.tree_flatten(want)
    assert got_tree == want_tree, (got_tree, want_tree)
    for g, w in zip(got_leaves, want_leaves):
        g, w = _np(g), _np(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def _fd_grad(f, x, eps=1e-6):
    """Central differences of a scalar function of one float64 array."""
    x = _np(x).astype(np.float64)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        out[i] = (float(_np(f(_t64(x + e)))) - float(_np(f(_t64(x - e))))) / (2 * eps)
    return out


# ----------------------------------------------------------------------------- cond


def _branchy(x, y):
    """x * y where sum(x) > 0, else sin(x) - y: differentiable in both, branch by data."""
    return fx.cond(fx.sum(x) > 0, lambda a, b: a * b, lambda a, b: fx.sin(a) - b, x, y)


def _branchy_ref(x, y):
    x, y = _np(x), _np(y)
    return x * y if x.sum() > 0 else np.sin(x) - y


POS, NEG = [0.5, 1.5, -0.2], [-0.5, -1.5, 0.2]
Y = [2.0, -1.0, 0.5]


@pytest.mark.parametrize("xs", [POS, NEG])
def test_cond_eager_and_jit(xs):
    x, y = _t64(xs), _t64(Y)
    want = _branchy_ref(x, y)
    _close(_branchy(x, y), _t64(want))
    compiled = fx.jit(_branchy)
    _close(compiled(x, y), _t64(want))
    _close(compiled(-x, y), _t64(_branchy_ref(-x, y)))  # the other branch, same trace
    assert compiled.stats.misses == 1


def test_cond_concrete_predicate_runs_only_one_branch():
    ran = []

    def true_fn(v):
        ran.append("true")
        return v + 1

    def false_fn(v):
        ran.append("false")
        return v - 1

    out = fx.cond(fx.tensor(True), true_fn, false_fn, fx.tensor(1.0))
    assert ran == ["true"] and float(_np(out)) == 2.0
    out = fx.cond(False, true_fn, false_fn, fx.tensor(1.0))
    assert ran == ["true", "false"] and float(_np(out)) == 0.0


def test_cond_pytrees_and_closures_under_jit():
    scale = fx.tensor(3.0)

    def f(p, tree, shift):
        def yes(t):
            return {"a": t[0] * scale + shift, "b": t[1]}

        def no(t):
            return {"a": t[0] - shift, "b": t[1] * 2.0}

        return fx.cond(p, yes, no, tree)

    tree = (fx.tensor([1.0, 2.0]), fx.tensor(4.0))
    for p in (True, False):
        want = f(fx.tensor(p), tree, fx.tensor(0.5))
        got = fx.jit(f)(fx.tensor(p), tree, fx.tensor(0.5))
        _close(got, want)
    expected_true = {"a": np.array([3.5, 6.5], np.float32), "b": np.float32(4.0)}
    got = fx.jit(f)(fx.tensor(True), tree, fx.tensor(0.5))
    _close(got, fx.tree_map(fx.tensor, expected_true))


def test_cond_vmap_batched_and_unbatched_predicate():
    xs = _t64([[0.5, 1.0, -0.1], [-2.0, 0.3, 0.1], [1.0, 1.0, 1.0], [-1.0, -1.0, 0.5]])
    y = _t64(Y)
    loop = np.stack([_branchy_ref(xs[i], y) for i in range(4)])
    for f in (fx.vmap(_branchy, in_axes=(0, None)), fx.jit(fx.vmap(_branchy, in_axes=(0, None)))):
        _close(f(xs, y), _t64(loop))
    # unbatched predicate, batched operand
    f = fx.vmap(lambda p, v: fx.cond(p, lambda a: a * 2.0, lambda a: -a, v), in_axes=(None, 0))
    for p in (True, False):
        want = _np(xs) * 2 if p else -_np(xs)
        _close(f(fx.tensor(p), xs), _t64(want))
        _close(fx.jit(f)(fx.tensor(p), xs), _t64(want))


def _closed_form_grad(x, y):
    x, y = _np(x), _np(y)
    return (y, x) if x.sum() > 0 else (np.cos(x), -np.ones_like(y))


@pytest.mark.parametrize("xs", [POS, NEG])
def test_cond_grad_jit_grad_and_grad_of_jit(xs):
    x, y = _t64(xs), _t64(Y)

    def loss(x, y):
        return fx.sum(_branchy(x, y))

    want = tuple(_t64(g) for g in _closed_form_grad(x, y))
    _close(fx.grad(loss, argnums=(0, 1))(x, y), want)
    _close(fx.jit(fx.grad(loss, argnums=(0, 1)))(x, y), want)
    _close(fx.grad(fx.jit(loss), argnums=(0, 1))(x, y), want)
    np.testing.assert_allclose(
        _np(want[0]), _fd_grad(lambda v: loss(v, y), x), rtol=1e-6, atol=1e-8
    )


def test_cond_vmap_of_grad_with_batched_predicate():
    xs = _t64([POS, NEG, [1.0, -3.0, 0.0]])
    y = _t64(Y)
    g = fx.grad(lambda x: fx.sum(_branchy(x, y)))
    want = np.stack([_closed_form_grad(xs[i], y)[0] for i in range(3)])
    _close(fx.vmap(g)(xs), _t64(want))
    _close(fx.jit(fx.vmap(g))(xs), _t64(want))


@pytest.mark.parametrize("xs", [POS, NEG])
def test_cond_jvp_matches_finite_differences(xs):
    x, y, t = _t64(xs), _t64(Y), _t64([1.0, -2.0, 0.5])
    eps = 1e-6
    fd = (_branchy_ref(_np(x) + eps * _np(t), y) - _branchy_ref(_np(x) - eps * _np(t), y)) / (
        2 * eps
    )
    for jvp in (
        lambda x, t: fx.jvp(lambda v: _branchy(v, y), (x,), (t,)),
        fx.jit(lambda x, t: fx.jvp(lambda v: _branchy(v, y), (x,), (t,))),
    ):
        out, tangent = jvp(x, t)
        _close(out, _t64(_branchy_ref(x, y)))
        np.testing.assert_allclose(_np(tangent), fd, rtol=1e-6, atol=1e-8)


def test_cond_errors():
    x = fx.ones(3)
    with pytest.raises(ShapeError, match=r"cond: .*f32\[3\].*f32\[2\]"):
        fx.jit(lambda x: fx.cond(fx.sum(x) > 0, lambda v: v, lambda v: v[:2], x))(x)
    with pytest.raises(ShapeError, match="cond"):
        fx.jit(lambda x: fx.cond(fx.sum(x) > 0, lambda v: v, lambda v: fx.astype(v, "float64"), x))(
            x
        )
    with pytest.raises(ShapeError, match="structure"):
        fx.jit(lambda x: fx.cond(fx.sum(x) > 0, lambda v: (v, v), lambda v: [v, v], x))(x)
    with pytest.raises(ShapeError, match="cond"):  # batched predicate: both branches traced
        fx.vmap(lambda x: fx.cond(fx.sum(x) > 0, lambda v: v, lambda v: v[:1], x))(fx.ones((2, 3)))
    with pytest.raises(InvalidArgumentError, match="scalar"):
        fx.cond(fx.tensor([True, False]), lambda v: v, lambda v: v, x)


# ----------------------------------------------------------------------------- while_loop


def _doubling(x):
    """Double x until its sum reaches 100: the trip count depends on the data."""
    return fx.while_loop(lambda v: fx.sum(v) < 100.0, lambda v: v * 2.0, x)


def _doubling_ref(x):
    x = _np(x).copy()
    while x.sum() < 100.0:
        x = x * 2.0
    return x


def test_while_loop_eager_jit_vmap():
    x = _t64([1.0, 2.0])
    _close(_doubling(x), _t64(_doubling_ref(x)))
    compiled = fx.jit(_doubling)
    _close(compiled(x), _t64(_doubling_ref(x)))
    _close(compiled(x * 7.0), _t64(_doubling_ref(x * 7.0)))  # other trip count, same trace
    assert compiled.stats.misses == 1
    xs = _t64([[1.0, 2.0], [30.0, 40.0], [60.0, 50.0], [0.1, 0.0]])
    loop = np.stack([_doubling_ref(xs[i]) for i in range(4)])
    _close(fx.vmap(_doubling)(xs), _t64(loop))
    _close(fx.jit(fx.vmap(_doubling))(xs), _t64(loop))


def test_while_loop_pytree_carry_and_counter():
    def count(x):
        return fx.while_loop(
            lambda s: s["v"] < 50.0,
            lambda s: {"v": s["v"] * 3.0, "n": s["n"] + 1},
            {"v": x, "n": fx.tensor(0)},
        )

    for start in (1.0, 7.0, 60.0):
        n, v = 0, start
        while v < 50.0:
            v, n = v * 3.0, n + 1
        for f in (count, fx.jit(count)):
            out = f(_t64(start))
            assert int(_np(out["n"])) == n and float(_np(out["v"])) == v


def test_while_loop_jvp_matches_closed_form():
    # each step doubles: d out / d x = 2^(trips) at fixed trip count
    x, t = _t64([1.0, 2.0]), _t64([1.0, -1.0])
    trips = int(np.log2(_doubling_ref(x)[0] / 1.0))
    for jvp in (
        lambda x, t: fx.jvp(_doubling, (x,), (t,)),
        fx.jit(lambda x, t: fx.jvp(_doubling, (x,), (t,))),
    ):
        out, tangent = jvp(x, t)
        _close(out, _t64(_doubling_ref(x)))
        _close(tangent, _t64(_np(t) * 2.0**trips))
    xs = _t64([[1.0, 2.0], [30.0, 40.0]])
    out, tangent = fx.vmap(lambda v: fx.jvp(_doubling, (v,), (fx.ones(2, dtype="float64"),)))(xs)
    _close(tangent, _t64([[64.0, 64.0], [2.0, 2.0]]))


def test_while_loop_reverse_mode_raises_grad_error():
    def loss(x):
        return fx.sum(_doubling(x))

    with pytest.raises(GradError, match="fori_loop|scan"):
        fx.jit(fx.grad(loss))(_t64([1.0, 2.0]))
    with pytest.raises(GradError):  # batched predicate: the loop is a primitive
        fx.vmap(fx.grad(loss))(_t64([[1.0, 2.0], [3.0, 4.0]]))
    # eagerly the loop is Python: its reverse mode is ordinary
    _close(fx.grad(loss)(_t64([1.0, 2.0])), _t64([64.0, 64.0]))


def test_while_loop_errors():
    grow = lambda v: fx.concatenate([v, v])  # noqa: E731
    with pytest.raises(ShapeError, match="while_loop"):
        fx.jit(lambda x: fx.while_loop(lambda v: fx.sum(v) < 10.0, grow, x))(fx.ones(1))
    with pytest.raises(ShapeError, match="while_loop"):
        fx.while_loop(lambda v: fx.sum(v) < 10.0, grow, fx.ones(1))
    with pytest.raises(ShapeError, match="scalar"):
        fx.jit(lambda x: fx.while_loop(lambda v: v < 10.0, lambda v: v + 1, x))(fx.ones(2))


# ----------------------------------------------------------------------------- fori_loop


def _poly(x):
    return fx.fori_loop(0, 4, lambda i, v: v * fx.tanh(v) + fx.astype(i, v.dtype) * 0.1, x)


def _poly_ref(x):
    v = _np(x).astype(np.float64)
    for i in range(4):
        v = v * np.tanh(v) + i * 0.1
    return v


def test_fori_loop_eager_jit_vmap():
    x = _t64([0.3, -1.2, 2.0])
    want = _t64(_poly_ref(x))
    _close(_poly(x), want)
    _close(fx.jit(_poly)(x), want)
    xs = _t64([[0.3, -1.2, 2.0], [0.1, 0.2, 0.3]])
    loop = np.stack([_poly_ref(xs[i]) for i in range(2)])
    _close(fx.vmap(_poly)(xs), _t64(loop))
    _close(fx.jit(fx.vmap(_poly))(xs), _t64(loop))


def test_fori_loop_traced_bounds_under_jit():
    def power(n, x):
        return fx.fori_loop(0, n, lambda i, v: v * x, fx.ones_like(x))

    compiled = fx.jit(power)
    for n in (0, 1, 5):
        _close(compiled(fx.tensor(n), _t64([2.0, -1.5])), _t64(np.array([2.0, -1.5]) ** n))
    assert compiled.stats.misses == 1
    _close(power(3, _t64([2.0])), _t64([8.0]))


def test_fori_loop_grad_jit_grad_vmap_grad():
    x = _t64([0.3, -1.2, 2.0])

    def loss(x):
        return fx.sum(_poly(x) ** 2)

    fd = _fd_grad(loss, x)
    for g in (fx.grad(loss), fx.jit(fx.grad(loss)), fx.grad(fx.jit(loss))):
        np.testing.assert_allclose(_np(g(x)), fd, rtol=1e-6, atol=1e-8)
    xs = _t64([[0.3, -1.2, 2.0], [0.1, 0.2, 0.3]])
    want = np.stack([_fd_grad(loss, xs[i]) for i in range(2)])
    np.testing.assert_allclose(_np(fx.vmap(fx.grad(loss))(xs)), want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(_np(fx.jit(fx.vmap(fx.grad(loss)))(xs)), want, rtol=1e-6, atol=1e-8)


def test_fori_loop_empty_range_returns_init():
    x = _t64([1.0, 2.0])
    for f in (
        lambda x: fx.fori_loop(3, 3, lambda i, v: v * 0.0, x),
        fx.jit(lambda x: fx.fori_loop(5, 2, lambda i, v: v * 0.0, x)),
    ):
        _close(f(x), x)


# ----------------------------------------------------------------------------- scan


def _cumulative(c, xs):
    return fx.scan(lambda c, x: (c + x, c * x), c, xs)


def _cumulative_ref(c, xs, reverse=False):
    c = float(_np(c))
    order = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    out = [0.0] * len(xs)
    for i in order:
        x = float(_np(xs)[i])
        out[i] = c * x
        c = c + x
    return np.float64(c), np.array(out)


def test_scan_eager_and_jit_against_python_loop():
    c, xs = _t64(1.0), _t64([1.0, 2.0, 3.0, 4.0])
    want_c, want_ys = _cumulative_ref(c, xs)
    for f in (_cumulative, fx.jit(_cumulative)):
        got_c, got_ys = f(c, xs)
        _close(got_c, _t64(want_c))
        _close(got_ys, _t64(want_ys))


def test_scan_reverse():
    c, xs = _t64(1.0), _t64([1.0, 2.0, 3.0, 4.0])
    want_c, want_ys = _cumulative_ref(c, xs, reverse=True)

    def f(c, xs):
        return fx.scan(lambda c, x: (c + x, c * x), c, xs, reverse=True)

    for g in (f, fx.jit(f)):
        got_c, got_ys = g(c, xs)
        _close(got_c, _t64(want_c))
        _close(got_ys, _t64(want_ys))
    np.testing.assert_array_equal(_np(got_ys), [10.0, 16.0, 15.0, 4.0])


def test_scan_pytree_carry_and_xs():
    def f(init, xs):
        def step(c, x):
            new = {"sum": c["sum"] + x["a"], "prod": c["prod"] * x["b"]}
            return new, (c["sum"], x["a"] * x["b"])

        return fx.scan(step, init, xs)

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4,)), rng.normal(size=(4, 2))
    init = {"sum": _t64(0.0), "prod": _t64([1.0, 1.0])}
    xs = {"a": _t64(a), "b": _t64(b)}
    s, p, sums, prods = 0.0, np.ones(2), [], []
    for i in range(4):
        sums.append(s)
        prods.append(a[i] * b[i])
        s, p = s + a[i], p * b[i]
    want = ({"prod": _t64(p), "sum": _t64(s)}, (_t64(sums), _t64(np.stack(prods))))
    for g in (f, fx.jit(f)):
        _close(g(init, xs), want)


def test_scan_length_without_xs_and_none_outputs():
    def powers(c):
        return fx.scan(lambda c, _: (c * 2.0, c), c, None, length=5)

    for g in (powers, fx.jit(powers)):
        c, ys = g(_t64(1.5))
        _close(c, _t64(1.5 * 32))
        _close(ys, _t64(1.5 * 2.0 ** np.arange(5)))

    def no_ys(c, xs):
        return fx.scan(lambda c, x: (c + x, None), c, xs)

    for g in (no_ys, fx.jit(no_ys)):
        c, ys = g(_t64(0.0), _t64([1.0, 2.0]))
        assert ys is None
        _close(c, _t64(3.0))


def test_scan_zero_length():
    def f(c, xs):
        return fx.scan(lambda c, x: (c + x, c * x), c, xs)

    for g in (f, fx.jit(f)):
        c, ys = g(_t64(2.0), fx.zeros((0,), dtype="float64"))
        _close(c, _t64(2.0))
        assert ys.shape == (0,) and ys.dtype == fx.float64


def _scan_loss(w, xs):
    """A small RNN: h = tanh(h * w + x); loss = sum of the h's squared."""

    def step(h, x):
        h = fx.tanh(h * w + x)
        return h, h * h

    return fx.sum(fx.scan(step, fx.zeros_like(xs[0]), xs)[1])


def _scan_loss_ref(w, xs):
    w, xs = _np(w), _np(xs)
    h, total = np.zeros_like(xs[0]), 0.0
    for x in xs:
        h = np.tanh(h * w + x)
        total += np.sum(h * h)
    return total


def test_scan_grad_wrt_xs_and_closure_against_finite_differences():
    rng = np.random.default_rng(1)
    w, xs = _t64(rng.normal(size=2)), _t64(rng.normal(size=(5, 2)))
    np.testing.assert_allclose(float(_np(_scan_loss(w, xs))), _scan_loss_ref(w, xs), rtol=1e-12)
    fd_w = _fd_grad(lambda v: _scan_loss(v, xs), w)
    fd_xs = _fd_grad(lambda v: _scan_loss(w, v), xs)
    for g in (
        fx.grad(_scan_loss, argnums=(0, 1)),
        fx.jit(fx.grad(_scan_loss, argnums=(0, 1))),
        fx.grad(fx.jit(_scan_loss), argnums=(0, 1)),
    ):
        gw, gxs = g(w, xs)
        np.testing.assert_allclose(_np(gw), fd_w, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(_np(gxs), fd_xs, rtol=1e-6, atol=1e-8)


def test_scan_grad_wrt_init_and_reverse():
    def loss(c, xs):
        final, ys = fx.scan(lambda c, x: (fx.sin(c * x), c * x), c, xs, reverse=True)
        return final + fx.sum(ys * ys)

    c, xs = _t64(0.7), _t64([0.5, -1.0, 2.0])
    fd_c = _fd_grad(lambda v: loss(v, xs), c)
    fd_xs = _fd_grad(lambda v: loss(c, v), xs)
    for g in (fx.grad(loss, argnums=(0, 1)), fx.jit(fx.grad(loss, argnums=(0, 1)))):
        gc, gxs = g(c, xs)
        np.testing.assert_allclose(_np(gc), fd_c, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(_np(gxs), fd_xs, rtol=1e-6, atol=1e-8)


def test_scan_jvp_against_finite_differences():
    rng = np.random.default_rng(2)
    w, xs, t = (
        _t64(rng.normal(size=2)),
        _t64(rng.normal(size=(4, 2))),
        _t64(rng.normal(size=(4, 2))),
    )
    eps = 1e-6
    fd = (_scan_loss_ref(w, _np(xs) + eps * _np(t)) - _scan_loss_ref(w, _np(xs) - eps * _np(t))) / (
        2 * eps
    )
    for jvp in (
        lambda xs, t: fx.jvp(lambda v: _scan_loss(w, v), (xs,), (t,)),
        fx.jit(lambda xs, t: fx.jvp(lambda v: _scan_loss(w, v), (xs,), (t,))),
    ):
        out, tangent = jvp(xs, t)
        np.testing.assert_allclose(float(_np(tangent)), fd, rtol=1e-6)


def test_scan_vmap_and_vmap_of_grad():
    rng = np.random.default_rng(3)
    w, batch = _t64(rng.normal(size=2)), _t64(rng.normal(size=(3, 5, 2)))
    loop = np.array([_scan_loss_ref(w, batch[i]) for i in range(3)])
    for f in (
        fx.vmap(_scan_loss, in_axes=(None, 0)),
        fx.jit(fx.vmap(_scan_loss, in_axes=(None, 0))),
    ):
        np.testing.assert_allclose(_np(f(w, batch)), loop, rtol=1e-12)
    # batched along the scanned axis's neighbour: xs of shape (5, 3, 2), batch at 1
    moved = fx.moveaxis(batch, 0, 1)
    np.testing.assert_allclose(
        _np(fx.vmap(_scan_loss, in_axes=(None, 1))(w, moved)), loop, rtol=1e-12
    )
    g = fx.grad(_scan_loss)  # d/dw per example
    want = np.stack([_fd_grad(lambda v, i=i: _scan_loss(v, batch[i]), w) for i in range(3)])
    for f in (fx.vmap(g, in_axes=(None, 0)), fx.jit(fx.vmap(g, in_axes=(None, 0)))):
        np.testing.assert_allclose(_np(f(w, batch)), want, rtol=1e-6, atol=1e-8)


def test_scan_with_an_outer_jit_value_in_the_body():
    def f(scale, xs):
        return fx.scan(lambda c, x: (c + x * scale, c), fx.zeros_like(scale), xs)[0]

    compiled = fx.jit(f)
    for s in (2.0, -1.0):
        _close(compiled(_t64(s), _t64([1.0, 2.0, 3.0])), _t64(6.0 * s))
    assert compiled.stats.misses == 1


def test_backward_inside_jit_through_scan_and_cond():
    rng = np.random.default_rng(4)
    xs = fx.tensor(rng.normal(size=(4, 2)))

    def run(compile_it):
        w = _t64([0.5, -0.3]).requires_grad_()

        def through_scan(xs):
            def body(h, x):
                h = fx.tanh(h * w + x)
                return h, h

            loss = fx.sum(fx.scan(body, fx.zeros(2, dtype="float64"), xs)[1] ** 2)
            loss.backward()
            return loss

        def through_cond(x):
            loss = fx.sum(fx.cond(fx.sum(x) > 0, lambda v: v * w, lambda v: v - w, x) ** 2)
            loss.backward()
            return loss

        grads = []
        for f, arg in [(through_scan, xs), (through_cond, xs[0]), (through_cond, -xs[0])]:
            f = fx.jit(f) if compile_it else f
            w.grad = None
            f(arg)
            grads.append(_np(w.grad).copy())
        return grads

    for got, want in zip(run(True), run(False)):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_scan_errors():
    grow = lambda c, x: (fx.stack([c, c]), x)  # noqa: E731
    with pytest.raises(ShapeError, match=r"scan: .*carry.*f32\[2\].*f32\[\]"):
        fx.jit(lambda c, xs: fx.scan(grow, c, xs))(fx.tensor(1.0), fx.arange(3.0))
    with pytest.raises(ShapeError, match=r"scan: .*carry.*f32\[2\].*f32\[\]"):
        fx.scan(grow, fx.tensor(1.0), fx.arange(3.0))
    promote = lambda c, x: (fx.astype(c, "float64") + x, x)  # noqa: E731
    with pytest.raises(ShapeError, match="scan"):
        fx.scan(promote, fx.tensor(1.0), fx.arange(3.0))
    with pytest.raises(ShapeError, match="structure"):
        fx.scan(lambda c, x: ((c, c), x), fx.tensor(1.0), fx.arange(3.0))
    with pytest.raises(InvalidArgumentError, match="leading axes"):
        fx.scan(lambda c, x: (c, x), fx.tensor(0.0), (fx.ones(3), fx.ones(4)))
    with pytest.raises(InvalidArgumentError, match="length"):
        fx.scan(lambda c, x: (c, x), fx.tensor(0.0), fx.ones(3), length=4)


# ----------------------------------------------------------------------------- decoding


V, D, T = 7, 5, 6


def _tiny_model():
    rng = np.random.default_rng(0)
    emb = fx.tensor(rng.normal(size=(V, D)).astype(np.float32))
    rec = fx.tensor(rng.normal(size=(D, D)).astype(np.float32) * 0.5)
    out = fx.tensor(rng.normal(size=(D, V)).astype(np.float32))

    def next_token(tok, h):
        h = fx.tanh(emb[tok] + h @ rec)
        return fx.argmax(h @ out, axis=-1), h

    return next_token


def _greedy_eager(next_token, first: int) -> list:
    tok, h, out = fx.tensor(first), fx.zeros(D), []
    for _ in range(T):
        tok, h = next_token(tok, h)
        out.append(int(tok.item()))
    return out


def test_greedy_decoding_with_fori_loop_inside_jit_equals_python_loop():
    next_token = _tiny_model()

    @fx.jit
    def decode(first):
        def body(i, state):
            tok, h, buf = state
            tok, h = next_token(tok, h)
            return tok, h, fx.where(fx.arange(T) == i, tok, buf)

        init = (first, fx.zeros(D), fx.zeros(T, dtype="int64"))
        return fx.fori_loop(0, T, body, init)[2]

    want = [_greedy_eager(next_token, f) for f in range(V)]
    got = [_np(decode(fx.tensor(f))).tolist() for f in range(V)]
    assert got == want
    assert len({tuple(w) for w in want}) > 1  # the model does depend on the prompt
    assert decode.stats.misses == 1
    assert _np(fx.vmap(decode)(fx.arange(V))).tolist() == want


def test_decoding_until_a_stop_token_with_while_loop_inside_jit():
    next_token = _tiny_model()
    stop = 0

    def eager(first):
        tok, h, n = fx.tensor(first), fx.zeros(D), 0
        while n < T:
            tok, h = next_token(tok, h)
            n += 1
            if int(tok.item()) == stop:
                break
        return n, int(tok.item())

    @fx.jit
    def decode(first):
        def running(s):
            return fx.logical_and(s[2] < T, fx.logical_or(s[2] == 0, s[0] != stop))

        def body(s):
            tok, h = next_token(s[0], s[1])
            return tok, h, s[2] + 1

        tok, _, n = fx.while_loop(running, body, (first, fx.zeros(D), fx.tensor(0)))
        return n, tok

    for first in range(V):
        n, tok = decode(fx.tensor(first))
        assert (int(_np(n)), int(_np(tok))) == eager(first)


def test_grad_of_a_scan_without_carry_under_jit_matches_eager():
    # the backward pass of a scan with no carry once built a loop of no outputs
    w, xs = fx.tensor([1.0, -2.0, 0.5]), fx.tensor(np.arange(6.0).reshape(2, 3))

    def f(w, xs):
        return fx.sum(fx.scan(lambda c, x: (c, fx.sum(fx.sin(x * w))), (), xs)[1])

    np.testing.assert_allclose(fx.jit(fx.grad(f))(w, xs).numpy(), fx.grad(f)(w, xs).numpy())
    np.testing.assert_allclose(
        fx.grad(f)(w, xs).numpy(),
        np.sum(np.cos(np.arange(6.0).reshape(2, 3) * w.numpy()) * np.arange(6.0).reshape(2, 3), 0),
        rtol=1e-6,
    )
