"""JAX's ``jax.tree``: the short names of ``fluxion.tree_util``.

>>> fx.tree.map(lambda x: x * 2, {"a": 1, "b": (2, 3)})
{'a': 2, 'b': (4, 6)}
"""

from __future__ import annotations

from fluxion.tree_util import all_leaves  # noqa: F401
from fluxion.tree_util import tree_all as all  # noqa: A004
from fluxion.tree_util import tree_flatten as flatten
from fluxion.tree_util import tree_flatten_with_path as flatten_with_path
from fluxion.tree_util import tree_leaves as leaves
from fluxion.tree_util import tree_leaves_with_path as leaves_with_path
from fluxion.tree_util import tree_map as map  # noqa: A004
from fluxion.tree_util import tree_map_with_path as map_with_path
from fluxion.tree_util import tree_reduce as reduce
from fluxion.tree_util import tree_structure as structure
from fluxion.tree_util import tree_unflatten as unflatten

__all__ = [
    "all",
    "all_leaves",
    "flatten",
    "flatten_with_path",
    "leaves",
    "leaves_with_path",
    "map",
    "map_with_path",
    "reduce",
    "structure",
    "unflatten",
]
