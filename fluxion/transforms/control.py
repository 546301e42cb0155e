"""Control flow: cond, while_loop, fori_loop, scan.

Eagerly they are plain Python (a concrete predicate picks a branch, loops loop), so
every transform sees the ops inside. When the predicate or the loop is traced (jit,
or vmap with a batched predicate), they become primitives holding sub-graphs, with
rules like any other primitive: jvp and vjp rules build new sub-graphs by
differentiating the bodies, batch rules by vmapping them.
"""

from __future__ import annotations

import functools

import numpy as np

from fluxion.compiler import codegen
from fluxion.core import dtypes
from fluxion.core.checks import check_int, check_size
from fluxion.core.ir import Graph, Var, eval_graph
from fluxion.core.primitive import Primitive, ShapedArray
from fluxion.core.pytree import tree_flatten, tree_unflatten
from fluxion.core.staging import trace_subgraph
from fluxion.core.tensor import Tensor, to_tensor
from fluxion.core.trace import bind, staging
from fluxion.errors import GradError, InvalidArgumentError, ShapeError, TracerError
from fluxion.ops import primitives as P
from fluxion.ops.elementwise import astype, where
from fluxion.ops.reduction import any as any_
from fluxion.ops.shape import reshape, stack
from fluxion.transforms.autodiff import jvp, vjp
from fluxion.transforms.batching import vmap


def _run(graph: Graph, *arrays):
    return codegen.subgraph_kernel(graph)(*arrays)


def _subgraph(fn, avals, name):
    return trace_subgraph(fn, avals, name)


def _derived(fn, avals, name) -> Graph:
    graph, captured, _ = _subgraph(fn, avals, name)
    if captured:  # rules only re-evaluate existing bodies, which take all they need as inputs
        raise TracerError(
            f"{name}: internal error: a derived body captured {len(captured)} value(s)"
        )
    return graph


def _memoized(derive):
    """``derive(graph, *args)`` made once per graph and arguments (kept in ``graph.derived``)."""

    @functools.wraps(derive)
    def memoized(graph: Graph, *args) -> Graph:
        args = tuple(tuple(a) if isinstance(a, list) else a for a in args)  # batch dims
        key = (derive.__name__, *args)
        if key not in graph.derived:
            graph.derived[key] = derive(graph, *args)
        return graph.derived[key]

    return memoized


@_memoized
def jvp_graph(graph: Graph) -> Graph:
    """(args, tangents) -> (outs, tangent outs)."""
    n = len(graph.invars)

    def f(*pt):
        outs, touts = jvp(lambda *a: eval_graph(graph, *a), tuple(pt[:n]), tuple(pt[n:]))
        return list(outs) + list(touts)

    return _derived(f, graph.in_avals * 2, "jvp")


@_memoized
def vjp_graph(graph: Graph) -> Graph:
    """(args, output cotangents) -> argument cotangents."""
    n = len(graph.invars)

    def f(*args_cts):
        _, pullback = vjp(lambda *a: eval_graph(graph, *a), *args_cts[:n])
        return list(pullback(list(args_cts[n:])))

    return _derived(f, graph.in_avals + graph.out_avals, "vjp")


@_memoized
def batch_graph(graph: Graph, dims: tuple, size: int) -> Graph:
    """The graph vmapped over ``dims`` (every output batched at 0)."""
    avals = [
        a if d is None else ShapedArray(a.shape[:d] + (size,) + a.shape[d:], a.dtype)
        for a, d in zip(graph.in_avals, dims)
    ]
    return _derived(
        lambda *a: vmap(lambda *b: eval_graph(graph, *b), in_axes=dims, axis_size=size)(*a),
        avals,
        "vmap",
    )


def _zeros(x) -> Tensor:
    return P.zeros(x.shape, x._np_dtype)


def _concrete_bool(pred):
    try:
        return bool(pred._concrete())
    except TracerError:
        return None


