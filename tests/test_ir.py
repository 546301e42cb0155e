"""The IR as a value (STYLE.md point 5): printer golden tests, typecheck, eval_graph.

* ``fx.xpr`` of ~25 programs against hand-checked text in the seed-001 format (each
  golden was read equation by equation: shapes, dtypes, params, and the math: e.g. the
  grad of ``sum(2 x^2)`` computes ``h + i = 2a + 2a``);
* ``typecheck`` rejects hand-built broken graphs with ``IRTypeError``;
* ``eval_graph`` of a made graph equals the function, and, because it runs through
  ``bind``, ``fx.grad``/``fx.vmap``/``fx.jvp``/``fx.jit`` of it equal the transforms
  of the original function.
"""

from __future__ import annotations

import numpy as np
import pytest

import fluxion as fx
from fluxion.core.ir import (
    Eqn,
    Graph,
    IRTypeError,
    Literal,
    Var,
    eval_graph,
    pp_graph,
    typecheck,
)
from fluxion.core.primitive import ShapedArray
from fluxion.errors import FluxionError
from fluxion.ops import primitives as P
from fluxion.transforms.control import cond_p

F32 = np.dtype("float32")


def seed_function(x):
    return fx.sum(x * 2 * x, axes=0)


def nested_scan(x):
    def outer(c, row):
        c2, _ = fx.scan(lambda d, v: (d + v * c, d), c, row)
        return c2, c2

    return fx.scan(outer, fx.tensor(1.0), x)


def _cond_two_outputs(p, x, y):
    return fx.cond(p, lambda a, b: (a * b, a), lambda a, b: (a - b, b), x, y)


def _cond_closure(x, y):
    return fx.cond(fx.sum(x) > 0, lambda a: a * y, lambda a: a, x)


def _scan_pytree_reverse(x):
    return fx.scan(
        lambda c, v: ((c[0] + v, c[1] * v), c[0]), (fx.tensor(0.0), fx.tensor(1.0)), x, reverse=True
    )


def _while(x):
    return fx.while_loop(lambda v: fx.sum(v) < 10.0, lambda v: v * 2.0, x)


PROGRAMS = {
    "mul_add_sum": (lambda x, y: fx.sum(x * y + x, axis=0), lambda: [fx.ones(5), fx.ones(5)]),
    "seed_001": (seed_function, lambda: [fx.ones(5)]),
    "seed_001_grad": (fx.grad(seed_function), lambda: [fx.ones(5)]),
    "seed_001_vmap_grad": (fx.vmap(fx.grad(seed_function)), lambda: [fx.ones((3, 5))]),
    "broadcast_add": (lambda x, y: x + y, lambda: [fx.ones((3, 5)), fx.ones(5)]),
    "broadcast_outer": (lambda x, y: x * y, lambda: [fx.ones((3, 1)), fx.ones((1, 4))]),
    "matmul": (lambda a, b: a @ b, lambda: [fx.ones((2, 3)), fx.ones((3, 4))]),
    "gram": (lambda x: x.T @ x, lambda: [fx.ones((3, 2))]),
    "vmap_matmul": (
        fx.vmap(lambda a, b: a @ b, in_axes=(0, None)),
        lambda: [fx.ones((4, 2, 3)), fx.ones((3, 5))],
    ),
    "reshape_transpose": (
        lambda x: fx.transpose(fx.reshape(x, (5, 3)), (1, 0)),
        lambda: [fx.ones((3, 5))],
    ),
    "literals": (lambda x: (x * 2.5 + 1, -x), lambda: [fx.ones(2)]),
    "int_literal": (lambda x: x * 3, lambda: [fx.ones(2, dtype="int32")]),
    "float32_literal": (lambda x: x * 0.1, lambda: [fx.ones(2)]),
    "array_constant": (lambda x: x + fx.tensor([1.0, 2.0, 3.0]), lambda: [fx.ones(3)]),
    "no_inputs": (lambda: fx.arange(3.0) * 2, lambda: []),
    "convert": (lambda x: fx.astype(x, "float64"), lambda: [fx.ones(3)]),
    "slice": (lambda x: x[1:, ::2], lambda: [fx.ones((3, 5))]),
    "where": (lambda x: fx.where(x > 0, x, 0.0), lambda: [fx.ones(3)]),
    "cond": (_cond_two_outputs, lambda: [fx.tensor(True), fx.ones(2), fx.ones(2)]),
    "cond_closure": (_cond_closure, lambda: [fx.ones(2), fx.ones(2)]),
    "scan": (
        lambda x: fx.scan(lambda c, v: (c + v, c * v), fx.tensor(0.0), x),
        lambda: [fx.ones(3)],
    ),
    "scan_pytree_reverse": (_scan_pytree_reverse, lambda: [fx.ones(3)]),
    "nested_scan": (nested_scan, lambda: [fx.ones((2, 3))]),
    "while": (_while, lambda: [fx.ones(3)]),
    "jvp": (lambda x: fx.jvp(fx.sin, (x,), (x,)), lambda: [fx.ones(3)]),
}

