"""The task recipes and the shared loop: configs, schedules, checkpoints, bit-exact resume."""

from __future__ import annotations

import json
import math
import os
import signal
import sys

import numpy as np
import pytest
from tasks_testing import TINY, shrink, text_file

import fluxion as fx
from fluxion.errors import CheckpointError
from fluxion.tasks import TASKS, TaskError, load_checkpoint, make_config, train
from fluxion.tasks import plots as plots_module
from fluxion.tasks.loop import lr_schedule, read_metrics


@pytest.fixture(autouse=True)
def _small(monkeypatch):
    shrink(monkeypatch)


def _train(task, out, resume=None, eager=False, **overrides):
    config = make_config(task, **{**TINY, "schedule": "constant", **overrides})
    return train(config, out, resume=resume, eager=eager, progress=False, echo=lambda s: None)


def _params(path) -> dict[str, np.ndarray]:
    ck = load_checkpoint(path)
    out = {f"model.{k}": v.numpy() for k, v in ck.model.items()}
    for kind in ("exp_avg", "exp_avg_sq"):
        out.update({f"{kind}.{k}": v.numpy() for k, v in ck.optimizer[kind].items()})
    return out


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ------------------------------------------------------------------ configuration


def test_registry_has_the_four_tasks():
    assert sorted(TASKS) == ["addition", "classify", "difference", "gpt"]


def test_make_config_applies_defaults_and_overrides():
    config = make_config("addition", lr=5e-4)
    assert config.lr == 5e-4
    assert config.d_model == TASKS["addition"].defaults["d_model"]
    assert config.dim_feedforward == 4 * config.d_model


def test_short_runs_shrink_the_default_warmup():
    assert make_config("addition", steps=10).warmup == 1


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"d_model": 30, "heads": 4}, "multiple of --heads"),
        ({"warmup": 50, "steps": 10}, "--warmup"),
        ({"lr": -1.0}, "--lr"),
        ({"text": "corpus.txt"}, "--text is the corpus of the gpt task"),
    ],
)
def test_bad_configs_name_the_option(overrides, words):
    with pytest.raises(TaskError, match=words):
        make_config("classify", **overrides)


def test_unknown_task():
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        make_config("nope")


def test_lr_schedule_warmup_then_cosine():
    config = make_config("classify", steps=100, warmup=10, lr=1.0, schedule="cosine")
    lr = lr_schedule(config)
    assert lr(0) == pytest.approx(0.1)
    assert lr(10) == pytest.approx(1.0)
    assert lr(100) == pytest.approx(0.1)
    assert lr(55) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * 0.5)) / 2)
    constant = lr_schedule(make_config("classify", steps=100, warmup=0, schedule="constant"))
    assert constant(0) == constant(99) == TASKS["classify"].defaults["lr"]


# ------------------------------------------------------------------ the loop


def test_training_writes_metrics_eval_and_checkpoint(tmp_path):
    result = _train("classify", tmp_path)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 4]
    assert rows[-1]["final"] is True
    for row in rows[:-1]:
        assert {"loss", "accuracy", "lr", "steps_per_s", "val_accuracy"} <= row.keys()
    final = json.loads((tmp_path / "eval.json").read_text())
    assert set(final["accuracy_by_length"]) == {"6", "8", "10"}
    ck = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert ck.step == 4 and ck.config.task == "classify" and ck.optimizer["step"] == 4
    assert result.stats.misses == 1 and result.stats.hits == 3


def test_eager_and_compiled_agree(tmp_path):
    compiled = _train("classify", tmp_path / "c", steps=3)
    eager = _train("classify", tmp_path / "e", steps=3, eager=True)
    for a, b in zip(compiled.rows, eager.rows):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    a = _params(tmp_path / "c" / "checkpoint.safetensors")
    b = _params(tmp_path / "e" / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    # Rounding differs (fused compiled code vs eager ops): the parameters agree to a
    # fraction of one step, except the key bias, whose gradient is zero in exact arithmetic
    # (softmax ignores a shift): Adam turns its rounding noise into steps of up to lr, so
    # the two runs' key biases may differ by up to 2 lr a step.
    step = TASKS["classify"].defaults["lr"]
    for k in a:
        if not k.startswith("model."):
            continue
        x, y = a[k], b[k]
        if k.endswith("attn.in_proj_bias"):  # [query | key | value]
            d = x.shape[0] // 3
            assert np.abs(x[d : 2 * d] - y[d : 2 * d]).max() <= 2 * 3 * step, k
            x, y = np.delete(x, np.s_[d : 2 * d]), np.delete(y, np.s_[d : 2 * d])
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=0.1 * step, err_msg=k)


@pytest.mark.parametrize(
    "task, eager", [("classify", False), ("classify", True), ("addition", False)]
)
def test_resume_is_bit_exact(tmp_path, task, eager):
    _train(task, tmp_path / "full", steps=6, eager=eager)
    _train(task, tmp_path / "split", steps=3, eager=eager)
    ck = load_checkpoint(tmp_path / "split" / "checkpoint.safetensors")
    ck.config.steps = 6
    _train(task, tmp_path / "split", resume=ck, eager=eager, steps=6)
    _assert_identical(
        _params(tmp_path / "full" / "checkpoint.safetensors"),
        _params(tmp_path / "split" / "checkpoint.safetensors"),
    )
    rows = read_metrics(tmp_path / "split" / "metrics.jsonl")
    assert [r["step"] for r in rows if not r.get("final")] == [2, 3, 4, 6]


