"""fx.nn.functional against torch.nn.functional: values and gradients (backward() and
fx.grad), float64 to 1e-10 and float32 to 1e-5; then the errors bad inputs get."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from nn_testing import TOL, close

import fluxion as fx
from fluxion.errors import DTypeError, IndexOutOfRangeError, InvalidArgumentError, ShapeError

F = fx.nn.functional
DTYPES = [np.float64, np.float32]


def check(fx_fn, torch_fn, args, dtype, diff=None, seed=0):
    """Compare ``fx_fn(*args)`` with ``torch_fn(*args)``; float array args at positions
    ``diff`` (default: all float arrays) are differentiated, by backward() and fx.grad."""
    rng = np.random.default_rng(seed)
    diff = [
        i
        for i, a in enumerate(args)
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and (diff is None or i in diff)
    ]
    t_args = [
        torch.from_numpy(a.copy()).requires_grad_(i in diff) if isinstance(a, np.ndarray) else a
        for i, a in enumerate(args)
    ]
    t_out = torch_fn(*t_args)
    ct = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    (t_out * torch.from_numpy(ct)).sum().backward()

    f_args = [
        fx.tensor(a, requires_grad=i in diff) if isinstance(a, np.ndarray) else a
        for i, a in enumerate(args)
    ]
    f_out = fx_fn(*f_args)
    close(f_out, t_out, dtype, "forward")
    (f_out * fx.tensor(ct)).sum().backward()
    for i in diff:
        close(f_args[i].grad, t_args[i].grad, dtype, f"backward() grad of argument {i}")

    plain = [fx.tensor(a) if isinstance(a, np.ndarray) else a for a in args]

    def loss(*d):
        full = list(plain)
        for i, v in zip(diff, d):
            full[i] = v
        return (fx_fn(*full) * fx.tensor(ct)).sum()

    if diff:
        grads = fx.grad(loss, argnums=tuple(range(len(diff))))(*[plain[i] for i in diff])
        for i, g in zip(diff, grads):
            close(g, t_args[i].grad, dtype, f"fx.grad of argument {i}")


def r(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_layer_norm_rms_norm_softmax(dtype):
    rng = np.random.default_rng(0)
    x, w, b = r(rng, (3, 4, 5), dtype), r(rng, (2, 5), dtype), r(rng, (2,), dtype)
    check(F.linear, TF.linear, [x, w, b], dtype)
    check(F.linear, TF.linear, [x, w], dtype)
    g, bb = r(rng, (4, 5), dtype), r(rng, (4, 5), dtype)
    check(lambda x, g, b: F.layer_norm(x, (4, 5), g, b, 1e-3),
          lambda x, g, b: TF.layer_norm(x, (4, 5), g, b, 1e-3), [x, g, bb], dtype)  # fmt: skip
    check(lambda x, g: F.rms_norm(x, (5,), g), lambda x, g: TF.rms_norm(x, (5,), g),
          [x, r(rng, (5,), dtype)], dtype)  # fmt: skip
    for dim in (0, 1, -1):
        check(lambda x: F.softmax(x, dim), lambda x: TF.softmax(x, dim), [x], dtype)
        check(lambda x: F.log_softmax(x, dim=dim), lambda x: TF.log_softmax(x, dim=dim), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations(dtype):
    x = r(np.random.default_rng(1), (4, 6), dtype, 3.0)
    check(F.relu, TF.relu, [x], dtype)
    check(F.gelu, TF.gelu, [x], dtype)
    check(
        lambda x: F.gelu(x, approximate="tanh"),
        lambda x: TF.gelu(x, approximate="tanh"),
        [x],
        dtype,
    )
    check(F.silu, TF.silu, [x], dtype)
    check(F.sigmoid, torch.sigmoid, [x], dtype)
    check(F.tanh, torch.tanh, [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_one_hot_pad(dtype):
    rng = np.random.default_rng(2)
    w = r(rng, (6, 3), dtype)
    idx = np.array([[1, 5, 0], [3, 3, 2]])
    check(
        lambda w: F.embedding(fx.tensor(idx), w),
        lambda w: TF.embedding(torch.from_numpy(idx), w),
        [w],
        dtype,
    )
    check(lambda w: F.embedding(fx.tensor(idx), w, padding_idx=3),
          lambda w: TF.embedding(torch.from_numpy(idx), w, padding_idx=3), [w], dtype)  # fmt: skip
    labels = np.array([0, 2, 1, 2])
    oh = F.one_hot(fx.tensor(labels))
    assert oh.dtype == fx.int64
    np.testing.assert_array_equal(oh.numpy(), TF.one_hot(torch.from_numpy(labels)).numpy())
    np.testing.assert_array_equal(
        F.one_hot(fx.tensor(labels), 5).numpy(), TF.one_hot(torch.from_numpy(labels), 5).numpy()
    )
    x = r(rng, (2, 3, 4), dtype)
    for p in [(1, 2), (0, 1, 2, 0), (1, 1, 0, 0, 2, 1), (-1, 2), (1, -2, -1, 0)]:
        check(lambda x: F.pad(x, p, value=0.5), lambda x: TF.pad(x, p, value=0.5), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scaled_dot_product_attention(dtype):
    rng = np.random.default_rng(3)
    q, k, v = r(rng, (2, 3, 4, 8), dtype), r(rng, (2, 3, 6, 8), dtype), r(rng, (2, 3, 6, 5), dtype)
    sdpa, tsdpa = F.scaled_dot_product_attention, TF.scaled_dot_product_attention
    check(sdpa, tsdpa, [q, k, v], dtype)
    check(
        lambda q, k, v: sdpa(q, k, v, scale=0.3),
        lambda q, k, v: tsdpa(q, k, v, scale=0.3),
        [q, k, v],
        dtype,
    )
    keep = rng.random((4, 6)) < 0.7
    keep[:, 0] = True
    check(lambda q, k, v: sdpa(q, k, v, attn_mask=fx.tensor(keep)),
          lambda q, k, v: tsdpa(q, k, v, attn_mask=torch.from_numpy(keep)), [q, k, v], dtype)  # fmt: skip
    add = r(rng, (2, 1, 4, 6), dtype)
    check(lambda q, k, v, m: sdpa(q, k, v, attn_mask=m), lambda q, k, v, m: tsdpa(q, k, v, attn_mask=m),
          [q, k, v, add], dtype)  # fmt: skip
    qs = r(rng, (2, 3, 6, 8), dtype)
    check(lambda q, k, v: sdpa(q, k, v, is_causal=True), lambda q, k, v: tsdpa(q, k, v, is_causal=True),
          [qs, k, v], dtype)  # fmt: skip
    kg, vg = r(rng, (2, 1, 6, 8), dtype), r(rng, (2, 1, 6, 5), dtype)
    check(lambda q, k, v: sdpa(q, k, v, enable_gqa=True), lambda q, k, v: tsdpa(q, k, v, enable_gqa=True),
          [q, kg, vg], dtype)  # fmt: skip


def test_sdpa_dropout_uses_the_key():
    q = fx.randn(1, 2, 5, 4)
    key = fx.random.key(0)
    a = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5, dropout_key=key)
    b = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5, dropout_key=key)
    c = F.scaled_dot_product_attention(q, q, q)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.allclose(a.numpy(), c.numpy())


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"reduction": "sum"},
        {"reduction": "none"},
        {"label_smoothing": 0.2},
        {"ignore_index": 1},
        {"ignore_index": 1, "label_smoothing": 0.1, "reduction": "none"},
        {"weight": True},
        {"weight": True, "label_smoothing": 0.3, "ignore_index": 2},
        {"weight": True, "reduction": "sum"},
    ],
)
def test_cross_entropy_class_targets(dtype, kwargs):
    rng = np.random.default_rng(4)
    kwargs = dict(kwargs)
    weight = r(rng, (5,), dtype) ** 2 + 0.5 if kwargs.pop("weight", False) else None
    for shape, tshape in [
        ((6, 5), (6,)),
        ((3, 5, 4), (3, 4)),
        ((2, 5, 2, 3), (2, 2, 3)),
        ((5,), ()),
    ]:
        logits = r(rng, shape, dtype, 2.0)
        target = rng.integers(0, 5, tshape)
        target.flat[0] = 1  # at least one ignored / one valid entry
        target.flat[-1] = 4
        fw = None if weight is None else fx.tensor(weight)
        tw = None if weight is None else torch.from_numpy(weight)
        check(lambda x: F.cross_entropy(x, fx.tensor(target), fw, **kwargs),
              lambda x: TF.cross_entropy(x, torch.from_numpy(target), tw, **kwargs), [logits], dtype)  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs", [{}, {"reduction": "none"}, {"label_smoothing": 0.25}, {"weight": True}]
)
def test_cross_entropy_probability_targets(dtype, kwargs):
    rng = np.random.default_rng(5)
    kwargs = dict(kwargs)
    weight = r(rng, (4,), dtype) ** 2 + 0.5 if kwargs.pop("weight", False) else None
    for shape in [(6, 4), (2, 4, 3)]:
        logits = r(rng, shape, dtype, 2.0)
        probs = TF.softmax(torch.from_numpy(r(rng, shape, dtype)), dim=1).numpy()
        fw = None if weight is None else fx.tensor(weight)
        tw = None if weight is None else torch.from_numpy(weight)
        check(lambda x, p: F.cross_entropy(x, p, fw, **kwargs),
              lambda x, p: TF.cross_entropy(x, p, tw, **kwargs), [logits, probs], dtype)  # fmt: skip


def test_cross_entropy_one_hot_equals_class_indices_and_seed_alias():
    rng = np.random.default_rng(6)
    logits = fx.tensor(r(rng, (5, 3), np.float32))
    labels = np.array([0, 2, 1, 1, 0])
    onehot = np.eye(3, dtype=np.float32)[labels]
    a = F.cross_entropy(logits, fx.tensor(labels)).item()
    b = F.cross_entropy_loss(logits, fx.tensor(onehot)).item()
    c = F.cross_entropy(logits, F.one_hot(fx.tensor(labels), 3)).item()  # integer one-hot
    assert abs(a - b) < 1e-6 and abs(a - c) < 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_loss(dtype):
    rng = np.random.default_rng(7)
    logp = TF.log_softmax(torch.from_numpy(r(rng, (6, 4), dtype)), 1).numpy()
    target = np.array([0, 3, 1, -100, 2, 3])
    weight = np.array([1.0, 2.0, 0.5, 1.5], dtype)
    for kw in [{}, {"reduction": "sum"}, {"reduction": "none"}]:
        check(lambda x: F.nll_loss(x, fx.tensor(target), **kw),
              lambda x: TF.nll_loss(x, torch.from_numpy(target), **kw), [logp], dtype)  # fmt: skip
        check(lambda x: F.nll_loss(x, fx.tensor(target), fx.tensor(weight), **kw),
              lambda x: TF.nll_loss(x, torch.from_numpy(target), torch.from_numpy(weight), **kw), [logp], dtype)  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_and_binary_losses(dtype, reduction):
    rng = np.random.default_rng(8)
    x, y = r(rng, (4, 3), dtype), r(rng, (4, 3), dtype)
    check(lambda a, b: F.mse_loss(a, b, reduction=reduction),
          lambda a, b: TF.mse_loss(a, b, reduction=reduction), [x, y], dtype)  # fmt: skip
    check(lambda a, b: F.l1_loss(a, b, reduction=reduction),
          lambda a, b: TF.l1_loss(a, b, reduction=reduction), [x, y], dtype)  # fmt: skip
    p = (rng.random((4, 3)) * 0.9 + 0.05).astype(dtype)
    t = rng.random((4, 3)).astype(dtype)
    w = (rng.random((4, 3)) + 0.5).astype(dtype)
    check(lambda p, t: F.binary_cross_entropy(p, t, reduction=reduction),
          lambda p, t: TF.binary_cross_entropy(p, t, reduction=reduction), [p, t], dtype, diff=[0])  # fmt: skip
    check(lambda p, t, w: F.binary_cross_entropy(p, t, w, reduction=reduction),
          lambda p, t, w: TF.binary_cross_entropy(p, t, w, reduction=reduction), [p, t, w], dtype, diff=[0])  # fmt: skip
    logits = r(rng, (4, 3), dtype, 3.0)
    pw = (rng.random((3,)) + 0.5).astype(dtype)
    check(lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction),
          lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction=reduction), [logits, t], dtype)  # fmt: skip
    check(lambda x, t, w, pw: F.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=pw),
          lambda x, t, w, pw: TF.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=pw),
          [logits, t, w, pw], dtype, diff=[0])  # fmt: skip


def test_bce_with_logits_is_stable_and_exact_at_zero():
    x = fx.tensor([-200.0, 0.0, 200.0], requires_grad=True)
    t = fx.tensor([1.0, 1.0, 0.0])
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="sum")
    assert np.isfinite(loss.item())
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [-1.0, -0.5, 1.0])


def test_losses_under_vmap_match_the_loop():
    rng = np.random.default_rng(9)
    logits = fx.tensor(r(rng, (3, 4, 5), np.float32))
    target = fx.tensor(rng.integers(0, 5, (3, 4)))
    batched = fx.vmap(F.cross_entropy)(logits, target)
    looped = [F.cross_entropy(logits[i], target[i]).item() for i in range(3)]
    np.testing.assert_allclose(batched.numpy(), looped, rtol=1e-6)


# ----------------------------------------------------------------------------- errors


def test_cross_entropy_errors():
    logits = fx.randn(4, 3)
    with pytest.raises(IndexOutOfRangeError, match="target 3 is out of range for 3 classes"):
        F.cross_entropy(logits, fx.tensor([0, 1, 3, 2]))
    with pytest.raises(IndexOutOfRangeError, match="out of range"):
        F.cross_entropy(logits, fx.tensor([0, -1, 1, 2]))
    F.cross_entropy(logits, fx.tensor([0, -100, 1, 2]))  # ignore_index is fine
    with pytest.raises(DTypeError, match="class-index targets must be integers"):
        F.cross_entropy(logits, fx.tensor([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ShapeError, match=r"need shape \(4,\)"):
        F.cross_entropy(logits, fx.tensor([0, 1]))
    with pytest.raises(InvalidArgumentError, match="reduction"):
        F.cross_entropy(logits, fx.tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(ShapeError, match="one per class"):
        F.cross_entropy(logits, fx.tensor([0, 1, 2, 0]), fx.ones(4))
    with pytest.raises(DTypeError, match="floating point"):
        F.cross_entropy(fx.tensor([[1, 2]]), fx.tensor([0]))
    with pytest.raises(ShapeError, match="same shape"):
        F.mse_loss(fx.ones(3), fx.ones((3, 1)))
    with pytest.raises(InvalidArgumentError, match="probabilities"):
        F.binary_cross_entropy(fx.tensor([1.5]), fx.tensor([1.0]))


def test_embedding_and_norm_errors():
    emb = fx.nn.Embedding(5, 3)
    with pytest.raises(IndexOutOfRangeError, match="index 5 is out of range .* of size 5"):
        emb(fx.tensor([1, 5]))
    with pytest.raises(IndexOutOfRangeError, match="index -1"):
        emb(fx.tensor([-1]))
    with pytest.raises(DTypeError, match="integers"):
        emb(fx.tensor([1.0]))
    with pytest.raises(
        ShapeError, match=r"normalized_shape \(8,\) does not match the input of shape \(2, 6\)"
    ):
        fx.nn.LayerNorm(8)(fx.randn(2, 6))
    with pytest.raises(ShapeError, match="normalized_shape"):
        F.rms_norm(fx.randn(2, 6), (3, 6))
    with pytest.raises(InvalidArgumentError, match="dropout"):
        F.dropout(fx.ones(2), p=1.5)


def test_attention_mask_errors():
    q = fx.randn(2, 3, 4, 8)
    with pytest.raises(ShapeError, match=r"attention mask of shape \(4, 5\) does not broadcast"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=fx.ones((4, 5), dtype=fx.bool))
    with pytest.raises(DTypeError, match="bool or floating point"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=fx.ones((4, 4), dtype=fx.int64))
    mha = fx.nn.MultiheadAttention(8, 2, batch_first=True)
    x = fx.randn(2, 4, 8)
    with pytest.raises(
        ShapeError, match=r"attn_mask has shape \(3, 4\), expected \(L, S\) = \(4, 4\)"
    ):
        mha(x, x, x, attn_mask=fx.ones((3, 4), dtype=fx.bool))
    with pytest.raises(ShapeError, match=r"\(N \* num_heads, L, S\) = \(4, 4, 4\)"):
        mha(x, x, x, attn_mask=fx.zeros((2, 4, 4)))
    with pytest.raises(ShapeError, match="key_padding_mask has shape"):
        mha(x, x, x, key_padding_mask=fx.ones((4, 2), dtype=fx.bool))
    with pytest.raises(ShapeError, match="embed_dim=8"):
        mha(fx.randn(2, 4, 6))
    with pytest.raises(InvalidArgumentError, match="divisible"):
        fx.nn.MultiheadAttention(10, 3)


def test_tolerances_are_the_asked_ones():
    assert TOL[np.float64] == 1e-10 and TOL[np.float32] == 1e-5
