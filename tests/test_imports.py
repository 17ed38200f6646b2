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


# -- the dependency rule ----------------------------------------------------------------------

ROOT = CODEGEN.parent
FOLDERS = {"compiler": "flowc", "ir": "flowc.ir", "passes": "flowc.passes", "codegen": "flowc.codegen",
           "runtime": "flowc.runtime"}  # pyproject.toml's package-dir
# DESIGN.md: compiler -> passes -> ir, compiler -> codegen -> ir, compiler -> runtime; ir imports nothing
# of flowc, runtime no pass and no codegen. Codegen also caches its objects on disk with runtime/cache.py.
MAY_IMPORT = {
    "ir": {"ir"},
    "passes": {"passes", "ir"},
    "codegen": {"codegen", "ir", "runtime"},
    "runtime": {"runtime", "ir"},
    "compiler": {"compiler", "passes", "codegen", "runtime", "ir"},
}


def flowc_module(path: pathlib.Path, root: pathlib.Path = ROOT) -> str:
    """The dotted name a source file has once installed: compiler/session.py is flowc.session."""
    folder, *rest = path.relative_to(root).with_suffix("").parts
    return ".".join([FOLDERS[folder], *(part for part in rest if part != "__init__")])


def layer(module: str) -> str:
    """The folder that holds a flowc module: flowc.ir.core is ir, flowc.session compiler."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else "compiler"


def flowc_imports(path: pathlib.Path, root: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) of every flowc import in `path`, late ones in functions included, relative ones resolved."""
    name = flowc_module(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).rstrip(".") \
                if node.level else node.module or ""
            found.append((node.lineno, module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, module) for line, module in found if module == "flowc" or module.startswith("flowc.")]


def rule_violations(root: pathlib.Path) -> list[str]:
    """Each import, in the flowc sources under `root`, that DESIGN.md's rule forbids."""
    broken = []
    for path in sorted(p for folder in FOLDERS for p in (root / folder).rglob("*.py")):
        own = layer(flowc_module(path, root))
        for line, module in flowc_imports(path, root):
            if layer(module) not in MAY_IMPORT[own]:
                broken.append(f"{path.relative_to(root)}:{line}: {own} imports {module}")
    return broken


def test_every_module_keeps_the_dependency_rule() -> None:
    assert flowc_module(ROOT / "compiler" / "session.py") == "flowc.session"
    assert layer("flowc.passes.memory") == "passes" and layer("flowc.options") == "compiler"
    assert rule_violations(ROOT) == []


def test_the_rule_catches_a_late_import_of_a_pass_in_codegen(tmp_path) -> None:
    fake = tmp_path / "codegen" / "llvm" / "program.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ..blas import GEMM\n\n\ndef late():\n    from flowc.passes.memory import MemoryPlan\n")
    (tmp_path / "ir").mkdir()
    (tmp_path / "ir" / "core.py").write_text("from . import types\nimport flowc.runtime\n")
    assert rule_violations(tmp_path) == ["codegen/llvm/program.py:5: codegen imports flowc.passes.memory",
                                         "ir/core.py:2: ir imports flowc.runtime"]
