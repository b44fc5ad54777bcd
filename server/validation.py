"""SHACL validation of nam-kg's Turtle, with text, JSON, Turtle and JUnit reports.

:func:`validate` checks files, :func:`validate_store` data already in an Oxigraph store (the
build's). The default engine, ``sparql_engine="oxigraph"``, loads the data into Oxigraph and
evaluates the shapes there (:mod:`server.shacl_oxigraph`, which compiles them into SPARQL); the
shapes it cannot compile go to pyshacl on an rdflib copy, their ``sh:sparql`` constraints still on
Oxigraph (:mod:`server.shacl_sparql`). ``sparql_engine="pyshacl"`` is pyshacl alone
(``advanced=True`` for SHACL-AF targets, no inference): the reference, which both must match,
:class:`Violation` for :class:`Violation`. One difference remains: Oxigraph stores valid typed
literals in canonical form (``"1.0"^^xsd:decimal`` as ``"1"``), so checks on their lexical form
(and the value shown) see that form.

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
from rdflib import RDF, XSD, BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.namespace import SH
from rdflib.term import Node, XSDToPython, _toPythonMapping

__all__ = [
    "InputError",
    "Report",
    "ValidationCrash",
    "Violation",
    "load_graph",
    "load_store",
    "parse_path",
    "path_string",
    "validate",
    "validate_shapes",
    "validate_store",
]

LINT = "urn:nam-kg:lint:"  # constraint IRIs of our own shapes-graph checks (validate_shapes)
SEVERITIES = {SH.Violation: "Violation", SH.Warning: "Warning", SH.Info: "Info"}


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


class ValidationCrash(Exception):
    """The validator itself failed (a pyshacl exception, a malformed shape); names the shape."""

    def __init__(self, message: str, shape: str | None = None, constraint: str | None = None):
        self.shape, self.constraint = shape, constraint
        super().__init__(message)


@dataclass(frozen=True)
class Violation:
    focus: str  # IRI, "_:label" for a blank node, N-Triples form for a literal
    path: str | None  # IRI, or a SPARQL property path for complex paths
    value: str | None  # N-Triples form
    constraint: str  # sh:sourceConstraintComponent IRI
    shape: str  # sh:sourceShape IRI or "_:label"
    severity: str  # "Violation" | "Warning" | "Info"
    message: str

    def sort_key(self) -> tuple:
        return (self.focus, self.path or "", self.constraint, self.message, self.value or "",
                self.shape, self.severity)


@dataclass
class Report:
    conforms: bool
    violations: list[Violation]
    files: list[str]
    seconds: float
    shapes: list[str] = field(default_factory=list)  # every shape checked (JUnit test cases)
    shape_names: dict[str, str] = field(default_factory=dict)  # shape -> readable name
    allow_warnings: bool = True  # whether Warning/Info results leave the data conforming

    def counts(self) -> Counter:
        return Counter(v.severity for v in self.violations)

    def failing(self, v: Violation) -> bool:
        return v.severity == "Violation" or not self.allow_warnings

    def to_text(self) -> str:
        """One line per result and a summary line.

        >>> v = Violation("urn:m", "urn:begin", None, str(SH.MinCountConstraintComponent),
        ...               "urn:S", "Violation", "Less than 1 values")
        >>> print(Report(False, [v], ["d.ttl"], 0.5).to_text())
        Violation focus=<urn:m> path=<urn:begin> value=- constraint=MinCount: Less than 1 values
        FAIL: 1 violations, 0 warnings, 0 infos in 1 files (0.50 s)
        """
        lines = [
            f"{v.severity} focus={_angle(v.focus)} path={_angle(v.path) if v.path else '-'} "
            f"value={v.value or '-'} constraint={short_name(v.constraint)}: {v.message}"
            for v in self.violations
        ]
        c = self.counts()
        lines.append(
            f"{'OK' if self.conforms else 'FAIL'}: {c['Violation']} violations, {c['Warning']} "
            f"warnings, {c['Info']} infos in {len(self.files)} files ({self.seconds:.2f} s)"
        )
        return "\n".join(lines)

    def to_json(self) -> str:
        body = {"conforms": self.conforms, "violations": [asdict(v) for v in self.violations],
                "files": self.files}
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
            g.add((r, SH.focusNode, _from_node_str(v.focus)))
            if v.path is not None:
                g.add((r, SH.resultPath, parse_path(v.path, g)))
            if v.value is not None:
                g.add((r, SH.value, _from_node_str(v.value)))
            g.add((r, SH.sourceConstraintComponent, URIRef(v.constraint)))
            g.add((r, SH.sourceShape, _from_node_str(v.shape)))
            g.add((r, SH.resultSeverity, SH[v.severity] if v.severity in SEVERITIES.values()
                   else URIRef(v.severity)))
            if v.message:
                g.add((r, SH.resultMessage, Literal(v.message)))
        return g.serialize(format="turtle")

    def to_junit(self) -> str:
        """JUnit XML: one test case per shape, one ``<failure>`` per failing result."""
        by_shape: dict[str, list[Violation]] = {s: [] for s in self.shapes}
        for v in self.violations:
            by_shape.setdefault(v.shape, []).append(v)
        failures = sum(self.failing(v) for v in self.violations)
        suites = ET.Element("testsuites", name="shacl", tests=str(len(by_shape)),
                            failures=str(failures), errors="0", time=f"{self.seconds:.3f}")
        suite = ET.SubElement(suites, "testsuite", name="shacl", tests=str(len(by_shape)),
                              failures=str(failures), errors="0", skipped="0",
                              time=f"{self.seconds:.3f}")
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="files",
                      value=_xml_safe(" ".join(self.files)))
        order = sorted(by_shape, key=lambda s: self.shape_names.get(s, s))
        for shape in order:
            case = ET.SubElement(suite, "testcase", classname="shacl",
                                 name=_xml_safe(self.shape_names.get(shape, shape)), time="0")
            notes = []
            for v in by_shape[shape]:
                detail = "\n".join(f"{k}: {val}" for k, val in asdict(v).items() if val)
                if self.failing(v):
                    f = ET.SubElement(case, "failure", type=short_name(v.constraint),
                                      message=_xml_safe(f"{_angle(v.focus)}: {v.message}"))
                    f.text = _xml_safe(detail)
                else:
                    notes.append(detail)
            if notes:
                ET.SubElement(case, "system-out").text = _xml_safe("\n\n".join(notes))
        return ET.tostring(suites, encoding="unicode", xml_declaration=True)


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
        dt = t.datatype.value
        hit = (Literal(t.value, lang=t.language) if t.language
               else Literal(t.value) if dt == str(XSD.string)
               else Literal(t.value, datatype=URIRef(dt)))
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
    sparql_engine: str = "oxigraph",
    allow_warnings: bool = True,
) -> Report:
    """Validate data (plus ontology, mixed into the data graph) against a shapes file.

    ``sparql_engine="oxigraph"`` (the default) evaluates the shapes on an Oxigraph store
    (:mod:`server.shacl_oxigraph`, pyshacl for what it does not compile); ``"pyshacl"`` runs
    pyshacl alone, the reference both must agree with.
    """
    if sparql_engine not in ("pyshacl", "oxigraph"):
        raise ValueError(f"sparql_engine must be 'pyshacl' or 'oxigraph': {sparql_engine!r}")
    start = time.perf_counter()
    files = [str(p) for p in (*ontology_paths, *data_paths)]
    with _rdflib_default_datatypes():
        if sparql_engine == "oxigraph":
            store = load_store(files)
            shapes = load_graph([Path(shapes_path)])
            found = _validate_store(store, None, shapes, files)
        else:
            data = load_graph(Path(f) for f in files)
            shapes = load_graph([Path(shapes_path)])
            found = _run_pyshacl(data, shapes, "none")
    return _report(found, files, start, shapes, allow_warnings)


def validate_store(store: ox.Store, graphs: list[ox.NamedNode] | None, shapes_path: Path,
                   files: Iterable[Path], *, allow_warnings: bool = True) -> Report:
    """Validate data already in ``store``: the union of ``graphs`` (None: the default graph),
    parsed from ``files`` (read again only if pyshacl must run or for result messages)."""
    start = time.perf_counter()
    files = [str(f) for f in files]
    with _rdflib_default_datatypes():
        shapes = load_graph([Path(shapes_path)])
        found = _validate_store(store, graphs, shapes, files)
    return _report(found, files, start, shapes, allow_warnings)


def _validate_store(store: ox.Store, graphs, sg: Graph, files: list[str]) -> list[Violation]:
    """Compiled shapes on Oxigraph; the shapes it cannot compile by pyshacl on an rdflib copy."""
    from . import shacl_oxigraph as sx  # these import this module
    from .shacl_sparql import (
        DataStore,
        plan_checks,
        run_checks,
        without_checks,
        without_targets,
    )

    st, data = DataStore(store, graphs), None

    def rdflib_data() -> Graph:
        nonlocal data
        if data is None:
            data = load_graph(map(Path, files))
        return data

    engine, top = None, []
    if (None, SH.rule, None) not in sg:  # SHACL-AF rules add data first: all to pyshacl
        try:
            engine = sx.Engine(st, sg, lambda: prefix_graph(files))
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
        found += _run_pyshacl(rdflib_data(), without_checks(rest, checks), "none")
        found += run_checks(rdflib_data(), rest, checks, st if engine else None)
    if engine is not None:
        found += engine.run(tasks)
    return found


def validate_shapes(shapes_path: Path, *, allow_warnings: bool = True) -> Report:
    """Validate a shapes file against SHACL-SHACL (as ``pyshacl --metashacl``, but without RDFS
    inference, which changes rdflib globally; see below) plus our lints:
    ``sh:select`` queries whose results pyshacl would drop, and ordering constraints on
    ``xsd:gYear``."""
    start = time.perf_counter()
    with _rdflib_default_datatypes():
        shapes = load_graph([Path(shapes_path)])
        meta = Graph().parse(Path(pyshacl.__file__).parent / "assets" / "shacl-shacl.ttl")
        found = _run_pyshacl(Graph() + shapes, meta, "none") + _lint_shapes(shapes)
    return _report(found, [str(shapes_path)], start, meta, allow_warnings)


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


def _report(found, files, start, shapes: Graph, allow_warnings: bool) -> Report:
    found.sort(key=Violation.sort_key)
    conforms = not any(v.severity == "Violation" or not allow_warnings for v in found)
    names = {s: _shape_name(shapes, s) for s in _all_shapes(shapes)}
    for v in found:
        names.setdefault(v.shape, v.shape)
    return Report(conforms, found, files, time.perf_counter() - start, sorted(names), names,
                  allow_warnings)


# ---------------------------------------------------------------------------- pyshacl


def _run_pyshacl(data: Graph, shapes: Graph, inference: str) -> list[Violation]:
    try:
        _, result, _ = pyshacl.validate(
            data, shacl_graph=shapes, advanced=True, inference=inference, inplace=True,
            allow_warnings=True, allow_infos=True,
        )
    except Exception as exc:
        raise _crash(exc) from exc
    if isinstance(result, BaseException):  # pyshacl returns its ValidationFailure as the report
        raise _crash(result) from result
    return violations_from_graph(result)


def _crash(exc: BaseException) -> ValidationCrash:
    """Name the innermost shape and constraint component pyshacl was evaluating."""
    from pyshacl.constraints.constraint_component import ConstraintComponent

    shape = constraint = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, ConstraintComponent):
            shape, constraint = owner.shape.node, str(owner.shacl_constraint_component)
        elif isinstance(owner, pyshacl.Shape):
            shape = owner.node
        tb = tb.tb_next
    where = "" if shape is None else f" in shape {_node_str(shape)}"
    if constraint:
        where += f" ({short_name(constraint)})"
    hint = ""
    if "not supported between instances of 'Literal'" in str(exc):
        hint = " (typed literals that pyshacl cannot order, e.g. xsd:gYear: compare STR())"
    return ValidationCrash(
        f"pyshacl failed{where}: {type(exc).__name__}: {exc}{hint}",
        None if shape is None else _node_str(shape), constraint,
    )


def violations_from_graph(g: Graph) -> list[Violation]:
    """The top-level results of a ``sh:ValidationReport`` graph (nested sh:detail ignored)."""
    out = []
    for report in g.subjects(RDF.type, SH.ValidationReport):
        for r in g.objects(report, SH.result):
            path, value = g.value(r, SH.resultPath), g.value(r, SH.value)
            severity = g.value(r, SH.resultSeverity)
            out.append(Violation(
                focus=_node_str(g.value(r, SH.focusNode)),
                path=None if path is None else path_string(g, path),
                value=None if value is None else term_str(value),
                constraint=str(g.value(r, SH.sourceConstraintComponent)),
                shape=_node_str(g.value(r, SH.sourceShape)),
                severity=SEVERITIES.get(severity, str(severity)),
                message="; ".join(sorted({str(m) for m in g.objects(r, SH.resultMessage)})),
            ))
    return out


# ---------------------------------------------------------------------------- terms and paths


def term_str(t: Node) -> str:
    """N-Triples form of a term; ``xsd:string`` is implicit, as in RDF 1.1.

    >>> term_str(Literal("2030", datatype=XSD.gYear))
    '"2030"^^<http://www.w3.org/2001/XMLSchema#gYear>'
    >>> term_str(Literal('a "b"\\n', lang="ar")), term_str(Literal("x", datatype=XSD.string))
    ('"a \\\\"b\\\\"\\\\n"@ar', '"x"')
    """
    if isinstance(t, Literal):
        s = '"' + str(t).translate(_NT_ESCAPES) + '"'
        if t.language:
            return f"{s}@{t.language}"
        if t.datatype and t.datatype != XSD.string:
            return f"{s}^^<{t.datatype}>"
        return s
    if isinstance(t, BNode):
        return f"_:{t}"
    return f"<{t}>"


_NT_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def _node_str(t: Node) -> str:
    """Focus/shape form: bare IRI, ``_:label`` or an N-Triples literal."""
    return str(t) if isinstance(t, URIRef) else term_str(t)


def _from_node_str(s: str) -> Node:
    """Inverse of :func:`term_str` and :func:`_node_str`.

    >>> lit = Literal('a "b"\\n\\\\ أ', lang="ar")
    >>> _from_node_str(term_str(lit)) == lit, _from_node_str("urn:x"), _from_node_str("_:b0")
    (True, rdflib.term.URIRef('urn:x'), rdflib.term.BNode('b0'))
    """
    if s.startswith("_:"):
        return BNode(s[2:])
    if s.startswith("<"):
        return URIRef(s[1:-1])
    m = _NT_LITERAL.fullmatch(s)
    if m is None:
        return URIRef(s)
    lexical = re.sub(r"\\(.)", lambda e: _NT_UNESCAPES.get(e.group(1), e.group(1)), m.group(1))
    return Literal(lexical, lang=m.group(2), datatype=URIRef(m.group(3)) if m.group(3) else None)


_NT_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"(?:@([A-Za-z0-9-]+)|\^\^<([^>]*)>)?', re.S)
_NT_UNESCAPES = {"n": "\n", "r": "\r"}


def _angle(s: str) -> str:
    """IRIs in angle brackets, everything else (paths, blank nodes, literals) as is."""
    return s if s.startswith(("_:", '"', "<", "^", "(")) else f"<{s}>"


def short_name(constraint: str) -> str:
    """
    >>> short_name(str(SH.MinCountConstraintComponent)), short_name(LINT + "GYearOrder")
    ('MinCount', 'GYearOrder')
    """
    local = re.split(r"[#/:]", constraint)[-1]
    return local.removesuffix("ConstraintComponent") or constraint


_PATH_OPS = {SH.zeroOrMorePath: "*", SH.oneOrMorePath: "+", SH.zeroOrOnePath: "?"}


def path_string(g: Graph, node: Node, iri: Callable[[URIRef], str] | None = None) -> str:
    """A SHACL path as a SPARQL property path; a plain predicate as its bare IRI."""
    if isinstance(node, URIRef):
        return str(node)
    return _render_path(g, node, 0, iri or (lambda u: f"<{u}>"))


def _render_path(g: Graph, node: Node, min_level: int, iri) -> str:
    # levels of the SPARQL path grammar: 0 alternative, 1 sequence, 2 inverse, 3 modified, 4 IRI
    if isinstance(node, URIRef):
        text, level = iri(node), 4
    elif (g.value(node, RDF.first) is not None) or node == RDF.nil:
        text, level = "/".join(_render_path(g, n, 2, iri) for n in Collection(g, node)), 1
    elif (inner := g.value(node, SH.inversePath)) is not None:
        text, level = "^" + _render_path(g, inner, 3, iri), 2
    elif (alts := g.value(node, SH.alternativePath)) is not None:
        text, level = "|".join(_render_path(g, n, 1, iri) for n in Collection(g, alts)), 0
    else:
        for pred, op in _PATH_OPS.items():
            if (inner := g.value(node, pred)) is not None:
                text, level = _render_path(g, inner, 4, iri) + op, 3
                break
        else:
            raise ValueError(f"not a SHACL path: {node!r}")
    return f"({text})" if level < min_level else text


def parse_path(text: str, g: Graph) -> Node:
    """Parse a path written by :func:`path_string` back into SHACL path triples in ``g``."""
    if not text.startswith(("<", "^", "(")):
        return URIRef(text)
    tokens = re.findall(r"<[^>]*>|[()|/^*+?]", text)
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise ValueError(f"not a property path: {text!r}")
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def listed(pred, items):
        if len(items) == 1:
            return items[0]
        if pred is None:
            return Collection(g, BNode(), items).uri
        node = BNode()
        g.add((node, pred, Collection(g, BNode(), items).uri))
        return node

    def alternative():
        items = [sequence()]
        while peek() == "|":
            take()
            items.append(sequence())
        return listed(SH.alternativePath, items)

    def sequence():
        items = [unary()]
        while peek() == "/":
            take()
            items.append(unary())
        return listed(None, items)

    def unary():
        if peek() == "^":
            take()
            node = BNode()
            g.add((node, SH.inversePath, unary()))
            return node
        tok = take()
        if tok == "(":
            inner = alternative()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {text!r}")
        else:
            inner = URIRef(tok[1:-1])
        while peek() in ("*", "+", "?"):
            node = BNode()
            g.add((node, {v: k for k, v in _PATH_OPS.items()}[take()], inner))
            inner = node
        return inner

    node = alternative()
    if pos != len(tokens):
        raise ValueError(f"trailing tokens in path {text!r}")
    return node


# ---------------------------------------------------------------------------- shape names


_TARGETS = (SH.targetClass, SH.targetNode, SH.targetSubjectsOf, SH.targetObjectsOf, SH.target)


def _all_shapes(sg: Graph) -> set[str]:
    shapes: set[Node] = set()
    for cls in (SH.NodeShape, SH.PropertyShape):
        shapes.update(sg.subjects(RDF.type, cls))
    for pred in (*_TARGETS, SH.path):
        shapes.update(sg.subjects(pred, None))
    for pred in (SH.property, SH.node):
        shapes.update(sg.objects(None, pred))
    return {_node_str(s) for s in shapes if not isinstance(s, Literal)}


def _shape_name(sg: Graph, shape: str) -> str:
    """IRIs compacted with the shapes file's prefixes; a blank property shape as parent/path."""
    node = _from_node_str(shape)
    if isinstance(node, URIRef):
        return _compact(sg, node)
    path, parent = sg.value(node, SH.path), sg.value(None, SH.property, node)
    if path is None:
        return shape
    p = path_string(sg, path, lambda u: _compact(sg, u))
    p = _compact(sg, path) if isinstance(path, URIRef) else p
    return f"{_shape_name(sg, _node_str(parent)) if parent is not None else shape} / {p}"


