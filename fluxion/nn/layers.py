"""Basic layers with PyTorch's constructor arguments, parameter names and initialization.

A PyTorch state dict loads into the fluxion twin by name, and back:

>>> lin = fx.nn.Linear(4, 3)
>>> {k: v.shape for k, v in lin.state_dict().items()}
{'weight': (3, 4), 'bias': (3,)}
"""

from __future__ import annotations

import math

import numpy as np

from fluxion import ops
from fluxion.core import dtypes
from fluxion.core.checks import (
    check_allocation,
    check_choice,
    check_count,
    check_dtype,
    check_int,
    check_nonnegative,
    check_probability,
    check_shape,
    check_size,
)
from fluxion.core.tensor import Tensor
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.nn import functional as F
from fluxion.nn import init
from fluxion.nn.module import Module, Parameter


def _param_dtype(op: str, dtype) -> np.dtype:
    """The dtype of a layer's parameters: a float dtype, float32 by default."""
    return check_dtype(op, "dtype", dtype, default=dtypes.DEFAULT_FLOAT, floating=True)


def _empty(op: str, shape: tuple, dtype) -> Parameter:
    """A parameter of ``op`` to be filled by an initializer (dtype defaults to float32)."""
    np_dtype = _param_dtype(op, dtype)
    check_allocation(op, shape, np_dtype)
    return Parameter(Tensor._from_array(np.zeros(shape, np_dtype)))


