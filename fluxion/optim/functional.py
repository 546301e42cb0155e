"""The functional core: optimizers as one per-leaf rule mapped over a pytree of parameters.

Each optimizer is an ``init`` and an ``update`` over any pytree of parameters (a dict of
tensors, a list, an ``nn.Module``)::

    state = fx.optim.adamw_init(params)
    params, state = fx.optim.adamw_update(params, grads, state, lr=1e-3)

``grads`` has the structure of ``params`` (what ``fx.grad`` returns); a ``None`` gradient
leaves its parameter as it is. Leaves that are not trainable (``nn.Module`` buffers, integer
tensors, non-tensors) pass through unchanged and get no optimizer state.

The state is a pytree (a NamedTuple): ``step``, an int32 count of the updates done, and one
moment tensor per parameter leaf, in ``fx.tree_leaves(params)`` order (``None`` for the
leaves that are not trained). Its structure depends only on the number of leaves, so it does
not change when a Module switches between train and eval.

Parameters of a low precision (a model cast with ``model.to(fx.bfloat16)``) are updated
through float32: the state holds a float32 master copy of each (``master``) and float32
moments, the update runs on the master, and the parameter gets the master rounded to its
dtype; small updates accumulate in the master instead of rounding away (PyTorch updates
such parameters in their own dtype). Float32 parameters have no master copy.

The updates follow PyTorch's equations (``torch.optim``'s single-tensor path) and run with
fluxion ops only, under ``fx.no_grad()``: updated parameters carry no autograd graph, yet the
update can be traced by ``fx.grad``, ``fx.vmap`` and ``fx.jit`` (``lr`` and ``step`` may be
traced values). The stateful optimizers in ``fluxion.optim.stateful`` call the same per-leaf
rules (``sgd_leaf``, ``adam_leaf``), so both styles produce bitwise-identical parameters.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from fluxion.core import dtypes
from fluxion.core.checks import check_nonnegative, check_number
from fluxion.core.pytree import tree_flatten, tree_unflatten
from fluxion.core.tensor import Tensor, Tracer
from fluxion.core.trace import carry_kind, no_grad
from fluxion.errors import ArgumentTypeError, InvalidArgumentError, ShapeError
from fluxion.ops.elementwise import astype, maximum, power, sqrt, where
from fluxion.ops.primitives import constant, zeros

# ----------------------------------------------------------------------------- shared helpers


def is_traced(*xs) -> bool:
    return any(isinstance(x, Tracer) for x in xs)


def scalar(x):
    """A hyperparameter as a Python float when it is concrete, else the traced tensor."""
    if isinstance(x, Tensor) and not isinstance(x, Tracer):
        return float(x)
    return x


def like(c, p: Tensor):
    """A coefficient ready to meet ``p``: Python floats are weakly typed already; a traced
    (float64) coefficient is cast to ``p``'s dtype, as PyTorch casts its double scalars."""
    return astype(c, p.dtype) if isinstance(c, Tensor) else c


def check_hyperparameters(op: str, **hp) -> None:
    """Bad hyperparameters fail early, with the name of the optimizer and of the argument:
    every one is a finite number >= 0 (betas: a pair in [0, 1)). A schedule is checked at
    each step, where it gives its value; a traced value where it is concrete."""
    for name, value in hp.items():
        if callable(value) and not isinstance(value, Tensor):
            continue
        if name != "betas":
            check_nonnegative(op, "lr (the learning rate)" if name == "lr" else name, value)
            continue
        what = f"{op}: betas must be a pair (beta1, beta2) in [0, 1), got {value!r}"
        try:
            pair = tuple(value)
        except TypeError:
            raise ArgumentTypeError(what) from None
        if len(pair) != 2:
            raise InvalidArgumentError(what)
        for i, b in enumerate(pair):
            check_number(op, f"betas[{i}] of {value!r}", b, 0.0, 1.0, high_open=True)


