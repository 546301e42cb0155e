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
from fluxion.core.checks import (
    check_allocation,
    check_dtype,
    check_int,
    check_number,
    check_probability,
    check_seed,
    check_shape,
    check_size,
)
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind, ctx, note_write
from fluxion.errors import DTypeError, InvalidArgumentError
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import astype, cos, log, minimum, sqrt, where
from fluxion.ops.indexing import take, take_along_axis
from fluxion.ops.reduction import argmax, argsort, top_k
from fluxion.ops.shape import _star_shape, broadcast_to, moveaxis

_UINT32 = np.dtype(np.uint32)
_F64 = np.dtype(np.float64)


def key(seed: int) -> Tensor:
    """A PRNG key from an integer seed (64 bits: -1 and 2**64 - 1 give the same key)."""
    seed = check_seed("key", "seed", seed)
    return Tensor._from_array(np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32))


PRNGKey = key


def check_key(op: str, key, name: str = "key") -> Tensor:
    """``key`` as a tensor, if it is a PRNG key: uint32 of shape (2,) (or a batch of them)."""
    if isinstance(key, np.ndarray):
        key = to_tensor(key)
    # bind's eager fast path skips the shape/dtype rule and the kernel would accept a float key
    if not isinstance(key, Tensor) or key._np_dtype != _UINT32 or key.shape[-1:] != (2,):
        got = f"{key.dtype}{list(key.shape)}" if isinstance(key, Tensor) else repr(key)
        raise DTypeError(
            f"{op}: {name} must be a PRNG key, a uint32 tensor of shape (2,), got {got}; make "
            "one with fx.random.key(seed) (and more with fx.random.split)"
        )
    return key


def _bits(key: Tensor, shape: tuple) -> Tensor:
    return bind(P.random_bits_p, key, shape=shape)


def split(key: Tensor, num: int = 2) -> Tensor:
    """``num`` new independent keys, stacked: shape (num, 2)."""
    key = check_key("split", key)
    shape = (check_size("split", "num", num), 2)
    check_allocation("split", key.shape[:-1] + shape, _UINT32)
    return _bits(key, shape)


def bits(key: Tensor, shape=()) -> Tensor:
    """Uniform uint32 bits of ``shape``."""
    key = check_key("bits", key)
    shape = check_shape("bits", "shape", shape)
    check_allocation("bits", key.shape[:-1] + shape, _UINT32)
    return _bits(key, shape)


# mantissa bits + 1 of each float type: that many top bits convert to [0, 1) exactly
_PRECISION = {
    np.dtype(np.float16): 11,
    dtypes.bfloat16_np: 8,
    np.dtype(np.float32): 24,
    np.dtype(np.float64): 32,
}


def _draw_shape(op: str, key: Tensor, shape, name: str = "shape") -> tuple:
    """The shape of a draw, which must fit in memory as the float64 values it is made of."""
    shape = check_shape(op, name, shape)
    check_allocation(op, key.shape[:-1] + shape, _F64)
    return shape


def _check_range(op: str, low_name: str, low, high_name: str, high) -> tuple[float, float]:
    low, high = check_number(op, low_name, low), check_number(op, high_name, high)
    if not low < high:
        raise InvalidArgumentError(
            f"{op}: {low_name}={low!r} must be below {high_name}={high!r}; draws lie in "
            f"[{low_name}, {high_name})"
        )
    return low, high


def uniform(key: Tensor, shape=(), dtype=dtypes.DEFAULT_FLOAT, minval=0.0, maxval=1.0) -> Tensor:
    """Uniform floats in [minval, maxval)."""
    key = check_key("uniform", key)
    np_dtype = check_dtype("uniform", "dtype", dtype, floating=True)
    minval, maxval = _check_range("uniform", "minval", minval, "maxval", maxval)
    return _uniform(key, _draw_shape("uniform", key, shape), np_dtype, minval, maxval)


def _uniform(key, shape, np_dtype, minval=0.0, maxval=1.0) -> Tensor:
    drop = 32 - _PRECISION[np_dtype]
    raw = _bits(key, shape)
    top = raw // P.constant(2**drop, _UINT32) if drop else raw
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
    key = check_key("normal", key)
    np_dtype = check_dtype("normal", "dtype", dtype, floating=True)
    return _normal(key, _draw_shape("normal", key, shape), np_dtype)


