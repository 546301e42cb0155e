"""``difference``: is a > b? Expressions "a-b" with each number's digits reversed (the
seed tutorial's classification task), read character by character by an
``EncoderClassifier``.

Training expressions have 3 to 10 characters. The evaluation reports accuracy by length
on held-out expressions: lengths 3-10 in distribution (never trained on, drawn from the
same lengths), and the test split's 11-15 out of distribution. Sequences are padded with
``<pad>`` to one length, which the model masks out of attention and pooling, so a batch
of any mix of lengths is one compiled shape.
"""

from __future__ import annotations

import numpy as np

import fluxion as fx
from fluxion.tasks.base import Task, TaskError, accuracy, length_table, register


@register
class Difference(Task):
    name = "difference"
    length_key = "accuracy_by_length"
    help = "is a > b in 'a-b'? an EncoderClassifier over characters, by length"
    defaults = dict(
        steps=1500,
        batch_size=64,
        lr=1e-3,
        warmup=50,
        d_model=64,
        heads=4,
        layers=2,
        pos="rope",
        eval_every=250,
    )
    train_size, val_size, test_size = 50_000, 2_000, 2_000
    smoke = dict(train_size=300, val_size=100, test_size=100)

    def __init__(self, config, tokenizer=None):
        super().__init__(config, tokenizer)
        from fluxion.data import CharTokenizer, DifferenceTask

        self.data = DifferenceTask(seed=config.seed)
        if tokenizer is None:
            self.tokenizer = CharTokenizer(self.data.vocab)
        else:
            self.tokenizer = CharTokenizer.from_dict(tokenizer)
        self.train_max = max(self.data.train_lengths)
        self.max_len = self.data.max_length
        # the train split's tail is never trained on: the in-distribution held-out set
        train = self.data.split("train", self.train_size + self.val_size)
        self.train_x, self.train_y = self._encode(train[: self.train_size], self.train_max)
        self.val = train[self.train_size :]
        self.test = self.data.split("test", self.test_size)

    def _encode(self, pairs, length):
        exprs = [e for e, _ in pairs]
        labels = np.array([y for _, y in pairs], dtype=np.int64)
        return self.tokenizer.encode_batch(exprs, length=length), labels

    def tokenizer_dict(self):
        return self.tokenizer.to_dict()

    def build_model(self):
        from fluxion.models import EncoderClassifier

        c = self.config
        return EncoderClassifier(
            vocab_size=self.tokenizer.vocab_size,
            num_classes=2,
            d_model=c.d_model,
            num_heads=c.heads,
            num_layers=c.layers,
            dim_feedforward=c.dim_feedforward,
            max_len=self.max_len,
            pos=c.pos,
            pooling="mean",
            dropout=c.dropout,
            pad_id=self.tokenizer.pad_id,
        )

    def train_batch(self, rng):
        idx = rng.integers(0, len(self.train_y), size=self.config.batch_size)
        return self.train_x[idx], self.train_y[idx]

    def loss(self, model, tokens, labels):
        logits = model(tokens)
        return fx.nn.functional.cross_entropy(logits, labels), accuracy(logits, labels)

    def _accuracy_by_length(self, model, pairs) -> tuple[dict[int, float], float, float]:
        x, y = self._encode(pairs, self.max_len)
        logits = model(fx.asarray(x))
        loss = float(fx.nn.functional.cross_entropy(logits, fx.asarray(y)))
        hit = np.argmax(logits.numpy(), axis=-1) == y
        lengths = np.array([len(e) for e, _ in pairs])
        table = {int(n): float(hit[lengths == n].mean()) for n in np.unique(lengths)}
        return table, float(hit.mean()), loss

    def evaluate(self, model, full=False):
        val_table, val_acc, val_loss = self._accuracy_by_length(model, self.val)
        test_table, test_acc, test_loss = self._accuracy_by_length(model, self.test)
        result = {
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "test_loss": test_loss,
            "test_accuracy": test_acc,
        }
        if full:
            both = {**val_table, **test_table}
            result["accuracy_by_length"] = {str(n): both[n] for n in sorted(both)}
        return result

    def trained_lengths(self):
        return set(self.data.train_lengths)

    def describe(self, result):
        lines = [
            f"difference: accuracy {result['val_accuracy']:.2%} on held-out expressions of the "
            f"training lengths (3-{self.train_max}), {result['test_accuracy']:.2%} on the test "
            f"split (lengths {self.train_max + 1}-{self.max_len}, out of distribution)"
        ]
        lengths = self.by_length(result)
        if lengths:
            lines += length_table(*lengths, "accuracy")
        return lines

    def generate(self, model, prompt, options):
        raise TaskError(
            "generate: the difference task classifies; use `fluxion eval --checkpoint ...` "
            "(generate works with gpt and addition checkpoints)"
        )
