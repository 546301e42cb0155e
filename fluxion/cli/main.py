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
    $ python -m fluxion info
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
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
