"""The array API standard's names: dtype functions, the inspection namespace, complex
numbers, copy= and device= keywords, against NumPy (the conformance suite itself runs in
CI through tools/array_api_rate.py)."""

from __future__ import annotations

import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import DTypeError, InvalidArgumentError

REAL = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
REAL += ["float32", "float64"]
ALL = ["bool"] + REAL + ["complex64", "complex128"]


@pytest.mark.parametrize("name", ["float32", "float64", "complex64", "complex128"])
def test_finfo_matches_numpy(name):
    got, want = fx.finfo(getattr(fx, name)), np.finfo(np.dtype(name))
    assert (got.bits, got.eps, got.max, got.min) == (
        want.bits,
        float(want.eps),
        float(want.max),
        float(want.min),
    )
    assert got.smallest_normal == float(want.smallest_normal)
    assert fx.finfo(fx.ones(1, dtype=name)) == got


@pytest.mark.parametrize("name", [n for n in REAL if "int" in n])
def test_iinfo_matches_numpy(name):
    got, want = fx.iinfo(name), np.iinfo(np.dtype(name))
    assert (got.bits, got.max, got.min) == (want.bits, int(want.max), int(want.min))
    with pytest.raises(DTypeError):
        fx.finfo(name)


def test_isdtype_kinds():
    assert fx.isdtype(fx.int8, "signed integer") and not fx.isdtype(fx.uint8, "signed integer")
    assert fx.isdtype(fx.uint8, ("bool", "integral"))
    assert fx.isdtype(fx.complex64, "numeric") and not fx.isdtype(fx.bool, "numeric")
    assert fx.isdtype(fx.float32, fx.float32) and not fx.isdtype(fx.float32, fx.float64)
    with pytest.raises(InvalidArgumentError):
        fx.isdtype(fx.float32, "floaty")


@pytest.mark.parametrize("a", ALL)
@pytest.mark.parametrize("b", ALL)
def test_result_type_is_the_ops_promotion(a, b):
    x, y = fx.ones(2, dtype=a), fx.ones(2, dtype=b)
    assert fx.result_type(a, b) == (x + y).dtype == fx.result_type(x, y)
    assert fx.can_cast(a, fx.result_type(a, b))


def test_result_type_follows_numpy_within_a_kind():
    for a in ALL:
        for b in ALL:
            da, db = np.dtype(a), np.dtype(b)
            if da.kind == db.kind or {da.kind, db.kind} <= {"c", "f"}:
                assert fx.result_type(a, b) == np.result_type(da, db), (a, b)


def test_complex_arithmetic_matches_numpy():
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))).astype(np.complex64)
    w = (rng.normal(size=(4,)) + 1j * rng.normal(size=(4,))).astype(np.complex128)
    tz, tw = fx.asarray(z), fx.asarray(w)
    for got, want in [
        (tz * tw + 2.0, z * w + 2.0),
        (tz / tw, z / w),
        (fx.exp(tz), np.exp(z)),
        (fx.log(tz), np.log(z)),
        (fx.sqrt(tz), np.sqrt(z)),
        (fx.abs(tz), np.abs(z)),
        (fx.real(tz), z.real),
        (fx.imag(tz), z.imag),
        (fx.conj(tz), np.conj(z)),
        (fx.sum(tz, axis=0), z.sum(0)),
        (tz @ fx.conj(tz).T, z @ z.conj().T),
    ]:
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    assert (fx.asarray(1j).dtype, (fx.ones(2) * 1j).dtype) == (fx.complex64, fx.complex64)
    assert fx.jit(lambda a: fx.abs(a * a))(tz).dtype == fx.float32


def test_complex_ops_without_a_complex_meaning_refuse_complex():
    with pytest.raises(DTypeError):
        fx.floor(fx.asarray([1.5j]))  # never the real part silently


def test_asarray_copy_and_device():
    a = np.arange(3.0, dtype=np.float32)
    shared, copied = fx.asarray(a, copy=False), fx.asarray(a, copy=True)
    a[0] = 7.0
    assert float(shared[0]) == 7.0 and float(copied[0]) == 0.0
    with pytest.raises(InvalidArgumentError, match="copy=False"):
        fx.asarray([1.0, 2.0], copy=False)
    x = fx.zeros((2,), device=fx.ones(1).device)
    assert x.to_device(x.device) is x and x.__array_namespace__() is fx
    with pytest.raises(InvalidArgumentError, match="device"):
        fx.ones(2, device="gpu")


