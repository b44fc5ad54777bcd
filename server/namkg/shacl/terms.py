"""The vocabulary every SHACL engine here reports in: a result (:class:`Violation`), the
severities, RDF terms as N-Triples text, SHACL property paths as SPARQL path text (and back),
and the target predicates. Engines and the report writers import it; it imports none of them.

>>> from rdflib import Graph
>>> g = Graph()
>>> path_string(g, parse_path("^<http://ex/p>/<http://ex/q>*", g))
'^<http://ex/p>/<http://ex/q>*'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rdflib import BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.namespace import RDF, SH, XSD
from rdflib.term import Node

SEVERITIES = {SH.Violation: "Violation", SH.Warning: "Warning", SH.Info: "Info"}


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


def node_str(t: Node) -> str:
    """Focus/shape form: bare IRI, ``_:label`` or an N-Triples literal."""
    return str(t) if isinstance(t, URIRef) else term_str(t)


def from_node_str(s: str) -> Node:
    """Inverse of :func:`term_str` and :func:`node_str`.

    >>> lit = Literal('a "b"\\n\\\\ أ', lang="ar")
    >>> from_node_str(term_str(lit)) == lit, from_node_str("urn:x"), from_node_str("_:b0")
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
    return Literal(lexical, lang=m.group(2), datatype=URIRef(m.group(3)) if m.group(3) else None,
                   normalize=False)


_NT_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"(?:@([A-Za-z0-9-]+)|\^\^<([^>]*)>)?', re.S)


_NT_UNESCAPES = {"n": "\n", "r": "\r"}


def angle(s: str) -> str:
    """IRIs in angle brackets, everything else (paths, blank nodes, literals) as is."""
    return s if s.startswith(("_:", '"', "<", "^", "(")) else f"<{s}>"


def short_name(constraint: str) -> str:
    """
    >>> short_name(str(SH.MinCountConstraintComponent)), short_name("urn:nam-kg:lint:GYearOrder")
    ('MinCount', 'GYearOrder')
    """
    local = re.split(r"[#/:]", constraint)[-1]
    return local.removesuffix("ConstraintComponent") or constraint


_PATH_OPS = {SH.zeroOrMorePath: "*", SH.oneOrMorePath: "+", SH.zeroOrOnePath: "?"}


def path_string(g: Graph, node: Node, iri: Callable[[URIRef], str] | None = None) -> str:
    """A SHACL path as a SPARQL property path; a plain predicate as its bare IRI."""
    if isinstance(node, URIRef):
        return str(node)
    return render_path(g, node, 0, iri or (lambda u: f"<{u}>"))


def render_path(g: Graph, node: Node, min_level: int, iri) -> str:
    # levels of the SPARQL path grammar: 0 alternative, 1 sequence, 2 inverse, 3 modified, 4 IRI
    if isinstance(node, URIRef):
        text, level = iri(node), 4
    elif (g.value(node, RDF.first) is not None) or node == RDF.nil:
        text, level = "/".join(render_path(g, n, 2, iri) for n in Collection(g, node)), 1
    elif (inner := g.value(node, SH.inversePath)) is not None:
        text, level = "^" + render_path(g, inner, 3, iri), 2
    elif (alts := g.value(node, SH.alternativePath)) is not None:
        text, level = "|".join(render_path(g, n, 1, iri) for n in Collection(g, alts)), 0
    else:
        for pred, op in _PATH_OPS.items():
            if (inner := g.value(node, pred)) is not None:
                text, level = render_path(g, inner, 4, iri) + op, 3
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


TARGETS = (SH.targetClass, SH.targetNode, SH.targetSubjectsOf, SH.targetObjectsOf, SH.target)