def _normal(key, shape, np_dtype) -> Tensor:
    work = np.dtype(np.float64 if np_dtype == np.float64 else np.float32)
    u = _uniform(key, (2,) + shape, work)
    radius = sqrt(-2.0 * log(1.0 - u[0]))  # 1 - u lies in (0, 1]: the log is finite
    return astype(radius * cos((2.0 * math.pi) * u[1]), np_dtype)


def randint(key: Tensor, shape, minval: int, maxval: int, dtype=dtypes.DEFAULT_INT) -> Tensor:
    """Integers in [minval, maxval)."""
    key = check_key("randint", key)
    lo, hi = check_int("randint", "minval", minval), check_int("randint", "maxval", maxval)
    np_dtype = check_dtype("randint", "dtype", dtype)
    return _randint("randint", key, _draw_shape("randint", key, shape), lo, hi, np_dtype)


def _randint(op, key, shape, lo: int, hi: int, np_dtype, names=("minval", "maxval")) -> Tensor:
    span = hi - lo
    if not 0 < span <= 2**32:
        raise InvalidArgumentError(
            f"{op}: need {names[0]} < {names[1]} within 2**32, got [{lo}, {hi})"
        )
    if span <= 2**16:
        # bits % span favours the low values by at most span / 2**32: invisible here
        drawn = astype(_bits(key, shape) % P.constant(span, _UINT32), np.int64)
    else:
        # a wide span needs more than 32 bits (with % a span of 3 * 2**30 would draw its
        # low third half the time): 53 bits as an exact float64 in [0, 1), scaled down
        hi_lo = astype(_bits(key, (2,) + shape), np.float64)
        unit = (hi_lo[0] * 2.0**21 + hi_lo[1] // 2.0**11) * 2.0**-53
        drawn = minimum(astype(unit * span, np.int64), span - 1)
    return astype(drawn + lo, np_dtype)


def bernoulli(key: Tensor, p=0.5, shape=None) -> Tensor:
    """Booleans that are True with probability ``p``; ``shape`` defaults to p's shape."""
    key = check_key("bernoulli", key)
    p = to_tensor(check_probability("bernoulli", "p", p))
    # one draw per element of p: with shape () a tensor p would share a single draw
    shape = p.shape if shape is None else _draw_shape("bernoulli", key, shape)
    work = np.dtype(np.float64 if p._np_dtype == np.float64 else np.float32)
    return _uniform(key, shape, work) < p


def categorical(key: Tensor, logits, axis: int = -1, shape=None) -> Tensor:
    """Samples of indices with probabilities softmax(logits) along ``axis`` (Gumbel max);
    ``shape`` (JAX's), the samples' shape, broadcasts the other axes of ``logits``."""
    key = check_key("categorical", key)
    logits = to_tensor(logits)
    axis = P.check_axis("categorical", axis, logits.ndim)
    if shape is not None:  # the other axes of logits broadcast against shape
        batch = _draw_shape("categorical", key, shape)
        logits = moveaxis(logits, axis, -1)
        logits, axis = broadcast_to(logits, batch + logits.shape[-1:]), len(batch)
    # The noise is drawn and added in float32 at least: in float16/bfloat16 the Gumbel
    # values are coarse and logits + noise rounds into ties, which argmax gives to index 0.
    work = np.dtype(np.float64 if logits._np_dtype == np.float64 else np.float32)
    u = _uniform(key, logits.shape, work)
    gumbel = -log(-log(u * (1.0 - 1e-7) + 1e-7))
    return argmax(astype(logits, work) + gumbel, axis=axis)


def fold_in(key: Tensor, data) -> Tensor:
    """A new key from ``key`` and an integer ``data`` (which may be traced): a different
    stream for each value, and for every value different from ``split``'s keys."""
    key = check_key("fold_in", key)
    data = astype(to_tensor(data), _UINT32)
    # the salt in the high word keeps fold_in(key, 0) apart from split(key)[0]
    mixed = key ^ (
        P.constant(np.array([0x9E3779B9, 0], np.uint32), _UINT32)
        + P.constant(np.array([0, 1], np.uint32), _UINT32) * data[..., None]
    )
    return _bits(mixed, (2,))


def permutation(key: Tensor, x, axis: int = 0, independent: bool = False) -> Tensor:
    """A shuffled ``arange(x)`` (an int ``x``) or ``x`` shuffled along ``axis``; with
    ``independent=True`` each slice along ``axis`` is shuffled on its own."""
    key = check_key("permutation", key)
    if isinstance(x, int | np.integer):
        n = check_size("permutation", "x", x)
        return argsort(_uniform(key, (n,), _F64))
    x = to_tensor(x)
    if x.ndim == 0:
        raise InvalidArgumentError("permutation: x must be an int or an array of at least 1 axis")
    axis = P.check_axis("permutation", axis, x.ndim)
    if independent:
        return take_along_axis(x, argsort(_uniform(key, x.shape, _F64), axis=axis), axis=axis)
    return take(x, argsort(_uniform(key, (x.shape[axis],), _F64)), axis=axis)


def choice(key: Tensor, a, shape=(), replace: bool = True, p=None, axis: int = 0) -> Tensor:
    """Draws from ``a`` (an int: ``arange(a)``) along ``axis``: uniformly, or with the
    probabilities ``p``; without ``replace`` no element is drawn twice."""
    key = check_key("choice", key)
    shape = _draw_shape("choice", key, shape)
    arr = None if isinstance(a, int | np.integer) else to_tensor(a)
    n = (
        check_size("choice", "a", a)
        if arr is None
        else arr.shape[P.check_axis("choice", axis, arr.ndim)]
    )
    count = math.prod(shape)
    if not replace and count > n:
        raise InvalidArgumentError(
            f"choice: cannot draw {count} samples without replacement from {n}; pass replace=True"
        )
    if n == 0 and count:
        raise InvalidArgumentError("choice: a is empty, there is nothing to draw")
    logits = P.zeros((n,), _F64) if p is None else log(astype(to_tensor(p), _F64))
    if replace:
        picked = categorical(key, logits, shape=shape)
    else:  # Gumbel top-k: exact for draws without replacement
        noisy = logits - log(-log(_uniform(key, (n,), _F64) * (1.0 - 1e-7) + 1e-7))
        picked = top_k(noisy, count)[1].reshape(shape)
    return picked if arr is None else take(arr, picked, axis=axis)


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
    _GlobalKey.set(key(check_seed("manual_seed", "seed", seed)))


def _global_draw(op: str, shape, dtype, name: str = "shape"):
    """The key, shape and float dtype of a draw from the global generator, checked."""
    np_dtype = check_dtype(op, "dtype", dtype, floating=True)
    shape = check_shape(op, name, shape)
    check_allocation(op, shape, _F64)
    return _GlobalKey.next(), shape, np_dtype


def randn(*shape, dtype=dtypes.DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the global generator: ``fx.randn(2, 3)``."""
    out = _normal(*_global_draw("randn", _star_shape(shape), dtype))
    return out.requires_grad_() if requires_grad else out


def rand(*shape, dtype=dtypes.DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) samples from the global generator."""
    out = _uniform(*_global_draw("rand", _star_shape(shape), dtype))
    return out.requires_grad_() if requires_grad else out


def global_randint(low: int, high: int, size, dtype=dtypes.DEFAULT_INT) -> Tensor:
    """PyTorch's randint(low, high, size) from the global generator."""
    lo, hi = check_int("randint", "low", low), check_int("randint", "high", high)
    np_dtype = check_dtype("randint", "dtype", dtype)
    shape = check_shape("randint", "size", size)
    check_allocation("randint", shape, _F64)
    return _randint("randint", _GlobalKey.next(), shape, lo, hi, np_dtype, ("low", "high"))


def global_normal(mean=0.0, std=1.0, size=(), dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """Normal samples with ``mean`` and ``std`` from the global generator."""
    mean = check_number("normal", "mean", mean)
    std = check_number("normal", "std", std, 0.0)
    return _normal(*_global_draw("normal", size, dtype, "size")) * std + mean


def global_uniform(low=0.0, high=1.0, size=(), dtype=dtypes.DEFAULT_FLOAT) -> Tensor:
    """Uniform [low, high) samples from the global generator."""
    low, high = _check_range("uniform", "low", low, "high", high)
    return _uniform(*_global_draw("uniform", size, dtype, "size"), low, high)


# ----------------------------------------------------------------------------- PyTorch's generators


class Generator:
    """PyTorch's ``torch.Generator``: a seeded stream of keys, for ``generator=`` arguments
    (``fx.randperm``, ``fx.multinomial``, ``DataLoader(shuffle=True)``, ``random_split``).

    >>> g = fx.Generator().manual_seed(0)
    >>> fx.randperm(4, generator=g).shape
    (4,)

    The numbers differ from PyTorch's for the same seed (a different algorithm underneath);
    the same seed always gives the same numbers in fluxion.
    """

    default_seed = 67280421310721  # PyTorch's initial_seed() of a new Generator

    def __init__(self, device="cpu"):
        self.device = device
        self.manual_seed(self.default_seed)

    def manual_seed(self, seed: int) -> Generator:
        self._seed = check_seed("Generator.manual_seed", "seed", seed)
        self._set(key(self._seed))
        return self

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> Tensor:
        return self._key

    def set_state(self, state) -> Generator:
        self._set(check_key("Generator.set_state", state, "state"))
        return self

    def next_key(self) -> Tensor:
        """A fresh key; the generator moves on."""
        new, sub = split(self._key)
        self._set(new)
        return sub

    def _set(self, value: Tensor) -> None:
        if ctx.noting:  # as _GlobalKey: inside jit the key is an output of the function
            note_write(self, "_key", getattr(self, "_key", value))
        self._key = value


def _key_of(op: str, generator) -> Tensor:
    if generator is None:
        return _GlobalKey.next()
    if not isinstance(generator, Generator):
        raise InvalidArgumentError(
            f"{op}: generator must be an fx.Generator or None, got {type(generator).__name__}"
        )
    return generator.next_key()


def randperm(n: int, *, generator=None, dtype=dtypes.DEFAULT_INT) -> Tensor:
    """A random permutation of ``0..n-1`` (PyTorch's randperm), from ``generator`` or the
    global seed."""
    n = check_size("randperm", "n", n)
    np_dtype = check_dtype("randperm", "dtype", dtype)
    return astype(argsort(_uniform(_key_of("randperm", generator), (n,), _F64)), np_dtype)


def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """PyTorch's multinomial: ``num_samples`` indices drawn with probabilities proportional
    to the non-negative weights ``input`` (1-d, or 2-d: one row per draw), without
    replacement unless ``replacement=True``. Gumbel-max sampling: the top ``num_samples``
    of ``log(w) + Gumbel noise`` (exact for draws without replacement)."""
    w = to_tensor(input)
    num_samples = check_size("multinomial", "num_samples", num_samples)
    if w.ndim not in (1, 2) or not dtypes.is_float(w._np_dtype):
        raise InvalidArgumentError(
            f"multinomial: input must be a 1-d or 2-d float tensor of weights, got {w.dtype} "
            f"of shape {w.shape}"
        )
    values = None if w._trace is not None else w._value
    if values is not None and (not np.isfinite(values).all() or (values < 0).any()):
        raise InvalidArgumentError("multinomial: weights must be finite and non-negative")
    n = w.shape[-1]
    if values is not None and not replacement:
        available = int((values > 0).sum(axis=-1).min()) if values.size else 0
        if num_samples > available:
            raise InvalidArgumentError(
                f"multinomial: cannot draw {num_samples} samples without replacement from "
                f"{available} non-zero weights; lower num_samples or pass replacement=True"
            )
    work = np.dtype(np.float64 if w._np_dtype == np.float64 else np.float32)
    w = astype(w, work)
    logw = where(w > 0, log(where(w > 0, w, 1.0)), -np.inf)  # log 0 without a warning
    k = _key_of("multinomial", generator)
    if replacement:
        shape = w.shape[:-1] + (num_samples, n)
        logw = logw[..., None, :]
    else:
        shape = w.shape
    u = _uniform(k, shape, work)
    noisy = logw - log(-log(u * (1.0 - 1e-7) + 1e-7))
    if replacement:
        return argmax(noisy, axis=-1)
    return top_k(noisy, num_samples, axis=-1)[1]
