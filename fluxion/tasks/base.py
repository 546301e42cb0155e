"""What every recipe shares: the training configuration, the ``Task`` interface, the registry.

A task is data + model + loss + evaluation for one curriculum problem. The training loop
(``fluxion.tasks.loop``) only talks to this interface, so a new task is one class::

    @register
    class Copy(Task):
        name = "copy"
        defaults = {"steps": 300, "d_model": 32}

        def build_model(self): ...
        def train_batch(self, rng): ...      # NumPy arrays, drawn from rng only
        def loss(self, model, *batch): ...   # (loss, accuracy), traceable by fx.jit
        def evaluate(self, model, full): ... # a dict of JSON-ready metrics

Randomness is explicit so that a resumed run is bit-exact: the model is initialized after
``fx.manual_seed(config.seed)``, and step ``t`` draws its batch from
``np.random.default_rng((seed, t))`` (see ``step_rng``), never from a global stream.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from fluxion.core.checks import check_int, check_number, check_seed
from fluxion.errors import FluxionError

POSITIONS = ("learned", "sinusoidal", "rope")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")


class TaskError(FluxionError, ValueError):
    """A task asked for something it cannot do: a bad prompt, a checkpoint of another task,
    an option that does not fit. The CLI prints it as one ``error: ...`` line."""


@dataclass
class TrainConfig:
    """Everything that defines a run; saved in each checkpoint as JSON.

    ``ff`` is the feed-forward width (0: four times ``d_model``); ``warmup`` counts the
    linear warm-up steps of either schedule; ``clip`` is the global gradient-norm limit
    (0: none); ``context`` is the sequence length of the ``gpt`` task; ``precision`` "bf16"
    runs the training step under ``fx.autocast(dtype=fx.bfloat16)`` (the weights, the
    optimizer's moments and the checkpoints stay float32; evaluation runs in float32).
    """

    task: str
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup: int = 0
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    ff: int = 0
    pos: str = "learned"
    dropout: float = 0.0
    weight_decay: float = 0.01
    clip: float = 1.0
    seed: int = 0
    eval_every: int = 100
    text: str | None = None
    context: int = 64
    precision: str = "fp32"

    @property
    def dim_feedforward(self) -> int:
        return self.ff or 4 * self.d_model

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    # the options with a range, by core.checks' rules (steps, sizes... are checked below)
    _RULES: ClassVar = (
        ("lr", check_number, dict(minimum=0.0, low_open=True)),
        ("weight_decay", check_number, dict(minimum=0.0)),
        ("clip", check_number, dict(minimum=0.0)),
        ("dropout", check_number, dict(minimum=0.0, maximum=1.0, high_open=True)),
        ("seed", check_int, dict(minimum=0)),  # the batches' generators take no negative seed
        ("seed", check_seed, {}),
        ("ff", check_int, dict(minimum=0)),
        ("context", check_int, dict(minimum=1)),
    )

    def check(self) -> None:
        """Fail early, with the option's name, on values the loop cannot use."""
        problems = []
        for name in ("steps", "batch_size", "d_model", "heads", "layers", "eval_every"):
            if getattr(self, name) < 1:
                problems.append(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.heads >= 1 and self.d_model % self.heads:
            problems.append(
                f"--d-model ({self.d_model}) must be a multiple of --heads ({self.heads})"
            )
        if self.pos == "rope" and (self.d_model // max(self.heads, 1)) % 2:
            problems.append("--pos rope needs an even head size (d_model / heads)")
        for name, check, bounds in self._RULES:
            try:
                check("", "", getattr(self, name), **bounds)
            except FluxionError as e:  # core.checks' words: "...: must be ..., got ..."
                rule = str(e).split(" must be ", 1)[1]
                problems.append(f"--{name.replace('_', '-')} must be {rule}")
        if self.warmup < 0 or self.warmup > self.steps:
            problems.append(f"--warmup must lie in [0, steps={self.steps}], got {self.warmup}")
        if self.pos not in POSITIONS:
            problems.append(f"--pos must be one of {', '.join(POSITIONS)}, got {self.pos!r}")
        if self.schedule not in SCHEDULES:
            problems.append(
                f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if self.precision not in PRECISIONS:
            problems.append(
                f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.text is not None and self.task != "gpt":
            problems.append("--text is the corpus of the gpt task; the other tasks make their data")
        if problems:
            raise TaskError(f"{self.task}: " + "; ".join(problems))


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of training step ``step``: a function of (seed, step) only."""
    return np.random.default_rng((seed, step))


def eval_rng(seed: int, salt: int = 0) -> np.random.Generator:
    """The generator of evaluation sets: fixed per run, apart from every training stream."""
    return np.random.default_rng((seed, 2**31 - 1, salt))


def step_seed(seed: int, step: int) -> int:
    """The seed of ``fx.manual_seed`` before step ``step`` (dropout draws from it)."""
    return (seed * 1_000_003 + step) % 2**63


class Task:
    """One curriculum problem. Subclasses set ``name``, ``help`` and ``defaults`` (the
    ``TrainConfig`` values that reach the task's target) and implement the methods below.

    ``tokenizer`` is the one saved in a checkpoint (a dict from ``to_dict``), or None to
    build it from the data.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: the class attributes (data and evaluation sizes) that a smoke run replaces
    smoke: ClassVar[dict[str, Any]] = {}
    #: the metric shown in the progress bar and the curves next to the loss
    metric: ClassVar[str] = "accuracy"

    def __init__(self, config: TrainConfig, tokenizer: dict | None = None):
        self.config = config
        if smoke():
            vars(self).update(self.smoke)

    # ---------------------------------------------------------------- training
    def build_model(self):
        raise NotImplementedError

    def train_batch(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """One training batch, drawn from ``rng`` only."""
        raise NotImplementedError

    def loss(self, model, *batch):
        """``(loss, accuracy)`` as fluxion scalars; traced by ``fx.jit`` in compiled mode."""
        raise NotImplementedError

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, model, full: bool = False) -> dict[str, Any]:
        """Metrics as JSON-ready values. ``full=False`` is the quick check run every
        ``eval_every`` steps; ``full=True`` the final one (by length, samples...)."""
        raise NotImplementedError

    def describe(self, result: dict[str, Any]) -> list[str]:
        """The lines that tell a person what ``evaluate(..., full=True)`` found."""
        return [f"{k}: {v}" for k, v in result.items() if not isinstance(v, dict | list)]

    #: the key of the ``{length: score}`` table that ``evaluate(full=True)`` returns, if any
    length_key: ClassVar[str | None] = None

    def trained_lengths(self) -> set[int]:
        """The input lengths the task trains on (the rest of the table is out of distribution)."""
        raise NotImplementedError

    def by_length(self, result: dict[str, Any]) -> tuple[dict[int, float], set[int]] | None:
        """``({length: score}, lengths trained on)`` for the chart and ``describe``, if the
        result has a table (JSON keys are strings)."""
        table = result.get(self.length_key) if self.length_key else None
        if not table:
            return None
        return {int(k): v for k, v in table.items()}, self.trained_lengths()

    # ---------------------------------------------------------------- inference
    def tokenizer_dict(self) -> dict | None:
        return None

    def generate(self, model, prompt: str, options) -> list[str]:
        raise TaskError(f"generate: the {self.name} task does not generate text")


TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} is registered twice")
    TASKS[cls.name] = cls
    return cls


def smoke() -> bool:
    """``FLUXION_SMOKE=1``: every run of a task (and ``fluxion demo``) shrinks to seconds,
    so that a command can be checked end to end (the README's commands are, in the tests):
    a tiny model, small data and evaluation sets (each task's ``smoke``), a fraction of the
    steps (``smoke_options``)."""
    return os.environ.get("FLUXION_SMOKE", "0") != "0"


SMOKE_CONFIG = dict(batch_size=8, d_model=16, heads=2, layers=1, ff=0)


def smoke_steps(steps: int) -> int:
    """A smoke run takes one step for every 250 asked for (rounded up)."""
    return math.ceil(steps / 250)


def smoke_options(task: str, given: dict, resume: bool) -> dict:
    """The options ``given`` to ``fluxion train`` (None: not given), as a smoke run takes
    them: ``SMOKE_CONFIG``'s sizes, and the steps, warm-up and evaluation interval cut by
    ``smoke_steps`` (a resumed run cuts only the ones given; the checkpoint holds the
    rest). Unchanged without ``FLUXION_SMOKE=1``."""
    if not smoke():
        return given
    asked = {k: v for k, v in given.items() if v is not None}
    if not resume:
        fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
        asked = {**fields, **TASKS[task].defaults, **asked}
    shrunk = {
        name: smoke_steps(asked[name])
        for name in ("steps", "warmup", "eval_every")
        if name in asked  # a resumed run: the ones given
    }
    return {**given, **SMOKE_CONFIG, **shrunk}


def make_config(task: str, **overrides) -> TrainConfig:
    """The task's defaults with ``overrides`` applied (``None`` values are ignored)."""
    if task not in TASKS:
        raise TaskError(f"unknown task {task!r}; the tasks are {', '.join(sorted(TASKS))}")
    given = {k: v for k, v in overrides.items() if v is not None}
    values = {**TASKS[task].defaults, **given}
    if "warmup" not in given and "steps" in given:
        # a short run keeps a proportionate default warm-up instead of failing
        values["warmup"] = min(values.get("warmup", 0), given["steps"] // 10)
    config = TrainConfig(task=task, **values)
    config.check()
    return config


def make_task(config: TrainConfig, tokenizer: dict | None = None) -> Task:
    if config.task not in TASKS:
        raise TaskError(f"unknown task {config.task!r}; the tasks are {', '.join(sorted(TASKS))}")
    return TASKS[config.task](config, tokenizer)


def accuracy(logits, targets, mask=None):
    """Fraction of positions where ``argmax(logits) == targets`` (where ``mask`` is true)."""
    import fluxion as fx

    hit = fx.astype(fx.argmax(logits, axis=-1) == targets, fx.float32)
    if mask is None:
        return fx.mean(hit)
    m = fx.astype(mask, fx.float32)
    return fx.sum(hit * m) / fx.maximum(fx.sum(m), 1.0)


def length_table(by_length: dict[int, float], trained: set, what: str) -> list[str]:
    """One row per length, marked in or out of distribution."""
    lines = [f"{'length':>6}  {what:>9}  split"]
    for n in sorted(by_length):
        split = "in" if n in trained else "OUT"
        lines.append(f"{n:>6}  {by_length[n]:>9.2%}  {split}")
    ins = [v for n, v in by_length.items() if n in trained]
    outs = [v for n, v in by_length.items() if n not in trained]
    if ins:
        lines.append(f"mean {what} in distribution:     {np.mean(ins):.2%}")
    if outs:
        lines.append(f"mean {what} out of distribution: {np.mean(outs):.2%}")
    return lines
