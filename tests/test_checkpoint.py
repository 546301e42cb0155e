"""Checkpoints: bitwise round trips of every dtype, Modules, optimizer state, and clear
errors for missing, truncated, corrupted and foreign files."""

from __future__ import annotations

import json
import os
import pickle
import struct
from typing import NamedTuple

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import fluxion as fx
from fluxion.errors import CheckpointError, FluxionError
from fluxion.nn.module import Module, Parameter
from fluxion.serialization import CheckpointNotFoundError


class Point(NamedTuple):
    x: float
    y: float


DTYPES = [
    np.bool_, np.uint8, np.uint32, np.int8, np.int16, np.int32, np.int64,
    np.float16, ml_dtypes.bfloat16, np.float32, np.float64,
]  # fmt: skip


def sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    a = (rng.standard_normal(shape) * 100).astype(dtype)
    flat = a.reshape(-1)
    specials = np.array([np.nan, -0.0, np.inf, -np.inf], dtype)[: flat.size]
    flat[: specials.size] = specials
    return a


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def assert_bitwise(t, a):
    assert isinstance(t, fx.Tensor)
    assert t.numpy().dtype == np.dtype(a.dtype) and t.shape == a.shape
    assert bits(t.numpy()) == bits(a)


class Tiny(Module):
    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w = Parameter(fx.tensor(rng.standard_normal((3, 2)).astype(np.float32)))
        self.b = Parameter(fx.tensor(rng.standard_normal(2).astype(np.float32)))
        self.register_buffer("steps", fx.tensor(7))
        self.register_buffer("half", fx.tensor(rng.standard_normal(2)).astype(fx.bfloat16))


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_state_dict_round_trip_is_bitwise_for_every_dtype(dtype, tmp_path):
    sd = {
        "matrix": fx.tensor(sample(dtype, (4, 5))),
        "scalar": fx.tensor(sample(dtype, ())),
        "empty": fx.tensor(np.zeros((0, 3), dtype)),
        "view": fx.tensor(sample(dtype, (3, 4), seed=1)).T,  # non-contiguous source
    }
    path = tmp_path / "sd.safetensors"
    fx.save(sd, path)
    back = fx.load(path)
    assert list(back) == list(sd)  # order kept
    for k in sd:
        assert_bitwise(back[k], sd[k].numpy())
    assert os.listdir(tmp_path) == ["sd.safetensors"]  # no temporary file left behind


def test_file_is_standard_safetensors(tmp_path):
    path = tmp_path / "m.safetensors"
    fx.save({"a": fx.ones((2, 2)), "h": fx.ones(3).astype(fx.bfloat16)}, path)
    loaded = safetensors.torch.load_file(path)  # torch reads it, bfloat16 included
    assert loaded["h"].dtype == torch.bfloat16 and loaded["h"].tolist() == [1.0, 1.0, 1.0]
    assert loaded["a"].dtype == torch.float32
    # and fluxion reads plain safetensors files (e.g. pretrained weights) as flat dicts
    other = tmp_path / "plain.safetensors"
    safetensors.torch.save_file(
        {"x": torch.arange(4, dtype=torch.bfloat16), "y": torch.ones(2, dtype=torch.int32)}, other
    )
    plain = fx.load(other)
    assert plain["x"].dtype == fx.bfloat16 and plain["x"].tolist() == [0.0, 1.0, 2.0, 3.0]
    safetensors.numpy.save_file({"z": np.arange(3.0)}, other)
    assert fx.load(other)["z"].tolist() == [0.0, 1.0, 2.0]


def test_module_round_trip(tmp_path):
    model = Tiny(seed=0)
    path = tmp_path / "model.safetensors"
    fx.save(model, path)
    sd = fx.load(path)
    assert list(sd) == list(model.state_dict()) == ["w", "b", "steps", "half"]
    other = Tiny(seed=1)
    other.load_state_dict(sd)
    for k, v in model.state_dict().items():
        assert_bitwise(other.state_dict()[k], v.numpy())
    assert isinstance(other.w, Parameter)


def test_nested_objects_round_trip(tmp_path):
    obj = {
        "state": {0: {"step": 3, "exp_avg": fx.ones(2)}, 1: {"step": 4}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "amsgrad": False, "params": [0, 1]}],
        "notes": ["a", None, 2.5, True, float("inf")],
        "opt": fx.optim.adam_init({"w": fx.ones(2), "n": fx.tensor(1)}),
    }
    path = tmp_path / "nested.safetensors"
    fx.save(obj, path)
    back = fx.load(path)
    assert back["state"][1] == {"step": 4} and back["state"][0]["step"] == 3
    assert back["param_groups"] == obj["param_groups"]
    assert isinstance(back["param_groups"][0]["betas"], tuple)
    assert back["notes"] == obj["notes"]
    assert isinstance(back["opt"], fx.optim.AdamState) and back["opt"].max_exp_avg_sq is None
    assert (
        back["opt"].exp_avg[0] is None
    )  # "n" (sorted first) is an int and back["opt"].step.dtype == fx.int32
    assert_bitwise(back["state"][0]["exp_avg"], np.ones(2, np.float32))
    # the tensors sit in the file under their dotted paths
    assert "state.0.exp_avg" in safetensors.numpy.load_file(path)


