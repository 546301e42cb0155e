"""The pieces the models share: attention (with a KV cache and RoPE), the pre-norm
block, position tables and masks.

Masks follow ``F.scaled_dot_product_attention``: bool, True = the key takes part.
Attention keeps PyTorch ``nn.MultiheadAttention``'s parameter names
(``in_proj_weight``, ``in_proj_bias``, ``out_proj``), so a block loads a PyTorch
twin's weights by name.

>>> block = Block(16, num_heads=2, dim_feedforward=32)
>>> x = fx.randn(2, 5, 16)
>>> block(x, mask=causal_mask(5), positions=fx.arange(5)).shape
(2, 5, 16)
"""

from __future__ import annotations

import numpy as np

from fluxion import ops
from fluxion.core import dtypes
from fluxion.core.checks import (
    check_allocation,
    check_choice,
    check_count,
    check_int,
    check_probability,
    check_size,
)
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.errors import DTypeError, InvalidArgumentError, ShapeError, TracerError
from fluxion.nn import functional as F
from fluxion.nn import init
from fluxion.nn.attention import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from fluxion.nn.layers import Dropout, LayerNorm, Linear
from fluxion.nn.module import Module, Parameter

POSITIONS = ("learned", "sinusoidal", "rope")
ROPE_BASE = 10000.0


def concrete_int(x) -> int | None:
    """The value of an integer scalar when it is known (eager), None when traced."""
    if isinstance(x, int):
        return x
    try:
        return int(to_tensor(x)._concrete())
    except TracerError:
        return None


def check_tokens(owner: str, tokens, name: str = "tokens") -> Tensor:
    """An integer (B, T) tensor of token ids, or a teaching error."""
    tokens = to_tensor(tokens)
    if tokens._np_dtype not in dtypes.INTEGERS:
        raise DTypeError(
            f"{owner}: {name} must be integer token ids, got {tokens.dtype}; "
            "cast with .astype(fx.int64)"
        )
    if tokens.ndim != 2:
        raise ShapeError(
            f"{owner}: {name} must have shape (batch, length), got {tuple(tokens.shape)}; "
            "add a batch axis with x[None]"
        )
    return tokens


def check_length(owner: str, pos: str, end: int | None, max_len: int) -> None:
    """Positions up to ``end`` must fit the position table (RoPE has none)."""
    if pos != "rope" and end is not None and end > max_len:
        raise ShapeError(
            f"{owner}: positions up to {end} are needed, but max_len is {max_len}; build the "
            f"model with a larger max_len (or use pos='rope', which has no table)"
        )


# ----------------------------------------------------------------------------- positions


def position_table(pos: str, max_len: int, d_model: int):
    """The module that holds the positions added to the embeddings (None for RoPE)."""
    if pos == "learned":
        return LearnedPositionalEmbedding(max_len, d_model)
    if pos == "sinusoidal":
        return SinusoidalPositionalEncoding(d_model, max_len)
    return None


def add_positions(x: Tensor, table, positions: Tensor) -> Tensor:
    """``x + table[positions]``; ``positions`` may be traced (a KV cache's offset)."""
    if table is None:
        return x
    rows = table.weight if isinstance(table, LearnedPositionalEmbedding) else table.pe
    return x + ops.take(rows, positions, axis=0)


def rope(x: Tensor, positions: Tensor, base: float = ROPE_BASE) -> Tensor:
    """Rotary embedding of x (..., L, D) at integer ``positions`` (L,), which may be traced.

    The convention of ``fx.nn.RotaryEmbedding`` (pairs (i, i + D/2), angle
    ``p * base^(-2i/D)``, angles in float64), computed with ops so the offset can be a
    tensor.
    """
    D = x.shape[-1]
    inv_freq = base ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    angles = ops.expand_dims(positions.astype(np.float64), -1) * ops.asarray(inv_freq)
    angles = ops.concatenate([angles, angles], axis=-1)
    cos, sin = ops.cos(angles).astype(x._np_dtype), ops.sin(angles).astype(x._np_dtype)
    x1, x2 = ops.split(x, 2, axis=-1)
    return x * cos + ops.concatenate([-x2, x1], axis=-1) * sin


# ----------------------------------------------------------------------------- masks


def causal_mask(T: int) -> Tensor:
    """(T, T) bool, True on and below the diagonal: query i sees keys 0..i."""
    return ops.asarray(np.tri(T, dtype=bool))


