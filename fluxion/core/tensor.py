"""Tensor: a NumPy array with autograd state, operators and the seed's repr.

Concrete tensors hold an ``ndarray`` in ``_value``; tracers (subclasses in
``fluxion.transforms``) hold whatever their transform needs and answer
``shape``/``dtype`` from it. Every operator goes through ``fluxion.ops`` and so
through ``bind``.
"""

from __future__ import annotations

import math

import numpy as np

from fluxion.core import dtypes
from fluxion.core import trace as _trace
from fluxion.core.checks import check_axis
from fluxion.core.trace import ctx
from fluxion.errors import (
    ArgumentTypeError,
    GradError,
    InvalidArgumentError,
    TracerError,
)


class Device:
    """Where a tensor lives. The NumPy backend has one: ``cpu(0)``.

    ``fx.device("cpu")`` (PyTorch's spelling; ``"cuda"`` names a device that no tensor can
    move to until a GPU backend exists, see ``fx.cuda.is_available()``).
    """

    __slots__ = ("kind", "index")

    def __init__(self, kind: str = "cpu", index: int | None = None):
        if isinstance(kind, Device):
            kind, index = kind.kind, kind.index if index is None else index
        if not isinstance(kind, str):
            raise ArgumentTypeError(f"device: expected a name like 'cpu', got {kind!r}")
        kind, _, number = kind.partition(":")
        if number:
            if not number.isdigit() or index is not None:
                raise InvalidArgumentError(f"device: {kind}:{number} is not a device name")
            index = int(number)
        self.kind, self.index = kind, 0 if index is None else index

    @property
    def type(self) -> str:
        """PyTorch's name for the kind: ``"cpu"``."""
        return self.kind

    def __repr__(self) -> str:
        return f"{self.kind}({self.index})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Device) and (self.kind, self.index) == (other.kind, other.index)

    def __hash__(self) -> int:
        return hash((self.kind, self.index))


CPU = Device()


def devices() -> list[Device]:
    return [CPU]


class cuda:
    """PyTorch's ``torch.cuda`` queries: fluxion has no GPU backend yet."""

    @staticmethod
    def is_available() -> bool:
        return False

    @staticmethod
    def device_count() -> int:
        return 0


def _device_of(op: str, device) -> Device:
    """A device a tensor can be on (only the cpu exists)."""
    named = Device(device) if isinstance(device, str | Device) else None
    if named != CPU:
        raise InvalidArgumentError(
            f"{op}: fluxion runs on the cpu only (fx.cuda.is_available() is False), got device "
            f"{device!r}; use 'cpu' or fx.device('cpu')"
        )
    return named


def to_arguments(op: str, args: tuple, dtype=None, device=None):
    """``.to(...)``'s arguments (PyTorch's): a device, a dtype, a tensor (its dtype and
    device) or a device and a dtype, positionally or by keyword -> (dtype or None)."""
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif isinstance(a, str | Device) and not (isinstance(a, str) and a in _DTYPE_NAMES):
            device = a
        else:
            dtype = a
    if device is not None:
        _device_of(op, device)
    return dtype


class Size(tuple):
    """A shape as PyTorch's ``x.size()`` returns it: a tuple (``fx.Size([2, 3])``)."""

    def numel(self) -> int:
        return math.prod(self)

    def __repr__(self) -> str:
        return f"fx.Size({list(self)})"


class _SizeOrCount(int):
    """``x.size``: NumPy's element count (an int) that PyTorch code may call: ``x.size()``
    is the shape as ``fx.Size``, ``x.size(d)`` one dimension. Both spellings work, so that
    array-API and NumPy code (``x.size == 6``) and PyTorch code share one attribute."""

    def __new__(cls, shape: tuple):
        out = super().__new__(cls, math.prod(shape))
        out.shape = shape
        return out

    def __reduce__(self):  # copies and pickles are the plain count
        return int, (int(self),)

    def __call__(self, dim=None):
        if dim is None:
            return Size(self.shape)
        return self.shape[check_axis("size", dim, len(self.shape), "dim")]


