"""Bad inputs raise named fluxion errors that teach (STYLE.md point 11, DESIGN.md "Errors").

Each row: a call that must fail, the ``fluxion.errors`` type it must raise (exactly that
type, which must also subclass the built-in a Python user would catch), and words its
message must contain: the op's public name and the offending shapes/dtypes/values.
"""

from __future__ import annotations

import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import (
    ArgumentTypeError,
    AxisError,
    DTypeError,
    FluxionError,
    IndexOutOfRangeError,
    InvalidArgumentError,
    ShapeError,
)

BUILTIN = {
    ArgumentTypeError: (ValueError, TypeError),
    ShapeError: ValueError,
    AxisError: (ValueError, IndexError),
    DTypeError: TypeError,
    IndexOutOfRangeError: IndexError,
    InvalidArgumentError: ValueError,
}


def T(*shape, dtype="float32"):
    return fx.asarray(np.ones(shape, dtype))


def Ints(*values):
    return fx.asarray(np.array(values, np.int64))


def Mask(*values):
    return fx.asarray(np.array(values, bool))


def IntArray(array):
    return fx.asarray(np.array(array, np.int64))


BROADCAST_OPS = [
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "remainder",
    "floor_divide", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
    "logical_and", "logical_or", "logical_xor",
]  # fmt: skip

