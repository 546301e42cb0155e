"""The fuzzer's op table: each entry is one public fluxion op written three ways.

An ``Op`` has a fluxion template (Python source, formatted with the names of its inputs
``{a} {b} ...`` and its params; the program's printed code is these templates, and what
runs under fluxion is that code), a NumPy float64 function (the forward oracle) and a
PyTorch function (the gradient oracle), and a ``params(rng, *shapes)`` that draws the
op's params for its inputs' shapes, or None where the op does not apply to them. Params
are plain Python values (ints, tuples, lists, slices) whose ``repr`` is code.

Inputs are kept inside smooth domains (``log(a*a + 0.5)``, ``a / (b*b + 1)``) so every
program is differentiable almost everywhere; ties (a max over a broadcast axis, ``a ==
a`` in a ``where``) are drawn on purpose, and fluxion's conventions there are PyTorch's
(a max's gradient is split among equal elements, a sort is stable).
"""

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    template: str  # fluxion source: "{a}", "{b}"... the inputs, "{p}" params by name
    np_fn: Callable  # (*arrays, **params) -> float64 array
    torch_fn: Callable  # (*tensors, **params) -> tensor
    params: Callable = lambda rng, *shapes: {}  # -> dict, or None where it does not apply


def _axis(rng, shape, allow_none=True, allow_tuple=True):
    """An axis of ``shape``: None, an int (negative sometimes) or a tuple (maybe empty)."""
    n = len(shape)
    r = rng.random()
    if allow_none and (n == 0 or r < 0.2):
        return None
    if n == 0:
        return ()
    if allow_tuple and r < 0.45:
        k = int(rng.integers(0, n + 1))
        return tuple(sorted(int(a) for a in rng.choice(n, size=k, replace=False)))
    a = int(rng.integers(0, n))
    return a - n if rng.random() < 0.3 else a


def _one_axis(rng, shape):
    return None if not shape else _axis(rng, shape, allow_none=False, allow_tuple=False)


def _axes_tuple(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,)))


def _t_reduce(fn, x, axis, keepdims):
    """torch's reductions over NumPy's axes (an empty tuple reduces nothing, as NumPy)."""
    axes = _axes_tuple(axis, x.ndim)
    if not axes:
        return x
    return fn(x, dim=axes, keepdim=keepdims)


def _np_erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _np_extreme(fn, identity):
    """NumPy's max or min, also of an empty array over axes that are not (an empty result:
    NumPy refuses those; a reduction over an empty axis stays refused)."""

    def reduce(x, axis=None, keepdims=False):
        axes = _axes_tuple(axis, x.ndim)
        if x.size == 0 and all(x.shape[a] > 0 for a in axes):
            return fn(x, axis=axis, keepdims=keepdims, initial=identity)
        return fn(x, axis=axis, keepdims=keepdims)

    return reduce


_np_max, _np_min = _np_extreme(np.max, -np.inf), _np_extreme(np.min, np.inf)


def _np_softmax(x, axis):
    e = np.exp(x - _np_max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _np_gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + _np_erf(x / math.sqrt(2)))


def _np_layer_norm(x, normalized_shape):
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.var(x, axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5)


def _np_sdpa(q, k, v, is_causal):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if is_causal:
        L, S = s.shape[-2:]
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    return _np_softmax(s, -1) @ v


def _np_logsumexp(x, axis, keepdims):
    m = _np_max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=_axes_tuple(axis, x.ndim))


def _np_cross_entropy(x, target):
    logp = x - _np_logsumexp(x, 1, True)
    return -np.mean(logp[np.arange(len(target)), target])


def _t_index(x, index):
    """NumPy's basic indexing (negative steps, one int list, None, True) in torch ops."""
    dim = 0
    for item in index:
        if item is None or item is True:
            x = x.unsqueeze(dim)
            dim += 1
        elif isinstance(item, int):
            x = x.select(dim, item)
        else:
            n = x.shape[dim]
            picked = np.arange(n)[item] if isinstance(item, slice) else np.arange(n)[item]
            x = x.index_select(dim, torch.as_tensor(picked, dtype=torch.long))
            dim += 1
    return x


def _t_at(x, index, value, add):
    out = x.clone()
    if add:
        out[index] = out[index] + value
    else:
        out[index] = value
    return out


def _np_at(x, index, value, add):
    out = x.copy()
    if add:
        out[index] = out[index] + value
    else:
        out[index] = value
    return out


def _np_scatter_add(x, dim, index, src):
    out = x.copy()
    index = np.asarray(index, dtype=np.int64)
    where = list(np.indices(index.shape, sparse=True))
    where[dim] = index
    np.add.at(out, tuple(where), src[tuple(slice(0, n) for n in index.shape)])
    return out