class Tensor:
    """An n-dimensional array that can require grad and be traced by transforms.

    >>> x = fx.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    [2. 4. 6.]:f32[3]:cpu(0)
    """

    __slots__ = ("_value", "requires_grad", "_grad", "_node", "_out_index", "__weakref__")
    _trace = None
    _weak = False  # True for staged tracers of Python-scalar arguments (see ops._promoted)
    __array_ufunc__ = None  # NumPy defers to our reflected operators: np_array * tensor -> Tensor

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self._value = _to_array(data, dtype, copy=True)
        self.requires_grad, self._grad, self._node, self._out_index = False, None, None, 0
        _trace.note_made(self)
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_array(cls, array: np.ndarray) -> Tensor:
        t = Tensor._wrap(array)
        _trace.note_made(t)
        return t

    @staticmethod
    def _wrap(array: np.ndarray) -> Tensor:
        t = object.__new__(Tensor)
        t._value, t.requires_grad, t._grad, t._node, t._out_index = array, False, None, None, 0
        return t

    @property
    def grad(self):
        """What ``backward()`` accumulated into this leaf, or None."""
        _trace.note_grad_read(self)
        return self._grad

    @grad.setter
    def grad(self, value):
        _trace.note_grad_set(self)
        if ctx.noting:
            _trace.note_write(self, "grad", self._grad)
        self._grad = value

    def _alias(self) -> Tensor:
        """The same value without autograd state."""
        return Tensor._from_array(self._value)

    def _concrete(self) -> np.ndarray:
        return self._value

    # ------------------------------------------------------------------ metadata
    @property
    def _np_dtype(self) -> np.dtype:
        return self._value.dtype

    @property
    def shape(self) -> tuple:
        return self._value.shape

    @property
    def dtype(self) -> dtypes.DType:
        return dtypes.to_dtype(self._np_dtype)

    @property
    def ndim(self) -> int:
        return self._value.ndim

    @property
    def size(self) -> int:
        """The number of elements (NumPy); ``x.size()``/``x.size(d)``: the shape (PyTorch)."""
        return _SizeOrCount(self.shape)

    def numel(self) -> int:
        return math.prod(self.shape)

    def dim(self) -> int:
        """The number of dimensions (PyTorch's name for ``ndim``)."""
        return self.ndim

    def element_size(self) -> int:
        """Bytes per element."""
        return self._np_dtype.itemsize

    @property
    def device(self) -> Device:
        return CPU

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    __hash__ = object.__hash__

    # ------------------------------------------------------------------ conversion
    def _data(self, what: str) -> np.ndarray:
        """The values, leaving fluxion as NumPy or Python data through ``what``."""
        return self._concrete()

    def numpy(self) -> np.ndarray:
        return self._data(".numpy()")

    def item(self):
        return self._data(".item()").item()

    def tolist(self):
        return self._data(".tolist()").tolist()

    def __array__(self, dtype=None, copy=None):
        # NumPy 2 passes copy=True for np.array(t): hand back a copy, never our buffer
        return np.array(self._data("np.asarray()"), dtype=dtype, copy=copy)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        kwargs = {"max_version": max_version, "dl_device": dl_device, "copy": copy}
        return self._data("__dlpack__").__dlpack__(
            stream=stream, **{k: v for k, v in kwargs.items() if v is not None}
        )

    def __dlpack_device__(self):
        return self._concrete().__dlpack_device__()

    @staticmethod
    def from_dlpack(obj) -> Tensor:
        """Zero-copy import of any DLPack producer (NumPy arrays, CPU torch tensors)."""
        return Tensor._from_array(np.from_dlpack(obj))

    def cpu(self) -> Tensor:
        """This tensor (every tensor is on the cpu)."""
        return self

    def cuda(self, device=None) -> Tensor:
        """Raises: fluxion has no GPU backend yet (``fx.cuda.is_available()`` is False)."""
        _device_of("cuda", "cuda" if device is None else device)

    def contiguous(self) -> Tensor:
        """This tensor (fluxion's results need no layout fix-up before ``view``)."""
        return self

    def __bool__(self) -> bool:
        return bool(self._concrete())

    def __float__(self) -> float:
        return float(self._data("float()"))

    def __int__(self) -> int:
        return int(self._data("int()"))

    def __index__(self) -> int:
        if self._np_dtype not in dtypes.INTEGERS:
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        return int(self._concrete())

    def __repr__(self) -> str:
        array = self._concrete()
        body = str(array[()]) if array.ndim == 0 else str(array)  # 0-d: the scalar's short form
        return f"{body}:{_type_string(self.shape, self._np_dtype)}:{self.device}"

    __str__ = __repr__

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not dtypes.is_inexact(self._np_dtype):
            raise GradError(
                f"requires_grad_: only floating-point tensors can require grad, this one is "
                f"{self.dtype}; convert it first with .astype(fx.float32)"
            )
        if not requires_grad and self._node is not None:
            raise GradError("requires_grad_(False) on a non-leaf tensor; use .detach() instead")
        self.requires_grad = requires_grad
        return self

    def block_until_ready(self) -> Tensor:
        """JAX's: the value is computed once the call returns (NumPy runs eagerly), so ``self``."""
        return self

    def __complex__(self) -> complex:
        return complex(self._data("complex()"))


