"""A decoder-only language model (GPT): token embeddings, positions, pre-norm causal
blocks, a final LayerNorm and an untied head without bias.

>>> model = GPT(vocab_size=11, d_model=16, num_heads=2, num_layers=1, max_len=8)
>>> tokens = fx.tensor([[1, 2, 3]])
>>> model(tokens).shape
(1, 3, 11)

With a KV cache each step feeds only the new tokens; the result is the same as
recomputing the whole prefix:

>>> cache = model.init_cache(batch_size=1)
>>> logits, cache = model.forward_cached(tokens, cache)      # the prompt at once
>>> logits, cache = model.forward_cached(fx.tensor([[4]]), cache)
>>> int(cache.length)
4
"""

from __future__ import annotations

from typing import NamedTuple

from fluxion import ops
from fluxion.core.tensor import Tensor
from fluxion.errors import ShapeError
from fluxion.models.layers import (
    Block,
    add_positions,
    causal_mask,
    check_length,
    check_model,
    check_tokens,
    concrete_int,
    position_table,
)
from fluxion.nn.containers import ModuleList
from fluxion.nn.layers import Dropout, Embedding, LayerNorm, Linear
from fluxion.nn.module import Module


class KVCache(NamedTuple):
    """Keys and values of every layer, preallocated, and how many positions are filled.

    A pytree: it can be the carry of ``fx.fori_loop`` and an argument/result of ``fx.jit``.
    ``keys[l]``/``values[l]``: (batch, heads, max_len, head_dim); ``length``: int64 scalar.
    """

    keys: tuple
    values: tuple
    length: Tensor


class GPT(Module):
    """``GPT(vocab_size, d_model=128, num_heads=4, num_layers=4, max_len=256,
    dim_feedforward=None (4 * d_model), pos="learned" | "sinusoidal" | "rope", dropout=0.0)``.

    Submodules: ``tok`` (Embedding), ``pos`` (the position table, None for RoPE),
    ``blocks.i`` (``ln1``, ``attn``, ``ln2``, ``mlp.fc1``, ``mlp.fc2``), ``ln_f``, ``head``.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 4,
        max_len: int = 256,
        dim_feedforward: int | None = None,
        pos: str = "learned",
        dropout: float = 0.0,
    ):
        super().__init__()
        vocabs = {"vocab_size": vocab_size}
        ff = check_model(
            "GPT", vocabs, d_model, num_heads, num_layers, max_len, dim_feedforward, pos, dropout
        )
        self.vocab_size, self.d_model, self.num_heads = vocab_size, d_model, num_heads
        self.num_layers, self.max_len, self.pos_kind = num_layers, max_len, pos
        self.tok = Embedding(vocab_size, d_model)
        self.pos = position_table(pos, max_len, d_model)
        self.drop = Dropout(dropout)
        self.blocks = ModuleList(
            [Block(d_model, num_heads, ff, dropout, rope=pos == "rope") for _ in range(num_layers)]
        )
        self.ln_f = LayerNorm(d_model)
        self.head = Linear(d_model, vocab_size, bias=False)

    def _embed(self, tokens: Tensor, positions: Tensor) -> Tensor:
        return self.drop(add_positions(self.tok(tokens), self.pos, positions))

    def forward(self, tokens):
        """Logits (B, T, vocab_size) of the next token at every position of tokens (B, T)."""
        tokens = check_tokens("GPT", tokens)
        T = tokens.shape[1]
        check_length("GPT", self.pos_kind, T, self.max_len)
        positions, mask = ops.arange(T), causal_mask(T)
        x = self._embed(tokens, positions)
        for block in self.blocks:
            x = block(x, mask=mask, positions=positions)
        return self.head(self.ln_f(x))

    def init_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_len`` tokens
        (default: the model's max_len)."""
        size = self.max_len if max_len is None else int(max_len)
        check_length("GPT.init_cache", self.pos_kind, size, self.max_len)
        dtype = self.head.weight._np_dtype
        shape = (batch_size, self.num_heads, size, self.d_model // self.num_heads)
        keys = tuple(ops.zeros(shape, dtype=dtype) for _ in range(self.num_layers))
        values = tuple(ops.zeros(shape, dtype=dtype) for _ in range(self.num_layers))
        return KVCache(keys, values, ops.asarray(0, dtype="int64"))

    def forward_cached(self, tokens, cache: KVCache):
        """Logits (B, t, V) for tokens (B, t) that follow the ``cache.length`` cached ones,
        and the cache with them appended. Works eagerly and under ``fx.jit``/``fori_loop``
        (the length may be traced)."""
        tokens = check_tokens("GPT.forward_cached", tokens)
        B, t = tokens.shape
        if cache.keys and cache.keys[0].shape[0] != B:
            raise ShapeError(
                f"GPT.forward_cached: the cache holds {cache.keys[0].shape[0]} sequences, the "
                f"tokens {B}; build it with init_cache(batch_size={B})"
            )
        start = concrete_int(cache.length)
        size = cache.keys[0].shape[2] if cache.keys else None  # no layers: nothing to fill
        if start is not None and size is not None and start + t > size:
            raise ShapeError(
                f"GPT.forward_cached: {start} cached + {t} new tokens exceed the cache size "
                f"{size}; build it with init_cache(batch_size, max_len=...) large enough"
            )
        end = None if start is None else start + t
        check_length("GPT.forward_cached", self.pos_kind, end, self.max_len)
        positions = ops.arange(t) + cache.length
        x = self._embed(tokens, positions)
        keys, values = [], []
        for block, k, v in zip(self.blocks, cache.keys, cache.values):
            x, k, v = block.forward_cached(x, k, v, cache.length, positions)
            keys.append(k), values.append(v)
        logits = self.head(self.ln_f(x))
        return logits, KVCache(tuple(keys), tuple(values), cache.length + t)

    def extra_repr(self) -> str:
        return (
            f"vocab_size={self.vocab_size}, d_model={self.d_model}, num_heads={self.num_heads}, "
            f"num_layers={self.num_layers}, max_len={self.max_len}, pos={self.pos_kind!r}"
        )
