"""IR passes, each alone on hand-built graphs (STYLE.md point 5).

Graphs are built directly from ``Graph``/``Eqn``/``Var``/``Literal`` and the primitives,
so each test knows exactly what the pass is given. Every result must

* do what the pass promises (equations removed, merged, folded, simplified), and
* type-check, and evaluate (``eval_graph``) to the same values as the input graph on
  random inputs: the input graph run by the interpreter is the independent answer.

The end of the file runs ``optimize`` (all passes in order) on traced programs.
"""

from __future__ import annotations

import numpy as np
import pytest

import fluxion as fx
from fluxion.compiler import codegen, fusion, passes
from fluxion.core.ir import Eqn, Graph, Literal, Var, eval_graph, typecheck
from fluxion.core.primitive import ShapedArray
from fluxion.ops import primitives as P

F32, F64, I32 = np.dtype("float32"), np.dtype("float64"), np.dtype("int32")


def _v(*shape, dtype=F32) -> Var:
    return Var(ShapedArray(tuple(shape), np.dtype(dtype)))


def _lit(value, dtype=F32) -> Literal:
    return Literal(np.asarray(value, dtype=dtype))


def _eqn(prim, inputs, outputs, **params) -> Eqn:
    return Eqn(prim, inputs, params, outputs if isinstance(outputs, list) else [outputs])


def _random_inputs(graph, seed):
    rng = np.random.default_rng(seed)
    out = []
    for aval in graph.in_avals:
        dtype = np.dtype(aval.dtype)
        if dtype.kind == "f":
            value = rng.normal(size=aval.shape).astype(dtype)
        elif dtype.kind == "b":
            value = rng.uniform(size=aval.shape) > 0.5
        else:
            value = rng.integers(-5, 6, size=aval.shape).astype(dtype)
        out.append(fx.tensor(value))
    return out


def _same_values(before: Graph, after: Graph, seeds=(0, 1, 2)):
    """``after`` type-checks and equals ``before`` (shape, dtype, values) on random inputs."""
    typecheck(after)
    assert after.in_avals == before.in_avals, "a pass changed the graph's inputs"
    assert [(tuple(a.shape), np.dtype(a.dtype)) for a in after.out_avals] == [
        (tuple(a.shape), np.dtype(a.dtype)) for a in before.out_avals
    ], "a pass changed the graph's output types"
    for seed in seeds:
        args = _random_inputs(before, seed)
        want = eval_graph(before, *args)
        got = eval_graph(after, *args)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_array_equal(g.numpy(), w.numpy())


def _prims(graph) -> list[str]:
    return [e.prim.name for e in graph.eqns]


# ----------------------------------------------------------------------------- dead_code


def test_dead_code_removes_unused_equations():
    a, b = _v(3), _v(3)
    used, dead1, dead2, out = _v(3), _v(3), _v(), _v(3)
    graph = Graph(
        [a, b],
        [
            _eqn(P.exp_p, [a], dead1),  # only feeds another dead equation
            _eqn(P.mul_p, [a, b], used),
            _eqn(P.reduce_sum_p, [dead1], dead2, axes=(0,)),
            _eqn(P.add_p, [used, a], out),
        ],
        [out],
    )
    typecheck(graph)
    result = passes.dead_code(graph)
    assert _prims(result) == ["mul", "add"]
    assert result.eqns[0].outputs == [used] and result.outvars == [out]
    _same_values(graph, result)


def test_dead_code_keeps_everything_an_output_needs():
    a = _v(2, 2)
    t, n = _v(2, 2), _v(2, 2)
    graph = Graph([a], [_eqn(P.transpose_p, [a], t, perm=(1, 0)), _eqn(P.neg_p, [t], n)], [n, t, a])
    result = passes.dead_code(graph)
    assert _prims(result) == ["transpose", "neg"]
    _same_values(graph, result)


def test_dead_code_keeps_multiple_result_equations_when_one_output_is_used():
    graph = fx.make_graph(lambda x: fx.scan(lambda c, v: (c + v, c * v), x[0], x)[1], fx.ones(3))
    result = passes.dead_code(graph)
    assert "scan" in _prims(result)
    _same_values(graph, result)


def test_dead_code_of_a_graph_whose_output_is_an_input():
    a, dead = _v(3), _v(3)
    graph = Graph([a], [_eqn(P.exp_p, [a], dead)], [a])
    result = passes.dead_code(graph)
    assert result.eqns == []
    _same_values(graph, result)


# ----------------------------------------------------------------------------- CSE


