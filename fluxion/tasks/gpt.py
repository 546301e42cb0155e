"""``gpt``: a character-level language model (``GPT``) on a text corpus.

The corpus is ``char_corpus()`` (1 MB of the Python standard library's own source, no
download) or ``--text FILE``; its last 10% is the validation split. Every step trains on
random windows of ``context`` characters; the evaluation reports the validation loss in
nats per character next to the unigram baseline (the loss of a model that ignores
context), and the full evaluation adds samples continued from a few prompts.
"""

from __future__ import annotations

import numpy as np

import fluxion as fx
from fluxion.tasks.base import Task, TaskError, accuracy, eval_rng, register

PROMPTS = ("def ", "import ", "class ")


@register
class CharGPT(Task):
    name = "gpt"
    help = "a character language model on a text corpus (GPT), val loss vs unigram, samples"
    defaults = dict(
        steps=1500,
        batch_size=32,
        lr=2e-3,
        warmup=100,
        d_model=128,
        heads=4,
        layers=2,
        pos="learned",
        context=64,
        eval_every=250,
    )
    val_batches, val_batch_size = 8, 64
    smoke = dict(val_batches=2, val_batch_size=8)

    def __init__(self, config, tokenizer=None):
        super().__init__(config, tokenizer)
        from fluxion.data import CharTokenizer, LMDataset, char_corpus

        try:
            text = char_corpus(config.text)
        except fx.errors.InvalidArgumentError:
            raise TaskError(
                "gpt: this Python has no source of its standard library to train on; give a "
                "UTF-8 text file with --text FILE"
                if config.text is None
                else f"gpt: --text {config.text!r} is not a file; give a UTF-8 text file, or "
                "leave --text out to train on the Python standard library's source (eval and "
                "generate read the file that the checkpoint was trained on)"
            ) from None
        if tokenizer is None:
            self.tokenizer = CharTokenizer().fit(text)
        else:
            self.tokenizer = CharTokenizer.from_dict(tokenizer)
        try:
            ids = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        except fx.errors.InvalidArgumentError:
            raise TaskError(
                "gpt: the text has characters the checkpoint's tokenizer does not know; "
                "evaluate a checkpoint on the text it was trained on (--text)"
            ) from None
        self.data = LMDataset(ids, config.context, vocab_size=self.tokenizer.vocab_size)
        self.unigram = self.data.unigram_baseline("val")
        rng = eval_rng(config.seed)
        self.val = [
            self.data.batch("val", self.val_batch_size, rng) for _ in range(self.val_batches)
        ]

    def tokenizer_dict(self):
        return self.tokenizer.to_dict()

    def build_model(self):
        from fluxion.models import GPT

        c = self.config
        return GPT(
            vocab_size=self.tokenizer.vocab_size,
            d_model=c.d_model,
            num_heads=c.heads,
            num_layers=c.layers,
            max_len=c.context,
            dim_feedforward=c.dim_feedforward,
            pos=c.pos,
            dropout=c.dropout,
        )

    def train_batch(self, rng):
        return self.data.batch("train", self.config.batch_size, rng)

    def loss(self, model, x, y):
        logits = model(x)
        V = logits.shape[-1]
        loss = fx.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        return loss, accuracy(logits, y)

    def evaluate(self, model, full=False):
        losses, accs = [], []
        for x, y in self.val:
            loss, acc = self.loss(model, fx.asarray(x), fx.asarray(y))
            losses.append(float(loss)), accs.append(float(acc))
        result = {
            "val_loss": float(np.mean(losses)),
            "val_accuracy": float(np.mean(accs)),
            "unigram_loss": self.unigram,
        }
        if full:
            result["samples"] = {
                p: self.sample(model, p, 120, seed=self.config.seed)
                for p in PROMPTS
                if all(c in self.tokenizer.chars for c in p)
            }
        return result

    def sample(self, model, prompt: str, n: int, seed=0, temperature=0.8, top_k=None, top_p=None):
        """``prompt`` and ``n`` sampled characters. Past the model's context the window
        slides: each round continues the last ``context / 2`` characters."""
        from fluxion.models import generate

        if not prompt:
            raise TaskError("generate: the prompt is empty; give at least one character")
        ids = self.tokenizer.encode(prompt)  # unknown characters: a named error
        context = self.config.context
        key, left = fx.random.key(seed), n
        while left > 0:
            keep = ids[-(context // 2) :] if len(ids) + left > context else ids
            step = min(left, context - len(keep))
            key, sub = fx.random.split(key)
            out = generate(
                model,
                fx.asarray(np.array([keep], dtype=np.int64)),
                step,
                key=sub,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
            )
            ids = ids + out.numpy()[0, len(keep) :].tolist()
            left -= step
        return self.tokenizer.decode(ids)

    def _prompt_ids(self, prompt: str, n: int) -> list[int]:
        """The prompt's ids for one search of ``n`` new tokens within the context."""
        if not prompt:
            raise TaskError("generate: the prompt is empty; give at least one character")
        ids = self.tokenizer.encode(prompt)
        if len(ids) + n > self.config.context:
            raise TaskError(
                f"generate: the prompt ({len(ids)} characters) and --max-new-tokens {n} exceed "
                f"the model's context of {self.config.context}; beam search and best-of run "
                "within one context: ask for fewer tokens or a shorter prompt"
            )
        return ids

    def describe(self, result):
        gap = result["unigram_loss"] - result["val_loss"]
        lines = [
            f"gpt: validation loss {result['val_loss']:.4f} nats/char (perplexity "
            f"{np.exp(result['val_loss']):.2f}), unigram baseline {result['unigram_loss']:.4f} "
            f"({'better' if gap > 0 else 'worse'} by {abs(gap):.4f}); next-character accuracy "
            f"{result['val_accuracy']:.2%}"
        ]
        for prompt, text in (result.get("samples") or {}).items():
            lines.append(f"--- sample from {prompt!r}")
            lines.append(text)
        return lines

    def generate(self, model, prompt, options):
        from fluxion.models import beam_search, best_of_n

        n = options.max_new_tokens
        if options.beam and options.best_of:
            raise TaskError("generate: choose one of --beam and --best-of")
        if options.beam or options.best_of:
            ids = self._prompt_ids(prompt, n)
            prompt_ids = fx.asarray(np.array(ids, dtype=np.int64))
            if options.beam:
                hyps = beam_search(model, prompt_ids, options.beam, n)
            else:
                hyps = best_of_n(
                    model,
                    prompt_ids,
                    options.best_of,
                    n,
                    key=fx.random.key(options.seed),
                    temperature=options.temperature,
                    top_k=options.top_k,
                    top_p=options.top_p,
                )
            best, score = hyps[0]
            return [self.tokenizer.decode(best), f"(log p = {score:.2f}, best of {len(hyps)})"]
        return [
            self.sample(
                model,
                prompt,
                n,
                seed=options.seed,
                temperature=options.temperature,
                top_k=options.top_k,
                top_p=options.top_p,
            )
        ]
