"""Transformer layers and stacks with PyTorch's arguments and submodule names.

``batch_first`` defaults to False as in PyTorch; a layer built with the seed
notebook's spelling ``num_heads=`` (instead of PyTorch's ``nhead``) defaults to
``batch_first=True``, the layout that code feeds it.

>>> layer = fx.nn.TransformerEncoderLayer(d_model=32, num_heads=4, dim_feedforward=64, dropout=0.0)
>>> layer(fx.randn(8, 10, 32)).shape        # (batch, sequence, features)
(8, 10, 32)
"""

from __future__ import annotations

import copy

import numpy as np

from fluxion import ops
from fluxion.core.checks import (
    check_allocation,
    check_count,
    check_nonnegative,
    check_probability,
    check_size,
)
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.nn import functional as F
from fluxion.nn import init
from fluxion.nn.attention import MultiheadAttention, _resolve_heads
from fluxion.nn.containers import ModuleList
from fluxion.nn.layers import Dropout, LayerNorm, Linear, _param_dtype
from fluxion.nn.module import Module


def _activation(owner: str, activation):
    if isinstance(activation, str):
        table = {"relu": F.relu, "gelu": F.gelu}
        if activation not in table:
            raise InvalidArgumentError(
                f"{owner}: activation should be 'relu', 'gelu' or a callable, got {activation!r}"
            )
        return table[activation]
    if not callable(activation):
        raise InvalidArgumentError(
            f"{owner}: activation must be 'relu', 'gelu' or a callable, got {activation!r}"
        )
    return activation


def _check_layer(owner, d_model, nhead, num_heads, dim_feedforward, dropout, layer_norm_eps, dtype):
    """The arguments every transformer layer takes, checked under its own name (the
    attention, linear and norm layers inside would name themselves); returns the heads."""
    check_count(owner, "d_model", d_model)
    check_size(owner, "dim_feedforward", dim_feedforward)
    check_probability(owner, "dropout", dropout)
    check_nonnegative(owner, "layer_norm_eps", layer_norm_eps)
    _param_dtype(owner, dtype)
    return _resolve_heads(owner, nhead, num_heads)


def _batch_first(batch_first, nhead, num_heads) -> bool:
    if batch_first is not None:
        return bool(batch_first)
    return nhead is None and num_heads is not None  # the seed's num_heads= spelling


def _causal_if(is_causal, mask, size, dtype):
    """The causal mask when asked for one and none was given (PyTorch wants both)."""
    if is_causal and mask is None:
        return Transformer.generate_square_subsequent_mask(size, dtype=dtype)
    return mask


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual and LayerNorm
    (post-norm; ``norm_first=True`` for pre-norm). Submodules: ``self_attn``,
    ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``, ``dropout1``, ``dropout2``.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int | None = None,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation="relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool | None = None,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        num_heads: int | None = None,
    ):
        super().__init__()
        heads = _check_layer(
            "TransformerEncoderLayer", d_model, nhead, num_heads, dim_feedforward, dropout,
            layer_norm_eps, dtype,
        )  # fmt: skip
        activation = _activation("TransformerEncoderLayer", activation)
        batch_first = _batch_first(batch_first, nhead, num_heads)
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, heads, dropout=dropout, bias=bias, batch_first=batch_first, **kw
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation
        self.batch_first = batch_first

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src
        seq_axis = x.ndim - 2 if self.batch_first or x.ndim == 2 else 0
        src_mask = _causal_if(is_causal, src_mask, x.shape[seq_axis], x.dtype)
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask):
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False
        )[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """Self-attention, cross-attention over ``memory`` and a feed-forward block.
    Submodules: ``self_attn``, ``multihead_attn``, ``linear1``, ``dropout``, ``linear2``,
    ``norm1``-``norm3``, ``dropout1``-``dropout3``."""

    def __init__(
        self,
        d_model: int,
        nhead: int | None = None,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation="relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool | None = None,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        num_heads: int | None = None,
    ):
        super().__init__()
        heads = _check_layer(
            "TransformerDecoderLayer", d_model, nhead, num_heads, dim_feedforward, dropout,
            layer_norm_eps, dtype,
        )  # fmt: skip
        activation = _activation("TransformerDecoderLayer", activation)
        batch_first = _batch_first(batch_first, nhead, num_heads)
        kw = {"device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, heads, dropout=dropout, bias=bias, batch_first=batch_first, **kw
        )
        self.multihead_attn = MultiheadAttention(
            d_model, heads, dropout=dropout, bias=bias, batch_first=batch_first, **kw
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = activation
        self.batch_first = batch_first

    def forward(
        self,
        tgt,
        memory,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ):
        x = tgt
        seq_axis = x.ndim - 2 if self.batch_first or x.ndim == 2 else 0
        tgt_mask = _causal_if(tgt_is_causal, tgt_mask, x.shape[seq_axis], x.dtype)
        if memory_is_causal and memory_mask is None:
            L, S = x.shape[seq_axis], memory.shape[seq_axis]
            memory_mask = ops.asarray(np.triu(np.full((L, S), -np.inf), 1).astype(x._np_dtype))
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask):
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False
        )[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask):
        x = self.multihead_attn(
            x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False
        )[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _check_stack(owner: str, name: str, layer, num_layers) -> int:
    if not isinstance(layer, Module):
        raise InvalidArgumentError(
            f"{owner}: {name} must be a Module (the layer to copy), got {type(layer).__name__}"
        )
    return check_size(owner, "num_layers", num_layers)


class TransformerEncoder(Module):
    """``num_layers`` deep copies of ``encoder_layer`` (``layers.0`` ...), then ``norm``."""

    def __init__(
        self,
        encoder_layer: TransformerEncoderLayer,
        num_layers: int,
        norm: Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
    ):
        super().__init__()
        num_layers = _check_stack("TransformerEncoder", "encoder_layer", encoder_layer, num_layers)
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal: bool | None = None):
        x = src
        for layer in self.layers:
            x = layer(
                x,
                src_mask=mask,
                src_key_padding_mask=src_key_padding_mask,
                is_causal=bool(is_causal),
            )
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(Module):
    """``num_layers`` deep copies of ``decoder_layer`` (``layers.0`` ...), then ``norm``."""

    def __init__(
        self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None
    ):
        super().__init__()
        num_layers = _check_stack("TransformerDecoder", "decoder_layer", decoder_layer, num_layers)
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(
        self,
        tgt,
        memory,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ):
        x = tgt
        for layer in self.layers:
            x = layer(
                x,
                memory,
                tgt_mask=tgt_mask,
                memory_mask=memory_mask,
                tgt_key_padding_mask=tgt_key_padding_mask,
                memory_key_padding_mask=memory_key_padding_mask,
                tgt_is_causal=bool(tgt_is_causal),
                memory_is_causal=memory_is_causal,
            )
        return x if self.norm is None else self.norm(x)


