"""Tensor's operators and methods, installed on the class here, beside the ops they call.

``core/tensor.py`` says what a tensor is (a value, a dtype, a gradient slot); what one can do
with it is fluxion's ops, which import the tensor. So the methods live one layer up, in this
module, and ``install`` copies them onto ``Tensor`` when ``fluxion.ops`` is imported: the core
never imports the ops.
"""

from __future__ import annotations

import numpy as np

from fluxion.core import dtypes
from fluxion.core.tensor import Tensor, to_arguments, to_tensor
from fluxion.core.trace import ctx, stage_write
from fluxion.errors import DTypeError, GradError, InvalidArgumentError, ShapeError, TracerError
from fluxion.ops import creation, elementwise, indexing, linalg, random, reduction
from fluxion.ops import shape as shapes
from fluxion.ops.inspection import check_device


class _Methods:
    """The methods ``install`` puts on Tensor (a class body, so that they read as methods)."""

    def detach(self) -> Tensor:
        """The same value, cut from the graph (and from any enclosing differentiation)."""
        out = elementwise.stop_gradient(self)
        # stop_gradient, like floor, is recorded as a zero-gradient op; detach is a new leaf
        out._node, out.requires_grad = None, False
        return out

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
            stage_write(op, self, elementwise.astype(result, self._np_dtype))
            return self
        self._value = np.asarray(result._value, dtype=self._np_dtype)
        return self

    def __setitem__(self, index, value):
        self._assign(self.at[index].set(value), "__setitem__")

    def __iadd__(self, other):
        return self._in_place(elementwise.add, other, "+=")

    def __isub__(self, other):
        return self._in_place(elementwise.subtract, other, "-=")

    def __imul__(self, other):
        return self._in_place(elementwise.multiply, other, "*=")

    def __itruediv__(self, other):
        return self._in_place(elementwise.divide, other, "/=")

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
        """Out-of-place indexed updates (JAX's): ``x.at[idx].set(v)``, ``.add(v)``,
        ``.multiply(v)``, ``.min(v)``, ``.max(v)``, ``.get()``."""
        return _AtIndexer(self)

    # ------------------------------------------------------------------ operators
    def __getitem__(self, index):
        return indexing.getitem(self, index)

    def __add__(self, other):
        return elementwise.add(self, other)

    def __radd__(self, other):
        return elementwise.add(other, self)

    def __sub__(self, other):
        return elementwise.subtract(self, other)

    def __rsub__(self, other):
        return elementwise.subtract(other, self)

    def __mul__(self, other):
        return elementwise.multiply(self, other)

    def __rmul__(self, other):
        return elementwise.multiply(other, self)

    def __truediv__(self, other):
        return elementwise.divide(self, other)

    def __rtruediv__(self, other):
        return elementwise.divide(other, self)

    def __floordiv__(self, other):
        return elementwise.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return elementwise.floor_divide(other, self)

    def __mod__(self, other):
        return elementwise.remainder(self, other)

    def __rmod__(self, other):
        return elementwise.remainder(other, self)

    def __pow__(self, other):
        return elementwise.power(self, other)

    def __rpow__(self, other):
        return elementwise.power(other, self)

    def __matmul__(self, other):
        return linalg.matmul(self, other)

    def __rmatmul__(self, other):
        return linalg.matmul(other, self)

    def __neg__(self):
        return elementwise.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return elementwise.abs(self)

    def __invert__(self):
        return elementwise.invert(self)

    def __and__(self, other):
        return elementwise.bitwise_and(self, other)

    def __rand__(self, other):
        return elementwise.bitwise_and(other, self)

    def __or__(self, other):
        return elementwise.bitwise_or(self, other)

    def __ror__(self, other):
        return elementwise.bitwise_or(other, self)

    def __xor__(self, other):
        return elementwise.bitwise_xor(self, other)

    def __rxor__(self, other):
        return elementwise.bitwise_xor(other, self)

    def __eq__(self, other):
        if other is None:  # x == None is False (as PyTorch), so `x in [None, ...]` works
            return NotImplemented
        return elementwise.equal(self, other)

    def __ne__(self, other):
        if other is None:
            return NotImplemented
        return elementwise.not_equal(self, other)

    def __lt__(self, other):
        return elementwise.less(self, other)

    def __le__(self, other):
        return elementwise.less_equal(self, other)

    def __gt__(self, other):
        return elementwise.greater(self, other)

    def __ge__(self, other):
        return elementwise.greater_equal(self, other)

    # ------------------------------------------------------------------ methods
    def astype(self, dtype) -> Tensor:
        return elementwise.astype(self, dtype)

    def to(self, *args, dtype=None, device=None, non_blocking: bool = False, copy: bool = False):
        """PyTorch's ``to``: a dtype (``x.to(fx.int64)``), a device (``x.to("cpu")``), both, or
        another tensor's dtype (``x.to(y)``); the same tensor when nothing changes (a new one
        with ``copy=True``)."""
        dtype = to_arguments("to", args, dtype, device)
        out = self if dtype is None else elementwise.astype(self, dtype)
        return elementwise.clone(out) if copy and out is self else out

    def type_as(self, other) -> Tensor:
        return elementwise.astype(self, other.dtype)

    def clone(self) -> Tensor:
        """A copy, differentiable (the gradient passes through unchanged)."""
        return elementwise.clone(self)

    def nonzero(self, *, as_tuple: bool = False):
        """PyTorch's ``x.nonzero()``: one row of indices per non-zero element, (n, ndim);
        ``fx.nonzero(x)`` is NumPy's and the array API's, one index tensor per axis."""
        return indexing.nonzero(self, as_tuple=as_tuple)

    def half(self) -> Tensor:
        return elementwise.astype(self, np.float16)

    def bool(self) -> Tensor:
        return elementwise.astype(self, np.bool_)

    def float(self) -> Tensor:
        return elementwise.astype(self, dtypes.DEFAULT_FLOAT)

    def double(self) -> Tensor:
        return elementwise.astype(self, np.float64)

    def long(self) -> Tensor:
        return elementwise.astype(self, np.int64)

    def int(self) -> Tensor:
        return elementwise.astype(self, np.int32)

    def reshape(self, *shape) -> Tensor:
        return shapes.reshape(self, shape[0] if len(shape) == 1 else shape)

    view = reshape

    def view_as(self, other) -> Tensor:
        return shapes.reshape(self, other.shape)

    def expand(self, *sizes) -> Tensor:
        """PyTorch's expand: broadcast to ``sizes``, where -1 keeps a dimension."""
        sizes = tuple(sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes)
        lead = len(sizes) - self.ndim
        shape = tuple(
            self.shape[i - lead] if d == -1 and i >= lead else d for i, d in enumerate(sizes)
        )
        return shapes.broadcast_to(self, shape)

    def expand_as(self, other) -> Tensor:
        return shapes.broadcast_to(self, other.shape)

    def transpose(self, *axes) -> Tensor:
        """Two ints swap those two dims (PyTorch's ``transpose(dim0, dim1)``); otherwise
        NumPy's: no axes reverses them, a permutation (a tuple, or n ints) reorders them."""
        if len(axes) == 2 and all(isinstance(a, int) for a in axes):
            return shapes.transpose(self, *axes)
        return shapes.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def permute(self, *dims) -> Tensor:
        return shapes.transpose(self, dims[0] if len(dims) == 1 else dims)

    def repeat(self, *sizes) -> Tensor:
        """PyTorch's repeat: the whole tensor tiled ``sizes`` times (``fx.tile``); NumPy's
        element-wise repeat is ``repeat_interleave``."""
        return shapes.tile(
            self, sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes
        )

    # ------------------------------------------------------------------ PyTorch's fills
    def _new(self, size, fill_value, dtype) -> Tensor:
        dtype = self._np_dtype if dtype is None else dtype
        return creation.full(shapes._star_shape(size), fill_value, dtype=dtype)

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
        return self._assign(creation.full_like(self, value), "fill_")

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def index_put_(self, indices, values, accumulate: bool = False) -> Tensor:
        """``x[indices] = values`` (``+=`` with ``accumulate``), in place."""
        return self._assign(indexing.index_put(self, indices, values, accumulate), "index_put_")

    def masked_fill_(self, mask, value) -> Tensor:
        result = indexing.masked_fill(self, mask, value)
        if result.shape != self.shape:
            raise ShapeError(
                f"masked_fill_: mask of shape {mask.shape} broadcasts the tensor of shape "
                f"{self.shape} to {result.shape}; in place the shape cannot change (use "
                "x = x.masked_fill(mask, value))"
            )
        return self._assign(result, "masked_fill_")

    @property
    def T(self) -> Tensor:
        return shapes.transpose(self)

    @property
    def mT(self) -> Tensor:
        return shapes.swapaxes(self, -1, -2)

    def size_of(self, axis: int) -> int:
        return self.shape[axis]

    def unsqueeze(self, axis=None, *, dim=None) -> Tensor:
        return shapes.expand_dims(self, axis, dim=dim)

    def clamp(self, min=None, max=None) -> Tensor:
        return elementwise.clip(self, min, max)

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
        check_device("to_device", device)
        return self

    def __lshift__(self, other):
        return elementwise.bitwise_left_shift(self, other)

    def __rlshift__(self, other):
        return elementwise.bitwise_left_shift(other, self)

    def __rshift__(self, other):
        return elementwise.bitwise_right_shift(self, other)

    def __rrshift__(self, other):
        return elementwise.bitwise_right_shift(other, self)


