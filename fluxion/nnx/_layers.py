"""Flax NNX's layers as adapters over ``fluxion.nn.functional``: Flax's parameter names and
layouts (a Linear's ``kernel`` is (in, out)), constructors (``rngs=``) and defaults."""

from __future__ import annotations

import math

from fluxion import ops
from fluxion.core import dtypes
from fluxion.core.checks import check_count, check_nonnegative, check_probability
from fluxion.errors import InvalidArgumentError, ShapeError
from fluxion.nn import functional as F
from fluxion.nnx import initializers as I
from fluxion.nnx._graph import BatchStat, Param, Rngs
from fluxion.nnx._module import Module

default_kernel_init = I.lecun_normal()
default_bias_init = I.zeros
default_embed_init = I.variance_scaling(1.0, "fan_in", "normal", out_axis=0)


def _value(v):
    return None if v is None else v.value


class Linear(Module):
    """``x @ kernel + bias``, ``kernel`` of shape (in_features, out_features), lecun-normal.

    >>> import fluxion.nnx as nnx
    >>> layer = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    >>> layer.kernel.shape, layer(fx.ones((4, 3))).shape
    ((3, 2), (4, 2))
    """

    def __init__(
        self, in_features, out_features, *, use_bias=True, dtype=None,
        param_dtype=dtypes.DEFAULT_FLOAT, kernel_init=default_kernel_init,
        bias_init=default_bias_init, rngs: Rngs,
    ):  # fmt: skip
        self.in_features = check_count("Linear", "in_features", in_features)
        self.out_features = check_count("Linear", "out_features", out_features)
        self.use_bias, self.dtype = use_bias, dtype
        self.kernel = Param(kernel_init(rngs.params(), (in_features, out_features), param_dtype))
        self.bias = (
            Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else None
        )

    def __call__(self, inputs):
        if inputs.shape[-1:] != (self.in_features,):
            raise ShapeError(
                f"Linear: the input has shape {inputs.shape}, its last axis should be "
                f"in_features={self.in_features}"
            )
        return F.linear(inputs, ops.swapaxes(self.kernel.value, 0, 1), _value(self.bias))


class Embed(Module):
    """Rows of ``embedding`` (num_embeddings, features) at integer inputs; ``attend(q)`` is
    ``q @ embedding.T`` (tied output logits)."""

    def __init__(
        self, num_embeddings, features, *, dtype=None, param_dtype=dtypes.DEFAULT_FLOAT,
        embedding_init=default_embed_init, rngs: Rngs,
    ):  # fmt: skip
        self.num_embeddings = check_count("Embed", "num_embeddings", num_embeddings)
        self.features = check_count("Embed", "features", features)
        self.embedding = Param(
            embedding_init(rngs.params(), (num_embeddings, features), param_dtype)
        )

    def __call__(self, inputs):
        return F.embedding(inputs, self.embedding.value)

    def attend(self, query):
        return ops.matmul(query, ops.swapaxes(self.embedding.value, 0, 1))


class LayerNorm(Module):
    """Normalize over the last axis, then ``* scale + bias`` (Flax: ``epsilon=1e-6``)."""

    def __init__(
        self, num_features, *, epsilon=1e-6, dtype=None, param_dtype=dtypes.DEFAULT_FLOAT,
        use_bias=True, use_scale=True, bias_init=I.zeros, scale_init=I.ones, rngs: Rngs,
    ):  # fmt: skip
        self.num_features = check_count("LayerNorm", "num_features", num_features)
        self.epsilon = check_nonnegative("LayerNorm", "epsilon", epsilon)
        self.scale = Param(scale_init(None, (num_features,), param_dtype)) if use_scale else None
        self.bias = Param(bias_init(None, (num_features,), param_dtype)) if use_bias else None

    def __call__(self, x):
        return F.layer_norm(
            x, (self.num_features,), _value(self.scale), _value(self.bias), self.epsilon
        )


