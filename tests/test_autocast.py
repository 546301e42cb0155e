"""fx.autocast against torch.autocast("cpu", dtype=torch.bfloat16): which dtype each op
gives, its values (within bfloat16's rounding of torch's), the gradients' dtypes and values,
and autocast under fx.jit (same graph as eager, one cache entry per policy), fx.grad and
fx.vmap (a Python loop as the oracle)."""

from __future__ import annotations

import threading

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fluxion as fx
import fluxion.nn.functional as F
from fluxion.errors import ArgumentTypeError, DTypeError, InvalidArgumentError
from fluxion.transforms.jit import explain_key_change

pytestmark = pytest.mark.torch

rng = np.random.default_rng(0)


def _f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _bf16(*shape):  # float32 values that bfloat16 holds exactly: both frameworks cast alike
    return _f32(*shape).astype(ml_dtypes.bfloat16)


A, B, W, BIAS = _f32(6, 8), _f32(8, 5), _f32(5, 8), _f32(5)
S1, S2 = _f32(3, 6, 8), _f32(3, 8, 4)
Q, K, V = _f32(2, 2, 5, 8), _f32(2, 2, 7, 8), _f32(2, 2, 7, 8)
LOGITS, TARGETS = _bf16(6, 5), rng.integers(0, 5, 6)
Y = _bf16(6, 5)

# name -> (fluxion function, torch function, inputs): inputs are NumPy arrays (float32 or
# bfloat16), integer arrays stay integer
CASES = {
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, (A, B)),
    "matmul_function": (fx.matmul, torch.matmul, (A, B)),
    "matmul_batched": (lambda a, b: a @ b, lambda a, b: a @ b, (S1, S2)),
    "matmul_stack_by_matrix": (lambda a, b: a @ b, lambda a, b: a @ b, (S1, B)),
    "matmul_vector": (lambda a, b: a @ b, lambda a, b: a @ b, (A, B[:, 0])),
    "matmul_float64": (
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        (A.astype(np.float64), B.astype(np.float64)),
    ),
    "linear": (F.linear, TF.linear, (A, W, BIAS)),
    "linear_module_weights": (lambda a, w: F.linear(a, w), lambda a, w: TF.linear(a, w), (S1, W)),
    "tensordot": (
        lambda a, b: fx.tensordot(a, b, 1),
        lambda a, b: torch.tensordot(a, b, 1),
        (A, B),
    ),
    "einsum": (
        lambda a, b: fx.einsum("bij,bjk->bik", a, b),
        lambda a, b: torch.einsum("bij,bjk->bik", a, b),
        (S1, S2),
    ),
    "vecdot": (fx.vecdot, torch.linalg.vecdot, (A, A[::-1].copy())),
    "attention": (F.scaled_dot_product_attention, TF.scaled_dot_product_attention, (Q, K, V)),
    "attention_causal": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
        (Q, K[:, :, :5], V[:, :, :5]),
    ),
    "softmax_of_float32": (lambda x: F.softmax(x, -1), lambda x: TF.softmax(x, -1), (A,)),
    "softmax_of_matmul": (
        lambda a, b: F.softmax(a @ b, -1),
        lambda a, b: TF.softmax(a @ b, -1),
        (A, B),
    ),
    "log_softmax_of_bfloat16": (
        lambda x: F.log_softmax(x, -1),
        lambda x: TF.log_softmax(x, -1),
        (LOGITS,),
    ),
    "layer_norm_of_float32": (
        lambda x: F.layer_norm(x, (8,)),
        lambda x: TF.layer_norm(x, (8,)),
        (A,),
    ),
    "layer_norm_of_bfloat16": (
        lambda x: F.layer_norm(x, (5,)),
        lambda x: TF.layer_norm(x, (5,)),
        (LOGITS,),
    ),
    "sum_of_bfloat16": (lambda x: fx.sum(x, axis=1), lambda x: x.sum(1), (LOGITS,)),
    "exp_of_bfloat16": (fx.exp, torch.exp, (LOGITS,)),
    "gelu_of_matmul": (lambda a, b: F.gelu(a @ b), lambda a, b: TF.gelu(a @ b), (A, B)),
    "add_bfloat16_float32": (lambda a, b: (a @ b) + b[0], lambda a, b: (a @ b) + b[0], (A, B)),
    "cat_bfloat16_float32": (
        lambda a, b: fx.cat([a @ b, b[:1]]),
        lambda a, b: torch.cat([a @ b, b[:1]]),
        (A, B),
    ),
    "cross_entropy": (F.cross_entropy, TF.cross_entropy, (LOGITS, TARGETS)),
    "cross_entropy_of_linear": (
        lambda a, w, t: F.cross_entropy(F.linear(a, w), t),
        lambda a, w, t: TF.cross_entropy(TF.linear(a, w), t),
        (A, W, TARGETS),
    ),
    "nll_loss": (
        lambda x, t: F.nll_loss(F.log_softmax(x, -1), t),
        lambda x, t: TF.nll_loss(TF.log_softmax(x, -1), t),
        (LOGITS, TARGETS),
    ),
    "mse_loss": (F.mse_loss, TF.mse_loss, (LOGITS, Y)),
    "l1_loss": (F.l1_loss, TF.l1_loss, (LOGITS, Y)),
    "huber_loss": (F.huber_loss, TF.huber_loss, (LOGITS, Y)),
    "smooth_l1_loss": (F.smooth_l1_loss, TF.smooth_l1_loss, (LOGITS, Y)),
    "binary_cross_entropy_with_logits": (
        lambda x, y: F.binary_cross_entropy_with_logits(x, F.sigmoid(y)),
        lambda x, y: TF.binary_cross_entropy_with_logits(x, torch.sigmoid(y)),
        (LOGITS, Y),
    ),
    "binary_cross_entropy": (
        lambda x, y: F.binary_cross_entropy(F.sigmoid(x), F.sigmoid(y)),
        lambda x, y: TF.binary_cross_entropy(torch.sigmoid(x), torch.sigmoid(y)),
        (LOGITS, Y),
    ),
}