def _compact(g: Graph, iri: URIRef) -> str:
    try:
        return g.namespace_manager.curie(iri, generate=False)
    except (KeyError, ValueError):
        return f"<{iri}>"


# ---------------------------------------------------------------------------- lints


_ORDERING = (SH.lessThan, SH.lessThanOrEquals, SH.minInclusive, SH.minExclusive,
             SH.maxInclusive, SH.maxExclusive)


def _lint_shapes(sg: Graph) -> list[Violation]:
    from .shacl_sparql import select_clause

    out = []
    for shape, c in sg.subject_objects(SH.sparql):
        for query in sg.objects(c, SH.select):
            sel = select_clause(str(query))
            if sel and not sel.star and not (sel.projected & {"this", "value", "path", "failure"}):
                out.append(Violation(
                    _node_str(shape), None, None, LINT + "SelectProjectsThis",
                    LINT + "SelectProjectsThis",
                    "Violation", "sh:select projects none of $this, ?value, ?path: pyshacl "
                    "silently drops every result of this query"))
    for pred in _ORDERING:
        for shape, bound in sg.subject_objects(pred):
            gyear = (shape, SH.datatype, XSD.gYear) in sg or (
                isinstance(bound, Literal) and bound.datatype == XSD.gYear)
            if gyear:
                out.append(Violation(
                    _node_str(shape), None, term_str(bound), LINT + "GYearOrder",
                    LINT + "GYearOrder", "Violation",
                    f"{_compact(sg, pred)} on xsd:gYear is broken in pyshacl (crash or wrong "
                    "results): compare STR() in sh:sparql"))
    return out


def _xml_safe(s: str) -> str:
    """Drop characters XML 1.0 cannot carry (data literals may hold any code point)."""
    return re.sub(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "\ufffd", s)
