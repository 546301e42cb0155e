"""vmap of every op in the op table vs a Python loop (STYLE.md point 7).

For each batchable ``OpCase`` and each of its samples, the batch members are
independent draws of that sample (the table's ``samples`` called with different
seeds: same shapes and kwargs, different values). ``fx.vmap`` over the members
stacked with ``np.stack`` at some axis must equal ``np.stack`` of the op applied to
each member in a plain Python loop -- the loop is the independent answer.

* every op, sample, batch size 0, 1 and 3, and a capped set of ``in_axes`` (each
  tensor argument alone batched at each axis including -1, all at 0, all at -1,
  all but one, none with ``axis_size``);
* ``out_axes`` other than 0;
* two levels of nesting, ``vmap(vmap(f))``;
* ``vmap`` of ``fx.vjp`` and of ``fx.jvp`` on every differentiable op.

Shape and dtype are checked before values.
"""

from __future__ import annotations

import numpy as np
import pytest

import fluxion as fx

try:
    from op_table import OPS
except ImportError:  # tests/ made a package
    from tests.op_table import OPS

BATCH_SIZES = (0, 1, 3)
MAX_IN_AXES = 14  # in_axes combinations per sample: keeps the file well under a minute


# ----------------------------------------------------------------------------- inputs


def _work_dtype(case) -> str:
    """The dtype floating sample arrays are cast to: float64 where the op takes it."""
    floats = [d for d in case.dtypes if "float" in d]
    return "float64" if "float64" in floats else (floats[0] if floats else case.dtypes[0])


def _draws(case, index: int, n: int) -> list:
    """``n`` independent draws of sample ``index`` of ``case``: same shapes, other values.
    The batch shares the first draw's kwargs (static arguments cannot vary over a batch)."""
    draws = [case.samples(np.random.default_rng(1000 + k))[index] for k in range(max(n, 1))]
    first = draws[0]
    for d in draws[1:]:
        assert [np.shape(a) for a in d.args] == [np.shape(a) for a in first.args], (
            f"{case.name}: sample {index} changes shape with the rng; the vmap test needs "
            "samples whose shapes do not depend on the draw"
        )
    return draws


def _fx(case, a) -> fx.Tensor:
    a = np.asarray(a)
    return fx.asarray(a, dtype=_work_dtype(case)) if a.dtype.kind == "f" else fx.asarray(a)


def _stack(arrays, axis, like):
    """``np.stack(arrays, axis)``, also for no arrays (a batch of size 0 shaped like ``like``)."""
    if len(arrays):
        return np.stack([np.asarray(a) for a in arrays], axis)
    like = np.asarray(like)
    return np.moveaxis(np.empty((0,) + like.shape, like.dtype), 0, axis)


def _stack_outputs(outputs, axis, ref):
    """Stack per-example output pytrees leaf by leaf; ``ref`` gives the structure (and
    the leaf shapes when there are no examples)."""
    ref_leaves, tree = fx.tree_flatten(ref)
    columns = [[] for _ in ref_leaves]
    for out in outputs:
        leaves, out_tree = fx.tree_flatten(out)
        assert out_tree == tree
        for col, leaf in zip(columns, leaves):
            col.append(leaf.numpy())
    return fx.tree_unflatten(
        tree, [_stack(col, axis, r.numpy()) for col, r in zip(columns, ref_leaves)]
    )


def _tolerance(case) -> tuple[float, float]:
    """(rtol, atol): the op's own, widened: batched kernels may sum in another order."""
    dtype = _work_dtype(case)
    return case.rtol.get(dtype, 1e-5) * 10, case.atol.get(dtype, 1e-6) * 10


def _check(got, want, tol, what):
    got_leaves, got_tree = fx.tree_flatten(got)
    want_leaves, want_tree = fx.tree_flatten(want)
    assert got_tree == want_tree, f"{what}: output structure {got_tree}, the loop gives {want_tree}"
    for k, (g, w) in enumerate(zip(got_leaves, want_leaves)):
        assert isinstance(g, fx.Tensor), f"{what}: output leaf {k} is {type(g).__name__}"
        g = g.numpy()
        assert g.shape == w.shape, (
            f"{what}: output {k} has shape {g.shape}, the loop gives {w.shape}"
        )
        assert g.dtype == w.dtype, (
            f"{what}: output {k} has dtype {g.dtype}, the loop gives {w.dtype}"
        )
        if g.dtype.kind in "fc":
            wide = np.complex128 if g.dtype.kind == "c" else np.float64
            np.testing.assert_allclose(g.astype(wide), w.astype(wide), *tol, err_msg=what)
        else:
            np.testing.assert_array_equal(g, w, err_msg=what)


def _in_axes_combos(ndims) -> list[tuple]:
    """A capped list of in_axes tuples for tensor arguments of (unbatched) ranks ``ndims``."""
    n = len(ndims)
    combos = [(0,) * n, (None,) * n, (-1,) * n]
    if n > 1:  # all but one batched
        combos += [tuple(None if j == i else 0 for j in range(n)) for i in range(n)]
    for i, nd in enumerate(ndims):  # one batched, at each of its axes
        combos += [tuple(a if j == i else None for j in range(n)) for a in (*range(nd + 1), -1)]
    return list(dict.fromkeys(combos))[:MAX_IN_AXES]