def _torch(a):
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.astype(np.float32)).bfloat16()
    return torch.from_numpy(np.asarray(a))


def _numpy(t):
    return t.detach().float().numpy() if t.dtype == torch.bfloat16 else t.detach().numpy()


def _run_torch(fn, inputs):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return fn(*map(_torch, inputs))


def _close(ours, theirs):
    """Within two bfloat16 roundings of torch's result, relative to its scale: each side
    rounds its products (and intermediates of a bfloat16 input) to bfloat16."""
    eps = float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps)
    scale = max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours, theirs, rtol=2 * eps, atol=2 * eps * scale)


@pytest.mark.parametrize("name", list(CASES))
def test_op_dtype_and_values_match_torch_autocast(name):
    ours_fn, torch_fn, inputs = CASES[name]
    theirs = _run_torch(torch_fn, inputs)
    with fx.autocast(dtype=fx.bfloat16):
        ours = ours_fn(*map(fx.tensor, inputs))
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), name
    _close(ours.float().numpy().astype(np.float64), _numpy(theirs).astype(np.float64))


@pytest.mark.parametrize("name", ["matmul", "linear", "attention", "cross_entropy"])
def test_outside_autocast_nothing_is_cast(name):
    ours_fn, torch_fn, inputs = CASES[name]
    ours = ours_fn(*map(fx.tensor, inputs))
    assert str(ours.dtype) == str(torch_fn(*map(_torch, inputs)).dtype).removeprefix("torch.")


def _mlp_loss(framework, x, w1, b1, w2, t):
    ops = F if framework is fx else TF
    h = ops.gelu(ops.linear(x, w1, b1))
    return ops.cross_entropy(ops.linear(h, w2), t)


MLP = (_f32(16, 8), _f32(12, 8) * 0.5, _f32(12) * 0.1, _f32(5, 12) * 0.5, rng.integers(0, 5, 16))


def _torch_grads():
    x, *params, t = map(_torch, MLP)
    for p in params:
        p.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = _mlp_loss(torch, x, *params, t)
    loss.backward()
    return loss, [p.grad for p in params]


def test_backward_gives_float32_grads_as_torch_autocast():
    loss_t, grads_t = _torch_grads()
    x, *params, t = map(fx.tensor, MLP)
    for p in params:
        p.requires_grad = True
    with fx.autocast(dtype=fx.bfloat16):
        loss = _mlp_loss(fx, x, *params, t)
    assert loss.dtype == fx.float32 and loss_t.dtype == torch.float32
    loss.backward()
    for p, g in zip(params, grads_t):
        assert p.grad.dtype == fx.float32 and g.dtype == torch.float32
        # both round the products' operands and results to bfloat16: within a few roundings
        np.testing.assert_allclose(
            p.grad.numpy(), g.numpy(), rtol=0.03, atol=0.03 * float(g.abs().max())
        )


def test_fx_grad_under_autocast_equals_backward():
    x, *params, t = map(fx.tensor, MLP)
    with fx.autocast():
        grads = fx.grad(lambda ps: _mlp_loss(fx, x, *ps, t))(params)
        loss = _mlp_loss(fx, x, *[p.requires_grad_() for p in params], t)
    loss.backward()
    for g, p in zip(grads, params):
        assert g.dtype == fx.float32
        np.testing.assert_array_equal(g.numpy(), p.grad.numpy())


def _step(x, w1, b1, w2, t):
    return fx.value_and_grad(lambda ps: _mlp_loss(fx, x, *ps, t))([w1, b1, w2])


def test_autocast_inside_jit_equals_eager():
    args = list(map(fx.tensor, MLP))
    with fx.autocast():
        eager_loss, eager_grads = _step(*args)
    traced = fx.jit(fx.autocast()(_step))  # the policy inside the compiled function
    loss, grads = traced(*args)
    assert loss.dtype == eager_loss.dtype
    np.testing.assert_allclose(loss.numpy(), eager_loss.numpy(), rtol=1e-6)
    for g, e in zip(grads, eager_grads):
        assert g.dtype == e.dtype == fx.float32
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)
    graph = str(fx.xpr(traced, *args))
    assert "bf16" in graph  # the casts are in the graph


