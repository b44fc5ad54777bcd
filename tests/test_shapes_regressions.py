"""Regressions for the year-comparison traps that shaped ontology/shapes.ttl and the views.

(a) pyshacl's ordering components on xsd:gYear: sh:lessThanOrEquals crashes, sh:minInclusive
    flags every value. Our shapes use none of them on years.
(b) pyshacl's SPARQL (rdflib) cannot order xsd:gYear: a typed ``FILTER(?end < ?begin)`` is an
    error, so the row is dropped and bad data silently conforms. Our shapes compare STR().
(c) Oxigraph orders gYear with gYear but not with gYearMonth: such a comparison is an error,
    so FILTER(x) and FILTER(!x) both drop the row. The views compare STR() too.

The first tests pin what the installed libraries actually do; when one changes (an upgrade
fixes a trap), the test fails and the workaround can be reconsidered.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyoxigraph as ox
import pyshacl
import pytest
from namkg.shacl.engines import rdflib_default_datatypes
from namkg.shacl.load import load_graph
from namkg.shacl.validation import validate
from rdflib import Graph, Literal
from rdflib.namespace import SH, XSD

REPO = Path(__file__).resolve().parent.parent
SHAPES = REPO / "ontology" / "shapes.ttl"
ONTOLOGY = REPO / "ontology" / "nam.ttl"
INVALID = Path(__file__).parent / "fixtures" / "invalid"
ID = "https://w3id.org/nam-kg/id/"
# rdflib's own complaint on the way to pyshacl's gYear TypeError
pytestmark = pytest.mark.filterwarnings(
    "ignore:NotImplemented should not be used:DeprecationWarning")


@pytest.fixture
def rdflib_defaults():
    """rdflib's own literal conversions, as validation runs: owlrl (pyshacl's RDFS inference),
    if anything ran it in this process, replaces them globally."""
    with rdflib_default_datatypes():
        yield


def flagged(data: Graph, shapes: str) -> list[str]:
    """Focus nodes (local names, sorted) pyshacl reports, validating as the project does."""
    sg = Graph().parse(data=shapes, format="turtle")
    conforms, results, _ = pyshacl.validate(data, shacl_graph=sg, advanced=True,
                                            inference="none")
    foci = sorted(str(f).removeprefix(ID) for f in results.objects(None, SH.focusNode))
    assert conforms is (not foci)
    return foci


# ---------------------------------------------------------------------------- (a)

TERMS = Graph().parse(format="turtle", data=f"""
    @prefix time: <http://www.w3.org/2006/time#> .
    @prefix xsd:  <http://www.w3.org/2001/XMLSchema#> .
    @prefix ex:   <http://example.org/> .
    <{ID}late> a time:ProperInterval ; ex:begin "2019"^^xsd:gYear ; ex:end "2011"^^xsd:gYear .
    <{ID}fine> a time:ProperInterval ; ex:begin "2011"^^xsd:gYear ; ex:end "2019"^^xsd:gYear .