def test_inspection_namespace():
    info = fx.__array_namespace_info__()
    assert info.default_device() in info.devices() == fx.devices()
    assert info.default_dtypes()["real floating"] == fx.float32
    assert set(info.dtypes(kind="integral")) == {n for n in REAL if "int" in n}
    assert set(info.dtypes()) == set(ALL)
    assert (fx.pi, fx.e, fx.newaxis) == (np.pi, np.e, None) and np.isnan(fx.nan)


def test_data_dependent_functions_match_numpy():
    rng = np.random.default_rng(1)
    a = np.round(rng.normal(size=(4, 5)) * 2) / 2
    a[0, 0] = a[1, 1] = np.nan  # NaNs are distinct values (the array API)
    x = fx.asarray(a)
    for got, want in zip(fx.nonzero(x), np.nonzero(a)):
        np.testing.assert_array_equal(got.numpy(), want)
    values, index, inverse, counts = fx.unique_all(x)
    v, i, inv, c = np.unique(
        a, return_index=True, return_inverse=True, return_counts=True, equal_nan=False
    )
    np.testing.assert_array_equal(values.numpy(), v)
    np.testing.assert_array_equal(index.numpy(), i)
    np.testing.assert_array_equal(inverse.numpy(), inv.reshape(a.shape))
    np.testing.assert_array_equal(counts.numpy(), c)
    assert int(np.isnan(values.numpy()).sum()) == 2
    np.testing.assert_array_equal(fx.unique_values(x).numpy(), v)
    np.testing.assert_array_equal(fx.unique_counts(x).counts.numpy(), c)
    np.testing.assert_array_equal(fx.unique_inverse(x).inverse_indices.numpy(), inv.reshape(4, 5))
    s = np.sort(rng.normal(size=7))
    q = rng.normal(size=(2, 3))
    for side in ("left", "right"):
        got = fx.searchsorted(fx.asarray(s), fx.asarray(q), side=side)
        np.testing.assert_array_equal(got.numpy(), np.searchsorted(s, q, side=side))
    np.testing.assert_array_equal(fx.isin(x, fx.asarray(a[2])).numpy(), np.isin(a, a[2]))
    assert fx.broadcast_shapes((3, 1), (4,), ()) == np.broadcast_shapes((3, 1), (4,), ())


def test_unique_values_carry_gradients():
    x = fx.tensor([2.0, 1.0, 2.0, 3.0])
    g = fx.grad(lambda x: fx.sum(fx.unique_values(x) * fx.tensor([1.0, 2.0, 3.0])))(x)
    np.testing.assert_array_equal(g.numpy(), [2.0, 1.0, 0.0, 3.0])  # the first of each


def test_repeat_with_counts_matches_numpy():
    a = np.arange(6.0).reshape(2, 3)
    for repeats, axis in [
        ([1, 0, 2], 1),
        ([3, 1], 0),
        ([2], 1),
        (np.array([0, 1, 2, 0, 1, 1]), None),
    ]:
        got = fx.repeat(fx.asarray(a), fx.asarray(np.asarray(repeats)), axis=axis)
        np.testing.assert_array_equal(got.numpy(), np.repeat(a, repeats, axis=axis))
    g = fx.grad(lambda x: fx.sum(fx.repeat(x, [1, 0, 2], axis=1) ** 2))(fx.asarray(a))
    np.testing.assert_array_equal(g.numpy(), 2 * a * np.array([1, 0, 2]))


FFTS = [
    ("fft", {}, "complex"),
    ("ifft", {"n": 6}, "complex"),
    ("fftn", {"axes": (0, 1)}, "complex"),
    ("ifftn", {"s": (2, 3)}, "complex"),
    ("rfft", {"axis": 0}, "real"),
    ("irfft", {}, "complex"),
    ("rfftn", {"norm": "ortho"}, "real"),
    ("irfftn", {"s": (3, 6)}, "complex"),
    ("hfft", {"n": 8}, "complex"),
    ("ihfft", {}, "real"),
]


