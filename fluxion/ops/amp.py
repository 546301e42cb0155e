"""Mixed precision: ``fx.autocast`` and its cast policy, PyTorch's CPU autocast lists.

Inside ``with fx.autocast(dtype=fx.bfloat16):`` each op named in ``POLICY`` casts its
floating-point tensor arguments before it runs:

* ``LOWER``: products (matmul and ``@``, linear, tensordot, einsum, vecdot, attention) take
  float32 inputs in bfloat16 and give bfloat16 (the matmul kernel accumulates in float32).
* ``FLOAT32``: losses take bfloat16/float16 inputs in float32 and give float32.

Every other op runs in the widest dtype of its inputs, fluxion's promotion (PyTorch's
"promote" list, cat and stack, is that rule already); softmax, norms, reductions and
exp/log of a bfloat16 tensor give bfloat16 computed in float32, as PyTorch's CPU kernels.
The casts are ops like any other: ``fx.jit`` traces them into its graph (the policy is
part of its cache key), and gradients flow back through them, so float32 parameters get
float32 ``.grad``. Inside a listed op autocast is off, as in PyTorch: the op's own pieces
run in the dtypes its inputs were cast to.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np

from fluxion.core import dtypes
from fluxion.core.checks import check_dtype
from fluxion.core.effects import register_call_key
from fluxion.core.tensor import Tensor
from fluxion.errors import ArgumentTypeError, DTypeError, InvalidArgumentError
from fluxion.ops.elementwise import astype

LOWER, FLOAT32 = "lower", "float32"

# op name (the decorated function's __name__) -> its cast rule
POLICY = {
    "matmul": LOWER,
    "linear": LOWER,
    "tensordot": LOWER,
    "einsum": LOWER,
    "vecdot": LOWER,
    "scaled_dot_product_attention": LOWER,
    "cross_entropy": FLOAT32,
    "nll_loss": FLOAT32,
    "mse_loss": FLOAT32,
    "l1_loss": FLOAT32,
    "binary_cross_entropy": FLOAT32,
    "binary_cross_entropy_with_logits": FLOAT32,
    "huber_loss": FLOAT32,
    "smooth_l1_loss": FLOAT32,
}

_F32 = np.dtype(np.float32)


class _State(threading.local):
    # the low dtype while autocast is on, else None: each thread has its own, as in PyTorch
    dtype: np.dtype | None = None


_state = _State()


def policy_key(in_tree=None) -> np.dtype | None:
    """What a compiled function's cache key holds of autocast: its dtype, or None when off."""
    return _state.dtype


def _explain_policy_change(old, new) -> str:
    old, new = ("off" if d is None else dtypes.to_dtype(d) for d in (old, new))
    return f"fx.autocast changed: {old} -> {new}"


register_call_key(
    policy_key, _explain_policy_change
)  # a function traced under autocast holds its casts


def is_autocast_enabled(device_type: str = "cpu") -> bool:
    return _state.dtype is not None


def get_autocast_dtype(device_type: str = "cpu") -> dtypes.DType:
    return dtypes.to_dtype(_state.dtype or dtypes.bfloat16_np)


class autocast(contextlib.ContextDecorator):
    """Run products in a lower precision and losses in float32 (see ``POLICY``), as
    ``torch.autocast``: a context manager or a decorator, eager and inside ``fx.jit``,
    ``fx.grad`` and ``fx.vmap``. Parameters stay float32, and so do their gradients.

    >>> w = fx.randn(4, 3, requires_grad=True)
    >>> with fx.autocast(dtype=fx.bfloat16):
    ...     y = fx.randn(2, 4) @ w
    >>> y.dtype
    bfloat16
    >>> y.float().sum().backward(); w.grad.dtype
    float32

    ``device_type`` is "cpu" (fluxion's only device); ``dtype`` bfloat16 (the default) or
    float16; ``enabled=False`` turns autocast off inside the block. ``cache_enabled`` is
    accepted for PyTorch's code: fluxion casts a weight at each use (inside ``fx.jit`` the
    graph computes each cast once).
    """

    def __init__(self, device_type="cpu", dtype=None, enabled: bool = True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise InvalidArgumentError(
                f"autocast: device_type must be a str such as 'cpu', got {device_type!r}; "
                "pass the dtype by name: fx.autocast(dtype=fx.bfloat16)"
            )
        if device_type != "cpu":
            raise InvalidArgumentError(
                f"autocast: device_type {device_type!r} is not available; fluxion runs on "
                "'cpu': write fx.autocast('cpu', dtype=fx.bfloat16)"
            )
        low = check_dtype("autocast", "dtype", dtype, default=dtypes.bfloat16_np)
        if low not in dtypes.LOW_FLOATS:
            raise DTypeError(
                f"autocast: dtype must be bfloat16 or float16, got {dtype!r}; float32 is what "
                "runs without autocast"
            )
        if not isinstance(enabled, bool):
            raise ArgumentTypeError(f"autocast: enabled must be True or False, got {enabled!r}")
        self.dtype = low if enabled else None
        self.previous: list = []  # a stack: one instance may be entered again (recursion)

    def __enter__(self):
        self.previous.append(_state.dtype)
        _state.dtype = self.dtype
        return self

    def __exit__(self, *exc):
        _state.dtype = self.previous.pop()


def _cast(value, rule: str, low: np.dtype):
    if isinstance(value, list | tuple):
        return type(value)(_cast(v, rule, low) for v in value)
    if not isinstance(value, Tensor):
        return value
    dtype = value._np_dtype
    if rule == LOWER and dtype in (_F32, np.dtype(np.float16), dtypes.bfloat16_np):
        return astype(value, low, copy=False)
    if rule == FLOAT32 and dtype in dtypes.LOW_FLOATS:
        return astype(value, _F32, copy=False)
    return value


def autocast_op(fn):
    """Give ``fn`` its rule in ``POLICY`` (by its name): under autocast its floating-point
    tensor arguments are cast by the rule, and it runs with autocast off inside."""
    rule = POLICY[fn.__name__]

    @functools.wraps(fn)
    def cast_by_policy(*args, **kwargs):
        low = _state.dtype
        if low is None:
            return fn(*args, **kwargs)
        args = _cast(args, rule, low)
        kwargs = {k: _cast(v, rule, low) for k, v in kwargs.items()}
        _state.dtype = None
        try:
            return fn(*args, **kwargs)
        finally:
            _state.dtype = low

    cast_by_policy.autocast_rule = rule
    return cast_by_policy
