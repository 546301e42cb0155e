"""JAX's ``jax.tree_util``: pytrees (fluxion's, of ``fluxion.core.pytree``) and key paths.

A path is the tuple of keys leading from the root to a leaf: ``DictKey`` for a dict entry,
``SequenceKey`` for a list or tuple position, ``GetAttrKey`` for a namedtuple or dataclass
field, ``FlattenedIndexKey`` for a child of a node registered without keys.

>>> from fluxion import tree_util
>>> tree = {"w": [1.0, 2.0], "b": 3.0}
>>> [tree_util.keystr(p) for p, _ in tree_util.tree_flatten_with_path(tree)[0]]
["['b']", "['w'][0]", "['w'][1]"]
>>> tree_util.tree_map_with_path(lambda p, x: x * 10 if p[0].key == "w" else x, tree)
{'b': 3.0, 'w': [10.0, 20.0]}
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from fluxion.core import pytree as _pt
from fluxion.core.pytree import (  # noqa: F401  (the same in jax.tree_util)
    PyTreeDef,
    leaves_like,
    register_pytree_node,
    tree_flatten,
    tree_leaves,
    tree_map,
    tree_structure,
    tree_unflatten,
)
from fluxion.errors import InvalidArgumentError


@dataclasses.dataclass(frozen=True)
class DictKey:
    key: Any

    def __str__(self) -> str:
        return f"[{self.key!r}]"


@dataclasses.dataclass(frozen=True)
class SequenceKey:
    idx: int

    def __str__(self) -> str:
        return f"[{self.idx}]"


@dataclasses.dataclass(frozen=True)
class GetAttrKey:
    name: str

    def __str__(self) -> str:
        return f".{self.name}"


@dataclasses.dataclass(frozen=True)
class FlattenedIndexKey:
    key: int

    def __str__(self) -> str:
        return f"[<flat index {self.key}>]"


_KEYED: dict[type, Callable] = {}  # type -> node -> the keys of its children


def register_pytree_with_keys(nodetype: type, flatten_with_keys, unflatten_func, flatten_func=None):
    """A node whose ``flatten_with_keys(x) -> ([(key, child), ...], aux)`` names its children."""

    def flatten(x):
        pairs, aux = flatten_with_keys(x)
        return [child for _, child in pairs], aux

    register_pytree_node(nodetype, flatten_func or flatten, unflatten_func)
    _KEYED[nodetype] = lambda x: [key for key, _ in flatten_with_keys(x)[0]]


def register_pytree_node_class(cls: type) -> type:
    """Decorator: ``cls`` flattens by its ``tree_flatten()`` and rebuilds by its classmethod
    ``tree_unflatten(aux, children)``."""
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def register_dataclass(nodetype: type, data_fields=None, meta_fields=None, drop_fields=()):
    """A dataclass whose ``data_fields`` are children and ``meta_fields`` static (part of the
    structure: hashable). With neither given, the fields marked ``metadata=dict(static=True)``
    are the static ones. Usable as a decorator."""
    if data_fields is None and meta_fields is None:
        if not dataclasses.is_dataclass(nodetype):
            raise InvalidArgumentError(
                f"register_dataclass: {nodetype.__name__} is not a dataclass; decorate it with "
                "@dataclasses.dataclass or give data_fields= and meta_fields="
            )
        fields = [f for f in dataclasses.fields(nodetype) if f.name not in drop_fields]
        meta_fields = [f.name for f in fields if f.metadata.get("static", False)]
        data_fields = [f.name for f in fields if f.name not in meta_fields]
    data_fields, meta_fields = tuple(data_fields), tuple(meta_fields or ())

    def unflatten(meta, children):
        obj = object.__new__(nodetype)  # as fluxion's own dataclasses: fields set directly
        for name, value in zip(data_fields + meta_fields, tuple(children) + meta):
            object.__setattr__(obj, name, value)
        return obj

    register_pytree_node(
        nodetype,
        lambda x: ([getattr(x, n) for n in data_fields], tuple(getattr(x, n) for n in meta_fields)),
        unflatten,
    )
    _KEYED[nodetype] = lambda x: [GetAttrKey(n) for n in data_fields]
    return nodetype


def _child_keys(node, children, aux) -> list:
    keyed = _KEYED.get(type(node))
    if keyed is not None:
        return keyed(node)
    if isinstance(node, dict):
        return [DictKey(k) for k in aux]
    if isinstance(node, tuple) and hasattr(node, "_fields"):
        return [GetAttrKey(n) for n in node._fields]
    if isinstance(node, list | tuple) and type(node) in (list, tuple):
        return [SequenceKey(i) for i in range(len(children))]
    if dataclasses.is_dataclass(node) and type(node) not in _pt._REGISTRY:
        return [GetAttrKey(f.name) for f in dataclasses.fields(node)]
    return [FlattenedIndexKey(i) for i in range(len(children))]


def _with_paths(tree, is_leaf, path, out) -> None:
    kind = None if is_leaf is not None and is_leaf(tree) else _pt._node_type(tree)
    if kind is None:
        out.append((path, tree))
        return
    children, aux = kind.flatten(tree)
    for key, child in zip(_child_keys(tree, children, aux), children):
        _with_paths(child, is_leaf, path + (key,), out)


def tree_flatten_with_path(tree, is_leaf=None) -> tuple[list, PyTreeDef]:
    """``([(path, leaf), ...], treedef)``, the leaves in ``tree_flatten``'s order."""
    pairs: list = []
    _with_paths(tree, is_leaf, (), pairs)
    return pairs, tree_structure(tree, is_leaf)


def tree_leaves_with_path(tree, is_leaf=None) -> list:
    return tree_flatten_with_path(tree, is_leaf)[0]


def tree_map_with_path(f: Callable, tree, *rest, is_leaf=None):
    """``f(path, leaf, *matching leaves of rest)`` over the leaves of ``tree``."""
    pairs, treedef = tree_flatten_with_path(tree, is_leaf)
    others = leaves_like("tree_map_with_path", treedef, rest, is_leaf)
    leaves = [f(path, leaf, *more) for (path, leaf), *more in zip(pairs, *others)]
    return tree_unflatten(treedef, leaves)


def _simple(key) -> str:
    return str(getattr(key, next(iter(dataclasses.asdict(key)))))


def keystr(keys, *, simple: bool = False, separator: str = "") -> str:
    """A path as text: ``"['w'][0]"``; ``simple=True``: the bare keys joined by ``separator``."""
    return separator.join(_simple(k) if simple else str(k) for k in keys)


def tree_reduce(function: Callable, tree, initializer=None, is_leaf=None):
    leaves = tree_leaves(tree, is_leaf)
    if initializer is None:
        return functools.reduce(function, leaves)
    return functools.reduce(function, leaves, initializer)


def tree_all(tree, is_leaf=None) -> bool:
    return all(tree_leaves(tree, is_leaf))


def treedef_is_leaf(treedef: PyTreeDef) -> bool:
    return treedef.node_type is None


def all_leaves(iterable, is_leaf=None) -> bool:
    """Whether every item is a leaf (flattens to itself)."""
    return all(tree_leaves(x, is_leaf) == [x] for x in iterable)


class Partial(functools.partial):
    """``functools.partial`` as a pytree: the bound arguments are its leaves."""


register_pytree_node(
    Partial,
    lambda p: ((p.args, p.keywords), p.func),
    lambda func, children: Partial(func, *children[0], **children[1]),
)
