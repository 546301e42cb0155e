"""An encoder-decoder transformer, trained with teacher forcing.

>>> model = Seq2Seq(src_vocab=14, tgt_vocab=12, d_model=16, num_heads=2, num_layers=1)
>>> src = fx.tensor([[3, 4, 5, 0]])            # 0 = pad_id
>>> tgt = fx.tensor([[6, 7, 2]])               # the answer, ending in eos = 2
>>> tgt_in = shift_right(tgt, bos_id=1)        # [[1, 6, 7]]
>>> logits = model(src, tgt_in)                # (1, 3, 12): predicts tgt at each position
>>> loss = fx.nn.functional.cross_entropy(logits.reshape(-1, 12), tgt.reshape(-1))
"""

from __future__ import annotations

from fluxion import ops
from fluxion.core.checks import check_int
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.errors import DTypeError
from fluxion.models.layers import (
    Block,
    add_positions,
    causal_mask,
    check_length,
    check_model,
    check_token,
    check_tokens,
    padding_mask,
    position_table,
)
from fluxion.nn.containers import ModuleList
from fluxion.nn.layers import Dropout, Embedding, LayerNorm, Linear
from fluxion.nn.module import Module


def shift_right(tgt, bos_id: int) -> Tensor:
    """Teacher forcing's decoder input: ``bos_id`` prepended, the last token dropped
    (along the last axis of tgt (B, T) or (T,))."""
    tgt = to_tensor(tgt)
    bos_id = check_int("shift_right", "bos_id", bos_id, minimum=0)
    if not tgt.ndim or tgt._np_dtype.kind not in "iu":
        raise DTypeError(
            f"shift_right: tgt must be integer token ids of shape (B, T) or (T,), got "
            f"{tgt.dtype}{list(tgt.shape)}"
        )
    bos = ops.full(tuple(tgt.shape[:-1]) + (1,), bos_id, dtype=tgt._np_dtype)
    return ops.concatenate([bos, tgt[..., :-1]], axis=-1)


class Seq2Seq(Module):
    """``Seq2Seq(src_vocab, tgt_vocab, d_model=64, num_heads=4, num_layers=2,
    dim_feedforward=None, max_len=64, pos="sinusoidal", dropout=0.0, pad_id=0)``.

    ``encode(src (B, S)) -> memory (B, S, d)``; ``decode(memory, tgt_in (B, T), src=None)
    -> logits (B, T, tgt_vocab)`` with causal self-attention and cross-attention on the
    memory (``src`` given: its padding is masked out of the cross-attention);
    ``forward(src, tgt_in) = decode(encode(src), tgt_in, src)``. Source padding
    (``pad_id``, None for none) is masked out of the encoder's attention too. Both
    stacks are pre-norm with a final LayerNorm; ``num_layers`` each.
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        max_len: int = 64,
        pos: str = "sinusoidal",
        dropout: float = 0.0,
        pad_id: int | None = 0,
    ):
        super().__init__()
        vocabs = {"src_vocab": src_vocab, "tgt_vocab": tgt_vocab}
        ff = check_model(
            "Seq2Seq", vocabs, d_model, num_heads, num_layers, max_len, dim_feedforward, pos,
            dropout,
        )  # fmt: skip
        if pad_id is not None:  # it pads sources and targets
            pad_id = check_token("Seq2Seq", "pad_id", pad_id, min(src_vocab, tgt_vocab))
        self.src_vocab, self.tgt_vocab, self.d_model = src_vocab, tgt_vocab, d_model
        self.max_len, self.pos_kind, self.pad_id = max_len, pos, pad_id
        rope = pos == "rope"
        self.src_tok = Embedding(src_vocab, d_model)
        self.tgt_tok = Embedding(tgt_vocab, d_model)
        self.src_pos = position_table(pos, max_len, d_model)
        self.tgt_pos = position_table(pos, max_len, d_model)
        self.drop = Dropout(dropout)
        self.encoder = ModuleList(
            [Block(d_model, num_heads, ff, dropout, rope=rope) for _ in range(num_layers)]
        )
        self.enc_ln = LayerNorm(d_model)
        self.decoder = ModuleList(
            [
                Block(d_model, num_heads, ff, dropout, cross=True, rope=rope)
                for _ in range(num_layers)
            ]
        )
        self.dec_ln = LayerNorm(d_model)
        self.head = Linear(d_model, tgt_vocab)

    def encode(self, src):
        """The encoded source (B, S, d_model)."""
        src = check_tokens("Seq2Seq.encode", src, "src")
        S = src.shape[1]
        check_length("Seq2Seq.encode", self.pos_kind, S, self.max_len)
        positions = ops.arange(S)
        x = self.drop(add_positions(self.src_tok(src), self.src_pos, positions))
        mask = padding_mask(src, self.pad_id)
        for block in self.encoder:
            x = block(x, mask=mask, positions=positions)
        return self.enc_ln(x)

    def decode(self, memory, tgt_in, src=None):
        """Logits (B, T, tgt_vocab) of the next target token at each position of tgt_in."""
        tgt_in = check_tokens("Seq2Seq.decode", tgt_in, "tgt_in")
        T = tgt_in.shape[1]
        check_length("Seq2Seq.decode", self.pos_kind, T, self.max_len)
        positions = ops.arange(T)
        mem_mask = None
        if src is not None:
            mem_mask = padding_mask(check_tokens("Seq2Seq.decode", src, "src"), self.pad_id)
        x = self.drop(add_positions(self.tgt_tok(tgt_in), self.tgt_pos, positions))
        mask = causal_mask(T)
        for block in self.decoder:
            x = block(x, mask=mask, positions=positions, memory=memory, memory_mask=mem_mask)
        return self.head(self.dec_ln(x))

    def forward(self, src, tgt_in):
        return self.decode(self.encode(src), tgt_in, src)

    def extra_repr(self) -> str:
        return (
            f"src_vocab={self.src_vocab}, tgt_vocab={self.tgt_vocab}, d_model={self.d_model}, "
            f"pos={self.pos_kind!r}, pad_id={self.pad_id}"
        )
