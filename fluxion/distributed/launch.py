"""Starting processes: ``fluxion train TASK --procs N`` runs itself N times under mpirun."""

from __future__ import annotations

import subprocess
import sys

from fluxion.distributed import world
from fluxion.errors import DistributedError


def run_processes(procs: int, argv: list[str], what: str = "train") -> int | None:
    """Run ``python -m fluxion *argv`` as ``procs`` processes under the MPI launcher and
    return their exit code; None where this process is already one of ``procs`` (started
    by an outer mpirun, or by this function), which then does the work itself."""
    size = world.launched_size()
    if size == procs:
        return None
    if size > 1:
        raise DistributedError(
            f"{what} --procs {procs}: this process is one of {size} started by an outer MPI "
            f"launcher; give --procs {size} or leave --procs out"
        )
    # mpi4py's runner ends every process when one exits with an error, not just on an
    # uncaught exception (the others would wait in a collective forever)
    python = [sys.executable, "-m", "mpi4py", "-m", "fluxion"]
    return subprocess.run([world.launcher(), "-n", str(procs), *python, *argv]).returncode


def describe() -> str:
    """The MPI library, its launcher and this process's world, for ``fluxion info``."""
    library = world.mpi_library()
    if library is None:
        return f"mpi4py missing ({world.INSTALL_HINT})"
    try:
        launcher = world.launcher()
    except DistributedError:
        launcher = "no mpiexec found"
    return f"{library}; {launcher}; world size {world.launched_size()}"
