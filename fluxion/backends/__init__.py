"""Backends: the array module every primitive's ``impl`` receives as ``xp``.

NumPy is the reference (and today the only one); another backend (CuPy) plugs in by
name behind this one function.
"""

import numpy as np

from fluxion.core.trace import backend

_BACKENDS = {"numpy": np}


def backend_name() -> str:
    return next(name for name, module in _BACKENDS.items() if module is backend.xp)


def set_backend(name: str) -> None:
    from fluxion.errors import InvalidArgumentError

    if name not in _BACKENDS:
        raise InvalidArgumentError(f"unknown backend {name!r}; available: {sorted(_BACKENDS)}")
    backend.xp = _BACKENDS[name]
