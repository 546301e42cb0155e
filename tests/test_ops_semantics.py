"""Where fluxion's answers once differed from PyTorch's, JAX's or the math's (issue 14).

Each test compares with an independent answer, PyTorch (CPU, autograd) or NumPy, at the
points where the op table's generic samples do not go: the kinks a smooth function is
built on, NaN and infinite inputs, dtypes at their extremes. Every check runs eagerly
and under ``fx.jit``, and where gradients are involved through ``fx.grad``,
``backward()`` and ``fx.jit(fx.grad(...))``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fluxion as fx
from fluxion.errors import DTypeError, InvalidArgumentError, ShapeError

F = fx.nn.functional


def _same(got, want, what, rtol=1e-12, atol=1e-12):
    """Values equal to ``want`` (NaN where it has NaN, infinities of its sign)."""
    got = got.numpy() if isinstance(got, fx.Tensor) else np.asarray(got)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def _grads(fn, x):
    """d sum(fn(x)) / dx three ways: fx.grad, backward() and jit(grad), checked equal."""
    g = fx.grad(lambda a: fx.sum(fn(a)))(x)
    leaf = fx.tensor(x.numpy(), requires_grad=True)
    fx.sum(fn(leaf)).backward()
    _same(leaf.grad, g.numpy(), "backward() vs fx.grad")
    _same(fx.jit(fx.grad(lambda a: fx.sum(fn(a))))(x), g.numpy(), "jit(grad) vs grad")
    return g


def _torch_grads(fn, x: np.ndarray):
    """First and second derivatives of sum(fn(x)) by torch autograd."""
    t = torch.tensor(x, requires_grad=True)
    (g,) = torch.autograd.grad(fn(t).sum(), t, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), t) if g.requires_grad else (torch.zeros_like(t),)
    return g.detach().numpy(), gg.numpy()


# ----------------------------------------------------------------------------- kinks

KINKS = np.array([0.0, -0.0, 1e-3, -1e-3, 2.0, -30.0, 30.0, -800.0])
TARGET = np.array([0.3, 1.0, 0.0, 0.7, 0.5, 1.0, 0.0, 0.2])

SMOOTH = [
    ("sigmoid", fx.sigmoid, torch.sigmoid),
    ("silu", fx.silu, TF.silu),
    ("softplus", fx.softplus, TF.softplus),
    ("F.softplus_beta", lambda x: F.softplus(x, beta=2.0, threshold=5.0),
     lambda x: TF.softplus(x, beta=2.0, threshold=5.0)),
    ("F.logsigmoid", F.logsigmoid, TF.logsigmoid),
    ("gelu", fx.gelu, TF.gelu),
    ("gelu_tanh", lambda x: fx.gelu(x, "tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    ("bce_with_logits",
     lambda x: F.binary_cross_entropy_with_logits(x, fx.tensor(TARGET), reduction="none"),
     lambda x: TF.binary_cross_entropy_with_logits(x, torch.tensor(TARGET), reduction="none")),
    ("bce_with_logits_pos_weight",
     lambda x: F.binary_cross_entropy_with_logits(
         x, fx.tensor(TARGET), reduction="none", pos_weight=fx.tensor(3.0, dtype=fx.float64)),
     lambda x: TF.binary_cross_entropy_with_logits(
         x, torch.tensor(TARGET), reduction="none", pos_weight=torch.tensor(3.0, dtype=torch.float64))),
]  # fmt: skip


@pytest.mark.parametrize("name, fx_fn, torch_fn", SMOOTH, ids=[s[0] for s in SMOOTH])
def test_smooth_functions_differentiate_as_torch_at_their_kinks(name, fx_fn, torch_fn):
    # A stable formula built on |x| or a branch at 0 must not inherit abs'(0) = 0:
    # sigmoid'(0) is 1/4, silu''(0) is 1/2.
    x = fx.tensor(KINKS)
    with np.errstate(over="raise", invalid="raise"):  # nor may the branch not taken overflow
        value = fx_fn(x)
    _same(value, torch_fn(torch.tensor(KINKS)), f"{name}")
    _same(fx.jit(fx_fn)(x), value.numpy(), f"jit({name})")
    want, want2 = _torch_grads(torch_fn, KINKS)
    _same(_grads(fx_fn, x), want, f"{name}'")
    second = fx.grad(lambda a: fx.sum(fx.grad(lambda b: fx.sum(fx_fn(b)))(a)))
    _same(second(x), want2, f"{name}''", atol=1e-10)
    _same(fx.jit(second)(x), want2, f"jit({name}'')", atol=1e-10)


@pytest.mark.parametrize("kwargs", [{}, {"axis": 1}, {"axis": 0, "ddof": 1}])
def test_std_gradient_at_zero_spread_is_zero_as_torch(kwargs):
    rows = np.array([[0.5, 0.5, 0.5], [1.0, -2.0, 4.0]])
    dim = kwargs.get("axis")
    x = fx.tensor(rows)
    torch_fn = lambda t: torch.std(t, dim=dim, correction=kwargs.get("ddof", 0))  # noqa: E731
    fn = lambda a: fx.std(a, **kwargs)  # noqa: E731
    _same(fn(x), torch_fn(torch.tensor(rows)), "std")
    _same(_grads(fn, x), _torch_grads(torch_fn, rows)[0], f"std' {kwargs}")


# ----------------------------------------------------------------------------- sort

SORT_DTYPES = ["bool", "uint8", "uint32", "int8", "int16", "int32", "int64", "float16", "float32",
               "float64"]  # fmt: skip


def _sort_keys(dtype: str) -> np.ndarray:
    """Ties, both extremes of the dtype, and for floats NaN, +-inf and both zeros."""
    if dtype == "bool":
        return np.array([[True, False, True, True, False, False, True]])
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        row = [1, 0, info.max, info.min, 1, 0, info.max, 2, info.min, 1]
        return np.array([row, row[::-1]], dtype=dtype)
    row = [1.0, np.nan, -0.0, 0.0, 2.0, np.nan, -1.0, np.inf, -np.inf, 0.0, -0.0, 1.0]
    return np.array([row, row[::-1]], dtype=dtype)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", SORT_DTYPES)
def test_sort_and_argsort_match_torch_stable_sort(dtype, descending):
    keys = _sort_keys(dtype)
    t_values, t_indices = torch.sort(
        torch.from_numpy(keys), dim=-1, descending=descending, stable=True
    )
    for axis in (-1, 0):
        if axis == 0:
            keys = np.ascontiguousarray(keys.T)
            t_values, t_indices = torch.sort(
                torch.from_numpy(keys), dim=0, descending=descending, stable=True
            )
        x = fx.tensor(keys)
        what = f"{dtype} descending={descending} axis={axis}"
        for fn in (fx.argsort, fx.jit(fx.argsort, static_argnames=("axis", "descending"))):
            idx = fn(x, axis=axis, descending=descending)
            assert idx.dtype == fx.int64
            np.testing.assert_array_equal(idx.numpy(), t_indices.numpy(), err_msg="argsort " + what)
        for fn in (fx.sort, fx.jit(fx.sort, static_argnames=("axis", "descending"))):
            values = fn(x, axis=axis, descending=descending)
            assert values.dtype == x.dtype
            np.testing.assert_array_equal(values.numpy(), t_values.numpy(), err_msg="sort " + what)


def test_top_k_puts_nan_first_as_torch():
    x = np.array([[1.0, np.nan, 3.0, -np.inf, 3.0], [0.0, -0.0, 2.0, np.inf, np.nan]])
    want = torch.topk(torch.from_numpy(x), 3, dim=-1).values
    _same(fx.top_k(fx.tensor(x), 3)[0], want, "top_k values")
    _same(fx.jit(lambda a: fx.top_k(a, 3)[0])(fx.tensor(x)), want, "jit(top_k) values")


# ----------------------------------------------------------------------------- rounding

ROUNDING = ["floor", "ceil", "round", "trunc"]


@pytest.mark.parametrize("name", ROUNDING)
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64", "bool"])
def test_rounding_keeps_integers_and_bools_as_numpy_and_jax(name, dtype):
    values = np.array([0, 1, 2, 7, 100, 127]).astype(dtype)
    fn = getattr(fx, name)
    if name == "round" and dtype == "bool":
        # jnp.round refuses bools (they have no finfo); NumPy's float16 answer is an accident
        with pytest.raises(DTypeError, match="round: needs a numeric argument, got bool"):
            fn(fx.tensor(values))
        return
    want = getattr(np, name)(values)
    assert want.dtype == values.dtype  # NumPy 2 keeps them too: the reference is honest
    for f in (fn, fx.jit(fn)):
        got = f(fx.tensor(values))
        assert got.dtype == fx.tensor(values).dtype, f"{name}({dtype}) gives {got.dtype}"
        np.testing.assert_array_equal(got.numpy(), want)


def test_trunc_rounds_towards_zero_as_numpy():
    x = np.array([-2.7, -2.5, -0.5, -0.0, 0.0, 0.4, 1.5, 2.9, np.inf, -np.inf, np.nan, -3e4])
    for dtype in ("float64", "float32", "float16"):
        a = x.astype(dtype)
        for fn in (fx.trunc, fx.jit(fx.trunc)):
            got = fn(fx.tensor(a)).numpy()
            assert got.dtype == a.dtype
            np.testing.assert_array_equal(got, np.trunc(a))
            np.testing.assert_array_equal(np.signbit(got), np.signbit(np.trunc(a)))
    _same(fx.grad(lambda t: fx.sum(fx.trunc(t)))(fx.tensor(x)), np.zeros_like(x), "trunc'")


# ----------------------------------------------------------------------------- pow, clip, prod

BASES = [0.0, -0.0, -2.0, 2.0, 0.5, -1.5]
EXPONENTS = [2.0, 0.0, -1.0, 0.5, 3.0, -2.5]


def test_pow_gradients_match_torch_where_the_base_is_not_positive():
    # d/dy x**y = x**y log x: NaN for x < 0, -inf or inf for x == 0 > y, 0 for x == 0 <= y
    xs, ys = (np.array(v).reshape(s) for v, s in ((BASES, (-1, 1)), (EXPONENTS, (1, -1))))
    xs, ys = np.broadcast_arrays(xs, ys)
    tx, ty = (torch.tensor(a.copy(), requires_grad=True) for a in (xs, ys))
    (tx**ty).sum().backward()
    loss = lambda a, b: fx.sum(a**b)  # noqa: E731
    with np.errstate(all="ignore"):  # the forward itself is NaN at (-2) ** 0.5
        for grad in (fx.grad(loss, argnums=(0, 1)), fx.jit(fx.grad(loss, argnums=(0, 1)))):
            gx, gy = grad(fx.tensor(xs), fx.tensor(ys))
            _same(gx, tx.grad, "d/dx x**y")
            _same(gy, ty.grad, "d/dy x**y")


def test_pow_forward_mode_along_one_argument_ignores_the_others_partial():
    # d/dy is NaN at x < 0 and d/dx inf at x = 0 < y < 1: a direction that leaves that
    # argument still must not meet it (0 * NaN), as the directional derivative says
    xs, ys = np.array([-2.0, -2.0, 0.0, 3.0]), np.array([2.0, 3.0, 0.5, 2.0])
    tx, ty = (torch.tensor(a, requires_grad=True) for a in (xs, ys))
    (tx**ty).sum().backward()
    along_x = lambda a: fx.sum(a ** fx.tensor(ys))  # noqa: E731
    along_y = lambda b: fx.sum(fx.tensor(xs) ** b)  # noqa: E731
    for f, primal, want in ((along_x, xs, tx.grad[:2]), (along_y, ys, ty.grad[2:])):
        keep = slice(0, 2) if f is along_x else slice(2, 4)
        direction = np.zeros(4)
        direction[keep] = 1.0
        with np.errstate(divide="ignore"):  # d/dx = 0.5 * 0 ** -0.5 is inf, rightly
            _, tangent = fx.jvp(f, (fx.tensor(primal),), (fx.tensor(direction),))
        _same(tangent, want.sum(), "jvp along one argument")


@pytest.mark.parametrize("exponent", [2, 3, 2.0, 0.5, 0, -1.0])
def test_pow_by_a_python_number_forms_no_log_of_the_base(exponent):
    # x ** 2 at x < 0 has a finite derivative; its exponent's (NaN) is never computed:
    # no warning, no debug_nans alarm, and forward mode agrees (no 0 * NaN).
    x = np.array([-2.0, -0.5, 0.5, 3.0])
    x = x if float(exponent).is_integer() else np.abs(x)  # (-2) ** 0.5 is NaN itself
    t = torch.tensor(x, requires_grad=True)
    (t**exponent).sum().backward()
    with warnings.catch_warnings(), fx.debug_nans():
        warnings.simplefilter("error")
        g = _grads(lambda a: a**exponent, fx.tensor(x))
        _, tangent = fx.jvp(
            lambda a: fx.sum(a**exponent), (fx.tensor(x),), (fx.ones(4, dtype=fx.float64),)
        )
    _same(g, t.grad, f"d/dx x**{exponent}")
    _same(tangent, t.grad.sum(), f"jvp of x**{exponent}")


@pytest.mark.parametrize(
    "bounds",
    [(-0.5, 0.5), (-0.5, None), (None, 0.5), (0.5, -0.5)],
    ids=["both", "min", "max", "crossed"],
)
def test_clip_gradient_at_nan_is_zero_as_torch(bounds):
    x = np.array([np.nan, -2.0, -0.5, 0.0, 0.5, 2.0, np.inf, -np.inf])
    lo, hi = bounds
    t = torch.tensor(x, requires_grad=True)
    torch.clamp(t, lo, hi).sum().backward()
    fn = lambda a: fx.clip(a, lo, hi)  # noqa: E731
    _same(fn(fx.tensor(x)), torch.clamp(torch.tensor(x), lo, hi), "clip")
    _same(fx.jit(fn)(fx.tensor(x)), torch.clamp(torch.tensor(x), lo, hi), "jit(clip)")
    _same(_grads(fn, fx.tensor(x)), t.grad, f"clip' {bounds}")


def test_clip_with_tensor_bounds_at_nan_matches_torch():
    x = np.array([np.nan, -2.0, 0.1, 2.0, np.nan])
    lo, hi = np.full(5, -0.5), np.array([0.5, 0.5, 0.5, 0.5, np.inf])
    tx, tlo, thi = (torch.tensor(a, requires_grad=True) for a in (x, lo, hi))
    torch.clamp(tx, tlo, thi).sum().backward()
    grads = fx.grad(lambda a, b, c: fx.sum(fx.clip(a, b, c)), argnums=(0, 1, 2))
    for g, want in zip(grads(*map(fx.tensor, (x, lo, hi))), (tx, tlo, thi)):
        _same(g, want.grad, "clip' with tensor bounds")


def _products_of_others(row: np.ndarray) -> np.ndarray:
    return np.array([np.prod(np.delete(row, i)) for i in range(row.size)])


PROD_ROWS = [
    [2.0, 0.0, 3.0, 5.0],  # one zero: its gradient is the product of the others
    [0.0, 0.0, 3.0, 5.0],  # two: every gradient is 0
    [2.0, np.nan, 3.0, 5.0],  # a NaN: the others' gradients are NaN, its own is 30
    [0.0, np.nan, 3.0, 5.0],
    [0.0, np.inf, 2.0, 1.0],
    [np.inf, 2.0, 3.0, -1.0],
    [-0.0, 4.0, 0.5, 2.0],
]


@pytest.mark.parametrize("row", PROD_ROWS, ids=[str(r) for r in PROD_ROWS])
def test_prod_gradient_is_the_product_of_the_others(row):
    row = np.array(row)
    x = np.stack([row, row[::-1], np.arange(1.0, 5.0)])  # reduced along axis 1
    with np.errstate(all="ignore"):  # 0 * inf in the products themselves
        want = np.stack([_products_of_others(r) for r in x])
        g = _grads(lambda a: fx.prod(a, axis=1), fx.tensor(x))
        _same(g, want, "prod' along axis 1")
        _same(fx.grad(lambda a: fx.prod(a))(fx.tensor(row)), _products_of_others(row), "prod'")
        _same(
            fx.jit(fx.grad(lambda a: fx.sum(fx.prod(a.T, axis=0))))(fx.tensor(x)),
            want,
            "jit(prod') over .T",
        )
        direction = np.eye(3, 4) - 0.5
        _, tangent = fx.jvp(lambda a: fx.prod(a, axis=1), (fx.tensor(x),), (fx.tensor(direction),))
        _same(tangent, np.sum(direction * want, axis=1), "jvp of prod")
        if not np.isnan(row).any() and not np.isinf(row).any():
            # with a zero PyTorch computes the product of the others too (without, it
            # divides: out / x, which is NaN at a NaN and inf / inf at an inf)
            t = torch.tensor(x, requires_grad=True)
            torch.prod(t, dim=1).sum().backward()
            _same(g, t.grad, "prod' vs torch")


def test_prod_gradient_over_several_axes_and_empty_ones():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5))
    x[0, 1, 2] = x[1, 0, 0] = x[1, 2, 4] = 0.0
    t = torch.tensor(x, requires_grad=True)
    torch.prod(torch.prod(t, dim=2), dim=0).sum().backward()
    _same(_grads(lambda a: fx.prod(a, axis=(0, 2)), fx.tensor(x)), t.grad, "prod' over (0, 2)")
    _same(
        _grads(lambda a: fx.prod(a, axis=1), fx.zeros((2, 0), dtype=fx.float64)),
        np.zeros((2, 0)),
        "empty",
    )


# ----------------------------------------------------------------------------- softmax family

EMPTY = [((3, 0), -1), ((0, 3), 0), ((2, 0, 3), 1)]


@pytest.mark.parametrize("shape, axis", EMPTY)
def test_softmax_family_over_an_empty_axis_as_torch(shape, axis):
    x = np.zeros(shape)
    pairs = [
        (lambda a: fx.softmax(a, axis=axis), lambda t: torch.softmax(t, dim=axis)),
        (lambda a: fx.log_softmax(a, axis=axis), lambda t: torch.log_softmax(t, dim=axis)),
        (lambda a: fx.logsumexp(a, axis=axis), lambda t: torch.logsumexp(t, dim=axis)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no log(0) or 0/0 warnings for an empty axis
        for fn, torch_fn in pairs:
            want = torch_fn(torch.tensor(x))
            _same(fn(fx.tensor(x)), want, "empty axis")
            _same(fx.jit(fn)(fx.tensor(x)), want, "jit, empty axis")
            _same(_grads(fn, fx.tensor(x)), np.zeros(shape), "gradient, empty axis")
            batched = fx.vmap(fn)(fx.tensor(np.zeros((2,) + shape)))
            _same(batched, np.stack([want.numpy()] * 2), "vmap, empty axis")


def test_log_softmax_float32_is_accurate_to_an_ulp_as_torch():
    x = np.array([1000.0, 1000.0, -1000.0], np.float32)
    exact = (x.astype(np.float64) - (1000.0 + np.log(2.0))).astype(np.float32)
    want = torch.log_softmax(torch.from_numpy(x), -1).numpy()
    for fn in (fx.log_softmax, fx.jit(fx.log_softmax)):
        got = fn(fx.tensor(x)).numpy()
        assert got.dtype == np.float32
        ulps = np.abs(got - exact) / np.spacing(np.abs(exact))
        assert ulps.max() <= 1, f"log_softmax off by {ulps.max()} ulp: {got} vs {exact}"
        np.testing.assert_allclose(got, want, rtol=2 * np.finfo(np.float32).eps)
    logits = fx.tensor(x.reshape(1, 3))
    loss = F.cross_entropy(logits, fx.tensor([0]))
    t_loss = TF.cross_entropy(torch.from_numpy(x.reshape(1, 3)), torch.tensor([0]))
    np.testing.assert_allclose(loss.numpy(), t_loss.numpy(), rtol=2 * np.finfo(np.float32).eps)


LSE_ROWS = [
    [1000.0, 1000.0, -1000.0],
    [-np.inf, 0.0, 1.0],
    [-np.inf, -np.inf, -np.inf],
    [np.inf, 0.0, 1.0],
    [np.inf, -np.inf, 0.0],
    [-1e30, 1e30, 0.0],
]


@pytest.mark.parametrize("name", ["logsumexp", "log_softmax", "softmax"])
def test_logsumexp_family_on_infinite_and_large_rows_as_torch(name):
    x = np.array(LSE_ROWS)
    torch_fn = {"logsumexp": torch.logsumexp, "log_softmax": torch.log_softmax,
                "softmax": torch.softmax}[name]  # fmt: skip
    fn = lambda a: getattr(fx, name)(a, axis=-1)  # noqa: E731
    t = torch.tensor(x, requires_grad=True)
    out = torch_fn(t, -1)
    weights = np.arange(1.0, 1.0 + out.numel()).reshape(out.shape)
    (out * torch.tensor(weights)).sum().backward()
    with np.errstate(all="ignore"):
        _same(fn(fx.tensor(x)), out, name)
        _same(fx.jit(fn)(fx.tensor(x)), out, f"jit({name})")
        weighted = lambda a: fn(a) * fx.tensor(weights)  # noqa: E731
        _same(_grads(weighted, fx.tensor(x)), t.grad, f"{name}'")


# ----------------------------------------------------------------------------- einsum

EINSUMS = [
    ("ii->i", (4, 4)),
    ("ii", (3, 3)),
    ("iij->j", (3, 3, 2)),
    ("iij->ji", (2, 2, 3)),
    ("iji->j", (2, 3, 2)),
    ("iii->", (2, 2, 2)),
    ("ij,jj->ij", (2, 3), (3, 3)),
    ("...ij,...jk->...ik", (2, 1, 2, 3), (5, 3, 4)),
    ("...ij,...jk", (3, 2, 3), (3, 4)),
    ("b...i,bi->b...", (2, 3, 4, 5), (2, 5)),
    ("...ii->...i", (2, 3, 3)),
    ("...i->i", (2, 3, 4)),  # the ellipsis summed (PyTorch; NumPy refuses)
    ("i...,...->...", (2, 3), (3,)),
    ("ij,jk->ik", (2, 1), (3, 4)),
]


@pytest.mark.parametrize("spec", EINSUMS, ids=[s[0] for s in EINSUMS])
def test_einsum_diagonals_and_ellipses_match_torch(spec):
    subscripts, *shapes = spec
    rng = np.random.default_rng(len(subscripts))
    arrays = [rng.normal(size=s) for s in shapes]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = torch.einsum(subscripts, *ts)
    ct = rng.normal(size=tuple(out.shape))
    (out * torch.tensor(ct)).sum().backward()
    fn = lambda *xs: fx.einsum(subscripts, *xs)  # noqa: E731
    xs = [fx.tensor(a) for a in arrays]
    _same(fn(*xs), out, subscripts)
    _same(fx.jit(fn)(*xs), out, f"jit {subscripts}")
    loss = lambda *xs: fx.sum(fn(*xs) * fx.tensor(ct))  # noqa: E731
    argnums = tuple(range(len(xs)))
    for grads in (fx.grad(loss, argnums=argnums)(*xs), fx.jit(fx.grad(loss, argnums=argnums))(*xs)):
        for g, t in zip(grads, ts):
            _same(g, t.grad, f"gradient of {subscripts}")
    stacked = [np.stack([a, 2 * a]) for a in arrays]
    batched = fx.vmap(fn)(*map(fx.tensor, stacked))
    looped = [torch.einsum(subscripts, *(torch.tensor(s[k]) for s in stacked)) for k in range(2)]
    _same(batched, torch.stack(looped), f"vmap {subscripts}")


@pytest.mark.parametrize(
    "x_shape, y_shape, axes",
    [
        ((2, 0), (0, 3), 1),  # an empty contracted axis: zeros (found by tests/fuzz)
        ((0, 1, 0, 0), (0, 1, 2), 1),
        ((0, 3), (3, 2), 1),  # an empty free axis
        ((2, 3), (4,), 0),
        ((2, 0, 3), (0, 3, 2), 2),
    ],
)
def test_tensordot_of_empty_axes_matches_torch(x_shape, y_shape, axes):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=x_shape), rng.normal(size=y_shape)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out = torch.tensordot(ta, tb, dims=axes)
    ct = rng.normal(size=tuple(out.shape))
    (out * torch.tensor(ct)).sum().backward()
    fn = lambda x, y: fx.tensordot(x, y, axes=axes)  # noqa: E731
    x, y = fx.tensor(a), fx.tensor(b)
    _same(fn(x, y), np.tensordot(a, b, axes=axes), "tensordot vs NumPy")
    _same(fx.jit(fn)(x, y), out, "jit tensordot vs torch")
    loss = lambda x, y: fx.sum(fn(x, y) * fx.tensor(ct))  # noqa: E731
    for grads in (fx.grad(loss, argnums=(0, 1))(x, y), fx.jit(fx.grad(loss, argnums=(0, 1)))(x, y)):
        _same(grads[0], ta.grad, "d/dx")
        _same(grads[1], tb.grad, "d/dy")


@pytest.mark.parametrize(
    "subscripts, shapes, error, match",
    [
        ("ii->i", [(2, 3)], ShapeError, "index 'i' repeats in term 'ii'"),
        ("ij", [(2, 3, 4)], ShapeError, "names 2 axes but operand 0 has shape"),
        ("...ij", [(3,)], ShapeError, "names 2 axes but operand 0 has shape"),
        ("i.j", [(2, 3)], InvalidArgumentError, "name axes with the letters"),
        ("i,i", [(2,), (3,)], ShapeError, "index 'i' of 'i,i' has size 2"),
        ("ij->ii", [(2, 2)], InvalidArgumentError, "appears twice"),
    ],
)
def test_einsum_errors_name_the_term_and_the_fix(subscripts, shapes, error, match):
    with pytest.raises(error, match=match):
        fx.einsum(subscripts, *[fx.zeros(s) for s in shapes])


# ----------------------------------------------------------------------------- dtypes

DTYPE_LIKES = ["float32", "f4", "<f4", np.float32, np.dtype("f4"), b"f4", fx.float32, "f32"]
NOT_DTYPES = [{"a": 1}, {"a": (1, 2, 3, 4, 5)}, [("a", "f4")], "foo", "float64", 3, 1.5, None,
              [1], (1, 2), object(), torch.float32, fx.zeros(3), torch.zeros(3), np.float64,
              "i4,i4", slice(1)]  # fmt: skip


@pytest.mark.parametrize("other", DTYPE_LIKES, ids=repr)
def test_dtype_equals_its_spellings_as_numpy(other):
    assert fx.float32 == other and not (fx.float32 != other)
    if not isinstance(other, fx.DType) and other != "f32":  # f32: fluxion's own short name
        assert np.dtype("f4") == other  # what NumPy users expect of the same spelling


@pytest.mark.parametrize("other", NOT_DTYPES, ids=lambda o: type(o).__name__)
def test_dtype_is_unequal_to_anything_else_without_raising(other):
    assert (fx.float32 == other) is False
    assert fx.float32 != other


def test_dtype_hash_agrees_with_numpy_dtypes():
    for name in ("bool", "uint8", "int8", "int32", "int64", "float16", "bfloat16", "float32"):
        d = getattr(fx, name)
        assert d == d.np and hash(d) == hash(d.np)
        assert {d: name}[d.np] == name and {d.np: name}[d] == name
    assert len({fx.float32, np.dtype("float32"), fx.DType.float32}) == 1


# ----------------------------------------------------------------------------- split

SPLITS = [[-1], [-2, 4], [3, 1], [10], [-10], [2, 2], [0], [-1, -3], [], [1, 3], [-3, -1, 5],
          np.array([1, 3]), 1, 5]  # fmt: skip


@pytest.mark.parametrize("cuts", SPLITS, ids=repr)
def test_split_matches_numpy_for_negative_unsorted_and_out_of_range_cuts(cuts):
    a = np.arange(10.0).reshape(2, 5)
    want = np.split(a, cuts, axis=1)
    assert [p.shape for p in want] == [p.shape for p in np.array_split(a, cuts, axis=1)]
    weights = [np.arange(1.0, 1.0 + p.size).reshape(p.shape) for p in want]

    def loss(x):
        pieces = fx.split(x, cuts, axis=-1)
        return sum(fx.sum(p * fx.tensor(w)) for p, w in zip(pieces, weights))

    for fn in (lambda x: fx.split(x, cuts, axis=1), fx.jit(lambda x: fx.split(x, cuts, axis=1))):
        got = fn(fx.tensor(a))
        assert [p.shape for p in got] == [p.shape for p in want]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w)
    # the gradient puts each piece's weights back where NumPy's piece came from
    positions = np.split(np.arange(a.size).reshape(a.shape), cuts, axis=1)
    expected = np.zeros(a.size)
    for p, w in zip(positions, weights):
        np.add.at(expected, p.ravel(), w.ravel())
    _same(_grads(loss, fx.tensor(a)), expected.reshape(a.shape), f"split' {cuts}")


@pytest.mark.parametrize("sections, error", [(0, ShapeError), (3, ShapeError), (-1, ShapeError),
                                             ([1.5], InvalidArgumentError)])  # fmt: skip
def test_split_errors(sections, error):
    with pytest.raises(error, match="split: "):
        fx.split(fx.zeros(5), sections)


@pytest.mark.parametrize("n, chunks", [(5, 2), (6, 4), (0, 3), (3, 5), (7, 7), (1, 1)])
def test_chunk_matches_torch(n, chunks):
    a = np.arange(float(n))
    want = torch.chunk(torch.tensor(a), chunks)
    for fn in (fx.chunk, fx.jit(fx.chunk, static_argnums=1)):
        got = fn(fx.tensor(a), chunks)
        assert [p.shape for p in got] == [tuple(p.shape) for p in want]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w.numpy())


# ----------------------------------------------------------------------------- found by the fuzzer


def test_flatten_of_empty_tensors_as_torch():
    for shape, start, end in [((0, 1), 1, -1), ((2, 0, 3), 0, 1), ((0,), 0, -1), ((3, 0), 0, -1)]:
        want = torch.flatten(torch.zeros(shape), start, end).shape
        assert fx.flatten(fx.zeros(shape), start, end).shape == tuple(want)


def test_zero_d_boolean_index_as_numpy():
    xn = np.arange(6.0).reshape(2, 3)
    x = fx.tensor(xn)
    for index in [
        np.array(True),
        np.array(False),
        True,
        False,
        (0, True),
        (slice(None), np.array(False), 1),
        (None, True, 1),
    ]:
        np.testing.assert_array_equal(x[index].numpy(), xn[index], err_msg=repr(index))
        np.testing.assert_array_equal(fx.jit(lambda x: x[index])(x).numpy(), xn[index])
    g = fx.grad(lambda x: fx.sum(x[True] * 2.0))(x)
    np.testing.assert_array_equal(g.numpy(), np.full((2, 3), 2.0))


def test_at_set_drops_a_values_leading_size_one_axes_as_numpy():
    out = np.zeros((2, 3))
    out[0:1] = np.ones((1, 1, 3))
    got = fx.zeros((2, 3), dtype=fx.float64).at[0:1].set(fx.ones((1, 1, 3), dtype=fx.float64))
    np.testing.assert_array_equal(got.numpy(), out)


def test_attention_with_empty_heads_is_empty_as_torch():
    q = fx.zeros((2, 3, 0))
    want = torch.nn.functional.scaled_dot_product_attention(*[torch.zeros(2, 3, 0)] * 3)
    assert fx.nn.functional.scaled_dot_product_attention(q, q, q).shape == tuple(want.shape)


def test_gather_and_scatter_add_follow_torch_for_a_smaller_index():
    """A smaller index reads (and writes) only its own positions, as torch: NumPy's
    take_along_axis broadcasting gave [[2, 2]] where torch gives [[2, 1]]."""
    rng = np.random.default_rng(0)
    xn, src = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    index = np.array([[2, 0], [1, 1]])
    for dim in (0, 1):
        t_index = torch.tensor(index)
        want = torch.gather(torch.tensor(xn), dim, t_index).numpy()
        np.testing.assert_array_equal(fx.gather(fx.tensor(xn), dim, index).numpy(), want)
        want = torch.scatter_add(torch.tensor(xn), dim, t_index, torch.tensor(src)).numpy()
        got = fx.scatter_add(fx.tensor(xn), dim, index, fx.tensor(src)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-15)
    with pytest.raises(fx.errors.ShapeError, match="larger than input"):
        fx.gather(fx.tensor(xn), 0, np.zeros((2, 5), np.int64))
