"""The README and bench/README.md run as written, and show what they print (so they stay
true for a new user following them line by line).

* Python blocks (```python) run in order in one namespace, a statement at a time.
* Every line of the other fenced blocks is a shell command, and so is inline code that
  starts with ``python `` (the benchmark table's; other inline code names commands in
  prose, such as ``fluxion train TASK``). The commands run in order in one scratch folder
  that looks like the checkout (its top-level entries are linked in, so ``--text
  README.md`` and ``python bench/...`` find their files), with ``FLUXION_SMOKE=1``: every
  training run shrinks to seconds. A command repeated word for word (the README shows
  ``fluxion demo`` twice) runs once.
* A line's comment ``# -> TEXT`` is what it shows: a Python expression's value (``str``),
  what a ``print`` call prints, ``ErrorType: message`` for a statement that raises, or
  what a command prints. ``...`` stands for any text; an empty TEXT means the comment lines
  that follow it. A line without ``# ->`` must just succeed.

The commands that do not run here, each with its reason, are in ``NOT_RUN`` and
``BENCHMARK``; ``SMOKE_OUTPUT`` holds the one output that needs a fully trained model.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md"]
SHELL_BLOCKS = ("", "bash", "sh", "shell", "console")

# command prefix -> why the test does not run it
NOT_RUN = {
    "pip install": "installs packages: CI installs fluxion and its extras before the tests",
    "python -m pytest": "the test suite itself, which runs this test",
    "tensorboard --logdir": "starts a web server that runs until it is stopped",
}
# A benchmark times minutes of work, and so does the array API suite: the script runs
# once with --help instead, so that a moved or broken script fails here.
BENCHMARK = ("python bench/", "python tools/array_api_rate.py")
# what the README shows -> what a smoke run (a few steps of a tiny model) prints instead
SMOKE_OUTPUT = {"12+345 = 357": "12+345 = ..."}  # an untrained model's answer is noise


def _blocks(doc: pathlib.Path) -> list[tuple[str, int, str]]:
    """``(language, first line number, text)`` of each fenced block of ``doc``."""
    text = doc.read_text()
    return [
        (m.group(1), text.count("\n", 0, m.start(2)) + 1, m.group(2))
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)
    ]


def _matches(actual: str, expected: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.strip().split("..."))
    lines = "\n".join(line.rstrip() for line in actual.strip().splitlines())
    return re.fullmatch(pattern, lines, re.S) is not None


def _split_comment(line: str) -> tuple[str, str | None]:
    """``(code, comment)`` of a shell or Python line: the comment starts at a ``#`` outside
    quotes (None: there is none)."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#":
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line, None


def _expected(lines: list[str], i: int) -> str | None:
    """What line ``i`` shows (``# -> ...``), or None when it shows nothing."""
    comment = _split_comment(lines[i])[1]
    if comment is None or not comment.startswith("->"):
        return None
    shown = comment[2:].strip()
    if shown:
        return shown
    following = []
    for line in lines[i + 1 :]:
        if not line.startswith("#"):
            break
        following.append(line[1:].strip())
    return "\n".join(following)


# ------------------------------------------------------------------ Python blocks


