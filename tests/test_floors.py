"""Imports go only down the floors of ``brushwork.floors`` (drawn in docs/DESIGN.md).

Read from the source with ``ast``, not by importing, so that every import counts: those
inside functions (lazy ones) as much as those at the top of a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from brushwork.floors import FLOORS, SIDE_BY_SIDE, floor_of

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "brushwork"


def module_name(path: Path) -> str:
    parts = ("brushwork", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported brushwork module, line) for every import statement of a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "brushwork":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1 packages
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            if base.split(".")[0] != "brushwork":
                continue
            for alias in node.names:  # `from brushwork import io` imports the module io
                sub = f"{base}.{alias.name}"
                yield (sub if sub in known else base), node.lineno


def graph() -> dict[str, list[tuple[str, int]]]:
    """Each module's imports of other brushwork modules, once per module and line."""
    found = modules()
    known = set(found)
    return {name: sorted({(target, line) for target, line in imports(name, path, known)
                          if target != name})
            for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_stands_on_a_floor():
    homeless = [m for m in modules() if floor_of(m) is None]
    assert not homeless, f"give these modules a floor in brushwork/floors.py: {homeless}"


def test_imports_go_only_down_the_floors():
    names = [name for name, _ in FLOORS]
    upward = []
    for module, targets in graph().items():
        here = floor_of(module)
        for target, line in targets:
            there = floor_of(target)
            if here is not None and there is not None and there < here:
                upward.append(f"{module} (floor {names[here]}) imports {target} "
                              f"(floor {names[there]}) at line {line}")
    assert not upward, "imports going up a floor:\n  " + "\n  ".join(sorted(upward))


def test_no_circle_of_imports_within_a_floor():
    found = graph()
    same = {m: {t for t, _ in targets if floor_of(t) == floor_of(m)}
            for m, targets in found.items()}
    lines = []
    for circle in cycles(same):
        lines.append("circle: " + ", ".join(circle))
        lines += [f"    {m} imports {t} at line {n}" for m in circle for t, n in found[m]
                  if t in circle]
    assert not lines, "modules importing each other in a circle:\n  " + "\n  ".join(lines)


def test_side_by_side_modules_do_not_import_each_other():
    crossing = []
    for module, targets in graph().items():
        for target, line in targets:
            for package in SIDE_BY_SIDE:
                inside = all(m.rpartition(".")[0] == package for m in (module, target))
                if inside and floor_of(module) == floor_of(target):
                    crossing.append(f"{module} imports {target} at line {line}: move what "
                                    "they share a floor down")
    assert not crossing, "\n  ".join(["side-by-side modules importing each other:",
                                      *sorted(crossing)])


def test_the_checks_catch_what_they_are_for():
    """The walker sees an import inside a function (cli's of the commands), and a circle
    of two modules is found while a module merely importing into it is not part of it."""
    lazy = {t for t, _ in imports("brushwork.cli", PACKAGE / "cli.py", set(modules()))}
    assert "brushwork.commands" in lazy
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
