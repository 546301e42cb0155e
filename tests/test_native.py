"""The native kernels of fused groups (compiler/native/) against NumPy: every primitive
with a C rule in every dtype it takes, exactly or (exp, log...) within a few ulps; loop
layouts and views against eager; the disk cache; and the fallback to NumPy."""

import functools
import re
import sysconfig
import warnings
import weakref

import numpy as np
import pytest

import fluxion as fx
from fluxion.compiler import native
from fluxion.compiler.fusion import FUSED
from fluxion.compiler.native import emit, rewrites, toolchain
from fluxion.core.ir import Eqn, Graph, Var
from fluxion.core.primitive import PRIMITIVES, ShapedArray
from fluxion.errors import FluxionError

# glibc's vector exp, log... and NumPy's own are each within a few ulps of the true value
TRANSCENDENTAL = {"exp", "log", "log1p", "expm1", "sin", "cos", "tanh"}
DTYPES = [np.dtype(d) for d in emit.C_TYPES]
FLOAT_VALUES = [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 1.5, 2.5, -2.5, 3.7, -1e30, 1e-40, 0.3]
PARAMS = {"convert": [{"dtype": d} for d in DTYPES], "broadcast_to": [{"shape": (40,)}]}


def _values(dtype, n, rng):
    if dtype.kind == "b":
        return rng.integers(0, 2, n).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        edges = [info.min, info.max, 0, 1, -1 if info.min < 0 else 2]
        return np.concatenate(
            [edges, rng.integers(info.min, info.max, n - 5, endpoint=True)]
        ).astype(dtype)
    x = np.concatenate([FLOAT_VALUES, rng.normal(size=n - len(FLOAT_VALUES)) * 4])
    return x.astype(dtype)


def _cases():
    """(primitive, dtype, params) for each primitive with a C rule and dtype it accepts."""
    cases = []
    for prim in PRIMITIVES.values():
        if prim.c_expr is None:
            continue
        arity = 1 + max(int(k) for k in re.findall(r"\{(\d)\}", prim.c_expr))
        for dtype in DTYPES:
            for params in PARAMS.get(prim.name, [{}]):
                avals = [ShapedArray((40,), dtype)] * arity
                if prim.name == "select":
                    avals[0] = ShapedArray((40,), np.dtype(bool))
                try:
                    out = prim.abstract(*avals, **params)
                except FluxionError:
                    continue
                cases.append((prim, avals, out, params))
    return cases


CASES = _cases()


def _group(prim, avals, out, params):
    invars = [Var(a) for a in avals]
    outvar = Var(out)
    return Graph(invars, [Eqn(prim, invars, params, [outvar])], [outvar])


def _compile(groups):
    """Build ``groups`` natively, the way jit does: one graph holding each as a fused eqn."""
    eqns = [Eqn(FUSED, g.invars, {"graph": g}, g.outvars) for g in groups]
    native.native_kernels(Graph([v for g in groups for v in g.invars], eqns, []))
    assert all("static void" in g.compiled.source for g in groups), "a group stayed on NumPy"


@pytest.fixture(scope="module")
def single_op_groups():
    groups = [_group(*case) for case in CASES]
    _compile(groups)  # one compiler run for every case
    return groups


def test_every_c_rule_is_covered():
    covered = {prim.name for prim, *_ in CASES}
    assert covered == {p.name for p in PRIMITIVES.values() if p.c_expr is not None}
    assert {"add", "erf", "select", "convert", "max", "invert"} <= covered


