"""Automatic differentiation: one reverse-mode sweep serves both styles.

* PyTorch style: ``bind`` records a ``Node`` on outputs of ops whose inputs require
  grad; ``Tensor.backward`` runs ``backward_pass`` from the loss and accumulates ``.grad``.
* JAX style: ``vjp`` pushes a ``VJPTrace``; its tracers record the same ``Node``s at
  their own level, and the function it returns runs the same ``backward_pass``.
* Forward mode: ``JVPTrace`` applies each primitive's ``jvp`` rule.

The rules are fluxion ops, so the sweep itself is traced by any enclosing
transform: ``grad(grad(f))``, ``jvp(grad(f))`` and ``vmap(grad(f))`` need nothing extra.
"""

from __future__ import annotations

import functools

import numpy as np

from fluxion import ops as _ops
from fluxion.core import dtypes
from fluxion.core.effects import write_to_originals
from fluxion.core.primitive import NOT_DIFFERENTIABLE, ShapedArray
from fluxion.core.pytree import tree_flatten, tree_map, tree_unflatten
from fluxion.core.tensor import Tensor, Tracer, to_tensor
from fluxion.core.trace import (
    Node,
    Trace,
    attach,
    bind,
    ctx,
    new_trace,
    no_grad,
    note_differentiates,
    recording_writes,
    set_grad_enabled,
    set_state,
    top_trace,
)
from fluxion.errors import FloatingPointCheckError, GradError, InvalidArgumentError, ShapeError

# ----------------------------------------------------------------------------- the reverse sweep


def _toposort(roots: list[Node]) -> list[Node]:
    """Nodes reachable from ``roots``, each before the nodes it depends on."""
    order, seen = [], set()
    for root in roots:
        if id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root.parents))]
        while stack:
            node, parents = stack[-1]
            for p in parents:
                child = None if p is None else p._node
                if child is not None and id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, iter(child.parents)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order[::-1]


def _zeros_like(x) -> Tensor:
    return Tensor._from_array(np.zeros(x.shape, x._np_dtype))


def backward_pass(outputs, cotangents, *, retain_graph=True, reconnect=False, capture=()):
    """Propagate ``cotangents`` from ``outputs`` back through the recorded nodes.

    Returns ``(leaves, captured)``: ``leaves`` maps id(leaf) -> [leaf, cotangent] for
    every leaf reached; ``captured`` the cotangents of the non-leaf tensors in
    ``capture``. ``reconnect`` links saved outputs back into the graph (create_graph).
    """
    wanted = {(id(t._node), t._out_index) for t in capture if t._node is not None}
    pending: dict[int, list] = {}
    leaves: dict[int, list] = {}
    captured: dict[tuple, Tensor] = {}

    def send(t, ct):
        node = t._node
        if node is None:
            entry = leaves.get(id(t))
            if entry is None:
                leaves[id(t)] = [t, ct]
            else:
                entry[1] = entry[1] + ct
        else:
            slots = pending.get(id(node))
            if slots is None:
                slots = pending[id(node)] = [None] * len(node.outputs or [None])
            i = t._out_index
            slots[i] = ct if slots[i] is None else slots[i] + ct

    for o, c in zip(outputs, cotangents):
        send(o, c)
    for node in _toposort([o._node for o in outputs if o._node is not None]):
        cts = pending.pop(id(node), None)
        if cts is None:
            continue
        for i, c in enumerate(cts if wanted else ()):
            if (id(node), i) in wanted:
                captured[id(node), i] = c
        if node.primals is None:
            raise GradError(
                f"backward: the graph through {node!r} was already freed by an earlier backward(); "
                "pass retain_graph=True to the first backward() if you need to go through it twice"
            )
        outs = node.outputs
        if reconnect:
            outs = [_connected(o, node, i) for i, o in enumerate(outs)]
        cts = [_zeros_like(o) if c is None else c for c, o in zip(cts, outs)]
        try:
            in_cts = node.vjp(cts if node.multiple else cts[0], node.primals, outs, **node.params)
        except FloatingPointCheckError as e:
            where = f" (forward at {node.where})" if node.where else ""
            raise FloatingPointCheckError(
                f"{e}; in the backward pass of {node.name}{where}"
            ) from None
        for parent, c in zip(node.parents, in_cts):
            if parent is not None and c is not None:
                send(parent, c)
        if not retain_graph:
            node.primals = node.outputs = None
    return leaves, captured


