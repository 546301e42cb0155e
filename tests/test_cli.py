"""The ``fluxion`` command, run in-process through ``main([...])`` on tiny settings."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import platform
import subprocess
import sys

import numpy as np
import pytest

import fluxion
from fluxion.cli.main import COMMANDS, EXTRAS, TASK_NAMES, main
from fluxion.compiler.native import toolchain
from fluxion.tasks import TASKS, TrainConfig
from fluxion.tasks.addition import Addition
from fluxion.tasks.classify import Classify
from fluxion.tasks.difference import Difference
from fluxion.tasks.gpt import CharGPT

ROOT = pathlib.Path(__file__).resolve().parents[1]
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


# ------------------------------------------------------------------ TensorBoard


def _tensorboard_points(folder) -> dict[str, list[tuple[int, float, float]]]:
    """``{tag: [(step, wall time, value)]}`` of the event files under ``folder``, read by
    TensorBoard's own loader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep all
    events.Reload()
    return {
        tag: [(e.step, e.wall_time, e.value) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def _metrics_points(rows) -> dict[str, list[tuple[int, float, float]]]:
    """The same, expected from rows of metrics.jsonl (TensorBoard keeps float32 values)."""
    points: dict[str, list] = {}
    for row in rows:
        prefix = "final/" if row.get("final") else ""
        for key, value in row.items():
            if key in ("step", "time", "final") or isinstance(value, str):
                continue
            point = (row["step"], row["time"], float(np.float32(value)))
            points.setdefault(prefix + key, []).append(point)
    return points


def _rows(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("task", TASK_NAMES)
def test_train_writes_every_metrics_point_to_tensorboard(runs, task):
    points = _tensorboard_points(runs[task] / "tensorboard")
    expected = _metrics_points(_rows(runs[task]))
    assert {"loss", "lr", "steps_per_s"} <= set(expected)
    assert any(tag.startswith("final/") for tag in expected)
    assert points == expected


def test_resumed_runs_continue_their_tensorboard_curves(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["train", "classify", *TINY, "--out", str(out)]
    assert main(base) == 0  # steps 2, 4 and the final evaluation at 4
    at_4 = (out / "checkpoint.safetensors").read_bytes()
    assert main([*base, "--steps", "6", "--resume"]) == 0  # 6, final at 6
    assert _tensorboard_points(out / "tensorboard") == _metrics_points(_rows(out))
    # back to the checkpoint of step 4: the points at 6 are orphans now, to be dropped
    (out / "checkpoint.safetensors").write_bytes(at_4)
    assert main([*base, "--steps", "8", "--resume"]) == 0
    rows = _rows(out)
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 8]
    assert len(list((out / "tensorboard").iterdir())) == 1
    assert _tensorboard_points(out / "tensorboard") == _metrics_points(rows)
    # a fresh run in the folder starts the curves afresh, as metrics.jsonl
    assert main(base) == 0
    assert _tensorboard_points(out / "tensorboard") == _metrics_points(_rows(out))
    capsys.readouterr()


def test_no_tensorboard_and_a_missing_tensorboardx(tmp_path, capsys, monkeypatch):
    out = tmp_path / "off"
    assert main(["train", "classify", *TINY, "--out", str(out), "--no-tensorboard"]) == 0
    assert not (out / "tensorboard").exists()
    assert "tensorboard skipped" not in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import tensorboardX now fails
    monkeypatch.delitem(sys.modules, "fluxion.utils.tensorboard", raising=False)
    out = tmp_path / "missing"
    assert main(["train", "classify", *TINY, "--out", str(out)]) == 0
    assert not (out / "tensorboard").exists()
    assert "pip install 'fluxion[tensorboard]'" in capsys.readouterr().out


# ------------------------------------------------------------------ help, version, info


def _option_help(text: str) -> dict[str, str]:
    """``{flag: its help, on one line}`` from an argparse help page."""
    entries: dict[str, str] = {}
    flag = None
    for line in text.splitlines():
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            if flag == "-h":
                flag = "--help"
            entries[flag] = line
        elif flag and line.startswith("    "):
            entries[flag] += " " + line
        else:
            flag = None
    return {f: " ".join(h.split()) for f, h in entries.items()}


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def _task_defaults(task: str) -> dict:
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return {**fields, **TASKS[task].defaults}


def test_every_option_explains_itself_and_shows_its_default(capsys):
    for name, command in COMMANDS.items():
        text = _option_help(_help(capsys, name))
        for flags, spec in command.args:
            flag = flags[-1]
            if not flag.startswith("-"):
                continue  # a positional
            help_text = text[flag].split(None, 1)[1]
            assert len(help_text) > 12, (name, flag, help_text)  # more than a metavar
            if spec.get("default") is not None:
                assert help_text.endswith(f"(default: {spec['default']})"), (name, flag)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_train_help_shows_the_tasks_own_defaults(capsys, task):
    text = _option_help(_help(capsys, "train", task))
    defaults = _task_defaults(task)
    for name, value in defaults.items():
        if name in ("task", "text"):
            continue
        flag = "--" + name.replace("_", "-")
        assert text[flag].endswith(f"(default: {value})"), (flag, text[flag])
    assert "Python source of the standard library" in text["--text"]


def test_train_help_without_a_task_shows_every_tasks_defaults(capsys):
    text = _option_help(_help(capsys, "train"))
    steps = ", ".join(f"{t} {_task_defaults(t)['steps']}" for t in TASK_NAMES)
    assert text["--steps"].endswith(f"(default: {steps})")
    assert text["--heads"].endswith("(default: 4)")  # the same for every task: one value


def test_version(capsys):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert capsys.readouterr().out == f"fluxion {project['version']}\n"
    assert fluxion.__version__ == project["version"]


def test_info_tells_the_whole_setup(capsys, tmp_path, monkeypatch):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    (tmp_path / "kernels").mkdir(mode=0o700)
    (tmp_path / "kernels" / "a.so").write_bytes(b"x" * 2**20)
    (tmp_path / "kernels" / "b.so").write_bytes(b"x" * 2**19)
    (tmp_path / "notes.txt").write_bytes(b"x" * 2**19)  # not the cache's: not counted
    monkeypatch.setenv("FLUXION_CACHE_DIR", str(tmp_path))
    assert main(["info"]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        key, value = line.split("  ", 1)
        rows[key.strip()] = value.strip()
    assert rows["python"].startswith(platform.python_version())
    assert rows["numpy"] == np.__version__
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    assert blas["version"] in rows["BLAS"] and "threads" in rows["BLAS"]
    compiler = toolchain._compiler()
    if compiler is None:
        assert rows["native kernels"].startswith("off")
    else:
        assert rows["native kernels"].startswith(f"on: {compiler} (")
        assert rows["native kernels"].endswith(" ".join(toolchain.FLAGS))
    assert rows["kernel cache"].startswith(f"{tmp_path} (2 files, 1.5 MiB")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    assert set(EXTRAS) == set(extras) - {"test"}
    for extra, packages in EXTRAS.items():
        assert all(any(p in need for need in extras[extra]) for p in packages)
        assert all(p in rows[f"[{extra}]"] for p in packages)
    assert rows["devices"] == "cpu(0)"


def test_info_says_why_native_kernels_are_off():
    env = {**os.environ, "FLUXION_NATIVE_KERNELS": "0", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "fluxion", "info"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "native kernels  off (FLUXION_NATIVE_KERNELS=0)" in run.stdout


def test_errors_speak_the_command_line(tmp_path, capsys):
    args = ["train", "gpt", "--text", str(tmp_path / "my_corpus.txt"), "--steps", "2"]
    assert main(args) == 2
    line = _error_line(capsys)
    assert "--text" in line and "my_corpus.txt" in line and "text_file" not in line


# ------------------------------------------------------------------ FLUXION_SMOKE


def test_smoke_runs_shrink_steps_sizes_and_data(tmp_path, monkeypatch, capsys):
    from fluxion.tasks import load_checkpoint

    monkeypatch.setenv("FLUXION_SMOKE", "1")
    out = str(tmp_path / "d")
    assert main(["train", "difference", "--out", out, "--no-progress"]) == 0
    defaults = _task_defaults("difference")
    steps, every = math.ceil(defaults["steps"] / 250), math.ceil(defaults["eval_every"] / 250)
    rows = _rows(tmp_path / "d")
    assert [r["step"] for r in rows] == [*range(every, steps + 1, every), steps]
    config = load_checkpoint(out + "/checkpoint.safetensors").config
    assert (config.d_model, config.heads, config.layers, config.batch_size) == (16, 2, 1, 8)
    assert "held-out" in capsys.readouterr().out
    assert main(["train", "difference", "--out", out, "--steps", "3000", "--resume"]) == 0
    assert _rows(tmp_path / "d")[-1]["step"] == 3000 // 250
