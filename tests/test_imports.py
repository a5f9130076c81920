"""The package's imports between its own modules form no cycle (read from the source with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gan_stretch"


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of gan_stretch (a package by its __init__.py)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def module_level(body: list[ast.stmt]):
    """The import statements run when a module is imported: at its top level, in top-level
    ``try`` and ``if`` blocks, but not under ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            yield from module_level(node.body)
            yield from module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from module_level(block)


def imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict) -> set[str]:
    """The modules of the package that one import statement of module ``name`` imports.
    ``from . import x`` imports the submodule x, not its package (already being imported)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names} & set(known)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = here[: len(here) - node.level + 1] if node.level else []
    target = ".".join(base + ([node.module] if node.module else []))
    subs = {f"{target}.{a.name}" for a in node.names} & set(known)
    return (subs | ({target} if len(subs) < len(node.names) else set())) & set(known)


def graph(function_level: bool) -> dict[str, set[str]]:
    known = modules()
    edges = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        nodes = (
            [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
            if function_level
            else list(module_level(tree.body))
        )
        edges[name] = set().union(*(imported(name, path, n, known) for n in nodes)) - {name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a -> b -> ... -> a) of ``edges``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_reads_relative_imports():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    known = modules()
    edges = graph(function_level=False)
    assert "gan_stretch.errors" in edges["gan_stretch.config"]  # from .errors import ConfigError
    assert "gan_stretch.checkpoint" in edges["gan_stretch.model"]  # from . import checkpoint
    assert "gan_stretch.models" in edges["gan_stretch.stages"]  # from .models import ... (the package)
    assert "gan_stretch.config" in edges["gan_stretch.train.common"]  # from ..config import ...
    assert "gan_stretch" not in edges["gan_stretch.model"] and len(known) > 30


def test_module_level_imports_form_no_cycle():
    cycle = find_cycle(graph(function_level=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_cycle_is_hidden_in_an_import_inside_a_function():
    """Imports inside functions (to load a heavy module only when used) go the same way as the
    module-level ones: moving an import into a function does not hide a cycle."""
    cycle = find_cycle(graph(function_level=True))
    assert cycle is None, "import cycle through an import inside a function: " + " -> ".join(cycle)
