"""The discrete Fourier transforms of ``fx.fft``: one primitive, ``fft``, whose ``kind``
param names NumPy's transform, with its shape rule, its vmap rule and NumPy's kernel.

Each transform is linear: its jvp is the transform of the tangent, its vjp JAX's
(unconjugated) transpose, written with ``fft`` itself.
"""

from __future__ import annotations

import numpy as np

from fluxion.core.dtypes import complex_for, real_for
from fluxion.core.primitive import Primitive, ShapedArray
from fluxion.core.trace import bind
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


def _fft_jvp(primals, tangents, **params):
    return bind(fft_p, primals[0], **params), bind(fft_p, tangents[0], **params)


def _resize(x, shape):
    """``x`` cut or zero-padded at the end of each axis to ``shape``: how a transform fits
    its input to the given lengths, and (the other way) that fitting's transpose."""
    cut = tuple(min(a, b) for a, b in zip(x.shape, shape))
    if cut != x.shape:
        x = bind(P.slice_p, x, starts=(0,) * x.ndim, stops=cut, steps=(1,) * x.ndim)
    if cut != tuple(shape):
        x = bind(P.pad_p, x, widths=tuple((0, b - a, 0) for a, b in zip(cut, shape)), value=0)
    return x


def _half_weights(n, axis, ndim, dtype):
    """How often each entry of a half spectrum stands in the full one (1 for the zero and,
    n even, the Nyquist frequency; 2 for the rest), along ``axis``."""
    w = np.full(_half(n), 2.0, dtype)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return P.constant(w.reshape([-1 if a == axis else 1 for a in range(ndim)]), dtype)


def _rfftn(x, axes, norm):
    return bind(fft_p, x, kind="rfftn", lengths=None, axes=axes, norm=norm)


_SWAP = {"backward": "forward", "forward": "backward", "ortho": "ortho"}


def _fft_vjp(ct, primals, outputs, *, kind, lengths, axes, norm):
    # JAX's transpose (not conjugated) of each linear transform. The DFT matrix is
    # symmetric, so fft and ifft are their own transposes; rfft is the first half of a
    # real input's fft; irfft reads a half spectrum whose entries stand once or twice in
    # the full one; hfft and ihfft are irfft and rfft of a conjugate.
    (x,), (y,) = primals, outputs
    base, last = _ND.get(kind, kind), axes[-1]
    if base in ("fft", "ifft"):
        g = bind(fft_p, ct, kind=kind, lengths=None, axes=axes, norm=norm)
    elif base in ("rfft", "ihfft"):
        n = x.shape[last] if lengths is None else lengths[-1]
        full = _resize(ct, ct.shape[:last] + (n,) + ct.shape[last + 1 :])
        if base == "ihfft":
            full, norm = bind(P.conj_p, full), _SWAP[norm]
        g = bind(P.real_p, bind(fft_p, full, kind="fftn", lengths=None, axes=axes, norm=norm))
    else:  # irfft, hfft: a real output of length n on the last axis
        if base == "irfft":
            half = bind(P.conj_p, _rfftn(ct, axes, _SWAP[norm]))
        else:
            half = _rfftn(ct, axes, norm)
        g = _half_weights(y.shape[last], last, ct.ndim, real_for(np.dtype(y.dtype))) * half
    return (_resize(g, x.shape),)


def _fft_batch(args, dims, *, kind, lengths, axes, norm):
    x = P.moveaxis_to_front(args[0], dims[0])
    shifted = tuple(a + 1 for a in axes)
    return bind(fft_p, x, kind=kind, lengths=lengths, axes=shifted, norm=norm), 0


# one primitive for NumPy's transforms: ``kind`` names which (fft, rfftn, ihfft...)
fft_p = Primitive(
    "fft",
    impl=_fft_impl,
    abstract=_fft_aval,
    jvp=_fft_jvp,
    vjp=_fft_vjp,
    batch=_fft_batch,
)
