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

import numpy as np
import pytest

from fluxion.cli.main import main
from fluxion.distributed import world
from fluxion.distributed.world import launcher
from fluxion.errors import BatchingError, DistributedError
from fluxion.tasks.checkpoint import FILENAME, load_checkpoint

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
FOUR = ["collectives", "disagreement_is_named", "derivatives", "pmap", "data_parallel"]
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
        done = mpirun(n, str(HERE / "ranks.py"), folder, *(CHECKS if n == 2 else FOUR))
    ranks = []
    for rank in range(max(n, 1)):
        path = pathlib.Path(folder, f"rank-{rank}.txt")
        ranks.append(path.read_text().splitlines() if path.exists() else [])
        path.unlink(missing_ok=True)
    os.rmdir(folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return ranks


@pytest.mark.parametrize(
    ("n", "check"), [(2, check) for check in CHECKS] + [(4, check) for check in FOUR]
)
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


def test_a_launched_process_without_mpi4py_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")  # what mpirun tells the processes it starts
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # importing it fails
    monkeypatch.setattr(world, "_world", world._World())  # a process not yet initialized
    with pytest.raises(DistributedError) as caught:
        world.rank()
    assert "started as one of 2" in str(caught.value)
    assert "pip install 'fluxion[mpi]'" in str(caught.value)


def test_collectives_over_an_axis_name_need_its_pmap():
    import fluxion as fx

    with pytest.raises(DistributedError, match="unbound axis name 'batch'.*axis_name='batch'"):
        fx.lax.psum(fx.ones(2), "batch")
    with pytest.raises(DistributedError, match="unbound axis name 'i'.*running now name: 'j'"):
        fx.pmap(lambda x: fx.lax.psum(x, "i"), axis_name="j")(fx.ones((1, 2)))
    with pytest.raises(BatchingError, match=r"shape \(4, 2\), which must exist and have length 1"):
        fx.pmap(lambda x: x)(fx.ones((4, 2)))


TINY = [
    "--steps", "4", "--batch-size", "8", "--d-model", "16", "--heads", "2", "--layers", "1",
    "--eval-every", "2", "--lr", "0.002", "--no-progress", "--no-tensorboard",
]  # fmt: skip


@pytest.mark.parametrize("style", ["compiled", "eager"])
def test_train_on_two_processes_is_training_on_one(style, tmp_path):
    """``fluxion train`` on 2 processes (compiled: started by an outer mpirun; eager: by
    ``--procs 2``, through mpirun) ends where one process training on the whole batch
    ends; rank 0 alone reports and writes."""
    options = [*TINY, "--out", str(tmp_path / "two")] + (["--eager"] if style == "eager" else [])
    command = ["-m", "fluxion", "train", "classify", "--procs", "2", *options]
    if style == "compiled":
        two = mpirun(2, *command)
    else:
        two = subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, timeout=TIMEOUT,
            env=_env(), cwd=ROOT,
        )  # fmt: skip
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("trained 4 steps") == 1, two.stdout
    options[options.index("--out") + 1] = str(tmp_path / "one")
    assert main(["train", "classify", *options]) == 0
    together = load_checkpoint(tmp_path / "two" / FILENAME)
    alone = load_checkpoint(tmp_path / "one" / FILENAME)
    assert together.model.keys() == alone.model.keys()
    for name, value in alone.model.items():
        got, want = together.model[name].numpy(), value.numpy()
        if name.endswith("attn.in_proj_bias"):
            # the keys' bias (the middle third) has a zero gradient but for rounding (softmax
            # ignores a shift of a query's scores), which AdamW's normalization turns into
            # steps of either sign: it is bounded only by 4 steps of lr (0.002)
            keys = slice(want.size // 3, 2 * want.size // 3)
            assert np.abs(got[keys] - want[keys]).max() <= 4 * 0.002
            got, want = np.delete(got, keys), np.delete(want, keys)
        np.testing.assert_allclose(got, want, 1e-5, 1e-5 * np.abs(want).max(), err_msg=name)
    rows = [(tmp_path / run / "metrics.jsonl").read_text().splitlines() for run in ("two", "one")]
    assert len(rows[0]) == len(rows[1]) == 3  # steps 2 and 4, and the final evaluation
