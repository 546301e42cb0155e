"""Helpers of the JAX-face tests: JAX itself is the oracle (test-only)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import fluxion as fx


@pytest.fixture(autouse=True)
def x64():
    """JAX in float64 (and int64, as fluxion's integers) for the duration of each test."""
    with jax.enable_x64(True):
        yield


def to_numpy(tree):
    return jax.tree_util.tree_map(
        lambda x: x.numpy() if isinstance(x, fx.Tensor) else np.asarray(x), tree
    )


def assert_same(got, want, rtol=1e-10, atol=1e-12, dtype=True):
    """fluxion's result against JAX's: the same structure, shapes, dtypes and values (to
    float32's rounding where the result is float32: the two sum in different orders)."""
    got_leaves, got_tree = jax.tree_util.tree_flatten(to_numpy(got))
    want_leaves, want_tree = jax.tree_util.tree_flatten(to_numpy(want))
    assert got_tree == want_tree, (got_tree, want_tree)
    for g, w in zip(got_leaves, want_leaves):
        assert g.shape == w.shape, (g.shape, w.shape)
        if dtype:
            assert g.dtype == w.dtype, (g.dtype, w.dtype)
        low = g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=max(rtol, 1e-6 * low), atol=max(atol, 1e-6 * low))