CASES = [
    # --- broadcasting, in every binary op: the public name, both shapes
    *[
        (
            f"{op}-broadcast",
            lambda op=op: getattr(fx, op)(T(2, 3), T(4)),
            ShapeError,
            [f"{op}:", "(2, 3)", "(4,)", "broadcast"],
        )
        for op in BROADCAST_OPS
    ],
    (
        "bitwise_and-broadcast",
        lambda: fx.bitwise_and(Ints(1, 2, 3), Ints(1, 2)),
        ShapeError,
        ["bitwise_and:", "(3,)", "(2,)"],
    ),
    ("operator-add-broadcast", lambda: T(3, 1) + T(2, 4), ShapeError, ["add:", "(3, 1)", "(2, 4)"]),
    ("operator-mul-broadcast", lambda: T(3) * T(4), ShapeError, ["multiply:", "(3,)", "(4,)"]),
    (
        "where-broadcast",
        lambda: fx.where(Mask(True, False, True), T(4), T(3)),
        ShapeError,
        ["where:", "(3,)", "(4,)", "condition"],
    ),
    ("clip-broadcast", lambda: fx.clip(T(3), T(4), None), ShapeError, ["clip:", "(3,)", "(4,)"]),
    (
        "broadcast_to",
        lambda: fx.broadcast_to(T(3), (4,)),
        ShapeError,
        ["broadcast_to", "(3,)", "(4,)"],
    ),
    (
        "broadcast_to-rank",
        lambda: fx.broadcast_to(T(2, 3), (3,)),
        ShapeError,
        ["broadcast_to", "(2, 3)", "(3,)"],
    ),
    (
        "broadcast_arrays",
        lambda: fx.broadcast_arrays(T(3), T(4)),
        ShapeError,
        ["broadcast_arrays", "(3,)", "(4,)"],
    ),
    # --- matmul family
    (
        "matmul-inner",
        lambda: fx.matmul(T(2, 3), T(4, 5)),
        ShapeError,
        ["matmul", "(2, 3)", "(4, 5)", "inner"],
    ),
    ("matmul-vectors", lambda: fx.matmul(T(3), T(4)), ShapeError, ["matmul", "(3,)", "(4,)"]),
    ("matmul-matrix-vector", lambda: T(2, 3) @ T(2), ShapeError, ["matmul", "(2, 3)", "(2,)"]),
    (
        "matmul-batch",
        lambda: fx.matmul(T(2, 3, 4), T(3, 4, 5)),
        ShapeError,
        ["matmul", "(2,)", "(3,)", "batch"],
    ),
    ("matmul-0d", lambda: fx.matmul(T(), T(3)), ShapeError, ["matmul", "()", "(3,)", "multiply"]),
    (
        "matmul-bool",
        lambda: fx.matmul(T(2, 2, dtype=bool), T(2, 2, dtype=bool)),
        DTypeError,
        ["matmul", "bool"],
    ),
    ("dot-inner", lambda: fx.dot(T(3), T(4)), ShapeError, ["dot", "(3,)", "(4,)"]),
    (
        "tensordot-sizes",
        lambda: fx.tensordot(T(2, 3), T(4, 5), axes=1),
        ShapeError,
        ["tensordot", "(2, 3)", "(4, 5)"],
    ),
    (
        "tensordot-axes-int",
        lambda: fx.tensordot(T(2, 3), T(3, 4), axes=3),
        AxisError,
        ["tensordot", "axes=3", "(2, 3)"],
    ),
    (
        "tensordot-axis-range",
        lambda: fx.tensordot(T(2, 3), T(3, 4), axes=([2], [0])),
        AxisError,
        ["tensordot", "axis 2"],
    ),
    # --- einsum
    (
        "einsum-operand-count",
        lambda: fx.einsum("ij,jk->ik", T(2, 3)),
        InvalidArgumentError,
        ["einsum", "2 operands", "1"],
    ),
    (
        "einsum-rank",
        lambda: fx.einsum("ij->i", T(2, 3, 4)),
        ShapeError,
        ["einsum", "'ij'", "(2, 3, 4)"],
    ),
    (
        "einsum-sizes",
        lambda: fx.einsum("ij,jk->ik", T(2, 3), T(4, 5)),
        ShapeError,
        ["einsum", "'j'", "3", "4"],
    ),
    (
        "einsum-unknown-output",
        lambda: fx.einsum("ij->k", T(2, 3)),
        InvalidArgumentError,
        ["einsum", "'k'"],
    ),
    (
        "einsum-repeated-output",
        lambda: fx.einsum("ij->ii", T(2, 3)),
        InvalidArgumentError,
        ["einsum", "'i'", "twice"],
    ),
    (
        "einsum-diagonal",
        lambda: fx.einsum("ii->i", T(2, 3)),
        ShapeError,
        ["einsum", "'i'", "'ii'", "[2, 3]"],
    ),
    (
        "einsum-subscript",
        lambda: fx.einsum("i.j", T(2, 3)),
        InvalidArgumentError,
        ["einsum", "'i.j'", "letters", "'...'"],
    ),
    # --- reshape and friends
    (
        "reshape-size",
        lambda: fx.reshape(T(2, 3), (4, 2)),
        ShapeError,
        ["reshape", "(2, 3)", "(4, 2)", "6", "8"],
    ),
    (
        "reshape-infer",
        lambda: fx.reshape(T(2, 3), (-1, 4)),
        ShapeError,
        ["reshape", "(2, 3)", "(-1, 4)"],
    ),
    (
        "reshape-two-infer",
        lambda: fx.reshape(T(2, 3), (-1, -1)),
        ShapeError,
        ["reshape", "(-1, -1)"],
    ),
    (
        "reshape-negative",
        lambda: fx.reshape(T(2, 3), (-2, -3)),
        ShapeError,
        ["reshape", "(-2, -3)", "negative"],
    ),
    (
        "reshape-float",
        lambda: fx.reshape(T(2, 2), (2.0, 2)),
        ArgumentTypeError,
        ["reshape", "shape", "2.0", "ints"],
    ),
    ("method-reshape", lambda: T(2, 3).reshape(5), ShapeError, ["reshape", "(2, 3)", "(5,)"]),
    (
        "squeeze-not-1",
        lambda: fx.squeeze(T(2, 3), axis=0),
        ShapeError,
        ["squeeze", "axis 0", "(2, 3)", "2"],
    ),
    ("squeeze-axis", lambda: fx.squeeze(T(1, 3), axis=2), AxisError, ["squeeze", "axis 2", "2"]),
    ("expand_dims-axis", lambda: fx.expand_dims(T(2, 3), 3), AxisError, ["expand_dims", "axis 3"]),
    (
        "expand_dims-repeated",
        lambda: fx.expand_dims(T(2, 3), (0, 0)),
        AxisError,
        ["expand_dims", "repeated", "(0, 0)"],
    ),
    ("flatten-axis", lambda: fx.flatten(T(2, 3), 3), AxisError, ["flatten", "start_dim 3"]),
    (
        "flatten-order",
        lambda: fx.flatten(T(2, 3, 4), 2, 1),
        AxisError,
        ["flatten", "start_dim 2", "end_dim 1", "(2, 3, 4)"],
    ),
    (
        "transpose-short",
        lambda: fx.transpose(T(2, 3, 4), (0, 1)),
        AxisError,
        ["transpose", "(0, 1)", "(2, 3, 4)", "permutation"],
    ),
    (
        "transpose-repeated",
        lambda: fx.transpose(T(2, 3, 4), (0, 0, 1)),
        AxisError,
        ["transpose", "(0, 0, 1)", "permutation"],
    ),
    (
        "transpose-range",
        lambda: fx.transpose(T(2, 3), (0, 2)),
        AxisError,
        ["transpose", "(0, 2)", "(2, 3)"],
    ),
    ("moveaxis-axis", lambda: fx.moveaxis(T(2, 3), 0, 2), AxisError, ["moveaxis", "destination 2"]),
    (
        "moveaxis-counts",
        lambda: fx.moveaxis(T(2, 3), (0, 1), (1,)),
        AxisError,
        ["moveaxis", "2 source", "1 destination"],
    ),
    ("swapaxes-axis", lambda: fx.swapaxes(T(2, 3), 0, 2), AxisError, ["swapaxes", "axis2 2"]),
    ("flip-axis", lambda: fx.flip(T(2, 3), 2), AxisError, ["flip", "axis 2"]),
    ("repeat-axis", lambda: fx.repeat(T(2, 3), 2, axis=2), AxisError, ["repeat", "axis 2"]),
    ("repeat-negative", lambda: fx.repeat(T(2, 3), -1), InvalidArgumentError, ["repeat", "-1"]),
    (
        "repeat-counts",
        lambda: fx.repeat(T(2, 3), [1, 2, 1], axis=0),
        ShapeError,
        ["repeat", "3 counts", "(2, 3)"],
    ),
    ("tile-negative", lambda: fx.tile(T(2, 3), -1), ShapeError, ["tile", "reps", "-1"]),
    (
        "slice_tensor-past-end",
        lambda: fx.slice_tensor(T(4), (3,), (2,)),
        IndexOutOfRangeError,
        ["slice_tensor", "start 3", "size 2", "(4,)"],
    ),
    (
        "slice_tensor-negative",
        lambda: fx.slice_tensor(T(4), (-1,), (1,)),
        IndexOutOfRangeError,
        ["slice_tensor", "start -1"],
    ),
    (
        "slice_tensor-rank",
        lambda: fx.slice_tensor(T(4, 3), (0,), (2,)),
        ShapeError,
        ["slice_tensor", "(4, 3)"],
    ),
    # --- join and split
    (
        "concatenate-shapes",
        lambda: fx.concatenate([T(2, 3), T(2, 4)], axis=0),
        ShapeError,
        ["concatenate", "(2, 3)", "(2, 4)", "axis 0"],
    ),
    (
        "concatenate-ranks",
        lambda: fx.concatenate([T(2, 3), T(3)]),
        ShapeError,
        ["concatenate", "(2, 3)", "(3,)"],
    ),
    (
        "concatenate-axis",
        lambda: fx.concatenate([T(2, 3), T(2, 3)], axis=2),
        AxisError,
        ["concatenate", "axis 2"],
    ),
    (
        "concatenate-0d",
        lambda: fx.concatenate([T(), T()]),
        ShapeError,
        ["concatenate", "0-d", "stack"],
    ),
    ("concatenate-none", lambda: fx.concatenate([]), InvalidArgumentError, ["concatenate"]),
    (
        "stack-shapes",
        lambda: fx.stack([T(2, 3), T(3, 2)]),
        ShapeError,
        ["stack", "(2, 3)", "(3, 2)"],
    ),
    ("stack-axis", lambda: fx.stack([T(2), T(2)], axis=3), AxisError, ["stack", "axis 3"]),
    ("stack-none", lambda: fx.stack([]), InvalidArgumentError, ["stack"]),
    (
        "split-unequal",
        lambda: fx.split(T(5, 2), 2),
        ShapeError,
        ["split", "size 5", "2 equal sections"],
    ),
    ("split-zero", lambda: fx.split(T(4), 0), ShapeError, ["split", "0 equal sections"]),
    ("split-axis", lambda: fx.split(T(4), 2, axis=1), AxisError, ["split", "axis 1"]),
    (
        "split-float-indices",
        lambda: fx.split(T(4), [1.5]),
        ArgumentTypeError,
        ["split", "indices_or_sections", "ints", "1.5"],
    ),
    (
        "power-int-negative",
        lambda: fx.power(Ints(2, 3), -1),
        DTypeError,
        ["power", "int64", "-1", "float"],
    ),
    ("round-bool", lambda: fx.round(Mask(True)), DTypeError, ["round", "bool", "astype"]),
    ("chunk-zero", lambda: fx.chunk(T(4), 0), InvalidArgumentError, ["chunk", "0"]),
    (
        "pad-widths",
        lambda: fx.pad(T(2, 3), ((1, 1), (1, 1), (1, 1))),
        ShapeError,
        ["pad", "((1, 1), (1, 1), (1, 1))", "2 dimensions"],
    ),
    ("pad-negative", lambda: fx.pad(T(2, 3), -1), ShapeError, ["pad", "(2, 3)", "non-negative"]),
    (
        "pad-mode",
        lambda: fx.pad(T(2, 3), 1, mode="reflect"),
        InvalidArgumentError,
        ["pad", "'reflect'"],
    ),
    # --- reductions: bad and repeated axes, empty axes without identity
    *[
        (
            f"{op}-axis",
            lambda op=op: getattr(fx, op)(T(2, 3), axis=2),
            AxisError,
            [f"{op}:", "axis 2", "2 dimension"],
        )
        for op in [
            "sum",
            "mean",
            "var",
            "std",
            "max",
            "min",
            "prod",
            "argmax",
            "argmin",
            "logsumexp",
            "all",
            "any",
            "cumsum",
            "softmax",
            "log_softmax",
        ]  # fmt: skip
    ],
    *[
        (
            f"{op}-repeated-axis",
            lambda op=op: getattr(fx, op)(T(2, 3), axis=(1, -1)),
            AxisError,
            [f"{op}:", "repeated", "(1, -1)"],
        )
        for op in ["sum", "mean", "var", "std", "max", "min", "prod", "logsumexp", "all", "any"]
    ],
    (
        "sum-axis-and-axes",
        lambda: fx.sum(T(2, 3), axis=0, axes=1),
        InvalidArgumentError,
        ["sum", "axis", "axes"],
    ),
    ("max-empty", lambda: fx.max(T(0, 3), axis=0), ShapeError, ["max:", "empty", "(0, 3)"]),
    ("min-empty", lambda: fx.min(T(3, 0)), ShapeError, ["min:", "empty", "(3, 0)"]),
    ("argmax-empty", lambda: fx.argmax(T(0)), ShapeError, ["argmax:", "empty", "(0,)"]),
    ("argmin-empty", lambda: fx.argmin(T(2, 0), axis=1), ShapeError, ["argmin:", "empty"]),
    # --- making tensors, dtypes
    (
        "tensor-ragged",
        lambda: fx.tensor([[1, 2], [3]]),
        InvalidArgumentError,
        ["tensor", "ragged"],
    ),
    (
        "tensor-ragged-deep",
        lambda: fx.tensor([[[1.0]], [[2.0, 3.0]]]),
        InvalidArgumentError,
        ["tensor", "ragged"],
    ),
    (
        "tensor-objects",
        lambda: fx.tensor([1, None]),
        InvalidArgumentError,
        ["tensor", "non-numeric"],
    ),
    ("tensor-strings", lambda: fx.tensor(["a", "b"]), DTypeError, ["not supported", "<U1"]),
    (
        "tensor-datetime",
        lambda: fx.tensor(np.ones(2, "datetime64[s]")),
        DTypeError,
        ["<M8[s]", "not supported", "float32"],
    ),
    (
        "tensor-dtype-name",
        lambda: fx.tensor([1.0], dtype="float128"),
        DTypeError,
        ["'float128'", "not supported"],
    ),
    ("zeros-dtype", lambda: fx.zeros(2, dtype="float128"), DTypeError, ["'float128'"]),
    ("astype-dtype", lambda: fx.astype(T(2), "int128"), DTypeError, ["astype", "'int128'"]),
    ("method-astype-dtype", lambda: T(2).astype("float8"), DTypeError, ["astype", "'float8'"]),
    (
        "bitwise_and-float",
        lambda: fx.bitwise_and(T(3), T(3)),
        DTypeError,
        ["bitwise_and", "float32", "logical_and"],
    ),
    ("bitwise_or-float", lambda: T(3) | T(3), DTypeError, ["bitwise_or", "float32"]),
    ("invert-float", lambda: fx.invert(T(3)), DTypeError, ["invert", "float32", "logical_not"]),
    (
        "gelu-approximate",
        lambda: fx.gelu(T(3), approximate="fast"),
        InvalidArgumentError,
        ["gelu", "'fast'"],
    ),
    # --- indexing
    (
        "getitem-int",
        lambda: T(3, 4)[3],
        IndexOutOfRangeError,
        ["getitem", "index 3", "axis 0", "size 3"],
    ),
    (
        "getitem-negative-int",
        lambda: T(3, 4)[:, -5],
        IndexOutOfRangeError,
        ["getitem", "-5", "axis 1", "size 4"],
    ),
    (
        "getitem-too-many",
        lambda: T(3, 4)[0, 0, 0],
        IndexOutOfRangeError,
        ["getitem", "(3, 4)", "too many"],
    ),
    (
        "getitem-array",
        lambda: T(3, 4)[np.array([0, 3])],
        IndexOutOfRangeError,
        ["getitem", "index 3", "size 3"],
    ),
    (
        "getitem-array-negative",
        lambda: T(3, 4)[:, [-5]],
        IndexOutOfRangeError,
        ["getitem", "-5", "size 4"],
    ),
    (
        "getitem-tensor-index",
        lambda: T(3, 4)[Ints(0, 7)],
        IndexOutOfRangeError,
        ["getitem", "index 7", "size 3"],
    ),
    (
        "getitem-mask-shape",
        lambda: T(3, 4)[np.array([True, False])],
        IndexOutOfRangeError,
        ["getitem", "(2,)", "(3, 4)", "boolean"],
    ),
    (
        "getitem-mask-shape-2d",
        lambda: T(3, 4)[np.ones((3, 3), bool)],
        IndexOutOfRangeError,
        ["getitem", "(3, 3)", "(3, 4)"],
    ),
    (
        "getitem-index-broadcast",
        lambda: T(3, 4)[[0, 1], [0, 1, 2]],
        ShapeError,
        ["getitem", "(2,)", "(3,)"],
    ),
    ("getitem-float", lambda: T(3, 4)[1.5], InvalidArgumentError, ["getitem", "1.5"]),
    (
        "getitem-float-array",
        lambda: T(3, 4)[np.array([0.5])],
        InvalidArgumentError,
        ["getitem", "float64"],
    ),
    (
        "getitem-two-ellipses",
        lambda: T(3, 4)[..., ...],
        InvalidArgumentError,
        ["getitem", "ellipsis"],
    ),
    ("getitem-string", lambda: T(3, 4)["a"], InvalidArgumentError, ["getitem", "'a'"]),
    (
        "take-flat",
        lambda: fx.take(T(3, 4), Ints(0, 12)),
        IndexOutOfRangeError,
        ["take", "index 12", "size 12"],
    ),
    (
        "take-axis",
        lambda: fx.take(T(3, 4), Ints(4), axis=1),
        IndexOutOfRangeError,
        ["take", "index 4", "axis 1", "size 4"],
    ),
    ("take-negative", lambda: fx.take(T(3, 4), Ints(-13)), IndexOutOfRangeError, ["take", "-13"]),
    (
        "take-float-indices",
        lambda: fx.take(T(3, 4), T(2)),
        InvalidArgumentError,
        ["take", "float32"],
    ),
    ("take-bad-axis", lambda: fx.take(T(3, 4), Ints(0), axis=2), AxisError, ["take", "axis 2"]),
    (
        "take_along_axis-range",
        lambda: fx.take_along_axis(T(3, 4), IntArray([[4]] * 3), axis=1),
        IndexOutOfRangeError,
        ["take_along_axis", "index 4", "size 4"],
    ),
    (
        "take_along_axis-rank",
        lambda: fx.take_along_axis(T(3, 4), Ints(0, 1), axis=1),
        ShapeError,
        ["take_along_axis", "(2,)", "(3, 4)"],
    ),
    (
        "take_along_axis-shape",
        lambda: fx.take_along_axis(T(3, 4), IntArray(np.zeros((2, 4))), axis=1),
        ShapeError,
        ["take_along_axis", "3", "2"],
    ),
    (
        "take_along_axis-float",
        lambda: fx.take_along_axis(T(3, 4), T(3, 1), axis=1),
        InvalidArgumentError,
        ["take_along_axis", "float32"],
    ),
    (
        "take_along_axis-axis",
        lambda: fx.take_along_axis(T(3, 4), IntArray([[0]]), axis=2),
        AxisError,
        ["take_along_axis", "axis 2"],
    ),
    (
        "gather-range",
        lambda: fx.gather(T(3, 4), 0, IntArray([[3, 0, 0, 0]])),
        IndexOutOfRangeError,
        ["gather", "index 3", "size 3"],
    ),
    ("gather-dim", lambda: fx.gather(T(3, 4), 2, IntArray([[0]])), AxisError, ["gather", "dim 2"]),
    (
        "scatter_add-range",
        lambda: fx.scatter_add(T(3, 4), 1, IntArray([[4]] * 3), T(3, 1)),
        IndexOutOfRangeError,
        ["scatter_add", "index 4", "size 4"],
    ),
    (
        "scatter_add-src",
        lambda: fx.scatter_add(T(3, 4), 1, IntArray(np.zeros((3, 2))), T(3, 1)),
        ShapeError,
        ["scatter_add", "(3, 1)", "(3, 2)"],
    ),
    (
        "one_hot-range",
        lambda: fx.one_hot(Ints(0, 3), 3),
        IndexOutOfRangeError,
        ["one_hot", "index 3", "num_classes=3"],
    ),
    (
        "one_hot-negative",
        lambda: fx.one_hot(Ints(-1), 3),
        IndexOutOfRangeError,
        ["one_hot", "index -1"],
    ),
    ("one_hot-float", lambda: fx.one_hot(T(3), 3), DTypeError, ["one_hot", "float32"]),
]


def _ids():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return ids


@pytest.mark.parametrize("name, call, error, words", CASES, ids=_ids())
def test_bad_input_raises_named_error(name, call, error, words):
    with pytest.raises(FluxionError) as info:
        call()
    e = info.value
    assert type(e) is error, f"{name}: raised {type(e).__name__}: {e}; expected {error.__name__}"
    assert isinstance(e, BUILTIN[error]), f"{error.__name__} must subclass {BUILTIN[error]}"
    message = str(e)
    missing = [w for w in words if w not in message]
    assert not missing, f"{name}: message {message!r} lacks {missing}"


def test_enough_bad_inputs():
    assert len(CASES) >= 60


@pytest.mark.parametrize("error", sorted(BUILTIN, key=lambda e: e.__name__))
def test_error_types_subclass_builtins(error):
    assert issubclass(error, FluxionError)
    assert issubclass(error, BUILTIN[error])
