"""Tensor: metadata, conversions, DLPack, operators, indexing, in-place updates, repr.

Every value is checked against an independent answer: NumPy, plain Python or PyTorch.
"""

from __future__ import annotations

import operator

import numpy as np
import pytest
import torch

import fluxion as fx
from fluxion.errors import DTypeError, GradError, IndexOutOfRangeError, InvalidArgumentError


def check(t, expected, dtype=None):
    """``t`` is a Tensor equal to the NumPy array ``expected`` (shape, dtype, then values)."""
    expected = np.asarray(expected)
    assert isinstance(t, fx.Tensor), type(t)
    assert t.shape == expected.shape
    assert t.dtype == (expected.dtype if dtype is None else dtype)
    np.testing.assert_array_equal(t.numpy(), expected)


# ----------------------------------------------------------------------------- metadata


def test_metadata_matches_numpy():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = fx.tensor(a)
    assert t.shape == a.shape == (2, 3, 4)
    assert isinstance(t.shape, tuple)
    assert t.ndim == 3
    assert t.size == a.size == 24
    assert t.numel() == 24
    assert len(t) == 2
    assert fx.tensor(3.0).shape == () and fx.tensor(3.0).ndim == 0 and fx.tensor(3.0).size == 1
    assert fx.zeros(0, 3).size == 0 and fx.zeros(0, 3).shape == (0, 3)


def test_dtype_spellings_compare_equal():
    t = fx.tensor([1.0, 2.0])
    assert t.dtype == fx.float32
    assert t.dtype == fx.DType.float32
    assert fx.float32 is fx.DType.float32
    assert t.dtype == np.float32
    assert t.dtype == np.dtype("float32")
    assert t.dtype == "float32"
    assert t.dtype == "f32"  # the short name used by repr
    # the reflected comparisons answer the same
    assert np.float32 == t.dtype
    assert "float32" == t.dtype
    assert np.dtype("float32") == t.dtype
    assert t.dtype != fx.float64 and t.dtype != np.float64 and t.dtype != "int32"
    assert hash(fx.float32) == hash(fx.DType.float32)
    assert repr(t.dtype) == "float32"
    assert t.dtype.itemsize == 4 and t.dtype.is_floating_point
    assert not fx.int64.is_floating_point


def test_dtype_is_never_equal_to_none_or_junk():
    # np.dtype(None) is float64; a DType must not compare equal to None because of it
    assert fx.float64 != None  # noqa: E711
    assert not (fx.float64 == None)  # noqa: E711
    assert fx.float32 != "not a dtype"
    assert fx.float32 != 3


def test_numpy_accepts_fluxion_dtypes():
    # NumPy reads a ``.dtype`` attribute: fx dtypes work wherever NumPy wants a dtype
    assert np.dtype(fx.bfloat16) == np.dtype(fx.bfloat16.np)
    assert np.zeros(2, dtype=fx.int16).dtype == np.int16
    assert np.arange(3).astype(fx.float16).dtype == np.float16


def test_device():
    t = fx.tensor([1.0])
    assert repr(t.device) == "cpu(0)" and str(t.device) == "cpu(0)"
    assert t.device == fx.devices()[0]
    assert t.device == fx.Device("cpu", 0) and t.device != fx.Device("cpu", 1)
    assert len({t.device, fx.Device()}) == 1


# ----------------------------------------------------------------------------- conversions


def test_item_tolist_float_int_bool():
    assert fx.tensor(2.5).item() == 2.5 and isinstance(fx.tensor(2.5).item(), float)
    assert fx.tensor(7).item() == 7 and isinstance(fx.tensor(7).item(), int)
    assert fx.tensor(True).item() is True
    assert fx.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert fx.tensor([0.5, 1.5]).tolist() == [0.5, 1.5]
    assert fx.tensor([4.0]).item() == 4.0
    assert float(fx.tensor(2.5)) == 2.5 and int(fx.tensor(7)) == 7 and int(fx.tensor(7.9)) == 7
    assert bool(fx.tensor([3.0])) is True and bool(fx.tensor([0])) is False
    assert bool(fx.tensor(0.0)) is False
    with pytest.raises(ValueError):
        bool(fx.tensor([1.0, 2.0]))  # ambiguous, as in NumPy and PyTorch
    with pytest.raises(ValueError):
        fx.tensor([1.0, 2.0]).item()


def test_index_dunder():
    items = [10, 20, 30, 40]
    assert items[fx.tensor(2)] == 30
    assert items[fx.tensor(-1)] == 40
    assert items[fx.tensor(1, dtype=fx.int32) : fx.tensor(3)] == [20, 30]
    assert operator.index(fx.tensor(3, dtype=fx.uint8)) == 3
    assert "ab"[fx.tensor(1)] == "b"
    with pytest.raises(TypeError):
        items[fx.tensor(1.0)]


