"""fx.jit / fx.compile: tracing, the cache, statistics, miss explanations, effects.

Every check compares with an independent answer: the same function run eagerly, NumPy,
or a count kept by a side effect of the Python body (which runs only while tracing).
"""

from __future__ import annotations

import gc
import logging
import re
import warnings

import numpy as np
import pytest

import fluxion as fx
from fluxion.compiler.native import toolchain
from fluxion.errors import FluxionError, InvalidArgumentError, TracerError
from fluxion.transforms.jit import explain_key_change


def _np(x) -> np.ndarray:
    return x.numpy() if isinstance(x, fx.Tensor) else np.asarray(x)


def _counting(fn):
    """``fn`` plus a list that grows by one each time its Python body runs."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    wrapped.__name__ = fn.__name__
    return wrapped, calls


# ----------------------------------------------------------------------------- tracing once


def test_body_runs_once_per_signature():
    def f(x, y):
        return fx.sum(x * y + 1.0)

    body, calls = _counting(f)
    compiled = fx.jit(body)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=3).astype(np.float32), rng.normal(size=3).astype(np.float32)
        np.testing.assert_allclose(
            _np(compiled(fx.tensor(a), fx.tensor(b))), np.sum(a * b + 1), rtol=1e-6
        )
    assert len(calls) == 1
    compiled(fx.ones(4), fx.ones(4))  # new shape
    assert len(calls) == 2
    compiled(fx.ones(4, dtype="float64"), fx.ones(4))  # new dtype
    assert len(calls) == 3
    compiled(fx.ones(4), fx.ones(4))  # seen before
    compiled(fx.ones(3), fx.ones(3))
    assert len(calls) == 3
    assert (compiled.stats.misses, compiled.stats.hits) == (3, 6)


def test_compile_is_jit_and_decorator_forms():
    assert fx.compile is fx.jit

    @fx.compile
    def f(x):
        return x * 2

    @fx.jit(static_argnums=1)
    def g(x, n):
        return x * n

    np.testing.assert_array_equal(_np(f(fx.tensor([1.0, 2.0]))), [2.0, 4.0])
    np.testing.assert_array_equal(_np(g(fx.tensor([1.0, 2.0]), 3)), [3.0, 6.0])
    assert f.__name__ == "f" and g.__name__ == "g"


def test_pytree_arguments_and_outputs():
    def f(params, x, *, scale):
        h = x @ params["w"] + params["b"]
        return {"out": h * scale, "extra": [fx.sum(h), 7, None]}

    params = {"w": fx.tensor(np.arange(6.0).reshape(3, 2)), "b": fx.tensor([1.0, -1.0])}
    x, scale = fx.tensor(np.ones((4, 3))), fx.tensor(0.5)
    want = f(params, x, scale=scale)
    got = fx.jit(f)(params, x, scale=scale)
    assert fx.tree_structure(got) == fx.tree_structure(want)
    assert got["extra"][1] == 7 and got["extra"][2] is None
    np.testing.assert_array_equal(_np(got["out"]), _np(want["out"]))
    np.testing.assert_array_equal(_np(got["extra"][0]), _np(want["extra"][0]))


def test_python_scalars_and_numpy_arrays_are_dynamic_arguments():
    body, calls = _counting(lambda x, s: x * s)
    compiled = fx.jit(body)
    x = fx.tensor([1.0, 2.0])
    np.testing.assert_array_equal(_np(compiled(x, 2.0)), [2.0, 4.0])
    np.testing.assert_array_equal(_np(compiled(x, 3.0)), [3.0, 6.0])
    np.testing.assert_array_equal(_np(compiled(np.array([1.0, 1.0], np.float32), 5.0)), [5, 5])
    assert len(calls) == 1


def test_python_scalar_arguments_stay_weakly_typed():
    """As eagerly: a Python scalar takes the tensor's dtype (``x_i8 * 3`` stays int8)."""

    def f(x, s):
        return x * s

    for x, s in [(fx.tensor([1, 2], dtype="int8"), 3), (fx.tensor([1.0], dtype="float16"), 2.5)]:
        assert fx.jit(f)(x, s).dtype == f(x, s).dtype, (x.dtype, s)


def test_non_tensor_leaf_needs_static():
    with pytest.raises(InvalidArgumentError, match="static_argnums"):
        fx.jit(lambda x, mode: x)(fx.ones(2), "train")


# ----------------------------------------------------------------------------- static arguments


def test_static_argnums_and_argnames():
    body, calls = _counting(lambda x, n, *, axis=0: fx.sum(x**n, axis=axis))
    compiled = fx.jit(body, static_argnums=1, static_argnames="axis")
    x = fx.tensor(np.arange(6.0).reshape(2, 3))
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(_np(compiled(x, 2)), np.sum(a**2, axis=0))
    np.testing.assert_allclose(_np(compiled(x, 2)), np.sum(a**2, axis=0))
    assert len(calls) == 1
    np.testing.assert_allclose(_np(compiled(x, 3)), np.sum(a**3, axis=0))
    np.testing.assert_allclose(_np(compiled(x, 3, axis=1)), np.sum(a**3, axis=1))
    assert len(calls) == 3
    negative = fx.jit(lambda x, n: x * n, static_argnums=-1)
    np.testing.assert_array_equal(_np(negative(fx.tensor([1.0]), 4)), [4.0])


def test_static_argument_must_be_hashable():
    compiled = fx.jit(lambda x, shape: fx.reshape(x, shape), static_argnums=1)
    with pytest.raises(InvalidArgumentError, match="hashable") as info:
        compiled(fx.ones(4), [2, 2])
    assert isinstance(info.value, ValueError) and "[2, 2]" in str(info.value)
    assert compiled(fx.ones(4), (2, 2)).shape == (2, 2)
    with pytest.raises(InvalidArgumentError, match="hashable"):
        fx.jit(lambda x, *, opts: x, static_argnames="opts")(fx.ones(1), opts={"a": 1})


