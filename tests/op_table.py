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
* ``test_ops_jit.py``: jit vs eager.

Conventions the consumers rely on:

* ``Sample.args`` are the tensor arguments. Float arrays are cast to the dtype under
  test; integer arrays (indices, integer inputs) and bool arrays (conditions) keep
  their dtype, except that integer arrays are cast to an integer dtype under test.
  Indices that must stay fixed are closed over or passed in ``kwargs``.
* Shapes and ``kwargs`` of a sample never depend on the rng (only the values do):
  vmap stacks independent draws of one sample. Index arrays in ``kwargs`` are literals.
* Differentiable samples keep away from kinks and poles (abs/relu at 0, ties in
  max/min, the bounds of clip, the jumps of remainder), so that central finite
  differences with eps ~ 1e-6 are exact to ~1e-8.
* ``name`` is the public op name, optionally followed by ``_variant`` (``gelu_tanh``,
  ``getitem_mask``); the meta-test in ``test_ops_forward.py`` resolves it to ``fx.<op>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

import fluxion as fx


@dataclass
class Sample:
    args: tuple  # NumPy arrays, one per tensor argument of the op
    kwargs: dict = field(default_factory=dict)  # static (non-tensor) arguments

    def __repr__(self) -> str:
        shapes = ", ".join(str(np.shape(a)) for a in self.args)
        kwargs = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items())
        return f"Sample({shapes}; {kwargs})"


def _short(value) -> str:
    """A compact, deterministic repr for ids: arrays by dtype and shape."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    if isinstance(value, tuple):
        return "(" + ",".join(_short(v) for v in value) + ")"
    if isinstance(value, slice):
        return ":".join("" if v is None else str(v) for v in (value.start, value.stop, value.step))
    if value is Ellipsis:
        return "..."
    return repr(value)


@dataclass
class OpCase:
    name: str  # the public name: fx.<name>, optionally with a "_variant" suffix
    fx_fn: Callable  # (*tensors, **kwargs) -> Tensor (or tuple/list of Tensors)
    np_fn: Callable  # (*ndarrays, **kwargs) -> ndarray (or tuple/list), the reference
    samples: Callable[[np.random.Generator], list[Sample]]
    differentiable: bool | str = True  # False: piecewise constant or integer output;
    # "raises": no derivative yet, differentiating it raises GradError (linalg.svd, qr)
    second_order: bool = True  # False: its derivative's derivative raises GradError
    diff_args: tuple | None = None  # indices of args to differentiate (None: all float args)
    domain: str = "real"  # "real", "positive", "unit" ((-1, 1)), "nonzero", "int"
    dtypes: tuple = ("float64", "float32")  # dtypes the forward test runs in
    rtol: dict = field(default_factory=lambda: {"float64": 1e-12, "float32": 1e-5})
    batchable: bool = True
    notes: str = ""
    # The result dtype for a run in dtype ``d``: None means ``d`` itself (float64 stays
    # float64, int8 stays int8); a name ("bool", "int64"); or ``f(d, kwargs) -> name``.
    out_dtype: str | Callable | None = None
    atol: dict = field(default_factory=lambda: {"float64": 1e-12, "float32": 1e-6})

    def expected_dtype(self, dtype: str, kwargs: dict) -> str:
        if self.out_dtype is None:
            return dtype
        if callable(self.out_dtype):
            return self.out_dtype(dtype, kwargs)
        return self.out_dtype


# ----------------------------------------------------------------------------- sample makers


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


def away(x, points=(0.0,), gap=0.1) -> np.ndarray:
    """``x`` with entries closer than ``gap`` to one of ``points`` pushed out to ``gap``."""
    x = np.array(x, dtype=np.float64)
    for p in points:
        d = x - p
        x = np.where(np.abs(d) < gap, p + np.where(d >= 0, gap, -gap), x)
    return x


def strided(a) -> np.ndarray:
    """A non-contiguous view holding ``a``'s values (every other element of a bigger array)."""
    return np.repeat(a, 2, axis=-1)[..., ::2]


def unary_samples(domain="real"):
    """0-d, vector, matrix, size-0, a transposed view and a strided view."""

    def make(rng):
        return [
            Sample((sample_array(rng, (), domain),)),
            Sample((sample_array(rng, (5,), domain),)),
            Sample((sample_array(rng, (3, 4), domain),)),
            Sample((sample_array(rng, (0, 3), domain),)),
            Sample((sample_array(rng, (4, 3), domain).T,)),
            Sample((strided(sample_array(rng, (2, 3), domain)),)),
        ]

    return make


BINARY_SHAPES = [
    ((), ()),
    ((4,), (4,)),
    ((3, 1), (1, 4)),
    ((2, 3, 4), (4,)),
    ((3, 4), ()),
    ((), (2, 3)),
    ((0, 2), (2,)),
]


def binary_samples(domain_x="real", domain_y="real"):
    """Equal shapes, scalar with tensor, the broadcasting pairs, and non-contiguous views."""

    def make(rng):
        out = [
            Sample((sample_array(rng, a, domain_x), sample_array(rng, b, domain_y)))
            for a, b in BINARY_SHAPES
        ]
        out.append(
            Sample(
                (
                    sample_array(rng, (4, 3), domain_x).T,
                    strided(sample_array(rng, (3, 4), domain_y)),
                )
            )
        )
        return out

    return make


def _with_zeros_samples(make):
    """``make``'s samples and one with exact zeros of both signs, where a smooth function
    built on a kink (abs, a branch) must still differentiate as the math says."""
    return lambda rng: make(rng) + [Sample((np.array([0.0, -0.0, 1e-3, -1e-3, 2.0]),))]


def _map_samples(make, fn):
    """Samples of ``make`` with every arg passed through ``fn`` (shape-preserving)."""
    return lambda rng: [Sample(tuple(fn(a) for a in s.args), s.kwargs) for s in make(rng)]


def _with_zeros(rng, shape):
    """Floats of which about a third are exactly zero (for truthiness ops)."""
    return rng.normal(size=shape) * (rng.uniform(size=shape) > 0.35)


def _ties(rng, shape):
    """Values on a grid of halves, so that comparisons meet ties."""
    return np.round(rng.normal(size=shape) * 2) / 2


def _special_ties(rng, shape):
    """Halves with NaN, +-inf and both zeros mixed in: ties among each of them."""
    pool = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 1.0, np.nan, -0.0])
    return rng.choice(pool, shape)


def _sort_samples(values):
    """``values(rng, shape)`` sorted along each axis, both ways, in a transposed view and
    along an empty axis."""

    def make(rng):
        return [
            Sample((values(rng, (3, 5)),), {"axis": 0}),
            Sample((values(rng, (4, 6)),), {}),
            Sample((values(rng, (4, 6)),), {"descending": True}),
            Sample((values(rng, (2, 3, 4)),), {"axis": 1, "descending": True}),
            Sample((values(rng, (9,)),), {"descending": True}),
            Sample((values(rng, (3, 0)),), {"descending": True}),
            Sample((values(rng, (5, 3)).T,), {"axis": -1}),
        ]

    return make


def _special_samples(rng):
    """nan, +-inf and -0.0 among normal values (for isnan/isinf/isfinite)."""

    def x(shape):
        a = rng.normal(size=shape)
        flat = a.reshape(-1)  # a view: a is contiguous
        for k, v in zip(range(flat.size), (np.nan, np.inf, -np.inf, -0.0)):
            flat[(3 * k) % flat.size] = v
        return a

    return [Sample((x(s),)) for s in [(), (5,), (3, 4), (0, 3)]] + [Sample((x((4, 3)).T,))]


# ----------------------------------------------------------------------------- references


_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_erf(x):
    return _erf(x)


def np_sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def np_gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + np_erf(x / math.sqrt(2.0)))


def np_relu(x):
    return np.maximum(x, 0)


def np_silu(x):
    return x * np_sigmoid(x)


def np_softplus(x):
    return np.logaddexp(0.0, x)


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # -inf over an empty axis
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def np_softmax(x, axis=-1):
    axis = axis if np.ndim(x) else None  # a 0-d tensor has axis 0/-1, as in PyTorch
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    """In float64 whatever the input's dtype, then rounded once to it."""
    axis = axis if np.ndim(x) else None
    wide = np.asarray(x, np.float64)
    return (wide - np_logsumexp(wide, axis=axis, keepdims=True)).astype(np.asarray(x).dtype)


def np_argsort_descending(x, axis=-1):
    """Stable descending order with NaN first (the largest), as PyTorch: Python's sort with
    reverse=True keeps equal keys in their order."""

    def order(row):
        keys = [(bool(np.isnan(v)) if row.dtype.kind == "f" else False, v) for v in row]
        keys = [(nan, 0 if nan else v) for nan, v in keys]
        return sorted(range(len(row)), key=keys.__getitem__, reverse=True)

    return np.apply_along_axis(order, axis, x).astype(np.int64).reshape(np.shape(x))


def np_argsort(x, axis=-1, descending=False):
    if descending:
        return np_argsort_descending(x, axis)
    return np.argsort(x, axis=axis, kind="stable")  # NaN last, ties in order


def np_sort(x, axis=-1, descending=False):
    return np.take_along_axis(x, np_argsort(x, axis, descending), axis)


def np_flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:s] + (math.prod(x.shape[s : e + 1]),) + x.shape[e + 1 :])


