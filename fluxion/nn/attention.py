"""Multi-head attention with PyTorch's parameters (``in_proj_weight``, ``out_proj``...).

>>> mha = fx.nn.MultiheadAttention(16, num_heads=4, batch_first=True)
>>> x = fx.randn(2, 5, 16)
>>> out, weights = mha(x, x, x)          # weights averaged over heads: (2, 5, 5)
>>> out.shape, weights.shape
((2, 5, 16), (2, 5, 5))
"""

from __future__ import annotations

import math

import numpy as np

from fluxion import ops
from fluxion.core.checks import (
    check_allocation,
    check_count,
    check_nonnegative,
    check_number,
    check_probability,
    check_size,
)
from fluxion.core.tensor import to_tensor
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.nn import functional as F
from fluxion.nn import init
from fluxion.nn.layers import Linear, _check_device, _empty, _param_dtype
from fluxion.nn.module import Module


def _resolve_heads(owner: str, nhead, num_heads) -> int:
    if nhead is not None and num_heads is not None and nhead != num_heads:
        raise InvalidArgumentError(f"{owner}: nhead={nhead} and num_heads={num_heads} disagree")
    if nhead is None and num_heads is None:
        raise InvalidArgumentError(f"{owner}: give the number of heads (nhead= or num_heads=)")
    return check_count(
        owner, *(("nhead", nhead) if nhead is not None else ("num_heads", num_heads))
    )