class _AtIndexer:
    __slots__ = ("tensor",)

    def __init__(self, tensor):
        self.tensor = tensor

    def __getitem__(self, index):
        return _AtUpdate(self.tensor, index)


def _at_update(kind: str):
    # indices_are_sorted and unique_indices are JAX's promises about the index (JAX needs
    # unique_indices=True to differentiate multiply): the result is the same without them
    def update(self, value, *, indices_are_sorted=False, unique_indices=False, mode=None):
        _check_in_bounds_mode(kind, mode)
        return indexing.index_update(self.tensor, self.index, value, mode=kind)

    update.__name__ = update.__qualname__ = kind
    return update


def _check_in_bounds_mode(op: str, mode) -> None:
    if mode not in (None, "promise_in_bounds"):
        raise InvalidArgumentError(
            f"at[].{op}: mode={mode!r} is not supported: an index out of range raises in "
            "fluxion (JAX clamps or drops it); clip or wrap the index yourself"
        )


class _AtUpdate:
    __slots__ = ("tensor", "index")

    def __init__(self, tensor, index):
        self.tensor, self.index = tensor, index

    def get(self, *, indices_are_sorted=False, unique_indices=False, mode=None) -> Tensor:
        _check_in_bounds_mode("get", mode)
        return self.tensor[self.index]

    set, add, multiply = _at_update("set"), _at_update("add"), _at_update("multiply")
    min, max, mul = _at_update("min"), _at_update("max"), multiply


