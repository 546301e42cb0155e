"""Flax NNX's objects over ``fluxion.nn.Module``: modules, variables, random streams, state.

A ``Variable`` is itself a small ``fluxion.nn.Module`` holding one tensor in ``.value``
(a ``Param``'s is an ``nn.Parameter``, a ``BatchStat``'s a buffer), so an NNX model is a
fluxion module tree: a pytree for ``fx.grad``/``fx.jit``/``fx.vmap``, with every write to a
``.value`` (running statistics, a random stream's key) carried out of the transforms as
fluxion carries any module state. ``state(model)`` views the values as a nested dict keyed
by attribute names, as Flax's ``nnx.State``.
"""

from __future__ import annotations

import numpy as np

from fluxion.core.pytree import register_pytree_node, tree_flatten, tree_unflatten
from fluxion.core.tensor import Tensor, Tracer, to_tensor
from fluxion.errors import ArgumentTypeError, InvalidArgumentError
from fluxion.nn.module import Module as _FxModule
from fluxion.nn.module import Parameter
from fluxion.ops import random as R


class Variable(_FxModule):
    """One piece of a module's state: ``.value`` (also ``var[...]``).

    >>> v = Variable(fx.zeros(2))
    >>> v[...] = fx.ones(2)
    >>> v.value
    [1. 1.]:f32[2]:cpu(0)
    """

    def __init__(self, value, **metadata):
        self.value = value
        for name, item in metadata.items():
            setattr(self, name, item)

    def _wrap(self, value):
        return value if isinstance(value, Tensor) else to_tensor(value)

    def __setattr__(self, name, value):
        if name == "value":
            value = self._wrap(value)
        super().__setattr__(name, value)

    def __getitem__(self, index):
        return self.value[index]

    def __setitem__(self, index, value):
        if index is not Ellipsis:
            raise InvalidArgumentError(
                f"{type(self).__name__}[...] = x replaces the whole value; for a part, write "
                "var.value = var.value.at[index].set(x)"
            )
        self.value = value

    def __call__(self):
        return self.value

    def get_value(self):
        return self.value

    def set_value(self, value) -> None:
        self.value = value

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)
    T = property(lambda self: self.value.T)

    def __len__(self):
        return len(self.value)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.value.numpy(), dtype=dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(value={self.value!r})"


def _operator(name: str):
    def method(self, *args):
        return getattr(self.value, name)(*args)

    method.__name__ = name
    return method


for _name in (
    "__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __matmul__ "
    "__rmatmul__ __pow__ __rpow__ __neg__ __abs__ __lt__ __le__ __gt__ __ge__ __float__ "
    "__int__ __bool__ sum mean reshape astype"
).split():
    setattr(Variable, _name, _operator(_name))


class Param(Variable):
    """A trainable parameter (an ``nn.Parameter`` inside): what ``Optimizer`` updates."""

    def _wrap(self, value):
        if isinstance(value, Tracer | Parameter):
            return value
        return Parameter(value if isinstance(value, Tensor) else to_tensor(value))


class BatchStat(Variable):
    """Statistics kept by a layer (BatchNorm's running mean and variance), not trained."""


class RngState(Variable):
    """A random stream's key or count."""


class RngStream(_FxModule):
    """One named stream of keys: each call gives a new key (and counts it).

    >>> stream = RngStream(0)
    >>> k1, k2 = stream(), stream()
    >>> bool((k1 != k2).any()), int(stream.count.value)
    (True, 2)
    """

    def __init__(self, seed):
        self.key = RngState(R.key(seed) if isinstance(seed, int) else R.check_key("Rngs", seed))
        self.count = RngState(to_tensor(np.uint32(0)))

    def __call__(self):
        keys = R.split(self.key.value)
        self.key.value, self.count.value = keys[0], self.count.value + 1
        return keys[1]


class Rngs(_FxModule):
    """Random streams by name: ``Rngs(0)`` (the default stream), ``Rngs(params=0,
    dropout=1)``; ``rngs.params()`` draws a key from stream ``params``, or from the default
    stream when there is no such stream (as Flax).

    >>> rngs = Rngs(0)
    >>> rngs.params().shape, rngs.dropout().shape
    ((2,), (2,))
    """

    def __init__(self, default=None, **streams):
        if default is not None:
            streams["default"] = default
        if not streams:
            raise ArgumentTypeError("Rngs: give a seed, Rngs(0), or streams, Rngs(params=0)")
        for name, seed in streams.items():
            setattr(self, name, seed if isinstance(seed, RngStream) else RngStream(seed))

    def __getattr__(self, name):
        # only for names not set: streams that do not exist fall back to "default"
        default = self.__dict__.get("default")
        if name.startswith("_") or default is None:
            raise AttributeError(f"Rngs has no stream {name!r} and no default stream")
        return default

    def __call__(self):
        return self.default()

    def __getitem__(self, name):
        return getattr(self, name)


# ----------------------------------------------------------------------------- state


