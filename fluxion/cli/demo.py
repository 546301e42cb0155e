"""``fluxion demo``: the seed experiment, one transformer classifier trained two ways.

The data is the seed's: 150 sequences of 8 tokens from a vocabulary of 20, labelled by the
sum of their tokens mod 3; the model an ``EncoderClassifier`` (d_model 32, 4 heads, 2
layers, feed-forward 64, sinusoidal positions, mean pooling), trained full-batch with AdamW
(lr 1e-3):

1. PyTorch style: ``model.zero_grad()``, ``loss.backward()``, ``model = optimizer.step()``;
2. JAX style: ``fx.value_and_grad`` + ``adamw_update`` in one ``fx.jit`` step;
3. the same functional step without ``fx.jit``, for the timing baseline.

Both paradigms start from the same initial weights (``fx.manual_seed(0)``), so their
losses agree to rounding: the table shows them side by side every 10 steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tqdm.auto import tqdm

import fluxion as fx

SEQ_LEN, VOCAB, CLASSES, SAMPLES = 8, 20, 3, 150
D_MODEL, HEADS, LAYERS, FF, LR = 32, 4, 2, 64, 1e-3


def make_model():
    from fluxion.models import EncoderClassifier

    fx.manual_seed(0)
    return EncoderClassifier(
        vocab_size=VOCAB,
        num_classes=CLASSES,
        d_model=D_MODEL,
        num_heads=HEADS,
        num_layers=LAYERS,
        dim_feedforward=FF,
        max_len=SEQ_LEN,
        pos="sinusoidal",
        pooling="mean",
        dropout=0.0,
        pad_id=None,  # every id 0..19 is a token of the task: nothing is padding
    )


def loss_fn(model, tokens, labels):
    return fx.nn.functional.cross_entropy(model(tokens), labels)


def accuracy(model, tokens, labels) -> float:
    model.eval()
    with fx.no_grad():
        hit = fx.argmax(model(tokens), axis=-1) == labels
    model.train()
    return float(fx.mean(fx.astype(hit, fx.float32)))


def _bar(steps: int, desc: str, progress: bool):
    return tqdm(range(steps), desc=desc, unit="step", disable=not progress, leave=False)


def run_demo(steps: int = 60, progress: bool = True, echo: Callable[[str], None] = print) -> dict:
    """Run the three trainings and print the comparison; returns the numbers printed."""
    from fluxion.data import sum_mod_dataset

    tokens_np, labels_np = sum_mod_dataset(SAMPLES, SEQ_LEN, VOCAB, CLASSES, seed=42)
    tokens, labels = fx.asarray(tokens_np), fx.asarray(labels_np)
    echo(
        f"fluxion demo: {SAMPLES} sequences of {SEQ_LEN} tokens (vocab {VOCAB}), "
        f"label = sum mod {CLASSES}; EncoderClassifier d_model={D_MODEL}, heads={HEADS}, "
        f"layers={LAYERS}; AdamW lr={LR}; {steps} full-batch steps"
    )
    table: dict[int, list] = {}

    # 1. PyTorch style: the imperative loop ---------------------------------------------
    model = make_model()
    echo(f"parameters: {sum(p.size for p in model.parameters()):,}")
    optimizer = fx.optim.AdamW(model, lr=LR)
    eager_s = 0.0
    for step in _bar(steps, "imperative", progress):
        t0 = time.perf_counter()
        model.zero_grad()
        loss = loss_fn(model, tokens, labels)
        loss.backward()
        model = optimizer.step()
        eager_s += time.perf_counter() - t0
        if (step + 1) % 10 == 0 or step + 1 == steps:
            table[step + 1] = [float(loss), accuracy(model, tokens, labels)]

    # 2. JAX style: value_and_grad + adamw_update inside fx.jit ------------------------
    def train_step(model, state, tokens, labels):
        loss, grads = fx.value_and_grad(loss_fn)(model, tokens, labels)
        model, state = fx.optim.adamw_update(model, grads, state, lr=LR)
        return model, state, loss

    compiled_step = fx.jit(train_step)
    model_c = make_model()
    state = fx.optim.adamw_init(model_c)
    first_ms, cached_s = 0.0, 0.0
    for step in _bar(steps, "compiled", progress):
        t0 = time.perf_counter()
        model_c, state, loss = compiled_step(model_c, state, tokens, labels)
        dt = time.perf_counter() - t0
        if step == 0:
            first_ms = dt * 1e3
        else:
            cached_s += dt
        if (step + 1) % 10 == 0 or step + 1 == steps:
            table.setdefault(step + 1, [None, None])
            table[step + 1] += [float(loss), accuracy(model_c, tokens, labels)]

    # 3. the same functional step, not compiled (the baseline for the speed-up) ----------
    model_f = make_model()
    state_f = fx.optim.adamw_init(model_f)
    functional_s = 0.0
    for _ in _bar(steps, "functional (no jit)", progress):
        t0 = time.perf_counter()
        model_f, state_f, _loss = train_step(model_f, state_f, tokens, labels)
        functional_s += time.perf_counter() - t0

    echo("")
    echo(f"{'step':>5}  {'imperative loss':>15} {'acc':>7}   {'compiled loss':>13} {'acc':>7}")
    echo("-" * 55)
    for step, (l1, a1, l2, a2) in sorted(table.items()):
        echo(f"{step:>5}  {l1:>15.4f} {a1:>7.1%}   {l2:>13.4f} {a2:>7.1%}")
    diff = max(abs(r[0] - r[2]) for r in table.values())
    echo(f"largest loss difference between the two paradigms: {diff:.2e}")

    n = max(steps - 1, 1)
    eager_ms = eager_s / steps * 1e3
    cached_ms = cached_s / n * 1e3
    functional_ms = functional_s / steps * 1e3
    echo("")
    echo("timings (ms per training step)")
    echo(f"  imperative (backward + AdamW.step)   {eager_ms:9.2f}")
    echo(f"  functional, not compiled             {functional_ms:9.2f}")
    echo(f"  compiled, cached                     {cached_ms:9.2f}")
    echo(f"  compiled, first call (trace+compile) {first_ms:9.2f}")
    echo(f"  speed-up of compiled over imperative {eager_ms / max(cached_ms, 1e-9):8.2f}x")
    echo(f"  speed-up of compiled over functional {functional_ms / max(cached_ms, 1e-9):8.2f}x")
    echo(f"compiled cache stats: {compiled_step.stats}")
    return {
        "table": table,
        "eager_ms": eager_ms,
        "functional_ms": functional_ms,
        "compiled_ms": cached_ms,
        "first_compile_ms": first_ms,
        "stats": compiled_step.stats,
        "loss_diff": diff,
    }
