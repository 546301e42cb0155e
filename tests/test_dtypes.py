"""dtypes: the supported table, spellings, round trips, bfloat16 arithmetic, promotion, errors."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import fluxion as fx
from fluxion.core import dtypes
from fluxion.errors import DTypeError

# name, the NumPy dtype it must be, the short name repr prints
TABLE = [
    ("bool", np.dtype(np.bool_), "bool"),
    ("uint8", np.dtype(np.uint8), "u8"),
    ("uint32", np.dtype(np.uint32), "u32"),
    ("int8", np.dtype(np.int8), "i8"),
    ("int16", np.dtype(np.int16), "i16"),
    ("int32", np.dtype(np.int32), "i32"),
    ("int64", np.dtype(np.int64), "i64"),
    ("float16", np.dtype(np.float16), "f16"),
    ("bfloat16", np.dtype(ml_dtypes.bfloat16), "bf16"),
    ("float32", np.dtype(np.float32), "f32"),
    ("float64", np.dtype(np.float64), "f64"),
]
NAMES = [name for name, _, _ in TABLE]
SUPPORTED_NP = {np_dtype for _, np_dtype, _ in TABLE}


@pytest.mark.parametrize("name, np_dtype, short", TABLE)
def test_table_names(name, np_dtype, short):
    d = getattr(fx, name)
    assert d is getattr(fx.DType, name)
    assert isinstance(d, fx.DType)
    assert d.name == name and repr(d) == name and d.short == short
    assert d == np_dtype and d == np_dtype.type and d == name and d == short
    assert d.itemsize == np_dtype.itemsize
    assert d.is_floating_point == (np_dtype.kind == "f" or name == "bfloat16")
    assert dtypes.to_np(d) == dtypes.to_np(name) == dtypes.to_np(np_dtype) == np_dtype
    assert dtypes.to_dtype(np_dtype) is d


def test_distinct_dtypes_are_unequal_and_hash_apart():
    ds = [getattr(fx, n) for n in NAMES]
    for i, a in enumerate(ds):
        for j, b in enumerate(ds):
            assert (a == b) == (i == j)
    assert len(set(ds)) == len(ds)
    assert {fx.float32: 1}[fx.DType.float32] == 1


def test_python_types_as_dtypes():
    assert fx.zeros(2, dtype=float).dtype == fx.float32  # the default float, as PyTorch
    assert fx.zeros(2, dtype=int).dtype == fx.int64
    assert fx.zeros(2, dtype=bool).dtype == fx.bool


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("spelling", ["dtype", "name", "numpy"])
def test_zeros_ones_roundtrip(name, spelling):
    d = getattr(fx, name)
    arg = {"dtype": d, "name": name, "numpy": d.np}[spelling]
    z = fx.zeros(2, 3, dtype=arg)
    assert z.dtype == d and z.numpy().dtype == d.np and z.shape == (2, 3)
    np.testing.assert_array_equal(z.numpy(), np.zeros((2, 3), d.np))
    o = fx.ones((3,), dtype=arg)
    assert o.dtype == d
    np.testing.assert_array_equal(o.numpy(), np.ones(3, d.np))
    assert repr(o).endswith(f":{d.short}[3]:cpu(0)")


@pytest.mark.parametrize("src", NAMES)
@pytest.mark.parametrize("dst", NAMES)
def test_astype_roundtrip_matches_numpy(src, dst):
    values = np.array([0, 1, 2, 5, 100, 0, 3, 1])  # representable in every dtype
    x = fx.tensor(values.astype(getattr(fx, src).np))
    y = x.astype(getattr(fx, dst))
    assert y.dtype == getattr(fx, dst)
    np.testing.assert_array_equal(y.numpy(), values.astype(getattr(fx, src).np).astype(y.dtype.np))
    back = y.astype(src)
    assert back.dtype == getattr(fx, src)
    if src != "bool" and dst != "bool":
        np.testing.assert_array_equal(back.numpy(), x.numpy())


def test_astype_to_same_dtype_keeps_values():
    x = fx.tensor([1.5, 2.5])
    assert x.astype(fx.float32).tolist() == [1.5, 2.5]


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_bfloat16_arithmetic_against_torch(op):
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 4, 16).astype(np.float32)
    b = rng.uniform(0.5, 4, 16).astype(np.float32)
    ta, tb = torch.tensor(a).bfloat16(), torch.tensor(b).bfloat16()
    # exactly the bfloat16 values torch holds, so both sides start equal
    xa = fx.tensor(ta.float().numpy()).astype(fx.bfloat16)
    xb = fx.tensor(tb.float().numpy()).astype(fx.bfloat16)
    fn = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
          "/": lambda x, y: x / y}[op]  # fmt: skip
    out = fn(xa, xb)
    assert out.dtype == fx.bfloat16
    expected = fn(ta, tb).float().numpy()
    # each side rounds once to bfloat16 (8 bits of mantissa): at most 1 ulp apart
    np.testing.assert_allclose(out.astype(fx.float32).numpy(), expected, rtol=2**-7)


def test_bfloat16_ops_and_scalars():
    x = fx.tensor([1.0, 2.0, 3.0], dtype=fx.bfloat16)
    assert (x * 2.0).dtype == fx.bfloat16  # weak Python scalar keeps bfloat16
    assert (x * 2.0).astype(fx.float32).tolist() == [2.0, 4.0, 6.0]
    assert fx.sum(x).astype(fx.float32).item() == 6.0
    assert fx.exp(fx.zeros(2, dtype=fx.bfloat16)).astype(fx.float32).tolist() == [1.0, 1.0]
    assert (x @ x).astype(fx.float32).item() == 14.0
    assert (x > 1.5).dtype == fx.bool
    # bfloat16 holds 8 bits of mantissa: 257 rounds to 256, as torch.bfloat16 does
    assert fx.tensor([257.0]).astype(fx.bfloat16).astype(fx.float32).item() == float(
        torch.tensor(257.0).bfloat16().float()
    )


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("float16", "bfloat16", "float32"),
        ("int32", "float16", "float16"),
        ("uint8", "int8", "int16"),
        ("bool", "int8", "int8"),
        ("bool", "float16", "float16"),
        ("int64", "float32", "float32"),
        ("float32", "float64", "float64"),
        ("uint32", "int32", "int64"),
        ("int8", "int64", "int64"),
    ],
)
def test_promotion_table(a, b, expected):
    x, y = fx.ones(2, dtype=a), fx.ones(2, dtype=b)
    assert (x + y).dtype == expected
    assert (y + x).dtype == expected
    same_kind = {a, b} <= {"uint8", "int8", "int16", "int32", "int64", "uint32"} or {a, b} <= {
        "float16",
        "float32",
        "float64",
    }
    if same_kind:  # within one kind NumPy's rule is the array API's: NumPy is the oracle
        assert np.dtype(expected) == np.promote_types(a, b)
    if "bfloat16" not in (a, b) and "uint32" not in (a, b):
        ta = torch.ones(2, dtype=getattr(torch, a))
        tb = torch.ones(2, dtype=getattr(torch, b))
        assert str(torch.promote_types(ta.dtype, tb.dtype)).removeprefix("torch.") == expected


def test_promotion_table_is_symmetric_and_total():
    for a in SUPPORTED_NP:
        for b in SUPPORTED_NP:
            assert dtypes.promote(a, b) == dtypes.promote(b, a)
            assert dtypes.promote(a, b) in SUPPORTED_NP


@pytest.mark.parametrize(
    "dtype, scalar, expected",
    [
        ("float16", 2.0, "float16"),
        ("int8", 1, "int8"),
        ("int8", 1.5, "float32"),
        ("bool", 1, "int64"),
        ("bool", True, "bool"),
        ("uint8", 3, "uint8"),
        ("bfloat16", 3, "bfloat16"),
    ],
)
def test_weak_python_scalars(dtype, scalar, expected):
    assert (fx.ones(2, dtype=dtype) * scalar).dtype == expected


UNSUPPORTED = [np.clongdouble, np.timedelta64, np.str_, np.dtype("U3"), "object", np.datetime64]
if hasattr(np, "float128"):
    UNSUPPORTED.append("float128")


@pytest.mark.parametrize("bad", UNSUPPORTED, ids=repr)
def test_unsupported_dtypes_raise_dtype_error(bad):
    for make in (
        lambda: fx.zeros(2, dtype=bad),
        lambda: fx.ones(2).astype(bad),
        lambda: fx.tensor([1.0], dtype=bad),
        lambda: fx.full((2,), 1.0, dtype=bad),
    ):
        with pytest.raises(DTypeError) as info:
            make()
        message = str(info.value)
        assert repr(bad) in message or str(bad) in message  # names the dtype
        for name in NAMES:  # and lists the supported ones
            assert name in message
    with pytest.raises(TypeError):  # DTypeError is a TypeError
        dtypes.to_np(bad)


def test_unsupported_numpy_arrays_raise_dtype_error():
    with pytest.raises(DTypeError, match="clongdouble|complex256"):
        fx.tensor(np.array([1 + 2j], dtype=np.clongdouble))
    with pytest.raises(DTypeError):
        fx.asarray(np.array(["a", "b"]))


def test_none_is_not_a_dtype():
    with pytest.raises(DTypeError, match="None"):
        dtypes.to_np(None)
    with pytest.raises(DTypeError):
        fx.ones(2).astype(None)
    assert fx.float64 != None  # noqa: E711


def test_requires_grad_needs_a_float_dtype():
    for name in NAMES:
        d = getattr(fx, name)
        if d.is_floating_point:
            assert fx.zeros(2, dtype=d).requires_grad_().requires_grad
        else:
            with pytest.raises(fx.errors.GradError, match=name):
                fx.zeros(2, dtype=d).requires_grad_()