class MultiheadAttention(Module):
    """PyTorch's ``nn.MultiheadAttention``: same arguments, parameters and results.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` returns
    ``(output, weights)`` (weights None when ``need_weights=False``). Inputs are
    (L, N, E), or (N, L, E) with ``batch_first=True``, or unbatched (L, E).

    * ``attn_mask``: (L, S) or (N * num_heads, L, S); bool True = *not* allowed to
      attend (PyTorch's convention here), float = added to the scores.
    * ``key_padding_mask``: (N, S); bool True = padding (ignored), or float.
    * ``is_causal=True`` without a mask builds the causal mask (PyTorch requires the
      mask to be passed as well; here it is optional).
    * ``key``/``value`` default to ``query`` (self-attention); ``kdim``/``vdim`` give
      separate ``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` for cross-attention.
    """

    def __init__(
        self,
        embed_dim: int | None = None,
        num_heads: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device=None,
        dtype=None,
        *,
        d_model: int | None = None,
        nhead: int | None = None,
    ):
        super().__init__()
        _check_device(device)
        if add_bias_kv or add_zero_attn:
            raise InvalidArgumentError(
                "MultiheadAttention: add_bias_kv and add_zero_attn are not supported"
            )
        if embed_dim is None and d_model is None:
            raise InvalidArgumentError("MultiheadAttention: give embed_dim (or d_model=)")
        name = "embed_dim" if embed_dim is not None else "d_model"
        embed_dim = check_count(
            "MultiheadAttention", name, embed_dim if embed_dim is not None else d_model
        )
        num_heads = _resolve_heads("MultiheadAttention", nhead, num_heads)
        if embed_dim % num_heads:
            raise InvalidArgumentError(
                f"MultiheadAttention: embed_dim={embed_dim} must be divisible by num_heads={num_heads}"
            )
        dropout = check_probability("MultiheadAttention", "dropout", dropout)
        _param_dtype("MultiheadAttention", dtype)
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else check_count("MultiheadAttention", "kdim", kdim)
        self.vdim = embed_dim if vdim is None else check_count("MultiheadAttention", "vdim", vdim)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads, self.dropout, self.batch_first = num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _empty("MultiheadAttention", (3 * embed_dim, embed_dim), dtype)
        else:
            self.q_proj_weight = _empty("MultiheadAttention", (embed_dim, embed_dim), dtype)
            self.k_proj_weight = _empty("MultiheadAttention", (embed_dim, self.kdim), dtype)
            self.v_proj_weight = _empty("MultiheadAttention", (embed_dim, self.vdim), dtype)
        self.in_proj_bias = _empty("MultiheadAttention", (3 * embed_dim,), dtype) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, query, key, value):
        E, b = self.embed_dim, self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if query is key and key is value:  # self-attention: one matmul for q, k and v
                return ops.split(F.linear(query, w, b), 3, axis=-1)
            q = F.linear(query, w[:E], bq)
            if key is value:
                k, v = ops.split(F.linear(key, w[E:], None if b is None else b[E:]), 2, axis=-1)
                return q, k, v
            return q, F.linear(key, w[E : 2 * E], bk), F.linear(value, w[2 * E :], bv)
        return (
            F.linear(query, self.q_proj_weight, bq),
            F.linear(key, self.k_proj_weight, bk),
            F.linear(value, self.v_proj_weight, bv),
        )

    def forward(
        self,
        query,
        key=None,
        value=None,
        key_padding_mask=None,
        need_weights: bool = True,
        attn_mask=None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ):
        query = to_tensor(query)
        key = query if key is None else to_tensor(key)
        value = key if value is None else to_tensor(value)
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(
                f"MultiheadAttention: query {query.shape}, key {key.shape} and value {value.shape} "
                "must all be (L, N, E) (or (N, L, E) with batch_first=True) or all unbatched (L, E)"
            )
        if not batched:
            query, key, value = (ops.expand_dims(t, 0) for t in (query, key, value))
        elif not self.batch_first:
            same_kv, same_qk = key is value, query is key
            query = ops.swapaxes(query, 0, 1)
            key = query if same_qk else ops.swapaxes(key, 0, 1)
            value = key if same_kv else ops.swapaxes(value, 0, 1)
        N, L, E = query.shape
        S = key.shape[1]
        if E != self.embed_dim or key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ShapeError(
                f"MultiheadAttention: feature sizes of query/key/value are {E}/{key.shape[-1]}/"
                f"{value.shape[-1]}, expected embed_dim={self.embed_dim}, kdim={self.kdim}, vdim={self.vdim}"
            )
        if key.shape[:2] != value.shape[:2] or key.shape[0] != N:
            raise ShapeError(
                f"MultiheadAttention: key {key.shape} and value {value.shape} must share batch and "
                f"sequence sizes, and the batch size of the query ({N})"
            )
        H, D = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value)
        q = ops.transpose(ops.reshape(q, (N, L, H, D)), (0, 2, 1, 3))
        k = ops.transpose(ops.reshape(k, (N, S, H, D)), (0, 2, 1, 3))
        v = ops.transpose(ops.reshape(v, (N, S, H, D)), (0, 2, 1, 3))
        bias = self._bias(attn_mask, key_padding_mask, is_causal, N, L, S, batched, q._np_dtype)
        p = self.dropout if self.training else 0.0
        out, weights = F._attend(q, k, v, bias, p, None)
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (N, L, E))
        out = self.out_proj(out)
        if not batched:
            out = ops.squeeze(out, 0)
        elif not self.batch_first:
            out = ops.swapaxes(out, 0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = ops.mean(weights, axis=1)
        return out, weights if batched else ops.squeeze(weights, 0)

    def _bias(self, attn_mask, key_padding_mask, is_causal, N, L, S, batched, dtype):
        """One additive (N, H, L, S)-broadcastable mask from the attention and padding masks."""
        H, bias = self.num_heads, None
        if attn_mask is not None:
            attn_mask = to_tensor(attn_mask)
            heads_first = (H, L, S) if not batched else (N * H, L, S)
            if tuple(attn_mask.shape) == (L, S):
                shape = (L, S)
            elif tuple(attn_mask.shape) == heads_first:
                shape = (N, H, L, S)
            else:
                raise ShapeError(
                    f"MultiheadAttention: attn_mask has shape {tuple(attn_mask.shape)}, expected "
                    f"(L, S) = {(L, S)} or (N * num_heads, L, S) = {heads_first} for {L} queries "
                    f"and {S} keys"
                )
            bias = F._mask_to_bias(
                "MultiheadAttention", ops.reshape(attn_mask, shape), shape, dtype, False
            )
        elif is_causal:
            bias = F._causal_bias(L, S, dtype)
        if key_padding_mask is not None:
            key_padding_mask = to_tensor(key_padding_mask)
            want = (N, S) if batched else (S,)
            if tuple(key_padding_mask.shape) != want:
                raise ShapeError(
                    f"MultiheadAttention: key_padding_mask has shape {tuple(key_padding_mask.shape)}, "
                    f"expected (N, S) = {want}: one flag per key of each batch element"
                )
            kpm = ops.reshape(key_padding_mask, (N, 1, 1, S))
            kpm = F._mask_to_bias("MultiheadAttention", kpm, (N, 1, 1, S), dtype, False)
            bias = kpm if bias is None else bias + kpm
        return bias

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


class MultiHeadAttention(MultiheadAttention):
    """The Nabla/TinyTorch spelling: the same layer, batch-first by default
    (``MultiHeadAttention(d_model, num_heads=...)(x)`` with x of shape (N, L, E))."""

    def __init__(
        self,
        embed_dim=None,
        num_heads=None,
        dropout=0.0,
        bias=True,
        *args,
        batch_first=True,
        **kwargs,
    ):
        super().__init__(
            embed_dim, num_heads, dropout, bias, *args, batch_first=batch_first, **kwargs
        )


# ----------------------------------------------------------------------------- positions


class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sin/cos table of "Attention Is All You Need" (a buffer ``pe`` of
    shape (max_len, d_model)): ``pe[p, 2i] = sin(p / 10000^(2i/d))``, ``pe[p, 2i+1] = cos(...)``.

    ``forward(x, offset=0)`` adds rows ``offset .. offset + L`` to x of shape (..., L, d)
    (or (L, N, d) with ``batch_first=False``).
    """

    def __init__(self, d_model: int, max_len: int = 5000, batch_first: bool = True, dtype=None):
        super().__init__()
        op = "SinusoidalPositionalEncoding"
        d_model, max_len = check_size(op, "d_model", d_model), check_size(op, "max_len", max_len)
        np_dtype = _param_dtype(op, dtype)
        check_allocation(op, (max_len, d_model), np.float64)  # computed in float64, then cast
        position = np.arange(max_len, dtype=np.float64)[:, None]
        div = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-math.log(10000.0) / d_model))
        pe = np.zeros((max_len, d_model))
        pe[:, 0::2] = np.sin(position * div)
        pe[:, 1::2] = np.cos(position * div)[:, : d_model // 2]
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.register_buffer("pe", ops.asarray(pe.astype(np_dtype)))

    def forward(self, x, offset: int = 0):
        x = to_tensor(x)
        axis = x.ndim - 2 if self.batch_first else 0
        L = x.shape[axis]
        if offset + L > self.max_len:
            raise ShapeError(
                f"SinusoidalPositionalEncoding: positions up to {offset + L} requested, but max_len "
                f"is {self.max_len}; build it with a larger max_len"
            )
        pe = self.pe[offset : offset + L]
        return x + (pe if self.batch_first else ops.expand_dims(pe, 1))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositionalEmbedding(Module):
    """A trained table ``weight`` of shape (max_len, d_model), initialized N(0, 0.02**2)
    (GPT-2's choice); ``forward(x, offset=0)`` adds its rows to x of shape (..., L, d)."""

    def __init__(self, max_len: int, d_model: int, std: float = 0.02, dtype=None):
        super().__init__()
        op = "LearnedPositionalEmbedding"
        self.max_len, self.d_model = (
            check_size(op, "max_len", max_len),
            check_size(op, "d_model", d_model),
        )
        std = check_nonnegative(op, "std", std)
        self.weight = init.normal_(_empty(op, (self.max_len, self.d_model), dtype), 0.0, std)

    def forward(self, x, offset: int = 0):
        x = to_tensor(x)
        L = x.shape[-2]
        if offset + L > self.max_len:
            raise ShapeError(
                f"LearnedPositionalEmbedding: positions up to {offset + L} requested, but max_len "
                f"is {self.max_len}"
            )
        return x + self.weight[offset : offset + L]

    def extra_repr(self) -> str:
        return f"{self.max_len}, {self.d_model}"


class RotaryEmbedding(Module):
    """Rotary position embedding (RoPE, Su et al.) for queries and keys.

    Features are paired as (i, i + dim/2) ("rotate half", as GPT-NeoX and LLaMA) and
    pair i at position p is rotated by the angle ``p * base^(-2i/dim)``; only the first
    ``dim`` features are rotated (partial rotary when ``dim`` < head size). The scores
    q·k then depend on positions only through their difference.

    >>> rope = fx.nn.RotaryEmbedding(8)
    >>> q = k = fx.randn(2, 4, 6, 8)          # (batch, heads, L, head_dim)
    >>> q2, k2 = rope(q, k)
    """

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        if check_count("RotaryEmbedding", "dim", dim) % 2:
            raise InvalidArgumentError(
                f"RotaryEmbedding: dim must be a positive even number, got {dim}"
            )
        self.dim = dim
        self.base = check_number("RotaryEmbedding", "base", base, 0.0, low_open=True)

    def _cos_sin(self, L: int, offset: int, np_dtype):
        inv_freq = self.base ** (-np.arange(0, self.dim, 2, dtype=np.float64) / self.dim)
        angles = np.arange(offset, offset + L, dtype=np.float64)[:, None] * inv_freq[None, :]
        angles = np.concatenate([angles, angles], axis=-1)  # (L, dim)
        return ops.asarray(np.cos(angles).astype(np_dtype)), ops.asarray(
            np.sin(angles).astype(np_dtype)
        )

    def rotate(self, x, offset: int = 0):
        """RoPE applied to one tensor of shape (..., L, head_dim)."""
        x = to_tensor(x)
        if x.shape[-1] < self.dim:
            raise ShapeError(
                f"RotaryEmbedding: features of size {x.shape[-1]} are fewer than dim={self.dim}"
            )
        cos, sin = self._cos_sin(x.shape[-2], offset, x._np_dtype)
        rot, rest = (x, None) if x.shape[-1] == self.dim else ops.split(x, [self.dim], axis=-1)
        x1, x2 = ops.split(rot, 2, axis=-1)
        rotated = rot * cos + ops.concatenate([-x2, x1], axis=-1) * sin
        return rotated if rest is None else ops.concatenate([rotated, rest], axis=-1)

    def forward(self, q, k, offset: int = 0):
        """``(rotate(q), rotate(k))``: positions ``offset .. offset + L`` along axis -2."""
        return self.rotate(q, offset), self.rotate(k, offset)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, base={self.base}"