""")


def interval_shape(constraint: str) -> str:
    return f"""
    @prefix sh: <http://www.w3.org/ns/shacl#> .
    @prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
    @prefix ex: <http://example.org/> .
    ex:S a sh:NodeShape ; sh:targetClass <http://www.w3.org/2006/time#ProperInterval> ;
        sh:property [ sh:path ex:begin ; {constraint} ] ."""


def test_less_than_or_equals_on_gyear_crashes_pyshacl(rdflib_defaults):
    with pytest.raises(TypeError, match="'<=' not supported between instances of 'Literal'"):
        flagged(TERMS, interval_shape("sh:lessThanOrEquals ex:end"))


def test_less_than_on_gyear_in_installed_pyshacl(rdflib_defaults):
    # Right, for now (same-length years ordered as strings); its sibling above crashes.
    assert flagged(TERMS, interval_shape("sh:lessThan ex:end")) == ["late"]


def test_min_inclusive_on_gyear_flags_every_value(rdflib_defaults):
    # Both begin years are >= 1900; pyshacl reports both.
    assert flagged(TERMS, interval_shape('sh:minInclusive "1900"^^xsd:gYear')) == ["fine", "late"]


ORDERING = (SH.lessThan, SH.lessThanOrEquals, SH.minInclusive, SH.minExclusive,
            SH.maxInclusive, SH.maxExclusive)


def test_our_shapes_order_no_years_with_shacl_components():
    sg = load_graph([SHAPES])
    assert not list(sg.subject_objects(SH.lessThan))
    assert not list(sg.subject_objects(SH.lessThanOrEquals))
    bounded = [(s, p, o) for p in ORDERING for s, o in sg.subject_objects(p)]
    assert len(bounded) >= 4  # nam:sentence, nam:count, nam:rank, ... all integers
    for shape, pred, bound in bounded:
        assert (shape, SH.datatype, XSD.integer) in sg, (shape, pred)
        assert isinstance(bound, Literal) and bound.datatype == XSD.integer, (shape, pred)


def test_our_sparql_constraints_order_years_only_as_strings():
    sg = load_graph([SHAPES])
    queries = [str(q) for c in sg.objects(None, SH.sparql) for q in sg.objects(c, SH.select)]
    comparisons = [c for q in queries for c in ordering_comparisons(q)]
    assert len(comparisons) == 4  # interval, observer, the extension twice: all seen
    for left, _, right in comparisons:
        assert left.startswith("STR(") and right.startswith("STR("), (left, right)


# ---------------------------------------------------------------------------- (b)

# Each year comparison of ontology/shapes.ttl, the fixture it must catch, and the typed form
# someone might "simplify" it to.
STR_FILTERS = {
    "interval-ends-before-begins": ("STR(?value) < STR(?begin)", "?value < ?begin"),
    "observer-ends-after-full-membership": ("STR(?value) > STR(?begin)", "?value > ?begin"),
    "extension-ends-at-term-start": ("STR(?value) <= STR(?start)", "?value <= ?start"),
    "extension-not-after-previous-end": ("STR(?value) <= STR(?previous)", "?value <= ?previous"),
}


@pytest.mark.parametrize("case", STR_FILTERS)
def test_typed_year_filter_silently_passes_where_ours_catches(case, rdflib_defaults):
    ours, typed = STR_FILTERS[case]
    shapes = SHAPES.read_text(encoding="utf-8")
    assert shapes.count(ours) == 1, f"{ours!r} is no longer in ontology/shapes.ttl"
    data = Graph().parse(INVALID / f"{case}.ttl") + Graph().parse(ONTOLOGY)
    focus = {"interval-ends-before-begins": "term-chairmanship",
             "observer-ends-after-full-membership": "membership-observer"}.get(case, "extension")
    assert flagged(Graph() + data, shapes) == [focus]
    assert flagged(Graph() + data, shapes.replace(ours, typed)) == []  # the trap


def test_engines_disagree_on_typed_year_filter(tmp_path):
    # Oxigraph does order gYear: a typed filter would make the two engines report differently.
    typed = tmp_path / "typed.shapes.ttl"
    typed.write_text(SHAPES.read_text(encoding="utf-8").replace(
        "STR(?value) < STR(?begin)", "?value < ?begin"), encoding="utf-8")
    case = [INVALID / "interval-ends-before-begins.ttl"]
    kw = {"ontology_paths": [ONTOLOGY]}
    assert validate(case, typed, sparql_engine="pyshacl", **kw).conforms
    assert [v.focus for v in validate(case, typed, sparql_engine="oxigraph", **kw).violations] \
        == [ID + "term-chairmanship"]
    for engine in ("pyshacl", "oxigraph"):  # with STR(), both catch it
        (v,) = validate(case, SHAPES, sparql_engine=engine, **kw).violations
        assert v.focus == ID + "term-chairmanship"


# ---------------------------------------------------------------------------- (c)

XSD_PREFIX = "PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>\n"


def bind(expression: str):
    """The value Oxigraph gives an expression; None where evaluating it is an error."""
    (row,) = ox.Store().query(f"{XSD_PREFIX}SELECT ?x WHERE {{ BIND({expression} AS ?x) }}")
    return None if row["x"] is None else row["x"].value


def rows(condition: str) -> int:
    return len(list(ox.Store().query(f"{XSD_PREFIX}SELECT * WHERE {{ FILTER({condition}) }}")))


def test_oxigraph_cannot_order_gyear_against_gyearmonth():
    year, month = '"2011"^^xsd:gYear', '"2012-07"^^xsd:gYearMonth'
    assert bind(f"{year} < {month}") is None  # an error, not false
    assert rows(f"{year} < {month}") == rows(f"!({year} < {month})") == 0  # either way: gone
    assert bind(f'{year} < "2011-07-01"^^xsd:date') is None
    # Equality is no error but plain false, even for the same year:
    assert bind(f'{year} = "2011-07"^^xsd:gYearMonth') == "false"
    # What works: gYear with gYear, and years as strings (as the shapes and views do).
    assert bind(f'{year} < "2019"^^xsd:gYear') == "true"
    assert bind(f"STR({year}) < SUBSTR(STR({month}), 1, 4)") == "true"
    assert bind(f'STR({year}) = SUBSTR(STR("2011-07"^^xsd:gYearMonth), 1, 4)') == "true"


def ordering_comparisons(query: str) -> list[tuple[str, str, str]]:
    """(left, operator, right) of each <, >, <=, >= in a SPARQL query, comments, strings and
    IRIs removed first.

    >>> ordering_comparisons('SELECT * { ?s <urn:p> ?o # a < b\\n FILTER(STR(?o) >= "x<y") }')
    [('STR(?o)', '>=', '""')]
    """
    q = re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', query)
    q = re.sub(r"<[^<>\s\"{}|^`\\]*>", "<>", q)
    q = re.sub(r"#[^\n]*", "", q)
    # a call (one level of nesting), a variable, a string or a number/name
    operand = r'(\w+\((?:[^()]|\([^()]*\))*\)|[?$]\w+|""(?:\^\^<>|@[\w-]+)?|[\w.:-]+)'
    return re.findall(operand + r"\s*(<=|>=|<(?!>)|(?<!<)>)\s*" + operand, q)


VIEWS = (sorted((REPO / "server" / "namkg" / "kg" / "views").glob("*.rq"))
         + sorted((REPO / "queries").glob("*.rq")))


@pytest.mark.parametrize("view", VIEWS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_views_do_not_order_time_values_by_type(view: Path):
    # Two variables ordered directly may be a gYear and a gYearMonth: compare STR() instead.
    for left, op, right in ordering_comparisons(view.read_text(encoding="utf-8")):
        assert not (re.fullmatch(r"[?$]\w+", left) and re.fullmatch(r"[?$]\w+", right)), \
            f"{view.name}: {left} {op} {right}: compare STR() of time values"


def test_comparison_finder_sees_a_typed_comparison():
    # Guards the guard: the scan above must notice the comparison it exists for.
    q = "SELECT * { ?i <urn:begin> ?begin ; <urn:end> ?end . FILTER(?end < ?begin) }"
    assert ordering_comparisons(q) == [("?end", "<", "?begin")]
    assert ordering_comparisons("SELECT * { ?s <urn:p> ?o }") == []  # IRIs are no comparison
