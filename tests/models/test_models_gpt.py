"""GPT: shapes, causality, a PyTorch twin, the KV cache (eager and compiled), training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models_testing import lm_loss, np_of, tokens, train

import fluxion as fx
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.models import GPT, KVCache
from fluxion.models.layers import rope

V = 13
POS = ["learned", "sinusoidal", "rope"]


def tiny(pos="learned", layers=2, d=32, heads=4, max_len=16, seed=0):
    fx.manual_seed(seed)
    return GPT(V, d_model=d, num_heads=heads, num_layers=layers, max_len=max_len, pos=pos)


@pytest.mark.parametrize("pos", POS)
def test_shapes_and_parameter_names(pos):
    model = tiny(pos, layers=1)
    assert model(tokens(np.random.default_rng(0), (3, 7), V)).shape == (3, 7, V)
    names = set(model.state_dict())
    assert {"tok.weight", "head.weight", "ln_f.weight", "blocks.0.attn.in_proj_weight"} <= names
    assert "head.bias" not in names  # untied head without bias
    assert ("pos.weight" in names) == (pos == "learned")
    assert ("pos.pe" in names) == (pos == "sinusoidal")


@pytest.mark.parametrize("pos", POS)
def test_causal(pos):
    """Changing a later token leaves the logits of earlier positions alone."""
    model = tiny(pos)
    rng = np.random.default_rng(1)
    a = rng.integers(0, V, (2, 8))
    b = a.copy()
    b[:, 5:] = (b[:, 5:] + 1) % V
    la, lb = np_of(model(fx.tensor(a))), np_of(model(fx.tensor(b)))
    np.testing.assert_allclose(la[:, :5], lb[:, :5], atol=1e-6)
    assert np.abs(la[:, 5:] - lb[:, 5:]).max() > 1e-4


def test_errors():
    with pytest.raises(InvalidArgumentError, match="pos"):
        GPT(V, 16, 2, 1, pos="alibi")
    with pytest.raises(InvalidArgumentError, match="divisible"):
        GPT(V, 18, 4, 1)
    model = tiny(max_len=8)
    with pytest.raises(ShapeError, match="max_len"):
        model(fx.zeros((1, 9), dtype=fx.int64))
    with pytest.raises(ShapeError, match="batch"):
        model(fx.zeros((9,), dtype=fx.int64))
    cache = model.init_cache(1, 4)
    _, cache = model.forward_cached(fx.zeros((1, 3), dtype=fx.int64), cache)
    with pytest.raises(ShapeError, match="cache size"):
        model.forward_cached(fx.zeros((1, 2), dtype=fx.int64), cache)


# ----------------------------------------------------------------------------- PyTorch twin


class TorchBlock(torch.nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(d)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = torch.nn.LayerNorm(d)
        self.mlp = torch.nn.Module()
        self.mlp.fc1, self.mlp.fc2 = torch.nn.Linear(d, ff), torch.nn.Linear(ff, d)

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp.fc2(torch.nn.functional.gelu(self.mlp.fc1(self.ln2(x))))


class TorchGPT(torch.nn.Module):
    """The same architecture from torch.nn layers, with learned positions."""

    def __init__(self, vocab, d, heads, layers, max_len, ff):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(max_len, d)
        self.blocks = torch.nn.ModuleList([TorchBlock(d, heads, ff) for _ in range(layers)])
        self.ln_f = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T))
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)  # True: not allowed
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))


def test_matches_pytorch_twin():
    torch.manual_seed(0)
    ref = TorchGPT(V, 32, 4, 2, 16, 64)
    with torch.no_grad():  # non-trivial LayerNorm affine parameters and biases
        for name, p in ref.named_parameters():
            if name.endswith("bias") or "ln" in name:
                p.add_(0.1 * torch.randn_like(p))
    model = GPT(V, d_model=32, num_heads=4, num_layers=2, max_len=16, dim_feedforward=64)
    model.load_state_dict(ref.state_dict())
    idx = np.random.default_rng(2).integers(0, V, (3, 11))
    logits = model(fx.tensor(idx))
    expected = ref(torch.tensor(idx))
    np.testing.assert_allclose(np_of(logits), expected.detach().numpy(), rtol=1e-5, atol=1e-5)
    # and the gradients of a language-model loss, through backward()
    targets = np.random.default_rng(3).integers(0, V, (3, 11))
    lm_loss(logits, fx.tensor(targets)).backward()
    torch.nn.functional.cross_entropy(
        expected.reshape(-1, V), torch.tensor(targets).reshape(-1)
    ).backward()
    grads = dict(model.named_parameters())
    for name, p in ref.named_parameters():
        np.testing.assert_allclose(
            np_of(grads[name].grad), p.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name
        )


# ----------------------------------------------------------------------------- KV cache


def test_rope_helper_matches_rotary_embedding():
    x = fx.randn(2, 3, 6, 8)
    np.testing.assert_array_equal(
        np_of(rope(x, fx.arange(6) + 4)), np_of(fx.nn.RotaryEmbedding(8).rotate(x, offset=4))
    )


@pytest.mark.parametrize("pos", POS)
def test_cache_equals_full_recomputation(pos):
    """The prompt in chunks, then one token at a time: logits of the full forward."""
    model = tiny(pos)
    idx = tokens(np.random.default_rng(4), (2, 12), V)
    full = np_of(model(idx))
    cache = model.init_cache(2)
    assert isinstance(cache, KVCache) and cache.keys[0].shape == (2, 4, 16, 8)
    got = []
    for a, b in [(0, 5), (5, 8)] + [(i, i + 1) for i in range(8, 12)]:
        logits, cache = model.forward_cached(idx[:, a:b], cache)
        got.append(np_of(logits))
        assert int(cache.length) == b
    np.testing.assert_allclose(np.concatenate(got, axis=1), full, rtol=1e-5, atol=1e-5)


def test_cache_through_jit_and_fori_loop():
    """The cache is a pytree: a compiled step, and a fori_loop carrying it, agree with eager."""
    model = tiny("rope")
    idx = tokens(np.random.default_rng(5), (2, 9), V)
    full = np_of(model(idx))
    step = fx.jit(lambda m, t, c: m.forward_cached(t, c))
    logits, cache = step(model, idx[:, :4], model.init_cache(2, 9))
    np.testing.assert_allclose(np_of(logits), full[:, :4], rtol=1e-5, atol=1e-5)
    for i in range(4, 9):
        logits, cache = step(model, idx[:, i : i + 1], cache)
        np.testing.assert_allclose(np_of(logits)[:, 0], full[:, i], rtol=1e-5, atol=1e-5)
    assert step.stats.misses == 2  # one trace for the prompt, one for single tokens

    @fx.jit
    def last_logits(m, idx):
        _, cache = m.forward_cached(idx[:, :1], m.init_cache(2, 9))
        first = fx.zeros((2, 1, V))

        def body(i, carry):
            cache, _ = carry
            tok = fx.take(idx, fx.reshape(i, (1,)), axis=1)
            logits, cache = m.forward_cached(tok, cache)
            return cache, logits

        cache, logits = fx.fori_loop(1, 9, body, (cache, first))
        return logits, cache.length

    logits, length = last_logits(model, idx)
    assert int(length) == 9
    np.testing.assert_allclose(np_of(logits)[:, 0], full[:, -1], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("pos", POS)
def test_overfits_a_tiny_batch(pos):
    model = tiny(pos, layers=1)
    data = tokens(np.random.default_rng(6), (4, 9), V)
    first, last = train(model, lambda m: lm_loss(m(data[:, :-1]), data[:, 1:]), steps=40)
    assert first > 2.0 and last < 0.2 * first, (first, last)


def test_any_depth_and_dropout():
    shallow = tiny("learned", layers=0)
    idx = tokens(np.random.default_rng(7), (2, 5), V)
    logits, cache = shallow.forward_cached(idx, shallow.init_cache(2))
    np.testing.assert_allclose(np_of(logits), np_of(shallow(idx)), rtol=1e-6, atol=1e-6)
    fx.manual_seed(1)
    noisy = GPT(V, d_model=32, num_heads=4, num_layers=1, max_len=16, dropout=0.5)
    assert np.abs(np_of(noisy(idx)) - np_of(noisy(idx))).max() > 1e-3  # training mode
    clean = GPT(V, d_model=32, num_heads=4, num_layers=1, max_len=16)
    clean.load_state_dict(noisy.state_dict())
    np.testing.assert_array_equal(np_of(noisy.eval()(idx)), np_of(clean(idx)))


@pytest.mark.parametrize("pos", POS)
def test_compiled_value_and_grad(pos):
    """JAX-style training: value_and_grad under jit matches the eager one."""
    model = tiny(pos, layers=1)
    data = tokens(np.random.default_rng(8), (3, 8), V)

    def loss_fn(m, d):
        return lm_loss(m(d[:, :-1]), d[:, 1:])

    loss, grads = fx.jit(fx.value_and_grad(loss_fn))(model, data)
    loss_ref, grads_ref = fx.value_and_grad(loss_fn)(model, data)
    np.testing.assert_allclose(np_of(loss), np_of(loss_ref), rtol=1e-6)
    for a, b in zip(fx.tree_leaves(grads), fx.tree_leaves(grads_ref)):
        np.testing.assert_allclose(np_of(a), np_of(b), rtol=1e-5, atol=1e-6)
