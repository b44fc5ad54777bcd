"""SHACL validation: data-driven fixtures, the pyshacl gYear traps, both SPARQL engines, reports.

Each data fixture in tests/fixtures/validation/ declares in its leading comments what it expects:

    # shapes: other.shapes.ttl          (default core.shapes.ttl)
    # ontology: core.ontology.ttl       (mixed into the data graph)
    # expect: none | focus=ex:m1 path=ex:end constraint=SPARQL value='"2005"^^<...>' ...
    # expect@pyshacl: ...               (engine-specific; replaces `expect` and
                                        #  `expect-crash` for that engine)
    # expect-crash: shape=ex:S constraint=LessThanOrEquals
    # expect-input-error: line=8 col=32
    # conforms: true | false

``*.shapes.ttl`` files declare ``# expect-shapes:`` lines for :func:`validate_shapes`.
In expectations, ``focus=_`` means any blank node and CURIEs use the file's own prefixes.
"""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pyoxigraph as ox
import pyshacl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from namkg.shacl import oxigraph as sx
from namkg.shacl.engines import ENGINES as VALIDATION_ENGINES
from namkg.shacl.engines import rdflib_default_datatypes, violations_from_graph
from namkg.shacl.load import InputError, load_graph
from namkg.shacl.sparql import DataStore, plan_checks
from namkg.shacl.terms import ValidationCrash, Violation, parse_path, path_string
from namkg.shacl.validation import Report, validate, validate_shapes
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.namespace import RDF, SH, XSD

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "validation"
CORE = FIXTURES / "core.shapes.ttl"
ENGINES = VALIDATION_ENGINES
KEYS = {"shapes", "ontology", "expect", "expect@pyshacl", "expect@oxigraph",
        "expect@pyshacl-turbo", "expect-crash",
        "expect-input-error", "conforms", "expect-shapes"}
CASES = sorted(p for p in FIXTURES.glob("*.ttl") if not p.name.endswith((".shapes.ttl",
                                                                          ".ontology.ttl")))
SHAPES = sorted(FIXTURES.glob("*.shapes.ttl"))
EX = "http://example.org/"
# rdflib's own complaint on the way to pyshacl's gYear TypeError
pytestmark = pytest.mark.filterwarnings(
    "ignore:NotImplemented should not be used:DeprecationWarning")