# Written out once from the printer, then checked by hand line by line.
GOLDEN = {
    "mul_add_sum": """\
{ lambda (a:f32[5]:cpu(0) b:f32[5]:cpu(0)) ;
let
c:f32[5]:cpu(0) = mul a b
d:f32[5]:cpu(0) = add c a
e:f32[]:cpu(0) = reduce_sum[axes=(0,)] d
in e }
""",
    "seed_001": """\
{ lambda (a:f32[5]:cpu(0)) ;
let
b:f32[5]:cpu(0) = mul a 2.0
c:f32[5]:cpu(0) = mul b a
d:f32[]:cpu(0) = reduce_sum[axes=(0,)] c
in d }
""",
    "seed_001_grad": """\
{ lambda (a:f32[5]:cpu(0)) ;
let
b:f32[5]:cpu(0) = mul a 2.0
c:f32[5]:cpu(0) = mul b a
d:f32[]:cpu(0) = reduce_sum[axes=(0,)] c
e:f32[1]:cpu(0) = reshape[shape=(1,)] 1.0
f:f32[5]:cpu(0) = broadcast_to[shape=(5,)] e
g:f32[5]:cpu(0) = mul f a
h:f32[5]:cpu(0) = mul f b
i:f32[5]:cpu(0) = mul g 2.0
j:f32[5]:cpu(0) = mul g a
k:f32[]:cpu(0) = reduce_sum[axes=(0,)] j
l:f32[5]:cpu(0) = add h i
in l }
""",
    "seed_001_vmap_grad": """\
{ lambda (a:f32[3,5]:cpu(0)) ;
let
b:f32[3,5]:cpu(0) = mul a 2.0
c:f32[3,5]:cpu(0) = mul b a
d:f32[3]:cpu(0) = reduce_sum[axes=(1,)] c
e:f32[1]:cpu(0) = reshape[shape=(1,)] 1.0
f:f32[5]:cpu(0) = broadcast_to[shape=(5,)] e
g:f32[3,5]:cpu(0) = mul f a
h:f32[3,5]:cpu(0) = mul f b
i:f32[3,5]:cpu(0) = mul g 2.0
j:f32[3,5]:cpu(0) = mul g a
k:f32[3]:cpu(0) = reduce_sum[axes=(1,)] j
l:f32[3,5]:cpu(0) = add h i
in l }
""",
    "broadcast_add": """\
{ lambda (a:f32[3,5]:cpu(0) b:f32[5]:cpu(0)) ;
let
c:f32[3,5]:cpu(0) = add a b
in c }
""",
    "broadcast_outer": """\
{ lambda (a:f32[3,1]:cpu(0) b:f32[1,4]:cpu(0)) ;
let
c:f32[3,4]:cpu(0) = mul a b
in c }
""",
    "matmul": """\
{ lambda (a:f32[2,3]:cpu(0) b:f32[3,4]:cpu(0)) ;
let
c:f32[2,4]:cpu(0) = matmul a b
in c }
""",
    "gram": """\
{ lambda (a:f32[3,2]:cpu(0)) ;
let
b:f32[2,3]:cpu(0) = transpose[perm=(1, 0)] a
c:f32[2,2]:cpu(0) = matmul b a
in c }
""",
    "vmap_matmul": """\
{ lambda (a:f32[4,2,3]:cpu(0) b:f32[3,5]:cpu(0)) ;
let
c:f32[4,2,5]:cpu(0) = matmul a b
in c }
""",
    "reshape_transpose": """\
{ lambda (a:f32[3,5]:cpu(0)) ;
let
b:f32[5,3]:cpu(0) = reshape[shape=(5, 3)] a
c:f32[3,5]:cpu(0) = transpose[perm=(1, 0)] b
in c }
""",
    "literals": """\
{ lambda (a:f32[2]:cpu(0)) ;
let
b:f32[2]:cpu(0) = mul a 2.5
c:f32[2]:cpu(0) = add b 1.0
d:f32[2]:cpu(0) = neg a
in (c, d) }
""",
    "int_literal": """\
{ lambda (a:i32[2]:cpu(0)) ;
let
b:i32[2]:cpu(0) = mul a 3
in b }
""",
    "float32_literal": """\
{ lambda (a:f32[2]:cpu(0)) ;
let
b:f32[2]:cpu(0) = mul a 0.1
in b }
""",
    "array_constant": """\
{ lambda (a:f32[3]:cpu(0)) ;
let
b:f32[3]:cpu(0) = add a constf32[3]:cpu(0)
in b }
""",
    "no_inputs": """\
{ lambda () ;
let
a:f32[3]:cpu(0) = mul constf32[3]:cpu(0) 2.0
in a }
""",
    "convert": """\
{ lambda (a:f32[3]:cpu(0)) ;
let
b:f64[3]:cpu(0) = convert[dtype=f64] a
in b }
""",
    "slice": """\
{ lambda (a:f32[3,5]:cpu(0)) ;
let
b:f32[2,3]:cpu(0) = slice[starts=(1, 0), stops=(3, 5), steps=(1, 2)] a
in b }
""",
    "where": """\
{ lambda (a:f32[3]:cpu(0)) ;
let
b:bool[3]:cpu(0) = gt a 0.0
c:f32[3]:cpu(0) = select b a 0.0
in c }
""",
    "cond": """\
{ lambda (a:bool[]:cpu(0) b:f32[2]:cpu(0) c:f32[2]:cpu(0)) ;
let
d:f32[2]:cpu(0) e:f32[2]:cpu(0) = cond[branches=(
    { lambda (a:f32[2]:cpu(0) b:f32[2]:cpu(0)) ;
    let
    c:f32[2]:cpu(0) = mul a b
    in (c, a) },
    { lambda (a:f32[2]:cpu(0) b:f32[2]:cpu(0)) ;
    let
    c:f32[2]:cpu(0) = sub a b
    in (c, b) })] a b c
in (d, e) }
""",
    "cond_closure": """\
{ lambda (a:f32[2]:cpu(0) b:f32[2]:cpu(0)) ;
let
c:f32[]:cpu(0) = reduce_sum[axes=(0,)] a
d:bool[]:cpu(0) = gt c 0.0
e:f32[2]:cpu(0) = cond[branches=(
    { lambda (a:f32[2]:cpu(0) b:f32[2]:cpu(0)) ;
    let
    c:f32[2]:cpu(0) = mul a b
    in c },
    { lambda (a:f32[2]:cpu(0) b:f32[2]:cpu(0)) ;
    let
    in a })] d a b
in e }
""",
    "scan": """\
{ lambda (a:f32[3]:cpu(0)) ;
let
b:f32[]:cpu(0) c:f32[3]:cpu(0) = scan[body=
    { lambda (a:f32[]:cpu(0) b:f32[]:cpu(0)) ;
    let
    c:f32[]:cpu(0) = add a b
    d:f32[]:cpu(0) = mul a b
    in (c, d) }, n_carry=1, n_xs=1, length=3, reverse=False] 0.0 a
in (b, c) }
""",
    "scan_pytree_reverse": """\
{ lambda (a:f32[3]:cpu(0)) ;
let
b:f32[]:cpu(0) c:f32[]:cpu(0) d:f32[3]:cpu(0) = scan[body=
    { lambda (a:f32[]:cpu(0) b:f32[]:cpu(0) c:f32[]:cpu(0)) ;
    let
    d:f32[]:cpu(0) = add a c
    e:f32[]:cpu(0) = mul b c
    in (d, e, a) }, n_carry=2, n_xs=1, length=3, reverse=True] 0.0 1.0 a
in (b, c, d) }
""",
    "nested_scan": """\
{ lambda (a:f32[2,3]:cpu(0)) ;
let
b:f32[]:cpu(0) c:f32[2]:cpu(0) = scan[body=
    { lambda (a:f32[]:cpu(0) b:f32[3]:cpu(0)) ;
    let
    c:f32[]:cpu(0) d:f32[3]:cpu(0) = scan[body=
        { lambda (a:f32[]:cpu(0) b:f32[]:cpu(0) c:f32[]:cpu(0)) ;
        let
        d:f32[]:cpu(0) = mul b c
        e:f32[]:cpu(0) = add a d
        in (e, a) }, n_carry=1, n_xs=1, length=3, reverse=False] a b a
    in (c, c) }, n_carry=1, n_xs=1, length=2, reverse=False] 1.0 a
in (b, c) }
""",
    "while": """\
{ lambda (a:f32[3]:cpu(0)) ;
let
b:f32[3]:cpu(0) = while[cond_graph=
    { lambda (a:f32[3]:cpu(0)) ;
    let
    b:f32[]:cpu(0) = reduce_sum[axes=(0,)] a
    c:bool[]:cpu(0) = lt b 10.0
    in c }, body_graph=
    { lambda (a:f32[3]:cpu(0)) ;
    let
    b:f32[3]:cpu(0) = mul a 2.0
    in b }, n_carry=1] a
in b }
""",
    "jvp": """\
{ lambda (a:f32[3]:cpu(0)) ;
let
b:f32[3]:cpu(0) = sin a
c:f32[3]:cpu(0) = cos a
d:f32[3]:cpu(0) = mul a c
in (b, d) }
""",
}