def _check_device(device) -> None:
    if device is not None and str(device) not in ("cpu", "cpu(0)", "cpu:0"):
        raise InvalidArgumentError(f"only the cpu device exists, got device={device!r}")


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features).

    Both are drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)) (PyTorch's
    ``kaiming_uniform_(a=sqrt(5))``).

    >>> fx.nn.Linear(4, 3)(fx.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None
    ):
        super().__init__()
        _check_device(device)
        in_features = check_size("Linear", "in_features", in_features)
        out_features = check_size("Linear", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty("Linear", (out_features, in_features), dtype)
        self.bias = _empty("Linear", (out_features,), dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None and self.in_features > 0:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``, from N(0, 1).

    Indices outside [0, num_embeddings) raise an ``IndexOutOfRangeError``; the row at
    ``padding_idx`` starts at zero and receives no gradient.

    >>> fx.nn.Embedding(10, 4)(fx.tensor([[1, 2, 3]])).shape
    (1, 3, 4)
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm=None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight=None,
        _freeze: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        _check_device(device)
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise InvalidArgumentError(
                f"Embedding: max_norm={max_norm!r}, scale_grad_by_freq={scale_grad_by_freq!r}, "
                f"sparse={sparse!r}: only None, False and False are supported"
            )
        num_embeddings = check_size("Embedding", "num_embeddings", num_embeddings)
        embedding_dim = check_size("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            padding_idx = check_int("Embedding", "padding_idx", padding_idx)
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise InvalidArgumentError(
                    f"Embedding: padding_idx {padding_idx} must lie within num_embeddings={num_embeddings}"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = _empty("Embedding", (num_embeddings, embedding_dim), dtype)
            self.reset_parameters()
        else:
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight._value[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None) -> Embedding:
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` dims; weight ones, bias zeros.

    >>> fx.nn.LayerNorm(4)(fx.randn(2, 4)).shape
    (2, 4)
    """

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        _check_device(device)
        self.normalized_shape = check_shape("LayerNorm", "normalized_shape", normalized_shape)
        self.eps = check_nonnegative("LayerNorm", "eps", eps)
        self.elementwise_affine = elementwise_affine
        _param_dtype("LayerNorm", dtype)
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = init.ones_(_empty("LayerNorm", self.normalized_shape, dtype))
            if bias:
                self.bias = init.zeros_(_empty("LayerNorm", self.normalized_shape, dtype))

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class RMSNorm(Module):
    """x / sqrt(mean(x**2) + eps) * weight (weight ones); ``eps=None``: machine epsilon."""

    def __init__(
        self,
        normalized_shape,
        eps: float | None = None,
        elementwise_affine: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        _check_device(device)
        self.normalized_shape = check_shape("RMSNorm", "normalized_shape", normalized_shape)
        self.eps = None if eps is None else check_nonnegative("RMSNorm", "eps", eps)
        self.elementwise_affine = elementwise_affine
        _param_dtype("RMSNorm", dtype)
        self.weight = (
            init.ones_(_empty("RMSNorm", self.normalized_shape, dtype))
            if elementwise_affine
            else None
        )

    def forward(self, input):
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class _BatchNorm(Module):
    """Normalize each channel by the batch's statistics in training, by running ones in
    eval mode (PyTorch's BatchNorm: names, defaults, state dict keys).

    The running statistics are module state written during forward (``self.running_mean
    = ...``), so they come out of ``fx.grad``, ``fx.value_and_grad``, ``fx.vjp`` and
    ``fx.jit`` updated exactly as in eager, also when the module is passed as an argument;
    under ``fx.vmap`` a batched update raises (call ``model.eval()`` there).
    """

    dims: tuple  # the input ranks the layer takes

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        _check_device(device)
        name = type(self).__name__
        num_features = check_count(name, "num_features", num_features)
        self.num_features, self.eps = num_features, check_nonnegative(name, "eps", eps)
        self.momentum = None if momentum is None else check_probability(name, "momentum", momentum)
        self.affine, self.track_running_stats = affine, track_running_stats
        np_dtype = _param_dtype(name, dtype)
        self.weight = self.bias = None
        if affine:
            self.weight = init.ones_(_empty(name, (num_features,), dtype))
            self.bias = init.zeros_(_empty(name, (num_features,), dtype))
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, np_dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, np_dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, np.int64)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, input):
        name = type(self).__name__
        x = F._float_input(name, input)
        if x.ndim not in self.dims:
            raise ShapeError(
                f"{name}: expected a {' or '.join(f'{n}-d' for n in self.dims)} input, got shape "
                f"{x.shape}"
            )
        axes = F._channel_axes(name, x, self.num_features)
        if self.training or not self.track_running_stats:
            mean, var = F._batch_statistics(x, axes)
            if self.training and self.track_running_stats:
                self.num_batches_tracked = self.num_batches_tracked + 1
                momentum = self.momentum
                if momentum is None:  # a cumulative average over every batch seen
                    momentum = 1.0 / self.num_batches_tracked.astype(self.running_mean.dtype)
                self.running_mean, self.running_var = F._running_statistics(
                    x, mean, var, self.running_mean, self.running_var, momentum
                )
            return F._per_channel(
                (x - mean) / ops.sqrt(var + self.eps), name, self.weight, self.bias
            )
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, eps=self.eps
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """BatchNorm over (N, C) or (N, C, L) inputs.

    >>> bn = fx.nn.BatchNorm1d(3)
    >>> y = bn(fx.randn(8, 3)); bn.num_batches_tracked
    1:i64[]:cpu(0)
    """

    dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """BatchNorm over (N, C, H, W) inputs."""

    dims = (4,)


class GroupNorm(Module):
    """Normalize over groups of channels and the spatial axes (PyTorch's GroupNorm).

    >>> fx.nn.GroupNorm(2, 4)(fx.randn(3, 4, 5)).shape
    (3, 4, 5)
    """

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
        device=None, dtype=None,
    ):  # fmt: skip
        super().__init__()
        _check_device(device)
        num_groups = check_count("GroupNorm", "num_groups", num_groups)
        num_channels = check_size("GroupNorm", "num_channels", num_channels)
        if num_channels % num_groups:
            raise InvalidArgumentError(
                f"GroupNorm: num_groups={num_groups} must divide num_channels={num_channels}"
            )
        self.num_groups, self.num_channels, self.affine = num_groups, num_channels, affine
        self.eps = check_nonnegative("GroupNorm", "eps", eps)
        _param_dtype("GroupNorm", dtype)
        self.weight = self.bias = None
        if affine:
            self.weight = init.ones_(_empty("GroupNorm", (num_channels,), dtype))
            self.bias = init.zeros_(_empty("GroupNorm", (num_channels,), dtype))

    def forward(self, input):
        F._channel_axes("GroupNorm", F._float_input("GroupNorm", input), self.num_channels)
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class Dropout(Module):
    """Zero elements with probability ``p`` in training mode (scaling the rest by 1/(1-p));
    the identity in eval mode. Randomness: the global generator, or ``key=`` per call.

    >>> drop = fx.nn.Dropout(0.5).eval()
    >>> drop(fx.ones(3))
    [1. 1. 1.]:f32[3]:cpu(0)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = check_probability("Dropout", "p", p)

    def forward(self, input, key=None):
        return F.dropout(input, self.p, self.training, key=key)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, input):
        return F.relu(input)


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        check_choice("GELU", "approximate", approximate, ("none", "tanh"))
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()

    def forward(self, input):
        return F.silu(input)


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class Softmax(Module):
    """Softmax along ``dim`` (default: the last)."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = None if dim is None else check_int(type(self).__name__, "dim", dim)

    def forward(self, input):
        return F.softmax(input, -1 if self.dim is None else self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input):
        return F.log_softmax(input, -1 if self.dim is None else self.dim)
