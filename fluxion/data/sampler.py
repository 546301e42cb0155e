"""Each process's share of the data: ``DistributedSampler`` (PyTorch's rule) and
``shard_batch`` (this process's rows of a global batch)."""

from __future__ import annotations

import math

import numpy as np

from fluxion.core.checks import check_count, check_int, check_seed
from fluxion.distributed import world
from fluxion.errors import ShapeError


class DistributedSampler:
    """The indices of ``dataset`` (a sized object, or its length) that process ``rank``
    of ``num_replicas`` reads in an epoch: the epoch's order (a seeded shuffle, the same
    on every process; ``set_epoch`` picks the epoch) dealt out in turn, ``order[rank::n]``.
    Each process gets ``len(self)`` indices: the order is padded with its own first
    indices to a multiple of ``num_replicas`` (or, with ``drop_last``, cut to one).

    >>> sampler = fx.data.DistributedSampler(10, num_replicas=4, rank=1, shuffle=False)
    >>> list(sampler)
    [1, 5, 9]
    """

    def __init__(
        self,
        dataset,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ):
        op = "DistributedSampler"
        self.size = check_int(
            op, "dataset", dataset if isinstance(dataset, int) else len(dataset), 0
        )
        self.num_replicas = check_count(
            op, "num_replicas", world.world_size() if num_replicas is None else num_replicas
        )
        self.rank = check_int(
            op, "rank", world.rank() if rank is None else rank, 0, self.num_replicas - 1
        )
        self.shuffle, self.seed, self.drop_last = (
            bool(shuffle),
            check_seed(op, "seed", seed),
            bool(drop_last),
        )
        self.epoch = 0
        rounding = math.floor if drop_last else math.ceil
        self.num_samples = rounding(self.size / self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for ``epoch`` from now on (call it at each epoch's start, on every process)."""
        self.epoch = check_int("DistributedSampler.set_epoch", "epoch", epoch, 0)

    def __iter__(self):
        order = np.arange(self.size)
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(self.size)
        total = self.num_samples * self.num_replicas
        if total > self.size:  # pad with the order's own start, repeated as needed
            order = np.resize(order, total)
        return iter(order[self.rank : total : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


def shard_batch(arrays, rank: int | None = None, num_replicas: int | None = None) -> tuple:
    """Process ``rank``'s rows of a global batch: the ``rank``-th of ``num_replicas`` equal
    blocks of each array's leading axis (the batch size must divide evenly, so that the
    mean of the processes' mean losses is the global batch's).

    >>> fx.data.shard_batch((np.arange(6),), rank=1, num_replicas=3)
    (array([2, 3]),)
    """
    n = world.world_size() if num_replicas is None else num_replicas
    r = world.rank() if rank is None else rank
    out = []
    for a in arrays:
        if len(a) % n:
            raise ShapeError(
                f"shard_batch: a batch of {len(a)} rows does not split into {n} equal shards "
                f"(one per process); make the batch size a multiple of {n}"
            )
        size = len(a) // n
        out.append(a[r * size : (r + 1) * size])
    return tuple(out)