def _axes_id(axes) -> str:
    return "in" + "_".join("N" if a is None else str(a) for a in axes) if axes else "noargs"


def _diff_args(case, sample) -> tuple:
    if case.diff_args is not None:
        return tuple(case.diff_args)
    return tuple(i for i, a in enumerate(sample.args) if np.asarray(a).dtype.kind in "fc")


def _params():
    per_axes, per_sample, differentiable = [], [], []
    for case in OPS:
        if not case.batchable:
            continue
        for index, sample in enumerate(case.samples(np.random.default_rng(1000))):
            sid = f"{case.name}-s{index}"
            per_sample.append(pytest.param(case, index, id=sid))
            if case.differentiable is True and _diff_args(case, sample):
                differentiable.append(pytest.param(case, index, id=sid))
            for axes in _in_axes_combos([np.ndim(a) for a in sample.args]):
                per_axes.append(pytest.param(case, index, axes, id=f"{sid}-{_axes_id(axes)}"))
    return per_axes, per_sample, differentiable


PER_AXES, PER_SAMPLE, DIFFERENTIABLE = _params()


def _fn(case, kwargs):
    def fn(*args):
        return case.fx_fn(*args, **kwargs)

    fn.__name__ = case.name
    return fn


# ----------------------------------------------------------------------------- vmap vs loop


@pytest.mark.parametrize("case,index,in_axes", PER_AXES)
def test_vmap_matches_loop(case, index, in_axes):
    draws = _draws(case, index, max(BATCH_SIZES))
    fn = _fn(case, draws[0].kwargs)
    ref = fn(*[_fx(case, a) for a in draws[0].args])
    mapped = any(a is not None for a in in_axes)
    for size in BATCH_SIZES:
        members = draws[:size]

        def member_arg(d, i):
            return (d if in_axes[i] is not None else draws[0]).args[i]

        batched = [
            _fx(case, _stack([d.args[i] for d in members], a, draws[0].args[i]))
            if a is not None
            else _fx(case, draws[0].args[i])
            for i, a in enumerate(in_axes)
        ]
        loop = [fn(*[_fx(case, member_arg(d, i)) for i in range(len(in_axes))]) for d in members]
        got = fx.vmap(fn, in_axes=in_axes, axis_size=None if mapped else size)(*batched)
        _check(
            got,
            _stack_outputs(loop, 0, ref),
            _tolerance(case),
            f"vmap({case.name}, in_axes={in_axes}) on a batch of {size} ({draws[0]})",
        )


@pytest.mark.parametrize("case,index", PER_SAMPLE)
def test_vmap_out_axes(case, index):
    draws = _draws(case, index, 3)
    fn = _fn(case, draws[0].kwargs)
    ref = fn(*[_fx(case, a) for a in draws[0].args])
    ndims = [leaf.ndim for leaf in fx.tree_leaves(ref)]
    in_axes = (0,) * len(draws[0].args)
    batched = [_fx(case, _stack([d.args[i] for d in draws], 0, None)) for i in range(len(in_axes))]
    loop = [fn(*[_fx(case, a) for a in d.args]) for d in draws]
    axis_size = None if in_axes else len(draws)
    for out_axes in (-1, 1, -2):
        if not all(-(nd + 1) <= out_axes <= nd for nd in ndims):
            continue
        got = fx.vmap(fn, in_axes=in_axes, out_axes=out_axes, axis_size=axis_size)(*batched)
        _check(
            got,
            _stack_outputs(loop, out_axes, ref),
            _tolerance(case),
            f"vmap({case.name}, out_axes={out_axes}) ({draws[0]})",
        )


def _nested_samples():
    """One sample per op for the nesting test: the first whose arguments are all >= 1-d."""
    out = []
    for p in PER_SAMPLE:
        case, index = p.values
        if case.name in {q.values[0].name for q in out}:
            continue
        samples = case.samples(np.random.default_rng(1000))
        best = next(
            (k for k, s in enumerate(samples) if all(np.ndim(a) >= 1 for a in s.args)), index
        )
        out.append(pytest.param(case, best, id=f"{case.name}-s{best}"))
    return out


