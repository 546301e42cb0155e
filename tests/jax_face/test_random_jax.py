"""fx.random against jax.random: the same calls give the same shapes and dtypes (JAX in its
default float32 mode), and the draws mean the same (other bits: a different generator)."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fluxion as fx
from fluxion import random as fr

jr = jax.random
LOGITS = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]))

# (name, call on (the random module, its numpy module, a key)); both libraries run each
CALLS = [
    ("normal", lambda r, m, k: r.normal(k, (2, 3))),
    ("normal_dtype", lambda r, m, k: r.normal(k, shape=(4,), dtype=m.float16)),
    ("uniform", lambda r, m, k: r.uniform(k, (3,), minval=-2.0, maxval=5.0)),
    ("uniform_dtype", lambda r, m, k: r.uniform(k, shape=(2, 2), dtype=m.bfloat16)),
    ("randint", lambda r, m, k: r.randint(k, (5,), 3, 9, dtype=m.int32)),
    ("randint_kw", lambda r, m, k: r.randint(k, shape=(2, 2), minval=-4, maxval=4, dtype=m.int32)),
    ("bernoulli", lambda r, m, k: r.bernoulli(k, 0.3, (4, 2))),
    ("bernoulli_p_shape", lambda r, m, k: r.bernoulli(k, m.array([0.1, 0.9]))),
    ("categorical", lambda r, m, k: r.categorical(k, m.array(LOGITS, dtype=m.float32))),
    (
        "categorical_axis",
        lambda r, m, k: r.categorical(k, m.array(LOGITS, dtype=m.float32), axis=0),
    ),
    (
        "categorical_shape",
        lambda r, m, k: r.categorical(k, m.array(LOGITS, dtype=m.float32), shape=(5, 2)),
    ),
    ("split", lambda r, m, k: r.split(k)),
    ("split_4", lambda r, m, k: r.split(k, 4)),
    ("fold_in", lambda r, m, k: r.fold_in(k, 7)),
    ("permutation_int", lambda r, m, k: r.permutation(k, 6)),
    (
        "permutation_axis",
        lambda r, m, k: r.permutation(k, m.arange(12, dtype=m.int32).reshape(3, 4), axis=1),
    ),
    (
        "permutation_independent",
        lambda r, m, k: r.permutation(k, m.arange(12, dtype=m.int32).reshape(3, 4), 1, True),
    ),
    ("choice", lambda r, m, k: r.choice(k, 5, (3, 2))),
    (
        "choice_array",
        lambda r, m, k: r.choice(k, m.arange(10.0, dtype=m.float32), (4,), replace=False),
    ),
    (
        "choice_p_axis",
        lambda r, m, k: r.choice(
            k,
            m.ones((3, 4), dtype=m.float32),
            (2,),
            p=m.array([0.2, 0.3, 0.5], dtype=m.float32),
            axis=0,
        ),
    ),
]


DEFAULT_INT_RESULTS = {
    "categorical",
    "categorical_axis",
    "categorical_shape",
    "permutation_int",
    "choice",
}


@pytest.mark.parametrize("name, call", CALLS, ids=[c[0] for c in CALLS])
def test_shapes_and_dtypes_match_jax(name, call):
    # JAX's shape and dtype by abstract evaluation: the same as a run, without its compile
    want = jax.eval_shape(lambda k: call(jr, jnp, k), jr.PRNGKey(0))
    got = call(fr, fx.numpy, fr.PRNGKey(0))
    want_dtype = want.dtype
    if name in DEFAULT_INT_RESULTS:  # JAX's default integer is int32 (without x64), fluxion's int64
        assert want_dtype == jnp.int32
        want_dtype = np.dtype(np.int64)
    assert (got.shape, got.dtype) == (want.shape, want_dtype)


def test_signatures_take_jax_keywords():
    for name in (
        "normal",
        "uniform",
        "randint",
        "bernoulli",
        "categorical",
        "split",
        "fold_in",
        "permutation",
        "choice",
    ):
        ours, theirs = inspect.signature(getattr(fr, name)), inspect.signature(getattr(jr, name))
        # sharding and bit-generation modes have nothing to choose on one cpu; categorical
        # draws with replacement only
        jax_only = {"out_sharding", "mode"} | ({"replace"} if name == "categorical" else set())
        missing = [p for p in theirs.parameters if p not in ours.parameters and p not in jax_only]
        assert not missing, (name, missing)
        shared = [p for p in theirs.parameters if p in ours.parameters]
        assert shared == [p for p in ours.parameters if p in theirs.parameters], name  # same order


def test_draws_mean_what_jax_means():
    key = fr.key(3)
    assert sorted(fr.permutation(key, 50).numpy().tolist()) == list(range(50))
    rows = fr.permutation(key, fx.numpy.arange(20).reshape(4, 5), axis=1, independent=True).numpy()
    assert all(sorted(r) == list(range(5 * i, 5 * i + 5)) for i, r in enumerate(rows))
    shuffled = fr.permutation(key, fx.numpy.arange(20).reshape(4, 5), axis=0).numpy()
    assert (
        sorted(shuffled[:, 0].tolist()) == [0, 5, 10, 15] and (np.diff(shuffled, axis=1) == 1).all()
    )
    picked = fr.choice(key, 8, (8,), replace=False).numpy()
    assert sorted(picked.tolist()) == list(range(8))
    # frequencies: choice with p, categorical with shape= (each row its own logits)
    p = np.array([0.1, 0.2, 0.7])
    draws = fr.choice(key, 3, (20000,), p=fx.tensor(p)).numpy()
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 20000, p, atol=0.015)
    cats = fr.categorical(key, fx.tensor(LOGITS), shape=(10000, 2)).numpy()
    for row in range(2):
        freq = np.bincount(cats[:, row], minlength=3) / 10000
        np.testing.assert_allclose(freq, np.exp(LOGITS[row]), atol=0.02)
    # fold_in: deterministic, a different key per value, none equal to split's
    folded = [tuple(fr.fold_in(key, i).numpy()) for i in range(20)]
    assert len(set(folded)) == 20 and folded[3] == tuple(fr.fold_in(key, 3).numpy())
    assert not set(folded) & {tuple(k) for k in fr.split(key, 20).numpy()}
    u = fr.uniform(key, (5000,), minval=-2.0, maxval=5.0).numpy()
    assert u.min() >= -2.0 and u.max() < 5.0 and abs(u.mean() - 1.5) < 0.1


def test_fold_in_and_choice_under_vmap_and_jit_match_a_loop():
    key = fr.key(5)
    data = fx.tensor([0, 4, 9])
    loop = fx.stack([fr.fold_in(key, int(d)) for d in data.numpy()])
    np.testing.assert_array_equal(fx.vmap(lambda d: fr.fold_in(key, d))(data).numpy(), loop.numpy())
    np.testing.assert_array_equal(
        fx.jit(lambda d: fr.fold_in(key, d))(data[1]).numpy(), loop[1].numpy()
    )
    keys = fr.split(key, 3)
    draws = fx.vmap(lambda k: fr.permutation(k, 6))(keys)
    np.testing.assert_array_equal(
        draws.numpy(), np.stack([fr.permutation(k, 6).numpy() for k in keys])
    )