def np_chunk(x, chunks, axis=0):
    """PyTorch's chunk: pieces of ceil(n / chunks); ``chunks`` empty pieces of an empty axis."""
    n = x.shape[axis]
    if n == 0:
        return [x] * chunks
    step = -(-n // chunks)
    return np.split(x, list(range(step, n, step)), axis=axis)


def np_slice_tensor(x, start, size):
    return x[tuple(slice(b, b + n) for b, n in zip(start, size))]


def np_scatter_add(x, src, dim, index):
    """PyTorch's rule: the positions of ``index`` only, ``src`` read where index is."""
    out = x.copy()
    where = list(np.indices(index.shape, sparse=True))
    where[dim] = index
    np.add.at(out, tuple(where), src[tuple(slice(0, n) for n in index.shape)])
    return out


def np_gather(x, dim, index):
    """PyTorch's rule: ``index`` may be smaller than ``x`` outside ``dim``; no broadcast."""
    dim = dim % x.ndim
    part = x[tuple(slice(None) if k == dim else slice(0, n) for k, n in enumerate(index.shape))]
    return np.take_along_axis(part, index, dim)


def np_one_hot(indices, num_classes, dtype="float32"):
    return (indices[..., None] == np.arange(num_classes)).astype(_np_dtype(dtype))


def _np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def _is_int(dtype: str) -> bool:
    return "int" in dtype or dtype == "bool"


def _int_to_int64(dtype, kwargs):
    """sum/prod/cumsum: bools and integers accumulate as int64."""
    return "int64" if _is_int(dtype) else dtype


def _kwarg_dtype(dtype, kwargs):
    return str(kwargs["dtype"])


# ----------------------------------------------------------------------------- sample tables


def _unary(name, fx_fn, np_fn, domain="real", **kw):
    return OpCase(name, fx_fn, np_fn, unary_samples(domain), domain=domain, **kw)


def _binary(name, fx_fn, np_fn, domain_x="real", domain_y="real", domain="real", **kw):
    return OpCase(name, fx_fn, np_fn, binary_samples(domain_x, domain_y), domain=domain, **kw)


FLOAT_AND_INT = ("float64", "float32", "int64", "int32", "int8")
NONDIFF = {"differentiable": False}
NO_GRADIENT_YET = {"differentiable": "raises"}


def _remainder_samples(rng):
    # y in +-{0.5, 1, 2} and x away from the multiples of 0.5, so that x / y is never near
    # an integer (where remainder jumps)
    out = []
    for s in binary_samples("real", "nonzero")(rng):
        x, y = s.args
        y = np.sign(y) * np.array([0.5, 1.0, 2.0])[rng.integers(0, 3, np.shape(y))]
        out.append(Sample((away(2 * x, np.arange(-12.0, 13.0), 0.2) / 2, y)))
    return out


def _clip_samples(rng):
    def x(shape):
        return away(rng.normal(size=shape), (-0.5, 0.5))

    return [
        Sample((x(()),), {"min": -0.5, "max": 0.5}),
        Sample((x((5,)),), {"min": -0.5, "max": 0.5}),
        Sample((x((3, 4)),), {"min": -0.5}),
        Sample((x((3, 4)),), {"max": 0.5}),
        Sample((x((0, 3)),), {"min": -0.5, "max": 0.5}),
        Sample((x((4, 3)).T,), {"min": -0.5, "max": 0.5}),
    ]


def _clip_tensor_samples(rng):
    def bounds(shape):
        lo = -0.5 - rng.uniform(0, 0.5, shape)
        return lo, lo + 1.0 + rng.uniform(0, 0.5, shape)

    out = []
    for xs, bs in [((3, 4), (4,)), ((5,), ()), ((2, 3), (2, 1)), ((0, 2), (2,))]:
        lo, hi = bounds(bs)
        x = rng.normal(size=xs)
        x = np.where(np.abs(x - lo) < 0.1, lo + 0.1, x)
        x = np.where(np.abs(x - hi) < 0.1, hi - 0.1, x)
        out.append(Sample((x, lo, hi)))
    return out


def _where_samples(rng):
    shapes = [((), (), ()), ((4,), (4,), (4,)), ((3, 1), (1, 4), ()), ((2, 3), (3,), (2, 1)),
              ((0, 3), (3,), ()), ((4,), (3, 4), (3, 1))]  # fmt: skip
    out = [
        Sample((rng.uniform(size=c) > 0.5, rng.normal(size=a), rng.normal(size=b)))
        for c, a, b in shapes
    ]
    out.append(
        Sample(
            ((rng.uniform(size=(3, 4)) > 0.5).T, rng.normal(size=(3, 4)).T, rng.normal(size=(4, 3)))
        )
    )
    return out


def _scalar_samples(value, domain="real"):
    def make(rng):
        return [
            Sample((sample_array(rng, s, domain),), {"c": value})
            for s in [(), (5,), (3, 4), (0, 2)]
        ] + [Sample((sample_array(rng, (4, 3), domain).T,), {"c": value})]

    return make


def _reduce_samples(axes_list, domain="real", empty=True, shape=(3, 4)):
    """A matrix with each of ``axes_list`` (axis=..., keepdims), 3-d with tuple axes, 0-d,
    size-0 (reduced along the non-empty axis) and a transposed view."""

    def make(rng):
        def x(s):
            return sample_array(rng, s, domain)

        out = [Sample((x(shape),), kw) for kw in axes_list]
        out += [
            Sample((x((2, 3, 4)),), {"axis": (0, 2)}),
            Sample((x((2, 3, 4)),), {"axis": (-1, 1), "keepdims": True}),
            Sample((x(()),), {}),
            Sample((x((4, 3)).T,), {"axis": 1}),
        ]
        if empty:
            out.append(Sample((x((0, 4)),), {"axis": 1}))
        return out

    return make


AXES = [{}, {"axis": 0}, {"axis": -1, "keepdims": True}, {"axis": None, "keepdims": True}]


def _arg_samples(rng):
    return [
        Sample((rng.normal(size=(3, 4)),), {}),
        Sample((rng.normal(size=(3, 4)),), {"axis": 0}),
        Sample((rng.normal(size=(3, 4)),), {"axis": -1, "keepdims": True}),
        Sample((rng.normal(size=(2, 3, 4)),), {"axis": 1}),
        Sample((rng.normal(size=(2, 3)),), {"axis": None, "keepdims": True}),
        Sample((rng.normal(size=()),), {}),
        Sample((rng.normal(size=(0, 4)),), {"axis": 1}),
        Sample((rng.normal(size=(4, 3)).T,), {"axis": 1}),
        Sample((np.array([1.0, 3.0, 3.0, -2.0, -2.0]),), {}),  # ties: the first index wins
    ]


def _logical_reduce_samples(rng):
    return [
        Sample((_with_zeros(rng, (3, 4)),), {}),
        Sample((_with_zeros(rng, (3, 4)),), {"axis": 0}),
        Sample((_with_zeros(rng, (3, 4)),), {"axis": -1, "keepdims": True}),
        Sample((_with_zeros(rng, (2, 3, 4)),), {"axis": (0, 2)}),
        Sample((rng.normal(size=(3, 4)),), {"axis": 1}),
        Sample((_with_zeros(rng, ()),), {}),
        Sample((_with_zeros(rng, (0, 4)),), {"axis": 0}),
        Sample((_with_zeros(rng, (0, 4)),), {"axis": 1, "keepdims": True}),
        Sample((_with_zeros(rng, (4, 3)).T,), {"axis": 1}),
    ]


def _cumsum_samples(rng):
    return [
        Sample((rng.normal(size=(3, 4)),), {}),
        Sample((rng.normal(size=(3, 4)),), {"axis": 0}),
        Sample((rng.normal(size=(2, 3, 4)),), {"axis": -1}),
        Sample((rng.normal(size=(5,)),), {"axis": 0}),
        Sample((rng.normal(size=(0, 3)),), {"axis": 1}),
        Sample((rng.normal(size=(4, 3)).T,), {"axis": 1}),
    ]


def _softmax_samples(rng):
    return [
        Sample((rng.normal(size=(3, 4)),), {}),
        Sample((rng.normal(size=(3, 4)),), {"axis": 0}),
        Sample((rng.normal(size=(2, 3, 4)),), {"axis": 1}),
        Sample((rng.normal(size=(5,)) * 30,), {}),  # large logits: needs the max shift
        Sample((rng.normal(size=(0, 3)),), {"axis": -1}),
        Sample((rng.normal(size=(3, 0)),), {"axis": -1}),  # nothing to normalize
        Sample((rng.normal(size=(0, 3)),), {"axis": 0}),
        Sample((rng.normal(size=(4, 3)).T,), {"axis": -1}),
        Sample((rng.normal(size=()),), {}),
        Sample((np.array([1000.0, 1000.0, -1000.0]),), {}),  # 1 ulp in float32, as PyTorch
    ]


def _prod_zeros_samples(rng):
    """Rows with one zero, two zeros and none: the gradient at a zero is the product of the
    others (exact: prod is multilinear, so central differences are too)."""
    x = sample_array(rng, (3, 4), "nonzero")
    x[0, 1] = x[1, 0] = x[1, 3] = 0.0
    return [Sample((x,), {"axis": 1}), Sample((x,), {}), Sample((np.zeros(()),), {})]


def _var_samples(rng):
    return _reduce_samples(AXES, empty=False)(rng) + [
        Sample((rng.normal(size=(3, 4)),), {"axis": 0, "ddof": 1}),
        Sample((rng.normal(size=(2, 5)),), {"axis": None, "ddof": 1, "keepdims": True}),
    ]


def _logsumexp_samples(rng):
    return _reduce_samples(AXES, empty=False)(rng) + [
        Sample((rng.normal(size=(2, 4)) * 40,), {"axis": 1})  # exp overflows unshifted
    ]


# linalg


def _matmul_samples(rng):
    pairs = [
        ((3, 4), (4, 2)),
        ((2, 3, 4), (4, 5)),
        ((2, 1, 3, 4), (3, 4, 2)),  # batch dims broadcast
        ((4,), (4, 3)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 3, 4), (4,)),
        ((0, 3), (3, 2)),
        ((3, 0), (0, 2)),
    ]
    out = [Sample((rng.normal(size=a), rng.normal(size=b))) for a, b in pairs]
    out.append(Sample((rng.normal(size=(4, 3)).T, strided(rng.normal(size=(4, 2))))))
    return out


def _dot_samples(rng):
    pairs = [((), (3,)), ((4,), (4,)), ((3, 4), (4,)), ((3, 4), (4, 2)), ((4,), (4, 2)),
             ((2, 3, 4), (4, 2)), ((2, 3, 4), (5, 4, 2)), ((3, 4), ())]  # fmt: skip
    out = [Sample((rng.normal(size=a), rng.normal(size=b))) for a, b in pairs]
    out.append(Sample((rng.normal(size=(4, 3)).T, rng.normal(size=(4,)))))
    return out


def _einsum_samples(rng):
    specs = [
        ("ij,jk->ik", (3, 4), (4, 2)),
        ("bij,bjk->bik", (2, 3, 4), (2, 4, 2)),
        ("ij->ji", (3, 4)),
        ("ij->", (3, 4)),
        ("ijk->kj", (2, 3, 4)),
        ("i,i->", (4,), (4,)),
        ("i,j->ij", (3,), (4,)),
        ("ij,ij->i", (3, 4), (3, 4)),
        ("bhqd,bhkd->bhqk", (1, 2, 3, 2), (1, 2, 4, 2)),
        ("ij,jk,kl->il", (2, 3), (3, 4), (4, 2)),
        ("ij,jk", (3, 4), (4, 2)),  # implicit output: sorted lone indices
        ("ij,jk->ik", (0, 4), (4, 2)),
        ("ii->i", (3, 3)),  # repeated indices: diagonals
        ("ii", (4, 4)),  # the trace
        ("iij->j", (2, 2, 3)),
        ("iji->ij", (2, 3, 2)),
        ("bii->bi", (2, 3, 3)),
        ("iii->i", (2, 2, 2)),
        ("ii", (0, 0)),
        ("ij,jj->i", (2, 3), (3, 3)),
        ("...ij,...jk->...ik", (2, 1, 2, 3), (5, 3, 4)),  # ellipses broadcast
        ("...ij,jk->...ik", (2, 3, 4), (4, 2)),
        ("ij...,jk->ik...", (2, 3, 5), (3, 4)),
        ("...ii->...i", (2, 3, 3)),
        ("...i", (2, 3)),
        ("i...->...", (2, 3)),
        ("...,...->...", (3, 1), (4,)),
        ("ij,jk->ik", (2, 1), (3, 4)),  # a size-1 index broadcasts
        ("ijk,jil->", (1, 0, 6), (1, 1, 6)),  # ... against 0 too (fuzzer seed 81014)
    ]
    return [Sample(tuple(rng.normal(size=s) for s in shapes), {"subscripts": sub})
            for sub, *shapes in specs]  # fmt: skip


def _tensordot_samples(rng):
    specs = [
        ((3, 4), (4, 2), 1),
        ((2, 3, 4), (3, 4, 2), 2),
        ((3,), (4,), 0),
        ((2, 3, 4), (4, 3), ((1, 2), (1, 0))),
        ((3, 4), (2, 3), ((0,), (-1,))),
        ((0, 3), (3, 2), 1),
    ]
    return [Sample((rng.normal(size=a), rng.normal(size=b)), {"axes": ax}) for a, b, ax in specs]


def _outer_samples(rng):
    pairs = [((3,), (4,)), ((2, 2), (3,)), ((), (3,)), ((0,), (3,))]
    return [Sample((rng.normal(size=a), rng.normal(size=b))) for a, b in pairs]


# shape ops


def _s(rng, shape_, **kwargs):
    """One normal array of shape ``shape_`` with static ``kwargs``."""
    return Sample((rng.normal(size=shape_),), kwargs)


def _reshape_samples(rng):
    return [
        _s(rng, (3, 4), shape=(4, 3)),
        _s(rng, (3, 4), shape=(2, -1)),
        _s(rng, (2, 3, 4), shape=(-1,)),
        _s(rng, (), shape=(1, 1)),
        _s(rng, (1,), shape=()),
        _s(rng, (0, 3), shape=(3, 0)),
        _s(rng, (0, 3), shape=(-1, 3)),
        Sample((rng.normal(size=(4, 3)).T,), {"shape": (2, 6)}),
        Sample((strided(rng.normal(size=(2, 3))),), {"shape": (6,)}),
    ]


def _squeeze_samples(rng):
    return [
        _s(rng, (1, 3, 1)),
        _s(rng, (1, 3, 1), axis=0),
        _s(rng, (1, 3, 1), axis=(0, -1)),
        _s(rng, ()),
        _s(rng, (0, 1)),
        Sample((rng.normal(size=(4, 1)).T,), {"axis": 0}),
    ]


def _expand_dims_samples(rng):
    return [
        _s(rng, (3, 4), axis=0),
        _s(rng, (3, 4), axis=-1),
        _s(rng, (3, 4), axis=(0, 2)),
        _s(rng, (), axis=0),
        _s(rng, (0, 2), axis=1),
        Sample((rng.normal(size=(4, 3)).T,), {"axis": 1}),
    ]


def _broadcast_to_samples(rng):
    return [
        _s(rng, (3, 1), shape=(2, 3, 4)),
        _s(rng, (), shape=(3,)),
        _s(rng, (4,), shape=(3, 4)),
        _s(rng, (1,), shape=(0,)),
        _s(rng, (2, 3), shape=(2, 3)),
        Sample((rng.normal(size=(4, 1)).T,), {"shape": (3, 4)}),
    ]


def _broadcast_arrays_samples(rng):
    return [
        Sample((rng.normal(size=(3, 1)), rng.normal(size=(4,)))),
        Sample((rng.normal(size=()), rng.normal(size=(2, 3)), rng.normal(size=(3,)))),
        Sample((rng.normal(size=(0, 1)), rng.normal(size=(2,)))),
    ]


