"""optax's gradient transformations over the per-leaf rules of ``fluxion.optim.functional``.

A transformation is a pair of pure functions: ``init(params) -> state`` and
``update(updates, state, params=None) -> (updates, state)``. Each update here maps one rule of
``fx.optim`` over the leaves (``adam_update_leaf``, ``adam_moments``, ``adam_direction``,
``momentum_leaf``, ``decay_leaf``, ``scale_leaf``); ``fx.optim``'s own optimizers run the same
rules in the same order, so ``adamw(...)`` applied with ``apply_updates`` and
``fx.optim.AdamW`` give the same parameters to the last bit. ``adam``/``adamw`` take their
step in one rule, the learning rate in Adam's numerator as PyTorch has it: a hand-built
``chain(scale_by_adam(), scale_by_learning_rate(lr))`` agrees with them to rounding. With
PyTorch's order of operations (Adam divides by ``sqrt(v) / sqrt(1 - b2**t)``), the rules
agree with optax itself to float rounding, not bitwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from fluxion.core.pytree import tree_flatten, tree_map, tree_unflatten
from fluxion.core.tensor import Tensor
from fluxion.core.trace import no_grad
from fluxion.errors import ArgumentTypeError, InvalidArgumentError
from fluxion.ops import elementwise as E
from fluxion.ops.primitives import constant, zeros
from fluxion.optim import functional as F
from fluxion.optim.clip import global_norm

Params = Any
Updates = Any
OptState = Any
Schedule = Callable[[Any], Any]
ScalarOrSchedule = float | Tensor | Schedule

_INT32 = F.dtypes.to_np("int32")


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(updates, state, params=None) -> (updates, state)``.

    >>> import fluxion.optax as optax
    >>> tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1))
    >>> params = {"w": fx.ones(2)}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": fx.tensor([3.0, 4.0])}, state, params)
    >>> optax.apply_updates(params, updates)["w"]
    [0.94 0.92]:f32[2]:cpu(0)
    """

    init: Callable
    update: Callable


class EmptyState(NamedTuple):
    """The state of a transformation that keeps none."""


class ScaleByAdamState(NamedTuple):
    count: Tensor
    mu: Any
    nu: Any


class ScaleByScheduleState(NamedTuple):
    count: Tensor


class TraceState(NamedTuple):
    trace: Any


def _count() -> Tensor:
    return constant(0, _INT32)


def _zeros_like(params):
    return tree_map(lambda p: zeros(p.shape, p._np_dtype), params)


def _needs_params(op: str, params) -> None:
    if params is None:
        raise InvalidArgumentError(
            f"{op}: update needs the parameters; call tx.update(updates, state, params)"
        )


def _map(fn, tree, *rest) -> list:
    """``fn`` over the leaves of ``tree`` and the matching leaves of ``rest``, under
    ``no_grad`` (updates carry no autograd graph, as ``fx.optim``'s): ``(treedef, results)``."""
    leaves, treedef = tree_flatten(tree)
    others = [tree_flatten(r)[0] for r in rest]
    for o in others:
        if len(o) != len(leaves):
            raise InvalidArgumentError(
                f"the updates have {len(leaves)} leaves but the state or params have {len(o)}; "
                "the state was made for another tree (tx.init(params) with these params)"
            )
    with no_grad():
        return treedef, [fn(*xs) for xs in zip(leaves, *others)]


def _trees(treedef, results: list, n: int) -> list:
    """Leafwise results that are n-tuples as n trees."""
    columns = list(zip(*results)) or [()] * n
    return [tree_unflatten(treedef, list(c)) for c in columns]


def identity() -> GradientTransformation:
    """Updates pass unchanged."""
    return GradientTransformation(lambda params: EmptyState(), lambda u, s, p=None: (u, s))


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """The transformations one after the other; the state is the tuple of theirs."""

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None):
        new_state = []
        for t, s in zip(transforms, state):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init, update)


def apply_updates(params: Params, updates: Updates) -> Params:
    """``params + updates``, leaf by leaf, in each parameter's dtype (an ``nn.Parameter``
    stays a Parameter)."""
    treedef, new = _map(lambda p, u: E.astype(p + u, p.dtype), params, updates)
    return F._rebuild(treedef, tree_flatten(params)[0], new)