def headers(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        m = re.match(r"#\s*([a-z][\w@-]*):\s*(.*)$", line)
        if m and (m.group(1) in KEYS or m.group(1).startswith("expect")):
            assert m.group(1) in KEYS, f"{path.name}: unknown header {m.group(1)!r}"
            out.setdefault(m.group(1), []).append(m.group(2).strip())
    return out


def expectations(path: Path, lines: list[str]) -> list[dict[str, str]]:
    if lines == ["none"]:
        return []
    prefixes = dict(re.findall(r"@prefix\s+(\w*):\s*<([^>]*)>", path.read_text(encoding="utf-8")))

    def expand(key, value):
        if key == "constraint" and re.fullmatch(r"\w+", value):
            return f"{SH}{value}ConstraintComponent"
        m = re.fullmatch(r"(\w*):(\w+)", value)
        if key in ("focus", "path", "shape") and m and m.group(1) in prefixes:
            return prefixes[m.group(1)] + m.group(2)
        return value

    return [
        {k: expand(k, v) for k, v in (tok.split("=", 1) for tok in shlex.split(line))}
        for line in lines
    ]


def assert_matches(found: list[Violation], expected: list[dict[str, str]]) -> None:
    """Every expectation matches a distinct result and no result is left over."""

    def ok(v, exp):
        return all(
            getattr(v, k).startswith("_:") if want == "_" and k in ("focus", "shape")
            else getattr(v, k) == want
            for k, want in exp.items()
        )

    left = list(found)
    for exp in sorted(expected, key=len, reverse=True):
        hit = next((v for v in left if ok(v, exp)), None)
        assert hit is not None, f"expected {exp}\nnot among:\n" + "\n".join(map(str, left))
        left.remove(hit)
    assert not left, "unexpected results:\n" + "\n".join(map(str, left))


def run(case: Path, engine: str, **kw) -> Report:
    h = headers(case)
    return validate(
        [case], FIXTURES / h.get("shapes", ["core.shapes.ttl"])[0],
        ontology_paths=[FIXTURES / o for o in h.get("ontology", [])], sparql_engine=engine, **kw)


def unlabelled(violations: list[Violation]) -> list[Violation]:
    """Blank node labels differ between parses; compare everything else."""

    def strip(s):
        return "_:" if s and s.startswith("_:") else s

    return sorted((replace(v, focus=strip(v.focus), shape=strip(v.shape)) for v in violations),
                  key=Violation.sort_key)


# ---------------------------------------------------------------------------- data-driven


def test_every_fixture_declares_an_expectation():
    for case in CASES:
        h = headers(case)
        assert {"expect", "expect@pyshacl", "expect-crash", "expect-input-error"} & h.keys(), case
    for shapes in SHAPES:
        assert "expect-shapes" in headers(shapes), shapes


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_fixture(case: Path, engine: str):
    h = headers(case)
    if "expect-input-error" in h:
        where = dict(tok.split("=") for tok in h["expect-input-error"][0].split())
        with pytest.raises(InputError) as err:
            run(case, engine)
        assert (err.value.line, err.value.col) == (int(where["line"]), int(where["col"]))
        assert str(err.value).startswith(f"{case}:{where['line']}:{where['col']}: Turtle syntax")
        return
    if "expect-crash" in h and f"expect@{engine}" not in h:
        (want,) = expectations(case, h["expect-crash"])
        with pytest.raises(ValidationCrash) as err:
            run(case, engine)
        shape = want["shape"].replace("ex:", EX)
        assert err.value.shape == shape and err.value.constraint == want["constraint"]
        assert shape in str(err.value)
        return
    report = run(case, engine)
    lines = h[f"expect@{engine}"] if f"expect@{engine}" in h else h["expect"]
    assert_matches(report.violations, expectations(case, lines))
    if "conforms" in h:
        assert report.conforms is (h["conforms"][0] == "true")


@pytest.mark.parametrize("shapes", SHAPES, ids=lambda p: p.stem)
def test_shapes_against_shacl_shacl(shapes: Path):
    report = validate_shapes(shapes)
    expected = expectations(shapes, headers(shapes)["expect-shapes"])
    assert_matches(report.violations, expected)
    assert report.conforms is (not expected)


# ---------------------------------------------------------------------------- engines


def compiled(shapes: Path) -> dict[str, str | None]:
    """Each shape with targets: None if the Oxigraph engine compiles it, else why not."""
    engine = sx.Engine(DataStore(ox.Store()), load_graph([shapes]), Graph)
    out = {}
    for shape in engine.top_level():
        try:
            engine.compile(shape)
            out[str(shape.node)] = None
        except sx.Unsupported as exc:
            out[str(shape.node)] = str(exc)
    return out


def test_oxigraph_engine_compiles_the_shapes_it_is_compared_on():
    # Otherwise "both engines agree" below would only compare pyshacl with itself.
    for shapes in (CORE, FIXTURES / "logic.shapes.ttl", REPO / "ontology" / "shapes.ttl"):
        found = compiled(shapes)
        assert len(found) >= 5 and not any(found.values()), (shapes.name, found)
    left = compiled(FIXTURES / "mixed.shapes.ttl")
    assert {k.removeprefix(EX): bool(v) for k, v in left.items()} == {
        "ClosedShape": True, "PairShape": True, "Line": True, "LabelShape": True,
        "NestedShape": True, "CompiledShape": False}
    # What pyshacl runs keeps its sh:sparql constraints on Oxigraph.
    planned = plan_checks(load_graph([CORE]))
    assert len(planned) == len(set(load_graph([CORE]).subject_objects(SH.sparql))) == 3
    assert {c.shape for c in planned} >= {URIRef(EX + "MembershipShape"),
                                          URIRef(EX + "MemberOfShape")}


@pytest.mark.parametrize("case", [c for c in CASES if headers(c).keys() & {"expect"}],
                         ids=lambda p: p.stem)
def test_engines_agree(case: Path):
    a, b = run(case, "pyshacl"), run(case, "oxigraph")
    assert unlabelled(a.violations) == unlabelled(b.violations)
    assert a.conforms == b.conforms


def test_oxigraph_engine_binds_many_focus_nodes_including_blank_ones(tmp_path):
    # More focus nodes than one VALUES block holds, and blank nodes (bound one by one).
    lines = ["@prefix ex: <http://example.org/> .",
             "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> ."]
    late = set()
    for i in range(6000):
        begin, end = 1900 + i % 100, 1900 + i % 100 + (-1 if i % 7 == 0 else 3)
        subject = f"ex:m{i}" if i % 1000 else "[]"  # six blank memberships, one per thousand
        lines.append(f'{subject} a ex:Membership ; ex:begin "{begin}"^^xsd:gYear ; '
                     f'ex:end "{end}"^^xsd:gYear .')
        if i % 7 == 0:
            late.add(EX + f"m{i}" if i % 1000 else f"blank{i}")
    data = tmp_path / "many.ttl"
    data.write_text("\n".join(lines), encoding="utf-8")
    report = validate([data], FIXTURES / "gyear-str.shapes.ttl", sparql_engine="oxigraph")
    named = {v.focus for v in report.violations if not v.focus.startswith("_:")}
    assert named == {f for f in late if f.startswith(EX)}
    assert sum(v.focus.startswith("_:") for v in report.violations) == 1  # only i == 0 is late


# Per-value checks the engine writes as SPARQL (used as they are inside sh:not, sh:or...) must
# decide exactly as pyshacl does, value by value.
VALUE_CHECKS = [f"sh:nodeKind sh:{k}" for k in (
    "IRI", "Literal", "BlankNode", "BlankNodeOrIRI", "BlankNodeOrLiteral", "IRIOrLiteral")] + [
    'sh:languageIn ( "en" "AR" )', 'sh:languageIn ( "*" )', "sh:languageIn ( )",
    'sh:languageIn ( "EN-us" "ar" )',
    'sh:in ( ex:a "1"^^xsd:integer "x" "x"@en "2011"^^xsd:gYear )', "sh:in ( )",
    "sh:minLength 2", "sh:minLength 0", "sh:maxLength 3",
    "sh:datatype xsd:string", "sh:datatype rdf:langString", "sh:datatype xsd:integer",
    "sh:datatype xsd:gYear", "sh:datatype xsd:boolean", "sh:datatype rdfs:Literal",
    'sh:pattern "^a" ; sh:flags "i"', "sh:minInclusive 1", 'sh:maxExclusive "2011"^^xsd:gYear',
    "sh:class ex:C", "sh:not [ sh:class ex:C ]", "sh:node [ sh:nodeKind sh:IRI ]",
    "sh:or ( [ sh:datatype xsd:integer ] [ sh:languageIn ( \"en\" ) ] )",
    "sh:xone ( [ sh:nodeKind sh:IRIOrLiteral ] [ sh:minLength 2 ] )",
]
VALUE_SHAPES = ("@prefix sh: <http://www.w3.org/ns/shacl#> . @prefix ex: <http://example.org/> .\n"
                "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"
                "@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .\n"
                "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n") + "".join(
    f"ex:S{i} a sh:NodeShape ; sh:targetClass ex:T ; sh:property [ sh:path ex:p ; {c} ] .\n"
    for i, c in enumerate(VALUE_CHECKS))
XSD_ = "http://www.w3.org/2001/XMLSchema#"
terms = st.one_of(
    st.sampled_from(["http://example.org/a", "http://example.org/b", "urn:x"]).map(ox.NamedNode),
    st.builds(ox.BlankNode),
    st.builds(lambda text, lang: ox.Literal(text, language=lang), st.text(max_size=4),
              st.sampled_from(["en", "EN-gb", "ar", "fr", "en-us-x-y", "en-US", "arb"])),
    st.builds(lambda text, dt: ox.Literal(text, datatype=ox.NamedNode(XSD_ + dt)),
              st.sampled_from(["", "a", "Ab", "x", "1", "01", "-5", "2", "abc", "2011", "2012",
                               "1.5", " 7", "true", "1e3", "2011-05-01"]),
              st.sampled_from(["string", "integer", "decimal", "double", "gYear", "boolean",
                               "date", "token"])),
)


@pytest.fixture(scope="module")
def value_engine():
    store = ox.Store()
    store.add(ox.Quad(ox.NamedNode(EX + "a"), ox.NamedNode(str(RDF.type)), ox.NamedNode(EX + "C")))
    sg = Graph().parse(data=VALUE_SHAPES, format="turtle")
    engine = sx.Engine(DataStore(store), sg, Graph)
    checks = []
    for i in range(len(VALUE_CHECKS)):
        (prop,) = engine.components(engine.shape(URIRef(f"{EX}S{i}")))
        (c,) = engine.components(engine.shape(prop.property_shapes[0]))
        checks.append((c, engine.ok(c, "?v", ())))
    return engine, checks


@settings(max_examples=150, deadline=None)
@given(terms)
def test_value_checks_in_sparql_decide_as_pyshacl(value_engine, term):
    engine, checks = value_engine
    s, p = ox.NamedNode(EX + "s"), ox.NamedNode(EX + "p")
    store = engine.st.store
    for q in list(store.quads_for_pattern(s, p, None)):
        store.remove(q)
    store.add(ox.Quad(s, p, term))
    (stored,) = [q.object for q in store.quads_for_pattern(s, p, None)]  # as Oxigraph holds it
    value = engine.st.rdflib(stored)
    data = Graph()
    data.add((URIRef(EX + "a"), RDF.type, URIRef(EX + "C")))
    data.add((URIRef(EX + "s"), URIRef(EX + "p"), value))
    with rdflib_default_datatypes():
        for (c, ok), text in zip(checks, VALUE_CHECKS, strict=True):
            ask = f"ASK {{ <{EX}s> <{EX}p> ?v FILTER(COALESCE({ok}, false)) }}"
            sparql = bool(store.query(ask, custom_functions=engine.functions))
            pyshacl_ok, _ = c.evaluate(engine.executor, data, {URIRef(EX + "s"): {value}}, [])
            assert sparql is pyshacl_ok, (text, repr(value))


@pytest.mark.parametrize("engine", ENGINES)
def test_blank_node_labels_are_local_to_their_file(tmp_path, engine):
    head = ("@prefix ex: <http://example.org/> .\n"
            "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n")
    a, b = tmp_path / "a.ttl", tmp_path / "b.ttl"
    a.write_text(head + "_:m a ex:Membership ; ex:member ex:az .\nex:az a ex:Country .\n")
    b.write_text(head + '_:m ex:begin "2011"^^xsd:gYear .\n')  # another node, same label
    found = validate([a, b], CORE, sparql_engine=engine).violations
    (v,) = [v for v in found if v.focus.startswith("_:")]
    assert v.path == EX + "begin" and v.constraint == str(SH.MinCountConstraintComponent)


# ---------------------------------------------------------------------------- gYear traps


@pytest.mark.parametrize("engine", ENGINES)
def test_str_comparison_of_years_catches_end_before_begin(engine):
    report = run(FIXTURES / "gyear-str.ttl", engine)
    assert [(v.focus, v.message) for v in report.violations] == [
        (EX + "late", "ends 2005 before it begins 2011")]


def test_typed_year_comparison_silently_passes_in_pyshacl():
    # If this fails, pyshacl learnt to order xsd:gYear: the STR() rule may be relaxed.
    report = run(FIXTURES / "gyear-typed.ttl", "pyshacl")
    assert report.conforms and report.violations == []
    # Oxigraph orders gYear: one more reason to use STR(), so both engines agree.
    assert [v.focus for v in run(FIXTURES / "gyear-typed.ttl", "oxigraph").violations] == [
        EX + "late"]


@pytest.mark.parametrize("engine", ["pyshacl", "oxigraph"])  # pyshacl-turbo gets it right
def test_less_than_or_equals_on_years_is_a_clear_error_not_a_traceback(engine):
    with pytest.raises(ValidationCrash) as err:
        run(FIXTURES / "gyear-less-than-or-equals.ttl", engine)
    assert isinstance(err.value.__cause__, TypeError)  # what pyshacl raised
    assert f"shape {EX}BeginNotAfterEndShape (LessThanOrEquals)" in str(err.value)
    assert "compare STR()" in str(err.value)


def year_value():
    return Literal("2011", datatype=XSD.gYear).value  # None with rdflib's own conversions


@pytest.fixture
def rdfs_inference_ran():
    """pyshacl's RDFS inference (owlrl) swaps rdflib's literal conversions for the process."""
    with rdflib_default_datatypes():  # the conversions before, given back afterwards
        assert year_value() is None
        pyshacl.validate(Graph(), shacl_graph=Graph(), inference="rdfs")
        assert year_value() is not None  # gYear literals now get Python values
        yield


def test_results_do_not_depend_on_owlrl_having_run(rdfs_inference_ran):
    # Unpinned, pyshacl would now order gYear: no crash, no false sh:minInclusive results.
    with pytest.raises(ValidationCrash):
        run(FIXTURES / "gyear-less-than-or-equals.ttl", "pyshacl")
    assert len(run(FIXTURES / "gyear-min-inclusive.ttl", "pyshacl").violations) == 2
    assert year_value() is not None  # the caller's state is given back


# ---------------------------------------------------------------------------- input errors


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"nope\.ttl: cannot read"):
        validate([tmp_path / "nope.ttl"], CORE)
    with pytest.raises(InputError, match=r"nope\.shapes\.ttl: cannot read"):
        validate([FIXTURES / "valid.ttl"], tmp_path / "nope.shapes.ttl")


