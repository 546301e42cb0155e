"""Forward of every op in the table vs NumPy (STYLE.md points 6-7), plus dtype promotion.

* every ``OpCase`` x ``Sample`` x dtype of the case: the op on fluxion tensors made from
  the sample (float args cast to the dtype under test; non-contiguous views kept
  non-contiguous) against its NumPy reference on the same-dtype arrays. Shape and dtype
  are checked before values; the expected dtype comes from the table (float32 stays
  float32 even where NumPy would upcast), never from NumPy's result;
* special values (+-inf, nan, -0.0, huge and tiny numbers) through the elementwise ops;
* the promotion table: ``add``/``multiply`` for every pair of fluxion dtypes against the
  rules of ``fluxion/core/dtypes.py``'s docstring (re-derived here, not imported), and
  weak Python scalars;
* the meta-test: every public op of ``fluxion`` has an entry in the table.

Nothing here names an op except the special-value lists and the meta-test's exclusions.
"""

from __future__ import annotations

import functools
import inspect
import zlib

import ml_dtypes
import numpy as np
import pytest

import fluxion as fx

try:
    from op_table import OPS, OpCase, strided
except ImportError:  # tests/ made a package
    from tests.op_table import OPS, OpCase, strided


def _np_dtype(name: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


@functools.cache
def _samples_of(name: str) -> list:
    case = next(c for c in OPS if c.name == name)
    return case.samples(np.random.default_rng(zlib.crc32(name.encode())))


def _samples(case: OpCase) -> list:
    return _samples_of(case.name)


def _params():
    out = []
    for case in OPS:
        for k, _ in enumerate(_samples(case)):
            for dtype in case.dtypes:
                out.append(pytest.param(case, k, dtype, id=f"{case.name}-{k}-{dtype}"))
    return out


def _cast(a, dtype: str) -> np.ndarray:
    """A sample argument in the dtype under test, with the sample's memory layout.

    Float arrays follow a float dtype; under an integer dtype they become small integers
    (3x, rounded). Integer arrays follow an integer dtype. Bool arrays never change.
    """
    a = np.asarray(a)
    target = _np_dtype(dtype)
    if a.dtype.kind == target.kind == "c" or a.dtype.kind == target.kind == "f":
        out = a.astype(target)  # order "K": transposed views stay transposed
    elif a.dtype.kind == "f" and target.kind in "iu":
        out = np.rint(3 * a).astype(target)
    elif a.dtype.kind in "iu" and target.kind in "iu":
        out = a.astype(target)
    else:
        return a
    if a.ndim and not (a.flags.c_contiguous or a.flags.f_contiguous):
        out = strided(out)  # astype made a strided view contiguous: make it strided again
    return out


def _tolerances(case, dtype, out_dtype):
    key = out_dtype if out_dtype in case.rtol else dtype
    return case.rtol.get(key, 0.0), case.atol.get(key, case.rtol.get(key, 0.0))


def _check(got, want, out_dtype, rtol, atol, what):
    """Structure, then shape, then dtype, then values."""
    if isinstance(want, list | tuple):
        assert isinstance(got, list | tuple), f"{what}: got {type(got).__name__}, want a sequence"
        assert len(got) == len(want), f"{what}: {len(got)} results, NumPy gives {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            each = out_dtype[i] if isinstance(out_dtype, tuple) else out_dtype  # per result
            _check(g, w, each, rtol, atol, f"{what}[{i}]")
        return
    assert isinstance(got, fx.Tensor), f"{what}: got {type(got).__name__}, want a Tensor"
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, NumPy gives {want.shape}"
    assert all(type(d) is int for d in got.shape), f"{what}: shape {got.shape!r} holds non-ints"
    assert str(got.dtype) == out_dtype, f"{what}: dtype {got.dtype}, expected {out_dtype}"
    value = got.numpy()
    assert isinstance(value, np.ndarray) and value.dtype == _np_dtype(out_dtype), what
    if value.dtype.kind in "fc" or value.dtype == _np_dtype("bfloat16"):
        wide = np.complex128 if value.dtype.kind == "c" else np.float64
        np.testing.assert_allclose(
            value.astype(wide),
            want.astype(wide),
            rtol=rtol,
            atol=atol,
            equal_nan=True,
            err_msg=what,
        )
    else:
        np.testing.assert_array_equal(value, want.astype(value.dtype), err_msg=what)


@pytest.mark.parametrize("case, index, dtype", _params())
def test_forward_matches_numpy(case, index, dtype):
    sample = _samples(case)[index]
    arrays = [_cast(a, dtype) for a in sample.args]
    before = [a.copy() for a in arrays]
    with np.errstate(all="ignore"):
        want = case.np_fn(*arrays, **sample.kwargs)
    got = case.fx_fn(*[fx.asarray(a) for a in arrays], **sample.kwargs)
    out_dtype = case.expected_dtype(dtype, sample.kwargs)
    rtol, atol = _tolerances(case, dtype, out_dtype)
    _check(got, want, out_dtype, rtol, atol, f"{case.name} on {sample!r} in {dtype}")
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b, err_msg=f"{case.name} changed its input")