class BatchNorm(Module):
    """Normalize each feature (the last axis) by the batch's statistics, or with
    ``use_running_average`` by the running ones, then ``* scale + bias``.

    Flax's convention: ``momentum=0.99`` is the weight of the old running value,
    ``mean = momentum * mean + (1 - momentum) * batch_mean``, and the running variance is
    the batch's biased one (PyTorch's ``momentum=0.1`` weighs the new value, with the
    unbiased variance). ``mean``/``var`` are ``BatchStat`` variables.
    """

    def __init__(
        self, num_features, *, use_running_average=False, axis=-1, momentum=0.99,
        epsilon=1e-5, dtype=None, param_dtype=dtypes.DEFAULT_FLOAT, use_bias=True,
        use_scale=True, bias_init=I.zeros, scale_init=I.ones, rngs: Rngs,
    ):  # fmt: skip
        if axis != -1:
            raise InvalidArgumentError(
                f"BatchNorm: axis={axis} is not supported; features are the last axis (move "
                "them there with jnp.moveaxis)"
            )
        self.num_features = check_count("BatchNorm", "num_features", num_features)
        self.use_running_average = use_running_average
        self.momentum = check_probability("BatchNorm", "momentum", momentum)
        self.epsilon = check_nonnegative("BatchNorm", "epsilon", epsilon)
        self.mean = BatchStat(I.zeros(None, (num_features,), param_dtype))
        self.var = BatchStat(I.ones(None, (num_features,), param_dtype))
        self.scale = Param(scale_init(None, (num_features,), param_dtype)) if use_scale else None
        self.bias = Param(bias_init(None, (num_features,), param_dtype)) if use_bias else None

    def __call__(self, x, use_running_average=None, *, mask=None):
        if mask is not None:
            raise InvalidArgumentError("BatchNorm: mask= is not supported")
        if x.shape[-1:] != (self.num_features,):
            raise ShapeError(
                f"BatchNorm: the input has shape {x.shape}, its last axis should be "
                f"num_features={self.num_features}"
            )
        if use_running_average is None:
            use_running_average = self.use_running_average
        if use_running_average:
            mean, var = self.mean.value, self.var.value
        else:
            mean, var = F._batch_statistics(x, tuple(range(x.ndim - 1)))
            mean, var = ops.reshape(mean, (-1,)), ops.reshape(var, (-1,))
            m = self.momentum
            self.mean.value = m * self.mean.value + (1 - m) * ops.stop_gradient(mean)
            self.var.value = m * self.var.value + (1 - m) * ops.stop_gradient(var)
        y = (x - mean) / ops.sqrt(var + self.epsilon)
        if self.scale is not None:
            y = y * self.scale.value
        return y if self.bias is None else y + self.bias.value


class Dropout(Module):
    """Zero each element with probability ``rate`` (scaling the rest by 1/(1-rate)) unless
    ``deterministic``; the masks come from the ``rngs`` stream ``dropout``, kept in the layer
    so that each call (and each compiled call) draws a new one."""

    def __init__(self, rate, *, broadcast_dims=(), deterministic=False, rng_collection="dropout",
                 rngs: Rngs | None = None):  # fmt: skip
        if broadcast_dims:
            raise InvalidArgumentError("Dropout: broadcast_dims is not supported")
        self.rate = check_probability("Dropout", "rate", rate)
        self.deterministic = deterministic
        self.rngs = None if rngs is None else getattr(rngs, rng_collection)

    def __call__(self, inputs, *, deterministic=None, rngs: Rngs | None = None):
        if deterministic is None:
            deterministic = self.deterministic
        if deterministic or self.rate == 0:
            return inputs
        stream = self.rngs if rngs is None else rngs.dropout
        if stream is None:
            raise InvalidArgumentError(
                "Dropout: no random stream; build it with rngs=nnx.Rngs(...), call it with "
                "rngs=, or deterministic=True"
            )
        return F.dropout(inputs, self.rate, True, key=stream())


class Sequential(Module):
    """The layers (or functions) one after the other."""

    def __init__(self, *fns):
        self.layers = list(fns)

    def __call__(self, *args, **kwargs):
        out = self.layers[0](*args, **kwargs) if self.layers else args[0]
        for fn in self.layers[1:]:
            out = fn(out)
        return out