def test_shapes_syntax_error_names_the_shapes_file(tmp_path):
    shapes = tmp_path / "bad.shapes.ttl"
    shapes.write_text("@prefix sh: <http://www.w3.org/ns/shacl#> .\n\n<urn:s> sh:path .\n")
    with pytest.raises(InputError) as err:
        validate([FIXTURES / "valid.ttl"], shapes)
    assert str(err.value) == f"{shapes}:3:17: Turtle syntax error: . is not a valid RDF object"


def test_bad_utf8_is_located(tmp_path):
    data = tmp_path / "latin1.ttl"
    data.write_bytes(b'@prefix ex: <http://example.org/> .\nex:a ex:name "Baku\xe9" .\n')
    with pytest.raises(InputError, match=r"latin1\.ttl:2:19: Turtle syntax error: Invalid UTF-8"):
        load_graph([data])


# ---------------------------------------------------------------------------- reports


@pytest.fixture(scope="module")
def report() -> Report:
    return run(FIXTURES / "invalid-organisations.ttl", "pyshacl")


def test_text_report(report):
    lines = report.to_text().splitlines()
    assert len(lines) == len(report.violations) + 1
    for line in lines[:-1]:
        assert re.match(r"(Violation|Warning|Info) focus=\S+ path=\S+ value=.* constraint=\w+: ",
                        line), line
    assert f"focus=<{EX}un> path=^<{EX}memberOf> value=- constraint=MinCount: an organisation" \
        in lines[-2]
    assert lines[-1].startswith("FAIL: 3 violations, 1 warnings, 0 infos in 2 files")