def test_a_jit_function_has_a_graph_per_policy():
    a, b = fx.tensor(A), fx.tensor(B)
    product = fx.jit(lambda a, b: a @ b)
    outside = product(a, b)
    with fx.autocast(dtype=fx.bfloat16):
        inside = product(a, b)
        with fx.autocast(enabled=False):
            off_again = product(a, b)
    again = product(a, b)
    assert (outside.dtype, inside.dtype, off_again.dtype, again.dtype) == (
        fx.float32,
        fx.bfloat16,
        fx.float32,
        fx.float32,
    )
    np.testing.assert_array_equal(outside.numpy(), (a @ b).numpy())
    with fx.autocast():
        np.testing.assert_array_equal(inside.float().numpy(), (a @ b).float().numpy())
    assert (product.stats.misses, product.stats.hits) == (2, 2)
    with fx.autocast(dtype=fx.float16):
        assert product(a, b).dtype == fx.float16
    assert product.stats.misses == 3


def test_jit_explains_a_miss_from_autocast():
    product = fx.jit(lambda a, b: a @ b)
    product(fx.tensor(A), fx.tensor(B))
    with fx.autocast():
        product(fx.tensor(A), fx.tensor(B))
    off, on = product.cache
    assert explain_key_change(off, on) == "fx.autocast changed: off -> bfloat16"


def test_vmap_under_autocast_equals_a_loop():
    x, w = fx.tensor(S1), fx.tensor(B)
    with fx.autocast():
        batched = fx.vmap(lambda xi: F.softmax(xi @ w, -1))(x)
        looped = fx.stack([F.softmax(x[i] @ w, -1) for i in range(x.shape[0])])
    assert batched.dtype == looped.dtype == fx.bfloat16
    np.testing.assert_array_equal(batched.float().numpy(), looped.float().numpy())


def test_jit_under_grad_under_autocast():
    args = list(map(fx.tensor, MLP))
    x, t = args[0], args[-1]
    loss = fx.jit(lambda ps: _mlp_loss(fx, x, *ps, t))
    with fx.autocast():
        compiled = fx.grad(loss)(args[1:4])
        eager = fx.grad(lambda ps: _mlp_loss(fx, x, *ps, t))(args[1:4])
    for c, e in zip(compiled, eager):
        assert c.dtype == fx.float32
        np.testing.assert_allclose(c.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)


def test_decorator_and_torch_spelling():
    @fx.autocast("cpu", dtype=fx.bfloat16)
    def product(a, b):
        return a @ b

    assert product(fx.tensor(A), fx.tensor(B)).dtype == fx.bfloat16
    assert not fx.is_autocast_enabled()
    with fx.amp.autocast(device_type="cpu"):  # torch.amp.autocast; bfloat16 is the default
        assert fx.is_autocast_enabled() and fx.get_autocast_dtype() == fx.bfloat16


def test_recursion_through_one_decorated_function_restores_each_level():
    @fx.autocast(enabled=False)
    def off(n):
        return fx.is_autocast_enabled() if n == 0 else off(n - 1)

    with fx.autocast():
        assert off(3) is False
        assert fx.is_autocast_enabled()
    assert not fx.is_autocast_enabled()


def test_autocast_is_per_thread():
    seen = []
    with fx.autocast():
        worker = threading.Thread(target=lambda: seen.append(fx.is_autocast_enabled()))
        worker.start()
        worker.join()
    assert seen == [False]


def test_bad_arguments_say_what_to_write():
    with pytest.raises(InvalidArgumentError, match="device_type 'cuda' is not available"):
        fx.autocast("cuda")
    with pytest.raises(InvalidArgumentError, match=r"fx.autocast\(dtype=fx.bfloat16\)"):
        fx.autocast(fx.bfloat16)
    with pytest.raises(DTypeError, match="bfloat16 or float16, got float32"):
        fx.autocast(dtype=fx.float32)
    with pytest.raises(DTypeError, match="autocast: dtype 'float33' is not supported"):
        fx.autocast(dtype="float33")
    with pytest.raises(ArgumentTypeError, match="autocast: enabled must be True or False, got 1"):
        fx.autocast(enabled=1)


def test_every_policy_entry_is_an_op_that_applies_it():
    public = {
        name: getattr(module, name)
        for module in (fx, F)
        for name in fx.amp.POLICY
        if hasattr(module, name)
    }
    assert set(public) == set(fx.amp.POLICY)
    for name, fn in public.items():
        assert fn.autocast_rule == fx.amp.POLICY[name], name


def test_widening_bfloat16_bits_is_ml_dtypes_cast():
    from fluxion.backends import cpu

    values = np.array([0.0, -0.0, 1.5, np.inf, -np.inf, np.nan, 1e-40, -3e38], np.float32)
    special = values.astype(ml_dtypes.bfloat16)
    strided = _bf16(5, 6)[:, ::2]  # a view: the bits are read through its strides
    for a in (special, strided, values[:6].astype(np.float16)):
        np.testing.assert_array_equal(cpu.widen(a), a.astype(np.float32))
        assert cpu.widen(a).dtype == np.float32