def _connected(out, node, index):
    alias = out._alias()
    alias._node, alias._out_index, alias.requires_grad = node, index, True
    return alias


def _seed(name, what, ct, out) -> Tensor:
    """The cotangent ``ct`` for ``out``: shape checked, cast to ``out``'s float dtype (as
    PyTorch does), so that every gradient has its input's dtype."""
    ct = to_tensor(ct)
    if ct.shape != out.shape:
        raise ShapeError(
            f"{name}: {what} has shape {ct.shape} but the output has shape {out.shape}; "
            "they must match"
        )
    if ct._np_dtype != out._np_dtype and dtypes.is_inexact(out._np_dtype):
        ct = ct.astype(out._np_dtype)
    return ct


def _torch_convention(ct: Tensor) -> Tensor:
    """PyTorch's gradient of a complex tensor is the conjugate of JAX's, which the rules give
    (so that ``p - lr * p.grad`` descends): ``.grad`` and ``autograd.grad`` give PyTorch's,
    and take PyTorch's conjugated ``gradient``."""
    return _ops.conj(ct)


def tensor_backward(
    t: Tensor, gradient=None, retain_graph: bool = False, create_graph: bool = False
) -> None:
    """``t.backward()``: accumulate d(t)/d(leaf) into every leaf's ``.grad``."""
    note_differentiates()
    if not t.requires_grad:
        raise GradError(
            "backward: this tensor does not require grad and has no grad_fn; create the inputs "
            "with requires_grad=True (or call .requires_grad_()) before computing it, outside fx.no_grad()"
        )
    if gradient is None:
        if t.size != 1:
            raise GradError(
                f"backward: grad can be created implicitly only for a scalar output, this one has shape "
                f"{t.shape}; pass gradient=fx.ones_like(out) or reduce it first (out.sum().backward())"
            )
        gradient = Tensor._from_array(np.ones(t.shape, t._np_dtype))
    with set_grad_enabled(create_graph):
        gradient = _torch_convention(_seed("backward", "gradient", gradient, t))
        leaves, _ = backward_pass(
            [t], [gradient], retain_graph=retain_graph or create_graph, reconnect=create_graph
        )
        for leaf, ct in leaves.values():
            ct = _torch_convention(ct)
            leaf.grad = ct if leaf.grad is None else leaf.grad + ct


Tensor.backward = tensor_backward  # the tape lives here, above the tensor it records


def autograd_grad(
    outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False
):
    """``torch.autograd.grad``: gradients of ``outputs`` w.r.t. ``inputs``, without touching ``.grad``."""
    single = isinstance(inputs, Tensor)
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None:
        for o in outputs:
            if o.size != 1:
                raise GradError(
                    f"autograd.grad: output of shape {o.shape} is not a scalar; pass grad_outputs"
                )
        grad_outputs = [Tensor._from_array(np.ones(o.shape, o._np_dtype)) for o in outputs]
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for o in outputs:
        if not o.requires_grad:
            raise GradError(
                "autograd.grad: an output does not require grad; its inputs must require grad"
            )
    retain = create_graph if retain_graph is None else retain_graph
    with set_grad_enabled(create_graph):
        leaves, captured = backward_pass(
            outputs,
            [
                _torch_convention(_seed("autograd.grad", "grad_outputs", g, o))
                for g, o in zip(grad_outputs, outputs)
            ],
            retain_graph=retain,
            reconnect=create_graph,
            capture=inputs,
        )
    grads = []
    for x in inputs:
        g = (
            leaves[id(x)][1]
            if x._node is None and id(x) in leaves
            else captured.get((id(x._node), x._out_index))
        )
        if g is None and not allow_unused:
            raise GradError(
                "autograd.grad: one of the inputs was not used to compute the outputs; pass allow_unused=True"
            )
        grads.append(g if g is None else _torch_convention(g))
    return tuple(grads)