def test_static_argnums_out_of_range():
    with pytest.raises(InvalidArgumentError, match="static_argnums"):
        fx.jit(lambda x: x, static_argnums=3)(fx.ones(1))


def test_static_values_compare_in_full_with_their_types():
    class Key:
        """Hashes alike, compares by value: the cache must compare, not only hash."""

        def __init__(self, v):
            self.v = v

        def __hash__(self):
            return 0

        def __eq__(self, other):
            return isinstance(other, Key) and self.v == other.v

    compiled = fx.jit(lambda x, k: x * k.v, static_argnums=1)
    x = fx.tensor([1.0])
    assert _np(compiled(x, Key(2)))[0] == 2 and _np(compiled(x, Key(3)))[0] == 3
    assert compiled.stats.misses == 2
    assert _np(compiled(x, Key(2)))[0] == 2 and compiled.stats.hits == 1

    # 1 == True == 1.0 as dict keys, but a function may tell them apart
    typed = fx.jit(lambda x, flag: x * 2 if flag is True else x * 3, static_argnums=1)
    np.testing.assert_array_equal(_np(typed(x, 1)), [3.0])
    np.testing.assert_array_equal(_np(typed(x, True)), [2.0])
    ints = fx.tensor([1, 2], dtype="int32")
    scaled = fx.jit(lambda x, c: x * c, static_argnums=1)
    assert scaled(ints, 2).dtype == fx.int32
    assert scaled(ints, 2.0).dtype == fx.float32
    assert scaled(ints, (2,)[0]).dtype == fx.int32


def test_cache_key_compares_structure_shapes_and_dtypes():
    body, calls = _counting(lambda tree: sum(fx.sum(v) for v in fx.tree_leaves(tree)))
    compiled = fx.jit(body)
    a, b = fx.ones(2), fx.ones(2)
    for tree in [
        [a, b],
        (a, b),  # list vs tuple
        {"x": a, "y": b},
        {"x": a, "z": b},  # other keys
        [a, fx.ones(3)],  # other shape
        [a, fx.ones(2, dtype="float64")],  # other dtype
        [a, fx.ones((2, 1))],  # same size, other shape
        [a, [b]],  # nesting
    ]:
        compiled(tree)
    assert len(calls) == 8
    compiled([fx.zeros(2), fx.zeros(2)])  # same key as the first: values do not matter
    compiled({"x": fx.zeros(2), "y": fx.zeros(2)})
    assert len(calls) == 8 and compiled.stats.hits == 2


def test_kwargs_and_positional_are_different_structures():
    body, calls = _counting(lambda x, y=None: x + (0.0 if y is None else y))
    compiled = fx.jit(body)
    one = fx.ones(2)
    np.testing.assert_array_equal(_np(compiled(one, one)), [2.0, 2.0])
    np.testing.assert_array_equal(_np(compiled(one, y=one)), [2.0, 2.0])
    np.testing.assert_array_equal(_np(compiled(one)), [1.0, 1.0])
    assert len(calls) == 3


# ----------------------------------------------------------------------------- cache, stats


def test_lru_eviction_with_max_cache_size():
    body, calls = _counting(lambda x: x + 1)
    compiled = fx.jit(body, max_cache_size=2)
    a, b, c = fx.ones(1), fx.ones(2), fx.ones(3)
    compiled(a), compiled(b)
    compiled(a)  # a is now the most recently used
    compiled(c)  # evicts b, the least recently used
    assert len(calls) == 3 and len(compiled.cache) == 2
    compiled(a)
    assert len(calls) == 3  # a stayed
    compiled(b)
    assert len(calls) == 4  # b was evicted
    assert len(compiled.cache) == 2


def test_compiling_leaves_the_garbage_collector_as_it_was():
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            compiled = fx.jit(lambda x: x * 2.0 + 1.0)
            np.testing.assert_array_equal(_np(compiled(fx.ones(3))), np.full(3, 3.0))
            assert gc.isenabled() is enabled
            with pytest.raises(FluxionError):  # a failing trace restores it too
                fx.jit(lambda x: x if x.sum() > 0 else -x)(fx.ones(3))
            assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_stats_counts_and_repr():
    compiled = fx.jit(lambda x: x * 2)
    assert compiled.stats.hit_rate == 0.0
    x = fx.ones(3)
    for _ in range(60):
        compiled(x)
    stats = compiled.stats
    assert (stats.hits, stats.misses, stats.fallbacks) == (59, 1, 0)
    assert stats.hit_rate == pytest.approx(59 / 60)
    assert stats.compile_time_ms > 0
    assert repr(stats).startswith(
        "CompilationStats(hits=59, misses=1, fallbacks=0, hit_rate=98.3%, "
    ), repr(stats)
    assert re.fullmatch(
        r"CompilationStats\(hits=59, misses=1, fallbacks=0, hit_rate=98\.3%, "
        r"compile_time=\d+\.\dms\)",
        repr(stats),
    )


def test_clear_cache_retraces_and_keeps_stats():
    body, calls = _counting(lambda x: x - 1)
    compiled = fx.jit(body)
    compiled(fx.ones(2)), compiled(fx.ones(2))
    compiled.clear_cache()
    assert len(compiled.cache) == 0
    np.testing.assert_array_equal(_np(compiled(fx.ones(2))), [0.0, 0.0])
    assert len(calls) == 2
    assert (compiled.stats.hits, compiled.stats.misses) == (1, 2)


