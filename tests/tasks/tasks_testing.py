"""Tiny settings that make every task train, evaluate and generate in about a second."""

from __future__ import annotations

import pytest

from fluxion.tasks.addition import Addition
from fluxion.tasks.classify import Classify
from fluxion.tasks.difference import Difference
from fluxion.tasks.gpt import CharGPT

TINY = dict(steps=4, batch_size=8, d_model=16, heads=2, layers=1, eval_every=2, context=16)


def shrink(monkeypatch: pytest.MonkeyPatch) -> None:
    """Smaller data and evaluation sets (class attributes the tasks read)."""
    monkeypatch.setattr(Classify, "train_size", 64)
    monkeypatch.setattr(Classify, "eval_lengths", (6, 8, 10))
    monkeypatch.setattr(Difference, "train_size", 300)
    monkeypatch.setattr(Difference, "val_size", 100)
    monkeypatch.setattr(Difference, "test_size", 100)
    monkeypatch.setattr(Addition, "quick_per_length", 2)
    monkeypatch.setattr(Addition, "full_per_length", 4)
    monkeypatch.setattr(CharGPT, "val_batches", 2)
    monkeypatch.setattr(CharGPT, "val_batch_size", 8)


def text_file(folder) -> str:
    """A small corpus for the gpt task."""
    path = folder / "corpus.txt"
    path.write_text("def add(a, b):\n    return a + b\n\nclass Point:\n    x = 0\n" * 40)
    return str(path)
