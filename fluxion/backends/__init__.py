"""Backends: the array module every primitive's kernel receives as ``xp``, and the kernels.

A backend is a name for an array module and the kernels it overrides: ``numpy`` runs each
primitive's reference kernel (the one-line NumPy ``impl`` beside its rules in
ops/primitives.py); ``numpy_fast``, the default, overrides a few with faster ones
(numpy_fast.py), each checked against its reference by tests/test_backends.py. Another
array module (CuPy) plugs in here by name, with its own overrides, without touching ops/.
``FLUXION_BACKEND`` picks one at import; ``set_backend`` switches (compiled functions keep
the kernels they were compiled with: clear their caches).
"""

import os

import numpy as np

from fluxion.backends import numpy_fast
from fluxion.core.primitive import PRIMITIVES
from fluxion.core.trace import backend
from fluxion.errors import InvalidArgumentError

_BACKENDS = {"numpy": (np, {}), "numpy_fast": (np, numpy_fast.KERNELS)}
_current = ["numpy_fast"]


def backend_name() -> str:
    return _current[0]


def set_backend(name: str) -> None:
    """Run every primitive on backend ``name``: ``"numpy_fast"`` (default) or ``"numpy"``."""
    if name not in _BACKENDS:
        raise InvalidArgumentError(
            f"set_backend: unknown backend {name!r}; available: {sorted(_BACKENDS)}"
        )
    xp, overrides = _BACKENDS[name]
    for prim in PRIMITIVES.values():
        faster = overrides.get(prim.name)
        prim.impl = prim.reference if faster is None else faster(prim.reference)
    backend.xp = xp
    _current[0] = name


def use_default() -> None:
    """The backend ``FLUXION_BACKEND`` names (``numpy_fast`` unless it says otherwise)."""
    set_backend(os.environ.get("FLUXION_BACKEND", "numpy_fast"))