# ----------------------------------------------------------------------------- explanations


def _key_of(compiled, *args, **kwargs):
    before = set(compiled.cache)
    compiled(*args, **kwargs)
    (key,) = set(compiled.cache) - before
    return key


def test_explain_key_change_names_the_argument_and_the_avals():
    def f(x, y):
        return x + y

    compiled = fx.jit(f)
    k1 = _key_of(compiled, fx.ones(3), fx.ones(3))
    k2 = _key_of(compiled, fx.ones(3), fx.ones(3, dtype="float64"))
    k3 = _key_of(compiled, fx.ones((2, 3)), fx.ones(3, dtype="float64"))
    assert explain_key_change(None, k1) == "first call"
    why = explain_key_change(k1, k2, f)
    assert "argument y" in why and "f32[3]" in why and "f64[3]" in why and "argument x" not in why
    why = explain_key_change(k2, k3, f)
    assert "argument x" in why and "f32[3] to f32[2,3]" in why and "argument y" not in why
    without_names = explain_key_change(k2, k3)  # no function: positions only
    assert "positional 0" in without_names and "f32[2,3]" in without_names


def test_explain_key_change_for_structure_static_and_eviction():
    def f(x, n, *, opts=None):
        return fx.tree_map(lambda v: v * n, x)

    compiled = fx.jit(f, static_argnums=1, max_cache_size=1)
    k1 = _key_of(compiled, {"a": fx.ones(2)}, 2)
    k2 = _key_of(compiled, {"a": fx.ones(2)}, 3)
    k3 = _key_of(compiled, {"a": fx.ones(2), "b": fx.ones(2)}, 3)
    why = explain_key_change(k1, k2, f)
    assert "static" in why and "argument n" in why and "2 -> 3" in why
    assert "structure" in explain_key_change(k2, k3, f)
    assert "'b'" in explain_key_change(k2, k3, f)
    assert "evicted" in explain_key_change(k1, k1, f)


def test_log_compiles_says_why(monkeypatch, caplog):
    monkeypatch.setenv("FLUXION_LOG_COMPILES", "1")

    def loss(weights, batch):
        return fx.sum(weights * batch)

    compiled = fx.jit(loss)
    with caplog.at_level(logging.INFO, logger="fluxion.jit"):
        compiled(fx.ones(4), fx.ones(4))
        compiled(fx.ones(4), fx.ones(4))  # a hit: nothing logged
        compiled(fx.ones(4), fx.ones((8, 4)))
    messages = [r.getMessage() for r in caplog.records if r.name == "fluxion.jit"]
    assert len(messages) == 2, messages
    assert "loss" in messages[0] and "first call" in messages[0]
    assert "loss" in messages[1] and "argument batch" in messages[1]
    assert "f32[4]" in messages[1] and "f32[8,4]" in messages[1]


def test_no_log_without_the_variable(monkeypatch, caplog):
    monkeypatch.delenv("FLUXION_LOG_COMPILES", raising=False)
    compiled = fx.jit(lambda x: x)
    with caplog.at_level(logging.WARNING, logger="fluxion.jit"):
        compiled(fx.ones(1)), compiled(fx.ones(2))
    assert not [r for r in caplog.records if r.name == "fluxion.jit"]


