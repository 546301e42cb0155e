"""GPT decoding against brute-force references: filtering, sampling, generate with and
without the cache, compiled greedy, beam search, best-of-n."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from models_testing import np_of, tokens

import fluxion as fx
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.models import (
    GPT,
    beam_search,
    best_of_n,
    filter_logits,
    generate,
    greedy_compiled,
    sample_logits,
    sequence_logprob,
)

V = 5
POS = ["learned", "sinusoidal", "rope"]


def tiny(pos="learned", vocab=V, seed=0, max_len=16):
    fx.manual_seed(seed)
    return GPT(vocab, d_model=16, num_heads=2, num_layers=2, max_len=max_len, pos=pos)


# ----------------------------------------------------------------------------- filtering


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_nucleus(logits, p):
    """The nucleus, written out: sort, accumulate, stop once the mass reaches p."""
    out = np.full_like(logits, -np.inf)
    for row, dest in zip(logits, out):
        probs = np_softmax(row.astype(np.float64))
        mass = 0.0
        for i in np.argsort(-row, kind="stable"):
            dest[i] = row[i]
            mass += probs[i]
            if mass >= p:
                break
    return out


LOGITS = np.log(
    np.array(
        [
            [0.5, 0.2, 0.15, 0.1, 0.05],
            [0.05, 0.1, 0.6, 0.05, 0.2],
            [0.2, 0.2, 0.2, 0.2, 0.2 + 1e-3],
            [0.97, 0.01, 0.01, 0.005, 0.005],
        ]
    )
).astype(np.float32)


# p between the cumulative sums of every row (at an exact tie float rounding decides)
@pytest.mark.parametrize("p", [0.1, 0.55, 0.62, 0.75, 0.87, 0.93, 0.985, 1.0])
def test_top_p_keeps_exactly_the_nucleus(p):
    got = np_of(filter_logits(fx.tensor(LOGITS), top_p=p))
    np.testing.assert_array_equal(got, np_nucleus(LOGITS, p))
    # the distribution sampled from: the model's, renormalized over the nucleus
    kept = np.isfinite(got)
    expected = np.where(kept, np_softmax(LOGITS), 0.0)
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(np_softmax(got), expected, rtol=1e-5, atol=1e-7)


def test_top_p_hand_checked():
    got = np.isfinite(np_of(filter_logits(fx.tensor(LOGITS), top_p=0.62)))
    np.testing.assert_array_equal(
        got,
        [
            [True, True, False, False, False],  # 0.5 < 0.62 <= 0.7
            [False, False, True, False, True],  # 0.6 < 0.62 <= 0.8
            [True, True, True, False, True],  # 4 of the 5 near-uniform ones (ties by index)
            [True, False, False, False, False],  # the top token alone is enough
        ],
    )


@pytest.mark.parametrize("k", [1, 2, 4, 5])
def test_top_k_and_combined(k):
    x = np.random.default_rng(0).standard_normal((3, 7)).astype(np.float32)
    got = np_of(filter_logits(fx.tensor(x), top_k=k))
    expected = np.where(x >= np.sort(x, -1)[:, -k][:, None], x, -np.inf)
    np.testing.assert_array_equal(got, expected)
    both = np_of(filter_logits(fx.tensor(x), top_k=k, top_p=0.7))
    np.testing.assert_array_equal(both, np_nucleus(expected, 0.7))


def test_filter_and_sample_under_jit_and_vmap():
    x = fx.tensor(np.random.default_rng(5).standard_normal((4, 9)).astype(np.float32))
    eager = np_of(filter_logits(x, top_k=5, top_p=0.8))
    compiled = fx.jit(lambda x: filter_logits(x, top_k=5, top_p=0.8))(x)
    mapped = fx.vmap(lambda row: filter_logits(row, top_k=5, top_p=0.8))(x)
    np.testing.assert_array_equal(np_of(compiled), eager)
    np.testing.assert_array_equal(np_of(mapped), eager)
    key = fx.random.key(2)
    drawn = fx.jit(lambda x, k: sample_logits(x, k, top_p=0.8))(x, key)
    np.testing.assert_array_equal(np_of(drawn), np_of(sample_logits(x, key, top_p=0.8)))


def test_filter_errors():
    with pytest.raises(InvalidArgumentError, match="top_p"):
        filter_logits(fx.tensor(LOGITS), top_p=0.0)
    with pytest.raises(InvalidArgumentError, match="top_k"):
        filter_logits(fx.tensor(LOGITS), top_k=0)


# ----------------------------------------------------------------------------- sampling


def test_top_k_1_and_cold_temperature_are_greedy():
    x = fx.tensor(np.random.default_rng(1).standard_normal((64, 9)).astype(np.float32))
    greedy = np_of(fx.argmax(x, axis=-1))
    for seed in range(3):
        key = fx.random.key(seed)
        np.testing.assert_array_equal(np_of(sample_logits(x, key, top_k=1)), greedy)
        np.testing.assert_array_equal(np_of(sample_logits(x, key, temperature=1e-4)), greedy)
        np.testing.assert_array_equal(np_of(sample_logits(x, key, temperature=0)), greedy)
        np.testing.assert_array_equal(np_of(sample_logits(x, key, top_p=1e-6)), greedy)


def test_samples_follow_the_filtered_distribution():
    n = 20000
    row = LOGITS[1]
    ids = np_of(sample_logits(fx.tensor(np.tile(row, (n, 1))), fx.random.key(0), top_p=0.7))
    freq = np.bincount(ids, minlength=V) / n
    expected = np.array([0, 0, 0.6, 0, 0.2]) / 0.8
    np.testing.assert_allclose(freq, expected, atol=0.015)
    ids = np_of(sample_logits(fx.tensor(np.tile(row, (n, 1))), fx.random.key(1), temperature=2.0))
    np.testing.assert_allclose(np.bincount(ids, minlength=V) / n, np_softmax(row / 2.0), atol=0.015)


# ----------------------------------------------------------------------------- generate


def full_logits_greedy(model, prompt, n):
    """Reference greedy decoding: full forward passes, NumPy argmax."""
    ids = np_of(prompt)
    for _ in range(n):
        nxt = np_of(model(fx.tensor(ids)))[:, -1].argmax(-1)
        ids = np.concatenate([ids, nxt[:, None]], axis=1)
    return ids


@pytest.mark.parametrize("pos", POS)
def test_generate_cache_equals_recomputation(pos):
    model = tiny(pos, vocab=11)
    prompt = tokens(np.random.default_rng(2), (3, 4), 11)
    expected = full_logits_greedy(model, prompt, 8)
    for use_cache in (True, False):
        got = generate(model, prompt, 8, temperature=0, use_cache=use_cache)
        np.testing.assert_array_equal(np_of(got), expected)
    key = fx.random.key(7)
    sampled = [
        np_of(generate(model, prompt, 8, key, top_k=4, top_p=0.9, use_cache=c))
        for c in (True, False)
    ]
    np.testing.assert_array_equal(sampled[0], sampled[1])
    np.testing.assert_array_equal(sampled[0][:, :4], np_of(prompt))
    assert (sampled[0] != expected).any()  # sampling does sample


def test_generate_eos_and_prompt_forms():
    model = tiny(vocab=11)
    expected = full_logits_greedy(model, fx.tensor([[3, 4]]), 6)[0]
    eos = int(expected[3])
    got = np_of(generate(model, fx.tensor([3, 4]), 6, temperature=0, eos_id=eos))
    assert got.shape == (1, 8)
    np.testing.assert_array_equal(got[0, :4], expected[:4])
    assert (got[0, 3:] == eos).all()


def test_generate_global_generator_and_errors():
    model = tiny(vocab=11, max_len=8)
    fx.manual_seed(3)
    a = np_of(generate(model, fx.tensor([[1]]), 5))
    fx.manual_seed(3)
    np.testing.assert_array_equal(np_of(generate(model, fx.tensor([[1]]), 5)), a)
    with pytest.raises(ShapeError, match="max_len"):
        generate(model, fx.tensor([[1, 2]]), 7)


@pytest.mark.parametrize("pos", POS)
def test_greedy_compiled_equals_eager_greedy(pos):
    model = tiny(pos, vocab=11)
    prompt = tokens(np.random.default_rng(3), (2, 3), 11)
    eager = np_of(generate(model, prompt, 7, temperature=0))
    np.testing.assert_array_equal(np_of(greedy_compiled(model, prompt, 7)), eager)
    np.testing.assert_array_equal(np_of(greedy_compiled(model, prompt, 1)), eager[:, :4])
    np.testing.assert_array_equal(np_of(greedy_compiled(model, prompt, 0)), np_of(prompt))


def test_greedy_compiled_is_one_compiled_loop():
    from fluxion.models.decoding import _greedy_jit

    model = tiny(vocab=11)
    prompt = tokens(np.random.default_rng(4), (1, 2), 11)
    before = _greedy_jit.stats.misses
    greedy_compiled(model, prompt, 6)
    greedy_compiled(model, (prompt + 1) % 11, 6)  # same shapes: the cached program
    assert _greedy_jit.stats.misses == before + 1
    graph = fx.make_graph(lambda m, p: _greedy_jit.fn(m, p, 6), model, prompt)
    assert "scan" in {eqn.prim.name for eqn in graph.eqns}


# ----------------------------------------------------------------------------- beam search


def exhaustive(model, prompt, steps, eos=None):
    """Every continuation of ``steps`` tokens (or shorter, ending at eos), best first,
    scored by one batched full forward pass."""
    seqs = []
    for n in range(1, steps + 1):
        for seq in itertools.product(range(model.vocab_size), repeat=n):
            if eos is not None and eos in seq[:-1]:
                continue
            if n < steps and (eos is None or seq[-1] != eos):
                continue
            seqs.append(list(seq))
    hyps = []
    for seq in seqs:
        ids = np.array([prompt + seq])
        hyps.append((prompt + seq, float(sequence_logprob(model, ids, len(prompt))[0])))
    return sorted(hyps, key=lambda h: -h[1])


@pytest.mark.parametrize("eos", [None, 2])
@pytest.mark.parametrize("steps, beam", [(2, V), (3, V * V)])
def test_full_beam_is_exhaustive(steps, beam, eos):
    model = tiny("rope", seed=1)
    prompt = [3, 1, 4]
    got = beam_search(model, fx.tensor(prompt), beam, steps, eos_id=eos)
    expected = exhaustive(model, prompt, steps, eos)[:beam]
    assert [ids for ids, _ in got] == [ids for ids, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)


def test_beam_of_one_is_greedy_and_length_penalty():
    model = tiny(seed=2)
    prompt = fx.tensor([[1, 2]])
    greedy = np_of(generate(model, prompt, 4, temperature=0))[0].tolist()
    ((ids, _),) = beam_search(model, prompt, 1, 4)
    assert ids == greedy
    eos = greedy[2]  # the likeliest first token: one hypothesis ends at once
    hyps = beam_search(model, prompt, 4, 3, eos_id=eos, length_penalty=1.0)
    assert any(len(ids) < 5 for ids, _ in hyps)  # some finished early at eos
    for ids, score in hyps:
        raw = sequence_logprob(model, np.array([ids]), 2, eos)[0]
        np.testing.assert_allclose(score, raw / (len(ids) - 2), rtol=1e-5)
    assert [s for _, s in hyps] == sorted((s for _, s in hyps), reverse=True)


def test_best_of_n():
    model = tiny(vocab=11, seed=3)
    key = fx.random.key(5)
    hyps = best_of_n(model, fx.tensor([1, 2, 3]), 6, 4, key, temperature=1.5)
    assert len(hyps) == 6 and all(ids[:3] == [1, 2, 3] and len(ids) == 7 for ids, _ in hyps)
    scores = [s for _, s in hyps]
    assert scores == sorted(scores, reverse=True)
    # the samples are generate's with the same key, and the scores their log-probs
    samples = np_of(generate(model, fx.tensor([[1, 2, 3]] * 6), 4, key, temperature=1.5))
    assert sorted(map(tuple, samples.tolist())) == sorted(tuple(ids) for ids, _ in hyps)
    for ids, score in hyps:
        logp = np_of(fx.log_softmax(model(fx.tensor([ids[:-1]])), axis=-1))[0]
        np.testing.assert_allclose(score, sum(logp[i - 1, ids[i]] for i in range(3, 7)), rtol=1e-5)
