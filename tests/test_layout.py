"""The package's shape: no import circle among its modules (imports inside functions
counted), and the library never importing the training package or the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import densevid

PACKAGE = Path(densevid.__file__).parent
OUTER = ("densevid.training", "densevid.cli", "densevid.__main__")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its code. ``from a
    import b`` counts as importing ``a.b`` when that is a module, else ``a``."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                subs = [f"{base}.{a.name}" for a in node.names]
                targets.update(s for s in subs if s in files)
                if any(s not in files for s in subs):
                    targets.add(base)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # caption.py reads features only when it captions a file: an import in a function
    assert "densevid.features" in graph["densevid.caption"]
    assert "densevid.inputs" in graph["densevid.caption"]


def test_find_cycle_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle():
    assert find_cycle(import_graph()) is None


def test_library_does_not_import_training_or_cli():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith(OUTER) or name == "densevid":
            continue
        outer = sorted(t for t in targets if t.startswith(OUTER))
        assert not outer, f"{name} imports {outer}"