def test_len_and_iteration():
    a = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    t = fx.tensor(a)
    rows = list(t)
    assert len(t) == len(rows) == 3
    for row, expected in zip(rows, a):
        check(row, expected)
    assert [int(v) for v in fx.arange(4)] == [0, 1, 2, 3]
    with pytest.raises(TypeError):
        len(fx.tensor(1.0))


def test_numpy_and_array_protocol_share_memory():
    t = fx.tensor([1.0, 2.0, 3.0])
    assert np.shares_memory(t.numpy(), np.asarray(t))
    assert np.asarray(t).dtype == np.float32
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float64), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.sin(np.asarray(t)), np.sin(np.float32([1, 2, 3])))


def test_np_array_of_a_tensor_is_a_copy():
    # np.array(x) asks __array__ for a copy (NumPy 2 passes copy=True); writing to it
    # must not change the tensor
    t = fx.tensor([1.0, 2.0, 3.0])
    a = np.array(t)
    a[0] = 99.0
    assert t.tolist() == [1.0, 2.0, 3.0]
    assert not np.shares_memory(np.array(t), t.numpy())


# ----------------------------------------------------------------------------- DLPack


def test_dlpack_protocol_with_numpy():
    t = fx.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.__dlpack_device__() == (1, 0)  # kDLCPU, device 0
    a = np.from_dlpack(t)
    assert np.shares_memory(a, t.numpy())
    np.testing.assert_array_equal(a, [[1, 2], [3, 4]])


@pytest.mark.parametrize("importer", [fx.from_dlpack, fx.Tensor.from_dlpack])
def test_from_dlpack_numpy_zero_copy(importer):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = importer(a)
    assert isinstance(t, fx.Tensor)
    assert t.shape == (2, 3) and t.dtype == fx.float32
    assert np.shares_memory(a, t.numpy())
    a[0, 0] = 42.0
    assert t[0, 0].item() == 42.0


@pytest.mark.parametrize("importer", [fx.from_dlpack, fx.Tensor.from_dlpack])
def test_from_dlpack_torch_shares_memory(importer):
    src = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    t = importer(src)
    assert t.shape == (2, 3) and t.dtype == fx.float32
    src[1, 2] = -7.0  # mutate torch, see it in fluxion
    assert t[1, 2].item() == -7.0
    t.numpy()[0, 1] = 11.0  # mutate fluxion's buffer, see it in torch
    assert src[0, 1].item() == 11.0


def test_torch_from_dlpack_shares_memory():
    t = fx.tensor([1.0, 2.0, 3.0])
    tt = torch.from_dlpack(t)
    assert tt.dtype == torch.float32 and tuple(tt.shape) == (3,)
    tt[0] = 100.0  # mutate torch, see it in fluxion
    assert t[0].item() == 100.0
    t.numpy()[2] = -1.0  # and the other way round
    assert tt[2].item() == -1.0


@pytest.mark.parametrize(
    "dtype, torch_dtype",
    [
        (fx.int64, torch.int64),
        (fx.int32, torch.int32),
        (fx.uint8, torch.uint8),
        (fx.float64, torch.float64),
        (fx.float16, torch.float16),
        (fx.bool, torch.bool),
    ],
)
def test_dlpack_roundtrip_dtypes_with_torch(dtype, torch_dtype):
    t = fx.ones(2, 3, dtype=dtype)
    tt = torch.from_dlpack(t)
    assert tt.dtype == torch_dtype
    back = fx.from_dlpack(tt)
    assert back.dtype == dtype and back.shape == (2, 3)
    assert np.shares_memory(back.numpy(), t.numpy())


# ----------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "data, dtype",
    [
        (1.5, np.float32),
        (3, np.int64),
        (True, np.bool_),
        ([1.0, 2.0], np.float32),
        ([1, 2, 3], np.int64),
        ([True, False], np.bool_),
        ([[1, 2], [3, 4]], np.int64),
        ([[1.0, 2], [3, 4]], np.float32),  # one float makes the whole tensor float
        ([[[1], [2]], [[3], [4]]], np.int64),
        (np.array([1, 2], dtype=np.int32), np.int32),
        (np.array([1.0, 2.0]), np.float64),  # NumPy arrays keep their dtype
        (np.array([1, 2], dtype=np.uint8), np.uint8),
        (np.float16(2.0), np.float16),
        ((1, 2), np.int64),
    ],
)
@pytest.mark.parametrize("make", [fx.tensor, fx.asarray])
def test_tensor_and_asarray_dtypes(make, data, dtype):
    t = make(data)
    expected = np.asarray(data)
    assert t.shape == expected.shape
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), expected.astype(dtype))


def test_tensor_with_explicit_dtype():
    check(fx.tensor([1, 2], dtype=fx.float32), np.float32([1, 2]))
    check(fx.tensor([1.7, -2.2], dtype="int32"), np.array([1.7, -2.2]).astype(np.int32))
    check(fx.tensor(np.arange(3.0), dtype=np.float16), np.arange(3.0).astype(np.float16))
    check(fx.asarray([1, 2], dtype=fx.bfloat16), np.array([1, 2]).astype(fx.bfloat16.np))


