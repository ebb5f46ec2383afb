"""The package's layers: each module imports only from its own layer or below, and no two
modules import each other, directly or around a loop (imports made only for type checking
count too). The layers, lowest first, are in LAYERS; docs/contributing.md explains them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "monument_ws"

#: Lowest first. A module belongs to the first entry its dotted name starts with.
LAYERS: list[tuple[str, ...]] = [
    ("monument_ws._version", "monument_ws.protocol"),
    ("monument_ws.config", "monument_ws.bus", "monument_ws.signals"),
    ("monument_ws.brokers", "monument_ws.stores"),
    ("monument_ws.connection",),
    ("monument_ws.channels",),
    ("monument_ws.server",),
    ("monument_ws.ops",),
    # The top: what users import, each only from below.
    (
        "monument_ws.mount",
        "monument_ws.client",
        "monument_ws.cli",
        "monument_ws.testing",
        "monument_ws.__main__",
        "monument_ws.auth",
        "monument_ws.logs",
        "monument_ws.presence",
        "monument_ws.publisher",
        "monument_ws.yields",
        "monument_ws",
    ),
]

#: The client runs where the server does not: it may import the wire protocol and nothing else.
CLIENT_MAY_IMPORT = ("monument_ws.protocol", "monument_ws._version", "monument_ws.client")


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = module_names()


def imports_of(name: str) -> set[str]:
    """Every monument_ws module ``name`` imports, at run time or for type checking only."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                child = f"{target}.{alias.name}"
                found.add(child if child in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in MODULES and module != name}


def layer_of(name: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_only(name):
    """A module imports from its own layer or the layers below it, never above."""
    upward = sorted(dep for dep in imports_of(name) if layer_of(dep) > layer_of(name))
    assert not upward, f"{name} (layer {layer_of(name)}) imports from above: {upward}"


def test_the_client_imports_only_the_protocol():
    for name in MODULES:
        if name.startswith("monument_ws.client"):
            for dep in imports_of(name):
                assert dep.startswith(CLIENT_MAY_IMPORT), f"{name} imports {dep}"


def test_no_import_cycles():
    """No loop of imports between modules, type-only imports included (Tarjan's algorithm)."""
    graph = {name: imports_of(name) for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in graph:
        if name not in index:
            visit(name)
    assert cycles == []


@pytest.mark.parametrize(
    "path",
    [
        "monument_ws.client",
        "monument_ws.publisher",
        "monument_ws.testing",
        "monument_ws.yields",
        "monument_ws.presence",
        "monument_ws.auth",
        "monument_ws.logs",
        "monument_ws.signals",
        "monument_ws.config",
    ],
)
def test_documented_import_paths_still_import(path):
    """The import paths the docs show keep working whatever the layout inside."""
    module = importlib.import_module(path)
    assert module.__doc__


def test_the_checker_sees_relative_and_type_only_imports():
    """The checks above can fail: the scanner finds the imports they judge."""
    assert "monument_ws.connection.outbound" in imports_of("monument_ws.connection.socket")
    assert "monument_ws.connection.socket" in imports_of("monument_ws.connection.middleware")
    assert layer_of("monument_ws.ops.admin") > layer_of("monument_ws.server.plugin")
