"""``Module``: a PyTorch-style layer that is also a pytree.

Parameters and buffers are the leaves, submodules are nodes, every other attribute
(ints, strings, activation functions, config) is static aux data compared by
equality. ``fx.grad``, ``fx.vmap`` and functional optimizers therefore take and
return whole models, while ``loss.backward()`` fills ``p.grad`` as in PyTorch.

>>> lin = fx.nn.Linear(3, 2)
>>> [name for name, _ in lin.named_parameters()]
['weight', 'bias']
>>> grads = fx.grad(lambda m: m(fx.ones((4, 3))).sum())(lin)   # a Linear of gradients
>>> type(grads).__name__, grads.weight.shape
('Linear', (2, 3))

Attributes are classified when assigned (``__setattr__``):

* ``Parameter`` (or a leaf tensor with ``requires_grad=True``): a parameter;
* any other tensor, or ``register_buffer``: a buffer (saved by ``state_dict``, not trained);
* a ``Module``: a submodule;
* lists/tuples/dicts are looked into when the tree is flattened: the modules and
  tensors inside are children named ``attr.0``, ``attr.key``. A submodule that is the
  same object as another attribute of the module (the seed notebook's
  ``self.layers = [...]`` next to ``setattr(self, f"encoder_{i}", layer)``) is an
  alias, not a second copy: it adds no leaves and no state-dict keys.

``training`` is carried along but left out of the tree structure's equality, so
``train()``/``eval()`` never invalidate optimizer state built from the tree.
A tensor held by two attributes (tied weights) is one parameter for
``parameters()``/``backward()``, but two leaves of the pytree (as in JAX/Equinox):
under ``fx.grad`` each use gets its own gradient. To tie weights functionally, use
the one attribute in both places (``F.linear(h, self.tok.weight)``).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from fluxion.core import dtypes
from fluxion.core.effects import register_call_key, register_holder, register_kept_kind
from fluxion.core.pytree import register_pytree_node, tree_flatten, tree_leaves
from fluxion.core.tensor import Tensor, Tracer, _to_array, to_arguments
from fluxion.core.trace import ABSENT, ctx, note_write
from fluxion.errors import (
    DTypeError,
    FluxionError,
    InvalidArgumentError,
    ShapeError,
    TracerError,
)


class ModuleAttributeError(FluxionError, TypeError):
    """An attribute assignment that would silently change what a module trains."""


class Parameter(Tensor):
    """A tensor that is a trainable parameter of a ``Module`` (``requires_grad=True``).

    Like PyTorch's, it shares memory with the tensor it wraps.

    >>> w = fx.nn.Parameter(fx.zeros((2, 2)))
    >>> w.requires_grad
    True
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            array = np.zeros((0,), dtypes.DEFAULT_FLOAT)
        elif isinstance(data, Tensor):
            array = data._concrete()
        else:
            array = _to_array(data, None, copy=False)
        self._value = array
        self.requires_grad, self.grad, self._node, self._out_index = False, None, None, 0
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__


# ----------------------------------------------------------------------------- pytree layout

# what a module records about its attributes (each copy has its own), and the cached aux
_RECORDS = ("_fx_params", "_fx_buffers", "_fx_nonpersistent", "_fx_tensor_kinds", "_fx_roles")
_RESERVED = frozenset({"training", *_RECORDS, "_fx_aux"})
_CONTAINERS = (list, tuple, dict)


def _role(value) -> str:
    """The role of an attribute that is not a parameter or buffer: "m" a submodule, "c" a
    list/tuple/dict (looked into at every flatten: it may change in place), "s" static."""
    return "m" if isinstance(value, Module) else "c" if type(value) in _CONTAINERS else "s"