def test_common_subexpressions_merges_duplicates():
    a, b = _v(3), _v(3)
    e1, e2, m1, m2, n1, n2, s = _v(3), _v(3), _v(3), _v(3), _v(3), _v(3), _v(3)
    graph = Graph(
        [a, b],
        [
            _eqn(P.exp_p, [a], e1),
            _eqn(P.exp_p, [a], e2),  # duplicate of e1
            _eqn(P.mul_p, [e1, b], m1),
            _eqn(P.mul_p, [e2, b], m2),  # a duplicate once e2 is e1
            _eqn(P.neg_p, [m1], n1),
            _eqn(P.neg_p, [m2], n2),
            _eqn(P.add_p, [n1, n2], s),
        ],
        [s, n2],
    )
    typecheck(graph)
    result = passes.common_subexpressions(graph)
    assert _prims(result) == ["exp", "mul", "neg", "add"]
    add = result.eqns[-1]
    assert add.inputs[0] is add.inputs[1]  # both operands are the one neg
    assert result.outvars[1] is add.inputs[0]
    _same_values(graph, result)


def test_common_subexpressions_respects_params_operand_order_and_literals():
    a, b = _v(2, 3), _v(2, 3)
    r0, r1, m1, m2, k1, k2, k3, k4 = (
        _v(3),
        _v(2),
        _v(2, 3),
        _v(2, 3),
        *[_v(2, 3) for _ in range(4)],
    )
    graph = Graph(
        [a, b],
        [
            _eqn(P.reduce_sum_p, [a], r0, axes=(0,)),
            _eqn(P.reduce_sum_p, [a], r1, axes=(1,)),  # other params: kept
            _eqn(P.sub_p, [a, b], m1),
            _eqn(P.sub_p, [b, a], m2),  # other operand order: kept
            _eqn(P.mul_p, [a, _lit(2.0)], k1),
            _eqn(P.mul_p, [a, _lit(2.0)], k2),  # equal literal: merged
            _eqn(P.mul_p, [a, _lit(3.0)], k3),  # other literal: kept
            _eqn(P.mul_p, [a, Literal(np.full((2, 3), 2.0, F32))], k4),  # other shape: kept
        ],
        [r0, r1, m1, m2, k1, k2, k3, k4],
    )
    typecheck(graph)
    result = passes.common_subexpressions(graph)
    assert _prims(result) == ["reduce_sum", "reduce_sum", "sub", "sub", "mul", "mul", "mul"]
    assert result.outvars[4] is result.outvars[5]
    _same_values(graph, result)


def test_common_subexpressions_compares_literals_by_dtype_and_bytes():
    # float32 1.0 and int32 1065353216 have the same four bytes
    k1, k2 = _v(dtype=F64), _v(dtype=F64)
    graph = Graph(
        [],
        [
            _eqn(P.convert_p, [_lit(1.0, F32)], k1, dtype=F64),
            _eqn(P.convert_p, [_lit(1065353216, I32)], k2, dtype=F64),
        ],
        [k1, k2],
    )
    typecheck(graph)
    result = passes.common_subexpressions(graph)
    assert len(result.eqns) == 2
    _same_values(graph, result, seeds=(0,))


# ----------------------------------------------------------------------------- folding


def test_constant_folding_folds_literal_only_equations():
    a = _v(3)
    c1, c2, c3, out = _v(3), _v(3), _v(), _v(3)
    graph = Graph(
        [a],
        [
            _eqn(P.exp_p, [_lit([0.0, 1.0, 2.0])], c1),
            _eqn(P.mul_p, [c1, _lit(2.0)], c2),  # literal once c1 is folded
            _eqn(P.reduce_sum_p, [c2], c3, axes=(0,)),
            _eqn(P.mul_p, [a, c3], out),  # depends on the input: kept
        ],
        [out, c2],
    )
    typecheck(graph)
    result = passes.constant_folding(graph)
    assert _prims(result) == ["mul"]
    assert result.eqns[0].inputs[0] is a
    folded = result.eqns[0].inputs[1]
    assert isinstance(folded, Literal) and folded.value.dtype == F32 and folded.value.shape == ()
    np.testing.assert_allclose(folded.value, 2 * np.exp(np.float32([0, 1, 2])).sum(), rtol=1e-6)
    assert isinstance(result.outvars[1], Literal)
    _same_values(graph, result)


