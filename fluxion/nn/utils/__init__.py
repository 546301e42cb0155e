"""PyTorch's ``torch.nn.utils``: gradient clipping in place, and ``rnn.pad_sequence``.

>>> w = fx.tensor([3.0, 4.0], requires_grad=True)
>>> fx.sum(w * w).backward()
>>> fx.nn.utils.clip_grad_norm_([w], max_norm=1.0)
10.0:f32[]:cpu(0)
"""

from fluxion.nn.utils import rnn
from fluxion.optim.clip import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_", "rnn"]
