"""``fx.fft``: the array API's Fourier-transform extension, NumPy's ``np.fft`` names.

The transforms run NumPy's kernels (``fluxion/ops/fourier.py``); they trace, batch,
compile and differentiate (JAX's convention for complex values).

>>> fx.fft.fft(fx.asarray([1.0, 0.0, -1.0, 0.0]))
[0.+0.j 2.+0.j 0.+0.j 2.+0.j]:c64[4]:cpu(0)
"""

from __future__ import annotations

import numpy as np

from fluxion.array_api import roll
from fluxion.core import dtypes
from fluxion.core.checks import check_dtype
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind
from fluxion.errors import InvalidArgumentError
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import astype
from fluxion.ops.fourier import fft_p
from fluxion.ops.inspection import check_device

__all__ = [
    "fft",
    "ifft",
    "fftn",
    "ifftn",
    "rfft",
    "irfft",
    "rfftn",
    "irfftn",
    "hfft",
    "ihfft",
    "fftfreq",
    "rfftfreq",
    "fftshift",
    "ifftshift",
]

_NORMS = ("backward", "ortho", "forward")


def _input(name, x, real_input):
    """``x`` as the transform takes it: real floats for rfft/ihfft, complex otherwise."""
    x = to_tensor(x)
    if real_input:
        return x if dtypes.is_float(x._np_dtype) else astype(x, dtypes.DEFAULT_FLOAT)
    return astype(x, dtypes.complex_for(dtypes.real_for(x._np_dtype)))


def _check_norm(name, norm):
    if norm not in _NORMS:
        raise InvalidArgumentError(f"fft.{name}: norm must be one of {_NORMS}, got {norm!r}")


def _one_axis(name, real_input=False):
    def transform(x, /, *, n=None, axis=-1, norm="backward"):
        _check_norm(name, norm)
        x = _input(name, x, real_input)
        axis = P.check_axis(f"fft.{name}", axis, x.ndim)
        lengths = None if n is None else (int(n),)
        return bind(fft_p, x, kind=name, lengths=lengths, axes=(axis,), norm=norm)

    transform.__name__ = name
    transform.__doc__ = f"NumPy's ``np.fft.{name}`` along one axis."
    return transform


def _many_axes(name, real_input=False):
    def transform(x, /, *, s=None, axes=None, norm="backward"):
        _check_norm(name, norm)
        x = _input(name, x, real_input)
        if axes is None:
            axes = tuple(range(x.ndim)) if s is None else tuple(range(-len(s), 0))
        axes = tuple(P.check_axis(f"fft.{name}", a, x.ndim) for a in axes)
        lengths = None if s is None else tuple(int(v) for v in s)
        if lengths is not None and len(lengths) != len(axes):
            raise InvalidArgumentError(
                f"fft.{name}: {len(lengths)} lengths in s for {len(axes)} axes; give one each"
            )
        return bind(fft_p, x, kind=name, lengths=lengths, axes=axes, norm=norm)

    transform.__name__ = name
    transform.__doc__ = f"NumPy's ``np.fft.{name}`` over ``axes`` (all by default)."
    return transform


fft = _one_axis("fft")
ifft = _one_axis("ifft")
rfft = _one_axis("rfft", real_input=True)
irfft = _one_axis("irfft")
hfft = _one_axis("hfft")
ihfft = _one_axis("ihfft", real_input=True)
fftn = _many_axes("fftn")
ifftn = _many_axes("ifftn")
rfftn = _many_axes("rfftn", real_input=True)
irfftn = _many_axes("irfftn")


def _frequencies(name, values, dtype, device) -> Tensor:
    check_device(f"fft.{name}", device)
    np_dtype = check_dtype(f"fft.{name}", "dtype", dtype, default=dtypes.DEFAULT_FLOAT)
    return Tensor._from_array(values.astype(np_dtype))


def fftfreq(n: int, /, *, d: float = 1.0, dtype=None, device=None) -> Tensor:
    """The sample frequencies of an ``n``-point transform with spacing ``d``."""
    return _frequencies("fftfreq", np.fft.fftfreq(n, d), dtype, device)


def rfftfreq(n: int, /, *, d: float = 1.0, dtype=None, device=None) -> Tensor:
    """The non-negative sample frequencies of an ``n``-point ``rfft``."""
    return _frequencies("rfftfreq", np.fft.rfftfreq(n, d), dtype, device)


def _shift(x, axes, sign):
    x = to_tensor(x)
    axes = tuple(range(x.ndim)) if axes is None else axes
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    shifts = tuple(sign * (x.shape[a] // 2) for a in axes)  # -(n // 2) for odd n: the inverse
    return roll(x, shifts, axis=axes) if axes else x


def fftshift(x, /, *, axes=None) -> Tensor:
    """The zero frequency moved to the middle."""
    return _shift(x, axes, 1)


def ifftshift(x, /, *, axes=None) -> Tensor:
    """``fftshift``'s inverse."""
    return _shift(x, axes, -1)