def test_asarray_shares_memory_tensor_copies():
    a = np.arange(4.0)
    shared, copied = fx.asarray(a), fx.tensor(a)
    assert np.shares_memory(a, shared.numpy())
    assert not np.shares_memory(a, copied.numpy())
    a[0] = 9.0
    assert shared[0].item() == 9.0 and copied[0].item() == 0.0
    t = fx.tensor([1.0, 2.0])
    assert fx.asarray(t) is t
    assert fx.asarray(t, dtype=fx.float64).dtype == fx.float64
    assert not np.shares_memory(fx.tensor(t).numpy(), t.numpy())


def test_from_numpy_shares_memory():
    a = np.arange(3, dtype=np.int32)
    t = fx.from_numpy(a)
    assert t.dtype == fx.int32 and np.shares_memory(a, t.numpy())


def test_ragged_and_object_data_are_rejected():
    with pytest.raises(InvalidArgumentError, match="ragged"):
        fx.tensor([[1, 2], [3]])
    with pytest.raises(InvalidArgumentError, match="non-numeric"):
        fx.tensor([{"a": 1}])


def test_requires_grad_only_for_floats():
    assert fx.tensor([1.0], requires_grad=True).requires_grad
    with pytest.raises(GradError, match="floating-point"):
        fx.tensor([1, 2], requires_grad=True)


# ----------------------------------------------------------------------------- operators

RNG = np.random.default_rng(0)
F32_A = RNG.uniform(-3, 3, (3, 4)).astype(np.float32)
F32_B = (RNG.choice([-1, 1], (3, 4)) * RNG.uniform(0.5, 2, (3, 4))).astype(np.float32)
I64_A = np.array([[-7, -3, 0, 5], [8, -1, 2, 9], [4, 6, -5, 1]], dtype=np.int64)
I64_B = np.array([[2, -3, 4, 3], [-5, 2, 7, -4], [3, 3, -2, 6]], dtype=np.int64)
BOOL_A = np.array([True, True, False, False])
BOOL_B = np.array([True, False, True, False])

BINARY = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _close(t, expected, rtol=1e-6):
    expected = np.asarray(expected)
    assert isinstance(t, fx.Tensor)
    assert t.shape == expected.shape
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(t.numpy().astype(np.float64), expected, rtol=rtol, atol=1e-6)
    else:
        np.testing.assert_array_equal(t.numpy(), expected)


@pytest.mark.parametrize("op", list(BINARY))
def test_binary_operators_float32(op):
    fn = BINARY[op]
    a, b = (np.abs(F32_A) + 0.5, F32_B) if op == "**" else (F32_A, F32_B)
    out = fn(fx.tensor(a), fx.tensor(b))
    expected = fn(a, b)
    assert out.dtype == expected.dtype  # same-dtype pairs: NumPy's dtype is ours
    _close(out, expected, rtol=1e-5)


@pytest.mark.parametrize("op", list(BINARY))
def test_binary_operators_int64(op):
    fn = BINARY[op]
    b = np.abs(I64_B) if op == "**" else I64_B  # NumPy refuses negative integer powers
    out = fn(fx.tensor(I64_A), fx.tensor(b))
    expected = fn(I64_A, b)
    if op == "/":
        # int / int is the default float (float32), as in JAX and PyTorch; NumPy says float64
        assert out.dtype == fx.float32
    else:
        assert out.dtype == expected.dtype
    _close(out, expected)


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("scalar", [2, 2.5, -3])
def test_operators_with_python_scalars_on_either_side(op, scalar):
    fn = BINARY[op]
    a = np.abs(F32_A) + 0.5
    if op == "**" and scalar < 0:
        a = np.round(a)  # a negative base needs whole exponents to stay real
    _close(fn(fx.tensor(a), scalar), fn(a, np.float32(scalar)), rtol=1e-5)
    _close(fn(scalar, fx.tensor(a)), fn(np.float32(scalar), a), rtol=1e-5)
    # weak scalars keep the tensor's dtype (NumPy 2 agrees for float32 arrays)
    assert fn(fx.tensor(a), scalar).dtype == fn(a, scalar).dtype


@pytest.mark.parametrize("op", ["+", "-", "*", "//", "%", "**"])
def test_int_operators_with_int_scalars(op):
    fn = BINARY[op]
    a = np.abs(I64_A) + 1
    _close(fn(fx.tensor(a), 3), fn(a, 3))
    _close(fn(3, fx.tensor(a)), fn(3, a))
    assert fn(fx.tensor(a), 3).dtype == fx.int64
    assert fn(fx.tensor(a.astype(np.int8)), 3).dtype == fx.int8  # weak: stays int8