class Tracer(Tensor):
    """A tensor seen by a transform: its data is whatever its trace keeps.

    Subclasses set ``_trace`` and say what they stand for through ``aval``.
    """

    __slots__ = ("_trace",)

    def _init_tracer(self, trace):
        self._trace = trace
        self.requires_grad, self._grad, self._node, self._out_index = False, None, None, 0

    @property
    def aval(self):
        raise NotImplementedError

    @property
    def _value(self):
        # only reached when no transform is active (bind's fast path): a tracer that
        # outlived its transform
        raise TracerError(
            f"a value traced by {self._trace!r} was used after that transform returned, at "
            f"{_trace.user_frame()}: it leaked out of the function (stored in a global, an "
            "object or a closure); return it from the function instead"
        )

    @property
    def shape(self) -> tuple:
        return self.aval.shape

    @property
    def ndim(self) -> int:
        return len(self.aval.shape)

    @property
    def _np_dtype(self) -> np.dtype:
        return self.aval.dtype

    def _gradient_lost(self, what: str):
        """A differentiated value leaving as data: it would be a constant to the
        transform, and its gradient silently zero."""
        raise TracerError(
            f"{what} of a value differentiated by {self._trace.transform} "
            f"({_type_string(self.shape, self._np_dtype)}), at {_trace.user_frame()}: as data "
            "it would be a constant and its gradient silently zero; keep computing with the "
            "tensor (fluxion ops), or write x.detach() first if a constant is what you mean"
        )

    def _concrete(self) -> np.ndarray:
        raise TracerError(
            f"a traced value ({_type_string(self.shape, self._np_dtype)}, under {self._trace}) was "
            "used where a concrete value is needed (Python if/while, .item(), .numpy(), bool()); "
            "inside a transformed function use fx.where/fx.cond/fx.while_loop, or mark the argument static "
            "(static_argnums)"
        )

    def __repr__(self) -> str:
        return f"Traced<{_type_string(self.shape, self._np_dtype)}>with<{self._trace}>"

    __str__ = __repr__


def _type_string(shape, np_dtype) -> str:
    return f"{dtypes.SHORT_NAMES[np_dtype]}[{','.join(map(str, shape))}]"


