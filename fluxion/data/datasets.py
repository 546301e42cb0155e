"""The curriculum's data: generated on the fly, seeded, reproducible.

Every generator takes its own ``numpy.random.Generator`` (or a seed for one); nothing
reads or writes NumPy's or Python's global random state.

- ``sum_mod_dataset``: token sequences labelled by their sum mod k (classification).
- ``DifferenceTask``: is a > b in "a-b", digits reversed (classification, length generalization).
- ``AdditionTask``: "a+b" -> a+b, digits reversed (sequence to sequence).
- ``char_corpus`` + ``LMDataset``: a text corpus and next-token windows (language modelling).
- ``batches``: aligned minibatches over arrays.
"""

from __future__ import annotations

import hashlib
import math
import os
import string
import sysconfig
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from fluxion.core.checks import (
    check_allocation,
    check_count,
    check_int,
    check_ints,
    check_number,
    check_path,
    check_seed,
    check_size,
)
from fluxion.errors import ArgumentTypeError, InvalidArgumentError

__all__ = [
    "AdditionTask",
    "DifferenceTask",
    "LMDataset",
    "batches",
    "char_corpus",
    "sum_mod_dataset",
]

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


# ---------------------------------------------------------------- helpers
def _as_rng(rng, op: str) -> np.random.Generator:
    """A Generator from a Generator or an int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(check_seed(op, "rng", rng))
    raise ArgumentTypeError(
        f"{op}: rng must be a numpy.random.Generator or an int seed, got {rng!r}; "
        "make one with np.random.default_rng(seed)"
    )


def _unit_hash(key: str) -> float:
    """A deterministic, seed-independent number in [0, 1) for ``key`` (same on every run)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def _lengths(lengths: Iterable[int], op: str, name: str, minimum: int = 3) -> tuple[int, ...]:
    out = tuple(sorted(set(check_ints(op, name, lengths))))
    if not out or out[0] < minimum:
        raise InvalidArgumentError(
            f"{op}: {name} must be a non-empty set of lengths >= {minimum} (one digit, the "
            f"operator, one digit), got {tuple(lengths)}"
        )
    return out


def _check_fraction(x: float, op: str, name: str, closed: bool = False) -> float:
    return check_number(op, name, x, 0.0, 1.0, low_open=not closed, high_open=not closed)