@pytest.mark.parametrize(
    "prim, values, params",
    [
        (P.add_p, [np.int8(100), np.int8(100)], {}),  # wraps in int8, as eagerly
        (P.div_p, [np.float32(1.0), np.float32(3.0)], {}),
        (P.convert_p, [np.array([1.7, -2.5])], {"dtype": I32}),
        (P.reshape_p, [np.arange(6.0)], {"shape": (2, 3)}),
        (P.lt_p, [np.float32(1.0), np.float32(2.0)], {}),
    ],
)
def test_constant_folding_keeps_dtypes(prim, values, params):
    literals = [Literal(np.asarray(v)) for v in values]
    aval = prim.abstract(*[lit.aval for lit in literals], **params)
    out = Var(aval)
    graph = Graph([], [Eqn(prim, literals, params, [out])], [out])
    typecheck(graph)
    result = passes.constant_folding(graph)
    assert result.eqns == []
    (folded,) = result.outvars
    assert isinstance(folded, Literal)
    assert folded.value.shape == tuple(aval.shape) and folded.value.dtype == np.dtype(aval.dtype)
    _same_values(graph, result, seeds=(0,))


def test_constant_folding_leaves_large_results():
    big = _v(300, 300)
    graph = Graph(
        [],
        [_eqn(P.broadcast_to_p, [_lit(1.0)], big, shape=(300, 300))],
        [big],
    )
    result = passes.constant_folding(graph, max_size=1000)
    assert _prims(result) == ["broadcast_to"]
    _same_values(graph, result, seeds=(0,))


# ----------------------------------------------------------------------------- algebra


def _identity_cases():
    """(name, build(a) -> (eqns, out)) where ``out`` equals the input ``a`` of f32[2,3]."""

    def binary(prim, literal, literal_first=False):
        def build(a):
            out = _v(2, 3)
            inputs = [literal, a] if literal_first else [a, literal]
            return [_eqn(prim, inputs, out)], out

        return build

    def unary(prim, **params):
        def build(a):
            out = _v(2, 3)
            return [_eqn(prim, [a], out, **params)], out

        return build

    return [
        ("x*1", binary(P.mul_p, _lit(1.0))),
        ("1*x", binary(P.mul_p, _lit(1.0), literal_first=True)),
        ("x*ones", binary(P.mul_p, Literal(np.ones((3,), F32)))),
        ("x+0", binary(P.add_p, _lit(0.0))),
        ("0+x", binary(P.add_p, _lit(0.0), literal_first=True)),
        ("x-0", binary(P.sub_p, _lit(0.0))),
        ("x/1", binary(P.div_p, _lit(1.0))),
        ("reshape same", unary(P.reshape_p, shape=(2, 3))),
        ("convert same", unary(P.convert_p, dtype=F32)),
        ("broadcast same", unary(P.broadcast_to_p, shape=(2, 3))),
        ("transpose identity", unary(P.transpose_p, perm=(0, 1))),
    ]


@pytest.mark.parametrize("name, build", _identity_cases(), ids=[c[0] for c in _identity_cases()])
def test_algebraic_simplification_removes_identities(name, build):
    a = _v(2, 3)
    eqns, out = build(a)
    final = _v(2, 3)
    graph = Graph([a], [*eqns, _eqn(P.neg_p, [out], final)], [final, out])
    typecheck(graph)
    result = passes.algebraic_simplification(graph)
    assert _prims(result) == ["neg"], name
    assert result.eqns[0].inputs[0] is a and result.outvars[1] is a
    _same_values(graph, result)


def test_algebraic_simplification_keeps_what_is_not_an_identity():
    a, i = _v(3), _v(3, dtype=I32)
    outs = [_v(2, 3), _v(3), _v(3), _v(3), _v(3), _v(1, 3), _v(3)]
    eqns = [
        _eqn(P.mul_p, [a, Literal(np.ones((2, 3), F32))], outs[0]),  # broadcasts x
        _eqn(P.mul_p, [a, _lit(2.0)], outs[1]),
        _eqn(P.sub_p, [_lit(0.0), a], outs[2]),  # 0 - x is -x
        _eqn(P.div_p, [_lit(1.0), a], outs[3]),
        _eqn(P.convert_p, [i], outs[4], dtype=F32),
        _eqn(P.reshape_p, [a], outs[5], shape=(1, 3)),
        _eqn(P.mul_p, [a, _lit(-1.0)], outs[6]),
    ]
    graph = Graph([a, i], eqns, outs)
    typecheck(graph)
    result = passes.algebraic_simplification(graph)
    assert len(result.eqns) == len(eqns)
    _same_values(graph, result)