def test_every_program_has_a_golden():
    assert set(PROGRAMS) == set(GOLDEN)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_xpr_golden(name):
    fn, args = PROGRAMS[name]
    assert fx.xpr(fn, *args()) + "\n" == GOLDEN[name]


def test_seed_001_format_pieces():
    text = fx.xpr(seed_function, fx.ones(5))
    lines = text.splitlines()
    assert lines[0] == "{ lambda (a:f32[5]:cpu(0)) ;" and lines[1] == "let"
    assert lines[-1] == "in d }"
    assert all(" = " in line for line in lines[2:-1])


# ----------------------------------------------------------------------------- hand-built graphs


def _v(*shape, dtype=F32) -> Var:
    return Var(ShapedArray(tuple(shape), np.dtype(dtype)))


def _mul_add_graph():
    """(a, b) -> (a * b + 1.0, a * b), built directly."""
    a, b, c, d = _v(3), _v(3), _v(3), _v(3)
    eqns = [
        Eqn(P.mul_p, [a, b], {}, [c]),
        Eqn(P.add_p, [c, Literal(np.array(1.0, F32))], {}, [d]),
    ]
    return Graph([a, b], eqns, [d, c])


def test_pp_graph_of_a_hand_built_graph():
    graph = _mul_add_graph()
    assert pp_graph(graph) == (
        "{ lambda (a:f32[3]:cpu(0) b:f32[3]:cpu(0)) ;\n"
        "let\n"
        "c:f32[3]:cpu(0) = mul a b\n"
        "d:f32[3]:cpu(0) = add c 1.0\n"
        "in (d, c) }"
    )
    assert repr(graph) == pp_graph(graph)
    assert pp_graph(graph, 4).splitlines()[0] == "    { lambda (a:f32[3]:cpu(0) b:f32[3]:cpu(0)) ;"


