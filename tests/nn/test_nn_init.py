"""nn.init: PyTorch's formulas (bounds, standard deviations, gains, fans), in place,
reproducible with fx.manual_seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fluxion as fx
from fluxion.errors import InvalidArgumentError, ShapeError

init = fx.nn.init


def _param(*shape, dtype=fx.float32):
    return fx.nn.Parameter(fx.zeros(shape, dtype=dtype))


def test_gains_and_fans_match_pytorch():
    for name, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:  # fmt: skip
        assert init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param)
        )
    w = _param(6, 4, 3, 3)
    assert init._calculate_fan_in_and_fan_out(w) == (36, 54)
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        init.xavier_uniform_(_param(5))
    with pytest.raises(InvalidArgumentError, match="mode"):
        init.kaiming_uniform_(_param(3, 3), mode="fan_avg")
    with pytest.raises(InvalidArgumentError, match="nonlinearity"):
        init.kaiming_normal_(_param(3, 3), nonlinearity="swish")


@pytest.mark.parametrize("dtype", [fx.float32, fx.float64])
def test_distributions(dtype):
    fx.manual_seed(0)
    w = _param(200, 300, dtype=dtype)
    bound = math.sqrt(6 / 500)
    out = init.xavier_uniform_(w)
    assert out is w and w.dtype == dtype and w.requires_grad
    a = w.numpy()
    assert np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound
    assert abs(a.std() - bound / math.sqrt(3)) < 0.01 * bound
    init.xavier_normal_(w, gain=2.0)
    assert abs(w.numpy().std() - 2.0 * math.sqrt(2 / 500)) < 0.02 * 2.0 * math.sqrt(2 / 500)
    init.kaiming_uniform_(w, a=math.sqrt(5))  # Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(w.numpy()).max() <= 1 / math.sqrt(300)
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 200)) < 0.02 * math.sqrt(2 / 200)
    init.normal_(w, mean=1.0, std=0.5)
    assert abs(w.numpy().mean() - 1.0) < 0.01 and abs(w.numpy().std() - 0.5) < 0.01
    init.uniform_(w, -3.0, -2.0)
    assert w.numpy().min() >= -3.0 and w.numpy().max() < -2.0
    init.trunc_normal_(w, std=1.0, a=-0.5, b=1.0)
    assert w.numpy().min() >= -0.5 and w.numpy().max() <= 1.0
    init.constant_(w, 0.25)
    assert np.all(w.numpy() == 0.25)
    init.ones_(w), init.zeros_(w)
    assert np.all(w.numpy() == 0)


def test_manual_seed_reproduces_a_model():
    def build():
        return fx.nn.Sequential(
            fx.nn.Embedding(10, 8), fx.nn.TransformerEncoderLayer(8, 2, 16), fx.nn.Linear(8, 3)
        )

    fx.manual_seed(42)
    a = build()
    fx.manual_seed(42)
    b = build()
    c = build()
    for (n, p), (_, q), (_, r) in zip(
        a.named_parameters(), b.named_parameters(), c.named_parameters()
    ):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)
        if p.ndim > 1:
            assert not np.array_equal(p.numpy(), r.numpy()), n


def test_default_initializations_follow_pytorch():
    fx.manual_seed(0)
    lin = fx.nn.Linear(400, 50)
    assert np.abs(lin.weight.numpy()).max() <= 1 / 20 and np.abs(lin.bias.numpy()).max() <= 1 / 20
    emb = fx.nn.Embedding(500, 40)
    assert abs(emb.weight.numpy().std() - 1.0) < 0.02
    mha = fx.nn.MultiheadAttention(32, 4)
    assert np.abs(mha.in_proj_weight.numpy()).max() <= math.sqrt(6 / (96 + 32))
    assert np.all(mha.in_proj_bias.numpy() == 0) and np.all(mha.out_proj.bias.numpy() == 0)
    ln = fx.nn.LayerNorm(5)
    assert np.all(ln.weight.numpy() == 1) and np.all(ln.bias.numpy() == 0)
