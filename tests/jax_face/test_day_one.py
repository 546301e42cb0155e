"""A day-one JAX program, written once as JAX code and run twice: with JAX's imports and
with fluxion's (the same source text, only the import lines swapped). JAX runs in its
default mode, float32, as a day-one program would."""

from __future__ import annotations

import numpy as np
from jax_testing import assert_same

JAX_IMPORTS = """\
import jax
import jax.numpy as jnp
from jax import lax
"""
FLUXION_IMPORTS = """\
import fluxion as jax
import fluxion.numpy as jnp
from fluxion import lax
"""

PROGRAM = """
params = jax.tree_util.tree_map(jnp.asarray, INIT)   # a pytree: dicts of arrays


def forward(params, tokens):
    xs = params["embed"][tokens]                      # (T, D)

    def step(h, x):
        rnn = params["rnn"]
        h = jnp.tanh(x @ rnn["u"] + h @ rnn["w"] + rnn["b"])
        return h, h

    h, hs = lax.scan(step, jnp.zeros(D), xs)
    pooled = jnp.concatenate([h, jnp.mean(hs, axis=0)])
    return pooled @ params["head"]["w"] + params["head"]["b"]


def loss_fn(params, tokens, label):
    logits = forward(params, tokens)
    top = jnp.max(logits)
    log_probs = logits - top - jnp.log(jnp.sum(jnp.exp(logits - top)))
    return -jnp.sum(jnp.where(jnp.arange(C) == label, log_probs, 0.0))


def batch_loss(params, tokens, labels):
    return jnp.mean(jax.vmap(loss_fn, in_axes=(None, 0, 0))(params, tokens, labels))


@jax.jit
def train_step(params, tokens, labels):
    loss, grads = jax.value_and_grad(batch_loss)(params, tokens, labels)
    grads["embed"] = grads["embed"].at[0].set(0.0)   # token 0 is padding: never updated
    params = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
    return params, loss


@jax.jit
def per_example_grad_norms(params, tokens, labels):
    grads = jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, 0))(params, tokens, labels)
    squares = [jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree_util.tree_leaves(grads)]
    return jnp.sqrt(sum(squares))


losses = []
for _ in range(STEPS):
    params, loss = train_step(params, X, Y)
    losses.append(float(loss.block_until_ready()))
RESULT = {
    "losses": jnp.array(losses),
    "params": jax.device_get(params),
    "norms": per_example_grad_norms(params, X, Y),
    "leaves": len(jax.tree_util.tree_leaves(params)),
}
"""


def _inputs():
    rng = np.random.default_rng(0)
    vocab, d, c, batch, t = 7, 5, 3, 6, 4
    init = {
        "embed": rng.normal(size=(vocab, d)) * 0.5,
        "rnn": {
            "w": rng.normal(size=(d, d)) * 0.4,
            "u": rng.normal(size=(d, d)) * 0.4,
            "b": np.zeros(d),
        },
        "head": {"w": rng.normal(size=(2 * d, c)) * 0.3, "b": np.zeros(c)},
    }
    tokens = rng.integers(0, vocab, size=(batch, t))
    return {
        "INIT": _float32(init),
        "X": tokens,
        "Y": rng.integers(0, c, size=batch),
        "D": d,
        "C": c,
        "LR": 0.5,
        "STEPS": 4,
    }


def _float32(tree):
    return {
        k: _float32(v) if isinstance(v, dict) else v.astype(np.float32) for k, v in tree.items()
    }


def _run(imports: str) -> dict:
    namespace = _inputs()
    exec(compile(imports + PROGRAM, "day_one.py", "exec"), namespace)
    return namespace["RESULT"]


def test_the_same_program_runs_with_either_import_header():
    want, got = _run(JAX_IMPORTS), _run(FLUXION_IMPORTS)
    assert_same(got["losses"], want["losses"], rtol=1e-5)
    assert_same(got["params"], want["params"], rtol=1e-5, atol=1e-6)
    assert_same(got["norms"], want["norms"], rtol=1e-5)
    assert got["leaves"] == want["leaves"] == 6
    assert want["losses"][-1] < want["losses"][0]  # it trains
    np.testing.assert_array_equal(got["params"]["embed"][0], _inputs()["INIT"]["embed"][0])
    assert got["params"]["embed"].dtype == np.float32
