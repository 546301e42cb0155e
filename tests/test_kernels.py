"""Kernels with a fast path of their own, against NumPy on both sides of the switch."""

import numpy as np
import pytest

import fluxion as fx


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "float16", "bfloat16", "int64", "int8", "bool"]
)
@pytest.mark.parametrize(
    "shapes",
    [
        ((64, 128), (64, 128), ()),
        ((64, 128), (128,), (64, 1)),
        ((3,), (3,), ()),
        ((5000,), (), (5000,)),
    ],
)
def test_where_matches_numpy_small_and_large(dtype, shapes):
    rng = np.random.default_rng(0)
    c_shape, x_shape, y_shape = shapes
    np_dtype = fx.DType.__dict__[dtype].np
    x = rng.normal(size=x_shape) * 10
    y = rng.normal(size=y_shape) * 10
    if dtype.startswith(("float", "bfloat")) and x.size > 2:
        x.flat[:3] = [np.nan, np.inf, -0.0]  # bits are moved, never computed
    x, y = x.astype(np_dtype), y.astype(np_dtype)
    c = rng.normal(size=c_shape) > 0
    got = fx.where(fx.tensor(c), fx.tensor(x), fx.tensor(y)).numpy()
    want = np.where(c, x, y)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [((150, 8, 32), (32, 64)), ((2, 3, 4, 5), (5, 6)), ((0, 3, 4), (4, 2)), ((4, 5), (5, 6))],
)
def test_matmul_of_a_stack_and_a_matrix(a_shape, b_shape):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=a_shape), rng.normal(size=b_shape)
    got = fx.matmul(fx.tensor(a), fx.tensor(b)).numpy()
    np.testing.assert_allclose(got, a @ b, rtol=1e-12, atol=1e-12)
    ga, gb = fx.grad(lambda x, y: fx.sum(fx.matmul(x, y) ** 2), argnums=(0, 1))(
        fx.tensor(a), fx.tensor(b)
    )
    ct = 2 * (a @ b)
    np.testing.assert_allclose(ga.numpy(), ct @ b.T, rtol=1e-10, atol=1e-12)
    lead = list(range(a.ndim - 1))
    want_gb = np.tensordot(a, ct, axes=(lead, lead))
    np.testing.assert_allclose(gb.numpy(), want_gb, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "shape, axes",
    [
        ((150, 4, 8, 8), (3,)),
        ((6, 7, 9), (0, 2)),
        ((5, 2000), (1,)),
        ((3, 4), (0,)),
        ((0, 3), (1,)),
        ((150, 8, 32), (0, 1)),
        ((40, 3, 5), (0,)),
        ((0, 3, 5), (0, 1)),
        ((4, 0), (0,)),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int32"])
def test_sum_matches_numpy_on_all_kernels(shape, axes, dtype):
    x = (np.random.default_rng(2).normal(size=shape) * 10).astype(dtype)
    got = fx.sum(fx.tensor(x), axis=axes).numpy()
    assert got.dtype == np.sum(x, axis=axes).dtype
    if dtype == "float16":  # accumulates in float32, rounds once: the exact sum, rounded
        want = np.sum(x.astype(np.float64), axis=axes).astype(np.float16)
        np.testing.assert_allclose(got, want, rtol=2**-10, atol=0)
    else:
        want = np.sum(x.astype(np.float64), axis=axes)
        rtol = 2e-6 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-3)


@pytest.mark.parametrize("rows, n_idx", [(20, (150, 8)), (3, (4,)), (5000, (1000,))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_embedding_gradient_matches_add_at(rows, n_idx, dtype):
    # the gradient of a gather along axis 0 is a scatter-add: one-hot product for small
    # tables, ufunc.add.at for large ones (5000 rows x 1000 indices)
    rng = np.random.default_rng(3)
    idx = rng.integers(-rows, rows, size=n_idx)
    x = rng.normal(size=(rows, 4)).astype(dtype)
    w = (rng.normal(size=n_idx + (4,)) * 5).astype(dtype)
    want = np.zeros_like(x)
    np.add.at(want, idx, w)
    got = fx.grad(lambda t: fx.sum(fx.take(t, fx.tensor(idx), axis=0) * fx.tensor(w)))(
        fx.tensor(x)
    ).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "bfloat16"])
@pytest.mark.parametrize("zero", [0.0, -0.0])
@pytest.mark.parametrize("zero_side", ["x", "y"])
def test_where_with_a_zero_scalar_branch_matches_numpy(dtype, zero, zero_side):
    rng = np.random.default_rng(4)
    np_dtype = fx.DType.__dict__[dtype].np
    other = rng.normal(size=(150, 8, 64)).astype(np_dtype)
    scalar = np.array(zero).astype(np_dtype)
    c = rng.normal(size=(150, 8, 64)) > 0
    x, y = (scalar, other) if zero_side == "x" else (other, scalar)
    got = fx.where(fx.tensor(c), fx.tensor(x), fx.tensor(y)).numpy()
    want = np.where(c, x, y)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.parametrize(
    "shape, axes",
    [((150, 4, 8, 8), (3,)), ((64, 4, 10, 10), (3,)), ((10, 1000), (1,)), ((6, 5, 4), (0, 2))],
)
@pytest.mark.parametrize("op", ["max", "min"])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_max_min_match_numpy_on_both_kernels(shape, axes, op, dtype):
    x = (np.random.default_rng(5).normal(size=shape) * 10).astype(dtype)
    if dtype == "float32":
        x.flat[7] = np.nan  # propagates, as in NumPy
    got = getattr(fx, op)(fx.tensor(x), axis=axes).numpy()
    want = getattr(np, op)(x, axis=axes)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