def test_text_report_keeps_one_line_per_result():
    v = Violation(EX + "a", None, '"two\\nlines"', str(SH.SPARQLConstraintComponent), EX + "S",
                  "Violation", "a message\nover two lines")
    lines = Report(False, [v, v], ["d.ttl"], 0.1).to_text().splitlines()
    assert len(lines) == 3 and lines[0].endswith("SPARQL: a message\\nover two lines")


def test_json_report(report):
    body = json.loads(report.to_json())
    assert set(body) == {"conforms", "passed", "fail_on", "violations", "files"}
    assert body["conforms"] is False and body["files"] == report.files
    assert body["passed"] is False and body["fail_on"] == "info"
    assert [Violation(**v) for v in body["violations"]] == report.violations


def test_turtle_report_is_a_validation_report(report):
    g = Graph().parse(data=report.to_turtle(), format="turtle")
    assert unlabelled(violations_from_graph(g)) == unlabelled(report.violations)
    ask = """ASK { ?r a sh:ValidationReport ; sh:conforms false ;
                     sh:result [ sh:focusNode <http://example.org/un> ;
                                 sh:resultPath [ sh:inversePath <http://example.org/memberOf> ] ;
                                 sh:resultSeverity sh:Violation ] }"""
    assert g.query(ask, initNs={"sh": SH}).askAnswer


