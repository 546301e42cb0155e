"""Decoding: sampling with temperature / top-k / top-p, greedy (eager and compiled),
beam search and best-of-n, for ``GPT`` and ``Seq2Seq``.

GPT decoders return the prompt followed by the new tokens (as ``generate`` does);
seq2seq decoders return the target tokens after ``bos``. Scores are sums of the
model's log-probabilities (temperature 1, unfiltered) of the generated tokens.

>>> model = GPT(vocab_size=10, d_model=16, num_heads=2, num_layers=1, max_len=12)
>>> prompt = fx.tensor([[1, 2, 3]])
>>> greedy = generate(model, prompt, max_new_tokens=4, temperature=0)
>>> sampled = generate(model, prompt, 4, key=fx.random.key(0), top_p=0.9)
>>> bool((greedy_compiled(model, prompt, 4) == greedy).all())
True
>>> best_ids, best_score = beam_search(model, prompt, beam_size=3, max_new_tokens=4)[0]
"""

from __future__ import annotations

import numpy as np

import fluxion.ops.random as fxr
from fluxion import ops
from fluxion.core.checks import check_count, check_int, check_nonnegative, check_number, check_size
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import no_grad
from fluxion.errors import ArgumentTypeError, IndexOutOfRangeError, ShapeError
from fluxion.models.gpt import GPT, KVCache
from fluxion.models.layers import check_length, check_token, check_tokens
from fluxion.transforms.control import fori_loop
from fluxion.transforms.jit import jit

# ----------------------------------------------------------------------------- sampling


