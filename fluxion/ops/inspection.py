"""The array API's data type functions and inspection namespace: questions about dtypes
and devices, answered from fluxion's promotion table (``core/dtypes.py``).

>>> fx.result_type(fx.int8, fx.float32), fx.can_cast(fx.float64, fx.float32)
(float32, False)
>>> fx.finfo(fx.float32).eps
1.1920928955078125e-07
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fluxion.core import dtypes
from fluxion.core.tensor import CPU, Device, Tensor, _device_of
from fluxion.errors import DTypeError, InvalidArgumentError


def _np_dtype_of(op: str, x) -> np.dtype:
    """A dtype or a tensor's dtype, as NumPy's."""
    if isinstance(x, Tensor):
        return x._np_dtype
    try:
        return dtypes.to_np(x)
    except DTypeError as e:
        raise DTypeError(f"{op}: {e}") from None


class finfo_object(NamedTuple):
    """Machine limits of a floating-point dtype (Python floats, as the array API asks)."""

    bits: int
    eps: float
    max: float
    min: float
    smallest_normal: float
    dtype: dtypes.DType


class iinfo_object(NamedTuple):
    """Machine limits of an integer dtype."""

    bits: int
    max: int
    min: int
    dtype: dtypes.DType


def finfo(type) -> finfo_object:
    """Limits of a real or complex floating dtype (a complex one's are its parts')."""
    np_dtype = _np_dtype_of("finfo", type)
    if not dtypes.is_inexact(np_dtype):
        raise DTypeError(f"finfo: needs a floating-point dtype, got {np_dtype}; use iinfo")
    real = dtypes.real_for(np_dtype)
    info = np.finfo(real)
    return finfo_object(
        info.bits,
        float(info.eps),
        float(info.max),
        float(info.min),
        float(info.smallest_normal),
        dtypes.to_dtype(real),
    )


def iinfo(type) -> iinfo_object:
    """Limits of an integer dtype."""
    np_dtype = _np_dtype_of("iinfo", type)
    if np_dtype not in dtypes.INTEGERS:
        raise DTypeError(f"iinfo: needs an integer dtype, got {np_dtype}; use finfo")
    info = np.iinfo(np_dtype)
    return iinfo_object(info.bits, int(info.max), int(info.min), dtypes.to_dtype(np_dtype))


_KINDS = {
    "bool": lambda d: d == dtypes.BOOL,
    "signed integer": lambda d: d in dtypes.INTEGERS and d.kind == "i",
    "unsigned integer": lambda d: d in dtypes.INTEGERS and d.kind == "u",
    "integral": lambda d: d in dtypes.INTEGERS,
    "real floating": dtypes.is_float,
    "complex floating": lambda d: d in dtypes.COMPLEX,
    "numeric": lambda d: d != dtypes.BOOL,
}


def isdtype(dtype, kind) -> bool:
    """Whether ``dtype`` is of ``kind``: a dtype, a kind's name (``"integral"``, ``"real
    floating"``, ``"numeric"``...) or a tuple of them."""
    np_dtype = _np_dtype_of("isdtype", dtype)
    if isinstance(kind, tuple):
        return any(isdtype(dtype, k) for k in kind)
    if isinstance(kind, str):
        if kind not in _KINDS:
            raise InvalidArgumentError(
                f"isdtype: unknown kind {kind!r}; use a dtype or one of {', '.join(_KINDS)}"
            )
        return _KINDS[kind](np_dtype)
    return np_dtype == _np_dtype_of("isdtype", kind)


def result_type(*arrays_and_dtypes) -> dtypes.DType:
    """The dtype that fluxion's promotion gives ``arrays_and_dtypes`` together (Python
    scalars are weak, as in the ops)."""
    strong = [a for a in arrays_and_dtypes if not isinstance(a, bool | int | float | complex)]
    if not strong:
        raise InvalidArgumentError("result_type: needs at least one array or dtype")
    out = _np_dtype_of("result_type", strong[0])
    for a in strong[1:]:
        out = dtypes.promote(out, _np_dtype_of("result_type", a))
    for a in arrays_and_dtypes:
        if isinstance(a, bool | int | float | complex):
            out = dtypes.weak_scalar_dtype(a, out)
    return dtypes.to_dtype(out)


def can_cast(from_, to) -> bool:
    """Whether promotion turns ``from_`` (a dtype or an array) into ``to`` without loss of
    kind or width (``can_cast(int8, int16)``, not the reverse)."""
    a, b = _np_dtype_of("can_cast", from_), _np_dtype_of("can_cast", to)
    return dtypes.promote(a, b) == b


_ARRAY_API_KINDS = {
    "bool": ("bool",),
    "signed integer": ("int8", "int16", "int32", "int64"),
    "unsigned integer": ("uint8", "uint16", "uint32", "uint64"),
    "real floating": ("float32", "float64"),
    "complex floating": ("complex64", "complex128"),
}
_ARRAY_API_KINDS["integral"] = (
    _ARRAY_API_KINDS["signed integer"] + _ARRAY_API_KINDS["unsigned integer"]
)
_ARRAY_API_KINDS["numeric"] = (
    _ARRAY_API_KINDS["integral"]
    + _ARRAY_API_KINDS["real floating"]
    + _ARRAY_API_KINDS["complex floating"]
)


def check_device(op: str, device) -> None:
    """A ``device=`` argument: None or the cpu, the only device (PyTorch's and the array
    API's spelling alike)."""
    if device is not None:
        _device_of(op, device)


class ArrayNamespaceInfo:
    """``fx.__array_namespace_info__()``: what this namespace supports, by the array API."""

    def capabilities(self) -> dict:
        return {"boolean indexing": True, "data-dependent shapes": True, "max dimensions": 64}

    def default_device(self) -> Device:
        return CPU

    def devices(self) -> list[Device]:
        return [CPU]

    def default_dtypes(self, *, device=None) -> dict:
        check_device("default_dtypes", device)
        return {
            "real floating": dtypes.to_dtype(dtypes.DEFAULT_FLOAT),
            "complex floating": dtypes.to_dtype(dtypes.DEFAULT_COMPLEX),
            "integral": dtypes.to_dtype(dtypes.DEFAULT_INT),
            "indexing": dtypes.to_dtype(dtypes.DEFAULT_INT),
        }

    def dtypes(self, *, device=None, kind=None) -> dict:
        """The array API's dtypes of ``kind`` (None: all; a name or a tuple of names)."""
        check_device("dtypes", device)
        if kind is None:
            names = ("bool",) + _ARRAY_API_KINDS["numeric"]
        else:
            names = ()
            for k in kind if isinstance(kind, tuple) else (kind,):
                if k not in _ARRAY_API_KINDS:
                    raise InvalidArgumentError(
                        f"dtypes: unknown kind {k!r}; use one of {', '.join(_ARRAY_API_KINDS)}"
                    )
                names += tuple(n for n in _ARRAY_API_KINDS[k] if n not in names)
        return {n: getattr(dtypes.DType, n) for n in names}


def __array_namespace_info__() -> ArrayNamespaceInfo:
    return ArrayNamespaceInfo()
