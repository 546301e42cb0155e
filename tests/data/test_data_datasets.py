"""Datasets: labels recomputed independently, determinism, no train/test contamination."""

from __future__ import annotations

import re
import string

import numpy as np
import pytest

from fluxion.data import (
    AdditionTask,
    CharTokenizer,
    DifferenceTask,
    LMDataset,
    batches,
    char_corpus,
    sum_mod_dataset,
)
from fluxion.errors import InvalidArgumentError


def digits_value(reversed_digits: str, base: int) -> int:
    """Value of a least-significant-first digit string, by hand (not via int(s, base))."""
    alphabet = string.digits + string.ascii_lowercase
    return sum(alphabet.index(c) * base**i for i, c in enumerate(reversed_digits))


# ---------------------------------------------------------------- sum mod k
def test_sum_mod_matches_the_seed_notebook():
    tokens, labels = sum_mod_dataset()
    assert tokens.shape == (150, 8) and labels.shape == (150,)
    assert tokens.dtype == np.int64 and labels.dtype == np.int64
    assert tokens[0].tolist() == [6, 19, 14, 10, 7, 6, 18, 10]
    assert labels[0] == 0
    assert tokens.min() >= 0 and tokens.max() < 20


def test_sum_mod_labels_and_determinism():
    tokens, labels = sum_mod_dataset(n=40, seq_len=5, vocab=7, k=4, seed=3)
    assert labels.tolist() == [sum(row) % 4 for row in tokens.tolist()]
    again, _ = sum_mod_dataset(n=40, seq_len=5, vocab=7, k=4, seed=3)
    other, _ = sum_mod_dataset(n=40, seq_len=5, vocab=7, k=4, seed=4)
    assert (tokens == again).all() and not (tokens == other).all()


def test_sum_mod_leaves_global_state_alone():
    state = np.random.get_state()[1].copy()
    sum_mod_dataset(seed=0)
    assert (np.random.get_state()[1] == state).all()


# ---------------------------------------------------------------- difference
@pytest.fixture(scope="module")
def difference():
    task = DifferenceTask(seed=0)
    return task, task.split("train", 3000), task.split("test", 1000)


def test_difference_examples_and_labels(difference):
    task, train, test = difference
    assert task.vocab == "0123456789-"
    for split, data, lengths in (("train", train, range(3, 11)), ("test", test, range(11, 16))):
        exprs = [e for e, _ in data]
        assert len(exprs) == len(set(exprs))
        for expr, label in data:
            assert re.fullmatch(r"[0-9]+-[0-9]+", expr) and len(expr) in lengths
            a, b = expr.split("-")
            assert a[-1] != "0" and b[-1] != "0"  # no leading zeros once un-reversed
            assert label == int(int(a[::-1]) > int(b[::-1]))
            assert task.split_of(expr) == split
    assert 0.4 < np.mean([y for _, y in train]) < 0.6
    assert {len(e) for e, _ in train} == set(range(3, 11))
    assert {len(e) for e, _ in test} == set(range(11, 16))


def test_difference_sizes_and_no_contamination(difference):
    _, train, test = difference
    assert len(train) == 3000 and len(test) == 1000
    assert not {e for e, _ in train} & {e for e, _ in test}


def test_difference_overlapping_lengths_are_still_disjoint():
    task = DifferenceTask(train_lengths=range(3, 8), test_lengths=range(5, 10), seed=1)
    train, test = task.split("train", 2000), task.split("test", 600)
    assert len(train) == 2000 and len(test) == 600
    train_set, test_set = {e for e, _ in train}, {e for e, _ in test}
    assert not train_set & test_set
    shared_train = [e for e in train_set if len(e) in (5, 6, 7)]
    shared_test = [e for e in test_set if len(e) in (5, 6, 7)]
    assert shared_train and shared_test
    assert all(task.split_of(e) == "train" for e in shared_train)
    assert all(task.split_of(e) == "test" for e in shared_test)


def test_difference_determinism():
    a = DifferenceTask(seed=5).split("train", 200)
    assert a == DifferenceTask(seed=5).split("train", 200)
    assert a != DifferenceTask(seed=6).split("train", 200)


def test_difference_other_base():
    task = DifferenceTask(base=16, train_lengths=[3, 4, 5], test_lengths=[6], seed=0)
    assert task.vocab == "0123456789abcdef-"
    data = task.split("train", 300)
    assert any(set(e) & set("abcdef") for e, _ in data)
    for expr, label in data:
        a, b = expr.split("-")
        assert label == int(digits_value(a, 16) > digits_value(b, 16))


