"""Flax NNX's API over ``fluxion.nn``: ``from fluxion import nnx``.

Modules are built eagerly with explicit random streams (``rngs=nnx.Rngs(0)``), parameters
are ``nnx.Param`` variables in Flax's layouts, and ``nnx.jit``/``nnx.value_and_grad`` take
modules as arguments and carry what they write (BatchNorm statistics, random streams,
optimizer state) back out. ``nnx.Optimizer`` runs an optax transformation
(``fluxion.optax``) over the model's ``Param`` state.

>>> from fluxion import nnx
>>> import fluxion.optax as optax
>>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
>>> optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
>>> @nnx.jit
... def train_step(model, optimizer, x, y):
...     loss, grads = nnx.value_and_grad(lambda m: ((m(x) - y) ** 2).mean())(model)
...     optimizer.update(model, grads)
...     return loss
>>> x, y = fx.ones((4, 2)), fx.zeros((4, 1))
>>> first = float(train_step(model, optimizer, x, y))
>>> for _ in range(20):
...     last = float(train_step(model, optimizer, x, y))
>>> last < first, int(optimizer.step.value)
(True, 21)
"""

from fluxion.nn import functional as _F
from fluxion.nnx import initializers
from fluxion.nnx._graph import (
    BatchStat,
    GraphDef,
    Param,
    Rngs,
    RngState,
    RngStream,
    State,
    Variable,
    merge,
    split,
    state,
    update,
    variables,
)
from fluxion.nnx._layers import (
    BatchNorm,
    Dropout,
    Embed,
    LayerNorm,
    Linear,
    MultiHeadAttention,
    Sequential,
)
from fluxion.nnx._module import (
    ModelAndOptimizer,
    Module,
    Optimizer,
    OptState,
    grad,
    jit,
    value_and_grad,
    vmap,
)
from fluxion.ops import sigmoid, tanh

# Flax 0.12 marks containers of modules and arrays as pytree data; a fluxion module looks
# into plain lists and dicts already
List, Dict = list, dict


def data(value):
    """``value`` itself: lists, dicts and tensors held by a module are its data already."""
    return value


def clone(module):
    """A copy of ``module`` with the same values (new variables: writes do not share)."""
    return merge(*split(module))


relu = _F.relu
silu = swish = _F.silu
softplus = _F.softplus
log_sigmoid = _F.logsigmoid


def gelu(x, approximate: bool = True):
    """GELU; ``approximate=True`` (the tanh form) by default, as in Flax and JAX."""
    return _F.gelu(x, approximate="tanh" if approximate else "none")


def softmax(x, axis=-1):
    return _F.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return _F.log_softmax(x, axis=axis)


__all__ = [
    "BatchNorm", "BatchStat", "Dict", "Dropout", "Embed", "GraphDef", "LayerNorm", "Linear", "List",
    "ModelAndOptimizer", "Module", "MultiHeadAttention", "OptState", "Optimizer", "Param",
    "RngState", "RngStream", "Rngs", "Sequential", "State", "Variable", "clone", "data", "gelu", "grad",
    "initializers", "jit", "log_sigmoid", "log_softmax", "merge", "relu", "sigmoid", "silu",
    "softmax", "softplus", "split", "state", "swish", "tanh", "update", "value_and_grad",
    "variables", "vmap",
]  # fmt: skip
