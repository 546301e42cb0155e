"""The public ops: NumPy names over fluxion's primitives (see ``primitives.py``).

Importing ops installs Tensor's operators and methods (``methods.py``) and, the primitives
being defined, gives them the backend's kernels (backends/).
"""

from fluxion.backends import use_default
from fluxion.ops import methods, random  # noqa: F401
from fluxion.ops.creation import *
from fluxion.ops.elementwise import *
from fluxion.ops.elementwise import abs, pow, round
from fluxion.ops.indexing import *
from fluxion.ops.linalg import *
from fluxion.ops.reduction import *
from fluxion.ops.reduction import all, any, max, min, sum
from fluxion.ops.shape import *

use_default()
