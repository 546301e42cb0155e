"""A module flattens from the roles ``__setattr__`` recorded and reuses its cached structure
while nothing changed: every change made after a flatten (in place in a list or dict, by
assignment, deletion, registration, train/eval, ``requires_grad_``, copies, unflattening)
must give what a module built afresh with the resulting attributes gives."""

from __future__ import annotations

import copy
import pickle

import fluxion as fx
from fluxion.nn.module import trainable_mask, training_flags

nn = fx.nn


class Holder(nn.Module):
    """A module of the given attributes, assigned in order (the fresh module to compare with)."""

    def __init__(self, **attrs):
        super().__init__()
        for name, value in attrs.items():
            setattr(self, name, value)


def same_as_fresh(m, fresh):
    """``m`` flattens, traverses and saves as ``fresh`` does (the same tensor objects)."""
    leaves, tree = fx.tree_flatten(m)
    want_leaves, want_tree = fx.tree_flatten(fresh)
    assert tree == want_tree and hash(tree) == hash(want_tree), (tree, want_tree)
    assert len(leaves) == len(want_leaves) and all(a is b for a, b in zip(leaves, want_leaves))
    for method in ("named_parameters", "named_buffers", "named_children", "named_modules"):
        got, want = getattr(m, method)(), getattr(fresh, method)()
        assert [n for n, _ in got] == [n for n, _ in want], method
        if method != "named_modules":  # (its first entry is the module itself)
            assert all(a is b for (_, a), (_, b) in zip(got, want)), method
    assert list(m.state_dict()) == list(fresh.state_dict())
    assert trainable_mask(m) == trainable_mask(fresh)
    assert training_flags(m) == training_flags(fresh)


def test_in_place_changes_to_lists_and_dicts_are_seen():
    fc, a, b, w = nn.Linear(2, 2), nn.Linear(2, 3), nn.Linear(3, 1), fx.ones(2)
    m = Holder(fc=fc, layers=[], extra={}, sizes=(2, 3))
    empty = fx.tree_structure(m)
    m.layers.append(a), m.layers.append(b)
    m.extra["w"] = w
    same_as_fresh(m, Holder(fc=fc, layers=[a, b], extra={"w": w}, sizes=(2, 3)))
    assert fx.tree_structure(m) != empty
    assert [n for n, _ in m.named_parameters()][-2:] == ["layers.1.weight", "layers.1.bias"]
    m.layers[0] = fc  # now an alias of a direct attribute: no leaves of its own
    same_as_fresh(m, Holder(fc=fc, layers=[fc, b], extra={"w": w}, sizes=(2, 3)))
    m.layers.reverse()
    same_as_fresh(m, Holder(fc=fc, layers=[b, fc], extra={"w": w}, sizes=(2, 3)))
    m.layers.clear(), m.extra.clear()
    same_as_fresh(m, Holder(fc=fc, layers=[], extra={}, sizes=(2, 3)))
    assert fx.tree_structure(m) == empty


def test_assignments_deletions_and_registrations_after_a_flatten():
    fc, w, pe = nn.Linear(2, 2), nn.Parameter(fx.ones(2)), fx.zeros(3)
    m = Holder(fc=fc, d=4)
    fx.tree_flatten(m)
    m.d = 6  # only a static value
    same_as_fresh(m, Holder(fc=fc, d=6))
    m.w, m.d = w, 5
    same_as_fresh(m, Holder(fc=fc, d=5, w=w))
    m.other = nn.Linear(2, 2)
    fx.tree_flatten(m)
    m.other = fc  # an alias now: the same slots, fewer children
    same_as_fresh(m, Holder(fc=fc, d=5, w=w, other=fc))
    del m.other
    del m.fc
    same_as_fresh(m, Holder(d=5, w=w))
    m.register_buffer("pe", pe, persistent=False)
    fresh = Holder(d=5, w=w)
    fresh.register_buffer("pe", pe, persistent=False)
    same_as_fresh(m, fresh)
    m.register_buffer("pe", pe)  # persistent again: state_dict saves it
    assert fx.tree_structure(m) != fx.tree_structure(fresh) and "pe" in m.state_dict()
    m.fc = fc
    m.fc = nn.Linear(2, 2)  # a new submodule in the same place
    assert fx.tree_leaves(m)[-1] is m.fc.bias
    m.add_module("head", fc), m.register_parameter("v", None)
    fresh = Holder(d=5, w=w)
    fresh.register_buffer("pe", pe)
    fresh.fc, fresh.head = m.fc, fc
    fresh.register_parameter("v", None)
    same_as_fresh(m, fresh)