def _np_gather(x, dim, index):
    index = np.asarray(index, dtype=np.int64)
    where = list(np.indices(index.shape, sparse=True))
    where[dim] = index
    return x[tuple(where)]


def _t_pad(x, pad_width):
    flat = [n for lo_hi in reversed(pad_width) for n in lo_hi]
    return F.pad(x, flat) if flat else x


_COMPARE = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _np_flatten(a, start, end):
    if a.ndim == 0:
        return a.reshape(1)
    return a.reshape(a.shape[:start] + (math.prod(a.shape[start : end + 1]),) + a.shape[end + 1 :])


# --------------------------------------------------------------------------- params


def _no_params(rng, *shapes):
    return {}


def _broadcast(*shapes):
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return None
    return {}


def _reduce_params(rng, shape):
    return {"axis": _axis(rng, shape), "keepdims": bool(rng.random() < 0.4)}


def _axis_params(rng, shape):
    return None if not shape else {"axis": _one_axis(rng, shape)}


def _gelu_params(rng, shape):
    return {"approximate": str(rng.choice(["none", "tanh"]))}


def _clip_params(rng, shape):
    lo = round(float(rng.uniform(-1.5, 0.0)), 2)
    return {"lo": lo, "hi": round(lo + float(rng.uniform(0.1, 2.0)), 2)}


def _scalar_params(rng, *shapes):
    return {"c": round(float(rng.choice([-1, 1]) * rng.uniform(0.3, 2.0)), 2)}


def _where_params(rng, *shapes):
    if _broadcast(*shapes) is None:
        return None
    return {"cmp": str(rng.choice(["<", ">", "<=", ">=", "==", "!="]))}


def _sort_params(rng, shape):
    return (
        None
        if not shape
        else {"axis": _one_axis(rng, shape), "descending": bool(rng.random() < 0.5)}
    )


def _arg_take_params(rng, a, b):
    return None if a != b or not a else {"axis": _one_axis(rng, a)}


def _cumsum_params(rng, shape):
    return {"axis": None if not shape or rng.random() < 0.2 else _one_axis(rng, shape)}


def _layer_norm_params(rng, shape):
    if not shape:
        return None
    k = int(rng.integers(1, len(shape) + 1))
    return {"normalized_shape": tuple(shape[-k:])}


def _factor(rng, n, parts):
    """``n`` as a product of ``parts`` ints, drawn at random (1s allowed)."""
    out = [1] * parts
    if parts == 0:
        return out
    if n == 0:
        out[int(rng.integers(0, parts))] = 0
        return out
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
            out[int(rng.integers(0, parts))] *= p
    out[int(rng.integers(0, parts))] *= n
    return out


def _reshape_params(rng, shape):
    size = math.prod(shape)
    new = _factor(rng, size, int(rng.integers(0, 4)) if size == 1 else int(rng.integers(1, 4)))
    if size > 0 and new and rng.random() < 0.3:
        new[int(rng.integers(0, len(new)))] = -1
    return {"shape": tuple(new)}


def _flatten_params(rng, shape):
    if len(shape) < 1:
        return {"start": 0, "end": -1}
    start = int(rng.integers(0, len(shape)))
    return {"start": start, "end": int(rng.integers(start, len(shape)))}


def _transpose_params(rng, shape):
    return {"perm": tuple(int(a) for a in rng.permutation(len(shape)))}


def _moveaxis_params(rng, shape):
    if not shape:
        return None
    n = len(shape)
    return {"src": int(rng.integers(0, n)), "dst": int(rng.integers(-n, n))}


def _broadcast_to_params(rng, shape):
    lead = tuple(int(d) for d in rng.choice([1, 2, 3], size=int(rng.integers(0, 3))))
    rest = tuple(int(rng.choice([1, 2, 3])) if d == 1 and rng.random() < 0.7 else d for d in shape)
    return {"shape": lead + rest}


def _expand_dims_params(rng, shape):
    return {"axis": int(rng.integers(-len(shape) - 1, len(shape) + 1))}


def _squeeze_params(rng, shape):
    ones = [i for i, d in enumerate(shape) if d == 1]
    if not ones:
        return None
    if rng.random() < 0.3:
        return {"axis": None}
    return {
        "axis": tuple(
            sorted(
                int(a)
                for a in rng.choice(ones, size=int(rng.integers(1, len(ones) + 1)), replace=False)
            )
        )
    }