@pytest.mark.parametrize("eager, kind", [(False, signal.SIGINT), (True, signal.SIGTERM)])
def test_an_interrupted_run_resumes_bit_exactly(tmp_path, monkeypatch, eager, kind):
    """A signal in the middle of a step (for eager, inside AdamW.step) stops the run at the
    step's end with a checkpoint; resuming it with the same settings (a cosine schedule over
    the whole run) writes the files of the run that was never interrupted."""
    from fluxion.tasks.loop import TIMING, Interrupted

    settings = dict(steps=6, schedule="cosine", warmup=2, eval_every=4, eager=eager)
    _train("classify", tmp_path / "full", **settings)
    step, calls = fx.optim.AdamW.step, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), kind)  # the handler notes it; the step goes on
        return step(self, *args, **kwargs)

    monkeypatch.setattr(fx.optim.AdamW, "step", interrupted)
    if not eager:  # the compiled step has no AdamW: signal inside the runner's step instead
        from fluxion.tasks.loop import CompiledRunner

        runner_step = CompiledRunner.step

        def compiled(self, batch, lr):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), kind)
            return runner_step(self, batch, lr)

        monkeypatch.setattr(CompiledRunner, "step", compiled)
    with pytest.raises(Interrupted) as e:
        _train("classify", tmp_path / "cut", **settings)
    assert e.value.exit_status == 128 + kind and e.value.step == 3
    monkeypatch.setattr(fx.optim.AdamW, "step", step)
    if not eager:
        monkeypatch.setattr(CompiledRunner, "step", runner_step)
    ck = load_checkpoint(tmp_path / "cut" / "checkpoint.safetensors")
    assert ck.step == 3 and len(ck.window) == 3  # the steps since the last row, none lost
    _train("classify", tmp_path / "cut", resume=ck, **settings)
    for name in ("checkpoint.safetensors", "eval.json"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()

    def rows(run):
        return [
            {k: v for k, v in r.items() if k not in TIMING}
            for r in read_metrics(tmp_path / run / "metrics.jsonl")
        ]

    assert rows("cut") == rows("full") and [r["step"] for r in rows("full")] == [4, 6, 6]


def test_checkpoints_move_between_compiled_and_eager(tmp_path):
    _train("classify", tmp_path, steps=2)
    ck = load_checkpoint(tmp_path / "checkpoint.safetensors")
    ck.config.steps = 4
    result = _train("classify", tmp_path, resume=ck, eager=True, steps=4)
    assert result.step == 4


def test_plots_exist_with_matplotlib(tmp_path):
    import matplotlib  # noqa: F401  (in the test extra: the plots are tested, not skipped)

    result = _train("difference", tmp_path)
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert (tmp_path / "accuracy_by_length.png").stat().st_size > 0
    assert str(tmp_path / "curves.png") in result.files


def test_plots_are_skipped_with_a_notice_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setattr(plots_module, "_warned", False)
    lines = []
    config = make_config("classify", **TINY)
    train(config, tmp_path, progress=False, echo=lines.append)
    assert not (tmp_path / "curves.png").exists()
    notice = [line for line in lines if line.startswith("plots skipped")]
    assert notice == ["plots skipped: matplotlib is not installed (pip install 'fluxion[plot]')"]


# ------------------------------------------------------------------ the tasks


def test_every_task_trains_and_evaluates(tmp_path):
    text = text_file(tmp_path)
    for name in TASKS:
        result = _train(name, tmp_path / name, text=text if name == "gpt" else None)
        assert result.step == TINY["steps"]
        assert all(math.isfinite(r["loss"]) for r in result.rows)


def test_addition_targets_stop_at_the_end_marker(tmp_path):
    from fluxion.tasks.addition import Addition

    task = Addition(make_config("addition", **TINY))
    src, tgt = task.train_batch(np.random.default_rng(0))
    assert src.shape == (TINY["batch_size"], 10) and tgt.shape == (TINY["batch_size"], 11)
    end = task.end_id
    for row in tgt:
        n = list(row).index(end)
        assert (row[n + 1 :] == task.tokenizer.pad_id).all()
        assert (row[:n] != task.tokenizer.pad_id).all()


def test_addition_reads_a_normal_problem_and_answers_it_unreversed():
    from fluxion.tasks.addition import Addition

    task = Addition(make_config("addition", **TINY))
    assert task.parse(" 12 + 345 ") == (12, 345)
    ids = task.tokenizer.encode("753#")  # 357 reversed, then the end marker
    assert task._answer(ids) == "357"
    with pytest.raises(TaskError, match="12\\+345"):
        task.parse("12*3")


def test_gpt_samples_beyond_the_context(tmp_path):
    text = text_file(tmp_path)
    config = make_config("gpt", **TINY, text=text)
    from fluxion.tasks.gpt import CharGPT

    task = CharGPT(config)
    fx.manual_seed(0)
    model = task.build_model().eval()
    out = task.sample(model, "def ", 40, seed=1)
    assert out.startswith("def ") and 4 < len(out) <= 44  # sampled specials decode to ""
    assert out == task.sample(model, "def ", 40, seed=1)  # reproducible from the seed


def test_gpt_loss_is_compared_with_the_unigram_baseline(tmp_path):
    result = _train("gpt", tmp_path, text=text_file(tmp_path))
    assert result.final["unigram_loss"] > 0
    # prompts with characters the corpus lacks ("import ": no 'm') are skipped
    assert set(result.final["samples"]) == {"def ", "class "}


# ------------------------------------------------------------------ checkpoint errors


def test_corrupted_checkpoint_is_a_checkpoint_error(tmp_path):
    _train("classify", tmp_path, steps=2)
    path = tmp_path / "checkpoint.safetensors"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(path)


def test_a_plain_safetensors_file_is_not_a_training_checkpoint(tmp_path):
    path = tmp_path / "model.safetensors"
    fx.save(fx.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match="not a fluxion training checkpoint"):
        load_checkpoint(path)