def _nn_module():
    """``fluxion.nn.module`` (imported late: nn imports optim), or None where it is absent."""
    try:
        return importlib.import_module("fluxion.nn.module")
    except ModuleNotFoundError as e:
        if e.name not in ("fluxion", "fluxion.nn", "fluxion.nn.module"):
            raise
        return None


def _trainable_mask(params, leaves) -> list[bool]:
    """True for the leaves to optimize: float tensors that the Module (if any) calls trainable."""
    mask = [isinstance(x, Tensor) and dtypes.is_float(x._np_dtype) for x in leaves]
    trainable = getattr(_nn_module(), "trainable_mask", None)
    if trainable is None:
        return mask
    flags = list(trainable(params))
    if len(flags) != len(leaves):
        raise InvalidArgumentError(
            f"trainable_mask gave {len(flags)} flags for a tree of {len(leaves)} leaves"
        )
    return [m and bool(f) for m, f in zip(mask, flags)]


def _flatten_update(op, params, grads, state_lists):
    """Leaves of params and grads, the mask, and checks that grads and state fit params."""
    leaves, treedef = tree_flatten(params)
    g_leaves, _ = tree_flatten(grads, is_leaf=lambda x: x is None)
    if len(g_leaves) != len(leaves):
        raise InvalidArgumentError(
            f"{op}: grads have {len(g_leaves)} leaves but params have {len(leaves)}; pass the "
            "gradient of the loss with respect to params (fx.grad(loss_fn)(params))"
        )
    for name, lst in state_lists.items():
        if lst is not None and len(lst) != len(leaves):
            raise InvalidArgumentError(
                f"{op}: state.{name} has {len(lst)} entries but params have {len(leaves)} leaves; "
                "the state was made for another model (create it with the matching *_init(params))"
            )
    mask = _trainable_mask(params, leaves)
    for i, (p, g, m) in enumerate(zip(leaves, g_leaves, mask)):
        if not m:
            continue
        if g is not None and tuple(g.shape) != tuple(p.shape):
            raise ShapeError(
                f"{op}: the gradient of leaf {i} has shape {tuple(g.shape)} but the parameter has "
                f"shape {tuple(p.shape)}"
            )
        for name, lst in state_lists.items():
            if lst is None or (name == "master" and p._np_dtype not in dtypes.LOW_FLOATS):
                continue  # float32 leaves have no master copy
            if lst[i] is None or tuple(lst[i].shape) != tuple(p.shape):
                got = "no entry" if lst[i] is None else f"shape {tuple(lst[i].shape)}"
                raise ShapeError(
                    f"{op}: state.{name}[{i}] has {got} but parameter leaf {i} has shape "
                    f"{tuple(p.shape)}; the state was made for other parameters (under vmap, "
                    "create it inside the mapped function or map it too)"
                )
    return leaves, treedef, g_leaves, mask


def _rebuild(treedef, old_leaves, new_leaves):
    """The updated tree. A concrete ``nn.Parameter`` stays a Parameter, so the model that
    ``adamw_update`` returns can go on training with ``loss.backward()`` as well."""
    param_type = getattr(_nn_module(), "Parameter", None)
    if param_type is not None:
        rebuilt = []
        for old, new in zip(old_leaves, new_leaves):
            if new is not old and type(old) is param_type and not isinstance(new, Tracer):
                new = param_type(new, requires_grad=old.requires_grad)
            elif new is not old:
                carry_kind(old, new)  # traced by jit: returned as a Parameter
            rebuilt.append(new)
        new_leaves = rebuilt
    return tree_unflatten(treedef, new_leaves)


def state_dtype(np_dtype):
    """The dtype of a parameter's optimizer state: float32 for float16/bfloat16 parameters
    (see ``masters``), else the parameter's."""
    return dtypes.DEFAULT_FLOAT if np_dtype in dtypes.LOW_FLOATS else np_dtype


def _moments(leaves, mask) -> list:
    return [zeros(p.shape, state_dtype(p._np_dtype)) if m else None for p, m in zip(leaves, mask)]