@pytest.mark.parametrize("case,index", _nested_samples())
def test_vmap_nested(case, index):
    outer_size, inner_size = 2, 3
    draws = _draws(case, index, outer_size * inner_size)
    nargs = len(draws[0].args)
    fn = _fn(case, draws[0].kwargs)
    ref = fn(*[_fx(case, a) for a in draws[0].args])
    combos = [((0,) * nargs, (0,) * nargs), ((0,) * nargs, (-1,) * nargs)]
    if nargs > 1:
        combos.append(((None,) + (0,) * (nargs - 1), (0,) * nargs))
    for inner, outer in combos:

        def member(j, i, k, inner=inner):
            return draws[j * inner_size + (0 if inner[k] is None else i)].args[k]

        batched = []
        for k in range(nargs):
            per_outer = [
                member(j, 0, k)
                if inner[k] is None
                else _stack([member(j, i, k) for i in range(inner_size)], inner[k], None)
                for j in range(outer_size)
            ]
            batched.append(_fx(case, _stack(per_outer, outer[k], None)))
        loop = [
            _stack_outputs(
                [
                    fn(*[_fx(case, member(j, i, k)) for k in range(nargs)])
                    for i in range(inner_size)
                ],
                0,
                ref,
            )
            for j in range(outer_size)
        ]
        want = fx.tree_map(lambda *xs: np.stack(xs), *loop)
        f2 = fx.vmap(fx.vmap(fn, in_axes=inner, axis_size=inner_size), in_axes=outer)
        if not nargs:
            f2 = fx.vmap(fx.vmap(fn, in_axes=(), axis_size=inner_size), in_axes=(), axis_size=2)
        _check(
            f2(*batched),
            want,
            _tolerance(case),
            f"vmap(vmap({case.name}, in_axes={inner}), in_axes={outer}) ({draws[0]})",
        )


# ----------------------------------------------------------------------------- vmap of vjp / jvp


def _restrict(fn, args, diff):
    """``fn`` as a function of the arguments ``diff`` only, the others fixed to ``args``."""

    def g(*d):
        full = list(args)
        for i, v in zip(diff, d):
            full[i] = v
        return fn(*full)

    return g


def _random_like(rng, t):
    dtype = t.numpy().dtype
    if dtype.kind not in "fc":
        return fx.asarray(np.zeros(t.shape, dtype))
    draw = rng.normal(size=t.shape) + (1j * rng.normal(size=t.shape) if dtype.kind == "c" else 0)
    return fx.asarray(draw, dtype=t.dtype)


@pytest.mark.parametrize("case,index", DIFFERENTIABLE)
def test_vmap_of_vjp(case, index):
    draws = _draws(case, index, 3)
    diff = _diff_args(case, draws[0])
    fn = _fn(case, draws[0].kwargs)
    rng = np.random.default_rng(7)
    ref = fn(*[_fx(case, a) for a in draws[0].args])
    out_tree = fx.tree_structure(ref)

    def per_example(args, cts):
        out, pullback = fx.vjp(_restrict(fn, args, diff), *[args[i] for i in diff])
        return out, pullback(fx.tree_unflatten(out_tree, cts))

    for size in (0, 3):
        members = [[_fx(case, a) for a in d.args] for d in draws[:size]]
        cts = [[_random_like(rng, leaf) for leaf in fx.tree_leaves(ref)] for _ in members]
        loop = [per_example(args, ct) for args, ct in zip(members, cts)]
        ref_pair = per_example([_fx(case, a) for a in draws[0].args], fx.tree_leaves(ref))
        batched_args = [
            _fx(case, _stack([m[i].numpy() for m in members], 0, draws[0].args[i]))
            for i in range(len(draws[0].args))
        ]
        batched_cts = [
            fx.asarray(_stack([c[k].numpy() for c in cts], 0, leaf.numpy()))
            for k, leaf in enumerate(fx.tree_leaves(ref))
        ]
        got = fx.vmap(per_example)(batched_args, batched_cts)
        _check(
            got,
            _stack_outputs(loop, 0, ref_pair),
            _tolerance(case),
            f"vmap(vjp({case.name})) on a batch of {size} ({draws[0]})",
        )


@pytest.mark.parametrize("case,index", DIFFERENTIABLE)
def test_vmap_of_jvp(case, index):
    draws = _draws(case, index, 3)
    diff = _diff_args(case, draws[0])
    fn = _fn(case, draws[0].kwargs)
    rng = np.random.default_rng(8)

    def per_example(args, tangents):
        primals = tuple(args[i] for i in diff)
        return fx.jvp(_restrict(fn, args, diff), primals, tuple(tangents))

    first = [_fx(case, a) for a in draws[0].args]
    ref_pair = per_example(first, [first[i] for i in diff])
    for size in (0, 3):
        members = [[_fx(case, a) for a in d.args] for d in draws[:size]]
        tangents = [[_random_like(rng, m[i]) for i in diff] for m in members]
        loop = [per_example(m, t) for m, t in zip(members, tangents)]
        batched_args = [
            _fx(case, _stack([m[i].numpy() for m in members], 0, draws[0].args[i]))
            for i in range(len(first))
        ]
        batched_tangents = [
            fx.asarray(_stack([t[k].numpy() for t in tangents], 0, first[i].numpy()))
            for k, i in enumerate(diff)
        ]
        # tangents batched at the last axis: in_axes as a pytree prefix
        moved = [fx.moveaxis(t, 0, -1) for t in batched_tangents]
        got = fx.vmap(per_example, in_axes=(0, -1))(batched_args, moved)
        _check(
            got,
            _stack_outputs(loop, 0, ref_pair),
            _tolerance(case),
            f"vmap(jvp({case.name})) on a batch of {size} ({draws[0]})",
        )