def _check_same_avals(op, what, got, want):
    got, want = (
        [(tuple(a.shape), np.dtype(a.dtype)) for a in got],
        [(tuple(a.shape), np.dtype(a.dtype)) for a in want],
    )
    if got != want:
        show = lambda avals: ", ".join(f"{dtypes.SHORT_NAMES[d]}{list(s)}" for s, d in avals)  # noqa: E731
        raise ShapeError(f"{op}: {what} must match: got ({show(got)}) and ({show(want)})")


def _avals(leaves) -> list:
    return [ShapedArray(x.shape, x._np_dtype) for x in map(to_tensor, leaves)]


def _carry_checker(op, what, init):
    """Eager loops check each new carry as the traced ones check their body once: the
    same structure, shapes and dtypes as ``init`` (no silent growth or promotion)."""
    leaves, tree = tree_flatten(init)
    avals = _avals(leaves)

    def check(carry):
        new_leaves, new_tree = tree_flatten(carry)
        if new_tree != tree:
            raise ShapeError(f"{op}: the body returns a carry of structure {new_tree} for {tree}")
        _check_same_avals(op, what, _avals(new_leaves), avals)
        return carry

    return check


# ----------------------------------------------------------------------------- cond


def _cond_jvp(primals, tangents, *, branches):
    pred, *args = primals
    targs = [_zeros(a) if t is None else t for a, t in zip(args, tangents[1:])]
    outs = bind(cond_p, pred, *args, *targs, branches=tuple(jvp_graph(g) for g in branches))
    n = len(branches[0].outvars)
    return outs[:n], outs[n:]


def _cond_vjp(cts, primals, outputs, *, branches):
    pred, *args = primals
    in_cts = bind(cond_p, pred, *args, *cts, branches=tuple(vjp_graph(g) for g in branches))
    return (None, *[c if dtypes.is_inexact(a._np_dtype) else None for c, a in zip(in_cts, args)])


def _cond_batch(args, dims, *, branches):
    (pred, *ops), (dp, *dops) = args, dims
    size = P.batch_size(args, dims)
    if dp is None:
        out = bind(cond_p, pred, *ops, branches=tuple(batch_graph(g, dops, size) for g in branches))
        return out, [0] * len(out)
    # A per-example predicate: run both branches on the whole batch and pick per example.
    taken = [_run_batched(g, ops, dops, size) for g in branches]
    pred = P.moveaxis_to_front(pred, dp)
    picked = [where(reshape(pred, (size,) + (1,) * (t.ndim - 1)), t, f) for t, f in zip(*taken)]
    return picked, [0] * len(picked)


def _run_batched(graph, ops, dims, size):
    return vmap(lambda *a: eval_graph(graph, *a), in_axes=tuple(dims), axis_size=size)(*ops)


def _cond_aval(pred, *args, branches):
    if pred.shape != () or pred.dtype != dtypes.BOOL:
        raise ShapeError(
            f"cond: the predicate must be a bool scalar, got {pred.dtype}{list(pred.shape)}"
        )
    _check_same_avals("cond", "the operands and the branches' inputs", args, branches[0].in_avals)
    return branches[0].out_avals


cond_p = Primitive(
    "cond",
    impl=lambda xp, pred, *args, branches: _run(branches[0] if pred else branches[1], *args),
    abstract=_cond_aval,
    jvp=_cond_jvp,
    vjp=_cond_vjp,
    batch=_cond_batch,
    multiple_results=True,
)


