"""Random numbers, two ways, one mechanism.

* Explicit keys (JAX style): ``key = fx.random.key(0)``, ``k1, k2 = fx.random.split(key)``,
  ``fx.random.normal(k1, (3,))``. A key is a uint32 tensor of shape (2,); the same key
  always gives the same numbers, and batched keys under vmap give independent draws.
* A global seed (PyTorch style): ``fx.manual_seed(0)``, then ``fx.randn(3)``; each call
  splits a fresh key off the global one.

Every draw comes from the ``random_bits`` primitive; the distributions are composites.
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.core import dtypes
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind, ctx, note_write
from fluxion.errors import DTypeError, InvalidArgumentError
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import astype, cos, log, minimum, sqrt
from fluxion.ops.reduction import argmax
from fluxion.ops.shape import _shape_arg

_UINT32 = np.dtype(np.uint32)


def key(seed: int) -> Tensor:
    """A PRNG key from an integer seed."""
    seed = int(seed)
    return Tensor._from_array(
        np.array([(seed >> 32) & 0xFFFFFFFF, seed & 0xFFFFFFFF], dtype=np.uint32)
    )


PRNGKey = key


def split(key: Tensor, num: int = 2) -> Tensor:
    """``num`` new independent keys, stacked: shape (num, 2)."""
    return bits(key, (num, 2))


def bits(key: Tensor, shape=()) -> Tensor:
    """Uniform uint32 bits of ``shape``."""
    key = to_tensor(key)
    # bind's eager fast path skips the shape/dtype rule and the kernel would accept a float key
    if key._np_dtype != _UINT32 or key.shape[-1:] != (2,):
        raise DTypeError(
            f"random: a key is a uint32 tensor of shape (2,), got {key.dtype}{list(key.shape)}; "
            "make one with fx.random.key(seed) (and more with fx.random.split)"
        )
    return bind(P.random_bits_p, key, shape=_shape_arg(shape))


# mantissa bits + 1 of each float type: that many top bits convert to [0, 1) exactly
_PRECISION = {
    np.dtype(np.float16): 11,
    dtypes.bfloat16_np: 8,
    np.dtype(np.float32): 24,
    np.dtype(np.float64): 32,
}


def uniform(key: Tensor, shape=(), dtype=dtypes.DEFAULT_FLOAT, minval=0.0, maxval=1.0) -> Tensor:
    """Uniform floats in [minval, maxval)."""
    np_dtype = dtypes.to_np(dtype)
    if np_dtype not in _PRECISION:
        raise InvalidArgumentError(f"uniform: dtype must be a float type, got {dtype}")
    drop = 32 - _PRECISION[np_dtype]
    top = bits(key, shape) // P.constant(2**drop, _UINT32) if drop else bits(key, shape)
    unit = astype(top, np.float64) * (2.0 ** -_PRECISION[np_dtype])
    if (minval, maxval) == (0.0, 1.0):
        return astype(unit, np_dtype)
    # Scale in float64, round once. The rounding can still land on maxval (bfloat16:
    # 1 + 255/256 rounds to 2.0, one draw in 256), so clamp to the largest value below it.
    below = np.asarray(maxval, np_dtype)
    if below >= maxval:
        below = np.nextafter(below, np.asarray(-np.inf, np_dtype))
    scaled = astype(unit * (maxval - minval) + minval, np_dtype)
    return minimum(scaled, P.constant(below, np_dtype))


def normal(key: Tensor, shape=(), dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """Standard normal samples (Box-Muller on two uniform draws)."""
    shape = _shape_arg(shape)
    np_dtype = dtypes.to_np(dtype)
    work = np.float64 if np_dtype == np.float64 else np.float32
    u = uniform(key, (2,) + shape, work)
    radius = sqrt(-2.0 * log(1.0 - u[0]))  # 1 - u lies in (0, 1]: the log is finite
    return astype(radius * cos((2.0 * math.pi) * u[1]), np_dtype)


def randint(key: Tensor, shape, minval: int, maxval: int, dtype=dtypes.DEFAULT_INT) -> Tensor:
    """Integers in [minval, maxval)."""
    span = int(maxval) - int(minval)
    if not 0 < span <= 2**32:
        raise InvalidArgumentError(
            f"randint: need minval < maxval within 2**32, got [{minval}, {maxval})"
        )
    shape = _shape_arg(shape)
    if span <= 2**16:
        # bits % span favours the low values by at most span / 2**32: invisible here
        drawn = astype(bits(key, shape) % P.constant(span, _UINT32), np.int64)
    else:
        # a wide span needs more than 32 bits (with % a span of 3 * 2**30 would draw its
        # low third half the time): 53 bits as an exact float64 in [0, 1), scaled down
        hi_lo = astype(bits(key, (2,) + shape), np.float64)
        unit = (hi_lo[0] * 2.0**21 + hi_lo[1] // 2.0**11) * 2.0**-53
        drawn = minimum(astype(unit * span, np.int64), span - 1)
    return astype(drawn + int(minval), dtype)


def bernoulli(key: Tensor, p=0.5, shape=None) -> Tensor:
    """Booleans that are True with probability ``p``; ``shape`` defaults to p's shape."""
    p = to_tensor(p)
    # one draw per element of p: with shape () a tensor p would share a single draw
    shape = p.shape if shape is None else _shape_arg(shape)
    work = np.float64 if p._np_dtype == np.float64 else np.float32
    return uniform(key, shape, work) < p


