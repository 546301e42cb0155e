"""dtypes and the promotion table.

Internally every rule works with ``numpy.dtype`` objects (hashable, fast); the
public face is ``DType`` (``fx.float32`` is ``fx.DType.float32``).

Promotion follows JAX and the array API rather than NumPy:

* ``bool`` < integers < floats; an integer meeting a float gives that float
  (``int32 + float16 -> float16``), never float64.
* ``uint8`` with a signed integer gives the next signed type that holds both.
* ``float16`` with ``bfloat16`` gives ``float32``.
* complex sits above floats: ``complex64`` with ``float64`` gives ``complex128`` (the
  array API's table); a Python complex meeting a real tensor gives the complex dtype of
  its precision (``complex64`` for float32 and below, and for integers).
* Python scalars are *weak*: they take the other operand's dtype when it is of
  the same kind or higher (``x_f16 * 2.0`` stays f16, ``x_i8 + 1`` stays int8);
  a Python float meeting an integer tensor gives the default float (float32),
  a Python int meeting a bool tensor gives the default int (int64).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from fluxion.errors import DTypeError, InvalidArgumentError

bfloat16_np = np.dtype(ml_dtypes.bfloat16)

# name, numpy dtype, short name used by repr and the IR printer
_TABLE = [
    ("bool", np.dtype(np.bool_), "bool"),
    ("uint8", np.dtype(np.uint8), "u8"),
    ("uint16", np.dtype(np.uint16), "u16"),
    ("uint32", np.dtype(np.uint32), "u32"),  # PRNG keys and bits
    ("uint64", np.dtype(np.uint64), "u64"),
    ("int8", np.dtype(np.int8), "i8"),
    ("int16", np.dtype(np.int16), "i16"),
    ("int32", np.dtype(np.int32), "i32"),
    ("int64", np.dtype(np.int64), "i64"),
    ("float16", np.dtype(np.float16), "f16"),
    ("bfloat16", bfloat16_np, "bf16"),
    ("float32", np.dtype(np.float32), "f32"),
    ("float64", np.dtype(np.float64), "f64"),
    ("complex64", np.dtype(np.complex64), "c64"),
    ("complex128", np.dtype(np.complex128), "c128"),
]
SHORT_NAMES = {np_dtype: short for _, np_dtype, short in _TABLE}
FLOATS = frozenset(d for n, d, _ in _TABLE if n.startswith(("float", "bfloat")))
# accumulate in float32 (sums, norms, softmax, losses), as PyTorch's CPU kernels do
LOW_FLOATS = frozenset({np.dtype(np.float16), bfloat16_np})
INTEGERS = frozenset(d for n, d, _ in _TABLE if "int" in n)
COMPLEX = frozenset({np.dtype(np.complex64), np.dtype(np.complex128)})
DEFAULT_FLOAT = np.dtype(np.float32)
DEFAULT_COMPLEX = np.dtype(np.complex64)
DEFAULT_INT = np.dtype(np.int64)
BOOL = np.dtype(np.bool_)


class DType:
    """A fluxion dtype: ``fx.float32``, ``fx.DType.float32`` and ``"float32"`` all name it.

    >>> fx.tensor([1.0, 2.0]).dtype
    float32
    """

    __slots__ = ("name", "np", "short")

    def __init__(self, name: str, np_dtype: np.dtype, short: str):
        self.name, self.np, self.short = name, np_dtype, short

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    @property
    def is_floating_point(self) -> bool:
        return self.np in FLOATS

    @property
    def is_complex(self) -> bool:
        return self.np in COMPLEX

    @property
    def dtype(self) -> np.dtype:
        # NumPy reads ``.dtype`` off any object it is given as a dtype: with this,
        # np.zeros(3, fx.float32) and array.astype(fx.bfloat16) work
        return self.np

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other) -> bool:
        # As NumPy's dtypes: equal to every spelling of itself (fx.float32 == "float32" ==
        # np.float32 == np.dtype("f4")), and unequal, never an error, to anything else
        # (None, a tensor, {"a": 1}). The hash is NumPy's, so fx.float32 and np.dtype("f4")
        # are one dict key.
        if other is None:  # np.dtype(None) is float64, yet fx.float64 == None must be False
            return False
        try:
            return self.np == to_np(other)
        except DTypeError:
            return False

    def __hash__(self) -> int:
        return hash(self.np)


_BY_NP: dict[np.dtype, DType] = {}
for _name, _np_dtype, _short in _TABLE:
    _BY_NP[_np_dtype] = DType(_name, _np_dtype, _short)
    setattr(DType, _name, _BY_NP[_np_dtype])
_BY_NAME = {d.name: d for d in _BY_NP.values()} | {d.short: d for d in _BY_NP.values()}


def to_np(dtype) -> np.dtype:
    """Any dtype spelling (DType, numpy dtype or type, name) -> a supported numpy dtype."""
    if isinstance(dtype, DType):
        return dtype.np
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return _BY_NAME[dtype].np
    if dtype is float:
        return DEFAULT_FLOAT
    if dtype is int:
        return DEFAULT_INT
    if dtype is None:
        # np.dtype(None) would silently mean float64; callers that allow None map it first
        raise DTypeError("dtype None is not a dtype; pass one, e.g. fx.float32")
    try:
        np_dtype = np.dtype(dtype)
    except (TypeError, ValueError):  # ValueError: a malformed structured dtype, an object
        np_dtype = None  # whose .dtype is not NumPy's (a tensor)
    if np_dtype not in _BY_NP:
        supported = ", ".join(d.name for d in _BY_NP.values())
        raise DTypeError(f"dtype {dtype!r} is not supported; use one of: {supported}")
    return np_dtype


def to_dtype(np_dtype: np.dtype) -> DType:
    return _BY_NP[np_dtype]


def is_float(np_dtype: np.dtype) -> bool:
    return np_dtype in FLOATS


def is_inexact(np_dtype: np.dtype) -> bool:
    """Real floating or complex: the dtypes that exp, log, sin... take as they are."""
    return np_dtype in FLOATS or np_dtype in COMPLEX


def complex_for(np_dtype: np.dtype) -> np.dtype:
    """The complex dtype holding a real dtype's values: complex128 for float64, else complex64."""
    if np_dtype in COMPLEX:
        return np_dtype
    return np.dtype(np.complex128) if np_dtype == np.float64 else DEFAULT_COMPLEX


