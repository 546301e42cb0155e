# Seed 004, "From numpy to JAX": the MLP's loss, its gradient (grad, jit), per-example
# gradients (vmap) and data-parallel ones (pmap), as the slides write them. Two slips of the
# slides fixed, for JAX itself: `from jax import jnp` is `import jax.numpy as jnp`, and
# predict returns its outputs. The driver below the slides' code prints what they compute.
# Run by tests/jax_face/test_seed_004.py under jax and with the imports swapped to fluxion.
import jax.numpy as jnp
import numpy as np
from jax import grad, jit, pmap, vmap


def predict(params, inputs):
    for W, b in params:
        outputs = jnp.dot(inputs, W) + b
        inputs = jnp.tanh(outputs)
    return outputs


def mse_loss(params, batch):
    inputs, targets = batch
    preds = predict(params, inputs)
    return jnp.sum((preds - targets) ** 2)


gradient_fn = jit(grad(mse_loss))
per_examples_gradient = jit(vmap(gradient_fn))
parallel_gradients = jit(pmap(gradient_fn))

# ---- the driver: data, then what each function gives
rng = np.random.default_rng(4)
sizes = [3, 8, 2]
params = [
    (jnp.asarray(rng.normal(size=(m, n)).astype(np.float32) / np.sqrt(m)), jnp.zeros(n))
    for m, n in zip(sizes[:-1], sizes[1:])
]
inputs = jnp.asarray(rng.normal(size=(5, 3)).astype(np.float32))
targets = jnp.asarray(rng.normal(size=(5, 2)).astype(np.float32))
batch = (inputs, targets)

print("loss", float(mse_loss(params, batch)))
for W_grad, b_grad in gradient_fn(params, batch):
    print("grad", np.asarray(W_grad).ravel(), np.asarray(b_grad))

# vmap maps every argument over its axis 0, params too: one copy of them per example
stacked = [(jnp.stack([W] * 5), jnp.stack([b] * 5)) for W, b in params]
per_example = per_examples_gradient(stacked, (inputs[:, None], targets[:, None]))
for W_grads, b_grads in per_example:
    print("per-example", np.asarray(W_grads).shape, np.asarray(W_grads.sum(0)).ravel())
    print("per-example", np.asarray(b_grads).shape, np.asarray(b_grads.sum(0)))

# pmap over one device: a leading axis of size 1
replicated = [(W[None], b[None]) for W, b in params]
for W_grad, b_grad in parallel_gradients(replicated, (inputs[None], targets[None])):
    print("parallel", np.asarray(W_grad).shape, np.asarray(W_grad[0]).ravel())
    print("parallel", np.asarray(b_grad).shape, np.asarray(b_grad[0]))