@pytest.mark.parametrize("name, kwargs, kind", FFTS, ids=[f[0] for f in FFTS])
def test_fft_matches_numpy_eager_jit_and_vmap(name, kwargs, kind):
    rng = np.random.default_rng(0)
    shape = (2, 3, 5)
    a = rng.normal(size=shape)
    if kind == "complex":
        a = a + 1j * rng.normal(size=shape)
    want = getattr(np.fft, name)(a, **kwargs)
    fn = getattr(fx.fft, name)
    got = fn(fx.asarray(a), **kwargs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fx.jit(lambda x: fn(x, **kwargs))(fx.asarray(a)).numpy(), want)
    if not {"axes", "s"} & set(kwargs) and name not in ("fftn", "rfftn"):
        batched = fx.vmap(lambda x: fn(x, **kwargs))(fx.asarray(a))
        loop = np.stack([getattr(np.fft, name)(row, **kwargs) for row in a])
        np.testing.assert_allclose(batched.numpy(), loop, rtol=1e-10, atol=1e-10)


def test_fft_helpers():
    np.testing.assert_allclose(fx.fft.fftfreq(7, d=0.5).numpy(), np.fft.fftfreq(7, 0.5), 1e-6)
    np.testing.assert_allclose(fx.fft.rfftfreq(6).numpy(), np.fft.rfftfreq(6), 1e-6)
    a = np.arange(15.0).reshape(3, 5)
    for axes in (None, 0, (1,)):
        np.testing.assert_array_equal(
            fx.fft.fftshift(fx.asarray(a), axes=axes), np.fft.fftshift(a, axes)
        )
        np.testing.assert_array_equal(
            fx.fft.ifftshift(fx.asarray(a), axes=axes), np.fft.ifftshift(a, axes)
        )


def test_complex_expm1_is_accurate_near_zero_and_has_c99_special_values():
    z = np.array([1e-9 + 2e-9j, -3e-8 + 1e-8j, 0.5 - 0.25j])
    taylor = z + z**2 / 2 + z**3 / 6 + z**4 / 24  # to 1e-36 for the small ones
    got = fx.expm1(fx.asarray(z)).numpy()
    np.testing.assert_allclose(got[:2], taylor[:2], rtol=1e-15)
    np.testing.assert_allclose(got[2], np.exp(z[2]) - 1, rtol=1e-15)
    inf, nan = np.inf, np.nan
    special = np.array([complex(inf, 0), complex(-inf, inf), complex(nan, 0), complex(-inf, 1)])
    got = fx.expm1(fx.asarray(special)).numpy()
    np.testing.assert_array_equal(got, [complex(inf, 0), complex(-1, 0), complex(nan, 0), -1 + 0j])


def test_tensordot_over_an_empty_axis_is_zeros():
    a, b = np.ones((2, 0)), np.ones((0, 3))
    np.testing.assert_array_equal(fx.tensordot(a, b, axes=1).numpy(), np.tensordot(a, b, axes=1))


@pytest.mark.parametrize("module", ["fluxion.ops.inspection", "fluxion.linalg", "fluxion.fft"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), extraglobs={"fx": fx})
    assert result.attempted and not result.failed


def test_complex_values_are_never_cut_to_their_real_part():
    z = fx.zeros(2, dtype=fx.complex128)
    z[0] = 1e-5j  # at complex128's precision, not through complex64
    assert z.numpy()[0] == 1e-5j
    with pytest.raises(DTypeError, match="imaginary"):
        fx.asarray([1 + 1j]).astype(fx.float32)
    with pytest.raises(DTypeError, match="imaginary"):
        fx.zeros(2)[0] = 1j
    np.testing.assert_array_equal(fx.asarray([0j, 2j]).astype(bool).numpy(), [False, True])
    x, i = fx.asarray([[3.0, 1.0, 2.0]]), fx.asarray([[1, 2]])
    np.testing.assert_array_equal(fx.take_along_axis(x, i).numpy(), [[1.0, 2.0]])  # axis=-1
