"""EncoderClassifier: shapes, padding masks, training."""

from __future__ import annotations

import numpy as np
import pytest
from models_testing import np_of, tokens, train

import fluxion as fx
from fluxion.errors import InvalidArgumentError
from fluxion.models import EncoderClassifier
from fluxion.nn import functional as F

V, C, PAD = 11, 3, 0
POS = ["learned", "sinusoidal", "rope"]


def tiny(pos="sinusoidal", pooling="mean", pad_id=PAD, layers=2, seed=0):
    fx.manual_seed(seed)
    return EncoderClassifier(
        V, C, d_model=32, num_heads=4, num_layers=layers, max_len=16, pos=pos,
        pooling=pooling, pad_id=pad_id,
    )  # fmt: skip


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("pos", POS)
def test_shapes(pos, pooling):
    model = tiny(pos, pooling)
    assert model(tokens(np.random.default_rng(0), (5, 9), V)).shape == (5, C)


def test_bad_arguments():
    with pytest.raises(InvalidArgumentError, match="pooling"):
        EncoderClassifier(V, C, pooling="max")
    with pytest.raises(InvalidArgumentError, match="pos"):
        EncoderClassifier(V, C, pos="relative")


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("pos", POS)
def test_padding_mask_changes_nothing_without_padding(pos, pooling):
    """The same weights with and without pad_id agree on inputs that hold no padding."""
    masked = tiny(pos, pooling, pad_id=PAD)
    plain = tiny(pos, pooling, pad_id=None)
    plain.load_state_dict(masked.state_dict())
    x = tokens(np.random.default_rng(1), (4, 7), V, low=1)
    np.testing.assert_allclose(np_of(masked(x)), np_of(plain(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("pos", POS)
def test_padded_equals_unpadded(pos, pooling):
    """Each right-padded row gets the logits of its unpadded self."""
    model = tiny(pos, pooling)
    rng = np.random.default_rng(2)
    lengths = [3, 7, 1, 5]
    rows = [rng.integers(1, V, n) for n in lengths]
    batch = np.full((len(rows), 9), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        batch[i, : len(r)] = r
    logits = np_of(model(fx.tensor(batch)))
    for i, r in enumerate(rows):
        alone = np_of(model(fx.tensor(r[None])))[0]
        np.testing.assert_allclose(logits[i], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_overfits_a_tiny_batch(pooling):
    model = tiny("sinusoidal", pooling, layers=1)
    rng = np.random.default_rng(3)
    x = tokens(rng, (12, 6), V, low=1)
    y = fx.tensor(rng.integers(0, C, 12))
    first, last = train(model, lambda m: F.cross_entropy(m(x), y), steps=40)
    assert last < 0.2 * first, (first, last)


def test_compiled_value_and_grad():
    model = tiny("rope", "last")
    rng = np.random.default_rng(4)
    x = np.full((4, 7), PAD)
    x[:, :5] = rng.integers(1, V, (4, 5))
    x, y = fx.tensor(x), fx.tensor([0, 1, 2, 1])

    def loss_fn(m):
        return F.cross_entropy(m(x), y)

    loss, grads = fx.jit(fx.value_and_grad(loss_fn))(model)
    loss_ref, grads_ref = fx.value_and_grad(loss_fn)(model)
    np.testing.assert_allclose(np_of(loss), np_of(loss_ref), rtol=1e-6)
    for a, b in zip(fx.tree_leaves(grads), fx.tree_leaves(grads_ref)):
        np.testing.assert_allclose(np_of(a), np_of(b), rtol=1e-5, atol=1e-6)