# ---------------------------------------------------------------- sum of tokens mod k
def sum_mod_dataset(
    n: int = 150, seq_len: int = 8, vocab: int = 20, k: int = 3, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Random token sequences labelled by the sum of their tokens mod ``k``.

    Returns ``(tokens, labels)``: int64 ``(n, seq_len)`` in ``[0, vocab)`` and int64 ``(n,)``
    in ``[0, k)``. Drawn with ``np.random.RandomState(seed)`` (not ``default_rng``) so that
    the defaults reproduce the seed notebook's data exactly.

    >>> tokens, labels = sum_mod_dataset()
    >>> tokens[0], labels[0]
    (array([ 6, 19, 14, 10,  7,  6, 18, 10]), np.int64(0))
    """
    op = "sum_mod_dataset"
    n = check_size(op, "n", n)
    seq_len, vocab, k = (check_count(op, name, v) for name, v in
                         (("seq_len", seq_len), ("vocab", vocab), ("k", k)))  # fmt: skip
    check_allocation(op, (n, seq_len), np.int64)
    seed = check_seed(op, "seed", seed, bits=32)  # RandomState takes 32-bit seeds
    tokens = np.random.RandomState(seed).randint(0, vocab, (n, seq_len)).astype(np.int64)
    labels = (tokens.sum(axis=1) % k).astype(np.int64)
    return tokens, labels


# ---------------------------------------------------------------- difference: a > b ?
class DifferenceTask:
    """Expressions ``"a-b"`` with each number's digits reversed; label 1 iff a > b.

    An expression of length L (characters, ``-`` included) splits its L-1 digits
    between a and b at random; each number has exactly its share of digits (leading
    digit non-zero), so length means length. The seed's generator drew values up to
    ``base**digits`` instead, so its "length 12" expressions could be shorter and
    collide with training ones.

    Train and test never share an expression: a length in only one of
    ``train_lengths``/``test_lengths`` belongs to that split; a length in both is
    shared by hashing each expression (``test_fraction`` of them go to test). Within a
    split, examples are distinct.

    >>> task = DifferenceTask(seed=0)
    >>> task.vocab
    '0123456789-'
    >>> data = task.split("train", 4)
    >>> len(data), all(task.label(e) == y for e, y in data)
    (4, True)
    >>> task.label("21-9")  # 12 > 9
    1
    """

    def __init__(
        self,
        base: int = 10,
        train_lengths: Iterable[int] = range(3, 11),
        test_lengths: Iterable[int] = range(11, 16),
        seed: int = 0,
        test_fraction: float = 0.1,
    ):
        self.base = check_int("DifferenceTask", "base", base, 2, len(DIGITS))
        self.train_lengths = _lengths(train_lengths, "DifferenceTask", "train_lengths")
        self.test_lengths = _lengths(test_lengths, "DifferenceTask", "test_lengths")
        self.seed = check_seed("DifferenceTask", "seed", seed)
        self.test_fraction = _check_fraction(test_fraction, "DifferenceTask", "test_fraction")
        self.vocab = DIGITS[: self.base] + "-"

    @property
    def max_length(self) -> int:
        """The longest expression of either split (the padding length a model needs)."""
        return max(self.train_lengths + self.test_lengths)

    def lengths(self, name: str) -> tuple[int, ...]:
        """The expression lengths of split ``name`` ("train" or "test")."""
        if name == "train":
            return self.train_lengths
        if name == "test":
            return self.test_lengths
        raise InvalidArgumentError(f"DifferenceTask: split must be 'train' or 'test', got {name!r}")

    def label(self, expr: str) -> int:
        """1 if a > b in the reversed-digit expression ``expr``, else 0."""
        a, b = expr.split("-")
        return int(int(a[::-1], self.base) > int(b[::-1], self.base))

    def split_of(self, expr: str) -> str | None:
        """Which split ``expr`` belongs to: "train", "test", or None (neither's lengths)."""
        n = len(expr)
        in_train, in_test = n in self.train_lengths, n in self.test_lengths
        if in_train and in_test:
            return (
                "test"
                if _unit_hash(f"difference/{self.base}/{expr}") < self.test_fraction
                else "train"
            )
        return "train" if in_train else "test" if in_test else None

    def _capacity(self, lengths: Sequence[int]) -> int:
        # Distinct expressions of length L: sum over the split of L-1 digits into
        # d + (L-1-d) of (k-1)k^(d-1) * (k-1)k^(L-2-d) = (L-2)(k-1)^2 k^(L-3).
        k = self.base
        return sum((n - 2) * (k - 1) ** 2 * k ** (n - 3) for n in lengths)

    def split(self, name: str, size: int) -> list[tuple[str, int]]:
        """``size`` distinct ``(expression, label)`` pairs of split ``name``, lengths uniform.

        The same (seed, name, size) gives the same list. Short lengths have few distinct
        expressions (81 of length 3 in base 10), so a large split holds relatively more
        long ones, as in the seed.
        """
        lengths = self.lengths(name)
        size = check_size("DifferenceTask.split", "size", size)
        shared = set(self.train_lengths) & set(self.test_lengths)
        capacity = self._capacity([n for n in lengths if n not in shared])
        if size > capacity and not shared:
            raise InvalidArgumentError(
                f"DifferenceTask.split: only {capacity} distinct expressions have lengths "
                f"{lengths} in base {self.base}; ask for fewer, or add longer lengths"
            )
        rng = np.random.default_rng([self.seed, 0 if name == "train" else 1])
        found, stalled = {}, 0
        while len(found) < size:
            before = len(found)
            for expr in self._draw(rng, lengths, max(64, 2 * (size - len(found)))):
                if expr not in found and (not shared or self.split_of(expr) == name):
                    found[expr] = self.label(expr)
                    if len(found) == size:
                        break
            stalled = stalled + 1 if len(found) == before else 0
            if stalled >= 20:
                raise InvalidArgumentError(
                    f"DifferenceTask.split: found only {len(found)} distinct {name} expressions "
                    f"of lengths {lengths}, fewer than size={size}; ask for fewer"
                )
        return list(found.items())

    def _draw(self, rng: np.random.Generator, lengths: Sequence[int], m: int) -> list[str]:
        """``m`` random expressions, lengths uniform over ``lengths`` (vectorized draws)."""
        k = self.base
        n = rng.choice(lengths, size=m)
        d = rng.integers(1, n - 1)  # digits of a; b gets the other n - 1 - d
        digits = rng.integers(0, k, size=(m, max(lengths) - 1))
        rows = np.arange(m)
        # Reversed digits: least significant first, so the last digit of each number
        # (its most significant) is the one that must be non-zero.
        digits[rows, d - 1] = rng.integers(1, k, size=m)
        digits[rows, n - 2] = rng.integers(1, k, size=m)
        table = np.array(list(DIGITS[:k]))
        out = []
        for row, ni, di in zip(table[digits].tolist(), n.tolist(), d.tolist()):
            out.append("".join(row[:di]) + "-" + "".join(row[di : ni - 1]))
        return out


# ---------------------------------------------------------------- addition: a+b
class AdditionTask:
    """Addition problems ``"a+b"`` -> their sum, digits reversed, for a seq2seq model.

    An input of length L is ``reversed(a) + "+" + reversed(b)``, right-padded with
    ``"0"`` to L characters (a reversed number's trailing zeros do not change it); a
    and b share L-1 digit slots at random and each is drawn uniformly from
    ``[1, 10**slots)``, as in the seed.

    The target is the sum with its digits REVERSED, then ``"#"`` (end marker), then
    ``"0"`` padding to ``output_length(L) = L + 1``. Reversed, the least significant
    digit comes first, so an autoregressive decoder emits each digit after the digits
    whose carries it depends on: carries flow left to right, the direction it reads.
    The seed kept the sum in the usual order, which forces the model to know all the
    carries before writing the first digit, and it lists that as a difficulty.

    Contamination: each unordered pair {a, b} belongs to exactly one split, decided by
    a fixed hash (``test_fraction`` of pairs are test), whatever the seed and the
    length; so test problems of training lengths are never trained on (nor is
    b+a for a test a+b), and test lengths beyond ``train_lengths`` are out of
    distribution.

    >>> task = AdditionTask(seed=0)
    >>> task.target("12", "9", 5)  # 21 + 9 = 30, reversed "03"
    '03#000'
    >>> inputs, outputs = task.sample("train", 3, 6, rng=np.random.default_rng(0))
    >>> [len(x) for x in inputs], [len(y) for y in outputs]
    ([6, 6, 6], [7, 7, 7])
    >>> all(task.solve(x) == y for x, y in zip(inputs, outputs))
    True
    """

    vocab = "0123456789+#"

    def __init__(
        self,
        train_lengths: Iterable[int] = range(3, 11),
        test_lengths: Iterable[int] = range(3, 21),
        seed: int = 0,
        test_fraction: float = 0.1,
    ):
        self.train_lengths = _lengths(train_lengths, "AdditionTask", "train_lengths")
        self.test_lengths = _lengths(test_lengths, "AdditionTask", "test_lengths")
        self.seed = check_seed("AdditionTask", "seed", seed)
        self.test_fraction = _check_fraction(test_fraction, "AdditionTask", "test_fraction")
        self._rng = np.random.default_rng(self.seed)

    @staticmethod
    def output_length(length: int) -> int:
        """Length of a target for inputs of ``length``: the sum, ``#`` and padding."""
        return length + 1

    @property
    def max_length(self) -> int:
        """The longest input of either split."""
        return max(self.train_lengths + self.test_lengths)

    def lengths(self, split: str) -> tuple[int, ...]:
        """The input lengths of ``split`` ("train" or "test")."""
        if split == "train":
            return self.train_lengths
        if split == "test":
            return self.test_lengths
        raise InvalidArgumentError(f"AdditionTask: split must be 'train' or 'test', got {split!r}")

    def split_of(self, a: int, b: int) -> str:
        """The split the problem a+b (and b+a) belongs to."""
        lo, hi = min(a, b), max(a, b)
        return "test" if _unit_hash(f"addition/{lo}+{hi}") < self.test_fraction else "train"

    @staticmethod
    def target(a_rev: str, b_rev: str, length: int) -> str:
        """The target string for reversed operands ``a_rev``, ``b_rev`` at input ``length``."""
        total = str(int(a_rev[::-1]) + int(b_rev[::-1]))[::-1]
        return total + "#" + "0" * (length - len(total))

    def solve(self, inp: str) -> str:
        """The target for an input string (padding included)."""
        a, b = inp.split("+")
        return self.target(a, b, len(inp))

    @staticmethod
    def parse_output(out: str) -> int | None:
        """The number a target (or a model's output) spells before ``#``; None if malformed."""
        head, sep, _ = out.partition("#")
        if not sep or not head or not head.isdigit():
            return None
        return int(head[::-1])

    def sample(
        self, split: str, batch_size: int, length: int | None = None, rng=None
    ) -> tuple[list[str], list[str]]:
        """A batch of ``(inputs, outputs)`` strings of ``split`` with inputs of ``length``.

        ``length`` must be one of the split's lengths (None: drawn uniformly from them).
        ``rng``: a ``numpy.random.Generator`` or an int seed; None uses the task's own
        generator, seeded by ``seed`` (successive calls differ, reproducibly).
        """
        lengths = self.lengths(split)
        rng = self._rng if rng is None else _as_rng(rng, "AdditionTask.sample")
        if length is None:
            length = int(rng.choice(lengths))
        if length not in lengths:
            raise InvalidArgumentError(
                f"AdditionTask.sample: length {length} is not a {split} length {lengths}; "
                f"pick one of those, or build the task with {split}_lengths that include it"
            )
        inputs: list[str] = []
        outputs: list[str] = []
        for _ in range(1000):  # rejection: keep the draws that belong to this split
            m = batch_size - len(inputs)
            if m <= 0:
                break
            m = int(m / (1 - self.test_fraction if split == "train" else self.test_fraction)) + 8
            slots = rng.integers(1, length - 1, size=m)
            for d in slots.tolist():
                a = _uniform_below(rng, 10**d)
                b = _uniform_below(rng, 10 ** (length - 1 - d))
                if self.split_of(a, b) != split:
                    continue
                x = f"{str(a)[::-1]}+{str(b)[::-1]}"
                inputs.append(x + "0" * (length - len(x)))
                outputs.append(self.target(str(a)[::-1], str(b)[::-1], length))
                if len(inputs) == batch_size:
                    break
        if len(inputs) < batch_size:  # pragma: no cover - only if a split is empty
            raise InvalidArgumentError(
                f"AdditionTask.sample: could not draw {batch_size} {split} problems of length "
                f"{length}; change test_fraction"
            )
        return inputs, outputs


def _uniform_below(rng: np.random.Generator, high: int) -> int:
    """Uniform in [1, high) for any Python int (beyond int64 too)."""
    if high <= 2**62:
        return int(rng.integers(1, high))
    while True:  # draw enough random bits, reject the overshoot
        n = int.from_bytes(rng.bytes((high.bit_length() + 7) // 8), "little")
        n &= (1 << high.bit_length()) - 1
        if 1 <= n < high:
            return n


# ---------------------------------------------------------------- text for language models
_PRINTABLE = frozenset(string.printable) - frozenset("\x0b\x0c\r")


def char_corpus(
    text_file: str | os.PathLike | None = None, max_bytes: int | None = 1_000_000
) -> str:
    """Text for a character language model, at most ``max_bytes`` (None: no limit).

    With no file: Python source of the standard library itself (the top-level ``*.py``
    files under ``sysconfig.get_paths()["stdlib"]``, in sorted order, keeping the lines
    made only of printable ASCII), so it needs no download and is the same on every run
    of one Python installation. With a file: its UTF-8 text, cut to ``max_bytes``.

    >>> text = char_corpus(max_bytes=10_000)
    >>> len(text), text == char_corpus(max_bytes=10_000)
    (10000, True)
    """
    if max_bytes is not None:
        max_bytes = check_size("char_corpus", "max_bytes", max_bytes)
    if text_file is not None:
        text_file = check_path("char_corpus", "text_file", text_file)
        if not os.path.isfile(text_file):
            raise InvalidArgumentError(
                f"char_corpus: no file at {os.fspath(text_file)!r}; pass the path of a UTF-8 "
                "text file, or text_file=None for the built-in corpus"
            )
        with open(text_file, "rb") as f:
            raw = f.read() if max_bytes is None else f.read(max_bytes)
        return raw.decode("utf-8", errors="ignore")  # drops a character cut in half at the end

    stdlib = sysconfig.get_paths()["stdlib"]
    files = sorted(f for f in os.listdir(stdlib) if f.endswith(".py"))
    parts, size = [], 0
    for name in files:
        with open(os.path.join(stdlib, name), encoding="utf-8", errors="replace") as f:
            for line in f:
                if _PRINTABLE.issuperset(line):
                    parts.append(line)
                    size += len(line)
        if max_bytes is not None and size >= max_bytes:
            break
    text = "".join(parts)
    if not text:  # pragma: no cover - a Python without its source files
        raise InvalidArgumentError(
            f"char_corpus: found no Python source under {stdlib!r}; pass text_file=... instead"
        )
    return text if max_bytes is None else text[:max_bytes]


class LMDataset:
    """Next-token windows over a 1-d array of token ids.

    The first ``1 - val_fraction`` of the ids are the training split, the rest the
    validation split (contiguous, so no window straddles both). ``batch`` draws random
    windows ``x`` and their targets ``y = x`` shifted by one.

    >>> ds = LMDataset(np.arange(100), seq_len=4)
    >>> x, y = ds.batch("train", 2, np.random.default_rng(0))
    >>> x.shape, bool((y == x + 1).all()), int(x.max()) < 90
    ((2, 4), True, True)
    """

    def __init__(self, ids, seq_len: int, val_fraction: float = 0.1, vocab_size: int | None = None):
        ids = np.asarray(ids)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise InvalidArgumentError(
                f"LMDataset: ids must be a 1-d integer array, got shape {ids.shape} dtype "
                f"{ids.dtype}; flatten the encoded corpus first"
            )
        seq_len = check_count("LMDataset", "seq_len", seq_len)
        val_fraction = _check_fraction(val_fraction, "LMDataset", "val_fraction", closed=True)
        if vocab_size is not None:
            vocab_size = check_count("LMDataset", "vocab_size", vocab_size)
        ids = ids.astype(np.int64, copy=False)
        if ids.size and ids.min() < 0:
            raise InvalidArgumentError("LMDataset: ids must be >= 0")
        self.vocab_size = int(ids.max()) + 1 if vocab_size is None else int(vocab_size)
        if ids.size and ids.max() >= self.vocab_size:
            raise InvalidArgumentError(
                f"LMDataset: id {int(ids.max())} is not below vocab_size={self.vocab_size}"
            )
        n_val = int(round(len(ids) * val_fraction))
        self.seq_len = int(seq_len)
        self.train = ids[: len(ids) - n_val]
        self.val = ids[len(ids) - n_val :]
        if len(self.train) <= seq_len:
            raise InvalidArgumentError(
                f"LMDataset: the training split has {len(self.train)} tokens, too few for one "
                f"window of seq_len={seq_len} (needs seq_len + 1); use more text or a shorter seq_len"
            )

    def split(self, name: str) -> np.ndarray:
        """The ids of split ``name`` ("train" or "val")."""
        if name == "train":
            return self.train
        if name in ("val", "test"):
            return self.val
        raise InvalidArgumentError(f"LMDataset: split must be 'train' or 'val', got {name!r}")

    def batch(self, split: str, batch_size: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)``, int64 ``(batch_size, seq_len)``, windows at uniform random offsets."""
        data = self.split(split)
        batch_size = check_size("LMDataset.batch", "batch_size", batch_size)
        rng = _as_rng(rng, "LMDataset.batch")
        if len(data) <= self.seq_len:
            raise InvalidArgumentError(
                f"LMDataset.batch: the {split} split has {len(data)} tokens, too few for a "
                f"window of seq_len={self.seq_len}; raise val_fraction or lower seq_len"
            )
        starts = rng.integers(0, len(data) - self.seq_len, size=batch_size)
        window = data[starts[:, None] + np.arange(self.seq_len + 1)]
        return window[:, :-1], window[:, 1:]

    def unigram_baseline(self, split: str = "val", smoothing: float = 1.0) -> float:
        """Cross-entropy, in nats per token, of the training split's unigram distribution on ``split``.

        The loss of a model that ignores context entirely: a language model must beat it.
        Counts get ``smoothing`` added (over ``vocab_size`` ids) so that a token unseen in
        training costs a finite amount; ``smoothing=0`` is the plain frequency (inf if so).
        """
        counts = np.bincount(self.train, minlength=self.vocab_size) + float(smoothing)
        probs = counts / counts.sum()
        data = self.split(split)
        with np.errstate(divide="ignore"):
            return float(-np.log(probs[data]).mean()) if len(data) else math.nan


# ---------------------------------------------------------------- minibatches
def batches(
    arrays,
    batch_size: int,
    rng=None,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator:
    """Aligned minibatches over the first axis of ``arrays`` (a tuple of arrays, or one array).

    Yields a tuple of slices per batch (one array if one array was given). With
    ``shuffle``, the order is a permutation drawn from ``rng`` (a Generator or int seed).

    >>> x, y = np.arange(5), np.arange(5) * 10
    >>> [b for b in batches((x, y), 2, shuffle=False)]
    [(array([0, 1]), array([ 0, 10])), (array([2, 3]), array([20, 30])), (array([4]), array([40]))]
    """
    single = isinstance(arrays, np.ndarray)
    arrays = (arrays,) if single else tuple(np.asarray(a) for a in arrays)
    if not arrays:
        raise InvalidArgumentError("batches: arrays is empty; pass a tuple of arrays")
    sizes = [a.shape[0] if a.ndim else None for a in arrays]
    if None in sizes or len(set(sizes)) != 1:
        shapes = [a.shape for a in arrays]
        raise InvalidArgumentError(
            f"batches: arrays must share their first dimension, got shapes {shapes}"
        )
    batch_size = check_count("batches", "batch_size", batch_size)
    n = sizes[0]
    if shuffle:
        if rng is None:
            raise InvalidArgumentError(
                "batches: shuffle=True needs rng (a numpy.random.Generator or an int seed); "
                "or pass shuffle=False"
            )
        order = _as_rng(rng, "batches").permutation(n)
    else:
        order = None
    # checked now, batched as the caller iterates (a generator would check at the first batch)
    return _batches(arrays, single, n - n % batch_size if drop_last else n, batch_size, order)


def _batches(arrays, single, stop, batch_size, order) -> Iterator:
    for i in range(0, stop, batch_size):
        idx = slice(i, i + batch_size) if order is None else order[i : i + batch_size]
        out = tuple(a[idx] for a in arrays)
        yield out[0] if single else out