class Transformer(Module):
    """Encoder-decoder transformer (``encoder``, ``decoder``, each ending in a LayerNorm);
    every parameter with more than one dimension is re-drawn with xavier_uniform_.

    >>> model = fx.nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1,
    ...                           num_decoder_layers=1, dim_feedforward=32, batch_first=True)
    >>> src, tgt = fx.randn(2, 7, 16), fx.randn(2, 5, 16)
    >>> mask = fx.nn.Transformer.generate_square_subsequent_mask(5)
    >>> model(src, tgt, tgt_mask=mask).shape
    (2, 5, 16)
    """

    def __init__(
        self,
        d_model: int = 512,
        nhead: int | None = None,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation="relu",
        custom_encoder: Module | None = None,
        custom_decoder: Module | None = None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool | None = None,
        norm_first: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        num_heads: int | None = None,
    ):
        super().__init__()
        if nhead is None and num_heads is None:
            nhead = 8
        heads = _check_layer(
            "Transformer", d_model, nhead, num_heads, dim_feedforward, dropout, layer_norm_eps,
            dtype,
        )  # fmt: skip
        _activation("Transformer", activation)
        check_size("Transformer", "num_encoder_layers", num_encoder_layers)
        check_size("Transformer", "num_decoder_layers", num_decoder_layers)
        batch_first = _batch_first(batch_first, nhead, num_heads)
        common = {
            "dim_feedforward": dim_feedforward,
            "dropout": dropout,
            "activation": activation,
            "layer_norm_eps": layer_norm_eps,
            "batch_first": batch_first,
            "norm_first": norm_first,
            "bias": bias,
            "device": device,
            "dtype": dtype,
        }
        norm = {"eps": layer_norm_eps, "bias": bias, "device": device, "dtype": dtype}
        if custom_encoder is None:
            custom_encoder = TransformerEncoder(
                TransformerEncoderLayer(d_model, heads, **common),
                num_encoder_layers,
                LayerNorm(d_model, **norm),
            )
        if custom_decoder is None:
            custom_decoder = TransformerDecoder(
                TransformerDecoderLayer(d_model, heads, **common),
                num_decoder_layers,
                LayerNorm(d_model, **norm),
            )
        self.encoder, self.decoder = custom_encoder, custom_decoder
        self.d_model, self.nhead, self.batch_first = d_model, heads, batch_first
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(
        self,
        src,
        tgt,
        src_mask=None,
        tgt_mask=None,
        memory_mask=None,
        src_key_padding_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        src_is_causal: bool | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ):
        batch_axis = 0 if self.batch_first else 1
        if src.ndim == 3 and src.shape[batch_axis] != tgt.shape[batch_axis]:
            raise ShapeError(
                f"Transformer: src {src.shape} and tgt {tgt.shape} have different batch sizes "
                f"(axis {batch_axis})"
            )
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ShapeError(
                f"Transformer: the feature size of src {src.shape} and tgt {tgt.shape} must be "
                f"d_model={self.d_model}"
            )
        memory = self.encoder(
            src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal
        )
        return self.decoder(
            tgt,
            memory,
            tgt_mask=tgt_mask,
            memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal,
            memory_is_causal=memory_is_causal,
        )

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device=None, dtype=None):
        """A float (sz, sz) mask: 0 on and below the diagonal, -inf above."""
        op = "generate_square_subsequent_mask"
        np_dtype = _param_dtype(op, dtype)
        sz = check_size(op, "sz", sz)
        check_allocation(op, (sz, sz), np.float64)
        return ops.asarray(np.triu(np.full((sz, sz), -np.inf), 1).astype(np_dtype))