def test_warning_after_repeated_retraces():
    compiled = fx.jit(lambda x: x * 2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none for the first few shapes
        for n in range(1, 9):
            compiled(fx.ones(n))
    with pytest.warns(UserWarning, match=r"traced 9 times") as record:
        compiled(fx.ones(9))
    assert "FLUXION_LOG_COMPILES" in str(record[0].message)
    assert record[0].filename == __file__  # points at the caller


# ----------------------------------------------------------------------------- closures


def test_captured_tensor_is_an_input_not_a_constant():
    w = fx.tensor([1.0, 2.0, 3.0])
    body, calls = _counting(lambda x: x * w)
    compiled = fx.jit(body)
    x = fx.tensor([1.0, 1.0, 1.0])
    np.testing.assert_array_equal(_np(compiled(x)), [1.0, 2.0, 3.0])
    w.data = fx.tensor([5.0, 6.0, 7.0])
    np.testing.assert_array_equal(_np(compiled(x)), [5.0, 6.0, 7.0])
    w[1] = 0.0
    np.testing.assert_array_equal(_np(compiled(x)), [5.0, 0.0, 7.0])
    assert len(calls) == 1 and compiled.stats.hits == 2
    np.testing.assert_array_equal(_np(w), [5.0, 0.0, 7.0])  # read, never written
    np.testing.assert_array_equal(_np(x), [1.0, 1.0, 1.0])
    graph = fx.make_graph(body, x)
    assert len(graph.invars) == 2  # x, then w


def test_captured_tensor_changing_shape_retraces():
    w = fx.ones(3)
    compiled = fx.jit(lambda x: x * w)
    assert compiled(fx.ones(3)).shape == (3,)
    w.data = fx.ones((2, 3)) * 2
    out = compiled(fx.ones(3))
    assert out.shape == (2, 3) and compiled.stats.misses == 2
    np.testing.assert_array_equal(_np(out), np.full((2, 3), 2.0))


def test_tensors_made_inside_are_constants():
    graph = fx.make_graph(lambda x: x + fx.tensor([1.0, 2.0]), fx.ones(2))
    assert len(graph.invars) == 1


# ----------------------------------------------------------------------------- randomness


def test_fresh_randomness_per_call_reproducible_from_the_seed():
    def noisy(x):
        return x + fx.randn(4)

    compiled = fx.jit(noisy)
    x = fx.zeros(4)
    fx.manual_seed(123)
    eager = [_np(noisy(x)) for _ in range(4)]
    fx.manual_seed(123)
    first = [_np(compiled(x)) for _ in range(4)]
    fx.manual_seed(123)
    second = [_np(compiled(x)) for _ in range(4)]
    assert compiled.stats.misses == 1
    for a, b in zip(first[:-1], first[1:]):
        assert not np.array_equal(a, b), "a compiled call repeated the previous numbers"
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    # the same draws: the bits are equal, and the normal transform's log and cos in the
    # native kernels are glibc's vector ones, within an ulp of NumPy's
    np.testing.assert_allclose(np.stack(first), np.stack(eager), rtol=3e-7, atol=3e-7)
    # the global generator advances as eagerly: an eager draw after compiled calls
    fx.manual_seed(7)
    compiled(x), compiled(x)
    after_compiled = _np(fx.randn(4))
    fx.manual_seed(7)
    noisy(x), noisy(x)
    np.testing.assert_array_equal(after_compiled, _np(fx.randn(4)))


def test_randomness_with_a_kept_key_is_not_changed_by_calls():
    fx.manual_seed(0)
    compiled = fx.jit(lambda x: x + fx.rand(2))
    from fluxion.ops.random import _GlobalKey

    kept = _GlobalKey.value
    before = _np(kept).copy()
    compiled(fx.zeros(2)), compiled(fx.zeros(2))
    np.testing.assert_array_equal(_np(kept), before)


# ----------------------------------------------------------------------------- tracer errors


def test_python_if_on_traced_value_raises_tracer_error():
    def branchy(x):
        if fx.sum(x) > 0:  # the line the error points to
            return x
        return -x

    line = branchy.__code__.co_firstlineno + 1
    with pytest.raises(TracerError) as info:
        fx.jit(branchy)(fx.ones(2))
    message = str(info.value)
    assert "branchy" in message
    assert f"{__file__}:{line}" in message
    assert "fx.cond" in message and "static_argnums" in message
    assert isinstance(info.value, TypeError) and isinstance(info.value, FluxionError)


@pytest.mark.parametrize(
    "use", [lambda x: x.item(), lambda x: float(fx.sum(x)), lambda x: x.numpy(), bool]
)
def test_concrete_value_needed_raises_tracer_error(use):
    def f(x):
        use(x[:1])
        return x

    with pytest.raises(TracerError, match="fx.cond"):
        fx.jit(f)(fx.ones(1))


def test_fallback_runs_eagerly_and_counts():
    def branchy(x):
        return x * 2 if fx.sum(x) > 0 else -x

    body, calls = _counting(branchy)
    compiled = fx.compile(body, fallback=True)
    np.testing.assert_array_equal(_np(compiled(fx.ones(2))), [2.0, 2.0])
    np.testing.assert_array_equal(_np(compiled(-fx.ones(2))), [1.0, 1.0])
    stats = compiled.stats
    assert (stats.hits, stats.misses, stats.fallbacks) == (0, 0, 2)
    assert "fallbacks=2" in repr(stats)
    # the attempt to trace ran the body once; each fallback runs it eagerly
    assert len(calls) == 3


def test_failed_trace_after_backward_leaves_no_traced_grad():
    w = fx.tensor([1.0, 2.0], requires_grad=True)

    def step(x):
        loss = fx.sum(x * w)
        loss.backward()
        return loss if loss > 0 else -loss  # fails to trace, after backward() ran

    compiled = fx.jit(step, fallback=True)
    np.testing.assert_array_equal(_np(compiled(fx.tensor([1.0, 1.0]))), 3.0)
    np.testing.assert_array_equal(_np(w.grad), [1.0, 1.0])  # from the eager fallback
    w.grad = None
    with pytest.raises(TracerError):
        fx.jit(step)(fx.tensor([1.0, 1.0]))
    assert w.grad is None


def test_static_argument_makes_python_control_flow_work():
    def f(x, positive):
        return x * 2 if positive else -x

    compiled = fx.jit(f, static_argnums=1)
    np.testing.assert_array_equal(_np(compiled(fx.ones(2), True)), [2.0, 2.0])
    np.testing.assert_array_equal(_np(compiled(fx.ones(2), False)), [-1.0, -1.0])


# ----------------------------------------------------------------------------- effects


def test_in_place_updates_are_replayed():
    state = fx.tensor([0.0, 0.0])

    def accumulate(v):
        state[0] = state[0] + v
        state.data = state * 2
        return state * 1

    compiled = fx.jit(accumulate)
    expected = np.zeros(2, np.float32)
    for v in [1.0, 2.0, 3.0]:
        expected[0] += v
        expected *= 2
        np.testing.assert_array_equal(_np(compiled(fx.tensor(v))), expected)
        np.testing.assert_array_equal(_np(state), expected)
    assert compiled.stats.misses == 1


def _regression_data():
    rng = np.random.default_rng(0)
    return (
        fx.tensor(rng.normal(size=(8, 3)).astype(np.float32)),
        fx.tensor(rng.normal(size=(8, 2)).astype(np.float32)),
    )


def _params(seed=1):
    rng = np.random.default_rng(seed)
    w = fx.tensor(rng.normal(size=(3, 2)).astype(np.float32), requires_grad=True)
    b = fx.tensor(np.zeros(2, np.float32), requires_grad=True)
    return w, b


def test_backward_inside_compiled_fills_grad_like_eager():
    x, y = _regression_data()

    def run(compile_it):
        w, b = _params()

        def loss_and_backward(x, y):
            loss = fx.mean((x @ w + b - y) ** 2)
            loss.backward()
            return loss

        f = fx.jit(loss_and_backward) if compile_it else loss_and_backward
        grads, losses = [], []
        losses.append(_np(f(x, y)))
        grads.append([_np(w.grad).copy(), _np(b.grad).copy()])
        losses.append(_np(f(x, y)))  # no zeroing: accumulates
        grads.append([_np(w.grad).copy(), _np(b.grad).copy()])
        w.grad = None
        b.grad = None
        losses.append(_np(f(x * 2, y)))
        grads.append([_np(w.grad).copy(), _np(b.grad).copy()])
        return losses, grads

    (eager_losses, eager_grads), (losses, grads) = run(False), run(True)
    np.testing.assert_array_equal(losses, eager_losses)
    for got, want in zip(grads, eager_grads):
        for g, e in zip(got, want):
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(eager_grads[1][0], 2 * eager_grads[0][0], rtol=1e-6)


def test_grad_returned_by_a_compiled_call_is_not_changed_by_the_next():
    w = fx.tensor([1.0, 2.0], requires_grad=True)

    def f(x):
        fx.sum(w * x).backward()

    compiled = fx.jit(f)
    compiled(fx.tensor([1.0, 1.0]))
    first = w.grad
    w.grad = None
    compiled(fx.tensor([5.0, 5.0]))
    np.testing.assert_array_equal(_np(first), [1.0, 1.0])
    np.testing.assert_array_equal(_np(w.grad), [5.0, 5.0])


def _train(step_kind: str, steps: int = 10):
    x, y = _regression_data()
    w, b = _params()
    lr = 0.1

    def loss_fn(x, y):
        return fx.mean((x @ w + b - y) ** 2)

    def sgd():
        with fx.no_grad():
            for p in (w, b):
                p.data = p - lr * p.grad

    def step(x, y):
        w.grad = None  # zero_grad inside the step
        b.grad = None
        loss = loss_fn(x, y)
        loss.backward()
        sgd()
        return loss

    compiled_step, compiled_sgd = fx.jit(step), fx.jit(sgd)
    losses = []
    for _ in range(steps):
        if step_kind == "eager":
            loss = step(x, y)
        elif step_kind == "compiled":
            loss = compiled_step(x, y)
        else:  # eager backward, compiled update
            w.grad = b.grad = None
            loss = loss_fn(x, y)
            loss.backward()
            compiled_sgd()
        losses.append(float(_np(loss)))
    return np.array(losses), _np(w).copy(), _np(b).copy()


@pytest.mark.parametrize("kind", ["compiled", "compiled_update"])
def test_sgd_step_inside_compiled_trains_like_eager(kind):
    eager_losses, eager_w, eager_b = _train("eager")
    losses, w, b = _train(kind)
    assert eager_losses[-1] < 0.6 * eager_losses[0]  # it does train
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-6)
    np.testing.assert_allclose(w, eager_w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b, eager_b, rtol=1e-6, atol=1e-7)


