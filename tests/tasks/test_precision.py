"""``--precision bf16``: the training step under fx.autocast follows the float32 run (each
row's loss within 1% of float32's, a tolerance the bfloat16 products' rounding stays well
inside: ~1e-4 measured here, and over the 600 steps of ``fluxion train classify``), the
final training accuracy within 5 points, and the checkpoint keeps float32 weights and
optimizer moments."""

from __future__ import annotations

import numpy as np
import pytest
from tasks_testing import TINY, shrink

import fluxion as fx
from fluxion.tasks import make_config, train
from fluxion.tasks.checkpoint import load_checkpoint

LOSS_TOLERANCE = 0.01  # relative, per metrics row
ACCURACY_TOLERANCE = 0.05  # absolute, on the final training accuracy


@pytest.fixture(autouse=True)
def _small(monkeypatch):
    shrink(monkeypatch)


def _train(out, precision, eager=False):
    settings = {**TINY, "steps": 12, "eval_every": 4, "lr": 1e-2, "schedule": "constant"}
    config = make_config("classify", **settings, precision=precision)
    return train(config, out, eager=eager, progress=False, echo=lambda s: None)


@pytest.mark.parametrize("eager", [False, True], ids=["compiled", "eager"])
def test_bf16_training_follows_float32(tmp_path, eager):
    fp32 = _train(tmp_path / "fp32", "fp32", eager)
    bf16 = _train(tmp_path / "bf16", "bf16", eager)
    rows32, rows16 = ([r for r in result.rows if "loss" in r] for result in (fp32, bf16))
    assert len(rows32) == len(rows16) == 3
    for a, b in zip(rows32, rows16):
        assert b["loss"] == pytest.approx(a["loss"], rel=LOSS_TOLERANCE)
    assert abs(bf16.final["train_accuracy"] - fp32.final["train_accuracy"]) <= ACCURACY_TOLERANCE
    ck = load_checkpoint(tmp_path / "bf16" / "checkpoint.safetensors")
    assert ck.config.precision == "bf16"
    assert all(t.dtype == fx.float32 for t in ck.model.values())
    assert all(t.dtype == fx.float32 for t in ck.optimizer["exp_avg"].values())
    # the runs differ: the bf16 step did round its products
    ck32 = load_checkpoint(tmp_path / "fp32" / "checkpoint.safetensors")
    assert any(not np.array_equal(ck.model[k].numpy(), ck32.model[k].numpy()) for k in ck.model)


def test_bad_precision_names_the_option():
    from fluxion.tasks import TaskError

    with pytest.raises(TaskError, match="--precision must be one of fp32, bf16, got 'fp16'"):
        make_config("classify", precision="fp16")
