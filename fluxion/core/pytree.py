"""Pytrees: nested containers whose leaves are tensors (or anything unregistered).

Tuples, lists, dicts (keys in sorted order, as JAX), None (no leaves), namedtuples and
dataclasses are nodes; ``register_pytree_node`` adds more (``nn.Module`` does).

>>> leaves, tree = fx.tree_flatten({"b": 2, "a": (1, None)})
>>> leaves
[1, 2]
>>> fx.tree_unflatten(tree, [10, 20])
{'a': (10, None), 'b': 20}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from fluxion.errors import InvalidArgumentError


class _NodeType(NamedTuple):
    flatten: Callable  # node -> (children, aux data)
    unflatten: Callable  # (aux data, children) -> node


_REGISTRY: dict[type, _NodeType] = {}
_KINDS: dict[type, _NodeType | None] = {}  # type -> how it flattens (None: a leaf), cached


def register_pytree_node(node_type: type, flatten: Callable, unflatten: Callable) -> None:
    """Make ``node_type`` a pytree node: ``flatten(x) -> (children, aux)``,
    ``unflatten(aux, children) -> x``; ``aux`` must be hashable and comparable."""
    _REGISTRY[node_type] = _NodeType(flatten, unflatten)
    _KINDS.pop(node_type, None)


register_pytree_node(tuple, lambda t: (t, None), lambda _, c: tuple(c))
register_pytree_node(list, lambda l: (l, None), lambda _, c: list(c))
register_pytree_node(type(None), lambda n: ((), None), lambda _, c: None)


def _dict_flatten(d):
    keys = sorted(d)
    return [d[k] for k in keys], tuple(keys)


register_pytree_node(dict, _dict_flatten, lambda keys, c: dict(zip(keys, c)))


def _node_type(x) -> _NodeType | None:
    # Decided once per type: flattening is on every compiled call's path.
    cls = type(x)
    try:
        return _KINDS[cls]
    except KeyError:
        pass
    kind = _REGISTRY.get(cls)
    if kind is None and issubclass(cls, tuple) and hasattr(cls, "_fields"):  # namedtuple
        kind = _NodeType(lambda t: (tuple(t), None), lambda _, c: cls(*c))
    elif kind is None and dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
        kind = _NodeType(
            lambda d: ([getattr(d, n) for n in names], None),
            lambda _, c: _rebuild_dataclass(cls, names, c),
        )
    _KINDS[cls] = kind
    return kind


def _rebuild_dataclass(cls, names, children):
    # Set the fields directly (as Equinox does) rather than calling __init__: fields with
    # init=False have no constructor argument, frozen ones refuse setattr, and
    # __post_init__ checks may reject the placeholders transforms put in the leaves.
    obj = object.__new__(cls)
    for name, child in zip(names, children):
        object.__setattr__(obj, name, child)
    return obj


class PyTreeDef:
    """The structure of a pytree without its leaves; compares and hashes by structure."""

    __slots__ = ("node_type", "aux", "children", "_kind", "_hash")

    def __init__(self, node_type, aux, children, kind=None):
        self.node_type, self.aux, self.children, self._kind = node_type, aux, tuple(children), kind
        self._hash = None

    @property
    def num_leaves(self) -> int:
        return 1 if self.node_type is None else sum(c.num_leaves for c in self.children)

    def _key(self):
        return (self.node_type, self.aux, self.children)

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        if not isinstance(other, PyTreeDef) or hash(self) != hash(other):
            return False
        return self._key() == other._key()

    def __hash__(self) -> int:
        if self._hash is None:  # computed once: compiled calls hash argument structures
            self._hash = hash(self._key())
        return self._hash

    def __repr__(self) -> str:
        if self.node_type is None:
            return "*"
        inner = ", ".join(map(repr, self.children))
        if self.node_type is dict:
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.aux, self.children))
            return "{" + inner + "}"
        if self.node_type is type(None):
            return "None"
        return f"{self.node_type.__name__}({inner})"


LEAF = PyTreeDef(None, None, ())


def tree_flatten(tree, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """Leaves in a fixed order, and the structure to rebuild the tree from them."""
    leaves: list = []
    return leaves, _flatten(tree, is_leaf, leaves)


def _flatten(tree, is_leaf, leaves) -> PyTreeDef:
    kind = None if is_leaf is not None and is_leaf(tree) else _node_type(tree)
    if kind is None:
        leaves.append(tree)
        return LEAF
    children, aux = kind.flatten(tree)
    return PyTreeDef(type(tree), aux, [_flatten(c, is_leaf, leaves) for c in children], kind)


def tree_unflatten(treedef: PyTreeDef, leaves) -> Any:
    """Rebuild a tree of structure ``treedef`` from ``leaves``."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise InvalidArgumentError(
            f"tree_unflatten: structure {treedef} needs {treedef.num_leaves} leaves, got {len(leaves)}"
        )
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(treedef, it):
    if treedef.node_type is None:
        return next(it)
    children = [_unflatten(c, it) for c in treedef.children]
    return treedef._kind.unflatten(treedef.aux, children)


def tree_leaves(tree, is_leaf=None) -> list:
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree, is_leaf=None) -> PyTreeDef:
    return tree_flatten(tree, is_leaf)[1]


def leaves_like(op: str, treedef: PyTreeDef, trees, is_leaf=None) -> list[list]:
    """The leaves of each of ``trees``, which must have ``treedef``'s structure."""
    out = []
    for tree in trees:
        leaves, other = tree_flatten(tree, is_leaf)
        if other != treedef:
            raise InvalidArgumentError(f"{op}: structures differ: {treedef} vs {other}")
        out.append(leaves)
    return out


def tree_map(fn: Callable, tree, *rest, is_leaf=None):
    """Apply ``fn`` to the leaves of ``tree`` (and the matching leaves of ``rest``)."""
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = leaves_like("tree_map", treedef, rest, is_leaf)
    return tree_unflatten(treedef, [fn(*xs) for xs in zip(leaves, *others)])


def broadcast_prefix(prefix, tree, is_leaf=None) -> list:
    """Leaves of ``prefix`` repeated so that there is one per leaf of ``tree``.

    ``prefix`` is a tree whose structure is a prefix of ``tree``'s (vmap's in_axes):
    each of its leaves stands for the whole subtree of ``tree`` at that place.
    """
    out: list = []
    _broadcast(prefix, tree, out, is_leaf, "")
    return out


def _broadcast(prefix, tree, out, is_leaf, path):
    if prefix is None or _node_type(prefix) is None:
        out.extend([prefix] * len(tree_leaves(tree, is_leaf)))
        return
    kind = _node_type(tree)
    if (
        kind is None
        or type(prefix) is not type(tree)
        and not (isinstance(prefix, list | tuple) and isinstance(tree, list | tuple))
    ):
        raise InvalidArgumentError(
            f"the structure {tree_structure(prefix)} does not match the arguments at {path or 'the top'}: "
            f"{tree_structure(tree, is_leaf)}"
        )
    p_children, p_aux = _node_type(prefix).flatten(prefix)
    t_children, t_aux = kind.flatten(tree)
    if len(p_children) != len(t_children) or (isinstance(tree, dict) and p_aux != t_aux):
        raise InvalidArgumentError(
            f"the structure {tree_structure(prefix)} does not match the arguments at {path or 'the top'}: "
            f"{tree_structure(tree, is_leaf)}"
        )
    keys = t_aux if isinstance(tree, dict) else range(len(t_children))
    for k, p, t in zip(keys, p_children, t_children):
        _broadcast(p, t, out, is_leaf, f"{path}[{k!r}]")