def categorical(key: Tensor, logits, axis: int = -1) -> Tensor:
    """Samples of indices with probabilities softmax(logits) along ``axis`` (Gumbel max)."""
    logits = to_tensor(logits)
    # The noise is drawn and added in float32 at least: in float16/bfloat16 the Gumbel
    # values are coarse and logits + noise rounds into ties, which argmax gives to index 0.
    work = np.float64 if logits._np_dtype == np.float64 else np.float32
    u = uniform(key, logits.shape, work)
    gumbel = -log(-log(u * (1.0 - 1e-7) + 1e-7))
    return argmax(astype(logits, work) + gumbel, axis=axis)


# ----------------------------------------------------------------------------- global seed


class _GlobalKey:
    """The key behind ``fx.randn`` and friends; ``manual_seed`` resets it."""

    value = key(0)

    @classmethod
    def next(cls) -> Tensor:
        new, sub = split(cls.value)
        cls.set(new)
        return sub

    @classmethod
    def set(cls, value: Tensor) -> None:
        if ctx.noting:  # jit draws fresh numbers at each call: the key is an output
            note_write(cls, "value", cls.value)
        cls.value = value


def manual_seed(seed: int) -> None:
    """Seed the global generator used by randn/rand/randint/normal/uniform and nn init."""
    _GlobalKey.set(key(seed))


def randn(*shape, dtype=dtypes.DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the global generator: ``fx.randn(2, 3)``."""
    out = normal(_GlobalKey.next(), _shape_arg(shape), dtype)
    return out.requires_grad_() if requires_grad else out


def rand(*shape, dtype=dtypes.DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples from the global generator."""
    out = uniform(_GlobalKey.next(), _shape_arg(shape), dtype)
    return out.requires_grad_() if requires_grad else out


def global_randint(low: int, high: int, size, dtype=dtypes.DEFAULT_INT) -> Tensor:
    """PyTorch's randint(low, high, size) from the global generator."""
    return randint(_GlobalKey.next(), _shape_arg(size), low, high, dtype)


def global_normal(mean=0.0, std=1.0, size=(), dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """Normal samples with ``mean`` and ``std`` from the global generator."""
    return normal(_GlobalKey.next(), _shape_arg(size), dtype) * std + mean


def global_uniform(low=0.0, high=1.0, size=(), dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """Uniform [low, high) samples from the global generator."""
    return uniform(_GlobalKey.next(), _shape_arg(size), dtype, low, high)
