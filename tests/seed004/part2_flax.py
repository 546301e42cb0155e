# Seed 004, "An introduction to Flax": the slide's model, optimizer and jitted train step as
# written there (Flax 0.10's API: nnx.Optimizer(model, tx) keeping its model, update(grads)).
# `train(x, y, steps)` below the slide's code runs the step and prints the losses and the
# BatchNorm statistics. Run by tests/jax_face/test_seed_004.py under flax and with the
# imports swapped to fluxion.
import numpy as np
import optax
from flax import nnx


class Model(nnx.Module):
    def __init__(self, din, dmid, dout, rngs: nnx.Rngs):
        self.linear = nnx.Linear(din, dmid, rngs=rngs)
        self.bn = nnx.BatchNorm(dmid, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.linear_out = nnx.Linear(dmid, dout, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.dropout(self.bn(self.linear(x))))
        return self.linear_out(x)


model = Model(2, 64, 3, rngs=nnx.Rngs(0))  # eager initialization
optimizer = nnx.Optimizer(model, optax.adam(1e-3))  # reference sharing


@nnx.jit  # automatic state management for JAX transforms
def train_step(model, optimizer, x, y):
    def loss_fn(model):
        y_pred = model(x)  # call methods directly
        return ((y_pred - y) ** 2).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(grads)  # in-place updates

    return loss


# ---- the driver
def train(x, y, steps):
    for step in range(steps):
        loss = train_step(model, optimizer, x, y)
        print("step", step, "loss", float(loss))
    print("mean", np.asarray(model.bn.mean[...])[:8])
    print("var", np.asarray(model.bn.var[...])[:8])
