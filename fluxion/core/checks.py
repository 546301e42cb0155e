"""Checks of the public API's arguments: one function per kind of argument.

Each takes the public name of the function being called (``op``), the argument's name and
its value; it returns the value in its plain form (a Python int, a float, a tuple of ints, a
str path) or raises a named error whose message says the function, the argument, the value
and what is accepted:

* ``ArgumentTypeError`` (a TypeError) for a value of the wrong type: a float or a string
  where an int is needed (a float is never rounded into a size), None where a number is;
* ``InvalidArgumentError`` (a ValueError) for a value out of range: a negative size, a NaN,
  an infinite learning rate, a probability above 1;
* ``AllocationError`` (a MemoryError) for a tensor larger than the machine's memory, before
  NumPy is asked for it; ``PathError`` (an OSError) for a path that cannot be written.

They run in the public functions, never in ``bind``: the eager fast path stays as it is.
"""

from __future__ import annotations

import functools
import math
import operator
import os

import numpy as np

from fluxion.core import dtypes
from fluxion.errors import (
    AllocationError,
    ArgumentTypeError,
    AxisError,
    DTypeError,
    FluxionError,
    InvalidArgumentError,
    PathError,
    ShapeError,
)


def check_int(op: str, name: str, value, minimum: int | None = None, maximum=None) -> int:
    """An integer (Python, NumPy or a 0-d integer tensor) within [minimum, maximum]."""
    try:
        n = operator.index(value)
    except TypeError as e:
        if isinstance(e, FluxionError):  # a traced value: its own error says what to do
            raise
        raise ArgumentTypeError(
            f"{op}: {name} must be an int, got {value!r} ({type(value).__name__})"
        ) from None
    if (minimum is not None and n < minimum) or (maximum is not None and n > maximum):
        raise InvalidArgumentError(
            f"{op}: {name} must be an int {_interval(minimum, maximum)}, got {n}"
        )
    return n


def check_size(op: str, name: str, value) -> int:
    """A count that may be zero: a dimension, a number of layers or of new tokens."""
    return check_int(op, name, value, minimum=0)


def check_count(op: str, name: str, value) -> int:
    """A count that must be at least one: heads, features of a norm, a batch size."""
    return check_int(op, name, value, minimum=1)


def check_ints(op: str, name: str, value) -> tuple:
    """An int or a sequence of ints (of any sign), as a tuple of Python ints."""
    if isinstance(value, int | np.integer):
        return (int(value),)
    try:
        entries = tuple(value)
    except TypeError:
        raise ArgumentTypeError(
            f"{op}: {name} must be an int or a sequence of ints, got {value!r}"
        ) from None
    try:
        return tuple(map(operator.index, entries))
    except TypeError:
        raise ArgumentTypeError(
            f"{op}: {name} must hold ints, got {value!r}; a float is never rounded into one"
        ) from None


def check_shape(op: str, name: str, value, allocates=None, inferred: bool = False) -> tuple:
    """A shape: an int or a sequence of ints >= 0, as a tuple. With ``allocates`` (a dtype)
    the tensor it describes must also fit in memory (``check_allocation``); with
    ``inferred`` one entry may be -1 (reshape's size to infer)."""
    dims = check_ints(op, name, value)
    if inferred and dims.count(-1) > 1:
        raise ShapeError(f"{op}: only one dimension of {name} can be -1 (inferred), got {dims}")
    if dims and min(dims) < (-1 if inferred else 0):
        allowed = "; only -1 (inferred) is allowed" if inferred else "; sizes are >= 0"
        raise ShapeError(f"{op}: {name} {value!r} has a negative dimension{allowed}")
    if allocates is not None:
        check_allocation(op, dims, allocates)
    return dims


@functools.cache
def memory_limit() -> int:
    """The bytes one tensor may take: the machine's physical memory, or less where the
    process's address space is limited (``ulimit -v``)."""
    limit = 2**63 - 1
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # a platform without sysconf (Windows)
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft)
    except (ImportError, ValueError, OSError):
        pass
    return limit


