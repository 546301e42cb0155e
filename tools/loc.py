"""Measure fluxion: lines of code per subpackage, and the primitive count.

A line counts when it is neither blank nor a ``#`` comment (docstrings count).

    $ python tools/loc.py            # the table
    $ python tools/loc.py --check    # fails (exit 1) above the budget: CI runs it

The budget covers the framework's heart (core, ops, transforms, compiler, backends) and
the primitive count. It is set at what the code reached, so it can only shrink: a change
that grows either has to lower something else, or raise the budget here, in review.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fluxion"
CORE = ("core/", "ops/", "transforms/", "compiler/", "backends/")
BUDGET_LINES = 10494  # lines of CORE
BUDGET_PRIMITIVES = 96


def count_lines(path: Path) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))


def table() -> list[tuple[str, int, int]]:
    """One row per subpackage (recursively) and per top-level module: (name, files, lines)."""
    rows = []
    for entry in sorted(PACKAGE.iterdir()):
        if entry.is_dir() and (entry / "__init__.py").exists():
            files = sorted(entry.rglob("*.py"))
            rows.append((entry.name + "/", len(files), sum(map(count_lines, files))))
        elif entry.suffix == ".py":
            rows.append((entry.name, 1, count_lines(entry)))
    return rows


def primitive_count() -> int:
    sys.path.insert(0, str(ROOT))
    import fluxion  # noqa: F401  (importing registers every primitive)
    from fluxion.core.primitive import PRIMITIVES

    return len(PRIMITIVES)


def check(rows) -> int:
    lines = sum(n for name, _, n in rows if name in CORE)
    primitives = primitive_count()
    over = [
        f"{what}: {got} > budget {budget}"
        for what, got, budget in [
            (f"lines of {' '.join(CORE)}", lines, BUDGET_LINES),
            ("primitives", primitives, BUDGET_PRIMITIVES),
        ]
        if got > budget
    ]
    for line in over:
        print(f"tools/loc.py: over budget: {line}; shrink the code or raise the budget in review")
    if not over:
        print(
            f"tools/loc.py: {lines} lines (budget {BUDGET_LINES}), "
            f"{primitives} primitives (budget {BUDGET_PRIMITIVES})"
        )
    return 1 if over else 0


def main(argv=None) -> int:
    rows = table() if PACKAGE.is_dir() else []
    if "--check" in (sys.argv[1:] if argv is None else argv):
        return check(rows)
    total = ("total", sum(r[1] for r in rows), sum(r[2] for r in rows))
    width = max([len(r[0]) for r in rows] + [len("package")])
    print(f"{'package':<{width}}  {'files':>5}  {'lines':>7}")
    print("-" * (width + 16))
    for name, files, lines in rows:
        print(f"{name:<{width}}  {files:>5}  {lines:>7}")
    print("-" * (width + 16))
    print(f"{total[0]:<{width}}  {total[1]:>5}  {total[2]:>7}")
    print(f"\nprimitives: {primitive_count()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
