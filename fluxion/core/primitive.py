"""The primitive registry.

A primitive is declared once, with every rule beside it (STYLE.md point 1):

* ``impl(xp, *arrays, **params)``: the kernel, written against the array module ``xp``.
* ``abstract(*avals, **params)``: shape and dtype of the result(s) from those of the
  inputs; raises a fluxion error naming the op, the argument and the fix.
* ``jvp(primals, tangents, **params) -> (out, tangent_out)``, written with fluxion ops.
* ``vjp(ct, primals, outputs, **params) -> tuple of cotangents`` (None where no
  gradient flows), written with fluxion ops, so rules can be differentiated again.
* ``batch(args, dims, **params) -> (out, out_dim)``: the vmap rule.
* ``emit`` (optional): how codegen writes it, a format string over ``{args}`` (the inputs'
  names) and ``{out}`` (``, out=buffer`` when a dead input's buffer can be reused); without
  it, codegen calls ``impl`` with the params bound.
* ``c_expr`` (optional, elementwise ops): the op as a C expression over its inputs ``{0}``,
  ``{1}``... (names of C values of the inputs' dtype) and its params, for the native kernels
  of fused groups (``compiler/native/emit.py``); a group with an op lacking it runs on NumPy.
* ``elementwise``: each output element depends only on the inputs' elements at the same
  (broadcast) position, so the op can run on any slice of its operands (the fusion pass
  groups such ops and runs them a cache-sized block at a time).

A rule may be the explicit marker ``NOT_DIFFERENTIABLE`` (piecewise constant or
integer-valued outputs: gradients are zero / absent) but never simply missing; a
registry test checks that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class ShapedArray(NamedTuple):
    """The abstract value of a tensor: what rules know before any data exists."""

    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


NOT_DIFFERENTIABLE = _Marker("NOT_DIFFERENTIABLE")

PRIMITIVES: dict[str, Primitive] = {}


class Primitive:
    """One primitive with all of its rules; see the module docstring."""

    __slots__ = (
        "name",
        "impl",
        "reference",
        "abstract",
        "jvp",
        "vjp",
        "batch",
        "multiple_results",
        "emit",
        "elementwise",
        "c_expr",
    )

    def __init__(
        self,
        name: str,
        *,
        impl: Callable,
        abstract: Callable,
        jvp,
        vjp,
        batch: Callable,
        multiple_results: bool = False,
        emit: str | None = None,
        elementwise: bool = False,
        c_expr: str | None = None,
    ):
        if name in PRIMITIVES:
            raise ValueError(f"primitive {name!r} is defined twice")
        # ``impl`` is the kernel that runs: the backend's (backends/), else ``reference``
        self.name, self.impl, self.reference, self.abstract = name, impl, impl, abstract
        self.jvp, self.vjp, self.batch = jvp, vjp, batch
        self.multiple_results, self.emit = multiple_results, emit
        self.elementwise, self.c_expr = elementwise, c_expr
        PRIMITIVES[name] = self

    @property
    def differentiable(self) -> bool:
        return self.vjp is not NOT_DIFFERENTIABLE

    def __repr__(self) -> str:
        return self.name
