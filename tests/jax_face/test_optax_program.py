"""A day-one JAX training program with an optax chain, written once and run twice: with
jax/optax's imports and with fluxion's (only the import lines differ). Params are a pytree,
the step is ``value_and_grad`` under ``jit`` with ``clip_by_global_norm`` then ``adamw`` on a
warm-up cosine schedule, and per-example gradients come from ``vmap(grad)``."""

from __future__ import annotations

import numpy as np
from jax_testing import assert_same

JAX_IMPORTS = "import jax\nimport jax.numpy as jnp\nimport optax\n"
FLUXION_IMPORTS = (
    "import fluxion as jax\nimport fluxion.numpy as jnp\nimport fluxion.optax as optax\n"
)

PROGRAM = """
params = jax.tree_util.tree_map(jnp.asarray, INIT)
schedule = optax.warmup_cosine_decay_schedule(0.0, 5e-2, 2, STEPS)
tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=1e-2))
opt_state = tx.init(params)


def loss_fn(params, x, y):
    h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"])
    logits = h @ params["out"]["w"] + params["out"]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@jax.jit
def train_step(params, opt_state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


per_example_grads = jax.jit(jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, 0)))

losses = []
for _ in range(STEPS):
    params, opt_state, loss = train_step(params, opt_state, X, Y)
    losses.append(float(loss))
RESULT = {
    "losses": jnp.array(losses),
    "params": jax.device_get(params),
    "count": int(opt_state[1][0].count),
    "per_example": per_example_grads(params, X[:, None], Y[:, None]),
}
"""


def _inputs():
    rng = np.random.default_rng(1)
    f32 = lambda a: a.astype(np.float32)
    init = {
        "hidden": {"w": f32(rng.normal(size=(4, 8)) * 0.5), "b": np.zeros(8, np.float32)},
        "out": {"w": f32(rng.normal(size=(8, 3)) * 0.5), "b": np.zeros(3, np.float32)},
    }
    x = f32(rng.normal(size=(10, 4)))
    return {"INIT": init, "X": x, "Y": rng.integers(0, 3, size=10).astype(np.int32), "STEPS": 8}


def _run(imports: str) -> dict:
    namespace = _inputs()
    exec(compile(imports + PROGRAM, "optax_program.py", "exec"), namespace)
    return namespace["RESULT"]


def test_the_same_optax_program_runs_with_either_import_header():
    want, got = _run(JAX_IMPORTS), _run(FLUXION_IMPORTS)
    assert_same(got["losses"], want["losses"], rtol=1e-5)
    # Adam divides each gradient by its own scale: float32 rounding of a small gradient (the
    # two sum their matmuls in different orders) moves a parameter by up to ~1e-6 a step
    assert_same(got["params"], want["params"], rtol=1e-5, atol=1e-5)
    assert_same(got["per_example"], want["per_example"], rtol=1e-5, atol=1e-5)  # at those params
    assert got["count"] == want["count"] == 8
    assert want["losses"][-1] < want["losses"][0]  # it trains