def test_compiled_backward_with_an_eager_optimizer():
    from fluxion.optim.stateful import SGD

    x, y = _regression_data()

    def run(compile_it):
        w, b = _params()
        opt = SGD([w, b], lr=0.1, momentum=0.9)

        def loss_and_backward(x, y):
            loss = fx.mean((x @ w + b - y) ** 2)
            loss.backward()
            return loss

        f = fx.jit(loss_and_backward) if compile_it else loss_and_backward
        losses = []
        for _ in range(10):
            opt.zero_grad()
            losses.append(float(_np(f(x, y))))
            opt.step()
        return losses, _np(w).copy()

    (eager_losses, eager_w), (losses, w) = run(False), run(True)
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-6)
    np.testing.assert_allclose(w, eager_w, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- transforms


def test_seed_001_program_jit_vmap_grad():
    def function(x):
        return fx.sum(x * 2 * x, axes=0)

    batched = fx.tensor(np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32))
    eager = fx.vmap(fx.grad(function))(batched)
    compiled = fx.jit(fx.vmap(fx.grad(function)))
    got = compiled(batched)
    assert got.shape == (3, 5) and got.dtype == fx.float32
    np.testing.assert_allclose(_np(got), _np(eager), rtol=1e-6)
    np.testing.assert_allclose(_np(got), 4 * _np(batched), rtol=1e-6)  # d/dx 2x^2
    loop = np.stack([_np(fx.grad(function)(batched[i])) for i in range(3)])
    np.testing.assert_allclose(_np(got), loop, rtol=1e-6)


def test_jit_composes_with_grad_and_vmap():
    def f(x, y):
        return fx.sum(fx.sin(x) * y)

    x, y = fx.tensor([0.1, 0.2, 0.3]), fx.tensor([1.0, 2.0, 3.0])
    want = fx.grad(f, argnums=(0, 1))(x, y)
    for got in [
        fx.jit(fx.grad(f, argnums=(0, 1)))(x, y),
        fx.grad(fx.jit(f), argnums=(0, 1))(x, y),
        fx.jit(fx.grad(fx.jit(f), argnums=(0, 1)))(x, y),
    ]:
        for g, w in zip(got, want):
            np.testing.assert_allclose(_np(g), _np(w), rtol=1e-6)
    np.testing.assert_allclose(_np(want[0]), np.cos([0.1, 0.2, 0.3]) * [1, 2, 3], rtol=1e-6)
    xs = fx.tensor(np.linspace(0, 1, 6).reshape(2, 3))
    vg = fx.vmap(fx.grad(f), in_axes=(0, None))
    np.testing.assert_allclose(_np(fx.jit(vg)(xs, y)), _np(vg(xs, y)), rtol=1e-6)
    np.testing.assert_allclose(
        _np(fx.vmap(fx.jit(fx.grad(f)), in_axes=(0, None))(xs, y)), _np(vg(xs, y)), rtol=1e-6
    )