def _same(a, b) -> bool:
    """Equality for static aux data: never elementwise, never raising."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    if isinstance(a, Tensor | Module):
        return False  # distinct objects (identity was checked above)
    try:
        return bool(a == b)
    except Exception:
        return False


class _ModuleAux:
    """The static part of a module: class, attribute layout and config values.

    ``training`` and ``roles`` (the module's record, for the unflattened copy) ride along
    but are not part of equality.
    """

    __slots__ = ("cls", "roles", "keys", "slots", "static", "nonpersistent", "training", "_hash")

    def __init__(self, cls, roles, slots, static, nonpersistent, training):
        self.cls, self.roles, self.keys = cls, roles, tuple(roles)
        self.slots, self.static = slots, static
        self.nonpersistent, self.training = nonpersistent, training
        self._hash = hash((cls, self.keys, tuple((name, kind) for name, kind, _ in slots)))

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, _ModuleAux)
            and self._hash == other._hash
            and self.cls is other.cls
            and self.keys == other.keys
            and self.nonpersistent == other.nonpersistent
            and _same(self.slots, other.slots)
            and _same(self.static, other.static)
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{self.cls.__name__}[{', '.join(name for name, _, _ in self.slots)}]"


class _Layout(NamedTuple):
    aux: _ModuleAux
    children: list  # one entry per pytree child: tensors (or None) and modules
    names: list  # the first (primary) attribute path of each child
    kinds: list  # "p" parameter, "b" buffer, "m" module


def _walk(value, path, found):
    """Spec of a list/tuple/dict attribute; modules and tensors inside go to ``found``."""
    if isinstance(value, Module | Tensor):
        found.append((path, value))
        return ("*", len(found) - 1)
    kind = type(value)
    if kind is list or kind is tuple:
        return (kind, tuple(_walk(v, f"{path}.{i}", found) for i, v in enumerate(value)))
    if kind is dict:
        return (dict, tuple(value), tuple(_walk(v, f"{path}.{k}", found) for k, v in value.items()))
    return ("s", value)


def _remap(spec, refs):
    if spec[0] == "*":
        return ("*",) + refs[spec[1]]
    if spec[0] == "s":
        return spec
    if spec[0] is dict:
        return (dict, spec[1], tuple(_remap(s, refs) for s in spec[2]))
    return (spec[0], tuple(_remap(s, refs) for s in spec[1]))


def _rebuild(spec, children, kinds):
    if spec[0] == "*":
        kinds.append(spec[2])
        return children[spec[1]]
    if spec[0] == "s":
        return spec[1]
    if spec[0] is dict:
        return dict(zip(spec[1], (_rebuild(s, children, kinds) for s in spec[2])))
    items = [_rebuild(s, children, kinds) for s in spec[1]]
    return items if spec[0] is list else tuple(items)


def _spec_entries(spec, path, out):
    """(path, child index, kind) of every module/tensor entry of a container spec."""
    if spec[0] == "*":
        out.append((path, spec[1], spec[2]))
    elif spec[0] is dict:
        for k, s in zip(spec[1], spec[2]):
            _spec_entries(s, f"{path}.{k}", out)
    elif spec[0] != "s":
        for i, s in enumerate(spec[1]):
            _spec_entries(s, f"{path}.{i}", out)
    return out


def _is_variable(t) -> bool:
    """A tensor with an identity of its own (a parameter), as opposed to a computed value."""
    return isinstance(t, Parameter) or (isinstance(t, Tensor) and t.requires_grad and t.is_leaf)


def _tensor_kind(t) -> str:
    return "p" if isinstance(t, Parameter) or (t.requires_grad and t.is_leaf) else "b"


def _layout(m: Module, with_aux: bool = True) -> _Layout:
    """The children of ``m`` in pytree order, their names and kinds, and (``with_aux``)
    the static aux data, read from the roles ``__setattr__`` recorded."""
    d = m.__dict__
    params, buffers = d["_fx_params"], d["_fx_buffers"]
    children, names, kinds, seen = [], [], [], {}

    def place(name, value, kind):
        # Modules seen twice are aliases (one child). Tensors never are: two slots holding
        # one tensor stay two leaves, so that a tree of gradients, where two slots may get
        # the same cotangent object, always has the structure of its model.
        if isinstance(value, Module):
            i = seen.get(id(value))
            if i is not None:
                return i
            seen[id(value)] = len(children)
        children.append(value), names.append(name), kinds.append(kind)
        return len(children) - 1

    slots = [(name, "p", place(name, d[name], "p")) for name in params]
    slots += [(name, "b", place(name, d[name], "b")) for name in buffers]
    containers = []
    for name, role in d["_fx_roles"].items():
        if role == "m":
            slots.append((name, "m", place(name, d[name], "m")))
        elif role == "c":
            containers.append(name)
    direct = len(slots)
    # Containers come after direct attributes so that direct names win for aliases.
    static_containers = []
    for name in containers:
        found: list = []
        spec = _walk(d[name], name, found)
        if not found:
            static_containers.append(name)
            continue
        recorded = d["_fx_tensor_kinds"].get(name)
        if recorded is None or len(recorded) != len(found):
            recorded = [
                "m" if isinstance(v, Module) else _tensor_kind(v) if isinstance(v, Tensor) else "b"
                for _, v in found
            ]
        refs = [(place(path, v, k), k) for (path, v), k in zip(found, recorded)]
        slots.append((name, "c", _remap(spec, refs)))
    aux = d["_fx_aux"]
    # No __setattr__ since the last flatten (it drops the aux) leaves everything but the
    # containers' contents and the training flag as they were: reuse the aux if those match.
    if with_aux and (
        aux is None
        or aux.training != d["training"]
        or len(aux.slots) != len(slots)
        or (direct < len(slots) and not _same(aux.slots[direct:], tuple(slots[direct:])))
    ):
        roles = d["_fx_roles"]
        static = [(n, d[n]) for n, role in roles.items() if role == "s"]
        aux = d["_fx_aux"] = _ModuleAux(
            type(m),
            dict(roles),
            tuple(slots),
            tuple(static + [(n, d[n]) for n in static_containers]),
            frozenset(d["_fx_nonpersistent"]),
            d["training"],
        )
    return _Layout(aux if with_aux else None, children, names, kinds)


def _flatten_module(m):
    layout = _layout(m)
    return layout.children, layout.aux


def _unflatten_module(aux: _ModuleAux, children):
    obj = object.__new__(aux.cls)  # no __init__: config comes from aux, leaves from children
    values, params, buffers, tensor_kinds = dict(aux.static), {}, {}, {}
    roles, reuse = dict(aux.roles), aux
    for name, kind, ref in aux.slots:
        if kind == "c":
            kinds: list = []
            values[name] = _rebuild(ref, children, kinds)
            tensor_kinds[name] = tuple(kinds)
            continue
        value = values[name] = children[ref]
        if kind == "p":
            params[name] = None
        elif kind == "b":
            buffers[name] = None
        elif not isinstance(value, Module):  # a tree_map over modules put something else here
            roles[name], reuse = _role(value), None
    d = obj.__dict__
    d["training"] = aux.training
    d["_fx_params"], d["_fx_buffers"] = params, buffers
    d["_fx_nonpersistent"] = set(aux.nonpersistent)
    d["_fx_tensor_kinds"] = tensor_kinds
    d["_fx_roles"], d["_fx_aux"] = roles, reuse
    for key in aux.keys:
        d[key] = values[key]
    return obj


# ----------------------------------------------------------------------------- Module


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class _IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list


def _as_array(value, name) -> np.ndarray:
    if isinstance(value, Tensor):
        return value._concrete()
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch.Tensor
        value = value.detach().cpu()
    try:
        return np.asarray(value)
    except Exception as e:
        raise InvalidArgumentError(
            f"load_state_dict: the value for {name!r} ({type(value).__name__}) cannot be read "
            f"as an array ({e}); pass fluxion tensors, NumPy arrays or CPU torch tensors"
        ) from None


class Module:
    """Base class of layers and models: subclass it, assign layers in ``__init__``,
    write ``forward``.

    >>> class MLP(fx.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1, self.fc2 = fx.nn.Linear(4, 8), fx.nn.Linear(8, 1)
    ...     def forward(self, x):
    ...         return self.fc2(fx.relu(self.fc1(x)))
    >>> mlp = MLP()
    >>> mlp.num_parameters(), list(mlp.state_dict())[:2]
    (49, ['fc1.weight', 'fc1.bias'])
    >>> leaves, tree = fx.tree_flatten(mlp)          # 4 tensors; tree_unflatten gives an MLP back
    """

    training: bool

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_pytree_node(cls, _flatten_module, _unflatten_module)

    def __new__(cls, *args, **kwargs):
        # The bookkeeping exists before __init__ runs, so a forgotten super().__init__()
        # is harmless and unflattening (object.__new__) can fill it in directly.
        obj = super().__new__(cls)
        d = obj.__dict__
        d["training"] = True
        d["_fx_params"], d["_fx_buffers"] = {}, {}
        d["_fx_nonpersistent"], d["_fx_tensor_kinds"] = set(), {}
        d["_fx_roles"], d["_fx_aux"] = {}, None  # role by attribute; the structure, cached
        return obj

    def __getstate__(self):
        # A copy gets bookkeeping of its own (copy.copy would share it) and rebuilds the
        # cached structure (its hash is of this process's strings).
        d = self.__dict__
        return {**d, **{k: type(d[k])(d[k]) for k in _RECORDS}, "_fx_aux": None}

    def __init__(self):
        pass

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        params, buffers = d["_fx_params"], d["_fx_buffers"]
        if name in _RESERVED:
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Tensor) or (value is None and (name in params or name in buffers)):
            if (  # (`self.bias = None` keeps the slot, empty, as PyTorch's)
                name in params
                and isinstance(d.get(name), Parameter)
                and isinstance(value, Tensor)
                and not isinstance(value, Parameter | Tracer)
            ):
                raise ModuleAttributeError(
                    f"{type(self).__name__}.{name}: cannot assign a plain tensor to parameter "
                    f"{name!r}; wrap it (fx.nn.Parameter(t)), update it in place under fx.no_grad() "
                    "(p.data = t), or delete the attribute first to make it a buffer"
                )
            role = "p" if name in params else "b" if name in buffers else _tensor_kind(value)
            (buffers if role == "p" else params).pop(name, None)
            (params if role == "p" else buffers).setdefault(name, None)
        else:
            params.pop(name, None), buffers.pop(name, None)
            d["_fx_nonpersistent"].discard(name)
            role = _role(value)
        if ctx.noting and role in "pb":
            note_write(self, name, d.get(name, ABSENT))  # a transform carries it out
        d[name] = value
        d["_fx_roles"][name], d["_fx_aux"] = role, None

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        d["_fx_params"].pop(name, None), d["_fx_buffers"].pop(name, None)
        d["_fx_nonpersistent"].discard(name)
        d["_fx_tensor_kinds"].pop(name, None), d["_fx_roles"].pop(name, None)
        object.__delattr__(self, name)
        d["_fx_aux"] = None

    def _check_name(self, name: str, what: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise InvalidArgumentError(
                f"{what}: name must be a non-empty string without '.', got {name!r}"
            )
        if name in _RESERVED or (hasattr(type(self), name) and name not in self.__dict__):
            raise InvalidArgumentError(
                f"{what}: {name!r} is already an attribute of {type(self).__name__}; pick another name"
            )

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """A tensor that is state but not trained (running statistics, fixed encodings);
        ``persistent=False`` keeps it out of ``state_dict``."""
        self._check_name(name, "register_buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise ModuleAttributeError(
                f"register_buffer: {name!r} must be a fluxion Tensor or None, got {type(tensor).__name__}"
            )
        d = self.__dict__
        d["_fx_params"].pop(name, None)
        d["_fx_buffers"].setdefault(name, None)
        d[name], d["_fx_roles"][name], d["_fx_aux"] = tensor, "b", None
        if persistent:
            d["_fx_nonpersistent"].discard(name)
        else:
            d["_fx_nonpersistent"].add(name)

    def register_parameter(self, name: str, param) -> None:
        self._check_name(name, "register_parameter")
        if param is not None and not isinstance(param, Parameter):
            raise ModuleAttributeError(
                f"register_parameter: {name!r} must be a fx.nn.Parameter or None, got {type(param).__name__}"
            )
        d = self.__dict__
        d["_fx_buffers"].pop(name, None)
        d["_fx_params"].setdefault(name, None)
        d[name], d["_fx_roles"][name], d["_fx_aux"] = param, "p", None

    def add_module(self, name: str, module) -> None:
        self._check_name(name, "add_module")
        if module is not None and not isinstance(module, Module):
            raise ModuleAttributeError(
                f"add_module: {name!r} must be a Module or None, got {type(module).__name__}"
            )
        setattr(self, name, module)

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        module = self
        for part in target.split(".") if target else []:
            child = module.__dict__.get(part)
            if not isinstance(child, Module):
                raise InvalidArgumentError(
                    f"get_submodule: {type(module).__name__} has no submodule {part!r} (in {target!r})"
                )
            module = child
        return module

    # ------------------------------------------------------------------ traversal
    def named_children(self) -> list[tuple[str, Module]]:
        """Direct submodules (also those held in lists/dicts: ``layers.0``), each once."""
        layout = _layout(self, with_aux=False)
        return [
            (n, c)
            for n, c, k in zip(layout.names, layout.children, layout.kinds)
            if k == "m" and isinstance(c, Module)
        ]

    def children(self) -> list[Module]:
        return [c for _, c in self.named_children()]

    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> list[tuple[str, Module]]:
        """This module and all below it, pre-order, with dotted names."""
        memo = set() if memo is None else memo
        out: list = []
        self._collect_modules(memo, prefix, remove_duplicate, out)
        return [(name, m) for name, m, _ in out]

    def _collect_modules(self, memo, prefix, remove_duplicate, out):
        """Pre-order (name, module, layout) triples; each layout is computed once."""
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        layout = _layout(self, with_aux=False)
        out.append((prefix, self, layout))
        for n, c, k in zip(layout.names, layout.children, layout.kinds):
            if k == "m" and isinstance(c, Module):
                c._collect_modules(memo, _join(prefix, n), remove_duplicate, out)

    def modules(self) -> list[Module]:
        return [m for _, m in self.named_modules()]

    def _named_tensors(self, kind, prefix, recurse, remove_duplicate):
        out, seen, mods = [], set(), []
        if recurse:
            self._collect_modules(set(), prefix, True, mods)
        else:
            mods = [(prefix, self, _layout(self, with_aux=False))]
        for mod_prefix, _, layout in mods:
            for n, c, k in zip(layout.names, layout.children, layout.kinds):
                if k != kind or c is None:
                    continue
                if remove_duplicate and _is_variable(c):
                    if id(c) in seen:
                        continue
                    seen.add(id(c))
                out.append((_join(mod_prefix, n), c))
        return out

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> list[tuple[str, Tensor]]:
        """``(dotted name, parameter)`` pairs in PyTorch's order, each tensor once."""
        return self._named_tensors("p", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:
        """An iterator over the parameters, as PyTorch's (``list(...)`` for a list)."""
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> list[tuple[str, Tensor]]:
        return self._named_tensors("b", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers(recurse=recurse))

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of scalars in the (distinct) parameters."""
        return sum(
            math.prod(p.shape)
            for p in self.parameters()
            if not trainable_only or not isinstance(p, Parameter) or p.requires_grad
        )

    def apply(self, fn) -> Module:
        """Call ``fn`` on every submodule (children first) and on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and state
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active); the pytree structure does not change."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if not isinstance(p, Tensor):
                continue
            if set_to_none:  # without looking first (see Optimizer.zero_grad)
                p.grad = None
            elif p.grad is not None:
                p.grad = Tensor._from_array(np.zeros(p.shape, p.grad._np_dtype))

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter; frozen ones get no ``.grad``."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, dtype=None, device=None, non_blocking: bool = False) -> Module:
        """Cast floating-point parameters and buffers to ``dtype`` in place (PyTorch's rule);
        ``model.to(device)`` accepts the cpu, the only device."""
        dtype = to_arguments("Module.to", args, dtype, device)
        if dtype is None:
            return self
        np_dtype = dtypes.to_np(dtype)
        if not dtypes.is_float(np_dtype):
            raise DTypeError(
                f"Module.to: only floating-point dtypes are accepted, got {dtype}; "
                "parameters and buffers of integer type are never cast"
            )
        for t in itertools.chain(self.parameters(), self.buffers()):
            if isinstance(t, Tracer) or not dtypes.is_float(t._np_dtype):
                continue
            t._value = t._value.astype(np_dtype)
            if t.grad is not None:
                t.grad = Tensor._from_array(t.grad._concrete().astype(np_dtype))
        return self

    def double(self) -> Module:
        return self.to(dtypes.DType.float64)

    def cpu(self) -> Module:
        """This module (everything is on the cpu)."""
        return self

    def cuda(self, device=None) -> Module:
        """Raises: fluxion has no GPU backend yet (``fx.cuda.is_available()`` is False)."""
        return self.to(device="cuda" if device is None else device)

    def float(self) -> Module:
        return self.to(dtypes.DType.float32)

    def state_dict(
        self, destination=None, prefix: str = "", keep_vars: bool = False
    ) -> OrderedDict:
        """Parameters and persistent buffers by PyTorch's dotted names.

        Values are tensors sharing memory with the module's (``keep_vars=True``: the
        parameter objects themselves).
        """
        out = OrderedDict() if destination is None else destination
        layout = _layout(self)
        children, names = layout.children, layout.names
        nonpersistent = layout.aux.nonpersistent

        def put(key, value):
            if value is None:
                return
            if not isinstance(value, Tensor) or keep_vars or isinstance(value, Tracer):
                out[key] = value
            else:
                out[key] = Tensor._from_array(value._concrete())

        deferred = []
        for name, kind, ref in layout.aux.slots:
            if kind == "p" or (kind == "b" and name not in nonpersistent):
                put(prefix + name, children[ref])
            elif kind == "m":
                deferred.append((prefix + name, children[ref]))
            elif kind == "c":
                for path, index, k in _spec_entries(ref, name, []):
                    if names[index] != path:
                        continue  # an alias: saved under its own name already
                    if k == "m":
                        deferred.append((prefix + path, children[index]))
                    else:
                        put(prefix + path, children[index])
        for name, module in deferred:
            if isinstance(module, Module):
                module.state_dict(out, name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict, strict: bool = True) -> _IncompatibleKeys:
        """Copy tensors in by name, in place (parameter objects keep their identity).

        Missing or unexpected keys (with ``strict=True``) and shape mismatches raise one
        error listing all of them, and nothing is loaded. Values may be fluxion tensors,
        NumPy arrays or CPU torch tensors; they are cast to each parameter's dtype.
        """
        own = self.state_dict(keep_vars=True)
        given = dict(state_dict)
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        problems, loads = [], []
        for key, target in own.items():
            if key not in given:
                continue
            array = _as_array(given[key], key)
            if tuple(array.shape) != tuple(target.shape):
                problems.append(
                    f"size mismatch for {key}: the checkpoint has shape {tuple(array.shape)}, "
                    f"the model {tuple(target.shape)}"
                )
                continue
            if isinstance(target, Tracer):
                raise TracerError(
                    f"load_state_dict: {key} is a traced value; load into the concrete model, "
                    "outside fx.grad/fx.vmap"
                )
            if dtypes.is_float(target._np_dtype) != dtypes.is_float(array.dtype):
                problems.append(
                    f"dtype mismatch for {key}: the checkpoint has {array.dtype}, the model "
                    f"{target.dtype} (a float and a non-float tensor)"
                )
                continue
            loads.append((target, array))
        if strict:
            problems = (
                [f"missing key(s): {', '.join(missing)}"] * bool(missing)
                + [f"unexpected key(s): {', '.join(unexpected)}"] * bool(unexpected)
                + problems
            )
        if problems:
            only_shapes = all(p.startswith("size mismatch") for p in problems)
            error = ShapeError if only_shapes else InvalidArgumentError
            raise error(
                f"load_state_dict: cannot load into {type(self).__name__} (nothing was loaded):\n  "
                + "\n  ".join(problems)
                + "\nfix the names/shapes, or pass strict=False to skip missing and unexpected keys"
            )
        for target, array in loads:
            target._value = np.array(array, dtype=target._np_dtype, copy=True)
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({name}): {_addindent(repr(child), 2)}" for name, child in self.named_children()
        ]
        lines = extra_lines + child_lines
        main = type(self).__name__ + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    # ------------------------------------------------------------------ pytree helpers
    def _trainable_mask(self) -> list[bool]:
        layout = _layout(self, with_aux=False)
        mask: list[bool] = []
        for child, kind in zip(layout.children, layout.kinds):
            if kind == "m" and isinstance(child, Module):
                mask.extend(child._trainable_mask())
                continue
            n = len(tree_leaves(child))
            frozen = isinstance(child, Parameter) and not child.requires_grad
            mask.extend([kind == "p" and not frozen] * n)
        return mask


register_pytree_node(Module, _flatten_module, _unflatten_module)


def _submodules(m: Module) -> list:
    layout = _layout(m, with_aux=False)
    return [c for c, kind in zip(layout.children, layout.kinds) if kind == "m"]


register_holder(Module, _submodules)  # what a transformed function writes into one gets out


def _is_float_leaf(x) -> bool:
    if isinstance(x, Tensor):
        return dtypes.is_float(x._np_dtype)
    if isinstance(x, np.ndarray | np.generic):
        return x.dtype.kind == "f" or x.dtype == dtypes.bfloat16_np
    return isinstance(x, float)


def training_flags(tree: Any) -> tuple[bool, ...]:
    """The ``training`` flag of every module in ``tree``, in flatten order.

    The tree structure ignores train/eval on purpose (optimizer state must survive a
    switch); a cache of traced/compiled functions that depends on the mode (dropout)
    should add these flags to its key.
    """
    return structure_training_flags(tree_flatten(tree)[1])


def structure_training_flags(treedef) -> tuple[bool, ...]:
    """``training_flags`` of a tree from its flattened structure (each module's aux carries
    its flag): jit reads them from the argument structure it has flattened anyway."""
    flags: list[bool] = []

    def visit(node):
        if isinstance(node.aux, _ModuleAux):
            flags.append(node.aux.training)
        for child in node.children:
            visit(child)

    visit(treedef)
    return tuple(flags)


# train()/eval() change what a compiled function computes (dropout)
register_call_key(
    structure_training_flags,
    lambda old, new: "a module argument switched between train() and eval()",
)
# a trainable Parameter passed to a compiled step comes back a Parameter (optimizer updates)
register_kept_kind(Parameter, lambda p: p.requires_grad)


def trainable_mask(tree: Any) -> list[bool]:
    """One bool per leaf of ``fx.tree_leaves(tree)``: which leaves an optimizer updates.

    Inside a ``Module``: True for parameters (False for a ``Parameter`` frozen with
    ``requires_grad=False``), False for buffers. Outside modules: True for every
    floating-point leaf.

    >>> class M(fx.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = fx.nn.Parameter(fx.ones(2))
    ...         self.register_buffer("pe", fx.zeros(2))
    >>> fx.nn.module.trainable_mask({"model": M(), "step": fx.tensor(3)})
    [True, False, False]
    """
    mask: list[bool] = []
    for leaf in tree_flatten(tree, is_leaf=lambda x: isinstance(x, Module))[0]:
        if isinstance(leaf, Module):
            mask.extend(leaf._trainable_mask())
        else:
            mask.append(_is_float_leaf(leaf))
    return mask
