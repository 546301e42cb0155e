"""Gradient clipping: functional (any pytree, traceable) and in place on ``.grad`` (PyTorch).

Both follow ``torch.nn.utils.clip_grad_norm_``: the total norm is the norm of the per-tensor
norms, and every gradient is multiplied by ``min(1, max_norm / (total_norm + 1e-6))``.

>>> grads = {"w": fx.tensor([3.0, 4.0])}
>>> clipped, norm = fx.optim.clip_by_global_norm(grads, 1.0)
>>> norm
5.0:f32[]:cpu(0)
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.core import dtypes
from fluxion.core.checks import check_number
from fluxion.core.pytree import tree_flatten, tree_unflatten
from fluxion.core.tensor import Tensor
from fluxion.core.trace import no_grad
from fluxion.errors import FloatingPointCheckError
from fluxion.ops import elementwise as E
from fluxion.ops import reduction as R
from fluxion.ops.primitives import constant
from fluxion.ops.shape import stack
from fluxion.optim.stateful import is_module, write


def _vector_norm(x: Tensor, p: float) -> Tensor:
    if x.size == 0:
        return constant(0.0, x._np_dtype)
    if p == math.inf:
        return R.max(E.abs(x))
    if p == 2:
        return E.sqrt(R.sum(x * x))
    if p == 1:
        return R.sum(E.abs(x))
    return R.sum(E.abs(x) ** p) ** (1.0 / p)


def _check_norm_type(op: str, norm_type) -> float:
    """The order of a norm: a number > 0 (2.0, 1.0 or math.inf...)."""
    return check_number(op, "norm_type", norm_type, 0.0, low_open=True, finite=False)


def _check_max_norm(op: str, max_norm):
    return check_number(op, "max_norm", max_norm, 0.0, finite=False)


def _float_leaves(tree):
    leaves, treedef = tree_flatten(tree, is_leaf=lambda x: x is None)
    idx = [
        i for i, g in enumerate(leaves) if isinstance(g, Tensor) and dtypes.is_float(g._np_dtype)
    ]
    return leaves, treedef, idx


def global_norm(tree, norm_type: float = 2.0) -> Tensor:
    """The norm of all float leaves of ``tree`` taken together (``None`` leaves are skipped)."""
    p = _check_norm_type("global_norm", norm_type)
    leaves, _, idx = _float_leaves(tree)
    return _total_norm([leaves[i] for i in idx], p)


def _total_norm(grads: list, p: float) -> Tensor:
    if not grads:
        return constant(0.0, dtypes.DEFAULT_FLOAT)
    dtype = dtypes.DEFAULT_FLOAT
    for g in grads:
        if g._np_dtype == dtypes.to_np("float64"):
            dtype = g._np_dtype
    norms = [E.astype(_vector_norm(g, p), dtype) for g in grads]
    return _vector_norm(stack(norms), p)


def clip_by_global_norm(tree, max_norm: float, norm_type: float = 2.0):
    """Scale every float leaf of ``tree`` by ``min(1, max_norm / (norm + 1e-6))``; returns
    ``(clipped_tree, norm)``. Pure: it can run under ``fx.grad``, ``fx.vmap`` and ``fx.jit``."""
    p = _check_norm_type("clip_by_global_norm", norm_type)
    max_norm = _check_max_norm("clip_by_global_norm", max_norm)
    leaves, treedef, idx = _float_leaves(tree)
    norm = _total_norm([leaves[i] for i in idx], p)
    return tree_unflatten(treedef, _scaled(leaves, idx, norm, max_norm)), norm


def _scaled(leaves: list, idx: list, norm: Tensor, max_norm) -> list:
    coef = E.minimum(max_norm / (norm + 1e-6), 1.0)
    out = list(leaves)
    for i in idx:
        out[i] = leaves[i] * E.astype(coef, leaves[i]._np_dtype)
    return out


def _grads_of(parameters) -> list[Tensor]:
    if is_module(parameters):
        parameters = parameters.parameters()
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(
    parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> Tensor:
    """Scale the ``.grad`` of ``parameters`` in place so that their total norm is at most
    ``max_norm`` (``torch.nn.utils.clip_grad_norm_``); returns the total norm before clipping.

    >>> w = fx.tensor([3.0, 4.0], requires_grad=True)
    >>> fx.sum(w * w).backward()          # w.grad = [6, 8], norm 10
    >>> fx.optim.clip_grad_norm_([w], 1.0)
    10.0:f32[]:cpu(0)
    >>> [round(g, 6) for g in w.grad.tolist()]
    [0.6, 0.8]
    """
    grads = _grads_of(parameters)
    p = _check_norm_type("clip_grad_norm_", norm_type)
    max_norm = _check_max_norm("clip_grad_norm_", max_norm)
    with no_grad():
        norm = _total_norm(grads, p)
        if error_if_nonfinite and not np.isfinite(norm.numpy()):
            raise FloatingPointCheckError(
                f"clip_grad_norm_: the total norm of order {p} of the gradients is "
                f"{norm.item()}, so they cannot be clipped; pass error_if_nonfinite=False to "
                "scale them by it anyway"
            )
        for g, c in zip(grads, _scaled(grads, range(len(grads)), norm, max_norm)):
            write(g, c)
    return norm


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp the ``.grad`` of ``parameters`` in place to ``[-clip_value, clip_value]``."""
    clip_value = check_number("clip_grad_value_", "clip_value", clip_value, 0.0, finite=False)
    with no_grad():
        for g in _grads_of(parameters):
            write(g, E.clip(g, -clip_value, clip_value))
