"""The shape of the code: imports point one way, nothing private crosses modules, sizes.

Every import counts: at module level, inside functions, and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"featx": ROOT / "featx", "server": ROOT / "server"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# The CRF's numerics are exempt from the function rule (recursions written out in full).
NUMERICS = ("featx/tagging/_crf_math.py", "featx/tagging/_crf_layout.py")


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) of every import in the module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found += [(base, alias.name, node.lineno) for alias in node.names]
    return found


def _target(module: str, name: str) -> str | None:
    """The project module an import lands in (``from a import b``: a.b if b is a module)."""
    if name and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    return module if module in MODULES else None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = set()
        for module, imported, _ in _imports(name, path):
            target = _target(module, imported)
            # A module's own packages run first anyway: that is not an edge back.
            if target and target != name and not name.startswith(f"{target}."):
                edges.add(target)
        graph[name] = edges
    return graph


def test_no_import_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_imports_a_private_name_of_another() -> None:
    bad = []
    for name, path in MODULES.items():
        for module, imported, line in _imports(name, path):
            if _target(module, imported) is None:
                continue  # third-party
            private = imported.startswith("_") and not imported.startswith("__")
            private_module = any(
                p.startswith("_") and not p.startswith("__") for p in module.split(".")
            )
            # A private module's public names may be used by its own package only.
            own = private_module and module.rpartition(".")[0] == name.rpartition(".")[0]
            if private or (private_module and not own and module != "featx._version"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}.{imported}")
    assert not bad, "\n".join(bad)


def test_modules_and_functions_stay_small() -> None:
    long_modules, long_functions = [], []
    for path in MODULES.values():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{rel}: {len(text.splitlines())} lines")
        if rel in NUMERICS:
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{rel}:{node.lineno} {node.name}: {length} lines")
    assert not long_modules, long_modules
    assert not long_functions, long_functions


def test_the_contributors_map_names_every_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        path.relative_to(ROOT).as_posix()
        for path in MODULES.values()
        if path.relative_to(ROOT).as_posix() not in text
    ]
    assert not missing, f"docs/architecture.md does not name: {missing}"
