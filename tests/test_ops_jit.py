"""jit vs eager on every op of the op table (STYLE.md point 7, the fifth way).

* every ``OpCase`` x ``Sample`` x dtype of the case: ``fx.jit`` of the op (static keyword
  arguments closed over) against the same op run eagerly on the same tensors: output
  structure, then shape, then dtype, then values. The compiled function is called twice
  (the second call is a cache hit on other values), must not write into its inputs, and
  must not hand back a buffer that a later call overwrites;
* on every differentiable case (float64): ``jit(grad)``, ``grad(jit)``, and on the
  batchable ones ``jit(vmap(grad))``, ``vmap(jit)`` and ``jit(vmap)`` against their eager
  counterparts ``grad`` and ``vmap(grad)`` / ``vmap``.

The eager run is the independent answer here: the forward file checks it against NumPy.
"""

from __future__ import annotations

import functools
import zlib

import ml_dtypes
import numpy as np
import pytest

import fluxion as fx

try:
    from op_table import OPS, strided
except ImportError:  # tests/ made a package
    from tests.op_table import OPS, strided


def _np_dtype(name: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


@functools.cache
def _samples_of(name: str, seed: int = 0) -> list:
    case = next(c for c in OPS if c.name == name)
    return case.samples(np.random.default_rng(zlib.crc32(name.encode()) + seed))


def _cast(a, dtype: str) -> np.ndarray:
    """A sample argument in the dtype under test, keeping non-contiguous views so (the same
    rule as test_ops_forward: floats follow float dtypes, become small integers under
    integer dtypes; integer arrays follow integer dtypes; bools never change)."""
    a = np.asarray(a)
    target = _np_dtype(dtype)
    if a.dtype.kind == target.kind == "c" or a.dtype.kind == target.kind == "f":
        out = a.astype(target)
    elif a.dtype.kind == "f" and target.kind in "iu":
        out = np.rint(3 * a).astype(target)
    elif a.dtype.kind in "iu" and target.kind in "iu":
        out = a.astype(target)
    else:
        return a
    if a.ndim and not (a.flags.c_contiguous or a.flags.f_contiguous):
        out = strided(out)
    return out


def _fn(case, kwargs):
    def fn(*args):
        return case.fx_fn(*args, **kwargs)

    fn.__name__ = case.name
    return fn


def _tolerance(case, dtype: str) -> tuple[float, float]:
    return case.rtol.get(dtype, 1e-5), case.atol.get(dtype, case.rtol.get(dtype, 1e-6))


def _check(got, want, rtol, atol, what):
    """Structure, then shape, then dtype, then values (NaNs where eager has them)."""
    got_leaves, got_tree = fx.tree_flatten(got)
    want_leaves, want_tree = fx.tree_flatten(want)
    assert got_tree == want_tree, f"{what}: structure {got_tree}, eager gives {want_tree}"
    for k, (g, w) in enumerate(zip(got_leaves, want_leaves)):
        assert isinstance(g, fx.Tensor), f"{what}: output {k} is a {type(g).__name__}"
        assert g.shape == w.shape, f"{what}: output {k} has shape {g.shape}, eager {w.shape}"
        assert g.dtype == w.dtype, f"{what}: output {k} has dtype {g.dtype}, eager {w.dtype}"
        g, w = g.numpy(), w.numpy()
        assert g.dtype == w.dtype, f"{what}: output {k} holds {g.dtype}, eager {w.dtype}"
        if g.dtype.kind in "fc" or g.dtype == _np_dtype("bfloat16"):
            if g.dtype in (np.float32, np.complex64):  # compiled exp, log... an ulp apart
                rtol, atol = max(rtol, 1e-6), max(atol, 1e-6)
            wide = np.complex128 if g.dtype.kind == "c" else np.float64
            np.testing.assert_allclose(
                g.astype(wide),
                w.astype(wide),
                rtol=rtol,
                atol=atol,
                equal_nan=True,
                err_msg=what,
            )
        else:
            np.testing.assert_array_equal(g, w, err_msg=what)


def _snapshot(out):
    return [leaf.numpy().copy() for leaf in fx.tree_leaves(out)]


# ----------------------------------------------------------------------------- forward


def _forward_params():
    out = []
    for case in OPS:
        for k, _ in enumerate(_samples_of(case.name)):
            for dtype in case.dtypes:
                out.append(pytest.param(case, k, dtype, id=f"{case.name}-{k}-{dtype}"))
    return out


@pytest.mark.parametrize("case, index, dtype", _forward_params())
def test_jit_matches_eager(case, index, dtype):
    sample = _samples_of(case.name)[index]
    other = _samples_of(case.name, 1)[index]  # same shapes and kwargs, other values
    arrays = [_cast(a, dtype) for a in sample.args]
    arrays2 = [_cast(a, dtype) for a in other.args]
    before = [a.copy() for a in arrays]
    fn = _fn(case, sample.kwargs)
    what = f"jit({case.name}) on {sample!r} in {dtype}"
    rtol, atol = _tolerance(case, dtype)
    with np.errstate(all="ignore"):
        want = fn(*[fx.asarray(a) for a in arrays])
        want2 = fn(*[fx.asarray(a) for a in arrays2])
        compiled = fx.jit(fn)
        got = compiled(*[fx.asarray(a) for a in arrays])
        kept = _snapshot(got)
        got2 = compiled(*[fx.asarray(a) for a in arrays2])
    _check(got, want, rtol, atol, what)
    _check(got2, want2, rtol, atol, what + " (second call, cached)")
    assert (compiled.stats.misses, compiled.stats.hits) == (1, 1), f"{what}: {compiled.stats}"
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b, err_msg=f"{what} wrote into its input")
    for k, (leaf, old) in enumerate(zip(fx.tree_leaves(got), kept)):
        np.testing.assert_array_equal(
            leaf.numpy(), old, err_msg=f"{what}: output {k} was overwritten by the next call"
        )