def test_difference_errors():
    task = DifferenceTask(train_lengths=[3], test_lengths=[4])
    assert len(task.split("train", 81)) == 81  # every base-10 expression of length 3
    with pytest.raises(InvalidArgumentError, match="only 81 distinct"):
        task.split("train", 82)
    with pytest.raises(InvalidArgumentError, match="'train' or 'test'"):
        task.split("valid", 10)
    with pytest.raises(InvalidArgumentError, match=">= 3"):
        DifferenceTask(train_lengths=[2, 3])


# ---------------------------------------------------------------- addition
def parse_problem(inp: str) -> tuple[int, int]:
    a, b = inp.split("+")
    return int(a[::-1]), int(b[::-1])  # padding zeros trail the reversed b: value unchanged


@pytest.fixture(scope="module")
def addition():
    task = AdditionTask(seed=0)
    rng = np.random.default_rng(123)
    train = [task.sample("train", 64, n, rng) for n in task.train_lengths for _ in range(4)]
    test = [task.sample("test", 64, n, rng) for n in task.test_lengths for _ in range(2)]
    return task, train, test


def test_addition_format_and_targets(addition):
    task, train, test = addition
    assert task.vocab == "0123456789+#"
    for batch in train + test:
        inputs, outputs = batch
        length = len(inputs[0])
        assert len(inputs) == len(outputs) == 64
        for x, y in zip(inputs, outputs):
            assert len(x) == length and len(y) == task.output_length(length) == length + 1
            assert set(x) <= set(task.vocab) and set(y) <= set(task.vocab)
            assert x.count("+") == 1 and y.count("#") == 1
            a, b = parse_problem(x)
            assert a >= 1 and b >= 1
            digits, _, pad = y.partition("#")
            assert digits[::-1] == str(a + b)  # the sum, reversed
            assert set(pad) <= {"0"}
            assert task.parse_output(y) == a + b
            assert x.startswith(f"{str(a)[::-1]}+{str(b)[::-1]}")


def test_addition_no_contamination(addition):
    task, train, test = addition
    ordered = {
        name: {parse_problem(x) for b in data for x in b[0]}
        for name, data in (("train", train), ("test", test))
    }
    assert not ordered["train"] & ordered["test"]
    # commuted problems stay on one side too
    assert not {(b, a) for a, b in ordered["train"]} & ordered["test"]
    assert len(ordered["train"]) > 1500 and len(ordered["test"]) > 1500
    # test problems of training lengths exist (in-distribution test), and are never trained on
    short_test = [x for b in test for x in b[0] if len(x) <= 10]
    assert short_test and all(task.split_of(*parse_problem(x)) == "test" for x in short_test)


def test_addition_length_coverage(addition):
    task, train, test = addition
    assert {len(b[0][0]) for b in train} == set(range(3, 11))
    assert {len(b[0][0]) for b in test} == set(range(3, 21))
    assert task.max_length == 20


def test_addition_determinism():
    a = AdditionTask(seed=0).sample("train", 32, 8, np.random.default_rng(7))
    assert a == AdditionTask(seed=9).sample("train", 32, 8, np.random.default_rng(7))
    assert a != AdditionTask(seed=0).sample("train", 32, 8, np.random.default_rng(8))
    t1, t2, t3 = AdditionTask(seed=1), AdditionTask(seed=1), AdditionTask(seed=2)
    first = t1.sample("train", 16, 9)
    assert first == t2.sample("train", 16, 9) and first != t3.sample("train", 16, 9)
    assert t1.sample("train", 16, 9) != first  # the task's own generator moves on


def test_addition_helpers_and_errors():
    task = AdditionTask()
    assert task.target("99", "1", 4) == "001#0"  # 99 + 1 = 100
    assert task.solve("99+1") == "001#0"
    assert task.parse_output("001#0") == 100 and task.parse_output("12") is None
    x, y = task.sample("train", 5, None, 0)
    assert len(x[0]) in task.train_lengths
    with pytest.raises(InvalidArgumentError, match="not a train length"):
        task.sample("train", 4, 15)
    with pytest.raises(InvalidArgumentError, match="'train' or 'test'"):
        task.sample("val", 4, 5)
    with pytest.raises(InvalidArgumentError, match="rng"):
        task.sample("train", 4, 5, rng="seed")


def test_addition_tokenizes_with_a_char_tokenizer():
    task = AdditionTask()
    tok = CharTokenizer(task.vocab)
    x, y = task.sample("test", 8, 12, 0)
    arr = tok.encode_batch(y)
    assert arr.shape == (8, 13) and tok.decode_batch(arr) == y


# ---------------------------------------------------------------- corpus
def test_char_corpus_is_deterministic_and_printable():
    text = char_corpus()
    assert len(text) == 1_000_000
    assert text == char_corpus()
    assert set(text) <= set(string.printable) - set("\x0b\x0c\r")
    assert len(set(text)) > 60
    assert "def " in text and "import " in text
    assert char_corpus(max_bytes=150_000) == text[:150_000]


