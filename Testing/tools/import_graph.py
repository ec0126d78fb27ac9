"""The import graph of BoneOligoMetLib, imports inside functions included, and its layers.

    python Testing/tools/import_graph.py        # prints cycles and upward imports; exit 1 if any

A module's layer is the first entry of :data:`LAYERS` whose prefix it starts with; a module may
import its own layer and the layers below it, never one above, and no set of modules may import
each other in a loop. Imports under ``if TYPE_CHECKING:`` are type hints, not imports, and are
left out.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

PACKAGE = "BoneOligoMetLib"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

# (prefix, rank), most specific first: reading → images → lesions → deep networks → features →
# models → applications (one patient, reports) → synthetic data → the command line.
LAYERS: tuple[tuple[str, int], ...] = (
    ("errors", 0),
    ("protocol", 0),
    ("_compat", 0),
    ("io.", 1),
    ("image.", 2),
    ("lesions.", 3),
    ("deep.train_cohort", 6),  # trains on a cohort with the models' patient split
    ("deep.", 4),
    ("features.", 5),
    ("models.", 6),
    ("classify", 7),
    ("report.", 7),
    ("synthetic.", 8),
    ("cli.", 9),
    ("__main__", 9),
)


def layer(module: str) -> int:
    name = module.removeprefix(PACKAGE + ".")
    for prefix, rank in LAYERS:
        if name == prefix.rstrip(".") or name.startswith(prefix):
            return rank
    raise KeyError(f"{module}: in no layer of Testing/tools/import_graph.py")


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        found[name] = path
    return found


def _type_checking_imports(tree: ast.AST) -> set[int]:
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            hidden.update(id(n) for n in ast.walk(node))
    return hidden


def imports(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The package's modules that ``name`` imports (a package's ``__init__`` counts as the
    package; ``from pkg import module`` as the module)."""
    known = set(known)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = _type_checking_imports(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[: -node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join([*package, base] if base else package)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith(PACKAGE):
                found.add(target)
    return found


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    found = modules(root)
    return {name: imports(name, path, found) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in edges:
        if v not in index:
            visit(v)
    return out


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer. The
    package's own ``__init__`` (version, aliases) is below everything."""
    bad = []
    for source, targets in edges.items():
        if source == PACKAGE:
            continue
        for target in targets:
            if target != PACKAGE and layer(target) > layer(source):
                bad.append((source, target))
    return sorted(bad)


def main() -> int:
    edges = graph()
    loops, up = cycles(edges), upward(edges)
    n_edges = sum(len(t) for t in edges.values())
    print(f"{len(edges)} modules, {n_edges} imports, {len(loops)} cycles, {len(up)} upward")
    for loop in loops:
        print("cycle:", " → ".join(loop))
    for source, target in up:
        print(f"upward: {source} (layer {layer(source)}) imports {target} (layer {layer(target)})")
    return 1 if loops or up else 0


if __name__ == "__main__":
    sys.exit(main())