def cond(pred, true_fn, false_fn, *operands):
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``; traceable.

    >>> fx.cond(fx.tensor(2.0) > 1, lambda x: x * 2, lambda x: -x, fx.tensor(3.0))
    6.0:f32[]:cpu(0)
    """
    pred = to_tensor(pred)
    if pred.shape != ():
        raise InvalidArgumentError(
            f"cond: the predicate must be a scalar, got shape {pred.shape}; use fx.where to choose elementwise"
        )
    choice = _concrete_bool(pred)
    if choice is not None:
        return (true_fn if choice else false_fn)(*operands)
    leaves, in_tree = tree_flatten(operands)
    leaves = [to_tensor(x) for x in leaves]
    avals = [ShapedArray(x.shape, x._np_dtype) for x in leaves]
    traced = [
        _subgraph(lambda *a, fn=fn: fn(*tree_unflatten(in_tree, a)), avals, name)
        for fn, name in ((true_fn, "cond_true"), (false_fn, "cond_false"))
    ]
    (gt, ct, tree_t), (gf, cf, tree_f) = traced
    if tree_t != tree_f:
        raise ShapeError(f"cond: the branches return different structures: {tree_t} and {tree_f}")
    _check_same_avals("cond", "the outputs of true_fn and false_fn", gt.out_avals, gf.out_avals)
    n = len(leaves)
    gt = Graph(
        gt.invars + [Var(ShapedArray(c.shape, c._np_dtype)) for c in cf], gt.eqns, gt.outvars
    )
    gf = Graph(
        gf.invars[:n] + [Var(ShapedArray(c.shape, c._np_dtype)) for c in ct] + gf.invars[n:],
        gf.eqns,
        gf.outvars,
    )
    outs = bind(cond_p, astype(pred, bool), *leaves, *ct, *cf, branches=(gt, gf))
    return tree_unflatten(tree_t, list(outs))


# ----------------------------------------------------------------------------- while_loop


def _split_while(args, cond_graph, n_carry):
    n_cond = len(cond_graph.invars) - n_carry
    return args[:n_carry], args[n_carry : n_carry + n_cond], args[n_carry + n_cond :]


def _while_impl(xp, *args, cond_graph, body_graph, n_carry):
    carry, cond_consts, body_consts = _split_while(list(args), cond_graph, n_carry)
    while _run(cond_graph, *carry, *cond_consts)[0]:
        carry = _run(body_graph, *carry, *body_consts)
    return carry


def _while_aval(*args, cond_graph, body_graph, n_carry):
    carry = args[:n_carry]
    _check_same_avals(
        "while_loop", "the body's output and the loop carry", body_graph.out_avals, carry
    )
    return list(carry)


def _while_jvp(primals, tangents, *, cond_graph, body_graph, n_carry):
    carry, cond_consts, body_consts = _split_while(list(primals), cond_graph, n_carry)
    tangents = [_zeros(p) if t is None else t for p, t in zip(primals, tangents)]
    t_carry, _, t_body = _split_while(tangents, cond_graph, n_carry)
    body_jvp = jvp_graph(body_graph)  # (carry, consts, t_carry, t_consts) -> (carry, t_carry)
    k, m = n_carry, len(body_consts)

    def body(*a):  # carry: (carry, t_carry); consts: (consts, t_consts)
        return eval_graph(body_jvp, *a[:k], *a[2 * k : 2 * k + m], *a[k : 2 * k], *a[2 * k + m :])

    def cond_fn(*a):
        return eval_graph(cond_graph, *a[:k], *a[2 * k :])

    avals = [ShapedArray(x.shape, x._np_dtype) for x in carry + t_carry]
    new_body = _derived(
        body,
        avals + [ShapedArray(x.shape, x._np_dtype) for x in body_consts + t_body],
        "while_body_jvp",
    )
    new_cond = _derived(cond_fn, avals + cond_graph.in_avals[k:], "while_cond_jvp")
    outs = bind(
        while_p,
        *carry,
        *t_carry,
        *cond_consts,
        *body_consts,
        *t_body,
        cond_graph=new_cond,
        body_graph=new_body,
        n_carry=2 * k,
    )
    return outs[:k], outs[k:]


def _while_vjp(cts, primals, outputs, **params):
    raise GradError(
        "while_loop: reverse-mode differentiation of a loop with a data-dependent trip count is "
        "not supported; use fx.fori_loop with a fixed trip count or fx.scan"
    )


def _while_batch(args, dims, *, cond_graph, body_graph, n_carry):
    size = P.batch_size(args, dims)
    carry, cond_consts, body_consts = _split_while(list(args), cond_graph, n_carry)
    cdims, ccdims, bdims = _split_while(list(dims), cond_graph, n_carry)
    # Every carry batched: examples finish at different steps, so each keeps its own.
    carry = [_front(c, d, size) for c, d in zip(carry, cdims)]
    cond_b = batch_graph(cond_graph, [0] * n_carry + ccdims, size)
    body_b = batch_graph(body_graph, [0] * n_carry + bdims, size)
    k, nc = n_carry, len(cond_consts)

    def still_running(*a):
        return [any_(eval_graph(cond_b, *a[:k], *a[k : k + nc])[0])]

    def step(*a):
        running = eval_graph(cond_b, *a[:k], *a[k : k + nc])[0]
        new = eval_graph(body_b, *a[:k], *a[k + nc :])
        return [
            where(reshape(running, (size,) + (1,) * (n.ndim - 1)), n, c) for n, c in zip(new, a[:k])
        ]

    avals = [ShapedArray(c.shape, c._np_dtype) for c in carry]
    consts_avals = [ShapedArray(c.shape, c._np_dtype) for c in cond_consts + body_consts]
    new_cond = _derived(still_running, avals + consts_avals[:nc], "while_cond_vmap")
    new_body = _derived(step, avals + consts_avals, "while_body_vmap")
    # The new cond and body both take every constant; the split below follows their inputs.
    new_cond = Graph(
        new_cond.invars + [Var(a) for a in consts_avals[nc:]], new_cond.eqns, new_cond.outvars
    )
    outs = bind(
        while_p,
        *carry,
        *cond_consts,
        *body_consts,
        cond_graph=new_cond,
        body_graph=new_body,
        n_carry=k,
    )
    return outs, [0] * k


while_p = Primitive(
    "while",
    impl=_while_impl,
    abstract=_while_aval,
    jvp=_while_jvp,
    vjp=_while_vjp,
    batch=_while_batch,
    multiple_results=True,
)


def while_loop(cond_fun, body_fun, init_val):
    """``while cond_fun(val): val = body_fun(val)``; traceable; forward-differentiable.

    >>> fx.while_loop(lambda v: v < 10, lambda v: v * 2, fx.tensor(1))
    16:i64[]:cpu(0)
    """
    if not staging():
        val, running = init_val, _concrete_bool(to_tensor(cond_fun(init_val)))
        if running is not None:  # eager: a Python loop, seen op by op by any transform
            check = _carry_checker("while_loop", "the body's output and the loop carry", val)
            while running:
                val = check(body_fun(val))
                running = bool(to_tensor(cond_fun(val))._concrete())
            return val
    leaves, tree = tree_flatten(init_val)
    leaves = [to_tensor(x) for x in leaves]
    avals = [ShapedArray(x.shape, x._np_dtype) for x in leaves]
    cond_graph, cond_consts, _ = _subgraph(
        lambda *a: [astype(cond_fun(tree_unflatten(tree, a)), bool)], avals, "while_cond"
    )
    body_graph, body_consts, out_tree = _subgraph(
        lambda *a: body_fun(tree_unflatten(tree, a)), avals, "while_body"
    )
    if out_tree != tree:
        raise ShapeError(
            f"while_loop: the body returns structure {out_tree} for a carry of structure {tree}"
        )
    if cond_graph.out_avals[0].shape != ():
        raise ShapeError(
            f"while_loop: cond_fun must return a scalar, got shape {cond_graph.out_avals[0].shape}"
        )
    outs = bind(
        while_p,
        *leaves,
        *cond_consts,
        *body_consts,
        cond_graph=cond_graph,
        body_graph=body_graph,
        n_carry=len(leaves),
    )
    return tree_unflatten(tree, list(outs))


# ----------------------------------------------------------------------------- scan


def _split_scan(args, n_carry, n_xs):
    return args[:n_carry], args[n_carry : n_carry + n_xs], args[n_carry + n_xs :]


def _steps(length, reverse):
    return range(length - 1, -1, -1) if reverse else range(length)


def _scan_impl(xp, *args, body, n_carry, n_xs, length, reverse):
    carry, xs, consts = _split_scan(list(args), n_carry, n_xs)
    ys = [None] * length
    for i in _steps(length, reverse):
        out = _run(body, *carry, *[x[i] for x in xs], *consts)
        carry, ys[i] = out[:n_carry], out[n_carry:]
    stacked = [
        xp.stack([y[k] for y in ys]) if length else xp.zeros((0,) + tuple(a.shape), a.dtype)
        for k, a in enumerate(body.out_avals[n_carry:])
    ]
    return list(carry) + stacked


def _scan_aval(*args, body, n_carry, n_xs, length, reverse):
    carry, xs, consts = _split_scan(list(args), n_carry, n_xs)
    for x in xs:
        if x.shape[:1] != (length,):
            raise ShapeError(
                f"scan: every xs leaf needs a leading axis of length {length}, got shape {x.shape}"
            )
    step_avals = carry + [ShapedArray(x.shape[1:], x.dtype) for x in xs] + consts
    _check_same_avals("scan", "the operands and the body's inputs", step_avals, body.in_avals)
    _check_same_avals(
        "scan", "the body's carry output and the carry", body.out_avals[:n_carry], carry
    )
    return list(carry) + [
        ShapedArray((length,) + tuple(a.shape), a.dtype) for a in body.out_avals[n_carry:]
    ]


def _scan_jvp(primals, tangents, *, body, n_carry, n_xs, length, reverse):
    tangents = [_zeros(p) if t is None else t for p, t in zip(primals, tangents)]
    carry, xs, consts = _split_scan(list(primals), n_carry, n_xs)
    t_carry, t_xs, t_consts = _split_scan(tangents, n_carry, n_xs)
    body_jvp = jvp_graph(body)  # (c, x, k, tc, tx, tk) -> (c', y, tc', ty)
    nc, nx, nk, ny = n_carry, n_xs, len(consts), len(body.outvars) - n_carry

    def step(*a):  # scan layout: carry (c, tc), xs (x, tx), consts (k, tk)
        c, tc = a[:nc], a[nc : 2 * nc]
        x, tx = a[2 * nc : 2 * nc + nx], a[2 * nc + nx : 2 * nc + 2 * nx]
        k, tk = a[2 * nc + 2 * nx : 2 * nc + 2 * nx + nk], a[2 * nc + 2 * nx + nk :]
        out = eval_graph(body_jvp, *c, *x, *k, *tc, *tx, *tk)
        c2, y, tc2, ty = out[:nc], out[nc : nc + ny], out[nc + ny : 2 * nc + ny], out[2 * nc + ny :]
        return list(c2) + list(tc2) + list(y) + list(ty)

    step_avals = (
        [ShapedArray(v.shape, v._np_dtype) for v in carry + t_carry]
        + [ShapedArray(v.shape[1:], v._np_dtype) for v in xs + t_xs]
        + [ShapedArray(v.shape, v._np_dtype) for v in consts + t_consts]
    )
    new_body = _derived(step, step_avals, "scan_body_jvp")
    outs = bind(
        scan_p,
        *carry,
        *t_carry,
        *xs,
        *t_xs,
        *consts,
        *t_consts,
        body=new_body,
        n_carry=2 * nc,
        n_xs=2 * nx,
        length=length,
        reverse=reverse,
    )
    c, tc, ys = outs[:nc], outs[nc : 2 * nc], outs[2 * nc :]
    return list(c) + list(ys[:ny]), list(tc) + list(ys[ny:])


def _scan_vjp(cts, primals, outputs, *, body, n_carry, n_xs, length, reverse):
    carry, xs, consts = _split_scan(list(primals), n_carry, n_xs)
    nc, nx, nk = n_carry, n_xs, len(consts)
    ct_carry, ct_ys = list(cts[:nc]), list(cts[nc:])
    # 1. forward again, keeping the carry that enters each step
    keep = _derived(
        lambda *a: (lambda out: list(out[:nc]) + list(a[:nc]))(eval_graph(body, *a)),
        body.in_avals,
        "scan_keep_carries",
    )
    entered = list(
        bind(
            scan_p,
            *carry,
            *xs,
            *consts,
            body=keep,
            n_carry=nc,
            n_xs=nx,
            length=length,
            reverse=reverse,
        )[nc:]
        if nc  # with no carry there is nothing to keep (and no loop of no outputs to run)
        else []
    )
    # 2. backward, in the opposite order: carry (ct_c, ct_consts), xs (c_i, x_i, ct_y_i)
    body_vjp = vjp_graph(body)  # (c, x, k, ct_c', ct_y) -> (ct_c, ct_x, ct_k)

    def back(*a):
        ct_c, acc = a[:nc], a[nc : nc + nk]
        c_i, x_i, ct_y = (
            a[nc + nk : 2 * nc + nk],
            a[2 * nc + nk : 2 * nc + nk + nx],
            a[2 * nc + nk + nx : len(a) - nk],
        )
        k = a[len(a) - nk :]
        d = eval_graph(body_vjp, *c_i, *x_i, *k, *ct_c, *ct_y)
        d_c, d_x, d_k = d[:nc], d[nc : nc + nx], d[nc + nx :]
        return list(d_c) + [s + t for s, t in zip(acc, d_k)] + list(d_x)

    avals = lambda vs, strip=False: [
        ShapedArray(v.shape[1:] if strip else v.shape, v._np_dtype) for v in vs
    ]  # noqa: E731
    zero_consts = [_zeros(k) for k in consts]
    back_graph = _derived(
        back,
        avals(ct_carry + zero_consts) + avals(entered + xs + ct_ys, True) + avals(consts),
        "scan_back",
    )
    outs = bind(
        scan_p, *ct_carry, *zero_consts, *entered, *xs, *ct_ys, *consts,
        body=back_graph, n_carry=nc + nk, n_xs=nc + nx + len(ct_ys), length=length, reverse=not reverse,
    )  # fmt: skip
    d_carry, d_consts, d_xs = outs[:nc], outs[nc : nc + nk], outs[nc + nk :]
    grads = list(d_carry) + list(d_xs) + list(d_consts)
    return tuple(g if dtypes.is_inexact(p._np_dtype) else None for g, p in zip(grads, primals))


def _scan_batch(args, dims, *, body, n_carry, n_xs, length, reverse):
    size = P.batch_size(args, dims)
    carry, xs, consts = _split_scan(list(args), n_carry, n_xs)
    cdims, xdims, kdims = _split_scan(list(dims), n_carry, n_xs)
    # carries batched at 0 (a step may make them depend on the batch); xs keep the scanned
    # axis first, so their batch axis goes to 1 (to 0 within a step)
    carry = [_front(c, d, size) for c, d in zip(carry, cdims)]
    xs = [x if d is None else _batch_to(x, d, 1) for x, d in zip(xs, xdims)]
    step_dims = [0] * n_carry + [None if d is None else 0 for d in xdims] + list(kdims)
    new_body = batch_graph(body, step_dims, size)
    outs = bind(
        scan_p,
        *carry,
        *xs,
        *consts,
        body=new_body,
        n_carry=n_carry,
        n_xs=n_xs,
        length=length,
        reverse=reverse,
    )
    return outs, [0] * n_carry + [1] * (len(outs) - n_carry)


def _front(x, dim, size):
    """``x`` with its batch axis first, broadcast to ``size`` if it had none."""
    if dim is None:
        return bind(P.broadcast_to_p, x, shape=(size,) + x.shape)
    return P.moveaxis_to_front(x, dim)


def _batch_to(x, dim, to):
    perm = [a for a in range(x.ndim) if a != dim]
    perm.insert(to, dim)
    return bind(P.transpose_p, x, perm=tuple(perm))


scan_p = Primitive(
    "scan",
    impl=_scan_impl,
    abstract=_scan_aval,
    jvp=_scan_jvp,
    vjp=_scan_vjp,
    batch=_scan_batch,
    multiple_results=True,
)


def scan(f, init, xs=None, length: int | None = None, reverse: bool = False):
    """Loop ``carry, y = f(carry, x)`` over the leading axis of ``xs``; returns ``(carry, ys)``.

    >>> fx.scan(lambda c, x: (c + x, c), fx.tensor(0.0), fx.arange(4.0))
    (6.0:f32[]:cpu(0), [0. 0. 1. 3.]:f32[4]:cpu(0))
    """
    if length is not None:
        length = check_size("scan", "length", length)
    x_leaves, x_tree = tree_flatten(xs)
    x_leaves = [to_tensor(x) for x in x_leaves]
    lengths = {x.shape[0] for x in x_leaves if x.ndim}
    if length is None:
        if len(lengths) != 1:
            raise InvalidArgumentError(
                f"scan: xs leading axes must agree (got {sorted(lengths)}); or pass length="
            )
        length = lengths.pop()
    elif lengths - {length}:
        raise InvalidArgumentError(
            f"scan: length={length} but xs have leading axes {sorted(lengths)}"
        )
    if not staging() and length > 0:  # eager: a Python loop, seen op by op by any transform
        carry, ys = init, [None] * length
        check = _carry_checker("scan", "the body's carry output and the carry", init)
        for i in _steps(length, reverse):
            carry, ys[i] = f(carry, tree_unflatten(x_tree, [x[i] for x in x_leaves]))
            check(carry)
        per_step = [tree_flatten(y)[0] for y in ys]
        stacked = [stack([s[k] for s in per_step]) for k in range(len(per_step[0]))]
        return carry, tree_unflatten(tree_flatten(ys[0])[1], stacked)
    c_leaves, c_tree = tree_flatten(init)
    c_leaves = [to_tensor(c) for c in c_leaves]
    avals = [ShapedArray(c.shape, c._np_dtype) for c in c_leaves] + [
        ShapedArray(x.shape[1:], x._np_dtype) for x in x_leaves
    ]
    out_trees = []

    def step(*a):
        carry, y = f(
            tree_unflatten(c_tree, a[: len(c_leaves)]), tree_unflatten(x_tree, a[len(c_leaves) :])
        )
        new_leaves, new_tree = tree_flatten(carry)
        if new_tree != c_tree:
            raise ShapeError(f"scan: the body returns a carry of structure {new_tree} for {c_tree}")
        y_leaves, y_tree = tree_flatten(y)
        out_trees.append(y_tree)
        return new_leaves + y_leaves

    body, consts, _ = _subgraph(step, avals, "scan_body")
    outs = bind(
        scan_p,
        *c_leaves,
        *x_leaves,
        *consts,
        body=body,
        n_carry=len(c_leaves),
        n_xs=len(x_leaves),
        length=length,
        reverse=reverse,
    )
    n = len(c_leaves)
    return tree_unflatten(c_tree, list(outs[:n])), tree_unflatten(out_trees[0], list(outs[n:]))


def fori_loop(lower: int, upper: int, body_fun, init_val):
    """``for i in range(lower, upper): val = body_fun(i, val)``.

    With Python-int bounds it is a scan (differentiable both ways); with traced bounds a
    while_loop (forward-differentiable).
    """
    lower, upper = (
        b if isinstance(b, Tensor) else check_int("fori_loop", name, b)
        for name, b in (("lower", lower), ("upper", upper))
    )
    if isinstance(lower, int) and isinstance(upper, int):
        steps = Tensor._from_array(np.arange(lower, max(lower, upper), dtype=np.int64))
        return scan(lambda val, i: (body_fun(i, val), None), init_val, steps)[0]
    start = astype(lower, np.int64)
    _, out = while_loop(
        lambda s: s[0] < upper, lambda s: (s[0] + 1, body_fun(s[0], s[1])), (start, init_val)
    )
    return out