def test_typecheck_accepts_well_formed_graphs():
    typecheck(_mul_add_graph())
    for fn, args in PROGRAMS.values():
        typecheck(fx.make_graph(fn, *args()))


def test_typecheck_rejects_wrong_output_shape():
    a, b, c = _v(3), _v(3), _v(4)
    with pytest.raises(IRTypeError, match=r"equation 0 \(mul\).*f32\[4\].*f32\[3\]"):
        typecheck(Graph([a, b], [Eqn(P.mul_p, [a, b], {}, [c])], [c]))


def test_typecheck_rejects_wrong_output_dtype():
    a, c = _v(3), _v(3, dtype="float64")
    with pytest.raises(IRTypeError, match="neg"):
        typecheck(Graph([a], [Eqn(P.neg_p, [a], {}, [c])], [c]))
    assert issubclass(IRTypeError, TypeError) and issubclass(IRTypeError, FluxionError)


def test_typecheck_rejects_use_before_define():
    a, c, d = _v(3), _v(3), _v(3)
    eqns = [Eqn(P.neg_p, [c], {}, [d]), Eqn(P.neg_p, [a], {}, [c])]
    with pytest.raises(IRTypeError, match=r"equation 0 \(neg\) uses a variable before"):
        typecheck(Graph([a], eqns, [d]))