# ----------------------------------------------------------------------------- special values

SPECIALS = [np.inf, -np.inf, np.nan, -0.0, 0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 1e-30, -1e-30,
            1e30, -1e30, 100.0, -100.0]  # fmt: skip
UNARY = [
    "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu",
    "gelu", "gelu_tanh", "silu", "erf", "abs", "negative", "square", "reciprocal", "sign",
    "floor", "ceil", "round", "trunc", "isnan", "isinf", "isfinite", "logical_not",
    "stop_gradient", "softplus",
]  # fmt: skip
# IEEE 754 fixes the sign of a zero result of these (e.g. sqrt(-0.0) is -0.0).
SIGNED_ZEROS = {"negative", "abs", "sqrt", "sin", "tanh", "expm1", "log1p", "floor", "ceil",
                "round", "trunc", "erf", "square"}  # fmt: skip
BINARY = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "remainder",
          "floor_divide", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
          "logical_and", "logical_or", "logical_xor"]  # fmt: skip
CASES = {case.name: case for case in OPS}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", UNARY)
def test_special_values_unary(name, dtype):
    case = CASES[name]
    x = np.array(SPECIALS, dtype=dtype)
    with np.errstate(all="ignore"):
        want = np.asarray(case.np_fn(x))
        got = case.fx_fn(fx.asarray(x))
    out_dtype = case.expected_dtype(dtype, {})
    rtol, atol = _tolerances(case, dtype, out_dtype)
    _check(got, want, out_dtype, rtol, atol, f"{name} on {x.tolist()}")
    if name in SIGNED_ZEROS:
        zeros = want == 0
        np.testing.assert_array_equal(
            np.signbit(got.numpy()[zeros]),
            np.signbit(want[zeros]),
            err_msg=f"{name}: sign of zero results on {x[zeros].tolist()}",
        )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", BINARY)
def test_special_values_binary(name, dtype):
    case = CASES[name]
    x = np.array(SPECIALS, dtype=dtype)
    a, b = x[:, None], x[None, :]  # every pair, by broadcasting
    with np.errstate(all="ignore"):
        want = np.asarray(case.np_fn(a, b))
        got = case.fx_fn(fx.asarray(a), fx.asarray(b))
    out_dtype = case.expected_dtype(dtype, {})
    rtol, atol = _tolerances(case, dtype, out_dtype)
    _check(got, want, out_dtype, rtol, atol, f"{name} on all pairs of {x.tolist()}")


