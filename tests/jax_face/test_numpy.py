"""fluxion.numpy against jax.numpy: the same calls, the same results (float64 both sides)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_testing import assert_same, x64  # noqa: F401  (x64: JAX in float64)

import fluxion as fx
import fluxion.numpy as fnp
from fluxion.errors import InvalidArgumentError

R = np.random.default_rng(0)
A = R.normal(size=(3, 4))
B = R.normal(size=(4, 5))
V = R.normal(size=(4,))
C3 = R.normal(size=(2, 3, 4))
POS = np.abs(R.normal(size=(3, 4))) + 0.1
I = np.array([2, 0, 3, 3])
NANS = np.array([[1.0, np.nan, 3.0], [np.inf, -np.inf, 2.0]])

# (id, function of (the numpy module, *arrays), the arrays); each runs with fluxion.numpy
# and with jax.numpy on the same arrays
CASES = [
    ("zeros_dtype", lambda m: m.zeros((2, 3), m.float32), ()),
    ("full", lambda m: m.full((2, 2), 3.5, m.float64), ()),
    ("ones_like_dtype", lambda m, a: m.ones_like(a, dtype=m.int64), (A,)),
    ("full_like", lambda m, a: m.full_like(a, 2.0), (A,)),
    ("arange_float", lambda m: m.arange(0.0, 1.0, 0.25, dtype=m.float32), ()),
    ("linspace", lambda m: m.linspace(0.0, 1.0, 5, dtype=m.float32), ()),
    ("linspace_open", lambda m: m.linspace(0.0, 1.0, 4, endpoint=False, dtype=m.float64), ()),
    ("eye", lambda m: m.eye(3, 4, k=1, dtype=m.float32), ()),
    ("identity", lambda m: m.identity(3, m.float64), ()),
    ("array_ndmin", lambda m: m.array([1.0, 2.0], dtype=m.float64, ndmin=3), ()),
    ("array_of_arrays", lambda m, v: m.array([v, 2 * v]), (V,)),
    ("asarray", lambda m, a: m.asarray(a, dtype=m.float32), (A,)),
    ("float32_call", lambda m: m.float32(1.5) + m.float32(2), ()),
    ("sum_axis", lambda m, a: m.sum(a, axis=0), (A,)),
    ("sum_keepdims", lambda m, a: m.sum(a, axis=(0, 1), keepdims=True), (C3,)),
    ("sum_dtype", lambda m, a: m.sum(a, 1, m.float32), (A,)),
    ("prod", lambda m, a: m.prod(a, axis=-1), (A,)),
    ("mean", lambda m, a: m.mean(a, axis=1, keepdims=True), (A,)),
    ("var_ddof", lambda m, a: m.var(a, axis=0, ddof=1), (A,)),
    ("std", lambda m, a: m.std(a), (A,)),
    ("std_ddof_keepdims", lambda m, a: m.std(a, axis=2, ddof=1, keepdims=True), (C3,)),
    ("max", lambda m, a: m.max(a, axis=1), (A,)),
    ("argmax", lambda m, a: m.argmax(a, axis=1), (A,)),
    ("argmax_keepdims", lambda m, a: m.argmax(a, axis=0, keepdims=True), (A,)),
    ("all_any", lambda m, a: (m.all(a > -3, axis=0), m.any(a > 1)), (A,)),
    ("ptp", lambda m, a: m.ptp(a, axis=1), (A,)),
    ("median", lambda m, a: m.median(a, axis=0), (A,)),
    ("average", lambda m, a, v: m.average(a, axis=1, weights=v), (A, POS[0])),
    ("average_returned", lambda m, a: m.average(a, axis=0, returned=True), (A,)),
    ("nansum_nanmean", lambda m, a: (m.nansum(a), m.nanmean(a, axis=1)), (NANS[:, [0, 2]],)),
    ("cumsum", lambda m, a: m.cumsum(a, axis=1), (A,)),
    ("cumprod", lambda m, a: m.cumprod(a, axis=0), (A,)),
    ("dot_2d", lambda m, a, b: m.dot(a, b), (A, B)),
    ("dot_nd", lambda m, a, b: m.dot(a, b), (C3, B)),
    ("matmul_batched", lambda m, a, b: m.matmul(a, b), (C3, B)),
    ("matmul_vector", lambda m, a, v: a @ v, (A, V)),
    ("vdot_inner_outer", lambda m, v: (m.vdot(v, v), m.inner(v, v), m.outer(v, v)), (V,)),
    ("tensordot", lambda m, a, b: m.tensordot(a, b, axes=([2], [0])), (C3, B)),
    ("einsum", lambda m, a, b: m.einsum("bij,jk->bik", a, b), (C3, B)),
    ("trace_diagonal", lambda m, a: (m.trace(a, 1), m.diagonal(a, -1)), (A,)),
    ("diagonal_axes", lambda m, a: m.diagonal(a, 0, 1, 2), (C3,)),
    ("diag", lambda m, v: (m.diag(v), m.diag(v, k=-1)), (V,)),
    ("reshape", lambda m, a: m.reshape(a, (2, -1)), (A,)),
    ("concatenate", lambda m, a: m.concatenate([a, a * 2], axis=1), (A,)),
    ("concatenate_flat", lambda m, a, v: m.concatenate([a, v], axis=None), (A, V)),
    ("stack", lambda m, a: m.stack([a, a + 1], axis=-1), (A,)),
    (
        "hstack_vstack",
        lambda m, v: (m.hstack([v, v]), m.vstack([v, v]), m.column_stack([v, v])),
        (V,),
    ),
    ("atleast", lambda m, v: (m.atleast_2d(v), m.atleast_3d(v)), (V,)),
    ("append", lambda m, a: m.append(a, a, axis=0), (A,)),
    ("split_points", lambda m, a: m.split(a, [1, 3], axis=1), (A,)),
    ("tile_repeat", lambda m, v: (m.tile(v, (2, 1)), m.repeat(v, 2)), (V,)),
    ("repeat_axis", lambda m, a: m.repeat(a, 2, axis=0), (A,)),
    (
        "flip_roll",
        lambda m, a: (m.flip(a, 1), m.fliplr(a), m.flipud(a), m.roll(a, 1, axis=0)),
        (A,),
    ),
    ("pad", lambda m, a: m.pad(a, ((1, 0), (2, 1)), constant_values=-1.0), (A,)),
    ("pad_edge", lambda m, a: m.pad(a, 1, mode="edge"), (A,)),
    ("where", lambda m, a: m.where(a > 0, a, -1.0), (A,)),
    ("where_indices", lambda m, a: m.where(a > 0), (A,)),
    ("nonzero_argwhere", lambda m, a: (m.nonzero(a > 0.5), m.argwhere(a > 0.5)), (A,)),
    ("take", lambda m, a, i: m.take(a, i, axis=1), (A, I)),
    ("take_flat", lambda m, a, i: m.take(a, i), (A, I)),
    (
        "take_clip_wrap",
        lambda m, a, i: (m.take(a, i + 3, mode="clip"), m.take(a, i - 7, axis=1, mode="wrap")),
        (A, I),
    ),
    ("take_along_axis", lambda m, a: m.take_along_axis(a, m.argsort(a, axis=1), axis=1), (A,)),
    ("select", lambda m, a: m.select([a > 1, a < -1], [a, -a], 0.5), (A,)),
    ("clip", lambda m, a: m.clip(a, -0.5, 0.5), (A,)),
    ("clip_one_side", lambda m, a: m.clip(a, max=0.1), (A,)),
    ("round", lambda m, a: (m.round(a), m.round(a, 2), m.around(a * 10, -1)), (A,)),
    ("sort", lambda m, a: (m.sort(a), m.sort(a, axis=0), m.sort(a, axis=None)), (A,)),
    ("argsort", lambda m, a: (m.argsort(a), m.argsort(a, axis=None)), (A,)),
    ("sort_descending", lambda m, a: m.sort(a, descending=True), (A,)),
    ("searchsorted", lambda m, v: m.searchsorted(m.sort(v), v, side="right"), (V,)),
    ("unique", lambda m, i: m.unique(i, return_counts=True, return_inverse=True), (I,)),
    ("isin_bincount", lambda m, i: (m.isin(i, m.array([0, 3])), m.bincount(i, minlength=6)), (I,)),
    (
        "elementwise_more",
        lambda m, p: (
            m.exp2(p),
            m.cbrt(-p),
            m.sinc(p),
            m.deg2rad(p),
            m.rad2deg(p),
        ),
        (POS,),
    ),
    ("heaviside", lambda m, a: m.heaviside(m.round(a), 0.5), (A,)),
    (
        "isclose",
        lambda m, a: (m.isclose(a, a + 1e-9), m.allclose(a, a * (1 + 1e-7)), m.array_equal(a, a)),
        (A,),
    ),
    ("nan_to_num", lambda m, n: (m.nan_to_num(n), m.nan_to_num(n, nan=-1.0, posinf=9.0)), (NANS,)),
    ("shape_ndim_size", lambda m, a: m.array([m.ndim(a), m.size(a), m.shape(a)[1]]), (A,)),
    ("constants", lambda m: m.array([m.pi, m.e, m.euler_gamma], dtype=m.float64), ()),
]


INDEX_INT32_IN_JAX = {"searchsorted"}  # JAX's indices are int32 there, fluxion's int64
# JAX's oracle runs under jax.jit (one compile per case, not one per op: the file stays
# fast) but for the cases whose output shape depends on the values
DATA_DEPENDENT = {"where_indices", "nonzero_argwhere", "unique", "isin_bincount"}


@pytest.mark.parametrize("name, fn, arrays", CASES, ids=[c[0] for c in CASES])
def test_matches_jax_numpy(name, fn, arrays):
    oracle = lambda *a: fn(jnp, *a)  # noqa: E731
    want = (oracle if name in DATA_DEPENDENT else jax.jit(oracle))(*map(jnp.asarray, arrays))
    got = fn(fnp, *[fx.asarray(a) for a in arrays])
    if name in INDEX_INT32_IN_JAX:
        assert want.dtype == jnp.int32 and got.dtype == fx.int64
        want = want.astype(jnp.int64)
    assert_same(got, want)


def test_dtypes_and_their_predicates():
    assert fnp.float32 == fx.float32 and fnp.zeros(2, fnp.bfloat16).dtype == fx.bfloat16
    assert fnp.dtype("float32") == jnp.dtype("float32")
    for dt in ("float32", "bfloat16", "int32", "uint8", "bool", "complex64"):
        for abstract in (
            "floating",
            "integer",
            "inexact",
            "number",
            "signedinteger",
            "complexfloating",
        ):
            got = fnp.issubdtype(getattr(fnp, dt), getattr(fnp, abstract))
            assert got == jnp.issubdtype(getattr(jnp, dt), getattr(jnp, abstract)), (dt, abstract)
    assert fnp.promote_types(fnp.int32, fnp.float32) == jnp.promote_types(jnp.int32, jnp.float32)
    assert fnp.finfo(fnp.float32).eps == jnp.finfo(jnp.float32).eps
    assert isinstance(fnp.ones(2), fnp.ndarray)


def test_linspace_retstep():
    got, step = fnp.linspace(0.0, 2.0, 5, retstep=True)
    want, want_step = jnp.linspace(0.0, 2.0, 5, retstep=True)
    assert_same(got, want.astype(np.float32))
    assert step == want_step


def test_unsupported_arguments_raise_instead_of_being_ignored():
    with pytest.raises(InvalidArgumentError, match="out="):
        fnp.sum(fnp.ones(3), out=fnp.zeros(()))
    with pytest.raises(InvalidArgumentError, match="where="):
        fnp.mean(fnp.ones(3), where=fnp.ones(3) > 0)
    with pytest.raises(InvalidArgumentError, match="x and y"):
        fnp.where(fnp.ones(3) > 0, 1.0)


# ----------------------------------------------------------------------------- .at[]

X = R.normal(size=(4, 3))
UPDATES = [  # (index, value): repeated positions, slices, negative and broadcast values
    ((1, 2), 5.0),
    ((np.array([0, 2, 0]),), R.normal(size=(3, 3))),
    ((slice(None), np.array([1, 1])), R.normal(size=(4, 2))),
    ((-1,), R.normal(size=(3,))),
    ((slice(1, 3), slice(None, None, 2)), R.normal(size=(1, 2))),
]


@pytest.mark.parametrize("mode", ["set", "add", "multiply", "min", "max", "get"])
def test_at_matches_jax(mode):
    for index, value in UPDATES:
        at_jax, at_fx = jnp.asarray(X).at[index], fx.asarray(X).at[index]
        if mode == "get":
            assert_same(at_fx.get(), at_jax.get())
        else:  # (a repeated position under set: the last write wins in both)
            assert_same(
                getattr(at_fx, mode)(fx.asarray(value)), getattr(at_jax, mode)(jnp.asarray(value))
            )


@pytest.mark.parametrize("mode", ["set", "add", "multiply", "min", "max"])
def test_at_gradients_match_jax(mode):
    # JAX differentiates multiply only at unique indices (the op table checks repeats)
    index = (np.array([2, 0, 1 if mode == "multiply" else 2]), slice(None))
    value = R.normal(size=(3, 3))

    def loss(m):
        def f(x, v):
            hint = (
                {"unique_indices": True} if mode == "multiply" else {}
            )  # JAX's hint, taken by both
            return m.sum(
                m.sin(getattr(x.at[index], mode)(v, **hint)) * m.arange(12.0).reshape(4, 3)
            )

        return f

    want = jax.grad(loss(jnp), argnums=(0, 1))(jnp.asarray(X), jnp.asarray(value))
    got = fx.grad(loss(fnp), argnums=(0, 1))(fx.asarray(X), fx.asarray(value))
    assert_same(got, want)


@pytest.mark.parametrize("mode", ["set", "add", "multiply", "min", "max"])
def test_at_with_traced_indices_under_jit_and_vmap(mode):
    rows, values = np.array([3, 1, 0]), R.normal(size=(3, 3))

    def f(m):
        return lambda x, i, v: getattr(x.at[i], mode)(v)

    want = jax.vmap(f(jnp), in_axes=(None, 0, 0))(
        jnp.asarray(X), jnp.asarray(rows), jnp.asarray(values)
    )
    loop = fx.stack(
        [f(fnp)(fx.asarray(X), fx.tensor(i), fx.asarray(v)) for i, v in zip(rows, values)]
    )
    batched = fx.vmap(f(fnp), in_axes=(None, 0, 0))(
        fx.asarray(X), fx.asarray(rows), fx.asarray(values)
    )
    jitted = fx.jit(fx.vmap(f(fnp), in_axes=(None, 0, 0)))(
        fx.asarray(X), fx.asarray(rows), fx.asarray(values)
    )
    assert_same(loop, want)
    assert_same(batched, loop)
    assert_same(jitted, loop)


def test_at_with_a_traced_index_array_accumulates_like_jax():
    rows, values = np.array([2, 0, 2, 2]), R.normal(size=(4, 3))
    for mode in ("add", "multiply", "min", "max"):
        want = jax.jit(lambda x, i, v: getattr(x.at[i], mode)(v))(
            jnp.asarray(X), jnp.asarray(rows), jnp.asarray(values)
        )
        got = fx.jit(lambda x, i, v: getattr(x.at[i], mode)(v))(
            fx.asarray(X), fx.asarray(rows), fx.asarray(values)
        )
        assert_same(got, want)


def test_at_takes_jax_hints_and_refuses_out_of_range_modes():
    x = fnp.arange(4.0)
    hinted = x.at[fnp.array([1, 2])].add(1.0, indices_are_sorted=True, unique_indices=True)
    assert hinted.numpy().tolist() == [0.0, 2.0, 3.0, 3.0]
    assert x.at[1].get(mode="promise_in_bounds").item() == 1.0
    with pytest.raises(InvalidArgumentError, match="mode='drop'"):
        x.at[5].set(0.0, mode="drop")


def test_at_is_out_of_place():
    x = fnp.zeros(3)
    y = x.at[1].set(2.0)
    assert x.numpy().tolist() == [0.0, 0.0, 0.0] and y.numpy().tolist() == [0.0, 2.0, 0.0]
    assert x.block_until_ready() is x
