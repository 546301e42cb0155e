"""Threads: each has its own grad mode, transforms and debug switches (as in PyTorch and
JAX), a compiled function's first calls from several threads compile it once, and two
models trained in two threads at once end bitwise where training them in turn ends."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import fluxion as fx


def _run_together(*targets):
    """Start every target in its own thread at once; re-raise the first failure."""
    errors, start = [], threading.Barrier(len(targets))

    def wrapped(target):
        try:
            start.wait()
            target()
        except BaseException as e:  # noqa: BLE001  (reported in the main thread)
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_no_grad_in_one_thread_leaves_another_thread_recording():
    inside, stop, grads = threading.Event(), threading.Event(), []

    def toggler():
        while not stop.is_set():
            with fx.no_grad():
                inside.set()
                time.sleep(0.001)  # the other thread runs while this one is in no_grad

    def trainer():
        inside.wait(timeout=10)
        w = fx.tensor([1.0, 2.0], requires_grad=True)
        for _ in range(300):
            w.grad = None
            fx.sum(w * w).backward()
            grads.append(w.grad.numpy().copy())
        stop.set()

    _run_together(toggler, trainer)
    assert len(grads) == 300
    np.testing.assert_array_equal(np.array(grads), np.tile([2.0, 4.0], (300, 1)))


def test_eager_ops_in_one_thread_while_another_traces():
    """A thread's eager ops never see another thread's jit trace (they got its tracers)."""
    tracing, results = threading.Event(), []

    def slow(x):
        tracing.set()
        time.sleep(0.2)  # the trace stays open while the other thread works
        return x * 2

    def compiler():
        np.testing.assert_array_equal(fx.jit(slow)(fx.ones(3)).numpy(), [2.0, 2.0, 2.0])

    def eager():
        tracing.wait(timeout=10)
        for k in range(50):
            out = fx.tensor([1.0, float(k)]) + 1.0
            results.append(out.numpy())

    _run_together(compiler, eager)
    np.testing.assert_array_equal(np.array(results), [[2.0, k + 1.0] for k in range(50)])


def test_concurrent_first_calls_compile_once():
    compiled = fx.jit(lambda x: fx.sum(fx.tanh(x) * x))
    x = fx.tensor(np.linspace(-1, 1, 64))
    want = float(fx.sum(fx.tanh(x) * x))
    outs = []
    _run_together(*[lambda: outs.append(float(compiled(x)))] * 4)
    assert outs == [want] * 4
    assert compiled.stats.misses == 1 and compiled.stats.hits == 3


def test_debug_nans_is_per_thread():
    inside, done, nans = threading.Event(), threading.Event(), []

    def checked():
        with fx.debug_nans():
            inside.set()
            done.wait(timeout=10)  # the switch stays on while the other thread computes
            try:
                fx.log(fx.tensor(-1.0))
            except fx.errors.FloatingPointCheckError:
                return
            raise AssertionError("debug_nans did not raise in its own thread")

    def unchecked():
        inside.wait(timeout=10)
        for _ in range(100):
            nans.append(bool(np.isnan(fx.log(fx.tensor(-1.0)).numpy())))
        done.set()

    _run_together(checked, unchecked)
    assert nans == [True] * 100


def _trainer(seed, compiled, steps=30):
    """A training run, its model made now (the global generator is shared, as torch's is)
    and trained when called: ``run() -> (losses, parameters)``."""
    fx.manual_seed(seed)
    model = fx.nn.Sequential(fx.nn.Linear(4, 16), fx.nn.Tanh(), fx.nn.Linear(16, 1))
    opt = fx.optim.AdamW(model, lr=1e-2)
    rng = np.random.default_rng(seed)
    x, y = fx.tensor(rng.standard_normal((32, 4))), fx.tensor(rng.standard_normal((32, 1)))

    def step(x, y):
        opt.zero_grad()
        loss = fx.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        return loss

    step = fx.jit(step) if compiled else step

    def run():
        losses = [float(step(x, y)) for _ in range(steps)]
        return losses, [p.numpy().copy() for p in model.parameters()]

    return run


def test_two_models_trained_at_once_end_as_trained_in_turn():
    for compiled in (False, True):
        alone = [_trainer(seed, compiled)() for seed in (1, 2)]
        runs, together = {s: _trainer(s, compiled) for s in (1, 2)}, {}
        _run_together(*[lambda s=s: together.__setitem__(s, runs[s]()) for s in (1, 2)])
        for seed, (losses, params) in zip((1, 2), alone):
            assert together[seed][0] == losses
            for a, b in zip(together[seed][1], params):
                np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- how many threads


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    # NumPy's BLAS (others, SciPy's, may be loaded by the time the suite gets here)
    (blas,) = [i for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]
    return blas["num_threads"]


def test_set_num_threads_governs_the_blas_and_small_matmuls_run_on_one():
    from fluxion.backends import threads

    cores = threads.available_cores()
    a = fx.tensor(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32))
    small = fx.tensor(np.ones((8, 8), np.float32))
    with fx.num_threads(cores):
        small @ small
        assert _blas_threads() == 1  # an 8x8 product on one thread, whatever the setting
        big = (a @ a).numpy()
        assert _blas_threads() == cores == fx.get_num_threads()
        with fx.num_threads(1):
            assert fx.get_num_threads() == 1
            one = (a @ a).numpy()
            assert _blas_threads() == 1
        assert fx.get_num_threads() == cores  # restored
    # NumPy's own product on as many BLAS threads, bit for bit (whether 1 and N threads agree
    # is the BLAS's business: OpenBLAS's kernels for some CPUs split the sums by thread)
    from threadpoolctl import threadpool_limits

    for threads_used, got in ((1, one), (cores, big)):
        with threadpool_limits(threads_used, user_api="blas"):
            np.testing.assert_array_equal(got, a.numpy() @ a.numpy())


def test_bad_thread_counts_are_named():
    for bad in (0, -1, 1.5, "2", True, None):
        with pytest.raises(fx.errors.InvalidArgumentError, match="set_num_threads"):
            fx.set_num_threads(bad)


def _in_a_new_process(code: str, env=None, prefix=()) -> str:
    import os
    import subprocess
    import sys

    run = subprocess.run(
        [*prefix, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_the_default_is_the_cores_this_process_may_use():
    import os
    import shutil

    code = "import fluxion as fx; print(fx.get_num_threads())"
    assert _in_a_new_process(code) == str(len(os.sched_getaffinity(0)))
    assert _in_a_new_process(code, env={"FLUXION_NUM_THREADS": "1"}) == "1"
    if shutil.which("taskset") is None:
        pytest.skip("taskset (util-linux) is not installed")
    assert _in_a_new_process(code, prefix=("taskset", "-c", "0")) == "1"