INF = np.inf
REDUCTIONS_WITH_INF = [
    ("softmax", [0.0, -INF, 1.0], {}),  # a masked logit gets probability 0
    ("softmax", [[0.0, -INF], [-INF, -INF]], {"axis": -1}),  # all masked: nan, like NumPy
    ("log_softmax", [0.0, -INF, 1.0], {}),
    ("logsumexp", [-INF, -INF], {}),
    ("logsumexp", [INF, 1.0], {}),
    ("logsumexp", [[1.0, -INF], [2.0, 3.0]], {"axis": 1}),
    ("logsumexp", [1.0, np.nan], {}),
    ("logsumexp", np.zeros((0, 3)), {"axis": 0}),  # an empty sum: -inf, as PyTorch
    ("max", [1.0, np.nan, 3.0], {}),
    ("min", [1.0, -INF], {}),
    ("sum", [INF, -INF], {}),
    ("mean", [1e30, 1e30], {}),
    ("clip", [np.nan, INF, -INF], {"min": -1.0, "max": 1.0}),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "name, values, kwargs",
    REDUCTIONS_WITH_INF,
    ids=[f"{r[0]}-{i}" for i, r in enumerate(REDUCTIONS_WITH_INF)],
)
def test_special_values_composites(name, values, kwargs, dtype):
    case = CASES[name]
    x = np.array(values, dtype=dtype)
    with np.errstate(all="ignore"):
        want = case.np_fn(x, **kwargs)
        got = case.fx_fn(fx.asarray(x), **kwargs)
    out_dtype = case.expected_dtype(dtype, kwargs)
    rtol, atol = _tolerances(case, dtype, out_dtype)
    _check(got, want, out_dtype, rtol, atol, f"{name} on {values} {kwargs}")


# ----------------------------------------------------------------------------- dtype promotion

DTYPES = ["bool", "uint8", "uint32", "int8", "int16", "int32", "int64", "float16", "bfloat16",
          "float32", "float64"]  # fmt: skip
