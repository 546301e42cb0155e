"""The public ops: NumPy names over fluxion's primitives (see ``primitives.py``)."""

from fluxion.ops import (
    methods,  # noqa: E402, F401  (installs Tensor's operators and methods)
    random,
)
from fluxion.ops.creation import *
from fluxion.ops.elementwise import *
from fluxion.ops.elementwise import abs, pow, round
from fluxion.ops.indexing import *
from fluxion.ops.linalg import *
from fluxion.ops.reduction import *
from fluxion.ops.reduction import all, any, max, min, sum
from fluxion.ops.shape import *