# ----------------------------------------------------------------------------- reverse mode (functional)


class VJPTracer(Tracer):
    # ``tracked``: gradients flow through this value (a float input, or computed from one).
    # It is not ``requires_grad``, which belongs to the imperative tape.
    __slots__ = ("primal", "tracked")

    def __init__(self, trace, primal, node=None, index=0):
        self._init_tracer(trace)
        self.primal, self._node, self._out_index = primal, node, index
        self.tracked = dtypes.is_inexact(primal._np_dtype)

    @property
    def aval(self):
        return ShapedArray(self.primal.shape, self.primal._np_dtype)

    def _concrete(self):
        return self.primal._concrete()  # Python control flow works under grad, as in JAX

    def _data(self, what):
        return self._gradient_lost(what) if self.tracked else self._concrete()

    def _alias(self):
        return VJPTracer(self._trace, self.primal)


class VJPTrace(Trace):
    transform = "fx.grad/fx.vjp"

    def lower(self, x):
        return x.primal if isinstance(x, VJPTracer) and x._trace is self else x

    def lower_state(self, value, holder, name):
        return self.lower(value)  # running statistics keep their value, not its gradient

    def tracked(self, x):
        return x if isinstance(x, VJPTracer) and x._trace is self and x.tracked else None

    def process_primitive(self, prim, tracers, params):
        primals = [self.lower(t) for t in tracers]
        out = bind(prim, *primals, **params)
        parents = [self.tracked(t) for t in tracers]
        if prim.vjp is NOT_DIFFERENTIABLE or all(p is None for p in parents):
            return out  # constants at this level
        outs = list(out) if prim.multiple_results else [out]
        node = Node(prim.name, prim.vjp, params, primals, outs, parents, prim.multiple_results)
        wrapped = [
            VJPTracer(self, o, node, i) if dtypes.is_inexact(o._np_dtype) else o
            for i, o in enumerate(outs)
        ]
        return tuple(wrapped) if prim.multiple_results else wrapped[0]


def _as_tensors(tree):
    """``tree`` with Python numbers as tensors; the same objects where it holds only tensors
    (a module stays the caller's, so that what the function writes into it gets back)."""
    leaves, treedef = tree_flatten(tree)
    if all(isinstance(x, Tensor) for x in leaves):
        return tree
    return tree_unflatten(treedef, [x if isinstance(x, Tensor) else to_tensor(x) for x in leaves])


def vjp(f, *primals, has_aux: bool = False):
    """``(f(*primals), vjp_fn)``: ``vjp_fn(ct)`` gives ct's pullback, one entry per primal.

    >>> y, pullback = fx.vjp(fx.sin, fx.tensor(0.0))
    >>> pullback(fx.tensor(1.0))
    (1.0:f32[]:cpu(0),)
    """
    primals = _as_tensors(primals)
    in_leaves, in_tree = tree_flatten(primals)
    note_differentiates()
    with new_trace(VJPTrace) as trace:
        # Aliases: differentiating w.r.t. an argument records nothing on the imperative tape,
        # even when the argument requires grad (a Parameter).
        tracers = [VJPTracer(trace, x._alias() if x.requires_grad else x) for x in in_leaves]
        args = tree_unflatten(in_tree, tracers)
        out = f(*args)
        write_to_originals(trace, primals, args)
        out, aux = _split_aux("vjp", out, has_aux)
        out_leaves, out_tree = tree_flatten(_as_tensors(out))
        aux = tree_map(lambda x: trace.lower(x) if isinstance(x, Tensor) else x, aux)
    out_primals = [trace.lower(o) for o in out_leaves]

    def vjp_fn(cotangent):
        ct_leaves, ct_tree = tree_flatten(_as_tensors(cotangent))
        if ct_tree != out_tree:
            raise InvalidArgumentError(
                f"vjp: the cotangent's structure {ct_tree} differs from the output's {out_tree}"
            )
        ct_leaves = [_seed("vjp", "cotangent", c, o) for c, o in zip(ct_leaves, out_primals)]
        roots = [(o, c) for o, c in zip(out_leaves, ct_leaves) if trace.tracked(o) is not None]
        leaves, _ = backward_pass([o for o, _ in roots], [c for _, c in roots])
        grads = [leaves[id(t)][1] if id(t) in leaves else _zeros_like(t) for t in tracers]
        return tree_unflatten(in_tree, grads)

    result = tree_unflatten(out_tree, out_primals)
    return (result, vjp_fn, aux) if has_aux else (result, vjp_fn)