def scale(step_size) -> GradientTransformation:
    """``step_size * updates``."""

    def update(updates, state, params=None):
        coef = F._as_f64(F.scalar(step_size))
        treedef, new = _map(lambda u: F.scale_leaf(u, coef, u), updates)
        return tree_unflatten(treedef, new), state

    return GradientTransformation(lambda params: EmptyState(), update)


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """``step_size_fn(count) * updates``, ``count`` being the number of updates done."""

    def update(updates, state, params=None):
        coef = F._as_f64(F.scalar(step_size_fn(F.concrete_count(state.count))))
        treedef, new = _map(lambda u: F.scale_leaf(u, coef, u), updates)
        return tree_unflatten(treedef, new), ScaleByScheduleState(state.count + 1)

    return GradientTransformation(lambda params: ScaleByScheduleState(_count()), update)


def scale_by_learning_rate(learning_rate: ScalarOrSchedule, *, flip_sign: bool = True):
    """``-learning_rate * updates`` (a number, a scalar tensor, or a schedule ``count -> lr``)."""
    sign = -1 if flip_sign else 1
    if callable(learning_rate) and not isinstance(learning_rate, Tensor):
        return scale_by_schedule(lambda count: sign * F.scalar(learning_rate(count)))
    return scale(sign * F._as_f64(F.scalar(learning_rate)))


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, eps_root: float = 0.0
) -> GradientTransformation:
    r"""Adam's direction :math:`\hat m / (\sqrt{\hat v} + \epsilon)` (``fx.optim``'s
    ``adam_moments`` and ``adam_direction``); ``mu`` and ``nu`` are the moments."""
    F.check_hyperparameters("scale_by_adam", betas=(b1, b2), eps=eps)
    if eps_root != 0:
        raise InvalidArgumentError(
            f"scale_by_adam: eps_root={eps_root} is not supported (fluxion's Adam takes the "
            "square root of the moment itself, as PyTorch does); leave eps_root=0"
        )
    b1, b2 = float(b1), float(b2)

    def init(params):
        return ScaleByAdamState(_count(), _zeros_like(params), _zeros_like(params))

    def update(updates, state, params=None):
        c = F.adam_step_scalars(state.count, b1, b2)

        def leaf(g, m, v):
            m, v, _ = F.adam_moments(E.astype(g, m.dtype), m, v, None, beta1=b1, beta2=b2)
            return F.adam_direction(m, v, c, eps=eps, coef=1 / c.bias_correction1), m, v

        u, mu, nu = _trees(*_map(leaf, updates, state.mu, state.nu), 3)
        return u, ScaleByAdamState(state.count + 1, mu, nu)

    return GradientTransformation(init, update)


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum: ``t = updates + decay * t`` (``fx.optim``'s ``momentum_leaf``); the updates
    become ``t``, or ``updates + decay * t`` with ``nesterov``."""
    F.check_hyperparameters("trace", decay=decay)

    def update(updates, state, params=None):
        def leaf(g, t):
            return F.momentum_leaf(
                E.astype(g, t.dtype), t, False, momentum=decay, nesterov=nesterov
            )

        u, t = _trees(*_map(leaf, updates, state.trace), 2)
        return u, TraceState(t)

    return GradientTransformation(lambda params: TraceState(_zeros_like(params)), update)


def _mask_of(mask, params):
    return mask(params) if callable(mask) else mask


def add_decayed_weights(weight_decay=0.0, mask=None) -> GradientTransformation:
    """``updates + weight_decay * params`` (``fx.optim``'s ``decay_leaf``); ``mask`` (a tree
    of bools like params, or a function of params giving one) says which leaves decay."""

    def update(updates, state, params=None):
        _needs_params("add_decayed_weights", params)
        wd = F.scalar(weight_decay)
        if mask is None:
            treedef, new = _map(lambda u, p: F.decay_leaf(u, p, wd), updates, params)
        else:
            keep = _mask_of(mask, params)
            treedef, new = _map(
                lambda u, p, k: F.decay_leaf(u, p, wd) if k else u, updates, params, keep
            )
        return tree_unflatten(treedef, new), state

    return GradientTransformation(lambda params: EmptyState(), update)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Updates scaled by ``max_norm / norm`` where their global norm exceeds ``max_norm``
    (optax's rule; ``fx.optim.clip_by_global_norm`` is PyTorch's, with ``norm + 1e-6``)."""
    F.check_hyperparameters("clip_by_global_norm", max_norm=max_norm)

    def update(updates, state, params=None):
        norm = global_norm(updates)

        def leaf(u):
            n = E.astype(norm, u.dtype)
            return E.where(n < max_norm, u, (u / n) * max_norm)

        treedef, new = _map(leaf, updates)
        return tree_unflatten(treedef, new), state

    return GradientTransformation(lambda params: EmptyState(), update)


def clip(max_delta: float) -> GradientTransformation:
    """Each element of the updates clipped to ``[-max_delta, max_delta]``."""
    F.check_hyperparameters("clip", max_delta=max_delta)

    def update(updates, state, params=None):
        treedef, new = _map(lambda u: E.clip(u, -max_delta, max_delta), updates)
        return tree_unflatten(treedef, new), state

    return GradientTransformation(lambda params: EmptyState(), update)


# ----------------------------------------------------------------------------- optimizers


def sgd(learning_rate: ScalarOrSchedule, momentum: float | None = None, nesterov: bool = False):
    r"""SGD, with momentum (``trace``) when ``momentum`` is given:
    ``chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate))``; the same
    parameters as ``fx.optim.SGD(lr=learning_rate, momentum=momentum, nesterov=nesterov)``."""
    return chain(
        trace(momentum, nesterov) if momentum is not None else identity(),
        scale_by_learning_rate(learning_rate),
    )


def _lr_state(learning_rate):
    """The state ``scale_by_learning_rate(learning_rate)`` keeps (a count for a schedule)."""
    return scale_by_learning_rate(learning_rate).init(None)


def _lr_at(learning_rate, lr_state):
    """The learning rate of this step, and the next state of its schedule."""
    if isinstance(lr_state, ScaleByScheduleState):
        count = lr_state.count
        lr = F._resolve_lr("adam", learning_rate, count)
        return F._as_f64(lr), ScaleByScheduleState(count + 1)
    return F._as_f64(F.scalar(learning_rate)), lr_state


def _adam(learning_rate, b1, b2, eps, eps_root, weight_decay=None, mask=None):
    """Adam (``weight_decay`` None) or AdamW as one transformation running ``fx.optim``'s
    ``adam_update_leaf``: the learning rate folded into Adam's numerator, as PyTorch (and so
    ``fx.optim``) does, where a chain would scale Adam's direction by it after. The state
    has the fields of optax's chain: ``(ScaleByAdamState, [EmptyState,] lr state)``."""
    adam_part = scale_by_adam(b1, b2, eps, eps_root)
    b1, b2 = float(b1), float(b2)
    decay = () if weight_decay is None else (EmptyState(),)

    def init(params):
        return (adam_part.init(params), *decay, _lr_state(learning_rate))

    def update(updates, state, params=None):
        adam_state, lr_state = state[0], state[-1]
        wd = 0.0 if weight_decay is None else F.scalar(weight_decay)
        if weight_decay is not None:
            _needs_params("adamw", params)
        lr, lr_state = _lr_at(learning_rate, lr_state)
        c = F.adam_step_scalars(adam_state.count, b1, b2)
        decayed = params if params is not None else updates  # only read where wd != 0
        keep = tree_map(lambda _: True, decayed) if mask is None else _mask_of(mask, params)

        def leaf(g, m, v, p, k):
            g = E.astype(g, m.dtype)
            u, m, v, _ = F.adam_update_leaf(
                p, g, m, v, None, c, lr=lr, beta1=b1, beta2=b2, eps=eps,
                weight_decay=wd if k else 0.0,
            )  # fmt: skip
            return u, m, v

        u, mu, nu = _trees(*_map(leaf, updates, adam_state.mu, adam_state.nu, decayed, keep), 3)
        return u, (ScaleByAdamState(adam_state.count + 1, mu, nu), *decay, lr_state)

    return GradientTransformation(init, update)


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
) -> GradientTransformation:
    r"""Adam: ``scale_by_adam(b1, b2, eps)`` then ``scale_by_learning_rate(learning_rate)``,
    in one step (the same parameters as ``fx.optim.Adam``, bitwise).

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        u = -\frac{\gamma}{1-\beta_1^t}\,\frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}
    """
    return _adam(learning_rate, b1, b2, eps, eps_root)


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 1e-4,
    mask=None,
) -> GradientTransformation:
    r"""AdamW: ``scale_by_adam``, ``add_decayed_weights(weight_decay, mask)``,
    ``scale_by_learning_rate(learning_rate)`` in one step, :math:`u = -\gamma(\text{adam} +
    \lambda p)`. With the same hyperparameters, ``fx.optim.AdamW`` gives the same parameters
    bitwise (optax's default ``weight_decay`` is 1e-4, PyTorch's 1e-2).

    >>> tx = adamw(1e-3)
    >>> params = {"w": fx.ones(2)}
    >>> updates, state = tx.update({"w": fx.tensor([1.0, -1.0])}, tx.init(params), params)
    >>> [round(u, 7) for u in updates["w"].tolist()]
    [-0.0010001, 0.0009999]
    """
    return _adam(learning_rate, b1, b2, eps, eps_root, weight_decay, mask)


