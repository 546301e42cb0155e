"""Creation ops against NumPy: constants, *_like, ranges, eye, tril/triu; shape spellings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fluxion as fx
from fluxion.errors import DTypeError, InvalidArgumentError, ShapeError


def check(t, expected, dtype=None):
    expected = np.asarray(expected)
    assert isinstance(t, fx.Tensor)
    assert t.shape == expected.shape
    assert t.dtype == (expected.dtype if dtype is None else dtype)
    np.testing.assert_array_equal(t.numpy(), expected)


SHAPES = [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 2, 3, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", ["zeros", "ones", "empty"])
def test_constants_shapes_as_tuple_and_varargs(name, shape):
    fx_fn = getattr(fx, name)
    expected = np.ones(shape, np.float32) if name == "ones" else np.zeros(shape, np.float32)
    check(fx_fn(shape), expected)  # a tuple
    check(fx_fn(*shape), expected)  # varargs
    check(fx_fn(list(shape)), expected)  # a list
    check(fx_fn(shape, dtype=fx.int32), expected.astype(np.int32))
    check(fx_fn(*shape, dtype="float64"), expected.astype(np.float64))


def test_constant_default_dtype_and_none():
    assert fx.zeros(2).dtype == fx.float32 and fx.ones(2).dtype == fx.float32
    assert torch.zeros(2).dtype == torch.float32  # the same default as PyTorch
    # dtype=None means the default (np.dtype(None) would silently be float64)
    assert fx.zeros(2, dtype=None).dtype == fx.float32
    assert fx.ones(2, dtype=None).dtype == fx.float32
    assert fx.eye(2, dtype=None).dtype == fx.float32
    assert fx.linspace(0, 1, 3, dtype=None).dtype == fx.float32
    check(fx.zeros(3), np.zeros(3, np.float32))
    check(fx.ones(2, 2), np.ones((2, 2), np.float32))


@pytest.mark.parametrize(
    "shape, value, dtype, expected_dtype",
    [
        ((2, 3), 1.5, None, np.float32),
        ((2,), 7, None, np.int64),
        ((3,), True, None, np.bool_),
        (4, -2.0, None, np.float32),
        ((2, 2), 3, fx.float16, np.float16),
        ((2,), 2.5, "int32", np.int32),
        ((2,), np.int32(3), None, np.int32),  # NumPy scalars keep their dtype
        ((2,), np.float64(0.25), None, np.float64),
        ((), 9.0, None, np.float32),
    ],
)
def test_full(shape, value, dtype, expected_dtype):
    out = fx.full(shape, value, dtype=dtype)
    check(out, np.full(shape, value, dtype=expected_dtype))


def test_full_with_0d_tensor_value():
    check(fx.full((2, 2), fx.tensor(3.0)), np.full((2, 2), 3.0, np.float32))
    check(fx.full((3,), fx.tensor(4, dtype=fx.int16)), np.full(3, 4, np.int16))


def test_full_rejects_unsupported_values():
    with pytest.raises(DTypeError):
        fx.full((2,), "a")
    with pytest.raises(DTypeError):
        fx.full((2,), None)


@pytest.mark.parametrize(
    "src",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.arange(4, dtype=np.int16),
        np.array([True, False]),
        np.float64(2.0),
        np.zeros((0, 2), np.float16),
    ],
    ids=lambda a: f"{a.dtype}{list(np.shape(a))}",
)
def test_like_functions(src):
    for x in (fx.tensor(src), src):  # tensors and NumPy arrays both
        check(fx.zeros_like(x), np.zeros_like(src))
        check(fx.ones_like(x), np.ones_like(src))
        check(fx.full_like(x, 1), np.full_like(src, 1))
        check(fx.zeros_like(x, dtype=fx.float64), np.zeros_like(src, dtype=np.float64))
        check(fx.ones_like(x, dtype=np.dtype("float16")), np.ones_like(src, dtype=np.float16))
        check(fx.full_like(x, 3, dtype="int8"), np.full_like(src, 3, dtype=np.int8))


def test_like_functions_are_new_tensors():
    x = fx.tensor([1.0, 2.0], requires_grad=True)
    z = fx.zeros_like(x)
    assert not z.requires_grad and not np.shares_memory(z.numpy(), x.numpy())


# ----------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    "args",
    [(5,), (0,), (2, 7), (7, 2), (0, 10, 3), (10, 0, -3), (10, -1, -1), (-5, 5, 2), (3, 3),
     (np.int64(4),), (np.int32(1), 6)],
    ids=str,
)  # fmt: skip
def test_arange_int(args):
    out = fx.arange(*args)
    check(out, np.arange(*args).astype(np.int64))
    assert out.dtype == fx.int64
    assert out.tolist() == list(range(*map(int, args)))  # Python's range agrees


@pytest.mark.parametrize(
    "args",
    [(5.0,), (0, 1, 0.1), (1.0, 0.0, -0.25), (0.5, 3), (-1, 1, 0.3), (2.5, -2.5, -0.5),
     (0, 2.0), (0, 1, 0.01)],
    ids=str,
)  # fmt: skip
def test_arange_float(args):
    out = fx.arange(*args)
    expected = np.arange(*args)  # float64, then one rounding to float32, as PyTorch
    assert out.dtype == fx.float32 and out.shape == expected.shape
    np.testing.assert_array_equal(out.numpy(), expected.astype(np.float32))
    ref = torch.arange(*[float(a) for a in args], dtype=torch.float32).numpy()
    assert ref.shape == out.shape
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)


def test_arange_dtype_and_errors():
    check(fx.arange(4, dtype=fx.float64), np.arange(4, dtype=np.float64))
    check(fx.arange(0, 6, 2, dtype="int32"), np.arange(0, 6, 2, dtype=np.int32))
    check(fx.arange(3, dtype=fx.bfloat16), np.arange(3).astype(fx.bfloat16.np))
    with pytest.raises(InvalidArgumentError, match="step"):
        fx.arange(0, 5, 0)


@pytest.mark.parametrize(
    "start, stop, num, endpoint",
    [(0, 1, 5, True), (0, 1, 5, False), (-2, 2, 1, True), (3, -3, 7, True), (0, 1, 0, True),
     (1.5, 2.5, 11, False), (0, 10, 50, True)],
)  # fmt: skip
def test_linspace(start, stop, num, endpoint):
    out = fx.linspace(start, stop, num, endpoint=endpoint)
    check(out, np.linspace(start, stop, num, endpoint=endpoint).astype(np.float32))
    if endpoint:
        ref = torch.linspace(start, stop, num).numpy()
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)


def test_linspace_dtypes():
    check(fx.linspace(0, 1, 4, dtype=fx.float64), np.linspace(0, 1, 4))
    assert fx.linspace(0, 1, 3).tolist() == [0.0, 0.5, 1.0]


# ----------------------------------------------------------------------------- eye, tril, triu


@pytest.mark.parametrize(
    "n, m, k",
    [(3, None, 0), (1, None, 0), (0, None, 0), (3, 5, 0), (5, 3, 0), (4, None, 1), (4, None, -2),
     (3, 5, 2), (5, 3, -1), (3, None, 5), (3, None, -5)],
)  # fmt: skip
def test_eye(n, m, k):
    check(fx.eye(n, m, k), np.eye(n, m, k, dtype=np.float32))
    check(fx.eye(n, m, k=k, dtype=fx.int64), np.eye(n, m, k, dtype=np.int64))
    if k == 0:
        ref = torch.eye(n, n if m is None else m).numpy()
        np.testing.assert_array_equal(fx.eye(n, m).numpy(), ref)


TRI_INPUTS = [
    np.arange(1, 13, dtype=np.float32).reshape(3, 4),
    np.arange(1, 13, dtype=np.float32).reshape(4, 3),
    np.arange(1, 10, dtype=np.int64).reshape(3, 3),
    np.arange(1, 25, dtype=np.float32).reshape(2, 3, 4),  # a batch of matrices
    np.arange(1, 49, dtype=np.float64).reshape(2, 2, 3, 4),
    np.ones((3, 3), dtype=bool),
    np.ones((0, 3), dtype=np.float32),
]


@pytest.mark.parametrize("x", TRI_INPUTS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
@pytest.mark.parametrize("k", [0, 1, -1, 2, -3, 10])
def test_tril_triu(x, k):
    check(fx.tril(fx.tensor(x), k), np.tril(x, k))
    check(fx.triu(fx.tensor(x), k), np.triu(x, k))
    check(fx.tril(x, k=k), np.tril(x, k))  # NumPy input
    if x.dtype != bool and x.size:
        np.testing.assert_array_equal(
            fx.tril(x, k).numpy(), torch.tril(torch.from_numpy(x), k).numpy()
        )
        np.testing.assert_array_equal(
            fx.triu(x, k).numpy(), torch.triu(torch.from_numpy(x), k).numpy()
        )


def test_tril_needs_two_dims():
    for fn in (fx.tril, fx.triu):
        with pytest.raises(ShapeError, match="at least 2 dimensions"):
            fn(fx.ones(3))
        with pytest.raises(ValueError):
            fn(fx.tensor(1.0))


def test_tril_differentiable():
    x = fx.tensor(np.arange(1.0, 10.0, dtype=np.float32).reshape(3, 3), requires_grad=True)
    fx.sum(fx.tril(x) * 2.0).backward()
    check(x.grad, 2 * np.tril(np.ones((3, 3), np.float32)))


def test_causal_mask_idiom():
    mask = fx.tril(fx.ones(4, 4, dtype=fx.bool))
    check(mask, np.tril(np.ones((4, 4), bool)))
    scores = fx.where(mask, fx.zeros(4, 4), float("-inf"))
    assert np.isneginf(scores.numpy()[0, 1]) and scores.numpy()[1, 0] == 0
