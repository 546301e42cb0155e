"""The README's API tour runs as written (so the README stays true)."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_api_tour_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no python block"
    monkeypatch.chdir(tmp_path)  # it saves a checkpoint
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    printed = capsys.readouterr().out
    assert "{ lambda (a:f32[3]:cpu(0)) ;" in printed  # the xpr shown in the README