def _describe(out) -> str:
    if isinstance(out, Tensor):
        return f"a {out.dtype} tensor of shape {out.shape}"
    if isinstance(out, tuple | list):
        return f"a {type(out).__name__} of {len(out)}"
    return type(out).__name__


def _split_aux(name, out, has_aux):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise InvalidArgumentError(
            f"{name}: has_aux=True needs the function to return a pair (output, aux), "
            f"it returned {_describe(out)}; return (output, aux) or drop has_aux"
        )
    return out


def _checking_aux(name, f, has_aux):
    """``f``, with a has_aux error that names the transform the user called."""
    if not has_aux:
        return f
    return lambda *args: _split_aux(name, f(*args), True)


def _argnums(name, argnums, args):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or not -len(args) <= n < len(args):
            raise InvalidArgumentError(
                f"{name}: argnums {argnums} is out of range for a function called with {len(args)} "
                "positional argument(s)"
            )
    nums = tuple(n % len(args) for n in nums)
    if len(set(nums)) < len(nums):
        raise InvalidArgumentError(
            f"{name}: argnums {argnums} names an argument twice; each argument is "
            "differentiated once: list it once and reuse its gradient"
        )
    return nums


def _partial(f, args, kwargs, nums):
    def g(*diff):
        full = list(args)
        for n, v in zip(nums, diff):
            full[n] = v
        return f(*full, **kwargs)

    return g


def value_and_grad(f, argnums=0, has_aux: bool = False):
    """``f``'s value and its gradient w.r.t. ``argnums`` (pytrees in, same structure out).

    >>> fx.value_and_grad(lambda x: (x * x).sum())(fx.tensor([1.0, 2.0]))
    (5.0:f32[]:cpu(0), [2. 4.]:f32[2]:cpu(0))
    """

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        nums = _argnums("grad", argnums, args)
        diff = _as_tensors(tuple(args[n] for n in nums))
        for n, d in zip(nums, diff):
            leaves = tree_flatten(d)[0]
            # integer leaves inside a float pytree (a Module's step counter) get zero gradients
            if leaves and not any(dtypes.is_inexact(leaf._np_dtype) for leaf in leaves):
                kinds = sorted({str(leaf.dtype) for leaf in leaves}) or ["no tensors"]
                raise GradError(
                    f"grad: argument {n} has dtype {', '.join(kinds)}; gradients need floating-point "
                    "inputs: convert it (x.astype(fx.float32)) or leave it out of argnums"
                )
        out, pullback, aux = (
            vjp(_checking_aux("grad", _partial(f, args, kwargs, nums), True), *diff, has_aux=True)
            if has_aux
            else (
                *vjp(_partial(f, args, kwargs, nums), *diff),
                None,
            )
        )
        if not isinstance(out, Tensor) or out.shape != () or not dtypes.is_float(out._np_dtype):
            raise GradError(
                f"grad: the function must return a float scalar, it returned {_describe(out)}; reduce it "
                "(.sum(), .mean()) or use fx.vjp / fx.jacrev for non-scalar outputs"
            )
        grads = pullback(Tensor._from_array(np.ones((), out._np_dtype)))
        grads = grads[0] if isinstance(argnums, int) else grads
        return ((out, aux), grads) if has_aux else (out, grads)

    return wrapped


def grad(f, argnums=0, has_aux: bool = False):
    """The gradient of scalar-valued ``f`` w.r.t. argument(s) ``argnums``.

    >>> fx.grad(lambda x: fx.sum(x * 2 * x))(fx.tensor([1.0, 2.0]))
    [4. 8.]:f32[2]:cpu(0)
    """
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapped


