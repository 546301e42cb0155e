"""PyTorch's ``torch.nn.utils.rnn``: batching sequences of different lengths."""

from __future__ import annotations

from fluxion import ops
from fluxion.core.checks import check_choice
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.errors import InvalidArgumentError, ShapeError


def pad_sequence(
    sequences, batch_first: bool = False, padding_value=0.0, padding_side: str = "right"
) -> Tensor:
    """Stack tensors of shapes (L_i, *rest) into (max L, B, *rest) (``batch_first``:
    (B, max L, *rest)), padding each with ``padding_value`` after its end (``padding_side=
    "left"``: before its start). Differentiable in the sequences.

    >>> fx.nn.utils.rnn.pad_sequence([fx.tensor([1, 2, 3]), fx.tensor([4])], batch_first=True)
    [[1 2 3]
     [4 0 0]]:i64[2,3]:cpu(0)
    """
    check_choice("pad_sequence", "padding_side", padding_side, ("right", "left"))
    sequences = [to_tensor(s) for s in sequences]
    if not sequences:
        raise InvalidArgumentError("pad_sequence: needs at least one sequence")
    rest = sequences[0].shape[1:]
    for i, s in enumerate(sequences):
        if s.ndim == 0 or s.shape[1:] != rest:
            raise ShapeError(
                f"pad_sequence: sequence {i} has shape {s.shape} but sequence 0 has "
                f"{sequences[0].shape}; all must be (length, *{rest}) with the same trailing dims"
            )
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        gap = (0, longest - s.shape[0]) if padding_side == "right" else (longest - s.shape[0], 0)
        widths = [gap] + [(0, 0)] * len(rest)
        padded.append(ops.pad(s, widths, constant_values=padding_value) if gap != (0, 0) else s)
    return ops.stack(padded, axis=0 if batch_first else 1)
