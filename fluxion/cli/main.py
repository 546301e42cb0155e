"""The ``fluxion`` command.

Each subcommand is one function registered with :func:`command`; its
arguments are declared next to it, so adding ``demo``, ``train``, ``bench``
or ``xpr`` touches nothing else::

    @command("train", help="train a curriculum task", args=[
        (("task",), {"help": "task name"}),
        (("--steps",), {"type": int, "default": 1000}),
    ])
    def train(args: argparse.Namespace) -> int:
        ...
        return 0

Example::

    $ fluxion info
    $ fluxion demo
    $ fluxion train addition --out runs/addition
    $ fluxion eval --checkpoint runs/addition/checkpoint.safetensors
    $ fluxion generate --checkpoint runs/addition/checkpoint.safetensors --prompt 12+345
    $ fluxion cache clear
    $ python -m fluxion info

A fluxion error (a missing checkpoint, a prompt outside the vocabulary...) is printed as
one line ``error: ...`` and the exit code is 2, as for a bad option.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[argparse.Namespace], int]
ArgSpec = tuple[tuple[str, ...], dict[str, Any]]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    func: Handler
    args: list[ArgSpec] = field(default_factory=list)


COMMANDS: dict[str, Command] = {}


def command(name: str, *, help: str, args: Sequence[ArgSpec] = ()) -> Callable[[Handler], Handler]:
    """Register ``func(args) -> exit code`` as subcommand ``name``."""

    def register(func: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"fluxion cli: subcommand {name!r} is registered twice")
        COMMANDS[name] = Command(name, help, func, list(args))
        return func

    return register


# ------------------------------------------------------------------ commands


def _backend_name() -> str:
    # Imported lazily: backends may pull in optional libraries (cupy, ...).
    try:
        import fluxion.backends as backends
    except ModuleNotFoundError as e:
        if e.name != "fluxion.backends":
            raise  # a broken backend should fail loudly, not read as "numpy"
        return "numpy"
    get = getattr(backends, "backend_name", None)
    return get() if callable(get) else "numpy"


def _devices() -> str:
    import fluxion

    get = getattr(fluxion, "devices", None)
    if callable(get):
        return ", ".join(str(d) for d in get())
    return "cpu(0)"


@command("info", help="print versions, the backend and the devices")
def info(args: argparse.Namespace) -> int:
    import ml_dtypes
    import numpy

    import fluxion

    rows = [
        ("fluxion", getattr(fluxion, "__version__", "unknown")),
        ("backend", _backend_name()),
        ("numpy", numpy.__version__),
        ("ml_dtypes", ml_dtypes.__version__),
        ("devices", _devices()),
        ("python", f"{platform.python_version()} ({sys.executable})"),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


# The task names, kept here so that building the parser imports no NumPy code;
# tests/test_cli.py checks them against fluxion.tasks.TASKS.
TASK_NAMES = ("classify", "difference", "addition", "gpt")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


@command(
    "demo",
    help="train the seed transformer classifier imperatively and compiled; compare timings",
    args=[
        (("--steps",), {"type": _positive, "default": 60, "help": "steps per paradigm (60)"}),
        (("--no-progress",), {"action": "store_true", "help": "hide the progress bars"}),
    ],
)
def demo(args: argparse.Namespace) -> int:
    from fluxion.cli.demo import run_demo

    run_demo(steps=args.steps, progress=not args.no_progress)
    return 0


_TRAIN_OPTIONS = [
    (("--steps",), {"type": _positive, "help": "total training steps (resumed ones included)"}),
    (("--batch-size",), {"type": _positive}),
    (("--lr",), {"type": float, "help": "peak learning rate of AdamW"}),
    (("--schedule",), {"choices": ("constant", "cosine")}),
    (("--warmup",), {"type": int, "help": "linear warm-up steps"}),
    (("--d-model",), {"type": _positive}),
    (("--heads",), {"type": _positive}),
    (("--layers",), {"type": _positive}),
    (("--ff",), {"type": int, "help": "feed-forward width (0: 4 * d_model)"}),
    (("--pos",), {"choices": ("learned", "sinusoidal", "rope")}),
    (("--dropout",), {"type": float}),
    (("--weight-decay",), {"type": float}),
    (("--clip",), {"type": float, "help": "global gradient-norm clip (0: none)"}),
    (("--seed",), {"type": int}),
    (("--eval-every",), {"type": _positive, "help": "steps between evaluations/log lines"}),
    (("--text",), {"metavar": "FILE", "help": "gpt: train on this text file"}),
    (("--context",), {"type": _positive, "help": "gpt: context length"}),
]


@command(
    "train",
    help="train a curriculum task (its defaults reach the task's target)",
    args=[
        (("task",), {"choices": TASK_NAMES, "help": "the task: " + ", ".join(TASK_NAMES)}),
        *_TRAIN_OPTIONS,
        (("--out",), {"metavar": "DIR", "help": "output folder (runs/TASK)"}),
        (
            ("--resume",),
            {"action": "store_true", "help": "continue from OUT/checkpoint.safetensors"},
        ),
        (("--eager",), {"action": "store_true", "help": "imperative loop instead of fx.jit"}),
        (("--no-progress",), {"action": "store_true", "help": "hide the progress bar"}),
    ],
)
def train(args: argparse.Namespace) -> int:
    from fluxion.tasks import loop, make_config

    out = args.out or loop.default_out_dir(args.task)
    given = {_dest(flags): getattr(args, _dest(flags)) for flags, _ in _TRAIN_OPTIONS}
    if args.resume:
        config, resume = loop.resume_config(args.task, out, given)
    else:
        config, resume = make_config(args.task, **given), None
    loop.train(config, out, resume=resume, eager=args.eager, progress=not args.no_progress)
    return 0


def _dest(flags: tuple[str, ...]) -> str:
    return flags[0].lstrip("-").replace("-", "_")


_CHECKPOINT = (
    ("--checkpoint",),
    {"required": True, "metavar": "PATH", "help": "checkpoint.safetensors (or its folder)"},
)


@command(
    "eval",
    help="evaluate a checkpoint: accuracy by length in and out of distribution, or val loss",
    args=[_CHECKPOINT],
)
def evaluate(args: argparse.Namespace) -> int:
    from fluxion.tasks import loop

    task, result = loop.evaluate_checkpoint(args.checkpoint)
    for line in task.describe(result):
        print(line)
    return 0


@command(
    "generate",
    help="continue a prompt (gpt) or solve a problem like 12+345 (addition) with a checkpoint",
    args=[
        _CHECKPOINT,
        (("--prompt",), {"required": True, "help": "gpt: the text to continue; addition: a+b"}),
        (("--max-new-tokens",), {"type": _positive, "default": 200}),
        (("--temperature",), {"type": float, "default": 0.8}),
        (("--top-k",), {"type": _positive}),
        (("--top-p",), {"type": float}),
        (("--beam",), {"type": _positive, "metavar": "N", "help": "beam search with N beams"}),
        (("--best-of",), {"type": _positive, "metavar": "N", "help": "best of N samples"}),
        (("--seed",), {"type": int, "default": 0}),
    ],
)
def generate(args: argparse.Namespace) -> int:
    import fluxion
    from fluxion.tasks import loop

    task, model, _ = loop.load_for_inference(args.checkpoint)
    with fluxion.no_grad():
        for line in task.generate(model, args.prompt, args):
            print(line)
    return 0


@command(
    "cache",
    help="show where the kernel cache is, its size and entries; or clear it",
    args=[
        (("action",), {"nargs": "?", "choices": ("show", "clear"), "default": "show"}),
        (("--all",), {"action": "store_true", "help": "list every entry"}),
    ],
)
def cache(args: argparse.Namespace) -> int:
    from fluxion.cli.cache import run_cache

    return run_cache(args.action, args.all)


# ------------------------------------------------------------------ entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fluxion",
        description="fluxion: a hackable deep-learning framework on NumPy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        for flags, kwargs in cmd.args:
            p.add_argument(*flags, **kwargs)
        p.set_defaults(func=cmd.func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    from fluxion.errors import FluxionError

    try:
        return int(args.func(args) or 0)
    except FluxionError as e:
        # a named fluxion error is the user's to fix: one line, no traceback
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
