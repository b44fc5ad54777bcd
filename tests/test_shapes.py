"""The project's SHACL shapes (ontology/shapes.ttl) against small fixtures and the real data.

Each tests/fixtures/invalid/*.ttl breaks one rule and is otherwise complete; its leading
comment lines say what validation must find, one line per result:

    # expect: focus=:quote-5 path=nam:translation constraint=MinCountConstraintComponent

``path=-`` means no result path (node-level and SPARQL constraints); CURIEs use the file's own
prefixes. The set of (focus, path, constraint) found must equal the expected set exactly.
tests/fixtures/valid/*.ttl declare ``# expect: none`` and must conform.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner
from namkg.cli import main
from namkg.shacl.load import load_graph
from namkg.shacl.validation import ENGINES, Report, validate, validate_shapes
from rdflib import RDF, Graph, URIRef
from rdflib.namespace import SH

REPO = Path(__file__).resolve().parent.parent
SHAPES = REPO / "ontology" / "shapes.ttl"
ONTOLOGY = REPO / "ontology" / "nam.ttl"
DATA = sorted((REPO / "data").glob("*.ttl"))
FIXTURES = Path(__file__).parent / "fixtures"
INVALID = sorted((FIXTURES / "invalid").glob("*.ttl"))
VALID = sorted((FIXTURES / "valid").glob("*.ttl"))
NAMKG = [sys.executable, "-m", "namkg.cli"]

Key = tuple[str, str | None, str]  # (focus, path, constraint)


def expected(path: Path) -> set[Key]:
    """The ``# expect:`` lines of a fixture's leading comments, CURIEs expanded."""
    text = path.read_text(encoding="utf-8")
    prefixes = dict(re.findall(r"@prefix\s+([\w-]*):\s*<([^>]*)>", text))

    def iri(value: str) -> str:
        if "://" in value:
            return value
        prefix, _, local = value.partition(":")
        assert prefix in prefixes, f"{path.name}: undeclared prefix in {value!r}"
        return prefixes[prefix] + local

    out: set[Key] = set()
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if m := re.match(r"#\s*expect:\s*(.*)$", line):
            if m.group(1).strip() == "none":
                continue
            fields = dict(tok.split("=", 1) for tok in m.group(1).split())
            assert fields.keys() == {"focus", "path", "constraint"}, f"{path.name}: {line}"
            constraint = fields["constraint"].removesuffix("ConstraintComponent")
            out.add((iri(fields["focus"]), None if fields["path"] == "-" else iri(fields["path"]),
                     f"{SH}{constraint}ConstraintComponent"))
    return out


@cache
def report(path: Path, engine: str = "pyshacl") -> Report:
    """Validated once per session: several tests look at the same fixture's report."""
    return validate([path], SHAPES, ontology_paths=[ONTOLOGY], sparql_engine=engine)


def found(r: Report) -> list[Key]:
    return [(v.focus, v.path, v.constraint) for v in r.violations]


def test_expectations_parse():
    assert expected(FIXTURES / "invalid" / "quote-without-translation.ttl") == {(
        "https://w3id.org/nam-kg/id/quote-5", "https://w3id.org/nam-kg/ontology#translation",
        "http://www.w3.org/ns/shacl#MinCountConstraintComponent")}
    assert expected(FIXTURES / "invalid" / "claim-also-fact.ttl") == {(
        "https://w3id.org/nam-kg/id/claim-correct-position", None,
        "http://www.w3.org/ns/shacl#NotConstraintComponent")}
    assert len(INVALID) >= 14 and all(expected(p) for p in INVALID)
    assert VALID and not any(expected(p) for p in VALID)


# ---------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.stem)
def test_invalid_fixture_breaks_exactly_its_rule(case: Path):
    r = report(case)
    assert not r.conforms
    assert sorted(found(r), key=str) == sorted(expected(case), key=str)  # no extra, no duplicate
    for v in r.violations:
        assert v.severity == "Violation" and v.message
        assert not re.search(r"\{[?$]\w+\}", v.message), f"unfilled template: {v.message}"


