"""Neural-network functions with PyTorch's names and semantics (``torch.nn.functional``).

Every function here is a composite of fluxion ops: no new primitives and no
derivative rules, so each one is differentiable (``backward()`` and ``fx.grad``),
batchable (``fx.vmap``) and traceable for free.

>>> logits = fx.tensor([[2.0, 0.5, -1.0]])
>>> F.cross_entropy(logits, fx.tensor([0]))          # integer class targets
0.24...:f32[]:cpu(0)
>>> F.cross_entropy(logits, fx.tensor([[1.0, 0.0, 0.0]]))  # probabilities (one-hot)
0.24...:f32[]:cpu(0)
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from fluxion import ops
from fluxion.core import dtypes
from fluxion.core.checks import (
    check_choice,
    check_count,
    check_int,
    check_ints,
    check_nonnegative,
    check_number,
    check_probability,
    check_shape,
)
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.errors import (
    DTypeError,
    IndexOutOfRangeError,
    InvalidArgumentError,
    ShapeError,
    TracerError,
)
from fluxion.ops import primitives as P
from fluxion.ops.amp import autocast_op
from fluxion.ops.random import check_key, rand, uniform
from fluxion.ops.reduction import widened


def _known(x: Tensor) -> np.ndarray | None:
    """The values of ``x`` when they are known (eager, or under grad/jvp), else None."""
    try:
        return x._concrete()
    except TracerError:
        return None


def _float_input(op: str, x) -> Tensor:
    x = to_tensor(x)
    if not dtypes.is_float(x._np_dtype):
        raise DTypeError(
            f"{op}: input must be floating point, got {x.dtype}; cast it with .astype(fx.float32)"
        )
    return x


def _dim(op: str, x: Tensor, dim, axis) -> int:
    """The axis given as ``dim`` (PyTorch) or ``axis`` (NumPy), the last by default."""
    if dim is not None and axis is not None:
        raise InvalidArgumentError(f"{op}: give dim= or axis=, not both")
    if dim is None and axis is None:
        return -1
    name, value = ("dim", dim) if dim is not None else ("axis", axis)
    return P.check_axis(op, value, x.ndim, name) if x.ndim else value


def _check_reduction(op: str, reduction: str) -> None:
    check_choice(op, "reduction", reduction, ("mean", "sum", "none"))


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


# ----------------------------------------------------------------------------- layers


@autocast_op
def linear(input, weight, bias=None) -> Tensor:
    """``input @ weight.T + bias`` with PyTorch's (out_features, in_features) weight."""
    out = ops.matmul(input, ops.swapaxes(weight, -1, -2) if weight.ndim >= 2 else weight)
    return out if bias is None else out + bias


def relu(input, inplace: bool = False) -> Tensor:
    return ops.relu(input)


def gelu(input, approximate: str = "none") -> Tensor:
    """Exact GELU (``x * Phi(x)``, with erf), or the ``approximate="tanh"`` form."""
    return ops.gelu(input, approximate=approximate)


def silu(input, inplace: bool = False) -> Tensor:
    return ops.silu(input)


def sigmoid(input) -> Tensor:
    return ops.sigmoid(input)