def _concat_params(rng, a, b):
    if len(a) != len(b) or not a:
        return None
    axes = [i for i in range(len(a)) if a[:i] + a[i + 1 :] == b[:i] + b[i + 1 :]]
    return None if not axes else {"axis": int(rng.choice(axes))}


def _stack_params(rng, a, b):
    return None if a != b else {"axis": int(rng.integers(-len(a) - 1, len(a) + 1))}


def _slice(rng, n):
    """A slice of an axis of length n: any start/stop, steps of -2..3 (never 0)."""
    step = int(rng.choice([1, 1, 1, 2, 3, -1, -2]))
    start = None if rng.random() < 0.4 else int(rng.integers(-n - 1, n + 2))
    stop = None if rng.random() < 0.4 else int(rng.integers(-n - 1, n + 2))
    return slice(start, stop, step if step != 1 or rng.random() < 0.3 else None)


def _index(rng, shape, basic=False):
    """A NumPy index over every axis of ``shape``: slices and None, with ints, or one int
    list, or True (one kind each, so that NumPy's placing of advanced-index axes never
    comes in); ``basic``: slices of step 1 and ints only."""
    kind = "int" if basic else str(rng.choice(["int", "int", "list", "true"]))
    index = [True] if kind == "true" and rng.random() < 0.3 else []  # also of a 0-d value
    for n in shape:
        if not basic and rng.random() < 0.15:
            index.append(True if kind == "true" and rng.random() < 0.5 else None)
        r = rng.random()
        if r < 0.5 or n == 0 or kind in ("true", "listed"):
            s = _slice(rng, n)
            index.append(slice(s.start, s.stop) if basic else s)
        elif kind == "int":
            index.append(int(rng.integers(-n, n)))
        else:
            kind = "listed"
            index.append([int(i) for i in rng.integers(-n, n, size=int(rng.integers(0, 4)))])
    return tuple(index)


def _getitem_params(rng, shape):
    return {"index": _index(rng, shape)}


def _at_params(rng, a, b):
    index = _index(rng, a, basic=True)
    target = np.empty(a)[index].shape
    while len(b) > len(target) and b[0] == 1:
        b = b[1:]  # NumPy (and .at) take a value with leading ones beyond the target's
    try:
        np.broadcast_to(np.empty(b), target)
    except ValueError:
        return None
    return {"index": index, "add": bool(rng.random() < 0.5)}


def _take_params(rng, shape):
    axis = None if not shape or rng.random() < 0.25 else _one_axis(rng, shape)
    n = math.prod(shape) if axis is None else shape[axis]
    if n == 0:
        return None
    idx_shape = tuple(int(d) for d in rng.integers(0, 4, size=int(rng.integers(0, 3))))
    return {"indices": rng.integers(-n, n, size=idx_shape).tolist(), "axis": axis}


def _gather_params(rng, shape):
    if not shape or 0 in shape:
        return None
    dim = int(rng.integers(0, len(shape)))
    idx_shape = [int(rng.integers(0, d + 1)) for d in shape]
    idx_shape[dim] = int(rng.integers(0, 4))
    return {"dim": dim, "index": rng.integers(0, shape[dim], size=idx_shape).tolist()}


def _scatter_add_params(rng, a, b):
    if len(a) != len(b) or not a or 0 in a:
        return None
    dim = int(rng.integers(0, len(a)))
    if any(bd > ad for i, (ad, bd) in enumerate(zip(a, b)) if i != dim):
        return None
    return {"dim": dim, "index": rng.integers(0, a[dim], size=b).tolist()}


def _pad_params(rng, shape):
    return {"pad_width": tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in shape)}


def _flip_params(rng, shape):
    return {"axis": _axis(rng, shape, allow_tuple=True)}


def _tile_params(rng, shape):
    return {
        "reps": tuple(int(r) for r in rng.integers(1, 3, size=int(rng.integers(0, len(shape) + 2))))
    }


def _repeat_params(rng, shape):
    return {
        "r": int(rng.integers(1, 4)),
        "axis": None if not shape or rng.random() < 0.25 else _one_axis(rng, shape),
    }


def _split_params(rng, shape):
    if not shape:
        return None
    axis = _one_axis(rng, shape)
    n = shape[axis]
    indices = sorted(int(i) for i in rng.integers(-n - 1, n + 2, size=int(rng.integers(1, 3))))
    return {"indices": indices, "axis": axis, "k": int(rng.integers(0, len(indices) + 1))}


def _matmul_params(rng, a, b):
    try:
        np.matmul(np.empty(a), np.empty(b))
    except ValueError:
        return None
    return {}


