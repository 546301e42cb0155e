"""optax's API over fluxion's optimizers: ``import fluxion.optax as optax``.

Gradient transformations (``init``/``update`` pairs over pytrees), composed with ``chain``
and applied with ``apply_updates``; each runs the per-leaf rules of ``fx.optim``, so an
``adamw`` here and ``fx.optim.AdamW`` give bitwise-identical parameters.

>>> import fluxion.optax as optax
>>> params = {"w": fx.ones(3)}
>>> tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, weight_decay=1e-2))
>>> opt_state = tx.init(params)
>>> grads = fx.grad(lambda p: fx.sum(p["w"] ** 2))(params)
>>> updates, opt_state = tx.update(grads, opt_state, params)
>>> params = optax.apply_updates(params, updates)
>>> [round(w, 5) for w in params["w"].tolist()]
[0.99899, 0.99899, 0.99899]
"""

from fluxion.optax._loss import (
    l2_loss,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
    squared_error,
)
from fluxion.optax._schedule import (
    constant_schedule,
    cosine_decay_schedule,
    exponential_decay,
    join_schedules,
    linear_schedule,
    warmup_cosine_decay_schedule,
)
from fluxion.optax._transform import (
    EmptyState,
    GradientTransformation,
    InjectHyperparamsState,
    OptState,
    Params,
    ScalarOrSchedule,
    ScaleByAdamState,
    ScaleByScheduleState,
    Schedule,
    TraceState,
    Updates,
    adam,
    adamw,
    add_decayed_weights,
    apply_updates,
    chain,
    clip,
    clip_by_global_norm,
    identity,
    inject_hyperparams,
    scale,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_schedule,
    sgd,
    trace,
)
from fluxion.optim.clip import global_norm

__all__ = [
    "EmptyState", "GradientTransformation", "InjectHyperparamsState", "OptState", "Params",
    "ScalarOrSchedule", "ScaleByAdamState", "ScaleByScheduleState", "Schedule", "TraceState",
    "Updates", "adam", "adamw", "add_decayed_weights", "apply_updates", "chain", "clip",
    "clip_by_global_norm", "constant_schedule", "cosine_decay_schedule", "exponential_decay",
    "global_norm", "identity", "inject_hyperparams", "l2_loss", "sigmoid_binary_cross_entropy",
    "softmax_cross_entropy", "softmax_cross_entropy_with_integer_labels", "squared_error", "join_schedules", "linear_schedule", "scale",
    "scale_by_adam", "scale_by_learning_rate", "scale_by_schedule", "sgd", "trace",
    "warmup_cosine_decay_schedule",
]  # fmt: skip
