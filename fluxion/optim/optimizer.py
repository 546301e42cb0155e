"""PyTorch's module path for the optimizer base class: ``from torch.optim.optimizer import
Optimizer`` works as ``from fluxion.optim.optimizer import Optimizer``."""

from fluxion.optim.stateful import Optimizer

__all__ = ["Optimizer"]
