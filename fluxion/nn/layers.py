"""Basic layers with PyTorch's constructor arguments, parameter names and initialization.

A PyTorch state dict loads into the fluxion twin by name, and back:

>>> lin = fx.nn.Linear(4, 3)
>>> {k: v.shape for k, v in lin.state_dict().items()}
{'weight': (3, 4), 'bias': (3,)}
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.core import dtypes
from fluxion.core.tensor import Tensor
from fluxion.errors import InvalidArgumentError
from fluxion.nn import functional as F
from fluxion.nn import init
from fluxion.nn.module import Module, Parameter


def _empty(shape, dtype) -> Parameter:
    """A parameter to be filled by an initializer (dtype defaults to float32)."""
    np_dtype = dtypes.DEFAULT_FLOAT if dtype is None else dtypes.to_np(dtype)
    if not dtypes.is_float(np_dtype):
        raise InvalidArgumentError(f"parameters must be floating point, got dtype {dtype}")
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
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty((out_features, in_features), dtype)
        self.bias = _empty((out_features,), dtype) if bias else None
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
                "Embedding: max_norm, scale_grad_by_freq and sparse are not supported"
            )
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise InvalidArgumentError(
                    f"Embedding: padding_idx {padding_idx} must lie within num_embeddings={num_embeddings}"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = _empty((num_embeddings, embedding_dim), dtype)
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


def _shape_tuple(normalized_shape) -> tuple:
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


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
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = init.ones_(_empty(self.normalized_shape, dtype))
            if bias:
                self.bias = init.zeros_(_empty(self.normalized_shape, dtype))

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
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = (
            init.ones_(_empty(self.normalized_shape, dtype)) if elementwise_affine else None
        )

    def forward(self, input):
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class Dropout(Module):
    """Zero elements with probability ``p`` in training mode (scaling the rest by 1/(1-p));
    the identity in eval mode. Randomness: the global generator, or ``key=`` per call.

    >>> drop = fx.nn.Dropout(0.5).eval()
    >>> drop(fx.ones(3))
    [1. 1. 1.]:f32[3]:cpu(0)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise InvalidArgumentError(f"Dropout: p must lie in [0, 1], got {p}")
        self.p = p

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
        if approximate not in ("none", "tanh"):
            raise InvalidArgumentError(
                f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}"
            )
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
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, -1 if self.dim is None else self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input):
        return F.log_softmax(input, -1 if self.dim is None else self.dim)