def _sample(seed, *shape):
    return fx.tensor(np.random.default_rng(seed).normal(size=shape))


def test_grad_and_vmap_of_jit_compile_once_and_match_eager():
    def f(x, w):
        return fx.sum(fx.tanh(x @ w) * x[:, :1])

    x, w = _sample(0, 4, 3), _sample(1, 3, 2)
    compiled = fx.jit(f)
    grad_of_jit = fx.grad(compiled, argnums=(0, 1))
    first = grad_of_jit(x, w)
    misses = compiled.stats.misses
    assert misses == 2  # the forward graph and its pullback, each compiled
    x2, w2 = _sample(2, 4, 3), _sample(3, 3, 2)  # new values: the same code
    for got, want in zip(grad_of_jit(x2, w2), fx.grad(f, argnums=(0, 1))(x2, w2)):
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-12)
    for got, want in zip(first, fx.grad(f, argnums=(0, 1))(x, w)):
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-12)
    assert compiled.stats.misses == misses and compiled.stats.hits == 2

    batched = fx.jit(lambda x, w: fx.tanh(x @ w))
    xs = _sample(4, 5, 4, 3)
    got = fx.vmap(batched, in_axes=(0, None))(xs, w)
    loop = np.stack([_np(fx.tanh(xs[i] @ w)) for i in range(5)])
    np.testing.assert_allclose(_np(got), loop, rtol=1e-12)
    fx.vmap(batched, in_axes=(0, None))(_sample(5, 5, 4, 3), w)
    assert batched.stats.misses == 1


def test_jit_under_transforms_nests_and_closes_over_outer_values():
    def f(x):
        return fx.sum(fx.sin(x) ** 2)

    compiled = fx.jit(f)
    x = _sample(0, 3)
    np.testing.assert_allclose(
        _np(fx.hessian(compiled)(x)), _np(fx.hessian(f)(x)), rtol=1e-12, atol=1e-15
    )
    primal, tangent = fx.jvp(compiled, (x,), (fx.ones(3, dtype=fx.float64),))
    np.testing.assert_allclose(_np(tangent), np.sum(np.sin(2 * _np(x))), rtol=1e-12)
    np.testing.assert_allclose(_np(primal), _np(f(x)), rtol=1e-12)
    # an inner function closing over the outer transform's value: its gradient flows too
    outer = lambda x: fx.jit(lambda y: fx.sum(x * y * y))(x)  # noqa: E731
    np.testing.assert_allclose(_np(fx.grad(outer)(x)), 3 * _np(x) ** 2, rtol=1e-12)
    # a Python number keeps the dtype it would have eagerly
    scaled = fx.jit(lambda x, s: fx.sum(x * s))
    x32 = fx.tensor(np.ones(3, np.float32))
    g = fx.grad(scaled)(x32, 2.0)
    assert g.dtype == fx.float32
    np.testing.assert_allclose(_np(g), 2.0)


def test_jit_inside_jit_is_one_graph():
    inner = fx.jit(lambda x: fx.exp(x) * 2)
    body = lambda x: fx.sum(inner(x) + 1)  # noqa: E731
    x = _sample(0, 3)
    np.testing.assert_allclose(_np(fx.jit(body)(x)), np.sum(np.exp(_np(x)) * 2 + 1), rtol=1e-12)
    assert inner.stats.misses == 0  # inlined into the outer graph, compiled with it
    printed = str(fx.make_graph(body, x))
    assert "exp" in printed and "jit" not in printed


def test_jit_that_writes_state_runs_inline_under_transforms():
    model = fx.nn.BatchNorm1d(3)
    compiled = fx.jit(lambda m, x: fx.sum(m(x) ** 2))
    x = _sample(0, 4, 3)
    eager = fx.nn.BatchNorm1d(3)
    for _ in range(2):  # the second call finds it marked inline
        want = fx.grad(lambda x: fx.sum(eager(x) ** 2))(x)
        got = fx.grad(lambda x: compiled(model, x))(x)
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-12)
        np.testing.assert_allclose(_np(model.running_mean), _np(eager.running_mean), rtol=1e-12)
    assert compiled.stats.misses == 0


def test_jit_of_value_and_grad_training_step():
    x, y = _regression_data()

    def loss(params, x, y):
        return fx.mean((x @ params["w"] + params["b"] - y) ** 2)

    def step(params, x, y):
        value, grads = fx.value_and_grad(loss)(params, x, y)
        return fx.tree_map(lambda p, g: p - 0.1 * g, params, grads), value

    w, b = _params()
    params = {"w": w.detach(), "b": b.detach()}
    eager, compiled = params, params
    jitted = fx.jit(step)
    for _ in range(10):
        eager, eager_loss = step(eager, x, y)
        compiled, compiled_loss = jitted(compiled, x, y)
        np.testing.assert_allclose(_np(compiled_loss), _np(eager_loss), rtol=1e-6)
    np.testing.assert_allclose(_np(compiled["w"]), _np(eager["w"]), rtol=1e-6)
    assert jitted.stats.misses == 1 and jitted.stats.hits == 9


def test_nested_jit():
    inner = fx.jit(lambda x: x * 3)
    outer = fx.jit(lambda x: inner(x) + 1)
    np.testing.assert_array_equal(_np(outer(fx.tensor([1.0, 2.0]))), [4.0, 7.0])
    np.testing.assert_array_equal(_np(outer(fx.tensor([0.0, 0.0]))), [1.0, 1.0])


# ----------------------------------------------------------------------------- show_graph, xpr


