"""``classify``: the seed-000 task. Sequences of 8 tokens from a vocabulary of 20,
labelled by the sum of their tokens mod 3, classified by an ``EncoderClassifier``.

As in the seed the model trains on a fixed set (here 1,000 sequences, in minibatches) and
the headline number is how well it fits it (``train_accuracy``). The evaluation also
reports held-out sequences (``val_accuracy``) and lengths 4 to 16 (only 8 is trained on).
Expect those near chance (33%): the label depends on every token at once, like parity,
and a thousand examples teach a table, not the rule. That is the point of the next tasks.
"""

from __future__ import annotations

import fluxion as fx
from fluxion.tasks.base import Task, accuracy, eval_rng, length_table, register


@register
class Classify(Task):
    name = "classify"
    length_key = "accuracy_by_length"
    help = "sum of tokens mod 3 (the seed-000 task) with an EncoderClassifier"
    defaults = dict(
        steps=600,
        batch_size=64,
        lr=2e-3,
        warmup=30,
        d_model=64,
        heads=4,
        layers=2,
        pos="sinusoidal",
        eval_every=100,
    )
    seq_len, vocab, classes, train_size = 8, 20, 3, 1000
    eval_lengths = tuple(range(4, 17))

    def __init__(self, config, tokenizer=None):
        super().__init__(config, tokenizer)
        rng = eval_rng(config.seed)
        self.train_set = self._data(rng, self.train_size, self.seq_len)
        self.val = self._data(rng, 1000, self.seq_len)

    def _data(self, rng, n, seq_len):
        from fluxion.data import sum_mod_dataset

        seed = int(rng.integers(2**31))
        return sum_mod_dataset(n, seq_len, self.vocab, self.classes, seed=seed)

    def build_model(self):
        from fluxion.models import EncoderClassifier

        c = self.config
        return EncoderClassifier(
            vocab_size=self.vocab,
            num_classes=self.classes,
            d_model=c.d_model,
            num_heads=c.heads,
            num_layers=c.layers,
            dim_feedforward=c.dim_feedforward,
            max_len=max(self.eval_lengths),
            pos=c.pos,
            pooling="mean",
            dropout=c.dropout,
            pad_id=None,  # every id is a token of the task
        )

    def train_batch(self, rng):
        idx = rng.integers(0, self.train_size, size=self.config.batch_size)
        tokens, labels = self.train_set
        return tokens[idx], labels[idx]

    def loss(self, model, tokens, labels):
        logits = model(tokens)
        return fx.nn.functional.cross_entropy(logits, labels), accuracy(logits, labels)

    def _score(self, model, tokens, labels) -> tuple[float, float]:
        logits = model(fx.asarray(tokens))
        y = fx.asarray(labels)
        return float(fx.nn.functional.cross_entropy(logits, y)), float(accuracy(logits, y))

    def evaluate(self, model, full=False):
        _, train_acc = self._score(model, *self.train_set)
        val_loss, val_acc = self._score(model, *self.val)
        result = {"train_accuracy": train_acc, "val_loss": val_loss, "val_accuracy": val_acc}
        if full:
            rng = eval_rng(self.config.seed, salt=1)
            result["accuracy_by_length"] = {
                str(n): self._score(model, *self._data(rng, 500, n))[1] for n in self.eval_lengths
            }
        return result

    def trained_lengths(self):
        return {self.seq_len}

    def describe(self, result):
        lines = [
            f"classify (sum of {self.seq_len} tokens mod {self.classes}): training set "
            f"({self.train_size} sequences) fitted to {result['train_accuracy']:.2%}; held-out "
            f"accuracy {result['val_accuracy']:.2%} (chance {1 / self.classes:.1%})"
        ]
        lengths = self.by_length(result)
        if lengths:
            lines += length_table(*lengths, "accuracy")
        return lines
