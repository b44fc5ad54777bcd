"""SHACL validation of nam-kg's Turtle, with text, JSON, Turtle and JUnit reports.

:func:`validate` checks files; the data are parsed by Oxigraph's parser into rdflib terms with
every literal exactly as written (rdflib's own constructor would rewrite ``"01"^^xsd:integer``
as ``"1"``, and even ``"none"^^xsd:boolean`` as ``"false"``). Three engines (:data:`ENGINES`):

- ``pyshacl-turbo``, the default: pyshacl's ``validate()`` in Rust (pinned). On the W3C SHACL
  suite (core + sparql, tests/test_shacl_w3c.py) it passes 120 of 120, pyshacl 119 (no
  ``$shapesGraph``); on our fixtures and on generated graphs (tests/test_shacl_differential.py)
  its results equal pyshacl's field by field, except where pyshacl is wrong (xsd:gYear order,
  values of other types under ordering constraints). Where it fails to run, pyshacl judges.
  Its default messages (for shapes without ``sh:message``) are worded differently. Neither
  engine reports every ill-typed literal under ordering constraints (``"300"^^xsd:byte``
  against ``sh:maxInclusive 1000``): pair bounds with ``sh:datatype``, as our shapes do.
- ``pyshacl``: the reference implementation.
- ``oxigraph``: our own, the shapes compiled into SPARQL on an Oxigraph store
  (:mod:`namkg.shacl.oxigraph`; what it does not compile goes to pyshacl, see ``--explain``).
  Fast, but the store canonicalises literals (``"4.0"^^xsd:decimal`` as ``"4"``, xsd:byte as
  xsd:integer), so it judges and reports other literals than the data's, and some SPARQL
  pre-binding is wrong: 111 of 120 on the W3C suite. Kept as an opt-in for comparison.

Conformance is the spec's: any result, whatever its severity, means non-conforming
(:attr:`Report.conforms`); ``fail_on`` only decides which results fail the run
(:attr:`Report.passed`, the exit code). Nested shapes (``sh:or``...) are judged by the spec
too: a Warning inside makes the node not conform to that shape.

Known pyshacl traps (see tests/test_validation_reports.py): ordering comparisons of ``xsd:gYear``
literals are broken (``sh:lessThanOrEquals`` crashes, ``sh:minInclusive`` & co. flag every value,
``FILTER(?end < ?begin)`` in SPARQL silently never matches).  Compare ``STR()`` of years instead.
Worse, once owlrl (pyshacl's RDFS inference) has run anywhere in the process, rdflib's literal
conversions change globally and the first two behave differently; validation therefore pins
rdflib's default conversions while it runs.

Paths render as SPARQL property paths and parse back:

>>> from rdflib import Graph
>>> g = Graph().parse(data='''@prefix sh: <http://www.w3.org/ns/shacl#> .
...   <urn:s> sh:path ( [ sh:inversePath <urn:p> ] [ sh:zeroOrMorePath <urn:q> ] ) .''')
>>> path_string(g, g.value(URIRef("urn:s"), SH.path))
'^<urn:p>/<urn:q>*'
>>> g2 = Graph(); n = parse_path("^<urn:p>/<urn:q>*", g2); path_string(g2, n)
'^<urn:p>/<urn:q>*'
>>> path_string(g, URIRef("urn:p"))
'urn:p'
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyoxigraph as ox
import pyshacl
import pyshacl_turbo
from pyshacl.constraints.constraint_component import ConstraintComponent
from rdflib import RDF, XSD, BNode, Graph, Literal, URIRef
from rdflib.namespace import OWL, RDFS, SH
from rdflib.term import Node, XSDToPython, _toPythonMapping

from . import oxigraph as sx
from .sparql import (
    DataStore,
    plan_checks,
    run_checks,
    select_clause,
    without_checks,
    without_targets,
)
from .terms import (
    SEVERITIES,
    TARGETS,
    ValidationCrash,
    Violation,
    angle,
    from_node_str,
    node_str,
    parse_path,
    path_string,
    render_path,
    short_name,
    term_str,
)

__all__ = [
    "InputError",
    "Report",
    "ValidationCrash",
    "Violation",
    "judge",
    "load_graph",
    "load_store",
    "parse_path",
    "path_string",
    "validate",
    "validate_shapes",
]

LINT = "urn:nam-kg:lint:"  # constraint IRIs of our own shapes-graph checks (validate_shapes)
ENGINES = ("pyshacl-turbo", "pyshacl", "oxigraph")  # the first is the default
DEFAULT_ENGINE = ENGINES[0]
FAIL_ON = ("info", "warning", "violation")  # the default first: any result fails


class InputError(Exception):
    """Unreadable input: a missing file or a Turtle syntax error, located as ``path:line:col``.

    >>> str(InputError("data/facts.ttl", "Turtle syntax error: x", 12, 5))
    'data/facts.ttl:12:5: Turtle syntax error: x'
    >>> str(InputError("nope.ttl", "no such file"))
    'nope.ttl: no such file'
    """

    def __init__(self, path, message: str, line: int | None = None, col: int | None = None):
        self.path, self.message, self.line, self.col = str(path), message, line, col
        where = self.path if line is None else f"{self.path}:{line}:{col or 1}"
        super().__init__(f"{where}: {message}")


@dataclass
class Report:
    conforms: bool  # the SHACL spec's answer: no result of any severity
    violations: list[Violation]  # every result, whatever its severity
    files: list[str]
    seconds: float
    shapes: list[str] = field(default_factory=list)  # every shape checked (JUnit test cases)
    shape_names: dict[str, str] = field(default_factory=dict)  # shape -> readable name
    fail_on: str = "info"  # the least severe result that fails (FAIL_ON)
    judged_by: dict[str, str] = field(default_factory=dict)  # shape -> engine that judged it
    prefixes: dict[str, str] = field(default_factory=dict)  # for readable focus nodes

    def counts(self) -> Counter:
        return Counter(v.severity for v in self.violations)

    def failing(self, v: Violation) -> bool:
        """Whether this result fails the run; a severity SHACL does not define always does."""
        return _RANK.get(v.severity, _RANK["Violation"]) >= _RANK[self.fail_on.capitalize()]

    @property
    def passed(self) -> bool:
        """No failing result: what the exit code says (equals ``conforms`` at ``info``)."""
        return not any(map(self.failing, self.violations))

    def to_text(self) -> str:
        """One line per result and a summary line.

        >>> v = Violation("urn:m", "urn:begin", None, str(SH.MinCountConstraintComponent),
        ...               "urn:S", "Violation", "Less than 1 values")
        >>> print(Report(False, [v], ["d.ttl"], 0.5).to_text())
        Violation focus=<urn:m> path=<urn:begin> value=- constraint=MinCount: Less than 1 values
        FAIL: 1 violations, 0 warnings, 0 infos in 1 files (0.50 s)
        >>> w = Violation("urn:m", None, None, str(SH.MinCountConstraintComponent), "urn:S",
        ...               "Warning", "Less than 1 values")
        >>> print(Report(False, [w], ["d.ttl"], 0.5, fail_on="violation").to_text())
        ... # doctest: +ELLIPSIS
        Warning focus=<urn:m> path=- ...
        OK: 0 violations, 1 warnings, 0 infos in 1 files (0.50 s); not conforming, passed by ...
        """
        lines = [
            f"{v.severity} focus={angle(v.focus)} path={angle(v.path) if v.path else '-'} "
            f"value={_one_line(v.value or '-')} constraint={short_name(v.constraint)}: "
            f"{_one_line(v.message)}"
            for v in self.violations
        ]
        c = self.counts()
        lenient = "" if self.conforms or not self.passed else \
            f"; not conforming, passed by --fail-on {self.fail_on}"
        other = sum(n for k, n in c.items() if k not in _RANK)
        lines.append(
            f"{'OK' if self.passed else 'FAIL'}: {c['Violation']} violations, {c['Warning']} "
            f"warnings, {c['Info']} infos" + (f", {other} of other severities" if other else "")
            + f" in {len(self.files)} files ({self.seconds:.2f} s){lenient}"
        )
        return "\n".join(lines)

    def explain(self) -> str:
        """Which engine judged which shape, one line per shape."""
        return "\n".join(f"{self.judged_by[s]:14} {self.shape_names.get(s, s)}"
                         for s in sorted(self.judged_by, key=lambda s: self.shape_names.get(s, s)))

    def to_json(self) -> str:
        body = {"conforms": self.conforms, "passed": self.passed, "fail_on": self.fail_on,
                "violations": [asdict(v) for v in self.violations], "files": self.files}
        return json.dumps(body, ensure_ascii=False, indent=2)

    def to_turtle(self) -> str:
        """A ``sh:ValidationReport`` graph."""
        g = Graph()
        g.bind("sh", SH)
        report = BNode()
        g.add((report, RDF.type, SH.ValidationReport))
        g.add((report, SH.conforms, Literal(self.conforms)))
        for v in self.violations:
            r = BNode()
            g.add((report, SH.result, r))
            g.add((r, RDF.type, SH.ValidationResult))
            g.add((r, SH.focusNode, from_node_str(v.focus)))
            if v.path is not None:
                g.add((r, SH.resultPath, parse_path(v.path, g)))
            if v.value is not None:
                g.add((r, SH.value, from_node_str(v.value)))
            g.add((r, SH.sourceConstraintComponent, URIRef(v.constraint)))
            g.add((r, SH.sourceShape, from_node_str(v.shape)))
            g.add((r, SH.resultSeverity, SH[v.severity] if v.severity in SEVERITIES.values()
                   else URIRef(v.severity)))
            if v.message:
                g.add((r, SH.resultMessage, Literal(v.message)))
        return g.serialize(format="turtle")

    def to_junit(self) -> str:
        """JUnit XML: a test case per shape without results, and one per shape and focus node
        with results (``nam:MembershipShape · id:membership-full``), failed by the failing
        ones; results below ``fail_on`` go to its ``<system-out>``."""
        by_case: dict[tuple, list[Violation]] = {(s, None): [] for s in self.shapes}
        for v in self.violations:
            by_case.pop((v.shape, None), None)
            by_case.setdefault((v.shape, v.focus), []).append(v)
        cases = []
        for (shape, focus), found in by_case.items():
            name = self.shape_names.get(shape, shape)
            if focus is not None:
                name += " · " + self.compact(focus)
            cases.append((name, self.shape_names.get(shape, shape), found))
        cases.sort(key=lambda c: c[0])
        failures = sum(any(map(self.failing, found)) for _, _, found in cases)
        suites = ET.Element("testsuites", name="shacl", tests=str(len(cases)),
                            failures=str(failures), errors="0", time=f"{self.seconds:.3f}")
        suite = ET.SubElement(suites, "testsuite", name="shacl", tests=str(len(cases)),
                              failures=str(failures), errors="0", skipped="0",
                              time=f"{self.seconds:.3f}")
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="files",
                      value=_xml_safe(" ".join(self.files)))
        for name, classname, found in cases:
            case = ET.SubElement(suite, "testcase", classname=_xml_safe(classname),
                                 name=_xml_safe(name), time="0")
            failing = [v for v in found if self.failing(v)]
            if failing:
                first = failing[0]
                summary = f"{short_name(first.constraint)}"
                if first.path:
                    summary += f" at {self.compact(first.path)}"
                summary += f": {first.message}"
                if len(failing) > 1:
                    summary += f" (and {len(failing) - 1} more)"
                f = ET.SubElement(case, "failure", message=_xml_safe(_one_line(summary)),
                                  type=" ".join(sorted({short_name(v.constraint)
                                                        for v in failing})))
                f.text = _xml_safe("\n\n".join(self._detail(v) for v in failing))
            notes = [self._detail(v) for v in found if not self.failing(v)]
            if notes:
                ET.SubElement(case, "system-out").text = _xml_safe("\n\n".join(notes))
        return ET.tostring(suites, encoding="unicode", xml_declaration=True)

    def _detail(self, v: Violation) -> str:
        return "\n".join([
            f"{v.severity}: {v.message}",
            f"focus: {self.compact(v.focus)}",
            f"path: {self.compact(v.path) if v.path else '-'}",
            f"value: {v.value or '-'}",
            f"constraint: {v.constraint}",
            f"shape: {self.shape_names.get(v.shape, v.shape)}",
        ])

    def compact(self, s: str) -> str:
        """An IRI as a CURIE with the shapes' or data's prefixes; anything else as is.

        >>> Report(True, [], [], 0, prefixes={"id": "https://w3id.org/nam-kg/id/"}).compact(
        ...     "https://w3id.org/nam-kg/id/membership-full")
        'id:membership-full'
        >>> Report(True, [], [], 0, prefixes={"ex": "urn:ex:"}).compact("^<urn:ex:p>/<urn:q>")
        '^ex:p/<urn:q>'
        """
        if s.startswith(("<", "^", "(")):  # a property path
            try:
                g = Graph()
                node = parse_path(s, g)
            except ValueError:
                return s
            return self.compact(str(node)) if isinstance(node, URIRef) else \
                render_path(g, node, 0, lambda u: self.compact(str(u)))
        if s.startswith(("_:", '"')):
            return s
        best = max((ns for ns in self.prefixes.values() if s.startswith(ns)), key=len,
                   default=None)
        if best is not None and re.fullmatch(r"[\w][\w.-]*", s[len(best):]):
            prefix = next(k for k, ns in self.prefixes.items() if ns == best)
            return f"{prefix}:{s[len(best):]}"
        return f"<{s}>"


_RANK = {"Info": 0, "Warning": 1, "Violation": 2}


def _one_line(s: str) -> str:
    """Text reports keep one line per result: line breaks in values and messages escaped."""
    return s.replace("\r", "\\r").replace("\n", "\\n")


# ---------------------------------------------------------------------------- loading


def load_graph(paths: Iterable[Path]) -> Graph:
    """Parse Turtle (or ``.nt``) files into one graph; :class:`InputError` names ``file:line:col``.

    Parsing is Oxigraph's, as for the store that gets built: the same strictness (IRIs are
    checked), precise error positions, and it is faster than rdflib's Turtle parser.
    """
    g = Graph()
    for path in paths:
        _parse_into(g, Path(path))
    return g


def load_store(paths: Iterable[Path]) -> ox.Store:
    """The files in the default graph of an in-memory Oxigraph store (the same parser and errors
    as :func:`load_graph`, without the Python objects: far faster on big inputs)."""
    store = ox.Store()
    for path in map(Path, paths):
        with input_errors(path):
            data = path.read_bytes()
            store.bulk_load(data, format=_format(path), base_iri=path.resolve().as_uri())
        if b"<<" in data:  # perhaps an RDF 1.2 triple term: rejected as load_graph does
            _parse_into(Graph(), path)
    return store


def prefix_graph(paths: Iterable[Path]) -> Graph:
    """An empty graph with the namespace bindings :func:`load_graph` gives (pyshacl's messages
    print IRIs with them)."""
    g = Graph()
    for path in map(Path, paths):
        with input_errors(path), path.open("rb") as f:
            parser = ox.parse(f, format=_format(path), base_iri=path.resolve().as_uri())
            for _ in parser:
                pass
        for prefix, ns in parser.prefixes.items():
            g.bind(prefix, ns, override=False)
    return g


def _format(path: Path) -> ox.RdfFormat:
    return ox.RdfFormat.N_TRIPLES if path.suffix == ".nt" else ox.RdfFormat.TURTLE


@contextmanager
def input_errors(path: Path):
    """Missing files and syntax errors as :class:`InputError` at ``path:line:col``."""
    try:
        yield
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    except SyntaxError as exc:
        why = re.sub(r"^Parser error [^:]*: ", "", str(exc))
        why = re.sub(r" \((?:[^()]*, )?line \d+\)$", "", why)
        raise InputError(path, f"Turtle syntax error: {why}", exc.lineno or 1, exc.offset or 1) \
            from None


def _parse_into(g: Graph, path: Path) -> None:
    with input_errors(path), path.open("rb") as f:
        # Blank node labels are local to their file, as in the store (fresh labels).
        parser = ox.parse(f, format=_format(path), base_iri=path.resolve().as_uri(),
                          rename_blank_nodes=True)
        triples = list(parser)
    for prefix, ns in parser.prefixes.items():  # for readable shape names in reports
        g.bind(prefix, ns, override=False)
    terms: dict = {}  # one rdflib object per distinct term: most terms repeat
    try:
        for t in triples:
            g.add((_term(t.subject, terms), _term(t.predicate, terms), _term(t.object, terms)))
    except TypeError as exc:
        raise InputError(path, str(exc)) from None


def _term(t, cache: dict) -> Node:
    hit = cache.get(t)
    if hit is not None:
        return hit
    if isinstance(t, ox.NamedNode):
        hit = URIRef(t.value)
    elif isinstance(t, ox.BlankNode):
        hit = BNode(t.value)
    elif isinstance(t, ox.Literal):
        # normalize=False: rdflib would rewrite the lexical form of valid typed literals
        # ("01"^^xsd:integer as "1", "1E3"^^xsd:double as "1000.0") and even of some invalid
        # ones ("none"^^xsd:boolean as "false"); literals are judged as written.
        dt = t.datatype.value
        hit = (Literal(t.value, lang=t.language) if t.language
               else Literal(t.value) if dt == str(XSD.string)
               else Literal(t.value, datatype=URIRef(dt), normalize=False))
    else:
        raise TypeError(f"RDF 1.2 triple terms are not supported: {t}")
    cache[t] = hit
    return hit


# ---------------------------------------------------------------------------- entry points


def validate(
    data_paths: Iterable[Path],
    shapes_path: Path,
    *,
    ontology_paths: Iterable[Path] = (),
    sparql_engine: str = DEFAULT_ENGINE,
    fail_on: str = "info",
) -> Report:
    """Validate data (plus ontology, mixed into the data graph) against a shapes file.

    ``sparql_engine`` is one of :data:`ENGINES` (see the module's docstring); ``fail_on`` the
    least severe result that makes the report fail (:data:`FAIL_ON`).
    """
    _check_engine(sparql_engine)
    start = time.perf_counter()
    files = [str(p) for p in (*ontology_paths, *data_paths)]
    with _rdflib_default_datatypes():
        shapes = _as_specified(load_graph([Path(shapes_path)]))
        if sparql_engine == "oxigraph":

            data = None
            found, judged = _validate_store(
                DataStore(load_store(files)), shapes,
                lambda: load_graph(map(Path, files)), lambda: prefix_graph(files))
        else:
            data = load_graph(Path(f) for f in files)
            found, judged = judge(data, shapes, sparql_engine)
    return _report(found, files, start, shapes, fail_on, judged, data)


def judge(data: Graph, shapes: Graph, engine: str = DEFAULT_ENGINE
          ) -> tuple[list[Violation], dict[str, str]]:
    """The results of ``engine`` on parsed graphs, and which engine judged which shape (the
    same for all but ``oxigraph``). Blank nodes keep their labels, literals their form; except
    that the ``oxigraph`` engine judges literals as Oxigraph stores them (canonical)."""
    _check_engine(engine)
    shapes = _as_specified(shapes)
    with _rdflib_default_datatypes():
        if engine == "oxigraph":
            return _validate_store(DataStore.of_graph(data), shapes, lambda: data, lambda: data)
        if engine == "pyshacl-turbo":
            try:
                found = _run_turbo(data, shapes, "none")
            except ValidationCrash:
                # The reference decides: its results, or its error (which names the shape).
                engine, found = "pyshacl", _run_pyshacl(data, shapes, "none")
        else:
            found = _run_pyshacl(data, shapes, "none")
    return found, {s: engine for s in _targeted(shapes)}


def _as_specified(sg: Graph) -> Graph:
    """The shapes with ``sh:uniqueLang`` only where it is the literal ``true``, the one value
    that activates it (W3C core/property/uniqueLang-002: ``"1"^^xsd:boolean``, equal in value,
    does not); pyshacl and pyshacl-turbo compare values."""
    off = [t for t in sg.triples((None, SH.uniqueLang, None))
           if not (isinstance(t[2], Literal) and t[2].datatype == XSD.boolean
                   and str(t[2]) == "true")]
    if not off:
        return sg
    copy = Graph()
    for prefix, ns in sg.namespaces():
        copy.bind(prefix, ns, override=True)
    copy += sg
    for t in off:
        copy.remove(t)
    return copy


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}: {engine!r}")


def _validate_store(st, sg: Graph, rdflib_data: Callable[[], Graph],
                    prefixes: Callable[[], Graph]) -> tuple[list[Violation], dict[str, str]]:
    """Compiled shapes on Oxigraph; the shapes it cannot compile by pyshacl on an rdflib copy."""

    data = None

    def once() -> Graph:
        nonlocal data
        if data is None:
            data = rdflib_data()
        return data

    engine, top = None, []
    if (None, SH.rule, None) not in sg:  # SHACL-AF rules add data first: all to pyshacl
        try:
            engine = sx.Engine(st, sg, prefixes)
            top = list(engine.top_level())
        except Exception:  # pyshacl cannot load these shapes: let it say why
            engine = None
    tasks, compiled, left = [], [], engine is None
    for shape in top:
        try:
            tasks += engine.compile(shape)
            compiled.append(shape.node)
        except sx.Unsupported:
            left = True
    found = []
    if left:
        rest = without_targets(sg, compiled)
        checks = plan_checks(rest)
        found += _run_pyshacl(once(), without_checks(rest, checks), "none")
        found += run_checks(once(), rest, checks, st if engine else None)
    if engine is not None:
        found += engine.run(tasks)
    judged = {s: "pyshacl" for s in _targeted(sg)}
    judged.update({node_str(s): "oxigraph" for s in compiled})
    return found, judged


def validate_shapes(shapes_path: Path, *, fail_on: str = "info") -> Report:
    """Validate a shapes file against SHACL-SHACL (as ``pyshacl --metashacl``, but without RDFS
    inference, which changes rdflib globally; see below) plus our lints:
    ``sh:select`` queries whose results pyshacl would drop, and ordering constraints on
    ``xsd:gYear``."""
    start = time.perf_counter()
    with _rdflib_default_datatypes():
        shapes = load_graph([Path(shapes_path)])
        meta = Graph().parse(Path(pyshacl.__file__).parent / "assets" / "shacl-shacl.ttl")
        found = _run_pyshacl(Graph() + shapes, meta, "none") + _lint_shapes(shapes)
    return _report(found, [str(shapes_path)], start, meta, fail_on, {})


@contextmanager
def _rdflib_default_datatypes():
    """Run with rdflib's own literal conversions, restoring the caller's afterwards.

    owlrl (pyshacl's RDFS/OWL inference) swaps in its own conversions for the whole process,
    after which xsd:gYear literals order and pyshacl's results change; pinning the default keeps
    validation independent of what ran before in the process.
    """
    saved = dict(_toPythonMapping)
    _toPythonMapping.clear()
    _toPythonMapping.update(XSDToPython)
    try:
        yield
    finally:
        _toPythonMapping.clear()
        _toPythonMapping.update(saved)


def _report(found, files, start, shapes: Graph, fail_on: str, judged: dict[str, str],
            data: Graph | None = None) -> Report:
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}: {fail_on!r}")
    found.sort(key=Violation.sort_key)
    names = {s: _shape_name(shapes, s) for s in _all_shapes(shapes)}
    for v in found:
        names.setdefault(v.shape, v.shape)
    prefixes = {str(k): str(v) for k, v in data.namespaces()} if data is not None else {}
    prefixes.update((str(k), str(v)) for k, v in shapes.namespaces())  # the shapes' win
    return Report(not found, found, files, time.perf_counter() - start, sorted(names), names,
                  fail_on, judged, _named_prefixes(prefixes))


def _named_prefixes(prefixes: dict[str, str]) -> dict[str, str]:
    """The empty prefix, a bare ``:`` in reports, named after its namespace's last segment.

    >>> _named_prefixes({"": "https://w3id.org/nam-kg/id/", "nam": "urn:nam#"})
    {'nam': 'urn:nam#', 'id': 'https://w3id.org/nam-kg/id/'}
    """
    out = {k: v for k, v in prefixes.items() if k}
    if "" in prefixes:
        m = re.search(r"([A-Za-z][\w-]*)[/#]$", prefixes[""])
        if m and m.group(1) not in out and prefixes[""] not in out.values():
            out[m.group(1)] = prefixes[""]
    return out


# ---------------------------------------------------------------------------- pyshacl


# Every result is reported whatever these say; but allowing warnings would also make a node
# with only Warning results conform to a shape inside sh:or, sh:not, sh:node... where the spec
# says it does not (any result means non-conformance).
_STRICT = {"allow_warnings": False, "allow_infos": False}


def _run_pyshacl(data: Graph, shapes: Graph, inference: str) -> list[Violation]:
    try:
        _, result, _ = pyshacl.validate(
            data, shacl_graph=shapes, advanced=True, inference=inference, inplace=True,
            **_STRICT,
        )
    except Exception as exc:
        raise _crash(exc) from exc
    if isinstance(result, BaseException):  # pyshacl returns its ValidationFailure as the report
        raise _crash(result) from result
    return violations_from_graph(result)


def _run_turbo(data: Graph, shapes: Graph, inference: str) -> list[Violation]:
    """pyshacl-turbo: pyshacl's ``validate()`` in Rust; it reads the rdflib terms as they are
    (literals exactly as written) and its reports are pyshacl's but for default messages."""

    try:
        _, result, _ = pyshacl_turbo.validate(  # not inplace: a crash must leave data intact
            data, shacl_graph=shapes, advanced=True, inference=inference, inplace=False,
            **_STRICT,
        )
    except Exception as exc:
        raise ValidationCrash(f"pyshacl-turbo failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, BaseException):  # as pyshacl: its ValidationFailure as the report
        raise ValidationCrash(f"pyshacl-turbo failed: {type(result).__name__}: {result}") \
            from result
    return violations_from_graph(result)


def _crash(exc: BaseException) -> ValidationCrash:
    """Name the innermost shape and constraint component pyshacl was evaluating."""

    shape = constraint = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, ConstraintComponent):
            shape, constraint = owner.shape.node, str(owner.shacl_constraint_component)
        elif isinstance(owner, pyshacl.Shape):
            shape = owner.node
        tb = tb.tb_next
    where = "" if shape is None else f" in shape {node_str(shape)}"
    if constraint:
        where += f" ({short_name(constraint)})"
    hint = ""
    if "not supported between instances of 'Literal'" in str(exc):
        hint = " (typed literals that pyshacl cannot order, e.g. xsd:gYear: compare STR())"
    return ValidationCrash(
        f"pyshacl failed{where}: {type(exc).__name__}: {exc}{hint}",
        None if shape is None else node_str(shape), constraint,
    )


def violations_from_graph(g: Graph) -> list[Violation]:
    """The top-level results of a ``sh:ValidationReport`` graph (nested sh:detail ignored)."""
    out = []
    for report in g.subjects(RDF.type, SH.ValidationReport):
        for r in g.objects(report, SH.result):
            path, value = g.value(r, SH.resultPath), g.value(r, SH.value)
            severity = g.value(r, SH.resultSeverity)
            out.append(Violation(
                focus=node_str(g.value(r, SH.focusNode)),
                path=None if path is None else path_string(g, path),
                value=None if value is None else term_str(value),
                constraint=str(g.value(r, SH.sourceConstraintComponent)),
                shape=node_str(g.value(r, SH.sourceShape)),
                severity=SEVERITIES.get(severity, str(severity)),
                message="; ".join(sorted({str(m) for m in g.objects(r, SH.resultMessage)})),
            ))
    return out


# ---------------------------------------------------------------------------- terms and paths


# ---------------------------------------------------------------------------- shape names


def _all_shapes(sg: Graph) -> set[str]:
    shapes: set[Node] = set()
    for cls in (SH.NodeShape, SH.PropertyShape):
        shapes.update(sg.subjects(RDF.type, cls))
    for pred in (*TARGETS, SH.path):
        shapes.update(sg.subjects(pred, None))
    for pred in (SH.property, SH.node):
        shapes.update(sg.objects(None, pred))
    return {node_str(s) for s in shapes if not isinstance(s, Literal)}


def _targeted(sg: Graph) -> set[str]:
    """The shapes validated on their own: with targets, or implicit class targets."""
    shapes = {s for pred in TARGETS for s in sg.subjects(pred, None)}
    for cls in (RDFS.Class, OWL.Class):
        shapes.update(s for s in sg.subjects(RDF.type, cls)
                      if (s, RDF.type, SH.NodeShape) in sg or (s, RDF.type, SH.PropertyShape) in sg)
    return {node_str(s) for s in shapes if not isinstance(s, Literal)}


_NESTING = (SH.property, SH.node, SH["not"], SH.qualifiedValueShape)
_LISTS = (SH["and"], SH["or"], SH.xone)


def _shape_name(sg: Graph, shape: str, depth: int = 0) -> str:
    """IRIs compacted with the shapes file's prefixes; a blank shape named from the shape that
    holds it: ``namsh:S / org:role``, ``namsh:S / sh:or / time:hasEnd``."""
    node = from_node_str(shape)
    if isinstance(node, URIRef):
        return _compact(sg, node)
    path = sg.value(node, SH.path)
    own = "" if path is None else " / " + (
        _compact(sg, path) if isinstance(path, URIRef)
        else path_string(sg, path, lambda u: _compact(sg, u)))
    parent, via = _holder(sg, node)
    if parent is None or depth > 8:
        return shape + own
    hop = "" if via == SH.property else " / " + _compact(sg, via)
    return _shape_name(sg, node_str(parent), depth + 1) + hop + own


def _holder(sg: Graph, node: Node) -> tuple[Node | None, Node | None]:
    """The shape that refers to ``node`` and by which predicate (the first found)."""
    for pred in _NESTING:
        for parent in sg.subjects(pred, node):
            return parent, pred
    cell = next(sg.subjects(RDF.first, node), None)  # in a list: walk back to its head
    if cell is None:
        return None, None
    while (prev := sg.value(None, RDF.rest, cell)) is not None:
        cell = prev
    for pred in _LISTS:
        for parent in sg.subjects(pred, cell):
            return parent, pred
    return None, None


def _compact(g: Graph, iri: URIRef) -> str:
    try:
        return g.namespace_manager.curie(iri, generate=False)
    except (KeyError, ValueError):
        return f"<{iri}>"


# ---------------------------------------------------------------------------- lints


_ORDERING = (SH.lessThan, SH.lessThanOrEquals, SH.minInclusive, SH.minExclusive,
             SH.maxInclusive, SH.maxExclusive)


def _lint_shapes(sg: Graph) -> list[Violation]:

    out = []
    for shape, c in sg.subject_objects(SH.sparql):
        for query in sg.objects(c, SH.select):
            sel = select_clause(str(query))
            if sel and not sel.star and not (sel.projected & {"this", "value", "path", "failure"}):
                out.append(Violation(
                    node_str(shape), None, None, LINT + "SelectProjectsThis",
                    LINT + "SelectProjectsThis",
                    "Violation", "sh:select projects none of $this, ?value, ?path: pyshacl "
                    "silently drops every result of this query"))
    for pred in _ORDERING:
        for shape, bound in sg.subject_objects(pred):
            gyear = (shape, SH.datatype, XSD.gYear) in sg or (
                isinstance(bound, Literal) and bound.datatype == XSD.gYear)
            if gyear:
                out.append(Violation(
                    node_str(shape), None, term_str(bound), LINT + "GYearOrder",
                    LINT + "GYearOrder", "Violation",
                    f"{_compact(sg, pred)} on xsd:gYear is broken in pyshacl (crash or wrong "
                    "results): compare STR() in sh:sparql"))
    return out


def _xml_safe(s: str) -> str:
    """Drop characters XML 1.0 cannot carry (data literals may hold any code point)."""
    return re.sub(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "\ufffd", s)