def _flatten_samples(rng):
    return [
        _s(rng, (2, 3, 4)),
        _s(rng, (2, 3, 4), start_dim=1),
        _s(rng, (2, 3, 4), start_dim=0, end_dim=1),
        _s(rng, (2, 3, 4), start_dim=-2, end_dim=-1),
        _s(rng, ()),
        _s(rng, (2, 0, 3), start_dim=1),
        Sample((rng.normal(size=(4, 3)).T,), {}),
    ]


def _concat_samples(rng):
    specs = [
        ([(2, 3), (4, 3)], 0),
        ([(2, 3), (2, 1), (2, 2)], 1),
        ([(2, 3), (2, 0)], -1),
        ([(0, 3), (2, 3)], 0),
        ([(5,)], 0),
        ([(2, 2, 3), (2, 1, 3)], 1),
    ]
    out = [Sample(tuple(rng.normal(size=s) for s in shapes), {"axis": ax}) for shapes, ax in specs]
    out.append(Sample((rng.normal(size=(3, 2)).T, rng.normal(size=(2, 4))), {"axis": 1}))
    return out


def _stack_samples(rng):
    specs = [
        ([(2, 3), (2, 3)], 0),
        ([(2, 3), (2, 3), (2, 3)], -1),
        ([(2, 3), (2, 3)], 1),
        ([(), ()], 0),
        ([(0, 3), (0, 3)], 1),
    ]
    out = [Sample(tuple(rng.normal(size=s) for s in shapes), {"axis": ax}) for shapes, ax in specs]
    out.append(Sample((rng.normal(size=(3, 2)).T, rng.normal(size=(2, 3))), {"axis": 0}))
    return out


def _split_samples(rng):
    return [
        _s(rng, (6, 2), indices_or_sections=3),
        _s(rng, (2, 6), indices_or_sections=2, axis=1),
        _s(rng, (5, 2), indices_or_sections=[1, 3]),
        _s(rng, (5,), indices_or_sections=[2, 9]),  # past the end: empty pieces
        _s(rng, (4, 2), indices_or_sections=[-1]),  # negative cuts count from the end
        _s(rng, (5,), indices_or_sections=[-2, 4]),
        _s(rng, (5, 2), indices_or_sections=[-1, -3]),
        _s(rng, (5,), indices_or_sections=[3, 1]),  # a cut before the last: an empty piece
        _s(rng, (2, 5), indices_or_sections=[-10, 10], axis=1),  # out of range: clamped
        _s(rng, (4,), indices_or_sections=[]),
        _s(rng, (0, 2), indices_or_sections=2),
        Sample((rng.normal(size=(2, 4)).T,), {"indices_or_sections": 2}),
    ]


def _chunk_samples(rng):
    return [
        _s(rng, (6, 2), chunks=3),
        _s(rng, (5, 2), chunks=2),
        _s(rng, (2, 7), chunks=3, axis=1),
        _s(rng, (3,), chunks=5),  # fewer pieces than asked
        _s(rng, (0, 2), chunks=2),
        Sample((rng.normal(size=(2, 4)).T,), {"chunks": 2, "axis": -1}),
    ]


def _pad_samples(rng):
    return [
        _s(rng, (3, 4), pad_width=1),
        _s(rng, (3, 4), pad_width=(1, 2)),
        _s(rng, (3, 4), pad_width=((0, 1), (2, 0)), constant_values=1.5),
        _s(rng, (5,), pad_width=((2, 3),)),
        _s(rng, (0, 2), pad_width=((1, 1), (0, 0))),
        Sample((rng.normal(size=(4, 3)).T,), {"pad_width": ((1, 0), (0, 1))}),
    ]


def _flip_samples(rng):
    return [
        _s(rng, (3, 4)),
        _s(rng, (3, 4), axis=0),
        _s(rng, (2, 3, 4), axis=(0, -1)),
        _s(rng, ()),
        _s(rng, (0, 3), axis=1),
        Sample((rng.normal(size=(4, 3)).T,), {"axis": 1}),
    ]


def _moveaxis_samples(rng):
    return [
        _s(rng, (2, 3, 4), source=0, destination=-1),
        _s(rng, (2, 3, 4), source=-1, destination=0),
        _s(rng, (2, 3, 4), source=(0, 1), destination=(2, 0)),
        _s(rng, (0, 3), source=0, destination=1),
        Sample((rng.normal(size=(4, 3)).T,), {"source": 1, "destination": 0}),
    ]


def _swapaxes_samples(rng):
    return [
        _s(rng, (2, 3, 4), axis1=0, axis2=2),
        _s(rng, (3, 4), axis1=-1, axis2=0),
        _s(rng, (3, 4), axis1=1, axis2=1),
        _s(rng, (0, 3), axis1=0, axis2=1),
        Sample((rng.normal(size=(4, 3)).T,), {"axis1": 0, "axis2": 1}),
    ]


def _tile_samples(rng):
    return [
        _s(rng, (3,), reps=2),
        _s(rng, (2, 3), reps=(2, 1)),
        _s(rng, (2, 3), reps=(2, 1, 2)),
        _s(rng, (2, 3, 2), reps=(2, 1)),
        _s(rng, (), reps=3),
        _s(rng, (0, 2), reps=2),
        Sample((rng.normal(size=(3, 2)).T,), {"reps": (1, 2)}),
    ]


def _repeat_samples(rng):
    return [
        _s(rng, (3,), repeats=2),
        _s(rng, (2, 3), repeats=2),
        _s(rng, (2, 3), repeats=3, axis=1),
        _s(rng, (2, 3), repeats=2, axis=-2),
        _s(rng, (), repeats=3),
        _s(rng, (0, 2), repeats=2, axis=0),
        Sample((rng.normal(size=(3, 2)).T,), {"repeats": 2, "axis": 0}),
    ]


def _slice_tensor_samples(rng):
    return [
        _s(rng, (4, 5), start=(1, 2), size=(2, 3)),
        _s(rng, (5,), start=(0,), size=(5,)),
        _s(rng, (5,), start=(2,), size=(0,)),
        _s(rng, (), start=(), size=()),
        _s(rng, (2, 3, 4), start=(1, 0, 1), size=(1, 3, 2)),
        Sample((rng.normal(size=(5, 4)).T,), {"start": (1, 1), "size": (2, 3)}),
    ]


def _transpose_samples(rng):
    return [
        _s(rng, (3, 4)),
        _s(rng, (2, 3, 4)),
        _s(rng, (2, 3, 4), axes=(1, 0, 2)),
        _s(rng, (2, 3, 4), axes=(-1, 0, 1)),
        _s(rng, ()),
        _s(rng, (0, 3), axes=(1, 0)),
        Sample((rng.normal(size=(4, 3)).T,), {}),
    ]


def _tril_samples(rng):
    return [
        _s(rng, (3, 4)),
        _s(rng, (4, 3), k=1),
        _s(rng, (3, 3), k=-1),
        _s(rng, (2, 3, 3)),
        _s(rng, (0, 3)),
        Sample((rng.normal(size=(4, 3)).T,), {"k": 0}),
    ]


# indexing


IDX_A = np.array([[0, 2], [1, -1]])


def _take_samples(rng):
    return [
        _s(rng, (3, 4), indices=np.array([2, 0, 2])),
        _s(rng, (3, 4), indices=np.array([3, -1, 0]), axis=1),
        _s(rng, (3, 4), indices=IDX_A, axis=0),
        _s(rng, (2, 3, 4), indices=np.array([1]), axis=-2),
        _s(rng, (3, 4), indices=np.array(2), axis=1),  # 0-d index drops the axis
        _s(rng, (3, 4), indices=np.zeros(0, np.int64), axis=0),
        _s(rng, (0, 4), indices=np.array([1, 3]), axis=1),
        Sample((rng.normal(size=(4, 3)).T,), {"indices": np.array([1, 1, 0]), "axis": 0}),
    ]


def _take_along_axis_samples(rng):
    return [
        _s(rng, (3, 4), indices=np.array([[0, 3], [1, 1], [2, -1]]), axis=1),
        _s(rng, (3, 4), indices=np.array([[2, 0, 1, 0]]), axis=0),  # broadcasts over axis 1
        _s(rng, (2, 3, 4), indices=np.array([[[1], [0], [2]], [[2], [2], [0]]]), axis=1),
        _s(rng, (3, 4), indices=np.zeros((3, 0), np.int64), axis=1),
        Sample((rng.normal(size=(4, 3)).T,), {"indices": np.array([[1], [0], [3]]), "axis": -1}),
    ]


def _gather_samples(rng):
    return [
        _s(rng, (3, 4), dim=1, index=np.array([[0, 3], [1, 1], [2, 0]])),
        _s(rng, (3, 4), dim=0, index=np.array([[2, 0, 1, 0], [1, 1, 1, 2]])),
        _s(rng, (2, 3), dim=-1, index=np.array([[2, 2, 0], [0, 1, 2]])),
        Sample((rng.normal(size=(4, 3)).T,), {"dim": 0, "index": np.array([[2, 0, 1, 1]])}),
        _s(
            rng, (2, 3), dim=0, index=np.array([[0, 1]])
        ),  # smaller outside dim: read, not broadcast
        _s(rng, (3, 4, 2), dim=1, index=np.array([[[3], [0]], [[1], [1]]])),
    ]


def _scatter_add_samples(rng):
    specs = [
        ((3, 4), (3, 2), 1, np.array([[0, 0], [3, 1], [2, 2]])),  # repeated targets accumulate
        ((3, 4), (2, 4), 0, np.array([[2, 0, 1, 0], [2, 1, 1, 0]])),
        ((2, 3, 2), (2, 1, 2), 1, np.array([[[2, 0]], [[1, 1]]])),
        ((3, 4), (3, 0), -1, np.zeros((3, 0), np.int64)),
        ((1, 2), (1, 1), 0, np.array([[0]])),  # the index's positions only, not broadcast
        ((3, 4), (3, 4), 1, np.array([[1], [0], [3]])),  # src larger than the index
    ]
    return [
        Sample((rng.normal(size=xs), rng.normal(size=ss)), {"dim": dim, "index": idx})
        for xs, ss, dim, idx in specs
    ]


def _one_hot_samples(rng):
    return [
        Sample((rng.integers(0, 4, (5,)),), {"num_classes": 4}),
        Sample((rng.integers(0, 3, (2, 3)),), {"num_classes": 3}),
        Sample((rng.integers(0, 5, ()),), {"num_classes": 5}),
        Sample((rng.integers(0, 2, (0,)),), {"num_classes": 2}),
        Sample((rng.integers(0, 3, (4,)),), {"num_classes": 3, "dtype": "float64"}),
        Sample((rng.integers(0, 3, (4,)),), {"num_classes": 3, "dtype": "int64"}),
    ]


def _getitem(*cases):
    """Samples ``x[index]`` for each (shape, index); a shape starting with "T" makes a
    transposed (non-contiguous) view of that shape."""

    def make(rng):
        out = []
        for shape, index in cases:
            if shape and shape[0] == "T":
                x = rng.normal(size=shape[1:][::-1]).T
            else:
                x = rng.normal(size=shape)
            out.append(Sample((x,), {"index": index}))
        return out

    return make


def _index(x, index):
    return x[index]


_ = slice(None)
MASK_34 = np.array([[True, False, True, True], [False, False, False, False], [True, True, False, True]])  # fmt: skip