class MultiHeadAttention(Module):
    """Multi-head attention in Flax's layout: ``query``/``key``/``value`` kernels of shape
    (in_features, num_heads, head_dim), ``out`` (num_heads, head_dim, out_features); inputs
    (batch..., length, features); ``mask`` True where a query may attend a key."""

    def __init__(
        self, num_heads, in_features, qkv_features=None, out_features=None, *,
        dropout_rate=0.0, deterministic=None, use_bias=True, decode=False,
        param_dtype=dtypes.DEFAULT_FLOAT, kernel_init=default_kernel_init,
        bias_init=default_bias_init, rngs: Rngs, **unsupported,
    ):  # fmt: skip
        if unsupported or decode:
            raise InvalidArgumentError(
                f"MultiHeadAttention: {sorted(unsupported) or ['decode']} not supported"
            )
        self.num_heads = check_count("MultiHeadAttention", "num_heads", num_heads)
        self.in_features = in_features
        self.qkv_features = qkv_features or in_features
        self.out_features = out_features or in_features
        if self.qkv_features % num_heads:
            raise InvalidArgumentError(
                f"MultiHeadAttention: qkv_features={self.qkv_features} must be divisible by "
                f"num_heads={num_heads}"
            )
        self.head_dim = self.qkv_features // num_heads
        self.dropout_rate, self.deterministic = dropout_rate, deterministic
        heads = (num_heads, self.head_dim)
        for name in ("query", "key", "value"):
            setattr(self, name, _DenseGeneral(in_features, heads, use_bias, kernel_init,
                                              bias_init, param_dtype, rngs))  # fmt: skip
        self.out = _DenseGeneral(heads, (self.out_features,), use_bias, kernel_init, bias_init,
                                 param_dtype, rngs)  # fmt: skip
        self.rngs = rngs.dropout if dropout_rate > 0 else None

    def __call__(self, inputs_q, inputs_k=None, inputs_v=None, *, mask=None,
                 deterministic=None, rngs=None):  # fmt: skip
        inputs_k = inputs_q if inputs_k is None else inputs_k
        inputs_v = inputs_k if inputs_v is None else inputs_v
        # (..., L, heads, head_dim) -> (..., heads, L, head_dim) for the attention
        q, k, v = (ops.swapaxes(p(x), -2, -3) for p, x in
                   ((self.query, inputs_q), (self.key, inputs_k), (self.value, inputs_v)))  # fmt: skip
        deterministic = self.deterministic if deterministic is None else deterministic
        rate = 0.0 if deterministic or self.dropout_rate == 0 else self.dropout_rate
        key = None if rate == 0 else (self.rngs if rngs is None else rngs.dropout)()
        out = F.scaled_dot_product_attention(q, k, v, mask, rate, dropout_key=key)
        return self.out(ops.swapaxes(out, -2, -3))


class _DenseGeneral(Module):
    """A kernel of shape in_shape + out_shape contracting the trailing in_shape axes (the
    projections of MultiHeadAttention, Flax's LinearGeneral)."""

    def __init__(self, in_shape, out_shape, use_bias, kernel_init, bias_init, param_dtype, rngs):
        in_shape = (in_shape,) if isinstance(in_shape, int) else tuple(in_shape)
        self.n_in, out_shape = len(in_shape), tuple(out_shape)
        fan_in = math.prod(in_shape)
        # initialized as a (fan_in, fan_out) matrix, as Flax does, then shaped
        kernel = kernel_init(rngs.params(), (fan_in, math.prod(out_shape)), param_dtype)
        self.kernel = Param(ops.reshape(kernel, in_shape + out_shape))
        bias = bias_init(rngs.params(), out_shape, param_dtype) if use_bias else None
        self.bias = None if bias is None else Param(bias)

    def __call__(self, x):
        axes = list(range(x.ndim - self.n_in, x.ndim))
        y = ops.tensordot(x, self.kernel.value, axes=(axes, list(range(self.n_in))))
        return y if self.bias is None else y + self.bias.value