@pytest.mark.parametrize("op", list(BINARY))
def test_reflected_operators_with_numpy_on_the_left(op):
    fn = BINARY[op]
    a, b = np.abs(F32_A) + 0.5, np.abs(F32_B) + 0.5
    out = fn(a, fx.tensor(b))  # NumPy defers to Tensor's reflected operator
    assert isinstance(out, fx.Tensor)
    assert out.dtype == fn(a, b).dtype
    _close(out, fn(a, b), rtol=1e-5)
    b64 = b.astype(np.float64)  # float64 array meets a float32 tensor: float64 (or bool), as NumPy
    out = fn(b64, fx.tensor(a))
    assert out.dtype == fn(b64, a).dtype
    _close(out, fn(b64, a), rtol=1e-5)


def test_operators_broadcast_like_numpy():
    a = np.arange(3.0, dtype=np.float32).reshape(3, 1)
    b = np.arange(4.0, dtype=np.float32)
    check(fx.tensor(a) + fx.tensor(b), a + b)
    check(fx.tensor(a) * b, a * b)
    check(b - fx.tensor(a), b - a)


@pytest.mark.parametrize(
    "sa, sb",
    [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4, 2)),
     ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 1))],
)  # fmt: skip
def test_matmul_operator(sa, sb):
    a = RNG.standard_normal(sa).astype(np.float32)
    b = RNG.standard_normal(sb).astype(np.float32)
    _close(fx.tensor(a) @ fx.tensor(b), a @ b, rtol=1e-5)
    _close(a @ fx.tensor(b), a @ b, rtol=1e-5)  # __rmatmul__
    _close(fx.tensor(a) @ b, a @ b, rtol=1e-5)


def test_unary_operators():
    check(-fx.tensor(F32_A), -F32_A)
    check(-fx.tensor(I64_A), -I64_A)
    t = fx.tensor(F32_A)
    assert +t is t or np.array_equal((+t).numpy(), F32_A)
    check(abs(fx.tensor(F32_A)), np.abs(F32_A))
    check(abs(fx.tensor(I64_A)), np.abs(I64_A))
    check(~fx.tensor(BOOL_A), ~BOOL_A)
    check(~fx.tensor(I64_A), ~I64_A)


@pytest.mark.parametrize("op", [operator.and_, operator.or_, operator.xor])
def test_bitwise_operators(op):
    check(op(fx.tensor(BOOL_A), fx.tensor(BOOL_B)), op(BOOL_A, BOOL_B))
    check(op(BOOL_A, fx.tensor(BOOL_B)), op(BOOL_A, BOOL_B))  # reflected, NumPy on the left
    check(op(fx.tensor(BOOL_A), True), op(BOOL_A, True))
    check(op(False, fx.tensor(BOOL_B)), op(False, BOOL_B))
    check(op(fx.tensor(I64_A), fx.tensor(I64_B)), op(I64_A, I64_B))
    check(op(fx.tensor(I64_A), 6), op(I64_A, 6))
    check(op(6, fx.tensor(I64_A)), op(6, I64_A))


def test_comparison_with_none_is_false_like_torch():
    t = fx.tensor([1.0, 2.0])
    assert (t == None) is False and (t != None) is True  # noqa: E711
    assert (torch.tensor([1.0, 2.0]) == None) is False  # noqa: E711
    assert [None, t].index(t) == 1


def test_comparisons_give_bool_tensors():
    a = fx.tensor([1.0, 2.0, 3.0])
    check(a > 2, np.array([False, False, True]))
    check(2 < a, np.array([False, False, True]))  # Python swaps this to a > 2
    check(a == fx.tensor([1.0, 0.0, 3.0]), np.array([True, False, True]))
    check(np.float32([3, 2, 1]) >= a, np.array([True, True, False]))


# ----------------------------------------------------------------------------- indexing


class _Index:
    def __getitem__(self, index):
        return index


I = _Index()
X = np.arange(60, dtype=np.float32).reshape(3, 4, 5)

INDICES = [
    I[0],
    I[-1],
    I[2],
    I[1, 2],
    I[1, 2, 3],
    I[-1, -2, -3],
    I[:],
    I[1:],
    I[:-1],
    I[::2],
    I[::-1],
    I[::-2],
    I[2:0:-1],
    I[-1:-4:-1],
    I[5:1],
    I[1:1],
    I[:, 1:3],
    I[:, ::-1, 1::2],
    I[:, :, -2::-2],
    I[1, ::-1],
    I[None],
    I[None, 1],
    I[:, None],
    I[..., None],
    I[None, ..., None],
    I[...],
    I[..., 1],
    I[1, ...],
    I[0, ..., 2],
    I[..., 1:3],
    I[()],
    I[[0, 2]],
    I[[2, 0, 2]],
    I[[-1, 0]],
    I[[[0, 1], [1, 2]]],
    I[:, [0, 2]],
    I[1:, [0, 2]],
    I[:, :, [4, 0, 1]],
    I[[0, 1], [1, 2]],
    I[[0, 1], [1, 2], [3, 4]],
    I[[[0], [2]], [1, 3]],  # broadcast index arrays
    I[[0, 1], :, [1, 2]],  # separated advanced indices: the result's dims come first
    I[:, None, [0, 1]],
    I[1, [0, 1, 2]],
    I[0, :, [1, 3]],  # int and array separated by a slice: both advanced, dims go first
    I[[0, 2], 1:3],
    I[..., [0, 1]],
    I[[1], ..., [0, 4]],
    I[::-1, [0, 1]],
    I[None, [0, 2], None],
    I[np.array([0, 2])],
    I[np.array([[1, 0], [2, 2]]), 1],
    I[np.int64(1)],
    I[X > 30],
    I[X[:, :, 0] > 10],
    I[np.array([True, False, True])],
    I[:, np.array([True, False, True, False])],
    I[1, np.array([False, True, True, False])],
    I[np.array([True, False, True]), 2:],
    I[np.array([True, False, True]), :, [0, 1]],
]


