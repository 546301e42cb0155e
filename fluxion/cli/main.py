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

Every option's help shows its default (``fluxion train TASK --help``: that task's).

Example::

    $ fluxion --version
    $ fluxion info
    $ fluxion demo
    $ fluxion train addition --out runs/addition
    $ fluxion eval --checkpoint runs/addition/checkpoint.safetensors
    $ fluxion generate --checkpoint runs/addition/checkpoint.safetensors --prompt 12+345
    $ fluxion cache clear
    $ python -m fluxion info

A fluxion error (a missing checkpoint, a prompt outside the vocabulary...) is printed as
one line ``error: ...`` and the exit code is 2, as for a bad option (also one line, naming
the option, its value and what it accepts); a run that cannot go on (an output folder that
cannot be written, a full disk, a NaN loss) exits with 1, after keeping what it saved.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fluxion import __version__
from fluxion.backends import backend_name, cpu

Handler = Callable[[argparse.Namespace], int]
ArgSpec = tuple[tuple[str, ...], dict[str, Any]]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    func: Handler
    args: list[ArgSpec] = field(default_factory=list)
    epilog: str | None = None


COMMANDS: dict[str, Command] = {}


def command(
    name: str, *, help: str, args: Sequence[ArgSpec] = (), epilog: str | None = None
) -> Callable[[Handler], Handler]:
    """Register ``func(args) -> exit code`` as subcommand ``name``; ``epilog`` ends its --help."""

    def register(func: Handler) -> Handler:
        if name in COMMANDS:
            raise ValueError(f"fluxion cli: subcommand {name!r} is registered twice")
        COMMANDS[name] = Command(name, help, func, list(args), epilog)
        return func

    return register


# ------------------------------------------------------------------ commands


def _devices() -> str:
    import fluxion

    get = getattr(fluxion, "devices", None)
    if callable(get):
        return ", ".join(str(d) for d in get())
    return "cpu(0)"


def _blas() -> str:
    """NumPy's BLAS and its threads, as threadpoolctl reads them from the loaded library."""
    from fluxion.backends import threads

    pools = threads.blas_info()
    return "; ".join(
        f"{p['internal_api']} {p['version']}, {p['num_threads']} threads" for p in pools
    )


def _threads() -> str:
    from fluxion.backends import threads

    return (
        f"{threads.get_num_threads()} (of {threads.available_cores()} cores this process may "
        f"use; FLUXION_NUM_THREADS or fx.set_num_threads); a matmul of fewer than "
        f"{threads.MATMUL_GRAIN:,} multiply-adds runs on one"
    )


def _native_kernels() -> str:
    import subprocess
    import warnings

    from fluxion.compiler.native import toolchain

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiler = toolchain._compiler()
    if compiler is None:
        why = str(caught[0].message) if caught else "FLUXION_NATIVE_KERNELS=0"
        return f"off ({why}); fused groups run as NumPy calls"
    try:
        run = subprocess.run([compiler, "--version"], capture_output=True, text=True)
    except OSError as e:  # CC names a program that is not there
        return f"off: the C compiler {compiler!r} does not run ({e.strerror}); NumPy calls"
    version = (run.stdout.splitlines() or ["version unknown"])[0]
    return f"on: {compiler} ({version}) {' '.join(toolchain.FLAGS)}"


def _cache() -> str:
    from fluxion.compiler.native import toolchain

    folder = toolchain.cache_dir()
    try:
        files, size = toolchain.cache_usage()
    except (toolchain.ToolchainError, OSError) as e:
        return f"{folder} (not used: {e}; FLUXION_CACHE_DIR moves it)"
    return f"{folder} ({files} files, {size / 2**20:.1f} MiB; FLUXION_CACHE_DIR moves it)"


# the optional extras of pyproject.toml that add features, and the packages each brings
EXTRAS = {
    "plot": ("matplotlib",),
    "tensorboard": ("tensorboardX",),
    "mpi": ("mpi4py", "mpich"),
    "bench": ("torch", "jax"),
}


def _extras() -> list[tuple[str, str]]:
    from importlib.metadata import PackageNotFoundError, version

    rows = []
    for extra, packages in EXTRAS.items():
        found = []
        for package in packages:
            try:
                found.append(f"{package} {version(package)}")
            except PackageNotFoundError:
                found.append(f"{package} missing (pip install 'fluxion[{extra}]')")
        rows.append((f"[{extra}]", ", ".join(found)))
    return rows


