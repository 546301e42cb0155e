"""The processes working together: the MPI environment, found once, lazily.

A process started by ``mpirun`` (or ``mpiexec``, ``srun``) finds its rank and the world's
size in the environment the launcher gave it; mpi4py is imported only then, so a single
process started without a launcher is a world of size 1 and never needs MPI installed.
Everything here is per process, as MPI's own state is.
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
import zlib

import numpy as np

from fluxion.backends import threads
from fluxion.errors import DistributedError

# What launchers set: MPICH's Hydra, Intel MPI and Slurm's `srun --mpi=pmi2` (PMI_SIZE),
# Open MPI's mpirun.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")

INSTALL_HINT = "install it with `pip install 'fluxion[mpi]'` (mpi4py and the MPICH wheel)"


class _World:
    """``comm`` is mpi4py's COMM_WORLD, or None in a world of one process."""

    def __init__(self):
        self.started = False
        self.comm = None
        self.mpi = None  # the mpi4py.MPI module
        self.rank, self.size, self.local_size = 0, 1, 1


_world = _World()


def launched_size() -> int:
    """The number of processes the launcher says it started (1 without a launcher)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.isdigit():
            return int(value)
    return 1


def init() -> None:
    """Join the processes started together (idempotent; every collective calls it).

    Under a launcher with more than one process: imports mpi4py (which initializes MPI),
    makes an uncaught exception on any rank end every rank (rather than leave the others
    waiting in a collective forever), and gives each rank its share of the node's cores
    as its thread count (``fx.set_num_threads``), unless ``FLUXION_NUM_THREADS`` says.

    >>> fx.distributed.init(); fx.distributed.world_size()   # one process, no mpirun
    1
    """
    if _world.started:
        return
    size = launched_size()
    if size > 1:
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise DistributedError(
                f"distributed.init: this process was started as one of {size} by an MPI "
                f"launcher, but mpi4py cannot be imported ({e}); {INSTALL_HINT}"
            ) from None
        _world.mpi, _world.comm = MPI, MPI.COMM_WORLD
        _world.rank, _world.size = _world.comm.Get_rank(), _world.comm.Get_size()
        _world.local_size = _world.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        sys.excepthook = _abort_on_uncaught
        if "FLUXION_NUM_THREADS" not in os.environ:
            threads.set_num_threads(max(1, threads.available_cores() // _world.local_size))
    _world.started = True


def _abort_on_uncaught(kind, value, tb):
    sys.stderr.write(f"fluxion: rank {_world.rank} of {_world.size} failed:\n")
    traceback.print_exception(kind, value, tb)
    sys.stderr.flush()
    _world.comm.Abort(1)


def rank() -> int:
    """This process's rank, 0 to ``world_size() - 1``."""
    init()
    return _world.rank


def world_size() -> int:
    """The number of processes working together (1 without an MPI launcher)."""
    init()
    return _world.size


def local_size() -> int:
    """The number of processes on this node (sharing its cores)."""
    init()
    return _world.local_size


def comm():
    """mpi4py's communicator of every process, or None in a world of one."""
    init()
    return _world.comm


def barrier() -> None:
    """Wait until every process has reached this point."""
    if comm() is not None:
        _world.comm.Barrier()


def launcher() -> str:
    """The MPI launcher to start processes with: the ``mpiexec`` the MPICH wheel put beside
    this Python, else one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")
    if found is None:
        raise DistributedError(
            f"no MPI launcher (mpiexec) beside {sys.executable} or on PATH; {INSTALL_HINT}"
        )
    return found


def mpi_library() -> str | None:
    """The MPI library's version line, None where mpi4py is not installed."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return " ".join(MPI.Get_library_version().strip().splitlines()[0].split())


def mpi_op(op: str):
    """MPI's reduction for one of fluxion's (a mean is a sum, divided afterwards)."""
    MPI = _world.mpi
    return {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]


# ----------------------------------------------------------------------------- agreement

_MAX_DIMS = 64  # NumPy's limit


def signature(what: str, array: np.ndarray) -> np.ndarray:
    """What every rank must agree on before a collective: its name and params, and the
    shape and dtype of this rank's tensor, as a fixed-size int64 vector."""
    codes = [hash_text(what), hash_text(array.dtype.name), array.ndim]
    return np.array(codes + list(array.shape) + [-1] * (_MAX_DIMS - array.ndim), np.int64)


def hash_text(text: str) -> int:
    return zlib.crc32(text.encode())


def check_agreement(op: str, what: str, array: np.ndarray) -> None:
    """Raise the same DistributedError on every rank when the ranks call different
    collectives, or one collective on tensors of different shapes or dtypes (MPI itself
    would hang or read past a buffer)."""
    mine = signature(what, array)
    everyone = np.empty((_world.size, mine.size), np.int64)
    _world.comm.Allgather(mine, everyone)
    if (everyone == mine).all():
        return
    calls = _world.comm.allgather((what, array.dtype.name, array.shape))
    listing = "; ".join(
        f"rank {r}: {name} on {dtype}{list(shape)}" for r, (name, dtype, shape) in enumerate(calls)
    )
    raise DistributedError(
        f"{op}: the ranks disagree ({listing}); every rank must make the same collective "
        "calls in the same order, on tensors of one shape and dtype"
    )
