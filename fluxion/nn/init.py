"""In-place initializers with PyTorch's names, formulas and defaults.

Random ones draw from fluxion's global generator, so ``fx.manual_seed(s)`` before
building a model reproduces it exactly.

>>> w = fx.nn.Parameter(fx.zeros((64, 32)))
>>> _ = fx.nn.init.xavier_uniform_(w)    # U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))
>>> float(abs(w).max()) <= (6 / 96) ** 0.5
True
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.core import dtypes
from fluxion.core.checks import check_choice, check_nonnegative, check_number
from fluxion.core.tensor import Tensor, Tracer
from fluxion.errors import ArgumentTypeError, InvalidArgumentError, ShapeError, TracerError
from fluxion.ops.random import global_normal, global_uniform


def _check_tensor(tensor, op: str) -> None:
    if not isinstance(tensor, Tensor):
        raise ArgumentTypeError(
            f"init.{op}: tensor must be a fluxion Tensor, got {type(tensor).__name__}"
        )
    if isinstance(tensor, Tracer):
        raise TracerError(f"init.{op}: cannot initialize a traced value in place")


def _write(tensor: Tensor, values, op: str) -> Tensor:
    _check_tensor(tensor, op)
    array = values._concrete() if isinstance(values, Tensor) else values
    tensor._value = np.array(np.broadcast_to(array, tensor.shape), dtype=tensor._np_dtype)
    return tensor


def _float_dtype(tensor, op):
    _check_tensor(tensor, op)
    if not dtypes.is_float(tensor._np_dtype):
        raise InvalidArgumentError(
            f"init.{op}: random initialization needs a floating-point tensor, got {tensor.dtype}"
        )
    # draw in float32 (or float64 for float64 tensors) and cast, as for float16 weights
    return np.float64 if tensor._np_dtype == np.float64 else np.float32


_LINEAR = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid")  # fmt: skip
NONLINEARITIES = _LINEAR + ("tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for ``nonlinearity`` (PyTorch's table)."""
    return _gain("calculate_gain", nonlinearity, param)


def _gain(op: str, nonlinearity: str, param) -> float:
    check_choice(op, "nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else check_number(op, "param", param)
        return math.sqrt(2.0 / (1 + slope**2))
    return 3.0 / 4  # selu


def _calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ShapeError(
            f"init: fan in and fan out need a tensor of at least 2 dimensions, got shape {tensor.shape}"
        )
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor, mode: str) -> int:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with U(a, b)."""
    return _uniform("uniform_", tensor, a, b)


def _uniform(op: str, tensor, a, b) -> Tensor:
    dtype = _float_dtype(tensor, op)
    a, b = check_number(op, "a", a), check_number(op, "b", b)
    if a > b:
        raise InvalidArgumentError(f"init.{op}: need a <= b, got a={a}, b={b}")
    if a == b:  # U(a, a) is a itself (the global generator does not draw from [a, a))
        return _write(tensor, np.asarray(a), op)
    return _write(tensor, global_uniform(a, b, tensor.shape, dtype), op)


def normal_(tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with N(mean, std**2)."""
    return _normal("normal_", tensor, mean, std)


def _normal(op: str, tensor, mean, std) -> Tensor:
    dtype = _float_dtype(tensor, op)
    mean, std = check_number(op, "mean", mean), check_nonnegative(op, "std", std)
    return _write(tensor, global_normal(mean, std, tensor.shape, dtype), op)


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0):
    """N(mean, std**2) restricted to [a, b] (absolute bounds, as PyTorch), by resampling."""
    op = "trunc_normal_"
    mean, std = check_number(op, "mean", mean), check_nonnegative(op, "std", std)
    a, b = check_number(op, "a", a), check_number(op, "b", b)
    if not a < b:
        raise InvalidArgumentError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    dtype = _float_dtype(tensor, "trunc_normal_")
    out = np.empty(tensor.shape, dtype).reshape(-1)
    todo = np.arange(out.size)
    for _ in range(1000):
        if todo.size == 0:
            break
        draw = global_normal(mean, std, (todo.size,), dtype)._concrete()
        ok = (draw >= a) & (draw <= b)
        out[todo[ok]] = draw[ok]
        todo = todo[~ok]
    if todo.size:
        raise InvalidArgumentError(
            f"trunc_normal_: [{a}, {b}] has almost no mass under N({mean}, {std}**2); widen it"
        )
    return _write(tensor, out.reshape(tensor.shape), "trunc_normal_")


def constant_(tensor, val: float) -> Tensor:
    return _write(tensor, np.asarray(val), "constant_")


def zeros_(tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor) -> Tensor:
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain: float = 1.0) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)."""
    gain = check_nonnegative("xavier_uniform_", "gain", gain)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return _uniform("xavier_uniform_", tensor, -bound, bound)


def xavier_normal_(tensor, gain: float = 1.0) -> Tensor:
    """N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    gain = check_nonnegative("xavier_normal_", "gain", gain)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return _normal("xavier_normal_", tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def kaiming_uniform_(
    tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al.); ``a`` is the leaky-relu slope."""
    op = "kaiming_uniform_"
    gain = _gain(op, nonlinearity, check_number(op, "a", a))
    check_choice(op, "mode", mode, ("fan_in", "fan_out"))
    if 0 in tensor.shape:
        return tensor
    std = gain / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return _uniform(op, tensor, -bound, bound)


def kaiming_normal_(
    tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """N(0, std**2) with std = gain / sqrt(fan)."""
    op = "kaiming_normal_"
    gain = _gain(op, nonlinearity, check_number(op, "a", a))
    check_choice(op, "mode", mode, ("fan_in", "fan_out"))
    if 0 in tensor.shape:
        return tensor
    return _normal(op, tensor, 0.0, gain / math.sqrt(_fan(tensor, mode)))
