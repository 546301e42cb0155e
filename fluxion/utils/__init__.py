"""Tools around training: ``fluxion.utils.data`` (PyTorch's datasets and DataLoader) and
``fluxion.utils.tensorboard`` (TensorBoard event files).

Submodules load on first use (``fx.utils.tensorboard``), so that ``import fluxion`` does not
import their optional libraries.
"""

import importlib

_SUBMODULES = ("data", "tensorboard")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
