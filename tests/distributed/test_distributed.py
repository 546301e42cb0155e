"""fx.distributed on real processes: ``mpirun -n 2`` and ``-n 4`` (oversubscribing this
machine's 2 cores) run the checks of ranks.py, each against an answer computed on its own
(NumPy on every rank's data, central differences, a single-process run); a world of one
runs them without mpirun and without mpi4py; faults end every rank with the error."""

from __future__ import annotations

import functools
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from fluxion.distributed.world import launcher

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHECKS = [
    "collectives",
    "disagreement_is_named",
    "threads",
    "derivatives",
    "vmap_and_jit",
    "pmap",
    "data_parallel",
    "gradients_are_bucketed",
    "functional_data_parallel",
    "ranks_stay_identical",
    "sampler_partitions",
]
ALONE = [c for c in CHECKS if c != "disagreement_is_named"] + ["world_of_one_without_mpi"]
TIMEOUT = 120  # a hang (a collective left waiting) becomes a failure


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MPI_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env | extra


def mpirun(n: int, *command, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [launcher(), "-n", str(n), sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=ROOT,
    )


@functools.cache
def results(n: int) -> list[list[str]]:
    """Each rank's lines from every check on ``n`` ranks (0: one process started without
    mpirun, where importing mpi4py fails)."""
    folder = tempfile.mkdtemp(prefix="fluxion-ranks-")
    if n == 0:
        blocked = (
            "import runpy, sys; sys.modules['mpi4py'] = None; "
            f"sys.argv = ['ranks.py', {folder!r}, *{ALONE!r}]; "
            f"runpy.run_path({str(HERE / 'ranks.py')!r}, run_name='__main__')"
        )
        done = subprocess.run(
            [sys.executable, "-c", blocked], capture_output=True, text=True, timeout=TIMEOUT,
            env=_env(), cwd=ROOT,
        )  # fmt: skip
    else:
        done = mpirun(n, str(HERE / "ranks.py"), folder, *CHECKS)
    ranks = []
    for rank in range(max(n, 1)):
        path = pathlib.Path(folder, f"rank-{rank}.txt")
        ranks.append(path.read_text().splitlines() if path.exists() else [])
        path.unlink(missing_ok=True)
    os.rmdir(folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return ranks


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("n", [2, 4])
def test_every_rank_passes(n, check):
    for rank, lines in enumerate(results(n)):
        assert f"PASS {check}" in lines, (rank, lines)


@pytest.mark.parametrize("check", ALONE)
def test_a_world_of_one_without_mpirun_or_mpi4py(check):
    assert f"PASS {check}" in results(0)[0], results(0)


def test_a_rank_that_raises_ends_every_rank():
    script = (
        "import fluxion as fx\n"
        "if fx.distributed.rank() == 1:\n"
        "    raise RuntimeError('boom on rank 1')\n"
        "fx.distributed.all_reduce(fx.ones(3))  # rank 0 would wait here forever\n"
    )
    done = mpirun(2, "-c", script, timeout=60)
    assert done.returncode != 0
    assert "rank 1 of 2 failed" in done.stderr and "boom on rank 1" in done.stderr, done.stderr


def test_a_launched_process_without_mpi4py_says_what_to_install():
    script = "import sys; sys.modules['mpi4py'] = None\nimport fluxion as fx\nfx.distributed.rank()"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT,
        env=_env(PMI_SIZE="2", PMI_RANK="0"), cwd=ROOT,
    )  # fmt: skip
    assert done.returncode != 0
    assert "DistributedError" in done.stderr and "pip install 'fluxion[mpi]'" in done.stderr
    assert "started as one of 2" in done.stderr, done.stderr
