"""Seed 003's PyTorch programs (tests/seed003/*.py) run twice: under torch, and under
``import fluxion as torch`` -- the only edit is ``torch`` -> ``fluxion`` in the import lines
(``import fluxion as torch``, ``import fluxion.nn as nn``, ``from fluxion.utils.data import
...``). Both runs start from the same weights (torch's, copied by name into the fluxion
model) and the same data (NumPy and ``random`` seeded inside the programs); everything they
print must agree: the text exactly, the numbers to float32 accuracy. README lists the
edits the tutorial's own cells need beyond these programs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import fluxion as fx

PROGRAMS = Path(__file__).parent / "seed003"
# The edits beyond the imports (README, "Coming from PyTorch", lists each), with the reason:
EDITS = {
    "part3_classifier.py": [
        # the step calls loss.item() and takes a TrainState object: torch.compile breaks the
        # graph there and runs the rest eagerly; fluxion's compile traces whole functions of
        # tensors, so the step runs eagerly (fx.compile the loss or the model instead)
        ("train_step_jit = torch.compile(train_step)", "train_step_jit = train_step"),
    ],
}


def as_fluxion(source: str) -> str:
    """The import lines with ``fluxion`` for ``torch``; nothing else changes."""
    source = re.sub(r"^import torch$", "import fluxion as torch", source, flags=re.M)
    source = re.sub(
        r"^import torch(\.[\w.]+) as (\w+)$", r"import fluxion\1 as \2", source, flags=re.M
    )
    return re.sub(r"^from torch(\.[\w.]+)? import", r"from fluxion\1 import", source, flags=re.M)


@pytest.fixture(autouse=True)
def eager_torch(monkeypatch):
    """torch's reference runs eagerly: torch.compile's CPU backend would take minutes (its
    compiled code computes the same numbers); fluxion's compile runs for real."""
    monkeypatch.setattr(torch, "compile", lambda fn=None, **kwargs: fn)


def run(name: str, fluxion: bool, namespace=None, then=None):
    """Execute program ``name`` (then ``then(namespace)``), returning what it printed."""
    source = (PROGRAMS / name).read_text()
    if fluxion:
        source = as_fluxion(source)
        for old, new in EDITS.get(name, []):
            assert old in source, f"{name}: the edit {old!r} no longer applies"
            source = source.replace(old, new)
        assert "import torch" not in source and "from torch" not in source
    namespace = {"__name__": "seed003", **(namespace or {})}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, name, "exec"), namespace)
        if then is not None:
            then(namespace)
    return out.getvalue()


TOKEN = re.compile(r"-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+|True|False|[A-Za-z_]+")
# how each library prints a tensor, beyond its values: torch's tensor(...) wrapper and
# shapes as torch.Size([...]); fluxion's :f32[1,3]:cpu(0) suffix (the seed notebooks' format)
DECORATION = re.compile(r"tensor\(|torch\.Size\(|:[a-z]+\d*\[[\d,]*\]:cpu\(\d+\)")


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(DECORATION.sub(" ", text))


def same_printout(got: str, want: str, rtol=2e-4, atol=5e-5):
    """The same words, ints and booleans, and floats to float32 accuracy (torch prints a
    tensor's floats to 4 decimals), whatever the punctuation around them."""
    g, w = _tokens(got), _tokens(want)
    floats = [i for i, t in enumerate(w) if "." in t]
    assert len(g) == len(w), f"printouts differ:\n{got}\n---\n{want}"
    assert [t for i, t in enumerate(g) if i not in floats] == [
        t for i, t in enumerate(w) if i not in floats
    ], f"printouts differ:\n{got}\n---\n{want}"
    np.testing.assert_allclose(
        [float(g[i]) for i in floats],
        [float(w[i]) for i in floats],
        rtol=rtol,
        atol=atol,
        err_msg=f"\n{got}\n---\n{want}",
    )
    return len(floats)