# ----------------------------------------------------------------------------- hyperparameters


class InjectHyperparamsState(NamedTuple):
    """``hyperparams``: the current value of each numeric hyperparameter (a dict of float32
    scalars; write into it to change one); ``inner_state``: the wrapped optimizer's."""

    count: Tensor
    hyperparams: dict
    inner_state: Any


def _hyperparam(value) -> Tensor:
    """A hyperparameter as optax keeps it: a float32 scalar."""
    if isinstance(value, Tensor):
        return E.astype(value, F.dtypes.DEFAULT_FLOAT)
    return constant(float(value), F.dtypes.DEFAULT_FLOAT)


def inject_hyperparams(inner_factory: Callable, static_args: tuple = ()) -> Callable:
    """``inner_factory`` with its numeric keyword arguments (numbers or schedules) kept in the
    state, where they can be read and changed between steps, and traced under ``fx.jit``.

    >>> tx = inject_hyperparams(sgd)(learning_rate=0.1)
    >>> state = tx.init({"w": fx.ones(1)})
    >>> float(state.hyperparams["learning_rate"])
    0.10000000149011612
    """
    static_args = {static_args} if isinstance(static_args, str) else set(static_args)

    def wrapped(*args, **kwargs):
        if args:
            raise ArgumentTypeError(
                "inject_hyperparams: pass the hyperparameters by keyword "
                f"(learning_rate=...), got {len(args)} positional"
            )
        schedules = {k: v for k, v in kwargs.items() if callable(v) and k not in static_args}
        numbers = {
            k: v
            for k, v in kwargs.items()
            if k not in static_args and k not in schedules and isinstance(v, int | float | Tensor)
            and not isinstance(v, bool)
        }  # fmt: skip
        other = {k: v for k, v in kwargs.items() if k not in schedules and k not in numbers}

        def values(count, names):
            return {k: _hyperparam(schedules[k](count) if k in schedules else numbers[k])
                    for k in names}  # fmt: skip

        def init(params):
            hp = values(0, [*numbers, *schedules])
            return InjectHyperparamsState(_count(), hp, inner_factory(**other, **hp).init(params))

        def update(updates, state, params=None):
            hp = {**state.hyperparams, **values(F.concrete_count(state.count), schedules)}
            inner = inner_factory(**other, **hp)
            updates, inner_state = inner.update(updates, state.inner_state, params)
            return updates, InjectHyperparamsState(state.count + 1, hp, inner_state)

        return GradientTransformation(init, update)

    return wrapped
