"""Every bad flag of the CLI, through ``main()`` in-process: exit status 2 and one line that
names the flag, its value and what is accepted; an output folder that cannot be written, or
fills up, exits with 1 in one line and loses nothing already saved."""

from __future__ import annotations

import os
import resource

import pytest

from fluxion.cli.main import main
from fluxion.tasks import load_checkpoint
from fluxion.tasks.loop import read_metrics

TINY = ["--steps", "4", "--batch-size", "8", "--d-model", "16", "--heads", "2", "--layers", "1",
        "--eval-every", "2", "--no-progress", "--no-tensorboard"]  # fmt: skip

# (flags, the flag named, the value shown, words of what is accepted)
TRAIN = [
    (["--lr", "inf"], "--lr", "inf", "finite number > 0"),
    (["--lr", "nan"], "--lr", "nan", "finite number > 0"),
    (["--lr", "-1"], "--lr", "-1", "> 0"),
    (["--lr", "0"], "--lr", "0", "> 0"),
    (["--lr", "fast"], "--lr", "fast", "float"),
    (["--seed", "-1"], "--seed", "-1", ">= 0"),
    (["--seed", str(2**64)], "--seed", str(2**64), "2**64"),
    (["--seed", "1.5"], "--seed", "1.5", "int"),
    (["--clip", "-1"], "--clip", "-1", ">= 0"),
    (["--clip", "nan"], "--clip", "nan", ">= 0"),
    (["--steps", "0"], "--steps", "0", ">= 1"),
    (["--steps", "-3"], "--steps", "-3", ">= 1"),
    (["--steps", "2.5"], "--steps", "2.5", "an int"),
    (["--batch-size", "0"], "--batch-size", "0", ">= 1"),
    (["--dropout", "1"], "--dropout", "1", "[0, 1)"),
    (["--dropout", "-0.1"], "--dropout", "-0.1", "[0, 1)"),
    (["--dropout", "nan"], "--dropout", "nan", "[0, 1)"),
    (["--weight-decay", "-1"], "--weight-decay", "-1", ">= 0"),
    (["--weight-decay", "inf"], "--weight-decay", "inf", "finite"),
    (["--warmup", "-1"], "--warmup", "-1", "[0, steps"),
    (["--warmup", "9"], "--warmup", "9", "[0, steps=4]"),
    (["--ff", "-1"], "--ff", "-1", ">= 0"),
    (["--d-model", "0"], "--d-model", "0", ">= 1"),
    (["--heads", "3"], "--heads", "3", "multiple"),
    (["--eval-every", "0"], "--eval-every", "0", ">= 1"),
    (["--layers", "x"], "--layers", "x", "an int"),
    (["--schedule", "linear"], "--schedule", "linear", "constant"),
    (["--pos", "alibi"], "--pos", "alibi", "rope"),
]
GENERATE = [
    (["--temperature", "nan"], "--temperature", "nan", ">= 0"),
    (["--temperature", "-1"], "--temperature", "-1", ">= 0"),
    (["--temperature", "inf"], "--temperature", "inf", "finite"),
    (["--top-p", "0"], "--top-p", "0", "(0, 1]"),
    (["--top-p", "1.5"], "--top-p", "1.5", "(0, 1]"),
    (["--top-p", "nan"], "--top-p", "nan", "(0, 1]"),
    (["--top-k", "0"], "--top-k", "0", ">= 1"),
    (["--max-new-tokens", "0"], "--max-new-tokens", "0", ">= 1"),
    (["--beam", "-2"], "--beam", "-2", ">= 1"),
    (["--best-of", "0"], "--best-of", "0", ">= 1"),
    (["--seed", "-1"], "--seed", "-1", ">= 0"),
]


def _run(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own exit, for flags it checks itself
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return code, err[0]


@pytest.mark.parametrize(
    "flags, flag, value, accepted", TRAIN, ids=[" ".join(f) for f, *_ in TRAIN]
)
def test_a_bad_train_flag(tmp_path, capsys, flags, flag, value, accepted):
    code, line = _run(["train", "classify", *TINY, *flags, "--out", str(tmp_path)], capsys)
    assert code == 2 and "error:" in line, line
    assert flag in line and value in line and accepted in line, line
    assert not os.listdir(tmp_path)  # nothing started


@pytest.mark.parametrize(
    "flags, flag, value, accepted", GENERATE, ids=[" ".join(f) for f, *_ in GENERATE]
)
def test_a_bad_generate_flag(tmp_path, capsys, flags, flag, value, accepted):
    argv = ["generate", "--checkpoint", str(tmp_path / "none"), "--prompt", "a", *flags]
    code, line = _run(argv, capsys)
    assert code == 2 and "error:" in line, line
    assert flag in line and value in line and accepted in line, line


@pytest.mark.parametrize("where", ["/proc/x", "a file"])
def test_an_output_folder_that_cannot_be_written(tmp_path, capsys, where):
    if where == "a file":
        where = tmp_path / "file"
        where.write_text("mine")
    code, line = _run(["train", "classify", *TINY, "--out", str(where)], capsys)
    assert code == 1 and line.startswith("error: ") and str(where) in line, line
    assert "no checkpoint was written" in line, line
    if where != "/proc/x":
        assert where.read_text() == "mine"


def test_a_full_disk_loses_nothing_already_saved(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "classify", *TINY, "--out", str(out)]) == 0
    checkpoint = out / "checkpoint.safetensors"
    saved, rows = checkpoint.read_bytes(), read_metrics(out / "metrics.jsonl", upto=4)
    capsys.readouterr()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(saved) - 100, hard))  # no room for one more
    try:
        code, line = _run(["train", "classify", "--steps", "6", "--resume", "--out", str(out),
                           "--no-progress", "--no-tensorboard"], capsys)  # fmt: skip
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert code == 1 and line.startswith("error: ") and "File too large" in line, line
    assert "checkpoint of step 4" in line and "intact" in line, line
    assert checkpoint.read_bytes() == saved and load_checkpoint(checkpoint).step == 4
    assert read_metrics(out / "metrics.jsonl", upto=4) == rows
    assert sorted(os.listdir(out)) == sorted(
        n for n in os.listdir(out) if not n.endswith(".fluxion-tmp")
    )
    assert main(["train", "classify", "--steps", "6", "--resume", "--out", str(out),
                 "--no-progress", "--no-tensorboard"]) == 0  # fmt: skip
    assert load_checkpoint(checkpoint).step == 6
