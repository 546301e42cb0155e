"""A transformer encoder that classifies token sequences.

>>> model = EncoderClassifier(vocab_size=12, num_classes=3, d_model=16, num_heads=2, pad_id=0)
>>> model(fx.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5]])).shape
(2, 3)
"""

from __future__ import annotations

from fluxion import ops
from fluxion.core.checks import check_choice
from fluxion.models.layers import (
    Block,
    add_positions,
    check_length,
    check_model,
    check_token,
    check_tokens,
    last_kept,
    masked_mean,
    padding_mask,
    position_table,
)
from fluxion.nn.containers import ModuleList
from fluxion.nn.layers import Dropout, Embedding, LayerNorm, Linear
from fluxion.nn.module import Module


class EncoderClassifier(Module):
    """``EncoderClassifier(vocab_size, num_classes, d_model=64, num_heads=4, num_layers=2,
    dim_feedforward=None (4 * d_model), max_len=128, pos="sinusoidal", pooling="mean",
    dropout=0.0, pad_id=None)``: ``forward(tokens (B, T)) -> logits (B, num_classes)``.

    Pre-norm encoder blocks (no causal mask), a final LayerNorm, then the pooled
    features go through ``head``. With ``pad_id``, padding tokens are left out of the
    attention (as keys) and of the pooling: ``pooling="mean"`` averages the other
    positions, ``"last"`` takes the last non-padding one. A right-padded sequence
    therefore gets the logits of its unpadded self.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        dim_feedforward: int | None = None,
        max_len: int = 128,
        pos: str = "sinusoidal",
        pooling: str = "mean",
        dropout: float = 0.0,
        pad_id: int | None = None,
    ):
        super().__init__()
        op, vocabs = "EncoderClassifier", {"vocab_size": vocab_size, "num_classes": num_classes}
        ff = check_model(
            op, vocabs, d_model, num_heads, num_layers, max_len, dim_feedforward, pos, dropout
        )
        check_choice(op, "pooling", pooling, ("mean", "last"))
        if pad_id is not None:
            pad_id = check_token(op, "pad_id", pad_id, vocab_size)
        self.vocab_size, self.num_classes, self.d_model = vocab_size, num_classes, d_model
        self.max_len, self.pos_kind, self.pooling, self.pad_id = max_len, pos, pooling, pad_id
        self.tok = Embedding(vocab_size, d_model)
        self.pos = position_table(pos, max_len, d_model)
        self.drop = Dropout(dropout)
        self.blocks = ModuleList(
            [Block(d_model, num_heads, ff, dropout, rope=pos == "rope") for _ in range(num_layers)]
        )
        self.ln_f = LayerNorm(d_model)
        self.head = Linear(d_model, num_classes)

    def features(self, tokens):
        """The encoded sequence (B, T, d_model) and the non-padding flags (B, T) or None."""
        tokens = check_tokens("EncoderClassifier", tokens)
        T = tokens.shape[1]
        check_length("EncoderClassifier", self.pos_kind, T, self.max_len)
        positions = ops.arange(T)
        mask = padding_mask(tokens, self.pad_id)
        x = self.drop(add_positions(self.tok(tokens), self.pos, positions))
        for block in self.blocks:
            x = block(x, mask=mask, positions=positions)
        keep = None if self.pad_id is None else tokens != self.pad_id
        return self.ln_f(x), keep

    def forward(self, tokens):
        x, keep = self.features(tokens)
        pooled = masked_mean(x, keep) if self.pooling == "mean" else last_kept(x, keep)
        return self.head(pooled)

    def extra_repr(self) -> str:
        return (
            f"vocab_size={self.vocab_size}, num_classes={self.num_classes}, "
            f"d_model={self.d_model}, pos={self.pos_kind!r}, pooling={self.pooling!r}, "
            f"pad_id={self.pad_id}"
        )
