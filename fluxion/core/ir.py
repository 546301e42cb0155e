"""The IR: a graph of equations over typed variables.

A ``Graph`` is a value: it prints (``pp_graph``), type-checks (``typecheck``) and runs
(``eval_graph``, through ``bind``, so running a graph can itself be differentiated,
batched or traced again).

    { lambda (a:f32[5]:cpu(0)) ;
      let b:f32[5]:cpu(0) = mul a 2.0
          c:f32[5]:cpu(0) = mul b a
          d:f32[]:cpu(0) = reduce_sum[axes=(0,)] c
      in d }
"""

from __future__ import annotations

import numpy as np

from fluxion.core.dtypes import SHORT_NAMES
from fluxion.core.primitive import ShapedArray
from fluxion.core.trace import bind
from fluxion.errors import FluxionError


class Var:
    """A value produced by one equation (or a graph input), known by its aval only."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval


class Literal:
    """A constant inlined into the graph (a scalar or an array built while tracing)."""

    __slots__ = ("value", "aval")

    def __init__(self, value: np.ndarray):
        self.value = value
        self.aval = ShapedArray(value.shape, value.dtype)


class Eqn:
    __slots__ = ("prim", "inputs", "params", "outputs")

    def __init__(self, prim, inputs, params, outputs):
        self.prim, self.inputs, self.params, self.outputs = (
            prim,
            list(inputs),
            dict(params),
            list(outputs),
        )


class Graph:
    __slots__ = ("invars", "eqns", "outvars", "compiled", "derived")

    def __init__(self, invars, eqns, outvars):
        self.invars, self.eqns, self.outvars = list(invars), list(eqns), list(outvars)
        self.compiled = None  # the generated function, made on first run (control-flow bodies)
        # graphs derived from this one by a transform's rule (its jvp, vjp, a vmap), made once:
        # a body or a compiled call met again in a loop is not traced again
        self.derived: dict = {}

    @property
    def in_avals(self):
        return [v.aval for v in self.invars]

    @property
    def out_avals(self):
        return [v.aval for v in self.outvars]

    def __repr__(self) -> str:
        return pp_graph(self)


class IRTypeError(FluxionError, TypeError):
    """A graph whose equations disagree with their primitives' shape/dtype rules."""


def aval_string(aval) -> str:
    return f"{SHORT_NAMES[np.dtype(aval.dtype)]}[{','.join(map(str, aval.shape))}]:cpu(0)"


def _names():
    letters = "abcdefghijklmnopqrstuvwxyz"
    n = 0
    while True:
        name, k = "", n
        while True:
            name = letters[k % 26] + name
            k = k // 26 - 1
            if k < 0:
                break
        yield name
        n += 1


def _param_string(value, indent) -> str:
    if isinstance(value, Graph):
        return "\n" + pp_graph(value, indent + 4)
    if isinstance(value, tuple) and value and all(isinstance(g, Graph) for g in value):
        return "(" + ",".join("\n" + pp_graph(g, indent + 4) for g in value) + ")"
    if isinstance(value, np.dtype):
        return SHORT_NAMES.get(value, str(value))
    return repr(value)


def pp_graph(graph: Graph, indent: int = 0) -> str:
    """The graph in the seed-001 format."""
    names: dict[int, str] = {}
    fresh = _names()

    def name(v):
        if isinstance(v, Literal):
            return str(v.value[()]) if v.value.ndim == 0 else f"const{aval_string(v.aval)}"
        if id(v) not in names:
            names[id(v)] = next(fresh)
        return names[id(v)]

    pad = " " * indent
    ins = " ".join(f"{name(v)}:{aval_string(v.aval)}" for v in graph.invars)
    lines = [f"{pad}{{ lambda ({ins}) ;", f"{pad}let"]
    for eqn in graph.eqns:
        outs = " ".join(f"{name(v)}:{aval_string(v.aval)}" for v in eqn.outputs)
        params = ""
        if eqn.params:
            params = (
                "["
                + ", ".join(f"{k}={_param_string(v, indent)}" for k, v in eqn.params.items())
                + "]"
            )
        args = " ".join(name(v) for v in eqn.inputs)
        lines.append(f"{pad}{outs} = {eqn.prim.name}{params} {args}".rstrip())
    outs = ", ".join(name(v) for v in graph.outvars)
    lines.append(f"{pad}in {outs if len(graph.outvars) == 1 else '(' + outs + ')'} }}")
    return "\n".join(lines)


