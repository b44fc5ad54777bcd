"""The W3C SHACL test suite (core + sparql) run by every engine ``namkg validate`` offers.

An unchanged copy of the suite, with its provenance and licence, is at
``../shared/w3c-shacl-tests`` from the project's root (CI has it too); the tests skip, saying
so, where it is missing. Each approved test is validated the way the CLI
does (:func:`namkg.shacl.engines.judge` on graphs parsed by our loader) and compared with the
manifest's expected report: ``sh:conforms`` and every result on focus node, path, value (an RDF
term, literals exact: ``"4.0"^^xsd:decimal`` is not ``"4"``), source shape, constraint
component and severity; messages are not compared. ``sht:Failure`` expects the engine to refuse.

Where data, shapes and manifest are one file (most tests), they are parsed once into one
graph, so blank nodes compare exactly too; otherwise a blank node matches any blank node.
Known failures of an engine are ``xfail(strict=True)``: fixing one makes the suite fail until
the entry goes.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from namkg.shacl.engines import ENGINES, judge
from namkg.shacl.load import load_graph
from namkg.shacl.terms import (
    SEVERITIES,
    ValidationCrash,
    Violation,
    node_str,
    path_string,
    term_str,
)
from rdflib import BNode, Graph, URIRef
from rdflib.collection import Collection
from rdflib.namespace import SH

REPO = Path(__file__).resolve().parent.parent
SUITE = (REPO.parent / "shared" / "w3c-shacl-tests").resolve()
MF = "http://www.w3.org/2001/sw/DataAccess/tests/test-manifest#"
SHT = "http://www.w3.org/ns/shacl-test#"
FOLDERS = ("core", "sparql")

# Engine -> test -> why it fails. Measured; strict xfail keeps the list honest.
CANON = ("Oxigraph stores typed literals canonically, so the literal judged and reported is "
         "not the data's: ")
PRE_BINDING = ("the oxigraph engine binds $this by a VALUES block in the outer group instead "
               "of pre-binding it, so a group that uses $this inside ")
KNOWN: dict[str, dict[str, str]] = {
    "pyshacl-turbo": {},
    "pyshacl": {
        "sparql/pre-binding/shapesGraph-001": "pyshacl does not support $shapesGraph",
    },
    "oxigraph": {
        "core/node/maxExclusive-001": CANON + '"4.0"^^xsd:decimal reported as "4"',
        "core/node/minExclusive-001": CANON + '"4.0"^^xsd:decimal reported as "4"',
        "core/property/datatype-ill-formed": CANON + '"300"^^xsd:byte seen as xsd:integer',
        "core/property/or-datatypes-001": CANON + '"none"^^xsd:boolean seen as "false"',
        "sparql/node/prefixes-001": "sh:prefixes through owl:imports are not followed: crash",
        "sparql/pre-binding/pre-binding-002": PRE_BINDING + "a UNION branch never sees it bound",
        "sparql/pre-binding/pre-binding-003": PRE_BINDING + "a nested group never sees it bound",
        "sparql/pre-binding/pre-binding-005": PRE_BINDING + "FILTER(bound($this)) is false",
        "sparql/pre-binding/shapesGraph-001": "its pyshacl fallback: no $shapesGraph",
    },
}


def manifests(path: Path) -> list[Path]:
    """The leaf manifests (test files) reached from ``path`` by ``mf:include``."""
    g = Graph().parse(path, format="turtle")
    out = []
    includes = sorted(g.objects(None, URIRef(MF + "include")))
    for inc in includes:
        out += manifests(Path(str(inc).removeprefix("file://")))
    if (None, URIRef(MF + "entries"), None) in g:
        out.append(path)
    return out


def entries_in(folder: str) -> list[tuple[str, Path, URIRef]]:
    if not (SUITE / folder / "manifest.ttl").exists():
        return []
    out = []
    for path in manifests(SUITE / folder / "manifest.ttl"):
        g = Graph().parse(path, format="turtle")
        for entries in g.objects(None, URIRef(MF + "entries")):
            for entry in Collection(g, entries):
                if (entry, URIRef(MF + "status"), URIRef(SHT + "approved")) not in g:
                    continue
                name = str(path.relative_to(SUITE).with_suffix(""))
                out.append((name, path, entry))
    return sorted(out)


ALL = [t for folder in FOLDERS for t in entries_in(folder)]
needs_suite = pytest.mark.skipif(
    not ALL, reason=f"W3C SHACL test suite not found at {SUITE}")


@cache
def parsed(path: Path) -> Graph:
    return load_graph([path])


@cache
def case(path: Path, entry_iri: str):
    """(data graph, shapes graph, expected results or None for sht:Failure, conforms, exact)."""
    manifest = parsed(path)
    # Our loader renames blank nodes: find the entry again by its IRI (entries are IRIs).
    entry = URIRef(entry_iri)
    action = manifest.value(entry, URIRef(MF + "action"))
    files = {}
    for key in ("dataGraph", "shapesGraph"):
        ref = manifest.value(action, URIRef(SHT + key))
        files[key] = Path(str(ref).removeprefix("file://"))
    exact = files["dataGraph"] == files["shapesGraph"] == path
    data, shapes = parsed(files["dataGraph"]), parsed(files["shapesGraph"])
    result = manifest.value(entry, URIRef(MF + "result"))
    if result == URIRef(SHT + "Failure"):
        return data, shapes, None, None, exact
    conforms = manifest.value(result, SH.conforms).toPython()
    expected = [fields(manifest, r, exact) for r in manifest.objects(result, SH.result)]
    return data, shapes, expected, conforms, exact


def fields(g: Graph, r, exact: bool) -> tuple:
    def node(t):
        if t is None:
            return None
        if isinstance(t, BNode) and not exact:
            return "_:"
        return node_str(t)

    path, value = g.value(r, SH.resultPath), g.value(r, SH.value)
    return (
        node(g.value(r, SH.focusNode)),
        None if path is None else path_string(g, path),
        None if value is None else ("_:" if isinstance(value, BNode) and not exact
                                    else term_str(value)),
        node(g.value(r, SH.sourceShape)),
        str(g.value(r, SH.sourceConstraintComponent)),
        SEVERITIES.get(g.value(r, SH.resultSeverity), str(g.value(r, SH.resultSeverity))),
    )


def found_fields(v: Violation, exact: bool) -> tuple:
    def node(s):
        return "_:" if s is not None and s.startswith("_:") and not exact else s

    return (node(v.focus), v.path, node(v.value), node(v.shape), v.constraint, v.severity)


def outcome(engine: str, path: Path, entry: str) -> str | None:
    """None if the engine gives the expected report, else what differs."""
    data, shapes, expected, conforms, exact = case(path, entry)
    # Each engine gets its own copies: pyshacl and turbo may add to the data (SHACL-AF rules).
    try:
        found, _ = judge(Graph() + data, Graph() + shapes, engine)
    except ValidationCrash as exc:
        return None if expected is None else f"crashed: {exc}"
    if expected is None:
        return "validated, where the suite expects a failure"
    got = Counter(found_fields(v, exact) for v in found)
    want = Counter(expected)
    lines = []
    if (not found) != conforms:
        lines.append(f"conforms {not found}, expected {conforms}")
    lines += [f"missing: {f}" for f in sorted(want - got, key=str)]
    lines += [f"unexpected: {f}" for f in sorted(got - want, key=str)]
    return "\n".join(lines) or None


def params():
    out = []
    for engine in ENGINES:
        for name, path, entry in ALL:
            why = KNOWN[engine].get(name)
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            out.append(pytest.param(engine, path, str(entry), id=f"{engine}:{name}",
                                    marks=marks))
    return out


@needs_suite
def test_suite_is_complete():
    assert len(ALL) == 120  # the approved tests of core + sparql, as the README says
    for engine, known in KNOWN.items():
        assert set(known) <= {name for name, _, _ in ALL}, engine


@needs_suite
@pytest.mark.parametrize(("engine", "path", "entry"), params())
def test_w3c(engine: str, path: Path, entry: str):
    problem = outcome(engine, path, entry)
    assert problem is None, problem

