"""codegen/ imports without cycles, late imports inside functions included: an emitter imports what
it builds on, and the table that dispatches them (module.py) imports the emitters."""

from __future__ import annotations

import ast
import pathlib

CODEGEN = pathlib.Path(__file__).parent.parent / "codegen"


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(CODEGEN.parent).with_suffix("").parts
    return ".".join(part for part in parts if part != "__init__")


def imports(path: pathlib.Path, known: set[str]) -> set[str]:
    """The codegen modules `path` imports anywhere in it, relative imports resolved."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]) if node.level else \
                (node.module or "").removeprefix("flowc.")
            base = base.rstrip(".")
            found |= {c for c in (base, *(f"{base}.{a.name}" for a in node.names)) if c in known}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("flowc.") for a in node.names} & known
    return found - {name}


def test_codegen_has_no_import_cycles() -> None:
    paths = sorted(CODEGEN.rglob("*.py"))
    known = {module_name(p) for p in paths}
    graph = {module_name(p): imports(p, known) for p in paths}
    assert "codegen.llvm.kernels.reduction" in graph["codegen.llvm.kernels.row_blocks"]  # the walk sees imports
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, path + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