OWN_MESSAGES = {str(s) for s, _ in load_graph([SHAPES]).subject_objects(SH.message)}


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "pyshacl"])
@pytest.mark.parametrize("case", INVALID + VALID, ids=lambda p: p.parent.name + "/" + p.stem)
def test_engines_report_the_same(case: Path, engine: str):
    """Each engine against pyshacl, the reference: every field of every result; messages too
    where the shapes write them (pyshacl-turbo words its default messages its own way); only
    blank node labels differ between parses."""
    def fields(r: Report) -> list[tuple]:
        return sorted(tuple("_:" if x.startswith("_:") else x for x in (
            v.focus, v.path or "", v.value or "", v.constraint, v.shape, v.severity,
            v.message if engine == "oxigraph" or v.shape in OWN_MESSAGES
            or v.constraint.endswith("SPARQLConstraintComponent") else ""))
            for v in r.violations)

    ours, theirs = report(case, engine), report(case, "pyshacl")
    assert fields(ours) == fields(theirs)
    assert ours.conforms == theirs.conforms
    names = [sorted(re.sub(r"_:\w+", "_:", n) for n in r.shape_names.values())
             for r in (ours, theirs)]
    assert names[0] == names[1]  # the JUnit test cases


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", VALID, ids=lambda p: p.stem)
def test_valid_fixture_conforms(case: Path, engine: str):
    r = report(case, engine)
    assert r.conforms and r.violations == [], r.to_text()


@pytest.mark.parametrize("engine", ENGINES)
def test_repository_data_conforms(engine: str):
    r = validate(DATA, SHAPES, ontology_paths=[ONTOLOGY], sparql_engine=engine)
    assert r.conforms and r.violations == [], r.to_text()
    assert len(r.files) == len(DATA) + 1 >= 7


def test_shapes_pass_shacl_shacl():
    r = validate_shapes(SHAPES)
    assert r.conforms and r.violations == [], r.to_text()


def test_every_shape_and_sparql_constraint_is_broken_by_some_fixture():
    """A constraint no fixture breaks may be one that cannot fire: add a fixture with it."""
    sg = load_graph([SHAPES])
    node_shapes = {sg.namespace_manager.curie(s) for s in sg.subjects(RDF.type, SH.NodeShape)
                   if isinstance(s, URIRef)}
    broken = set()
    messages = []
    for case in INVALID:
        r = report(case)
        broken |= {r.shape_names[v.shape].split(" / ")[0] for v in r.violations}
        messages += [v.message for v in r.violations]
    assert node_shapes - broken == set()
    templates = [str(m) for c in sg.objects(None, SH.sparql) for m in sg.objects(c, SH.message)]
    assert len(templates) == 7
    for t in templates:  # "{?value}" matches whatever value filled it
        pattern = ".+?".join(map(re.escape, re.split(r"\{[?$]\w+\}", t)))
        assert any(re.search(pattern, m) for m in messages), f"never fires: {t}"


def test_sparql_results_name_the_values():
    (v,) = report(FIXTURES / "invalid" / "interval-ends-before-begins.ttl").violations
    assert v.message == "interval ends (2011) before it begins (2019)"
    assert v.value == '"2011"^^<http://www.w3.org/2001/XMLSchema#gYear>'
    (v,) = report(FIXTURES / "invalid" / "observer-ends-after-full-membership.ttl").violations
    assert v.message == "observer status ends (2012) after full membership begins (2011)"


# Regressions: each message names its own problem.


def test_duplicate_label_message_names_the_duplicate():
    (v,) = report(FIXTURES / "invalid" / "label-two-english.ttl").violations
    assert "Arabic" not in v.message


def test_year_month_message_is_only_the_disagreement():
    (v,) = report(FIXTURES / "invalid" / "year-month-disagrees-with-year.ttl").violations
    assert v.message == ("time:inXSDgYearMonth or time:inXSDDate (2012-07) disagrees with "
                         "time:inXSDgYear (2011)")


# ---------------------------------------------------------------------------- the CLI


