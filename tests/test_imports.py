"""The package's imports run one way: no module imports, directly or through others, one that
imports it back; the wings (``shacl``, ``query``, ``kg``, ``web``) import one another in one
order only; and every import is at the top of its module (none hidden in a function to dodge a
circle), so the graph checked here is the whole graph.

How: each module of ``namkg`` is parsed (``ast``); its relative imports, resolved against its
package, are the edges; ``graphlib.TopologicalSorter`` raises ``CycleError`` on any circle.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import namkg
from namkg.query.backend import Backend
from namkg.query.executor import Executor
from namkg.query.remote import RemoteExecutor

PACKAGE = Path(namkg.__file__).resolve().parent
WINGS = ("shacl", "query", "kg", "web")  # each may import only those before it


def dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


MODULES = {dotted(p): p for p in PACKAGE.rglob("*.py") if "resources" not in p.parts}


def edges(name: str, path: Path) -> set[str]:
    """The modules of the package that ``name`` imports (``from .x import y`` may name a module
    ``x.y`` or a name in ``x``)."""
    here = [] if name == "__init__" else (
        name.split(".")[:-1] if path.name != "__init__.py" else name.split("."))
    out = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - (node.level - 1)]
            mod = [*base, *(node.module.split(".") if node.module else [])]
            for a in node.names:
                for cand in (".".join([*mod, a.name]), ".".join(mod) or "__init__"):
                    if cand in MODULES:
                        out.add(cand)
                        break
    out.discard(name)
    return out


def wing(name: str) -> str | None:
    return name.split(".")[0] if "." in name else None


def test_the_package_has_no_import_circle():
    graph = {name: edges(name, path) for name, path in MODULES.items()}
    assert len(graph) > 25
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None
    # the order runs one way: what a module imports comes before it
    assert (order.index("config") < order.index("web.app") < order.index("web.serve")
            < order.index("cli"))


def test_the_wings_import_one_way():
    backwards = []
    for name, path in MODULES.items():
        mine = wing(name)
        for target in edges(name, path):
            theirs = wing(target)
            if mine and theirs and WINGS.index(theirs) > WINGS.index(mine):
                backwards.append(f"{name} imports {target}")
    assert backwards == []
    assert {wing(n) for n in MODULES} == {None, *WINGS}


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
            if isinstance(node, ast.ImportFrom) and node.level:
                crossing += [f"{name} imports {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_") and a.name != "__version__"]
    assert crossing == []
