"""Random numbers: keys and splitting, distributions against their moments and NumPy's
quantiles, dtypes, and the global seed.

Statistical checks use 100k draws and bounds of about 5 standard errors, so a correct
generator fails them with negligible probability, while a biased one (a wrong scale, a
shared draw, a modulo bias) fails them for sure. Keys are fixed: the tests are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fluxion as fx
from fluxion.errors import DTypeError, InvalidArgumentError

N = 100_000
R = fx.random


def _np(t):
    return t.astype(fx.float64).numpy() if t.dtype in (fx.bfloat16, fx.float16) else t.numpy()


# ----------------------------------------------------------------------------- keys


def test_key_is_uint32_pair():
    k = R.key(0)
    assert k.dtype == fx.uint32 and k.shape == (2,)
    assert R.key(2**40 + 5).tolist() == [256, 5]  # high and low 32 bits of the seed
    assert R.PRNGKey(3).tolist() == R.key(3).tolist()


def test_same_key_same_numbers():
    for draw in (
        lambda k: R.uniform(k, (50,)),
        lambda k: R.normal(k, (5, 10)),
        lambda k: R.randint(k, (50,), 0, 1000),
        lambda k: R.bernoulli(k, 0.3, (50,)),
        lambda k: R.bits(k, (7,)),
        lambda k: R.categorical(k, fx.zeros(50, 6)),
    ):
        np.testing.assert_array_equal(draw(R.key(42)).numpy(), draw(R.key(42)).numpy())
        assert not np.array_equal(draw(R.key(42)).numpy(), draw(R.key(43)).numpy())


def test_split_keys_differ_and_are_deterministic():
    k = R.key(7)
    children = R.split(k, 5)
    assert children.shape == (5, 2) and children.dtype == fx.uint32
    rows = {tuple(row) for row in children.tolist()}
    assert len(rows) == 5 and tuple(k.tolist()) not in rows
    np.testing.assert_array_equal(children.numpy(), R.split(R.key(7), 5).numpy())
    a, b = R.split(k)
    draws_a, draws_b = R.uniform(a, (1000,)).numpy(), R.uniform(b, (1000,)).numpy()
    assert not np.array_equal(draws_a, draws_b)
    # independent streams: no correlation between sibling keys' draws
    assert abs(np.corrcoef(draws_a, draws_b)[0, 1]) < 5 / math.sqrt(1000)
    grand = R.split(a, 3)
    assert not {tuple(r) for r in grand.tolist()} & rows


def test_split_children_draw_like_fresh_keys_under_vmap():
    keys = R.split(R.key(3), 4)
    batched = fx.vmap(lambda k: R.normal(k, (3,)))(keys)
    looped = np.stack([R.normal(keys[i], (3,)).numpy() for i in range(4)])
    np.testing.assert_array_equal(batched.numpy(), looped)
    assert len({tuple(row) for row in batched.numpy().round(6).tolist()}) == 4


def test_bad_key_is_rejected():
    with pytest.raises(fx.errors.DTypeError, match="fx.random.key"):
        R.uniform(fx.tensor([1.0, 2.0]), (3,))


# ----------------------------------------------------------------------------- uniform


def test_uniform_moments_and_range():
    u = R.uniform(R.key(0), (N,)).numpy()
    assert u.dtype == np.float32 and u.shape == (N,)
    assert u.min() >= 0.0 and u.max() < 1.0
    se = math.sqrt(1 / 12 / N)
    assert abs(u.mean() - 0.5) < 5 * se
    assert abs(u.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / N)  # var of (u - 1/2)^2 is 1/180
    counts = np.histogram(u, bins=10, range=(0, 1))[0]  # each decile gets about N / 10
    assert np.all(np.abs(counts - N / 10) < 5 * math.sqrt(N * 0.1 * 0.9))


def test_uniform_quantiles_match_numpy():
    ours = np.sort(R.uniform(R.key(1), (N,), fx.float64).numpy())
    ref = np.sort(np.random.default_rng(1).uniform(size=N))
    assert np.max(np.abs(ours - ref)) < 0.01  # two-sample KS distance


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (1.0, 2.0), (-3.0, 5.0)])
def test_uniform_dtypes_stay_in_half_open_range(dtype, lo, hi):
    u = R.uniform(R.key(2), (N,), dtype, minval=lo, maxval=hi)
    assert u.dtype == dtype and u.shape == (N,)
    v = _np(u)
    assert v.min() >= lo and v.max() < hi  # [lo, hi) even after rounding to dtype
    assert abs(v.mean() - (lo + hi) / 2) < 0.02 * (hi - lo)


def test_uniform_rejects_integer_dtype():
    with pytest.raises(DTypeError, match="floating-point"):
        R.uniform(R.key(0), (3,), fx.int32)


# ----------------------------------------------------------------------------- normal


def _normal_quantiles(n):
    """Expected order statistics of n standard normals: NumPy's quantiles of many draws."""
    ref = np.sort(np.random.default_rng(12345).standard_normal(n))
    return ref