def test_typecheck_rejects_undefined_output_and_redefinition():
    a, c, stray = _v(3), _v(3), _v(3)
    with pytest.raises(IRTypeError, match="never defined"):
        typecheck(Graph([a], [Eqn(P.neg_p, [a], {}, [c])], [stray]))
    with pytest.raises(IRTypeError, match="redefines"):
        typecheck(Graph([a], [Eqn(P.neg_p, [a], {}, [c]), Eqn(P.neg_p, [a], {}, [c])], [c]))
    with pytest.raises(IRTypeError, match="redefines"):
        typecheck(Graph([a], [Eqn(P.neg_p, [a], {}, [a])], [a]))


def test_typecheck_rejects_inputs_the_shape_rule_refuses():
    a, b, c = _v(3), _v(4), _v(3)
    with pytest.raises(FluxionError, match="mul"):
        typecheck(Graph([a, b], [Eqn(P.mul_p, [a, b], {}, [c])], [c]))


def test_typecheck_shares_checked_equations_but_rechecks_changed_ones(monkeypatch):
    graph, checked, ruled = _mul_add_graph(), {}, []
    rule = P.mul_p.abstract
    monkeypatch.setattr(P.mul_p, "abstract", lambda *a, **k: ruled.append(a) or rule(*a, **k))
    typecheck(graph, checked)
    typecheck(Graph(graph.invars, graph.eqns, graph.outvars), checked)  # as a pass keeps it
    assert len(ruled) == 1
    wider = _v(4)
    graph.invars[1] = wider  # an equation changed in place is checked again, and refused
    graph.eqns[0].inputs[1] = wider
    with pytest.raises(FluxionError, match="mul"):
        typecheck(graph, checked)


def test_typecheck_rejects_missing_outputs_of_a_multiple_result_equation():
    graph = fx.make_graph(_cond_two_outputs, fx.tensor(True), fx.ones(2), fx.ones(2))
    eqn = graph.eqns[-1]
    assert eqn.prim is cond_p and len(eqn.outputs) == 2
    short = Eqn(eqn.prim, eqn.inputs, eqn.params, eqn.outputs[:1])
    with pytest.raises(IRTypeError, match="cond"):
        typecheck(Graph(graph.invars, graph.eqns[:-1] + [short], short.outputs))


def test_typecheck_checks_nested_graphs():
    graph = fx.make_graph(_cond_two_outputs, fx.tensor(True), fx.ones(2), fx.ones(2))
    eqn = graph.eqns[-1]
    true_branch, false_branch = eqn.params["branches"]
    a, b = true_branch.invars
    c = _v(2)
    # the branch uses c before any equation defines it; its signature is unchanged
    broken = Graph([a, b], [Eqn(P.mul_p, [a, c], {}, [c]), *true_branch.eqns], true_branch.outvars)
    bad = Eqn(eqn.prim, eqn.inputs, {"branches": (broken, false_branch)}, eqn.outputs)
    with pytest.raises(IRTypeError):
        typecheck(Graph(graph.invars, graph.eqns[:-1] + [bad], graph.outvars))


# ----------------------------------------------------------------------------- eval_graph


def test_eval_graph_of_hand_built_graph_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=3).astype(np.float32), rng.normal(size=3).astype(np.float32)
    d, c = eval_graph(_mul_add_graph(), fx.tensor(a), fx.tensor(b))
    np.testing.assert_array_equal(c.numpy(), a * b)
    np.testing.assert_array_equal(d.numpy(), a * b + np.float32(1.0))


def _smooth(x, w):
    h = fx.tanh(x @ w)
    return fx.sum(h * h + fx.exp(-h), axis=-1)


