"""Shared helpers of the model tests: tiny models, a training loop, NumPy views."""

from __future__ import annotations

import numpy as np

import fluxion as fx
from fluxion.nn import functional as F


def np_of(t) -> np.ndarray:
    return t.numpy() if isinstance(t, fx.Tensor) else np.asarray(t)


def tokens(rng, shape, vocab, low=0) -> fx.Tensor:
    return fx.tensor(rng.integers(low, vocab, shape).astype(np.int64))


def train(model, loss_fn, steps: int, lr: float = 1e-2) -> tuple[float, float]:
    """AdamW for ``steps`` steps of ``loss_fn(model)``; (first loss, last loss)."""
    opt = fx.optim.AdamW(model, lr=lr, weight_decay=0.0)
    first = last = None
    for _ in range(steps):
        loss = loss_fn(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = float(loss.item())
        first = last if first is None else first
    return first, float(loss_fn(model).item())


def lm_loss(logits, targets, ignore_index=-100):
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=ignore_index)