# ----------------------------------------------------------------------------- forward mode


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace, primal, tangent):
        self._init_tracer(trace)
        self.primal, self.tangent = primal, tangent  # tangent None: a symbolic zero

    @property
    def aval(self):
        return ShapedArray(self.primal.shape, self.primal._np_dtype)

    def _concrete(self):
        return self.primal._concrete()

    def _data(self, what):
        return self._gradient_lost(what) if self.tangent is not None else self._concrete()

    def _alias(self):
        return JVPTracer(self._trace, self.primal, self.tangent)


class JVPTrace(Trace):
    transform = "fx.jvp/fx.jacfwd"

    def lower(self, x):
        if isinstance(x, JVPTracer) and x._trace is self:
            return x.primal, x.tangent
        return x, None

    def lower_state(self, value, holder, name):
        return self.lower(value)[0]

    def process_primitive(self, prim, tracers, params):
        primals, tangents = zip(*[self.lower(t) for t in tracers])
        if prim.jvp is NOT_DIFFERENTIABLE or all(t is None for t in tangents):
            return bind(prim, *primals, **params)
        tangents = [
            _zeros_like(p) if t is None and dtypes.is_inexact(p._np_dtype) else t
            for p, t in zip(primals, tangents)
        ]
        out, tangent_out = prim.jvp(primals, tangents, **params)
        if prim.multiple_results:
            return tuple(JVPTracer(self, o, t) for o, t in zip(out, tangent_out))
        return JVPTracer(self, out, tangent_out) if dtypes.is_inexact(out._np_dtype) else out


def jvp(f, primals, tangents, has_aux: bool = False):
    """``(f(*primals), J·tangents)``: forward-mode derivative along ``tangents``.

    >>> fx.jvp(fx.sin, (fx.tensor(0.0),), (fx.tensor(1.0),))
    (0.0:f32[]:cpu(0), 1.0:f32[]:cpu(0))
    """
    if not isinstance(primals, tuple | list) or not isinstance(tangents, tuple | list):
        raise InvalidArgumentError(
            "jvp: primals and tangents must be tuples, one entry per argument of f"
        )
    p_leaves, p_tree = tree_flatten(_as_tensors(tuple(primals)))
    t_leaves, t_tree = tree_flatten(_as_tensors(tuple(tangents)))
    if p_tree != t_tree:
        raise InvalidArgumentError(
            f"jvp: tangents' structure {t_tree} differs from the primals' {p_tree}"
        )
    for p, t in zip(p_leaves, t_leaves):
        if p.shape != t.shape:
            raise ShapeError(
                f"jvp: tangent of shape {t.shape} for a primal of shape {p.shape}; they must match"
            )
    with new_trace(JVPTrace) as trace:
        tracers = [
            JVPTracer(trace, p, t if dtypes.is_inexact(p._np_dtype) else None)
            for p, t in zip(p_leaves, t_leaves)
        ]
        args = tree_unflatten(p_tree, tracers)
        out = f(*args)
        write_to_originals(trace, primals, args)
        out, aux = _split_aux("jvp", out, has_aux)
        out_leaves, out_tree = tree_flatten(_as_tensors(out))
        lowered = [trace.lower(o) for o in out_leaves]
        aux = tree_map(lambda x: trace.lower(x)[0] if isinstance(x, Tensor) else x, aux)
    outs = tree_unflatten(out_tree, [p for p, _ in lowered])
    touts = tree_unflatten(out_tree, [_zeros_like(p) if t is None else t for p, t in lowered])
    return (outs, touts, aux) if has_aux else (outs, touts)


def linearize(f, *primals):
    """``(f(*primals), f_jvp)`` with ``f_jvp(*tangents)`` the jvp at ``primals``.

    fluxion has no partial evaluation, so each ``f_jvp`` call re-runs ``f`` forward.
    """
    out = f(*primals)
    return out, lambda *tangents: jvp(f, primals, tangents)[1]


# ----------------------------------------------------------------------------- jacobians


