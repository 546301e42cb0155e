"""Runs that lose nothing: SIGINT or SIGTERM at a random moment of ``train`` (compiling,
stepping, inside AdamW.step, writing a row, saving, evaluating), then a resume, give the
files of a run never interrupted, to the byte; a NaN loss stops the run and keeps the last
good checkpoint. The long campaign (hundreds of trials, kill -9, real processes) is
``bench/faults.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from fluxion.tasks import load_checkpoint, make_config, train
from fluxion.tasks.loop import TIMING, Diverged, Interrupted, read_metrics

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tasks"))
from tasks_testing import shrink  # noqa: E402

SETTINGS = dict(steps=8, batch_size=8, d_model=16, heads=2, layers=1, eval_every=3)
SETTINGS.update(schedule="cosine", warmup=2)


@pytest.fixture(autouse=True)
def _small(monkeypatch):
    shrink(monkeypatch)


def _train(out, eager, resume=None, **overrides):
    config = resume.config if resume else make_config("classify", **{**SETTINGS, **overrides})
    return train(
        config, out, resume=resume, eager=eager, progress=False, tensorboard=False,
        echo=lambda s: None,
    )  # fmt: skip


def files(out) -> dict:
    """What a run leaves: the checkpoint's and eval.json's bytes, the rows without timings."""
    rows = [
        {k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(out / "metrics.jsonl")
    ]
    return {
        "checkpoint": (out / "checkpoint.safetensors").read_bytes(),
        "eval": (out / "eval.json").read_bytes(),
        "rows": rows,
    }


@pytest.mark.parametrize("eager", [False, True], ids=["compiled", "eager"])
def test_a_signal_at_a_random_moment_then_resume_loses_nothing(tmp_path, eager):
    began = time.perf_counter()
    _train(tmp_path / "reference", eager)
    duration = time.perf_counter() - began
    reference = files(tmp_path / "reference")
    assert [r["step"] for r in reference["rows"]] == [3, 6, 8, 8]
    rng = np.random.default_rng(20 + eager)
    noted: list[int] = []  # a signal that comes before or after train() handles them
    previous = {k: signal.signal(k, lambda s, _: noted.append(s)) for k in (2, 15)}
    outcomes = []
    try:
        for trial in range(3):
            out = tmp_path / f"trial{trial}"
            kind = (signal.SIGINT, signal.SIGTERM)[trial % 2]
            timer = threading.Timer(rng.uniform(0, duration), os.kill, (os.getpid(), kind))
            timer.start()
            try:
                _train(out, eager)
                outcomes.append("finished")
            except Interrupted as e:
                assert e.exit_status == 128 + kind
                outcomes.append(f"stopped after step {e.step}")
                _train(out, eager, resume=load_checkpoint(out / "checkpoint.safetensors"))
            finally:
                timer.cancel()
                timer.join()
            assert files(out) == reference, (trial, outcomes)
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler)
    assert any(o.startswith("stopped") for o in outcomes), outcomes


def test_the_command_exits_143_on_sigterm_and_resumes_exactly(tmp_path):
    """The real thing: `fluxion train` in its own process, SIGTERM once it has begun."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    flags += ["--steps=16", "--no-progress", "--no-tensorboard", "--eager"]
    command = [sys.executable, "-m", "fluxion", "train", "classify", *flags]
    env = {**os.environ, "FLUXION_SMOKE": "0"}
    subprocess.run([*command, "--out", str(tmp_path / "reference")], env=env, check=True,
                   capture_output=True)  # fmt: skip
    child = subprocess.Popen(
        [*command, "--out", str(tmp_path / "cut")], env=env, stdout=subprocess.PIPE, text=True
    )
    assert "parameters" in child.stdout.readline()  # the run has begun: the handler is set
    child.send_signal(signal.SIGTERM)
    rest = child.communicate()[0]
    assert child.returncode == 143, rest
    assert "interrupted: checkpoint at step" in rest
    done = subprocess.run([*command, "--out", str(tmp_path / "cut"), "--resume"], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert files(tmp_path / "cut") == files(tmp_path / "reference")


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("eager", [False, True], ids=["compiled", "eager"])
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, eager):
    """lr 1e30 without clipping: the parameters overflow within a few steps."""
    with pytest.raises(Diverged, match=r"at step \d+") as e:
        _train(tmp_path, eager, lr=1e30, clip=0.0, steps=30, eval_every=1, warmup=0)
    message = str(e.value)
    ck = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert f"checkpoint of step {ck.step}" in message, message
    for tensor in [*ck.model.values(), *ck.optimizer["exp_avg"].values()]:
        assert np.isfinite(tensor.numpy()).all()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows and all(np.isfinite(r["loss"]) for r in rows)
    assert rows[-1]["step"] == ck.step  # every row up to the checkpoint, and none beyond
    assert not (tmp_path / "eval.json").exists()
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["step"] == ck.step
