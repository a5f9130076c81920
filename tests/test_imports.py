"""The package's imports between its own modules go down its layers and form no cycle (read
from the source with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gan_stretch"


# The layers of the package, lowest first: a module imports modules of its own sub-package or of a
# lower layer, never of a higher one (the signal processing knows no model, the models no
# stretcher, the stretcher no training, nothing the command line).
LAYERS = (
    ("gan_stretch.errors", "gan_stretch.settings", "gan_stretch.version"),
    ("gan_stretch.io",),
    ("gan_stretch.runtime",),
    ("gan_stretch.dsp",),
    ("gan_stretch.measures",),
    ("gan_stretch.models",),
    ("gan_stretch.stretching",),
    ("gan_stretch.data",),
    ("gan_stretch.train",),
    ("gan_stretch.cli",),
    ("gan_stretch",),  # the package's own __init__: the public API
)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file of every module of ``package`` (a package by its __init__.py)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
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


def graph(function_level: bool, package: Path = PACKAGE) -> dict[str, set[str]]:
    known = modules(package)
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


def layer(module: str) -> int:
    """The rank in LAYERS of a module: of the entry that is it or contains it."""
    for rank, group in enumerate(LAYERS):
        for prefix in group:
            if module == prefix or (module.startswith(prefix + ".") and prefix != "gan_stretch"):
                return rank
    raise AssertionError(f"{module} is in no layer of LAYERS: place its folder there")


def test_the_import_reader_follows_relative_and_absolute_imports(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .sub.b import x\n",
        "a.py": "import os\nfrom pkg import sub\n",
        "sub/__init__.py": "",
        "sub/b.py": "from ..a import y\nfrom . import c\ndef f():\n    import pkg.a\n",
        "sub/c.py": "if TYPE_CHECKING:\n    from pkg import a\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    edges = graph(function_level=False, package=pkg)
    assert edges == {
        "pkg": {"pkg.sub.b"},
        "pkg.a": {"pkg.sub"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.a", "pkg.sub.c"},
        "pkg.sub.c": set(),
    }
    assert graph(function_level=True, package=pkg)["pkg.sub.c"] == {"pkg.a"}  # every import, TYPE_CHECKING too
    assert find_cycle(graph(function_level=True, package=pkg)) is None
    (pkg / "sub" / "c.py").write_text("from pkg.sub import b\n")
    assert find_cycle(graph(function_level=False, package=pkg)) == ["pkg.sub.b", "pkg.sub.c", "pkg.sub.b"]


def test_imports_only_go_down_the_layers():
    """Every import (module level and inside functions) stays in its sub-package or goes to a lower
    layer; a module outside every layer fails (a new folder must be placed)."""
    known = modules()
    assert len(known) > 50
    upward = [
        f"{a} -> {b}"
        for a, targets in graph(function_level=True).items()
        for b in sorted(targets)
        if layer(b) > layer(a)
    ]
    assert not upward, "imports against the layers: " + "; ".join(upward)
    assert layer("gan_stretch.dsp.spectrum") < layer("gan_stretch.stretching.stretcher") < layer("gan_stretch")


def test_module_level_imports_form_no_cycle():
    cycle = find_cycle(graph(function_level=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_cycle_is_hidden_in_an_import_inside_a_function():
    """Imports inside functions (to load a heavy module only when used) go the same way as the
    module-level ones: moving an import into a function does not hide a cycle."""
    cycle = find_cycle(graph(function_level=True))
    assert cycle is None, "import cycle through an import inside a function: " + " -> ".join(cycle)
