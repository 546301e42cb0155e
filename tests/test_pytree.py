"""Pytrees: flatten/unflatten/map/leaves/structure, custom nodes, PyTreeDef as a value.

The reference for leaf order is written out by hand (and follows JAX: dict keys sorted,
None a node without leaves).
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import InvalidArgumentError

Point = namedtuple("Point", ["x", "y"])


@dataclasses.dataclass
class Pair:
    first: object
    second: object


class Box:
    """A user class made a node by register_pytree_node: two children and static aux."""

    def __init__(self, a, b, name):
        self.a, self.b, self.name = a, b, name

    def __eq__(self, other):
        return isinstance(other, Box) and (self.a, self.b, self.name) == (
            other.a,
            other.b,
            other.name,
        )


fx.register_pytree_node(Box, lambda box: ((box.a, box.b), box.name), lambda name, c: Box(*c, name))


CASES = [
    # (tree, its leaves in order)
    (1, [1]),
    ((), []),
    ([], []),
    ({}, []),
    (None, []),
    ((1, 2, 3), [1, 2, 3]),
    ([1, [2, 3]], [1, 2, 3]),
    ({"b": 1, "a": 2, "c": 3}, [2, 1, 3]),  # sorted keys
    ({"z": None, "y": (1,)}, [1]),
    ((None, 1, None), [1]),
    (Point(1, (2, 3)), [1, 2, 3]),
    (Pair([1, 2], {"k": 3}), [1, 2, 3]),
    (Box(1, [2, 3], "meta"), [1, 2, 3]),
    ([{"w": 1, "b": (2, None)}, Point(x=[3], y=Pair(4, 5))], [2, 1, 3, 4, 5]),
    ({1: "one", 0: "zero"}, ["zero", "one"]),  # strings are leaves
    ({"a": [], "b": [7]}, [7]),
]


@pytest.mark.parametrize("tree, leaves", CASES, ids=lambda v: repr(v)[:40])
def test_flatten_unflatten_roundtrip(tree, leaves):
    got, treedef = fx.tree_flatten(tree)
    assert got == leaves
    assert fx.tree_leaves(tree) == leaves
    assert treedef.num_leaves == len(leaves)
    assert fx.tree_structure(tree) == treedef
    rebuilt = fx.tree_unflatten(treedef, got)
    assert rebuilt == tree and type(rebuilt) is type(tree)
    # unflatten with new leaves puts them in the same places
    renumbered = fx.tree_unflatten(treedef, range(100, 100 + len(leaves)))
    assert fx.tree_leaves(renumbered) == list(range(100, 100 + len(leaves)))
    assert fx.tree_structure(renumbered) == treedef


def test_namedtuple_dataclass_types_survive():
    p = fx.tree_map(lambda v: v * 10, Point(1, 2))
    assert isinstance(p, Point) and p == Point(10, 20)
    q = fx.tree_map(lambda v: v + 1, Pair(1, (2, 3)))
    assert isinstance(q, Pair) and q == Pair(2, (3, 4))
    b = fx.tree_map(str, Box(1, 2, "n"))
    assert b == Box("1", "2", "n")


def test_dict_unflatten_orders_keys_sorted():
    d = fx.tree_map(lambda v: v, {"b": 1, "a": 2})
    assert list(d) == ["a", "b"] and d == {"a": 2, "b": 1}


def test_tensors_and_arrays_are_leaves():
    t, a = fx.tensor([1.0, 2.0]), np.arange(3)
    leaves, treedef = fx.tree_flatten({"t": t, "a": [a, None]})
    assert leaves[0] is a and leaves[1] is t
    out = fx.tree_map(lambda x: x * 2, {"t": t, "a": [a, None]})
    np.testing.assert_array_equal(out["a"][0], a * 2)
    assert out["a"][1] is None
    assert out["t"].tolist() == [2.0, 4.0]


def test_tree_map_several_trees():
    a = {"x": (1, 2), "y": [3]}
    b = {"x": (10, 20), "y": [30]}
    c = {"x": (100, 200), "y": [300]}
    assert fx.tree_map(lambda p, q, r: p + q + r, a, b, c) == {"x": (111, 222), "y": [333]}
    assert fx.tree_map(lambda p, q: (p, q), Point(1, 2), Point(3, 4)) == Point((1, 3), (2, 4))


@pytest.mark.parametrize(
    "other",
    [
        {"x": (1, 2), "y": [3, 4]},  # an extra leaf
        {"x": (1, 2), "z": [3]},  # another key
        {"x": [1, 2], "y": [3]},  # list where a tuple was
        {"x": (1, 2), "y": 3},  # a leaf where a list was
        [(1, 2), [3]],
    ],
    ids=repr,
)
def test_tree_map_structure_mismatch(other):
    tree = {"x": (1, 2), "y": [3]}
    with pytest.raises(InvalidArgumentError, match="tree_map") as info:
        fx.tree_map(lambda p, q: p + q, tree, other)
    assert "differ" in str(info.value)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError
        fx.tree_map(lambda p, q: p + q, tree, other)


def test_is_leaf():
    tree = {"a": (1, 2), "b": [(3, 4)]}
    leaves = fx.tree_leaves(tree, is_leaf=lambda x: isinstance(x, tuple))
    assert leaves == [(1, 2), (3, 4)]
    out = fx.tree_map(lambda t: sum(t), tree, is_leaf=lambda x: isinstance(x, tuple))
    assert out == {"a": 3, "b": [7]}


def test_unflatten_wrong_leaf_count():
    treedef = fx.tree_structure((1, [2, 3]))
    with pytest.raises(InvalidArgumentError, match="needs 3 leaves, got 2"):
        fx.tree_unflatten(treedef, [1, 2])
    with pytest.raises(InvalidArgumentError):
        fx.tree_unflatten(treedef, [1, 2, 3, 4])


def test_treedef_equality_and_hash():
    s = fx.tree_structure
    assert s((1, [2])) == s(("a", ["b"]))  # leaves do not matter
    assert hash(s((1, [2]))) == hash(s((5, [6])))
    assert s((1, 2)) != s([1, 2])
    assert s({"a": 1}) != s({"b": 1})
    assert s({"a": 1, "b": 2}) == s({"b": 0, "a": 0})
    assert s(Point(1, 2)) != s((1, 2))
    assert s(Box(1, 2, "p")) != s(Box(1, 2, "q"))  # aux is part of the structure
    assert s(Box(1, 2, "p")) == s(Box(3, 4, "p"))
    assert s(None) != s(())
    assert s(None) == s(None)
    assert s(1) != s((1,))
    assert s(Pair(1, 2)) == s(Pair(3, 4))
    table = {s((1, {"k": 2})): "found"}
    assert table[s((0, {"k": 0}))] == "found"
    assert s([1]) != "not a treedef"


def test_treedef_repr():
    s = fx.tree_structure
    assert repr(s(1)) == "*"
    assert repr(s(None)) == "None"
    assert repr(s((1, 2))) == "tuple(*, *)"
    assert repr(s([1, (2, None)])) == "list(*, tuple(*, None))"
    assert repr(s({"b": 1, "a": [2]})) == "{'a': list(*), 'b': *}"
    assert repr(s(Point(1, 2))) == "Point(*, *)"
    assert repr(s(Pair(1, 2))) == "Pair(*, *)"
    assert repr(s(Box(1, 2, "m"))) == "Box(*, *)"


def test_register_pytree_node_flatten_and_map():
    box = Box(fx.tensor([1.0]), {"w": fx.tensor([2.0])}, "cfg")
    leaves, treedef = fx.tree_flatten(box)
    assert [leaf.tolist() for leaf in leaves] == [[1.0], [2.0]]
    doubled = fx.tree_map(lambda t: t * 2, box)
    assert isinstance(doubled, Box) and doubled.name == "cfg"
    assert doubled.a.tolist() == [2.0] and doubled.b["w"].tolist() == [4.0]


def test_dataclass_class_object_is_a_leaf():
    # the class itself is not an instance: it must not be flattened
    assert fx.tree_leaves(Pair) == [Pair]
    assert fx.tree_leaves([Point]) == [Point]


def test_pytrees_through_transforms():
    def loss(params):
        return fx.sum(params["w"] * params["w"]) + fx.sum(params["b"][0])

    params = {"w": fx.tensor([1.0, 2.0]), "b": (fx.tensor([3.0]), None)}
    grads = fx.grad(loss)(params)
    assert fx.tree_structure(grads) == fx.tree_structure(params)
    assert grads["w"].tolist() == [2.0, 4.0]
    assert grads["b"][0].tolist() == [1.0]


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: object
    b: object = dataclasses.field(init=False, default=0)
    c: object = dataclasses.field(default=None, metadata={"static": False})

    def __post_init__(self):
        if not isinstance(self.a, int):  # a check that the leaves mapped below would fail
            raise TypeError("a must be an int")


def test_dataclass_with_init_false_frozen_and_post_init():
    tree = Frozen(1, c=[2])
    leaves, treedef = fx.tree_flatten(tree)
    assert leaves == [1, 0, 2]
    rebuilt = fx.tree_unflatten(treedef, leaves)
    assert rebuilt == tree and type(rebuilt) is Frozen
    mapped = fx.tree_map(str, tree)  # __post_init__ would reject "1": it is not run
    assert (mapped.a, mapped.b, mapped.c) == ("1", "0", ["2"])
    assert fx.tree_structure(mapped) == treedef