def _basis(leaves):
    """For leaves of shapes S_i, rows of the identity: leaf i gets (total, *S_i)."""
    sizes = [int(np.prod(x.shape)) for x in leaves]
    total = sum(sizes)
    out, start = [], 0
    for x, n in zip(leaves, sizes):
        rows = np.zeros((total, n), x._np_dtype)
        rows[start : start + n] = np.eye(n, dtype=x._np_dtype)
        out.append(Tensor._from_array(rows.reshape((total,) + x.shape)))
        start += n
    return out, sizes


def jacrev(f, argnums=0, has_aux: bool = False):
    """The Jacobian by reverse mode: one vjp per output element, batched with vmap.

    For output leaf y and input leaf x the block has shape ``y.shape + x.shape``.
    """
    from fluxion.transforms.batching import vmap

    @functools.wraps(f)
    def jacfn(*args, **kwargs):
        nums = _argnums("jacrev", argnums, args)
        diff = _as_tensors(tuple(args[n] for n in nums))
        y, pullback, aux = (
            vjp(_checking_aux("jacrev", _partial(f, args, kwargs, nums), True), *diff, has_aux=True)
            if has_aux
            else (
                *vjp(_partial(f, args, kwargs, nums), *diff),
                None,
            )
        )
        y_leaves, y_tree = tree_flatten(y)
        basis, sizes = _basis(y_leaves)
        rows = vmap(lambda *cts: pullback(tree_unflatten(y_tree, cts)))(*basis)
        in_leaves, in_tree = tree_flatten(rows if not isinstance(argnums, int) else rows[0])
        blocks, start = [], 0
        for y_leaf, n in zip(y_leaves, sizes):
            per_input = [
                r[start : start + n].reshape(y_leaf.shape + r.shape[1:]) for r in in_leaves
            ]
            blocks.append(tree_unflatten(in_tree, per_input))
            start += n
        jac = tree_unflatten(y_tree, blocks)
        return (jac, aux) if has_aux else jac

    return jacfn


def jacfwd(f, argnums=0, has_aux: bool = False):
    """The Jacobian by forward mode: one jvp per input element, batched with vmap."""
    from fluxion.transforms.batching import vmap

    @functools.wraps(f)
    def jacfn(*args, **kwargs):
        nums = _argnums("jacfwd", argnums, args)
        diff = _as_tensors(tuple(args[n] for n in nums))
        x_leaves, x_tree = tree_flatten(diff)
        basis, sizes = _basis(x_leaves)
        g = _checking_aux("jacfwd", _partial(f, args, kwargs, nums), has_aux)

        def push(*tangent_leaves):
            out, tangents = jvp(g, diff, tree_unflatten(x_tree, tangent_leaves))
            return out, tangents

        # f runs once (the state it writes is written once, as by one eager call), so the
        # value comes out of the vmapped jvp, batched (every row the same: a primitive whose
        # jvp is one fused op, a traced cond or scan, batches its value too); with no input
        # elements there is no row, and a plain call gives it.
        if sum(sizes):
            values, cols = vmap(push)(*basis)
            out = tree_map(lambda v: v[0], values)
        else:
            out, cols = g(*diff), vmap(push)(*basis)[1]
        y, aux = out if has_aux else (out, None)
        y_leaves, y_tree = tree_flatten(_as_tensors(y))
        col_leaves = tree_flatten(cols)[0]
        blocks = []
        for y_leaf, c in zip(y_leaves, col_leaves):
            moved = c.reshape((c.shape[0], y_leaf.size)).T  # (y size, total inputs)
            per_input, start = [], 0
            for x_leaf, n in zip(x_leaves, sizes):
                per_input.append(moved[:, start : start + n].reshape(y_leaf.shape + x_leaf.shape))
                start += n
            block = tree_unflatten(x_tree, per_input)
            blocks.append(block[0] if isinstance(argnums, int) else block)
        jac = tree_unflatten(y_tree, blocks)
        return (jac, aux) if has_aux else jac

    return jacfn


