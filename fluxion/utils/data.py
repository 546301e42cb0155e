"""PyTorch's ``torch.utils.data``: datasets, samplers and the ``DataLoader`` that batches them.

>>> ds = fx.utils.data.TensorDataset(fx.arange(10), fx.arange(10) * 2)
>>> loader = fx.utils.data.DataLoader(ds, batch_size=4)
>>> [x.tolist() for x, _ in loader]
[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

Shuffling draws a permutation per epoch from ``generator`` (an ``fx.Generator``) or from
the global seed (``fx.manual_seed``). The orders differ from PyTorch's for the same seed;
with ``shuffle=False`` everything matches PyTorch's loader batch for batch. Batches are made
in the calling process (``num_workers`` is accepted and ignored: there are no workers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from fluxion.core.checks import check_count, check_size
from fluxion.core.tensor import Tensor
from fluxion.errors import ArgumentTypeError, InvalidArgumentError, ShapeError
from fluxion.ops import random as R
from fluxion.ops.creation import tensor
from fluxion.ops.shape import stack


class Dataset:
    """A map-style dataset: ``dataset[i]`` is example i, ``len(dataset)`` their count."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Examples are slices of tensors along their first dimension: ``(x[i], y[i])``."""

    def __init__(self, *tensors: Tensor):
        if not tensors or any(not isinstance(t, Tensor) or t.ndim == 0 for t in tensors):
            raise ArgumentTypeError("TensorDataset: give one or more tensors of at least 1 dim")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ShapeError(
                "TensorDataset: the tensors differ in their first dimension "
                f"({[t.shape for t in tensors]}); each example is one row of every tensor"
            )
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The examples of ``dataset`` at ``indices``."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """The examples of several datasets, one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.ends = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __getitem__(self, index: int):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} out of range for {n} examples")
        index %= n
        k = int(np.searchsorted(self.ends, index, side="right"))
        return self.datasets[k][index - (self.ends[k - 1] if k else 0)]

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0


def random_split(dataset, lengths, generator=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of ``lengths`` (counts that add
    up to ``len(dataset)``, or fractions that add up to 1, as PyTorch: the remainder goes
    to the first subsets one each)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    lengths = [check_size("random_split", "lengths", x) for x in lengths]
    if sum(lengths) != n:
        raise InvalidArgumentError(
            f"random_split: lengths {lengths} add up to {sum(lengths)}, but the dataset has {n} "
            "examples; give counts that add up to it, or fractions that add up to 1"
        )
    order = R.randperm(n, generator=generator).tolist()
    starts = np.cumsum([0, *lengths]).tolist()
    return [Subset(dataset, order[a:b]) for a, b in zip(starts[:-1], starts[1:])]


# ----------------------------------------------------------------------------- samplers


class Sampler:
    """An iterable of dataset indices."""

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random order of the indices each time it is iterated (with ``replacement``:
    ``num_samples`` independent draws)."""

    def __init__(self, data_source, replacement: bool = False, num_samples=None, generator=None):
        self.data_source, self.replacement, self.generator = data_source, replacement, generator
        self._num_samples = (
            None
            if num_samples is None
            else check_count("RandomSampler", "num_samples", num_samples)
        )

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        if self.replacement:
            key = R._key_of("RandomSampler", self.generator)
            return iter(R.randint(key, (self.num_samples,), 0, n).tolist())
        rounds = -(-self.num_samples // n) if n else 0
        order = [i for _ in range(rounds) for i in R.randperm(n, generator=self.generator).tolist()]
        return iter(order[: self.num_samples])

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler`` (the last one shorter, or dropped)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        self.sampler, self.drop_last = sampler, drop_last
        self.batch_size = check_count("BatchSampler", "batch_size", batch_size)

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


# ----------------------------------------------------------------------------- collation


def default_collate(batch):
    """PyTorch's rule: tensors (and NumPy arrays) stack into one with a new first
    dimension, numbers become a tensor, tuples and lists collate field by field into a
    list, dicts key by key, strings stay a list."""
    first = batch[0]
    if isinstance(first, Tensor):
        return stack(batch)
    if isinstance(first, np.ndarray | np.generic | bool | int | float):
        return tensor(np.stack([np.asarray(b) for b in batch]))
    if isinstance(first, str | bytes):
        return list(batch)
    if isinstance(first, Mapping):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # namedtuple
        return type(first)(*(default_collate(list(f)) for f in zip(*batch)))
    if isinstance(first, Sequence):
        if any(len(b) != len(first) for b in batch):
            raise ShapeError("default_collate: the examples of a batch differ in length")
        return [default_collate(list(f)) for f in zip(*batch)]  # a list, as PyTorch's
    raise ArgumentTypeError(
        f"default_collate: cannot batch examples of type {type(first).__name__}; pass a "
        "collate_fn that does"
    )


def default_convert(example):
    """What ``batch_size=None`` yields, as PyTorch: NumPy arrays become tensors (inside
    dicts, tuples and lists too); everything else stays as it is."""
    if isinstance(example, np.ndarray):
        return tensor(example)
    if isinstance(example, Mapping):
        return {k: default_convert(v) for k, v in example.items()}
    if isinstance(example, tuple | list):
        return type(example)(default_convert(v) for v in example)
    return example


class DataLoader:
    """Batches of a dataset: ``for x, y in DataLoader(ds, batch_size=32, shuffle=True)``.

    ``sampler`` (indices) or ``shuffle``; ``batch_sampler`` (lists of indices) replaces
    ``batch_size``/``shuffle``/``sampler``/``drop_last``; ``collate_fn`` turns a list of
    examples into a batch (``default_collate``); ``batch_size=None`` yields single examples.
    """

    def __init__(
        self,
        dataset,
        batch_size: int | None = 1,
        shuffle: bool = False,
        sampler=None,
        batch_sampler=None,
        num_workers: int = 0,
        collate_fn=None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn=None,
        generator=None,
        *,
        prefetch_factor=None,
        persistent_workers: bool = False,
    ):
        if sampler is not None and shuffle:
            raise InvalidArgumentError("DataLoader: give sampler= or shuffle=True, not both")
        if batch_sampler is not None and (
            batch_size != 1 or shuffle or sampler is not None or drop_last
        ):
            raise InvalidArgumentError(
                "DataLoader: batch_sampler= replaces batch_size, shuffle, sampler and drop_last"
            )
        self.dataset, self.generator = dataset, generator
        self.num_workers, self.collate_fn = num_workers, collate_fn
        if sampler is None:
            sampler = (
                RandomSampler(dataset, generator=generator)
                if shuffle
                else SequentialSampler(dataset)
            )
        self.sampler = sampler
        if batch_sampler is None and batch_size is not None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_sampler = batch_sampler
        self.batch_size = (
            None if batch_sampler is None else getattr(batch_sampler, "batch_size", None)
        )
        self.drop_last = drop_last

    def __iter__(self):
        if self.batch_sampler is None:
            convert = default_convert if self.collate_fn is None else self.collate_fn
            for i in self.sampler:
                yield convert(self.dataset[i])
            return
        for indices in self.batch_sampler:
            yield self._batch(indices)

    def _batch(self, indices: list):
        if self.collate_fn is None and isinstance(self.dataset, TensorDataset):
            # one gather per tensor: what stacking the examples would give, at once
            rows = tensor(np.asarray(indices, dtype=np.int64))
            return [t[rows] for t in self.dataset.tensors]
        collate = default_collate if self.collate_fn is None else self.collate_fn
        return collate([self.dataset[i] for i in indices])

    def __len__(self) -> int:
        return len(self.sampler if self.batch_sampler is None else self.batch_sampler)