@command(
    "info", help="print the versions, NumPy's BLAS, the native kernels, cache, extras, devices"
)
def info(args: argparse.Namespace) -> int:
    import ml_dtypes
    import numpy

    import fluxion
    from fluxion.distributed import launch

    rows = [
        ("fluxion", f"{__version__} ({os.path.dirname(fluxion.__file__)})"),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("numpy", numpy.__version__),
        ("threads", _threads()),
        ("BLAS", _blas()),
        ("ml_dtypes", ml_dtypes.__version__),
        ("backend", backend_name()),
        ("devices", _devices()),
        ("native kernels", _native_kernels()),
        ("bf16 matmuls", cpu.describe_bf16()),
        ("kernel cache", _cache()),
        ("MPI", launch.describe()),
        *_extras(),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


# The task names, kept here so that building the parser imports no NumPy code;
# tests/test_cli.py checks them against fluxion.tasks.TASKS.
TASK_NAMES = ("classify", "difference", "addition", "gpt")


def _checked(kind: type, **bounds) -> Callable[[str], Any]:
    """An argparse type: the text as an ``int`` or a ``float`` within ``bounds``, by the
    rules (and in the words) of ``fluxion.core.checks``; argparse names the flag."""

    def parse(text: str):
        from fluxion.core.checks import check_int, check_number
        from fluxion.errors import FluxionError

        try:
            value = kind(text)
        except ValueError:
            what = "an int" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        try:
            (check_int if kind is int else check_number)("", "", value, **bounds)
        except FluxionError as e:
            raise argparse.ArgumentTypeError("must be " + str(e).split(" must be ", 1)[1]) from None
        return value

    parse.__name__ = kind.__name__  # argparse's word for the value in its own messages
    return parse


_positive = _checked(int, minimum=1)
_seed = _checked(int, minimum=0)


def _option(flag: str, help: str, **kwargs) -> ArgSpec:
    """One option: its flag, its help text, then ``add_argument``'s other arguments."""
    return (flag,), {"help": help, **kwargs}


@command(
    "demo",
    help="train the seed transformer classifier imperatively and compiled; compare timings",
    args=[
        _option("--steps", "steps per paradigm", type=_positive, default=60, metavar="N"),
        _option("--no-progress", "hide the progress bars", action="store_true"),
    ],
)
def demo(args: argparse.Namespace) -> int:
    from fluxion.cli.demo import run_demo
    from fluxion.tasks.base import smoke, smoke_steps

    steps = smoke_steps(args.steps) if smoke() else args.steps
    run_demo(steps=steps, progress=not args.no_progress)
    return 0


# The options that make a run's TrainConfig; their defaults are the task's (None: not given).
_TRAIN_OPTIONS = [
    _option("--steps", "training steps in all, resumed ones included", type=_positive, metavar="N"),
    _option("--batch-size", "examples per step", type=_positive, metavar="N"),
    _option("--lr", "peak learning rate of AdamW", type=float),
    _option(
        "--schedule",
        "the learning rate after the warm-up: constant, or a cosine decay to lr/10",
        choices=("constant", "cosine"),
    ),
    _option("--warmup", "steps of linear warm-up, from lr/N up to lr", type=int, metavar="N"),
    _option("--d-model", "the model's width", type=_positive, metavar="N"),
    _option("--heads", "attention heads (they divide --d-model)", type=_positive, metavar="N"),
    _option(
        "--layers",
        "transformer layers (addition: in the encoder and in the decoder)",
        type=_positive,
        metavar="N",
    ),
    _option("--ff", "feed-forward width; 0 means 4 x --d-model", type=int, metavar="N"),
    _option(
        "--pos",
        "positions: learned embeddings, sinusoidal ones, or rotary (rope)",
        choices=("learned", "sinusoidal", "rope"),
    ),
    _option("--dropout", "dropout probability", type=float, metavar="P"),
    _option("--weight-decay", "AdamW's weight decay", type=float, metavar="WD"),
    _option(
        "--clip",
        "clip the gradients' global norm to NORM; 0: no clipping",
        type=float,
        metavar="NORM",
    ),
    _option("--seed", "seed of the initialization, the batches and dropout", type=int),
    _option(
        "--eval-every",
        "steps between evaluations, log lines and checkpoints",
        type=_positive,
        metavar="N",
    ),
    _option(
        "--text",
        "gpt: train on this UTF-8 text file (default: Python source of the standard library)",
        metavar="FILE",
    ),
    _option("--context", "gpt: characters the model reads at once", type=_positive, metavar="N"),
    _option(
        "--precision",
        "bf16: the training step under fx.autocast (weights, optimizer state, checkpoints "
        "stay float32)",
        choices=("fp32", "bf16"),
    ),
]


class _TaskDefaultsHelp(argparse.Action):
    """``-h`` of ``train``: the defaults it shows are the task's named before it
    (``fluxion train gpt --help``), or each task's (``fluxion train --help``)."""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from fluxion.tasks import TASKS, make_config

        task = getattr(namespace, "task", None)
        configs = {t: make_config(t) for t in ([task] if task else TASK_NAMES)}
        for flags, _ in _TRAIN_OPTIONS:
            name = _dest(flags)
            values = {t: getattr(config, name) for t, config in configs.items()}
            if len(set(values.values())) > 1:
                shown = ", ".join(f"{t} {v}" for t, v in values.items())
            else:
                shown = next(iter(values.values()))
            parser.set_defaults(**{name: shown})  # shown only: the help exits
        if task:
            parser.description = f"train {task}: {TASKS[task].help}."
        parser.print_help()
        parser.exit()


@command(
    "train",
    help="train a curriculum task (its defaults reach the task's target)",
    args=[
        (("task",), {"choices": TASK_NAMES, "help": "the task: " + ", ".join(TASK_NAMES)}),
        (
            ("-h", "--help"),
            {
                "action": _TaskDefaultsHelp,
                "help": "show this help and exit; after TASK, with that task's defaults",
            },
        ),
        *_TRAIN_OPTIONS,
        _option("--out", "output folder (default: runs/TASK)", metavar="DIR"),
        _option("--resume", "continue from OUT/checkpoint.safetensors", action="store_true"),
        _option("--eager", "imperative loop instead of fx.jit", action="store_true"),
        _option(
            "--procs",
            "processes training data-parallel through mpirun, each on BATCH_SIZE / N rows",
            type=_positive,
            default=1,
            metavar="N",
        ),
        _option("--no-progress", "hide the progress bar", action="store_true"),
        _option(
            "--no-tensorboard",
            "write no OUT/tensorboard (written when tensorboardX is installed)",
            action="store_true",
        ),
    ],
    epilog="A run writes OUT/metrics.jsonl, eval.json, checkpoint.safetensors, the plots "
    "(with matplotlib) and OUT/tensorboard (with tensorboardX); FLUXION_SMOKE=1 shrinks it "
    "to seconds.",
)
def train(args: argparse.Namespace) -> int:
    from fluxion.distributed import launch
    from fluxion.tasks import loop, make_config
    from fluxion.tasks.base import smoke_options

    if args.procs > 1 and (code := launch.run_processes(args.procs, args.argv)) is not None:
        return code

    out = args.out or loop.default_out_dir(args.task)
    given = {_dest(flags): getattr(args, _dest(flags)) for flags, _ in _TRAIN_OPTIONS}
    given = smoke_options(args.task, given, args.resume)
    if args.resume:
        config, resume = loop.resume_config(args.task, out, given)
    else:
        config, resume = make_config(args.task, **given), None
    loop.train(
        config,
        out,
        resume=resume,
        eager=args.eager,
        progress=not args.no_progress,
        tensorboard=not args.no_tensorboard,
    )
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
        _option("--prompt", "gpt: the text to continue; addition: a+b", required=True),
        _option("--max-new-tokens", "gpt: tokens to add", type=_positive, default=200, metavar="N"),
        _option(
            "--temperature",
            "gpt: sampling temperature; lower is closer to the most likely text",
            type=_checked(float, minimum=0.0),
            default=0.8,
            metavar="T",
        ),
        _option(
            "--top-k",
            "gpt: sample among the K most likely tokens (default: all)",
            type=_positive,
            metavar="K",
        ),
        _option(
            "--top-p",
            "gpt: sample among the most likely tokens whose probabilities add up to P "
            "(default: all)",
            type=_checked(float, minimum=0.0, maximum=1.0, low_open=True),
            metavar="P",
        ),
        _option(
            "--beam",
            "beam search with N beams (default: sampling for gpt, greedy for addition)",
            type=_positive,
            metavar="N",
        ),
        _option("--best-of", "gpt: the most likely of N samples", type=_positive, metavar="N"),
        _option("--seed", "gpt: seed of the sampling", type=_seed, default=0),
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


class _Formatter(argparse.HelpFormatter):
    """Each option's help ends with its default, where it has one."""

    def _get_help_string(self, action):
        default = action.default
        if default is None or isinstance(default, bool) or default == argparse.SUPPRESS:
            return action.help
        if action.help and "(default:" in action.help:
            return action.help
        return f"{action.help or ''} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fluxion",
        description="fluxion: a hackable deep-learning framework on NumPy.",
        epilog="`fluxion COMMAND --help` explains a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"fluxion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(
            cmd.name,
            help=cmd.help,
            description=cmd.help,
            epilog=cmd.epilog,
            formatter_class=_Formatter,
            conflict_handler="resolve",  # a command may bring its own -h (train does)
        )
        for flags, kwargs in cmd.args:
            p.add_argument(*flags, **kwargs)
        p.set_defaults(func=cmd.func)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad option said in one line (the usage is in ``--help``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code: 0, 1 for
    a run that failed (a file that cannot be written, a diverged loss), 2 for what the user
    asked wrong (a bad option, a missing or damaged checkpoint), 128 + the signal (130 for
    SIGINT, 143 for SIGTERM) for a run stopped by one."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to start it again (--procs)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    from fluxion.errors import FluxionError, PathError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as e:  # train's Interrupted says where its checkpoint is
        print(f"{' '.join(str(e).split()) or 'interrupted'}", file=sys.stderr)
        return getattr(e, "exit_status", 130)
    except FluxionError as e:
        # a named fluxion error: one line, no traceback
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1 if isinstance(e, PathError) or _failed_run(e) else 2
    except OSError as e:  # the file system refused: a full disk, a read-only folder
        print(f"error: {e.filename or ''} {e.strerror or e}".replace("  ", " "), file=sys.stderr)
        return 1


def _failed_run(error) -> bool:
    from fluxion.tasks.loop import Diverged

    return isinstance(error, Diverged)


if __name__ == "__main__":
    raise SystemExit(main())
