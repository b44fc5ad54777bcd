"""The package's imports run one way: no module imports, directly or through others, one that
imports it back; and every import is at the top of its module (none hidden in a function to
dodge a circle), so the graph checked here is the whole graph.

How: each module of ``namkg`` is parsed (``ast``); its relative imports are the edges;
``graphlib.TopologicalSorter`` raises ``CycleError`` on any circle.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import namkg
from namkg.executor import Backend, Executor
from namkg.remote import RemoteExecutor

PACKAGE = Path(namkg.__file__).resolve().parent
MODULES = {p.stem: p for p in PACKAGE.glob("*.py")}


def edges(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
            out |= {n.split(".")[0] for n in names if n.split(".")[0] in MODULES}
    return out


def test_the_package_has_no_import_circle():
    graph = {name: edges(path) for name, path in MODULES.items()}
    assert len(graph) > 20
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None
    # the order runs one way: what a module imports comes before it
    assert order.index("config") < order.index("app") < order.index("serve") < order.index("cli")


def test_no_module_imports_inside_a_function():
    inner = []
    for name, path in MODULES.items():
        for fn in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner += [f"{name}.{fn.name}: {ast.unparse(n)}" for n in ast.walk(fn)
                          if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert inner == []


def test_both_stores_provide_the_declared_backend_interface():
    members = [m for m in vars(Backend) if not m.startswith("_")] + ["sandbox"]
    assert {"query", "update", "reload", "stats", "close", "sandbox"} <= set(members)
    for cls in (Executor, RemoteExecutor):
        missing = [m for m in members if not hasattr(cls, m) and m != "sandbox"]
        assert missing == [], (cls.__name__, missing)
    assert RemoteExecutor.sandbox is None


def test_no_private_name_crosses_modules():
    crossing = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                crossing += [f"{name} imports {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_") and a.name != "__version__"]
    assert crossing == []
