"""Modules passed to a transformed function: what the function writes into them.

A transform flattens its arguments into leaves and calls the function on a copy rebuilt
around its own tracers (``tree_unflatten``), so a module argument arrives as a new module
object. What the function writes into that copy (running statistics, say: ``note_write``
records it in trace.py) belongs to the module the caller passed. ``carry_out`` finds those
writes; ``write_to_originals`` moves them to the caller's modules, where the trace settles
them as it settles any other write (grad and jvp keep the primal, vmap refuses a batched
value); jit instead writes them into the arguments of each call.

Holders of state register here (nn's Module does), saying which holders they contain; so do
kinds of leaves that a compiled function's results keep (an nn.Parameter in, updated, comes
back a Parameter) and what a call's result depends on beyond its leaves' shapes and dtypes (a
module's train/eval mode). jit reads this registry and knows nothing of nn.
"""

from __future__ import annotations

from collections.abc import Callable

from fluxion.core.pytree import tree_leaves
from fluxion.core.trace import ABSENT, note_write, set_state

_HOLDERS: dict[type, Callable] = {}  # holder base class -> nested(holder): holders inside it
_KEPT_KINDS: dict[type, Callable] = {}  # leaf type -> kept(leaf): whether results keep it
# call_key parts: (part(in_tree) -> a hashable, explain(old, new) -> why a cache missed)
_CALL_KEYS: list[tuple[Callable, Callable]] = []


def register_holder(cls: type, nested: Callable) -> None:
    _HOLDERS[cls] = nested


def register_kept_kind(cls: type, kept: Callable) -> None:
    _KEPT_KINDS[cls] = kept


def kept_kind(leaf) -> type | None:
    """The type a staged function's result leaf computed from ``leaf`` comes back as, if any."""
    kept = _KEPT_KINDS.get(type(leaf))
    return type(leaf) if kept is not None and kept(leaf) else None


def register_call_key(part: Callable, explain: Callable) -> None:
    _CALL_KEYS.append((part, explain))


def call_key(in_tree) -> tuple:
    """What a compiled function's graph depends on beyond its arguments' structure, shapes and
    dtypes: ``Module.train()``/``eval()`` keep the structure yet change the code, and so does
    ``fx.autocast``."""
    return tuple(part(in_tree) for part, _ in _CALL_KEYS)


def explain_call_key(old: tuple, new: tuple) -> str | None:
    """Why two call keys differ, in words, or None where they do not."""
    for (_, explain), a, b in zip(_CALL_KEYS, old, new):
        if a != b:
            return explain(a, b)
    return None


def holders(tree) -> list:
    """The holders of state in ``tree``, nested ones after their parent, in pytree order (the
    same order for a tree and for a copy rebuilt from its leaves)."""
    types = tuple(_HOLDERS)
    found = []

    def visit(holder):
        found.append(holder)
        nested = next(fn for cls, fn in _HOLDERS.items() if isinstance(holder, cls))
        for child in nested(holder):
            visit(child)

    if types:
        for leaf in tree_leaves(tree, is_leaf=lambda x: isinstance(x, types)):
            if isinstance(leaf, types):
                visit(leaf)
    return found


def carry_out(trace, copies) -> list:
    """The writes ``trace`` noted into the holders of ``copies`` (the arguments as the
    function got them), as ``(index among holders(copies), attribute, value)``; they are
    no longer the trace's to settle."""
    if not trace.noted:
        return []
    index = {id(h): k for k, h in enumerate(holders(copies))}
    moved = []
    for key, (holder, name, _) in list(trace.noted.items()):
        if id(holder) in index:
            del trace.noted[key]
            moved.append((index[id(holder)], name, getattr(holder, name)))
    return moved


def write_to_originals(trace, originals, copies) -> None:
    """What the function wrote into ``copies`` written into ``originals`` instead, as
    writes of ``trace`` (it settles them when it ends)."""
    moved = carry_out(trace, copies)
    if moved:
        targets = holders(originals)
        for k, name, value in moved:
            note_write(targets[k], name, getattr(targets[k], name, ABSENT))
            set_state(targets[k], name, value)