GETITEM_BASIC = _getitem(
    ((3, 4), 1),
    ((3, 4), -1),
    ((3, 4), (1, 2)),
    ((3, 4), (slice(1, None), slice(None, None, 2))),
    ((2, 3, 4), (1, _, -2)),
    ((3, 4), slice(0, 0)),  # size-0 result
    ((3, 4), (slice(10, None),)),  # past the end: empty
    ((3, 4), (slice(-5, 2),)),  # clamped start
    ((), ()),
    ((0, 3), (_, 1)),
    (("T", 3, 4), (slice(1, 3), 0)),
)
GETITEM_NEGSTEP = _getitem(
    ((5,), slice(None, None, -1)),
    ((3, 5), (slice(1, None), slice(None, None, -2))),
    ((3, 5), (slice(None, None, -2), slice(4, 0, -3))),
    ((6,), slice(-1, -6, -2)),
    ((5,), slice(1, 3, -1)),  # empty
    ((0, 2), slice(None, None, -1)),
    (("T", 3, 4), (slice(None, None, -1), slice(2, None, -1))),
)
GETITEM_NEWAXIS = _getitem(
    ((3, 4), None),
    ((3, 4), (Ellipsis, None)),
    ((2, 3, 4), (1, Ellipsis, None, 2)),
    ((3, 4), (None, _, None)),
    ((2, 3, 4), (Ellipsis, 1)),
    ((2, 3, 4), (Ellipsis,)),
    ((), None),
    ((), Ellipsis),
    ((0, 3), (None, Ellipsis, 0)),
)
GETITEM_INTARRAY = _getitem(
    ((3, 4), [0, 2]),
    ((3, 4), np.array([[0, 1], [2, -1]])),
    ((3, 4), (_, [1, 0, 1])),
    ((3, 4, 2), ([0, 2], _, [1, 0])),  # separated array indices: their dims go first
    ((3, 4, 2), (_, [0, 3], [1, 0])),  # adjacent: their dims stay in place
    ((3, 4), (1, [0, 2])),  # an int with an array counts as advanced
    ((3, 4), ([[0], [2]], [1, 2, 3])),  # index arrays broadcast together
    ((3, 4), (np.zeros(0, np.int64),)),
    ((3, 4), ([-1, -3], slice(None, None, -1))),
    (("T", 3, 4), ([2, 0],)),
)
GETITEM_MASK = _getitem(
    ((3, 4), MASK_34),
    ((3, 4), np.array([True, False, True])),
    ((3, 4), (_, np.array([False, True, True, False]))),
    ((3, 4), np.zeros((3, 4), bool)),  # nothing selected
    ((2, 3, 4), (1, MASK_34[:, :4])),
    (("T", 3, 4), np.array([True, True, False])),
)


# ----------------------------------------------------------------------------- PyTorch's names


def np_index_put(x, values, indices, accumulate=False):
    out = x.copy()
    if accumulate:
        np.add.at(out, indices, values)
    else:
        out[indices] = values
    return out


def np_scatter(x, src, dim, index):
    """PyTorch's scatter: ``out[index[i][j]][j] = src[i][j]`` (dim 0), distinct targets."""
    out = x.copy()
    where = list(np.indices(index.shape, sparse=True))
    where[dim] = index
    out[tuple(where)] = src[tuple(slice(0, n) for n in index.shape)]
    return out


def np_norm(x, p="fro", dim=None, keepdim=False):
    a = np.abs(x)
    if p == "fro" or p == 2:
        return np.sqrt(np.sum(a * a, axis=dim, keepdims=keepdim))
    if p == math.inf:
        return np.max(a, axis=dim, keepdims=keepdim)
    if p == -math.inf:
        return np.min(a, axis=dim, keepdims=keepdim)
    if p == 0:
        return np.sum(a != 0, axis=dim, keepdims=keepdim).astype(x.dtype)
    return np.sum(a**p, axis=dim, keepdims=keepdim) ** (1.0 / p)


def _values_indices(dtype, kwargs):
    return (dtype, "int64")


def np_picked(x, dim, keepdim=False, position=0, descending=False):
    """PyTorch's (values, indices) at ``position`` of a stable sort along ``dim``."""
    order = np.argsort(-x if descending else x, axis=dim, kind="stable")
    idx = np.take(order, [position], axis=dim)
    values = np.take_along_axis(x, idx, dim)
    if not keepdim:
        values, idx = np.squeeze(values, dim), np.squeeze(idx, dim)
    return values, idx