def _run_statement(stmt: ast.stmt, namespace: dict, filename: str, raises: bool) -> str:
    """Run one statement; return what it shows: what it prints, its value, or (``raises``:
    it must) its error."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            if isinstance(stmt, ast.Expr):
                value = eval(compile(ast.Expression(stmt.value), filename, "eval"), namespace)
            else:
                exec(compile(ast.Module([stmt], []), filename, "exec"), namespace)
                value = None
    except Exception as e:
        if not raises:
            raise
        return f"{type(e).__name__}: {e}"
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    is_print = isinstance(call, ast.Call) and getattr(call.func, "id", None) == "print"
    return out.getvalue() if is_print or value is None else str(value)


def test_python_blocks_run_and_show_what_they_say(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # they write files (a checkpoint, event files)
    namespace: dict = {}
    checked = 0
    for doc in DOCS:
        for language, first, text in _blocks(doc):
            if language != "python":
                continue
            tree = ast.parse(text)
            ast.increment_lineno(tree, first - 1)
            lines = doc.read_text().splitlines()
            body = tree.body
            for k, stmt in enumerate(body):
                last_on_its_line = k + 1 == len(body) or body[k + 1].lineno > stmt.end_lineno
                expected = _expected(lines, stmt.end_lineno - 1) if last_on_its_line else None
                raises = expected is not None and re.match(r"\w+Error: ", expected) is not None
                shown = _run_statement(stmt, namespace, str(doc), raises)
                if expected is not None:
                    where = f"{doc.name}:{stmt.lineno}"
                    assert _matches(shown, expected), f"{where} shows\n{shown}\nnot\n{expected}"
                    checked += 1
    assert checked >= 5  # the outputs the README shows were found and compared


# ------------------------------------------------------------------ shell commands


def _commands(doc: pathlib.Path) -> list[tuple[int, str, str | None]]:
    """``(line number, command, what it shows)`` of ``doc``, in the order they appear."""
    commands = []
    for language, first, text in _blocks(doc):
        if language not in SHELL_BLOCKS:
            continue
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.strip() and not line.startswith("#"):
                commands.append((first + i, _split_comment(line)[0], _expected(lines, i)))
    # inline code outside the blocks (blanked out, keeping the line numbers)
    prose = re.sub(
        r"^```.*?^```", lambda m: "\n" * m.group().count("\n"), doc.read_text(), flags=re.M | re.S
    )
    for m in re.finditer(r"`(python [^`]+)`", prose):
        commands.append((prose.count("\n", 0, m.start()) + 1, m.group(1), None))
    return sorted(commands, key=lambda c: c[0])


def _checkout(tmp_path: pathlib.Path) -> tuple[pathlib.Path, dict]:
    """A scratch folder that looks like the checkout, and the environment to run it in:
    ``fluxion`` and ``python`` are this interpreter with this checkout's fluxion."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    for entry in ROOT.iterdir():
        if not entry.name.startswith(".") and entry.name != "runs":
            (folder / entry.name).symlink_to(entry)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, run in (("fluxion", f'"{sys.executable}" -m fluxion'), ("python", sys.executable)):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {run} "$@"\n')
        (bin_dir / name).chmod(0o755)
    path = os.environ.get("PYTHONPATH")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT) if not path else f"{ROOT}{os.pathsep}{path}",
        "FLUXION_SMOKE": "1",
        "MPLBACKEND": "Agg",
    }
    return folder, env


def test_shell_commands_run_and_print_what_they_say(tmp_path):
    folder, env = _checkout(tmp_path)
    not_run, ran = set(), set()
    for doc in DOCS:
        for line, command, expected in _commands(doc):
            parts = command.split(" && ")
            for k, part in enumerate(parts):
                shows = expected if k + 1 == len(parts) else None  # the last part's output
                skipped = [prefix for prefix in NOT_RUN if part.startswith(prefix)]
                if skipped:
                    not_run.update(skipped)
                    continue
                if part.startswith(BENCHMARK):
                    part = f"python {part.split()[1]} --help"
                if part in ran and shows is None:
                    continue
                ran.add(part)
                run = subprocess.run(
                    part, shell=True, cwd=folder, env=env, capture_output=True, text=True
                )
                where = f"{doc.relative_to(ROOT)}:{line}: {part}"
                assert run.returncode == 0, f"{where}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
                if shows is not None:
                    shows = SMOKE_OUTPUT.get(shows, shows)
                    assert _matches(run.stdout, shows), f"{where} printed\n{run.stdout}"
    # every entry of the lists above is still needed
    assert not_run == set(NOT_RUN)
    assert all(any(shown in doc.read_text() for doc in DOCS) for shown in SMOKE_OUTPUT)