def typecheck(graph: Graph, checked: dict | None = None, like: Graph | None = None) -> None:
    """Every variable defined once before use; every equation agrees with its shape rule.
    ``checked``: the equations already found to agree with their rules, shared by checks of
    graphs that keep most of them (a pipeline of passes): an equation with the same
    primitive, variables and params is checked once. ``like``: the graph a rewrite started
    from, whose inputs and outputs ``graph`` must keep (shapes and dtypes)."""
    checked = {} if checked is None else checked
    if like is not None:
        for what, got, want in (
            ("input", graph.invars, like.invars),
            ("output", graph.outvars, like.outvars),
        ):
            if [_aval_key(v) for v in got] != [_aval_key(v) for v in want]:
                raise IRTypeError(
                    f"a rewrite changed the graph's {what}s from "
                    f"({', '.join(aval_string(v.aval) for v in want)}) to "
                    f"({', '.join(aval_string(v.aval) for v in got)})"
                )
    defined = {id(v) for v in graph.invars}
    for k, eqn in enumerate(graph.eqns):
        for v in eqn.inputs:
            if isinstance(v, Var) and id(v) not in defined:
                raise IRTypeError(
                    f"equation {k} ({eqn.prim.name}) uses a variable before it is defined"
                )
        for v in eqn.outputs:
            if id(v) in defined:
                raise IRTypeError(f"equation {k} ({eqn.prim.name}) redefines a variable")
            defined.add(id(v))
        key = (eqn.prim, *map(id, eqn.inputs), None, *map(id, eqn.outputs), None)
        key += (*eqn.params, *map(id, eqn.params.values()))
        if key not in checked:
            _check_rule(k, eqn, checked)
            checked[key] = eqn  # holds what the key names, so nothing else takes those ids
    for v in graph.outvars:
        if isinstance(v, Var) and id(v) not in defined:
            raise IRTypeError("a graph output is never defined")


def _aval_key(v) -> tuple:
    return tuple(v.aval.shape), np.dtype(v.aval.dtype)


def _check_rule(k: int, eqn: Eqn, checked: dict) -> None:
    for value in eqn.params.values():
        for sub in value if isinstance(value, tuple) else (value,):
            if isinstance(sub, Graph):
                typecheck(sub, checked)
    avals = eqn.prim.abstract(*[v.aval for v in eqn.inputs], **eqn.params)
    avals = list(avals) if eqn.prim.multiple_results else [avals]
    if len(avals) != len(eqn.outputs):
        raise IRTypeError(
            f"equation {k} ({eqn.prim.name}) has {len(eqn.outputs)} output(s) but the rule gives {len(avals)}"
        )
    for v, want in zip(eqn.outputs, avals):
        if tuple(v.aval.shape) != tuple(want.shape) or np.dtype(v.aval.dtype) != np.dtype(
            want.dtype
        ):
            raise IRTypeError(
                f"equation {k} ({eqn.prim.name}): output is {aval_string(v.aval)} but the rule says "
                f"{aval_string(want)}"
            )


def eval_graph(graph: Graph, *args):
    """Run the graph through ``bind`` (so any active transform sees each equation)."""
    from fluxion.core.tensor import Tensor

    env = {id(v): a for v, a in zip(graph.invars, args)}

    def read(v):
        return Tensor._from_array(v.value) if isinstance(v, Literal) else env[id(v)]

    for eqn in graph.eqns:
        out = bind(eqn.prim, *[read(v) for v in eqn.inputs], **eqn.params)
        for v, o in zip(eqn.outputs, out if eqn.prim.multiple_results else (out,)):
            env[id(v)] = o
    return [read(v) for v in graph.outvars]