def test_junit_report(report):
    """A test case per shape without results and one per shape and focus node with results,
    named ``shape · focus`` in the files' prefixes; the failure says path, value and message."""
    root = ET.fromstring(report.to_junit())
    cases = root.findall("./testsuite/testcase")
    by_name = {c.get("name"): c for c in cases}
    assert len(by_name) == len(cases) == int(root.find("testsuite").get("tests"))
    failed = {name for name, c in by_name.items() if c.find("failure") is not None}
    assert failed == {"ex:OrganisationShape / ^ex:memberOf · ex:un", "ex:MemberOfShape · ex:az",
                      "ex:CountryShape / ex:label · ex:az", "ex:CountryShape / ex:sameAs · ex:az"}
    assert int(root.find("testsuite").get("failures")) == 4  # the warning fails too, by default
    assert {"ex:PersonShape / ex:name", "ex:MembershipShape"} <= set(by_name) - failed
    assert not any("_:" in name for name in by_name)  # no blank node labels as names
    inverse = by_name["ex:OrganisationShape / ^ex:memberOf · ex:un"]
    assert inverse.get("classname") == "ex:OrganisationShape / ^ex:memberOf"
    failure = inverse.find("failure")
    assert failure.get("type") == "MinCount"
    assert failure.get("message") == "MinCount at ^ex:memberOf: an organisation needs at least " \
        "one member"
    assert "path: ^ex:memberOf" in failure.text and "value: -" in failure.text
    label = by_name["ex:CountryShape / ex:label · ex:az"].find("failure")
    assert 'value: "Azerbaijan"' in label.text and "path: ex:label" in label.text
    assert "label Azerbaijan has no language tag" in label.get("message")
    lenient = replace(report, fail_on="violation")  # the warning: output, not a failure
    warned = {c.get("name"): c for c in ET.fromstring(lenient.to_junit()).iter("testcase")}[
        "ex:CountryShape / ex:sameAs · ex:az"]
    assert warned.find("failure") is None and "Warning" in warned.find("system-out").text


