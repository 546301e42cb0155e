"""optax's losses, per example (no reduction: take the ``.mean()``), over fluxion's ops."""

from __future__ import annotations

from fluxion import ops
from fluxion.core.tensor import to_tensor
from fluxion.errors import ShapeError
from fluxion.nn import functional as F


def softmax_cross_entropy(logits, labels, axis: int = -1):
    """``-sum(labels * log_softmax(logits))`` over ``axis``, for label distributions."""
    return -ops.sum(to_tensor(labels) * ops.log_softmax(logits, axis=axis), axis=axis)


def softmax_cross_entropy_with_integer_labels(logits, labels, axis: int = -1):
    """``-log_softmax(logits)[label]`` for integer labels of shape ``logits.shape`` without
    ``axis``."""
    logits, labels = to_tensor(logits), to_tensor(labels)
    if labels.ndim != logits.ndim - 1:
        raise ShapeError(
            f"softmax_cross_entropy_with_integer_labels: labels of shape {labels.shape} for "
            f"logits of shape {logits.shape}; labels have one axis less (the classes)"
        )
    log_p = ops.log_softmax(logits, axis=axis)
    picked = ops.take_along_axis(log_p, ops.expand_dims(labels, axis), axis)
    return -ops.squeeze(picked, axis)


def squared_error(predictions, targets=None):
    """``(predictions - targets) ** 2`` elementwise (``targets`` 0 when not given)."""
    d = to_tensor(predictions) if targets is None else to_tensor(predictions) - targets
    return d * d


def l2_loss(predictions, targets=None):
    """Half the squared error, as optax."""
    return 0.5 * squared_error(predictions, targets)


def sigmoid_binary_cross_entropy(logits, labels):
    """``-labels * log(sigmoid(logits)) - (1 - labels) * log(1 - sigmoid(logits))``."""
    logits = to_tensor(logits)
    return -labels * F.logsigmoid(logits) - (1 - labels) * F.logsigmoid(-logits)
