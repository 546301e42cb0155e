"""fx.nn loss modules against torch.nn's: values and input gradients (backward()), float64
to 1e-10 and float32 to 1e-5, over each option (reduction, weight, ignore_index,
label_smoothing, pos_weight, delta, beta)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nn_testing import close

import fluxion as fx

DTYPES = [np.float64, np.float32]
N, C = 6, 4


def _targets(rng):
    t = rng.integers(0, C, size=(N,))
    t[1] = -100  # ignored where ignore_index is the default
    return t


def _pair(name, kwargs, rng, dtype):
    """The two modules, with tensors in ``kwargs`` given as NumPy arrays."""
    fx_kw = {k: fx.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    t_kw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    return getattr(fx.nn, name)(**fx_kw), getattr(torch.nn, name)(**t_kw)


def _inputs(kind, rng, dtype):
    if kind == "classes":
        x = rng.standard_normal((N, C)).astype(dtype)
        return x, rng.integers(0, C, size=(N,))
    if kind == "classes_ignored":
        return rng.standard_normal((N, C)).astype(dtype), _targets(rng)
    if kind == "classes_3d":
        return rng.standard_normal((2, C, 3)).astype(dtype), rng.integers(0, C, size=(2, 3))
    if kind == "probs":
        p = rng.random((N, C)).astype(dtype)
        return rng.standard_normal((N, C)).astype(dtype), p / p.sum(-1, keepdims=True)
    if kind == "logprobs":
        x = rng.standard_normal((N, C))
        x = x - np.log(np.exp(x).sum(-1, keepdims=True))
        return x.astype(dtype), _targets(rng)
    if kind == "unit":
        return rng.uniform(0.05, 0.95, (N, C)).astype(dtype), rng.random((N, C)).astype(dtype)
    # "real": targets of the input's shape, differences away from the kinks at |d| = 1, 0.5
    x = rng.standard_normal((N, C)).astype(dtype)
    d = rng.choice([-1, 1], (N, C)) * rng.choice([0.2, 0.7, 1.6, 2.5], (N, C))
    return x, (x - d).astype(dtype)


W = np.array([0.5, 2.0, 1.0, 3.0])
CASES = [
    ("CrossEntropyLoss", {}, "classes"),
    ("CrossEntropyLoss", {"reduction": "sum"}, "classes_ignored"),
    ("CrossEntropyLoss", {"reduction": "none"}, "classes_3d"),
    ("CrossEntropyLoss", {"weight": W, "label_smoothing": 0.1}, "classes_ignored"),
    ("CrossEntropyLoss", {"ignore_index": 2, "label_smoothing": 0.2}, "classes"),
    ("CrossEntropyLoss", {"label_smoothing": 0.1}, "probs"),
    ("NLLLoss", {}, "logprobs"),
    ("NLLLoss", {"weight": W, "reduction": "sum"}, "logprobs"),
    ("MSELoss", {}, "real"),
    ("MSELoss", {"reduction": "none"}, "real"),
    ("L1Loss", {"reduction": "sum"}, "real"),
    ("BCELoss", {}, "unit"),
    ("BCELoss", {"weight": np.array([1.0, 0.5, 2.0, 1.0]), "reduction": "sum"}, "unit"),
    ("BCEWithLogitsLoss", {}, "unit"),
    ("BCEWithLogitsLoss", {"pos_weight": np.array([2.0, 1.0, 0.5, 3.0])}, "unit"),
    ("HuberLoss", {}, "real"),
    ("HuberLoss", {"delta": 0.5, "reduction": "sum"}, "real"),
    ("SmoothL1Loss", {}, "real"),
    ("SmoothL1Loss", {"beta": 0.5, "reduction": "none"}, "real"),
    ("SmoothL1Loss", {"beta": 0.0}, "real"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "name, kwargs, kind", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_loss_module_matches_torch(name, kwargs, kind, dtype):
    rng = np.random.default_rng(len(name) + len(kwargs))
    kwargs = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    f_loss, t_loss = _pair(name, kwargs, rng, dtype)
    x, y = _inputs(kind, rng, dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    t_out = t_loss(tx, torch.from_numpy(y))
    fxx = fx.tensor(x, requires_grad=True)
    f_out = f_loss(fxx, fx.tensor(y))
    close(f_out, t_out, dtype, f"{name}{kwargs} value")
    ct = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    (t_out * torch.from_numpy(ct)).sum().backward()
    fx.sum(f_out * fx.tensor(ct)).backward()
    close(fxx.grad, tx.grad, dtype, f"{name}{kwargs} gradient")


def test_loss_module_weight_is_a_buffer():
    loss = fx.nn.CrossEntropyLoss(weight=fx.tensor([1.0, 2.0]))
    want = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0])).state_dict()
    assert list(loss.state_dict()) == list(want) == ["weight"]
    assert list(loss.parameters()) == []


def test_loss_module_names_a_bad_reduction():
    with pytest.raises(ValueError, match="MSELoss.*reduction.*'avg'"):
        fx.nn.MSELoss(reduction="avg")
