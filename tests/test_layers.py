"""The package's imports point down: no module imports one of a higher layer, and no cycle.

Reads every module's top-level imports (the AST, not a run) and checks them against the layer
order of DESIGN.md. Function-level imports are counted, not checked: each is a deferred upward
edge someone chose (a plugin point), and the count may only shrink.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fluxion"

# Lowest first. A module may import from its own layer and the layers before it.
LAYERS = [
    ("errors",),
    ("core",),
    ("backends",),
    ("ops",),
    ("compiler",),
    ("transforms",),
    ("array_api", "linalg", "fft", "random", "tree_util", "tree", "placement"),
    ("distributed",),
    ("lax", "numpy"),
    ("nn", "optim", "data", "utils", "serialization"),
    ("optax", "nnx"),
    ("models", "tasks"),
    ("cli", "__main__", "__init__"),
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return LAYER_OF[top]


def imports(path: Path) -> tuple[set[str], int]:
    """(modules imported at the top level of the file, count of imports inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    top, deferred = set(), 0

    def targets(node) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            base = ".".join(
                package.split(".")[: len(package.split(".")) - node.level + 1]
                + ([base] if base else [])
            )
        names = [f"{base}.{alias.name}" for alias in node.names]
        # `from fluxion.ops import shape` imports a module; `from fluxion.ops.shape import f` imports ops.shape
        return [
            n
            if (PACKAGE.parent / (n.replace(".", "/") + ".py")).exists()
            or (PACKAGE.parent / n.replace(".", "/")).is_dir()
            else base
            for n in names
        ]

    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, (ast.Import, ast.ImportFrom)):
                top.update(t for t in targets(sub) if t.split(".")[0] == "fluxion")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            deferred += sum(isinstance(s, (ast.Import, ast.ImportFrom)) for s in ast.walk(node))
    return top, deferred


@functools.cache
def graph() -> tuple[dict[str, set[str]], int]:
    edges, deferred = {}, 0
    for path in sorted(PACKAGE.rglob("*.py")):
        top, n = imports(path)
        edges[module_name(path)] = top
        deferred += n
    return edges, deferred


def upward(edges) -> list[str]:
    return sorted(
        f"{src} -> {dst}"
        for src, dsts in edges.items()
        for dst in dsts
        if dst != "fluxion" and layer(dst) > layer(src)
    )


def cycles(edges) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return out


# Imports inside functions: deferred edges (an upward plugin point, or a cycle dodged). The
# count may only shrink; lower it when you remove one.
DEFERRED_BUDGET = 87


def test_no_module_imports_a_higher_layer():
    edges, _ = graph()
    assert upward(edges) == [], "imports that point up a layer (see LAYERS)"


def test_no_import_cycle():
    edges, _ = graph()
    assert cycles(edges) == [], "modules that import each other, directly or around a circle"


def test_every_module_has_a_layer():
    edges, _ = graph()
    for module in edges:
        layer(module)  # a KeyError names a new top-level module: put it in LAYERS


def test_deferred_imports_within_budget():
    _, deferred = graph()
    assert deferred <= DEFERRED_BUDGET, (
        f"{deferred} function-level imports (budget {DEFERRED_BUDGET})"
    )


def test_the_checker_sees_a_planted_upward_import_and_cycle():
    edges, _ = graph()
    planted = {k: set(v) for k, v in edges.items()}
    planted["fluxion.core.tensor"].add("fluxion.nn.module")
    planted["fluxion.ops.shape"].add("fluxion.ops.methods")
    assert "fluxion.core.tensor -> fluxion.nn.module" in upward(planted)
    assert any("fluxion.ops.shape" in c and "fluxion.ops.methods" in c for c in cycles(planted))


def test_jit_is_named_in_core_only_by_staging_and_effects():
    named = [
        f"{path.name}:{i}"
        for path in sorted((PACKAGE / "core").glob("*.py"))
        if path.name not in ("staging.py", "effects.py")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "jit" in line.lower()
    ]
    assert named == [], "core knows nothing of jit; staging is the seam"