def softplus(input, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold, as in PyTorch."""
    x = to_tensor(input)
    beta, threshold = (
        check_number("softplus", "beta", beta),
        check_number("softplus", "threshold", threshold),
    )
    if beta == 0:
        raise InvalidArgumentError("softplus: beta must not be 0 (it divides), got 0.0")
    return ops.where(x * beta > threshold, x, ops.softplus(x * beta) / beta)


def logsigmoid(input) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), finite for large negative x."""
    return -ops.softplus(-to_tensor(input))


def tanh(input) -> Tensor:
    return ops.tanh(input)


def softmax(input, dim=None, *, axis=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (default: the last)."""
    x = to_tensor(input)
    return ops.softmax(x, axis=_dim("softmax", x, dim, axis))


def log_softmax(input, dim=None, *, axis=None) -> Tensor:
    x = to_tensor(input)
    return ops.log_softmax(x, axis=_dim("log_softmax", x, dim, axis))


def _normalized_axes(op: str, x: Tensor, normalized_shape) -> tuple:
    shape = check_shape(op, "normalized_shape", normalized_shape)
    n = len(shape)
    if n == 0 or x.ndim < n or tuple(x.shape[x.ndim - n :]) != shape:
        want = ", ".join(map(str, shape))
        raise ShapeError(
            f"{op}: normalized_shape {shape} does not match the input of shape {x.shape}; "
            f"the input's last {n} dimension(s) must be ({want}): input of shape (*, {want})"
        )
    return tuple(range(x.ndim - n, x.ndim))


def _check_affine(op: str, name: str, t, normalized_shape) -> None:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if t is not None and tuple(t.shape) != shape:
        raise ShapeError(f"{op}: {name} has shape {tuple(t.shape)}, expected {shape}")


@widened
def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the trailing ``normalized_shape`` dims, then
    ``* weight + bias``. The variance is the biased one, as in PyTorch."""
    x = _float_input("layer_norm", input)
    axes = _normalized_axes("layer_norm", x, normalized_shape)
    eps = check_nonnegative("layer_norm", "eps", eps)
    _check_affine("layer_norm", "weight", weight, normalized_shape)
    _check_affine("layer_norm", "bias", bias, normalized_shape)
    centered = x - ops.mean(x, axis=axes, keepdims=True)
    var = ops.mean(centered * centered, axis=axes, keepdims=True)
    y = centered / ops.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def rms_norm(input, normalized_shape, weight=None, eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x**2) + eps) * weight; ``eps=None`` is the input dtype's machine
    epsilon (computed in float32 for float16/bfloat16 inputs, as every norm here is)."""
    x = _float_input("rms_norm", input)
    if eps is None:
        eps = float(ml_dtypes.finfo(x._np_dtype).eps)
    eps = check_nonnegative("rms_norm", "eps", eps)
    return _rms_norm(x, normalized_shape, weight, eps)


@widened
def _rms_norm(x, normalized_shape, weight, eps) -> Tensor:
    axes = _normalized_axes("rms_norm", x, normalized_shape)
    _check_affine("rms_norm", "weight", weight, normalized_shape)
    y = x / ops.sqrt(ops.mean(x * x, axis=axes, keepdims=True) + eps)
    return y if weight is None else y * weight


def _channel_axes(op: str, x: Tensor, channels: int | None = None) -> tuple:
    """The axes a normalization of the channels (axis 1) of (N, C, ...) reduces."""
    if x.ndim < 2 or (channels is not None and x.shape[1] != channels):
        want = "(N, C, ...)" if channels is None else f"(N, {channels}, ...)"
        raise ShapeError(
            f"{op}: expected an input of shape {want}, got {x.shape}; channels are axis 1 "
            "(add a batch axis with x[None] for one sample)"
        )
    return (0, *range(2, x.ndim))


def _per_channel(y: Tensor, op: str, weight, bias) -> Tensor:
    """``y * weight + bias`` with weight and bias of shape (C,) over (N, C, ...)."""
    shape = (y.shape[1],) + (1,) * (y.ndim - 2)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape[:1]:
            raise ShapeError(f"{op}: {name} has shape {tuple(t.shape)}, expected {shape[:1]}")
    if weight is not None:
        y = y * ops.reshape(weight, shape)
    return y if bias is None else y + ops.reshape(bias, shape)


def _batch_statistics(x: Tensor, axes: tuple):
    """The mean and the biased variance of ``x`` over ``axes``, kept (1, C, 1...)."""
    mean = ops.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    return mean, ops.mean(centered * centered, axis=axes, keepdims=True)


def _running_statistics(x, mean, var, running_mean, running_var, momentum):
    """The running mean and variance after one training batch of ``x`` (no gradient flows
    into them): ``(1 - momentum) * running + momentum * batch``, with the batch's unbiased
    variance, as PyTorch keeps it."""
    n = x.size // x.shape[1]
    batch_mean = ops.stop_gradient(ops.reshape(mean, (x.shape[1],)))
    batch_var = ops.stop_gradient(ops.reshape(var, (x.shape[1],))) * (n / max(n - 1, 1))
    new_mean = running_mean * (1.0 - momentum) + batch_mean * momentum
    new_var = running_var * (1.0 - momentum) + batch_var * momentum
    return new_mean.astype(running_mean._np_dtype), new_var.astype(running_var._np_dtype)


@widened
def batch_norm(
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel (axis 1) of an (N, C, ...) input by the batch's statistics
    (``training``) or by ``running_mean``/``running_var``, then ``* weight + bias``.

    In training the running statistics, when given, are updated in place as PyTorch does
    (see ``nn.BatchNorm1d``, which keeps them as module state instead: that also carries
    them out of fx.grad and fx.jit when the module is an argument).
    """
    x = _float_input("batch_norm", input)
    axes = _channel_axes("batch_norm", x)
    momentum = check_probability("batch_norm", "momentum", momentum)
    eps = check_nonnegative("batch_norm", "eps", eps)
    if training:
        mean, var = _batch_statistics(x, axes)
        if running_mean is not None and running_var is not None:
            running_mean.data, running_var.data = _running_statistics(
                x, mean, var, running_mean, running_var, momentum
            )
    elif running_mean is None or running_var is None:
        raise InvalidArgumentError(
            "batch_norm: training=False needs running_mean and running_var; pass them, "
            "or training=True to normalize by the batch's statistics"
        )
    else:
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        mean, var = ops.reshape(running_mean, shape), ops.reshape(running_var, shape)
    return _per_channel((x - mean) / ops.sqrt(var + eps), "batch_norm", weight, bias)


@widened
def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalize an (N, C, ...) input over each group of ``C // num_groups`` channels and
    the remaining axes, then ``* weight + bias`` per channel (PyTorch's F.group_norm)."""
    x = _float_input("group_norm", input)
    _channel_axes("group_norm", x)
    n, channels = x.shape[:2]
    if channels % check_count("group_norm", "num_groups", num_groups):
        raise InvalidArgumentError(
            f"group_norm: num_groups={num_groups!r} must divide the {channels} channels"
        )
    eps = check_nonnegative("group_norm", "eps", eps)
    grouped = ops.reshape(x, (n, num_groups, -1))
    mean, var = _batch_statistics(grouped, (2,))
    y = ops.reshape((grouped - mean) / ops.sqrt(var + eps), x.shape)
    return _per_channel(y, "group_norm", weight, bias)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False, *, key=None):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p).

    Draws from fluxion's global generator (``fx.manual_seed``), or from ``key`` (an
    ``fx.random.key``) when given. Identity when ``training`` is False or ``p`` is 0.
    Under ``fx.vmap`` one global draw serves the whole batch; map over a batch of keys
    (``fx.random.split(key, n)``) for independent masks.
    """
    p = check_probability("dropout", "p", p)
    x = _float_input("dropout", input)
    if key is not None:
        key = check_key("dropout", key)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    work = np.float64 if x._np_dtype == np.float64 else np.float32
    u = rand(*x.shape, dtype=work) if key is None else uniform(key, x.shape, work)
    return ops.where(u >= p, x * (1.0 / (1.0 - p)), 0.0)


def _check_indices(op: str, idx: Tensor, n: int, what: str) -> None:
    if idx._np_dtype not in dtypes.INTEGERS:
        raise DTypeError(
            f"{op}: indices must be integers, got {idx.dtype}; cast them with .astype(fx.int64)"
        )
    values = _known(idx)
    if values is not None and values.size:
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi >= n:
            raise IndexOutOfRangeError(
                f"{op}: index {lo if lo < 0 else hi} is out of range for {what} of size {n}; "
                f"indices must lie in [0, {n})"
            )


def embedding(input, weight, padding_idx: int | None = None, max_norm=None) -> Tensor:
    """Rows of ``weight`` at the integer ``input`` indices: shape ``input.shape + (dim,)``.

    The row at ``padding_idx`` gets no gradient, as in PyTorch.
    """
    if max_norm is not None:
        raise InvalidArgumentError("embedding: max_norm is not supported; renormalize explicitly")
    idx = to_tensor(input)
    n = weight.shape[0]
    if padding_idx is not None:
        padding_idx = check_int("embedding", "padding_idx", padding_idx, -n, n - 1)
    _check_indices("embedding", idx, n, "an embedding table (num_embeddings)")
    out = ops.take(weight, idx, axis=0)
    if padding_idx is not None:
        pad = padding_idx % n
        out = ops.where(ops.expand_dims(idx == pad, -1), ops.stop_gradient(out), out)
    return out


def one_hot(tensor, num_classes: int = -1, dtype=dtypes.DType.int64) -> Tensor:
    """PyTorch's one_hot: int64 by default; ``num_classes=-1`` infers max + 1."""
    idx = to_tensor(tensor)
    if idx._np_dtype not in dtypes.INTEGERS:
        raise DTypeError(f"one_hot: indices must be integers, got {idx.dtype}")
    if check_int("one_hot", "num_classes", num_classes, minimum=-1) == -1:
        values = _known(idx)
        if values is None:
            raise TracerError("one_hot: num_classes=-1 needs concrete indices; pass num_classes")
        num_classes = int(values.max()) + 1 if values.size else 0
    _check_indices("one_hot", idx, num_classes, "num_classes")
    return ops.one_hot(idx, num_classes, dtype=dtype)