def test_train_eval_after_a_flatten_changes_the_flags_not_the_structure():
    m = Holder(body=nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
    leaves, tree = fx.tree_flatten(m)
    m.eval()
    eval_leaves, eval_tree = fx.tree_flatten(m)
    assert eval_tree == tree and training_flags(m) == (False, False, False, False)
    assert fx.tree_unflatten(eval_tree, eval_leaves).body[1].training is False
    assert (
        fx.tree_unflatten(tree, leaves).body[1].training is True
    )  # the old structure keeps its flag
    m.body[1].train()
    assert training_flags(m) == (False, False, False, True)


def test_tensor_kinds_direct_ones_at_assignment_those_in_lists_at_flatten():
    t, u = fx.zeros(2), fx.zeros(3)
    m = Holder(direct=t, inlist=[u])
    fx.tree_flatten(m)
    t.requires_grad_(), u.requires_grad_()
    fresh = Holder()
    fresh.register_buffer("direct", t)  # a buffer, as when it was assigned
    fresh.inlist = [u]
    same_as_fresh(m, fresh)
    assert [n for n, _ in m.named_parameters()] == ["inlist.0"]
    w = nn.Parameter(fx.ones(2))
    m = Holder(w=w)
    tree = fx.tree_structure(m)
    with fx.no_grad():
        w.data = fx.zeros(4)  # new values, same parameter and structure
    assert fx.tree_structure(m) == tree and fx.tree_leaves(m)[0] is w


def test_copies_and_pickles_have_bookkeeping_of_their_own():
    fc = nn.Linear(2, 2)
    m = Holder(fc=fc, d=4, layers=[nn.Linear(2, 1)])
    tree = fx.tree_structure(m)
    c = copy.copy(m)
    c.head, c.w = nn.Linear(2, 1), nn.Parameter(fx.ones(1))
    del c.d
    assert fx.tree_structure(m) == tree and [n for n, _ in m.named_children()] == ["fc", "layers.0"]
    for twin in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert fx.tree_structure(twin) == tree and hash(fx.tree_structure(twin)) == hash(tree)
        twin.layers.append(nn.Linear(1, 1))
        assert fx.tree_structure(m) == tree


def test_unflattened_modules_flatten_as_fresh_ones():
    a, b, w = nn.Linear(2, 2), nn.Linear(2, 1), fx.ones(2)
    m = Holder(fc=a, layers=[a, b], extra={"w": w}, d=3)
    leaves, tree = fx.tree_flatten(m)
    u = fx.tree_unflatten(tree, leaves)
    assert fx.tree_structure(u) == tree and all(x is y for x, y in zip(fx.tree_leaves(u), leaves))
    assert u.layers[0] is u.fc  # the alias survives
    c = nn.Linear(1, 1)
    u.layers.append(c)
    same_as_fresh(u, Holder(fc=u.fc, layers=[u.fc, u.layers[1], c], extra=u.extra, d=3))
    # a tree_map over modules that puts something else in a submodule's place
    v = fx.tree_map(
        lambda x: None if x is a else x,
        m,
        is_leaf=lambda x: isinstance(x, nn.Module) and x is not m,
    )
    assert v.fc is None and v.layers[0] is None
    same_as_fresh(v, Holder(fc=None, layers=[None, b], extra={"w": w}, d=3))