def test_show_graph_prints_optimized_ir_and_code(capsys):
    def function(x):
        return fx.sum(x * 2 * x, axes=0)

    compiled = fx.jit(fx.vmap(fx.grad(function)), show_graph=True)
    compiled(fx.ones((3, 5)))
    out = capsys.readouterr().out
    assert "{ lambda (a:f32[3,5]:cpu(0)) ;" in out
    assert re.search(r"^def \w+\(in0\):$", out, re.M), out
    assert "return [" in out
    compiled(fx.ones((3, 5)))  # a hit prints nothing
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "native_kernels, loop",
    [
        ("1", "for (long i1 = 0; i1 < 1000; i1++) {"),  # C: rows, then the bias's axis
        ("0", "for s in range(0, 300, 65):"),  # NumPy: blocks of 65 rows of 1000 float32
    ],
)
def test_show_graph_prints_each_fused_group_kernel(capsys, monkeypatch, native_kernels, loop):
    monkeypatch.setenv("FLUXION_NATIVE_KERNELS", native_kernels)
    toolchain._compiler.cache_clear()
    try:
        compiled = fx.jit(lambda x, b: fx.tanh(x * 2.0 + b) * x, show_graph=True)
        x, b = fx.ones((300, 1000)), fx.ones(1000)
        got = compiled(x, b)
    finally:
        toolchain._compiler.cache_clear()
    out = capsys.readouterr().out
    assert "k0_fused(in0, in1)" in out and "--- k0_fused:" in out
    assert loop in out
    np.testing.assert_allclose(_np(got), _np(fx.tanh(x * 2.0 + b) * x), rtol=1e-6)


def test_xpr_matches_make_graph_and_does_not_compile():
    def f(x):
        return fx.exp(x) * 2.0

    body, calls = _counting(f)
    text = fx.xpr(body, fx.ones(3))
    assert text == repr(fx.make_graph(body, fx.ones(3)))
    assert text.startswith("{ lambda (a:f32[3]:cpu(0)) ;") and "exp a" in text
    assert len(calls) == 2


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda m: fx.optim.SGD(m, lr=0.1, momentum=0.9),
        lambda m: fx.optim.AdamW(m, lr=0.01),
        lambda m: fx.optim.Adam(m, lr=fx.optim.schedules.linear_warmup(0.01, 5)),
    ],
    ids=["sgd_momentum", "adamw", "adam_warmup_schedule"],
)
def test_stateful_optimizer_step_inside_jit_trains_like_eager(make_optimizer):
    """zero_grad, backward and optimizer.step() all inside one compiled step (seed 000)."""

    def train(compiled):
        fx.manual_seed(0)
        model = fx.nn.Sequential(fx.nn.Linear(4, 8), fx.nn.Tanh(), fx.nn.Linear(8, 2))
        optimizer = make_optimizer(model)
        x, y = fx.randn(16, 4), fx.randn(16, 2)

        def step(x, y):
            optimizer.zero_grad()
            loss = fx.mean((model(x) - y) ** 2)
            loss.backward()
            optimizer.step()
            return loss

        run = fx.jit(step) if compiled else step
        losses = [float(run(x, y)) for _ in range(10)]
        if compiled:  # zero_grad first: the .grad states at a call's start do not matter
            assert run.stats.misses == 1
        return losses, [p.numpy().copy() for p in model.parameters()], optimizer

    eager_losses, eager_params, eager_opt = train(False)
    jit_losses, jit_params, jit_opt = train(True)
    # equal but for the last bits of tanh, glibc's vector one in the native kernels
    np.testing.assert_allclose(jit_losses, eager_losses, rtol=1e-6)
    for a, b in zip(eager_params, jit_params):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(jit_opt._step_count) == int(eager_opt._step_count) == 10


def test_backward_inside_jit_accumulates_like_eager_across_grad_states():
    """Without zero_grad inside, the step reads the .grad it is called with: None (set it)
    and a tensor (add to it) are two graphs. One entry per signature: each change of state
    retraces (calls 1, 2, 4 and 5 of 5)."""

    def run(compiled):
        w = fx.tensor([1.0, -2.0, 0.5], requires_grad=True)

        def step(x):
            loss = fx.sum(fx.tanh(w * x))
            loss.backward()
            return loss

        f = fx.jit(step) if compiled else step
        grads = []
        for i in range(5):
            if i == 3:
                w.grad = None
            f(fx.tensor([0.5, 1.0, 2.0]) * (i + 1))
            grads.append(w.grad.numpy().copy())
        return grads, f

    eager, _ = run(False)
    got, compiled = run(True)
    for g, e in zip(got, eager):
        np.testing.assert_allclose(g, e, rtol=1e-6)
    assert (compiled.stats.misses, compiled.stats.hits) == (4, 1)


# ----------------------------------------------------------------------------- on the tape


def test_backward_through_a_compiled_module_matches_eager():
    fx.manual_seed(0)
    model = fx.nn.Sequential(fx.nn.Linear(3, 8), fx.nn.GELU(), fx.nn.Linear(8, 2))
    compiled = fx.jit(model)
    x = fx.randn(5, 3, requires_grad=True)
    for _ in range(3):
        model.zero_grad()
        x.grad = None
        out = compiled(x)
        assert out.requires_grad and out.grad_fn is not None
        fx.sum(out**2).backward()
        got = [p.grad.numpy().copy() for p in model.parameters()] + [x.grad.numpy().copy()]
    model.zero_grad()
    x.grad = None
    fx.sum(model(x) ** 2).backward()
    want = [p.grad.numpy() for p in model.parameters()] + [x.grad.numpy()]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    assert (compiled.stats.misses, compiled.stats.hits, compiled.stats.fallbacks) == (1, 2, 0)
    assert compiled.__name__ == "Sequential"