def np_median_dim(x, dim, keepdim=False):
    return np_picked(x, dim, keepdim, (x.shape[dim] - 1) // 2)


def np_max_dim(x, dim, keepdim=False):
    return np_picked(x, dim, keepdim, 0, descending=True)


def np_min_dim(x, dim, keepdim=False):
    return np_picked(x, dim, keepdim, 0)


def np_topk(x, k, dim=-1, largest=True):
    order = np.argsort(-x if largest else x, axis=dim, kind="stable")
    idx = np.take(order, range(k), axis=dim)
    return np.take_along_axis(x, idx, dim), idx


def np_mode(x, dim=-1, keepdim=False):
    """The smallest most frequent value along ``dim`` and its last index, by a Python loop."""
    rows = np.moveaxis(x, dim, -1)
    flat = rows.reshape(-1, rows.shape[-1])
    values, indices = [], []
    for row in flat:
        uniq, counts = np.unique(row, return_counts=True)
        v = uniq[np.argmax(counts)]  # unique sorts: the first of the most frequent is smallest
        values.append(v)
        indices.append(np.nonzero(row == v)[0][-1])
    shape = rows.shape[:-1]
    values = np.array(values, x.dtype).reshape(shape)
    indices = np.array(indices, np.int64).reshape(shape)
    if keepdim:
        values, indices = np.expand_dims(values, dim), np.expand_dims(indices, dim)
    return values, indices


def np_split_sizes(x, split_size_or_sections, dim):
    sizes = split_size_or_sections
    if isinstance(sizes, int):
        n = x.shape[dim]
        sizes = [min(sizes, n - a) for a in range(0, n, sizes)]
    return np.split(x, np.cumsum(sizes)[:-1], axis=dim)


def _masked_fill_samples(rng):
    def mask(shape):
        return rng.random(shape) < 0.5

    return [
        Sample((rng.normal(size=(2, 3, 4)), mask((3, 1))), {"value": 0.0}),
        Sample((rng.normal(size=(4,)), mask((2, 4))), {"value": 1.5}),  # the mask widens x
        Sample((rng.normal(size=()), np.array(True)), {"value": 7.0}),
        Sample((rng.normal(size=(0, 3)), mask((0, 3))), {"value": 1.0}),
        Sample((rng.normal(size=(4, 3)).T, mask((3, 4))), {"value": -3.0}),
    ]


def _index_put_samples(rng):
    rows, cols = np.array([0, 2]), np.array([1, 3])
    return [
        Sample((rng.normal(size=(3, 4)), rng.normal(size=(2,))), {"indices": (rows, cols)}),
        Sample((rng.normal(size=(3, 4)), rng.normal(size=(2, 4))), {"indices": (rows,)}),
        Sample(
            (rng.normal(size=(3, 4)), rng.normal(size=(3,))),
            {"indices": (np.array([0, 0, 1]), np.array([1, 1, 2])), "accumulate": True},
        ),
        Sample((rng.normal(size=(4, 3)).T, rng.normal(size=(2,))), {"indices": (rows, cols - 1)}),
    ]


def np_at(ufunc):
    """NumPy's unbuffered ``ufunc.at``: the oracle of ``x.at[index].<update>(values)``."""

    def update(x, values, index):
        out = np.array(x, copy=True)
        ufunc.at(out, index, values)
        return out

    return update


def _at_samples(rng):
    return [  # repeated positions: each update applies once per mention
        Sample((rng.normal(size=(3, 4)), rng.normal(size=(3, 4))), {"index": np.array([2, 0, 2])}),
        Sample((rng.normal(size=(3, 4)), rng.normal(size=())), {"index": (slice(None), 1)}),
        Sample((rng.normal(size=(5,)), rng.normal(size=(4,))), {"index": np.array([4, 1, 4, 4])}),
        Sample(
            (rng.normal(size=(4, 3)).T, rng.normal(size=(2,))), {"index": (1, np.array([0, 3]))}
        ),
    ]


def _scatter_samples(rng):
    specs = [  # distinct targets: PyTorch leaves repeated ones undefined
        ((3, 4), (3, 2), 1, np.array([[0, 1], [3, 1], [2, 0]])),
        ((3, 4), (2, 4), 0, np.array([[2, 0, 1, 0], [1, 1, 0, 2]])),
        ((2, 3, 2), (2, 1, 2), 1, np.array([[[2, 0]], [[1, 1]]])),
        ((3, 4), (3, 0), -1, np.zeros((3, 0), np.int64)),
        ((3, 4), (3, 4), 1, np.array([[1], [0], [3]])),  # src larger than the index
    ]
    return [
        Sample((rng.normal(size=xs), rng.normal(size=ss)), {"dim": dim, "index": idx})
        for xs, ss, dim, idx in specs
    ]


def _norm_samples(rng):
    def x(shape):
        return sample_array(rng, shape, "nonzero")

    return [
        Sample((x((3, 4)),), {}),
        Sample((x((3, 4)),), {"p": 1, "dim": 0, "keepdim": True}),
        Sample((x((2, 3, 4)),), {"p": 3, "dim": (0, 2)}),
        Sample((x((3, 4)),), {"p": math.inf, "dim": -1}),
        Sample((x((3, 4)),), {"p": -math.inf, "dim": 0}),
        Sample((x((4, 3)).T,), {"p": "fro", "dim": 1}),
    ]


def _norm_zero_samples(rng):
    return [
        Sample((_with_zeros(rng, (3, 4)),), {"p": 0, "dim": 1}),
        Sample((np.zeros((2, 3)),), {"dim": 1}),  # a zero row: value 0
    ]


def _distinct(rng, shape):
    """Values without ties (a permutation, scaled), so that orders are unique."""
    n = math.prod(shape)
    return (rng.permutation(n).reshape(shape) + rng.uniform(0.1, 0.9, shape)) * 0.5


def _median_samples(rng):
    return [
        Sample((_distinct(rng, (3, 4)),), {}),  # an even count: the mean of the middle two
        Sample((_distinct(rng, (3, 5)),), {"axis": 1, "keepdims": True}),
        Sample((_distinct(rng, (2, 3, 4)).transpose(1, 0, 2),), {"axis": (0, 2)}),
    ]


def _dim_samples(rng, values=_distinct):
    return [
        Sample((values(rng, (3, 5)),), {"dim": 0, "keepdim": True}),
        Sample((values(rng, (2, 3, 4)),), {"dim": -2}),
        Sample((values(rng, (4, 3)).T,), {"dim": 1}),
    ]


def _mode_samples(rng):
    def ints(shape):
        return rng.integers(0, 4, shape).astype(np.float64)

    return [
        Sample((ints((3, 7)),), {}),
        Sample((ints((5, 3)),), {"dim": 0, "keepdim": True}),
        Sample((ints((2, 6, 3)),), {"dim": 1}),
        Sample((ints((8,)),), {}),
        Sample((ints((4, 6)).T,), {"dim": -1}),
    ]


def _topk_samples(rng):
    return [
        Sample((_distinct(rng, (4, 3)),), {"k": 3, "dim": 0}),
        Sample((_distinct(rng, (6,)),), {"k": 0}),
        Sample((_distinct(rng, (5, 3)).T,), {"k": 2, "largest": False}),
    ]


def _repeat_interleave_samples(rng):
    return [
        _s(rng, (3,), repeats=2),
        _s(rng, (2, 3), repeats=2),
        _s(rng, (2, 3), repeats=3, dim=1),
        _s(rng, (2, 3), repeats=2, dim=-2),
        _s(rng, (0, 2), repeats=2, dim=0),
        Sample((rng.normal(size=(3, 2)).T,), {"repeats": 2, "dim": 0}),
    ]


def _var_dim_samples(rng):
    return [
        Sample((rng.normal(size=(3, 4)),), {"dim": 0, "keepdim": True}),  # unbiased
        Sample((rng.normal(size=(2, 3, 4)),), {"dim": (0, 2), "correction": 0}),
        Sample((rng.normal(size=(4, 3)).T,), {"dim": 1, "unbiased": False}),
    ]


def np_var_dim(x, dim, keepdim=False, correction=None, unbiased=None):
    ddof = correction if correction is not None else 1 if unbiased is None else int(unbiased)
    return np.var(x, axis=dim, keepdims=keepdim, ddof=ddof)


def _split_dim_samples(rng):
    return [
        Sample((rng.normal(size=(5, 3)),), {"split_size_or_sections": 2, "dim": 0}),
        Sample((rng.normal(size=(3, 4)).T,), {"split_size_or_sections": [3, 0, 1], "dim": 0}),
    ]


def _squeeze_dim_samples(rng):
    return [
        Sample((rng.normal(size=(3, 1, 4)),), {"dim": 1}),
        Sample((rng.normal(size=(3, 1, 4)),), {"dim": 0}),  # size 3: PyTorch keeps it
        Sample((rng.normal(size=(1, 2, 1)),), {"dim": (0, 1, 2)}),
    ]


def _swap_samples(rng):
    return [
        Sample((rng.normal(size=(2, 3, 4)),), {"axes": 1, "dim1": 2}),
        Sample((rng.normal(size=(2, 3)),), {"axes": 0, "dim1": -1}),
        Sample((rng.normal(size=(2, 3, 4)),), {"axes": -1, "dim1": 0}),
    ]


def _concat_dim_samples(rng):
    return [
        Sample((rng.normal(size=(2, 3)), rng.normal(size=(2, 1))), {"dim": 1}),
        Sample((rng.normal(size=(2, 3)), rng.normal(size=(4, 3))), {"dim": -2}),
    ]


# ----------------------------------------------------------------------------- the table


OPS: list[OpCase] = [
    # --- elementwise unary
    _unary("exp", fx.exp, np.exp),
    _unary("log", fx.log, np.log, "positive"),
    _unary("log1p", fx.log1p, np.log1p, "unit"),
    _unary("expm1", fx.expm1, np.expm1),
    _unary("sqrt", fx.sqrt, np.sqrt, "positive"),
    _unary("rsqrt", fx.rsqrt, lambda x: 1.0 / np.sqrt(x), "positive"),
    _unary("sin", fx.sin, np.sin),
    _unary("cos", fx.cos, np.cos),
    _unary("tanh", fx.tanh, np.tanh),
    OpCase("sigmoid", fx.sigmoid, np_sigmoid, _with_zeros_samples(unary_samples())),
    OpCase("softplus", fx.softplus, np_softplus, _with_zeros_samples(unary_samples())),
    _unary("relu", fx.relu, np_relu, "nonzero"),
    OpCase("gelu", fx.gelu, np_gelu, _with_zeros_samples(unary_samples())),
    OpCase(
        "gelu_tanh",
        lambda x: fx.gelu(x, approximate="tanh"),
        lambda x: np_gelu(x, approximate="tanh"),
        _with_zeros_samples(unary_samples()),
    ),
    OpCase("silu", fx.silu, np_silu, _with_zeros_samples(unary_samples())),
    _unary("erf", fx.erf, np_erf),
    _unary("abs", fx.abs, np.abs, "nonzero", dtypes=FLOAT_AND_INT),
    _unary("negative", fx.negative, np.negative, dtypes=FLOAT_AND_INT),
    _unary("square", fx.square, np.square, dtypes=FLOAT_AND_INT),
    _unary("reciprocal", fx.reciprocal, np.reciprocal, "nonzero"),
    _unary("sign", fx.sign, np.sign, dtypes=FLOAT_AND_INT, **NONDIFF),
    *[
        OpCase(
            name,
            getattr(fx, name),
            getattr(np, name),
            _map_samples(unary_samples(), lambda a: 3 * a),
            dtypes=FLOAT_AND_INT + ("uint8",),  # integers come back as they are, as NumPy's
            notes="half to even" if name == "round" else "",
            **NONDIFF,
        )
        for name in ("floor", "ceil", "round", "trunc")
    ],
    *[
        OpCase(
            f"{name}_bool",
            getattr(fx, name),
            getattr(np, name),
            lambda rng: [Sample((rng.uniform(size=s) > 0.5,)) for s in [(), (5,), (2, 3), (0,)]],
            dtypes=("bool",),
            **NONDIFF,
        )
        for name in ("floor", "ceil", "trunc")  # bools stay bools, as JAX; round refuses them
    ],
    OpCase(
        "round_halves",
        fx.round,
        np.round,
        lambda rng: [Sample((np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999999999999994]),))],
        **NONDIFF,
    ),
    OpCase("stop_gradient", fx.stop_gradient, lambda x: x, unary_samples(), **NONDIFF),
    *[
        OpCase(
            name,
            getattr(fx, name),
            getattr(np, name),
            _special_samples,
            out_dtype="bool",
            **NONDIFF,
        )
        for name in ("isnan", "isinf", "isfinite")
    ],
    OpCase(
        "logical_not",
        fx.logical_not,
        np.logical_not,
        _map_samples(unary_samples(), lambda a: a * (np.abs(a) > 0.5)),
        out_dtype="bool",
        **NONDIFF,
    ),
    OpCase(
        "invert",
        fx.invert,
        np.invert,
        lambda rng: [Sample((sample_array(rng, s, "int"),)) for s in [(), (5,), (2, 3), (0,)]],
        domain="int",
        dtypes=("int64", "int32", "int8", "uint8"),
        **NONDIFF,
    ),
    OpCase(
        "invert_bool",
        fx.invert,
        np.invert,
        lambda rng: [Sample((rng.uniform(size=s) > 0.5,)) for s in [(), (5,), (2, 3), (0,)]],
        dtypes=("bool",),
        **NONDIFF,
    ),
    # --- elementwise binary
    _binary("add", fx.add, np.add, dtypes=FLOAT_AND_INT),
    _binary("subtract", fx.subtract, np.subtract, dtypes=FLOAT_AND_INT),
    _binary("multiply", fx.multiply, np.multiply, dtypes=FLOAT_AND_INT),
    _binary("divide", fx.divide, np.divide, "real", "nonzero", domain="nonzero"),
    _binary("power", fx.power, np.power, "positive", "real", domain="positive"),
    _binary("maximum", fx.maximum, np.maximum, dtypes=FLOAT_AND_INT),
    _binary("minimum", fx.minimum, np.minimum, dtypes=FLOAT_AND_INT),
    OpCase("remainder", fx.remainder, np.remainder, _remainder_samples, domain="nonzero"),
    OpCase(
        "remainder_int",
        fx.remainder,
        np.remainder,
        _map_samples(binary_samples("real", "nonzero"), lambda a: np.rint(3 * a).astype(np.int64)),
        domain="int",
        dtypes=("int64", "int32", "int8"),
        **NONDIFF,
    ),
    _binary(
        "floor_divide",
        fx.floor_divide,
        np.floor_divide,
        "real",
        "nonzero",
        domain="nonzero",
        dtypes=FLOAT_AND_INT,
        **NONDIFF,
    ),
    # weak Python scalars on either side
    OpCase(
        "add_scalar", lambda x, c: fx.add(x, c), lambda x, c: np.add(x, c), _scalar_samples(2.5)
    ),
    OpCase(
        "multiply_scalar",
        lambda x, c: fx.multiply(c, x),
        lambda x, c: np.multiply(c, x),
        _scalar_samples(-3.0),
    ),
    OpCase(
        "subtract_scalar",
        lambda x, c: fx.subtract(c, x),
        lambda x, c: np.subtract(c, x),
        _scalar_samples(1.5),
    ),
    OpCase(
        "divide_scalar",
        lambda x, c: fx.divide(c, x),
        lambda x, c: np.divide(c, x),
        _scalar_samples(2.0, "nonzero"),
        domain="nonzero",
    ),
    OpCase(
        "power_scalar",
        lambda x, c: fx.power(x, c),
        lambda x, c: np.power(x, c),
        _scalar_samples(2.5, "positive"),
        domain="positive",
    ),
    OpCase(
        "power_scalar_int",
        lambda x, c: fx.power(x, c),
        lambda x, c: np.power(x, c),
        _scalar_samples(3),  # negative bases: the exponent is a constant, no log x is formed
        dtypes=FLOAT_AND_INT,
    ),
    OpCase(
        "power_scalar_base",
        lambda x, c: fx.power(c, x),
        lambda x, c: np.power(c, x),
        _scalar_samples(1.7),
    ),
    OpCase(
        "add_int_scalar",
        lambda x, c: fx.add(x, c),
        lambda x, c: np.add(x, c),
        _scalar_samples(3),
        dtypes=FLOAT_AND_INT,
    ),
    *[
        OpCase(
            name,
            getattr(fx, name),
            getattr(np, name),
            _map_samples(binary_samples(), lambda a: np.round(2 * a) / 2),
            dtypes=FLOAT_AND_INT,
            out_dtype="bool",
            **NONDIFF,
        )  # fmt: skip
        for name in ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal")
    ],
    *[
        OpCase(
            name,
            getattr(fx, name),
            getattr(np, name),
            _map_samples(binary_samples(), lambda a: a * (np.abs(a) > 0.5)),
            out_dtype="bool",
            **NONDIFF,
        )  # fmt: skip
        for name in ("logical_and", "logical_or", "logical_xor")
    ],
    *[
        OpCase(
            name,
            getattr(fx, name),
            getattr(np, name),
            _map_samples(binary_samples(), lambda a: np.rint(4 * a).astype(np.int64)),
            domain="int",
            dtypes=("int64", "int32", "int8", "uint8"),
            **NONDIFF,
        )  # fmt: skip
        for name in ("bitwise_and", "bitwise_or", "bitwise_xor")
    ],
    *[
        OpCase(
            f"{name}_bool",
            getattr(fx, name),
            getattr(np, name),
            _map_samples(binary_samples(), lambda a: a > 0),
            dtypes=("bool",),
            **NONDIFF,
        )  # fmt: skip
        for name in ("bitwise_and", "bitwise_or", "bitwise_xor")
    ],
    OpCase("where", fx.where, np.where, _where_samples, diff_args=(1, 2), dtypes=FLOAT_AND_INT),
    OpCase(
        "where_scalar",
        lambda c, x, other: fx.where(c, x, other),
        lambda c, x, other: np.where(c, x, other),
        lambda rng: [
            Sample((rng.uniform(size=s) > 0.5, rng.normal(size=s)), {"other": 0.5})
            for s in [(), (5,), (2, 3), (0, 2)]
        ],
        diff_args=(1,),
    ),
    OpCase("clip", fx.clip, np.clip, _clip_samples),
    OpCase("clip_tensor", fx.clip, np.clip, _clip_tensor_samples),
    OpCase(
        "astype",
        fx.astype,
        lambda x, dtype: x.astype(_np_dtype(dtype)),
        lambda rng: [
            Sample((rng.normal(size=(3, 4)),), {"dtype": "float32"}),
            Sample((rng.normal(size=(3, 4)),), {"dtype": "float64"}),
            Sample((rng.normal(size=(5,)),), {"dtype": "float16"}),
            Sample((rng.normal(size=(5,)),), {"dtype": "bfloat16"}),
            Sample((rng.normal(size=()),), {"dtype": "float64"}),
            Sample((rng.normal(size=(0, 2)),), {"dtype": "float32"}),
            Sample((rng.normal(size=(4, 3)).T,), {"dtype": "float16"}),
        ],
        out_dtype=_kwarg_dtype,
        rtol={"float64": 1e-12, "float32": 1e-5, "float16": 1e-3, "bfloat16": 1e-2},
    ),
    OpCase(
        "astype_int",
        fx.astype,
        lambda x, dtype: x.astype(_np_dtype(dtype)),
        lambda rng: [
            Sample((3 * rng.normal(size=(3, 4)),), {"dtype": "int32"}),
            Sample((3 * rng.normal(size=(5,)),), {"dtype": "int64"}),
            Sample((3 * rng.normal(size=(5,)),), {"dtype": "int8"}),
            Sample((_with_zeros(rng, (2, 3)),), {"dtype": "bool"}),
            Sample((3 * rng.normal(size=()),), {"dtype": "int64"}),
            Sample((rng.normal(size=(0,)),), {"dtype": "int32"}),
        ],
        out_dtype=_kwarg_dtype,
        dtypes=FLOAT_AND_INT,
        **NONDIFF,
    ),
    # --- reductions
    OpCase(
        "sum",
        fx.sum,
        np.sum,
        _reduce_samples(AXES),
        dtypes=FLOAT_AND_INT,
        out_dtype=_int_to_int64,
    ),
    OpCase("mean", fx.mean, np.mean, _reduce_samples(AXES, empty=False)),
    OpCase("var", fx.var, np.var, _var_samples),
    OpCase(
        "std",
        fx.std,
        np.std,
        # not over a single element: std is sqrt(0) there, a kink
        lambda rng: [s for s in _var_samples(rng) if np.ndim(s.args[0])],
    ),
    OpCase("max", fx.max, np.max, _reduce_samples(AXES, empty=False), dtypes=FLOAT_AND_INT),
    OpCase("min", fx.min, np.min, _reduce_samples(AXES, empty=False), dtypes=FLOAT_AND_INT),
    OpCase("amax", fx.amax, np.max, _reduce_samples(AXES, empty=False), dtypes=FLOAT_AND_INT),
    OpCase("amin", fx.amin, np.min, _reduce_samples(AXES, empty=False), dtypes=FLOAT_AND_INT),
    OpCase(
        "prod",
        fx.prod,
        np.prod,
        lambda rng: _reduce_samples(AXES, domain="nonzero")(rng) + _prod_zeros_samples(rng),
        dtypes=FLOAT_AND_INT,
        out_dtype=_int_to_int64,
    ),
    OpCase(
        "argmax",
        fx.argmax,
        np.argmax,
        lambda rng: [s for s in _arg_samples(rng) if np.size(s.args[0])],
        out_dtype="int64",
        dtypes=FLOAT_AND_INT,
        **NONDIFF,
    ),
    OpCase(
        "argmin",
        fx.argmin,
        np.argmin,
        lambda rng: [s for s in _arg_samples(rng) if np.size(s.args[0])],
        out_dtype="int64",
        dtypes=FLOAT_AND_INT,
        **NONDIFF,
    ),
    OpCase(
        "argsort",
        fx.argsort,
        np_argsort,
        _sort_samples(_ties),
        out_dtype="int64",
        dtypes=FLOAT_AND_INT + ("float16", "uint8", "uint32", "int16"),
        **NONDIFF,
    ),
    OpCase(
        "argsort_bool",
        fx.argsort,
        np_argsort,
        _sort_samples(lambda rng, shape: rng.uniform(size=shape) > 0.5),
        out_dtype="int64",
        dtypes=("bool",),
        **NONDIFF,
    ),
    OpCase(
        "argsort_special",
        fx.argsort,
        np_argsort,
        _sort_samples(_special_ties),
        out_dtype="int64",
        **NONDIFF,
    ),
    OpCase(
        "sort",
        fx.sort,
        np_sort,
        # no ties: where keys tie, a perturbation reorders them and the derivative jumps
        lambda rng: [
            Sample((rng.normal(size=(3, 5)),), {"axis": 0}),
            Sample((rng.normal(size=(4, 3)),)),
            Sample((rng.normal(size=(6,)),)),
            Sample((rng.normal(size=(3, 5)),), {"descending": True}),
            Sample((rng.normal(size=(4, 3)),), {"axis": 0, "descending": True}),
        ],
    ),
    OpCase(  # integer keys only: float ties are argsort's cases (sort is take_along_axis of it)
        "sort_ties",
        fx.sort,
        np_sort,
        _sort_samples(_ties),
        dtypes=("int64", "int32", "int16", "int8", "uint8", "uint32"),
    ),
    OpCase(
        "sort_bool",
        fx.sort,
        np_sort,
        _sort_samples(lambda rng, shape: rng.uniform(size=shape) > 0.5),
        dtypes=("bool",),
    ),
    OpCase(
        "top_k",
        lambda x: fx.top_k(x, 2)[0],
        lambda x: -np.sort(-x, axis=-1)[..., :2],
        lambda rng: [Sample((rng.normal(size=(3, 5)),)), Sample((rng.normal(size=(6,)),))],
    ),
    OpCase("logsumexp", fx.logsumexp, np_logsumexp, _logsumexp_samples),
    OpCase("all", fx.all, np.all, _logical_reduce_samples, out_dtype="bool", **NONDIFF),
    OpCase("any", fx.any, np.any, _logical_reduce_samples, out_dtype="bool", **NONDIFF),
    OpCase(
        "cumsum",
        fx.cumsum,
        np.cumsum,
        _cumsum_samples,
        dtypes=FLOAT_AND_INT,
        out_dtype=_int_to_int64,
    ),
    OpCase("softmax", fx.softmax, np_softmax, _softmax_samples),
    OpCase("log_softmax", fx.log_softmax, np_log_softmax, _softmax_samples),
    # --- linear algebra
    OpCase("matmul", fx.matmul, np.matmul, _matmul_samples, dtypes=FLOAT_AND_INT),
    OpCase("dot", fx.dot, np.dot, _dot_samples),
    OpCase(
        "einsum",
        lambda *xs, subscripts: fx.einsum(subscripts, *xs),
        lambda *xs, subscripts: np.einsum(subscripts, *xs),
        _einsum_samples,
    ),
    OpCase("tensordot", fx.tensordot, np.tensordot, _tensordot_samples),
    OpCase("outer", fx.outer, np.outer, _outer_samples),
    # --- shape
    OpCase("reshape", fx.reshape, np.reshape, _reshape_samples, dtypes=FLOAT_AND_INT),
    OpCase(
        "ravel",
        fx.ravel,
        np.ravel,
        lambda rng: [s for s in _transpose_samples(rng) if not s.kwargs],
    ),
    OpCase("squeeze", fx.squeeze, np.squeeze, _squeeze_samples),
    OpCase("expand_dims", fx.expand_dims, np.expand_dims, _expand_dims_samples),
    OpCase("broadcast_to", fx.broadcast_to, np.broadcast_to, _broadcast_to_samples),
    OpCase(
        "broadcast_arrays",
        fx.broadcast_arrays,
        lambda *xs: list(np.broadcast_arrays(*xs)),
        _broadcast_arrays_samples,
    ),
    OpCase("flatten", fx.flatten, np_flatten, _flatten_samples),
    OpCase(
        "concatenate",
        lambda *xs, axis: fx.concatenate(xs, axis=axis),
        lambda *xs, axis: np.concatenate(xs, axis=axis),
        _concat_samples,
        dtypes=FLOAT_AND_INT,
    ),
    OpCase(
        "stack",
        lambda *xs, axis: fx.stack(xs, axis=axis),
        lambda *xs, axis: np.stack(xs, axis=axis),
        _stack_samples,
    ),
    OpCase("split", fx.split, np.split, _split_samples),
    OpCase("chunk", fx.chunk, np_chunk, _chunk_samples),
    OpCase("pad", fx.pad, np.pad, _pad_samples),
    OpCase("flip", fx.flip, np.flip, _flip_samples),
    OpCase("moveaxis", fx.moveaxis, np.moveaxis, _moveaxis_samples),
    OpCase("swapaxes", fx.swapaxes, np.swapaxes, _swapaxes_samples),
    OpCase("tile", fx.tile, np.tile, _tile_samples),
    OpCase("repeat", fx.repeat, np.repeat, _repeat_samples),
    OpCase("slice_tensor", fx.slice_tensor, np_slice_tensor, _slice_tensor_samples),
    OpCase("transpose", fx.transpose, np.transpose, _transpose_samples, dtypes=FLOAT_AND_INT),
    OpCase("tril", fx.tril, np.tril, _tril_samples),
    OpCase("triu", fx.triu, np.triu, _tril_samples),
    # --- indexing
    OpCase("take", fx.take, np.take, _take_samples, dtypes=FLOAT_AND_INT),
    OpCase("take_along_axis", fx.take_along_axis, np.take_along_axis, _take_along_axis_samples),
    OpCase(
        "gather",
        fx.gather,
        np_gather,
        _gather_samples,
    ),
    OpCase(
        "scatter_add",
        lambda x, src, dim, index: fx.scatter_add(x, dim, index, src),
        np_scatter_add,
        _scatter_add_samples,
    ),
    OpCase(
        "one_hot",
        fx.one_hot,
        np_one_hot,
        _one_hot_samples,
        domain="int",
        dtypes=("int64", "int32"),
        out_dtype=lambda d, kw: str(kw.get("dtype", "float32")),
        **NONDIFF,
    ),
    OpCase("getitem_basic", _index, _index, GETITEM_BASIC, dtypes=FLOAT_AND_INT),
    OpCase("getitem_negstep", _index, _index, GETITEM_NEGSTEP),
    OpCase("getitem_newaxis", _index, _index, GETITEM_NEWAXIS),
    OpCase("getitem_intarray", _index, _index, GETITEM_INTARRAY, dtypes=FLOAT_AND_INT),
    OpCase("getitem_mask", _index, _index, GETITEM_MASK),
    OpCase(
        "getitem_fn",
        lambda x, index: fx.getitem(x, index),
        _index,
        _getitem(((3, 4), (slice(None, None, -1), [0, 2])), ((2, 3), (None, 1))),
    ),
    # ------------------------------------------------------------------ PyTorch's names
    OpCase("clone", fx.clone, np.copy, unary_samples(), dtypes=FLOAT_AND_INT),
    OpCase(
        "masked_fill",
        fx.masked_fill,
        lambda x, mask, value: np.where(mask, value, x),
        _masked_fill_samples,
    ),
    OpCase(
        "index_put",
        lambda x, values, indices, accumulate=False: fx.index_put(
            x, tuple(fx.asarray(i) for i in indices), values, accumulate
        ),
        np_index_put,
        _index_put_samples,
    ),
    *(
        OpCase(
            f"index_put_at_{mode}",
            lambda x, v, index, mode=mode: getattr(x.at[index], mode)(v),
            np_at(ufunc),
            _at_samples,
        )
        for mode, ufunc in (("multiply", np.multiply), ("min", np.minimum), ("max", np.maximum))
    ),
    OpCase(
        "scatter",
        lambda x, src, dim, index: fx.scatter(x, dim, fx.asarray(index), src),
        np_scatter,
        _scatter_samples,
    ),
    OpCase(
        "scatter_value",
        lambda x, dim, index: fx.scatter(x, dim, fx.asarray(index), value=2.5),
        lambda x, dim, index: np_scatter(x, np.full(index.shape, 2.5), dim, index),
        lambda rng: [Sample(c.args[:1], c.kwargs) for c in _scatter_samples(rng)],
    ),
    OpCase("norm", fx.norm, np_norm, _norm_samples),
    OpCase("norm_zero", fx.norm, np_norm, _norm_zero_samples, **NONDIFF),
    OpCase("median", fx.median, np.median, _median_samples),
    OpCase(
        "median_dim",
        lambda x, dim, keepdim=False: tuple(fx.median(x, dim=dim, keepdim=keepdim)),
        np_median_dim,
        _dim_samples,
        out_dtype=_values_indices,
    ),
    OpCase(
        "max_dim",
        lambda x, dim, keepdim=False: tuple(fx.max(x, dim=dim, keepdim=keepdim)),
        np_max_dim,
        _dim_samples,
        out_dtype=_values_indices,
    ),
    OpCase(
        "min_dim",
        lambda x, dim, keepdim=False: tuple(x.min(dim=dim, keepdim=keepdim)),
        np_min_dim,
        _dim_samples,
        out_dtype=_values_indices,
    ),
    OpCase(
        "sort_dim",
        lambda x, dim, keepdim=False: tuple(x.sort(dim=dim)),
        lambda x, dim, keepdim=False: (np.sort(x, axis=dim), np.argsort(x, axis=dim)),
        _dim_samples,
        out_dtype=_values_indices,
    ),
    OpCase(
        "mode",  # the indices: the values' gradient jumps wherever ties break
        lambda x, **kw: fx.mode(x, **kw).indices,  # (values: tests/test_torch_face.py)
        lambda x, **kw: np_mode(x, **kw)[1],
        _mode_samples,
        out_dtype="int64",
        **NONDIFF,
    ),
    OpCase(
        "topk",
        lambda x, **kw: tuple(fx.topk(x, **kw)),
        np_topk,
        _topk_samples,
        out_dtype=_values_indices,
    ),
    OpCase(
        "repeat_interleave",
        fx.repeat_interleave,
        lambda x, repeats, dim=None: np.repeat(x, repeats, axis=dim),
        _repeat_interleave_samples,
    ),
    OpCase("var_dim", fx.var, np_var_dim, _var_dim_samples),
    OpCase(
        "std_dim",
        fx.std,
        lambda x, **kw: np.sqrt(np_var_dim(x, **kw)),
        _var_dim_samples,
    ),
    OpCase(
        "split_dim",
        lambda x, split_size_or_sections, dim: fx.split(x, split_size_or_sections, dim=dim),
        np_split_sizes,
        _split_dim_samples,
    ),
    OpCase(
        "squeeze_dim",
        lambda x, dim: x.squeeze(dim=dim),
        lambda x, dim: np.squeeze(x, tuple(a for a in np.atleast_1d(dim) if x.shape[a] == 1)),
        _squeeze_dim_samples,
    ),
    OpCase(
        "transpose_swap",
        fx.transpose,
        lambda x, axes, dim1: np.swapaxes(x, axes, dim1),
        _swap_samples,
    ),
    OpCase(
        "concatenate_dim",
        lambda x, y, dim: fx.cat([x, y], dim=dim),
        lambda x, y, dim: np.concatenate([x, y], axis=dim),
        _concat_dim_samples,
    ),
]


