"""Differential property test: generated small data and shapes, each engine other than pyshacl
against pyshacl (the reference), reports compared field by field: focus node, path, value (as an
RDF term: literals exact), source shape, constraint component, severity.

Generated literals include non-canonical and ill-formed forms ("01"^^xsd:integer, "1.0" as a
decimal, "none"^^xsd:boolean, "300"^^xsd:byte), which an engine normalising them would judge
differently. The oxigraph engine normalises them (its store does), so it is only compared on
canonical literals: :data:`CANONICAL`. Examples on which pyshacl itself fails (crashes) are
discarded, as are ordering comparisons of xsd:gYear, which pyshacl gets wrong
(tests/test_shapes_regressions.py).
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from namkg.shacl.engines import ENGINES, judge
from namkg.shacl.terms import ValidationCrash, term_str
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.namespace import RDF, SH, XSD

EX = "http://example.org/"
NODES = [URIRef(EX + n) for n in "abc"]
PREDICATES = [URIRef(EX + p) for p in ("p", "q")]
CLASSES = [URIRef(EX + c) for c in ("C", "D")]


def lit(lexical: str, dt: str | None = None, lang: str | None = None) -> Literal:
    if lang:
        return Literal(lexical, lang=lang)
    return Literal(lexical, datatype=XSD[dt] if dt else None, normalize=False)


CANONICAL = [
    lit("1", "integer"), lit("2", "integer"), lit("-5", "integer"), lit("1.5", "decimal"),
    lit("true", "boolean"), lit("2011", "gYear"), lit("x"), lit("ab"), lit("x", lang="en"),
    lit("ab", lang="ar"), lit("abc", "token"),
]
ODD = [
    lit("01", "integer"), lit("1.0", "decimal"), lit("4.10", "decimal"), lit("none", "boolean"),
    lit("1", "boolean"), lit("300", "byte"), lit("5", "int"),
    lit("x", lang="EN"), lit("1e3", "double"), lit("1E3", "double"), lit("abc", "integer"),
]
IRIS = [*NODES, *CLASSES, URIRef("urn:x")]


NUMERIC = {XSD.integer, XSD.decimal, XSD.double, XSD.int, XSD.byte}


def bound_terms(canonical: bool) -> st.SearchStrategy:
    """Numeric bounds only: pyshacl orders other types by their Python values (False < 1,
    see test_known_difference_ordering_across_types), where SHACL says incomparable."""
    pool = CANONICAL if canonical else CANONICAL + ODD
    return st.sampled_from([t for t in pool if t.datatype in NUMERIC and not t.ill_typed])


def values(canonical: bool) -> st.SearchStrategy:
    pool = CANONICAL if canonical else CANONICAL + ODD
    return st.one_of(st.sampled_from(IRIS), st.sampled_from(pool))


def constraints(canonical: bool) -> st.SearchStrategy:
    """(predicate, object builder) pairs; builders add what they need to the shapes graph."""
    term = values(canonical)
    n = st.integers(0, 3)

    def listed(items):
        return lambda g: Collection(g, BNode(), list(items)).uri

    def plain(x):
        return lambda g: x

    ordering = st.sampled_from([SH.minInclusive, SH.minExclusive, SH.maxInclusive,
                                SH.maxExclusive])
    nested = st.sampled_from([
        [(SH.datatype, XSD.integer)], [(SH.nodeKind, SH.IRI)], [(SH.minLength, lit("2",
                                                                                    "integer"))],
        [(SH["class"], CLASSES[1])], [(SH.languageIn, None)],
    ])

    def shape_of(pairs):
        def build(g):
            node = BNode()
            for p, o in pairs:
                g.add((node, p, o if o is not None else Collection(g, BNode(), [lit("en")]).uri))
            return node
        return build

    return st.one_of(
        st.tuples(st.sampled_from([SH.minCount, SH.maxCount, SH.minLength, SH.maxLength]),
                  n.map(lambda i: plain(lit(str(i), "integer")))),
        st.tuples(st.just(SH.datatype), st.sampled_from(
            ["integer", "decimal", "boolean", "byte", "int", "string", "double", "gYear"]).map(
            lambda d: plain(XSD[d]))),
        st.tuples(st.just(SH.nodeKind), st.sampled_from(
            [SH.IRI, SH.Literal, SH.BlankNode, SH.IRIOrLiteral, SH.BlankNodeOrIRI]).map(plain)),
        st.tuples(st.just(SH["class"]), st.sampled_from(CLASSES).map(plain)),
        st.tuples(st.just(SH["in"]), st.lists(term, min_size=0, max_size=3).map(listed)),
        st.tuples(st.just(SH.hasValue), term.map(plain)),
        st.tuples(st.just(SH.pattern), st.sampled_from(["^1", "^a", "E", "^x$"]).map(
            lambda r: plain(lit(r)))),
        st.tuples(st.just(SH.languageIn), st.lists(st.sampled_from(["en", "ar", "*"]),
                                                   max_size=2).map(
            lambda langs: listed(lit(x) for x in langs))),
        st.tuples(st.just(SH.uniqueLang), st.just(plain(lit("true", "boolean")))),
        st.tuples(ordering, bound_terms(canonical).map(plain)),
        st.tuples(st.sampled_from([SH.equals, SH.disjoint]),
                  st.sampled_from(PREDICATES).map(plain)),
        st.tuples(st.sampled_from([SH["not"], SH.node]), nested.map(shape_of)),
        st.tuples(st.sampled_from([SH["or"], SH.xone, SH["and"]]),
                  st.lists(nested, min_size=1, max_size=2).map(
                      lambda items: lambda g: Collection(
                          g, BNode(), [shape_of(i)(g) for i in items]).uri)),
    )


@st.composite
def cases(draw, canonical: bool):
    data = Graph()
    for node in NODES:
        for cls in draw(st.lists(st.sampled_from(CLASSES), max_size=2, unique=True)):
            data.add((node, RDF.type, cls))
        for p in PREDICATES:
            for o in draw(st.lists(values(canonical), max_size=3, unique=True)):
                data.add((node, p, o))
    shapes = Graph()
    shape = URIRef(EX + "S")
    shapes.add((shape, RDF.type, SH.NodeShape))
    if draw(st.booleans()):
        shapes.add((shape, SH.targetClass, CLASSES[0]))
    else:
        for node in draw(st.lists(st.sampled_from(NODES), min_size=1, max_size=2)):
            shapes.add((shape, SH.targetNode, node))
    for i in range(draw(st.integers(1, 3))):
        prop = URIRef(f"{EX}S-{i}")
        shapes.add((shape, SH.property, prop))
        path = draw(st.sampled_from(PREDICATES))
        if draw(st.integers(0, 4)) == 0:
            inverse = BNode()
            shapes.add((inverse, SH.inversePath, path))
            path = inverse
        shapes.add((prop, SH.path, path))
        severity = draw(st.sampled_from([None, SH.Violation, SH.Warning, SH.Info]))
        if severity is not None:
            shapes.add((prop, SH.severity, severity))
        for pred, build in draw(st.lists(constraints(canonical), min_size=1, max_size=2)):
            shapes.add((prop, pred, build(shapes)))
    return data, shapes


def same_term(s: str | None) -> str | None:
    """RDF 1.1: language tags are case-insensitive ("x"@EN and "x"@en are one term, and
    pyshacl-turbo reports the lower-case form); everything else compares exactly."""
    m = re.fullmatch(r'(".*")@([A-Za-z0-9-]+)', s or "", re.S)
    return f"{m.group(1)}@{m.group(2).lower()}" if m else s


def fields(found) -> Counter:
    return Counter((same_term(v.focus), v.path, same_term(v.value),
                    "_:" if v.shape.startswith("_:") else v.shape, v.constraint, v.severity)
                   for v in found)


ORDERING = (SH.minInclusive, SH.minExclusive, SH.maxInclusive, SH.maxExclusive)


def comparable(o) -> bool:
    """Not a literal on which the engines' orderings are known to differ (see the
    test_known_difference_* tests and, for xsd:gYear, tests/test_shapes_regressions.py):
    booleans, years, ill-typed literals, surrounding spaces."""
    return not isinstance(o, Literal) or not (
        o.datatype in (XSD.boolean, XSD.gYear) or o.ill_typed or str(o) != str(o).strip())


def compare(engine: str, data: Graph, shapes: Graph) -> None:
    assume(not any((None, p, None) in shapes for p in (*ORDERING, SH.lessThan))
           or all(map(comparable, data.objects())))
    try:
        reference, _ = judge(Graph() + data, Graph() + shapes, "pyshacl")
    except ValidationCrash:
        assume(False)  # pyshacl fails on it: nothing to compare with
    ours, _ = judge(Graph() + data, Graph() + shapes, engine)
    want, got = fields(reference), fields(ours)
    detail = shapes.serialize(format="turtle") + "\n" + data.serialize(format="nt")
    assert got == want, (f"{engine} differs from pyshacl\nmissing: {want - got}\n"
                         f"extra: {got - want}\n{detail}")


def test_known_difference_whitespace_in_typed_literals():
    """The one difference found: " 7"^^xsd:integer. Its lexical form is outside xsd:integer's
    lexical space (RDF applies no whitespace facet): pyshacl-turbo (and Oxigraph, Jena) call it
    ill-typed, pyshacl (rdflib strips the spaces) a valid integer. Left out of the generator;
    pinned here, so a change in either library is noticed."""
    data, shapes = Graph(), Graph()
    data.add((NODES[0], PREDICATES[0], lit(" 7", "integer")))
    shapes.add((URIRef(EX + "S"), SH.targetNode, NODES[0]))
    shapes.add((URIRef(EX + "S"), SH.property, URIRef(EX + "P")))
    shapes.add((URIRef(EX + "P"), SH.path, PREDICATES[0]))
    shapes.add((URIRef(EX + "P"), SH.datatype, XSD.integer))
    assert judge(data, shapes, "pyshacl")[0] == []
    (v,) = judge(data, shapes, "pyshacl-turbo")[0]
    assert v.value == '" 7"^^<http://www.w3.org/2001/XMLSchema#integer>'


def test_known_difference_ordering_across_types():
    """sh:minInclusive with a boolean bound on an integer: SPARQL's <= cannot compare them, so
    SHACL reports the value; pyshacl compares Python values (False <= 1) and does not; the same
    for boolean values under numeric bounds."""
    data, shapes = Graph(), Graph()
    data.add((NODES[0], PREDICATES[0], lit("1", "integer")))
    shapes.add((URIRef(EX + "S"), SH.targetNode, NODES[0]))
    shapes.add((URIRef(EX + "S"), SH.property, URIRef(EX + "P")))
    shapes.add((URIRef(EX + "P"), SH.path, PREDICATES[0]))
    shapes.add((URIRef(EX + "P"), SH.minInclusive, lit("false", "boolean")))
    assert judge(data, shapes, "pyshacl")[0] == []
    (v,) = judge(data, shapes, "pyshacl-turbo")[0]
    assert v.constraint.endswith("MinInclusiveConstraintComponent")


def ordering_results(value: Literal, pred, bound) -> dict[str, int]:
    data, shapes = Graph(), Graph()
    data.add((NODES[0], PREDICATES[0], value))
    shapes.add((URIRef(EX + "S"), SH.targetNode, NODES[0]))
    shapes.add((URIRef(EX + "S"), SH.property, URIRef(EX + "P")))
    shapes.add((URIRef(EX + "P"), SH.path, PREDICATES[0]))
    shapes.add((URIRef(EX + "P"), pred, lit(bound, "integer")))
    return {e: len(judge(data, shapes, e)[0]) for e in ("pyshacl", "pyshacl-turbo")}


@pytest.mark.parametrize(("value", "pred", "bound", "found"), [
    # An ill-typed literal cannot be compared: SHACL reports it under every ordering constraint
    # (1 result). Both engines compare the value of the primitive type instead, in part.
    (lit("300", "byte"), SH.minInclusive, "1", {"pyshacl": 1, "pyshacl-turbo": 0}),
    (lit("300", "byte"), SH.maxInclusive, "1000", {"pyshacl": 0, "pyshacl-turbo": 0}),
    (lit("-1", "nonNegativeInteger"), SH.minInclusive, "-5", {"pyshacl": 0, "pyshacl-turbo": 0}),
    (lit("-1", "nonNegativeInteger"), SH.maxInclusive, "5", {"pyshacl": 1, "pyshacl-turbo": 0}),
    # Right in pyshacl-turbo, wrong in pyshacl:
    (lit("2011-13-01", "date"), SH.maxInclusive, "5", {"pyshacl": 0, "pyshacl-turbo": 1}),
    (lit("NaN", "double"), SH.maxInclusive, "5", {"pyshacl": 0, "pyshacl-turbo": 1}),
])
def test_known_difference_ordering_ill_typed(value, pred, bound, found):
    """Where neither engine gives SHACL's answer, pinned: data extending this graph with
    ill-typed literals under ordering constraints is not judged exactly by either (the
    repository's shapes pair every bound with sh:datatype xsd:integer, which flags them)."""
    assert ordering_results(value, pred, bound) == found


def test_literal_pools_differ_where_it_matters():
    # Guards the generator: the odd literals are really other terms than canonical ones.
    assert {term_str(t) for t in ODD}.isdisjoint({term_str(t) for t in CANONICAL})
    assert term_str(lit("01", "integer")) == '"01"^^<http://www.w3.org/2001/XMLSchema#integer>'


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("engine", [e for e in ENGINES if e not in ("pyshacl", "oxigraph")])
@SETTINGS
@given(case=cases(canonical=False))
def test_engine_equals_pyshacl(engine, case):
    compare(engine, *case)


@SETTINGS
@given(case=cases(canonical=True))
def test_oxigraph_engine_equals_pyshacl_on_canonical_literals(case):
    compare("oxigraph", *case)