def test_char_corpus_from_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("h\u00e9llo\nworld\n", encoding="utf-8")
    assert char_corpus(path) == "h\u00e9llo\nworld\n"
    assert char_corpus(path, max_bytes=2) == "h"  # a character cut in half is dropped
    with pytest.raises(InvalidArgumentError, match="no file"):
        char_corpus(tmp_path / "missing.txt")


# ---------------------------------------------------------------- LMDataset
@pytest.fixture(scope="module")
def lm():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, size=5000) ** 2 % 31  # a skewed distribution over 0..30
    return ids, LMDataset(ids, seq_len=16, val_fraction=0.2, vocab_size=31)


def test_lm_split_is_contiguous(lm):
    ids, ds = lm
    assert len(ds.train) == 4000 and len(ds.val) == 1000
    assert (np.concatenate([ds.train, ds.val]) == ids).all()


def test_lm_windows(lm):
    ids, ds = lm
    for split, data in (("train", ids[:4000]), ("val", ids[4000:])):
        x, y = ds.batch(split, 32, np.random.default_rng(1))
        assert x.shape == y.shape == (32, 16) and x.dtype == y.dtype == np.int64
        assert (x[:, 1:] == y[:, :-1]).all()
        windows = np.lib.stride_tricks.sliding_window_view(data, 17)
        for xi, yi in zip(x, y):
            full = np.concatenate([xi, yi[-1:]])
            assert (windows == full).all(axis=1).any()
    a = ds.batch("train", 8, np.random.default_rng(3))
    b = ds.batch("train", 8, np.random.default_rng(3))
    c = ds.batch("train", 8, np.random.default_rng(4))
    assert (a[0] == b[0]).all() and not (a[0] == c[0]).all()


def test_lm_windows_reach_both_ends():
    ds = LMDataset(np.arange(20), seq_len=4, val_fraction=0.0)
    x, y = ds.batch("train", 2000, np.random.default_rng(0))
    assert x[:, 0].min() == 0 and y[:, -1].max() == 19


def test_lm_unigram_baseline_matches_numpy(lm):
    ids, ds = lm
    train, val = ids[:4000], ids[4000:]
    counts = np.array([(train == v).sum() for v in range(31)], dtype=np.float64)
    for split, data in (("train", train), ("val", val)):
        p = (counts + 1.0) / (counts + 1.0).sum()
        assert ds.unigram_baseline(split) == pytest.approx(-np.mean(np.log(p[data])), rel=1e-12)
    # without smoothing, on the training split it is the entropy of the frequencies
    q = counts[counts > 0] / counts.sum()
    assert ds.unigram_baseline("train", smoothing=0) == pytest.approx(-(q * np.log(q)).sum())
    assert ds.unigram_baseline("val") < np.log(31)  # skewed: better than uniform


def test_lm_errors():
    with pytest.raises(InvalidArgumentError, match="1-d"):
        LMDataset(np.zeros((2, 3), dtype=np.int64), 2)
    with pytest.raises(InvalidArgumentError, match="too few"):
        LMDataset(np.arange(10), seq_len=10)
    ds = LMDataset(np.arange(100), seq_len=20, val_fraction=0.1)
    with pytest.raises(InvalidArgumentError, match="val split has 10 tokens"):
        ds.batch("val", 2, 0)
    with pytest.raises(InvalidArgumentError, match="vocab_size"):
        LMDataset(np.arange(100), seq_len=4, vocab_size=50)


# ---------------------------------------------------------------- batches
def test_batches_shuffled_cover_everything_aligned():
    x = np.arange(10)
    y = np.arange(10) * 10
    out = list(batches((x, y), 3, np.random.default_rng(0)))
    assert [len(bx) for bx, _ in out] == [3, 3, 3, 1]
    for bx, by in out:
        assert (by == bx * 10).all()
    seen = np.concatenate([bx for bx, _ in out])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    again = list(batches((x, y), 3, np.random.default_rng(0)))
    assert all((a[0] == b[0]).all() for a, b in zip(out, again))


def test_batches_options_and_errors():
    x = np.arange(10).reshape(5, 2)
    plain = list(batches(x, 2, shuffle=False))
    assert [b.tolist() for b in plain] == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9]]]
    assert len(list(batches((x,), 2, 0, drop_last=True))) == 2
    with pytest.raises(InvalidArgumentError, match="first dimension"):
        next(batches((np.arange(3), np.arange(4)), 2, shuffle=False))
    with pytest.raises(InvalidArgumentError, match="needs rng"):
        next(batches((x,), 2))
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        next(batches((x,), 0, shuffle=False))