def hessian(f, argnums=0):
    """Second derivatives: ``jacfwd(jacrev(f))``."""
    return jacfwd(jacrev(f, argnums), argnums)


# ----------------------------------------------------------------------------- custom rules, checkpoint


def _record_call(name, leaves, forward, backward):
    """Differentiate a function call as one node, if reverse mode is watching its inputs.

    ``forward(leaves) -> (out_leaves, residuals)`` and ``backward(residuals, cts) ->
    in_cts``. Returns the output leaves, or None when nothing records (the caller then
    runs the plain function, which differentiates op by op under any other transform).
    """
    trace = top_trace(leaves)
    if isinstance(trace, VJPTrace):
        primals = [trace.lower(x) for x in leaves]
        parents = [trace.tracked(x) for x in leaves]
        if all(p is None for p in parents):
            return None
        outs, residuals = forward(primals)
        node = Node(
            name,
            lambda cts, p, o: backward(residuals, cts),
            {},
            primals,
            outs,
            parents,
            multiple=True,
        )
        return [
            VJPTracer(trace, o, node, i) if dtypes.is_inexact(o._np_dtype) else o
            for i, o in enumerate(outs)
        ]
    if trace is None and ctx.grad_enabled and any(x.requires_grad for x in leaves):
        with no_grad():
            outs, residuals = forward(leaves)
        # Fresh tensors: ``fwd`` may return an input itself (an identity with a custom
        # rule), whose own autograd link must not be overwritten.
        outs = [o._alias() for o in outs]
        parents = [x if x.requires_grad else None for x in leaves]
        node = Node(
            name,
            lambda cts, p, o: backward(residuals, cts),
            {},
            leaves,
            [o._alias() for o in outs],
            parents,
            multiple=True,
        )
        attach(node, outs)
        return outs
    return None


def _under_vmap(leaves):
    """``(trace, values, dims)`` when vmap is the innermost transform of ``leaves``.

    A custom rule met there is re-dispatched as the rule of the batched function (fun,
    fwd/bwd or jvp rule each vmapped), so that a derivative taken outside the vmap
    still uses it.
    """
    from fluxion.transforms.batching import BatchTrace

    trace = top_trace(leaves)
    if not isinstance(trace, BatchTrace):
        return None
    values, dims = zip(*[trace.lower(x) for x in leaves])
    return trace, list(values), tuple(dims)


def _batched_outputs(trace, out):
    from fluxion.transforms.batching import BatchTracer

    return tree_map(lambda o: BatchTracer(trace, o, 0) if isinstance(o, Tensor) else o, out)


class custom_vjp:
    """A function with a hand-written reverse-mode rule.

    >>> @fx.custom_vjp
    ... def clip_grad(x):
    ...     return x
    >>> _ = clip_grad.defvjp(lambda x: (x, None), lambda res, ct: (fx.clip(ct, -1, 1),))
    >>> fx.grad(lambda x: fx.sum(clip_grad(x) * 5.0))(fx.tensor([1.0]))
    [1.]:f32[1]:cpu(0)

    ``fwd(*args) -> (out, residuals)``; ``bwd(residuals, ct) -> one cotangent per arg``.
    Under vmap the rule is batched along with the function; under other transforms
    (forward mode, jit tracing) the plain function runs.
    """

    def __init__(self, fun):
        functools.update_wrapper(self, fun)
        self.fun, self.fwd, self.bwd = fun, None, None

    def defvjp(self, fwd, bwd):
        self.fwd, self.bwd = fwd, bwd
        return self

    def __call__(self, *args):
        if self.fwd is None:
            raise GradError(
                f"custom_vjp {self.fun.__name__}: call .defvjp(fwd, bwd) before using it"
            )
        args = _as_tensors(args)
        leaves, in_tree = tree_flatten(args)
        batched = _under_vmap(leaves)
        if batched is not None:
            return self._vmapped(in_tree, *batched)
        out_tree = []

        def forward(primals):
            out, residuals = self.fwd(*tree_unflatten(in_tree, primals))
            out_leaves, tree = tree_flatten(_as_tensors(out))
            out_tree.append(tree)
            return out_leaves, residuals

        def backward(residuals, cts):
            in_cts = self.bwd(residuals, tree_unflatten(out_tree[0], cts))
            return tree_flatten(tuple(in_cts), is_leaf=lambda x: x is None)[0]

        outs = _record_call(f"custom_vjp[{self.fun.__name__}]", leaves, forward, backward)
        return self.fun(*args) if outs is None else tree_unflatten(out_tree[0], outs)

    def _vmapped(self, in_tree, trace, values, dims):
        from fluxion.transforms.batching import vmap

        def flat(fn):
            return functools.wraps(fn)(lambda *leaves: fn(*tree_unflatten(in_tree, leaves)))

        def bwd(residuals, ct):
            # per-example cotangents come out batched at 0: sum those of unbatched
            # arguments over the batch, move the others to their argument's batch axis
            in_cts = vmap(self.bwd)(residuals, ct)
            in_cts = tree_flatten(tuple(in_cts), is_leaf=lambda x: x is None)[0]
            return [
                c if c is None else c.sum(axis=0) if d is None else c.moveaxis(0, d)
                for c, d in zip(in_cts, dims)
            ]

        inner = custom_vjp(vmap(flat(self.fun), in_axes=dims))
        inner.defvjp(vmap(flat(self.fwd), in_axes=dims), bwd)
        return _batched_outputs(trace, inner(*values))