def masters(leaves, mask) -> list | None:
    """Float32 copies of the trained low-precision leaves (None for the others); None when
    there are none, so a float32 model's state has no master field to carry."""
    copies = [
        astype(p, dtypes.DEFAULT_FLOAT) if m and p._np_dtype in dtypes.LOW_FLOATS else None
        for p, m in zip(leaves, mask)
    ]
    return copies if any(c is not None for c in copies) else None


def through_master(leaf_rule, p, master, *args, **kwargs):
    """``leaf_rule`` on the float32 master of ``p`` where it has one: ``(new p, new master,
    rest of the rule's outputs)``."""
    new, *rest = leaf_rule(p if master is None else master, *args, **kwargs)
    return (new, None, *rest) if master is None else (astype(new, p._np_dtype), new, *rest)


def concrete_count(step):
    """A count of updates done as a Python int, unless it is traced."""
    return step if is_traced(step) else int(step)


def _resolve_lr(op, lr, step):
    """``lr`` as a number or traced tensor; a schedule is called with the count of updates done."""
    if callable(lr) and not isinstance(lr, Tensor):
        step = concrete_count(step)
        lr = lr(step)
        check_nonnegative(op, f"lr (the schedule's value at step {step})", lr)
    return scalar(lr)


def _as_f64(x):
    return astype(x, dtypes.to_np("float64")) if isinstance(x, Tensor) else x


# ----------------------------------------------------------------------------- SGD


class SGDState(NamedTuple):
    """``step``: int32 count of updates done; ``momentum_buffer``: one per leaf (None without momentum)."""

    step: Tensor
    momentum_buffer: list | None
    master: list | None = None  # float32 copies of low-precision parameters (see above)


def momentum_leaf(g, buf, first, *, momentum, dampening=0.0, nesterov=False):
    """The momentum of SGD on one tensor: ``(g, buffer) -> (direction, buffer)`` (optax's
    ``trace`` with ``dampening=0``). ``first`` says that this is the parameter's first step (a
    bool, or a traced bool tensor): the buffer then starts as the gradient itself, as in PyTorch.
    """
    if first is True:
        buf = g
    else:
        step = buf * momentum + (1 - dampening) * g
        buf = step if first is False else where(first, g, step)
    return (g + momentum * buf if nesterov else buf), buf


def scale_leaf(u, coef, p):
    """``coef * u``, with a traced ``coef`` cast to ``p``'s dtype (optax's ``scale``)."""
    return like(coef, p) * u


def decay_leaf(u, p, weight_decay):
    """``u + weight_decay * p`` (optax's ``add_decayed_weights``)."""
    return u + weight_decay * p


def sgd_leaf(
    p, g, buf, first, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
    maximize=False,
):  # fmt: skip
    """One SGD step on one tensor: ``(p, g, momentum buffer) -> (p, buffer)``, as the chain
    (weight decay, momentum, ``-lr``) that ``fluxion.optax.sgd`` runs, then ``p + update``."""
    g = astype(g, p.dtype)  # the update runs in the parameter's dtype (a no-op when equal)
    if maximize:
        g = -g
    if weight_decay != 0:
        g = decay_leaf(g, p, weight_decay)
    if momentum != 0:
        g, buf = momentum_leaf(
            g, buf, first, momentum=momentum, dampening=dampening, nesterov=nesterov
        )
    return p + scale_leaf(g, -lr, p), buf


def sgd_init(params, momentum: float = 0.0) -> SGDState:
    """SGD state for ``params``; momentum buffers are allocated when ``momentum`` is not 0.

    >>> params = {"w": fx.ones(3)}
    >>> state = fx.optim.sgd_init(params, momentum=0.9)
    >>> params, state = fx.optim.sgd_update(params, {"w": fx.ones(3)}, state, lr=0.1, momentum=0.9)
    >>> params["w"]
    [0.9 0.9 0.9]:f32[3]:cpu(0)
    """
    check_hyperparameters("sgd_init", momentum=momentum)
    leaves, _ = tree_flatten(params)
    mask = _trainable_mask(params, leaves)
    bufs = _moments(leaves, mask) if momentum != 0 else None
    return SGDState(constant(0, dtypes.to_np("int32")), bufs, masters(leaves, mask))