def check_allocation(op: str, shape: tuple, dtype, asked: str = "") -> None:
    """A tensor of ``shape`` and ``dtype`` fits in memory; else an ``AllocationError`` with
    the shape and the bytes (NumPy's MemoryError says neither, or comes after swapping).
    ``asked`` names the arguments that made the shape, where it is not one of them."""
    np_dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * np_dtype.itemsize
    if nbytes > memory_limit():
        raise AllocationError(
            f"{op}: {asked + ' asks for ' if asked else ''}a tensor of shape {tuple(shape)} and "
            f"dtype {dtypes.to_dtype(np_dtype)}, which would need {nbytes:,} bytes "
            f"({_human(nbytes)}), more than the {memory_limit():,} bytes "
            f"({_human(memory_limit())}) of this machine's memory; ask for a smaller one"
        )


def _human(nbytes: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if nbytes < 1024 or unit == "PiB":
            return f"{nbytes:.4g} {unit}"
        nbytes /= 1024
    raise AssertionError  # pragma: no cover


def _interval(minimum, maximum, low_open: bool = False, high_open: bool = False) -> str:
    if minimum is not None and maximum is not None:
        return f"in {'(' if low_open else '['}{minimum:g}, {maximum:g}{')' if high_open else ']'}"
    if minimum is not None:
        return f"{'>' if low_open else '>='} {minimum:g}"
    if maximum is not None:
        return f"{'<' if high_open else '<='} {maximum:g}"
    return ""


def check_number(
    op: str,
    name: str,
    value,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
):
    """A real number within the interval (NaN never is; inf only without ``finite``).

    Python and NumPy numbers come back as a float, a concrete 0-d tensor too; a tensor of
    several values is checked value by value and comes back as it is, and a traced one
    (inside a transform) is not checked: its values are not known yet.
    """
    from fluxion.core.tensor import Tensor, Tracer

    interval = _interval(minimum, maximum, low_open, high_open)
    bounded = minimum is not None and maximum is not None
    accepted = ("a finite number " if finite and not bounded else "a number ") + interval
    if isinstance(value, Tracer):
        return value
    if isinstance(value, Tensor):
        array = value._concrete()
        if array.ndim:
            if not dtypes.is_float(array.dtype) and array.dtype not in dtypes.INTEGERS:
                raise ArgumentTypeError(f"{op}: {name} must hold numbers, got {value.dtype}")
            bad = _outside(array.astype(np.float64), minimum, maximum, low_open, high_open, finite)
            if bad is not None:
                raise InvalidArgumentError(
                    f"{op}: {name} must hold {accepted.strip()}, got a tensor of shape "
                    f"{array.shape} holding {bad!r}"
                )
            return value
        value = array.item()
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ArgumentTypeError(
            f"{op}: {name} must be {accepted.strip()}, got {value!r} ({type(value).__name__})"
        )
    x = float(value)
    if _outside(np.float64(x), minimum, maximum, low_open, high_open, finite) is not None:
        raise InvalidArgumentError(f"{op}: {name} must be {accepted.strip()}, got {x!r}")
    return x


def _outside(array, minimum, maximum, low_open, high_open, finite):
    """The first value of ``array`` outside the interval (NaN always is), else None."""
    array = np.atleast_1d(array)
    bad = np.isnan(array)
    if finite:
        bad |= np.isinf(array)
    if minimum is not None:
        bad |= array <= minimum if low_open else array < minimum
    if maximum is not None:
        bad |= array >= maximum if high_open else array > maximum
    return float(array[bad].flat[0]) if bad.any() else None


def check_probability(op: str, name: str, value):
    """A probability in [0, 1] (a number, or a tensor of them)."""
    return check_number(op, name, value, 0.0, 1.0)


def check_nonnegative(op: str, name: str, value) -> float:
    """A finite number >= 0: learning rates, weight decay, eps, temperatures, std."""
    return check_number(op, name, value, 0.0)


def check_seed(op: str, name: str, value, bits: int = 64) -> int:
    """A seed: an int of ``bits`` bits, signed or not (PyTorch takes [-2**63, 2**64)), as
    the equivalent non-negative int below 2**bits (-1 and 2**64 - 1 name one stream)."""
    low, high = -(2 ** (bits - 1)), 2**bits - 1
    seed = check_int(op, name, value)
    if not low <= seed <= high:
        raise InvalidArgumentError(
            f"{op}: {name} must be an int in [-2**{bits - 1}, 2**{bits}), got {seed}"
        )
    return seed % 2**bits


def check_choice(op: str, name: str, value, choices) -> None:
    """One of the strings ``choices``."""
    if not (isinstance(value, str) and value in choices):
        raise InvalidArgumentError(f"{op}: {name} must be one of {choices}, got {value!r}")


def check_dtype(op: str, name: str, value, default=None, floating: bool = False) -> np.dtype:
    """A dtype in any spelling, as a NumPy dtype; None means ``default`` when there is one."""
    if value is None and default is not None:
        return np.dtype(default)
    try:
        np_dtype = dtypes.to_np(value)
    except DTypeError as e:
        raise DTypeError(f"{op}: {e}" if name == "dtype" else f"{op}: {name}: {e}") from None
    if floating and not dtypes.is_float(np_dtype):
        raise DTypeError(
            f"{op}: {name} must be a floating-point dtype (float16, bfloat16, float32, "
            f"float64), got {value!r}"
        )
    return np_dtype


def check_path(op: str, name: str, value) -> str:
    """A file path (a str or an ``os.PathLike``), as a str."""
    try:
        path = os.fspath(value)
    except TypeError:
        path = None
    if not isinstance(path, str):  # bytes paths, ints (file descriptors), None...
        raise ArgumentTypeError(
            f"{op}: {name} must be a path (a str or a pathlib.Path), got {value!r}"
        )
    if not path:
        raise InvalidArgumentError(f"{op}: {name} is empty; give the path of a file")
    return path


def check_output_path(op: str, name: str, value) -> str:
    """A path a file can be written to: its folder exists and it is not itself a folder."""
    path = check_path(op, name, value)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise PathError(f"{op}: {name} {path!r} is a directory; give a file path inside it")
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.exists(folder) else "does not exist"
        raise PathError(
            f"{op}: {name} {path!r} cannot be written: its folder {folder!r} {what}; create "
            "the folder first (os.makedirs)"
        )
    return path


def _axis_int(op: str, axis, name: str) -> int:
    try:
        return operator.index(axis)
    except TypeError:
        raise ArgumentTypeError(f"{op}: {name} must be an int, got {axis!r}") from None


def check_axes(op: str, axes, ndim: int, name: str = "axis") -> tuple:
    """Normalise ``axes`` (int, tuple or None=all) to a sorted tuple of non-negative ints.

    On a 0-d tensor, axis 0 or -1 names no axis at all (NumPy's reductions and PyTorch
    accept it), so it normalises to ``()``.
    """
    if axes is None:
        return tuple(range(ndim))
    axes = tuple(axes) if isinstance(axes, tuple | list) else (axes,)
    out = []
    for a in map(lambda a: _axis_int(op, a, name), axes):
        if ndim == 0 and a in (0, -1):
            continue
        if not -ndim <= a < ndim:
            raise AxisError(
                f"{op}: {name} {a} is out of range for a tensor of {ndim} dimension(s); "
                f"use an axis in [{-ndim}, {ndim})"
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise AxisError(f"{op}: {name} repeated in {axes}; name each axis once")
    return tuple(sorted(out))


def check_axis(op: str, axis, ndim: int, name: str = "axis") -> int:
    """One axis that must exist (so never an axis of a 0-d tensor), as a non-negative int."""
    a = _axis_int(op, axis, name)
    if not -ndim <= a < ndim:
        raise AxisError(
            f"{op}: {name} {a} is out of range for a tensor of {ndim} dimension(s)"
            + (f"; use an axis in [{-ndim}, {ndim})" if ndim else "; it has no axes")
        )
    return a % ndim