def _ids(index):
    return repr(index).replace("\n", "")[:60]


@pytest.mark.parametrize("index", INDICES, ids=_ids)
def test_getitem_matches_numpy(index):
    check(fx.tensor(X)[index], X[index])


@pytest.mark.parametrize(
    "index",
    [
        I[[]],  # NumPy reads an empty list as an empty integer index
        I[:, []],
        I[1, [], 2],
        I[:, 0, ..., [1, 2]],  # an Ellipsis, even an empty one, separates advanced indices
        I[[0, 1], ..., [1, 2]],
        I[1:, [0, 1], ..., 3],
    ],
    ids=_ids,
)
def test_getitem_matches_numpy_corner_cases(index):
    check(fx.tensor(X)[index], X[index])


@pytest.mark.parametrize(
    "index",
    [I[np.array([True, False])], I[:, np.array([True, False, True])], I[..., np.array([True])]],
    ids=_ids,
)
def test_getitem_boolean_mask_of_the_wrong_length_raises(index):
    with pytest.raises(IndexError):
        X[index]  # NumPy refuses it
    with pytest.raises(IndexError, match="mask"):
        fx.tensor(X)[index]


@pytest.mark.parametrize(
    "index",
    [I[[0, 2]], I[[0, 1], [1, 2]], I[:, [0, 2]], I[X > 30], I[1:, [0, 2]]],
    ids=_ids,
)
def test_getitem_with_tensor_indices(index):
    expected = X[index]
    as_tensors = tuple(fx.tensor(i) if isinstance(i, list | np.ndarray) else i for i in index)
    as_tensors = as_tensors if isinstance(index, tuple) else fx.tensor(index)
    check(fx.tensor(X)[as_tensors], expected)


def test_getitem_with_0d_int_tensor():
    check(fx.tensor(X)[fx.tensor(1)], X[1])
    check(fx.tensor(X)[fx.tensor(1), fx.tensor(-1)], X[1, -1])


def test_getitem_on_0d_and_1d():
    s = fx.tensor(5.0)
    check(s[()], np.float32(5.0))
    check(s[None], np.float32([5.0]))
    check(s[...], np.asarray(np.float32(5.0)))
    v = np.arange(5, dtype=np.int64)
    for index in (I[3], I[-5], I[1:4], I[::-1], I[[4, 0]], I[v > 2], I[None, :], I[4:]):
        check(fx.tensor(v)[index], v[index])


@pytest.mark.parametrize(
    "index, error",
    [(I[3], IndexOutOfRangeError), (I[-4], IndexOutOfRangeError), (I[0, 4], IndexOutOfRangeError),
     (I[[0, 3]], IndexOutOfRangeError), (I[0, 0, 0, 0], IndexOutOfRangeError),
     (I[..., ...], InvalidArgumentError), (I[1.5], InvalidArgumentError)],
    ids=_ids,
)  # fmt: skip
def test_getitem_errors(index, error):
    with pytest.raises(error):
        fx.tensor(X)[index]
    with pytest.raises(IndexError):  # the built-in a NumPy user catches still catches it
        if error is IndexOutOfRangeError:
            fx.tensor(X)[index]
        else:
            raise IndexError


# ----------------------------------------------------------------------------- .at[] updates

AT_INDICES = [
    I[0],
    I[1, 2],
    I[:, 1],
    I[1:, ::2],
    I[::-1, 0],
    I[..., 3],
    I[[0, 2]],
    I[[0, 2, 0]],  # repeated rows
    I[[0, 0, 1], [1, 1, 2]],  # repeated elements
    I[:, [3, 3, 0]],
    I[X > 40],
    I[np.array([True, False, True]), 1],
]


@pytest.mark.parametrize("index", AT_INDICES, ids=_ids)
def test_at_get_matches_getitem(index):
    check(fx.tensor(X).at[index].get(), X[index])