def test_optimizer_state_round_trip(tmp_path):
    model = Tiny()
    opt = fx.optim.AdamW(model, lr=1e-2, amsgrad=True)
    for _ in range(3):
        model.zero_grad()
        fx.sum((fx.ones((4, 3)) @ model.w + model.b) ** 2).backward()
        opt.step()
    fx.save(opt, tmp_path / "opt.safetensors")  # an optimizer is saved as its state_dict()
    back = fx.load(tmp_path / "opt.safetensors")
    sd = opt.state_dict()
    assert back["param_groups"] == sd["param_groups"] and back["step_count"] == 3
    assert back["state"].keys() == sd["state"].keys()
    for i, entry in sd["state"].items():
        assert back["state"][i]["step"] == entry["step"] == 3
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert_bitwise(back["state"][i][k], entry[k].numpy())
    fresh = fx.optim.AdamW(Tiny(), lr=1e-2, amsgrad=True)
    fresh.load_state_dict(back)
    assert fresh.state_dict()["param_groups"] == sd["param_groups"]


# ----------------------------------------------------------------------------- errors


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    fx.save({"w": fx.tensor(np.arange(64, dtype=np.float32)), "b": fx.ones(4)}, path)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="no such file") as e:
        fx.load(tmp_path / "nope.safetensors")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, CheckpointError)
    with pytest.raises(CheckpointError, match="directory"):
        fx.load(tmp_path)


def test_truncated_files(good_file):
    data = good_file.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    for cut in [0, 3, 8, 8 + n // 2, 8 + n, len(data) - 1]:
        good_file.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated|not a safetensors"):
            fx.load(good_file)


def test_corrupted_data_and_header(good_file):
    data = bytearray(good_file.read_bytes())
    flipped = bytearray(data)
    flipped[-5] ^= 0x10  # one bit in the tensor data
    good_file.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum"):
        fx.load(good_file)
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["fluxion"])
    meta["tree"] = {"dict": [["w", {"tensor": "missing"}]]}
    header["__metadata__"]["fluxion"] = json.dumps(meta)
    for bad_header in [
        data[8 : 8 + n].replace(b'{"', b"{x", 1),  # not JSON any more
        data[8 : 8 + n].replace(b'"F32"', b'"X32"'),  # an unknown dtype
    ]:
        good_file.write_bytes(data[:8] + bad_header.ljust(n) + data[8 + n :])
        with pytest.raises(CheckpointError):
            fx.load(good_file)
    text = json.dumps(header).encode()  # a well-formed header, rewritten: no checksum fits it
    good_file.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n :])
    with pytest.raises(CheckpointError, match="corrupted"):
        fx.load(good_file)


def test_foreign_files(tmp_path):
    path = tmp_path / "x.ckpt"
    for content in [
        b"",
        b"hello, this is a text file and not a checkpoint\n",
        pickle.dumps({"w": [1.0, 2.0]}),
        os.urandom(256),
    ]:
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match="not a safetensors|truncated"):
            fx.load(path)
    torch.save({"w": torch.ones(2)}, path)  # a torch (zip + pickle) checkpoint
    with pytest.raises(CheckpointError, match="not a safetensors"):
        fx.load(path)


def test_failed_load_leaves_the_model_untouched(good_file, tmp_path):
    model = Tiny(seed=0)
    path = tmp_path / "model.safetensors"
    fx.save(Tiny(seed=1), path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError):
        model.load_state_dict(fx.load(path))
    for k, v in model.state_dict().items():
        assert bits(v.numpy()) == bits(before[k])


def test_unsupported_objects_and_failed_save_keep_old_file(good_file):
    for bad in [
        {"f": lambda x: x},
        {("tuple", "key"): fx.ones(1)},
        {"obj": object()},
        {"nt": os.stat_result(range(10))},
        {"point": Point(1.0, 2.0)},  # a NamedTuple from outside fluxion
    ]:
        with pytest.raises(CheckpointError):
            fx.save(bad, good_file)
    assert fx.load(good_file)["b"].tolist() == [1.0] * 4  # still the old, intact checkpoint
    assert issubclass(CheckpointError, FluxionError) and issubclass(CheckpointError, ValueError)


def test_fx_checkpoint_is_gradient_checkpointing():
    # save/load live in fluxion.serialization; fx.checkpoint is rematerialization
    f = fx.checkpoint(lambda x: fx.sin(x) * 2.0)
    assert float(fx.grad(f)(fx.tensor(0.0))) == 2.0
    assert (
        fx.save.__module__ == "fluxion.serialization"
        and fx.load.__module__ == "fluxion.serialization"
    )


@pytest.mark.parametrize("dtype", [fx.float32, fx.bfloat16, fx.float16, fx.float64])
def test_nn_model_round_trip(dtype, tmp_path):
    fx.manual_seed(0)
    make = lambda: fx.nn.Sequential(
        fx.nn.Embedding(10, 8), fx.nn.LayerNorm(8), fx.nn.Linear(8, 3)
    ).to(dtype)
    model = make()
    fx.save(model, tmp_path / "model.safetensors")
    fresh = make()
    fresh.load_state_dict(fx.load(tmp_path / "model.safetensors"))
    assert list(fresh.state_dict()) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert_bitwise(fresh.state_dict()[k], v.numpy())
    tokens = fx.tensor([[1, 2, 3]])
    assert bits(fresh(tokens).numpy()) == bits(model(tokens).numpy())
