"""Beyond one process: collectives over MPI that differentiate, batch and compile.

Start processes with the MPI launcher (``mpirun -n 4 python train.py``, or
``fluxion train TASK --procs 4``); each calls these with tensors of one shape. A process
started without a launcher is a world of one, where every collective is the identity
(and mpi4py need not be installed).

>>> fx.distributed.rank(), fx.distributed.world_size()
(0, 1)
>>> fx.distributed.all_gather(fx.tensor([1.0, 2.0]))
[1. 2.]:f32[2]:cpu(0)
"""

from fluxion.distributed.collectives import (
    all_gather,
    all_reduce,
    broadcast,
    reduce_scatter,
    replicated_mean,
)
from fluxion.distributed.pmap import pmap
from fluxion.distributed.world import barrier, init, local_size, mpi_library, rank, world_size

__all__ = [
    "all_gather",
    "all_reduce",
    "barrier",
    "broadcast",
    "init",
    "local_size",
    "mpi_library",
    "pmap",
    "rank",
    "reduce_scatter",
    "replicated_mean",
    "world_size",
]