def test_compiled_output_on_the_tape_mixes_with_eager_ops_and_int_inputs():
    table = fx.tensor(np.random.default_rng(0).normal(size=(6, 3)), requires_grad=True)

    def lookup(idx, scale):
        return fx.take(table, idx, axis=0) * scale

    idx = fx.tensor(np.array([0, 2, 2, 5]))
    scale = fx.tensor(2.0, requires_grad=True)
    loss = fx.sum(fx.exp(fx.jit(lookup)(idx, scale)))
    loss.backward()
    got = table.grad.numpy(), scale.grad.numpy()
    table.grad = scale.grad = None
    fx.sum(fx.exp(lookup(idx, scale))).backward()
    np.testing.assert_allclose(got[0], table.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got[1], scale.grad.numpy(), rtol=1e-12)


def test_compiled_function_that_writes_state_runs_compiled_on_the_tape():
    """Dropout draws from the global key: the compiled forward writes the new key, and
    backward() recomputes with the key the call read, so the gradient is eager's."""
    fx.manual_seed(0)
    model = fx.nn.Sequential(fx.nn.Linear(3, 4), fx.nn.Dropout(0.5))
    compiled = fx.jit(model)
    x = fx.randn(8, 3)
    results = []
    for run in (compiled, model):
        model.zero_grad()
        fx.manual_seed(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fx.sum(run(x)).backward()
        results.append((model[0].weight.grad.numpy().copy(), fx.randn(2).numpy()))
    (got, got_next), (want, want_next) = results
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_next, want_next)  # the key moved on as eagerly
    assert compiled.stats.fallbacks == 0 and compiled.stats.misses == 1


def test_compiled_call_under_no_grad_records_nothing():
    w = fx.tensor([1.0, 2.0], requires_grad=True)
    f = fx.jit(lambda x: x * w)
    with fx.no_grad():
        out = f(fx.tensor([3.0, 4.0]))
    assert not out.requires_grad and out.grad_fn is None


def test_a_step_that_takes_its_own_gradients_returns_plain_values():
    """The JAX face: value_and_grad inside, Parameters as arguments: no tape, no graph
    growing from one step's outputs into the next."""
    fx.manual_seed(0)
    model = fx.nn.Linear(3, 2)
    state = fx.optim.adamw_init(model)
    x = fx.randn(4, 3)

    @fx.jit
    def step(model, state):
        loss, grads = fx.value_and_grad(lambda m: fx.sum(m(x) ** 2))(model)
        model, state = fx.optim.adamw_update(model, grads, state, lr=0.1)
        return model, state, loss

    eager_model, eager_state, _ = step.fn(model, state)
    for _ in range(3):
        model, state, loss = step(model, state)
        assert loss.grad_fn is None and all(p.grad_fn is None for p in model.parameters())
    assert step.stats.fallbacks == 0
    # the updated parameters come back as Parameters, as adamw_update returns them eagerly
    assert [type(p) for p in model.parameters()] == [type(p) for p in eager_model.parameters()]
    assert all(type(p) is fx.nn.Parameter and p.requires_grad for p in model.parameters())
    fx.sum(model(x)).backward()  # so the imperative style can take over
    assert model.weight.grad is not None


# ----------------------------------------------------------------------------- checks in compiled code


@pytest.mark.parametrize("native_kernels", ["1", "0"])
def test_debug_nans_checks_compiled_code_and_names_the_users_line(native_kernels, monkeypatch):
    monkeypatch.setenv("FLUXION_NATIVE_KERNELS", native_kernels)
    toolchain._compiler.cache_clear()

    def f(x):
        y = fx.tanh(x) * 2.0
        z = fx.log(y - 1.0)  # NaN where tanh(x) * 2 < 1: the line named below
        return fx.sum(fx.where(y > 1.0, z, 0.0))  # masked afterwards: only a check sees it

    x = fx.tensor(np.linspace(-2, 2, 64))
    compiled = fx.jit(f)
    plain = float(compiled(x))  # unchecked: the NaN is masked away
    assert np.isfinite(plain)
    line = f"{__file__}:{f.__code__.co_firstlineno + 2}"
    with fx.debug_nans():
        with pytest.raises(fx.errors.FloatingPointCheckError, match=line) as eager:
            f(x)
        with pytest.raises(fx.errors.FloatingPointCheckError, match=line) as jitted:
            compiled(x)
    assert "compiled in f" in str(jitted.value) and str(eager.value).split(":")[0] in ("log", "sub")
    assert compiled.stats.misses == 2  # a checked variant of its own
    assert float(compiled(x)) == plain  # and the unchecked one again
    toolchain._compiler.cache_clear()


def test_a_compiled_index_error_speaks_the_users_coordinates():
    table = fx.tensor(np.arange(12.0).reshape(4, 3))
    lookup = fx.jit(lambda idx: fx.sum(fx.take_along_axis(table, idx, axis=0) * 2.0))
    ok = fx.tensor(np.array([[0, 1, 3]]))
    assert float(lookup(ok)) == 2 * (0 + 4 + 11)
    with pytest.raises(fx.errors.IndexOutOfRangeError) as eager:
        fx.take_along_axis(table, fx.tensor(np.array([[0, 7, 3]])), axis=0)
    with pytest.raises(fx.errors.IndexOutOfRangeError) as compiled:
        lookup(fx.tensor(np.array([[0, 7, 3]])))
    assert str(compiled.value) == str(eager.value)
    assert "index 7" in str(compiled.value) and "size 4" in str(compiled.value)
