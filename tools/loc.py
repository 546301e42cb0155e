"""Measure fluxion: lines of code per subpackage, and the primitive count.

A line counts when it is neither blank nor a ``#`` comment (docstrings count).

    $ python tools/loc.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fluxion"


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


def primitive_count() -> str:
    sys.path.insert(0, str(ROOT))
    try:
        import fluxion  # noqa: F401  (importing registers every primitive)
        from fluxion.core.primitive import PRIMITIVES

        return str(len(PRIMITIVES))
    except Exception as e:  # any failure is reported, never raised: this is a report
        return f"unavailable ({type(e).__name__}: {e})"


def main() -> int:
    rows = table() if PACKAGE.is_dir() else []
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