def real_for(np_dtype: np.dtype) -> np.dtype:
    """The real dtype of a complex dtype's parts (float32 for complex64); reals as they are."""
    return (
        np.dtype(np.float64 if np_dtype == np.complex128 else np.float32)
        if np_dtype in COMPLEX
        else np_dtype
    )


def kind(d: np.dtype) -> int:
    """0 for bool, 1 for integers, 2 for real floats, 3 for complex: promotion never goes
    down this order."""
    return 0 if d == BOOL else 1 if d in INTEGERS else 3 if d in COMPLEX else 2


def _promote_pair(a: np.dtype, b: np.dtype) -> np.dtype:
    if a == b:
        return a
    ka, kb = kind(a), kind(b)
    if 3 in (ka, kb):  # the complex dtype wide enough for both parts
        wide = max(real_for(a), real_for(b), key=lambda d: d.itemsize if kind(d) == 2 else 0)
        return complex_for(wide)
    if ka != kb:
        return a if ka > kb else b
    if ka == 2:
        if {a, b} == {np.dtype(np.float16), bfloat16_np}:
            return DEFAULT_FLOAT
        return a if a.itemsize > b.itemsize else b
    # integers: NumPy's rule is the array API's (uint8 + int8 -> int16)
    return np.promote_types(a, b)


PROMOTION_TABLE = {(a, b): _promote_pair(a, b) for a in _BY_NP for b in _BY_NP}


def promote(a: np.dtype, b: np.dtype) -> np.dtype:
    return PROMOTION_TABLE[a, b]


def weak_scalar_dtype(value, other: np.dtype) -> np.dtype:
    """The dtype a Python scalar takes when it meets a tensor of dtype ``other``."""
    if isinstance(value, (bool, np.bool_)):
        value_kind = 0
    elif isinstance(value, int):
        value_kind = 1
    else:
        value_kind = 3 if isinstance(value, complex) else 2
    if value_kind <= kind(other):
        return other
    if value_kind == 3:
        return complex_for(other)
    return DEFAULT_INT if value_kind == 1 else DEFAULT_FLOAT


def scalar_default_dtype(value) -> np.dtype:
    if isinstance(value, (bool, np.bool_)):
        return BOOL
    if isinstance(value, int):
        return DEFAULT_INT
    if isinstance(value, float):
        return DEFAULT_FLOAT
    if isinstance(value, complex):
        return DEFAULT_COMPLEX
    raise DTypeError(f"cannot make a tensor from a {type(value).__name__}")


def set_default_dtype(dtype) -> None:
    """PyTorch's ``set_default_dtype``: fluxion's default float is float32 and stays so;
    asking for it is accepted, any other raises (pass ``dtype=`` where you need another)."""
    if to_np(dtype) != DEFAULT_FLOAT:
        raise DTypeError(
            f"set_default_dtype: fluxion's default float dtype is float32 and cannot be changed "
            f"(got {dtype}); pass dtype={dtype} to the calls that need it, or cast with .to()"
        )


def get_default_dtype() -> DType:
    return to_dtype(DEFAULT_FLOAT)


def set_float32_matmul_precision(precision: str) -> None:
    """PyTorch's hint that float32 matmuls may use faster, less precise units (TF32): there
    are none on the cpu, so every precision is full float32 precision; the name is checked."""
    if precision not in ("highest", "high", "medium"):
        raise InvalidArgumentError(
            f"set_float32_matmul_precision: precision must be 'highest', 'high' or 'medium', "
            f"got {precision!r}"
        )