def _to_array(data, dtype, copy: bool) -> np.ndarray:
    """Python data / NumPy arrays / tensors -> an ndarray of a supported dtype."""
    np_dtype = None if dtype is None else dtypes.to_np(dtype)
    if isinstance(data, Tensor):
        array = data._concrete()
    elif isinstance(data, np.ndarray | np.generic):
        array = np.asarray(data)
    else:
        try:
            array = np.array(data)
        except ValueError as e:
            raise InvalidArgumentError(
                f"tensor: cannot make a tensor from ragged nested data ({e}); every row "
                "must have the same length"
            ) from None
        if array.dtype == object and np_dtype is not None and np.dtype(np_dtype).kind == "f":
            try:  # ints too big for int64, asked for as floats
                array = np.array(data, dtype=np.float64)
            except (TypeError, ValueError):
                pass
        if array.dtype.kind in "US":
            dtypes.to_np(array.dtype)  # strings: a DTypeError naming the dtype
        if array.dtype == object:
            _check_integers(data, np.dtype(np.int64) if np_dtype is None else np_dtype)
            raise InvalidArgumentError(
                f"tensor: cannot make a tensor from {type(data).__name__} data holding "
                "non-numeric items; pass numbers, nested lists of numbers or arrays"
            )
        if np_dtype is None and array.dtype.kind == "f":
            ints = array.dtype == np.float64 and _holds_int(data)  # ints past int64
            np_dtype = dtypes.DEFAULT_INT if ints else dtypes.DEFAULT_FLOAT  # floats: f32
        elif np_dtype is None and array.dtype.kind in "iu":
            np_dtype = dtypes.DEFAULT_INT
        elif np_dtype is None and array.dtype.kind == "c":
            np_dtype = dtypes.DEFAULT_COMPLEX
        if np.dtype(np_dtype).kind in "iu" and array.size:
            _check_range(array, np.dtype(np_dtype))
    if np_dtype is None:
        np_dtype = dtypes.to_np(array.dtype)
    return np.array(array, dtype=np_dtype, copy=copy or array.dtype != np_dtype)


def _holds_int(data) -> bool:
    """Whether Python data holds an int and no float (NumPy made floats of ints too big)."""
    stack, found = [data], False
    while stack:
        x = stack.pop()
        if isinstance(x, list | tuple):
            stack.extend(x)
        elif isinstance(x, float):
            return False
        elif isinstance(x, int) and not isinstance(x, bool):
            found = True
    return found


def _check_range(array: np.ndarray, np_dtype: np.dtype) -> None:
    """Python numbers must fit the integer dtype they become (as torch: no wrapping)."""
    info = np.iinfo(np_dtype)
    if array.dtype.kind == "f":
        # float bounds compared exactly: 2**63 is a float, 2**63 - 1 rounds up to it
        bad = ~np.isfinite(array) | (array < float(info.min)) | (array >= float(info.max) + 1)
    elif array.dtype.kind in "iu":
        bad = (array < info.min) | (array > info.max)
    else:
        return
    if bad.any():
        _out_of_range(f"{array[bad].flat[0]:.0f}", np_dtype)


def _out_of_range(value: str, np_dtype: np.dtype):
    info = np.iinfo(np_dtype)
    raise InvalidArgumentError(
        f"tensor: {value} does not fit in {np_dtype} ([{info.min}, {info.max}]); pick a "
        "wider dtype (dtype=fx.int64, fx.float64) or smaller values"
    )


def _check_integers(data, np_dtype: np.dtype) -> None:
    """Python ints too big for any NumPy integer (NumPy made an object array of them)."""
    np_dtype = np_dtype if np_dtype.kind in "iu" else np.dtype(np.int64)
    info, stack = np.iinfo(np_dtype), [data]
    while stack:
        x = stack.pop()
        if isinstance(x, list | tuple):
            stack.extend(x)
        elif isinstance(x, int) and not isinstance(x, bool) and not info.min <= x <= info.max:
            _out_of_range(str(x), np_dtype)


def to_tensor(x) -> Tensor:
    """Tensors pass through; anything else becomes a constant tensor (no copy of ndarrays)."""
    if isinstance(x, Tensor):
        return x
    return Tensor._from_array(_to_array(x, None, copy=False))


_trace.from_array, _trace.wrap = Tensor._from_array, Tensor._wrap
_DTYPE_NAMES = frozenset(
    d.name for d in dtypes.DType.__dict__.values() if isinstance(d, dtypes.DType)
)
