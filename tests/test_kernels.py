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