def test_as_fluxion_edits_the_imports_only():
    before = "import torch\nimport torch.nn as nn\nfrom torch.utils.data import DataLoader\nx = torch.ones(2)\n"
    after = as_fluxion(before)
    assert after.splitlines()[:3] == [
        "import fluxion as torch",
        "import fluxion.nn as nn",
        "from fluxion.utils.data import DataLoader",
    ]
    assert after.splitlines()[3] == before.splitlines()[3]


def test_part1_mlp_regression_matches_torch():
    want, got = run("part1_mlp.py", False), run("part1_mlp.py", True)
    assert same_printout(got, want) == 24  # two losses, two gradient norms, 20 steps of history


def _weights_from_torch():
    """MAKE_MODEL for the two runs: torch builds (seeded) and keeps its weights; fluxion
    builds the same class and loads them by name."""
    saved = {}

    def torch_model(Model, **kwargs):
        torch.manual_seed(0)
        model = Model(**kwargs)
        saved.update({k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
        return model

    def fluxion_model(Model, **kwargs):
        model = Model(**kwargs)
        model.load_state_dict({k: fx.tensor(v) for k, v in saved.items()})
        return model

    return torch_model, fluxion_model


@pytest.mark.parametrize("shuffle", [False])
def test_part3_classifier_training_matches_torch(shuffle):
    torch_model, fluxion_model = _weights_from_torch()

    def train(ns):
        ns["train"](ns["SimpleTransformer"], **ns["KWARGS"])

    want = run("part3_classifier.py", False, {"SHUFFLE": shuffle, "MAKE_MODEL": torch_model}, train)
    got = run("part3_classifier.py", True, {"SHUFFLE": shuffle, "MAKE_MODEL": fluxion_model}, train)
    assert same_printout(got, want) == 9  # 6 losses, 3 accuracies


def test_part3_classifier_trains_with_shuffling():
    # shuffled batches differ from torch's (another random generator): the loop runs and learns
    fx.manual_seed(0)
    printed = run(
        "part3_classifier.py",
        True,
        {"SHUFFLE": True, "MAKE_MODEL": lambda Model, **kw: Model(**kw)},
        lambda ns: ns["train"](ns["SimpleTransformer"], **ns["KWARGS"]),
    )
    losses = [float(x) for x in re.findall(r"^loss (\S+)$", printed, flags=re.M)]
    assert len(losses) == 6 and all(np.isfinite(losses))  # 3 batches, 2 epochs


def test_part4_seq2seq_training_and_decoding_match_torch():
    torch_model, fluxion_model = _weights_from_torch()

    def train_and_evaluate(make_model):
        def go(ns):
            model = make_model(
                ns["AutoregressiveTransformer"], num_layers=1, max_seq_length=12, vocab_size=12
            )
            task = ns["AdditionTask"]()
            params = ns["run_training"](
                task=task, model=model, max_sequence_length=6, train_steps=3
            )
            ns["run_evaluation"](
                model=model, params=params, task=task, max_test_length=5, is_autoregressive=True
            )

        return go

    want = run("part4_seq2seq.py", False, then=train_and_evaluate(torch_model))
    got = run("part4_seq2seq.py", True, then=train_and_evaluate(fluxion_model))
    assert same_printout(got, want) > 10


def test_part4_full_transformer_broadcasts_as_torch():
    # the tutorial's (batch, 1, L, L) mask widens the activations to (batch, batch, L, E)
    torch_model, fluxion_model = _weights_from_torch()

    def train(make_model):
        def go(ns):
            kwargs = dict(
                num_layers=1, max_seq_length=12, vocab_size=12, base=ns["FullTransformer"]
            )
            model = make_model(ns["AutoregressiveTransformer"], **kwargs)
            task = ns["AdditionTask"]()
            ns["run_training"](task=task, model=model, max_sequence_length=5, train_steps=2)

        return go

    want = run("part4_seq2seq.py", False, then=train(torch_model))
    got = run("part4_seq2seq.py", True, then=train(fluxion_model))
    assert same_printout(got, want) == 9  # the toy cells' 3 floats, 3 losses, 3 accuracies