# ----------------------------------------------------------------------------- the array API's


def _shift_samples(rng):
    """Integers and shift counts in [0, 6], so that no bit leaves an int8."""
    return [
        Sample((rng.integers(-8, 9, a).astype(np.int64), rng.integers(0, 7, b).astype(np.int64)))
        for a, b in BINARY_SHAPES
    ]


def _signbit_samples(rng):
    return _special_samples(rng) + [Sample((np.array([0.0, -0.0, -np.inf, np.inf, 1.0, -2.0]),))]


OPS += [
    _unary("tan", fx.tan, np.tan, "unit"),
    _unary("sinh", fx.sinh, np.sinh),
    _unary("cosh", fx.cosh, np.cosh),
    _unary("asin", fx.asin, np.arcsin, "unit"),
    _unary("acos", fx.acos, np.arccos, "unit"),
    _unary("atan", fx.atan, np.arctan),
    _unary("asinh", fx.asinh, np.arcsinh),
    OpCase(
        "acosh",
        fx.acosh,
        np.arccosh,
        _map_samples(unary_samples("positive"), lambda a: a + 1.0),  # in (1.5, 3)
    ),
    _unary("atanh", fx.atanh, np.arctanh, "unit"),
    _unary("log2", fx.log2, np.log2, "positive"),
    _unary("log10", fx.log10, np.log10, "positive"),
    _binary("atan2", fx.atan2, np.arctan2, "nonzero", "nonzero", domain="nonzero"),
    _binary("hypot", fx.hypot, np.hypot, "nonzero", "nonzero", domain="nonzero"),
    _binary("copysign", fx.copysign, np.copysign, "nonzero", "nonzero", domain="nonzero"),
    _binary("logaddexp", fx.logaddexp, np.logaddexp),
    _binary("nextafter", fx.nextafter, np.nextafter, **NONDIFF),
    *[
        OpCase(
            name,
            getattr(fx, name),
            getattr(np, name.removeprefix("bitwise_")),
            _shift_samples,
            domain="int",
            dtypes=("int64", "int32", "int8"),
            **NONDIFF,
        )
        for name in ("bitwise_left_shift", "bitwise_right_shift")
    ],
    OpCase("signbit", fx.signbit, np.signbit, _signbit_samples, out_dtype="bool", **NONDIFF),
    OpCase(
        "signbit_int",
        fx.signbit,
        np.signbit,
        lambda rng: [Sample((sample_array(rng, s, "int"),)) for s in [(), (5,), (2, 3), (0,)]],
        domain="int",
        dtypes=("int64", "int8"),
        out_dtype="bool",
        **NONDIFF,
    ),
    _unary("positive", fx.positive, np.positive, dtypes=FLOAT_AND_INT),
    # of real tensors (complex ones: tests/test_array_api.py)
    _unary("real", fx.real, np.real, dtypes=FLOAT_AND_INT),
    _unary("imag", fx.imag, np.imag, dtypes=FLOAT_AND_INT, **NONDIFF),  # a constant 0
    _unary("conj", fx.conj, np.conj, dtypes=FLOAT_AND_INT),
]


