"""Positional encodings: the sinusoidal table (a buffer), a learned table (a parameter),
and rotary embeddings (RoPE) checked against an independent complex-number reference."""

from __future__ import annotations

import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import ShapeError

nn = fx.nn


def test_sinusoidal_table_is_a_fixed_buffer():
    enc = nn.SinusoidalPositionalEncoding(6, max_len=10)
    pos = np.arange(10)[:, None]
    div = np.exp(np.arange(0, 6, 2) * -(np.log(10000.0) / 6))
    want = np.zeros((10, 6))
    want[:, 0::2], want[:, 1::2] = np.sin(pos * div), np.cos(pos * div)
    np.testing.assert_allclose(enc.pe.numpy(), want, rtol=1e-6, atol=1e-7)
    assert list(enc.parameters()) == [] and [n for n, _ in enc.named_buffers()] == ["pe"]
    assert fx.nn.module.trainable_mask(enc) == [False]
    x = fx.zeros((2, 4, 6))
    np.testing.assert_allclose(enc(x, offset=3).numpy()[1], want[3:7], rtol=1e-6, atol=1e-7)
    seq_first = nn.SinusoidalPositionalEncoding(6, max_len=10, batch_first=False)
    np.testing.assert_allclose(
        seq_first(fx.zeros((4, 2, 6))).numpy()[:, 1], want[:4], rtol=1e-6, atol=1e-7
    )
    with pytest.raises(ShapeError, match="max_len"):
        enc(fx.zeros((1, 11, 6)))
    odd = nn.SinusoidalPositionalEncoding(5, max_len=3)
    assert odd.pe.shape == (3, 5)


def test_learned_positional_embedding_trains():
    fx.manual_seed(0)
    pos = nn.LearnedPositionalEmbedding(8, 4)
    assert [n for n, _ in pos.named_parameters()] == ["weight"]
    assert abs(pos.weight.numpy().std() - 0.02) < 0.01
    x = fx.ones((2, 5, 4))
    out = pos(x)
    np.testing.assert_allclose(out.numpy()[0], 1 + pos.weight.numpy()[:5])
    out.sum().backward()
    g = pos.weight.grad.numpy()
    assert np.all(g[:5] == 2) and np.all(g[5:] == 0)
    with pytest.raises(ShapeError, match="max_len"):
        pos(fx.ones((1, 9, 4)))


def _rope_reference(x, dim, base=10000.0, offset=0):
    """Pairs (i, i + dim/2) as the complex number x_i + j x_{i+dim/2}, times e^{j p theta_i}."""
    x = np.asarray(x, np.float64)
    half = dim // 2
    theta = base ** (-np.arange(half) * 2.0 / dim)
    p = np.arange(offset, offset + x.shape[-2])[:, None]
    z = (x[..., :half] + 1j * x[..., half:dim]) * np.exp(1j * p * theta)
    return np.concatenate([z.real, z.imag, x[..., dim:]], axis=-1)


@pytest.mark.parametrize("dim,head", [(8, 8), (4, 8)])
def test_rotary_embedding_matches_the_reference(dim, head):
    rope = nn.RotaryEmbedding(dim)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 3, 5, head))
    k = rng.standard_normal((2, 3, 5, head))
    q2, k2 = rope(fx.tensor(q), fx.tensor(k), offset=2)
    np.testing.assert_allclose(
        q2.numpy(), _rope_reference(q, dim, offset=2), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        k2.numpy(), _rope_reference(k, dim, offset=2), rtol=1e-12, atol=1e-12
    )
    assert list(rope.parameters()) == [] and fx.tree_leaves(rope) == []


def test_rotary_scores_depend_on_relative_position_only():
    rope = nn.RotaryEmbedding(6)
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal(6), rng.standard_normal(6)
    seq_q = fx.tensor(np.tile(q, (7, 1)))
    seq_k = fx.tensor(np.tile(k, (7, 1)))
    rq, rk = rope(seq_q, seq_k)
    scores = rq.numpy() @ rk.numpy().T
    for d in range(-3, 4):
        diag = np.diagonal(scores, offset=d)
        np.testing.assert_allclose(diag, diag[0], rtol=1e-10)
    # the rotation is orthogonal: the gradient is the inverse rotation of the cotangent
    x = fx.tensor(rng.standard_normal((4, 6)))
    g = fx.grad(lambda x: (rope.rotate(x) * rope.rotate(x)).sum())(x)
    np.testing.assert_allclose(g.numpy(), 2 * x.numpy(), rtol=1e-12)