@pytest.mark.parametrize("engine", ENGINES)
def test_warnings_fail_unless_fail_on_violation(engine):
    strict = run(FIXTURES / "warning-only.ttl", engine)  # the default: any result fails
    assert not strict.conforms and not strict.passed
    assert len(ET.fromstring(strict.to_junit()).findall(".//failure")) == 1
    for fail_on in ("warning", "info"):
        assert not run(FIXTURES / "warning-only.ttl", engine, fail_on=fail_on).passed
    lenient = run(FIXTURES / "warning-only.ttl", engine, fail_on="violation")
    assert lenient.passed and not lenient.conforms  # reported, not failed
    assert len(lenient.violations) == 1
    root = ET.fromstring(lenient.to_junit())
    assert root.findall(".//failure") == [] and "Warning" in root.find(".//system-out").text


def test_reports_carry_any_literal(tmp_path):
    data = tmp_path / "odd.ttl"
    data.write_text('@prefix ex: <http://example.org/> .\n'
                    'ex:p a ex:Person ; ex:name """bell\\u0007 & <tag>\n\\"أذربيجان\\\\"""@en .\n',
                    encoding="utf-8")
    report = validate([data], CORE)
    (v,) = report.violations
    assert v.value == '"bell\x07 & <tag>\\n\\"أذربيجان\\\\"@en'
    failure = ET.fromstring(report.to_junit()).find(".//failure")
    assert "&amp;" not in failure.text and "<tag>" in failure.text and "أذربيجان" in failure.text
    g = Graph().parse(data=report.to_turtle(), format="turtle")
    assert unlabelled(violations_from_graph(g)) == unlabelled(report.violations)


# ---------------------------------------------------------------------------- paths


def shacl_paths(depth=3):
    iri = st.sampled_from(["urn:p", "urn:q", "http://example.org/r"]).map(lambda s: ("iri", s))
    return st.recursive(iri, lambda inner: st.one_of(
        st.tuples(st.just("inv"), inner),
        st.tuples(st.sampled_from([SH.zeroOrMorePath, SH.oneOrMorePath, SH.zeroOrOnePath]), inner),
        st.tuples(st.just("seq"), st.lists(inner, min_size=2, max_size=3)),
        st.tuples(st.just("alt"), st.lists(inner, min_size=2, max_size=3)),
    ), max_leaves=6)


def build(g: Graph, tree):
    kind, arg = tree
    if kind == "iri":
        return URIRef(arg)
    if kind == "seq":
        return Collection(g, BNode(), [build(g, t) for t in arg]).uri
    node = BNode()
    if kind == "alt":
        g.add((node, SH.alternativePath, Collection(g, BNode(), [build(g, t) for t in arg]).uri))
    else:
        g.add((node, SH.inversePath if kind == "inv" else kind, build(g, arg)))
    return node


@settings(max_examples=150, deadline=None)
@given(shacl_paths())
def test_paths_render_as_sparql_and_parse_back(tree):
    g = Graph()
    text = path_string(g, build(g, tree))
    g2 = Graph()
    assert path_string(g2, parse_path(text, g2)) == text
    sparql = text if text.startswith(("<", "^", "(")) else f"<{text}>"
    list(ox.Store().query(f"SELECT * WHERE {{ ?s {sparql} ?o }}"))  # valid SPARQL path syntax


@pytest.mark.parametrize("text", ["^!<urn:p>", "(!(<urn:p>|<urn:q>))*", "<urn:p>/ex:q", "(<urn:p>",
                                  "<urn:p>//<urn:q>", "^<urn:p q>"])
def test_paths_parse_only_what_a_shacl_path_says(text):
    # rdflib's SPARQL grammar reads negated property sets and prefixed names too
    g = Graph()
    with pytest.raises(ValueError):
        parse_path(text, g)
    assert len(g) == 0
