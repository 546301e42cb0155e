"""Native kernels on several threads: a compiled function gives the same bits on 1 and N
threads for every kind of fused group, agrees with eager fluxion and float64 NumPy, runs on
the threads ``fx.num_threads`` says (read back from the kernel's own record of which threads
ran its ranges), no more than its work gains from (the grain), and on one thread where the
process may use one core."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import fluxion as fx
from fluxion.backends import threads
from fluxion.compiler.fusion import FUSED
from fluxion.compiler.native import toolchain

pytestmark = pytest.mark.skipif(
    toolchain.usable_compiler() is None, reason="no C compiler: no native kernels"
)

RNG = np.random.default_rng(0)
X = RNG.standard_normal((96, 160)).astype(np.float32)
W = RNG.standard_normal(160).astype(np.float32)
WIDE = RNG.standard_normal((12, 2600)).astype(np.float32)  # cut along its rows' 11 blocks


def _adamw(p, g, m, v):
    state = fx.optim.adamw_init({"p": p})._replace(
        step=fx.tensor(np.int32(3)), exp_avg=[m], exp_avg_sq=[v]
    )
    new, state = fx.optim.adamw_update({"p": p}, {"p": g}, state, lr=1e-2)
    return new["p"], state.exp_avg[0], state.exp_avg_sq[0]


def _numpy_adamw(p, g, m, v, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8, wd=1e-2, step=4):
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    p = p * (1 - lr * wd) - lr * (m / (1 - b1**step)) / (np.sqrt(v / (1 - b2**step)) + eps)
    return p, m, v


def _numpy_layer_norm(x, w):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * w


def _numpy_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


POSITIVE = np.abs(X) + 0.1
GROUPS = {  # name -> (function, its arrays, the float64 NumPy answer)
    "elementwise (gelu)": (
        lambda x: fx.nn.functional.gelu(x),
        (X,),
        lambda x: 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2))),
    ),
    "elementwise (vector tanh and exp)": (
        lambda x: fx.tanh(x) * fx.exp(-x * x),
        (X,),
        lambda x: np.tanh(x) * np.exp(-x * x),
    ),
    "row sums": (
        lambda x: fx.sum(fx.tanh(x) * x, axis=-1),
        (X,),
        lambda x: (np.tanh(x) * x).sum(-1),
    ),
    "softmax": (lambda x: fx.softmax(x, axis=-1), (X,), _numpy_softmax),
    "layer norm": (
        lambda x, w: fx.nn.functional.layer_norm(x, (160,), w),
        (X, W),
        _numpy_layer_norm,
    ),
    "column sums (a bias gradient)": (
        lambda x, y: fx.sum(fx.exp(x) * y, axis=0),
        (WIDE, WIDE[::-1].copy()),
        lambda x, y: (np.exp(x) * y).sum(0),
    ),
    "full sum": (lambda x: fx.sum(x * x), (X,), lambda x: (x * x).sum()),
    "adamw update": (
        _adamw,
        (X, X[::-1].copy(), 0.1 * X, POSITIVE),
        _numpy_adamw,
    ),
}


def _most_ranges(compiled) -> list[int]:
    """The most ranges each native kernel of ``compiled`` is cut into (its fx_kernel's)."""
    (entry,) = compiled.cache.values()
    groups = [e.params["graph"] for e in entry.optimized.eqns if e.prim is FUSED]
    kernels = [g.compiled.__globals__["kernel"] for g in groups if g.compiled is not None]
    return [int(np.frombuffer(k, np.int64)[3]) for k in kernels]


@pytest.fixture
def fine_grain(monkeypatch):
    """Kernels cut into a range per 64 elements, so that these small arrays split (the
    grain is read when a kernel is built)."""
    monkeypatch.setattr(threads, "KERNEL_GRAIN", 64)


@pytest.mark.parametrize("name", list(GROUPS))
def test_one_and_many_threads_give_the_same_bits(name, fine_grain):
    fn, arrays, numpy_answer = GROUPS[name]
    compiled = fx.jit(fn)
    tensors = [fx.tensor(a) for a in arrays]
    results = {}
    for n in (1, 2, 3, 7):
        with fx.num_threads(n):
            out = compiled(*tensors)
        results[n] = [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]
    cut = _most_ranges(compiled)
    if name == "full sum":  # one sum over every loop: no loop to cut
        assert cut == [1]
    else:
        assert cut and max(cut) > 7, cut
    for n in (2, 3, 7):
        for one, many in zip(results[1], results[n]):
            assert one.tobytes() == many.tobytes(), f"{name}: 1 and {n} threads differ"
    eager = fn(*tensors)
    want = numpy_answer(*[a.astype(np.float64) for a in arrays])
    for got, e, w in zip(
        results[1],
        eager if isinstance(eager, tuple) else (eager,),
        want if isinstance(want, tuple) else (want,),
    ):
        np.testing.assert_allclose(got, e.numpy(), rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-4)


def _kernel_threads(compiled, *args) -> tuple:
    """The thread ids that ran each range of the last native kernel ``compiled`` ran."""
    compiled(*args)
    return toolchain.call_module().last_threads()


def _tasks() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def _threads_seen(compiled, x, n, calls=50) -> set[int]:
    """The threads that ran ranges of ``compiled``'s kernel over ``calls`` calls on ``n``
    threads (until ``n`` were seen): never more than ``n``, all of this process."""
    seen = set()
    with fx.num_threads(n):
        for _ in range(calls):  # the caller's thread and the pool's take ranges as they come
            ranges = _kernel_threads(compiled, x)
            assert len(set(ranges)) <= n, ranges
            seen |= set(ranges)
            if len(seen) == n:
                break
    assert seen <= _tasks()
    return seen


def test_the_kernel_runs_on_the_threads_asked_for():
    x = fx.tensor(RNG.standard_normal((512, 1024)).astype(np.float32))  # 16 grains
    compiled = fx.jit(lambda x: fx.tanh(x) * x + 1.0)
    here = threading.get_native_id()
    with fx.num_threads(1):
        assert _kernel_threads(compiled, x) == (here,)
    with fx.num_threads(3):  # 4 ranges a thread, taken as they come
        assert len(_kernel_threads(compiled, x)) == 12
    assert len(_threads_seen(compiled, x, 3)) >= 2, "no pool thread ever took a range"
    with fx.num_threads(64):  # more threads than the kernel's 16 grains: 16 ranges
        assert len(_kernel_threads(compiled, x)) == 16
    _threads_seen(compiled, x, 16)  # the pool now holds up to 15 threads,
    _threads_seen(compiled, x, 2)  # of which a call on 2 takes one
    with fx.num_threads(1):
        assert _kernel_threads(compiled, x) == (here,)


def test_a_kernel_smaller_than_two_grains_runs_on_one_thread():
    rows = 2 * threads.KERNEL_GRAIN // 1024 - 1
    x = fx.tensor(np.ones((rows, 1024), np.float32))
    compiled = fx.jit(lambda x: fx.exp(x) + x)
    with fx.num_threads(4):
        assert _kernel_threads(compiled, x) == (threading.get_native_id(),)
        bigger = fx.tensor(np.ones((rows + 2, 1024), np.float32))  # two grains: two ranges
        assert len(_kernel_threads(compiled, bigger)) == 2


def test_a_forked_child_starts_its_own_pool():
    x = fx.tensor(RNG.standard_normal((256, 1024)).astype(np.float32))  # 8 grains
    compiled = fx.jit(lambda x: fx.exp(x) * 2.0)
    with fx.num_threads(2):
        want = compiled(x).numpy()  # the pool's thread started in the parent
        pid = os.fork()
        if pid == 0:  # the child: its kernels split again, with threads of its own
            try:
                right = np.array_equal(compiled(x).numpy(), want)
                os._exit(0 if right and len(_threads_seen(compiled, x, 2)) == 2 else 1)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


CHILD = """
import threading, numpy as np, fluxion as fx
from fluxion.compiler.native import toolchain
x = fx.tensor(np.ones((512, 1024), np.float32))
compiled = fx.jit(lambda x: fx.tanh(x) * x)
compiled(x)
ranges = toolchain.call_module().last_threads()
print(fx.get_num_threads(), len(ranges), set(ranges) == {threading.get_native_id()})
"""


def test_one_core_means_one_thread():
    """Under ``taskset -c 0`` (or an affinity set before fluxion starts) the process sees
    one core: one thread for fluxion, and its kernels run on it alone."""
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", sys.executable, "-c", CHILD]
    else:
        command = [sys.executable, "-c", "import os; os.sched_setaffinity(0, {0})\n" + CHILD]
    env = {k: v for k, v in os.environ.items() if k != "FLUXION_NUM_THREADS"}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "1", "True"]


def test_an_installed_call_of_another_calling_convention_is_not_used(monkeypatch):
    """A ``_call`` pip built from an older ``_call.c`` (kernels took no range then) is left
    alone, and ``_call.c`` built into the cache instead."""
    import types

    stale = types.ModuleType("fluxion.compiler.native._call")
    stale.call, stale.ABI = (lambda *args: None), toolchain._call_abi() - 1
    monkeypatch.setitem(sys.modules, "fluxion.compiler.native._call", stale)
    monkeypatch.setattr(fx.compiler.native, "_call", stale, raising=False)  # where pip built one
    assert toolchain._installed_call() is None
    stale.ABI += 1
    assert toolchain._installed_call() is stale