def _inputs():
    rng = np.random.default_rng(1)
    return (
        fx.tensor(rng.normal(size=(4, 3)), dtype="float64"),
        fx.tensor(rng.normal(size=(3, 2)), dtype="float64"),
    )


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_eval_graph_equals_the_function(name):
    fn, args = PROGRAMS[name]
    args = args()
    graph = fx.make_graph(fn, *args)
    got = eval_graph(graph, *args)
    want = fx.tree_leaves(fn(*args))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_eval_graph_with_captured_inputs():
    x, w = _inputs()
    graph = fx.make_graph(lambda x: _smooth(x, w), x)
    assert len(graph.invars) == 2  # x, then the captured w
    (out,) = eval_graph(graph, x, w)
    np.testing.assert_allclose(out.numpy(), _smooth(x, w).numpy(), rtol=1e-14)
    w2 = w * 2
    (out,) = eval_graph(graph, x, w2)  # the captured value is an input, not a constant
    np.testing.assert_allclose(out.numpy(), _smooth(x, w2).numpy(), rtol=1e-14)


def test_grad_of_eval_graph_equals_grad_of_function():
    x, w = _inputs()
    row = x[0]
    graph = fx.make_graph(lambda v, w: fx.sum(_smooth(v, w)), row, w)
    via_graph = fx.grad(lambda v, w: eval_graph(graph, v, w)[0], argnums=(0, 1))(row, w)
    direct = fx.grad(lambda v, w: fx.sum(_smooth(v, w)), argnums=(0, 1))(row, w)
    for g, d in zip(via_graph, direct):
        np.testing.assert_allclose(g.numpy(), d.numpy(), rtol=1e-12)
    # central differences: an answer that does not go through any vjp rule
    eps, v0 = 1e-6, row.numpy()
    fd = []
    for i in range(3):
        e = np.zeros(3)
        e[i] = eps
        up = eval_graph(graph, fx.tensor(v0 + e), w)[0].numpy()
        down = eval_graph(graph, fx.tensor(v0 - e), w)[0].numpy()
        fd.append((up - down) / (2 * eps))
    np.testing.assert_allclose(via_graph[0].numpy(), fd, rtol=1e-6, atol=1e-8)


def test_vmap_jvp_and_jit_of_eval_graph():
    x, w = _inputs()
    row = x[0]
    graph = fx.make_graph(lambda v: _smooth(v, w), row)

    def run(v):
        return eval_graph(graph, v, w)[0]

    np.testing.assert_allclose(
        fx.vmap(run)(x).numpy(), fx.vmap(lambda v: _smooth(v, w))(x).numpy(), rtol=1e-14
    )
    loop = np.stack([_smooth(x[i], w).numpy() for i in range(4)])
    np.testing.assert_allclose(fx.vmap(run)(x).numpy(), loop, rtol=1e-14)
    t = fx.ones(3, dtype="float64")
    got = fx.jvp(run, (row,), (t,))
    want = fx.jvp(lambda v: _smooth(v, w), (row,), (t,))
    for g, d in zip(got, want):
        np.testing.assert_allclose(g.numpy(), d.numpy(), rtol=1e-12)
    np.testing.assert_allclose(fx.jit(run)(row).numpy(), run(row).numpy(), rtol=1e-14)
    per_row = fx.vmap(fx.grad(lambda v: fx.sum(run(v))))(x)
    direct = fx.vmap(fx.grad(lambda v: fx.sum(_smooth(v, w))))(x)
    np.testing.assert_allclose(per_row.numpy(), direct.numpy(), rtol=1e-12)


def test_eval_graph_of_a_graph_with_control_flow_is_transformable():
    xs = fx.tensor(np.linspace(0.1, 0.9, 6, dtype=np.float32).reshape(2, 3))
    graph = fx.make_graph(lambda x: fx.sum(nested_scan(x)[1]), xs)
    run = lambda x: eval_graph(graph, x)[0]  # noqa: E731
    np.testing.assert_allclose(run(xs).numpy(), fx.sum(nested_scan(xs)[1]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        fx.grad(run)(xs).numpy(),
        fx.grad(lambda x: fx.sum(nested_scan(x)[1]))(xs).numpy(),
        rtol=1e-6,
    )
