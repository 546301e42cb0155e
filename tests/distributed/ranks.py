"""Checks that run on every rank of an ``mpirun -n N`` job (test_distributed.py starts it).

``python ranks.py FOLDER NAME...`` runs the named checks in order; rank R writes a line per
check to FOLDER/rank-R.txt: ``PASS NAME`` or ``FAIL NAME: why``. Every rank draws every rank's input
from one seed, so each check holds the whole world's data and computes the answer on its
own, with NumPy, central differences or a single-process run; what it gets from the
collectives is compared with that.
"""

from __future__ import annotations

import os
import sys
import traceback

import numpy as np

import fluxion as fx
from fluxion.backends import threads
from fluxion.errors import DistributedError

D = fx.distributed
R, N = D.rank(), D.world_size()


def everyone(shape, dtype=np.float64, seed=0) -> np.ndarray:
    """Every rank's input (rank r's is [r]), the same on every rank."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-50, 50, (N,) + shape).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.integers(0, 2, (N,) + shape).astype(bool)
    return rng.standard_normal((N,) + shape).astype(dtype)


def close(got, want, rtol=1e-12, atol=0.0):
    got = got.numpy() if isinstance(got, fx.Tensor) else np.asarray(got)
    assert got.shape == np.shape(want), f"shape {got.shape} != {np.shape(want)}"
    np.testing.assert_allclose(got.astype(np.float64), np.asarray(want, np.float64), rtol, atol)


# NumPy references: the collective as a function of every rank's input X[N, ...],
# giving every rank's output [N, ...]
def stacked(y):
    return np.broadcast_to(y, (N,) + np.shape(y))


REFERENCES = {
    "all_reduce sum": (lambda x: D.all_reduce(x, "sum"), lambda X: stacked(X.sum(0))),
    "all_reduce mean": (lambda x: D.all_reduce(x, "mean"), lambda X: stacked(X.mean(0))),
    "all_reduce max": (lambda x: D.all_reduce(x, "max"), lambda X: stacked(X.max(0))),
    "all_reduce min": (lambda x: D.all_reduce(x, "min"), lambda X: stacked(X.min(0))),
    "all_gather axis 1": (
        lambda x: D.all_gather(x, axis=1),
        lambda X: stacked(np.concatenate(list(X), axis=1)),
    ),
    "reduce_scatter sum": (
        lambda x: D.reduce_scatter(x, axis=0),
        lambda X: np.stack(np.split(X.sum(0), N, axis=0)),
    ),
    "reduce_scatter mean": (
        lambda x: D.reduce_scatter(x, axis=0, op="mean"),
        lambda X: np.stack(np.split(X.mean(0), N, axis=0)),
    ),
    "broadcast": (lambda x: D.broadcast(x, root=N - 1), lambda X: stacked(X[N - 1])),
}
SHAPE = (2 * N, 3)  # reduce_scatter splits axis 0 into N blocks


# ----------------------------------------------------------------------------- collectives


def check_collectives():
    for dtype, rtol in [(np.float64, 1e-12), (np.float32, 1e-6), (np.int32, 0)]:
        X = everyone(SHAPE, dtype)
        for name, (collective, reference) in REFERENCES.items():
            if dtype == np.int32 and "mean" in name:
                continue
            got = collective(fx.tensor(X[R]))
            assert got.dtype == fx.tensor(X[R]).dtype, (name, got.dtype)
            close(got, reference(X)[R], rtol)
    # 0-d, the leading axis, low precision (reduced in float32, rounded once), bool
    X = everyone(())
    close(D.all_reduce(fx.tensor(X[R])), X.sum())
    close(D.all_gather(fx.tensor(everyone((2,))[R])), everyone((2,)).reshape(-1))
    H = everyone((5,), np.float16)
    close(D.all_reduce(fx.tensor(H[R])), H.astype(np.float32).sum(0).astype(np.float16))
    B = everyone((7,), bool)
    close(D.all_reduce(fx.tensor(B[R]), "max"), B.any(0))
    close(D.all_reduce(fx.tensor(B[R]), "min"), B.all(0))


def check_disagreement_is_named():
    try:
        D.all_reduce(fx.ones((R + 1,)))
    except DistributedError as e:
        message = str(e)
    else:
        raise AssertionError("no error for tensors of different shapes")
    assert "rank 0: all_reduce[sum] on float32[1]" in message, message
    assert f"rank {N - 1}: all_reduce[sum] on float32[{N}]" in message, message
    # the ranks carry on together afterwards
    close(D.all_reduce(fx.tensor(float(R))), sum(range(N)))


def check_threads():
    want = max(1, threads.available_cores() // D.local_size())
    assert "FLUXION_NUM_THREADS" in os.environ or fx.get_num_threads() == want


def check_world_of_one_without_mpi():
    # the test blocks the import (sys.modules["mpi4py"] = None): an attempt would raise
    assert (N, R) == (1, 0) and sys.modules.get("mpi4py") is None


# ----------------------------------------------------------------------------- derivatives


def numerical_gradient(F, X, eps=1e-6) -> np.ndarray:
    G = np.zeros_like(X)
    for i in np.ndindex(X.shape):
        E = np.zeros_like(X)
        E[i] = eps
        G[i] = (F(X + E) - F(X - E)) / (2 * eps)
    return G


def check_derivatives():
    X, T = everyone(SHAPE), everyone(SHAPE, seed=2)
    for collective, reference in REFERENCES.values():
        W = everyone(reference(X).shape[1:], seed=1)  # each rank's weights of its output

        def local_loss(x):  # rank R's part of the world's loss
            return (fx.tensor(W[R]) * collective(x)).sum()

        # the world's loss is the sum of the ranks' parts; its gradient by rank R's input
        G = numerical_gradient(lambda X: (W * reference(X)).sum(), X)
        close(fx.grad(local_loss)(fx.tensor(X[R])), G[R], 1e-6, 1e-9)
        close(fx.jit(fx.grad(local_loss))(fx.tensor(X[R])), G[R], 1e-6, 1e-9)
        eps = 1e-6
        J = (reference(X + eps * T) - reference(X - eps * T)) / (2 * eps)
        _, tangent = fx.jvp(collective, (fx.tensor(X[R]),), (fx.tensor(T[R]),))
        close(tangent, J[R], 1e-6, 1e-9)
        # PyTorch style: backward() through the collective
        x = fx.tensor(X[R], requires_grad=True)
        local_loss(x).backward()
        close(x.grad, G[R], 1e-6, 1e-9)


def check_vmap_and_jit():
    XB = everyone((3,) + SHAPE)  # a batch of 3 per rank
    for collective, _ in REFERENCES.values():
        loop = np.stack([collective(fx.tensor(XB[R, i])).numpy() for i in range(3)])
        close(fx.vmap(collective)(fx.tensor(XB[R])), loop)
        moved = fx.tensor(np.moveaxis(XB[R], 0, 2))  # batched along axis 2
        close(fx.vmap(collective, in_axes=2)(moved), loop)
        close(fx.jit(collective)(fx.tensor(XB[R, 0])), loop[0])
        close(fx.jit(fx.vmap(collective))(fx.tensor(XB[R])), loop)


# ----------------------------------------------------------------------------- pmap


def check_pmap():
    X = everyone((4,))
    total, top = X.sum(0), X.max(0)

    def f(x):
        return x * fx.lax.psum(x, "batch") - fx.lax.pmax(x, "batch") ** 2

    want = X[R] * total - top**2
    close(fx.pmap(f)(fx.tensor(X[R][None])), want[None])
    close(fx.jit(fx.pmap(f))(fx.tensor(X[R][None])), want[None])
    # against vmap of the same function over the gathered data, with the reductions given
    vmapped = fx.vmap(lambda x, s, m: x * s - m**2, in_axes=(0, None, None))
    close(fx.pmap(f)(fx.tensor(X[R][None]))[0], vmapped(fx.tensor(X), total, top)[R])

    def h(x):
        return (fx.sin(x) * fx.lax.psum(x, "batch")).sum()

    # d/dx_r of the world's sum_r' h(x_r'): cos(x_r) * S + sum_r' sin(x_r')
    grad = np.cos(X[R]) * total + np.sin(X).sum(0)
    close(fx.pmap(fx.grad(h))(fx.tensor(X[R][None])), grad[None])
    close(fx.grad(lambda x: fx.pmap(h)(x).sum())(fx.tensor(X[R][None])), grad[None])
    close(fx.jit(fx.pmap(fx.grad(h)))(fx.tensor(X[R][None])), grad[None])
    # vmap inside pmap: each example reduced over the processes on its own
    XB = everyone((3, 4), seed=3)
    inner = fx.pmap(fx.vmap(lambda x: x * fx.lax.psum(x, "batch")))
    close(inner(fx.tensor(XB[R][None])), (XB[R] * XB.sum(0))[None])
    # the other names: pmean, pmin, all_gather (stacked and tiled), psum_scatter, axis_index
    close(fx.pmap(lambda x: fx.lax.pmean(x, "batch"))(fx.tensor(X[R][None])), X.mean(0)[None])
    close(fx.pmap(lambda x: fx.lax.pmin(x, "batch"))(fx.tensor(X[R][None])), X.min(0)[None])
    close(fx.pmap(lambda x: fx.lax.all_gather(x, "batch"))(fx.tensor(X[R][None])), X[None])
    tiled = fx.pmap(lambda x: fx.lax.all_gather(x, "batch", tiled=True))
    close(tiled(fx.tensor(X[R][None])), X.reshape(1, -1))
    Y = everyone((N, 2), seed=4)
    scatter = fx.pmap(lambda y: fx.lax.psum_scatter(y, "batch"))
    close(scatter(fx.tensor(Y[R][None])), Y.sum(0)[R][None])
    close(fx.pmap(lambda x: fx.lax.axis_index("batch"))(fx.tensor(X[R][None])), [R])


# ----------------------------------------------------------------------------- data parallel

GLOBAL_BATCH = 8


def _model(dtype, seed):
    fx.manual_seed(seed)
    model = fx.nn.Sequential(fx.nn.Linear(3, 8), fx.nn.Tanh(), fx.nn.Linear(8, 2))
    return model.to(dtype)


def _data(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((GLOBAL_BATCH, 3)).astype(dtype)
    return x, rng.standard_normal((GLOBAL_BATCH, 2)).astype(dtype)


def _train(model, x, y, steps, compiled=False):
    opt = fx.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        loss = fx.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    run = fx.jit(step) if compiled else step
    for _ in range(steps):
        run(fx.tensor(x), fx.tensor(y))
    if compiled:  # one trace, every step compiled (none run eagerly instead)
        assert (run.stats.misses, run.stats.fallbacks) == (1, 0), run.stats
    return [p.numpy() for p in model.parameters()]


def check_data_parallel():
    """A data-parallel step on N processes is the one-process step on the whole batch."""
    for dtype, rtol in [(np.float64, 1e-12), (np.float32, 1e-6)]:
        x, y = _data(dtype)
        mine = list(fx.data.DistributedSampler(GLOBAL_BATCH, shuffle=False))
        for compiled in (False, True):
            alone = _train(_model(dtype, 0), x, y, 3, compiled)
            # each rank starts from its own initialization: wrapping makes them rank 0's
            ddp = fx.nn.parallel.DistributedDataParallel(_model(dtype, R))
            together = _train(ddp, x[mine], y[mine], 3, compiled)
            for a, b in zip(together, alone):  # relative to the tensor's scale
                close(a, b, rtol, rtol * np.abs(b).max())


def check_gradients_are_bucketed():
    """DDP all-reduces the gradients a bucket at a time: the model's 4 float32 tensors
    (96, 32, 64 and 8 bytes) are one bucket at the default 25 MB, two at 128 bytes; the
    gradients are the one-process gradients of the whole batch either way."""
    x, y = map(fx.tensor, _data(np.float32))
    mine = fx.tensor(list(fx.data.DistributedSampler(GLOBAL_BATCH, shuffle=False)))

    def loss(m, x, y):
        return fx.nn.functional.mse_loss(m(x), y)

    alone = fx.grad(loss)(_model(np.float32, 0), x, y)
    for cap, calls in [(25, 1), (128 / 2**20, 2)]:
        ddp = fx.nn.parallel.DistributedDataParallel(_model(np.float32, 0), bucket_cap_mb=cap)
        graph = fx.make_graph(fx.grad(loss), ddp, x[mine], y[mine])
        assert [e.prim.name for e in graph.eqns].count("all_reduce") == calls, graph
        grads = fx.grad(loss)(ddp, x[mine], y[mine])
        for a, b in zip(fx.tree_leaves(grads), fx.tree_leaves(alone)):
            close(a, b.numpy(), 1e-6, 1e-6 * np.abs(b.numpy()).max())


def check_functional_data_parallel():
    """The JAX way: pmap(grad) with pmean of the gradients, against grad on the whole batch."""
    x, y = _data(np.float64)
    model = _model(np.float64, 0)

    def loss(m, x, y):
        return fx.nn.functional.mse_loss(m(x), y)

    def step(m, x, y):
        grads = fx.lax.pmean(fx.grad(loss)(m, x, y), "batch")
        return fx.tree_map(lambda p, g: p - 0.1 * g, m, grads)

    shard = slice(R * GLOBAL_BATCH // N, (R + 1) * GLOBAL_BATCH // N)
    for compiled in (False, True):
        update = fx.pmap(step, in_axes=(None, 0, 0), out_axes=None)
        update = fx.jit(update) if compiled else update
        m = update(model, fx.tensor(x[shard][None]), fx.tensor(y[shard][None]))
        if compiled:
            assert (update.stats.misses, update.stats.fallbacks) == (1, 0), update.stats
        ref = fx.tree_map(
            lambda p, g: p - 0.1 * g, model, fx.grad(loss)(model, fx.tensor(x), fx.tensor(y))
        )
        for a, b in zip(fx.tree_leaves(m), fx.tree_leaves(ref)):
            close(a, b.numpy(), 1e-12, 1e-15)


def check_ranks_stay_identical():
    """After 20 steps on different shards, every rank's parameters are bitwise rank 0's."""
    x, y = _data(np.float32)
    mine = list(fx.data.DistributedSampler(GLOBAL_BATCH, seed=1))
    ddp = fx.nn.parallel.DistributedDataParallel(_model(np.float32, R))
    params = _train(ddp, x[mine], y[mine], 20)
    flat = np.concatenate([p.reshape(-1) for p in params])
    everyone_s = D.all_gather(fx.tensor(flat)).numpy().reshape(N, -1)
    assert (everyone_s == everyone_s[0]).all(), "ranks' parameters differ"


def check_sampler_partitions():
    """The ranks' shares of an epoch: PyTorch's rule (the epoch's seeded order dealt out in
    turn), together covering the dataset, each index once when the size divides evenly."""
    for size in (10, 4 * N):
        sampler = fx.data.DistributedSampler(size, seed=3)
        sampler.set_epoch(2)
        shares = D.all_gather(fx.tensor(np.array(list(sampler)))).numpy().reshape(N, -1)
        order = np.random.default_rng((3, 2)).permutation(size)
        dealt = [[int(order[i % size]) for i in range(r, len(sampler) * N, N)] for r in range(N)]
        assert shares.tolist() == dealt, (shares.tolist(), dealt)
        assert set(shares.reshape(-1).tolist()) == set(range(size))
        if size % N == 0:
            assert shares.size == size


def main(folder, names):
    with open(os.path.join(folder, f"rank-{R}.txt"), "w") as out:
        for name in names:
            try:
                globals()[f"check_{name}"]()
            except Exception:
                why = traceback.format_exc().strip().splitlines()
                out.write(f"FAIL {name}: {' | '.join(why[-6:])}\n")
            else:
                out.write(f"PASS {name}\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
