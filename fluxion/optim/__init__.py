"""Optimizers: a functional core over pytrees and stateful PyTorch-style wrappers (also ``fx.nn.optim``).

>>> model = fx.nn.Linear(3, 1)
>>> loss_fn = lambda m: fx.sum(m(fx.ones((4, 3))) ** 2)

JAX style: a functional update over the model as a pytree

>>> opt_state = fx.optim.adamw_init(model)
>>> grads = fx.grad(loss_fn)(model)
>>> model, opt_state = fx.optim.adamw_update(model, grads, opt_state, lr=1e-3)

PyTorch style: ``.grad`` and an in-place ``step()`` that returns the model

>>> optimizer = fx.optim.AdamW(model, lr=1e-3)
>>> loss_fn(model).backward()
>>> model = optimizer.step()
"""

from fluxion.optim import schedules
from fluxion.optim.clip import clip_by_global_norm, clip_grad_norm_, clip_grad_value_, global_norm
from fluxion.optim.functional import (
    AdamState,
    SGDState,
    adam_init,
    adam_update,
    adamw_init,
    adamw_update,
    sgd_init,
    sgd_update,
)
from fluxion.optim.schedules import LRScheduler
from fluxion.optim.stateful import SGD, Adam, AdamW, Optimizer
