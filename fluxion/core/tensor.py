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
from fluxion.core.trace import ctx
from fluxion.errors import (
    ArgumentTypeError,
    DTypeError,
    GradError,
    InvalidArgumentError,
    ShapeError,
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
        from fluxion.ops.primitives import check_axis

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
    _weak = False  # True for jit's tracers of Python-scalar arguments (see ops._promoted)
    __array_ufunc__ = None  # NumPy defers to our reflected operators: np_array * tensor -> Tensor

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self._value = _to_array(data, dtype, copy=True)
        self.requires_grad, self._grad, self._node, self._out_index = False, None, None, 0
        if ctx.dynamic is not None:
            ctx.dynamic.born.add(id(self))
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_array(cls, array: np.ndarray) -> Tensor:
        t = Tensor._wrap(array)
        if ctx.dynamic is not None:
            ctx.dynamic.born.add(id(t))  # made while tracing: a constant of the graph
        return t

    @staticmethod
    def _wrap(array: np.ndarray) -> Tensor:
        t = object.__new__(Tensor)
        t._value, t.requires_grad, t._grad, t._node, t._out_index = array, False, None, None, 0
        return t

    @property
    def grad(self):
        """What ``backward()`` accumulated into this leaf, or None."""
        trace = ctx.dynamic
        if trace is not None and id(self) not in trace.grads_set:
            # a function being compiled looks at the .grad it was called with: the graph
            # holds for calls where .grad is None (or not) as it is now, and reads .grad
            # afresh at each call (backward() sets a new tensor there)
            trace.grad_guards.setdefault(id(self), (self, self._grad is None))
            if self._grad is not None:
                trace.read_from.setdefault(id(self._grad), (self, "grad"))
        return self._grad

    @grad.setter
    def grad(self, value):
        if ctx.dynamic is not None:
            ctx.dynamic.grads_set.add(id(self))
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

    def detach(self) -> Tensor:
        """The same value, cut from the graph (and from any enclosing differentiation)."""
        out = _ops.stop_gradient(self)
        # stop_gradient, like floor, is recorded as a zero-gradient op; detach is a new leaf
        out._node, out.requires_grad = None, False
        return out

    def backward(self, gradient=None, retain_graph: bool = False, create_graph: bool = False):
        from fluxion.transforms.autodiff import tensor_backward

        tensor_backward(self, gradient, retain_graph, create_graph)

    @property
    def data(self) -> Tensor:
        return self._alias()

    @data.setter
    def data(self, value):
        self._assign(to_tensor(value), "data", check_grad=False)

    # ------------------------------------------------------------------ in place
    def _assign(self, result: Tensor, op: str, check_grad: bool = True) -> Tensor:
        """Write ``result`` into this tensor (``x[...] = v``, ``x += v``, ``p.data = v``)."""
        if self._trace is not None:
            raise TracerError(
                f"{op}: in-place update of a traced tensor; use the out-of-place form "
                "(x = x.at[idx].set(v), or x = x + v)"
            )
        if check_grad and ctx.grad_enabled and (self.requires_grad or result.requires_grad):
            raise GradError(
                f"{op}: in-place update of a tensor that requires grad would lose its "
                "gradient; use x.at[idx].set(v) (out of place) or wrap it in fx.no_grad()"
            )
        if result._trace is not None:
            if result._trace is not ctx.dynamic:
                raise TracerError(f"{op}: cannot store a traced value into a concrete tensor here")
            # Inside jit: the compiled function writes the value back after each call.
            ctx.dynamic.write(self, _ops.astype(result, self._np_dtype))
            return self
        self._value = np.asarray(result._value, dtype=self._np_dtype)
        return self

    def __setitem__(self, index, value):
        self._assign(self.at[index].set(value), "__setitem__")

    def __iadd__(self, other):
        return self._in_place(_ops.add, other, "+=")

    def __isub__(self, other):
        return self._in_place(_ops.subtract, other, "-=")

    def __imul__(self, other):
        return self._in_place(_ops.multiply, other, "*=")

    def __itruediv__(self, other):
        return self._in_place(_ops.divide, other, "/=")

    def _in_place(self, fn, other, op):
        result = fn(self, other)
        # As NumPy and PyTorch: x += v may not change x's kind (int x /= 2, int x += 0.5),
        # or the update would be truncated silently; checked on both paths so that eager
        # and traced code agree.
        if dtypes.kind(result._np_dtype) > dtypes.kind(self._np_dtype):
            raise DTypeError(
                f"{op}: the result is {result.dtype} but the tensor is {self.dtype}; an in-place "
                f"update cannot change its kind. Write x = x {op[:-1]} v (out of place) or cast "
                "first with x = x.astype(...)"
            )
        # Tracers and tensors in the graph get the functional form; plain data is updated.
        if self._trace is not None or (ctx.grad_enabled and self._node is not None):
            return result
        self._assign(result, op)
        # inside jit the write is replayed after each call; the name takes the traced value
        return result if result._trace is not None else self

    @property
    def at(self):
        """Out-of-place indexed updates: ``x.at[idx].set(v)``, ``.add(v)``, ``.get()``."""
        return _AtIndexer(self)

    # ------------------------------------------------------------------ operators
    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.subtract(self, other)

    def __rsub__(self, other):
        return _ops.subtract(other, self)

    def __mul__(self, other):
        return _ops.multiply(self, other)

    def __rmul__(self, other):
        return _ops.multiply(other, self)

    def __truediv__(self, other):
        return _ops.divide(self, other)

    def __rtruediv__(self, other):
        return _ops.divide(other, self)

    def __floordiv__(self, other):
        return _ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _ops.floor_divide(other, self)

    def __mod__(self, other):
        return _ops.remainder(self, other)

    def __rmod__(self, other):
        return _ops.remainder(other, self)

    def __pow__(self, other):
        return _ops.power(self, other)

    def __rpow__(self, other):
        return _ops.power(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    def __invert__(self):
        return _ops.invert(self)

    def __and__(self, other):
        return _ops.bitwise_and(self, other)

    def __rand__(self, other):
        return _ops.bitwise_and(other, self)

    def __or__(self, other):
        return _ops.bitwise_or(self, other)

    def __ror__(self, other):
        return _ops.bitwise_or(other, self)

    def __xor__(self, other):
        return _ops.bitwise_xor(self, other)

    def __rxor__(self, other):
        return _ops.bitwise_xor(other, self)

    def __eq__(self, other):
        if other is None:  # x == None is False (as PyTorch), so `x in [None, ...]` works
            return NotImplemented
        return _ops.equal(self, other)

    def __ne__(self, other):
        if other is None:
            return NotImplemented
        return _ops.not_equal(self, other)

    def __lt__(self, other):
        return _ops.less(self, other)

    def __le__(self, other):
        return _ops.less_equal(self, other)

    def __gt__(self, other):
        return _ops.greater(self, other)

    def __ge__(self, other):
        return _ops.greater_equal(self, other)

    # ------------------------------------------------------------------ methods
    def astype(self, dtype) -> Tensor:
        return _ops.astype(self, dtype)

    def to(self, *args, dtype=None, device=None, non_blocking: bool = False, copy: bool = False):
        """PyTorch's ``to``: a dtype (``x.to(fx.int64)``), a device (``x.to("cpu")``), both, or
        another tensor's dtype (``x.to(y)``); the same tensor when nothing changes (a new one
        with ``copy=True``)."""
        dtype = to_arguments("to", args, dtype, device)
        out = self if dtype is None else _ops.astype(self, dtype)
        return _ops.clone(out) if copy and out is self else out

    def type_as(self, other) -> Tensor:
        return _ops.astype(self, other.dtype)

    def clone(self) -> Tensor:
        """A copy, differentiable (the gradient passes through unchanged)."""
        return _ops.clone(self)

    def nonzero(self, *, as_tuple: bool = False):
        """PyTorch's ``x.nonzero()``: one row of indices per non-zero element, (n, ndim);
        ``fx.nonzero(x)`` is NumPy's and the array API's, one index tensor per axis."""
        return _ops.nonzero(self, as_tuple=as_tuple)

    def half(self) -> Tensor:
        return _ops.astype(self, np.float16)

    def bool(self) -> Tensor:
        return _ops.astype(self, np.bool_)

    def float(self) -> Tensor:
        return _ops.astype(self, dtypes.DEFAULT_FLOAT)

    def double(self) -> Tensor:
        return _ops.astype(self, np.float64)

    def long(self) -> Tensor:
        return _ops.astype(self, np.int64)

    def int(self) -> Tensor:
        return _ops.astype(self, np.int32)

    def reshape(self, *shape) -> Tensor:
        return _ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    view = reshape

    def view_as(self, other) -> Tensor:
        return _ops.reshape(self, other.shape)

    def expand(self, *sizes) -> Tensor:
        """PyTorch's expand: broadcast to ``sizes``, where -1 keeps a dimension."""
        sizes = tuple(sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes)
        lead = len(sizes) - self.ndim
        shape = tuple(
            self.shape[i - lead] if d == -1 and i >= lead else d for i, d in enumerate(sizes)
        )
        return _ops.broadcast_to(self, shape)

    def expand_as(self, other) -> Tensor:
        return _ops.broadcast_to(self, other.shape)

    def transpose(self, *axes) -> Tensor:
        """Two ints swap those two dims (PyTorch's ``transpose(dim0, dim1)``); otherwise
        NumPy's: no axes reverses them, a permutation (a tuple, or n ints) reorders them."""
        if len(axes) == 2 and all(isinstance(a, int) for a in axes):
            return _ops.transpose(self, *axes)
        return _ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def permute(self, *dims) -> Tensor:
        return _ops.transpose(self, dims[0] if len(dims) == 1 else dims)

    def repeat(self, *sizes) -> Tensor:
        """PyTorch's repeat: the whole tensor tiled ``sizes`` times (``fx.tile``); NumPy's
        element-wise repeat is ``repeat_interleave``."""
        return _ops.tile(
            self, sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes
        )

    # ------------------------------------------------------------------ PyTorch's fills
    def _new(self, size, fill_value, dtype) -> Tensor:
        from fluxion.ops.shape import _star_shape

        dtype = self._np_dtype if dtype is None else dtype
        return _ops.full(_star_shape(size), fill_value, dtype=dtype)

    def new_zeros(self, *size, dtype=None) -> Tensor:
        return self._new(size, 0, dtype)

    def new_ones(self, *size, dtype=None) -> Tensor:
        return self._new(size, 1, dtype)

    def new_full(self, size, fill_value, dtype=None) -> Tensor:
        return self._new((size,), fill_value, dtype)

    def new_empty(self, *size, dtype=None) -> Tensor:
        return self._new(size, 0, dtype)

    def new_tensor(self, data, dtype=None) -> Tensor:
        return Tensor(data, dtype=self._np_dtype if dtype is None else dtype)

    def fill_(self, value) -> Tensor:
        """Set every element to ``value``, in place."""
        return self._assign(_ops.full_like(self, value), "fill_")

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def index_put_(self, indices, values, accumulate: bool = False) -> Tensor:
        """``x[indices] = values`` (``+=`` with ``accumulate``), in place."""
        return self._assign(_ops.index_put(self, indices, values, accumulate), "index_put_")

    def masked_fill_(self, mask, value) -> Tensor:
        result = _ops.masked_fill(self, mask, value)
        if result.shape != self.shape:
            raise ShapeError(
                f"masked_fill_: mask of shape {mask.shape} broadcasts the tensor of shape "
                f"{self.shape} to {result.shape}; in place the shape cannot change (use "
                "x = x.masked_fill(mask, value))"
            )
        return self._assign(result, "masked_fill_")

    @property
    def T(self) -> Tensor:
        return _ops.transpose(self)

    @property
    def mT(self) -> Tensor:
        return _ops.swapaxes(self, -1, -2)

    def size_of(self, axis: int) -> int:
        return self.shape[axis]

    def unsqueeze(self, axis=None, *, dim=None) -> Tensor:
        return _ops.expand_dims(self, axis, dim=dim)

    def clamp(self, min=None, max=None) -> Tensor:
        return _ops.clip(self, min, max)

    # ------------------------------------------------------------------ array API
    def __array_namespace__(self, *, api_version=None):
        import fluxion

        if api_version not in (None, "2021.12", "2022.12", "2023.12", "2024.12"):
            raise InvalidArgumentError(
                f"__array_namespace__: api_version {api_version!r} is not supported; fluxion "
                f"implements {fluxion.__array_api_version__}"
            )
        return fluxion

    def to_device(self, device, /, *, stream=None) -> Tensor:
        from fluxion.ops.inspection import check_device

        check_device("to_device", device)
        return self

    def __complex__(self) -> complex:
        return complex(self._data("complex()"))

    def __lshift__(self, other):
        return _ops.bitwise_left_shift(self, other)

    def __rlshift__(self, other):
        return _ops.bitwise_left_shift(other, self)

    def __rshift__(self, other):
        return _ops.bitwise_right_shift(self, other)

    def __rrshift__(self, other):
        return _ops.bitwise_right_shift(other, self)


def _method(name):
    def method(self, *args, **kwargs):
        return getattr(_ops, name)(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"Same as ``fx.{name}(self, ...)``."
    return method


for _name in (
    "sum mean var std max min amax amin prod argmax argmin all any cumsum logsumexp exp log "
    "sqrt abs tanh sigmoid relu sin cos square clip flatten squeeze expand_dims broadcast_to "
    "swapaxes moveaxis flip split chunk matmul dot softmax log_softmax round floor ceil sign "
    "sort argsort topk median mode norm masked_fill index_put scatter scatter_add gather "
    "repeat_interleave maximum minimum pow rsqrt reciprocal log1p expm1 erf tril "
    "triu bincount multinomial"
).split():
    setattr(Tensor, _name, _method(_name))


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
            "inside jit/vmap use fx.where/fx.cond/fx.while_loop, or mark the argument static "
            "(static_argnums)"
        )

    def __repr__(self) -> str:
        return f"Traced<{_type_string(self.shape, self._np_dtype)}>with<{self._trace}>"

    __str__ = __repr__


class _AtIndexer:
    __slots__ = ("tensor",)

    def __init__(self, tensor):
        self.tensor = tensor

    def __getitem__(self, index):
        return _AtUpdate(self.tensor, index)


class _AtUpdate:
    __slots__ = ("tensor", "index")

    def __init__(self, tensor, index):
        self.tensor, self.index = tensor, index

    def get(self) -> Tensor:
        return self.tensor[self.index]

    def set(self, value) -> Tensor:
        return _ops.index_update(self.tensor, self.index, value, mode="set")

    def add(self, value) -> Tensor:
        return _ops.index_update(self.tensor, self.index, value, mode="add")


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

from fluxion import ops as _ops  # noqa: E402  (ops import Tensor; operators need ops)
