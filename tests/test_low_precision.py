"""float16 and bfloat16 accumulate in float32 and round once, as PyTorch's CPU kernels
mean to: sums, means, variances, norms, softmax, log-softmax, losses and matmul, eager and
compiled. The reference is torch's float32 result on the same (rounded) inputs, rounded
once to the low dtype; torch's own bfloat16 log_softmax is 128 ulps off near 0, where
rounding once is within one."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fluxion as fx
import fluxion.nn.functional as F

DTYPES = {"bfloat16": (fx.bfloat16, torch.bfloat16), "float16": (fx.float16, torch.float16)}
rng = np.random.default_rng(0)
LOGITS = rng.standard_normal((512, 100)).astype(np.float32) * 3
TARGETS = rng.integers(0, 100, 512)
LARGE = (rng.standard_normal((8, 512)) * 300).astype(np.float32)  # squares past float16's max

# name -> (fluxion function, torch function, input): each of one low-precision tensor
CASES = {
    "sum_of_ones": (lambda x: fx.sum(x), lambda x: x.sum(), np.ones(1000, np.float32)),
    "sum_axis": (lambda x: fx.sum(x, axis=1), lambda x: x.sum(1), LOGITS),
    "mean": (lambda x: fx.mean(x), lambda x: x.mean(), LOGITS),
    "var": (lambda x: fx.var(x, axis=0), lambda x: x.var(0, unbiased=False), LARGE / 2),
    "std": (lambda x: fx.std(x, axis=1), lambda x: x.std(1, unbiased=False), LOGITS),
    "cumsum": (lambda x: fx.cumsum(x), lambda x: x.cumsum(0), np.ones(1000, np.float32)),
    "softmax": (lambda x: F.softmax(x, dim=-1), lambda x: TF.softmax(x, -1), LOGITS),
    "log_softmax": (lambda x: F.log_softmax(x, dim=-1), lambda x: TF.log_softmax(x, -1), LOGITS),
    "logsumexp": (lambda x: fx.logsumexp(x, axis=1), lambda x: x.logsumexp(1), LOGITS),
    "layer_norm": (lambda x: F.layer_norm(x, (512,)), lambda x: TF.layer_norm(x, (512,)), LARGE),
    "rms_norm": (lambda x: F.rms_norm(x, (512,)), lambda x: TF.rms_norm(x, (512,)), LARGE),
    "group_norm": (
        lambda x: F.group_norm(x.reshape(8, 8, 64), 4),
        lambda x: TF.group_norm(x.reshape(8, 8, 64), 4),
        LARGE,
    ),
    "cross_entropy": (
        lambda x: F.cross_entropy(x, fx.tensor(TARGETS)),
        lambda x: TF.cross_entropy(x, torch.tensor(TARGETS)),
        LOGITS,
    ),
    "mse_loss": (
        lambda x: F.mse_loss(x, x * 0.5),
        lambda x: TF.mse_loss(x, x * 0.5),
        LOGITS,
    ),
    "matmul": (lambda x: x @ x.T, lambda x: x @ x.T, LOGITS[:64]),
}


@pytest.mark.torch
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", list(CASES))
def test_low_precision_accumulates_wide_as_torch(name, dtype, compiled):
    fx_fn, torch_fn, data = CASES[name]
    fx_dtype, torch_dtype = DTYPES[dtype]
    x = fx.tensor(data).astype(fx_dtype)
    got = (fx.jit(fx_fn) if compiled else fx_fn)(x)
    rounded_inputs = torch.tensor(x.numpy().astype(np.float32))
    want = torch_fn(rounded_inputs).to(torch_dtype).float().numpy().astype(np.float64)
    assert got.dtype == fx_dtype
    got = got.numpy().astype(np.float64)
    assert np.all(np.isfinite(got)), f"{name}: non-finite values"
    # float32 work rounded once: within one unit of the last place (float32's own
    # rounding can tip a value to the neighbouring low-precision number)
    ulp = float(ml_dtypes.finfo(x._np_dtype).eps)
    scale = np.maximum(np.abs(want), float(ml_dtypes.finfo(x._np_dtype).tiny))
    assert np.all(np.abs(got - want) <= ulp * scale), name


def test_wide_composites_keep_their_gradients():
    x = fx.tensor(LOGITS).astype(fx.bfloat16)
    g = fx.grad(lambda x: F.cross_entropy(x, fx.tensor(TARGETS)))(x)
    t = torch.tensor(LOGITS).bfloat16().requires_grad_()
    TF.cross_entropy(t, torch.tensor(TARGETS)).backward()
    assert g.dtype == fx.bfloat16
    np.testing.assert_allclose(
        g.numpy().astype(np.float32), t.grad.float().numpy(), rtol=2**-7, atol=2**-7 / 512
    )