# Methods that are the op of the same name with the tensor first: x.sum(1) is fx.sum(x, 1).
_FORWARDED = {
    reduction: "sum mean var std max min amax amin prod argmax argmin all any cumsum logsumexp softmax log_softmax sort argsort topk median mode",
    elementwise: "exp log sqrt abs tanh sigmoid relu sin cos square clip round floor ceil sign maximum minimum pow rsqrt reciprocal log1p expm1 erf",
    shapes: "flatten squeeze expand_dims broadcast_to swapaxes moveaxis flip split chunk repeat_interleave",
    linalg: "matmul dot norm",
    indexing: "masked_fill index_put scatter scatter_add gather bincount",
    creation: "tril triu",
    random: "multinomial",
}


def _forward(fn):
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)

    method.__name__ = fn.__name__
    method.__doc__ = f"Same as ``fx.{fn.__name__}(self, ...)``."
    return method


# A class body's own entries; __hash__ too: defining __eq__ set _Methods' to None, and a
# tensor keeps object's hash (hashable by identity, as in PyTorch)
_NOT_METHODS = frozenset(
    ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__hash__")
)


def install() -> None:
    for name, value in vars(_Methods).items():
        if name not in _NOT_METHODS:
            setattr(Tensor, name, value)
    for module, names in _FORWARDED.items():
        for name in names.split():
            setattr(Tensor, name, _forward(getattr(module, name)))


install()
