"""fx.utils.data against torch.utils.data on the cases that need no random numbers (the
order without shuffling, batch shapes and dtypes, drop_last, collate_fn, samplers,
len()), and the properties of the random ones (a permutation per epoch, reproducible
from the generator's seed, random_split partitions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.utils.data as tud

import fluxion as fx
import fluxion.utils.data as fud
from fluxion.errors import FluxionError

X = np.arange(30, dtype=np.float32).reshape(10, 3)
Y = np.arange(10) % 3


def _numpy(batch):
    if isinstance(batch, fx.Tensor | torch.Tensor):
        return (str(batch.dtype).removeprefix("torch."), tuple(batch.shape), batch.tolist())
    if isinstance(batch, dict):
        return {k: _numpy(v) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch).__name__, [_numpy(b) for b in batch]
    return batch


def _same(fx_loader, torch_loader):
    assert len(fx_loader) == len(torch_loader)
    got, want = list(map(_numpy, fx_loader)), list(map(_numpy, torch_loader))
    assert len(got) == len(want)
    assert got == want


class Pairs:
    """A plain map-style dataset (no base class needed, as in PyTorch)."""

    def __getitem__(self, i):
        return {"x": X[i], "label": int(Y[i]), "name": f"item{i}"}

    def __len__(self):
        return len(X)


@pytest.mark.parametrize("batch_size", [1, 3, 4, 10, 12])
@pytest.mark.parametrize("drop_last", [False, True])
def test_tensor_dataset_batches_match_torch(batch_size, drop_last):
    f = fud.DataLoader(
        fud.TensorDataset(fx.tensor(X), fx.tensor(Y)), batch_size=batch_size, drop_last=drop_last
    )
    t = tud.DataLoader(
        tud.TensorDataset(torch.tensor(X), torch.tensor(Y)),
        batch_size=batch_size,
        drop_last=drop_last,
    )
    _same(f, t)


def test_default_collate_of_dicts_numbers_and_strings_matches_torch():
    _same(fud.DataLoader(Pairs(), batch_size=4), tud.DataLoader(Pairs(), batch_size=4))


def test_collate_fn_sampler_and_batch_sampler_match_torch():
    def collate(examples):
        return sum(e["label"] for e in examples)

    _same(
        fud.DataLoader(Pairs(), batch_size=3, collate_fn=collate),
        tud.DataLoader(Pairs(), batch_size=3, collate_fn=collate),
    )
    order = [9, 0, 8, 1, 7]
    _same(
        fud.DataLoader(Pairs(), batch_size=2, sampler=order),
        tud.DataLoader(Pairs(), batch_size=2, sampler=order),
    )
    batches = [[0, 1, 2], [5], [9, 3]]
    _same(
        fud.DataLoader(Pairs(), batch_sampler=batches),
        tud.DataLoader(Pairs(), batch_sampler=batches),
    )
    _same(fud.DataLoader(Pairs(), batch_size=None), tud.DataLoader(Pairs(), batch_size=None))


def test_subset_concat_and_samplers_match_torch():
    f_ds, t_ds = fud.TensorDataset(fx.tensor(X)), tud.TensorDataset(torch.tensor(X))
    _same(
        fud.DataLoader(fud.Subset(f_ds, [4, 2]) + fud.Subset(f_ds, [7]), batch_size=2),
        tud.DataLoader(tud.Subset(t_ds, [4, 2]) + tud.Subset(t_ds, [7]), batch_size=2),
    )
    assert list(fud.SequentialSampler(range(5))) == list(tud.SequentialSampler(range(5)))
    assert list(fud.BatchSampler(range(7), 3, drop_last=False)) == list(
        tud.BatchSampler(range(7), 3, drop_last=False)
    )
    assert len(fud.BatchSampler(range(7), 3, True)) == len(tud.BatchSampler(range(7), 3, True))


def test_shuffle_is_a_permutation_per_epoch_reproducible_from_the_seed():
    ds = fud.TensorDataset(fx.arange(10))

    def epochs(seed):
        loader = fud.DataLoader(
            ds, batch_size=4, shuffle=True, generator=fx.Generator().manual_seed(seed)
        )
        return [[int(i) for (b,) in loader for i in b.tolist()] for _ in range(3)]

    first = epochs(0)
    assert all(sorted(e) == list(range(10)) for e in first)
    assert first[0] != first[1]  # a new order each epoch
    assert epochs(0) == first and epochs(1) != first
    fx.manual_seed(3)
    a = [b.tolist() for (b,) in fud.DataLoader(ds, batch_size=5, shuffle=True)]
    fx.manual_seed(3)
    assert a == [b.tolist() for (b,) in fud.DataLoader(ds, batch_size=5, shuffle=True)]
    drawn = list(fud.RandomSampler(range(4), replacement=True, num_samples=9))
    assert len(drawn) == 9 and set(drawn) <= set(range(4))


def test_random_split_partitions_like_torch():
    ds = fud.TensorDataset(fx.arange(10))
    g = fx.Generator().manual_seed(0)
    for lengths in ([7, 3], [0.5, 0.3, 0.2], [0.34, 0.33, 0.33]):
        parts = fud.random_split(ds, lengths, generator=g)
        want = tud.random_split(range(10), lengths, generator=torch.Generator().manual_seed(0))
        assert [len(p) for p in parts] == [len(w) for w in want]
        seen = sorted(int(p[i][0]) for p in parts for i in range(len(p)))
        assert seen == list(range(10))
    with pytest.raises(FluxionError, match="random_split.*add up"):
        fud.random_split(ds, [3, 3])


def test_bad_loaders_are_named():
    ds = fud.TensorDataset(fx.tensor(X))
    with pytest.raises(FluxionError, match="sampler= or shuffle"):
        fud.DataLoader(ds, sampler=[0], shuffle=True)
    with pytest.raises(FluxionError, match="batch_size"):
        fud.DataLoader(ds, batch_size=0)
    with pytest.raises(FluxionError, match="first dimension"):
        fud.TensorDataset(fx.ones(3), fx.ones(4))