def padding_mask(tokens: Tensor, pad_id: int | None) -> Tensor | None:
    """(B, 1, 1, T) bool, False at padding: broadcasts over heads and queries."""
    if pad_id is None:
        return None
    B, T = tokens.shape
    return ops.reshape(tokens != pad_id, (B, 1, 1, T))


def combine_masks(*masks) -> Tensor | None:
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else ops.logical_and(out, m)
    return out


# ----------------------------------------------------------------------------- layers


class Attention(Module):
    """Multi-head attention over (B, L, E) inputs, batch first.

    ``forward(x, memory=None, mask=None, positions=None)``: self-attention, or
    cross-attention on ``memory`` (B, S, E). With ``rope=True`` queries and keys of
    self-attention are rotated by their ``positions``. ``forward_cached`` writes the new
    keys/values into a preallocated cache instead (see ``GPT.init_cache``).
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, rope: bool = False):
        super().__init__()
        head_dim = check_heads("Attention", d_model, num_heads, rope)
        dropout = check_probability("Attention", "dropout", dropout)
        self.d_model, self.num_heads, self.head_dim = d_model, num_heads, head_dim
        self.dropout, self.rope = dropout, rope
        self.in_proj_weight = init.xavier_uniform_(Parameter(ops.zeros((3 * d_model, d_model))))
        self.in_proj_bias = Parameter(ops.zeros((3 * d_model,)))
        self.out_proj = Linear(d_model, d_model)
        init.zeros_(self.out_proj.bias)

    def _heads(self, t: Tensor) -> Tensor:
        B, L, _ = t.shape
        return ops.transpose(ops.reshape(t, (B, L, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def project(self, x: Tensor, memory: Tensor | None = None):
        """Queries from x, keys and values from memory (x itself when None), split in heads."""
        w, b, E = self.in_proj_weight, self.in_proj_bias, self.d_model
        if memory is None:
            q, k, v = ops.split(F.linear(x, w, b), 3, axis=-1)
        else:
            q = F.linear(x, w[:E], b[:E])
            k, v = ops.split(F.linear(memory, w[E:], b[E:]), 2, axis=-1)
        return self._heads(q), self._heads(k), self._heads(v)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask) -> Tensor:
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        B, _, L, _ = out.shape
        return self.out_proj(ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (B, L, self.d_model)))

    def forward(self, x, memory=None, mask=None, positions=None):
        q, k, v = self.project(x, memory)
        if self.rope and memory is None:
            q, k = rope(q, positions), rope(k, positions)
        return self.attend(q, k, v, mask)

    def forward_cached(self, x, keys, values, length, positions):
        """Self-attention of x (B, t, E) at ``positions`` = length .. length + t - 1 over
        the cached keys/values (B, H, S, D) and its own; returns (out, keys, values)."""
        q, k, v = self.project(x)
        if self.rope:
            q, k = rope(q, positions), rope(k, positions)
        keys, values = write_cache(keys, k, length), write_cache(values, v, length)
        slots = ops.arange(keys.shape[2])
        mask = ops.expand_dims(slots, 0) <= ops.expand_dims(positions, 1)  # (t, S)
        return self.attend(q, keys, values, mask), keys, values

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_heads={self.num_heads}, rope={self.rope}"


def write_cache(cache: Tensor, new: Tensor, length) -> Tensor:
    """``cache[:, :, length:length + t] = new`` out of place, for a traced ``length`` too:
    every slot takes the new row it would hold, and ``where`` keeps the old ones."""
    S, t = cache.shape[2], new.shape[2]
    rel = ops.arange(S) - length
    fresh = ops.logical_and(rel >= 0, rel < t)
    placed = ops.take(new, ops.clip(rel, 0, t - 1), axis=2)
    return ops.where(ops.reshape(fresh, (S, 1)), placed, cache)


class MLP(Module):
    """Linear -> GELU -> Linear (``fc1``, ``fc2``)."""

    def __init__(self, d_model: int, dim_feedforward: int):
        super().__init__()
        self.fc1 = Linear(d_model, dim_feedforward)
        self.fc2 = Linear(dim_feedforward, d_model)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(Module):
    """A pre-norm transformer block: ``x + attn(ln1(x))``, optionally
    ``x + cross_attn(ln_cross(x), memory)``, then ``x + mlp(ln2(x))``; dropout on each
    residual branch."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dim_feedforward: int,
        dropout: float = 0.0,
        cross: bool = False,
        rope: bool = False,
    ):
        super().__init__()
        check_heads("Block", d_model, num_heads, rope)
        check_count("Block", "dim_feedforward", dim_feedforward)
        check_probability("Block", "dropout", dropout)
        self.ln1 = LayerNorm(d_model)
        self.attn = Attention(d_model, num_heads, dropout, rope=rope)
        self.ln_cross = LayerNorm(d_model) if cross else None
        self.cross_attn = Attention(d_model, num_heads, dropout) if cross else None
        self.ln2 = LayerNorm(d_model)
        self.mlp = MLP(d_model, dim_feedforward)
        self.drop = Dropout(dropout)

    def forward(self, x, mask=None, positions=None, memory=None, memory_mask=None):
        x = x + self.drop(self.attn(self.ln1(x), mask=mask, positions=positions))
        if self.cross_attn is not None:
            x = x + self.drop(self.cross_attn(self.ln_cross(x), memory, mask=memory_mask))
        return x + self.drop(self.mlp(self.ln2(x)))

    def forward_cached(self, x, keys, values, length, positions):
        a, keys, values = self.attn.forward_cached(self.ln1(x), keys, values, length, positions)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln2(x))), keys, values


