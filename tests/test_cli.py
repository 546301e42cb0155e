"""The ``fluxion`` command, run in-process through ``main([...])`` on tiny settings."""

from __future__ import annotations

import json

import pytest

from fluxion.cli.main import TASK_NAMES, main
from fluxion.tasks import TASKS
from fluxion.tasks.addition import Addition
from fluxion.tasks.classify import Classify
from fluxion.tasks.difference import Difference
from fluxion.tasks.gpt import CharGPT

TINY = [
    "--steps", "4", "--batch-size", "8", "--d-model", "16", "--heads", "2", "--layers", "1",
    "--eval-every", "2", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each task trained once for 4 steps; the eval/generate tests share the checkpoints."""
    mp = pytest.MonkeyPatch()
    for cls, attr, value in [
        (Classify, "train_size", 64),
        (Classify, "eval_lengths", (6, 8, 10)),
        (Difference, "train_size", 300),
        (Difference, "val_size", 100),
        (Difference, "test_size", 100),
        (Addition, "quick_per_length", 2),
        (Addition, "full_per_length", 4),
        (CharGPT, "val_batches", 2),
        (CharGPT, "val_batch_size", 8),
    ]:
        mp.setattr(cls, attr, value)
    root = tmp_path_factory.mktemp("runs")
    text = root / "corpus.txt"
    text.write_text("def add(a, b):\n    return a + b\n\nclass Point:\n    x = 0\n" * 40)
    out = {}
    for task in TASK_NAMES:
        out[task] = root / task
        extra = ["--context", "16", "--text", str(text)] if task == "gpt" else []
        assert main(["train", task, *TINY, *extra, "--out", str(out[task])]) == 0
    yield out
    mp.undo()


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def test_task_names_match_the_registry():
    assert sorted(TASK_NAMES) == sorted(TASKS)


def test_info_runs(capsys):
    assert main(["info"]) == 0
    assert "fluxion" in capsys.readouterr().out


def test_demo_compares_both_paradigms(capsys):
    assert main(["demo", "--steps", "10", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "imperative loss" in out and "compiled loss" in out
    assert "first call (trace+compile)" in out
    assert "CompilationStats(hits=9, misses=1" in out


@pytest.mark.parametrize("task", TASK_NAMES)
def test_train_writes_every_output(runs, task):
    folder = runs[task]
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 4] and rows[-1]["final"]
    assert (folder / "checkpoint.safetensors").exists()
    assert (folder / "eval.json").exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (folder / "curves.png").exists()
    assert (folder / "accuracy_by_length.png").exists() == (task != "gpt")


def test_train_shows_a_progress_bar(tmp_path, capsys, runs):
    args = [a for a in TINY if a != "--no-progress"]
    assert main(["train", "classify", *args, "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "step/s" in captured.err and "loss=" in captured.err


@pytest.mark.parametrize("task", ["classify", "difference", "addition"])
def test_eval_reports_accuracy_by_length(runs, task, capsys):
    assert main(["eval", "--checkpoint", str(runs[task] / "checkpoint.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "length" in out and " in" in out and "OUT" in out


def test_eval_gpt_reports_the_unigram_baseline(runs, capsys):
    assert main(["eval", "--checkpoint", str(runs["gpt"])]) == 0  # a folder works too
    assert "unigram baseline" in capsys.readouterr().out


def test_generate_gpt_continues_the_prompt(runs, capsys):
    ckpt = str(runs["gpt"] / "checkpoint.safetensors")
    assert (
        main(["generate", "--checkpoint", ckpt, "--prompt", "def ", "--max-new-tokens", "30"]) == 0
    )
    assert capsys.readouterr().out.startswith("def ")
    for flag in ("--beam", "--best-of"):
        args = ["--prompt", "def ", "--max-new-tokens", "6", flag, "2"]
        assert main(["generate", "--checkpoint", ckpt, *args]) == 0
        assert capsys.readouterr().out.startswith("def ")


def test_generate_addition_answers_unreversed(runs, capsys):
    ckpt = str(runs["addition"] / "checkpoint.safetensors")
    assert main(["generate", "--checkpoint", ckpt, "--prompt", "12+345"]) == 0
    assert capsys.readouterr().out.startswith("12+345 = ")
    assert main(["generate", "--checkpoint", ckpt, "--prompt", "12+345", "--beam", "2"]) == 0
    assert capsys.readouterr().out.count("12+345 = ") == 2


def test_resume_continues_the_run(runs, tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["train", "classify", *TINY, "--out", out]) == 0
    args = ["train", "classify", "--steps", "6", "--out", out, "--resume", "--no-progress"]
    assert main(args) == 0
    assert "steps 4..6" in capsys.readouterr().out


# ------------------------------------------------------------------ errors


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "none.safetensors")]) == 2
    assert "no checkpoint" in _error_line(capsys)


def test_corrupted_checkpoint(runs, tmp_path, capsys):
    data = bytearray((runs["classify"] / "checkpoint.safetensors").read_bytes())
    data[-3] ^= 0xFF
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    assert main(["eval", "--checkpoint", str(bad)]) == 2
    assert "corrupted" in _error_line(capsys)
    bad.write_bytes(b"not a checkpoint")
    assert main(["generate", "--checkpoint", str(bad), "--prompt", "x"]) == 2
    _error_line(capsys)


def test_unknown_task_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "sorting"])
    assert e.value.code == 2
    assert "invalid choice: 'sorting'" in capsys.readouterr().err


def test_prompt_outside_the_vocabulary(runs, capsys):
    ckpt = str(runs["gpt"] / "checkpoint.safetensors")
    assert main(["generate", "--checkpoint", ckpt, "--prompt", "déf"]) == 2
    assert "'é'" in _error_line(capsys)
    ckpt = str(runs["addition"] / "checkpoint.safetensors")
    assert main(["generate", "--checkpoint", ckpt, "--prompt", "12-3"]) == 2
    assert "12+345" in _error_line(capsys)


def test_resume_without_a_checkpoint(tmp_path, capsys):
    assert main(["train", "classify", "--resume", "--out", str(tmp_path)]) == 2
    assert "no checkpoint" in _error_line(capsys)


def test_resume_keeps_the_configuration(runs, capsys):
    args = ["train", "classify", "--resume", "--out", str(runs["classify"]), "--lr", "0.5"]
    assert main(args) == 2
    assert "--lr 0.5 differs" in _error_line(capsys)


def test_resume_of_another_task(runs, capsys):
    assert main(["train", "gpt", "--resume", "--out", str(runs["classify"])]) == 2
    assert "holds a 'classify' run" in _error_line(capsys)
