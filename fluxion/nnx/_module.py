"""``nnx.Module``, the transforms that carry module state, and ``nnx.Optimizer``."""

from __future__ import annotations

import functools

import numpy as np

from fluxion.core.pytree import tree_flatten, tree_unflatten
from fluxion.core.tensor import to_tensor
from fluxion.errors import ArgumentTypeError
from fluxion.nn.module import Module as _FxModule
from fluxion.nnx._graph import Param, State, Variable, state, update, variables
from fluxion.optax import apply_updates
from fluxion.transforms import autodiff, batching
from fluxion.transforms import jit as _jit


class Module(_FxModule):
    """A Flax NNX module: define ``__init__`` (layers built eagerly, with ``rngs=``) and
    ``__call__``. It is a ``fluxion.nn.Module`` too (``parameters()``, ``state_dict()``,
    a pytree for every transform).

    >>> import fluxion.nnx as nnx
    >>> class MLP(nnx.Module):
    ...     def __init__(self, rngs):
    ...         self.hidden = nnx.Linear(2, 4, rngs=rngs)
    ...         self.out = nnx.Linear(4, 1, rngs=rngs)
    ...     def __call__(self, x):
    ...         return self.out(nnx.relu(self.hidden(x)))
    >>> MLP(nnx.Rngs(0))(fx.ones((3, 2))).shape
    (3, 1)
    """

    def set_attributes(self, **attributes) -> Module:
        """Set each attribute on every submodule that has it (Flax's ``set_attributes``)."""
        for _, m in self.named_modules():
            for name, value in attributes.items():
                if name in m.__dict__ and not isinstance(m, Variable):
                    setattr(m, name, value)
        return self

    def train(self, mode: bool = True, **attributes) -> Module:
        """Training mode: dropout on, BatchNorm on the batch's statistics (Flax's
        ``deterministic=False, use_running_average=False``)."""
        super().train(mode)
        flags = dict(deterministic=not mode, use_running_average=not mode)
        return self.set_attributes(**flags, **attributes)

    def eval(self, **attributes) -> Module:
        """Evaluation mode: dropout off, BatchNorm on its running statistics."""
        return self.train(False, **attributes)

    def iter_modules(self):
        """``(path, module)`` for this module and every one below it."""
        for name, m in self.named_modules():
            if not isinstance(m, Variable):
                yield tuple(name.split(".")) if name else (), m


def _only(tree, wrt):
    """A module of gradients (the tree ``fx.grad`` returns) as the ``State`` of ``wrt``'s
    variables, as Flax's ``nnx.grad`` returns; other arguments' gradients stay as they are."""
    return state(tree, wrt) if isinstance(tree, _FxModule) else tree


def grad(f=None, argnums=0, has_aux: bool = False, *, wrt=Param):
    """``fx.grad`` for functions of modules: the gradient of a module argument is the
    ``State`` of its ``wrt`` variables (``nnx.Param``); what ``f`` writes into the modules
    (BatchNorm statistics, random streams) stays written."""
    if f is None:
        return functools.partial(grad, argnums=argnums, has_aux=has_aux, wrt=wrt)
    inner = autodiff.grad(f, argnums=argnums, has_aux=has_aux)

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        out = inner(*args, **kwargs)
        g, aux = out if has_aux else (out, None)
        g = tuple(_only(x, wrt) for x in g) if isinstance(argnums, tuple) else _only(g, wrt)
        return (g, aux) if has_aux else g

    return wrapped


def value_and_grad(f=None, argnums=0, has_aux: bool = False, *, wrt=Param):
    """``fx.value_and_grad`` for functions of modules (see ``grad``)."""
    if f is None:
        return functools.partial(value_and_grad, argnums=argnums, has_aux=has_aux, wrt=wrt)
    inner = autodiff.value_and_grad(f, argnums=argnums, has_aux=has_aux)

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        value, g = inner(*args, **kwargs)
        g = tuple(_only(x, wrt) for x in g) if isinstance(argnums, tuple) else _only(g, wrt)
        return value, g

    return wrapped


def jit(f=None, **options):
    """``fx.jit``: modules (and ``Optimizer``) pass as arguments, and what the function
    writes into them (parameters, statistics, random streams) is written back."""
    if f is None:
        return functools.partial(jit, **options)
    return functools.wraps(f)(_jit.jit(f, **options))


def vmap(f=None, in_axes=0, out_axes=0, **options):
    """``fx.vmap``."""
    if f is None:
        return functools.partial(vmap, in_axes=in_axes, out_axes=out_axes, **options)
    return batching.vmap(f, in_axes=in_axes, out_axes=out_axes, **options)


class OptState(Variable):
    """One leaf of an optimizer's state."""


class Optimizer(_FxModule):
    """An optax transformation bound to a module's ``wrt`` variables, with its state.

    ``update(model, grads)`` (Flax 0.12) or ``update(grads)`` (the model given here; Flax
    0.10) runs ``tx.update`` and writes the new values into the model's variables.
    Both the model and the optimizer pass through ``nnx.jit`` like any module.

    >>> import fluxion.nnx as nnx, fluxion.optax as optax
    >>> model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    >>> optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    >>> grads = nnx.grad(lambda m: m(fx.ones((1, 2))).sum())(model)
    >>> _ = optimizer.update(model, grads)
    >>> model.bias.value.tolist(), int(optimizer.step.value)
    ([-0.10000000149011612], 1)
    """

    def __init__(self, model, tx, *, wrt=Param):
        if not isinstance(model, _FxModule):
            raise ArgumentTypeError(
                f"nnx.Optimizer: model must be a module, got {type(model).__name__}"
            )
        self.model, self.tx, self.wrt = model, tx, wrt
        leaves, self._treedef = tree_flatten(tx.init(state(model, wrt)))
        self.opt_state_leaves = [OptState(x) for x in leaves]
        self.step = OptState(_uint32(0))

    @property
    def opt_state(self):
        """The state of ``tx`` with an ``OptState`` variable at each leaf, as in Flax 0.12:
        ``optimizer.opt_state.hyperparams["learning_rate"].value = 1e-4`` changes it."""
        return tree_unflatten(self._treedef, self.opt_state_leaves)

    def update(self, *args, **kwargs):
        """``update(model, grads)`` or ``update(grads)``; returns the updates."""
        model, grads = args if len(args) == 2 else (self.model, *args)
        params = state(model, self.wrt)
        if not isinstance(grads, State) and isinstance(grads, _FxModule):
            grads = state(grads, self.wrt)
        opt_state = tree_unflatten(self._treedef, [v.value for v in self.opt_state_leaves])
        updates, new_state = self.tx.update(grads, opt_state, params, **kwargs)
        update(model, apply_updates(params, updates))
        for var, value in zip(self.opt_state_leaves, tree_flatten(new_state)[0]):
            var.value = value
        self.step.value = self.step.value + 1
        return updates


class ModelAndOptimizer(Optimizer):
    """Flax 0.12's name for an ``Optimizer`` that keeps its model: ``update(grads)``."""


def _uint32(n):
    return to_tensor(np.uint32(n))


__all__ = [
    "Module", "Optimizer", "ModelAndOptimizer", "OptState", "grad", "jit", "value_and_grad",
    "variables", "vmap",
]  # fmt: skip
