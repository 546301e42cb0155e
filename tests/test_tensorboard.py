"""``fx.utils.tensorboard.SummaryWriter``: what it writes, read back by TensorBoard's own
event loader (the ``tensorboard`` package of the test extras)."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import fluxion as fx


def _events(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def test_scalars_from_tensors_floats_and_arrays(tmp_path):
    with fx.utils.tensorboard.SummaryWriter(tmp_path) as writer:
        writer.add_scalar("train/loss", fx.tensor(2.5), 0)
        writer.add_scalar("train/loss", 1.25, 1)
        writer.add_scalar("train/loss", np.float64(0.1), 2)
        writer.add_scalars("acc", {"train": fx.tensor(0.5), "val": 0.25}, 3)
    points = [(e.step, e.value) for e in _events(tmp_path).Scalars("train/loss")]
    assert points == [(0, 2.5), (1, 1.25), (2, float(np.float32(0.1)))]
    # add_scalars writes one run per key (tensorboardX: folders acc/train, acc/val)
    assert [(e.step, e.value) for e in _events(tmp_path / "acc" / "train").Scalars("acc")] == [
        (3, 0.5)
    ]
    assert [(e.step, e.value) for e in _events(tmp_path / "acc" / "val").Scalars("acc")] == [
        (3, 0.25)
    ]


def test_histogram_and_text(tmp_path):
    values = fx.randn(1000) * 3.0 + 1.0
    with fx.utils.tensorboard.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("weights", values, 7)
        writer.add_text("notes", "lr 1e-3, no warm-up", 7)
    events = _events(tmp_path)
    (event,) = events.Histograms("weights")
    h, v = event.histogram_value, values.numpy().astype(np.float64)
    assert event.step == 7 and h.num == 1000
    assert (h.min, h.max) == (v.min(), v.max())
    np.testing.assert_allclose([h.sum, h.sum_squares], [v.sum(), (v * v).sum()], rtol=1e-12)
    assert sum(h.bucket) == 1000
    (text,) = events.Tensors("notes/text_summary")
    assert text.step == 7 and text.tensor_proto.string_val == [b"lr 1e-3, no warm-up"]


def test_two_writers_of_one_second_keep_both_files(tmp_path):
    for step in (0, 1):  # tensorboardX alone names both files by the same second
        with fx.utils.tensorboard.SummaryWriter(tmp_path) as writer:
            writer.add_scalar("x", float(step), step)
    assert len(list(tmp_path.iterdir())) == 2
    assert [e.step for e in _events(tmp_path).Scalars("x")] == [0, 1]


def test_without_tensorboardx_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.delitem(sys.modules, "fluxion.utils.tensorboard")
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'fluxion\[tensorboard\]'"):
        importlib.import_module("fluxion.utils.tensorboard")