def _as_filter(wrt):
    """Flax's filters: a Variable type, a tuple of them, or ``...`` (everything)."""
    if wrt is Ellipsis or wrt is None:
        return lambda v: True
    if isinstance(wrt, type):
        return lambda v: isinstance(v, wrt)
    if isinstance(wrt, tuple):
        tests = [_as_filter(w) for w in wrt]
        return lambda v: any(t(v) for t in tests)
    if callable(wrt):
        return wrt
    raise ArgumentTypeError(
        f"nnx: a filter is a Variable type (nnx.Param), a tuple of them or ..., got {wrt!r}"
    )


def variables(module, wrt=...) -> list[tuple[tuple, Variable]]:
    """The variables of ``module`` that ``wrt`` selects, with their paths of attribute names."""
    keep = _as_filter(wrt)
    found, seen = [], set()

    def visit(m, path):
        if id(m) in seen:
            return
        seen.add(id(m))
        if isinstance(m, Variable):
            if keep(m):
                found.append((path, m))
            return
        for name, child in m.named_children():
            visit(child, (*path, *name.split(".")))

    visit(module, ())
    return found


class State(dict):
    """A nested dict of values keyed by attribute names (Flax's ``nnx.State``)."""

    def flat_state(self) -> list[tuple[tuple, Tensor]]:
        out = []

        def visit(d, path):
            for k, v in d.items():
                visit(v, (*path, k)) if isinstance(v, dict) else out.append(((*path, k), v))

        visit(self, ())
        return out


register_pytree_node(
    State,
    lambda s: ([s[k] for k in sorted(s)], tuple(sorted(s))),
    lambda keys, children: State(zip(keys, children)),
)


def _key(name: str):
    return int(name) if name.isdigit() else name


def state(module, *filters) -> State:
    """The values of ``module``'s variables (all, or those a filter takes) as a ``State``;
    one ``State`` per filter when given several (as Flax).

    >>> import fluxion.nnx as nnx
    >>> lin = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    >>> {k: v.shape for k, v in nnx.state(lin, nnx.Param).items()}
    {'kernel': (2, 3), 'bias': (3,)}
    """
    if len(filters) > 1:
        return tuple(state(module, f) for f in filters)
    out = State()
    for path, var in variables(module, filters[0] if filters else ...):
        node = out
        for name in path[:-1]:
            node = node.setdefault(_key(name), State())
        node[_key(path[-1])] = var.value
    return out


def update(module, *states) -> None:
    """Write the values of ``states`` into ``module``'s variables at the same paths."""
    by_path = {tuple(str(k) for k in p): v for p, v in variables(module)}
    for s in states:
        for path, value in State(s).flat_state():
            var = by_path.get(tuple(str(k) for k in path))
            if var is None:
                raise InvalidArgumentError(
                    f"nnx.update: the module has no variable at {'.'.join(map(str, path))}"
                )
            var.value = value


class GraphDef:
    """The structure of a module without its values (what ``split`` returns beside them)."""

    def __init__(self, treedef, paths):
        self.treedef, self.paths = treedef, paths

    def __eq__(self, other):
        return isinstance(other, GraphDef) and (self.treedef, self.paths) == (
            other.treedef,
            other.paths,
        )

    def __hash__(self):
        return hash(tuple(self.paths))


def split(module, *filters):
    """``(graphdef, state)``, or ``(graphdef, state_1, ..., state_n)`` with n filters: each
    variable goes to the first filter that takes it (end with ``...`` for the rest)."""
    leaves, treedef = tree_flatten(module)
    found = variables(module)
    paths = [p for p, _ in found]
    if len(found) != len(leaves):
        raise InvalidArgumentError(
            "nnx.split: the module holds tensors outside Variables; wrap them "
            "(nnx.Param(x), nnx.Variable(x)) to split it"
        )
    if not filters:
        return GraphDef(treedef, paths), state(module)
    tests = [_as_filter(f) for f in filters]
    groups = [State() for _ in range(len(filters) + 1)]
    for path, var in found:
        i = next((k for k, t in enumerate(tests) if t(var)), len(filters))
        node = groups[i]
        for name in path[:-1]:
            node = node.setdefault(_key(name), State())
        node[_key(path[-1])] = var.value
    if groups[-1]:
        left = ".".join(map(str, groups[-1].flat_state()[0][0]))
        raise InvalidArgumentError(
            f"nnx.split: no filter takes the variable at {left}; add ... as the last filter "
            "for the rest"
        )
    return (GraphDef(treedef, paths), *groups[:-1])


def merge(graphdef: GraphDef, *states):
    """A new module of ``graphdef``'s structure holding the values of ``states``."""
    flat = {}
    for s in states:
        flat.update({tuple(str(k) for k in p): v for p, v in State(s).flat_state()})
    missing = [p for p in graphdef.paths if tuple(str(k) for k in p) not in flat]
    if missing:
        raise InvalidArgumentError(
            f"nnx.merge: the states have no value for {'.'.join(missing[0])}"
        )
    return tree_unflatten(
        graphdef.treedef, [flat[tuple(str(k) for k in p)] for p in graphdef.paths]
    )
