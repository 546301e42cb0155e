"""Neural-network layers: ``Module`` (a pytree), PyTorch-compatible layers, ``init``
and ``functional`` (``fx.nn.functional``, composites of fluxion ops).

>>> import fluxion as fx
>>> model = fx.nn.Sequential(fx.nn.Linear(4, 8), fx.nn.GELU(), fx.nn.Linear(8, 2))
>>> loss = fx.nn.functional.cross_entropy(model(fx.randn(3, 4)), fx.tensor([0, 1, 1]))
>>> loss.backward()                      # fills p.grad for every parameter

``fx.nn.optim`` is ``fx.optim``.
"""

from fluxion.nn import (
    functional,
    init,
    parallel,
    utils,  # noqa: E402  (imports fluxion.optim, which needs nn.module)
)
from fluxion.nn.attention import (
    LearnedPositionalEmbedding,
    MultiHeadAttention,
    MultiheadAttention,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)
from fluxion.nn.containers import ModuleDict, ModuleList, Sequential
from fluxion.nn.layers import (
    GELU,
    BatchNorm1d,
    BatchNorm2d,
    Dropout,
    Embedding,
    GroupNorm,
    Identity,
    LayerNorm,
    Linear,
    LogSoftmax,
    ReLU,
    RMSNorm,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from fluxion.nn.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from fluxion.nn.module import Module, ModuleAttributeError, Parameter, trainable_mask
from fluxion.nn.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)


def __getattr__(name):
    # fx.nn.optim is fx.optim, imported on first use (optim itself imports nn.module).
    if name == "optim":
        import importlib

        return importlib.import_module("fluxion.optim")
    raise AttributeError(f"module 'fluxion.nn' has no attribute {name!r}")