def pad(input, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """PyTorch's pad: ``pad`` lists (before, after) pairs from the LAST dimension backwards;
    negative widths crop."""
    x = to_tensor(input)
    if mode != "constant":
        raise InvalidArgumentError(f"pad: only mode='constant' is supported, got {mode!r}")
    pad = check_ints("pad", "pad", pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(
            f"pad: pad {pad} must hold (before, after) pairs for at most the {x.ndim} dimension(s) "
            f"of the input of shape {x.shape}"
        )
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    grown = [(max(a, 0), max(b, 0)) for a, b in widths]
    if any(a or b for a, b in grown):
        x = ops.pad(x, grown, constant_values=value)
    if any(a < 0 or b < 0 for a, b in widths):
        x = x[tuple(slice(-min(a, 0), x.shape[k] + min(b, 0)) for k, (a, b) in enumerate(widths))]
    return x


# ----------------------------------------------------------------------------- attention


def _mask_to_bias(op: str, mask, scores_shape, dtype, keep_value: bool) -> Tensor | None:
    """An additive (0 / -inf) bias from a bool mask, or the float mask itself.

    ``keep_value``: what a bool True means (True: take part, SDPA's convention;
    False: masked out, MultiheadAttention's).
    """
    if mask is None:
        return None
    mask = to_tensor(mask)
    try:
        shape = np.broadcast_shapes(tuple(mask.shape), tuple(scores_shape))
    except ValueError:
        shape = None
    if shape != tuple(scores_shape):
        raise ShapeError(
            f"{op}: attention mask of shape {tuple(mask.shape)} does not broadcast to the attention "
            f"scores of shape {tuple(scores_shape)} (batch..., L queries, S keys); give an (L, S) "
            "mask or one that broadcasts to the scores"
        )
    if mask._np_dtype == dtypes.BOOL:
        allowed = mask if keep_value else ops.logical_not(mask)
        return ops.where(allowed, 0.0, -math.inf).astype(dtype)
    if not dtypes.is_float(mask._np_dtype):
        raise DTypeError(
            f"{op}: an attention mask must be bool or floating point (added to the scores), "
            f"got {mask.dtype}"
        )
    return mask.astype(dtype)


def _causal_bias(L: int, S: int, dtype) -> Tensor:
    """0 on and below the diagonal, -inf above (the top-left aligned causal mask)."""
    return ops.asarray(np.where(np.tri(L, S, dtype=bool), 0.0, -np.inf).astype(dtype))


def _attend(q, k, v, bias, dropout_p: float, scale, dropout_key=None):
    """softmax(q k^T * scale + bias) v; returns the output and the (dropped-out) weights."""
    if scale is None:  # heads of size 0 give empty results (there is nothing to scale)
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] else 1.0
    scores = ops.matmul(q * scale, ops.swapaxes(k, -1, -2))
    if bias is not None:
        scores = scores + bias
    weights = ops.softmax(scores, axis=-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, key=dropout_key)
    return ops.matmul(weights, v), weights


@autocast_op
def scaled_dot_product_attention(
    query,
    key,
    value,
    attn_mask=None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    dropout_key=None,
) -> Tensor:
    """softmax(Q K^T / sqrt(d) + mask) V over (..., L, d) queries and (..., S, d) keys.

    ``attn_mask``: bool (True = takes part, PyTorch's SDPA convention) or float
    (added to the scores), broadcastable to (..., L, S). ``is_causal``: a query
    attends to keys at or before its position (combined with ``attn_mask`` if both
    are given). Dropout on the weights uses the global generator or ``dropout_key``.

    >>> q = fx.randn(2, 4, 5, 8)   # (batch, heads, L, head_dim)
    >>> F.scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (2, 4, 5, 8)
    """
    q, k, v = to_tensor(query), to_tensor(key), to_tensor(value)
    op = "scaled_dot_product_attention"
    dropout_p = check_probability(op, "dropout_p", dropout_p)
    if scale is not None:
        scale = check_number(op, "scale", scale)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ShapeError(
            f"scaled_dot_product_attention: query {q.shape}, key {k.shape} and value {v.shape} "
            "need at least 2 dimensions (..., sequence, features)"
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ShapeError(
            f"scaled_dot_product_attention: query {q.shape}, key {k.shape} and value {v.shape} "
            "must agree: query and key on the feature size, key and value on the sequence length"
        )
    if enable_gqa and q.ndim >= 3 and k.shape[-3] != q.shape[-3]:
        groups, rem = divmod(q.shape[-3], k.shape[-3])
        if rem:
            raise ShapeError(
                f"scaled_dot_product_attention: {q.shape[-3]} query heads do not split into "
                f"groups of {k.shape[-3]} key/value heads"
            )
        k, v = ops.repeat(k, groups, axis=-3), ops.repeat(v, groups, axis=-3)
    L, S = q.shape[-2], k.shape[-2]
    scores_shape = tuple(np.broadcast_shapes(q.shape[:-2], k.shape[:-2])) + (L, S)
    bias = _mask_to_bias("scaled_dot_product_attention", attn_mask, scores_shape, q._np_dtype, True)
    if is_causal:
        causal = _causal_bias(L, S, q._np_dtype)
        bias = causal if bias is None else bias + causal
    return _attend(q, k, v, bias, dropout_p, scale, dropout_key)[0]


# ----------------------------------------------------------------------------- losses


def _class_dim(op: str, x: Tensor) -> int:
    if x.ndim == 0:
        raise ShapeError(f"{op}: input must have a class dimension, got a 0-d tensor")
    return 1 if x.ndim >= 2 else 0


def _check_class_weight(op: str, weight, C: int):
    if weight is not None and tuple(weight.shape) != (C,):
        raise ShapeError(
            f"{op}: weight has shape {tuple(weight.shape)}, expected ({C},): one per class"
        )


def _class_targets(op, target: Tensor, input_shape, cdim, C, ignore_index) -> None:
    want = tuple(d for i, d in enumerate(input_shape) if i != cdim)
    if target._np_dtype not in dtypes.INTEGERS:
        raise DTypeError(
            f"{op}: class-index targets must be integers, got {target.dtype} of shape "
            f"{tuple(target.shape)}; cast them with .astype(fx.int64), or pass probabilities "
            f"(one-hot) of the input's shape {tuple(input_shape)}"
        )
    if tuple(target.shape) != want:
        raise ShapeError(
            f"{op}: target of shape {tuple(target.shape)} does not fit input of shape "
            f"{tuple(input_shape)}: class-index targets need shape {want} (the input's shape "
            f"without the class dimension {cdim}), probability targets the input's shape"
        )
    values = _known(target)
    if values is not None and values.size:
        bad = values[(values != ignore_index) & ((values < 0) | (values >= C))]
        if bad.size:
            raise IndexOutOfRangeError(
                f"{op}: target {int(bad.flat[0])} is out of range for {C} classes; class "
                f"indices must lie in [0, {C}) or equal ignore_index={ignore_index}"
            )


def _nll_terms(logp: Tensor, target: Tensor, cdim: int, weight, ignore_index: int):
    """Per-element -w[y] * logp[y] (0 where ignored) and the weights w[y] (0 where ignored)."""
    lp = ops.moveaxis(logp, cdim, -1) if cdim != logp.ndim - 1 else logp
    valid = target != ignore_index
    safe = ops.where(valid, target, 0)
    picked = ops.take_along_axis(lp, ops.expand_dims(safe, -1), axis=-1)
    picked = ops.squeeze(picked, axis=-1)
    w = valid.astype(lp._np_dtype)
    if weight is not None:
        w = ops.take(weight.astype(lp._np_dtype), safe) * w
    return -picked * w, w, lp, valid


@autocast_op
@widened
def nll_loss(
    input, target, weight=None, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C) or (N, C, d...) at
    integer ``target``; the mean is weighted by the class weights of the targets."""
    x = _float_input("nll_loss", input)
    target = to_tensor(target)
    _check_reduction("nll_loss", reduction)
    ignore_index = check_int("nll_loss", "ignore_index", ignore_index)
    cdim = _class_dim("nll_loss", x)
    C = x.shape[cdim]
    _check_class_weight("nll_loss", weight, C)
    _class_targets("nll_loss", target, x.shape, cdim, C, ignore_index)
    loss, w, _, _ = _nll_terms(x, target, cdim, weight, ignore_index)
    if reduction == "mean":
        return ops.sum(loss) / ops.sum(w)
    return _reduce(loss, reduction)


@autocast_op
@widened
def cross_entropy(
    input,
    target,
    weight=None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of logits ``input`` (N, C), (N, C, d...) or (C,), like PyTorch.

    ``target`` is either integer class indices of the input's shape without the class
    dimension (``ignore_index`` entries are skipped; ``weight`` weighs classes), or
    probabilities of the input's shape (one-hot rows, soft labels; integer one-hot is
    accepted too). ``label_smoothing`` mixes the targets with the uniform distribution.
    """
    x = _float_input("cross_entropy", input)
    target = to_tensor(target)
    _check_reduction("cross_entropy", reduction)
    label_smoothing = check_probability("cross_entropy", "label_smoothing", label_smoothing)
    ignore_index = check_int("cross_entropy", "ignore_index", ignore_index)
    cdim = _class_dim("cross_entropy", x)
    C = x.shape[cdim]
    _check_class_weight("cross_entropy", weight, C)
    logp = ops.log_softmax(x, axis=cdim)
    if tuple(target.shape) == tuple(x.shape):  # probabilities
        probs = target.astype(x._np_dtype)
        if label_smoothing > 0.0:
            probs = probs * (1.0 - label_smoothing) + label_smoothing / C
        if weight is not None:
            shape = [1] * x.ndim
            shape[cdim] = C
            logp = logp * ops.reshape(weight.astype(x._np_dtype), tuple(shape))
        return _reduce(-ops.sum(probs * logp, axis=cdim), reduction)
    _class_targets("cross_entropy", target, x.shape, cdim, C, ignore_index)
    loss, w, lp, valid = _nll_terms(logp, target, cdim, weight, ignore_index)
    if label_smoothing > 0.0:
        lp_w = lp if weight is None else lp * weight.astype(lp._np_dtype)
        smooth = ops.where(valid, -ops.sum(lp_w, axis=-1), 0.0)
        loss = (1.0 - label_smoothing) * loss + (label_smoothing / C) * smooth
    if reduction == "mean":
        return ops.sum(loss) / ops.sum(w)
    return _reduce(loss, reduction)


def cross_entropy_loss(logits, targets, **kwargs) -> Tensor:
    """The seed notebook's name: ``cross_entropy`` (one-hot or class-index targets)."""
    return cross_entropy(logits, targets, **kwargs)


def _same_shape(op: str, x: Tensor, y: Tensor) -> None:
    if tuple(x.shape) != tuple(y.shape):
        raise ShapeError(
            f"{op}: input of shape {tuple(x.shape)} and target of shape {tuple(y.shape)} differ; "
            "they must have the same shape (reshape one, nothing is broadcast silently)"
        )


@autocast_op
@widened
def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean (or sum) of squared differences."""
    x, y = _float_input("mse_loss", input), to_tensor(target)
    _check_reduction("mse_loss", reduction)
    _same_shape("mse_loss", x, y)
    d = x - y
    return _reduce(d * d, reduction)


@autocast_op
@widened
def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean (or sum) of absolute differences."""
    x, y = _float_input("l1_loss", input), to_tensor(target)
    _check_reduction("l1_loss", reduction)
    _same_shape("l1_loss", x, y)
    return _reduce(ops.abs(x - y), reduction)


@autocast_op
@widened
def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) for probabilities ``input``; logs clamp at -100 as
    in PyTorch."""
    p, t = _float_input("binary_cross_entropy", input), to_tensor(target)
    _check_reduction("binary_cross_entropy", reduction)
    _same_shape("binary_cross_entropy", p, t)
    values = _known(p)
    if values is not None and values.size and ((values < 0) | (values > 1)).any():
        raise InvalidArgumentError(
            "binary_cross_entropy: all elements of input must be probabilities in [0, 1]; "
            "for logits use binary_cross_entropy_with_logits"
        )
    t = t.astype(p._np_dtype)
    loss = -(
        t * ops.maximum(ops.log(p), -100.0) + (1.0 - t) * ops.maximum(ops.log(1.0 - p), -100.0)
    )
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@autocast_op
@widened
def binary_cross_entropy_with_logits(
    input, target, weight=None, reduction: str = "mean", pos_weight=None
) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable expression:
    ``(1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)``."""
    x, t = _float_input("binary_cross_entropy_with_logits", input), to_tensor(target)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _same_shape("binary_cross_entropy_with_logits", x, t)
    t = t.astype(x._np_dtype)
    scale = 1.0 if pos_weight is None else (pos_weight - 1.0) * t + 1.0
    loss = (1.0 - t) * x + scale * ops.softplus(-x)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@autocast_op
@widened
def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """``0.5 d**2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``, for d = input - target."""
    x, y = _float_input("huber_loss", input), to_tensor(target)
    _check_reduction("huber_loss", reduction)
    _same_shape("huber_loss", x, y)
    delta = check_number("huber_loss", "delta", delta, 0.0, low_open=True)
    d = ops.abs(x - y)
    return _reduce(ops.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)


@autocast_op
@widened
def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (the L1 loss at
    beta 0): the Huber loss divided by ``beta``."""
    x, y = _float_input("smooth_l1_loss", input), to_tensor(target)
    _check_reduction("smooth_l1_loss", reduction)
    _same_shape("smooth_l1_loss", x, y)
    beta = check_number("smooth_l1_loss", "beta", beta, 0.0)
    d = ops.abs(x - y)
    if beta == 0.0:
        return _reduce(d, reduction)
    return _reduce(ops.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)