@pytest.mark.parametrize("index", AT_INDICES, ids=_ids)
def test_at_set_matches_numpy_assignment(index):
    x = fx.tensor(X)
    shape = X[index].shape
    value = RNG.standard_normal(shape).astype(np.float32)
    expected = X.copy()
    expected[index] = value  # NumPy: with repeated positions the last write wins
    check(x.at[index].set(value), expected)
    check(x, X)  # out of place
    expected = X.copy()
    expected[index] = -1.0
    check(x.at[index].set(-1.0), expected)


@pytest.mark.parametrize("index", AT_INDICES, ids=_ids)
def test_at_add_accumulates_like_np_add_at(index):
    x = fx.tensor(X)
    value = RNG.standard_normal(X[index].shape).astype(np.float32)
    expected = X.copy()
    np.add.at(expected, index, value)  # repeated positions accumulate
    _close(x.at[index].add(value), expected, rtol=1e-6)
    expected = X.copy()
    np.add.at(expected, index, 2.0)
    check(x.at[index].add(2.0), expected)


def test_at_set_repeated_index_last_wins_1d():
    x = fx.zeros(4)
    expected = np.zeros(4, np.float32)
    expected[[1, 1, 3, 1]] = [5.0, 6.0, 7.0, 8.0]
    check(x.at[[1, 1, 3, 1]].set(fx.tensor([5.0, 6.0, 7.0, 8.0])), expected)
    assert expected[1] == 8.0
    check(x.at[fx.tensor([2, 2, 2])].add(1.0), np.float32([0, 0, 3, 0]))


