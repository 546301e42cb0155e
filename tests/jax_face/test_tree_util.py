"""fluxion.tree_util against jax.tree_util: leaves, structures, paths and key strings."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import pytest

import fluxion as fx
from fluxion import tree_util as ftu

jtu = jax.tree_util


class Point(NamedTuple):
    x: object
    y: object


@dataclasses.dataclass
class Layer:
    w: object
    b: object
    name: str = dataclasses.field(default="dense", metadata=dict(static=True))


def _trees():
    return [
        {"b": [1, 2, (3, None)], "a": {"z": 4, "y": 5}},
        [Point(1, [2, 3]), (), {"k": Point(x=4, y=5)}],
        (1, [None, {"q": 2}]),
        7,
    ]


def _describe(pairs):
    return [(jtu.keystr(p), leaf) for p, leaf in pairs]


@pytest.mark.parametrize("k", range(4))
def test_flatten_leaves_and_paths_match_jax(k):
    tree = _trees()[k]
    assert ftu.tree_leaves(tree) == jtu.tree_leaves(tree)
    assert ftu.tree_structure(tree).num_leaves == jtu.tree_structure(tree).num_leaves
    got, _ = ftu.tree_flatten_with_path(tree)
    want, _ = jtu.tree_flatten_with_path(tree)
    assert [(ftu.keystr(p), leaf) for p, leaf in got] == _describe(want)
    assert [ftu.keystr(p, simple=True, separator="/") for p, _ in got] == [
        jtu.keystr(p, simple=True, separator="/") for p, _ in want
    ]
    assert ftu.tree_map_with_path(lambda p, x: (ftu.keystr(p), x), tree) == jtu.tree_map_with_path(
        lambda p, x: (jtu.keystr(p), x), tree
    )
    leaves, treedef = ftu.tree_flatten(tree)
    assert ftu.tree_unflatten(treedef, [x * 10 for x in leaves]) == jtu.tree_map(
        lambda x: x * 10, tree
    )
    assert ftu.tree_map(lambda a, b: a + b, tree, tree) == jtu.tree_map(
        lambda a, b: a + b, tree, tree
    )
    assert ftu.tree_reduce(lambda a, b: a + b, tree, 0) == jtu.tree_reduce(
        lambda a, b: a + b, tree, 0
    )


def test_key_types_carry_their_keys_like_jax():
    tree = {"w": [0, Point(1, 2)]}
    got = [p for p, _ in ftu.tree_flatten_with_path(tree)[0]]
    want = [p for p, _ in jtu.tree_flatten_with_path(tree)[0]]
    assert [type(k).__name__ for k in got[-1]] == [type(k).__name__ for k in want[-1]]
    assert (got[-1][0].key, got[-1][1].idx, got[-1][2].name) == (
        want[-1][0].key,
        want[-1][1].idx,
        want[-1][2].name,
    )
    assert [str(k) for k in got[-1]] == [str(k) for k in want[-1]]


def test_register_dataclass_with_static_fields_matches_jax():
    fcls = ftu.register_dataclass(dataclasses.dataclass(type("FLayer", (Layer,), {})))
    jcls = jtu.register_dataclass(dataclasses.dataclass(type("JLayer", (Layer,), {})))
    f, j = fcls(w=1.0, b=[2.0, 3.0], name="a"), jcls(w=1.0, b=[2.0, 3.0], name="a")
    assert ftu.tree_leaves(f) == jtu.tree_leaves(j)
    got = [ftu.keystr(p) for p, _ in ftu.tree_flatten_with_path(f)[0]]
    assert got == [jtu.keystr(p) for p, _ in jtu.tree_flatten_with_path(j)[0]]
    doubled = ftu.tree_map(lambda x: x * 2, f)
    assert (doubled.w, doubled.b, doubled.name) == (2.0, [4.0, 6.0], "a")
    # the static field is part of the structure
    assert ftu.tree_structure(f) != ftu.tree_structure(fcls(w=1.0, b=[2.0, 3.0], name="b"))
    # explicit fields
    g = ftu.register_dataclass(
        dataclasses.dataclass(type("G", (), {"__annotations__": {"a": int, "m": int}})),
        data_fields=["a"],
        meta_fields=["m"],
    )
    assert ftu.tree_leaves(g(a=1, m=2)) == [1] and ftu.tree_map(lambda x: x + 1, g(a=1, m=2)).m == 2


def test_registered_nodes_and_transforms():
    @ftu.register_pytree_node_class
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

        def tree_flatten(self):
            return (self.a, self.b), None

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(*children)

    p = Pair(fx.tensor(2.0), fx.tensor(3.0))
    g = fx.grad(lambda p: p.a * p.b)(p)
    assert (g.a.item(), g.b.item()) == (3.0, 2.0)
    assert [ftu.keystr(k) for k, _ in ftu.tree_flatten_with_path(p)[0]] == [
        "[<flat index 0>]",
        "[<flat index 1>]",
    ]

    class Keyed:
        def __init__(self, w):
            self.w = w

    ftu.register_pytree_with_keys(
        Keyed, lambda k: ([(ftu.GetAttrKey("w"), k.w)], None), lambda _, c: Keyed(*c)
    )
    assert ftu.keystr(ftu.tree_flatten_with_path([Keyed(1)])[0][0][0]) == "[0].w"
    assert fx.tree.map(lambda x: x + 1, {"a": 1}) == jax.tree.map(lambda x: x + 1, {"a": 1})
    assert fx.tree.leaves([1, (2, 3)]) == jax.tree.leaves([1, (2, 3)])
    part = ftu.Partial(lambda x, y: x * y, fx.tensor(3.0))
    assert fx.jit(lambda f, y: f(y))(part, fx.tensor(2.0)).item() == 6.0
    assert ftu.all_leaves([1, 2]) and not ftu.all_leaves([[1]])
    assert ftu.treedef_is_leaf(ftu.tree_structure(1)) and ftu.tree_all([True, (1, True)])