def test_algebraic_simplification_merges_reshape_chains():
    a = _v(2, 3, 4)
    r1, r2, r3, out = _v(6, 4), _v(24), _v(4, 6), _v(4, 6)
    graph = Graph(
        [a],
        [
            _eqn(P.reshape_p, [a], r1, shape=(6, 4)),
            _eqn(P.reshape_p, [r1], r2, shape=(24,)),
            _eqn(P.reshape_p, [r2], r3, shape=(4, 6)),
            _eqn(P.exp_p, [r3], out),
        ],
        [out],
    )
    typecheck(graph)
    result = passes.dead_code(passes.algebraic_simplification(graph))
    assert _prims(result) == ["reshape", "exp"]
    assert result.eqns[0].inputs[0] is a and result.eqns[0].params["shape"] == (4, 6)
    _same_values(graph, result)


def test_algebraic_simplification_merges_double_transposes():
    a = _v(2, 3, 4)
    t1, t2 = _v(3, 4, 2), _v(4, 3, 2)
    graph = Graph(
        [a],
        [
            _eqn(P.transpose_p, [a], t1, perm=(1, 2, 0)),
            _eqn(P.transpose_p, [t1], t2, perm=(1, 0, 2)),
        ],
        [t2],
    )
    typecheck(graph)
    result = passes.dead_code(passes.algebraic_simplification(graph))
    assert _prims(result) == ["transpose"]
    assert result.eqns[0].inputs[0] is a and result.eqns[0].params["perm"] == (2, 1, 0)
    _same_values(graph, result)


def test_algebraic_simplification_removes_transpose_of_its_inverse():
    """x.T.T is x: the merged transpose is the identity, so nothing is left."""
    a = _v(2, 3)
    t1, t2, out = _v(3, 2), _v(2, 3), _v(2, 3)
    graph = Graph(
        [a],
        [
            _eqn(P.transpose_p, [a], t1, perm=(1, 0)),
            _eqn(P.transpose_p, [t1], t2, perm=(1, 0)),
            _eqn(P.neg_p, [t2], out),
        ],
        [out],
    )
    result = passes.dead_code(passes.algebraic_simplification(graph))
    assert _prims(result) == ["neg"] and result.eqns[0].inputs[0] is a
    _same_values(graph, result)


