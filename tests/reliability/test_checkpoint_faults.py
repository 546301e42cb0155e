"""Checkpoints checked to the last byte: every edited byte of the header and a sample of the
data raises CheckpointError; a save killed or refused (full disk) leaves the old file and
nothing else; the file stays standard safetensors."""

from __future__ import annotations

import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import safetensors.numpy

import fluxion as fx
from fluxion import serialization
from fluxion.errors import CheckpointError, PathError


def _model_and_optimizer():
    fx.manual_seed(0)
    model = fx.nn.Sequential(fx.nn.Linear(4, 3), fx.nn.LayerNorm(3))
    optimizer = fx.optim.AdamW(model, lr=0.001)
    fx.sum(model(fx.ones((2, 4)))).backward()
    optimizer.step()
    return model, optimizer


@pytest.fixture
def saved(tmp_path):
    model, optimizer = _model_and_optimizer()
    path = tmp_path / "ck.safetensors"
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    fx.save({**state, "step": 7, "note": "run a"}, path)
    return path


def test_the_file_is_standard_safetensors(saved):
    model, _ = _model_and_optimizer()
    plain = safetensors.numpy.load_file(saved)  # safetensors' own checks pass
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(plain[f"model.{name}"], tensor.numpy())
    back = fx.load(saved)
    assert back["step"] == 7 and back["note"] == "run a"
    assert back["optimizer"]["param_groups"][0]["lr"] == 0.001


def test_every_edited_header_byte_and_sampled_data_byte_is_caught(saved):
    data = saved.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    rng = np.random.default_rng(0)
    positions = list(range(8 + n)) + sorted(rng.choice(range(8 + n, len(data)), 200, False))
    for position in positions:
        edited = bytearray(data)
        edited[position] ^= int(rng.integers(1, 256))  # a different byte, never the same
        saved.write_bytes(bytes(edited))
        with pytest.raises(CheckpointError):
            fx.load(saved)
    saved.write_bytes(data)
    assert fx.load(saved)["step"] == 7
    assert len(positions) > 1000


def test_an_edited_learning_rate_is_caught(saved):
    """The case a per-tensor checksum missed: lr 0.001 edited to 0.009 in the metadata."""
    data = saved.read_bytes()
    lr = b'\\"lr\\", {\\"value\\": 0.001}'
    assert data.count(lr) == 1
    saved.write_bytes(data.replace(lr, lr.replace(b"0.001", b"0.009")))
    with pytest.raises(CheckpointError, match="checksum"):
        fx.load(saved)


def test_files_of_version_1_still_load(tmp_path):
    """Written before the checksum covered the whole file: one CRC per tensor."""
    import zlib

    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    meta = {
        "format": serialization.FORMAT,
        "version": 1,
        "tree": {"dict": [["w", {"tensor": "w"}], ["step", {"value": 3}]]},
        "crc32": {"w": zlib.crc32(w.tobytes())},
    }
    path = tmp_path / "v1.safetensors"
    safetensors.numpy.save_file({"w": w}, path, metadata={"fluxion": json.dumps(meta)})
    back = fx.load(path)
    assert back["step"] == 3 and back["w"].tolist() == w.tolist()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        fx.load(path)


def test_loaded_tensors_map_the_file_copy_on_write(saved):
    before = saved.read_bytes()
    back = fx.load(saved)
    weight = back["model"]["0.weight"].numpy()
    weight[...] = 42.0  # writes to the process's copy of the pages, never to the file
    assert back["model"]["0.weight"].numpy().min() == 42.0  # the tensor's own memory
    assert saved.read_bytes() == before
    assert fx.load(saved)["model"]["0.weight"].numpy().max() < 42.0


# ------------------------------------------------------------------ saves that do not finish

SAVER = """
import os, sys, numpy as np, fluxion as fx
from fluxion import serialization
if sys.argv[2] == "named":  # a filesystem without unnamed temporary files
    serialization._open_unnamed = lambda folder: None
big = {"w": fx.tensor(np.ones(8_000_000, np.float32))}
print("saving", flush=True)
while True:
    fx.save(big, sys.argv[1])
"""


def _kill_while_saving(path, how: str, delay: float) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(path), how], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline() == "saving\n"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_a_killed_save_leaves_the_old_file_and_nothing_else(tmp_path, delay):
    path = tmp_path / "ck.safetensors"
    fx.save({"w": fx.zeros(3)}, path)
    _kill_while_saving(path, "unnamed", delay)
    assert os.listdir(tmp_path) == ["ck.safetensors"]
    w = fx.load(path)["w"].numpy()
    assert w.shape == (3,) or (w.shape == (8_000_000,) and (w == 1).all())


def test_temporaries_of_dead_saves_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "ck.safetensors"
    fx.save({"w": fx.zeros(3)}, path)
    _kill_while_saving(path, "named", 0.3)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    (tmp_path / f".ck.safetensors.{dead}.deadbeef.fluxion-tmp").write_bytes(b"x" * 1000)
    stale = [n for n in os.listdir(tmp_path) if n.endswith(".fluxion-tmp")]
    mine = tmp_path / f".other.{os.getpid()}.0123abcd.fluxion-tmp"  # a live process's: kept
    mine.write_bytes(b"x")
    fx.save({"w": fx.ones(2)}, tmp_path / "other.safetensors")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["ck.safetensors", "other.safetensors", mine.name]
    ), stale
    assert fx.load(path)["w"].numpy().size in (3, 8_000_000)


def test_a_full_disk_keeps_the_old_file(tmp_path):
    """RLIMIT_FSIZE stands for a full disk: the write fails (Python ignores SIGXFSZ)."""
    path = tmp_path / "ck.safetensors"
    fx.save({"w": fx.zeros(3)}, path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        with pytest.raises(PathError, match="cannot write .*unchanged"):
            fx.save({"w": fx.ones(1_000_000)}, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert os.listdir(tmp_path) == ["ck.safetensors"]
    assert fx.load(path)["w"].tolist() == [0.0, 0.0, 0.0]
