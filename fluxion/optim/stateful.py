"""Stateful optimizers (PyTorch style) on top of the functional core's per-leaf rules.

>>> model = fx.nn.Linear(3, 1)
>>> optimizer = fx.optim.AdamW(model, lr=1e-3)     # or AdamW(model.parameters(), ...)
>>> loss = fx.sum(model(fx.ones((4, 3))) ** 2)
>>> loss.backward()
>>> model = optimizer.step()                        # updates in place and returns the model
>>> optimizer.zero_grad()

``step()`` reads each parameter's ``.grad`` (parameters without one are skipped) and writes
the new value into the same parameter object. It returns the model when the optimizer was
built from a Module, else None, so ``model = optimizer.step()`` and ``optimizer.step()`` both
work. ``lr`` may be a number or a schedule ``step -> lr`` (``fluxion.optim.schedules``), called
with the number of ``step()`` calls made so far.

A float16/bfloat16 parameter is updated through a float32 master copy (``state[i]["master"]``)
with float32 moments, as in the functional core; the parameter gets the master rounded.

Eagerly, ``step()`` updates the parameters of a group alike (dtype, step count) at once, as
PyTorch's foreach path does: their values laid end to end, the per-leaf rule applied once,
the result cut back into each parameter and its state (see ``Optimizer._update_all``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from fluxion.core import dtypes
from fluxion.core.checks import check_nonnegative
from fluxion.core.staging import outlive_trace
from fluxion.core.tensor import Tensor, Tracer
from fluxion.core.trace import enable_grad, is_staged, no_grad, staging
from fluxion.errors import ArgumentTypeError, InvalidArgumentError, ShapeError, TracerError
from fluxion.ops.primitives import zeros
from fluxion.optim.functional import (
    adam_leaf,
    adam_scalars,
    check_hyperparameters,
    sgd_leaf,
    state_dtype,
    through_master,
)


def is_module(obj) -> bool:
    try:
        from fluxion.nn.module import Module
    except ImportError:
        return False
    return isinstance(obj, Module)


def write(p: Tensor, value: Tensor) -> None:
    """Give ``p`` a new value, keeping the object (and so every reference to it)."""
    p.data = value


def _copy(t: Tensor, dtype) -> Tensor:
    return Tensor(t, dtype=dtype)


def _kind(arg):
    """What ``_update_all`` groups the arguments of a rule by: a tensor's dtype, or a value."""
    return (True, arg._np_dtype) if isinstance(arg, Tensor) else (False, arg)


def _end_to_end(tensors) -> Tensor | None:
    """The values of ``tensors`` laid end to end in one flat tensor (None for Nones)."""
    if tensors[0] is None or not isinstance(tensors[0], Tensor):
        return tensors[0]
    return Tensor._from_array(np.concatenate([t.numpy().reshape(-1) for t in tensors]))


def _cut(flat: Tensor, like) -> list[Tensor]:
    """``flat`` cut back into tensors of the shapes of ``like``."""
    values, start, pieces = flat.numpy(), 0, []
    for t in like:
        size = t.numpy().size
        pieces.append(Tensor._from_array(values[start : start + size].reshape(t.shape)))
        start += size
    return pieces


