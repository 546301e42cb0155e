"""The discrete Fourier transforms of ``fx.fft``: one primitive, ``fft``, whose ``kind``
param names NumPy's transform, with its shape rule, its vmap rule and NumPy's kernel.

Their outputs (or inputs) are complex, and gradients through complex values are refused
(``dtypes.refuse_complex_gradient``); the rules of the transforms of real input (``rfft``,
``rfftn``, ``ihfft``) raise ``GradError`` for the same reason, rather than give a zero.
"""

from __future__ import annotations

import numpy as np

from fluxion.core.dtypes import complex_for, real_for
from fluxion.core.primitive import Primitive, ShapedArray
from fluxion.core.trace import bind
from fluxion.errors import GradError
from fluxion.ops import primitives as P


def _half(n):
    return n // 2 + 1


def _full(m):
    return 2 * (m - 1)


# name -> (output is complex, the output length along the last transformed axis from the
# input's when no length is given, and from the given length)
_LAST_AXIS = {
    "fft": (True, lambda m: m, lambda n: n),
    "ifft": (True, lambda m: m, lambda n: n),
    "rfft": (True, _half, _half),
    "irfft": (False, _full, lambda n: n),
    "hfft": (False, _full, lambda n: n),
    "ihfft": (True, _half, _half),
}
_ND = {"fftn": "fft", "ifftn": "ifft", "rfftn": "rfft", "irfftn": "irfft"}


def _fft_aval(x, *, kind, lengths, axes, norm):
    is_complex, from_input, from_given = _LAST_AXIS[_ND.get(kind, kind)]
    shape = list(x.shape)
    for k, axis in enumerate(axes):
        last = k == len(axes) - 1
        given = None if lengths is None else lengths[k]
        if given is None:
            shape[axis] = from_input(shape[axis]) if last else shape[axis]
        else:
            shape[axis] = from_given(given) if last else given
    dtype = complex_for(np.dtype(x.dtype)) if is_complex else real_for(np.dtype(x.dtype))
    return ShapedArray(tuple(shape), dtype)


def _fft_impl(xp, x, *, kind, lengths, axes, norm):
    out_dtype = _fft_aval(x, kind=kind, lengths=lengths, axes=axes, norm=norm).dtype
    if kind in _ND:
        out = getattr(xp.fft, kind)(x, s=lengths, axes=axes, norm=norm)
    else:
        n = None if lengths is None else lengths[0]
        out = getattr(xp.fft, kind)(x, n=n, axis=axes[0], norm=norm)
    return out.astype(out_dtype, copy=False)  # NumPy's float32 transforms give complex64


def _no_gradient(primals, *args, kind, **params):
    raise GradError(
        f"fft.{kind}: gradients through Fourier transforms are not implemented (they need "
        "complex gradients); compute it under fx.no_grad() or on x.detach()"
    )


def _fft_batch(args, dims, *, kind, lengths, axes, norm):
    x = P.moveaxis_to_front(args[0], dims[0])
    shifted = tuple(a + 1 for a in axes)
    return bind(fft_p, x, kind=kind, lengths=lengths, axes=shifted, norm=norm), 0


# one primitive for NumPy's transforms: ``kind`` names which (fft, rfftn, ihfft...)
fft_p = Primitive(
    "fft",
    impl=_fft_impl,
    abstract=_fft_aval,
    jvp=_no_gradient,
    vjp=_no_gradient,
    batch=_fft_batch,
)