def test_at_updates_are_differentiable_like_torch():
    x = fx.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    v = fx.tensor([10.0, 20.0], requires_grad=True)
    (x.at[fx.tensor([1, 3])].set(v) * fx.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    tx = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    tv = torch.tensor([10.0, 20.0], requires_grad=True)
    (
        tx.index_put((torch.tensor([1, 3]),), tv) * torch.tensor([1.0, 2.0, 3.0, 4.0])
    ).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_array_equal(v.grad.numpy(), tv.grad.numpy())
    x.grad, v.grad = None, None
    (x.at[[0, 0, 2]].add(fx.tensor([1.0, 1.0, 1.0])) ** 2).sum().backward()
    expected = np.float32([1, 2, 3, 4])
    np.add.at(expected, [0, 0, 2], 1.0)
    np.testing.assert_allclose(x.grad.numpy(), 2 * expected)


def test_at_set_broadcasts_and_casts_value():
    x = fx.zeros(3, 4, dtype=fx.int32)
    expected = np.zeros((3, 4), np.int32)
    expected[:, 1:3] = np.array([7, 8])
    out = x.at[:, 1:3].set(np.array([7, 8]))
    check(out, expected)


# ----------------------------------------------------------------------------- __setitem__


@pytest.mark.parametrize("index", AT_INDICES, ids=_ids)
def test_setitem_matches_numpy(index):
    x = fx.tensor(X)
    before = x
    value = RNG.standard_normal(X[index].shape).astype(np.float32)
    expected = X.copy()
    expected[index] = value
    x[index] = value
    assert x is before
    check(x, expected)
    x[index] = 3.0
    expected[index] = 3.0
    check(x, expected)


def test_setitem_with_tensor_value_and_int_dtype():
    x = fx.arange(6)
    expected = np.arange(6)
    x[fx.tensor([0, 5])] = fx.tensor([-1, -2])
    expected[[0, 5]] = [-1, -2]
    check(x, expected)
    x[2:4] = 2.9  # stored into an int tensor: truncated as NumPy does
    expected[2:4] = 2.9
    check(x, expected)


def test_setitem_on_requires_grad_leaf_raises_unless_no_grad():
    w = fx.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(GradError, match="no_grad"):
        w[0] = 5.0
    with pytest.raises(GradError):
        w[0] = fx.tensor(5.0)
    assert w.tolist() == [1.0, 2.0, 3.0]
    with fx.no_grad():
        w[0] = 5.0
    assert w.tolist() == [5.0, 2.0, 3.0] and w.requires_grad and w.is_leaf


def test_setitem_with_a_value_that_requires_grad_raises():
    x = fx.zeros(3)
    v = fx.tensor(2.0, requires_grad=True)
    with pytest.raises(GradError):
        x[1] = v


# ----------------------------------------------------------------------------- in place ops


@pytest.mark.parametrize(
    "op, inplace",
    [(operator.add, operator.iadd), (operator.sub, operator.isub),
     (operator.mul, operator.imul), (operator.truediv, operator.itruediv)],
)  # fmt: skip
def test_inplace_on_plain_tensor_is_in_place(op, inplace):
    x = fx.tensor(F32_A)
    alias = x
    x = inplace(x, fx.tensor(F32_B))
    assert x is alias
    _close(alias, op(F32_A, F32_B))
    x = inplace(x, 2.0)
    assert x is alias
    _close(alias, op(op(F32_A, F32_B), np.float32(2.0)), rtol=1e-6)


def test_inplace_keeps_dtype():
    x = fx.arange(4)
    x += 2
    check(x, np.arange(4) + 2)
    x = fx.zeros(3, dtype=fx.float16)
    x += 1.5
    check(x, np.full(3, 1.5, np.float16))


@pytest.mark.parametrize(
    "make, update",
    [(lambda: fx.arange(3), lambda x: operator.iadd(x, 0.5)),
     (lambda: fx.arange(3), lambda x: operator.itruediv(x, 2)),
     (lambda: fx.tensor([True, False]), lambda x: operator.iadd(x, 1)),
     (lambda: fx.arange(3), lambda x: operator.imul(x, fx.ones(3)))],
)  # fmt: skip
def test_inplace_cannot_change_the_kind(make, update):
    # NumPy raises (UFuncTypeError, a TypeError) and so does PyTorch: no silent truncation
    with pytest.raises(TypeError):
        a = make().numpy().copy()
        update(a)
    x = make()
    before = x.numpy().copy()
    with pytest.raises(DTypeError, match="in-place"):
        update(x)
    np.testing.assert_array_equal(x.numpy(), before)


def test_inplace_same_kind_narrowing_is_allowed():
    x = fx.zeros(3, dtype=fx.float16)
    x += fx.ones(3, dtype=fx.float32)  # float32 result stored as float16, as NumPy's same_kind
    check(x, np.ones(3, np.float16))
    y = fx.zeros(2, dtype=fx.int8)
    y += fx.tensor([3, 4])
    check(y, np.int8([3, 4]))


def test_inplace_in_the_graph_is_out_of_place():
    w = fx.tensor([1.0, 2.0], requires_grad=True)
    y = w * 3.0
    before = y
    y += 1.0
    assert y is not before
    check(before, np.float32([3.0, 6.0]))
    check(y, np.float32([4.0, 7.0]))
    y.sum().backward()
    check(w.grad, np.float32([3.0, 3.0]))


def test_inplace_on_requires_grad_leaf():
    w = fx.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(GradError):
        w += 1.0
    with fx.no_grad():
        alias = w
        w -= 0.5
    assert w is alias and w.tolist() == [0.5, 1.5] and w.requires_grad


# ----------------------------------------------------------------------------- methods


@pytest.mark.parametrize(
    "dtype",
    ["bool", "uint8", "uint32", "int8", "int16", "int32", "int64", "float16", "bfloat16",
     "float32", "float64"],
)  # fmt: skip
def test_astype(dtype):
    a = np.array([[0.0, 1.5, -2.5], [3.0, 100.25, 7.0]])
    src = np.abs(a) if dtype.startswith("u") else a
    target = getattr(fx, dtype)
    out = fx.tensor(src, dtype=fx.float64).astype(target)
    check(out, src.astype(target.np))
    assert fx.tensor(src).astype(dtype).dtype == target


def test_reshape_variants():
    a = np.arange(24, dtype=np.float32)
    t = fx.tensor(a)
    check(t.reshape(2, 3, 4), a.reshape(2, 3, 4))
    check(t.reshape((2, 3, 4)), a.reshape((2, 3, 4)))
    check(t.reshape([4, 6]), a.reshape([4, 6]))
    check(t.reshape(-1, 6), a.reshape(-1, 6))
    check(t.reshape(2, -1, 3), a.reshape(2, -1, 3))
    check(t.reshape(-1), a.reshape(-1))
    check(t.reshape(2, 12).reshape(24), a)
    check(fx.tensor(3.0).reshape(1, 1), np.float32(3.0).reshape(1, 1))
    check(fx.tensor([3.0]).reshape(()), np.float32([3.0]).reshape(()))
    check(t.view(6, 4), a.reshape(6, 4))
    with pytest.raises(ValueError):
        t.reshape(5, 5)


def test_transpose_permute_T():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    t = fx.tensor(a)
    check(t.T, a.T)
    check(t.transpose(), a.transpose())
    check(t.transpose(1, 0, 2), a.transpose(1, 0, 2))
    check(t.transpose((2, 0, 1)), a.transpose((2, 0, 1)))
    check(t.permute(2, 0, 1), np.transpose(a, (2, 0, 1)))
    check(t.permute((1, 2, 0)), np.transpose(a, (1, 2, 0)))
    check(t.permute(-1, 0, 1), np.transpose(a, (-1, 0, 1)))
    m = a[0]
    check(fx.tensor(m).T, m.T)
    check(fx.tensor([1.0, 2.0]).T, np.float32([1.0, 2.0]))
    check(t.mT, np.swapaxes(a, -1, -2))
    assert torch.equal(
        torch.from_numpy(a).permute(2, 0, 1), torch.from_numpy(t.permute(2, 0, 1).numpy())
    )


def test_methods_match_numpy():
    a = F32_A
    t = fx.tensor(a)
    _close(t.sum(), a.sum(), rtol=1e-5)
    _close(t.mean(axis=0), a.mean(axis=0), rtol=1e-5)
    _close(t.max(axis=1), a.max(axis=1))
    check(t.argmax(axis=1), a.argmax(axis=1))
    _close(t.exp(), np.exp(a), rtol=1e-5)
    check(t.flatten(), a.flatten())
    check(t.unsqueeze(0), a[None])
    check(t.float(), a)
    check(t.double(), a.astype(np.float64))
    check(t.long(), a.astype(np.int64))
    check(t.int(), a.astype(np.int32))
    check(t.to(fx.float16), a.astype(np.float16))
    check(t.clamp(-1.0, 1.0), np.clip(a, -1.0, 1.0))


def test_data_and_detach():
    w = fx.tensor([1.0, 2.0], requires_grad=True)
    d = w.detach()
    assert not d.requires_grad and d.tolist() == [1.0, 2.0]
    assert not w.data.requires_grad
    w.data = np.array([3.0, 4.0])  # .data assignment keeps the dtype
    assert w.dtype == fx.float32 and w.tolist() == [3.0, 4.0] and w.requires_grad


# ----------------------------------------------------------------------------- repr


def test_repr_0d_float32_seed_format():
    # the seed prints a float32 scalar with NumPy's shortest round-trip form
    t = fx.tensor(np.float32(25.47862))
    assert repr(t) == "25.47862:f32[]:cpu(0)"
    assert str(t) == repr(t)
    assert repr(fx.tensor(1.0)) == "1.0:f32[]:cpu(0)"


def test_repr_vector_seed_format():
    values = [7.0562096, 1.6006289, 3.914952, 8.9635725, 7.470232]
    t = fx.tensor(values)
    body = np.array2string(np.float32(values))
    assert repr(t) == f"{body}:f32[5]:cpu(0)"
    assert repr(t).startswith("[7.0562096 1.6006289 3.914952") and repr(t).endswith(
        " ]:f32[5]:cpu(0)"
    )


def test_repr_matrix_and_int_and_bool():
    a = np.arange(6).reshape(2, 3)
    assert repr(fx.tensor(a)) == f"{np.array2string(a)}:i64[2,3]:cpu(0)"
    assert repr(fx.tensor([1, 2, 3])) == "[1 2 3]:i64[3]:cpu(0)"
    assert repr(fx.tensor(7)) == "7:i64[]:cpu(0)"
    assert repr(fx.tensor([True, False])) == "[ True False]:bool[2]:cpu(0)"
    assert repr(fx.zeros(2, dtype=fx.int32)) == "[0 0]:i32[2]:cpu(0)"
    assert repr(fx.zeros(0, 3)).endswith(":f32[0,3]:cpu(0)")
    assert repr(fx.ones(2, dtype=fx.bfloat16)).endswith(":bf16[2]:cpu(0)")
    assert repr(fx.ones(2, dtype=fx.float16)).endswith(":f16[2]:cpu(0)")


def test_repr_long_tensor_is_summarized_like_numpy():
    a = np.arange(5000)
    r = repr(fx.tensor(a))
    assert "..." in r
    assert r == f"{np.array2string(a)}:i64[5000]:cpu(0)"
    b = np.linspace(0, 1, 2000, dtype=np.float32)
    assert repr(fx.tensor(b)) == f"{np.array2string(b)}:f32[2000]:cpu(0)"
    assert len(repr(fx.zeros(100, 100))) < 1000


@pytest.mark.parametrize(
    "data, dtype",
    [
        ([2**63], None),
        ([-(2**63) - 1], None),
        ([1, 2**63], None),
        (2**70, None),
        ([300], fx.uint8),
        ([2**31], fx.int32),
        ([float("nan")], fx.int32),
        ([1e20], fx.int64),
    ],
)
def test_python_numbers_that_do_not_fit_an_integer_dtype_are_refused(data, dtype):
    """torch raises where NumPy's casts would wrap (2**63 became -2**63)."""
    import torch

    torch_dtype = {None: None, fx.uint8: torch.uint8, fx.int32: torch.int32, fx.int64: torch.int64}
    with pytest.raises((RuntimeError, OverflowError, TypeError, ValueError)):
        torch.tensor(data, dtype=torch_dtype[dtype])
    with pytest.raises(InvalidArgumentError, match="does not fit in"):
        fx.tensor(data, dtype=dtype)


def test_integers_at_the_edges_of_their_dtype_are_kept():
    for data, dtype, want in [
        ([2**63 - 1, -(2**63)], None, np.array([2**63 - 1, -(2**63)], np.int64)),
        ([255, 0], fx.uint8, np.array([255, 0], np.uint8)),
        ([2**64], fx.float32, np.array([1.8446744e19], np.float32)),
        ([1.7, -1.7], fx.int64, np.array([1, -1], np.int64)),  # floats truncate, as torch
    ]:
        got = fx.tensor(data, dtype=dtype).numpy()
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    with pytest.raises(InvalidArgumentError, match="does not fit in uint8"):
        fx.tensor([-1], dtype=fx.uint8)  # torch wraps this one to 255; NumPy 2 refuses it