def namkg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NAMKG, "validate", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_cli_repository_conforms():
    done = namkg()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("OK: 0 violations")


@pytest.mark.parametrize("case", INVALID + VALID, ids=lambda p: p.parent.name + "/" + p.stem)
def test_cli_exit_code_and_results(case: Path):
    # The real command in-process (no interpreter start per fixture), on the default engine
    # (pyshacl-turbo): with the library tests above on pyshacl's, both see every fixture.
    # Explicit PATHS replace the repository's files, so the ontology is passed along.
    done = CliRunner().invoke(main, ["validate", "--format", "json",
                                     "--shapes", str(SHAPES), str(ONTOLOGY), str(case)])
    assert done.exit_code == (1 if expected(case) else 0), done.output
    body = json.loads(done.stdout)
    assert body["conforms"] is (not expected(case))
    keys = [(v["focus"], v["path"], v["constraint"]) for v in body["violations"]]
    assert sorted(keys, key=str) == sorted(expected(case), key=str)


def test_cli_text_report():
    case = FIXTURES / "invalid" / "quote-exact-not-arabic.ttl"
    done = namkg(str(ONTOLOGY), str(case))
    assert done.returncode == 1
    result, summary = done.stdout.splitlines()
    assert result.startswith(
        "Violation focus=<https://w3id.org/nam-kg/id/quote-5> path=<http://www.w3.org/ns/oa#exact> "
        'value="قررت اذربيجان في عام 2011 أن تصبح عضوًا"@en constraint=LanguageIn: ')
    assert re.fullmatch(r"FAIL: 1 violations, 0 warnings, 0 infos in 2 files \(\d+\.\d\d s\)",
                        summary)


def test_cli_exits_2_on_a_syntax_error_and_names_file_line_col(tmp_path):
    bad = tmp_path / "bad.ttl"
    bad.write_text('@prefix : <https://w3id.org/nam-kg/id/> .\n'
                   '@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n\n'
                   ':azerbaijan rdfs:label "أذربيجان"@ar ,, "Azerbaijan"@en .\n', encoding="utf-8")
    done = namkg(str(bad))
    assert done.returncode == 2 and done.stdout == ""
    # line 4, the second comma: columns count characters, not UTF-8 bytes
    assert f"{bad}:4:39: Turtle syntax error" in done.stderr


CASE = FIXTURES / "invalid" / "observer-ends-after-full-membership.ttl"


def test_cli_json_report():
    done = namkg("--format", "json", str(ONTOLOGY), str(CASE))
    assert done.returncode == 1
    body = json.loads(done.stdout)
    assert body["conforms"] is False and body["files"] == [str(ONTOLOGY), str(CASE)]
    assert {(v["focus"], v["path"], v["constraint"]) for v in body["violations"]} == expected(CASE)


def test_cli_turtle_report():
    done = namkg("--format", "turtle", str(ONTOLOGY), str(CASE))
    assert done.returncode == 1
    g = Graph().parse(data=done.stdout, format="turtle")
    rows = set(g.query("""
        SELECT ?focus ?component WHERE {
            ?r a sh:ValidationReport ; sh:conforms false ; sh:result ?res .
            ?res sh:focusNode ?focus ; sh:sourceConstraintComponent ?component ;
                 sh:resultSeverity sh:Violation .
        }""", initNs={"sh": SH}))
    assert {(str(f), str(c)) for f, c in rows} == {(f, c) for f, _, c in expected(CASE)}


def test_cli_junit_report():
    done = namkg("--format", "junit", str(ONTOLOGY), str(CASE))
    assert done.returncode == 1
    root = ET.fromstring(done.stdout)
    failures = root.findall(".//testcase/failure")
    assert len(failures) == 1 == int(root.find("testsuite").get("failures"))
    assert failures[0].get("type") == "SPARQL"
    assert "observer status ends (2012)" in failures[0].get("message")
    ok = namkg("--format", "junit")
    assert ok.returncode == 0 and ET.fromstring(ok.stdout).findall(".//failure") == []
