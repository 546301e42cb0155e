"""The one table of ops every op test is generated from (STYLE.md point 7).

Each ``OpCase`` names a public fluxion op, its NumPy reference, and how to make
samples. A ``Sample`` holds NumPy arrays (the tensor arguments, as float64 for the
precise checks; tests cast them to the dtype under test) plus static keyword
arguments. Test modules consume the table:

* ``test_ops_forward.py``: forward vs NumPy in float64 and float32, dtypes vs the
  promotion table, and the meta-test that every public op has an entry.
* ``test_ops_autodiff.py``: jvp vs central differences, vjp by the inner-product
  identity, second order, backward() == grad, for ``differentiable`` cases.
* ``test_ops_vmap.py``: vmap vs a Python loop for batch sizes 0, 1, 3, every axis.
* (later) jit vs eager.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import fluxion as fx


@dataclass
class Sample:
    args: tuple  # NumPy arrays, one per tensor argument of the op
    kwargs: dict = field(default_factory=dict)  # static (non-tensor) arguments

    def __repr__(self) -> str:
        shapes = ", ".join(str(np.shape(a)) for a in self.args)
        return f"Sample({shapes}, {self.kwargs})"


@dataclass
class OpCase:
    name: str  # the public name: fx.<name>
    fx_fn: Callable  # (*tensors, **kwargs) -> Tensor (or tuple/list of Tensors)
    np_fn: Callable  # (*ndarrays, **kwargs) -> ndarray (or tuple/list), the reference
    samples: Callable[[np.random.Generator], list[Sample]]
    differentiable: bool = True  # False: piecewise constant or integer output
    diff_args: tuple | None = None  # indices of args to differentiate (None: all float args)
    domain: str = "real"  # "real", "positive", "unit" ((-1, 1)), "nonzero", "int"
    dtypes: tuple = ("float64", "float32")  # dtypes the forward test runs in
    rtol: dict = field(default_factory=lambda: {"float64": 1e-12, "float32": 1e-5})
    batchable: bool = True
    notes: str = ""


def sample_array(rng, shape, domain="real") -> np.ndarray:
    """A float64 array of ``shape`` away from the kinks/poles of ``domain``."""
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "unit":
        return rng.uniform(-0.9, 0.9, shape)
    if domain == "nonzero":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    if domain == "int":
        return rng.integers(-5, 6, shape).astype(np.int64)
    return rng.normal(size=shape)


def unary_samples(domain="real"):
    """0-d, vector, matrix, size-0 and a non-contiguous (transposed) view."""

    def make(rng):
        return [
            Sample((sample_array(rng, (), domain),)),
            Sample((sample_array(rng, (5,), domain),)),
            Sample((sample_array(rng, (3, 4), domain),)),
            Sample((sample_array(rng, (0, 3), domain),)),
            Sample((sample_array(rng, (4, 3), domain).T,)),
        ]

    return make


def binary_samples(domain_x="real", domain_y="real"):
    """Equal shapes, scalar with tensor, and the broadcasting pairs."""
    pairs = [
        ((), ()),
        ((4,), (4,)),
        ((3, 1), (1, 4)),
        ((2, 3, 4), (4,)),
        ((3, 4), ()),
        ((0, 2), (2,)),
    ]

    def make(rng):
        return [
            Sample((sample_array(rng, a, domain_x), sample_array(rng, b, domain_y)))
            for a, b in pairs
        ]

    return make


OPS: list[OpCase] = [
    OpCase("exp", fx.exp, np.exp, unary_samples()),
    OpCase("log", fx.log, np.log, unary_samples("positive"), domain="positive"),
    OpCase("add", fx.add, np.add, binary_samples()),
    OpCase("multiply", fx.multiply, np.multiply, binary_samples()),
    OpCase(
        "sum",
        fx.sum,
        np.sum,
        lambda rng: [
            Sample((rng.normal(size=(3, 4)),), {"axis": 0}),
            Sample((rng.normal(size=(3, 4)),), {"axis": -1, "keepdims": True}),
            Sample((rng.normal(size=(2, 3, 4)),), {"axis": (0, 2)}),
            Sample((rng.normal(size=()),), {}),
            Sample((rng.normal(size=(0, 4)),), {"axis": 0}),
        ],
    ),
]