def _matmul_t_params(rng, a, b):
    if len(b) < 2:
        return None
    return _matmul_params(rng, a, b[:-2] + (b[-1], b[-2]))


_LETTERS = "ijklmn"


def _einsum_params(rng, *shapes):
    """Subscripts for operands of these shapes: letters shared only between axes of one
    size (a repeated letter within one operand takes its diagonal), an output of any of
    them, once each, in any order."""
    sizes, terms = {}, []
    for shape in shapes:
        term = ""
        for n in shape:
            reuse = [
                c for c, m in sizes.items() if m == n and (c not in term or rng.random() < 0.3)
            ]
            if reuse and rng.random() < 0.6:
                term += str(rng.choice(reuse))
            elif len(sizes) == len(_LETTERS):
                return None
            else:
                c = _LETTERS[len(sizes)]
                sizes[c] = n
                term += c
        terms.append(term)
    letters = list(sizes)
    out = [str(c) for c in rng.permutation(letters)[: int(rng.integers(0, len(letters) + 1))]]
    return {"subscripts": ",".join(terms) + "->" + "".join(out)}


def _sdpa_params(rng, q, k):
    if len(q) < 2 or len(k) < 2 or q[:-2] != k[:-2] or q[-1] != k[-1]:
        return None
    return {"is_causal": bool(rng.random() < 0.4)}


def _cross_entropy_params(rng, shape):
    if len(shape) != 2 or shape[1] == 0:
        return None
    return {"target": rng.integers(0, shape[1], size=shape[0]).tolist()}


def _top_k_params(rng, shape):
    if not shape:
        return None
    axis = _one_axis(rng, shape)
    return {"k": int(rng.integers(0, shape[axis] + 1)), "axis": axis}


def _tri_params(rng, shape):
    return None if len(shape) < 2 else {"k": int(rng.integers(-2, 3))}


def _tensordot_params(rng, a, b):
    ns = [n for n in range(min(len(a), len(b)) + 1) if n == 0 or a[len(a) - n :] == b[:n]]
    return {"n": int(rng.choice(ns))}


def _same_shape(rng, a, b):
    return {} if a == b else None


def _linear_params(rng, a, b):
    return None if len(a) < 1 or len(b) != 2 or a[-1] != b[1] else {}


def _embedding_params(rng, shape):
    if len(shape) != 2 or shape[0] == 0:
        return None
    idx_shape = tuple(int(d) for d in rng.integers(0, 4, size=int(rng.integers(0, 3))))
    return {"indices": rng.integers(0, shape[0], size=idx_shape).tolist()}


# --------------------------------------------------------------------------- the table


def _unary(name, template, np_fn, torch_fn):
    return Op(name, 1, template, np_fn, torch_fn, _no_params)


def _binary(name, template, np_fn, torch_fn):
    return Op(name, 2, template, np_fn, torch_fn, lambda rng, a, b: _broadcast(a, b))