def sgd_update(
    params,
    grads,
    state: SGDState,
    lr=1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> tuple[Any, SGDState]:
    r"""One step of stochastic gradient descent (PyTorch's ``torch.optim.SGD``).

    .. math::
        g &\leftarrow g + \lambda p \\
        b &\leftarrow \mu b + (1 - \tau) g \quad (b = g \text{ on the first step}) \\
        g &\leftarrow g + \mu b \ (\text{nesterov}) \quad\text{else}\quad g \leftarrow b \\
        p &\leftarrow p - \gamma g

    with learning rate :math:`\gamma` (``lr``: a number, a traced scalar, or a schedule
    ``step -> lr``), momentum :math:`\mu`, dampening :math:`\tau`, weight decay :math:`\lambda`.
    Returns ``(new_params, new_state)``; see ``sgd_init`` for an example.
    """
    check_hyperparameters(
        "sgd_update", lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay
    )
    if nesterov and (momentum <= 0 or dampening != 0):
        raise InvalidArgumentError(
            "sgd_update: nesterov=True needs momentum > 0 and dampening = 0, got "
            f"momentum={momentum}, dampening={dampening}"
        )
    if momentum != 0 and state.momentum_buffer is None:
        raise InvalidArgumentError(
            f"sgd_update: momentum={momentum} needs momentum buffers, and this state has none; "
            f"create it with sgd_init(params, momentum={momentum})"
        )
    bufs_in = state.momentum_buffer if momentum != 0 else None
    leaves, treedef, g_leaves, mask = _flatten_update(
        "sgd_update", params, grads, {"momentum_buffer": bufs_in, "master": state.master}
    )
    step = state.step
    lr = _as_f64(_resolve_lr("sgd_update", lr, step))
    first = (step == 0) if is_traced(step) else int(step) == 0
    new_leaves = list(leaves)
    new_bufs = None if state.momentum_buffer is None else list(state.momentum_buffer)
    new_masters = None if state.master is None else list(state.master)
    with no_grad():
        for i, (p, g, m) in enumerate(zip(leaves, g_leaves, mask)):
            if not m or g is None:
                continue
            buf = None if bufs_in is None else bufs_in[i]
            master = None if new_masters is None else new_masters[i]
            new_leaves[i], master, buf = through_master(
                sgd_leaf, p, master, g, buf, first, lr=lr, momentum=momentum,
                dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                maximize=maximize,
            )  # fmt: skip
            if new_masters is not None:
                new_masters[i] = master
            if bufs_in is not None:
                new_bufs[i] = buf
        new_step = step + 1
    return _rebuild(treedef, leaves, new_leaves), SGDState(new_step, new_bufs, new_masters)


# ----------------------------------------------------------------------------- Adam / AdamW


class AdamState(NamedTuple):
    """``step``: int32 count of updates done; first and second moments, one per leaf
    (None for leaves that are not trained); ``max_exp_avg_sq`` only with amsgrad."""

    step: Tensor
    exp_avg: list
    exp_avg_sq: list
    max_exp_avg_sq: list | None
    master: list | None = None  # float32 copies of low-precision parameters (see above)


class AdamScalars(NamedTuple):
    """The per-step scalars of Adam, computed once per step in double precision (as PyTorch
    does with Python floats): ``1 - beta1**t`` and ``sqrt(1 - beta2**t)``."""

    bias_correction1: Any
    bias_correction2_sqrt: Any


def adam_scalars(step, beta1: float, beta2: float) -> AdamScalars:
    """``step`` is the 1-based number of the step being taken (an int, or a traced tensor)."""
    if is_traced(step):
        t = _as_f64(step)
        return AdamScalars(1 - power(beta1, t), sqrt(1 - power(beta2, t)))
    t = float(step)
    return AdamScalars(1 - beta1**t, (1 - beta2**t) ** 0.5)


def adam_step_scalars(count, beta1: float, beta2: float) -> AdamScalars:
    """The scalars of the step after ``count`` updates done (an int32 tensor, maybe traced)."""
    return adam_scalars(concrete_count(count) + 1, beta1, beta2)


def adam_moments(g, m, v, vmax, *, beta1, beta2, amsgrad=False):
    """The moments of Adam after gradient ``g``: ``-> (exp_avg, exp_avg_sq, max_exp_avg_sq)``."""
    w = 1 - beta1  # m.lerp_(g, w), with the two branches of PyTorch's lerp
    m = m + w * (g - m) if w < 0.5 else g - (g - m) * (1 - w)
    v = v * beta2 + (1 - beta2) * g * g
    if amsgrad:
        vmax = maximum(vmax, v)
    return m, v, vmax


def adam_direction(m, v, c: AdamScalars, *, eps, coef):
    """``coef * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``, PyTorch's Adam step: ``coef`` is
    ``-lr / (1 - beta1**t)`` for the step itself, ``1 / (1 - beta1**t)`` for optax's
    ``scale_by_adam`` (the bias-corrected direction)."""
    return like(coef, m) * m / (sqrt(v) / like(c.bias_correction2_sqrt, m) + eps)


def adam_leaf(
    p, g, m, v, vmax, c: AdamScalars, *, lr, beta1, beta2, eps, weight_decay=0.0,
    decoupled=False, amsgrad=False, maximize=False,
):  # fmt: skip
    """One Adam(W) step on one tensor: ``-> (p, exp_avg, exp_avg_sq, max_exp_avg_sq)``, as
    ``p + adam_update_leaf(...)``: what ``fluxion.optax.adam``/``adamw`` update by."""
    g = astype(g, p.dtype)  # the update runs in the parameter's dtype (a no-op when equal)
    if maximize:
        g = -g
    if weight_decay != 0 and not decoupled:
        g = decay_leaf(g, p, weight_decay)
    u, m, v, vmax = adam_update_leaf(
        p, g, m, v, vmax, c, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
        weight_decay=weight_decay if decoupled else 0.0, amsgrad=amsgrad,
    )  # fmt: skip
    return p + u, m, v, vmax


def adam_update_leaf(p, g, m, v, vmax, c, *, lr, beta1, beta2, eps, weight_decay, amsgrad=False):
    """The update of one Adam step with decoupled weight decay (AdamW's, 0 for Adam):
    ``-> (update, exp_avg, exp_avg_sq, max_exp_avg_sq)``; the learning rate sits in the
    numerator (``-lr / (1 - beta1**t)``), as in PyTorch."""
    m, v, vmax = adam_moments(g, m, v, vmax, beta1=beta1, beta2=beta2, amsgrad=amsgrad)
    u = adam_direction(m, vmax if amsgrad else v, c, eps=eps, coef=-(lr / c.bias_correction1))
    if weight_decay != 0:
        # PyTorch's p * (1 - lr * wd) as a change of p: exact (the two are within a factor
        # of 2), so p + update rounds as PyTorch's p * (1 - lr * wd) + step does
        u = u + (p * like(1 - lr * weight_decay, p) - p)
    return u, m, v, vmax


def adam_init(params, amsgrad: bool = False) -> AdamState:
    """Adam/AdamW state for ``params``: zero moments (and their running max with ``amsgrad``).

    >>> params = {"w": fx.ones(2)}
    >>> state = fx.optim.adam_init(params)
    >>> params, state = fx.optim.adam_update(params, {"w": fx.tensor([1.0, -1.0])}, state, lr=0.1)
    >>> [round(w, 6) for w in params["w"].tolist()]
    [0.9, 1.1]
    """
    leaves, _ = tree_flatten(params)
    mask = _trainable_mask(params, leaves)
    return AdamState(
        constant(0, dtypes.to_np("int32")),
        _moments(leaves, mask),
        _moments(leaves, mask),
        _moments(leaves, mask) if amsgrad else None,
        masters(leaves, mask),
    )


adamw_init = adam_init


def _adam_update(
    op, params, grads, state, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled
):
    check_hyperparameters(op, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    beta1, beta2 = (float(b) for b in betas)
    if amsgrad and state.max_exp_avg_sq is None:
        raise InvalidArgumentError(
            f"{op}: amsgrad=True needs max_exp_avg_sq in the state, and this state has none; "
            f"create it with {op.replace('update', 'init')}(params, amsgrad=True)"
        )
    vmaxes = state.max_exp_avg_sq if amsgrad else None
    leaves, treedef, g_leaves, mask = _flatten_update(
        op, params, grads,
        {"exp_avg": state.exp_avg, "exp_avg_sq": state.exp_avg_sq, "max_exp_avg_sq": vmaxes,
         "master": state.master},
    )  # fmt: skip
    step = state.step
    lr = _as_f64(_resolve_lr(op, lr, step))
    c = adam_step_scalars(step, beta1, beta2)
    new_leaves = list(leaves)
    ms, vs = list(state.exp_avg), list(state.exp_avg_sq)
    new_vmaxes = None if state.max_exp_avg_sq is None else list(state.max_exp_avg_sq)
    new_masters = None if state.master is None else list(state.master)
    with no_grad():
        for i, (p, g, keep) in enumerate(zip(leaves, g_leaves, mask)):
            if not keep or g is None:
                continue
            master = None if new_masters is None else new_masters[i]
            new_leaves[i], master, ms[i], vs[i], vmax = through_master(
                adam_leaf, p, master, g, ms[i], vs[i], None if vmaxes is None else vmaxes[i],
                c, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                decoupled=decoupled, amsgrad=amsgrad, maximize=maximize,
            )  # fmt: skip
            if new_masters is not None:
                new_masters[i] = master
            if amsgrad:
                new_vmaxes[i] = vmax
        new_step = step + 1
    state = AdamState(new_step, ms, vs, new_vmaxes, new_masters)
    return _rebuild(treedef, leaves, new_leaves), state


def adam_update(
    params,
    grads,
    state: AdamState,
    lr=1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
) -> tuple[Any, AdamState]:
    r"""One Adam step (PyTorch's ``torch.optim.Adam``; weight decay is L2, added to the gradient).

    .. math::
        g &\leftarrow g + \lambda p \\
        m &\leftarrow \beta_1 m + (1 - \beta_1) g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2) g^2
            \quad (\hat v \leftarrow \max(\hat v, v) \text{ with amsgrad}) \\
        p &\leftarrow p - \frac{\gamma}{1 - \beta_1^t}
            \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}

    ``lr`` may be a number, a traced scalar, or a schedule ``step -> lr``.
    Returns ``(new_params, new_state)``; see ``adam_init`` for an example.
    """
    return _adam_update(
        "adam_update", params, grads, state, lr, betas, eps, weight_decay, amsgrad, maximize, False
    )


def adamw_update(
    params,
    grads,
    state: AdamState,
    lr=1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
) -> tuple[Any, AdamState]:
    r"""One AdamW step (PyTorch's ``torch.optim.AdamW``): Adam with decoupled weight decay,
    applied to the parameter before the Adam step: :math:`p \leftarrow p (1 - \gamma\lambda)`,
    then the update of ``adam_update`` with :math:`\lambda = 0`.

    >>> model = {"w": fx.ones(2), "b": fx.zeros(2)}
    >>> state = fx.optim.adamw_init(model)
    >>> grads = fx.grad(lambda m: fx.sum((m["w"] * 3.0 + m["b"]) ** 2))(model)
    >>> model, state = fx.optim.adamw_update(model, grads, state, lr=1e-3)
    >>> model["w"]
    [0.99899 0.99899]:f32[2]:cpu(0)
    """
    return _adam_update(
        "adamw_update", params, grads, state, lr, betas, eps, weight_decay, amsgrad, maximize, True
    )