BITS = {"bool": 1, "uint8": 8, "uint32": 32, "int8": 8, "int16": 16, "int32": 32, "int64": 64,
        "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}  # fmt: skip


def _kind(d: str) -> int:
    return 0 if d == "bool" else 1 if "int" in d else 2


def expected_promotion(a: str, b: str) -> str:
    """The documented rules (fluxion/core/dtypes.py), written out independently."""
    if a == b:
        return a
    if _kind(a) != _kind(b):  # bool < integers < floats; the higher kind wins whole
        return a if _kind(a) > _kind(b) else b
    if _kind(a) == 2:
        if {a, b} == {"float16", "bfloat16"}:
            return "float32"
        return a if BITS[a] > BITS[b] else b
    ua, ub = a.startswith("u"), b.startswith("u")
    if ua == ub:  # same signedness: the wider
        return a if BITS[a] > BITS[b] else b
    u, s = (a, b) if ua else (b, a)
    # unsigned with signed: the next signed type that holds both (uint8 + int8 -> int16)
    need = max(2 * BITS[u], BITS[s])
    return next(f"int{n}" for n in (8, 16, 32, 64) if n >= need)


def test_expected_promotion_spot_checks():
    # The docstring's own examples, so that the expectation function itself is pinned.
    assert expected_promotion("int32", "float16") == "float16"
    assert expected_promotion("uint8", "int8") == "int16"
    assert expected_promotion("float16", "bfloat16") == "float32"
    assert expected_promotion("bool", "int8") == "int8"
    assert expected_promotion("int64", "bfloat16") == "bfloat16"


@pytest.mark.parametrize("op", ["add", "multiply"])
@pytest.mark.parametrize("b", DTYPES)
@pytest.mark.parametrize("a", DTYPES)
def test_promotion_table(op, a, b):
    x = np.array([0, 1, 2, 1]).astype(_np_dtype(a))
    y = np.array([1, 1, 0, 2]).astype(_np_dtype(b))
    want_dtype = expected_promotion(a, b)
    got = getattr(fx, op)(fx.asarray(x), fx.asarray(y))
    assert str(got.dtype) == want_dtype, f"{op}({a}, {b}) gives {got.dtype}, expected {want_dtype}"
    assert got.numpy().dtype == _np_dtype(want_dtype)
    d = _np_dtype(want_dtype)
    want = getattr(np, op)(x.astype(d), y.astype(d))
    np.testing.assert_array_equal(got.numpy().astype(np.float64), want.astype(np.float64))
    assert str(getattr(fx, op)(fx.asarray(y), fx.asarray(x)).dtype) == want_dtype  # symmetric


WEAK = [
    # (tensor dtype, Python scalar, expected): the scalar takes the tensor's dtype when it
    # is of the same kind or lower; a float meets an integer/bool tensor as float32, an
    # int meets a bool tensor as int64.
    ("float16", 2.0, "float16"),
    ("bfloat16", 2.0, "bfloat16"),
    ("float16", 3, "float16"),
    ("float32", 1, "float32"),
    ("float64", 1.5, "float64"),
    ("float32", True, "float32"),
    ("int8", 1, "int8"),
    ("uint8", 1, "uint8"),
    ("int16", 2, "int16"),
    ("int32", True, "int32"),
    ("int32", 1.5, "float32"),
    ("int64", 2.5, "float32"),
    ("uint8", 0.5, "float32"),
    ("bool", 1, "int64"),
    ("bool", 1.5, "float32"),
    ("bool", True, "bool"),
]


@pytest.mark.parametrize(
    "scalar_first", [False, True], ids=["tensor_op_scalar", "scalar_op_tensor"]
)
@pytest.mark.parametrize("op", ["add", "multiply"])
@pytest.mark.parametrize("dtype, scalar, want", WEAK, ids=[f"{d}-{s!r}" for d, s, _ in WEAK])
def test_weak_python_scalars(dtype, scalar, want, op, scalar_first):
    x = np.array([0, 1, 2]).astype(_np_dtype(dtype))
    t = fx.asarray(x)
    args = (scalar, t) if scalar_first else (t, scalar)
    for got in (
        getattr(fx, op)(*args),
        {"add": lambda p, q: p + q, "multiply": lambda p, q: p * q}[op](*args),
    ):
        assert str(got.dtype) == want, (
            f"{op}{tuple(type(a).__name__ for a in args)}: {got.dtype}, expected {want}"
        )
        d = _np_dtype(want)
        expected = getattr(np, op)(x.astype(d), np.array(scalar).astype(d))
        np.testing.assert_array_equal(got.numpy().astype(np.float64), expected.astype(np.float64))


# ----------------------------------------------------------------------------- meta-test

# Other public names for ops that have a case under their main name (checked identical).
ALIASES = {
    "cast": "astype",
    "cat": "concatenate",
    "clamp": "clip",
    "mod": "remainder",
    "permute": "transpose",
    "pow": "power",
    "true_divide": "divide",
    "unsqueeze": "expand_dims",
    "arccos": "acos",
    "arccosh": "acosh",
    "arcsin": "asin",
    "arcsinh": "asinh",
    "arctan": "atan",
    "arctan2": "atan2",
    "arctanh": "atanh",
    "bitwise_invert": "invert",
}
# Modules whose public functions are not ops on tensors.
NOT_OP_MODULES = (
    "fluxion.transforms",  # grad, vmap, ...: tested by their own suites
    "fluxion.distributed",  # pmap: a transform, tested by tests/distributed
    "fluxion.core.pytree",  # tree utilities
    "fluxion.core.trace",  # grad-mode context managers, debug_nans
    "fluxion.ops.random",  # random draws
    "fluxion.ops.creation",  # tensors from data or shapes (tril/triu have cases anyway)
    "fluxion.transforms.control",  # cond/while_loop/scan take functions: higher-order, like transforms
    "fluxion.serialization",  # save/load: files, not tensor ops
    "fluxion.backends",  # thread counts: settings, not tensor ops
    "fluxion.distributed",  # pmap: a transform over processes (tests/distributed)
    "fluxion.ops.inspection",  # dtypes and devices (finfo, can_cast...): tests/test_array_api.py
    "fluxion.ops.amp",  # autocast and its settings: tests/test_autocast.py
    "fluxion.placement",  # device_put/device_get and device counts: tests/jax_face
)
DATA_DEPENDENT = "data-dependent output shape: eager only (as NumPy)"
CONCRETE = "computed by NumPy from concrete values: eager only"
EXCLUDED = {
    "devices": "lists devices; no tensor in or out",
    "set_default_dtype": "a setting, no tensor in or out",
    "get_default_dtype": "a setting, no tensor in or out",
    "set_float32_matmul_precision": "a setting, no tensor in or out",
    "broadcast_shapes": "shapes in, a shape out; tested in tests/test_array_api.py",
    "nonzero": DATA_DEPENDENT + ": tests/test_torch_face.py, tests/test_array_api.py",
    "argwhere": DATA_DEPENDENT + ": tests/test_torch_face.py",
    "bincount": DATA_DEPENDENT + ": tests/test_torch_face.py",
    "isin": CONCRETE + ": tests/test_array_api.py",
    "searchsorted": CONCRETE + ": tests/test_array_api.py",
    "unique_all": DATA_DEPENDENT + ": tests/test_array_api.py",
    "unique_counts": DATA_DEPENDENT + ": tests/test_array_api.py",
    "unique_inverse": DATA_DEPENDENT + ": tests/test_array_api.py",
    "unique_values": DATA_DEPENDENT + ": tests/test_array_api.py",
}


def _public_ops() -> list[str]:
    names = []
    for name in dir(fx):
        obj = getattr(fx, name)
        if name.startswith("_") or inspect.ismodule(obj) or inspect.isclass(obj):
            continue
        if not callable(obj) or name in EXCLUDED:
            continue
        if getattr(obj, "__module__", "").startswith(NOT_OP_MODULES):
            continue
        names.append(name)
    # fx.linalg's own functions, as linalg_<name> (those that are fx's, such as matmul,
    # have their case under that name)
    names += [
        f"linalg_{n}"
        for n in fx.linalg.__all__
        if getattr(fx.linalg, n) is not getattr(fx, n, None)
    ]
    return names


def _op_of(case_name: str) -> str | None:
    """The public op a case name refers to: the longest prefix ``a_b_c`` that fx (or
    fx.linalg, for ``linalg_...``; fx.fft, for ``fft_...``) has."""
    parts = case_name.split("_")
    for k in range(len(parts), 0, -1):
        prefix = "_".join(parts[:k])
        if callable(getattr(fx, prefix, None)):
            return prefix
        if prefix.startswith("linalg_") and callable(getattr(fx.linalg, prefix[7:], None)):
            return prefix
        if prefix.startswith("fft_") and callable(getattr(fx.fft, prefix[4:], None)):
            return prefix
    return None


def test_every_case_names_a_public_op():
    unknown = [c.name for c in OPS if _op_of(c.name) is None]
    assert not unknown, f"cases that name no public fluxion op: {unknown}"
    names = [c.name for c in OPS]
    assert len(names) == len(set(names)), "case names must be unique (they seed the rng)"


def test_every_public_op_has_a_case():
    covered = {_op_of(c.name) for c in OPS}
    for alias, target in ALIASES.items():
        assert getattr(fx, alias) is getattr(fx, target), f"fx.{alias} is not fx.{target}"
        if target in covered:
            covered.add(alias)
    missing = sorted(set(_public_ops()) - covered)
    assert not missing, f"public ops without an OpCase in tests/op_table.py: {missing}"


def test_exclusions_are_still_public():
    # An exclusion or alias for a name that has gone is stale: remove it.
    stale = [n for n in list(EXCLUDED) + list(ALIASES) if not hasattr(fx, n)]
    assert not stale, stale