def test_normal_moments_and_quantiles():
    z = R.normal(R.key(0), (N,)).numpy()
    assert z.dtype == np.float32 and z.shape == (N,)
    assert abs(z.mean()) < 5 / math.sqrt(N)
    assert abs(z.std() - 1.0) < 5 * math.sqrt(0.5 / N)
    assert abs(np.mean(z**3)) < 5 * math.sqrt(15 / N)  # symmetric
    assert abs(np.mean(z**4) - 3.0) < 5 * math.sqrt(96 / N)  # normal tails
    # KS-like: sorted samples against NumPy's normal sampled the same number of times
    ours, ref = np.sort(z), _normal_quantiles(N)
    central = slice(N // 100, N - N // 100)  # the 1%..99% quantiles
    assert np.max(np.abs(ours[central] - ref[central])) < 0.05
    # and the empirical CDF at a few points against the exact normal CDF
    for x in (-2.0, -1.0, 0.0, 0.5, 1.5):
        cdf = 0.5 * (1 + math.erf(x / math.sqrt(2)))
        assert abs(np.mean(z <= x) - cdf) < 0.006


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_normal_dtypes(dtype):
    z = R.normal(R.key(5), (N,), dtype)
    assert z.dtype == dtype and z.shape == (N,)
    v = _np(z)
    assert np.all(np.isfinite(v))
    assert abs(v.mean()) < 0.02 and abs(v.std() - 1.0) < 0.02


def test_normal_shapes():
    assert R.normal(R.key(0)).shape == ()
    assert R.normal(R.key(0), (2, 3)).shape == (2, 3)
    assert R.normal(R.key(0), [4]).shape == (4,)
    assert R.normal(R.key(0), (0, 3)).shape == (0, 3)


# ----------------------------------------------------------------------------- integers


def test_randint_range_and_uniformity():
    r = R.randint(R.key(0), (N,), -3, 7)
    assert r.dtype == fx.int64 and r.shape == (N,)
    v = r.numpy()
    assert v.min() == -3 and v.max() == 6
    counts = np.bincount(v + 3, minlength=10)
    assert len(counts) == 10
    assert np.all(np.abs(counts - N / 10) < 5 * math.sqrt(N * 0.1 * 0.9))


def test_randint_wide_span_has_no_modulo_bias():
    # 3 * 2**30 does not divide 2**32: bits % span would put half the draws in the low third
    span = 3 * 2**30
    v = R.randint(R.key(1), (N,), 0, span).numpy()
    assert v.min() >= 0 and v.max() < span
    thirds = np.bincount(v // 2**30, minlength=3)
    assert np.all(np.abs(thirds - N / 3) < 5 * math.sqrt(N * 2 / 9))


def test_randint_dtype_and_errors():
    assert R.randint(R.key(0), (5,), 0, 3, dtype=fx.int32).dtype == fx.int32
    assert set(R.randint(R.key(0), (200,), 4, 5).tolist()) == {4}
    with pytest.raises(InvalidArgumentError, match="randint"):
        R.randint(R.key(0), (5,), 3, 3)
    with pytest.raises(InvalidArgumentError):
        R.randint(R.key(0), (5,), 0, 2**33)


def test_bits():
    b = R.bits(R.key(0), (N,))
    assert b.dtype == fx.uint32
    v = b.numpy().astype(np.float64)
    assert abs(v.mean() / 2**32 - 0.5) < 0.005
    assert abs(np.mean(b.numpy() & 1) - 0.5) < 0.005  # the low bit is fair too


# ----------------------------------------------------------------------------- bernoulli


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_bernoulli_rate(p):
    b = R.bernoulli(R.key(3), p, (N,))
    assert b.dtype == fx.bool and b.shape == (N,)
    rate = b.numpy().mean()
    assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / N) + 1e-12


def test_bernoulli_with_a_tensor_of_probabilities_draws_per_element():
    p = np.repeat(np.float32([0.2, 0.7]), N // 2)
    b = R.bernoulli(R.key(4), fx.tensor(p))
    assert b.shape == (N,)
    v = b.numpy()
    assert abs(v[: N // 2].mean() - 0.2) < 0.01 and abs(v[N // 2 :].mean() - 0.7) < 0.01
    c = R.bernoulli(R.key(4), fx.full((3, 4), 0.5))
    assert c.shape == (3, 4) and 0 < c.numpy().sum() < 12  # not one shared draw


# ----------------------------------------------------------------------------- categorical


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_categorical_frequencies_match_softmax(dtype):
    logits = np.array([0.0, 1.0, -1.0, 0.5, 0.0])
    samples = R.categorical(R.key(6), fx.tensor(np.tile(logits, (N, 1)), dtype=dtype))
    assert samples.shape == (N,) and samples.dtype == fx.int64
    freq = np.bincount(samples.numpy(), minlength=5) / N
    probs = np.exp(logits) / np.exp(logits).sum()
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / N))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_categorical_equal_logits_have_no_tie_bias(dtype):
    # bfloat16 spaces values 0.5 apart near 100: logits + noise in bfloat16 rounds into
    # ties that argmax gives to index 0 (56% instead of 50%)
    samples = R.categorical(R.key(8), fx.full((N, 2), 100.0, dtype=dtype))
    freq = np.bincount(samples.numpy(), minlength=2) / N
    assert np.all(np.abs(freq - 0.5) < 5 * math.sqrt(0.25 / N))


def test_categorical_axis():
    logits = fx.tensor([[10.0, -10.0], [-10.0, 10.0]])  # nearly deterministic
    s0 = R.categorical(R.key(0), logits, axis=0)
    s1 = R.categorical(R.key(0), logits, axis=1)
    assert s0.tolist() == [0, 1] and s1.tolist() == [0, 1]
    s = R.categorical(R.key(0), fx.tensor([[0.0, 50.0, 0.0]] * 7))
    assert s.tolist() == [1] * 7


# ----------------------------------------------------------------------------- global seed


GLOBAL_DRAWS = {
    "randn": lambda: fx.randn(3, 4),
    "randn_tuple": lambda: fx.randn((3, 4)),
    "rand": lambda: fx.rand(5),
    "randint": lambda: fx.randint(0, 10, (6,)),
    "normal": lambda: fx.normal(2.0, 3.0, (6,)),
    "uniform": lambda: fx.uniform(-1.0, 1.0, (6,)),
}


@pytest.mark.parametrize("name", list(GLOBAL_DRAWS))
def test_manual_seed_reproducible(name):
    draw = GLOBAL_DRAWS[name]
    fx.manual_seed(123)
    first, second = draw().numpy(), draw().numpy()
    assert not np.array_equal(first, second)  # each call draws fresh numbers
    fx.manual_seed(123)
    np.testing.assert_array_equal(draw().numpy(), first)
    np.testing.assert_array_equal(draw().numpy(), second)
    fx.manual_seed(124)
    assert not np.array_equal(draw().numpy(), first)


def test_global_draws_shapes_dtypes_ranges():
    fx.manual_seed(0)
    assert fx.randn(2, 3).shape == (2, 3) and fx.randn(2, 3).dtype == fx.float32
    assert fx.randn().shape == ()
    assert fx.randn(4, dtype=fx.float64).dtype == fx.float64
    x = fx.randn(3, requires_grad=True)
    assert x.requires_grad and x.is_leaf
    u = fx.rand(N).numpy()
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.005
    r = fx.randint(5, 9, (N,)).numpy()
    assert r.min() == 5 and r.max() == 8
    n = fx.normal(2.0, 3.0, (N,)).numpy()
    assert abs(n.mean() - 2.0) < 0.05 and abs(n.std() - 3.0) < 0.05
    v = fx.uniform(-1.0, 3.0, (N,)).numpy()
    assert v.min() >= -1 and v.max() < 3 and abs(v.mean() - 1.0) < 0.02
    assert fx.rand(3, dtype=fx.bfloat16).dtype == fx.bfloat16


def test_manual_seed_sequence_is_independent_of_key_api():
    fx.manual_seed(9)
    a = fx.randn(4).numpy()
    R.normal(R.key(9), (4,))  # explicit keys leave the global generator alone
    fx.manual_seed(9)
    R.normal(R.key(1), (4,))
    np.testing.assert_array_equal(fx.randn(4).numpy(), a)


@pytest.mark.parametrize(
    "draw",
    [
        lambda k, p: R.randint(k, (4,), 0, 3 * 2**30),
        lambda k, p: R.randint(k, (4,), -2, 2),
        lambda k, p: R.uniform(k, (4,), fx.bfloat16, 1.0, 2.0),
        lambda k, p: R.bernoulli(k, p),
        lambda k, p: R.categorical(k, fx.log(p)),
    ],
)
def test_vmap_over_keys_matches_a_loop(draw):
    keys = R.split(R.key(11), 3)
    probs = fx.tensor([[0.1, 0.9], [0.5, 0.5], [0.2, 0.8]])
    batched = fx.vmap(draw)(keys, probs)
    looped = np.stack([draw(keys[i], probs[i]).numpy() for i in range(3)])
    np.testing.assert_array_equal(batched.numpy(), looped)