@pytest.mark.parametrize("other_reader", [False, True])
def test_algebraic_simplification_transposes_a_product_read_only_transposed(other_reader):
    """(a @ b)^T becomes b^T @ a^T (a weight gradient comes out contiguous); a transposed
    operand's transpose is undone. Kept when the product is also read as it is."""
    a, b = _v(2, 5, 3), _v(3, 4)  # a batched a, a 2-d b
    at, p, pt = _v(2, 3, 5), _v(2, 5, 4), _v(2, 4, 5)
    eqns = [
        _eqn(P.transpose_p, [at], a, perm=(0, 2, 1)),
        _eqn(P.matmul_p, [a, b], p),
        _eqn(P.transpose_p, [p], pt, perm=(0, 2, 1)),
    ]
    graph = Graph([at, b], eqns, [pt, p] if other_reader else [pt])
    typecheck(graph)
    result = passes.dead_code(passes.algebraic_simplification(graph))
    typecheck(result)
    if other_reader:
        assert _prims(result) == ["transpose", "matmul", "transpose"]
    else:
        (bt, product) = result.eqns  # b^T @ a^T, and a^T is the input itself
        assert _prims(result) == ["transpose", "matmul"] and product.inputs[1] is at
        assert bt.inputs[0] is b and product.outputs[0] is pt
    args = _random_inputs(graph, 0)
    for got, want in zip(eval_graph(result, *args), eval_graph(graph, *args)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_algebraic_simplification_removes_reshape_round_trip():
    a = _v(2, 3)
    r1, r2, out = _v(6), _v(2, 3), _v(2, 3)
    graph = Graph(
        [a],
        [
            _eqn(P.reshape_p, [a], r1, shape=(6,)),
            _eqn(P.reshape_p, [r1], r2, shape=(2, 3)),
            _eqn(P.neg_p, [r2], out),
        ],
        [out],
    )
    result = passes.dead_code(passes.algebraic_simplification(graph))
    assert _prims(result) == ["neg"] and result.eqns[0].inputs[0] is a
    _same_values(graph, result)


# ----------------------------------------------------------------------------- pads


def _pad(x, out, lo, hi, axis=1, value=0.0, interior=0):
    widths = tuple((lo, hi, interior) if k == axis else (0, 0, 0) for k in range(len(x.aval.shape)))
    return _eqn(P.pad_p, [x], out, widths=widths, value=value)


def test_pads_to_concatenate_joins_the_gradient_of_a_split():
    q, k, v = _v(2, 3), _v(2, 3), _v(2, 3)
    pq, pk, pv, s1, s2 = (_v(2, 9) for _ in range(5))
    graph = Graph(
        [q, k, v],
        [
            _pad(q, pq, 0, 6),
            _pad(k, pk, 3, 3),
            _pad(v, pv, 6, 0),
            _eqn(P.add_p, [pq, pk], s1),
            _eqn(P.add_p, [s1, pv], s2),
        ],
        [s2],
    )
    result = passes.pads_to_concatenate(graph)
    assert _prims(result) == ["concatenate"]
    assert result.eqns[0].inputs == [q, k, v]
    _same_values(graph, result)


def test_pads_to_concatenate_keeps_the_zeros_neither_piece_reaches():
    a, b = _v(2, 3), _v(2, 2)
    pa, pb, s = _v(2, 9), _v(2, 9), _v(2, 9)
    graph = Graph(
        [a, b],
        [_pad(b, pb, 4, 3), _pad(a, pa, 1, 5), _eqn(P.add_p, [pb, pa], s)],  # b after a
        [s],
    )
    result = passes.pads_to_concatenate(graph)
    assert _prims(result) == ["concatenate", "pad"]
    assert result.eqns[0].inputs == [a, b]
    assert result.eqns[1].params["widths"] == ((0, 0, 0), (1, 3, 0))
    _same_values(graph, result)


@pytest.mark.parametrize("case", ["gap", "value", "reused", "axes", "interior"])
def test_pads_to_concatenate_leaves_other_sums_of_pads(case):
    a, b = _v(2, 3), _v(2, 3)
    width = 7 if case == "gap" else 6
    pa, pb, s = _v(2, width), _v(2, width), _v(2, width)
    eqns = [
        _pad(a, pa, 0, 4 if case == "gap" else 3, value=1.0 if case == "value" else 0.0),
        _pad(b, pb, 4 if case == "gap" else 3, 0),
        _eqn(P.add_p, [pa, pb], s),
    ]
    outs = [s, pa] if case == "reused" else [s]
    if case == "axes":
        pa, pb, s = _v(2, 6), _v(4, 3), _v(4, 6)
        pa2, pb2 = _v(4, 6), _v(4, 6)
        eqns = [
            _pad(a, pa, 0, 3),
            _pad(pa, pa2, 0, 2, axis=0),
            _pad(b, pb, 2, 0, axis=0),
            _pad(pb, pb2, 3, 0),
            _eqn(P.add_p, [pa2, pb2], s),
        ]
        outs = [s]
    if case == "interior":
        pa, s = _v(2, 6), _v(2, 6)
        eqns = [_pad(a, pa, 0, 1, interior=1), _pad(b, pb, 3, 0), _eqn(P.add_p, [pa, pb], s)]
        outs = [s]
    graph = Graph([a, b], eqns, outs)
    typecheck(graph)
    result = passes.pads_to_concatenate(graph)
    assert "concatenate" not in _prims(result)
    _same_values(graph, result)


# ----------------------------------------------------------------------------- fusion


def _fused(graph) -> list[Graph]:
    return [e.params["graph"] for e in graph.eqns if e.prim.name == "fused"]


def test_fuse_elementwise_makes_one_equation_of_a_chain():
    a, b = _v(4, 5), _v(5)
    t1, t2, t3 = _v(4, 5), _v(4, 5), _v(4, 5)
    graph = Graph(
        [a, b],
        [
            _eqn(P.mul_p, [a, _lit(2.0)], t1),
            _eqn(P.exp_p, [t1], t2),
            _eqn(P.add_p, [t2, b], t3),
        ],
        [t3],
    )
    result = fusion.fuse_elementwise(graph)
    assert _prims(result) == ["fused"]
    (inner,) = _fused(result)
    assert _prims(inner) == ["mul", "exp", "add"] and len(inner.outvars) == 1
    assert result.eqns[0].inputs == [a, b]  # the 0-d literal stays inside
    _same_values(graph, result)


def test_fuse_elementwise_closes_a_group_before_its_first_outside_reader():
    a = _v(4, 5)
    t1, t2, s, t3 = _v(4, 5), _v(4, 5), _v(4), _v(4, 5)
    graph = Graph(
        [a],
        [
            _eqn(P.exp_p, [a], t1),
            _eqn(P.neg_p, [t1], t2),
            _eqn(P.reduce_max_p, [t2], s, axes=(1,)),  # reads the group: closes it
            _eqn(P.mul_p, [t2, t1], t3),  # same shape, after the reader: a new group
        ],
        [t3, s],
    )
    result = fusion.fuse_elementwise(graph)
    assert _prims(result) == ["fused", "reduce_max", "mul"]
    first = result.eqns[0]
    assert first.outputs == [t1, t2]  # both are read outside the group
    _same_values(graph, result)


def test_fuse_elementwise_takes_in_row_and_column_sums_of_its_values():
    a = _v(4, 5, 6)
    t1, rows, cols, mid, e = _v(4, 5, 6), _v(4, 5), _v(6), _v(4, 6), _v(4)
    graph = Graph(
        [a],
        [
            _eqn(P.exp_p, [a], t1),
            _eqn(P.reduce_sum_p, [t1], rows, axes=(2,)),  # a row sum: joins
            _eqn(P.reduce_sum_p, [t1], cols, axes=(0, 1)),  # a column sum: joins
            _eqn(P.reduce_sum_p, [t1], mid, axes=(1,)),  # a middle axis: reads the group
            _eqn(P.reduce_sum_p, [rows], e, axes=(1,)),
        ],
        [t1, cols, mid, e],
    )
    result = fusion.fuse_elementwise(graph)
    assert _prims(result) == ["fused", "reduce_sum", "reduce_sum"]
    assert _prims(result.eqns[0].params["graph"]) == ["exp", "reduce_sum", "reduce_sum"]
    assert result.eqns[0].outputs == [t1, rows, cols]
    _same_values(graph, result)


def test_fuse_elementwise_closes_a_group_before_a_reader_of_its_sum():
    a = _v(4, 5)
    t1, s, t2, total = _v(4, 5), _v(5), _v(4, 5), _v()
    graph = Graph(
        [a],
        [
            _eqn(P.exp_p, [a], t1),
            _eqn(P.reduce_sum_p, [t1], s, axes=(0,)),  # joins the group
            _eqn(P.reduce_sum_p, [s], total, axes=(0,)),  # a sum of the sum: after the group
            _eqn(P.div_p, [t1, s], t2),  # the group's shape, but the sum is complete only after
        ],
        [t2, total],
    )
    result = fusion.fuse_elementwise(graph)
    assert _prims(result) == ["fused", "reduce_sum", "div"]
    _same_values(graph, result)


def test_fuse_elementwise_lets_unrelated_equations_move_ahead_of_an_open_group():
    a, m = _v(3, 4), _v(4, 4)
    t1, p, t2 = _v(3, 4), _v(3, 4), _v(3, 4)
    graph = Graph(
        [a, m],
        [
            _eqn(P.tanh_p, [a], t1),
            _eqn(P.matmul_p, [a, m], p),  # reads nothing of the group
            _eqn(P.add_p, [t1, p], t2),
        ],
        [t2],
    )
    result = fusion.fuse_elementwise(graph)
    assert _prims(result) == ["matmul", "fused"]
    assert _prims(_fused(result)[0]) == ["tanh", "add"]
    _same_values(graph, result)


def test_fuse_elementwise_keeps_one_group_per_shape():
    a, b = _v(3, 4), _v(3, 1)
    row, r1, r2, big1, big2 = _v(3, 1), _v(3, 1), _v(3, 1), _v(3, 4), _v(3, 4)
    graph = Graph(
        [a, b],
        [
            _eqn(P.exp_p, [a], big1),
            _eqn(P.neg_p, [b], r1),
            _eqn(P.mul_p, [r1, b], r2),
            _eqn(P.mul_p, [r1, _lit(np.full((3, 1), 4.0))], row),
            _eqn(P.add_p, [big1, r2], big2),  # reads the (3, 1) group: closes it first
        ],
        [big2, row],
    )
    result = fusion.fuse_elementwise(graph)
    assert _prims(result) == ["fused", "fused"]
    small, big = _fused(result)
    assert _prims(small) == ["neg", "mul", "mul"] and _prims(big) == ["exp", "add"]
    assert isinstance(result.eqns[0].inputs[1], Literal)  # an array literal is an input
    _same_values(graph, result)


def test_fuse_elementwise_splits_a_group_into_parts_that_share_no_array():
    # two optimizer-like updates of one shape, sharing a scalar: two groups, not one; a
    # third chain reading the first's input joins it
    p1, g1, p2, g2, lr = _v(8), _v(8), _v(8), _v(8), _v()
    s1, n1, s2, n2, t = _v(8), _v(8), _v(8), _v(8), _v(8)
    graph = Graph(
        [p1, g1, p2, g2, lr],
        [
            _eqn(P.mul_p, [g1, lr], s1),
            _eqn(P.sub_p, [p1, s1], n1),
            _eqn(P.mul_p, [g2, lr], s2),
            _eqn(P.sub_p, [p2, s2], n2),
            _eqn(P.exp_p, [p1], t),
        ],
        [n1, n2, t],
    )
    result = fusion.fuse_elementwise(graph)
    first, second = _fused(result)
    assert _prims(first) == ["mul", "sub", "exp"] and _prims(second) == ["mul", "sub"]
    assert [len(g.invars) for g in (first, second)] == [3, 3]
    _same_values(graph, result)


def test_fuse_elementwise_leaves_single_equations_and_scalars_alone():
    a, s = _v(3), _v()
    t1, r, t2 = _v(3), _v(), _v()
    graph = Graph(
        [a, s],
        [
            _eqn(P.exp_p, [a], t1),
            _eqn(P.reduce_max_p, [t1], r, axes=(0,)),
            _eqn(P.mul_p, [r, s], t2),
        ],
        [t2],
    )
    result = fusion.fuse_elementwise(graph)
    assert _prims(result) == ["exp", "reduce_max", "mul"]
    _same_values(graph, result)


@pytest.mark.parametrize(
    "shape, in_shapes, want",
    [
        ((300, 1000), [(300, 1000), (1000,), ()], 1),
        ((300, 1000), [(300, 1000), ()], 2),
        ((8, 64, 500), [(8, 64, 500), (8, 64, 1)], 2),
        ((8, 64, 500), [(8, 64, 500), (1, 64, 500)], 1),
        ((8, 64, 500), [(8, 64, 500), (8, 1, 500)], 1),
        ((8, 64, 500), [(8, 64, 500), (1, 1, 500)], 2),
    ],
)
def test_blocked_layout_spans_the_rows_every_input_slices_or_broadcasts_along(
    shape, in_shapes, want
):
    assert codegen.blocked_layout(shape, in_shapes) == want


def _blocked_program():
    """A group over (300, 1000) float32 (1.2 MB: several blocks) reading a full input, a
    transposed one, a row, a column and a scalar, with bool, int and float results."""
    big = (300, 1000)
    x, xt, row, col, s = _v(*big), _v(1000, 300), _v(1000), _v(300, 1), _v()
    t = _v(*big)
    e = [_v(*big) for _ in range(8)]
    mask, ints = _v(*big, dtype=bool), _v(*big, dtype=I32)
    eqns = [
        _eqn(P.transpose_p, [xt], t, perm=(1, 0)),
        _eqn(P.mul_p, [x, row], e[0]),
        _eqn(P.add_p, [e[0], t], e[1]),
        _eqn(P.erf_p, [e[1]], e[2]),
        _eqn(P.div_p, [e[2], col], e[3]),
        _eqn(P.lt_p, [e[3], s], mask),
        _eqn(P.select_p, [mask, e[3], _lit(0.0)], e[4]),
        _eqn(P.convert_p, [e[4]], ints, dtype=I32),
        _eqn(P.tanh_p, [e[4]], e[5]),
    ]
    return Graph([x, xt, row, col, s], eqns, [e[5], mask, ints, e[1]])


def test_a_blocked_group_equals_the_interpreted_equations():
    graph = _blocked_program()
    result = fusion.fuse_elementwise(graph)
    assert _prims(result) == ["transpose", "fused"]
    kernel = codegen.compile_blocked(_fused(result)[0])
    assert "for s in range(0, 300, 65):" in kernel.source  # 65 rows of 1000 float32: 256 KiB
    _same_values(graph, result)


def test_a_fused_group_is_no_primitive():
    """A group has no transform rules (optimized graphs are run, never transformed) and is
    in no registry; run outside transforms, it equals the equations it groups."""
    from fluxion.core.primitive import PRIMITIVES

    assert fusion.FUSED not in PRIMITIVES.values()
    assert not any(hasattr(fusion.FUSED, rule) for rule in ("jvp", "vjp", "batch"))
    graph = _blocked_program()
    fused = fusion.fuse_elementwise(graph)
    assert "fused" in _prims(fused)
    _same_values(graph, fused)


# ----------------------------------------------------------------------------- memory plan


def test_plan_memory_reuses_a_dying_buffer_this_function_made():
    a, b = _v(4), _v(4)
    t1, t2, t3 = _v(4), _v(4), _v(4)
    graph = Graph(
        [a, b],
        [_eqn(P.add_p, [a, b], t1), _eqn(P.exp_p, [t1], t2), _eqn(P.mul_p, [t2, a], t3)],
        [t3],
    )
    plan = codegen.plan_memory(graph)
    assert plan.reuse == {1: t1, 2: t2}  # never a, b: the caller's arrays
    assert plan.dead == {0: [b], 1: [t1], 2: [t2, a]}


def test_plan_memory_does_not_reuse_what_is_read_later_viewed_or_differently_typed():
    a = _v(2, 3)
    t1, r, t2, t3, c, t4, t5 = (
        _v(2, 3),
        _v(3, 2),
        _v(2, 3),
        _v(2, 3),
        _v(2, 3, dtype=F64),
        _v(2, 3),
        _v(2, 3),
    )
    graph = Graph(
        [a],
        [
            _eqn(P.exp_p, [a], t1),
            _eqn(P.reshape_p, [t1], r, shape=(3, 2)),  # may return a view of t1
            _eqn(P.neg_p, [t1], t2),  # t1 dies here, but r may share its memory
            _eqn(P.sin_p, [t2], t3),  # t2 is read again below: not reused here
            _eqn(P.convert_p, [t3], c, dtype=F64),
            _eqn(P.cos_p, [t2], t4),  # t2 dies here: reused
            _eqn(P.add_p, [t4, t3], t5),
        ],
        [t5, r, c],
    )
    plan = codegen.plan_memory(graph)
    assert plan.reuse == {5: t2, 6: t4}
    assert all(t5 not in dead and r not in dead and c not in dead for dead in plan.dead.values())
    run = codegen.compile_graph(graph)
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    got = run(x)
    want = [w.numpy() for w in eval_graph(graph, fx.tensor(x))]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_plan_memory_frees_unused_results_at_once():
    a = _v(3)
    unused, t = _v(3), _v(3)
    graph = Graph([a], [_eqn(P.exp_p, [a], unused), _eqn(P.neg_p, [a], t)], [t])
    plan = codegen.plan_memory(graph)
    assert plan.dead[0] == [unused] and plan.dead[1] == [a]


# ----------------------------------------------------------------------------- optimize


def _programs():
    def seed(x):
        return fx.sum(x * 2 * x, axes=0)

    return {
        "seed_vmap_grad": (fx.vmap(fx.grad(seed)), [(3, 5)]),
        "mlp_grad": (
            fx.grad(lambda w, x: fx.sum(fx.tanh(x @ w) ** 2), argnums=(0, 1)),
            [(3, 2), (4, 3)],
        ),
        "softmax": (lambda x: fx.softmax(x * 1.0 + 0.0, axis=-1), [(2, 5)]),
        "dup": (lambda x: fx.exp(x) / fx.sum(fx.exp(x)) + x.T.T, [(3, 3)]),
        "scan": (lambda x: fx.scan(lambda c, v: (c * v + 1.0, c), x[0], x)[1], [(4, 2)]),
        "reshapes": (lambda x: fx.reshape(fx.reshape(x, (6,)), (3, 2)).T * 1, [(2, 3)]),
    }


@pytest.mark.parametrize("name", sorted(_programs()))
def test_optimize_preserves_values_and_types(name):
    fn, shapes = _programs()[name]
    args = [fx.ones(s) for s in shapes]
    graph = fx.make_graph(fn, *args)
    typecheck(graph)
    optimized = passes.optimize(graph)
    assert len(optimized.eqns) <= len(graph.eqns)
    _same_values(graph, optimized)


def test_optimize_of_seed_001_program_is_small():
    graph = fx.make_graph(fx.vmap(fx.grad(lambda x: fx.sum(x * 2 * x, axes=0))), fx.ones((3, 5)))
    optimized = passes.optimize(graph)
    assert len(optimized.eqns) <= 3, optimized
    assert "reduce_sum" not in _prims(optimized)  # the cotangent of the literal 2.0 is dead


def test_a_sum_over_no_axis_is_dropped():
    from fluxion.compiler.passes import algebraic_simplification
    from fluxion.ops import primitives as P

    a, b = (
        Var(ShapedArray((3,), np.dtype(np.float32))),
        Var(ShapedArray((3,), np.dtype(np.float32))),
    )
    out = algebraic_simplification(Graph([a], [Eqn(P.reduce_sum_p, [a], {"axes": ()}, [b])], [b]))
    assert out.eqns == [] and out.outvars == [a]


def test_each_pass_keeps_the_graphs_signature(monkeypatch):
    """optimize checks after every pass that the graph still takes and returns what the
    traced one did: a pass returning another output shape raises IRTypeError."""
    from fluxion.core.ir import IRTypeError

    def wrong_output(graph):
        return Graph(graph.invars, graph.eqns, [graph.invars[0]])

    monkeypatch.setattr(passes, "PASSES", [*passes.PASSES[:2], wrong_output])
    with pytest.raises(IRTypeError, match=r"outputs from \(f32\[\]"):
        fx.jit(lambda x: fx.sum(x * 2.0))(fx.ones(3))