@pytest.mark.parametrize(
    "k", range(len(CASES)), ids=[f"{c[0].name}-{c[1][-1].dtype}-{c[3]}" for c in CASES]
)
def test_each_op_matches_numpy(single_op_groups, k):
    prim, avals, out, params = CASES[k]
    rng = np.random.default_rng(k)
    arrays = [_values(np.dtype(a.dtype), 40, rng) for a in avals]
    if prim.name == "convert" and out.dtype.kind in "iu" and avals[0].dtype.kind in "fb":
        # NumPy's and C's casts agree where the value fits; outside it, both are undefined
        fits = np.isfinite(arrays[0]) & (abs(arrays[0]) < 100)
        if out.dtype.kind == "u":
            fits &= arrays[0] >= 0
        arrays[0] = np.where(fits, arrays[0], 7)
        arrays[0] = arrays[0].astype(avals[0].dtype)
    with np.errstate(all="ignore"):
        want = np.asarray(prim.impl(np, *arrays, **params), dtype=out.dtype)
        (got,) = single_op_groups[k].compiled(*arrays)
    assert got.shape == want.shape and got.dtype == want.dtype
    if prim.name in TRANSCENDENTAL:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        finite = np.isfinite(want)
        ulps = np.abs(got[finite].astype(np.float64) - want[finite]) / np.spacing(abs(want[finite]))
        assert ulps.max() <= 4
        np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)])
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "x_shape, b_shape",
    [
        ((150, 8, 32), (32,)),  # a bias: two loops, the bias's stride 0 along the first
        ((4, 1, 5), (1, 3, 1)),  # both broadcast, along different axes
        ((6, 7), ()),  # a 0-d array input
        ((1, 1), (1,)),  # nothing but length-1 axes: one element
        ((2, 3, 4, 5), (3, 1, 5)),
    ],
)
def test_loop_layouts_match_eager(x_shape, b_shape):
    def f(x, b):
        y = fx.exp(x - b) * 0.5 + b
        return fx.where(y > 1.0, y, -y), fx.tanh(y)

    rng = np.random.default_rng(0)
    x = fx.tensor(rng.normal(size=x_shape).astype(np.float32))
    b = fx.tensor(rng.normal(size=b_shape).astype(np.float32))
    compiled = fx.jit(f)
    for got, want in zip(compiled(x, b), f(x, b)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    fused = [e for e in next(iter(compiled.cache.values())).optimized.eqns if e.prim is FUSED]
    assert fused and all("static void" in e.params["graph"].compiled.source for e in fused)


def test_views_as_inputs_match_eager():
    def f(x):
        t = fx.transpose(x, (1, 0))  # a transposed view into the group
        return fx.sqrt(t * t + 1.0) - x[::2, ::2].sum() * t

    x = fx.tensor(np.random.default_rng(1).normal(size=(64, 64)).astype(np.float32))
    np.testing.assert_allclose(fx.jit(f)(x).numpy(), f(x).numpy(), rtol=1e-6, atol=1e-6)


def test_erf_matches_the_eager_fit_bit_for_bit(single_op_groups):
    x = np.linspace(-6, 6, 40).astype(np.float32)
    k = next(k for k, c in enumerate(CASES) if c[0].name == "erf" and c[1][0].dtype == np.float32)
    (got,) = single_op_groups[k].compiled(x)
    assert got.tobytes() == fx.erf(fx.tensor(x)).numpy().tobytes()


def test_a_kernel_checks_its_arguments(single_op_groups):
    k = next(k for k, c in enumerate(CASES) if c[0].name == "add" and c[1][0].dtype == np.float32)
    caller = single_op_groups[k].compiled.__globals__
    kernel = functools.partial(caller["call"], caller["kernel"], 1)  # on one thread
    x, out = np.ones(40, np.float32), np.empty(40, np.float32)
    with pytest.raises(ValueError, match="array 1 has 80 bytes, expected 160"):
        kernel(x, np.ones(20, np.float32), out)
    with pytest.raises(TypeError, match="takes 3 arrays, got 2"):
        kernel(x, out)
    with pytest.raises(TypeError, match="kernel is an fx_kernel's bytes"):
        caller["call"](b"not a kernel", 1, x, x, out)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        caller["call"](caller["kernel"], 0, x, x, out)
    with pytest.raises(ValueError):  # read-only output
        kernel(x, x, np.broadcast_to(out, (40,)))


def test_built_kernels_are_kept_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("FLUXION_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(toolchain, "_LOADED", weakref.WeakValueDictionary())
    case = next(c for c in CASES if c[0].name == "mul" and c[1][0].dtype == np.float64)
    _compile([_group(*case)])
    (entry,) = toolchain.cache_entries()  # the library, checked as it is before loading
    assert entry.problem is None, entry

    def no_compiler(*args):
        raise AssertionError("the compiler ran again for a kernel already built")

    monkeypatch.setattr(toolchain, "_compile", no_compiler)
    monkeypatch.setattr(toolchain, "_LOADED", weakref.WeakValueDictionary())  # not in memory
    group = _group(*case)
    _compile([group])
    np.testing.assert_array_equal(
        group.compiled(np.arange(40.0), np.arange(40.0))[0], np.arange(40.0) ** 2
    )


def test_call_is_built_into_the_cache_where_pip_did_not_build_it(tmp_path, monkeypatch):
    def f(x):
        return fx.exp(x) * 2.0 + 1.0

    monkeypatch.setenv("FLUXION_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(toolchain, "_installed_call", lambda: None)
    monkeypatch.setattr(toolchain, "_CALL", {})
    x = fx.tensor(np.linspace(-1, 1, 5000).astype(np.float32))
    compiled = fx.jit(f)
    np.testing.assert_allclose(compiled(x).numpy(), f(x).numpy(), rtol=1e-6)
    (entry,) = compiled.cache.values()
    (group,) = [e.params["graph"] for e in entry.optimized.eqns if e.prim is FUSED]
    assert "static void" in group.compiled.source  # a native kernel ran
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert [e.problem for e in toolchain.cache_entries() if e.name.endswith(suffix)] == [None]


def test_without_a_working_compiler_groups_run_on_numpy(tmp_path, monkeypatch):
    def f(x):
        return fx.exp(x) * 2.0 + 1.0

    x = fx.tensor(np.linspace(-1, 1, 50).astype(np.float32))
    monkeypatch.setenv("FLUXION_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    toolchain._compiler.cache_clear()
    toolchain._machine.cache_clear()
    try:
        compiled = fx.jit(f)
        with pytest.warns(UserWarning, match="the C compiler failed"):
            got = compiled(x)
        np.testing.assert_allclose(got.numpy(), f(x).numpy(), rtol=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # one warning: the compiler is not tried again
            np.testing.assert_allclose(fx.jit(f)(x * 2).numpy(), f(x * 2).numpy(), rtol=1e-6)
        monkeypatch.setenv("FLUXION_NATIVE_KERNELS", "0")
        toolchain._compiler.cache_clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # switched off on purpose: no warning
            np.testing.assert_allclose(fx.jit(f)(x).numpy(), f(x).numpy(), rtol=1e-6)
    finally:
        toolchain._compiler.cache_clear()
        toolchain._machine.cache_clear()
        toolchain._FAILED.clear()


@pytest.mark.parametrize("transposed", [True, False])
@pytest.mark.parametrize(
    "a_shape, b_shape, dtype",
    [
        ((150, 4, 8, 8), (150, 4, 8, 8), np.float32),  # attention's per-head scores
        ((2, 3, 5, 7), (2, 3, 7, 4), np.float64),
        ((6, 1, 8), (6, 8, 2), np.float32),
    ],
)
def test_stacks_of_small_matmuls_match_numpy(a_shape, b_shape, dtype, transposed):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=a_shape).astype(dtype), rng.normal(size=b_shape).astype(dtype)
    if transposed:  # b given as its transpose: the kernel reads it in place
        arg = np.ascontiguousarray(np.swapaxes(b, -1, -2))
        compiled = fx.jit(lambda a, bt: a @ fx.transpose(bt, (*range(bt.ndim - 2), -1, -2)))
    else:
        arg, compiled = b, fx.jit(lambda a, b: a @ b)
    got = compiled(fx.tensor(a), fx.tensor(arg)).numpy()
    tol = 1e-5 if dtype == np.float32 else 1e-12  # sums of up to 8 products, another order
    np.testing.assert_allclose(got, a @ b, rtol=tol, atol=tol)
    (entry,) = compiled.cache.values()
    (group,) = entry.optimized.eqns  # the transpose went into the matmul's kernel
    assert group.prim is FUSED and "static void" in group.params["graph"].compiled.source


@pytest.mark.parametrize(
    "a_shape, b_shape", [((64, 64), (64, 64)), ((4, 16, 8), (4, 8, 8)), ((4, 8, 8), (1, 8, 8))]
)
def test_other_matmuls_stay_on_blas(a_shape, b_shape):
    a, b = ShapedArray(a_shape, np.dtype(np.float32)), ShapedArray(b_shape, np.dtype(np.float32))
    assert not emit.small_matmul(a, b)


def _attention(qkv):
    """Multi-head attention on a (batch, seq, 3 * 4 heads * 8) projection, heads merged back:
    slices, reshapes and transposes on the way in and out of small matmuls."""
    b, s, _ = qkv.shape
    q, k, v = (
        fx.transpose(fx.reshape(qkv[:, :, 32 * i : 32 * (i + 1)], (b, s, 4, 8)), (0, 2, 1, 3))
        for i in range(3)
    )
    weights = fx.softmax((q * 0.35) @ fx.transpose(k, (0, 1, 3, 2)), axis=-1)
    return fx.reshape(fx.transpose(weights @ v, (0, 2, 1, 3)), (b, s, 32))


def test_kernels_read_and_write_attention_heads_through_views():
    # 20 sequences: q * 0.35 is large enough (5120 elements) for a kernel of its own
    qkv = fx.tensor(np.random.default_rng(6).normal(size=(20, 8, 96)).astype(np.float32))
    for f in [_attention, fx.grad(lambda x: fx.tanh(_attention(x)).sum())]:
        compiled = fx.jit(f)
        np.testing.assert_allclose(compiled(qkv).numpy(), f(qkv).numpy(), rtol=2e-5, atol=1e-6)
        (entry,) = compiled.cache.values()
        names = [e.prim.name for e in entry.optimized.eqns]
        assert "transpose" not in names and "slice" not in names, names
        kernels = [e.params["graph"] for e in entry.optimized.eqns if e.prim is FUSED]
        assert sum("matmul" in [e.prim.name for e in g.eqns] for g in kernels) in (2, 6)
        assert all("static void" in g.compiled.source for g in kernels)


def test_a_view_that_would_copy_starts_the_chain():
    def f(x):  # reshaping a transposed array copies: the kernel is given the transposed array
        y = fx.reshape(fx.transpose(x, (1, 0, 2)), (6, 20))[1:5]
        return fx.exp(y) * 2.0

    x = fx.tensor(np.random.default_rng(7).normal(size=(4, 6, 5)).astype(np.float32))
    compiled = fx.jit(f)
    np.testing.assert_allclose(compiled(x).numpy(), f(x).numpy(), rtol=1e-6)
    (entry,) = compiled.cache.values()
    transpose, group = entry.optimized.eqns
    assert transpose.prim.name == "transpose" and group.inputs == transpose.outputs
    views = [e.prim.name for e in group.params["graph"].eqns][:2]
    assert views == ["reshape", "slice"] and "static void" in group.params["graph"].compiled.source


@pytest.mark.parametrize("shape, native_group", [((150, 8, 96), True), ((10,), False)])
def test_a_large_single_op_gets_a_kernel_of_its_own(shape, native_group):
    x = fx.tensor(np.random.default_rng(3).normal(size=shape).astype(np.float32))
    b = fx.tensor(np.arange(shape[-1], dtype=np.float32))
    compiled = fx.jit(lambda x, b: x + b)
    np.testing.assert_array_equal(compiled(x, b).numpy(), (x + b).numpy())
    (entry,) = compiled.cache.values()
    assert [e.prim.name for e in entry.optimized.eqns] == ["fused" if native_group else "add"]


@pytest.mark.parametrize(
    "shape, axes, dtype",
    [
        ((150, 8, 32), (2,), np.float32),  # a row sum (softmax's): in a register, vectorized
        ((150, 8, 32), (1, 2), np.float64),
        ((150, 8, 32), (0, 1), np.float32),  # a column sum (a bias gradient): into the output
        ((7, 5), (0, 1), np.float64),  # everything
        ((4, 6, 1), (2,), np.float32),  # a length-1 axis only: a copy
        ((4, 5, 6), (1,), np.float32),  # a middle axis: not taken into the group
    ],
)
def test_sums_in_a_group_match_numpy(shape, axes, dtype):
    def f(x, b):
        e = fx.exp(x - b)
        return e * 2.0, fx.sum(e, axis=axes)

    rng = np.random.default_rng(4)
    x, b = rng.normal(size=shape).astype(dtype), rng.normal(size=shape[-1:]).astype(dtype)
    compiled = fx.jit(f)
    got_e, got_sum = compiled(fx.tensor(x), fx.tensor(b))
    e = np.exp(x - b)
    tol = 1e-5 if dtype == np.float32 else 1e-12  # sums in another order than NumPy's
    np.testing.assert_allclose(got_e.numpy(), e * 2.0, rtol=tol)
    np.testing.assert_allclose(got_sum.numpy(), e.sum(axis=axes), rtol=tol)
    (entry,) = compiled.cache.values()
    (group,) = [e.params["graph"] for e in entry.optimized.eqns if e.prim is FUSED]
    summed = "reduce_sum" in [e.prim.name for e in group.eqns]
    assert summed == (axes != (1,))
    assert ("static void" in group.compiled.source) == (emit.kernel(group) is not None)


def test_a_group_summing_a_middle_axis_stays_on_numpy():
    x, e, s = (
        Var(ShapedArray(shape, np.dtype(np.float32))) for shape in [(4, 5, 6)] * 2 + [(4, 6)]
    )
    group = Graph(
        [x],
        [
            Eqn(PRIMITIVES["exp"], [x], {}, [e]),
            Eqn(PRIMITIVES["reduce_sum"], [e], {"axes": (1,)}, [s]),
        ],
        [e, s],
    )
    assert emit.supported(group) and emit.kernel(group) is None


def test_a_broadcast_enters_a_group_as_its_source():
    def f(x, m):
        return fx.exp(x) * fx.broadcast_to(m, x.shape)  # a view a kernel would have to copy

    rng = np.random.default_rng(5)
    x = fx.tensor(rng.normal(size=(32, 64, 128)).astype(np.float32))
    m = fx.tensor(rng.normal(size=(32, 64, 1)).astype(np.float32))
    compiled = fx.jit(f)
    np.testing.assert_allclose(compiled(x, m).numpy(), f(x, m).numpy(), rtol=1e-6)
    (entry,) = compiled.cache.values()
    ((group, inputs),) = [
        (e.params["graph"], e.inputs) for e in entry.optimized.eqns if e.prim is FUSED
    ]
    assert "broadcast_to" in [e.prim.name for e in group.eqns]
    assert [tuple(v.aval.shape) for v in inputs] == [(32, 64, 128), (32, 64, 1)]


def test_a_group_recomputes_what_it_would_read_back(monkeypatch):
    """The backward pass of an exact GELU reads its input and its gradient and recomputes
    the rest, rather than reading back the arrays the forward pass wrote for it."""

    def loss(x, b, w):
        h = x + b
        return fx.sum(fx.tanh((0.5 * h * (1.0 + fx.erf(h * 0.70710677))) @ w))

    rng = np.random.default_rng(8)
    args = [rng.normal(size=shape).astype(np.float32) for shape in [(64, 128), (128,), (128, 32)]]
    args = [fx.tensor(a) for a in args]
    want = fx.grad(loss, argnums=(0, 1))(*args)
    written, default = {}, rewrites.RECOMPUTED_OPS
    for ops in [default, 0]:  # 0: nothing recomputed
        monkeypatch.setattr(rewrites, "RECOMPUTED_OPS", ops)
        compiled = fx.jit(fx.grad(loss, argnums=(0, 1)))
        for got, w in zip(compiled(*args), want):
            np.testing.assert_allclose(got.numpy(), w.numpy(), rtol=2e-5, atol=1e-5)
        (entry,) = compiled.cache.values()
        groups = [e for e in entry.optimized.eqns if e.prim is FUSED]
        assert all("static void" in e.params["graph"].compiled.source for e in groups)
        erf_group = next(
            e for e in groups if "erf" in [x.prim.name for x in e.params["graph"].eqns]
        )
        written[ops] = len(erf_group.outputs)
    assert written == {default: 1, 0: 4}, written  # the activation alone, or with 3 more


# ----------------------------------------------------------------------------- wrong answers once


@pytest.fixture(params=["native", "numpy"])
def kernels(request, monkeypatch):
    """Each regression runs with native kernels and with the groups on NumPy."""
    if request.param == "numpy":
        monkeypatch.setenv("FLUXION_NATIVE_KERNELS", "0")
    toolchain._compiler.cache_clear()
    yield request.param
    toolchain._compiler.cache_clear()


def test_max_gradient_is_kept_where_its_input_is_recomputed(kernels):
    """max's gradient compares its input with the max; a kernel that recomputed the input
    (with another sin than the one the max was taken of) dropped the gradient."""
    import torch

    x, w = np.array([[0.6], [0.4]]), np.array([[0.3], [0.7]])

    def loss(x):
        s = fx.sin(x)
        return fx.sum(fx.silu(s) * fx.tensor(w)) + fx.sum(fx.max(s, axis=0))

    xt = torch.tensor(x, requires_grad=True)
    st = torch.sin(xt)
    (torch.sum(torch.nn.functional.silu(st) * torch.tensor(w)) + st.amax(0).sum()).backward()
    want = xt.grad.numpy()
    np.testing.assert_allclose(fx.grad(loss)(fx.tensor(x)).numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(fx.jit(fx.grad(loss))(fx.tensor(x)).numpy(), want, rtol=1e-12)


def test_a_value_compared_in_a_group_is_recomputed_only_exactly():
    """The rule of rewrites._recomputing: a value that reaches an op whose result jumps (here a
    comparison) is recomputed only from correctly rounded ops; other values still are."""
    from fluxion.compiler.fusion import _fused_eqn
    from fluxion.ops import primitives as P

    f64 = ShapedArray((64, 128), np.dtype(np.float64))
    for make, exact in [(P.mul_p, True), (P.sin_p, False)]:
        a, c, h, t = (Var(f64) for _ in range(4))
        m, g, out = Var(ShapedArray((64, 128), np.dtype(bool))), Var(f64), Var(f64)
        first = _fused_eqn([Eqn(make, [a, a] if exact else [a], {}, [h])], [h])
        smooth = Eqn(P.tanh_p, [h], {}, [t])  # h flows on smoothly: always recomputed
        second = _fused_eqn(
            [
                Eqn(P.eq_p, [h, c], {}, [m]),
                Eqn(P.convert_p, [m], {"dtype": np.dtype(np.float64)}, [g]),
                Eqn(P.mul_p, [g, a], {}, [out]),  # a is read anyway: h costs nothing
            ],
            [out],
        )
        graph = Graph([a, c], [first, second], [out])
        rewritten = rewrites.recompute_residuals(graph).eqns[-1]  # the first pruned if unread
        made = [e.prim.name for e in rewritten.params["graph"].eqns]
        assert (make.name in made) == exact, made
        reads_a = Eqn(P.mul_p, [t, a], {}, [out])
        graph = Graph([a], [first, _fused_eqn([smooth, reads_a], [out])], [out])
        (rewritten,) = rewrites.recompute_residuals(graph).eqns  # h no longer written
        assert make.name in [e.prim.name for e in rewritten.params["graph"].eqns]


def test_a_transposed_broadcast_written_by_a_group_keeps_its_order(kernels):
    import torch

    x = np.array([[[0.5], [-1.0], [2.0]]])

    def g(x):
        b = fx.broadcast_to(x, (2, 1, 3, 1))
        return fx.sum(b), fx.transpose(b, (2, 3, 1, 0))

    want = torch.tensor(x).broadcast_to((2, 1, 3, 1)).permute(2, 3, 1, 0).numpy()
    for f in (g, fx.jit(g)):
        total, t = f(fx.tensor(x))
        np.testing.assert_array_equal(t.numpy(), want)
        assert float(total) == 3.0


def test_size_zero_operands_compile(kernels):
    f = lambda x: fx.sum(fx.einsum("ab,cb->ac", x, x) * 2.0)
    for shape in [(2, 0), (0, 3), (0, 0)]:
        x = fx.zeros(shape)
        assert float(fx.jit(f)(x)) == float(f(x)) == 0.0
        np.testing.assert_array_equal(fx.jit(fx.grad(f))(x).numpy(), np.zeros(shape))


def test_a_sum_of_a_sum_in_one_group_compiles(kernels):
    """vmap makes sums over no axis; a sum of such a sum joined its group, whose loop has
    a sum only at the end (a KeyError). Found by the fuzzer."""

    def loss(x):
        v = fx.sum(fx.mean(fx.var(x), keepdims=True), keepdims=True)
        return fx.sum(fx.softmax(v, axis=-1) * 1.14)

    batch = fx.tensor(np.stack([np.zeros((2, 1)), np.array([[-0.39], [-0.41]])]))
    want = fx.vmap(fx.grad(loss))(batch).numpy()
    np.testing.assert_allclose(fx.jit(fx.vmap(fx.grad(loss)))(batch).numpy(), want, atol=1e-15)
    x = fx.tensor(np.arange(6.0).reshape(2, 3))
    nested = lambda x: fx.sum(fx.sum(x * 2.0, axis=1), axis=0)  # a group's sum, summed again
    np.testing.assert_allclose(float(fx.jit(nested)(x)), 30.0)


@pytest.mark.parametrize("rewrite", ["groups_of_one", "recompute_residuals", "read_through_views"])
def test_each_native_rewrite_is_type_checked(monkeypatch, rewrite):
    """A rewrite (rewrites.py) that breaks the graph (here: gives it another output, of
    another shape) is caught by the typecheck that follows it, never compiled."""
    from fluxion.core.ir import IRTypeError

    real = getattr(rewrites, rewrite)

    def broken(graph):
        graph = real(graph)
        return Graph(graph.invars, graph.eqns, [graph.eqns[0].inputs[0]] + graph.outvars[1:])

    monkeypatch.setattr(rewrites, rewrite, broken)
    x = fx.tensor(np.linspace(-1, 1, 5000).reshape(50, 100))
    with pytest.raises(IRTypeError, match="a rewrite changed the graph's outputs"):
        fx.jit(lambda x: fx.sum(fx.tanh(x) * 2.0, axis=1))(x)