def _np_cumulative(fn):
    def run(x, axis=None, include_initial=False):
        x, axis = (x.reshape(-1), 0) if axis is None else (x, axis)
        out = fn(x, axis=axis)
        if not include_initial:
            return out
        shape = x.shape[:axis] + (1,) + x.shape[axis + 1 :]
        return np.concatenate([np.full(shape, float(fn is np.cumprod)), out], axis=axis)

    return run


def _cumulative_samples(rng):
    return [
        _s(rng, (5,)),
        _s(rng, (3, 4), axis=1),
        _s(rng, (3, 4), axis=0, include_initial=True),
        _s(rng, (2, 0, 3), axis=1, include_initial=True),
        _s(rng, (0,), include_initial=True),
    ]


def _np_diff(x, axis=-1, n=1, prepend=None, append=None):
    return np.diff(x, n=n, axis=axis)


def _vecdot_samples(rng):
    return [
        Sample((rng.normal(size=(3, 4)), rng.normal(size=(4,))), {}),
        Sample((rng.normal(size=(2, 3)), rng.normal(size=(4, 2, 3))), {"axis": -1}),
        Sample((rng.normal(size=(3, 2)), rng.normal(size=(3, 2))), {"axis": 0}),
        Sample((rng.normal(size=(0, 3)), rng.normal(size=(3,))), {}),
    ]


OPS += [
    OpCase(
        "concat",
        lambda *xs, axis: fx.concat(xs, axis=axis),
        lambda *xs, axis: np.concatenate(xs, axis=axis),
        lambda rng: _concat_samples(rng) + [Sample((rng.normal(size=(2, 3)), rng.normal(size=(4,))), {"axis": None})],
        dtypes=FLOAT_AND_INT,
    ),
    OpCase("permute_dims", fx.permute_dims, np.transpose, lambda rng: [
        _s(rng, (2, 3, 4), axes=(2, 0, 1)), _s(rng, (3, 4), axes=(0, 1)), _s(rng, (), axes=())]),
    OpCase("matrix_transpose", fx.matrix_transpose, lambda x: np.swapaxes(x, -1, -2), lambda rng: [
        _s(rng, (2, 3)), _s(rng, (4, 2, 3)), _s(rng, (0, 3, 1))]),
    OpCase(
        "unstack",
        fx.unstack,
        lambda x, axis=0: tuple(np.moveaxis(x, axis, 0)),
        lambda rng: [_s(rng, (3, 4)), _s(rng, (2, 3, 4), axis=-1), _s(rng, (2, 0), axis=0)],
    ),
    OpCase("vecdot", fx.vecdot, lambda a, b, axis=-1: np.sum(a * b, axis=axis), _vecdot_samples),
    OpCase("roll", fx.roll, np.roll, lambda rng: [
        _s(rng, (5,), shift=2), _s(rng, (3, 4), shift=-1, axis=1), _s(rng, (3, 4), shift=7),
        _s(rng, (2, 3, 4), shift=(1, 2), axis=(0, 2)), _s(rng, (0, 3), shift=1, axis=0)]),
    OpCase(
        "meshgrid",
        fx.meshgrid,
        lambda *xs, indexing="xy": list(np.meshgrid(*xs, indexing=indexing)),
        lambda rng: [
            Sample((rng.normal(size=(3,)), rng.normal(size=(4,)))),
            Sample((rng.normal(size=(3,)), rng.normal(size=(4,)), rng.normal(size=(2,))), {"indexing": "ij"}),
            Sample((rng.normal(size=(2,)), rng.normal(size=(0,)), rng.normal(size=(2,)))),
            Sample((rng.normal(size=(3,)),)),
        ],
    ),
    OpCase("cumulative_sum", fx.cumulative_sum, _np_cumulative(np.cumsum), _cumulative_samples),
    OpCase("cumulative_prod", fx.cumulative_prod, _np_cumulative(np.cumprod), _cumulative_samples),
    OpCase("diff", fx.diff, _np_diff, lambda rng: [
        _s(rng, (5,)), _s(rng, (3, 4), axis=0), _s(rng, (3, 6), n=2), _s(rng, (2, 1)), _s(rng, (0, 3))]),
    OpCase(
        "count_nonzero",
        fx.count_nonzero,
        np.count_nonzero,
        lambda rng: [Sample((_with_zeros(rng, s),), kw) for s, kw in [
            ((5,), {}), ((3, 4), {"axis": 1}), ((3, 4), {"axis": (0, 1)}), ((0, 2), {"axis": 0})]],
        out_dtype="int64",
        **NONDIFF,
    ),
]  # fmt: skip


# ----------------------------------------------------------------------------- fx.linalg


def _well_conditioned(rng, shape):
    """Matrices with a dominant diagonal (invertible, far from singular)."""
    return rng.normal(size=shape) + 3.0 * np.eye(shape[-1])


def _spd(rng, shape):
    """Symmetric positive-definite matrices with well-separated eigenvalues."""
    a = rng.normal(size=shape)
    n = shape[-1]
    return np.swapaxes(a, -1, -2) @ a / n + np.diag(np.arange(1.0, n + 1))


def _matrix_samples(make):
    return lambda rng: [
        Sample((make(rng, (3, 3)),)),
        Sample((make(rng, (2, 4, 4)),)),
        Sample((make(rng, (1, 1)),)),
        Sample((make(rng, (0, 2, 2)),)),
    ]


def _rect_samples(rng):
    return [Sample((rng.normal(size=s),)) for s in [(3, 3), (4, 2), (2, 5, 3), (2, 4)]]


def _tall_samples(rng):
    return [Sample((rng.normal(size=s),)) for s in [(3, 3), (4, 2), (2, 5, 3), (0, 3, 2)]]


def _solve_samples(rng):
    return [
        Sample((_well_conditioned(rng, (3, 3)), rng.normal(size=(3, 2)))),
        Sample((_well_conditioned(rng, (2, 4, 4)), rng.normal(size=(2, 4, 1)))),
        Sample((_well_conditioned(rng, (3, 3)), rng.normal(size=(3,)))),
        Sample((_well_conditioned(rng, (2, 3, 3)), rng.normal(size=(3, 2)))),
    ]


def _np_solve(a, b):
    if b.ndim == 1:
        return np.linalg.solve(a, b[:, None])[..., 0]
    return np.linalg.solve(a, np.broadcast_to(b, a.shape[:-2] + b.shape[-2:]))