OPS = [
    _unary("neg", "-{a}", lambda a: -a, lambda a: -a),
    _unary("exp", "fx.exp({a})", np.exp, torch.exp),
    _unary(
        "log",
        "fx.log({a} * {a} + 0.5)",
        lambda a: np.log(a * a + 0.5),
        lambda a: torch.log(a * a + 0.5),
    ),
    _unary("log1p", "fx.log1p({a} * {a})", lambda a: np.log1p(a * a), lambda a: torch.log1p(a * a)),
    _unary("expm1", "fx.expm1({a})", np.expm1, torch.expm1),
    _unary(
        "sqrt",
        "fx.sqrt({a} * {a} + 0.25)",
        lambda a: np.sqrt(a * a + 0.25),
        lambda a: torch.sqrt(a * a + 0.25),
    ),
    _unary(
        "rsqrt",
        "fx.rsqrt({a} * {a} + 1.0)",
        lambda a: 1 / np.sqrt(a * a + 1),
        lambda a: torch.rsqrt(a * a + 1),
    ),
    _unary(
        "reciprocal",
        "fx.reciprocal({a} * {a} + 1.0)",
        lambda a: 1 / (a * a + 1),
        lambda a: torch.reciprocal(a * a + 1),
    ),
    _unary("tanh", "fx.tanh({a})", np.tanh, torch.tanh),
    _unary("sin", "fx.sin({a})", np.sin, torch.sin),
    _unary("cos", "fx.cos({a})", np.cos, torch.cos),
    _unary("sigmoid", "fx.sigmoid({a})", lambda a: 1 / (1 + np.exp(-a)), torch.sigmoid),
    _unary("erf", "fx.erf({a})", _np_erf, torch.erf),
    _unary("softplus", "fx.softplus({a})", lambda a: np.logaddexp(0, a), F.softplus),
    _unary("silu", "fx.silu({a})", lambda a: a / (1 + np.exp(-a)), F.silu),
    _unary("relu", "fx.relu({a})", lambda a: np.maximum(a, 0), torch.relu),
    _unary("abs", "fx.abs({a})", np.abs, torch.abs),
    _unary("square", "fx.square({a})", np.square, torch.square),
    _unary("cube", "{a} ** 3", lambda a: a**3, lambda a: a**3),
    _unary("sign", "fx.sign({a})", np.sign, torch.sign),
    _unary("floor", "fx.floor({a})", np.floor, torch.floor),
    _unary("stop_gradient", "fx.stop_gradient({a})", lambda a: a, lambda a: a.detach()),
    _unary(
        "logsigmoid",
        "fx.nn.functional.logsigmoid({a})",
        lambda a: -np.logaddexp(0, -a),
        F.logsigmoid,
    ),
    Op(
        "gelu",
        1,
        "fx.gelu({a}, approximate={approximate!r})",
        _np_gelu,
        lambda a, approximate: F.gelu(a, approximate=approximate),
        _gelu_params,
    ),
    Op(
        "clip",
        1,
        "fx.clip({a}, {lo}, {hi})",
        lambda a, lo, hi: np.clip(a, lo, hi),
        lambda a, lo, hi: torch.clamp(a, lo, hi),
        _clip_params,
    ),
    Op("scale", 1, "{a} * {c}", lambda a, c: a * c, lambda a, c: a * c, _scalar_params),
    Op("rsub", 1, "{c} - {a}", lambda a, c: c - a, lambda a, c: c - a, _scalar_params),
    Op("shift", 1, "{a} + {c}", lambda a, c: a + c, lambda a, c: a + c, _scalar_params),
    _binary("add", "{a} + {b}", np.add, torch.add),
    _binary("sub", "{a} - {b}", np.subtract, torch.sub),
    _binary("mul", "{a} * {b}", np.multiply, torch.mul),
    _binary(
        "div", "{a} / ({b} * {b} + 1.0)", lambda a, b: a / (b * b + 1), lambda a, b: a / (b * b + 1)
    ),
    _binary("maximum", "fx.maximum({a}, {b})", np.maximum, torch.maximum),
    _binary("minimum", "fx.minimum({a}, {b})", np.minimum, torch.minimum),
    _binary(
        "pow",
        "fx.power({a} * {a} + 0.5, {b})",
        lambda a, b: (a * a + 0.5) ** b,
        lambda a, b: (a * a + 0.5) ** b,
    ),
    Op(
        "where",
        4,
        "fx.where({a} {cmp} {b}, {c}, {d})",
        lambda a, b, c, d, cmp: np.where(_COMPARE[cmp](a, b), c, d),
        lambda a, b, c, d, cmp: torch.where(_COMPARE[cmp](a, b), c, d),
        _where_params,
    ),
    Op(
        "sum",
        1,
        "fx.sum({a}, axis={axis}, keepdims={keepdims})",
        np.sum,
        lambda a, axis, keepdims: _t_reduce(torch.sum, a, axis, keepdims),
        _reduce_params,
    ),
    Op(
        "mean",
        1,
        "fx.mean({a}, axis={axis}, keepdims={keepdims})",
        np.mean,
        lambda a, axis, keepdims: _t_reduce(torch.mean, a, axis, keepdims),
        _reduce_params,
    ),
    Op(
        "max",
        1,
        "fx.max({a}, axis={axis}, keepdims={keepdims})",
        _np_max,
        lambda a, axis, keepdims: _t_reduce(torch.amax, a, axis, keepdims),
        _reduce_params,
    ),
    Op(
        "min",
        1,
        "fx.min({a}, axis={axis}, keepdims={keepdims})",
        _np_min,
        lambda a, axis, keepdims: _t_reduce(torch.amin, a, axis, keepdims),
        _reduce_params,
    ),
    Op(
        "prod",
        1,
        "fx.prod({a}, axis={axis}, keepdims={keepdims})",
        np.prod,
        lambda a, axis, keepdims: _t_prod(a, axis, keepdims),
        _reduce_params,
    ),
    Op(
        "var",
        1,
        "fx.var({a}, axis={axis}, keepdims={keepdims})",
        np.var,
        lambda a, axis, keepdims: _t_reduce(
            lambda x, dim, keepdim: torch.var(x, dim=dim, keepdim=keepdim, correction=0),
            a,
            axis,
            keepdims,
        ),
        _reduce_params,
    ),
    Op(
        "logsumexp",
        1,
        "fx.logsumexp({a}, axis={axis}, keepdims={keepdims})",
        _np_logsumexp,
        lambda a, axis, keepdims: _t_reduce(torch.logsumexp, a, axis, keepdims),
        _reduce_params,
    ),
    Op(
        "argmax_take",
        2,
        "fx.take_along_axis({a}, fx.argmax({b}, axis={axis}, keepdims=True), axis={axis})",
        lambda a, b, axis: np.take_along_axis(a, np.argmax(b, axis=axis, keepdims=True), axis),
        lambda a, b, axis: torch.take_along_dim(a, torch.argmax(b, dim=axis, keepdim=True), axis),
        _arg_take_params,
    ),
    Op(
        "argsort_take",
        2,
        "fx.take_along_axis({a}, fx.argsort({b}, axis={axis}), axis={axis})",
        lambda a, b, axis: np.take_along_axis(a, np.argsort(b, axis=axis, kind="stable"), axis),
        lambda a, b, axis: torch.take_along_dim(a, torch.argsort(b, dim=axis, stable=True), axis),
        _arg_take_params,
    ),
    Op(
        "sort",
        1,
        "fx.sort({a}, axis={axis}, descending={descending})",
        lambda a, axis, descending: (
            -np.sort(-a, axis=axis) if descending else np.sort(a, axis=axis)
        ),
        lambda a, axis, descending: torch.sort(a, dim=axis, descending=descending, stable=True)[0],
        _sort_params,
    ),
    Op(
        "cumsum",
        1,
        "fx.cumsum({a}, axis={axis})",
        lambda a, axis: np.cumsum(a, axis=axis),
        lambda a, axis: torch.cumsum(a.reshape(-1), 0) if axis is None else torch.cumsum(a, axis),
        _cumsum_params,
    ),
    Op(
        "softmax",
        1,
        "fx.softmax({a}, axis={axis})",
        _np_softmax,
        lambda a, axis: torch.softmax(a, axis),
        _axis_params,
    ),
    Op(
        "log_softmax",
        1,
        "fx.log_softmax({a}, axis={axis})",
        lambda a, axis: np.log(_np_softmax(a, axis)),
        lambda a, axis: torch.log_softmax(a, axis),
        _axis_params,
    ),
    Op(
        "layer_norm",
        1,
        "fx.nn.functional.layer_norm({a}, {normalized_shape})",
        _np_layer_norm,
        lambda a, normalized_shape: F.layer_norm(a, normalized_shape),
        _layer_norm_params,
    ),
    Op(
        "reshape",
        1,
        "fx.reshape({a}, {shape})",
        lambda a, shape: np.reshape(a, shape),
        lambda a, shape: torch.reshape(a, shape),
        _reshape_params,
    ),
    Op(
        "flatten",
        1,
        "fx.flatten({a}, {start}, {end})",
        _np_flatten,
        lambda a, start, end: torch.flatten(a, start, end),
        _flatten_params,
    ),
    Op(
        "transpose",
        1,
        "fx.transpose({a}, {perm})",
        lambda a, perm: np.transpose(a, perm),
        lambda a, perm: torch.permute(a, perm),
        _transpose_params,
    ),
    Op(
        "moveaxis",
        1,
        "fx.moveaxis({a}, {src}, {dst})",
        lambda a, src, dst: np.moveaxis(a, src, dst),
        lambda a, src, dst: torch.movedim(a, src, dst),
        _moveaxis_params,
    ),
    Op(
        "broadcast_to",
        1,
        "fx.broadcast_to({a}, {shape})",
        lambda a, shape: np.broadcast_to(a, shape),
        lambda a, shape: torch.broadcast_to(a, shape),
        _broadcast_to_params,
    ),
    Op(
        "expand_dims",
        1,
        "fx.expand_dims({a}, {axis})",
        lambda a, axis: np.expand_dims(a, axis),
        lambda a, axis: torch.unsqueeze(a, axis),
        _expand_dims_params,
    ),
    Op(
        "squeeze",
        1,
        "fx.squeeze({a}, {axis})",
        lambda a, axis: np.squeeze(a, axis),
        lambda a, axis: torch.squeeze(a) if axis is None else torch.squeeze(a, axis),
        _squeeze_params,
    ),
    Op(
        "concatenate",
        2,
        "fx.concatenate([{a}, {b}], axis={axis})",
        lambda a, b, axis: np.concatenate([a, b], axis=axis),
        lambda a, b, axis: torch.cat([a, b], axis),
        _concat_params,
    ),
    Op(
        "stack",
        2,
        "fx.stack([{a}, {b}], axis={axis})",
        lambda a, b, axis: np.stack([a, b], axis=axis),
        lambda a, b, axis: torch.stack([a, b], axis),
        _stack_params,
    ),
    Op("getitem", 1, "{a}[{index}]", lambda a, index: a[index], _t_index, _getitem_params),
    Op(
        "at",
        2,
        "{a}.at[{index}].{verb}({b})",
        lambda a, b, index, verb: _np_at(a, index, b, verb == "add"),
        lambda a, b, index, verb: _t_at(a, index, b, verb == "add"),
        lambda rng, a, b: _at_verb(_at_params(rng, a, b)),
    ),
    Op(
        "take",
        1,
        "fx.take({a}, np.array({indices}, dtype=np.int64), axis={axis})",
        lambda a, indices, axis: np.take(a, indices, axis=axis),
        lambda a, indices, axis: _t_take(a, indices, axis),
        _take_params,
    ),
    Op(
        "gather",
        1,
        "fx.gather({a}, {dim}, np.array({index}, dtype=np.int64))",
        lambda a, dim, index: _np_gather(a, dim, index),
        lambda a, dim, index: torch.gather(
            a, dim, torch.tensor(index, dtype=torch.long).reshape(np.shape(index))
        ),
        _gather_params,
    ),
    Op(
        "scatter_add",
        2,
        "fx.scatter_add({a}, {dim}, np.array({index}, dtype=np.int64), {b})",
        lambda a, b, dim, index: _np_scatter_add(a, dim, index, b),
        lambda a, b, dim, index: torch.scatter_add(
            a, dim, torch.tensor(index, dtype=torch.long).reshape(b.shape), b
        ),
        _scatter_add_params,
    ),
    Op(
        "pad",
        1,
        "fx.pad({a}, {pad_width})",
        lambda a, pad_width: np.pad(a, pad_width),
        _t_pad,
        _pad_params,
    ),
    Op(
        "flip",
        1,
        "fx.flip({a}, axis={axis})",
        lambda a, axis: np.flip(a, axis=axis),
        lambda a, axis: torch.flip(a, _axes_tuple(axis, a.ndim)),
        _flip_params,
    ),
    Op(
        "tile",
        1,
        "fx.tile({a}, {reps})",
        lambda a, reps: np.tile(a, reps),
        lambda a, reps: torch.tile(a, reps),
        _tile_params,
    ),
    Op(
        "repeat",
        1,
        "fx.repeat({a}, {r}, axis={axis})",
        lambda a, r, axis: np.repeat(a, r, axis=axis),
        lambda a, r, axis: torch.repeat_interleave(
            a.reshape(-1) if axis is None else a, r, 0 if axis is None else axis
        ),
        _repeat_params,
    ),
    Op(
        "split",
        1,
        "fx.split({a}, {indices}, axis={axis})[{k}]",
        lambda a, indices, axis, k: np.split(a, indices, axis=axis)[k],
        lambda a, indices, axis, k: _t_split(a, indices, axis, k),
        _split_params,
    ),
    Op("matmul", 2, "{a} @ {b}", np.matmul, torch.matmul, _matmul_params),
    Op(
        "matmul_t",
        2,
        "fx.matmul({a}, fx.swapaxes({b}, -1, -2))",
        lambda a, b: a @ np.swapaxes(b, -1, -2),
        lambda a, b: a @ torch.swapaxes(b, -1, -2),
        _matmul_t_params,
    ),
    Op(
        "einsum1",
        1,
        "fx.einsum({subscripts!r}, {a})",
        lambda a, subscripts: np.einsum(subscripts, a),
        lambda a, subscripts: torch.einsum(subscripts, a),
        _einsum_params,
    ),
    Op(
        "einsum2",
        2,
        "fx.einsum({subscripts!r}, {a}, {b})",
        lambda a, b, subscripts: np.einsum(subscripts, a, b),
        lambda a, b, subscripts: torch.einsum(subscripts, a, b),
        _einsum_params,
    ),
    Op(
        "sdpa",
        2,
        "fx.nn.functional.scaled_dot_product_attention({a}, {b}, {b}, is_causal={is_causal})",
        lambda a, b, is_causal: _np_sdpa(a, b, b, is_causal),
        lambda a, b, is_causal: F.scaled_dot_product_attention(a, b, b, is_causal=is_causal),
        _sdpa_params,
    ),
    Op(
        "cross_entropy",
        1,
        "fx.nn.functional.cross_entropy({a}, fx.tensor({target}))",
        lambda a, target: _np_cross_entropy(a, np.asarray(target, dtype=np.int64)),
        lambda a, target: F.cross_entropy(a, torch.tensor(target, dtype=torch.long)),
        _cross_entropy_params,
    ),
    Op(
        "std",
        1,
        "fx.std({a}, axis={axis}, keepdims={keepdims})",
        np.std,
        lambda a, axis, keepdims: _t_reduce(
            lambda x, dim, keepdim: torch.std(x, dim=dim, keepdim=keepdim, correction=0),
            a,
            axis,
            keepdims,
        ),
        _reduce_params,
    ),
    Op(
        "top_k",
        1,
        "fx.top_k({a}, {k}, axis={axis})[0]",
        lambda a, k, axis: np.take(-np.sort(-a, axis=axis), np.arange(k), axis=axis),
        lambda a, k, axis: torch.sort(a, dim=axis, descending=True, stable=True)[0].narrow(
            axis, 0, k
        ),
        _top_k_params,
    ),
    Op(
        "tril",
        1,
        "fx.tril({a}, {k})",
        lambda a, k: np.tril(a, k),
        lambda a, k: torch.tril(a, k),
        _tri_params,
    ),
    Op(
        "triu",
        1,
        "fx.triu({a}, {k})",
        lambda a, k: np.triu(a, k),
        lambda a, k: torch.triu(a, k),
        _tri_params,
    ),
    Op(
        "tensordot",
        2,
        "fx.tensordot({a}, {b}, axes={n})",
        lambda a, b, n: np.tensordot(a, b, axes=n),
        lambda a, b, n: torch.tensordot(a, b, dims=n),
        _tensordot_params,
    ),
    Op(
        "rms_norm",
        1,
        "fx.nn.functional.rms_norm({a}, {normalized_shape}, eps=1e-6)",
        lambda a, normalized_shape: (
            a
            / np.sqrt(
                np.mean(
                    a * a, axis=tuple(range(a.ndim - len(normalized_shape), a.ndim)), keepdims=True
                )
                + 1e-6
            )
        ),
        lambda a, normalized_shape: F.rms_norm(a, normalized_shape, eps=1e-6),
        _layer_norm_params,
    ),
    Op(
        "mse_loss",
        2,
        "fx.nn.functional.mse_loss({a}, {b})",
        lambda a, b: np.mean((a - b) ** 2),
        F.mse_loss,
        _same_shape,
    ),
    Op(
        "bce_logits",
        2,
        "fx.nn.functional.binary_cross_entropy_with_logits({a}, fx.sigmoid({b}))",
        lambda a, b: np.mean(np.logaddexp(0, a) - a / (1 + np.exp(-b))),
        lambda a, b: F.binary_cross_entropy_with_logits(a, torch.sigmoid(b)),
        _same_shape,
    ),
    Op(
        "linear",
        2,
        "fx.nn.functional.linear({a}, {b})",
        lambda a, b: a @ b.T,
        F.linear,
        _linear_params,
    ),
    Op(
        "embedding",
        1,
        "fx.nn.functional.embedding(np.array({indices}, dtype=np.int64), {a})",
        lambda a, indices: a[np.asarray(indices, dtype=np.int64)],
        lambda a, indices: F.embedding(
            torch.tensor(indices, dtype=torch.long).reshape(np.shape(indices)), a
        ),
        _embedding_params,
    ),
    _binary(
        "remainder",
        "fx.remainder({a}, {b} * {b} + 0.5)",
        lambda a, b: np.remainder(a, b * b + 0.5),
        lambda a, b: torch.remainder(a, b * b + 0.5),
    ),
]
OPS_BY_NAME = {op.name: op for op in OPS}


def _at_verb(params):
    if params is not None:
        params["verb"] = "add" if params.pop("add") else "set"
    return params


def _t_prod(a, axis, keepdims):
    axes = _axes_tuple(axis, a.ndim)
    for d in sorted(axes, reverse=True):
        a = torch.prod(a, dim=d, keepdim=keepdims)
    return a


def _t_take(a, indices, axis):
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    if axis is None:
        flat = a.reshape(-1)
        return flat[idx % max(flat.shape[0], 1)]
    n = a.shape[axis]
    out = a.index_select(axis, (idx % n).reshape(-1))
    return out.reshape(a.shape[:axis] + tuple(idx.shape) + a.shape[axis + 1 :])


def _t_split(a, indices, axis, k):
    n = a.shape[axis]
    bounds = [0] + [min(max(i + n if i < 0 else i, 0), n) for i in indices] + [n]
    lo, hi = bounds[k], bounds[k + 1]
    return a.narrow(axis, lo, max(hi - lo, 0))