def check_heads(owner: str, d_model, num_heads, rope: bool) -> int:
    """The head size: ``d_model`` split in ``num_heads`` (an even size for RoPE)."""
    d_model = check_count(owner, "d_model", d_model)
    num_heads = check_count(owner, "num_heads", num_heads)
    if d_model % num_heads:
        raise InvalidArgumentError(
            f"{owner}: d_model={d_model} must be divisible by num_heads={num_heads}"
        )
    head_dim = d_model // num_heads
    if rope and head_dim % 2:
        raise InvalidArgumentError(
            f"{owner}: RoPE rotates feature pairs, so the head size d_model / num_heads "
            f"= {head_dim} must be even"
        )
    return head_dim


def check_model(owner: str, vocabs: dict, d_model, num_heads, num_layers, max_len,
                dim_feedforward, pos: str, dropout) -> int:  # fmt: skip
    """The arguments the models share, checked under the model's name before any layer is
    built; ``vocabs``: name -> vocabulary size. Returns the feed-forward size (4 * d_model
    by default)."""
    check_choice(owner, "pos", pos, POSITIONS)
    for name, size in vocabs.items():
        check_count(owner, name, size)
    check_heads(owner, d_model, num_heads, pos == "rope")
    check_size(owner, "num_layers", num_layers)
    check_size(owner, "max_len", max_len)
    check_probability(owner, "dropout", dropout)
    ff = 4 * d_model if dim_feedforward is None else dim_feedforward
    check_count(owner, "dim_feedforward", ff)
    # the largest parameters (embeddings, position table, feed-forward) must fit in memory
    tables = [(size, d_model) for size in vocabs.values()] + [(max_len, d_model), (ff, d_model)]
    for shape in tables:
        check_allocation(owner, shape, dtypes.DEFAULT_FLOAT)
    return ff


def check_token(owner: str, name: str, value, vocab_size: int) -> int:
    """A token id of a vocabulary of ``vocab_size``."""
    return check_int(owner, name, value, 0, vocab_size - 1)


def masked_mean(x: Tensor, keep: Tensor | None) -> Tensor:
    """Mean of x (B, T, d) over T, counting only positions where keep (B, T) is True."""
    if keep is None:
        return ops.mean(x, axis=1)
    w = ops.expand_dims(keep.astype(x._np_dtype), -1)
    return ops.sum(x * w, axis=1) / ops.maximum(ops.sum(w, axis=1), 1.0)


def last_kept(x: Tensor, keep: Tensor | None) -> Tensor:
    """x (B, T, d) at the last position where keep (B, T) is True (the last one if None)."""
    if keep is None:
        return x[:, -1]
    T = x.shape[1]
    idx = ops.argmax(keep.astype(np.int64) * (ops.arange(T) + 1), axis=1)
    return ops.take_along_axis(x, ops.reshape(idx, (-1, 1, 1)), axis=1)[:, 0]