def _np_vector_norm(a, axis=None, ord=2, keepdims=False):
    if ord == np.inf:
        return np.max(np.abs(a), axis=axis, keepdims=keepdims)
    return np.sum(np.abs(a) ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def _np_norm_samples(rng):
    return [
        _s(rng, (5,)),
        _s(rng, (3, 4), axis=1, ord=1),
        _s(rng, (3, 4), axis=0, ord=3, keepdims=True),
        _s(rng, (2, 3, 4), axis=(0, 2)),
        _s(rng, (6,), ord=np.inf),
    ]


OPS += [
    OpCase("linalg_inv", fx.linalg.inv, np.linalg.inv, _matrix_samples(_well_conditioned)),
    OpCase("linalg_solve", fx.linalg.solve, _np_solve, _solve_samples),
    OpCase("linalg_det", fx.linalg.det, np.linalg.det, _matrix_samples(_well_conditioned)),
    OpCase(
        "linalg_slogdet",
        fx.linalg.slogdet,
        lambda a: tuple(np.linalg.slogdet(a)),
        _matrix_samples(_well_conditioned),
    ),
    OpCase("linalg_cholesky", fx.linalg.cholesky, np.linalg.cholesky, _matrix_samples(_spd)),
    OpCase(
        "linalg_cholesky_upper",
        lambda a: fx.linalg.cholesky(a, upper=True),
        lambda a: np.linalg.cholesky(a, upper=True),
        _matrix_samples(_spd),
    ),
    OpCase("linalg_eigh", fx.linalg.eigh, lambda a: tuple(np.linalg.eigh(a)), _matrix_samples(_spd)),
    OpCase("linalg_eigvalsh", fx.linalg.eigvalsh, np.linalg.eigvalsh, _matrix_samples(_spd)),
    OpCase(
        "linalg_svd",
        lambda a: fx.linalg.svd(a, full_matrices=False),
        lambda a: tuple(np.linalg.svd(a, full_matrices=False)),
        _rect_samples,
    ),
    # a full SVD of a non-square matrix: its extra vectors are arbitrary, no derivative
    OpCase(
        "linalg_svd_full",
        fx.linalg.svd,
        lambda a: tuple(np.linalg.svd(a)),
        lambda rng: [Sample((rng.normal(size=s),)) for s in [(4, 2), (2, 2, 3)]],
        **NO_GRADIENT_YET,
    ),
    OpCase("linalg_svdvals", fx.linalg.svdvals, np.linalg.svdvals, _rect_samples),
    OpCase("linalg_qr", fx.linalg.qr, lambda a: tuple(np.linalg.qr(a)), _tall_samples),
    # as JAX: derivatives of the QR of a wide matrix are not implemented
    OpCase(
        "linalg_qr_wide",
        fx.linalg.qr,
        lambda a: tuple(np.linalg.qr(a)),
        lambda rng: [Sample((rng.normal(size=s),)) for s in [(2, 4), (3, 2, 3)]],
        **NO_GRADIENT_YET,
    ),
    OpCase("linalg_pinv", fx.linalg.pinv, np.linalg.pinv, _rect_samples),
    OpCase(
        "linalg_matrix_rank",
        fx.linalg.matrix_rank,
        np.linalg.matrix_rank,
        lambda rng: _rect_samples(rng) + [Sample((np.ones((3, 3)),))],
        out_dtype="int64",
        **NONDIFF,
    ),
    OpCase(
        "linalg_matrix_norm",
        fx.linalg.matrix_norm,
        lambda a, ord="fro", keepdims=False: np.linalg.norm(a, ord=ord, axis=(-2, -1), keepdims=keepdims),
        lambda rng: [_s(rng, (3, 4)), _s(rng, (2, 3, 3), ord=1), _s(rng, (3, 2), ord=np.inf, keepdims=True)],
    ),
    OpCase(
        "linalg_vector_norm",
        fx.linalg.vector_norm,
        _np_vector_norm,
        _np_norm_samples,
    ),
    OpCase(
        "linalg_norm",
        fx.linalg.norm,
        np.linalg.norm,
        lambda rng: [_s(rng, (5,)), _s(rng, (3, 4)), _s(rng, (3, 4), ord=1), _s(rng, (2, 3, 4), axis=(0, 2))],
    ),
    OpCase(
        "linalg_diagonal",
        fx.linalg.diagonal,
        lambda a, offset=0: np.diagonal(a, offset, -2, -1),
        lambda rng: [_s(rng, (3, 3)), _s(rng, (2, 3, 4), offset=1), _s(rng, (4, 3), offset=-2), _s(rng, (2, 2), offset=5)],
    ),
    OpCase(
        "linalg_trace",
        fx.linalg.trace,
        lambda a, offset=0: np.trace(a, offset, -2, -1),
        lambda rng: [_s(rng, (3, 3)), _s(rng, (2, 3, 4), offset=1), _s(rng, (4, 3), offset=-1)],
    ),
    OpCase(
        "linalg_outer",
        fx.linalg.outer,
        np.outer,
        lambda rng: [Sample((rng.normal(size=(3,)), rng.normal(size=(4,)))), Sample((rng.normal(size=(0,)), rng.normal(size=(2,))))],
    ),
    OpCase(
        "linalg_cross",
        fx.linalg.cross,
        lambda a, b, axis=-1: np.cross(a, b, axis=axis),
        lambda rng: [
            Sample((rng.normal(size=(3,)), rng.normal(size=(3,)))),
            Sample((rng.normal(size=(2, 3)), rng.normal(size=(3,)))),
            Sample((rng.normal(size=(3, 4)), rng.normal(size=(3, 4))), {"axis": 0}),
        ],
    ),
    OpCase(
        "linalg_matrix_power",
        lambda a, n: fx.linalg.matrix_power(a, n),
        lambda a, n: np.linalg.matrix_power(a, n),
        lambda rng: [
            Sample((_well_conditioned(rng, (3, 3)) / 3,), {"n": n}) for n in (1, 3, -2)
        ] + [Sample((_well_conditioned(rng, (2, 2, 2)) / 3,), {"n": 2})],
    ),
    OpCase(
        "linalg_matrix_power_zero",
        lambda a: fx.linalg.matrix_power(a, 0),
        lambda a: np.linalg.matrix_power(a, 0),
        _matrix_samples(_well_conditioned),
        **NONDIFF,  # the identity: a constant
    ),
]  # fmt: skip


# ----------------------------------------------------------------------------- complex
# Complex samples of the ops that take them, so that the five checks run on complex
# inputs: jvp vs central differences along a complex direction, vjp by the identity for
# the real inner product Re(sum(a * b)) (JAX's convention: unconjugated), vmap, jit.
# (svd and eigh, whose complex vectors are fixed only up to a phase, are checked in
# tests/test_complex_autodiff.py on phase-invariant functions, against JAX.)


def _complex(rng, shape, domain="complex"):
    """Complex draws; "right": real part >= 0.5, away from the branch cut of log, sqrt
    and powers on the negative real axis; "nonzero": |z| in [0.5, 2]."""
    z = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    if domain == "right":
        return np.abs(z.real) + 0.5 + 1j * z.imag
    if domain == "nonzero":
        return z / np.abs(z) * rng.uniform(0.5, 2.0, shape)
    return z


def _complex_unary(domain="complex"):
    def make(rng):
        z = lambda shape: _complex(rng, shape, domain)  # noqa: E731
        return [
            Sample((z(()),)),
            Sample((z((5,)),)),
            Sample((z((3, 4)),)),
            Sample((z((0, 3)),)),
            Sample((z((4, 3)).T,)),
            Sample((strided(z((2, 3))),)),
        ]

    return make


def _complex_binary(domain_x="complex", domain_y="complex"):
    def make(rng):
        out = [
            Sample((_complex(rng, a, domain_x), _complex(rng, b, domain_y)))
            for a, b in BINARY_SHAPES
        ]
        out.append(
            Sample((_complex(rng, (4, 3), domain_x).T, strided(_complex(rng, (3, 4), domain_y))))
        )
        return out

    return make


def _real_of(d, kwargs):
    return {"complex128": "float64", "complex64": "float32"}[d]


_COMPLEX_TOL = {"complex128": 1e-12, "complex64": 1e-5, "float64": 1e-12, "float32": 1e-5}


def _complex_case(name, fx_fn, np_fn, samples, **kw):
    return OpCase(
        f"{name}_complex",
        fx_fn,
        np_fn,
        samples,
        dtypes=("complex128", "complex64"),
        rtol=_COMPLEX_TOL,
        atol=_COMPLEX_TOL,
        **kw,
    )


def _hpd(rng, shape):
    """Hermitian positive-definite matrices with well-separated eigenvalues."""
    a = _complex(rng, shape)
    return np.conj(np.swapaxes(a, -1, -2)) @ a / shape[-1] + np.diag(np.arange(1.0, shape[-1] + 1))


def _complex_matrices(make):
    return lambda rng: [Sample((make(rng, s),)) for s in [(3, 3), (2, 4, 4), (1, 1)]]


def _complex_well_conditioned(rng, shape):
    return _complex(rng, shape) + 3.0 * np.eye(shape[-1])


OPS += [
    *[_complex_case(name, getattr(fx, name), getattr(np, name), _complex_unary(domain))
      for name, domain in [("exp", "complex"), ("log", "right"), ("sqrt", "right"), ("sin", "complex"),
                           ("cos", "complex"), ("tanh", "complex"), ("expm1", "complex"),
                           ("log1p", "right"), ("tan", "complex"), ("sinh", "complex"),
                           ("cosh", "complex"), ("negative", "complex"), ("square", "complex"),
                           ("conj", "complex")]],
    _complex_case("abs", fx.abs, np.abs, _complex_unary("nonzero"), out_dtype=_real_of),
    _complex_case("angle", fx.angle, np.angle, _complex_unary("right"), out_dtype=_real_of),
    _unary("angle", fx.angle, np.angle, domain="nonzero"),  # of reals: 0 or pi, a constant
    _complex_case("real", fx.real, np.real, _complex_unary(), out_dtype=_real_of),
    _complex_case("imag", fx.imag, np.imag, _complex_unary(), out_dtype=_real_of),
    *[_complex_case(name, getattr(fx, name), getattr(np, name), _complex_binary(dx, dy))
      for name, dx, dy in [("add", "complex", "complex"), ("subtract", "complex", "complex"),
                           ("multiply", "complex", "complex"), ("divide", "complex", "nonzero"),
                           ("power", "right", "complex")]],
    _complex_case("sum", fx.sum, np.sum, lambda rng: [
        Sample((_complex(rng, (3, 4)),), {"axis": 1}), Sample((_complex(rng, (2, 3)),)),
        Sample((_complex(rng, (0, 2)),), {"axis": 0})]),
    _complex_case("prod", fx.prod, np.prod, lambda rng: [
        Sample((_complex(rng, (3, 4), "nonzero"),), {"axis": 1}), Sample((_complex(rng, (5,), "nonzero"),))]),
    _complex_case("cumsum", fx.cumsum, np.cumsum, lambda rng: [Sample((_complex(rng, (3, 4)),), {"axis": 0})]),
    _complex_case("matmul", fx.matmul, np.matmul, lambda rng: [
        Sample((_complex(rng, (3, 4)), _complex(rng, (4, 2)))),
        Sample((_complex(rng, (2, 3, 4)), _complex(rng, (4,))))]),
    _complex_case("where", lambda c, x, y: fx.where(c, x, y), np.where, lambda rng: [
        Sample((rng.normal(size=(3, 4)) > 0, _complex(rng, (3, 4)), _complex(rng, (4,))))]),
    _complex_case("linalg_inv", fx.linalg.inv, np.linalg.inv, _complex_matrices(_complex_well_conditioned)),
    _complex_case("linalg_solve", fx.linalg.solve, _np_solve, lambda rng: [
        Sample((_complex_well_conditioned(rng, (3, 3)), _complex(rng, (3, 2)))),
        Sample((_complex_well_conditioned(rng, (2, 3, 3)), _complex(rng, (3,))))]),
    _complex_case("linalg_det", fx.linalg.det, np.linalg.det, _complex_matrices(_complex_well_conditioned)),
    _complex_case("linalg_slogdet", fx.linalg.slogdet, lambda a: tuple(np.linalg.slogdet(a)),
                  _complex_matrices(_complex_well_conditioned), out_dtype=lambda d, kw: (d, _real_of(d, kw))),
    _complex_case("linalg_cholesky", fx.linalg.cholesky, np.linalg.cholesky, _complex_matrices(_hpd)),
    _complex_case("linalg_cholesky_upper", lambda a: fx.linalg.cholesky(a, upper=True),
                  lambda a: np.linalg.cholesky(a, upper=True), _complex_matrices(_hpd)),
    _complex_case("linalg_eigvalsh", fx.linalg.eigvalsh, np.linalg.eigvalsh, _complex_matrices(_hpd),
                  out_dtype=_real_of),
    _complex_case("linalg_svdvals", fx.linalg.svdvals, np.linalg.svdvals,
                  lambda rng: [Sample((_complex(rng, s),)) for s in [(3, 3), (4, 2), (2, 2, 3)]], out_dtype=_real_of),
    _complex_case("linalg_qr", fx.linalg.qr, lambda a: tuple(np.linalg.qr(a)),
                  lambda rng: [Sample((_complex(rng, s),)) for s in [(3, 3), (4, 2), (2, 3, 2)]]),
    _complex_case("linalg_pinv", fx.linalg.pinv, np.linalg.pinv,
                  lambda rng: [Sample((_complex(rng, s),)) for s in [(3, 3), (4, 2), (2, 2, 3)]]),
    _complex_case("linalg_matrix_norm", fx.linalg.matrix_norm,
                  lambda a, ord="fro": np.linalg.norm(a, ord=ord, axis=(-2, -1)),
                  lambda rng: [Sample((_complex(rng, (3, 4)),)), Sample((_complex(rng, (2, 3, 3)),), {"ord": "nuc"}),
                               Sample((_complex(rng, (3, 2)),), {"ord": 2})], out_dtype=_real_of),
]  # fmt: skip


# ----------------------------------------------------------------------------- fx.fft
# One primitive, ``fft``, with a ``kind``: each transform (real input for rfft, rfftn and
# ihfft, complex for the rest), with lengths that pad and cut, and every norm.


def _fft_samples(kind, cases):
    def make(rng):
        draw = (lambda s: _complex(rng, s)) if kind == "complex" else (lambda s: rng.normal(size=s))
        return [Sample((draw(shape),), kwargs) for shape, kwargs in cases]

    return make


_FFT_CASES = {
    "fft": (
        "complex",
        [((5,), {}), ((3, 4), {"n": 6, "axis": 0}), ((2, 5), {"n": 3, "norm": "ortho"})],
    ),
    "ifft": ("complex", [((5,), {"norm": "forward"}), ((3, 4), {"n": 7})]),
    "fftn": (
        "complex",
        [((3, 4), {}), ((2, 3, 4), {"s": (2, 5), "axes": (0, 2), "norm": "ortho"})],
    ),
    "ifftn": (
        "complex",
        [((3, 4), {"s": (4, 3), "axes": (0, 1)}), ((2, 3, 2), {"norm": "forward"})],
    ),
    "rfft": (
        "real",
        [((6,), {}), ((3, 5), {"n": 4, "norm": "ortho"}), ((4, 3), {"n": 7, "axis": 0})],
    ),
    "irfft": ("complex", [((4,), {}), ((3, 4), {"n": 5, "norm": "ortho"}), ((2, 5), {"n": 10})]),
    "rfftn": (
        "real",
        [((3, 4), {}), ((2, 3, 4), {"s": (3, 6), "axes": (1, 2), "norm": "forward"})],
    ),
    "irfftn": (
        "complex",
        [((3, 4), {}), ((2, 3, 3), {"s": (3, 5), "axes": (0, 2), "norm": "ortho"})],
    ),
    "hfft": ("complex", [((4,), {}), ((3, 4), {"n": 5, "norm": "forward"})]),
    "ihfft": ("real", [((6,), {}), ((3, 5), {"n": 4, "norm": "ortho"})]),
}


def _fft_out_dtype(name):
    complex_out = name in ("fft", "ifft", "fftn", "ifftn", "rfft", "rfftn", "ihfft")
    pairs = {
        "complex128": "complex128",
        "complex64": "complex64",
        "float64": "complex128",
        "float32": "complex64",
    }
    return lambda d, kw: pairs[d] if complex_out else _real_of(d, kw)


OPS += [
    OpCase(f"fft_{name}", getattr(fx.fft, name), getattr(np.fft, name), _fft_samples(kind, cases),
           dtypes=("complex128", "complex64") if kind == "complex" else ("float64", "float32"),
           out_dtype=_fft_out_dtype(name),
           rtol=_COMPLEX_TOL, atol=_COMPLEX_TOL)
    for name, (kind, cases) in _FFT_CASES.items()
]  # fmt: skip
