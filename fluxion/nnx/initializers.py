"""Flax's initializers: ``init(key, shape, dtype) -> array``, drawn from ``fx.random``.

>>> import fluxion.nnx as nnx
>>> w = nnx.initializers.lecun_normal()(fx.random.key(0), (64, 32))
>>> w.shape, bool(abs(w).max() <= 2 / 64**0.5 / 0.8796256610342398 + 1e-6)
((64, 32), True)
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.core import dtypes
from fluxion.core.tensor import to_tensor
from fluxion.errors import InvalidArgumentError
from fluxion.ops import random as R
from fluxion.ops.primitives import constant
from fluxion.ops.primitives import zeros as _zeros

# the standard deviation of N(0, 1) truncated to [-2, 2]: Flax divides by it so that a
# truncated draw has the variance asked for
_TRUNCATED_STD = 0.87962566103423978


def zeros(key, shape, dtype=dtypes.DEFAULT_FLOAT):
    return _zeros(tuple(shape), dtypes.to_np(dtype))


def ones(key, shape, dtype=dtypes.DEFAULT_FLOAT):
    return constant(np.ones(tuple(shape)), dtypes.to_np(dtype))


def zeros_init():
    return zeros


def ones_init():
    return ones


def constant_init(value):
    return lambda key, shape, dtype=dtypes.DEFAULT_FLOAT: constant(
        np.full(tuple(shape), value), dtypes.to_np(dtype)
    )


def _truncated_normal(key, shape, np_dtype):
    """N(0, 1) restricted to [-2, 2], by redrawing what falls outside (the draw is eager)."""
    n = math.prod(shape)
    out = np.empty(0, np_dtype)
    for _ in range(100):
        key, sub = R.split(key)
        draw = R.normal(sub, (2 * n + 16,), np_dtype).numpy()
        out = np.concatenate([out, draw[np.abs(draw) <= 2]])
        if out.size >= n:
            return to_tensor(out[:n].reshape(shape))
    raise InvalidArgumentError("truncated_normal: could not draw enough values")  # never


def variance_scaling(scale: float, mode: str, distribution: str, in_axis=-2, out_axis=-1):
    """Flax's ``variance_scaling``: variance ``scale / fan`` (fan_in, fan_out or their mean)."""
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        raise InvalidArgumentError(f"variance_scaling: mode {mode!r} is not fan_in/fan_out/fan_avg")
    if distribution not in ("truncated_normal", "normal", "uniform"):
        raise InvalidArgumentError(
            f"variance_scaling: distribution {distribution!r} is not truncated_normal/normal/uniform"
        )

    def init(key, shape, dtype=dtypes.DEFAULT_FLOAT):
        shape, np_dtype = tuple(shape), dtypes.to_np(dtype)
        # Flax's fans: the axes beyond in_axis and out_axis are a receptive field
        receptive = math.prod(shape) / shape[in_axis] / shape[out_axis]
        fan_in, fan_out = shape[in_axis] * receptive, shape[out_axis] * receptive
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(1, fan)
        if distribution == "truncated_normal":
            return _truncated_normal(key, shape, np_dtype) * (math.sqrt(variance) / _TRUNCATED_STD)
        if distribution == "normal":
            return R.normal(key, shape, np_dtype) * math.sqrt(variance)
        limit = math.sqrt(3 * variance)
        return R.uniform(key, shape, np_dtype, -limit, limit)

    return init


def lecun_normal(in_axis=-2, out_axis=-1):
    return variance_scaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis)


def he_normal(in_axis=-2, out_axis=-1):
    return variance_scaling(2.0, "fan_in", "truncated_normal", in_axis, out_axis)


def glorot_uniform(in_axis=-2, out_axis=-1):
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis)


xavier_uniform = glorot_uniform


def normal(stddev: float = 1e-2):
    return lambda key, shape, dtype=dtypes.DEFAULT_FLOAT: (
        R.normal(key, tuple(shape), dtypes.to_np(dtype)) * stddev
    )


def uniform(scale: float = 1e-2):
    return lambda key, shape, dtype=dtypes.DEFAULT_FLOAT: R.uniform(
        key, tuple(shape), dtypes.to_np(dtype), 0.0, scale
    )
