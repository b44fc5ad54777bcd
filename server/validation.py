"""SHACL validation of nam-kg's Turtle, with text, JSON, Turtle and JUnit reports.

One entry point, :func:`validate`, runs pyshacl (``advanced=True`` for SHACL-AF targets, no
inference).  With ``sparql_engine="oxigraph"`` the ``sh:sparql`` constraints, where pyshacl spends
nearly all its time, are taken out of a copy of the shapes graph and evaluated on an in-memory
pyoxigraph store instead, giving the same :class:`Violation` objects.

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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyoxigraph as ox
import pyshacl
from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.namespace import OWL, SH
from rdflib.term import Node, XSDToPython, _toPythonMapping

__all__ = [
    "InputError",
    "Report",
    "ValidationCrash",
    "Violation",
    "load_graph",
    "parse_path",
    "path_string",
    "validate",
    "validate_shapes",
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


def _parse_into(g: Graph, path: Path) -> None:
    fmt = ox.RdfFormat.N_TRIPLES if path.suffix == ".nt" else ox.RdfFormat.TURTLE
    try:
        with path.open("rb") as f:
            parser = ox.parse(f, format=fmt, base_iri=path.resolve().as_uri())
            triples = list(parser)
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    except SyntaxError as exc:
        why = re.sub(r"^Parser error [^:]*: ", "", str(exc))
        why = re.sub(r" \((?:[^()]*, )?line \d+\)$", "", why)
        raise InputError(path, f"Turtle syntax error: {why}", exc.lineno or 1, exc.offset or 1) \
            from None
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
        hit = BNode(t.value)  # Oxigraph's labels are random per parse: unique across files
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
    sparql_engine: str = "pyshacl",
    allow_warnings: bool = True,
) -> Report:
    """Validate data (plus ontology, mixed into the data graph) against a shapes file."""
    if sparql_engine not in ("pyshacl", "oxigraph"):
        raise ValueError(f"sparql_engine must be 'pyshacl' or 'oxigraph': {sparql_engine!r}")
    start = time.perf_counter()
    files = [str(p) for p in (*ontology_paths, *data_paths)]
    with _rdflib_default_datatypes():
        data = load_graph(Path(f) for f in files)
        shapes = load_graph([Path(shapes_path)])
        if sparql_engine == "oxigraph":
            checks = _plan_sparql_checks(shapes)
            found = _run_pyshacl(data, _without_checks(shapes, checks), "none")
            found += _run_sparql_checks(data, shapes, checks)
        else:
            found = _run_pyshacl(data, shapes, "none")
    return _report(found, files, start, shapes, allow_warnings)


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
    out = []
    for shape, c in sg.subject_objects(SH.sparql):
        for query in sg.objects(c, SH.select):
            sel = _select_clause(str(query))
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


# ---------------------------------------------------------------------------- sh:sparql on Oxigraph


@dataclass
class _Check:
    """One offloadable ``sh:sparql`` constraint and where its focus nodes come from."""

    shape: Node
    constraint: Node
    targets_of: Node  # the shape itself, or the node shape owning it via sh:property
    query: str  # PREFIXes + select with $PATH substituted
    messages: list[str]  # the constraint's and the shape's sh:message
    severity: Node
    path: Node | None  # the shape's sh:path (None for a node shape)
    path_str: str | None


@dataclass
class _Select:
    star: bool
    projected: set[str]
    insert_at: int  # where a projected variable may be inserted (after SELECT [DISTINCT])
    brace: int  # the outermost group's "{"


_TOKEN = re.compile(
    r'#[^\n]*|"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^\'\\]|\\.|\'(?!\'\'))*\'\'\''
    r'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|<[^<>"{}|^`\\\x00-\x20]*>'
    r"|[?$][A-Za-z0-9_]+|[A-Za-z_][\w-]*|\S"
)


def _select_clause(query: str) -> _Select | None:
    """Locate the SELECT clause and the first "{" of a query, skipping IRIs, strings, comments.

    >>> s = _select_clause("PREFIX ex: <http://e/#> SELECT DISTINCT ?value (STR(?x) AS ?s) {}")
    >>> s.star, sorted(s.projected), s.brace
    (False, ['s', 'value'], 63)
    """
    sel, depth, first, prev = None, 0, False, ""
    for m in _TOKEN.finditer(query):
        tok, up = m.group(), m.group().upper()
        if tok.startswith("#"):
            continue
        if sel is None:
            if up == "SELECT":
                sel, first = _Select(False, set(), m.end(), -1), True
            continue
        if tok == "{":
            sel.brace = m.start()
            return sel
        if depth >= 0:  # still in the projection
            if first and up in ("DISTINCT", "REDUCED"):
                sel.insert_at = m.end()
            elif tok == "(":
                depth += 1
            elif tok == ")":
                depth -= 1
            elif tok == "*" and depth == 0:
                sel.star = True
            elif tok[0] in "?$" and (depth == 0 or prev == "AS"):
                sel.projected.add(tok[1:])
            elif up in ("WHERE", "FROM") and depth == 0:
                depth = -1  # projection over
        first, prev = False, up
    return None


def _plan_sparql_checks(sg: Graph) -> list[_Check]:
    """The sh:sparql constraints whose results pyshacl reports directly for a targeted shape.

    Everything else (shapes reached through sh:node/sh:and/..., shared property shapes, implicit
    class targets, custom targets, $shapesGraph, nested SELECT, deactivated) stays in pyshacl.
    """
    refs = Counter()
    for pred in (SH.property, SH.node, SH.qualifiedValueShape, SH["not"]):
        refs.update(sg.objects(None, pred))
    for pred in (SH["and"], SH["or"], SH.xone):
        for lst in sg.objects(None, pred):
            refs.update(Collection(sg, lst))

    def top_level(s: Node) -> bool:
        explicit_targets = any((s, t, None) in sg for t in _TARGETS)
        implicit_class = any((s, RDF.type, c) in sg for c in (RDFS.Class, OWL.Class))
        return (explicit_targets and not refs[s] and not implicit_class and not _deactivated(sg, s)
                and all(_sparql_target(sg, t) is not None for t in sg.objects(s, SH.target)))

    checks = []
    for shape, c in sg.subject_objects(SH.sparql):
        parents = list(sg.subjects(SH.property, shape))
        if top_level(shape):
            source = shape
        elif (len(parents) == 1 and refs[shape] == 1 and top_level(parents[0])
              and (parents[0], SH.path, None) not in sg and (shape, SH.path, None) in sg
              and not any((shape, t, None) in sg for t in _TARGETS)):
            source = parents[0]
        else:
            continue
        check = _make_check(sg, shape, c, source)
        if check is not None:
            checks.append(check)
    return checks


def _make_check(sg: Graph, shape: Node, c: Node, source: Node) -> _Check | None:
    selects = list(sg.objects(c, SH.select))
    messages = list(sg.objects(c, SH.message)) + list(sg.objects(shape, SH.message))
    if (len(selects) != 1 or not isinstance(selects[0], Literal) or _deactivated(sg, c)
            or _deactivated(sg, shape)
            or not all(isinstance(m, Literal) and isinstance(m.value, str) for m in messages)):
        return None
    query, path = str(selects[0]), sg.value(shape, SH.path)
    if not _offloadable(query, path is not None):
        return None
    if path is not None:  # $PATH is substituted, as pyshacl does
        p = path_string(sg, path)
        p = f"<{p}>" if isinstance(path, URIRef) else p
        query = re.sub(r"([\s{}()])[$?]PATH\b", lambda m: m.group(1) + p, query)
    try:
        prefixes = _prefixes(sg, c)
    except ValueError:
        return None
    head = "".join(f"PREFIX {k}: <{v}>\n" for k, v in prefixes.items())
    return _Check(shape, c, source, head + query, [str(m) for m in messages],
                  sg.value(shape, SH.severity) or SH.Violation, path,
                  None if path is None else path_string(sg, path))


def _offloadable(query: str, has_path: bool) -> bool:
    """Queries pyshacl rejects or pre-binds beyond $this stay with pyshacl (same errors)."""
    words = {w.upper() for w in re.findall(r"[A-Za-z]+", query)}
    # One query for all focus nodes differs from one per node where solutions get counted.
    per_node = not (words & {"COUNT", "SUM", "MIN", "MAX", "AVG", "SAMPLE", "GROUP", "HAVING"}) \
        or re.search(r"(?i)\bGROUP\s+BY\b[^{}]*[?$]this\b", query)
    return per_node and not (
        words & {"MINUS", "VALUES", "SERVICE", "LIMIT", "OFFSET"}
        or len(re.findall(r"(?i)\bSELECT\b", query)) != 1  # nested SELECT
        or re.search(r"[?$](shapesGraph|currentShape)\b", query)
        or re.search(r"(?i)\bAS\s+[?$]this\b", query)
        or (not has_path and re.search(r"[?$]PATH\b", query))
        or _select_clause(query) is None
    )


def _deactivated(sg: Graph, node: Node) -> bool:
    return any(v.toPython() is True for v in sg.objects(node, SH.deactivated)
               if isinstance(v, Literal))


def _prefixes(sg: Graph, node: Node) -> dict[str, str]:
    """sh:prefixes of a SPARQL-based constraint or target, resolved as pyshacl does."""
    out = {"rdf": str(RDF), "rdfs": str(RDFS), "owl": str(OWL)}
    onts = set(sg.subjects(RDF.type, OWL.Ontology))
    everywhere = {d for o in onts for d in sg.objects(o, SH.declare)}
    for p in sg.objects(node, SH.prefixes):
        own = set(sg.objects(p, SH.declare))
        for dec in own if (own and p in onts) else own | everywhere:
            prefix, ns = list(sg.objects(dec, SH.prefix)), list(sg.objects(dec, SH.namespace))
            if len(prefix) != 1 or len(ns) != 1:
                raise ValueError(f"sh:declare {dec} needs one sh:prefix and one sh:namespace")
            out[str(prefix[0])] = str(ns[0])
    return out


def _sparql_target(sg: Graph, target: Node) -> str | None:
    """The query of a SHACL-AF ``sh:SPARQLTarget`` (other custom targets: None)."""
    selects = list(sg.objects(target, SH.select))
    if len(selects) != 1 or (target, SH.parameter, None) in sg:
        return None
    try:
        head = "".join(f"PREFIX {k}: <{v}>\n" for k, v in _prefixes(sg, target).items())
    except ValueError:
        return None
    return head + str(selects[0])


def _without_checks(sg: Graph, checks: list[_Check]) -> Graph:
    copy = Graph()
    for prefix, ns in sg.namespaces():
        copy.bind(prefix, ns, override=True)
    for t in sg:
        copy.add(t)
    for check in checks:
        copy.remove((check.shape, SH.sparql, check.constraint))
    return copy


class _Store:
    """The data graph in an in-memory Oxigraph store, with term conversion both ways."""

    def __init__(self, g: Graph):
        self.store = ox.Store()
        self.to_ox: dict[BNode, ox.BlankNode] = {}
        self.from_ox: dict[str, BNode] = {}
        try:
            self.store.extend(ox.Quad(*map(self.ox, t)) for t in g)
        except ValueError as exc:
            raise ValidationCrash(f"oxigraph engine cannot load the data: {exc}") from exc

    def ox(self, t: Node):
        if isinstance(t, URIRef):
            return ox.NamedNode(str(t))
        if isinstance(t, BNode):
            if t not in self.to_ox:
                self.to_ox[t] = b = ox.BlankNode()
                self.from_ox[b.value] = t
            return self.to_ox[t]
        if t.language:
            return ox.Literal(str(t), language=t.language)
        if t.datatype:
            return ox.Literal(str(t), datatype=ox.NamedNode(str(t.datatype)))
        return ox.Literal(str(t))

    def rdflib(self, t) -> Node:
        if isinstance(t, ox.NamedNode):
            return URIRef(t.value)
        if isinstance(t, ox.BlankNode):
            return self.from_ox.get(t.value) or BNode(t.value)
        if t.language:
            return Literal(t.value, lang=t.language)
        if t.datatype.value == str(XSD.string):
            return Literal(t.value)
        return Literal(t.value, datatype=URIRef(t.datatype.value))

    def select(self, query: str, shape: Node, **kw) -> Iterator[dict[str, Node]]:
        try:
            solutions = self.store.query(query, **kw)
        except (SyntaxError, OSError) as exc:
            raise ValidationCrash(f"Oxigraph failed in shape {_node_str(shape)}: {exc}\n{query}",
                                  _node_str(shape), str(SH.SPARQLConstraintComponent)) from exc
        names = [v.value for v in solutions.variables]
        for s in solutions:
            yield {n: self.rdflib(s[n]) for n in names if s[n] is not None}


def _focus_nodes(sg: Graph, dg: Graph, store: _Store, shape: Node) -> list[Node]:
    nodes: set[Node] = set(sg.objects(shape, SH.targetNode))
    for cls in sg.objects(shape, SH.targetClass):
        for sub in dg.transitive_subjects(RDFS.subClassOf, cls):
            nodes.update(dg.subjects(RDF.type, sub))
    for p in sg.objects(shape, SH.targetSubjectsOf):
        nodes.update(dg.subjects(p, None))
    for p in sg.objects(shape, SH.targetObjectsOf):
        nodes.update(dg.objects(None, p))
    for target in sg.objects(shape, SH.target):
        nodes.update(row["this"] for row in store.select(_sparql_target(sg, target), shape)
                     if "this" in row)
    return sorted(nodes, key=term_str)


_CHUNK = 5000  # focus nodes per VALUES block


def _run_sparql_checks(dg: Graph, sg: Graph, checks: list[_Check]) -> list[Violation]:
    if not checks:
        return []
    store = _Store(dg)  # built after pyshacl ran in place, so SHACL-AF rule output is included
    focus_cache: dict[Node, list[Node]] = {}
    out = []
    for check in checks:
        if check.targets_of not in focus_cache:
            focus_cache[check.targets_of] = _focus_nodes(sg, dg, store, check.targets_of)
        out += _run_check(store, check, focus_cache[check.targets_of])
    return out


def _run_check(store: _Store, check: _Check, focus: list[Node]) -> list[Violation]:
    """Evaluate one constraint for all focus nodes at once, mirroring pyshacl's results."""
    q = check.query
    sel = _select_clause(q)
    # pyshacl only sees $this in a row when the query projects it; we always need it.
    this_projected = "this" in sel.projected or (sel.star and re.search(r"[?$]this\b", q))
    if not sel.star and "this" not in sel.projected:
        q = q[: sel.insert_at] + " ?this" + q[sel.insert_at:]
        sel = _select_clause(q)
    rows: list[dict[str, Node]] = []
    plain = [f for f in focus if not isinstance(f, BNode)]  # blank nodes cannot go in VALUES
    for i in range(0, len(plain), _CHUNK):
        values = " ".join(term_str(f) for f in plain[i: i + _CHUNK])
        rows += store.select(f"{q[: sel.brace + 1]} VALUES ?this {{ {values} }} "
                             f"{q[sel.brace + 1:]}", check.shape)
    for b in (f for f in focus if isinstance(f, BNode)):
        rows += ({**r, "this": b} for r in store.select(
            q, check.shape, substitutions={ox.Variable("this"): store.ox(b)}))
    out, seen = [], set()
    node_shape = check.path is None
    for row in rows:
        f = row["this"] if this_projected else row.pop("this")
        result_val = f if node_shape else None
        if row.pop("failure", None) is not None:
            if ("failure", f) in seen:
                continue
            seen.add(("failure", f))
            out.append(_violation(check, f, result_val, None, row))
            continue
        p, v, t = row.pop("path", None), row.pop("value", None), row.pop("this", None)
        key = (f, t, p, v, frozenset(row.items()))
        if (p is None and v is None and t is None) or key in seen:
            continue
        seen.add(key)
        v = result_val if v is None else v
        pinned = (("this", t), ("path", p), ("value", v))
        bound = {**row, **{k: x for k, x in pinned if x is not None}}
        out.append(_violation(check, t or f, v, p, bound))
    return out


def _violation(check: _Check, focus: Node, value, path, bound: dict[str, Node]) -> Violation:
    messages = set()
    for m in check.messages:
        for var, val in bound.items():
            m = re.sub(r"\{[?$]" + re.escape(var) + r"\}", lambda _, v=str(val): v, m)
        messages.add(m)
    return Violation(
        focus=_node_str(focus),
        path=check.path_str if path is None else _node_str(path),
        value=None if value is None else term_str(value),
        constraint=str(SH.SPARQLConstraintComponent),
        shape=_node_str(check.shape),
        severity=SEVERITIES.get(check.severity, str(check.severity)),
        message="; ".join(sorted(messages)),
    )


def _xml_safe(s: str) -> str:
    """Drop characters XML 1.0 cannot carry (data literals may hold any code point)."""
    return re.sub(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "\ufffd", s)