class Optimizer:
    """Base class: parameter groups, ``zero_grad``, ``lr``, ``state_dict``.

    Subclasses set ``defaults`` and implement ``_step_group(group, lr)``. ``state`` maps a
    parameter's index (its position across all groups, as in ``state_dict``) to its state.
    """

    def __init__(self, params, defaults: dict):
        name = type(self).__name__
        self._model = params if is_module(params) else None
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}
        self._index: dict[int, int] = {}
        self._step_count = 0
        for group in _as_groups(name, params):
            self.add_param_group(group)

    # ----------------------------------------------------------------------- groups
    def add_param_group(self, group: dict) -> None:
        """Add a group ``{'params': [...], 'lr': ..., ...}``; unset options take the defaults."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise InvalidArgumentError(
                f"{name}: a parameter group is a dict with a 'params' entry, got {type(group).__name__}"
            )
        params = _as_param_list(name, group["params"])
        if not params:
            raise InvalidArgumentError(
                f"{name}: params is empty; pass model.parameters(), a Module, or a non-empty "
                "list of tensors"
            )
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise InvalidArgumentError(
                f"{name}: unknown option(s) {sorted(unknown)} in a parameter group; "
                f"the options are {sorted(self.defaults)}"
            )
        full = {"params": params, **{k: group.get(k, v) for k, v in self.defaults.items()}}
        self._check(full)
        for p in params:
            if id(p) in self._index:
                raise InvalidArgumentError(
                    f"{name}: a parameter of shape {p.shape} appears in more than one parameter group"
                )
            self._index[id(p)] = len(self._index)
        self.param_groups.append(full)

    def _check(self, group: dict) -> None:
        names = ("lr", "betas", "eps", "weight_decay", "momentum", "dampening")
        check_hyperparameters(type(self).__name__, **{k: group[k] for k in names if k in group})
        if "betas" in group:
            group["betas"] = tuple(group["betas"])

    def _params(self):
        """``(index, parameter)`` for every parameter of every group."""
        for group in self.param_groups:
            for p in group["params"]:
                yield self._index[id(p)], p

    # ----------------------------------------------------------------------- lr
    def _group_lr(self, group: dict) -> float:
        lr = group["lr"]
        if callable(lr):
            lr = lr(self._step_count)
            if isinstance(lr, Tracer):  # inside jit: the step count is traced
                return lr
            what = f"lr (the schedule's value at step {self._step_count})"
            lr = check_nonnegative(type(self).__name__, what, lr)
        return lr

    @property
    def lr(self) -> float:
        """The learning rate of the first group for the next ``step()`` (a schedule is evaluated)."""
        return self._group_lr(self.param_groups[0])

    @lr.setter
    def lr(self, value) -> None:
        check_hyperparameters(type(self).__name__, lr=value)
        self.param_groups[0]["lr"] = value

    # ----------------------------------------------------------------------- stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: ``.grad = None`` (or zeros with ``set_to_none=False``)."""
        for _, p in self._params():
            if set_to_none:  # without looking first: a compiled step then does not depend
                p.grad = None  # on the .grad it is called with (one trace, not two)
            elif p.grad is not None:
                p.grad = zeros(p.grad.shape, p.grad._np_dtype)

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a ``.grad``, in place.

        Returns the model when the optimizer was built from a Module (else None); with a
        ``closure`` (which recomputes the loss and calls backward) it returns the loss.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        staged = self._stage_state() if staging() else None
        with no_grad():
            for group in self.param_groups:
                lr = self._group_lr(group)
                self._step_group(group, lr)
        self._step_count += 1
        if staged is not None:
            self._write_state_back(staged)
        return loss if closure is not None else self._model

    # ----------------------------------------------------------------------- inside jit
    def _stage_state(self) -> dict:
        """Before a step traced by jit: every piece of state becomes a tensor that outlives
        the trace (an input of the compiled function), created now if missing."""
        for group in self.param_groups:
            for i, p, _ in self._grads(group):
                state = self.state.setdefault(i, {})
                self._init_state(state, p, group)
                for key, value in state.items():
                    # step counts become tensors; tensors made just now are not constants
                    state[key] = outlive_trace(
                        value if isinstance(value, Tensor) else Tensor(value, dtype=np.int64)
                    )
        if not isinstance(self._step_count, Tensor):
            self._step_count = outlive_trace(Tensor(self._step_count, dtype=np.int64))
        staged = {
            (i, key): value for i, state in self.state.items() for key, value in state.items()
        }
        staged["step_count"] = self._step_count
        return staged

    def _write_state_back(self, staged: dict) -> None:
        """After a traced step: the new state is written into the same tensors after each
        call of the compiled function (the step itself only made new traced values)."""
        for where, old in staged.items():
            new = self._step_count if where == "step_count" else self.state[where[0]][where[1]]
            if new is not old:
                write(old, new)
            if where == "step_count":
                self._step_count = old
            else:
                self.state[where[0]][where[1]] = old

    def _init_state(self, state: dict, p: Tensor, group: dict) -> None:
        """Create the state a step of ``p`` reads (the eager step creates it lazily): the
        float32 master of a low-precision ``p`` here, the rest in the subclass."""
        if p._np_dtype != state_dtype(p._np_dtype) and "master" not in state:
            state["master"] = _copy(p, state_dtype(p._np_dtype))

    def _update(self, state: dict, p: Tensor, leaf_rule, *args, **kwargs) -> tuple:
        """``leaf_rule`` on ``p`` (through its master, which it updates): writes the new
        value into ``p`` and returns the rule's other outputs."""
        new, master, *rest = through_master(leaf_rule, p, state.get("master"), *args, **kwargs)
        if master is not None:
            state["master"] = master
        write(p, new)
        return rest

    def _update_all(self, entries: list, leaf_rule, **kwargs) -> list:
        """``_update(state, p, leaf_rule, *args, **kwargs)`` for every ``(state, p, args)`` of
        ``entries``: each entry's other outputs. The rules are elementwise, so eagerly the
        entries alike (dtypes, which arguments are tensors, the others' values) take one
        update over their values laid end to end, as PyTorch's foreach path does: a step
        costs a few ops, not a few per parameter, and gives the same numbers (each element
        meets the same scalars). Inside jit each parameter keeps its ops: the compiler
        fuses them."""
        if staging():
            return [
                self._update(state, p, leaf_rule, *args, **kwargs) for state, p, args in entries
            ]
        alike: dict[tuple, list[int]] = {}
        for n, (state, p, args) in enumerate(entries):
            key = tuple(map(_kind, (p, state.get("master"), *args)))
            alike.setdefault(key, []).append(n)
        outputs = [None] * len(entries)
        for members in alike.values():
            states, params, args = zip(*(entries[n] for n in members))
            laid = [_end_to_end(ts) for ts in zip(*args)]
            master = (
                None if "master" not in states[0] else _end_to_end([s["master"] for s in states])
            )
            new, master, *rest = through_master(
                leaf_rule, _end_to_end(params), master, *laid, **kwargs
            )
            if master is not None:
                for state, piece in zip(states, _cut(master, params)):
                    state["master"] = piece
            for p, piece in zip(params, _cut(new, params)):
                write(p, piece)
            cut = [_cut(r, params) if isinstance(r, Tensor) else [r] * len(params) for r in rest]
            for n, *pieces in zip(members, *cut):
                outputs[n] = pieces
        return outputs

    def _grads(self, group):
        """``(index, parameter, gradient)`` for the parameters of ``group`` that have one."""
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            staged = is_staged(g)  # inside jit: see step()
            if isinstance(p, Tracer) or isinstance(g, Tracer) and not staged:
                raise TracerError(
                    f"{type(self).__name__}.step: a parameter or its gradient is a traced value; "
                    "inside fx.grad/vmap/jit use the functional API (fx.optim.adamw_update...)"
                )
            if g.shape != p.shape:
                raise ShapeError(
                    f"{type(self).__name__}.step: a gradient has shape {g.shape} but its parameter "
                    f"has shape {p.shape}"
                )
            yield self._index[id(p)], p, g

    def _step_group(self, group: dict, lr: float) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------------- state dict
    def state_dict(self) -> dict:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}], 'step_count': n}``.

        The layout of ``torch.optim``; a group's ``lr`` schedule is saved as its current value.
        Tensors are shared, not copied (the optimizer never mutates them in place).
        """
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["lr"] = self._group_lr(group)
            packed["params"] = [self._index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {i: dict(s) for i, s in sorted(self.state.items())}
        return {"state": state, "param_groups": groups, "step_count": self._step_count}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict()`` gave (checked before anything is changed)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise InvalidArgumentError(
                f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups' "
                "(what optimizer.state_dict() returns)"
            )
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise InvalidArgumentError(
                f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        params_by_index: dict[int, Tensor] = {}
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise InvalidArgumentError(
                    f"{name}.load_state_dict: parameter group {gi} has {len(saved['params'])} "
                    f"parameters in the state dict but {len(group['params'])} here"
                )
            for i, p in zip(saved["params"], group["params"]):
                params_by_index[int(i)] = p
        new_state: dict[int, dict] = {}
        for key, entry in state_dict["state"].items():
            i = int(key)
            if i not in params_by_index:
                raise InvalidArgumentError(
                    f"{name}.load_state_dict: state for parameter {i}, which no group lists"
                )
            p = params_by_index[i]
            restored = {}
            for k, v in entry.items():
                if isinstance(v, Tensor):
                    if v.shape != p.shape:
                        raise ShapeError(
                            f"{name}.load_state_dict: state '{k}' of parameter {i} has shape "
                            f"{v.shape} but the parameter has shape {p.shape}"
                        )
                    v = _copy(v, state_dtype(p._np_dtype))
                elif k == "step":
                    v = int(v)
                restored[k] = v
            new_state[self._index[id(p)]] = restored
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k == "params" or (k == "lr" and callable(group["lr"])):
                    continue
                group[k] = tuple(v) if isinstance(v, list) else v
        self.state = new_state
        self._step_count = int(state_dict.get("step_count", 0))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"


def _as_param_list(name: str, params) -> list[Tensor]:
    if is_module(params):
        params = params.parameters()
    if isinstance(params, Tensor):
        params = [params]
    elif isinstance(params, dict):
        from fluxion.core.pytree import tree_leaves

        params = tree_leaves(params)
    elif not isinstance(params, Iterable):
        raise ArgumentTypeError(
            f"{name}: params must be model.parameters(), a Module, a list of tensors or of "
            f"parameter-group dicts; got {type(params).__name__}"
        )
    out = list(params)
    for p in out:
        if not isinstance(p, Tensor):
            raise ArgumentTypeError(f"{name}: params must hold tensors, got a {type(p).__name__}")
        if isinstance(p, Tracer):
            raise TracerError(
                f"{name}: a parameter is a traced value; stateful optimizers update concrete "
                "tensors in place; inside fx.grad/vmap/jit use the functional API"
            )
        if not dtypes.is_float(p._np_dtype):
            raise InvalidArgumentError(
                f"{name}: only floating-point tensors can be optimized, got one of dtype {p.dtype}"
            )
    return out


def _as_groups(name: str, params) -> list[dict]:
    if is_module(params) or isinstance(params, Tensor):
        return [{"params": params}]
    if isinstance(params, dict):
        return [params] if "params" in params else [{"params": params}]
    if not isinstance(params, Iterable):
        raise ArgumentTypeError(
            f"{name}: params must be model.parameters(), a Module, a list of tensors or of "
            f"parameter-group dicts; got {type(params).__name__}"
        )
    items = list(params)
    if not items:
        raise InvalidArgumentError(
            f"{name}: params is empty; pass model.parameters(), a Module, or a non-empty "
            "list of tensors"
        )
    if all(isinstance(x, dict) for x in items):
        return items
    return [{"params": items}]


# ----------------------------------------------------------------------------- the optimizers


class SGD(Optimizer):
    r"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

    The update of ``torch.optim.SGD`` (see ``fx.optim.sgd_update`` for the equations):
    :math:`b \leftarrow \mu b + (1-\tau)(g + \lambda p)`, :math:`p \leftarrow p - \gamma b`.

    >>> w = fx.tensor([1.0, 2.0], requires_grad=True)
    >>> opt = fx.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> fx.sum(w * w).backward()
    >>> opt.step()
    >>> w
    [0.8 1.6]:f32[2]:cpu(0)
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _check(self, group: dict) -> None:
        super()._check(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise InvalidArgumentError(
                "SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _init_state(self, state: dict, p: Tensor, group: dict) -> None:
        # A zero buffer, where the eager first step takes the gradient itself: the same
        # update unless dampening != 0 (then the first step is damped too).
        super()._init_state(state, p, group)
        if group["momentum"] != 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = zeros(p.shape, state_dtype(p._np_dtype))

    def _step_group(self, group: dict, lr: float) -> None:
        momentum = group["momentum"]
        entries = []
        for i, p, g in self._grads(group):
            state = self.state.setdefault(i, {})
            super()._init_state(state, p, group)
            buf = state.get("momentum_buffer")
            entries.append((state, p, (g, buf, buf is None)))
        outputs = self._update_all(
            entries, sgd_leaf, lr=lr, momentum=momentum, dampening=group["dampening"],
            weight_decay=group["weight_decay"], nesterov=group["nesterov"],
            maximize=group["maximize"],
        )  # fmt: skip
        if momentum != 0:
            for (state, _, (g, _, _)), (buf,) in zip(entries, outputs):
                # the first buffer is the gradient itself: copy it, as clip_grad_norm_ or a
                # user may still change that gradient in place
                state["momentum_buffer"] = _copy(buf, buf.dtype) if buf is g else buf


class Adam(Optimizer):
    r"""Adam (``torch.optim.Adam``): weight decay is L2, added to the gradient.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        p \leftarrow p - \frac{\gamma}{1-\beta_1^t}\frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

    >>> w = fx.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = fx.optim.Adam([w], lr=0.1)
    >>> fx.sum(w * w).backward()
    >>> opt.step()
    >>> [round(x, 6) for x in w.tolist()]
    [0.9, -0.9]
    """

    _decoupled = False

    def __init__(
        self,
        params,
        lr=1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize,
        )  # fmt: skip
        super().__init__(params, defaults)

    def _init_state(self, state: dict, p: Tensor, group: dict) -> None:
        super()._init_state(state, p, group)
        dtype = state_dtype(p._np_dtype)
        if "exp_avg" not in state:
            state.update(step=0, exp_avg=zeros(p.shape, dtype), exp_avg_sq=zeros(p.shape, dtype))
        if group["amsgrad"] and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = zeros(p.shape, dtype)

    def _step_group(self, group: dict, lr: float) -> None:
        beta1, beta2 = (float(b) for b in group["betas"])
        wd, amsgrad = group["weight_decay"], group["amsgrad"]
        scalars = {}  # parameters usually share their step count: compute its scalars once
        entries = []
        for i, p, g in self._grads(group):
            state = self.state.setdefault(i, {})
            self._init_state(state, p, group)
            state["step"] += 1
            t = state["step"]
            if t not in scalars:
                scalars[t] = adam_scalars(t, beta1, beta2)
            moments = state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq")
            entries.append((state, p, (g, *moments, scalars[t])))
        outputs = self._update_all(
            entries, adam_leaf, lr=lr, beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=wd, decoupled=self._decoupled, amsgrad=amsgrad, maximize=group["maximize"],
        )  # fmt: skip
        for (state, _, _), (m, v, vmax) in zip(entries, outputs):
            state["exp_avg"], state["exp_avg_sq"] = m, v
            if amsgrad:
                state["max_exp_avg_sq"] = vmax


class AdamW(Adam):
    r"""AdamW (``torch.optim.AdamW``): Adam with weight decay decoupled from the gradient,
    :math:`p \leftarrow p(1 - \gamma\lambda)` before the Adam step. ``weight_decay`` is 0.01.

    >>> model = fx.nn.Linear(4, 2)
    >>> optimizer = fx.optim.AdamW(model, lr=1e-3)
    >>> optimizer.lr
    0.001
    >>> fx.sum(model(fx.ones((3, 4)))).backward()
    >>> model = optimizer.step()
    """

    _decoupled = True

    def __init__(
        self,
        params,
        lr=1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
