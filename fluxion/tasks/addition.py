"""``addition``: "a+b" -> a+b with a ``Seq2Seq`` trained by teacher forcing (the seed
tutorial's generation task).

Operands are written with their digits reversed (least significant first) and so is the
sum, which ends with the marker ``#``: a carry then flows in the direction the decoder
writes. Inputs have 3 to 10 characters in training; the evaluation decodes greedily and
counts exact matches (every digit and the ``#``) on held-out problems of each length from
3 to 20, so 11-20 are out of distribution.

The targets keep their content up to ``#``; the ``0`` padding that follows it in
``AdditionTask`` is replaced by ``<pad>``, which the loss ignores, so decoding stops at
``#``. A batch mixes lengths: sources are padded with ``<pad>`` (masked by the model) to
the longest training length, so every step has one compiled shape.
"""

from __future__ import annotations

import re

import numpy as np

import fluxion as fx
from fluxion.tasks.base import Task, TaskError, accuracy, eval_rng, length_table, register

END = "#"


@register
class Addition(Task):
    name = "addition"
    length_key = "exact_match_by_length"
    help = "'a+b' -> the sum, digits reversed: Seq2Seq with teacher forcing, exact match by length"
    metric = "token_accuracy"
    defaults = dict(
        steps=3000,
        batch_size=128,
        lr=1e-3,
        warmup=100,
        d_model=64,
        heads=4,
        layers=2,
        pos="rope",
        eval_every=250,
    )
    quick_per_length, full_per_length = 64, 256
    smoke = dict(quick_per_length=2, full_per_length=4)

    def __init__(self, config, tokenizer=None):
        super().__init__(config, tokenizer)
        from fluxion.data import AdditionTask, CharTokenizer

        self.data = AdditionTask(seed=config.seed)
        self.tokenizer = (
            CharTokenizer(self.data.vocab)
            if tokenizer is None
            else CharTokenizer.from_dict(tokenizer)
        )
        self.end_id = self.tokenizer.encode(END)[0]
        self.train_max = max(self.data.train_lengths)
        self.test_max = max(self.data.test_lengths)

    def tokenizer_dict(self):
        return self.tokenizer.to_dict()

    def build_model(self):
        from fluxion.models import Seq2Seq

        c, v = self.config, self.tokenizer.vocab_size
        return Seq2Seq(
            src_vocab=v,
            tgt_vocab=v,
            d_model=c.d_model,
            num_heads=c.heads,
            num_layers=c.layers,
            dim_feedforward=c.dim_feedforward,
            max_len=self.data.output_length(self.test_max) + 1,
            pos=c.pos,
            dropout=c.dropout,
            pad_id=self.tokenizer.pad_id,
        )

    # ---------------------------------------------------------------- data
    def _targets(self, outputs: list[str], length: int) -> np.ndarray:
        """Targets up to and including ``#``, then ``<pad>`` (ignored by the loss)."""
        kept = [out[: out.index(END) + 1] for out in outputs]
        return self.tokenizer.encode_batch(kept, length=length)

    def _problems(self, split, n, length, rng, src_len=None, tgt_len=None):
        inputs, outputs = self.data.sample(split, n, length, rng)
        src = self.tokenizer.encode_batch(inputs, length=src_len or length)
        tgt = self._targets(outputs, tgt_len or self.data.output_length(length))
        return src, tgt

    def train_batch(self, rng):
        lengths = rng.choice(self.data.train_lengths, size=self.config.batch_size)
        src_len, tgt_len = self.train_max, self.data.output_length(self.train_max)
        parts = [
            self._problems("train", int(count), int(n), rng, src_len, tgt_len)
            for n, count in zip(*np.unique(lengths, return_counts=True))
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def loss(self, model, src, tgt):
        from fluxion.models import shift_right

        logits = model(src, shift_right(tgt, self.tokenizer.bos_id))
        V, pad = logits.shape[-1], self.tokenizer.pad_id
        loss = fx.nn.functional.cross_entropy(
            logits.reshape(-1, V), tgt.reshape(-1), ignore_index=pad
        )
        return loss, accuracy(logits, tgt, mask=tgt != pad)

    # ---------------------------------------------------------------- evaluation
    def decode(self, model, src: np.ndarray, length: int) -> np.ndarray:
        """Greedy answers (B, output_length) for sources of ``length``."""
        from fluxion.models import seq2seq_greedy

        out = seq2seq_greedy(
            model,
            fx.asarray(src),
            self.data.output_length(length),
            self.tokenizer.bos_id,
            self.end_id,
        )
        return out.numpy()

    def _exact(self, model, split, n, length, rng) -> float:
        src, tgt = self._problems(split, n, length, rng)
        pred = self.decode(model, src, length)
        return float(np.all(pred == tgt, axis=1).mean())

    def evaluate(self, model, full=False):
        rng = eval_rng(self.config.seed, salt=int(full))
        n = self.full_per_length if full else self.quick_per_length
        lengths = self.data.test_lengths if full else self.data.train_lengths
        table = {int(L): self._exact(model, "test", n, int(L), rng) for L in lengths}
        ins = [v for L, v in table.items() if L <= self.train_max]
        result = {"val_exact_match": float(np.mean(ins))}
        if full:
            outs = [v for L, v in table.items() if L > self.train_max]
            result["ood_exact_match"] = float(np.mean(outs)) if outs else None
            result["exact_match_by_length"] = {str(L): v for L, v in table.items()}
        return result

    def trained_lengths(self):
        return set(self.data.train_lengths)

    def describe(self, result):
        lines = [
            f"addition: exact match {result['val_exact_match']:.2%} on held-out problems of the "
            f"training lengths (3-{self.train_max}), greedy decoding"
        ]
        lengths = self.by_length(result)
        if lengths:
            lines += length_table(*lengths, "exact")
        return lines

    # ---------------------------------------------------------------- inference
    def parse(self, prompt: str) -> tuple[int, int]:
        m = re.fullmatch(r"\s*(\d+)\s*\+\s*(\d+)\s*", prompt)
        if m is None:
            raise TaskError(
                f"generate: the addition prompt must look like 12+345 (digits, '+', digits), "
                f"got {prompt!r}"
            )
        return int(m.group(1)), int(m.group(2))

    def generate(self, model, prompt, options):
        from fluxion.models import seq2seq_beam_search

        a, b = self.parse(prompt)
        source = f"{str(a)[::-1]}+{str(b)[::-1]}"  # what the model reads: digits reversed
        length = len(source)
        max_len = self.data.output_length(length)
        if max_len + 1 > model.max_len and model.pos_kind != "rope":
            raise TaskError(
                f"generate: {prompt!r} has {length} characters; this model reads at most "
                f"{model.max_len - 2}"
            )
        if options.best_of:
            raise TaskError("generate: --best-of samples a gpt; for addition use --beam N")
        src = self.tokenizer.encode_batch([source])
        if options.beam:
            hyps = seq2seq_beam_search(
                model,
                fx.asarray(src[0]),
                options.beam,
                max_len,
                self.tokenizer.bos_id,
                self.end_id,
            )
            candidates = [(self._answer(ids), score) for ids, score in hyps]
        else:
            candidates = [(self._answer(self.decode(model, src, length)[0]), None)]
        lines = []
        for answer, score in candidates:
            mark = "" if answer == str(a + b) else f"  (wrong: {a + b})"
            tail = "" if score is None else f"  log p = {score:.3f}"
            lines.append(f"{a}+{b} = {answer}{mark}{tail}")
        return lines

    def _answer(self, ids) -> str:
        """The sum a decoded target spells: the digits before ``#``, un-reversed."""
        text = self.tokenizer.decode(list(ids))
        head = text.split(END, 1)[0]
        return head[::-1] if head else "?"
