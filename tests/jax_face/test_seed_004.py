"""Seed 004's programs (tests/seed004/*.py: the JAX and Flax NNX slides' code, with a driver
that prints what it computes) run twice: under jax/flax/optax, and with only the import lines
swapped to fluxion (``import fluxion.numpy as jnp``, ``from fluxion import grad, ...``,
``from fluxion import nnx``, ``import fluxion.optax as optax``). Both runs start from the same
weights (Flax's, copied by path into fluxion's model) and data; what they print must agree
to float32 accuracy. README ("Coming from JAX") says what the slides need beyond the swap:
nothing."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import flax.nnx as fnnx
import jax
import jax.numpy as jnp
import numpy as np

import fluxion as fx
from fluxion import nnx

PROGRAMS = Path(__file__).parent.parent / "seed004"
# Flax 0.11 renamed the slides' Optimizer (one that keeps its model, update(grads)) to
# ModelAndOptimizer: the reference run needs that, fluxion's nnx.Optimizer takes both forms
FLAX_EDITS = [
    ("nnx.Optimizer(model, optax.adam(1e-3))", "nnx.ModelAndOptimizer(model, optax.adam(1e-3))")
]


def as_fluxion(source: str) -> str:
    """The import lines with fluxion for jax, flax and optax; nothing else changes."""
    source = re.sub(
        r"^import jax\.numpy as jnp$", "import fluxion.numpy as jnp", source, flags=re.M
    )
    source = re.sub(r"^from jax import", "from fluxion import", source, flags=re.M)
    source = re.sub(r"^from flax import nnx$", "from fluxion import nnx", source, flags=re.M)
    return re.sub(r"^import optax$", "import fluxion.optax as optax", source, flags=re.M)


def load(name: str, fluxion: bool) -> dict:
    source = (PROGRAMS / name).read_text()
    if fluxion:
        source = as_fluxion(source)
        assert not re.search(r"^(import|from) (jax|flax|optax)\b", source, flags=re.M)
    else:
        for old, new in FLAX_EDITS:
            assert name != "part2_flax.py" or old in source, f"{name}: {old!r} no longer applies"
            source = source.replace(old, new)
    namespace = {"__name__": "seed004"}
    exec(compile(source, name, "exec"), namespace)
    return namespace


def printed(fn, *args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(*args)
    return out.getvalue()


NUMBER = re.compile(r"-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+")


def same_printout(got: str, want: str, rtol=1e-5, atol=1e-6) -> int:
    """The same words and integers, and floats to float32 accuracy."""
    g, w = NUMBER.split(got), NUMBER.split(want)
    assert [s.split() for s in g] == [s.split() for s in w], (
        f"printouts differ:\n{got}\n---\n{want}"
    )
    gn, wn = NUMBER.findall(got), NUMBER.findall(want)
    ints = [i for i, t in enumerate(wn) if "." not in t]
    assert [gn[i] for i in ints] == [wn[i] for i in ints], f"\n{got}\n---\n{want}"
    floats = [i for i, t in enumerate(wn) if "." in t]
    np.testing.assert_allclose(
        [float(gn[i]) for i in floats], [float(wn[i]) for i in floats], rtol=rtol, atol=atol,
        err_msg=f"\n{got}\n---\n{want}",
    )  # fmt: skip
    return len(floats)


def test_as_fluxion_edits_the_imports_only():
    before = "import jax.numpy as jnp\nfrom jax import grad, jit\nfrom flax import nnx\nimport optax\nx = jnp.ones(2)\n"
    assert as_fluxion(before).splitlines() == [
        "import fluxion.numpy as jnp",
        "from fluxion import grad, jit",
        "from fluxion import nnx",
        "import fluxion.optax as optax",
        "x = jnp.ones(2)",
    ]


def test_part1_jax_transforms_match_jax():
    want = printed(lambda: load("part1_jax.py", False))
    got = printed(lambda: load("part1_jax.py", True))
    # the loss, then the gradients of W1, b1, W2, b2 (3*8 + 8 + 8*2 + 2 numbers) three ways
    assert same_printout(got, want) == 1 + 3 * (24 + 8 + 16 + 2)


def _flax_weights_into(ours, theirs):
    pure = jax.tree.map(
        np.asarray, fnnx.to_pure_dict(fnnx.state(theirs, (fnnx.Param, fnnx.BatchStat)))
    )
    nnx.update(ours, fx.tree_map(fx.tensor, pure))


DATA = np.random.default_rng(0)
X = DATA.normal(size=(16, 2)).astype(np.float32)
Y = DATA.normal(size=(16, 3)).astype(np.float32)


def test_part2_flax_training_matches_flax():
    ours, theirs = load("part2_flax.py", True), load("part2_flax.py", False)  # they print nothing
    _flax_weights_into(ours["model"], theirs["model"])
    # the same dropout masks cannot be drawn by two generators: the comparison runs without
    # (test_part2_trains_with_dropout runs the slide's rate)
    ours["model"].dropout.rate = theirs["model"].dropout.rate = 0.0
    want = printed(theirs["train"], jnp.asarray(X), jnp.asarray(Y), 5)
    got = printed(ours["train"], fx.tensor(X), fx.tensor(Y), 5)
    mean = lambda text: text[text.index("mean") : text.index("var")]
    rest = lambda text: text.replace(mean(text), "")
    assert same_printout(rest(got), rest(want)) == 5 + 8  # losses, running variances
    # the bias in front of the BatchNorm gets a gradient of rounding noise (the normalization
    # removes it), which Adam turns into steps of up to lr=1e-3 that differ between the two
    # libraries: the running mean (weight 0.01 a step) differs by up to 5 steps * 2e-5
    assert same_printout(mean(got), mean(want), atol=1e-4) == 8
    assert int(ours["optimizer"].step.value) == 5


def test_part2_trains_with_dropout():
    ns = load("part2_flax.py", True)
    out = printed(ns["train"], fx.tensor(X), fx.tensor(Y), 40)
    losses = [float(v) for v in re.findall(r"loss (\S+)", out)]
    assert len(losses) == 40 and np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert int(ns["model"].dropout.rngs.count.value) == 4 + 40  # 4 initializers, then 1 a step
