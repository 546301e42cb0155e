"""Seq2Seq: teacher forcing, masks, training, greedy and beam decoding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from models_testing import lm_loss, np_of, tokens, train

import fluxion as fx
from fluxion.models import Seq2Seq, seq2seq_beam_search, seq2seq_greedy, shift_right

SV, TV, PAD, BOS, EOS = 10, 7, 0, 1, 2
POS = ["learned", "sinusoidal", "rope"]


def tiny(pos="sinusoidal", layers=1, seed=0):
    fx.manual_seed(seed)
    return Seq2Seq(SV, TV, d_model=32, num_heads=4, num_layers=layers, max_len=12, pos=pos)


def test_shift_right():
    tgt = fx.tensor([[5, 6, 2], [3, 2, 0]])
    np.testing.assert_array_equal(np_of(shift_right(tgt, BOS)), [[1, 5, 6], [1, 3, 2]])
    np.testing.assert_array_equal(np_of(shift_right(fx.tensor([4, 5]), 9)), [9, 4])
    assert shift_right(tgt, BOS).dtype == tgt.dtype


@pytest.mark.parametrize("pos", POS)
def test_shapes_and_causality(pos):
    model = tiny(pos, layers=2)
    rng = np.random.default_rng(0)
    src, tgt = tokens(rng, (3, 8), SV, low=3), rng.integers(3, TV, (3, 5))
    memory = model.encode(src)
    assert memory.shape == (3, 8, 32)
    logits = np_of(model(src, fx.tensor(tgt)))
    assert logits.shape == (3, 5, TV)
    np.testing.assert_allclose(logits, np_of(model.decode(memory, fx.tensor(tgt), src)), atol=1e-6)
    changed = tgt.copy()
    changed[:, 3:] = 3 + (changed[:, 3:] - 2) % (TV - 3)
    other = np_of(model(src, fx.tensor(changed)))
    np.testing.assert_allclose(other[:, :3], logits[:, :3], atol=1e-6)


@pytest.mark.parametrize("pos", POS)
def test_source_padding(pos):
    """A right-padded source gives the decoder what its unpadded self gives; pad-free
    sources are unaffected by the mask."""
    model = tiny(pos, layers=2)
    rng = np.random.default_rng(1)
    rows = [rng.integers(3, SV, n) for n in (2, 6, 4)]
    src = np.full((3, 6), PAD)
    for i, r in enumerate(rows):
        src[i, : len(r)] = r
    tgt = fx.tensor(rng.integers(3, TV, (3, 4)))
    logits = np_of(model(fx.tensor(src), tgt))
    for i, r in enumerate(rows):
        alone = np_of(model(fx.tensor(r[None]), tgt[i : i + 1]))[0]
        np.testing.assert_allclose(logits[i], alone, rtol=1e-5, atol=1e-5)
    unmasked = Seq2Seq(SV, TV, 32, 4, 2, max_len=12, pos=pos, pad_id=None)
    unmasked.load_state_dict(model.state_dict())
    full = fx.tensor(rng.integers(3, SV, (3, 6)))
    np.testing.assert_allclose(
        np_of(unmasked(full, tgt)), np_of(model(full, tgt)), rtol=1e-6, atol=1e-6
    )


def _copy_task(rng, n=8, length=4):
    """Reverse a sequence: src tokens 3..9, target tokens 3..6 (src mod 4 + 3), then eos."""
    src = rng.integers(3, SV, (n, length))
    answer = (src[:, ::-1] % 4) + 3
    tgt = np.concatenate([answer, np.full((n, 1), EOS)], axis=1)
    return fx.tensor(src), fx.tensor(tgt)


@pytest.mark.parametrize("pos", POS)
def test_overfits_with_teacher_forcing(pos):
    model = tiny(pos)
    src, tgt = _copy_task(np.random.default_rng(2))
    tgt_in = shift_right(tgt, BOS)
    first, last = train(model, lambda m: lm_loss(m(src, tgt_in), tgt), steps=60)
    assert last < 0.1 * first, (first, last)
    # trained to near-zero loss, greedy decoding reproduces the targets
    out = seq2seq_greedy(model, src, 5, BOS, EOS)
    np.testing.assert_array_equal(np_of(out), np_of(tgt))


def _step_by_step(model, src, n, bos):
    """Greedy decoding with nothing but full forward passes."""
    prefix = np.full((src.shape[0], 1), bos)
    for _ in range(n):
        logits = np_of(model(src, fx.tensor(prefix)))[:, -1]
        prefix = np.concatenate([prefix, logits.argmax(-1)[:, None]], axis=1)
    return prefix[:, 1:]


@pytest.mark.parametrize("pos", POS)
def test_greedy_equals_step_by_step_decoding(pos):
    model = tiny(pos, layers=2, seed=3)
    src = tokens(np.random.default_rng(4), (3, 5), SV, low=3)
    expected = _step_by_step(model, src, 6, BOS)
    got = seq2seq_greedy(model, src, 6, BOS)
    assert got.shape == (3, 6)
    np.testing.assert_array_equal(np_of(got), expected)
    # with eos: identical up to each row's first eos, then padding
    got = np_of(seq2seq_greedy(model, src, 6, BOS, eos_id=int(expected[0, 1])))
    eos = int(expected[0, 1])
    for row, ref in zip(got, expected):
        stop = list(ref).index(eos) + 1 if eos in ref else len(ref)
        np.testing.assert_array_equal(row[:stop], ref[:stop])
        assert (row[stop:] == PAD).all()


def _exhaustive(model, src, steps, bos, eos=None):
    """Every target sequence of up to ``steps`` tokens (ending at eos), scored by full passes."""
    hyps = []
    for n in range(1, steps + 1):
        for seq in itertools.product(range(TV), repeat=n):
            if eos is not None and (eos in seq[:-1] or (n < steps and seq[-1] != eos)):
                continue
            if eos is None and n < steps:
                continue
            tgt_in = fx.tensor([[bos, *seq[:-1]]])
            logp = np_of(fx.log_softmax(model(src[None], tgt_in), axis=-1))[0].astype(np.float64)
            hyps.append((list(seq), float(sum(logp[i, t] for i, t in enumerate(seq)))))
    return sorted(hyps, key=lambda h: -h[1])


@pytest.mark.parametrize("eos", [None, EOS])
def test_beam_search_with_full_beam_is_exhaustive(eos):
    model = tiny("learned", seed=5)
    src = tokens(np.random.default_rng(6), (4,), SV, low=3)
    expected = _exhaustive(model, src, 2, BOS, eos)[:TV]
    got = seq2seq_beam_search(model, src, beam_size=TV, max_len=2, bos_id=BOS, eos_id=eos)
    assert [ids for ids, _ in got] == [ids for ids, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)


def test_compiled_value_and_grad():
    model = tiny("learned")
    src, tgt = _copy_task(np.random.default_rng(7), n=3)

    def loss_fn(m):
        return lm_loss(m(src, shift_right(tgt, BOS)), tgt)

    loss, grads = fx.jit(fx.value_and_grad(loss_fn))(model)
    loss_ref, grads_ref = fx.value_and_grad(loss_fn)(model)
    np.testing.assert_allclose(np_of(loss), np_of(loss_ref), rtol=1e-6)
    for a, b in zip(fx.tree_leaves(grads), fx.tree_leaves(grads_ref)):
        np.testing.assert_allclose(np_of(a), np_of(b), rtol=1e-5, atol=1e-6)