class custom_jvp:
    """A function with a hand-written forward-mode rule: ``jvp(primals, tangents) -> (out, t_out)``.

    Under vmap the rule is batched along with the function; under reverse mode and other
    transforms the plain function is differentiated op by op.
    """

    def __init__(self, fun):
        functools.update_wrapper(self, fun)
        self.fun, self.rule = fun, None

    def defjvp(self, rule):
        self.rule = rule
        return rule

    def __call__(self, *args):
        args = _as_tensors(args)
        batched = _under_vmap(args) if self.rule is not None else None
        if batched is not None:
            from fluxion.transforms.batching import vmap

            trace, values, dims = batched
            inner = custom_jvp(vmap(self.fun, in_axes=dims))
            inner.defjvp(vmap(self.rule, in_axes=(dims, dims)))
            return _batched_outputs(trace, inner(*values))
        trace = top_trace(tree_flatten(args)[0])
        if not isinstance(trace, JVPTrace) or self.rule is None:
            return self.fun(*args)
        lowered = [trace.lower(a) for a in args]
        primals = tuple(p for p, _ in lowered)
        tangents = tuple(_zeros_like(p) if t is None else t for p, t in lowered)
        out, tangent_out = self.rule(primals, tangents)
        return tree_map(lambda o, t: JVPTracer(trace, o, t), out, tangent_out)


def checkpoint(f):
    """Gradient checkpointing: keep only ``f``'s inputs; recompute ``f`` in the backward pass.

    Saves the memory of ``f``'s intermediates at the cost of a second forward run.
    """

    @functools.wraps(f)
    def wrapped(*args):
        args = _as_tensors(args)
        leaves, in_tree = tree_flatten(args)
        out_tree = []

        def forward(primals):
            with recording_writes() as written:
                out = f(*tree_unflatten(in_tree, primals))
            out_leaves, tree = tree_flatten(_as_tensors(out))
            out_tree.append(tree)
            after = [(h, name, getattr(h, name)) for h, name, _ in written.values()]
            return out_leaves, (primals, list(written.values()), after)

        def backward(residuals, cts):
            # the function runs again from the state it first saw (the random key its
            # dropout drew from, the running statistics), and leaves it as it first left it
            primals, before, after = residuals
            for holder, name, value in before:
                set_state(holder, name, value)
            _, pullback = vjp(f, *tree_unflatten(in_tree, primals))
            for holder, name, value in after:
                set_state(holder, name, value)
            return tree_flatten(pullback(tree_unflatten(out_tree[0], cts)))[0]

        outs = _record_call(f"checkpoint[{f.__name__}]", leaves, forward, backward)
        return f(*args) if outs is None else tree_unflatten(out_tree[0], outs)

    return wrapped