# ----------------------------------------------------------------------------- transforms


def _diff_args(case, sample) -> tuple:
    candidates = case.diff_args if case.diff_args is not None else range(len(sample.args))
    return tuple(i for i in candidates if np.asarray(sample.args[i]).dtype.kind in "fc")


def _to_fx(a) -> fx.Tensor:
    a = np.asarray(a)
    return fx.asarray(a, dtype="float64") if a.dtype.kind == "f" else fx.asarray(a)


def _scalar_loss(case, kwargs):
    """A smooth scalar of the op's outputs, so that every output gets a generic cotangent."""

    def loss(*args):
        total = 0.0
        for j, out in enumerate(fx.tree_leaves(case.fx_fn(*args, **kwargs))):
            total = total + fx.real(fx.sum(out * fx.sin(out + 0.5 * j)))
        return total

    return loss


def _transform_params():
    out = []
    for case in OPS:
        if case.differentiable is not True or not {"float64", "complex128"} & set(case.dtypes):
            continue
        for k, sample in enumerate(_samples_of(case.name)):
            argnums = _diff_args(case, sample)
            if argnums and all(np.size(sample.args[i]) for i in argnums):
                out.append(pytest.param(case, k, id=f"{case.name}-{k}"))
    return out


TRANSFORM_PARAMS = _transform_params()


@pytest.mark.parametrize("case, index", TRANSFORM_PARAMS)
def test_jit_of_grad_and_grad_of_jit(case, index):
    sample = _samples_of(case.name)[index]
    argnums = _diff_args(case, sample)
    loss = _scalar_loss(case, sample.kwargs)
    args = [_to_fx(a) for a in sample.args]
    want = fx.grad(loss, argnums=argnums)(*args)
    what = f"{case.name} on {sample!r}"
    _check(fx.jit(fx.grad(loss, argnums=argnums))(*args), want, 1e-10, 1e-10, f"jit(grad) {what}")
    _check(fx.grad(fx.jit(loss), argnums=argnums)(*args), want, 1e-10, 1e-10, f"grad(jit) {what}")


def _batch(case, index, size=3):
    """``size`` independent draws of sample ``index`` stacked on a new leading axis."""
    draws = [_samples_of(case.name, seed)[index] for seed in range(size)]
    shapes = {tuple(np.shape(a) for a in d.args) for d in draws}
    assert len(shapes) == 1, f"{case.name}: sample {index} changes shape with the rng"
    return draws[0], [
        np.stack([np.asarray(d.args[i]) for d in draws]) for i in range(len(draws[0].args))
    ]


BATCHABLE = [p for p in TRANSFORM_PARAMS if p.values[0].batchable]


@pytest.mark.parametrize("case, index", BATCHABLE)
def test_jit_of_vmap_of_grad(case, index):
    sample, stacked = _batch(case, index)
    argnums = _diff_args(case, sample)
    loss = _scalar_loss(case, sample.kwargs)
    args = [_to_fx(a) for a in stacked]
    want = fx.vmap(fx.grad(loss, argnums=argnums))(*args)
    got = fx.jit(fx.vmap(fx.grad(loss, argnums=argnums)))(*args)
    # the loss's sin runs in the op's output dtype: an ulp of float32 when astype makes one
    outputs = fx.tree_leaves(case.fx_fn(*[_to_fx(a) for a in sample.args], **sample.kwargs))
    floats = [o.numpy().dtype for o in outputs if o.numpy().dtype.kind == "f"]
    tol = max([1e-10] + [8 * float(np.finfo(d).eps) for d in floats])
    _check(got, want, tol, tol, f"jit(vmap(grad({case.name}))) on {sample!r}")


@pytest.mark.parametrize("case, index", BATCHABLE)
def test_vmap_of_jit_and_jit_of_vmap(case, index):
    sample, stacked = _batch(case, index)
    fn = _fn(case, sample.kwargs)
    args = [_to_fx(a) for a in stacked]
    want = fx.vmap(fn)(*args)
    _check(fx.vmap(fx.jit(fn))(*args), want, 1e-12, 1e-12, f"vmap(jit({case.name}))")
    _check(fx.jit(fx.vmap(fn))(*args), want, 1e-12, 1e-12, f"jit(vmap({case.name}))")