def filter_logits(logits, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """``logits`` with every token outside the top-k / nucleus set to -inf.

    top-k keeps the ``top_k`` largest logits (exactly k, ties broken by position);
    top-p then keeps the smallest set of the remaining tokens, most likely first, whose
    probability adds up to at least ``top_p``: a token stays when the tokens ranked
    above it hold less than ``top_p``, so the most likely token always stays.
    Traceable (jit, vmap): sorting is ``fx.argsort``.

    >>> filter_logits(fx.tensor([[1.0, 3.0, 2.0]]), top_k=2)
    [[-inf   3.   2.]]:f32[1,3]:cpu(0)
    """
    logits = to_tensor(logits)
    _, top_k, top_p = _check_sampling("filter_logits", 1.0, top_k, top_p)
    return _filter_logits(logits, top_k, top_p)


def _check_sampling(op: str, temperature, top_k, top_p):
    """``temperature`` >= 0 (0: greedy), ``top_k`` >= 1 or None, ``top_p`` in (0, 1] or None."""
    temperature = check_nonnegative(op, "temperature", temperature)
    top_k = None if top_k is None else check_count(op, "top_k", top_k)
    top_p = None if top_p is None else check_number(op, "top_p", top_p, 0.0, 1.0, low_open=True)
    return temperature, top_k, top_p


def _filter_logits(logits: Tensor, top_k, top_p) -> Tensor:
    if top_k is None and top_p is None:
        return logits
    V = logits.shape[-1]
    order = ops.argsort(logits, axis=-1, descending=True)
    ranked = ops.take_along_axis(logits, order, axis=-1)
    rank = ops.arange(V)
    keep = ops.broadcast_to(rank < (V if top_k is None else min(top_k, V)), ranked.shape)
    if top_p is not None and top_p < 1.0:
        probs = ops.softmax(ops.where(keep, ranked, -np.inf), axis=-1)
        above = ops.cumsum(probs, axis=-1)[..., :-1]  # the mass of the tokens ranked higher
        above = ops.concatenate([ops.zeros_like(probs[..., :1]), above], axis=-1)
        keep = ops.logical_and(keep, ops.logical_or(above < top_p, rank == 0))
    inverse = ops.argsort(order, axis=-1)  # back from ranks to token positions
    return ops.where(ops.take_along_axis(keep, inverse, axis=-1), logits, -np.inf)


def sample_logits(
    logits, key, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """Token ids (B,) drawn from logits (B, V): divided by ``temperature``, filtered by
    ``top_k``/``top_p`` (``filter_logits``), then ``fx.random.categorical``.
    ``temperature=0`` is greedy (argmax; the key is not used)."""
    logits = to_tensor(logits)
    temperature, top_k, top_p = _check_sampling("sample_logits", temperature, top_k, top_p)
    if temperature != 0:  # sampling needs a key (or temperature=0: greedy)
        key = fxr.check_key("sample_logits", key)
    return _sample(logits, key, temperature, top_k, top_p)


def _sample(logits: Tensor, key, temperature: float, top_k, top_p) -> Tensor:
    if temperature == 0:
        return ops.argmax(logits, axis=-1)
    filtered = _filter_logits(logits / temperature, top_k, top_p)
    return fxr.categorical(key, filtered, axis=-1)


def _fresh_key() -> Tensor:
    """A key drawn from the global generator (``fx.manual_seed``)."""
    return fxr.key(int(fxr.global_randint(0, 2**31 - 1, ()).item()))


def _prompt(op: str, model, prompt_ids, name: str = "prompt_ids") -> Tensor:
    """The prompt as int64 (B, T0) token ids of ``model``'s vocabulary (a GPT)."""
    if not isinstance(model, GPT):
        raise ArgumentTypeError(f"{op}: expected a fluxion.models.GPT, got {type(model).__name__}")
    prompt = to_tensor(prompt_ids)
    if prompt.ndim == 1:
        prompt = prompt[None]
    prompt = _ids(op, prompt, name, model.vocab_size)
    if prompt.shape[1] == 0:
        raise ShapeError(f"{op}: the prompt is empty; give at least one token (e.g. a bos id)")
    return prompt


def _ids(op: str, ids, name: str, vocab_size: int) -> Tensor:
    """(B, T) integer token ids below ``vocab_size``, as int64."""
    ids = check_tokens(op, ids, name)
    values = ids.numpy()
    if values.size and (values.min() < 0 or values.max() >= vocab_size):
        bad = values.min() if values.min() < 0 else values.max()
        raise IndexOutOfRangeError(
            f"{op}: {name} holds the token {bad}, outside the vocabulary [0, {vocab_size})"
        )
    return ids.astype(np.int64)


def _check_length(op: str, model, total: int) -> None:
    check_length(op, model.pos_kind, total, model.max_len)


def _eos(op: str, eos_id, vocab_size: int):
    return None if eos_id is None else check_token(op, "eos_id", eos_id, vocab_size)


def generate(
    model: GPT,
    prompt_ids,
    max_new_tokens: int,
    key=None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    eos_id: int | None = None,
) -> Tensor:
    """The prompt (B, T0) followed by ``max_new_tokens`` tokens: (B, T0 + max_new_tokens).

    Each step samples with ``sample_logits`` (``temperature=0``: greedy) using a new
    key split off ``key`` (default: one drawn from the global generator). With
    ``use_cache`` one ``forward_cached`` call per token; without, the whole prefix is
    recomputed each step (same tokens). With ``eos_id`` a sequence that produced it
    repeats ``eos_id`` from there on, and the loop stops once all have.
    The model's mode is left alone: call ``model.eval()`` first if it has dropout.
    """
    return _generate("generate", model, prompt_ids, max_new_tokens, key, temperature, top_k,
                     top_p, use_cache, eos_id)  # fmt: skip


def _generate(op, model, prompt_ids, max_new_tokens, key, temperature, top_k, top_p, use_cache,
              eos_id) -> Tensor:  # fmt: skip
    prompt = _prompt(op, model, prompt_ids)
    max_new_tokens = check_size(op, "max_new_tokens", max_new_tokens)
    temperature, top_k, top_p = _check_sampling(op, temperature, top_k, top_p)
    eos_id = _eos(op, eos_id, model.vocab_size)
    B, T0 = prompt.shape
    total = T0 + max_new_tokens
    _check_length(op, model, total)
    if key is not None:
        key = fxr.check_key(op, key)
    elif temperature != 0:
        key = _fresh_key()
    out, done = [prompt], None
    with no_grad():
        if use_cache:
            logits, cache = model.forward_cached(prompt, model.init_cache(B, total))
        else:
            logits = model(prompt)
        for step in range(max_new_tokens):
            sub = None
            if temperature != 0:
                keys = fxr.split(key)
                key, sub = keys[0], keys[1]
            tok = _sample(logits[:, -1], sub, temperature, top_k, top_p)
            if eos_id is not None:
                tok = tok if done is None else ops.where(done, eos_id, tok)
                done = tok == eos_id
            out.append(ops.expand_dims(tok, 1))
            left = max_new_tokens - step - 1
            if not left:
                break
            if done is not None and bool(done.all()):
                out.append(ops.full((B, left), eos_id, dtype=np.int64))
                break
            if use_cache:
                logits, cache = model.forward_cached(out[-1], cache)
            else:
                logits = model(ops.concatenate(out, axis=1))
    return ops.concatenate(out, axis=1)


def _greedy_program(model: GPT, prompt: Tensor, max_new_tokens: int) -> Tensor:
    B, T0 = prompt.shape
    total = T0 + max_new_tokens
    logits, cache = model.forward_cached(prompt, model.init_cache(B, total))
    tok = ops.argmax(logits[:, -1], axis=-1)
    buf = ops.concatenate([prompt, ops.zeros((B, max_new_tokens), dtype=np.int64)], axis=1)
    columns = ops.arange(total)

    def step(i, carry):
        buf, tok, cache = carry
        buf = ops.where(columns == T0 + i, ops.expand_dims(tok, 1), buf)
        logits, cache = model.forward_cached(ops.expand_dims(tok, 1), cache)
        return buf, ops.argmax(logits[:, -1], axis=-1), cache

    buf, tok, _ = fori_loop(0, max_new_tokens - 1, step, (buf, tok, cache))
    return ops.where(columns == total - 1, ops.expand_dims(tok, 1), buf)


_greedy_jit = jit(_greedy_program, static_argnums=(2,))


def greedy_compiled(model: GPT, prompt_ids, max_new_tokens: int) -> Tensor:
    """Greedy decoding as one compiled program: ``fx.jit`` of a ``fx.fori_loop`` that
    carries a fixed-size token buffer and the KV cache. Gives the tokens of
    ``generate(..., temperature=0)``; compiled once per (model structure, prompt shape,
    max_new_tokens)."""
    prompt = _prompt("greedy_compiled", model, prompt_ids)
    n = check_size("greedy_compiled", "max_new_tokens", max_new_tokens)
    _check_length("greedy_compiled", model, prompt.shape[1] + n)
    if n == 0:
        return prompt
    with no_grad():
        return _greedy_jit(model, prompt, n)


# ----------------------------------------------------------------------------- scoring


def sequence_logprob(model: GPT, ids, start: int, eos_id: int | None = None) -> np.ndarray:
    """log p(ids[:, start:] | ids[:, :start]) under the model, per row (float64, (B,)).
    With ``eos_id`` a row's tokens after its first eos (at or after ``start``) do not count."""
    ids = _ids("sequence_logprob", to_tensor(ids), "ids", model.vocab_size)
    start = check_int("sequence_logprob", "start", start, 1, ids.shape[1])
    eos_id = _eos("sequence_logprob", eos_id, model.vocab_size)
    with no_grad():
        logp = ops.log_softmax(model(ids[:, :-1]), axis=-1).numpy().astype(np.float64)
    tokens = ids.numpy()
    picked = np.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0][:, start - 1 :]
    if eos_id is not None:
        is_eos = tokens[:, start:] == eos_id
        after = np.cumsum(is_eos, axis=1) - is_eos > 0  # strictly after the first eos
        picked = np.where(after, 0.0, picked)
    return picked.sum(axis=1)


def _trim(ids: list, start: int, eos_id) -> list:
    if eos_id is None or eos_id not in ids[start:]:
        return ids
    return ids[: ids.index(eos_id, start) + 1]


def best_of_n(
    model: GPT,
    prompt_ids,
    n: int,
    max_new_tokens: int,
    key=None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
) -> list[tuple[list[int], float]]:
    """Sample ``n`` continuations of one prompt (in one batch) and rank them by their
    total log-probability under the model: ``[(ids, score), ...]`` best first, ids the
    prompt and continuation (cut after eos when ``eos_id`` is given)."""
    prompt = _prompt("best_of_n", model, prompt_ids)
    if prompt.shape[0] != 1:
        raise ShapeError(f"best_of_n: give one prompt, (T0,) or (1, T0); got {prompt.shape}")
    T0 = prompt.shape[1]
    batch = ops.broadcast_to(prompt, (check_count("best_of_n", "n", n), T0))
    ids = _generate("best_of_n", model, batch, max_new_tokens, key, temperature, top_k, top_p,
                    True, eos_id)  # fmt: skip
    scores = sequence_logprob(model, ids, T0, eos_id)
    rows = [(_trim(row, T0, eos_id), float(s)) for row, s in zip(ids.numpy().tolist(), scores)]
    return sorted(rows, key=lambda h: -h[1])


# ----------------------------------------------------------------------------- beam search


def _check_beams(op: str, beam_size, eos_id, length_penalty, vocab_size: int):
    return (
        check_count(op, "beam_size", beam_size),
        _eos(op, eos_id, vocab_size),
        check_number(op, "length_penalty", length_penalty),
    )


def _beam_search(first_logp, state, advance, beam_size, steps, eos_id, length_penalty):
    """Beam search over log-probabilities given by the model.

    ``first_logp`` (V,): the first step's; ``advance(state, parents, tokens)`` extends
    the chosen beams (rows ``parents`` of the last call, each with its token) and returns
    their next log-probs (n, V) and the new state. Each step keeps the ``beam_size``
    best extensions; one that ends in ``eos_id`` is finished and kept aside. Returns
    the generated token lists with their scores, best first.
    """
    alive, logp, finished = [([], 0.0)], first_logp[None], []
    for step in range(steps):
        V = logp.shape[-1]
        scores = (np.array([s for _, s in alive])[:, None] + logp).ravel()
        beams, parents, tokens = [], [], []
        for j in np.argsort(-scores, kind="stable")[:beam_size]:
            b, tok = divmod(int(j), V)
            hyp = (alive[b][0] + [tok], float(scores[j]))
            if eos_id is not None and tok == eos_id:
                finished.append(hyp)
            else:
                beams.append(hyp), parents.append(b), tokens.append(tok)
        alive = beams
        if not alive or step == steps - 1:
            break
        logp, state = advance(state, np.array(parents), np.array(tokens))
    hyps = finished + alive

    def final(h):
        seq, score = h
        return seq, score / len(seq) ** length_penalty if length_penalty > 0 and seq else score

    return sorted(map(final, hyps), key=lambda h: -h[1])[:beam_size]


def _logp_rows(logits: Tensor) -> np.ndarray:
    return ops.log_softmax(logits, axis=-1).numpy().astype(np.float64)


def beam_search(
    model: GPT,
    prompt_ids,
    beam_size: int,
    max_new_tokens: int,
    eos_id: int | None = None,
    length_penalty: float = 0.0,
) -> list[tuple[list[int], float]]:
    """Beam search from one prompt ((T0,) or (1, T0)): up to ``beam_size`` hypotheses
    ``(ids, score)``, best first; ids are the prompt and continuation, score the sum of
    the continuation's log-probs, divided by its length ** ``length_penalty`` when that
    is > 0 (the search itself ranks by the sum). Hypotheses that produced ``eos_id`` are
    finished and kept; the beams share one batched KV cache.

    With ``beam_size`` >= V ** (max_new_tokens - 1) it is exhaustive: the result is the
    best ``beam_size`` sequences of all.
    """
    op = "beam_search"
    prompt = _prompt(op, model, prompt_ids)
    if prompt.shape[0] != 1:
        raise ShapeError(f"beam_search: give one prompt, (T0,) or (1, T0); got {prompt.shape}")
    T0, steps = prompt.shape[1], check_size(op, "max_new_tokens", max_new_tokens)
    beam_size, eos_id, length_penalty = _check_beams(
        op, beam_size, eos_id, length_penalty, model.vocab_size
    )
    _check_length(op, model, T0 + steps)

    def advance(cache: KVCache, parents, tokens):
        rows = ops.asarray(parents)
        cache = KVCache(
            tuple(ops.take(k, rows, axis=0) for k in cache.keys),
            tuple(ops.take(v, rows, axis=0) for v in cache.values),
            cache.length,
        )
        logits, cache = model.forward_cached(ops.asarray(tokens[:, None]), cache)
        return _logp_rows(logits[:, -1]), cache

    with no_grad():
        logits, cache = model.forward_cached(prompt, model.init_cache(1, T0 + steps))
        hyps = _beam_search(
            _logp_rows(logits[0, -1]), cache, advance, beam_size, steps, eos_id, length_penalty
        )
    head = prompt.numpy()[0].tolist()
    return [(head + seq, score) for seq, score in hyps]


# ----------------------------------------------------------------------------- seq2seq


def _source(op: str, model, src) -> Tensor:
    src = to_tensor(src)
    return _ids(op, src[None] if src.ndim == 1 else src, "src", model.src_vocab)


def seq2seq_greedy(model, src, max_len: int, bos_id: int, eos_id: int | None = None) -> Tensor:
    """Greedy decoding of a batch of sources (B, S): the ``max_len`` target tokens after
    bos, (B, max_len). The source is encoded once; each step decodes the whole prefix.
    After a row's ``eos_id`` come padding tokens (the model's pad_id, else eos_id)."""
    op = "seq2seq_greedy"
    src = _source(op, model, src)
    B, n = src.shape[0], check_size(op, "max_len", max_len)
    bos_id = check_token(op, "bos_id", bos_id, model.tgt_vocab)
    eos_id = _eos(op, eos_id, model.tgt_vocab)
    check_length(op, model.pos_kind, n, model.max_len)
    fill = eos_id if model.pad_id is None else model.pad_id
    tgt, done = ops.full((B, 1), bos_id, dtype=np.int64), None
    with no_grad():
        memory = model.encode(src)
        for step in range(n):
            tok = ops.argmax(model.decode(memory, tgt, src)[:, -1], axis=-1)
            if eos_id is not None:
                tok = tok if done is None else ops.where(done, fill, tok)
                done = tok == eos_id if done is None else ops.logical_or(done, tok == eos_id)
            tgt = ops.concatenate([tgt, ops.expand_dims(tok, 1)], axis=1)
            if done is not None and bool(done.all()) and step < n - 1:
                tgt = ops.concatenate([tgt, ops.full((B, n - 1 - step), fill, np.int64)], 1)
                break
    return tgt[:, 1:]


def seq2seq_beam_search(
    model,
    src,
    beam_size: int,
    max_len: int,
    bos_id: int,
    eos_id: int | None = None,
    length_penalty: float = 0.0,
) -> list[tuple[list[int], float]]:
    """Beam search for one source (S,) or (1, S): ``[(ids, score), ...]`` best first,
    ids the target tokens after bos (ending in eos when finished), scores as in
    ``beam_search``."""
    op = "seq2seq_beam_search"
    src = _source(op, model, src)
    if src.shape[0] != 1:
        raise ShapeError(f"seq2seq_beam_search: give one source; got {src.shape}")
    n = check_size(op, "max_len", max_len)
    bos_id = check_token(op, "bos_id", bos_id, model.tgt_vocab)
    beam_size, eos_id, length_penalty = _check_beams(
        op, beam_size, eos_id, length_penalty, model.tgt_vocab
    )
    check_length(op, model.pos_kind, n, model.max_len)

    with no_grad():
        memory = model.encode(src)

        def logp_of(prefixes):
            rows = ops.zeros((len(prefixes),), dtype=np.int64)
            mem, s = ops.take(memory, rows, axis=0), ops.take(src, rows, axis=0)
            tgt = ops.asarray(np.array(prefixes, dtype=np.int64))
            return _logp_rows(model.decode(mem, tgt, s)[:, -1])

        def advance(prefixes, parents, tokens):
            prefixes = [prefixes[p] + [int(t)] for p, t in zip(parents, tokens)]
            return logp_of(prefixes), prefixes

        first = logp_of([[bos_id]])[0]
        return _beam_search(first, [[bos_id]], advance, beam_size, n, eos_id, length_penalty)
