"""Every kernel the default backend overrides gives its reference kernel's answer.

backends/numpy_fast.py overrides a few primitives' one-line NumPy references with faster
kernels, each on the inputs where it is faster. Here each runs on inputs that take its fast
path and inputs that do not, against the reference: bit for bit where the override moves
or compares values, within the sum's error bound where it adds in another order.
"""

import numpy as np
import pytest

import fluxion as fx
from fluxion.backends import numpy_fast
from fluxion.core.primitive import PRIMITIVES

rng = np.random.default_rng(0)


def _f(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# (primitive, args, params, exact): inputs on and off each fast path
CASES = [
    ("select", (_f(64, 128) > 0, _f(64, 128), np.zeros((), np.float32)), {}, True),  # relu
    ("select", (_f(64, 128) > 0, np.zeros((), np.float64), _f(64, 128, dtype=np.float64)), {}, True),
    ("select", (_f(64, 128) > 0, _f(64, 128), _f(1, 128)), {}, True),  # both arrays
    ("select", (_f(8, 8) > 0, _f(8, 8), _f(8, 8)), {}, True),  # small: np.where
    ("select", (_f(64, 128) > 0, rng.integers(-9, 9, (64, 128)), rng.integers(-9, 9, (128,))), {}, True),
    ("select", (_f(64, 128) > 0, _f(64, 128) > 1, np.zeros((), bool)), {}, True),
    ("reduce_sum", (_f(300, 20),), {"axes": (1,)}, False),  # a short innermost axis: einsum
    ("reduce_sum", (_f(300, 20, dtype=np.float64),), {"axes": (0, 1)}, False),
    ("reduce_sum", (_f(64, 3, 50),), {"axes": (0, 1)}, False),  # leading axes: ones @ rows
    ("reduce_sum", (_f(50, 2000),), {"axes": (1,)}, True),  # a long axis: the reference
    ("reduce_sum", (rng.integers(0, 9, (40, 7)),), {"axes": (1,)}, True),
    ("reduce_sum", (_f(0, 7),), {"axes": (0,)}, True),
    ("reduce_max", (_f(200, 8),), {"axes": (1,)}, True),  # attention scores over 8 keys
    ("reduce_min", (_f(200, 8, dtype=np.float64),), {"axes": (1,)}, True),
    ("reduce_max", (np.where(_f(200, 8) > 1, np.nan, _f(200, 8)),), {"axes": (1,)}, True),
    ("reduce_min", (_f(20, 100),), {"axes": (1,)}, True),
    ("matmul", (_f(4, 16, 32), _f(32, 8)), {}, False),  # a stack times one matrix
    ("matmul", (_f(3, 5), _f(5, 2)), {}, True),
    ("matmul", (_f(2, 3, 4), _f(2, 4, 5)), {}, True),
    ("scatter_add", (_f(10, 4), rng.integers(0, 10, (30,)), _f(30, 4)), {"axis": 0}, False),
    ("scatter_add", (_f(10, 4), rng.integers(-10, 10, (6, 5)), _f(6, 5, 4)), {"axis": 0}, False),
    ("scatter_add", (_f(4, 10), rng.integers(0, 10, (7,)), _f(4, 7)), {"axis": 1}, True),
    ("scatter_add", (rng.integers(0, 5, (6, 2)), rng.integers(0, 6, (4,)), rng.integers(0, 5, (4, 2))), {"axis": 0}, True),
]  # fmt: skip


def test_every_override_is_covered():
    assert {name for name, *_ in CASES} == set(numpy_fast.KERNELS)


@pytest.mark.parametrize("name, args, params, exact", CASES, ids=lambda c: str(c)[:20])
def test_override_matches_reference(name, args, params, exact):
    prim = PRIMITIVES[name]
    fast = numpy_fast.KERNELS[name](prim.reference)(np, *args, **params)
    want = prim.reference(np, *args, **params)
    assert fast.shape == want.shape and fast.dtype == want.dtype
    if exact:
        np.testing.assert_array_equal(fast, want)
    else:  # another order of the same additions: within a few ulps of each term's size
        scale = np.abs(np.asarray(args[-1], np.float64)).max() * max(args[0].shape)
        np.testing.assert_allclose(fast, want, rtol=0, atol=8 * np.finfo(want.dtype).eps * scale)


def test_set_backend_switches_every_kernel_and_training_agrees():
    def step(w, x):
        return fx.value_and_grad(lambda w: fx.sum(fx.relu(x @ w) ** 2) + fx.max(x @ w))(w)

    w, x = fx.tensor(_f(32, 16)), fx.tensor(_f(8, 64, 32))
    fast = step(w, x)
    try:
        fx.backends.set_backend("numpy")
        assert all(p.impl is p.reference for p in PRIMITIVES.values())
        assert fx.backends.backend_name() == "numpy"
        reference = step(w, x)
    finally:
        fx.backends.set_backend("numpy_fast")
    assert PRIMITIVES["select"].impl is not PRIMITIVES["select"].reference
    for a, b in zip(fast, reference):  # float32 sums in another order: relative to the largest
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5 * np.abs(b.numpy()).max())


def test_unknown_backend_is_refused():
    with pytest.raises(
        fx.errors.InvalidArgumentError, match="available: \\['numpy', 'numpy_fast'\\]"
    ):
        fx.backends.set_backend("cupy")
